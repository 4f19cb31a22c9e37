"""Phone numbers: everything stored is E.164 (`+79161234567`)."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

# A Russian number as people write it: +7 or 8, then ten digits, with spaces, dashes and brackets.
_RU_PLAIN = re.compile(r"(?:\+7|8(?!10))(\d{10})")  # 8 10 … is the international prefix
_RU_SEPARATORS = str.maketrans("", "", " -()\u00a0")


class InvalidPhone(ValueError):
    def __init__(self, raw: str) -> None:
        super().__init__(f"некорректный номер телефона: {raw!r}")
        self.raw = raw


def to_e164(raw: str, region: str = "RU") -> str:
    """Normalise a number as residents and operators write it ("8 (916) 123-45-67") to E.164."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhone(raw)
    if region == "RU":
        # The usual shapes of a Russian number, without phonenumbers' ~0.2 ms parse (a housing import
        # parses one or two per row): the same answer, since every +7 number of ten digits is possible.
        plain = _RU_PLAIN.fullmatch(text.translate(_RU_SEPARATORS))
        if plain:
            return "+7" + plain.group(1)
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(raw) from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhone(raw)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=4096)  # pure, and parsing costs a tenth of a millisecond (every call arriving parses three)
def try_e164(raw: str | None, region: str = "RU") -> str | None:
    """E.164 or None: for search boxes, where a non-number simply means "not a phone query"."""
    if not raw:
        return None
    digits = sum(ch.isdigit() for ch in raw)
    if digits < 7:
        return None
    try:
        return to_e164(raw, region)
    except InvalidPhone:
        return None


def display(e164: str | None) -> str:
    """`+79161234567` → `+7 916 123-45-67` for screens."""
    if not e164:
        return ""
    if len(e164) == 12 and e164.startswith("+79") and e164[1:].isdigit():
        # Russian mobiles (most callers): the text phonenumbers gives, without its ~70 µs parse.
        return f"+7 {e164[2:5]} {e164[5:8]}-{e164[8:10]}-{e164[10:]}"
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
