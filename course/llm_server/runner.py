"""Run the server for a notebook or a test: uvicorn in a background thread on a free port.

    with LLMServer(scenario="fail_first:2:503") as server:
        httpx.post(f"{server.base_url}/v1/chat/completions", ...)
        server.log   # what the server saw

The socket is bound here (port 0: the OS picks a free port) and handed to uvicorn, so there
is no race between choosing a port and listening on it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import TracebackType
from typing import Self
from urllib.parse import quote

import uvicorn

from course.llm_server.app import create_app, server_state
from course.llm_server.config import ReplySource, ServerConfig
from course.llm_server.exchange import StreamDropped
from course.llm_server.headers import MOCK_PREFIX
from course.llm_server.log import RequestRecord

PLACEHOLDER_KEY = "sk-course-local"
STARTUP_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class _QuietDrops(logging.Filter):
    """A connection closed on purpose (drop_stream, stall:after) is the scenario working, not
    a server error: keep it out of the notebook's stderr. Real errors still get through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamDropped))


class _QuietClientGone(logging.Filter):
    """A client that stops reading a stream early (``break``, ``aclose()``, a timeout) leaves
    the server writing to a closed socket, and asyncio warns ``socket.send() raised
    exception.``. For this server that is a client's choice, not a fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("socket.send() raised exception")


def quiet_dropped_streams() -> None:
    for name, kind in (("uvicorn.error", _QuietDrops), ("asyncio", _QuietClientGone)):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, kind) for existing in logger.filters):
            logger.addFilter(kind())


def bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it Nagle's algorithm meets delayed ACKs and every response waits ~40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # Lets `course serve --port 8000` restart at once, while old connections sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def _in_thread(work: Callable[[], object]) -> None:
    """Run blocking work in a thread of its own, joined before returning. Unlike
    ``asyncio.to_thread`` this leaves no executor thread behind, so a leak check stays exact."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        try:
            work()
        except BaseException as error:
            loop.call_soon_threadsafe(settle, error)
        else:
            loop.call_soon_threadsafe(settle, None)

    thread = threading.Thread(target=run, name="llm-server-lifecycle")
    thread.start()
    try:
        await done
    finally:
        thread.join()


class LLMServer:
    """The course's LLM API server in a background thread; a (sync or async) context manager."""

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        scenario: str | None = None,
        api_key: str | None = None,
        replies: Mapping[str, ReplySource] | None = None,
        embedding_dim: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        access_log: bool = False,
    ) -> None:
        config = config or ServerConfig()
        changes: dict[str, object] = {}
        if scenario is not None:
            changes["scenario"] = scenario
        if api_key is not None:
            changes["api_key"] = api_key
        if replies is not None:
            changes["replies"] = dict(replies)
        if embedding_dim is not None:
            changes["embedding_dim"] = embedding_dim
        self.config = replace(config, **changes)  # type: ignore[arg-type]
        self.app = create_app(self.config)
        self.host = host
        self.port = port
        self.log_level = log_level
        self.access_log = access_log
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # --- what a lesson uses ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running: use `with LLMServer() as server:`")
        return f"http://{self.host}:{self.port}"

    @property
    def api_key(self) -> str:
        """The key to send: the required one, or a placeholder the server accepts."""
        return self.config.api_key or PLACEHOLDER_KEY

    def url(self, scenario: str = "ok", key: str | None = None) -> str:
        """A base URL that applies ``scenario`` (and counts under ``key``) to every request,
        for client code that takes a base URL but lets you set no headers."""
        segment = scenario + (f"@{key}" if key else "")
        return f"{self.base_url}{MOCK_PREFIX}{quote(segment, safe=':,=@-')}"

    @property
    def log(self) -> list[RequestRecord]:
        return server_state(self.app).log.records()

    def wait_for_log(self, count: int, timeout: float = 5.0) -> list[RequestRecord]:
        return server_state(self.app).log.wait_for(count, timeout)

    def clear_log(self) -> None:
        server_state(self.app).log.clear()

    def reset(self) -> None:
        """Clear the log and every scenario counter (fail_first, rpm, rps)."""
        server_state(self.app).reset()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("this server is already running")
        quiet_dropped_streams()
        state = server_state(self.app)
        state.closing.clear()
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=self.log_level,
            log_config=None,
            access_log=self.access_log,
            lifespan="off",
            ws="none",
            http="h11",
            loop="asyncio",
            # Bounded shutdown even if a client holds a connection open.
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"llm-server-{self.port}", daemon=True
        )
        self._server, self._thread, self._socket = server, thread, sock
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the LLM server did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        server, thread, sock = self._server, self._thread, self._socket
        if server is None or thread is None:
            return
        # Wake every stall and trickle first, so uvicorn's graceful shutdown finds no work.
        server_state(self.app).closing.set()
        server.should_exit = True
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(STOP_TIMEOUT)
        if sock is not None:
            sock.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # Starting blocks for a moment (until uvicorn listens): keep the caller's loop free.
        await _in_thread(self.start)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await _in_thread(self.stop)

    def __repr__(self) -> str:
        where = f"{self.host}:{self.port}" if self._server else "stopped"
        return f"LLMServer({where}, scenario={self.config.scenario!r})"
