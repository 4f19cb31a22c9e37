"""Telephony administration API (issue 12, part A item 2; decision 0029): an organization's call
settings and dispatchers' phones, the synthesised announcements, the status of the telephony and
test calls. Administrators only, token scope `settings` on every route, another organization's
settings or phones are 404. The same services as the panel (models/services/telephony.py,
telephony_status.py); every change is in the audit log with `via` = api."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from models.call import DispatcherPhone
from models.errors import ValidationFailed
from models.organization import Organization
from models.rules import telephony as rules
from models.rules.access import Scope
from models.services import telephony as svc
from models.services import telephony_status as status_svc
from models.telephony import TestCall
from web.api.v1 import bp
from web.api.v1 import common as c
from web.api.v1.admin import _actor, _admin, _my_org, _nulls
from web.api.v1.schemas import Body, Out
from web.auth import api_scope
from web.dbsession import session as db_session
from web.inputs import Id
from web.panel.admin_telephony import prompt_text, synthesize, wav_response

Strategy = Literal["ringall", "round_robin", "in_order"]
PhoneState = Literal["free", "ringing", "busy", "offline", "unknown"]
Prompt = Literal["greeting", "voicemail_offer", "all_busy", "test_call"]

# --- schemas -----------------------------------------------------------------------------------------------


class TelephonySettingsUpdate(Body):
    """Only the fields present change. `ring_retry_seconds`, `moh_class`, `greeting_text`,
    `voicemail_offer_text`: null or "" — the server's default (ARI_RING_RETRY_SECONDS, ARI_MOH_CLASS,
    the recorded prompt)."""

    wait_limit_seconds: int | None = Field(None, ge=1, le=300, description="Сколько житель ждёт ответа (ПП 416: ≤ 300 с)")
    ring_strategy: Strategy | None = Field(None, description="ringall — все сразу, round_robin — по кругу, "
                                                             "in_order — по порядку с первого")
    ring_retry_seconds: int | None = Field(None, ge=1, le=rules.MAX_RING_RETRY_SECONDS)
    voicemail_enabled: bool | None = None
    auto_callback: bool | None = None
    auto_callback_delay_seconds: int | None = Field(None, ge=0, le=rules.MAX_AUTO_CALLBACK_DELAY_SECONDS)
    moh_class: str | None = Field(None, max_length=80)
    greeting_text: str | None = Field(None, max_length=rules.MAX_ANNOUNCEMENT)
    voicemail_offer_text: str | None = Field(None, max_length=rules.MAX_ANNOUNCEMENT)


SETTINGS_NOT_NULLABLE = ("wait_limit_seconds", "ring_strategy", "voicemail_enabled", "auto_callback",
                         "auto_callback_delay_seconds")


class PhoneCreate(Body):
    endpoint: str = Field(min_length=1, max_length=80, description="Эндпоинт Asterisk, например PJSIP/201")
    user_id: Id | None = Field(None, description="Чей телефон; null — ничей")
    rings: bool = Field(True, description="Звонит при входящих (в конце очереди вызова)")
    is_current: bool = Field(False, description="Текущий телефон пользователя: его другие телефоны не звонят")


class PhoneUpdate(Body):
    """Only the fields present change; `user_id: null` — телефон ничей."""

    endpoint: str | None = Field(None, min_length=1, max_length=80)
    user_id: Id | None = None
    rings: bool | None = None
    is_current: bool | None = None
    position: int | None = Field(None, ge=1, le=1000, description="Место в очереди вызова (1 — первым)")


PHONE_NOT_NULLABLE = ("endpoint", "rings", "is_current", "position")


class PromptRequest(Body):
    which: Prompt = Field(description="Какая подсказка")
    text: str | None = Field(None, max_length=rules.MAX_ANNOUNCEMENT,
                             description="Текст приветствия или предложения, как он будет сохранён; "
                                         "null или пусто — сохранённый текст, а если его нет — текст записанной подсказки")


class TestCallCreate(Body):
    phone_id: Id

    __test__ = False


class DispatcherPhoneOut(Out):
    id: int
    organization_id: int
    endpoint: str
    user_id: int | None
    user_name: str | None
    rings: bool
    position: int | None = Field(description="Место в очереди вызова; null — не звонит")
    is_current: bool
    rung: bool = Field(description="Звонит при входящих сейчас (учитывая текущий телефон пользователя)")


class TelephonySettingsOut(Out):
    organization_id: int
    wait_limit_seconds: int
    ring_strategy: str
    ring_retry_seconds: int | None
    voicemail_enabled: bool
    auto_callback: bool
    auto_callback_delay_seconds: int
    moh_class: str | None
    greeting_text: str | None
    voicemail_offer_text: str | None
    ring_list: list[str] = Field(description="Кому звонят входящие, по порядку")
    phones: list[DispatcherPhoneOut]


class PhoneStateOut(Out):
    phone_id: int
    endpoint: str
    state: PhoneState
    rung: bool


class LastCallOut(Out):
    path: str
    call_id: int | None
    started_at: datetime | None
    outcome: str | None


class TestCallOut(Out):
    id: int
    endpoint: str
    status: str = Field(description="pending, ringing, answered, no_answer, busy, failed")
    requested_at: datetime
    finished_at: datetime | None
    detail: str

    __test__ = False


class TrunkStatusOut(Out):
    endpoint: str | None
    state: str | None
    registration: str | None
    registration_at: str | None
    detail: str | None


class TelephonyStatusOut(Out):
    running: bool = Field(description="openads ari присылает сигнал (не старше трёх интервалов)")
    heartbeat_at: datetime | None
    ari_connected: bool | None
    ari_since: datetime | None
    ami_configured: bool | None
    ami_connected: bool | None
    ami_since: datetime | None
    trunk: TrunkStatusOut | None
    phones: list[PhoneStateOut]
    last_calls: list[LastCallOut]
    test_calls: list[TestCallOut]


REQUEST_MODELS: tuple[type[BaseModel], ...] = (TelephonySettingsUpdate, PhoneCreate, PhoneUpdate, PromptRequest,
                                                TestCallCreate)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (TelephonySettingsOut, DispatcherPhoneOut, TelephonyStatusOut, TestCallOut)

# --- serialisation ------------------------------------------------------------------------------------------


def phones_json(org_id: int) -> list[dict[str, Any]]:
    s = db_session()
    phones = svc.phones_of(s, org_id=org_id)
    rung = set(svc.ring_list(phones))
    out, place = [], 0
    for p in phones:
        place += 1 if p.rings else 0
        out.append(phone_json(p, position=place if p.rings else None, rung=p.endpoint in rung))
    return out


def phone_json(p: DispatcherPhone, *, position: int | None = None, rung: bool | None = None) -> dict[str, Any]:
    if rung is None:  # one phone: its place among all
        for item in phones_json(p.organization_id):
            if item["id"] == p.id:
                return item
    user = p.user
    return {"id": p.id, "organization_id": p.organization_id, "endpoint": p.endpoint, "user_id": p.user_id,
            "user_name": user.full_name if user is not None else None, "rings": p.rings, "position": position,
            "is_current": p.is_current, "rung": bool(rung)}


def settings_json(org: Organization) -> dict[str, Any]:
    row = svc.telephony_settings(db_session(), org.id)
    return {
        "organization_id": org.id, "wait_limit_seconds": row.wait_limit_seconds,
        "ring_strategy": row.ring_strategy.value, "ring_retry_seconds": row.ring_retry_seconds,
        "voicemail_enabled": bool(row.voicemail_enabled), "auto_callback": bool(row.auto_callback),
        "auto_callback_delay_seconds": int(row.auto_callback_delay_seconds or 0), "moh_class": row.moh_class,
        "greeting_text": row.greeting_text, "voicemail_offer_text": row.voicemail_offer_text,
        "ring_list": list(row.dispatcher_endpoints or []), "phones": phones_json(org.id),
    }


def test_call_json(t: TestCall) -> dict[str, Any]:
    return {"id": t.id, "endpoint": t.endpoint, "status": t.status.value, "requested_at": c.utc_iso(t.requested_at),
            "finished_at": c.utc_iso(t.finished_at), "detail": t.detail}


def status_json(org: Organization) -> dict[str, Any]:
    st = status_svc.telephony_status(db_session(), org_id=org.id)
    a = st.ari
    trunk = None
    if a is not None:
        t = a.trunk or {}
        trunk = {k: (str(t[k]) if t.get(k) is not None else None)
                 for k in ("endpoint", "state", "registration", "registration_at", "detail")}
    return {
        "running": st.running, "heartbeat_at": c.utc_iso(a.updated_at) if a else None,
        "ari_connected": a.ari_connected if a else None, "ari_since": c.utc_iso(a.ari_since) if a else None,
        "ami_configured": a.ami_configured if a else None, "ami_connected": a.ami_connected if a else None,
        "ami_since": c.utc_iso(a.ami_since) if a else None, "trunk": trunk,
        "phones": [{"phone_id": p.phone.id, "endpoint": p.phone.endpoint, "state": p.state, "rung": p.rung}
                   for p in st.phones],
        "last_calls": [{"path": path, "call_id": call.id if call else None,
                        "started_at": c.utc_iso(call.started_at) if call else None,
                        "outcome": call.outcome.value if call and call.outcome else None}
                       for path, call in st.last_calls.items()],
        "test_calls": [test_call_json(t) for t in st.test_calls],
    }


def _my_phone(phone_id: int) -> tuple[Organization, DispatcherPhone]:
    user = _admin()
    phone = svc.get_phone(db_session(), org_ids=c.user_orgs(user), phone_id=phone_id)
    return c.organization(phone.organization_id), phone


# --- routes -----------------------------------------------------------------------------------------------------


@bp.get("/admin/telephony/<int:organization_id>")
@api_scope(Scope.SETTINGS)
def admin_get_telephony(organization_id: int) -> Any:
    return settings_json(_my_org(_admin(), organization_id))


@bp.patch("/admin/telephony/<int:organization_id>")
@api_scope(Scope.SETTINGS)
def admin_update_telephony(organization_id: int) -> Any:
    org = _my_org(_admin(), organization_id)
    body = c.parse_body(TelephonySettingsUpdate)
    _nulls(body, SETTINGS_NOT_NULLABLE)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    svc.update_telephony(db_session(), org=org, changes=changes, by=_actor())
    return settings_json(org)


@bp.post("/admin/telephony/<int:organization_id>/phones")
@api_scope(Scope.SETTINGS)
def admin_create_phone(organization_id: int) -> Any:
    org = _my_org(_admin(), organization_id)
    body = c.parse_body(PhoneCreate)
    phone = svc.add_phone(db_session(), org=org, changes=body.model_dump(), by=_actor())
    return phone_json(phone), 201


@bp.get("/admin/phones/<int:phone_id>")
@api_scope(Scope.SETTINGS)
def admin_get_phone(phone_id: int) -> Any:
    return phone_json(_my_phone(phone_id)[1])


@bp.patch("/admin/phones/<int:phone_id>")
@api_scope(Scope.SETTINGS)
def admin_update_phone(phone_id: int) -> Any:
    org, phone = _my_phone(phone_id)
    body = c.parse_body(PhoneUpdate)
    _nulls(body, PHONE_NOT_NULLABLE)
    given = body.model_fields_set
    changes = {name: getattr(body, name) for name in given if name != "position"}
    s = db_session()
    if changes:
        svc.update_phone(s, org=org, phone_id=phone.id, changes=changes, by=_actor())
    if "position" in given and body.position is not None:
        svc.move_phone(s, org=org, phone_id=phone.id, position=body.position, by=_actor())
    s.refresh(phone)
    return phone_json(phone)


@bp.delete("/admin/phones/<int:phone_id>")
@api_scope(Scope.SETTINGS)
def admin_delete_phone(phone_id: int) -> Any:
    org, phone = _my_phone(phone_id)
    svc.remove_phone(db_session(), org=org, phone_id=phone.id, by=_actor())
    return settings_json(org)


@bp.post("/admin/telephony/<int:organization_id>/prompt")
@api_scope(Scope.SETTINGS)
def admin_prompt_audio(organization_id: int) -> Any:
    """The prompt as callers hear it, synthesised by the configured TTS: audio/wav."""
    org = _my_org(_admin(), organization_id)
    body = c.parse_body(PromptRequest)
    text = body.text
    if not (text or "").strip() and body.which in rules.ANNOUNCEMENTS:
        text = getattr(svc.telephony_settings(db_session(), org.id), f"{body.which}_text")
    try:
        spoken = prompt_text(body.which, text)
    except ValidationFailed as exc:
        exc.details["field"] = "text"
        raise
    return wav_response(synthesize(spoken), body.which)


@bp.get("/admin/telephony/<int:organization_id>/status")
@api_scope(Scope.SETTINGS)
def admin_telephony_status(organization_id: int) -> Any:
    return status_json(_my_org(_admin(), organization_id))


@bp.post("/admin/telephony/<int:organization_id>/test-calls")
@api_scope(Scope.SETTINGS)
def admin_create_test_call(organization_id: int) -> Any:
    user = _admin()
    org = _my_org(user, organization_id)
    body = c.parse_body(TestCallCreate)
    try:
        call = status_svc.request_test_call(db_session(), org=org, phone_id=body.phone_id, by=user)
    except svc.PhoneNotFound:  # an id in the body: a wrong field, as elsewhere (not the route's 404)
        raise ValidationFailed("телефон не найден в этой организации", field="phone_id",
                               fields=[{"field": "phone_id", "message": "телефон не найден в этой организации"}]
                               ) from None
    return test_call_json(call), 202
