"""Fingerprints of the exercise notebooks as ``course generate`` wrote them.

Learners edit ``exercises/`` in place, so the working tree cannot tell what the
untouched notebook looked like. ``course generate`` therefore records, in
``exercises/.generated.json``, a fingerprint of each notebook it writes:

- ``sha256``: the whole generated text. A file with this hash is still untouched, so
  regenerating over it loses nothing; a file without it holds a learner's work.
- ``code``: the notebook's code cells, normalised. A submission with the same code cells
  is the untouched stub (whatever its format, .py or .ipynb), and earns no point for
  running top to bottom.
- ``raises``: the code cells the course tags ``raises-exception``, which the grader lets
  fail when their code is unchanged.

The record ships with a student release (which has no ``solutions/``) and with the
grader's bundles, so every copy of the course answers "is this untouched?" the same way.

It lives with the grader, not with the authoring tools that write it: the grader reads
it in every copy of the course, including those with no authoring source at all (a
student edition, a Gradescope bundle), and a fingerprint is made of the grader's own
view of a notebook's code cells (:mod:`course.grader.prepare`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course.layout import Layout

RECORD_NAME = ".generated.json"
_ABOUT = (
    "Written by `python -m course generate`: a fingerprint of each exercise notebook as "
    "generated, so the course can tell an untouched exercise from your work. Do not edit."
)


@dataclass(frozen=True)
class Original:
    """What one exercise notebook looked like when it was generated."""

    name: str
    sha256: str
    code: str
    raises: frozenset[str] = field(default_factory=frozenset)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cell_hash(source: str) -> str:
    return text_hash(source)


def code_hash(cells: list[str]) -> str:
    return text_hash("\n\0\n".join(cells))


def describe(name: str, text: str) -> Original:
    """The fingerprint of a generated notebook's text (a Jupytext percent ``.py``)."""
    from course.grader import prepare

    nb = prepare.read(name, text.encode("utf-8"))
    raises = frozenset(
        cell_hash(prepare.plain_source(cell.source))
        for cell in nb.cells
        if cell.cell_type == "code" and "raises-exception" in cell.tags
    )
    return Original(name, text_hash(text), code_hash(prepare.code_cells(nb)), raises)


def record_path(root: Path) -> Path:
    return Layout(root).exercises / RECORD_NAME


def load(root: Path) -> dict[str, Original]:
    """The recorded fingerprints, by file name; empty when there is no (readable) record."""
    try:
        data: Any = json.loads(record_path(root).read_text(encoding="utf-8"))
        files = data["files"]
        return {
            name: Original(name, str(item["sha256"]), str(item["code"]),
                           frozenset(str(h) for h in item.get("raises", [])))
            for name, item in files.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def render(originals: dict[str, Original]) -> str:
    files = {
        name: {"sha256": o.sha256, "code": o.code, "raises": sorted(o.raises)}
        for name, o in sorted(originals.items())
    }
    return json.dumps({"about": _ABOUT, "files": files}, indent=1) + "\n"


def write(root: Path, originals: dict[str, Original]) -> bool:
    """Write the record; return whether it changed."""
    path = record_path(root)
    text = render(originals)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def original(root: Path, slug: str) -> Original | None:
    """The fingerprint of chapter ``slug``'s untouched exercise notebook, if recorded."""
    return load(root).get(f"{slug}.py")


def is_pristine(path: Path, recorded: Original | None) -> bool:
    """Whether ``path`` is byte for byte the notebook ``course generate`` wrote."""
    if recorded is None or not path.is_file():
        return False
    try:
        return text_hash(path.read_text(encoding="utf-8")) == recorded.sha256
    except (OSError, UnicodeDecodeError):
        return False


def pristine_text(root: Path, slug: str) -> str | None:
    """The untouched exercise notebook's text: generated from ``solutions/`` when the
    course has it, else the file in ``exercises/`` if it is still as generated."""
    solution = Layout(root).solutions / f"{slug}.py"
    if solution.is_file():
        from course.authoring.generate import make_exercise

        return make_exercise(solution.read_text(encoding="utf-8"), f"solutions/{slug}.py")
    path = Layout(root).exercises / f"{slug}.py"
    if is_pristine(path, original(root, slug)):
        return path.read_text(encoding="utf-8")
    return None
