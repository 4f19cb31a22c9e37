"""The resource (utility) an incident concerns: a fixed list, stored as a code (issue 13 item 7).

`UTILITY_TITLES_RU` is the list the panel offers, in its order; `utility_code` reads the free
text stored before the list existed (best effort; the migration 0015 uses it).
"""

from __future__ import annotations

import re

UTILITY_TITLES_RU: dict[str, str] = {
    "cold_water": "ХВС",
    "hot_water": "ГВС",
    "heating": "Отопление",
    "electricity": "Электроснабжение",
    "gas": "Газоснабжение",
    "sewerage": "Водоотведение (канализация)",
    "lift": "Лифт",
    "roof": "Кровля",
    "intercom": "Домофон",
    "ventilation": "Вентиляция",
    "waste": "Мусоропровод",
    "other": "Другое",
}

# Stems of words people wrote in the free-text field, in the order they are tried.
_STEMS: tuple[tuple[str, str], ...] = (
    ("гвс", "hot_water"), ("горяч", "hot_water"),
    ("хвс", "cold_water"), ("холодн", "cold_water"), ("водоснаб", "cold_water"), ("вода", "cold_water"),
    ("отоплен", "heating"), ("тепл", "heating"),
    ("электр", "electricity"), ("свет", "electricity"),
    ("газ", "gas"),
    ("канализ", "sewerage"), ("водоотвед", "sewerage"), ("стоки", "sewerage"),
    ("лифт", "lift"),
    ("кровл", "roof"), ("крыш", "roof"),
    ("домофон", "intercom"),
    ("вентиляц", "ventilation"),
    ("мусор", "waste"),
)


def utility_code(text: str | None) -> str | None:
    """The code for free text ("" for none; None when nothing matches)."""
    value = (text or "").strip().lower()
    if not value:
        return ""
    if value in UTILITY_TITLES_RU:
        return value
    for title_code, title in UTILITY_TITLES_RU.items():
        if value == title.lower():
            return title_code
    words = re.sub(r"[^\wё]+", " ", value)
    for stem, code in _STEMS:
        if stem in words:
            return code
    return None


def utility_title(code: str | None) -> str:
    """A stored code as a person reads it (an unknown value, e.g. not yet migrated, as it is)."""
    if not code:
        return ""
    return UTILITY_TITLES_RU.get(code, code)


__all__ = ["UTILITY_TITLES_RU", "utility_code", "utility_title"]


# Incidents of these resources (and of an unspecified or "other" one) are reported to the
# municipality (ОМСУ/ЕДДС, regulations M1: in-house water, sewer, heating; electricity and gas as
# emergencies of the same kind). A lift, a roof or an intercom is not a utility accident.
MUNICIPALITY_UTILITIES = frozenset({"", "cold_water", "hot_water", "heating", "electricity", "gas", "sewerage",
                                    "other"})
