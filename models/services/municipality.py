"""Notices to the municipality (ОМСУ / ЕДДС, regulations M1), for emergency tickets and incidents.

One machinery for both (decision 0039): each notice is one e-mail per address of the
organization (`Organization.municipality_emails`), an outbox message written in the caller's
transaction and sent with retries by `openads worker`; the message keeps its rendered text,
recipient, provider id and attempts, which the ticket card and the incidents page show.

A notice is queued once per subject (ticket or incident), purpose and address: calling again
(a retried request, a second localisation report) adds nothing. Follow-ups (eliminated,
localised, liquidated) go to the addresses that were told of the accident.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.organization import Organization
from models.outbox import MessageChannel, OutboxMessage
from models.rules.utilities import MUNICIPALITY_UTILITIES, UTILITY_TITLES_RU
from models.services.outbox import enqueue_message
from models.ticket import Incident

PURPOSE_PREFIX = "municipality_"  # every notice to the municipality
TICKET_EMERGENCY = "municipality_emergency"
TICKET_DONE = "municipality_emergency_done"
INCIDENT_STARTED = "municipality_incident"
INCIDENT_LOCALIZED = "municipality_incident_localized"
INCIDENT_LIQUIDATED = "municipality_incident_liquidated"

def fmt_local(org: Organization, moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(ZoneInfo(org.timezone)).strftime("%d.%m.%Y %H:%M")


def _subject_filter(ticket_id: int | None, incident_id: int | None) -> list[object]:
    if ticket_id is not None:
        return [OutboxMessage.ticket_id == ticket_id, OutboxMessage.incident_id.is_(None)]
    return [OutboxMessage.incident_id == incident_id]


def told_addresses(session: Session, *, purpose: str, ticket_id: int | None = None,
                   incident_id: int | None = None) -> list[str]:
    """The addresses a notice of `purpose` about the ticket or the incident was queued to, in order."""
    rows = session.scalars(
        select(OutboxMessage.recipient).where(OutboxMessage.purpose == purpose,
                                              *_subject_filter(ticket_id, incident_id))  # type: ignore[arg-type]
        .order_by(OutboxMessage.id)
    ).all()
    return list(dict.fromkeys(rows))


def queue_notice(
    session: Session, org: Organization, *, purpose: str, subject: str, body: str, now: datetime,
    recipients: list[str] | None = None, ticket_id: int | None = None, incident_id: int | None = None,
) -> list[OutboxMessage]:
    """One e-mail per address (`recipients`, default: the organization's municipality addresses)
    not yet sent this notice about this ticket or incident; returns the messages queued."""
    addresses = org.municipality_emails if recipients is None else recipients
    if not addresses:
        return []
    done = set(told_addresses(session, purpose=purpose, ticket_id=ticket_id, incident_id=incident_id))
    queued = []
    for recipient in dict.fromkeys(addresses):
        if recipient in done:
            continue
        message = enqueue_message(
            session, organization_id=org.id, channel=MessageChannel.EMAIL, purpose=purpose, recipient=recipient,
            subject=subject, body=body, ticket_id=ticket_id, now=now,
        )
        message.incident_id = incident_id
        queued.append(message)
    return queued


# --- incidents -------------------------------------------------------------------------------------


def _incident_place(incident: Incident) -> str:
    utility = UTILITY_TITLES_RU.get(incident.utility, "")
    return f"{incident.house.address}" + (f", {utility}" if utility else "")


def notifies_municipality(incident: Incident) -> bool:
    return incident.utility in MUNICIPALITY_UTILITIES


def notify_incident(session: Session, org: Organization, incident: Incident, stage: str,
                    now: datetime) -> list[OutboxMessage]:
    """The municipality's notice of an incident's `stage`: `started` (nature of the damage, expected
    end), `localized` or `liquidated` (follow-ups to the addresses told of the start). Incidents of
    resources outside `MUNICIPALITY_UTILITIES` notify nobody."""
    if not notifies_municipality(incident):
        return []
    session.flush()
    place = _incident_place(incident)
    sign = f"\n\nАварийно-диспетчерская служба {org.short_name}"
    if stage == "started":
        body = (
            f"{org.name} сообщает об аварийной ситуации.\n\n"
            f"Адрес: {place}\n"
            f"Характер повреждения: {incident.title}"
            + (f". {incident.announcement}" if incident.announcement else "") + "\n"
            f"Начало аварии: {fmt_local(org, incident.started_at)}\n"
            f"Плановый срок устранения: {fmt_local(org, incident.expected_end_at)}" + sign
        )
        return queue_notice(session, org, purpose=INCIDENT_STARTED, subject=f"Авария: {place}", body=body,
                            now=now, incident_id=incident.id)
    told = told_addresses(session, purpose=INCIDENT_STARTED, incident_id=incident.id)
    if stage == "localized":
        return queue_notice(
            session, org, purpose=INCIDENT_LOCALIZED, subject=f"Локализована: {place}", recipients=told, now=now,
            incident_id=incident.id,
            body=(f"Аварийная ситуация ({place}: {incident.title}) локализована "
                  f"{fmt_local(org, incident.localized_at)}.\n"
                  f"Плановый срок устранения: {fmt_local(org, incident.expected_end_at)}" + sign),
        )
    if stage == "liquidated":
        return queue_notice(
            session, org, purpose=INCIDENT_LIQUIDATED, subject=f"Ликвидирована: {place}", recipients=told,
            now=now, incident_id=incident.id,
            body=(f"Аварийная ситуация ({place}: {incident.title}) ликвидирована "
                  f"{fmt_local(org, incident.liquidated_at)}." + sign),
        )
    raise ValueError(stage)
