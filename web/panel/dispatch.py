"""The dispatcher's map and dispatch board (issue 15 C; decision 0044).

- «Карта» `/map`: the organization's open tickets as markers coloured by urgency and its executors
  on duty with their last-seen time; the markers come from `/map/data.json` (the same reads as
  `GET /api/v1/dispatch/map`) and are fetched again on every ticket or duty event of the stream.
  Tiles come only from the organization's configured tile server; without one the map draws a
  plain grid and asks no other host (a closed network).
- «Доска» `/board`: executors as columns (on duty, busy, off duty) with their open tickets; a
  ticket dragged onto another column, or the select and button on each card (the keyboard way),
  is reassigned by `POST /board/assign` through the ticket service's `assign_ticket`. Live: the
  board's columns are fetched again (`/board?partial=1`) on ticket and duty events.

Staff act; an inspector reads both pages (no executor positions: personal data, decision 0042;
the board's forms are not offered, and every write is refused to them in web/auth.py anyway).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import flash, jsonify, make_response, redirect, render_template, request, url_for

from models import dispatch
from models.errors import DomainError, ValidationFailed
from models.organization import Organization
from models.rules import dispatch as rules
from models.rules.access import READERS, STAFF
from models.services import tickets as tickets_svc
from web.auth import login_required
from web.clock import now as utcnow
from web.dbsession import session as db_session
from web.filters import local_time
from web.inputs import optional_int
from web.panel import bp
from web.panel.common import my_orgs, org_by_id, user
from web.security import csp_with_images


def chosen_org(raw: Any) -> Organization | None:
    """The organization the page shows: the one asked for (another's id: 404), else the first."""
    if raw not in (None, ""):
        return org_by_id(raw)
    orgs = my_orgs()
    return orgs[0] if orgs else None


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def ticket_json(t: dispatch.OpenTicket, tz: str, names: dict[int, str], card_prefix: str) -> dict[str, Any]:
    """One ticket of the map; `card_prefix` is the cards' address less the id (one `url_for` per
    map, not per ticket: a third of the map's time with 2 000 tickets)."""
    return {
        "id": t.id, "number": t.number, "lat": t.lat, "lon": t.lon, "urgency": t.urgency.value,
        "urgency_title": t.urgency_title, "is_emergency": t.is_emergency, "status": t.status.value,
        "status_title": t.status_title, "category": t.category, "address": t.address,
        "executor_id": t.executor_id, "executor_name": names.get(t.executor_id or 0),
        "next_due_at": _iso(t.next_due_at), "next_due_local": local_time(t.next_due_at, tz) if t.next_due_at else None,
        "url": f"{card_prefix}{t.id}",
    }


def executor_json(e: dispatch.ExecutorView, tz: str) -> dict[str, Any]:
    return {
        "user_id": e.user_id, "full_name": e.full_name, "state": e.state,
        "state_title": dispatch.EXECUTOR_STATE_TITLES_RU[e.state], "lat": e.lat, "lon": e.lon,
        "position_at": _iso(e.position_at), "last_seen_at": _iso(e.last_seen_at),
        "last_seen_local": local_time(e.last_seen_at, tz) if e.last_seen_at else None,
        "open_tickets": e.open_tickets,
    }


def map_json(org: Organization, *, with_executors: bool, now: datetime) -> dict[str, Any]:
    """The map's data for one organization (the panel's data endpoint and the API give this)."""
    data = dispatch.map_data(db_session(), org_id=org.id, now=now, with_executors=with_executors)
    names = data.names
    card_prefix = url_for("panel.ticket_card", ticket_id=1)[:-1]
    return {
        "organization_id": org.id, "server_time": _iso(now), "tile_url": org.map_tile_url,
        "tickets": [ticket_json(t, org.timezone, names, card_prefix) for t in data.tickets],
        "unplaced": [ticket_json(t, org.timezone, names, card_prefix) for t in data.unplaced],
        "executors": [executor_json(e, org.timezone) for e in data.executors],
        "positions_shown": with_executors,
    }


def shows_positions() -> bool:
    """Executors' positions are for the organization's staff (not inspectors: decision 0042)."""
    return user().role in STAFF


@bp.get("/map")
@login_required(READERS)
def dispatch_map() -> Any:
    org = chosen_org(request.args.get("organization_id"))
    page = render_template(
        "dispatch/map.html", org=org, orgs=my_orgs(), urgency_titles=rules.URGENCY_TITLES_RU,
        data_url=url_for("panel.dispatch_map_data", organization_id=org.id) if org else "",
        shows_positions=shows_positions())
    return _with_tile_images(page, org)


def _with_tile_images(page: str, org: Organization | None) -> Any:
    resp = make_response(page)
    origin = rules.tile_origin(org.map_tile_url if org else None)
    if origin:  # the tile server's images, and no other host's, on this page only
        resp.headers["Content-Security-Policy"] = csp_with_images(origin)
    return resp


@bp.get("/map/data.json")
@login_required(READERS)
def dispatch_map_data() -> Any:
    org = chosen_org(request.args.get("organization_id"))
    if org is None:
        return jsonify({"organization_id": None, "tile_url": None, "tickets": [], "unplaced": [], "executors": [],
                        "positions_shown": False, "server_time": _iso(utcnow())})
    return jsonify(map_json(org, with_executors=shows_positions(), now=utcnow()))


def board_context(org: Organization | None) -> dict[str, Any]:
    columns = dispatch.board(db_session(), org_id=org.id, now=utcnow()) if org else []
    return dict(org=org, orgs=my_orgs(), columns=columns, can_assign=user().role in STAFF,
                executors=[c.executor for c in columns if c.executor is not None],
                state_titles=dispatch.EXECUTOR_STATE_TITLES_RU, tz=org.timezone if org else "Europe/Moscow")


@bp.get("/board")
@login_required(READERS)
def dispatch_board() -> Any:
    org = chosen_org(request.args.get("organization_id"))
    context = board_context(org)
    if request.args.get("partial") == "1":
        return render_template("dispatch/_board_columns.html", **context)
    return render_template("dispatch/board.html", **context)


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


@bp.post("/board/assign")
@login_required(STAFF)
def dispatch_board_assign() -> Any:
    """Reassign from the board (a drag, or a card's select and button): `ticket_id`, `executor_id`.
    JSON for the board's script, a redirect back to the board for the plain form."""
    form = request.form
    org_id = optional_int(form.get("organization_id"), "organization_id")
    try:
        ticket_id = optional_int(form.get("ticket_id"), "ticket_id")
        executor_id = optional_int(form.get("executor_id"), "executor_id")
        if ticket_id is None:
            raise ValidationFailed("не указана заявка", field="ticket_id")
        if executor_id is None:
            raise ValidationFailed("выберите исполнителя", field="executor_id")
        s = db_session()
        ticket = tickets_svc.get_ticket(s, org_ids=[o.id for o in my_orgs()], ticket_id=ticket_id)
        org_id = ticket.organization_id
        if ticket.executor_id == executor_id:
            message = "Исполнитель уже назначен"
        else:
            tickets_svc.assign_ticket(s, org=ticket.organization, ticket_id=ticket.id, executor_id=executor_id,
                                      by=user())
            message = f"Заявка {ticket.number}: назначен {ticket.executor.full_name if ticket.executor else ''}"
    except DomainError as exc:
        db_session().rollback()
        if _wants_json():
            return jsonify({"ok": False, "message": exc.message}), exc.http_status
        flash(exc.message, "error")
        return redirect(url_for("panel.dispatch_board", organization_id=org_id))
    if _wants_json():
        return jsonify({"ok": True, "message": message})
    flash(message, "ok")
    return redirect(url_for("panel.dispatch_board", organization_id=org_id))


def nearest_for_card(ticket: Any) -> list[dispatch.Suggestion]:
    """The ticket card's «ближайший свободный исполнитель» for an open emergency with a placed house."""
    if not ticket.is_emergency or ticket.house is None:
        return []
    return dispatch.nearest_free_executors(db_session(), org_id=ticket.organization_id, lat=ticket.house.latitude,
                                           lon=ticket.house.longitude)
