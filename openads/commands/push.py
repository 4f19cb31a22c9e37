"""`openads push keys`: the VAPID key pair of Web Push to executors' devices (decision 0043).
Written into the environment file the services read (`--env-file`, mode 0600), or printed. A new
pair makes every device subscribe again: an existing pair is kept unless `--force`."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from openads.commands import UsageError

PRIVATE, PUBLIC = "OPENADS_VAPID_PRIVATE_KEY", "OPENADS_VAPID_PUBLIC_KEY"


def register(sub: Any) -> None:
    p = sub.add_parser("push", help="push-уведомления исполнителям (Web Push)")
    psub = p.add_subparsers(title="действия", metavar="ДЕЙСТВИЕ")
    keys = psub.add_parser("keys", help="создать пару ключей VAPID",
                           description="Создать пару ключей VAPID и записать её в файл переменных окружения "
                                       "(--env-file) или напечатать. Новая пара требует повторной подписки "
                                       "всех устройств.")
    keys.add_argument("--env-file", metavar="ФАЙЛ", help="файл переменных окружения, например /etc/openads/openads.env")
    keys.add_argument("--force", action="store_true", help="заменить уже записанные ключи")
    keys.set_defaults(handler=run_keys)
    p.set_defaults(handler=lambda args: p.error("укажите действие: keys"))


def write_env(path: Path, values: dict[str, str], *, force: bool) -> None:
    """Set `values` in the env file (other lines kept; a new file is created 0600, an existing one
    keeps its mode and owner: the services read it)."""
    text = path.read_text() if path.exists() else ""
    lines = text.splitlines()
    for name, value in values.items():
        pattern = re.compile(rf"^\s*(export\s+)?{name}\s*=")
        found = [i for i, line in enumerate(lines) if pattern.match(line)]
        if found and not force:
            raise UsageError(f"в {path} уже есть {name}; новая пара ключей — с --force "
                             "(устройствам придётся подписаться снова)")
        if found:
            lines[found[0]] = f"{name}={value}"
            for i in reversed(found[1:]):
                del lines[i]
        else:
            lines.append(f"{name}={value}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")


def run_keys(args: argparse.Namespace) -> int:
    from openads.providers.push import generate_vapid_keys

    private, public = generate_vapid_keys()
    values = {PRIVATE: private, PUBLIC: public}
    if args.env_file:
        path = Path(args.env_file)
        if not path.parent.is_dir():
            raise UsageError(f"нет папки {path.parent}")
        write_env(path, values, force=args.force)
        print(f"Ключи VAPID записаны в {path}; перезапустите службы openads (веб и обработчик очереди).")
        print(f"{PUBLIC}={public}")
        return 0
    for name, value in values.items():
        print(f"{name}={value}")
    return 0
