"""Benchmark data: 1 000 000 tickets of two organizations, bulk-loaded into SQLite or PostgreSQL.

The data set is deterministic (one seed), so SQLite and PostgreSQL hold the same rows. The schema
comes from the Alembic migrations; the reference rows (organizations, users, houses, premises,
residents, categories, incidents) go in through SQLAlchemy Core with explicit ids, the tickets by
`executemany` in one transaction (SQLite) or `COPY` (PostgreSQL), with the ticket indexes dropped
during the load and rebuilt afterwards. A populated database is reused: `prepare()` only loads
when the tickets table holds fewer rows than asked for.

Run alone: `python -m bench.data sqlite|postgresql [N]`.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine, make_url

from models.housing import Account, House, Premise, Resident, ResidentPhone
from models.migrate import upgrade
from models.organization import ApiToken, DispatchCentre, Hotline, Membership, Organization, Role, User
from models.rules.catalog import DEFAULT_CATEGORIES
from models.rules.deadlines import DeadlineRule, compute_deadlines
from models.ticket import Category, Incident, Ticket, TicketCounter

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("BENCH_DIR", ROOT / "var" / "bench"))
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DEFAULT_TICKETS = 1_000_000
SEED = 20260101
YEARS = 3
BENCH_LOGIN = "bench.dispatcher.a"
# Not a secret: a fixed bearer token of the bench dispatcher, only in the bench databases.
BENCH_TOKEN = "oads_bench_token_not_a_secret_0000000000000000"
# Not a secret: the bench dispatcher's password (given by `give_bench_password`), only in the bench databases.
BENCH_PASSWORD = "bench-dispatcher-password"

STREETS = (
    "ул. Ленина", "ул. Гагарина", "пр. Мира", "ул. Советская", "ул. Молодёжная", "ул. Школьная",
    "ул. Садовая", "ул. Лесная", "ул. Набережная", "пр. Победы", "ул. Строителей", "ул. Заводская",
    "ул. Пушкина", "ул. Чехова", "ул. Кирова", "ул. Комсомольская", "ул. Октябрьская", "бул. Энтузиастов",
    "ул. Первомайская", "ул. Полевая",
)
LAST = ("Иванов", "Петров", "Сидоров", "Смирнов", "Кузнецов", "Попов", "Васильев", "Соколов", "Михайлов",
        "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов")
FIRST = ("Иван", "Пётр", "Сергей", "Андрей", "Алексей", "Дмитрий", "Николай", "Михаил", "Владимир", "Олег")
FIRST_F = ("Анна", "Мария", "Елена", "Ольга", "Татьяна", "Наталья", "Ирина", "Светлана", "Галина", "Нина")
PATRON = ("Иванович", "Петрович", "Сергеевич", "Андреевич", "Николаевич", "Михайлович", "Владимирович")
PATRON_F = ("Ивановна", "Петровна", "Сергеевна", "Андреевна", "Николаевна", "Михайловна", "Владимировна")

DESCRIPTIONS = {
    "emergency_cold_water": ("Течь трубы ХВС в подвале", "Прорыв стояка холодной воды, топит соседей снизу"),
    "emergency_hot_water": ("Течь ГВС в квартире", "Прорыв трубы горячей воды на лестнице"),
    "emergency_heating": ("Течь радиатора отопления", "Прорыв трубы отопления в подвале"),
    "emergency_sewer": ("Затопление подвала стоками", "Излив канализации в подъезде"),
    "emergency_power": ("Нет света во всём подъезде, искрит щиток", "Запах гари из электрощитка"),
    "sewer_blockage": ("Засор канализации, вода не уходит", "Засор стояка канализации"),
    "garbage_chute_blockage": ("Засор мусоропровода на 5 этаже", "Мусоропровод забит"),
    "roof_leak": ("Протекает кровля над квартирой", "Течёт с потолка после дождя"),
    "entrance_door": ("Не закрывается входная дверь подъезда", "Сломан доводчик двери"),
    "lighting": ("Не горит свет на площадке", "Перегорели лампы в подъезде"),
    "elevator": ("Лифт не работает", "Лифт застревает между этажами"),
    "intercom": ("Не работает домофон", "Домофон не открывает дверь"),
    "cleaning": ("Не убирают подъезд", "Мусор у подъезда не вывезен"),
    "heating_quality": ("В квартире холодно, батареи еле тёплые", "Плохо греют радиаторы"),
    "other": ("Просьба проверить вентиляцию", "Консультация по начислениям", "Прочее обращение"),
}
# Non-emergency category weights (emergency categories: ~1% of all tickets).
WEIGHTS = {
    "sewer_blockage": 9, "garbage_chute_blockage": 5, "roof_leak": 6, "entrance_door": 8, "lighting": 12,
    "elevator": 10, "intercom": 12, "cleaning": 14, "heating_quality": 10, "other": 14,
}
EMERGENCY_SHARE = 0.01
CHANNELS = (("phone", 70), ("panel", 15), ("resident_web", 8), ("api", 5), ("external", 2))

TICKET_COLUMNS = (
    "id", "organization_id", "number", "channel", "registered_at", "registered_by_id", "reporter_name",
    "reporter_phone", "resident_id", "house_id", "premise_id", "category_id", "description", "is_emergency",
    "status", "executor_id", "incident_id", "damage_detected_at", "localize_due_at", "due_at", "planned_due_at",
    "next_due_at", "localized_at", "resolved_at", "closed_at", "closed_by_id", "reopen_count",
    "municipality_notified_at", "rating", "updated_at",
)
_DT_COLUMNS = frozenset(
    i for i, c in enumerate(TICKET_COLUMNS) if c.endswith("_at") and c not in ("registered_by_id",)
)


@dataclass
class OrgSpec:
    id: int
    name: str
    short_name: str
    inn: str
    timezone: str
    share: float
    houses: int


ORGS = (
    OrgSpec(1, "ООО «УК Бенчмарк-Центр»", "УК Бенчмарк-Центр", "7700000001", "Europe/Moscow", 0.55, 220),
    OrgSpec(2, "ООО «УК Бенчмарк-Восток»", "УК Бенчмарк-Восток", "6600000002", "Asia/Yekaterinburg", 0.45, 180),
)


@dataclass
class OrgData:
    spec: OrgSpec
    tz: ZoneInfo
    categories: dict[str, int] = field(default_factory=dict)  # code -> id
    rules: dict[int, DeadlineRule] = field(default_factory=dict)
    dispatchers: list[int] = field(default_factory=list)
    executors: list[int] = field(default_factory=list)
    houses: list[int] = field(default_factory=list)
    premises: dict[int, list[int]] = field(default_factory=dict)  # house -> premise ids
    resident_of: dict[int, tuple[int, str, str]] = field(default_factory=dict)  # premise -> (id, name, phone)


@dataclass
class Dataset:
    n_tickets: int
    now: datetime
    orgs: list[OrgData]
    ref_rows: dict[Any, list[dict[str, Any]]]  # model table -> rows, in FK order
    incidents: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[tuple[int, int], int] = field(default_factory=dict)
    incident_links: list[dict[str, int]] = field(default_factory=list)  # set after the tickets are in


def _name(rnd: random.Random) -> str:
    if rnd.random() < 0.55:
        return f"{rnd.choice(LAST)}а {rnd.choice(FIRST_F)} {rnd.choice(PATRON_F)}"
    return f"{rnd.choice(LAST)} {rnd.choice(FIRST)} {rnd.choice(PATRON)}"


def _phone(rnd: random.Random) -> str:
    return f"+79{rnd.randrange(10**9):09d}"


def build_reference(n_tickets: int, now: datetime) -> Dataset:
    """Organizations, users, categories, houses, premises, accounts, residents and phones."""
    rnd = random.Random(SEED)
    created = now - timedelta(days=365 * YEARS + 30)
    rows: dict[Any, list[dict[str, Any]]] = {
        DispatchCentre: [{"id": 1, "name": "Бенчмарк: единый диспетчерский центр"}],
        Organization: [], Hotline: [], User: [], Membership: [], Category: [], House: [], Premise: [], Account: [],
        Resident: [], ResidentPhone: [], ApiToken: [],
    }
    orgs: list[OrgData] = []
    user_id = cat_id = house_id = premise_id = resident_id = phone_id = 0
    # Password hash of a throw-away password: nobody logs in with a password here.
    pw = "pbkdf2:sha256:1$bench$" + "0" * 64
    for spec in ORGS:
        od = OrgData(spec, ZoneInfo(spec.timezone))
        orgs.append(od)
        rows[Organization].append({
            "id": spec.id, "name": spec.name, "short_name": spec.short_name, "kind": "УК", "inn": spec.inn,
            "timezone": spec.timezone, "municipality_email": f"edds{spec.id}@bench.invalid",
            "email": f"uk{spec.id}@bench.invalid",
            "dispatch_centre_id": 1, "default_deadline_minutes": 3 * 24 * 60, "created_at": created,
        })
        rows[Hotline].append({"id": spec.id, "organization_id": spec.id, "number": f"+7800000000{spec.id}",
                              "position": 0})
        for c in DEFAULT_CATEGORIES:
            cat_id += 1
            od.categories[c.code] = cat_id
            rows[Category].append({
                "id": cat_id, "organization_id": spec.id, "code": c.code, "name": c.name,
                "is_emergency": c.is_emergency, "localize_minutes": c.localize_minutes,
                "resolve_minutes": c.resolve_minutes, "window_start": c.window[0] if c.window else None,
                "window_end": c.window[1] if c.window else None, "count_from_damage": c.count_from_damage,
                "active": True,
            })
            od.rules[cat_id] = DeadlineRule(
                resolve_minutes=c.resolve_minutes or 3 * 24 * 60, localize_minutes=c.localize_minutes,
                window_start=c.window[0] if c.window else None, window_end=c.window[1] if c.window else None,
                count_from_damage=c.count_from_damage,
            )
        for role, count, bucket in ((Role.DISPATCHER, 6, od.dispatchers), (Role.EXECUTOR, 15, od.executors),
                                    (Role.MANAGER, 1, None)):
            for k in range(count):
                user_id += 1
                login = BENCH_LOGIN if (spec.id == 1 and role == Role.DISPATCHER and k == 0) else \
                    f"bench.{role.value}.{spec.id}.{k}"
                rows[User].append({
                    "id": user_id, "login": login, "full_name": _name(rnd), "email": f"{login}@bench.invalid",
                    "phone": _phone(rnd), "password_hash": pw, "role": role, "is_active": True,
                    "created_at": created,
                })
                rows[Membership].append({"id": user_id, "user_id": user_id, "organization_id": spec.id})
                if bucket is not None:
                    bucket.append(user_id)
        for h in range(spec.houses):
            house_id += 1
            od.houses.append(house_id)
            street = STREETS[h % len(STREETS)]
            rows[House].append({
                "id": house_id, "organization_id": spec.id,
                "address": f"г. {'Москва' if spec.id == 1 else 'Екатеринбург'}, {street}, д. {h // len(STREETS) + 1}",
                "fias_id": None, "latitude": 55.0 + rnd.random(), "longitude": 37.0 + rnd.random(),
                "created_at": created,
            })
            plist: list[int] = []
            od.premises[house_id] = plist
            for p in range(rnd.randint(20, 100)):
                premise_id += 1
                plist.append(premise_id)
                rows[Premise].append({
                    "id": premise_id, "organization_id": spec.id, "house_id": house_id, "number": str(p + 1),
                    "kind": "кв.", "entrance": str(p // 20 + 1), "floor": str(p % 20 // 4 + 1),
                })
                rows[Account].append({"id": premise_id, "organization_id": spec.id, "premise_id": premise_id,
                                      "number": f"{spec.id}{premise_id:08d}"})
                resident_id += 1
                name = _name(rnd)
                phone = _phone(rnd)
                od.resident_of[premise_id] = (resident_id, name, phone)
                rows[Resident].append({
                    "id": resident_id, "organization_id": spec.id, "full_name": name, "premise_id": premise_id,
                    "account_id": premise_id, "note": "конфликтный" if rnd.random() < 0.01 else "",
                    "email": None, "created_at": created,
                })
                for ph in (phone, _phone(rnd)) if rnd.random() < 0.3 else (phone,):
                    phone_id += 1
                    rows[ResidentPhone].append({"id": phone_id, "organization_id": spec.id,
                                                "resident_id": resident_id, "phone": ph, "label": ""})
    from web.auth import hash_token

    rows[ApiToken].append({"id": 1, "user_id": 1, "token_sha256": hash_token(BENCH_TOKEN), "name": "bench",
                           "created_at": created, "last_used_at": None, "revoked": False})
    return Dataset(n_tickets=n_tickets, now=now, orgs=orgs, ref_rows=rows)


def _status(rnd: random.Random, age_days: float) -> str:
    r = rnd.random()
    if age_days > 30:
        table = (("closed", 0.92), ("cancelled", 0.04), ("rejected", 0.02), ("done", 0.0195), ("in_progress", 1))
    elif age_days > 3:
        table = (("closed", 0.70), ("done", 0.15), ("in_progress", 0.05), ("assigned", 0.04),
                 ("cancelled", 0.04), ("rejected", 1))
    else:
        table = (("new", 0.25), ("assigned", 0.25), ("in_progress", 0.20), ("done", 0.15), ("closed", 0.10),
                 ("cancelled", 1))
    acc = 0.0
    for status, p in table:
        acc += p
        if r < acc:
            return status
    return table[-1][0]


def generate_tickets(ds: Dataset) -> Iterator[tuple[Any, ...]]:
    """Tickets in registration order as tuples of TICKET_COLUMNS (naive UTC datetimes)."""
    rnd = random.Random(SEED + 1)
    n = ds.n_tickets
    now = ds.now.replace(tzinfo=None)
    span = timedelta(days=365 * YEARS).total_seconds()
    start = now - timedelta(seconds=span)
    step = span / n
    channels = [c for c, w in CHANNELS for _ in range(w)]
    per_org = []
    for od in ds.orgs:
        emerg = [cid for code, cid in od.categories.items() if code.startswith("emergency_")]
        normal = [od.categories[code] for code, w in WEIGHTS.items() for _ in range(w)]
        code_of = {cid: code for code, cid in od.categories.items()}
        per_org.append((od, emerg, normal, code_of))
    counters = ds.counters
    incident_id = 0
    utc = UTC
    ticket_id = 0
    for i in range(n):
        ticket_id += 1
        reg = start + timedelta(seconds=i * step + rnd.random() * step)
        reg = reg.replace(microsecond=(reg.microsecond // 1000) * 1000 + 1)  # ms precision, never .000000
        od, emerg, normal, code_of = per_org[0] if rnd.random() < ds.orgs[0].spec.share else per_org[1]
        org_id = od.spec.id
        is_emergency = rnd.random() < EMERGENCY_SHARE
        cat = rnd.choice(emerg) if is_emergency else rnd.choice(normal)
        house = rnd.choice(od.houses)
        premise = rnd.choice(od.premises[house]) if rnd.random() < 0.85 else None
        resident = None
        if premise is not None and rnd.random() < 0.75:
            resident, name, phone = od.resident_of[premise]
        else:
            name, phone = _name(rnd), _phone(rnd)
        damage = reg - timedelta(minutes=rnd.randint(5, 180)) if is_emergency and rnd.random() < 0.5 else None
        reg_aware = reg.replace(tzinfo=utc)
        d = compute_deadlines(od.rules[cat], registered_at=reg_aware, tz=od.tz,
                              damage_detected_at=damage.replace(tzinfo=utc) if damage else None,
                              is_emergency=is_emergency)
        due = d.due_at.replace(tzinfo=None)
        loc_due = d.localize_due_at.replace(tzinfo=None) if d.localize_due_at else None
        year = reg_aware.astimezone(od.tz).year
        seq = counters.get((org_id, year), 0) + 1
        counters[(org_id, year)] = seq
        age = (now - reg).total_seconds() / 86400
        status = _status(rnd, age)
        executor = None
        if status in ("assigned", "in_progress", "done", "closed") or (
                status in ("cancelled", "rejected") and rnd.random() < 0.3):
            executor = rnd.choice(od.executors)
        localized = resolved = closed = closed_by = rating = None
        resolve_span = (due - reg).total_seconds()
        if loc_due is not None and status not in ("new", "assigned", "cancelled", "rejected"):
            localized = reg + timedelta(minutes=rnd.randint(5, 40))
        if status in ("done", "closed"):
            resolved = reg + timedelta(seconds=resolve_span * rnd.uniform(0.1, 1.15))
            if resolved > now:
                resolved = now - timedelta(minutes=1)
            if localized is not None and localized > resolved:
                localized = resolved
            if status == "closed":
                closed = min(resolved + timedelta(hours=rnd.uniform(1, 48)), now)
                closed_by = rnd.choice(od.dispatchers)
                if rnd.random() < 0.3:
                    rating = rnd.randint(1, 5)
        elif status in ("cancelled", "rejected"):
            closed = min(reg + timedelta(hours=rnd.uniform(0.2, 24)), now)
            closed_by = rnd.choice(od.dispatchers)
        if status in ("done", "closed", "cancelled", "rejected"):
            next_due = None
        elif loc_due is not None and localized is None:
            next_due = loc_due
        else:
            next_due = due
        if is_emergency and rnd.random() < 0.05:
            incident_id += 1
            ds.incident_links.append({"tid": ticket_id, "inc": incident_id})
            ds.incidents.append({
                "id": incident_id, "organization_id": org_id, "house_id": house,
                "title": f"Авария: {code_of[cat]}", "utility": code_of[cat].removeprefix("emergency_"),
                "announcement": "Ведутся аварийные работы", "started_at": (damage or reg).replace(tzinfo=utc),
                "localized_at": localized.replace(tzinfo=utc) if localized else None,
                "liquidated_at": resolved.replace(tzinfo=utc) if resolved else None,
                "expected_end_at": d.due_at, "created_by_id": od.dispatchers[0],
            })
        notified = reg + timedelta(minutes=rnd.randint(1, 5)) if is_emergency else None
        updated = max(t for t in (reg, localized, resolved, closed) if t is not None)
        descr = rnd.choice(DESCRIPTIONS[code_of[cat]])
        yield (
            ticket_id, org_id, f"{year}-{seq:06d}", rnd.choice(channels), reg, rnd.choice(od.dispatchers), name,
            phone, resident, house, premise, cat, descr, is_emergency, status, executor, None, damage,
            loc_due, due, due, next_due, localized, resolved, closed, closed_by, 0, notified, rating, updated,
        )


# --- loading ------------------------------------------------------------------------------------


def sqlite_url(n: int) -> str:
    VAR.mkdir(parents=True, exist_ok=True)
    name = "bench.sqlite3" if n == DEFAULT_TICKETS else f"bench_{n}.sqlite3"
    return f"sqlite:///{VAR / name}"


def pg_url(n: int) -> str:
    name = "openads_bench" if n == DEFAULT_TICKETS else f"openads_bench_{n}"
    return make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)


def _ticket_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Ticket.__table__)) or 0)


def _insert_reference(conn: Connection, ds: Dataset) -> None:
    for model, rows in ds.ref_rows.items():
        if rows:
            conn.execute(insert(model.__table__), rows)


def _finish(conn: Connection, ds: Dataset) -> None:
    if ds.incidents:
        conn.execute(insert(Incident.__table__), ds.incidents)
        conn.execute(text("UPDATE tickets SET incident_id = :inc WHERE id = :tid"), ds.incident_links)
    conn.execute(insert(TicketCounter.__table__), [
        {"organization_id": org, "year": year, "last_value": last} for (org, year), last in ds.counters.items()
    ])


def _sqlite_dt(v: datetime | None) -> str | None:
    if v is None:
        return None
    return f"{v:%Y-%m-%d %H:%M:%S}.{v.microsecond:06d}"


def load_sqlite(url: str, ds: Dataset) -> None:
    path = Path(make_url(url).database or "")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=OFF")
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            conn.exec_driver_sql("PRAGMA cache_size=-400000")
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
            with conn.begin():
                indexes = list(Ticket.__table__.indexes)
                for idx in indexes:
                    idx.drop(conn)
                _insert_reference(conn, ds)
                cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                sql = (f"INSERT INTO tickets ({', '.join(TICKET_COLUMNS)}) "
                       f"VALUES ({', '.join('?' for _ in TICKET_COLUMNS)})")
                dt_cols = _DT_COLUMNS

                def rows() -> Iterator[tuple[Any, ...]]:
                    for row in generate_tickets(ds):
                        yield tuple(_sqlite_dt(v) if k in dt_cols else v for k, v in enumerate(row))

                cur.executemany(sql, rows())
                cur.close()
                _finish(conn, ds)
                for idx in indexes:
                    idx.create(conn)
            conn.exec_driver_sql("ANALYZE")
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.commit()
    finally:
        engine.dispose()
    print(f"bench: sqlite loaded into {path}", file=sys.stderr)


def load_postgresql(url: str, ds: Dataset) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            with conn.begin():
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
                indexes = list(Ticket.__table__.indexes)
                for idx in indexes:
                    idx.drop(conn)
                _insert_reference(conn, ds)
                cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                with cur.copy(f"COPY tickets ({', '.join(TICKET_COLUMNS)}) FROM STDIN") as copy:
                    for row in generate_tickets(ds):
                        copy.write_row(row)
                cur.close()
                _finish(conn, ds)
                for idx in indexes:
                    idx.create(conn)
                for table in ("dispatch_centres", "organizations", "hotlines", "users", "memberships", "categories", "houses",
                              "premises", "accounts", "residents", "resident_phones", "api_tokens", "incidents",
                              "tickets"):
                    conn.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()


def _ensure_pg_database(url: str, fresh: bool) -> None:
    name = make_url(url).database
    admin = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if exists and fresh:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
                exists = False
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def populated(url: str, n: int) -> bool:
    engine = create_engine(url)
    try:
        return _ticket_count(engine) >= n
    except Exception:
        return False
    finally:
        engine.dispose()


def prepare(engine_name: str, n: int) -> tuple[str, float | None]:
    """Create (or reuse) the bench database; returns its URL and the load time (None: reused)."""
    if engine_name == "sqlite":
        url = sqlite_url(n)
        path = Path(make_url(url).database or "")
        if path.exists():
            upgrade(url)
            if populated(url, n):
                return url, None
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(str(path) + suffix).unlink(missing_ok=True)
    else:
        url = pg_url(n)
        _ensure_pg_database(url, fresh=False)
        upgrade(url)
        if populated(url, n):
            return url, None
        _ensure_pg_database(url, fresh=True)
    upgrade(url)
    started = time.perf_counter()
    ds = build_reference(n, datetime.now(UTC).replace(microsecond=0))
    if engine_name == "sqlite":
        load_sqlite(url, ds)
    else:
        load_postgresql(url, ds)
    return url, time.perf_counter() - started


def data_window(url: str, n: int) -> dict[str, Any]:
    """Facts the bench's filters need, read back from the loaded data."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            t = Ticket.__table__
            last = conn.scalar(select(func.max(t.c.registered_at)).where(t.c.id <= n))
            return {"last_registered_at": last}
    finally:
        engine.dispose()


def _main(argv: list[str]) -> int:
    engine_name = argv[0] if argv else "sqlite"
    n = int(argv[1]) if len(argv) > 1 else int(os.environ.get("BENCH_TICKETS", DEFAULT_TICKETS))
    url, seconds = prepare(engine_name, n)
    print(f"{url}: {'reused' if seconds is None else f'loaded in {seconds:.1f} s'}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


def give_bench_password(conn: Connection) -> None:
    """The loaded users' password hash matches nothing (loading stays fast); parts that sign in
    through the form (telephony, sse) give the bench dispatcher BENCH_PASSWORD first."""
    from web.auth import hash_password

    conn.execute(update(User).where(User.login == BENCH_LOGIN).values(password_hash=hash_password(BENCH_PASSWORD)))
