"""Reusable API checks (STYLE.md section 8): call them per resource instead of re-writing each test."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from sqlalchemy import func, select

from models.db import Database
from models.ticket import Ticket, TicketComment, TicketHistory

API = "/api/v1"


def check_error(resp: Any, status: int, error_id: str | None = None) -> dict[str, Any]:
    """The response is the JSON error shape with this status (and error id)."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.is_json, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error_id", "message", "details"}, body
    assert isinstance(body["message"], str) and body["message"]
    if error_id is not None:
        assert body["error_id"] == error_id, body
    return body  # type: ignore[no-any-return]


def call(client: Any, method: str, url: str, headers: dict[str, str] | None = None, json: Any = None,
         data: str | bytes | None = None) -> Any:
    kw: dict[str, Any] = {"headers": headers or {}}
    if json is not None:
        kw["json"] = json
    elif data is not None:
        kw["data"] = data
        kw["content_type"] = "application/json"
    return client.open(url, method=method.upper(), **kw)


def check_unauthorized(client: Any, method: str, url: str, json: Any = None) -> None:
    """No token and a wrong token: 401 JSON."""
    check_error(call(client, method, url, json=json), 401, "unauthorized")
    check_error(call(client, method, url, {"Authorization": "Bearer oads_not-a-token"}, json=json), 401, "unauthorized")


def check_not_found(client: Any, method: str, url: str, headers: dict[str, str], json: Any = None) -> dict[str, Any]:
    """Another organization's object (or a missing one) answers 404, never 403."""
    body = check_error(call(client, method, url, headers, json=json), 404)
    assert body["error_id"].endswith("not-found"), body
    return body


def check_bogus_field(client: Any, method: str, url: str, headers: dict[str, str], body: dict[str, Any],
                      field: str, value: Any) -> dict[str, Any]:
    """`body` with `field` set to a wrong `value`: 400 naming the field."""
    resp = call(client, method, url, headers, json={**body, field: value})
    err = check_error(resp, 400, "invalid-input")
    named = [f["field"] for f in err["details"].get("fields", [])] + [err["details"].get("field")]
    assert field in named, err
    return err


def check_missing_body(client: Any, method: str, url: str, headers: dict[str, str]) -> None:
    """No body, a broken JSON text and a JSON array: 400 each."""
    for data in (b"", b"{not json", b"[1, 2]", b'"text"'):
        err = check_error(call(client, method, url, headers, data=data), 400, "invalid-input")
        assert err["details"].get("field") == "body", err


def count_rows(db: Database, model: Any) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def counts(db: Database) -> tuple[int, int, int]:
    """Tickets, history rows and comments: bad input must leave all three unchanged."""
    with db.read() as s:
        return tuple(  # type: ignore[return-value]
            s.scalar(select(func.count()).select_from(m)) or 0 for m in (Ticket, TicketHistory, TicketComment)
        )


def check_schema(client: Any, payload: Any, component: str) -> None:
    """`payload` matches `#/components/schemas/<component>` of the served OpenAPI document."""
    doc = client.get(f"{API}/openapi.json").get_json()
    schema = {"$ref": f"#/components/schemas/{component}", "components": doc["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(payload), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def api_document() -> dict[str, Any]:
    """The OpenAPI document without a database or a request, for tests that are generated from it
    at collection time: built in the context of an app that has only the API blueprint, as when
    the app serves it."""
    from flask import Flask

    from web.api.v1 import bp
    from web.api.v1.openapi import document

    app = Flask(__name__)
    app.register_blueprint(bp, url_prefix=API)
    with app.app_context():
        return document()
