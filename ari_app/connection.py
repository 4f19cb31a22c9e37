"""The ARI event WebSocket: connect, read, reconnect with backoff, report health.

`ws(s)://HOST/ari/events?app=NAME` registers the Stasis application while the socket is open
(the credentials go in the handshake's `Authorization: Basic` header, never in the URL, where
proxies and Asterisk's own HTTP debug log would keep them) (a `Stasis(NAME,...)` in the dialplan fails while it is closed, which is what the
dialplan fallback relies on). Asterisk does not replay events missed during a gap (traces
websocket_reconnect_mid_call: the bridge playback's events from the gap never arrived), so every
(re)connect calls the `on_connected` hook *before* the first event is read: the app re-reads
GET /channels and /bridges there and re-attaches its sessions (STYLE.md §3, calld `ari_.py` `run`).

One application, one WebSocket: when another process connects with the same app name, Asterisk sends
the older socket `ApplicationReplaced` and no more events (it leaves the socket open). The app then
calls `replaced()`: the connection is closed, reported unhealthy and **not** reopened. Reconnecting
would take the application back from the newer process, which would take it back in turn: the two
would keep stealing each other's calls mid-conversation, each missing the other's events. The newest
process owns the application (a deploy that starts the new service before stopping the old one hands
over cleanly); the replaced one stays up only to show why it is idle (`status.replaced`, the error in
the log and the status line) until the operator stops it or restarts it to take the application back.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from ari_app.client import basic_auth, rest_base_url

log = logging.getLogger(__name__)

MessageHandler = Callable[[str | bytes], Awaitable[None]]
ConnectedHook = Callable[[], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


def events_url(ari_url: str, app: str) -> str:
    """ARI_URL (http or https, with or without /ari) → the events WebSocket URL (no credentials)."""
    parts = urlsplit(rest_base_url(ari_url))
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"ARI_URL must start with http:// or https://, got {ari_url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path + "/events", f"app={quote(app, safe='')}", ""))


@dataclass
class Backoff:
    """Exponential backoff with ± `jitter` (a fraction): initial, initial*factor, ... capped at `maximum`.

    The jitter spreads reconnects of several processes after an Asterisk restart.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    rng: Callable[[], float] = random.random
    attempt: int = 0

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * self.factor ** self.attempt)
        self.attempt += 1
        return max(0.0, base * (1 - self.jitter + 2 * self.jitter * self.rng()))

    def reset(self) -> None:
        self.attempt = 0


def _describe(exc: BaseException) -> str:
    if isinstance(exc, InvalidStatus):
        return f"handshake rejected: HTTP {exc.response.status_code}"
    if isinstance(exc, ConnectionClosed):
        return f"connection lost: {exc}"
    if isinstance(exc, WebSocketException | OSError | TimeoutError):
        return f"{type(exc).__name__}: {exc}"
    return repr(exc)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ConnectionStatus:
    """Health of the event connection, for `/status`."""

    connected: bool = False
    since: datetime | None = None  # when `connected` last changed
    connects: int = 0  # successful connections, the first one included
    reconnects: int = 0  # successful connections after the first
    failures: int = 0  # failed connection attempts
    events: int = 0  # messages received
    last_event_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    replaced: bool = False  # another WebSocket took the application: not reconnecting (module docstring)

    @property
    def healthy(self) -> bool:
        return self.connected and not self.replaced

    def as_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "healthy": self.healthy,
            "connected": self.connected,
            "replaced": self.replaced,
            "since": iso(self.since),
            "connects": self.connects,
            "reconnects": self.reconnects,
            "failures": self.failures,
            "events": self.events,
            "last_event_at": iso(self.last_event_at),
            "last_error": self.last_error,
            "last_error_at": iso(self.last_error_at),
        }


class AriConnection:
    """Keeps the event WebSocket open until `stop()`.

    `on_message` gets every text frame as received (the dispatcher validates it); `on_connected`
    runs after each successful handshake, before reading (reconcile). An exception in either is
    logged and recorded in `status.last_error`; it does not drop the connection.
    `headers` go with every handshake (the credentials: `for_app` puts them there).
    `sleep` is injectable for tests; by default the backoff wait ends early on `stop()`.
    """

    def __init__(
        self,
        url: str,
        *,
        on_message: MessageHandler,
        headers: Mapping[str, str] | None = None,
        on_connected: ConnectedHook | None = None,
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        sleep: Sleep | None = None,
    ) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.on_message = on_message
        self.on_connected = on_connected
        self.backoff = backoff or Backoff()
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.status = ConnectionStatus()
        self._sleep = sleep
        self._stopping = asyncio.Event()
        self._ws: Any = None

    @classmethod
    def for_app(cls, ari_url: str, user: str, password: str, app: str, **kwargs: Any) -> AriConnection:
        return cls(events_url(ari_url, app), headers=basic_auth(user, password), **kwargs)

    async def stop(self) -> None:
        """Close the socket and make `run()` return (no reconnect)."""
        self._stopping.set()
        ws = self._ws
        if ws is not None:
            await ws.close()

    def replaced(self, reason: str) -> None:
        """Another WebSocket took the application (ApplicationReplaced): stop reading after the current
        message, close the socket and do not reconnect (module docstring). Logged as an error."""
        if self.status.replaced:
            return
        self.status.replaced = True
        self.status.last_error = f"application replaced: {reason}; not reconnecting"
        self.status.last_error_at = _now()
        log.error("ARI events: %s: another `openads ari` (or another ARI client) connected with the same "
                  "application name and now gets its calls; this process stays idle until restarted", reason)
        self._stopping.set()

    async def run(self) -> None:
        """Connect and read until `stop()` or `replaced()`; reconnect with backoff on any other failure."""
        while not self._stopping.is_set():
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, handshake rejected, timeout, dropped
                self._note_error(_describe(exc), failure=not self.status.connected)
            finally:
                self._set_disconnected()
            if self._stopping.is_set():
                break
            delay = self.backoff.next_delay()
            log.info("ARI events: reconnecting in %.2f s", delay)
            await self._wait(delay)
        log.info("ARI events: stopped")

    async def _run_once(self) -> None:
        log.info("ARI events: connecting to %s", self.url)
        async with connect(
            self.url, additional_headers=self.headers, open_timeout=self.open_timeout,
            ping_interval=self.ping_interval, max_size=None,
        ) as ws:
            self._ws = ws
            if self._stopping.is_set():
                return
            self.backoff.reset()
            self._set_connected()
            if self.on_connected is not None:
                try:
                    await self.on_connected()
                except Exception as exc:
                    log.exception("ARI events: on_connected hook failed")
                    self._note_error(f"on_connected hook failed: {exc!r}", failure=False)
            async for message in ws:
                self.status.events += 1
                self.status.last_event_at = _now()
                try:
                    await self.on_message(message)
                except Exception as exc:
                    log.exception("ARI events: message handler failed")
                    self._note_error(f"message handler failed: {exc!r}", failure=False)
                if self.status.replaced:
                    return  # leaving `connect` closes the socket
        # The server closed the socket cleanly (Asterisk stopping).
        if not self._stopping.is_set():
            self._note_error("connection closed by server", failure=False)

    def _set_connected(self) -> None:
        status = self.status
        status.connected = True
        status.since = _now()
        status.connects += 1
        if status.connects > 1:
            status.reconnects += 1
        log.info("ARI events: connected (connection %d)", status.connects)

    def _set_disconnected(self) -> None:
        self._ws = None
        if self.status.connected:
            self.status.connected = False
            self.status.since = _now()
            log.warning("ARI events: disconnected")

    def _note_error(self, text: str, *, failure: bool) -> None:
        if failure:
            self.status.failures += 1
        self.status.last_error = text
        self.status.last_error_at = _now()
        log.warning("ARI events: %s", text)

    async def _wait(self, delay: float) -> None:
        if self._sleep is not None:
            await self._sleep(delay)
            return
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        except TimeoutError:
            pass
