"""Every route that takes an object id answers 404 for another organization's object and writes
nothing — a net under the per-resource tests, so that a new route cannot forget the tenant check.
(Sessions and API tokens belong to a user, not an organization: those of org_b's dispatcher.)"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from models.auth import UserSession
from models.base import Base, utcnow
from models.organization import Role, User
from models.rating import RatingAttempt, RatingCall, RatingCallStatus
from models.rules.access import Scope
from models.services import access
from models.services import calls as calls_svc
from models.services import telephony as telephony_svc
from models.ticket import Attachment
from tests import factories as f

ID_KINDS = ("org_id", "organization_id", "ticket_id", "house_id", "resident_id", "attachment_id", "category_id", "incident_id", "call_id",
            "missed_call_id", "recording_id", "attempt_id", "session_id", "token_id", "user_id", "phone_id",
            "job_id", "pack_id")


def _export_job(s, org, var_dir) -> int:
    """A finished journal export of `org` with its file (GET /jobs/<id>/file answers 200)."""
    from models.job import JobKind, JobStatus
    from models.services.jobs import enqueue_job

    job = enqueue_job(s, org_id=org.id, kind=JobKind.JOURNAL_EXPORT, params={"org_ids": [org.id]}, by=None)
    (var_dir / "exports").mkdir(parents=True, exist_ok=True)
    (var_dir / "exports" / f"journal-{job.id}.xlsx").write_bytes(b"PK")
    job.status, job.finished_at = JobStatus.DONE, utcnow()
    job.result = {"file": f"exports/journal-{job.id}.xlsx", "filename": "journal.xlsx", "rows": 0}
    s.flush()
    return job.id


def _pack_job(s, org, var_dir) -> int:
    """A finished inspection pack of `org` with its file (its download answers 200)."""
    from models.job import JobKind, JobStatus
    from models.services.jobs import enqueue_job

    job = enqueue_job(s, org_id=org.id, kind=JobKind.INSPECTION_PACK, params={"from": "2026-01-01", "to": "2026-01-31"},
                      by=None)
    (var_dir / "exports").mkdir(parents=True, exist_ok=True)
    (var_dir / "exports" / f"inspection-{job.id}.zip").write_bytes(b"PK")
    job.status, job.finished_at = JobStatus.DONE, utcnow()
    job.result = {"file": f"exports/inspection-{job.id}.zip", "filename": "inspection.zip", "tickets": 0}
    s.flush()
    return job.id


def _objects(db, world, org_name: str, recordings_dir, var_dir=None) -> dict[str, int]:
    org = getattr(world, org_name)
    cats = world.cats_a if org_name == "org_a" else world.cats_b
    house = world.house_a if org_name == "org_a" else world.house_b
    resident = world.resident_a if org_name == "org_a" else world.resident_b
    with db.write() as s:
        ticket = f.make_ticket(s, s.merge(org), s.merge(cats["other"]), house_id=house.id)
        attachment = Attachment(organization_id=org.id, ticket_id=ticket.id, filename="act.pdf",
                                content_type="application/pdf", size=3, storage_path="/nonexistent/act.pdf")
        s.add(attachment)
        incident = f.make_incident(s, s.merge(house))
        call = f.make_inbound_call(s, s.merge(org), "+79160000077")  # still ringing
        missed = f.make_missed_call(s, s.merge(org), "+79160000088")
        path = f"{org.id}/{missed.first_call_id}.wav"
        (recordings_dir / str(org.id)).mkdir(parents=True, exist_ok=True)
        (recordings_dir / path).write_bytes(b"RIFF0000WAVE")
        recording = calls_svc.attach_recording(s, org_id=org.id, call_id=missed.first_call_id, path=path)
        done = f.make_done_ticket(s, s.merge(org), s.merge(cats["other"]), resident_id=resident.id,
                                  executor=s.merge(world.executor_a if org_name == "org_a" else world.executor_b))
        rating_call = RatingCall(organization_id=org.id, ticket_id=done.id, phone="+79161234567", planned_at=utcnow(),
                                 status=RatingCallStatus.FAILED, attempts=1)
        s.add(rating_call)
        s.flush()
        answer = f"{org.id}/rating-{done.id}-1.wav"
        (recordings_dir / answer).write_bytes(b"RIFF0000WAVE")
        attempt = RatingAttempt(organization_id=org.id, rating_call_id=rating_call.id, ticket_id=done.id, number=1,
                                started_at=utcnow(), audio_path=answer)
        s.add(attempt)
        user = s.get(User, (world.dispatcher_a if org_name == "org_a" else world.dispatcher_b).id)
        phone = telephony_svc.add_phone(s, org=s.merge(org), by=None, changes={"endpoint": f"PJSIP/{org.id}01",
                                                                              "user_id": user.id})
        key = access.start_session(s, user=user, ip=None, user_agent="", now=utcnow())
        token = access.issue_api_token(s, user=user, scopes=(Scope.READ,), expires_at=None, now=utcnow()).token
        s.flush()
        session_id = s.scalar(select(UserSession.id).where(UserSession.user_id == user.id).order_by(
            UserSession.id.desc()))
        assert access.is_session_of(s.get(UserSession, session_id), key)
        job_id = _export_job(s, org, var_dir) if var_dir is not None else 0
        pack_id = _pack_job(s, org, var_dir) if var_dir is not None else 0
        return {"job_id": job_id, "pack_id": pack_id, "org_id": org.id, "organization_id": org.id, "session_id": session_id, "token_id": token.id,
                "ticket_id": ticket.id, "house_id": house.id, "resident_id": resident.id,
                "attachment_id": attachment.id, "category_id": cats["other"].id, "incident_id": incident.id,
                "call_id": call.id, "missed_call_id": missed.id, "recording_id": recording.id,
                "attempt_id": attempt.id, "user_id": user.id, "phone_id": phone.id}


def _id_routes(app) -> list[tuple[str, str, tuple[str, ...]]]:
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or not rule.arguments:
            continue
        names = tuple(sorted(a for a in rule.arguments if a.endswith("_id")))
        assert names and set(names) <= set(ID_KINDS), f"{rule.rule}: add its id kind to this test"
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, rule.rule, names))
    return out


def _url(rule: str, names: tuple[str, ...], objects: dict[str, int]) -> str:
    """The rule with every id of `objects` (a user's session or token under that user)."""
    url = rule
    for name in names:
        url = url.replace(f"<int:{name}>", str(objects[name]))
    url = url.replace("<any(deactivate, activate):action>", "deactivate")
    return url.replace("<any(localize, liquidate):action>", "liquidate")


def _row_counts(db) -> dict[str, int]:
    with db.read() as s:
        return {t.name: s.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def _call(client, method: str, url: str, headers: dict[str, str]) -> Any:
    if url.startswith("/api/"):
        return client.open(url, method=method, json={}, headers=headers, buffered=True)
    return client.open(url, method=method, data={}, headers=headers, buffered=True)


@pytest.mark.parametrize("via", ["panel", "api"])
def test_every_id_route_hides_another_organizations_objects(app, db, world, login_as, token_for, via,
                                                            settings) -> None:
    mine = _objects(db, world, "org_a", settings.recordings_dir, settings.var_dir)
    theirs = _objects(db, world, "org_b", settings.recordings_dir, settings.var_dir)
    with db.write() as s:  # an administrator (every route is open to them) of org_a, with every token scope
        admin = f.make_user(s, [s.merge(world.org_a)], Role.ADMIN, login="adm_a")
    client = login_as(admin)
    headers = token_for(admin, scopes="read write telephony settings") if via == "api" else {}
    routes = [r for r in _id_routes(app) if r[1].startswith("/api/") == (via == "api")]
    assert len(routes) >= (9 if via == "api" else 14)
    before = _row_counts(db)
    for method, rule, name in routes:
        resp = _call(client, method, _url(rule, name, theirs), headers)
        assert resp.status_code == 404, f"{method} {rule} with another organization's {name}: {resp.status_code}"
    assert _row_counts(db) == before, "a refused request wrote something"
    for method, rule, name in routes:
        if method == "GET" and name != ("attachment_id",):  # the attachment's file does not exist on disk
            resp = _call(client, method, _url(rule, name, mine), headers)
            assert resp.status_code == 200, f"{method} {rule} with the own {name}: {resp.status_code}"
