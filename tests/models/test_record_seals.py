"""Tamper evidence for calls and outgoing messages (issue 14 item 7, decision 0041): each call that
is over and each message sent or given up is sealed in its organization's chain, once per
transaction, again when it changes afterwards; `openads audit verify` and the API name a call or a
message edited, deleted or written past the application, and a seal edited or deleted."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text, update

from models import chain, seals
from models.call import Call, CallDirection, CallKind, CallOutcome
from models.outbox import MessageChannel, MessageStatus, OutboxMessage
from models.seals import RecordSeal
from models.services import calls
from models.services.outbox import record_attempt
from tests import factories as f
from tests.models.test_hash_chain import _run_cli

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _seals(db: Any, org_id: int, name: str) -> list[RecordSeal]:
    with db.read() as s:
        rows = s.scalars(select(RecordSeal).where(RecordSeal.organization_id == org_id, RecordSeal.chain == name)
                         .order_by(RecordSeal.chain_seq)).all()
        s.expunge_all()
        return list(rows)


def _verify(db: Any, org_id: int, kind: seals.SealedKind) -> chain.ChainReport:
    with db.read() as s:
        return seals.verify(s.connection(), org_id, kind, batch=2)  # small batches: the walks cross them


def _call(db: Any, world: Any, n: int, *, answered: bool = True, org: str = "org_a") -> int:
    """A hotline call: registered, answered by the dispatcher (or not), ended, each step in its own
    transaction as the ARI app writes them."""
    with db.write() as s:
        o = s.merge(getattr(world, org))
        call = f.make_inbound_call(s, o, f"+7916000{n:04d}", at=T0 + timedelta(minutes=n), channel_id=f"seal.{n}")
        call_id, org_id = call.id, o.id
    if answered:
        with db.write() as s:
            calls.mark_call_answered(s, org_id=org_id, call_id=call_id, by=s.merge(world.dispatcher_a),
                                     endpoint="PJSIP/disp1", at=T0 + timedelta(minutes=n, seconds=20))
    with db.write() as s:
        calls.end_call(s, org_id=org_id, call_id=call_id, at=T0 + timedelta(minutes=n, seconds=90))
    return call_id


def _message(db: Any, world: Any, *, ok: bool = True, final: bool = False) -> int:
    with db.write() as s:
        m = OutboxMessage(organization_id=world.org_a.id, channel=MessageChannel.SMS, purpose="resident_done",
                          recipient="+79160000001", body="Заявка № 2026-000001 выполнена. Оцените работу: 1–5.",
                          created_at=T0)
        s.add(m)
        s.flush()
        record_attempt(s, m, ok=ok, detail="принято" if ok else "шлюз недоступен", at=T0 + timedelta(seconds=5),
                       provider_id="sms-77" if ok else None, final=final)
        return m.id


def _tamper(db: Any, sql: str, **params: Any) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(sql), params)


def _content(obj: Any, fields: tuple[str, ...]) -> list[Any]:
    return [getattr(obj, name) for name in fields]


def _canonical_json(values: list[Any]) -> str:
    """The documented serialisation (decision 0036), written out here rather than taken from the code."""
    def one(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return getattr(v, "value", v)
    return json.dumps([one(v) for v in values], ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def test_a_call_is_sealed_once_when_it_is_over_and_the_link_is_the_documented_one(db, world) -> None:
    answered = _call(db, world, 1)
    missed = _call(db, world, 2, answered=False)
    with db.write() as s:  # a call still going on has no seal
        live = f.make_inbound_call(s, s.merge(world.org_a), "+79160009999", at=T0, channel_id="seal.live").id
    rows = _seals(db, world.org_a.id, chain.CALLS)
    assert [r.record_id for r in rows] == [answered, missed]  # once each, though written in 2–3 transactions
    assert live not in [r.record_id for r in rows]
    prev = chain.GENESIS
    with db.read() as s:
        for r in rows:  # recomputed here from the stored call and the documented formula
            call = s.get(Call, r.record_id)
            content = hashlib.sha256(_canonical_json(_content(call, seals.CALL_FIELDS)).encode()).hexdigest()
            assert r.digest == content
            prev = hashlib.sha256(f"{prev}|{r.chain_seq}|{r.record_id}|{content}".encode()).hexdigest()
            assert r.chain_hash == prev
        assert s.get(Call, missed).outcome == CallOutcome.ABANDONED
    report = _verify(db, world.org_a.id, seals.CALLS)
    assert report.intact and report.rows == 2 and report.last_hash == rows[-1].chain_hash
    with db.read() as s:
        assert chain.chain_heads(s.connection(), world.org_a.id)[chain.CALLS] == (2, rows[-1].chain_hash)
    assert _seals(db, world.org_b.id, chain.CALLS) == []  # the other organization's chain is its own


def test_a_call_changed_after_it_ended_is_sealed_again_and_still_verifies(db, world) -> None:
    missed = _call(db, world, 3, answered=False)
    with db.write() as s:  # the voice message the caller left, written after the hang-up
        calls.attach_voice_message(s, org_id=world.org_a.id, call_id=missed, path="vm/seal3.wav",
                                   at=T0 + timedelta(minutes=4))
    rows = _seals(db, world.org_a.id, chain.CALLS)
    assert [r.record_id for r in rows] == [missed, missed]
    with db.read() as s:
        assert s.get(Call, missed).outcome == CallOutcome.VOICEMAIL
    assert _verify(db, world.org_a.id, seals.CALLS).intact


def test_messages_are_sealed_when_sent_or_given_up_and_again_on_the_delivery_report(db, world) -> None:
    sent = _message(db, world)
    retried = _message(db, world, ok=False)  # will be tried again: not over yet
    failed = _message(db, world, ok=False, final=True)
    assert [r.record_id for r in _seals(db, world.org_a.id, chain.NOTICES)] == [sent, failed]
    with db.write() as s:  # the worker's polling stamp alone changes no evidence field
        s.get(OutboxMessage, sent).delivery_checked_at = T0 + timedelta(minutes=1)
    assert len(_seals(db, world.org_a.id, chain.NOTICES)) == 2
    with db.write() as s:  # the SMS delivery report does
        m = s.get(OutboxMessage, sent)
        m.delivery_status, m.delivery_checked_at = "delivered", T0 + timedelta(minutes=2)
    assert [r.record_id for r in _seals(db, world.org_a.id, chain.NOTICES)] == [sent, failed, sent]
    assert retried not in [r.record_id for r in _seals(db, world.org_a.id, chain.NOTICES)]
    assert _verify(db, world.org_a.id, seals.NOTICES).intact


def test_a_bulk_update_in_the_same_transaction_is_sealed_as_stored(db, world) -> None:
    """The objects a bulk UPDATE leaves stale are not what is sealed: the stored rows are."""
    with db.write() as s:
        m = OutboxMessage(organization_id=world.org_a.id, channel=MessageChannel.SMS, purpose="resident_registered",
                          recipient="+79160000001", body="Заявка зарегистрирована.", created_at=T0)
        s.add(m)
        s.flush()
        s.execute(update(OutboxMessage).where(OutboxMessage.purpose.startswith("resident_"))
                  .values(status=MessageStatus.SENT, sent_at=T0 + timedelta(minutes=1), provider_message_id="p-1"))
        message_id = m.id
    [only] = _seals(db, world.org_a.id, chain.NOTICES)
    assert only.record_id == message_id
    assert _verify(db, world.org_a.id, seals.NOTICES).intact


def test_a_rolled_back_transaction_seals_nothing(db, world) -> None:
    with db.write() as s:
        call_id = f.make_inbound_call(s, s.merge(world.org_a), "+79160001111", at=T0, channel_id="seal.rb").id
    with pytest.raises(RuntimeError), db.write() as s:
        calls.end_call(s, org_id=world.org_a.id, call_id=call_id, at=T0 + timedelta(seconds=30))
        s.flush()
        raise RuntimeError("the request failed after the call was ended")
    assert _seals(db, world.org_a.id, chain.CALLS) == []
    with db.write() as s:  # and the next transaction is not handed the rolled-back one's records
        f.make_inbound_call(s, s.merge(world.org_a), "+79160001112", at=T0, channel_id="seal.rb2")
    assert _seals(db, world.org_a.id, chain.CALLS) == []


def test_an_edited_call_is_named_by_the_cli(db, world, database_url, monkeypatch, capsys) -> None:
    first, second = _call(db, world, 5), _call(db, world, 6)
    [seal_1, seal_2] = _seals(db, world.org_a.id, chain.CALLS)
    # The answer "moved" earlier, so the wait looks shorter than it was.
    _tamper(db, "UPDATE calls SET answered_at = started_at WHERE id = :id", id=second)
    report = _verify(db, world.org_a.id, seals.CALLS)
    assert not report.intact and report.chain == chain.CALLS
    assert report.broken_at == second and report.broken_seq == seal_2.chain_seq
    assert report.expected == seal_2.digest and report.stored != seal_2.digest
    assert "изменён" in report.problem
    code, out = _run_cli(monkeypatch, database_url, capsys, org=world.org_a.id)
    assert code == 1
    assert f"ЦЕПОЧКА НАРУШЕНА — цепочка звонков: звонок id {second}" in out
    assert "цепочка истории заявок цела" in out and "цепочка сообщений цела" in out
    assert first == seal_1.record_id


def test_a_deleted_call_a_deleted_or_edited_seal_and_an_unsealed_call_are_caught(db, world) -> None:
    first, second, third = (_call(db, world, n) for n in (7, 8, 9))
    rows = _seals(db, world.org_a.id, chain.CALLS)
    with db.engine.begin() as conn:
        snapshot = [dict(r) for r in conn.execute(select(RecordSeal.__table__)).mappings()]

    def restore() -> None:
        with db.engine.begin() as conn:
            conn.execute(RecordSeal.__table__.delete())
            conn.execute(insert(RecordSeal.__table__), snapshot)

    _tamper(db, "UPDATE record_seals SET digest = :d WHERE id = :id", d="0" * 64, id=rows[1].id)
    report = _verify(db, world.org_a.id, seals.CALLS)
    assert report.broken_at == second and report.broken_seq == 2 and "печать не совпадает" in report.problem
    restore()
    _tamper(db, "DELETE FROM record_seals WHERE id = :id", id=rows[1].id)
    report = _verify(db, world.org_a.id, seals.CALLS)
    assert report.broken_at == third and "пропущена печать № 2" in report.problem
    restore()
    assert _verify(db, world.org_a.id, seals.CALLS).intact
    _tamper(db, "DELETE FROM calls WHERE id = :id", id=first)
    report = _verify(db, world.org_a.id, seals.CALLS)
    assert report.broken_at == first and "удалён" in report.problem


def test_a_final_record_without_a_seal_is_reported(db, world) -> None:
    _call(db, world, 10)
    with db.engine.begin() as conn:
        conn.execute(insert(Call.__table__).values(
            organization_id=world.org_a.id, direction=CallDirection.INBOUND.value, kind=CallKind.INBOUND.value,
            phone="+79160000011", phone_raw="", channel_id="forged.3", started_at=T0, ended_at=T0,
            outcome=CallOutcome.ANSWERED.value, is_fallback=False))
        forged = conn.scalar(select(func.max(Call.id)))
    report = _verify(db, world.org_a.id, seals.CALLS)
    assert report.broken_at == forged and report.broken_seq is None and "без печати" in report.problem


def test_the_evidence_fields_are_a_stored_format() -> None:
    """Changing them would break every existing chain of seals."""
    assert seals.CALL_FIELDS == ("organization_id", "direction", "kind", "did", "phone", "channel_id", "started_at",
                                 "answered_at", "ended_at", "answered_by_id", "initiated_by_id", "outcome",
                                 "is_fallback")
    assert seals.NOTICE_FIELDS == ("organization_id", "channel", "purpose", "recipient", "subject", "body",
                                   "ticket_id", "created_at", "status", "sent_at", "provider_message_id",
                                   "delivery_status")
    row = {"organization_id": 3, "direction": CallDirection.INBOUND, "kind": "inbound", "did": "+74950000001",
           "phone": None, "channel_id": "c.1", "started_at": T0, "answered_at": None,
           "ended_at": T0 + timedelta(seconds=61), "answered_by_id": None, "initiated_by_id": None,
           "outcome": CallOutcome.ABANDONED, "is_fallback": False}
    expected = ('[3,"inbound","inbound","+74950000001",null,"c.1","2026-12-06T09:00:00.000000Z",null,'
                '"2026-12-06T09:01:01.000000Z",null,null,"abandoned",false]')
    assert chain.digest(row, seals.CALL_FIELDS) == hashlib.sha256(expected.encode()).hexdigest()


def test_the_migration_seals_what_is_already_over(fresh_url: str) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    from models.db import Database
    from models.migrate import alembic_config, upgrade

    upgrade(fresh_url)
    database = Database(fresh_url)
    try:
        with database.write() as s:
            orgs = [f.make_org(s, name=f"УК {i}", short_name=f"УК{i}") for i in range(2)]
        ids: dict[int, list[int]] = {o.id: [] for o in orgs}
        for i in range(4):
            with database.write() as s:
                org = s.merge(orgs[i % 2])
                call = f.make_inbound_call(s, org, f"+7916100{i:04d}", at=T0, channel_id=f"mig.{i}")
                calls.end_call(s, org_id=org.id, call_id=call.id, at=T0 + timedelta(seconds=40))
                ids[org.id].append(call.id)
        with database.write() as s:
            m = OutboxMessage(organization_id=orgs[0].id, channel=MessageChannel.EMAIL, purpose="municipality_emergency",
                              recipient="edds@example.org", subject="Авария", body="Текст", created_at=T0,
                              status=MessageStatus.SENT, sent_at=T0)
            s.add(m)
        live = {o.id: [(r.record_id, r.chain_seq, r.chain_hash) for r in _seals(database, o.id, chain.CALLS)]
                for o in orgs}
        config = alembic_config(fresh_url)
        before = ScriptDirectory.from_config(config).get_revision("0024_record_seals").down_revision
        command.downgrade(config, before)
        upgrade(fresh_url)
        for o in orgs:
            # Sealed in id order per organization: the very chain the writers had built.
            assert [(r.record_id, r.chain_seq, r.chain_hash) for r in _seals(database, o.id, chain.CALLS)] == live[o.id]
            assert [r.record_id for r in _seals(database, o.id, chain.CALLS)] == ids[o.id]
            assert _verify(database, o.id, seals.CALLS).intact and _verify(database, o.id, seals.NOTICES).intact
        assert len(_seals(database, orgs[0].id, chain.NOTICES)) == 1
        with database.write() as s:  # writers go on from the sealed head
            org = s.merge(orgs[0])
            call = f.make_inbound_call(s, org, "+79161009999", at=T0, channel_id="mig.after")
            calls.end_call(s, org_id=org.id, call_id=call.id, at=T0 + timedelta(seconds=5))
        assert _verify(database, orgs[0].id, seals.CALLS).rows == 3
    finally:
        database.dispose()
