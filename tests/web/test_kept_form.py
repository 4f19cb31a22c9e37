"""A panel form the database failed to store comes back as it was typed (decision 0024): 503 with
Retry-After and the Russian message at the top, every sent value back in the form's controls,
nothing stored, and the form sent again once the database is back is stored.

Two failures: an outage (sessions pointed at a closed port) and a database busy past the web's
timeout because a real second connection holds a write transaction (SQLite: BEGIN IMMEDIATE, the
whole file; PostgreSQL: the form's table locked in SHARE mode, so reads go on and writes wait past
`lock_timeout`). While the database is only busy the page holding the form is drawn again (the
new-ticket page, the ticket card, the incidents page, the login page); while it is down, a page
that needs no database (login) is drawn again and the others give a minimal page with the fields.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from werkzeug.datastructures import MultiDict

from models.auth import UserSession
from models.db import Database
from models.ticket import Incident, Ticket, TicketStatus
from tests import factories as f
from tests.conftest import World
from tests.web.test_db_outage import Outage

DOWN = "База данных временно недоступна — ничего не сохранено, повторите через 5 с"
BUSY = "База данных занята — ничего не сохранено, повторите через 5 с"


# --- reading a form as a browser sends it --------------------------------------------------------


class _Forms(HTMLParser):
    """Every form of a page: its action, method and the (name, value) pairs a browser would send
    (buttons apart: a button's value is sent only when it is pressed)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self.form: dict[str, Any] | None = None
        self.select: tuple[str, list[tuple[str, bool]]] | None = None
        self.textarea: list[Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.form = {"action": a.get("action") or "", "method": (a.get("method") or "get").lower(),
                         "sent": [], "buttons": [], "passwords": [], "attrs": a}
            self.forms.append(self.form)
            return
        if self.form is None or "disabled" in a:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "button", "image"):
                self.form["buttons"].append((name, a.get("value") or ""))
            elif kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.form["sent"].append((name, a.get("value") or "on"))
            elif kind == "password":
                self.form["passwords"].append((name, a.get("value") or ""))
            elif kind not in ("file", "reset"):
                self.form["sent"].append((name, a.get("value") or ""))
        elif tag == "button" and name:
            self.form["buttons"].append((name, a.get("value") or ""))
        elif tag == "select" and name:
            self.select = (name, [])
        elif tag == "option" and self.select is not None:
            self.select[1].append((a.get("value") or "", "selected" in a))
        elif tag == "textarea" and name:
            self.textarea = [name, ""]

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.textarea[1] += data

    def handle_endtag(self, tag: str) -> None:
        if self.form is None:
            return
        if tag == "select" and self.select is not None:
            name, options = self.select
            chosen = [v for v, selected in options if selected] or [v for v, _ in options[:1]]
            self.form["sent"].extend((name, v) for v in chosen)
            self.select = None
        elif tag == "textarea" and self.textarea is not None:
            self.form["sent"].append((self.textarea[0], self.textarea[1].removeprefix("\n")))
            self.textarea = None
        elif tag == "form":
            self.form = None


def kept_form(page: str, action: str) -> dict[str, Any]:
    """The one POST form of `page` sending to `action` (an empty action: the page's own address)."""
    parser = _Forms()
    parser.feed(page)
    found = [form for form in parser.forms if form["method"] == "post" and form["action"] in (action, "")]
    found = [form for form in found if form["action"] == action] or found
    assert len(found) == 1, [form["action"] for form in parser.forms]
    return found[0]


def resend(form: dict[str, Any], *, press: tuple[str, str] | None = None,
           password: str | None = None) -> list[tuple[str, str]]:
    """What the browser sends when the user types the password again and presses `press` (a button
    of the form; a value the form already carries is not pressed) or its only submit button."""
    sent = list(form["sent"])
    if password is not None:
        sent += [(name, password) for name, _ in form["passwords"]]
    if press is not None and press in form["buttons"]:
        assert press[0] not in dict(sent), sent  # not sent twice: the pressed button and a hidden copy
        sent.append(press)
    elif press is not None:
        assert press in sent, (press, sent)
    return sent


def assert_kept(resp: Any, message: str, action: str, typed: dict[str, str]) -> dict[str, Any]:
    """503, Retry-After, the message, and every typed value in the form's controls (a password
    field present but empty)."""
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.headers["Retry-After"] == "5"
    assert resp.headers["Cache-Control"] == "no-store"
    page = resp.get_data(as_text=True)
    assert page.index(message) < page.index('data-kept="1"')  # at the top, above the form
    form = kept_form(page, action)
    controls = form["sent"] + form["buttons"]
    for name, value in typed.items():
        if name == "password":
            assert form["passwords"] == [("password", "")], form["passwords"]
            assert value not in page
        else:
            assert (name, value) in controls, (name, value, controls)
    return form


# --- the database failing ----------------------------------------------------------------------------


class WriteLock:
    """A second connection holding a write transaction until `release()`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sqlite: sqlite3.Connection | None = None
        self.pg: Connection | None = None
        self.engine = None if db.is_sqlite else create_engine(db.url, poolclass=NullPool)

    def hold(self, table: str) -> None:
        if self.db.is_sqlite:  # SQLite has one writer: the whole file is taken
            self.sqlite = sqlite3.connect(make_url(self.db.url).database or "", isolation_level=None, timeout=0)
            self.sqlite.execute("BEGIN IMMEDIATE")
        else:  # SHARE: reads go on, INSERT/UPDATE/DELETE of the table wait
            assert self.engine is not None
            self.pg = self.engine.connect()
            self.pg.execute(text(f'LOCK TABLE "{table}" IN SHARE MODE'))

    def release(self) -> None:
        if self.sqlite is not None:
            self.sqlite.rollback()
            self.sqlite.close()
            self.sqlite = None
        if self.pg is not None:
            self.pg.rollback()
            self.pg.close()
            self.pg = None

    def dispose(self) -> None:
        self.release()
        if self.engine is not None:
            self.engine.dispose()


@pytest.fixture
def write_lock(db: Database) -> Iterator[WriteLock]:
    lock = WriteLock(db)
    yield lock
    lock.dispose()


@pytest.fixture
def impatient_app(settings: Any, db: Database) -> Iterator[Any]:
    """The panel as `openads web` builds it, waiting 0.2 s for a busy database
    (OPENADS_WEB_DB_BUSY_TIMEOUT) instead of 5."""
    from web import create_app

    quick = replace(settings, web=replace(settings.web, db_busy_timeout=0.2))
    app = create_app(quick, TESTING=True, WTF_CSRF_ENABLED=False)
    yield app
    app.extensions["openads.db"].dispose()


# --- the forms ------------------------------------------------------------------------------------------


@dataclass
class FormCase:
    """One panel form: who sends it, where, what they typed, which table it writes, how many rows it stored."""

    url: Callable[[World, Ticket | None], str]
    typed: Callable[[World], dict[str, str]]
    table: str
    stored: Callable[[Session, World, Ticket | None], int]
    signed_in: bool = True
    button: str | None = None  # the typed value sent by the button pressed
    page_marker: str = ""  # in the page drawn again while the database is busy


def _new_ticket_typed(w: World) -> dict[str, str]:
    return {
        "organization_id": str(w.org_a.id), "category_id": str(w.cats_a["roof_leak"].id),
        "description": "Прорыв трубы ХВС в подвале,\nвода под полом «по щиколотку» & <выше>",
        "reporter_name": "Леонидов Леонид", "reporter_phone": "+7 916 123-45-67",
        "house_id": str(w.house_a.id), "house_address": "г. Москва, ул. Ленина, д. 10",
        "premise_id": str(w.premise_a.id), "is_emergency": "1", "damage_detected_at": "2026-01-05T07:30",
        "channel": "panel", "executor_id": str(w.executor_a.id),
    }


FORMS = {
    "new ticket": FormCase(
        url=lambda w, t: "/tickets/new", typed=_new_ticket_typed, table="tickets",
        stored=lambda s, w, t: s.scalar(select(func.count()).select_from(Ticket).where(
            Ticket.description.like("Прорыв трубы%"))) or 0,
        page_marker='id="new-ticket"'),
    "ticket status": FormCase(
        url=lambda w, t: f"/tickets/{t.id}/transition" if t else "",
        typed=lambda w: {"to": "cancelled", "reason": "Житель отказался: «сам починил»"}, table="tickets",
        stored=lambda s, w, t: int(s.get(Ticket, t.id).status == TicketStatus.CANCELLED) if t else 0,
        button="to", page_marker='id="transition-form"'),
    "login": FormCase(
        url=lambda w, t: "/login", typed=lambda w: {"login": "disp_a", "password": f.PASSWORD},
        table="user_sessions", signed_in=False, page_marker="Вход в систему",
        stored=lambda s, w, t: s.scalar(select(func.count()).select_from(UserSession)) or 0),
    "incident": FormCase(
        url=lambda w, t: "/incidents",
        typed=lambda w: {"organization_id": str(w.org_a.id), "house_id": str(w.house_a.id),
                         "title": "Прорыв трубы ХВС", "utility": "cold_water",
                         "announcement": "Подъезд 2 без воды до 18:00", "started_at": "2026-01-05T08:00",
                         "expected_end_at": "2026-01-05T18:00"},
        table="incidents", page_marker="Зарегистрировать аварию",
        stored=lambda s, w, t: s.scalar(select(func.count()).select_from(Incident)) or 0),
}


def _prepare(case: FormCase, db: Database, world: World, client: Any) -> Ticket | None:
    with db.write() as s:
        ticket = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="Течь кровли")
    if case.signed_in:
        resp = client.post("/login", data={"login": world.dispatcher_a.login, "password": f.PASSWORD})
        assert resp.status_code == 302
    return ticket


def _stored(db: Database, case: FormCase, world: World, ticket: Ticket | None) -> int:
    with db.read() as s:
        return case.stored(s, world, ticket)


def _send_again(client: Any, case: FormCase, form: dict[str, Any], action: str, typed: dict[str, str]) -> Any:
    press = (case.button, typed[case.button]) if case.button else None
    return client.post(action, data=MultiDict(resend(form, press=press, password=typed.get("password"))))


@pytest.mark.parametrize("name", list(FORMS))
def test_a_form_sent_while_another_writer_holds_the_database_comes_back_as_typed_then_is_stored(
    name: str, impatient_app: Any, db: Database, world: World, write_lock: WriteLock,
) -> None:
    case = FORMS[name]
    client = impatient_app.test_client()
    ticket = _prepare(case, db, world, client)
    action, typed = case.url(world, ticket), case.typed(world)
    before = _stored(db, case, world, ticket)
    write_lock.hold(case.table)
    resp = client.post(action, data=typed)
    form = assert_kept(resp, BUSY, action, typed)
    page = resp.get_data(as_text=True)
    assert case.page_marker in page  # the form's own page, drawn again
    assert 'data-kept="1"' in page
    write_lock.release()
    assert _stored(db, case, world, ticket) == before  # nothing stored
    again = _send_again(client, case, form, action, typed)
    assert again.status_code == 302, again.get_data(as_text=True)
    assert _stored(db, case, world, ticket) == before + 1


@pytest.mark.parametrize("name", list(FORMS))
def test_a_form_sent_during_an_outage_comes_back_as_typed_then_is_stored(
    name: str, app: Any, client: Any, db: Database, world: World, outage: Outage,
) -> None:
    case = FORMS[name]
    ticket = _prepare(case, db, world, client)
    action, typed = case.url(world, ticket), case.typed(world)
    before = _stored(db, case, world, ticket)
    outage.start()
    resp = client.post(action, data=typed)
    form = assert_kept(resp, DOWN, action, typed)
    outage.stop()
    assert _stored(db, case, world, ticket) == before
    again = _send_again(client, case, form, action, typed)
    assert again.status_code == 302, again.get_data(as_text=True)
    assert _stored(db, case, world, ticket) == before + 1


@pytest.fixture
def outage(db: Database) -> Iterator[Outage]:
    down = Outage(db)
    try:
        yield down
    finally:
        down.stop()
        down.dead.dispose()


# --- the other ways in -------------------------------------------------------------------------------


def test_the_edit_form_comes_back_open_with_the_checkbox_as_it_was_left(
    impatient_app: Any, db: Database, world: World, write_lock: WriteLock,
) -> None:
    """The edit form sits in a closed <details>: it is opened; an unticked checkbox is not sent, so
    it comes back unticked although the ticket is an emergency."""
    client = impatient_app.test_client()
    with db.write() as s:
        ticket = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="Течь", is_emergency=True)
    assert client.post("/login", data={"login": "disp_a", "password": f.PASSWORD}).status_code == 302
    action = f"/tickets/{ticket.id}/edit"
    typed = {"description": "Течь кровли над кв. 30", "reporter_name": "Иванова", "reporter_phone": "",
             "category_id": str(world.cats_a["heating_quality"].id), "is_emergency_shown": "1",
             "damage_detected_at": "", "planned_due_at": "", "reason": "уточнили у жителя"}
    write_lock.hold("tickets")
    resp = client.post(action, data=typed)
    form = assert_kept(resp, BUSY, action, typed)
    assert ("is_emergency", "1") not in form["sent"]
    page = resp.get_data(as_text=True)
    assert '<details class="edit" open>' in page
    write_lock.release()
    assert client.post(action, data=MultiDict(resend(form))).status_code == 302
    with db.read() as s:
        stored = s.get(Ticket, ticket.id)
        assert (stored.description, stored.is_emergency) == ("Течь кровли над кв. 30", False)


def test_a_form_comes_back_on_the_page_it_was_sent_from(
    impatient_app: Any, db: Database, world: World, write_lock: WriteLock,
) -> None:
    """The house-note form has no page of its own: the ticket card it was sent from (Referer) is
    drawn again with the note in it."""
    client = impatient_app.test_client()
    with db.write() as s:
        ticket = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], house_id=world.house_a.id)
    assert client.post("/login", data={"login": "disp_a", "password": f.PASSWORD}).status_code == 302
    action = f"/houses/{world.house_a.id}/notes"
    typed = {"ticket_id": str(ticket.id), "text": "Ключи от подвала у старшей по дому, кв. 12"}
    write_lock.hold("house_notes")
    resp = client.post(action, data=typed, headers={"Referer": f"http://localhost/tickets/{ticket.id}"})
    assert_kept(resp, BUSY, action, typed)
    assert 'id="transition-form"' in resp.get_data(as_text=True)  # the card


def test_an_api_write_to_a_busy_database_is_503_json_with_retry_after_then_goes_through(
    impatient_app: Any, db: Database, world: World, write_lock: WriteLock, token_for: Any,
) -> None:
    client = impatient_app.test_client()
    headers = token_for(world.dispatcher_a)
    body = {"organization_id": world.org_a.id, "category_id": world.cats_a["roof_leak"].id,
            "description": "Течь на чердаке"}
    write_lock.hold("tickets")
    resp = client.post("/api/v1/tickets", json=body, headers=headers)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
    assert resp.json == {"error_id": "database-busy", "details": {"retry_after": 5},
                         "message": "База данных занята — ничего не сохранено, повторите через 5 с"}
    write_lock.release()
    assert client.post("/api/v1/tickets", json=body, headers=headers).status_code == 201


def test_a_commit_the_connection_died_in_says_the_change_may_be_stored(
    world: World, login_as: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server went away during COMMIT: whether it was stored is unknown, and the page says so."""
    import psycopg
    from sqlalchemy.exc import OperationalError

    def lost(*_a: Any, **_kw: Any) -> None:
        raise OperationalError("COMMIT", {}, psycopg.OperationalError("server closed the connection unexpectedly"))

    client = login_as(world.dispatcher_a)
    monkeypatch.setattr(Session, "commit", lost)
    resp = client.post("/incidents", data={"organization_id": world.org_a.id, "house_id": world.house_a.id,
                                           "title": "Прорыв"})
    monkeypatch.undo()
    assert resp.status_code == 503
    page = resp.get_data(as_text=True)
    assert ("База данных временно недоступна — сохранение не подтверждено: проверьте журнал, прежде чем "
            "отправлять снова, повторите через 5 с") in page
    assert ("title", "Прорыв") in kept_form(page, "/incidents")["sent"]


def test_the_web_waits_the_configured_time_for_a_busy_database(impatient_app: Any) -> None:
    """OPENADS_WEB_DB_BUSY_TIMEOUT becomes SQLite's busy timeout or PostgreSQL's lock_timeout."""
    database: Database = impatient_app.extensions["openads.db"]
    with database.engine.connect() as conn:
        if database.is_sqlite:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 200
        else:
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "200ms"


@pytest.mark.parametrize(("raw", "wanted"), [("", 5.0), ("0.5", 0.5), ("30", 30.0)])
def test_the_busy_timeout_setting(raw: str, wanted: float) -> None:
    from openads.config import web_settings

    assert web_settings({"OPENADS_WEB_DB_BUSY_TIMEOUT": raw}).db_busy_timeout == wanted


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "abc", "601"])
def test_a_bad_busy_timeout_fails_fast(raw: str) -> None:
    from openads.config import ConfigError, web_settings

    with pytest.raises(ConfigError, match="OPENADS_WEB_DB_BUSY_TIMEOUT"):
        web_settings({"OPENADS_WEB_DB_BUSY_TIMEOUT": raw})
