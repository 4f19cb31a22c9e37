"""«Администрирование» → «Телефония»: an administrator's telephony settings, dispatchers' phones,
the announcement texts with «Прослушать», and the status page with «Тестовый звонок» (issue 12,
part A item 2; decision 0029).

Administrators only (others: 403); another organization's settings, phones or status are 404.
A refused form comes back as typed with a message per field (HTTP 400). Every change goes through
models/services/telephony.py (audit log, `via` = panel); `openads ari` applies it from the next call.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from models.call import CALL_OUTCOME_TITLES_RU, RING_STRATEGY_TITLES_RU, DispatcherPhone
from models.errors import DomainError, ValidationFailed
from models.organization import Organization
from models.ports import ProviderError
from models.rules import telephony as rules
from models.services import telephony as svc
from models.services import telephony_status as status_svc
from models.telephony import TEST_CALL_OPEN, TEST_CALL_TITLES_RU
from web.auth import login_required, org_ids
from web.dbsession import session as db_session
from web.panel import bp
from web.panel.admin import ADMINS, actor
from web.panel.common import field_errors, org_by_id, save_form, settings, user

SETTINGS_FORM = ("wait_limit_seconds", "ring_strategy", "ring_retry_seconds", "voicemail_enabled", "auto_callback",
                 "auto_callback_delay_seconds", "moh_class", "greeting_text", "voicemail_offer_text")
CHECKBOXES = ("voicemail_enabled", "auto_callback")
PROMPT_TITLES_RU = {"greeting": "приветствие", "voicemail_offer": "предложение оставить сообщение",
                    "all_busy": "«перезвоним» (без голосовых сообщений)", "test_call": "тестовый звонок"}


# --- the prompt synthesiser ------------------------------------------------------------------------------


def prompt_cache() -> Any:
    """The configured TTS through the prompt cache (SPEECH_PROVIDER; espeak-ng in the demo), one per app."""
    cache = current_app.extensions.get("openads_prompt_cache")
    if cache is None:
        from openads.providers.registry import make_prompt_cache

        cache = make_prompt_cache(settings().speech)
        current_app.extensions["openads_prompt_cache"] = cache
    return cache


def prompt_text(which: str, text: str | None) -> str:
    """The text callers hear: the organization's own, else the recorded prompt's. ValidationFailed
    for an unknown prompt or a text too long."""
    if which not in rules.DEFAULT_TEXTS:
        raise ValidationFailed("неизвестная подсказка: " + ", ".join(rules.DEFAULT_TEXTS), field="which")
    try:
        own = rules.announcement(text) if which in rules.ANNOUNCEMENTS else None
    except ValueError as exc:
        raise ValidationFailed(str(exc), field=f"{which}_text") from None
    return own or rules.DEFAULT_TEXTS[which]


class SpeechUnavailable(DomainError):
    error_id = "speech-unavailable"
    http_status = 503


def synthesize(text: str) -> bytes:
    """WAV (8 kHz mono) of `text` by the configured provider; SpeechUnavailable when it fails."""
    try:
        return bytes(prompt_cache().get(text).read_bytes())
    except ProviderError as exc:
        raise SpeechUnavailable(f"синтез речи недоступен ({exc.provider}: {exc.code}): {exc.message}"[:300],
                                provider=exc.provider, code=exc.code) from None
    except OSError as exc:
        raise SpeechUnavailable(f"синтез речи недоступен: {exc.strerror or exc}") from None


def wav_response(audio: bytes, name: str) -> Response:
    resp = Response(audio, mimetype="audio/wav")
    resp.headers["Content-Disposition"] = f'inline; filename="{name}.wav"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


# --- the settings page --------------------------------------------------------------------------------------


def settings_values(row: Any) -> dict[str, str]:
    return {
        "wait_limit_seconds": str(row.wait_limit_seconds), "ring_strategy": row.ring_strategy.value,
        "ring_retry_seconds": str(row.ring_retry_seconds or ""), "voicemail_enabled": "1" if row.voicemail_enabled else "",
        "auto_callback": "1" if row.auto_callback else "",
        "auto_callback_delay_seconds": str(row.auto_callback_delay_seconds or 0), "moh_class": row.moh_class or "",
        "greeting_text": row.greeting_text or "", "voicemail_offer_text": row.voicemail_offer_text or "",
    }


def _settings_form(form: MultiDict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {name: form.get(name, "") for name in SETTINGS_FORM}
    for name in CHECKBOXES:
        values[name] = bool(form.get(name))
    return values


def _phone_rows(org: Organization) -> list[dict[str, Any]]:
    phones = svc.phones_of(db_session(), org_id=org.id)
    rung = set(svc.ring_list(phones))
    current = {p.user_id: p for p in phones if p.is_current and p.user_id is not None}
    rows, place = [], 0
    for p in phones:
        if p.rings:
            place += 1
        muted = p.rings and p.endpoint not in rung
        rows.append({"phone": p, "place": place if p.rings else None, "user": p.user, "rung": p.endpoint in rung,
                     "muted_by": current[p.user_id].endpoint if muted and p.user_id in current else None})
    return rows


def _page(org: Organization, *, form: dict[str, str] | None = None, errors: dict[str, str] | None = None,
          phone_form: dict[str, str] | None = None, phone_errors: dict[str, str] | None = None,
          status: int = 200) -> Any:
    s = db_session()
    row = svc.telephony_settings(s, org.id)
    values = settings_values(row)
    if form is not None:
        values = {**{k: "" for k in values}, **form}
    calls = settings().ari_calls
    return render_template(
        "admin/telephony.html", org=org, v=values, errors=errors or {}, strategies=rules.OFFERED_STRATEGIES,
        strategy_titles=RING_STRATEGY_TITLES_RU, phones=_phone_rows(org), users=svc.phone_users(s, org_id=org.id),
        pv=phone_form or {"endpoint": "", "user_id": "", "rings": "1", "is_current": ""},
        phone_errors=phone_errors or {}, default_retry=int(calls.ring_retry_seconds), default_moh=calls.moh_class,
        default_texts=rules.DEFAULT_TEXTS, max_text=rules.MAX_ANNOUNCEMENT,
        max_retry=rules.MAX_RING_RETRY_SECONDS, max_delay=rules.MAX_AUTO_CALLBACK_DELAY_SECONDS,
    ), status


@bp.get("/admin/organizations/<int:org_id>/telephony")
@login_required(ADMINS)
def admin_telephony(org_id: int) -> Any:
    return _page(org_by_id(org_id))


@bp.post("/admin/organizations/<int:org_id>/telephony")
@login_required(ADMINS)
def admin_telephony_save(org_id: int) -> Any:
    org = org_by_id(org_id)
    return save_form(
        lambda: svc.update_telephony(db_session(), org=org, changes=_settings_form(request.form), by=actor()),
        lambda form, errors: _page(org, form=form, errors=errors, status=400),
        lambda _: ("Настройки телефонии сохранены: действуют со следующего звонка",
                   url_for("panel.admin_telephony", org_id=org.id)))


@bp.post("/admin/organizations/<int:org_id>/telephony/listen")
@login_required(ADMINS)
def admin_telephony_listen(org_id: int) -> Any:
    """The synthesised prompt as callers will hear it (the text as typed in the form, not yet saved;
    empty: the recorded prompt's text), as audio/wav."""
    org_by_id(org_id)
    which = request.form.get("listen") or request.form.get("which") or ""
    text = prompt_text(which, request.form.get(f"{which}_text"))
    return wav_response(synthesize(text), which)


# --- phones -------------------------------------------------------------------------------------------------------


def _phone_form(form: MultiDict[str, str]) -> dict[str, Any]:
    return {"endpoint": form.get("endpoint", ""), "user_id": form.get("user_id") or None,
            "rings": bool(form.get("rings")), "is_current": bool(form.get("is_current"))}


@bp.post("/admin/organizations/<int:org_id>/telephony/phones")
@login_required(ADMINS)
def admin_phone_add(org_id: int) -> Any:
    org = org_by_id(org_id)
    return save_form(
        lambda: svc.add_phone(db_session(), org=org, changes=_phone_form(request.form), by=actor()),
        lambda form, errors: _page(org, phone_form=form, phone_errors=errors, status=400),
        lambda phone: (f"Телефон {phone.endpoint} добавлен", url_for("panel.admin_telephony", org_id=org.id)))


def _my_phone(phone_id: int) -> tuple[Organization, DispatcherPhone]:
    phone = svc.get_phone(db_session(), org_ids=org_ids(), phone_id=phone_id)
    return org_by_id(phone.organization_id), phone


def _phone_page(org: Organization, phone: DispatcherPhone, *, form: dict[str, str] | None = None,
                errors: dict[str, str] | None = None, status: int = 200) -> Any:
    values = {"endpoint": phone.endpoint, "user_id": str(phone.user_id or ""), "rings": "1" if phone.rings else "",
              "is_current": "1" if phone.is_current else ""}
    if form is not None:
        values = {**{k: "" for k in values}, **form}
    users = svc.phone_users(db_session(), org_id=org.id)
    if phone.user is not None and phone.user not in users:  # deactivated since: still shown, not dropped on save
        users.append(phone.user)
    return render_template("admin/phone.html", org=org, phone=phone, v=values, errors=errors or {},
                           users=users), status


@bp.get("/admin/phones/<int:phone_id>")
@login_required(ADMINS)
def admin_phone(phone_id: int) -> Any:
    org, phone = _my_phone(phone_id)
    return _phone_page(org, phone)


@bp.post("/admin/phones/<int:phone_id>")
@login_required(ADMINS)
def admin_phone_save(phone_id: int) -> Any:
    org, phone = _my_phone(phone_id)
    return save_form(
        lambda: svc.update_phone(db_session(), org=org, phone_id=phone.id, changes=_phone_form(request.form),
                                 by=actor()),
        lambda form, errors: _phone_page(org, phone, form=form, errors=errors, status=400),
        lambda _: (f"Телефон {phone.endpoint} сохранён", url_for("panel.admin_telephony", org_id=org.id)))


@bp.post("/admin/phones/<int:phone_id>/move")
@login_required(ADMINS)
def admin_phone_move(phone_id: int) -> Any:
    org, phone = _my_phone(phone_id)
    try:
        svc.move_phone(db_session(), org=org, phone_id=phone.id, position=request.form.get("position", ""),
                       by=actor())
    except ValidationFailed as exc:
        db_session().rollback()
        flash(f"Порядок не изменён: {field_errors(exc).get('position', exc.message)}", "error")
    return redirect(url_for("panel.admin_telephony", org_id=org.id))


@bp.post("/admin/phones/<int:phone_id>/delete")
@login_required(ADMINS)
def admin_phone_delete(phone_id: int) -> Any:
    org, phone = _my_phone(phone_id)
    endpoint = phone.endpoint
    svc.remove_phone(db_session(), org=org, phone_id=phone.id, by=actor())
    flash(f"Телефон {endpoint} удалён: он больше не звонит при входящих звонках", "ok")
    return redirect(url_for("panel.admin_telephony", org_id=org.id))


# --- status ---------------------------------------------------------------------------------------------------------


@bp.get("/admin/organizations/<int:org_id>/telephony/status")
@login_required(ADMINS)
def admin_telephony_status(org_id: int) -> Any:
    org = org_by_id(org_id)
    status = status_svc.telephony_status(db_session(), org_id=org.id)
    waiting = any(t.status in TEST_CALL_OPEN for t in status.test_calls)
    return render_template(
        "admin/telephony_status.html", org=org, st=status, paths=status_svc.PATHS,
        state_titles=status_svc.PHONE_STATE_TITLES_RU, test_titles=TEST_CALL_TITLES_RU, refresh=waiting,
        outcome_titles=CALL_OUTCOME_TITLES_RU,
    )


@bp.post("/admin/organizations/<int:org_id>/telephony/test-call")
@login_required(ADMINS)
def admin_test_call(org_id: int) -> Any:
    org = org_by_id(org_id)
    raw = request.form.get("phone_id", "")
    try:
        phone_id = int(raw)
    except ValueError:
        flash("Выберите телефон для тестового звонка", "error")
        return redirect(url_for("panel.admin_telephony_status", org_id=org.id))
    try:
        call = status_svc.request_test_call(db_session(), org=org, phone_id=phone_id, by=user())
    except status_svc.TestCallRefused as exc:
        db_session().rollback()
        flash(exc.message, "error")
        return redirect(url_for("panel.admin_telephony_status", org_id=org.id))
    flash(f"Тестовый звонок на {call.endpoint} заказан: телефон зазвонит через несколько секунд, "
          "ответьте — прозвучит проверочная фраза", "ok")
    return redirect(url_for("panel.admin_telephony_status", org_id=org.id))
