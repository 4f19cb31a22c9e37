"""Panel: the rating on the ticket card (answer audio with logged access, attempts, the dispatcher's
call time and rating), the journal column, the managers' page, robot settings, contact preference."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from models.base import utcnow
from models.notification import ContactChannel, ResidentContactPreference, RobotSettings
from models.rating import (
    RatingAttempt,
    RatingAttemptOutcome,
    RatingCall,
    RatingCallStatus,
    RatingSource,
    TicketRating,
)
from models.rating_audio import RatingAudioAccess
from models.services import ratings as ratings_svc
from models.ticket import Ticket
from tests import factories as f

MSK = ZoneInfo("Europe/Moscow")


def done_ticket(db, world, *, at=None):
    with db.write() as s:
        return f.make_done_ticket(s, s.merge(world.org_a), s.merge(world.cats_a["other"]),
                                  executor=s.merge(world.executor_a), resident_id=world.resident_a.id,
                                  now=at).id


def robot_rating(db, world, settings, ticket_id, *, value=2):
    """A rating the robot obtained on the second attempt, with the answer audio on disk."""
    now = utcnow()
    with db.write() as s:
        call = RatingCall(organization_id=world.org_a.id, ticket_id=ticket_id, phone="+79161234567",
                          planned_at=now, status=RatingCallStatus.IN_PROGRESS, attempts=2, max_attempts=3)
        s.add(call)
        s.flush()
        s.add(RatingAttempt(organization_id=world.org_a.id, rating_call_id=call.id, ticket_id=ticket_id, number=1,
                            started_at=now - timedelta(minutes=30), ended_at=now - timedelta(minutes=29),
                            outcome=RatingAttemptOutcome.NO_ANSWER))
        answer = f"{world.org_a.id}/rating/{ticket_id}-2.wav"
        (settings.recordings_dir / answer).parent.mkdir(parents=True, exist_ok=True)
        (settings.recordings_dir / answer).write_bytes(b"RIFF0000WAVEfmt ")
        attempt = RatingAttempt(organization_id=world.org_a.id, rating_call_id=call.id, ticket_id=ticket_id,
                                number=2, started_at=now, worker_id="w1")
        s.add(attempt)
        s.flush()
        ratings_svc.record_rating_attempt(s, attempt_id=attempt.id, outcome=RatingAttemptOutcome.ANSWERED, now=now,
                                          value=value, source=RatingSource.SPEECH, transcript="ну на двоечку",
                                          audio_path=answer)
        return attempt.id


def test_card_shows_the_robots_rating_flag_transcript_audio_and_attempts(db, world, login_as, settings) -> None:
    ticket_id = done_ticket(db, world)
    attempt_id = robot_rating(db, world, settings, ticket_id)
    client = login_as(world.dispatcher_a)

    html = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)

    assert "2 из 5" in html and "голосом" in html
    assert 'id="rating-flag">требует внимания руководителя' in html
    assert "Ответ: «ну на двоечку»" in html
    assert f'src="/rating-attempts/{attempt_id}/audio"' in html
    assert "Попытка 1:" in html and "Нет ответа" in html
    assert "Попытка 2:" in html and "Ответил, оценка получена, оценка 2" in html
    assert "оценка получена · +7 916 123-45-67 · попыток 2 из 3" in html


def test_playing_the_answer_logs_user_and_action_before_streaming(db, world, login_as, settings) -> None:
    ticket_id = done_ticket(db, world)
    attempt_id = robot_rating(db, world, settings, ticket_id)
    client = login_as(world.dispatcher_a)

    resp = client.get(f"/rating-attempts/{attempt_id}/audio", buffered=True)
    assert resp.status_code == 200
    assert resp.data == b"RIFF0000WAVEfmt "
    assert resp.headers["Cache-Control"] == "private, no-store"
    download = client.get(f"/rating-attempts/{attempt_id}/audio/download", buffered=True)
    assert download.headers["Content-Disposition"].startswith("attachment")

    with db.read() as s:
        log = [(a.attempt_id, a.user_id, a.action.value, a.organization_id)
               for a in s.scalars(select(RatingAudioAccess).order_by(RatingAudioAccess.id))]
    assert log == [(attempt_id, world.dispatcher_a.id, "play", world.org_a.id),
                   (attempt_id, world.dispatcher_a.id, "download", world.org_a.id)]


def test_dispatcher_chooses_the_rating_call_time_in_the_organizations_zone(db, world, login_as) -> None:
    ticket_id = done_ticket(db, world)
    client = login_as(world.dispatcher_a)
    tomorrow = (utcnow().astimezone(MSK) + timedelta(days=1)).date()

    resp = client.post(f"/tickets/{ticket_id}/rating-call", data={"at": f"{tomorrow.isoformat()}T15:30"})

    assert resp.status_code == 302
    wanted = datetime.combine(tomorrow, time(15, 30), MSK).astimezone(UTC)
    with db.read() as s:
        calls = [(c.status, c.requested_at, c.planned_at) for c in s.scalars(select(RatingCall))]
    assert calls == [(RatingCallStatus.SCHEDULED, wanted, wanted)]
    html = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert f"запланирован: <span class=\"time\">{tomorrow:%d.%m.%Y} 15:30</span>" in html
    assert "время выбрал диспетчер" in html

    bad = client.post(f"/tickets/{ticket_id}/rating-call", data={"at": "2020-01-01T12:00"})
    assert bad.status_code == 400
    assert "время звонка уже прошло" in bad.get_data(as_text=True)


def test_dispatcher_records_a_rating_heard_by_phone(db, world, login_as) -> None:
    ticket_id = done_ticket(db, world)
    client = login_as(world.dispatcher_a)

    resp = client.post(f"/tickets/{ticket_id}/rating", data={"value": "5", "transcript": "всё отлично"})

    assert resp.status_code == 302
    with db.read() as s:
        rating = s.scalars(select(TicketRating)).one()
        assert (rating.value, rating.source, rating.transcript, rating.rated_by_id, rating.flagged_for_manager) == (
            5, RatingSource.DISPATCHER, "всё отлично", world.dispatcher_a.id, False)
    assert client.post(f"/tickets/{ticket_id}/rating", data={"value": "7"}).status_code == 400


def test_journal_has_the_rating_column_with_the_flag(db, world, login_as, settings) -> None:
    ticket_id = done_ticket(db, world)
    robot_rating(db, world, settings, ticket_id, value=1)
    html = login_as(world.dispatcher_a).get("/").get_data(as_text=True)
    assert 'data-col="rating">Оценка</th>' in html
    assert ('<td class="c-rating"><span class="rating rating-1">1</span> '
            '<span class="mark mark-overdue" title="требует внимания руководителя">!</span></td>') in html


def test_managers_page_lists_averages_and_the_ratings_that_need_attention(db, world, login_as, settings) -> None:
    low = done_ticket(db, world)
    robot_rating(db, world, settings, low, value=1)
    good = done_ticket(db, world)
    with db.write() as s:
        ratings_svc.record_rating(s, ticket=s.get(Ticket, good), value=5, source=RatingSource.DISPATCHER,
                                  now=utcnow())
    assert login_as(world.dispatcher_a).get("/ratings").status_code == 403
    client = login_as(world.manager_a)

    html = client.get("/ratings").get_data(as_text=True)

    assert "Сидоров Семён Сергеевич</a></td>" in html
    assert '<td class="num-cell"><strong>3.00</strong></td>' in html
    assert f'data-ticket="{low}"' in html and f'data-ticket="{good}"' not in html
    everything = client.get("/ratings?flagged=0").get_data(as_text=True)
    assert f'data-ticket="{low}"' in everything and f'data-ticket="{good}"' in everything
    bad = client.get("/ratings?from=2026-03-10&to=2026-03-01")
    assert bad.status_code == 400 and "начало периода позже конца" in bad.get_data(as_text=True)


def test_robot_settings_are_saved_and_validation_errors_shown(db, world, login_as) -> None:
    assert login_as(world.dispatcher_a).get("/settings/robot").status_code == 403
    client = login_as(world.manager_a)
    page = client.get(f"/settings/robot?organization_id={world.org_a.id}").get_data(as_text=True)
    assert 'name="call_window_start" value="10:00"' in page
    form = {
        "organization_id": str(world.org_a.id), "rating_calls_enabled": "1", "call_window_start": "09:00",
        "call_window_end": "19:00", "max_attempts": "2", "retry_interval_minutes": "45",
        "rating_prompt": "Здравствуйте, это {company}. Оцените заявку {number}.", "voice": "",
        "quiet_start": "22:00", "quiet_end": "08:00",
        "template_registered": "{company}: заявка {number} принята", "template_assigned": "назначен {executor}",
        "template_done": "выполнена {number}", "template_closed": "закрыта {number}",
        "template_en_route": "выехал {executor}, будет в {eta}",
    }

    assert client.post("/settings/robot", data=form).status_code == 302

    with db.read() as s:
        row = s.get(RobotSettings, world.org_a.id)
        assert (row.call_window_start, row.call_window_end, row.max_attempts, row.retry_interval_minutes,
                row.notifications_enabled, row.quiet_start, row.template_assigned, row.template_en_route,
                row.updated_by_id) == (
            time(9), time(19), 2, 45, False, time(22), "назначен {executor}", "выехал {executor}, будет в {eta}",
            world.manager_a.id)

    night = client.post("/settings/robot", data={**form, "call_window_start": "06:00"})
    assert night.status_code == 400
    assert "робот звонит только с 08:00 до 22:00" in night.get_data(as_text=True)
    unknown = client.post("/settings/robot", data={**form, "template_done": "{company} {bonus}"})
    assert unknown.status_code == 400 and "неизвестные подстановки: {bonus}" in unknown.get_data(as_text=True)
    # {eta} is the en_route template's own: the others refuse it, with the same message.
    eta_elsewhere = client.post("/settings/robot", data={**form, "template_assigned": "будет в {eta}"})
    assert eta_elsewhere.status_code == 400 and "неизвестные подстановки: {eta}" in eta_elsewhere.get_data(as_text=True)
    empty = client.post("/settings/robot", data={**form, "template_en_route": "  "})
    assert empty.status_code == 400 and "текст не может быть пустым" in empty.get_data(as_text=True)
    assert 'name="template_en_route"' in page and "<code>{eta}</code>" in page
    assert client.post("/settings/robot", data={**form, "organization_id": str(world.org_b.id)}).status_code == 404
    with db.read() as s:
        assert s.get(RobotSettings, world.org_a.id).call_window_start == time(9)


def test_resident_contact_preference_from_the_ticket_card(db, world, login_as) -> None:
    ticket_id = done_ticket(db, world)
    client = login_as(world.dispatcher_a)
    card = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert f"/residents/{world.resident_a.id}/contact?next=/tickets/{ticket_id}" in card

    resp = client.post(f"/residents/{world.resident_a.id}/contact",
                       data={"preferred_channel": "email", "email": "leo@example.org", "no_robot_calls": "1",
                             "next": f"/tickets/{ticket_id}"})

    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/tickets/{ticket_id}")
    with db.read() as s:
        pref = s.scalars(select(ResidentContactPreference)).one()
        assert (pref.preferred_channel, pref.email, pref.no_robot_calls, pref.opt_out) == (
            ContactChannel.EMAIL, "leo@example.org", True, False)
    bad = client.post(f"/residents/{world.resident_a.id}/contact", data={"preferred_channel": "email",
                                                                         "email": "not-an-address"})
    assert bad.status_code == 400 and "неверный адрес эл. почты" in bad.get_data(as_text=True)


def test_a_robot_settings_form_without_a_newer_template_keeps_its_text(db, world, login_as) -> None:
    """A page opened before the house notice templates existed: saving it does not empty them."""
    from models.rules.robot import DEFAULT_TEMPLATES

    client = login_as(world.manager_a)
    form = {
        "organization_id": str(world.org_a.id), "rating_calls_enabled": "1", "call_window_start": "09:00",
        "call_window_end": "19:00", "max_attempts": "2", "retry_interval_minutes": "45",
        "rating_prompt": "Здравствуйте, это {company}. Оцените заявку {number}.", "voice": "",
        "quiet_start": "22:00", "quiet_end": "08:00", "template_registered": "{company}: заявка {number} принята",
        "template_assigned": "назначен {executor}", "template_done": "выполнена {number}",
        "template_closed": "закрыта {number}", "template_en_route": "выехал {executor}, будет в {eta}",
    }
    assert client.post("/settings/robot", data=form).status_code == 302
    with db.read() as s:
        saved = s.get(RobotSettings, world.org_a.id)
        assert (saved.template_closed, saved.template_incident) == ("закрыта {number}", DEFAULT_TEMPLATES["incident"])
    # Typed wrong, it is refused: a ticket's placeholder is not a house notice's.
    resp = client.post("/settings/robot", data={**form, "template_incident": "авария по заявке {number}"})
    assert resp.status_code == 400 and "{number}" in resp.get_data(as_text=True)
