"""Default ticket categories with the deadlines of ПП 416 п. 13 (every value editable per company)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time


@dataclass(frozen=True)
class CategorySpec:
    code: str
    name: str
    resolve_minutes: int | None
    localize_minutes: int | None = None
    is_emergency: bool = False
    window: tuple[time, time] | None = None
    count_from_damage: bool = False


DEFAULT_CATEGORIES: tuple[CategorySpec, ...] = (
    # D1 + D4: localise within 30 min, eliminate within 3 days from the damage.
    CategorySpec("emergency_cold_water", "Авария ХВС (течь, прорыв)", 3 * 24 * 60, 30, True, None, True),
    CategorySpec("emergency_hot_water", "Авария ГВС (течь, прорыв)", 3 * 24 * 60, 30, True, None, True),
    CategorySpec("emergency_heating", "Авария отопления", 3 * 24 * 60, 30, True, None, True),
    CategorySpec("emergency_sewer", "Авария канализации", 3 * 24 * 60, 30, True, None, True),
    CategorySpec("emergency_power", "Авария электроснабжения", 3 * 24 * 60, 30, True, None, True),
    # D2
    CategorySpec("sewer_blockage", "Засор канализации (внутридомовой)", 2 * 60),
    # D3: 2 h counted only 08:00–23:00 local time
    CategorySpec("garbage_chute_blockage", "Засор мусоропровода", 2 * 60, window=(time(8, 0), time(23, 0))),
    # Old Госстрой norms as configurable defaults
    CategorySpec("roof_leak", "Протечка кровли", 24 * 60),
    CategorySpec("entrance_door", "Неисправность входной двери подъезда", 24 * 60),
    CategorySpec("lighting", "Нет освещения в подъезде", 7 * 24 * 60),
    CategorySpec("elevator", "Неисправность лифта", 24 * 60),
    CategorySpec("intercom", "Неисправность домофона", 24 * 60),
    CategorySpec("cleaning", "Уборка подъезда и территории", 24 * 60),
    CategorySpec("heating_quality", "Недостаточная температура отопления", 2 * 60),
    # D7: registered by itself when an incident is liquidated (models/services/incidents.py); an
    # organization that deactivates the category gets no such tickets.
    CategorySpec("extraordinary_inspection", "Внеочередной осмотр общего имущества после аварии", 24 * 60),
    CategorySpec("other", "Прочее", None),
)


FOLLOW_UP_INSPECTION = "extraordinary_inspection"
