"""Who sees what inside an organization: the one rule the panel, the API and the services share.

Tenant scoping (the organizations a user belongs to) is every query's `org_ids`. On top of it:

- admin, manager, dispatcher (`STAFF`): everything of their organizations;
- executor: only what the tickets assigned to them need (issue 10, item 3) —
  * those tickets (journal, card, live row, workflow actions), their comments and attachments;
  * the houses of those tickets: premises and house notes (door codes, where the keys are), and
    they may add a note to such a house (they are the ones who learn the codes on site);
  * live events: only those tickets' changes and incidents (`executor_sees_event`);
  * not the resident directory (the phone/name lookup: phones, accounts, notes of everyone),
    not the other tickets of a house, not another house's notes, not another ticket's files.

"Assigned to them" is the ticket's current executor, whatever its status: the executor keeps the
card of a ticket they closed (the journal lists it), and with it the house it needs. Anything
outside answers "not found", as another organization's row does (existence is not disclosed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from models import events
from models.errors import NotFound, TicketNotFound
from models.housing import House
from models.organization import Role, User
from models.queries import JournalFilter
from models.rules.access import STAFF
from models.ticket import Attachment, Ticket


def is_executor(user: User) -> bool:
    return user.role == Role.EXECUTOR


def may_search_directory(user: User) -> bool:
    """The resident directory (lookup by phone or name, residents' cards): staff only."""
    return user.role in STAFF


def _org_ids(user: User) -> list[int]:
    ids = user.organization_ids
    if not ids:
        raise NotFound("нет доступных организаций")
    return ids


# --- tickets -------------------------------------------------------------------------------------


def ticket_conditions(user: User) -> list[ColumnElement[bool]]:
    """SQL conditions on `Ticket` beyond the organization (an executor's own tickets only)."""
    return [Ticket.executor_id == user.id] if is_executor(user) else []


def sees_ticket(user: User, ticket: Ticket) -> bool:
    return ticket.organization_id in user.organization_ids and (
        not is_executor(user) or ticket.executor_id == user.id
    )


def visible_ticket(user: User, ticket: Ticket) -> Ticket:
    """`ticket`, or TicketNotFound when the user must not see it."""
    if not sees_ticket(user, ticket):
        raise TicketNotFound("заявка не найдена", ticket_id=ticket.id)
    return ticket


def scope_journal(user: User, f: JournalFilter) -> JournalFilter:
    """An executor's journal is the list of tickets assigned to them (asking for another
    executor's gives nothing)."""
    if is_executor(user):
        f.executor_id = user.id if f.executor_id in (None, user.id) else -1
    return f


# --- live events --------------------------------------------------------------------------------

# What an executor's live stream may carry: the changes of tickets that are or were theirs, and
# incidents (the same notice residents hear on the hotline). Everything else is withheld, including
# event kinds added later: calls and missed calls (residents' phones, names, caller cards), failed
# notices (recipients' addresses, other tickets' numbers).
EXECUTOR_TICKET_EVENTS = frozenset({events.TICKET_CREATED, events.TICKET_CHANGED, events.TICKET_ACCEPTED})
EXECUTOR_PUBLIC_EVENTS = frozenset({events.INCIDENT_CHANGED})
# Background jobs: an executor's own (a journal export), by `requested_by_id`.
EXECUTOR_OWN_EVENTS = frozenset({events.JOB_PROGRESS, events.JOB_FINISHED})


def executor_sees_event(executor_id: int, name: str, payload: dict[str, Any] | None) -> bool:
    if name in EXECUTOR_PUBLIC_EVENTS:
        return True
    if name in EXECUTOR_OWN_EVENTS:
        return (payload or {}).get("requested_by_id") == executor_id
    return name in EXECUTOR_TICKET_EVENTS and executor_id in (payload or {}).get("executor_ids", ())


# --- houses and what hangs on them ---------------------------------------------------------------


def house_conditions(user: User) -> list[ColumnElement[bool]]:
    """SQL conditions on `House` beyond the organization (an executor: the houses of their tickets)."""
    if not is_executor(user):
        return []
    mine = select(Ticket.house_id).where(Ticket.executor_id == user.id, Ticket.house_id.is_not(None))
    return [House.id.in_(mine)]


def visible_house(session: Session, user: User, house_id: int, options: Sequence[Any] = ()) -> House:
    """The house by id if the user may see it (its premises and notes with it), else NotFound."""
    house = session.scalar(
        select(House).where(House.id == house_id, House.organization_id.in_(_org_ids(user)),
                            *house_conditions(user)).options(*options)
    )
    if house is None:
        raise NotFound("дом не найден", house_id=house_id)
    return house


def visible_attachment(session: Session, user: User, attachment_id: int) -> Attachment:
    """A ticket's file by id if the user may see the ticket, else NotFound."""
    att = session.scalar(
        select(Attachment).join(Ticket, Ticket.id == Attachment.ticket_id)
        .where(Attachment.id == attachment_id, Attachment.organization_id.in_(_org_ids(user)),
               *ticket_conditions(user))
    )
    if att is None:
        raise NotFound("файл не найден", attachment_id=attachment_id)
    return att
