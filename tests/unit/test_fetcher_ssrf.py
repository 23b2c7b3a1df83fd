from __future__ import annotations

import ipaddress

import pytest
from newsmon.fetcher.ssrf import AllowList, BlockedAddressError, blocked_reason, check_addresses


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "169.254.1.1",
        "100.64.0.1",  # CGNAT (RFC 6598)
        "224.0.0.1",  # multicast
        "239.255.255.250",
        "0.0.0.0",
        "255.255.255.255",
        "240.0.0.1",
        "192.0.2.1",  # documentation
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",  # AWS IPv6 metadata
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2001:db8::1",
        "fec0::1",  # site-local
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "151.101.1.69", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"]
)
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_one_bad_address_among_good_ones_refuses_the_host() -> None:
    addresses = [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.1.2.3")]
    with pytest.raises(BlockedAddressError, match="private"):
        check_addresses("rebind.example", addresses, AllowList())


def test_allow_list_by_host_address_and_cidr() -> None:
    allow = AllowList.parse(" 127.0.0.1, Feeds.Intranet. ,10.1.0.0/16,[::1]")
    check_addresses("feeds.intranet", [ipaddress.ip_address("10.9.9.9")], allow)
    check_addresses("x", [ipaddress.ip_address("127.0.0.1")], allow)
    check_addresses("x", [ipaddress.ip_address("10.1.200.3")], allow)
    check_addresses("x", [ipaddress.ip_address("::1")], allow)
    with pytest.raises(BlockedAddressError):
        check_addresses("x", [ipaddress.ip_address("10.2.0.1")], allow)


def test_bad_cidr_is_an_error() -> None:
    with pytest.raises(ValueError, match="does not appear"):
        AllowList.parse("10.0.0.0/99x")
