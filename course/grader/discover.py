"""Find the exercise notebooks in a submission: a file, a folder, or a zip.

Everything here reads untrusted input, so it reads carefully: symlinks are never
followed (a link to ``solutions/`` is not a submission), a zip is never extracted, and
its table of contents is sized up before it is parsed. Each notebook is matched to a
chapter by its name alone, the best match per chapter is chosen from names and dates,
and only then is that one file read, through a size cap (a header can lie about sizes),
with ``..`` and absolute paths refused. So the work and memory spent are bounded by the
number of chapters, not by what the submission holds: a zip of 200 five-MB members costs
one read of 5 MB per chapter. Anything not graded gets a line saying why.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from course.layout import NOTEBOOK_SUFFIXES

MAX_NOTEBOOK = 5 * 1024 * 1024
MAX_MEMBERS = 2000
MAX_DIRECTORY = 2 * 1024 * 1024  # a zip's table of contents (2000 entries of 1 KB)
MAX_DEPTH = 6
MAX_FILES = 5000
MAX_TRIES = 3  # notebooks read per chapter when the best ones cannot be read
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


class Unreadable(Exception):
    """One file of a submission cannot be read; the message says why."""


@dataclass
class Entry:
    """A notebook in the submission, known by name and date only until it is chosen."""

    name: str
    mtime: float
    read: Callable[[], bytes]


def find(submission: Path, chapters: list[str]) -> Found:
    if submission.is_symlink():
        raise SubmissionError(f"{submission} is a symbolic link; submit the file itself")
    if not submission.exists():
        raise SubmissionError(f"{submission} does not exist")
    found = Found()
    if submission.is_dir():
        entries = list(_from_folder(submission, found.problems))
        _choose(entries, chapters, found)
    elif submission.suffix.lower() == ".zip":
        with _open_zip(submission) as archive:
            entries = list(_from_zip(archive, submission.name, found.problems))
            _choose(entries, chapters, found)
    elif submission.suffix in NOTEBOOK_SUFFIXES:
        _choose([_from_file(submission, submission.name)], chapters, found)
    else:
        raise SubmissionError(
            f"{submission.name}: expected a notebook (.py or .ipynb), a folder or a .zip"
        )
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


def _choose(entries: list[Entry], chapters: list[str], found: Found) -> None:
    """Per chapter, read the best-named, most recent notebook (the next if it cannot be)."""
    by_chapter: dict[str, list[tuple[bool, Entry]]] = {}
    for entry in entries:
        slug, exact = chapter_for(entry.name, chapters)
        if slug is None:
            known = ", ".join(chapters) or "none yet"
            found.problems.append(
                f"{entry.name}: not an exercise notebook of this course, so not graded "
                f"(name it after its chapter: {known})"
            )
            continue
        by_chapter.setdefault(slug, []).append((exact, entry))
    for slug, group in by_chapter.items():
        group.sort(key=lambda pair: (pair[0], pair[1].mtime), reverse=True)
        for exact, entry in group[:MAX_TRIES]:
            try:
                data = entry.read()
            except Unreadable as exc:
                found.problems.append(str(exc))
                continue
            found.notebooks[slug] = Candidate(entry.name, data, entry.mtime, exact)
            break
        keep = found.notebooks.get(slug)
        others = [(exact, entry) for exact, entry in group if keep and entry.name != keep.name]
        if keep is not None and len(others) > MAX_TRIES:
            names = ", ".join(entry.name for _, entry in others[:MAX_TRIES])
            found.problems.append(f"{slug}: found {len(others) + 1} notebooks for this chapter "
                                  f"({names}, ...); graded {keep.name}")
        elif keep is not None:
            for exact, entry in others:
                why = "exact name" if keep.exact != exact else "saved more recently"
                found.problems.append(f"{slug}: found both {keep.name} and {entry.name}; "
                                      f"graded {keep.name} ({why})")


def _too_big(name: str) -> Unreadable:
    return Unreadable(f"{name}: larger than {MAX_NOTEBOOK // 2**20} MB, not graded; "
                      "clear the outputs (Kernel > Restart & Clear Output) and save")


def _read_capped(path: Path, name: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise Unreadable(f"{name}: not a regular file (links are not followed), not graded")
            data = handle.read(MAX_NOTEBOOK + 1)
    except OSError as exc:
        raise Unreadable(f"{name}: cannot read it ({exc.strerror})") from None
    if len(data) > MAX_NOTEBOOK:
        raise _too_big(name)
    return data


def _from_file(path: Path, name: str) -> Entry:
    try:
        mtime = path.lstat().st_mtime
    except OSError:
        mtime = 0.0
    return Entry(name, mtime, lambda: _read_capped(path, name))


def _from_folder(folder: Path, problems: list[str]) -> Iterator[Entry]:
    """Notebooks in ``folder``, looking at no more than MAX_FILES entries in all."""
    seen = 0
    stack = [(folder, 0)]
    while stack:
        here, depth = stack.pop()
        try:
            with os.scandir(here) as listing:
                items = []
                for item in listing:
                    seen += 1
                    if seen > MAX_FILES:
                        problems.append(f"more than {MAX_FILES} files in the submission; "
                                        "stopped looking")
                        return
                    items.append(item)
        except OSError as exc:
            problems.append(f"{_printable(here.relative_to(folder).as_posix())}: cannot list it "
                            f"({exc.strerror})")
            continue
        subfolders = []
        for item in sorted(items, key=lambda i: i.name):
            path = Path(item.path)
            relative = _printable(path.relative_to(folder).as_posix())
            if item.name.startswith("."):
                continue
            if item.is_symlink():
                if Path(item.name).suffix in NOTEBOOK_SUFFIXES:
                    problems.append(f"{relative}: a symbolic link, not graded")
                continue
            if item.is_dir(follow_symlinks=False):
                if item.name not in IGNORED_DIRS and depth + 1 < MAX_DEPTH:
                    subfolders.append((path, depth + 1))
            elif Path(item.name).suffix in NOTEBOOK_SUFFIXES:
                yield _from_file(path, relative)
        stack.extend(reversed(subfolders))


def _printable(name: str) -> str:
    """A file name as reports can print it: undecodable bytes (surrogates) become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _open_zip(path: Path) -> zipfile.ZipFile:
    """Open a zip only after its end record says the table of contents is small."""
    try:
        with path.open("rb") as handle:
            end = zipfile._EndRecData(handle)  # type: ignore[attr-defined]  # what ZipFile reads
    except (OSError, AttributeError, struct.error) as exc:
        raise SubmissionError(f"{path.name}: not a readable zip file ({exc})") from None
    if not end:
        raise SubmissionError(f"{path.name}: not a readable zip file (no end record)")
    entries, size = int(end[zipfile._ECD_ENTRIES_TOTAL]), int(end[zipfile._ECD_SIZE])  # type: ignore[attr-defined]
    if entries > MAX_MEMBERS or size > MAX_DIRECTORY:
        raise SubmissionError(
            f"{path.name}: the zip lists {entries} entries ({size // 1024} KB of names); at "
            f"most {MAX_MEMBERS} are accepted: zip only your notebooks"
        )
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, struct.error) as exc:
        raise SubmissionError(f"{path.name}: not a readable zip file ({exc})") from None


def _from_zip(archive: zipfile.ZipFile, zip_name: str, problems: list[str]) -> Iterator[Entry]:
    members = archive.infolist()
    if not members:
        problems.append(f"{zip_name}: the zip is empty")
        return
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
        yield Entry(pure.as_posix(), _zip_time(info), _zip_reader(archive, info, name))


def _zip_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with archive.open(info) as handle:
                data = handle.read(MAX_NOTEBOOK + 1)
        except Exception as exc:  # BadZipFile, NotImplementedError, zlib.error, RuntimeError...
            raise Unreadable(f"{name}: cannot read it from the zip ({exc})") from None
        if len(data) > MAX_NOTEBOOK:
            raise _too_big(name)
        return data

    return read


def _zip_time(info: zipfile.ZipInfo) -> float:
    import datetime

    try:
        return datetime.datetime(*info.date_time).timestamp()
    except (ValueError, OverflowError):
        return 0.0
