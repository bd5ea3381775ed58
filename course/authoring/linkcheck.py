"""Check the book's internal links, offline, without executing a notebook.

Sphinx's linkcheck builder (7.4) requests every http(s) link and, for a plain local path,
only checks that the file exists. Links between pages work differently: MyST turns
``[Chapter 2](02_type_hints)`` into a cross-reference, and a target that is no page or
label of the book becomes a ``myst.xref_missing`` warning when pages are written, in
any builder. So this runs ``jupyter-book build --builder linkcheck`` with execution off
and external links ignored, in its own output folder (the HTML build's doctrees stay
untouched), and reports both kinds of broken link. A line number is where the paragraph
or table row holding the link starts; in a ``.py`` notebook, the line in that file.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints

from course.authoring.dev import tool
from course.layout import ROOT, Layout

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
WARNING = re.compile(r"^(?P<path>.+?):(?P<line>\d+): WARNING: (?P<message>.*)$")
LINK_PROBLEM = re.compile(r"xref_missing|reference target not found|unknown document|undefined label"
                          r"|Could not find document|Unknown source document")
# myst-nb numbers a notebook's lines from (cell index + 1) * 10000 + 1, and MyST adds one more.
CELL_LINES = 10_000


def source_line(path: Path, line: int) -> int:
    """The line of a percent ``.py`` notebook that a myst-nb line number points into."""
    cell, offset = divmod(line - 2, CELL_LINES)
    if path.suffix != ".py" or cell == 0 or not path.is_file():
        return line
    markers = [n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
               if text.startswith("# %%")]
    return markers[cell - 1] + 1 + offset if cell <= len(markers) else line


def _where(root: Path, name: str, line: int) -> tuple[str, int]:
    path = root / name
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    return str(shown), source_line(path, line)


def broken_links(root: Path = ROOT, out: Path | None = None) -> list[str]:
    """Build the book with the linkcheck builder; return one line per broken internal link."""
    out = out or Layout(root).build / "linkcheck"
    shutil.rmtree(out, ignore_errors=True)  # a fresh read, so every page's links are reported
    out.mkdir(parents=True)
    config = yaml.safe_load(Layout(root).config.read_text(encoding="utf-8")) or {}
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    sphinx = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx["linkcheck_ignore"] = [r"https?://", r"mailto:"]  # offline: external links are not ours
    sphinx["linkcheck_report_timeouts_as_broken"] = False  # silences a Sphinx 8 deprecation notice
    (out / "config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    done = subprocess.run(
        [tool("jupyter-book"), "build", str(root), "--builder", "linkcheck", "--quiet",
         "--path-output", str(out), "--config", str(out / "config.yml")],
        capture_output=True, text=True, check=False,
    )
    problems: set[tuple[str, int, str]] = set()
    for raw in ANSI.sub("", done.stderr).splitlines():
        match = WARNING.match(raw)
        if match and LINK_PROBLEM.search(match["message"]):
            message = match["message"].removesuffix(" [myst.xref_missing]")
            problems.add((*_where(root, match["path"], int(match["line"])), message))
    report = out / "_build" / "html" / "output.json"  # Jupyter Book's own layout
    entries = report.read_text(encoding="utf-8").splitlines() if report.is_file() else []
    for entry in map(json.loads, entries):
        if entry["status"] == "broken":
            message = f"{entry['uri']} not found {entry['info']}".rstrip()
            problems.add((*_where(root, entry["filename"], entry["lineno"]), message))
    if done.returncode != 0 and not problems:
        return ["the linkcheck build failed:\n" + (done.stdout + done.stderr)[-3000:]]
    return [f"{path}:{line}: {message}" for path, line, message in sorted(problems)]


def _run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    problems = broken_links()
    for problem in problems:
        print(f"- {problem}", file=sys.stderr)
    verdict = f"{len(problems)} broken link(s)" if problems else "no broken internal links"
    print(f"{verdict} ({time.perf_counter() - start:.1f}s; external links not checked)")
    return 1 if problems else 0


def register(sub: Any) -> None:
    parser = sub.add_parser("linkcheck", help="check the book's internal links (offline, no execution)")
    parser.set_defaults(handler=_run)
