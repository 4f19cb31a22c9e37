"""One place that turns HTTP failures into `ProviderError` (shared by the speech and SMS adapters).

Policy (docs/decisions/0007): 401/403 and other 4xx are permanent (`retryable=False`: wrong key,
missing role, bad request); 429, 5xx, timeouts and connection failures are transient. The caller
retries transient errors with backoff (the outbox worker) or falls back (keypad-only rating).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from models.ports import ProviderError

RETRYABLE_STATUS = frozenset({408, 425, 429})


def make_client(timeout: float) -> httpx.Client:
    """An httpx client with a bounded total wait: connect, read, write and pool all `timeout`."""
    return httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False)


def retryable_status(status: int) -> bool:
    return status >= 500 or status in RETRYABLE_STATUS


def request(
    client: httpx.Client, provider: str, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """Send one request; transport failures become ProviderError (`timeout`, `connect`)."""
    try:
        return client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise ProviderError(provider, "timeout", f"{method} {_where(url)}: {type(exc).__name__}", retryable=True) from exc
    except httpx.TransportError as exc:
        raise ProviderError(provider, "connect", f"{method} {_where(url)}: {exc}", retryable=True) from exc


def json_body(response: httpx.Response, provider: str) -> dict[str, Any]:
    """The response's JSON object, or ProviderError `bad-response` (retryable: a proxy's HTML page)."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProviderError(
            provider, "bad-response", f"HTTP {response.status_code}, not JSON: {response.text[:200]!r}", retryable=True
        ) from exc
    if not isinstance(data, dict):
        raise ProviderError(provider, "bad-response", f"HTTP {response.status_code}, JSON is not an object", retryable=True)
    return data


def _where(url: str) -> str:
    """Scheme, host and path only: never log a query string (SMS gateways take keys there)."""
    return url.split("?", 1)[0]
