"""The client's address behind trusted proxies (FORWARDED_ALLOW_IPS), under uvicorn and Granian
alike: the address the nearest proxy that is not ours saw, for the failed-authentication limit
and the log line. Never from a peer we do not trust: anyone can send these headers.

A proxy appends the address it received the request from, so the list is read from the right:
trusted proxies are skipped, and the first address that is not one of them is the client (when
every hop is trusted, the leftmost). An entry that is not an IP address (`unknown`, an
obfuscated `_name`, garbage) ends the walk: nothing to its left can be believed, so the last
trusted hop stands. Proxies write either X-Forwarded-For (nginx, Caddy, HAProxy, cloud load
balancers; the default) or RFC 7239 `Forwarded` (FORWARDED_HEADER=forwarded). Only the one the
operator names is read: a proxy that writes one passes the other through from the client
untouched. The scheme comes the same way, from X-Forwarded-Proto or `proto=`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from functools import lru_cache

from starlette.types import ASGIApp, Receive, Scope, Send

from handlers.services.settings import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = ("http", "https")
MAX_HOPS = 32  # entries read from the right; no chain of proxies is longer


def _address(node: str) -> Address | None:
    """An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
    `[2001:db8::1]` or `[2001:db8::1]:4711` (quotes already removed); None for anything else."""
    if node.startswith("["):
        node = node[1:].partition("]")[0]
    elif node.count(":") == 1:
        node = node.partition(":")[0]
    try:
        return ipaddress.ip_address(node)
    except ValueError:
        return None


def _elements(value: str) -> Iterator[dict[str, str]]:
    """RFC 7239 elements (`for=...;proto=...`, comma-separated), parameters lower-cased and
    quoted strings unquoted; a comma inside quotes does not split."""
    element: dict[str, str] = {}
    name, token, quoted, in_value = "", [], False, False
    for char in value + ",":
        if quoted:
            if char == '"':
                quoted = False
            else:
                token.append(char)
        elif char == '"':
            quoted = True
        elif char == "=" and not in_value:
            name, token, in_value = "".join(token).strip().lower(), [], True
        elif char in ";,":
            if in_value and name:
                element[name] = "".join(token).strip()
            name, token, in_value = "", [], False
            if char == ",":
                yield element
                element = {}
        else:
            token.append(char)


class ClientAddressMiddleware:
    """Outermost: everything after it (limits, logs, metrics) sees the real client."""

    def __init__(
        self, app: ASGIApp, *, trusted: tuple[Network, ...] | None, header: str = "x-forwarded-for"
    ) -> None:
        self.app = app
        self.trusted = trusted
        self.header = header.encode("latin-1")
        self._trusts = lru_cache(maxsize=4096)(self._compute_trust)

    def _compute_trust(self, address: Address) -> bool:
        return self.trusted is None or any(address in network for network in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and client:
            peer = _address(str(client[0]))
            if peer is not None and self._trusts(peer):
                scope = self._forwarded(scope, peer)
        await self.app(scope, receive, send)

    def _hops(self, scope: Scope) -> list[tuple[str, str | None]]:
        """(node, scheme) the proxies recorded, nearest last."""
        lines = [v.decode("latin-1") for k, v in scope["headers"] if k == self.header]
        if not lines:
            return []
        if self.header == b"forwarded":
            elements = list(_elements(", ".join(lines)))[-MAX_HOPS:]
            return [(e.get("for", ""), e.get("proto")) for e in elements]
        protos = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-proto"]
        proto = ",".join(protos).split(",")[-1].strip() if protos else None
        nodes = ",".join(lines).split(",")[-MAX_HOPS:]
        return [(node.strip(), proto if i == len(nodes) - 1 else None)
                for i, node in enumerate(nodes)]  # fmt: skip

    def _forwarded(self, scope: Scope, peer: Address) -> Scope:
        client, scheme = peer, None
        for node, proto in reversed(self._hops(scope)):
            address = _address(node)
            if address is None:
                break
            client, scheme = address, proto or scheme
            if not self._trusts(address):
                break
        if client == peer and scheme is None:
            return scope
        changed = {**scope, "client": (str(client), 0)}
        if scheme is not None and scheme.lower() in SCHEMES:
            changed["scheme"] = scheme.lower()
        return changed
