"""«Отчёты → Записи разговоров» and /api/v1/recordings/*-log (issue 14 item 4, decision 0035): the
recording access log and the purge log for managers, administrators and inspectors, by period,
exportable to .xlsx; refused to dispatchers and executors; another organization's rows never shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from models.organization import Organization
from models.recording import RecordingAccess, RecordingAction, recording_relpath
from models.services import calls
from models.services import recordings as rec_svc
from tests import factories as f
from tests.sheets import sheet_rows
from tests.web.helpers import check_error, check_schema

NOW = datetime.now(UTC)


@pytest.fixture
def logs(db, world, settings) -> dict[str, Any]:
    """In each organization: one old recording purged by the retention rule and one young recording
    played; in org_a also downloaded 40 days ago (outside the default 30-day period)."""
    rec_dir = Path(settings.recordings_dir)
    made: dict[str, Any] = {}
    for key, org, player in (("a", world.org_a, world.dispatcher_a), ("b", world.org_b, world.dispatcher_b)):
        with db.write() as s:
            o = s.get(Organization, org.id)
            for kind, age in (("old", 120), ("young", 10)):
                started = NOW - timedelta(days=age)
                call = f.make_inbound_call(s, o, "+79160007777", at=started)
                rel = recording_relpath(org.id, call.id, started)
                (rec_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (rec_dir / rel).write_bytes(b"RIFF" * 100)
                rec = calls.attach_recording(s, org_id=org.id, call_id=call.id, path=rel, size_bytes=400, at=started)
                made[f"{kind}_{key}"] = (call.id, rec.id, rel)
            s.add(RecordingAccess(organization_id=org.id, recording_id=made[f"young_{key}"][1], user_id=player.id,
                                  action=RecordingAction.PLAY, at=NOW - timedelta(days=1), ip="10.0.0.5"))
            if key == "a":
                s.add(RecordingAccess(organization_id=org.id, recording_id=made["young_a"][1], user_id=player.id,
                                      action=RecordingAction.DOWNLOAD, at=NOW - timedelta(days=40)))
    assert rec_svc.purge_expired_recordings(db, now=NOW, recordings_dir=rec_dir) == 2
    return made


@pytest.mark.parametrize("who", ["manager", "inspector"])
def test_the_page_shows_both_logs_of_the_own_organization_for_the_period(db, world, inspector, logs, login_as,
                                                                          who) -> None:
    client = login_as(world.manager_a if who == "manager" else inspector)
    resp = client.get("/reports/recordings")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'id="nav-recording-logs"' in page and "Срок хранения записей:" in page and "90 дн." in page
    access_table = page.split('id="access-log"')[1].split("</table>")[0]
    assert f'data-recording="{logs["young_a"][1]}"' in access_table and "Смирнова Анна Петровна" in access_table
    assert "прослушивание" in access_table and "скачивание" not in access_table  # 40 days ago: outside
    purge_table = page.split('id="purge-log"')[1].split("</table>")[0]
    assert logs["old_a"][2] in purge_table and "срок хранения 90 дн." in purge_table and "400 байт" in purge_table
    # another organization's rows are never there
    assert logs["old_b"][2] not in page and f'data-recording="{logs["young_b"][1]}"' not in page
    assert "Кузнецов" not in page
    # the period widens to the download
    wide = client.get(f"/reports/recordings?from={(NOW - timedelta(days=60)).date().isoformat()}").get_data(as_text=True)
    assert "скачивание" in wide.split('id="access-log"')[1].split("</table>")[0]


def test_the_logs_export_to_xlsx_with_local_times(db, world, inspector, logs, login_as) -> None:
    client = login_as(inspector)
    resp = client.get("/reports/recordings.xlsx?log=purges")
    assert resp.status_code == 200 and resp.headers["Content-Disposition"].startswith("attachment; filename=")
    rows = sheet_rows(resp.data)
    assert rows[0] == tuple(title for title, _w in rec_svc.PURGE_COLUMNS)
    assert len(rows) == 2 and rows[1][2:8] == (logs["old_a"][1], logs["old_a"][0], logs["old_a"][2], 400,
                                               "срок хранения", 90)
    access = sheet_rows(client.get("/reports/recordings.xlsx?log=access").data)
    assert [r[5] for r in access[1:]] == ["прослушивание"] and access[1][4] == "Смирнова Анна Петровна"
    assert client.get("/reports/recordings.xlsx?log=other").status_code == 404


@pytest.mark.parametrize("who", ["dispatcher_a", "executor_a"])
def test_dispatchers_and_executors_get_no_page_no_export_no_api(db, world, logs, login_as, token_for, who) -> None:
    user = getattr(world, who)
    client = login_as(user)
    assert client.get("/reports/recordings").status_code == 403
    assert client.get("/reports/recordings.xlsx?log=access").status_code == 403
    assert 'id="nav-recording-logs"' not in client.get("/").get_data(as_text=True)
    h = token_for(user)
    for log in ("access-log", "purge-log"):
        check_error(client.get(f"/api/v1/recordings/{log}", headers=h), 403)


def test_the_api_gives_the_inspector_its_organization_s_logs(client, db, world, inspector, logs, token_for) -> None:
    h = token_for(inspector)
    access = client.get("/api/v1/recordings/access-log", headers=h).get_json()
    check_schema(client, access, "RecordingAccessLog")
    assert [(i["recording_id"], i["action"], i["user"]) for i in access["items"]] == [
        (logs["young_a"][1], "play", "Смирнова Анна Петровна")]
    purges = client.get("/api/v1/recordings/purge-log", headers=h).get_json()
    check_schema(client, purges, "RecordingPurgeLog")
    assert [(i["recording_id"], i["path"], i["size_bytes"], i["rule"], i["retention_days"], i["note"])
            for i in purges["items"]] == [(logs["old_a"][1], logs["old_a"][2], 400, "retention", 90, None)]
    assert purges["items"][0]["purged_at"].endswith("Z")
    # another organization: not found; a period with nothing: empty
    check_error(client.get(f"/api/v1/recordings/purge-log?organization_id={world.org_b.id}", headers=h), 404)
    old = client.get("/api/v1/recordings/access-log?from=2020-01-01&to=2020-01-31", headers=h).get_json()
    assert old["items"] == [] and old["period_from"] == "2020-01-01"
