"""Login, logout and the panel's home: the live journal (filters, keyset pages, live rows)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import current_app, flash, redirect, render_template, request, session, url_for
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from models import queries
from models.base import utcnow
from models.errors import ValidationFailed
from models.organization import User
from models.ticket import Ticket, TicketStatus
from web.auth import current_user, login_required, login_user, logout_user, org_ids, verify_password
from web.dbsession import session as db_session
from web.journal_args import encode_cursor, parse_journal_filter
from web.panel import bp
from web.panel.common import filter_args, filter_tz, my_orgs, org_colour

JOURNAL_SESSION_KEY = "journal_args"
PAGE_SIZE = 50


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("panel.index")


def url_args(args: MultiDict[str, str]) -> dict[str, list[str]]:
    """A MultiDict as url_for keyword arguments (repeated keys stay repeated)."""
    return {key: args.getlist(key) for key in args}


@bp.app_template_global()
def has_endpoint(name: str) -> bool:
    """For links to pages other modules add (export, import): shown only once they exist."""
    return name in current_app.view_functions


bp.add_app_template_global(org_colour, "org_colour")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "POST":
        login_name = (request.form.get("login") or "").strip()
        user = db_session().scalar(select(User).where(User.login == login_name, User.is_active.is_(True)))
        if user is not None and verify_password(user, request.form.get("password") or ""):
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        flash("Неверный логин или пароль", "error")
        return render_template("login.html"), 401
    if current_user() is not None:
        return redirect(url_for("panel.index"))
    return render_template("login.html")


@bp.post("/logout")
def logout() -> Any:
    logout_user()
    return redirect(url_for("panel.login"))


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
    rows: list[Ticket] = []
    next_url = None
    try:
        f = parse_journal_filter(request.args, tz, default_limit=PAGE_SIZE)
    except ValidationFailed as exc:
        error = exc.message
    else:
        limit = f.limit
        f.limit = limit + 1
        rows = queries.journal_page(s, ids, f, now)
        if len(rows) > limit:
            rows = rows[:limit]
            next_url = url_for("panel.index", **url_args(args), f="1", cursor=encode_cursor(rows[-1]))
        if not cursor and not partial:
            session[JOURNAL_SESSION_KEY] = urlencode([*args.items(multi=True), ("f", "1")])

    if partial:
        html = render_template("_rows.html", tickets=rows, now=now)
        resp = current_app.make_response((html, 400 if error else 200))
        if next_url:
            resp.headers["X-Next-Url"] = next_url
        return resp

    from web.sse import current_max_id

    context = dict(
        tickets=rows,
        now=now,
        error=error,
        next_url=next_url,
        cursor=cursor,
        args=args,
        live_query=urlencode(list(args.items(multi=True))),
        export_args=url_args(args),
        orgs=orgs,
        houses=queries.houses(s, ids, limit=2000),
        categories=queries.categories(s, ids),
        executors=queries.executors(s, ids),
        statuses=list(TicketStatus),
        selected_statuses=set(",".join(request.args.getlist("status")).split(",")),
        overdue_count=queries.count_overdue(s, ids, now),
        last_event_id=current_max_id(s, ids),
    )
    return render_template("journal.html", **context), 400 if error else 200


@bp.get("/tickets/<int:ticket_id>/row")
@login_required()
def ticket_row(ticket_id: int) -> Any:
    """One journal row (for live updates). 204 when the ticket does not match the given filter."""
    s = db_session()
    ids = org_ids()
    queries.get_owned(s, Ticket, ids, ticket_id)  # another organization's ticket: 404
    orgs = my_orgs()
    now = utcnow()
    f = parse_journal_filter(filter_args(request.args), filter_tz(request.args, orgs))
    f.before = None
    ticket = s.scalar(queries.journal_select(ids, f, now).where(Ticket.id == ticket_id).limit(1))
    if ticket is None:
        return "", 204
    return render_template("_rows.html", tickets=[ticket], now=now)


from web import sse  # noqa: E402,F401  (registers /events/stream on this blueprint)
from web.panel import tickets  # noqa: E402,F401
