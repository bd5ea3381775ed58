"""Sending a body the way a misbehaving network or provider would: in slow pieces, cut short,
stalled, or with broken JSON. Plain responses go through the same path with no faults."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from course.llm_server.exchange import Exchange, StreamDropped
from course.llm_server.faults import Delivery
from course.llm_server.providers.base import gateway_html
from course.llm_server.reply import Output
from course.llm_server.scenarios import Stall
from course.llm_server.sse import dumps
from course.llm_server.state import POLL, ServerState

BODY_PIECES = 4
"""A plain JSON body is sent in this many slices, so trickle, drop and stall apply to it too."""

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def split(body: bytes, parts: int) -> list[bytes]:
    size = max(1, -(-len(body) // parts))
    return [body[i : i + size] for i in range(0, len(body), size)] or [b""]


async def wait_for_disconnect(receive: Receive, seconds: float, state: ServerState) -> bool:
    """Wait until the client hangs up, the time runs out or the server stops.
    Return True if the client hung up."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    deadline = time.monotonic() + seconds
    try:
        while not watcher.done() and not state.closing.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.wait({watcher}, timeout=min(POLL, remaining))
        return watcher.done()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


def _within(index: int | None, count: int) -> int | None:
    return index if index is not None and index < count else None


class Delivered(Response):
    """A 200 response sent piece by piece, applying the plan's delivery faults."""

    def __init__(
        self, output: Output, delivery: Delivery, exchange: Exchange, headers: Mapping[str, str]
    ) -> None:
        self.output = output
        self.delivery = delivery
        self.exchange = exchange
        streamed = output.events is not None
        super().__init__(
            status_code=200,
            headers={**headers, **(SSE_HEADERS if streamed else {})},
            media_type="text/event-stream" if streamed else "application/json",
        )
        self.pieces = self._pieces()
        if streamed:
            # No length: the stream is chunked and ends when the server says so.
            del self.headers["content-length"]
        else:
            # A plain body declares its full length, so a cut-short body is detectable.
            self.headers["content-length"] = str(sum(len(piece) for piece in self.pieces))

    def _fired(self, name: str) -> None:
        self.exchange.faults.append(self.delivery.specs[name])

    def _pieces(self) -> list[bytes]:
        delivery, output = self.delivery, self.output
        if output.events is None:
            body = dumps(output.body).encode()
            if delivery.malformed_at is not None:
                body = body[: len(body) // 2]
                self._fired("malformed")
            return split(body, BODY_PIECES)
        pieces = [item.encode() for item in output.events]
        at = delivery.malformed_at
        if at is not None and at <= len(pieces):
            pieces[at - 1] = output.events[at - 1].malformed()
            self._fired("malformed")
        after = delivery.error_after
        if after is not None and after < len(pieces) and output.error_event is not None:
            pieces = [*pieces[:after], output.error_event.encode()]
            self._fired("error")
        return pieces

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        delivery, state, count = self.delivery, self.exchange.state, len(self.pieces)
        # A fault set after the last piece never fires (the response is complete by then).
        drop = _within(delivery.drop_after, count)
        stall = _within(delivery.stall_after, count)
        if stall is not None and (drop is None or stall < drop):
            drop = None
            self._fired("stall")
        elif drop is not None:
            stall = None
            self._fired("drop")
        if delivery.trickle and count > 1:
            self._fired("trickle")
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        for index, piece in enumerate(self.pieces):
            if index == drop:
                self.exchange.commit(self.status_code)
                raise StreamDropped(f"dropped after {index} pieces ({self.delivery.specs['drop']})")
            if index == stall:
                self.exchange.commit(self.status_code)
                cap = delivery.stall_for or state.config.stall_timeout
                await wait_for_disconnect(receive, cap, state)
                raise StreamDropped(f"stalled after {index} pieces")
            if index and delivery.trickle and not await state.pause(delivery.trickle):
                raise StreamDropped("server stopping")
            # The last piece carries more_body=False: the log record is written before it
            # leaves (a client that knows the length is done as soon as it has the bytes).
            last = index == count - 1
            await send({"type": "http.response.body", "body": piece, "more_body": not last})


class Stalled(Response):
    """Accept the request and send nothing at all: the client's read timeout must fire."""

    def __init__(self, step: Stall, exchange: Exchange) -> None:
        super().__init__(status_code=504)
        self.step = step
        self.exchange = exchange

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.exchange.state
        # Logged now, with no status: nothing will be sent before the client gives up.
        self.exchange.commit(None)
        cap = self.step.seconds or state.config.stall_timeout
        if await wait_for_disconnect(receive, cap, state):
            return
        # Nobody hung up within the cap: answer as the proxy in front of an API would.
        body = gateway_html(504, "Gateway Time-out").encode()
        await send(
            {
                "type": "http.response.start",
                "status": 504,
                "headers": [(b"content-type", b"text/html"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
