"""The server's parts without a socket: scenario parsing, answers, and the in-process
``httpx.ASGITransport`` path that fast unit tests of lessons use."""

from __future__ import annotations

import json
from typing import Literal

import httpx
import pytest
from pydantic import BaseModel, Field

from course.llm_server import (
    SCENARIOS,
    ScenarioError,
    ServerConfig,
    StreamDropped,
    count_tokens,
    create_app,
    parse_scenario,
    request_log,
    wrap,
)
from course.llm_server.answers import apply_stop, embedding, pieces, truncate
from course.llm_server.instances import SchemaError, instance, prompt_names
from course.llm_server.scenarios import (
    Delay,
    DropStream,
    Error,
    FailFirst,
    Malformed,
    RateLimit,
    RateLimited,
    Stall,
    Trickle,
)

HEADERS = {"Authorization": "Bearer sk-unit"}
CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "Hello"}]}


# --- scenario specs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "step"),
    [
        ("latency:200ms", Delay("latency:200ms", 0.2, 0.2)),
        ("latency:1.5s", Delay("latency:1.5s", 1.5, 1.5)),
        ("jitter:50-150ms", Delay("jitter:50-150ms", 0.05, 0.15)),
        ("rate_limited", RateLimited("rate_limited", 1.0)),
        ("rate_limited:retry_after=3", RateLimited("rate_limited:retry_after=3", 3.0)),
        ("rpm:60", RateLimit("rpm:60", 60, 60.0)),
        ("rps:5", RateLimit("rps:5", 5, 1.0)),
        ("error:503", Error("error:503", 503)),
        ("fail_first:3", FailFirst("fail_first:3", 3, Error("error:503", 503))),
        ("fail_first:2:429", FailFirst("fail_first:2:429", 2, Error("error:429", 429))),
        ("fail_first:1:stall", FailFirst("fail_first:1:stall", 1, Stall("stall", None, None))),
        ("stall", Stall("stall", None, None)),
        ("stall:after=2:for=1s", Stall("stall:after=2:for=1s", 2, 1.0)),
        ("drop_stream", DropStream("drop_stream", 3)),
        ("drop_stream:after=5", DropStream("drop_stream:after=5", 5)),
        ("malformed_json", Malformed("malformed_json", 1)),
        ("malformed_chunk:at=4", Malformed("malformed_chunk:at=4", 4)),
        ("trickle:50ms", Trickle("trickle:50ms", 0.05)),
    ],
)
def test_parse_each_step(spec: str, step: object) -> None:
    assert parse_scenario(spec).steps == (step,)


def test_parse_combination_and_ok() -> None:
    scenario = parse_scenario(" latency:10ms , error:500 ")
    assert scenario.spec == "latency:10ms,error:500"
    assert [type(step) for step in scenario.steps] == [Delay, Error]
    assert parse_scenario("ok").is_ok


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("boom", "Unknown scenario 'boom'"),
        ("latency", "expected a duration"),
        ("latency:5", "expected a duration"),
        ("latency:999s", "at most 60s"),
        ("jitter:9-1ms", "from low to high"),
        ("error:200", "from 400 to 599"),
        ("drop_stream:when=3", "unknown option 'when'"),
        ("rpm:0", "from 1 to"),
        ("fail_first:2:latency:1s", "status or a fault step"),
        ("", "Empty scenario"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(spec)


def test_every_documented_scenario_parses_from_its_syntax() -> None:
    for info in SCENARIOS:
        example = info.syntax.split("[")[0]  # the syntax without its optional parts
        assert parse_scenario(example).spec == example
    assert len({info.name for info in SCENARIOS}) == len(SCENARIOS)


# --- answers --------------------------------------------------------------------------------


def test_tokens_pieces_and_limits() -> None:
    assert count_tokens("Hello, world!") == 4
    assert "".join(pieces("  a b\n c ")) == "  a b\n c "
    assert truncate("one two three", 2) == ("one two", True)
    assert truncate("one two", 5) == ("one two", False)
    assert apply_stop("a b STOP c", ["STOP", "c"]) == ("a b ", "STOP")


def test_wrap_styles() -> None:
    assert wrap("{}", "plain") == "{}"
    assert wrap("{}", "fence") == "```json\n{}\n```"
    assert "{}" in wrap("{}", "prose") and not wrap("{}", "prose").startswith("{")


def test_embedding_depends_on_model_text_and_seed() -> None:
    base = embedding("m", "t", 8)
    assert base == embedding("m", "t", 8)
    assert base != embedding("m", "u", 8)
    assert base != embedding("n", "t", 8)
    assert base != embedding("m", "t", 8, seed=1)


def test_config_rejects_bad_settings() -> None:
    with pytest.raises(ScenarioError):
        ServerConfig(scenario="nope")
    with pytest.raises(ValueError, match="api_key"):
        ServerConfig(api_key=" ")
    with pytest.raises(ValueError, match="embedding_dim"):
        ServerConfig(embedding_dim=0)


# --- the in-process path --------------------------------------------------------------------


async def test_asgi_transport_serves_and_logs() -> None:
    app = create_app(ServerConfig(replies={"#x": lambda prompt: json.dumps({"len": len(prompt)})}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://llm") as client:
        plain = await client.post("/v1/chat/completions", headers=HEADERS, json=CHAT)
        scripted = await client.post(
            "/v1/chat/completions",
            headers={**HEADERS, "X-Request-ID": "r2"},
            json={**CHAT, "messages": [{"role": "user", "content": "#x"}]},
        )
        failing = await client.post(
            "/v1/chat/completions",
            headers={**HEADERS, "X-Mock-Scenario": "fail_first:1:500", "X-Mock-Key": "k"},
            json=CHAT,
        )
    assert plain.status_code == 200
    assert json.loads(scripted.json()["choices"][0]["message"]["content"]) == {"len": 2}
    assert failing.status_code == 500
    log = request_log(app).records()
    assert [(r.status, r.request_id == "r2", r.fault) for r in log] == [
        (200, False, None),
        (200, True, None),
        (500, False, "error:500"),
    ]


async def test_asgi_transport_streams_and_reports_a_drop() -> None:
    app = create_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://llm") as client:
        streamed = await client.post("/v1/chat/completions", headers=HEADERS, json={**CHAT, "stream": True})
        assert streamed.text.rstrip().endswith("data: [DONE]")
        with pytest.raises(StreamDropped):
            await client.post(
                "/v1/chat/completions",
                headers={**HEADERS, "X-Mock-Scenario": "drop_stream:after=1"},
                json={**CHAT, "stream": True},
            )
    assert [record.fault for record in request_log(app).records()] == [None, "drop_stream:after=1"]


# --- schema instances -----------------------------------------------------------------------


class _Tree(BaseModel):
    value: int = Field(ge=10, le=12)
    label: Literal["leaf", "node"]
    children: list[_Tree] = []
    parent: _Tree | None = None


def test_instance_of_a_recursive_pydantic_schema_is_valid_and_finite() -> None:
    value = instance(_Tree.model_json_schema(), b"seed" * 4)
    tree = _Tree.model_validate(value)
    assert 10 <= tree.value <= 12
    assert instance(_Tree.model_json_schema(), b"seed" * 4) == value
    assert instance(_Tree.model_json_schema(), b"other" * 4) != value


def test_instance_handles_const_all_of_and_type_lists() -> None:
    schema = {
        "type": "object",
        "properties": {
            "kind": {"const": "ticket"},
            "when": {"type": "string", "format": "date-time"},
            "maybe": {"type": ["integer", "null"], "exclusiveMinimum": 3, "exclusiveMaximum": 5},
            "merged": {"allOf": [{"properties": {"a": {"type": "boolean"}}}, {"required": ["a"]}]},
        },
        "required": ["kind", "when", "maybe", "merged"],
    }
    value = instance(schema, b"x" * 16)
    assert value["kind"] == "ticket"
    assert value["when"] == "2025-01-01T12:00:00Z"
    assert value["maybe"] == 4
    assert isinstance(value["merged"]["a"], bool)


def test_prompt_names_skip_sentence_starts() -> None:
    assert prompt_names("What is the weather in Paris? Ask Ada Lovelace.") == ["Paris", "Ada Lovelace"]


def test_dangling_ref_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="Nope"):
        instance({"$ref": "#/$defs/Nope"}, b"x" * 16)
