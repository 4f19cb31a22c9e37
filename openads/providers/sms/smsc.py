"""SMSC.ru HTTP API (https://smsc.ru/api/http/), JSON answers (`fmt=3`), UTF-8 (`charset=utf-8`).

- send: `POST {base}/sys/send.php` form `login, psw (or apikey), phones, mes, fmt=3,
  charset=utf-8[, sender]` → `{"id": 12, "cnt": 1}`; a refusal is HTTP 200 with
  `{"error": "...", "error_code": N}` (N: 1 bad parameters, 2 bad login/password, 3 no money,
  4 IP temporarily blocked, 5 bad date, 6 message forbidden, 7 bad number, 8 cannot deliver,
  9 duplicate / too many concurrent requests).
- status: `POST {base}/sys/status.php` form `login, psw, phone, id, fmt=3, charset=utf-8` →
  `{"status": 1, "last_date": "...", "last_timestamp": ..., "err": 0}`.
Without `charset=utf-8` SMSC reads the text as windows-1251. SMSC needs the phone together with
the id to find a message, so our message id is `<id>:<phone>`.

Idempotency (issue 11): send.php takes a client-assigned message `id` (an integer). Ours is
derived from the outbox message's idempotency key, so every retry carries the same id, and
before sending again the worker asks status.php for `<id>:<phone>`: a message SMSC already
has (any status but -3 "not found") is not sent twice (`find_sent`). That look-up asks with
`all=1`, whose answer carries `send_timestamp` (Unix time SMSC took the message): the time
recorded for the notice is SMSC's acceptance, not the time of the retry.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import httpx

from models.ports import DeliveryStatus, ProviderError, ProviderMessageId, SentBefore
from openads.config import SmsSettings
from openads.providers import transport
from openads.providers.sms.common import gateway_number

PROVIDER = "smsc"

# Message status codes of /sys/status.php.
STATUS_MAP: dict[int, DeliveryStatus] = {
    -3: DeliveryStatus.UNKNOWN,  # message not found
    -1: DeliveryStatus.QUEUED,  # waiting to be sent
    0: DeliveryStatus.SENT,  # handed to the operator
    1: DeliveryStatus.DELIVERED,
    2: DeliveryStatus.DELIVERED,  # read
    4: DeliveryStatus.DELIVERED,  # link followed
    3: DeliveryStatus.FAILED,  # expired
    20: DeliveryStatus.FAILED,  # cannot be delivered
    22: DeliveryStatus.FAILED,  # wrong number
    23: DeliveryStatus.FAILED,  # forbidden
    24: DeliveryStatus.FAILED,  # not enough money
    25: DeliveryStatus.FAILED,  # unavailable number
}
# 3 no money (fixed by paying), 4 IP blocked for a while, 9 too many requests: try later.
RETRYABLE_CODES = frozenset({3, 4, 9})
NOT_FOUND = -3


def client_id(key: str) -> str:
    """SMSC's client-side message id for an idempotency key: a stable integer in 1..2**31-1."""
    return str(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 2_147_483_647 + 1)


class Smsc:
    name = "smsc"

    def __init__(self, settings: SmsSettings, client: httpx.Client | None = None) -> None:
        if not (settings.smsc_api_key or (settings.smsc_login and settings.smsc_password)):
            raise ValueError("SMSC needs SMSC_LOGIN and SMSC_PASSWORD (or SMSC_API_KEY)")
        self.settings = settings
        self.client = client or transport.make_client(settings.timeout)

    def close(self) -> None:
        self.client.close()

    def _auth(self) -> dict[str, str]:
        s = self.settings
        if s.smsc_api_key:
            return {"apikey": s.smsc_api_key}
        return {"login": s.smsc_login, "psw": s.smsc_password}

    def _call(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        response = transport.request(
            self.client, PROVIDER, "POST", self.settings.smsc_url + path,
            data={**self._auth(), **form, "fmt": "3", "charset": "utf-8"},
        )
        if response.status_code != 200:
            status = response.status_code
            raise ProviderError(PROVIDER, str(status), f"HTTP {status}", retryable=transport.retryable_status(status))
        data = transport.json_body(response, PROVIDER)
        if "error_code" in data or "error" in data:
            code = _int(data.get("error_code"))
            raise ProviderError(PROVIDER, str(code), str(data.get("error") or "refused"), retryable=code in RETRYABLE_CODES)
        return data

    def send(self, to_e164: str, text: str, *, key: str | None = None) -> ProviderMessageId:
        phone = gateway_number(PROVIDER, to_e164)
        form = {"phones": phone, "mes": text}
        if key:
            form["id"] = client_id(key)
        if self.settings.sender:
            form["sender"] = self.settings.sender
        data = self._call("/sys/send.php", form)
        if data.get("id") in (None, ""):
            raise ProviderError(PROVIDER, "bad-response", "no message id in the answer", retryable=True)
        return ProviderMessageId(f"{data['id']}:{phone}")

    def find_sent(self, to_e164: str, key: str) -> SentBefore | None:
        phone = gateway_number(PROVIDER, to_e164)
        sms_id = client_id(key)
        data = self._call("/sys/status.php", {"phone": phone, "id": sms_id, "all": "1"})
        if _int(data.get("status")) == NOT_FOUND:
            return None
        stamp = _int(data.get("send_timestamp"))
        at = datetime.fromtimestamp(stamp, UTC) if stamp > 0 else None
        return SentBefore(ProviderMessageId(f"{sms_id}:{phone}"), at)

    def status(self, message_id: ProviderMessageId) -> DeliveryStatus:
        sms_id, _, phone = str(message_id).partition(":")
        if not phone:
            raise ProviderError(PROVIDER, "bad-id", f"expected <id>:<phone>, got {message_id!r}", retryable=False)
        data = self._call("/sys/status.php", {"phone": phone, "id": sms_id})
        return STATUS_MAP.get(_int(data.get("status")), DeliveryStatus.UNKNOWN)


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1000
