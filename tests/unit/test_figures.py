"""Figure/table crops: names, PNG or JPEG by content, Markdown links with captions, the document budget, embed."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from app.runtime.document import merge_pages
from app.pipeline.figures import ImageTarget, export_page_images, is_photographic
from app.pipeline.result import Block, PageResult
from app.storage import images as image_store
from tests import pdfgen

SCALE = 2.0  # the test "render" is 144 DPI


def _page(number: int, blocks: list[Block]) -> PageResult:
    body = []
    for block in blocks:
        if block.type in ("figure", "chart"):
            x0, y0, x1, y1 = (round(v) for v in block.bbox)
            body.append(f"![{block.type}](#bbox={x0},{y0},{x1},{y1})")
        else:
            body.append(block.text)
    return PageResult(page=number, width=612, height=792, source="ocr", markdown="\n\n".join(body), blocks=blocks)


def _render(photo_box=(72, 400, 372, 600), chart_box=(72, 72, 372, 300)) -> np.ndarray:
    """A white 612x792 pt page at SCALE with a bar chart and a photograph pasted where the blocks say."""
    page = Image.new("RGB", (int(612 * SCALE), int(792 * SCALE)), "white")
    for box, picture in ((chart_box, pdfgen.bar_chart_image()), (photo_box, pdfgen.photo_image())):
        size = (int((box[2] - box[0]) * SCALE), int((box[3] - box[1]) * SCALE))
        page.paste(picture.resize(size), (int(box[0] * SCALE), int(box[1] * SCALE)))
    return np.asarray(page)


def _target(tmp_path, **limits) -> ImageTarget:
    directory = tmp_path / "crops"
    directory.mkdir(exist_ok=True)
    return ImageTarget(directory=str(directory), dpi=144, max_count=limits.get("max_count", 100),
                       max_bytes=limits.get("max_bytes", 10**8))


def _blocks() -> list[Block]:
    return [
        Block(type="chart", bbox=(72, 72, 372, 300), order=0),
        Block(type="caption", bbox=(72, 306, 372, 318), text="Figure 3: Sales [by quarter]", order=1),
        Block(type="text", bbox=(72, 330, 540, 380), text="Some prose between the pictures.", order=2),
        Block(type="figure", bbox=(72, 400, 372, 600), order=3),
        Block(type="table", bbox=(72, 620, 540, 700), text="| a | b |", html="<table></table>", order=4),
    ]


def test_crops_are_written_named_by_page_kind_and_index_and_linked(tmp_path):
    page = _page(3, _blocks())
    written = export_page_images(page, _render(), SCALE, _target(tmp_path))
    names = sorted(p.name for p in (tmp_path / "crops").iterdir())
    assert names == ["p3-chart1.png", "p3-fig1.jpg", "p3-table1.png"]
    assert written == sum((tmp_path / "crops" / n).stat().st_size for n in names)
    assert [b.image for b in page.blocks] == ["images/p3-chart1.png", None, None, "images/p3-fig1.jpg",
                                              "images/p3-table1.png"]
    # The caption is the alt text (its brackets would end it early); a figure without one gets "Figure n".
    assert "![Figure 3: Sales (by quarter)](images/p3-chart1.png)" in page.markdown
    assert "![Figure 1](images/p3-fig1.jpg)" in page.markdown
    assert "#bbox=" not in page.markdown
    assert "p3-table1" not in page.markdown  # tables keep their Markdown; the crop is a second view in JSON
    with Image.open(tmp_path / "crops" / "p3-chart1.png") as chart:
        assert chart.size == (int(300 * SCALE) + 8, int(228 * SCALE) + 8)  # the box plus 2 pt on each side


def test_png_for_line_art_jpeg_for_photographs():
    assert not is_photographic(np.asarray(pdfgen.bar_chart_image()))
    assert is_photographic(np.asarray(pdfgen.photo_image()))


def test_a_page_never_writes_past_the_limits(tmp_path):
    page = _page(1, _blocks())
    export_page_images(page, _render(), SCALE, _target(tmp_path, max_count=1))
    assert [b.image for b in page.blocks if b.image] == ["images/p1-chart1.png"]
    assert page.markdown.count("#bbox=") == 1  # the figure that did not fit keeps its placeholder


def test_the_document_budget_keeps_the_first_images_in_page_order(tmp_path, make_settings):
    target = _target(tmp_path)
    pages = [_page(n, _blocks()) for n in (2, 1)]  # finished out of order
    for page in pages:
        export_page_images(page, _render(), SCALE, target)
    result = merge_pages(pages, page_count=2)
    settings = make_settings(max_images_per_document=4)
    image_store.finalize(result, tmp_path / "crops", "refer", settings)
    kept = [b.image for p in result.pages for b in p.blocks if b.image]
    assert kept == ["images/p1-chart1.png", "images/p1-fig1.jpg", "images/p1-table1.png", "images/p2-chart1.png"]
    assert sorted(p.name for p in (tmp_path / "crops").iterdir()) == sorted(k.split("/")[1] for k in kept)
    assert "![figure](#bbox=72,400,372,600)" in result.pages[1].markdown  # page 2's figure fell back
    assert result.markdown.count("](images/") == 3


def test_the_byte_budget_counts_file_sizes(tmp_path, make_settings):
    page = _page(1, _blocks())
    export_page_images(page, _render(), SCALE, _target(tmp_path))
    chart = (tmp_path / "crops" / "p1-chart1.png").stat().st_size
    result = merge_pages([page], page_count=1)
    image_store.finalize(result, tmp_path / "crops", "refer", make_settings(max_image_mb_per_document=chart / 2**20))
    assert [b.image for b in result.pages[0].blocks if b.image] == ["images/p1-chart1.png"]


def test_embed_inlines_data_uris_and_leaves_no_files(tmp_path, make_settings):
    page = _page(1, _blocks())
    export_page_images(page, _render(), SCALE, _target(tmp_path))
    png = (tmp_path / "crops" / "p1-chart1.png").read_bytes()
    result = image_store.finalize(merge_pages([page], page_count=1), tmp_path / "crops", "embed", make_settings())
    chart = result.pages[0].blocks[0]
    assert chart.image == "data:image/png;base64," + base64.b64encode(png).decode()
    assert f"]({chart.image})" in result.markdown and "](images/" not in result.markdown
    figure = result.pages[0].blocks[3].image
    assert figure.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(figure.split(",", 1)[1]))) as decoded:
        assert decoded.format == "JPEG"
    assert list((tmp_path / "crops").iterdir()) == []


def test_relocate_points_links_at_the_cli_directory(tmp_path, make_settings):
    page = _page(1, _blocks())
    export_page_images(page, _render(), SCALE, _target(tmp_path))
    result = image_store.relocate(merge_pages([page], page_count=1), "my report_images")
    assert result.pages[0].blocks[0].image == "my report_images/p1-chart1.png"
    assert "](my%20report_images/p1-chart1.png)" in result.markdown


@pytest.mark.parametrize("mode", ["none"])
def test_none_needs_no_target(tmp_path, make_settings, mode):
    assert image_store.image_target(make_settings(), mode, tmp_path) is None


def test_vl_mode_crops_regions_in_the_worker_and_links_them_after_assembly(tmp_path, make_settings):
    import pickle

    from app.pipeline import page as page_mod
    from app.pipeline.pdf_input import open_pdf
    from app.pipeline.pdfium_backend import close_document
    from app.pipeline.options import ConvertOptions
    from app.pipeline.primitives import Region
    from tests.unit.test_page import FakeEngines  # layout: a title and a figure region

    settings = make_settings()
    doc = open_pdf(pdfgen.figure_pdf(tmp_path / "f.pdf", pages=1), settings)
    target = _target(tmp_path)
    try:
        analysis = page_mod.analyse_for_vl(doc, 0, ConvertOptions(mode="vl", dpi=144), FakeEngines(), settings,
                                           images=target)
    finally:
        close_document(doc)
    assert [(label, path) for label, _, path in analysis.images] == [("figure", "images/p1-fig1.png")]
    copy = pickle.loads(pickle.dumps(analysis))  # from the worker to the parent
    read = [Region(label="title", bbox=copy.crops[0].region.bbox, text="Read by the VLM")]
    result = page_mod.assemble_vl_page(copy, read)
    (figure,) = [b for b in result.blocks if b.type == "figure"]
    assert figure.image == "images/p1-fig1.png"
    assert "![Figure 1](images/p1-fig1.png)" in result.markdown
    assert (tmp_path / "crops" / "p1-fig1.png").is_file()


def test_stale_staging_directories_and_links_are_swept(tmp_path, make_settings):
    import os
    import time

    settings = make_settings()
    old_dir, new_dir = image_store.staging_dir(settings, "old"), image_store.staging_dir(settings, "new")
    (old_dir / "p1-fig1.png").write_bytes(b"x")
    link = old_dir.parent / "handed-off"
    link.symlink_to(tmp_path / "gone")  # a hand-off link whose job directory is gone
    past = time.time() - 7200
    os.utime(old_dir, (past, past))
    os.utime(link, (past, past), follow_symlinks=False)
    removed = image_store.sweep_staging(settings, cutoff=time.time() - 3600)
    assert sorted(removed) == sorted([old_dir.name, "handed-off"])
    assert [p.name for p in old_dir.parent.iterdir()] == [new_dir.name]


def test_a_crop_that_cannot_be_written_leaves_the_placeholder_and_the_page(tmp_path):
    target = ImageTarget(directory=str(tmp_path / "removed"), dpi=144, max_count=10, max_bytes=10**8)
    page = _page(1, _blocks())
    assert export_page_images(page, _render(), SCALE, target) == 0
    assert [b.image for b in page.blocks if b.image] == []
    assert page.markdown.count("#bbox=") == 2 and "Some prose" in page.markdown
