"""Realistic demo data, deterministic for a seed (`openads demo`).

A dispatch centre «ОДС Центральная» serving two management companies (Москва, Europe/Moscow and
Самара, Europe/Samara), 40 houses with premises and personal accounts, ~3 000 residents with
Russian names and phones, house notes, staff with the password «demo», and a few thousand past
tickets spread over 120 days. Tickets go through the real services (`models.services.tickets`)
with explicit past times, so numbers, deadlines, history and outbox messages are exactly what
the live system would have written. The messages of the past are marked as sent (with their
attempt rows, and the municipality's notification on the emergency tickets); the ones of the
last minutes stay pending for the demo worker to deliver.
"""

from __future__ import annotations

import email
import email.policy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from models import seals
from models.base import utcnow
from models.db import Database
from models.event_cursor import EventCursor
from models.housing import Account, House, HouseNote, Premise, Resident, ResidentPhone
from models.organization import DispatchCentre, Membership, Organization, Role, User
from models.outbox import DomainEvent, MessageChannel, MessageStatus, OutboxAttempt, OutboxMessage
from models.rules.catalog import FOLLOW_UP_INSPECTION
from models.rules.utilities import utility_code
from models.services import incidents as incident_services
from models.services import tickets as ticket_services
from models.services.catalog import seed_default_categories
from models.services.tickets import MUNICIPALITY_PURPOSE, TicketDraft
from models.ticket import Category, Channel, Ticket, Visibility
from models.ticket import TicketStatus as S
from openads.consumers import NOTIFICATIONS

DEMO_PASSWORD = "demo"
DEFAULT_SEED = 2026
DEFAULT_TICKETS = 4000
HISTORY_DAYS = 120
TARGET_RESIDENTS = 3000
CHUNK = 400  # tickets per transaction
# Tickets of the last days go through the services one by one (as the panel would create them);
# older ones are written in bulk with the same rules (numbers, deadlines, history), because the
# ORM path costs ~30-50 ms per ticket and a few thousand of them would make the demo crawl.
SERVICE_DAYS = 7
PENDING_WINDOW = timedelta(minutes=20)  # newer outbox messages are left for the worker

# --- names and places -------------------------------------------------------------------------------

SURNAMES = (
    "Иванов Смирнов Кузнецов Попов Васильев Петров Соколов Михайлов Новиков Фёдоров Морозов Волков "
    "Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев Орлов Андреев Макаров Никитин "
    "Захаров Зайцев Соловьёв Борисов Яковлев Григорьев Романов Воробьёв Сергеев Кузьмин Фролов "
    "Александров Дмитриев Королёв Гусев Киселёв Ильин Максимов Поляков Сорокин Виноградов Ковалёв "
    "Белов Медведев Антонов Тарасов Жуков Баранов Филиппов Комаров Давыдов Беляев Герасимов Богданов "
    "Осипов Сидоров Матвеев Титов Марков Миронов Крылов Куликов Карпов Власов Мельников Денисов "
    "Гаврилов Тихонов Казаков Афанасьев Данилов Савельев Тимофеев Фомин Чернов Абрамов Мартынов Ефимов "
    "Федотов Щербаков Назаров Калинин Исаев Быков Маслов Родионов Коновалов Лазарев Воронин Климов "
    "Филатов Пономарёв Голубев Кудрявцев Прохоров Наумов Потапов Журавлёв Овчинников Трофимов Леонов "
    "Соболев Ермаков Колесников Гончаров Емельянов Никифоров Грачёв Котов Гришин Ефремов Архипов Громов"
).split()
MALE_NAMES = (
    "Александр Сергей Дмитрий Андрей Алексей Максим Евгений Иван Михаил Артём Николай Владимир Павел "
    "Игорь Олег Виктор Юрий Роман Денис Константин Анатолий Василий Геннадий Валерий Григорий Пётр "
    "Борис Леонид Степан Фёдор Кирилл Илья Антон Егор Никита Вячеслав Станислав Тимофей Матвей"
).split()
FEMALE_NAMES = (
    "Елена Ольга Наталья Татьяна Ирина Светлана Анна Мария Екатерина Юлия Людмила Галина Марина "
    "Надежда Валентина Любовь Нина Вера Оксана Анастасия Дарья Ксения Алла Лариса Тамара Зоя Раиса "
    "Софья Полина Виктория Алёна Маргарита Евгения Лидия Кристина"
).split()
# father's name → (male, female) patronymic
PATRONYMICS = {
    "Александр": ("Александрович", "Александровна"), "Сергей": ("Сергеевич", "Сергеевна"),
    "Дмитрий": ("Дмитриевич", "Дмитриевна"), "Андрей": ("Андреевич", "Андреевна"),
    "Алексей": ("Алексеевич", "Алексеевна"), "Максим": ("Максимович", "Максимовна"),
    "Евгений": ("Евгеньевич", "Евгеньевна"), "Иван": ("Иванович", "Ивановна"),
    "Михаил": ("Михайлович", "Михайловна"), "Николай": ("Николаевич", "Николаевна"),
    "Владимир": ("Владимирович", "Владимировна"), "Павел": ("Павлович", "Павловна"),
    "Игорь": ("Игоревич", "Игоревна"), "Олег": ("Олегович", "Олеговна"),
    "Виктор": ("Викторович", "Викторовна"), "Юрий": ("Юрьевич", "Юрьевна"),
    "Роман": ("Романович", "Романовна"), "Анатолий": ("Анатольевич", "Анатольевна"),
    "Василий": ("Васильевич", "Васильевна"), "Геннадий": ("Геннадьевич", "Геннадьевна"),
    "Валерий": ("Валерьевич", "Валерьевна"), "Григорий": ("Григорьевич", "Григорьевна"),
    "Пётр": ("Петрович", "Петровна"), "Борис": ("Борисович", "Борисовна"),
    "Леонид": ("Леонидович", "Леонидовна"), "Степан": ("Степанович", "Степановна"),
    "Фёдор": ("Фёдорович", "Фёдоровна"), "Илья": ("Ильич", "Ильинична"),
    "Антон": ("Антонович", "Антоновна"), "Вячеслав": ("Вячеславович", "Вячеславовна"),
    "Константин": ("Константинович", "Константиновна"), "Кирилл": ("Кириллович", "Кирилловна"),
}


def female_surname(surname: str) -> str:
    return surname + "а"  # every surname above ends in -ов/-ев/-ёв/-ин


@dataclass(frozen=True)
class OrgSpec:
    key: str
    name: str
    short_name: str
    timezone: str
    city: str
    inn: str
    municipality_email: str
    email: str
    hotlines: tuple[str, ...]
    mail_domain: str
    landline_prefix: str
    streets: tuple[str, ...]
    houses: int


ORGS = (
    OrgSpec(
        key="zhk", name="ООО «УК Жилкомфорт»", short_name="УК Жилкомфорт", timezone="Europe/Moscow",
        city="г. Москва", inn="7727000101", municipality_email="edds@uzao-mos.example",
        email="info@zhilkomfort.example", hotlines=("+74951504020", "+74951504021"),
        mail_domain="zhilkomfort.example", landline_prefix="+7495",
        streets=("ул. Профсоюзная", "ул. Академика Королёва", "Ленинский пр-т", "ул. Вавилова", "ул. Гарибальди",
                 "ул. Кржижановского", "ул. Дмитрия Ульянова", "ул. Обручева", "Севастопольский пр-т",
                 "ул. Намёткина", "ул. Винокурова", "Нахимовский пр-т"),
        houses=22,
    ),
    OrgSpec(
        key="sk", name="ООО «УК Северный квартал»", short_name="УК Северный квартал", timezone="Europe/Samara",
        city="г. Самара", inn="6316000202", municipality_email="edds@samadm.example",
        email="dispatch@sev-kvartal.example", hotlines=("+78462007080",),
        mail_domain="sev-kvartal.example", landline_prefix="+7846",
        streets=("ул. Ново-Садовая", "ул. Победы", "ул. Стара-Загора", "пр-т Кирова", "ул. Гагарина",
                 "Московское ш.", "ул. Ташкентская", "ул. Демократическая", "пр-т Ленина", "ул. Молодогвардейская"),
        houses=18,
    ),
)

# (floors, entrances, flats per floor)
HOUSE_TYPES = ((5, 4, 4), (9, 3, 4), (9, 2, 4), (12, 2, 4), (5, 3, 3), (16, 1, 4), (14, 2, 4), (10, 2, 4))

RESIDENT_NOTES = (
    "пожилой человек, плохо слышит — говорить громко",
    "просит звонить после 18:00",
    "инвалид I группы, нужен доступ без ступеней",
    "конфликтный, разговаривать вежливо, фиксировать все обращения",
    "председатель совета дома",
    "старший по подъезду, ключи от подвала у него",
    "в квартире маленький ребёнок",
    "часто в отъезде, звонить на второй номер",
    "собственник сдаёт квартиру, арендаторы не на связи",
)

HOUSE_NOTES = (
    "Ключи от подвала и чердака — у старшего по дому, кв. {flat}, тел. {phone}",
    "Код домофона: {code} (все подъезды), мастер-ключ в ОДС",
    "Краны ХВС/ГВС на вводе — в подвале, вход со стороны {entrance}-го подъезда",
    "Тепловой узел в подвале {entrance}-го подъезда, ключ в ОДС (ящик № {box})",
    "Электрощитовая на 1 этаже {entrance}-го подъезда, ключ у дежурного электрика",
    "Лифты обслуживает ООО «Лифт-Сервис», аварийная служба: {phone}",
    "Въезд во двор через шлагбаум, звонить на {phone}",
    "Стояки кухонь в подъезде {entrance} заменены в 2023 г. (полипропилен)",
)

# category code → (weight, descriptions)
TICKET_TEXTS: dict[str, tuple[float, tuple[str, ...]]] = {
    "emergency_cold_water": (2.5, (
        "Течь трубы ХВС в санузле, заливает соседей снизу",
        "Прорыв стояка холодной воды на кухне",
        "Сильная течь под раковиной, перекрыть не получается",
    )),
    "emergency_hot_water": (2.5, (
        "Прорыв трубы ГВС в подвале, пар из продухов",
        "Течь полотенцесушителя, вода на полу",
        "Лопнул стояк горячей воды в ванной",
    )),
    "emergency_heating": (2.0, (
        "Течь радиатора отопления в комнате",
        "Прорыв трубы отопления на лестничной клетке",
        "Сорвало кран на батарее, бьёт горячая вода",
    )),
    "emergency_sewer": (1.5, (
        "Излив канализации в подвале",
        "Топит канализацией квартиру на первом этаже",
    )),
    "emergency_power": (1.0, (
        "Нет света во всём подъезде, искрит этажный щиток",
        "Запах гари из электрощитка на площадке",
    )),
    "sewer_blockage": (8.0, (
        "Засор канализации, вода не уходит из ванны",
        "Засор стояка, поднимается вода в унитазе",
        "Засор кухонной канализации",
    )),
    "garbage_chute_blockage": (5.0, (
        "Засор мусоропровода в подъезде",
        "Мусоропровод забит до пятого этажа",
    )),
    "roof_leak": (3.0, (
        "Протекает кровля над квартирой на последнем этаже",
        "После дождя течь с потолка в подъезде на верхнем этаже",
    )),
    "entrance_door": (5.0, (
        "Не закрывается входная дверь подъезда",
        "Сломан доводчик на входной двери",
    )),
    "lighting": (10.0, (
        "Не горит свет на лестничной площадке",
        "Нет освещения у входа в подъезд",
        "Мигает лампа в лифтовом холле",
    )),
    "elevator": (8.0, (
        "Лифт застревает между этажами",
        "Не работает лифт в подъезде",
        "Не закрываются двери лифта",
    )),
    "intercom": (7.0, (
        "Не работает домофон, трубка молчит",
        "Дверь не открывается ключом домофона",
    )),
    "cleaning": (7.0, (
        "Не убирают в подъезде вторую неделю",
        "Не вывезен мусор с контейнерной площадки",
        "Наледь у входа в подъезд, не посыпано",
    )),
    "heating_quality": (9.0, (
        "В квартире холодно, батареи едва тёплые",
        "Температура в комнате +16, батареи холодные вверху",
    )),
    "other": (8.0, (
        "Шум в трубах отопления по ночам",
        "Покосилась лавочка у подъезда",
        "Просьба проверить общедомовой счётчик",
        "Сломаны почтовые ящики",
    )),
}
CANCEL_REASONS = ("Дубль заявки", "Заявитель отказался от заявки", "Устранено жителем самостоятельно")
REJECT_REASONS = (
    "Работы во внутриквартирном оборудовании выполняются за счёт собственника",
    "Не относится к зоне ответственности УК",
)
COMMENTS = (
    ("Житель просит позвонить за 30 минут до прихода", Visibility.INTERNAL),
    ("Доступ в подвал согласован со старшим по дому", Visibility.INTERNAL),
    ("Требуется закупка материалов, срок согласован с жителем", Visibility.RESIDENT),
    ("Работы выполнены, житель претензий не имеет", Visibility.RESIDENT),
    ("Мастер придёт завтра с 9 до 12", Visibility.RESIDENT),
    ("Повторное обращение по этому адресу, проверить стояк целиком", Visibility.INTERNAL),
)
CHANNELS = ((Channel.PHONE, 75), (Channel.PANEL, 8), (Channel.RESIDENT_WEB, 11), (Channel.API, 4),
            (Channel.EXTERNAL, 2))
HOUR_WEIGHTS = (1, 1, 0.5, 0.5, 0.5, 1, 2, 4, 6, 7, 7, 6, 6, 6, 6, 6, 6, 7, 8, 8, 7, 5, 3, 2)


@dataclass
class DemoSummary:
    organizations: int = 0
    houses: int = 0
    premises: int = 0
    residents: int = 0
    phones: int = 0
    users: int = 0
    tickets: int = 0
    incidents: int = 0
    calls: int = 0
    missed_calls: int = 0
    ratings: int = 0
    seconds: float = 0.0
    logins: list[tuple[str, str, str, str]] = field(default_factory=list)  # login, name, role, orgs


@dataclass
class _Staff:
    dispatchers: list[int]
    executors: list[int]
    managers: list[int]


def is_empty(db: Database) -> bool:
    with db.read() as s:
        return not s.scalar(select(func.count()).select_from(Organization))


# --- generators ---------------------------------------------------------------------------------------


class _People:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.phones: set[str] = set()

    def name(self, female: bool | None = None, surname: str | None = None) -> tuple[str, bool]:
        rng = self.rng
        if female is None:
            female = rng.random() < 0.55
        surname = surname or rng.choice(SURNAMES)
        father = rng.choice(list(PATRONYMICS))
        if female:
            return f"{female_surname(surname)} {rng.choice(FEMALE_NAMES)} {PATRONYMICS[father][1]}", True
        return f"{surname} {rng.choice(MALE_NAMES)} {PATRONYMICS[father][0]}", False

    def mobile(self) -> str:
        while True:
            number = f"+79{self.rng.choice('01256')}{self.rng.randrange(10**8):08d}"
            if number not in self.phones:
                self.phones.add(number)
                return number

    def landline(self, prefix: str) -> str:
        while True:
            number = f"{prefix}{self.rng.randrange(2 * 10**6, 10**7):07d}"
            if number not in self.phones:
                self.phones.add(number)
                return number


def _staff(session: Session, orgs: list[Organization], people: _People, pw_hash: str,
           summary: DemoSummary) -> dict[int, _Staff]:
    staff = {org.id: _Staff([], [], []) for org in orgs}

    def add(login: str, role: Role, members: list[Organization], email: str | None = None,
            female: bool | None = None) -> User:
        full_name, _ = people.name(female)
        user = User(login=login, full_name=full_name, email=email, phone=people.mobile(), password_hash=pw_hash,
                    role=role, is_active=True)
        session.add(user)
        session.flush()
        for org in members:
            session.add(Membership(user_id=user.id, organization_id=org.id))
        summary.logins.append((login, full_name, role.value, ", ".join(o.short_name for o in members)))
        return user

    add("admin", Role.ADMIN, orgs, email="admin@ods-central.example")
    n_disp = n_exec = 0
    for i, org in enumerate(orgs, start=1):
        spec = ORGS[i - 1]
        staff[org.id].managers.append(add(f"manager{i}", Role.MANAGER, [org], email=f"manager@{spec.mail_domain}").id)
        for _ in range(2):
            n_disp += 1
            staff[org.id].dispatchers.append(add(f"disp{n_disp}", Role.DISPATCHER, [org], female=True).id)
    centre = add("centre", Role.DISPATCHER, orgs, female=True)
    for i, org in enumerate(orgs, start=1):
        spec = ORGS[i - 1]
        staff[org.id].dispatchers.append(centre.id)
        for _ in range(4):
            n_exec += 1
            staff[org.id].executors.append(
                add(f"exec{n_exec}", Role.EXECUTOR, [org], email=f"exec{n_exec}@{spec.mail_domain}", female=False).id
            )
    summary.users = len(summary.logins)
    return staff


def _housing(session: Session, rng: random.Random, people: _People, org: Organization, spec: OrgSpec,
             n_residents: int, summary: DemoSummary) -> list[tuple[int, list[tuple[int, int, str, str]]]]:
    """Houses, premises, accounts, residents, phones, notes. Returns per house:
    (house_id, [(resident_id, premise_id, full_name, phone), ...])."""
    addresses: set[str] = set()
    houses: list[House] = []
    shapes: list[tuple[int, int, int]] = []
    while len(houses) < spec.houses:
        street = rng.choice(spec.streets)
        number = rng.randrange(1, 120)
        building = f", корп. {rng.randrange(1, 4)}" if rng.random() < 0.3 else ""
        address = f"{spec.city}, {street}, д. {number}{building}"
        if address in addresses:
            continue
        addresses.add(address)
        house = House(organization_id=org.id, address=address)
        session.add(house)
        houses.append(house)
        shapes.append(rng.choice(HOUSE_TYPES))
    session.flush()

    flats: list[tuple[House, Premise]] = []
    for house, (floors, entrances, per_floor) in zip(houses, shapes, strict=True):
        number = 0
        for entrance in range(1, entrances + 1):
            for floor in range(1, floors + 1):
                for _ in range(per_floor):
                    number += 1
                    premise = Premise(organization_id=org.id, house_id=house.id, number=str(number), kind="кв.",
                                      entrance=str(entrance), floor=str(floor))
                    session.add(premise)
                    flats.append((house, premise))
        for k in range(rng.randrange(0, 3)):
            session.add(Premise(organization_id=org.id, house_id=house.id, number=f"н{k + 1}", kind="пом.",
                                entrance="1", floor="1"))
    session.flush()

    # residents: one per flat for most flats, a second one (same family name) for some
    order = list(range(len(flats)))
    rng.shuffle(order)
    singles = order[: min(len(order), int(n_residents * 0.8))]
    plan: list[tuple[int, str | None]] = [(i, None) for i in singles]
    while len(plan) < n_residents:
        plan.append((rng.choice(singles), "family"))
    first_of: dict[int, tuple[str, Account]] = {}
    residents: list[tuple[Resident, int]] = []
    account_seq = 0
    for flat_index, kind in plan:
        house, premise = flats[flat_index]
        if kind is None:
            account_seq += 1
            account = Account(organization_id=org.id, premise_id=premise.id,
                              number=f"{spec.inn[:4]}{account_seq:06d}")
            session.add(account)
            full_name, female = people.name()
            surname = full_name.split()[0]
            base_surname = surname[:-1] if female else surname
            first_of[flat_index] = (base_surname, account)
        else:
            base_surname, account = first_of[flat_index]
            full_name, _ = people.name(surname=base_surname)
        resident = Resident(organization_id=org.id, premise=premise, account=account, full_name=full_name,
                            note=rng.choice(RESIDENT_NOTES) if rng.random() < 0.04 else "")
        resident.phones.append(ResidentPhone(organization_id=org.id, phone=people.mobile(), label="мобильный"))
        if rng.random() < 0.35:
            second = people.landline(spec.landline_prefix) if rng.random() < 0.5 else people.mobile()
            label = "домашний" if second.startswith(spec.landline_prefix) else "второй мобильный"
            resident.phones.append(ResidentPhone(organization_id=org.id, phone=second, label=label))
        session.add(resident)
        residents.append((resident, house.id))
    session.flush()

    for house, (floors, entrances, per_floor) in zip(houses, shapes, strict=True):
        for template in rng.sample(HOUSE_NOTES, rng.randrange(1, 4)):
            text = template.format(
                flat=rng.randrange(1, floors * entrances * per_floor + 1), phone=people.mobile(),
                code=f"{rng.randrange(10000):04d}", entrance=rng.randrange(1, entrances + 1), box=rng.randrange(1, 60),
            )
            session.add(HouseNote(organization_id=org.id, house_id=house.id, text=text))
    session.flush()

    by_house: dict[int, list[tuple[int, int, str, str]]] = {h.id: [] for h in houses}
    for resident, house_id in residents:
        by_house[house_id].append((resident.id, resident.premise_id or 0, resident.full_name, resident.phones[0].phone))
    summary.houses += len(houses)
    summary.premises += len(flats)
    summary.residents += len(residents)
    summary.phones += sum(len(r.phones) for r, _ in residents)
    return [(h.id, by_house[h.id]) for h in houses]


# --- tickets ------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    org_id: int
    registered_at: datetime
    category_code: str
    description: str
    channel: Channel
    house_id: int
    resident: tuple[int, int, str, str] | None
    reporter: tuple[str, str]
    incident_key: int | None = None
    cap: S | None = None  # stop the workflow at this status (active incident, fresh ticket)


def _pick_weighted(rng: random.Random, items: list[tuple[str, float]]) -> str:
    total = sum(w for _, w in items)
    x = rng.random() * total
    for key, weight in items:
        x -= weight
        if x <= 0:
            return key
    return items[-1][0]


def _registration_times(rng: random.Random, n: int, now: datetime, tz: ZoneInfo) -> list[datetime]:
    hours = list(range(24))
    out: list[datetime] = []
    while len(out) < n:
        day = (now - timedelta(days=rng.randrange(HISTORY_DAYS + 1))).astimezone(tz).date()
        hour = rng.choices(hours, HOUR_WEIGHTS)[0]
        local = datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=tz)
        moment = local.astimezone(UTC)
        if moment < now - timedelta(minutes=3):
            out.append(moment)
    return out


def _category_weights(moment: datetime) -> list[tuple[str, float]]:
    heating_season = moment.month >= 10 or moment.month <= 4
    weights = []
    for code, (weight, _texts) in TICKET_TEXTS.items():
        if code == "heating_quality" and not heating_season:
            weight *= 0.1
        weights.append((code, weight))
    return weights


def _plans(rng: random.Random, people: _People, org: Organization, houses: list[tuple[int, list[Any]]],
           count: int, now: datetime) -> list[_Plan]:
    tz = ZoneInfo(org.timezone)
    house_weights = [max(len(res), 1) for _, res in houses]
    plans = []
    channels = [c for c, _ in CHANNELS]
    channel_weights = [w for _, w in CHANNELS]
    for moment in _registration_times(rng, count, now, tz):
        code = _pick_weighted(rng, _category_weights(moment))
        house_id, residents = rng.choices(houses, house_weights)[0]
        resident = rng.choice(residents) if residents and rng.random() < 0.9 else None
        reporter = (resident[2], resident[3]) if resident else (people.name()[0], people.mobile())
        plans.append(_Plan(org.id, moment, code, rng.choice(TICKET_TEXTS[code][1]),
                           rng.choices(channels, channel_weights)[0], house_id, resident, reporter))
    return plans


def _incident_plans(rng: random.Random, org: Organization, houses: list[tuple[int, list[Any]]], now: datetime,
                    key_base: int) -> tuple[list[dict[str, Any]], list[_Plan]]:
    """Three past accidents (liquidated) and one active one, each with the tickets they caused."""
    incidents: list[dict[str, Any]] = []
    plans: list[_Plan] = []
    kinds = (("ХВС", "emergency_cold_water", "Прорыв трубы ХВС в подвале"),
             ("ГВС", "emergency_hot_water", "Порыв на вводе ГВС"),
             ("отопление", "emergency_heating", "Прорыв трубопровода отопления"),
             ("канализация", "emergency_sewer", "Засор и излив общедомового выпуска канализации"))
    big = [h for h in houses if len(h[1]) >= 10]
    for i, started in enumerate((now - timedelta(days=rng.randrange(60, 110)),
                                 now - timedelta(days=rng.randrange(20, 55)),
                                 now - timedelta(days=rng.randrange(3, 15)),
                                 now - timedelta(hours=rng.randrange(2, 5), minutes=rng.randrange(60)))):
        active = i == 3
        utility, code, title = kinds[rng.randrange(len(kinds))] if not active else kinds[0]
        house_id, residents = rng.choice(big)
        key = key_base + i
        hours = rng.randrange(3, 20)
        incidents.append(dict(
            key=key, house_id=house_id, title=title, utility=utility_code(utility) or "other", started_at=started,
            announcement=(f"Авария ({utility}) в доме, ведутся работы. Ориентировочное время устранения — "
                          f"{hours} ч." if not active else
                          f"Авария на вводе {utility}, вода перекрыта по всему дому. Аварийная бригада на месте."),
            localized_at=None if active else started + timedelta(minutes=rng.randrange(15, 40)),
            liquidated_at=None if active else started + timedelta(hours=hours),
            expected_end_at=started + timedelta(hours=6) if active else None,
        ))
        for k, resident in enumerate(rng.sample(residents, rng.randrange(3, 7))):
            moment = started + timedelta(minutes=3 + 7 * k + rng.randrange(5))
            if moment >= now - timedelta(minutes=1):
                break
            plans.append(_Plan(org.id, moment, code, rng.choice(TICKET_TEXTS[code][1]), Channel.PHONE, house_id,
                               resident, (resident[2], resident[3]), incident_key=key,
                               cap=(S.IN_PROGRESS if k == 0 else S.ASSIGNED) if active else None))
        liquidated = incidents[-1]["liquidated_at"]
        if liquidated is not None and liquidated + timedelta(minutes=5) < now:
            # What liquidation registers (regulations D7), written with the other plans.
            plans.append(_Plan(org.id, liquidated + timedelta(seconds=1), FOLLOW_UP_INSPECTION,
                               incident_services.follow_up_description(title, incidents[-1]["utility"], liquidated,
                                                                       ZoneInfo(org.timezone)),
                               Channel.PANEL, house_id, None, ("", ""), incident_key=key))
    return incidents, plans


class _Shadow:
    """What `_steps` reads of a ticket, for the bulk path."""

    def __init__(self, registered_at: datetime, is_emergency: bool, localize_due_at: datetime | None,
                 due_at: datetime) -> None:
        self.registered_at = registered_at
        self.is_emergency = is_emergency
        self.localize_due_at = localize_due_at
        self.due_at = due_at


def _steps(rng: random.Random, plan: _Plan, ticket: Ticket | _Shadow, now: datetime) -> list[tuple[str, datetime, Any]]:
    """The ticket's life after registration: (action, when, argument), all strictly before `now`."""
    reg = ticket.registered_at
    steps: list[tuple[str, datetime, Any]] = []
    if plan.cap == S.NEW or (plan.cap is None and now - reg < timedelta(hours=6) and rng.random() < 0.35):
        return steps  # still waiting for a dispatcher
    roll = rng.random()
    if plan.cap is None and roll < 0.03:
        steps.append(("cancelled", reg + timedelta(minutes=rng.randrange(5, 90)), rng.choice(CANCEL_REASONS)))
    elif plan.cap is None and roll < 0.05:
        steps.append(("rejected", reg + timedelta(minutes=rng.randrange(10, 180)), rng.choice(REJECT_REASONS)))
    else:
        emergency = ticket.is_emergency
        t = reg + timedelta(minutes=rng.randrange(1, 6) if emergency else rng.randrange(3, 40))
        steps.append(("assign", t, None))
        if plan.cap != S.ASSIGNED:
            t += timedelta(minutes=rng.randrange(4, 20) if emergency else rng.randrange(10, 240))
            steps.append(("in_progress", t, None))
            if emergency and ticket.localize_due_at is not None:
                late = rng.random() < 0.1
                loc = reg + timedelta(minutes=rng.randrange(31, 70) if late else rng.randrange(12, 30))
                t = max(t + timedelta(minutes=1), loc)
                steps.append(("localized", t, None))
            if plan.cap is None and rng.random() > 0.02:  # a few are forgotten: they turn overdue
                span = ticket.due_at - reg
                late = rng.random() < 0.1
                fraction = 1 + rng.uniform(0.05, 0.6) if late else rng.uniform(0.1, 0.95)
                t = max(t + timedelta(minutes=5), reg + span * fraction)
                steps.append(("done", t, None))
                if rng.random() < 0.97:
                    t += timedelta(hours=rng.uniform(1, 48))
                    steps.append(("closed", t, None))
        if rng.random() < 0.06:
            text, visibility = rng.choice(COMMENTS)
            steps.append(("comment", reg + (t - reg) * rng.uniform(0.2, 0.9), (text, visibility)))
    steps.sort(key=lambda step: step[1])
    return [step for step in steps if step[1] < now]


def _run_tickets(db: Database, rng: random.Random, plans: list[_Plan], staff: dict[int, _Staff],
                 incident_ids: dict[int, int], now: datetime) -> int:
    done = 0
    for start in range(0, len(plans), CHUNK):
        with db.write() as s:
            orgs = {o.id: o for o in s.scalars(select(Organization))}
            cats = {(c.organization_id, c.code): c for c in s.scalars(select(Category))}
            users = {u.id: u for u in s.scalars(select(User))}
            for plan in plans[start:start + CHUNK]:
                org = orgs[plan.org_id]
                team = staff[org.id]
                by = users[rng.choice(team.dispatchers)] if plan.channel != Channel.RESIDENT_WEB else None
                ticket = ticket_services.create_ticket(
                    s, org=org, by=by, now=plan.registered_at,
                    draft=TicketDraft(
                        category_id=cats[(org.id, plan.category_code)].id, description=plan.description,
                        channel=plan.channel, house_id=plan.house_id,
                        premise_id=plan.resident[1] if plan.resident else None,
                        resident_id=plan.resident[0] if plan.resident else None,
                        reporter_name=plan.reporter[0], reporter_phone=plan.reporter[1],
                        incident_id=incident_ids[plan.incident_key] if plan.incident_key is not None else None,
                        damage_detected_at=(plan.registered_at - timedelta(minutes=rng.randrange(5, 40))
                                            if plan.incident_key is not None else None),
                    ),
                )
                executor = users[rng.choice(team.executors)]
                for action, at, arg in _steps(rng, plan, ticket, now):
                    if action == "assign":
                        ticket_services.assign_ticket(s, org=org, ticket_id=ticket.id, executor_id=executor.id,
                                                      by=by or users[team.dispatchers[0]], now=at)
                    elif action == "localized":
                        ticket_services.mark_localized(s, org=org, ticket_id=ticket.id, by=executor, at=at, now=at)
                    elif action == "comment":
                        text, visibility = arg
                        ticket_services.add_comment(s, org=org, ticket_id=ticket.id, text=text,
                                                    visibility=visibility, by=users[team.dispatchers[0]], now=at)
                    else:
                        who = executor if action in ("in_progress", "done") else users[rng.choice(team.dispatchers)]
                        ticket_services.transition_ticket(s, org=org, ticket_id=ticket.id, to=S(action), by=who,
                                                          reason=str(arg or ""), now=at)
                done += 1
    return done


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None




def _bulk_tickets(db: Database, rng: random.Random, plans: list[_Plan], staff: dict[int, _Staff],
                  incident_ids: dict[int, int], now: datetime) -> int:
    """Old tickets as rows: what the services would have written, minus the per-row ORM cost.

    Same numbering (per organization and local year, in registration order; the counters are
    left at the last number so the services continue from there), same deadline rules, the same
    history actions and changes, and the municipality e-mail of each emergency as a sent outbox
    message with its attempt; `municipality_notified_at` set as the worker would set it.
    """
    from models import chain
    from models.rules.deadlines import compute_deadlines
    from models.ticket import TicketComment, TicketCounter, TicketHistory

    if not plans:
        return 0
    with db.write() as s:
        orgs = {o.id: o for o in s.scalars(select(Organization))}
        cats = {(c.organization_id, c.code): c for c in s.scalars(select(Category))}
        users = {u.id: u for u in s.scalars(select(User))}
        addresses = dict(s.execute(select(House.id, House.address)).all())
        labels = {pid: f"{kind} {number}" for pid, kind, number in s.execute(
            select(Premise.id, Premise.kind, Premise.number))}
        counters: dict[tuple[int, int], int] = {}
        for start in range(0, len(plans), 1000):
            batch = plans[start:start + 1000]
            rows: list[dict[str, Any]] = []
            lives: list[tuple[list[dict[str, Any]], list[dict[str, Any]], datetime | None]] = []
            for plan in batch:
                org = orgs[plan.org_id]
                category = cats[(org.id, plan.category_code)]
                tz = ZoneInfo(org.timezone)
                year = plan.registered_at.astimezone(tz).year
                counters[(org.id, year)] = counters.get((org.id, year), 0) + 1
                damage = (plan.registered_at - timedelta(minutes=rng.randrange(5, 40))
                          if plan.incident_key is not None else None)
                deadlines = compute_deadlines(
                    ticket_services.deadline_rule(org, category), registered_at=plan.registered_at, tz=tz,
                    damage_detected_at=damage, is_emergency=category.is_emergency,
                )
                team = staff[org.id]
                by = rng.choice(team.dispatchers) if plan.channel != Channel.RESIDENT_WEB else None
                executor = rng.choice(team.executors)
                shadow = _Shadow(plan.registered_at, category.is_emergency, deadlines.localize_due_at,
                                 deadlines.due_at)
                steps = _steps(rng, plan, shadow, now)
                row: dict[str, Any] = dict(
                    organization_id=org.id, number=f"{year}-{counters[(org.id, year)]:06d}", channel=plan.channel,
                    registered_at=plan.registered_at, registered_by_id=by, reporter_name=plan.reporter[0],
                    reporter_phone=plan.reporter[1] or None, resident_id=plan.resident[0] if plan.resident else None,
                    house_id=plan.house_id, premise_id=plan.resident[1] if plan.resident else None,
                    category_id=category.id, description=plan.description, is_emergency=category.is_emergency,
                    status=S.NEW, executor_id=None,
                    incident_id=incident_ids[plan.incident_key] if plan.incident_key is not None else None,
                    damage_detected_at=damage, localize_due_at=deadlines.localize_due_at, due_at=deadlines.due_at,
                    planned_due_at=deadlines.due_at, next_due_at=None, localized_at=None, resolved_at=None,
                    closed_at=None, closed_by_id=None, reopen_count=0, municipality_notified_at=None, rating=None,
                    updated_at=plan.registered_at,
                )
                history: list[dict[str, Any]] = [dict(at=plan.registered_at, user_id=by, action="created", from_status=None,
                                to_status=S.NEW.value, reason="",
                                changes={"category": [None, category.name], "description": [None, plan.description],
                                         "is_emergency": [None, category.is_emergency],
                                         "due_at": [None, _iso(deadlines.due_at)]})]
                comments: list[dict[str, Any]] = []
                for action, at, arg in steps:
                    if action == "assign":
                        row["executor_id"] = executor
                        row["status"] = S.ASSIGNED
                        history.append(dict(at=at, user_id=by or team.dispatchers[0], action="assigned",
                                            from_status=S.NEW.value, to_status=S.ASSIGNED.value, reason="",
                                            changes={"executor": [None, users[executor].full_name]}))
                    elif action == "localized":
                        row["localized_at"] = at
                        history.append(dict(at=at, user_id=executor, action="localized", from_status=None,
                                            to_status=None, reason="", changes={"localized_at": [None, _iso(at)]}))
                    elif action == "comment":
                        text, visibility = arg
                        comments.append(dict(author_id=team.dispatchers[0], text=text, visibility=visibility,
                                             created_at=at))
                        history.append(dict(at=at, user_id=team.dispatchers[0], action="commented",
                                            from_status=None, to_status=None, reason="",
                                            changes={"comment": [None, text], "visibility": [None, visibility.value]}))
                    else:
                        target = S(action)
                        who = executor if action in ("in_progress", "done") else rng.choice(team.dispatchers)
                        changes: dict[str, list[object]] = {}
                        if target == S.DONE:
                            row["resolved_at"] = at
                            changes["resolved_at"] = [None, _iso(at)]
                            if row["localize_due_at"] is not None and row["localized_at"] is None:
                                row["localized_at"] = at
                                changes["localized_at"] = [None, _iso(at)]
                        if target == S.CLOSED:
                            row["closed_at"] = at
                            row["closed_by_id"] = who
                            changes["closed_at"] = [None, _iso(at)]
                        history.append(dict(at=at, user_id=who, action="status", from_status=row["status"].value,
                                            to_status=target.value, reason=str(arg or ""), changes=changes))
                        row["status"] = target
                    row["updated_at"] = at
                notified = None
                if category.is_emergency and org.municipality_email:
                    notified = plan.registered_at + timedelta(seconds=rng.randrange(5, 90))
                    if notified < now:
                        row["municipality_notified_at"] = notified
                        history.append(dict(at=notified, user_id=None, action="municipality_notified",
                                            from_status=None, to_status=None, reason="",
                                            changes={"municipality_notified_at": [None, _iso(notified)],
                                                     "recipient": [None, org.municipality_email]}))
                        history.sort(key=lambda h: h["at"])
                        row["updated_at"] = max(row["updated_at"], notified)
                    else:
                        notified = None
                if row["status"] in (S.DONE, S.CLOSED, S.CANCELLED, S.REJECTED):
                    row["next_due_at"] = None
                elif row["localize_due_at"] is not None and row["localized_at"] is None:
                    row["next_due_at"] = row["localize_due_at"]
                else:
                    row["next_due_at"] = row["due_at"]
                rows.append(row)
                lives.append((history, comments, notified))
            ids = list(s.scalars(insert(Ticket).returning(Ticket.id, sort_by_parameter_order=True), rows))
            history_rows: list[dict[str, Any]] = []
            comment_rows: list[dict[str, Any]] = []
            messages: list[dict[str, Any]] = []
            for ticket_id, row, (history, comments, notified) in zip(ids, rows, lives, strict=True):
                org = orgs[row["organization_id"]]
                history_rows += [dict(h, organization_id=org.id, ticket_id=ticket_id) for h in history]
                comment_rows += [dict(c, organization_id=org.id, ticket_id=ticket_id) for c in comments]
                if notified is not None:
                    address = ", ".join(filter(None, (addresses.get(row["house_id"]), labels.get(row["premise_id"]))))
                    category_name = next(c.name for c in cats.values() if c.id == row["category_id"])
                    local = row["registered_at"].astimezone(ZoneInfo(org.timezone)).strftime("%d.%m.%Y %H:%M")
                    messages.append(dict(
                        organization_id=org.id, channel=MessageChannel.EMAIL, purpose=MUNICIPALITY_PURPOSE,
                        recipient=org.municipality_email, ticket_id=ticket_id, status=MessageStatus.SENT, attempts=1,
                        max_attempts=10, next_attempt_at=row["registered_at"], sent_at=notified, last_error="",
                        created_at=row["registered_at"],
                        subject=f"Авария: {address} — заявка № {row['number']}",
                        body=(f"{org.name} сообщает об аварийной ситуации.\n\n"
                              f"Заявка № {row['number']} от {local}\nАдрес: {address}\n"
                              f"Характер повреждения: {category_name}. {row['description']}\n\n"
                              f"Аварийно-диспетчерская служба {org.short_name}"),
                    ))
            chain.append(s.connection(), history_rows)  # in the order written: the tickets' order
            s.execute(insert(TicketHistory), history_rows)
            if comment_rows:
                s.execute(insert(TicketComment), comment_rows)
            if messages:
                message_ids = list(s.scalars(
                    insert(OutboxMessage).returning(OutboxMessage.id, sort_by_parameter_order=True), messages))
                s.execute(insert(OutboxAttempt), [
                    dict(message_id=mid, at=m["sent_at"], ok=True, detail="принято провайдером (демонстрационная история)")
                    for mid, m in zip(message_ids, messages, strict=True)
                ])
                seals.seal_ids(s.connection(), seals.NOTICES, message_ids)  # written past the session
        for (org_id, year), last in counters.items():
            s.add(TicketCounter(organization_id=org_id, year=year, last_value=last))
    return len(plans)


def _settle_past_outbox(db: Database, rng: random.Random, now: datetime) -> None:
    """The e-mails of the past were delivered then: mark them sent with their attempt rows."""
    cutoff = now - PENDING_WINDOW
    with db.write() as s:
        rows = s.execute(
            select(OutboxMessage.id, OutboxMessage.created_at, OutboxMessage.purpose, OutboxMessage.ticket_id,
                   OutboxMessage.recipient)
            .where(OutboxMessage.status == MessageStatus.PENDING, OutboxMessage.created_at < cutoff)
            .order_by(OutboxMessage.id)
        ).all()
        updates, attempts = [], []
        for message_id, created_at, purpose, ticket_id, recipient in rows:
            sent_at = created_at + timedelta(seconds=rng.randrange(2, 90))
            updates.append({"id": message_id, "status": MessageStatus.SENT, "sent_at": sent_at, "attempts": 1})
            attempts.append({"message_id": message_id, "at": sent_at, "ok": True, "detail": "принято провайдером (демонстрационная история)"})
            if purpose == MUNICIPALITY_PURPOSE and ticket_id is not None:
                ticket_services.record_municipality_notified(s, ticket_id=ticket_id, at=sent_at, recipient=recipient)
        if updates:
            s.execute(update(OutboxMessage), updates)
            s.execute(insert(OutboxAttempt), attempts)
            seals.seal_ids(s.connection(), seals.NOTICES, [u["id"] for u in updates])
        # The load's own events were never streamed to anyone: keep only the newest (so ids stay
        # monotonic on SQLite) and let the panels start from there. The notification consumer
        # starts there too: the load's notices are already history above, and from a cursor left
        # at 0 the deleted ids would wait as gaps and be reported missing 5 minutes after the
        # worker's start ("ids [1, 2, ...] never became visible").
        last = s.scalar(select(func.max(DomainEvent.id)))
        if last is not None:
            s.execute(delete(DomainEvent).where(DomainEvent.id < last))
            cursor = s.get(EventCursor, NOTIFICATIONS)
            if cursor is None:
                s.add(EventCursor(name=NOTIFICATIONS, last_event_id=last, gaps={}, updated_at=utcnow()))
            else:
                cursor.last_event_id, cursor.gaps, cursor.updated_at = last, {}, utcnow()


def load_demo(
    db: Database,
    *,
    seed: int = DEFAULT_SEED,
    tickets: int = DEFAULT_TICKETS,
    now: datetime | None = None,
    say: Callable[[str], None] = lambda _m: None,
    recordings_dir: Path | None = None,
) -> DemoSummary | None:
    """Load the demo into an empty database; returns None (and writes nothing) if it is not empty."""
    if not is_empty(db):
        return None
    from web.auth import hash_password

    started = time.perf_counter()
    now = now or utcnow()
    rng = random.Random(seed)
    people = _People(rng)
    summary = DemoSummary()
    pw_hash = hash_password(DEMO_PASSWORD)
    total_houses = sum(spec.houses for spec in ORGS)

    say("Организации, сотрудники, жилой фонд…")
    with db.write() as s:
        centre = DispatchCentre(name="ОДС Центральная")
        s.add(centre)
        s.flush()
        orgs = []
        for spec in ORGS:
            org = Organization(name=spec.name, short_name=spec.short_name, kind="УК", inn=spec.inn,
                               timezone=spec.timezone, municipality_email=spec.municipality_email, email=spec.email,
                               hotline_numbers=",".join(spec.hotlines), dispatch_centre_id=centre.id)
            s.add(org)
            s.flush()
            seed_default_categories(s, org)
            orgs.append(org)
        staff = _staff(s, orgs, people, pw_hash, summary)
        housing = {}
        left = TARGET_RESIDENTS
        for i, (org, spec) in enumerate(zip(orgs, ORGS, strict=True)):
            share = left if i == len(ORGS) - 1 else round(TARGET_RESIDENTS * spec.houses / total_houses)
            left -= share
            housing[org.id] = _housing(s, rng, people, org, spec, share, summary)
        org_ids = [o.id for o in orgs]
        org_objs = {o.id: o for o in orgs}
    summary.organizations = len(orgs)

    say("Аварии и заявки за 120 дней…")
    plans: list[_Plan] = []
    incident_specs: list[tuple[int, dict[str, Any]]] = []
    left = tickets
    for i, org_id in enumerate(org_ids):
        spec = ORGS[i]
        org = org_objs[org_id]
        specs, incident_plans = _incident_plans(rng, org, housing[org_id], now, key_base=10 * i)
        incident_specs += [(org_id, d) for d in specs]
        count = left if i == len(org_ids) - 1 else round(tickets * spec.houses / total_houses)
        left -= count
        plans += incident_plans
        # A fresh emergency: its municipality e-mail is still pending when the demo starts, so
        # the worker is seen delivering it and the journal marks the municipality notified.
        house_id, residents = rng.choice([h for h in housing[org_id] if h[1]])
        resident = rng.choice(residents)
        plans.append(_Plan(org_id, now - timedelta(minutes=rng.randrange(2, 9)), "emergency_hot_water",
                           "Горячая вода течёт с потолка в ванной, у соседей сверху никого нет", Channel.PHONE,
                           house_id, resident, (resident[2], resident[3]), cap=S.NEW))
        plans += _plans(rng, people, org, housing[org_id], max(count - len(incident_plans) - 1, 0), now)
    plans.sort(key=lambda p: p.registered_at)

    incident_ids: dict[int, int] = {}
    with db.write() as s:
        for org_id, d in incident_specs:
            owner = s.get(Organization, org_id)
            assert owner is not None
            incident = incident_services.create_incident(
                s, org=owner, house_id=d["house_id"], title=d["title"], utility=d["utility"],
                announcement=d["announcement"], started_at=d["started_at"], expected_end_at=d["expected_end_at"],
                by=None, now=d["started_at"],
            )
            if d["liquidated_at"] is not None:
                incident_services.localize_incident(s, org=owner, incident_id=incident.id, at=d["localized_at"],
                                                    now=d["localized_at"])
                # The follow-up inspection is one of the plans (_incident_plans), numbered with the others.
                incident_services.liquidate_incident(s, org=owner, incident_id=incident.id, at=d["liquidated_at"],
                                                     now=d["liquidated_at"], follow_up=False)
            incident_ids[d["key"]] = incident.id
    summary.incidents = len(incident_ids)

    split = now - timedelta(days=SERVICE_DAYS)
    old = [p for p in plans if p.registered_at < split]
    recent = [p for p in plans if p.registered_at >= split]
    say(f"Заявки: {len(old)} архивных одной пачкой, {len(recent)} последних дней через сервисы…")
    summary.tickets = _bulk_tickets(db, rng, old, staff, incident_ids, now)
    summary.tickets += _run_tickets(db, rng, recent, staff, incident_ids, now)
    say("Звонки, обратные вызовы, голосовые сообщения и оценки за неделю…")
    from openads.demo_calls import seed_call_week

    callers = {org_id: [r[3] for _h, residents in housing[org_id] for r in residents if r[3]] + [people.mobile()
                                                                                            for _ in range(20)]
               for org_id in org_ids}
    week = seed_call_week(db, rng, org_ids, {o: staff[o].dispatchers for o in org_ids}, callers, now,
                          recordings_dir=recordings_dir)
    summary.calls = week.answered + week.missed
    summary.missed_calls = week.missed
    summary.ratings = week.ratings
    say("Журнал уведомлений…")
    _settle_past_outbox(db, rng, now)
    summary.seconds = time.perf_counter() - started
    return summary


# --- the demo's mail sink ------------------------------------------------------------------------------


class MailSink:
    """A local SMTP server (aiosmtpd) that prints each message and keeps it as .eml under var/.

    The demo's worker sends to it, so the municipality and executor e-mails are really
    delivered over SMTP and the journal shows the municipality notified.
    """

    def __init__(self, out_dir: Path, host: str = "127.0.0.1", port: int = 8025,
                 echo: Callable[[str], None] = print) -> None:
        self.out_dir = out_dir
        self.host = host
        self.port = port
        self.echo = echo
        self.controller: Any = None
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.count += 1
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{self.count:04d}.eml").write_bytes(envelope.content)
        self.echo(f"[почта] → {', '.join(envelope.rcpt_tos)}: {message['subject']}")
        return "250 OK"

    def start(self) -> int:
        import logging

        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # one line per message is ours
        self.controller = Controller(self, hostname=self.host, port=self.port)
        self.controller.start()
        return self.port

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def logins_table(db: Database) -> list[tuple[str, str, str, str]]:
    """(login, full name, role, organizations) of every active user, for the demo's banner."""
    with db.read() as s:
        org_names = dict(s.execute(select(Organization.id, Organization.short_name)).all())
        rows = []
        for user in s.scalars(select(User).where(User.is_active.is_(True)).order_by(User.id)):
            orgs = ", ".join(org_names[m.organization_id] for m in user.memberships)
            rows.append((user.login, user.full_name, user.role.value, orgs))
        return rows


# --- telephony: the demo's Asterisk is the ARI emulator -------------------------------------------

DEMO_WAIT_LIMIT_SECONDS = 60  # a missed call (and the voice-message offer) comes after one minute
DEMO_DISPATCHER_PHONES = ("disp1", "disp2", "disp3", "disp4")  # PJSIP endpoint = the dispatcher's login


@dataclass(frozen=True)
class DemoPhone:
    endpoint: str  # "PJSIP/disp1"
    login: str
    full_name: str


@dataclass(frozen=True)
class DemoHotline:
    org_id: int
    org_name: str
    hotlines: tuple[str, ...]
    phones: tuple[DemoPhone, ...]


def configure_demo_telephony(db: Database) -> list[DemoHotline]:
    """Ring the demo dispatchers' phones (PJSIP/disp1..disp4, each the phone of the user with that
    login) for their organization's hotline calls, through the services of the administration page
    «Телефония» (models/services/telephony.py). Idempotent: an organization that has phones
    already is left as it is (someone may have changed them)."""
    from models.call import DispatcherPhone
    from models.services import telephony as telephony_svc

    out: list[DemoHotline] = []
    with db.write() as s:
        for org in s.scalars(select(Organization).order_by(Organization.id)):
            users = s.execute(
                select(User.login, User.id).join(Membership, Membership.user_id == User.id)
                .where(Membership.organization_id == org.id, User.login.in_(DEMO_DISPATCHER_PHONES))
                .order_by(User.login)
            ).all()
            if users and not telephony_svc.phones_of(s, org_id=org.id):
                telephony_svc.update_telephony(s, org=org, by=None,
                                               changes={"wait_limit_seconds": DEMO_WAIT_LIMIT_SECONDS})
                for login, user_id in users:
                    telephony_svc.add_phone(s, org=org, by=None, changes={
                        "endpoint": f"PJSIP/{login}", "user_id": user_id, "rings": True})
            phones = s.execute(
                select(DispatcherPhone.endpoint, User.login, User.full_name)
                .join(User, User.id == DispatcherPhone.user_id)
                .where(DispatcherPhone.organization_id == org.id).order_by(DispatcherPhone.endpoint)
            ).all()
            if org.hotlines:
                out.append(DemoHotline(org.id, org.short_name, tuple(org.hotlines),
                                       tuple(DemoPhone(*row) for row in phones)))
    return out


def run_ari_emulator(argv: list[str] | None = None) -> None:
    """The demo's Asterisk: the ARI emulator (`tests/emulator/ari`, run from the repository root),
    with the demo dispatchers' phones disp1..disp4, all answered by hand from the call simulator.
    With `--cdr-db` it writes every channel's CDR into that SQLite file as Asterisk's
    cdr_sqlite3_custom writes master.db (dialplan/cdr_sqlite3_custom.conf), and its dialplan
    fallback rings disp1..disp4, as `OPENADS_DISPATCHERS` does on a real Asterisk.

    `python -c "from openads.demo import run_ari_emulator; run_ari_emulator()" --port 8088 ...`
    (`openads demo` starts it so). Stops on SIGINT/SIGTERM."""
    import argparse
    import asyncio
    import logging
    import os
    import signal
    import sys

    parser = argparse.ArgumentParser(prog="openads-demo-asterisk")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--user", default="openads")
    parser.add_argument("--password", default=None, help="default: $OPENADS_DEMO_ARI_PASSWORD (kept out of `ps`)")
    parser.add_argument("--recordings-dir", required=True)
    parser.add_argument("--cdr-db", default=None, help="Asterisk's CDR table (master.db) to write")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    password = args.password or os.environ.get("OPENADS_DEMO_ARI_PASSWORD") or ""
    if not password:
        parser.error("--password or OPENADS_DEMO_ARI_PASSWORD is required")
    logging.basicConfig(level=logging.WARNING, format="[эмулятор ARI] %(levelname)s %(message)s")
    from tests.emulator.ari.scenario import AriEmulator  # the repository root must be on sys.path

    async def main() -> None:
        emu = AriEmulator(user=args.user, password=password, host=args.host, port=args.port,
                          recordings_dir=args.recordings_dir, strict=True, cdr_path=args.cdr_db,
                          fallback_dial=[f"PJSIP/{login}" for login in DEMO_DISPATCHER_PHONES])
        for i, login in enumerate(DEMO_DISPATCHER_PHONES, start=1):
            if f"PJSIP/{login}" not in emu.asterisk.endpoints:
                emu.asterisk.add_endpoint(login, f"Dispatcher {i}", f"20{i}")
            emu.asterisk.endpoints[f"PJSIP/{login}"].auto_answer = False  # the simulator answers
        await emu.start_async()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"[эмулятор ARI] {emu.ari_url}", flush=True)
        try:
            await stop.wait()
        finally:
            await emu.stop_async()

    asyncio.run(main())
