"""A local HTTP server standing in for a provider's API: records every request exactly as it
arrived (method, path, query, headers, body) and answers with scripted replies, so contract
tests assert the request form the real API documents and feed back the real API's answers."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def params(self) -> dict[str, str]:
        """Query parameters, each given once (asserted)."""
        return _single(self.query)

    @property
    def form(self) -> dict[str, str]:
        """URL-encoded form body, each field given once (asserted)."""
        assert self.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        return _single(parse_qs(self.body.decode("ascii"), keep_blank_values=True, strict_parsing=True))


def _single(multi: dict[str, list[str]]) -> dict[str, str]:
    assert all(len(v) == 1 for v in multi.values()), multi
    return {k: v[0] for k, v in multi.items()}


@dataclass
class Reply:
    status: int = 200
    body: Any = b""  # bytes as is; str UTF-8; dict/list as JSON
    content_type: str | None = None
    hang: bool = False  # never answer (until the test ends): the client must time out

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), self.content_type or "text/plain; charset=utf-8"
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8"), self.content_type or "application/json"


@dataclass
class FakeApi:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    replies: deque[Reply] = field(default_factory=deque)
    release: threading.Event = field(default_factory=threading.Event)

    def reply(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    @property
    def last(self) -> Recorded:
        assert self.requests, "no request reached the server"
        return self.requests[-1]


@pytest.fixture
def api() -> Iterator[FakeApi]:
    state = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            split = urlsplit(self.path)
            state.requests.append(Recorded(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            ))
            reply = state.replies.popleft() if state.replies else Reply(404, {"error": "no reply scripted"})
            if reply.hang:
                state.release.wait(30)
                self.close_connection = True
                return
            data, content_type = reply.encoded()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
