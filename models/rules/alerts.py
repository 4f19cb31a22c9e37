"""Notifications that demand acknowledgement (issue 15 B; decision 0043): the escalation steps,
the executors' channels and quiet hours, the texts. Pure: no I/O.

The escalation of an emergency ticket assigned and not accepted, N = the category's
`ack_minutes` (default 5), counted from the assignment:

    0    push to every device the executor subscribed (and the e-mail, as before)
    N    SMS to the executor's mobile
    2N   a voice call: the robot reads the address and the problem, «нажмите 1, чтобы принять»
    3N   «не подтверждено» on the dispatchers' console (event `ticket.unacknowledged`)

Acceptance by any channel (the app, a dispatcher on their behalf, «1» in the call) stops the
steps not yet taken. A channel the executor turned off, or cannot get (no subscription, no mobile
number), is logged as skipped and the next step keeps its time. Quiet hours never delay an
emergency; other tickets' push waits for the end of the executor's quiet hours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from typing import Any

PUSH, SMS, VOICE, EMAIL, CONSOLE = "push", "sms", "voice", "email", "console"
CHANNELS = (PUSH, SMS, VOICE, EMAIL)
CHANNEL_TITLES_RU = {PUSH: "уведомление на телефон", SMS: "SMS", VOICE: "звонок робота", EMAIL: "эл. почта",
                     CONSOLE: "пульт диспетчера"}
# (channel, offset in units of N minutes)
STEPS: tuple[tuple[str, int], ...] = ((PUSH, 0), (SMS, 1), (VOICE, 2), (CONSOLE, 3))
DEFAULT_ACK_MINUTES = 5
MAX_ACK_MINUTES = 120
ALERT_PURPOSE = "executor_alert"  # the outbox purpose of an escalation's message
ASSIGNED_PUSH_PURPOSE = "executor_push"  # the push of a non-emergency assignment
NOT_ACKNOWLEDGED_RU = "не подтверждено"
VOICE_ACCEPT_KEY = "1"
VOICE_ACCEPTED_RU = "Заявка принята. Спасибо!"


def ack_minutes(raw: Any) -> int:
    """Minutes to accept an emergency (1…120). Raises ValueError with the Russian message."""
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        raise ValueError("время на подтверждение — целое число минут") from None
    if not 1 <= value <= MAX_ACK_MINUTES:
        raise ValueError(f"время на подтверждение — от 1 до {MAX_ACK_MINUTES} минут")
    return value


def channels(raw: Any) -> list[str]:
    """The channels of a preference (a list or a comma-separated string), in the canonical order."""
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list | tuple):
        raise ValueError("каналы — список из push, sms, voice, email")
    unknown = [str(c) for c in raw if c not in CHANNELS]
    if unknown:
        raise ValueError("неизвестный канал: " + ", ".join(unknown[:3]))
    return [c for c in CHANNELS if c in raw]


_HHMM = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


def hhmm(raw: str) -> time:
    m = _HHMM.match(raw or "")
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError("время в формате ЧЧ:ММ, например 22:00")
    return time(int(m.group(1)), int(m.group(2)))


def quiet_hours(start: Any, end: Any) -> tuple[time | None, time | None]:
    """Both empty: no quiet hours; both set and different: the window; anything else refused."""
    start = start if isinstance(start, time) else (str(start).strip() if start not in (None, "") else "")
    end = end if isinstance(end, time) else (str(end).strip() if end not in (None, "") else "")
    if not start and not end:
        return None, None
    if not start or not end:
        raise ValueError("укажите начало и конец тихих часов (или ни того, ни другого)")
    s = start if isinstance(start, time) else hhmm(start)
    e = end if isinstance(end, time) else hhmm(end)
    if s == e:
        raise ValueError("начало и конец тихих часов совпадают")
    return s, e


@dataclass(frozen=True)
class Preferences:
    channels: tuple[str, ...]
    quiet_start: time | None
    quiet_end: time | None

    def wants(self, channel: str) -> bool:
        return channel in self.channels


DEFAULT_PREFERENCES = Preferences(CHANNELS, None, None)


def step_at(step: int) -> int:
    """The offset of step `step` in units of N."""
    return STEPS[step][1]


def push_payload(*, ticket_id: int, number: str, emergency: bool, address: str, problem: str) -> dict[str, Any]:
    """What the service worker (web/static/app/push-sw.js) shows; `url` opens the ticket in the app."""
    title = ("Авария: " if emergency else "Заявка ") + f"№ {number}"
    return {"title": title, "body": f"{address}. {problem}"[:300], "ticket_id": ticket_id,
            "url": f"/app/tickets/{ticket_id}", "tag": f"ticket-{ticket_id}", "emergency": emergency,
            "require_interaction": emergency}


def sms_text(*, number: str, address: str, problem: str) -> str:
    return f"АВАРИЯ № {number}: {address}. {problem[:120]}. Примите заявку в приложении OpenADS."


def voice_text(*, number: str, address: str, problem: str) -> str:
    """What the robot reads to the executor (номер, not «№»)."""
    return (f"Аварийная заявка номер {number}. Адрес: {address}. Проблема: {problem[:300]}. "
            "Нажмите 1, чтобы принять заявку.")
