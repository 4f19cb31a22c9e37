"""Executor app sync bench (issue 15 A; decision 0042): the queue a phone brings back after a shift
in a basement — `BENCH_FIELD_ACTIONS` (100) actions, one in four a photo (about 150 KB, as the app
compresses them) — sent in order to the real Flask app (in process, bearer token), then the same
queue sent again as after answers lost on the way (every item a replay: nothing may change).

A scratch database of the engine (SQLite file / PostgreSQL database `openads_bench_field`,
recreated each run). Figures: the server time of the whole sync (target ≤ 2 s on PostgreSQL), of
the replay, and errors (answers other than 201 then 200, or rows written twice; target 0).
"""

from __future__ import annotations

import io
import os
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.common import figure, note, scratch_url

ACTIONS = int(os.environ.get("BENCH_FIELD_ACTIONS", "100"))
PHOTO_BYTES = 150 * 1024



def _queue(ticket_ids: list[int], now: Any) -> list[dict[str, Any]]:
    """What the phone queued: per ticket accept, «выехал» with an ETA, «на месте», a photo."""
    steps = ("accept", "en_route", "on_site", "photo")
    out = []
    for n in range(ACTIONS):
        ticket_id, step = ticket_ids[(n // len(steps)) % len(ticket_ids)], steps[n % len(steps)]
        item: dict[str, Any] = {"ticket_id": ticket_id, "client_id": str(uuid.uuid4()), "step": step}
        if step == "en_route":
            item["eta"] = (now + timedelta(minutes=40)).isoformat()
        out.append(item)
    return out


def _send(client: Any, headers: dict[str, str], item: dict[str, Any], photo: bytes) -> int:
    url = f"/api/v1/executor/tickets/{item['ticket_id']}"
    if item["step"] == "photo":
        resp = client.post(f"{url}/files", headers=headers, content_type="multipart/form-data", data={
            "client_id": item["client_id"], "kind": "photo_after", "visibility": "resident",
            "meta": '{"taken_at": "2026-12-06T10:15:00Z", "lat": 55.75, "lon": 37.61}',
            "file": (io.BytesIO(photo), "photo.jpg", "image/jpeg")})
    else:
        body = {"client_id": item["client_id"], "action": item["step"]}
        if "eta" in item:
            body["eta"] = item["eta"]
        resp = client.post(f"{url}/actions", headers=headers, json=body)
    resp.close()
    return int(resp.status_code)


def run(url: str, engine_name: str, out_dir: Path) -> None:
    from models.base import utcnow
    from models.db import Database
    from models.field import ExecutorAction
    from models.migrate import upgrade
    from models.organization import ApiToken
    from models.ticket import Attachment, TicketHistory
    from openads.config import load_settings
    from tests import factories as f
    from web import create_app
    from web.auth import hash_token, new_token

    run_dir = out_dir / f"field_{engine_name}"
    run_dir.mkdir(parents=True, exist_ok=True)
    scratch = scratch_url(url, engine_name, run_dir, "field")
    upgrade(scratch)
    db = Database(scratch)
    now = utcnow()
    with db.write() as s:
        org = f.make_org(s, name="УК «Бенч-поле»", short_name="Бенч-поле")
        category = f.make_categories(s, org)["sewer_blockage"]
        house = f.make_house(s, org, address="г. Москва, ул. Полевая, д. 1")
        executor = f.make_user(s, [org], f.Role.EXECUTOR, login="bench_field_exec")
        tickets = [f.make_ticket(s, org, category, executor_id=executor.id, house_id=house.id, now=now).id
                   for _ in range(max(1, ACTIONS // 4))]
        secret = new_token()
        s.add(ApiToken(user_id=executor.id, token_sha256=hash_token(secret), name="bench"))
    settings = replace(load_settings(), database_url=scratch, var_dir=run_dir / "var")
    app = create_app(settings, db, TESTING=True)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    photo = os.urandom(PHOTO_BYTES)
    queue = _queue(tickets, now)
    try:
        started = time.perf_counter()
        first = [_send(client, headers, item, photo) for item in queue]
        sync_s = time.perf_counter() - started
        started = time.perf_counter()
        again = [_send(client, headers, item, photo) for item in queue]
        replay_s = time.perf_counter() - started
        with db.read() as s:
            actions = s.scalar(select(func.count()).select_from(ExecutorAction)) or 0
            photos = s.scalar(select(func.count()).select_from(Attachment)) or 0
            field_rows = s.scalar(select(func.count()).select_from(TicketHistory).where(
                TicketHistory.action.in_(("accepted", "en_route", "on_site", "attached")))) or 0
        wanted_photos = sum(1 for i in queue if i["step"] == "photo")
        errors = sum(1 for c in first if c != 201) + sum(1 for c in again if c != 200)
        errors += abs(actions - len(queue)) + abs(photos - wanted_photos) + abs(field_rows - len(queue))
        target = "<= 2 s" if engine_name == "postgresql" else None
        figure(f"executor_sync_{len(queue)}_actions_{engine_name}", sync_s, "s", target, digits=2)
        figure(f"executor_sync_replay_{len(queue)}_actions_{engine_name}", replay_s, "s", digits=2)
        figure(f"executor_sync_errors_{engine_name}", errors, "errors", "== 0", digits=0)
        note(f"executor_sync {engine_name}: {len(queue)} actions ({wanted_photos} photos of {PHOTO_BYTES // 1024} KB)")
    finally:
        db.dispose()
