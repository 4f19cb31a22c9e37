"""«Отчёты → Аналитика» and «Отчёты → Сегодня» (issue 14 item 6, decision 0040), for managers,
administrators and inspectors of the organization.

The analytics page shows the period's workload and timeliness per executor, category and house, the
answer times of calls and the ratings per week as tables (the page works without JavaScript) and,
with it, as charts (Chart.js, served from web/static/vendor/); the same blocks as an .xlsx of one
sheet per block.

The «Сегодня» dashboard shows today's compliance figures of each organization and updates them while
open: the page listens to the panel's event stream (/events/stream) and, after a ticket, call,
missed-call or incident event, asks /reports/today.json. The figures are computed once per
organization per event (and per minute, since deadlines pass without events): `TodayCache` keeps
each organization's last figures under the key (newest event id, minute), so a hundred dashboards
open on one organization cost one computation per event, not a hundred.
"""

from __future__ import annotations

import threading
from datetime import date, datetime
from typing import Any

from flask import Response, current_app, jsonify, render_template, request
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from models import analytics
from models.base import utcnow
from models.errors import ValidationFailed
from models.export import MIMETYPE, Cell, Table, iter_tables_xlsx
from models.queries import current_max_id
from models.rules import access
from web.auth import login_required, org_ids
from web.dbsession import session as db_session
from web.filters import duration_ru
from web.panel import bp
from web.panel.common import my_orgs
from web.panel.ratings import rating_scope

PAGE_ROWS = 50  # rows of a workload table on the page (most tickets first); the .xlsx has all
CHART_ROWS = 12  # bars of a workload chart
WORKLOAD_COLUMNS = ("Заявок", "Выполнено", "В срок", "Доля в срок", "Просрочено", "Среднее время", "Медиана")
GROUPS = ("executor", "category", "house")
GROUP_HEADINGS_RU = {"executor": "По исполнителям", "category": "По категориям", "house": "По домам"}


# --- the period's analytics --------------------------------------------------------------------------


def _scope(args: MultiDict[str, str]) -> tuple[list[int], date, date, tuple[datetime, datetime], str | None]:
    try:
        return (*rating_scope(args, org_ids(), utcnow()), None)
    except ValidationFailed as exc:
        return (*rating_scope(MultiDict(), org_ids(), utcnow()), exc.message)


def report(session: Session, ids: list[int], day_from: date, day_to: date, period: tuple[datetime, datetime],
           now: datetime) -> dict[str, Any]:
    """Every block of the page for the organizations `ids` and the period."""
    tz = analytics.organization_zone(session, ids)
    return {
        "workload": {by: analytics.workload(session, org_ids=ids, period=period, now=now, by=by) for by in GROUPS},
        "answers": analytics.answer_times(session, org_ids=ids, period=period),
        "weeks": analytics.ratings_by_week(session, org_ids=ids, day_from=day_from, day_to=day_to, tz=tz),
        "tz": tz,
    }


def _share(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def chart_data(blocks: dict[str, Any]) -> dict[str, Any]:
    """What the charts draw (the same numbers as the tables, cut to the largest rows)."""
    data: dict[str, Any] = {}
    for by in GROUPS:
        rows = blocks["workload"][by][:CHART_ROWS]
        data[by] = {
            "labels": [r.name for r in rows],
            "on_time": [r.done_on_time for r in rows],
            "late_done": [r.done - r.done_on_time for r in rows],
            "overdue_open": [r.overdue - (r.done - r.done_on_time) for r in rows],
            "other": [r.tickets - r.done - (r.overdue - (r.done - r.done_on_time)) for r in rows],
        }
    data["answers"] = {"labels": [b.title for b in blocks["answers"]], "calls": [b.calls for b in blocks["answers"]]}
    data["weeks"] = {
        "labels": [w.first_day.strftime("%d.%m") for w in blocks["weeks"]],
        "counts": [list(w.counts) for w in blocks["weeks"]],
        "mean": [round(w.mean, 2) if w.mean is not None else None for w in blocks["weeks"]],
    }
    return data


@bp.get("/reports/analytics")
@login_required(access.ANALYTICS)
def analytics_report() -> Any:
    orgs = my_orgs()
    ids, day_from, day_to, period, error = _scope(request.args)
    blocks = report(db_session(), ids, day_from, day_to, period, utcnow())
    query = {"organization_id": request.args.get("organization_id", ""), "from": day_from.isoformat(),
             "to": day_to.isoformat()}
    return render_template(
        "reports/analytics.html", orgs=orgs, day_from=day_from, day_to=day_to, chosen_org=query["organization_id"],
        query=query, blocks=blocks, charts=chart_data(blocks), groups=GROUPS, group_headings=GROUP_HEADINGS_RU,
        group_titles=analytics.GROUP_TITLES_RU, page_rows=PAGE_ROWS, share=_share, error=error,
    ), 400 if error else 200


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def xlsx_tables(blocks: dict[str, Any]) -> list[Table]:
    """One sheet per block: three workload sheets, the answer times, the ratings per week."""
    tables: list[Table] = []
    for by in GROUPS:
        columns = [(analytics.GROUP_TITLES_RU[by], 40 if by == "house" else 30), ("Заявок", 10), ("Выполнено", 12),
                   ("Выполнено в срок", 12), ("Доля в срок, %", 12), ("Просрочено", 12),
                   ("Среднее время до выполнения, ч", 16), ("Медиана, ч", 12), ("Среднее время", 14),
                   ("Медиана", 14)]
        rows: list[list[Cell]] = [
            [r.name, r.tickets, r.done, r.done_on_time, _percent(r.on_time_share), r.overdue,
             _hours(r.mean_seconds), _hours(r.median_seconds), duration_ru(r.mean_seconds),
             duration_ru(r.median_seconds)]
            for r in blocks["workload"][by]
        ]
        tables.append((GROUP_HEADINGS_RU[by], columns, rows))
    total = sum(b.calls for b in blocks["answers"])
    tables.append(("Время ответа", [("Время ожидания ответа", 24), ("Звонков", 10), ("Доля, %", 10)],
                   [[b.title, b.calls, _share(b.calls, total)] for b in blocks["answers"]]))
    tables.append(("Оценки по неделям", [("Неделя с", 12), ("по", 12), ("Оценок", 10), ("Средняя", 10),
                                         ("«1»", 8), ("«2»", 8), ("«3»", 8), ("«4»", 8), ("«5»", 8)],
                   [[w.first_day.strftime("%d.%m.%Y"), w.last_day.strftime("%d.%m.%Y"), w.count,
                     round(w.mean, 2) if w.mean is not None else None, *w.counts] for w in blocks["weeks"]]))
    return tables


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


@bp.get("/reports/analytics.xlsx")
@login_required(access.ANALYTICS)
def analytics_xlsx() -> Any:
    ids, day_from, day_to, period = rating_scope(request.args, org_ids(), utcnow())
    now = utcnow()
    blocks = report(db_session(), ids, day_from, day_to, period, now)
    filename = f"analytics-{day_from.isoformat()}-{day_to.isoformat()}.xlsx"
    body = b"".join(iter_tables_xlsx(xlsx_tables(blocks), tz=blocks["tz"], now=now))
    return Response(body, mimetype=MIMETYPE, headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                                      "Cache-Control": "no-store"})


# --- «Сегодня» ------------------------------------------------------------------------------------------------


class TodayCache:
    """Each organization's last «Сегодня» figures, under (newest event id, minute): recomputed after
    an event of the organization or when the minute turns, whoever asks and however many ask."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[int, tuple[tuple[int, datetime], analytics.TodayFigures]] = {}
        self.computed = 0  # how many times figures were computed (tests)

    def figures(self, session: Session, org_id: int, now: datetime) -> analytics.TodayFigures:
        key = (current_max_id(session, [org_id]), now.replace(second=0, microsecond=0))
        with self._lock:
            hit = self._items.get(org_id)
        if hit is not None and hit[0] == key:
            return hit[1]
        fresh = analytics.today_live_figures(session, org_id=org_id, now=now)
        with self._lock:
            self.computed += 1
            self._items[org_id] = (key, fresh)
        return fresh


def today_cache() -> TodayCache:
    cache: TodayCache = current_app.extensions.setdefault("openads.today_cache", TodayCache())
    return cache


def _today(ids: list[int]) -> list[analytics.TodayFigures]:
    s, now, cache = db_session(), utcnow(), today_cache()
    return [cache.figures(s, oid, now) for oid in ids]


@bp.get("/reports/today")
@login_required(access.ANALYTICS)
def today_dashboard() -> Any:
    orgs = [o for o in my_orgs() if o.id in org_ids()]
    figures = _today([o.id for o in orgs])
    last_id = max((f.last_event_id for f in figures), default=0)
    return render_template("reports/today.html", items=list(zip(orgs, figures, strict=True)), last_event_id=last_id)


@bp.get("/reports/today.json")
@login_required(access.ANALYTICS)
def today_figures() -> Any:
    """Today's figures of the caller's organizations (the dashboard asks after an event)."""
    ids = sorted(o.id for o in my_orgs() if o.id in org_ids())
    resp = jsonify({"organizations": [f.as_payload() for f in _today(ids)]})
    resp.headers["Cache-Control"] = "no-store"
    return resp
