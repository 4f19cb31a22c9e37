"""API: the hash chains checked (GET /api/v1/audit/chain, decisions 0036 and 0041)."""

from __future__ import annotations

from sqlalchemy import select

from models.organization import Role
from models.services.tickets import TicketDraft, create_ticket
from models.ticket import TicketHistory
from tests import factories as f
from tests.models.test_hash_chain import _tamper
from tests.web.helpers import API


def _register(db, world, n: int = 2) -> None:
    for i in range(n):
        with db.write() as s:
            create_ticket(s, org=s.merge(world.org_a), by=None,
                          draft=TicketDraft(category_id=world.cats_a["other"].id, description=f"течь {i}"))


def test_managers_and_inspectors_get_the_head_of_their_organizations_chains(client, db, world, token_for) -> None:
    _register(db, world)
    with db.write() as s:
        inspector = f.make_user(s, [s.merge(world.org_a)], Role.INSPECTOR, login="gzhi", full_name="Проверяющий ГЖИ")
        last = s.scalars(select(TicketHistory.chain_hash).where(TicketHistory.organization_id == world.org_a.id)
                         .order_by(TicketHistory.chain_seq.desc())).first()
    for user in (world.manager_a, inspector):
        body = client.get(f"{API}/audit/chain", headers=token_for(user)).get_json()
        assert body["items"] == [
            {"organization_id": world.org_a.id, "chain": "ticket_history", "intact": True,
             "rows": 2, "last_seq": 2, "last_hash": last, "broken": None},
            *({"organization_id": world.org_a.id, "chain": name, "intact": True, "rows": 0, "last_seq": 0,
               "last_hash": "0" * 64, "broken": None} for name in ("calls", "notices")),  # nothing sealed yet
        ]
    # Another organization's chain is not shown; dispatchers and executors get none.
    assert client.get(f"{API}/audit/chain?organization_id={world.org_b.id}",
                      headers=token_for(world.manager_a)).status_code == 404
    assert client.get(f"{API}/audit/chain", headers=token_for(world.dispatcher_a)).status_code == 403


def test_a_broken_link_is_named(client, db, world, token_for) -> None:
    _register(db, world)
    with db.read() as s:
        first = s.scalars(select(TicketHistory).where(TicketHistory.organization_id == world.org_a.id)
                          .order_by(TicketHistory.chain_seq)).first()
        first_id, first_hash = first.id, first.chain_hash
    _tamper(db, "UPDATE ticket_history SET user_id = :u WHERE id = :id", u=world.dispatcher_a.id, id=first_id)
    body = client.get(f"{API}/audit/chain?organization_id={world.org_a.id}",
                      headers=token_for(world.manager_a)).get_json()
    item, calls, notices = body["items"]
    assert (item["chain"], calls["chain"], notices["chain"]) == ("ticket_history", "calls", "notices")
    assert calls["intact"] and notices["intact"]
    assert item["intact"] is False and item["rows"] == 1 and item["last_seq"] == 0
    assert item["broken"]["history_id"] == item["broken"]["record_id"] == first_id
    assert item["broken"]["chain_seq"] == 1
    assert item["broken"]["stored"] == first_hash and item["broken"]["expected"] != first_hash
