"""A fork server for the grader's processes: Python starts, and pytest is imported, once.

Every run the grader starts is a Python process: the judge's pytest, nbval's pytest in
the sandbox, the worker, the killer of a throwaway uid. Started with ``exec``, each one
paid the interpreter's start-up and imported pytest, nbval or jupyter_client again, and
in a batch that was most of a student's CPU. The zygote is started once per grader
process with a clean environment (for a batch, it imports those modules while it waits)
and forks a child per request. The child becomes exactly what the command would have
been:

- ``python -I -m course.grader.jail CONFIG -- COMMAND``: it locks itself down with the
  same :func:`course.grader.jail.apply`, then carries on with COMMAND;
- ``python -I -m MODULE ARGS`` for a module in :data:`ENTRY_POINTS`: it calls that
  module's ``main`` in-process, with ``sys.argv`` set, and exits with its status;
- anything else: ``exec``, as before.

Trust: the zygote runs only the grader's code. It never holds a submission, a test file,
a nonce or the grader's environment, so a sandboxed child that inherits its memory
inherits nothing worth stealing. It does not even read the requests: the child it forks
takes its own request off the socket, so no student's command, paths or environment
are left in the zygote's memory, freed or not, for the next student's child to find.
A forked child's memory also holds its parent's own state: the judge's workers are
forks of the judge, so the judge is started with nothing in its environment that a
worker may not see. Requests come over a socketpair only the grader holds; the child
closes its end before anything else runs, and there is no named socket to connect to
again. (That is why this is not :mod:`multiprocessing`'s forkserver, which
listens on a path that any process of the same user may connect to.)

The judge forks a zygote of its own (:func:`fork_here`) before pytest starts, so its
workers are born inside its network namespace with the worker's modules already loaded;
nbval's run does the same before it reads the channel's nonce, for its kernels
(:func:`fork_kernels`).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import itertools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

MAX_MESSAGE = 1 << 20
MAX_FDS = 16
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
OFF_ENV = "COURSE_GRADER_ZYGOTE"  # "off": start every process with exec, as before
# Imported while the zygote waits for work (see current()), one at a time, so a request
# never waits for more than one module. Those a child does not need only cost memory.
# What a judge and its worker import (the course's tests and what they use) ...
FOR_TESTS = (
    "course.grader.jail", "course.grader.runner", "pytest", "course.pytest_plugin",
    "pytest_asyncio.plugin", "course.grader.worker", "pydantic", "httpx",
    "course.llm_server.app",
)
# ... and what nbval's run and its kernel import.
FOR_NOTEBOOKS = (
    "nbval.plugin", "jupyter_client", "nbformat", "ipykernel.kernelapp", "ipykernel.ipkernel",
    "ipykernel.debugger",
)


def _runner_main(args: list[str]) -> int:
    from course.grader import runner

    return runner.main()


def _worker_main(args: list[str]) -> int:
    from course.grader import worker

    return worker.main(args)


def _kernel_main(args: list[str]) -> int:
    from ipykernel import kernelapp

    # ipykernel reads JPY_PARENT_PID when it is imported, which was in the zygote, before
    # this kernel had an environment: without it, a kernel whose client died runs on.
    parent = os.environ.get("JPY_PARENT_PID")
    if parent:
        sys.argv.append(f"--IPKernelApp.parent_handle={parent}")
    kernelapp.launch_new_instance()
    return 0


def _jail_main(args: list[str]) -> int:
    from course.grader import jail

    return jail.main(args, run=become)


# The modules a child runs in-process instead of starting a new Python for them.
ENTRY_POINTS: dict[str, Callable[[list[str]], int]] = {
    "course.grader.runner": _runner_main,
    "course.grader.worker": _worker_main,
    "course.grader.jail": _jail_main,
    "ipykernel_launcher": _kernel_main,  # nbval's kernels (it drops the folder from sys.path)
}


def become(command: list[str]) -> int:
    """Run ``command`` in this process if it is one of ours; otherwise ``exec`` it."""
    flags = command[1:3] if command[1:2] == ["-I"] else command[1:2]
    rest = command[1 + len(flags):]
    if command[:1] == [sys.executable] and flags[-1:] == ["-m"] and rest \
            and rest[0] in ENTRY_POINTS:
        sys.argv = list(rest)  # as `python -m` would, but for the module's name
        return ENTRY_POINTS[rest[0]](rest[1:])
    from course.grader import jail

    return jail.execute(command)


# ---------------------------------------------------------------------------------------
# The zygote's side


def serve(sock: socket.socket, preload: Sequence[str]) -> None:
    """Answer requests until the grader closes its end; import ``preload`` between them."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    todo = list(preload)
    try:
        while True:
            ready, _, _ = select.select([sock.fileno(), wake_read], [], [], 0 if todo else None)
            if wake_read in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_read, 4096)
                _reap(sock)
            if sock.fileno() in ready:
                if not sock.recv(1, socket.MSG_PEEK):
                    _reap(None)  # the grader has gone: end, collecting what already ended
                    return
                _fork_child(sock, (wake_read, wake_write))
            elif not ready and todo:
                with contextlib.suppress(Exception):  # a child that needs it says why
                    __import__(todo.pop(0))
    except (BrokenPipeError, ConnectionResetError):
        return


def _receive(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The next request on the socket and the descriptors that came with it."""
    message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
    return json.loads(message), fds


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode())


def _reap(sock: socket.socket | None) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if sock is not None:
            _send(sock, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _fork_child(sock: socket.socket, own: tuple[int, int]) -> None:
    """Fork, and let the child take the waiting request off the socket and answer it.

    The zygote itself never reads a request: its memory, which every later child
    inherits (another student's worker, kernel or judge), never holds one, not even as
    freed bytes. It waits until the child has taken the request and has a session of its
    own; only then is the pid sent, because the grader (or jupyter_client) may look up
    the child's process group at once, to kill it later.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    in_session, session_done = os.pipe()
    # The collector would touch every inherited object's header, copying each page of the
    # zygote's heap into the child: frozen, those objects are left alone.
    gc.freeze()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(in_session)
        os.close(session_done)
        request, fds = _receive(sock)  # read here only to say no
        for fd in fds:
            os.close(fd)
        _send(sock, {"id": request["id"], "error": f"fork failed: {exc}"})
        return
    if pid == 0:
        code = 1
        try:
            os.close(in_session)
            request, fds = _receive(sock)
            os.setsid()
            # Sent before this child can end: its "exited" (sent by the zygote, which
            # reaps it) always comes after it on the socket.
            _send(sock, {"id": request["id"], "pid": os.getpid()})
            os.close(session_done)
            sock.close()
            for fd in own:
                os.close(fd)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            code = _child(request, fds)
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except BaseException:
            import traceback

            with contextlib.suppress(Exception):
                traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os._exit(code)
    os.close(session_done)
    with contextlib.suppress(OSError):
        # b"" once the child has taken the request and has its session (or died: then
        # the request is still there, and the next turn of the loop forks again)
        os.read(in_session, 1)
    os.close(in_session)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def _child(request: dict[str, Any], fds: list[int]) -> int:
    """In the forked child: take the request's descriptors, folder and environment, then
    become its command."""
    targets, cwd = [int(t) for t in request["targets"]], request["cwd"]
    env, command = dict(request["env"]), list(request["command"])
    # The request dict stays reachable from the frames below this one for as long as the
    # child runs: empty it, or a worker forked from the judge's zygote (which the judge
    # forked inside its own request's frames) walks up to the judge's environment.
    request.clear()
    _place(fds, targets)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    del env
    import tempfile

    tempfile.tempdir = None  # found again from TMPDIR, which is the run's own
    return become(command)


def _place(fds: list[int], targets: list[int]) -> None:
    """Put each received descriptor at its target number; close every other one."""
    high = max([*fds, *targets, 2]) + 1
    moved = [os.dup2(fd, high + i, inheritable=False) for i, fd in enumerate(fds)]
    for fd in fds:
        os.close(fd)
    for fd, target in zip(moved, targets, strict=True):
        os.dup2(fd, target, inheritable=True)
    keep = sorted(set(targets) | {0, 1, 2})
    start = 0
    for fd in keep:
        if fd > start:
            os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, os.sysconf("SC_OPEN_MAX"))


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[0]))
    preload = next((a.partition("=")[2] for a in argv if a.startswith("--preload=")), "")
    serve(sock, [name for name in preload.split(",") if name])
    os._exit(0)  # no interpreter shutdown to sit through: nothing here needs cleaning up


# ---------------------------------------------------------------------------------------
# The grader's side


class Child:
    """A process the zygote forked, with the part of :class:`subprocess.Popen` the grader
    uses. Its exit status comes from the zygote, which reaps it."""

    def __init__(self, zygote: Zygote, pid: int, args: list[str]) -> None:
        self.zygote, self.pid, self.args = zygote, pid, args
        self.returncode: int | None = None
        self.stdin: IO[bytes] | None = None
        self.stdout: IO[bytes] | None = None
        self.stderr: IO[bytes] | None = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self.zygote.wait_for(self, timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, number: int) -> None:
        if self.returncode is None:  # once reaped, the pid may be another process's
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, number)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def communicate(self, timeout: float | None = None) -> tuple[bytes, None]:
        """Read stdout to its end, then wait: as Popen does with ``stdout=PIPE`` only."""
        deadline = None if timeout is None else time.monotonic() + timeout
        chunks = []
        if self.stdout is not None:
            fd = self.stdout.fileno()
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout or 0)
                ready, _, _ = select.select([fd], [], [], left)
                if ready:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        break
                    chunks.append(chunk)
            self.stdout.close()
        left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        self.wait(left)
        return b"".join(chunks), None


Process = subprocess.Popen[bytes] | Child


class Zygote:
    """The grader's handle on one zygote: send it requests, learn its children's ends."""

    def __init__(self, sock: socket.socket, pid: int,
                 proc: subprocess.Popen[bytes] | None = None) -> None:
        self.sock, self.pid, self.proc = sock, pid, proc
        self.lock = threading.Lock()  # one request on the socket at a time
        self.changed = threading.Condition()
        self.replies: dict[int, dict[str, Any]] = {}
        self.exits: dict[int, int] = {}
        self.children: dict[int, Child] = {}
        self.ids = itertools.count(1)
        self.alive = True
        threading.Thread(target=self._listen, name="zygote", daemon=True).start()
        atexit.register(self.stop)

    @classmethod
    def start(cls, env: dict[str, str], preload: Sequence[str] = ()) -> Zygote:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-m", "course.grader.zygote", str(theirs.fileno()),
                 *([f"--preload={','.join(preload)}"] if preload else [])],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env,
                start_new_session=True, cwd="/",
            )
        return cls(ours, proc.pid, proc)

    def _listen(self) -> None:
        try:
            while True:
                data = self.sock.recv(MAX_MESSAGE)
                if not data:
                    break
                message = json.loads(data)
                with self.changed:
                    if "exited" in message:
                        pid, code = int(message["exited"]), int(message["code"])
                        child = self.children.pop(pid, None)
                        if child is not None:
                            child.returncode = code
                        else:
                            self.exits[pid] = code
                    else:
                        self.replies[int(message["id"])] = message
                    self.changed.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self.changed:
                self.alive = False
                self.changed.notify_all()

    def wait_for(self, child: Child, timeout: float | None) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: child.returncode is not None or not self.alive,
                                         timeout) and child.returncode is not None

    def spawn(self, command: list[str], fds: dict[int, int], cwd: str,
              env: dict[str, str]) -> Child:
        """Fork a child that runs ``command`` with ``fds`` (target number: descriptor here)."""
        number = next(self.ids)
        request = {"id": number, "command": command, "cwd": cwd, "env": env,
                   "targets": list(fds)}
        with self.lock:
            socket.send_fds(self.sock, [json.dumps(request).encode()], list(fds.values()))
        with self.changed:
            if not self.changed.wait_for(lambda: number in self.replies or not self.alive,
                                         STARTUP_TIMEOUT) or number not in self.replies:
                raise OSError("the grader's fork server did not answer")
            reply = self.replies.pop(number)
            if "error" in reply:
                raise OSError(reply["error"])
            child = Child(self, int(reply["pid"]), command)
            if child.pid in self.exits:
                child.returncode = self.exits.pop(child.pid)
            else:
                self.children[child.pid] = child
            return child

    def popen(self, command: list[str], cwd: str, env: dict[str, str], stdin: int | None,
              stdout: int | None, stderr: int | None, pass_fds: Sequence[int] = ()) -> Child:
        """Fork a child with its standard streams set up as :func:`popen` describes."""
        theirs: dict[int, int] = {}
        close_after: list[int] = []
        ours: dict[int, int] = {}

        def stream(target: int, how: int | None, writable: bool) -> None:
            if how is None:
                theirs[target] = target
            elif how == subprocess.DEVNULL:
                fd = os.open(os.devnull, os.O_RDWR)
                theirs[target] = fd
                close_after.append(fd)
            elif how == subprocess.PIPE:
                read, write = os.pipe()
                theirs[target], ours[target] = (write, read) if writable else (read, write)
                close_after.append(theirs[target])
            elif how == subprocess.STDOUT:
                theirs[target] = theirs[1]
            else:
                theirs[target] = how

        stream(0, stdin, writable=False)
        stream(1, stdout, writable=True)
        stream(2, stderr, writable=True)
        for fd in pass_fds:
            theirs[fd] = fd
        try:
            child = self.spawn(command, theirs, cwd, env)
        except OSError:
            for fd in ours.values():
                os.close(fd)
            raise
        finally:
            for fd in close_after:
                os.close(fd)
        if 0 in ours:
            child.stdin = os.fdopen(ours[0], "wb")
        if 1 in ours:
            child.stdout = os.fdopen(ours[1], "rb")
        if 2 in ours:
            child.stderr = os.fdopen(ours[2], "rb")
        return child

    def stop(self) -> None:
        """Close the request channel and wait for the zygote to end: waited for, its CPU
        (and its children's) is counted in this process's ``RUSAGE_CHILDREN``."""
        with contextlib.suppress(OSError):
            # shutdown, not only close: the listening thread's recv() holds the socket
            # open, and the zygote would never see its end.
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(self.pid, os.WNOHANG)[0] == 0:
                if time.monotonic() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    break
                time.sleep(0.005)


_zygote: Zygote | None = None
_zygote_lock = threading.Lock()


def _forget_after_fork() -> None:
    """In a child forked by other means (a ProcessPoolExecutor, a probe that forks): the
    parent's zygote answers the parent only, and its listening thread did not come along."""
    global _zygote, _zygote_lock
    _zygote, _zygote_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def clean_env() -> dict[str, str]:
    """The zygote's own environment, which its children's /proc/self/environ shows: none of
    the grader's variables (tokens, keys), only what Python needs to start."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1"}  # or debugpy warns on import


def enabled() -> bool:
    return os.environ.get(OFF_ENV) != "off"


def current(preload: Sequence[str] = ()) -> Zygote | None:
    """This process's zygote, started on first use; None where it is turned off or broke.

    ``preload``: modules to import while it waits, where it serves many runs: a batch,
    nbval's kernels, a notebook's check() calls. A single ``course check`` does without:
    its runs start at once, and imports in the zygote would only compete with them for
    the cores (measured: 0.2 s slower)."""
    global _zygote
    if not enabled():
        return None
    with _zygote_lock:
        if _zygote is None or not _zygote.alive:
            try:
                _zygote = Zygote.start(clean_env(), preload)
            except (OSError, AttributeError):  # no SOCK_SEQPACKET here: exec, as before
                return None
        return _zygote


def popen(command: list[str], *, cwd: str, env: dict[str, str],
          stdin: int | None = None, stdout: int | None = None, stderr: int | None = None,
          pass_fds: Sequence[int] = (), start_server: bool = True) -> Process:
    """Start ``command`` as :class:`subprocess.Popen` would (in a session of its own), but
    forked from the zygote when there is one (``start_server``: start it if need be).
    ``stdin``/``stdout``/``stderr``: None (this process's own), ``subprocess.DEVNULL``,
    ``subprocess.PIPE`` or, for stderr, ``subprocess.STDOUT``. ``env`` is required: a
    forked child keeps whatever its request carried in its memory, so the grader's own
    environment is never the default."""
    zygote = current() if start_server else _zygote if _zygote and _zygote.alive else None
    if zygote is not None:
        with contextlib.suppress(OSError):
            return zygote.popen(command, cwd, env, stdin, stdout, stderr, pass_fds)
    return subprocess.Popen(command, cwd=cwd, env=env, stdin=stdin, stdout=stdout,
                            stderr=stderr, pass_fds=tuple(pass_fds), start_new_session=True)


def _stream(how: Any) -> int | None:
    return how.fileno() if hasattr(how, "fileno") else how  # type: ignore[no-any-return]


def _kernel_popen(cmd: list[str], *, stdin: Any = None, stdout: Any = None, stderr: Any = None,
                  cwd: str | None = None, env: dict[str, str] | None = None,
                  **rest: Any) -> Process:
    """``subprocess.Popen`` as jupyter_client's kernel launcher calls it, forked from this
    process's zygote. Anything it does not expect goes to the real Popen."""
    if rest.pop("start_new_session", True) is not True or rest:
        return subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd,
                                env=env, start_new_session=True, **rest)
    # jupyter_client always passes env; without one a kernel would get the (sandboxed) parent's
    return popen(cmd, cwd=cwd or os.getcwd(), env=dict(os.environ) if env is None else env,
                 stdin=_stream(stdin), stdout=_stream(stdout), stderr=_stream(stderr),
                 start_server=False)


def fork_kernels() -> None:
    """Start nbval's kernels as forks: of the zygote this process forked (nbval's run in
    the sandbox), or of one it starts now, which imports ipykernel while pytest collects
    (a maintainer's nbval run of the course's notebooks)."""
    if _zygote is None:
        current(preload=FOR_TESTS + FOR_NOTEBOOKS)  # kernels import what notebooks and checks use
    from jupyter_client import launcher

    launcher.Popen = _kernel_popen  # type: ignore[attr-defined,assignment]


def fork_here() -> None:
    """Make this process's zygote a fork of itself, taken while it has one thread and
    before it holds anything to keep from its children: the judge's, before pytest
    starts, so its workers are born inside its network namespace with their modules
    loaded; nbval's in the sandbox, before the course's plugin reads the channel's nonce,
    so the kernels that run the notebook start in a fork instead of a new Python."""
    global _zygote
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except (OSError, AttributeError):  # no SOCK_SEQPACKET (macOS): start processes with exec
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            ours.close()
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):  # hold none of the parent's pipes open past its end
                os.dup2(null, fd)
            os.close(null)
            _place([theirs.fileno()], [theirs.fileno()])  # nor its channel, nor its nonce
            serve(theirs, ())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    theirs.close()
    _zygote = Zygote(ours, pid)


def stop() -> None:
    """End this process's zygote, if it has one (a child of a zygote ends with ``os._exit``,
    which skips atexit)."""
    if _zygote is not None:
        _zygote.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
