"""Call-handling evidence in the panel and the API (issue 14 item 3), on the scripted day of
tests/call_scene.py: the compliance page and API, missed-call lists with closed items and breach
marks, callback calls linked both ways, voice messages marked reviewed (not by an inspector), the
calls journal exported to .xlsx and read back; another organization's objects are 404."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from models.export_calls import CALLS_COLUMNS
from models.job import Job, JobKind, JobStatus
from models.recording import Recording
from models.services import calls as calls_svc
from openads.jobs import runner
from tests import factories as f
from tests.call_scene import DAY, Scene, build_call_day, u
from tests.sheets import sheet_rows
from tests.web.helpers import API, check_error, check_not_found, check_schema

PERIOD = f"from={DAY}&to={DAY}"


@pytest.fixture
def scene(db, world) -> Scene:
    with db.write() as s:
        return build_call_day(s, world)


def _cells(html: str, row_marker: str) -> dict[str, str]:
    row = html.split(row_marker)[1].split("</tr>")[0]
    return dict(re.findall(r'<td class="num-cell" data-col="(\w+)">(\d+)</td>', row))


def test_compliance_page_shows_the_5_minute_share_per_day_and_the_breaches(scene, world, login_as, inspector) -> None:
    for who in (world.manager_a, inspector):
        resp = login_as(who).get(f"/calls/compliance?{PERIOD}")
        assert resp.status_code == 200
        html = resp.get_data(as_text=True)
        assert _cells(html, f'data-day="{DAY}"') == {
            "calls": "7", "answered": "2", "answered_in_5min": "1", "missed": "5", "callback_in_time": "3",
            "recall_in_time": "0", "called_back_late": "1", "not_called_back": "1", "attempts": "4",
            "voice_messages": "2", "voice_messages_reviewed_late": "1"}
        row = html.split(f'data-day="{DAY}"')[1].split("</tr>")[0]
        answer_share = row.split('class="share answer-share"')[1].split("</td>")[0]
        assert "14 %" in answer_share and "нарушение" in answer_share
        assert "60 %" in row.split('class="share callback-share"')[1].split("</td>")[0]
        totals = html.split(f'id="compliance-totals-{world.org_a.id}"')[1].split("</p>")[0]
        assert "14 %" in totals and "(1 из 7)" in totals and "(3 из 5)" in totals
        breaches = html.split(f'id="breaches-{world.org_a.id}"')[1].split("</table>")[0]
        rows = re.findall(r'<tr class="breach breach-(\w+)">(.*?)</tr>', breaches, re.S)
        assert [k for k, _ in rows] == ["late_answer", "late_callback", "not_called_back", "late_voice_review"]
        # actual times in the organization's zone (UTC+3), against the deadline
        late_callback = rows[1][1]
        assert "12:10:00 10.03.2026" in late_callback and "12:14:00 10.03.2026" in late_callback
        assert "+4:00" in late_callback and f"/missed-calls/{scene.m_cb14}" in late_callback
        assert "не было" in rows[2][1]
        assert "15:26:00 10.03.2026" in rows[3][1] and "+15:00" in rows[3][1]
    assert login_as(world.dispatcher_a).get("/calls/compliance").status_code == 403
    assert login_as(world.manager_a).get(f"/calls/compliance?organization_id={world.org_b.id}").status_code == 404


def test_compliance_api_days_and_breaches_with_actual_times(client, scene, world, token_for, inspector) -> None:
    for who in (world.manager_a, inspector):
        resp = client.get(f"{API}/calls/compliance?{PERIOD}", headers=token_for(who, "read telephony"))
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_json()
        check_schema(client, body, "ComplianceList")
        assert body["items"] == [{
            "organization_id": world.org_a.id, "day": DAY, "calls": 7, "answered": 2, "answered_in_5min": 1,
            "answered_in_5min_share": 1 / 7, "missed": 5, "callback_in_time": 3, "recall_in_time": 0,
            "reached_in_time": 3, "called_back_late": 1, "not_called_back": 1, "awaiting_callback": 0, "attempts": 4,
            "share": 0.6, "voice_messages": 2, "voice_messages_reviewed_late": 1,
        }]
        disp = world.dispatcher_a.id
        base = {"organization_id": world.org_a.id, "day": DAY, "recording_id": None, "note": ""}
        assert body["breaches"] == [
            {**base, "kind": "late_answer", "phone": "+79160000002", "started_at": "2026-03-10T07:10:00Z",
             "deadline_at": "2026-03-10T07:15:00Z", "actual_at": "2026-03-10T07:17:00Z", "late_seconds": 120,
             "user_id": disp, "call_id": scene.answered_7, "missed_call_id": None},
            {**base, "kind": "late_callback", "phone": "+79160000012", "started_at": "2026-03-10T09:00:00Z",
             "deadline_at": "2026-03-10T09:10:00Z", "actual_at": "2026-03-10T09:14:00Z", "late_seconds": 240,
             "user_id": disp, "call_id": scene.cb14_call, "missed_call_id": scene.m_cb14},
            {**base, "kind": "not_called_back", "phone": "+79160000013", "started_at": "2026-03-10T10:00:00Z",
             "deadline_at": "2026-03-10T10:10:00Z", "actual_at": None, "late_seconds": None, "user_id": None,
             "call_id": None, "missed_call_id": scene.m_never},
            {**base, "kind": "late_voice_review", "phone": "+79160000015", "started_at": "2026-03-10T12:01:00Z",
             "deadline_at": "2026-03-10T12:11:00Z", "actual_at": "2026-03-10T12:26:00Z", "late_seconds": 900,
             "user_id": disp, "call_id": scene.rec_25_call, "missed_call_id": scene.v_25,
             "recording_id": scene.rec_25},
        ]
    check_error(client.get(f"{API}/calls/compliance?organization_id={world.org_b.id}",
                           headers=token_for(world.manager_a, "read telephony")), 404)


def test_missed_calls_api_lists_closed_items_with_filters_and_breach_fields(client, scene, world, token_for) -> None:
    headers = token_for(world.dispatcher_a, "read telephony")
    closed = client.get(f"{API}/missed-calls?status=closed&{PERIOD}", headers=headers).get_json()
    check_schema(client, closed, "MissedCallList")
    assert [m["id"] for m in closed["items"]] == [scene.v_25, scene.v_4, scene.m_cb14, scene.m_cb6]
    late = next(m for m in closed["items"] if m["id"] == scene.m_cb14)
    assert (late["status"], late["outcome"], late["breach"], late["deadline_at"], late["reached_at"],
            late["late_seconds"], late["closing_call_id"]) == (
        "closed", "late", True, "2026-03-10T09:10:00Z", "2026-03-10T09:14:00Z", 240, scene.cb14_call)
    [attempt] = late["attempts"]
    assert (attempt["call_id"], attempt["resident_answered_at"], attempt["dispatcher"]) == (
        scene.cb14_call, "2026-03-10T09:14:00Z", {"id": world.dispatcher_a.id, "full_name": world.dispatcher_a.full_name})
    voice = next(m for m in closed["items"] if m["id"] == scene.v_25)
    assert (voice["outcome"], voice["breach"], voice["voice_review_breach"]) == ("in_time", False, True)
    assert {k: voice["voice_message"][k] for k in ("id", "received_at", "review_deadline_at", "reviewed_at",
                                                   "review_breach")} == {
        "id": scene.rec_25, "received_at": "2026-03-10T12:01:00Z", "review_deadline_at": "2026-03-10T12:11:00Z",
        "reviewed_at": "2026-03-10T12:26:00Z", "review_breach": True}
    breaches = client.get(f"{API}/missed-calls?status=all&breach=1&{PERIOD}", headers=headers).get_json()
    assert [(m["id"], m["outcome"], m["voice_review_breach"]) for m in breaches["items"]] == [
        (scene.v_25, "in_time", True), (scene.m_never, "not_reached", False), (scene.m_cb14, "late", False)]
    queue = client.get(f"{API}/missed-calls", headers=headers).get_json()
    assert [m["id"] for m in queue["items"]] == [scene.m_never]
    paged = client.get(f"{API}/missed-calls?status=closed&limit=3&{PERIOD}", headers=headers).get_json()
    assert len(paged["items"]) == 3 and paged["next_cursor"]
    rest = client.get(f"{API}/missed-calls?status=closed&limit=3&cursor={paged['next_cursor']}&{PERIOD}",
                      headers=headers).get_json()
    assert [m["id"] for m in rest["items"]] == [scene.m_cb6] and rest["next_cursor"] is None
    callback_call = client.get(f"{API}/calls/{scene.cb14_call}", headers=headers).get_json()
    check_schema(client, callback_call, "Call")
    assert callback_call["missed_call_id"] == scene.m_cb14
    listed = client.get(f"{API}/calls?{PERIOD}&limit=200", headers=headers).get_json()["items"]
    assert {c["id"]: c["missed_call_id"] for c in listed}[scene.answered_3] is None
    assert {c["id"]: c["missed_call_id"] for c in listed}[scene.rec_25_call] == scene.v_25
    one = client.get(f"{API}/missed-calls/{scene.m_cb14}", headers=headers).get_json()
    check_schema(client, one, "MissedCall")
    assert one["outcome"] == "late"
    check_error(client.get(f"{API}/missed-calls?status=gone", headers=headers), 400, "invalid-input")
    check_error(client.get(f"{API}/missed-calls?breach=maybe", headers=headers), 400, "invalid-input")
    theirs = token_for(world.dispatcher_b, "read telephony")
    check_not_found(client, "get", f"{API}/missed-calls/{scene.m_cb14}", theirs)
    assert client.get(f"{API}/missed-calls?status=all", headers=theirs).get_json()["items"] == []


def test_missed_lists_and_card_mark_late_items_and_link_the_callback_call(scene, world, login_as) -> None:
    client = login_as(world.dispatcher_a)
    html = client.get(f"/missed-calls?status=closed&breach=1&{PERIOD}").get_data(as_text=True)
    rows = dict(re.findall(r'<tr class="missed-row[^"]*" id="missed-row-(\d+)" data-id="\d+" data-outcome="(\w+)"', html))
    assert rows == {str(scene.m_cb14): "late", str(scene.v_25): "in_time"}  # the latter: its voice message
    assert "нарушение: не прослушано за 10 минут" in html.split(f'id="missed-row-{scene.v_25}"')[1].split("</tr>")[0]
    row = html.split(f'id="missed-row-{scene.m_cb14}"')[1].split("</tr>")[0]
    assert "нарушение: житель достигнут позже срока на 4:00" in row
    assert "срок до <strong class=\"deadline\">12:10:00</strong>" in row and "<strong class=\"reached\">12:14:00</strong>" in row
    assert f"/calls/{scene.cb14_call}" in row
    everything = client.get(f"/missed-calls?status=all&{PERIOD}").get_data(as_text=True)
    assert 'data-outcome="not_reached"' in everything and "нарушение: житель не достигнут" in everything
    card = client.get(f"/missed-calls/{scene.m_cb14}").get_data(as_text=True)
    evidence = card.split('id="missed-evidence"')[1].split("</p>")[0]
    assert "позже срока на 4:00" in evidence and "12:14:00" in evidence
    assert f'href="/calls/{scene.cb14_call}"' in card and '<strong class="answered-at">12:14:00</strong>' in card
    assert world.dispatcher_a.full_name in card
    call_card = client.get(f"/calls/{scene.cb14_call}").get_data(as_text=True)
    linked = call_card.split('id="call-missed"')[1].split("</dd>")[0]
    assert f"/missed-calls/{scene.m_cb14}" in linked and "нарушение" in linked
    late_call = client.get(f"/calls/{scene.answered_7}").get_data(as_text=True)
    assert "нарушение: ответ позже 5 минут" in late_call
    assert "нарушение: ответ позже 5 минут" not in client.get(f"/calls/{scene.answered_3}").get_data(as_text=True)
    journal = client.get(f"/calls?{PERIOD}").get_data(as_text=True)
    cb_row = journal.split(f'id="call-row-{scene.cb14_call}"')[1].split("</tr>")[0]
    assert f"/missed-calls/{scene.m_cb14}" in cb_row
    assert "позже 5 мин" in journal.split(f'id="call-row-{scene.answered_7}"')[1].split("</tr>")[0]
    assert client.get("/missed-calls?status=nope").status_code == 400
    other = login_as(world.dispatcher_b)
    assert other.get(f"/missed-calls/{scene.m_cb14}").status_code == 404
    assert other.get(f"/calls/{scene.cb14_call}").status_code == 404
    assert f"missed-row-{scene.m_cb14}" not in other.get("/missed-calls?status=all").get_data(as_text=True)


def test_voice_message_marked_reviewed_by_a_dispatcher_not_by_an_inspector(db, world, login_as, client, token_for,
                                                                          inspector) -> None:
    with db.write() as s:
        org = s.merge(world.org_a)
        call = f.make_inbound_call(s, org, "+79160000041")
        rec = calls_svc.attach_voice_message(s, org_id=org.id, call_id=call.id, path=f"{org.id}/vm/{call.id}.wav")
        rec_id = rec.id
    queue = login_as(inspector).get("/missed-calls").get_data(as_text=True)
    assert "не прослушано" in queue and "Отметить прослушанным" not in queue
    resp = client.post(f"/voice-messages/{rec_id}/reviewed")
    assert resp.status_code == 403
    check_error(client.post(f"{API}/voice-messages/{rec_id}/reviewed", headers=token_for(inspector, "read telephony")),
                403)
    with db.read() as s:
        assert s.get(Recording, rec_id).reviewed_at is None
    assert login_as(world.dispatcher_b).post(f"/voice-messages/{rec_id}/reviewed").status_code == 404
    check_not_found(client, "post", f"{API}/voice-messages/{rec_id}/reviewed",
                    token_for(world.dispatcher_b, "read write telephony"))
    disp = login_as(world.dispatcher_a)
    assert "Отметить прослушанным" in disp.get("/missed-calls").get_data(as_text=True)
    resp = disp.post(f"/voice-messages/{rec_id}/reviewed", data={"next": "/missed-calls"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/missed-calls")
    with db.read() as s:
        fresh = s.get(Recording, rec_id)
        assert fresh.reviewed_by_id == world.dispatcher_a.id and fresh.reviewed_at is not None
        first = fresh.reviewed_at
    queue = disp.get("/missed-calls").get_data(as_text=True)
    assert "прослушано <strong class=\"reviewed-at\">" in queue and world.dispatcher_a.full_name in queue
    api = client.post(f"{API}/voice-messages/{rec_id}/reviewed", headers=token_for(world.manager_a, "read write telephony"))
    assert api.status_code == 200
    check_schema(client, api.get_json(), "VoiceMessageReviewed")
    body = api.get_json()
    assert body["voice_message"]["reviewed_by"]["id"] == world.dispatcher_a.id  # the first review is kept
    assert body["voice_message"]["review_breach"] is False and body["missed_call_id"] is not None
    with db.read() as s:
        assert s.get(Recording, rec_id).reviewed_at == first


def _export_rows(data: bytes) -> list[dict[str, object]]:
    rows = sheet_rows(data)
    assert rows[0] == CALLS_COLUMNS
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def _local(hour: int, minute: int, second: int = 0) -> datetime:
    """A scene time as the workbook shows it: Moscow wall-clock time (UTC+3), without a zone."""
    return datetime(2026, 3, 10, hour + 3, minute, second)


def test_calls_journal_export_carries_the_evidence(scene, world, login_as, inspector) -> None:
    for who in (inspector, world.manager_a):
        resp = login_as(who).get(f"/calls/export.xlsx?{PERIOD}")
        assert resp.status_code == 200 and resp.headers["Content-Disposition"].startswith("attachment;")
        rows = _export_rows(resp.get_data())
        assert len(rows) == 11  # 7 calls in, 4 callbacks out
        by_start = {r["Начало"]: r for r in rows}
        late_answer = by_start[_local(7, 10)]
        assert (late_answer["Ответ"], late_answer["Ответ за 5 минут"], late_answer["Ответил"]) == (
            _local(7, 17), "нет", world.dispatcher_a.full_name)
        assert by_start[_local(7, 0)]["Ответ за 5 минут"] == "да"
        callback = by_start[_local(9, 13, 40)]
        assert (callback["Вид"], callback["Номер"], callback["Пропущенный: первый звонок"], callback["Перезвонить до"],
                callback["Житель достигнут"], callback["Перезвон"]) == (
            "обратный вызов", "+7 916 000-00-12", _local(9, 0), _local(9, 10), _local(9, 14),
            "нарушение: позже срока на 4:00")
        missed = by_start[_local(10, 0)]
        assert (missed["Исход"], missed["Перезвонить до"], missed["Житель достигнут"], missed["Перезвон"]) == (
            "Пропущен (время ожидания)", _local(10, 10), None, "нарушение: житель не достигнут")
        voice = by_start[_local(12, 0)]
        assert (voice["Голосовое получено"], voice["Голосовое прослушано"], voice["Прослушал"],
                voice["Голосовое за 10 минут"], voice["Перезвон"]) == (
            _local(12, 1), _local(12, 26), world.dispatcher_a.full_name, "нет", "перезвонили вовремя")
        assert by_start[_local(11, 0)]["Голосовое за 10 минут"] == "да"
    only_missed = _export_rows(login_as(world.manager_a).get(f"/calls/export.xlsx?{PERIOD}&outcome=missed").get_data())
    assert len(only_missed) == 3 + 2
    assert login_as(world.dispatcher_b).get(f"/calls/export.xlsx?{PERIOD}&organization_id={world.org_a.id}").status_code == 404
    theirs = _export_rows(login_as(world.dispatcher_b).get(f"/calls/export.xlsx?{PERIOD}").get_data())
    assert theirs == []
    assert login_as(world.executor_a).get("/calls/export.xlsx").status_code == 403


def test_calls_export_as_a_background_job(db, scene, world, login_as, settings) -> None:
    client = login_as(world.dispatcher_a)
    resp = client.post("/calls/export", data={"from": DAY, "to": DAY, "outcome": "missed"})
    assert resp.status_code == 302 and "/jobs/" in resp.headers["Location"]
    assert runner.run_pending(db, var_dir=settings.var_dir, recordings_dir=settings.recordings_dir) == 1
    with db.read() as s:
        job = s.query(Job).filter(Job.kind == JobKind.CALLS_EXPORT).one()
        assert (job.status, job.result["rows"]) == (JobStatus.DONE, 5)
        job_id, file_name = job.id, job.result["file"]
    path = Path(settings.var_dir) / file_name
    assert path.stat().st_mode & 0o777 == 0o640
    assert len(_export_rows(path.read_bytes())) == 5
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Выгружено звонков: <strong>5</strong>" in page
    download = client.get(f"/jobs/{job_id}/file")
    data = download.get_data()
    download.close()
    assert download.status_code == 200 and len(_export_rows(data)) == 5
    bad = client.post("/calls/export", data={"outcome": "bogus"})
    assert bad.status_code == 400


def test_export_calls_command_writes_the_same_workbook(db, scene, world, tmp_path, capsys) -> None:
    from openads.commands.exchange import export_calls_cmd

    out = tmp_path / "calls.xlsx"
    assert export_calls_cmd(db, [world.org_a.id], {"from": DAY, "to": DAY, "outcome": ["missed"]}, out) == 0
    assert "Выгружено звонков: 5" in capsys.readouterr().out
    rows = _export_rows(out.read_bytes())
    assert sorted(r["Номер"] for r in rows) == ["+7 916 000-00-11", "+7 916 000-00-12", "+7 916 000-00-13",
                                                "+7 916 000-00-14", "+7 916 000-00-15"]


def test_calls_export_reads_in_batches_without_losing_or_repeating_a_call(db, scene, world, tmp_path,
                                                                          monkeypatch) -> None:
    from models import export_calls
    from models.queries_calls import CallFilter

    whole = _export_rows(b"".join(export_calls.iter_calls_xlsx(db, [world.org_a.id], CallFilter(), u(23, 0))))
    monkeypatch.setattr(export_calls, "BATCH_SIZE", 3)
    out = tmp_path / "calls.xlsx"
    assert export_calls.write_calls_xlsx(db, [world.org_a.id], CallFilter(), u(23, 0), out) == 11
    assert _export_rows(out.read_bytes()) == whole
