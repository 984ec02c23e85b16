"""Webhook connections on CPython: resolve once, refuse non-public addresses, dial the checked one (not on Workers)."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

from relay.webhooks import INSECURE_HOSTS, BlockedAddress, ResolutionFailed, address_problem

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) → the addresses to try, in order. Swapped by tests to map names without DNS.
Resolver = Callable[[str, int], Awaitable[list[str]]]
MAX_CONNECTIONS = 10


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answer (getaddrinfo), TCP only, in its preferred order."""
    loop = asyncio.get_running_loop()
    try:
        answers = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise ResolutionFailed(type(error).__name__) from None
    return [str(sockaddr[0]) for *_, sockaddr in answers]


# The resolver new clients use; a module attribute so tests can map names to chosen addresses.
resolve: Resolver = system_resolver


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Network backend that resolves the host itself, checks every address, and dials only a checked one.

    httpcore still starts TLS with the URL's host name (SNI and certificate check) and httpx sends the
    original Host header, so receivers see a normal request; no second lookup can swap the address.
    """

    def __init__(self, resolver: Resolver, *, allow_insecure: bool) -> None:
        self._resolver = resolver
        self._allow_insecure = allow_insecure
        self._inner = httpcore.AnyIOBackend()

    async def _checked_addresses(self, host: str, port: int, seconds: float | None) -> list[IpAddress]:
        name = host.strip("[]").rstrip(".").lower()
        try:
            literal: IpAddress | None = ipaddress.ip_address(name.split("%", 1)[0])
        except ValueError:
            literal = None
        if literal is not None:
            answers = [str(literal)]
        else:
            answers = await asyncio.wait_for(self._resolver(name, port), seconds)
        addresses: list[IpAddress] = []
        for answer in answers:
            try:
                addresses.append(ipaddress.ip_address(answer.split("%", 1)[0]))
            except ValueError:
                raise ResolutionFailed("unreadable address") from None
        if not addresses:
            raise ResolutionFailed("no addresses")
        # Loopback only for the development hosts ALLOW_INSECURE_WEBHOOKS admits; any bad answer refuses all.
        allow_loopback = self._allow_insecure and name in INSECURE_HOSTS
        if any(address_problem(address, allow_loopback=allow_loopback) for address in addresses):
            raise BlockedAddress(name)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._checked_addresses(host, port, timeout)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Built once per process (loading the CA bundle costs milliseconds), on first use rather than at import.
    return httpx.create_ssl_context(trust_env=False)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport with its connection pool dialling through GuardedBackend; no proxies from env."""

    def __init__(self, backend: GuardedBackend) -> None:
        super().__init__(verify=_tls_context(), trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_tls_context(), max_connections=MAX_CONNECTIONS, network_backend=backend
        )


def guarded_client(*, allow_insecure: bool) -> httpx.AsyncClient:
    """A client for one send run: every connection goes through the address check; no redirects, no env proxies."""
    backend = GuardedBackend(resolve, allow_insecure=allow_insecure)
    return httpx.AsyncClient(transport=GuardedTransport(backend), follow_redirects=False, trust_env=False)
