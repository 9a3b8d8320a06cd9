"""Image uploads become PDFs of image-only pages: formats by their bytes, DPI -> points, EXIF orientation,
every TIFF frame a page, pixel and frame limits, truncated files, reproducible output."""

from __future__ import annotations

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw

from app.errors import ImageTooLarge, TooManyPages, UnreadableImage
from app.runtime import image_input
from app.runtime.image_input import ensure_pdf, image_to_pdf, sniff
from tests import pdfgen


def _pages(data: bytes) -> list[tuple[float, float]]:
    doc = pdfium.PdfDocument(data)
    try:
        # PNG stores DPI as pixels per metre: 300 DPI reads back as 299.9994, so sizes are compared in 0.1 pt.
        return [(round(w, 1), round(h, 1)) for w, h in (doc[i].get_size() for i in range(len(doc)))]
    finally:
        doc.close()


def _render(data: bytes, index: int = 0, dpi: int = 72) -> np.ndarray:
    doc = pdfium.PdfDocument(data)
    try:
        return np.asarray(doc[index].render(scale=dpi / 72).to_pil().convert("L"))
    finally:
        doc.close()


def _marked(width: int = 600, height: int = 400) -> Image.Image:
    """White with a black band across the top fifth: which way is up is visible in the render."""
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).rectangle([0, 0, width, height // 5], fill="black")
    return image


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP", "BMP"])
def test_formats_are_recognised_by_their_bytes_not_the_name(tmp_path, fmt):
    path = tmp_path / "upload.pdf"  # the name lies
    _marked().save(path, format=fmt)
    assert sniff(path.read_bytes()[:16]) == fmt
    assert ensure_pdf(path, _settings(tmp_path)) == path
    assert path.read_bytes().startswith(b"%PDF-")
    assert len(_pages(path.read_bytes())) == 1


def test_pdf_and_unknown_bytes_are_left_alone(tmp_path):
    pdf = pdfgen.text_pdf(tmp_path / "a.pdf")
    before = pdf.read_bytes()
    assert ensure_pdf(pdf, _settings(tmp_path)) == pdf and pdf.read_bytes() == before
    assert sniff(b"GIF89a....") is None and sniff(b"%PDF-1.7") is None


def test_page_size_comes_from_the_dpi_metadata_or_200_dpi(tmp_path):
    settings = _settings(tmp_path)
    with_dpi, without = tmp_path / "300.png", tmp_path / "none.png"
    _marked(900, 600).save(with_dpi, dpi=(300, 300))
    _marked(900, 600).save(without)
    assert _pages(image_to_pdf(with_dpi, settings)) == [(216.0, 144.0)]  # 900 px / 300 DPI = 3 in = 216 pt
    assert _pages(image_to_pdf(without, settings)) == [(324.0, 216.0)]  # 900 px / 200 DPI


def test_every_tiff_frame_is_a_page_with_its_own_size(tmp_path):
    path = tmp_path / "scan.tif"
    first, second, third = _marked(400, 600), _marked(600, 400).convert("L"), _marked(400, 600).convert("1")
    first.save(path, save_all=True, append_images=[second, third], dpi=(100, 100))
    assert _pages(image_to_pdf(path, _settings(tmp_path))) == [(288.0, 432.0), (432.0, 288.0), (288.0, 432.0)]


def test_exif_orientation_is_applied(tmp_path):
    # Stored sideways (the band on the right edge) with orientation 6 = "rotate 90 degrees clockwise to view".
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    _marked(600, 400).rotate(90, expand=True).save(path, exif=exif, dpi=(200, 200))
    data = image_to_pdf(path, _settings(tmp_path))
    assert _pages(data) == [(216.0, 144.0)]  # upright: 600 x 400 px, landscape
    pixels = _render(data)
    top, bottom = pixels[: pixels.shape[0] // 6].mean(), pixels[-pixels.shape[0] // 6:].mean()
    assert top < 60 < 200 < bottom  # the black band is at the top again


def test_an_upright_jpeg_is_embedded_without_re_encoding(tmp_path):
    path = tmp_path / "photo.jpg"
    _marked().save(path, quality=70)
    doc = pdfium.PdfDocument(image_to_pdf(path, _settings(tmp_path)))
    try:
        (obj,) = list(doc[0].get_objects())
        assert obj.get_filters() == ["DCTDecode"]
        assert bytes(obj.get_data(decode_simple=False)) == path.read_bytes()
    finally:
        doc.close()


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    bomb = pdfgen.png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(ImageTooLarge, match="12000x12000") as caught:
        image_to_pdf(bomb, _settings(tmp_path))
    assert caught.value.kind == "too_large" and "MAX_PAGE_PIXELS" in caught.value.message


def test_a_truncated_image_is_a_422(tmp_path):
    whole = tmp_path / "whole.png"
    pdfgen.photo_image(400, 300).save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(UnreadableImage) as caught:
        image_to_pdf(cut, _settings(tmp_path))
    assert caught.value.kind == "invalid_request"
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(UnreadableImage):
        image_to_pdf(garbage, _settings(tmp_path))


def test_more_frames_than_max_pages_is_a_413(tmp_path):
    path = tmp_path / "many.tif"
    frames = [_marked(60, 40) for _ in range(4)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(TooManyPages):
        image_to_pdf(path, _settings(tmp_path, max_pages=3))


def test_the_wrapper_is_reproducible(tmp_path):
    path = tmp_path / "a.webp"
    pdfgen.photo_image(300, 200).save(path)
    settings = _settings(tmp_path)
    assert image_to_pdf(path, settings) == image_to_pdf(path, settings)


def test_transparency_reads_as_white_paper(tmp_path):
    path = tmp_path / "alpha.png"
    image = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle([0, 0, 299, 39], fill=(0, 0, 0, 255))
    image.save(path)
    pixels = _render(image_to_pdf(path, _settings(tmp_path)))
    assert pixels[-10:].mean() > 250 and pixels[:5].mean() < 10


def _settings(tmp_path, **overrides):
    from app.settings import Settings

    return Settings(_env_file=None, output_dir=tmp_path / "out", **overrides)  # type: ignore[call-arg]


def test_accepted_list_is_what_the_415_names():
    from app.pipeline.pdf_input import NOT_A_PDF

    assert image_input.ACCEPTED in NOT_A_PDF
