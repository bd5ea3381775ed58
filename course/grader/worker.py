"""The grader's half that runs inside the sandbox: it runs probes on the submission.

``python -I -m course.grader.worker --notebook NB --tests ROOT --reply-fd N`` reads
requests (:mod:`course.grader.protocol`) on stdin. For each, it loads the notebook's
definitions into a fresh module, calls the named probe of the named test file with it,
and writes the probe's return value, as plain JSON data, to descriptor ``N``. It decides
nothing: whatever it sends, the judge checks. Everything in this process, this module
included, is the submission's to change; that is why no verdict is ever computed here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import inspect
import json
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from course.grader.protocol import MAX_LINE, READY, Data, ErrorInfo, Reply, encode
from course.notebook import CompiledNotebook, NotebookError, compile_notebook


class NotData(TypeError):
    """A probe returned something that is not plain JSON data."""


def to_data(value: Any, depth: int = 0) -> Data:
    """Plain data of exactly the built-in types (a str subclass is not a str); tuples become lists."""
    if depth > 40:
        raise NotData("a value nested deeper than 40 levels")
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value  # type: ignore[no-any-return]
    if kind in (list, tuple):
        return [to_data(item, depth + 1) for item in value]
    if kind is dict:
        out: dict[str, Data] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise NotData(f"a dict key of type {type(key).__name__}, not str")
            out[key] = to_data(item, depth + 1)
        return out
    raise NotData(f"a {kind.__module__}.{kind.__qualname__} where plain data was expected")


class Worker:
    def __init__(self, notebook: Path, tests_root: Path) -> None:
        self.notebook = notebook
        self.tests_root = tests_root
        self.compiled: CompiledNotebook | None = None
        self.probe_modules: dict[str, types.ModuleType] = {}

    def probe(self, module: str, name: str) -> Callable[..., Any]:
        found = getattr(self.probe_module(module), name, None)
        target = getattr(found, "__wrapped__", found)
        if not callable(target):
            raise LookupError(f"{module} has no probe {name}")
        return target  # type: ignore[no-any-return]

    def probe_module(self, module: str) -> types.ModuleType:
        """A test file, imported once, for its probes."""
        if module not in self.probe_modules:
            path = (self.tests_root / module).resolve()
            if not path.is_relative_to(self.tests_root.resolve()) or path.suffix != ".py":
                raise LookupError(f"no test file {module}")
            spec = importlib.util.spec_from_file_location(f"probes_{path.stem}", path)
            if spec is None or spec.loader is None:
                raise LookupError(f"cannot import {module}")
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = loaded
            spec.loader.exec_module(loaded)
            self.probe_modules[module] = loaded
        return self.probe_modules[module]

    def warm_up(self, modules: list[str]) -> None:
        """Parse the notebook and import the probes' modules before saying ready: start-up
        has a limit of its own, while the first probe's time counts against an exercise."""
        with contextlib.suppress(NotebookError):  # each probe reports it, with cell and line
            self.compiled = compile_notebook(self.notebook)
        for module in modules:
            with contextlib.suppress(Exception):  # the probe that needs it will say what failed
                self.probe_module(module)

    def fresh_notebook(self) -> types.ModuleType:
        if self.compiled is None:
            self.compiled = compile_notebook(self.notebook)
        return self.compiled.load(f"nb_{self.notebook.stem}")

    def answer(self, request: dict[str, Any]) -> Reply:
        call = int(request["call"])
        try:
            function = self.probe(str(request["module"]), str(request["probe"]))
            value = function(self.fresh_notebook(), *request["args"])
            if inspect.isawaitable(value):
                value = asyncio.run(_awaited(value))
            return {"call": call, "value": to_data(value)}
        except BaseException as exc:  # SystemExit and KeyboardInterrupt are answers too
            return {"call": call, "error": self.describe(exc)}

    def describe(self, exc: BaseException) -> ErrorInfo:
        if isinstance(exc, NotebookError):
            return {"type": "NotebookError", "message": str(exc), "where": ""}
        try:
            message = str(exc)
        except Exception:
            message = "(the exception's message could not be shown)"
        if isinstance(exc, NotImplementedError):
            message = f"not written yet{': ' + message if message else ''}"
        return {"type": type(exc).__name__, "message": message[:4000],
                "where": _notebook_line(exc, str(self.notebook))}


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _notebook_line(exc: BaseException, notebook: str) -> str:
    found = ""
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.split("#", 1)[0] == notebook:
            found = f"line {tb.tb_lineno} of {Path(notebook).name}"
        tb = tb.tb_next
    return found


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course.grader.worker")
    parser.add_argument("--notebook", type=Path, required=True)
    parser.add_argument("--tests", type=Path, required=True, help="the folder that holds tests/")
    parser.add_argument("--reply-fd", type=int, required=True)
    parser.add_argument("--preload", action="append", default=[],
                        help="a test file whose probes to import before saying ready")
    args = parser.parse_args(argv)
    worker = Worker(args.notebook.resolve(), args.tests.resolve())
    worker.warm_up(args.preload)
    reply_fd = args.reply_fd
    requests = sys.stdin.buffer
    _write_all(reply_fd, encode({"call": 0, "value": READY}))
    while True:
        line = requests.readline(MAX_LINE)
        if not line:
            return 0
        reply = worker.answer(json.loads(line))
        try:
            data = encode(reply)
        except ValueError:  # NaN inside a list is fine for json; a circular value is not
            data = encode({"call": reply["call"], "error": {
                "type": "NotData", "message": "the probe's value could not be encoded", "where": ""}})
        _write_all(reply_fd, data)


if __name__ == "__main__":
    sys.exit(main())
