"""Calls API: journal, one call, the missed-call queue, closing with a reason, the compliance figure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.base import utcnow
from models.call import CallOutcome
from models.missed_call import MissedCall, MissedCallStatus
from models.organization import Role
from models.services import calls as calls_svc
from models.services.callbacks import record_callback_result, start_callback
from tests import factories as f
from tests.web.helpers import (
    API,
    check_error,
    check_missing_body,
    check_not_found,
    check_schema,
    check_unauthorized,
)


def test_calls_list_and_card(client, db, world, token_for) -> None:
    t0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    with db.write() as s:
        org_a = s.merge(world.org_a)
        ids = [f.make_inbound_call(s, org_a, f"+7916000000{i}", at=t0 + timedelta(minutes=i)).id for i in range(3)]
        calls_svc.mark_call_answered(s, org_id=org_a.id, call_id=ids[0], by=s.merge(world.dispatcher_a),
                                     at=t0 + timedelta(seconds=15))
        other = f.make_inbound_call(s, s.merge(world.org_b), "+79031112233", at=t0).id
    headers = token_for(world.dispatcher_a)
    page = client.get(f"{API}/calls?limit=2", headers=headers).get_json()
    check_schema(client, page, "CallPage")
    assert [c["id"] for c in page["items"]] == [ids[2], ids[1]] and page["next_cursor"]
    rest = client.get(f"{API}/calls?limit=2&cursor={page['next_cursor']}", headers=headers).get_json()
    assert [c["id"] for c in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    assert [c["id"] for c in client.get(f"{API}/calls?phone=89160000001", headers=headers).get_json()["items"]] == [ids[1]]
    card = client.get(f"{API}/calls/{ids[0]}", headers=headers).get_json()
    check_schema(client, card, "Call")
    assert (card["phone"], card["answered_at"], card["wait_seconds"], card["answered_by"]["id"]) == (
        "+79160000000", "2026-03-10T09:00:15Z", 15, world.dispatcher_a.id)
    check_not_found(client, "get", f"{API}/calls/{other}", headers)
    check_error(client.get(f"{API}/calls?outcome=bogus", headers=headers), 400, "invalid-input")
    check_unauthorized(client, "get", f"{API}/calls")
    check_error(client.get(f"{API}/calls", headers=token_for(world.executor_a)), 403)


def test_missed_calls_queue_and_close_with_reason(client, db, world, token_for) -> None:
    now = utcnow()
    with db.write() as s:
        org_a = s.merge(world.org_a)
        late = f.make_missed_call(s, org_a, "+79165550000", at=now - timedelta(minutes=2))
        early = f.make_missed_call(s, org_a, "+79165551111", at=now - timedelta(minutes=12))
        f.make_missed_call(s, org_a, "+79165551111", at=now - timedelta(minutes=1))  # merged
        theirs = f.make_missed_call(s, s.merge(world.org_b), "+79031112233")
    headers = token_for(world.dispatcher_a)
    queue = client.get(f"{API}/missed-calls", headers=headers).get_json()
    check_schema(client, queue, "MissedCallList")
    assert [(m["id"], m["calls_count"], m["overdue"]) for m in queue["items"]] == [(early.id, 2, True), (late.id, 1, False)]
    url = f"{API}/missed-calls/{late.id}/close"
    check_missing_body(client, "post", url, headers)
    check_error(client.post(url, json={"reason": ""}, headers=headers), 400, "invalid-input")
    check_not_found(client, "post", f"{API}/missed-calls/{theirs.id}/close", headers, json={"reason": "чужой"})
    closed = client.post(url, json={"reason": "житель пришёл в офис"}, headers=headers)
    assert closed.status_code == 200
    check_schema(client, closed.get_json(), "MissedCall")
    assert (closed.get_json()["status"], closed.get_json()["close_reason"], closed.get_json()["close_note"]) == (
        "closed", "manual", "житель пришёл в офис")
    check_error(client.post(url, json={"reason": "ещё"}, headers=headers), 409, "missed-call-closed")
    with db.read() as s:
        assert s.get(MissedCall, theirs.id).status == MissedCallStatus.OPEN
    assert [m["id"] for m in client.get(f"{API}/missed-calls", headers=headers).get_json()["items"]] == [early.id]


def _compliance_fixture(db, world) -> None:
    """Day 2026-03-10, local to each organization: org_a Moscow (UTC+3), org_b Yekaterinburg (UTC+5)."""
    u = lambda *a: datetime(*a, tzinfo=UTC)  # noqa: E731
    with db.write() as s:
        org_a, org_b = s.merge(world.org_a), s.merge(world.org_b)
        disp_a, disp_b = s.merge(world.dispatcher_a), s.merge(world.dispatcher_b)

        def callback(org, item, by, at, answered, outcome=None):
            a = start_callback(s, org_id=org.id, missed_call_id=item.id, by=by, now=at - timedelta(seconds=20))
            record_callback_result(s, org_id=org.id, attempt_id=a.id, resident_answered=answered, outcome=outcome, at=at)

        # org_a, 00:30 MSK on the 10th (21:30 UTC on the 9th): called back, answered after 5 min → in time
        m1 = f.make_missed_call(s, org_a, "+79160000001", at=u(2026, 3, 9, 21, 30), waited_seconds=30)
        callback(org_a, m1, disp_a, u(2026, 3, 9, 21, 35), True)
        # org_a, 23:50 MSK on the 10th: one failed attempt, then answered after 12 min → late
        m2 = f.make_missed_call(s, org_a, "+79160000002", at=u(2026, 3, 10, 20, 50), waited_seconds=30)
        callback(org_a, m2, disp_a, u(2026, 3, 10, 20, 53), False, CallOutcome.NO_ANSWER)
        callback(org_a, m2, disp_a, u(2026, 3, 10, 21, 2), True)
        # org_a, 00:10 MSK on the 11th: another day
        f.make_missed_call(s, org_a, "+79160000003", at=u(2026, 3, 10, 21, 10), waited_seconds=30)
        # org_a, 13:00 MSK: the resident called again after 4 min and was answered → in time (recall)
        f.make_missed_call(s, org_a, "+79160000004", at=u(2026, 3, 10, 10, 0), waited_seconds=30)
        again = f.make_inbound_call(s, org_a, "+79160000004", at=u(2026, 3, 10, 10, 4))
        calls_svc.mark_call_answered(s, org_id=org_a.id, call_id=again.id, by=disp_a, at=u(2026, 3, 10, 10, 4, 20))
        # org_b, 00:30 YEKT on the 10th (19:30 UTC on the 9th): never called back
        f.make_missed_call(s, org_b, "+79030000001", at=u(2026, 3, 9, 19, 30), waited_seconds=30)
        # org_b, 00:30 YEKT on the 11th (19:30 UTC on the 10th): another day
        n2 = f.make_missed_call(s, org_b, "+79030000002", at=u(2026, 3, 10, 19, 30), waited_seconds=30)
        callback(org_b, n2, disp_b, u(2026, 3, 10, 19, 33), True)


def test_compliance_is_exact_per_organization_and_local_day(client, db, world, token_for) -> None:
    _compliance_fixture(db, world)
    with db.write() as s:  # the report is for managers (as its panel page); this one serves both organizations
        manager = f.make_user(s, [world.org_a, world.org_b], Role.MANAGER, login="centre_manager")
    headers = token_for(manager)
    resp = client.get(f"{API}/calls/compliance?from=2026-03-10&to=2026-03-11", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    check_schema(client, body, "ComplianceList")
    got = {(d["organization_id"], d["day"]): (d["missed"], d["callback_in_time"], d["recall_in_time"],
                                              d["reached_in_time"], d["attempts"], d["share"]) for d in body["items"]}
    a, b = world.org_a.id, world.org_b.id
    assert got == {
        (a, "2026-03-10"): (3, 1, 1, 2, 3, 2 / 3),
        (a, "2026-03-11"): (1, 0, 0, 0, 0, 0.0),
        (b, "2026-03-10"): (1, 0, 0, 0, 0, 0.0),
        (b, "2026-03-11"): (1, 1, 0, 1, 1, 1.0),
    }
    only_b = client.get(f"{API}/calls/compliance?organization_id={b}&from=2026-03-10&to=2026-03-10",
                        headers=headers).get_json()
    assert [{k: d[k] for k in ("organization_id", "day", "missed", "callback_in_time", "recall_in_time",
                               "reached_in_time", "attempts", "share", "not_called_back")}
            for d in only_b["items"]] == [{"organization_id": b, "day": "2026-03-10", "missed": 1, "callback_in_time": 0,
                                           "recall_in_time": 0, "reached_in_time": 0, "attempts": 0, "share": 0.0,
                                           "not_called_back": 1}]


def test_compliance_tenant_and_input_checks(client, db, world, token_for) -> None:
    _compliance_fixture(db, world)
    headers = token_for(world.manager_a)
    mine = client.get(f"{API}/calls/compliance?from=2026-03-10&to=2026-03-10", headers=headers).get_json()
    assert [(d["organization_id"], d["missed"]) for d in mine["items"]] == [(world.org_a.id, 3)]
    check_error(client.get(f"{API}/calls/compliance?organization_id={world.org_b.id}", headers=headers), 404)
    check_error(client.get(f"{API}/calls/compliance?from=2026-03-12&to=2026-03-10", headers=headers), 400)
    check_error(client.get(f"{API}/calls/compliance?from=10.03.2026", headers=headers), 400)
    check_error(client.get(f"{API}/calls/compliance", headers=token_for(world.executor_a)), 403)
