"""Ticket card, new-ticket form, workflow actions, comments, attachments, house notes and lookups."""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, flash, jsonify, redirect, render_template, request, send_file, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import secure_filename

from models import access, queries
from models.base import utcnow
from models.call import Call, CallTicket
from models.errors import DomainError, NotFound, PermissionDenied, ValidationFailed
from models.files import open_private, private_dir
from models.housing import HouseNote, Premise
from models.organization import Organization, User
from models.outbox import MessageChannel
from models.queries_calls import held_call_ids
from models.recording import Recording
from models.rules import alerts as alert_rules
from models.rules import field as field_rules
from models.rules import messages as message_rules
from models.rules.access import MANAGERS, is_read_only
from models.rules.attachments import safe_content_type
from models.rules.deadlines import compute_deadlines
from models.rules.phones import display as phone_display
from models.rules.ticket_history import ACTION_TITLES_RU, FIELD_TITLES_RU, action_title
from models.rules.ticket_states import (
    ALLOWED_TRANSITIONS,
    EXECUTOR_TARGETS,
    NEEDS_REASON,
    REOPENABLE,
    SETTLED,
    STATUS_TITLES_RU,
)
from models.services import alerts as alerts_svc
from models.services import field as field_svc
from models.services import housing
from models.services import recordings as rec_svc
from models.services import tickets as svc
from models.services.audit import Actor
from models.services.notifications import NOTICE_IMPOSSIBLE, RATING_CALL_IMPOSSIBLE
from models.ticket import Attachment, Category, Channel, Ticket, Visibility, breach_text
from models.ticket import TicketStatus as S
from web.auth import login_required, org_ids
from web.dbsession import commit_now, database
from web.dbsession import session as db_session
from web.filters import local_time
from web.inputs import optional_int, possible_id
from web.kept_form import form_page, sent_values
from web.panel import bp
from web.panel import dispatch as dispatch_panel
from web.panel import ratings as ratings_panel
from web.panel.calls import KIND_TITLES
from web.panel.common import (
    STAFF,
    check_visible,
    is_executor,
    my_orgs,
    org_by_id,
    parse_local_datetime,
    settings,
    user,
)

TRANSITION_LABELS = {
    S.NEW: "Снять исполнителя",
    S.ASSIGNED: "Вернуть в «Назначена»",
    S.IN_PROGRESS: "Принять в работу",
    S.DONE: "Выполнена",
    S.CLOSED: "Закрыть",
    S.CANCELLED: "Отменить",
    S.REJECTED: "Отклонить",
}
ACTION_TITLES = ACTION_TITLES_RU
FIELD_TITLES = FIELD_TITLES_RU
VISIBILITY_TITLES = {Visibility.INTERNAL: "внутренний", Visibility.RESIDENT: "виден жителю"}
CHANNEL_TITLES = {
    Channel.PHONE: "телефон", Channel.PANEL: "панель", Channel.RESIDENT_WEB: "сайт жителя",
    Channel.API: "API", Channel.EXTERNAL: "внешняя система",
}


# --- presentation helpers -----------------------------------------------------------------------


def _value_ru(value: Any, tz: str) -> str:
    if value is None or value == "":
        return "—"
    if value is True:
        return "да"
    if value is False:
        return "нет"
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        try:
            return local_time(datetime.fromisoformat(value), tz)
        except ValueError:
            return value
    if isinstance(value, str) and value in {v.value for v in Visibility}:
        return VISIBILITY_TITLES[Visibility(value)]
    return str(value)


def history_lines(ticket: Ticket) -> list[dict[str, Any]]:
    tz = ticket.organization.timezone
    out = []
    for h in ticket.history:
        what = [action_title(h.action)]
        if h.from_status and h.to_status:
            what.append(f"{STATUS_TITLES_RU[S(h.from_status)]} → {STATUS_TITLES_RU[S(h.to_status)]}")
        elif h.to_status:
            what.append(f"статус «{STATUS_TITLES_RU[S(h.to_status)]}»")
        changes = [
            f"{FIELD_TITLES.get(k, k)}: {_value_ru(v[0], tz)} → {_value_ru(v[1], tz)}"
            if h.action not in ("created", "commented") else f"{FIELD_TITLES.get(k, k)}: {_value_ru(v[1], tz)}"
            for k, v in (h.changes or {}).items()
        ]
        out.append({"at": h.at, "who": h.user.full_name if h.user else "система", "what": "; ".join(what),
                    "changes": changes, "reason": h.reason})
    return out


def deadline_text(org: Organization, category: Category, emergency: bool, now: datetime) -> dict[str, Any]:
    d = compute_deadlines(svc.deadline_rule(org, category), registered_at=now, tz=ZoneInfo(org.timezone),
                          is_emergency=emergency)
    parts = []
    if d.localize_due_at is not None:
        parts.append(f"локализовать до {local_time(d.localize_due_at, org.timezone, '%H:%M %d.%m')}")
    parts.append(f"устранить до {local_time(d.due_at, org.timezone, '%H:%M %d.%m.%Y')}")
    minutes = category.resolve_minutes or org.default_deadline_minutes
    norm = f"{minutes // 1440} сут." if minutes % 1440 == 0 else (
        f"{minutes // 60} ч" if minutes % 60 == 0 else f"{minutes} мин")
    if category.window_start and category.window_end:
        norm += f" (считается с {category.window_start:%H:%M} до {category.window_end:%H:%M})"
    return {
        "localize_due_at": d.localize_due_at.isoformat() if d.localize_due_at else None,
        "due_at": d.due_at.isoformat(),
        "norm": norm,
        "text": "Срок: " + ", ".join(parts) + f" — норматив {norm}",
    }


def _card(ticket_id: int, *, error: str | None = None, status: int = 200, form: dict[str, Any] | None = None) -> Any:
    s = db_session()
    ids = org_ids()
    ticket = check_visible(queries.ticket_card(s, ids, ticket_id))
    executor_view = is_executor()
    org = ticket.organization
    now = utcnow()
    transitions = [
        (to, TRANSITION_LABELS[to], to in NEEDS_REASON)
        for to in sorted(ALLOWED_TRANSITIONS[ticket.status], key=lambda x: list(S).index(x))
        if not (to == S.ASSIGNED and ticket.executor_id is None)
        and not (executor_view and to not in EXECUTOR_TARGETS)
    ]
    notes = []
    if ticket.house_id is not None:
        notes = list(s.scalars(select(HouseNote).where(HouseNote.house_id == ticket.house_id,
                                                        HouseNote.organization_id == org.id)
                               .order_by(HouseNote.id.desc())))
    authors = {u.id: u for u in s.scalars(select(User).where(User.id.in_(
        {c.author_id for c in ticket.comments if c.author_id} | {n.created_by_id for n in notes if n.created_by_id}
    )))} if (ticket.comments or notes) else {}
    premises = list(s.scalars(select(Premise).where(Premise.house_id == ticket.house_id).order_by(Premise.id))) \
        if ticket.house_id else []
    calls = _ticket_calls(s, ticket) if not executor_view else []
    context = dict(
        t=ticket, org=org, now=now, error=error, form=form or {},
        broken=ticket.broken_deadlines(now), breach_text=breach_text,
        history=history_lines(ticket),
        transitions=transitions,
        can_reopen=ticket.status in REOPENABLE and not executor_view,
        can_localize=ticket.localize_due_at is not None and ticket.localized_at is None
        and ticket.status not in SETTLED,
        can_edit=ticket.status not in (S.CLOSED, S.CANCELLED, S.REJECTED) and not executor_view,
        can_assign=ticket.status not in SETTLED and not executor_view,
        can_accept=ticket.status in field_rules.ACTIVE and ticket.executor_id is not None
        and ticket.accepted_at is None,
        executors=[e for e in queries.executors(s, [org.id])],
        categories=queries.categories(s, [org.id]),
        notes=notes, authors=authors, premises=premises,
        open_tickets=[x for x in queries.open_tickets_of(s, [org.id], premise_id=ticket.premise_id,
                                                          house_id=ticket.house_id,
                                                          where=access.ticket_conditions(user()))
                      if x.id != ticket.id],
        incidents=queries.active_incidents(s, [org.id], ticket.house_id) if ticket.house_id else [],
        visibility_titles=VISIBILITY_TITLES, channel_titles=CHANNEL_TITLES,
        max_upload_mb=settings().max_upload_mb,
        messages=queries.ticket_messages(s, ticket) if not executor_view else [],
        message_titles=message_rules,
        attempt_text=attempt_text,
        impossible=_impossible(ticket),
        ticket_alerts=alerts_svc.alerts_of(s, org_id=org.id, ticket_id=ticket.id),
        alert_titles=alert_rules.CHANNEL_TITLES_RU, alert_states=ALERT_STATES_RU,
        accepted_via=ACCEPTED_VIA_RU,
        **ratings_panel.card_context(s, ticket),
        calls=calls,
        held_calls=held_call_ids(s, [c.id for c in calls]),
        delete_ticket_id=ticket.id if user().role in MANAGERS else None,
        call_kind_titles=KIND_TITLES,
    )
    if is_read_only(user().role):  # an inspector reads the card: no action is offered
        context.update(transitions=[], can_reopen=False, can_localize=False, can_edit=False, can_assign=False,
                       can_rate=False, delete_ticket_id=None, can_accept=False)
    # «Ближайший свободный исполнитель» for an emergency (decision 0044): staff only (positions).
    context["nearest"] = dispatch_panel.nearest_for_card(ticket) if context["can_assign"] else []
    return render_template("ticket_card.html", **context), status


def _impossible(ticket: Ticket) -> list[tuple[str, str]]:
    """(title, reason) of the latest «not possible» entry per kind (notice, rating call) since the
    ticket was last completed: why the resident got no completion notice or rating call."""
    since = ticket.resolved_at or ticket.closed_at
    if since is None:
        return []
    latest: dict[str, str] = {}
    for h in ticket.history:
        if h.action in (NOTICE_IMPOSSIBLE, RATING_CALL_IMPOSSIBLE) and h.at >= since:
            latest[h.action] = h.reason
    return [(action_title(a), r) for a, r in latest.items()]


ALERT_STATES_RU = {"waiting": "ждём подтверждения", "accepted": "подтверждено", "notified": "исполнитель оповещён",
                   "cancelled": "остановлено (переназначена, возвращена или закрыта)",
                   "unacknowledged": "НЕ ПОДТВЕРЖДЕНО"}
ACCEPTED_VIA_RU = {"app": "в приложении", "sms": "по SMS", "voice": "кнопкой 1 в звонке робота",
                   "panel": "в панели"}

_ACCEPTED_RU = {MessageChannel.EMAIL: "письмо принято почтовым сервером", MessageChannel.SMS: "SMS принято оператором",
                MessageChannel.PUSH: "уведомление принято сервисом", MessageChannel.VOICE: "звонок передан оператору"}


def attempt_text(channel: MessageChannel, attempt: Any) -> str:
    """A send attempt as a person reads it: the provider and the outcome in Russian, never the
    provider's message id (kept in the log for an inspection) nor an internal error's repr."""
    if attempt.ok:
        return "успешно: " + _ACCEPTED_RU.get(channel, "принято провайдером")
    detail = (attempt.detail or "").strip()
    if not detail or detail.startswith("internal:") or not any("а" <= ch.lower() <= "я" for ch in detail):
        return "ошибка отправки (подробности в журнале сервера)"
    return f"ошибка: {detail[:300]}"


def _ticket_calls(s: Any, ticket: Ticket) -> list[Call]:
    """The calls linked to the ticket (the one it was made from, callbacks about it) with their
    recordings; the players go through `panel.recording_play`, which logs every access."""
    return list(s.scalars(
        select(Call).join(CallTicket, CallTicket.call_id == Call.id)
        .where(CallTicket.ticket_id == ticket.id, Call.organization_id == ticket.organization_id)
        .options(selectinload(Call.recordings)).order_by(Call.started_at, Call.id)
    ))


@bp.post("/tickets/<int:ticket_id>/recordings/<int:recording_id>/delete")
@form_page("panel.ticket_card")
@login_required(MANAGERS)
def ticket_recording_delete(ticket_id: int, recording_id: int) -> Any:
    """A manager or an administrator deletes one recording of the ticket's calls by hand (a
    resident's 152-ФЗ request): `models.services.recordings.purge_recording`, logged in the purge
    log with who and why; refused under legal hold (the card says why, the form kept)."""
    s = db_session()
    ticket = _owned_ticket(ticket_id)
    linked = s.scalar(
        select(Recording.id).join(CallTicket, CallTicket.call_id == Recording.call_id)
        .where(Recording.id == recording_id, CallTicket.ticket_id == ticket.id,
               Recording.organization_id == ticket.organization_id)
    )
    if linked is None:
        abort(404)
    org_id = ticket.organization_id
    commit_now()  # the purge writes in transactions of its own (SQLite: one writer at a time)
    try:
        rec_svc.purge_recording(database(), org_ids=[org_id], recording_id=recording_id,
                                reason=request.form.get("reason", ""), recordings_dir=settings().recordings_dir,
                                by=user())
    except NotFound:
        raise
    except DomainError as exc:
        return _card(ticket_id, error=exc.message, status=exc.http_status, form=request.form.to_dict())
    flash("Запись удалена; удаление записано в журнал удалений записей", "ok")
    return redirect(url_for("panel.ticket_card", ticket_id=ticket_id) + "#calls")


def _owned_ticket(ticket_id: int) -> Ticket:
    return check_visible(queries.get_owned(db_session(), Ticket, org_ids(), ticket_id))


def _dispatchers_only() -> None:
    if is_executor():
        raise PermissionDenied("это действие выполняет диспетчер")


def _act(ticket_id: int, action: Any, success: str) -> Any:
    """Run one service call on an owned ticket; on a domain error show the card with the message."""
    ticket = _owned_ticket(ticket_id)
    try:
        action(ticket)
    except NotFound:
        raise
    except DomainError as exc:
        db_session().rollback()
        return _card(ticket_id, error=exc.message, status=exc.http_status, form=request.form.to_dict())
    flash(success, "ok")
    return redirect(url_for("panel.ticket_card", ticket_id=ticket_id))


# --- card and actions ---------------------------------------------------------------------------


@bp.get("/tickets/<int:ticket_id>")
@login_required()
def ticket_card(ticket_id: int) -> Any:
    return _card(ticket_id)


@bp.post("/tickets/<int:ticket_id>/transition")
@form_page("panel.ticket_card")
@login_required()
def ticket_transition(ticket_id: int) -> Any:
    raw = request.form.get("to", "")
    try:
        to = S(raw)
    except ValueError:
        to = None

    def run(t: Ticket) -> None:
        if to is None:
            raise ValidationFailed(f"неизвестный статус {raw!r}", field="to")
        if is_executor() and to not in EXECUTOR_TARGETS:
            raise PermissionDenied("исполнитель может только взять заявку в работу или отметить выполнение")
        svc.transition_ticket(db_session(), org=t.organization, ticket_id=t.id, to=to, by=user(),
                              reason=request.form.get("reason", ""))

    return _act(ticket_id, run, f"Статус изменён: {STATUS_TITLES_RU[to]}" if to else "")


@bp.post("/tickets/<int:ticket_id>/assign")
@form_page("panel.ticket_card")
@login_required()
def ticket_assign(ticket_id: int) -> Any:
    def run(t: Ticket) -> None:
        _dispatchers_only()
        executor_id = optional_int(request.form.get("executor_id"), "executor_id")
        if executor_id is None:
            raise ValidationFailed("выберите исполнителя", field="executor_id")
        svc.assign_ticket(db_session(), org=t.organization, ticket_id=t.id, executor_id=executor_id, by=user())

    return _act(ticket_id, run, "Исполнитель назначен")


@bp.post("/tickets/<int:ticket_id>/accept")
@form_page("panel.ticket_card")
@login_required()
def ticket_accept(ticket_id: int) -> Any:
    """The executor acknowledges the ticket from the panel, or a dispatcher does it for them (they
    said so on the phone): `accept_ticket(via="panel")` (decision 0042)."""
    def run(t: Ticket) -> None:
        field_svc.accept_ticket(db_session(), org=t.organization, ticket_id=t.id, by=user(), via="panel")

    return _act(ticket_id, run, "Отмечено: исполнитель принял заявку")


@bp.post("/tickets/<int:ticket_id>/localize")
@form_page("panel.ticket_card")
@login_required()
def ticket_localize(ticket_id: int) -> Any:
    def run(t: Ticket) -> None:
        at = parse_local_datetime(request.form.get("at"), ZoneInfo(t.organization.timezone), "localized_at")
        svc.mark_localized(db_session(), org=t.organization, ticket_id=t.id, by=user(), at=at)

    return _act(ticket_id, run, "Отмечено: авария локализована")


@bp.post("/tickets/<int:ticket_id>/reopen")
@form_page("panel.ticket_card")
@login_required()
def ticket_reopen(ticket_id: int) -> Any:
    def run(t: Ticket) -> None:
        _dispatchers_only()
        svc.reopen_ticket(db_session(), org=t.organization, ticket_id=t.id, by=user(),
                          reason=request.form.get("reason", ""))

    return _act(ticket_id, run, "Заявка открыта повторно")


@bp.post("/tickets/<int:ticket_id>/comments")
@form_page("panel.ticket_card")
@login_required()
def ticket_comment(ticket_id: int) -> Any:
    def run(t: Ticket) -> None:
        svc.add_comment(db_session(), org=t.organization, ticket_id=t.id, text=request.form.get("text", ""),
                        visibility=_visibility(request.form.get("visibility")), by=user())

    return _act(ticket_id, run, "Комментарий добавлен")


@bp.post("/tickets/<int:ticket_id>/edit")
@form_page("panel.ticket_card")
@login_required()
def ticket_edit(ticket_id: int) -> Any:
    def run(t: Ticket) -> None:
        _dispatchers_only()
        form = request.form
        tz = ZoneInfo(t.organization.timezone)
        changes: dict[str, Any] = {}
        for name in ("description", "reporter_name", "reporter_phone"):
            if name in form:
                changes[name] = form.get(name, "")
        if "category_id" in form:
            changes["category_id"] = optional_int(form.get("category_id"), "category_id")
        if "premise_id" in form:
            changes["premise_id"] = optional_int(form.get("premise_id"), "premise_id")
        if "is_emergency_shown" in form:
            changes["is_emergency"] = bool(form.get("is_emergency"))
        for name in ("damage_detected_at", "planned_due_at"):
            if name in form and form.get(name, "") != local_time(getattr(t, name), t.organization.timezone,
                                                                  "%Y-%m-%dT%H:%M"):
                changes[name] = parse_local_datetime(form.get(name), tz, name)
        svc.update_ticket(db_session(), org=t.organization, ticket_id=t.id, changes=changes, by=user(),
                          reason=form.get("reason", ""))

    return _act(ticket_id, run, "Изменения сохранены")


def _visibility(raw: str | None) -> Visibility:
    try:
        return Visibility(raw or Visibility.INTERNAL.value)
    except ValueError as exc:
        raise ValidationFailed("неизвестная видимость", field="visibility", value=raw) from exc


# --- attachments --------------------------------------------------------------------------------


@bp.post("/tickets/<int:ticket_id>/attachments")
@form_page("panel.ticket_card")
@login_required()
def ticket_attach(ticket_id: int) -> Any:
    ticket = _owned_ticket(ticket_id)
    limit_mb = settings().max_upload_mb
    try:
        upload = request.files.get("file")
    except RequestEntityTooLarge:
        return _card(ticket_id, error=f"Файл слишком большой: можно прикрепить не более {limit_mb} МБ",
                     status=413)
    if upload is None or not upload.filename:
        return _card(ticket_id, error="Выберите файл", status=400)
    try:
        visibility = _visibility(request.form.get("visibility"))
    except ValidationFailed as exc:
        return _card(ticket_id, error=exc.message, status=400)
    folder = private_dir(settings().var_dir / "attachments" / str(ticket.organization_id))
    suffix = secure_filename("x" + Path(upload.filename).suffix.lower())[1:][:10]
    stored = folder / (uuid.uuid4().hex + suffix)
    tmp = stored.with_name(stored.name + ".part")
    try:
        with open_private(tmp) as out:
            upload.save(out)
        size = tmp.stat().st_size
        if size > limit_mb * 1024 * 1024:
            raise RequestEntityTooLarge()
        os.replace(tmp, stored)
    except RequestEntityTooLarge:
        tmp.unlink(missing_ok=True)
        return _card(ticket_id, error=f"Файл слишком большой: можно прикрепить не более {limit_mb} МБ",
                     status=413)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    db_session().add(Attachment(
        organization_id=ticket.organization_id, ticket_id=ticket.id, filename=upload.filename[:255],
        content_type=safe_content_type(upload.mimetype, upload.filename)[:100], size=size,
        storage_path=str(stored.relative_to(settings().var_dir)), visibility=visibility,
        uploaded_by_id=user().id, created_at=utcnow(),
    ))
    flash(f"Файл «{upload.filename}» прикреплён", "ok")
    return redirect(url_for("panel.ticket_card", ticket_id=ticket_id) + "#attachments")


@bp.get("/attachments/<int:attachment_id>")
@login_required()
def attachment_download(attachment_id: int) -> Any:
    att = access.visible_attachment(db_session(), user(), attachment_id)
    root = settings().var_dir.resolve()
    path = (root / att.storage_path).resolve()
    if root not in path.parents or not path.is_file():
        abort(404)
    # Rows stored before the type rule are judged again: an HTML file never goes out as HTML.
    resp = send_file(Path(path), mimetype=safe_content_type(att.content_type, att.filename), as_attachment=True,
                     download_name=att.filename)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp


# --- house notes --------------------------------------------------------------------------------


@bp.post("/houses/<int:house_id>/notes")
@login_required()
def house_note_add(house_id: int) -> Any:
    house = access.visible_house(db_session(), user(), house_id)
    text = (request.form.get("text") or "").strip()
    back = request.form.get("ticket_id", "")
    target = url_for("panel.ticket_card", ticket_id=int(back)) if back.isdigit() else url_for("panel.index")
    if not text:
        flash("Пустая заметка не сохранена", "error")
        return redirect(target)
    housing.add_house_note(db_session(), org=org_by_id(house.organization_id), house_id=house.id,
                           text=text[:4000], by=user())
    flash("Заметка по дому сохранена", "ok")
    return redirect(target + "#house-notes")


def _coordinate(raw: str | None, field: str, title: str) -> float | None:
    value = (raw or "").strip().replace(",", ".")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValidationFailed(f"{title}: укажите число, например 55.7512", field=field, value=raw) from None


@bp.post("/houses/<int:house_id>/location")
@login_required(STAFF)
def house_location(house_id: int) -> Any:
    """The house's coordinates from the ticket card (the map and the nearest executor, decision 0044).
    Refused: the card again with the message and the values as typed."""
    house = access.visible_house(db_session(), user(), house_id)
    back = request.form.get("ticket_id", "")
    try:
        housing.set_house_location(
            db_session(), org=org_by_id(house.organization_id), house_id=house.id,
            latitude=_coordinate(request.form.get("latitude"), "latitude", "широта"),
            longitude=_coordinate(request.form.get("longitude"), "longitude", "долгота"),
            by=Actor.of(user(), "panel"))
    except ValidationFailed as exc:
        db_session().rollback()
        if back.isdigit():
            return _card(int(back), error=exc.message, status=400, form=request.form.to_dict())
        raise
    flash("Координаты дома сохранены", "ok")
    target = url_for("panel.ticket_card", ticket_id=int(back)) if back.isdigit() else url_for("panel.index")
    return redirect(target + "#house-location")


# --- new ticket ---------------------------------------------------------------------------------


@bp.route("/tickets/new", methods=["GET", "POST"])
@login_required(STAFF)
def ticket_new() -> Any:
    s = db_session()
    orgs = my_orgs()
    ids = [o.id for o in orgs]
    error = None
    # Drawn again for a form the database failed to store: from what was sent (the premise picker
    # follows the house); a link from a caller card fills it from the query.
    form = request.form.to_dict() if request.method == "POST" else (sent_values() or request.args).to_dict()
    if request.method == "POST":
        try:
            org = org_by_id(form.get("organization_id") or (ids[0] if len(ids) == 1 else None))
            category_id = optional_int(form.get("category_id"), "category_id")
            if category_id is None:
                raise ValidationFailed("выберите категорию", field="category_id")
            tz = ZoneInfo(org.timezone)
            draft = svc.TicketDraft(
                category_id=category_id,
                description=form.get("description", ""),
                channel=Channel.PHONE if form.get("channel", "phone") == "phone" else Channel.PANEL,
                house_id=optional_int(form.get("house_id"), "house_id"),
                premise_id=optional_int(form.get("premise_id"), "premise_id"),
                resident_id=optional_int(form.get("resident_id"), "resident_id"),
                reporter_name=form.get("reporter_name", ""),
                reporter_phone=form.get("reporter_phone") or None,
                is_emergency=bool(form.get("is_emergency")),
                not_emergency_reason=form.get("not_emergency_reason", ""),
                damage_detected_at=parse_local_datetime(form.get("damage_detected_at"), tz, "damage_detected_at"),
                executor_id=optional_int(form.get("executor_id"), "executor_id"),
            )
            ticket = svc.create_ticket(s, org=org, draft=draft, by=user())
            if form.get("call_id"):  # registered from a caller card: link the call and its recording
                from web.panel.calls import link_ticket_to_call

                link_ticket_to_call(s, org=org, call_id=form["call_id"], ticket=ticket, by=user())
        except NotFound:
            s.rollback()
            error = "организация не найдена"
        except DomainError as exc:
            s.rollback()
            error = exc.message
        else:
            flash(readback(ticket, user()), "readback")
            return redirect(url_for("panel.ticket_card", ticket_id=ticket.id))
    now = utcnow()
    org_map = {o.id: o for o in orgs}
    cats = queries.categories(s, ids)
    chosen = possible_id(form.get("category_id"))
    context = dict(
        orgs=orgs, form=form, error=error,
        chosen_emergency=any(c.id == chosen and c.is_emergency for c in cats),
        categories=[(c, org_map[c.organization_id], deadline_text(org_map[c.organization_id], c, c.is_emergency, now))
                    for c in cats],
        executors=queries.executors(s, ids),
        executor_orgs=queries.executor_org_ids(s, [e.id for e in queries.executors(s, ids)]),
        premises=_premises_of(form.get("house_id"), ids),
    )
    return render_template("ticket_new.html", **context), (400 if error else 200)


def _premises_of(raw_house_id: Any, ids: list[int]) -> list[Premise]:
    """The premises of the house a form names, for its premise picker (none for a blank or bad id:
    the form reports its own errors)."""
    house_id = possible_id(raw_house_id)
    if house_id is None:
        return []
    stmt = select(Premise).where(Premise.house_id == house_id, Premise.organization_id.in_(ids))
    return list(db_session().scalars(stmt.order_by(Premise.id)))


def readback(ticket: Ticket, by: User | None) -> str:
    """ПП 354: the number, the time and the operator, to read back to the caller."""
    tz = ticket.organization.timezone
    who = by.full_name if by else "—"
    return (f"Заявка № {ticket.number}, зарегистрирована {local_time(ticket.registered_at, tz, '%d.%m.%Y в %H:%M')}, "
            f"диспетчер {who}")


# --- JSON helpers for the forms -----------------------------------------------------------------


@bp.get("/lookup")
@login_required(STAFF)  # the resident directory: not for executors (models.access.may_search_directory)
def lookup() -> Any:
    s = db_session()
    ids = org_ids()
    q = (request.args.get("q") or "").strip()[:100]
    if len(q) < 2:
        return jsonify({"residents": [], "houses": []})
    found = queries.lookup(s, ids, q)
    orgs = {o.id: o for o in queries.organizations(s, ids)}
    residents = []
    for r in found["residents"]:
        premise = r.premise
        house = premise.house if premise else None
        residents.append({
            "id": r.id, "name": r.full_name, "note": r.note or "",
            "organization_id": r.organization_id, "organization": orgs[r.organization_id].short_name,
            "phones": [{"e164": p.phone, "display": phone_display(p.phone)} for p in r.phones],
            "premise_id": premise.id if premise else None, "premise": premise.label if premise else "",
            "house_id": house.id if house else None, "address": house.address if house else "",
            "account": r.account.number if r.account else "",
        })
    houses = [{"id": h.id, "address": h.address, "organization_id": h.organization_id,
               "organization": orgs[h.organization_id].short_name} for h in found["houses"]]
    return jsonify({"residents": residents, "houses": houses})


@bp.get("/houses/<int:house_id>/premises")
@login_required()
def house_premises(house_id: int) -> Any:
    s = db_session()
    house = access.visible_house(s, user(), house_id)
    premises = s.scalars(select(Premise).where(Premise.house_id == house.id).order_by(Premise.id)).all()
    incidents = queries.active_incidents(s, [house.organization_id], house.id)
    notes = s.scalars(select(HouseNote).where(HouseNote.house_id == house.id).order_by(HouseNote.id.desc())
                      .limit(5)).all()
    return jsonify({
        "house": {"id": house.id, "address": house.address, "organization_id": house.organization_id},
        "premises": [{"id": p.id, "label": p.label} for p in premises],
        "incidents": [{"title": i.title, "announcement": i.announcement} for i in incidents],
        "notes": [n.text for n in notes],
    })


@bp.get("/categories/<int:category_id>/deadline")
@login_required()
def category_deadline(category_id: int) -> Any:
    s = db_session()
    category = queries.get_owned(s, Category, org_ids(), category_id)
    org = s.get(Organization, category.organization_id)
    raw = request.args.get("emergency")
    emergency = category.is_emergency if raw in (None, "") else raw in ("1", "true", "on")
    return jsonify(deadline_text(org, category, emergency, utcnow()))
