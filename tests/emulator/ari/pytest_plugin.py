"""Pytest fixtures for the ARI emulator. Telephony tests import them into their conftest:

    from tests.emulator.ari.pytest_plugin import ari_emulator, make_ari_emulator  # noqa: F401

`ari_emulator` is a started emulator (real clock, random port on 127.0.0.1, recordings in a tmp dir).
At teardown the test fails if any REST call or event broke the ARI spec; a test that provokes
violations on purpose takes them with `emu.take_violations()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .scenario import AriEmulator


@pytest.fixture
def make_ari_emulator(tmp_path: Path) -> Iterator[Callable[..., AriEmulator]]:
    started: list[AriEmulator] = []

    def make(**kwargs: Any) -> AriEmulator:
        kwargs.setdefault("recordings_dir", tmp_path / f"ari-recordings-{len(started)}")
        emu = AriEmulator(**kwargs).start()
        started.append(emu)
        return emu

    yield make
    problems = []
    for emu in started:
        emu.stop()
        problems.extend(emu.violations)
    if problems:
        pytest.fail("ARI spec violations:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def ari_emulator(make_ari_emulator: Callable[..., AriEmulator]) -> AriEmulator:
    return make_ari_emulator()
