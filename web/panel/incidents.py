"""Incidents (аварии) screen: active and recent accidents per house, create, localise, liquidate."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from models import queries
from models.base import utcnow
from models.organization import Organization
from models.outbox import OutboxMessage
from models.rules import messages as message_rules
from models.rules.utilities import UTILITY_TITLES_RU
from models.services import incidents as svc
from models.services import municipality
from models.services.notifications import HOUSE_PURPOSES
from models.ticket import Incident, Ticket
from web.auth import login_required, org_ids
from web.dbsession import session as db_session
from web.inputs import optional_int
from web.kept_form import form_page
from web.panel import bp
from web.panel.common import STAFF, is_executor, my_orgs, org_by_id, parse_local_datetime, user


@bp.get("/incidents")
@login_required()
def incidents() -> Any:
    s = db_session()
    ids = org_ids()
    rows = s.scalars(
        select(Incident).where(Incident.organization_id.in_(ids))
        .options(joinedload(Incident.house))
        .order_by(Incident.liquidated_at.is_not(None), Incident.started_at.desc()).limit(100)
    ).all()
    linked: dict[int, int] = {}
    if rows:
        linked = dict(
            s.execute(
                select(Ticket.incident_id, func.count()).where(Ticket.incident_id.in_([i.id for i in rows]))
                .group_by(Ticket.incident_id)
            ).all()
        )
    notices: dict[int, list[OutboxMessage]] = {}
    show_notices = not is_executor()
    told: dict[tuple[int, str], int] = {}
    if rows and show_notices:  # the municipality's notices: for the office and the inspector
        for m in s.scalars(select(OutboxMessage).where(OutboxMessage.incident_id.in_([i.id for i in rows]),
                                                       OutboxMessage.organization_id.in_(ids),
                                                       OutboxMessage.purpose.startswith(municipality.PURPOSE_PREFIX))
                           .order_by(OutboxMessage.created_at, OutboxMessage.id)):
            if m.incident_id is not None:
                notices.setdefault(m.incident_id, []).append(m)
        # The residents told (one message each): counted, not listed.
        for incident_id, purpose, count in s.execute(
                select(OutboxMessage.incident_id, OutboxMessage.purpose, func.count())
                .where(OutboxMessage.incident_id.in_([i.id for i in rows]), OutboxMessage.organization_id.in_(ids),
                       OutboxMessage.purpose.in_(tuple(HOUSE_PURPOSES.values())))
                .group_by(OutboxMessage.incident_id, OutboxMessage.purpose)):
            told[(incident_id, purpose)] = count
    orgs = my_orgs()
    return render_template(
        "incidents/list.html", incidents=rows, orgs=orgs, org_map={o.id: o for o in orgs},
        houses=queries.houses(s, ids, limit=1000), linked=linked, utility_titles=UTILITY_TITLES_RU,
        notices=notices, show_notices=show_notices, message_titles=message_rules, told=told,
        house_purposes=HOUSE_PURPOSES,
    )


@bp.post("/incidents")
@login_required(STAFF)
def incident_create() -> Any:
    form = request.form
    org = org_by_id(form.get("organization_id"))
    tz = ZoneInfo(org.timezone)
    house_id = optional_int(form.get("house_id"), "house_id") or 0
    incident = svc.create_incident(
        db_session(), org=org, house_id=house_id, title=form.get("title", ""),
        utility=form.get("utility", ""), announcement=form.get("announcement", ""),
        started_at=parse_local_datetime(form.get("started_at"), tz, "started_at"),
        expected_end_at=parse_local_datetime(form.get("expected_end_at"), tz, "expected_end_at"), by=user(),
    )
    flash(f"Авария зарегистрирована: {incident.title}", "ok")
    return redirect(url_for("panel.incidents"))


def _incident(incident_id: int) -> tuple[Incident, Organization]:
    """One of the user's organizations' incidents (another's is "not found"), with its organization."""
    incident = svc.get_incident(db_session(), org_ids=org_ids(), incident_id=incident_id)
    return incident, org_by_id(incident.organization_id)


@bp.post("/incidents/<int:incident_id>/<any(localize, liquidate):action>")
@form_page("panel.incidents")
@login_required(STAFF)
def incident_progress(incident_id: int, action: str) -> Any:
    s = db_session()
    incident, org = _incident(incident_id)
    at = parse_local_datetime(request.form.get("at"), ZoneInfo(org.timezone), "at") or utcnow()
    if action == "localize":
        svc.localize_incident(s, org=org, incident_id=incident.id, at=at)
        flash("Авария локализована", "ok")
    else:
        svc.liquidate_incident(s, org=org, incident_id=incident.id, at=at, by=user())
        follow_up = svc.follow_up_tickets(s, [incident.id]).get(incident.id)
        flash("Авария ликвидирована" + (f"; зарегистрирована заявка № {follow_up.number} на внеочередной осмотр "
                                        "общего имущества (срок — сутки)" if follow_up else ""), "ok")
    return redirect(url_for("panel.incidents"))


@bp.post("/incidents/<int:incident_id>/notify/<any(incident, restored):event>")
@form_page("panel.incidents")
@login_required(STAFF)
def incident_notify(incident_id: int, event: str) -> Any:
    """«Оповестить жителей дома»: the accident's notice, or the supply restored (regulations Q4)."""
    incident, org = _incident(incident_id)
    result = svc.notify_residents(db_session(), org=org, incident_id=incident.id, event=event)
    what = "об аварии" if event == "incident" else "об устранении аварии"
    parts = [f"Жителям дома {what}: сообщений в очереди — {result.queued}"]
    if result.already:
        parts.append(f"уже оповещены раньше — {result.already}")
    if result.unreachable:
        parts.append(f"без мобильного телефона и эл. почты или отказались от уведомлений — {result.unreachable}")
    flash("; ".join(parts) + ". SMS в тихие часы уйдут после их окончания.", "ok")
    return redirect(url_for("panel.incidents"))
