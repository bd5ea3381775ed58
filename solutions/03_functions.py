# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercises 3: pipelines, decorators and a context manager
#
# These exercises go with [chapter 3](../chapters/03_functions). You will build four
# small tools that every LLM service ends up needing:
#
# 1. `lazy_pipeline` (5 points): generators that clean, deduplicate and batch training texts
#    without ever holding the whole data set in memory;
# 2. `timing_decorator` (3 points): `@timed`, which logs how long each call took, sync or async;
# 3. `retry_decorator` (4 points): `@retry(...)`, which retries only the errors worth retrying;
# 4. `resource_manager` (4 points): `Lease`, a context manager that borrows a connection from a
#    pool and always gives it back, even when the body fails.
#
# **How to work.** Write your code where a cell raises `NotImplementedError`, run the
# cell, then run the check cell at the end of the section. The check grades the saved
# notebook **file**, so save first. A failing check prints what went wrong and a hint.

# %%
import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# %% [markdown]
# ## Exercise 1: a lazy batching pipeline (`lazy_pipeline`)
#
# A fine-tuning job reads millions of texts. The pipeline that prepares them must be
# **lazy**: it pulls an item from its source only when the consumer asks for the next
# result, so it runs in constant memory on a file of any size. Write four functions:
#
# - `clean(texts)` yields each text with surrounding whitespace removed and every run of
#   inner whitespace (spaces, tabs, newlines) collapsed to one space; it drops texts that
#   end up empty.
# - `dedupe(texts)` yields each text the first time it appears and skips later exact
#   repeats, keeping the order.
# - `batched(items, size)` yields lists of `size` items; the last list holds whatever is
#   left (never an empty list). A `size` below 1 raises `ValueError` **as soon as
#   `batched` is called**, not when the first batch is requested (remember when a
#   generator function's body starts running).
# - `training_batches(lines, size)` chains them: clean, then dedupe, then batch.
#
# The tests feed these functions a source that counts how many items were pulled from
# it, and one that never ends: no function may read ahead or collect everything into a
# list.

# %%
def clean(texts: Iterable[str]) -> Iterator[str]:
    """Each non-empty text with its whitespace normalised, lazily."""
    # BEGIN SOLUTION
    for text in texts:
        normalised = " ".join(text.split())
        if normalised:
            yield normalised
    # END SOLUTION


def dedupe(texts: Iterable[str]) -> Iterator[str]:
    """Each text the first time it appears, lazily."""
    # BEGIN SOLUTION
    seen: set[str] = set()
    for text in texts:
        if text not in seen:
            seen.add(text)
            yield text
    # END SOLUTION


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` items (the last may be shorter), lazily; ValueError if size <
    1."""
    # BEGIN SOLUTION
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")

    def batches() -> Iterator[list[T]]:
        batch: list[T] = []
        for item in items:
            batch.append(item)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

    return batches()
    # END SOLUTION


def training_batches(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    """Cleaned, deduplicated texts in batches of ``size``, lazily."""
    # BEGIN SOLUTION
    return batched(dedupe(clean(lines)), size)
    # END SOLUTION


# %% tags=["demo"]
raw = [
    "  What is RAG? ",
    "What is   RAG?",
    "",
    "Define\tembedding.",
    "What is a token?",
]
for batch in training_batches(raw, 2):
    print(batch)

# %%
from course.check import check

check("lazy_pipeline")

# %% [markdown]
# ## Exercise 2: a timing decorator (`timing_decorator`)
#
# Write `@timed`. Every call of a decorated function logs one record on the `timing`
# logger at level `INFO`, **after** the call has finished (also when it raised; the
# exception still propagates unchanged):
#
# - message: `"<qualified name> took <seconds>s"`, the seconds with 4 decimals, for
#   example `"embed took 0.0012s"`;
# - extra fields (pass `extra={...}` to the logging call): `function` (the qualified
#   name) and `elapsed` (the seconds, a `float`).
#
# Use `time.perf_counter()`. The decorated function must keep its name, docstring and
# signature, and `@timed` must work on `async def` functions too: their wrapper must be
# a coroutine function that times the awaited work, not the creation of the coroutine.
#
# The two `@overload`s tell a type checker what `timed` returns for each kind of
# function; your code goes in the third definition.

# %%
timing_logger = logging.getLogger("timing")


@overload
def timed(
    func: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]: ...
@overload
def timed(func: Callable[P, R]) -> Callable[P, R]: ...
def timed(func: Callable[P, Any]) -> Callable[P, Any]:
    """Log how long each call of ``func`` took, on the ``timing`` logger."""
    # BEGIN SOLUTION
    name = func.__qualname__

    def report(start: float) -> None:
        elapsed = time.perf_counter() - start
        timing_logger.info(
            "%s took %.4fs", name, elapsed, extra={"function": name, "elapsed": elapsed}
        )

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            start = time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                report(start)

        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            report(start)

    return wrapper
    # END SOLUTION


# %% tags=["demo"]
logging.basicConfig(
    level=logging.INFO, format="%(name)s %(levelname)s %(message)s", force=True
)


@timed
def embed(texts: list[str]) -> list[list[float]]:
    """A stand-in embedding model: one short vector per text."""
    return [[float(len(t)), float(t.count(" "))] for t in texts]


embed(["a cat", "a dog on a mat"]), embed.__name__, embed.__doc__

# %%
from course.check import check

check("timing_decorator")

# %% [markdown]
# ## Exercise 3: a retry decorator (`retry_decorator`)
#
# Provider calls fail in two ways. A rate limit or a server error is **transient**:
# the same call may work a moment later. A bad request or a wrong key is not: retrying
# it wastes time and quota. The given exception classes below model that.
#
# Write the decorator factory `retry(attempts=3, *, on=RETRYABLE, delay=0.0)`:
#
# - `attempts` is the **total** number of calls, the first included: `@retry(3)` calls
#   at most three times. Below 1 it raises `ValueError` when `retry(...)` is called.
# - Only exceptions that are instances of a class in `on` (subclasses count) are
#   retried. Any other exception propagates at once, after one call.
# - When the last attempt fails, re-raise **that exception itself** (not a new one, not
#   `None` returned).
# - Before the n-th retry wait `delay * 2 ** (n - 1)` seconds: `time.sleep` in a sync
#   wrapper, `await asyncio.sleep` in an async one (never block the event loop).
# - Keep the wrapped function's name, docstring and signature; work on sync and `async
#   def` functions.
#
# Backoff with jitter and retry budgets come in chapter 6; this exercise is about the
# decorator.

# %%
class LLMError(Exception):
    """Base class of errors from an LLM provider."""


class RateLimitError(LLMError):
    """HTTP 429: too many requests; worth retrying after a pause."""


class ServerError(LLMError):
    """HTTP 5xx: the provider failed; worth retrying."""


class OverloadedError(ServerError):
    """HTTP 529: the provider is overloaded, a kind of server error."""


class InvalidRequestError(LLMError):
    """HTTP 400: the request itself is wrong; retrying cannot help."""


RETRYABLE: tuple[type[BaseException], ...] = (RateLimitError, ServerError)


# %%
def retry(
    attempts: int = 3,
    *,
    on: tuple[type[BaseException], ...] = RETRYABLE,
    delay: float = 0.0,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Call the decorated function up to ``attempts`` times while it raises one of
    ``on``."""
    # BEGIN SOLUTION
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                for attempt in range(1, attempts + 1):
                    try:
                        return await func(*args, **kwargs)
                    except on:
                        if attempt == attempts:
                            raise
                    await asyncio.sleep(delay * 2 ** (attempt - 1))
                raise AssertionError("unreachable: the loop returns or raises")

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            for attempt in range(1, attempts + 1):
                try:
                    return func(*args, **kwargs)
                except on:
                    if attempt == attempts:
                        raise
                time.sleep(delay * 2 ** (attempt - 1))
            raise AssertionError("unreachable: the loop returns or raises")

        return wrapper

    return decorator
    # END SOLUTION


# %% tags=["demo"]
calls: list[str] = []


@retry(3)
def flaky_completion(prompt: str) -> str:
    """Fails twice with a rate limit, then answers."""
    calls.append(prompt)
    if len(calls) < 3:
        raise RateLimitError("429 Too Many Requests")
    return f"answer to {prompt!r}"


flaky_completion("hello"), len(calls)

# %%
from course.check import check

check("retry_decorator")

# %% [markdown]
# ## Exercise 4: a resource context manager (`resource_manager`)
#
# A service keeps a small pool of open connections to its model server. Code borrows
# one, sends requests on it, and must give it back: a leaked connection is gone for
# good, and after a few leaks every request waits forever. The pool is given:
# `acquire()` hands out an idle connection, `release(conn)` takes a healthy one back,
# `discard(conn)` closes one that may be broken and replaces it with a fresh one.
#
# Write the class `Lease`, used as `with Lease(pool) as conn:`.
#
# - `__enter__` acquires a connection and returns it.
# - `__exit__` releases it when the body finished normally, and **discards** it when the
#   body raised anything at all (a connection that failed mid-request, or was
#   interrupted, may be half-way through a response). Either way the pool gets it back.
# - `__exit__` never suppresses the exception: the caller must see the failure.
# - A `Lease` is single-use: entering one a second time raises `RuntimeError`.

# %%
class Connection:
    """A fake connection to a model server."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False
        self.sent: list[str] = []

    def send(self, prompt: str) -> str:
        if self.closed:
            raise RuntimeError(f"connection {self.number} is closed")
        self.sent.append(prompt)
        return f"reply {len(self.sent)} on connection {self.number}"

    def close(self) -> None:
        self.closed = True

    def __repr__(self) -> str:
        return f"Connection({self.number}, closed={self.closed})"


class PoolExhausted(RuntimeError):
    """Every connection is lent out."""


class ConnectionPool:
    """A fixed number of connections, lent out one at a time."""

    def __init__(self, size: int = 2) -> None:
        self.opened = 0
        self.idle: list[Connection] = [self._open() for _ in range(size)]
        self.lent: list[Connection] = []
        self.discarded: list[Connection] = []

    def _open(self) -> Connection:
        self.opened += 1
        return Connection(self.opened)

    def acquire(self) -> Connection:
        if not self.idle:
            raise PoolExhausted(f"all {len(self.lent)} connections are in use")
        conn = self.idle.pop(0)
        self.lent.append(conn)
        return conn

    def release(self, conn: Connection) -> None:
        self.lent.remove(conn)
        self.idle.append(conn)

    def discard(self, conn: Connection) -> None:
        self.lent.remove(conn)
        conn.close()
        self.discarded.append(conn)
        self.idle.append(self._open())


# %%
class Lease:
    """``with Lease(pool) as conn:`` borrows a connection and always returns it."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        # BEGIN SOLUTION
        self.conn: Connection | None = None
        self.used = False
        # END SOLUTION

    def __enter__(self) -> Connection:
        # BEGIN SOLUTION
        if self.used:
            raise RuntimeError("a Lease is single-use: make a new one for each block")
        self.used = True
        self.conn = self.pool.acquire()
        return self.conn
        # END SOLUTION

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # BEGIN SOLUTION
        conn, self.conn = self.conn, None
        if conn is not None:
            if exc_type is None:
                self.pool.release(conn)
            else:
                self.pool.discard(conn)
        # Falling off the end returns None: the exception, if any, propagates.
        # END SOLUTION


# %% tags=["demo"]
pool = ConnectionPool(size=1)
with Lease(pool) as conn:
    print(conn.send("Summarise this ticket."))
try:
    with Lease(pool) as conn:
        raise TimeoutError("the model server stopped answering")
except TimeoutError as exc:
    print("caller sees:", repr(exc))
print("idle:", pool.idle, "discarded:", pool.discarded)

# %%
from course.check import check

check("resource_manager")
