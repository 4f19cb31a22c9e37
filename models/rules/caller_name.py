"""The caller's name on the dispatchers' phone screens: one rule for every way a phone rings.

The ARI app puts it in the `callerId` of every leg it originates to a dispatcher (a first ring, a
ring again, a ring after a restart), the fallback's AGI `lookup_caller` in `CALLERID(name)`; both
name the same residents the same way (issue 9 C4: they used to differ, one said "Яковлева кв.70",
the other "Зоя кв.70", and a re-attached call said nothing). The surname, as the caller card on
the panel leads with it (the residents register writes "Фамилия Имя Отчество"), and the premise
short ("кв.70"): a phone's screen is narrow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

MAX_CALLER_NAME = 40  # phone screens show ~20-40 characters; Asterisk itself has no small limit


class NamedResident(Protocol):
    """What the rule needs of a resident (models.queries_calls.CardResident has it)."""

    @property
    def full_name(self) -> str: ...

    @property
    def premise_kind(self) -> str: ...

    @property
    def premise_number(self) -> str: ...


def surname(full_name: str) -> str:
    """"Яковлева Зоя Петровна" → "Яковлева" (surname first, as in the residents register)."""
    parts = (full_name or "").split()
    return parts[0] if parts else ""


def short_premise(kind: str, number: str) -> str:
    """Compact: "кв." + "70" → "кв.70"; a kind without a dot keeps a space ("офис 2"); no premise: ""."""
    kind, number = (kind or "").strip(), (number or "").strip()
    if not number:
        return ""
    if not kind:
        return number
    return f"{kind}{number}" if kind.endswith(".") else f"{kind} {number}"


def caller_name(residents: Sequence[NamedResident], limit: int = MAX_CALLER_NAME) -> str:
    """"Яковлева кв.70"; two residents of one flat: "Яковлева, Яковлев кв.70"; of different flats:
    "Яковлева кв.70, Бэллова кв.7"; too long: the first one and "+N"; never over `limit`; an
    unknown number (no residents): "". Give the residents in a stable order (by id, as the caller
    card and `lookup_caller` read them), so that every phone shows the same text."""
    if not residents:
        return ""
    groups: dict[str, list[str]] = {}
    for r in residents:
        names = groups.setdefault(short_premise(r.premise_kind, r.premise_number), [])
        name = surname(r.full_name)
        if name and name not in names:  # a family sharing a surname is named once
            names.append(name)
    text = ", ".join(_join(", ".join(names), premise) for premise, names in groups.items())
    if len(text) > limit and len(residents) > 1:
        first = residents[0]
        text = _join(surname(first.full_name), short_premise(first.premise_kind, first.premise_number),
                     f"+{len(residents) - 1}")
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)
