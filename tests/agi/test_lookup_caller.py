"""`lookup_caller` against the real FastAGI server on a random port and the real DB, with a socket
client playing Asterisk: it sends the agi_* header block, answers every command `200 result=1`
and records what the route asked for."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agi.server import AgiCall, AgiServer, quote
from models.db import Database
from tests import factories as f

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


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


def start_server(loop_thread: LoopThread, db: Database, **kw: Any) -> AgiServer:
    server = AgiServer(db, host="127.0.0.1", port=0, **kw)
    loop_thread.run(server.start())
    return server


@pytest.fixture
def agi(loop_thread: LoopThread, db: Database) -> Iterator[AgiServer]:
    server = start_server(loop_thread, db)
    yield server
    loop_thread.run(server.close())


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


def play_asterisk(port: int, headers: dict[str, str]) -> list[str]:
    """Connect as Asterisk does, answer each command `200 result=1`; return the commands."""
    commands: list[str] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, sock.makefile("rb") as reader:
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


def test_when_known_resident_calls_then_name_and_ids_are_set(agi: AgiServer, world: Any) -> None:
    did = world.org_a.hotlines[0]
    commands = play_asterisk(agi.port, asterisk_headers("lookup_caller", "89161234567", "s", did[1:]))

    assert variables(commands) == {
        "OPENADS_ORG_ID": str(world.org_a.id),
        "OPENADS_CALLER": "+79161234567",
        "OPENADS_RESIDENT_IDS": str(world.resident_a.id),
        "OPENADS_RESIDENT_ID": str(world.resident_a.id),
        "OPENADS_PREMISE_ID": str(world.premise_a.id),
        "OPENADS_HOUSE_ID": str(world.house_a.id),
        "CALLERID(name)": "Леонидов кв.30",  # the surname, as the caller card leads with it
        "OPENADS_AGI_STATUS": "OK",
    }
    assert commands[-1] == 'SET VARIABLE OPENADS_AGI_STATUS "OK"'  # the status comes last


def test_when_did_is_the_extension_without_argument_then_it_is_used(agi: AgiServer, world: Any) -> None:
    did = world.org_b.hotlines[0]  # the operator sends the DID as the extension: 7XXXXXXXXXX
    commands = play_asterisk(agi.port, asterisk_headers("lookup_caller", "+79031112233", did[1:]))

    got = variables(commands)
    assert got["OPENADS_ORG_ID"] == str(world.org_b.id)
    assert got["CALLERID(name)"] == "Беляева кв.7"
    assert got["OPENADS_AGI_STATUS"] == "OK"


def test_when_two_residents_share_the_number_then_both_are_named(agi: AgiServer, world: Any, db: Database) -> None:
    with db.write() as s:
        second = f.make_resident(s, world.premise_a, ("+79161234567",), full_name="Леонидова Анна Сергеевна")
    did = world.org_a.hotlines[0]
    commands = play_asterisk(agi.port, asterisk_headers("lookup_caller", "79161234567", "s", did))

    assert variables(commands) == {
        "OPENADS_ORG_ID": str(world.org_a.id),
        "OPENADS_CALLER": "+79161234567",
        "OPENADS_RESIDENT_IDS": f"{world.resident_a.id},{second.id}",
        "OPENADS_RESIDENT_ID": "",  # ambiguous: the dispatcher picks on the caller card
        "OPENADS_PREMISE_ID": str(world.premise_a.id),
        "OPENADS_HOUSE_ID": str(world.house_a.id),
        "CALLERID(name)": "Леонидов, Леонидова кв.30",
        "OPENADS_AGI_STATUS": "OK",
    }


def test_when_number_is_another_organizations_resident_then_unknown(agi: AgiServer, world: Any) -> None:
    # resident_b's number called org A's hotline: tenants never mix.
    commands = play_asterisk(agi.port, asterisk_headers("lookup_caller", "+79031112233", "s",
                                                        world.org_a.hotlines[0]))

    assert variables(commands) == {
        "OPENADS_ORG_ID": str(world.org_a.id),
        "OPENADS_CALLER": "+79031112233",
        "OPENADS_AGI_STATUS": "UNKNOWN",
    }  # CALLERID(name) left as the network sent it


def test_when_number_is_withheld_then_unknown(agi: AgiServer, world: Any) -> None:
    commands = play_asterisk(agi.port, asterisk_headers("lookup_caller", "unknown", "s", world.org_a.hotlines[0]))

    assert variables(commands) == {"OPENADS_ORG_ID": str(world.org_a.id), "OPENADS_AGI_STATUS": "UNKNOWN"}


def test_when_did_is_no_hotline_then_no_org(agi: AgiServer, world: Any) -> None:
    commands = play_asterisk(agi.port, asterisk_headers("lookup_caller", "+79161234567", "s", "+74959999999"))

    assert variables(commands) == {"OPENADS_CALLER": "+79161234567", "OPENADS_AGI_STATUS": "NO_ORG"}


def test_when_database_fails_then_status_failed(loop_thread: LoopThread, world: Any, tmp_path: Any) -> None:
    broken = Database(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'db.sqlite3'}")  # cannot be opened
    server = start_server(loop_thread, broken)
    try:
        commands = play_asterisk(server.port, asterisk_headers("lookup_caller", "+79161234567", "s",
                                                               world.org_a.hotlines[0]))
    finally:
        loop_thread.run(server.close())
        broken.dispose()

    assert commands == ['SET VARIABLE OPENADS_AGI_STATUS "FAILED"']


def test_when_database_hangs_then_failed_after_the_timeout(loop_thread: LoopThread, db: Database) -> None:
    release = threading.Event()

    async def slow(call: AgiCall) -> None:
        await call.in_db(lambda _s: release.wait(10))

    server = start_server(loop_thread, db, routes={"slow": slow}, db_timeout=0.05)
    try:
        commands = play_asterisk(server.port, asterisk_headers("slow", "+79161234567", "s"))
    finally:
        release.set()
        loop_thread.run(server.close())

    assert commands == ['SET VARIABLE OPENADS_AGI_STATUS "FAILED"']


def test_when_asterisk_rejects_a_command_then_failed_is_attempted(agi: AgiServer, world: Any) -> None:
    seen: list[str] = []
    headers = asterisk_headers("lookup_caller", "+79161234567", "s", world.org_a.hotlines[0])
    with socket.create_connection(("127.0.0.1", agi.port), timeout=10) as sock, sock.makefile("rb") as reader:
        sock.sendall(("".join(f"{k}: {v}\n" for k, v in headers.items()) + "\n").encode())
        while line := reader.readline():
            seen.append(line.decode().rstrip("\n"))
            sock.sendall(b"510 Invalid or unknown command\n")

    assert seen == [f'SET VARIABLE OPENADS_ORG_ID "{world.org_a.id}"', 'SET VARIABLE OPENADS_AGI_STATUS "FAILED"']


def test_unknown_route_closes_the_connection_without_commands(agi: AgiServer) -> None:
    assert play_asterisk(agi.port, asterisk_headers("no_such_script", "+79161234567", "s")) == []


def test_quote_escapes_for_agi() -> None:
    assert quote('Ан"на\\ 1\n') == '"Ан\\"на\\\\ 1 "'
    assert quote(None) == '""'
    assert quote(12) == '"12"'
