"""A local WebSub hub (W3C WebSub, https://www.w3.org/TR/websub/) for tests: a real HTTP server
on 127.0.0.1 that takes subscribe requests (202, §5.1.2), verifies the subscriber's intent with
a random challenge against its callback from a background thread (§5.3), and pushes content to
verified subscribers with a correct, wrong or missing X-Hub-Signature (§7, §8)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs

import httpx

Signature = Literal["good", "wrong", "none"]


@dataclass
class HubSubscription:
    topic: str
    callback: str
    secret: str | None
    lease_s: int
    verified: bool = False


@dataclass(frozen=True)
class Verification:
    callback: str
    topic: str
    mode: str
    status: int
    echoed: bool  # the body was the challenge


class LocalHub:
    def __init__(self, *, lease_s: int = 3600) -> None:
        self.lease_s = lease_s
        self.url = ""
        self.subscriptions: dict[tuple[str, str], HubSubscription] = {}
        self.requests: list[dict[str, str]] = []  # subscribe requests, as received
        self.verifications: list[Verification] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=10, trust_env=False)

    # --- what tests call --------------------------------------------------------------

    def wait_verified(self, topic: str, timeout_s: float = 30.0) -> HubSubscription:
        """Block until a subscription to `topic` was verified (polls; no timed assertion)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                for sub in self.subscriptions.values():
                    if sub.topic == topic and sub.verified:
                        return sub
            time.sleep(0.05)
        raise TimeoutError(f"no verified subscription to {topic} within {timeout_s}s")

    def verify(
        self, callback: str, topic: str, mode: str = "subscribe", lease_s: int | None = None
    ) -> Verification:
        """Send one intent-verification GET (§5.3) and record how the subscriber answered."""
        challenge = secrets.token_urlsafe(16)
        params = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            params["hub.lease_seconds"] = str(lease_s or self.lease_s)
        response = self._client.get(callback, params=params)
        result = Verification(
            callback,
            topic,
            mode,
            response.status_code,
            response.is_success and response.text == challenge,
        )
        with self._lock:
            self.verifications.append(result)
        return result

    def push(
        self,
        topic: str,
        body: bytes,
        *,
        content_type: str = "application/rss+xml",
        signature: Signature = "good",
        algorithm: str = "sha256",
        callback: str | None = None,
    ) -> list[int]:
        """Distribute `body` to every verified subscriber of `topic` (or to `callback` only);
        returns the status codes the subscribers answered."""
        with self._lock:
            targets = [
                s
                for s in self.subscriptions.values()
                if s.topic == topic and s.verified and callback in (None, s.callback)
            ]
        if callback is not None and not targets:
            targets = [HubSubscription(topic, callback, "unknown", self.lease_s)]
        statuses = []
        for sub in targets:
            headers = {
                "Content-Type": content_type,
                "Link": f'<{self.url}>; rel="hub", <{topic}>; rel="self"',
            }
            if signature != "none" and sub.secret:
                key = sub.secret.encode() if signature == "good" else b"not-the-secret"
                digest = hmac.new(key, body, getattr(hashlib, algorithm)).hexdigest()
                headers["X-Hub-Signature"] = f"{algorithm}={digest}"
            statuses.append(
                self._client.post(sub.callback, content=body, headers=headers).status_code
            )
        return statuses

    # --- the server -------------------------------------------------------------------

    def _subscribe(self, form: dict[str, str]) -> int:
        mode, topic, callback = (
            form.get("hub.mode"),
            form.get("hub.topic"),
            form.get("hub.callback"),
        )
        if mode not in ("subscribe", "unsubscribe") or not topic or not callback:
            return 400
        with self._lock:
            self.requests.append(form)
        lease = int(form.get("hub.lease_seconds") or self.lease_s)
        lease = min(lease, self.lease_s)  # the hub's policy caps the lease (§5.3.1)
        # §5.1.2: answer first; verification starts after the response, asynchronously.
        threading.Thread(
            target=self._verify_later,
            args=(mode, topic, callback, form.get("hub.secret"), lease),
            daemon=True,
        ).start()
        return 202

    def _verify_later(
        self, mode: str, topic: str, callback: str, secret: str | None, lease: int
    ) -> None:
        time.sleep(0.05)
        try:
            result = self.verify(callback, topic, mode, lease)
        except httpx.HTTPError:
            return
        if not result.echoed:
            return  # §5.3.1: the subscription state is left unchanged
        with self._lock:
            if mode == "subscribe":
                self.subscriptions[(topic, callback)] = HubSubscription(
                    topic, callback, secret, lease, verified=True
                )
            else:
                self.subscriptions.pop((topic, callback), None)

    def close(self) -> None:
        self._client.close()


@contextmanager
def serve_hub(*, lease_s: int = 3600) -> Iterator[LocalHub]:
    """A running LocalHub; its URL is `hub.url`."""
    hub = LocalHub(lease_s=lease_s)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", errors="replace")
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            status = hub._subscribe(form)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hub.url = f"http://127.0.0.1:{server.server_port}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        hub.close()
