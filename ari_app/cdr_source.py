"""Calls the dialplan fallback handled while `openads ari` was down, from Asterisk's own CDR table.

The AMI path (ari_app/reconcile.py `FallbackCdrs`, fed by `AmiPresence`) only hears calls that end
while this process holds the AMI connection. Asterisk writes every CDR into a table whatever
OpenADS does (docs/telephony.md, "Сверка после остановки"):

- `cdr_sqlite3_custom` (dialplan/cdr_sqlite3_custom.conf) into /var/log/asterisk/master.db, table
  `openads_cdr` keyed by `AcctId`, every value text ('' when empty):
  `ASTERISK_CDR_URL=sqlite:////var/log/asterisk/master.db`, opened read-only;
- or, for an Asterisk on another machine, `cdr_adaptive_odbc` (dialplan/cdr_adaptive_odbc.conf; or
  `cdr_pgsql`) into `asterisk.openads_cdr` in OpenADS's PostgreSQL, the same columns keyed by `id`
  (bigserial), typed: start/answer/end `timestamp`, duration/billsec `integer`, an empty CDR
  variable NULL (docs/telephony.md): `ASTERISK_CDR_URL=postgresql://...` (read with psycopg),
  `ASTERISK_CDR_TABLE=asterisk.openads_cdr`.

`CdrSource` reads the rows after its cursor (`event_cursors` row `asterisk_cdr`: the highest key
done; the key is the column `acctid` or else `id`, in any letter case) at start and every
`poll_seconds`, keeps those with `openads_fallback` set, groups them per `uniqueid` (one row per
dispatcher's phone the fallback's Dial() rang, plus the rest of the caller's channel; the caller's
last record carries what the hangup handler [openads-fallback-end] set: openads_dialstatus,
openads_answered_by, openads_vmfile, openads_recording) and writes each call through the same
path as the AMI events (`FallbackCdrs.record` → `record_fallback_call`, idempotent on uniqueid: a
call the AMI path already wrote is left as it is).

It also keeps the other records of hotline calls (`openads_did` set, in [openads-from-trunk],
before Stasis): every call that reached the app. A uniqueid among them that no fallback record
claims, that no session of this app holds and that is not in the journal is a call no process
wrote — `openads ari` was killed between the caller's StasisStart and its registration, and the
caller hung up before the restarted app or the watchdog saw the channel. It is journaled as
abandoned, with its missed-call item (`record_unseen_call`), so no hotline call is ever lost.

Times in the table are Asterisk's wall clock ("2026-11-25 14:03:07", as `${CDR(start)}` formats
them; a PostgreSQL `timestamp` comes back as the same naive datetime), read in this host's time
zone like the AMI Cdr events; an aware datetime (`timestamptz`) and epoch seconds are taken as they
are. NULL reads as ''. A table Asterisk cannot be read from (no file yet, no
permission, database down) is logged once per change and tried again next time; a row that makes
no sense is logged and skipped. Nothing here stops the app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

from ari_app.presence import CdrRecord, FallbackEnd
from ari_app.reconcile import FallbackCall, aware_utc, fallback_cdrs
from models.event_cursor import ASTERISK_CDR

if TYPE_CHECKING:
    from ari_app.app import AriApp

log = logging.getLogger(__name__)

CURSOR = ASTERISK_CDR  # its models.event_cursor.EventCursor row (not an event id: FOREIGN_CURSORS)
KEYS = ("acctid", "id")  # the row number: cdr_sqlite3_custom's AcctId; a PostgreSQL table's own
REQUIRED = ("acctid", "uniqueid", "start", "end", "openads_fallback")  # acctid: one of KEYS
# Set only by the hangup handler [openads-fallback-end]: the row holding any is the caller's last.
END_COLUMNS = ("openads_dialstatus", "openads_answered_by", "openads_vmfile", "openads_recording")


class MalformedRow(ValueError):
    pass


def read_only_url(url: str) -> URL:
    """A sqlite file URL opened read-only and never created (`file:...?mode=ro`, uri=true): OpenADS
    only reads Asterisk's file, and a missing file must stay an error, not become an empty one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return parsed
    database = parsed.database if parsed.database.startswith("file:") else f"file:{parsed.database}"
    return parsed.set(database=database, query={**parsed.query, "mode": "ro", "uri": "true"})


def source_url(url: str) -> URL:
    """The URL the table is opened with: sqlite read-only (`read_only_url`); postgres:// and
    postgresql:// without a driver → psycopg (3), the driver OpenADS installs (SQLAlchemy's default
    for them is psycopg2, which is not there), as DATABASE_URL is read."""
    parsed = read_only_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _text(row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    return "" if value is None else str(value).strip()


def cdr_time(value: Any, local_tz: tzinfo | None = None) -> datetime | None:
    """A CDR time → naive UTC. `${CDR(start)}` text is Asterisk's wall clock; a naive datetime too;
    an aware one or epoch seconds say the instant. Empty (never answered) → None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float):
        moment = datetime.fromtimestamp(float(value), UTC)
    else:
        raw = str(value).strip()
        if not raw:
            return None
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            try:
                moment = datetime.fromtimestamp(float(raw), UTC)
            except (ValueError, OverflowError, OSError) as exc:
                raise MalformedRow(f"not a time: {raw!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local_tz) if local_tz is not None else moment.astimezone()
    moment = moment.astimezone(UTC).replace(tzinfo=None)
    return None if moment.year < 2000 else moment  # cdr backends write the epoch for "never"


def _epoch(value: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(float(value)), UTC).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        return None


def _int(value: str, default: int | None) -> int | None:
    try:
        return int(float(value))
    except ValueError:
        return default


def cdr_record(row: Mapping[str, Any], local_tz: tzinfo | None = None) -> CdrRecord:
    """One table row (column names lower-case) → the `CdrRecord` an AMI Cdr event would give."""
    unique_id = _text(row, "uniqueid")
    if not unique_id:
        raise MalformedRow("no uniqueid")
    start, end = cdr_time(row.get("start"), local_tz), cdr_time(row.get("end"), local_tz)
    if start is None or end is None:
        raise MalformedRow("no start or end time")
    answer = cdr_time(row.get("answer"), local_tz)
    return CdrRecord(
        unique_id=unique_id,
        linked_id=_text(row, "linkedid") or unique_id,
        source=_text(row, "src"),
        destination=_text(row, "dst"),
        destination_context=_text(row, "dcontext"),
        channel=_text(row, "channel"),
        destination_channel=_text(row, "dstchannel"),
        last_application=_text(row, "lastapp"),
        disposition=_text(row, "disposition").upper(),
        start=start,
        answer=answer,
        end=end,
        duration=_int(_text(row, "duration"), None) or int((end - start).total_seconds()),
        billable_seconds=_int(_text(row, "billsec"), 0) or 0,
        user_field=_text(row, "userfield"),
        did=_text(row, "openads_did"),
        org_id=_int(_text(row, "openads_org_id"), None),
        fallback=_text(row, "openads_fallback") == "1",
        dial_status=_text(row, "openads_dialstatus").upper(),
        voicemail=_text(row, "openads_vmstatus").upper(),
        answered_at=_epoch(_text(row, "openads_answered_at")),
        raw={k: _text(row, k) for k in row},
    )


def fallback_end(row: Mapping[str, Any]) -> FallbackEnd | None:
    """The hangup handler's variables on the caller's last record, as the OpenadsFallbackEnd
    UserEvent carries them; None for the other rows."""
    if not any(_text(row, name) for name in END_COLUMNS):
        return None
    unique_id = _text(row, "uniqueid")
    return FallbackEnd(
        unique_id=unique_id,
        linked_id=_text(row, "linkedid") or unique_id,
        dial_status=_text(row, "openads_dialstatus").upper(),
        answered_by=_text(row, "openads_answered_by"),
        vm_status=_text(row, "openads_vmstatus").upper(),
        vm_file=_text(row, "openads_vmfile"),
        recording=_text(row, "openads_recording"),
    )


@dataclass
class _Group:
    call: FallbackCall
    first_id: int
    last_id: int
    fallback: bool = True  # False: a hotline call's rows without the fallback's mark (`_write_unseen`)

    @property
    def complete(self) -> bool:
        return self.fallback and self.call.end is not None


@dataclass
class PollReport:
    rows: int = 0  # rows read after the cursor
    calls: list[int] = field(default_factory=list)  # fallback calls written (or found written)
    skipped: int = 0  # malformed rows, calls that cannot be recorded
    deferred: str | None = None  # uniqueid whose rows may still be being written
    cursor: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "calls": self.calls, "skipped": self.skipped, "deferred": self.deferred,
                "cursor": self.cursor, "error": self.error}


class CdrSource:
    def __init__(self, app: AriApp, url: str, table: str = "openads_cdr", *, poll_seconds: float = 60.0,
                 local_tz: tzinfo | None = None, batch: int = 1000) -> None:
        self.app = app
        self.url = url
        self.table = table
        self.poll_seconds = poll_seconds
        self.local_tz = local_tz
        self.batch = batch
        self.last: PollReport | None = None
        self.polls = 0
        self._engine: Engine | None = None
        self._state: str | None = None  # the last read error logged ("" = readable)
        self._deferred: tuple[str, int] | None = None  # (uniqueid, last acctid) held back once

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "polls": self.polls, "readable": self._state == "",
                "last": self.last.as_dict() if self.last else None}

    async def run(self) -> None:
        """Read at once, then every `poll_seconds`, until cancelled."""
        try:
            while True:
                try:
                    await self.poll()
                except asyncio.CancelledError:
                    raise
                except Exception:  # never stop the app; the next poll tries again
                    log.exception("asterisk cdr: poll failed")
                await asyncio.sleep(self.poll_seconds)
        finally:
            self.close()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- one poll --

    async def poll(self) -> PollReport:
        report = PollReport()
        self.polls += 1
        cursor = await self.app.db.read(_get_cursor)
        while True:
            try:
                max_id, rows = await asyncio.to_thread(self._read, cursor)
            except Exception as exc:  # missing file, no permission, database down, no such table
                self._readable(f"{type(exc).__name__}: {exc}".splitlines()[0])
                report.error, report.cursor = self._state, cursor
                self.last = report
                return report
            self._readable("")
            if max_id is None or max_id < cursor:
                if cursor:  # the table was emptied (rowids start again) or replaced
                    log.warning("asterisk cdr: %s holds no row after %d (highest %s): reading it from the start",
                                self.table, cursor, max_id)
                    cursor = 0
                    await self.app.db.write(lambda s: _set_cursor(s, 0))
                if max_id is None:
                    break
                continue
            if not rows:
                break
            report.rows += len(rows)
            full = len(rows) >= self.batch
            done = await self._handle(rows, cursor, full, report)
            if done > cursor:
                cursor = done
                await self.app.db.write(_cursor_setter(done))
            if not full or done < max(_acctid(r) for r in rows):
                break
        report.cursor = cursor
        if report.calls or report.skipped:
            log.info("asterisk cdr: %s", report.as_dict())
        self.last = report
        return report

    async def ends(self, unique_ids: list[str]) -> dict[str, datetime]:
        """The end Asterisk recorded for each of these channels (uniqueid = channel id; the latest
        `end` of its CDR rows, any row, not only the fallback's), naive UTC; the ones without a row,
        or all when the table cannot be read (logged as for `poll`), are left out."""
        if not unique_ids:
            return {}
        try:
            rows = await asyncio.to_thread(self._read_ends, unique_ids)
        except Exception as exc:
            self._readable(f"{type(exc).__name__}: {exc}".splitlines()[0])
            return {}
        found: dict[str, datetime] = {}
        for unique_id, end in rows:
            try:
                moment = cdr_time(end, self.local_tz)
            except MalformedRow:
                continue
            key = str(unique_id)
            if moment is not None and (key not in found or moment > found[key]):
                found[key] = moment
        return found

    def _read_ends(self, unique_ids: list[str]) -> list[tuple[Any, Any]]:
        if self._engine is None:
            self._engine = create_engine(source_url(self.url), poolclass=NullPool)
        with self._engine.connect() as conn:
            names = list(conn.execute(text(f"SELECT * FROM {self.table} WHERE 1 = 0")).keys())  # noqa: S608
            lower = [n.lower() for n in names]
            quote = conn.dialect.identifier_preparer.quote
            uniqueid, end = (quote(names[lower.index(n)]) for n in ("uniqueid", "end"))
            stmt = text(f"SELECT {uniqueid}, {end} FROM {self.table} WHERE {uniqueid} IN :ids")  # noqa: S608
            stmt = stmt.bindparams(bindparam("ids", expanding=True))
            return [(row[0], row[1]) for row in conn.execute(stmt, {"ids": list(unique_ids)})]

    def _readable(self, state: str) -> None:
        if state == self._state:
            return
        if state:
            log.warning("asterisk cdr: cannot read %s from %s: %s (tried again every %s s)",
                        self.table, self._safe_url(), state, self.poll_seconds)
        elif self._state is not None:
            log.info("asterisk cdr: %s readable again", self.table)
        self._state = state

    def _safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def _read(self, cursor: int) -> tuple[int | None, list[dict[str, Any]]]:
        """In a thread: the highest key and the next batch of rows (column names lower-case, the key
        column as `acctid`)."""
        if self._engine is None:
            self._engine = create_engine(source_url(self.url), poolclass=NullPool)
        with self._engine.connect() as conn:
            key, columns = self._columns(conn)
            max_id = conn.execute(text(f"SELECT max({key}) FROM {self.table}")).scalar()  # noqa: S608
            if max_id is None or int(max_id) < cursor:
                return (None if max_id is None else int(max_id)), []
            result = conn.execute(
                text(f"SELECT * FROM {self.table} WHERE {key} > :after ORDER BY {key} LIMIT :limit"),  # noqa: S608
                {"after": cursor, "limit": self.batch})
            rows = [dict(zip(columns, row, strict=True)) for row in result]
        return int(max_id), rows

    def _columns(self, conn: Any) -> tuple[str, list[str]]:
        """The key column as SQL (quoted if its name needs it: a PostgreSQL column made as "AcctId")
        and the names rows are read under: lower-case, the key as `acctid`."""
        names = list(conn.execute(text(f"SELECT * FROM {self.table} WHERE 1 = 0")).keys())  # noqa: S608
        lower = [n.lower() for n in names]
        key = next((k for k in KEYS if k in lower), "")
        missing = [c for c in REQUIRED if c != "acctid" and c not in lower]
        if not key:
            missing.insert(0, " or ".join(KEYS))
        if missing:
            raise LookupError(f"table {self.table} has no column(s) {', '.join(missing)}")
        quoted = conn.dialect.identifier_preparer.quote(names[lower.index(key)])
        return quoted, ["acctid" if n == key else n for n in lower]

    async def _handle(self, rows: list[dict[str, Any]], cursor: int, full: bool, report: PollReport) -> int:
        """Write the fallback calls of `rows`, and the hotline calls in them that reached Stasis but
        are in no OpenADS record (`_write_unseen`); returns the new cursor (below a call that must
        be read again: the last one while its rows may still be being written, or one the database
        refused for a reason that may pass)."""
        groups: dict[str, _Group] = {}
        for row in rows:
            acctid = _acctid(row)
            fallback = _text(row, "openads_fallback") == "1"
            if not fallback and not _text(row, "openads_did"):
                continue  # not a hotline call's record (a dispatcher's own call, a robot's call)
            try:
                record = cdr_record(row, self.local_tz)
            except MalformedRow as exc:
                log.warning("asterisk cdr: row acctid=%s skipped: %s (%s)", acctid, exc,
                            {k: v for k, v in row.items() if v not in (None, "")})
                report.skipped += 1
                continue
            group = groups.get(record.unique_id)
            if group is None:
                group = groups[record.unique_id] = _Group(FallbackCall(record.unique_id), acctid, acctid, fallback)
            group.last_id = acctid
            group.fallback = group.fallback or fallback  # the fallback's call, whatever came before it
            group.call.cdrs.append(record)
            end = fallback_end(row)
            if end is not None:
                group.call.end = end
        done = _acctid(rows[-1])
        ordered = sorted(groups.values(), key=lambda g: g.first_id)
        if ordered and not full:
            tail = ordered[-1]
            # Asterisk writes a call's records one by one when the caller's channel is gone, the
            # hangup handler's last: a call without it at the very end of the table may be half
            # written. Hold it back once; the next poll takes it as it is.
            if not tail.complete and tail.last_id == done and self._deferred != (tail.call.unique_id, tail.last_id):
                self._deferred = (tail.call.unique_id, tail.last_id)
                report.deferred = tail.call.unique_id
                ordered.pop()
                done = tail.first_id - 1
        reconciler = fallback_cdrs(self.app)
        from models.errors import DomainError

        unseen = await self._unseen([g.call.unique_id for g in ordered if not g.fallback])
        for group in ordered:
            if not group.fallback and group.call.unique_id not in unseen:
                continue  # the app has this call (in the journal, or being handled now)
            try:
                call_id = await (reconciler.record(group.call) if group.fallback else self._write_unseen(group.call))
            except DomainError as exc:
                log.warning("asterisk cdr: fallback call uniqueid %s not recorded: %s", group.call.unique_id, exc)
                report.skipped += 1
                continue
            except Exception:
                log.exception("asterisk cdr: fallback call uniqueid %s: read again next time", group.call.unique_id)
                return max(cursor, group.first_id - 1)
            if call_id is None:
                report.skipped += 1
            else:
                report.calls.append(call_id)
        return max(cursor, done)


    async def _unseen(self, unique_ids: list[str]) -> set[str]:
        """Of these hotline calls' channels (each entered Stasis: the CDR of every call that reached
        the app), the ones no OpenADS process knows: neither held by this app's sessions (a call
        whose end is being written now) nor in the journal. Almost always none."""
        if not unique_ids:
            return set()
        held = self.app.dispatcher.holds_channel
        candidates = [u for u in unique_ids if not held(u)]
        if not candidates:
            return set()

        def known(session: Any) -> set[str]:
            from sqlalchemy import select

            from models.call import Call

            return set(session.scalars(select(Call.channel_id).where(Call.channel_id.in_(candidates))))

        return set(candidates) - await self.app.db.read(known)

    async def _write_unseen(self, group: FallbackCall) -> int | None:
        """A hotline call that reached Stasis and that no process wrote (`openads ari` killed
        between the caller's StasisStart and its registration; the caller gone before anyone saw
        the channel): journaled from its records as abandoned, into the missed-call queue
        (`record_unseen_call`)."""
        starts = [c.start for c in group.cdrs if c.start is not None]
        ends = [c.end for c in group.cdrs if c.end is not None]
        first = group.cdrs[0]
        did = next((c.did for c in group.cdrs if c.did), "")
        start, end = aware_utc(min(starts)), aware_utc(max(ends))  # cdr_record refuses rows without them

        def write(s: Any) -> int:
            from models.services.calls import record_unseen_call

            return record_unseen_call(s, did=did, src=first.source, uniqueid=group.unique_id,
                                      linkedid=first.linked_id or None, start=start, end=end).id

        call_id = await self.app.db.write(write)
        log.warning("asterisk cdr: call uniqueid %s from %s on %s reached the app but was never registered "
                    "(the app stopped meanwhile?): journaled from the CDR as abandoned, call %s", group.unique_id,
                    first.source, did, call_id)
        return call_id


def _acctid(row: Mapping[str, Any]) -> int:
    return int(row["acctid"])


def _get_cursor(session: Any) -> int:
    from models.event_cursor import EventCursor

    cursor = session.get(EventCursor, CURSOR)
    return 0 if cursor is None else int(cursor.last_event_id)


def _cursor_setter(value: int) -> Any:
    return lambda session: _set_cursor(session, value)


def _set_cursor(session: Any, value: int) -> None:
    from models.base import utcnow
    from models.event_cursor import EventCursor

    cursor = session.get(EventCursor, CURSOR)
    if cursor is None:
        session.add(EventCursor(name=CURSOR, last_event_id=value, gaps={}, updated_at=utcnow()))
    else:
        cursor.last_event_id = value
        cursor.updated_at = utcnow()
