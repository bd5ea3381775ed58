"""Turn a failed test's exception text into feedback a learner reads in five seconds.

pytest's assertion text is written for the person who wrote the test: after the test's
own message come the rewritten ``assert`` line and its introspection (``+  where False =
all(<generator object ...>)``), full reprs of objects with their memory addresses, and
diffs of long values. A learner needs the first part: what was expected and what came
back. :func:`shorten` keeps that part up front and moves the rest behind a
:data:`DETAIL` marker, so reports show the short part and ``--verbose`` shows it all.
"""

from __future__ import annotations

import re

DETAIL = "\n[detail]\n"  # separates the short message from what --verbose adds
MAX_SHORT_LINES = 6
MAX_LINE = 240
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MODULE_PREFIX = re.compile(r"\bnb_\d+_\w+\.")  # the name the loader gives a notebook
_INTROSPECTION = re.compile(r"^\s*(\+\s+(where|and)\b|\{|Full diff:|Use -v to get)")


def _tidy(line: str) -> str:
    """One line without memory addresses and loader prefixes, cut to a readable length."""
    line = _MODULE_PREFIX.sub("", _ADDRESS.sub("", line.rstrip()))
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 5] + " [...]"


def shorten(text: str) -> str:
    """``short`` or ``short + DETAIL + detail`` for one exception's text."""
    lines = text.strip().splitlines()
    if not lines:
        return ""
    short: list[str] = []
    if lines[0].startswith("AssertionError: ") or not lines[0].startswith("assert "):
        # The test's own message (or another exception's): everything up to the line
        # where pytest starts re-telling the assert statement.
        for line in lines:
            if line.startswith("assert ") and short:
                break
            short.append(line)
    else:
        # A bare assert: its first line already reads "assert 3 == 4"; keep the
        # comparison pytest explains, drop the introspection of every sub-expression.
        for line in lines:
            if short and _INTROSPECTION.match(line):
                break
            short.append(line)
    short = [_tidy(line) for line in short[:MAX_SHORT_LINES]]
    if len(lines) > MAX_SHORT_LINES and len(short) == MAX_SHORT_LINES:
        short.append("[...]")
    rest = "\n".join(lines)
    if "\n".join(short) == rest:
        return rest
    return "\n".join(short) + DETAIL + rest


_WHERE = re.compile(r"\n(\(raised at [^\n]*\))\s*$")


def _split(message: str) -> tuple[str, str, str]:
    """(short, detail, where): ``where`` is the "(raised at line N of ...)" line."""
    found = _WHERE.search(message)
    where = found.group(1) if found else ""
    body = message[: found.start()] if found else message
    short, _, detail = body.partition(DETAIL)
    return short, detail, where


def short_part(message: str) -> str:
    short, _, where = _split(message)
    return f"{short}\n{where}" if where else short


def full_part(message: str) -> str:
    """The whole message as pytest wrote it (the short part is a summary of it)."""
    short, detail, where = _split(message)
    text = detail or short
    return f"{text}\n{where}" if where else text
