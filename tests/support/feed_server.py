"""A real local HTTP server on 127.0.0.1: fixture files (feeds), or any request handler."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import BaseRequestHandler
from typing import Any


@dataclass(frozen=True)
class Request:
    """One request the server answered: who asked (User-Agent) and what it got."""

    path: str
    user_agent: str
    status: int


class _QuietHandler(SimpleHTTPRequestHandler):
    requests: list[Request] | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.requests is not None and isinstance(code, int):  # HTTPStatus is an int
            agent = self.headers.get("User-Agent", "")
            self.requests.append(Request(self.path, agent, int(code)))


@contextmanager
def serve_directory(directory: Path, requests: list[Request] | None = None) -> Iterator[str]:
    """Serve `directory` (Last-Modified / If-Modified-Since as http.server does); yields the
    base URL (no trailing slash). Every request answered is appended to `requests`."""
    recording = type("_Recording", (_QuietHandler,), {"requests": requests})
    with serve_handler(functools.partial(recording, directory=str(directory))) as base:
        yield base


@contextmanager
def serve_handler(handler: Callable[..., BaseRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free 127.0.0.1 port from a thread (one thread per request); yields
    the base URL (no trailing slash). The one local HTTP server of the tests and benchmarks."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
