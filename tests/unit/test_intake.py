"""Intake: every kind of bad upload gets its own typed error, limits come from settings, pages are selected."""

from __future__ import annotations

import pickle
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from app.errors import (
    EmptyPdf,
    EncryptedPdf,
    InvalidParameter,
    NotAPdf,
    PageTooLarge,
    TooManyPages,
    UnreadablePdf,
    UploadTooLarge,
    WorkerCrashed,
)
from app.pipeline.pdf_input import check_image_sizes, document_cache
from app.runtime.intake import inspect_pdf
from app.pipeline.pdfium_backend import PdfPage
from tests import pdfgen


def test_text_pdf_is_inspected_with_page_count_sizes_and_all_pages_selected(tmp_path, make_settings):
    path = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=3)
    info = inspect_pdf(path, make_settings())
    assert info.page_count == 3
    assert info.page_indices == [0, 1, 2]
    assert info.page_sizes == [(612.0, 792.0)] * 3


def test_bytes_and_paths_are_both_accepted(tmp_path, make_settings):
    path = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=2)
    assert inspect_pdf(path.read_bytes(), make_settings(), "2").page_indices == [1]
    assert inspect_pdf(str(path), make_settings(), "1").page_indices == [0]


def test_junk_before_the_header_within_one_kib_is_accepted(tmp_path, make_settings):
    data = b"junk from a mail gateway\n" + pdfgen.text_pdf(tmp_path / "doc.pdf").read_bytes()
    assert inspect_pdf(data, make_settings()).page_count == 1


def test_empty_file_is_not_a_pdf(tmp_path, make_settings):
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    with pytest.raises(NotAPdf, match="empty"):
        inspect_pdf(empty, make_settings())
    with pytest.raises(NotAPdf):
        inspect_pdf(b"", make_settings())


def test_random_bytes_are_not_a_pdf(tmp_path, make_settings):
    with pytest.raises(NotAPdf, match="not a PDF"):
        inspect_pdf(pdfgen.random_bytes(tmp_path / "r.pdf"), make_settings())


def test_a_pdf_header_followed_by_garbage_is_unreadable(tmp_path, make_settings):
    with pytest.raises(UnreadablePdf, match="damaged"):
        inspect_pdf(pdfgen.random_bytes(tmp_path / "r.pdf", pdf_header=True), make_settings())


def test_truncated_pdf_is_unreadable(tmp_path, make_settings):
    source = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=3)
    with pytest.raises(UnreadablePdf):
        inspect_pdf(pdfgen.truncated_pdf(source, tmp_path / "cut.pdf"), make_settings())


def test_encrypted_pdf_is_refused_as_encrypted(tmp_path, make_settings):
    with pytest.raises(EncryptedPdf, match="password"):
        inspect_pdf(pdfgen.encrypted_pdf(tmp_path / "enc.pdf"), make_settings())


def test_zero_page_pdf_is_empty_even_right_after_an_encrypted_one(tmp_path, make_settings):
    # pdfium leaves its last error behind; the classification must not report "encrypted" for the next file.
    with pytest.raises(EncryptedPdf):
        inspect_pdf(pdfgen.encrypted_pdf(tmp_path / "enc.pdf"), make_settings())
    with pytest.raises(EmptyPdf, match="no pages"):
        inspect_pdf(pdfgen.zero_page_pdf(tmp_path / "zero.pdf"), make_settings())


def test_missing_file_is_unreadable(tmp_path, make_settings):
    with pytest.raises(UnreadablePdf, match="cannot read"):
        inspect_pdf(tmp_path / "nope.pdf", make_settings())


def test_upload_size_limit(tmp_path, make_settings):
    path = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=3)
    with pytest.raises(UploadTooLarge, match="MiB"):
        inspect_pdf(path, make_settings(max_upload_mb=0.001))


def test_page_count_limit(tmp_path, make_settings):
    path = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=3)
    with pytest.raises(TooManyPages, match="3 pages"):
        inspect_pdf(path, make_settings(max_pages=2))


def test_page_selection_past_the_end_is_an_invalid_parameter(tmp_path, make_settings):
    path = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=2)
    with pytest.raises(InvalidParameter, match="last page"):
        inspect_pdf(path, make_settings(), "1-5")


def test_huge_page_is_accepted_by_intake(tmp_path, make_settings):
    # Its render scale is lowered later (render.py); the page itself is fine.
    info = inspect_pdf(pdfgen.huge_page_pdf(tmp_path / "big.pdf"), make_settings())
    assert info.page_sizes == [(14400.0, 14400.0)]


def test_huge_embedded_image_is_refused_before_decoding(tmp_path, make_settings):
    path = pdfgen.huge_image_pdf(tmp_path / "img.pdf")
    doc = pdfium.PdfDocument(path)
    try:
        sizes = PdfPage(doc[0]).objects().image_sizes
        assert sizes == [(30000, 30000)]
        with pytest.raises(PageTooLarge, match="30000x30000"):
            check_image_sizes(sizes, 1, make_settings())
        check_image_sizes(sizes, 1, make_settings(max_image_pixels=1_000_000_000))  # under a higher limit: fine
    finally:
        doc.close()


def test_typed_errors_survive_pickling_between_processes():
    for error in (PageTooLarge("page 3 is too big"), WorkerCrashed("worker died")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and copy.message == error.message
    assert WorkerCrashed.kind == "internal"


def test_document_cache_reuses_open_documents_and_evicts_old_ones(tmp_path, make_settings):
    paths = [pdfgen.text_pdf(tmp_path / f"d{i}.pdf") for i in range(3)]
    cache = document_cache(make_settings(), size=2)
    try:
        first = cache.get(paths[0])
        assert cache.get(paths[0]) is first
        cache.get(paths[1])
        cache.get(paths[2])
        assert cache.get(paths[0]) is not first  # evicted, opened again
    finally:
        cache.close()


def test_document_cache_raises_typed_errors(tmp_path, make_settings):
    cache = document_cache(make_settings())
    with pytest.raises(EncryptedPdf):
        cache.get(pdfgen.encrypted_pdf(tmp_path / "enc.pdf"))
    with pytest.raises(UnreadablePdf):
        cache.get(Path(tmp_path / "missing.pdf"))


def test_document_cache_closes_documents_whose_file_is_gone(tmp_path, make_settings):
    first = pdfgen.text_pdf(tmp_path / "upload-1.pdf")
    second = pdfgen.text_pdf(tmp_path / "upload-2.pdf")
    cache = document_cache(make_settings())
    try:
        cache.get(first)
        first.unlink()  # the service deletes an upload once converted
        cache.get(second)
        assert [key[0] for key in cache._docs] == [str(second)]
    finally:
        cache.close()
