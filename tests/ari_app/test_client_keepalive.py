"""ARI client keep-alive: idle connections go before Asterisk closes them (http.conf session_keep_alive,
15 s), and an idempotent request that raced the server's close is sent once more."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from ari_app.client import AriClient, AriNotFound, AriUnavailable

ASTERISK_SESSION_KEEP_ALIVE = 15.0  # http.conf default, seconds


class Flaky:
    """MockTransport handler: the first `failures` requests die with `error` (the pooled connection
    Asterisk closed), the others are answered."""

    def __init__(self, error: type[httpx.TransportError], failures: int = 1,
                 answer: httpx.Response | None = None) -> None:
        self.error = error
        self.failures = failures
        self.answer = answer
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if len(self.requests) <= self.failures:
            raise self.error("Server disconnected without sending a response.", request=request)
        if self.answer is not None:
            return self.answer
        if request.method == "GET":
            return httpx.Response(200, json=[])
        return httpx.Response(204)


def run(handler: Flaky, body: Callable[[AriClient], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with AriClient("http://pbx:8088", "openads", "s3cret", "openads",
                             transport=httpx.MockTransport(handler)) as client:
            return await body(client)

    return asyncio.run(main())


def test_idle_connections_are_dropped_before_asterisk_closes_them() -> None:
    async def main() -> float:
        async with AriClient("http://pbx:8088", "u", "p", "openads") as client:
            pool = client._http._transport._pool  # type: ignore[attr-defined]
            return float(pool._keepalive_expiry)

    assert asyncio.run(main()) < ASTERISK_SESSION_KEEP_ALIVE


@pytest.mark.parametrize("error", [httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError])
def test_a_get_that_met_a_closed_connection_is_sent_once_more(error: type[httpx.TransportError]) -> None:
    handler = Flaky(error)
    assert run(handler, lambda c: c.list_channels()) == []
    assert handler.requests == [("GET", "/ari/channels"), ("GET", "/ari/channels")]


def test_a_delete_is_retried_and_a_404_after_it_still_means_gone() -> None:
    handler = Flaky(httpx.RemoteProtocolError,
                    answer=httpx.Response(404, json={"message": "Channel not found"}))
    with pytest.raises(AriNotFound):
        run(handler, lambda c: c.hangup("1795638210.159"))
    assert handler.requests == [("DELETE", "/ari/channels/1795638210.159")] * 2


def test_a_post_is_never_sent_twice() -> None:
    handler = Flaky(httpx.RemoteProtocolError)
    with pytest.raises(AriUnavailable) as info:
        run(handler, lambda c: c.originate("PJSIP/disp1", app_args="dispatcher,1", channel_id="openads-x"))
    assert info.value.method == "POST"
    assert handler.requests == [("POST", "/ari/channels")]


def test_only_one_retry() -> None:
    handler = Flaky(httpx.ReadError, failures=2)
    with pytest.raises(AriUnavailable):
        run(handler, lambda c: c.get_stored_recording_file("openads-call-1"))
    assert len(handler.requests) == 2


def test_a_refused_connection_is_not_retried() -> None:
    handler = Flaky(httpx.ConnectError)
    with pytest.raises(AriUnavailable):
        run(handler, lambda c: c.list_bridges())
    assert handler.requests == [("GET", "/ari/bridges")]
