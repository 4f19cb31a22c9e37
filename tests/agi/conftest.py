"""Fixtures of the FastAGI tests: the real server on a random port, its loop in a thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agi.server import AgiServer
from models.db import Database
from tests.agi.helpers import LoopThread, start_server


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture
def agi(loop_thread: LoopThread, db: Database) -> Iterator[AgiServer]:
    server = start_server(loop_thread, db)
    yield server
    loop_thread.run(server.close())
