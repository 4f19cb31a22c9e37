"""`openads telephony ...`: an organization's telephony, as on the administration page
«Телефония» (issue 12, part A item 2; decision 0029), through the same services
(models/services/telephony.py, telephony_status.py): the call settings, the dispatchers' phones,
the status reported by `openads ari`, a test call, and the synthesised announcements. Every change
is in the audit log, by «командная строка»; `openads ari` applies it from the next call."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from openads.commands import CommandError, UsageError, positive_int
from openads.commands.org import _org, _session, field_errors

DEFAULT_WORDS = ("default", "по-умолчанию", "none", "нет", "-", "")
SET_OPTIONS = {"wait_limit_seconds": "--wait", "ring_strategy": "--strategy", "ring_retry_seconds": "--retry",
               "voicemail_enabled": "--voicemail", "auto_callback": "--auto-callback",
               "auto_callback_delay_seconds": "--auto-callback-delay", "moh_class": "--moh-class",
               "greeting_text": "--greeting", "voicemail_offer_text": "--voicemail-offer"}
PHONE_OPTIONS = {"endpoint": "--endpoint", "user_id": "--user", "rings": "--ring", "is_current": "--current",
                 "position": "--position"}
PROMPTS = ("greeting", "voicemail_offer", "all_busy", "test_call")


def register(sub: Any) -> None:
    p = sub.add_parser("telephony", help="телефония организации: настройки вызова, телефоны диспетчеров, состояние")
    tsub = p.add_subparsers(title="действия", metavar="ДЕЙСТВИЕ")

    show = tsub.add_parser("show", help="настройки телефонии и телефоны диспетчеров")
    show.add_argument("--org", required=True, type=positive_int, metavar="ID")
    show.set_defaults(handler=run_show)

    st = tsub.add_parser("set", help="изменить настройки вызова (только указанные; каждое — в журнале изменений)")
    st.add_argument("--org", required=True, type=positive_int, metavar="ID")
    st.add_argument("--wait", metavar="СЕК", help="сколько житель ждёт ответа до голосового сообщения (1–300)")
    st.add_argument("--strategy", choices=("ringall", "round_robin", "in_order"),
                    help="ringall — все телефоны сразу, round_robin — по кругу, in_order — по порядку с первого")
    st.add_argument("--retry", metavar="СЕК", help="пауза перед повторным вызовом, если все заняты (default — "
                                                   "ARI_RING_RETRY_SECONDS)")
    vm = st.add_mutually_exclusive_group()
    vm.add_argument("--voicemail", dest="voicemail", action="store_true", default=None,
                    help="после ожидания предлагать оставить голосовое сообщение")
    vm.add_argument("--no-voicemail", dest="voicemail", action="store_false",
                    help="после ожидания сказать «перезвоним» и завершить звонок")
    ac = st.add_mutually_exclusive_group()
    ac.add_argument("--auto-callback", dest="auto_callback", action="store_true", default=None,
                    help="перезванивать жителю автоматически, когда диспетчер свободен")
    ac.add_argument("--no-auto-callback", dest="auto_callback", action="store_false", help="не перезванивать сам")
    st.add_argument("--auto-callback-delay", metavar="СЕК", help="через сколько секунд после пропущенного звонка (0–300)")
    st.add_argument("--moh-class", metavar="КЛАСС", help="класс музыки ожидания (default — ARI_MOH_CLASS)")
    st.add_argument("--greeting", metavar="ТЕКСТ", help="текст приветствия (default — записанная подсказка)")
    st.add_argument("--voicemail-offer", metavar="ТЕКСТ",
                    help="текст предложения оставить сообщение (default — записанная подсказка)")
    st.set_defaults(handler=run_set)

    phone = tsub.add_parser("phone", help="телефоны диспетчеров: add, set, remove")
    psub = phone.add_subparsers(title="действия", metavar="ДЕЙСТВИЕ")
    add = psub.add_parser("add", help="добавить телефон (звонит при входящих, в конце очереди)")
    add.add_argument("--org", required=True, type=positive_int, metavar="ID")
    add.add_argument("--endpoint", required=True, help="эндпоинт Asterisk, например PJSIP/201")
    add.add_argument("--user", metavar="ЛОГИН", help="чей телефон (без него — ничей)")
    add.add_argument("--no-ring", action="store_true", help="не звонит при входящих")
    add.add_argument("--current", action="store_true", help="текущий телефон пользователя (его другие молчат)")
    add.set_defaults(handler=run_phone_add)
    pset = psub.add_parser("set", help="изменить телефон (только указанное)")
    pset.add_argument("phone", type=positive_int, metavar="ID")
    pset.add_argument("--endpoint")
    pset.add_argument("--user", metavar="ЛОГИН", help="чей телефон; none — ничей")
    ring = pset.add_mutually_exclusive_group()
    ring.add_argument("--ring", dest="ring", action="store_true", default=None, help="звонит при входящих")
    ring.add_argument("--no-ring", dest="ring", action="store_false", help="не звонит")
    cur = pset.add_mutually_exclusive_group()
    cur.add_argument("--current", dest="current", action="store_true", default=None, help="текущий телефон пользователя")
    cur.add_argument("--not-current", dest="current", action="store_false", help="не текущий")
    pset.add_argument("--position", type=positive_int, metavar="N", help="место в очереди вызова (1 — первым)")
    pset.set_defaults(handler=run_phone_set)
    rm = psub.add_parser("remove", help="удалить телефон")
    rm.add_argument("phone", type=positive_int, metavar="ID")
    rm.set_defaults(handler=run_phone_remove)
    phone.set_defaults(handler=lambda args: phone.error("укажите действие: add, set, remove"))

    status = tsub.add_parser("status", help="состояние: openads ari, ARI, AMI, транк, телефоны, последние звонки")
    status.add_argument("--org", required=True, type=positive_int, metavar="ID")
    status.set_defaults(handler=run_status)

    test = tsub.add_parser("test-call", help="тестовый звонок на телефон диспетчера (звонит openads ari)")
    test.add_argument("--org", required=True, type=positive_int, metavar="ID")
    test.add_argument("--phone", required=True, type=positive_int, metavar="ID", help="id телефона (telephony show)")
    test.add_argument("--wait", type=float, default=0.0, metavar="СЕК", help="ждать итога до N секунд")
    test.set_defaults(handler=run_test_call)

    listen = tsub.add_parser("listen", help="синтезировать подсказку в WAV-файл, как её услышит житель")
    listen.add_argument("--org", required=True, type=positive_int, metavar="ID")
    listen.add_argument("which", choices=PROMPTS)
    listen.add_argument("--text", help="свой текст (без него — сохранённый, а если его нет — записанной подсказки)")
    listen.add_argument("--out", required=True, type=Path, help="файл WAV")
    listen.set_defaults(handler=run_listen)
    p.set_defaults(handler=lambda args: p.error("укажите действие: show, set, phone, status, test-call, listen"))


def _default(raw: str) -> str:
    return "" if raw.strip().lower() in DEFAULT_WORDS else raw


def _user_id(s: Any, login: str | None) -> int | None:
    from sqlalchemy import select

    from models.organization import User

    if login is None or login.strip().lower() in DEFAULT_WORDS:
        return None
    user_id = s.scalar(select(User.id).where(User.login == login.strip()))
    if user_id is None:
        raise UsageError(f"--user: нет пользователя с логином {login!r}")
    return int(user_id)


def _print(s: Any, org: Any) -> None:
    from models.call import RING_STRATEGY_TITLES_RU
    from models.services import telephony as svc

    row = svc.telephony_settings(s, org.id)
    print(f"Телефония организации id={org.id} ({org.short_name})")
    print(f"  ожидание ответа: {row.wait_limit_seconds} с, затем "
          + ("голосовое сообщение" if row.voicemail_enabled else "«перезвоним» и конец звонка"))
    print(f"  стратегия: {row.ring_strategy.value} — {RING_STRATEGY_TITLES_RU[row.ring_strategy]}")
    print(f"  повторный вызов через: {row.ring_retry_seconds or 'как на сервере (ARI_RING_RETRY_SECONDS)'}"
          + (" с" if row.ring_retry_seconds else ""))
    print(f"  музыка ожидания: {row.moh_class or 'как на сервере (ARI_MOH_CLASS)'}")
    print("  автоперезвон: " + (f"да, через {row.auto_callback_delay_seconds} с" if row.auto_callback else "нет"))
    print(f"  приветствие: {row.greeting_text or 'записанная подсказка'}")
    print(f"  предложение оставить сообщение: {row.voicemail_offer_text or 'записанная подсказка'}")
    print(f"  звонят по порядку: {', '.join(row.dispatcher_endpoints or []) or 'никто — добавьте телефоны'}")
    phones = svc.phones_of(s, org_id=org.id)
    rung = set(svc.ring_list(phones))
    print("  телефоны (id, телефон, пользователь, при входящих):")
    for p in phones:
        who = f"{p.user.full_name} ({p.user.login})" if p.user else "ничей"
        flags = ("звонит" if p.endpoint in rung else "молчит (текущий — другой)" if p.rings else "не звонит") + (
            ", текущий" if p.is_current else "")
        print(f"    {p.id}\t{p.endpoint}\t{who}\t{flags}")


def run_show(args: argparse.Namespace) -> int:
    with _session(False) as s:
        _print(s, _org(s, args.org))
    return 0


def run_set(args: argparse.Namespace) -> int:
    from models.errors import ValidationFailed
    from models.services import telephony as svc
    from models.services.audit import Actor

    changes: dict[str, Any] = {}
    for name, value in (("wait_limit_seconds", args.wait), ("ring_strategy", args.strategy),
                        ("auto_callback_delay_seconds", args.auto_callback_delay)):
        if value is not None:
            changes[name] = value
    for name, value in (("ring_retry_seconds", args.retry), ("moh_class", args.moh_class),
                        ("greeting_text", args.greeting), ("voicemail_offer_text", args.voicemail_offer)):
        if value is not None:
            changes[name] = _default(value)
    if args.voicemail is not None:
        changes["voicemail_enabled"] = args.voicemail
    if args.auto_callback is not None:
        changes["auto_callback"] = args.auto_callback
    if not changes:
        raise UsageError("укажите, что изменить (см. openads telephony set --help)")
    with _session(True) as s:
        org = _org(s, args.org)
        try:
            svc.update_telephony(s, org=org, changes=changes, by=Actor.command_line())
        except ValidationFailed as exc:
            raise field_errors(exc, SET_OPTIONS) from None
        print("Настройки телефонии сохранены: действуют со следующего звонка.")
        _print(s, org)
    return 0


def _phone(s: Any, phone_id: int) -> Any:
    from models.call import DispatcherPhone

    phone = s.get(DispatcherPhone, phone_id)
    if phone is None:
        raise UsageError(f"нет телефона с id {phone_id}")
    return phone


def run_phone_add(args: argparse.Namespace) -> int:
    from models.errors import ValidationFailed
    from models.services import telephony as svc
    from models.services.audit import Actor

    with _session(True) as s:
        org = _org(s, args.org)
        changes = {"endpoint": args.endpoint, "user_id": _user_id(s, args.user), "rings": not args.no_ring,
                   "is_current": args.current}
        try:
            phone = svc.add_phone(s, org=org, changes=changes, by=Actor.command_line())
        except ValidationFailed as exc:
            raise field_errors(exc, PHONE_OPTIONS) from None
        print(f"Телефон {phone.endpoint} добавлен (id={phone.id}).")
        _print(s, org)
    return 0


def run_phone_set(args: argparse.Namespace) -> int:
    from models.errors import ValidationFailed
    from models.services import telephony as svc
    from models.services.audit import Actor

    with _session(True) as s:
        phone = _phone(s, args.phone)
        org = _org(s, phone.organization_id)
        changes: dict[str, Any] = {}
        if args.endpoint is not None:
            changes["endpoint"] = args.endpoint
        if args.user is not None:
            changes["user_id"] = _user_id(s, args.user)
        if args.ring is not None:
            changes["rings"] = args.ring
        if args.current is not None:
            changes["is_current"] = args.current
        if not changes and args.position is None:
            raise UsageError("укажите, что изменить (см. openads telephony phone set --help)")
        by = Actor.command_line()
        try:
            if changes:
                svc.update_phone(s, org=org, phone_id=phone.id, changes=changes, by=by)
            if args.position is not None:
                svc.move_phone(s, org=org, phone_id=phone.id, position=args.position, by=by)
        except ValidationFailed as exc:
            raise field_errors(exc, PHONE_OPTIONS) from None
        print(f"Телефон {phone.endpoint} сохранён.")
        _print(s, org)
    return 0


def run_phone_remove(args: argparse.Namespace) -> int:
    from models.services import telephony as svc
    from models.services.audit import Actor

    with _session(True) as s:
        phone = _phone(s, args.phone)
        org = _org(s, phone.organization_id)
        endpoint = phone.endpoint
        svc.remove_phone(s, org=org, phone_id=phone.id, by=Actor.command_line())
        print(f"Телефон {endpoint} удалён.")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from models.services import telephony_status as status_svc
    from models.telephony import TEST_CALL_TITLES_RU

    with _session(False) as s:
        org = _org(s, args.org)
        st = status_svc.telephony_status(s, org_id=org.id)
        a = st.ari
        if a is None:
            print("openads ari: ни разу не сообщал о себе (запущен ли он? ARI_STATUS_SECONDS не 0?)")
        else:
            print(f"openads ari: {'работает' if st.running else 'НЕ ОТВЕЧАЕТ'}; последний сигнал "
                  f"{a.updated_at:%Y-%m-%d %H:%M:%S} UTC ({a.host}, процесс {a.pid})")
            since = f" с {a.ari_since:%Y-%m-%d %H:%M:%S} UTC" if a.ari_since else ""
            print(f"ARI: {'подключено' if a.ari_connected else 'нет связи'}{since}"
                  + (f" ({a.ari_error})" if a.ari_error and not a.ari_connected else ""))
            print("AMI: " + ("не настроено" if not a.ami_configured else "подключено" if a.ami_connected else "нет связи"))
            t = a.trunk or {}
            print(f"транк {t.get('endpoint') or ''}: эндпоинт {t.get('state') or 'неизвестно'}, регистрация "
                  f"{t.get('registration') or 'неизвестна'}")
        for p in st.phones:
            print(f"телефон {p.phone.endpoint}: {status_svc.PHONE_STATE_TITLES_RU[p.state]}"
                  + ("" if p.rung else " (при входящих не звонит)"))
        for path, title in status_svc.PATHS.items():
            call = st.last_calls[path]
            print(f"последний звонок — {title}: " + (
                f"{call.started_at:%Y-%m-%d %H:%M} UTC, {call.outcome.value if call.outcome else 'идёт'}"
                if call else "не было"))
        for t in st.test_calls[:3]:
            print(f"тестовый звонок {t.id} на {t.endpoint}: {TEST_CALL_TITLES_RU[t.status]} {t.detail}".rstrip())
    return 0


def run_test_call(args: argparse.Namespace) -> int:
    from models.errors import DomainError
    from models.services import telephony_status as status_svc
    from models.telephony import TEST_CALL_OPEN, TEST_CALL_TITLES_RU, TestCall, TestCallStatus

    with _session(True) as s:
        org = _org(s, args.org)
        try:
            call = status_svc.request_test_call(s, org=org, phone_id=args.phone, by=None)
        except DomainError as exc:
            raise UsageError(exc.message) from None
        call_id, endpoint = call.id, call.endpoint
    print(f"Тестовый звонок {call_id} на {endpoint} заказан: его наберёт openads ari.")
    deadline = time.monotonic() + max(0.0, args.wait)
    while args.wait > 0:
        with _session(False) as s:
            row = s.get(TestCall, call_id)
            status, detail = row.status, row.detail
        if status not in TEST_CALL_OPEN or time.monotonic() >= deadline:
            print(f"Итог: {TEST_CALL_TITLES_RU[status]}{' — ' + detail if detail else ''}")
            if status in TEST_CALL_OPEN:
                raise CommandError("итога нет: openads ari не набрал номер или трубку ещё не сняли")
            return 0 if status == TestCallStatus.ANSWERED else 1
        time.sleep(0.5)
    return 0


def run_listen(args: argparse.Namespace) -> int:
    from models.ports import ProviderError
    from models.rules import telephony as rules
    from models.services import telephony as svc
    from openads.commands import settings
    from openads.providers.registry import make_prompt_cache

    with _session(False) as s:
        org = _org(s, args.org)
        text = args.text
        if not (text or "").strip() and args.which in rules.ANNOUNCEMENTS:
            text = getattr(svc.telephony_settings(s, org.id), f"{args.which}_text")
    try:
        own = rules.announcement(text) if args.which in rules.ANNOUNCEMENTS else None
    except ValueError as exc:
        raise UsageError(f"--text: {exc}") from None
    spoken = own or rules.DEFAULT_TEXTS[args.which]
    try:
        audio = make_prompt_cache(settings().speech).get(spoken).read_bytes()
    except ProviderError as exc:
        raise CommandError(f"синтез речи недоступен ({exc.provider}: {exc.code}): {exc.message}") from None
    try:
        args.out.write_bytes(audio)
    except OSError as exc:
        raise CommandError(f"не удалось записать {args.out}: {exc.strerror}") from None
    print(f"{args.out}: «{spoken}» ({len(audio)} байт)")
    return 0
