"""Checkers for olmOCR-Bench style facts about one page's output, shared by bench/olmocr.py and the tests.

A fact is one line of `dataset.jsonl` (`present`, `absent`, `order`, `table`, `math`). `check_fact(fact, page)`
answers `Verdict(passed, reason)` for a `PageOutput` (the page's Markdown plus the HTML of its table blocks).

Matching rules (ours, written for this appliance; olmOCR's own checker is looser in places, see bench/README.md):
- text is normalised first: Unicode NFKC, Markdown emphasis/escapes/heading marks dropped, quotes and dashes unified,
  white space collapsed; `case_sensitive` defaults to true;
- `max_diffs` is a Levenshtein budget against the best-matching substring of the output (exact, via a bit-parallel
  search), so `present` passes when some substring is within `max_diffs` edits, `absent` when none is;
- `first_n` / `last_n` restrict the search to the first / last characters of the normalised output;
- `order` passes when some match of `before` starts before some match of `after`;
- `table` needs a cell equal to `cell` (within `max_diffs`) in a Markdown or HTML table whose neighbours match;
- `math` compares normalised LaTeX against `$...$`, `$$...$$`, `\\(...\\)`, `\\[...\\]` spans, then falls back to the
  formula linearised to Unicode text (the CPU profile has no LaTeX recogniser; the reason says which route passed).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from rapidfuzz.distance import Levenshtein

FACT_TYPES = ("present", "absent", "order", "table", "math")

# Characters that mean the same thing in running text; the keys are what typesetting and OCR produce.
_CHAR_MAP = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'", "\u00b4": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
        "\u00ad": "",  # soft hyphen: invisible in print
        "\uff3f": "_",
    }
)
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~])")
_MD_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_MD_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])")
_MD_ITALIC_UNDER = re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)")
_PARKED = re.compile("[\U000F0000-\U000F00FF]")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """The comparison form of output and fact text alike (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text)
    text = _BR.sub(" ", text)
    text = _MD_HEADING.sub("", text)
    # Escaped characters are literal: park them in the private-use area so emphasis stripping leaves them alone.
    text = _MD_ESCAPE.sub(lambda m: chr(0xF0000 + ord(m.group(1))), text)
    text = _MD_BOLD.sub(r"\2", text)
    text = _MD_ITALIC_STAR.sub(r"\1", text)
    text = _MD_ITALIC_UNDER.sub(r"\1", text)
    text = _PARKED.sub(lambda m: chr(ord(m.group(0)) - 0xF0000), text)
    text = text.translate(_CHAR_MAP)
    # TeX typesets a double quote as two single ones (`` and ''); text layers often keep them as two characters.
    text = text.replace("''", '"')
    return _WS.sub(" ", text).strip()


# --- approximate substring search --------------------------------------------------------------------------------
def _match_end_distances(needle: str, haystack: str) -> list[int]:
    """For every end position j in `haystack`, the least edit distance between `needle` and a substring ending at j.

    Myers' bit-parallel algorithm with Python integers as bit vectors: O(len(haystack)) big-integer operations,
    exact (unlike a fixed-width window ratio), fast enough for whole pages."""
    m = len(needle)
    if m == 0:
        return [0] * len(haystack)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    peq: dict[str, int] = {}
    for i, ch in enumerate(needle):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    pv, mv, score = mask, 0, m
    out = []
    for ch in haystack:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) & mask) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        # No carry-in at bit 0: a match may start anywhere in the haystack for free.
        ph = (ph << 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
        out.append(score)
    return out


def best_distance(needle: str, haystack: str) -> int:
    """Least Levenshtein distance between `needle` and any substring of `haystack` (len(needle) when empty)."""
    if not needle:
        return 0
    if needle in haystack:
        return 0
    distances = _match_end_distances(needle, haystack)
    return min(distances, default=len(needle))


def match_starts(needle: str, haystack: str, max_diffs: int) -> list[int]:
    """Start offsets in `haystack` of substrings within `max_diffs` edits of `needle` (searched right to left)."""
    if not needle:
        return []
    n = len(haystack)
    reversed_distances = _match_end_distances(needle[::-1], haystack[::-1])
    return sorted(n - 1 - j for j, d in enumerate(reversed_distances) if d <= max_diffs)


# --- the output of one page --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PageOutput:
    """What the checkers look at: the page Markdown (furniture already left out) and the HTML of table blocks."""

    markdown: str
    tables_html: tuple[str, ...] = ()

    @classmethod
    def from_page(cls, page: Any) -> PageOutput:
        """From an `app.pipeline.result.PageResult` (or anything with `.markdown` and `.blocks`)."""
        html = tuple(b.html for b in getattr(page, "blocks", []) if getattr(b, "html", None))
        return cls(markdown=page.markdown, tables_html=html)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str = ""


def _fact_text_and_haystack(fact: Mapping[str, Any], key: str, page: PageOutput) -> tuple[str, str]:
    needle = normalize_text(str(fact[key]))
    haystack = normalize_text(page.markdown)
    if not fact.get("case_sensitive", True):
        needle, haystack = needle.lower(), haystack.lower()
    first_n, last_n = fact.get("first_n"), fact.get("last_n")
    if first_n and last_n:
        haystack = haystack[:first_n] + haystack[-last_n:]
    elif first_n:
        haystack = haystack[:first_n]
    elif last_n:
        haystack = haystack[-last_n:]
    return needle, haystack


def check_present(fact: Mapping[str, Any], page: PageOutput) -> Verdict:
    needle, haystack = _fact_text_and_haystack(fact, "text", page)
    budget = int(fact.get("max_diffs", 0))
    distance = best_distance(needle, haystack)
    if distance <= budget:
        return Verdict(True)
    return Verdict(False, f"best match is {distance} edits away (allowed {budget}): {needle[:50]!r}")


def check_absent(fact: Mapping[str, Any], page: PageOutput) -> Verdict:
    needle, haystack = _fact_text_and_haystack(fact, "text", page)
    budget = int(fact.get("max_diffs", 0))
    distance = best_distance(needle, haystack)
    if distance > budget:
        return Verdict(True)
    return Verdict(False, f"found within {distance} edits (allowed {budget}): {needle[:50]!r}")


def check_order(fact: Mapping[str, Any], page: PageOutput) -> Verdict:
    case_sensitive = fact.get("case_sensitive", True)
    haystack = normalize_text(page.markdown)
    before, after = normalize_text(str(fact["before"])), normalize_text(str(fact["after"]))
    if not case_sensitive:
        haystack, before, after = haystack.lower(), before.lower(), after.lower()
    budget = int(fact.get("max_diffs", 0))
    before_starts = match_starts(before, haystack, budget)
    if not before_starts:
        return Verdict(False, f"'before' not found: {before[:50]!r}")
    after_starts = match_starts(after, haystack, budget)
    if not after_starts:
        return Verdict(False, f"'after' not found: {after[:50]!r}")
    if before_starts[0] < after_starts[-1]:
        return Verdict(True)
    return Verdict(False, f"'after' ({after[:30]!r}) comes before 'before' ({before[:30]!r})")


# --- tables ------------------------------------------------------------------------------------------------------
@dataclass
class Table:
    """A table as a grid of positions; a spanning cell occupies several positions under one cell id."""

    texts: list[list[str]] = field(default_factory=list)
    ids: list[list[int]] = field(default_factory=list)
    header_rows: set[int] = field(default_factory=set)

    @property
    def n_rows(self) -> int:
        return len(self.texts)

    @property
    def n_cols(self) -> int:
        return max((len(r) for r in self.texts), default=0)

    def at(self, r: int, c: int) -> tuple[int, str] | None:
        if 0 <= r < len(self.texts) and 0 <= c < len(self.texts[r]):
            return self.ids[r][c], self.texts[r][c]
        return None


def _grid_from_rows(rows: list[list[tuple[str, int, int]]], header_rows: set[int]) -> Table:
    """Lay out rows of (text, rowspan, colspan) cells on a grid, honouring spans."""
    occupied: dict[tuple[int, int], tuple[int, str]] = {}
    next_id = 0
    for r, row in enumerate(rows):
        c = 0
        for text, rowspan, colspan in row:
            while (r, c) in occupied:
                c += 1
            for dr in range(max(1, rowspan)):
                for dc in range(max(1, colspan)):
                    occupied[(r + dr, c + dc)] = (next_id, text)
            next_id += 1
            c += max(1, colspan)
    if not occupied:
        return Table()
    n_rows = max(r for r, _ in occupied) + 1
    n_cols = max(c for _, c in occupied) + 1
    table = Table(header_rows=set(header_rows))
    for r in range(n_rows):
        ids, texts = [], []
        for c in range(n_cols):
            cell_id, text = occupied.get((r, c), (-1 - r * n_cols - c, ""))  # unique id for holes
            ids.append(cell_id)
            texts.append(text)
        table.ids.append(ids)
        table.texts.append(texts)
    return table


_MD_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def _split_md_row(line: str) -> list[str]:
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    cells = re.split(r"(?<!\\)\|", body)
    return [cell.strip().replace("\\|", "|") for cell in cells]


def parse_markdown_tables(markdown: str) -> list[Table]:
    """GitHub-style pipe tables: a header row, a `---` separator row, then body rows."""
    lines = markdown.splitlines()
    tables: list[Table] = []
    i = 0
    while i < len(lines) - 1:
        if "|" in lines[i] and _MD_SEPARATOR.match(lines[i + 1]):
            rows = [_split_md_row(lines[i])]
            j = i + 2
            while j < len(lines) and "|" in lines[j] and lines[j].strip():
                rows.append(_split_md_row(lines[j]))
                j += 1
            tables.append(_grid_from_rows([[(t, 1, 1) for t in row] for row in rows], {0}))
            i = j
        else:
            i += 1
    return tables


class _HtmlTableParser(HTMLParser):
    """Collects every <table> (nested ones separately) as rows of (text, rowspan, colspan)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[Table] = []
        self._stack: list[dict[str, Any]] = []  # open tables

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._stack.append({"rows": [], "row": None, "cell": None, "header_rows": set(), "in_thead": False})
            return
        if not self._stack:
            return
        t = self._stack[-1]
        if tag == "thead":
            t["in_thead"] = True
        elif tag == "tr":
            self._close_row(t)
            t["row"] = []
            if t["in_thead"]:
                t["header_rows"].add(len(t["rows"]))
        elif tag in ("td", "th"):
            self._close_cell(t)
            if t["row"] is None:
                t["row"] = []
            a = dict(attrs)
            t["cell"] = {"parts": [], "rowspan": _int(a.get("rowspan")), "colspan": _int(a.get("colspan"))}
            if tag == "th":
                t["header_rows"].add(len(t["rows"]))
        elif tag == "br" and t["cell"] is not None:
            t["cell"]["parts"].append(" ")

    def handle_endtag(self, tag: str) -> None:
        if not self._stack:
            return
        t = self._stack[-1]
        if tag == "table":
            self._close_row(t)
            self._stack.pop()
            self.tables.append(_grid_from_rows(t["rows"], t["header_rows"]))
        elif tag == "thead":
            t["in_thead"] = False
        elif tag == "tr":
            self._close_row(t)
        elif tag in ("td", "th"):
            self._close_cell(t)

    def handle_data(self, data: str) -> None:
        if self._stack and self._stack[-1]["cell"] is not None:
            self._stack[-1]["cell"]["parts"].append(data)

    @staticmethod
    def _close_cell(t: dict[str, Any]) -> None:
        cell = t["cell"]
        if cell is not None:
            text = _WS.sub(" ", "".join(cell["parts"])).strip()
            t["row"].append((text, cell["rowspan"], cell["colspan"]))
            t["cell"] = None

    def _close_row(self, t: dict[str, Any]) -> None:
        self._close_cell(t)
        if t["row"] is not None:
            t["rows"].append(t["row"])
            t["row"] = None


def _int(value: str | None) -> int:
    try:
        return max(1, int(value)) if value else 1
    except ValueError:
        return 1


def parse_html_tables(html: str) -> list[Table]:
    parser = _HtmlTableParser()
    parser.feed(html)
    parser.close()
    return parser.tables


def _cell_matches(expected: str, actual: str, budget: int, case_sensitive: bool) -> bool:
    a, b = normalize_text(expected), normalize_text(actual)
    if not case_sensitive:
        a, b = a.lower(), b.lower()
    return Levenshtein.distance(a, b, score_cutoff=budget) <= budget


def _neighbour(table: Table, r: int, c: int, dr: int, dc: int) -> str | None:
    """The next cell from (r, c) in a direction, skipping positions of the same spanning cell."""
    own = table.at(r, c)
    if own is None:
        return None
    rr, cc = r + dr, c + dc
    while (hit := table.at(rr, cc)) is not None:
        if hit[0] != own[0]:
            return hit[1]
        rr, cc = rr + dr, cc + dc
    return None


def _top_headings(table: Table, r: int, c: int) -> list[str]:
    """Cells that can head column c above row r: header rows (first row, <th>/<thead> rows) and the topmost cell."""
    own_id = table.ids[r][c]
    found = []
    for rr in range(r):
        cell_id, text = table.ids[rr][c], table.texts[rr][c]
        if cell_id != own_id and text and (rr in table.header_rows or not found):
            found.append(text)
    return found


def _left_headings(table: Table, r: int, c: int) -> list[str]:
    """Cells that can head row r left of column c: the first column and the leftmost non-empty cell."""
    own_id = table.ids[r][c]
    found = []
    for cc in range(c):
        cell_id, text = table.ids[r][cc], table.texts[r][cc]
        if cell_id != own_id and text and (cc == 0 or not found):
            found.append(text)
    return found


_DIRECTIONS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


def check_table(fact: Mapping[str, Any], page: PageOutput) -> Verdict:
    tables = parse_markdown_tables(page.markdown)
    for html in (*page.tables_html, page.markdown):
        if "<table" in html.lower():
            tables.extend(parse_html_tables(html))
    if not tables:
        return Verdict(False, "no table in the output")
    budget = int(fact.get("max_diffs", 0))
    case_sensitive = fact.get("case_sensitive", True)
    target = str(fact["cell"])
    seen_cell = False
    problems: list[str] = []
    for table in tables:
        for r in range(table.n_rows):
            for c in range(len(table.texts[r])):
                if not _cell_matches(target, table.texts[r][c], budget, case_sensitive):
                    continue
                seen_cell = True
                missing = []
                for key, (dr, dc) in _DIRECTIONS.items():
                    if fact.get(key):
                        got = _neighbour(table, r, c, dr, dc)
                        if got is None or not _cell_matches(fact[key], got, budget, case_sensitive):
                            missing.append(f"{key}={got!r}")
                for key, finder in (("top_heading", _top_headings), ("left_heading", _left_headings)):
                    if fact.get(key):
                        options = finder(table, r, c)
                        if not any(_cell_matches(fact[key], o, budget, case_sensitive) for o in options):
                            missing.append(f"{key} not in {[o[:20] for o in options[:4]]}")
                if not missing:
                    return Verdict(True)
                problems.append(", ".join(missing))
    if not seen_cell:
        return Verdict(False, f"no cell equal to {target[:40]!r} in {len(tables)} table(s)")
    return Verdict(False, f"cell {target[:30]!r} found but neighbours differ: {'; '.join(problems[:3])}")


# --- math --------------------------------------------------------------------------------------------------------
_MATH_SPANS = (
    re.compile(r"\$\$(.+?)\$\$", re.DOTALL),
    re.compile(r"\\\[(.+?)\\\]", re.DOTALL),
    re.compile(r"\\\((.+?)\\\)", re.DOTALL),
    re.compile(r"(?<![\\$])\$(?!\$)(.+?)(?<![\\$])\$", re.DOTALL),
)
_LATEX_NOISE = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])|\\[,;:! ]|\\q?quad(?![A-Za-z])|"
                          r"\\displaystyle(?![A-Za-z])|\\textstyle(?![A-Za-z])")
_LATEX_TEXTLIKE = re.compile(r"\\(?:operatorname|mathrm|text|textrm|mathit|mathbf|boldsymbol|bm|mathsf)\s*\{([^{}]*)\}")
_SINGLE_BRACED = re.compile(r"([\^_])\{(\\[A-Za-z]+|[^{}\\])\}")


def _strip_latex(latex: str) -> str:
    """Delimiters, spacing commands, sizing and font wrappers removed; white space kept (it ends commands)."""
    s = latex.strip()
    for opener, closer in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if s.startswith(opener) and s.endswith(closer) and len(s) >= len(opener) + len(closer):
            s = s[len(opener): len(s) - len(closer)]
            break
    s = _LATEX_NOISE.sub(" ", s)
    s = re.sub(r"\^\{?\\prime\}?", "'", s)
    previous = None
    while previous != s:
        previous = s
        s = _LATEX_TEXTLIKE.sub(r" \1 ", s)
    return s


def normalize_latex(latex: str) -> str:
    """Canonical LaTeX for comparison: no delimiters, spacing commands, \\left/\\right or white space; `x^{2}`
    and `x^2` alike; `^{\\prime}` as `'`; \\mathbf/\\operatorname/\\text wrappers dropped."""
    s = re.sub(r"\s+", "", _strip_latex(latex))
    previous = None
    while previous != s:
        previous = s
        s = _SINGLE_BRACED.sub(r"\1\2", s)
    return s.translate(_CHAR_MAP)


# LaTeX commands -> the characters a PDF text layer or OCR engine produces for them.
_LATEX_SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ",
    "sigma": "σ", "tau": "τ", "phi": "φ", "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ",
    "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
    "nabla": "∇", "partial": "∂", "times": "×", "cdot": "·", "int": "∫", "oint": "∮", "sum": "∑", "prod": "∏",
    "infty": "∞", "in": "∈", "notin": "∉", "leq": "≤", "le": "≤", "geq": "≥", "ge": "≥", "neq": "≠", "ne": "≠",
    "approx": "≈", "pm": "±", "to": "→", "rightarrow": "→", "subset": "⊂", "cup": "∪", "cap": "∩",
    "mathcal": "", "mathbb": "", "frac": "", "sqrt": "√", "ldots": "...", "cdots": "⋯", "dots": "...",
    "prime": "'",
}


def linearize_latex(latex: str) -> str:
    """The formula as a text layer would spell it: symbols as Unicode, no braces, scripts inline, no spaces."""
    s = _strip_latex(latex)
    s = re.sub(r"\\([A-Za-z]+)", lambda m: _LATEX_SYMBOLS.get(m.group(1), m.group(1)), s)
    s = re.sub(r"[{}^_\s]", "", s)
    return unicodedata.normalize("NFKC", s).translate(_CHAR_MAP)


def math_spans(markdown: str) -> list[str]:
    spans: list[str] = []
    rest = markdown
    for pattern in _MATH_SPANS:
        spans.extend(m.group(1) for m in pattern.finditer(rest))
        rest = pattern.sub(" ", rest)
    return spans


def check_math(fact: Mapping[str, Any], page: PageOutput) -> Verdict:
    want = normalize_latex(str(fact["math"]))
    for span in math_spans(page.markdown):
        if want and want in normalize_latex(span):
            return Verdict(True, "latex span")
    linear = linearize_latex(str(fact["math"]))
    plain = re.sub(r"\s+", "", unicodedata.normalize("NFKC", page.markdown)).translate(_CHAR_MAP)
    # A small budget: text layers drop or reorder a script character now and then; whole formulas must still be there.
    budget = len(linear) // 10
    if linear and best_distance(linear, plain) <= budget:
        return Verdict(True, "plain text")
    return Verdict(False, f"formula not found as LaTeX or as text {linear[:40]!r}")


_CHECKERS = {
    "present": check_present,
    "absent": check_absent,
    "order": check_order,
    "table": check_table,
    "math": check_math,
}


def check_fact(fact: Mapping[str, Any], page: PageOutput) -> Verdict:
    """Run the checker for `fact["type"]` on one page's output."""
    try:
        checker = _CHECKERS[fact["type"]]
    except KeyError:
        raise ValueError(f"unknown fact type {fact.get('type')!r} in {fact.get('id')!r}") from None
    return checker(fact, page)


def load_facts(path: Path) -> list[dict[str, Any]]:
    """Facts from a JSON-lines file; blank lines are allowed (the sample has them)."""
    facts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fact = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
        if fact.get("type") not in FACT_TYPES:
            raise ValueError(f"{path}:{number}: unknown fact type {fact.get('type')!r}")
        facts.append(fact)
    return facts


def summarize(results: Iterable[tuple[Mapping[str, Any], Verdict]]) -> dict[str, Any]:
    """Pass counts and rates per fact type and overall."""
    per_type: dict[str, dict[str, float]] = {}
    total = passed = 0
    for fact, verdict in results:
        bucket = per_type.setdefault(fact["type"], {"passed": 0, "total": 0})
        bucket["total"] += 1
        bucket["passed"] += int(verdict.passed)
        total += 1
        passed += int(verdict.passed)
    for bucket in per_type.values():
        bucket["rate"] = round(bucket["passed"] / bucket["total"], 4)
    return {
        "overall": {"passed": passed, "total": total, "rate": round(passed / total, 4) if total else None},
        "per_type": dict(sorted(per_type.items())),
    }
