"""Secrets a user holds: password hashing and the password policy, API tokens and session keys.

Pure functions (no database). Passwords are hashed with Werkzeug's scrypt format, which the
existing rows already use. Tokens and session keys are random strings whose SHA-256 alone is
stored: a copy of the database does not give anyone a working token or cookie.
"""

from __future__ import annotations

import functools
import hashlib
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

DEFAULT_MIN_LENGTH = 10

# The passwords tried first by every guessing tool, and the ones people in Russian offices pick
# (keyboard rows, the Cyrillic row typed on a Latin layout, the product's own name). Compared
# case-insensitively; a password that merely contains one of them is still allowed when long enough.
COMMON_PASSWORDS = frozenset({
    "1234567890", "0987654321", "12345678910", "1111111111", "0000000000", "1234512345", "1q2w3e4r5t",
    "1q2w3e4r5t6y", "qwertyuiop", "qwerty1234", "qwerty12345", "qwerty123456", "1qaz2wsx3edc", "zaq12wsxcde3",
    "asdfghjkl1", "password12", "password123", "password1234", "passw0rd12", "p@ssw0rd12", "p@ssword123",
    "administrator", "admin12345", "admin123456", "adminadmin", "letmein123", "welcome123", "iloveyou12",
    "abcdefghij", "abc1234567", "abcd123456", "1234qwerty", "123456789a", "a123456789", "123456qwerty",
    "q1w2e3r4t5", "q1w2e3r4t5y6", "qazwsxedc123", "trustno1234", "changeme123", "secret1234", "dragon1234",
    "monkey1234", "football12", "baseball12", "superman12", "starwars12", "sunshine12", "princess12",
    "ytrewq1234", "zxcvbnm123", "zxcvbnm1234", "asdasdasd1", "qweqweqwe1", "11223344556", "1122334455",
    "йцукенгшщз", "йцукен1234", "пароль1234", "пароль12345", "парольпароль", "привет1234", "qwertyйцукен",
    "gfhjkm1234", "gfhjkm12345", "ntcnntcn12", "cfvjktn123", "lfyfvj1234",
    "openads123", "openads1234", "openadsadmin", "dispatcher1", "dispatcher123", "dispetcher1",
    "dispetcher123", "avariynaya1", "demodemo12",
})


# Werkzeug's scrypt (N=2^15, r=8, p=1): about 0.1 s of CPU a check, the price of every guess. The
# test suite sets a cheap method (tests/conftest.py), as Django's test settings do: its hundreds of
# sign-ins would cost minutes. Existing hashes are checked by the method they name, whatever this is.
DEFAULT_PASSWORD_METHOD = "scrypt"
password_method = DEFAULT_PASSWORD_METHOD


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=password_method)


def check_password(password_hash: str, password: str) -> bool:
    return check_password_hash(password_hash, password)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def check_no_password(password: str) -> bool:
    """The same work as `check_password` for a login that does not exist (or is deactivated), so
    the answer takes as long as for a real account: the response time does not tell which logins
    exist. Always False."""
    check_password(_dummy_hash(), password)
    return False


def password_problems(password: str, *, login: str, min_length: int = DEFAULT_MIN_LENGTH) -> list[str]:
    """Why `password` may not be set for `login` (Russian messages); empty when it is acceptable."""
    problems = []
    if len(password) < min_length:
        problems.append(f"пароль короче {min_length} символов")
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(lowered)) <= 2:
        problems.append("пароль слишком простой: его подбирают первым")
    if login and login.lower() in lowered:
        problems.append("пароль не должен содержать логин")
    return problems


# A temporary password: three groups of an alphabet without look-alikes, read out or typed from a
# note without mistakes (72 bits); it opens only the page that sets the user's own password.
_TEMPORARY_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_temporary_password(*, login: str, min_length: int = DEFAULT_MIN_LENGTH) -> str:
    """A random password that passes the policy for `login` (shown once to the administrator)."""
    groups = max(3, -(-min_length // 4))
    while True:
        raw = "".join(secrets.choice(_TEMPORARY_ALPHABET) for _ in range(groups * 4))
        password = "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))
        if not password_problems(password, login=login, min_length=min_length):
            return password


def digest(secret: str) -> str:
    """What the database keeps of an API token or a session key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_token() -> str:
    return "oads_" + secrets.token_urlsafe(32)


def new_session_key() -> str:
    return secrets.token_urlsafe(32)
