"""Thin typed ARI REST client (httpx), written against Asterisk 20/22 `rest-api/api-docs`.

Every method is one ARI operation; its docstring names the Swagger nickname. Paths, HTTP methods
and parameter names are exactly those of the api-docs (checked by tests/ari_app/test_client.py
against `ari-api-docs/*.json`), so the same calls work on a real Asterisk and on the emulator.

Decision and reasons: docs/decisions/0006-ari-client.md.

Errors: any non-2xx answer is an `AriError` (subclass by status: `AriNotFound` 404 — on a channel it
means the caller has gone —, `AriConflict` 409, `AriInvalid` 400/422, `AriServerError` 5xx);
a transport failure (refused, timeout, DNS) is `AriUnavailable`.

Keep-alive: Asterisk's HTTP server closes a connection idle for `session_keep_alive` (http.conf,
15000 ms by default), so idle pooled connections are dropped after `KEEPALIVE_SECONDS` (10 s), before
Asterisk does. A request that still races the server's close on a reused connection fails before any
answer (`RemoteProtocolError` "Server disconnected", `ReadError`/`WriteError` on the dead socket): an
idempotent one (GET, DELETE) is sent once more on a fresh connection (`RETRY_METHODS`). A POST is never
sent twice (an originate or a record could happen twice); it fails as `AriUnavailable`. A DELETE retried
after Asterisk did carry out the first one answers 404, which the callers already read as "gone".
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
# Requests in flight at once (and connections kept open). A burst of calls queues on our semaphore
# rather than in httpcore's pool, whose every request and response rescans all its connections and
# queued requests (a pool of 100 connections costs milliseconds per request); a few keep-alive
# connections carry any load a local Asterisk answers in about a millisecond.
DEFAULT_MAX_CONNECTIONS = 6
# Shorter than Asterisk's http.conf `session_keep_alive` (15 s by default): we drop an idle connection
# before the server closes it under us.
KEEPALIVE_SECONDS = 10.0
# Methods sent once more when the connection broke before an answer came (see the module docstring).
RETRY_METHODS = frozenset({"GET", "DELETE"})
# Failures of a connection that was already open (a kept-alive one the server closed): no answer came.
# A ConnectError is not among them: a fresh connection was refused, and at once again it would be too.
STALE_CONNECTION_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError,
)


# --- typed results -------------------------------------------------------------------------------
# Models follow the api-docs models; only the id is mandatory, every other field has a default, and
# unknown fields are kept (`extra="allow"`), so a newer Asterisk adding fields never breaks parsing.


class AriModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class CallerId(AriModel):
    name: str = ""
    number: str = ""


class DialplanCEP(AriModel):
    context: str = ""
    exten: str = ""
    priority: int = 0
    app_name: str = ""
    app_data: str = ""


class Channel(AriModel):
    id: str
    name: str = ""
    state: str = ""
    protocol_id: str = ""
    caller: CallerId = Field(default_factory=CallerId)
    connected: CallerId = Field(default_factory=CallerId)
    accountcode: str = ""
    dialplan: DialplanCEP | None = None
    creationtime: str = ""
    language: str = ""
    channelvars: dict[str, Any] | None = None


class Bridge(AriModel):
    id: str
    technology: str = ""
    bridge_type: str = ""
    bridge_class: str = ""
    creator: str = ""
    name: str = ""
    channels: list[str] = Field(default_factory=list)
    creationtime: str = ""


class Playback(AriModel):
    id: str
    media_uri: str = ""
    target_uri: str = ""
    language: str = ""
    state: str = ""


class LiveRecording(AriModel):
    name: str
    format: str = ""
    target_uri: str = ""
    state: str = ""
    duration: int | None = None
    talking_duration: int | None = None
    silence_duration: int | None = None
    cause: str | None = None


class StoredRecording(AriModel):
    name: str
    format: str = ""


class Endpoint(AriModel):
    technology: str
    resource: str
    state: str | None = None
    channel_ids: list[str] = Field(default_factory=list)


class Application(AriModel):
    name: str
    channel_ids: list[str] = Field(default_factory=list)
    bridge_ids: list[str] = Field(default_factory=list)
    endpoint_ids: list[str] = Field(default_factory=list)
    device_names: list[str] = Field(default_factory=list)


def parse_ari_time(value: str) -> datetime:
    """`2026-11-25T20:22:21.923+0000` (ARI's timestamp/creationtime format) → naive UTC datetime."""
    parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    return parsed.astimezone(UTC).replace(tzinfo=None)


# --- errors --------------------------------------------------------------------------------------


class AriError(Exception):
    """Asterisk answered with a non-2xx status. `message` is the body's `message` (or `error`,
    which originate failures use: 500 `{"error": "Allocation failed"}`)."""

    error_id = "asterisk-ari-error"

    def __init__(self, status: int, message: str, method: str, path: str) -> None:
        super().__init__(f"ARI {method} {path} -> {status}: {message}")
        self.status = status
        self.message = message
        self.method = method
        self.path = path


class AriNotFound(AriError):
    """404: the channel/bridge/playback/recording does not exist (a channel: the caller has gone)."""

    error_id = "asterisk-ari-not-found"


class AriConflict(AriError):
    """409: state conflict (channel not in Stasis, recording exists, bridge not playing music)."""

    error_id = "asterisk-ari-conflict"


class AriInvalid(AriError):
    """400/422: bad parameters (addChannel of an unknown channel is 400, of a non-Stasis one 422)."""

    error_id = "asterisk-ari-invalid"


class AriServerError(AriError):
    """5xx: Asterisk failed (originate to an unregistered endpoint: 500 "Allocation failed")."""

    error_id = "asterisk-ari-server-error"


class AriUnavailable(Exception):
    """ARI could not be reached at all (connection refused, timeout, DNS)."""

    error_id = "asterisk-ari-unreachable"

    def __init__(self, method: str, path: str, reason: str) -> None:
        super().__init__(f"ARI {method} {path} unreachable: {reason}")
        self.method = method
        self.path = path
        self.reason = reason


def _error_class(status: int) -> type[AriError]:
    if status == 404:
        return AriNotFound
    if status == 409:
        return AriConflict
    if status in (400, 422):
        return AriInvalid
    if status >= 500:
        return AriServerError
    return AriError


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.text.strip() or response.reason_phrase


# --- the client ----------------------------------------------------------------------------------

M = TypeVar("M", bound=AriModel)
Params = Mapping[str, str | int | bool | None]


def rest_base_url(ari_url: str) -> str:
    """`ARI_URL` may be given with or without the `/ari` suffix: http://host:8088 or http://host:8088/ari."""
    url = ari_url.rstrip("/")
    return url if url.endswith("/ari") else url + "/ari"


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The `Authorization: Basic` header Asterisk's ARI checks first (res_ari.c `authenticate_user`), on
    REST requests and on the events WebSocket's handshake alike: the password never goes in a URL."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def _record_params(
    name: str, format: str, max_duration_seconds: int | None, max_silence_seconds: int | None,
    if_exists: str | None, beep: bool | None, terminate_on: str | None,
) -> dict[str, Any]:
    """The query of a channel's and a bridge's `record`: both take the same parameters."""
    return {
        "name": name,
        "format": format,
        "maxDurationSeconds": max_duration_seconds,
        "maxSilenceSeconds": max_silence_seconds,
        "ifExists": if_exists,
        "beep": beep,
        "terminateOn": terminate_on,
    }

def _seg(value: str) -> str:
    """One path segment, percent-encoded (recording names are chosen by us, ids by Asterisk)."""
    return quote(value, safe="")


def _query(params: Params) -> dict[str, str]:
    """Drop unset parameters; booleans as `true`/`false` (what Asterisk's parser accepts)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


class AriClient:
    """Async ARI REST client. One instance per process; call `aclose()` at shutdown.

    `transport` is for tests (httpx.MockTransport) and the in-process emulator.
    """

    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        app: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.base_url = rest_base_url(base_url)
        self.app = app
        # Basic auth as a fixed header: the same bytes httpx's auth flow would compute per request.
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=basic_auth(user, password),
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                                keepalive_expiry=KEEPALIVE_SECONDS),
        )
        self._slots = asyncio.Semaphore(max_connections)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- plumbing --

    async def _request(
        self,
        method: str,
        path: str,
        params: Params | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        started = time.monotonic()
        query = _query(params or {})
        queued_ms = 0.0
        try:
            async with self._slots:
                queued_ms = (time.monotonic() - started) * 1000
                try:
                    response = await self._http.request(method, path, params=query, json=body)
                except STALE_CONNECTION_ERRORS as exc:
                    if method not in RETRY_METHODS:
                        raise
                    log.info("ARI %s %s: connection broke (%r); sending it again", method, path, exc)
                    response = await self._http.request(method, path, params=query, json=body)
        except httpx.TransportError as exc:
            log.warning("ARI %s %s unreachable: %r", method, path, exc)
            raise AriUnavailable(method, path, repr(exc)) from exc
        elapsed_ms = (time.monotonic() - started) * 1000
        if response.is_success:
            # The wait for one of the connections apart: queueing here, not Asterisk, under a burst.
            log.debug("ARI %s %s -> %s (%.1f ms, %.1f ms of it waiting for a connection)", method, path,
                      response.status_code, elapsed_ms, queued_ms)
            return response
        message = _error_message(response)
        log.info("ARI %s %s -> %s %s (%.1f ms)", method, path, response.status_code, message, elapsed_ms)
        raise _error_class(response.status_code)(response.status_code, message, method, path)

    async def _one(self, model: type[M], method: str, path: str, params: Params | None = None,
                   body: Mapping[str, Any] | None = None) -> M:
        response = await self._request(method, path, params, body)
        return model.model_validate(response.json())

    async def _many(self, model: type[M], path: str) -> list[M]:
        response = await self._request("GET", path)
        return [model.model_validate(item) for item in response.json()]

    async def _none(self, method: str, path: str, params: Params | None = None,
                    body: Mapping[str, Any] | None = None) -> None:
        await self._request(method, path, params, body)

    # -- channels --

    async def list_channels(self) -> list[Channel]:
        """`GET /channels` (list): every active channel, also those outside Stasis."""
        return await self._many(Channel, "/channels")

    async def get_channel(self, channel_id: str) -> Channel:
        """`GET /channels/{channelId}` (get)."""
        return await self._one(Channel, "GET", f"/channels/{_seg(channel_id)}")

    async def originate(
        self,
        endpoint: str,
        *,
        app: str | None = None,
        app_args: str | None = None,
        caller_id: str | None = None,
        timeout: int | None = None,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """`POST /channels` (originate) into our Stasis app (`app` defaults to this client's app).

        Asterisk answers 200 with the new channel (state Down) at once; StasisStart for it comes
        only after it is answered. Pass `channel_id` to know the id before any event arrives.
        Variables go in the JSON body `{"variables": {...}}` (they produce no ChannelVarset).
        Failure to allocate (unregistered/unknown endpoint) is a 500 `AriServerError`.
        """
        params: dict[str, str | int | bool | None] = {
            "endpoint": endpoint,
            "app": app or self.app,
            "appArgs": app_args,
            "callerId": caller_id,
            "timeout": timeout,
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "originator": originator,
        }
        body = {"variables": dict(variables)} if variables else None
        return await self._one(Channel, "POST", "/channels", params, body)

    async def answer(self, channel_id: str) -> None:
        """`POST /channels/{channelId}/answer` (answer)."""
        await self._none("POST", f"/channels/{_seg(channel_id)}/answer")

    async def hangup(self, channel_id: str, *, reason: str | None = None) -> None:
        """`DELETE /channels/{channelId}` (hangup); `reason` is one of the api-docs values
        (normal, busy, congestion, no_answer, ...)."""
        await self._none("DELETE", f"/channels/{_seg(channel_id)}", {"reason": reason})

    async def ring(self, channel_id: str) -> None:
        """`POST /channels/{channelId}/ring` (ring): indicate ringing to the caller."""
        await self._none("POST", f"/channels/{_seg(channel_id)}/ring")

    async def ring_stop(self, channel_id: str) -> None:
        """`DELETE /channels/{channelId}/ring` (ringStop)."""
        await self._none("DELETE", f"/channels/{_seg(channel_id)}/ring")

    async def play(
        self,
        channel_id: str,
        media: str,
        *,
        playback_id: str | None = None,
        lang: str | None = None,
    ) -> Playback:
        """`POST /channels/{channelId}/play` (play) → 201 Playback. Give `playback_id` and claim
        it before the call: PlaybackStarted may arrive before the response."""
        params = {"media": media, "playbackId": playback_id, "lang": lang}
        return await self._one(Playback, "POST", f"/channels/{_seg(channel_id)}/play", params)

    async def record(
        self,
        channel_id: str,
        name: str,
        *,
        format: str = "wav",
        max_duration_seconds: int | None = None,
        max_silence_seconds: int | None = None,
        if_exists: str | None = None,
        beep: bool | None = None,
        terminate_on: str | None = None,
    ) -> LiveRecording:
        """`POST /channels/{channelId}/record` (record) → 201 LiveRecording.
        `if_exists`: fail (Asterisk's default, 409 when the name exists) | overwrite | append;
        `terminate_on`: none | any | * | #."""
        params = _record_params(name, format, max_duration_seconds, max_silence_seconds, if_exists, beep, terminate_on)
        return await self._one(LiveRecording, "POST", f"/channels/{_seg(channel_id)}/record", params)

    async def get_channel_var(self, channel_id: str, variable: str) -> str:
        """`GET /channels/{channelId}/variable` (getChannelVar) → the value (404 if unset)."""
        response = await self._request("GET", f"/channels/{_seg(channel_id)}/variable", {"variable": variable})
        return str(response.json().get("value", ""))

    async def set_channel_var(self, channel_id: str, variable: str, value: str | None) -> None:
        """`POST /channels/{channelId}/variable` (setChannelVar); emits ChannelVarset."""
        await self._none("POST", f"/channels/{_seg(channel_id)}/variable", {"variable": variable, "value": value})

    async def continue_in_dialplan(
        self,
        channel_id: str,
        *,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> None:
        """`POST /channels/{channelId}/continue` (continueInDialplan): leave Stasis (StasisEnd
        follows); without arguments the channel continues after its Stasis() priority."""
        params = {"context": context, "extension": extension, "priority": priority, "label": label}
        await self._none("POST", f"/channels/{_seg(channel_id)}/continue", params)

    async def start_moh(self, channel_id: str, *, moh_class: str | None = None) -> None:
        """`POST /channels/{channelId}/moh` (startMoh)."""
        await self._none("POST", f"/channels/{_seg(channel_id)}/moh", {"mohClass": moh_class})

    async def stop_moh(self, channel_id: str) -> None:
        """`DELETE /channels/{channelId}/moh` (stopMoh)."""
        await self._none("DELETE", f"/channels/{_seg(channel_id)}/moh")

    async def send_dtmf(
        self,
        channel_id: str,
        dtmf: str,
        *,
        before: int | None = None,
        between: int | None = None,
        duration: int | None = None,
        after: int | None = None,
    ) -> None:
        """`POST /channels/{channelId}/dtmf` (sendDTMF); times in ms."""
        params = {"dtmf": dtmf, "before": before, "between": between, "duration": duration, "after": after}
        await self._none("POST", f"/channels/{_seg(channel_id)}/dtmf", params)

    # -- bridges --

    async def list_bridges(self) -> list[Bridge]:
        """`GET /bridges` (list)."""
        return await self._many(Bridge, "/bridges")

    async def get_bridge(self, bridge_id: str) -> Bridge:
        """`GET /bridges/{bridgeId}` (get)."""
        return await self._one(Bridge, "GET", f"/bridges/{_seg(bridge_id)}")

    async def create_bridge(
        self,
        *,
        type: str = "mixing",
        bridge_id: str | None = None,
        name: str | None = None,
    ) -> Bridge:
        """`POST /bridges` (create) → 200 Bridge. `type` is a comma list: mixing, holding,
        dtmf_events, proxy_media, video_sfu, video_single. A plain `mixing` bridge of two PJSIP
        channels goes native_rtp and then reports no DTMF: use `mixing,dtmf_events` to get it."""
        params = {"type": type, "bridgeId": bridge_id, "name": name}
        return await self._one(Bridge, "POST", "/bridges", params)

    async def destroy_bridge(self, bridge_id: str) -> None:
        """`DELETE /bridges/{bridgeId}` (destroy)."""
        await self._none("DELETE", f"/bridges/{_seg(bridge_id)}")

    async def add_channel(
        self,
        bridge_id: str,
        channel_id: str,
        *,
        role: str | None = None,
        absorb_dtmf: bool | None = None,
        mute: bool | None = None,
    ) -> None:
        """`POST /bridges/{bridgeId}/addChannel` (addChannel). A channel already in another
        bridge is moved. Unknown channel → 400, channel not in Stasis → 422."""
        params = {"channel": channel_id, "role": role, "absorbDTMF": absorb_dtmf, "mute": mute}
        await self._none("POST", f"/bridges/{_seg(bridge_id)}/addChannel", params)

    async def remove_channel(self, bridge_id: str, channel_id: str) -> None:
        """`POST /bridges/{bridgeId}/removeChannel` (removeChannel); not in the bridge → 422."""
        await self._none("POST", f"/bridges/{_seg(bridge_id)}/removeChannel", {"channel": channel_id})

    async def start_bridge_moh(self, bridge_id: str, *, moh_class: str | None = None) -> None:
        """`POST /bridges/{bridgeId}/moh` (startMoh; the path is `/moh`, not `/startMoh`)."""
        await self._none("POST", f"/bridges/{_seg(bridge_id)}/moh", {"mohClass": moh_class})

    async def stop_bridge_moh(self, bridge_id: str) -> None:
        """`DELETE /bridges/{bridgeId}/moh` (stopMoh); 409 once the last channel left the bridge."""
        await self._none("DELETE", f"/bridges/{_seg(bridge_id)}/moh")

    async def play_bridge(
        self,
        bridge_id: str,
        media: str,
        *,
        playback_id: str | None = None,
        lang: str | None = None,
    ) -> Playback:
        """`POST /bridges/{bridgeId}/play` (play) → 201 Playback (language defaults to "en":
        pass `lang` for Russian prompts)."""
        params = {"media": media, "playbackId": playback_id, "lang": lang}
        return await self._one(Playback, "POST", f"/bridges/{_seg(bridge_id)}/play", params)

    async def record_bridge(
        self,
        bridge_id: str,
        name: str,
        *,
        format: str = "wav",
        max_duration_seconds: int | None = None,
        max_silence_seconds: int | None = None,
        if_exists: str | None = None,
        beep: bool | None = None,
        terminate_on: str | None = None,
    ) -> LiveRecording:
        """`POST /bridges/{bridgeId}/record` (record) → 201 LiveRecording."""
        params = _record_params(name, format, max_duration_seconds, max_silence_seconds, if_exists, beep, terminate_on)
        return await self._one(LiveRecording, "POST", f"/bridges/{_seg(bridge_id)}/record", params)

    # -- playbacks --

    async def get_playback(self, playback_id: str) -> Playback:
        """`GET /playbacks/{playbackId}` (get)."""
        return await self._one(Playback, "GET", f"/playbacks/{_seg(playback_id)}")

    async def stop_playback(self, playback_id: str) -> None:
        """`DELETE /playbacks/{playbackId}` (stop); PlaybackFinished follows with state `done`."""
        await self._none("DELETE", f"/playbacks/{_seg(playback_id)}")

    # -- recordings --

    async def get_live_recording(self, name: str) -> LiveRecording:
        """`GET /recordings/live/{recordingName}` (getLive)."""
        return await self._one(LiveRecording, "GET", f"/recordings/live/{_seg(name)}")

    async def stop_live_recording(self, name: str) -> None:
        """`POST /recordings/live/{recordingName}/stop` (stop): keep the file; RecordingFinished follows."""
        await self._none("POST", f"/recordings/live/{_seg(name)}/stop")

    async def get_stored_recording(self, name: str) -> StoredRecording:
        """`GET /recordings/stored/{recordingName}` (getStored) → `{name, format}` only."""
        return await self._one(StoredRecording, "GET", f"/recordings/stored/{_seg(name)}")

    async def get_stored_recording_file(self, name: str) -> bytes:
        """`GET /recordings/stored/{recordingName}/file` (getStoredFile) → the raw audio."""
        response = await self._request("GET", f"/recordings/stored/{_seg(name)}/file")
        return response.content

    async def delete_stored_recording(self, name: str) -> None:
        """`DELETE /recordings/stored/{recordingName}` (deleteStored)."""
        await self._none("DELETE", f"/recordings/stored/{_seg(name)}")

    # -- endpoints --

    async def list_endpoints(self) -> list[Endpoint]:
        """`GET /endpoints` (list)."""
        return await self._many(Endpoint, "/endpoints")

    async def get_endpoint(self, tech: str, resource: str) -> Endpoint:
        """`GET /endpoints/{tech}/{resource}` (get), e.g. ("PJSIP", "disp1")."""
        return await self._one(Endpoint, "GET", f"/endpoints/{_seg(tech)}/{_seg(resource)}")

    # -- applications --

    async def get_application(self, name: str | None = None) -> Application:
        """`GET /applications/{applicationName}` (get): the channel/bridge ids the app is subscribed to."""
        return await self._one(Application, "GET", f"/applications/{_seg(name or self.app)}")

    async def subscribe(self, event_source: str, *, name: str | None = None) -> Application:
        """`POST /applications/{applicationName}/subscription` (subscribe); `event_source` is
        `channel:<id>`, `bridge:<id>`, `endpoint:<tech>/<resource>` or `deviceState:<name>`."""
        return await self._one(
            Application, "POST", f"/applications/{_seg(name or self.app)}/subscription",
            {"eventSource": event_source},
        )
