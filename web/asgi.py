"""The ASGI application `openads web` serves (decision 0015; the server is in
openads/commands/serve.py).

- GET /events/stream: the Flask view authenticates and takes the stream quota in a request thread
  as any view does, then leaves the stream to the process's event loop (web/sse_hub.py): an open
  panel holds no thread, so open panels cannot starve /login and the API of threads.
- Everything else: the Flask app in a pool of `threads` threads (a2wsgi).
- Request bodies are read here, in the event loop, before a thread is taken: a client that
  trickles its body (slowloris) holds a socket, not a thread. No part of a body for `read_timeout`
  seconds: 408; larger than MAX_CONTENT_LENGTH: 413. Bodies over SPOOL_BYTES wait on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from typing import IO, Any

from a2wsgi import WSGIMiddleware
from flask import Flask

from web.security import HEADERS
from web.sse import HANDOFF_KEY, STREAM_PATH, StreamRequest
from web.sse_hub import Message, Receive, Send, StreamHub, serve_stream

SPOOL_BYTES = 1 << 20
CHUNK = 64 * 1024


class BodyTimeout(Exception):
    pass


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


async def read_body(receive: Receive, limit: int | None, timeout: float) -> tuple[IO[bytes], int]:
    """The whole request body (spooled to disk past SPOOL_BYTES) and its size."""
    buf: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed by the caller)
    size = 0
    more = True
    try:
        while more:
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                raise BodyTimeout from None
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if limit is not None and size > limit:
                raise BodyTooLarge
            buf.write(chunk)
            more = message.get("more_body", False)
    except BaseException:
        buf.close()
        raise
    buf.seek(0)
    return buf, size


def replay(buf: IO[bytes], size: int) -> Receive:
    """A `receive` that hands the buffered body to the WSGI side in chunks."""
    async def receive() -> Message:
        chunk = buf.read(CHUNK)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunk) and buf.tell() < size}

    return receive


def _declared_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value)
    return None


def _with_length(scope: dict[str, Any], size: int) -> dict[str, Any]:
    """The body is whole now: a chunked request reaches Flask with a Content-Length."""
    headers = [(n, v) for n, v in scope.get("headers", ()) if n not in (b"content-length", b"transfer-encoding")]
    if size or scope.get("method") not in ("GET", "HEAD"):
        headers.append((b"content-length", str(size).encode()))
    return {**scope, "headers": headers}


async def plain(send: Send, status: int, text: str, extra: dict[str, str] | None = None) -> None:
    """A short text answer from this layer (Flask never saw the request), with the same headers."""
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
    headers += [(k.lower().encode(), v.encode()) for k, v in {**HEADERS, **(extra or {})}.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": (text + "\n").encode()})


class WebApp:
    """The panel and API (Flask in threads) with the event streams in the event loop."""

    def __init__(self, flask_app: Flask, *, threads: int, read_timeout: float) -> None:
        self.flask = flask_app
        self.wsgi = WSGIMiddleware(flask_app, workers=threads)  # type: ignore[arg-type]
        self.read_timeout = read_timeout
        self.hub = StreamHub(flask_app.extensions["openads.db"], flask_app.extensions["openads.bus"])

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # no WebSockets here
            await send({"type": "websocket.close", "code": 1008})
            return
        limit = self.flask.config.get("MAX_CONTENT_LENGTH")
        declared = _declared_length(scope)
        if limit is not None and declared is not None and declared > limit:
            await plain(send, 413, "Слишком большой запрос")
            return
        try:
            buf, size = await read_body(receive, limit, self.read_timeout)
        except BodyTimeout:
            await plain(send, 408, "Запрос не получен целиком вовремя")
            return
        except BodyTooLarge:
            await plain(send, 413, "Слишком большой запрос")
            return
        except ClientGone:
            return
        with buf:
            scope = _with_length(scope, size)
            if scope["path"] == STREAM_PATH and scope["method"] == "GET":
                await self._stream(scope, replay(buf, size), receive, send)
            else:
                await self.wsgi(scope, replay(buf, size), send)  # type: ignore[arg-type]

    async def _stream(self, scope: dict[str, Any], body: Receive, receive: Receive, send: Send) -> None:
        """The view runs in a thread (authentication, quota, what to send); its answer is kept
        back: a refusal goes out as it is, an accepted stream is served from the event loop."""
        handoff: dict[str, StreamRequest] = {}
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self.wsgi({**scope, HANDOFF_KEY: handoff}, body, keep)  # type: ignore[arg-type]
        wanted = handoff.get("stream")
        start = answer[0] if answer else None
        if wanted is not None and start is not None and start.get("status") == 200:
            headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
            await serve_stream(self.hub, wanted, headers, receive, send)
            return
        if wanted is not None:  # accepted, but the answer failed on its way out (an after_request)
            wanted.lease.release()
        for message in answer:
            await send(message)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.hub.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_web_app(settings: Any = None) -> WebApp:
    """The application of one web process (after the fork: its own engine, bus and hub)."""
    from web import create_app

    flask_app = create_app(settings)
    web = flask_app.config["OPENADS_SETTINGS"].web
    return WebApp(flask_app, threads=web.threads, read_timeout=web.read_timeout)
