"""An organization's telephony as an administrator sets it: the settings (wait limit, ring
strategy and retry delay, voice messages, auto-callback and its delay, music on hold, the
announcement texts) and the dispatchers' phones (whose each is, whether it rings, in what order,
a user's current phone). The panel, `/api/v1/admin/telephony` and `openads telephony` call these
functions; the ARI app reads the result at every call (`ari_app/db.py ring_plan`), so a change
takes effect from the next call without a restart.

The ring list `telephony_settings.dispatcher_endpoints` is derived here from the phones and
written by `_sync_ring_list` only: the phones that ring, by position, and of a user with a current
phone only that one. Every changed value is one audit row (models/services/audit.py): object
`telephony_settings` for the settings and the ring list, `dispatcher_phone` for a phone.
Emits no domain event: settings take effect for the next call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.call import DispatcherPhone, TelephonySettings, default_telephony_settings
from models.errors import NotFound, ValidationFailed
from models.organization import Membership, Organization, Role, User
from models.rules import telephony as rules
from models.rules.audit import field_title
from models.rules.telephony import ENDPOINT_RE as ENDPOINT_RE
from models.rules.telephony import MAX_RETENTION_DAYS as MAX_RETENTION_DAYS
from models.services import audit
from models.services.audit import Actor

SETTINGS_OBJECT = "telephony_settings"
PHONE_OBJECT = "dispatcher_phone"
TELEPHONY_AUDIT_FIELDS = (
    "wait_limit_seconds", "auto_callback", "recording_retention_days", "dispatcher_endpoints", "ring_strategy",
    "ring_retry_seconds", "voicemail_enabled", "auto_callback_delay_seconds", "moh_class", "greeting_text",
    "voicemail_offer_text",
)
# What `update_telephony` takes (the ring list is the phones' business; the retention the organization page's).
EDITABLE = ("wait_limit_seconds", "ring_strategy", "ring_retry_seconds", "voicemail_enabled", "auto_callback",
            "auto_callback_delay_seconds", "moh_class", "greeting_text", "voicemail_offer_text",
            "recording_retention_days")
PHONE_FIELDS = ("endpoint", "user_id", "rings", "is_current")
PHONE_ROLES = (Role.ADMIN, Role.MANAGER, Role.DISPATCHER)


class PhoneNotFound(NotFound):
    error_id = "dispatcher-phone-not-found"


def _field_errors(object_type: str, errors: dict[str, str]) -> ValidationFailed:
    fields = [{"field": name, "message": message} for name, message in errors.items()]
    summary = "; ".join(f"{field_title(object_type, name)}: {message}" for name, message in errors.items())
    return ValidationFailed(f"Проверьте поля: {summary}", field=fields[0]["field"], fields=fields)


# --- settings ------------------------------------------------------------------------------------------


def telephony_settings(session: Session, org_id: int) -> TelephonySettings:
    """The organization's settings, or the defaults (a transient row) when none were saved."""
    return session.get(TelephonySettings, org_id) or default_telephony_settings(org_id)


def _settings_row(session: Session, org: Organization) -> TelephonySettings:
    row = session.get(TelephonySettings, org.id)
    if row is None:
        row = default_telephony_settings(org.id)
        session.add(row)
    return row


_CHECKS: dict[str, Any] = {
    "wait_limit_seconds": rules.wait_limit,
    "ring_strategy": rules.ring_strategy,
    "ring_retry_seconds": rules.ring_retry,
    "voicemail_enabled": rules.flag,
    "auto_callback": rules.flag,
    "auto_callback_delay_seconds": rules.auto_callback_delay,
    "moh_class": rules.moh_class,
    "greeting_text": rules.announcement,
    "voicemail_offer_text": rules.announcement,
    "recording_retention_days": rules.retention_days,
}


def update_telephony(
    session: Session, *, org: Organization, changes: Mapping[str, Any], by: Actor | User | None,
    now: datetime | None = None,
) -> TelephonySettings:
    """Change the given settings (keys of `EDITABLE`, values as typed: numbers as text or int,
    switches as bool or "1"/"", an empty retry delay, music class or text for the default). Every
    problem is one ValidationFailed listing each field (`details["fields"]`), and then nothing
    changes. Every changed field is one audit row."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ValidationFailed("эти поля нельзя изменить: " + ", ".join(unknown), field=unknown[0],
                               fields=[{"field": name, "message": "неизвестное поле"} for name in unknown])
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, value in changes.items():
        try:
            clean[name] = _CHECKS[name](value)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise _field_errors(SETTINGS_OBJECT, errors)
    row = _settings_row(session, org)
    before = audit.snapshot(row, TELEPHONY_AUDIT_FIELDS)
    for name, value in clean.items():
        setattr(row, name, value)
    return _saved(session, org, row, before, by, now)


def _saved(session: Session, org: Organization, row: TelephonySettings, before: dict[str, Any],
           by: Actor | User | None, now: datetime | None) -> TelephonySettings:
    row.updated_at = now or utcnow()
    actor = audit.as_actor(by)
    row.updated_by_id = actor.user.id if actor.user else None
    session.flush()
    audit.record_changes(session, by=actor, organization_id=org.id, object_type=SETTINGS_OBJECT, object_id=org.id,
                         object_label=org.short_name, before=before,
                         after=audit.snapshot(row, TELEPHONY_AUDIT_FIELDS), now=row.updated_at)
    return row


def update_telephony_settings(
    session: Session, *, org: Organization, by: Actor | User | None, wait_limit_seconds: int | None = None,
    auto_callback: bool | None = None, recording_retention_days: int | None = None,
    dispatcher_endpoints: list[str] | None = None, ring_strategy: str | None = None, now: datetime | None = None,
) -> TelephonySettings:
    """The older keyword form (None: unchanged), for the demo, the organization page and scripts.
    `dispatcher_endpoints` sets which phones ring, in this order (`set_ring_list`). Raises
    ValidationFailed with the first wrong field as before."""
    changes: dict[str, Any] = {}
    for name, value in (("wait_limit_seconds", wait_limit_seconds), ("auto_callback", auto_callback),
                        ("recording_retention_days", recording_retention_days), ("ring_strategy", ring_strategy)):
        if value is not None:
            changes[name] = value
    row = update_telephony(session, org=org, changes=changes, by=by, now=now)
    if dispatcher_endpoints is not None:
        set_ring_list(session, org=org, endpoints=dispatcher_endpoints, by=by, now=now)
    return row


# --- phones ----------------------------------------------------------------------------------------------


def phones_of(session: Session, *, org_id: int) -> list[DispatcherPhone]:
    """The organization's phones: those that ring in their order, then the others by endpoint."""
    rows = session.scalars(select(DispatcherPhone).where(DispatcherPhone.organization_id == org_id)).all()
    return sorted(rows, key=lambda p: (not p.rings, p.position if p.rings else 0, p.endpoint, p.id))


def get_phone(session: Session, *, org_ids: Sequence[int], phone_id: int) -> DispatcherPhone:
    """One phone of the given organizations; another organization's (or none) is PhoneNotFound."""
    phone = session.scalar(select(DispatcherPhone).where(DispatcherPhone.id == phone_id,
                                                         DispatcherPhone.organization_id.in_(list(org_ids))))
    if phone is None:
        raise PhoneNotFound("телефон не найден", phone_id=phone_id)
    return phone


def phone_users(session: Session, *, org_id: int) -> list[User]:
    """Who may have a dispatcher's phone in the organization (its dispatchers, managers and
    administrators, active ones), by name."""
    return list(session.scalars(
        select(User).join(Membership, Membership.user_id == User.id)
        .where(Membership.organization_id == org_id, User.role.in_(PHONE_ROLES), User.is_active.is_(True))
        .order_by(User.full_name, User.id)
    ))


def _user_label(user: User | None) -> str | None:
    return None if user is None else f"{user.full_name} ({user.login})"


def _phone_values(session: Session, phone: DispatcherPhone | None) -> dict[str, Any]:
    if phone is None:
        return {}
    user = session.get(User, phone.user_id) if phone.user_id is not None else None
    return {"endpoint": phone.endpoint, "user": _user_label(user), "rings": phone.rings, "is_current": phone.is_current}


def _member_user(session: Session, org_id: int, raw: Any) -> User | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        user_id = int(raw)
    except (TypeError, ValueError):
        raise ValueError("выберите пользователя из списка") from None
    user = session.scalar(
        select(User).join(Membership, Membership.user_id == User.id)
        .where(User.id == user_id, Membership.organization_id == org_id)
    )
    if user is None:  # another organization's user is "not found" too (tenant isolation)
        raise ValueError("пользователь не найден в этой организации")
    if user.role not in PHONE_ROLES:
        raise ValueError("телефон диспетчера закрепляется за диспетчером, руководителем или администратором")
    return user


def _clean_phone(session: Session, org: Organization, changes: Mapping[str, Any],
                 phone: DispatcherPhone | None) -> dict[str, Any]:
    unknown = sorted(set(changes) - set(PHONE_FIELDS))
    if unknown:
        raise ValidationFailed("эти поля нельзя изменить: " + ", ".join(unknown), field=unknown[0],
                               fields=[{"field": name, "message": "неизвестное поле"} for name in unknown])
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if "endpoint" in changes or phone is None:
        try:
            clean["endpoint"] = rules.endpoint(changes.get("endpoint"))
        except ValueError as exc:
            errors["endpoint"] = str(exc)
        else:
            taken = session.scalar(select(DispatcherPhone.id).where(
                DispatcherPhone.organization_id == org.id, DispatcherPhone.endpoint == clean["endpoint"]))
            if taken is not None and (phone is None or taken != phone.id):
                errors["endpoint"] = "такой телефон уже есть в списке"
    if "user_id" in changes:
        try:
            clean["user"] = _member_user(session, org.id, changes["user_id"])
        except ValueError as exc:
            errors["user_id"] = str(exc)
    for name in ("rings", "is_current"):
        if name in changes:
            clean[name] = rules.flag(changes[name])
    if clean.get("is_current") and "user_id" not in errors:
        has_user = clean["user"] is not None if "user" in clean else (phone is not None and phone.user_id is not None)
        if not has_user:
            errors["is_current"] = "текущим бывает только телефон, закреплённый за пользователем"
    if errors:
        raise _field_errors(PHONE_OBJECT, errors)
    return clean


def _apply_phone(session: Session, org: Organization, phone: DispatcherPhone, clean: Mapping[str, Any],
                 by: Actor | User | None, now: datetime) -> None:
    """Write the clean values; a user's new current phone makes their other phones not current."""
    before = _phone_values(session, phone) if phone.id is not None else {}
    if "endpoint" in clean:
        phone.endpoint = clean["endpoint"]
    if "user" in clean:
        new_user_id = clean["user"].id if clean["user"] is not None else None
        if new_user_id != phone.user_id and "is_current" not in clean:
            phone.is_current = False  # it was the previous owner's current phone
        phone.user_id = new_user_id
    if "rings" in clean:
        if clean["rings"] and not phone.rings:
            phone.position = _next_position(session, org.id)
        phone.rings = clean["rings"]
    if "is_current" in clean:
        phone.is_current = clean["is_current"]
    session.add(phone)
    session.flush()
    if phone.is_current and phone.user_id is not None:
        for other in session.scalars(select(DispatcherPhone).where(
                DispatcherPhone.organization_id == org.id, DispatcherPhone.user_id == phone.user_id,
                DispatcherPhone.id != phone.id, DispatcherPhone.is_current.is_(True))):
            was = _phone_values(session, other)
            other.is_current = False
            session.flush()
            audit.record_changes(session, by=by, organization_id=org.id, object_type=PHONE_OBJECT,
                                 object_id=other.id, object_label=other.endpoint, before=was,
                                 after=_phone_values(session, other), now=now)
    audit.record_changes(session, by=by, organization_id=org.id, object_type=PHONE_OBJECT, object_id=phone.id,
                         object_label=phone.endpoint, before=before, after=_phone_values(session, phone), now=now)


def _next_position(session: Session, org_id: int) -> int:
    positions = session.scalars(select(DispatcherPhone.position).where(
        DispatcherPhone.organization_id == org_id, DispatcherPhone.rings.is_(True))).all()
    return max(positions, default=-1) + 1


def add_phone(session: Session, *, org: Organization, changes: Mapping[str, Any], by: Actor | User | None,
              now: datetime | None = None) -> DispatcherPhone:
    """A new phone (`endpoint`, optional `user_id`, `rings` — True unless given —, `is_current`);
    a ringing one goes to the end of the ring order."""
    now = now or utcnow()
    clean = _clean_phone(session, org, {"rings": True, **changes}, None)
    phone = DispatcherPhone(organization_id=org.id, endpoint=clean["endpoint"], user_id=None, rings=False,
                            position=0, is_current=False)
    _apply_phone(session, org, phone, clean, by, now)
    _sync_ring_list(session, org, by, now)
    return phone


def update_phone(session: Session, *, org: Organization, phone_id: int, changes: Mapping[str, Any],
                 by: Actor | User | None, now: datetime | None = None) -> DispatcherPhone:
    now = now or utcnow()
    phone = get_phone(session, org_ids=[org.id], phone_id=phone_id)
    clean = _clean_phone(session, org, changes, phone)
    _apply_phone(session, org, phone, clean, by, now)
    _sync_ring_list(session, org, by, now)
    return phone


def remove_phone(session: Session, *, org: Organization, phone_id: int, by: Actor | User | None,
                 now: datetime | None = None) -> None:
    """The phone is no longer the organization's: it stops ringing and its calls name nobody.
    Calls it answered keep who answered (`calls.answered_by_id`)."""
    now = now or utcnow()
    phone = get_phone(session, org_ids=[org.id], phone_id=phone_id)
    before = _phone_values(session, phone)
    phone_key, label = phone.id, phone.endpoint
    session.delete(phone)
    session.flush()
    audit.record_changes(session, by=by, organization_id=org.id, object_type=PHONE_OBJECT, object_id=phone_key,
                         object_label=label, before=before, after={k: None for k in before}, now=now)
    _sync_ring_list(session, org, by, now)


def move_phone(session: Session, *, org: Organization, phone_id: int, position: int | str, by: Actor | User | None,
               now: datetime | None = None) -> DispatcherPhone:
    """Put a ringing phone at `position` (1 = rung first) of the ring order."""
    now = now or utcnow()
    phone = get_phone(session, org_ids=[org.id], phone_id=phone_id)
    ringing = [p for p in phones_of(session, org_id=org.id) if p.rings]
    if not phone.rings:
        raise _field_errors(PHONE_OBJECT, {"position": "место в очереди вызова есть только у телефона, который звонит"})
    try:
        target = rules.whole_number(position, low=1, high=len(ringing), what="место в очереди вызова")
    except ValueError as exc:
        raise _field_errors(PHONE_OBJECT, {"position": str(exc)}) from None
    ringing.remove(phone)
    ringing.insert(target - 1, phone)
    for index, p in enumerate(ringing):
        p.position = index
    session.flush()
    _sync_ring_list(session, org, by, now)
    return phone


def set_ring_list(session: Session, *, org: Organization, endpoints: Sequence[str], by: Actor | User | None,
                  now: datetime | None = None) -> TelephonySettings:
    """These phones ring, in this order (a new endpoint becomes a phone of nobody's); the other
    phones of the organization stop ringing. ValidationFailed (`dispatcher_endpoints`) for an
    endpoint that is not `TECH/name`."""
    now = now or utcnow()
    cleaned: list[str] = []
    for raw in endpoints:
        try:
            endpoint = rules.endpoint(raw)
        except ValueError:
            raise ValidationFailed("телефон диспетчера указывается как PJSIP/имя", field="dispatcher_endpoints",
                                   value=raw) from None
        if endpoint not in cleaned:
            cleaned.append(endpoint)
    phones = {p.endpoint: p for p in session.scalars(select(DispatcherPhone).where(
        DispatcherPhone.organization_id == org.id))}
    for endpoint, phone in phones.items():
        if endpoint not in cleaned and phone.rings:
            _apply_phone(session, org, phone, {"rings": False}, by, now)
    for position, endpoint in enumerate(cleaned):
        found = phones.get(endpoint)
        if found is None:
            found = DispatcherPhone(organization_id=org.id, endpoint=endpoint, user_id=None, rings=False,
                                    position=0, is_current=False)
            _apply_phone(session, org, found, {"endpoint": endpoint, "rings": True}, by, now)
        elif not found.rings:
            _apply_phone(session, org, found, {"rings": True}, by, now)
        found.position = position
    session.flush()
    return _sync_ring_list(session, org, by, now)


def ring_list(phones: Sequence[DispatcherPhone]) -> list[str]:
    """The endpoints to ring, in order: phones that ring, by position; of a user who has a current
    phone, only that one (they sit there now). Pure."""
    current_of = {p.user_id for p in phones if p.is_current and p.user_id is not None}
    ringing = sorted((p for p in phones if p.rings), key=lambda p: (p.position, p.id or 0))
    return [p.endpoint for p in ringing if p.user_id is None or p.user_id not in current_of or p.is_current]


def _sync_ring_list(session: Session, org: Organization, by: Actor | User | None, now: datetime) -> TelephonySettings:
    """Write the ring list derived from the phones (and renumber the ring order 0..n-1); logged
    as a settings change when it differs."""
    phones = phones_of(session, org_id=org.id)
    for index, phone in enumerate(p for p in phones if p.rings):
        phone.position = index
    row = _settings_row(session, org)
    endpoints = ring_list(phones)
    if list(row.dispatcher_endpoints or []) == endpoints:
        session.flush()
        return row
    before = audit.snapshot(row, TELEPHONY_AUDIT_FIELDS)
    row.dispatcher_endpoints = endpoints
    return _saved(session, org, row, before, by, now)


def assign_dispatcher_phone(
    session: Session, *, org: Organization, endpoint: str, user_id: int | None, by: Actor | User | None,
) -> DispatcherPhone | None:
    """Say whose phone `endpoint` is in the organization (`user_id` None: nobody's any more; the
    phone stays, as it rang). A new endpoint becomes a phone that does not ring by itself. Returns
    the phone (None when `user_id` is None and there was no such phone)."""
    try:
        endpoint = rules.endpoint(endpoint)
    except ValueError:
        raise ValidationFailed("телефон диспетчера указывается как PJSIP/имя", field="endpoint",
                               value=endpoint) from None
    phone = session.scalar(select(DispatcherPhone).where(DispatcherPhone.organization_id == org.id,
                                                         DispatcherPhone.endpoint == endpoint))
    if phone is None and user_id is None:
        return None
    try:
        user = _member_user(session, org.id, user_id)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="user_id", value=user_id) from None
    now = utcnow()
    if phone is None:
        phone = DispatcherPhone(organization_id=org.id, endpoint=endpoint, user_id=None, rings=False, position=0,
                                is_current=False)
        _apply_phone(session, org, phone, {"endpoint": endpoint, "user": user}, by, now)
    else:
        _apply_phone(session, org, phone, {"user": user}, by, now)
    _sync_ring_list(session, org, by, now)
    return phone


def dispatcher_of_endpoint(session: Session, *, org_id: int, endpoint: str | None) -> User | None:
    """The user whose phone `endpoint` is in the organization (None: nobody's, or the user no
    longer works there — an answer is never refused over a stale assignment)."""
    if not endpoint:
        return None
    return session.scalar(
        select(User).join(DispatcherPhone, DispatcherPhone.user_id == User.id)
        .join(Membership, (Membership.user_id == User.id) & (Membership.organization_id == org_id))
        .where(DispatcherPhone.organization_id == org_id, DispatcherPhone.endpoint == endpoint)
    )


def endpoint_of_user(session: Session, *, org_id: int, user_id: int) -> str | None:
    """The user's phone in the organization for the callbacks they click: the current one, else
    the first of theirs."""
    return session.scalar(
        select(DispatcherPhone.endpoint)
        .where(DispatcherPhone.organization_id == org_id, DispatcherPhone.user_id == user_id)
        .order_by(DispatcherPhone.is_current.desc(), DispatcherPhone.rings.desc(), DispatcherPhone.position,
                  DispatcherPhone.id).limit(1)
    )
