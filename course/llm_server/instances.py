"""A deterministic instance of a JSON Schema: what the server answers for a tool's arguments
and for structured output.

It covers what Pydantic and the SDKs emit: types (also as a list with "null"), required and
optional properties, enums and consts, nested objects, arrays with bounds, ``$defs``/``$ref``,
``anyOf``/``oneOf``/``allOf``, numeric bounds, string lengths and common formats. The same
schema and seed give the same value; strings prefer the names the prompt mentions, so
"weather in Paris" gives ``{"city": "Paris"}``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

MAX_DEPTH = 6
"""Recursive schemas (a tree of nodes) stop here: optional parts become null or empty."""

_WORDS = ("alpha", "bravo", "delta", "echo", "sierra", "tango", "kilo", "lima")
_FORMATS = {
    "date-time": "2025-01-01T12:00:00Z",
    "date": "2025-01-01",
    "time": "12:00:00",
    "email": "ada@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "duration": "P1D",
    "ipv4": "192.0.2.1",
}
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zA-Z]+(?:\s[A-Z][a-zA-Z]+)*")


def prompt_names(text: str) -> list[str]:
    """Capitalised words that do not start a sentence: the names a prompt mentions."""
    return [match.group() for line in text.splitlines() for match in _NAME.finditer(line.strip())]


class SchemaError(ValueError):
    """A schema the server cannot build an instance of (a ``$ref`` that goes nowhere)."""


def strict_problem(schema: Mapping[str, Any]) -> str | None:
    """Why OpenAI's strict mode would refuse ``schema``, or None when it would take it.

    Strict mode needs every object to list all its properties in ``required`` and to say
    ``"additionalProperties": false``; Pydantic's own schema does neither for a field
    with a default, which is why the SDKs rewrite it before sending."""

    def walk(node: Any, where: tuple[str, ...]) -> str | None:
        if not isinstance(node, Mapping):
            return None
        context = f"In context=({', '.join(repr(part) for part in where)})"
        if node.get("type") == "object" or "properties" in node:
            if node.get("additionalProperties") is not False:
                return f"{context}, 'additionalProperties' is required to be supplied and to be false."
            missing = [key for key in node.get("properties", {}) if key not in node.get("required", [])]
            if missing:
                return (
                    f"{context}, 'required' is required to be supplied and to be an array including "
                    f"every key in properties. Missing '{missing[0]}'."
                )
        children: list[tuple[tuple[str, ...], Any]] = []
        for key in ("properties", "$defs", "definitions"):
            children += [((*where, key, name), sub) for name, sub in node.get(key, {}).items()]
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            children += [((*where, key, str(i)), sub) for i, sub in enumerate(node.get(key, []))]
        if "items" in node:
            children.append(((*where, "items"), node["items"]))
        for path, child in children:
            problem = walk(child, path)
            if problem:
                return problem
        return None

    return walk(schema, ())


def instance(schema: Mapping[str, Any], seed: bytes, hints: Sequence[str] = ()) -> Any:
    """A value valid against ``schema``; ``hints`` are strings to use for free-text fields."""
    maker = _Maker(schema, random.Random(int.from_bytes(seed[:16], "big")), list(hints))
    return maker.make(schema, 0, "")


class _Maker:
    def __init__(self, root: Mapping[str, Any], rng: random.Random, hints: list[str]) -> None:
        self.root = root
        self.rng = rng
        self.hints = hints

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise SchemaError(f"only local $ref values are supported, got {ref!r}")
            target: Any = self.root
            for part in filter(None, ref[1:].split("/")):
                if not isinstance(target, Mapping) or part not in target:
                    raise SchemaError(f"$ref {ref!r} points to nothing in the schema")
                target = target[part]
            rest = {key: value for key, value in schema.items() if key != "$ref"}
            schema = {**target, **rest}
            seen += 1
            if seen > 50:
                raise SchemaError(f"$ref {ref!r} refers to itself")
        return schema

    def make(self, schema: Mapping[str, Any] | bool, depth: int, name: str) -> Any:
        if schema is True or schema is False or not schema:
            return self.text(name, {})
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(list(schema["enum"]))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self.resolve(option) for option in schema[key]]
                usable = [option for option in options if option.get("type") != "null"]
                if depth >= MAX_DEPTH and len(usable) < len(options):
                    return None
                return self.make((usable or options)[0], depth, name)
        if "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part)
                for key, value in part.items():
                    if key == "properties":
                        merged["properties"] = {**merged.get("properties", {}), **value}
                    elif key == "required":
                        merged["required"] = [*merged.get("required", []), *value]
                    else:
                        merged.setdefault(key, value)
            return self.make(merged, depth, name)
        kind = schema.get("type")
        if isinstance(kind, list):
            usable = [item for item in kind if item != "null"]
            if not usable or (depth >= MAX_DEPTH and "null" in kind):
                return None
            kind = usable[0]
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, depth, name)
        if kind == "integer":
            return self.integer(schema)
        if kind == "number":
            return self.number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self.text(name, schema)

    def object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        value: dict[str, Any] = {}
        for key, sub in properties.items():
            # Optional parts of a deep (recursive) schema are left out, so it ends.
            if key in required or depth < MAX_DEPTH:
                value[key] = self.make(sub, depth + 1, key)
        return value

    def array(self, schema: Mapping[str, Any], depth: int, name: str) -> list[Any]:
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, 2)))
        count = low if depth >= MAX_DEPTH else min(high, max(low, self.rng.randint(1, 2)))
        items = schema.get("items", {})
        if "prefixItems" in schema:
            return [self.make(sub, depth + 1, name) for sub in schema["prefixItems"]]
        values = [self.make(items, depth + 1, name) for _ in range(count)]
        if schema.get("uniqueItems"):
            unique: list[Any] = []
            for item in values:
                if item not in unique:
                    unique.append(item)
            values = unique if len(unique) >= low else values
        return values

    def integer(self, schema: Mapping[str, Any]) -> int:
        low = schema.get("minimum")
        high = schema.get("maximum")
        if "exclusiveMinimum" in schema:
            low = int(schema["exclusiveMinimum"]) + 1
        if "exclusiveMaximum" in schema:
            high = -(-schema["exclusiveMaximum"] // 1) - 1
        low = int(-(-low // 1)) if low is not None else None
        high = int(high // 1) if high is not None else None
        if low is None and high is None:
            low, high = 1, 100
        elif low is None:
            low = min(1, high) if high is not None else 1
        if high is None:
            high = low + 99
        value = self.rng.randint(low, max(low, high))
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            value = max(low, value - value % step)
        return value

    def number(self, schema: Mapping[str, Any]) -> float:
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        low = float(low) if low is not None else (min(0.0, float(high)) if high is not None else 0.0)
        high = float(high) if high is not None else low + 100.0
        value = round(self.rng.uniform(low, high), 2)
        # Rounding or an exclusive bound may land on the edge: step back inside.
        if "exclusiveMinimum" in schema and value <= low:
            value = low + (high - low) / 2
        if "exclusiveMaximum" in schema and value >= high:
            value = low + (high - low) / 2
        return min(max(value, low), high)

    def text(self, name: str, schema: Mapping[str, Any]) -> str:
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt]
        if self.hints:
            value = self.rng.choice(self.hints)
        else:
            word = self.rng.choice(_WORDS)
            value = f"{name.replace('_', ' ')} {word}".strip() if name else word
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        if len(value) < low:
            value = value + "x" * (low - len(value))
        if high is not None:
            value = value[: int(high)]
        return value
