"""The chaos suite's mail server and SMS gateway: real servers on 127.0.0.1 that keep their own log
of every message they accepted (with the moment they accepted it), and that can stall on demand
right after accepting one, so the test can kill `openads worker` in the window between the
provider's acceptance and our record."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller

from tests.chaos.services import free_port

STALL_LIMIT = 60.0  # a stall nobody releases ends by itself


@dataclass
class Delivery:
    key: str  # Message-ID, or SMSC's id:phone
    recipient: str
    text: str
    at: float  # Unix time the server accepted it


@dataclass
class Stall:
    """Armed → the next acceptance waits (after it is logged) until `release()`; `reached` tells the
    test that a message now sits in the window."""

    armed: bool = False
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self) -> None:
        with self.lock:
            self.reached.clear()
            self.released.clear()
            self.armed = True

    def take(self) -> bool:
        with self.lock:
            if not self.armed:
                return False
            self.armed = False
            return True

    def release(self) -> None:
        with self.lock:
            self.armed = False
        self.released.set()


class ChaosSmtp:
    """aiosmtpd; a message is accepted when the server answers 250 to its DATA. A stall holds the
    following QUIT (the client has its 250 and waits to say goodbye)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.deliveries: list[Delivery] = []
        self.stall = Stall()
        self.lock = threading.Lock()
        self.controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.deliveries.append(Delivery(str(message["Message-ID"]), ",".join(envelope.rcpt_tos),
                                            str(message["Subject"]), time.time()))
        if self.stall.take():
            session.chaos_stall = True
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if getattr(session, "chaos_stall", False):
            self.stall.reached.set()
            await asyncio.get_running_loop().run_in_executor(None, self.stall.released.wait, STALL_LIMIT)
        return "221 Bye"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.stall.release()
            self.controller.stop()
            self.controller = None


class SmscServer:
    """SMSC.ru's HTTP API as far as `openads/providers/sms/smsc.py` uses it: send.php (JSON,
    client-side `id`), status.php (`-3` unknown, else delivered, with `send_timestamp`). A stall
    holds the answer to send.php after the message was accepted (logged)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.deliveries: list[Delivery] = []
        self.known: dict[str, Delivery] = {}
        self.stall = Stall()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if self.path.startswith("/sys/send.php"):
                    body = server.send(form)
                elif self.path.startswith("/sys/status.php"):
                    body = server.status(form)
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="chaos-smsc", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def send(self, form: dict[str, str]) -> dict[str, Any]:
        sms_id, phone = form.get("id", ""), form.get("phones", "")
        if not sms_id or not phone:
            return {"error": "parameters error", "error_code": 1}
        delivery = Delivery(f"{sms_id}:{phone}", phone, form.get("mes", ""), time.time())
        with self.lock:
            self.deliveries.append(delivery)
            self.known.setdefault(delivery.key, delivery)
        if self.stall.take():
            self.stall.reached.set()
            self.stall.released.wait(STALL_LIMIT)
        return {"id": int(sms_id), "cnt": 1}

    def status(self, form: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            found = self.known.get(f"{form.get('id', '')}:{form.get('phone', '')}")
        if found is None:
            return {"status": -3, "err": 0}
        stamp = int(found.at)
        return {"status": 1, "last_timestamp": stamp, "send_timestamp": stamp, "err": 0, "phone": found.recipient}

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stall.release()
        self.httpd.shutdown()
        self.httpd.server_close()
