"""Files a job reads, stored under the var dir with the private mode (models/files.py: residents'
names and phones, 0640 in 0750 directories), named by a random token."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from models.files import open_private, private_dir
from openads.jobs.context import UPLOADS


def store_upload(var_dir: Path, suffix: str, write: Callable[[BinaryIO], None]) -> str:
    """A new private file under `<var>/imports/` filled by `write(stream)`; returns its name
    relative to the var dir (for a job's params)."""
    name = f"{UPLOADS}/{secrets.token_urlsafe(24)}{suffix.lower()}"
    target = private_dir(var_dir / UPLOADS) / Path(name).name
    try:
        with open_private(target) as out:
            write(out)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return name


def store_copy(var_dir: Path, source: Path) -> str:
    """A private copy of `source` for a job (the worker may not read the user's own directory)."""
    with open(source, "rb") as data:
        return store_upload(var_dir, source.suffix, lambda out: shutil.copyfileobj(data, out, 1 << 20))


def remove(var_dir: Path, name: str) -> None:
    root = var_dir.resolve()
    path = (root / name).resolve()
    if name and path.is_relative_to(root) and path != root:
        path.unlink(missing_ok=True)
