"""Issue 11, item 1: a notice the SMTP server accepted is recorded, with the time it accepted it,
and never sent again, whatever fails after the acceptance (the database write, the QUIT, the
worker itself); a retry after a lost outcome repeats the same Message-ID."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from models.base import utcnow
from models.db import Database
from models.outbox import MessageChannel, MessageStatus, OutboxMessage
from models.services.tickets import MUNICIPALITY_PURPOSE
from models.ticket import Ticket
from openads import worker
from openads.accepted_journal import AcceptedJournal
from openads.config import SmtpSettings
from openads.mailer import SmtpMailer
from tests.conftest import World
from tests.ops.conftest import SmtpServer
from tests.ops.test_worker import attempts_of, emergency_ticket, messages, senders_for


class Killed(BaseException):
    """The worker process dying: nothing after it runs (not an Exception the worker catches)."""


class KilledAfterSend:
    """The real sender, then the process dies before anything is journaled or recorded (the
    microseconds between the provider's answer and the journal's fsync): `accepted` never runs."""

    def __init__(self, inner: SmtpMailer) -> None:
        self.inner = inner

    def send(self, recipient: str, subject: str, body: str, *, key: str | None = None,
             accepted: object = None) -> str:
        self.inner.send(recipient, subject, body, key=key)
        raise Killed


@pytest.fixture
def flaky_record(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """`record_accepted` raises OperationalError while `failures_left` > 0 (the database away)."""
    state = {"failures_left": 0, "calls": 0}
    real = worker.record_accepted

    def record(*args: object, **kwargs: object) -> bool:
        state["calls"] += 1
        if state["failures_left"] > 0:
            state["failures_left"] -= 1
            raise OperationalError("UPDATE outbox_messages ...", {}, Exception("server closed the connection"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker, "record_accepted", record)
    monkeypatch.setattr(worker, "RECORD_RETRY_DELAYS", (0.0, 0.0, 0.0))
    return state


def notified_at(db: Database, ticket_id: int) -> object:
    with db.read() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None
        return ticket.municipality_notified_at


def test_when_the_record_fails_after_the_server_accepted_then_it_is_retried_and_the_mail_goes_once(
    db: Database, world: World, smtp_server: SmtpServer, flaky_record: dict[str, int]
) -> None:
    smtp_server.start()
    t0 = utcnow()
    ticket_id, _ = emergency_ticket(db, world, when=t0)
    flaky_record["failures_left"] = 2

    assert worker.deliver_due(db, senders_for(smtp_server), now=t0) == 1
    assert worker.deliver_due(db, senders_for(smtp_server), now=t0 + worker.LEASE + timedelta(minutes=1)) == 0

    assert len(smtp_server.received) == 1
    assert flaky_record["calls"] == 3
    (message,) = messages(db, purpose=MUNICIPALITY_PURPOSE)
    assert (message.status, message.sent_at, message.attempts) == (MessageStatus.SENT, t0, 1)
    assert message.provider_message_id == smtp_server.received[0].message["Message-ID"]
    assert [a.ok for a in attempts_of(db, message.id)] == [True]
    assert notified_at(db, ticket_id) == t0


def test_when_the_database_stays_away_after_the_acceptance_then_the_journal_records_it_later_with_its_time(
    db: Database, world: World, smtp_server: SmtpServer, flaky_record: dict[str, int], tmp_path: Path
) -> None:
    smtp_server.start()
    path = tmp_path / "outbox-accepted.jsonl"
    t0 = utcnow()
    ticket_id, _ = emergency_ticket(db, world, when=t0)
    flaky_record["failures_left"] = 1000  # every try of this round fails

    assert worker.deliver_due(db, senders_for(smtp_server), now=t0, journal=AcceptedJournal(path)) == 1

    (line,) = path.read_text().splitlines()
    assert json.loads(line)["at"] == t0.isoformat()
    assert messages(db, purpose=MUNICIPALITY_PURPOSE)[0].status == MessageStatus.PENDING
    # the worker restarts after the lease expired and the database is back: replayed, not re-sent
    flaky_record["failures_left"] = 0
    later = t0 + worker.LEASE + timedelta(minutes=1)
    assert worker.deliver_due(db, senders_for(smtp_server), now=later, journal=AcceptedJournal(path)) == 0

    assert len(smtp_server.received) == 1
    (message,) = messages(db, purpose=MUNICIPALITY_PURPOSE)
    assert (message.status, message.sent_at, message.attempts) == (MessageStatus.SENT, t0, 1)
    assert notified_at(db, ticket_id) == t0
    assert path.read_text() == ""


@pytest.mark.parametrize("failure", ["421 on QUIT", "connection dropped on QUIT"])
def test_when_quit_fails_after_the_message_was_accepted_then_it_counts_as_sent(
    db: Database, world: World, smtp_server: SmtpServer, failure: str
) -> None:
    if failure.startswith("421"):
        smtp_server.quit_reply = "421 4.3.2 Service shutting down"
    else:
        smtp_server.drop_on_quit = True
    smtp_server.start()
    t0 = utcnow()
    ticket_id, _ = emergency_ticket(db, world, when=t0)

    assert worker.deliver_due(db, senders_for(smtp_server), now=t0) == 1
    assert worker.deliver_due(db, senders_for(smtp_server), now=t0 + timedelta(hours=2)) == 0

    assert len(smtp_server.received) == 1
    (message,) = messages(db, purpose=MUNICIPALITY_PURPOSE)
    assert (message.status, message.sent_at, message.attempts, message.last_error) == (MessageStatus.SENT, t0, 1, "")
    assert notified_at(db, ticket_id) == t0


def test_when_the_worker_dies_after_the_acceptance_then_the_retry_repeats_the_same_message_id(
    db: Database, world: World, smtp_server: SmtpServer
) -> None:
    smtp_server.start()
    t0 = utcnow()
    emergency_ticket(db, world, when=t0)
    mailer = senders_for(smtp_server)[MessageChannel.EMAIL]

    with pytest.raises(Killed):
        worker.deliver_due(db, {MessageChannel.EMAIL: KilledAfterSend(mailer)}, now=t0)
    (message,) = messages(db, purpose=MUNICIPALITY_PURPOSE)
    key = message.idempotency_key
    assert key and message.status == MessageStatus.PENDING
    assert worker.deliver_due(db, senders_for(smtp_server), now=t0 + timedelta(minutes=1)) == 0  # leased
    retry_at = t0 + worker.LEASE + timedelta(seconds=1)
    assert worker.deliver_due(db, senders_for(smtp_server), now=retry_at) == 1

    first, second = smtp_server.received
    assert first.message["Message-ID"] == second.message["Message-ID"] == f"<{key}@alfa.example>"
    (message,) = messages(db, purpose=MUNICIPALITY_PURPOSE)
    assert (message.status, message.idempotency_key, message.provider_message_id) == (
        MessageStatus.SENT, key, f"<{key}@alfa.example>")


def test_when_the_worker_dies_while_the_server_stalls_on_quit_then_the_restarted_worker_records_it_unsent(
    db: Database, world: World, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """The acceptance is journaled at the 250 to DATA: a worker killed while the server sits on its
    QUIT (the chaos suite's stalling SMTP server) loses nothing, and no retry repeats the send."""
    release = threading.Event()
    smtp_server.quit_stall = release
    smtp_server.start()
    path = tmp_path / "outbox-accepted.jsonl"
    ticket_id, _ = emergency_ticket(db, world, when=utcnow())
    # a patient client: its QUIT waits for the server (30 s), longer than this test looks for the journal
    mailer = SmtpMailer(SmtpSettings(host="127.0.0.1", port=smtp_server.port, sender="ads@alfa.example", timeout=30))
    killed: list[BaseException] = []

    def doomed_worker() -> None:
        try:
            worker.deliver_due(db, {MessageChannel.EMAIL: mailer}, journal=AcceptedJournal(path))
        except BaseException as exc:  # noqa: BLE001 - the test's stand-in for kill -9
            killed.append(exc)

    thread = threading.Thread(target=doomed_worker, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (path.exists() and path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not release.is_set() and thread.is_alive()  # the worker still waits for QUIT's answer
    (line,) = path.read_text().splitlines()  # journaled while QUIT still waits
    accepted_at = json.loads(line)["at"]
    assert len(smtp_server.received) == 1
    # "kill -9": the first worker's database work never happens; a new worker starts after the lease
    release.set()
    thread.join(10)
    with db.write() as s:  # undo what the doomed worker managed to store after QUIT returned
        message = messages(db, purpose=MUNICIPALITY_PURPOSE)[0]
        row = s.get(OutboxMessage, message.id)
        assert row is not None
        row.status, row.sent_at, row.attempts, row.next_attempt_at = MessageStatus.PENDING, None, 0, utcnow()
        s.get(Ticket, ticket_id).municipality_notified_at = None  # type: ignore[union-attr]
    path.write_text(line + "\n")  # the journal as the killed worker left it

    assert worker.deliver_due(db, senders_for(smtp_server), journal=AcceptedJournal(path)) == 0

    assert len(smtp_server.received) == 1
    (message,) = messages(db, purpose=MUNICIPALITY_PURPOSE)
    assert message.status == MessageStatus.SENT
    assert message.sent_at.isoformat() == accepted_at
    assert notified_at(db, ticket_id) == message.sent_at


def test_the_outbox_lease_is_configured_by_env_and_a_retry_waits_for_it(
    db: Database, world: World, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openads.config import ConfigError, load_settings

    monkeypatch.setenv("OPENADS_OUTBOX_LEASE_SECONDS", "20")
    lease = timedelta(seconds=load_settings().outbox_lease_seconds)
    assert lease == timedelta(seconds=20)
    monkeypatch.setenv("OPENADS_OUTBOX_LEASE_SECONDS", "3")
    with pytest.raises(ConfigError, match="at least 10"):
        load_settings()

    smtp_server.start()
    t0 = utcnow()
    emergency_ticket(db, world, when=t0)
    mailer = senders_for(smtp_server)[MessageChannel.EMAIL]
    with pytest.raises(Killed):
        worker.deliver_due(db, {MessageChannel.EMAIL: KilledAfterSend(mailer)}, now=t0, lease=lease)
    assert worker.deliver_due(db, senders_for(smtp_server), now=t0 + lease - timedelta(seconds=1), lease=lease) == 0
    assert worker.deliver_due(db, senders_for(smtp_server), now=t0 + lease + timedelta(seconds=1), lease=lease) == 1
    assert len(smtp_server.received) == 2  # the killed try and the retry, one Message-ID
