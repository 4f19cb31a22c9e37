"""FastAGI server (`openads agi`): one explicit route table, every route wrapped.

Asterisk connects for `AGI(agi://HOST:PORT/<route>,args...)`, sends the `agi_*` header block and
then reads our commands one by one. A route never holds a call: its DB work runs in a worker thread
under a short timeout, and on any error the wrapper sets `OPENADS_AGI_STATUS=FAILED` and returns, so
the dialplan goes on (it branches on that variable).

The header block is read here, not by panoramisk's `Application.handler`: its loop
(`while b'\n\n' not in buffer: buffer += await reader.read(100)`) never yields once the peer has
closed (`read` returns b"" at once), so one health check's connect-and-close, or Asterisk dropping a
connection mid-header, left the whole server spinning and answering nothing. `read_header` reads up
to the blank line with a size limit and a timeout, and a connection that ends, overflows or stalls
is closed on its own. The headers are parsed as panoramisk parses them; panoramisk's `Request` still
sends the commands and parses Asterisk's answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from panoramisk.fast_agi import Request

from agi.routes import lookup_caller
from models.db import Database
from openads import channel_vars as cv

log = logging.getLogger(__name__)

T = TypeVar("T")

DB_TIMEOUT = 1.5  # seconds: a lookup must not keep a caller waiting in silence
COMMAND_TIMEOUT = 2.0  # one AGI command (Asterisk answers at once unless the channel is gone)
HEADER_TIMEOUT = 5.0  # Asterisk sends the header block right after connecting
HEADER_LIMIT = 64 * 1024  # bytes; Asterisk's block is about 1 KiB (its arguments included)
ENCODING = "utf-8"


class AgiCommandError(RuntimeError):
    """Asterisk refused a command or the channel hung up meanwhile."""


class AgiCall:
    """One FastAGI request as the routes see it: headers, arguments, commands, the DB."""

    def __init__(self, request: Request, server: AgiServer) -> None:
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


def parse_header(block: bytes) -> dict[str, str]:
    """The `agi_*` variables of a header block (its lines, without the blank line), split as
    panoramisk splits them: `name: value` per line, a line without `: ` ignored. Bytes that are not
    UTF-8 (a caller name from a foreign network) become U+FFFD instead of failing the lookup."""
    lines = block.decode(ENCODING, errors="replace").split("\n")
    return dict(line.split(": ", 1) for line in lines if ": " in line)


class AgiServer:
    def __init__(self, db: Database, *, host: str = "127.0.0.1", port: int = 4573,
                 routes: Mapping[str, Route] | None = None, db_timeout: float = DB_TIMEOUT,
                 db_workers: int = 8, header_timeout: float = HEADER_TIMEOUT) -> None:
        self.db = db
        self.host = host
        self.port = port
        self.routes = dict(ROUTES if routes is None else routes)
        self.db_timeout = db_timeout
        self.header_timeout = header_timeout
        # A route's own commands and lookup are bounded more tightly; this only ends a stuck connection.
        self.route_timeout = 4 * COMMAND_TIMEOUT + db_timeout + 10
        self._endpoints = {name: self._wrap(name, route) for name, route in self.routes.items()}
        self._executor = ThreadPoolExecutor(max_workers=db_workers, thread_name_prefix="agi-db")
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def open_connections(self) -> int:
        """Connections being served now (their handler tasks have not ended)."""
        return len(self._connections)

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port=0 in tests)."""
        # `limit` bounds the header block (readuntil) and every answer line from Asterisk.
        self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=HEADER_LIMIT)
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
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            headers = await self._read_header(reader, peer)
            if headers is None:
                return
            script = headers.get("agi_network_script")
            log.debug("FastAGI request from %s for %r: %r", peer, script, headers)
            endpoint = self._endpoints.get(script or "")
            if endpoint is None:
                log.error("FastAGI request from %s for an unknown route %r", peer, script)
                return
            request = Request(app=self, headers=headers, reader=reader, writer=writer, encoding=ENCODING)
            await asyncio.wait_for(endpoint(request), self.route_timeout)
        except TimeoutError:
            log.warning("FastAGI connection from %s timed out", peer)
        except ConnectionError as exc:
            log.info("FastAGI connection from %s lost: %r", peer, exc)
        finally:
            self._connections.discard(task)
            writer.close()

    async def _read_header(self, reader: asyncio.StreamReader, peer: Any) -> dict[str, str] | None:
        """The header block up to its blank line, or None (logged) when the peer closes, overflows
        HEADER_LIMIT or is too slow: a port check, a dropped connection, something that is no Asterisk."""
        try:
            block = await asyncio.wait_for(reader.readuntil(b"\n\n"), self.header_timeout)
        except asyncio.IncompleteReadError as exc:
            log.info("FastAGI connection from %s closed before its header ended (%d bytes)", peer, len(exc.partial))
        except asyncio.LimitOverrunError:
            log.warning("FastAGI connection from %s: no end of header in %d bytes, closed", peer, HEADER_LIMIT)
        except TimeoutError:
            log.warning("FastAGI connection from %s: no complete header in %.1f s, closed", peer,
                        self.header_timeout)
        else:
            return parse_header(block[:-2])
        return None

    def _wrap(self, name: str, route: Route) -> Callable[[Request], Awaitable[None]]:
        async def endpoint(request: Request) -> None:
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
