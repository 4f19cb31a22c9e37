"""Active attachment types are kept and served as application/octet-stream (issue 10, item 10;
models/rules/attachments.py), always as a download with nosniff."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models.rules.attachments import OCTET_STREAM, safe_content_type
from models.ticket import Attachment
from tests import factories as f
from tests.web.helpers import API

SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
HTML = b"<html><body><script>fetch('/api/v1/tickets')</script></body></html>"


@pytest.mark.parametrize(("declared", "filename", "expected"), [
    ("image/png", "течь.png", "image/png"),
    ("image/jpeg", "IMG_0001.JPG", "image/jpeg"),
    ("application/pdf", "акт.pdf", "application/pdf"),
    ("text/plain; charset=utf-8", "заметка.txt", "text/plain"),
    ("audio/mpeg", "запись.mp3", "audio/mpeg"),
    ("text/html", "x.html", OCTET_STREAM),
    ("image/svg+xml", "plan.svg", OCTET_STREAM),
    ("image/png", "photo.svg", OCTET_STREAM),      # the name decides too
    ("text/plain", "page.HTM", OCTET_STREAM),
    ("application/xml", "data.xml", OCTET_STREAM),
    ("text/xml", "a.txt", OCTET_STREAM),
    ("application/xhtml+xml", "a", OCTET_STREAM),
    ("application/javascript", "a.js", OCTET_STREAM),
    ("text/javascript", "a.txt", OCTET_STREAM),
    ("application/x-unknown", "a.bin", OCTET_STREAM),
    ("", "a.png", OCTET_STREAM),
    (None, "a", OCTET_STREAM),
])
def test_only_passive_types_keep_their_type(declared: str | None, filename: str, expected: str) -> None:
    assert safe_content_type(declared, filename) == expected


def _upload(db: Any, world: Any, client: Any, content: bytes, filename: str, mimetype: str) -> tuple[int, Attachment]:
    with db.write() as s:
        ticket = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"])
    resp = client.post(f"/tickets/{ticket.id}/attachments",
                       data={"file": (io.BytesIO(content), filename, mimetype)}, content_type="multipart/form-data")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    with db.read() as s:
        att = s.scalars(select(Attachment).where(Attachment.ticket_id == ticket.id)).one()
        s.expunge(att)
    return ticket.id, att


def _download(client: Any, att_id: int) -> Any:
    resp = client.get(f"/attachments/{att_id}", buffered=True)
    resp.close()
    assert resp.status_code == 200
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in resp.headers["Content-Security-Policy"]
    return resp


@pytest.mark.parametrize(("content", "filename", "mimetype"), [
    (HTML, "инструкция.html", "text/html"),
    (SVG, "план.svg", "image/svg+xml"),
    (SVG, "фото.svg", "image/png"),
    (b"alert(1)", "x.js", "text/javascript"),
    (b'<?xml version="1.0"?><x:script xmlns:x="http://www.w3.org/1999/xhtml">alert(1)</x:script>',
     "data.xml", "application/xml"),
])
def test_an_active_file_is_stored_and_served_as_octet_stream(db, world, login_as, token_for, content, filename,
                                                             mimetype) -> None:
    client = login_as(world.dispatcher_a)
    ticket_id, att = _upload(db, world, client, content, filename, mimetype)
    assert att.content_type == OCTET_STREAM and att.filename == filename
    resp = _download(client, att.id)
    assert resp.mimetype == OCTET_STREAM and resp.data == content
    card = client.get(f"{API}/tickets/{ticket_id}", headers=token_for(world.dispatcher_a)).get_json()
    assert [a["content_type"] for a in card["attachments"]] == [OCTET_STREAM]


def test_a_photo_keeps_its_type_and_is_still_a_download(db, world, login_as) -> None:
    client = login_as(world.dispatcher_a)
    _, att = _upload(db, world, client, b"\x89PNG\r\n\x1a\n", "течь.png", "image/png")
    assert att.content_type == "image/png"
    assert _download(client, att.id).mimetype == "image/png"


def test_an_html_file_stored_before_the_rule_is_served_as_octet_stream(db, world, login_as, settings) -> None:
    folder = Path(settings.var_dir) / "attachments" / str(world.org_a.id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "old.html").write_bytes(HTML)
    with db.write() as s:
        ticket = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"])
        att = Attachment(organization_id=world.org_a.id, ticket_id=ticket.id, filename="old.html",
                         content_type="text/html", size=len(HTML), storage_path=f"attachments/{world.org_a.id}/old.html")
        s.add(att)
    resp = _download(login_as(world.dispatcher_a), att.id)
    assert resp.mimetype == OCTET_STREAM and resp.data == HTML
