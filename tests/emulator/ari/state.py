"""The emulated Asterisk: channels, bridges, playbacks, recordings and endpoints with real transitions.

Behaviour follows the traces recorded on a real Asterisk (shared/asterisk/traces, summarised in its
README): event order, ids, cause codes and error bodies. Everything here runs on one thread (the
emulator's event loop); `rest.py` and the scenario driver call in. Events go out through `sink`
(the WebSocket hub), timers through an injectable clock.

Simplifications (documented in ../ari/README.md): no media, no SIP; hidden Announcer/Recorder channels
are modelled only as bridge participants (never in GET /channels; the MOH announcer's id is listed in
the bridge's `channels` only in the ChannelLeftBridge of the last real channel, as on a real Asterisk); BRIDGEPEER/BRIDGEPVTCALLID/RTPAUDIOQOS* variables are emitted
once per change, not with Asterisk's exact repetitions.
"""

from __future__ import annotations

import heapq
import io
import itertools
import math
import struct
import time
import uuid
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .cdr import wall_clock

ASTERISK_ID = "02:fc:00:00:00:01"

# Q.850 cause texts as Asterisk's causes table prints them.
CAUSE_TXT = {
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    26: "Answered elsewhere",
    28: "Invalid number format (incomplete number)",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    58: "Bearer capability not available",
    127: "Interworking, unspecified",
}
# DELETE /channels/{id}?reason=... → cause (res/ari/resource_channels.c).
HANGUP_REASONS = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 18,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}
BRIDGE_TYPES = {"mixing", "holding", "dtmf_events", "proxy_media", "video_sfu", "video_single", "sdp_label"}
# The operator trunk's pjsip endpoint, as every dialplan/providers/*.conf template names it.
TRUNK_ENDPOINT = "trunk-operator"
# Tone indications of indications.conf (every country zone defines these); `tone:<name>[;tonezone=<zone>]`.
TONE_NAMES = {"dial", "busy", "ring", "congestion", "callwaiting", "dialrecall", "record", "info", "stutter"}
RECORD_STOP_DELAY = 0.02  # POST /recordings/live/{name}/stop → RecordingFinished (one 20 ms frame at most)
RECORDING_FORMATS = {"wav", "gsm", "ulaw", "alaw", "sln", "g722", "g729", "wav16", "ogg", "wav49"}
# Prompt lengths (seconds) seen in the traces; other sounds last DEFAULT_SOUND_SECONDS.
SOUND_SECONDS = {"hello-world": 1.0, "demo-congrats": 31.0, "vm-rec-name": 3.7, "beep": 0.3}
DEFAULT_SOUND_SECONDS = 1.0
BEEP_SECONDS = 0.6  # a recording with beep=true starts capturing audio after the beep
QOS_VARS = ("RTPAUDIOQOS", "RTPAUDIOQOSJITTER", "RTPAUDIOQOSLOSS", "RTPAUDIOQOSRTT", "RTPAUDIOQOSMES")
# dialplan/extensions.conf: a hotline call (`Stasis(openads,inbound,<DID>)`) the app did not take, or
# gave back (continueInDialplan), goes on at [openads-fallback]; its Dial() rings ${OPENADS_DISPATCHERS}
# for ${OPENADS_RING_TIMEOUT} seconds (dialplan/extensions.conf [globals]).
FALLBACK_CONTEXT = "openads-fallback"
FALLBACK_RING_TIMEOUT = 120.0
# Hangup causes → CDR disposition (main/cdr.c cdr_object_set_disposition; cdr.conf congestion=yes).
CDR_DISPOSITIONS = {17: "BUSY", 34: "CONGESTION", 3: "FAILED", 20: "FAILED"}


class AriError(Exception):
    """An ARI error answer: HTTP status + JSON body (`{"message": ...}`, or `{"error": ...}` for originate)."""

    def __init__(self, status: int, message: str, key: str = "message") -> None:
        super().__init__(message)
        self.status = status
        self.body = {key: message}


# ---- clocks ---------------------------------------------------------------------------------------
class Timer:
    def __init__(self, when: float, seq: int, callback: Callable[[], None]) -> None:
        self.when, self.seq, self.callback, self.cancelled = when, seq, callback, False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: Timer) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class FakeClock:
    """Time moves only when `advance()` is called; due timers run in order. Wall-clock epoch seconds."""

    def __init__(self, start: float = 1_795_638_141.0) -> None:
        self._now = start
        self._heap: list[Timer] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self._now + max(delay, 0.0), next(self._seq), callback)
        heapq.heappush(self._heap, timer)
        return timer

    def advance(self, seconds: float = 0.0) -> None:
        target = self._now + max(seconds, 0.0)
        while self._heap and self._heap[0].when <= target:
            timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self._now = max(self._now, timer.when)
            timer.callback()
        self._now = target

    def advance_to(self, when: float) -> None:
        self.advance(when - self._now)

    @property
    def pending(self) -> int:
        return sum(1 for t in self._heap if not t.cancelled)


class RealClock:
    """Wall clock; timers on the emulator's asyncio loop (bound by the server)."""

    def __init__(self) -> None:
        self.loop: Any = None

    def now(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        return self.loop.call_later(max(delay, 0.0), callback)


def iso(ts: float) -> str:
    d = datetime.fromtimestamp(ts, UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}+0000"


# ---- entities -------------------------------------------------------------------------------------
@dataclass
class Endpoint:
    technology: str
    resource: str
    callerid_name: str = ""
    callerid_number: str = ""
    language: str = "ru"
    context: str = "ceo-pjsip"
    online: bool = True
    auto_answer: bool = True
    trunk: bool = False  # dial strings `PJSIP/<number>@<resource>` reach remote numbers through it

    @property
    def name(self) -> str:
        return f"{self.technology}/{self.resource}"

    def snapshot(self, channel_ids: list[str]) -> dict[str, Any]:
        return {
            "technology": self.technology,
            "resource": self.resource,
            "state": "online" if self.online else "offline",
            "channel_ids": channel_ids,
        }


@dataclass
class Channel:
    id: str
    name: str
    endpoint: Endpoint | None
    state: str
    protocol_id: str
    caller: dict[str, str]
    connected: dict[str, str]
    dialplan: dict[str, Any]
    creationtime: float
    language: str
    app: str | None = None
    in_stasis: bool = False
    originated: bool = False  # the app subscribed to it at originate: it also gets ChannelDestroyed
    outgoing: bool = False
    dialstring: str = ""
    remote_number: str = ""  # for calls through a trunk
    args: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    bridge_id: str | None = None
    moh_class: str | None = None
    ring_timer: Any = None
    stasis_args: str = ""
    dialplan_peer: str | None = None  # the other leg of a non-Stasis dialplan call
    speech: list[str] = field(default_factory=list)
    dtmf_log: list[str] = field(default_factory=list)
    continued_to: dict[str, Any] | None = None
    hungup: bool = False
    hangup_cause: int | None = None
    # For its CDR (cdr.py): when it went Up and ended, its linkedid, the CDR(...) variables the
    # dialplan set, the last party it was connected with (dstchannel).
    answered_time: float | None = None
    ended_at: float | None = None
    linkedid: str = ""
    cdr_vars: dict[str, str] = field(default_factory=dict)
    cdr_peer: str = ""
    # [openads-fallback]: the caller's channel in it, the dispatchers' phones its Dial() rang, and on
    # such a leg the caller's channel id.
    fallback: bool = False
    fallback_legs: list[str] = field(default_factory=list)
    fallback_of: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": self.protocol_id,
            "caller": dict(self.caller),
            "connected": dict(self.connected),
            "accountcode": "",
            "dialplan": dict(self.dialplan),
            "creationtime": iso(self.creationtime),
            "language": self.language,
        }


@dataclass
class Bridge:
    id: str
    name: str
    types: set[str]
    creationtime: float
    channels: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)  # Announcer/Recorder helper channels
    technology: str = "simple_bridge"
    apps: set[str] = field(default_factory=set)
    moh_class: str | None = None
    moh_channel: str | None = None
    moh_channel_id: str | None = None
    # Announcer channels that `channels` lists. ARI hides internal channels from a bridge's
    # `channels` only while their snapshot exists (res_stasis.c channel_id_sanitizer), so the MOH
    # announcer shows up as it goes: in the ChannelLeftBridge of the last real channel (trace
    # inbound_caller_abandons_in_queue line 30: channels ["<the announcer's id>"]).
    announcers: list[str] = field(default_factory=list)

    @property
    def bridge_type(self) -> str:
        return "holding" if "holding" in self.types else "mixing"

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "technology": self.technology,
            "bridge_type": self.bridge_type,
            "bridge_class": "stasis",
            "creator": "Stasis",
            "name": self.name,
            "channels": list(self.channels) + list(self.announcers),
            "creationtime": iso(self.creationtime),
            "video_mode": "talker",
        }


@dataclass
class Playback:
    id: str
    media: list[str]
    target_uri: str
    language: str
    state: str = "queued"
    timer: Any = None
    hidden: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "media_uri": self.media[0],
            "target_uri": self.target_uri,
            "language": self.language,
            "state": self.state,
        }


@dataclass
class LiveRecording:
    name: str
    format: str
    target_uri: str
    started_at: float
    beep: bool = False
    max_duration: int = 0
    max_silence: int = 0
    terminate_on: str = "none"
    if_exists: str = "fail"
    state: str = "queued"
    timer: Any = None
    hidden: str | None = None
    paused_at: float | None = None
    paused_total: float = 0.0
    stopped_at: float | None = None  # stop requested: the audio ends here, RecordingFinished comes later
    transcript: list[str] = field(default_factory=list)
    voice: list[tuple[float, bytes]] = field(default_factory=list)  # (second of the audio, PCM) said

    def snapshot(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "format": self.format,
            "state": self.state,
            "target_uri": self.target_uri,
        }
        out.update(extra or {})
        return out


@dataclass
class StoredRecording:
    name: str
    format: str
    path: Path
    duration: float
    transcript: str = ""
    live: LiveRecording | None = None  # still being recorded: the file on disk is partial

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "format": self.format}


# ---- audio files ----------------------------------------------------------------------------------
def write_audio(
    path: Path, fmt: str, seconds: float, transcript: str = "", append: bool = False, unfinished: bool = False,
    voice: list[tuple[float, bytes]] | None = None,
) -> None:
    """A real small recording: 8 kHz mono 16-bit; WAV gets a RIFF header and, when the caller `say()`s
    something, an INFO/ICMT chunk with the transcript (ASR fakes read it with `read_transcript`).

    The audio is a 400 Hz tone; with `voice` ((second, PCM) pairs the phone said), silence with each
    PCM at its second, cut at the end of the recording as a recorder cuts a speaker off.

    `unfinished`: the file as it is on disk while Asterisk still records it: format_wav writes the
    header with RIFF and data sizes 0 when it opens the file and fills them in only in `wav_close`."""
    samples = int(8000 * max(seconds, 0.0))
    if voice:
        audio = bytearray(samples * 2)
        for at, said in voice:
            start = int(8000 * max(at, 0.0)) * 2
            part = said[: max(len(audio) - start, 0)]
            audio[start : start + len(part)] = part
        pcm = bytes(audio)
    else:
        period = [int(3000 * math.sin(2 * math.pi * i / 20)) for i in range(20)]  # 400 Hz tone, as the phones send
        one = struct.pack(f"<{len(period)}h", *period)
        pcm = (one * (samples // len(period) + 1))[: samples * 2]
    path.parent.mkdir(parents=True, exist_ok=True)
    if append and path.exists():
        old = path.read_bytes()
        old_pcm = old[44:] if fmt == "wav" and old[:4] == b"RIFF" else old
        old_pcm = _strip_info(old_pcm) if fmt == "wav" else old_pcm
        pcm = old_pcm + pcm
    if fmt != "wav":
        path.write_bytes(pcm)
        return
    info = b""
    if transcript:
        text = transcript.encode("utf-8") + b"\x00"
        if len(text) % 2:
            text += b"\x00"
        icmt = b"ICMT" + struct.pack("<I", len(text)) + text
        info = b"LIST" + struct.pack("<I", 4 + len(icmt)) + b"INFO" + icmt
    if unfinished:
        info = b""
    header = b"RIFF" + struct.pack("<I", 0 if unfinished else 36 + len(pcm) + len(info)) + b"WAVE"
    fmt_chunk = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    data = b"data" + struct.pack("<I", 0 if unfinished else len(pcm)) + pcm
    path.write_bytes(header + fmt_chunk + data + info)


def _strip_info(pcm: bytes) -> bytes:
    idx = pcm.rfind(b"LIST")
    return pcm[:idx] if idx >= 0 and pcm[idx + 8 : idx + 12] == b"INFO" else pcm


def voice_pcm(wav: bytes) -> bytes:
    """The samples of speech the phone says (`say(..., audio=)`): a WAV 8 kHz mono 16-bit PCM, as
    the phones' codec gives it to the recorder; anything else is refused (ValueError)."""
    try:
        with wave.open(io.BytesIO(wav)) as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getcomptype()) != (8000, 1, 2, "NONE"):
                raise ValueError("audio must be a WAV 8 kHz mono 16-bit PCM")
            return w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"audio is not a WAV file: {exc}") from exc


def read_transcript(path: Path) -> str:
    """The text attached by `say()` to a WAV the emulator wrote ("" when none)."""
    raw = Path(path).read_bytes()
    idx = raw.rfind(b"ICMT")
    if idx < 0:
        return ""
    (size,) = struct.unpack("<I", raw[idx + 4 : idx + 8])
    return raw[idx + 8 : idx + 8 + size].rstrip(b"\x00").decode("utf-8")


def audio_seconds(path: Path, fmt: str) -> float:
    size = path.stat().st_size
    return max(size - 44, 0) / 16000 if fmt == "wav" else size / 16000


# ---- the emulated Asterisk ------------------------------------------------------------------------
Sink = Callable[[str, dict[str, Any]], None]


class Asterisk:
    """State and transitions. `sink(app, event)` delivers an event to the app's WebSocket(s)."""

    def __init__(
        self,
        *,
        clock: Any = None,
        recordings_dir: Path | str = "recordings-emulator",
        sink: Sink | None = None,
        app_active: Callable[[str], bool] | None = None,
        dtmf_delay: float = 0.19,
        answer_delay: float = 0.0,
        record_stop_delay: float = RECORD_STOP_DELAY,
        cdr: Any = None,
        fallback_dial: list[str] | tuple[str, ...] = (),
        fallback_ring_timeout: float = FALLBACK_RING_TIMEOUT,
    ) -> None:
        self.clock = clock or FakeClock()
        # cdr.CdrWriter: every channel's CDR goes into master.db as cdr_sqlite3_custom writes it.
        self.cdr = cdr
        # ${OPENADS_DISPATCHERS} of the fallback's Dial() ("PJSIP/disp1", ...); none: it rings nobody.
        self.fallback_dial = [d if "/" in d else f"PJSIP/{d}" for d in fallback_dial]
        self.fallback_ring_timeout = fallback_ring_timeout
        self.recordings_dir = Path(recordings_dir)
        self.sink: Sink = sink or (lambda app, event: None)
        self.app_active: Callable[[str], bool] = app_active or (lambda app: True)
        self.dtmf_delay = dtmf_delay
        self.answer_delay = answer_delay
        self.record_stop_delay = record_stop_delay
        self.endpoints: dict[str, Endpoint] = {}
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.playbacks: dict[str, Playback] = {}
        self.live: dict[str, LiveRecording] = {}
        self.stored: dict[str, StoredRecording] = {}
        self.missing_sounds: set[str] = set()
        self.sound_seconds = dict(SOUND_SECONDS)
        self.remote_auto_answer: dict[str, bool] = {}  # numbers behind a trunk
        self.history: list[dict[str, Any]] = []  # every event emitted (delivered or not)
        self._seq = itertools.count(137)
        self._name_seq = itertools.count(0x4F)
        self._helper_seq = itertools.count(0x1D)
        self._queues: dict[str, list[str]] = {}  # playback queue per target_uri
        self.add_default_endpoints()

    # ---- set-up ----------------------------------------------------------------------------------
    def add_default_endpoints(self) -> None:
        """The lab phones of the traces plus a trunk for calls from/to residents."""
        self.add_endpoint("disp1", "Dispatcher 1", "201")
        self.add_endpoint("disp2", "Dispatcher 2", "202")
        self.add_endpoint("resident", "Resident", "79161234567", auto_answer=False)
        self.add_endpoint(TRUNK_ENDPOINT, "", "", trunk=True, context="from-trunk")

    def add_endpoint(
        self,
        resource: str,
        callerid_name: str = "",
        callerid_number: str = "",
        *,
        technology: str = "PJSIP",
        auto_answer: bool = True,
        online: bool = True,
        trunk: bool = False,
        language: str = "ru",
        context: str = "ceo-pjsip",
    ) -> Endpoint:
        ep = Endpoint(technology, resource, callerid_name, callerid_number, language, context, online, auto_answer, trunk)
        self.endpoints[ep.name] = ep
        return ep

    def endpoint(self, name: str) -> Endpoint:
        key = name if "/" in name else f"PJSIP/{name}"
        try:
            return self.endpoints[key]
        except KeyError:
            raise AriError(404, "Endpoint not found") from None

    # ---- helpers ---------------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock.now()

    def _new_channel_id(self) -> str:
        return f"{int(self.now())}.{next(self._seq)}"

    def _new_name(self, resource: str) -> str:
        return f"PJSIP/{resource}-{next(self._name_seq):08x}"

    def emit(self, app: str | None, etype: str, **fields: Any) -> None:
        if not app:
            return
        event: dict[str, Any] = {"type": etype, "timestamp": iso(self.now())}
        event.update(fields)
        event["asterisk_id"] = ASTERISK_ID
        event["application"] = app
        self.history.append(event)
        self.sink(app, event)

    def _chan_app(self, ch: Channel) -> str | None:
        """The app that gets this channel's events: while in Stasis, or (originated) until destroyed."""
        if ch.app and (ch.in_stasis or ch.originated):
            return ch.app
        return None

    def _emit_ch(self, ch: Channel, etype: str, **fields: Any) -> None:
        self.emit(self._chan_app(ch), etype, channel=ch.snapshot(), **fields)

    def _varset(self, ch: Channel, variable: str, value: str) -> None:
        ch.variables[variable] = value
        self._emit_ch(ch, "ChannelVarset", variable=variable, value=value)

    def channel(self, channel_id: str) -> Channel:
        ch = self.channels.get(channel_id)
        if ch is None or ch.hungup:
            raise AriError(404, "Channel not found")
        return ch

    def stasis_channel(self, channel_id: str) -> Channel:
        ch = self.channel(channel_id)
        if not ch.in_stasis:
            raise AriError(409, "Channel not in Stasis application")
        return ch

    def bridge(self, bridge_id: str) -> Bridge:
        try:
            return self.bridges[bridge_id]
        except KeyError:
            raise AriError(404, "Bridge not found") from None

    def find_channel(self, target: Any) -> Channel:
        """A channel by object, id, name, or endpoint ('disp1', 'PJSIP/disp1': its newest live channel)."""
        if isinstance(target, Channel):
            return target
        if isinstance(target, dict) and "id" in target:
            target = target["id"]
        target = str(target)
        if target in self.channels and not self.channels[target].hungup:
            return self.channels[target]
        live = [c for c in self.channels.values() if not c.hungup]
        for ch in reversed(live):
            if ch.name == target:
                return ch
        key = target if "/" in target else f"PJSIP/{target}"
        for ch in reversed(live):
            if ch.endpoint is not None and (ch.endpoint.name == key or ch.remote_number == target):
                return ch
        raise LookupError(f"no live channel for {target!r}")

    def application(self, app: str) -> dict[str, Any]:
        return {
            "name": app,
            "channel_ids": [c.id for c in self.channels.values() if not c.hungup and self._chan_app(c) == app],
            "bridge_ids": [b.id for b in self.bridges.values() if app in b.apps],
            "endpoint_ids": [],
            "device_names": [],
            "events_allowed": [],
            "events_disallowed": [],
        }

    def endpoint_snapshot(self, ep: Endpoint) -> dict[str, Any]:
        ids = [c.id for c in self.channels.values() if not c.hungup and c.endpoint is ep]
        return ep.snapshot(ids)

    # ---- inbound calls ---------------------------------------------------------------------------
    def incoming_call(
        self,
        did: str,
        caller: str,
        *,
        app: str = "openads",
        args: tuple[str, ...] | list[str] | None = None,
        endpoint: str = TRUNK_ENDPOINT,
        caller_name: str | None = None,
        exten: str | None = None,
    ) -> Channel:
        """A call entering `Stasis(app,args...)` from the dialplan (state Ring, no ChannelCreated before
        StasisStart). When the app has no WebSocket, Stasis() fails as in Asterisk: the channel stays in
        the dialplan (`STASISSTATUS=FAILED`, the fallback of issue item 8) and no event is sent."""
        ep = self.endpoint(endpoint)
        argv = list(args) if args is not None else ["inbound", did]
        name = caller_name if caller_name is not None else ("" if ep.trunk else ep.callerid_name)
        ch = Channel(
            id=self._new_channel_id(),
            name=self._new_name(ep.resource),
            endpoint=ep,
            state="Ring",
            protocol_id=uuid.uuid4().hex[:16],
            caller={"name": name, "number": caller},
            connected={"name": "", "number": ""},
            dialplan={
                "context": ep.context,
                "exten": exten if exten is not None else did,
                "priority": 2,
                "app_name": "Stasis",
                "app_data": ",".join([app, *argv]),
            },
            creationtime=self.now(),
            language=ep.language,
            app=app,
            args=argv,
            remote_number=caller if ep.trunk else "",
        )
        ch.linkedid = ch.id
        if self._hotline_call(ch):  # [openads-from-trunk]: Set(__OPENADS_DID=...), Set(CDR(openads_did)=...)
            ch.variables["OPENADS_DID"] = ch.cdr_vars["openads_did"] = argv[1] if len(argv) > 1 else ch.dialplan["exten"]
        self.channels[ch.id] = ch
        if self.app_active(app):
            ch.in_stasis = True
            self._emit_ch(ch, "StasisStart", args=argv)
        else:
            ch.variables["STASISSTATUS"] = "FAILED"
            ch.dialplan = {**ch.dialplan, "priority": 3, "app_name": "Dial", "app_data": ""}
            if self._hotline_call(ch):
                self._enter_fallback(ch)
        return ch

    @staticmethod
    def _hotline_call(ch: Channel) -> bool:
        """A resident's call to a hotline: [openads-from-trunk] → `Stasis(openads,inbound,<DID>)`."""
        return not ch.outgoing and ch.args[:1] == ["inbound"]

    # ---- [openads-fallback] ----------------------------------------------------------------------
    def _enter_fallback(self, ch: Channel) -> None:
        """dialplan/extensions.conf [openads-fallback]: CDR(openads_fallback)=1, Answer(), the greeting
        (not modelled: no time), then Dial() of every phone of `fallback_dial` for
        `fallback_ring_timeout` seconds. No lookup_caller (CDR(openads_org_id) stays empty) and no
        MixMonitor file (openads_recording, userfield stay empty)."""
        ch.fallback = True
        ch.variables["OPENADS_FALLBACK"] = "1"
        ch.cdr_vars["openads_fallback"] = "1"
        if ch.state != "Up":
            ch.state = "Up"
        if ch.answered_time is None:
            ch.answered_time = self.now()
        ch.dialplan = {"context": FALLBACK_CONTEXT, "exten": "s", "priority": 16, "app_name": "Dial",
                       "app_data": f"{'&'.join(self.fallback_dial)},{int(self.fallback_ring_timeout)},"
                                   "m(openads)U(openads-fallback-answered)"}
        for name in self.fallback_dial:
            ep = self.endpoints.get(name)
            if ep is None or not ep.online:
                continue  # CHANUNAVAIL for that phone; the others ring
            leg = Channel(
                id=self._new_channel_id(), name=self._new_name(ep.resource), endpoint=ep, state="Ringing",
                protocol_id=str(uuid.uuid4()), caller=dict(ch.caller), connected={"name": "", "number": ""},
                dialplan={"context": ep.context, "exten": "s", "priority": 1, "app_name": "AppDial",
                          "app_data": "(Outgoing Line)"},
                creationtime=self.now(), language=ep.language, outgoing=True, dialstring=ep.resource,
                linkedid=ch.id, fallback_of=ch.id,
            )
            self.channels[leg.id] = leg
            ch.fallback_legs.append(leg.id)
            if ep.auto_answer:
                self.clock.call_later(self.answer_delay, lambda leg=leg: self.phone_answer(leg))
        if ch.fallback_legs and self.fallback_ring_timeout > 0:
            ch.ring_timer = self.clock.call_later(self.fallback_ring_timeout, lambda: self._fallback_no_answer(ch))

    def _fallback_answered(self, leg: Channel) -> None:
        """A dispatcher's phone picked up the fallback's Dial(): [openads-fallback-answered] sets
        CDR(openads_answered_at) on the caller; the other phones stop ringing; the two talk."""
        caller = self.channels.get(leg.fallback_of or "")
        if caller is None or caller.hungup or caller.dialplan_peer:
            self._end_leg(leg, 26)
            return
        if caller.ring_timer is not None:
            caller.ring_timer.cancel()
        caller.dialplan_peer, leg.dialplan_peer = leg.id, caller.id
        caller.cdr_peer, leg.cdr_peer = leg.name, caller.name
        caller.cdr_vars["openads_answered_at"] = str(int(self.now()))
        caller.variables.update(DIALEDPEERNAME=leg.name, DIALSTATUS="ANSWER")
        if leg.endpoint is not None:
            caller.connected = {"name": leg.endpoint.callerid_name, "number": leg.endpoint.callerid_number}
        leg.connected = dict(caller.caller)
        for other_id in caller.fallback_legs:
            if other_id != leg.id:
                self._end_leg(self.channels[other_id], 26)  # answered elsewhere

    def _fallback_no_answer(self, caller: Channel) -> None:
        """The Dial() timed out: the caller is offered the voice mailbox."""
        if caller.hungup or caller.dialplan_peer:
            return
        self._dial_over(caller, "NOANSWER")
        for leg_id in caller.fallback_legs:
            self._end_leg(self.channels[leg_id], 19)

    def _dial_over(self, caller: Channel, status: str) -> None:
        """Nobody answered the fallback's Dial() (timed out, every phone busy or declining): DIALSTATUS,
        and the caller goes on to VoiceMail() (no message is modelled: VM_MESSAGEFILE stays empty)."""
        if caller.ring_timer is not None:
            caller.ring_timer.cancel()
        caller.variables["DIALSTATUS"] = status
        caller.dialplan = {**caller.dialplan, "priority": 19, "app_name": "VoiceMail", "app_data": "100@openads,s"}

    def _end_leg(self, leg: Channel, cause: int) -> None:
        if leg.hungup:
            return
        if leg.ring_timer is not None:
            leg.ring_timer.cancel()
        leg.hungup = True
        leg.hangup_cause = cause
        self._ended(leg)

    def _fallback_end(self, caller: Channel) -> None:
        """The caller's channel is gone: its ringing legs stop, and the hangup handler
        [openads-fallback-end] puts the outcome into the caller's last CDR record."""
        for leg_id in caller.fallback_legs:
            self._end_leg(self.channels[leg_id], 16)
        status = caller.variables.setdefault("DIALSTATUS", "CANCEL" if caller.fallback_legs or not
                                             self.fallback_dial else "CHANUNAVAIL")
        caller.cdr_vars.update(
            openads_dialstatus=status, openads_answered_by=caller.variables.get("DIALEDPEERNAME", ""),
            openads_vmstatus="", openads_vmfile="", openads_recording="",
            openads_did=caller.cdr_vars.get("openads_did", ""),
        )

    # ---- CDR -------------------------------------------------------------------------------------
    def _ended(self, ch: Channel) -> None:
        """A channel is gone (destroyed, or hung up outside Stasis): its CDR records are written."""
        if ch.ended_at is not None:
            return
        ch.ended_at = self.now()
        caller = self.channels.get(ch.fallback_of or "")
        if (caller is not None and not caller.hungup and not caller.dialplan_peer and "DIALSTATUS" not in caller.variables
                and all(self.channels[i].hungup for i in caller.fallback_legs)):
            busy = any(self.channels[i].hangup_cause == 17 for i in caller.fallback_legs)
            self._dial_over(caller, "BUSY" if busy else "NOANSWER")
        if ch.fallback:
            if ch.ring_timer is not None:
                ch.ring_timer.cancel()
            self._fallback_end(ch)
        if self.cdr is not None and ch.fallback_of is None:  # a fallback leg is in its caller's records
            for record in self._cdr_records(ch):
                self.cdr.write(record)

    def _cdr_record(self, ch: Channel, *, start: float, answer: float | None, end: float, disposition: str,
                    peer: str = "", **extra: str) -> dict[str, str]:
        return {
            "uniqueid": ch.id, "linkedid": ch.linkedid or ch.id, "src": ch.caller.get("number", ""),
            "dst": str(ch.dialplan.get("exten", "")), "dcontext": str(ch.dialplan.get("context", "")),
            "channel": ch.name, "dstchannel": peer, "lastapp": str(ch.dialplan.get("app_name", "")),
            "lastdata": str(ch.dialplan.get("app_data", "")), "start": wall_clock(start),
            "answer": wall_clock(answer), "end": wall_clock(end), "duration": str(int(end - start)),
            "billsec": str(int(end - answer)) if answer is not None else "0", "disposition": disposition,
            **ch.cdr_vars, **extra,
        }

    def _cdr_records(self, ch: Channel) -> list[dict[str, str]]:
        """What Asterisk writes when the channel is gone: one record (its uniqueid, answered or the
        disposition its hangup cause gives); a caller in [openads-fallback] also has one record per
        phone its Dial() rang (dstchannel: that phone, disposition: that phone's), then its last
        record with what the hangup handler set, as tests/ari_app/test_cdr_source.py shows them."""
        assert ch.ended_at is not None
        end, answer = ch.ended_at, ch.answered_time
        if not ch.fallback:
            disposition = "ANSWERED" if answer is not None else CDR_DISPOSITIONS.get(ch.hangup_cause or 16, "NO ANSWER")
            return [self._cdr_record(ch, start=ch.creationtime, answer=answer, end=end, disposition=disposition,
                                     peer=ch.cdr_peer)]
        handler = {k: ch.cdr_vars.pop(k) for k in ("openads_dialstatus", "openads_answered_by", "openads_vmstatus",
                                                   "openads_vmfile", "openads_recording")}
        records = []
        for leg in (self.channels[i] for i in ch.fallback_legs):
            leg_end = leg.ended_at if leg.ended_at is not None else end
            answered = leg.answered_time is not None and ch.dialplan_peer == leg.id
            disposition = "ANSWERED" if answered else CDR_DISPOSITIONS.get(leg.hangup_cause or 16, "NO ANSWER")
            records.append(self._cdr_record(ch, start=leg.creationtime, answer=answer, end=leg_end,
                                            disposition=disposition, peer=leg.name))
        legs_end = [leg.ended_at for leg in (self.channels[i] for i in ch.fallback_legs) if leg.ended_at is not None]
        dial_end = min(max(legs_end, default=answer if answer is not None else ch.creationtime), end)
        records.append(self._cdr_record(ch, start=dial_end, answer=answer if answer is None else max(answer, dial_end),
                                        end=end, disposition="ANSWERED", **handler))
        ch.cdr_vars.update(handler)
        return records

    def dialplan_call(self, from_endpoint: str, to_endpoint: str) -> tuple[Channel, Channel]:
        """A plain dialplan `Dial()` between two phones (no Stasis): the app gets no events for it."""
        a_ep, b_ep = self.endpoint(from_endpoint), self.endpoint(to_endpoint)
        a = Channel(
            self._new_channel_id(), self._new_name(a_ep.resource), a_ep, "Up", uuid.uuid4().hex[:16],
            {"name": a_ep.callerid_name, "number": a_ep.callerid_number},
            {"name": b_ep.callerid_name, "number": b_ep.callerid_number},
            {"context": a_ep.context, "exten": b_ep.resource, "priority": 1, "app_name": "Dial",
             "app_data": f"{b_ep.name},30"},
            self.now(), a_ep.language,
        )
        b = Channel(
            self._new_channel_id(), self._new_name(b_ep.resource), b_ep, "Up", str(uuid.uuid4()),
            {"name": b_ep.callerid_name, "number": b_ep.callerid_number},
            {"name": a_ep.callerid_name, "number": a_ep.callerid_number},
            {"context": b_ep.context, "exten": "", "priority": 1, "app_name": "AppDial", "app_data": "(Outgoing Line)"},
            self.now(), b_ep.language, outgoing=True,
        )
        a.dialplan_peer, b.dialplan_peer = b.id, a.id
        a.cdr_peer, b.linkedid = b.name, a.id
        a.answered_time = b.answered_time = self.now()
        self.channels[a.id] = a
        self.channels[b.id] = b
        return a, b

    # ---- originate -------------------------------------------------------------------------------
    def originate(
        self,
        endpoint: str | None,
        *,
        app: str | None = None,
        app_args: str = "",
        caller_id: str | None = None,
        timeout: int = 30,
        variables: dict[str, str] | None = None,
        channel_id: str | None = None,
        extension: str | None = None,
        context: str | None = None,
    ) -> Channel:
        if not endpoint:
            raise AriError(400, "Endpoint must be specified")
        if channel_id and channel_id in self.channels and not self.channels[channel_id].hungup:
            raise AriError(409, "Channel with given unique ID already exists")
        tech, _, resource = endpoint.partition("/")
        number, _, via = resource.partition("@")
        ep = self.endpoints.get(f"{tech}/{via}" if via else f"{tech}/{resource}")
        # Unregistered or unknown endpoint, unknown technology: the channel cannot be allocated.
        if ep is None or not ep.online or (via and not ep.trunk):
            raise AriError(500, "Allocation failed", key="error")
        cid_name, cid_number = ep.callerid_name, ep.callerid_number
        if caller_id is not None:
            parsed_name, cid_number = parse_caller_id(caller_id)
            cid_name = parsed_name or cid_name
        ch = Channel(
            id=channel_id or self._new_channel_id(),
            name=self._new_name(ep.resource),
            endpoint=ep,
            state="Down",
            protocol_id=str(uuid.uuid4()),
            caller={"name": cid_name, "number": cid_number},
            connected={"name": "", "number": cid_number},
            dialplan={"context": ep.context, "exten": "s", "priority": 1, "app_name": "AppDial2",
                      "app_data": "(Outgoing Line)"},
            creationtime=self.now(),
            language=ep.language,
            app=app,
            originated=app is not None,
            outgoing=True,
            dialstring=resource,
            remote_number=number if via else "",
            stasis_args=app_args,
        )
        # Variables from the originate body are set silently (no ChannelVarset).
        ch.variables.update(variables or {})
        if app is None:
            ch.continued_to = {"context": context or ep.context, "extension": extension or "s", "priority": 1}
        self.channels[ch.id] = ch
        self.clock.call_later(0, lambda: self._start_ringing(ch, timeout))
        return ch

    def _dial_event(self, ch: Channel, status: str) -> None:
        self.emit(self._chan_app(ch), "Dial", dialstatus=status, forward="", dialstring=ch.dialstring, peer=ch.snapshot())

    def _start_ringing(self, ch: Channel, timeout: int) -> None:
        if ch.hungup:
            return
        self._dial_event(ch, "")
        ch.state = "Ringing"
        self._emit_ch(ch, "ChannelStateChange")
        self._dial_event(ch, "RINGING")
        if timeout and timeout > 0:
            ch.ring_timer = self.clock.call_later(timeout, lambda: self._no_answer(ch))
        if self._auto_answers(ch):
            self.clock.call_later(self.answer_delay, lambda: self.phone_answer(ch))

    def _auto_answers(self, ch: Channel) -> bool:
        if ch.endpoint is None:
            return False
        if ch.endpoint.trunk:
            return self.remote_auto_answer.get(ch.remote_number, False)
        return ch.endpoint.auto_answer

    def _no_answer(self, ch: Channel) -> None:
        """Originate timeout: only ChannelDestroyed 19 / tech_cause 480, no HangupRequest, no final Dial."""
        if ch.hungup or ch.state == "Up":
            return
        self._destroy(ch, 19, tech_cause=480)

    def phone_answer(self, target: Any) -> Channel:
        """The called phone picks up a ringing outgoing channel."""
        ch = self.find_channel(target)
        if ch.hungup or ch.state == "Up":
            return ch
        if not ch.outgoing:
            raise ValueError(f"{ch.name} is not a ringing outgoing call")
        if ch.ring_timer is not None:
            ch.ring_timer.cancel()
        ch.state = "Up"
        ch.answered_time = self.now()
        self._emit_ch(ch, "ChannelStateChange")
        self._dial_event(ch, "ANSWER")
        if ch.fallback_of is not None:
            self._fallback_answered(ch)
        if ch.app is not None:
            self._varset(ch, "STASISSTATUS", "")
            ch.args = ch.stasis_args.split(",") if ch.stasis_args else []
            ch.dialplan = {**ch.dialplan, "app_name": "Stasis", "app_data": ",".join([ch.app, *ch.args])}
            if self.app_active(ch.app):
                ch.in_stasis = True
                self._emit_ch(ch, "StasisStart", args=ch.args)
        return ch

    def phone_reject(self, target: Any, cause: int = 17) -> None:
        """The called phone declines a ringing call (486 Busy Here by default)."""
        ch = self.find_channel(target)
        if ch.state == "Up":
            raise ValueError("call already answered")
        self._dial_event(ch, "BUSY" if cause == 17 else "CHANUNAVAIL")
        self._destroy(ch, cause)

    # ---- channel operations ----------------------------------------------------------------------
    def answer(self, channel_id: str) -> None:
        ch = self.stasis_channel(channel_id)
        if ch.state != "Up":
            ch.state = "Up"
            ch.answered_time = self.now()
            self._emit_ch(ch, "ChannelStateChange")

    def set_variable(self, channel_id: str, variable: str | None, value: str) -> None:
        if not variable:
            raise AriError(400, "Variable name is required")
        # Asterisk looks the channel's Stasis control up (find_control): 409 outside Stasis, unlike
        # GET, which reads the channel itself and works on any channel.
        ch = self.stasis_channel(channel_id)
        self._varset(ch, variable, value)

    def get_variable(self, channel_id: str, variable: str | None) -> str:
        if not variable:
            raise AriError(400, "Variable name is required")
        ch = self.channel(channel_id)
        builtins = {
            "CALLERID(num)": ch.caller["number"],
            "CALLERID(name)": ch.caller["name"],
            "CHANNEL(name)": ch.name,
            "CHANNEL(language)": ch.language,
            "UNIQUEID": ch.id,
        }
        if variable in builtins:
            return builtins[variable]
        if variable.startswith("CDR(") and variable.endswith(")"):
            return ch.cdr_vars.get(variable[4:-1], "")  # func_cdr: an unset variable reads as ''
        if variable not in ch.variables:
            raise AriError(404, "Provided variable was not found")
        return ch.variables[variable]

    def continue_in_dialplan(self, channel_id: str, context: str | None, extension: str | None, priority: int | None) -> None:
        ch = self.stasis_channel(channel_id)
        self._leave_bridge(ch, alive=True)
        ch.continued_to = {
            "context": context or ch.dialplan["context"],
            "extension": extension or ch.dialplan["exten"],
            "priority": priority or int(ch.dialplan["priority"]) + 1,
        }
        self._stop_channel_media(ch, "done")
        self._emit_ch(ch, "StasisEnd")
        ch.in_stasis = False
        ch.dialplan = {"context": ch.continued_to["context"], "exten": ch.continued_to["extension"],
                       "priority": ch.continued_to["priority"], "app_name": "", "app_data": ""}
        # The priority after Stasis() in [openads-from-trunk] is Goto(openads-fallback,s,1).
        own = ch.endpoint.context if ch.endpoint is not None else ""
        if self._hotline_call(ch) and ch.continued_to["context"] in (own, FALLBACK_CONTEXT):
            self._enter_fallback(ch)

    def channel_moh(self, channel_id: str, moh_class: str | None) -> None:
        ch = self.stasis_channel(channel_id)
        ch.moh_class = moh_class or "default"

    def channel_stop_moh(self, channel_id: str) -> None:
        self.stasis_channel(channel_id).moh_class = None

    def ring(self, channel_id: str) -> None:
        # Indicating ringing to an inbound caller does not change the channel state in the traces' model.
        self.stasis_channel(channel_id)

    def send_dtmf(self, channel_id: str, dtmf: str | None) -> None:
        if not dtmf:
            raise AriError(400, "DTMF is required")
        ch = self.stasis_channel(channel_id)
        ch.dtmf_log.append(dtmf)

    def hangup(self, channel_id: str, reason: str | None = None, reason_code: str | None = None) -> None:
        """DELETE /channels/{id}: ChannelHangupRequest {cause 32, soft}, then as a phone hangup."""
        ch = self.channel(channel_id)
        cause = int(reason_code) if reason_code else HANGUP_REASONS.get(reason or "normal", 16)
        if not ch.in_stasis and not ch.originated:
            self._silent_hangup(ch)
            return
        self._hangup(ch, request={"cause": 32, "soft": True}, destroy_cause=cause)

    def phone_hangup(self, target: Any) -> Channel:
        """The phone hangs up (BYE). A ringing outgoing leg declines instead."""
        ch = self.find_channel(target)
        if ch.outgoing and ch.state != "Up":
            self.phone_reject(ch)
            return ch
        if not ch.in_stasis and not ch.originated:
            self._silent_hangup(ch)
            return ch
        self._hangup(ch, request={}, destroy_cause=16)
        return ch

    def _silent_hangup(self, ch: Channel) -> None:
        ch.hungup = True
        if ch.ring_timer is not None:
            ch.ring_timer.cancel()
        peer = self.channels.get(ch.dialplan_peer or "")
        if peer is not None:
            peer.hungup = True
        self._leave_bridge(ch, alive=False)
        for gone in (ch, peer):
            if gone is not None:
                self._ended(gone)

    def _hangup(self, ch: Channel, *, request: dict[str, Any], destroy_cause: int) -> None:
        if ch.ring_timer is not None:
            ch.ring_timer.cancel()
        ringing = ch.outgoing and ch.state != "Up"
        if ch.state == "Up":
            for name in QOS_VARS:
                self._varset(ch, name, _qos_value(name))
        self._emit_ch(ch, "ChannelHangupRequest", **request)
        if ringing:
            self._dial_event(ch, "NOANSWER")
            self._destroy(ch, destroy_cause)
            return
        self._stop_channel_media(ch, "failed")
        self._leave_bridge(ch, alive=False)
        if ch.in_stasis:
            self._emit_ch(ch, "StasisEnd")
            ch.in_stasis = False
        if ch.originated:
            ch.dialplan = {**ch.dialplan, "app_name": "AppDial2", "app_data": "(Outgoing Line)"}
            self._varset(ch, "STASISSTATUS", "SUCCESS")
        self._destroy(ch, destroy_cause)

    def _destroy(self, ch: Channel, cause: int, tech_cause: int | None = None) -> None:
        extra: dict[str, Any] = {"cause": cause, "cause_txt": CAUSE_TXT.get(cause, "Unknown")}
        if tech_cause is not None:
            extra["tech_cause"] = tech_cause
        if ch.originated:  # inbound channels: the app was unsubscribed at StasisEnd
            self._emit_ch(ch, "ChannelDestroyed", **extra)
        ch.hangup_cause = cause
        ch.hungup = True
        ch.in_stasis = False
        self._ended(ch)

    def _stop_channel_media(self, ch: Channel, playback_state: str) -> None:
        uri = f"channel:{ch.id}"
        for pb in [p for p in self.playbacks.values() if p.target_uri == uri]:
            self._finish_playback(pb, playback_state)
        self._queues.pop(uri, None)
        for rec in [r for r in self.live.values() if r.target_uri == uri]:
            self._finish_recording(rec, "done")

    # ---- DTMF and speech from the phones ---------------------------------------------------------
    def press(self, target: Any, digits: str, interval: float = 0.3) -> Channel:
        """The phone sends RFC 4733 digits; each is reported ~0.2 s later, when it ends."""
        ch = self.find_channel(target)
        for i, digit in enumerate(digits):
            self.clock.call_later(self.dtmf_delay + i * interval, lambda d=digit: self._dtmf(ch, d))
        return ch

    def _dtmf(self, ch: Channel, digit: str) -> None:
        if ch.hungup or not ch.in_stasis:
            return
        if ch.bridge_id and self.bridges[ch.bridge_id].technology == "native_rtp":
            return  # native RTP bridge: the digit goes straight to the other phone, no event
        self._emit_ch(ch, "ChannelDtmfReceived", digit=digit, duration_ms=180)
        for rec in [r for r in self.live.values() if r.target_uri == f"channel:{ch.id}"]:
            if rec.terminate_on == "any" or (rec.terminate_on not in ("none", "") and digit in rec.terminate_on):
                self._finish_recording(rec, "done")

    def say(self, target: Any, text: str, audio: bytes | None = None) -> Channel:
        """Speech from the phone: attached to any recording of the channel (or of its bridge). The text
        goes into the recording's transcript; `audio` (a WAV 8 kHz mono 16-bit, e.g. the words
        synthesised) into its audio from this moment on."""
        ch = self.find_channel(target)
        pcm = voice_pcm(audio) if audio else None
        ch.speech.append(text)
        for rec in self._hearing(ch):
            rec.transcript.append(text)
            if pcm:
                rec.voice.append((self._recorded_seconds(rec), pcm))
        return ch

    def listening(self, target: Any) -> list[str]:
        """Names of the live recordings that would hear the phone of `target` speak now."""
        return [rec.name for rec in self._hearing(self.find_channel(target))]

    def _hearing(self, ch: Channel) -> list[LiveRecording]:
        targets = {f"channel:{ch.id}"} | ({f"bridge:{ch.bridge_id}"} if ch.bridge_id else set())
        return [rec for rec in self.live.values()
                if rec.target_uri in targets and rec.stopped_at is None]

    # ---- bridges ---------------------------------------------------------------------------------
    def create_bridge(self, type_: str | None, name: str | None, bridge_id: str | None) -> Bridge:
        # As stasis_app_bridge_create: unknown words are ignored; "mixing" and "holding" give the
        # capabilities ("video_sfu" forces mixing); none of them, or holding with mixing, fails with 500.
        types = {t.strip() for t in (type_ or "mixing").split(",") if t.strip()} & BRIDGE_TYPES
        if "video_sfu" in types:
            types = (types - {"holding"}) | {"mixing"}
        if bridge_id and bridge_id in self.bridges:
            raise AriError(409, f"Bridge with id '{bridge_id}' already exists")
        if not types & {"mixing", "holding"} or {"mixing", "holding"} <= types:
            raise AriError(500, f"Unable to create bridge. Possible duplicate bridge id '{bridge_id or '(null)'}'")
        b = Bridge(bridge_id or str(uuid.uuid4()), name or "", types, self.now())
        b.technology = self._technology(b)
        self.bridges[b.id] = b
        return b

    def _technology(self, b: Bridge) -> str:
        if "holding" in b.types:
            return "holding_bridge"
        total = len(b.channels) + len(b.hidden)
        if len(b.channels) == 2 and not b.hidden and "dtmf_events" not in b.types and "proxy_media" not in b.types:
            return "native_rtp"
        return "softmix" if total >= 3 else "simple_bridge"

    def _retech(self, b: Bridge) -> None:
        # The technology changes silently, after the membership events (their snapshots show the old one).
        b.technology = self._technology(b)

    def add_channels(self, bridge_id: str, channel_ids: list[str]) -> None:
        b = self.bridge(bridge_id)
        chans = []
        for cid in channel_ids:
            ch = self.channels.get(cid)
            if ch is None or ch.hungup:
                raise AriError(400, "Channel not found")
            if not ch.in_stasis:
                raise AriError(422, "Channel not in Stasis application")
            chans.append(ch)
        for ch in chans:
            # A channel recording adds a rule to the channel's control until the recorder lets go of it
            # (stasis_app_control_record ... record_file): the stop is asynchronous, so the rule
            # outlives the 204 of POST /recordings/live/{name}/stop until RecordingFinished.
            if any(r.target_uri == f"channel:{ch.id}" for r in self.live.values()):
                raise AriError(409, f"Channel {ch.id} currently recording")
        for ch in chans:
            if ch.bridge_id == b.id:
                continue
            if ch.bridge_id:
                self._leave_bridge(ch, alive=True)
            self._enter_bridge(ch, b)

    def _peer_names(self, b: Bridge, ch: Channel) -> list[str]:
        return [self.channels[c].name for c in b.channels if c != ch.id] + list(b.hidden)

    def _update_bridgepeers(self, b: Bridge, only: list[Channel] | None = None) -> None:
        if b.bridge_type != "mixing":
            return
        for cid in list(b.channels):
            ch = self.channels[cid]
            if only is not None and ch not in only:
                continue
            peers = self._peer_names(b, ch)
            if not peers:
                continue
            value = ",".join(peers)
            if ch.variables.get("BRIDGEPEER") != value:
                self._varset(ch, "BRIDGEPEER", value)
            others = [self.channels[c] for c in b.channels if c != cid]
            pvt = others[0].protocol_id if len(others) == 1 and not b.hidden else ""
            if ch.variables.get("BRIDGEPVTCALLID", None) != pvt:
                self._varset(ch, "BRIDGEPVTCALLID", pvt)

    def _enter_bridge(self, ch: Channel, b: Bridge) -> None:
        b.channels.append(ch.id)
        ch.bridge_id = b.id
        if ch.app:
            b.apps.add(ch.app)
        if b.moh_class and b.moh_channel is None:
            self._start_moh_announcer(b)
        self._emit_ch(ch, "ChannelEnteredBridge", bridge=b.snapshot())
        self._update_bridgepeers(b)
        if b.bridge_type == "mixing" and len(b.channels) == 2:
            other = self.channels[b.channels[0]]
            ch.cdr_peer, other.cdr_peer = other.name, ch.name
            for x, y in ((ch, other), (other, ch)):
                if x.connected != {"name": y.caller["name"], "number": y.caller["number"]}:
                    x.connected = {"name": y.caller["name"], "number": y.caller["number"]}
                    self._emit_ch(x, "ChannelConnectedLine")
        self._retech(b)

    def _leave_bridge(self, ch: Channel, *, alive: bool) -> None:
        if not ch.bridge_id or ch.bridge_id not in self.bridges:
            ch.bridge_id = None
            return
        b = self.bridges[ch.bridge_id]
        if "BRIDGEPEER" in ch.variables and ch.variables["BRIDGEPEER"] and b.bridge_type == "mixing":
            self._varset(ch, "BRIDGEPEER", "")
        b.channels.remove(ch.id)
        ch.bridge_id = None
        if not b.channels and b.moh_channel_id:
            b.announcers.append(b.moh_channel_id)  # leaving with the last real channel: listed
        self._emit_ch(ch, "ChannelLeftBridge", bridge=b.snapshot())
        if not b.channels:
            self._stop_moh_announcer(b)  # the hidden MOH announcer leaves with the last real channel
            b.moh_class = None
        self._update_bridgepeers(b)
        if alive and ch.app:
            # A channel moved or removed alive unsubscribes the app from the old bridge (no BridgeDestroyed
            # later), unlike a channel that hung up inside it (traces: scenarios 1, 2 and 6).
            b.apps.discard(ch.app)
        self._retech(b)

    def remove_channels(self, bridge_id: str, channel_ids: list[str]) -> None:
        b = self.bridge(bridge_id)
        chans = []
        for cid in channel_ids:
            ch = self.channels.get(cid)
            if ch is None or ch.hungup:
                raise AriError(400, "Channel not found")
            if not ch.in_stasis:
                raise AriError(422, "Channel not in Stasis application")
            if ch.bridge_id != b.id:
                raise AriError(422, "Channel not in this bridge")
            chans.append(ch)
        for ch in chans:
            self._leave_bridge(ch, alive=True)

    def destroy_bridge(self, bridge_id: str) -> None:
        b = self.bridge(bridge_id)
        for cid in list(b.channels):
            self._leave_bridge(self.channels[cid], alive=False)
        uri = f"bridge:{b.id}"
        for pb in [p for p in self.playbacks.values() if p.target_uri == uri]:
            self._finish_playback(pb, "done")
        for rec in [r for r in self.live.values() if r.target_uri == uri]:
            self._finish_recording(rec, "done")
        del self.bridges[b.id]
        for app in sorted(b.apps):
            self.emit(app, "BridgeDestroyed", bridge=b.snapshot())

    def bridge_moh(self, bridge_id: str, moh_class: str | None) -> None:
        b = self.bridge(bridge_id)
        b.moh_class = moh_class or "default"
        if b.channels and b.moh_channel is None:
            self._start_moh_announcer(b)

    def bridge_stop_moh(self, bridge_id: str) -> None:
        b = self.bridge(bridge_id)
        if not b.moh_class:
            raise AriError(409, "Bridge isn't playing music")
        b.moh_class = None
        self._stop_moh_announcer(b)

    def _start_moh_announcer(self, b: Bridge) -> None:
        b.moh_channel = f"Announcer/ARI_MOH-{next(self._helper_seq):08x};2"
        self._new_channel_id()  # the announcer's ;1 half: it takes a uniqueid too
        b.moh_channel_id = self._new_channel_id()

    def _stop_moh_announcer(self, b: Bridge) -> None:
        if b.moh_channel_id in b.announcers:
            b.announcers.remove(b.moh_channel_id)
        b.moh_channel = None
        b.moh_channel_id = None

    def hears(self, channel_id: str) -> str | None:
        """What the phone of a channel hears now: a playback on the channel itself, also when the
        channel is in a bridge (Asterisk plays it through the bridge channel and suspends the bridge's
        audio for that channel meanwhile: res_stasis_playback `play_uri` →
        ast_bridge_channel_queue_playfile_sync; the other members go on hearing the bridge); else a
        playback on its bridge; else the music of its holding bridge ("moh:<class>", the Announcer)
        or its own ("moh:<class>"); else the other parties of its mixing bridge ("bridge:<id>");
        else None: silence."""
        ch = self.channels.get(channel_id)
        if ch is None or ch.hungup:
            return None
        targets = [f"channel:{ch.id}"] + ([f"bridge:{ch.bridge_id}"] if ch.bridge_id else [])
        for target in targets:
            playing = [p for p in self.playbacks.values() if p.target_uri == target and p.state == "playing"]
            if playing:
                return playing[0].media[0]
        b = self.bridges.get(ch.bridge_id) if ch.bridge_id else None
        if b is not None and b.moh_channel_id:
            return f"moh:{b.moh_class}"
        if ch.moh_class:
            return f"moh:{ch.moh_class}"
        if b is not None and b.bridge_type == "mixing" and [c for c in b.channels if c != ch.id]:
            return f"bridge:{b.id}"
        return None

    def _bridge_app(self, b: Bridge) -> str | None:
        return sorted(b.apps)[0] if b.apps else None

    # ---- playbacks -------------------------------------------------------------------------------
    def play(self, target_uri: str, media: list[str], lang: str | None, playback_id: str | None) -> Playback:
        kind, _, ident = target_uri.partition(":")
        if kind == "channel":
            ch = self.stasis_channel(ident)
            language = lang or ch.language
        else:
            self.bridge(ident)
            language = lang or "en"
        if playback_id and playback_id in self.playbacks:
            raise AriError(409, "Playback with that id already exists")
        pb = Playback(playback_id or str(uuid.uuid4()), media, target_uri, language)
        self.playbacks[pb.id] = pb
        queue = self._queues.setdefault(target_uri, [])
        queue.append(pb.id)
        if len(queue) == 1:
            self.clock.call_later(0, lambda: self._start_playback(pb))
        return pb

    def _target_app(self, target_uri: str) -> str | None:
        kind, _, ident = target_uri.partition(":")
        if kind == "channel":
            ch = self.channels.get(ident)
            return self._chan_app(ch) if ch else None
        b = self.bridges.get(ident)
        return self._bridge_app(b) if b else None

    def _media_seconds(self, media: str) -> float | None:
        """Seconds of audio; -1 when it fails (PlaybackFinished "failed"); `math.inf` for a tone, which
        plays until DELETE /playbacks/{id}; None when Asterisk skips the media without a final update
        (res_stasis_playback `play_on_channel`: an unknown scheme, a missing recording, a number that is
        not one), so that such a playback is started and never finished."""
        scheme, _, rest = media.partition(":")
        if scheme == "sound":
            if rest in self.missing_sounds or rest.startswith("no-such"):
                return -1.0
            return self.sound_seconds.get(rest, DEFAULT_SOUND_SECONDS)
        if scheme == "recording":
            rec = self.stored.get(rest)
            return rec.duration if rec and rec.path.exists() else None
        if scheme == "tone":
            return math.inf if _tone_ok(rest) else -1.0
        if scheme == "number":
            try:
                int(rest)
            except ValueError:
                return None
            return DEFAULT_SOUND_SECONDS
        if scheme in ("digits", "characters"):
            return DEFAULT_SOUND_SECONDS
        return None

    def _start_playback(self, pb: Playback) -> None:
        if pb.id not in self.playbacks or pb.state != "queued":
            return
        pb.state = "playing"
        kind, _, ident = pb.target_uri.partition(":")
        if kind == "bridge" and ident in self.bridges:
            # A bridge playback joins a hidden Announcer channel: it counts for the technology.
            pb.hidden = f"Announcer/ARI-{next(self._helper_seq):08x};2"
            self.bridges[ident].hidden.append(pb.hidden)
            self._retech(self.bridges[ident])
        self.emit(self._target_app(pb.target_uri), "PlaybackStarted", playback=pb.snapshot())
        total = 0.0
        for media in pb.media:
            seconds = self._media_seconds(media)
            if seconds is None:
                # Unknown scheme: started, never finished, and gone from GET /playbacks soon after.
                self.playbacks.pop(pb.id, None)
                if pb.hidden and ident in self.bridges and pb.hidden in self.bridges[ident].hidden:
                    self.bridges[ident].hidden.remove(pb.hidden)
                self._next_in_queue(pb)
                return
            if seconds < 0:
                self._finish_playback(pb, "failed")
                return
            total += seconds
            if math.isinf(total):
                return  # a tone: it plays until the playback is stopped
        pb.timer = self.clock.call_later(total, lambda: self._finish_playback(pb, "done"))

    def _finish_playback(self, pb: Playback, state: str) -> None:
        if pb.id not in self.playbacks:
            return
        if pb.timer is not None:
            pb.timer.cancel()
        was_queued = pb.state == "queued"
        pb.state = state
        kind, _, ident = pb.target_uri.partition(":")
        if pb.hidden and ident in self.bridges and pb.hidden in self.bridges[ident].hidden:
            self.bridges[ident].hidden.remove(pb.hidden)
            self._retech(self.bridges[ident])
        del self.playbacks[pb.id]
        if not was_queued:
            self.emit(self._target_app(pb.target_uri), "PlaybackFinished", playback=pb.snapshot())
        self._next_in_queue(pb)

    def _next_in_queue(self, pb: Playback) -> None:
        queue = self._queues.get(pb.target_uri, [])
        if pb.id in queue:
            queue.remove(pb.id)
        if queue:
            nxt = self.playbacks.get(queue[0])
            if nxt is not None:
                self.clock.call_later(0, lambda: self._start_playback(nxt))

    def playback(self, playback_id: str) -> Playback:
        pb = self.playbacks.get(playback_id)
        if pb is None:
            raise AriError(404, "Playback not found")
        return pb

    def stop_playback(self, playback_id: str) -> None:
        # DELETE /playbacks/{id} → 204, then PlaybackFinished with state "done" (not "stopped").
        self._finish_playback(self.playback(playback_id), "done")

    # ---- recordings ------------------------------------------------------------------------------
    def record(
        self,
        target_uri: str,
        *,
        name: str | None,
        fmt: str | None,
        max_duration: int = 0,
        max_silence: int = 0,
        if_exists: str = "fail",
        beep: bool = False,
        terminate_on: str = "none",
    ) -> LiveRecording:
        kind, _, ident = target_uri.partition(":")
        if kind == "channel":
            self.stasis_channel(ident)
        else:
            self.bridge(ident)
        if not name:
            raise AriError(500, "Error parsing request")
        if not fmt or fmt not in RECORDING_FORMATS:
            raise AriError(422, "specified format is unknown on this system")
        if name in self.live:  # EEXIST, answered with the same text as ifExists=fail
            raise AriError(409, f"Recording '{name}' already exists and can not be overwritten")
        if if_exists == "fail" and name in self.stored:
            raise AriError(409, f"Recording '{name}' already exists and can not be overwritten")
        rec = LiveRecording(name, fmt, target_uri, self.now(), beep, max_duration, max_silence, terminate_on, if_exists)
        self.live[name] = rec
        if kind == "bridge":
            b = self.bridges[ident]
            rec.hidden = f"Recorder/ARI-{next(self._helper_seq):08x};2"
            b.hidden.append(rec.hidden)
            self._update_bridgepeers(b)
            self._retech(b)
        self.clock.call_later(0, lambda: self._start_recording(rec))
        return rec

    def _rec_path(self, rec: LiveRecording) -> Path:
        return self.recordings_dir / f"{rec.name}.{rec.format}"

    def _start_recording(self, rec: LiveRecording) -> None:
        if self.live.get(rec.name) is not rec or rec.state != "queued":
            return
        kind, _, ident = rec.target_uri.partition(":")
        ch = self.channels.get(ident) if kind == "channel" else None
        if ch is not None and ch.bridge_id:
            # res_stasis_recording `record_file`: the 201 was already sent; the recording fails when the
            # channel's control runs it (the api-docs list a 409 for this, but Asterisk never sends it).
            self._fail_recording(rec, "Cannot record channel while in bridge")
            return
        rec.state = "recording"
        rec.started_at = self.now()
        # The file exists from the start, with an unfinished header (GET /recordings/stored/{name}/file
        # serves it as it is); ifExists=append keeps the old file until the recorder closes it.
        path = self._rec_path(rec)
        old = self.stored.get(rec.name)
        if rec.if_exists != "append" or not path.exists():
            write_audio(path, rec.format, 0.0, unfinished=True)
            old = None
        self.stored[rec.name] = StoredRecording(rec.name, rec.format, path, old.duration if old else 0.0,
                                                old.transcript if old else "", live=rec)
        self.emit(self._target_app(rec.target_uri), "RecordingStarted", recording=rec.snapshot())
        if rec.max_duration:
            lead = BEEP_SECONDS if rec.beep else 0.0
            rec.timer = self.clock.call_later(rec.max_duration + lead, lambda: self._finish_recording(rec, "done"))

    def _fail_recording(self, rec: LiveRecording, cause: str) -> None:
        del self.live[rec.name]
        rec.state = "failed"
        self.emit(self._target_app(rec.target_uri), "RecordingFailed", recording=rec.snapshot({"cause": cause}))

    def _recorded_seconds(self, rec: LiveRecording) -> float:
        if rec.paused_at is not None:
            end = rec.paused_at
        elif rec.stopped_at is not None:
            end = rec.stopped_at
        else:
            end = self.now()
        seconds = max(end - rec.started_at - rec.paused_total - (BEEP_SECONDS if rec.beep else 0.0), 0.0)
        return min(seconds, float(rec.max_duration)) if rec.max_duration else seconds

    def _finish_recording(self, rec: LiveRecording, state: str) -> None:
        if self.live.get(rec.name) is not rec:
            return
        if rec.timer is not None:
            rec.timer.cancel()
        del self.live[rec.name]
        seconds = self._recorded_seconds(rec)
        kind, _, ident = rec.target_uri.partition(":")
        app = self._target_app(rec.target_uri)
        if rec.hidden and ident in self.bridges:
            b = self.bridges[ident]
            b.hidden.remove(rec.hidden)
            self._update_bridgepeers(b)
            self._retech(b)
        path = self._rec_path(rec)
        was_started = rec.state != "queued"
        rec.state = state
        if state == "canceled":
            path.unlink(missing_ok=True)
            self.stored.pop(rec.name, None)
        else:
            text = " ".join(rec.transcript)
            write_audio(path, rec.format, seconds, text, append=rec.if_exists == "append", voice=rec.voice)
            self.stored[rec.name] = StoredRecording(rec.name, rec.format, path, audio_seconds(path, rec.format), text)
        extra: dict[str, Any] = {"duration": int(seconds)}
        if rec.max_silence:
            extra.update(talking_duration=int(seconds), silence_duration=0)
        if was_started:
            self.emit(app, "RecordingFinished", recording=rec.snapshot(extra))

    def live_recording(self, name: str) -> LiveRecording:
        rec = self.live.get(name)
        if rec is None:
            raise AriError(404, "Recording not found")
        return rec

    def stop_recording(self, name: str) -> None:
        """POST /recordings/live/{name}/stop → 204 at once. Asterisk only queues a stop to the recorder;
        the file is closed (its header written) and RecordingFinished sent when the recorder handles it,
        `record_stop_delay` later. Until then the recording stays live (GET /recordings/live/{name}
        shows it) and the stored file is the partial one."""
        rec = self.live_recording(name)
        if rec.state == "queued":
            self._finish_recording(rec, "done")
            return
        if rec.stopped_at is not None:
            return
        rec.stopped_at = self.now()
        if rec.timer is not None:
            rec.timer.cancel()
        rec.timer = self.clock.call_later(self.record_stop_delay, lambda: self._finish_recording(rec, "done"))

    def cancel_recording(self, name: str) -> None:
        self._finish_recording(self.live_recording(name), "canceled")

    def pause_recording(self, name: str, paused: bool) -> None:
        rec = self.live_recording(name)
        if paused and rec.paused_at is None:
            rec.paused_at, rec.state = self.now(), "paused"
        elif not paused and rec.paused_at is not None:
            rec.paused_total += self.now() - rec.paused_at
            rec.paused_at, rec.state = None, "recording"

    def stored_recording(self, name: str) -> StoredRecording:
        """A stored recording is any file in the recording directory (Asterisk stats `<name>.*`), the
        one still being recorded included: that one is served as it is on disk, partial, with the
        unfinished header (risk: fetching before RecordingFinished)."""
        rec = self.stored.get(name)
        if rec is None or not rec.path.exists():
            raise AriError(404, "Recording not found")
        live = rec.live
        if live is not None and self.live.get(name) is live and live.if_exists != "append":
            write_audio(rec.path, rec.format, self._recorded_seconds(live), unfinished=True)
        return rec

    def delete_stored(self, name: str) -> None:
        rec = self.stored_recording(name)
        rec.path.unlink(missing_ok=True)
        del self.stored[name]

    def copy_stored(self, name: str, destination: str | None) -> StoredRecording:
        rec = self.stored_recording(name)
        if not destination:
            raise AriError(400, "Destination recording name is required")
        if destination in self.stored:
            raise AriError(409, "A recording with the same name already exists on the system")
        path = self.recordings_dir / f"{destination}.{rec.format}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rec.path.read_bytes())
        new = StoredRecording(destination, rec.format, path, rec.duration, rec.transcript)
        self.stored[destination] = new
        return new

    # ---- whole-system events ---------------------------------------------------------------------
    def set_endpoint_state(self, name: str, state: str) -> None:
        if state not in ("online", "offline"):
            raise ValueError("state must be 'online' or 'offline'")
        self.endpoint(name).online = state == "online"

    def restart(self) -> None:
        """Asterisk restarts: every channel, bridge, playback and live recording is gone without events;
        stored recordings (files) stay."""
        for ch in self.channels.values():
            if ch.ring_timer is not None:
                ch.ring_timer.cancel()
            ch.hungup = True
        for pb in self.playbacks.values():
            if pb.timer is not None:
                pb.timer.cancel()
        for rec in self.live.values():
            if rec.timer is not None:
                rec.timer.cancel()
        for stored in self.stored.values():
            stored.live = None  # a recording cut short stays on disk with its unfinished header
        self.channels.clear()
        self.bridges.clear()
        self.playbacks.clear()
        self.live.clear()
        self._queues.clear()


def parse_caller_id(text: str) -> tuple[str, str]:
    """ARI originate's `callerId` as ast_callerid_parse splits it: `"Name" <number>` → (name, number);
    a bare number → ("", number), and the endpoint's caller name is kept."""
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, number = text[:-1].rpartition("<")
        return name.strip().strip('"').strip(), number.strip()
    return "", text


def _tone_ok(uri: str) -> bool:
    """`tone:` media as ast_control_tone parses it: an indication name or a raw tone list (`425/1000,0/4000`),
    optionally `;tonezone=<country>`."""
    indication, _, option = uri.partition(";")
    if option and not option.startswith("tonezone="):  # parse_tone_uri: "Unexpected Tone URI component"
        return False
    if indication in TONE_NAMES:
        return True
    parts = [p.lstrip("!") for p in indication.split(",") if p]
    return bool(parts) and all(p.split("/")[0].replace("+", "").replace("*", "").isdigit() for p in parts)


def _qos_value(name: str) -> str:
    if name == "RTPAUDIOQOS":
        return "ssrc=2137995325;themssrc=1680036474;lp=0;rxjitter=0.000375;rxcount=360;txjitter=0.000750;" \
               "txcount=347;rlp=0;rtt=0.000000;rxmes=88.087887;txmes=88.087887"
    return "minrxjitter=000.000000;maxrxjitter=000.001000"
