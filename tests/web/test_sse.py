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
                yield int(fields["id"].partition("-")[0]), fields["event"], json.loads(fields["data"])


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


def test_executor_stream_withholds_failed_notices_and_calls_but_carries_incidents(db: Any, world: Any,
                                                                                 login_as: Any) -> None:
    """An allow-list (models.access.executor_sees_event): a failed notice names its recipient and
    another ticket, a call its caller; neither reaches an executor. Incidents do."""
    from models import events

    client = login_as(world.executor_a)
    resp = _open(client)
    try:
        stream = _events(resp)
        with db.write() as s:
            events.emit(s, world.org_a.id, events.OUTBOX_FAILED,
                        {"message_id": 1, "recipient": "edds@example.ru", "ticket_number": "А-000123"})
            events.emit(s, world.org_a.id, events.CALL_RINGING, {"call_id": 1, "phone": "+79161234567"})
            events.emit(s, world.org_a.id, "something.new", {"phone": "+79161234567"})
            events.emit(s, world.org_a.id, events.INCIDENT_CHANGED, {"incident_id": 7, "action": "created"})
        _, name, data = _next_event(stream)
        assert (name, data["incident_id"]) == ("incident.changed", 7)
    finally:
        resp.close()


def test_executor_stream_carries_their_own_jobs_progress_only(db: Any, world: Any, login_as: Any) -> None:
    """Background jobs (decision 0030): an executor's export shows its progress; other jobs of the
    organization (a manager's housing import) do not reach them."""
    from models import events

    client = login_as(world.executor_a)
    resp = _open(client)
    try:
        stream = _events(resp)
        with db.write() as s:
            events.emit(s, world.org_a.id, events.JOB_PROGRESS, {"job_id": 1, "kind": "housing_import",
                                                                 "requested_by_id": world.manager_a.id, "done": 5})
            events.emit(s, world.org_a.id, events.JOB_PROGRESS, {"job_id": 2, "kind": "journal_export",
                                                                 "requested_by_id": world.executor_a.id, "done": 7})
        _, name, data = _next_event(stream)
        assert (name, data["job_id"], data["done"]) == ("job.progress", 2, 7)
    finally:
        resp.close()


def test_an_open_stream_ends_when_its_session_is_signed_out(app: Any, db: Any, world: Any, login_as: Any) -> None:
    """Served from a thread (plain WSGI): "sign out everywhere" ends the open stream too; the
    browser's reconnect then gets 401."""
    from models.base import utcnow
    from models.services import access as access_svc

    app.config.update(OPENADS_SSE_HEARTBEAT=0.05, OPENADS_SSE_SESSION_CHECK=0.05, OPENADS_SSE_MAX_SECONDS=300)
    client = login_as(world.dispatcher_a)
    resp = _open(client)
    chunks = iter(resp.response)
    assert next(chunks)  # connected
    with db.write() as s:
        access_svc.end_user_sessions(s, user_id=world.dispatcher_a.id, now=utcnow())
    rest = []
    for chunk in chunks:  # ends by itself at the next session check, long before OPENADS_SSE_MAX_SECONDS
        rest.append(chunk)
        assert len(rest) < 1000
    resp.close()
    assert client.get("/events/stream").status_code == 401


def test_the_event_loop_stream_ends_when_its_session_is_signed_out(db: Any) -> None:
    """The same for a stream served by web/sse_hub.py (web/asgi.py): it asks `signed_in` from a
    thread every `session_check_seconds` and ends the response when the answer is no."""

    from web.sse import Lease, StreamLimits, StreamRequest

    answers = iter([True, False])
    limits = StreamLimits(per_user=1, per_ip=5)
    lease = limits.acquire(1, "127.0.0.1")
    assert isinstance(lease, Lease)
    wanted = StreamRequest(org_ids=[1], last_id=10**9, executor_id=None, heartbeat=0.02, max_seconds=30,
                           lease=lease, signed_in=lambda: next(answers), session_check_seconds=0.02)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    serve_hub_stream(db, wanted, send, timeout=10)
    assert sent[0]["type"] == "http.response.start"
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}  # ended, not cut
    assert isinstance(limits.acquire(1, "127.0.0.1"), Lease)  # the one lease allowed went back


def serve_hub_stream(db: Any, wanted: Any, send: Any, *, timeout: float) -> None:
    """Serve `wanted` from a fresh web/sse_hub.py hub to the ASGI `send` (a client that never
    disconnects) until the stream ends by itself; fails after `timeout` seconds."""
    import asyncio

    from openads.bus import Bus
    from web.sse_hub import StreamHub, serve_stream

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(60)
        return {"type": "http.disconnect"}

    async def main() -> None:
        hub = StreamHub(db, Bus(None))
        try:
            await asyncio.wait_for(serve_stream(hub, wanted, [], receive, send), timeout)
        finally:
            await hub.close()

    asyncio.run(main())


def _raw_ids(resp: Any, wanted: int) -> list[tuple[str, int]]:
    """(the `id:` line, the event's own id) of the next `wanted` events."""
    out: list[tuple[str, int]] = []
    for n, chunk in enumerate(resp.response):
        assert n < MAX_CHUNKS and len(out) < wanted
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        for block in text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
            if "event" in fields:
                out.append((fields["id"], json.loads(fields["data"])["event_id"]))
        if len(out) >= wanted:
            return out
    raise AssertionError(f"the stream ended after {out}")


def test_an_event_committed_late_after_a_reconnect_is_sent_once_and_nothing_twice(
    db: Any, world: Any, login_as: Any
) -> None:
    """Ids are allocated at insert, commits come in any order: a row with a smaller id can become
    visible after a larger one was sent, and after the browser reconnected. Its Last-Event-ID then
    says which ids below the one it has it got; the late row is sent, the others are not again
    (the chaos suite lost such events while the web server was killed)."""
    from sqlalchemy import func, insert, select

    from models.base import utcnow
    from models.outbox import DomainEvent

    with db.read() as s:
        base = int(s.scalar(select(func.max(DomainEvent.id))) or 0)
    late, early = base + 1, base + 2  # `late` is allocated first and commits last

    def emit(event_id: int, label: str) -> None:
        with db.write() as s:
            s.execute(insert(DomainEvent).values(id=event_id, organization_id=world.org_a.id, name="ticket.changed",
                                                 payload={"label": label}, created_at=utcnow()))

    client = login_as(world.dispatcher_a)
    resp = _open(client, headers={"Last-Event-ID": str(base)})
    try:
        emit(early, "early")
        ((position, event_id),) = _raw_ids(resp, 1)
    finally:
        resp.close()
    assert event_id == early and position.startswith(f"{early}-")  # `late` is still open below it

    emit(late, "late")  # committed while the browser was away
    emit(base + 3, "after")
    resp = _open(client, headers={"Last-Event-ID": position})
    try:
        got = _raw_ids(resp, 2)
    finally:
        resp.close()
    assert [e for _, e in got] == [late, base + 3]
    assert got[-1][0] == str(base + 3)  # nothing open below it any more: the plain id


def test_a_mangled_position_resumes_after_its_id() -> None:
    from web.sse import LOOKBACK_IDS, encode_position, parse_position

    assert parse_position("77") == parse_position("77-!!!") == parse_position("77-AAAA")
    assert parse_position("x-1") is None and parse_position("-5") is None
    position = parse_position(encode_position(300, 90, {299, 250}))
    assert position is not None and position.last_id == 300
    assert position.handled == frozenset({299, 250, *range(300 - LOOKBACK_IDS, 91)})
