"""The client address behind trusted proxies (handlers/http/forwarded.py): read from the right,
only from trusted peers, only from the header the operator named, never from garbage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from handlers.http.forwarded import ClientAddressMiddleware, _elements
from handlers.services.settings import Settings, SettingsError, trusted_networks


def seen(
    peer: str,
    headers: list[tuple[str, str]],
    allow: tuple[str, ...] = ("10.0.0.0/8",),
    header: str = "x-forwarded-for",
) -> tuple[str, str]:
    """(client address, scheme) the app behind the middleware sees."""
    found: dict[str, Any] = {}

    async def app(scope: Any, _receive: Any, _send: Any) -> None:
        found.update(scope)

    middleware = ClientAddressMiddleware(app, trusted=trusted_networks(allow), header=header)
    scope = {
        "type": "http", "client": (peer, 1234), "scheme": "http",
        "headers": [(k.encode(), v.encode()) for k, v in headers],
    }  # fmt: skip

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    async def send(_message: Any) -> None:
        return None

    asyncio.run(middleware(scope, receive, send))
    return found["client"][0], found["scheme"]


def test_a_trusted_proxy_names_the_client() -> None:
    assert seen("10.0.0.2", [("x-forwarded-for", "203.0.113.7")]) == ("203.0.113.7", "http")


def test_an_untrusted_peer_is_the_client_whatever_it_says() -> None:
    spoofed = [("x-forwarded-for", "203.0.113.7"), ("forwarded", "for=198.51.100.1")]
    assert seen("192.0.2.50", spoofed)[0] == "192.0.2.50"
    assert seen("192.0.2.50", spoofed, header="forwarded")[0] == "192.0.2.50"
    assert seen("127.0.0.1", spoofed, allow=())[0] == "127.0.0.1"  # nobody trusted by default


def test_the_list_is_read_from_the_right_past_trusted_hops_only() -> None:
    # The client forged the first entry; our two proxies appended what they saw.
    chain = [("x-forwarded-for", "1.2.3.4, 198.51.100.9, 10.0.0.5")]
    assert seen("10.0.0.2", chain)[0] == "198.51.100.9"
    # Repeated header lines are one list, in order.
    lines = [("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "198.51.100.9, 10.1.1.1")]
    assert seen("10.0.0.2", lines)[0] == "198.51.100.9"
    # Every hop trusted: the leftmost.
    assert seen("10.0.0.2", [("x-forwarded-for", "10.9.9.9, 10.0.0.5")])[0] == "10.9.9.9"


@pytest.mark.parametrize(
    "value", ["unknown", "not an address", "", "203.0.113.7, garbage", "_hidden", "1.2.3.4.5"]
)
def test_an_entry_that_is_no_address_stops_the_walk_at_the_last_trusted_hop(value: str) -> None:
    assert seen("10.0.0.2", [("x-forwarded-for", value)])[0] == "10.0.0.2"
    assert seen("10.0.0.2", [("x-forwarded-for", f"{value}, 10.0.0.7")])[0] == "10.0.0.7"


def test_ports_and_ipv6_as_proxies_write_them() -> None:
    assert seen("10.0.0.2", [("x-forwarded-for", "203.0.113.7:4711")])[0] == "203.0.113.7"
    assert seen("10.0.0.2", [("x-forwarded-for", "[2001:db8::1]:4711")])[0] == "2001:db8::1"
    assert seen("10.0.0.2", [("x-forwarded-for", "2001:db8::1")])[0] == "2001:db8::1"
    assert seen("::1", [("x-forwarded-for", "203.0.113.7")], allow=("::1",))[0] == "203.0.113.7"


def test_rfc_7239_forwarded_when_the_operator_names_it() -> None:
    header = [("forwarded", 'for=198.51.100.3;proto=https, for="[2001:db8::2]:8080"')]
    assert seen("10.0.0.2", header, header="forwarded") == ("2001:db8::2", "http")
    header = [("forwarded", 'For="198.51.100.3:1";Proto=HTTPS;by=10.0.0.2')]
    assert seen("10.0.0.2", header, header="forwarded") == ("198.51.100.3", "https")
    # In X-Forwarded-For mode a client's own Forwarded header is just a header.
    assert seen("10.0.0.2", header)[0] == "10.0.0.2"
    assert seen("10.0.0.2", [("forwarded", "for=unknown")], header="forwarded")[0] == "10.0.0.2"


def test_the_scheme_comes_from_the_nearest_proxy() -> None:
    headers = [("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https")]
    assert seen("10.0.0.2", headers) == ("203.0.113.7", "https")
    forged_then_real = [("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "ftp, http")]
    assert seen("10.0.0.2", forged_then_real)[1] == "http"
    assert seen("10.0.0.2", [("x-forwarded-proto", "gopher")]) == ("10.0.0.2", "http")


def test_quoted_commas_do_not_split_elements() -> None:
    assert list(_elements('for="a,b";proto=http, for=c')) == [
        {"for": "a,b", "proto": "http"},
        {"for": "c"},
    ]


def test_every_peer_can_be_trusted_with_a_star() -> None:
    assert seen("192.0.2.50", [("x-forwarded-for", "203.0.113.7")], allow=("*",))[0] == (
        "203.0.113.7"
    )


def test_settings_refuse_what_is_not_an_address_or_network() -> None:
    env = {"APP_ENV": "development", "FORWARDED_ALLOW_IPS": "10.0.0.0/8, proxy.internal"}
    with pytest.raises(SettingsError, match=r"'proxy\.internal' is not an IP address or network"):
        Settings.from_env(env)
    with pytest.raises(SettingsError, match="FORWARDED_HEADER"):
        Settings.from_env({"APP_ENV": "development", "FORWARDED_HEADER": "x-real-ip"})
    settings = Settings.from_env(
        {"APP_ENV": "development", "FORWARDED_ALLOW_IPS": "10.0.0.2, fd00::/8",
         "FORWARDED_HEADER": "Forwarded"}
    )  # fmt: skip
    assert settings.forwarded_allow_ips == ("10.0.0.2", "fd00::/8")
    assert settings.forwarded_header == "forwarded"
