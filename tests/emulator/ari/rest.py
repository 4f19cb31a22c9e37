"""The HTTP side: `/ari/...` (spec-checked ARI REST), `/ari/api-docs/*.json`, `/ari/events` (WebSocket)
and `/_emulator/...` (driver controls for out-of-process use, e.g. the demo's call simulator).

Every `/ari` request is logged, checked against the Swagger documents (a violation is recorded and, in
strict mode, answered 400 `{"message": ...}`), then handled by the state. Error answers copy Asterisk's
(shared/asterisk/traces/errors.jsonl): `{"message": ...}` bodies, originate failures as `{"error": ...}`,
204 without a body.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .state import AriError

if TYPE_CHECKING:
    from .scenario import AriEmulator

Handler = Callable[["Call"], Any]


class Call:
    """One REST call: merged query/body parameters and path parameters."""

    def __init__(self, emu: AriEmulator, path: dict[str, str], query: dict[str, list[str]], body: Any) -> None:
        self.emu = emu
        self.ari = emu.asterisk
        self.path = path
        self.query = query
        self.body = body if isinstance(body, dict) else {}

    def get(self, name: str, default: Any = None) -> Any:
        if name in self.query and self.query[name]:
            return self.query[name][0]
        if name in self.body:
            return self.body[name]
        return default

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value).lower() if isinstance(value, bool) else str(value)

    def int(self, name: str, default: int = 0) -> int:
        value = self.get(name)
        try:
            return int(value) if value is not None else default
        except (TypeError, ValueError):
            return default

    def bool(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        return str(value).lower() in {"yes", "true", "y", "t", "1", "on"}

    def list(self, name: str) -> list[str]:
        value = self.get(name)
        if value is None:
            return []
        if isinstance(value, list):
            return [str(v) for v in value]
        return [v for v in str(value).split(",") if v]


NO_CONTENT = object()


# ---- handlers, keyed by (resource, nickname) ------------------------------------------------------
def _originate(c: Call) -> Any:
    variables = c.body.get("variables") if isinstance(c.body.get("variables"), dict) else None
    ch = c.ari.originate(
        c.str("endpoint"),
        app=c.str("app"),
        app_args=c.str("appArgs", "") or "",
        caller_id=c.str("callerId"),
        timeout=c.int("timeout", 30),
        variables=variables,
        channel_id=c.path.get("channelId") or c.str("channelId"),
        extension=c.str("extension"),
        context=c.str("context"),
    )
    return ch.snapshot()


def _record(c: Call, target: str) -> Any:
    rec = c.ari.record(
        target,
        name=c.str("name"),
        fmt=c.str("format"),
        max_duration=c.int("maxDurationSeconds"),
        max_silence=c.int("maxSilenceSeconds"),
        if_exists=c.str("ifExists", "fail") or "fail",
        beep=c.bool("beep"),
        terminate_on=c.str("terminateOn", "none") or "none",
    )
    return 201, rec.snapshot()


def _play(c: Call, target: str) -> Any:
    media = c.list("media")
    if not media:
        raise AriError(400, "media: Missing required parameter")
    pb = c.ari.play(target, media, c.str("lang"), c.path.get("playbackId") or c.str("playbackId"))
    return 201, pb.snapshot()


def _chan_target(c: Call) -> str:
    c.ari.stasis_channel(c.path["channelId"])
    return f"channel:{c.path['channelId']}"


def _bridge_target(c: Call) -> str:
    c.ari.bridge(c.path["bridgeId"])
    return f"bridge:{c.path['bridgeId']}"


def _done(fn: Callable[[Call], Any]) -> Handler:
    def handler(c: Call) -> Any:
        fn(c)
        return NO_CONTENT

    return handler


def _stasis(c: Call) -> None:
    c.ari.stasis_channel(c.path["channelId"])


def _file(c: Call) -> Any:
    rec = c.ari.stored_recording(c.path["recordingName"])
    ctype = "audio/wav" if rec.format == "wav" else "application/octet-stream"
    return web.Response(body=rec.path.read_bytes(), content_type=ctype)


def _asterisk_info(c: Call) -> Any:
    return {
        "build": {"os": "Linux", "kernel": "6.1.0", "machine": "x86_64", "options": "", "date": "2026-11-25",
                  "user": "root"},
        "system": {"version": "UNKNOWN__emulator", "entity_id": "02:fc:00:00:00:01"},
        "config": {"name": "", "default_language": "en", "setid": {"user": "asterisk", "group": "asterisk"}},
        "status": {"startup_time": "2026-11-25T20:00:00.000+0000", "last_reload_time": "2026-11-25T20:00:00.000+0000"},
    }


def _application(c: Call) -> Any:
    name = c.path["applicationName"]
    if not c.emu.hub.active(name) and name not in c.emu.known_apps:
        raise AriError(404, "Application not found")
    return c.ari.application(name)


HANDLERS: dict[tuple[str, str], Handler] = {
    # channels
    ("channels", "list"): lambda c: [ch.snapshot() for ch in c.ari.channels.values() if not ch.hungup],
    ("channels", "originate"): _originate,
    ("channels", "originateWithId"): _originate,
    ("channels", "get"): lambda c: c.ari.channel(c.path["channelId"]).snapshot(),
    ("channels", "hangup"): _done(lambda c: c.ari.hangup(c.path["channelId"], c.str("reason"), c.str("reason_code"))),
    ("channels", "answer"): _done(lambda c: c.ari.answer(c.path["channelId"])),
    ("channels", "ring"): _done(lambda c: c.ari.ring(c.path["channelId"])),
    ("channels", "ringStop"): _done(_stasis),
    ("channels", "progress"): _done(_stasis),
    ("channels", "hold"): _done(_stasis),
    ("channels", "unhold"): _done(_stasis),
    ("channels", "mute"): _done(_stasis),
    ("channels", "unmute"): _done(_stasis),
    ("channels", "startSilence"): _done(_stasis),
    ("channels", "stopSilence"): _done(_stasis),
    ("channels", "startMoh"): _done(lambda c: c.ari.channel_moh(c.path["channelId"], c.str("mohClass"))),
    ("channels", "stopMoh"): _done(lambda c: c.ari.channel_stop_moh(c.path["channelId"])),
    ("channels", "sendDTMF"): _done(lambda c: c.ari.send_dtmf(c.path["channelId"], c.str("dtmf"))),
    ("channels", "play"): lambda c: _play(c, _chan_target(c)),
    ("channels", "playWithId"): lambda c: _play(c, _chan_target(c)),
    ("channels", "record"): lambda c: _record(c, _chan_target(c)),
    ("channels", "getChannelVar"): lambda c: {"value": c.ari.get_variable(c.path["channelId"], c.str("variable"))},
    ("channels", "setChannelVar"): _done(
        lambda c: c.ari.set_variable(c.path["channelId"], c.str("variable"), c.str("value", "") or "")
    ),
    ("channels", "continueInDialplan"): _done(
        lambda c: c.ari.continue_in_dialplan(
            c.path["channelId"], c.str("context"), c.str("extension"), c.int("priority") or None
        )
    ),
    # bridges
    ("bridges", "list"): lambda c: [b.snapshot() for b in c.ari.bridges.values()],
    ("bridges", "create"): lambda c: c.ari.create_bridge(c.str("type"), c.str("name"), c.str("bridgeId")).snapshot(),
    ("bridges", "createWithId"): lambda c: c.ari.create_bridge(
        c.str("type"), c.str("name"), c.path["bridgeId"]
    ).snapshot(),
    ("bridges", "get"): lambda c: c.ari.bridge(c.path["bridgeId"]).snapshot(),
    ("bridges", "destroy"): _done(lambda c: c.ari.destroy_bridge(c.path["bridgeId"])),
    ("bridges", "addChannel"): _done(lambda c: c.ari.add_channels(c.path["bridgeId"], c.list("channel"))),
    ("bridges", "removeChannel"): _done(lambda c: c.ari.remove_channels(c.path["bridgeId"], c.list("channel"))),
    ("bridges", "startMoh"): _done(lambda c: c.ari.bridge_moh(c.path["bridgeId"], c.str("mohClass"))),
    ("bridges", "stopMoh"): _done(lambda c: c.ari.bridge_stop_moh(c.path["bridgeId"])),
    ("bridges", "play"): lambda c: _play(c, _bridge_target(c)),
    ("bridges", "playWithId"): lambda c: _play(c, _bridge_target(c)),
    ("bridges", "record"): lambda c: _record(c, _bridge_target(c)),
    # playbacks
    ("playbacks", "get"): lambda c: c.ari.playback(c.path["playbackId"]).snapshot(),
    ("playbacks", "stop"): _done(lambda c: c.ari.stop_playback(c.path["playbackId"])),
    # recordings
    ("recordings", "listStored"): lambda c: [r.snapshot() for r in c.ari.stored.values() if r.path.exists()],
    ("recordings", "getStored"): lambda c: c.ari.stored_recording(c.path["recordingName"]).snapshot(),
    ("recordings", "getStoredFile"): _file,
    ("recordings", "deleteStored"): _done(lambda c: c.ari.delete_stored(c.path["recordingName"])),
    ("recordings", "copyStored"): lambda c: c.ari.copy_stored(
        c.path["recordingName"], c.str("destinationRecordingName")
    ).snapshot(),
    ("recordings", "getLive"): lambda c: c.ari.live_recording(c.path["recordingName"]).snapshot(),
    ("recordings", "stop"): _done(lambda c: c.ari.stop_recording(c.path["recordingName"])),
    ("recordings", "cancel"): _done(lambda c: c.ari.cancel_recording(c.path["recordingName"])),
    ("recordings", "pause"): _done(lambda c: c.ari.pause_recording(c.path["recordingName"], True)),
    ("recordings", "unpause"): _done(lambda c: c.ari.pause_recording(c.path["recordingName"], False)),
    ("recordings", "mute"): _done(lambda c: c.ari.live_recording(c.path["recordingName"])),
    ("recordings", "unmute"): _done(lambda c: c.ari.live_recording(c.path["recordingName"])),
    # endpoints
    ("endpoints", "list"): lambda c: [c.ari.endpoint_snapshot(e) for e in c.ari.endpoints.values()],
    ("endpoints", "listByTech"): lambda c: [
        c.ari.endpoint_snapshot(e) for e in c.ari.endpoints.values() if e.technology == c.path["tech"]
    ],
    ("endpoints", "get"): lambda c: c.ari.endpoint_snapshot(c.ari.endpoint(f"{c.path['tech']}/{c.path['resource']}")),
    # applications, asterisk, sounds
    ("applications", "list"): lambda c: [c.ari.application(a) for a in sorted(c.emu.known_apps)],
    ("applications", "get"): _application,
    ("asterisk", "getInfo"): _asterisk_info,
    ("asterisk", "ping"): lambda c: {"asterisk_id": "02:fc:00:00:00:01", "ping": "pong",
                                    "timestamp": "2026-11-25T20:00:00.000+0000"},
    ("sounds", "list"): lambda c: [],
}


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False), content_type="application/json")


def _auth_ok(emu: AriEmulator, request: web.Request) -> bool:
    """As Asterisk's res_ari.c `authenticate_user`: a Basic `Authorization` header first (REST calls and
    the events WebSocket's handshake alike), else `?api_key=user:password`; neither is a 401.
    The `/_emulator` controls take the same credentials."""
    expected = f"{emu.user}:{emu.password}"
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        try:
            given = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        return secrets.compare_digest(given.encode(), expected.encode())
    key = request.query.get("api_key")
    return key is not None and secrets.compare_digest(key.encode(), expected.encode())


def _unauthorized() -> web.Response:
    return web.Response(
        status=401,
        text=json.dumps({"message": "Authentication required"}),
        content_type="application/json",
        headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'},
    )


def build_app(emu: AriEmulator) -> web.Application:
    app = web.Application()

    async def events(request: web.Request) -> web.StreamResponse:
        if not _auth_ok(emu, request):
            return _unauthorized()
        query: dict[str, list[str]] = {}
        for k, v in request.query.items():
            query.setdefault(k, []).append(v)
        match = emu.spec.match("GET", "/events")
        if match.operation is not None:
            for problem in emu.spec.check_params(match.operation, query, None):
                emu.violation(problem)
        apps = [a for a in request.query.get("app", "").split(",") if a]
        if not apps:
            return _json(400, {"message": "Missing param 'app'"})
        emu.known_apps.update(apps)
        emu.log_request("GET", "/events", dict(request.query), None, 101, "GET /events")
        return await emu.hub.handle(request, apps)

    async def ari(request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        method = request.method
        query: dict[str, list[str]] = {}
        for k, v in request.query.items():
            query.setdefault(k, []).append(v)
        raw = await request.read()
        body: Any = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                emu.log_request(method, path, query, raw.decode(errors="replace"), 400, None)
                return _json(400, {"message": "Error parsing request body"})
        if not _auth_ok(emu, request):
            emu.log_request(method, path, query, body, 401, None)
            return _unauthorized()
        if method == "GET" and path.startswith("/api-docs/"):
            return _api_doc(emu, request, path)
        response = emu.dispatch(method, path, query, body)
        return response

    async def control(request: web.Request) -> web.StreamResponse:
        if not _auth_ok(emu, request):  # it can hang up and answer anyone's calls: never open
            return _unauthorized()
        action = request.match_info["action"]
        data: dict[str, Any] = {}
        if request.can_read_body:
            try:
                data = await request.json()
            except ValueError:
                return _json(400, {"message": "body must be JSON"})
        try:
            result = emu.control(request.method, action, data or dict(request.query))
        except (LookupError, ValueError, AriError) as exc:
            return _json(400, {"message": str(exc)})
        return _json(200, result)

    app.router.add_get("/ari/events", events)
    app.router.add_route("*", "/ari/{tail:.*}", ari)
    app.router.add_route("*", "/_emulator/{action}", control)
    return app


def _api_doc(emu: AriEmulator, request: web.Request, path: str) -> web.Response:
    name = path[len("/api-docs/") :]
    if not name.endswith(".json") or name[:-5] not in emu.spec.documents:
        return _json(404, {"message": "Resource not found"})
    # Asterisk rewrites basePath to the address the client used; Swagger clients build URLs from it.
    text = emu.spec.raw_document(name[:-5]).decode("utf-8")
    text = text.replace("http://localhost:8088/ari", f"{request.scheme}://{request.host}/ari")
    return web.Response(text=text, content_type="application/json")


def route_call(emu: AriEmulator, method: str, path: str, query: dict[str, list[str]], body: Any) -> web.StreamResponse:
    """Spec check + handler. Returns the HTTP response (called by `AriEmulator.dispatch`)."""
    match = emu.spec.match(method, path)
    if match.operation is None:
        route = f"{method} {path}"
        for problem in match.problems:
            emu.violation(f"{route}: {problem}")
        emu.log_request(method, path, query, body, 404 if not match.path_known else 400, None)
        if not match.path_known:
            return _json(404, {"message": "Resource not found"})
        return _json(400 if emu.strict else 405, {"message": match.problems[0]})
    op = match.operation
    failure = emu.take_failure(op.route, method, path)
    if failure is not None:
        status, fbody = failure
        emu.log_request(method, path, query, body, status, op.route)
        return web.Response(status=status) if status == 204 else _json(status, fbody)
    problems = emu.spec.check_params(op, query, body)
    for problem in problems:
        emu.violation(problem)
    if problems and emu.strict:
        emu.log_request(method, path, query, body, 400, op.route)
        return _json(400, {"message": problems[0]})
    handler = HANDLERS.get((op.resource, op.nickname))
    if handler is None:
        emu.log_request(method, path, query, body, 501, op.route)
        return _json(501, {"message": f"{op.route} ({op.nickname}) is not implemented by the emulator"})
    call = Call(emu, match.path_params, query, body)
    try:
        result = handler(call)
    except AriError as exc:
        emu.log_request(method, path, query, body, exc.status, op.route)
        return _json(exc.status, exc.body)
    status = 200
    if isinstance(result, tuple):
        status, result = result
    if isinstance(result, web.Response):
        emu.log_request(method, path, query, body, result.status, op.route)
        return result
    if result is NO_CONTENT:
        emu.log_request(method, path, query, body, 204, op.route)
        return web.Response(status=204)
    emu.log_request(method, path, query, body, status, op.route)
    return _json(status, result)
