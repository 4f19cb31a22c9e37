"""The telephony's state for the administrator's status page (decision 0029): the heartbeat of
`openads ari` (`ari_status`), each dispatcher's phone online / busy / offline, the last call of
each path, and test calls to a dispatcher's phone (`test_calls`).

`openads ari` runs in another process (often on the Asterisk machine) and writes its heartbeat
every few seconds (`record_ari_status`); the panel reads it (`telephony_status`). A test call is a
row the panel writes (`request_test_call`) and the ARI app dials (`claim_test_calls`, then
`finish_test_call`), so neither needs Redis nor ARI credentials in the web process.
Emits no domain event; writes only these two tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.call import Call, CallKind, DispatcherPhone
from models.errors import DomainError
from models.organization import Organization, User
from models.services.telephony import get_phone, phones_of, ring_list
from models.telephony import TEST_CALL_OPEN, AriStatus, TestCall, TestCallStatus

STALE_BEATS = 3  # a heartbeat older than this many intervals: `openads ari` is not running
TAKE_WITHIN = timedelta(minutes=2)  # a test call not dialled by then is failed (nobody waits for it longer)
RING_AT_MOST = timedelta(minutes=5)  # a test call still "ringing" after this had its result lost (a restart)
PHONE_STATES = ("free", "ringing", "busy", "offline", "unknown")
PHONE_STATE_TITLES_RU = {"free": "свободен", "ringing": "звонит", "busy": "занят", "offline": "не в сети",
                         "unknown": "нет данных"}
# The paths a call takes, as the status page lists them.
PATHS: dict[str, str] = {
    "inbound": "входящий через ARI-приложение",
    "fallback": "входящий через резервный план диалплана",
    "callback": "перезвон жителю",
    "robot": "робот (оценка, уведомление)",
}


class TestCallRefused(DomainError):
    error_id = "test-call-refused"
    http_status = 409
    __test__ = False


# --- the heartbeat -----------------------------------------------------------------------------------------


def record_ari_status(session: Session, *, app: str, values: Mapping[str, Any], now: datetime | None = None) -> AriStatus:
    """Write the heartbeat of the ARI application `app` (one row per application name): the given
    columns of `AriStatus` and `updated_at` = now."""
    row = session.get(AriStatus, app)
    if row is None:
        row = AriStatus(app=app)
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = now or utcnow()
    session.flush()
    return row


def latest_ari_status(session: Session) -> AriStatus | None:
    """The most recent heartbeat (one `openads ari` serves every organization)."""
    return session.scalar(select(AriStatus).order_by(AriStatus.updated_at.desc()).limit(1))


def is_stale(row: AriStatus, now: datetime) -> bool:
    return now - row.updated_at > timedelta(seconds=max(1, row.interval_seconds) * STALE_BEATS)


# --- the page ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhoneState:
    phone: DispatcherPhone
    user: User | None
    state: str  # PHONE_STATES
    rung: bool  # hotline calls ring it now (it rings, and it is its user's current phone or they have none)


@dataclass(frozen=True)
class TelephonyStatus:
    ari: AriStatus | None
    running: bool  # a fresh heartbeat
    phones: list[PhoneState]
    last_calls: dict[str, Call | None]
    test_calls: list[TestCall] = field(default_factory=list)


def phone_state(ari: AriStatus | None, running: bool, endpoint: str) -> str:
    if ari is None or not running or not ari.ari_connected:
        return "unknown"
    state = (ari.endpoints or {}).get(endpoint)
    return state if state in PHONE_STATES else "offline"  # Asterisk does not know the endpoint


def last_call_of_path(session: Session, *, org_id: int, path: str) -> Call | None:
    stmt = select(Call).where(Call.organization_id == org_id)
    if path == "inbound":
        stmt = stmt.where(Call.kind == CallKind.INBOUND, Call.is_fallback.is_(False))
    elif path == "fallback":
        stmt = stmt.where((Call.kind == CallKind.FALLBACK) | Call.is_fallback.is_(True))
    elif path == "callback":
        stmt = stmt.where(Call.kind.in_([CallKind.CALLBACK, CallKind.AUTO_CALLBACK]))
    elif path == "robot":
        stmt = stmt.where(Call.kind.in_([CallKind.ROBOT, CallKind.VOICE_NOTIFICATION]))
    else:
        raise ValueError(path)
    return session.scalar(stmt.order_by(Call.started_at.desc(), Call.id.desc()).limit(1))


def telephony_status(session: Session, *, org_id: int, now: datetime | None = None) -> TelephonyStatus:
    """What the status page shows one organization: only its own phones' states (the heartbeat
    holds every endpoint Asterisk knows), its own last calls and test calls."""
    now = now or utcnow()
    ari = latest_ari_status(session)
    running = ari is not None and not is_stale(ari, now)
    phones = phones_of(session, org_id=org_id)
    rung = set(ring_list(phones))
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_([p.user_id for p in phones if p.user_id])))}
    return TelephonyStatus(
        ari=ari, running=running,
        phones=[PhoneState(p, users.get(p.user_id) if p.user_id else None, phone_state(ari, running, p.endpoint),
                           p.endpoint in rung) for p in phones],
        last_calls={path: last_call_of_path(session, org_id=org_id, path=path) for path in PATHS},
        test_calls=recent_test_calls(session, org_id=org_id),
    )


# --- test calls ----------------------------------------------------------------------------------------------


def request_test_call(session: Session, *, org: Organization, phone_id: int, by: User | None,
                      now: datetime | None = None) -> TestCall:
    """Ask `openads ari` to ring one of the organization's phones and play the test prompt.
    Another organization's phone is PhoneNotFound; a phone with a test call still open is refused."""
    now = now or utcnow()
    phone = get_phone(session, org_ids=[org.id], phone_id=phone_id)
    busy = session.scalar(select(TestCall.id).where(
        TestCall.organization_id == org.id, TestCall.endpoint == phone.endpoint,
        TestCall.status.in_(list(TEST_CALL_OPEN)), TestCall.requested_at > now - TAKE_WITHIN))
    if busy is not None:
        raise TestCallRefused("тестовый звонок на этот телефон уже идёт: дождитесь его итога", phone_id=phone_id)
    row = TestCall(organization_id=org.id, endpoint=phone.endpoint, requested_by_id=by.id if by else None,
                   requested_at=now, status=TestCallStatus.PENDING, detail="")
    session.add(row)
    session.flush()
    return row


def recent_test_calls(session: Session, *, org_id: int, limit: int = 10) -> list[TestCall]:
    return list(session.scalars(select(TestCall).where(TestCall.organization_id == org_id)
                                .order_by(TestCall.id.desc()).limit(limit)))


@dataclass(frozen=True)
class TestCallJob:
    """A test call `openads ari` dials now."""

    id: int
    organization_id: int
    endpoint: str
    channel_id: str
    caller_number: str = ""  # the organization's main hotline, shown on the phone
    __test__ = False


def open_test_calls_exist(session: Session) -> bool:
    """Cheap read for the ARI app's scheduler pass: anything to dial or to expire (every organization)."""
    return session.scalar(select(TestCall.id).where(TestCall.status.in_(list(TEST_CALL_OPEN))).limit(1)) is not None


def claim_test_calls(session: Session, *, now: datetime, new_channel_id: Callable[[], str],
                     limit: int = 10) -> list[TestCallJob]:
    """(The ARI app, every organization.) Pending test calls asked for within `TAKE_WITHIN` become
    ringing, each with its channel id; older pending ones fail (nobody dialled them in time), and
    so do ringing ones older than `RING_AT_MOST` (their result was lost, e.g. a restart)."""
    jobs: list[TestCallJob] = []
    rows = session.scalars(select(TestCall).where(TestCall.status.in_(list(TEST_CALL_OPEN)))
                           .order_by(TestCall.id).limit(200)).all()
    for row in rows:
        if row.status == TestCallStatus.PENDING and row.requested_at <= now - TAKE_WITHIN:
            _finish(row, TestCallStatus.FAILED, "openads ari не взял звонок за 2 минуты", now)
        elif row.status == TestCallStatus.RINGING and row.requested_at <= now - RING_AT_MOST:
            _finish(row, TestCallStatus.FAILED, "итог звонка не получен (перезапуск openads ari?)", now)
        elif row.status == TestCallStatus.PENDING and len(jobs) < limit:
            row.status = TestCallStatus.RINGING
            row.channel_id = new_channel_id()
            org = session.get(Organization, row.organization_id)
            hotline = org.hotlines[0] if org is not None and org.hotlines else ""
            jobs.append(TestCallJob(row.id, row.organization_id, row.endpoint, row.channel_id,
                                    hotline.lstrip("+")))
    session.flush()
    return jobs


def _finish(row: TestCall, status: TestCallStatus, detail: str, now: datetime) -> None:
    row.status = status
    row.detail = detail[:200]
    row.finished_at = now


def finish_test_call(session: Session, *, test_call_id: int, status: TestCallStatus | str, detail: str = "",
                     now: datetime | None = None) -> TestCall | None:
    """(The ARI app.) The test call's result; a call already finished keeps its first result."""
    row = session.get(TestCall, test_call_id)
    if row is None or row.status not in TEST_CALL_OPEN:
        return row
    _finish(row, TestCallStatus(status), detail, now or utcnow())
    session.flush()
    return row
