"""The executor app's API (issue 15 A; decision 0042): my tickets by urgency, one ticket with what
the field needs, idempotent actions by a client-generated id, photos and voice notes, duty and
positions. The staff's read of positions is `GET /executor-positions`.

Executors act on their own tickets only: another's is 404, or 409 (`field-conflict`, a Russian
message the app shows) when it was theirs and was reassigned meanwhile. A retried action id
returns the first result (`replayed: true`) and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from flask import request
from pydantic import ConfigDict, Field
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from models import access
from models.errors import FileTooLarge, PermissionDenied, TicketNotFound, ValidationFailed
from models.housing import HouseNote
from models.organization import Organization, Role, User
from models.queries import ticket_card
from models.rules import field as rules
from models.rules.access import READERS, STAFF
from models.rules.phones import display as display_phone
from models.rules.ticket_states import STATUS_TITLES_RU
from models.services import field as svc
from models.services import tickets as tickets_svc
from models.services.ratings import resident_phone
from models.ticket import Attachment, Ticket, TicketComment, Visibility
from web.api.v1 import bp
from web.api.v1 import common as c
from web.api.v1.schemas import Body, Out
from web.api.v1.tickets import card_json, comment_json
from web.auth import require_user
from web.dbsession import session as db_session
from web.inputs import Id, Moment
from web.panel.common import settings


class ActionRequest(Body):
    client_id: str = Field(min_length=36, max_length=36, description="UUID, создаётся на устройстве")
    action: Literal["accept", "en_route", "on_site", "localized", "done", "decline", "comment"]
    eta: Moment | None = Field(None, description="«выехал»: ориентировочное время прибытия")
    note: str = Field("", max_length=4000, description="«выполнено»: что сделано")
    reason: str = Field("", max_length=4000, description="«не могу выполнить»: причина")
    text: str = Field("", max_length=4000, description="комментарий")
    visibility: Visibility = Visibility.INTERNAL


class DutyRequest(Body):
    on_duty: bool
    organization_id: Id | None = None


class PositionRequest(Body):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(None, ge=0, le=100_000)
    at: Moment | None = None
    organization_id: Id | None = None


# --- response shapes (the OpenAPI document) -----------------------------------------------------------


class FieldTicket(Out):
    id: int
    number: str
    organization_id: int
    status: str
    status_title: str
    is_emergency: bool
    category: str
    description: str
    address: str | None
    premise: str | None
    registered_at: str
    localize_due_at: str | None = Field(description="Срок локализации (ПП 416), UTC")
    due_at: str = Field(description="Срок выполнения (ПП 416), UTC")
    next_due_at: str | None = Field(description="Ближайший ещё не наступивший срок: обратный отсчёт")
    localized_at: str | None
    overdue: bool
    accepted_at: str | None
    en_route_at: str | None
    eta_at: str | None
    on_site_at: str | None
    resolved_at: str | None
    updated_at: str | None
    timezone: str = Field(description="Часовой пояс организации: времена показываются в нём")


class FieldTicketList(Out):
    items: list[FieldTicket]
    server_time: str = Field(description="Время сервера: приложение поправляет по нему свои часы для отсчёта")


class FieldTicketCard(Out):
    model_config = ConfigDict(extra="allow")

    id: int
    number: str
    status: str
    premise: dict[str, Any] | None = Field(description="label, number, entrance, floor")
    house: dict[str, Any] | None = Field(description="id, address, latitude, longitude")
    resident: dict[str, Any] = Field(description="name, phone (E.164), phone_display (+7 916 123-45-67)")
    house_notes: list[str]
    history: list[dict[str, Any]]
    comments: list[dict[str, Any]]
    attachments: list[dict[str, Any]]


class ActionOut(Out):
    result: dict[str, Any] = Field(description="Первый результат действия (повтор того же client_id — он же)")
    replayed: bool = Field(description="true: это повтор, ничего не изменено")
    ticket: FieldTicket | None = None


class FileUpload(Out):
    """multipart/form-data"""

    client_id: str = Field(description="UUID, создаётся на устройстве")
    kind: Literal["photo_before", "photo_after", "voice"]
    visibility: Visibility = Visibility.INTERNAL
    meta: str = Field("{}", description="JSON: taken_at, lat, lon, width, height, duration_s (из EXIF на устройстве)")
    file: bytes = Field(description="JPEG, PNG, WebP (фото, до 8 МБ) или звукозапись (до 8 МБ)")


class DutyOut(Out):
    organization_id: int | None
    on_duty: bool
    changed_at: str | None
    sharing_location: bool = Field(description="Местоположение передаётся (только на смене)")


class PositionStored(Out):
    stored: bool


class ExecutorPositionOut(Out):
    user_id: int
    full_name: str
    on_duty: bool
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    position_at: str | None
    last_seen_at: str | None


class ExecutorPositionList(Out):
    items: list[ExecutorPositionOut]


REQUEST_MODELS = (ActionRequest, DutyRequest, PositionRequest, FileUpload)
RESPONSE_MODELS = (FieldTicketList, FieldTicketCard, ActionOut, DutyOut, PositionStored, ExecutorPositionList)


def _executor() -> User:
    return require_user((Role.EXECUTOR,))


def field_ticket_json(t: Ticket, now: Any) -> dict[str, Any]:
    """A ticket as «Мои заявки» lists it: deadlines and field progress."""
    return {
        "id": t.id, "number": t.number, "organization_id": t.organization_id, "status": t.status.value,
        "status_title": STATUS_TITLES_RU[t.status], "is_emergency": t.is_emergency,
        "category": t.category.name, "description": t.description,
        "address": t.house.address if t.house else None,
        "premise": t.premise.label if t.premise else None,
        "registered_at": c.utc_iso(t.registered_at), "localize_due_at": c.utc_iso(t.localize_due_at),
        "due_at": c.utc_iso(t.due_at), "next_due_at": c.utc_iso(t.next_due_at),
        "localized_at": c.utc_iso(t.localized_at), "overdue": t.is_overdue(now),
        "accepted_at": c.utc_iso(t.accepted_at), "en_route_at": c.utc_iso(t.en_route_at),
        "eta_at": c.utc_iso(t.eta_at), "on_site_at": c.utc_iso(t.on_site_at),
        "resolved_at": c.utc_iso(t.resolved_at), "updated_at": c.utc_iso(t.updated_at),
        "timezone": t.organization.timezone,
    }


def _file_json(a: Attachment) -> dict[str, Any]:
    return {"id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size, "kind": a.kind,
            "visibility": a.visibility.value, "meta": a.meta or {}, "created_at": c.utc_iso(a.created_at),
            "url": f"/attachments/{a.id}"}


def _visible_ticket(user: User, ticket_id: int) -> Ticket:
    """An executor's own ticket; any ticket of their organizations for staff and inspectors."""
    return access.visible_ticket(user, ticket_card(db_session(), c.user_orgs(user), ticket_id))


def _org_of_ticket(user: User, ticket_id: int) -> Organization:
    """The organization of a ticket in the user's organizations (whose ticket it is, the service
    decides: 404 or a conflict)."""
    org_id = db_session().scalar(select(Ticket.organization_id).where(
        Ticket.id == ticket_id, Ticket.organization_id.in_(c.user_orgs(user))))
    if org_id is None:
        raise TicketNotFound("заявка не найдена", ticket_id=ticket_id)
    return c.organization(org_id)


@bp.get("/executor/tickets")
def executor_tickets() -> Any:
    user = _executor()
    now = c.now()
    return {"items": [field_ticket_json(t, now) for t in svc.my_tickets(db_session(), user=user)],
            "server_time": c.utc_iso(now)}


@bp.get("/executor/tickets/<int:ticket_id>")
def executor_ticket(ticket_id: int) -> Any:
    """The field card; staff and inspectors may read it too (what the executor sees)."""
    user = require_user((*READERS, Role.EXECUTOR))
    s, now = db_session(), c.now()
    t = _visible_ticket(user, ticket_id)
    out = card_json(t, now)
    out.update(field_ticket_json(t, now))
    out["attachments"] = [_file_json(a) for a in t.attachments]
    out["premise"] = ({"label": t.premise.label, "number": t.premise.number, "entrance": t.premise.entrance,
                       "floor": t.premise.floor} if t.premise else None)
    out["house"] = ({"id": t.house.id, "address": t.house.address, "latitude": t.house.latitude,
                     "longitude": t.house.longitude} if t.house else None)
    phone = resident_phone(s, t)
    out["resident"] = {"name": t.reporter_name or (t.resident.full_name if t.resident else ""),
                       "phone": phone, "phone_display": display_phone(phone) if phone else None}
    out["house_notes"] = ([n.text for n in s.scalars(select(HouseNote).where(
        HouseNote.house_id == t.house_id, HouseNote.organization_id == t.organization_id).order_by(HouseNote.id))]
        if t.house_id else [])
    out["server_time"] = c.utc_iso(now)
    return out


def _do(org: Organization, user: User, ticket_id: int, body: ActionRequest) -> dict[str, Any]:
    s, now = db_session(), c.now()
    a = rules.FieldAction(body.action)
    extra: dict[str, Any] = {}
    if a == rules.FieldAction.ACCEPT:
        t = svc.accept_ticket(s, org=org, ticket_id=ticket_id, by=user, via="app", now=now)
    elif a == rules.FieldAction.EN_ROUTE:
        if body.eta is None:
            raise ValidationFailed("укажите ориентировочное время прибытия", field="eta")
        eta = c.aware(body.eta, tickets_svc.tz_of(org))
        assert eta is not None
        t = svc.mark_en_route(s, org=org, ticket_id=ticket_id, by=user, eta=eta, now=now)
    elif a == rules.FieldAction.ON_SITE:
        t = svc.mark_on_site(s, org=org, ticket_id=ticket_id, by=user, now=now)
    elif a == rules.FieldAction.LOCALIZED:
        t = svc.localize_ticket(s, org=org, ticket_id=ticket_id, by=user, now=now)
    elif a == rules.FieldAction.DONE:
        t = svc.complete_ticket(s, org=org, ticket_id=ticket_id, by=user, note=body.note, now=now)
    elif a == rules.FieldAction.DECLINE:
        t = svc.return_ticket(s, org=org, ticket_id=ticket_id, by=user, reason=body.reason, now=now)
    else:
        svc._field_ticket(s, org, ticket_id, user, a)  # the same ownership and state checks
        cm: TicketComment = tickets_svc.add_comment(s, org=org, ticket_id=ticket_id, text=body.text,
                                                    visibility=body.visibility, by=user, now=now)
        s.flush()
        extra["comment"] = comment_json(cm)
        t = tickets_svc.get_ticket(s, org_ids=[org.id], ticket_id=ticket_id)
    return {"action": a.value, "ticket_id": t.id, "status": t.status.value, "at": c.utc_iso(now), **extra}


@bp.post("/executor/tickets/<int:ticket_id>/actions")
def executor_action(ticket_id: int) -> Any:
    user = require_user((*STAFF, Role.EXECUTOR))
    org = _org_of_ticket(user, ticket_id)
    body = c.parse_body(ActionRequest)
    outcome = svc.run_action(db_session(), org=org, by=user, client_id=body.client_id, ticket_id=ticket_id,
                             kind=body.action, do=lambda: _do(org, user, ticket_id, body), now=c.now())
    ticket = tickets_svc.get_ticket(db_session(), org_ids=[org.id], ticket_id=ticket_id)
    visible = user.role != Role.EXECUTOR or ticket.executor_id == user.id
    return {"result": outcome.result, "replayed": outcome.replayed,
            "ticket": field_ticket_json(ticket, c.now()) if visible else None}, (200 if outcome.replayed else 201)


@bp.post("/executor/tickets/<int:ticket_id>/files")
def executor_file(ticket_id: int) -> Any:
    """multipart/form-data: `client_id`, `kind` (photo_before, photo_after, voice), `visibility`
    (internal, resident), `meta` (JSON: taken_at, lat, lon, width, height, duration_s), `file`."""
    user = require_user((*STAFF, Role.EXECUTOR))
    limit = max(rules.MAX_PHOTO_BYTES, rules.MAX_VOICE_BYTES)
    request.max_content_length = limit + 64 * 1024  # the form's other fields besides the file
    org = _org_of_ticket(user, ticket_id)
    too_large = FileTooLarge(f"файл слишком большой: не больше {limit // (1024 * 1024)} МБ", field="file",
                             max_bytes=limit)
    if (request.content_length or 0) > request.max_content_length:
        raise too_large  # refused before the body is read (a parser stopped midway leaves a temp file)
    try:
        form = request.form
        upload = request.files.get("file")
    except RequestEntityTooLarge:  # a body without a length that turned out too long
        raise too_large from None
    if upload is None:
        raise ValidationFailed("выберите файл", field="file")
    kind = form.get("kind", "")
    try:
        visibility = Visibility(form.get("visibility", "internal"))
    except ValueError:
        raise ValidationFailed("неизвестная видимость", field="visibility") from None
    try:
        meta = json.loads(form.get("meta") or "{}")
    except ValueError:
        raise ValidationFailed("метаданные — не JSON", field="meta") from None
    if not isinstance(meta, dict):
        raise ValidationFailed("метаданные должны быть JSON-объектом", field="meta")
    root = settings().var_dir
    uploaded = svc.Upload(upload.stream, upload.filename or kind, upload.mimetype or "")

    def attach() -> dict[str, Any]:
        att = svc.add_field_file(db_session(), org=org, ticket_id=ticket_id, by=user, upload=uploaded, kind=kind,
                                 visibility=visibility, meta=meta, root=root, now=c.now())
        return {"action": "file", "ticket_id": ticket_id, "attachment": _file_json(att)}

    try:
        outcome = svc.run_action(db_session(), org=org, by=user, client_id=form.get("client_id", ""),
                                 ticket_id=ticket_id, kind=kind[:20], do=attach, now=c.now())
    finally:
        upload.close()  # a large upload is a temporary file: closed also when it was refused
    return {"result": outcome.result, "replayed": outcome.replayed}, (200 if outcome.replayed else 201)


def _duty_json(row: Any) -> dict[str, Any]:
    return {"organization_id": row.organization_id if row else None, "on_duty": bool(row and row.on_duty),
            "changed_at": c.utc_iso(row.changed_at) if row else None,
            "sharing_location": bool(row and row.on_duty)}


@bp.get("/executor/duty")
def executor_duty() -> Any:
    user = _executor()
    org = c.org_for_create(user, request.args.get("organization_id", type=int))
    return _duty_json(svc.duty_of(db_session(), org=org, user=user))


@bp.post("/executor/duty")
def executor_set_duty() -> Any:
    user = _executor()
    body = c.parse_body(DutyRequest)
    org = c.org_for_create(user, body.organization_id)
    return _duty_json(svc.set_duty(db_session(), org=org, user=user, on_duty=body.on_duty, now=c.now()))


@bp.post("/executor/position")
def executor_position() -> Any:
    user = _executor()
    body = c.parse_body(PositionRequest)
    org = c.org_for_create(user, body.organization_id)
    at = c.aware(body.at, tickets_svc.tz_of(org))
    svc.report_position(db_session(), org=org, user=user, lat=body.lat, lon=body.lon, accuracy_m=body.accuracy_m,
                        at=at, now=c.now())
    return {"stored": True}, 201


@bp.get("/executor-positions")
def executor_positions() -> Any:
    """Staff of the organization only (152-ФЗ): not executors, not inspectors."""
    user = require_user(STAFF)
    org = c.org_for_create(user, request.args.get("organization_id", type=int))
    if org.id not in user.organization_ids:  # pragma: no cover - org_for_create checks it
        raise PermissionDenied("недостаточно прав")
    return {"items": [{
        "user_id": p.user_id, "full_name": p.full_name, "on_duty": p.on_duty, "lat": p.lat, "lon": p.lon,
        "accuracy_m": p.accuracy_m, "position_at": c.utc_iso(p.position_at), "last_seen_at": c.utc_iso(p.last_seen_at),
    } for p in svc.executor_positions(db_session(), org_id=org.id)]}


# --- notifications that demand acknowledgement (issue 15 B; decision 0043) -----------------------------


class PushKeys(Body):
    p256dh: str = Field(min_length=1, max_length=200)
    auth: str = Field(min_length=1, max_length=100)


class PushSubscriptionRequest(Body):
    """The browser's `PushSubscription.toJSON()` plus a device label."""

    endpoint: str = Field(min_length=1, max_length=1000)
    keys: PushKeys
    device: str = Field("", max_length=100)
    expirationTime: int | None = None  # noqa: N815 - the browser's name, ignored


class PushUnsubscribeRequest(Body):
    endpoint: str = Field(min_length=1, max_length=1000)


class AlertSettingsRequest(Body):
    channels: list[Literal["push", "sms", "voice", "email"]]
    quiet_start: str | None = Field(None, max_length=5, description="ЧЧ:ММ; пусто — без тихих часов")
    quiet_end: str | None = Field(None, max_length=5)


class PushKeyOut(Out):
    public_key: str | None = Field(description="VAPID, base64url: applicationServerKey для PushManager.subscribe; "
                                               "null — push не настроен")


class PushSubscriptionOut(Out):
    id: int
    device: str
    created_at: str | None


class PushRemovedOut(Out):
    removed: bool


class AlertSettingsOut(Out):
    channels: list[str]
    quiet_start: str | None
    quiet_end: str | None
    quiet_hours_apply_to_emergencies: bool


ALERT_REQUEST_MODELS: tuple[type[Body], ...] = (PushSubscriptionRequest, PushUnsubscribeRequest, AlertSettingsRequest)
ALERT_RESPONSE_MODELS: tuple[type[Out], ...] = (PushKeyOut, PushSubscriptionOut, PushRemovedOut, AlertSettingsOut)


def alert_settings_json(prefs: Any) -> dict[str, Any]:
    return {"channels": list(prefs.channels),
            "quiet_start": prefs.quiet_start.strftime("%H:%M") if prefs.quiet_start else None,
            "quiet_end": prefs.quiet_end.strftime("%H:%M") if prefs.quiet_end else None,
            "quiet_hours_apply_to_emergencies": False}


@bp.get("/executor/push-key")
def executor_push_key() -> Any:
    """The VAPID public key: the app's `applicationServerKey` (null: push is not configured)."""
    _executor()
    push = settings().push
    return {"public_key": push.vapid_public_key or None}


@bp.post("/executor/push-subscriptions")
def executor_push_subscribe() -> Any:
    from models.services import alerts

    user = _executor()
    body = c.parse_body(PushSubscriptionRequest)
    row = alerts.subscribe(db_session(), user=user, endpoint=body.endpoint, p256dh=body.keys.p256dh,
                           auth=body.keys.auth, device=body.device, now=c.now())
    return {"id": row.id, "device": row.device, "created_at": c.utc_iso(row.created_at)}, 201


@bp.delete("/executor/push-subscriptions")
def executor_push_unsubscribe() -> Any:
    from models.services import alerts

    user = _executor()
    body = c.parse_body(PushUnsubscribeRequest)
    removed = alerts.unsubscribe(db_session(), user=user, endpoint=body.endpoint)
    return {"removed": removed}


@bp.get("/executor/alert-settings")
def executor_alert_settings() -> Any:
    from models.services import alerts

    user = _executor()
    return alert_settings_json(alerts.preferences(db_session(), user.id))


@bp.put("/executor/alert-settings")
def executor_set_alert_settings() -> Any:
    from models.services import alerts

    user = _executor()
    body = c.parse_body(AlertSettingsRequest)
    prefs = alerts.set_preferences(db_session(), user=user, by=user, channels=list(body.channels),
                                   quiet_start=body.quiet_start, quiet_end=body.quiet_end, now=c.now())
    return alert_settings_json(prefs)
