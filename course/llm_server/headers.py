"""The request headers that steer the server, in one place (the docs print ``HEADERS``)."""

from __future__ import annotations

SCENARIO = "x-mock-scenario"
KEY = "x-mock-key"
REPLY = "x-mock-reply"
REPLY_STYLE = "x-mock-reply-style"
REQUEST_ID = "x-request-id"

MOCK_PREFIX = "/mock/"
"""``/mock/<scenario>[@<key>]/v1/...``: the same controls, carried in a base URL, for client
code that takes a base URL but no extra headers."""

HEADERS: dict[str, str] = {
    "X-Mock-Scenario": "A scenario spec for this request, e.g. `fail_first:2:503`; "
    "overrides the server's default (`ok` clears it).",
    "X-Mock-Key": "The counter a stateful scenario (fail_first, rpm, rps) uses; "
    "give each test or lesson its own.",
    "X-Mock-Reply": "The answer text to return verbatim, e.g. a JSON object.",
    "X-Mock-Reply-Style": "How to wrap a scripted reply: plain (default), fence, prose, prose_fence.",
    "X-Request-ID": "Echoed in the response and recorded in the request log (generated when absent).",
}
