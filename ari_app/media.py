"""Dial strings, ids, prompt names and recording names of the ARI app, in one place.

Recordings: Asterisk writes a recording into *its own* recording directory
(`<astspooldir>/recording/<name>.<format>`), possibly on another host, and ARI never returns a
file path (traces README). So the app records under a flat name it chooses
(`openads-call-<call_id>`, `openads-vm-<call_id>`), downloads the file with
`GET /recordings/stored/{name}/file` when the recording is finished, writes it to
`<recordings dir>/<org_id>/<yyyy>/<mm>/<call_id>.wav` (`models.recording.recording_relpath`), and
then deletes the stored copy (`DELETE /recordings/stored/{name}`). One code path works for a
local and a remote Asterisk, and a name never contains a path (ARI path segments).
"""

from __future__ import annotations

import uuid
import wave
from dataclasses import dataclass
from pathlib import Path

from models.rules.phones import try_e164

# Prompts (dialplan/sounds/README.md: our own prompts live in `<sounds>/ru/openads/<name>.wav`).
# The incident's own text (`Incident.announcement`) is spoken through TTS when speech is
# configured (ari_app.flows.inbound); this recorded prompt says "there is an accident in your
# house, we know and are working on it" when it is not, or when TTS fails.
PROMPT_INCIDENT = "sound:openads/incident"
PROMPT_GREETING = "sound:openads/greeting"
PROMPT_VOICEMAIL_OFFER = "sound:openads/voicemail-offer"
PROMPT_VOICEMAIL_THANKS = "sound:openads/voicemail-thanks"
PROMPT_CALLBACK_INTRO = "sound:openads/callback-intro"  # "Вы звонили в аварийно-диспетчерскую службу, ..."
# The wait limit passed and the organization takes no voice messages: "we will call you back".
PROMPT_ALL_BUSY = "sound:openads/all-busy"
PROMPT_TEST_CALL = "sound:openads/test-call"  # an administrator's test call to a dispatcher's phone

DEFAULT_OUTBOUND_ENDPOINT = "PJSIP/{number}@{trunk}"
# The operator trunk's pjsip.conf endpoint: every dialplan/providers/*.conf names it so, and
# dialplan/extensions.conf dials it as ${OPENADS_TRUNK}.
DEFAULT_TRUNK = "trunk-operator"


def queue_bridge_id(org_id: int) -> str:
    """The organization's holding bridge: deterministic, so reconcile finds it after a restart."""
    return f"openads-queue-{org_id}"


CALL_BRIDGE_PREFIX = "openads-call-"


def call_bridge_id(call_id: int) -> str:
    """The mixing bridge of one conversation."""
    return f"{CALL_BRIDGE_PREFIX}{call_id}"


def call_of_bridge(bridge_id: str) -> int | None:
    """`openads-call-<call>` → the call's id; None for any other bridge."""
    if not bridge_id.startswith(CALL_BRIDGE_PREFIX):
        return None
    tail = bridge_id[len(CALL_BRIDGE_PREFIX):]
    return int(tail) if tail.isdigit() else None


def conversation_recording_name(call_id: int) -> str:
    return f"openads-call-{call_id}"


def voicemail_recording_name(call_id: int) -> str:
    return f"openads-vm-{call_id}"


def new_channel_id() -> str:
    """An id for an originated leg, chosen before the originate so it can be claimed first."""
    return f"openads-{uuid.uuid4().hex}"


def new_playback_id() -> str:
    return f"openads-pb-{uuid.uuid4().hex}"


# Prompts played on a caller's channel have ids the watchdog can name without the app: the channel
# id and the prompt's number in the flow (1, 2, ...). A prompt playing holds the channel's Stasis
# control queue (a `continue` waits behind it), so when `openads ari` dies the watchdog stops it first.
CHANNEL_PROMPTS_MAX = 12


def channel_playback_id(channel_id: str, seq: int) -> str:
    return f"openads-pb-{channel_id}-{seq}"


@dataclass(frozen=True)
class OutboundDial:
    """How a resident is reached through the operator's trunk.

    `template` takes `{number}` (digits, 7XXXXXXXXXX), `{e164}` (+7XXXXXXXXXX) and `{trunk}`:
    `PJSIP/{number}@{trunk}` dials the trunk endpoint directly; `Local/{number}@openads-outbound`
    goes through the dialplan's outbound context (dialplan/extensions.conf).
    """

    template: str = DEFAULT_OUTBOUND_ENDPOINT
    trunk: str = DEFAULT_TRUNK

    def endpoint(self, phone: str) -> str:
        e164 = try_e164(phone)
        if e164 is None:
            raise ValueError(f"not a callable phone number: {phone!r}")
        return self.template.format(number=e164.lstrip("+"), e164=e164, trunk=self.trunk)

    def caller_id(self, hotline: str | None) -> str | None:
        """The hotline as the trunk presents it: digits only (7XXXXXXXXXX), as Russian operators
        expect it; the direct PJSIP dial does not pass the dialplan's FILTER()."""
        digits = "".join(ch for ch in hotline or "" if ch.isdigit())
        return digits or None


def caller_id(number: str | None, name: str = "") -> str | None:
    """ARI's `callerId` parameter: `"Name" <number>`, or the number alone."""
    if not number:
        return None
    clean = name.replace('"', "").strip()
    return f'"{clean}" <{number}>' if clean else number


def endpoint_of_channel_name(name: str) -> str | None:
    """`PJSIP/disp1-0000002a` → `PJSIP/disp1` (the endpoint as settings and presence name it)."""
    tech, sep, rest = name.partition("/")
    if not sep or not rest:
        return None
    resource = rest.rsplit("-", 1)[0] if "-" in rest else rest
    return f"{tech}/{resource}"


def wav_seconds(path: Path) -> float | None:
    """The length of a WAV file from its own header (frames / rate), or None when it is missing or
    is no PCM WAV Python's `wave` reads (a file cut short, another format such as WAV49). The
    dialplan fallback's MixMonitor file starts when the fallback answers the caller, so its length
    is the recording's, not the conversation's the CDR counts (issue 9 C3: 27.8 s stored as 8 s)."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, frames = w.getframerate(), w.getnframes()
    except (OSError, EOFError, wave.Error):
        return None
    return frames / rate if rate > 0 else None
