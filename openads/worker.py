"""`openads worker`: delivers the durable outbox, runs the consumers of the `events` table
(residents' notifications and rating calls from ticket events, `openads/consumers.py`, decision
0008), takes the due steps of the emergencies' acknowledgement escalations (`escalate`, decision
0043: each step and its outbox messages in one transaction) and prunes old domain events, never
above the slowest consumer's cursor. Web Push goes through `openads/providers/push.py` when the
VAPID keys are configured.

Delivery of one message is two short transactions around the network call, so no database
lock is held while an SMTP server thinks:

1. claim: the oldest due pending message is leased (its `next_attempt_at` moves `LEASE` ahead)
   and given its idempotency key if it has none yet (`ensure_idempotency_key`), in the same
   transaction: the key is stored before anything is sent. On PostgreSQL the row is picked
   `FOR UPDATE SKIP LOCKED`, so concurrent workers claim different rows; on SQLite the write
   transaction (`BEGIN IMMEDIATE`) serialises the claims.
2. send through the channel's `Sender`, with the key (the e-mail's Message-ID, SMSC's id). A key
   already used by an earlier try: a sender that can look messages up (SMSC) is asked first, and
   a message it already has is recorded as sent instead of being sent again.
3. record. Accepted → the acceptance (time the provider answered, its id) goes to the journal
   (`openads/accepted_journal.py`, fsync) the moment the sender sees it (its `accepted` call:
   after SMTP's 250 to DATA, before QUIT, so a server stalling on QUIT hides nothing), and then to the database, retried with backoff
   (`RECORD_RETRY_DELAYS`); what still fails stays in the journal, is retried every round and
   replayed at start, and its message is never claimed meanwhile: the send is never repeated
   for a failed record (issue 11). Stored: `sent`, `sent_at` = the acceptance time (and, for the
   municipality e-mail, the ticket's `municipality_notified_at` + history + event, same time).
   Refused or unreachable → an `OutboxAttempt` row, `attempts + 1`, `last_error`, retry after
   `retry_delay(attempts)`; at `max_attempts` the message becomes `failed` and an
   `outbox.failed` domain event tells the panels. Nothing is dropped silently.

The one window left (decision 0019): a worker killed after the provider accepted and before the
journal's fsync (microseconds), or an SMTP connection lost after the message's last byte and
before the server's 250, or an HTTP gateway that took the message and had not answered yet. The
lease (`OPENADS_OUTBOX_LEASE_SECONDS`, 5 minutes) expires and the message is tried again, with the
same key: SMSC finds it (and tells when it took it: that time is recorded) and nothing is sent; an e-mail repeats its Message-ID, so the receiver can drop it;
SMS.ru has no such key, so the resident may get the SMS twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select

from models.base import utcnow
from models.db import Database
from models.outbox import DomainEvent, MessageChannel, MessageStatus, OutboxMessage
from models.ports import ProviderError as PortProviderError
from models.ports import ProviderMessageId, SentBefore, SmsSender
from models.services import field as field_svc
from models.services.outbox import ensure_idempotency_key, record_accepted, record_attempt
from models.services.tickets import MUNICIPALITY_PURPOSE, record_municipality_notified
from openads import consumers
from openads.accepted_journal import Accepted, AcceptedJournal
from openads.bus import Bus, Subscription
from openads.config import Settings
from openads.mailer import ProviderError, Sender, SmtpMailer
from openads.providers.registry import make_sms_sender
from openads.providers.sms.common import SmsChannel

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
EVENT_RETENTION = timedelta(days=2)
POLL_SECONDS = 1.0
# Without a bus the consumer looks for new events this often (the bus wakes it at once).
CONSUMER_POLL_SECONDS = 0.25
PRUNE_EVERY = timedelta(minutes=10)
PRUNE_BATCH = 5000
# SMS delivery reports: ask the gateway every few minutes during the first day after sending.
DELIVERY_CHECK_EVERY = timedelta(minutes=2)
DELIVERY_CHECK_FOR = timedelta(days=1)
DELIVERY_FINAL = ("delivered", "failed")
# After a provider accepted a message, its record is tried this often at once (seconds between
# tries); then it waits in the journal for the next round. Well inside LEASE.
RECORD_RETRY_DELAYS = (0.1, 0.3, 1.0, 2.0, 4.0)

_warned_channels: set[str] = set()


@dataclass(frozen=True)
class _Claimed:
    id: int
    organization_id: int
    channel: MessageChannel
    purpose: str
    recipient: str
    subject: str
    body: str
    ticket_id: int | None
    key: str
    key_reused: bool


def default_senders(settings: Settings, db: Database | None = None) -> dict[MessageChannel, Sender]:
    """The senders configured for this deployment: e-mail, SMS when SMS_PROVIDER is set, Web Push
    when the VAPID keys are set (`db`: the push sender reads the subscriptions)."""
    senders: dict[MessageChannel, Sender] = {MessageChannel.EMAIL: SmtpMailer(settings.smtp)}
    sms = make_sms_sender(settings.sms)
    if sms is not None:
        senders[MessageChannel.SMS] = SmsChannel(sms)
    if db is not None and settings.push.configured:
        from openads.providers.push import WebPushSender

        senders[MessageChannel.PUSH] = WebPushSender(db, settings.push)
    return senders


def escalate(db: Database, now: datetime | None = None) -> int:
    """One round of the acknowledgement escalations (models/services/alerts.py): each due step and
    its messages in one transaction. Returns the steps taken."""
    from models.services.alerts import escalate_due, has_due_alerts

    moment = now or utcnow()
    with db.read() as s:  # a cheap read first: no write transaction (SQLite's write lock) when nothing is due
        if not has_due_alerts(s, now=moment):
            return 0
    with db.write() as s:
        return escalate_due(s, now=moment)


def _warn_unconfigured(db: Database, channels: list[MessageChannel], now: datetime) -> None:
    with db.read() as s:
        stmt = select(OutboxMessage.channel).where(
            OutboxMessage.status == MessageStatus.PENDING, OutboxMessage.next_attempt_at <= now
        )
        # VOICE messages are never the worker's: the voice robot of `openads ari` places those calls
        # (ari_app/robot.py `claim_voice_messages`), so their waiting is no missing configuration.
        stmt = stmt.where(OutboxMessage.channel.not_in([*channels, MessageChannel.VOICE]))
        waiting = set(s.scalars(stmt.distinct()))
    for channel in sorted(waiting - _warned_channels):
        _warned_channels.add(channel)
        log.warning("outbox: no sender configured for channel %r; its messages stay pending", str(channel))


def _claim(
    db: Database, channels: list[MessageChannel], now: datetime, accepted: Collection[int] = (),
    lease: timedelta = LEASE,
) -> _Claimed | None:
    """Lease the next due message, never one whose acceptance waits in the journal (`accepted`)."""
    with db.write() as s:
        stmt = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == MessageStatus.PENDING,
                OutboxMessage.next_attempt_at <= now,
                OutboxMessage.channel.in_(channels),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(1)
        )
        if accepted:
            stmt = stmt.where(OutboxMessage.id.not_in(list(accepted)))
        if not db.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        message = s.scalar(stmt)
        if message is None:
            return None
        message.next_attempt_at = now + lease
        key, reused = ensure_idempotency_key(message)
        return _Claimed(
            id=message.id,
            organization_id=message.organization_id,
            channel=message.channel,
            purpose=message.purpose,
            recipient=message.recipient,
            subject=message.subject,
            body=message.body,
            ticket_id=message.ticket_id,
            key=key,
            key_reused=reused,
        )


def _record_failure(db: Database, claimed: _Claimed, *, detail: str, at: datetime, final: bool = False) -> None:
    with db.write() as s:
        message = s.get(OutboxMessage, claimed.id, with_for_update=not db.is_sqlite)
        if message is None:  # deleted with its organization meanwhile
            return
        record_attempt(s, message, ok=False, detail=detail, at=at, final=final)


def _store_accepted(db: Database, entry: Accepted) -> None:
    """One try at recording an acceptance (idempotent: a replay of a stored one changes nothing)."""
    with db.write() as s:
        message = s.get(OutboxMessage, entry.message_id, with_for_update=not db.is_sqlite)
        if message is None:  # deleted with its organization meanwhile
            return
        record_accepted(s, message, at=entry.at, provider_id=entry.provider_id, detail=entry.detail)
        if message.purpose == MUNICIPALITY_PURPOSE and message.ticket_id is not None:
            record_municipality_notified(s, ticket_id=message.ticket_id, at=entry.at, recipient=message.recipient)


def _record_accepted(db: Database, journal: AcceptedJournal, entry: Accepted, *, journaled: bool = False) -> bool:
    """Journal the acceptance (unless the sender's `accepted` call did), then store it, retrying
    after `RECORD_RETRY_DELAYS`; True once stored. False: it stays in the journal for the next
    round (the database is away)."""
    if not journaled:
        journal.add(entry)
    for delay in (*RECORD_RETRY_DELAYS, None):
        try:
            _store_accepted(db, entry)
        except Exception as exc:
            if delay is None:
                log.error("outbox: message %s accepted at %s (%s) but not recorded: %s; kept in the journal, "
                          "recorded when the database answers, never sent again", entry.message_id,
                          entry.at.isoformat(), entry.provider_id, exc)
                return False
            log.warning("outbox: recording message %s as sent failed (%s); again in %.1f s",
                        entry.message_id, exc, delay)
            time.sleep(delay)
            continue
        journal.settle([entry.message_id])
        return True
    return False  # pragma: no cover - the loop returns


def replay_accepted(db: Database, journal: AcceptedJournal) -> set[int]:
    """Record the journal's acceptances (one try each); returns the ids still waiting."""
    waiting: set[int] = set()
    stored: list[int] = []
    for entry in journal.pending():
        try:
            _store_accepted(db, entry)
        except Exception as exc:
            log.warning("outbox: accepted message %s still not recorded: %s", entry.message_id, exc)
            waiting.add(entry.message_id)
        else:
            log.info("outbox: accepted message %s recorded from the journal (sent at %s)",
                     entry.message_id, entry.at.isoformat())
            stored.append(entry.message_id)
    journal.settle(stored)
    return waiting


def _already_accepted(sender: Sender, claimed: _Claimed) -> SentBefore | None:
    """An earlier try's acceptance the provider can confirm (SMSC by client-side id), else None.
    A failed look-up sends anyway: an emergency notice late or lost is worse than a duplicate."""
    find = getattr(sender, "find_accepted", None)
    if not claimed.key_reused or find is None:
        return None
    try:
        found = find(claimed.recipient, claimed.key)
    except (ProviderError, PortProviderError) as exc:
        log.warning("outbox: could not ask whether message %s was accepted before (%s); sending", claimed.id, exc)
        return None
    return found if isinstance(found, SentBefore) else None


def deliver_due(
    db: Database,
    senders: Mapping[MessageChannel, Sender],
    now: datetime | None = None,
    *,
    limit: int = 100,
    journal: AcceptedJournal | None = None,
    lease: timedelta = LEASE,
) -> int:
    """Try every due pending message once (at most `limit`); returns how many were tried.

    `now` fixes the clock (tests); by default each step reads the real time. `journal` keeps
    acceptances not yet recorded (the worker passes its file; default: this call's memory, so an
    acceptance whose record still fails after the retries raises `AcceptanceNotRecorded`).
    `lease`: how long a claimed message waits before another round may try it (a worker that
    died mid-send).
    """
    clock: Callable[[], datetime] = (lambda: now) if now is not None else utcnow
    own_journal = journal is None
    journal = journal if journal is not None else AcceptedJournal()
    waiting = replay_accepted(db, journal)
    channels = list(senders)
    _warn_unconfigured(db, channels, clock())
    if not channels:
        return 0
    tried = 0
    while tried < limit:
        claimed = _claim(db, channels, clock(), waiting, lease)
        if claimed is None:
            break
        tried += 1
        sender = senders[claimed.channel]
        early: list[Accepted] = []

        def journal_now(provider_id: str, claimed: _Claimed = claimed, early: list[Accepted] = early) -> None:
            # The provider's answer is the legal time of the notice; journaled before the sender
            # says goodbye (SMTP QUIT), so a worker killed while the server stalls loses nothing.
            entry = Accepted(claimed.id, clock(), str(provider_id), f"принято провайдером, id {provider_id}")
            journal.add(entry)
            early.append(entry)

        try:
            earlier = _already_accepted(sender, claimed)
            if earlier is not None:
                log.warning("outbox: message %s was accepted by an earlier try (%s); not sent again",
                            claimed.id, earlier.id)
                provider_id, detail = str(earlier.id), f"принято провайдером при прошлой попытке, id {earlier.id}"
                accepted_at = earlier.accepted_at or clock()
            else:
                provider_id = sender.send(claimed.recipient, claimed.subject, claimed.body, key=claimed.key,
                                          accepted=journal_now)
                detail = f"принято провайдером, id {provider_id}"
                accepted_at = clock()  # a sender that did not call `accepted`: its return is the answer
        except (ProviderError, PortProviderError) as exc:
            if early:  # refused after the acceptance (cannot happen with our senders): it was sent
                log.warning("outbox: message %s failed after its acceptance (%s); counted as sent", claimed.id, exc)
                _record_accepted(db, journal, early[0], journaled=True)
                continue
            log.warning("outbox: message %s to %s not sent: %s", claimed.id, claimed.recipient, exc)
            # A permanent refusal (bad number, wrong key) fails now instead of retrying for hours.
            final = getattr(exc, "retryable", True) is False
            _record_failure(db, claimed, detail=str(exc), at=clock(), final=final)
        except Exception as exc:  # a sender bug must not lose the message either
            log.exception("outbox: sender crashed on message %s", claimed.id)
            _record_failure(db, claimed, detail=f"internal: {exc!r}", at=clock())
        else:
            entry = early[0] if early else Accepted(claimed.id, accepted_at, str(provider_id), detail)
            if not _record_accepted(db, journal, entry, journaled=bool(early)):
                if own_journal:
                    raise AcceptanceNotRecorded(entry)
                waiting.add(claimed.id)
    return tried


class AcceptanceNotRecorded(RuntimeError):
    """`deliver_due` without a journal: a provider accepted a message and the database would not
    record it. The caller must not let the message be sent again."""

    def __init__(self, entry: Accepted) -> None:
        super().__init__(f"message {entry.message_id} accepted at {entry.at.isoformat()} "
                         f"(id {entry.provider_id}) but not recorded")
        self.entry = entry


def check_sms_delivery(db: Database, sms: SmsSender, now: datetime | None = None, *, limit: int = 50) -> int:
    """Ask the SMS gateway for the delivery status of recently sent SMS; store it on the message.

    Only messages sent within `DELIVERY_CHECK_FOR`, not yet delivered/failed, and not asked within
    `DELIVERY_CHECK_EVERY` are asked (at most `limit`). A gateway error is logged and the message
    is asked again later. Returns how many were asked.
    """
    now = now or utcnow()
    with db.read() as s:
        rows = s.execute(
            select(OutboxMessage.id, OutboxMessage.provider_message_id)
            .where(
                OutboxMessage.channel == MessageChannel.SMS,
                OutboxMessage.status == MessageStatus.SENT,
                OutboxMessage.provider_message_id.is_not(None),
                OutboxMessage.sent_at >= now - DELIVERY_CHECK_FOR,
                or_(OutboxMessage.delivery_status.is_(None), OutboxMessage.delivery_status.not_in(DELIVERY_FINAL)),
                or_(
                    OutboxMessage.delivery_checked_at.is_(None),
                    OutboxMessage.delivery_checked_at <= now - DELIVERY_CHECK_EVERY,
                ),
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        ).all()
    for message_id, provider_id in rows:
        try:
            status: str | None = sms.status(ProviderMessageId(str(provider_id))).value
        except PortProviderError as exc:
            log.warning("outbox: delivery status of SMS %s (%s) unavailable: %s", message_id, provider_id, exc)
            status = None
        with db.write() as s:
            message = s.get(OutboxMessage, message_id)
            if message is None:
                continue
            message.delivery_checked_at = now
            if status is not None:
                message.delivery_status = status
    return len(rows)


def prune_events(db: Database, now: datetime | None = None, keep: timedelta = EVENT_RETENTION) -> int:
    """Delete domain events older than `keep` (panels only replay recent ones), in small batches.

    Never an event a consumer has not handled yet: only ids at or below the slowest cursor go.
    Old events held back that way are logged as an error (a consumer stopped or lagging).
    """
    cutoff = (now or utcnow()) - keep
    with db.read() as s:
        floor = consumers.prune_floor(s)
        if floor is not None:
            held = s.scalar(select(func.count(DomainEvent.id)).where(
                DomainEvent.created_at < cutoff, DomainEvent.id > floor))
            if held:
                log.error("event pruning held back: %d events older than %s not yet handled by every consumer "
                          "(slowest cursor at event %d); is a consumer stuck?", held, keep, floor)
    removed = 0
    while True:
        with db.write() as s:
            stmt = select(DomainEvent.id).where(DomainEvent.created_at < cutoff)
            if floor is not None:
                stmt = stmt.where(DomainEvent.id <= floor)
            ids = list(s.scalars(stmt.limit(PRUNE_BATCH)))
            if not ids:
                return removed
            s.execute(delete(DomainEvent).where(DomainEvent.id.in_(ids)))
        removed += len(ids)


def purge_positions(db: Database, now: datetime | None = None) -> int:
    """Executors' positions past their organization's retention (152-ФЗ, decision 0042), in batches."""
    removed = 0
    while True:
        with db.write() as s:
            batch = field_svc.purge_positions(s, now=now or utcnow(), batch=PRUNE_BATCH)
        removed += batch
        if batch == 0:
            return removed


def run(
    db: Database,
    senders: Mapping[MessageChannel, Sender],
    stop: threading.Event,
    *,
    poll_seconds: float = POLL_SECONDS,
    bus: Bus | None = None,
    journal: AcceptedJournal | None = None,
    lease: timedelta = LEASE,
) -> None:
    """The worker loop until `stop` is set: consume new events, deliver, prune now and then.

    Idle, it waits for a wake-up on `bus` (every commit that wrote events publishes one), else
    polls for new events every `CONSUMER_POLL_SECONDS`; the outbox is scanned every
    `poll_seconds` and at once after the consumer queued messages. A failing round (database
    restarting, ...) is logged and retried after a pause. `journal`: the acceptances not yet
    recorded (`Settings.outbox_journal`), replayed before every round's first claim.
    """
    journal = journal if journal is not None else AcceptedJournal()
    left = journal.pending()
    if left:
        log.warning("outbox journal: %d accepted message(s) to record: %s", len(left),
                    ", ".join(str(e.message_id) for e in left))
    sms_channel = senders.get(MessageChannel.SMS)
    sms = sms_channel.sms if isinstance(sms_channel, SmsChannel) else None
    subscription = bus.subscriber_all() if bus is not None else None
    log.info("worker started; channels: %s", ", ".join(c.value for c in senders) or "none")
    try:
        _loop(db, senders, stop, poll_seconds, subscription, sms, journal, lease)
    finally:
        if subscription is not None:
            subscription.close()
    log.info("worker stopped")


def _loop(
    db: Database, senders: Mapping[MessageChannel, Sender], stop: threading.Event, poll_seconds: float,
    subscription: Subscription | None, sms: SmsSender | None, journal: AcceptedJournal, lease: timedelta = LEASE,
) -> None:
    last_prune: datetime | None = None
    last_delivery_check: datetime | None = None
    last_delivery = 0.0
    while not stop.is_set():
        busy = False
        try:
            consumed = consumers.consume_ticket_events(db)
            escalated = escalate(db)
            if consumed.handled or escalated or time.monotonic() - last_delivery >= poll_seconds:
                last_delivery = time.monotonic()
                busy = deliver_due(db, senders, journal=journal, lease=lease) > 0
            busy = busy or consumed.more
            moment = utcnow()
            if last_prune is None or moment - last_prune >= PRUNE_EVERY:
                pruned = prune_events(db, moment)
                if pruned:
                    log.info("pruned %d old events", pruned)
                purged = purge_positions(db, moment)
                if purged:
                    log.info("purged %d executor positions past their retention", purged)
                last_prune = moment
            if sms is not None and (last_delivery_check is None or moment - last_delivery_check >= timedelta(seconds=30)):
                check_sms_delivery(db, sms, moment)
                last_delivery_check = moment
        except Exception:
            log.exception("worker round failed; retrying")
            stop.wait(min(poll_seconds * 5, 10))
            continue
        if busy:
            continue
        if subscription is not None:
            subscription.wait(min(poll_seconds, 1.0))
        else:
            stop.wait(min(poll_seconds, CONSUMER_POLL_SECONDS))
