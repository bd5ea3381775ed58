"""Read a Jupytext percent-format ``.py`` notebook into cells, in one pass, with no imports.

The grader reads a submitted ``.py`` notebook in three places: the grading command, the
``check()`` of a learner's kernel and every sandboxed worker. Jupytext did it, at a cost:
importing it pulls in nbformat and jsonschema (half a second of CPU per process, two
seconds more when jupyterlab's extras are installed), and its reader is quadratic in the
number of cells. This reader keeps what the grader needs (each cell's type, source, tags
and first line) and reads the course's notebooks as Jupytext does, which
``tests/tools/test_percent.py`` checks on every notebook in the repository. The book and
the authoring tools still use Jupytext itself.

The format, as used here::

    # ---                      a YAML header (notebook metadata): skipped
    # jupyter: ...
    # ---

    # %% [markdown]            a markdown cell: each line is commented with "# "
    # # A title

    # %% tags=["demo"]         a code cell, with metadata as key=JSON pairs
    answer = 42
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# `# %%` then the end of the line or a space: `# %%time` is a cell magic, not a marker.
MARKER = re.compile(r"^\s*#\s*%%(?:\s(.*))?$")
ANY_MARKER = re.compile(r"^[ \t]*#[ \t]*%%(?:[ \t]|$)", re.MULTILINE)
_KIND = re.compile(r"^\[(\w+)\]\s*")
# Only the tags matter to the grader. Each value is decoded from where its key ends and
# stops at the first character that is not JSON, so a marker line is read in linear time
# (a pattern for whole `key=value` pairs was quadratic in unclosed brackets).
_TAGS = re.compile(r"(?:^|\s)tags=")
_JSON = json.JSONDecoder()
_KINDS = {"markdown": "markdown", "md": "markdown", "raw": "raw"}
# In a code cell Jupytext comments out magics (`%time`, `!ls`) when it writes, and
# restores them when it reads.
_COMMENTED_MAGIC = re.compile(r"^(\s*)#\s?([%!].*)$")
_TRIPLE = re.compile(r"'''|\"\"\"")


class PercentError(ValueError):
    """A cell marker whose metadata cannot be read; the message says which line."""


@dataclass(frozen=True)
class PercentCell:
    cell_type: str  # "code", "markdown" or "raw"
    source: str
    tags: tuple[str, ...]
    first_line: int  # 1-based line of the cell's first source line in the file


def read_percent(text: str) -> list[PercentCell]:
    """The cells of a percent notebook. Raises :class:`PercentError` for bad metadata."""
    lines = text.splitlines()
    start = _after_header(lines)
    cells: list[PercentCell] = []
    # Text before the first marker, if any, is a code cell.
    kind, first, marked = "code", start, False
    tags: tuple[str, ...] = ()
    body: list[str] = []
    quote: str | None = None  # inside a triple-quoted string, a marker is just text
    for number in range(start, len(lines)):
        line = lines[number]
        marker = MARKER.match(line) if quote is None else None
        if marker:
            _close(cells, kind, tags, first, body, marked)
            kind, tags = _options(marker.group(1) or "", number + 1)
            first, body, marked = number + 1, [], True
            continue
        if kind == "code":
            if quote is None:
                line = _COMMENTED_MAGIC.sub(r"\1\2", line)
            quote = _quote_state(line, quote)
        else:
            line = _uncomment(line)
        body.append(line)
    _close(cells, kind, tags, first, body, marked)
    return cells


def _after_header(lines: list[str]) -> int:
    """Where the cells start: after a leading ``# ---`` ... ``# ---`` block, if any."""
    if lines and lines[0].rstrip() == "# ---":
        for number in range(1, len(lines)):
            if lines[number].rstrip() == "# ---":
                end = number + 1
                return end + 1 if end < len(lines) and not lines[end].strip() else end
    return 0


def _options(text: str, line: int) -> tuple[str, tuple[str, ...]]:
    kind = "code"
    found = _KIND.match(text)
    if found:
        kind = _KINDS.get(found.group(1), "code")
        text = text[found.end():]
    tags: tuple[str, ...] = ()
    for found in _TAGS.finditer(text):
        value = text[found.end():found.end() + 80]
        try:
            parsed, _ = _JSON.raw_decode(text, found.end())
        except (ValueError, RecursionError):
            raise PercentError(f"line {line}: the cell's tags are not a JSON list: {value}") \
                from None
        if not isinstance(parsed, list) or not all(isinstance(t, str) for t in parsed):
            raise PercentError(f"line {line}: the cell's tags are not a list of text: {value}")
        tags = tuple(parsed)
    return kind, tags


def _close(cells: list[PercentCell], kind: str, tags: tuple[str, ...], first: int,
           body: list[str], marked: bool) -> None:
    while body and not body[-1].strip():
        body.pop()
    if not marked and not body:
        return  # nothing before the first marker
    cells.append(PercentCell(kind, "\n".join(body), tags, first + 1))


def _uncomment(line: str) -> str:
    if line.startswith("# "):
        return line[2:]
    return line[1:] if line.startswith("#") else line


def _quote_state(line: str, quote: str | None) -> str | None:
    """Track triple-quoted strings across lines (a ``# %%`` inside one is not a marker)."""
    position = 0
    while True:
        if quote is None:
            hash_at = line.find("#", position)
            found = _TRIPLE.search(line, position)
            if found is None or (hash_at != -1 and hash_at < found.start()):
                return None
            quote, position = found.group(), found.end()
        else:
            end = line.find(quote, position)
            if end == -1:
                return quote
            quote, position = None, end + 3
