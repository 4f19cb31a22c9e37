"""SMS.ru HTTP API (https://sms.ru/api/send, /api/status), JSON answers (`json=1`).

- send: `POST {base}/sms/send` form `api_id, to=<7XXXXXXXXXX>, msg, json=1[, from]` →
  `{"status": "OK", "status_code": 100, "sms": {"<to>": {"status": "OK", "status_code": 100,
  "sms_id": "000000-10000000"}}, "balance": 4122.56}`; a per-number `"status": "ERROR"` carries
  its own `status_code` and `status_text` (207: this number cannot receive messages).
- status: `POST {base}/sms/status` form `api_id, sms_id, json=1` → `{"status": "OK",
  "sms": {"<id>": {"status": "OK", "status_code": 103, "status_text": "Сообщение доставлено"}}}`.
- A refused request is HTTP 200 with `"status": "ERROR"` and the error in `status_code`.
POST keeps the api_id out of URLs and proxy logs (the API takes GET or POST).
"""

from __future__ import annotations

from typing import Any

import httpx

from models.ports import DeliveryStatus, ProviderError, ProviderMessageId, SentBefore
from openads.config import SmsSettings
from openads.providers import transport
from openads.providers.sms.common import gateway_number

PROVIDER = "smsru"

# Delivery status codes of /sms/status (integrations.md 4.1).
STATUS_MAP: dict[int, DeliveryStatus] = {
    100: DeliveryStatus.QUEUED,
    101: DeliveryStatus.SENT,  # handed to the operator
    102: DeliveryStatus.SENT,  # in transit
    103: DeliveryStatus.DELIVERED,
    104: DeliveryStatus.FAILED,  # expired
    105: DeliveryStatus.FAILED,  # deleted by the operator
    106: DeliveryStatus.FAILED,  # phone failure
    107: DeliveryStatus.FAILED,  # unknown reason
    108: DeliveryStatus.FAILED,  # rejected
}
# Refusals worth retrying later: 201 not enough money, 220 service temporarily unavailable,
# 230/231/232 per-day / per-minute limits. Others (bad api_id 200/301, bad number 202,
# 207 number cannot receive, ...) will not change by waiting.
RETRYABLE_CODES = frozenset({201, 220, 230, 231, 232})


class SmsRu:
    name = "smsru"

    def __init__(self, settings: SmsSettings, client: httpx.Client | None = None) -> None:
        if not settings.smsru_api_id:
            raise ValueError("SMS.ru needs SMSRU_API_ID")
        self.settings = settings
        self.client = client or transport.make_client(settings.timeout)

    def close(self) -> None:
        self.client.close()

    def _call(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        response = transport.request(
            self.client, PROVIDER, "POST", self.settings.smsru_url + path,
            data={"api_id": self.settings.smsru_api_id, **form, "json": "1"},
        )
        if response.status_code != 200:
            status = response.status_code
            raise ProviderError(PROVIDER, str(status), f"HTTP {status}", retryable=transport.retryable_status(status))
        data = transport.json_body(response, PROVIDER)
        if data.get("status") != "OK":
            raise _refusal(data)
        return data

    def send(self, to_e164: str, text: str, *, key: str | None = None) -> ProviderMessageId:
        # SMS.ru takes no client-side id or idempotency key: `key` cannot go along (decision 0019).
        to = gateway_number(PROVIDER, to_e164)
        form = {"to": to, "msg": text}
        if self.settings.sender:
            form["from"] = self.settings.sender
        data = self._call("/sms/send", form)
        entry = (data.get("sms") or {}).get(to)
        if not isinstance(entry, dict):
            raise ProviderError(PROVIDER, "bad-response", f"no result for {to}", retryable=True)
        if entry.get("status") != "OK" or not entry.get("sms_id"):
            raise _refusal(entry)
        return ProviderMessageId(str(entry["sms_id"]))

    def find_sent(self, to_e164: str, key: str) -> SentBefore | None:
        return None  # no look-up by a client-side key in the SMS.ru API

    def status(self, message_id: ProviderMessageId) -> DeliveryStatus:
        data = self._call("/sms/status", {"sms_id": str(message_id)})
        entry = (data.get("sms") or {}).get(str(message_id))
        if not isinstance(entry, dict) or entry.get("status") != "OK":
            return DeliveryStatus.UNKNOWN  # e.g. -1 "message not found"
        return STATUS_MAP.get(_int(entry.get("status_code")), DeliveryStatus.UNKNOWN)


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1


def _refusal(data: dict[str, Any]) -> ProviderError:
    code = _int(data.get("status_code"))
    return ProviderError(PROVIDER, str(code), str(data.get("status_text") or "refused"), retryable=code in RETRYABLE_CODES)
