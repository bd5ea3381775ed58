"""The first code that runs in a sandboxed child: lock it down, then exec the real command.

``python -I -m course.grader.jail CONFIG -- COMMAND...`` applies, in order: a new network
namespace with only loopback up, a new mount namespace that hides the course's answers
(``solutions/``, ``.git``, ``_build``) under empty read-only tmpfs mounts and gives the
run a size-capped tmpfs as its working folder, resource limits, and (as root) a switch to
a throwaway uid/gid with no supplementary groups and no way to regain privileges. Then it
``exec``s the command, so no Python state of the grader survives into the child.

It is a separate program rather than a ``preexec_fn`` because the grader is threaded and
``preexec_fn`` is unsafe there; it only imports the standard library.

``--probe`` prints which of these steps this machine allows; ``--kill-uid UID`` kills
every process of a throwaway uid, which also catches children that left the process group.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import signal
import socket
import struct
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 1 << 18
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
LIMITS = {
    "cpu": resource.RLIMIT_CPU,
    "as": resource.RLIMIT_AS,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "core": resource.RLIMIT_CORE,
}
SETUP_FAILED = 97  # exit status the grader reads as "the sandbox could not be set up"

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
    _call(
        "mount", source.encode(), target.encode(), fstype.encode() if fstype else None,
        ctypes.c_ulong(flags), data.encode() if data else None,
    )


def _user_namespace() -> None:
    """Unprivileged fallback: become root of a private user namespace, mapped to ourselves."""
    uid, gid = os.getuid(), os.getgid()
    _call("unshare", CLONE_NEWUSER)
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)


def _copy_into(source: str, folder: str, uid: int | None, gid: int | None) -> None:
    target = os.path.join(folder, os.path.basename(source))
    with open(source, "rb") as src, open(target, "wb") as dst:
        dst.write(src.read())
    if uid is not None and gid is not None:
        os.chown(target, uid, gid)


def _expose(pairs: list[list[str]], stage: str) -> None:
    """Make folders reachable whose ancestor others may not enter (``/root/.pyenv/...``).

    Each target is bind-mounted aside, an empty tmpfs covers the closed ancestor (which
    also hides the rest of it, say root's home), and the target is bound back in place.
    """
    staged = []
    for index, (_, target) in enumerate(pairs):
        aside = os.path.join(stage, str(index))
        os.makedirs(aside, exist_ok=True)
        _mount(target, aside, None, MS_BIND | MS_REC, None)
        staged.append(aside)
    for blocker in dict.fromkeys(blocker for blocker, _ in pairs):
        _mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=0755")
    for aside, (_, target) in zip(staged, pairs, strict=True):
        os.makedirs(target, exist_ok=True)
        _mount(aside, target, None, MS_BIND | MS_REC, None)
        _libc.umount2(aside.encode(), MNT_DETACH)


def apply(config: dict[str, Any]) -> list[str]:
    """Lock this process down as ``config`` asks; return what was done."""
    done = []
    if config.get("userns"):
        _user_namespace()
        done.append("userns")
    if config.get("net"):
        _call("unshare", CLONE_NEWNET)
        _loopback_up()
        done.append("net")
    if config.get("hide") or config.get("work") or config.get("expose"):
        _call("unshare", CLONE_NEWNS)
        _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
        _expose(config.get("expose", []), config.get("stage", ""))
        for path in config.get("hide", []):
            if os.path.isdir(path):
                flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
                _mount("tmpfs", path, "tmpfs", flags, "size=4k,mode=0555")
        if config.get("work"):
            owner = f",uid={config['uid']},gid={config['gid']}" if config.get("uid") is not None else ""
            _mount("tmpfs", config["work"], "tmpfs", MS_NOSUID | MS_NODEV,
                   f"size={int(config.get('work_mb', 64))}m,mode=0700{owner}")
            for source in config.get("copy_in", []):
                _copy_into(source, config["work"], config.get("uid"), config.get("gid"))
        done.append("mount")
    for name, value in config.get("rlimits", {}).items():
        resource.setrlimit(LIMITS[name], (int(value), int(value)))
    # A write past RLIMIT_FSIZE should fail with EFBIG in the writer, not kill the run.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if config.get("uid") is not None:
        os.setgroups([])
        os.setgid(int(config["gid"]))
        os.setuid(int(config["uid"]))
        done.append("uid")
    _call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if config.get("cwd"):
        os.chdir(config["cwd"])
    return done


def closed_ancestors(paths: list[str]) -> list[list[str]]:
    """For each path, the highest ancestor that other users cannot enter, if any."""
    pairs = []
    real = list(dict.fromkeys(os.path.realpath(p) for p in paths))
    real = [p for p in real if not any(p.startswith(q + os.sep) for q in real)]
    for path in real:
        parts = path.split(os.sep)
        for depth in range(2, len(parts) + 1):
            ancestor = os.sep.join(parts[:depth])
            if not os.stat(ancestor).st_mode & 0o001:
                pairs.append([ancestor, path])
                break
    return pairs


def interpreter_paths() -> list[str]:
    return [sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))]


def _probe_expose() -> dict[str, Any]:
    pairs = closed_ancestors(interpreter_paths())
    import tempfile

    return {"expose": pairs, "stage": tempfile.mkdtemp(prefix="jail-probe-")} if pairs else {}


def probe() -> dict[str, bool]:
    """Which isolation steps work here, each tried in a forked child of its own."""
    steps: dict[str, dict[str, Any]] = {
        "net": {"net": True},
        "mount": {"work": "/tmp"},
        "uid": {"uid": 65534, "gid": 65534, "check_exec": True, **_probe_expose()},
        "userns_net": {"userns": True, "net": True},
        "userns_mount": {"userns": True, "work": "/tmp"},
    }
    found = {}
    for name, config in steps.items():
        if name.startswith("userns") and os.geteuid() == 0:
            found[name] = False
            continue
        pid = os.fork()
        if pid == 0:
            try:
                apply(config)
                if config.get("check_exec") and not os.access(sys.executable, os.X_OK):
                    os._exit(1)
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        found[name] = os.waitstatus_to_exitcode(status) == 0
    stage = steps["uid"].get("stage")
    if stage:  # its mounts lived only in the children's namespaces: it is a plain folder
        import shutil

        shutil.rmtree(stage, ignore_errors=True)
    return found


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


def main(argv: list[str]) -> int:
    if argv[:1] == ["--probe"]:
        print(json.dumps(probe()))
        return 0
    if argv[:1] == ["--kill-uid"]:
        kill_uid(int(argv[1]))
        return 0
    if len(argv) < 3 or argv[1] != "--":
        print("usage: jail CONFIG -- COMMAND... | --probe | --kill-uid UID", file=sys.stderr)
        return 2
    config = json.loads(argv[0])
    command = argv[2:]
    try:
        apply(config)
    except (JailError, OSError, ValueError) as exc:
        print(f"sandbox setup failed: {exc}", file=sys.stderr)
        return SETUP_FAILED
    try:
        os.execv(command[0], command)
    except OSError as exc:
        print(f"sandbox setup failed: cannot run {command[0]}: {exc}", file=sys.stderr)
    return SETUP_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
