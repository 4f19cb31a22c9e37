"""Login, logout and the panel's home: the live journal (filters, keyset pages, live rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import urlencode

from flask import current_app, flash, redirect, render_template, request, session, url_for
from markupsafe import Markup
from sqlalchemy import Select, select
from werkzeug.datastructures import MultiDict

from models import queries
from models.base import utcnow
from models.errors import ValidationFailed
from models.housing import House, Premise
from models.organization import Organization, User
from models.rules.phones import display as phone_display
from models.rules.ticket_states import OPEN, STATUS_TITLES_RU
from models.services import access as access_svc
from models.services import alerts
from models.services import two_factor as two_factor_svc
from models.ticket import Category, Ticket, TicketStatus
from web.auth import (
    begin_second_factor,
    check_login,
    clear_second_factor,
    current_user,
    expired_message,
    locked_minutes,
    login_limits,
    login_required,
    login_user,
    logout_user,
    org_ids,
    own_account,
    pending_second_factor,
)
from web.clock import now as clock_now
from web.dbsession import commit_now
from web.dbsession import session as db_session
from web.filters import Deadline, deadline_parts, dm, hm, zone
from web.inputs import possible_id
from web.journal_args import encode_cursor, parse_journal_filter
from web.panel import bp, console
from web.panel.common import (
    FILTER_ARGS,
    check_visible,
    filter_args,
    filter_tz,
    my_orgs,
    org_badge_class,
    scope_journal,
)
from web.redirects import next_target

JOURNAL_SESSION_KEY = "journal_args"
PAGE_SIZE = 50


def url_args(args: MultiDict[str, str]) -> dict[str, list[str]]:
    """A MultiDict as url_for keyword arguments (repeated keys stay repeated)."""
    return {key: args.getlist(key) for key in args}


@bp.app_template_global()
def has_endpoint(name: str) -> bool:
    """For links to pages other modules add (export, import): shown only once they exist."""
    return name in current_app.view_functions


bp.add_app_template_global(org_badge_class, "org_badge_class")


@bp.route("/login", methods=["GET", "POST"])
@own_account
def login() -> Any:
    if request.method == "POST":
        outcome = check_login(request.form.get("login") or "", request.form.get("password") or "")
        if outcome.user is not None:
            if outcome.user.two_factor_enabled:  # the password was right; now the code
                begin_second_factor(outcome.user)
                return redirect(url_for("panel.login_code", next=next_target("") or None))
            login_user(outcome.user)
            return redirect(next_target(url_for("panel.index")))
        if outcome.expired is not None:
            flash(expired_message(outcome.expired), "error")
            return render_template("login.html"), 403
        commit_now()  # the failure counts towards the lock-out although the answer is an error
        if outcome.locked_until is not None:
            flash(f"Слишком много неудачных попыток входа. Вход закрыт ещё на {locked_minutes(outcome.locked_until)} "
                  "мин.; если это вы, обратитесь к администратору.", "error")
            return render_template("login.html"), 429
        flash("Неверный логин или пароль", "error")
        return render_template("login.html"), 401
    if current_user() is not None:
        return redirect(url_for("panel.index"))
    return render_template("login.html")


@bp.route("/login/code", methods=["GET", "POST"])
@own_account
def login_code() -> Any:
    """The login's second step for a user with TOTP: a code from the app or a recovery code,
    throttled and locked out as passwords are."""
    user = pending_second_factor()
    if user is None:
        clear_second_factor()
        flash("Время ввода кода истекло или вход не начат: введите логин и пароль ещё раз", "error")
        return redirect(url_for("panel.login", next=next_target("") or None))
    if request.method == "GET":
        return render_template("login_code.html", user=user)
    s, at = db_session(), clock_now()
    code = request.form.get("otp") or ""
    outcome = access_svc.authenticate_second_factor(
        s, user=user, check=lambda: two_factor_svc.check_code(s, user=user, code=code, now=at),
        ip=request.remote_addr, now=at, limits=login_limits())
    if outcome.user is not None:
        login_user(outcome.user)
        return redirect(next_target(url_for("panel.index")))
    commit_now()  # the failure counts towards the lock-out although the answer is an error
    if outcome.locked_until is not None:
        clear_second_factor()
        flash(f"Слишком много неудачных попыток входа. Вход закрыт ещё на {locked_minutes(outcome.locked_until)} "
              "мин.; если это вы, обратитесь к администратору.", "error")
        return render_template("login.html"), 429
    flash("Неверный код", "error")
    return render_template("login_code.html", user=user), 401


@bp.post("/logout")
@own_account
def logout() -> Any:
    logout_user()
    return redirect(url_for("panel.login"))


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One journal row, every displayed string computed here once (the template only places them)."""

    id: int
    href: str
    row_class: str
    number: str
    time: str
    date: str
    org_badge: Markup
    address: str
    premise: str
    reporter_name: str
    phone: str
    category: str
    description: str
    description_short: str
    is_emergency: bool
    status: str
    status_title: str
    reopen_count: int
    executor: str
    deadline: Deadline
    notified: str
    rating: int | None = None  # 1–2: needs the manager's attention
    unacknowledged: bool = False  # an emergency's executor did not accept (decision 0043)
    returned: bool = False  # the executor could not complete it: back to the dispatcher (decision 0042)
    unaccepted: bool = False  # an emergency assigned and not yet acknowledged by its executor


class _Ticket(NamedTuple):
    """What a journal row reads of a ticket (plain columns, no ORM objects: a page is 50 of them).
    The deadline rules are Ticket's own methods, not copies."""

    id: int
    number: str
    organization_id: int
    registered_at: datetime
    reporter_name: str
    reporter_phone: str | None
    description: str
    is_emergency: bool
    status: TicketStatus
    reopen_count: int
    localize_due_at: datetime | None
    localized_at: datetime | None
    due_at: datetime
    next_due_at: datetime | None
    resolved_at: datetime | None
    municipality_notified_at: datetime | None
    address: str | None
    premise: str | None
    category: str | None
    executor: str | None
    rating: int | None
    returned_at: datetime | None
    accepted_at: datetime | None
    executor_id: int | None

    is_overdue = Ticket.is_overdue
    was_late = Ticket.was_late
    broken_deadlines = Ticket.broken_deadlines


def _name_of(column: Any, key: Any, ref: Any) -> Any:
    """A name looked up per row as a correlated scalar subquery: on PostgreSQL, joining houses,
    premises, categories and users into the journal SELECT costs 2–5 ms of planning per request
    (the join order search); these subqueries plan in ~0.2 ms and run as index lookups per row."""
    return select(column).where(key == ref).scalar_subquery()  # `key` is a primary key


# The same badge as _macros.org_badge, built once per organization instead of once per row.
_ORG_BADGE = Markup('<span class="{}" title="{}">{}</span>')
_ROW_COLUMNS = (
    Ticket.id, Ticket.number, Ticket.organization_id, Ticket.registered_at, Ticket.reporter_name,
    Ticket.reporter_phone, Ticket.description, Ticket.is_emergency, Ticket.status, Ticket.reopen_count,
    Ticket.localize_due_at, Ticket.localized_at, Ticket.due_at, Ticket.next_due_at, Ticket.resolved_at,
    Ticket.municipality_notified_at,
    _name_of(House.address, House.id, Ticket.house_id),
    _name_of(Premise.kind + " " + Premise.number, Premise.id, Ticket.premise_id),
    _name_of(Category.name, Category.id, Ticket.category_id),
    _name_of(User.full_name, User.id, Ticket.executor_id),
    Ticket.rating, Ticket.returned_at, Ticket.accepted_at, Ticket.executor_id,
)
DESCRIPTION_CHARS = 90


def _short(text: str, length: int = DESCRIPTION_CHARS) -> str:
    """Jinja's `truncate(length, True, '…')` (leeway 5)."""
    return text if len(text) <= length + 5 else text[: length - 1] + "…"


def journal_rows(
    stmt: Select[tuple[Ticket]], orgs: list[Organization], now: datetime
) -> tuple[list[_Ticket], list[JournalRow]]:
    """Run a journal SELECT (queries.journal_select, limited) for the columns a row shows, the names
    joined in; the tickets (for the paging cursor) and their rows ready for _rows.html."""
    stmt = stmt.with_only_columns(*_ROW_COLUMNS, maintain_column_froms=False)
    by_id = {o.id: (zone(o.timezone), _ORG_BADGE.format(org_badge_class(o.id), o.name, o.short_name))
             for o in orgs}
    card = url_for("panel.ticket_card", ticket_id=0)[:-1]  # ".../tickets/" + id
    found: list[_Ticket] = []
    rows: list[JournalRow] = []
    fetched = [_Ticket._make(raw) for raw in db_session().connection().execute(stmt).all()]  # Core: plain rows
    unacked = alerts.unacknowledged_ticket_ids(
        db_session(), org_ids=list(by_id),
        ticket_ids=[t.id for t in fetched if t.is_emergency and t.status in (TicketStatus.ASSIGNED,
                                                                             TicketStatus.IN_PROGRESS)])
    for t in fetched:
        tz, badge = by_id[t.organization_id]
        overdue = t.is_overdue(now)
        registered = t.registered_at.astimezone(tz)
        notified = t.municipality_notified_at.astimezone(tz) if t.municipality_notified_at else None
        found.append(t)
        rows.append(JournalRow(
            id=t.id,
            href=f"{card}{t.id}",
            row_class=(" row-emergency" if t.is_emergency else "") + (" row-overdue" if overdue else ""),
            number=t.number,
            time=hm(registered),
            date=f"{dm(registered)}.{registered.year}",
            org_badge=badge,
            address=t.address or "",
            premise=t.premise or "",
            reporter_name=t.reporter_name,
            phone=phone_display(t.reporter_phone),
            category=t.category or "",
            description=t.description,
            description_short=_short(t.description),
            is_emergency=t.is_emergency,
            status=t.status.value,
            status_title=STATUS_TITLES_RU.get(t.status, t.status.value),
            reopen_count=t.reopen_count,
            executor=t.executor or "—",
            deadline=deadline_parts(t, now, tz),  # type: ignore[arg-type]
            notified=f"{hm(notified)} {dm(notified)}" if notified else "",
            rating=t.rating,
            unacknowledged=t.id in unacked,
            returned=t.returned_at is not None and t.executor_id is None,
            unaccepted=t.is_emergency and t.executor_id is not None and t.accepted_at is None and t.status in OPEN,
        ))
    return found, rows


def _options(items: list[tuple[int, str]], chosen: str) -> list[tuple[str, str, bool]]:
    return [(str(i), label, str(i) == chosen) for i, label in items]


_YES_NO = {"emergency": {"1": "только аварийные", "0": "без аварийных"},
           "overdue": {"1": "просроченные", "0": "в срок"}}
_DATE_TITLES = {"registered_from": "зарегистрирована с", "registered_to": "зарегистрирована по",
                "incident_started_from": "начало аварии с", "incident_started_to": "начало аварии по",
                "incident_liquidated_from": "устранение с", "incident_liquidated_to": "устранение по"}


def _chosen(options: list[tuple[str, str, bool]], raw: str) -> str:
    return next((label for _v, label, sel in options if sel), raw)


def _active_filters(values: dict[str, str], statuses: set[str], house: str | None,
                    org_opts: list[tuple[str, str, bool]], category_opts: list[tuple[str, str, bool]],
                    executor_opts: list[tuple[str, str, bool]]) -> list[str]:
    """The filters in force, as a person reads them: the journal remembers them between visits, so
    the filter line shows them as chips (their one display) beside a one-click reset (issue 13 item 6)."""
    out: list[str] = []
    if values["q"]:
        out.append(f"поиск: «{values['q'][:60]}»")
    if values["organization_id"]:
        out.append("организация: " + _chosen(org_opts, values["organization_id"]))
    if values["house_id"]:
        out.append("дом: " + (house or values["house_id"]))
    chosen = [STATUS_TITLES_RU[st] for st in TicketStatus if st.value in statuses]
    if chosen:
        out.append("статус: " + ", ".join(chosen))
    if values["category_id"]:
        out.append("категория: " + _chosen(category_opts, values["category_id"]))
    if values["executor_id"]:
        out.append("исполнитель: " + _chosen(executor_opts, values["executor_id"]))
    for name, titles in _YES_NO.items():
        if values[name] in titles:
            out.append(titles[values[name]])
    for name, title in _DATE_TITLES.items():
        if values[name]:
            raw = values[name]
            shown = f"{raw[8:10]}.{raw[5:7]}.{raw[0:4]}" if len(raw) == 10 and raw[4] == "-" else raw
            out.append(f"{title} {shown}")
    return out


def _filter_form(args: MultiDict[str, str], orgs: list[Organization], ids: list[int]) -> dict[str, Any]:
    """The filter form's values, options and selections, computed once (plain strings and tuples)."""
    s = db_session()
    many = len(orgs) > 1
    short = {o.id: o.short_name for o in orgs}
    values = {name: args.get(name, "") for name in FILTER_ARGS}
    categories = [(c.id, f"{c.name} ({short.get(c.organization_id, '')})" if many else c.name)
                  for c in queries.categories(s, ids)]
    executors = [(e.id, e.full_name) for e in queries.executors(s, ids)]
    house = None
    house_raw = values["house_id"]
    house_id = possible_id(house_raw)
    if house_id is not None:
        h = s.get(House, house_id)
        if h is not None and h.organization_id in ids:
            house = h.address + (f" · {short[h.organization_id]}" if many else "")
    chosen_statuses = set(",".join(args.getlist("status")).split(","))
    category_opts = _options(categories, values["category_id"])
    executor_opts = _options(executors, values["executor_id"])
    org_opts = _options([(o.id, o.short_name) for o in orgs], values["organization_id"])
    return dict(
        active_filters=_active_filters(values, chosen_statuses, house, org_opts, category_opts, executor_opts),
        v=values,
        org_options=org_opts if many else [],
        org_short=short if many else {},
        category_options=category_opts,
        executor_options=executor_opts,
        house_label=house if house is not None else house_raw,
        statuses=[(st.value, STATUS_TITLES_RU[st], st.value in chosen_statuses) for st in TicketStatus],
        incident_open=any(values[n] for n in FILTER_ARGS if n.startswith("incident_")),
    )


@bp.get("/")
@login_required()
def index() -> Any:
    """The journal. Filters are remembered in the session: a bare `/` reopens the last filter."""
    if request.args.get("reset"):
        session.pop(JOURNAL_SESSION_KEY, None)
        return redirect(url_for("panel.index", f="1"))
    args = filter_args(request.args)
    cursor = request.args.get("cursor", "").strip()
    partial = request.args.get("partial") == "1"
    if not request.args and session.get(JOURNAL_SESSION_KEY):
        return redirect(url_for("panel.index") + "?" + session[JOURNAL_SESSION_KEY])

    orgs = my_orgs()
    ids = [o.id for o in orgs]
    tz = filter_tz(args, orgs)
    now = utcnow()
    s = db_session()
    error = None
    rows: list[JournalRow] = []
    next_url = None
    try:
        f = scope_journal(parse_journal_filter(request.args, tz, default_limit=PAGE_SIZE))
    except ValidationFailed as exc:
        error = exc.message
    else:
        found, rows = journal_rows(queries.journal_select(ids, f, now).limit(f.limit + 1), orgs, now)
        if len(rows) > f.limit:
            found, rows = found[: f.limit], rows[: f.limit]
            last = found[-1]  # encode_cursor reads registered_at and id
            cursor_arg = encode_cursor(last)  # type: ignore[arg-type]
            next_url = url_for("panel.index", **url_args(args), f="1", cursor=cursor_arg)
        if not cursor and not partial:
            remembered = urlencode([*args.items(multi=True), ("f", "1")])
            if session.get(JOURNAL_SESSION_KEY) != remembered:  # an unchanged session is not re-signed
                session[JOURNAL_SESSION_KEY] = remembered

    if partial:
        html = render_template("_rows.html", rows=rows)
        resp = current_app.make_response((html, 400 if error else 200))
        if next_url:
            resp.headers["X-Next-Url"] = next_url
        return resp

    overdue_count, last_event_id = queries.journal_counters(s, ids, now)
    context = dict(
        rows=rows,
        error=error,
        next_url=next_url,
        cursor=cursor,
        live_query=urlencode(list(args.items(multi=True))),
        export_args=url_args(args),
        overdue_count=overdue_count,
        last_event_id=last_event_id,
        **_filter_form(args, orgs, ids),
    )
    if console.applies():  # staff: the journal is the centre of the dispatcher's console
        context.update(console.console_context(s, orgs, now))
        return render_template("console.html", **context), 400 if error else 200
    return render_template("journal.html", **context), 400 if error else 200


@bp.get("/tickets/<int:ticket_id>/row")
@login_required()
def ticket_row(ticket_id: int) -> Any:
    """One journal row (for live updates). 204 when the ticket does not match the given filter."""
    s = db_session()
    ids = org_ids()
    check_visible(queries.get_owned(s, Ticket, ids, ticket_id))  # another organization's ticket: 404
    orgs = my_orgs()
    now = utcnow()
    f = scope_journal(parse_journal_filter(filter_args(request.args), filter_tz(request.args, orgs)))
    f.before = None
    stmt = queries.journal_select(ids, f, now).where(Ticket.id == ticket_id).limit(1)
    _, rows = journal_rows(stmt, orgs, now)
    if not rows:
        return "", 204
    return render_template("_rows.html", rows=rows)


from web import sse  # noqa: E402,F401  (registers /events/stream on this blueprint)
from web.panel import tickets  # noqa: E402,F401
