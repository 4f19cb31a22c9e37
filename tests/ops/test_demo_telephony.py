"""The demo's telephony end to end: the ARI emulator as `openads demo` starts it (its own process),
`openads ari` (its own process) against it and the test database, and the call simulator page
driving the emulator — a resident's call rings, a dispatcher answers, the caller hangs up. The
emulator writes Asterisk's CDR table as a real Asterisk does, and `openads ari` reads it
(ASTERISK_CDR_URL): calls that end while it is down reach the journal and the queue."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ari_app.cdr_source import cdr_time
from models.base import utcnow
from models.call import Call, CallOutcome
from models.db import Database
from models.missed_call import MissedCall
from models.organization import Role
from models.outbox import DomainEvent
from models.rating import RatingSource, TicketRating
from models.services import ratings
from openads.commands.demo import _stop_child, start_demo_asterisk
from openads.config import Settings
from openads.demo import configure_demo_telephony
from openads.providers.speech.espeak import EspeakNg
from tests import factories as f
from tests.conftest import login

CALLER = "+79161234567"  # world.resident_a's phone
JSON = {"Accept": "application/json"}
needs_espeak = pytest.mark.skipif(not EspeakNg.available(), reason="espeak-ng not installed (apt-get install espeak-ng)")


def until(predicate: Callable[[], Any], timeout: float = 30.0, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {message}")
        time.sleep(0.05)


@pytest.fixture
def demo_asterisk(tmp_path: Path) -> Iterator[dict[str, str]]:
    emulator, env = start_demo_asterisk(tmp_path / "var", port=0)
    try:
        yield env
    finally:
        _stop_child(emulator)


def _start_ari(demo_asterisk: dict[str, str], database_url: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    """`openads ari` as `openads demo` runs it, against the demo's Asterisk and the test database."""
    env = dict(os.environ, **demo_asterisk, DATABASE_URL=database_url, OPENADS_VAR_DIR=str(tmp_path / "var"),
               OPENADS_RECORDINGS_DIR=str(tmp_path / "recordings"), OPENADS_LOG_LEVEL="WARNING",
               OPENADS_ALLOW_SQLITE="1")
    env.pop("AMI_SECRET", None)
    return subprocess.Popen([sys.executable, "-m", "openads.cli", "ari", "--status-every", "0"], env=env)


@pytest.fixture
def ari_process(demo_asterisk: dict[str, str], database_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    child = _start_ari(demo_asterisk, database_url, tmp_path)
    try:
        yield child
    finally:
        _stop_child(child)  # before the tables are cleaned: it holds database connections


def _calls(db: Database) -> list[Call]:
    with db.read() as s:
        calls = list(s.scalars(select(Call).order_by(Call.id)))
        s.expunge_all()
        return calls


def _state(env: dict[str, str]) -> dict[str, Any]:
    """The emulator's `/_emulator/state` (its controls take the demo's ARI credentials)."""
    resp = httpx.get(f"{env['ARI_URL']}/_emulator/state", auth=(env["ARI_USER"], env["ARI_PASSWORD"]), timeout=5)
    resp.raise_for_status()
    state: dict[str, Any] = resp.json()
    return state


def _emulator_channels(env: dict[str, str]) -> list[dict[str, Any]]:
    channels: list[dict[str, Any]] = _state(env)["channels"]
    return channels


def _demo_settings(settings: Settings, env: dict[str, str]) -> Settings:
    """The panel of `openads demo`: the simulator, pointed at the demo's Asterisk with its credentials."""
    return replace(settings, demo=True, ari_url=env["ARI_URL"], ari_user=env["ARI_USER"],
                   ari_password=env["ARI_PASSWORD"])


def test_simulated_call_rings_is_answered_as_a_dispatcher_and_hung_up(
        db: Database, world: Any, settings: Settings, demo_asterisk: dict[str, str],
        ari_process: subprocess.Popen[bytes]) -> None:
    from web import create_app

    with db.write() as s:  # demo-like: the dispatcher whose login names the phone PJSIP/disp1
        disp1 = f.make_user(s, [s.merge(world.org_a)], Role.DISPATCHER, login="disp1", full_name="Орлова Нина")
    [hotline] = [h for h in configure_demo_telephony(db) if h.org_id == world.org_a.id]
    assert [(p.endpoint, p.login) for p in hotline.phones] == [("PJSIP/disp1", "disp1")]
    until(lambda: any(ws["apps"] == ["openads"] for ws in
                      _state(demo_asterisk)["websockets"]),
          message="openads ari connected to the emulator")

    app = create_app(_demo_settings(settings, demo_asterisk), db, TESTING=True,
                     WTF_CSRF_ENABLED=False)
    client = app.test_client()
    assert login(client, disp1).status_code == 302
    page = client.get("/simulator/")
    assert page.status_code == 200 and "Симулятор звонков" in page.get_data(as_text=True)

    json = {"Accept": "application/json"}
    resp = client.post("/simulator/call", data={"hotline": hotline.hotlines[0], "caller": CALLER}, headers=json)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    caller_channel = resp.get_json()["result"]["id"]

    [call] = until(lambda: _calls(db), message="call row")
    assert (call.organization_id, call.phone, call.channel_id, call.answered_at) == (
        world.org_a.id, CALLER, caller_channel, None)
    with db.read() as s:
        ringing = s.scalars(select(DomainEvent).where(DomainEvent.name == "call.ringing")).one()
        assert (ringing.organization_id, ringing.payload["call_id"], ringing.payload["phone"]) == (
            world.org_a.id, call.id, CALLER)

    # The app rings disp1 after the greeting; the simulator lists it with "ответить как диспетчер disp1".
    leg = until(lambda: next((c for c in _emulator_channels(demo_asterisk) if c["name"].startswith("PJSIP/disp1-")),
                             None), message="disp1 rings")
    listed = until(lambda: "Ответить как диспетчер disp1" in (
        html := client.get("/simulator/?part=channels").get_data(as_text=True)) and html, message="listed")
    assert f'data-channel="{leg["id"]}"' in listed
    assert client.post(f"/simulator/channels/{leg['id']}/answer", headers=json).status_code == 200
    answered = until(lambda: (c := _calls(db)[0]).answered_at is not None and c, message="answered")
    assert (answered.dispatcher_endpoint, answered.answered_by_id) == ("PJSIP/disp1", disp1.id)

    assert client.post(f"/simulator/channels/{caller_channel}/hangup", headers=json).status_code == 200
    ended = until(lambda: (c := _calls(db)[0]).ended_at is not None and c, message="ended")
    assert ended.outcome == CallOutcome.ANSWERED
    until(lambda: not _emulator_channels(demo_asterisk), message="both legs gone")
    assert ari_process.poll() is None


# --- the robot's rating call, answered in the simulator -------------------------------------------


def _simulator(settings: Settings, db: Database, env: dict[str, str], user: Any) -> Any:
    from web import create_app

    app = create_app(_demo_settings(settings, env), db, TESTING=True, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    assert login(client, user).status_code == 302
    return client


def _rating_call_due(db: Database, world: Any) -> int:
    """resident_a's ticket done, its rating call due now, at any hour (the ARI process runs on the wall
    clock). Returns the ticket id."""
    now = utcnow()
    with db.write() as s:
        org = s.merge(world.org_a)
        f.make_robot_settings(s, org, call_window_start=dt_time(0, 0), call_window_end=dt_time(23, 59, 59))
        ticket = f.make_done_ticket(s, org, world.cats_a["other"], executor=s.merge(world.executor_a), now=now,
                                    resident_id=world.resident_a.id)
        call = ratings.schedule_rating_call(s, ticket=ticket, now=now)
        assert call is not None
        call.planned_at = now
        return ticket.id


def _answer_the_robot(client: Any, env: dict[str, str]) -> str:
    """The robot rings resident_a; the simulator answers for them. Returns the channel id."""
    leg = until(lambda: next((c for c in _state(env)["channels"] if c["remote_number"] == CALLER.lstrip("+")), None),
                timeout=20, message="the robot dials the resident")
    listed = client.get("/simulator/?part=channels").get_data(as_text=True)
    assert f'data-channel="{leg["id"]}"' in listed and "Житель (робот: оценка заявки)" in listed
    assert client.post(f"/simulator/channels/{leg['id']}/answer", headers=JSON).status_code == 200
    return str(leg["id"])


def _listening(env: dict[str, str], suffix: str) -> None:
    until(lambda: any(r["name"].startswith("openads-rating-") and r["name"].endswith(suffix)
                      for r in _state(env)["live_recordings"]), message=f"the robot records {suffix}")


def _say_and_end(client: Any, channel: str, words: str) -> None:
    resp = client.post(f"/simulator/channels/{channel}/say", data={"words": words}, headers=JSON)
    assert resp.status_code == 200 and resp.get_json()["message"] == f"Сказано: «{words}»", resp.get_data(as_text=True)
    assert client.post(f"/simulator/channels/{channel}/press", data={"digits": "#"}, headers=JSON).status_code == 200


def _rating(db: Database, ticket_id: int) -> TicketRating | None:
    with db.read() as s:
        rating = s.scalar(select(TicketRating).where(TicketRating.ticket_id == ticket_id))
        s.expunge_all()
        return rating


@needs_espeak  # the demo's robot speaks its prompts with espeak-ng (no SpeechKit key)
def test_the_robots_rating_call_is_answered_by_voice_in_the_simulator_and_rated_4(
        db: Database, world: Any, settings: Settings, demo_asterisk: dict[str, str],
        ari_process: subprocess.Popen[bytes]) -> None:
    assert demo_asterisk["SPEECH_RECOGNIZER"] == "fake"
    ticket_id = _rating_call_due(db, world)
    client = _simulator(settings, db, demo_asterisk, world.dispatcher_a)

    channel = _answer_the_robot(client, demo_asterisk)
    _listening(demo_asterisk, "-1")
    _say_and_end(client, channel, "четыре")

    rating = until(lambda: _rating(db, ticket_id), timeout=15, message="rating stored")
    assert (rating.value, rating.source, rating.transcript) == (4, RatingSource.SPEECH, "четыре")
    until(lambda: not _state(demo_asterisk)["channels"], message="the robot thanks and hangs up")
    assert ari_process.poll() is None


@needs_espeak
def test_words_the_robot_cannot_understand_get_asked_again_then_the_keypad_rates(
        db: Database, world: Any, settings: Settings, demo_asterisk: dict[str, str],
        ari_process: subprocess.Popen[bytes]) -> None:
    ticket_id = _rating_call_due(db, world)
    client = _simulator(settings, db, demo_asterisk, world.dispatcher_a)

    channel = _answer_the_robot(client, demo_asterisk)
    _listening(demo_asterisk, "-1")
    _say_and_end(client, channel, "не знаю")
    _listening(demo_asterisk, "-2")  # «Извините, я не расслышала...», then a second answer
    _say_and_end(client, channel, "как-нибудь потом")
    _listening(demo_asterisk, "-keys")  # «Пожалуйста, нажмите на телефоне цифру...»
    assert _rating(db, ticket_id) is None
    assert client.post(f"/simulator/channels/{channel}/press", data={"digits": "3"}, headers=JSON).status_code == 200

    rating = until(lambda: _rating(db, ticket_id), timeout=15, message="rating stored")
    assert (rating.value, rating.source, rating.transcript) == (3, RatingSource.DTMF, "не знаю / как-нибудь потом")
    assert ari_process.poll() is None


def test_simulator_is_not_served_outside_demo_mode(client: Any, world: Any, login_as: Any) -> None:
    assert login_as(world.dispatcher_a).get("/simulator/").status_code == 404


# --- calls that end while `openads ari` is down: the demo's CDR table -------------------------------


def _control(env: dict[str, str], action: str, **body: Any) -> Any:
    resp = httpx.post(f"{env['ARI_URL']}/_emulator/{action}", json=body, auth=(env["ARI_USER"], env["ARI_PASSWORD"]),
                      timeout=5)
    resp.raise_for_status()
    return resp.json()


def _connected(env: dict[str, str]) -> bool:
    return any(ws["apps"] == ["openads"] for ws in _state(env)["websockets"])


def _cdr_rows(env: dict[str, str]) -> list[dict[str, Any]]:
    path = env["ASTERISK_CDR_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM openads_cdr ORDER BY AcctId")]


def _missed(db: Database) -> list[MissedCall]:
    with db.read() as s:
        items = list(s.scalars(select(MissedCall).order_by(MissedCall.id)))
        s.expunge_all()
        return items


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else value if value.tzinfo else value.replace(tzinfo=UTC)


def test_calls_that_end_while_openads_ari_is_down_are_reconciled_from_the_demo_asterisks_cdr_table(
        db: Database, world: Any, demo_asterisk: dict[str, str], database_url: str, tmp_path: Path) -> None:
    with db.write() as s:  # demo-like: disp1 is the phone of the dispatcher with that login
        disp1 = f.make_user(s, [s.merge(world.org_a)], Role.DISPATCHER, login="disp1", full_name="Орлова Нина")
    configure_demo_telephony(db)
    assert demo_asterisk["ASTERISK_CDR_URL"] == f"sqlite:///{(tmp_path / 'var' / 'demo-asterisk' / 'master.db').resolve()}"
    assert _cdr_rows(demo_asterisk) == []  # the table is there before `openads ari` first reads it
    hotline = world.org_a.hotlines[0].lstrip("+")

    # `openads ari` is not running: Stasis() fails, the dialplan fallback rings every dispatcher.
    talk = _control(demo_asterisk, "incoming_call", did=hotline, caller=CALLER.lstrip("+"))
    until(lambda: any(c["name"].startswith("PJSIP/disp1-") for c in _emulator_channels(demo_asterisk)),
          message="the fallback rings disp1")
    _control(demo_asterisk, "answer", target="disp1")
    _control(demo_asterisk, "hangup", target="disp1")
    missed = _control(demo_asterisk, "incoming_call", did=hotline, caller="79035556677")
    _control(demo_asterisk, "hangup", channel=missed["id"])  # while the phones ring
    until(lambda: not _emulator_channels(demo_asterisk), message="both calls over")

    ari = _start_ari(demo_asterisk, database_url, tmp_path)
    try:
        calls = until(lambda: len(c := _calls(db)) == 2 and all(x.ended_at for x in c) and c, timeout=20,
                      message="both calls in the journal from the CDR table")
        by_channel = {c.channel_id: c for c in calls}
        answered, unanswered = by_channel[talk["id"]], by_channel[missed["id"]]
        assert (answered.is_fallback, answered.outcome, answered.dispatcher_endpoint, answered.answered_by_id,
                answered.phone) == (True, CallOutcome.ANSWERED, "PJSIP/disp1", disp1.id, CALLER)
        assert (unanswered.is_fallback, unanswered.outcome, unanswered.answered_at) == (
            True, CallOutcome.NO_ANSWER, None)
        [item] = _missed(db)
        assert (item.phone, item.first_call_id) == ("+79035556677", unanswered.id)

        # A caller waits in the queue when `openads ari` stops, and hangs up before it is back.
        until(lambda: _connected(demo_asterisk), message="openads ari connected")
        queued = _control(demo_asterisk, "incoming_call", did=hotline, caller=CALLER.lstrip("+"))
        until(lambda: queued["id"] in {c.channel_id for c in _calls(db)}, message="registered")
    finally:
        _stop_child(ari)
    _control(demo_asterisk, "hangup", channel=queued["id"])
    [row] = [r for r in _cdr_rows(demo_asterisk) if r["uniqueid"] == queued["id"]]
    ari = _start_ari(demo_asterisk, database_url, tmp_path)
    try:
        call = until(lambda: next((c for c in _calls(db) if c.channel_id == queued["id"] and c.ended_at), None),
                     timeout=20, message="ended by the reconcile")
    finally:
        _stop_child(ari)
    # The hangup (to the second, as Asterisk writes it; never before the call began), not the restart.
    assert _aware(call.ended_at) == max(cdr_time(row["end"]).replace(tzinfo=UTC), _aware(call.started_at))
    assert call.outcome == CallOutcome.ABANDONED
