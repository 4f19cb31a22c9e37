"""«Администрирование» → «Телефония» in the panel (issue 12, part A items 2, 5, 6): an administrator
sets the dispatchers' phones and the call settings, listens to the announcements, reads the status
page and asks for a test call; every change is in the audit log; a refused form comes back as
typed with a Russian message per field; another organization's pages are 404; other roles 403."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from models.audit import AuditEntry
from models.base import utcnow
from models.call import DispatcherPhone, RingStrategy, TelephonySettings
from models.organization import Organization
from models.ports import ProviderError
from models.rules.phones import display
from models.rules.telephony import DEFAULT_TEXTS
from models.services import telephony as svc
from models.services import telephony_status as status_svc
from models.telephony import AriStatus, TestCall, TestCallStatus
from tests import factories as f
from tests.web.helpers import count_rows


@pytest.fixture
def settings(settings, tmp_path):
    """The fake speech provider (deterministic WAV, logs what it synthesised)."""
    return replace(settings, speech=replace(settings.speech, provider="fake", prompts_dir=tmp_path / "prompts"))


def _phone(db, org, endpoint: str, **changes) -> int:
    with db.write() as s:
        return svc.add_phone(s, org=s.get(Organization, org.id), by=None, changes={"endpoint": endpoint, **changes}).id


def _audit(db) -> list[tuple[str, str, str | None, str | None, str]]:
    with db.read() as s:
        return [(e.object_type, e.field, e.old_value, e.new_value, e.via)
                for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def _settings_form(**kw) -> dict[str, str]:
    form = {"wait_limit_seconds": "120", "ring_strategy": "ringall", "ring_retry_seconds": "",
            "voicemail_enabled": "1", "auto_callback_delay_seconds": "0", "moh_class": "", "greeting_text": "",
            "voicemail_offer_text": ""}
    form.update(kw)
    return {k: v for k, v in form.items() if v is not None}


ROUTES = [
    ("GET", "/admin/organizations/{org}/telephony"), ("POST", "/admin/organizations/{org}/telephony"),
    ("POST", "/admin/organizations/{org}/telephony/listen"), ("POST", "/admin/organizations/{org}/telephony/phones"),
    ("GET", "/admin/phones/{phone}"), ("POST", "/admin/phones/{phone}"), ("POST", "/admin/phones/{phone}/move"),
    ("POST", "/admin/phones/{phone}/delete"), ("GET", "/admin/organizations/{org}/telephony/status"),
    ("POST", "/admin/organizations/{org}/telephony/test-call"),
]


@pytest.mark.parametrize("role", ["dispatcher_a", "manager_a", "executor_a", "centre_dispatcher"])
def test_other_roles_get_403_on_every_telephony_page_and_change_nothing(db, world, login_as, role) -> None:
    phone = _phone(db, world.org_a, "PJSIP/201")
    before = _audit(db)
    client = login_as(getattr(world, role))
    for method, route in ROUTES:
        url = route.format(org=world.org_a.id, phone=phone)
        resp = client.open(url, method=method, data={**_settings_form(wait_limit_seconds="5"), "endpoint": "PJSIP/666",
                                                     "phone_id": str(phone), "listen": "greeting", "position": "1"})
        assert resp.status_code == 403, (method, url, resp.status_code)
    assert _audit(db) == before and count_rows(db, TestCall) == 0 and count_rows(db, DispatcherPhone) == 1


def test_another_organizations_telephony_is_404_and_nothing_changes(db, world, login_as, admin_a) -> None:
    theirs = _phone(db, world.org_b, "PJSIP/301")
    _phone(db, world.org_a, "PJSIP/201")
    before = _audit(db)
    client = login_as(admin_a)
    for method, route in ROUTES:
        url = route.format(org=world.org_b.id, phone=theirs)
        resp = client.open(url, method=method, data={**_settings_form(wait_limit_seconds="5"), "endpoint": "PJSIP/666",
                                                     "phone_id": str(theirs), "listen": "greeting", "position": "1"})
        assert resp.status_code == 404, (method, url, resp.status_code)
    # The own organization's status page cannot ring another organization's phone either.
    resp = client.post(f"/admin/organizations/{world.org_a.id}/telephony/test-call", data={"phone_id": str(theirs)})
    assert resp.status_code == 404
    with db.read() as s:
        assert s.get(TelephonySettings, world.org_b.id).wait_limit_seconds == 120
        assert s.get(DispatcherPhone, theirs).endpoint == "PJSIP/301"
    assert _audit(db) == before and count_rows(db, TestCall) == 0


def test_the_admin_index_links_to_the_telephony_page(db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    assert f"/admin/organizations/{world.org_a.id}/telephony" in client.get("/admin").get_data(as_text=True)
    page = client.get(f"/admin/organizations/{world.org_a.id}/telephony").get_data(as_text=True)
    assert "Телефоны диспетчеров" in page and "Телефонов нет" in page
    assert DEFAULT_TEXTS["greeting"] in page  # the recorded prompt's text, as the empty field's placeholder


def test_settings_are_saved_and_logged_as_the_panel(db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    resp = client.post(f"/admin/organizations/{world.org_a.id}/telephony", data=_settings_form(
        wait_limit_seconds="90", ring_strategy="in_order", ring_retry_seconds="10", voicemail_enabled=None,
        auto_callback="1", auto_callback_delay_seconds="60", moh_class="night", greeting_text="УК «Альфа», слушаем."))
    assert resp.status_code == 302
    with db.read() as s:
        row = s.get(TelephonySettings, world.org_a.id)
        assert (row.wait_limit_seconds, row.ring_strategy, row.ring_retry_seconds, row.voicemail_enabled,
                row.auto_callback, row.auto_callback_delay_seconds, row.moh_class, row.greeting_text) == (
            90, RingStrategy.IN_ORDER, 10, False, True, 60, "night", "УК «Альфа», слушаем.")
    log = _audit(db)
    assert ("telephony_settings", "voicemail_enabled", "да", "нет", "panel") in log
    assert ("telephony_settings", "ring_strategy", "ringall", "in_order", "panel") in log
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Настройки телефонии сохранены" in page and 'value="night"' in page


def test_a_refused_settings_form_comes_back_as_typed_with_a_message_per_field(db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    typed = _settings_form(wait_limit_seconds="301", ring_retry_seconds="ноль", moh_class="моя музыка",
                           greeting_text="Свой текст приветствия", voicemail_offer_text="я" * 1001,
                           auto_callback_delay_seconds="900")
    resp = client.post(f"/admin/organizations/{world.org_a.id}/telephony", data=typed)
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "Не сохранено: проверьте поля, отмеченные красным (5)" in page
    for message in ("не более 5 минут", "пауза перед повторным вызовом", "класс музыки ожидания",
                    "не длиннее 1000 символов", "задержка автоперезвона"):
        assert message in page, message
    assert 'value="301"' in page and 'value="ноль"' in page and 'value="моя музыка"' in page
    assert ">Свой текст приветствия</textarea>" in page
    with db.read() as s:
        assert s.get(TelephonySettings, world.org_a.id) is None
    assert _audit(db) == []


def test_phones_are_added_edited_reordered_and_removed(db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    base = f"/admin/organizations/{world.org_a.id}/telephony"
    anna = world.dispatcher_a
    assert client.post(f"{base}/phones", data={"endpoint": "PJSIP/201", "user_id": str(anna.id), "rings": "1"}
                       ).status_code == 302
    assert client.post(f"{base}/phones", data={"endpoint": "PJSIP/202", "rings": "1"}).status_code == 302
    with db.read() as s:
        ids = {p.endpoint: p.id for p in svc.phones_of(s, org_id=world.org_a.id)}
        assert s.get(TelephonySettings, world.org_a.id).dispatcher_endpoints == ["PJSIP/201", "PJSIP/202"]
    page = client.get(base).get_data(as_text=True)
    assert "Смирнова Анна Петровна" in page and "ничей" in page
    # PJSIP/202 first.
    assert client.post(f"/admin/phones/{ids['PJSIP/202']}/move", data={"position": "1"}).status_code == 302
    # Anna's second phone, her current one: her desk phone stops ringing.
    client.post(f"{base}/phones", data={"endpoint": "PJSIP/211", "user_id": str(anna.id), "rings": "1",
                                        "is_current": "1"})
    with db.read() as s:
        assert s.get(TelephonySettings, world.org_a.id).dispatcher_endpoints == ["PJSIP/202", "PJSIP/211"]
    assert "молчит: текущий — PJSIP/211" in client.get(base).get_data(as_text=True)
    # Edit: PJSIP/202 no longer rings.
    resp = client.post(f"/admin/phones/{ids['PJSIP/202']}", data={"endpoint": "PJSIP/202", "user_id": ""})
    assert resp.status_code == 302
    assert client.post(f"/admin/phones/{ids['PJSIP/201']}/delete").status_code == 302
    with db.read() as s:
        assert s.get(TelephonySettings, world.org_a.id).dispatcher_endpoints == ["PJSIP/211"]
        assert s.get(DispatcherPhone, ids["PJSIP/201"]) is None
    log = _audit(db)
    assert ("dispatcher_phone", "user", None, "Смирнова Анна Петровна (disp_a)", "panel") in log
    assert ("dispatcher_phone", "endpoint", "PJSIP/201", None, "panel") in log


def test_a_refused_phone_form_comes_back_as_typed(db, world, login_as, admin_a) -> None:
    _phone(db, world.org_a, "PJSIP/201")
    client = login_as(admin_a)
    base = f"/admin/organizations/{world.org_a.id}/telephony"
    resp = client.post(f"{base}/phones", data={"endpoint": "двести один", "user_id": str(world.executor_a.id),
                                               "is_current": "1"})
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert 'value="двести один"' in page and "например PJSIP/201" in page and "диспетчером" in page
    resp = client.post(f"{base}/phones", data={"endpoint": "PJSIP/201"})
    assert resp.status_code == 400 and "такой телефон уже есть" in resp.get_data(as_text=True)
    # Another organization's user cannot be given a phone here (and is not named).
    resp = client.post(f"{base}/phones", data={"endpoint": "PJSIP/209", "user_id": str(world.dispatcher_b.id)})
    assert resp.status_code == 400 and "не найден в этой организации" in resp.get_data(as_text=True)
    with db.read() as s:
        phone_id = s.scalar(select(DispatcherPhone.id).where(DispatcherPhone.endpoint == "PJSIP/201"))
    resp = client.post(f"/admin/phones/{phone_id}", data={"endpoint": "PJSIP 201", "is_current": "1"})
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert 'value="PJSIP 201"' in page and "закреплённый за пользователем" in page
    resp = client.post(f"/admin/phones/{phone_id}/move", data={"position": "7"})
    assert resp.status_code == 302
    assert "Порядок не изменён" in client.get(resp.headers["Location"]).get_data(as_text=True)
    assert count_rows(db, DispatcherPhone) == 1


def test_listen_plays_the_text_as_typed_or_the_recorded_prompts_text(app, db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    url = f"/admin/organizations/{world.org_a.id}/telephony/listen"
    resp = client.post(url, data=_settings_form(greeting_text="  УК «Альфа»,\nслушаем.  ", listen="greeting"))
    assert resp.status_code == 200 and resp.mimetype == "audio/wav" and resp.data[:4] == b"RIFF"
    resp = client.post(url, data=_settings_form(listen="voicemail_offer"))
    assert resp.status_code == 200 and resp.data[:4] == b"RIFF"
    fake = app.extensions["openads_prompt_cache"].synthesizer
    assert fake.calls == [("synthesize", "УК «Альфа», слушаем."), ("synthesize", DEFAULT_TEXTS["voicemail_offer"])]
    # Listening saves nothing.
    with db.read() as s:
        assert s.get(TelephonySettings, world.org_a.id) is None
    resp = client.post(url, data=_settings_form(greeting_text="я" * 1001, listen="greeting"))
    assert resp.status_code == 400 and "не длиннее 1000 символов" in resp.get_data(as_text=True)
    resp = client.post(url, data=_settings_form(listen="nonsense"))
    assert resp.status_code == 400
    fake.fail_with = ProviderError("fake", "unavailable", "TTS is down")
    resp = client.post(url, data=_settings_form(greeting_text="Новый текст", listen="greeting"))
    assert resp.status_code == 503 and "синтез речи недоступен" in resp.get_data(as_text=True)


def _heartbeat(db, *, age: float = 1.0, endpoints=None, **kw) -> None:
    now = utcnow()
    values = {"host": "pbx", "pid": 4242, "started_at": now - timedelta(hours=1), "interval_seconds": 5,
              "ari_connected": True, "ari_since": now - timedelta(minutes=30), "ami_configured": True,
              "ami_connected": True, "ami_since": now - timedelta(minutes=29),
              "trunk": {"endpoint": "PJSIP/trunk-operator", "state": "online", "registration": "Registered",
                        "registration_at": now.isoformat(), "detail": "sip:sip.zadarma.com"},
              "endpoints": endpoints if endpoints is not None else {}, **kw}
    with db.write() as s:
        status_svc.record_ari_status(s, app="openads", values=values, now=now - timedelta(seconds=age))


def test_the_status_page_shows_connections_own_phones_and_last_calls(db, world, login_as, admin_a) -> None:
    _phone(db, world.org_a, "PJSIP/201", user_id=world.dispatcher_a.id)
    _phone(db, world.org_a, "PJSIP/202")
    _phone(db, world.org_b, "PJSIP/301")
    _heartbeat(db, endpoints={"PJSIP/201": "busy", "PJSIP/202": "offline", "PJSIP/301": "free"})
    with db.write() as s:
        f.make_inbound_call(s, s.merge(world.org_a), "+79161234567")
    client = login_as(admin_a)
    page = client.get(f"/admin/organizations/{world.org_a.id}/telephony/status").get_data(as_text=True)
    assert "работает" in page and "подключено" in page and "зарегистрирован" in page
    assert "PJSIP/201" in page and "занят" in page and "не в сети" in page
    assert "PJSIP/301" not in page  # another organization's phone
    last = page[page.index('id="last-inbound"'):page.index('id="last-fallback"')]
    assert display("+79161234567") in last
    assert page.count("не было") == 3  # fallback, callback, robot
    # The heartbeat stopped 20 s ago (3 beats of 5 s): the service is not running, the states unknown.
    _heartbeat(db, age=20, endpoints={"PJSIP/201": "free"})
    page = client.get(f"/admin/organizations/{world.org_a.id}/telephony/status").get_data(as_text=True)
    assert "не отвечает" in page and "нет данных" in page


def test_without_any_heartbeat_the_page_says_openads_ari_never_reported(db, world, login_as, admin_a) -> None:
    page = login_as(admin_a).get(f"/admin/organizations/{world.org_a.id}/telephony/status").get_data(as_text=True)
    assert "ни разу не сообщала о себе" in page


def test_a_test_call_is_asked_for_once_per_phone_at_a_time(db, world, login_as, admin_a) -> None:
    phone = _phone(db, world.org_a, "PJSIP/201")
    client = login_as(admin_a)
    url = f"/admin/organizations/{world.org_a.id}/telephony/test-call"
    resp = client.post(url, data={"phone_id": str(phone)})
    assert resp.status_code == 302
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Тестовый звонок на PJSIP/201 заказан" in page and "ждёт openads ari" in page
    assert 'http-equiv="refresh"' in page  # the result shows up by itself
    resp = client.post(url, data={"phone_id": str(phone)})
    assert "уже идёт" in client.get(resp.headers["Location"]).get_data(as_text=True)
    resp = client.post(url, data={"phone_id": "x"})
    assert "Выберите телефон" in client.get(resp.headers["Location"]).get_data(as_text=True)
    with db.read() as s:
        (row,) = s.scalars(select(TestCall)).all()
        assert (row.endpoint, row.status, row.requested_by_id) == ("PJSIP/201", TestCallStatus.PENDING, admin_a.id)
    assert count_rows(db, AriStatus) == 0


def test_a_phone_of_a_deactivated_user_keeps_its_owner_when_saved_unchanged(db, world, login_as, admin_a) -> None:
    phone = _phone(db, world.org_a, "PJSIP/201", user_id=world.dispatcher_a.id)
    with db.write() as s:
        s.get(type(world.dispatcher_a), world.dispatcher_a.id).is_active = False
    client = login_as(admin_a)
    page = client.get(f"/admin/phones/{phone}").get_data(as_text=True)
    assert f'<option value="{world.dispatcher_a.id}" selected>' in page
    # The add form offers active users only.
    assert f'<option value="{world.dispatcher_a.id}"' not in client.get(
        f"/admin/organizations/{world.org_a.id}/telephony").get_data(as_text=True)
