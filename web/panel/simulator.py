"""The call simulator of the demo (`openads demo` without ARI_URL; registered only when OPENADS_DEMO=1).

The demo's Asterisk is the ARI emulator (`tests/emulator/ari`); this page drives it through its
`/_emulator/...` HTTP controls, as a resident's phone and the dispatchers' phones would: a call
from any number to an organization's hotline, "answer as dispatcher N", hang up, press keys.
Everything else — the call row, the caller card on the console, the queue, recordings, missed
calls, callbacks — is done by the real ARI app (`openads ari`) reacting to the emulator's events.

"Say" speaks for a resident (a rating to the robot, a voice message): the words are synthesised
with espeak-ng when it is installed and go into the emulator's recordings of the channel as audio
and as text; the demo's recognizer (`SPEECH_RECOGNIZER=fake`, set by `openads demo`) reads the text.

Tenants: a user sees and drives only the channels of their organizations' calls (`Scope`); another
organization's channel is "not found". The control API takes the emulator's ARI credentials
(ARI_USER / ARI_PASSWORD, a random password that `openads demo` generates).
"""

from __future__ import annotations

import base64
import logging
import random
from dataclasses import dataclass
from typing import Any

import httpx
from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, select

from models.call import Call, DispatcherPhone
from models.errors import DomainError, NotFound, ValidationFailed
from models.housing import ResidentPhone
from models.organization import Organization, User
from models.ports import ProviderError
from models.rules.phones import display as phone_display
from models.rules.phones import try_e164
from openads import channel_vars as cv
from openads.providers.speech.espeak import EspeakNg
from web.auth import login_required, org_ids
from web.dbsession import session as db_session
from web.panel.common import STAFF, my_orgs, settings

log = logging.getLogger(__name__)

bp = Blueprint("simulator", __name__, template_folder="../templates", url_prefix="/simulator")

CONTROL_TIMEOUT = 5.0
DIGITS = set("0123456789*#")
MAX_WORDS = 200  # characters a resident says at once


class EmulatorUnavailable(DomainError):
    error_id = "ari-emulator-unavailable"
    http_status = 503


@dataclass(frozen=True)
class SimChannel:
    id: str
    who: str
    number: str  # the number of the phone this channel is
    call: str  # the other side as this phone sees it: the number it dials, or the caller ID it shows
    state: str
    state_title: str
    answerable: bool
    answer_label: str
    up: bool
    resident: bool  # a resident's phone: the simulator can speak for it


STATE_TITLES = {"Ring": "звонит на линию", "Ringing": "звонит телефон", "Down": "набор", "Up": "разговор"}
# The app's legs to a resident, by their Stasis arguments (`Stasis(openads,<flow>,...)`).
OUTGOING_RESIDENT_CALLS = {"callback": "обратный вызов", "robot,rating": "робот: оценка заявки",
                           "robot,voice": "робот: сообщение"}


def emulator_base() -> str:
    """The emulator's address (ARI_URL without `/ari`)."""
    url = (settings().ari_url or "").rstrip("/")
    if not url:
        raise EmulatorUnavailable("ARI_URL не задан: симулятор работает с эмулятором ARI из `openads demo`")
    return url[: -len("/ari")] if url.endswith("/ari") else url


def control(action: str, body: dict[str, Any] | None = None) -> Any:
    """One `/_emulator/<action>` call (GET without a body); its 400 `{"message"}` → ValidationFailed."""
    url = f"{emulator_base()}/_emulator/{action}"
    auth = (settings().ari_user, settings().ari_password)  # the emulator's own ARI credentials
    try:
        resp = httpx.request("GET" if body is None else "POST", url, json=body, auth=auth, timeout=CONTROL_TIMEOUT)
    except httpx.HTTPError as exc:
        raise EmulatorUnavailable(f"эмулятор ARI не отвечает ({url}): {exc}") from exc
    if resp.status_code == 401:
        raise EmulatorUnavailable("эмулятор ARI не принял ARI_USER / ARI_PASSWORD")
    if resp.status_code == 400:
        raise ValidationFailed(f"эмулятор: {resp.json().get('message', resp.text)}")
    if resp.status_code != 200:
        raise EmulatorUnavailable(f"эмулятор ARI ответил {resp.status_code} на {action}: это не эмулятор?")
    return resp.json()


def _phones() -> dict[str, tuple[str, str]]:
    """Endpoint resource ("disp1") → (login, full name) of the dispatchers of the caller's organizations."""
    rows = db_session().execute(
        select(DispatcherPhone.endpoint, User.login, User.full_name).join(User, User.id == DispatcherPhone.user_id)
        .where(DispatcherPhone.organization_id.in_(org_ids())).order_by(DispatcherPhone.endpoint)
    ).all()
    return {endpoint.split("/", 1)[-1]: (login, name) for endpoint, login, name in rows}


@dataclass(frozen=True)
class Scope:
    """What ties the emulator's channels to the caller's organizations. A channel the ARI app made
    or took carries OPENADS_CALL_ID: the call's organization decides. Any other channel belongs to
    the organization whose hotline it is about (the number an incoming call dialled, the caller ID an
    outgoing leg shows: a callback's and the robot's legs show the hotline) or whose dispatcher's
    phone it rings. Everything else is hidden, and "not found" to the actions."""

    hotlines: dict[str, str]  # E.164 → the organization's short name
    phones: dict[str, tuple[str, str]]  # endpoint resource ("disp1") → (login, full name)
    call_ids: frozenset[str]  # OPENADS_CALL_ID values that are the caller's organizations' calls

    def owns(self, ch: dict[str, Any]) -> bool:
        call_id = (ch.get("variables") or {}).get(cv.CALL_ID)
        if call_id:
            return str(call_id) in self.call_ids
        if _resource(ch) in self.phones:
            return True
        if ch.get("outgoing"):
            number = (ch.get("caller") or {}).get("number", "")
        else:
            number = dialled(ch)
        return try_e164(str(number)) in self.hotlines


def _scope(state: dict[str, Any]) -> Scope:
    ids = {str(v) for ch in state.get("channels", []) if (v := (ch.get("variables") or {}).get(cv.CALL_ID))}
    numeric = [int(i) for i in ids if i.isdigit() and len(i) < 19]
    mine: list[int] = list(db_session().scalars(
        select(Call.id).where(Call.id.in_(numeric), Call.organization_id.in_(org_ids()))
    )) if numeric else []
    return Scope(hotlines={number: org.short_name for org, number in _hotlines()}, phones=_phones(),
                 call_ids=frozenset(str(i) for i in mine))


def my_channels() -> tuple[list[dict[str, Any]], Scope]:
    """The emulator's live channels of the caller's organizations, and the scope that chose them."""
    state = control("state")
    scope = _scope(state)
    return [ch for ch in state.get("channels", []) if scope.owns(ch)], scope


def my_channel(channel_id: str) -> dict[str, Any]:
    """One channel of the caller's organizations; another organization's (or a gone one) is NotFound."""
    for ch in my_channels()[0]:
        if str(ch.get("id")) == channel_id:
            return ch
    raise NotFound("канал не найден", channel=channel_id)


def dialled(ch: dict[str, Any]) -> str:
    """The hotline an incoming call dialled: OPENADS_DID ([openads-from-trunk] sets it; in the
    dialplan fallback the channel's extension is `s`), else the extension."""
    return str((ch.get("variables") or {}).get(cv.DID) or (ch.get("dialplan") or {}).get("exten", ""))


def _resource(ch: dict[str, Any]) -> str:
    """The endpoint resource of a channel's name: "PJSIP/disp1-00000003" → "disp1"."""
    return str(ch.get("name", "")).split("/", 1)[-1].rsplit("-", 1)[0]


def _shown(raw: str, hotlines: dict[str, str]) -> str:
    """A number as a phone shows it, naming the hotline it is (the trunk sends digits only)."""
    e164 = try_e164(raw)
    if e164 is None:
        return raw
    org = hotlines.get(e164)
    return f"{phone_display(e164)} (горячая линия {org})" if org else phone_display(e164)


def _resident_call(app_args: str) -> str:
    for prefix, title in OUTGOING_RESIDENT_CALLS.items():
        if app_args == prefix or app_args.startswith(f"{prefix},"):
            return title
    return "вызов от АДС"


def _channels(channels: list[dict[str, Any]], scope: Scope) -> list[SimChannel]:
    """The emulator's channels as the phones see them. A leg the app originated (a callback, the robot)
    carries the hotline as its caller (and connected) number, as on Asterisk: the phone that rings is
    the endpoint, or for the trunk the number dialled through it (`remote_number`)."""
    phones, hotlines = scope.phones, scope.hotlines
    out = []
    for ch in channels:
        name = str(ch.get("name", ""))
        resource = _resource(ch)
        caller = (ch.get("caller") or {}).get("number", "")
        outgoing = bool(ch.get("outgoing"))
        if outgoing:
            call = f"входящий с {_shown(caller, hotlines)}" if caller else "входящий, номер скрыт"
        else:
            call = f"звонит на {_shown(dialled(ch), hotlines)}"
        resident = False
        if resource in phones:
            login, full_name = phones[resource]
            who, number = f"Диспетчер {login} ({full_name})", f"PJSIP/{resource}"
            label = f"Ответить как диспетчер {login}"
        elif resource.startswith("disp"):
            who, number, label = f"Телефон {resource}", f"PJSIP/{resource}", "Ответить"
        else:
            resident = True
            if outgoing:
                who = f"Житель ({_resident_call(str(ch.get('app_args', '')))})"
                number = _shown(str(ch.get("remote_number", "")), {}) or name
            else:
                who, number = "Житель", _shown(caller, {})
            label = "Ответить (житель)"
        state_name = str(ch.get("state", ""))
        out.append(SimChannel(
            id=str(ch["id"]), who=who, number=number, call=call,
            state=state_name, state_title=STATE_TITLES.get(state_name, state_name),
            answerable=state_name in ("Down", "Ringing") and not ch.get("in_stasis", False), answer_label=label,
            up=state_name == "Up", resident=resident,
        ))
    return out


def _hotlines() -> list[tuple[Organization, str]]:
    return [(org, number) for org in my_orgs() for number in org.hotlines]


def _random_resident_phone(org_id: int) -> str | None:
    return db_session().scalar(
        select(ResidentPhone.phone).where(ResidentPhone.organization_id == org_id).order_by(func.random()).limit(1)
    )


def _done(message: str, result: Any = None) -> Any:
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"message": message, "result": result})
    flash(message, "ok")
    return redirect(url_for("simulator.index"))


def _control(action: str, channel_id: str, params: dict[str, Any], message: str) -> Any:
    """One step of the emulator's control API on one of the caller's channels, answered as the page
    or JSON expects."""
    try:
        my_channel(channel_id)
        result = control(action, {"channel": channel_id, **params})
    except DomainError as exc:
        return _failed(exc)
    return _done(message, result)


def _failed(exc: DomainError) -> Any:
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"error_id": exc.error_id, "message": exc.message}), exc.http_status
    if isinstance(exc, NotFound):
        raise exc  # the 404 page: there is nothing on the simulator page to go back to
    flash(exc.message, "error")
    return redirect(url_for("simulator.index"))


@bp.get("/")
@login_required(STAFF)
def index() -> Any:
    phones = _phones()
    error = None
    channels: list[SimChannel] = []
    try:
        channels = _channels(*my_channels())
    except DomainError as exc:
        error = exc.message
    template = "simulator_channels.html" if request.args.get("part") == "channels" else "simulator.html"
    return render_template(template, hotlines=_hotlines(), channels=channels, phones=phones, error=error)


@bp.post("/call")
@login_required(STAFF)
def call() -> Any:
    """A resident's call to a hotline of one of the caller's organizations, from any number
    (empty: a random resident of that organization; `unknown`: a number nobody has)."""
    try:
        hotline = try_e164(request.form.get("hotline"))
        match = [(org, n) for org, n in _hotlines() if n == hotline]
        if hotline is None or not match:
            raise ValidationFailed("выберите горячую линию своей организации", field="hotline")
        org = match[0][0]
        raw = (request.form.get("caller") or "").strip()
        if request.form.get("unknown"):
            caller: str | None = f"+7999{random.randrange(10**7):07d}"
        elif raw:
            caller = try_e164(raw)
            if caller is None:
                raise ValidationFailed("номер звонящего: например +7 916 123-45-67", field="caller", value=raw)
        else:
            caller = _random_resident_phone(org.id)
            if caller is None:
                raise ValidationFailed("в организации нет жителей с телефонами: укажите номер", field="caller")
        did = hotline.lstrip("+")  # as a Russian trunk sends it
        channel = control("incoming_call", {"did": did, "caller": caller.lstrip("+"), "args": ["inbound", did]})
    except DomainError as exc:
        return _failed(exc)
    return _done(f"Звонок с {phone_display(caller)} на горячую линию {org.short_name} ({phone_display(hotline)})",
                 channel)


@bp.post("/channels/<channel_id>/answer")
@login_required(STAFF)
def answer(channel_id: str) -> Any:
    return _control("answer", channel_id, {}, "Трубка снята")


@bp.post("/channels/<channel_id>/hangup")
@login_required(STAFF)
def hangup(channel_id: str) -> Any:
    return _control("hangup", channel_id, {}, "Трубка положена")


@bp.post("/channels/<channel_id>/press")
@login_required(STAFF)
def press(channel_id: str) -> Any:
    digits = (request.form.get("digits") or "").strip()
    if not digits or len(digits) > 20 or not set(digits) <= DIGITS:
        return _failed(ValidationFailed("клавиши: цифры, * и #", field="digits", value=digits))
    return _control("press", channel_id, {"digits": digits}, f"Нажато: {digits}")


def _spoken(words: str) -> str | None:
    """The words as a resident's voice: a base64 WAV 8 kHz mono (espeak-ng, offline, whatever
    SPEECH_PROVIDER the robot speaks with), or None without espeak-ng: the text alone is sent."""
    if not EspeakNg.available():
        return None
    try:
        return base64.b64encode(EspeakNg(settings().speech).synthesize(words)).decode("ascii")
    except ProviderError as exc:
        log.warning("simulator: the words are sent as text only, espeak-ng failed: %r", exc)
        return None


@bp.post("/channels/<channel_id>/say")
@login_required(STAFF)
def say(channel_id: str) -> Any:
    """The resident speaks on the line (e.g. «четыре» when the robot asks for a rating)."""
    words = " ".join((request.form.get("words") or "").split())
    if not words or len(words) > MAX_WORDS:
        return _failed(ValidationFailed(f"что сказать: от 1 до {MAX_WORDS} символов", field="words", value=words))
    body: dict[str, Any] = {"channel": channel_id, "text": words}
    try:
        my_channel(channel_id)
        audio = _spoken(words)
        if audio is not None:
            body["audio"] = audio
        result = control("say", body)
    except DomainError as exc:
        return _failed(exc)
    if result.get("recordings"):
        return _done(f"Сказано: «{words}»", result)
    return _done(f"Сказано «{words}», но сейчас никто не слушает: робот записывает ответ после сигнала", result)
