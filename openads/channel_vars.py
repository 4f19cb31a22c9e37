"""Every Asterisk variable OpenADS reads or writes, in one place.

The ARI app, the FastAGI routes and the dialplan templates (`dialplan/*.conf`) use these names
and nothing else; `tests/dialplan/` checks that every `${OPENADS_*}` in the dialplan is listed
here. Names are prefixed `OPENADS_` so they never collide with Asterisk's own (`DIALSTATUS`,
`STASISSTATUS`, `AGISTATUS`, `MIXMONITOR_FILENAME`).

Two kinds:
- `channel`: set on one call's channel (by the dialplan, the ARI app or an AGI route) and
  inherited by nothing unless the name is written with a leading `_`/`__` in the dialplan;
- `global`: set once in `[globals]` of `dialplan/extensions.conf` by the telecom admin
  (placeholders, documented in docs/telephony.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelVar:
    name: str
    kind: str  # "channel" or "global"
    set_by: str
    description: str


class AgiStatus(enum.StrEnum):
    """Values of `OPENADS_AGI_STATUS`, set by every FastAGI route; the dialplan branches on them."""

    OK = "OK"  # the caller was found: name and ids are set
    UNKNOWN = "UNKNOWN"  # the organization is known, the caller's number is not
    NO_ORG = "NO_ORG"  # the dialled number (DID) is no organization's hotline
    FAILED = "FAILED"  # the route failed (DB down, timeout, bug): the call goes on without data


# --- set on a call's channel --------------------------------------------------------------------

ORG_ID = "OPENADS_ORG_ID"
HOUSE_ID = "OPENADS_HOUSE_ID"
PREMISE_ID = "OPENADS_PREMISE_ID"
RESIDENT_ID = "OPENADS_RESIDENT_ID"
RESIDENT_IDS = "OPENADS_RESIDENT_IDS"
CALLER = "OPENADS_CALLER"
DID = "OPENADS_DID"
AGI_STATUS = "OPENADS_AGI_STATUS"
CALL_ID = "OPENADS_CALL_ID"
FLOW = "OPENADS_FLOW"
RECORDING = "OPENADS_RECORDING"
FALLBACK = "OPENADS_FALLBACK"
WATCHDOG = "OPENADS_WATCHDOG"
OUTBOUND_CALLERID = "OPENADS_OUTBOUND_CALLERID"

# --- dialplan globals (placeholders the telecom admin fills in) --------------------------------

AGI_HOST = "OPENADS_AGI_HOST"
AGI_PORT = "OPENADS_AGI_PORT"
TRUNK = "OPENADS_TRUNK"
DISPATCHERS = "OPENADS_DISPATCHERS"
RING_TIMEOUT = "OPENADS_RING_TIMEOUT"
RECORDINGS_DIR = "OPENADS_RECORDINGS_DIR"
VOICEMAIL_BOX = "OPENADS_VOICEMAIL_BOX"
DEFAULT_CALLERID = "OPENADS_DEFAULT_CALLERID"


ALL: dict[str, ChannelVar] = {
    v.name: v
    for v in (
        ChannelVar(ORG_ID, "channel", "AGI lookup_caller, ARI app",
                   "Organization id (organizations.id) found by the dialled hotline number."),
        ChannelVar(HOUSE_ID, "channel", "AGI lookup_caller",
                   "House id of the matched resident(s); empty when unknown or when they live in different houses."),
        ChannelVar(PREMISE_ID, "channel", "AGI lookup_caller",
                   "Premise id of the matched resident(s); empty when unknown or ambiguous."),
        ChannelVar(RESIDENT_ID, "channel", "AGI lookup_caller",
                   "Resident id when exactly one resident has the caller's number; empty otherwise."),
        ChannelVar(RESIDENT_IDS, "channel", "AGI lookup_caller",
                   "Comma-separated ids of every resident with the caller's number (a shared landline: several)."),
        ChannelVar(CALLER, "channel", "AGI lookup_caller",
                   "The caller's number in E.164 (+79161234567); empty when the network withheld it."),
        ChannelVar(DID, "channel", "dialplan [openads-from-trunk]",
                   "The dialled hotline number as the operator sent it (the extension in from-trunk)."),
        ChannelVar(AGI_STATUS, "channel", "every FastAGI route",
                   "OK, UNKNOWN, NO_ORG or FAILED (see AgiStatus); the dialplan branches on it."),
        ChannelVar(CALL_ID, "channel", "ARI app",
                   "Our call id (calls.id): lets the ARI app re-attach a call in progress after a reconnect."),
        ChannelVar(FLOW, "channel", "ARI app",
                   "The ARI call flow handling the channel: inbound, callback or robot."),
        ChannelVar(RECORDING, "channel", "dialplan fallback, ARI app",
                   "Path of the call's recording (MixMonitor file in the fallback); also copied to CDR(userfield)."),
        ChannelVar(FALLBACK, "channel", "dialplan [openads-fallback]",
                   "1 when the call was handled by the dialplan because the ARI app was not connected."),
        ChannelVar(WATCHDOG, "channel", "`openads ari-watchdog`",
                   "1 on a caller the watchdog moved from the dead ARI app to [openads-fallback]: the greeting "
                   "was heard already, the dispatchers are rung at once."),
        ChannelVar(OUTBOUND_CALLERID, "channel", "ARI app (originate variables)",
                   "Caller id (the organization's hotline, E.164) presented on an outbound call through the trunk."),
        ChannelVar(AGI_HOST, "global", "telecom admin, [globals]",
                   "Host of the FastAGI server (`openads agi`, AGI_HOST in .env)."),
        ChannelVar(AGI_PORT, "global", "telecom admin, [globals]",
                   "Port of the FastAGI server (AGI_PORT in .env, default 4573)."),
        ChannelVar(TRUNK, "global", "telecom admin, [globals]",
                   "Name of the operator's pjsip endpoint (dialplan/providers/<operator>.conf), e.g. trunk-operator."),
        ChannelVar(DISPATCHERS, "global", "telecom admin, [globals]",
                   "Dial string of dispatchers' phones rung by the fallback, e.g. PJSIP/201&PJSIP/202 (2XX: 101-104 and 112 are emergency numbers)."),
        ChannelVar(RING_TIMEOUT, "global", "telecom admin, [globals]",
                   "Seconds the fallback rings dispatchers before offering voicemail (at most 300, ПП 416)."),
        ChannelVar(RECORDINGS_DIR, "global", "telecom admin, [globals]",
                   "Directory for fallback recordings; the same as OPENADS_RECORDINGS_DIR in .env."),
        ChannelVar(VOICEMAIL_BOX, "global", "telecom admin, [globals]",
                   "Voicemail box (voicemail.conf) for messages left when nobody answers, e.g. 100@openads."),
        ChannelVar(DEFAULT_CALLERID, "global", "telecom admin, [globals]",
                   "Hotline number presented on outbound calls when the originator set none."),
    )
}
