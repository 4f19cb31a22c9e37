"""Dispatcher: envelope validation, duplicates, per-call sessions in order, isolation of failures."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ari_app.dispatcher import KNOWN_EVENT_TYPES, Dispatcher, Event, Flow, Session, parse_event, snake
from tests.ari_app.helpers import until
from tests.ari_app.spec import event_types

TRACES = Path("/work/shared/asterisk/traces")
CALLER = "1795638141.137"
DISP = "1795638144.140"
BRIDGE = "045be1b6-74b7-491c-9545-a9be9305aa4f"
_clock = iter(range(10_000))


def ev(type_: str, channel: str | None = None, **fields: Any) -> str:
    """One ARI event as Asterisk sends it; each gets its own millisecond unless `timestamp` is given."""
    payload: dict[str, Any] = {"type": type_, "application": "openads",
                               "timestamp": f"2026-11-25T20:22:{next(_clock) / 1000:06.3f}+0000",
                               "asterisk_id": "02:fc:00:00:00:01"}
    if channel is not None:
        payload["channel"] = {"id": channel, "name": f"PJSIP/x-{channel}", "state": "Up"}
    payload.update(fields)
    return json.dumps(payload)


def stasis_start(channel: str, *args: str) -> str:
    return ev("StasisStart", channel, args=list(args))


def dtmf(channel: str, digit: str) -> str:
    return ev("ChannelDtmfReceived", channel, digit=digit, duration_ms=180)


class Recording(Flow):
    """Test flow: logs what it sees in `self.session.context` (a shared list)."""

    def log(self, what: str) -> None:
        self.session.context.append((self.session.id, what))

    async def on_stasis_start(self, event: Event) -> None:
        self.log(f"start:{','.join(self.session.args)}")

    async def on_channel_dtmf_received(self, event: Event) -> None:
        self.log(f"dtmf:{event.raw['digit']}")

    async def on_dial(self, event: Event) -> None:
        self.log(f"dial:{event.peer_id}:{event.raw['dialstatus']}")

    async def on_playback_finished(self, event: Event) -> None:
        self.log(f"playback-finished:{event.playback_id}")

    async def on_recording_finished(self, event: Event) -> None:
        self.log(f"recording-finished:{event.recording_name}")

    async def on_bridge_destroyed(self, event: Event) -> None:
        self.log(f"bridge-destroyed:{event.bridge_id}")

    async def on_stasis_end(self, event: Event) -> None:
        self.log(f"end:{event.channel_id}")

    async def on_channel_destroyed(self, event: Event) -> None:
        self.log(f"destroyed:{event.channel_id}")

    async def on_session_end(self) -> None:
        self.log("session-end")


def run(body: Callable[[Dispatcher, list[Any]], Awaitable[None]], **kwargs: Any) -> None:
    async def main() -> None:
        seen: list[Any] = []
        dispatcher = Dispatcher({"inbound": Recording, "robot": Recording, **kwargs.pop("flows", {})},
                                app="openads", context=seen, **kwargs)
        try:
            await body(dispatcher, seen)
        finally:
            await dispatcher.close()

    asyncio.run(main())


def test_stasis_start_picks_the_flow_from_the_first_stasis_argument() -> None:
    async def body(d: Dispatcher, seen: list[Any]) -> None:
        await d.feed(stasis_start(CALLER, "inbound", "74951112233"))
        await d.feed(dtmf(CALLER, "4"))
        await d.drain()
        assert seen == [(CALLER, "start:74951112233"), (CALLER, "dtmf:4")]
        session = d.session_for_channel(CALLER)
        assert session is not None and session.flow_name == "inbound" and isinstance(session.flow, Recording)

    run(body)


def test_stasis_start_without_a_known_flow_goes_to_the_unroutable_hook() -> None:
    unroutable: list[tuple[str | None, list[str]]] = []

    async def on_unroutable(event: Event) -> None:
        unroutable.append((event.channel_id, event.args))

    async def body(d: Dispatcher, seen: list[Any]) -> None:
        await d.feed(stasis_start("1.1", "nosuchflow", "x"))
        await d.feed(stasis_start("1.2"))
        await d.drain()
        assert unroutable == [("1.1", ["nosuchflow", "x"]), ("1.2", [])]
        assert d.sessions == [] and seen == [] and d.stats["unroutable"] == 2

    run(body, on_unroutable=on_unroutable)


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "not JSON"),
    ('["StasisStart"]', "not a JSON object"),
    ('{"application": "openads", "channel": {"id": "1.1"}}', "missing or non-string `type`"),
    ('{"type": 7, "application": "openads"}', "missing or non-string `type`"),
    ('{"type": "StasisStart", "channel": {"id": "1.1"}, "args": []}', "non-string `application`"),
    ('{"type": "ChannelDtmfReceived", "application": "openads", "digit": "1"}', "`channel.id`"),
    ('{"type": "ChannelDtmfReceived", "application": "openads", "channel": {"id": 5}}', "`channel.id`"),
    ('{"type": "PlaybackFinished", "application": "openads", "playback": {}}', "`playback.id`"),
    ('{"type": "Dial", "application": "openads", "dialstatus": ""}', "`peer.id`"),
])
def test_malformed_events_are_logged_and_skipped(raw: str | bytes, reason: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    async def body(d: Dispatcher, seen: list[Any]) -> None:
        with caplog.at_level(logging.WARNING, logger="ari_app.dispatcher"):
            await d.feed(raw)
        await d.feed(stasis_start(CALLER, "inbound", "74951112233"))  # the stream goes on
        await d.drain()
        assert d.stats["malformed"] == 1
        assert seen == [(CALLER, "start:74951112233")]
        assert reason in caplog.records[0].getMessage()

    run(body)


def test_unknown_event_types_are_skipped_at_debug_level(caplog: pytest.LogCaptureFixture) -> None:
    async def body(d: Dispatcher, seen: list[Any]) -> None:
        await d.feed(stasis_start(CALLER, "inbound", "74951112233"))
        with caplog.at_level(logging.DEBUG, logger="ari_app.dispatcher"):
            await d.feed(ev("ChannelQuantumTeleport", CALLER))
        await d.feed(dtmf(CALLER, "1"))
        await d.drain()
        assert seen == [(CALLER, "start:74951112233"), (CALLER, "dtmf:1")]
        assert d.stats["unknown"] == 1
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("DEBUG", "ARI event skipped, unknown type ChannelQuantumTeleport")]

    run(body)


def test_an_event_delivered_twice_is_handled_once_but_distinct_events_in_one_millisecond_are_not_merged() -> None:
    async def body(d: Dispatcher, seen: list[Any]) -> None:
        await d.feed(stasis_start(CALLER, "inbound", "74951112233"))
        d.session_for_channel(CALLER).claim_channel(DISP)  # type: ignore[union-attr]
        digit = dtmf(CALLER, "5")
        await d.feed(digit)
        await d.feed(digit)
        # As Asterisk sends them (trace inbound_answered_bridged_recorded): same type, same
        # millisecond, same peer — three different events.
        peer = {"id": DISP, "name": "PJSIP/disp1-00000050"}
        for status in ("", "RINGING", "ANSWER"):
            await d.feed(ev("Dial", timestamp="2026-11-25T20:22:24.447+0000", peer=peer, dialstatus=status,
                            dialstring="disp1", forward=""))
        await d.drain()
        assert seen == [(CALLER, "start:74951112233"), (CALLER, "dtmf:5"), (CALLER, f"dial:{DISP}:"),
                        (CALLER, f"dial:{DISP}:RINGING"), (CALLER, f"dial:{DISP}:ANSWER")]
        assert d.stats["duplicates"] == 1

    run(body)


def test_the_duplicate_window_is_bounded() -> None:
    async def body(d: Dispatcher, seen: list[Any]) -> None:
        await d.feed(stasis_start(CALLER, "inbound", "74951112233"))
        first = dtmf(CALLER, "1")
        for raw in (first, dtmf(CALLER, "2"), dtmf(CALLER, "3"), first):
            await d.feed(raw)
        await d.drain()
        assert [w for _, w in seen] == ["start:74951112233", "dtmf:1", "dtmf:2", "dtmf:3", "dtmf:1"]
        assert d.stats["duplicates"] == 0

    run(body, dedup_window=2)


def test_events_of_other_applications_are_skipped() -> None:
    async def body(d: Dispatcher, seen: list[Any]) -> None:
        await d.feed(json.dumps({**json.loads(stasis_start("9.9", "inbound", "1")), "application": "other"}))
        await d.drain()
        assert d.sessions == [] and d.stats["foreign"] == 1

    run(body)


def test_application_replaced_goes_to_its_own_hook_and_is_logged_as_an_error(caplog: pytest.LogCaptureFixture) -> None:
    replaced: list[Event] = []
    others: list[Event] = []

    async def on_application_replaced(event: Event) -> None:
        replaced.append(event)

    async def on_other_event(event: Event) -> None:
        others.append(event)

    async def body(d: Dispatcher, seen: list[Any]) -> None:
        await d.feed(ev("ApplicationReplaced"))  # events.json: no properties beyond the Message's
        await d.feed(json.dumps({**json.loads(ev("ApplicationReplaced")), "application": "other"}))
        await d.drain()
        assert d.stats["replaced"] == 1 and d.stats["foreign"] == 1

    with caplog.at_level(logging.ERROR, logger="ari_app.dispatcher"):
        run(body, on_application_replaced=on_application_replaced, on_other_event=on_other_event)
    assert [e.type for e in replaced] == ["ApplicationReplaced"] and others == []
    assert any("replaced" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


class Blocking(Recording):
    """Call A's first digit waits for the test to release it."""

    release: asyncio.Event

    async def on_channel_dtmf_received(self, event: Event) -> None:
        if event.raw["digit"] == "1":
            self.log("dtmf:1 waiting")
            await Blocking.release.wait()
        if event.raw["digit"] == "2" and self.session.id == "A":
            raise RuntimeError("flow bug")
        await super().on_channel_dtmf_received(event)


def test_each_call_runs_in_order_on_its_own_and_a_handler_error_stays_in_its_call(
        caplog: pytest.LogCaptureFixture) -> None:
    errors: list[tuple[str, str, str]] = []

    async def on_handler_error(session: Session, event: Event, exc: Exception) -> None:
        errors.append((session.id, str(event), repr(exc)))

    async def body(d: Dispatcher, seen: list[Any]) -> None:
        Blocking.release = asyncio.Event()
        await d.feed(stasis_start("A", "inbound", "74951112233"))
        await d.feed(stasis_start("B", "inbound", "74951112244"))
        for digit in ("1", "2", "3"):
            await d.feed(dtmf("A", digit))
        for digit in ("7", "8", "9"):
            await d.feed(dtmf("B", digit))
        # A is stuck in its first handler; B is not held up by it (no global lock).
        await until(lambda: ("B", "dtmf:9") in seen)
        assert [w for s, w in seen if s == "A"] == ["start:74951112233", "dtmf:1 waiting"]
        with caplog.at_level(logging.ERROR, logger="ari_app.dispatcher"):
            Blocking.release.set()
            await d.drain()
        assert [w for s, w in seen if s == "A"] == ["start:74951112233", "dtmf:1 waiting", "dtmf:1", "dtmf:3"]
        assert [w for s, w in seen if s == "B"] == ["start:74951112244", "dtmf:7", "dtmf:8", "dtmf:9"]
        assert errors == [("A", "ChannelDtmfReceived(channel=A)", "RuntimeError('flow bug')")]
        assert caplog.records[0].getMessage() == \
            "flow inbound: handler for ChannelDtmfReceived(channel=A) failed on channel A"
        assert d.stats["handler_errors"] == 1 and d.session_for_channel("A") is not None

    run(body, flows={"inbound": Blocking}, on_handler_error=on_handler_error)


def test_a_session_gets_the_events_of_what_it_claimed_and_ends_when_its_channels_are_gone() -> None:
    other: list[str] = []

    async def on_other_event(event: Event) -> None:
        other.append(str(event))

    async def body(d: Dispatcher, seen: list[Any]) -> None:
        await d.feed(stasis_start(CALLER, "inbound", "74951112233"))
        session = d.session_for_channel(CALLER)
        assert session is not None
        # The flow claims ids before the requests that create them (channelId, playbackId, bridgeId).
        session.claim_channel(DISP)
        session.claim_bridge(BRIDGE)
        session.claim_playback("pb-1")
        await d.feed(ev("PlaybackFinished", playback={"id": "pb-1", "target_uri": f"channel:{CALLER}",
                                                       "media_uri": "sound:hello-world", "state": "done"}))
        # Not claimed, but played on our bridge / recorded on our channel: found by target_uri.
        await d.feed(ev("PlaybackFinished", playback={"id": "pb-2", "target_uri": f"bridge:{BRIDGE}",
                                                       "media_uri": "sound:beep", "state": "done"}))
        await d.feed(ev("RecordingFinished", recording={"name": "call-42", "format": "wav", "state": "done",
                                                         "target_uri": f"bridge:{BRIDGE}", "duration": 5}))
        await d.feed(ev("Dial", peer={"id": DISP}, dialstatus="ANSWER"))
        await d.feed(stasis_start(DISP, "dialed", CALLER))  # the originated leg: same session
        await d.feed(ev("StasisEnd", CALLER))
        await d.feed(ev("BridgeDestroyed", bridge={"id": BRIDGE, "channels": []}))
        await d.feed(ev("StasisEnd", DISP))
        await d.drain()
        # The caller's channel is gone at StasisEnd (no ChannelDestroyed comes for it); the
        # originated one only at ChannelDestroyed, which carries the cause.
        assert session.live_channel_ids == {DISP} and not session.closed
        await d.feed(ev("ChannelDestroyed", DISP, cause=16, cause_txt="Normal Clearing"))
        await d.drain()
        assert [w for _, w in seen] == [
            "start:74951112233", "playback-finished:pb-1", "playback-finished:pb-2", "recording-finished:call-42",
            f"dial:{DISP}:ANSWER", "start:74951112233", f"end:{CALLER}", f"bridge-destroyed:{BRIDGE}",
            f"end:{DISP}", f"destroyed:{DISP}", "session-end"]
        assert {s for s, _ in seen} == {CALLER}
        assert d.sessions == [] and d.session_for_channel(DISP) is None and session.closed
        # Later events about those ids belong to nobody.
        await d.feed(ev("ChannelVarset", DISP, variable="BRIDGEPEER", value=""))
        await d.feed(ev("EndpointStateChange", endpoint={"technology": "PJSIP", "resource": "disp1",
                                                         "state": "offline", "channel_ids": []}))
        await d.drain()
        assert other == [f"ChannelVarset(channel={DISP})", "EndpointStateChange()"]
        assert seen[-1] == (CALLER, "session-end")

    run(body, on_other_event=on_other_event)


def test_reconcile_can_reattach_a_call_and_end_a_leg_that_vanished_during_the_gap() -> None:
    async def body(d: Dispatcher, seen: list[Any]) -> None:
        session = d.start_session("inbound", CALLER, args=["74951112233"])
        session.claim_channel(DISP)
        await d.feed(dtmf(CALLER, "7"))
        assert d.channel_gone(DISP) is True
        assert d.channel_gone("no.such") is False
        await d.feed(ev("StasisEnd", CALLER))
        await d.drain()
        assert seen == [(CALLER, "dtmf:7"), (CALLER, f"destroyed:{DISP}"), (CALLER, f"end:{CALLER}"),
                        (CALLER, "session-end")]
        assert session.args == ["74951112233"] and d.sessions == []

    run(body)


def test_flow_methods_are_named_after_the_event_type() -> None:
    assert [snake(t) for t in ("StasisStart", "ChannelDtmfReceived", "PlaybackFinished", "Dial")] == [
        "stasis_start", "channel_dtmf_received", "playback_finished", "dial"]


def test_known_event_types_are_exactly_the_events_of_the_api_docs() -> None:
    assert KNOWN_EVENT_TYPES == event_types()


def test_every_event_a_real_asterisk_sent_is_accepted() -> None:
    if not TRACES.is_dir():
        pytest.skip("Asterisk traces not available")
    events = [json.dumps(line["event"]) for path in sorted(TRACES.glob("*.jsonl"))
              for line in map(json.loads, path.read_text().splitlines()) if line["kind"] == "event"]
    assert len(events) == 277
    assert {parse_event(raw).type for raw in events} <= KNOWN_EVENT_TYPES

    async def main() -> None:
        d = Dispatcher({}, app="ceotest")  # no flows: every StasisStart goes to the unroutable hook
        for raw in events:
            await d.feed(raw)
        await d.drain()
        assert d.stats["malformed"] == d.stats["unknown"] == d.stats["foreign"] == 0
        assert d.stats["unroutable"] == 10

    asyncio.run(main())


def test_trace_websocket_reconnect_mid_call_runs_as_one_session_for_both_legs() -> None:
    path = TRACES / "websocket_reconnect_mid_call.jsonl"
    if not path.is_file():
        pytest.skip("Asterisk traces not available")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    events = [json.dumps(line["event"]) for line in lines if line["kind"] == "event"]
    caller, dialled, bridge = "1795638187.149", "1795638187.150", "7f921947-8d2e-40aa-be87-1f47a32203e8"

    class Inbound(Flow):
        async def handle(self, event: Event) -> None:
            if event.type == "StasisStart" and event.channel_id == caller:
                # What the flow does before its originate/create-bridge requests.
                self.session.claim_channel(dialled)
                self.session.claim_bridge(bridge)
            self.session.context.append(event.type)

        async def on_session_end(self) -> None:
            self.session.context.append("session-end")

    async def main() -> None:
        seen: list[str] = []
        other: list[str] = []

        async def on_other_event(event: Event) -> None:
            other.append(event.type)

        d = Dispatcher({"inbound": Inbound}, app="ceotest", context=seen, on_other_event=on_other_event)
        for raw in events:
            await d.feed(raw)
            await d.drain()  # on Asterisk, the flow's requests (and claims) come before their events
        assert seen.count("StasisStart") == 2 and seen.count("StasisEnd") == 2
        assert seen.count("Dial") == 3 and seen.count("ChannelDtmfReceived") == 0  # native_rtp bridge
        # The originated leg is kept until its ChannelDestroyed (with the cause), not its StasisEnd.
        assert seen[-4:] == ["StasisEnd", "ChannelVarset", "ChannelDestroyed", "session-end"]
        assert ("PlaybackStarted", "PlaybackFinished") == tuple(t for t in seen if t.startswith("Playback"))
        assert d.sessions == [] and other == ["BridgeDestroyed"]  # the flow destroyed it after the call
        assert d.stats["handler_errors"] == d.stats["malformed"] == 0

    asyncio.run(main())
