"""Every resident of a house with an accident told of it and of its end (regulations Q4): one SMS or
e-mail per address, in the organization's templates, after the quiet hours, never twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models.errors import NotFound, ValidationFailed
from models.notification import ContactChannel, ResidentContactPreference
from models.outbox import MessageChannel, OutboxMessage
from models.rules.phones import display
from models.services import incidents
from models.services.ratings import robot_settings
from tests import factories as f

NOON = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # 12:00 in Moscow
NIGHT = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)  # 23:00 in Moscow: quiet hours until 09:00


@pytest.fixture
def house(session, world):
    """Ул. Ленина, д. 10: the world's resident and six more, reachable in different ways; a resident of
    another house."""
    org = session.merge(world.org_a)
    house = session.merge(world.house_a)
    flat = f.make_premise(session, house, "7")
    people = {
        "mobile": f.make_resident(session, flat, phones=("+79161112233",), full_name="Мобильная"),
        "landline_email": f.make_resident(session, flat, phones=("+74951112233",), email="lena@example.org",
                                          full_name="Городская"),
        "refused": f.make_resident(session, flat, phones=("+79162223344",), full_name="Отказалась"),
        "voice": f.make_resident(session, flat, phones=("+79163334455",), full_name="Звонки"),
        "same_phone": f.make_resident(session, flat, phones=("+79161112233",), full_name="Тот же номер"),
        "landline": f.make_resident(session, flat, phones=("+74952223344",), full_name="Только городской"),
    }
    session.add(ResidentContactPreference(organization_id=org.id, resident_id=people["refused"].id, opt_out=True))
    session.add(ResidentContactPreference(organization_id=org.id, resident_id=people["voice"].id,
                                          preferred_channel=ContactChannel.VOICE))
    f.make_resident(session, f.make_premise(session, session.merge(world.house_b), "1"), phones=("+79169998877",))
    incident = incidents.create_incident(
        session, org=org, house_id=house.id, title="Прорыв стояка ХВС", utility="cold_water",
        announcement="Перекрыт стояк ХВС в подъезде 2.", started_at=NOON - timedelta(hours=1),
        expected_end_at=NOON + timedelta(hours=5), by=None, now=NOON)
    return org, incident


def _told(session, incident_id: int, purpose: str) -> list[OutboxMessage]:
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.incident_id == incident_id,
                                                            OutboxMessage.purpose == purpose)
                                .order_by(OutboxMessage.id)))


def test_each_reachable_address_of_the_house_gets_the_notice_once(session, house) -> None:
    org, incident = house
    result = incidents.notify_residents(session, org=org, incident_id=incident.id, event="incident", now=NOON)
    assert (result.queued, result.already, result.unreachable) == (4, 1, 2)
    sent = _told(session, incident.id, "resident_incident")[1:]
    assert [(m.channel, m.recipient) for m in sent] == [
        (MessageChannel.SMS, "+79161112233"), (MessageChannel.EMAIL, "lena@example.org"),
        (MessageChannel.SMS, "+79163334455")]  # prefers robot calls: a house's notice is an SMS
    assert sent[0].body == ("УК «Альфа»: авария в доме г. Москва, ул. Ленина, д. 10 (ХВС). Перекрыт стояк ХВС в "
                            f"подъезде 2. Ориентировочное окончание: 02.03.2026 17:00. Аварийно-диспетчерская служба: "
                            f"{display(org.hotlines[0])}.")
    assert sent[1].subject == "УК «Альфа»: авария в доме г. Москва, ул. Ленина, д. 10" and sent[0].subject == ""
    assert {m.next_attempt_at for m in sent} == {NOON}
    # Pressed again: nobody is told twice.
    again = incidents.notify_residents(session, org=org, incident_id=incident.id, event="incident", now=NOON)
    assert (again.queued, again.already) == (0, 5)
    assert len(_told(session, incident.id, "resident_incident")) == 4


def test_at_night_sms_waits_for_the_end_of_quiet_hours_and_e_mail_goes_at_once(session, house) -> None:
    org, incident = house
    incidents.notify_residents(session, org=org, incident_id=incident.id, event="incident", now=NIGHT)
    when = {m.channel: m.next_attempt_at for m in _told(session, incident.id, "resident_incident")}
    assert when == {MessageChannel.SMS: datetime(2026, 3, 3, 6, 0, tzinfo=UTC), MessageChannel.EMAIL: NIGHT}


def test_the_end_is_told_after_liquidation_only_and_the_start_only_before(session, house) -> None:
    org, incident = house
    with pytest.raises(ValidationFailed, match="ещё не ликвидирована"):
        incidents.notify_residents(session, org=org, incident_id=incident.id, event="restored", now=NOON)
    incidents.liquidate_incident(session, org=org, incident_id=incident.id, at=NOON + timedelta(hours=2),
                                 now=NOON + timedelta(hours=2))
    with pytest.raises(ValidationFailed, match="уже ликвидирована"):
        incidents.notify_residents(session, org=org, incident_id=incident.id, event="incident", now=NOON)
    result = incidents.notify_residents(session, org=org, incident_id=incident.id, event="restored",
                                        now=NOON + timedelta(hours=2))
    assert result.queued == 4
    body = _told(session, incident.id, "resident_restored")[0].body
    assert body == "УК «Альфа»: авария в доме г. Москва, ул. Ленина, д. 10 (ХВС) устранена 02.03.2026 14:00. " \
                   "Спасибо за терпение!"


def test_nothing_goes_when_notifications_are_off_or_for_another_organizations_incident(session, world, house) -> None:
    org, incident = house
    settings = robot_settings(session, org.id)
    settings.notifications_enabled = False
    session.merge(settings)
    session.flush()
    with pytest.raises(ValidationFailed, match="отключены"):
        incidents.notify_residents(session, org=org, incident_id=incident.id, event="incident", now=NOON)
    with pytest.raises(NotFound):
        incidents.notify_residents(session, org=session.merge(world.org_b), incident_id=incident.id, event="incident",
                                   now=NOON)
    assert _told(session, incident.id, "resident_incident") == []
