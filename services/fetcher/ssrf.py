"""SSRF guard: feeds (and the pages they link to) may only make us connect to public addresses.

The check runs *after* DNS resolution, at connect time, inside the HTTP client's network
backend (`GuardedBackend`): every connection, including one opened for a redirect hop, resolves
the host once, refuses the lot when any address is not public, then connects to exactly the
addresses it checked. So a DNS answer that changes between a check and a connect (DNS
rebinding) cannot slip through, and TLS still verifies the certificate against the host name
(httpcore passes the origin host as server_hostname to start_tls).

What counts as "not public" (IANA special-purpose registries, RFC 6890 and successors):
loopback, private (RFC 1918, RFC 4193 fc00::/7), link-local (169.254/16 incl. the cloud
metadata address 169.254.169.254, fe80::/10), CGNAT shared space 100.64/10 (RFC 6598),
multicast, unspecified, reserved, documentation/benchmark ranges, and IPv6 forms that embed
an IPv4 address (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96 (RFC 6052), 6to4 2002::/16
(RFC 3056), Teredo 2001::/32 (RFC 4380)), which are judged by the IPv4 address they carry.
AWS's IPv6 metadata endpoint fd00:ec2::254 falls in fc00::/7.

`AllowList` (setting NEWSMON_FETCH_ALLOW_HOSTS) names hosts or CIDRs that are let through
anyway: tests allow 127.0.0.1, an intranet deployment may allow its own feed server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import select
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import httpcore

__all__ = [
    "AllowList",
    "BlockedAddressError",
    "GuardedBackend",
    "blocked_reason",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA: Final = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_CGNAT: Final = ipaddress.ip_network("100.64.0.0/10")


class BlockedAddressError(httpcore.ConnectError):
    """A connection to a non-public address was refused (an httpcore ConnectError, so httpx
    surfaces it as httpx.ConnectError; `fetch` turns it into the `blocked` error kind)."""


def blocked_reason(address: IPAddress) -> str | None:
    """Why `address` must not be connected to, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]  # the client's address
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = blocked_reason(embedded)
            return f"embeds {embedded}, which is {inner}" if inner else None
        if address.is_site_local:
            return "site-local"
    if address in _METADATA:
        return "a cloud metadata address"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("shared CGNAT space", isinstance(address, ipaddress.IPv4Address) and address in _CGNAT),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    )
    for reason, hit in checks:
        if hit:
            return reason
    return None


@dataclass(frozen=True)
class AllowList:
    """Hosts (names or addresses, matched exactly, case-insensitively) and CIDR networks that
    the guard lets through although they are not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def parse(cls, spec: str | Iterable[str]) -> AllowList:
        """From "127.0.0.1,feeds.intranet,10.1.0.0/16" (raises ValueError on a bad CIDR)."""
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in items:
            item = raw.strip().lower().strip("[]")
            if not item:
                continue
            if "/" in item:
                networks.append(ipaddress.ip_network(item, strict=False))
            else:
                hosts.add(item.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().strip("[]").rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return str(address) in self.hosts or any(
            address.version == net.version and address in net for net in self.networks
        )


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"name resolution failed for {host}: {exc}") from None
    seen: dict[str, IPAddress] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        seen.setdefault(text, ipaddress.ip_address(text))
    return list(seen.values())


def check_addresses(host: str, addresses: Iterable[IPAddress], allow: AllowList) -> None:
    """Raise BlockedAddressError unless every address is public or allowed."""
    if allow.allows_host(host):
        return
    for address in addresses:
        if allow.allows_address(address):
            continue
        reason = blocked_reason(address)
        if reason:
            raise BlockedAddressError(
                f"refused to connect to {host} ({address}): {reason} address "
                "(allow it with NEWSMON_FETCH_ALLOW_HOSTS)"
            )


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, checks, then connects to the checked IPs."""

    def __init__(self, allow: AllowList, inner: httpcore.AsyncNetworkBackend | None = None):
        self.allow = allow
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve(host, port)
        check_addresses(host, addresses, self.allow)
        last: Exception | None = None
        for address in addresses:
            try:
                stream = await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
                return _PolledStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        if last is not None:
            raise last
        raise httpcore.ConnectError(f"{host} resolved to no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _PolledStream(httpcore.AsyncNetworkStream):
    """The inner backend's stream with its socket looked up once. Before it places each
    request, httpcore's pool asks every idle connection whether its socket is readable (a
    server that closed a kept-alive connection: httpcore `AsyncHTTP11Connection.has_expired`),
    and the anyio stream builds its whole table of extra attributes for every ask: with 16
    pooled connections that was 14 % of the CPU of a 304 poll (bench_fetcher profile)."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        return _PolledStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._socket is not None:
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


def _readable(sock: socket.socket) -> bool:
    """Data (or the end) waits on `sock`; a closed socket counts as readable. As httpcore's
    `_utils.is_socket_readable` (poll with a zero timeout), without the lookup before it."""
    if sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
