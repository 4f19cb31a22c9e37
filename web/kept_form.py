"""A panel form sent while the database is busy or down comes back as it was typed (decision 0024).

The answer (503 with Retry-After, web/errors.py) is the page that holds the form, drawn again by a
GET of that page in a fresh request context (the same cookie, so the same user), with the sent
values put back into its form (web/form_refill.py) and the message at the top. No view handles
this by hand. The page that holds a form is, in this order: the page the browser sent it from (a
same-origin Referer), the page a view names with `@form_page("panel.ticket_card")`, the form's
own address when it answers GET (the new-ticket and login forms). A page without that form, or
one that cannot be drawn, is passed over.

A busy database still answers reads (SQLite's WAL readers, PostgreSQL's row locks), so the page is
drawn as usual. While the database is down the page is drawn with every database access failing at
once (`db_down`): a page that needs none (the login form) still comes back whole, and no request
waits twice for a connection. Failing all pages, a minimal page carries every sent field (passwords
to type again; files cannot be kept) in a form to the same address.

The request changed nothing, so the cookie session goes back to what the browser sent (a success
message flashed before the commit failed is dropped; a login that failed to be stored is not one).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes, urlsplit

from flask import Response, current_app, g, render_template, request, session, url_for
from markupsafe import Markup
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BuildError

from web.dbsession import DB_DOWN
from web.form_refill import is_secret, refill

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

PAGE_ATTR = "kept_form_page"
DRAWING = "drawing_kept_form"  # g flag of the inner request that draws the page again

# The minimal page's fields shown for editing, with their labels; other fields go back hidden.
FIELD_LABELS_RU = {
    "description": "Описание", "text": "Текст", "reason": "Причина", "comment": "Комментарий",
    "reporter_name": "Заявитель", "reporter_phone": "Телефон заявителя", "title": "Что случилось",
    "announcement": "Что сообщать звонящим", "utility": "Ресурс", "address": "Адрес", "full_name": "ФИО",
    "note": "Заметка", "login": "Логин", "password": "Пароль", "name": "Название", "email": "Эл. почта",
    "premise": "Помещение", "at": "Время", "started_at": "Начало", "expected_end_at": "Ожидаемое окончание",
    "damage_detected_at": "Повреждение обнаружено", "planned_due_at": "Срок, сообщённый жителю",
    "transcript": "Слова жителя", "house_address": "Адрес", "days": "Срок действия (дней)",
}
LONG_FIELDS = frozenset({"description", "text", "comment", "announcement", "note", "transcript"})


def form_page(endpoint: str) -> Callable[[F], F]:
    """Name the page that holds a POST view's form (an endpoint taking some of the view's URL
    arguments), for a view whose address answers no GET: `@form_page("panel.ticket_card")`."""

    def deco(view: F) -> F:
        setattr(view, PAGE_ATTR, endpoint)
        return view

    return deco


def sent_values() -> MultiDict[str, str] | None:
    """In the request drawing a kept form again: the values sent, for a view that draws its form
    from values (pickers that depend on another field); None otherwise."""
    values: MultiDict[str, str] | None = g.get("kept_form_values")
    return values


def is_drawing() -> bool:
    """True in the inner request that draws a page for a kept form."""
    return bool(g.get(DRAWING))


@dataclass(frozen=True)
class Field:
    name: str
    value: str
    label: str | None
    kind: str  # text | textarea | password | hidden


def _sent() -> list[tuple[str, str]]:
    try:
        return list(request.form.items(multi=True))
    except Exception:  # an unreadable body (too large, broken): nothing to keep
        return []


def _has_files() -> bool:
    try:
        return any(f.filename for f in request.files.values())
    except Exception:
        return False


# --- which page holds the form ----------------------------------------------------------------------


def _local(url: str) -> tuple[str, str] | None:
    """(PATH_INFO, QUERY_STRING) of a same-origin URL under this application, else None."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        here = urlsplit(request.host_url)
        if (parts.scheme, parts.netloc) != (here.scheme, here.netloc):
            return None
    root = request.script_root
    if not parts.path.startswith(root + "/"):
        return None
    # PATH_INFO is the decoded path, carried as latin-1 (PEP 3333).
    return unquote_to_bytes(parts.path[len(root):]).decode("latin-1"), parts.query


def _draws_a_page(path_info: str) -> bool:
    """A panel address that answers GET (not the API, not a static file)."""
    if path_info.startswith("/api/"):
        return False
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        endpoint, _args = adapter.match(path_info, method="GET")
    except HTTPException:  # not found, GET not allowed, a redirect
        return False
    return isinstance(endpoint, str) and endpoint != "static"


def _candidates() -> list[tuple[str, str]]:
    urls: list[str] = []
    if request.referrer:
        urls.append(request.referrer)
    view = current_app.view_functions.get(request.endpoint or "")
    endpoint = getattr(view, PAGE_ATTR, None)
    if endpoint:
        rule = next(current_app.url_map.iter_rules(endpoint))
        args = {k: v for k, v in (request.view_args or {}).items() if k in rule.arguments}
        try:
            urls.append(url_for(endpoint, **args))
        except BuildError:
            log.warning("kept form: the page %s of %s cannot be built", endpoint, request.endpoint)
    urls.append(request.script_root + request.full_path.rstrip("?"))
    out: list[tuple[str, str]] = []
    for url in urls:
        local = _local(url)
        if local is not None and local not in out and _draws_a_page(local[0]):
            out.append(local)
    return out


# --- drawing it ----------------------------------------------------------------------------------------


def _draw(path_info: str, query: str, *, db_down: bool, values: MultiDict[str, str]) -> tuple[str, dict[str, Any]] | None:
    """The HTML of a GET of `path_info` as this user, and the cookie session it left; None when it
    is not a plain 200 page."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # The outer request's environ without its body, and without the ASGI scope (an event stream's
    # hand-off to the event loop, web/sse.py, is for a real connection only).
    environ = {k: v for k, v in request.environ.items()
               if k not in ("werkzeug.request", "asgi.scope", "CONTENT_TYPE", "HTTP_CONTENT_TYPE",
                            "HTTP_CONTENT_LENGTH")}
    environ.update({"REQUEST_METHOD": "GET", "PATH_INFO": path_info, "QUERY_STRING": query,
                    "CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO(b"")})
    # A fresh application context, so the inner request has its own `g` (user, database session).
    with app.app_context(), app.request_context(environ) as ctx:
        setattr(g, DRAWING, True)
        setattr(g, DB_DOWN, db_down)
        g.kept_form_values = values
        try:
            response = app.full_dispatch_request()
        except Exception:
            log.warning("kept form: drawing %s failed", path_info, exc_info=True)
            return None
        try:
            if response.status_code != 200 or response.is_streamed or response.mimetype != "text/html":
                return None
            return response.get_data(as_text=True), dict(ctx.session)
        finally:
            response.close()


def _notice(message: str, *, files_lost: bool) -> Markup:
    more = " Прикреплённый файл не сохранён — выберите его снова." if files_lost else ""
    return Markup('<div class="flash flash-error kept-form-notice" role="alert" id="kept-form-notice">'
                  '<strong>{}</strong> Введённое в форму ниже не потеряно: проверьте и отправьте ещё раз.{}</div>'
                  ).format(message, more)


def _restore_session(saved: dict[str, Any] | None) -> None:
    if saved is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        fresh = app.session_interface.open_session(app, request)
        saved = dict(fresh) if fresh is not None else {}
    session.clear()
    session.update(saved)


def _fields(sent: list[tuple[str, str]]) -> list[Field]:
    fields: list[Field] = []
    passwords: set[str] = set()
    for name, value in sent:
        if "password" in name.lower():
            if name not in passwords:
                passwords.add(name)
                fields.append(Field(name, "", FIELD_LABELS_RU.get(name, "Пароль"), "password"))
            continue
        if is_secret(name):
            continue
        label = FIELD_LABELS_RU.get(name)
        if label is None:
            kind = "hidden"
        elif name in LONG_FIELDS or "\n" in value or len(value) > 80:
            kind = "textarea"
        else:
            kind = "text"
        fields.append(Field(name, value, label, kind))
    return fields


def response(message: str, *, db_down: bool) -> Response:
    """The 503 page for a panel form that the database failed to store: the page holding the form,
    drawn again with the sent values, or the minimal page with them."""
    sent = _sent()
    values: MultiDict[str, str] = MultiDict([(k, v) for k, v in sent if not is_secret(k)])
    notice = _notice(message, files_lost=_has_files())
    action = request.script_root + request.full_path.rstrip("?")
    for path_info, query in _candidates():
        drawn = _draw(path_info, query, db_down=db_down, values=values)
        if drawn is None:
            continue
        page, inner_session = drawn
        html = refill(page, page_url=request.script_root + path_info + ("?" + query if query else ""),
                      action=action, values=sent, notice=str(notice))
        if html is not None:
            _restore_session(inner_session)
            return Response(html, 503, mimetype="text/html")
    _restore_session(None)
    g.user = None  # the page is drawn without the user's menu: reading the user needs the database
    html = render_template("kept_form.html", notice=notice, fields=_fields(sent),
                           action=action)
    return Response(html, 503, mimetype="text/html")
