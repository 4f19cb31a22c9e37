"""FastAGI server (`openads agi`): one explicit route table, every route wrapped.

Asterisk connects for `AGI(agi://HOST:PORT/<route>,args...)`, sends the `agi_*` header block and
then reads our commands one by one (panoramisk.fast_agi parses both). A route never holds a call:
its DB work runs in a worker thread under a short timeout, and on any error the wrapper sets
`OPENADS_AGI_STATUS=FAILED` and returns, so the dialplan goes on (it branches on that variable).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from panoramisk.fast_agi import Application

from agi.routes import lookup_caller
from models.db import Database
from openads import channel_vars as cv

log = logging.getLogger(__name__)

T = TypeVar("T")

DB_TIMEOUT = 1.5  # seconds: a lookup must not keep a caller waiting in silence
COMMAND_TIMEOUT = 2.0  # one AGI command (Asterisk answers at once unless the channel is gone)
HEADER_TIMEOUT = 5.0  # Asterisk sends the header block right after connecting


class AgiCommandError(RuntimeError):
    """Asterisk refused a command or the channel hung up meanwhile."""


class AgiCall:
    """One FastAGI request as the routes see it: headers, arguments, commands, the DB."""

    def __init__(self, request: Any, server: AgiServer) -> None:
        self._request = request
        self._server = server
        self.headers: Mapping[str, str] = request.headers

    @property
    def channel(self) -> str:
        return self.headers.get("agi_channel", "?")

    @property
    def uniqueid(self) -> str:
        return self.headers.get("agi_uniqueid", "?")

    def arg(self, n: int) -> str:
        """AGI argument n (1-based): `AGI(agi://host/route,first,second)`."""
        return self.headers.get(f"agi_arg_{n}", "")

    async def command(self, line: str) -> dict[str, Any]:
        result: dict[str, Any] = await asyncio.wait_for(self._request.send_command(line), COMMAND_TIMEOUT)
        if "error" in result:
            raise AgiCommandError(f"{line.split(' ', 2)[:2]}: {result['error']} {result.get('msg', '')}".strip())
        return result

    async def set_variable(self, name: str, value: str | int | None) -> None:
        await self.command(f"SET VARIABLE {name} {quote(value)}")

    async def in_db(self, fn: Callable[[Any], T]) -> T:
        """Run `fn(session)` on a read session in a worker thread, with a short timeout."""
        return await self._server.in_db(fn)


Route = Callable[[AgiCall], Awaitable[None]]

# The route table: script name == function name == module name (STYLE.md section 4).
ROUTES: dict[str, Route] = {
    "lookup_caller": lookup_caller.lookup_caller,
}


def quote(value: str | int | None) -> str:
    """An AGI command argument: double-quoted, with quotes and backslashes escaped, one line."""
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")
    return f'"{text}"'


class AgiServer:
    def __init__(self, db: Database, *, host: str = "127.0.0.1", port: int = 4573,
                 routes: Mapping[str, Route] | None = None, db_timeout: float = DB_TIMEOUT,
                 db_workers: int = 8) -> None:
        self.db = db
        self.host = host
        self.port = port
        self.routes = dict(ROUTES if routes is None else routes)
        self.db_timeout = db_timeout
        self._executor = ThreadPoolExecutor(max_workers=db_workers, thread_name_prefix="agi-db")
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port=0 in tests)."""
        # panoramisk's Application asks for the event loop at construction: give it the running one.
        app = Application(loop=asyncio.get_running_loop())
        for name, route in self.routes.items():
            app.add_route(name, self._wrap(name, route))
        self._app = app
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI listening on %s:%s, routes: %s", self.host, self.port, ", ".join(self.routes))
        return self.port

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def in_db(self, fn: Callable[[Any], T]) -> T:
        def work() -> T:
            with self.db.read() as session:
                return fn(session)

        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(self._executor, work), self.db_timeout)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # panoramisk reads the header block until a blank line and loops forever on a peer that
        # closes before sending one: bound it, and always close the socket.
        try:
            await asyncio.wait_for(self._app.handler(reader, writer), HEADER_TIMEOUT + 4 * COMMAND_TIMEOUT
                                   + self.db_timeout + 10)
        except TimeoutError:
            log.warning("FastAGI connection from %s timed out", writer.get_extra_info("peername"))
        finally:
            if not writer.is_closing():
                writer.close()

    def _wrap(self, name: str, route: Route) -> Callable[[Any], Awaitable[None]]:
        async def endpoint(request: Any) -> None:
            call = AgiCall(request, self)
            started = time.monotonic()
            try:
                await route(call)
            except Exception as exc:
                if isinstance(exc, AgiCommandError):
                    log.warning("agi %s channel=%s uniqueid=%s: %s", name, call.channel, call.uniqueid, exc)
                else:
                    log.exception("agi %s failed channel=%s uniqueid=%s", name, call.channel, call.uniqueid)
                try:
                    await call.set_variable(cv.AGI_STATUS, cv.AgiStatus.FAILED)
                except Exception as exc2:  # the channel may be gone: nothing more to do
                    log.info("agi %s: could not set %s=FAILED on %s: %s", name, cv.AGI_STATUS, call.channel, exc2)
            finally:
                log.info("agi %s channel=%s uniqueid=%s done in %.0f ms", name, call.channel, call.uniqueid,
                         (time.monotonic() - started) * 1000)

        return endpoint


async def serve(db: Database, host: str, port: int) -> None:
    """Run until cancelled (Ctrl+C)."""
    server = AgiServer(db, host=host, port=port)
    try:
        await server.start()
        await server.serve_forever()
    finally:
        await server.close()
