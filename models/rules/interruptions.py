"""Allowed interruptions of utilities (ПП РФ № 354, Appendix 1; regulations D5) and one month's
ledger of them per house and utility (pure).

An interruption is an incident (авария) of a utility in a house, from its start to its liquidation;
one still going counts up to now. Per house, utility and calendar month (the billing period, in the
organization's time zone):

- overlapping or touching interruptions are merged: two incidents recorded for one outage (a second
  dispatcher, a second riser) are one interruption of the supply;
- the month's total is the merged time inside the month; the longest is the whole length of the
  longest interruption that touches the month (an interruption over the single limit is a breach
  whichever month it began in);
- the hours over: the month's total over the allowed total, or, for a utility with no monthly total
  (electricity), the time of each interruption past its single limit that falls inside the month;
- the fee reduction: 0.15 % of the month's fee for that utility per hour over (ПП 354 Appendix 1),
  counted on fractional hours, at most 100 %.

The limits are per organization (`parse_limits` / `format_limits`), `DEFAULT_LIMITS` where it has
none: electricity with two independent sources (2 h; 24 h with one), heating at +12 °C and above in
the flats (16 h; 8 h at +10…+12 °C, 4 h at +8…+10 °C).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from models.rules.utilities import UTILITY_TITLES_RU

FEE_PERCENT_PER_HOUR = Decimal("0.15")
MAX_LIMIT_HOURS = 744  # a 31-day month
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Limit:
    """Allowed interruption of one utility: in total per month and at once; None: no such limit."""

    month_hours: int | None
    single_hours: int | None


# ПП 354, Appendix 1: cold water п. 1, hot water п. 5, sewerage п. 8, electricity п. 9, gas п. 10, heating п. 15.
DEFAULT_LIMITS: dict[str, Limit] = {
    "cold_water": Limit(8, 4),
    "hot_water": Limit(8, 4),
    "sewerage": Limit(8, 4),
    "electricity": Limit(None, 2),
    "gas": Limit(4, None),
    "heating": Limit(24, 16),
}
LIMITED_UTILITIES = tuple(DEFAULT_LIMITS)


class InvalidLimits(ValueError):
    """A limits value that cannot be stored; the message is for the form."""


def _hours(raw: object, *, where: str) -> int | None:
    if raw is None or (isinstance(raw, str) and raw.strip() in ("", "-", "—", "нет")):
        return None
    if isinstance(raw, bool):
        raise InvalidLimits(f"{where}: ожидается число часов")
    try:
        value = int(str(raw).strip()) if not isinstance(raw, int) else raw
    except ValueError:
        raise InvalidLimits(f"{where}: ожидается целое число часов, получено «{str(raw)[:20]}»") from None
    if not 1 <= value <= MAX_LIMIT_HOURS:
        raise InvalidLimits(f"{where}: от 1 до {MAX_LIMIT_HOURS} часов")
    return value


def _pair(value: object, title: str) -> tuple[object, object]:
    """(hours a month, hours at once) as given: "8/4", {"month_hours": 8, "single_hours": 4} or (8, 4)."""
    if isinstance(value, str):
        month, sep, single = value.partition("/")
        if not sep:
            raise InvalidLimits(f"{title}: ожидается за_месяц/единовременно, например 8/4")
        return month, single
    if isinstance(value, Mapping):
        unknown = set(value) - {"month_hours", "single_hours"}
        if unknown:
            raise InvalidLimits(f"{title}: неизвестное поле {sorted(unknown)[0]!r}")
        return value.get("month_hours"), value.get("single_hours")
    if isinstance(value, tuple | list) and len(value) == 2:
        return value[0], value[1]
    raise InvalidLimits(f"{title}: ожидается {{\"month_hours\": …, \"single_hours\": …}}")


def parse_limits(raw: Mapping[str, object] | str | None) -> dict[str, Limit]:
    """An organization's limits as typed: a mapping utility → {"month_hours", "single_hours"} (or a
    pair), or text of lines "cold_water=8/4" ("-" for no limit). Utilities not given keep the
    default; the whole table is returned. Raises InvalidLimits naming the first bad entry."""
    if raw is None:
        return dict(DEFAULT_LIMITS)
    items: dict[str, object] = {}
    if isinstance(raw, str):
        for line in raw.replace(";", "\n").replace(",", "\n").splitlines():
            if not line.strip():
                continue
            name, sep, typed = line.partition("=")
            if not sep:
                raise InvalidLimits(f"«{line.strip()[:40]}»: ожидается ресурс=за_месяц/единовременно, "
                                    "например cold_water=8/4")
            items[name.strip()] = typed
    else:
        items = dict(raw)
    limits = dict(DEFAULT_LIMITS)
    for utility, value in items.items():
        if utility not in DEFAULT_LIMITS:
            known = ", ".join(LIMITED_UTILITIES)
            raise InvalidLimits(f"«{str(utility)[:40]}»: нет такого ресурса; можно: {known}")
        title = UTILITY_TITLES_RU[utility]
        month, single = _pair(value, title)
        limits[utility] = Limit(_hours(month, where=f"{title}, за месяц"),
                                _hours(single, where=f"{title}, единовременно"))
    return limits


def stored_limits(limits: Mapping[str, Limit]) -> dict[str, list[int | None]] | None:
    """What the organization's row keeps: only the limits that differ from the defaults (None: all default)."""
    own = {u: [v.month_hours, v.single_hours] for u, v in limits.items() if DEFAULT_LIMITS.get(u) != v}
    return own or None


def format_limit(limit: Limit) -> str:
    """For people: "8 ч в месяц, 4 ч единовременно"."""
    parts = [f"{limit.month_hours} ч в месяц" if limit.month_hours else "",
             f"{limit.single_hours} ч единовременно" if limit.single_hours else ""]
    return ", ".join(p for p in parts if p) or "без ограничения"


def format_limits(limits: Mapping[str, Limit]) -> str:
    """The whole table in one line (the audit log, the command line)."""
    return "; ".join(f"{UTILITY_TITLES_RU[u]}: {format_limit(limits[u])}" for u in LIMITED_UTILITIES if u in limits)


MONTHS_RU = ("Январь", "Февраль", "Март", "Апрель", "Май", "Июнь", "Июль", "Август", "Сентябрь", "Октябрь",
             "Ноябрь", "Декабрь")


def month_title(month: date) -> str:
    """"Декабрь 2026"."""
    return f"{MONTHS_RU[month.month - 1]} {month.year}"


def recent_months(current: date, count: int = 24) -> list[date]:
    """The first days of `current`'s month and the `count - 1` before it, newest first."""
    months = [current.replace(day=1)]
    while len(months) < count:
        months.append((months[-1] - timedelta(days=1)).replace(day=1))
    return months


def percent_text(value: Decimal) -> str:
    """"0,90 %": a percentage as the reports print it (a decimal comma)."""
    return f"{value} %".replace(".", ",")


def local_month(now: datetime, tz: ZoneInfo) -> date:
    """The first day of the month it is now in `tz`."""
    return now.astimezone(tz).date().replace(day=1)


def hours_text(value: float) -> str:
    """"6,00 ч": hours as the reports print them (two decimals, a decimal comma)."""
    return f"{value:.2f}".replace(".", ",") + " ч"


def month_bounds(month: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The billing month (its first day) as an interval [start, end) in UTC, from the local midnights."""
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    start = datetime(first.year, first.month, 1, tzinfo=tz)
    end = datetime(following.year, following.month, 1, tzinfo=tz)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


@dataclass(frozen=True)
class Outage:
    """One recorded interruption: an incident's start and liquidation (None: still going)."""

    incident_id: int
    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class Stretch:
    """Merged interruptions: the supply was off from `start` to `end` (now, when `ongoing`)."""

    start: datetime
    end: datetime
    ongoing: bool
    incident_ids: tuple[int, ...]

    @property
    def hours(self) -> float:
        return (self.end - self.start) / HOUR


def merge(outages: Iterable[Outage], now: datetime) -> list[Stretch]:
    """Overlapping or touching outages joined, in order of start; an open one ends now."""
    stretches: list[Stretch] = []
    for o in sorted(outages, key=lambda o: (o.start, o.incident_id)):
        end = min(o.end, now) if o.end is not None else now
        ongoing = o.end is None
        end = max(end, o.start)
        if stretches and o.start <= stretches[-1].end:
            # An open outage ends now, the latest end there is: a stretch holding one is open.
            last = stretches[-1]
            stretches[-1] = Stretch(last.start, max(last.end, end), last.ongoing or ongoing,
                                    (*last.incident_ids, o.incident_id))
        else:
            stretches.append(Stretch(o.start, end, ongoing, (o.incident_id,)))
    return stretches


def _overlap(start: datetime, end: datetime, lo: datetime, hi: datetime) -> float:
    return max((min(end, hi) - max(start, lo)) / HOUR, 0.0)


@dataclass(frozen=True)
class Ledger:
    """One house's one utility in one month."""

    utility: str
    limit: Limit
    stretches: list[Stretch]  # those that touch the month
    total_hours: float  # inside the month
    longest_hours: float  # the whole length of the longest
    hours_over: float  # the fee basis (see the module's text)
    singles_over: int  # interruptions longer than the single limit

    @property
    def over_month(self) -> bool:
        return self.limit.month_hours is not None and self.total_hours > self.limit.month_hours

    @property
    def breached(self) -> bool:
        return self.over_month or self.singles_over > 0

    @property
    def ongoing(self) -> bool:
        return any(s.ongoing for s in self.stretches)

    @property
    def fee_reduction_percent(self) -> Decimal:
        value = FEE_PERCENT_PER_HOUR * Decimal(str(round(self.hours_over, 4)))
        return min(value, Decimal(100)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def ledger(utility: str, limit: Limit, outages: Iterable[Outage], *, month: tuple[datetime, datetime],
           now: datetime) -> Ledger | None:
    """The month's figures of one house's utility; None when no interruption touches the month."""
    lo, hi = month
    stretches = [s for s in merge(outages, now) if s.start < hi and s.end > lo]
    if not stretches:
        return None
    total = sum(_overlap(s.start, s.end, lo, hi) for s in stretches)
    single = limit.single_hours
    singles_over = sum(1 for s in stretches if single is not None and s.hours > single)
    if limit.month_hours is not None:
        over = max(total - limit.month_hours, 0.0)
    elif single is not None:
        over = sum(_overlap(s.start + single * HOUR, s.end, lo, hi) for s in stretches)
    else:
        over = 0.0
    return Ledger(utility=utility, limit=limit, stretches=stretches, total_hours=total,
                  longest_hours=max(s.hours for s in stretches), hours_over=over, singles_over=singles_over)


__all__ = ["DEFAULT_LIMITS", "FEE_PERCENT_PER_HOUR", "LIMITED_UTILITIES", "MONTHS_RU", "InvalidLimits", "Ledger",
           "Limit", "Outage", "Stretch", "format_limit", "format_limits", "hours_text", "ledger", "merge",
           "local_month", "month_bounds", "month_title", "parse_limits", "percent_text", "recent_months",
           "stored_limits"]
