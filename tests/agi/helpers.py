"""The FastAGI tests' side of the wire: the server's loop in a thread, and a socket client playing Asterisk."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from typing import Any

from agi.server import AgiServer
from models.db import Database

SET_VARIABLE = re.compile(r'^SET VARIABLE (\S+) "((?:[^"\\]|\\.)*)"$')


class LoopThread:
    """An asyncio loop in a background thread: the server runs there, the test stays synchronous."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="agi-test-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def start_server(loop_thread: LoopThread, db: Database, **kw: Any) -> AgiServer:
    server = AgiServer(db, host="127.0.0.1", port=0, **kw)
    loop_thread.run(server.start())
    return server


def asterisk_headers(script: str, callerid: str, extension: str, *args: str) -> dict[str, str]:
    """The header block Asterisk 20 sends for `AGI(agi://127.0.0.1/<script>,args...)`."""
    headers = {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1/{script}",
        "agi_channel": "PJSIP/trunk-operator-00000007",
        "agi_language": "ru",
        "agi_type": "PJSIP",
        "agi_uniqueid": "1764111600.14",
        "agi_version": "20.10.0",
        "agi_callerid": callerid,
        "agi_calleridname": "unknown",
        "agi_callingpres": "0",
        "agi_callingani2": "0",
        "agi_callington": "0",
        "agi_callingtns": "0",
        "agi_dnid": extension,
        "agi_rdnis": "unknown",
        "agi_context": "openads-from-trunk",
        "agi_extension": extension,
        "agi_priority": "4",
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": "140128385648384",
    }
    for i, arg in enumerate(args, 1):
        headers[f"agi_arg_{i}"] = arg
    return headers


def play_asterisk(port: int, headers: dict[str, str], timeout: float = 10) -> list[str]:
    """Connect as Asterisk does, answer each command `200 result=1`; return the commands.
    `timeout` bounds each wait for the server (socket.timeout → TimeoutError)."""
    commands: list[str] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock, sock.makefile("rb") as reader:
        block = "".join(f"{k}: {v}\n" for k, v in headers.items()) + "\n"
        sock.sendall(block.encode())
        while True:
            line = reader.readline()
            if not line:  # the server closes the socket when the route is done
                return commands
            commands.append(line.decode().rstrip("\n"))
            sock.sendall(b"200 result=1\n")


def variables(commands: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for command in commands:
        m = SET_VARIABLE.match(command)
        assert m, f"unexpected AGI command {command!r}"
        out[m.group(1)] = re.sub(r"\\(.)", r"\1", m.group(2))
    return out
