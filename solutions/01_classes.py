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
# # Exercises 1: a provider layer for LLM calls
#
# These exercises go with [chapter 1](../chapters/01_classes). You will build the small
# layer that sits between an application and the LLM APIs it calls:
#
# 1. `provider_interface`: an abstract base class every provider implements;
# 2. `provider_registry`: concrete providers register themselves by a key, through
#    `__init_subclass__`;
# 3. `concrete_providers`: two offline, deterministic providers with their own token
#    counting;
# 4. `provider_factory`: build a provider from a configuration dict;
# 5. `prompt_builder`: a fluent builder that assembles a validated, immutable prompt.
#
# **How to work.** Write your code where a cell says `raise NotImplementedError` (or
# `TODO`), run the cell, then run the check cell at the end of the section. The check
# grades the notebook **file**, so save it first. Each section says what the tests look
# for; a failing check prints a hint.
#
# Nothing here calls a real API: the providers are fakes, the kind you use in tests and
# local development. Real providers slot into the same interface.

# %% [markdown]
# ## The given types
#
# Three small immutable records travel through the layer. They are written for you.
# `Message` is one chat message, `Prompt` is the whole conversation sent to a model (a
# tuple, so it cannot change after it is built), and `Completion` is what comes back,
# with the token counts you need for cost accounting.

# %%
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """The messages sent to a model, oldest first."""

    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class Completion:
    """A model's reply and the tokens it cost."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# %% [markdown]
# ## Exercise 1: the provider interface (`provider_interface`)
#
# Application code should depend on one interface, not on a vendor SDK. Write
# `LLMProvider`, an abstract base class, in the cell below:
#
# - `__init__(model)` stores the model name and rejects an empty or blank one with a
#   `ValueError` whose message shows the bad value (use `!r`).
# - `model` is a **read-only** property: reading works, assigning raises
#   `AttributeError`.
# - `complete(prompt)` and `count_tokens(text)` are **abstract**: every provider has its
#   own API and its own tokenizer. `complete` is already marked; make `count_tokens`
#   abstract too. Instantiating `LLMProvider`, or a subclass that misses either method,
#   must raise `TypeError`.
# - `prompt_tokens(prompt)` and `ask(text)` are concrete methods written **against the
#   interface**: they call `count_tokens` and `complete`, so every provider gets them
#   for free. `ask` sends one user message and returns the reply's text.
# - `__repr__` returns `ClassName(model='the-model')` with the *actual* class of the
#   object (an `EchoProvider` shows `EchoProvider(...)`), the model repr-quoted.
#
# Leave `__init_subclass__` alone for now: it is exercise 2.
#
# Tips: `@abstractmethod` goes under `@property` if you ever stack them; `type(self)`
# gives the real class of an instance.

# %%
class LLMProvider(ABC):
    """What every LLM provider offers the rest of the application.

    Concrete providers subclass this with a registry key:
    ``class EchoProvider(LLMProvider, key="echo"): ...``
    """

    registry: ClassVar[dict[str, type["LLMProvider"]]] = {}  # key -> provider class
    key: ClassVar[str] = ""  # the key this class was registered under

    def __init_subclass__(cls, *, key: str | None = None, **kwargs: Any) -> None:
        """Exercise 2: register a subclass declared with a key; see the instructions."""
        # BEGIN SOLUTION
        # STUB: # exercise 2: register cls under its key
        # STUB: super().__init_subclass__(**kwargs)
        super().__init_subclass__(**kwargs)
        if key is None:
            # an abstract intermediate or a helper: not a provider you can ask for
            return
        taken = LLMProvider.registry.get(key)
        if taken is not None:
            raise ValueError(
                f"provider key {key!r} is already taken by {taken.__qualname__}; "
                f"pick another key for {cls.__qualname__}"
            )
        cls.key = key
        LLMProvider.registry[key] = cls
        # END SOLUTION

    def __init__(self, model: str) -> None:
        """Store the model name; an empty or blank name is a ValueError."""
        # BEGIN SOLUTION
        if not model.strip():
            raise ValueError(f"model must be a non-empty name, got {model!r}")
        self._model = model
        # END SOLUTION

    @property
    def model(self) -> str:
        """The model this provider calls. Read-only."""
        # BEGIN SOLUTION
        return self._model
        # END SOLUTION

    @abstractmethod
    def complete(self, prompt: Prompt) -> Completion:
        """Send ``prompt`` to the model and return its completion."""

    # BEGIN SOLUTION
    # STUB: # TODO: make count_tokens abstract, like complete above
    @abstractmethod
    # END SOLUTION
    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is for this provider's tokenizer."""
        # BEGIN SOLUTION
        # STUB: raise NotImplementedError(
        # STUB:     "Make LLMProvider.count_tokens abstract: see above."
        # STUB: )
        # END SOLUTION

    def prompt_tokens(self, prompt: Prompt) -> int:
        """The tokens of every message in ``prompt``, counted with ``count_tokens``."""
        # BEGIN SOLUTION
        return sum(self.count_tokens(message.content) for message in prompt.messages)
        # END SOLUTION

    def ask(self, text: str) -> str:
        """Send ``text`` as a single user message; return the reply's text."""
        # BEGIN SOLUTION
        return self.complete(Prompt((Message("user", text),))).text
        # END SOLUTION

    def __repr__(self) -> str:
        """``EchoProvider(model='echo-1')``: the real class name and the model."""
        # BEGIN SOLUTION
        return f"{type(self).__name__}(model={self.model!r})"
        # END SOLUTION


# %% [markdown]
# Try it: a throwaway provider that always answers "42" should work with `ask`, and
# `LLMProvider` itself should refuse to be instantiated.

# %% tags=["demo"]
class FortyTwo(LLMProvider):
    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def complete(self, prompt: Prompt) -> Completion:
        return Completion("42", self.model, self.prompt_tokens(prompt), 1)


deep_thought = FortyTwo("deep-thought")
print(repr(deep_thought), deep_thought.ask("What is the answer?"))
try:
    LLMProvider("any")  # type: ignore[abstract]
except TypeError as exc:
    print("TypeError:", exc)

# %%
from course.check import check

check("provider_interface")

# %% [markdown]
# ## Exercise 2: a registry filled by `__init_subclass__` (`provider_registry`)
#
# A configuration file says `provider: echo`; something has to turn `"echo"` into a
# class. Rather than a hand-kept dict that someone forgets to update, let each provider
# register itself when its `class` statement runs. Go back to the `LLMProvider` cell
# above and write `__init_subclass__`:
#
# - A subclass declared with a key, `class EchoProvider(LLMProvider, key="echo")`, is
#   stored as `LLMProvider.registry["echo"]` and gets `EchoProvider.key == "echo"`.
# - A subclass declared **without** a key is not registered. That is how abstract
#   intermediates (say, a `ChatProvider` base for all HTTP providers) and test helpers
#   stay out of the registry.
# - A second class claiming a key that is taken raises `ValueError`, naming the key and
#   the class that already holds it. Silently replacing a provider is how a typo turns
#   into an afternoon of debugging.
# - There is **one** registry, on `LLMProvider`, shared by every subclass. This is the
#   one place where a mutable class attribute shared across classes is what you want,
#   so make sure you update that dict and never give a subclass its own.
# - Call `super().__init_subclass__(**kwargs)`, so the hook cooperates with mixins that
#   have their own `__init_subclass__`.
#
# Registration happens when a `class` statement runs, so after changing `LLMProvider`,
# re-run its cell and every cell below it. (Re-running only a provider's cell declares
# its key a second time, and your registry should refuse that: re-run from
# `LLMProvider` down, or restart the kernel.)

# %% [markdown]
# Try it: the class with a key appears in the registry the moment its `class` statement
# runs; the one without stays out. Run the cell a second time and your registry should
# refuse the repeated key.

# %% tags=["demo"]
class Unregistered(LLMProvider):
    """No key: an intermediate class, not in the registry."""


class AlwaysFortyTwo(FortyTwo, key="forty-two"):
    """A key: registered as soon as this statement runs."""


print(LLMProvider.registry)
print(AlwaysFortyTwo.key, Unregistered in LLMProvider.registry.values())

# %%
check("provider_registry")

# %% [markdown]
# ## Exercise 3: two offline providers (`concrete_providers`)
#
# Real providers call an HTTP API. These two are fakes, but honest ones: deterministic,
# with their own token counting, the kind you plug into tests and demos.
#
# **`EchoProvider`** (key `"echo"`) replies with the content of the **last user
# message** in the prompt, and counts one token per whitespace-separated word.
# `prompt_tokens` counts every message of the prompt; `completion_tokens` counts the
# reply. A prompt with no user message is a `ValueError`.
#
# **`ScriptedProvider`** (key `"scripted"`) plays back a script of replies, in order, and
# records every prompt it receives (a test "spy"):
#
# - `ScriptedProvider(model, replies)` keeps its own copy of `replies` (changing the
#   caller's list afterwards must not change the script) and starts an empty `prompts`
#   list that belongs to **this instance**.
# - `complete` appends the prompt to `prompts`, then returns the next reply; when the
#   script is used up it raises `RuntimeError` saying how many replies there were.
# - It counts tokens the rough way many cost estimators do: one token per 4 characters,
#   rounded up (`""` is 0 tokens, `"hello"` is 2).
# - It must still validate the model name: call the base class `__init__`.

# %%
class EchoProvider(LLMProvider, key="echo"):
    """Replies with the last user message; one token per whitespace-separated word."""

    def count_tokens(self, text: str) -> int:
        """One token per whitespace-separated word."""
        # BEGIN SOLUTION
        return len(text.split())
        # END SOLUTION

    def complete(self, prompt: Prompt) -> Completion:
        """Reply with the last user message; no user message is a ValueError."""
        # BEGIN SOLUTION
        user_texts = [m.content for m in prompt.messages if m.role == "user"]
        if not user_texts:
            raise ValueError("EchoProvider needs a user message to echo")
        reply = user_texts[-1]
        return Completion(
            text=reply,
            model=self.model,
            prompt_tokens=self.prompt_tokens(prompt),
            completion_tokens=self.count_tokens(reply),
        )
        # END SOLUTION


class ScriptedProvider(LLMProvider, key="scripted"):
    """Plays back ``replies`` in order and records each prompt; ~4 characters per token.
    """

    prompts: list[Prompt]  # every prompt received, oldest first: one list per instance

    def __init__(self, model: str, replies: Sequence[str]) -> None:
        """Validate ``model`` as every provider does; keep a copy of ``replies``."""
        # BEGIN SOLUTION
        super().__init__(model)
        self._replies = tuple(replies)
        self.prompts = []
        # END SOLUTION

    def count_tokens(self, text: str) -> int:
        """One token per 4 characters, rounded up."""
        # BEGIN SOLUTION
        return (len(text) + 3) // 4  # integer division, rounded up
        # END SOLUTION

    def complete(self, prompt: Prompt) -> Completion:
        """Record ``prompt``, then return the next scripted reply (RuntimeError when
        none)."""
        # BEGIN SOLUTION
        self.prompts.append(prompt)
        if len(self.prompts) > len(self._replies):
            raise RuntimeError(
                "ScriptedProvider ran out of replies: the script has "
                f"{len(self._replies)}"
            )
        reply = self._replies[len(self.prompts) - 1]
        return Completion(
            text=reply,
            model=self.model,
            prompt_tokens=self.prompt_tokens(prompt),
            completion_tokens=self.count_tokens(reply),
        )
        # END SOLUTION


# %% tags=["demo"]
echo = EchoProvider("echo-1")
scripted = ScriptedProvider("script-1", ["Paris.", "Rome."])
for provider in (echo, scripted):
    completion = provider.complete(Prompt((Message("user", "Capital of France?"),)))
    print(f"{provider!r:36} -> {completion.text!r:22} {completion.total_tokens} tokens")
print(sorted(LLMProvider.registry))

# %%
check("concrete_providers")

# %% [markdown]
# ## Exercise 4: a provider from configuration (`provider_factory`)
#
# Which provider a service uses is configuration, not code: it changes between
# development (a fake), staging and production without a code change. Write:
#
# - `ProviderConfig.from_dict(data)`, a class method (an alternative constructor) that
#   turns a plain dict, as parsed from YAML, JSON or the environment, into a
#   `ProviderConfig`. `provider` and `model` are required; `options` is optional. A
#   missing key, or a key the config does not know (a typo such as `"modle"`), raises
#   `ValueError` naming the key. Swallowing unknown keys hides typos until production.
#   Use `cls`, so a subclass of `ProviderConfig` gets instances of itself.
# - `create_provider(config)`, the factory: it accepts a `ProviderConfig` or a plain dict,
#   looks the provider up in `LLMProvider.registry` (never in a hard-coded `if`/`elif`,
#   so a provider defined anywhere later works too) and calls its class with
#   `model=...` and the `options` as keyword arguments. An unknown provider raises
#   `ValueError` that names it and lists the known keys, sorted.
#
# Chapter 5 does this kind of validation with Pydantic; here you write it by hand.

# %%
# BEGIN SOLUTION
# STUB: # Tip: dataclasses.fields(cls) lists the fields of a dataclass.
from dataclasses import fields

# END SOLUTION


@dataclass(frozen=True)
class ProviderConfig:
    """Which provider to build: ``provider`` is a registry key, ``options`` go to its
    class."""

    provider: str
    model: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build a config from a plain dict; a missing or unknown key is a ValueError.
        """
        # BEGIN SOLUTION
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown provider config key(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(allowed)}"
            )
        missing = [name for name in ("provider", "model") if name not in data]
        if missing:
            raise ValueError(
                f"provider config is missing {', '.join(map(repr, missing))}"
            )
        return cls(
            provider=data["provider"],
            model=data["model"],
            options=dict(data.get("options", {})),
        )
        # END SOLUTION


def create_provider(config: ProviderConfig | Mapping[str, Any]) -> LLMProvider:
    """Build the provider ``config`` names, found in ``LLMProvider.registry``."""
    # BEGIN SOLUTION
    if not isinstance(config, ProviderConfig):
        config = ProviderConfig.from_dict(config)
    provider_class = LLMProvider.registry.get(config.provider)
    if provider_class is None:
        known = ", ".join(sorted(LLMProvider.registry)) or "none"
        raise ValueError(
            f"unknown provider {config.provider!r}; known providers: {known}"
        )
    return provider_class(model=config.model, **config.options)
    # END SOLUTION


# %% tags=["demo"]
settings = {
    "provider": "scripted",
    "model": "script-1",
    "options": {"replies": ["Hi!"]},
}
print(create_provider(settings), create_provider(settings).ask("Hello"))
for bad in ({"provider": "opnai", "model": "gpt"}, {"provider": "echo", "modle": "e"}):
    try:
        create_provider(bad)
    except ValueError as exc:
        print("ValueError:", exc)

# %%
check("provider_factory")

# %% [markdown]
# ## Exercise 5: a prompt builder (`prompt_builder`)
#
# Prompts get assembled from parts: a system instruction, a few worked examples
# ("few-shot"), the user's message. A builder collects the parts in any order and checks
# the whole once, in `build()`. Write `PromptBuilder`:
#
# - `system(text)` sets the system instruction (a second call replaces it);
#   `example(user, assistant)` adds a few-shot pair; `user(text)` sets the user's
#   message. Each returns the builder itself, so calls chain:
#   `PromptBuilder().system("...").example("q", "a").user("...").build()`.
# - Blank text for `system` or `user` is a `ValueError` at that call. A prompt has
#   exactly one user message: a second `user()` call is a `ValueError`.
# - `build()` returns a `Prompt`: the system message first (if any), then each example
#   as a user message and an assistant message, in the order added, and the user message
#   **last**. Without a user message, `build()` raises `ValueError`.
# - Each `build()` returns a snapshot: adding an example afterwards must not change a
#   prompt already built. And two builders never share their parts (think about where
#   the list of examples is created).

# %%
class PromptBuilder:
    """Collects the parts of a chat prompt; ``build()`` checks them and returns a
    Prompt."""

    def __init__(self) -> None:
        # BEGIN SOLUTION
        self._system: str | None = None
        self._examples: list[tuple[str, str]] = []
        self._user: str | None = None
        # END SOLUTION

    def system(self, text: str) -> Self:
        """Set (or replace) the system instruction."""
        # BEGIN SOLUTION
        if not text.strip():
            raise ValueError("the system instruction is blank")
        self._system = text
        return self
        # END SOLUTION

    def example(self, user: str, assistant: str) -> Self:
        """Add a few-shot example: a user message and the ideal assistant reply."""
        # BEGIN SOLUTION
        self._examples.append((user, assistant))
        return self
        # END SOLUTION

    def user(self, text: str) -> Self:
        """Set the user's message; a prompt has exactly one."""
        # BEGIN SOLUTION
        if not text.strip():
            raise ValueError("the user message is blank")
        if self._user is not None:
            raise ValueError(f"this prompt already has a user message: {self._user!r}")
        self._user = text
        return self
        # END SOLUTION

    def build(self) -> Prompt:
        """Check the parts and return them as an immutable Prompt."""
        # BEGIN SOLUTION
        if self._user is None:
            raise ValueError(
                "a prompt needs a user message: call .user(...) before .build()"
            )
        messages: list[Message] = []
        if self._system is not None:
            messages.append(Message("system", self._system))
        for question, answer in self._examples:
            messages += [Message("user", question), Message("assistant", answer)]
        messages.append(Message("user", self._user))
        return Prompt(tuple(messages))
        # END SOLUTION


# %% tags=["demo"]
prompt = (
    PromptBuilder()
    .system("Classify the sentiment as positive or negative.")
    .example("I loved it", "positive")
    .example("Waste of money", "negative")
    .user("Arrived broken, but support was great")
    .build()
)
for message in prompt.messages:
    print(f"{message.role:>9}: {message.content}")
reply = create_provider({"provider": "echo", "model": "echo-1"}).complete(prompt)
print(reply)

# %%
check("prompt_builder")
