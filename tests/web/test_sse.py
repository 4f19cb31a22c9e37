"""GET /events/stream: domain events of the user's organizations, resumable after Last-Event-ID."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests import factories as f

MAX_CHUNKS = 200


@pytest.fixture(autouse=True)
def _bounded_streams(app: Any) -> None:
    """Streams end by themselves after a few seconds, so a missing event fails instead of hanging."""
    app.config.update(OPENADS_SSE_HEARTBEAT=0.5, OPENADS_SSE_MAX_SECONDS=8)


def _events(resp: Any) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Parse the stream chunk by chunk (heartbeats and comments skipped), at most MAX_CHUNKS chunks."""
    for n, chunk in enumerate(resp.response):
        assert n < MAX_CHUNKS
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        for block in text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
                          and ": " in line)
            if "event" in fields:
                yield int(fields["id"]), fields["event"], json.loads(fields["data"])


def _next_event(stream: Iterator[tuple[int, str, dict[str, Any]]]) -> tuple[int, str, dict[str, Any]]:
    event = next(stream, None)
    assert event is not None, "the stream ended without the expected event"
    return event


def _open(client: Any, **kw: Any) -> Any:
    resp = client.get("/events/stream", buffered=False, **kw)
    assert resp.status_code == 200
    assert resp.mimetype == "text/event-stream"
    return resp


def test_stream_yields_created_after_connecting(db: Any, world: Any, login_as: Any) -> None:
    with db.write() as s:
        old = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="до подключения")
    client = login_as(world.dispatcher_a)
    resp = _open(client)
    try:
        stream = _events(resp)
        with db.write() as s:
            other = f.make_ticket(s, world.org_b, world.cats_b["roof_leak"], description="чужая")
            mine = f.make_ticket(s, world.org_a, world.cats_a["sewer_blockage"], description="после")
        event_id, name, data = _next_event(stream)
        assert name == "ticket.created"
        assert data["ticket_id"] == mine.id and data["number"] == mine.number
        assert data["organization_id"] == world.org_a.id
        assert data["ticket_id"] not in (old.id, other.id)
        assert event_id >= data["event_id"]
    finally:
        resp.close()


def test_stream_skips_other_orgs_and_resumes(db: Any, world: Any, login_as: Any) -> None:
    client = login_as(world.dispatcher_a)
    resp = _open(client)
    with db.write() as s:
        first = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="первая")
    try:
        first_id, name, data = _next_event(_events(resp))
        assert name == "ticket.created" and data["ticket_id"] == first.id
    finally:
        resp.close()
    # while disconnected: other org's events, then ours
    with db.write() as s:
        for _ in range(3):
            f.make_ticket(s, world.org_b, world.cats_b["roof_leak"])
        second = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="вторая",
                               executor_id=world.executor_a.id)
    resp = _open(client, headers={"Last-Event-ID": str(first_id)})
    try:
        stream = _events(resp)
        got = [_next_event(stream), _next_event(stream)]
        assert [(n, d["ticket_id"]) for _, n, d in got] == [("ticket.created", second.id),
                                                             ("ticket.changed", second.id)]
        assert got[1][2]["action"] == "assigned"
        assert all(d["organization_id"] == world.org_a.id for _, _, d in got)
    finally:
        resp.close()
    # ?last_id= works for a first connection too
    resp = _open(client, query_string={"last_id": "0"})
    try:
        stream = _events(resp)
        ids = [_next_event(stream)[2]["ticket_id"] for _ in range(3)]
        assert ids == [first.id, second.id, second.id]
    finally:
        resp.close()


def test_centre_dispatcher_gets_both_orgs(db: Any, world: Any, login_as: Any) -> None:
    client = login_as(world.centre_dispatcher)
    resp = _open(client)
    try:
        stream = _events(resp)
        with db.write() as s:
            tb = f.make_ticket(s, world.org_b, world.cats_b["roof_leak"])
        assert _next_event(stream)[2]["ticket_id"] == tb.id
        with db.write() as s:
            ta = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"])
        assert _next_event(stream)[2]["ticket_id"] == ta.id
    finally:
        resp.close()


def test_heartbeat_and_end_of_stream(app: Any, db: Any, world: Any, login_as: Any) -> None:
    app.config.update(OPENADS_SSE_HEARTBEAT=0.05, OPENADS_SSE_MAX_SECONDS=0.3)
    client = login_as(world.dispatcher_a)
    resp = _open(client)
    chunks = []
    for chunk in resp.response:  # ends by itself after OPENADS_SSE_MAX_SECONDS
        chunks.append(chunk.decode() if isinstance(chunk, bytes) else chunk)
        assert len(chunks) < 1000
    resp.close()
    assert chunks[0].startswith("retry: ")
    assert ": ping\n\n" in chunks


def test_executor_hears_only_of_tickets_that_are_or_were_theirs(db: Any, world: Any, login_as: Any) -> None:
    from models.organization import Role
    from models.services import tickets as svc

    with db.write() as s:
        other_executor = f.make_user(s, [world.org_a], Role.EXECUTOR)
    client = login_as(world.executor_a)
    resp = _open(client)
    try:
        stream = _events(resp)
        with db.write() as s:
            f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="не его")
            mine = f.make_ticket(s, world.org_a, world.cats_a["sewer_blockage"], executor_id=world.executor_a.id)
        _, name, data = _next_event(stream)  # registered unassigned, then assigned: the assignment is news
        assert (name, data["ticket_id"], data["action"]) == ("ticket.changed", mine.id, "assigned")
        with db.write() as s:
            svc.assign_ticket(s, org=s.merge(world.org_a), ticket_id=mine.id, executor_id=other_executor.id, by=None)
            svc.add_comment(s, org=s.merge(world.org_a), ticket_id=mine.id, text="уже не его",
                            visibility=svc.Visibility.INTERNAL, by=None)
            later = f.make_ticket(s, world.org_a, world.cats_a["other"], executor_id=world.executor_a.id)
        _, name, data = _next_event(stream)  # taken away from them: they hear it, so the row can go
        assert (data["ticket_id"], data["action"], data["executor_ids"]) == (
            mine.id, "assigned", sorted([world.executor_a.id, other_executor.id]))
        _, name, data = _next_event(stream)  # the comment on the no-longer-theirs ticket is skipped
        assert (name, data["ticket_id"], data["action"]) == ("ticket.changed", later.id, "assigned")
    finally:
        resp.close()
