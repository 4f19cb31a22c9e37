"""What the security test of the demo (issue 10) tried and found holding, kept so: CSRF on every
panel form, stored markup shown as text on every page and fragment, spreadsheet cells that look
like formulas exported as text, e-mail headers that cannot be injected, uploads that cannot
choose their path, SQL-ish search input taken as plain text. Tenant isolation has its own sweep
(test_tenant_isolation.py), bad and out-of-range input its own (test_out_of_range_input.py).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from models.organization import Role
from models.ticket import Attachment
from openads.mailer import build_email
from tests import factories as f
from tests.sheets import sheet_rows
from tests.web.helpers import API, counts
from web import create_app

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SHORT_XSS = "<img src=x>"  # fits a premise number (20 characters, as PostgreSQL enforces)
ESCAPED = "&lt;script&gt;"


def _csrf_token(page: str) -> str:
    return page.split('name="csrf-token" content="')[1].split('"')[0]


# --- CSRF ------------------------------------------------------------------------------------------


def _post_rules(app: Any) -> list[str]:
    """Every panel URL that takes a POST, with its id arguments filled in."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "POST" not in (rule.methods or ()) or rule.rule.startswith("/api/"):
            continue
        url = re.sub(r"<int:[a-z_]+>", "1", rule.rule)
        url = re.sub(r"<any\(([a-z_]+)[^)]*\):[a-z_]+>", r"\1", url)
        assert "<" not in url, rule.rule
        urls.append(url)
    return sorted(urls)


def test_every_panel_form_refuses_a_post_without_the_csrf_token(settings, db, world):
    with db.write() as s:
        admin = f.make_user(s, [world.org_a], Role.ADMIN, login="admin_csrf")
    app = create_app(settings, db, TESTING=True, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    token = _csrf_token(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"login": admin.login, "password": f.PASSWORD,
                                       "csrf_token": token}).status_code == 302
    urls = _post_rules(app)
    assert "/tickets/new" in urls and "/logout" in urls and len(urls) > 20
    before = counts(db)
    for url in urls:
        resp = client.post(url, data={"organization_id": world.org_a.id, "text": "x", "to": "done"})
        assert resp.status_code == 400, url
        assert "Сессия формы устарела" in resp.get_data(as_text=True), url
    assert counts(db) == before
    assert client.get("/").status_code == 200  # still signed in: /logout was refused too


# --- stored markup ---------------------------------------------------------------------------------


def test_stored_markup_is_shown_as_text_on_pages_and_fragments(db, world, login_as):
    with db.write() as s:
        house = f.make_house(s, world.org_a, address="ул. " + XSS)
        premise = f.make_premise(s, house, "1" + SHORT_XSS)
        f.make_resident(s, premise, ("+79160000555",), full_name="Житель " + XSS, note=XSS)
        ticket = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="Течь " + XSS,
                               reporter_name="Заявитель " + XSS, house_id=house.id, premise_id=premise.id,
                               reporter_phone="+79160000555")
        missed = f.make_missed_call(s, world.org_a, "+79160000555")
    client = login_as(world.dispatcher_a)
    resp = client.post(f"/tickets/{ticket.id}/comments", data={"text": "Комментарий " + XSS, "visibility": "internal"})
    assert resp.status_code == 302
    resp = client.post(f"/houses/{house.id}/notes", data={"text": "Ключи " + XSS, "ticket_id": str(ticket.id)})
    assert resp.status_code == 302
    pages = [f"/tickets/{ticket.id}", "/", f"/tickets/{ticket.id}/row", "/lookup?phone=%2B79160000555",
             f"/missed-calls/{missed.id}", f"/missed-calls/{missed.id}/item", "/missed-calls", "/calls",
             f"/calls/{missed.first_call_id}", f"/calls/{missed.first_call_id}/strip", "/console/zone",
             "/incidents"]
    for url in pages:
        resp = client.get(url)
        assert resp.status_code in (200, 204), url  # 204: the strip of a call that has ended
        html = resp.get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html, url
    picker = client.get(f"/houses/{house.id}/premises")  # JSON for the form's scripts, which set text
    assert picker.mimetype == "application/json" and picker.get_json()["house"]["address"] == "ул. " + XSS
    card = client.get(f"/tickets/{ticket.id}").get_data(as_text=True)
    assert card.count(ESCAPED) >= 3  # description, reporter, comment (and the address, the note)


# --- spreadsheets ----------------------------------------------------------------------------------

FORMULAS = ('=HYPERLINK("http://evil.example","Открыть")', "+7 916 000-00-00", "-1+1", "@SUM(A1:A2)",
            "=cmd|' /C calc'!A0")


def test_journal_export_keeps_formula_like_text_as_text(db, world, login_as):
    with db.write() as s:
        for text in FORMULAS:
            f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description=text, reporter_name=text)
    resp = login_as(world.dispatcher_a).get("/journal/export.xlsx")
    assert resp.status_code == 200
    with zipfile.ZipFile(io.BytesIO(resp.get_data())) as book:
        sheets = [n for n in book.namelist() if n.startswith("xl/worksheets/")]
        assert sheets and all("<f>" not in book.read(n).decode() and "<f " not in book.read(n).decode()
                              for n in sheets)
    cells = {c for row in sheet_rows(resp.get_data())[1:] for c in row}
    assert set(FORMULAS) <= cells


# --- e-mail ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["recipient", "subject"])
def test_email_headers_cannot_be_injected(field):
    values = {"recipient": "edds@city.example", "subject": "Авария: ул. Ленина, д. 10"}
    values[field] += "\r\nBcc: victim@evil.example"
    with pytest.raises(ValueError):
        build_email("ads@uk.example", values["recipient"], values["subject"], "Текст\r\nBcc: body@evil.example")


def test_email_body_lines_stay_in_the_body():
    msg = build_email("ads@uk.example", "edds@city.example", "Авария", "Текст\r\nBcc: victim@evil.example\r\n")
    assert msg["Bcc"] is None
    assert "Bcc: victim@evil.example" in msg.get_content()


# --- uploads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../../../../tmp/evil.sh", "..\\..\\evil.ini", "/etc/cron.d/evil",
                                  "C:\\Windows\\evil.bat", ".htaccess"])
def test_an_upload_cannot_choose_where_it_is_stored(db, world, login_as, settings, name):
    with db.write() as s:
        ticket = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"])
    client = login_as(world.dispatcher_a)
    resp = client.post(f"/tickets/{ticket.id}/attachments", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(b"payload"), name), "visibility": "internal"})
    assert resp.status_code == 302
    folder = (settings.var_dir / "attachments" / str(world.org_a.id)).resolve()
    stored = [p for p in settings.var_dir.rglob("*") if p.is_file() and p.read_bytes() == b"payload"]
    assert len(stored) == 1 and stored[0].resolve().parent == folder
    assert re.fullmatch(r"[0-9a-f]{32}(\.[a-z0-9_]+)?", stored[0].name)
    with db.read() as s:
        att_id, storage_path = s.query(Attachment.id, Attachment.storage_path).one()
    assert not Path(storage_path).is_absolute() and ".." not in Path(storage_path).parts
    download = client.get(f"/attachments/{att_id}")
    assert download.status_code == 200 and download.get_data() == b"payload"
    assert download.headers["Content-Disposition"].startswith("attachment;")  # the name only suggested
    download.close()


# --- SQL-ish input ---------------------------------------------------------------------------------

SQLISH = ("' OR '1'='1", "1; DROP TABLE tickets; --", "%' OR 1=1 --", "\\'; SELECT pg_sleep(1); --", "%", "_")


def test_sqlish_search_input_is_plain_text(db, world, token_for, login_as):
    with db.write() as s:
        plain = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="Течь с крыши")
        literal = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="Жалоба: ' OR '1'='1")
        f.make_ticket(s, world.org_b, world.cats_b["roof_leak"], description="Секрет Беты ' OR '1'='1")
    headers = token_for(world.dispatcher_a)
    client = login_as(world.dispatcher_a)
    for q in SQLISH:
        resp = client.get(f"{API}/tickets", headers=headers, query_string={"q": q})
        assert resp.status_code == 200, q
        ids = {t["id"] for t in resp.get_json()["items"]}
        assert ids <= {plain.id, literal.id}, q  # never another organization's
        if q == "' OR '1'='1":
            assert ids == {literal.id}  # matched as text, not as SQL
        for url in ("/houses", "/residents"):
            resp = client.get(API + url, headers=headers, query_string={"q": q, "phone": q})
            assert resp.status_code in (200, 400), (url, q)
        assert client.get("/", query_string={"f": "1", "q": q}).status_code == 200, q
    assert counts(db)[0] == 3  # nothing dropped
