"""The heartbeat of `openads ari` for the panel's telephony status page (decision 0029).

Every `interval` seconds (ARI_STATUS_SECONDS, 5 by default) one `ari_status` row is written
(models/services/telephony_status.py `record_ari_status`), so the web process, which has neither
the ARI connection nor AMI, can show:

- the events WebSocket: connected or not, since when, the last error;
- AMI: configured, connected, since when;
- the operator trunk: its ARI endpoint state (`GET /endpoints`) and its registration (the last AMI
  `Registry` event; AMI replays none after a login, so "unknown" until one is seen);
- every endpoint's state: AMI presence when connected (free, ringing, busy, offline), else the ARI
  endpoint state (offline, or busy while it has channels), overlaid with what our own sessions ring
  or talk on (presence lags).

One `GET /endpoints` per beat while connected. A beat that fails is logged and the next one tries
again; at a clean stop a last row says "not connected".
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ari_app.client import AriError, AriUnavailable
from models.base import utcnow
from models.services.telephony_status import record_ari_status

if TYPE_CHECKING:
    from ari_app.app import AriApp

log = logging.getLogger(__name__)


def endpoint_state(ari_state: str | None, channels: int) -> str:
    """An endpoint's state from ARI alone: "offline", "busy" (it has channels), "free", or "unknown"."""
    state = (ari_state or "").lower()
    if state == "offline":
        return "offline"
    if state == "online":
        return "busy" if channels else "free"
    return "busy" if channels else "unknown"


class StatusPublisher:
    def __init__(self, app: AriApp, *, interval: float, trunk: str) -> None:
        self.app = app
        self.interval = interval
        self.trunk = trunk  # "trunk-operator": the pjsip.conf endpoint of the operator's trunk
        self.started_at = utcnow()
        self.beats = 0
        self.last_error: str | None = None

    def _ami(self) -> dict[str, Any]:
        presence = self.app.ctx.presence
        if presence is None:
            return {"ami_configured": False, "ami_connected": False, "ami_since": None}
        return {"ami_configured": True, "ami_connected": bool(presence.connected),
                "ami_since": getattr(presence, "connected_since", None)}

    def _registration(self) -> dict[str, Any]:
        registrations = getattr(self.app.ctx.presence, "registrations", None) or {}
        if not registrations:
            return {"registration": None, "registration_at": None, "detail": ""}
        latest = max(registrations.values(), key=lambda r: r.at)
        return {"registration": latest.status, "registration_at": latest.at.isoformat(),
                "detail": " ".join(x for x in (latest.username, latest.domain, latest.cause) if x)}

    async def collect(self) -> dict[str, Any]:
        """The row's values now."""
        app = self.app
        conn = app.connection.status
        values: dict[str, Any] = {
            "host": socket.gethostname()[:200], "pid": os.getpid(), "started_at": self.started_at,
            "interval_seconds": max(1, round(self.interval)), "ari_connected": bool(conn.healthy),
            "ari_since": conn.since, "ari_error": conn.last_error, **self._ami(),
        }
        endpoints: dict[str, str] = {}
        trunk = {"endpoint": f"PJSIP/{self.trunk}", "state": "unknown", **self._registration()}
        if conn.connected:
            try:
                listed = await app.ari.list_endpoints()
            except (AriError, AriUnavailable) as exc:
                log.info("status: GET /endpoints failed: %s", exc)
                listed = []
            for ep in listed:
                name = f"{ep.technology}/{ep.resource}"
                endpoints[name] = endpoint_state(ep.state, len(ep.channel_ids))
                if name == trunk["endpoint"]:
                    trunk["state"] = (ep.state or "unknown").lower()
        presence = app.ctx.presence
        from_ami: set[str] = set()
        if presence is not None and presence.connected and hasattr(presence, "snapshot"):
            for name, state in presence.snapshot().items():
                if name != trunk["endpoint"]:
                    endpoints[name] = str(getattr(state, "value", state))
                    from_ami.add(name)
        # Our own legs: ARI counts a ringing leg as a channel ("busy"), and AMI may lag behind.
        for name in app.ringing_endpoints():
            if name not in from_ami or endpoints.get(name) in ("free", "unknown"):
                endpoints[name] = "ringing"
        for name in app.talking_endpoints():
            endpoints[name] = "busy"
        values["endpoints"] = endpoints
        values["trunk"] = trunk
        return values

    async def publish_once(self, *, stopping: bool = False, now: datetime | None = None) -> None:
        values = await self.collect()
        if stopping:
            values.update(ari_connected=False, ari_since=utcnow(), ari_error="openads ari остановлен",
                          ami_connected=False, endpoints={})
        name = self.app.app_name
        await self.app.db.write(lambda s: record_ari_status(s, app=name, values=values, now=now))
        self.beats += 1

    async def run(self) -> None:
        while True:
            try:
                await self.publish_once()
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = repr(exc)
                log.warning("status: heartbeat not written: %r", exc)
            await asyncio.sleep(self.interval)
