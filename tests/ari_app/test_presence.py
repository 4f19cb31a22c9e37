"""AMI presence and Cdr events against a fake AMI server speaking the text protocol over TCP
(banner, Login, list actions with EventList start/Complete, unsolicited event blocks), the shape
of panoramisk's own test streams (panoramisk/testing.py, tests/fixtures/*.yaml)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ari_app.presence import (
    AmiPresence,
    CdrRecord,
    FallbackEnd,
    Presence,
    PresenceChange,
    PresenceTracker,
    endpoint_of_device,
    parse_cdr,
    parse_fallback_end,
)

EOL = "\r\n"
TIMEOUT = 5.0


MANAGER_CONF = Path(__file__).resolve().parents[2] / "dialplan" / "manager.conf"
# The write class each action needs (ast_manager_register_xml in Asterisk's sources; 0 = none):
# DeviceStateList is registered EVENT_FLAG_CALL | EVENT_FLAG_REPORTING (res_manager_devicestate.c),
# PJSIPShowEndpoints EVENT_FLAG_SYSTEM (res_pjsip/pjsip_configuration.c).
ACTION_CLASSES: dict[str, set[str]] = {
    "login": set(), "logoff": set(), "ping": set(), "challenge": set(),
    "devicestatelist": {"call", "reporting"},
    "pjsipshowendpoints": {"system"},
    "pjsipshowcontacts": {"system"},
    "command": {"command"},
}


def manager_conf_write_classes() -> set[str]:
    """The `write =` classes of the openads user in dialplan/manager.conf."""
    [line] = re.findall(r"^\s*write\s*=\s*(.+)$", MANAGER_CONF.read_text(encoding="utf-8"), re.M)
    return {c.strip() for c in line.split(";")[0].split(",") if c.strip()}


class FakeAmi:
    """A minimal Asterisk Manager Interface: enough for panoramisk and AmiPresence. Like Asterisk,
    it refuses ("Permission denied") an action whose class the user's `write =` in
    dialplan/manager.conf does not grant."""

    def __init__(self, username: str = "openads", secret: str = "s3cret") -> None:
        self.username, self.secret = username, secret
        # What DeviceStateList reports; tests change it between connections.
        self.devices: dict[str, str] = {}  # "PJSIP/201" -> "NOT_INUSE"
        self.actions: list[dict[str, str]] = []
        self.write = manager_conf_write_classes()
        self.denied: set[str] = set()  # actions refused, lower case (filled as they are)
        self.writers: list[asyncio.StreamWriter] = []
        self.logins = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        await self.drop()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def drop(self) -> None:
        """Asterisk restarted / the network broke: close every client connection."""
        writers, self.writers = self.writers, []
        for w in writers:
            w.close()
        for w in writers:
            try:
                await w.wait_closed()
            except ConnectionError:
                pass

    async def push(self, **headers: str) -> None:
        for w in list(self.writers):
            w.write(self._block(headers))
            await w.drain()

    @staticmethod
    def _block(headers: dict[str, str]) -> bytes:
        return ("".join(f"{k}: {v}{EOL}" for k, v in headers.items()) + EOL).encode()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(f"Asterisk Call Manager/9.0.0{EOL}".encode())
        authed = False
        try:
            while True:
                raw = await reader.readuntil((EOL + EOL).encode())
                action = dict(line.split(": ", 1) for line in raw.decode().strip().split(EOL) if ": " in line)
                self.actions.append(action)
                aid = action.get("ActionID", "")
                name = action.get("Action", "").lower()
                if name == "login":
                    authed = action.get("Username") == self.username and action.get("Secret") == self.secret
                    if authed:
                        self.logins += 1
                        writer.write(self._block({"Response": "Success", "ActionID": aid,
                                                  "Message": "Authentication accepted"}))
                        writer.write(self._block({"Event": "FullyBooted", "Privilege": "system,all",
                                                  "Status": "Fully Booted"}))
                    else:
                        writer.write(self._block({"Response": "Error", "ActionID": aid,
                                                  "Message": "Authentication failed"}))
                elif not authed or (ACTION_CLASSES.get(name, {"system"}) and
                                    not ACTION_CLASSES.get(name, {"system"}) & self.write):
                    self.denied.add(name)
                    writer.write(self._block({"Response": "Error", "ActionID": aid,
                                              "Message": "Permission denied"}))
                elif name == "devicestatelist":
                    writer.write(self._block({"Response": "Success", "ActionID": aid, "EventList": "start",
                                              "Message": "Device State Changes will follow"}))
                    for device, state in self.devices.items():
                        writer.write(self._block({"Event": "DeviceStateChange", "ActionID": aid,
                                                  "Device": device, "State": state}))
                    writer.write(self._block({"Event": "DeviceStateListComplete", "ActionID": aid,
                                              "EventList": "Complete", "ListItems": str(len(self.devices))}))
                elif name == "ping":
                    writer.write(self._block({"Response": "Success", "ActionID": aid, "Ping": "Pong",
                                              "Timestamp": "1764111600.000000"}))
                else:
                    writer.write(self._block({"Response": "Error", "ActionID": aid, "Message": "Invalid/unknown command"}))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if writer in self.writers:
                self.writers.remove(writer)
            writer.close()


async def next_item(queue: asyncio.Queue[Any]) -> Any:
    return await asyncio.wait_for(queue.get(), TIMEOUT)


async def until(predicate: Callable[[], bool]) -> None:
    """Poll with a deadline (never a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def run_with_ami(scenario: Callable[[FakeAmi, AmiPresence, asyncio.Queue[Any]], Awaitable[None]],
                 *, endpoints: list[str] | None = None, secret: str = "s3cret",
                 setup: Callable[[FakeAmi], None] | None = None) -> None:
    async def main() -> None:
        ami = FakeAmi()
        if setup:
            setup(ami)
        await ami.start()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        presence = AmiPresence(host="127.0.0.1", port=ami.port, username="openads", secret=secret,
                               endpoints=endpoints, on_change=queue.put_nowait, on_cdr=queue.put_nowait,
                               reconnect_delay=0.05, asterisk_tz=ZoneInfo("Europe/Moscow"))
        await presence.start()
        try:
            await scenario(ami, presence, queue)
        finally:
            await presence.close()
            await ami.close()

    asyncio.run(main())


def three_dispatchers(ami: FakeAmi) -> None:
    ami.devices = {"PJSIP/201": "NOT_INUSE", "PJSIP/202": "INUSE", "PJSIP/203": "UNAVAILABLE",
                   "PJSIP/trunk-operator": "NOT_INUSE", "Custom:night": "INUSE"}


DISPATCHERS = ["PJSIP/201", "PJSIP/202", "PJSIP/203", "PJSIP/204"]


def test_when_logged_in_then_the_snapshot_comes_from_the_list_actions() -> None:
    async def scenario(ami: FakeAmi, presence: AmiPresence, queue: asyncio.Queue[Any]) -> None:
        await asyncio.wait_for(presence.synced.wait(), TIMEOUT)
        assert presence.snapshot() == {
            "PJSIP/201": Presence.FREE,
            "PJSIP/202": Presence.BUSY,
            "PJSIP/203": Presence.OFFLINE,
            "PJSIP/204": Presence.OFFLINE,  # configured but unknown to Asterisk
        }
        changes = [queue.get_nowait() for _ in range(queue.qsize())]
        assert changes == [
            PresenceChange("PJSIP/201", Presence.FREE, None, "resync"),
            PresenceChange("PJSIP/202", Presence.BUSY, None, "resync"),
            PresenceChange("PJSIP/203", Presence.OFFLINE, None, "resync"),
            PresenceChange("PJSIP/204", Presence.OFFLINE, None, "resync"),
        ]
        assert [a["Action"] for a in ami.actions] == ["Login", "DeviceStateList"]
        assert ami.actions[0]["Username"] == "openads" and ami.actions[0]["Secret"] == "s3cret"
        assert presence.connected is True
        assert presence.free(["PJSIP/203", "PJSIP/202", "PJSIP/201"]) == ["PJSIP/201"]

    run_with_ami(scenario, endpoints=DISPATCHERS, setup=three_dispatchers)


def test_presence_sends_only_actions_that_the_manager_conf_user_may_run() -> None:
    # dialplan/manager.conf gives the openads user write=reporting only (no "system", which would
    # also allow Reload/Shutdown): PJSIPShowEndpoints would answer "Permission denied" on every
    # resync; DeviceStateList (call|reporting) is enough.
    assert manager_conf_write_classes() == {"reporting"}

    async def scenario(ami: FakeAmi, presence: AmiPresence, queue: asyncio.Queue[Any]) -> None:
        await asyncio.wait_for(presence.synced.wait(), TIMEOUT)
        await ami.drop()  # and again after a reconnect
        await until(lambda: ami.logins == 2 and presence.synced.is_set())
        assert presence.snapshot() == {"PJSIP/201": Presence.FREE, "PJSIP/202": Presence.BUSY,
                                       "PJSIP/203": Presence.OFFLINE, "PJSIP/204": Presence.OFFLINE}
        sent = {a["Action"].lower() for a in ami.actions}
        assert "devicestatelist" in sent
        assert sent <= set(ACTION_CLASSES), sent - set(ACTION_CLASSES)
        assert ami.denied == set()

    run_with_ami(scenario, endpoints=DISPATCHERS, setup=three_dispatchers)


def test_when_a_phone_rings_is_answered_and_hangs_up_then_each_change_is_published() -> None:
    async def scenario(ami: FakeAmi, presence: AmiPresence, queue: asyncio.Queue[Any]) -> None:
        await asyncio.wait_for(presence.synced.wait(), TIMEOUT)
        while not queue.empty():
            queue.get_nowait()
        await ami.push(Event="DeviceStateChange", Privilege="call,all", Device="PJSIP/201", State="RINGING")
        assert await next_item(queue) == PresenceChange("PJSIP/201", Presence.RINGING, Presence.FREE,
                                                        "DeviceStateChange")
        await ami.push(Event="DeviceStateChange", Privilege="call,all", Device="PJSIP/201", State="INUSE")
        assert await next_item(queue) == PresenceChange("PJSIP/201", Presence.BUSY, Presence.RINGING,
                                                        "DeviceStateChange")
        # Untracked devices and a repeated state publish nothing.
        await ami.push(Event="DeviceStateChange", Device="PJSIP/trunk-operator", State="INUSE")
        await ami.push(Event="DeviceStateChange", Device="PJSIP/201", State="INUSE")
        await ami.push(Event="DeviceStateChange", Device="PJSIP/201", State="NOT_INUSE")
        assert await next_item(queue) == PresenceChange("PJSIP/201", Presence.FREE, Presence.BUSY,
                                                        "DeviceStateChange")
        # Phone 203 registers, then 201 loses its only contact.
        await ami.push(Event="ContactStatus", URI="sip:203@192.0.2.13:5060", ContactStatus="Created",
                       AOR="203", EndpointName="203")
        assert await next_item(queue) == PresenceChange("PJSIP/203", Presence.FREE, Presence.OFFLINE,
                                                        "ContactStatus")
        await ami.push(Event="ContactStatus", URI="sip:201@192.0.2.11:5060", ContactStatus="Unreachable",
                       AOR="201", EndpointName="201")
        assert await next_item(queue) == PresenceChange("PJSIP/201", Presence.OFFLINE, Presence.FREE,
                                                        "ContactStatus")
        await ami.push(Event="PeerStatus", ChannelType="PJSIP", Peer="PJSIP/202", PeerStatus="Unreachable")
        assert await next_item(queue) == PresenceChange("PJSIP/202", Presence.OFFLINE, Presence.BUSY, "PeerStatus")
        assert presence.snapshot() == {"PJSIP/201": Presence.OFFLINE, "PJSIP/202": Presence.OFFLINE,
                                       "PJSIP/203": Presence.FREE, "PJSIP/204": Presence.OFFLINE}
        assert queue.empty()

    run_with_ami(scenario, endpoints=DISPATCHERS, setup=three_dispatchers)


def test_when_the_connection_drops_then_it_reconnects_and_rereads_the_states() -> None:
    async def scenario(ami: FakeAmi, presence: AmiPresence, queue: asyncio.Queue[Any]) -> None:
        await asyncio.wait_for(presence.synced.wait(), TIMEOUT)
        while not queue.empty():
            queue.get_nowait()
        # While we are away, 201 picks up a call and 202 hangs up: no events reach us.
        ami.devices["PJSIP/201"] = "INUSE"
        ami.devices["PJSIP/202"] = "NOT_INUSE"
        await ami.drop()
        await until(lambda: not presence.connected)
        assert presence.snapshot()["PJSIP/201"] == Presence.FREE  # last known, until resynced

        await until(lambda: ami.logins == 2 and presence.synced.is_set())
        got = {await next_item(queue), await next_item(queue)}
        assert got == {PresenceChange("PJSIP/201", Presence.BUSY, Presence.FREE, "resync"),
                       PresenceChange("PJSIP/202", Presence.FREE, Presence.BUSY, "resync")}
        assert presence.connected is True
        assert [a["Action"] for a in ami.actions] == ["Login", "DeviceStateList"] * 2

        # Events flow again on the new connection.
        await ami.push(Event="DeviceStateChange", Device="PJSIP/202", State="RINGING")
        assert await next_item(queue) == PresenceChange("PJSIP/202", Presence.RINGING, Presence.FREE,
                                                        "DeviceStateChange")

    run_with_ami(scenario, endpoints=["PJSIP/201", "PJSIP/202"], setup=three_dispatchers)


def test_when_the_secret_is_wrong_then_no_presence_and_no_crash() -> None:
    async def scenario(ami: FakeAmi, presence: AmiPresence, queue: asyncio.Queue[Any]) -> None:
        await until(lambda: len(ami.actions) >= 1)
        manager = presence.manager
        assert manager is not None
        await until(lambda: manager.authenticated_future is None)  # the Login answer was read
        assert manager.authenticated is False
        assert ami.logins == 0
        assert presence.connected is False
        assert presence.snapshot() == {}
        assert queue.empty()

    run_with_ami(scenario, secret="wrong", endpoints=DISPATCHERS, setup=three_dispatchers)


def test_when_cdr_event_arrives_then_the_callback_gets_the_record() -> None:
    async def scenario(ami: FakeAmi, presence: AmiPresence, queue: asyncio.Queue[Any]) -> None:
        await asyncio.wait_for(presence.synced.wait(), TIMEOUT)
        while not queue.empty():
            queue.get_nowait()
        await ami.push(
            Event="Cdr", Privilege="cdr,all", AccountCode="", Source="79161234567", Destination="74950000001",
            DestinationContext="openads-from-trunk", CallerID='"" <79161234567>',
            Channel="PJSIP/trunk-operator-00000011", DestinationChannel="PJSIP/201-00000012",
            LastApplication="Dial", LastData="PJSIP/201&PJSIP/202,60,tT", StartTime="2026-11-25 14:03:07",
            AnswerTime="2026-11-25 14:03:15", EndTime="2026-11-25 14:05:00", Duration="113",
            BillableSeconds="105", Disposition="ANSWERED", AMAFlags="DOCUMENTATION",
            UniqueID="1764068587.17", UserField="/var/lib/openads/recordings/fallback/2026/11/1764068587.17.wav",
            LinkedID="1764068587.17", OpenadsDid="74950000001", OpenadsOrgId="3", OpenadsFallback="1",
            OpenadsDialStatus="ANSWER",
        )
        record = await next_item(queue)
        assert isinstance(record, CdrRecord)
        assert (record.unique_id, record.linked_id, record.source, record.destination) == (
            "1764068587.17", "1764068587.17", "79161234567", "74950000001")
        assert record.start == datetime(2026, 11, 25, 11, 3, 7)  # Moscow wall clock → UTC
        assert record.answer == datetime(2026, 11, 25, 11, 3, 15)
        assert record.end == datetime(2026, 11, 25, 11, 5, 0)
        assert (record.duration, record.billable_seconds, record.answered) == (113, 105, True)
        assert record.user_field == "/var/lib/openads/recordings/fallback/2026/11/1764068587.17.wav"
        assert (record.did, record.org_id, record.fallback) == ("74950000001", 3, True)
        assert (record.dial_status, record.voicemail) == ("ANSWER", "")
        assert record.destination_channel == "PJSIP/201-00000012"

    run_with_ami(scenario, endpoints=DISPATCHERS, setup=three_dispatchers)


# --- pure parts -----------------------------------------------------------------------------------


def test_device_states_map_to_four_presence_values() -> None:
    tracker = PresenceTracker()
    expected = {
        "NOT_INUSE": Presence.FREE, "RINGING": Presence.RINGING, "INUSE": Presence.BUSY, "BUSY": Presence.BUSY,
        "ONHOLD": Presence.BUSY, "RINGINUSE": Presence.BUSY, "UNAVAILABLE": Presence.OFFLINE,
        "INVALID": Presence.OFFLINE, "UNKNOWN": Presence.OFFLINE,
    }
    for i, (state, presence) in enumerate(expected.items()):
        tracker.apply({"Event": "DeviceStateChange", "Device": f"PJSIP/{200 + i}", "State": state})
        assert tracker.state(f"PJSIP/{200 + i}") == presence, state
    assert tracker.apply({"Event": "DeviceStateChange", "Device": "PJSIP/300", "State": "WHATEVER"}) is None
    assert tracker.apply({"Event": "Newchannel", "Channel": "PJSIP/201-00000001"}) is None


def test_endpoint_names() -> None:
    assert endpoint_of_device("PJSIP/201") == "PJSIP/201"
    assert endpoint_of_device("pjsip/201") == "PJSIP/201"
    assert endpoint_of_device("Custom:night") is None
    assert endpoint_of_device("Local/100@openads-dispatchers") is None
    assert endpoint_of_device("PJSIP/") is None


def test_a_phone_with_two_contacts_stays_online_until_both_are_gone() -> None:
    tracker = PresenceTracker(["PJSIP/201"])
    tracker.resync([{"Event": "DeviceStateChange", "Device": "PJSIP/201", "State": "UNAVAILABLE"}])
    for uri in ("sip:201@192.0.2.11:5060", "sip:201@192.0.2.99:5060"):
        tracker.apply({"Event": "ContactStatus", "EndpointName": "201", "URI": uri, "ContactStatus": "Created"})
    assert tracker.apply({"Event": "ContactStatus", "EndpointName": "201", "URI": "sip:201@192.0.2.99:5060",
                          "ContactStatus": "Removed"}) is None
    assert tracker.state("PJSIP/201") == Presence.FREE
    change = tracker.apply({"Event": "ContactStatus", "EndpointName": "201", "URI": "sip:201@192.0.2.11:5060",
                            "ContactStatus": "Removed"})
    assert change == PresenceChange("PJSIP/201", Presence.OFFLINE, Presence.FREE, "ContactStatus")


def test_cdr_without_answer_and_without_our_fields() -> None:
    record = parse_cdr({"Event": "Cdr", "UniqueID": "1.2", "Source": "79161234567", "Destination": "s",
                        "StartTime": "2026-11-25 14:03:07", "AnswerTime": "", "EndTime": "2026-11-25 14:04:07",
                        "Duration": "60", "BillableSeconds": "0", "Disposition": "NO ANSWER"},
                       ZoneInfo("Asia/Yekaterinburg"))
    assert record.answer is None and record.answered is False
    assert record.start == datetime(2026, 11, 25, 9, 3, 7)
    assert (record.linked_id, record.org_id, record.did, record.fallback) == ("1.2", None, "", False)


def test_when_the_fallback_hangup_handler_reports_then_the_callback_gets_a_fallback_end() -> None:
    """dialplan/extensions.conf [openads-fallback-end]: UserEvent(OpenadsFallbackEnd,...) on the
    caller's channel; AMI puts the channel's own headers (Uniqueid, Linkedid...) before ours."""
    async def scenario(ami: FakeAmi, presence: AmiPresence, queue: asyncio.Queue[Any]) -> None:
        await asyncio.wait_for(presence.synced.wait(), TIMEOUT)
        while not queue.empty():
            queue.get_nowait()
        channel = dict(Privilege="user,all", Channel="PJSIP/trunk-operator-00000011", ChannelState="6",
                       ChannelStateDesc="Up", CallerIDNum="79161234567", Context="openads-fallback-end",
                       Exten="s", Priority="1", Uniqueid="1764068587.17", Linkedid="1764068587.17")
        # Someone else's UserEvent: not ours, nothing reaches the callback.
        await ami.push(Event="UserEvent", **channel, UserEvent="SomethingElse", Foo="bar")
        await ami.push(Event="UserEvent", **channel, UserEvent="OpenadsFallbackEnd", DialStatus="NOANSWER",
                       AnsweredBy="", VMStatus="SUCCESS",
                       VMFile="/var/spool/asterisk/voicemail/openads/100/INBOX/msg0003",
                       Recording="/var/lib/openads/recordings/fallback/2026/11/1764068587.17.wav")
        end = await next_item(queue)
        assert end == FallbackEnd(
            unique_id="1764068587.17", linked_id="1764068587.17", dial_status="NOANSWER", answered_by="",
            vm_status="SUCCESS", vm_file="/var/spool/asterisk/voicemail/openads/100/INBOX/msg0003",
            recording="/var/lib/openads/recordings/fallback/2026/11/1764068587.17.wav")
        assert end.answered is False
        assert queue.empty()

    run_with_ami(scenario, endpoints=DISPATCHERS, setup=three_dispatchers)


def test_fallback_end_parsing() -> None:
    end = parse_fallback_end({"Event": "UserEvent", "UserEvent": "OpenadsFallbackEnd", "UniqueID": "1.5",
                              "LinkedID": "1.5", "DialStatus": "answer", "AnsweredBy": "PJSIP/202-0000001a",
                              "VMStatus": "", "VMFile": "", "Recording": ""})
    assert end is not None and end.answered and end.answered_by == "PJSIP/202-0000001a"
    assert parse_fallback_end({"Event": "UserEvent", "UserEvent": "Other", "UniqueID": "1.5"}) is None
    # Only the channel's own headers (a hand-written UserEvent without ours): still keyed right.
    end = parse_fallback_end({"Event": "UserEvent", "UserEvent": "OpenadsFallbackEnd", "Uniqueid": "1.6",
                              "Linkedid": "1.1"})
    assert end is not None and (end.unique_id, end.linked_id, end.dial_status) == ("1.6", "1.1", "")


def test_cdr_answered_at_is_the_epoch_the_answered_hook_set() -> None:
    record = parse_cdr({"Event": "Cdr", "UniqueID": "1.2", "OpenadsFallback": "1",
                        "OpenadsAnsweredAt": "1795604595", "StartTime": "2026-11-25 14:03:07"},
                       ZoneInfo("Europe/Moscow"))
    assert record.answered_at == datetime(2026, 11, 25, 11, 3, 15)  # UTC, whatever the server's zone
    assert parse_cdr({"Event": "Cdr", "UniqueID": "1.2", "OpenadsAnsweredAt": ""}).answered_at is None
