"""Open redirect (issue 10, item 2): every `next` of the panel goes through `web.redirects.safe_next`.

The known bypasses of a "starts with one slash" check are refused on each route that takes a
`next` (login, the missed-call queue's close and callback, the resident's contact preference);
local paths keep working.
"""

from __future__ import annotations

from typing import Any

import pytest

from models.services import calls as calls_svc
from tests import factories as f
from web.redirects import safe_next

# Values as the route reads them (the query string / form already decoded once).
BYPASSES = [
    "/\t/evil.example",             # Werkzeug's iri_to_uri drops the tab: `//evil.example`
    "/\n/evil.example",
    "/\r\nLocation: //evil.example",  # CR/LF
    "//evil.example",
    "///evil.example",
    "/\\evil.example",               # browsers read a backslash as a slash
    "\\/evil.example",
    "/\\/evil.example",
    "https://evil.example",
    "http:/evil.example",
    "HTTPS://evil.example/x",
    "/%2F%2Fevil.example",          # decoded by a proxy in front: `///evil.example`
    "/%2f/evil.example",
    "/%5Cevil.example",
    "/%09/evil.example",            # double-encoded tab
    "/%0d%0aSet-Cookie:%20x=1",     # double-encoded CR/LF
    "java\u200bscript:alert(1)",    # zero-width space
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    " /evil",
    "/\u3000/evil.example",         # ideographic space
    "/\x00/evil.example",
    "/\u202e/evil.example",         # right-to-left override
    "",
]
LOCAL = [
    ("/tickets/new", "/tickets/new"),
    ("/missed-calls", "/missed-calls"),
    ("/?f=1&status=new&q=%D0%9B%D0%B5%D0%BD%D0%B8%D0%BD%D0%B0", "/?f=1&status=new&q=%D0%9B%D0%B5%D0%BD%D0%B8%D0%BD%D0%B0"),
    ("/tickets/5#attachments", "/tickets/5#attachments"),
    ("/?q=Ленина", "/?q=%D0%9B%D0%B5%D0%BD%D0%B8%D0%BD%D0%B0"),  # sent the way Werkzeug sends it
]
# Raw query strings, as an attacker's link carries them (decoded once by Werkzeug).
RAW_QUERIES = [
    "next=/%09/evil.example",
    "next=//evil.example",
    "next=/%5C%5Cevil.example",
    "next=%5C/evil.example",
    "next=%2F%2Fevil.example",
    "next=/%252F%252Fevil.example",
    "next=/%0D%0ALocation:%20//evil.example",
    "next=https:%2F%2Fevil.example",
    "next=java%E2%80%8Bscript:alert(1)",
]


@pytest.mark.parametrize("target", BYPASSES)
def test_safe_next_refuses_every_known_bypass(target: str) -> None:
    assert safe_next(target, "/default") == "/default"


@pytest.mark.parametrize(("target", "expected"), LOCAL)
def test_safe_next_keeps_local_paths(target: str, expected: str) -> None:
    assert safe_next(target, "/default") == expected


def _login(client: Any, query: str | dict[str, str]) -> Any:
    data = {"login": "disp_a", "password": f.PASSWORD}
    if isinstance(query, str):
        return client.post(f"/login?{query}", data=data)
    return client.post("/login", query_string=query, data=data)


@pytest.mark.parametrize("target", BYPASSES)
def test_login_never_redirects_off_site(client: Any, world: Any, target: str) -> None:
    resp = _login(client, {"next": target})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


@pytest.mark.parametrize("query", RAW_QUERIES)
def test_login_with_a_crafted_link_lands_on_the_journal(client: Any, world: Any, query: str) -> None:
    resp = _login(client, query)
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


@pytest.mark.parametrize(("target", "expected"), LOCAL)
def test_login_follows_a_local_next(client: Any, world: Any, target: str, expected: str) -> None:
    resp = _login(client, {"next": target})
    assert resp.status_code == 302 and resp.headers["Location"] == expected


def test_the_login_redirect_of_an_anonymous_visit_comes_back(client: Any, world: Any) -> None:
    to_login = client.get("/?f=1&q=Ленина")
    assert to_login.status_code == 302
    resp = client.post(to_login.headers["Location"], data={"login": "disp_a", "password": f.PASSWORD})
    assert resp.headers["Location"] == "/?f=1&q=%D0%9B%D0%B5%D0%BD%D0%B8%D0%BD%D0%B0"


def _missed_call(db: Any, world: Any, *, phone: bool = False) -> int:
    with db.write() as s:
        item = f.make_missed_call(s, s.merge(world.org_a), "+79165550000")
        if phone:
            calls_svc.assign_dispatcher_phone(s, org=s.merge(world.org_a), endpoint="PJSIP/disp1",
                                              user_id=world.dispatcher_a.id, by=None)
        return int(item.id)


@pytest.mark.parametrize("target", BYPASSES)
@pytest.mark.parametrize("where", ["form", "query"])
def test_missed_call_close_never_redirects_off_site(db: Any, world: Any, login_as: Any, target: str,
                                                    where: str) -> None:
    item_id = _missed_call(db, world)
    client = login_as(world.dispatcher_a)
    data = {"reason": "житель пришёл в офис"}
    if where == "form":
        resp = client.post(f"/missed-calls/{item_id}/close", data={**data, "next": target})
    else:
        resp = client.post(f"/missed-calls/{item_id}/close", query_string={"next": target}, data=data)
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


@pytest.mark.parametrize("query", RAW_QUERIES)
def test_missed_call_close_with_a_crafted_link(db: Any, world: Any, login_as: Any, query: str) -> None:
    item_id = _missed_call(db, world)
    resp = login_as(world.dispatcher_a).post(f"/missed-calls/{item_id}/close?{query}",
                                             data={"reason": "житель пришёл в офис"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


def test_missed_call_close_and_callback_follow_a_local_next(db: Any, world: Any, login_as: Any) -> None:
    client = login_as(world.dispatcher_a)
    item_id = _missed_call(db, world)
    resp = client.post(f"/missed-calls/{item_id}/close", data={"reason": "дозвонились", "next": "/missed-calls"})
    assert resp.headers["Location"] == "/missed-calls"
    item_id = _missed_call(db, world, phone=True)
    resp = client.post(f"/missed-calls/{item_id}/callback", data={"next": "/missed-calls?x=1"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/missed-calls?x=1"


@pytest.mark.parametrize("target", ["/\t/evil.example", "//evil.example", "/\\evil.example", "https://evil.example"])
def test_missed_call_callback_never_redirects_off_site(db: Any, world: Any, login_as: Any, target: str) -> None:
    item_id = _missed_call(db, world, phone=True)
    resp = login_as(world.dispatcher_a).post(f"/missed-calls/{item_id}/callback", data={"next": target})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


@pytest.mark.parametrize("target", BYPASSES)
def test_resident_contact_never_redirects_off_site(world: Any, login_as: Any, target: str) -> None:
    client = login_as(world.dispatcher_a)
    url = f"/residents/{world.resident_a.id}/contact"
    page = client.get(url, query_string={"next": target}).get_data(as_text=True)
    assert 'name="next" value="/"' in page  # the form carries the safe target, not the given one
    resp = client.post(url, data={"preferred_channel": "", "next": target})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
