"""The bus against a real Redis started by the test (issue 11, item 4): subscriptions come back
after a Redis restart without restarting anything, publishing never waits for Redis, and an
outage is logged once, not once per wake-up."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from openads.bus import Bus, channel_name
from tests.conftest import until
from tests.ops.conftest import free_port

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


class RedisServer:
    """redis-server on 127.0.0.1:`port`, no persistence; stop and start it again on the same port."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        until(answers, timeout=10, interval=0.05)
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def publish(self, org_id: int) -> None:
        """A wake-up from another process."""
        client = redis.Redis(port=self.port)
        try:
            client.publish(channel_name(org_id), "1")
        finally:
            client.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A TCP port that listens but never accepts or answers: an unreachable (not refusing) Redis."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"


def _bus_records(caplog: pytest.LogCaptureFixture, level: int, bus: Bus) -> list[logging.LogRecord]:
    """This bus's records (another test's bus may still be failing in its thread)."""
    return [r for r in caplog.records
            if r.name == "openads.bus" and r.levelno == level and bus.health.where in r.getMessage()]


def test_after_a_redis_restart_subscribers_get_wake_ups_again_without_a_restart(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="openads.bus")
    bus = Bus(redis_server.url, connect_timeout=0.5, socket_timeout=0.5)
    heard: list[frozenset[int | None]] = []
    bus.add_listener(heard.append)  # as web/sse_hub.py does
    sub = bus.subscriber([7])  # as the worker and the threaded streams do
    try:
        until(lambda: bus.redis_live, timeout=10)

        def woken_by_another_process() -> bool:
            heard.clear()
            redis_server.publish(7)
            return until(lambda: frozenset({7}) in heard, timeout=1, interval=0.02) and sub.wait(1.0)

        assert woken_by_another_process()

        redis_server.stop()
        until(lambda: not bus.redis_live, timeout=10)
        redis_server.start()
        until(lambda: bus.redis_live, timeout=30)

        assert until(woken_by_another_process, timeout=10)
        assert len(_bus_records(caplog, logging.WARNING, bus)) == 1  # once per outage
        (back,) = _bus_records(caplog, logging.INFO, bus)
        assert "available again" in back.getMessage()
    finally:
        sub.close()
        bus.remove_listener(heard.append)


def test_publishing_to_an_unreachable_redis_returns_at_once_with_the_wake_ups_queued(blackhole: str) -> None:
    bus = Bus(blackhole, connect_timeout=60, socket_timeout=60)  # Redis would hold a caller for minutes
    publisher = bus.publisher
    assert publisher is not None
    done = threading.Event()
    bus.publish([0])
    until(lambda: not publisher.pending())  # the publisher has it and waits for the blackhole

    def commits() -> None:
        for i in range(100):
            bus.publish([i % 5])
        done.set()

    threading.Thread(target=commits, daemon=True).start()
    assert done.wait(10)  # a liveness bound: before the fix the first publish alone waited 60 s
    assert publisher.published == 0  # nothing reached Redis, the commits returned anyway
    assert publisher.pending() == {0, 1, 2, 3, 4}  # 100 wake-ups coalesced into one per organization


def test_an_outage_is_logged_once_without_a_traceback_for_many_failed_publishes(
    blackhole: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="openads.bus")
    bus = Bus(blackhole, connect_timeout=0.2, socket_timeout=0.2)

    def failed_three_times() -> bool:
        bus.publish([1, 2])
        return bus.health.failures >= 3

    until(failed_three_times, timeout=30, interval=0.05)
    warnings = _bus_records(caplog, logging.WARNING, bus)
    assert len(warnings) == 1
    assert warnings[0].exc_info is None
    assert "unavailable" in warnings[0].getMessage()
