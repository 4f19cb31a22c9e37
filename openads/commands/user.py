"""`openads user ...`: users, their passwords, sessions, lock-outs and API tokens.

add (a user with a role in one or more organizations, optionally a token), list, set (name,
contacts, role, organizations), password, reset-password (a temporary one, changed at the next
login), reset-2fa, deactivate, activate, sign-out (everywhere), sessions, unlock, locks, token
issue|list|revoke. Every change calls models/services/users.py, as the administration pages and
/api/v1/admin/users do, and is in the audit log as made from the command line (decision 0028).
The command line administers every organization.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from openads.commands import UsageError, database, positive_int, settings
from openads.commands.org import _email

ROLES = ("admin", "manager", "dispatcher", "executor", "inspector")
VALID_UNTIL_HELP = ("последний день работы учётной записи, ГГГГ-ММ-ДД, по часовому поясу первой организации "
                    "(например, проверяющего на время проверки); после него вход и токены не действуют")
SCOPES = ("read", "write", "telephony", "settings")
LOGIN_RE = re.compile(r"^[A-Za-z0-9._@-]{2,80}$")


def _scope_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scope", action="append", choices=SCOPES, metavar="ОБЛАСТЬ",
                   help="область действия токена: read, write, telephony, settings (настройки, только "
                        "администраторам; можно несколько раз; по умолчанию read и write)")
    term = p.add_mutually_exclusive_group()
    term.add_argument("--days", type=positive_int, metavar="N",
                      help="срок действия токена, дней (по умолчанию OPENADS_API_TOKEN_DAYS, 365)")
    term.add_argument("--no-expiry", action="store_true", help="бессрочный токен")


def register(sub: Any) -> None:
    p = sub.add_parser("user", help="пользователи, пароли, сессии, блокировки и API-токены")
    usub = p.add_subparsers(title="действия", metavar="ДЕЙСТВИЕ")
    add = usub.add_parser(
        "add",
        help="добавить пользователя",
        description="Пароль: --password, иначе переменная OPENADS_PASSWORD, иначе запрос с клавиатуры.",
    )
    add.add_argument("--login", required=True, help="логин (латиница, цифры, . _ - @)")
    add.add_argument("--name", required=True, help="ФИО")
    add.add_argument("--role", required=True, choices=ROLES, help="роль")
    add.add_argument("--org", required=True, action="append", type=positive_int, metavar="ID",
                     help="id организации (можно несколько раз: диспетчер центра)")
    add.add_argument("--email", help="адрес эл. почты (исполнителю приходят назначенные заявки)")
    add.add_argument("--phone", help="телефон")
    add.add_argument("--password", help="пароль (лучше OPENADS_PASSWORD или запрос)")
    add.add_argument("--valid-until", metavar="ДАТА", help=VALID_UNTIL_HELP)
    add.add_argument("--token", action="store_true", help="выпустить API-токен и напечатать его")
    _scope_args(add)
    add.set_defaults(handler=run_add)

    def login_action(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> Any:
        action = usub.add_parser(name, help=help_text, description=help_text)
        action.add_argument("login", metavar="ЛОГИН")
        action.set_defaults(handler=handler)
        return action

    pw = login_action("password", "задать пароль (открытые сессии пользователя завершаются)", run_password)
    pw.description = ("Задать пароль. Пароль: --password, иначе переменная OPENADS_PASSWORD, иначе запрос "
                      "с клавиатуры. Открытые сессии пользователя завершаются.")
    pw.add_argument("--password", help="пароль (лучше OPENADS_PASSWORD или запрос)")
    login_action("deactivate", "отключить пользователя: вход закрыт, сессии завершаются, токены не действуют "
                               "(пользователь не удаляется: журнал хранит его имя)", run_deactivate)
    login_action("activate", "снова включить отключённого пользователя", run_activate)
    login_action("sign-out", "завершить все сессии пользователя («выйти на всех устройствах»)", run_sign_out)
    login_action("sessions", "открытые сессии пользователя", run_sessions)

    alerts = login_action("alerts", "уведомления исполнителя: каналы и тихие часы (без параметров — показать)",
                          run_alerts)
    alerts.add_argument("--channels", metavar="КАНАЛЫ",
                        help="через запятую: push, sms, voice, email (none — ни одного)")
    alerts.add_argument("--quiet", metavar="ЧЧ:ММ-ЧЧ:ММ",
                        help="тихие часы по местному времени, например 22:00-07:00 (none — без них); "
                             "на аварийные заявки не действуют")

    unlock = usub.add_parser("unlock", help="снять блокировку входа после неудачных попыток",
                             description="Снять блокировку входа с логина и/или адреса и забыть их неудачные попытки.")
    unlock.add_argument("login", metavar="ЛОГИН", nargs="?", help="логин (как его вводили)")
    unlock.add_argument("--ip", help="IP-адрес клиента")
    unlock.set_defaults(handler=run_unlock)
    locks = usub.add_parser("locks", help="действующие блокировки входа")
    locks.set_defaults(handler=run_locks)

    ulist = usub.add_parser("list", help="пользователи: роль, организации, состояние, последний вход")
    ulist.add_argument("--org", type=positive_int, metavar="ID", help="только эта организация")
    ulist.add_argument("--inactive", action="store_true", help="и отключённые")
    ulist.set_defaults(handler=run_list)
    uset = usub.add_parser("set", help="изменить ФИО, адрес эл. почты, телефон, роль, организации",
                           description="Меняются только указанные параметры. --org заменяет список организаций.")
    uset.add_argument("login", metavar="ЛОГИН")
    uset.add_argument("--name", help="ФИО")
    uset.add_argument("--email", help="адрес эл. почты (пустая строка — убрать)")
    uset.add_argument("--phone", help="телефон (пустая строка — убрать)")
    uset.add_argument("--role", choices=ROLES, help="роль")
    uset.add_argument("--valid-until", metavar="ДАТА", help=VALID_UNTIL_HELP + "; none — бессрочно")
    uset.add_argument("--org", action="append", type=positive_int, metavar="ID",
                      help="id организации (можно несколько раз); заменяет прежний список")
    uset.set_defaults(handler=run_set)
    login_action("reset-password", "выдать временный пароль (печатается один раз; при входе пользователь задаст "
                                   "свой; сессии завершаются, блокировка снимается)", run_reset_password)
    login_action("reset-2fa", "сбросить двухфакторный вход (потерян телефон): при входе пользователь подключит "
                              "приложение заново", run_reset_two_factor)

    token = usub.add_parser("token", help="API-токены: issue, list, revoke")
    tsub = token.add_subparsers(title="действия", metavar="ДЕЙСТВИЕ")
    issue = tsub.add_parser("issue", help="выпустить токен (печатается один раз)")
    issue.add_argument("login", metavar="ЛОГИН")
    issue.add_argument("--name", default="", help="назначение токена, например «интеграция с CRM»")
    _scope_args(issue)
    issue.set_defaults(handler=run_token_issue)
    tlist = tsub.add_parser("list", help="токены пользователя")
    tlist.add_argument("login", metavar="ЛОГИН")
    tlist.set_defaults(handler=run_token_list)
    revoke = tsub.add_parser("revoke", help="отозвать токен (по id) или все токены пользователя")
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--id", type=positive_int, help="id токена (из «openads user token list»)")
    target.add_argument("--all-of", metavar="ЛОГИН", help="все токены этого пользователя")
    revoke.set_defaults(handler=run_token_revoke)
    token.set_defaults(handler=lambda args: token.error("укажите действие: issue, list, revoke"))

    p.set_defaults(handler=lambda args: p.error(
        "укажите действие: add, list, set, password, reset-password, reset-2fa, deactivate, activate, sign-out, "
        "sessions, unlock, locks, token"))


# --- helpers -------------------------------------------------------------------------------------------


@contextmanager
def _write() -> Iterator[Any]:
    db = database(settings().database_url)
    try:
        with db.write() as s:
            yield s
    finally:
        db.dispose()


def _now() -> datetime:
    from models.base import utcnow

    return utcnow()


def _by() -> Any:
    from models.services.audit import Actor

    return Actor.command_line()


@contextmanager
def _checked() -> Iterator[None]:
    """A service's refusal as the command line's (one line, exit 2)."""
    from models.errors import ValidationFailed

    try:
        yield
    except ValidationFailed as exc:
        raise UsageError(exc.message) from None


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def _password(args: argparse.Namespace, login: str) -> str:
    from models.errors import ValidationFailed
    from models.services.access import check_password_policy

    password = args.password if args.password is not None else os.environ.get("OPENADS_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError("пароль не задан: укажите --password или переменную OPENADS_PASSWORD")
        password = getpass.getpass("Пароль: ")
        if password != getpass.getpass("Пароль ещё раз: "):
            raise UsageError("пароли не совпадают")
    try:
        check_password_policy(password, login=login, min_length=settings().auth.password_min_length)
    except ValidationFailed as exc:
        raise UsageError(f"пароль не подходит: {exc.message}") from None
    return password


def _valid_until(raw: str, zone: str) -> datetime | None:
    """--valid-until: the last day (inclusive) in `zone`; "none": no limit."""
    from datetime import date

    from models.rules.access import valid_through_day

    if raw.strip().lower() in ("none", "нет", ""):
        return None
    try:
        return valid_through_day(date.fromisoformat(raw.strip()), zone)
    except ValueError:
        raise UsageError(f"--valid-until: нужна дата ГГГГ-ММ-ДД или none, а не {raw!r}") from None


def _token_terms(args: argparse.Namespace, role: Any) -> tuple[tuple[Any, ...], datetime | None]:
    """The token's scopes (by default read and write, as far as the user's role may hold them) and end."""
    from models.rules.access import default_scopes_for, parse_scopes, token_expires_at

    scopes = parse_scopes(args.scope) if args.scope else default_scopes_for(role)
    days = None if args.no_expiry else (args.days or settings().auth.api_token_days)
    try:
        return scopes, token_expires_at(_now(), days)
    except ValueError as exc:
        raise UsageError(f"--days: {exc}") from None


def _print_token(issued: Any) -> None:
    token = issued.token
    print(f"API-токен id={token.id}: области {token.scopes}, действует до "
          f"{_when(token.expires_at) if token.expires_at else 'отзыва (бессрочный)'}")
    print("Токен (показывается один раз):")
    print(issued.secret)


# --- actions -----------------------------------------------------------------------------------------


def run_add(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from models.organization import Organization, Role, User
    from models.rules.phones import InvalidPhone, to_e164
    from models.services import users

    login = args.login.strip()
    if not LOGIN_RE.match(login):
        raise UsageError(f"--login: недопустимый логин {args.login!r} (2–80 символов: латиница, цифры, . _ - @)")
    full_name = args.name.strip()
    if not full_name:
        raise UsageError("--name не может быть пустым")
    email = _email(args.email, "--email")
    try:
        phone = to_e164(args.phone) if args.phone else None
    except InvalidPhone as exc:
        raise UsageError(f"--phone: {exc}") from None
    org_ids = list(dict.fromkeys(args.org))
    password = _password(args, login)
    scopes, expires_at = _token_terms(args, Role(args.role))
    issued = None
    with _write() as s, _checked():
        known = set(s.scalars(select(Organization.id).where(Organization.id.in_(org_ids))))
        missing = [str(o) for o in org_ids if o not in known]
        if missing:
            raise UsageError(f"--org: нет организации с id {', '.join(missing)}")
        if s.scalar(select(User.id).where(User.login == login)):
            raise UsageError(f"пользователь с логином {login!r} уже есть")
        valid_until = None
        if args.valid_until:
            valid_until = _valid_until(args.valid_until, s.get(Organization, org_ids[0]).timezone)
        draft = users.UserDraft(login=login, full_name=full_name, email=email, phone=phone, role=Role(args.role),
                                organization_ids=tuple(org_ids), valid_until=valid_until)
        user = users.create_user(s, draft=draft, admin_orgs=None, by=_by(), now=_now(),
                                 min_length=settings().auth.password_min_length, password=password).user
        if args.token:
            issued = users.issue_token(s, user=user, scopes=scopes, expires_at=expires_at, name="cli", admin_orgs=None,
                                       by=_by(), now=_now())
        user_id = user.id
    print(f"Пользователь создан: id={user_id}, логин {login}, роль {args.role}, "
          f"организации {', '.join(map(str, org_ids))}")
    if issued:
        _print_token(issued)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from models.organization import ROLE_TITLES_RU
    from models.services import users

    with _write() as s:
        rows = users.user_rows(s, admin_orgs=None, now=_now(), organization_id=args.org,
                               active=None if args.inactive else True)
        lines = []
        for r in rows:
            u = r.user
            state = "отключён" if not u.is_active else (f"вход заблокирован до {_when(r.locked_until)}"
                                                        if r.locked_until else "действует")
            extra = "".join((", временный пароль" if u.must_change_password else "",
                             ", 2FA" if u.two_factor_enabled else "",
                             f", действует до {_when(u.valid_until)}" if u.valid_until else ""))
            lines.append(f"{u.login}\t{u.full_name}\t{ROLE_TITLES_RU[u.role]}\tорганизации "
                         f"{', '.join(map(str, u.organization_ids)) or '—'}\t{state}{extra}\t"
                         f"последний вход {_when(r.last_login_at)}")
    print("\n".join(lines) if lines else "Пользователей нет")
    return 0


def run_set(args: argparse.Namespace) -> int:
    from models.services import users

    with _write() as s, _checked():
        user = users.user_by_login(s, admin_orgs=None, login=args.login)
        draft = users.UserDraft(
            full_name=args.name if args.name is not None else user.full_name,
            email=args.email if args.email is not None else user.email,
            phone=args.phone if args.phone is not None else user.phone,
            role=args.role or user.role,
            organization_ids=tuple(args.org) if args.org else tuple(user.organization_ids),
            valid_until=user.valid_until if args.valid_until is None else _valid_until(
                args.valid_until, user.memberships[0].organization.timezone if user.memberships else "Europe/Moscow"),
        )
        users.update_user(s, user=user, draft=draft, admin_orgs=None, by=_by(), now=_now())
    print(f"Пользователь {args.login} изменён")
    return 0


def run_password(args: argparse.Namespace) -> int:
    from models.services import users

    password = _password(args, args.login)
    with _write() as s, _checked():
        user = users.user_by_login(s, admin_orgs=None, login=args.login)
        ended = users.set_password(s, user=user, password=password, by=_by(), now=_now(),
                                   min_length=settings().auth.password_min_length)
    print(f"Пароль пользователя {args.login} изменён; завершено сессий: {ended}")
    return 0


def run_reset_password(args: argparse.Namespace) -> int:
    from models.services import users

    with _write() as s:
        user = users.user_by_login(s, admin_orgs=None, login=args.login)
        temporary = users.reset_password(s, user=user, admin_orgs=None, by=_by(), now=_now(),
                                         min_length=settings().auth.password_min_length)
    print(f"Временный пароль пользователя {args.login} (показывается один раз; при входе он задаст свой):")
    print(temporary)
    return 0


def run_reset_two_factor(args: argparse.Namespace) -> int:
    from models.services import users

    with _write() as s:
        user = users.user_by_login(s, admin_orgs=None, login=args.login)
        had = users.reset_two_factor(s, user=user, admin_orgs=None, by=_by(), now=_now())
    print(f"Двухфакторный вход пользователя {args.login} сброшен" if had
          else f"У пользователя {args.login} двухфакторный вход не был подключён")
    return 0


def run_deactivate(args: argparse.Namespace) -> int:
    from models.services import users

    with _write() as s:
        user = users.user_by_login(s, admin_orgs=None, login=args.login)
        ended = users.set_active(s, user=user, active=False, admin_orgs=None, by=_by(), now=_now())
    print(f"Пользователь {args.login} отключён; завершено сессий: {ended}")
    return 0


def run_activate(args: argparse.Namespace) -> int:
    from models.services import users

    with _write() as s:
        user = users.user_by_login(s, admin_orgs=None, login=args.login)
        users.set_active(s, user=user, active=True, admin_orgs=None, by=_by(), now=_now())
    print(f"Пользователь {args.login} снова включён")
    return 0


def run_sign_out(args: argparse.Namespace) -> int:
    from models.services import users

    with _write() as s:
        user = users.user_by_login(s, admin_orgs=None, login=args.login)
        ended = users.end_sessions(s, user=user, admin_orgs=None, by=_by(), now=_now())
    print(f"Завершено сессий пользователя {args.login}: {ended}")
    return 0


def run_sessions(args: argparse.Namespace) -> int:
    from models.services import access

    limits = settings().auth.sessions
    with _write() as s:
        rows = access.live_sessions(s, user_id=access.user_by_login(s, args.login).id, now=_now(), limits=limits)
    if not rows:
        print(f"У пользователя {args.login} нет открытых сессий")
    for r in rows:
        print(f"сессия {r.id}: вход {_when(r.created_at)}, активность {_when(r.last_seen_at)}, "
              f"адрес {r.ip or '—'}, {r.user_agent or '—'}")
    return 0


def run_unlock(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from models.organization import User
    from models.services import access, users

    if not args.login and not args.ip:
        raise UsageError("укажите логин и/или --ip")
    with _write() as s:
        user = s.scalar(select(User).where(User.login == args.login)) if args.login else None
        lifted, login = 0, args.login
        if user is not None:  # a real user's lock-out goes to their log; a name anyone typed has none
            lifted, login = users.unlock_login(s, user=user, by=_by(), now=_now()), None
        if login or args.ip:
            lifted += access.unlock(s, login=login, ip=args.ip)
    what = " и ".join(x for x in (args.login and f"логина {args.login}", args.ip and f"адреса {args.ip}") if x)
    print(f"Снято блокировок {what}: {lifted}; неудачные попытки забыты")
    return 0


def run_locks(args: argparse.Namespace) -> int:
    from models.services import access

    with _write() as s:
        rows = access.active_locks(s, now=_now())
    if not rows:
        print("Действующих блокировок входа нет")
    for r in rows:
        kind = "логин" if r.kind.value == "login" else "адрес"
        print(f"{kind} {r.value}: заблокирован до {_when(r.locked_until)}")
    return 0


def run_token_issue(args: argparse.Namespace) -> int:
    from models.services import users

    with _write() as s:
        user = users.user_by_login(s, admin_orgs=None, login=args.login)
        scopes, expires_at = _token_terms(args, user.role)
        issued = users.issue_token(s, user=user, scopes=scopes, expires_at=expires_at, name=args.name,
                                   admin_orgs=None, by=_by(), now=_now())
    _print_token(issued)
    return 0


def run_token_list(args: argparse.Namespace) -> int:
    from models.rules.access import TOKEN_STATE_TITLES_RU, token_state
    from models.services import access

    now = _now()
    with _write() as s:
        tokens = access.user_tokens(s, user_id=access.user_by_login(s, args.login).id)
    if not tokens:
        print(f"У пользователя {args.login} нет API-токенов")
    for t in tokens:
        state = TOKEN_STATE_TITLES_RU[token_state(t.revoked, t.expires_at, now)]
        print(f"id={t.id} {t.name or '—'}: {state}; области {t.scopes}; выпущен {_when(t.created_at)}; "
              f"до {_when(t.expires_at) if t.expires_at else 'отзыва'}; использован {_when(t.last_used_at)}")
    return 0


def run_token_revoke(args: argparse.Namespace) -> int:
    from models.organization import ApiToken
    from models.services import access, users

    with _write() as s:
        if args.id:
            token = s.get(ApiToken, args.id)
            if token is None:
                raise UsageError(f"нет токена с id {args.id}")
            users.revoke_token(s, user=token.user, token_id=token.id, admin_orgs=None, by=_by(), now=_now())
            count = 1
        else:
            user = users.user_by_login(s, admin_orgs=None, login=args.all_of)
            ids = [t.id for t in access.user_tokens(s, user_id=user.id) if not t.revoked]
            for token_id in ids:
                users.revoke_token(s, user=user, token_id=token_id, admin_orgs=None, by=_by(), now=_now())
            count = len(ids)
    print(f"Отозвано токенов: {count}")
    return 0


def run_alerts(args: argparse.Namespace) -> int:
    from models.rules.alerts import CHANNEL_TITLES_RU
    from models.services import alerts, users

    with _write() as s, _checked():
        user = users.user_by_login(s, admin_orgs=None, login=args.login)
        prefs = alerts.preferences(s, user.id)
        if args.channels is not None or args.quiet is not None:
            channels: Any = list(prefs.channels)
            if args.channels is not None:
                channels = [] if args.channels.strip().lower() in ("none", "нет", "-") else args.channels
            start: Any = prefs.quiet_start
            end: Any = prefs.quiet_end
            if args.quiet is not None:
                raw = args.quiet.strip().lower()
                if raw in ("none", "нет", "-", ""):
                    start, end = None, None
                elif raw.count("-") != 1:
                    raise UsageError("тихие часы в виде ЧЧ:ММ-ЧЧ:ММ, например 22:00-07:00")
                else:
                    start, end = raw.split("-")
            prefs = alerts.set_preferences(s, user=user, by=None, channels=channels, quiet_start=start,
                                           quiet_end=end, now=_now())
    titles = ", ".join(CHANNEL_TITLES_RU[c] for c in prefs.channels) or "никаких"
    quiet = (f"{prefs.quiet_start:%H:%M}–{prefs.quiet_end:%H:%M}" if prefs.quiet_start and prefs.quiet_end
             else "нет")
    print(f"{args.login}: каналы — {titles}; тихие часы — {quiet} (на аварийные заявки не действуют)")
    return 0
