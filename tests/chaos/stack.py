"""The processes of one OpenADS installation, run for real (`openads web`, `worker`, `ari`, and the
ARI emulator as its Asterisk) under a supervisor that restarts a process that died, one second
later, as the production systemd units do (`Restart=always`, `RestartSec=1`). Every exit is
logged: the test knows which ones it caused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[2]
RESTART_SEC = 1.0
T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T | None], timeout: float = 30.0, every: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@dataclass
class Exit:
    name: str
    code: int | None
    at: float
    expected: bool  # the test killed it


@dataclass
class Managed:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kill_pending: bool = False  # the test is killing it: its exit is expected


@dataclass
class Supervisor:
    logs: Path
    procs: dict[str, Managed] = field(default_factory=dict)
    exits: list[Exit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def add(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.procs[name] = Managed(name, argv, env, self.logs / f"{name}.log")

    def _spawn(self, m: Managed) -> None:
        with open(m.log, "ab") as log:
            log.write(f"\n===== start {m.starts + 1} at {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            m.proc = subprocess.Popen(m.argv, env=m.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        m.starts += 1

    def start(self) -> None:
        for m in self.procs.values():
            self._spawn(m)
        self.thread = threading.Thread(target=self._watch, name="chaos-supervisor", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopping.wait(0.1):
            for m in self.procs.values():
                with self.lock:
                    if m.proc is None or m.proc.poll() is None:
                        continue
                    self.exits.append(Exit(m.name, m.proc.returncode, time.time(), m.kill_pending))
                    m.kill_pending = False
                    m.proc = None
                time.sleep(RESTART_SEC)
                with self.lock:
                    if not self.stopping.is_set():
                        self._spawn(m)

    def kill(self, name: str) -> None:
        """kill -9 of the process and all its children (its session: gunicorn's workers, the arrivals child)."""
        m = self.procs[name]
        with self.lock:
            if m.proc is None or m.proc.poll() is not None:
                return
            m.kill_pending = True
            try:
                os.killpg(m.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def running(self, name: str) -> bool:
        m = self.procs[name]
        return m.proc is not None and m.proc.poll() is None

    def stop_all(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(5)
        for m in self.procs.values():
            if m.proc is not None and m.proc.poll() is None:
                try:
                    os.killpg(m.proc.pid, signal.SIGTERM)
                    m.proc.wait(15)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(m.proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def unexpected_exits(self) -> list[Exit]:
        return [e for e in self.exits if not e.expected]

    def log_text(self, name: str) -> str:
        path = self.procs[name].log
        return path.read_text(errors="replace") if path.exists() else ""


def openads(*args: str) -> list[str]:
    return [sys.executable, "-m", "openads.cli", *args]


def emulator_argv(port: int, recordings: Path, cdr_db: Path) -> list[str]:
    """The emulated Asterisk, writing its CDR table (master.db) as cdr_sqlite3_custom does."""
    return [sys.executable, "-c", "from openads.demo import run_ari_emulator; run_ari_emulator()",
            "--host", "127.0.0.1", "--port", str(port), "--user", "openads", "--recordings-dir", str(recordings),
            "--cdr-db", str(cdr_db)]


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
