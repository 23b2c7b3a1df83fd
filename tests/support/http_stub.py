"""A real local HTTP server whose answers tests script per path (status, headers, body,
trickle), recording every request. Enough to show redirects, 304s, 429s, bombs, slow feeds."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    trickle_s: float = 0.0  # pause between bytes: a slow feed
    wait: threading.Event | None = None  # hold the answer until set


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]
    peer_port: int = 0  # the client's port: the same one means the same connection


Route = Reply | Callable[[Seen], Reply]


class HttpStub:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.base_url = ""

    def route(self, path: str, reply: Route) -> str:
        self.routes[path] = reply
        return self.base_url + path

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)


def _handler(stub: HttpStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def handle(self) -> None:
            # A fetch that stops at the headers (too large, an unsupported encoding) closes
            # its connection with the body unread, and the kernel answers the unread data
            # with a reset: the next request's read here fails, and socketserver printed a
            # traceback for it. The client going away is not the stub's error.
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                super().handle()

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen = Seen(self.path, headers, self.client_address[1])
            with stub._lock:
                stub.requests.append(seen)
                stub.in_flight += 1
                stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
            try:
                route = stub.routes.get(self.path.split("?", 1)[0])
                reply = Reply(404, b"not found") if route is None else route
                if callable(reply):
                    reply = reply(seen)
                if reply.wait is not None:
                    reply.wait.wait(timeout=30)
                self.send_response(reply.status)
                headers = {"Content-Length": str(len(reply.body)), **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if reply.trickle_s:
                    for i in range(len(reply.body)):
                        self.wfile.write(reply.body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(reply.trickle_s)
                else:
                    self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                with stub._lock:
                    stub.in_flight -= 1

    return Handler


@contextmanager
def http_stub() -> Iterator[HttpStub]:
    stub = HttpStub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    server.daemon_threads = True
    stub.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
