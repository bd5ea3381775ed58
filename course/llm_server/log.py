"""What the server saw: one frozen record per request, readable from tests and lessons.

An exercise is checked from the server's side ("the rate limit was respected", "retries were
jittered") by reading these records. A record is written before the last byte of its response
leaves the server, so a client that has read a response always finds the record.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RequestRecord:
    timestamp: datetime
    """When the request arrived (timezone-aware UTC)."""
    monotonic: float
    """When it arrived, on ``time.monotonic()``: use this for gaps between requests."""
    method: str
    path: str
    """The API path (``/v1/...``), without any ``/mock/<scenario>`` prefix."""
    status: int | None
    """The status sent; None when no response was sent (a stall the client gave up on)."""
    request_id: str
    """``X-Request-ID`` from the request, or the one the server generated; echoed back."""
    scenario: str | None
    """The scenario spec in force (from the header, the URL prefix or the server default)."""
    fault: str | None
    """The fault steps that actually fired, e.g. ``error:503``; None when none did."""
    streamed: bool
    api: str | None
    """``openai`` or ``anthropic``: whose shapes the response used."""
    model: str | None
    """The model name as the request gave it (a real name such as ``gpt-4o-mini`` too)."""
    key: str | None
    """``X-Mock-Key``: the counter the stateful scenarios used."""
    in_flight: int
    """Requests in progress on the server when this one arrived, itself included."""
    elapsed: float
    """Seconds from arrival to the moment the record was written (about the response time)."""
    unknown_params: tuple[str, ...] = ()
    """Top-level body parameters the server does not know: accepted, as the real APIs grow
    new ones all the time, and listed here so that a misspelt one is still visible."""


class RequestLog:
    """Thread-safe: the server appends from its own thread while a test reads."""

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def append(self, record: RequestRecord) -> None:
        with self._changed:
            self._records.append(record)
            self._changed.notify_all()

    def records(self) -> list[RequestRecord]:
        """A copy, in order of arrival."""
        with self._lock:
            return sorted(self._records, key=lambda record: record.monotonic)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RequestRecord]:
        """Block until at least ``count`` records exist (or the timeout passes); return them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._records) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        return self.records()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
