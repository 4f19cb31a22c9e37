"""ARI event WebSocket: reconnect with backoff, on_connected before events, status, clean stop."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from ari_app.connection import AriConnection, Backoff, events_url
from tests.ari_app.helpers import until


def event(n: int) -> str:
    return json.dumps({"type": "ChannelDtmfReceived", "application": "openads", "digit": str(n),
                       "timestamp": f"2026-11-25T20:23:0{n}.000+0000", "channel": {"id": "1795638187.149"}})


class FakeAsterisk:
    """Connection 1 sends two events and closes; the next `refuse` handshakes get 503; then
    connection 2 sends one event and stays open."""

    def __init__(self, refuse: int) -> None:
        self.refuse_after_drop = refuse
        self.refuse = 0
        self.paths: list[str] = []
        self.authorizations: list[str | None] = []
        self.connections = 0

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.paths.append(request.path)
        self.authorizations.append(request.headers.get("Authorization"))
        if self.refuse:
            self.refuse -= 1
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Asterisk restarting\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        if self.connections == 1:
            await ws.send(event(1))
            await ws.send(event(2))
            self.refuse = self.refuse_after_drop
            await ws.close()
        else:
            await ws.send(event(3))
            await ws.wait_closed()


def test_websocket_dropped_then_refused_then_back_reconnects_with_backoff_and_reconciles() -> None:
    async def main() -> None:
        fake = FakeAsterisk(refuse=3)
        received: list[Any] = []
        delays: list[float] = []

        async def on_message(raw: str | bytes) -> None:
            received.append(json.loads(raw)["digit"])

        async def on_connected() -> None:
            received.append("connected")
            for _ in range(3):  # reconcile does REST calls; no event may be handled meanwhile
                await asyncio.sleep(0)
            received.append("reconciled")

        async def record_delay(delay: float) -> None:
            delays.append(delay)
            await asyncio.sleep(0)

        async with serve(fake.handler, "127.0.0.1", 0, process_request=fake.process_request) as server:
            port = server.sockets[0].getsockname()[1]
            conn = AriConnection.for_app(
                f"http://127.0.0.1:{port}", "openads", "p@ss:w", "openads",
                on_message=on_message, on_connected=on_connected, sleep=record_delay,
                backoff=Backoff(initial=0.01, factor=2, maximum=1.0, jitter=0.2, rng=lambda: 0.5),
            )
            task = asyncio.create_task(conn.run())
            await until(lambda: "3" in received)

            assert received == ["connected", "reconciled", "1", "2", "connected", "reconciled", "3"]
            assert delays == [0.01, 0.02, 0.04, 0.08]
            status = conn.status
            assert (status.connected, status.connects, status.reconnects, status.failures, status.events) == (
                True, 2, 1, 3, 3)
            assert status.last_error == "handshake rejected: HTTP 503"
            assert status.since is not None and status.last_event_at is not None
            # The password goes in the handshake's Basic header, never in the URL (proxies and logs keep URLs).
            assert fake.paths == ["/ari/events?app=openads"] * 5
            assert fake.authorizations == ["Basic " + base64.b64encode(b"openads:p@ss:w").decode()] * 5
            assert conn.status.as_dict()["reconnects"] == 1

            await conn.stop()
            await asyncio.wait_for(task, timeout=5)
            assert conn.status.connected is False
            assert conn.status.connects == 2  # no reconnect after stop
            assert delays == [0.01, 0.02, 0.04, 0.08]

    asyncio.run(main())


def test_stop_interrupts_the_backoff_wait_when_asterisk_is_down() -> None:
    async def main() -> None:
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]

        async def ignore(raw: str | bytes) -> None:
            raise AssertionError("no message expected")

        conn = AriConnection.for_app(f"http://127.0.0.1:{port}", "u", "p", "openads", on_message=ignore,
                                     backoff=Backoff(initial=60.0, maximum=60.0))
        task = asyncio.create_task(conn.run())
        await until(lambda: conn.status.failures == 1)
        await conn.stop()
        await asyncio.wait_for(task, timeout=5)
        assert conn.status.connected is False and conn.status.connects == 0
        assert conn.status.last_error is not None
        assert conn.status.last_error.startswith("ConnectionRefusedError")

    asyncio.run(main())


def test_a_failing_message_handler_or_reconcile_does_not_drop_the_connection() -> None:
    async def main() -> None:
        async def handler(ws: ServerConnection) -> None:
            for n in (1, 2, 3):
                await ws.send(event(n))
            await ws.wait_closed()

        received: list[str] = []

        async def on_message(raw: str | bytes) -> None:
            digit = json.loads(raw)["digit"]
            if digit == "2":
                raise RuntimeError("boom")
            received.append(digit)

        async def on_connected() -> None:
            raise RuntimeError("GET /channels failed")

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            conn = AriConnection.for_app(f"http://127.0.0.1:{port}", "u", "p", "openads",
                                         on_message=on_message, on_connected=on_connected)
            task = asyncio.create_task(conn.run())
            await until(lambda: received == ["1", "3"])
            assert (conn.status.connected, conn.status.connects, conn.status.failures) == (True, 1, 0)
            assert conn.status.last_error == "message handler failed: RuntimeError('boom')"
            await conn.stop()
            await asyncio.wait_for(task, timeout=5)

    asyncio.run(main())


def test_events_url_follows_ari_url_scheme_and_carries_no_credentials() -> None:
    assert events_url("http://pbx:8088", "openads") == "ws://pbx:8088/ari/events?app=openads"
    assert events_url("https://pbx.example.ru/ari/", "open ads") == "wss://pbx.example.ru/ari/events?app=open%20ads"
    conn = AriConnection.for_app("http://pbx:8088", "ari", "s3cret", "openads", on_message=ignore_message)
    assert "s3cret" not in conn.url and "api_key" not in conn.url
    assert conn.headers == {"Authorization": "Basic " + base64.b64encode(b"ari:s3cret").decode()}


async def ignore_message(raw: str | bytes) -> None:
    pass


def test_backoff_grows_exponentially_with_bounded_jitter_and_a_cap() -> None:
    exact = Backoff(initial=0.5, maximum=4.0, factor=2.0, jitter=0.2, rng=lambda: 0.5)
    assert [exact.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    exact.reset()
    assert exact.next_delay() == 0.5
    low = Backoff(initial=1.0, jitter=0.2, rng=lambda: 0.0)
    high = Backoff(initial=1.0, jitter=0.2, rng=lambda: 1.0)
    assert (low.next_delay(), high.next_delay()) == (pytest.approx(0.8), pytest.approx(1.2))
