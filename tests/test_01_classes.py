"""Graded tests for chapter 1: the LLM provider layer (interface, registry, providers,
factory, prompt builder).

Each test gets a freshly loaded notebook (the ``notebook`` fixture), so the registry starts
with only the notebook's own providers and tests may define and register their own.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

import pytest

from course.pytest_plugin import exercise
from course.testing import same


def user_prompt(nb: ModuleType, *texts: str) -> Any:
    """A Prompt made of one user message per text."""
    return nb.Prompt(tuple(nb.Message("user", text) for text in texts))


def tiny_provider(nb: ModuleType) -> type:
    """A minimal complete provider (no key): counts words, answers 'ok', records prompts."""

    class Tiny(nb.LLMProvider):
        def __init__(self, model: str) -> None:
            super().__init__(model)
            self.seen: list[Any] = []

        def count_tokens(self, text: str) -> int:
            return len(text.split())

        def complete(self, prompt: Any) -> Any:
            self.seen.append(prompt)
            return nb.Completion("ok", self.model, self.prompt_tokens(prompt), 1)

    return Tiny


# ---------------------------------------------------------------- provider_interface


@exercise("provider_interface", points=2,
          hint="Mark count_tokens and complete with @abstractmethod on an ABC subclass.")
def test_interface_cannot_be_instantiated(notebook: ModuleType) -> None:
    abstract = set(getattr(notebook.LLMProvider, "__abstractmethods__", ()))
    assert {"count_tokens", "complete"} <= abstract, (
        f"expected count_tokens and complete to be abstract, got abstract methods {sorted(abstract)}"
    )
    with pytest.raises(TypeError):
        notebook.LLMProvider("some-model")


@exercise("provider_interface", points=1,
          hint="A subclass that leaves out an abstract method must fail when it is instantiated.")
def test_incomplete_provider_cannot_be_instantiated(notebook: ModuleType) -> None:
    class NoTokenizer(notebook.LLMProvider):
        def complete(self, prompt: Any) -> Any:
            return notebook.Completion("x", self.model, 0, 0)

    with pytest.raises(TypeError) as info:
        NoTokenizer("m")
    assert "count_tokens" in str(info.value), (
        f"expected the TypeError to name count_tokens, got: {info.value}"
    )


@exercise("provider_interface", points=1,
          hint="Validate in __init__ (look at .strip()); a property without a setter is read-only.")
def test_model_is_validated_and_read_only(notebook: ModuleType) -> None:
    tiny = tiny_provider(notebook)
    provider = tiny("small-1")
    assert same(provider.model, "small-1"), f"expected model 'small-1', got {provider.model!r}"
    for blank in ("", "   "):
        with pytest.raises(ValueError, match=repr(blank).replace(" ", r"\s")):
            tiny(blank)
    with pytest.raises(AttributeError):
        provider.model = "other"


@exercise("provider_interface", points=1,
          hint="Build the repr from type(self).__name__ and the model with !r.")
def test_repr_names_the_real_class_and_model(notebook: ModuleType) -> None:
    tiny = tiny_provider(notebook)
    assert "__repr__" in vars(notebook.LLMProvider), "expected LLMProvider to define __repr__"
    got = repr(tiny("small-1"))
    assert same(got, "Tiny(model='small-1')"), f"expected \"Tiny(model='small-1')\", got {got!r}"


@exercise("provider_interface", points=1,
          hint="prompt_tokens and ask are written only with count_tokens and complete.")
def test_concrete_methods_use_the_interface(notebook: ModuleType) -> None:
    provider = tiny_provider(notebook)("small-1")
    prompt = notebook.Prompt((notebook.Message("system", "be brief"),
                              notebook.Message("user", "one two three")))
    assert same(provider.prompt_tokens(prompt), 5), (
        f"expected 2 + 3 = 5 tokens over both messages, got {provider.prompt_tokens(prompt)!r}"
    )
    answer = provider.ask("hello there")
    assert same(answer, "ok"), f"expected ask() to return the completion's text 'ok', got {answer!r}"
    sent = provider.seen[-1]
    assert sent == user_prompt(notebook, "hello there"), (
        f"expected ask() to send one user message 'hello there', got {sent!r}"
    )


# ---------------------------------------------------------------- provider_registry


@exercise("provider_registry", points=2,
          hint="In __init_subclass__, store cls in LLMProvider.registry under its key.")
def test_subclass_with_key_registers_itself(notebook: ModuleType) -> None:
    class Local(tiny_provider(notebook), key="local-test"):
        pass

    registry = notebook.LLMProvider.registry
    assert registry.get("local-test") is Local, (
        f"expected LLMProvider.registry['local-test'] to be the new class, got {registry!r}"
    )
    assert same(Local.key, "local-test"), f"expected Local.key == 'local-test', got {Local.key!r}"


@exercise("provider_registry", points=1,
          hint="Both notebook providers are declared with a key; they must be in the registry.")
def test_notebook_providers_are_registered(notebook: ModuleType) -> None:
    registry = notebook.LLMProvider.registry
    expected = {"echo": notebook.EchoProvider, "scripted": notebook.ScriptedProvider}
    got = {key: registry.get(key) for key in expected}
    assert got == expected, f"expected {expected!r}, got {got!r}"


@exercise("provider_registry", points=1,
          hint="A class declared without a key (an abstract intermediate) must stay out.")
def test_classes_without_key_are_not_registered(notebook: ModuleType) -> None:
    before = dict(notebook.LLMProvider.registry)

    class ChatProvider(notebook.LLMProvider):
        """An abstract intermediate: no key."""

    class Helper(tiny_provider(notebook)):
        """A concrete test helper: no key either."""

    class Chat(ChatProvider, key="chat-test"):
        def count_tokens(self, text: str) -> int:
            return 0

        def complete(self, prompt: Any) -> Any:
            return notebook.Completion("", self.model, 0, 0)

    expected = {**before, "chat-test": Chat}
    got = notebook.LLMProvider.registry
    assert got == expected, (
        f"expected only Chat to be added (keys {sorted(expected)}), got keys {sorted(got)}"
    )
    for cls in (notebook.LLMProvider, ChatProvider, Helper):
        assert cls not in got.values(), f"expected {cls.__name__} (no key) not to be registered"


@exercise("provider_registry", points=2,
          hint="What happens when a second class declares a key that is already taken?")
def test_duplicate_key_is_rejected(notebook: ModuleType) -> None:
    tiny = tiny_provider(notebook)

    class First(tiny, key="dup"):
        pass

    with pytest.raises(ValueError) as info:
        class Second(tiny, key="dup"):
            pass
    message = str(info.value)
    assert "dup" in message and "First" in message, (
        f"expected the error to name the key 'dup' and the class holding it (First), got: {message}"
    )
    assert notebook.LLMProvider.registry.get("dup") is First, (
        "expected the first class to keep the key"
    )


@exercise("provider_registry", points=1,
          hint="There is one registry shared by the whole hierarchy; don't give subclasses their own.")
def test_one_registry_for_the_whole_hierarchy(notebook: ModuleType) -> None:
    class Mid(tiny_provider(notebook)):
        pass

    class Leaf(Mid, key="leaf-test"):
        pass

    for cls in (notebook.LLMProvider, Mid, Leaf, notebook.EchoProvider):
        assert cls.registry is notebook.LLMProvider.registry, (
            f"expected {cls.__name__}.registry to be LLMProvider.registry, got a separate dict"
        )
    assert notebook.LLMProvider.registry.get("leaf-test") is Leaf, (
        "expected a grandchild declared with a key to be registered on LLMProvider"
    )


@exercise("provider_registry", points=1,
          hint="Does your __init_subclass__ call super().__init_subclass__(**kwargs)?")
def test_hook_cooperates_with_mixins(notebook: ModuleType) -> None:
    seen: list[str] = []

    class AuditMixin:
        def __init_subclass__(cls, **kwargs: Any) -> None:
            super().__init_subclass__(**kwargs)
            seen.append(cls.__name__)

    class Audited(tiny_provider(notebook), AuditMixin, key="audited-test"):
        pass

    assert "Audited" in seen, (
        f"expected the mixin's __init_subclass__ to run for Audited, got calls for {seen}"
    )
    assert notebook.LLMProvider.registry.get("audited-test") is Audited, (
        "expected Audited to be registered too"
    )


# ---------------------------------------------------------------- concrete_providers


@exercise("concrete_providers", points=2,
          hint="Echo the content of the last message whose role is 'user'; count words.")
def test_echo_replies_and_counts_words(notebook: ModuleType) -> None:
    echo = notebook.EchoProvider("echo-1")
    prompt = notebook.Prompt((
        notebook.Message("system", "Repeat after me."),
        notebook.Message("user", "first question"),
        notebook.Message("assistant", "first answer"),
        notebook.Message("user", "the real question here"),
    ))
    got = echo.complete(prompt)
    expected = notebook.Completion("the real question here", "echo-1", 11, 4)
    assert got == expected, f"expected {expected!r}, got {got!r}"
    assert same(got.total_tokens, 15), f"expected 15 total tokens, got {got.total_tokens!r}"
    with pytest.raises(ValueError):
        echo.complete(notebook.Prompt((notebook.Message("system", "nothing to echo"),)))


@exercise("concrete_providers", points=2,
          hint="Return the replies in order; raise RuntimeError once the script is used up.")
def test_scripted_plays_back_in_order(notebook: ModuleType) -> None:
    scripted = notebook.ScriptedProvider("script-1", ["Paris.", "Rome."])
    answers = [scripted.ask("Capital of France?"), scripted.ask("Capital of Italy?")]
    assert same(answers, ["Paris.", "Rome."]), f"expected ['Paris.', 'Rome.'], got {answers!r}"
    with pytest.raises(RuntimeError) as info:
        scripted.ask("Capital of Spain?")
    assert "2" in str(info.value), (
        f"expected the error to say the script had 2 replies, got: {info.value}"
    )


@exercise("concrete_providers", points=1,
          hint="Round len(text) / 4 up; build the Completion with both token counts.")
def test_scripted_counts_characters(notebook: ModuleType) -> None:
    scripted = notebook.ScriptedProvider("script-1", ["Bonjour!"])
    counts = {text: scripted.count_tokens(text) for text in ("", "hello", "abcdefgh", "abcdefghi")}
    assert same(counts, {"": 0, "hello": 2, "abcdefgh": 2, "abcdefghi": 3}), (
        f"expected {{'': 0, 'hello': 2, 'abcdefgh': 2, 'abcdefghi': 3}}, got {counts!r}"
    )
    got = scripted.complete(user_prompt(notebook, "Say hello in French"))
    expected = notebook.Completion("Bonjour!", "script-1", 5, 2)
    assert got == expected, f"expected {expected!r}, got {got!r}"


@exercise("concrete_providers", points=2,
          hint="Where is the prompts list created: once per class or once per instance?")
def test_scripted_instances_do_not_share_state(notebook: ModuleType) -> None:
    replies = ["one", "two"]
    first = notebook.ScriptedProvider("a", replies)
    second = notebook.ScriptedProvider("b", replies)
    replies.append("three")  # the caller's list changes after the providers were built
    first.ask("question for a")
    assert same(len(second.prompts), 0), (
        f"expected the second provider to have received no prompt, got {second.prompts!r}"
    )
    assert same(first.prompts, [user_prompt(notebook, "question for a")]), (
        f"expected the first provider to have recorded its one prompt, got {first.prompts!r}"
    )
    assert same(second.ask("question for b"), "one"), (
        "expected each provider to play its own script from the start"
    )
    first.ask("again")
    with pytest.raises(RuntimeError):
        first.ask("a third time")  # the caller appended "three", but the script was copied


@exercise("concrete_providers", points=1,
          hint="ScriptedProvider.__init__ must call the base class __init__.")
def test_scripted_validates_model_through_base(notebook: ModuleType) -> None:
    scripted = notebook.ScriptedProvider("script-1", ["x"])
    assert same(scripted.model, "script-1"), f"expected model 'script-1', got {scripted.model!r}"
    with pytest.raises(ValueError):
        notebook.ScriptedProvider("  ", ["x"])
    assert isinstance(scripted, notebook.LLMProvider), "expected a subclass of LLMProvider"


# ---------------------------------------------------------------- provider_factory


@exercise("provider_factory", points=2,
          hint="Look the class up in LLMProvider.registry and pass model and options as keywords.")
def test_factory_builds_from_a_dict(notebook: ModuleType) -> None:
    echo = notebook.create_provider({"provider": "echo", "model": "echo-1"})
    assert type(echo) is notebook.EchoProvider and same(echo.model, "echo-1"), (
        f"expected EchoProvider(model='echo-1'), got {type(echo).__name__} with model "
        f"{getattr(echo, 'model', None)!r}"
    )
    config = notebook.ProviderConfig("scripted", "script-1", {"replies": ["Hi!"]})
    scripted = notebook.create_provider(config)
    assert type(scripted) is notebook.ScriptedProvider, (
        f"expected a ScriptedProvider from a ProviderConfig, got {type(scripted).__name__}"
    )
    assert same(scripted.ask("Hello"), "Hi!"), "expected the options to reach the constructor"


@exercise("provider_factory", points=1,
          hint="The factory must not hard-code provider classes: ask the registry.")
def test_factory_finds_providers_defined_later(notebook: ModuleType) -> None:
    class Later(tiny_provider(notebook), key="later-test"):
        pass

    built = notebook.create_provider({"provider": "later-test", "model": "m"})
    assert type(built) is Later, f"expected a Later instance, got {type(built).__name__}"


@exercise("provider_factory", points=2,
          hint="An unknown provider name should raise ValueError listing the registry's keys.")
def test_unknown_provider_lists_known_ones(notebook: ModuleType) -> None:
    with pytest.raises(ValueError) as info:
        notebook.create_provider({"provider": "opnai", "model": "gpt"})
    message = str(info.value)
    assert "opnai" in message, f"expected the error to name 'opnai', got: {message}"
    assert "echo" in message and "scripted" in message, (
        f"expected the error to list the known providers echo and scripted, got: {message}"
    )
    assert message.index("echo") < message.index("scripted"), (
        f"expected the known providers sorted, got: {message}"
    )


@exercise("provider_factory", points=2,
          hint="Compare the dict's keys with the dataclass's fields; don't ignore the extras.")
def test_config_rejects_unknown_and_missing_keys(notebook: ModuleType) -> None:
    with pytest.raises(ValueError) as info:
        notebook.ProviderConfig.from_dict({"provider": "echo", "model": "e", "temprature": 0.2})
    assert "temprature" in str(info.value), (
        f"expected the error to name the unknown key 'temprature', got: {info.value}"
    )
    with pytest.raises(ValueError) as info:
        notebook.create_provider({"provider": "echo", "modle": "e"})
    assert "modle" in str(info.value), (
        f"expected the factory to reject the unknown key 'modle', got: {info.value}"
    )
    with pytest.raises(ValueError) as info:
        notebook.ProviderConfig.from_dict({"provider": "echo"})
    assert "model" in str(info.value), f"expected the error to name 'model', got: {info.value}"


@exercise("provider_factory", points=1,
          hint="An alternative constructor builds instances with cls(...), not the class's name.")
def test_from_dict_is_an_alternative_constructor(notebook: ModuleType) -> None:
    config = notebook.ProviderConfig.from_dict({"provider": "echo", "model": "e"})
    expected = notebook.ProviderConfig("echo", "e", {})
    assert config == expected, f"expected {expected!r}, got {config!r}"

    @dataclasses.dataclass(frozen=True)
    class TeamConfig(notebook.ProviderConfig):
        pass

    team = TeamConfig.from_dict({"provider": "echo", "model": "e"})
    assert type(team) is TeamConfig, f"expected a TeamConfig, got {type(team).__name__}"


# ---------------------------------------------------------------- prompt_builder


@exercise("prompt_builder", points=2,
          hint="System first, then each example as user + assistant, then the user message.")
def test_builder_orders_the_messages(notebook: ModuleType) -> None:
    prompt = (
        notebook.PromptBuilder()
        .user("Arrived broken")
        .example("I loved it", "positive")
        .system("Classify the sentiment.")
        .example("Waste of money", "negative")
        .build()
    )
    got = [(m.role, m.content) for m in prompt.messages]
    expected = [
        ("system", "Classify the sentiment."),
        ("user", "I loved it"), ("assistant", "positive"),
        ("user", "Waste of money"), ("assistant", "negative"),
        ("user", "Arrived broken"),
    ]
    assert got == expected, f"expected {expected}, got {got}"
    assert isinstance(prompt, notebook.Prompt) and isinstance(prompt.messages, tuple), (
        f"expected a Prompt holding a tuple, got {prompt!r}"
    )
    only_user = notebook.PromptBuilder().user("hi").build()
    assert only_user == user_prompt(notebook, "hi"), (
        f"expected just the user message without a system message, got {only_user!r}"
    )


@exercise("prompt_builder", points=1,
          hint="Each method returns the builder itself; system() replaces an earlier one.")
def test_builder_is_fluent(notebook: ModuleType) -> None:
    builder = notebook.PromptBuilder()
    for name, call in [("system", lambda: builder.system("a")),
                       ("example", lambda: builder.example("q", "a")),
                       ("user", lambda: builder.user("u"))]:
        returned = call()
        assert returned is builder, f"expected {name}() to return the builder, got {returned!r}"
    builder.system("b")
    first = builder.build().messages[0]
    assert first == notebook.Message("system", "b"), (
        f"expected a second system() to replace the first, got {first!r}"
    )


@exercise("prompt_builder", points=2,
          hint="Blank text, a second user(), and build() without user() are all ValueErrors.")
def test_builder_validates(notebook: ModuleType) -> None:
    with pytest.raises(ValueError):
        notebook.PromptBuilder().system("Be brief.").build()
    with pytest.raises(ValueError):
        notebook.PromptBuilder().user("first").user("second")
    with pytest.raises(ValueError):
        notebook.PromptBuilder().user("   ")
    with pytest.raises(ValueError):
        notebook.PromptBuilder().system("")


@exercise("prompt_builder", points=2,
          hint="Where are the builder's lists created? A list in the class body is shared.")
def test_builders_do_not_share_parts(notebook: ModuleType) -> None:
    notebook.PromptBuilder().system("Pirate voice.").example("hi", "arr").user("x").build()
    clean = notebook.PromptBuilder().user("hello").build()
    messages = getattr(clean, "messages", ())
    assert type(clean) is notebook.Prompt and same(
        [(type(m) is notebook.Message, m.role, m.content) for m in messages], [(True, "user", "hello")]
    ), f"expected a fresh builder to start empty, got {clean!r}"


@exercise("prompt_builder", points=2,
          hint="build() must return a snapshot: copy the parts into a new tuple.")
def test_built_prompts_are_snapshots(notebook: ModuleType) -> None:
    builder = notebook.PromptBuilder().example("q1", "a1").user("question")
    first = builder.build()
    builder.example("q2", "a2")
    second = builder.build()
    assert same(len(first.messages), 3), (
        f"expected the first prompt to keep its 3 messages, got {len(first.messages)}"
    )
    assert same(len(second.messages), 5), (
        f"expected the second prompt to have 5 messages, got {len(second.messages)}"
    )
    assert second.messages[-1] == notebook.Message("user", "question"), (
        f"expected the user message last, got {second.messages[-1]!r}"
    )
