"""The events WebSocket (`/ari/events?app=NAME[,NAME2]&subscribeAll=...`).

As in Asterisk: no greeting on connect, events of a gap are lost (not replayed), and an app without any
connection is inactive, so `Stasis(app)` fails for new calls until it reconnects. Each connection has its
own queue and writer task, so events go out in the order the state emitted them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class Connection:
    apps: list[str]
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    sent: int = 0


class EventHub:
    def __init__(self, validate: Callable[[dict[str, Any]], list[str]], on_violation: Callable[[str], None]) -> None:
        self.validate = validate
        self.on_violation = on_violation
        self.connections: list[Connection] = []
        self.dropped: list[dict[str, Any]] = []  # events emitted while their app had no connection

    def active(self, app: str) -> bool:
        return any(app in c.apps for c in self.connections)

    def publish(self, app: str, event: dict[str, Any]) -> None:
        """Called synchronously by the state (on the loop thread)."""
        for problem in self.validate(event):
            self.on_violation(f"event {event.get('type')}: {problem}")
        self.send_raw(app, json.dumps(event, ensure_ascii=False), event)

    def send_raw(self, app: str | None, text: str, event: dict[str, Any] | None = None) -> int:
        targets = [c for c in self.connections if app is None or app in c.apps]
        if not targets and event is not None:
            self.dropped.append(event)
        for conn in targets:
            conn.queue.put_nowait(text)
        return len(targets)

    async def drop_all(self) -> int:
        conns = list(self.connections)
        for conn in conns:
            conn.queue.put_nowait(None)
            await conn.ws.close(code=1001, message=b"emulator dropped the connection")
        self.connections = [c for c in self.connections if c not in conns]
        return len(conns)

    async def handle(self, request: web.Request, apps: list[str]) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        conn = Connection(apps, ws)
        self.connections.append(conn)
        writer = asyncio.ensure_future(self._writer(conn))
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            if conn in self.connections:
                self.connections.remove(conn)
            conn.queue.put_nowait(None)
            await writer
        return ws

    async def _writer(self, conn: Connection) -> None:
        while True:
            text = await conn.queue.get()
            if text is None or conn.ws.closed:
                return
            try:
                await conn.ws.send_str(text)
                conn.sent += 1
            except (ConnectionError, RuntimeError):
                return
