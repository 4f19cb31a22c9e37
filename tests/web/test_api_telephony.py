"""/api/v1/admin/telephony and /api/v1/admin/phones (issue 12, part A item 2): an administrator's
token with the `settings` scope reads and changes the telephony settings and phones, synthesises
the announcements, reads the status and asks for a test call; the tenant triplet and the role and
scope refusals; every change in the audit log with via = api."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from models.audit import AuditEntry
from models.call import DispatcherPhone, TelephonySettings
from models.organization import Organization
from models.rules.telephony import DEFAULT_TEXTS
from models.services import telephony as svc
from models.services import telephony_status as status_svc
from models.telephony import TestCall
from tests.web.helpers import (
    API,
    call,
    check_bogus_field,
    check_error,
    check_missing_body,
    check_not_found,
    check_schema,
    count_rows,
)

ALL = "read write telephony settings"


@pytest.fixture
def settings(settings, tmp_path):
    return replace(settings, speech=replace(settings.speech, provider="fake", prompts_dir=tmp_path / "prompts"))


@pytest.fixture
def h(admin_a, token_for):
    return token_for(admin_a, scopes=ALL)


def _phone(db, org, endpoint: str, **changes) -> int:
    with db.write() as s:
        return svc.add_phone(s, org=s.get(Organization, org.id), by=None, changes={"endpoint": endpoint, **changes}).id


def test_roles_and_scopes(client, db, world, admin_a, token_for) -> None:
    phone = _phone(db, world.org_a, "PJSIP/201")
    audit_before = count_rows(db, AuditEntry)
    urls = [("get", f"{API}/admin/telephony/{world.org_a.id}", None),
            ("patch", f"{API}/admin/telephony/{world.org_a.id}", {"wait_limit_seconds": 10}),
            ("post", f"{API}/admin/telephony/{world.org_a.id}/phones", {"endpoint": "PJSIP/666"}),
            ("get", f"{API}/admin/phones/{phone}", None), ("patch", f"{API}/admin/phones/{phone}", {"rings": False}),
            ("delete", f"{API}/admin/phones/{phone}", None),
            ("post", f"{API}/admin/telephony/{world.org_a.id}/prompt", {"which": "greeting"}),
            ("get", f"{API}/admin/telephony/{world.org_a.id}/status", None),
            ("post", f"{API}/admin/telephony/{world.org_a.id}/test-calls", {"phone_id": phone})]
    lacking = token_for(admin_a, scopes="read write telephony")
    for method, url, body in urls:
        check_error(call(client, method, url, lacking, json=body), 403, "insufficient-scope")
        for user in (world.dispatcher_a, world.manager_a, world.executor_a):
            check_error(call(client, method, url, token_for(user, scopes=ALL), json=body), 403, "forbidden")
        check_error(call(client, method, url, json=body), 401, "unauthorized")
    assert count_rows(db, AuditEntry) == audit_before and count_rows(db, TestCall) == 0 and count_rows(db, DispatcherPhone) == 1


def test_another_organizations_telephony_is_404(client, db, world, h) -> None:
    theirs = _phone(db, world.org_b, "PJSIP/301")
    mine = _phone(db, world.org_a, "PJSIP/201")
    before = count_rows(db, AuditEntry)
    org_b = world.org_b.id
    check_not_found(client, "get", f"{API}/admin/telephony/{org_b}", h)
    check_not_found(client, "patch", f"{API}/admin/telephony/{org_b}", h, json={"wait_limit_seconds": 10})
    check_not_found(client, "post", f"{API}/admin/telephony/{org_b}/phones", h, json={"endpoint": "PJSIP/666"})
    check_not_found(client, "get", f"{API}/admin/phones/{theirs}", h)
    check_not_found(client, "patch", f"{API}/admin/phones/{theirs}", h, json={"rings": False})
    check_not_found(client, "delete", f"{API}/admin/phones/{theirs}", h)
    check_not_found(client, "post", f"{API}/admin/telephony/{org_b}/prompt", h, json={"which": "greeting"})
    check_not_found(client, "get", f"{API}/admin/telephony/{org_b}/status", h)
    check_not_found(client, "post", f"{API}/admin/telephony/{org_b}/test-calls", h, json={"phone_id": theirs})
    # Another organization's phone in the body of the own organization's route: a wrong field.
    check_bogus_field(client, "post", f"{API}/admin/telephony/{world.org_a.id}/test-calls", h, {}, "phone_id", theirs)
    # Nor is another organization's user given a phone, and the own phone list names none of theirs.
    check_bogus_field(client, "patch", f"{API}/admin/phones/{mine}", h, {}, "user_id", world.dispatcher_b.id)
    body = client.get(f"{API}/admin/telephony/{world.org_a.id}", headers=h).get_json()
    assert [p["endpoint"] for p in body["phones"]] == ["PJSIP/201"]
    assert count_rows(db, AuditEntry) == before and count_rows(db, TestCall) == 0


def test_settings_read_and_changed_as_the_api_with_the_audit_log(client, db, world, h) -> None:
    url = f"{API}/admin/telephony/{world.org_a.id}"
    body = client.get(url, headers=h).get_json()
    check_schema(client, body, "TelephonySettingsOut")
    assert (body["wait_limit_seconds"], body["ring_strategy"], body["voicemail_enabled"], body["phones"]) == (
        120, "ringall", True, [])
    resp = call(client, "patch", url, h, json={"ring_strategy": "in_order", "ring_retry_seconds": 15,
                                               "voicemail_enabled": False, "greeting_text": "Слушаем вас.",
                                               "moh_class": "night"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    check_schema(client, body, "TelephonySettingsOut")
    assert (body["ring_strategy"], body["ring_retry_seconds"], body["voicemail_enabled"], body["greeting_text"],
            body["moh_class"]) == ("in_order", 15, False, "Слушаем вас.", "night")
    # null and "": the server's defaults again.
    body = call(client, "patch", url, h, json={"ring_retry_seconds": None, "moh_class": ""}).get_json()
    assert (body["ring_retry_seconds"], body["moh_class"]) == (None, None)
    with db.read() as s:
        vias = {e.via for e in s.scalars(select(AuditEntry).where(AuditEntry.object_type == "telephony_settings"))}
    assert vias == {"api"}


def test_bad_settings_are_400_naming_each_field_and_change_nothing(client, db, world, h) -> None:
    url = f"{API}/admin/telephony/{world.org_a.id}"
    check_missing_body(client, "patch", url, h)
    check_bogus_field(client, "patch", url, h, {}, "wait_limit_seconds", 301)
    check_bogus_field(client, "patch", url, h, {}, "ring_strategy", "least_recent")
    check_bogus_field(client, "patch", url, h, {}, "wait_limit_seconds", None)
    check_bogus_field(client, "patch", url, h, {}, "colour", "red")
    err = check_bogus_field(client, "patch", url, h, {"greeting_text": "ok"}, "moh_class", "моя музыка")
    assert "класс музыки ожидания" in err["message"]
    with db.read() as s:
        assert s.get(TelephonySettings, world.org_a.id) is None


def test_phones_created_changed_moved_and_deleted(client, db, world, h) -> None:
    base = f"{API}/admin/telephony/{world.org_a.id}"
    resp = call(client, "post", f"{base}/phones", h, json={"endpoint": "PJSIP/201", "user_id": world.dispatcher_a.id})
    assert resp.status_code == 201, resp.get_json()
    first = resp.get_json()
    check_schema(client, first, "DispatcherPhoneOut")
    assert (first["endpoint"], first["user_name"], first["rings"], first["position"], first["rung"]) == (
        "PJSIP/201", "Смирнова Анна Петровна", True, 1, True)
    second = call(client, "post", f"{base}/phones", h, json={"endpoint": "PJSIP/202"}).get_json()
    moved = call(client, "patch", f"{API}/admin/phones/{second['id']}", h, json={"position": 1}).get_json()
    assert moved["position"] == 1
    assert client.get(base, headers=h).get_json()["ring_list"] == ["PJSIP/202", "PJSIP/201"]
    changed = call(client, "patch", f"{API}/admin/phones/{first['id']}", h,
                   json={"user_id": None, "rings": False}).get_json()
    assert (changed["user_id"], changed["rings"], changed["position"], changed["rung"]) == (None, False, None, False)
    check_bogus_field(client, "post", f"{base}/phones", h, {}, "endpoint", "201")
    check_bogus_field(client, "post", f"{base}/phones", h, {}, "endpoint", "PJSIP/202")  # already there
    check_bogus_field(client, "patch", f"{API}/admin/phones/{second['id']}", h, {}, "is_current", True)  # nobody's
    check_bogus_field(client, "patch", f"{API}/admin/phones/{second['id']}", h, {}, "position", 9)
    after = client.delete(f"{API}/admin/phones/{first['id']}", headers=h)
    assert after.status_code == 200 and [p["endpoint"] for p in after.get_json()["phones"]] == ["PJSIP/202"]
    check_not_found(client, "get", f"{API}/admin/phones/{first['id']}", h)


def test_the_prompt_is_the_typed_text_the_saved_one_or_the_recorded_prompts(app, client, db, world, h) -> None:
    url = f"{API}/admin/telephony/{world.org_a.id}/prompt"
    resp = call(client, "post", url, h, json={"which": "greeting", "text": "Слушаем."})
    assert resp.status_code == 200 and resp.mimetype == "audio/wav" and resp.data[:4] == b"RIFF"
    call(client, "post", url, h, json={"which": "voicemail_offer"})
    call(client, "patch", f"{API}/admin/telephony/{world.org_a.id}", h, json={"greeting_text": "Сохранённый текст."})
    call(client, "post", url, h, json={"which": "greeting", "text": ""})
    call(client, "post", url, h, json={"which": "test_call"})
    fake = app.extensions["openads_prompt_cache"].synthesizer
    assert [t for _, t in fake.calls] == ["Слушаем.", DEFAULT_TEXTS["voicemail_offer"], "Сохранённый текст.",
                                          DEFAULT_TEXTS["test_call"]]
    check_bogus_field(client, "post", url, h, {}, "which", "everything")
    check_bogus_field(client, "post", url, h, {"which": "greeting"}, "text", "я" * 1001)
    from models.ports import ProviderError

    fake.fail_with = ProviderError("fake", "unavailable", "down")
    check_error(call(client, "post", url, h, json={"which": "greeting", "text": "Другой текст."}), 503,
                "speech-unavailable")


def test_status_and_test_calls(client, db, world, admin_a, h) -> None:
    phone = _phone(db, world.org_a, "PJSIP/201")
    url = f"{API}/admin/telephony/{world.org_a.id}"
    body = client.get(f"{url}/status", headers=h).get_json()
    check_schema(client, body, "TelephonyStatusOut")
    assert (body["running"], body["heartbeat_at"], body["phones"]) == (
        False, None, [{"phone_id": phone, "endpoint": "PJSIP/201", "state": "unknown", "rung": True}])
    assert [c["path"] for c in body["last_calls"]] == ["inbound", "fallback", "callback", "robot"]
    with db.write() as s:
        status_svc.record_ari_status(s, app="openads", values={"ari_connected": True, "endpoints": {"PJSIP/201": "busy"},
                                                             "trunk": {"endpoint": "PJSIP/trunk-operator",
                                                                       "state": "online"}})
    body = client.get(f"{url}/status", headers=h).get_json()
    check_schema(client, body, "TelephonyStatusOut")
    assert body["running"] and body["phones"][0]["state"] == "busy" and body["trunk"]["state"] == "online"
    resp = call(client, "post", f"{url}/test-calls", h, json={"phone_id": phone})
    assert resp.status_code == 202
    check_schema(client, resp.get_json(), "TestCallOut")
    assert resp.get_json()["status"] == "pending"
    check_error(call(client, "post", f"{url}/test-calls", h, json={"phone_id": phone}), 409, "test-call-refused")
    assert [t["endpoint"] for t in client.get(f"{url}/status", headers=h).get_json()["test_calls"]] == ["PJSIP/201"]
    check_missing_body(client, "post", f"{url}/test-calls", h)
