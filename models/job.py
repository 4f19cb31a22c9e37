"""Background jobs: long operations (housing import, journal export, recordings purge) that
`openads worker` runs in bounded batches while the panel shows their progress (issue 12 item B4).

A job is a row: what to do (`kind`, `params`), who asked, how far it got (`progress_done` of
`progress_total`), what came out (`result`: counts, row errors, a file) or why it failed (`error`).
`state` is the runner's checkpoint, committed in the same transaction as each batch's writes, so a
worker killed mid-job is resumed from the last committed batch by the next one to claim it: its
lease (`lease_until`, `lease_token`) expires, and every checkpoint checks the token (a runner whose
lease was taken over stops at its next batch instead of writing twice). Decision 0030.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, OrgOwned, UTCDateTime, utcnow


class JobKind(enum.StrEnum):
    HOUSING_CHECK = "housing_check"  # read a housing file, count what would change (nothing written)
    HOUSING_IMPORT = "housing_import"  # apply a housing file
    JOURNAL_EXPORT = "journal_export"  # the filtered journal to an .xlsx file
    RECORDINGS_PURGE = "recordings_purge"  # delete call recordings past the retention
    INSPECTION_PACK = "inspection_pack"  # the ZIP of registers for a housing inspection (decision 0038)
    CALLS_EXPORT = "calls_export"  # the filtered calls journal to an .xlsx file


KIND_TITLES_RU = {
    JobKind.HOUSING_CHECK: "Проверка файла жилого фонда",
    JobKind.HOUSING_IMPORT: "Импорт жилого фонда",
    JobKind.JOURNAL_EXPORT: "Выгрузка журнала в Excel",
    JobKind.RECORDINGS_PURGE: "Удаление записей разговоров по сроку хранения",
    JobKind.INSPECTION_PACK: "Пакет документов для проверки ГЖИ",
    JobKind.CALLS_EXPORT: "Выгрузка журнала звонков в Excel",
}


# Jobs whose result is a file to download (`/jobs/<id>/file`).
EXPORT_KINDS: frozenset[JobKind] = frozenset({JobKind.JOURNAL_EXPORT, JobKind.CALLS_EXPORT})


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


STATUS_TITLES_RU = {
    JobStatus.QUEUED: "в очереди",
    JobStatus.RUNNING: "выполняется",
    JobStatus.DONE: "готово",
    JobStatus.FAILED: "ошибка",
}
FINISHED = (JobStatus.DONE, JobStatus.FAILED)


def _values(e: type[enum.Enum]) -> list[str]:
    return [str(m.value) for m in e]


class Job(OrgOwned, Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("jobs__idx__status_lease", "status", "lease_until"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[JobKind] = mapped_column(Enum(JobKind, native_enum=False, length=30, values_callable=_values))
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=10, values_callable=_values), default=JobStatus.QUEUED
    )
    # Who asked (NULL: the command line or the worker's own schedule).
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer)  # None: not known (yet)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the runner's checkpoint
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")  # why it failed, in Russian
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(40))
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims: above 1, earlier runs were cut short

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def percent(self) -> int | None:
        if self.status == JobStatus.DONE:
            return 100
        if not self.progress_total:
            return None
        return max(0, min(100, self.progress_done * 100 // self.progress_total))

    @property
    def title(self) -> str:
        return KIND_TITLES_RU.get(self.kind, str(self.kind))

    @property
    def status_title(self) -> str:
        return STATUS_TITLES_RU.get(self.status, str(self.status))
