"""Connections that are no well-behaved Asterisk must not stop `openads agi` from answering the next
caller lookup: a port check's connect-and-close, a header cut off by a close, a header that never
ends, a client that trickles bytes, garbage. Each runs against the real server on a random port,
then a normal `lookup_caller` on a new connection must be answered, and the bad connection's
handler task must have ended (nothing left spinning on the server's loop).

The bounds below are liveness deadlines, generous on purpose, not speed targets."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agi.server import AgiServer
from models.db import Database
from tests.agi.helpers import LoopThread, asterisk_headers, play_asterisk, start_server, variables

LIVENESS = 5.0  # seconds: "answered at all", not "answered fast"
HEADER_TIMEOUT = 0.3  # the server's header timeout in these tests, so the slow client outlasts it quickly
HEADER_START = b"agi_network: yes\nagi_network_script: lookup_caller\nagi_channel: PJSIP/trunk-operator-00000007\n"


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=LIVENESS)


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server ends the connection (FIN or reset) without sending anything."""
    sock.settimeout(LIVENESS)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def send_until_closed(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):  # the server closed it while we were sending
        return


# --- the hostile clients: each returns once it is done (or the server has closed on it) ---------------

def connect_and_close(port: int) -> None:
    """What a TCP health check does."""
    connect(port).close()


def header_without_blank_line_then_close(port: int) -> None:
    """Asterisk (or anyone) dropping the connection mid-header."""
    with connect(port) as sock:
        sock.sendall(HEADER_START)


def two_megabytes_without_blank_line(port: int) -> None:
    """A header that never ends, on a socket left open: the server must give up on it by itself."""
    with connect(port) as sock:
        send_until_closed(sock, HEADER_START + b"agi_arg_1: " + b"x" * (2 * 1024 * 1024))
        assert closed_by_server(sock), "the server kept an oversized header's connection open"


def slow_trickle(port: int) -> None:
    """One byte every 50 ms, past the header timeout; the server must close the connection."""
    with connect(port) as sock:
        for i in range(int(LIVENESS / 0.05)):
            send_until_closed(sock, HEADER_START[i % len(HEADER_START):][:1])
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                break
        assert closed_by_server(sock), "the server kept a trickling connection open"


def garbage_then_close(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(bytes(range(256)) * 8)


def garbage_block_left_open(port: int) -> None:
    """Not UTF-8, no `name: value` lines, but a blank line: no route, so the server closes it."""
    with connect(port) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xff\xfe\n\x80\x81: \xc3\x28\n\n")
        assert closed_by_server(sock), "the server kept a garbage connection open"


def http_probe_left_open(port: int) -> None:
    """An HTTP health check (CRLF lines: never a `\\n\\n`) that waits for an answer."""
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: pbx\r\n\r\n")
        assert closed_by_server(sock), "the server kept an HTTP probe's connection open"


HOSTILE: list[Callable[[int], None]] = [
    connect_and_close, header_without_blank_line_then_close, two_megabytes_without_blank_line, slow_trickle,
    garbage_then_close, garbage_block_left_open, http_probe_left_open,
]


@pytest.fixture
def server(loop_thread: LoopThread, db: Database) -> Iterator[AgiServer]:
    agi = start_server(loop_thread, db, header_timeout=HEADER_TIMEOUT)
    yield agi
    loop_thread.run(agi.close())


def lookup(server: AgiServer, world: Any) -> dict[str, str]:
    headers = asterisk_headers("lookup_caller", "+79161234567", "s", world.org_a.hotlines[0])
    return variables(play_asterisk(server.port, headers, timeout=LIVENESS))


def no_connection_left(loop_thread: LoopThread) -> None:
    """Every connection handler on the server's loop has ended (only this check's own task is left)."""

    async def idle() -> None:
        me = asyncio.current_task()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LIVENESS
        while others := [t for t in asyncio.all_tasks() if t is not me]:
            assert loop.time() < deadline, f"connection handlers still running: {others}"
            await asyncio.sleep(0.01)

    loop_thread.run(idle(), timeout=LIVENESS + 1)


@pytest.mark.parametrize("hostile", HOSTILE, ids=[h.__name__ for h in HOSTILE])
def test_after_a_hostile_connection_the_next_lookup_is_answered(
        hostile: Callable[[int], None], server: AgiServer, loop_thread: LoopThread, world: Any) -> None:
    hostile(server.port)

    assert lookup(server, world)["OPENADS_AGI_STATUS"] == "OK"
    no_connection_left(loop_thread)
    assert server.open_connections == 0


def test_a_lookup_is_answered_while_a_client_trickles_its_header(
        server: AgiServer, loop_thread: LoopThread, world: Any) -> None:
    trickler = threading.Thread(target=slow_trickle, args=(server.port,), daemon=True)
    trickler.start()
    try:
        assert lookup(server, world)["OPENADS_AGI_STATUS"] == "OK"
    finally:
        trickler.join(LIVENESS * 2)
    no_connection_left(loop_thread)


def test_header_variables_and_arguments_are_parsed_as_panoramisk_does() -> None:
    from agi.server import parse_header

    block = (b"agi_network: yes\nagi_network_script: lookup_caller\nagi_request: agi://pbx/lookup_caller\n"
             b"agi_callerid: 79161234567\nagi_calleridname: \xc8\xe2\xe0\xed\nagi_accountcode: \n"
             b"agi_arg_1: 74951112233\nagi_arg_2: a: b\nno separator here\n")
    headers = parse_header(block)
    assert headers["agi_network_script"] == "lookup_caller"
    assert headers["agi_arg_1"] == "74951112233"
    assert headers["agi_arg_2"] == "a: b"  # split on the first ": " only
    assert headers["agi_accountcode"] == ""
    assert headers["agi_calleridname"] == "\ufffd" * 4  # a cp1251 name does not fail the lookup
    assert "no separator here" not in "".join(headers)
