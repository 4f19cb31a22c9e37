"""The ticket workflow: new → assigned → in progress → done → closed, plus cancelled and rejected."""

from __future__ import annotations

from models.ticket import TicketStatus as S

ALLOWED_TRANSITIONS: dict[S, frozenset[S]] = {
    S.NEW: frozenset({S.ASSIGNED, S.CANCELLED, S.REJECTED}),
    S.ASSIGNED: frozenset({S.NEW, S.IN_PROGRESS, S.DONE, S.CANCELLED, S.REJECTED}),
    S.IN_PROGRESS: frozenset({S.DONE, S.ASSIGNED, S.CANCELLED}),
    S.DONE: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
}

# Reopening (with a counter and a reason) is allowed from these; the ticket goes back to work.
REOPENABLE: frozenset[S] = frozenset({S.DONE, S.CLOSED, S.CANCELLED, S.REJECTED})
NEEDS_REASON: frozenset[S] = frozenset({S.CANCELLED, S.REJECTED})
NEEDS_EXECUTOR: frozenset[S] = frozenset({S.ASSIGNED, S.IN_PROGRESS, S.DONE})
# No deadline is pending in these.
SETTLED: frozenset[S] = frozenset({S.DONE, S.CLOSED, S.CANCELLED, S.REJECTED})
OPEN: frozenset[S] = frozenset(set(S) - SETTLED)

# An executor sees only the tickets assigned to them and may only take one into work or report it
# done (plus localisation, comments and photos); everything else is the dispatchers' job.
EXECUTOR_TARGETS: frozenset[S] = frozenset({S.IN_PROGRESS, S.DONE})

STATUS_TITLES_RU: dict[S, str] = {
    S.NEW: "Новая",
    S.ASSIGNED: "Назначена",
    S.IN_PROGRESS: "В работе",
    S.DONE: "Выполнена",
    S.CLOSED: "Закрыта",
    S.CANCELLED: "Отменена",
    S.REJECTED: "Отклонена",
}


def can_transition(current: S, wanted: S) -> bool:
    return wanted in ALLOWED_TRANSITIONS[current]
