"""The calls journal as an .xlsx workbook (issue 14 item 3), streamed with bounded memory.

The same filter as the calls journal page (`models.queries_calls.CallFilter`), every page of it:
calls are read in keyset batches, each batch in its own short read session, and written through
the journal export's streamed writer (`models.export.iter_table_xlsx`, decision 0004). Each call
carries its ПП 416 evidence: answered within 5 minutes or not, the missed-call item it belongs to
(as a missed call, a callback of it, or the resident's own call that closed it) with the item's
deadline, the moment the resident was reached and the breach mark, and a voice message's review.
Times are shown in each call's organization time zone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from models import queries_calls as qc
from models.call import (
    CALL_DIRECTION_TITLES_RU,
    CALL_KIND_TITLES_RU,
    CALL_OUTCOME_TITLES_RU,
    Call,
    CallDirection,
)
from models.db import Database
from models.export import Cell, iter_table_xlsx, phone_for_humans, write_rows_file
from models.missed_call import CallbackAttempt, MissedCall
from models.organization import User
from models.queries_calls import CallFilter
from models.recording import RecordingKind
from models.rules.call_evidence import MissedEvidence, MissedOutcome, answered_in_time, voice_review_breach

BATCH_SIZE = 500  # the journal query's own ceiling
SHEET_NAME = "Звонки"

_ORG_COLUMN = ("Организация", 24)
_COLUMNS: tuple[tuple[str, int], ...] = (
    ("Начало", 17),
    ("Направление", 12),
    ("Вид", 18),
    ("Номер", 17),
    ("Житель", 24),
    ("Линия", 17),
    ("Ответ", 17),
    ("Ожидание, с", 11),
    ("Ответил", 22),
    ("Окончание", 17),
    ("Исход", 22),
    ("Ответ за 5 минут", 12),
    ("Пропущенный: первый звонок", 17),
    ("Перезвонить до", 17),
    ("Житель достигнут", 17),
    ("Перезвон", 30),
    ("Голосовое получено", 17),
    ("Голосовое прослушано", 17),
    ("Прослушал", 22),
    ("Голосовое за 10 минут", 14),
    ("Запись разговора", 12),
    ("Заявки", 20),
)
CALLS_COLUMNS: tuple[str, ...] = tuple(c[0] for c in _COLUMNS)
CALLS_COLUMNS_MULTI_ORG: tuple[str, ...] = (_ORG_COLUMN[0], *CALLS_COLUMNS)

YES, NO = "да", "нет"


def _batches(db: Database, org_ids: list[int], f: CallFilter, now: datetime,
             counter: list[int]) -> Iterator[list[Sequence[Cell]]]:
    """The filter's calls, newest first, a batch per read session, as rows of cells."""
    f = replace(f, limit=BATCH_SIZE, before=None)
    while True:
        with db.read() as session:
            calls = list(qc.calls_journal(session, org_ids=org_ids, f=f))
            if not calls:
                return
            rows = _rows(session, org_ids, calls, now, multi=len(org_ids) > 1)
            last = (calls[-1].started_at, calls[-1].id)  # read while the session holds the rows
        counter[0] += len(rows)
        yield rows
        if len(calls) < f.limit:
            return
        f = replace(f, before=last)


def _rows(session: Session, org_ids: list[int], calls: list[Call], now: datetime, *, multi: bool) -> list[Sequence[Cell]]:
    item_of = qc.missed_items_of_calls(session, org_ids=org_ids, call_ids=[c.id for c in calls])
    items = {i.id: i for i in session.scalars(
        select(MissedCall).where(MissedCall.id.in_(set(item_of.values())))
        .options(selectinload(MissedCall.attempts).selectinload(CallbackAttempt.call))
    )} if item_of else {}
    reviewers = {r.reviewed_by_id for c in calls for r in c.recordings if r.reviewed_by_id is not None}
    names = {u.id: u.full_name for u in session.scalars(select(User).where(User.id.in_(reviewers)))} if reviewers else {}
    out: list[Sequence[Cell]] = []
    for call in calls:
        tz = ZoneInfo(call.organization.timezone)

        def local(moment: datetime | None, tz: ZoneInfo = tz) -> datetime | None:
            return moment.astimezone(tz) if moment is not None else None

        inbound = call.direction == CallDirection.INBOUND
        five = ("" if not inbound else YES if answered_in_time(call.started_at, call.answered_at) else NO)
        item = items.get(item_of.get(call.id, 0))
        ev = item.evidence(now) if item is not None else None
        voice = next((r for r in call.recordings if r.kind == RecordingKind.VOICEMAIL), None)
        conversation = call.recording
        row: list[Cell] = [
            local(call.started_at), CALL_DIRECTION_TITLES_RU[call.direction], CALL_KIND_TITLES_RU[call.kind],
            phone_for_humans(call.phone) or "номер скрыт", call.resident.full_name if call.resident else None,
            phone_for_humans(call.did) or None, local(call.answered_at), call.wait_seconds,
            call.answered_by.full_name if call.answered_by else call.dispatcher_endpoint,
            local(call.ended_at), CALL_OUTCOME_TITLES_RU[call.outcome] if call.outcome else "идёт", five or None,
            local(item.first_call_at) if item else None, local(ev.deadline_at) if ev else None,
            local(ev.reached_at) if ev else None, _evidence_text(ev) if ev else None,
            local(voice.created_at) if voice else None, local(voice.reviewed_at) if voice else None,
            names.get(voice.reviewed_by_id or 0) if voice else None,
            (NO if voice_review_breach(voice.created_at, voice.reviewed_at, now) else YES) if voice else None,
            ("удалена" if conversation.deleted else YES) if conversation else NO,
            ", ".join(t.number for t in call.tickets) or None,
        ]
        out.append([call.organization.short_name, *row] if multi else row)
    return out


def _evidence_text(ev: MissedEvidence) -> str:
    """The item's mark as the panel shows it (models/rules/call_evidence.py)."""
    if ev.outcome == MissedOutcome.LATE and ev.late_seconds is not None:
        minutes, seconds = divmod(ev.late_seconds, 60)
        return f"нарушение: позже срока на {minutes}:{seconds:02d}"
    if ev.outcome == MissedOutcome.NOT_REACHED:
        return "нарушение: житель не достигнут"
    return ev.title


def calls_columns(org_count: int) -> tuple[str, ...]:
    return CALLS_COLUMNS_MULTI_ORG if org_count > 1 else CALLS_COLUMNS


def _calls_zip(db: Database, org_ids: list[int], f: CallFilter, now: datetime, counter: list[int]) -> Iterator[bytes]:
    ids = [f.organization_id] if f.organization_id is not None and f.organization_id in org_ids else (
        [-1] if f.organization_id is not None else sorted(org_ids))
    columns = (_ORG_COLUMN, *_COLUMNS) if len(ids) > 1 else _COLUMNS

    def rows() -> Iterator[Sequence[Cell]]:
        if ids == [-1]:
            return
        for batch in _batches(db, ids, f, now, counter):
            yield from batch

    return iter_table_xlsx(SHEET_NAME, columns, rows(), tz=None, now=now)


def iter_calls_xlsx(db: Database, org_ids: Iterable[int], f: CallFilter, now: datetime) -> Iterator[bytes]:
    """The filtered calls journal (all of it: `f.limit` and `f.before` are ignored) as .xlsx bytes.
    Scoped to `org_ids`; `f.organization_id` outside them gives a workbook with only the header."""
    return _calls_zip(db, list(org_ids), f, now, [0])


def write_calls_xlsx(db: Database, org_ids: Iterable[int], f: CallFilter, now: datetime, path: str | Path,
                     progress: Callable[[int], None] | None = None) -> int:
    """Write the export to `path` (atomically, a private file: residents' phones); returns the row
    count. `progress(rows_written)` is called as batches are written."""
    counter = [0]
    return write_rows_file(path, _calls_zip(db, list(org_ids), f, now, counter), counter, progress)
