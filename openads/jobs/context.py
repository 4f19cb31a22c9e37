"""What a job's handler gets: its claim, the database, the files, and the runner's signals.

A handler is `handle(ctx) -> (result, done)`. It works in batches: each batch's writes and
`ctx.checkpoint(session, ...)` in one short write transaction; between batches `ctx.check_stop()`.
It raises `JobFailed` (or a `DomainError`) with a Russian message when the job cannot succeed, and
`Retry` when a batch lost to another writer (the runner then starts it again from the last
checkpoint). `ctx.progress` reports progress of a job that writes nothing else (an export).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from models.db import Database
from models.files import private_dir
from models.services.jobs import Claim, checkpoint_job

# At most this many `job.progress` events a second per job (the panels' progress bars).
ANNOUNCE_EVERY = 0.5
UPLOADS = "imports"  # under the var dir: uploaded housing files, until their import is done
EXPORTS = "exports"  # under the var dir: finished exports, until they expire


class JobFailed(Exception):
    """The job cannot succeed: `message` (Russian) is shown on its page."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class JobStopped(Exception):
    """The runner is stopping (SIGTERM): the job is given back and resumed later."""


class Retry(Exception):
    """A batch failed for a reason that passes (another writer won a race): start again from the
    last checkpoint, after a pause."""


@dataclass
class JobContext:
    db: Database
    claim: Claim
    var_dir: Path
    recordings_dir: Path
    stop: threading.Event
    lease: timedelta
    clock: Callable[[], datetime]
    on_progress: Callable[[int, int | None], None] | None = None  # the command line's own display
    _announced: float = field(default=float("-inf"))

    @property
    def state(self) -> dict[str, Any]:
        return self.claim.state

    @property
    def params(self) -> dict[str, Any]:
        return self.claim.params

    @property
    def result(self) -> dict[str, Any]:
        """The result as last committed (a resumed job's counts so far)."""
        return self.claim.result

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise JobStopped()

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self._announced >= ANNOUNCE_EVERY:
            self._announced = now
            return True
        return False

    def checkpoint(self, session: Session, *, done: int, total: int | None = None,
                   state: dict[str, Any] | None = None, result: dict[str, Any] | None = None) -> None:
        """In the batch's write transaction: progress, checkpoint and lease; an event at most
        every `ANNOUNCE_EVERY` seconds. LeaseLost if another runner has the job now."""
        checkpoint_job(session, self.claim, done=done, total=total, state=state, result=result,
                       lease=self.lease, now=self.clock(), announce=self._due())
        if self.on_progress is not None:
            self.on_progress(done, total)

    def progress(self, done: int, total: int | None = None, *, force: bool = False) -> None:
        """Progress of a job with no writes of its own: a short write transaction of its own, at
        most every `ANNOUNCE_EVERY` seconds (it also renews the lease)."""
        if self.on_progress is not None:
            self.on_progress(done, total)
        if not force and time.monotonic() - self._announced < ANNOUNCE_EVERY:
            return
        with self.db.write() as s:
            self._announced = float("-inf")
            checkpoint_job(s, self.claim, done=done, total=total, lease=self.lease, now=self.clock(),
                           announce=self._due())

    def var_path(self, relative: str) -> Path:
        """A file under the var dir named by a job's params or result; JobFailed outside it."""
        root = self.var_dir.resolve()
        path = (root / relative).resolve()
        if not relative or not path.is_relative_to(root) or path == root:
            raise JobFailed("файл задания не найден")
        return path

    def output_dir(self, name: str) -> Path:
        return private_dir(self.var_dir / name)
