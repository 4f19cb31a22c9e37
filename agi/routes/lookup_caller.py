"""`lookup_caller`: who is calling, before a dispatcher's phone rings.

Dialplan: `AGI(agi://${OPENADS_AGI_HOST}:${OPENADS_AGI_PORT}/lookup_caller,${OPENADS_DID})`.
Reads the caller's number (`agi_callerid`) and the dialled hotline number (argument 1, else
`agi_extension`), finds the organization by its hotline number and the resident(s) by phone
within that organization, and sets on the channel:

- `CALLERID(name)`: the caller's name for the dispatchers' phone screens, e.g. "Леонидов кв.30"
  (models.rules.caller_name: the same text the ARI app shows when it rings them);
- `OPENADS_ORG_ID`, `OPENADS_CALLER`, and when found `OPENADS_RESIDENT_IDS`, `OPENADS_RESIDENT_ID`,
  `OPENADS_PREMISE_ID`, `OPENADS_HOUSE_ID` (see openads/channel_vars.py);
- `OPENADS_AGI_STATUS`: OK, UNKNOWN (number not in the residents list: the name is left as
  the network sent it), NO_ORG (the DID is no organization's hotline). FAILED is set by the
  server's wrapper on any error.

Reads only; writes nothing to the DB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from models.errors import ValidationFailed
from models.housing import Resident
from models.queries import residents_by_phone
from models.rules.caller_name import caller_name
from models.rules.phones import try_e164
from models.services.calls import UnknownDid, organization_for_did
from openads import channel_vars as cv

if TYPE_CHECKING:
    from agi.server import AgiCall


@dataclass(frozen=True)
class ResidentInfo:
    id: int
    full_name: str
    premise_kind: str
    premise_number: str
    premise_id: int | None
    house_id: int | None


@dataclass(frozen=True)
class CallerMatch:
    status: cv.AgiStatus
    org_id: int | None = None
    caller: str | None = None
    residents: list[ResidentInfo] = field(default_factory=list)

    @property
    def house_id(self) -> int | None:
        ids = {r.house_id for r in self.residents}
        return ids.pop() if len(ids) == 1 else None

    @property
    def premise_id(self) -> int | None:
        ids = {r.premise_id for r in self.residents}
        return ids.pop() if len(ids) == 1 else None


def _info(resident: Resident) -> ResidentInfo:
    premise = resident.premise
    return ResidentInfo(
        id=resident.id,
        full_name=resident.full_name,
        premise_kind=premise.kind if premise else "",
        premise_number=premise.number if premise else "",
        premise_id=premise.id if premise else None,
        house_id=premise.house_id if premise else None,
    )


def find_caller(session: Session, *, did: str | None, caller: str | None) -> CallerMatch:
    """The pure lookup (sync, one read session): organization by DID, then residents by phone."""
    try:
        org = organization_for_did(session, did)
    except (UnknownDid, ValidationFailed):  # not a hotline, or one that two organizations list
        org = None
    caller_e164 = try_e164(caller)
    if org is None:
        return CallerMatch(cv.AgiStatus.NO_ORG, caller=caller_e164)
    if caller_e164 is None:
        return CallerMatch(cv.AgiStatus.UNKNOWN, org_id=org.id)
    found = sorted(residents_by_phone(session, [org.id], caller_e164), key=lambda r: r.id)
    if not found:
        return CallerMatch(cv.AgiStatus.UNKNOWN, org_id=org.id, caller=caller_e164)
    return CallerMatch(cv.AgiStatus.OK, org_id=org.id, caller=caller_e164, residents=[_info(r) for r in found])


def _did_of(call: AgiCall) -> str:
    return call.arg(1) or call.headers.get("agi_extension", "") or call.headers.get("agi_dnid", "")


async def lookup_caller(call: AgiCall) -> None:
    did = _did_of(call)
    caller = call.headers.get("agi_callerid", "")
    match = await call.in_db(lambda s: find_caller(s, did=did, caller=caller))
    if match.org_id is not None:
        await call.set_variable(cv.ORG_ID, match.org_id)
    if match.caller:
        await call.set_variable(cv.CALLER, match.caller)
    if match.residents:
        await call.set_variable(cv.RESIDENT_IDS, ",".join(str(r.id) for r in match.residents))
        await call.set_variable(cv.RESIDENT_ID, match.residents[0].id if len(match.residents) == 1 else "")
        await call.set_variable(cv.PREMISE_ID, match.premise_id or "")
        await call.set_variable(cv.HOUSE_ID, match.house_id or "")
        await call.set_variable("CALLERID(name)", caller_name(match.residents))
    await call.set_variable(cv.AGI_STATUS, match.status)
