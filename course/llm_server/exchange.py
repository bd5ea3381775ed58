"""One request on its way through the server: what the log will say about it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from course.llm_server.log import RequestRecord
from course.llm_server.state import ServerState

if TYPE_CHECKING:
    from course.llm_server.providers.base import Provider


class StreamDropped(Exception):
    """Raised on purpose to make the server close the connection mid-response.

    ASGI has no "close the socket" message; uvicorn closes the connection when an app fails
    after the response started, which is exactly the fault a client must survive. Raised
    through ``httpx.ASGITransport`` it reaches the client as this exception."""


class Exchange:
    def __init__(self, state: ServerState, method: str, path: str, request_id: str, in_flight: int) -> None:
        self.state = state
        self.timestamp = datetime.now(UTC)
        self.arrival = time.monotonic()
        self.method = method
        self.path = path
        self.request_id = request_id
        self.in_flight = in_flight
        self.status: int | None = None
        self.scenario: str | None = None
        self.faults: list[str] = []
        self.streamed = False
        self.provider: Provider | None = None
        self.model: str | None = None
        self.unknown_params: tuple[str, ...] = ()
        self.key: str | None = None
        self.url_scenario: str | None = None
        self.url_key: str | None = None
        self.committed = False

    def commit(self, status: int | None) -> None:
        """Write the log record (once). Called before the response's last byte is sent."""
        if self.committed:
            return
        self.committed = True
        self.state.log.append(
            RequestRecord(
                timestamp=self.timestamp,
                monotonic=self.arrival,
                method=self.method,
                path=self.path,
                status=status,
                request_id=self.request_id,
                scenario=self.scenario,
                fault=",".join(self.faults) or None,
                streamed=self.streamed,
                api=self.provider.name if self.provider else None,
                model=self.model,
                unknown_params=self.unknown_params,
                key=self.key,
                in_flight=self.in_flight,
                elapsed=time.monotonic() - self.arrival,
            )
        )
