"""The driver: an ARI emulator you start, point the app at, and script like a call.

    emu = AriEmulator(user="openads", password="secret").start()     # background thread, random port
    call = emu.incoming_call("74951112233", "79161234567")          # Stasis(openads,inbound,<DID>)
    emu.answer("disp1")                                              # a dispatcher picks up
    emu.press(call, "5"); emu.say(call, "течёт крыша")
    emu.hangup(call)
    emu.requests(route="POST /channels")                            # request budget
    emu.violations                                                   # spec violations (must stay empty)

Everything the state does happens on the emulator's own event loop; the driver methods marshal calls
there, so sync tests, async tests (another loop) and the server thread never race. The same actions are
available over HTTP at `/_emulator/<action>` when it runs as `python -m tests.emulator.ari`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from . import rest
from .cdr import CdrWriter
from .spec import AriSpec, load_spec
from .state import RECORD_STOP_DELAY, TRUNK_ENDPOINT, Asterisk, Channel, FakeClock, RealClock
from .ws import EventHub

T = TypeVar("T")


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # without the /ari prefix
    query: dict[str, Any]
    body: Any
    status: int
    route: str | None  # "POST /channels/{channelId}/answer" when the path matched the spec
    t: float


@dataclass
class FailRule:
    key: str
    status: int
    body: dict[str, Any]
    times: int


class AriEmulator:
    """A stateful, spec-checked Asterisk ARI (REST + events WebSocket) for tests and the demo."""

    def __init__(
        self,
        *,
        user: str = "openads",
        password: str = "openads",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: FakeClock | RealClock | None = None,
        recordings_dir: Path | str = "recordings-emulator",
        strict: bool = True,
        spec: AriSpec | None = None,
        dtmf_delay: float = 0.19,
        record_stop_delay: float = RECORD_STOP_DELAY,
        cdr_path: Path | str | None = None,
        fallback_dial: list[str] | tuple[str, ...] = (),
    ) -> None:
        """`cdr_path`: Asterisk's master.db (cdr.py), made at once, a record per channel that ends.
        `fallback_dial`: the phones [openads-fallback] rings (${OPENADS_DISPATCHERS})."""
        self.user, self.password, self.host, self.port = user, password, host, port
        self.strict = strict
        self.spec = spec or load_spec()
        self.clock = clock or RealClock()
        self.fake_clock = isinstance(self.clock, FakeClock)
        self.violations: list[str] = []
        self.request_log: list[LoggedRequest] = []
        self.known_apps: set[str] = set()
        self._fail_rules: list[FailRule] = []
        self.hub = EventHub(self.spec.validate_event, self.violation, now=self.clock.now,
                            on_event=lambda event: self.asterisk.history.append(event))
        self.asterisk = Asterisk(
            clock=self.clock,
            recordings_dir=recordings_dir,
            sink=self.hub.publish,
            app_active=self.hub.active,
            dtmf_delay=dtmf_delay,
            record_stop_delay=record_stop_delay,
            cdr=CdrWriter(cdr_path) if cdr_path is not None else None,
            fallback_dial=fallback_dial,
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopped = threading.Event()

    # ---- lifecycle -------------------------------------------------------------------------------
    async def start_async(self) -> AriEmulator:
        """Start on the running loop (used by `python -m tests.emulator.ari`)."""
        self.loop = asyncio.get_running_loop()
        if isinstance(self.clock, RealClock):
            self.clock.loop = self.loop
        self._runner = web.AppRunner(rest.build_app(self), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and server.sockets:  # the port the OS chose for port=0
            self.port = server.sockets[0].getsockname()[1]
        return self

    async def stop_async(self) -> None:
        await self.hub.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.asterisk.cdr is not None:
            self.asterisk.cdr.close()

    def start(self) -> AriEmulator:
        """Run the server on 127.0.0.1 in a background thread with its own loop."""
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                errors.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop_async())
            loop.close()
            self._stopped.set()

        self._thread = threading.Thread(target=run, name="ari-emulator", daemon=True)
        self._thread.start()
        started.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self.loop is not None and self._thread is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def __enter__(self) -> AriEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ari_url(self) -> str:
        return f"{self.url}/ari"

    def ws_url(self, app: str = "openads", **extra: str) -> str:
        params = "&".join(f"{k}={v}" for k, v in extra.items())
        return f"ws://{self.host}:{self.port}/ari/events?app={app}&api_key={self.user}:{self.password}" + (
            f"&{params}" if params else ""
        )

    def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` on the emulator loop and return its result (directly when already there)."""
        loop = self.loop
        if loop is None or not loop.is_running() or _on_loop(loop):
            result = fn(*args, **kwargs)
            self._settle()
            return result

        async def call() -> T:
            value = fn(*args, **kwargs)
            self._settle()
            return value

        return asyncio.run_coroutine_threadsafe(call(), loop).result(10)

    def _settle(self) -> None:
        # With a fake clock, "at once" timers (delay 0: ringing, playback start) run right after the action.
        if isinstance(self.clock, FakeClock):
            self.clock.advance(0)

    # ---- called by rest.py -----------------------------------------------------------------------
    def violation(self, problem: str) -> None:
        self.violations.append(problem)

    def log_request(self, method: str, path: str, query: Any, body: Any, status: int, route: str | None) -> None:
        flat = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in dict(query).items() if k != "api_key"}
        self.request_log.append(LoggedRequest(method, path, flat, body, status, route, self.clock.now()))

    def take_failure(self, route: str, method: str, path: str) -> tuple[int, dict[str, Any]] | None:
        for rule in self._fail_rules:
            if rule.key in (route, f"{method} {path}", route.split(" ", 1)[1], path):
                rule.times -= 1
                if rule.times <= 0:
                    self._fail_rules.remove(rule)
                return rule.status, rule.body
        return None

    def dispatch(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> web.StreamResponse:
        response = rest.route_call(self, method, path, query, body)
        if isinstance(self.clock, FakeClock) and self.loop is not None:
            self.loop.call_soon(self.clock.advance, 0)
        return response

    # ---- driver API ------------------------------------------------------------------------------
    def incoming_call(
        self,
        did: str,
        caller: str,
        app: str = "openads",
        args: tuple[str, ...] | list[str] | None = None,
        *,
        endpoint: str = TRUNK_ENDPOINT,
        caller_name: str | None = None,
        exten: str | None = None,
    ) -> Channel:
        """A call from `caller` to `did` entering `Stasis(app,inbound,<did>)` (args default to
        ("inbound", did)). Without a connected WebSocket for `app` it stays in the dialplan."""
        return self._run(
            self.asterisk.incoming_call, did, caller, app=app, args=args, endpoint=endpoint,
            caller_name=caller_name, exten=exten,
        )

    def dialplan_call(self, from_endpoint: str, to_endpoint: str) -> tuple[Channel, Channel]:
        return self._run(self.asterisk.dialplan_call, from_endpoint, to_endpoint)

    def answer(self, target: Any) -> Channel:
        """The phone of `target` (endpoint 'disp1', a number behind the trunk, or a channel) picks up."""
        return self._run(self.asterisk.phone_answer, target)

    def reject(self, target: Any, cause: int = 17) -> None:
        self._run(self.asterisk.phone_reject, target, cause)

    def press(self, channel: Any, digits: str) -> Channel:
        return self._run(self.asterisk.press, channel, digits)

    def say(self, channel: Any, text: str, audio: bytes | None = None) -> Channel:
        """The phone speaks: `text` for ASR fakes; `audio` (WAV 8 kHz mono 16-bit) into the recordings."""
        return self._run(self.asterisk.say, channel, text, audio)

    def hangup(self, channel: Any) -> Channel:
        """The phone hangs up (BYE); a ringing outgoing leg declines."""
        return self._run(self.asterisk.phone_hangup, channel)

    def set_answer_mode(self, target: str, mode: str) -> None:
        """'auto' or 'manual' for an endpoint ('disp1') or for a number reached through the trunk."""
        if mode not in ("auto", "manual"):
            raise ValueError("mode must be 'auto' or 'manual'")

        def apply() -> None:
            key = target if "/" in target else f"PJSIP/{target}"
            if key in self.asterisk.endpoints:
                self.asterisk.endpoints[key].auto_answer = mode == "auto"
            else:
                self.asterisk.remote_auto_answer[target] = mode == "auto"

        self._run(apply)

    def set_endpoint_state(self, name: str, state: str) -> None:
        self._run(self.asterisk.set_endpoint_state, name, state)

    def add_endpoint(self, resource: str, callerid_name: str = "", callerid_number: str = "", **kw: Any) -> None:
        self._run(self.asterisk.add_endpoint, resource, callerid_name, callerid_number, **kw)

    def drop_websocket(self) -> int:
        """Close every events WebSocket from the server side; events until the app reconnects are lost."""
        return self._run_async(self.hub.drop_all())

    def restart(self) -> None:
        """Asterisk restarts: WebSockets close, calls and bridges vanish without events, files stay."""
        self._run_async(self.hub.drop_all())
        self._run(self.asterisk.restart)

    def inject_raw(self, payload: str | bytes | dict[str, Any] | list[Any], app: str | None = None) -> int:
        """Send a raw frame (not validated) to the app's WebSockets: malformed/unknown/duplicate events."""
        if isinstance(payload, bytes):
            text = payload.decode("utf-8", errors="replace")
        elif isinstance(payload, str):
            text = payload
        else:
            text = json.dumps(payload, ensure_ascii=False)
        return self._run(self.hub.send_raw, app, text)

    def fail_next(self, route: str, status: int, body: dict[str, Any] | None = None, times: int = 1) -> None:
        """Answer the next `times` calls of `route` with `status` without running them. `route` is a
        spec route ("POST /channels/{channelId}/answer"), a concrete "METHOD /path", or a bare path."""
        route = route.removeprefix("/ari") if route.startswith("/ari") else route.replace(" /ari/", " /")
        default = {"message": f"Emulated failure {status}"}
        self._fail_rules.append(FailRule(route, status, body if body is not None else default, times))

    def advance(self, seconds: float) -> None:
        """Move the fake clock (timers: playbacks, recordings, ring timeouts, DTMF)."""
        if not isinstance(self.clock, FakeClock):
            raise RuntimeError("advance() needs AriEmulator(clock=FakeClock())")
        self._run(self.clock.advance, seconds)

    def _run_async(self, coro: Any) -> Any:
        loop = self.loop
        if loop is None or not loop.is_running():
            return asyncio.new_event_loop().run_until_complete(coro)
        return asyncio.run_coroutine_threadsafe(coro, loop).result(10)

    # ---- inspection ------------------------------------------------------------------------------
    def requests(self, method: str | None = None, route: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        """Logged `/ari` requests (api-docs excluded), optionally filtered."""
        out = [r for r in self.request_log if not r.path.startswith("/api-docs/")]
        if method:
            out = [r for r in out if r.method == method]
        if route:
            out = [r for r in out if r.route == route or f"{r.method} {r.path}" == route]
        if path:
            out = [r for r in out if r.path == path]
        return out

    def take_violations(self) -> list[str]:
        """Return and clear the recorded spec violations (for tests that provoke them on purpose)."""
        out, self.violations = self.violations, []
        return out

    def channel(self, target: Any) -> Channel:
        return self._run(self.asterisk.find_channel, target)

    def hears(self, target: Any) -> str | None:
        """What the phone of a channel hears now (`Asterisk.hears`): a prompt's media, "moh:<class>", ..."""
        return self._run(lambda: self.asterisk.hears(self.asterisk.find_channel(target).id))

    def events(self, etype: str | None = None) -> list[dict[str, Any]]:
        """Every event the emulator emitted (delivered or lost while disconnected)."""
        return [e for e in list(self.asterisk.history) if etype is None or e["type"] == etype]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Poll `predicate` until it is truthy (no fixed sleeps in tests)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met in time")
            time.sleep(0.005)

    def snapshot(self) -> dict[str, Any]:
        a = self.asterisk
        return {
            # Beyond ARI's snapshot: what a phone would know (the call simulator shows it): whether the
            # channel was originated, the number dialled through the trunk, and the Stasis arguments;
            # and the channel variables (the simulator finds a call's organization by OPENADS_CALL_ID).
            "channels": [dict(c.snapshot(), in_stasis=c.in_stasis, outgoing=c.outgoing, remote_number=c.remote_number,
                              app_args=c.stasis_args, variables=dict(c.variables))
                         for c in a.channels.values() if not c.hungup],
            "bridges": [b.snapshot() for b in a.bridges.values()],
            "endpoints": [a.endpoint_snapshot(e) for e in a.endpoints.values()],
            "playbacks": [p.snapshot() for p in a.playbacks.values()],
            "live_recordings": [r.snapshot() for r in a.live.values()],
            "stored_recordings": [dict(r.snapshot(), path=str(r.path), transcript=r.transcript) for r in a.stored.values()],
            "websockets": [{"apps": c.apps, "sent": c.sent} for c in self.hub.connections],
        }

    # ---- /_emulator/<action> -----------------------------------------------------------------------
    def control(self, method: str, action: str, data: dict[str, Any]) -> Any:
        """HTTP controls; runs on the loop (called from the aiohttp handler)."""
        a = self.asterisk

        def chan(key: str = "channel") -> Any:
            return data.get(key) or data.get("target") or data.get("endpoint")

        if method == "GET":
            if action == "requests":
                return [asdict(r) for r in self.requests()]
            if action == "violations":
                return self.violations
            if action == "state":
                return self.snapshot()
            if action == "events":
                return self.events()
            raise LookupError(f"unknown control GET {action}")
        if action == "incoming_call":
            args = data.get("args")
            ch = a.incoming_call(
                str(data["did"]), str(data["caller"]), app=data.get("app", "openads"),
                args=list(args) if args else None, endpoint=data.get("endpoint", TRUNK_ENDPOINT),
                caller_name=data.get("caller_name"),
            )
            result: Any = ch.snapshot()
        elif action == "answer":
            result = a.phone_answer(chan()).snapshot()
        elif action == "reject":
            a.phone_reject(chan(), int(data.get("cause", 17)))
            result = {}
        elif action == "press":
            result = a.press(chan(), str(data["digits"])).snapshot()
        elif action == "say":
            audio = base64.b64decode(data["audio"], validate=True) if data.get("audio") else None
            ch = a.say(chan(), str(data["text"]), audio)
            result = dict(ch.snapshot(), recordings=a.listening(ch))
        elif action == "hangup":
            result = a.phone_hangup(chan()).snapshot()
        elif action == "answer_mode":
            self.set_answer_mode(str(chan()), str(data["mode"]))
            result = {}
        elif action == "endpoint_state":
            a.set_endpoint_state(str(data["name"]), str(data["state"]))
            result = {}
        elif action == "fail_next":
            self.fail_next(str(data["route"]), int(data["status"]), data.get("body"), int(data.get("times", 1)))
            result = {}
        elif action == "inject_raw":
            payload = data["payload"]
            text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
            result = {"sent_to": self.hub.send_raw(data.get("app"), text)}
        elif action == "drop_websocket":
            assert self.loop is not None
            self.loop.create_task(self.hub.drop_all())
            result = {}
        elif action == "restart":
            assert self.loop is not None
            self.loop.create_task(self.hub.drop_all())
            a.restart()
            result = {}
        elif action == "advance":
            if not isinstance(self.clock, FakeClock):
                raise ValueError("advance needs a fake clock")
            self.clock.advance(float(data["seconds"]))
            result = {}
        else:
            raise LookupError(f"unknown control POST {action}")
        self._settle()
        return result


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
