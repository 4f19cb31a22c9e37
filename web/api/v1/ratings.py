"""Residents' ratings: each executor's average over a period (managers and admins)."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import request
from pydantic import BaseModel, Field

from models.rules import access
from models.services import ratings as ratings_svc
from web.api.v1 import bp
from web.api.v1 import common as c
from web.api.v1.schemas import Out
from web.auth import require_user
from web.dbsession import session as db_session
from web.panel.ratings import rating_scope


class ExecutorRatingOut(Out):
    executor_id: int
    full_name: str
    count: int = Field(description="Сколько оценок за период")
    average: float = Field(description="Средняя оценка, 2 знака")
    low_count: int = Field(description="Сколько оценок 1–2")
    low_share: float = Field(description="Доля оценок 1–2, от 0 до 1 (2 знака)")


class ExecutorRatingList(Out):
    period_from: date = Field(description="Первый день периода (местный день организации)")
    period_to: date = Field(description="Последний день периода включительно")
    items: list[ExecutorRatingOut]


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (ExecutorRatingList,)


@bp.get("/ratings/executors")
def executor_ratings() -> Any:
    user = require_user(access.EXECUTOR_RATINGS)
    ids = c.user_orgs(user)
    org_ids, day_from, day_to, period = rating_scope(request.args, ids, c.now())
    rows = ratings_svc.executor_average_ratings(db_session(), org_ids=org_ids, period=period)
    return {
        "period_from": day_from.isoformat(),
        "period_to": day_to.isoformat(),
        "items": [
            {"executor_id": r.executor_id, "full_name": r.full_name, "count": r.count, "average": r.average,
             "low_count": r.low_count, "low_share": round(r.low_count / r.count, 2) if r.count else 0.0}
            for r in rows
        ],
    }
