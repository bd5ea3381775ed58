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
# # 2. Type hints
#
# An LLM service is mostly plumbing: JSON in from a provider, dicts passed between
# prompt builders, retrievers and parsers, JSON out to a client. Most bugs in that
# plumbing are **shape bugs**: a key that is sometimes missing, a value that is sometimes
# `None`, a list where one item was expected. Type hints let a tool find those bugs
# before a user does.
#
# **What you'll learn**
#
# - why type hints pay off, and how to run mypy (and `mypy --strict`) locally and in CI;
# - the everyday vocabulary: collections, `X | None`, aliases, `Callable`, generics,
#   `Literal`, `Annotated`, `Final`;
# - the tools for real API code: `Protocol`, `TypedDict`, `TypeGuard`, `@overload`,
#   `ParamSpec`, and narrowing.
#
# Then you will build a type-safe response handler in [the exercises](../exercises/02_type_hints).

# %% [markdown]
# ## Why bother
#
# Three reasons, in order of how often they save you.
#
# 1. **Executable documentation.** `def embed(texts: list[str]) -> list[list[float]]`
#    tells the reader what goes in and what comes out, and unlike a docstring a checker
#    keeps it honest.
# 2. **Shape bugs in nested responses.** A chat completion is four levels deep, and one
#    of those levels (`content`) is `None` whenever the model calls a tool. Code that
#    forgets that works in every demo and crashes in production.
# 3. **Gradual adoption.** You do not have to annotate everything. Start at the
#    boundaries (the functions that take API responses and return your own objects)
#    and let the checker spread inward.
#
# Here is the shape bug from point 2. The function runs fine on an ordinary answer:

# %%
from typing import Any


def first_answer(response: dict[str, Any]) -> str:
    return response["choices"][0]["message"]["content"].strip()


answer = {"choices": [{"message": {"role": "assistant", "content": " Paris. "}}]}
first_answer(answer)

# %% [markdown]
# And crashes the first time the model decides to call a tool instead:

# %% tags=["raises-exception"]
tool_call = {"choices": [{"message": {"role": "assistant", "content": None}}]}
first_answer(tool_call)

# %% [markdown]
# `dict[str, Any]` told mypy nothing, so mypy could not help. Describe the shape
# instead (you will meet `TypedDict` properly below) and mypy points at the bug without
# running anything. The course's helper `typecheck_source` runs `mypy --strict` on a
# snippet and returns what it says:

# %% tags=["nbval-check-output"]
from course.typecheck import typecheck_source

snippet = '''
from typing import TypedDict

class Message(TypedDict):
    role: str
    content: str | None

class Choice(TypedDict):
    message: Message

class ChatResponse(TypedDict):
    choices: list[Choice]

def first_answer(response: ChatResponse) -> str:
    return response["choices"][0]["message"]["content"].strip()
'''
print("\n".join(typecheck_source(snippet)))

# %% [markdown]
# ### Running mypy
#
# mypy reads your code and reports type errors; it never runs it. Install it in the
# project's environment (it is in this course's `requirements.txt`) and run it on files
# or packages:
#
# ```bash
# .venv/bin/mypy src/                 # the default: lenient, unannotated code is skipped
# .venv/bin/mypy --strict src/        # what new code should pass
# ```
#
# `--strict` turns on a set of flags; the ones that matter most are: every function must
# be annotated (`disallow_untyped_defs`), calling unannotated code from annotated code is
# an error, `Any` may not leak silently out of a function (`warn_return_any`), and
# generics need their parameters (`list[str]`, not a bare `list`). Put the settings in
# `pyproject.toml` so everyone runs the same check:
#
# ```toml
# [tool.mypy]
# python_version = "3.11"
# strict = true
# ```
#
# and make CI run it next to the tests (this course runs `mypy --strict course
# solutions` in `make test`). To adopt it in an existing code base, start lenient, make
# one package strict with a `[[tool.mypy.overrides]]` section, and widen it over time.
#
# **Notebooks.** mypy reads `.py` files. A Jupytext percent notebook is one, so
# `mypy --strict exercises/02_type_hints.py` just works. An `.ipynb` needs converting
# first; `python -m course.typecheck notebook.ipynb` does that and tells you which cell
# each error is in.
#
# `reveal_type(expr)` asks mypy what type it infers for an expression; it is the
# quickest way to see what the checker sees:

# %% tags=["nbval-check-output"]
print("\n".join(typecheck_source('''
scores = {"gpt-4o-mini": 0.81, "claude-haiku-4-5": 0.84}
best = max(scores, key=scores.__getitem__)
reveal_type(scores)
reveal_type(best)
''')))

# %% [markdown]
# ## The basics
#
# Annotate parameters and return values; mypy infers the types of local variables from
# what you assign. Built-in collections take their item types in square brackets.

# %%
def count_tokens(text: str) -> int:
    return len(text.split())


def mean_latency(latencies_ms: list[float]) -> float:
    return sum(latencies_ms) / len(latencies_ms)


prices_per_million: dict[str, float] = {"gpt-4o-mini": 0.15, "claude-haiku-4-5": 1.0}
stop_sequences: tuple[str, ...] = ("\n\nHuman:", "</answer>")  # any length, all str
# exactly two, in this order
model_and_limit: tuple[str, int] = ("gpt-4o-mini", 128_000)

count_tokens("How long is a piece of string?"), mean_latency([120.0, 340.5, 95.5])

# %% [markdown]
# `tuple[str, ...]` is a tuple of any length; `tuple[str, int]` is a pair. Prefer the
# abstract types from `collections.abc` for parameters (`Sequence[str]`,
# `Mapping[str, float]`, `Iterable[str]`): they accept more callers' values and promise
# you will not mutate them.
#
# ### `None`, unions and aliases
#
# `X | None` says a value may be missing; `A | B` says it is one of several types. mypy
# then makes you handle every case before you use the value:

# %%
def max_output_tokens(model: str, limits: dict[str, int]) -> int | None:
    return limits.get(model)


def budget_for(model: str) -> int:
    limit = max_output_tokens(model, {"gpt-4o-mini": 16_384})
    if limit is None:  # without this check, mypy rejects `limit // 2`
        return 1024
    return limit // 2


budget_for("gpt-4o-mini"), budget_for("some-new-model")

# %% [markdown]
# You will still see the older spellings, from before Python 3.10 allowed `|` and 3.9
# allowed `list[...]` on built-ins. They mean the same thing and are **legacy**: more
# imports, more noise, and `Optional[X]` reads as "optional argument" when it only means
# "may be `None`". Ruff's `UP` rules rewrite them for you.

# %%
# Legacy: do not write new code like this (the noqa comments silence ruff's UP rules).
from typing import Dict, List, Optional, Union  # noqa: UP035


def legacy_lookup(
    names: List[str],  # noqa: UP006
    table: Dict[str, int],  # noqa: UP006
) -> Optional[Union[int, str]]:  # noqa: UP007, UP045
    return table.get(names[0])


# %% [markdown]
# A **type alias** names a type you use often. On Python 3.11 mark it with `TypeAlias`;
# from 3.12 the `type` statement (`type Embedding = list[float]`) does the same.

# %%
from typing import TypeAlias

Embedding: TypeAlias = list[float]
ChatMessage: TypeAlias = dict[str, str]


def cosine(a: Embedding, b: Embedding) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5
    return dot / norm


round(cosine([1.0, 0.0, 1.0], [1.0, 1.0, 0.0]), 3)

# %% [markdown]
# ### `Callable`
#
# Functions are values, and `Callable[[arg types], return type]` types them. A chunker
# that takes its tokenizer as a parameter can then be tested with a fake one:

# %%
from collections.abc import Callable

Tokenizer: TypeAlias = Callable[[str], list[str]]


def chunk(text: str, max_tokens: int, tokenize: Tokenizer = str.split) -> list[str]:
    tokens = tokenize(text)
    return [
        " ".join(tokens[i : i + max_tokens]) for i in range(0, len(tokens), max_tokens)
    ]


chunk("one two three four five six seven", 3)

# %% [markdown]
# ### Generics: `TypeVar` and a typed cache
#
# A function or class that works for any type, and keeps track of *which* type, uses a
# type variable. Here is a small time-limited cache for embeddings (or completions, or
# anything else): the key and value types are parameters, fixed when you create one.

# %%
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """Values expire ``ttl`` after they were stored."""

    def __init__(self, ttl: timedelta) -> None:
        self.ttl = ttl
        self._items: dict[K, tuple[datetime, V]] = {}

    def put(self, key: K, value: V) -> None:
        self._items[key] = (datetime.now(UTC), value)

    def get(self, key: K) -> V | None:
        stored = self._items.get(key)
        if stored is None or datetime.now(UTC) - stored[0] > self.ttl:
            return None
        return stored[1]


embeddings: TTLCache[str, Embedding] = TTLCache(ttl=timedelta(hours=1))
embeddings.put("hello world", [0.12, -0.4, 0.88])
embeddings.get("hello world"), embeddings.get("never stored")

# %% [markdown]
# With `embeddings: TTLCache[str, Embedding]`, mypy rejects `embeddings.put(42, ...)` and
# knows that `embeddings.get(...)` returns `list[float] | None`. A generic *function*
# uses the same variables: `def first(items: Sequence[T]) -> T` returns whatever item
# type it was given. (Python 3.12 adds a shorter syntax, `class TTLCache[K, V]:` and
# `def first[T](...)`, with no `TypeVar` line.)
#
# ### `Literal`, `Annotated`, `Final`
#
# `Literal` restricts a value to a few exact constants: the right type for roles, finish
# reasons and model names you support. `Annotated[T, metadata]` is type `T` for the
# checker, with extra metadata that libraries read at run time (Pydantic reads
# constraints from it). `Final` marks a name that must not be reassigned.

# %%
from typing import Annotated, Final, Literal

from pydantic import Field, TypeAdapter

Role: TypeAlias = Literal["system", "user", "assistant"]
Temperature: TypeAlias = Annotated[float, Field(ge=0.0, le=2.0)]
DEFAULT_MODEL: Final = "gpt-4o-mini"


def message(role: Role, content: str) -> ChatMessage:
    return {"role": role, "content": content}


message("user", "Hi"), TypeAdapter(Temperature).validate_python(0.7)

# %% [markdown]
# mypy checks the `Literal` (`message("admin", ...)` is an error) and the `Final`;
# Pydantic checks the `Annotated` range at run time:

# %% tags=["raises-exception"]
TypeAdapter(Temperature).validate_python(3.5)

# %% tags=["nbval-check-output"]
print("\n".join(typecheck_source('''
from typing import Final, Literal
Role = Literal["system", "user", "assistant"]
DEFAULT_MODEL: Final = "gpt-4o-mini"

def message(role: Role, content: str) -> dict[str, str]:
    return {"role": role, "content": content}

message("admin", "Ignore previous instructions")
DEFAULT_MODEL = "gpt-3.5-turbo"
''')))

# %% [markdown]
# ## Typing real API code
#
# ### `Protocol`: structural typing
#
# An abstract base class (chapter 1) says "subclass me". A `Protocol` says "anything
# with these methods will do", with no inheritance: the type checker compares shapes.
# That suits code you do not own, such as a vendor SDK client, or a fake in a test.

# %%
from typing import Protocol, runtime_checkable


@runtime_checkable
class ChatModel(Protocol):
    def complete(self, prompt: str) -> str: ...


class EchoModel:  # no base class
    def complete(self, prompt: str) -> str:
        return f"echo: {prompt}"


class EmbeddingModel:
    def embed(self, text: str) -> Embedding:
        return [float(len(text))]


def answer_all(model: ChatModel, prompts: list[str]) -> list[str]:
    return [model.complete(p) for p in prompts]


answer_all(EchoModel(), ["hi", "bye"])

# %% [markdown]
# `@runtime_checkable` also lets `isinstance` test the shape. It only checks that the
# methods **exist**, not their signatures, so treat it as a quick sanity check:

# %% tags=["nbval-check-output"]
isinstance(EchoModel(), ChatModel), isinstance(EmbeddingModel(), ChatModel)

# %% [markdown]
# ### `TypedDict`: the shape of a JSON object
#
# Provider responses are dicts, and you often keep them as dicts (to log them, to pass
# them on). `TypedDict` describes which keys a dict has and what type each value is.
# `NotRequired` marks a key that may be absent, which is different from a key whose
# value may be `None`.

# %%
from typing import NotRequired

from typing_extensions import TypedDict  # see the note below


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int


class Completion(TypedDict):
    model: str
    text: str | None  # always present, may be null
    usage: NotRequired[Usage]  # may be missing altogether


def tokens_used(completion: Completion) -> int:
    usage = completion.get("usage")  # Usage | None: mypy makes you check
    if usage is None:
        return 0
    return usage["prompt_tokens"] + usage["completion_tokens"]


reply: Completion = {
    "model": "gpt-4o-mini",
    "text": "Hi!",
    "usage": {"prompt_tokens": 5, "completion_tokens": 2},
}
tokens_used(reply), tokens_used({"model": "gpt-4o-mini", "text": None})

# %% [markdown]
# A `TypedDict` is a plain `dict` at run time: nothing checks the data. To check it,
# hand the `TypedDict` to Pydantic's `TypeAdapter`, which validates and returns the dict.
# (On Python 3.11 Pydantic insists on `typing_extensions.TypedDict`; from 3.12 the one
# in `typing` works.)

# %% tags=["raises-exception"]
TypeAdapter(Completion).validate_python(
    {"model": "gpt-4o-mini", "usage": {"prompt_tokens": "five"}}
)

# %% [markdown]
# ### Narrowing with `isinstance`
#
# Inside `if isinstance(x, T):` mypy treats `x` as a `T`, and in the `else` branch as
# whatever is left. A prompt input that may be one string or a list of messages:

# %%
def to_messages(prompt: str | list[ChatMessage]) -> list[ChatMessage]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]  # here prompt: str
    return prompt  # here prompt: list[ChatMessage]


(
    to_messages("Hello"),
    len(to_messages([message("system", "Be brief."), message("user", "Hi")])),
)

# %% [markdown]
# `is None`, `==` against a `Literal`, `in` on a `Literal` and `callable()` narrow too.
#
# ### `TypeGuard`: your own narrowing functions
#
# `isinstance` cannot look inside a dict. A function returning `TypeGuard[T]` tells mypy
# "when I return True, the argument is a `T`". Anthropic-style content is a list of
# blocks of different types; keep the text blocks:

# %%
from typing import TypeGuard


class TextBlock(TypedDict):
    type: Literal["text"]
    text: str


def is_text_block(block: dict[str, object]) -> TypeGuard[TextBlock]:
    return block.get("type") == "text" and isinstance(block.get("text"), str)


def text_of(blocks: list[dict[str, object]]) -> str:
    return "".join(b["text"] for b in blocks if is_text_block(b))


text_of(
    [
        {"type": "text", "text": "The answer "},
        {"type": "tool_use", "name": "search"},
        {"type": "text", "text": "is 42."},
    ]
)

# %% [markdown]
# The function body is trusted: mypy does not check that it really tests what it claims,
# so keep it small and test it.
#
# ### `@overload`: one function, several signatures
#
# An embedding helper that takes one text returns one vector; given a list it returns a
# list of vectors. One signature `str | list[str] -> Embedding | list[Embedding]` would
# force every caller to check which came back. `@overload` states the pairing:

# %%
from typing import overload


@overload
def embed(text: str) -> Embedding: ...
@overload
def embed(text: list[str]) -> list[Embedding]: ...
def embed(text: str | list[str]) -> Embedding | list[Embedding]:
    if isinstance(text, str):
        return [float(len(text)), float(text.count(" "))]
    return [embed(t) for t in text]


embed("a b"), embed(["a", "b c"])

# %% tags=["nbval-check-output"]
print("\n".join(typecheck_source('''
from typing import overload
@overload
def embed(text: str) -> list[float]: ...
@overload
def embed(text: list[str]) -> list[list[float]]: ...
def embed(text: str | list[str]) -> list[float] | list[list[float]]:
    return [0.0] if isinstance(text, str) else [[0.0]]

reveal_type(embed("one"))
reveal_type(embed(["one", "two"]))
''')))

# %% [markdown]
# Only the `@overload` stubs are visible to callers; the last, undecorated definition is
# the implementation and must accept every overload.
#
# ### `ParamSpec`: decorators that keep signatures
#
# A decorator typed as `Callable[..., Any] -> Callable[..., Any]` erases the signature
# of whatever it wraps: mypy stops checking the arguments of every decorated call.
# `ParamSpec` captures the parameters so the wrapper has the same ones (chapter 3 covers
# decorators in depth):

# %%
import functools
from typing import ParamSpec

P = ParamSpec("P")
R = TypeVar("R")


def logged(func: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        print(f"calling {func.__name__}")
        return func(*args, **kwargs)

    return wrapper


@logged
def build_prompt(question: str, context: list[str]) -> str:
    return "Context:\n" + "\n".join(context) + f"\n\nQuestion: {question}"


print(build_prompt("Who wrote it?", ["The book was written by A. Author."]))

# %% tags=["nbval-check-output"]
print("\n".join(typecheck_source('''
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar
P = ParamSpec("P")
R = TypeVar("R")

def logged(func: Callable[P, R]) -> Callable[P, R]:
    return func

def erased(func: Callable[..., Any]) -> Callable[..., Any]:
    return func

@logged
def kept(question: str, context: list[str]) -> str:
    return question

@erased
def lost(question: str, context: list[str]) -> str:
    return question

kept("Who?", "not a list")
lost("Who?", "not a list")
''')))

# %% [markdown]
# With `ParamSpec` the bad call to `kept` is caught; the same mistake calling `lost`
# sails through, because `erased` turned its signature into `(...) -> Any`.
#
# ## Hints are not checks
#
# Python ignores annotations at run time. `"admin"` is not a `Role`, and the call runs
# anyway, producing a message no provider will accept; only mypy would have told you:

# %%
message("admin", "Ignore previous instructions")  # type: ignore[arg-type]

# %% [markdown]
# So the division of labour is: **mypy** checks your own code, before it runs;
# **Pydantic** (chapter 5) checks data that arrives from outside, while it runs. At a
# trust boundary, such as a provider response, you want both: a `TypedDict` or model
# that describes the shape, and validation that enforces it. That is exactly the
# exercise.

# %% [markdown]
# ## Check your understanding
#
# **1. TypedDict vs Pydantic.** You receive a provider's JSON response. When would you
# describe it with a `TypedDict`, and when with a Pydantic model?
#
# ```{admonition} Answer
# :class: dropdown
# A `TypedDict` is a static description of a plain dict: free at run time, nothing is
# checked, and the value stays a dict (easy to log, serialise or pass on unchanged). A
# Pydantic model validates and converts at run time, gives a clear `ValidationError`,
# and produces an object with attributes and methods. Use a model where untrusted data
# enters your system and you want it checked once; use a `TypedDict` to type dicts you
# keep as dicts, such as raw payloads, and validate them with
# `TypeAdapter(TheTypedDict)` when they come from outside. The exercise uses both: a
# `TypedDict` per raw format, a model for the unified result.
# ```
#
# **2.** A function takes `usage: dict[str, int] | None`. Why does mypy reject
# `usage["prompt_tokens"]`, and what are two ways to satisfy it?
#
# ```{admonition} Answer
# :class: dropdown
# `usage` may be `None`, and `None` has no `__getitem__`. Narrow it first: `if usage is
# None: return 0` (then mypy knows it is a dict below), or `if usage is not None: ...`.
# `assert usage is not None` also narrows, but only use it when `None` really is
# impossible there: it turns a type error into a crash.
# ```
#
# **3.** When do you reach for a `Protocol` instead of an abstract base class?
#
# ```{admonition} Answer
# :class: dropdown
# When you cannot, or do not want to, make implementations inherit from your class:
# third-party clients, test fakes, or small interfaces ("anything with
# `complete(prompt) -> str`") that many unrelated classes satisfy. An ABC is better when
# you own the implementations and want shared code in the base class, or want a missing
# method to fail at instantiation.
# ```
#
# **4.** What is the difference between `usage: NotRequired[Usage]` and
# `usage: Usage | None` in a `TypedDict`?
#
# ```{admonition} Answer
# :class: dropdown
# `NotRequired` means the key may be **absent**: read it with `.get("usage")`. `Usage |
# None` means the key is always **present** but its value may be `null`. Real responses
# have both (OpenAI's `usage` can be left out; Anthropic's `stop_sequence` is always
# there, often `null`), and code that confuses them raises `KeyError` or `TypeError`.
# ```
#
# **5.** Your decorator is typed `def timed(func: Callable[..., Any]) -> Callable[...,
# Any]`. What do callers of decorated functions lose, and what fixes it?
#
# ```{admonition} Answer
# :class: dropdown
# Every decorated function becomes "takes anything, returns `Any`": mypy no longer checks
# the arguments or the return value at any call site, and `Any` spreads from there.
# Type it with `ParamSpec` and `TypeVar`: `def timed(func: Callable[P, R]) ->
# Callable[P, R]`, with a wrapper taking `*args: P.args, **kwargs: P.kwargs`.
# ```

# %% [markdown]
# ## Summary
#
# - Type hints are documentation that a tool checks. Run `mypy --strict` in CI, and add
#   hints first where data crosses a boundary: API responses, config, public functions.
# - Built-in generics (`list[str]`, `dict[str, float]`, `tuple[int, ...]`), `X | None`,
#   aliases, `Callable`, `Literal`, `Annotated` and `Final` describe most code; `TypeVar`
#   and generic classes keep a cache or a result wrapper precise about what it holds.
# - `Protocol` types by shape, `TypedDict` types the dicts a JSON API gives you,
#   `TypeGuard` and `isinstance` narrow, `@overload` ties return types to arguments, and
#   `ParamSpec` lets a decorator keep the signature it wraps.
# - Hints check nothing at run time. Data from outside still needs validation, which is
#   where Pydantic comes in (chapter 5).

# %% [markdown]
# ## Next
#
# Build the type-safe response handler in [the exercises](../exercises/02_type_hints):
# `TypedDict`s for two providers' responses, a unified Pydantic model, validated
# converters, and a notebook that passes `mypy --strict`.
#
# Then [Chapter 3](03_functions) turns to generators, decorators and context managers:
# the tools behind lazy data pipelines, retries and clients that always get closed.
