"""Async helpers for the ari_app tests (no pytest-asyncio: each test runs its own loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(predicate: Callable[[], bool], timeout: float = 5.0, message: str = "") -> None:
    """Poll `predicate` until it holds; fail after `timeout` seconds (a deadline, not a timing target)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s {message}".strip())
        await asyncio.sleep(0.005)
