"""The outbox worker's journal of accepted sends (issue 11, item 1; decision 0019).

A provider's acceptance (SMTP 250 after DATA, an SMS gateway's message id) is written here, to a
local JSON-lines file flushed with fsync, BEFORE the database is asked to record it. Until the
record is stored the entry stays: the worker retries it every round and replays the file at
start, and never claims (so never sends again) a message that has an entry. The database can be
away for hours, or the worker killed right after the fsync: the message is still sent once and
its time is the provider's.

Several worker processes may share the file: every change takes an exclusive `flock` on a
sibling `.lock` file. A torn last line (a crash mid-write) is skipped with a warning: its
acceptance is then unknown to us, as if the crash came before the write.

`AcceptedJournal(None)` keeps the entries in memory only (tests, `openads worker --once`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """One send the provider accepted: which outbox message, when, and the provider's id."""

    message_id: int
    at: datetime
    provider_id: str
    detail: str

    def to_json(self) -> str:
        return json.dumps({"message_id": self.message_id, "at": self.at.isoformat(),
                           "provider_id": self.provider_id, "detail": self.detail}, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Accepted:
        data = json.loads(line)
        return cls(int(data["message_id"]), datetime.fromisoformat(data["at"]), str(data["provider_id"]),
                   str(data["detail"]))


class AcceptedJournal:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._memory: dict[int, Accepted] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if self.path is None:
                yield
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def add(self, entry: Accepted) -> None:
        """Remember an acceptance durably (fsync). An OSError (disk full, read-only) is logged:
        the in-memory entry still keeps this process from sending the message again."""
        with self._locked():
            self._memory[entry.message_id] = entry
            if self.path is None:
                return
            try:
                with open(self.path, "a+", encoding="utf-8") as f:
                    torn = f.tell() > 0 and not _ends_with_newline(self.path)
                    f.write(("\n" if torn else "") + entry.to_json() + "\n")  # never glued to a torn line
                    f.flush()
                    os.fsync(f.fileno())
            except OSError:
                log.exception("outbox journal %s: acceptance of message %s not written to disk; "
                              "kept in memory only", self.path, entry.message_id)

    def pending(self) -> list[Accepted]:
        """Every acceptance not yet settled: this process's and those left in the file."""
        with self._locked():
            for entry in self._read():
                self._memory.setdefault(entry.message_id, entry)
            return sorted(self._memory.values(), key=lambda e: e.message_id)

    def settle(self, message_ids: Iterable[int]) -> None:
        """Forget acceptances whose record is stored (the file is rewritten without them)."""
        done = set(message_ids)
        if not done:
            return
        with self._locked():
            for message_id in done:
                self._memory.pop(message_id, None)
            if self.path is None or not self.path.exists():
                return
            keep = [e for e in self._read() if e.message_id not in done]
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(e.to_json() + "\n" for e in keep)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)

    def _read(self) -> list[Accepted]:
        if self.path is None or not self.path.exists():
            return []
        entries: list[Accepted] = []
        with open(self.path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    entries.append(Accepted.from_json(line))
                except (ValueError, KeyError, TypeError):
                    log.warning("outbox journal %s: line %d unreadable (torn write?); skipped", self.path, number)
        return entries


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
