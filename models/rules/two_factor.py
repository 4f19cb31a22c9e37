"""TOTP two-factor authentication (RFC 6238, as Google Authenticator, Яндекс Ключ, FreeOTP and
andOTP read it): secrets, codes, recovery codes. Pure: the time is an argument, nothing is stored.

A code is accepted for its own 30-second step and one step either side (a phone clock a little
off, a code typed as it changed), and only once: the caller keeps the last accepted step and
passes it back, so a code seen over a shoulder or in a proxy log cannot be replayed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

import pyotp

ISSUER = "Открытая АДС"
DIGITS = 6
STEP_SECONDS = 30
VALID_WINDOW = 1  # steps accepted either side of the current one
RECOVERY_CODES = 10
# Recovery codes: 10 characters of an alphabet without look-alikes (0/o, 1/l/i), shown as xxxxx-xxxxx.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_LENGTH = 10
MAX_CODE_INPUT = 40  # characters of a typed code looked at


def new_secret() -> str:
    """A random base32 secret (160 bits, as RFC 4226 recommends)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, login: str) -> str:
    """The otpauth:// address the QR code carries (the app shows "Открытая АДС (login)")."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(name=login, issuer_name=ISSUER)


def grouped_secret(secret: str) -> str:
    """The secret in groups of four, for typing it into the app by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def clean_code(raw: str | None) -> str:
    """A typed code without spaces and dashes, lower case (recovery codes are typed any way)."""
    return re.sub(r"[\s\-]", "", (raw or "")[:MAX_CODE_INPUT]).lower()


def is_totp_code(code: str) -> bool:
    return len(code) == DIGITS and code.isascii() and code.isdigit()


def code_at(secret: str, moment: datetime) -> str:
    """The code the app shows at `moment` (tests, and nothing else, need it)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).at(moment)


def matching_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step whose code `code` is (within the window around `now`) and that is later than
    `last_step`; None when the code is wrong, too old or already used."""
    if not is_totp_code(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if last_step is not None and step <= last_step:
            continue
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes(n: int = RECOVERY_CODES) -> list[str]:
    """Fresh recovery codes as shown to the user (xxxxx-xxxxx)."""
    out = []
    for _ in range(n):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        out.append(f"{raw[:5]}-{raw[5:]}")
    return out


def recovery_digest(code: str) -> str:
    """What the database keeps of a recovery code (the typed form is cleaned first)."""
    return hashlib.sha256(clean_code(code).encode()).hexdigest()
