"""`lookup_caller` against the real FastAGI server on a random port and the real DB, with a socket
client playing Asterisk: it sends the agi_* header block, answers every command `200 result=1`
and records what the route asked for."""

from __future__ import annotations

import socket
import threading
from typing import Any

from agi.server import AgiCall, AgiServer, quote
from models.db import Database
from tests import factories as f
from tests.agi.helpers import LoopThread, asterisk_headers, play_asterisk, start_server, variables


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
