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
# # 3. Functions as tools: generators, decorators, context managers
#
# Three language features do most of the quiet work in production AI code:
#
# - **generators** stream data through a pipeline one item at a time, so a 40 GB
#   training set or an endless stream of tokens never has to fit in memory;
# - **decorators** add timing, retries, caching or logging to a function without
#   touching its body;
# - **context managers** guarantee cleanup (close the connection, release the slot,
#   flush the log) however a block ends.
#
# Each is shown here on the jobs it does in an LLM service. You then build one of each
# in [the exercises](../exercises/03_functions).

# %% [markdown]
# ## Generators
#
# A function with `yield` in its body is a **generator function**. Calling it runs
# nothing: it returns a generator object. Each `next()` runs the body up to the next
# `yield`, hands out that value and pauses there, keeping its local variables.

# %% tags=["nbval-check-output"]
def stream_tokens(answer: str):
    print("(generator started)")
    for word in answer.split():
        yield word + " "
    print("(generator finished)")


tokens = stream_tokens("Paris is the capital")
print(type(tokens).__name__)
print(repr(next(tokens)))
print(repr(next(tokens)))

# %% [markdown]
# Nothing printed "(generator started)" until the first `next()`. A `for` loop calls
# `next()` for you and stops when the generator is exhausted:

# %% tags=["nbval-check-output"]
for token in tokens:  # carries on where the two next() calls stopped
    print(repr(token))

# %% [markdown]
# A **generator expression** is the one-line form: like a list comprehension in round
# brackets, but lazy. Feed it straight to a function that consumes an iterable:

# %% tags=["nbval-check-output"]
documents = [
    "RAG joins retrieval and generation.",
    "Embeddings map text to vectors.",
    "",
]
total_words = sum(len(doc.split()) for doc in documents)
longest = max((doc for doc in documents if doc), key=len)
total_words, longest

# %% [markdown]
# ### The iterator protocol
#
# `for` works on anything **iterable**: an object whose `__iter__` returns an
# **iterator**, whose `__next__` returns the next item or raises `StopIteration` when
# there are none left. Generators implement both for you. Writing the protocol by hand
# is still useful when the iteration has state of its own, such as a paginated API:

# %% tags=["nbval-check-output"]
from collections.abc import Iterator


class ModelPages:
    """Iterate over every model a provider lists, fetching one page at a time."""

    def __init__(self, pages: list[list[str]]) -> None:
        self.pages = pages  # stands in for GET /v1/models?page=N
        self.page = 0
        self.buffer: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while not self.buffer:
            if self.page == len(self.pages):
                raise StopIteration
            print(f"(fetching page {self.page})")
            self.buffer = list(self.pages[self.page])
            self.page += 1
        return self.buffer.pop(0)


for model in ModelPages([["gpt-4o", "gpt-4o-mini"], [], ["o3-mini"]]):
    print(model)

# %% [markdown]
# This is what a `for` loop does, spelled out. An exhausted iterator keeps raising
# `StopIteration`; a second loop over it gets nothing:

# %% tags=["raises-exception"]
models = iter(ModelPages([["gpt-4o"]]))
print(next(models))
next(models)

# %% [markdown]
# A generator function does the same in fewer lines, with the state in local variables:

# %%
def model_pages(pages: list[list[str]]) -> Iterator[str]:
    for number, page in enumerate(pages):
        print(f"(fetching page {number})")
        yield from page  # explained below


list(model_pages([["gpt-4o", "gpt-4o-mini"], [], ["o3-mini"]]))

# %% [markdown]
# ### Laziness and memory
#
# Because a generator produces one item at a time, a pipeline of generators holds one
# item at a time, however big the input. Training data for fine-tuning usually comes as
# JSON Lines, one example per line. Make a file of 100,000 examples and compare reading
# it into a list with streaming it:

# %%
import json
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

data_file = Path(tempfile.mkdtemp()) / "train.jsonl"
with data_file.open("w", encoding="utf-8") as f:
    for i in range(100_000):
        f.write(
            json.dumps({"prompt": f"Question {i}?", "completion": f"Answer {i}."})
            + "\n"
        )
f"{data_file.stat().st_size / 1e6:.0f} MB"


# %%
def read_examples(path: Path) -> Iterator[dict[str, str]]:
    """One parsed example at a time: the file is read line by line."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def peak_mb(consume: Callable[[], object]) -> float:
    tracemalloc.start()
    consume()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6


as_list = peak_mb(
    lambda: len([json.loads(line) for line in data_file.open(encoding="utf-8")])
)
streamed = peak_mb(lambda: sum(1 for _ in read_examples(data_file)))
print(f"list: {as_list:.1f} MB peak, generator: {streamed:.2f} MB peak")

# %% [markdown]
# The list's peak grows with the file; the generator's does not. The same holds for
# anything you can produce one piece at a time: rows from a database cursor, pages from
# an API, chunks of a streamed LLM response (chapter 7).
#
# ### `yield from`
#
# `yield from iterable` yields every item of another iterable (or generator) in turn.
# It flattens nested sources without a loop, for example the chunks of many documents:

# %% tags=["nbval-check-output"]
def chunks(text: str, size: int) -> Iterator[str]:
    words = text.split()
    for start in range(0, len(words), size):
        yield " ".join(words[start : start + size])


def corpus_chunks(docs: list[str], size: int) -> Iterator[str]:
    for doc in docs:
        yield from chunks(doc, size)


list(corpus_chunks(["a b c d e", "f g h"], size=2))

# %% [markdown]
# With generators that *receive* values (next section), `yield from` also passes
# `send()` and `throw()` through to the inner generator and returns its `return` value.
#
# ### `send()`, `throw()` and `close()`
#
# A generator can also take values in: `value = yield result` pauses, and the next
# `gen.send(x)` resumes it with `value = x`. Here is a token budget that receives the
# tokens each call used and replies with what is left:

# %% tags=["nbval-check-output"]
from collections.abc import Generator


class BudgetExceeded(Exception):
    pass


def token_budget(limit: int) -> Generator[int, int, None]:
    """Send it the tokens a call used; it yields the tokens left."""
    used = 0
    try:
        while True:
            try:
                spent = yield limit - used
            except BudgetExceeded:
                print("(budget: caller gave up; resetting)")
                used = 0
                continue
            used += spent
    finally:
        print(f"(budget closed after {used} tokens)")


budget = token_budget(1_000)
print(next(budget))  # "prime" it: run to the first yield
print(budget.send(300))
print(budget.send(450))

# %% [markdown]
# `throw(exc)` raises `exc` inside the generator at the paused `yield` (it may handle it
# and carry on), and `close()` raises `GeneratorExit` there so that `finally` blocks
# run. A generator that is garbage-collected is closed the same way.

# %% tags=["nbval-check-output"]
print(budget.throw(BudgetExceeded()))
budget.close()

# %% [markdown]
# You will rarely write `send`-driven generators today: `async`/`await` (chapter 4) grew
# out of them and does the job better. Old code used them as coroutines under
# `@asyncio.coroutine` with `yield from`, which is **legacy** and removed since Python
# 3.11. Recognise the pattern; write `async def`.
#
# ### Lazy pipelines
#
# Small generators that each take an iterable and return an iterator compose like Unix
# pipes. Each stage does one job and is trivial to test alone. Watch the order in which
# the stages run: each item travels through the whole pipeline before the next one is
# read.

# %% tags=["nbval-check-output"]
from collections.abc import Iterable


def read(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        print(f"read   {line!r}")
        yield line


def clean(texts: Iterable[str]) -> Iterator[str]:
    for text in texts:
        if text.strip():
            yield text.strip().lower()


def dedupe(texts: Iterable[str]) -> Iterator[str]:
    seen: set[str] = set()
    for text in texts:
        if text not in seen:
            seen.add(text)
            yield text


raw = ["What is RAG?", "  ", "what is rag?", "Define tokens."]
for text in dedupe(clean(read(raw))):
    print(f"use    {text!r}")

# %% [markdown]
# `itertools` has ready-made stages: `islice` (take the first n), `chain`, `takewhile`,
# `groupby`, and from Python 3.12 `batched`. In the exercise you write your own
# `batched`, since the details (the last, short batch; failing early on a bad size) are
# where bugs hide.

# %% tags=["nbval-check-output"]
from itertools import islice

list(islice(dedupe(clean(raw)), 1))

# %% [markdown]
# ## Decorators
#
# ### Closures
#
# A function defined inside another function can use the outer function's variables,
# and keeps them alive after the outer function returns. That pair (function plus the
# variables it captured) is a **closure**. A prompt template is a natural one:

# %% tags=["nbval-check-output"]
from collections.abc import Callable


def make_prompt(system: str) -> Callable[[str], list[dict[str, str]]]:
    def prompt(question: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
        ]

    return prompt


support_prompt = make_prompt("You are a terse support agent.")
print(support_prompt("Where is my invoice?"))
print(support_prompt.__closure__[0].cell_contents)

# %% [markdown]
# ### A decorator is a function that takes a function
#
# `@decorator` above `def f` means `f = decorator(f)`. The decorator usually returns a
# closure, the **wrapper**, that does something around the call to the original:

# %% tags=["nbval-check-output"]
def log_calls(func):
    def wrapper(*args, **kwargs):
        print(f"-> {func.__name__}{args}")
        result = func(*args, **kwargs)
        print(f"<- {func.__name__} returned {result!r}")
        return result

    return wrapper


@log_calls
def count_tokens(text: str) -> int:
    """Whitespace token count (a rough stand-in for a real tokenizer)."""
    return len(text.split())


count_tokens("how many tokens is this")

# %% [markdown]
# ### `functools.wraps`, and why
#
# It works, but the function is now called `wrapper`, has no docstring, and its
# signature is `(*args, **kwargs)`. Everything that reads function metadata is now
# wrong: `help()`, stack traces and logs that name the function, FastAPI (which builds
# request parsing from the signature), pytest fixtures, and metrics labelled by function
# name.

# %% tags=["nbval-check-output"]
import inspect

print(count_tokens.__name__, count_tokens.__doc__, inspect.signature(count_tokens))

# %% [markdown]
# `functools.wraps(func)` copies `__name__`, `__qualname__`, `__doc__`, `__module__` and
# the annotations onto the wrapper, and sets `wrapper.__wrapped__ = func`, which
# `inspect.signature` follows to report the original signature:

# %% tags=["nbval-check-output"]
import functools


def log_calls(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        print(f"-> {func.__name__}{args}")
        return func(*args, **kwargs)

    return wrapper


@log_calls
def count_tokens(text: str) -> int:
    """Whitespace token count (a rough stand-in for a real tokenizer)."""
    return len(text.split())


print(
    count_tokens.__name__,
    "|",
    count_tokens.__doc__,
    "|",
    inspect.signature(count_tokens),
)

# %% [markdown]
# Before `wraps` existed people copied the attributes by hand
# (`wrapper.__name__ = func.__name__`, `wrapper.__doc__ = func.__doc__`). That is
# **legacy**: it always misses something (`__qualname__`, `__wrapped__`, the
# annotations). Use `functools.wraps`. For type checkers, give the wrapper the same
# signature with `ParamSpec`, as chapter 2 showed; the typed decorators below do.
#
# ### Decorator factories: `@retry(3)`
#
# A decorator that takes arguments is a function that *returns* a decorator: three
# levels of functions. `@retry(3)` first calls `retry(3)`, and that result decorates
# the function.

# %% tags=["nbval-check-output"]
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class RateLimitError(Exception):
    """HTTP 429 from a provider."""


def retry(attempts: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            for attempt in range(1, attempts + 1):
                try:
                    return func(*args, **kwargs)
                except RateLimitError as exc:
                    print(f"attempt {attempt} failed: {exc}")
                    if attempt == attempts:
                        raise
            raise AssertionError("unreachable")

        return wrapper

    return decorator


responses = iter([RateLimitError("429"), RateLimitError("429"), "Bonjour!"])


@retry(3)
def translate(text: str) -> str:
    outcome = next(responses)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


translate("Hello!")

# %% [markdown]
# This one retries only `RateLimitError`; a real one must also wait between attempts and
# let you choose which errors are worth retrying. That is an exercise.
#
# ### Async-aware decorators
#
# Decorate an `async def` function with a plain wrapper and the wrapper returns the
# coroutine *without running it*: a timer would measure nothing, a retry would never see
# the exception (it happens later, at `await`). An async function needs an `async def`
# wrapper that awaits the call. Check which kind you got with
# `inspect.iscoroutinefunction`:

# %%
import asyncio
import time
from typing import Any


def timed(func: Callable[P, Any]) -> Callable[P, Any]:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            start = time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                print(f"{func.__name__} took {time.perf_counter() - start:.2f}s")

        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            print(f"{func.__name__} took {time.perf_counter() - start:.2f}s")

    return wrapper


@timed
async def fetch_completion(prompt: str) -> str:
    await asyncio.sleep(0.05)  # stands in for the HTTP call
    return f"completion for {prompt!r}"


@timed
def local_embedding(text: str) -> list[float]:
    time.sleep(0.05)
    return [0.1, 0.2]


print(await fetch_completion("hi"))  # top-level await: fine in a notebook
print(local_embedding("hi"))
print(inspect.iscoroutinefunction(fetch_completion))

# %% [markdown]
# (`asyncio.iscoroutinefunction` does the same check but is **legacy**: deprecated since
# Python 3.14. Use the `inspect` one.) The exercise asks for exact typing too: two
# `@overload`s, so a type checker knows an async function stays async.
#
# ### Class-based decorators
#
# When a decorator needs state you want to inspect or reset, a class is clearer than
# variables hidden in a closure. `__call__` makes instances callable, and
# `functools.update_wrapper` is what `wraps` calls underneath:

# %% tags=["nbval-check-output"]
class CountTokens:
    """Decorator: count the prompt and reply tokens of every call."""

    def __init__(self, func: Callable[[str], str]) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.prompt_tokens = 0
        self.reply_tokens = 0

    def __call__(self, prompt: str) -> str:
        reply = self.func(prompt)
        self.prompt_tokens += len(prompt.split())
        self.reply_tokens += len(reply.split())
        return reply


@CountTokens
def summarise(prompt: str) -> str:
    """Summarise a text (a fake model: keeps the first three words)."""
    return " ".join(prompt.split()[:3])


summarise("Large language models predict the next token.")
summarise("Retrieval adds relevant documents to the prompt.")
summarise.__name__, summarise.prompt_tokens, summarise.reply_tokens

# %% [markdown]
# One catch: a class instance is not a descriptor the way a function is, so a
# class-based decorator applied to a *method* does not receive `self` unless you add a
# `__get__`. Use function decorators for methods.
#
# ### Stacking order
#
# Decorators apply bottom-up: the one nearest the `def` wraps the function first, the
# top one wraps the result. At call time the outermost runs first. So `@timed` above
# `@retry` times all attempts together; below it, each attempt separately:

# %% tags=["nbval-check-output"]
def tag(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        print(f"applying {name}")

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            print(f"enter {name}")
            result = func(*args, **kwargs)
            print(f"exit  {name}")
            return result

        return wrapper

    return decorator


@tag("outer: timing")
@tag("inner: retry")
def complete(prompt: str) -> str:
    print("calling the model")
    return "ok"


complete("hi")

# %% [markdown]
# ### `lru_cache` and `cache`
#
# `functools.lru_cache(maxsize=n)` remembers the results of the last `n` distinct calls;
# `functools.cache` is the unbounded version. For an embedding model, which returns the
# same vector for the same text, it turns repeats into dictionary lookups:

# %% tags=["nbval-check-output"]
calls = 0


@functools.lru_cache(maxsize=10_000)
def embed(text: str) -> tuple[float, ...]:
    global calls
    calls += 1
    return (float(len(text)), float(text.count(" ")))


for query in ["refund policy", "opening hours", "refund policy", "refund policy"]:
    embed(query)
calls, embed.cache_info()

# %% [markdown]
# Four rules keep it safe. Arguments must be hashable (`embed(["a", "b"])` raises
# `TypeError`, so pass a tuple). Return immutable values (a tuple, not a list), or one
# caller's edit corrupts every later caller's result. Do not put it on methods of
# long-lived objects: the cache holds `self` and keeps the object alive. And do not cache
# what must not be shared: sampled completions at `temperature > 0` are meant to differ.
#
# ## Context managers
#
# `with` guarantees that setup is paired with cleanup, however the block ends: normally,
# by `return`, or by an exception.
#
# ### `__enter__` and `__exit__`
#
# `with cm as x:` calls `cm.__enter__()` and binds its result to `x`; when the block ends
# it calls `cm.__exit__(exc_type, exc, traceback)`, with three `None`s if nothing was
# raised. A model-server session that must always be closed:

# %% tags=["nbval-check-output"]
from types import TracebackType


class ModelSession:
    def __init__(self, model: str) -> None:
        self.model = model
        self.open = False

    def __enter__(self) -> "ModelSession":
        print(f"open session for {self.model}")
        self.open = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.open = False
        print(f"closed session ({exc_type.__name__ if exc_type else 'no error'})")

    def complete(self, prompt: str) -> str:
        if not prompt:
            raise ValueError("empty prompt")
        return f"{self.model}: ok"


with ModelSession("gpt-4o-mini") as session:
    print(session.complete("hi"))

try:
    with ModelSession("gpt-4o-mini") as session:
        session.complete("")
except ValueError as exc:
    print("caller sees:", exc)

# %% [markdown]
# ### When `__exit__` returns True
#
# If `__exit__` returns a true value, the exception is **suppressed**: execution carries
# on after the `with` block as if nothing happened. Returning `None` (falling off the
# end) or `False` lets it propagate. Suppressing is right only for a specific, expected
# exception that the block's caller genuinely does not need to hear about. A cache
# lookup that treats a corrupt entry as a miss:

# %% tags=["nbval-check-output"]
class CacheMiss:
    """Suppress KeyError and json errors from a cache read; let everything else through.
    """

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return exc_type is not None and issubclass(
            exc_type, KeyError | json.JSONDecodeError
        )


cache = {"q1": '{"answer": "42"}', "q2": "{broken"}
for key in ["q1", "q2", "q3"]:
    answer = None
    with CacheMiss():
        answer = json.loads(cache[key])["answer"]
    print(key, "->", answer)

# %% [markdown]
# `contextlib.suppress(KeyError, json.JSONDecodeError)` is the ready-made version. The
# classic bug is a bare `return True`: it swallows *every* exception, including the
# `KeyboardInterrupt` a user pressed and the `CancelledError` asyncio uses to stop a
# task, and the caller never learns its call failed.
#
# ### `contextlib.contextmanager`
#
# For most context managers a generator is shorter: code before `yield` is
# `__enter__`, the yielded value is bound by `as`, code after is `__exit__`. The
# `try`/`finally` is not optional: an exception in the block is raised *at the `yield`*,
# and without `finally` the cleanup is skipped.

# %% tags=["nbval-check-output"]
from contextlib import contextmanager


@contextmanager
def override_model(settings: dict[str, str], model: str) -> Iterator[dict[str, str]]:
    """Use another model inside the block; always restore the old one."""
    previous = settings["model"]
    settings["model"] = model
    try:
        yield settings
    finally:
        settings["model"] = previous


settings = {"model": "gpt-4o"}
try:
    with override_model(settings, "gpt-4o-mini") as s:
        print("inside:", s["model"])
        raise TimeoutError("slow provider")
except TimeoutError:
    pass
print("after:", settings["model"])

# %% [markdown]
# To suppress an exception from a generator-based context manager, catch it around the
# `yield` and do not re-raise.
#
# ### `ExitStack`: a variable number of context managers
#
# `with a, b, c:` needs to know how many there are when you write it. `ExitStack` enters
# them one by one at run time and exits all that were entered, in reverse order, even if
# entering a later one fails. Writing one output file per evaluation split:

# %% tags=["nbval-check-output"]
from contextlib import ExitStack

out_dir = Path(tempfile.mkdtemp())
splits = ["train", "validation", "test"]
with ExitStack() as stack:
    files = {
        name: stack.enter_context((out_dir / f"{name}.jsonl").open("w"))
        for name in splits
    }
    stack.callback(print, "all split files closed")
    for i in range(10):
        files[splits[i % 3]].write(json.dumps({"id": i}) + "\n")
    print(all(not f.closed for f in files.values()))
print(all(f.closed for f in files.values()))

# %% [markdown]
# ### Single-use, reusable, reentrant
#
# - **Single-use**: can be entered once. Every `@contextmanager` object is (entering it
#   twice fails with a confusing `AttributeError`), and so are open files (once closed,
#   closed). Make a new one for each `with`.
# - **Reusable**: can be entered again after it exited, like `contextlib.suppress(...)`
#   or a `threading.Lock`.
# - **Reentrant**: can be entered again *while already inside* it, like
#   `threading.RLock`. A plain `Lock` entered twice by the same thread deadlocks.

# %% tags=["raises-exception"]
gpt4_mini = override_model(settings, "gpt-4o-mini")
with gpt4_mini:
    pass
with gpt4_mini:  # the generator already ran to its end: Python fails, unhelpfully
    pass

# %% tags=["nbval-check-output"]
import threading

lock = threading.RLock()
with lock:  # noqa: SIM117  (two separate entries are the point)
    with lock:  # the same thread may re-enter an RLock
        print("reentered")

# %% [markdown]
# ### `asynccontextmanager`
#
# Async resources (an HTTP client, a connection pool) need `await` in their setup and
# cleanup. `async with` calls `__aenter__`/`__aexit__`, and
# `contextlib.asynccontextmanager` builds them from an async generator, with the same
# `try`/`finally` rule:

# %%
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FakeAsyncClient:
    async def post(self, path: str) -> str:
        await asyncio.sleep(0.01)
        return f"200 OK {path}"

    async def aclose(self) -> None:
        await asyncio.sleep(0)
        print("client closed")


@asynccontextmanager
async def llm_client() -> AsyncIterator[FakeAsyncClient]:
    client = FakeAsyncClient()
    try:
        yield client
    finally:
        await client.aclose()


async with llm_client() as client:
    print(await client.post("/v1/chat/completions"))

# %% [markdown]
# Chapter 4 uses exactly this shape for `httpx.AsyncClient`: one client for the
# application, closed when the application stops.

# %% [markdown]
# ## Check your understanding
#
# **1. When `__exit__` returns True.** What happens to an exception raised inside the
# block when `__exit__` returns `True`, and when is that the right thing to do?
#
# ```{admonition} Answer
# :class: dropdown
# The exception is suppressed: it never reaches the code after the `with`, which carries
# on as if the block had finished normally. That is right only for specific, expected
# exceptions whose meaning is "nothing to do" (a cache miss, a file that is already
# gone), which is why `contextlib.suppress` takes exception types. Returning `True`
# unconditionally swallows every error, including `KeyboardInterrupt` and asyncio's
# `CancelledError`, and hides real failures. Cleanup managers return `None`.
# ```
#
# **2. Why `functools.wraps`.** Your retry decorator works without `functools.wraps`.
# What breaks anyway?
#
# ```{admonition} Answer
# :class: dropdown
# Every decorated function is now called `wrapper`, with no docstring and the signature
# `(*args, **kwargs)`. Logs, tracebacks and metrics name the wrong function; `help()` is
# useless; and tools that read the signature break: FastAPI builds request parsing from
# it, pytest reads fixture arguments from it, Typer and Click build CLI options from it.
# `wraps` copies the metadata and sets `__wrapped__`, which `inspect.signature` follows.
# ```
#
# **3.** `batches = batched(items, 0)` with a generator function `batched` that checks
# `if size < 1: raise ValueError` at the top. When is the error raised, and why does it
# matter?
#
# ```{admonition} Answer
# :class: dropdown
# Only at the first `next(batches)`: a generator function's body does not run when it
# is called. The error then surfaces far from the bad call, maybe in another function or
# after other work was done. Check arguments in a plain function that then returns the
# generator (an inner generator function, or a generator expression).
# ```
#
# **4.** You stack `@retry(3)` above `@timed` on a function that fails twice and then
# succeeds. How many timing log lines appear? And with the order swapped?
#
# ```{admonition} Answer
# :class: dropdown
# With `@retry` on top, `retry` wraps the timed function, so every attempt is timed:
# three lines. With `@timed` on top, one line, timing all three attempts together.
# Decorators apply bottom-up and run top-down.
# ```
#
# **5.** Why should a function under `@lru_cache` return a tuple rather than a list?
#
# ```{admonition} Answer
# :class: dropdown
# The cache hands every caller the same object. If it is a list, one caller that
# appends to or normalises "its" embedding changes the cached value for everyone after
# it. An immutable tuple cannot be changed in place.
# ```

# %% [markdown]
# ## Summary
#
# - A generator runs lazily, one item per `next()`, so a pipeline of generators streams a
#   file larger than memory. `yield from` delegates; `send()`, `throw()` and `close()`
#   talk to a paused generator.
# - A decorator is a function that takes a function and returns a wrapper. Use
#   `functools.wraps` so the wrapper keeps the name, docstring and signature; add a layer
#   for arguments (`@retry(3)`); give coroutines an `async` wrapper; remember that stacked
#   decorators apply bottom-up.
# - A context manager pairs setup with cleanup that always runs. `__exit__` returning
#   `True` swallows the exception, so do it only on purpose. `@contextmanager`,
#   `ExitStack` and `@asynccontextmanager` cover most cases without writing a class.

# %% [markdown]
# ## Next
#
# Build a lazy batching pipeline, `@timed`, `@retry(...)` and a connection `Lease` in
# [the exercises](../exercises/03_functions).
#
# Then [Chapter 4](04_async) makes these tools asynchronous and sends many LLM calls at
# once, without blocking on each one.
