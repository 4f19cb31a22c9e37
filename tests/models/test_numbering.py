"""Ticket numbers: readable, per organization and year, no gaps or duplicates under concurrency."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from models.services.tickets import TicketDraft, create_ticket
from models.ticket import Ticket


def _create(db, world, org_name: str, n: int, fail: bool = False) -> str:
    with db.write() as s:
        org = s.merge(getattr(world, org_name))
        cats = world.cats_a if org_name == "org_a" else world.cats_b
        t = create_ticket(s, org=org, draft=TicketDraft(category_id=cats["other"].id, description=f"заявка {n}"), by=None)
        if fail:
            raise RuntimeError("rolled back after numbering")
        return t.number


def test_first_number_of_the_year_and_separate_sequences_per_org(db, world) -> None:
    year = datetime.now(UTC).year
    assert _create(db, world, "org_a", 1) == f"{year}-000001"
    assert _create(db, world, "org_a", 2) == f"{year}-000002"
    assert _create(db, world, "org_b", 1) == f"{year}-000001"


def test_year_comes_from_the_organizations_local_time(session, world) -> None:
    org = session.merge(world.org_b)  # Asia/Yekaterinburg, UTC+5
    t = create_ticket(session, org=org, draft=TicketDraft(category_id=world.cats_b["other"].id, description="x",
                      registered_at=datetime(2026, 12, 31, 20, 0, tzinfo=UTC)), by=None)
    assert t.number == "2027-000001"


def test_concurrent_creation_gives_no_gaps_and_no_duplicates(db, world) -> None:
    n = 60
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: _create(db, world, "org_a" if i % 3 else "org_b", i), range(n)))
    assert len(set((i % 3 != 0, r) for i, r in enumerate(results))) == n
    with db.read() as s:
        for org in (world.org_a, world.org_b):
            numbers = sorted(s.scalars(select(Ticket.number).where(Ticket.organization_id == org.id)))
            seqs = [int(x.split("-")[1]) for x in numbers]
            assert seqs == list(range(1, len(seqs) + 1))
    assert sum(1 for i in range(n) if i % 3) == 40


def test_rolled_back_creation_gives_its_number_back(db, world) -> None:
    year = datetime.now(UTC).year
    _create(db, world, "org_a", 1)
    with pytest.raises(RuntimeError):
        _create(db, world, "org_a", 2, fail=True)
    assert _create(db, world, "org_a", 3) == f"{year}-000002"
