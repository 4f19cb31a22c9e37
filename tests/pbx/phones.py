"""Headless SIP phones for the real-PBX tests: Debian's baresip, one process per phone, driven
through its ctrl_tcp module (netstring-framed JSON commands and events).

A `Phone` dials, answers, rejects, hangs up, sends DTMF (RFC 4733), plays a WAV as its microphone
(`play`) and records what it hears (the sndfile module dumps each call's decoded audio)."""

from __future__ import annotations

import json
import queue
import shutil
import socket
import subprocess
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODULES = "/usr/lib/baresip/modules"


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Event:
    type: str
    data: dict[str, Any]
    at: float  # time.monotonic() when read

    @property
    def call_id(self) -> str:
        return str(self.data.get("id", ""))

    @property
    def peer(self) -> str:
        return str(self.data.get("peeruri", ""))


class PhoneError(AssertionError):
    pass


@dataclass
class Phone:
    """One baresip UA. `accounts`: AOR lines of baresip's accounts file, e.g.
    `<sip:201@127.0.0.1:25060>;auth_pass=x;regint=60;answermode=manual`."""

    name: str
    home: Path
    listen: str  # "127.0.0.2:25070": SIP address of this phone
    accounts: list[str]
    source: Path | None = None  # WAV played as the microphone (None: a quiet 425 Hz tone, tone_wav); when
    # it ends, baresip hangs up: see `with_silence`
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ctrl_port = free_port()
        self._queue: queue.Queue[Event] = queue.Queue()
        self._responses: queue.Queue[dict[str, Any]] = queue.Queue()
        self._token = 0
        self._lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None

    # --- life cycle -------------------------------------------------------------------------------
    def start(self) -> Phone:
        if shutil.which("baresip") is None:
            raise PhoneError("baresip not found: apt install baresip-core")
        conf = self.home / self.name
        if conf.exists():
            shutil.rmtree(conf)
        (conf / "sound").mkdir(parents=True)
        rtp = free_port(self.listen.split(":")[0], socket.SOCK_DGRAM)
        self.home.mkdir(parents=True, exist_ok=True)
        src = f"aufile,{padded(self.source, conf) if self.source else tone_wav(self.home / 'tone-425.wav')}"
        (conf / "config").write_text("\n".join([
            f"sip_listen\t\t{self.listen}",
            f"ctrl_tcp_listen\t\t127.0.0.1:{self.ctrl_port}",
            f"audio_source\t\t{src}",
            "audio_player\t\taubridge,sink",
            "audio_alert\t\taubridge,sink",
            f"rtp_ports\t\t{rtp & ~1}-{(rtp & ~1) + 40}",
            f"snd_path\t\t{conf / 'sound'}",
            f"module_path\t\t{MODULES}",
            "module\t\t\tg711.so", "module\t\t\taufile.so", "module\t\t\tausine.so",
            "module\t\t\taubridge.so", "module\t\t\tsndfile.so",
            "module_app\t\taccount.so", "module_app\t\tmenu.so", "module_app\t\tctrl_tcp.so",
            "sip_trans_def\t\tudp", "audio_channels\t\t1", "ausrc_srate\t\t8000", "auplay_srate\t\t8000",
            "jitter_buffer_delay\t1-5", "",
        ]))
        (conf / "accounts").write_text("\n".join(self.accounts) + "\n")
        (conf / "contacts").write_text("")
        self.log = open(conf / "baresip.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(["baresip", "-f", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise PhoneError(f"{self.name}: baresip did not start: {self.log_text()[-2000:]}") from None
                time.sleep(0.05)
        self.sock.settimeout(None)
        threading.Thread(target=self._read, name=f"phone-{self.name}", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.sock:
            self.sock.close()
        self.log.close()

    def log_text(self) -> str:
        return (self.home / self.name / "baresip.log").read_text(errors="replace")

    # --- ctrl_tcp ---------------------------------------------------------------------------------
    def _read(self) -> None:
        buf = b""
        assert self.sock is not None
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while True:
                colon = buf.find(b":")
                if colon < 0:
                    break
                size = int(buf[:colon])
                if len(buf) < colon + 1 + size + 1:
                    break
                body, buf = buf[colon + 1:colon + 1 + size], buf[colon + 2 + size:]
                msg = json.loads(body)
                if msg.get("event"):
                    ev = Event(str(msg.get("type")), msg, time.monotonic())
                    self.events.append(ev)
                    self._queue.put(ev)
                elif msg.get("response"):
                    self._responses.put(msg)

    def command(self, command: str, params: str = "") -> str:
        with self._lock:
            self._token += 1
            token = str(self._token)
            body = json.dumps({"command": command, "params": params, "token": token}).encode()
            assert self.sock is not None
            self.sock.sendall(b"%d:%s," % (len(body), body))
            deadline = time.monotonic() + 5
            while True:
                try:
                    msg = self._responses.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    raise PhoneError(f"{self.name}: no answer to {command} {params}") from None
                if msg.get("token") == token:
                    if not msg.get("ok", True):
                        raise PhoneError(f"{self.name}: {command} {params}: {msg.get('data')}")
                    return str(msg.get("data", ""))

    # --- events -----------------------------------------------------------------------------------
    def wait(self, type_: str, timeout: float = 10, where: Callable[[Event], bool] | None = None) -> Event:
        """The next event of `type_` (earlier events of other types are kept in `events`)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [e.type for e in self.events[-15:]]
                raise PhoneError(f"{self.name}: no {type_} in {timeout} s (last events: {seen})")
            try:
                ev = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if ev.type == type_ and (where is None or where(ev)):
                return ev

    def saw(self, type_: str) -> bool:
        return any(e.type == type_ for e in self.events)

    def drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    def wait_registered(self, timeout: float = 10) -> None:
        """Every account of this phone that registers (regint > 0) is registered."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.command("reginfo")
            if "OK" in info and "ERR" not in info:
                return
            if time.monotonic() > deadline:
                raise PhoneError(f"{self.name}: not registered: {info!r}")
            time.sleep(0.1)

    # --- actions ----------------------------------------------------------------------------------
    def dial(self, uri: str) -> None:
        self.command("dial", uri)

    def answer(self) -> None:
        self.command("accept")

    def hangup(self) -> None:
        """Hang up the current call; on a ringing incoming call this rejects it (486 Busy Here)."""
        self.command("hangup")

    def dtmf(self, digits: str, gap: float = 0.25) -> None:
        for d in digits:
            self.command("sndcode", d)
            time.sleep(gap)

    def play(self, wav: Path) -> None:
        """Switch the microphone to `wav` (from its start) during a call, then silence: baresip ends
        the call when its audio file runs out, so the file is played padded with silence."""
        self.command("ausrc", f"aufile,{padded(wav, self.home / self.name)}")

    def shown_caller(self) -> str:
        """The caller's name this phone displayed for its last incoming call (baresip prints it)."""
        import re

        shown = re.findall(r"Incoming call from: (.*?) ?sip:", self.log_text())
        return shown[-1].strip() if shown else ""

    def heard(self) -> list[Path]:
        """WAV files of what this phone received (sndfile's decoder dumps), newest last."""
        return sorted((self.home / self.name / "sound").glob("*dec*.wav"), key=lambda p: p.stat().st_mtime)


def with_silence(wav: Path, after: float = 60.0, before: float = 0.0) -> Path:
    """`wav` with silence before and after it (sox). A phone's source must outlast the call:
    baresip hangs up as soon as its aufile source ends ("menu: audio error (0,end of file)")."""
    out = wav.with_name(f"{wav.stem}-pad{before:g}-{after:g}.wav")
    if not out.exists():
        subprocess.run(["sox", str(wav), str(out), "pad", f"{before:g}", f"{after:g}"], check=True)
    return out


def tone_wav(path: Path, seconds: int = 300, hz: int = 425, amplitude: int = 2000) -> Path:
    """A mono 8 kHz 16-bit WAV of a sine tone (baresip's ausine only does 48 kHz)."""
    import array
    import math

    if not path.exists():
        period = [int(amplitude * math.sin(2 * math.pi * hz * i / 8000)) for i in range(8000)]
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(array.array("h", period).tobytes() * seconds)
    return path


def padded(wav: Path, into: Path, seconds: int = 600) -> Path:
    """`wav` followed by `seconds` of silence (same format), written into `into`."""
    out = into / f"padded-{wav.stem}.wav"
    if not out.exists():
        with wave.open(str(wav)) as src:
            params, frames = src.getparams(), src.readframes(src.getnframes())
        with wave.open(str(out), "wb") as dst:
            dst.setparams(params)
            dst.writeframes(frames + b"\0" * (params.sampwidth * params.nchannels * params.framerate * seconds))
    return out


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / float(w.getframerate())


def wav_rms(path: Path, start: float = 0.0, end: float | None = None) -> float:
    """Root mean square of 16-bit mono samples between `start` and `end` seconds."""
    import array
    import math

    with wave.open(str(path)) as w:
        rate = w.getframerate()
        w.setpos(min(w.getnframes(), int(start * rate)))
        count = (w.getnframes() if end is None else int(end * rate)) - int(start * rate)
        raw = w.readframes(max(0, count))
        width = w.getsampwidth()
    if width != 2 or not raw:
        return 0.0
    samples = array.array("h", raw)
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def wav_tone_share(path: Path, hz: float, start: float = 0.0, end: float | None = None) -> float:
    """The share of the signal's power at `hz` (Goertzel over 50 ms blocks, summed) between `start`
    and `end` seconds: near 1 for a pure tone there, near 0 for speech, noise or silence."""
    import array
    import math

    with wave.open(str(path)) as w:
        rate = w.getframerate()
        w.setpos(min(w.getnframes(), int(start * rate)))
        count = (w.getnframes() if end is None else int(end * rate)) - int(start * rate)
        samples = array.array("h", w.readframes(max(0, count)))
    block = rate // 20
    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    tone = total = 0.0
    for at in range(0, len(samples) - block + 1, block):
        s1 = s2 = 0.0
        energy = 0.0
        for x in samples[at:at + block]:
            s1, s2 = x + coeff * s1 - s2, s1
            energy += x * x
        # |X(hz)|^2 of the block; a sine of amplitude A gives (A*N/2)^2, its energy A^2*N/2.
        tone += (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2 / block
        total += energy
    return tone / total if total else 0.0
