"""The hash chains checked (issue 14 item 7, decisions 0036 and 0041): the ticket history, the
sealed calls and messages — what `openads audit verify` prints, per organization and chain: intact
with its head (the anchor an inspector writes down), or the first broken link. Administrators,
managers and inspectors; the `read` scope."""

from __future__ import annotations

from typing import Any

from flask import request
from pydantic import BaseModel, Field

from models import chain, seals
from models.errors import NotFound
from models.rules import access
from web.api.v1 import bp
from web.api.v1 import common as c
from web.api.v1.schemas import Out
from web.auth import require_user
from web.dbsession import session as db_session
from web.inputs import optional_int


class ChainBreakOut(Out):
    history_id: int | None = Field(description="Запись истории, на которой цепочка нарушена (для цепочки "
                                               "ticket_history; null — удалены записи в конце или другая цепочка)")
    record_id: int | None = Field(description="Запись, на которой цепочка нарушена: строка истории (ticket_history), "
                                              "звонок (calls) или сообщение (notices); null — удалены записи в конце")
    chain_seq: int | None = Field(description="Её номер в цепочке (для конца цепочки — номер по голове)")
    expected: str | None = Field(description="Каким должен быть хеш (SHA-256, hex)")
    stored: str | None = Field(description="Какой записан")
    problem: str


class ChainOut(Out):
    organization_id: int
    chain: str = Field(description="Цепочка: ticket_history — история заявок, calls — печати завершённых "
                                   "звонков, notices — печати отправленных сообщений")
    intact: bool
    rows: int = Field(description="Сколько записей (для calls и notices — печатей) проверено")
    last_seq: int = Field(description="Номер последней верной записи")
    last_hash: str = Field(description="Её хеш: при целой цепочке — голова, которую стоит записать и сверять")
    broken: ChainBreakOut | None


class ChainList(Out):
    items: list[ChainOut]


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (ChainList,)


def chain_json(report: chain.ChainReport) -> dict[str, Any]:
    broken = None if report.intact else {
        "history_id": report.broken_at if report.chain == chain.TICKET_HISTORY else None,
        "record_id": report.broken_at, "chain_seq": report.broken_seq, "expected": report.expected,
        "stored": report.stored, "problem": report.problem,
    }
    return {"organization_id": report.organization_id, "chain": report.chain, "intact": report.intact,
            "rows": report.rows, "last_seq": report.last_seq, "last_hash": report.last_hash, "broken": broken}


@bp.get("/audit/chain")
def audit_chain() -> Any:
    user = require_user(access.HISTORY_CHAIN)
    wanted = optional_int(request.args.get("organization_id"), "organization_id")
    ids = c.user_orgs(user)
    if wanted is not None:
        if wanted not in ids:  # another organization's is "not found", as everywhere
            raise NotFound("организация не найдена", organization_id=wanted)
        ids = [wanted]
    conn = db_session().connection()
    return {"items": [chain_json(r) for org_id in sorted(ids) for r in seals.verify_all(conn, org_id)]}
