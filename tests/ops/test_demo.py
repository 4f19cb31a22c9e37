"""The demo data: realistic volume, consistent with what the services write."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models import seals
from models.base import utcnow
from models.db import Database
from models.housing import House, Resident, ResidentPhone
from models.organization import DispatchCentre, Organization, User
from models.outbox import MessageStatus, OutboxMessage
from models.services.tickets import MUNICIPALITY_PURPOSE
from models.ticket import Incident, Ticket, TicketCounter, TicketHistory
from models.ticket import TicketStatus as S
from openads.demo import PENDING_WINDOW, load_demo

OPENADS = str(Path(sys.executable).with_name("openads"))


def count(s, model, *where) -> int:  # type: ignore[no-untyped-def]
    return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_demo_loads_a_dispatch_centre_two_companies_and_thousands_of_consistent_tickets(db: Database) -> None:
    now = utcnow()
    summary = load_demo(db, now=now)
    assert summary is not None
    print(f"\ndemo load on {db.engine.dialect.name}: {summary.seconds:.1f} s, {summary.tickets} tickets")

    with db.read() as s:
        assert [c.name for c in s.scalars(select(DispatchCentre))] == ["ОДС Центральная"]
        orgs = list(s.scalars(select(Organization).order_by(Organization.id)))
        assert [(o.short_name, o.timezone) for o in orgs] == [
            ("УК Жилкомфорт", "Europe/Moscow"), ("УК Северный квартал", "Europe/Samara")]
        assert all(o.municipality_email and o.hotlines and o.dispatch_centre_id for o in orgs)
        assert count(s, House) == 40
        assert count(s, Resident) == 3000
        assert count(s, ResidentPhone) >= 3000
        assert count(s, User) == summary.users == 16
        assert count(s, Ticket) == summary.tickets == 4000

        # numbering: per organization and year, no gaps, counter at the last number
        for org in orgs:
            numbers = sorted(s.scalars(select(Ticket.number).where(Ticket.organization_id == org.id)))
            by_year: dict[str, list[int]] = {}
            for number in numbers:
                year, seq = number.split("-")
                by_year.setdefault(year, []).append(int(seq))
            for year, seqs in by_year.items():
                assert seqs == list(range(1, len(seqs) + 1))
                counter = s.get(TicketCounter, (org.id, int(year)))
                assert counter is not None and counter.last_value == len(seqs)
            # registration order follows the numbers
            ordered = list(s.scalars(select(Ticket.number).where(Ticket.organization_id == org.id)
                                     .order_by(Ticket.registered_at, Ticket.id)))
            assert ordered == sorted(ordered)

        # every ticket has its "created" history; settled ones have the status change
        assert count(s, TicketHistory, TicketHistory.action == "created") == 4000
        closed = count(s, Ticket, Ticket.status == S.CLOSED)
        assert closed > 2500
        assert count(s, Ticket, Ticket.status == S.CLOSED, Ticket.closed_at.is_(None)) == 0
        assert count(s, TicketHistory, TicketHistory.to_status == S.CLOSED.value) == closed
        assert count(s, Ticket, Ticket.registered_at < now - timedelta(days=100)) > 500
        assert count(s, Ticket, Ticket.registered_at > now) == 0
        # some open work, some of it overdue
        assert count(s, Ticket, Ticket.status.in_([S.NEW, S.ASSIGNED, S.IN_PROGRESS])) > 10
        assert count(s, Ticket, Ticket.next_due_at < now) > 0
        # emergencies: the municipality was told of every one older than the pending window
        old_emergencies = count(s, Ticket, Ticket.is_emergency.is_(True), Ticket.registered_at < now - PENDING_WINDOW)
        assert old_emergencies > 100
        assert count(s, Ticket, Ticket.is_emergency.is_(True), Ticket.registered_at < now - PENDING_WINDOW,
                     Ticket.municipality_notified_at.is_(None)) == 0
        assert count(s, OutboxMessage, OutboxMessage.purpose == MUNICIPALITY_PURPOSE,
                     OutboxMessage.status == MessageStatus.SENT) >= old_emergencies
        # the fresh emergencies are left for the worker
        assert count(s, OutboxMessage, OutboxMessage.status == MessageStatus.PENDING,
                     OutboxMessage.purpose == MUNICIPALITY_PURPOSE) >= 2
        # accidents: one active per company, with linked tickets
        active = list(s.scalars(select(Incident).where(Incident.liquidated_at.is_(None))))
        assert sorted(i.organization_id for i in active) == [o.id for o in orgs]
        for incident in active:
            assert count(s, Ticket, Ticket.incident_id == incident.id) >= 1
        # the history, the calls over and the messages sent are all in their organization's chains
        for org in orgs:
            reports = seals.verify_all(s.connection(), org.id)
            assert all(r.intact for r in reports), [r for r in reports if not r.intact]
            assert reports[2].chain == "notices" and reports[2].rows >= old_emergencies // 2

    assert load_demo(db) is None  # a database with data is left alone


def test_openads_demo_no_serve_loads_once_and_prints_the_logins(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENADS_", "DATABASE_URL", "SMTP_"))}
    env.update(OPENADS_VAR_DIR=str(tmp_path / "var"))  # default DATABASE_URL: SQLite under var/
    first = subprocess.run([OPENADS, "demo", "--no-serve", "--tickets", "300"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "var" / "openads.sqlite3").exists()
    assert "Демо-данные загружены" in first.stdout and "заявок 300" in first.stdout
    assert "пароль у всех: «demo»" in first.stdout
    for login in ("admin", "manager1", "disp1", "centre", "exec8"):
        assert f"  {login} " in first.stdout
    again = subprocess.run([OPENADS, "demo", "--no-serve"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "В базе уже есть данные" in again.stdout


def test_the_worker_after_a_demo_load_notifies_nothing_and_reports_no_missing_events(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11, item 6: the load deletes its events but the newest; the notification consumer
    used to take the deleted ids for transactions in flight and, 5 minutes after every worker's
    start, warned that `ids [1, 2, ...] never became visible`."""
    from openads import consumers

    now = utcnow()
    assert load_demo(db, tickets=30, now=now) is not None
    with db.read() as s:
        messages = s.scalar(select(func.count()).select_from(OutboxMessage))
    caplog.set_level(logging.INFO, logger="openads.consumers")
    for moment in (now, now + consumers.GAP_WAIT + timedelta(seconds=1)):
        while consumers.consume_ticket_events(db, now=moment).more:
            pass
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    with db.read() as s:  # the demo's tickets are history: nobody is notified about them again
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == messages
