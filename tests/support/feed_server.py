"""A real local HTTP server that serves fixture files (feeds) on 127.0.0.1."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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
    handler = functools.partial(recording, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
