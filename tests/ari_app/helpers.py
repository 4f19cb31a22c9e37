"""Async helpers for the ari_app tests (no pytest-asyncio: each test runs its own loop)."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.db import Database
from models.organization import Organization
from models.services.calls import assign_dispatcher_phone


async def until(predicate: Callable[[], bool], timeout: float = 5.0, message: str = "") -> None:
    """Poll `predicate` until it holds; fail after `timeout` seconds (a deadline, not a timing target)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s {message}".strip())
        await asyncio.sleep(0.005)


def assign_phone(db: Database, org: Any, endpoint: str, user_id: int | None) -> None:
    """`endpoint` ("PJSIP/202") is the phone of user `user_id` in `org` (the telephony settings)."""
    with db.write() as s:
        assign_dispatcher_phone(s, org=s.get(Organization, org.id), endpoint=endpoint, user_id=user_id, by=None)


def write_silence(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A real WAV of `seconds` of silence, 16-bit mono PCM (what MixMonitor and VoiceMail write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * round(seconds * rate))
    return path
