"""A real SMTP server (aiosmtpd) on 127.0.0.1 for the outbox tests."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[return-value]

    @property
    def subject(self) -> str:
        return str(self.message["subject"])

    @property
    def body(self) -> str:
        return str(self.message.get_content()).replace("\r\n", "\n")


@dataclass
class SmtpServer:
    """Collects every message; `start()`/`stop()` to simulate the server going up and down."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    refuse_rcpt: str | None = None  # e.g. "550 5.1.1 mailbox unavailable"
    quit_reply: str | None = None  # e.g. "421 4.3.2 shutting down" instead of "221 Bye"
    drop_on_quit: bool = False  # close the connection without answering QUIT
    quit_stall: threading.Event | None = None  # hold the QUIT's answer until this is set
    controller: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.quit_stall is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.quit_stall.wait, 30)
        if self.drop_on_quit:
            server.transport.abort()
        return self.quit_reply or "221 Bye"

    def start(self) -> SmtpServer:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    try:
        yield server
    finally:
        server.stop()
