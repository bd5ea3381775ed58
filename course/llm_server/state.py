"""The mutable side of one server: counters, rate windows, in-flight count, the log.

The app runs on one event loop, but tests and lessons read and reset this state from other
threads, so every change goes through one lock.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque

from course.llm_server.config import ServerConfig
from course.llm_server.log import RequestLog

POLL = 0.05
"""How often a long pause checks whether the server is stopping (keeps shutdown quick)."""


class ServerState:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.log = RequestLog()
        self.closing = threading.Event()
        self.rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._in_flight = 0

    # --- counters -------------------------------------------------------------------------

    def next_call(self, key: str, spec: str) -> int:
        """Count one more call of ``spec`` under ``key``; return its number (1 for the first)."""
        with self._lock:
            count = self._counts.get((key, spec), 0) + 1
            self._counts[(key, spec)] = count
            return count

    def take_slot(self, key: str, spec: str, limit: int, window: float) -> tuple[int, float]:
        """Sliding-window limiter: admit the call if fewer than ``limit`` were admitted in the
        last ``window`` seconds. Return (slots left, seconds until a slot frees); slots left
        is -1 when the call was refused. Refused calls do not use up the window."""
        now = time.monotonic()
        with self._lock:
            admitted = self._windows.setdefault((key, spec), deque())
            while admitted and admitted[0] <= now - window:
                admitted.popleft()
            if len(admitted) >= limit:
                return -1, admitted[0] + window - now
            admitted.append(now)
            return limit - len(admitted), admitted[0] + window - now

    def enter(self) -> int:
        with self._lock:
            self._in_flight += 1
            return self._in_flight

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def reset(self) -> None:
        """Forget every counter and rate window, and clear the log."""
        with self._lock:
            self._counts.clear()
            self._windows.clear()
        self.log.clear()

    def jitter(self, low: float, high: float) -> float:
        with self._lock:
            return self.rng.uniform(low, high)

    # --- waiting --------------------------------------------------------------------------

    async def pause(self, seconds: float) -> bool:
        """Sleep, but wake early when the server stops; return False if it is stopping."""
        deadline = time.monotonic() + seconds
        while not self.closing.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            await asyncio.sleep(min(POLL, remaining))
        return False
