"""Rows of a housing stock file: the columns understood and what makes a row well-formed.

Pure: no I/O. `validate_row` turns one row as read (`RowData`: raw texts keyed by field) into typed
values (`CleanRow`), or raises `RowInvalid` listing every problem of the row, not only the first,
in Russian (issue 12 item B5): a row without a recognisable address, coordinates that are not
numbers or out of range, a floor or entrance that is not a number, a bad phone, e-mail or ФИАС id,
values given without the premise or the resident they belong to. Such a row is reported with its
number and never imported.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from models.rules.phones import InvalidPhone, to_e164

# field name → accepted headers (compared after `header_key`).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "address": ("адрес", "адрес дома", "address"),
    "fias_id": ("фиас", "гар", "фиас/гар", "код фиас", "guid", "fias", "fias_id", "fias id"),
    "latitude": ("широта", "latitude", "lat"),
    "longitude": ("долгота", "longitude", "lon", "lng"),
    "premise": ("помещение", "квартира", "кв", "кв.", "номер помещения", "№ помещения", "premise", "apartment", "flat"),
    "premise_kind": ("тип помещения", "тип", "premise type", "premise_type", "kind"),
    "entrance": ("подъезд", "entrance"),
    "floor": ("этаж", "floor"),
    "account": ("лицевой счет", "лицевой счёт", "лс", "л/с", "account", "account number"),
    "full_name": ("фио", "ф.и.о.", "житель", "собственник", "full name", "full_name", "name", "resident"),
    "phones": ("телефоны", "телефон", "phones", "phone"),
    "email": ("e-mail", "email", "эл. почта", "электронная почта", "почта"),
    "note": ("примечание", "заметка", "note", "notes", "comment"),
}
FIELD_TITLES_RU = {
    "address": "Адрес", "fias_id": "ФИАС", "latitude": "Широта", "longitude": "Долгота", "premise": "Помещение",
    "premise_kind": "Тип помещения", "entrance": "Подъезд", "floor": "Этаж", "account": "Лицевой счёт",
    "full_name": "ФИО", "phones": "Телефоны", "email": "Эл. почта", "note": "Примечание",
}
MAX_LENGTHS = {
    "address": 300, "premise": 20, "premise_kind": 20, "entrance": 10, "floor": 10, "account": 40,
    "full_name": 200, "email": 254, "note": 2000,
}
DEFAULT_PREMISE_KIND = "кв."
# Floors below ground are negative (подвал −1); the tallest residential buildings have about 100.
FLOOR_RANGE = (-5, 200)
ENTRANCE_RANGE = (1, 200)


def header_key(raw: object) -> str:
    return " ".join(str(raw or "").replace("ё", "е").replace("Ё", "Е").split()).lower().strip(" :*")


HEADER_MAP = {header_key(alias): name for name, aliases in COLUMN_ALIASES.items() for alias in aliases}


def norm(text: str) -> str:
    """Matching key: whitespace collapsed, case folded, ё → е."""
    return " ".join(text.split()).casefold().replace("ё", "е")


@dataclass
class RowData:
    """One data row as read from the file: raw text values keyed by field name."""

    row: int  # the row's number in the file, the header being row 1
    values: dict[str, str]

    def get(self, name: str) -> str:
        return self.values.get(name, "")


@dataclass
class CleanRow:
    row: int
    address: str
    address_key: str
    fias_id: str | None
    latitude: float | None
    longitude: float | None
    premise: str | None
    premise_kind: str | None
    entrance: str | None
    floor: str | None
    account: str | None
    full_name: str | None
    phones: list[str]
    email: str | None
    note: str | None


class RowInvalid(ValueError):
    """Every problem of one row, in Russian, in the order of the columns."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


_FIAS_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_SPLIT = re.compile(r"[;,]")
_LETTER_RE = re.compile(r"[^\W\d_]")
_DIGIT_RE = re.compile(r"\d")
_INT_RE = re.compile(r"^[+-]?\d+$")


def address_problem(address: str) -> str | None:
    """Why `address` cannot be a house's address (None: it can). A house address names a street
    or a settlement (letters) and a house number (a digit); «-», «нет», «#REF!», «12» are not addresses."""
    if not address:
        return "не указан адрес"
    if not _LETTER_RE.search(address) or not _DIGIT_RE.search(address):
        return f"адрес «{address}» не распознан: нужны улица (или населённый пункт) и номер дома"
    return None


def _coordinate(raw: str, title: str, low: float, high: float, problems: list[str]) -> float | None:
    if not raw:
        return None
    try:
        value = float(raw.replace(",", ".").replace(" ", ""))
    except ValueError:
        problems.append(f"{title} должна быть числом, получено «{raw}»")
        return None
    if value != value or not low <= value <= high:  # NaN compares false with everything
        problems.append(f"{title} вне диапазона {low:g}…{high:g}: «{raw}»")
        return None
    return value


def _whole(raw: str, title: str, bounds: tuple[int, int], problems: list[str]) -> str | None:
    """A floor or entrance number: a whole number within `bounds`, stored as its canonical text."""
    if not raw:
        return None
    text = raw.replace(" ", "")
    if not _INT_RE.match(text):
        problems.append(f"{title} должен быть целым числом, получено «{raw}»")
        return None
    value = int(text)
    low, high = bounds
    if not low <= value <= high:
        problems.append(f"{title} вне диапазона {low}…{high}: «{raw}»")
        return None
    return str(value)


def validate_row(data: RowData) -> CleanRow:
    """Typed values of one row, or RowInvalid listing all of its problems (Russian)."""
    v = data.get
    problems: list[str] = []
    for name, limit in MAX_LENGTHS.items():
        if len(v(name)) > limit:
            problems.append(f"поле «{FIELD_TITLES_RU[name]}» длиннее {limit} символов")
    address = " ".join(v("address").split())
    wrong_address = address_problem(address)
    if wrong_address:
        problems.append(wrong_address)
    fias = v("fias_id") or None
    if fias is not None:
        if _FIAS_RE.match(fias):
            fias = str(uuid.UUID(fias))
        else:
            problems.append(f"некорректный код ФИАС «{fias}»")
            fias = None
    latitude = _coordinate(v("latitude"), "широта", -90, 90, problems)
    longitude = _coordinate(v("longitude"), "долгота", -180, 180, problems)
    entrance = _whole(v("entrance"), "подъезд", ENTRANCE_RANGE, problems)
    floor = _whole(v("floor"), "этаж", FLOOR_RANGE, problems)
    premise = " ".join(v("premise").split()) or None
    account = " ".join(v("account").split()) or None
    full_name = " ".join(v("full_name").split()) or None
    email = v("email") or None
    note = v("note") or None
    if email is not None and not _EMAIL_RE.match(email):
        problems.append(f"некорректный адрес эл. почты «{email}»")
    phones: list[str] = []
    for raw in (p.strip() for p in _PHONE_SPLIT.split(v("phones"))):
        if not raw:
            continue
        try:
            e164 = to_e164(raw)
        except InvalidPhone:
            problems.append(f"некорректный номер телефона «{raw}»")
            continue
        if e164 not in phones:
            phones.append(e164)
    if premise is None:
        given = [FIELD_TITLES_RU[n] for n in ("account", "full_name", "phones", "email", "note", "entrance",
                                               "floor", "premise_kind") if v(n)]
        if given:
            problems.append(f"{_listed(given)} без помещения: не указано помещение")
    elif full_name is None:
        given = [FIELD_TITLES_RU[n] for n in ("phones", "email", "note") if v(n)]
        if given:
            problems.append(f"{_listed(given)} без жителя: не указано ФИО жителя")
    if problems:
        raise RowInvalid(problems)
    return CleanRow(
        row=data.row, address=address, address_key=norm(address), fias_id=fias, latitude=latitude,
        longitude=longitude, premise=premise, premise_kind=" ".join(v("premise_kind").split()) or None,
        entrance=entrance, floor=floor, account=account, full_name=full_name, phones=phones, email=email,
        note=note,
    )


def _listed(titles: list[str]) -> str:
    quoted = [f"«{t}»" for t in titles]
    return ("указано " if len(quoted) == 1 else "указаны ") + ", ".join(quoted)
