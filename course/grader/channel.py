"""The one-way channel that carries test results from a sandboxed pytest to the grader.

Nothing a student prints is ever parsed. The grader opens a pipe, hands pytest its write
end as an inherited file descriptor, and passes a random nonce through a second pipe
(not stdin, which pytest's capture swaps out). The course plugin reads and closes that
pipe while pytest configures itself, before any student code is loaded, and signs every
record with the nonce. The grader keeps a record only when its nonce is
right and its test id is one the course's own test files define.

A record is one line of JSON. Kinds, in order: ``collected`` (ids, before any test runs),
``start`` (a test begins), ``result`` (a test's verdict, after its teardown), ``done``
(the session ended; without it the run was cut short).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

NONCE_BYTES = 32
MAX_RECORD = 256 * 1024  # a longer line is not ours: drop it
MAX_STREAM = 32 * 1024 * 1024  # stop listening after this much, whatever arrives
MAX_IDS = 10_000  # test ids in one `collected` record
# Each kind of record, and the type of each field it may carry. A record with another
# kind, a missing `t`, or a field of another type is dropped and counted as rejected:
# code in the worker can reach the nonce, so a signed record proves nothing about shape.
FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "collected": {"ids": (list,)},
    "start": {"id": (str,)},
    "result": {"id": (str,), "outcome": (str,), "message": (str,)},
    "done": {"status": (str,), "exitstatus": (int, type(None))},
}
REQUIRED = {"collected": ("ids",), "start": ("id",), "result": ("id", "outcome"), "done": ("status",)}


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def make_writer(fd: int, nonce: str) -> Callable[[dict[str, Any]], None]:
    """A function that signs and writes one record; it holds its own references.

    Everything it uses is bound here, at configure time, and it never looks up a builtin
    or a module attribute afterwards (it is its own tiny JSON encoder, on top of the C
    string quoter): student code that later replaces ``isinstance``, ``json.dumps`` or
    ``os.write`` cannot change or silence what the grader receives. If the channel breaks
    (a student closed the descriptor), the run can no longer be trusted: the process
    ends at once and the grader re-runs what is missing.
    """
    write, exit_now, quote = os.write, os._exit, json.encoder.encode_basestring_ascii
    _type, _str, _int, _bool, _list, _tuple, _oserror = type, str, int, bool, list, tuple, OSError
    signature = quote(nonce)

    def value(item: Any) -> str:
        kind = _type(item)
        if kind is _str:
            return quote(item)
        if kind is _bool:
            return "true" if item else "false"
        if kind is _int:
            return _int.__repr__(item)
        if item is None:
            return "null"
        if kind is _list or kind is _tuple:
            return "[" + ",".join([value(x) for x in item]) + "]"
        return quote(_str(item))

    def emit(record: dict[str, Any]) -> None:
        body = ",".join([quote(key) + ":" + value(item) for key, item in record.items()])
        data = ("{" + body + ',"nonce":' + signature + "}\n").encode("utf-8", "replace")
        try:
            while data:
                data = data[write(fd, data) :]
        except _oserror:
            exit_now(3)

    return emit


@dataclass
class RecordReader:
    """Split the channel's bytes into records, keeping only correctly signed ones."""

    nonce: str
    buffer: bytearray = field(default_factory=bytearray)
    received: int = 0
    rejected: int = 0
    problems: list[str] = field(default_factory=list)  # why records were dropped (first few)

    def feed(self, data: bytes) -> Iterator[dict[str, Any]]:
        self.received += len(data)
        if self.received > MAX_STREAM:
            return
        self.buffer += data
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                if len(self.buffer) > MAX_RECORD:
                    self.buffer.clear()
                    self.rejected += 1
                return
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 1]
            record = self._parse(line)
            if record is None:
                self.rejected += 1
                continue
            problem = invalid(record)
            if problem is None:
                yield record
            else:
                self.rejected += 1
                if len(self.problems) < 5:
                    self.problems.append(problem)

    def _parse(self, line: bytes) -> dict[str, Any] | None:
        if len(line) > MAX_RECORD:
            return None
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            return None
        if not isinstance(record, dict):
            return None
        nonce = record.pop("nonce", None)
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce, self.nonce):
            return None
        return record


def invalid(record: dict[str, Any]) -> str | None:
    """What is wrong with a correctly signed record's shape, or None if nothing is."""
    kind = record.get("t")
    if not isinstance(kind, str) or kind not in FIELDS:
        return f"a record of unknown kind {str(kind)[:40]!r}"
    for name in REQUIRED[kind]:
        if name not in record:
            return f"a {kind!r} record without {name!r}"
    for name, types in FIELDS[kind].items():
        value = record.get(name)
        if name in record and (not isinstance(value, types) or isinstance(value, bool)):
            return f"a {kind!r} record whose {name!r} is a {type(value).__name__}"
    if kind == "collected":
        ids: list[Any] = record["ids"]
        if len(ids) > MAX_IDS or not all(isinstance(i, str) for i in ids):
            return "a 'collected' record whose 'ids' are not a list of test ids"
    return None
