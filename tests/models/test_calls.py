from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models.call import Call, CallDirection, CallKind, CallOutcome, CallTicket, TelephonySettings
from models.errors import NotFound, TicketNotFound, ValidationFailed
from models.missed_call import CloseReason, MissedCall, MissedCallStatus
from models.outbox import DomainEvent
from models.queries_calls import CallFilter, call_card, caller_card, caller_cards, calls_journal
from models.recording import Recording, RecordingKind
from models.services import calls
from models.ticket import TicketStatus
from tests import factories as f

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _events(session, name):
    return [e.payload for e in session.scalars(select(DomainEvent).where(DomainEvent.name == name).order_by(DomainEvent.id))]


def test_when_call_arrives_on_a_hotline_then_call_of_that_organization_with_the_caller_card_event(session, world) -> None:
    org = session.merge(world.org_a)
    did_national = "8" + org.hotlines[0][2:]  # the trunk sends 8495…
    call = calls.register_inbound_call(session, did=did_national, caller="8 (916) 123-45-67", channel_id="1700000000.1",
                                       linkedid="1700000000.1", started_at=T0)
    assert (call.organization_id, call.direction, call.kind) == (org.id, CallDirection.INBOUND, CallKind.INBOUND)
    assert (call.did, call.phone, call.phone_raw) == (org.hotlines[0], "+79161234567", "8 (916) 123-45-67")
    assert call.resident_id == world.resident_a.id
    assert call.started_at == T0
    assert call.wait_deadline_at == T0 + timedelta(seconds=120)  # default wait limit
    assert call.outcome is None and call.ended_at is None
    [ringing] = _events(session, "call.ringing")
    assert ringing["call_id"] == call.id and ringing["phone"] == "+79161234567"
    [resident] = ringing["card"]["residents"]
    assert resident == {
        "id": world.resident_a.id, "full_name": "Леонидов Леонид Леонидович", "note": "ключи у старшей по дому",
        "premise_id": world.premise_a.id, "premise": "кв. 30", "house_id": world.house_a.id,
        "address": "г. Москва, ул. Ленина, д. 10", "account": resident["account"],
    }
    assert resident["account"].startswith("ЛС")


def test_duplicate_channel_id_returns_the_same_call_and_emits_once(session, world) -> None:
    org = session.merge(world.org_a)
    first = calls.register_inbound_call(session, did=org.hotlines[0], caller="+79161234567", channel_id="dup.1",
                                        started_at=T0)
    again = calls.register_inbound_call(session, did=org.hotlines[0], caller="+79161234567", channel_id="dup.1",
                                        started_at=T0 + timedelta(seconds=3))
    assert again.id == first.id and again.started_at == T0
    assert session.scalar(select(Call.id).where(Call.channel_id == "dup.1")) == first.id
    assert len(_events(session, "call.ringing")) == 1


def test_the_database_refuses_a_second_row_for_one_channel(session, world) -> None:
    org = session.merge(world.org_a)
    f.make_inbound_call(session, org, "+79161234567", at=T0, channel_id="uniq.1")
    session.add(Call(organization_id=org.id, direction=CallDirection.INBOUND, kind=CallKind.INBOUND,
                     channel_id="uniq.1", started_at=T0, phone_raw="", is_fallback=False))
    with pytest.raises(IntegrityError):
        session.flush()


def test_unknown_did_is_refused_and_a_did_cannot_belong_to_two_organizations(session, world) -> None:
    with pytest.raises(calls.UnknownDid):
        calls.register_inbound_call(session, did="+74990000000", caller="+79161234567", channel_id="x.1")
    with pytest.raises(calls.UnknownDid):
        calls.register_inbound_call(session, did="anonymous", caller="+79161234567", channel_id="x.2")
    assert session.scalar(select(Call.id)) is None
    org_b = session.merge(world.org_b)
    org_b.hotlines = [*org_b.hotlines, world.org_a.hotlines[0]]
    with pytest.raises(IntegrityError):  # hotlines.number is unique
        session.flush()


def test_unknown_and_anonymous_callers_get_an_empty_card(session, world) -> None:
    org = session.merge(world.org_a)
    unknown = calls.register_inbound_call(session, did=org.hotlines[0], caller="+79990001122", channel_id="u.1")
    anonymous = calls.register_inbound_call(session, did=org.hotlines[0], caller="anonymous", channel_id="u.2")
    assert unknown.resident_id is None and unknown.phone == "+79990001122"
    assert anonymous.phone is None and anonymous.phone_raw == "anonymous"
    cards = [e["card"] for e in _events(session, "call.ringing")]
    assert cards == [
        {"phone": "+79990001122", "residents": [], "tickets": [], "incidents": []},
        {"phone": None, "residents": [], "tickets": [], "incidents": []},
    ]


def test_wait_limit_above_five_minutes_is_refused(session, world) -> None:
    org = session.merge(world.org_a)
    for bad in (301, 0, -5, 3600):
        with pytest.raises(ValidationFailed) as exc:
            calls.update_telephony_settings(session, org=org, by=None, wait_limit_seconds=bad)
        assert exc.value.details["field"] == "wait_limit_seconds"
    row = calls.update_telephony_settings(session, org=org, by=None, wait_limit_seconds=300, auto_callback=True,
                                          recording_retention_days=365, ring_strategy="round_robin",
                                          dispatcher_endpoints=["PJSIP/disp1", " PJSIP/disp2", "PJSIP/disp1"])
    assert (row.wait_limit_seconds, row.auto_callback, row.recording_retention_days) == (300, True, 365)
    assert row.dispatcher_endpoints == ["PJSIP/disp1", "PJSIP/disp2"] and row.ring_strategy.value == "round_robin"
    with pytest.raises(ValidationFailed):
        calls.update_telephony_settings(session, org=org, by=None, ring_strategy="random")
    with pytest.raises(ValidationFailed):
        calls.update_telephony_settings(session, org=org, by=None, dispatcher_endpoints=["disp 1"])
    call = f.make_inbound_call(session, org, at=T0)
    assert call.wait_deadline_at == T0 + timedelta(seconds=300)


def test_the_database_itself_refuses_a_wait_limit_above_300_seconds(session, world) -> None:
    session.add(TelephonySettings(organization_id=world.org_b.id, wait_limit_seconds=301))
    with pytest.raises(IntegrityError):
        session.flush()


def test_answer_stores_dispatcher_and_wait_and_a_second_answer_conflicts(session, world) -> None:
    org = session.merge(world.org_a)
    disp, other = session.merge(world.dispatcher_a), session.merge(world.centre_dispatcher)
    call = f.make_inbound_call(session, org, "+79161234567", at=T0)
    answered = calls.mark_call_answered(session, org_id=org.id, call_id=call.id, by=disp, endpoint="PJSIP/disp1",
                                        dispatcher_channel_id="disp.7", at=T0 + timedelta(seconds=42))
    assert (answered.answered_at, answered.wait_seconds) == (T0 + timedelta(seconds=42), 42)
    assert (answered.answered_by_id, answered.dispatcher_endpoint) == (disp.id, "PJSIP/disp1")
    # the same answer again (a replayed event) is fine; another dispatcher is not
    calls.mark_call_answered(session, org_id=org.id, call_id=call.id, by=disp, at=T0 + timedelta(seconds=50))
    with pytest.raises(calls.CallStateConflict):
        calls.mark_call_answered(session, org_id=org.id, call_id=call.id, by=other, at=T0 + timedelta(seconds=50))
    assert _events(session, "call.answered") == [{
        "call_id": call.id, "direction": "inbound", "kind": "inbound", "phone": "+79161234567",
        "did": org.hotlines[0], "answered_by_id": disp.id, "endpoint": "PJSIP/disp1", "wait_seconds": 42,
    }]
    ended = calls.end_call(session, org_id=org.id, call_id=call.id, at=T0 + timedelta(minutes=5))
    assert ended.outcome == CallOutcome.ANSWERED and ended.ended_at == T0 + timedelta(minutes=5)
    # ending twice is a no-op
    calls.end_call(session, org_id=org.id, call_id=call.id, outcome=CallOutcome.FAILED, at=T0 + timedelta(minutes=9))
    assert ended.outcome == CallOutcome.ANSWERED and ended.ended_at == T0 + timedelta(minutes=5)
    assert [e["outcome"] for e in _events(session, "call.ended")] == ["answered"]
    assert session.scalar(select(MissedCall.id)) is None


def test_a_dispatcher_of_another_organization_cannot_answer_and_other_orgs_calls_are_not_found(session, world) -> None:
    org = session.merge(world.org_a)
    call = f.make_inbound_call(session, org, at=T0)
    with pytest.raises(ValidationFailed):
        calls.mark_call_answered(session, org_id=org.id, call_id=call.id, by=session.merge(world.dispatcher_b))
    with pytest.raises(calls.CallNotFound):
        calls.mark_call_answered(session, org_id=world.org_b.id, call_id=call.id, by=None)
    with pytest.raises(calls.CallNotFound):
        calls.end_call(session, org_id=world.org_b.id, call_id=call.id)


def test_a_missed_call_cannot_be_answered_afterwards(session, world) -> None:
    org = session.merge(world.org_a)
    call = f.make_inbound_call(session, org, "+79160001111", at=T0)
    calls.mark_call_missed(session, org_id=org.id, call_id=call.id, at=T0 + timedelta(minutes=2))
    assert call.outcome == CallOutcome.MISSED_TIMEOUT and call.wait_seconds == 120 and call.ended_at is None
    with pytest.raises(calls.CallStateConflict):
        calls.mark_call_answered(session, org_id=org.id, call_id=call.id, by=None)
    calls.end_call(session, org_id=org.id, call_id=call.id, at=T0 + timedelta(minutes=3))
    assert call.outcome == CallOutcome.MISSED_TIMEOUT


def test_caller_card_shows_residents_open_tickets_of_their_house_and_active_incidents(session, world) -> None:
    org = session.merge(world.org_a)
    cats = {k: session.merge(v) for k, v in world.cats_a.items()}
    other_premise = f.make_premise(session, world.house_a, "31")
    other_house = f.make_house(session, org)
    own = f.make_ticket(session, org, cats["other"], house_id=world.house_a.id, premise_id=world.premise_a.id,
                        now=T0 - timedelta(days=2))
    neighbour = f.make_ticket(session, org, cats["other"], house_id=world.house_a.id, premise_id=other_premise.id,
                              now=T0 - timedelta(days=1))
    elsewhere = f.make_ticket(session, org, cats["other"], house_id=other_house.id, now=T0)
    by_phone = f.make_ticket(session, org, cats["other"], reporter_phone="+79161234567", house_id=other_house.id,
                             now=T0 - timedelta(hours=1))
    done = f.make_ticket(session, org, cats["other"], house_id=world.house_a.id, premise_id=world.premise_a.id, now=T0)
    done.status = TicketStatus.CLOSED
    active = f.make_incident(session, world.house_a, started_at=T0 - timedelta(hours=3),
                             announcement="Авария ХВС, подъезд 2, устранение до 18:00")
    f.make_incident(session, world.house_a, started_at=T0 - timedelta(days=3), liquidated_at=T0 - timedelta(days=2))
    f.make_incident(session, other_house, started_at=T0)
    session.flush()

    card = caller_card(session, org_id=org.id, phone="+7 916 123-45-67")
    assert card.known and [r.id for r in card.residents] == [world.resident_a.id]
    # own premise first, then the rest of the house and the number's own tickets, newest first
    assert [t.id for t in card.tickets] == [own.id, by_phone.id, neighbour.id]
    assert elsewhere.id not in [t.id for t in card.tickets]
    assert card.tickets[0].category == cats["other"].name and card.tickets[0].status == "new"
    assert [(i.id, i.announcement) for i in card.incidents] == [(active.id, "Авария ХВС, подъезд 2, устранение до 18:00")]
    # tenant: the same number means nothing in the other organization; no number, no card
    assert caller_card(session, org_id=world.org_b.id, phone="+79161234567").residents == []
    assert caller_card(session, org_id=world.org_b.id, phone="+79161234567").tickets == []
    assert caller_card(session, org_id=org.id, phone=None).phone is None


def test_caller_cards_of_calls_arriving_together_are_each_phones_own_card(session, world) -> None:
    """The grouped read (one LATERAL statement per part on PostgreSQL) gives, phone by phone, what
    `caller_card` gives alone: residents, their own premise's tickets first, the house's incidents."""
    org = session.merge(world.org_a)
    cats = {k: session.merge(v) for k, v in world.cats_a.items()}
    second_house = f.make_house(session, org)
    flat_7, flat_8 = f.make_premise(session, second_house, "7"), f.make_premise(session, second_house, "8")
    f.make_resident(session, flat_7, ("+79163330001",), full_name="Петров Пётр Петрович")
    f.make_resident(session, flat_8, ("+79163330001",), full_name="Петрова Полина Петровна")  # a shared number
    f.make_resident(session, flat_8, ("+79163330002",), full_name="Сидоров Сидор Сидорович")
    for k, (house, premise) in enumerate([(world.house_a, world.premise_a), (second_house, flat_7),
                                          (second_house, flat_8), (second_house, None)]):
        f.make_ticket(session, org, cats["other"], house_id=house.id, premise_id=premise.id if premise else None,
                      now=T0 - timedelta(hours=k + 1))
    f.make_ticket(session, org, cats["other"], reporter_phone="+79990001111", now=T0)  # an unknown number's own
    f.make_incident(session, second_house, started_at=T0 - timedelta(hours=2), announcement="Нет ХВС")
    f.make_incident(session, world.house_a, started_at=T0 - timedelta(hours=1), announcement="Отключение света")
    session.flush()
    phones = ["+79163330001", "+7 916 123-45-67", None, "+79990001111", "anonymous", "+79163330002",
              "+79163330001", "+79995550000"]

    cards = caller_cards(session, org_id=org.id, phones=phones)

    assert cards == [caller_card(session, org_id=org.id, phone=p) for p in phones]
    assert [len(c.residents) for c in cards] == [2, 1, 0, 0, 0, 1, 2, 0]
    shared = cards[0]
    assert [t.premise_id for t in shared.tickets][:2] == [flat_7.id, flat_8.id]  # their own flats first
    assert [i.announcement for i in shared.incidents] == ["Нет ХВС"]
    assert [i.announcement for i in cards[1].incidents] == ["Отключение света"]
    assert len(cards[3].tickets) == 1 and cards[3].residents == []
    assert caller_cards(session, org_id=world.org_b.id, phones=["+79163330001"])[0].residents == []


def test_calls_arriving_together_are_registered_in_order_and_a_replay_in_the_group_emits_once(session, world) -> None:
    org_a, org_b = session.merge(world.org_a), session.merge(world.org_b)
    earlier = calls.register_inbound_call(session, did=org_a.hotlines[0], caller="+79160000009", channel_id="g.0",
                                          started_at=T0)
    arrivals = [
        calls.InboundArrival(did=org_a.hotlines[0], caller="+79161234567", channel_id="g.1", started_at=T0),
        calls.InboundArrival(did=org_b.hotlines[0], caller="+79160000002", channel_id="g.2", started_at=T0),
        calls.InboundArrival(did=org_a.hotlines[0], caller="+79161234567", channel_id="g.1", started_at=T0),
        calls.InboundArrival(did=org_a.hotlines[0], caller="+79160000009", channel_id="g.0", started_at=T0),
        calls.InboundArrival(did=org_a.hotlines[0], caller=None, channel_id="g.3", started_at=T0),
    ]

    registered = calls.register_inbound_calls(session, arrivals)

    got = [(c.channel_id, c.organization_id, c.resident_id, card.phone) for c, card in registered]
    assert got == [("g.1", org_a.id, world.resident_a.id, "+79161234567"), ("g.2", org_b.id, None, "+79160000002"),
                   ("g.1", org_a.id, world.resident_a.id, "+79161234567"), ("g.0", org_a.id, None, "+79160000009"),
                   ("g.3", org_a.id, None, None)]
    assert registered[0][0] is registered[2][0] and registered[3][0].id == earlier.id
    assert registered[0][1].residents[0].id == world.resident_a.id
    rows = session.execute(select(Call.channel_id, Call.organization_id).order_by(Call.id)).all()
    assert rows == [("g.0", org_a.id), ("g.1", org_a.id), ("g.2", org_b.id), ("g.3", org_a.id)]
    ringing = _events(session, "call.ringing")
    assert [e["call_id"] for e in ringing] == [earlier.id, registered[0][0].id, registered[1][0].id,
                                               registered[4][0].id]
    assert ringing[1]["card"]["residents"][0]["full_name"] == "Леонидов Леонид Леонидович"
    # the calls are persistent objects of the session, read without another query
    assert registered[1][0] in session and registered[1][0].wait_deadline_at == T0 + timedelta(seconds=120)


def test_a_group_with_a_did_that_is_no_hotline_writes_nothing(session, world) -> None:
    org = session.merge(world.org_a)
    with pytest.raises(calls.UnknownDid):
        calls.register_inbound_calls(session, [
            calls.InboundArrival(did=org.hotlines[0], caller="+79161234567", channel_id="u.1"),
            calls.InboundArrival(did="+78120000000", caller="+79161234567", channel_id="u.2"),
        ])
    assert session.scalars(select(Call.channel_id)).all() == []
    assert _events(session, "call.ringing") == []


def test_calls_journal_is_scoped_filtered_and_paged(session, world) -> None:
    org_a, org_b = session.merge(world.org_a), session.merge(world.org_b)
    a1 = f.make_inbound_call(session, org_a, "+79161234567", at=T0)
    a2 = f.make_inbound_call(session, org_a, "+79160002222", at=T0 + timedelta(minutes=1))
    a3 = f.make_inbound_call(session, org_a, "+79160003333", at=T0 + timedelta(minutes=1))
    b1 = f.make_inbound_call(session, org_b, "+79031112233", at=T0)
    calls.mark_call_answered(session, org_id=org_a.id, call_id=a1.id, by=session.merge(world.dispatcher_a),
                             at=T0 + timedelta(seconds=10))
    calls.end_call(session, org_id=org_a.id, call_id=a2.id, outcome=CallOutcome.ABANDONED, at=T0 + timedelta(minutes=2))

    def ids(org_ids, **kw):
        return [c.id for c in calls_journal(session, org_ids=org_ids, f=CallFilter(**kw))]

    assert ids([org_a.id]) == [a3.id, a2.id, a1.id]  # newest first, ties by id
    assert ids([org_b.id]) == [b1.id]
    assert ids([org_a.id, org_b.id], organization_id=org_b.id) == [b1.id]
    assert ids([org_a.id], organization_id=org_b.id) == []
    with pytest.raises(NotFound):
        calls_journal(session, org_ids=[])
    assert ids([org_a.id], missed=True) == [a2.id]
    assert ids([org_a.id], phone="8 916 123-45-67") == [a1.id]
    assert ids([org_a.id], phone="не номер") == []
    assert ids([org_a.id], answered_by_id=world.dispatcher_a.id) == [a1.id]
    assert ids([org_a.id], in_progress=True) == [a3.id, a1.id]
    page1 = calls_journal(session, org_ids=[org_a.id], f=CallFilter(limit=2))
    assert [c.id for c in page1] == [a3.id, a2.id]
    assert ids([org_a.id], limit=2, before=(page1[-1].started_at, page1[-1].id)) == [a1.id]
    with pytest.raises(NotFound):
        call_card(session, org_ids=[org_b.id], call_id=a1.id)


def test_call_links_to_tickets_of_its_own_organization_only(session, world) -> None:
    org = session.merge(world.org_a)
    call = f.make_inbound_call(session, org, "+79161234567", at=T0)
    ticket = f.make_ticket(session, org, session.merge(world.cats_a["other"]), now=T0)
    ticket_b = f.make_ticket(session, session.merge(world.org_b), session.merge(world.cats_b["other"]), now=T0)
    link = calls.link_call_to_ticket(session, org_id=org.id, call_id=call.id, ticket_id=ticket.id,
                                     by=session.merge(world.dispatcher_a), now=T0)
    again = calls.link_call_to_ticket(session, org_id=org.id, call_id=call.id, ticket_id=ticket.id, by=None)
    assert again is link and link.linked_by_id == world.dispatcher_a.id
    with pytest.raises(TicketNotFound):
        calls.link_call_to_ticket(session, org_id=org.id, call_id=call.id, ticket_id=ticket_b.id, by=None)
    with pytest.raises(calls.CallNotFound):
        calls.link_call_to_ticket(session, org_id=world.org_b.id, call_id=call.id, ticket_id=ticket_b.id, by=None)
    assert session.scalars(select(CallTicket.ticket_id)).all() == [ticket.id]
    session.expire_all()
    assert [t.id for t in call_card(session, org_ids=[org.id], call_id=call.id).tickets] == [ticket.id]


def test_recording_attach_is_idempotent_and_stays_inside_the_recordings_dir(session, world) -> None:
    org = session.merge(world.org_a)
    call = f.make_inbound_call(session, org, at=T0)
    path = f"{org.id}/2026/03/{call.id}.wav"
    rec = calls.attach_recording(session, org_id=org.id, call_id=call.id, path=path, duration_seconds=61,
                                 size_bytes=976_000, at=T0)
    same = calls.attach_recording(session, org_id=org.id, call_id=call.id, path=path, duration_seconds=62)
    assert same.id == rec.id and same.duration_seconds == 62 and same.size_bytes == 976_000
    for bad in ("/etc/passwd", "../x.wav", f"{org.id}/../../x.wav", ""):
        with pytest.raises(ValidationFailed):
            calls.attach_recording(session, org_id=org.id, call_id=f.make_inbound_call(session, org).id, path=bad)
    session.expire_all()
    assert call_card(session, org_ids=[org.id], call_id=call.id).recording.id == rec.id


def test_fallback_calls_from_cdr_join_the_journal_and_the_queue_once(session, world) -> None:
    org = session.merge(world.org_a)
    did = org.hotlines[0][1:]  # CDR dst without the plus
    answered = calls.record_fallback_call(
        session, did=did, src="89161234567", uniqueid="1700.10", linkedid="1700.10", start=T0,
        answer=T0 + timedelta(seconds=20), end=T0 + timedelta(minutes=3), disposition="ANSWERED",
        dispatcher_endpoint="PJSIP/disp2", recording_path=f"{org.id}/2026/03/fallback-1700.10.wav",
    )
    assert (answered.kind, answered.is_fallback, answered.outcome) == (CallKind.FALLBACK, True, CallOutcome.ANSWERED)
    assert (answered.wait_seconds, answered.dispatcher_endpoint, answered.resident_id) == (20, "PJSIP/disp2",
                                                                                           world.resident_a.id)
    missed = calls.record_fallback_call(
        session, did=did, src="+79160004444", uniqueid="1700.20", start=T0 + timedelta(minutes=1),
        end=T0 + timedelta(minutes=4), disposition="NO ANSWER", voicemail_path=f"{org.id}/2026/03/vm-1700.20.wav",
    )
    assert missed.outcome == CallOutcome.VOICEMAIL and missed.answered_at is None
    item = session.scalar(select(MissedCall).where(MissedCall.phone == "+79160004444"))
    assert item.deadline_at == T0 + timedelta(minutes=11) and item.calls_count == 1
    voice = session.get(Recording, item.voice_message_id)
    assert (voice.kind, voice.path) == (RecordingKind.VOICEMAIL, f"{org.id}/2026/03/vm-1700.20.wav")
    # the reconciler runs again: nothing doubles
    again = calls.record_fallback_call(session, did=did, src="+79160004444", uniqueid="1700.20",
                                       start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=4),
                                       disposition="NO ANSWER")
    assert again.id == missed.id and item.calls_count == 1
    assert len(session.scalars(select(Call.id)).all()) == 2
    assert len(_events(session, "call.ended")) == 2
    with pytest.raises(ValidationFailed):
        calls.record_fallback_call(session, did=did, src="+79160004444", uniqueid="1700.30", start=T0, end=T0,
                                   disposition="WHATEVER")


def test_a_fallback_call_answered_on_a_dispatchers_phone_is_answered_by_that_dispatcher(session, world) -> None:
    org = session.merge(world.org_a)
    calls.assign_dispatcher_phone(session, org=org, endpoint="PJSIP/201", user_id=world.dispatcher_a.id, by=None)

    def answered_on(endpoint: str, uniqueid: str) -> Call:
        return calls.record_fallback_call(
            session, did=org.hotlines[0], src="+79161234567", uniqueid=uniqueid, start=T0,
            answer=T0 + timedelta(seconds=9), end=T0 + timedelta(seconds=40), disposition="ANSWERED",
            dispatcher_endpoint=endpoint)

    mine, nobodys = answered_on("PJSIP/201", "1700.60"), answered_on("PJSIP/209", "1700.61")

    assert (mine.answered_by_id, mine.dispatcher_endpoint) == (world.dispatcher_a.id, "PJSIP/201")
    assert (nobodys.answered_by_id, nobodys.dispatcher_endpoint) == (None, "PJSIP/209")  # the panel shows the phone


def test_a_fallback_calls_recordings_keep_the_lengths_read_from_their_files(session, world) -> None:
    org = session.merge(world.org_a)
    talk = calls.record_fallback_call(
        session, did=org.hotlines[0], src="+79161234567", uniqueid="1700.70", start=T0,
        answer=T0 + timedelta(seconds=20), end=T0 + timedelta(seconds=28), disposition="ANSWERED",
        recording_path="fallback/2026/03/1700.70.wav", recording_seconds=28)
    vm = calls.record_fallback_call(
        session, did=org.hotlines[0], src="+79160004444", uniqueid="1700.71", start=T0, end=T0 + timedelta(minutes=3),
        disposition="NO ANSWER", recording_path="fallback/2026/03/1700.71.wav", recording_seconds=180,
        voicemail_path="voicemail/openads/100/INBOX/msg0001.wav", voicemail_seconds=12)
    unknown = calls.record_fallback_call(  # the caller could not read the file: answer → end
        session, did=org.hotlines[0], src="+79160005555", uniqueid="1700.72", start=T0,
        answer=T0 + timedelta(seconds=20), end=T0 + timedelta(seconds=50), disposition="ANSWERED",
        recording_path="fallback/2026/03/1700.72.wav")

    def lengths(call: Call) -> dict[RecordingKind, int | None]:
        return {r.kind: r.duration_seconds for r in session.scalars(select(Recording).where(Recording.call_id == call.id))}

    assert lengths(talk) == {RecordingKind.CONVERSATION: 28}
    assert lengths(vm) == {RecordingKind.CONVERSATION: 180, RecordingKind.VOICEMAIL: 12}
    assert lengths(unknown) == {RecordingKind.CONVERSATION: 30}


def test_a_call_the_app_registered_but_never_finished_is_completed_from_cdr(session, world) -> None:
    org = session.merge(world.org_a)
    call = f.make_inbound_call(session, org, "+79160005555", at=T0, channel_id="1700.40")
    done = calls.record_fallback_call(session, did=org.hotlines[0], src="+79160005555", uniqueid="1700.40", start=T0,
                                      end=T0 + timedelta(minutes=2), disposition="BUSY")
    assert done.id == call.id and done.outcome == CallOutcome.BUSY and done.ended_at == T0 + timedelta(minutes=2)
    item = session.scalar(select(MissedCall).where(MissedCall.phone == "+79160005555"))
    assert item.status == MissedCallStatus.OPEN and item.first_call_id == call.id


def test_an_answered_fallback_call_closes_the_callers_open_item(session, world) -> None:
    org = session.merge(world.org_a)
    item = f.make_missed_call(session, org, "+79160006666", at=T0)
    calls.record_fallback_call(session, did=org.hotlines[0], src="+79160006666", uniqueid="1700.50",
                               start=T0 + timedelta(minutes=4), answer=T0 + timedelta(minutes=5),
                               end=T0 + timedelta(minutes=8), disposition="ANSWERED")
    assert item.status == MissedCallStatus.CLOSED and item.close_reason == CloseReason.CALLED_AGAIN_ANSWERED
    assert item.closed_at == T0 + timedelta(minutes=5)


def test_wait_deadline_rule() -> None:
    from models.rules.deadlines import wait_deadline

    assert wait_deadline(T0, 300) == T0 + timedelta(minutes=5)
    with pytest.raises(ValueError):
        wait_deadline(T0, 301)


def test_a_call_the_watchdog_hands_to_the_fallback_is_completed_on_its_row_with_who_answered(session, world) -> None:
    org = session.merge(world.org_a)
    user = f.make_user(session, [org], login="fallback-answerer")
    calls.assign_dispatcher_phone(session, org=org, endpoint="PJSIP/disp2", user_id=user.id, by=None)
    call = f.make_inbound_call(session, org, "+79160007777", at=T0, channel_id="1700.60")
    assert calls.hand_call_to_fallback(session, channel_id="1700.60") is call and call.is_fallback
    assert calls.hand_call_to_fallback(session, channel_id="no-such-channel") is None
    done = calls.record_fallback_call(session, did=org.hotlines[0], src="+79160007777", uniqueid="1700.60", start=T0,
                                      answer=T0 + timedelta(seconds=40), end=T0 + timedelta(minutes=2),
                                      disposition="ANSWERED", dispatcher_endpoint="PJSIP/disp2")
    assert done.id == call.id and done.kind == CallKind.INBOUND and done.outcome == CallOutcome.ANSWERED
    assert (done.answered_by_id, done.dispatcher_endpoint, done.wait_seconds) == (user.id, "PJSIP/disp2", 40)
    assert len(session.scalars(select(Call.id).where(Call.phone == "+79160007777")).all()) == 1
    # ended: no longer handed anywhere
    assert calls.hand_call_to_fallback(session, channel_id="1700.60") is None


def test_the_watchdog_ends_a_conversation_of_any_organization_by_call_id(session, world) -> None:
    org = session.merge(world.org_b)
    call = f.make_inbound_call(session, org, "+79160008888", at=T0, channel_id="1700.70")
    calls.mark_call_answered(session, org_id=org.id, call_id=call.id, by=None, at=T0 + timedelta(seconds=5))
    ended = calls.end_call_of_any_org(session, call_id=call.id, at=T0 + timedelta(minutes=1))
    assert ended is call and call.outcome == CallOutcome.ANSWERED and call.ended_at == T0 + timedelta(minutes=1)
    assert calls.end_call_of_any_org(session, call_id=10**9) is None


def test_a_call_written_after_an_outage_waits_in_the_fallback_without_an_item_until_its_outcome(
        session, world) -> None:
    """Decision 0023: the call the app could not register is handed to the fallback, open and not
    missed: a dispatcher may be answering it there. A caller gone before the dialplan took the call
    is abandoned at that moment, with its item."""
    org = session.merge(world.org_a)
    did = org.hotlines[0].lstrip("+")
    handed = calls.register_fallback_arrival(
        session, calls.InboundArrival(did=did, caller="79160001212", channel_id="1700.80", started_at=T0))
    assert (handed.is_fallback, handed.ended_at, handed.outcome, handed.answered_at) == (True, None, None, None)
    assert session.scalars(select(MissedCall)).all() == []
    again = calls.register_fallback_arrival(
        session, calls.InboundArrival(did=did, caller="79160001212", channel_id="1700.80", started_at=T0))
    assert again is handed

    gone = calls.register_fallback_arrival(
        session, calls.InboundArrival(did=did, caller="79160001313", channel_id="1700.81", started_at=T0),
        gone_at=T0 + timedelta(seconds=3))
    assert (gone.is_fallback, gone.outcome, gone.ended_at) == (False, CallOutcome.ABANDONED, T0 + timedelta(seconds=3))
    [item] = session.scalars(select(MissedCall)).all()
    assert (item.phone, item.first_call_id, item.status) == ("+79160001313", gone.id, MissedCallStatus.OPEN)


def test_an_answer_seen_in_the_fallback_is_the_answer_of_the_user_whose_phone_picked_up(session, world) -> None:
    org = session.merge(world.org_a)
    user = f.make_user(session, [org], login="fallback-watch")
    calls.assign_dispatcher_phone(session, org=org, endpoint="PJSIP/disp2", user_id=user.id, by=None)
    earlier = f.make_missed_call(session, org, "+79160002424", at=T0 - timedelta(minutes=3))
    call = f.make_inbound_call(session, org, "+79160002424", at=T0, channel_id="1700.90")
    assert calls.answer_fallback_call(session, channel_id="1700.90", at=T0 + timedelta(seconds=20),
                                      dispatcher_endpoint="PJSIP/disp2") is None  # not handed to the fallback
    calls.hand_call_to_fallback(session, channel_id="1700.90")

    answered = calls.answer_fallback_call(session, channel_id="1700.90", at=T0 + timedelta(seconds=20),
                                          dispatcher_endpoint="PJSIP/disp2")
    assert answered is call
    assert (call.answered_at, call.answered_by_id, call.dispatcher_endpoint, call.wait_seconds) == (
        T0 + timedelta(seconds=20), user.id, "PJSIP/disp2", 20)
    assert (earlier.status, earlier.close_reason) == (MissedCallStatus.CLOSED, CloseReason.CALLED_AGAIN_ANSWERED)
    [event] = [e for e in _events(session, "call.answered") if e["call_id"] == call.id]
    assert (event["answered_by_id"], event["endpoint"], event["wait_seconds"]) == (user.id, "PJSIP/disp2", 20)
    # Seen again on the next look: nothing changes, nothing is announced twice.
    calls.answer_fallback_call(session, channel_id="1700.90", at=T0 + timedelta(seconds=22))
    assert call.answered_at == T0 + timedelta(seconds=20)
    assert len([e for e in _events(session, "call.answered") if e["call_id"] == call.id]) == 1
    ended = calls.end_call_of_any_org(session, call_id=call.id, at=T0 + timedelta(minutes=2))
    assert ended is call and call.outcome == CallOutcome.ANSWERED
    assert calls.answer_fallback_call(session, channel_id="1700.90", at=T0) is None  # ended
