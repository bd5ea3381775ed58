"""``course serve``: run the server in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from course.llm_server.config import ServerConfig
from course.llm_server.scenarios import SCENARIOS, ScenarioError


def register(sub: Any) -> None:
    names = ", ".join(info.name for info in SCENARIOS)
    parser = sub.add_parser(
        "serve",
        help="run the local LLM API server (OpenAI- and Anthropic-style, faults on demand)",
        description=f"Run the course's local LLM API server. Scenarios: {names}.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    parser.add_argument("--scenario", default=None, help="default scenario, e.g. latency:200ms")
    parser.add_argument("--api-key", default=None, help="require this key (default: any key)")
    parser.add_argument("--embedding-dim", type=int, default=64, help="embedding length")
    parser.add_argument("--log-level", default="info", help="uvicorn's log level")
    parser.set_defaults(handler=serve)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(args: argparse.Namespace) -> int:
    from course.llm_server.runner import LLMServer

    try:
        config = ServerConfig(scenario=args.scenario, api_key=args.api_key, embedding_dim=args.embedding_dim)
    except (ScenarioError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # uvicorn's access log ("GET /v1/models 200") on stderr, one line per request.
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(message)s")
    server = LLMServer(config, host=args.host, port=args.port, log_level=args.log_level, access_log=True)
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    # Ctrl-C stops it even when the parent left SIGINT ignored or blocked (a script's
    # background job, a test runner's worker), and a service manager's SIGTERM too.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"LLM API server at {server.base_url}  (Ctrl-C to stop)", flush=True)
    if config.scenario:
        print(f"default scenario: {config.scenario}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("stopped", flush=True)
    return 0
