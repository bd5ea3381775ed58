"""The grader on malformed, oversized and adversarial input, and its sandbox's walls.

Whatever the grader does to a submission's bytes in its own process must be linear and
capped, and a malformed notebook, zip or worker record must become a line in a report,
never a traceback. The sandbox must show a run nothing of other runs, of the course's
answers or of the rest of the machine. Everything here is fast: no test runs pytest on
a submission, except the last, which starts one sandboxed Python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from course.grader import batch, channel, discover, jail, prepare, sandbox
from course.grader.channel import RecordReader
from course.grader.discover import SubmissionError
from course.grader.engine import GraderError, Options, grade
from course.grader.layout import Course
from course.grader.sandbox import Limits, Scratch

HERE = Path(__file__).parent
FIXTURE = HERE / "fixtures" / "course"
SOLUTION = FIXTURE / "solutions" / "00_fixture.py"
COURSE = Course.at(FIXTURE)


def _ipynb(cells: Any) -> bytes:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                       "cells": cells}).encode()


def _code(**fields: Any) -> dict[str, Any]:
    return {"cell_type": "code", "source": "x = 1", "metadata": {}, **fields}


# -- malformed notebooks: a clear reason, never a crash ----------------------------------

@pytest.mark.parametrize(("data", "words"), [
    (_ipynb([_code(metadata={"tags": 5})]), "cell 1: the 'tags' in its metadata must be a list"),
    (_ipynb([_code(metadata={"tags": ["ok", 3]})]), "cell 1: the 'tags'"),
    (_ipynb([_code(source=5)]), "cell 1: 'source' must be text or a list of text lines"),
    (_ipynb([_code(source=["a", None])]), "it holds a null"),
    (_ipynb([_code(), _code(metadata=[])]), "cell 2: 'metadata' must be an object"),
    (_ipynb([_code(cell_type=7)]), "'cell_type' must be code, markdown or raw"),
    (_ipynb(["not a cell"]), "cell 1 is a text, not a cell object"),
    (_ipynb(5), "a number as its 'cells' list"),
    (json.dumps({"metadata": {}}).encode(), "no 'cells' list"),
    (b"[1, 2]", "holds a list, not a notebook object"),
    (b"[" * 100_000 + b"]" * 100_000, "its JSON is broken"),
    (b"{\"cells\": [", "its JSON is broken"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_a_malformed_ipynb_is_a_clear_bad_notebook(data: bytes, words: str) -> None:
    with pytest.raises(prepare.BadNotebook) as caught:
        prepare.read("hw/00_fixture.ipynb", data)
    assert words in str(caught.value)
    assert str(caught.value).startswith("hw/00_fixture.ipynb")


@pytest.mark.parametrize(("text", "words"), [
    ("# %% tags=5\nx = 1\n", "line 1: the cell's tags are not a list of text"),
    ("# %% tags=" + "[" * 5000 + "]" * 5000 + "\nx = 1\n", "line 1: the cell's tags are not"),
    ("# %%\nx = 1\n" * (prepare.MAX_CELLS + 1), f"more than the {prepare.MAX_CELLS}"),
    ("# %%\n" + "\n" * (prepare.MAX_LINES + 1), f"more than the {prepare.MAX_LINES}"),
    ("# %%\n" + "#" * prepare.MAX_PY_BYTES, "KB a .py notebook may have"),
    ("x = 1\n", "without '# %%' cell markers"),
])
def test_a_malformed_or_oversized_py_notebook_is_refused(text: str, words: str) -> None:
    with pytest.raises(prepare.BadNotebook) as caught:
        prepare.read("00_fixture.py", text.encode())
    assert words in str(caught.value)


def test_too_many_ipynb_cells_are_refused_before_any_is_looked_at() -> None:
    data = _ipynb([_code()] * (prepare.MAX_CELLS + 1))
    with pytest.raises(prepare.BadNotebook, match="cells, more than"):
        prepare.read("00_fixture.ipynb", data)


def test_a_well_formed_ipynb_keeps_its_code_and_tags(tmp_path: Path) -> None:
    nb = prepare.read("00_fixture.ipynb", _ipynb([
        _code(source=["def f():\n", "    return 1\n"], metadata={"tags": ["demo", "nbval-skip"]}),
        {"cell_type": "markdown", "source": "# Title", "metadata": {}},
    ]))
    assert [c.cell_type for c in nb.cells] == ["code", "markdown"]
    clean = prepare.for_nbval(nb, None)
    assert [(c.source, c.tags) for c in clean.cells] == [("def f():\n    return 1\n", ("demo",))]
    prepare.write_ipynb(clean, tmp_path / "out.ipynb")
    written = json.loads((tmp_path / "out.ipynb").read_text())
    assert written["cells"][0]["metadata"] == {"tags": ["demo"]}
    assert written["nbformat"] == 4 and written["cells"][0]["outputs"] == []


def test_nbval_markers_go_whatever_the_blank_lines_around_them() -> None:
    # The old pattern (`^\s*#`) rescanned every following blank line from every line:
    # quadratic, hours at this size. This one is linear.
    source = "x = 1\n" + "\n" * 300_000 + "   # NBVAL_SKIP\n" + " \n" * 100_000 + "#NBVAL_RAISES_EXCEPTION"
    nb = prepare.Notebook((prepare.Cell("code", source, ()),))
    cleaned = prepare.for_nbval(nb, None).cells[0].source
    assert "NBVAL" not in cleaned
    assert cleaned.count("\n") == source.count("\n")


def test_a_malformed_notebook_costs_its_points_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "00_fixture.ipynb"
    bad.write_bytes(_ipynb([_code(metadata={"tags": 5})]))
    report = grade(bad, COURSE, Options(cache_dir=tmp_path / "cache"))
    assert (report.earned, report.points) == (0, 8)
    problems = " ".join(p for c in report.chapters for p in c.problems)
    assert "the 'tags' in its metadata must be a list of text" in problems


# -- discovery reads one notebook per chapter, whatever the zip holds ---------------------

def _count_zip_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    original = zipfile.ZipFile.open

    def counting(self: zipfile.ZipFile, name: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(getattr(name, "filename", name))
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", counting)
    return opened


def test_a_zip_of_many_copies_costs_one_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "class.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for number in range(200):
            info = zipfile.ZipInfo(f"00_fixture ({number}).py", (2024, 1, 1, 0, 0, number % 60))
            archive.writestr(info, "# %%\n" + "#" * 100_000)
        archive.writestr(zipfile.ZipInfo("00_fixture.py", (2020, 1, 1, 0, 0, 0)),
                         SOLUTION.read_text())
    opened = _count_zip_reads(monkeypatch)
    found = discover.find(path, ["00_fixture"])
    assert opened == ["00_fixture.py"]  # the exact name wins; nothing else is decompressed
    assert found.notebooks["00_fixture"].data == SOLUTION.read_bytes()
    assert any("found 201 notebooks for this chapter" in p for p in found.problems)


def test_a_zip_bomb_member_is_cut_at_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for number in range(10):  # 6 MB each, a few KB compressed, all equally good names
            info = zipfile.ZipInfo(f"00_fixture-Copy{number}.py", (2024, 1, 1, 0, 0, 0))
            archive.writestr(info, b"#" * (6 * 2**20))
    opened = _count_zip_reads(monkeypatch)
    found = discover.find(path, ["00_fixture"])
    assert len(opened) == discover.MAX_TRIES
    assert "00_fixture" not in found.notebooks
    assert sum("larger than 5 MB" in p for p in found.problems) == discover.MAX_TRIES


def test_a_zip_with_too_many_entries_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for number in range(discover.MAX_MEMBERS + 1):
            archive.writestr(f"f{number}.txt", "")
    with pytest.raises(SubmissionError, match=f"at most {discover.MAX_MEMBERS} are accepted"):
        discover.find(path, ["00_fixture"])


@pytest.mark.parametrize("data", [b"", b"PK\x05\x06" + b"\x00" * 10, b"not a zip at all" * 100])
def test_a_broken_zip_is_a_submission_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "broken.zip"
    path.write_bytes(data)
    with pytest.raises(SubmissionError, match=r"broken\.zip: not a readable zip file"):
        discover.find(path, ["00_fixture"])


def test_a_folder_walk_stops_at_its_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discover, "MAX_FILES", 50)
    for number in range(80):
        (tmp_path / f"junk{number}.txt").write_text("")
    (tmp_path / "00_fixture.py").write_text("# %%\nx = 1\n")
    os.mkfifo(tmp_path / "00_fixture.ipynb")  # a reader that opens it would hang
    found = discover.find(tmp_path, ["00_fixture"])
    assert any("more than 50 files" in p for p in found.problems)


def test_a_fifo_named_like_a_notebook_is_not_opened_for_reading(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "00_fixture.ipynb")
    found = discover.find(tmp_path, ["00_fixture"])
    assert "00_fixture" not in found.notebooks
    assert any("not a regular file" in p for p in found.problems)


def test_students_whose_names_collide_get_separate_reports() -> None:
    paths = [Path("alice"), Path("alice.zip"), Path("a b.py"), Path("a_b"), Path("A_B.zip")]
    names = batch.unique_names(paths)
    assert names == {Path("alice"): "alice", Path("alice.zip"): "alice-2",
                     Path("a b.py"): "a_b", Path("a_b"): "a_b-2", Path("A_B.zip"): "A_B-3"}


# -- worker records: only the expected shapes get through --------------------------------

def _signed(reader: RecordReader, record: Any) -> bytes:
    if isinstance(record, dict):
        record = {**record, "nonce": reader.nonce}
    return (json.dumps(record) + "\n").encode()


@pytest.mark.parametrize("record", [
    {"t": "result", "id": ["a", "list"], "outcome": "passed"},
    {"t": "result", "id": "x", "outcome": {"passed": True}},
    {"t": "result", "id": "x"},
    {"t": "result", "id": "x", "outcome": "passed", "message": 5},
    {"t": "collected", "ids": "x"},
    {"t": "collected", "ids": [1, 2]},
    {"t": "done", "status": "ok", "exitstatus": "0"},
    {"t": "start", "id": None},
    {"t": ["result"], "id": "x"},
    {"id": "x"},
])
def test_a_signed_record_of_the_wrong_shape_is_dropped_and_named(record: dict[str, Any]) -> None:
    reader = RecordReader(channel.new_nonce())
    good = {"t": "start", "id": "tests/test_00_fixture.py::test_add_small"}
    got = list(reader.feed(_signed(reader, record) + _signed(reader, good)))
    assert got == [good]
    assert reader.rejected == 1 and reader.problems


def test_deeply_nested_records_are_dropped_not_raised() -> None:
    reader = RecordReader(channel.new_nonce())
    line = b"[" * 100_000 + b"]" * 100_000 + b"\n"
    assert list(reader.feed(line)) == []
    assert reader.rejected == 1


def test_how_a_run_ended_names_dropped_records() -> None:
    run = sandbox.RunResult(exit_code=1, rejected=["a 'result' record whose 'id' is a list"])
    assert "dropped malformed result records (a 'result' record whose 'id' is a list)" \
        in run.how_it_ended()


# -- when the sandbox cannot be set up, say so, and how to fix it -------------------------

def test_a_sandbox_that_cannot_start_is_the_graders_problem(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    broken = sandbox.Isolation(False, False, False, False, problem="the sandbox user cannot "
                               "reach /x/.venv/bin/python: /x is closed to other users")
    monkeypatch.setattr(sandbox, "isolation", lambda: broken)
    with pytest.raises(GraderError, match=r"cannot reach /x/\.venv/bin/python"):
        grade(SOLUTION, COURSE, Options(cache_dir=tmp_path / "cache"))
    report_notes = broken.describe(Limits())
    assert report_notes[0].startswith("the sandbox could not be set up on this machine")


def test_a_remembered_probe_that_no_longer_holds_is_probed_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's answer is kept between runs; a machine that changed since (a container
    restarted with fewer rights, say) costs one failed run, not every run after it."""
    record = tmp_path / "isolation.json"
    monkeypatch.setattr(sandbox, "_probe_record", lambda: record)
    sandbox.forget_isolation()
    try:
        real = sandbox.isolation()
        assert record.is_file()  # remembered
        stale = json.loads(record.read_text(encoding="utf-8"))
        stale.update(mount=False, pid=False, packages=["/nonexistent/course"])
        record.write_text(json.dumps(stale), encoding="utf-8")
        sandbox._probed.cache_clear()
        if real.mounts:  # the stale answer sends the run to a package that is not there
            with pytest.raises(GraderError):
                grade(SOLUTION, COURSE, Options(cache_dir=tmp_path / "cache"))
            # Forgotten, or already probed afresh by the run's other sandbox.
            assert not record.exists() or json.loads(record.read_text()) != stale
        else:
            sandbox.forget_isolation()
        assert grade(SOLUTION, COURSE, Options(cache_dir=tmp_path / "cache")).earned > 0
    finally:
        sandbox._probed.cache_clear()


@pytest.fixture
def open_folder() -> Any:
    """A folder every user may enter (pytest's own tmp_path is inside a mode-700 one)."""
    folder = Path(tempfile.mkdtemp(prefix="course-test-")).resolve()
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_unreachable_message_names_the_closed_folder(open_folder: Path) -> None:
    closed = open_folder / "home"
    (closed / "course" / ".venv").mkdir(parents=True)
    closed.chmod(0o700)
    text = jail._unreachable(str(closed / "course" / ".venv"), {"uid": 1234})
    assert f"{closed} is closed to other users (mode 700)" in text
    assert f"chmod o+x {closed}" in text and "uid 1234" in text


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can switch to a throwaway uid")
def test_as_root_a_run_that_cannot_reach_python_fails_setup_with_the_reason(open_folder: Path) -> None:
    closed = open_folder / "closed"
    closed.mkdir(mode=0o700)
    (closed / "python").write_text("")
    config = {"uid": 65534, "gid": 65534, "need": [str(closed / "python")]}
    done = subprocess.run([sys.executable, "-I", "-m", "course.grader.jail", json.dumps(config),
                           "--", "/bin/true"], capture_output=True, text=True, check=False)
    assert done.returncode == jail.SETUP_FAILED
    assert f"cannot reach {closed}/python: {closed} is closed" in done.stderr


# -- the walls of one run -----------------------------------------------------------------

LOOK_AROUND = r'''
import json, os
seen = {"uid": os.getuid(), "pids": sorted(p for p in os.listdir("/proc") if p.isdigit())}
for path in [*paths, "/tmp", "/var/tmp", "/dev/shm"]:
    try:
        seen[path] = sorted(os.listdir(path))
    except OSError as exc:
        seen[path] = type(exc).__name__
written = 0
for folder in ("/tmp", "/dev/shm", "/var/tmp", "."):
    try:
        with open(os.path.join(folder, "fill"), "wb") as handle:
            for _ in range(64):
                handle.write(b"x" * 2**20)
                written += 1
    except OSError:
        pass
seen["written_mb"] = written
print(json.dumps(seen))
'''


def test_a_run_sees_only_itself(tmp_path: Path) -> None:
    iso = sandbox.isolation()
    notes = " ".join(iso.describe(Limits()))
    if not iso.mounts:  # then the report must say that the files were not private
        assert "NO private mounts" in notes
        return
    assert "private file system" in notes
    classmate = tmp_path / "class" / "bob"
    classmate.mkdir(parents=True)
    (classmate / "00_fixture.py").write_text("answer")
    for folder in (tmp_path, tmp_path / "class", classmate):
        folder.chmod(0o755)
    mark = Path("/tmp") / f"course-outside-{os.getpid()}"
    mark.write_text("outside")
    base = Path(tempfile.mkdtemp(prefix="course-grade-"))
    base.chmod(0o711)
    scratch = Scratch(base, sandbox.new_uid())
    try:
        scratch.ini.write_text("[pytest]\n")
        scratch.seal()
        limits = Limits(work_mb=16)
        config = sandbox.jail_config(COURSE, scratch, limits, 30, [])
        paths = [str(classmate), str(FIXTURE / "solutions"), str(Path(jail.PACKAGE).parent)]
        code = f"paths = {paths!r}\n{LOOK_AROUND}"
        done = subprocess.run(
            [sys.executable, "-I", "-m", "course.grader.jail", json.dumps(config), "--",
             sys.executable, "-I", "-c", code],
            capture_output=True, text=True, timeout=60, check=False, cwd=scratch.path,
            env=sandbox.environment(scratch))
    finally:
        scratch.remove()
        mark.unlink()
        os.rmdir(base)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen[str(classmate)] == "FileNotFoundError"
    assert seen[str(FIXTURE / "solutions")] == "FileNotFoundError"
    # Of the course root, only the grader's package (and a virtual environment kept there).
    assert set(seen[str(Path(jail.PACKAGE).parent)]) <= {"course", ".venv"}
    assert mark.name not in seen["/tmp"]
    assert seen["/var/tmp"] == [] and seen["/dev/shm"] == []
    if iso.pid:
        assert seen["pids"] == ["1"]
    # /tmp, /dev/shm, /var/tmp and the work folder share one quota of work_mb.
    assert seen["written_mb"] <= limits.work_mb
    if iso.drop_uid:
        assert seen["uid"] != os.getuid()


def test_the_probe_found_a_sandbox_that_starts_here() -> None:
    found = jail.probe()
    assert "problem" not in found, found.get("problem")
    assert found["packages"] and all(Path(p, "grader", "jail.py").is_file() for p in found["packages"])


def test_removing_a_scratch_folder_never_follows_a_students_link(open_folder: Path) -> None:
    outside = open_folder / "outside"
    outside.mkdir(mode=0o755)
    outside.chmod(0o755)
    scratch = Scratch(open_folder, None)
    (scratch.work / "link").symlink_to(outside, target_is_directory=True)
    scratch.remove()
    assert not scratch.path.exists()
    assert outside.is_dir() and oct(outside.stat().st_mode & 0o777) == "0o755"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can own files as another uid")
def test_without_private_mounts_a_runs_temp_files_are_removed() -> None:
    uid = sandbox.UID_BASE + 12345
    left, kept = Path("/tmp") / f"course-left-{os.getpid()}", Path("/tmp") / f"course-kept-{os.getpid()}"
    (left / "inner").mkdir(parents=True)
    kept.write_text("someone else's")
    for path in (left, left / "inner"):
        os.chown(path, uid, uid)
    try:
        sandbox.remove_leftovers(uid)
        assert not left.exists()
        assert kept.read_text() == "someone else's"
    finally:
        shutil.rmtree(left, ignore_errors=True)
        kept.unlink()


def test_without_private_mounts_grade_all_warns_about_a_readable_class_folder(
        open_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bare = sandbox.Isolation(drop_uid=True, network=False, mounts=False, userns=False)
    monkeypatch.setattr(sandbox, "isolation", lambda: bare)
    assert f"`chmod o-rx {open_folder}` first" in batch.exposed_warning(open_folder)
    open_folder.chmod(0o700)
    assert batch.exposed_warning(open_folder) == ""


def test_a_file_name_that_is_not_utf8_is_reported_printably(tmp_path: Path) -> None:
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / os.fsdecode(b"\xff\xfe.py")).write_text("# %%\nx = 1\n")
    (folder / os.fsdecode(b"hw\xff")).mkdir()
    (folder / os.fsdecode(b"hw\xff") / "00_fixture.py").write_text(SOLUTION.read_text())
    found = discover.find(folder, ["00_fixture"])
    assert found.notebooks["00_fixture"].name == "hw\ufffd/00_fixture.py"
    text = json.dumps(found.problems, ensure_ascii=False)
    text.encode("utf-8")  # a lone surrogate would raise here, as when a report is written
    assert "\ufffd\ufffd.py: not an exercise notebook" in text
