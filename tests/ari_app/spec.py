"""Asterisk's ARI api-docs (Swagger 1.2) for checking requests the client sends.

Looks in the emulator's vendored copy (tests/emulator/ari/api-docs, present on a clean checkout),
then in the shared reference data; tests that need it are skipped when neither exists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = (ROOT / "tests" / "emulator" / "ari" / "api-docs", Path("/work/shared/asterisk/ari-api-docs"))
RESOURCES = ("channels", "bridges", "playbacks", "recordings", "endpoints", "applications")


def docs_dir() -> Path | None:
    for path in CANDIDATES:
        if (path / "channels.json").is_file():
            return path
    return None


def require_docs() -> Path:
    path = docs_dir()
    if path is None:
        pytest.skip("ARI api-docs not available")
    return path


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # template, e.g. /channels/{channelId}/play
    nickname: str
    params: dict[str, dict[str, Any]]  # name -> parameter (paramType query/path/body)
    regex: re.Pattern[str]


@cache
def operations() -> list[Operation]:
    base = require_docs()
    ops = []
    for resource in RESOURCES:
        doc = json.loads((base / f"{resource}.json").read_text())
        for api in doc["apis"]:
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(api["path"])) + "$"
            for op in api["operations"]:
                ops.append(Operation(op["httpMethod"], api["path"], op["nickname"],
                                     {p["name"]: p for p in op.get("parameters", [])}, re.compile(pattern)))
    return ops


@cache
def event_types() -> frozenset[str]:
    doc = json.loads((require_docs() / "events.json").read_text())
    return frozenset(doc["models"]["Event"]["subTypes"])


def find_operation(method: str, path: str) -> Operation:
    """The operation for a request path relative to /ari. Literal segments win over templates
    (`/channels/externalMedia` before `/channels/{channelId}`)."""
    matches = [op for op in operations() if op.method == method and op.regex.match(path)]
    assert matches, f"{method} {path} is not an ARI operation"
    return min(matches, key=lambda op: op.path.count("{"))


def check_request(request: httpx.Request) -> Operation:
    """Assert the request is exactly what the api-docs describe: path, method, query parameter
    names, required parameters, listed values, and body keys declared as body parameters."""
    path = request.url.path
    assert path.startswith("/ari/"), path
    op = find_operation(request.method, path[len("/ari"):])
    sent = dict(request.url.params)
    for name, value in sent.items():
        param = op.params.get(name)
        assert param is not None and param["paramType"] == "query", f"{op.nickname}: unknown query parameter {name!r}"
        allowed = param.get("allowableValues", {})
        if allowed.get("valueType") == "LIST":
            assert value in allowed["values"], f"{op.nickname}: {name}={value!r} not in {allowed['values']}"
        if param["dataType"] == "boolean":
            assert value in ("true", "false"), f"{op.nickname}: {name}={value!r} is not a boolean"
        if param["dataType"] in ("int", "long"):
            assert value.lstrip("-").isdigit(), f"{op.nickname}: {name}={value!r} is not an integer"
    for name, param in op.params.items():
        if param.get("required") and param["paramType"] == "query":
            assert name in sent, f"{op.nickname}: required parameter {name!r} missing"
    if request.content:
        body = json.loads(request.content)
        assert isinstance(body, dict)
        for key in body:
            param = op.params.get(key)
            assert param is not None and param["paramType"] == "body", f"{op.nickname}: unknown body key {key!r}"
    return op
