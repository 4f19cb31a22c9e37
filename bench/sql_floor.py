"""The floor under `api_ticket_create_sequential_executor_postgresql` (decision 0048): a bare Flask app
under the same gunicorn sync worker that, for each POST, sends PostgreSQL exactly what one OpenADS
registration with an executor sends — the pool's pre-ping, the captured statements with their
parameters, the COMMIT — over psycopg, and answers with the captured response. No ORM, no
validation, no deadlines, no JSON built: what is left is HTTP, Flask and the database's own work.
Whatever OpenADS does in Python, it cannot register faster than this on the same machine.

The statements are those of a real registration (`capture`), replayed as they are: each replay
bumps the organization's counter and moves the history chain's head, as the original did.

Run by bench/api_sequential.py; `OPENADS_SQL_FLOOR` names the pickle written by `capture`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

# The WSGI app gunicorn imports (`bench.sql_floor:app`); built only when the pickle is named.
app: Any = None


def capture(path: Path, statements: list[tuple[str, Any]], response: bytes, dsn: str) -> None:
    """Write what `app` replays: one registration's driver-level statements and parameters."""
    with open(path, "wb") as f:
        pickle.dump({"statements": statements, "response": response, "dsn": dsn}, f)


def _build(path: str) -> Any:
    import psycopg
    from flask import Flask, request

    with open(path, "rb") as f:
        captured = pickle.load(f)  # noqa: S301 (the bench's own file)
    statements, response = captured["statements"], captured["response"]
    floor = Flask(__name__)
    conn = psycopg.connect(captured["dsn"])

    @floor.post("/api/v1/tickets")
    def register() -> Any:
        request.get_json()
        hashlib.sha256(request.headers["Authorization"].partition(" ")[2].encode()).hexdigest()
        conn.execute("SELECT 1")  # the pool's pre-ping
        for sql, params in statements:
            cursor = conn.execute(sql, params, prepare=True)
            if cursor.description is not None:
                cursor.fetchall()
        conn.commit()
        return floor.response_class(response, status=201, mimetype="application/json")

    @floor.get("/status")
    def status() -> Any:
        return "ok"

    return floor


if os.environ.get("OPENADS_SQL_FLOOR"):
    app = _build(os.environ["OPENADS_SQL_FLOOR"])
