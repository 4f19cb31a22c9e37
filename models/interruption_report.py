"""«Перерывы в предоставлении коммунальных услуг»: one billing month's ledger of utility
interruptions per house against the allowed limits of ПП 354 Appendix 1 (regulations D5) — what a
manager checks before the residents' fee is recomputed and what an inspector asks for.

Read-only. The interruptions are the incidents of a limited utility (cold and hot water, sewerage,
electricity, gas, heating) from their start to their liquidation; the arithmetic is in
`models.rules.interruptions`. Each organization's month is its own local month and its own limits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models.export import Cell, Table
from models.housing import House
from models.organization import Organization
from models.rules import interruptions as rules
from models.rules.utilities import utility_title
from models.ticket import Incident

# Outages that ended this long before the month still load: one of them may be part of an interruption
# that runs into the month (two incidents of one outage), and the interruption's whole length counts.
CHAIN_MARGIN = timedelta(days=31)


def organization_limits(org: Organization) -> dict[str, rules.Limit]:
    """The organization's allowed interruptions: its own where it set them, the act's elsewhere."""
    try:
        return rules.parse_limits(org.interruption_limits)
    except rules.InvalidLimits:  # written by hand into the database: the act's table, not a broken report
        return dict(rules.DEFAULT_LIMITS)


@dataclass(frozen=True)
class HouseUtility:
    """One row of the report: a house's utility in the month."""

    organization_id: int
    organization: str
    house_id: int
    address: str
    ledger: rules.Ledger


@dataclass(frozen=True)
class MonthReport:
    month: date  # its first day
    rows: list[HouseUtility]  # breaches first, then by organization, address, utility

    @property
    def breaches(self) -> int:
        return sum(1 for r in self.rows if r.ledger.breached)


def month_report(session: Session, *, org_ids: Iterable[int], month: date, now: datetime) -> MonthReport:
    """The month's interruptions of every house of the organizations `org_ids` (an empty list: none)."""
    month = month.replace(day=1)
    rows: list[HouseUtility] = []
    orgs = session.scalars(select(Organization).where(Organization.id.in_(sorted(set(org_ids)) or [-1]))).all()
    for org in orgs:
        lo, hi = bounds = rules.month_bounds(month, ZoneInfo(org.timezone))
        limits = organization_limits(org)
        outages: dict[tuple[int, str], list[rules.Outage]] = defaultdict(list)
        addresses: dict[int, str] = {}
        found = session.execute(
            select(Incident.id, Incident.house_id, Incident.utility, Incident.started_at, Incident.liquidated_at,
                   House.address)
            .join(House, House.id == Incident.house_id)
            .where(Incident.organization_id == org.id, Incident.utility.in_(rules.LIMITED_UTILITIES),
                   Incident.started_at < hi,
                   or_(Incident.liquidated_at.is_(None), Incident.liquidated_at > lo - CHAIN_MARGIN))
        )
        for incident_id, house_id, utility, started_at, liquidated_at, address in found:
            outages[(house_id, utility)].append(rules.Outage(incident_id, started_at, liquidated_at))
            addresses[house_id] = address
        for (house_id, utility), items in outages.items():
            ledger = rules.ledger(utility, limits[utility], items, month=bounds, now=now)
            if ledger is not None:
                rows.append(HouseUtility(org.id, org.short_name, house_id, addresses[house_id], ledger))
    order = {u: i for i, u in enumerate(rules.LIMITED_UTILITIES)}
    rows.sort(key=lambda r: (not r.ledger.breached, r.organization, r.address, order[r.ledger.utility]))
    return MonthReport(month=month, rows=rows)


def stretch_text(stretch: rules.Stretch, tz: ZoneInfo) -> str:
    """"03.12 10:00–12:30", "31.12 20:00 – 01.01 06:00", "07.12 06:00 – продолжается" (local time)."""
    start, end = stretch.start.astimezone(tz), stretch.end.astimezone(tz)
    if stretch.ongoing:
        return f"{start:%d.%m %H:%M} – продолжается"
    if start.date() == end.date():
        return f"{start:%d.%m %H:%M}–{end:%H:%M}"
    return f"{start:%d.%m %H:%M} – {end:%d.%m %H:%M}"


def hours(value: float) -> float:
    """Hours as the report shows them: two decimals."""
    return round(value, 2)


XLSX_COLUMNS: tuple[tuple[str, int], ...] = (
    ("Организация", 20), ("Дом", 40), ("Ресурс", 18), ("Перерывов", 10), ("Перерывы (местное время)", 44),
    ("Всего за месяц, ч", 12), ("Допустимо за месяц, ч", 12), ("Самый долгий, ч", 12),
    ("Допустимо единовременно, ч", 14), ("Дольше допустимого", 12), ("Сверх нормы, ч", 12),
    ("Снижение платы, %", 12), ("Итог", 14),
)


def verdict(ledger: rules.Ledger) -> str:
    return "превышение" if ledger.breached else "в норме"


def xlsx_table(report: MonthReport, zones: dict[int, ZoneInfo]) -> Table:
    """The report as one sheet: a row per house and utility."""
    rows: list[list[Cell]] = []
    for r in report.rows:
        tz = zones.get(r.organization_id, ZoneInfo("UTC"))
        led = r.ledger
        rows.append([
            r.organization, r.address, utility_title(led.utility), len(led.stretches),
            "; ".join(stretch_text(s, tz) for s in led.stretches), hours(led.total_hours), led.limit.month_hours,
            hours(led.longest_hours), led.limit.single_hours, led.singles_over, hours(led.hours_over),
            float(led.fee_reduction_percent), verdict(led),
        ])
    return f"Перерывы {report.month:%m.%Y}", XLSX_COLUMNS, rows


__all__ = ["CHAIN_MARGIN", "HouseUtility", "MonthReport", "hours", "month_report", "organization_limits",
           "stretch_text", "verdict", "xlsx_table"]
