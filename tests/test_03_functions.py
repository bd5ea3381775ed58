"""Graded tests for chapter 3's exercises: a lazy pipeline, two decorators, a context manager."""

from __future__ import annotations

import asyncio
import inspect
import logging
import types
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from course.pytest_plugin import exercise
from course.testing import assert_same, same


class CountingSource:
    """An iterable that counts how many items were pulled from it, and can end in a trap.

    With ``limit``, pulling item number ``limit + 1`` fails the test: a pipeline that reads
    ahead (or collects everything into a list) trips it instead of hanging on an endless
    source.
    """

    def __init__(self, items: Iterable[str], limit: int | None = None) -> None:
        self.items = items
        self.limit = limit
        self.pulled = 0

    def __iter__(self) -> Iterator[str]:
        for item in self.items:
            if self.limit is not None and self.pulled >= self.limit:
                pytest.fail(
                    f"the pipeline pulled more than {self.limit} items from its source before "
                    "the consumer asked for them: it is reading ahead, not lazy"
                )
            self.pulled += 1
            yield item


def endless(prefix: str = "text") -> Iterator[str]:
    number = 0
    while True:
        number += 1
        yield f"{prefix} {number}"


# --- lazy_pipeline ---------------------------------------------------------------------

@exercise(
    "lazy_pipeline", points=1,
    hint="clean: str.split() with no argument splits on any run of whitespace; drop texts "
    "that are empty afterwards. dedupe: remember what you have already yielded.",
)
def test_clean_and_dedupe(notebook: types.ModuleType) -> None:
    raw = ["  Hello   world ", "\t\n", "Hello world", "line\none", "", "hello world", "line one"]
    cleaned = list(notebook.clean(raw))
    want = ["Hello world", "Hello world", "line one", "hello world", "line one"]
    assert same(cleaned, want), f"clean: expected {want}, got {cleaned}"
    deduped = list(notebook.dedupe(["b", "a", "b", "c", "a"]))
    assert same(deduped, ["b", "a", "c"]), f"dedupe: expected ['b', 'a', 'c'], got {deduped}"


@exercise(
    "lazy_pipeline", points=1,
    hint="Count the items in every batch: full batches hold exactly `size`, the last holds "
    "the rest, and no batch is empty (also when the count divides evenly).",
)
def test_batch_sizes(notebook: types.ModuleType) -> None:
    for count, size in [(7, 3), (6, 3), (1, 5), (0, 2), (4, 1)]:
        items = list(range(count))
        got = list(notebook.batched(items, size))
        want = [items[i : i + size] for i in range(0, count, size)]
        assert same(got, want), f"batched({count} items, size={size}): expected {want}, got {got}"


@exercise(
    "lazy_pipeline", points=1,
    hint="A generator function's body runs only at the first next(): check the size in a "
    "plain function that then returns a generator.",
)
def test_bad_batch_size_fails_at_call(notebook: types.ModuleType) -> None:
    for size in (0, -2):
        with pytest.raises(ValueError):
            notebook.batched(["a", "b"], size)
            pytest.fail(f"batched(items, {size}) returned without raising ValueError")


@exercise(
    "lazy_pipeline", points=1,
    hint="Each stage should take one item, pass it on with yield, and only then take the "
    "next: no list(), no sorted(), no look-ahead to see whether more items follow.",
)
def test_stages_do_not_read_ahead(notebook: types.ModuleType) -> None:
    source = CountingSource(["a", "b", "c", "d", "e", "f", "g"])
    batches = notebook.batched(source, 3)
    assert source.pulled == 0, f"calling batched() already pulled {source.pulled} items"
    first = next(batches)
    assert same(first, ["a", "b", "c"]), f"first batch: expected ['a', 'b', 'c'], got {first}"
    assert source.pulled == 3, f"one batch of 3 should pull 3 items, pulled {source.pulled}"

    source = CountingSource(["  ", "x", "y"])
    assert_same(next(notebook.clean(source)), "x", "clean's first text")
    assert source.pulled == 2, f"clean pulled {source.pulled} items to produce its first (2 needed)"
    source = CountingSource(["x", "x", "y", "z"])
    assert_same(next(notebook.dedupe(source)), "x", "dedupe's first text")
    assert source.pulled == 1, f"dedupe pulled {source.pulled} items to produce its first"


@exercise(
    "lazy_pipeline", points=1,
    hint="Clean before you dedupe (so ' a' and 'a' count as the same text), and build "
    "training_batches from the lazy stages without collecting their output.",
)
def test_training_batches_is_lazy_and_ordered(notebook: types.ModuleType) -> None:
    lines = [" What is RAG? ", "What is  RAG?", "", "Define embedding.", "what is rag?", "Tokens?"]
    got = list(notebook.training_batches(lines, 2))
    want = [["What is RAG?", "Define embedding."], ["what is rag?", "Tokens?"]]
    assert same(got, want), f"training_batches: expected {want}, got {got}"

    source = CountingSource(endless(), limit=20)
    batches = notebook.training_batches(source, 4)
    first, second = next(batches), next(batches)
    assert same(first, ["text 1", "text 2", "text 3", "text 4"]), f"first batch: got {first}"
    assert same(second[:1], ["text 5"]), f"second batch should start at 'text 5', got {second}"
    assert source.pulled == 8, f"two batches of 4 should pull 8 lines, pulled {source.pulled}"


# --- timing_decorator ------------------------------------------------------------------

def timing_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if same(r.name, "timing")]


def keeps_metadata(original: Any, decorated: Any) -> None:
    assert same(decorated.__name__, original.__name__), (
        f"the decorated function is called {decorated.__name__!r}, not {original.__name__!r}"
    )
    assert same(decorated.__doc__, original.__doc__), "the decorated function lost its docstring"
    # Compared as text: a Signature subclass could claim equality, its str() cannot.
    assert same(str(inspect.signature(decorated)), str(inspect.signature(original))), (
        f"the signature changed from {inspect.signature(original)} to {inspect.signature(decorated)}"
    )
    assert getattr(decorated, "__wrapped__", None) is original, (
        "the wrapper has no __wrapped__ pointing at the original function"
    )


def summarise(text: str, max_words: int = 5) -> str:
    """The first few words of a text."""
    return " ".join(text.split()[:max_words])


async def asummarise(text: str, *, max_words: int = 5) -> str:
    """The first few words of a text, asynchronously."""
    await asyncio.sleep(0)
    return " ".join(text.split()[:max_words])


@exercise(
    "timing_decorator", points=1,
    hint="Wrap with functools.wraps(func): it copies the name and docstring and sets "
    "__wrapped__, which inspect.signature follows.",
)
def test_timed_keeps_metadata(notebook: types.ModuleType) -> None:
    keeps_metadata(summarise, notebook.timed(summarise))
    keeps_metadata(asummarise, notebook.timed(asummarise))


@exercise(
    "timing_decorator", points=1,
    hint="Log on the 'timing' logger at INFO after the call, with extra={'function': ..., "
    "'elapsed': ...}; use try/finally so a failing call is logged too.",
)
def test_timed_logs_sync_calls(notebook: types.ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="timing")
    timed = notebook.timed(summarise)
    assert_same(timed("one two three four five six", max_words=2), "one two", "the wrapped call")
    records = timing_records(caplog)
    assert len(records) == 1, f"one call should log one 'timing' record, got {len(records)}"
    record = records[0]
    assert same(record.levelno, logging.INFO), f"expected level INFO, got {record.levelname}"
    message = record.getMessage()
    assert type(message) is str and message.startswith("summarise took ") and message.endswith("s"), (
        f"expected a message like 'summarise took 0.000012s', got {message!r}"
    )
    assert_same(getattr(record, "function", None), "summarise", "the record's 'function' extra")
    elapsed = getattr(record, "elapsed", None)
    assert type(elapsed) is float and elapsed >= 0, f"'elapsed' extra: expected a float >= 0, got {elapsed!r}"

    def broken(prompt: str) -> str:
        raise KeyError(prompt)

    with pytest.raises(KeyError):
        notebook.timed(broken)("p")
    assert len(timing_records(caplog)) == 2, "a call that raised should still be logged"


@exercise(
    "timing_decorator", points=1,
    hint="For an async function the wrapper must itself be `async def` and time "
    "`await func(...)`; check inspect.iscoroutinefunction(func) to choose.",
)
async def test_timed_awaits_async_functions(
    notebook: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="timing")
    events: list[str] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            events.append("logged")

    async def fetch_embedding(text: str) -> list[float]:
        events.append("started")
        await asyncio.sleep(0)
        events.append("finished")
        return [1.0, 2.0]

    spy = Spy()
    logging.getLogger("timing").addHandler(spy)
    try:
        wrapped = notebook.timed(fetch_embedding)
        assert inspect.iscoroutinefunction(wrapped), (
            "timed(async function) should return a coroutine function (an async def wrapper)"
        )
        assert_same(await wrapped("hi"), [1.0, 2.0], "the awaited result")
    finally:
        logging.getLogger("timing").removeHandler(spy)
    assert events == ["started", "finished", "logged"], (
        f"the log record must come after the awaited work finished; order was {events}"
    )
    assert_same(getattr(timing_records(caplog)[-1], "function", None), fetch_embedding.__qualname__,
                "the record's 'function' extra")


# --- retry_decorator -------------------------------------------------------------------

class Flaky:
    """A callable that raises the given errors in turn, then returns 'ok'."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


@exercise(
    "retry_decorator", points=1,
    hint="`attempts` counts every call, the first one included: @retry(3) calls at most 3 "
    "times. Look at your loop bounds.",
)
def test_retry_counts_attempts(notebook: types.ModuleType) -> None:
    flaky = Flaky(notebook.RateLimitError("429"), notebook.ServerError("503"))
    assert_same(notebook.retry(3)(flaky)(), "ok", "the retried call")
    assert flaky.calls == 3, f"two failures then success: expected 3 calls, got {flaky.calls}"

    always = Flaky(*(notebook.RateLimitError(f"429 #{i}") for i in range(10)))
    with pytest.raises(notebook.RateLimitError) as caught:
        notebook.retry(3)(always)()
    assert always.calls == 3, f"@retry(3) on a function that always fails: {always.calls} calls"
    assert same(str(caught.value), "429 #2"), (
        f"after the last attempt, re-raise the last error itself; got {caught.value!r}"
    )
    once = Flaky(notebook.ServerError("503"))
    with pytest.raises(notebook.ServerError):
        notebook.retry(1)(once)()
    assert once.calls == 1, f"@retry(1) means one call, no retries; got {once.calls}"


@exercise(
    "retry_decorator", points=1,
    hint="Retry only exceptions that are instances of a class in `on` (use `except on:`); "
    "everything else must propagate after the first call.",
)
def test_retry_only_retryable_errors(notebook: types.ModuleType) -> None:
    bad_request = Flaky(notebook.InvalidRequestError("400: unknown model"))
    with pytest.raises(notebook.InvalidRequestError):
        notebook.retry(5)(bad_request)()
    assert bad_request.calls == 1, f"a non-retryable error was retried: {bad_request.calls} calls"

    bug = Flaky(TypeError("a bug in our code"))
    with pytest.raises(TypeError):
        notebook.retry(5)(bug)()
    assert bug.calls == 1, f"a TypeError was retried: {bug.calls} calls"

    overloaded = Flaky(notebook.OverloadedError("529"))
    assert_same(notebook.retry(2)(overloaded)(), "ok", "the retried call")
    assert overloaded.calls == 2, "a subclass of a retryable error should be retried too"

    custom = Flaky(TimeoutError(), TimeoutError())
    assert_same(notebook.retry(3, on=(TimeoutError,))(custom)(), "ok", "the retried call")
    assert custom.calls == 3, f"on=(TimeoutError,) should retry timeouts; {custom.calls} calls"

    with pytest.raises(ValueError):
        notebook.retry(0)
        pytest.fail("retry(0) should raise ValueError when it is called")


def _plain_number(value: object) -> float | str:
    """A number the judge can compare (a float), or the repr of whatever came instead."""
    return float(value) if type(value) in (int, float) else repr(value)


def probe_retry_backoff(nb: types.ModuleType, delay: float, attempts: int, failures: int,
                        use_async: bool) -> dict[str, Any]:
    """Run ``retry(attempts, delay=delay)`` over a call that fails ``failures`` times, with
    ``time.sleep`` and ``asyncio.sleep`` recording the waits instead of waiting."""
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
            outcome = str.__str__(result) if isinstance(result, str) else repr(result)
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
def test_retry_backs_off_exponentially(notebook: types.ModuleType) -> None:
    for use_async in (False, True):
        kind = "async" if use_async else "sync"
        got = probe_retry_backoff(notebook, 0.25, 4, 3, use_async)
        assert got["outcome"] == "ok", f"{kind}: three failures then success, got {got['outcome']!r}"
        assert got["slept"] == [0.25, 0.5, 1.0], (
            f"{kind}, delay=0.25, three failures then success: the waits before retries 1-3 should "
            f"be [0.25, 0.5, 1.0] s; the wrapper waited {got['slept']}"
        )
        got = probe_retry_backoff(notebook, 0.1, 3, 3, use_async)
        assert got["outcome"] == "ServerError" and got["slept"] == [0.1, 0.2], (
            f"{kind}, @retry(3, delay=0.1) on a call that always fails: waits [0.1, 0.2] s, then the "
            f"last error; got {got}"
        )


@exercise(
    "retry_decorator", points=1,
    hint="Use functools.wraps in both the sync and the async wrapper.",
)
def test_retry_keeps_metadata(notebook: types.ModuleType) -> None:
    keeps_metadata(summarise, notebook.retry(2)(summarise))
    keeps_metadata(asummarise, notebook.retry(2)(asummarise))


@exercise(
    "retry_decorator", points=1,
    hint="An async function needs an `async def` wrapper that awaits each attempt and waits "
    "with `await asyncio.sleep(...)`, never time.sleep.",
)
async def test_retry_async(notebook: types.ModuleType) -> None:
    events: list[str] = []
    failures = [notebook.RateLimitError("429"), notebook.ServerError("502")]

    async def complete(prompt: str) -> str:
        events.append("attempt")
        if failures:
            raise failures.pop(0)
        return prompt.upper()

    async def heartbeat() -> None:
        for _ in range(2):
            await asyncio.sleep(0)
            events.append("tick")

    wrapped = notebook.retry(3, delay=0.001)(complete)
    assert inspect.iscoroutinefunction(wrapped), "retry(...)(async function) must be async def"
    result, _ = await asyncio.gather(wrapped("hi"), heartbeat())
    assert same(result, "HI"), f"expected 'HI', got {result!r}"
    assert events.count("attempt") == 3, f"expected 3 attempts, got {events.count('attempt')}"
    assert events.index("tick") < events.index("attempt", 1), (
        "the event loop did not run anything between attempts: wait with await asyncio.sleep "
        f"(order was {events})"
    )
    bad = notebook.retry(3)(complete)
    failures.append(notebook.InvalidRequestError("400"))
    with pytest.raises(notebook.InvalidRequestError):
        await bad("x")
    assert events.count("attempt") == 4, "an async non-retryable error was retried"


# --- resource_manager ------------------------------------------------------------------

def holds_only(items: Any, *expected: object) -> bool:
    """``items`` is a plain list of exactly these objects, compared by identity, not ``==``."""
    return type(items) is list and len(items) == len(expected) and all(
        got is want for got, want in zip(items, expected, strict=False)
    )


@exercise(
    "resource_manager", points=1,
    hint="__enter__ returns the connection from pool.acquire(); __exit__ gives it back with "
    "pool.release() when there was no exception.",
)
def test_lease_returns_connection(notebook: types.ModuleType) -> None:
    pool = notebook.ConnectionPool(size=1)
    with notebook.Lease(pool) as conn:
        lent_inside = list(pool.lent)
        if type(conn) is notebook.Connection:  # anything else is reported below
            conn.send("hello")
    # Asserted after the block: an __exit__ that swallows errors would hide a failure inside.
    assert type(conn) is notebook.Connection, f"`as` should give a Connection, got {conn!r}"
    assert holds_only(lent_inside, conn), (
        f"inside the block the connection should be lent out; lent: {lent_inside}"
    )
    assert holds_only(pool.lent), f"after the block nothing should be lent out; lent: {pool.lent}"
    assert holds_only(pool.idle, conn) and conn.closed is False, (
        f"a healthy connection goes back to the pool, open; idle: {pool.idle}"
    )
    with notebook.Lease(pool) as again:
        pass
    assert again is conn, "the released connection should be reused"


@exercise(
    "resource_manager", points=1,
    hint="When the block raised, exc_type is not None: discard the connection instead of "
    "releasing it, for any exception, BaseException included.",
)
def test_lease_discards_on_error(notebook: types.ModuleType) -> None:
    for error in [ValueError("bad reply"), KeyboardInterrupt(), asyncio.CancelledError()]:
        name = type(error).__name__
        pool = notebook.ConnectionPool(size=1)
        with pytest.raises(type(error)):  # noqa: SIM117  (the raise must cross the Lease)
            with notebook.Lease(pool) as conn:
                raise error
        assert holds_only(pool.lent), f"after {name} nothing should be lent out; lent: {pool.lent}"
        assert conn.closed is True and holds_only(pool.discarded, conn), (
            f"after {name} the connection should be discarded (closed), not reused; "
            f"discarded: {pool.discarded}"
        )
        idle = pool.idle
        assert type(idle) is list and len(idle) == 1 and idle[0] is not conn, (
            f"the pool should hold one fresh connection; idle: {idle}"
        )


@exercise(
    "resource_manager", points=1,
    hint="A truthy return value from __exit__ swallows the exception: return None (or False).",
)
def test_lease_does_not_swallow_errors(notebook: types.ModuleType) -> None:
    pool = notebook.ConnectionPool(size=1)
    try:
        with notebook.Lease(pool):
            raise RuntimeError("the model server hung up")
    except RuntimeError:
        pass
    else:
        pytest.fail("the exception raised inside `with Lease(...)` never reached the caller")
    lease = notebook.Lease(pool)
    lease.__enter__()
    suppressed = lease.__exit__(ValueError, ValueError("x"), None)
    assert not suppressed, f"__exit__ returned {suppressed!r}: that suppresses the exception"


@exercise(
    "resource_manager", points=1,
    hint="Remember in the Lease whether it has been entered, and raise RuntimeError the "
    "second time.",
)
def test_lease_is_single_use(notebook: types.ModuleType) -> None:
    pool = notebook.ConnectionPool(size=2)
    lease = notebook.Lease(pool)
    with lease:
        pass
    with pytest.raises(RuntimeError):  # noqa: SIM117
        with lease:
            pytest.fail("a Lease was entered twice")
    assert holds_only(pool.lent), "a refused second entry must not lend out a connection"
