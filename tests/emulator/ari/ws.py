"""The events WebSocket (`/ari/events?app=NAME[,NAME2]&subscribeAll=...`).

As in Asterisk: no greeting on connect, events of a gap are lost (not replayed), and an app without any
connection is inactive, so `Stasis(app)` fails for new calls until it reconnects. Each connection has its
own queue and writer task, so events go out in the order the state emitted them.

An application belongs to one WebSocket at a time: when a newer one connects with the same app, the
older one gets `ApplicationReplaced` and nothing more for that app, but Asterisk leaves it open
(res/ari/ari_websockets.c removes the app from the session's list; stasis `app_update`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .state import ASTERISK_ID, iso


@dataclass
class Connection:
    apps: list[str]
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    sent: int = 0


class EventHub:
    def __init__(
        self,
        validate: Callable[[dict[str, Any]], list[str]],
        on_violation: Callable[[str], None],
        *,
        now: Callable[[], float] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.validate = validate
        self.on_violation = on_violation
        self.now = now or time.time
        self.on_event = on_event  # events the hub makes itself (ApplicationReplaced), for the history
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
        for app in apps:
            self._replace(app)
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

    def _replace(self, app: str) -> None:
        """A new WebSocket takes `app`: the connections that had it are told and lose it."""
        for old in [c for c in self.connections if app in c.apps]:
            old.apps = [a for a in old.apps if a != app]
            event = {"type": "ApplicationReplaced", "timestamp": iso(self.now()), "asterisk_id": ASTERISK_ID,
                     "application": app}
            for problem in self.validate(event):
                self.on_violation(f"event ApplicationReplaced: {problem}")
            if self.on_event is not None:
                self.on_event(event)
            old.queue.put_nowait(json.dumps(event, ensure_ascii=False))

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
