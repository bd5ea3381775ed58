"""Graded tests for chapter 3's exercises: a lazy pipeline, two decorators, a context manager.

Judged (see CONTRIBUTING.md): each ``probe_*`` runs the learner's code in a worker and
returns what it saw as plain data (values, counts, the order of events, log records as
dicts); each test asserts on that data. Texts, batch sizes, attempt counts, function
names and error messages are drawn at random per run, so code that returns the
published examples earns nothing.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
import logging
import random
import string
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from course.probing import kind, plain, probe, shown
from course.pytest_plugin import exercise
from course.testing import assert_same, same

Data = Any


def word(length: int = 6) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=length))


def words(count: int) -> str:
    return " ".join(word(random.randint(2, 7)) for _ in range(count))


def spaced(text: str) -> str:
    """``text`` with random runs of spaces, tabs and newlines around and between its words."""
    def gap() -> str:
        return "".join(random.choices(" \t\n", k=random.randint(1, 3)))

    edge = ["", gap()]
    return random.choice(edge) + gap().join(text.split()) + random.choice(edge)


def blank() -> str:
    return "".join(random.choices(" \t\n", k=random.randint(0, 4)))


def clean_ref(texts: Iterable[str]) -> list[str]:
    return [" ".join(text.split()) for text in texts if text.split()]


def dedupe_ref(texts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(texts))


def batched_ref(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --------------------------------------------------------------- worker-side helpers


class ReadAhead(Exception):
    """Raised by a CountingSource's trap: the pipeline pulled more than it needed."""


class CountingSource:
    """An iterable that counts how many items were pulled from it, and can end in a trap.

    With ``limit``, pulling item number ``limit + 1`` raises :class:`ReadAhead`: a
    pipeline that reads ahead (or collects everything into a list) trips it instead of
    hanging on an endless source.
    """

    def __init__(self, items: Iterable[str], limit: int | None = None) -> None:
        self.items = items
        self.limit = limit
        self.pulled = 0

    def __iter__(self) -> Iterator[str]:
        for item in self.items:
            if self.limit is not None and self.pulled >= self.limit:
                raise ReadAhead(
                    f"the pipeline pulled more than {self.limit} items from its source before "
                    "the consumer asked for them: it is reading ahead, not lazy"
                )
            self.pulled += 1
            yield item


def endless(prefix: str) -> Iterator[str]:
    number = 0
    while True:
        number += 1
        yield f"{prefix} {number}"


def plain_list(value: Any) -> Data:
    """A list of plain values as data; anything else (a tuple, a generator) described."""
    if type(value) is not list:
        return plain(value)
    return [plain(item) for item in value]


def attempt(call: Callable[..., Any], *args: Any, expect: Any = (), **kwargs: Any) -> Data:
    """What a call did, as data: what it returned, or the error's type and message and
    whether it is an instance of ``expect``. NotImplementedError propagates, so the test
    fails with "not written yet"."""
    try:
        value = call(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as exc:
        return {"error": kind(exc), "expected": isinstance(exc, expect),
                "message": shown(exc, str)}
    return {"error": None, "returned": plain(value)}


def named(function: Any, name: str, qualname: str, doc: str) -> Any:
    function.__name__, function.__qualname__, function.__doc__ = name, qualname, doc
    return function


def summariser(name: str, doc: str) -> Any:
    def summarise(text: str, max_words: int = 5) -> str:
        return " ".join(text.split()[:max_words])

    return named(summarise, name, name, doc)


def async_summariser(name: str, doc: str) -> Any:
    async def asummarise(text: str, *, max_words: int = 5) -> str:
        await asyncio.sleep(0)
        return " ".join(text.split()[:max_words])

    return named(asummarise, name, name, doc)


def metadata(original: Any, decorated: Any) -> Data:
    """What a wrapper kept of the original, as data (the signature compared as text)."""
    return {"name": [original.__name__, plain(getattr(decorated, "__name__", None))],
            "doc": [original.__doc__, plain(getattr(decorated, "__doc__", None))],
            "signature": [str(inspect.signature(original)),
                          plain(str(inspect.signature(decorated)))],
            "wrapped": getattr(decorated, "__wrapped__", None) is original}


def record_data(record: logging.LogRecord) -> Data:
    elapsed = getattr(record, "elapsed", None)
    return {"logger": record.name, "level": record.levelname,
            "message": plain(record.getMessage()),
            "function": plain(getattr(record, "function", None)),
            "elapsed": elapsed if type(elapsed) is float else f"<{kind(elapsed)}> {shown(elapsed)}"}


@contextlib.contextmanager
def timing_records(spy: Callable[[logging.LogRecord], None] | None = None
                   ) -> Iterator[list[logging.LogRecord]]:
    """The records logged on the 'timing' logger while the block runs (at INFO and above)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name == "timing":
                records.append(record)
                if spy is not None:
                    spy(record)

    logger, handler = logging.getLogger("timing"), Keep()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def error(nb: Any, name: str, message: str) -> Any:
    """An instance of the notebook's exception class ``name`` (or a built-in one)."""
    return (getattr(nb, name, None) or getattr(builtins, name))(message)


class Flaky:
    """A callable that raises the given errors in turn, then returns ``value``."""

    def __init__(self, errors: list[BaseException], value: str = "ok") -> None:
        self.errors = list(errors)
        self.value = value
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value


def holds_only(items: Any, *expected: object) -> bool:
    """``items`` is a plain list of exactly these objects, compared by identity, not ``==``."""
    return type(items) is list and len(items) == len(expected) and all(
        got is want for got, want in zip(items, expected, strict=False)
    )


# --- lazy_pipeline ---------------------------------------------------------------------

@probe
def probe_clean_dedupe(nb: Any, raw: list[str], items: list[str]) -> Data:
    return {"clean": plain_list(list(nb.clean(raw))), "dedupe": plain_list(list(nb.dedupe(items)))}


@exercise(
    "lazy_pipeline", points=1,
    hint="clean: str.split() with no argument splits on any run of whitespace; drop texts "
    "that are empty afterwards. dedupe: remember what you have already yielded.",
)
def test_clean_and_dedupe(notebook: Any) -> None:
    texts = [words(random.randint(1, 4)) for _ in range(4)]
    raw = [spaced(text) for text in texts] + [blank() for _ in range(3)]
    raw += [spaced(random.choice(texts)) for _ in range(2)]
    random.shuffle(raw)
    pool = [word(4) for _ in range(4)]
    items = random.choices(pool, k=random.randint(6, 10))
    got = probe_clean_dedupe(notebook, raw, items)
    assert_same(got["clean"], clean_ref(raw), f"clean({raw!r})")
    assert_same(got["dedupe"], dedupe_ref(items), f"dedupe({items!r})")


@probe
def probe_batches(nb: Any, cases: list[list[Any]]) -> Data:
    return [[plain_list(batch) for batch in nb.batched(items, size)] for items, size in cases]


@exercise(
    "lazy_pipeline", points=1,
    hint="Count the items in every batch: full batches hold exactly `size`, the last holds "
    "the rest, and no batch is empty (also when the count divides evenly).",
)
def test_batch_sizes(notebook: Any) -> None:
    size = random.randint(2, 4)
    shapes = [(size * random.randint(2, 3) + random.randint(1, size - 1), size),  # a rest
              (size * random.randint(1, 3), size),  # divides evenly
              (1, random.randint(2, 6)), (0, random.randint(1, 4)), (random.randint(2, 6), 1)]
    cases = [[[word(3) for _ in range(count)], size] for count, size in shapes]
    got = probe_batches(notebook, cases)
    for (items, size), batches in zip(cases, got, strict=True):
        assert_same(batches, batched_ref(items, size),
                    f"batched({len(items)} items, size={size})")


@probe
def probe_bad_size(nb: Any, sizes: list[int]) -> Data:
    return [attempt(nb.batched, ["a", "b"], size) for size in sizes]


@exercise(
    "lazy_pipeline", points=1,
    hint="A generator function's body runs only at the first next(): check the size in a "
    "plain function that then returns a generator.",
)
def test_bad_batch_size_fails_at_call(notebook: Any) -> None:
    sizes = [0, -random.randint(1, 9)]
    for size, got in zip(sizes, probe_bad_size(notebook, sizes), strict=True):
        assert got["error"] is not None, f"batched(items, {size}) returned without raising ValueError"
        assert got["error"] == "ValueError", (
            f"batched(items, {size}): expected ValueError, got {got['error']}: {got['message']}"
        )


@probe
def probe_read_ahead(nb: Any, items: list[str], size: int, blanks: list[str],
                     texts: list[str]) -> Data:
    source = CountingSource(items)
    batches = nb.batched(source, size)
    at_call = source.pulled
    first = plain_list(next(batches))
    at_first = source.pulled
    cleaning = CountingSource([*blanks, *texts])
    cleaned = plain(next(nb.clean(cleaning)))
    deduping = CountingSource([texts[0], texts[0], *texts[1:]])
    deduped = plain(next(nb.dedupe(deduping)))
    return {"at_call": at_call, "first": first, "at_first": at_first,
            "cleaned": cleaned, "clean_pulled": cleaning.pulled,
            "deduped": deduped, "dedupe_pulled": deduping.pulled}


@exercise(
    "lazy_pipeline", points=1,
    hint="Each stage should take one item, pass it on with yield, and only then take the "
    "next: no list(), no sorted(), no look-ahead to see whether more items follow.",
)
def test_stages_do_not_read_ahead(notebook: Any) -> None:
    size = random.randint(2, 4)
    items = [word(4) for _ in range(size * 2 + 1)]
    blanks = [blank() for _ in range(random.randint(1, 3))]
    texts = [word(5) for _ in range(3)]
    got = probe_read_ahead(notebook, items, size, blanks, texts)
    assert got["at_call"] == 0, f"calling batched() already pulled {got['at_call']} items"
    assert_same(got["first"], items[:size], "the first batch")
    assert got["at_first"] == size, (
        f"one batch of {size} should pull {size} items, pulled {got['at_first']}"
    )
    assert_same(got["cleaned"], texts[0], "clean's first text")
    assert got["clean_pulled"] == len(blanks) + 1, (
        f"clean pulled {got['clean_pulled']} items to produce its first "
        f"({len(blanks)} blank ones, then the text: {len(blanks) + 1} needed)"
    )
    assert_same(got["deduped"], texts[0], "dedupe's first text")
    assert got["dedupe_pulled"] == 1, f"dedupe pulled {got['dedupe_pulled']} items to produce its first"


@probe
def probe_training(nb: Any, lines: list[str], size: int, prefix: str, endless_size: int,
                   limit: int) -> Data:
    batches = [plain_list(batch) for batch in nb.training_batches(lines, size)]
    source = CountingSource(endless(prefix), limit=limit)
    lazy = nb.training_batches(source, endless_size)
    first, second = next(lazy), next(lazy)
    return {"batches": batches, "first": plain_list(first), "second": plain_list(second),
            "pulled": source.pulled}


@exercise(
    "lazy_pipeline", points=1,
    hint="Clean before you dedupe (so ' a' and 'a' count as the same text), and build "
    "training_batches from the lazy stages without collecting their output.",
)
def test_training_batches_is_lazy_and_ordered(notebook: Any) -> None:
    texts = [words(random.randint(1, 3)) for _ in range(5)]
    lines = [spaced(text) for text in texts] + [blank(), blank()]
    lines += [spaced(random.choice(texts)) for _ in range(3)]  # repeats once cleaned
    lines += [texts[0].upper()]  # differs by case: not a repeat
    random.shuffle(lines)
    size, endless_size = random.randint(2, 3), random.randint(2, 5)
    prefix = word(5)
    got = probe_training(notebook, lines, size, prefix, endless_size, 20)
    assert_same(got["batches"], batched_ref(dedupe_ref(clean_ref(lines)), size),
                f"training_batches({lines!r}, {size})")
    assert_same(got["first"], [f"{prefix} {n}" for n in range(1, endless_size + 1)],
                f"the first batch of {endless_size} from an endless source")
    second = got["second"]
    assert type(second) is list and same(second[:1], [f"{prefix} {endless_size + 1}"]), (
        f"the second batch should start at {prefix} {endless_size + 1!r}, got {second}"
    )
    assert got["pulled"] == 2 * endless_size, (
        f"two batches of {endless_size} should pull {2 * endless_size} lines, "
        f"pulled {got['pulled']}"
    )


# --- timing_decorator ------------------------------------------------------------------

def check_metadata(got: Data, what: str) -> None:
    original, decorated = got["name"]
    assert same(decorated, original), (
        f"{what}: the decorated function is called {decorated!r}, not {original!r}"
    )
    original, decorated = got["doc"]
    assert same(decorated, original), f"{what}: the decorated function lost its docstring"
    original, decorated = got["signature"]
    assert same(decorated, original), (
        f"{what}: the signature changed from {original} to {decorated}"
    )
    assert got["wrapped"], f"{what}: the wrapper has no __wrapped__ pointing at the original function"


@probe
def probe_timed_metadata(nb: Any, names: list[str], docs: list[str]) -> Data:
    sync, coroutine = summariser(names[0], docs[0]), async_summariser(names[1], docs[1])
    return [metadata(sync, nb.timed(sync)), metadata(coroutine, nb.timed(coroutine))]


@exercise(
    "timing_decorator", points=1,
    hint="Wrap with functools.wraps(func): it copies the name and docstring and sets "
    "__wrapped__, which inspect.signature follows.",
)
def test_timed_keeps_metadata(notebook: Any) -> None:
    got = probe_timed_metadata(notebook, [word(), word()], [words(4), words(4)])
    check_metadata(got[0], "timed(a function)")
    check_metadata(got[1], "timed(an async function)")


@probe
def probe_timed_sync(nb: Any, name: str, text: str, max_words: int, prompt: str) -> Data:
    def broken(prompt: str) -> str:
        raise KeyError(prompt)

    with timing_records() as records:
        result = plain(nb.timed(summariser(name, "Summarise."))(text, max_words=max_words))
        logged = [record_data(record) for record in records]
        failing = attempt(nb.timed(broken), prompt, expect=KeyError)
        return {"result": result, "records": logged, "failing": failing,
                "after_failure": len(records)}


@exercise(
    "timing_decorator", points=1,
    hint="Log on the 'timing' logger at INFO after the call, with extra={'function': ..., "
    "'elapsed': ...}; use try/finally so a failing call is logged too.",
)
def test_timed_logs_sync_calls(notebook: Any) -> None:
    name, text, max_words = word(), words(random.randint(3, 7)), random.randint(1, 3)
    got = probe_timed_sync(notebook, name, text, max_words, word())
    assert_same(got["result"], " ".join(text.split()[:max_words]), "the wrapped call's result")
    records = got["records"]
    assert len(records) == 1, f"one call should log one 'timing' record, got {len(records)}"
    record = records[0]
    assert same(record["level"], "INFO"), f"expected level INFO, got {record['level']}"
    message = record["message"]
    assert type(message) is str and message.startswith(f"{name} took ") and message.endswith("s"), (
        f"expected a message like '{name} took 0.0012s', got {message!r}"
    )
    assert_same(record["function"], name, "the record's 'function' extra")
    elapsed = record["elapsed"]
    assert type(elapsed) is float and elapsed >= 0, (
        f"'elapsed' extra: expected a float >= 0, got {elapsed!r}"
    )
    failing = got["failing"]
    assert failing["error"] is not None and failing["expected"], (
        f"the wrapped function's KeyError should propagate unchanged, got {failing}"
    )
    assert got["after_failure"] == 2, (
        f"a call that raised should still be logged: {got['after_failure']} records after two calls"
    )


@probe
async def probe_timed_async(nb: Any, name: str, qualname: str, vector: list[float]) -> Data:
    events: list[str] = []

    async def fetch_embedding(text: str) -> list[float]:
        events.append("started")
        await asyncio.sleep(0)
        events.append("finished")
        return vector

    with timing_records(spy=lambda record: events.append("logged")) as records:
        wrapped = nb.timed(named(fetch_embedding, name, qualname, "Embed a text."))
        if not inspect.iscoroutinefunction(wrapped):
            return {"coroutine_function": False}
        result = plain_list(await wrapped("hi"))
        return {"coroutine_function": True, "result": result, "events": events,
                "function": plain(getattr(records[-1], "function", None)) if records else None}


@exercise(
    "timing_decorator", points=1,
    hint="For an async function the wrapper must itself be `async def` and time "
    "`await func(...)`; check inspect.iscoroutinefunction(func) to choose.",
)
def test_timed_awaits_async_functions(notebook: Any) -> None:
    name = word()
    qualname = f"{word().capitalize()}.<locals>.{name}"  # the qualified name, not __name__
    vector = [round(random.uniform(-1, 1), 4) for _ in range(random.randint(2, 4))]
    got = probe_timed_async(notebook, name, qualname, vector)
    assert got["coroutine_function"], (
        "timed(async function) should return a coroutine function (an async def wrapper)"
    )
    assert_same(got["result"], vector, "the awaited result")
    assert got["events"] == ["started", "finished", "logged"], (
        f"the log record must come after the awaited work finished; order was {got['events']}"
    )
    assert_same(got["function"], qualname, "the record's 'function' extra")


# --- retry_decorator -------------------------------------------------------------------

def retryable() -> str:
    return random.choice(["RateLimitError", "ServerError"])


@probe
def probe_retry_counts(nb: Any, plan: dict[str, Any]) -> Data:
    flaky = Flaky([error(nb, cls, message) for cls, message in plan["failures"]], plan["value"])
    result = attempt(nb.retry(plan["attempts"])(flaky))
    always = Flaky([error(nb, "RateLimitError", message) for message in plan["always"]])
    exhausted = attempt(nb.retry(plan["always_attempts"])(always), expect=nb.RateLimitError)
    once = Flaky([error(nb, "ServerError", plan["once"])])
    single = attempt(nb.retry(1)(once), expect=nb.ServerError)
    return {"result": result, "calls": flaky.calls, "exhausted": exhausted,
            "always_calls": always.calls, "single": single, "once_calls": once.calls}


@exercise(
    "retry_decorator", points=1,
    hint="`attempts` counts every call, the first one included: @retry(3) calls at most 3 "
    "times. Look at your loop bounds.",
)
def test_retry_counts_attempts(notebook: Any) -> None:
    attempts, always_attempts = random.randint(2, 6), random.randint(2, 6)
    plan = {"attempts": attempts, "value": word(),
            "failures": [[retryable(), f"{random.randint(500, 599)} {word()}"]
                         for _ in range(attempts - 1)],
            "always_attempts": always_attempts,
            "always": [f"429 {word()}" for _ in range(10)], "once": f"503 {word()}"}
    got = probe_retry_counts(notebook, plan)
    assert_same(got["result"], {"error": None, "returned": plan["value"]},
                f"@retry({attempts}) on a call that fails {attempts - 1} times, then answers")
    assert got["calls"] == attempts, (
        f"{attempts - 1} failures then success: expected {attempts} calls, got {got['calls']}"
    )
    exhausted = got["exhausted"]
    assert exhausted["error"] is not None and exhausted["expected"], (
        f"@retry({always_attempts}) on a function that always fails should raise its "
        f"RateLimitError, got {exhausted}"
    )
    assert got["always_calls"] == always_attempts, (
        f"@retry({always_attempts}) on a function that always fails: {got['always_calls']} calls"
    )
    last = plan["always"][always_attempts - 1]
    assert same(exhausted["message"], last), (
        f"after the last attempt, re-raise the last error itself ({last!r}); got "
        f"{exhausted['message']!r}"
    )
    assert got["single"]["error"] is not None and got["single"]["expected"], (
        f"@retry(1) on a failing call should raise its ServerError, got {got['single']}"
    )
    assert got["once_calls"] == 1, f"@retry(1) means one call, no retries; got {got['once_calls']}"


@probe
def probe_retry_which(nb: Any, plan: dict[str, Any]) -> Data:
    bad_request = Flaky([error(nb, "InvalidRequestError", plan["bad_request"])])
    bug = Flaky([TypeError(plan["bug"])])
    overloaded = Flaky([error(nb, "OverloadedError", "529")], plan["value"])
    timeouts = Flaky([TimeoutError() for _ in range(plan["timeouts"])], plan["value"])
    return {
        "bad_request": attempt(nb.retry(plan["attempts"])(bad_request),
                               expect=nb.InvalidRequestError),
        "bad_request_calls": bad_request.calls,
        "bug": attempt(nb.retry(plan["attempts"])(bug), expect=TypeError),
        "bug_calls": bug.calls,
        "overloaded": attempt(nb.retry(2)(overloaded)), "overloaded_calls": overloaded.calls,
        "timeouts": attempt(nb.retry(plan["timeouts"] + 1, on=(TimeoutError,))(timeouts)),
        "timeouts_calls": timeouts.calls,
        "below_one": [attempt(nb.retry, attempts) for attempts in plan["below_one"]],
    }


@exercise(
    "retry_decorator", points=1,
    hint="Retry only exceptions that are instances of a class in `on` (use `except on:`); "
    "everything else must propagate after the first call.",
)
def test_retry_only_retryable_errors(notebook: Any) -> None:
    attempts, timeouts, value = random.randint(2, 6), random.randint(1, 4), word()
    plan = {"attempts": attempts, "bad_request": f"400: unknown model {word()}",
            "bug": f"a bug in our code: {word()}", "value": value, "timeouts": timeouts,
            "below_one": [0, -random.randint(1, 5)]}
    got = probe_retry_which(notebook, plan)
    assert got["bad_request"]["error"] is not None and got["bad_request"]["expected"], (
        f"a non-retryable InvalidRequestError should propagate, got {got['bad_request']}"
    )
    assert got["bad_request_calls"] == 1, (
        f"a non-retryable error was retried: {got['bad_request_calls']} calls"
    )
    assert got["bug"]["error"] is not None and got["bug"]["expected"], (
        f"a TypeError should propagate, got {got['bug']}"
    )
    assert got["bug_calls"] == 1, f"a TypeError was retried: {got['bug_calls']} calls"
    assert_same(got["overloaded"], {"error": None, "returned": value},
                "@retry(2) on a call that fails once with OverloadedError")
    assert got["overloaded_calls"] == 2, "a subclass of a retryable error should be retried too"
    assert_same(got["timeouts"], {"error": None, "returned": value},
                f"@retry({timeouts + 1}, on=(TimeoutError,)) on {timeouts} timeouts, then success")
    assert got["timeouts_calls"] == timeouts + 1, (
        f"on=(TimeoutError,) should retry timeouts; {got['timeouts_calls']} calls"
    )
    for below, result in zip(plan["below_one"], got["below_one"], strict=True):
        assert result["error"] == "ValueError", (
            f"retry({below}) should raise ValueError when it is called, got {result}"
        )


@probe
def probe_retry_metadata(nb: Any, names: list[str], docs: list[str]) -> Data:
    sync, coroutine = summariser(names[0], docs[0]), async_summariser(names[1], docs[1])
    return [metadata(sync, nb.retry(2)(sync)), metadata(coroutine, nb.retry(2)(coroutine))]


def _plain_number(value: object) -> float | str:
    """A number the judge can compare (a float), or the repr of whatever came instead."""
    return float(value) if type(value) in (int, float) else repr(value)  # type: ignore[arg-type]


@probe
def probe_retry_backoff(nb: Any, delay: float, attempts: int, failures: int,
                        use_async: bool) -> Data:
    """Run ``retry(attempts, delay=delay)`` over a call that fails ``failures`` times, with
    ``time.sleep`` and ``asyncio.sleep`` recording the waits instead of waiting."""
    import asyncio
    import time as time_module

    slept: list[float | str] = []

    def fake_sleep(seconds: object) -> None:
        slept.append(_plain_number(seconds))

    async def fake_async_sleep(seconds: object, result: object = None) -> object:
        slept.append(_plain_number(seconds))
        return result

    errors = [nb.ServerError(f"503 #{i}") for i in range(failures)]

    def call() -> str:
        if errors:
            raise errors.pop(0)
        return "ok"

    async def acall() -> str:
        return call()

    saved = time_module.sleep, asyncio.sleep, nb.__dict__.get("sleep")
    time_module.sleep, asyncio.sleep = fake_sleep, fake_async_sleep  # type: ignore[assignment]
    if saved[2] in (saved[0], saved[1]):  # `from time import sleep` in the notebook
        nb.sleep = fake_async_sleep if saved[2] is saved[1] else fake_sleep
    try:
        wrapped = nb.retry(attempts, delay=delay)(acall if use_async else call)
        try:
            result = asyncio.run(wrapped()) if use_async else wrapped()
            outcome = str.__str__(result) if type(result) is str else repr(result)
        except nb.ServerError:
            outcome = "ServerError"
    finally:
        time_module.sleep, asyncio.sleep = saved[0], saved[1]  # type: ignore[assignment]
        if saved[2] is not None:
            nb.sleep = saved[2]
    return {"outcome": outcome, "slept": slept}


@exercise(
    "retry_decorator", points=1,
    hint="Before the n-th retry wait delay * 2 ** (n - 1) seconds (0.25, 0.5, 1.0 for delay=0.25), "
    "in the sync wrapper with time.sleep and in the async one with await asyncio.sleep; no wait "
    "before the first call or after the last.",
)
def test_retry_backs_off_exponentially(notebook: Any) -> None:
    for use_async in (False, True):
        what = "async" if use_async else "sync"
        delay = random.choice([0.05, 0.1, 0.2, 0.25, 0.3, 0.5])
        failures = random.randint(2, 4)
        got = probe_retry_backoff(notebook, delay, failures + 1, failures, use_async)
        waits = [delay * 2 ** (n - 1) for n in range(1, failures + 1)]
        assert got["outcome"] == "ok", (
            f"{what}: {failures} failures then success, got {got['outcome']!r}"
        )
        assert got["slept"] == waits, (
            f"{what}, delay={delay}, {failures} failures then success: the waits before the "
            f"retries should be {waits} s; the wrapper waited {got['slept']}"
        )
        attempts = random.randint(2, 4)
        got = probe_retry_backoff(notebook, delay, attempts, attempts, use_async)
        waits = [delay * 2 ** (n - 1) for n in range(1, attempts)]
        assert got["outcome"] == "ServerError" and got["slept"] == waits, (
            f"{what}, @retry({attempts}, delay={delay}) on a call that always fails: waits "
            f"{waits} s, then the last error; got {got}"
        )


@exercise(
    "retry_decorator", points=1,
    hint="Use functools.wraps in both the sync and the async wrapper.",
)
def test_retry_keeps_metadata(notebook: Any) -> None:
    got = probe_retry_metadata(notebook, [word(), word()], [words(4), words(4)])
    check_metadata(got[0], "retry(2)(a function)")
    check_metadata(got[1], "retry(2)(an async function)")


@probe
async def probe_retry_async(nb: Any, failures: list[list[str]], prompt: str) -> Data:
    events: list[str] = []
    errors = [error(nb, cls, message) for cls, message in failures]

    async def complete(prompt: str) -> str:
        events.append("attempt")
        if errors:
            raise errors.pop(0)
        return prompt.upper()

    async def heartbeat() -> None:
        for _ in range(2):
            await asyncio.sleep(0)
            events.append("tick")

    wrapped = nb.retry(len(failures) + 1, delay=0.001)(complete)
    if not inspect.iscoroutinefunction(wrapped):
        return {"coroutine_function": False}
    result, _ = await asyncio.gather(wrapped(prompt), heartbeat())
    first_run = list(events)
    errors.append(error(nb, "InvalidRequestError", "400"))
    try:
        await nb.retry(3)(complete)("x")
    except nb.InvalidRequestError:
        bad = "InvalidRequestError"
    except Exception as exc:
        bad = kind(exc)
    else:
        bad = None
    return {"coroutine_function": True, "result": plain(result), "events": first_run,
            "bad": bad, "attempts_after": events.count("attempt")}


@exercise(
    "retry_decorator", points=1,
    hint="An async function needs an `async def` wrapper that awaits each attempt and waits "
    "with `await asyncio.sleep(...)`, never time.sleep.",
)
def test_retry_async(notebook: Any) -> None:
    failures = [[retryable(), f"{random.randint(500, 599)} {word()}"]
                for _ in range(random.randint(1, 3))]
    prompt = words(2)
    got = probe_retry_async(notebook, failures, prompt)
    assert got["coroutine_function"], "retry(...)(async function) must be async def"
    assert_same(got["result"], prompt.upper(), "the retried call's result")
    events = got["events"]
    attempts = len(failures) + 1
    assert events.count("attempt") == attempts, (
        f"{len(failures)} failures then success: expected {attempts} attempts, "
        f"got {events.count('attempt')}"
    )
    assert "tick" in events and events.index("tick") < events.index("attempt", 1), (
        "the event loop did not run anything between attempts: wait with await asyncio.sleep "
        f"(order was {events})"
    )
    assert same(got["bad"], "InvalidRequestError"), (
        f"an async InvalidRequestError should propagate, got {got['bad']}"
    )
    assert got["attempts_after"] == attempts + 1, "an async non-retryable error was retried"


# --- resource_manager ------------------------------------------------------------------

@probe
def probe_lease(nb: Any, prompt: str) -> Data:
    pool = nb.ConnectionPool(size=1)
    with nb.Lease(pool) as conn:
        lent_inside = list(pool.lent)
        if type(conn) is nb.Connection:  # anything else is reported below
            conn.send(prompt)
    # Looked at after the block: an __exit__ that swallows errors would hide a failure inside.
    is_connection = type(conn) is nb.Connection
    report = {"connection": is_connection, "conn": shown(conn),
              "lent_inside": holds_only(lent_inside, conn), "shown_inside": shown(lent_inside),
              "lent_after": holds_only(pool.lent), "shown_lent": shown(pool.lent),
              "idle": holds_only(pool.idle, conn) and conn.closed is False,
              "shown_idle": shown(pool.idle)}
    with nb.Lease(pool) as again:
        pass
    report["reused"] = again is conn
    return report


@exercise(
    "resource_manager", points=1,
    hint="__enter__ returns the connection from pool.acquire(); __exit__ gives it back with "
    "pool.release() when there was no exception.",
)
def test_lease_returns_connection(notebook: Any) -> None:
    got = probe_lease(notebook, words(3))
    assert got["connection"], f"`as` should give a Connection, got {got['conn']}"
    assert got["lent_inside"], (
        f"inside the block the connection should be lent out; lent: {got['shown_inside']}"
    )
    assert got["lent_after"], f"after the block nothing should be lent out; lent: {got['shown_lent']}"
    assert got["idle"], (
        f"a healthy connection goes back to the pool, open; idle: {got['shown_idle']}"
    )
    assert got["reused"], "the released connection should be reused"


@probe
def probe_lease_errors(nb: Any, names: list[str], message: str) -> Data:
    made = {"ValueError": lambda: ValueError(message), "KeyboardInterrupt": KeyboardInterrupt,
            "CancelledError": asyncio.CancelledError}
    results = []
    for name in names:
        failure = made[name]()
        pool = nb.ConnectionPool(size=1)
        box: dict[str, Any] = {}
        try:
            with nb.Lease(pool) as conn:
                box["conn"] = conn
                raise failure
        except BaseException as caught:
            if caught is not failure and "conn" not in box:
                raise  # __enter__ failed: the learner's own exception says why
            instead = None if caught is failure else f"{kind(caught)}: {shown(caught, str)}"
        else:
            instead = "nothing"
        conn = box["conn"]
        idle = pool.idle
        results.append({
            "name": name, "instead": instead,
            "lent_after": holds_only(pool.lent), "shown_lent": shown(pool.lent),
            "discarded": getattr(conn, "closed", None) is True and holds_only(pool.discarded, conn),
            "shown_discarded": shown(pool.discarded),
            "fresh_idle": type(idle) is list and len(idle) == 1 and idle[0] is not conn,
            "shown_idle": shown(idle)})
    return results


@exercise(
    "resource_manager", points=1,
    hint="When the block raised, exc_type is not None: discard the connection instead of "
    "releasing it, for any exception, BaseException included.",
)
def test_lease_discards_on_error(notebook: Any) -> None:
    names = ["ValueError", "KeyboardInterrupt", "CancelledError"]
    for got in probe_lease_errors(notebook, names, f"bad reply: {word()}"):
        name = got["name"]
        assert got["instead"] is None, (
            f"the {name} raised inside `with Lease(...)` never reached the caller "
            f"(it got {got['instead']})"
        )
        assert got["lent_after"], f"after {name} nothing should be lent out; lent: {got['shown_lent']}"
        assert got["discarded"], (
            f"after {name} the connection should be discarded (closed), not reused; "
            f"discarded: {got['shown_discarded']}"
        )
        assert got["fresh_idle"], f"the pool should hold one fresh connection; idle: {got['shown_idle']}"


@probe
def probe_no_swallow(nb: Any, message: str) -> Data:
    pool = nb.ConnectionPool(size=1)
    failure = RuntimeError(message)
    try:
        with nb.Lease(pool):
            raise failure
    except RuntimeError as caught:
        propagated = caught is failure
    else:
        propagated = False
    lease = nb.Lease(pool)
    lease.__enter__()
    suppressed = lease.__exit__(ValueError, ValueError("x"), None)
    return {"propagated": propagated, "suppresses": bool(suppressed), "returned": shown(suppressed)}


@exercise(
    "resource_manager", points=1,
    hint="A truthy return value from __exit__ swallows the exception: return None (or False).",
)
def test_lease_does_not_swallow_errors(notebook: Any) -> None:
    got = probe_no_swallow(notebook, f"the model server hung up: {word()}")
    assert got["propagated"], "the exception raised inside `with Lease(...)` never reached the caller"
    assert not got["suppresses"], (
        f"__exit__ returned {got['returned']}: that suppresses the exception"
    )


@probe
def probe_single_use(nb: Any) -> Data:
    pool = nb.ConnectionPool(size=2)
    lease = nb.Lease(pool)
    with lease:
        pass
    body_ran = False
    try:
        with lease:
            body_ran = True
    except NotImplementedError:
        raise
    except RuntimeError as exc:
        second: Data = {"error": kind(exc), "message": shown(exc, str)}
    else:
        second = None
    return {"second": second, "body_ran": body_ran, "lent_after": holds_only(pool.lent),
            "shown_lent": shown(pool.lent)}


@exercise(
    "resource_manager", points=1,
    hint="Remember in the Lease whether it has been entered, and raise RuntimeError the "
    "second time.",
)
def test_lease_is_single_use(notebook: Any) -> None:
    got = probe_single_use(notebook)
    assert not got["body_ran"], "a Lease was entered twice"
    assert got["second"] is not None, "entering a Lease a second time should raise RuntimeError"
    assert got["lent_after"], (
        f"a refused second entry must not lend out a connection; lent: {got['shown_lent']}"
    )
