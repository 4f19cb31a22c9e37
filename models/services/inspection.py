"""The inspection pack (issue 14 item 2, decision 0038): for one organization and a period, a ZIP
with everything a housing inspector (ГЖИ, ПП 416) asks for, each register as .xlsx and as a
printable PDF, a cover page with the company, the period, the hash-chain head of the ticket
history (models/chain.py) and a SHA-256 manifest of every file (also manifest.txt — the format of
`sha256sum -c` — and manifest.json).

The pack is a list of sections (`SECTIONS`): each is a function `build(ctx: PackContext)` that
reads the database in bounded batches (short read sessions, plain columns, never a month of
tickets as ORM objects) and writes its files through `ctx.table(...)` or `ctx.add_file(...)`.
A section added later (the call statistics per day, issue 14 item 3) is one more function
appended to `SECTIONS`; the cover and the manifest cover whatever the sections wrote.

Requested from the panel, the command line and the API (`request_pack`), built as a background
job by `openads worker` (openads/jobs/inspection.py) or by the command line itself; its file is
downloaded by users of the job's organization who may read reports (`pack_file`), and every
download is logged in the job's result (`record_download`).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import chain
from models.call_stats import daily_call_stats
from models.db import Database
from models.errors import NotFound, PermissionDenied, ValidationFailed
from models.export import CHANNEL_TITLES_RU, iter_journal_xlsx, iter_table_xlsx
from models.housing import House, Premise
from models.interruption_report import hours, month_report, stretch_text, verdict
from models.job import Job, JobKind, JobStatus
from models.organization import Organization, User
from models.outbox import MessageStatus, OutboxAttempt, OutboxMessage
from models.pdf_tables import Column, TablePdf, write_text_pdf
from models.queries import JournalFilter
from models.rating import (
    RATING_OUTCOME_TITLES_RU,
    RATING_SOURCE_TITLES_RU,
    RatingAttempt,
    RatingAttemptOutcome,
    RatingCall,
    RatingCallStatus,
    RatingSource,
    TicketRating,
)
from models.rules import access
from models.rules import interruptions as interruption_rules
from models.rules.call_evidence import BREACH_TITLES_RU
from models.rules.phones import display
from models.rules.ticket_states import STATUS_TITLES_RU
from models.rules.utilities import utility_title
from models.services import recordings as rec_svc
from models.services.jobs import enqueue_job, update_result, visible_job
from models.ticket import Category, Channel, Ticket, TicketHistory, TicketStatus

BATCH = 2000  # rows per read session
VOLUME_ROWS = 5000  # journal rows per PDF volume (about 750 pages)
MAX_DAYS = 366
ROLES = access.RECORDING_LOGS  # who may request and download a pack: admins, managers, inspectors
MUNICIPALITY_PURPOSES = {"municipality_emergency": "о начале аварии", "municipality_emergency_done": "о ликвидации",
                         "municipality_incident": "авария в доме: начало",
                         "municipality_incident_localized": "авария в доме: локализована",
                         "municipality_incident_liquidated": "авария в доме: ликвидирована"}
RESIDENT_PREFIX = "resident_"
RESIDENT_EVENTS_RU = {"resident_registered": "регистрация", "resident_assigned": "назначен исполнитель",
                      "resident_done": "выполнена", "resident_closed": "закрыта",
                      "resident_en_route": "исполнитель выехал", "resident_incident": "авария в доме (всем жителям)",
                      "resident_restored": "авария устранена (всем жителям)"}
MESSAGE_STATUS_RU = {MessageStatus.PENDING: "ожидает отправки", MessageStatus.SENT: "отправлено",
                     MessageStatus.FAILED: "не отправлено"}
DELIVERY_RU = {"queued": "принято шлюзом", "sent": "передано оператору", "delivered": "доставлено",
               "failed": "не доставлено", "unknown": "неизвестно"}
CHANNEL_RU = {"email": "эл. почта", "sms": "SMS", "push": "push", "voice": "голосовой звонок"}
RATING_CALL_STATUS_RU = {RatingCallStatus.FAILED: "попытки исчерпаны", RatingCallStatus.CANCELLED: "отменён"}
DOWNLOADS_KEPT = 200
MANIFEST_TXT = "manifest.txt"
MANIFEST_JSON = "manifest.json"
COVER = "00-титульный-лист.pdf"

Cell = str | int | float | datetime | None


# --- request, access, download log --------------------------------------------------------------------


def period_bounds(day_from: date, day_to: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local days `day_from`..`day_to` inclusive."""
    start = datetime.combine(day_from, time(0), tz).astimezone(UTC)
    end = datetime.combine(day_to + timedelta(days=1), time(0), tz).astimezone(UTC)
    return start, end


def check_period(day_from: date | None, day_to: date | None, today: date) -> tuple[date, date]:
    if day_from is None:
        raise ValidationFailed("укажите начало периода", field="from")
    if day_to is None:
        raise ValidationFailed("укажите конец периода", field="to")
    if day_to < day_from:
        raise ValidationFailed("начало периода позже конца", field="from")
    if (day_to - day_from).days >= MAX_DAYS:
        raise ValidationFailed(f"период не длиннее {MAX_DAYS} дней", field="to")
    if day_from > today:
        raise ValidationFailed("период ещё не начался", field="from")
    return day_from, day_to


def request_pack(session: Session, *, org_id: int, day_from: date | None, day_to: date | None,
                 by: User | None, now: datetime) -> Job:
    """Queue the pack of `org_id` for the local days `day_from`..`day_to`. `by`: who asks (None:
    the command line) — a member of the organization with a reports role (an inspector may: the
    pack only reads). NotFound for another organization, ValidationFailed for a bad period."""
    org = session.get(Organization, org_id)
    if org is None or (by is not None and org_id not in by.organization_ids):
        raise NotFound("организация не найдена", organization_id=org_id)
    if by is not None and by.role not in ROLES:
        raise PermissionDenied("пакет для проверки заказывают администратор, руководитель или проверяющий")
    today = now.astimezone(ZoneInfo(org.timezone)).date()
    day_from, day_to = check_period(day_from, day_to, today)
    filename = f"inspection-{org.id}-{day_from.isoformat()}-{day_to.isoformat()}.zip"
    return enqueue_job(session, org_id=org.id, kind=JobKind.INSPECTION_PACK, by=by, now=now,
                       params={"from": day_from.isoformat(), "to": day_to.isoformat(), "filename": filename})


def pack_job(session: Session, user: User, job_id: int) -> Job:
    """The pack job if `user` may see it: a member of its organization with a reports role (an
    inspector: the packs they asked for; managers: all of the organization's). Else NotFound."""
    job = visible_job(session, user, job_id)
    if job.kind != JobKind.INSPECTION_PACK or user.role not in ROLES \
            or job.organization_id not in user.organization_ids:
        raise NotFound("задание не найдено", job_id=job_id)
    return job


def pack_file(var_dir: Path, job: Job) -> Path:
    """The finished pack's file; NotFound while it is being built or after it expired."""
    if job.status != JobStatus.DONE or not job.result.get("file"):
        raise NotFound("пакет ещё не готов", job_id=job.id)
    root = var_dir.resolve()
    path = (root / str(job.result["file"])).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound("файл пакета удалён по сроку хранения: сформируйте пакет заново", job_id=job.id)
    return path


def record_download(session: Session, job: Job, *, user: User | None, via: str, ip: str | None,
                    now: datetime) -> None:
    """Log a download of the pack in the job's result (who, when, how, from where)."""
    entry = {"at": now.astimezone(UTC).isoformat(), "user_id": user.id if user else None,
             "user": (user.full_name or user.login) if user else "командная строка", "via": via, "ip": ip}
    downloads = list((job.result or {}).get("downloads") or [])[-(DOWNLOADS_KEPT - 1):]
    update_result(session, job, downloads=[*downloads, entry])


# --- building -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackScope:
    org_id: int
    org_name: str
    org_inn: str
    tz: ZoneInfo
    day_from: date
    day_to: date
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    now: datetime

    @property
    def period_ru(self) -> str:
        return f"{self.day_from:%d.%m.%Y} — {self.day_to:%d.%m.%Y}"

    def local(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.tz).strftime("%d.%m.%Y %H:%M")


@dataclass
class PackedFile:
    name: str
    title: str
    size: int
    sha256: str


class _Hashing(io.RawIOBase):
    """A write-only stream into a ZIP member that hashes and counts what passes."""

    def __init__(self, dest: IO[bytes]) -> None:
        self.dest = dest
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.hash.update(data)
        self.size += len(data)
        self.dest.write(data)
        return len(data)


@dataclass
class PackContext:
    """What a section builder gets: the database, the scope, and the ZIP to write into."""

    db: Database
    scope: PackScope
    zip: zipfile.ZipFile
    progress: Callable[[int], None] = lambda _n: None
    files: list[PackedFile] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    tickets: int = 0  # the period's tickets when the build started

    def _member(self, name: str, compress: bool) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self.scope.now.astimezone(self.scope.tz).timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o640 << 16
        return info

    def add_file(self, name: str, title: str, chunks: Iterable[bytes], *, compress: bool = True) -> PackedFile:
        """A file of the pack from `chunks` (streamed into the ZIP, hashed on the way)."""
        with self.zip.open(self._member(name, compress), "w", force_zip64=True) as raw:
            out = _Hashing(raw)
            for chunk in chunks:
                out.write(chunk)
        packed = PackedFile(name, title, out.size, out.hash.hexdigest())
        self.files.append(packed)
        return packed

    def add_pdf(self, name: str, title: str, draw: Callable[[IO[bytes]], None]) -> PackedFile:
        with self.zip.open(self._member(name, True), "w", force_zip64=True) as raw:
            out = _Hashing(raw)
            draw(out)  # type: ignore[arg-type]
        packed = PackedFile(name, title, out.size, out.hash.hexdigest())
        self.files.append(packed)
        return packed

    def table(self, name: str, title: str, columns: Sequence[tuple[str, int]],
              rows: Callable[[], Iterable[Sequence[Cell]]], *, sheet: str | None = None, pdf: bool = True) -> int:
        """One register as `<name>.xlsx` and (`pdf`) `<name>.pdf`. `rows()` is called once per file
        (each call reads the database again in batches: nothing is held); cells: text, whole numbers,
        date-times (shown in the organization's zone). Returns the row count."""
        s = self.scope
        counter = [0]

        def counted() -> Iterator[Sequence[Cell]]:
            for row in rows():
                counter[0] += 1
                yield row

        self.add_file(f"{name}.xlsx", f"{title} (Excel)",
                      iter_table_xlsx((sheet or title)[:31], columns, counted(), tz=s.tz, now=s.now), compress=False)
        if not pdf:
            self.counts[name] = counter[0]
            return counter[0]
        count = self.pdf_volumes(name, title, columns, ([self.text(v) for v in row] for row in rows()))
        self.counts[name] = count
        return count

    def pdf_volumes(self, name: str, title: str, columns: Sequence[tuple[str, int]], rows: Iterator[list[str]], *,
                    expected: int | None = None, footer: str = "") -> int:
        """A register as PDF in volumes of `VOLUME_ROWS` rows (as a paper journal is kept): each
        volume's pages are held until its file is written, so volumes bound the memory whatever the
        period's size. `expected` rows known in advance: every volume is named `<name>-том-NN.pdf`
        when there will be several; otherwise the first is `<name>.pdf` and the next `-том-02` on.
        Returns the row count."""
        several = expected is not None and expected > VOLUME_ROWS
        pending = next(rows, None)
        volume = written = 0
        while volume == 0 or pending is not None:
            volume += 1
            numbered = several or volume > 1

            def draw(out: IO[bytes], volume: int = volume, numbered: bool = numbered, first: int = written + 1) -> None:
                nonlocal pending, written
                pdf = TablePdf(out, title=title + (f", том {volume}" if numbered else ""), subtitle=self.subtitle(),
                               columns=[Column(t, w) for t, w in columns],
                               footer=footer + (f" Том {volume}: записи с {first}-й." if numbered else ""))
                while pending is not None and pdf.rows < VOLUME_ROWS:
                    pdf.add(pending)
                    written += 1
                    pending = next(rows, None)
                pdf.finish()

            self.add_pdf(f"{name}-том-{volume:02d}.pdf" if numbered else f"{name}.pdf",
                         f"{title} (PDF)" + (f", том {volume}" if numbered else ""), draw)
        return written

    def subtitle(self) -> str:
        s = self.scope
        return f"{s.org_name}{', ИНН ' + s.org_inn if s.org_inn else ''} · период {s.period_ru} ({s.tz.key})"

    def text(self, value: Cell) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            return self.scope.local(value)
        if isinstance(value, float):
            return f"{value:.2f}".replace(".", ",")
        return str(value)


Section = Callable[[PackContext], None]


# --- shared reading helpers ---------------------------------------------------------------------------


class _Names:
    """id → name of users, houses, premises, categories: looked up per batch, cached (bounded by
    the organization's staff and housing stock, not by the number of tickets)."""

    def __init__(self) -> None:
        self.users: dict[int, str] = {}
        self.houses: dict[int, str] = {}
        self.premises: dict[int, str] = {}
        self.categories: dict[int, tuple[str, bool]] = {}

    def load(self, session: Session, *, users: Iterable[int | None] = (), houses: Iterable[int | None] = (),
             premises: Iterable[int | None] = (), categories: Iterable[int | None] = ()) -> None:
        def missing(ids: Iterable[int | None], cache: dict[int, Any]) -> list[int]:
            return sorted({i for i in ids if i is not None} - cache.keys())

        if ids := missing(users, self.users):
            for uid, name, login in session.execute(select(User.id, User.full_name, User.login).where(User.id.in_(ids))):
                self.users[uid] = name or login
        if ids := missing(houses, self.houses):
            self.houses.update((hid, address) for hid, address in session.execute(
                select(House.id, House.address).where(House.id.in_(ids))))
        if ids := missing(premises, self.premises):
            for pid, kind, number in session.execute(
                    select(Premise.id, Premise.kind, Premise.number).where(Premise.id.in_(ids))):
                self.premises[pid] = f"{kind} {number}".strip()
        if ids := missing(categories, self.categories):
            for cid, name, emergency in session.execute(
                    select(Category.id, Category.name, Category.is_emergency).where(Category.id.in_(ids))):
                self.categories[cid] = (name, emergency)

    def user(self, uid: int | None) -> str:
        return self.users.get(uid, "") if uid is not None else ""


_TICKET_COLUMNS = (Ticket.id, Ticket.number, Ticket.registered_at, Ticket.reporter_name, Ticket.reporter_phone,
                   Ticket.house_id, Ticket.premise_id, Ticket.category_id, Ticket.description, Ticket.is_emergency,
                   Ticket.status, Ticket.registered_by_id, Ticket.executor_id, Ticket.localize_due_at, Ticket.due_at,
                   Ticket.localized_at, Ticket.resolved_at, Ticket.closed_at, Ticket.closed_by_id, Ticket.next_due_at,
                   Ticket.channel, Ticket.damage_detected_at, Ticket.municipality_notified_at, Ticket.rating)


def _ticket_batches(db: Database, scope: PackScope, names: _Names, *conditions: Any) -> Iterator[tuple[Session, list[Any]]]:
    """The period's tickets in registration order, `BATCH` at a time, each batch in its own read
    session (yielded with it, for the batch's own look-ups), keyset on (registered_at, id)."""
    after: tuple[datetime, int] | None = None
    while True:
        with db.read() as s:
            stmt = (select(*_TICKET_COLUMNS)
                    .where(Ticket.organization_id == scope.org_id, Ticket.registered_at >= scope.start,
                           Ticket.registered_at < scope.end, *conditions)
                    .order_by(Ticket.registered_at, Ticket.id).limit(BATCH))
            if after is not None:
                stmt = stmt.where((Ticket.registered_at > after[0])
                                  | ((Ticket.registered_at == after[0]) & (Ticket.id > after[1])))
            rows = list(s.execute(stmt))
            if not rows:
                return
            names.load(s, users=[u for r in rows for u in (r.registered_by_id, r.executor_id, r.closed_by_id)],
                       houses=[r.house_id for r in rows], premises=[r.premise_id for r in rows],
                       categories=[r.category_id for r in rows])
            yield s, rows
            after = (rows[-1].registered_at, rows[-1].id)
        if len(rows) < BATCH:
            return


def _marks(session: Session, ticket_ids: list[int], names: _Names) -> dict[int, dict[str, tuple[datetime, str]]]:
    """Who marked each ticket localised and done (the last such history row): id → {"localized":
    (at, who), "done": (at, who)}."""
    out: dict[int, dict[str, tuple[datetime, str]]] = {}
    rows = list(session.execute(
        select(TicketHistory.ticket_id, TicketHistory.action, TicketHistory.to_status, TicketHistory.at,
               TicketHistory.user_id)
        .where(TicketHistory.ticket_id.in_(ticket_ids),
               (TicketHistory.action == "localized")
               | ((TicketHistory.action == "status") & (TicketHistory.to_status == TicketStatus.DONE.value)))
        .order_by(TicketHistory.id)))
    names.load(session, users=[r.user_id for r in rows])
    for r in rows:
        key = "localized" if r.action == "localized" else "done"
        out.setdefault(r.ticket_id, {})[key] = (r.at, names.user(r.user_id) or "система")
    return out


def _reasons(session: Session, ticket_ids: list[int], names: _Names, scope: PackScope) -> dict[int, list[str]]:
    """The reasons staff entered on each ticket's changes (status, edits, deadline moves)."""
    out: dict[int, list[str]] = {}
    rows = list(session.execute(
        select(TicketHistory.ticket_id, TicketHistory.at, TicketHistory.user_id, TicketHistory.reason)
        .where(TicketHistory.ticket_id.in_(ticket_ids), TicketHistory.reason != "",
               TicketHistory.action != "rated")
        .order_by(TicketHistory.id)))
    names.load(session, users=[r.user_id for r in rows])
    for r in rows:
        out.setdefault(r.ticket_id, []).append(f"{scope.local(r.at)} {names.user(r.user_id) or 'система'}: {r.reason}")
    return out


def _address(names: _Names, row: Any) -> str:
    return names.houses.get(row.house_id, "") if row.house_id is not None else ""


# --- the sections -------------------------------------------------------------------------------------

JOURNAL_PDF_COLUMNS = (
    ("№ заявки", 22), ("Регистра- ция, канал", 20), ("Заявитель, телефон", 24), ("Адрес", 31),
    ("Поме- щение", 13), ("Категория", 27), ("Описание", 37), ("Зарегистри- ровал", 21), ("Исполни- тель", 21),
    ("Сроки", 23), ("Локализация (когда, кто)", 22), ("Выполнение (когда, кто)", 22), ("Статус и итог", 22),
)


def journal_section(ctx: PackContext) -> None:
    """The journal of requests (ПП 416 п. 13): the journal's own .xlsx export, and a PDF in the
    statutory layout with the localisation and completion marks (who, when) from the history."""
    s = ctx.scope
    f = JournalFilter(organization_id=s.org_id, registered_from=s.start, registered_to=s.end)
    ctx.add_file("01-журнал-заявок.xlsx", "Журнал заявок (Excel)", iter_journal_xlsx(ctx.db, [s.org_id], f, s.now),
                 compress=False)
    names = _Names()
    count = 0

    def journal_rows() -> Iterator[list[str]]:
        nonlocal count
        for session, rows in _ticket_batches(ctx.db, s, names):
            marks = _marks(session, [r.id for r in rows], names)
            for r in rows:
                category, _emergency = names.categories.get(r.category_id, ("", False))
                mark = marks.get(r.id, {})
                localized = mark.get("localized")
                done = mark.get("done")
                closed = ""
                if r.closed_at is not None:
                    closed = f"\nзакрыта {s.local(r.closed_at)}" + (f", {names.user(r.closed_by_id)}"
                                                                     if r.closed_by_id else "")
                deadlines = (f"повреждение обнаружено {s.local(r.damage_detected_at)}\n"
                             if r.damage_detected_at else "") + \
                    (f"локализовать до {s.local(r.localize_due_at)}\n" if r.localize_due_at else "") + \
                    f"выполнить до {s.local(r.due_at)}"
                extra = (f"\nОМСУ уведомлено {s.local(r.municipality_notified_at)}"
                         if r.municipality_notified_at else "") + (f"\nоценка {r.rating}" if r.rating else "")
                yield [
                    r.number, f"{s.local(r.registered_at)}\n{CHANNEL_TITLES_RU.get(Channel(r.channel), '').lower()}",
                    "\n".join(p for p in (r.reporter_name, display(r.reporter_phone) if r.reporter_phone else "") if p),
                    _address(names, r), names.premises.get(r.premise_id, "") if r.premise_id else "",
                    category + (" (аварийная)" if r.is_emergency else ""), r.description,
                    names.user(r.registered_by_id) or ("система" if r.registered_by_id is None else ""),
                    names.user(r.executor_id), deadlines,
                    f"{s.local(localized[0])}, {localized[1]}" if localized else s.local(r.localized_at),
                    f"{s.local(done[0])}, {done[1]}" if done else s.local(r.resolved_at),
                    STATUS_TITLES_RU.get(TicketStatus(r.status), str(r.status)) + closed + extra,
                ]
            count += len(rows)
            ctx.progress(len(rows))

    ctx.pdf_volumes("01-журнал-заявок", "Журнал учёта заявок (обращений) аварийно-диспетчерской службы",
                    JOURNAL_PDF_COLUMNS, journal_rows(), expected=ctx.tickets,
                    footer="Отметки о локализации и выполнении — из истории заявки (кто и когда их внёс).")
    ctx.counts["journal"] = count


BREACH_COLUMNS = (("№ заявки", 17), ("Регистрация", 17), ("Адрес", 34), ("Категория", 24), ("Нарушение", 22),
                  ("Срок", 17), ("Фактически", 17), ("Исполнитель", 20), ("Причины, указанные сотрудниками", 50))


def breaches_section(ctx: PackContext) -> None:
    """Late localisation and overdue repairs of the period's tickets, with the actual times and the
    reasons staff entered on the ticket's changes."""
    s = ctx.scope
    late_localisation = Ticket.localize_due_at.is_not(None) & (
        (Ticket.localized_at > Ticket.localize_due_at)
        | (Ticket.localized_at.is_(None) & (Ticket.localize_due_at < s.now)))
    late_repair = (Ticket.resolved_at > Ticket.due_at) | (
        Ticket.resolved_at.is_(None) & (Ticket.due_at < s.now)
        & Ticket.status.not_in((TicketStatus.CANCELLED, TicketStatus.REJECTED)))

    def rows() -> Iterator[Sequence[Cell]]:
        names = _Names()
        for session, batch in _ticket_batches(ctx.db, s, names, late_localisation | late_repair):
            reasons = _reasons(session, [r.id for r in batch], names, s)
            for r in batch:
                category = names.categories.get(r.category_id, ("", False))[0]
                why = "\n".join(reasons.get(r.id, [])) or "не указаны"
                common = (r.number, r.registered_at, _address(names, r), category)
                if r.localize_due_at is not None and (
                        (r.localized_at is not None and r.localized_at > r.localize_due_at)
                        or (r.localized_at is None and r.localize_due_at < s.now)):
                    yield (*common, "локализация позже срока", r.localize_due_at,
                           r.localized_at if r.localized_at is not None else "не локализована",
                           names.user(r.executor_id), why)
                if (r.resolved_at is not None and r.resolved_at > r.due_at) or (
                        r.resolved_at is None and r.due_at < s.now
                        and r.status not in (TicketStatus.CANCELLED, TicketStatus.REJECTED)):
                    yield (*common, "выполнение позже срока", r.due_at,
                           r.resolved_at if r.resolved_at is not None else "не выполнена",
                           names.user(r.executor_id), why)

    ctx.table("02-нарушения-сроков", "Нарушения сроков локализации и устранения", BREACH_COLUMNS, rows,
              sheet="Нарушения")


def _messages(ctx: PackContext, condition: Any) -> Iterator[tuple[Any, str]]:
    """The period's outbox messages of the organization matching `condition`, oldest first, in
    batches; with their ticket's number."""
    s = ctx.scope
    after = 0
    while True:
        with ctx.db.read() as session:
            batch = list(session.execute(
                select(OutboxMessage.id, OutboxMessage.created_at, OutboxMessage.purpose, OutboxMessage.channel,
                       OutboxMessage.recipient, OutboxMessage.subject, OutboxMessage.body, OutboxMessage.status,
                       OutboxMessage.sent_at, OutboxMessage.attempts, OutboxMessage.last_error,
                       OutboxMessage.provider_message_id, OutboxMessage.delivery_status,
                       OutboxMessage.delivery_checked_at, OutboxMessage.ticket_id, Ticket.number)
                .outerjoin(Ticket, Ticket.id == OutboxMessage.ticket_id)
                .where(OutboxMessage.organization_id == s.org_id, OutboxMessage.created_at >= s.start,
                       OutboxMessage.created_at < s.end, OutboxMessage.id > after, condition)
                .order_by(OutboxMessage.id).limit(BATCH)))
        yield from ((r, r.number or "") for r in batch)
        if len(batch) < BATCH:
            return
        after = batch[-1].id


def _delivery(r: Any) -> str:
    parts = [MESSAGE_STATUS_RU.get(MessageStatus(r.status), str(r.status))]
    if r.attempts:
        parts.append(f"попыток: {r.attempts}")
    if r.last_error:
        parts.append(f"ошибка: {r.last_error}")
    return "; ".join(parts)


MUNICIPALITY_COLUMNS = (("№ заявки", 17), ("Создано", 17), ("Вид", 16), ("Получатель", 28), ("Тема", 30),
                        ("Полный текст", 80), ("Отправлено", 17), ("Результат отправки и попытки", 34))


def municipality_section(ctx: PackContext) -> None:
    """Notices to the municipality (ОМСУ / ЕДДС) with their full text, recipient, time and result
    (every sending attempt with its time and the server's answer)."""
    def rows() -> Iterator[Sequence[Cell]]:
        batch: list[tuple[Any, str]] = []
        for item in _messages(ctx, OutboxMessage.purpose.in_(list(MUNICIPALITY_PURPOSES))):
            batch.append(item)
            if len(batch) >= BATCH:
                yield from _with_attempts(ctx, batch)
                batch = []
        yield from _with_attempts(ctx, batch)

    ctx.table("03-уведомления-омсу", "Уведомления ОМСУ / ЕДДС об авариях", MUNICIPALITY_COLUMNS, rows,
              sheet="Уведомления ОМСУ")


def _with_attempts(ctx: PackContext, batch: list[tuple[Any, str]]) -> Iterator[Sequence[Cell]]:
    if not batch:
        return
    attempts: dict[int, list[str]] = {}
    with ctx.db.read() as session:
        for message_id, at, ok, detail in session.execute(
                select(OutboxAttempt.message_id, OutboxAttempt.at, OutboxAttempt.ok, OutboxAttempt.detail)
                .where(OutboxAttempt.message_id.in_([r.id for r, _n in batch])).order_by(OutboxAttempt.id)):
            attempts.setdefault(message_id, []).append(
                f"{ctx.scope.local(at)} {'успешно' if ok else 'ошибка'}{': ' + detail if detail else ''}")
    for r, number in batch:
        result = "\n".join([_delivery(r), *attempts.get(r.id, [])])
        yield (number, r.created_at, MUNICIPALITY_PURPOSES.get(r.purpose, r.purpose), r.recipient, r.subject,
               r.body, r.sent_at, result)


RESIDENT_COLUMNS = (("№ заявки", 17), ("Создано", 17), ("Событие", 18), ("Канал", 12), ("Получатель", 24),
                    ("Текст", 70), ("Отправлено", 17), ("Результат отправки", 26), ("Отчёт о доставке", 26))


def residents_section(ctx: PackContext) -> None:
    """Notifications to residents: channel, recipient, text, the sending and the delivery report."""
    def rows() -> Iterator[Sequence[Cell]]:
        for r, number in _messages(ctx, OutboxMessage.purpose.startswith(RESIDENT_PREFIX)):
            report = ""
            if r.delivery_status:
                report = DELIVERY_RU.get(r.delivery_status, r.delivery_status)
                if r.delivery_checked_at is not None:
                    report += f" (проверено {ctx.scope.local(r.delivery_checked_at)})"
                if r.provider_message_id:
                    report += f", ид. {r.provider_message_id}"
            text = f"{r.subject}\n{r.body}" if r.subject else r.body
            yield (number, r.created_at, RESIDENT_EVENTS_RU.get(r.purpose, r.purpose),
                   CHANNEL_RU.get(str(r.channel), str(r.channel)), r.recipient, text, r.sent_at, _delivery(r), report)

    # Excel only: two or three messages a ticket (60 000–90 000 rows a month) are searched, not printed,
    # and drawing them would double the pack's time (decision 0038).
    ctx.table("04-уведомления-жителей", "Уведомления жителей", RESIDENT_COLUMNS, rows, sheet="Уведомления жителей",
              pdf=False)


RATING_COLUMNS = (("№ заявки", 17), ("Оценка", 8), ("Когда", 17), ("Как получена", 26), ("Кто внёс", 22),
                  ("Исполнитель", 22), ("Расшифровка ответа", 50))
ATTEMPT_COLUMNS = (("№ заявки", 17), ("Попытка", 9), ("Начата", 17), ("Окончена", 17), ("Результат", 28),
                   ("Распознанная оценка", 12), ("Ошибка", 40))
NO_RATING_COLUMNS = (("№ заявки", 17), ("Итог", 20), ("Когда", 17), ("Попыток", 9), ("Причина", 60))


def ratings_section(ctx: PackContext) -> None:
    """Ratings received, every rating call attempt, and rating calls that ended without a rating
    with the recorded reason."""
    s = ctx.scope

    def batches(stmt: Any, key: Any) -> Iterator[Any]:
        after = 0
        while True:
            with ctx.db.read() as session:
                rows = list(session.execute(stmt.where(key > after).order_by(key).limit(BATCH)))
                names = _Names()
                yield from ((r, names, session) for r in rows)
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

    def ratings() -> Iterator[Sequence[Cell]]:
        stmt = (select(TicketRating.id, Ticket.number, TicketRating.value, TicketRating.rated_at, TicketRating.source,
                       TicketRating.rated_by_id, TicketRating.executor_id, TicketRating.transcript)
                .join(Ticket, Ticket.id == TicketRating.ticket_id)
                .where(TicketRating.organization_id == s.org_id, TicketRating.rated_at >= s.start,
                       TicketRating.rated_at < s.end))
        for r, names, session in batches(stmt, TicketRating.id):
            names.load(session, users=[r.rated_by_id, r.executor_id])
            yield (r.number, r.value, r.rated_at, RATING_SOURCE_TITLES_RU.get(RatingSource(r.source), str(r.source)),
                   names.user(r.rated_by_id) or ("робот" if r.rated_by_id is None else ""),
                   names.user(r.executor_id), r.transcript)

    def attempts() -> Iterator[Sequence[Cell]]:
        stmt = (select(RatingAttempt.id, Ticket.number, RatingAttempt.number.label("n"), RatingAttempt.started_at,
                       RatingAttempt.ended_at, RatingAttempt.outcome, RatingAttempt.recognized_value,
                       RatingAttempt.error)
                .join(Ticket, Ticket.id == RatingAttempt.ticket_id)
                .where(RatingAttempt.organization_id == s.org_id, RatingAttempt.started_at >= s.start,
                       RatingAttempt.started_at < s.end))
        for r, _names, _session in batches(stmt, RatingAttempt.id):
            outcome = RATING_OUTCOME_TITLES_RU.get(RatingAttemptOutcome(r.outcome), str(r.outcome)) \
                if r.outcome else "идёт"
            yield (r.number, r.n, r.started_at, r.ended_at, outcome, r.recognized_value, r.error)

    def no_rating() -> Iterator[Sequence[Cell]]:
        stmt = (select(RatingCall.id, Ticket.number, RatingCall.status, RatingCall.finished_at, RatingCall.attempts,
                       RatingCall.cancel_reason, RatingCall.last_outcome)
                .join(Ticket, Ticket.id == RatingCall.ticket_id)
                .where(RatingCall.organization_id == s.org_id,
                       RatingCall.status.in_((RatingCallStatus.FAILED, RatingCallStatus.CANCELLED)),
                       RatingCall.finished_at >= s.start, RatingCall.finished_at < s.end))
        for r, _names, _session in batches(stmt, RatingCall.id):
            reason = r.cancel_reason or (
                "последняя попытка: " + RATING_OUTCOME_TITLES_RU.get(RatingAttemptOutcome(r.last_outcome), "")
                if r.last_outcome else "не указана")
            yield (r.number, RATING_CALL_STATUS_RU.get(RatingCallStatus(r.status), str(r.status)), r.finished_at,
                   r.attempts, reason)

    ctx.table("05-оценки", "Оценки жителей", RATING_COLUMNS, ratings, sheet="Оценки")
    ctx.table("06-попытки-оценки", "Звонки робота за оценкой: все попытки", ATTEMPT_COLUMNS, attempts,
              sheet="Попытки")
    ctx.table("07-оценка-не-получена", "Оценка не получена: причины", NO_RATING_COLUMNS, no_rating,
              sheet="Без оценки")


def recordings_section(ctx: PackContext) -> None:
    """The recording access log and the purge log of the period (models/services/recordings.py)."""
    s = ctx.scope
    names = {s.org_id: s.org_name}
    columns_access = rec_svc.ACCESS_COLUMNS[1:]
    columns_purge = rec_svc.PURGE_COLUMNS[1:]

    def accesses() -> Iterator[Sequence[Cell]]:
        with ctx.db.read() as session:
            rows = rec_svc.access_log(session, org_ids=[s.org_id], since=s.start, until=s.end, limit=None)
        for r in reversed(rows):
            yield rec_svc.access_cells(r, names)[1:]

    def purges() -> Iterator[Sequence[Cell]]:
        with ctx.db.read() as session:
            rows = rec_svc.purge_log(session, org_ids=[s.org_id], since=s.start, until=s.end, limit=None)
        for r in reversed(rows):
            yield rec_svc.purge_cells(r, names)[1:]

    ctx.table("08-доступ-к-записям", "Журнал доступа к записям разговоров", columns_access, accesses,
              sheet="Доступ к записям")
    ctx.table("09-удаление-записей", "Журнал удаления записей разговоров", columns_purge, purges,
              sheet="Удаление записей")


CALL_DAY_COLUMNS = (
    ("День", 12), ("Звонков", 9), ("Принято", 9), ("Принято за 5 мин", 11), ("Доля за 5 мин, %", 11),
    ("Пропущено (номеров)", 12), ("Перезвон за 10 мин", 11), ("Житель позвонил сам за 10 мин", 13),
    ("Перезвон позже срока", 11), ("Не перезвонили", 11), ("Ожидают перезвона", 11), ("Попыток перезвона", 11),
    ("Голосовых сообщений", 11), ("Из них не прослушаны за 10 мин", 14),
)
CALL_BREACH_COLUMNS = (
    ("Нарушение", 26), ("Номер жителя", 16), ("Звонок поступил", 16), ("Срок", 16), ("Фактически", 16),
    ("Позже срока, мин", 10), ("Кто", 24), ("Причина, записанная диспетчером", 40),
)


def calls_section(ctx: PackContext) -> None:
    """Call handling per day (ПП 416: answered within 5 minutes, missed calls called back within 10,
    voice messages reviewed within 10) and every breach with its actual times (models/call_stats.py)."""
    s = ctx.scope

    def stats() -> Any:
        with ctx.db.read() as session:
            return daily_call_stats(session, org_id=s.org_id, start=s.day_from, end=s.day_to, now=s.now)

    def day_rows() -> Iterator[Sequence[Cell]]:
        for d in stats().days:
            share = d.answered_in_5min_share
            yield (d.day.strftime("%d.%m.%Y"), d.calls, d.answered, d.answered_in_5min,
                   "—" if share is None else f"{share * 100:.1f}", d.missed, d.callback_in_time, d.recall_in_time,
                   d.called_back_late, d.not_called_back, d.awaiting_callback, d.attempts, d.voice_messages,
                   d.voice_messages_reviewed_late)

    def breach_rows() -> Iterator[Sequence[Cell]]:
        names = _Names()
        breaches = stats().breaches
        with ctx.db.read() as session:
            names.load(session, users=[b.user_id for b in breaches])
        for b in breaches:
            late = b.late_seconds
            yield (BREACH_TITLES_RU[b.kind], display(b.phone) if b.phone else "скрыт", b.started_at,
                   b.deadline_at, b.actual_at if b.actual_at is not None else "не было",
                   "" if late is None else -(-late // 60), names.user(b.user_id), b.note or "")

    ctx.table("10-звонки-по-дням", "Обработка звонков по дням", CALL_DAY_COLUMNS, day_rows, sheet="Звонки по дням")
    ctx.table("11-нарушения-по-звонкам", "Нарушения сроков ответа, перезвона и прослушивания", CALL_BREACH_COLUMNS,
              breach_rows, sheet="Нарушения по звонкам")


INTERRUPTION_COLUMNS = (
    ("Месяц", 14), ("Дом", 40), ("Ресурс", 18), ("Перерывы (местное время)", 44), ("Всего за месяц, ч", 11),
    ("Самый долгий, ч", 11), ("Допустимо", 24), ("Дольше допустимого", 11), ("Сверх нормы, ч", 11),
    ("Снижение платы, %", 11), ("Итог", 13),
)


def interruptions_section(ctx: PackContext) -> None:
    """Interruptions of utilities per house in each billing month the period touches, against the
    allowed ones of ПП 354 Appendix 1 or the organization's own (regulations D5,
    models/interruption_report.py): whole months, as the fee is recomputed per month."""
    s = ctx.scope

    def rows() -> Iterator[Sequence[Cell]]:
        month = s.day_from.replace(day=1)
        while month <= s.day_to:
            with ctx.db.read() as session:
                report = month_report(session, org_ids=[s.org_id], month=month, now=s.now)
            for r in report.rows:
                led = r.ledger
                yield (interruption_rules.month_title(month), r.address, utility_title(led.utility),
                       "; ".join(stretch_text(st, s.tz) for st in led.stretches), hours(led.total_hours),
                       hours(led.longest_hours), interruption_rules.format_limit(led.limit), led.singles_over,
                       hours(led.hours_over), float(led.fee_reduction_percent), verdict(led))
            month = (month + timedelta(days=32)).replace(day=1)

    ctx.table("12-перерывы-в-подаче-услуг", "Перерывы в подаче коммунальных услуг по месяцам (ПП № 354, прил. 1)",
              INTERRUPTION_COLUMNS, rows, sheet="Перерывы в подаче услуг")


# The pack's registers, in order; the cover and the manifest include whatever they write.
SECTIONS: list[tuple[str, Section]] = [
    ("journal", journal_section),
    ("breaches", breaches_section),
    ("municipality", municipality_section),
    ("residents", residents_section),
    ("ratings", ratings_section),
    ("recordings", recordings_section),
    ("calls", calls_section),
    ("interruptions", interruptions_section),
]


def load_scope(db: Database, org_id: int, day_from: date, day_to: date, now: datetime) -> PackScope:
    with db.read() as s:
        org = s.get(Organization, org_id)
        if org is None:
            raise NotFound("организация не найдена", organization_id=org_id)
        tz = ZoneInfo(org.timezone)
        start, end = period_bounds(day_from, day_to, tz)
        return PackScope(org.id, org.name, org.inn or "", tz, day_from, day_to, start, end, now)


def count_tickets(db: Database, scope: PackScope) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count(Ticket.id)).where(
            Ticket.organization_id == scope.org_id, Ticket.registered_at >= scope.start,
            Ticket.registered_at < scope.end)) or 0)


def chain_anchor(db: Database, scope: PackScope) -> dict[str, Any]:
    """The history chain's head now (what `openads audit verify` reports) and the last link
    written before the period's end."""
    with db.read() as s:
        conn = s.connection()
        seq, last = chain.chain_heads(conn, scope.org_id).get(chain.TICKET_HISTORY, (0, chain.GENESIS))
        at_end = conn.execute(
            select(TicketHistory.chain_seq, TicketHistory.chain_hash)
            .where(TicketHistory.organization_id == scope.org_id, TicketHistory.at < scope.end)
            .order_by(TicketHistory.chain_seq.desc()).limit(1)).one_or_none()
    return {"head_seq": seq, "head_hash": last,
            "period_end_seq": at_end[0] if at_end else 0, "period_end_hash": at_end[1] if at_end else chain.GENESIS}


def build_pack(db: Database, *, org_id: int, day_from: date, day_to: date, now: datetime, path: Path,
               requested_by: str = "", progress: Callable[[int, int], None] | None = None,
               sections: Sequence[tuple[str, Section]] | None = None) -> dict[str, Any]:
    """Write the pack to `path` (atomically: a `.part` file renamed at the end). `progress(done,
    total)` counts the period's tickets twice (the journal's PDF and the breaches pass) plus one per
    section. Returns the result kept on the job: the file's size and hash, the manifest, counts,
    the chain head."""
    from models.files import open_private

    scope = load_scope(db, org_id, day_from, day_to, now)
    tickets = count_tickets(db, scope)
    chosen = list(SECTIONS if sections is None else sections)
    total = tickets + len(chosen) + 1
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(min(done, total), total)

    tmp = path.with_name(path.name + ".part")
    try:
        with open_private(tmp) as raw, zipfile.ZipFile(raw, "w", allowZip64=True) as zf:
            ctx = PackContext(db, scope, zf, progress=step, tickets=tickets)
            for _name, build in chosen:
                build(ctx)
                step(1)
            anchor = chain_anchor(db, scope)
            _cover(ctx, anchor, requested_by, tickets)
            manifest = [{"name": f.name, "title": f.title, "size": f.size, "sha256": f.sha256} for f in ctx.files]
            txt = "".join(f"{f['sha256']}  {f['name']}\n" for f in manifest)
            meta = {"organization": {"id": scope.org_id, "name": scope.org_name, "inn": scope.org_inn},
                    "period": {"from": day_from.isoformat(), "to": day_to.isoformat(), "timezone": scope.tz.key},
                    "generated_at": now.astimezone(UTC).isoformat(), "chain": anchor, "files": manifest}
            ctx.add_file(MANIFEST_TXT, "Контрольные суммы SHA-256", [txt.encode()])
            ctx.add_file(MANIFEST_JSON, "Контрольные суммы SHA-256 (JSON)",
                         [json.dumps(meta, ensure_ascii=False, indent=1).encode()])
        digest = hashlib.sha256()
        with open(tmp, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    step(1)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest(), "tickets": tickets, "counts": ctx.counts,
            "files": manifest, "chain": anchor, "from": day_from.isoformat(), "to": day_to.isoformat()}


def _cover(ctx: PackContext, anchor: dict[str, Any], requested_by: str, tickets: int) -> None:
    s = ctx.scope
    listing = "\n".join(f"{f.name} — {f.title}, {f.size} байт\nSHA-256 {f.sha256}" for f in ctx.files)
    paragraphs = [
        ("Организация", s.org_name + (f", ИНН {s.org_inn}" if s.org_inn else "")),
        ("Период", f"{s.period_ru} включительно, время — {s.tz.key}"),
        ("Сформирован", f"{s.local(s.now)}" + (f", по запросу: {requested_by}" if requested_by else "")),
        ("Заявок за период", str(tickets)),
        ("Цепочка хешей истории заявок (защита от изменения задним числом)",
         f"голова цепочки на момент формирования: запись № {anchor['head_seq']}\n{anchor['head_hash']}\n"
         f"последняя запись до конца периода: № {anchor['period_end_seq']}\n{anchor['period_end_hash']}\n"
         "Проверка: «openads audit verify --org " + str(s.org_id) + "» должна показать тот же хеш или цепочку, "
         "продолжающую эту запись."),
        ("Состав пакета и контрольные суммы SHA-256", listing),
        ("", "Контрольные суммы этого листа и всех файлов пакета — в manifest.txt (проверка: sha256sum -c "
             "manifest.txt) и manifest.json."),
    ]
    ctx.add_pdf(COVER, "Титульный лист", lambda out: write_text_pdf(
        out, title="Пакет документов для проверки ГЖИ (ПП № 416)", paragraphs=paragraphs))
