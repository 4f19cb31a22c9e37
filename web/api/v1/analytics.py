"""Managers' analytics (decision 0040): the «Отчёты → Аналитика» blocks for a period and the
«Сегодня» figures, for administrators, managers and inspectors — the panel's numbers, as JSON."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import request
from pydantic import Field

from models.interruption_report import hours, month_report
from models.rules import access
from models.rules.utilities import utility_title
from web.api.v1 import bp
from web.api.v1 import common as c
from web.api.v1.schemas import Out
from web.auth import require_user
from web.dbsession import session as db_session
from web.panel.analytics import GROUPS, report, today_cache
from web.panel.interruptions import interruptions_scope
from web.panel.ratings import rating_scope


class WorkloadOut(Out):
    key: int | None = Field(description="Исполнитель, категория или дом (null: не назначен / без адреса)")
    name: str
    tickets: int = Field(description="Заявок, зарегистрированных за период")
    done: int = Field(description="Выполнено (статус «выполнена» или «закрыта»)")
    done_on_time: int = Field(description="Выполнено не позже срока выполнения")
    overdue: int = Field(description="Выполнено позже срока или не выполнено, а срок прошёл")
    mean_seconds: float | None = Field(description="Среднее время от регистрации до выполнения, секунды")
    median_seconds: float | None = Field(description="Медиана времени до выполнения, секунды")


class AnswerBucketOut(Out):
    code: str = Field(description="lt30, 30_60, 1_2, 2_5, gt5 (ожидание ответа) или none (без ответа)")
    title: str
    calls: int


class RatingWeekOut(Out):
    first_day: date
    last_day: date
    count: int
    mean: float | None
    counts: list[int] = Field(description="Сколько оценок 1, 2, 3, 4, 5")


class AnalyticsOut(Out):
    period_from: date = Field(description="Первый день периода (местный день организации)")
    period_to: date = Field(description="Последний день периода включительно")
    by_executor: list[WorkloadOut]
    by_category: list[WorkloadOut]
    by_house: list[WorkloadOut]
    answer_times: list[AnswerBucketOut]
    ratings_by_week: list[RatingWeekOut]


class TodayOut(Out):
    organization_id: int
    day: date = Field(description="Сегодня: местный день организации")
    at: datetime = Field(description="Когда посчитано")
    calls: int = Field(description="Входящих звонков: принятых и завершённых без ответа")
    answered: int
    answered_in_5: int = Field(description="Принято не позже 5 минут")
    answered_in_5_share: float | None
    missed: int = Field(description="Пропущенных звонков сегодня (обращений в очереди)")
    called_back_in_10: int = Field(description="Житель достигнут не позже 10 минут")
    called_back_share: float | None
    missed_open: int = Field(description="Ждут перезвона, 10 минут ещё не прошли")
    breaches: int = Field(description="Открытых нарушений: breaches_missed + breaches_tickets")
    breaches_missed: int = Field(description="Пропущенные звонки без перезвона дольше 10 минут (за любой день)")
    breaches_tickets: int = Field(description="Открытые заявки с истёкшим сроком")
    emergencies_not_localised: int = Field(description="Открытые аварийные заявки без отметки о локализации")
    incidents_not_localised: int = Field(description="Аварии на домах, не локализованные и не устранённые")
    last_event_id: int


class TodayList(Out):
    items: list[TodayOut]


class InterruptionOut(Out):
    start: datetime
    end: datetime = Field(description="Ликвидация аварии; у продолжающегося перерыва — момент запроса")
    ongoing: bool
    hours: float = Field(description="Длительность целиком, ч")
    incident_ids: list[int] = Field(description="Аварии, составившие перерыв (совпавшие по времени считаются одним)")


class HouseUtilityOut(Out):
    organization_id: int
    house_id: int
    address: str
    utility: str = Field(description="cold_water, hot_water, sewerage, electricity, gas, heating")
    utility_title: str
    interruptions: list[InterruptionOut]
    total_hours: float = Field(description="Всего за месяц, ч")
    longest_hours: float = Field(description="Самый долгий перерыв целиком, ч")
    allowed_month_hours: int | None = Field(description="Допустимо за месяц, ч; null — не ограничено")
    allowed_single_hours: int | None = Field(description="Допустимо единовременно, ч; null — не ограничено")
    singles_over: int = Field(description="Перерывов дольше допустимого единовременно")
    hours_over: float = Field(description="Часов сверх нормы (основание снижения платы)")
    fee_reduction_percent: float = Field(description="Снижение платы за услугу за месяц, % (0,15 % за час)")
    breached: bool
    ongoing: bool


class InterruptionsOut(Out):
    month: str = Field(description="ГГГГ-ММ, местный месяц организации")
    breaches: int = Field(description="Строк с превышением")
    items: list[HouseUtilityOut]


RESPONSE_MODELS = (AnalyticsOut, TodayList, InterruptionsOut)


def _workload(rows: Any) -> list[dict[str, Any]]:
    return [{"key": r.key, "name": r.name, "tickets": r.tickets, "done": r.done, "done_on_time": r.done_on_time,
             "overdue": r.overdue, "mean_seconds": r.mean_seconds, "median_seconds": r.median_seconds} for r in rows]


@bp.get("/analytics")
def analytics() -> Any:
    user = require_user(access.ANALYTICS)
    org_ids, day_from, day_to, period = rating_scope(request.args, c.user_orgs(user), c.now())
    blocks = report(db_session(), org_ids, day_from, day_to, period, c.now())
    return {
        "period_from": day_from.isoformat(),
        "period_to": day_to.isoformat(),
        **{f"by_{by}": _workload(blocks["workload"][by]) for by in GROUPS},
        "answer_times": [{"code": b.code, "title": b.title, "calls": b.calls} for b in blocks["answers"]],
        "ratings_by_week": [{"first_day": w.first_day.isoformat(), "last_day": w.last_day.isoformat(),
                             "count": w.count, "mean": round(w.mean, 2) if w.mean is not None else None,
                             "counts": list(w.counts)} for w in blocks["weeks"]],
    }


@bp.get("/analytics/today")
def analytics_today() -> Any:
    user = require_user(access.ANALYTICS)
    s, now, cache = db_session(), c.now(), today_cache()
    items = []
    for oid in sorted(c.user_orgs(user)):
        figures = cache.figures(s, oid, now)
        items.append({**figures.as_payload(), "at": c.utc_iso(figures.at)})
    return {"items": items}


@bp.get("/analytics/interruptions")
def analytics_interruptions() -> Any:
    """The month's interruptions of utilities per house (regulations D5), as «Отчёты → Перерывы в подаче услуг»."""
    user = require_user(access.ANALYTICS)
    org_ids, month = interruptions_scope(request.args, c.user_orgs(user))
    report = month_report(db_session(), org_ids=org_ids, month=month, now=c.now())
    return {"month": f"{month:%Y-%m}", "breaches": report.breaches, "items": [{
        "organization_id": r.organization_id, "house_id": r.house_id, "address": r.address,
        "utility": r.ledger.utility, "utility_title": utility_title(r.ledger.utility),
        "interruptions": [{"start": c.utc_iso(st.start), "end": c.utc_iso(st.end), "ongoing": st.ongoing,
                           "hours": hours(st.hours), "incident_ids": list(st.incident_ids)}
                          for st in r.ledger.stretches],
        "total_hours": hours(r.ledger.total_hours), "longest_hours": hours(r.ledger.longest_hours),
        "allowed_month_hours": r.ledger.limit.month_hours, "allowed_single_hours": r.ledger.limit.single_hours,
        "singles_over": r.ledger.singles_over, "hours_over": hours(r.ledger.hours_over),
        "fee_reduction_percent": float(r.ledger.fee_reduction_percent), "breached": r.ledger.breached,
        "ongoing": r.ledger.ongoing,
    } for r in report.rows]}
