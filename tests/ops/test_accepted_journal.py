"""openads.accepted_journal: what a worker restart finds in the file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from openads.accepted_journal import Accepted, AcceptedJournal

AT = datetime(2026, 12, 6, 9, 0, 3, 250000, tzinfo=UTC)


def test_a_restarted_worker_finds_every_unsettled_acceptance_and_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    first = AcceptedJournal(path)
    first.add(Accepted(7, AT, "<openads.7.ab@alfa.example>", "sent, id <openads.7.ab@alfa.example>"))
    first.add(Accepted(8, AT, "4242:79161234567", "sent, id 4242:79161234567"))
    first.settle([7])
    with open(path, "a") as f:
        f.write('{"message_id": 9, "at": "2026-')  # killed mid-write
    restarted = AcceptedJournal(path)
    restarted.add(Accepted(10, AT, "4243:79161234567", "sent, id 4243:79161234567"))

    assert [e.message_id for e in AcceptedJournal(path).pending()] == [8, 10]
    assert AcceptedJournal(path).pending()[0] == Accepted(8, AT, "4242:79161234567", "sent, id 4242:79161234567")
    AcceptedJournal(path).settle([8, 10])
    assert AcceptedJournal(path).pending() == []
