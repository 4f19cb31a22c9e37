"""Steady load on the installation while faults are injected: tickets and assignments through
/api/v1 (a bearer token), calls through the ARI emulator's phone controls (answered and
abandoned), and a panel's event stream that reconnects with Last-Event-ID. Each driver keeps what
it was told, so the invariants can compare it with the database afterwards."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Seeded:
    org_id: int
    hotline: str
    categories: list[tuple[int, bool]]  # (id, emergency)
    residents: list[tuple[int, int, int, str]]  # (resident, house, premise, phone)
    executors: list[int]
    token: str
    dispatcher_login: str
    dispatcher_endpoints: list[str]  # emulator endpoint resources ("disp1")
    password: str


@dataclass
class TicketLoad:
    """Creates tickets (a share of them emergencies: the municipality's e-mail) and assigns
    executors (the resident's SMS). A POST without an answer is never repeated (the API has no
    idempotency key): its marker is looked up afterwards."""

    base: str
    seeded: Seeded
    rng: random.Random
    rate: float = 5.0
    created: dict[str, tuple[int, str]] = field(default_factory=dict)  # marker → (ticket id, number)
    unanswered: dict[str, str] = field(default_factory=dict)  # marker → what happened instead
    assigned: set[int] = field(default_factory=set)
    done: set[int] = field(default_factory=set)  # → the resident's SMS and the robot's rating call
    requests: Counter[str] = field(default_factory=Counter)
    seq: int = 0

    def run(self, stop: threading.Event) -> None:
        headers = {"Authorization": f"Bearer {self.seeded.token}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=10) as client:
            while not stop.wait(self.rng.expovariate(self.rate)):
                candidates = [tid for tid, _ in self.created.values() if tid not in self.assigned]
                finishing = sorted(self.assigned - self.done)
                roll = self.rng.random()
                if finishing and roll < 0.15:
                    self._finish(client, self.rng.choice(finishing))
                elif candidates and roll < 0.45:
                    self._assign(client, self.rng.choice(candidates))
                else:
                    self._create(client)

    def _create(self, client: httpx.Client) -> None:
        self.seq += 1
        marker = f"chaos-{self.seq:05d}"
        category, _ = self.rng.choice(self.seeded.categories)
        resident, house, premise, _phone = self.rng.choice(self.seeded.residents)
        body = {"category_id": category, "description": f"Проверка под нагрузкой {marker}", "house_id": house,
                "premise_id": premise, "resident_id": resident, "channel": "phone"}
        self.requests["create"] += 1
        try:
            response = client.post("/api/v1/tickets", json=body)
        except httpx.HTTPError as exc:
            self.unanswered[marker] = type(exc).__name__
            self.requests["create:no-answer"] += 1
            return
        if response.status_code == 201:
            data = response.json()
            self.created[marker] = (int(data["id"]), str(data["number"]))
            self.requests["create:201"] += 1
        else:
            self.unanswered[marker] = f"HTTP {response.status_code}"
            self.requests[f"create:{response.status_code}"] += 1

    def _finish(self, client: httpx.Client, ticket_id: int) -> None:
        self.requests["done"] += 1
        try:
            response = client.post(f"/api/v1/tickets/{ticket_id}/transition", json={"to": "done"})
        except httpx.HTTPError:
            self.requests["done:no-answer"] += 1
            return
        self.requests[f"done:{response.status_code}"] += 1
        if response.status_code in (200, 409):  # 409: done by an earlier try whose answer was lost
            self.done.add(ticket_id)

    def _assign(self, client: httpx.Client, ticket_id: int) -> None:
        self.requests["assign"] += 1
        try:
            response = client.post(f"/api/v1/tickets/{ticket_id}/assign",
                                   json={"executor_id": self.rng.choice(self.seeded.executors)})
        except httpx.HTTPError:
            self.requests["assign:no-answer"] += 1
            return
        self.requests[f"assign:{response.status_code}"] += 1
        if response.status_code == 200:
            self.assigned.add(ticket_id)


@dataclass
class PlacedCall:
    channel_id: str
    phone: str
    in_stasis: bool
    answered: bool = False
    hung_up: bool = False
    answered_at: float | None = None  # when the app had bridged it


@dataclass
class CallLoad:
    """A resident's phone calling the hotline through the emulator: about half answered by a
    dispatcher's phone after 1-2 s and hung up by the resident 1-3 s later, the rest abandoned
    after 1-4 s. A call placed while `openads ari` is away goes to the dialplan's fallback (and one
    waiting while it is killed is moved there by `openads ari-watchdog`): the journal has it from
    Asterisk's CDR table, which the emulator writes."""

    emulator: str
    auth: tuple[str, str]
    seeded: Seeded
    rng: random.Random
    calls: list[PlacedCall] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def control(self, client: httpx.Client, action: str, body: dict[str, Any] | None = None) -> Any:
        response = client.request("GET" if body is None else "POST", f"{self.emulator}/_emulator/{action}",
                                  json=body, auth=self.auth, timeout=5)
        if response.status_code != 200:
            raise RuntimeError(f"{action}: {response.status_code} {response.text[:200]}")
        return response.json()

    def app_connected(self, client: httpx.Client) -> bool:
        state = self.control(client, "state")
        return any("openads" in ws.get("apps", []) for ws in state.get("websockets", []))

    def in_stasis(self, client: httpx.Client, channel_id: str) -> bool:
        state = self.control(client, "state")
        return any(c["id"] == channel_id and c.get("in_stasis") for c in state.get("channels", []))

    def bridged(self, client: httpx.Client, caller: str, leg: str, timeout: float = 3.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            bridges = self.control(client, "state").get("bridges", [])
            if any({caller, leg} <= set(b.get("channels", [])) for b in bridges):
                return True
            time.sleep(0.2)
        return False

    def ringing_leg(self, client: httpx.Client, phone: str) -> str | None:
        """A dispatcher's phone ringing with this resident's call (the leg shows the caller's number)."""
        digits = phone[-10:]
        for channel in self.control(client, "state").get("channels", []):
            name = str(channel.get("name", ""))
            shown = str((channel.get("caller") or {}).get("number", "")) + str((channel.get("connected") or {}).get("number", ""))
            if (channel.get("state") == "Ringing" and any(name.startswith(f"PJSIP/{e}-") for e in self.seeded.dispatcher_endpoints)
                    and digits in shown):
                return str(channel["id"])
        return None

    def run(self, stop: threading.Event) -> None:
        with httpx.Client() as client:
            while not stop.wait(self.rng.uniform(0.5, 2.0)):
                try:
                    if self.app_connected(client):
                        self._one(client)
                except (httpx.HTTPError, RuntimeError) as exc:
                    self.errors[type(exc).__name__] += 1

    def _one(self, client: httpx.Client) -> None:
        with self.lock:  # two calls at once come from two phones, so each answers its own
            busy = {c.phone for c in self.calls if not c.hung_up}
            phone = self.rng.choice([r[3] for r in self.seeded.residents if r[3] not in busy])
        snap = self.control(client, "incoming_call", {"did": self.seeded.hotline, "caller": phone})
        call = PlacedCall(snap["id"], phone, self.in_stasis(client, snap["id"]))
        with self.lock:
            self.calls.append(call)
        try:
            if call.in_stasis and self.rng.random() < 0.5:
                time.sleep(self.rng.uniform(1.0, 2.0))
                leg = self.ringing_leg(client, phone)
                if leg is not None:
                    try:
                        self.control(client, "answer", {"channel": leg})
                        # Answered only if the app bridged the dispatcher with the caller: a leg
                        # picked up while `openads ari` is being killed connects nobody (silence,
                        # the resident hangs up: a missed call, rightly).
                        call.answered = self.bridged(client, call.channel_id, leg)
                        call.answered_at = time.time() if call.answered else None
                        if not call.answered:
                            self.errors["picked up, never bridged (ari away)"] += 1
                    except RuntimeError as exc:  # stopped ringing meanwhile (the app restarted its ring)
                        self.errors[f"answer: {str(exc)[:60]}"] += 1
                time.sleep(self.rng.uniform(1.0, 3.0))
            else:
                time.sleep(self.rng.uniform(1.0, 4.0))
        finally:
            try:
                self.control(client, "hangup", {"channel": call.channel_id})
                call.hung_up = True
            except (httpx.HTTPError, RuntimeError) as exc:
                self.errors[f"hangup {type(exc).__name__}"] += 1


@dataclass
class StreamClient:
    """A dispatcher's panel on /events/stream: reconnects after any break with the last id it saw."""

    base: str
    seeded: Seeded
    position: str  # the last `id:` line: sent back as Last-Event-ID
    received: list[int] = field(default_factory=list)  # the events' own ids (`event_id` of the data)
    reconnects: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def _login(self, client: httpx.Client) -> bool:
        try:
            page = client.get("/login")
            found = CSRF.search(page.text)
            if not found:
                self.errors[f"login page {page.status_code}"] += 1
                return False
            response = client.post("/login", data={"csrf_token": found.group(1), "login": self.seeded.dispatcher_login,
                                                   "password": self.seeded.password})
            if response.status_code != 302:
                self.errors[f"login {response.status_code}"] += 1
                return False
            return True
        except httpx.HTTPError as exc:
            self.errors[f"login {type(exc).__name__}"] += 1
            return False

    def run(self, stop: threading.Event) -> None:
        timeout = httpx.Timeout(10, read=45)
        with httpx.Client(base_url=self.base, timeout=timeout) as client:
            signed_in = False
            while not stop.is_set():
                if not signed_in:
                    signed_in = self._login(client)
                    if not signed_in:
                        stop.wait(1)
                        continue
                try:
                    with client.stream("GET", "/events/stream", headers={"Last-Event-ID": self.position}) as resp:
                        if resp.status_code == 401:
                            signed_in = False
                            continue
                        if resp.status_code != 200:
                            self.errors[f"stream {resp.status_code}"] += 1
                            stop.wait(1)
                            continue
                        for line in resp.iter_lines():
                            if line.startswith("id:"):
                                self.position = line[3:].strip()
                            elif line.startswith("data:"):
                                self.received.append(int(json.loads(line[5:])["event_id"]))
                            if stop.is_set():
                                return
                except (httpx.HTTPError, ValueError) as exc:
                    self.errors[f"stream {type(exc).__name__}"] += 1
                self.reconnects += 1
                stop.wait(0.5)


@dataclass
class PressedRating:
    channel_id: str  # the robot's call row has it (`calls.channel_id`)
    digit: int
    at: float = field(default_factory=time.time)


@dataclass
class ResidentPhones:
    """The residents' phones answering the voice robot: about three in four rating calls are
    picked up, and the resident presses 1-5 once the prompt has started; the others ring out."""

    emulator: str
    auth: tuple[str, str]
    seeded: Seeded
    rng: random.Random
    pressed: list[PressedRating] = field(default_factory=list)
    rang_out: int = 0
    handled: set[str] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)

    def run(self, stop: threading.Event) -> None:
        numbers = {phone[-10:] for *_, phone in self.seeded.residents}
        with httpx.Client(auth=self.auth, timeout=5) as client:
            while not stop.wait(0.3):
                try:
                    state = client.get(f"{self.emulator}/_emulator/state").json()
                except (httpx.HTTPError, ValueError) as exc:
                    self.errors[type(exc).__name__] += 1
                    continue
                for channel in state.get("channels", []):
                    remote = str(channel.get("remote_number") or "")[-10:]
                    if (not channel.get("outgoing") or remote not in numbers or channel["id"] in self.handled
                            or channel.get("state") != "Ringing"):
                        continue
                    self.handled.add(channel["id"])
                    if self.rng.random() < 0.25:
                        self.rang_out += 1
                        continue
                    threading.Thread(target=self._answer, args=(channel,), daemon=True).start()

    def _answer(self, channel: dict[str, Any]) -> None:
        digit = self.rng.randint(1, 5)
        with httpx.Client(auth=self.auth, timeout=5) as client:
            try:
                time.sleep(self.rng.uniform(0.3, 1.5))
                ok = client.post(f"{self.emulator}/_emulator/answer", json={"channel": channel["id"]}).status_code == 200
                if not ok:
                    self.errors["answer refused"] += 1
                    return
                time.sleep(self.rng.uniform(0.5, 1.5))  # the prompt starts; keys count from then on
                if client.post(f"{self.emulator}/_emulator/press",
                               json={"channel": channel["id"], "digits": str(digit)}).status_code == 200:
                    self.pressed.append(PressedRating(channel["id"], digit))
                time.sleep(3)
                client.post(f"{self.emulator}/_emulator/hangup", json={"channel": channel["id"]})
            except httpx.HTTPError as exc:
                self.errors[type(exc).__name__] += 1
