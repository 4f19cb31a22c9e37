"""The robot's rating-call schedule: windows across time zones, retries, reclaiming, no duplicates."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from models.outbox import DomainEvent
from models.rating import RatingAttempt, RatingAttemptOutcome, RatingCall, RatingCallStatus
from models.rules import robot as rules
from models.rules.robot import LocalWindow
from models.services import ratings
from models.services.tickets import reopen_ticket
from models.ticket import TicketStatus
from tests import factories as f

MSK = ZoneInfo("Europe/Moscow")  # UTC+3
VLAD = ZoneInfo("Asia/Vladivostok")  # UTC+10
WINDOW = rules.DEFAULT_CALL_WINDOW


def utc(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def local(tz: ZoneInfo, y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz).astimezone(UTC)


# --- rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("now_local", "expected_local"), [
    ((2026, 3, 2, 15, 0), (2026, 3, 2, 15, 0)),  # inside: now
    ((2026, 3, 2, 9, 59), (2026, 3, 2, 10, 0)),  # morning: window start
    ((2026, 3, 2, 19, 59), (2026, 3, 2, 19, 59)),
    ((2026, 3, 2, 20, 0), (2026, 3, 3, 10, 0)),  # the end is excluded
    ((2026, 3, 2, 23, 30), (2026, 3, 3, 10, 0)),  # night: next morning
    ((2026, 3, 3, 0, 30), (2026, 3, 3, 10, 0)),  # after midnight: the same day's window
])
def test_next_call_time_in_moscow(now_local: tuple[int, ...], expected_local: tuple[int, ...]) -> None:
    assert rules.next_call_time(local(MSK, *now_local), WINDOW, MSK) == local(MSK, *expected_local)


def test_next_call_time_for_a_utc_plus_10_organization_crosses_the_utc_date() -> None:
    # 21:00 in Vladivostok (11:00 UTC): the next window opens at 10:00 local = 00:00 UTC next day.
    assert rules.next_call_time(utc(2026, 3, 2, 11), WINDOW, VLAD) == utc(2026, 3, 3, 0)
    # 09:30 local on the 3rd is 23:30 UTC on the 2nd: the window opens half an hour later.
    assert rules.next_call_time(utc(2026, 3, 2, 23, 30), WINDOW, VLAD) == utc(2026, 3, 3, 0)
    # The same UTC moment is 02:30 in Moscow: 10:00 Moscow is 07:00 UTC.
    assert rules.next_call_time(utc(2026, 3, 2, 23, 30), WINDOW, MSK) == utc(2026, 3, 3, 7)
    # 12:00 UTC is 22:00 in Vladivostok but 15:00 in Moscow.
    assert rules.next_call_time(utc(2026, 3, 2, 12), WINDOW, VLAD) == utc(2026, 3, 3, 0)
    assert rules.next_call_time(utc(2026, 3, 2, 12), WINDOW, MSK) == utc(2026, 3, 2, 12)


@pytest.mark.parametrize("tz", [MSK, VLAD, ZoneInfo("Asia/Yekaterinburg"), ZoneInfo("Europe/Kaliningrad")])
def test_never_at_night_for_any_moment_of_two_days(tz: ZoneInfo) -> None:
    window = LocalWindow(time(9, 30), time(21, 0))
    moment = utc(2026, 3, 1, 0)
    while moment < utc(2026, 3, 3, 0):
        planned = rules.next_call_time(moment, window, tz)
        assert planned >= moment
        assert time(9, 30) <= planned.astimezone(tz).time() < time(21, 0), (moment, planned)
        assert planned - moment < timedelta(hours=13)
        moment += timedelta(minutes=7)


def test_dispatcher_chosen_time_is_kept_inside_the_window_else_moved_to_the_next_window_start() -> None:
    now = local(MSK, 2026, 3, 2, 11)
    assert rules.next_call_time(now, WINDOW, MSK, at=local(MSK, 2026, 3, 2, 17, 30)) == local(MSK, 2026, 3, 2, 17, 30)
    assert rules.next_call_time(now, WINDOW, MSK, at=local(MSK, 2026, 3, 2, 21, 0)) == local(MSK, 2026, 3, 3, 10)
    assert rules.next_call_time(now, WINDOW, MSK, at=local(MSK, 2026, 3, 3, 7, 0)) == local(MSK, 2026, 3, 3, 10)
    # A time already past counts as now.
    assert rules.next_call_time(now, WINDOW, MSK, at=local(MSK, 2026, 3, 1, 12)) == now


def test_retry_is_the_interval_later_or_the_next_window_start() -> None:
    interval = timedelta(minutes=30)
    assert rules.retry_time(local(MSK, 2026, 3, 2, 12), interval=interval, window=WINDOW, tz=MSK) \
        == local(MSK, 2026, 3, 2, 12, 30)
    assert rules.retry_time(local(MSK, 2026, 3, 2, 19, 45), interval=interval, window=WINDOW, tz=MSK) \
        == local(MSK, 2026, 3, 3, 10)


@pytest.mark.parametrize("window", [
    LocalWindow(time(7, 0), time(12, 0)), LocalWindow(time(12, 0), time(23, 0)),
    LocalWindow(time(20, 0), time(10, 0)), LocalWindow(time(12, 0), time(12, 0)),
])
def test_a_call_window_reaching_into_the_night_is_refused(window: LocalWindow) -> None:
    with pytest.raises(rules.InvalidWindow):
        rules.validate_call_window(window)
    rules.validate_call_window(LocalWindow(time(8, 0), time(22, 0)))


def test_quiet_hours_across_midnight() -> None:
    quiet = rules.DEFAULT_QUIET_HOURS  # 21:00–09:00
    assert rules.after_quiet_hours(local(MSK, 2026, 3, 2, 22, 30), quiet, MSK) == local(MSK, 2026, 3, 3, 9)
    assert rules.after_quiet_hours(local(MSK, 2026, 3, 3, 3, 0), quiet, MSK) == local(MSK, 2026, 3, 3, 9)
    assert rules.after_quiet_hours(local(MSK, 2026, 3, 3, 9, 0), quiet, MSK) == local(MSK, 2026, 3, 3, 9)
    assert rules.after_quiet_hours(local(MSK, 2026, 3, 3, 12, 0), quiet, MSK) == local(MSK, 2026, 3, 3, 12)
    assert rules.after_quiet_hours(local(VLAD, 2026, 3, 3, 21, 0), quiet, VLAD) == local(VLAD, 2026, 3, 4, 9)
    assert rules.after_quiet_hours(local(MSK, 2026, 3, 3, 22), LocalWindow(time(0), time(0)), MSK) \
        == local(MSK, 2026, 3, 3, 22)


# --- scheduling service ----------------------------------------------------------------------------


def _done(s, world, now, **kw):
    return f.make_done_ticket(s, world.org_a, world.cats_a["other"], executor=world.executor_a, now=now,
                              resident_id=world.resident_a.id, **kw)


def _calls(s, ticket_id):
    return list(s.scalars(select(RatingCall).where(RatingCall.ticket_id == ticket_id).order_by(RatingCall.id)))


def test_done_ticket_gets_one_call_in_the_next_window_and_scheduling_again_is_idempotent(db, world) -> None:
    now = local(MSK, 2026, 3, 2, 22, 15)
    with db.write() as s:
        ticket = _done(s, world, now)
        call = ratings.schedule_rating_call(s, ticket=ticket, now=now)
        assert call is not None
        assert (call.planned_at, call.phone, call.status, call.attempts, call.max_attempts) == (
            local(MSK, 2026, 3, 3, 10), "+79161234567", RatingCallStatus.SCHEDULED, 0, 3)
        assert call.retry_interval_minutes == 30
        again = ratings.schedule_rating_call(s, ticket=ticket, now=now + timedelta(minutes=1))
        assert again is not None and again.id == call.id
        from models.services.tickets import transition_ticket
        transition_ticket(s, org=world.org_a, ticket_id=ticket.id, to=TicketStatus.CLOSED, by=world.dispatcher_a,
                          now=now + timedelta(minutes=2))
        closed = ratings.schedule_rating_call(s, ticket=ticket, now=now + timedelta(minutes=2))
        assert closed is not None and closed.id == call.id
        assert len(_calls(s, ticket.id)) == 1
        names = [(e.name, e.payload["action"]) for e in s.scalars(select(DomainEvent).order_by(DomainEvent.id))]
        assert names.count(("ticket.changed", "rating_call_scheduled")) == 1


def test_dispatcher_time_is_honoured_and_replans_a_waiting_call(db, world) -> None:
    now = local(MSK, 2026, 3, 2, 11)
    with db.write() as s:
        ticket = _done(s, world, now)
        call = ratings.schedule_rating_call(s, ticket=ticket, now=now, at=local(MSK, 2026, 3, 2, 18, 0))
        assert call is not None and call.planned_at == local(MSK, 2026, 3, 2, 18, 0)
        assert call.requested_at == local(MSK, 2026, 3, 2, 18, 0)
        moved = ratings.schedule_rating_call(s, ticket=ticket, now=now, at=local(MSK, 2026, 3, 2, 21, 0))
        assert moved is not None and moved.id == call.id and moved.planned_at == local(MSK, 2026, 3, 3, 10)


def test_utc_plus_10_organization_is_called_in_its_own_window(db, world) -> None:
    now = utc(2026, 3, 2, 11)  # 21:00 in Vladivostok, 14:00 in Moscow
    with db.write() as s:
        org = f.make_org(s, name="УК «Восток»", timezone="Asia/Vladivostok")
        cats = f.make_categories(s, org)
        executor = f.make_user(s, [org], f.Role.EXECUTOR)
        ticket = f.make_done_ticket(s, org, cats["other"], executor=executor, now=now, reporter_phone="+79241234567")
        call = ratings.schedule_rating_call(s, ticket=ticket, now=now)
        assert call is not None and call.planned_at == utc(2026, 3, 3, 0)


def test_no_call_without_phone_after_opt_out_or_when_switched_off(db, world) -> None:
    now = local(MSK, 2026, 3, 2, 12)
    with db.write() as s:
        no_phone = f.make_done_ticket(s, world.org_a, world.cats_a["other"], executor=world.executor_a, now=now)
        assert ratings.schedule_rating_call(s, ticket=no_phone, now=now) is None
        f.make_contact_preference(s, world.resident_a, no_robot_calls=True)
        refused = _done(s, world, now)
        assert ratings.schedule_rating_call(s, ticket=refused, now=now) is None
        pending = f.make_ticket(s, world.org_a, world.cats_a["other"], now=now, reporter_phone="+79160000099")
        assert ratings.schedule_rating_call(s, ticket=pending, now=now) is None
        f.make_robot_settings(s, world.org_b, rating_calls_enabled=False)
        other = f.make_done_ticket(s, world.org_b, world.cats_b["other"], executor=world.executor_b, now=now,
                                   reporter_phone="+79031112233")
        assert ratings.schedule_rating_call(s, ticket=other, now=now) is None
        assert s.scalar(select(func.count()).select_from(RatingCall)) == 0


def test_full_opt_out_also_stops_the_robot(db, world) -> None:
    now = local(MSK, 2026, 3, 2, 12)
    with db.write() as s:
        f.make_contact_preference(s, world.resident_a, opt_out=True)
        assert ratings.schedule_rating_call(s, ticket=_done(s, world, now), now=now) is None


# --- claiming, retries, failures --------------------------------------------------------------------


def test_no_answer_and_busy_retry_30_minutes_later_inside_the_window_until_failed(db, world) -> None:
    t0 = local(MSK, 2026, 3, 2, 19, 0)
    with db.write() as s:
        ticket = _done(s, world, t0)
        call = ratings.schedule_rating_call(s, ticket=ticket, now=t0)
        ticket_id, call_id = ticket.id, call.id
    plan = [
        (t0, RatingAttemptOutcome.NO_ANSWER, local(MSK, 2026, 3, 2, 19, 31)),
        (local(MSK, 2026, 3, 2, 19, 31), RatingAttemptOutcome.BUSY, local(MSK, 2026, 3, 3, 10, 0)),  # 20:01 → morning
    ]
    for at, outcome, next_at in plan:
        with db.write() as s:
            assert ratings.claim_due_rating_calls(s, now=at - timedelta(seconds=1), worker_id="w1") == []
            [claimed] = ratings.claim_due_rating_calls(s, now=at, worker_id="w1")
            assert claimed.rating_call_id == call_id
            ratings.record_rating_attempt(s, attempt_id=claimed.attempt_id, outcome=outcome,
                                          now=at + timedelta(minutes=1))
            call = s.get(RatingCall, call_id)
            assert (call.status, call.planned_at, call.locked_by) == (RatingCallStatus.SCHEDULED, next_at, None)
    with db.write() as s:
        [claimed] = ratings.claim_due_rating_calls(s, now=local(MSK, 2026, 3, 3, 10, 0), worker_id="w2")
        assert claimed.attempt_number == 3
        ratings.record_rating_attempt(s, attempt_id=claimed.attempt_id, outcome=RatingAttemptOutcome.FAILED,
                                      now=local(MSK, 2026, 3, 3, 10, 1), error="trunk 503")
        call = s.get(RatingCall, call_id)
        assert (call.status, call.attempts, call.finished_at) == (
            RatingCallStatus.FAILED, 3, local(MSK, 2026, 3, 3, 10, 1))
        attempts = list(s.scalars(select(RatingAttempt).where(RatingAttempt.ticket_id == ticket_id)
                                  .order_by(RatingAttempt.id)))
        assert [(a.number, a.outcome, a.worker_id) for a in attempts] == [
            (1, RatingAttemptOutcome.NO_ANSWER, "w1"), (2, RatingAttemptOutcome.BUSY, "w1"),
            (3, RatingAttemptOutcome.FAILED, "w2")]
        assert attempts[2].error == "trunk 503"
        assert ratings.claim_due_rating_calls(s, now=local(MSK, 2026, 3, 4, 12), worker_id="w2") == []
        actions = [e.payload["action"] for e in s.scalars(select(DomainEvent).order_by(DomainEvent.id))]
        assert actions[-1] == "rating_call_failed"


def test_claimed_call_carries_prompt_number_and_caller_id(db, world) -> None:
    t0 = local(MSK, 2026, 3, 2, 12)
    with db.write() as s:
        ticket = _done(s, world, t0)
        ratings.schedule_rating_call(s, ticket=ticket, now=t0)
        [claimed] = ratings.claim_due_rating_calls(s, now=t0, worker_id="w1")
        assert (claimed.phone, claimed.caller_id, claimed.ticket_number, claimed.max_attempts) == (
            "+79161234567", world.org_a.hotlines[0], ticket.number, 3)
        assert claimed.prompt == (
            f"Здравствуйте! Вас беспокоит УК «Альфа». Ваша заявка номер {ticket.number} выполнена. "
            "Пожалуйста, оцените качество работы от одного до пяти: скажите оценку или нажмите цифру на телефоне."
        )


def test_worker_killed_mid_call_is_reclaimed_after_the_lease_and_retried_without_duplicates(db, world) -> None:
    t0 = local(MSK, 2026, 3, 2, 12)
    with db.write() as s:
        call_id = ratings.schedule_rating_call(s, ticket=_done(s, world, t0), now=t0).id
    with db.write() as s:
        [first] = ratings.claim_due_rating_calls(s, now=t0, worker_id="w1")
    # w1 dies. While its lease runs, nobody else may dial the same resident.
    with db.write() as s:
        assert ratings.claim_due_rating_calls(s, now=t0 + timedelta(minutes=9), worker_id="w2") == []
    reclaim_at = t0 + timedelta(minutes=10)
    with db.write() as s:
        assert ratings.claim_due_rating_calls(s, now=reclaim_at, worker_id="w2") == []  # reclaimed, retry planned
        call = s.get(RatingCall, call_id)
        assert (call.status, call.planned_at, call.attempts) == (
            RatingCallStatus.SCHEDULED, reclaim_at + timedelta(minutes=30), 1)
        attempt = s.get(RatingAttempt, first.attempt_id)
        assert (attempt.outcome, attempt.ended_at) == (RatingAttemptOutcome.FAILED, reclaim_at)
        assert attempt.error == "обработчик w1 не завершил звонок (блокировка истекла)"
    with db.write() as s:
        [second] = ratings.claim_due_rating_calls(s, now=reclaim_at + timedelta(minutes=30), worker_id="w2")
        assert (second.rating_call_id, second.attempt_number) == (call_id, 2)
        # The dead worker's late report does not reopen its attempt.
        ratings.record_rating_attempt(s, attempt_id=first.attempt_id, outcome=RatingAttemptOutcome.NO_ANSWER,
                                      now=reclaim_at + timedelta(minutes=31))
        assert s.get(RatingAttempt, first.attempt_id).outcome == RatingAttemptOutcome.FAILED
        assert s.get(RatingCall, call_id).status == RatingCallStatus.IN_PROGRESS
        open_attempts = s.scalar(select(func.count()).select_from(RatingAttempt).where(RatingAttempt.ended_at.is_(None)))
        assert open_attempts == 1


def test_worker_back_at_night_moves_a_due_call_to_the_morning(db, world) -> None:
    t0 = local(MSK, 2026, 3, 2, 19, 50)
    with db.write() as s:
        call_id = ratings.schedule_rating_call(s, ticket=_done(s, world, t0), now=t0).id
    with db.write() as s:
        assert ratings.claim_due_rating_calls(s, now=local(MSK, 2026, 3, 2, 23, 0), worker_id="w1") == []
        call = s.get(RatingCall, call_id)
        assert (call.status, call.planned_at, call.attempts) == (
            RatingCallStatus.SCHEDULED, local(MSK, 2026, 3, 3, 10), 0)


def test_reopened_ticket_cancels_its_waiting_call(db, world) -> None:
    t0 = local(MSK, 2026, 3, 2, 12)
    with db.write() as s:
        ticket = _done(s, world, t0)
        call_id = ratings.schedule_rating_call(s, ticket=ticket, now=t0 + timedelta(hours=1)).id
        reopen_ticket(s, org=world.org_a, ticket_id=ticket.id, by=world.dispatcher_a, reason="течь снова",
                      now=t0 + timedelta(minutes=5))
    with db.write() as s:
        assert ratings.claim_due_rating_calls(s, now=t0 + timedelta(hours=1), worker_id="w1") == []
        call = s.get(RatingCall, call_id)
        assert (call.status, call.cancel_reason) == (RatingCallStatus.CANCELLED, "заявка открыта повторно")


def test_two_workers_claiming_at_once_never_get_the_same_call(db, world) -> None:
    t0 = local(MSK, 2026, 3, 2, 12)
    with db.write() as s:
        for i in range(8):
            ticket = f.make_done_ticket(s, world.org_a, world.cats_a["other"], executor=world.executor_a, now=t0,
                                        reporter_phone=f"+7916000{i:04d}")
            ratings.schedule_rating_call(s, ticket=ticket, now=t0)
    barrier = threading.Barrier(2)
    results: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def work(worker_id: str) -> None:
        try:
            barrier.wait(timeout=10)
            got: list[int] = []
            while True:
                with db.write() as s:
                    batch = ratings.claim_due_rating_calls(s, now=t0, worker_id=worker_id, limit=3)
                if not batch:
                    break
                got.extend(c.rating_call_id for c in batch)
            results[worker_id] = got
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in ("w1", "w2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    claimed = results["w1"] + results["w2"]
    assert len(claimed) == 8 and len(set(claimed)) == 8
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(RatingAttempt)) == 8
        assert set(s.scalars(select(RatingCall.status))) == {RatingCallStatus.IN_PROGRESS}
