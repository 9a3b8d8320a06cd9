"""The pdfium backend on its own: typed errors when opening, sizes, the one object walk (how deep it looks for
images), and that its lock makes concurrent use from threads safe."""

from __future__ import annotations

import threading

import pytest

from app.errors import EmptyPdf, EncryptedPdf, UnreadablePdf
from app.pipeline import pdfium_backend as backend
from app.pipeline import textlayer
from tests import pdfgen


def test_open_document_raises_typed_errors(tmp_path):
    with pytest.raises(EncryptedPdf):
        backend.open_document(pdfgen.encrypted_pdf(tmp_path / "enc.pdf"))
    with pytest.raises(EmptyPdf):
        backend.open_document(pdfgen.zero_page_pdf(tmp_path / "zero.pdf"))
    source = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=3)
    with pytest.raises(UnreadablePdf):
        backend.open_document(pdfgen.truncated_pdf(source, tmp_path / "cut.pdf"))
    with pytest.raises(UnreadablePdf):
        backend.open_document(b"%PDF-1.7\n" + bytes(200))


def test_page_count_and_sizes_are_read_without_loading_pages(tmp_path):
    doc = backend.open_document(pdfgen.huge_page_pdf(tmp_path / "big.pdf"))
    try:
        assert backend.page_count(doc) == 1
        assert backend.page_sizes(doc) == [(14400.0, 14400.0)]
    finally:
        backend.close_document(doc)


@pytest.mark.parametrize("depth", [0, 1, 4, 5, backend.MAX_FORM_DEPTH])
def test_images_are_found_inside_nested_forms_down_to_the_maximum_depth(tmp_path, depth):
    path = (pdfgen.huge_image_pdf(tmp_path / "img.pdf") if depth == 0
            else pdfgen.nested_image_pdf(tmp_path / "nested.pdf", depth=depth))
    doc = backend.open_document(path)
    try:
        with backend.open_page(doc, 0) as page:
            objects = page.objects()
        assert objects.image_sizes == [(30000, 30000)]
        assert objects.image_area(612, 792) == pytest.approx(612 * 792, rel=0.01)
    finally:
        backend.close_document(doc)


def test_the_walk_stops_past_the_maximum_depth(tmp_path):
    doc = backend.open_document(pdfgen.nested_image_pdf(tmp_path / "deep.pdf", depth=backend.MAX_FORM_DEPTH + 1))
    try:
        with backend.open_page(doc, 0) as page:
            assert page.objects().image_sizes == []
    finally:
        backend.close_document(doc)


def test_text_and_renders_from_many_threads_match_a_single_threaded_reading(tmp_path):
    paths = [pdfgen.two_column_pdf(tmp_path / "two.pdf"), pdfgen.table_pdf(tmp_path / "table.pdf"),
             pdfgen.text_pdf(tmp_path / "text.pdf", pages=2)]

    def read(path):
        doc = backend.open_document(path)
        try:
            with backend.open_page(doc, 0) as page:
                lines = [(line.text, line.bbox) for line in textlayer.extract(page).lines]
                image = page.render(0.5)
            return lines, image.shape, int(image.sum())
        finally:
            backend.close_document(doc)

    expected = [read(path) for path in paths]
    results: list[list] = [[] for _ in paths]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for _ in range(5):
                results[k % len(paths)].append(read(paths[k % len(paths)]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for k, reading in enumerate(expected):
        assert results[k] and all(result == reading for result in results[k])
