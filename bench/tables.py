"""Born-digital tables: row recall and adjacency F1 on ../shared/eval/tables-dev, ours beside the text-layer peers.

    python -m bench.tables                 # ours (auto, text) + every peer that imports
    python -m bench.tables --tools ours-auto,pymupdf --verbose

Each PDF's page 1 goes through every tool in this process (ours: `process_page` with the layout model loaded once,
warm-up excluded). Expected cells: `NAME.csv` beside each PDF (tabula-java's test expectations). Figures, per tool:
- `row_recall`: the share of expected rows whose non-empty cells, in order, are exactly the non-empty cells of one
  row of some output table;
- adjacency (ICDAR 2013 table competition): each non-empty cell with its nearest non-empty neighbour to the right
  and below, as (cell, neighbour, direction) triples. Each expected table is compared with the output table that
  shares most triples with it (so other tables on the page neither help nor hurt); `precision`, `recall`, `f1`
  are pooled over all files;
- `s_per_page`: mean wall seconds per page (ours: the page's own processing, layout model included in `auto`),
  and `cpu_s_per_page`, this process's CPU seconds (all its threads), steadier on a shared machine.

Cells are compared after NFKC, case folding and dropping everything but letters and digits. A CSV holding two
tables (tabula writes each with its own width) is split where the row width changes. A right-to-left table may
come out in either column order (tabula writes visual order, we write reading order): each output table is scored
as it is and mirrored, and the better counts, for every tool alike.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import EVAL_DIR, emit, progress

TABLES_DIR = EVAL_DIR.parent / "tables-dev"
Grid = list[list[str]]  # rows of cell texts; a spanning cell repeats its text in every position it covers
_NOT_WORD = re.compile(r"[\W_]+")


class Cell(str):
    """A spanning cell's text: the same object in every grid position it covers (plain strings may be shared by
    chance, so only this type's identity means "the same cell")."""


def _same(a: str, b: str) -> bool:
    return isinstance(a, Cell) and a is b


# --- scoring ----------------------------------------------------------------------------------------------------
def norm(text: str | None) -> str:
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text or "").casefold())


def read_expected(path: Path) -> list[Grid]:
    """The expected tables of one CSV: rows split into tables where the number of fields changes."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    tables: list[Grid] = []
    for row in rows:
        if not row:
            continue
        if not tables or len(row) != len(tables[-1][-1]):
            tables.append([])
        tables[-1].append(row)
    return tables


def row_cells(row: list[str]) -> list[str]:
    """A row's non-empty normalised cells in order, a spanning cell once."""
    out: list[str] = []
    prev = None
    for cell in row:
        if not _same(cell, prev) and (n := norm(cell)):
            out.append(n)
        prev = cell
    return out


def triples(grid: Grid) -> Counter:
    """(cell, right or lower neighbour, direction) for each non-empty cell: the nearest non-empty cell that is
    not the same (spanning) cell."""
    out: Counter = Counter()
    n_rows = len(grid)
    for r, row in enumerate(grid):
        for c, cell in enumerate(row):
            own = norm(cell)
            if not own:
                continue
            if c > 0 and _same(row[c - 1], cell):
                continue  # a spanning cell counts once, from its first position
            for dr, dc, name in ((0, 1, "right"), (1, 0, "below")):
                rr, cc = r + dr, c + dc
                while rr < n_rows and cc < len(grid[rr]):
                    other = grid[rr][cc]
                    if not _same(other, cell) and (n := norm(other)):
                        out[(own, n, name)] += 1
                        break
                    rr, cc = rr + dr, cc + dc
    return out


def mirrored(grid: Grid) -> Grid:
    width = max((len(r) for r in grid), default=0)
    return [list(reversed(r + [""] * (width - len(r)))) for r in grid]


def score_page(expected: list[Grid], found: list[Grid]) -> dict[str, int]:
    """Counts for one page: expected rows and the ones found; adjacency triples expected, output, matched."""
    candidates = [g for grid in found for g in (grid, mirrored(grid))]
    out_rows = {tuple(cells) for grid in candidates for row in grid if (cells := row_cells(row))}
    counts = {"rows": 0, "rows_found": 0, "expected": 0, "output": 0, "matched": 0}
    cand_triples = [triples(g) for g in candidates]
    for table in expected:
        for row in table:
            cells = row_cells(row)
            if cells:
                counts["rows"] += 1
                counts["rows_found"] += tuple(cells) in out_rows
        want = triples(table)
        counts["expected"] += sum(want.values())
        best = max(cand_triples, key=lambda got: (sum((got & want).values()), -sum(got.values())), default=None)
        if best is not None:
            counts["output"] += sum(best.values())
            counts["matched"] += sum((best & want).values())
    return counts


def figures(counts: dict[str, int]) -> dict[str, float]:
    precision = counts["matched"] / counts["output"] if counts["output"] else 0.0
    recall = counts["matched"] / counts["expected"] if counts["expected"] else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"row_recall": round(counts["rows_found"] / max(counts["rows"], 1), 4), "adjacency_f1": round(f1, 4),
            "precision": round(precision, 4), "recall": round(recall, 4)}


# --- reading tables out of each tool's output -------------------------------------------------------------------
def html_grids(html: str) -> list[Grid]:
    from bench.facts import parse_html_tables

    grids = []
    for table in parse_html_tables(html):
        by_id: dict[Any, str] = {}
        grid = []
        for r, row in enumerate(table.texts):
            cells = []
            for c, text in enumerate(row):
                # One str object per spanning cell, so that scoring sees it as one cell.
                cells.append(by_id.setdefault(table.ids[r][c], Cell(text)))
            grid.append(cells)
        grids.append(grid)
    return grids


def markdown_grids(markdown: str) -> list[Grid]:
    """Pipe tables (and HTML tables) in Markdown."""
    grids: list[Grid] = []
    current: Grid = []
    for line in [*markdown.splitlines(), ""]:
        s = line.strip()
        if s.startswith("|") and s.endswith("|") and len(s) > 1:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", s[1:-1])]
            if not all(re.fullmatch(r":?-{2,}:?|", c) for c in cells):
                current.append([c.replace("\\|", "|").replace("<br>", " ") for c in cells])
            continue
        if current:
            grids.append(current)
            current = []
    if "<table" in markdown:
        grids += html_grids(markdown)
    return grids


# --- tools ------------------------------------------------------------------------------------------------------
def _ours(mode: str) -> Callable[[Path], list[Grid]]:
    import pypdfium2 as pdfium

    from app.pipeline.options import ConvertOptions
    from app.pipeline.page import Engines, process_page
    from bench.common import bench_settings

    settings = bench_settings()
    engines = Engines(settings)
    if mode != "text":
        engines.layout.warmup()

    def run(path: Path) -> list[Grid]:
        doc = pdfium.PdfDocument(str(path))
        try:
            page = process_page(doc, 0, ConvertOptions(mode=mode), engines, settings)
        finally:
            doc.close()
        return [g for b in page.blocks if b.type == "table" and b.html for g in html_grids(b.html)]

    return run


def _pymupdf() -> Callable[[Path], list[Grid]]:
    import pymupdf

    def run(path: Path) -> list[Grid]:
        with pymupdf.open(path) as doc:
            return [[[c or "" for c in row] for row in t.extract()] for t in doc[0].find_tables().tables]

    return run


def _pymupdf4llm() -> Callable[[Path], list[Grid]]:
    import pymupdf4llm

    def run(path: Path) -> list[Grid]:
        return markdown_grids(pymupdf4llm.to_markdown(str(path), pages=[0], show_progress=False))

    return run


def _pdfplumber() -> Callable[[Path], list[Grid]]:
    import pdfplumber

    def run(path: Path) -> list[Grid]:
        with pdfplumber.open(path) as pdf:
            return [[[c or "" for c in row] for row in t] for t in pdf.pages[0].extract_tables()]

    return run


def _camelot(flavor: str) -> Callable[[Path], list[Grid]]:
    import camelot

    def run(path: Path) -> list[Grid]:
        tables = camelot.read_pdf(str(path), pages="1", flavor=flavor)
        return [[[str(c) for c in row] for row in t.df.values.tolist()] for t in tables]

    return run


TOOLS: dict[str, Callable[[], Callable[[Path], list[Grid]]]] = {
    "ours-auto": lambda: _ours("auto"),
    "ours-text": lambda: _ours("text"),
    "pymupdf": _pymupdf,
    "pymupdf4llm": _pymupdf4llm,
    "pdfplumber": _pdfplumber,
    "camelot-lattice": lambda: _camelot("lattice"),
    "camelot-stream": lambda: _camelot("stream"),
}


def run_tool(name: str, pdfs: list[Path], verbose: bool) -> dict[str, Any]:
    try:
        with contextlib.redirect_stdout(sys.stderr):  # some peers print to stdout; it carries only the JSON
            runner = TOOLS[name]()
    except Exception as exc:  # a peer that does not install or import here is reported, not fatal
        return {"skipped": f"{type(exc).__name__}: {str(exc)[:160]}"}
    total = {"rows": 0, "rows_found": 0, "expected": 0, "output": 0, "matched": 0}
    per_file, seconds, cpu, errors = {}, 0.0, 0.0, []
    for pdf in pdfs:
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            with contextlib.redirect_stdout(sys.stderr):
                grids = runner(pdf)
        except Exception as exc:
            errors.append(f"{pdf.name}: {type(exc).__name__}: {str(exc)[:120]}")
            grids = []
        seconds += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
        counts = score_page(read_expected(pdf.with_suffix(".csv")), grids)
        for k, v in counts.items():
            total[k] += v
        per_file[pdf.stem] = {**figures(counts), "tables": len(grids)}
    result: dict[str, Any] = {**figures(total), "s_per_page": round(seconds / max(len(pdfs), 1), 4),
                              "cpu_s_per_page": round(cpu / max(len(pdfs), 1), 4)}
    if errors:
        result["errors"] = errors
    if verbose:
        result["files"] = per_file
    progress("%s: %s", name, {k: v for k, v in result.items() if k != "files"})
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated, from: " + ", ".join(TOOLS))
    parser.add_argument("--dir", type=Path, default=TABLES_DIR)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="three files")
    parser.add_argument("--verbose", action="store_true", help="figures per file too")
    args = parser.parse_args(argv)
    pdfs = sorted(p for p in args.dir.glob("*.pdf") if p.with_suffix(".csv").exists())
    pdfs = pdfs[: 3 if args.quick else args.limit]
    names = [t for t in args.tools.split(",") if t]
    unknown = [t for t in names if t not in TOOLS]
    if unknown:
        parser.error(f"unknown tools: {unknown}")
    results = {name: run_tool(name, pdfs, args.verbose) for name in names}
    ours = {k: v for k, v in results.items() if k.startswith("ours") and "skipped" not in v}
    peers = {k: v for k, v in results.items() if not k.startswith("ours") and "skipped" not in v}
    ratios = {
        f"{o}/{p}": {key: round(ov[key] / pv[key], 3) if pv[key] else None
                     for key in ("row_recall", "adjacency_f1", "s_per_page", "cpu_s_per_page")}
        for o, ov in ours.items() for p, pv in peers.items()
    }
    best = {key: max((pv[key] for pv in peers.values()), default=0.0) for key in ("row_recall", "adjacency_f1")}
    targets = {
        o: {"row_recall_above_every_peer": ov["row_recall"] > best["row_recall"],
            "adjacency_f1_above_every_peer": ov["adjacency_f1"] > best["adjacency_f1"],
            "precision_at_least_0.9": ov["precision"] >= 0.9}
        for o, ov in ours.items()
    }
    emit({"dir": str(args.dir), "files": len(pdfs), "tools": results, "ratios": ratios, "targets": targets})


if __name__ == "__main__":
    main()
