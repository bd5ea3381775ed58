"""Find the exercise notebooks in a submission: a file, a folder, or a zip.

Everything here reads untrusted input, so it reads carefully: symlinks are never
followed (a link to ``solutions/`` is not a submission), a zip is never extracted, only
its notebook members are read, each through a size cap (a header can lie about sizes),
with ``..`` and absolute paths refused. Each notebook is matched to a chapter by its
name; anything else gets a line saying why it was not graded.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from course import NOTEBOOK_SUFFIXES

MAX_NOTEBOOK = 5 * 1024 * 1024
MAX_MEMBERS = 2000
MAX_DEPTH = 6
MAX_FILES = 5000
IGNORED_DIRS = {"__MACOSX", ".ipynb_checkpoints", "__pycache__", ".git", "node_modules", ".venv"}
# "01_classes (1).ipynb", "01_classes-Copy1.ipynb": what browsers and Jupyter name copies.
COPY_SUFFIX = re.compile(r"^(?: ?\(\d+\)|-Copy\d*| copy)$", re.IGNORECASE)


class SubmissionError(Exception):
    """The submission cannot be read at all (the message says why)."""


@dataclass
class Candidate:
    name: str  # as in the submission, e.g. "hw/01_classes.ipynb"
    data: bytes
    mtime: float
    exact: bool  # named exactly <slug>.py/.ipynb


@dataclass
class Found:
    notebooks: dict[str, Candidate] = field(default_factory=dict)  # chapter slug -> notebook
    problems: list[str] = field(default_factory=list)


def find(submission: Path, chapters: list[str]) -> Found:
    if submission.is_symlink():
        raise SubmissionError(f"{submission} is a symbolic link; submit the file itself")
    if not submission.exists():
        raise SubmissionError(f"{submission} does not exist")
    found = Found()
    if submission.is_dir():
        candidates = list(_from_folder(submission, found.problems))
    elif submission.suffix.lower() == ".zip":
        candidates = list(_from_zip(submission, found.problems))
    elif submission.suffix in NOTEBOOK_SUFFIXES:
        candidates = [_from_file(submission, submission.name, found.problems)]
    else:
        raise SubmissionError(
            f"{submission.name}: expected a notebook (.py or .ipynb), a folder or a .zip"
        )
    _assign([c for c in candidates if c is not None], chapters, found)
    if not found.notebooks:
        found.problems.append(_nothing_found(chapters))
    return found


def _nothing_found(chapters: list[str]) -> str:
    names = ", ".join(f"{c}.py/.ipynb" for c in chapters) or "(the course has no chapters yet)"
    return f"no exercise notebook found in the submission; expected one of: {names}"


def chapter_for(filename: str, chapters: list[str]) -> tuple[str | None, bool]:
    stem = PurePosixPath(filename).stem
    if stem in chapters:
        return stem, True
    for slug in chapters:
        if stem.startswith(slug) and COPY_SUFFIX.match(stem[len(slug):]):
            return slug, False
    return None, False


def _assign(candidates: list[Candidate], chapters: list[str], found: Found) -> None:
    for cand in candidates:
        slug, exact = chapter_for(cand.name, chapters)
        if slug is None:
            known = ", ".join(chapters) or "none yet"
            found.problems.append(
                f"{cand.name}: not an exercise notebook of this course, so not graded "
                f"(name it after its chapter: {known})"
            )
            continue
        cand.exact = exact
        current = found.notebooks.get(slug)
        if current is None:
            found.notebooks[slug] = cand
            continue
        # Prefer the exact name, then the most recently saved; say which one was graded.
        better = (cand.exact, cand.mtime) > (current.exact, current.mtime)
        keep, drop = (cand, current) if better else (current, cand)
        found.notebooks[slug] = keep
        found.problems.append(
            f"{slug}: found both {keep.name} and {drop.name}; graded {keep.name}"
            f" ({'exact name' if keep.exact != drop.exact else 'saved more recently'})"
        )


def _read_capped(path: Path) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_NOTEBOOK + 1)
    return data


def _from_file(path: Path, name: str, problems: list[str]) -> Candidate | None:
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            problems.append(f"{name}: not a regular file (links are not followed), not graded")
            return None
        data = _read_capped(path)
    except OSError as exc:
        problems.append(f"{name}: cannot read it ({exc.strerror})")
        return None
    if len(data) > MAX_NOTEBOOK:
        problems.append(f"{name}: larger than {MAX_NOTEBOOK // 2**20} MB, not graded; "
                        "clear the outputs (Kernel > Restart & Clear Output) and save")
        return None
    return Candidate(name, data, info.st_mtime, False)


def _from_folder(folder: Path, problems: list[str]) -> Iterator[Candidate | None]:
    seen = 0
    for current, dirs, files in os.walk(folder, followlinks=False):
        here = Path(current)
        depth = len(here.relative_to(folder).parts)
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS and not d.startswith(".")
                         and depth < MAX_DEPTH)
        for name in sorted(files):
            seen += 1
            if seen > MAX_FILES:
                problems.append(f"more than {MAX_FILES} files in the submission; stopped looking")
                return
            if Path(name).suffix not in NOTEBOOK_SUFFIXES or name.startswith("."):
                continue
            path = here / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                problems.append(f"{relative}: a symbolic link, not graded")
                continue
            yield _from_file(path, relative, problems)


def _from_zip(path: Path, problems: list[str]) -> Iterator[Candidate | None]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SubmissionError(f"{path.name}: not a readable zip file ({exc})") from None
    with archive:
        members = archive.infolist()
        if not members:
            problems.append(f"{path.name}: the zip is empty")
            return
        if len(members) > MAX_MEMBERS:
            problems.append(f"{path.name}: more than {MAX_MEMBERS} entries; only the first read")
            members = members[:MAX_MEMBERS]
        for info in members:
            name = info.filename
            pure = PurePosixPath(name.replace("\\", "/"))
            if info.is_dir() or pure.suffix not in NOTEBOOK_SUFFIXES:
                continue
            if pure.is_absolute() or ".." in pure.parts or ":" in pure.parts[0]:
                problems.append(f"{name}: an unsafe path in the zip, ignored")
                continue
            if set(pure.parts[:-1]) & IGNORED_DIRS or pure.name.startswith("."):
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                problems.append(f"{name}: a symbolic link in the zip, ignored")
                continue
            try:
                with archive.open(info) as handle:
                    data = handle.read(MAX_NOTEBOOK + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
                problems.append(f"{name}: cannot read it from the zip ({exc})")
                continue
            if len(data) > MAX_NOTEBOOK:
                problems.append(f"{name}: larger than {MAX_NOTEBOOK // 2**20} MB, not graded")
                continue
            mtime = _zip_time(info)
            yield Candidate(pure.as_posix(), data, mtime, False)


def _zip_time(info: zipfile.ZipInfo) -> float:
    import datetime

    try:
        return datetime.datetime(*info.date_time).timestamp()
    except (ValueError, OverflowError):
        return 0.0
