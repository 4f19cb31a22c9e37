"""Fixtures of the real-PBX scenarios (`make test-pbx`): the test PBX of pbx/run.sh with the
project's dialplan, OpenADS's four processes, and baresip phones for dispatchers and residents."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.pbx.phones import Phone, free_port
from tests.pbx.stack import (
    DISPATCHERS,
    INCIDENT_HOUSE_RESIDENT,
    RESIDENTS,
    ROOT,
    Stack,
    close_open_missed_calls,
    fresh_database_url,
    pbx_env,
    seed,
    skip_earlier_cdrs,
    wait_until,
)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    subprocess.run([str(ROOT / "pbx" / "run.sh"), "start"], check=True)
    env = pbx_env()
    home = Path(env["OPENADS_PBX_HOME"]) / "openads"
    home.mkdir(parents=True, exist_ok=True)
    st = Stack(pbx=env, home=home, database_url=fresh_database_url(home), web_port=free_port())
    # A fresh database numbers calls from 1 again: files of earlier runs must not stand in for this one's.
    for old in Path(env["OPENADS_RECORDINGS_DIR"]).glob("[0-9]*"):
        shutil.rmtree(old)
    st.openads("db", "upgrade")
    st.ids = seed(st.db)
    skip_earlier_cdrs(st)
    st.start_all()
    try:
        yield st
    finally:
        st.stop_all()
        st.db.dispose()


class Phones:
    """Phones of one test; all stopped at its end."""

    def __init__(self, stack: Stack, home: Path) -> None:
        self.stack, self.home, self.all = stack, home, []
        self.sip = stack.pbx["OPENADS_PBX_SIP"]

    def _start(self, phone: Phone) -> Phone:
        self.all.append(phone)
        return phone.start()

    def dispatcher(self, ext: str, answermode: str = "manual") -> Phone:
        pw = self.stack.pbx[f"DISPATCHER_{ext}_PASSWORD"]
        phone = self._start(Phone(f"d{ext}", self.home, "127.0.0.1:0",
                                  [f"<sip:{ext}@{self.sip}>;auth_pass={pw};regint=60;answermode={answermode}"]))
        phone.wait_registered()
        wait_until(f"Asterisk sees {ext} reachable", lambda: any(
            f" {ext}/sip:" in line and "Avail" in line.split() for line in self.stack.cli("pjsip show contacts").splitlines()), 10)
        return phone

    def resident(self, number: str, source: Path | None = None) -> Phone:
        """A resident's phone calling through the operator (127.0.0.2: Asterisk takes it for the trunk)."""
        return self._start(Phone(f"r{number.lstrip('+')}", self.home, "127.0.0.2:0",
                                 [f"<sip:{number.lstrip('+')}@127.0.0.2>;regint=0;answermode=manual"], source=source))

    def operator(self, answermode: str = "manual", source: Path | None = None,
                 numbers: list[str] | None = None) -> Phone:
        """The operator's side of the trunk: Asterisk's PJSIP/<number>@trunk-operator rings here, as the
        resident <number> (one account per test resident), or as each of `numbers` (an executor's mobile)."""
        accounts = [f"<sip:{phone.lstrip('+')}@127.0.0.2>;regint=0;answermode={answermode}"
                    for phone in numbers or [p for p, _, _ in [*RESIDENTS, INCIDENT_HOUSE_RESIDENT]]]
        phone = self._start(Phone("operator", self.home, self.stack.pbx["OPENADS_PBX_TRUNK"], accounts, source=source))
        self.wait_trunk_reachable()
        return phone

    def wait_trunk_reachable(self, steady: float = 3.5) -> None:
        """Asterisk dials the trunk only while its qualify (OPTIONS every 60 s) finds it reachable:
        a contact found unreachable while no operator phone listened refuses calls ("Allocation
        failed") until the next qualify. An OPTIONS sent before this phone started still times out
        (qualify_timeout 3 s) after a fresh one made the contact Avail, so Avail must hold that long."""
        since: list[float] = []

        def steady_avail() -> bool:
            self.stack.cli("pjsip qualify trunk-operator")
            avail = any("trunk-operator/sip:" in line and "Avail" in line.split()
                        for line in self.stack.cli("pjsip show contacts").splitlines())
            if not avail:
                since.clear()
                return False
            if not since:
                since.append(time.monotonic())
            return time.monotonic() - since[0] >= steady

        wait_until("Asterisk sees the trunk reachable", steady_avail, 20, every=0.5)

    def hotline_uri(self) -> str:
        return f"sip:{self.stack.pbx['OPENADS_PBX_DID']}@{self.sip}"

    def stop(self) -> None:
        for phone in self.all:
            phone.stop()


@pytest.fixture
def phones(stack: Stack, tmp_path: Path) -> Iterator[Phones]:
    ph = Phones(stack, tmp_path / "phones")
    try:
        yield ph
    finally:
        ph.stop()
        # Nothing of this test may ring on in the next one.
        for ch in stack.channels():
            stack.ari("DELETE", f"/channels/{ch['id']}")
        wait_until("no channels left on Asterisk", lambda: not stack.channels(), 10)
        close_open_missed_calls(stack)


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`speech_wav("текст")`: Russian speech by espeak-ng, 8 kHz mono 16-bit, for a phone to play."""
    out = tmp_path_factory.mktemp("speech")

    def make(words: str) -> Path:
        raw, wav = out / f"{abs(hash(words))}-raw.wav", out / f"{abs(hash(words))}.wav"
        if not wav.exists():
            subprocess.run(["espeak-ng", "-v", "ru", "-s", "140", "-w", str(raw), words], check=True)
            subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(wav)], check=True)
        return wav

    return make


__all__ = ["DISPATCHERS", "Phones"]
