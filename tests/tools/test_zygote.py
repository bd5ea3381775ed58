"""The grader's fork server: its children are what ``exec`` would have made, and no more.

A forked child gets exactly the descriptors, folder and environment it was asked for, a
session of its own before anyone can look it up, and an exit status as Popen reports it;
it inherits none of the grader's environment and cannot reach the zygote's channel.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from course.grader import zygote
from course.grader.zygote import Child, Zygote

PY = sys.executable


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Zygote]:
    # A variable of the grader's own, like an API key: no child may see it anywhere.
    monkeypatch.setenv("GRADER_SECRET", "sk-do-not-leak")
    started = Zygote.start(zygote.clean_env())
    yield started
    started.stop()


def run(server: Zygote, code: str, env: dict[str, str] | None = None,
        **streams: int | None) -> Child:
    streams.setdefault("stdout", subprocess.PIPE)
    return server.popen([PY, "-I", "-c", code], "/", env or {"PATH": "/usr/bin:/bin"},
                        streams.get("stdin"), streams.get("stdout"), streams.get("stderr"))


def test_a_child_runs_and_reports_its_status(server: Zygote) -> None:
    child = run(server, "import sys; print('hello'); sys.exit(3)")
    out, _ = child.communicate(timeout=30)
    assert (out, child.returncode) == (b"hello\n", 3)


def test_a_killed_child_reports_the_signal_as_popen_does(server: Zygote) -> None:
    child = run(server, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert child.wait(timeout=30) == -signal.SIGKILL


def test_the_child_has_a_session_of_its_own_before_popen_returns(server: Zygote) -> None:
    child = run(server, "import time; time.sleep(30)")
    try:
        # jupyter_client looks the group up at once, to kill the kernel later: the zygote's
        # group here would have been the zygote's end.
        assert os.getpgid(child.pid) == child.pid
        assert os.getsid(child.pid) == child.pid
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert server.alive


def test_the_child_gets_exactly_the_descriptors_it_was_given(server: Zygote) -> None:
    read, write = os.pipe()
    try:
        target = 7 if write != 7 else 8
        child = server.spawn(
            [PY, "-I", "-c", f"import os; os.write({target}, ' '.join(sorted("
                             "os.listdir('/proc/self/fd'))).encode())"],
            {target: write, 2: 2}, "/", {"PATH": "/usr/bin:/bin"})
        os.close(write)
        assert child.wait(timeout=30) == 0
        seen = os.read(read, 4096).decode().split()
    finally:
        os.close(read)
    # 0 and 1 are the zygote's own streams, 2 and the target were passed, and one more is
    # the listing's own handle on /proc/self/fd: not the zygote's channel, nor anything else.
    assert str(target) in seen
    assert len(set(seen) - {"0", "1", "2", str(target)}) == 1, f"open in the child: {seen}"


def test_the_grader_environment_stays_out_of_the_child(server: Zygote) -> None:
    child = run(server, "import os; print(os.environ.get('GRADER_SECRET')); "
                        "print(open('/proc/self/environ', 'rb').read().count(b'sk-do-not-leak'))",
                env={"PATH": "/usr/bin:/bin", "ASKED": "yes"})
    out, _ = child.communicate(timeout=30)
    assert out.split() == [b"None", b"0"]


def test_the_child_works_in_the_folder_and_environment_it_asked_for(server: Zygote,
                                                                      tmp_path: Path) -> None:
    child = server.popen([PY, "-I", "-c", "import os, tempfile; "
                                         "print(os.getcwd(), os.environ['ASKED'], tempfile.gettempdir())"],
                         str(tmp_path), {"PATH": "/usr/bin:/bin", "ASKED": "yes",
                                         "TMPDIR": str(tmp_path)}, None, subprocess.PIPE, None)
    out, _ = child.communicate(timeout=30)
    assert out.decode().split() == [str(tmp_path), "yes", str(tmp_path)]


def test_course_modules_run_in_the_fork_and_others_are_executed(server: Zygote) -> None:
    forked = server.popen([PY, "-I", "-m", "course.grader.jail", "--probe"], "/",
                          {"PATH": "/usr/bin:/bin"}, None, subprocess.PIPE, subprocess.DEVNULL)
    out, _ = forked.communicate(timeout=60)
    assert forked.returncode == 0 and out.strip().startswith(b"{")
    executed = run(server, "import sys; print(sys.argv)")
    out, _ = executed.communicate(timeout=30)
    assert out.strip() == b"['-c']"


def test_communicate_gives_up_at_its_timeout(server: Zygote) -> None:
    child = run(server, "import time; time.sleep(30)")
    with pytest.raises(subprocess.TimeoutExpired):
        child.communicate(timeout=0.5)
    child.kill()
    assert child.wait(timeout=30) == -signal.SIGKILL


def test_stopping_waits_for_the_zygote(server: Zygote) -> None:
    run(server, "pass").wait(timeout=30)
    server.stop()
    assert server.proc is not None and server.proc.returncode == 0
    assert not server.alive or server.proc.poll() is not None


def test_turned_off_it_starts_processes_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(zygote.OFF_ENV, "off")
    proc = zygote.popen([PY, "-I", "-c", "print(1)"], cwd="/", env={"PATH": "/usr/bin:/bin"},
                        stdout=subprocess.PIPE)
    assert isinstance(proc, subprocess.Popen)
    assert proc.communicate(timeout=30)[0] == b"1\n"


def test_a_forked_zygote_starts_kernels_that_shut_down_cleanly(tmp_path: Path) -> None:
    """nbval's kernels, forked: jupyter_client starts, uses and stops one as it would a
    process of its own, the kernel is set up as a started one would be, and it ends by
    itself (0), not killed after a wait."""
    script = tmp_path / "kernel.py"
    script.write_text(
        "import sys\n"
        "import ipykernel.kernelapp  # as a batch's zygote has, before any kernel exists\n"
        "from course.grader import zygote\n"
        "zygote.fork_here()\n"
        "zygote.fork_kernels()\n"
        "from jupyter_client.manager import KernelManager\n"
        "km = KernelManager(kernel_name='python3')\n"
        "km.start_kernel()\n"
        "child = km.provisioner.process\n"
        "kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=60)\n"
        "seen = []\n"
        "def keep(msg):\n"
        "    if msg['msg_type'] == 'stream':\n"
        "        seen.append(msg['content']['text'].strip())\n"
        "code = 'from ipykernel.kernelapp import IPKernelApp; '\\\n"
        "       'print(IPKernelApp.instance().parent_handle == int(__import__(\"os\")'\\\n"
        "       '.environ[\"JPY_PARENT_PID\"]))'\n"
        "reply = kc.execute_interactive(code, timeout=30, output_hook=keep)\n"
        "kc.stop_channels()\n"
        "km.shutdown_kernel()\n"
        "print(type(child).__name__, reply['content']['status'], *seen, child.returncode)\n"
        "zygote.stop()\n", encoding="utf-8")
    done = subprocess.run([PY, "-I", str(script)], capture_output=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}, check=False)
    # True: the kernel watches its client (ipykernel reads JPY_PARENT_PID on import, which
    # happened in the zygote, before the kernel had an environment).
    assert done.stdout.decode().split() == ["Child", "ok", "True", "0"], \
        done.stderr.decode()[-2000:]


def test_a_process_forked_by_other_means_gets_a_server_of_its_own() -> None:
    """A ProcessPoolExecutor's process is a fork: the parent's server answers the parent
    alone, so asking it would only wait for a reply that never comes."""
    assert zygote.current() is not None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            child = zygote.popen([PY, "-I", "-c", "print('ok')"], cwd="/",
                                 env={"PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE)
            out, _ = child.communicate(timeout=60)
            os.write(write, f"{type(child).__name__} {out.decode().strip()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 100).decode() == "Child ok"
    finally:
        os.close(read)
        os.waitpid(pid, 0)


def test_without_packet_sockets_processes_start_with_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS has no SOCK_SEQPACKET for Unix sockets: no fork server, and no failure."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(93, "Protocol not supported")

    monkeypatch.setattr(zygote, "_zygote", None)
    monkeypatch.setattr(zygote.socket, "socketpair", refuse)
    zygote.fork_here()
    assert zygote._zygote is None
    proc = zygote.popen([PY, "-I", "-c", "print(1)"], cwd="/", env={"PATH": "/usr/bin:/bin"},
                        stdout=subprocess.PIPE)
    assert isinstance(proc, subprocess.Popen)
    assert proc.communicate(timeout=30)[0] == b"1\n"
