"""Chapter 1's 26 graded tests (tests/test_01_classes.py), rebuilt for otter-grader and nbgrader.

Each ``@graded`` function below is one of the course's tests, with the same assertions and
the same points, written in plain Python against the notebook's global names (``env``).
``benchmarks/peers/build.py`` wraps this one file, mechanically, into both peers' formats:

- otter-grader: one exception-based test file per exercise (the format ``otter assign``
  writes), each function decorated with otter's ``@test_case(points=...)``; the helpers
  above the tests are copied into every file.
- nbgrader: the helpers as one locked cell, then one autograder-test cell per function
  (the function and a call ``test_x(globals())``) worth the same points.

What differs from the course's tests: fixed inputs instead of random ones; everything runs
in the grading kernel, after the notebook, with no sandbox and no probe worker; and all
tests share one notebook namespace instead of a freshly loaded notebook per probe, so each
test registers its providers under keys of its own.
"""

import dataclasses
from types import SimpleNamespace


def graded(exercise, points):
    """Marks a test: which exercise it belongs to and what it is worth (read by build.py)."""

    def mark(test):
        test.exercise, test.points = exercise, points
        return test

    return mark


# --------------------------------------------------------------- helpers (copied to the peers)


def same(actual, expected):
    """Equal and of exactly the same type, all the way down (the course's testing.same)."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, (list, tuple)):
        return len(actual) == len(expected) and all(map(same, actual, expected))
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(same(actual[k], expected[k]) for k in expected)
    return bool(expected == actual)


def raised(function, *args):
    """The exception ``function(*args)`` raised, as {"type", "message"}, or None."""
    try:
        function(*args)
    except Exception as exc:
        return {"type": type(exc).__name__, "message": str(exc)}
    return None


def tiny_provider(nb):
    """A minimal complete provider (no key): counts words, answers 'ok', records prompts."""

    class Tiny(nb.LLMProvider):
        def __init__(self, model):
            super().__init__(model)
            self.seen = []

        def count_tokens(self, text):
            return len(text.split())

        def complete(self, prompt):
            self.seen.append(prompt)
            return nb.Completion("ok", self.model, self.prompt_tokens(prompt), 1)

    return Tiny


def messages_of(nb, prompt):
    """A prompt as data: [[role, content], ...], or a description of what it was instead."""
    if type(prompt) is not nb.Prompt or type(prompt.messages) is not tuple:
        return f"not a Prompt holding a tuple: {prompt!r}"
    out = []
    for m in prompt.messages:
        if type(m) is not nb.Message:
            return f"a message that is not a Message: {m!r}"
        out.append([m.role, m.content])
    return out


def completion_of(nb, completion):
    if type(completion) is not nb.Completion:
        return f"not a Completion: {completion!r}"
    return {"text": completion.text, "model": completion.model,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "total_tokens": completion.total_tokens}


def is_registered(nb, key, cls):
    return nb.LLMProvider.registry.get(key) is cls


# ---------------------------------------------------------------- provider_interface


@graded("provider_interface", 2)
def test_interface_cannot_be_instantiated(env):
    nb = SimpleNamespace(**env)
    abstract = sorted(getattr(nb.LLMProvider, "__abstractmethods__", ()))
    assert {"count_tokens", "complete"} <= set(abstract), abstract
    error = raised(nb.LLMProvider, "some-model")
    assert error is not None and error["type"] == "TypeError", error


@graded("provider_interface", 1)
def test_incomplete_provider_cannot_be_instantiated(env):
    nb = SimpleNamespace(**env)

    class NoTokenizer(nb.LLMProvider):
        def complete(self, prompt):
            return nb.Completion("x", self.model, 0, 0)

    error = raised(NoTokenizer, "m")
    assert error is not None and error["type"] == "TypeError", error
    assert "count_tokens" in error["message"], error


@graded("provider_interface", 1)
def test_model_is_validated_and_read_only(env):
    nb = SimpleNamespace(**env)
    provider = tiny_provider(nb)("qpwmzt-1")

    def overwrite():
        provider.model = "other"

    assert same(provider.model, "qpwmzt-1"), provider.model
    for blank in ("", "   "):
        error = raised(tiny_provider(nb), blank)
        assert error is not None and error["type"] == "ValueError", error
        assert repr(blank) in error["message"], error
    error = raised(overwrite)
    assert error is not None and error["type"] == "AttributeError", error


@graded("provider_interface", 1)
def test_repr_names_the_real_class_and_model(env):
    nb = SimpleNamespace(**env)
    assert "__repr__" in vars(nb.LLMProvider)
    assert same(repr(tiny_provider(nb)("zkvbnq-7")), "Tiny(model='zkvbnq-7')")


@graded("provider_interface", 1)
def test_concrete_methods_use_the_interface(env):
    nb = SimpleNamespace(**env)
    system, question = "alpha beta", "what is gamma delta"
    provider = tiny_provider(nb)("small-1")
    prompt = nb.Prompt((nb.Message("system", system), nb.Message("user", question)))
    assert same(provider.prompt_tokens(prompt), 6)
    assert same(provider.ask(question), "ok")
    assert same(messages_of(nb, provider.seen[-1]) if provider.seen else None, [["user", question]])


# ---------------------------------------------------------------- provider_registry


@graded("provider_registry", 2)
def test_subclass_with_key_registers_itself(env):
    nb = SimpleNamespace(**env)

    class Local(tiny_provider(nb), key="local-hjwqre"):
        pass

    assert is_registered(nb, "local-hjwqre", Local)
    assert same(getattr(Local, "key", None), "local-hjwqre")


@graded("provider_registry", 1)
def test_notebook_providers_are_registered(env):
    nb = SimpleNamespace(**env)
    registry = nb.LLMProvider.registry
    assert registry.get("echo") is nb.EchoProvider, sorted(map(str, registry))
    assert registry.get("scripted") is nb.ScriptedProvider, sorted(map(str, registry))


@graded("provider_registry", 1)
def test_classes_without_key_are_not_registered(env):
    nb = SimpleNamespace(**env)
    before = dict(nb.LLMProvider.registry)

    class ChatProvider(nb.LLMProvider):
        """An abstract intermediate: no key."""

    class Helper(tiny_provider(nb)):
        """A concrete test helper: no key either."""

    class Chat(ChatProvider, key="chat-pmxtzo"):
        def count_tokens(self, text):
            return 0

        def complete(self, prompt):
            return nb.Completion("", self.model, 0, 0)

    after = nb.LLMProvider.registry
    assert after == {**before, "chat-pmxtzo": Chat}, (sorted(map(str, before)), sorted(map(str, after)))
    keyless = [cls.__name__ for cls in (nb.LLMProvider, ChatProvider, Helper) if cls in after.values()]
    assert same(keyless, []), keyless


@graded("provider_registry", 2)
def test_duplicate_key_is_rejected(env):
    nb = SimpleNamespace(**env)
    tiny = tiny_provider(nb)

    class First(tiny, key="dup-kfqa"):
        pass

    def second():
        class Second(tiny, key="dup-kfqa"):
            pass

    error = raised(second)
    assert error is not None and error["type"] == "ValueError", error
    assert "dup-kfqa" in error["message"] and "First" in error["message"], error
    assert is_registered(nb, "dup-kfqa", First)


@graded("provider_registry", 1)
def test_one_registry_for_the_whole_hierarchy(env):
    nb = SimpleNamespace(**env)

    class Mid(tiny_provider(nb)):
        pass

    class Leaf(Mid, key="leaf-vbcnwe"):
        pass

    shared = nb.LLMProvider.registry
    separate = [cls.__name__ for cls in (nb.LLMProvider, Mid, Leaf, nb.EchoProvider)
                if cls.registry is not shared]
    assert same(separate, []), separate
    assert is_registered(nb, "leaf-vbcnwe", Leaf)


@graded("provider_registry", 1)
def test_hook_cooperates_with_mixins(env):
    nb = SimpleNamespace(**env)
    seen = []

    class AuditMixin:
        def __init_subclass__(cls, **kwargs):
            super().__init_subclass__(**kwargs)
            seen.append(cls.__name__)

    class Audited(tiny_provider(nb), AuditMixin, key="audited-ryuvtq"):
        pass

    assert "Audited" in seen, seen
    assert is_registered(nb, "audited-ryuvtq", Audited)


# ---------------------------------------------------------------- concrete_providers


@graded("concrete_providers", 2)
def test_echo_replies_and_counts_words(env):
    nb = SimpleNamespace(**env)
    last = "lorem ipsum dolor"
    turns = [["system", "be brief please"], ["user", "first words"],
             ["assistant", "some reply"], ["user", last], ["assistant", "trailing turn"]]
    echo = nb.EchoProvider("echo-42")
    prompt = nb.Prompt(tuple(nb.Message(role, text) for role, text in turns))
    expected = {"text": last, "model": "echo-42", "prompt_tokens": 12, "completion_tokens": 3,
                "total_tokens": 15}
    assert same(completion_of(nb, echo.complete(prompt)), expected)
    error = raised(echo.complete, nb.Prompt((nb.Message("system", "nothing to echo"),)))
    assert error is not None and error["type"] == "ValueError", error


@graded("concrete_providers", 2)
def test_scripted_plays_back_in_order(env):
    nb = SimpleNamespace(**env)
    replies = ["Paris.", "Rome.", "Oslo."]
    questions = ["capital of france?", "capital of italy?", "capital of norway?", "one more?"]
    scripted = nb.ScriptedProvider("script-1", replies)
    assert same([scripted.ask(q) for q in questions[:3]], replies)
    error = raised(scripted.ask, questions[-1])
    assert error is not None and error["type"] == "RuntimeError", error
    assert "3" in error["message"], error


@graded("concrete_providers", 1)
def test_scripted_counts_characters(env):
    nb = SimpleNamespace(**env)
    texts = ["", *("x" * n for n in (1, 4, 5, 17, 39))]
    reply, question = "grapefruit", "how are you doing"
    scripted = nb.ScriptedProvider("script-1", [reply])
    assert same([scripted.count_tokens(t) for t in texts], [0, 1, 1, 2, 5, 10])
    completion = scripted.complete(nb.Prompt((nb.Message("user", question),)))
    expected = {"text": reply, "model": "script-1", "prompt_tokens": 5, "completion_tokens": 3,
                "total_tokens": 8}
    assert same(completion_of(nb, completion), expected)


@graded("concrete_providers", 2)
def test_scripted_instances_do_not_share_state(env):
    nb = SimpleNamespace(**env)
    replies = ["one", "two", "three"]
    script = list(replies)
    first = nb.ScriptedProvider("a", script)
    second = nb.ScriptedProvider("b", script)
    script.append("late")  # the caller's list changes after the providers were built
    first.ask("question for a")
    assert same(len(second.prompts), 0)
    assert same([messages_of(nb, p) for p in first.prompts], [[["user", "question for a"]]])
    assert same(second.ask("question for b"), "one")
    for _ in replies[1:]:
        first.ask("again")
    error = raised(first.ask, "one too many")
    assert error is not None and error["type"] == "RuntimeError", error


@graded("concrete_providers", 1)
def test_scripted_validates_model_through_base(env):
    nb = SimpleNamespace(**env)
    scripted = nb.ScriptedProvider("script-qhd", ["x"])
    assert same(scripted.model, "script-qhd")
    error = raised(nb.ScriptedProvider, "  ", ["x"])
    assert error is not None and error["type"] == "ValueError", error
    assert isinstance(scripted, nb.LLMProvider)


# ---------------------------------------------------------------- provider_factory


@graded("provider_factory", 2)
def test_factory_builds_from_a_dict(env):
    nb = SimpleNamespace(**env)
    echo = nb.create_provider({"provider": "echo", "model": "echo-zfk"})
    scripted = nb.create_provider(nb.ProviderConfig("scripted", "script-1", {"replies": ["wxyz!"]}))
    assert type(echo) is nb.EchoProvider and same(getattr(echo, "model", None), "echo-zfk"), echo
    assert type(scripted) is nb.ScriptedProvider, type(scripted).__name__
    assert same(scripted.ask("Hello"), "wxyz!")


@graded("provider_factory", 1)
def test_factory_finds_providers_defined_later(env):
    nb = SimpleNamespace(**env)

    class Later(tiny_provider(nb), key="later-gnvmsa"):
        pass

    built = nb.create_provider({"provider": "later-gnvmsa", "model": "m"})
    assert type(built) is Later, type(built).__name__


@graded("provider_factory", 2)
def test_unknown_provider_lists_known_ones(env):
    nb = SimpleNamespace(**env)
    error = raised(nb.create_provider, {"provider": "opnxyz", "model": "gpt"})
    assert error is not None and error["type"] == "ValueError", error
    message = error["message"]
    assert "opnxyz" in message, message
    assert "echo" in message and "scripted" in message, message
    assert message.index("echo") < message.index("scripted"), message


@graded("provider_factory", 2)
def test_config_rejects_unknown_and_missing_keys(env):
    nb = SimpleNamespace(**env)
    cases = (
        ("temprkqz", raised(nb.ProviderConfig.from_dict,
                            {"provider": "echo", "model": "e", "temprkqz": 0.2})),
        ("temprkqz", raised(nb.create_provider, {"provider": "echo", "temprkqz": "e"})),
        ("model", raised(nb.ProviderConfig.from_dict, {"provider": "echo"})),
    )
    for name, error in cases:
        assert error is not None and error["type"] == "ValueError", (name, error)
        assert name in error["message"], (name, error)


@graded("provider_factory", 1)
def test_from_dict_is_an_alternative_constructor(env):
    nb = SimpleNamespace(**env)
    config = nb.ProviderConfig.from_dict({"provider": "echo", "model": "mwqpz"})

    @dataclasses.dataclass(frozen=True)
    class TeamConfig(nb.ProviderConfig):
        pass

    team = TeamConfig.from_dict({"provider": "echo", "model": "mwqpz"})
    assert config == nb.ProviderConfig("echo", "mwqpz", {}), config
    assert same(type(team).__name__, "TeamConfig")


# ---------------------------------------------------------------- prompt_builder


@graded("prompt_builder", 2)
def test_builder_orders_the_messages(env):
    nb = SimpleNamespace(**env)
    examples = [["is it good", "yes"], ["is it bad", "no"], ["so so", "maybe"]]
    user, system = "what about this", "answer in one word"
    builder = nb.PromptBuilder().user(user)
    builder.example(*examples[0]).system(system)
    for example in examples[1:]:
        builder.example(*example)
    only_user = nb.PromptBuilder().user(user).build()
    expected = [["system", system]]
    for question, answer in examples:
        expected += [["user", question], ["assistant", answer]]
    expected.append(["user", user])
    assert same(messages_of(nb, builder.build()), expected)
    assert same(messages_of(nb, only_user), [["user", user]])


@graded("prompt_builder", 1)
def test_builder_is_fluent(env):
    nb = SimpleNamespace(**env)
    builder = nb.PromptBuilder()
    returned = {"system": builder.system("first one") is builder,
                "example": builder.example("q", "a") is builder,
                "user": builder.user("u") is builder}
    builder.system("second one here")
    built = messages_of(nb, builder.build())
    not_fluent = [name for name, same_builder in returned.items() if not same_builder]
    assert same(not_fluent, []), not_fluent
    assert same(built[0] if isinstance(built, list) else built, ["system", "second one here"])


@graded("prompt_builder", 2)
def test_builder_validates(env):
    nb = SimpleNamespace(**env)
    text = "hello there"
    got = {
        "no user": raised(lambda: nb.PromptBuilder().system(text).build()),
        "two users": raised(lambda: nb.PromptBuilder().user(text).user(text)),
        "blank user": raised(lambda: nb.PromptBuilder().user("   ")),
        "empty system": raised(lambda: nb.PromptBuilder().system("")),
    }
    wrong = {case: error for case, error in got.items()
             if error is None or error["type"] != "ValueError"}
    assert same(wrong, {}), wrong


@graded("prompt_builder", 2)
def test_builders_do_not_share_parts(env):
    nb = SimpleNamespace(**env)
    nb.PromptBuilder().system("Pirate voice.").example("hi", "arr").user("x").build()
    assert same(messages_of(nb, nb.PromptBuilder().user("fresh start").build()),
                [["user", "fresh start"]])


@graded("prompt_builder", 2)
def test_built_prompts_are_snapshots(env):
    nb = SimpleNamespace(**env)
    builder = nb.PromptBuilder().example("q1", "a1").user("the question")
    first = builder.build()
    builder.example("q2", "a2")
    second = builder.build()
    assert same(messages_of(nb, first), [["user", "q1"], ["assistant", "a1"], ["user", "the question"]])
    assert same(messages_of(nb, second), [["user", "q1"], ["assistant", "a1"], ["user", "q2"],
                                          ["assistant", "a2"], ["user", "the question"]])
