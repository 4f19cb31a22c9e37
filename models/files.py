"""Modes of the files OpenADS keeps (issue 10, item 10). They hold residents' personal data
(152-ФЗ): the SQLite database, ticket attachments, call recordings, uploaded housing imports.

Directories 0750, files 0640: the service's user and its group, nobody else (the group is how
Asterisk's fallback recordings are shared, README «Права на файлы»); the secret key 0600.
`restrict_umask()` runs at every `openads` process start, so whatever a library creates (SQLite's
database, its -wal and -shm files, a gunicorn temporary file) gets the same. The helpers below pass
the mode explicitly where we create files ourselves, so they hold whatever the umask of the process
that imports us (a test runner, a WSGI server started by hand); a stricter umask still wins.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

DIR_MODE = 0o750
FILE_MODE = 0o640
SECRET_MODE = 0o600
DEFAULT_UMASK = 0o027


def parse_umask(raw: str | None) -> int:
    """OPENADS_UMASK (octal, e.g. `027`); empty → DEFAULT_UMASK. ValueError on anything else."""
    if raw is None or not raw.strip():
        return DEFAULT_UMASK
    value = int(raw.strip(), 8)
    if not 0 <= value <= 0o777:
        raise ValueError(raw)
    return value


def restrict_umask(raw: str | None = None) -> int:
    """Set the process umask (OPENADS_UMASK, default 027); returns the previous one."""
    return os.umask(parse_umask(raw))


def private_dir(path: Path) -> Path:
    """`mkdir -p` giving DIR_MODE to every directory it creates (existing ones are left alone)."""
    missing = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made meanwhile by another process
            continue
    return Path(path)


@contextmanager
def open_private(path: Path, mode: int = FILE_MODE) -> Iterator[BinaryIO]:
    """A new file (a stale one is replaced) opened for binary writing, created with `mode`."""
    Path(path).unlink(missing_ok=True)  # O_CREAT keeps an existing file's mode
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as out:
        yield out


def write_private(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Write `data` to `path` atomically (a `.part` file renamed), created with `mode`; the parent
    directories are made with DIR_MODE."""
    target = Path(path)
    private_dir(target.parent)
    tmp = target.with_name(target.name + ".part")
    try:
        with open_private(tmp, mode) as out:
            out.write(data)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_private_file(path: Path, mode: int = FILE_MODE) -> bool:
    """Create an empty `path` with `mode` unless it exists (parents with DIR_MODE); True if created."""
    target = Path(path)
    private_dir(target.parent)
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode))
    except FileExistsError:
        return False
    return True
