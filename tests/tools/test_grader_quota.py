"""The total quota per sandboxed run: one cgroup caps its memory, processes and CPU.

A submission that spreads its memory over many processes (each within the per-process
limit) is graded in one class with honest students: their scores must not change, the
attacker's feedback must name the quota it hit, and no run's cgroup may be left behind.
Where cgroups cannot be used, grading must still work and say, once, that the total
quota is off. These tests need the machine's cgroups (CI runs as root in a container
that has them); without them only the fallback tests run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from course.grader import jail, quota, sandbox
from course.grader.batch import grade_all
from course.grader.engine import Options
from course.grader.layout import Course
from course.grader.sandbox import Limits, Scratch

HERE = Path(__file__).parent
FIXTURE = HERE / "fixtures" / "course"
SOLUTION = FIXTURE / "solutions" / "00_fixture.py"
ATTACKER = HERE / "hostile" / "hoards_in_many_processes.py"
# Ten seconds an exercise: room for the attacker to fill its quota on a busy machine.
LIMITS = Limits(exercise_timeout=10, notebook_timeout=30, total_timeout=120, memory_mb=1024,
                processes=32, output_kb=16, total_memory_mb=1024)
KEYS = ("00_fixture:add", "00_fixture:greet", "00_fixture:counter",
        "00_fixture:runs_top_to_bottom")

needs_cgroups = pytest.mark.skipif(
    quota.find().place is None,
    reason=f"no usable cgroups on this machine: {quota.find().problem}")


def _ours(place: quota.Place) -> list[str]:
    """This process's runs' cgroups that still exist."""
    mine = quota.owner_prefix()
    return [os.path.join(folder, name) for folder in set(place.folders.values())
            for name in os.listdir(folder) if name.startswith(mine)]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("quota-class")
    klass = root / "class"
    for name, source in (("attacker", ATTACKER), ("honest_a", SOLUTION),
                         ("honest_b", SOLUTION)):
        (klass / name).mkdir(parents=True)
        shutil.copy(source, klass / name / "00_fixture.py")
    out = root / "out"
    stream = io.StringIO()
    options = Options(limits=LIMITS, cache_dir=root / "cache")
    status = grade_all(klass, out, Course.at(FIXTURE), options, jobs=2, stream=stream)
    summary = {s["student"]: s for s in json.loads((out / "summary.json").read_text())}
    return {"status": status, "out": out, "students": summary, "said": stream.getvalue()}


def _exercise(batch: dict[str, Any], student: str, exercise: str) -> dict[str, Any]:
    report = json.loads((batch["out"] / "students" / student / "report.json").read_text())
    found: dict[str, Any] = next(e for c in report["chapters"] for e in c["exercises"]
                                 if e["id"] == exercise)
    return found


@needs_cgroups
def test_honest_classmates_keep_every_point(batch: dict[str, Any]) -> None:
    assert batch["status"] == 0
    for name in ("honest_a", "honest_b"):
        student = batch["students"][name]
        assert tuple(student["exercises"][k] for k in KEYS) == (3, 1, 3, 1), student
        assert not student.get("error"), student


@needs_cgroups
def test_the_attacker_is_told_which_quota_it_hit(batch: dict[str, Any]) -> None:
    student = batch["students"]["attacker"]
    assert tuple(student["exercises"][k] for k in KEYS) == (0, 1, 3, 0), student
    add = _exercise(batch, "attacker", "add")["tests"][0]
    # Beside the probe's error (or its timeout, on a slow machine): the judge's own
    # reading of the run's cgroup, which the submission cannot write.
    assert "1024 MB memory quota, files in its /tmp included" in add["message"], add
    runs = _exercise(batch, "attacker", "runs_top_to_bottom")
    assert "1024 MB memory quota" in runs["note"], runs


@needs_cgroups
def test_every_runs_cgroup_is_removed(batch: dict[str, Any]) -> None:
    place = quota.find().place
    assert place is not None
    assert batch["status"] == 0
    assert _ours(place) == []
    assert "not enforced" not in batch["said"]


# Forks up to 20 sleeping children, then ends them and says how many it got.
FORKS = """
import os, signal, time
kids = []
for _ in range(20):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.kill(pid, signal.SIGKILL)
print(len(kids))
"""
# Three children of 60 MB each, every one within any per-process limit: waits until
# one of them ends, ends the others, and says how that one ended.
HOARDS = """
import os, signal, time
kids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        hoard = b"x" * 60_000_000
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
_, status = os.wait()
for pid in kids:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
print(f"killed by {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else "not killed")
"""


def _jailed(group: quota.RunCgroup, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` through the jail with only the cgroup step (as the grader would)."""
    return subprocess.run(jail.command({"cgroup": group.join_files()},
                                       [sys.executable, "-I", "-c", code]),
                          capture_output=True, text=True, timeout=120, check=False)


@contextlib.contextmanager
def _run_cgroup(memory_mb: int, processes: int, cpus: float) -> Iterator[quota.RunCgroup]:
    """A run's cgroup, made as the grader makes one and removed whatever the test does."""
    place = quota.find().place
    assert place is not None
    group = quota.RunCgroup(place, memory_mb=memory_mb, processes=processes, cpus=cpus)
    group.create()
    try:
        yield group
    finally:
        group.remove()


@needs_cgroups
def test_a_run_cannot_hold_more_processes_than_its_quota() -> None:
    with _run_cgroup(memory_mb=256, processes=6, cpus=1.0) as group:
        done = _jailed(group, FORKS)
        assert done.returncode == 0, done.stderr
        assert int(done.stdout) == 5  # the jail's own python is the sixth
        hit = quota.counters(group.describe())
        assert "quota of 6 processes" in quota.explain(group.describe(), {}, hit)
    assert _ours(group.place) == []
    assert all(not os.path.exists(f) for f in group.folders().values())


@needs_cgroups
def test_a_run_cannot_use_more_memory_than_its_quota() -> None:
    with _run_cgroup(memory_mb=96, processes=16, cpus=1.0) as group:
        done = _jailed(group, HOARDS)
        assert done.stdout.strip() == "killed by 9", done.stderr
        said = quota.explain(group.describe(), {}, quota.counters(group.describe()))
        assert "96 MB memory quota" in said
    assert all(not os.path.exists(f) for f in group.folders().values())


@needs_cgroups
def test_a_killed_graders_leftover_cgroup_is_removed_by_the_next() -> None:
    place = quota.find().place
    assert place is not None
    # Named as a grader of this PID namespace that no longer runs would have named it,
    # with a process inside; and one from another namespace, which is not ours to judge.
    namespace = quota.owner_prefix().removeprefix(quota.PREFIX).split("-")[0]
    leftover = quota.RunCgroup(place, 128, 8, 1.0,
                               name=f"{quota.PREFIX}{namespace}-999999999-1-1")
    elsewhere = quota.RunCgroup(place, 128, 8, 1.0, name=f"{quota.PREFIX}1-999999999-1-1")
    leftover.create()
    elsewhere.create()
    stray = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        for procs in leftover.join_files():
            Path(procs).write_text(str(stray.pid))
        assert quota.sweep(place) == [leftover.name]
        assert stray.wait(timeout=30) == -9
        assert all(not os.path.exists(f) for f in leftover.folders().values())
        assert all(os.path.isdir(f) for f in elsewhere.folders().values())
    finally:
        stray.kill()
        stray.wait()
        leftover.remove()
        elsewhere.remove()


@needs_cgroups
def test_a_run_gets_no_more_cpu_time_than_its_quota() -> None:
    place = quota.find().place
    assert place is not None
    if "cpu" not in place.folders:
        pytest.skip("this machine's cgroups offer no cpu controller")
    with _run_cgroup(memory_mb=128, processes=8, cpus=0.1) as group:
        # 30 ms of CPU time (counted by the kernel, not the clock) in a quota of 10 ms
        # per 100 ms period: the kernel must have held the run back at least twice.
        done = _jailed(group, "import time\nstart = time.process_time()\n"
                              "while time.process_time() - start < 0.03:\n    pass")
        assert done.returncode == 0, done.stderr
        stat = Path(group.folders()["cpu"], "cpu.stat").read_text().split()
        assert int(stat[stat.index("nr_throttled") + 1]) >= 2


def test_without_cgroups_grading_works_and_says_the_quota_is_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = tmp_path / "no-cgroups"  # holds no cgroup hierarchy at all
    nowhere.mkdir()
    monkeypatch.setenv(quota.ENV, str(nowhere))
    klass = tmp_path / "class"
    for name in ("honest_a", "honest_b"):
        (klass / name).mkdir(parents=True)
        shutil.copy(SOLUTION, klass / name / "00_fixture.py")
    stream = io.StringIO()
    status = grade_all(klass, tmp_path / "out", Course.at(FIXTURE),
                       Options(limits=LIMITS, cache_dir=tmp_path / "cache"), jobs=2,
                       stream=stream)
    assert status == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [s["score"] for s in summary] == [8, 8]
    # Once for the class, in plain words, and in each report's sandbox line.
    assert stream.getvalue().count("not enforced on this machine") == 1
    text = (tmp_path / "out" / "students" / "honest_a" / "report.txt").read_text()
    assert "total quota: NOT enforced on this machine" in text
    assert str(nowhere) in text
    assert list(nowhere.iterdir()) == []


def test_turned_off_no_run_gets_a_cgroup(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(quota.ENV, "off")
    assert quota.find() == quota.Found(None, f"turned off ({quota.ENV}=off)")
    scratch = Scratch(tmp_path, None)
    try:
        config = sandbox.jail_config(Course.at(FIXTURE), scratch, LIMITS, 30, [])
    finally:
        scratch.remove()
    assert "cgroup" not in config and scratch.quota is None
    assert "total quota: NOT enforced" in " ".join(sandbox.isolation().describe(LIMITS))


@needs_cgroups
def test_each_run_gets_its_own_cgroup_and_loses_it(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path, None)
    try:
        config = sandbox.jail_config(Course.at(FIXTURE), scratch, LIMITS, 30, [])
        assert scratch.quota is not None
        assert config["cgroup"] == scratch.quota.join_files()
        assert all(os.path.isfile(f) for f in config["cgroup"])
    finally:
        scratch.remove()
    assert all(not os.path.exists(os.path.dirname(f)) for f in config["cgroup"])


def test_a_jail_that_cannot_join_its_cgroup_refuses_to_start(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "cgroup.procs"
    done = subprocess.run([sys.executable, "-I", "-m", "course.grader.jail",
                           json.dumps({"cgroup": [str(missing)]}), "--", "/bin/true"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == jail.SETUP_FAILED
    assert "cannot join the run's cgroup" in done.stderr


def test_cgroup_v2_files_are_written_and_read_as_the_kernel_names_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in v2 root (plain files: no kernel behind it) whose controllers are
    # already delegated, so only the file names and formats are under test here.
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    monkeypatch.setenv(quota.ENV, str(tmp_path))
    found = quota.find()
    assert found.place == quota.Place(2, {c: str(tmp_path) for c in ("memory", "pids", "cpu")})
    group = quota.RunCgroup(found.place, memory_mb=1024, processes=64, cpus=1.5)
    group.create()
    folder = Path(group.folders()["memory"])
    assert (folder / "memory.max").read_text() == str(2**30)
    assert (folder / "pids.max").read_text() == "64"
    assert (folder / "cpu.max").read_text() == "150000 100000"
    assert group.join_files() == [str(folder / "cgroup.procs")]
    info = group.describe()
    assert quota.counters(info) == {"oom": 0, "pids": 0}
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
    (folder / "pids.events").write_text("max 3\n")
    hit = quota.counters(info)
    assert hit == {"oom": 1, "pids": 3}
    said = quota.explain(info, {}, hit)
    assert "1024 MB memory quota" in said and "quota of 64 processes" in said
    assert quota.explain(info, hit, hit) == ""
