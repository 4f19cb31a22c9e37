"""`openads user add`: a user with a role in one or more organizations (and an API token)."""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from typing import Any

from openads.commands import UsageError, database, positive_int, settings
from openads.commands.org import _email

ROLES = ("admin", "manager", "dispatcher", "executor")
LOGIN_RE = re.compile(r"^[A-Za-z0-9._@-]{2,80}$")
MIN_PASSWORD = 4


def register(sub: Any) -> None:
    p = sub.add_parser("user", help="пользователи и их роли")
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
    add.add_argument("--email", help="e-mail (исполнителю приходят назначенные заявки)")
    add.add_argument("--phone", help="телефон")
    add.add_argument("--password", help="пароль (лучше OPENADS_PASSWORD или запрос)")
    add.add_argument("--token", action="store_true", help="выпустить API-токен и напечатать его")
    add.set_defaults(handler=run_add)
    p.set_defaults(handler=lambda args: p.error("укажите действие: add"))


def _password(args: argparse.Namespace) -> str:
    password = args.password if args.password is not None else os.environ.get("OPENADS_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError("пароль не задан: укажите --password или переменную OPENADS_PASSWORD")
        password = getpass.getpass("Пароль: ")
        if password != getpass.getpass("Пароль ещё раз: "):
            raise UsageError("пароли не совпадают")
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"пароль короче {MIN_PASSWORD} символов")
    return password


def run_add(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from models.organization import ApiToken, Membership, Organization, Role, User
    from models.rules.phones import InvalidPhone, to_e164
    from web.auth import hash_password, hash_token, new_token

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
    password = _password(args)
    token = new_token() if args.token else None
    db = database(settings().database_url)
    try:
        with db.write() as s:
            known = set(s.scalars(select(Organization.id).where(Organization.id.in_(org_ids))))
            missing = [str(o) for o in org_ids if o not in known]
            if missing:
                raise UsageError(f"--org: нет организации с id {', '.join(missing)}")
            if s.scalar(select(User.id).where(User.login == login)):
                raise UsageError(f"пользователь с логином {login!r} уже есть")
            user = User(login=login, full_name=full_name, email=email, phone=phone,
                        password_hash=hash_password(password), role=Role(args.role), is_active=True)
            s.add(user)
            s.flush()
            for org_id in org_ids:
                s.add(Membership(user_id=user.id, organization_id=org_id))
            if token:
                s.add(ApiToken(user_id=user.id, token_sha256=hash_token(token), name="cli"))
            user_id = user.id
    finally:
        db.dispose()
    print(f"Пользователь создан: id={user_id}, логин {login}, роль {args.role}, "
          f"организации {', '.join(map(str, org_ids))}")
    if token:
        print("API-токен (показывается один раз):")
        print(token)
    return 0
