"""The dispatcher's console (ux.md "One screen, three zones"): the home page of staff.

Left: the live call strip (ringing and active calls with the caller card) and below it the
missed-call queue sorted by deadline with big countdowns. Centre: the live ticket journal (the
journal page itself: `views.index` renders `console.html`, which extends `journal.html`). Right:
the card of whatever is selected. The browser keeps the zones live from the same event stream,
fetching one server-rendered item per event from the routes below.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import render_template
from sqlalchemy.orm import Session

from models import queries_calls as qc
from models.base import utcnow
from models.call import ROBOT_KINDS, Call
from models.organization import Organization
from models.rules.access import CALL_RECORDS
from web.auth import login_required, org_ids
from web.dbsession import session as db_session
from web.panel import bp
from web.panel.calls import SOON_SECONDS, card_context, countdown
from web.panel.common import STAFF, my_orgs, user

QUEUE_LIMIT = 200


def applies() -> bool:
    """Staff get the console as their home; an executor keeps the plain list of their tickets, an
    inspector the plain journal (the console is for acting)."""
    return user().role in STAFF


def strip_item(session: Session, call: Call) -> dict[str, Any]:
    return {"call": call, **card_context(session, call)}


def console_context(session: Session, orgs: list[Organization], now: datetime) -> dict[str, Any]:
    """The console's shell around the journal: one COUNT for the tab title, nothing else.

    The left zone's lists (calls with their caller cards, the missed-call queue) come from
    `/console/zone` right after the page loads, so the journal (what the dispatcher filters and
    pages through) never waits for them, however many calls are in progress.
    """
    ids = [o.id for o in orgs]
    return {
        "console": True,
        "missed_count": qc.missed_count(session, org_ids=ids) if ids else 0,
        "server_now": now.replace(tzinfo=UTC).isoformat(),
    }


def zone_context(session: Session, orgs: list[Organization], now: datetime) -> dict[str, Any]:
    """What the left zone shows on load (later kept live by the event stream)."""
    ids = [o.id for o in orgs]
    items = list(qc.missed_queue(session, org_ids=ids, limit=QUEUE_LIMIT)) if ids else []
    return {
        # The voice robot's calls have no dispatcher on them: the journal lists them, the strip does not.
        "strip": [strip_item(session, c) for c in qc.active_calls(session, org_ids=ids)
                  if c.kind not in ROBOT_KINDS] if ids else [],
        "missed": items,
        "org_map": {o.id: o for o in orgs},
        "countdown": countdown,
        "now": now,
        "soon_seconds": SOON_SECONDS,
    }


@bp.get("/console/zone")
@login_required(STAFF)
def console_zone() -> Any:
    """The left zone's calls and missed-call queue, fetched by the console after the page loads."""
    return render_template("calls/_console_zone.html", **zone_context(db_session(), my_orgs(), utcnow()))


@bp.get("/calls/<int:call_id>/strip")
@login_required(STAFF)
def call_strip_item(call_id: int) -> Any:
    """One call of the live strip with its caller card; 204 once the call is over."""
    s = db_session()
    call = qc.call_card(s, org_ids=org_ids(), call_id=call_id)
    if call.ended_at is not None:
        return "", 204
    return render_template("calls/_strip_item.html", it=strip_item(s, call),
                           org_map={o.id: o for o in my_orgs()})


@bp.get("/missed-calls/<int:missed_call_id>/item")
@login_required(CALL_RECORDS)
def missed_queue_item(missed_call_id: int) -> Any:
    """One item of the missed-call queue; 204 once it is closed."""
    s = db_session()
    item = qc.missed_call_card(s, org_ids=org_ids(), missed_call_id=missed_call_id)
    if not item.is_open:
        return "", 204
    return render_template("calls/_missed_item.html", m=item, now=utcnow(), countdown=countdown,
                           org_map={o.id: o for o in my_orgs()})
