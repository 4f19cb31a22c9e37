"""The telephony settings an administrator types, checked and normalised. Pure: each function
returns the clean value or raises ValueError with a Russian message for the form.

Announcement texts: empty means the recorded prompt (dialplan/sounds/prompts.tsv), whose text is
`DEFAULT_TEXTS` here (a test keeps the two equal), so "listen" can synthesise what callers hear.
"""

from __future__ import annotations

import re
from typing import Any

from models.call import RingStrategy
from models.rules.deadlines import MAX_WAIT_LIMIT_SECONDS

ENDPOINT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*/\S{1,70}$")  # PJSIP/disp1, SIP/100, Local/100@dispatchers
MOH_CLASS_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")  # a musiconhold.conf section name
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

MAX_RING_RETRY_SECONDS = 300
# Auto-callback must still reach the resident within 10 minutes of the missed call (ПП 416).
MAX_AUTO_CALLBACK_DELAY_SECONDS = 300
MAX_ANNOUNCEMENT = 1000  # characters: a prompt, not a letter
MAX_RETENTION_DAYS = 3650
# ПП 416 п. 13: the dispatch service keeps its call recordings for at least 3 months (decision 0035).
MIN_RETENTION_DAYS = 90
DEFAULT_RETENTION_DAYS = 90

# The strategies the administration pages offer (least_recent stays readable, not offered).
OFFERED_STRATEGIES: tuple[RingStrategy, ...] = (RingStrategy.RINGALL, RingStrategy.ROUND_ROBIN, RingStrategy.IN_ORDER)

# What the recorded prompts say (dialplan/sounds/prompts.tsv): spoken when no own text is set.
DEFAULT_TEXTS: dict[str, str] = {
    "greeting": "Аварийно-диспетчерская служба. Разговор записывается. Соединяем с диспетчером, пожалуйста, "
                "оставайтесь на линии.",
    "voicemail_offer": "Все диспетчеры сейчас заняты. После сигнала назовите адрес, номер квартиры и что "
                       "случилось, в конце нажмите решётку. Мы перезвоним вам в течение десяти минут.",
    "all_busy": "Все диспетчеры сейчас заняты. Мы перезвоним вам в течение десяти минут.",
    "test_call": "Тестовый звонок Открытой АДС. Телефонная станция работает.",
}
ANNOUNCEMENTS = ("greeting", "voicemail_offer")  # the texts an organization may set


def endpoint(raw: Any) -> str:
    value = str(raw or "").strip()
    if not ENDPOINT_RE.match(value):
        raise ValueError("телефон указывается как технология/имя, например PJSIP/201")
    return value


def whole_number(raw: Any, *, low: int, high: int, what: str) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"{what} — целое число от {low} до {high}")
    if isinstance(raw, str):
        raw = raw.strip()
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{what} — целое число от {low} до {high}") from None
    if not low <= value <= high:
        raise ValueError(f"{what} — от {low} до {high}")
    return value


def wait_limit(raw: Any) -> int:
    return whole_number(raw, low=1, high=MAX_WAIT_LIMIT_SECONDS,
                        what=f"время ожидания ответа, секунд (ПП 416: не более {MAX_WAIT_LIMIT_SECONDS // 60} минут)")


def ring_retry(raw: Any) -> int | None:
    """Seconds before ringing again when every phone is busy; empty: the server's default."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    return whole_number(raw, low=1, high=MAX_RING_RETRY_SECONDS, what="пауза перед повторным вызовом, секунд")


def auto_callback_delay(raw: Any) -> int:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return 0
    return whole_number(raw, low=0, high=MAX_AUTO_CALLBACK_DELAY_SECONDS,
                        what="задержка автоперезвона, секунд (перезвонить нужно в течение 10 минут)")


def retention_days(raw: Any) -> int:
    """The organization's recording retention: `MIN_RETENTION_DAYS` to `MAX_RETENTION_DAYS`."""
    return whole_number(raw, low=MIN_RETENTION_DAYS, high=MAX_RETENTION_DAYS,
                        what="срок хранения записей, дней (записи разговоров хранятся не менее 3 месяцев)")


def ring_strategy(raw: Any) -> RingStrategy:
    value = raw.value if isinstance(raw, RingStrategy) else str(raw or "").strip()
    for strategy in OFFERED_STRATEGIES:
        if strategy.value == value:
            return strategy
    raise ValueError("стратегия вызова — одна из: " + ", ".join(s.value for s in OFFERED_STRATEGIES))


def moh_class(raw: Any) -> str | None:
    """A musiconhold.conf class; empty: the server's default (ARI_MOH_CLASS)."""
    value = str(raw or "").strip()
    if not value:
        return None
    if not MOH_CLASS_RE.match(value):
        raise ValueError("класс музыки ожидания — одно слово из латинских букв, цифр, _ и - (как в musiconhold.conf)")
    return value


def announcement(raw: Any) -> str | None:
    """An announcement text; empty: the recorded prompt. Line breaks become spaces."""
    value = _CONTROL.sub("", str(raw or "")).replace("\r", " ").replace("\n", " ")
    value = " ".join(value.split())
    if not value:
        return None
    if len(value) > MAX_ANNOUNCEMENT:
        raise ValueError(f"не длиннее {MAX_ANNOUNCEMENT} символов (сейчас {len(value)})")
    return value


def flag(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        return raw.strip().lower() in ("1", "true", "yes", "on", "да")
    return bool(raw)
