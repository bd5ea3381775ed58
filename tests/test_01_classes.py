"""Graded tests for chapter 1: the LLM provider layer (interface, registry, providers,
factory, prompt builder).

Judged (see CONTRIBUTING.md): each ``probe_*`` runs the learner's code in a worker and
returns what it saw as plain data; each test asserts on that data. Every probe call gets
a freshly loaded notebook, so the registry starts with only the notebook's own providers
and a probe may define and register its own. Texts, model names and replies are drawn
at random per run, so an answer that returns the published examples earns nothing.
"""

from __future__ import annotations

import dataclasses
import random
import string
from typing import Any

from course.probing import probe, raised, shown
from course.pytest_plugin import exercise
from course.testing import assert_same, same

Data = Any


def word(length: int = 6) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=length))


def words(count: int) -> str:
    return " ".join(word(random.randint(2, 8)) for _ in range(count))


# --------------------------------------------------------------- worker-side helpers


def tiny_provider(nb: Any) -> type:
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


def messages_of(nb: Any, prompt: Any) -> Data:
    """A prompt as data: [[role, content], ...], or a description of what it was instead."""
    if type(prompt) is not nb.Prompt or type(prompt.messages) is not tuple:
        return f"not a Prompt holding a tuple: {shown(prompt)}"
    out = []
    for m in prompt.messages:
        if type(m) is not nb.Message:
            return f"a message that is not a Message: {shown(m)}"
        out.append([m.role, m.content])
    return out


def completion_of(nb: Any, completion: Any) -> Data:
    if type(completion) is not nb.Completion:
        return f"not a Completion: {shown(completion)}"
    return {"text": completion.text, "model": completion.model,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "total_tokens": completion.total_tokens}


def user_prompt(nb: Any, *texts: str) -> Any:
    return nb.Prompt(tuple(nb.Message("user", text) for text in texts))


def is_registered(nb: Any, key: str, cls: type) -> bool:
    return nb.LLMProvider.registry.get(key) is cls


# ---------------------------------------------------------------- provider_interface


@probe
def probe_interface(nb: Any) -> Data:
    class NoTokenizer(nb.LLMProvider):
        def complete(self, prompt: Any) -> Any:
            return nb.Completion("x", self.model, 0, 0)

    return {"abstract": sorted(getattr(nb.LLMProvider, "__abstractmethods__", ())),
            "base": raised(nb.LLMProvider, "some-model"),
            "incomplete": raised(NoTokenizer, "m")}


@exercise("provider_interface", points=2,
          hint="Mark count_tokens and complete with @abstractmethod on an ABC subclass.")
def test_interface_cannot_be_instantiated(notebook: Any) -> None:
    got = probe_interface(notebook)
    assert {"count_tokens", "complete"} <= set(got["abstract"]), (
        f"expected count_tokens and complete to be abstract, got abstract methods {got['abstract']}"
    )
    assert got["base"] is not None and got["base"]["type"] == "TypeError", (
        f"expected LLMProvider('some-model') to raise TypeError, got {got['base']}"
    )


@exercise("provider_interface", points=1,
          hint="A subclass that leaves out an abstract method must fail when it is instantiated.")
def test_incomplete_provider_cannot_be_instantiated(notebook: Any) -> None:
    got = probe_interface(notebook)["incomplete"]
    assert got is not None and got["type"] == "TypeError", (
        f"expected a provider without count_tokens to raise TypeError, got {got}"
    )
    assert "count_tokens" in got["message"], (
        f"expected the TypeError to name count_tokens, got: {got['message']}"
    )


@probe
def probe_model(nb: Any, model: str) -> Data:
    provider = tiny_provider(nb)(model)

    def overwrite() -> None:
        provider.model = "other"

    return {"model": provider.model, "blank": raised(tiny_provider(nb), ""),
            "spaces": raised(tiny_provider(nb), "   "), "overwrite": raised(overwrite)}


@exercise("provider_interface", points=1,
          hint="Validate in __init__ (look at .strip()); a property without a setter is read-only.")
def test_model_is_validated_and_read_only(notebook: Any) -> None:
    model = f"{word()}-1"
    got = probe_model(notebook, model)
    assert_same(got["model"], model, "the provider's model")
    for case, blank in (("blank", ""), ("spaces", "   ")):
        error = got[case]
        assert error is not None and error["type"] == "ValueError", (
            f"expected a model of {blank!r} to raise ValueError, got {error}"
        )
        assert repr(blank) in error["message"], (
            f"expected the ValueError to show the bad model as {blank!r}, got: {error['message']}"
        )
    assert got["overwrite"] is not None and got["overwrite"]["type"] == "AttributeError", (
        f"expected setting .model to raise AttributeError, got {got['overwrite']}"
    )


@probe
def probe_repr(nb: Any, model: str) -> Data:
    return {"own": "__repr__" in vars(nb.LLMProvider), "repr": repr(tiny_provider(nb)(model))}


@exercise("provider_interface", points=1,
          hint="Build the repr from type(self).__name__ and the model with !r.")
def test_repr_names_the_real_class_and_model(notebook: Any) -> None:
    model = f"{word()}-{random.randint(1, 9)}"
    got = probe_repr(notebook, model)
    assert got["own"], "expected LLMProvider to define __repr__"
    assert_same(got["repr"], f"Tiny(model={model!r})", "repr of a Tiny provider")


@probe
def probe_concrete_methods(nb: Any, system: str, question: str) -> Data:
    provider = tiny_provider(nb)("small-1")
    prompt = nb.Prompt((nb.Message("system", system), nb.Message("user", question)))
    return {"tokens": provider.prompt_tokens(prompt), "answer": provider.ask(question),
            "sent": messages_of(nb, provider.seen[-1]) if provider.seen else None}


@exercise("provider_interface", points=1,
          hint="prompt_tokens and ask are written only with count_tokens and complete.")
def test_concrete_methods_use_the_interface(notebook: Any) -> None:
    system, question = words(random.randint(1, 4)), words(random.randint(2, 6))
    got = probe_concrete_methods(notebook, system, question)
    expected_tokens = len(system.split()) + len(question.split())
    assert_same(got["tokens"], expected_tokens, "prompt_tokens over both messages")
    assert_same(got["answer"], "ok", "ask() (the completion's text)")
    assert_same(got["sent"], [["user", question]], "the prompt ask() sent")


# ---------------------------------------------------------------- provider_registry


@probe
def probe_register(nb: Any, key: str) -> Data:
    class Local(tiny_provider(nb), key=key):  # type: ignore[misc, call-arg]
        pass

    return {"registered": is_registered(nb, key, Local), "key": getattr(Local, "key", None)}


@exercise("provider_registry", points=2,
          hint="In __init_subclass__, store cls in LLMProvider.registry under its key.")
def test_subclass_with_key_registers_itself(notebook: Any) -> None:
    key = f"local-{word()}"
    got = probe_register(notebook, key)
    assert got["registered"], f"expected LLMProvider.registry[{key!r}] to be the new class"
    assert_same(got["key"], key, "the class's key attribute")


@probe
def probe_notebook_providers(nb: Any) -> Data:
    registry = nb.LLMProvider.registry
    return {"echo": registry.get("echo") is nb.EchoProvider,
            "scripted": registry.get("scripted") is nb.ScriptedProvider,
            "keys": sorted(str(k) for k in registry)}


@exercise("provider_registry", points=1,
          hint="Both notebook providers are declared with a key; they must be in the registry.")
def test_notebook_providers_are_registered(notebook: Any) -> None:
    got = probe_notebook_providers(notebook)
    assert got["echo"] and got["scripted"], (
        f"expected 'echo' and 'scripted' to map to EchoProvider and ScriptedProvider; "
        f"registry keys: {got['keys']}"
    )


@probe
def probe_no_key(nb: Any, key: str) -> Data:
    before = dict(nb.LLMProvider.registry)

    class ChatProvider(nb.LLMProvider):
        """An abstract intermediate: no key."""

    class Helper(tiny_provider(nb)):  # type: ignore[misc]
        """A concrete test helper: no key either."""

    class Chat(ChatProvider, key=key):  # type: ignore[call-arg]
        def count_tokens(self, text: str) -> int:
            return 0

        def complete(self, prompt: Any) -> Any:
            return nb.Completion("", self.model, 0, 0)

    got = nb.LLMProvider.registry
    return {"only_chat_added": got == {**before, key: Chat},
            "keys_before": sorted(map(str, before)), "keys_after": sorted(map(str, got)),
            "keyless_registered": [cls.__name__ for cls in (nb.LLMProvider, ChatProvider, Helper)
                                   if cls in got.values()]}


@exercise("provider_registry", points=1,
          hint="A class declared without a key (an abstract intermediate) must stay out.")
def test_classes_without_key_are_not_registered(notebook: Any) -> None:
    key = f"chat-{word()}"
    got = probe_no_key(notebook, key)
    assert got["only_chat_added"], (
        f"expected only Chat to be added under {key!r}: keys went from {got['keys_before']} "
        f"to {got['keys_after']}"
    )
    assert same(got["keyless_registered"], []), (
        f"expected classes without a key not to be registered, found {got['keyless_registered']}"
    )


@probe
def probe_duplicate(nb: Any, key: str) -> Data:
    tiny = tiny_provider(nb)

    class First(tiny, key=key):  # type: ignore[misc, valid-type, call-arg]
        pass

    def second() -> None:
        class Second(tiny, key=key):  # type: ignore[misc, valid-type, call-arg]
            pass

    return {"error": raised(second), "first_kept": is_registered(nb, key, First)}


@exercise("provider_registry", points=2,
          hint="What happens when a second class declares a key that is already taken?")
def test_duplicate_key_is_rejected(notebook: Any) -> None:
    key = f"dup-{word(4)}"
    got = probe_duplicate(notebook, key)
    error = got["error"]
    assert error is not None and error["type"] == "ValueError", (
        f"expected a second class with the key {key!r} to raise ValueError, got {error}"
    )
    assert key in error["message"] and "First" in error["message"], (
        f"expected the error to name the key {key!r} and the class holding it (First), "
        f"got: {error['message']}"
    )
    assert got["first_kept"], "expected the first class to keep the key"


@probe
def probe_one_registry(nb: Any, key: str) -> Data:
    class Mid(tiny_provider(nb)):  # type: ignore[misc]
        pass

    class Leaf(Mid, key=key):  # type: ignore[call-arg]
        pass

    shared = nb.LLMProvider.registry
    return {"separate": [cls.__name__ for cls in (nb.LLMProvider, Mid, Leaf, nb.EchoProvider)
                         if cls.registry is not shared],
            "leaf": is_registered(nb, key, Leaf)}


@exercise("provider_registry", points=1,
          hint="There is one registry shared by the whole hierarchy; don't give subclasses their own.")
def test_one_registry_for_the_whole_hierarchy(notebook: Any) -> None:
    got = probe_one_registry(notebook, f"leaf-{word()}")
    assert same(got["separate"], []), (
        f"expected every class's .registry to be LLMProvider.registry; separate: {got['separate']}"
    )
    assert got["leaf"], "expected a grandchild declared with a key to be registered on LLMProvider"


@probe
def probe_mixin(nb: Any, key: str) -> Data:
    seen: list[str] = []

    class AuditMixin:
        def __init_subclass__(cls, **kwargs: Any) -> None:
            super().__init_subclass__(**kwargs)
            seen.append(cls.__name__)

    class Audited(tiny_provider(nb), AuditMixin, key=key):  # type: ignore[misc, call-arg]
        pass

    return {"seen": seen, "registered": is_registered(nb, key, Audited)}


@exercise("provider_registry", points=1,
          hint="Does your __init_subclass__ call super().__init_subclass__(**kwargs)?")
def test_hook_cooperates_with_mixins(notebook: Any) -> None:
    got = probe_mixin(notebook, f"audited-{word()}")
    assert "Audited" in got["seen"], (
        f"expected the mixin's __init_subclass__ to run for Audited, got calls for {got['seen']}"
    )
    assert got["registered"], "expected Audited to be registered too"


# ---------------------------------------------------------------- concrete_providers


@probe
def probe_echo(nb: Any, model: str, turns: list[list[str]]) -> Data:
    echo = nb.EchoProvider(model)
    prompt = nb.Prompt(tuple(nb.Message(role, text) for role, text in turns))
    no_user = nb.Prompt((nb.Message("system", "nothing to echo"),))
    return {"completion": completion_of(nb, echo.complete(prompt)),
            "no_user": raised(echo.complete, no_user)}


@exercise("concrete_providers", points=2,
          hint="Echo the content of the last message whose role is 'user'; count words.")
def test_echo_replies_and_counts_words(notebook: Any) -> None:
    model = f"echo-{random.randint(1, 99)}"
    last = words(random.randint(2, 6))
    turns = [["system", words(3)], ["user", words(2)], ["assistant", words(2)], ["user", last]]
    if random.random() < 0.5:
        turns.append(["assistant", words(2)])  # the last user message need not be last
    got = probe_echo(notebook, model, turns)
    prompt_tokens = sum(len(text.split()) for _, text in turns)
    expected = {"text": last, "model": model, "prompt_tokens": prompt_tokens,
                "completion_tokens": len(last.split()),
                "total_tokens": prompt_tokens + len(last.split())}
    assert_same(got["completion"], expected, "EchoProvider's completion")
    assert got["no_user"] is not None and got["no_user"]["type"] == "ValueError", (
        f"expected a prompt without a user message to raise ValueError, got {got['no_user']}"
    )


@probe
def probe_scripted(nb: Any, replies: list[str], questions: list[str]) -> Data:
    scripted = nb.ScriptedProvider("script-1", replies)
    answers = [scripted.ask(q) for q in questions[: len(replies)]]
    return {"answers": answers, "extra": raised(scripted.ask, questions[-1])}


@exercise("concrete_providers", points=2,
          hint="Return the replies in order; raise RuntimeError once the script is used up.")
def test_scripted_plays_back_in_order(notebook: Any) -> None:
    replies = [word().capitalize() + "." for _ in range(random.randint(2, 5))]
    questions = [words(3) + "?" for _ in range(len(replies) + 1)]
    got = probe_scripted(notebook, replies, questions)
    assert_same(got["answers"], replies, "the scripted answers, in order")
    extra = got["extra"]
    assert extra is not None and extra["type"] == "RuntimeError", (
        f"expected RuntimeError once the script is used up, got {extra}"
    )
    assert str(len(replies)) in extra["message"], (
        f"expected the error to say the script had {len(replies)} replies, got: {extra['message']}"
    )


@probe
def probe_scripted_counts(nb: Any, texts: list[str], reply: str, question: str) -> Data:
    scripted = nb.ScriptedProvider("script-1", [reply])
    return {"counts": [scripted.count_tokens(t) for t in texts],
            "completion": completion_of(nb, scripted.complete(user_prompt(nb, question)))}


@exercise("concrete_providers", points=1,
          hint="Round len(text) / 4 up; build the Completion with both token counts.")
def test_scripted_counts_characters(notebook: Any) -> None:
    texts = ["", *("x" * n for n in random.sample(range(1, 40), 5))]
    reply, question = word(random.randint(3, 15)), words(4)
    got = probe_scripted_counts(notebook, texts, reply, question)
    assert_same(got["counts"], [-(-len(t) // 4) for t in texts],
                f"count_tokens of texts {[len(t) for t in texts]} characters long")
    expected = {"text": reply, "model": "script-1", "prompt_tokens": -(-len(question) // 4),
                "completion_tokens": -(-len(reply) // 4),
                "total_tokens": -(-len(question) // 4) + -(-len(reply) // 4)}
    assert_same(got["completion"], expected, "ScriptedProvider's completion")


@probe
def probe_scripted_state(nb: Any, replies: list[str]) -> Data:
    script = list(replies)
    first = nb.ScriptedProvider("a", script)
    second = nb.ScriptedProvider("b", script)
    script.append("late")  # the caller's list changes after the providers were built
    first.ask("question for a")
    observed = {"second_prompts": len(second.prompts),
                "first_prompts": [messages_of(nb, p) for p in first.prompts],
                "second_answer": second.ask("question for b")}
    for _ in replies[1:]:
        first.ask("again")
    observed["past_end"] = raised(first.ask, "one too many")
    return observed


@exercise("concrete_providers", points=2,
          hint="Where is the prompts list created: once per class or once per instance?")
def test_scripted_instances_do_not_share_state(notebook: Any) -> None:
    replies = [word() for _ in range(random.randint(2, 4))]
    got = probe_scripted_state(notebook, replies)
    assert_same(got["second_prompts"], 0, "prompts the second provider received")
    assert_same(got["first_prompts"], [[["user", "question for a"]]],
                "the first provider's recorded prompts")
    assert_same(got["second_answer"], replies[0],
                "the second provider's first answer (each plays its own script from the start)")
    assert got["past_end"] is not None and got["past_end"]["type"] == "RuntimeError", (
        "expected the script to be copied: appending to the caller's list afterwards must "
        f"not add a reply, got {got['past_end']}"
    )


@probe
def probe_scripted_base(nb: Any, model: str) -> Data:
    scripted = nb.ScriptedProvider(model, ["x"])
    return {"model": scripted.model, "blank": raised(nb.ScriptedProvider, "  ", ["x"]),
            "subclass": isinstance(scripted, nb.LLMProvider)}


@exercise("concrete_providers", points=1,
          hint="ScriptedProvider.__init__ must call the base class __init__.")
def test_scripted_validates_model_through_base(notebook: Any) -> None:
    model = f"script-{word(3)}"
    got = probe_scripted_base(notebook, model)
    assert_same(got["model"], model, "ScriptedProvider's model")
    assert got["blank"] is not None and got["blank"]["type"] == "ValueError", (
        f"expected a blank model to raise ValueError, got {got['blank']}"
    )
    assert got["subclass"], "expected a subclass of LLMProvider"


# ---------------------------------------------------------------- provider_factory


@probe
def probe_factory(nb: Any, model: str, reply: str) -> Data:
    echo = nb.create_provider({"provider": "echo", "model": model})
    config = nb.ProviderConfig("scripted", "script-1", {"replies": [reply]})
    scripted = nb.create_provider(config)
    return {"echo_type": type(echo).__name__, "echo_exact": type(echo) is nb.EchoProvider,
            "echo_model": getattr(echo, "model", None),
            "scripted_exact": type(scripted) is nb.ScriptedProvider,
            "scripted_type": type(scripted).__name__,
            "answer": scripted.ask("Hello") if type(scripted) is nb.ScriptedProvider else None}


@exercise("provider_factory", points=2,
          hint="Look the class up in LLMProvider.registry and pass model and options as keywords.")
def test_factory_builds_from_a_dict(notebook: Any) -> None:
    model, reply = f"echo-{word(3)}", word() + "!"
    got = probe_factory(notebook, model, reply)
    assert got["echo_exact"] and same(got["echo_model"], model), (
        f"expected EchoProvider(model={model!r}), got {got['echo_type']} with model "
        f"{got['echo_model']!r}"
    )
    assert got["scripted_exact"], (
        f"expected a ScriptedProvider from a ProviderConfig, got {got['scripted_type']}"
    )
    assert_same(got["answer"], reply, "the answer (the options must reach the constructor)")


@probe
def probe_factory_later(nb: Any, key: str) -> Data:
    class Later(tiny_provider(nb), key=key):  # type: ignore[misc, call-arg]
        pass

    built = nb.create_provider({"provider": key, "model": "m"})
    return {"exact": type(built) is Later, "type": type(built).__name__}


@exercise("provider_factory", points=1,
          hint="The factory must not hard-code provider classes: ask the registry.")
def test_factory_finds_providers_defined_later(notebook: Any) -> None:
    got = probe_factory_later(notebook, f"later-{word()}")
    assert got["exact"], f"expected a Later instance, got {got['type']}"


@probe
def probe_unknown_provider(nb: Any, name: str) -> Data:
    return raised(nb.create_provider, {"provider": name, "model": "gpt"})


@exercise("provider_factory", points=2,
          hint="An unknown provider name should raise ValueError listing the registry's keys.")
def test_unknown_provider_lists_known_ones(notebook: Any) -> None:
    name = f"opn{word(3)}"
    error = probe_unknown_provider(notebook, name)
    assert error is not None and error["type"] == "ValueError", (
        f"expected an unknown provider to raise ValueError, got {error}"
    )
    message = error["message"]
    assert name in message, f"expected the error to name {name!r}, got: {message}"
    assert "echo" in message and "scripted" in message, (
        f"expected the error to list the known providers echo and scripted, got: {message}"
    )
    assert message.index("echo") < message.index("scripted"), (
        f"expected the known providers sorted, got: {message}"
    )


@probe
def probe_config_keys(nb: Any, extra: str) -> Data:
    return {
        "unknown": raised(nb.ProviderConfig.from_dict, {"provider": "echo", "model": "e",
                                                         extra: 0.2}),
        "factory_unknown": raised(nb.create_provider, {"provider": "echo", extra: "e"}),
        "missing": raised(nb.ProviderConfig.from_dict, {"provider": "echo"}),
    }


@exercise("provider_factory", points=2,
          hint="Compare the dict's keys with the dataclass's fields; don't ignore the extras.")
def test_config_rejects_unknown_and_missing_keys(notebook: Any) -> None:
    extra = f"temp{word(4)}"
    got = probe_config_keys(notebook, extra)
    for case, name in (("unknown", extra), ("factory_unknown", extra), ("missing", "model")):
        error = got[case]
        assert error is not None and error["type"] == "ValueError", (
            f"expected ValueError naming {name!r} ({case.replace('_', ' ')} key), got {error}"
        )
        assert name in error["message"], (
            f"expected the error to name {name!r}, got: {error['message']}"
        )


@probe
def probe_from_dict(nb: Any, model: str) -> Data:
    config = nb.ProviderConfig.from_dict({"provider": "echo", "model": model})

    @dataclasses.dataclass(frozen=True)
    class TeamConfig(nb.ProviderConfig):  # type: ignore[misc]
        pass

    team = TeamConfig.from_dict({"provider": "echo", "model": model})
    return {"equal": config == nb.ProviderConfig("echo", model, {}), "config": shown(config),
            "team_type": type(team).__name__}


@exercise("provider_factory", points=1,
          hint="An alternative constructor builds instances with cls(...), not the class's name.")
def test_from_dict_is_an_alternative_constructor(notebook: Any) -> None:
    model = word()
    got = probe_from_dict(notebook, model)
    assert got["equal"], f"expected ProviderConfig('echo', {model!r}, {{}}), got {got['config']}"
    assert_same(got["team_type"], "TeamConfig", "the type from_dict builds on a subclass")


# ---------------------------------------------------------------- prompt_builder


@probe
def probe_builder_order(nb: Any, parts: dict[str, Any]) -> Data:
    builder = nb.PromptBuilder().user(parts["user"])
    builder.example(*parts["examples"][0]).system(parts["system"])
    for example in parts["examples"][1:]:
        builder.example(*example)
    only_user = nb.PromptBuilder().user(parts["user"]).build()
    return {"messages": messages_of(nb, builder.build()),
            "only_user": messages_of(nb, only_user)}


@exercise("prompt_builder", points=2,
          hint="System first, then each example as user + assistant, then the user message.")
def test_builder_orders_the_messages(notebook: Any) -> None:
    examples = [[words(3), word()] for _ in range(random.randint(2, 3))]
    parts = {"user": words(3), "system": words(4), "examples": examples}
    got = probe_builder_order(notebook, parts)
    expected = [["system", parts["system"]]]
    for question, answer in examples:
        expected += [["user", question], ["assistant", answer]]
    expected.append(["user", parts["user"]])
    assert_same(got["messages"], expected, "the built messages")
    assert_same(got["only_user"], [["user", parts["user"]]],
                "a prompt with only a user message (no system message)")


@probe
def probe_fluent(nb: Any, first: str, second: str) -> Data:
    builder = nb.PromptBuilder()
    returned = {"system": builder.system(first) is builder,
                "example": builder.example("q", "a") is builder,
                "user": builder.user("u") is builder}
    builder.system(second)
    built = messages_of(nb, builder.build())
    return {"returned": returned, "first": built[0] if isinstance(built, list) else built}


@exercise("prompt_builder", points=1,
          hint="Each method returns the builder itself; system() replaces an earlier one.")
def test_builder_is_fluent(notebook: Any) -> None:
    first, second = words(2), words(3)
    got = probe_fluent(notebook, first, second)
    not_fluent = [name for name, same_builder in got["returned"].items() if not same_builder]
    assert same(not_fluent, []), f"expected these to return the builder itself: {not_fluent}"
    assert_same(got["first"], ["system", second], "the first message after a second system()")


@probe
def probe_builder_validates(nb: Any, text: str) -> Data:
    return {
        "no user": raised(lambda: nb.PromptBuilder().system(text).build()),
        "two users": raised(lambda: nb.PromptBuilder().user(text).user(text)),
        "blank user": raised(lambda: nb.PromptBuilder().user("   ")),
        "empty system": raised(lambda: nb.PromptBuilder().system("")),
    }


@exercise("prompt_builder", points=2,
          hint="Blank text, a second user(), and build() without user() are all ValueErrors.")
def test_builder_validates(notebook: Any) -> None:
    got = probe_builder_validates(notebook, words(2))
    wrong = {case: error for case, error in got.items()
             if error is None or error["type"] != "ValueError"}
    assert same(wrong, {}), f"expected ValueError in each of these cases, got {wrong}"


@probe
def probe_builders_share(nb: Any, text: str) -> Data:
    nb.PromptBuilder().system("Pirate voice.").example("hi", "arr").user("x").build()
    return messages_of(nb, nb.PromptBuilder().user(text).build())


@exercise("prompt_builder", points=2,
          hint="Where are the builder's lists created? A list in the class body is shared.")
def test_builders_do_not_share_parts(notebook: Any) -> None:
    text = words(2)
    assert_same(probe_builders_share(notebook, text), [["user", text]],
                "a fresh builder's prompt (it must start empty)")


@probe
def probe_snapshots(nb: Any, question: str) -> Data:
    builder = nb.PromptBuilder().example("q1", "a1").user(question)
    first = builder.build()
    builder.example("q2", "a2")
    second = builder.build()
    return {"first": messages_of(nb, first), "second": messages_of(nb, second)}


@exercise("prompt_builder", points=2,
          hint="build() must return a snapshot: copy the parts into a new tuple.")
def test_built_prompts_are_snapshots(notebook: Any) -> None:
    question = words(3)
    got = probe_snapshots(notebook, question)
    assert_same(got["first"], [["user", "q1"], ["assistant", "a1"], ["user", question]],
                "the first prompt, after the builder changed")
    assert_same(got["second"], [["user", "q1"], ["assistant", "a1"], ["user", "q2"],
                                ["assistant", "a2"], ["user", question]], "the second prompt")
