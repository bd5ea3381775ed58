"""The first code that runs in a sandboxed child: lock it down, then exec the real command.

``python -I -m course.grader.jail CONFIG -- COMMAND...`` applies what ``CONFIG`` asks:

- a new network namespace with only loopback up;
- a new mount namespace whose root is a fresh, nearly empty tmpfs: the system folders
  (``/usr``, ``/etc``, ...), the Python installation, the grader's own ``course``
  package and this run's scratch folder are bound in read-only at their usual paths,
  and nothing else exists. A classmate's submission, the class folder, the course's
  ``solutions/``, another clone of the course, ``/root`` and ``/home``: none of them
  is there to be read, whatever their modes. Because the paths are bound one by one,
  a folder others may not enter (``/root`` mode 700 holding the venv) is no obstacle;
- one size-capped tmpfs shared by the working folder, ``/tmp``, ``/var/tmp`` and
  ``/dev/shm``: the run's total disk quota, private to it and gone when it ends;
- a new PID namespace with its own ``/proc``: the run sees only its own processes, not
  the grader's command line nor another run's, and when its first process ends the
  kernel kills every process left in it; and a new IPC namespace, so System V shared
  memory and message queues are private to the run and end with it;
- before all of the above, when ``cgroup`` names them, it joins the run's cgroups (its
  total memory, process and CPU quota, made by :mod:`course.grader.quota`): done first
  and by this process itself, every later process of the run is born inside them, with
  no window between a fork and a move for one to escape;
- resource limits, and (as root) a switch to a throwaway uid/gid with no supplementary
  groups and no way to regain privileges; without root, a user namespace stands in for
  root to build the mounts, and the command runs under the user's own uid, with no
  capabilities.

Then it ``exec``s the command. The grader's own processes do not exec this module: they
ask the fork server (:mod:`course.grader.zygote`), whose child calls :func:`apply` and
then runs the command's module in-process, so no Python start or import is paid again.
Either way, the grader's Python state never reaches the child: the fork server is a
process of its own that holds nothing but imported modules, because the grader is
threaded and a ``preexec_fn`` is unsafe there. This module imports only the standard
library.

``--probe`` prints which of these this machine allows; ``--kill-uid UID`` kills every
process of a throwaway uid, which also catches children that left the process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import platform
import resource
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME = 32, 1024, 2048
MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE, MS_RELATIME = 0x1000, 0x2000, 0x4000, 1 << 18, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
LIMITS = {
    "cpu": resource.RLIMIT_CPU,
    "as": resource.RLIMIT_AS,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "core": resource.RLIMIT_CORE,
}
SETUP_FAILED = 97  # exit status the grader reads as "the sandbox could not be set up"
# What every run needs from the machine; each is bound read-only if it exists.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
                "/nix", "/sys")
PRIVATE = ("/tmp", "/var/tmp", "/dev/shm")  # writable, but only within the run's quota
DEVICES = ("null", "zero", "full", "random", "urandom")
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the `course` package

_libc = ctypes.CDLL(None, use_errno=True)


class JailError(Exception):
    pass


def _call(name: str, *args: Any) -> None:
    if getattr(_libc, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise JailError(f"{name}: {os.strerror(errno)}")


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    try:
        _call(
            "mount", source.encode(), target.encode(), fstype.encode() if fstype else None,
            ctypes.c_ulong(flags), data.encode() if data else None,
        )
    except JailError as exc:
        raise JailError(f"{exc} (mounting {source} on {target})") from None


def _user_namespace(as_self: bool) -> None:
    """Unprivileged: a private user namespace that gives this process the capabilities to
    build mounts and namespaces, mapped to our own uid.

    ``as_self`` maps our uid to itself, not to root: the process keeps its capabilities
    until it ``exec``s, and then, with a non-zero uid, loses them all, so student code
    cannot undo the mounts built here. Without it (a trusted process such as the judge,
    which itself starts sandboxed workers) the uid becomes root of the namespace.
    """
    uid, gid = os.getuid(), os.getgid()
    inner_uid = _outside("uid_map", uid) if as_self else 0
    inner_gid = _outside("gid_map", gid) if as_self else 0
    _call("unshare", CLONE_NEWUSER)
    for name, text in (("setgroups", "deny"), ("uid_map", f"{inner_uid} {uid} 1"),
                       ("gid_map", f"{inner_gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)


def _outside(name: str, local: int) -> int:
    """What ``local`` is in the initial user namespace (the user's real uid or gid)."""
    with contextlib.suppress(OSError, ValueError), open(f"/proc/self/{name}") as handle:
        for line in handle:
            inside, outside, count = (int(x) for x in line.split())
            if inside <= local < inside + count:
                return outside + local - inside
    return local


def _root_of_a_user_namespace() -> bool:
    """Whether we are uid 0 of a user namespace other than the machine's own."""
    if os.getuid() != 0:
        return False
    with contextlib.suppress(OSError), open("/proc/self/uid_map") as handle:
        return handle.read().split() != ["0", "0", "4294967295"]
    return False


def _locked_flags(path: str) -> int:
    """The flags a read-only remount must keep (in a user namespace they are locked)."""
    found = os.statvfs(path).f_flag
    pairs = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
             (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
             (os.ST_RELATIME, MS_RELATIME))
    return sum(ms for st, ms in pairs if found & st)


def _bind(source: str, target: str, *, writable: bool = False, recursive: bool = True) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            with open(target, "w"):
                pass
    _mount(source, target, None, MS_BIND | (MS_REC if recursive else 0), None)
    if not writable:
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | _locked_flags(target)
        _mount("none", target, None, flags, None)


def _inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _copy_into(source: str, folder: str, uid: int | None, gid: int | None) -> None:
    target = os.path.join(folder, os.path.basename(source))
    with open(source, "rb") as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    if uid is not None and gid is not None:
        os.chown(target, uid, gid)


def _build_root(config: dict[str, Any]) -> None:
    """Populate the new root (a tmpfs on ``config['root']``) with only what the run needs."""
    root, uid, gid = config["root"], config.get("uid"), config.get("gid")
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    # One tmpfs holds everything the run may write: its size is the run's disk quota.
    private = _inside(root, ".private")
    os.mkdir(private)
    _mount("tmpfs", private, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={int(config.get('work_mb', 64))}m,mode=0755")
    for name in (*PRIVATE, "work"):
        folder = os.path.join(private, name.strip("/").replace("/", "_"))
        os.mkdir(folder)
        os.chmod(folder, 0o1777 if name != "work" else 0o700)
    # The private folders first: the scratch folder is often inside /tmp.
    _build_dev(root)
    for name in PRIVATE:
        _bind(os.path.join(private, name.strip("/").replace("/", "_")), _inside(root, name),
              writable=True)
    for path in SYSTEM_PATHS:
        if os.path.islink(path):  # /bin -> usr/bin on a merged-/usr system
            os.symlink(os.readlink(path), _inside(root, path))
    # Sorted, so that a parent is bound before anything inside it (then the child is
    # already there). Not recursive where it holds this root's own staging folder.
    bound: list[str] = []
    for path in sorted(dict.fromkeys(os.path.realpath(p) for p in config.get("binds", [])),
                       key=len):
        if not os.path.exists(path) or os.path.islink(_inside(root, path)):
            continue
        if any(path == b or path.startswith(b.rstrip("/") + "/") for b in bound):
            continue
        _bind(path, _inside(root, path), recursive=not root.startswith(path.rstrip("/") + "/"))
        bound.append(path)
    work = config.get("work")
    if work:
        source = os.path.join(private, "work")
        if uid is not None and gid is not None:
            os.chown(source, uid, gid)
        for item in config.get("copy_in", []):
            _copy_into(item, source, uid, gid)
        _bind(source, _inside(root, work), writable=True)
    _libc.umount2(private.encode(), MNT_DETACH)
    os.rmdir(private)
    for path in config.get("hide", []):
        if os.path.isdir(_inside(root, path)):
            flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
            _mount("tmpfs", _inside(root, path), "tmpfs", flags, "size=4k,mode=0555")
    os.makedirs(_inside(root, "/proc"), exist_ok=True)
    # Built: the skeleton itself (folders leading to the binds, /dev) becomes read-only,
    # so the run can write only within its quota (without root, it would own them).
    for skeleton in (_inside(root, "/dev"), root):
        _mount("none", skeleton, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def _build_dev(root: str) -> None:
    dev = _inside(root, "/dev")
    os.makedirs(dev, exist_ok=True)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID, "size=64k,mode=0755")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _bind(f"/dev/{name}", os.path.join(dev, name), writable=True)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(dev, name))
    os.mkdir(os.path.join(dev, "shm"))


def _pivot(root: str) -> None:
    """Make ``root`` the file system root and drop the old one entirely."""
    os.chdir(root)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is not None and _libc.syscall(number, b".", b".") == 0:
        # The old root now sits on top of the new one: detach it, and it is gone.
        _call("umount2", b".", MNT_DETACH)
    else:  # an unknown architecture, or a root that cannot be pivoted (initramfs)
        _mount(root, "/", None, MS_MOVE, None)
        os.chroot(".")
    os.chdir("/")


def _lock_down(config: dict[str, Any]) -> list[str]:
    """The steps every sandboxed process takes itself, last: limits, uid, no privileges."""
    done = []
    for name, value in config.get("rlimits", {}).items():
        resource.setrlimit(LIMITS[name], (int(value), int(value)))
    # A write past RLIMIT_FSIZE should fail with EFBIG in the writer, not kill the run.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if config.get("uid") is not None:
        os.setgroups([])
        os.setgid(int(config["gid"]))
        os.setuid(int(config["uid"]))
        done.append("uid")
    if config.get("pid"):
        # Set after the uid switch, which clears it: the run dies with its parent.
        _call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if config.get("cwd"):
        os.chdir(config["cwd"])
    for path in config.get("need", []):
        if not os.access(path, os.R_OK | os.X_OK):
            raise JailError(_unreachable(path, config))
    return done


def _unreachable(path: str, config: dict[str, Any]) -> str:
    """Why student code cannot reach ``path``, and what the person grading can do."""
    who = f"the sandbox user (uid {config['uid']})" if config.get("uid") is not None \
        else "the sandboxed process"
    closed = next((a for a in _ancestors(path) if _closed(a)), None)
    why = f": {closed} is closed to other users (mode {_mode(closed)})" if closed else ""
    return (f"{who} cannot reach {path}{why}. Student code runs as a different user; it "
            "needs the Python installation and the course's `course` folder. Fix it by "
            "putting the course and its virtual environment in a folder other users may "
            f"enter{f' (or `chmod o+x {closed}`)' if closed else ''}, or by grading where "
            "mount namespaces are allowed (then only those folders are shown to the run)")


def _ancestors(path: str) -> list[str]:
    parts = os.path.abspath(path).split(os.sep)
    return [os.sep.join(parts[:depth]) or os.sep for depth in range(2, len(parts) + 1)]


def _closed(path: str) -> bool:
    try:
        return not os.stat(path).st_mode & 0o001
    except OSError:
        return False


def _mode(path: str) -> str:
    with contextlib.suppress(OSError):
        return oct(stat.S_IMODE(os.stat(path).st_mode))[2:]
    return "?"


def _wait_and_relay(pid: int) -> None:
    """The parent outside the PID namespace: wait, then end the same way the child did."""
    for fd in range(3, 1024):  # hold no pipe of the run open past its end
        with contextlib.suppress(OSError):
            os.close(fd)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
        os._exit(128 + number)
    os._exit(os.waitstatus_to_exitcode(status))


def apply(config: dict[str, Any]) -> list[str]:
    """Lock this process down as ``config`` asks; return what was done.

    With ``pid`` set, this forks: the parent waits and relays the child's end (it never
    returns), the child is the first process of the new PID namespace and returns.
    """
    done = []
    for procs in config.get("cgroup", []):
        try:
            with open(procs, "w") as handle:
                handle.write(str(os.getpid()))
        except OSError as exc:
            raise JailError(f"cannot join the run's cgroup {os.path.dirname(procs)}: "
                            f"{exc.strerror} (set COURSE_GRADER_CGROUPS=off to grade "
                            "without a total quota)") from None
    if config.get("cgroup"):
        done.append("cgroup")
    # Student code started by root of a user namespace (a worker started by a judge that
    # runs in one) gets a namespace of its own too, or it would keep root's capabilities.
    nested = bool(config.get("root")) and config.get("uid") is None \
        and _root_of_a_user_namespace()
    if config.get("userns") or nested:
        _user_namespace(as_self=bool(config.get("root")))
        done.append("userns")
    flags = (CLONE_NEWNET if config.get("net") else 0)
    if config.get("root"):
        # A private IPC namespace too: System V shared memory and message queues are
        # neither files nor sockets, and would otherwise outlive the run and be shared.
        flags |= CLONE_NEWNS | CLONE_NEWIPC | (CLONE_NEWPID if config.get("pid") else 0)
    if flags:
        _call("unshare", flags)
    if config.get("net"):
        _loopback_up()
        done.append("net")
    if config.get("root"):
        _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
        _build_root(config)
        done.append("mount")
    if config.get("root") and config.get("pid"):
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            _wait_and_relay(pid)
        # A fresh /proc: it shows this namespace's processes and nothing else.
        _mount("proc", _inside(config["root"], "/proc"), "proc",
               MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        done.append("pid")
    if config.get("root"):
        _pivot(config["root"])
    return done + _lock_down(config)


def packages() -> list[str]:
    """The ``course`` package this grader runs from, and the one a fresh ``python -I``
    imports (an editable install may point elsewhere, e.g. when a Gradescope bundle's
    copy runs with another checkout's virtual environment): the run needs both."""
    found = [PACKAGE]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            [sys.executable, "-I", "-c", "import course, os; print(os.path.dirname(course.__file__))"],
            capture_output=True, text=True, timeout=60, check=False, cwd="/")
        line = done.stdout.strip()
        if done.returncode == 0 and os.path.isabs(line) and os.path.isdir(line):
            found.append(os.path.realpath(line))
    return list(dict.fromkeys(found))


def interpreter_paths() -> list[str]:
    """Python and every package folder it imports from, wherever a .pth or the user site
    put it (outside the prefix, a run would not find its packages)."""
    sites = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")
             and os.path.isdir(p)]
    return list(dict.fromkeys([sys.base_prefix, sys.prefix,
                               os.path.dirname(os.path.realpath(sys.executable)), *sites]))


def closed_ancestors(paths: list[str]) -> list[list[str]]:
    """For each path, the highest ancestor that other users cannot enter, if any."""
    pairs = []
    real = list(dict.fromkeys(os.path.realpath(p) for p in paths))
    real = [p for p in real if not any(p.startswith(q + os.sep) for q in real)]
    for path in real:
        closed = next((a for a in _ancestors(path) if _closed(a)), None)
        if closed is not None:
            pairs.append([closed, path])
    return pairs


PROBE_UID = 65534  # nobody: only used to see whether a uid switch works here


def command(config: dict[str, Any], inner: list[str]) -> list[str]:
    """The command line that locks a process down as ``config`` says, then runs ``inner``."""
    return [sys.executable, "-I", "-m", "course.grader.jail", json.dumps(config), "--", *inner]


def _try(config: dict[str, Any], folder: str) -> tuple[bool, str]:
    """Start the jail with ``config`` and a Python that imports the grader's runner."""
    imports_runner = [sys.executable, "-I", "-c", "import course.grader.runner"]
    try:
        done = subprocess.run(command(config, imports_runner), capture_output=True, text=True,
                              timeout=60, check=False, cwd=folder, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    said = (done.stderr or done.stdout).strip()[-1500:]
    return done.returncode == 0, said.removeprefix("sandbox setup failed: ")


def probe() -> dict[str, Any]:
    """Which isolation this machine allows, tried end to end from the most to the least.

    Returns the flags of the first setup that starts a working Python (``net``,
    ``mount``, ``pid``, ``uid``, ``userns``) and, when even the least fails, ``problem``:
    what went wrong, in words for the person grading.
    """
    folder = os.path.realpath(tempfile.mkdtemp(prefix="jail-probe-"))
    try:
        os.chmod(folder, 0o755)
        work, stage = os.path.join(folder, "work"), os.path.join(folder, "stage")
        os.mkdir(work)
        os.mkdir(stage)
        found = packages()
        mounts: dict[str, Any] = {"root": stage, "pid": True, "work": work, "work_mb": 8,
                  "binds": [*SYSTEM_PATHS, *interpreter_paths(), *found, folder]}
        need: dict[str, Any] = {"need": [sys.executable, *found], "cwd": work}
        attempts: list[dict[str, Any]]
        if os.geteuid() == 0:
            os.chown(work, PROBE_UID, PROBE_UID)
            user: dict[str, Any] = {"uid": PROBE_UID, "gid": PROBE_UID}
            attempts = [{"net": True, **mounts, **user}, {**mounts, **user},
                        {"net": True, **user}, {**user}]
        else:
            attempts = [{"userns": True, "net": True, **mounts}, {"userns": True, **mounts}, {}]
        problem = ""
        for config in attempts:
            ok, output = _try({**config, **need}, folder)
            if ok:
                return {"net": bool(config.get("net")), "mount": "root" in config,
                        "pid": "root" in config, "uid": "uid" in config,
                        "userns": bool(config.get("userns")), "packages": found}
            problem = output
        return {"net": False, "mount": False, "pid": False, "uid": False, "userns": False,
                "problem": problem or "the sandbox could not start Python"}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def kill_uid(uid: int) -> None:
    """Kill every process owned by ``uid``: as that uid, ``kill(-1)`` reaches exactly them."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    for _ in range(1000):
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            return


def execute(command: list[str]) -> int:
    """Replace this process with ``command``; the status to exit with if that fails."""
    try:
        os.execv(command[0], command)
    except OSError as exc:
        print(f"sandbox setup failed: cannot run {command[0]}: {exc}", file=sys.stderr)
    return SETUP_FAILED


def main(argv: list[str], run: Callable[[list[str]], int] = execute) -> int:
    """``run``: what becomes of the locked-down process (the fork server runs the
    course's own commands in it instead of starting a new Python)."""
    if argv[:1] == ["--probe"]:
        print(json.dumps(probe()))
        return 0
    if argv[:1] == ["--kill-uid"]:
        kill_uid(int(argv[1]))
        return 0
    if len(argv) < 3 or argv[1] != "--":
        print("usage: jail CONFIG -- COMMAND... | --probe | --kill-uid UID", file=sys.stderr)
        return 2
    try:
        apply(json.loads(argv[0]))
    except (JailError, OSError, ValueError) as exc:
        print(f"sandbox setup failed: {exc}", file=sys.stderr)
        return SETUP_FAILED
    return run(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
