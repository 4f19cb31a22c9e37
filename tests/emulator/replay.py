"""Replays a trace recorded on a real Asterisk (tests/emulator/traces/*.jsonl) against the emulator.

The trace's REST requests are sent in order, with the ids the emulator returned substituted for the ids
of the trace; its `ua` lines drive the emulated phones; the fake clock follows the trace's `t`. The
result holds, per request, the expected and actual answers, and the events received on the WebSocket,
so the test can compare them with the trace.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.emulator.ari import AriEmulator

TRACES = Path(__file__).with_name("traces")
DID = "74951112233"
# Asterisk-internal variables whose exact repetitions depend on media internals (bridge technology,
# RTP statistics); the emulator emits them once per change, so they are left out of the comparison,
# as is ChannelConnectedLine (sent or not depending on the bridge technology when a peer leaves).
NOISE_VARS = ("BRIDGEPEER", "BRIDGEPVTCALLID", "RTPAUDIOQOS")


def load(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (TRACES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


class WsClient:
    """A plain events client collecting every frame (a reader thread; no sleeps)."""

    def __init__(self, url: str) -> None:
        # Entered as a context manager (websockets >= 17.1 warns otherwise); close() leaves it.
        self.conn: ClientConnection = connect(url).__enter__()
        self.frames: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.conn:
                try:
                    self.frames.append(json.loads(message))
                except ValueError:
                    self.frames.append({"_raw": message})
        except Exception:  # noqa: BLE001 - connection closed
            return

    def close(self) -> None:
        self.conn.close()
        self.thread.join(5)


@dataclass
class Exchange:
    line: dict[str, Any]
    status: int
    content_type: str
    body: Any
    size: int


@dataclass
class Replay:
    trace: list[dict[str, Any]]
    idmap: dict[str, str] = field(default_factory=dict)
    exchanges: list[Exchange] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # received, all connections in order

    def sub(self, value: Any) -> Any:
        """The trace value with the emulator's ids in place of the trace's."""
        if isinstance(value, str):
            for old in sorted(self.idmap, key=len, reverse=True):
                if old in value:
                    value = value.replace(old, self.idmap[old])
            return value
        if isinstance(value, list):
            return [self.sub(v) for v in value]
        if isinstance(value, dict):
            return {k: self.sub(v) for k, v in value.items()}
        return value

    def learn(self, expected: Any, actual: Any) -> None:
        """Map ids (and channel names) of a trace answer to those of the emulator's answer."""
        if isinstance(expected, dict) and isinstance(actual, dict):
            for key, value in expected.items():
                if key not in actual:
                    continue
                other = actual[key]
                if key == "id" and isinstance(value, str) and isinstance(other, str):
                    self.idmap.setdefault(value, other)
                elif key == "name" and isinstance(value, str) and value.startswith("PJSIP/") and isinstance(other, str):
                    self.idmap.setdefault(value, other)
                else:
                    self.learn(value, other)
        elif isinstance(expected, list) and isinstance(actual, list):
            for e, a in zip(expected, actual, strict=False):
                self.learn(e, a)


def run(emu: AriEmulator, name: str, app: str = "ceotest") -> Replay:
    trace = load(name)
    rep = Replay(trace)
    start = emu.clock.now()
    http = httpx.Client(base_url=emu.url, auth=(emu.user, emu.password), timeout=5)
    ws: WsClient | None = None
    for index, line in enumerate(trace):
        kind = line["kind"]
        emu.advance(max(start + line["t"] - emu.clock.now(), 0.0))
        if kind == "ws" and line["action"] == "connect":
            ws = WsClient(emu.ws_url(app))
            emu.wait_for(lambda: emu.hub.active(app))
        elif kind == "ws" and line["action"] == "close" and ws is not None:
            _drain(emu, ws)
            rep.events.extend(ws.frames)
            ws.close()
            emu.wait_for(lambda: not emu.hub.active(app))
            ws = None
        elif kind == "ua":
            _phone(emu, rep, trace, index, line, app)
        elif kind == "note" and "phone process stopped" in line.get("text", ""):
            emu.set_endpoint_state(line["text"].split()[0], "offline")
        elif kind == "rest":
            _request(http, rep, line)
    http.close()
    return rep


def _drain(emu: AriEmulator, ws: WsClient) -> None:
    """Wait until the client got every frame the hub queued for it."""
    emu.wait_for(lambda: all(c.queue.empty() for c in emu.hub.connections))
    expected = sum(c.sent for c in emu.hub.connections)
    emu.wait_for(lambda: len(ws.frames) >= expected)


def _phone(emu: AriEmulator, rep: Replay, trace: list[dict[str, Any]], index: int, line: dict[str, Any], app: str) -> None:
    ua, cmd = line["ua"], line["cmd"]
    if cmd.startswith("dial sip:"):
        exten = cmd.split("sip:", 1)[1].split("@", 1)[0]
        if exten in ("disp1", "disp2", "resident"):
            emu.dialplan_call(ua, exten)
            return
        ep = emu.asterisk.endpoint(ua)
        ch = emu.incoming_call(DID, ep.callerid_number, app, ("inbound", DID), endpoint=ua,
                               caller_name=ep.callerid_name, exten=exten)
        for later in trace[index:]:
            ev = later.get("event", {})
            if ev.get("type") == "StasisStart" and ev["channel"]["name"].startswith(f"PJSIP/{ua}-"):
                rep.idmap[ev["channel"]["id"]] = ch.id
                rep.idmap[ev["channel"]["name"]] = ch.name
                break
    elif cmd.startswith("sndcode "):
        emu.press(ua, cmd.split(" ", 1)[1])
    elif cmd == "hangup":
        emu.hangup(ua)
    elif cmd.startswith("answermode "):
        emu.set_answer_mode(ua, cmd.split(" ", 1)[1])


def _request(http: httpx.Client, rep: Replay, line: dict[str, Any]) -> None:
    query = rep.sub(line["query"]) if line["query"] else None
    body = rep.sub(line["body"]) if line["body"] is not None else None
    resp = http.request(line["method"], rep.sub(line["path"]), params=query, json=body)
    ctype = resp.headers.get("content-type", "").split(";")[0]
    parsed = resp.json() if ctype == "application/json" and resp.content else None
    if line["status"] < 300 and parsed is not None:
        rep.learn(line["response"], parsed)
    rep.exchanges.append(Exchange(line, resp.status_code, ctype, parsed, len(resp.content)))


# ---- comparison -----------------------------------------------------------------------------------
def event_key(event: dict[str, Any]) -> str:
    if "channel" in event:
        return event["channel"]["id"]
    if "peer" in event:
        return event["peer"]["id"]
    if "playback" in event:
        return event["playback"]["id"]
    if "recording" in event:
        return "recording:" + event["recording"]["name"]
    return event["bridge"]["id"]


def describe(event: dict[str, Any]) -> str:
    etype = event["type"]
    detail = {
        "Dial": lambda e: e["dialstatus"],
        "ChannelStateChange": lambda e: e["channel"]["state"],
        "ChannelVarset": lambda e: f"{e['variable']}={e['value']}",
        "ChannelDtmfReceived": lambda e: e["digit"],
        "PlaybackStarted": lambda e: e["playback"]["state"],
        "PlaybackFinished": lambda e: e["playback"]["state"],
        "RecordingStarted": lambda e: e["recording"]["state"],
        "RecordingFinished": lambda e: e["recording"]["state"],
        "ChannelDestroyed": lambda e: str(e["cause"]),
        "StasisStart": lambda e: ",".join(e["args"]),
    }.get(etype)
    return f"{etype}:{detail(event)}" if detail else etype


def sequences(events: list[dict[str, Any]], idmap: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Per channel/bridge/playback/recording: the event descriptions in order, noise left out and the
    swaps the README notes between runs (ChannelStateChange vs Dial of an originated leg, stamped in the
    same millisecond on a real Asterisk) put in one canonical order: Dial events first."""
    out: dict[str, list[tuple[str, str]]] = {}
    for event in events:
        if event["type"] == "ChannelConnectedLine":
            continue
        if event["type"] == "ChannelVarset" and event["variable"].startswith(NOISE_VARS):
            continue
        key = event_key(event)
        if idmap is not None:
            key = idmap.get(key, key if key.startswith("recording:") else f"unmapped:{key}")
        text = describe(event)
        for old in sorted(idmap or {}, key=len, reverse=True):
            text = text.replace(old, (idmap or {})[old])
        out.setdefault(key, []).append((event["timestamp"], text))
    result = {}
    for key, items in out.items():
        changed = True
        while changed:
            changed = False
            for i in range(len(items) - 1):
                (_, d1), (_, d2) = items[i], items[i + 1]
                if d1.startswith("ChannelStateChange") and d2.startswith("Dial:"):
                    items[i], items[i + 1] = items[i + 1], items[i]
                    changed = True
        result[key] = [d for _, d in items]
    return result


def expected_events(trace: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line["event"] for line in trace if line["kind"] == "event"]


def normalize(value: Any) -> Any:
    """Drop fields that differ by nature (times, SIP Call-IDs) from an answer body."""
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items() if k not in ("creationtime", "protocol_id", "timestamp")}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def wait_idle(emu: AriEmulator) -> None:
    deadline = time.monotonic() + 5
    while any(not c.queue.empty() for c in emu.hub.connections) and time.monotonic() < deadline:
        time.sleep(0.002)
