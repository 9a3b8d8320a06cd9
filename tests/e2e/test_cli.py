"""`python -m app convert` as a user runs it, on PDFs the tests generate: the Markdown and JSON it writes say what
the pages say, bad files get one error line each and do not stop the others.

One `auto` run converts the whole corpus (real layout and OCR models, the scanned page at a low DPI) and the
tests below read its outputs; `text` mode runs are fast and need no model."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from rapidfuzz import fuzz

from app.pipeline.pdf_input import NOT_A_PDF
from app.pipeline.result import DocumentResult
from tests import pdfgen

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    returncode: int
    stderr: str
    output: Path

    def markdown(self, stem: str) -> str:
        return (self.output / f"{stem}.md").read_text(encoding="utf-8")

    def document(self, stem: str) -> DocumentResult:
        return DocumentResult.model_validate_json((self.output / f"{stem}.json").read_text(encoding="utf-8"))

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def convert(inputs: list[Path], output: Path, *args: str, cwd: Path, timeout: float = 600) -> Run:
    # A clean environment and a scratch working directory: no developer `.env` or variable leaks in.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "app", "convert", *map(str, inputs), "-o", str(output), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )
    return Run(proc.returncode, proc.stderr, output)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("corpus")
    files = {
        "report": pdfgen.text_pdf(folder / "report.pdf", pages=2),
        "columns": pdfgen.two_column_pdf(folder / "columns.pdf"),
        "table": pdfgen.table_pdf(folder / "table.pdf"),
        "scan": pdfgen.scanned_pdf(folder / "scan.pdf", dpi=150)[0],
        "broken": pdfgen.random_bytes(folder / "broken.pdf"),
    }
    if pdfgen.cjk_font() is not None:
        files["cjk"] = pdfgen.cjk_pdf(folder / "cjk.pdf")
    return files


@pytest.fixture(scope="module")
def auto_run(corpus, tmp_path_factory) -> Run:
    """Every corpus file through `auto` mode in one CLI call, the bad one in the middle."""
    names = ["report", "columns", "broken", "table", "scan"] + (["cjk"] if "cjk" in corpus else [])
    work = tmp_path_factory.mktemp("auto")
    return convert([corpus[n] for n in names], work / "out", "--dpi", "150", "--workers", "2", cwd=work)


def test_a_bad_file_prints_one_error_line_and_the_others_are_converted(auto_run, corpus):
    assert auto_run.returncode == 1
    errors = auto_run.error_lines()
    assert errors == [f"error: {corpus['broken']}: {NOT_A_PDF}"]
    assert not (auto_run.output / "broken.md").exists()
    for stem in ("report", "columns", "table", "scan"):
        assert (auto_run.output / f"{stem}.md").is_file() and (auto_run.output / f"{stem}.json").is_file()
    assert not list(auto_run.output.glob(".*.tmp"))  # no leftovers of the atomic writes


def test_title_is_a_markdown_heading_and_page_furniture_stays_out_of_the_markdown(auto_run):
    markdown = auto_run.markdown("report")
    assert markdown.startswith(f"# {pdfgen.TITLE}\n")
    assert pdfgen.RUNNING_HEADER not in markdown
    assert "Page 1" not in markdown and "Page 2" not in markdown
    for paragraph in pdfgen.PARAGRAPHS:
        assert paragraph in markdown
    document = auto_run.document("report")
    assert document.page_count == 2 and [p.page for p in document.pages] == [1, 2]
    assert all(p.source == "text" for p in document.pages)
    for number, page in enumerate(document.pages, start=1):
        furniture = {b.text: b.type for b in page.blocks if b.type in ("header", "footer", "page_number")}
        assert furniture.get(pdfgen.RUNNING_HEADER) == "header"
        assert furniture.get(pdfgen.page_number_text(number)) in ("footer", "page_number")
        assert page.width == 612 and page.height == 792
        assert {"textlayer", "render", "layout", "assemble"} <= set(page.timings)
    assert document.markdown == markdown
    assert set(document.timings) >= {"textlayer", "layout", "total"}


def test_two_columns_are_read_left_column_first(auto_run):
    markdown = auto_run.markdown("columns")
    last_left = markdown.rindex("Stored apples keep for months in cold rooms.")
    first_right = markdown.index("Zebras live on the open savanna of Africa.")
    assert last_left < first_right
    assert markdown.index("Fruit and Animals") < markdown.index("Apples grow")


def test_ruled_table_comes_out_as_a_markdown_table_with_its_caption(auto_run):
    markdown = auto_run.markdown("table")
    for row in pdfgen.TABLE_ROWS:
        assert "| " + " | ".join(row) + " |" in markdown
    assert pdfgen.TABLE_CAPTION in markdown
    blocks = auto_run.document("table").pages[0].blocks
    table = [b for b in blocks if b.type == "table"]
    assert len(table) == 1 and table[0].html and "<td>1200</td>" in table[0].html


def test_scanned_page_is_read_by_ocr(auto_run):
    document = auto_run.document("scan")
    assert document.pages[0].source == "ocr"
    got = " ".join(auto_run.markdown("scan").split())
    assert fuzz.ratio(got, " ".join(pdfgen.SCAN_LINES)) >= 95
    assert "ocr" in document.timings


def test_cjk_page_keeps_its_characters(auto_run, corpus):
    if "cjk" not in corpus:
        pytest.skip("no CJK font installed (apt: fonts-wqy-microhei)")
    markdown = auto_run.markdown("cjk")
    assert pdfgen.CJK_TEXT[0] in markdown
    assert pdfgen.CJK_TEXT[1].rstrip("。") in markdown.replace(" ", "")


def test_text_mode_converts_the_selected_pages_only(tmp_path):
    source = pdfgen.text_pdf(tmp_path / "report.pdf", pages=3)
    run = convert([source], tmp_path / "out", "--mode", "text", "--pages", "2-3", "-q", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip() == ""
    document = run.document("report")
    assert document.page_count == 3 and [p.page for p in document.pages] == [2, 3]
    assert all(p.source == "text" for p in document.pages)
    markdown = run.markdown("report")
    assert "This is page 2 of the report." in markdown and "This is page 3 of the report." in markdown
    assert "This is page 1" not in markdown and pdfgen.TITLE not in markdown
    for heading in pdfgen.SECTION_HEADINGS:
        assert f"# {heading}\n" in markdown  # bold, larger text becomes a heading without any model
    assert set(document.pages[0].timings) == {"textlayer", "assemble"}  # no render, no model in text mode


def test_progress_bars_go_to_stderr(tmp_path):
    source = pdfgen.text_pdf(tmp_path / "report.pdf", pages=2)
    run = convert([source], tmp_path / "out", "--mode", "text", cwd=tmp_path)
    assert run.returncode == 0
    assert "report.pdf" in run.stderr and "2/2" in run.stderr


def test_every_bad_input_gets_its_own_typed_message(tmp_path):
    good = pdfgen.text_pdf(tmp_path / "good.pdf")
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    bad = {
        empty: "the file is empty",
        pdfgen.truncated_pdf(good, tmp_path / "truncated.pdf"): "damaged or truncated",
        pdfgen.random_bytes(tmp_path / "random.pdf"): "not a PDF",
        pdfgen.encrypted_pdf(tmp_path / "encrypted.pdf"): "encrypted",
        pdfgen.zero_page_pdf(tmp_path / "zero.pdf"): "no pages",
        pdfgen.huge_image_pdf(tmp_path / "huge_image.pdf"): "30000x30000 image",
        tmp_path / "missing.pdf": "cannot read",
    }
    run = convert([*bad, good], tmp_path / "out", "--mode", "text", "-q", cwd=tmp_path)
    assert run.returncode == 1
    errors = run.error_lines()
    assert len(errors) == len(bad), run.stderr
    for (path, message), line in zip(bad.items(), errors, strict=True):
        assert line.startswith(f"error: {path}: ") and message in line
    assert (run.output / "good.md").is_file()
    assert sorted(p.name for p in run.output.iterdir()) == ["good.json", "good.md"]


def test_huge_page_is_converted_at_a_reduced_scale(tmp_path):
    source = pdfgen.huge_page_pdf(tmp_path / "huge_page.pdf")
    run = convert([source], tmp_path / "out", "--mode", "text", "-q", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    page = run.document("huge_page").pages[0]
    assert (page.width, page.height) == (14400, 14400)
    assert "A very large page" in " ".join(b.text for b in page.blocks)


def test_bad_arguments_exit_2(tmp_path):
    source = pdfgen.text_pdf(tmp_path / "report.pdf")
    run = convert([source], tmp_path / "out", "--dpi", "5000", cwd=tmp_path)
    assert run.returncode == 2 and "--dpi" in run.stderr
    run = convert([source], tmp_path / "out", "--pages", "7", "--mode", "text", cwd=tmp_path)
    assert run.returncode == 1 and "past the last page" in run.stderr


def test_same_stem_from_two_folders_gets_two_outputs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = pdfgen.text_pdf(tmp_path / "a" / "doc.pdf", pages=1)
    second = pdfgen.text_pdf(tmp_path / "b" / "doc.pdf", pages=2)
    run = convert([first, second], tmp_path / "out", "--mode", "text", "-q", cwd=tmp_path)
    assert run.returncode == 0
    assert run.document("doc").page_count == 1 and run.document("doc-2").page_count == 2


def test_images_in_and_out_through_the_cli(tmp_path):
    import re

    from PIL import Image

    figures = pdfgen.figure_pdf(tmp_path / "my figures.pdf", pages=2)
    scan = pdfgen.scan_image(dpi=200)
    tiff = tmp_path / "pages.tif"
    scan.save(tiff, save_all=True, append_images=[scan.rotate(0)], dpi=(200, 200))
    bomb = pdfgen.png_bomb(tmp_path / "bomb.png")
    run = convert([figures, tiff, bomb], tmp_path / "out", "--workers", "1", "-q", cwd=tmp_path)
    assert run.returncode == 1  # the bomb
    assert run.error_lines() == [f"error: {bomb}: the image is 12000x12000 (144 M pixels); this service accepts at "
                                 "most 40 M pixels per page (MAX_PAGE_PIXELS)"]

    markdown = run.markdown("my figures")
    links = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", markdown)
    assert links == [(pdfgen.FIGURE_CAPTIONS[0], "my%20figures_images/p1-fig1.png"),
                     (pdfgen.FIGURE_CAPTIONS[1], "my%20figures_images/p2-fig1.jpg")]
    image_dir = run.output / "my figures_images"
    assert sorted(p.name for p in image_dir.iterdir()) == ["p1-fig1.png", "p2-fig1.jpg"]
    blocks = [b.image for p in run.document("my figures").pages for b in p.blocks if b.image]
    assert blocks == ["my figures_images/p1-fig1.png", "my figures_images/p2-fig1.jpg"]
    for path in blocks:
        with Image.open(run.output / path) as image:
            assert image.width > 600  # a 468 pt wide figure at 150 DPI

    pages = run.document("pages").pages
    assert [(p.page, p.source) for p in pages] == [(1, "ocr"), (2, "ocr")]
    assert fuzz.partial_ratio(pdfgen.SCAN_LINES[1], run.markdown("pages")) > 85
    assert sorted(p.name for p in run.output.iterdir()) == [
        "my figures.json", "my figures.md", "my figures_images", "pages.json", "pages.md"]

    embedded = convert([figures], tmp_path / "embed", "--images", "embed", "--workers", "1", "-q", cwd=tmp_path)
    assert embedded.returncode == 0, embedded.stderr
    assert embedded.markdown("my figures").count("](data:image/") == 2
    assert sorted(p.name for p in embedded.output.iterdir()) == ["my figures.json", "my figures.md"]


def test_a_folder_of_scans_turned_any_way_is_read_upright(tmp_path):
    """Several one-page scans in one call (several in flight): each turned page says its turn in the JSON, its
    text is read, and the error-free run exits 0."""
    import pypdfium2 as pdfium

    source, _ = pdfgen.scanned_pdf(tmp_path / "scan.pdf", dpi=150)
    doc = pdfium.PdfDocument(str(source))
    try:
        image = doc[0].render(scale=150 / 72).to_pil().convert("RGB")
    finally:
        doc.close()
    inputs = []
    for angle in (0, 90, 180, 270):
        path = tmp_path / f"turned{angle}.pdf"
        image.rotate(-angle, expand=True).save(path, "PDF", resolution=150.0)
        inputs.append(path)
    run = convert(inputs, tmp_path / "out", "--dpi", "150", "-q", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    for angle in (0, 90, 180, 270):
        page = run.document(f"turned{angle}").pages[0]
        assert page.rotation == angle and page.source == "ocr"
        assert fuzz.partial_ratio(pdfgen.SCAN_LINES[1], run.markdown(f"turned{angle}")) >= 90


def test_a_language_that_is_not_installed_exits_2_naming_the_installed_ones(tmp_path):
    source = pdfgen.text_pdf(tmp_path / "report.pdf")
    run = convert([source], tmp_path / "out", "--lang", "ru+xx", cwd=tmp_path)
    assert run.returncode == 2
    assert "--lang: 'xx' is not installed; installed: " in run.stderr and "ru" in run.stderr


def test_lang_ru_reads_a_russian_scan(tmp_path):
    source = pdfgen.scanned_lines_pdf(tmp_path / "dogovor.pdf", pdfgen.RUSSIAN_LINES)
    run = convert([source], tmp_path / "out", "--lang", "ru", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    markdown = (tmp_path / "out" / "dogovor.md").read_text(encoding="utf-8")
    assert "Договор поставки" in markdown and "покупателю" in markdown, markdown
