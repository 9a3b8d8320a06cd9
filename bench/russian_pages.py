"""A Russian development set made from real Russian text: Debian's `manpages-ru` pages, typeset as born-digital PDFs.

    python -m bench.russian_pages OUT_DIR [--pages 8]

Each page is one Russian manual page (`man -l`, plain text), set in DejaVu Serif (which has Cyrillic) as paragraphs
under a heading, with a running header and a folio in the margins: Russian prose with English commands, options
and names inside the lines (`-b, --number-nonblank нумеровать непустые строки`), which is what Russian technical
documents look like. The PDFs' text layers are the references; bench/languages.py rasterises and wears them with
bench.scan_ocr's machinery. Deterministic: the same package gives the same pages.
"""

from __future__ import annotations

import argparse
import gzip
import re
import subprocess
from pathlib import Path

MAN_DIR = Path("/usr/share/man/ru/man1")
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
# Long enough pages to fill most of an A4 page, chosen in name order among the package's user commands.
MIN_CHARS = 1800
PAGE_CHARS = 2600


def man_text(path: Path) -> str:
    """The manual page as plain text (man's own formatter; backspace overstrikes removed)."""
    done = subprocess.run(["man", "-E", "UTF-8", "-l", str(path)], capture_output=True, check=True, timeout=60,
                          env={"MANWIDTH": "200", "LANG": "C.UTF-8", "PATH": "/usr/bin:/bin", "MAN_KEEP_FORMATTING": ""})
    text = done.stdout.decode("utf-8", "replace")
    return re.sub(r".\x08", "", text)


def paragraphs(text: str) -> tuple[str, list[str]]:
    """(title line, paragraphs) of man's output: its first line is the running head, blank lines split paragraphs
    and runs of spaces (justification) are one space."""
    lines = text.splitlines()
    title = " ".join(lines[0].split()) if lines else ""
    body, current = [], []
    for line in lines[1:-1]:  # the last line is man's footer (version, date)
        if line.strip() and not line[0].isspace():  # a section name (ИМЯ, ОПИСАНИЕ) stands alone
            if current:
                body.append(" ".join(current))
                current = []
            body.append(" ".join(line.split()))
        elif line.strip():
            current.append(" ".join(line.split()))
        elif current:
            body.append(" ".join(current))
            current = []
    if current:
        body.append(" ".join(current))
    return title, body


def _cyrillic_share(text: str) -> float:
    letters = [char for char in text if char.isalpha()]
    return sum("\u0400" <= char <= "\u04ff" for char in letters) / max(1, len(letters))


def sources(count: int) -> list[Path]:
    """The first `count` pages (by name) long enough and translated (most letters Cyrillic: some pages of the
    package are still English)."""
    pages, seen = [], set()
    for path in sorted(MAN_DIR.glob("*.1.gz")):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
            source = fh.read()
        # Some names are one page under several names (editor, ex and vim): each text once.
        if len(source) < MIN_CHARS or _cyrillic_share(source) < 0.5 or source in seen:
            continue
        seen.add(source)
        pages.append(path)
        if len(pages) == count:
            break
    return pages


def typeset(path: Path, out: Path, number: int) -> Path:
    """One A4 page: heading, paragraphs (up to PAGE_CHARS), running header and folio."""
    from fpdf import FPDF

    title, body = paragraphs(man_text(path))
    pdf = FPDF(format="A4", unit="pt")
    pdf.set_margins(60, 70, 60)
    pdf.set_auto_page_break(False)
    pdf.add_font("serif", "", str(FONT_DIR / "DejaVuSerif.ttf"))
    pdf.add_font("serif", "B", str(FONT_DIR / "DejaVuSerif-Bold.ttf"))
    pdf.add_page()
    pdf.set_font("serif", "", 8)
    pdf.set_xy(60, 30)
    pdf.cell(0, 10, f"Руководство пользователя Debian — {path.name.split('.')[0]}")
    pdf.set_xy(60, 800)
    pdf.cell(0, 10, str(number), align="C")
    pdf.set_xy(60, 70)
    pdf.set_font("serif", "B", 14)
    pdf.multi_cell(0, 18, title)
    pdf.ln(6)
    pdf.set_font("serif", "", 10.5)
    used = 0
    for paragraph in body:
        if used + len(paragraph) > PAGE_CHARS or pdf.get_y() > 700:
            break
        if paragraph.isupper() and len(paragraph) < 60:  # a section name: ИМЯ, ОПИСАНИЕ
            pdf.set_font("serif", "B", 11)
            pdf.multi_cell(0, 15, paragraph)
            pdf.set_font("serif", "", 10.5)
        else:
            pdf.multi_cell(0, 14, paragraph)
        pdf.ln(4)
        used += len(paragraph)
    target = out / f"ru-{path.name.split('.')[0]}.pdf"
    pdf.output(str(target))
    return target


def build(out: Path, count: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [typeset(path, out, index + 1) for index, path in enumerate(sources(count))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.russian_pages", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--pages", type=int, default=8)
    args = parser.parse_args(argv)
    for path in build(args.out, args.pages):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
