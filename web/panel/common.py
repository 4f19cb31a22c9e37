"""Helpers shared by the panel's views: the caller's organizations, time zones, form parsing
(integers and date-times are bounded by `web.inputs`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from flask import current_app, flash, redirect, request
from werkzeug.datastructures import MultiDict

from models import access, queries
from models.errors import NotFound, ValidationFailed
from models.organization import Organization, User
from models.queries import JournalFilter
from models.rules.access import STAFF as STAFF  # views import it from here
from models.ticket import Ticket
from openads.config import Settings
from web.auth import current_user, org_ids
from web.dbsession import session as db_session
from web.inputs import checked_moment, optional_int

# Query-string arguments of the journal filter (everything parse_journal_filter understands but paging).
FILTER_ARGS = (
    "organization_id", "house_id", "status", "category_id", "executor_id", "emergency", "overdue",
    "registered_from", "registered_to", "incident_started_from", "incident_started_to",
    "incident_liquidated_from", "incident_liquidated_to", "q",
)


def settings() -> Settings:
    return current_app.config["OPENADS_SETTINGS"]  # type: ignore[no-any-return]


def user() -> User:
    u = current_user()
    assert u is not None  # views are behind login_required
    return u


def my_orgs() -> list[Organization]:
    """The caller's organizations by name (loaded with the user: no query of their own)."""
    u = current_user()
    if u is None or not u.memberships:
        return list(queries.organizations(db_session(), org_ids()))  # none: "нет доступных организаций"
    return sorted((m.organization for m in u.memberships), key=lambda o: o.name)


def org_by_id(raw: Any) -> Organization:
    """One of the caller's organizations by id; another organization's id is "not found"."""
    oid = optional_int(raw, "organization_id")
    if oid is None:
        raise ValidationFailed("выберите организацию", field="organization_id")
    if oid not in org_ids():
        raise NotFound("организация не найдена", organization_id=oid)
    org = db_session().get(Organization, oid)
    if org is None:
        raise NotFound("организация не найдена", organization_id=oid)
    return org


def filter_args(args: MultiDict[str, str]) -> MultiDict[str, str]:
    """Only the journal filter's arguments, empty values dropped (for links, export, live rows)."""
    out: MultiDict[str, str] = MultiDict()
    for name in FILTER_ARGS:
        for value in args.getlist(name):
            if value.strip():
                out.add(name, value.strip())
    return out


def filter_tz(args: MultiDict[str, str], orgs: list[Organization]) -> ZoneInfo:
    """Dates in the filter are read in the chosen organization's zone (else the first one's)."""
    chosen = args.get("organization_id", "")
    for org in orgs:
        if str(org.id) == chosen:
            return ZoneInfo(org.timezone)
    return ZoneInfo(orgs[0].timezone) if orgs else ZoneInfo("Europe/Moscow")


def parse_local_datetime(raw: str | None, tz: ZoneInfo, field: str) -> datetime | None:
    """`<input type=datetime-local>` value in the organization's zone → aware datetime (or None)."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationFailed(f"неверная дата и время: {raw!r}", field=field, value=raw) from exc
    checked_moment(moment, field)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment


def org_badge_class(org_id: int) -> str:
    """The badge's classes: its hue in 10° steps (app.css `.hue-N`; no style="" under the CSP).
    app.js `orgBadge` computes the same."""
    return f"org-badge hue-{org_colour(org_id) // 10}"


def org_colour(org_id: int) -> int:
    """A stable hue for the organization's badge (always shown together with its name)."""
    return (org_id * 137 + 200) % 360


# The signed-in user's side of `models.access` (the rule itself lives there).


def is_executor() -> bool:
    return access.is_executor(user())


def scope_journal(f: JournalFilter) -> JournalFilter:
    return access.scope_journal(user(), f)


def check_visible(ticket: Ticket) -> Ticket:
    """404 for a ticket the user must not see (an executor: one not assigned to them)."""
    return access.visible_ticket(user(), ticket)


T = TypeVar("T")


def save_form(write: Callable[[], T], rerender: Callable[[dict[str, str], dict[str, str]], Any],
              done: Callable[[T], tuple[str, str]]) -> Any:
    """A panel form's POST: `write` calls the service on the request's session. Refused
    (ValidationFailed): the session is rolled back and `rerender(form as typed, field errors)`
    shows the page again (400: nothing typed is lost). Saved: `done(result)` gives the message
    flashed and the address redirected to."""
    try:
        result = write()
    except ValidationFailed as exc:
        db_session().rollback()
        return rerender(request.form.to_dict(), field_errors(exc))
    message, to = done(result)
    flash(message, "ok")
    return redirect(to)


def field_errors(exc: ValidationFailed) -> dict[str, str]:
    """The message of each wrong field (a service's `details["fields"]`, else its one field)."""
    fields = exc.details.get("fields")
    if isinstance(fields, list) and fields:
        return {str(f["field"]): str(f["message"]) for f in fields}
    return {str(exc.details.get("field") or "form"): exc.message}
