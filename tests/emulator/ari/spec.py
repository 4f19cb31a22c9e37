"""Asterisk's own ARI description (Swagger 1.2), used to check the emulator's traffic.

Every REST call is matched against the operations of the resource documents (path template, method,
parameter names, types, allowable values, required parameters) and every event the emulator emits is
validated against the models of `events.json` (plus the Channel, Bridge, Playback, ... models of the other
documents, which the events reference). The documents are a vendored copy of
`shared/asterisk/ari-api-docs` (see `api-docs/README.md`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

API_DOCS_DIR = Path(__file__).with_name("api-docs")

# Asterisk's ast_true()/ast_false() spellings: what its ARI parser accepts for a boolean parameter.
_TRUE = {"yes", "true", "y", "t", "1", "on"}
_FALSE = {"no", "false", "n", "f", "0", "off"}
_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$")


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" | "query" | "body"
    data_type: str
    required: bool
    allow_multiple: bool
    allowable: dict[str, Any] | None


@dataclass(frozen=True)
class Operation:
    resource: str  # "channels"
    template: str  # "/channels/{channelId}/answer"
    method: str
    nickname: str
    params: tuple[Param, ...]
    regex: re.Pattern[str] = field(compare=False)

    @property
    def route(self) -> str:
        return f"{self.method} {self.template}"


@dataclass(frozen=True)
class Match:
    operation: Operation | None
    path_params: dict[str, str]
    problems: list[str]
    path_known: bool


def _compile(template: str) -> re.Pattern[str]:
    out = ""
    for part in re.split(r"(\{[^}]+\})", template):
        if part.startswith("{"):
            out += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            out += re.escape(part)
    return re.compile(f"^{out}$")


class AriSpec:
    """The loaded documents. `check_request` and `validate_event` return lists of problems (empty = ok)."""

    def __init__(self, docs_dir: Path = API_DOCS_DIR) -> None:
        self.docs_dir = docs_dir
        self.documents: dict[str, dict[str, Any]] = {}
        self.operations: list[Operation] = []
        self.models: dict[str, dict[str, Any]] = {}
        for path in sorted(docs_dir.glob("*.json")):
            doc = json.loads(path.read_text(encoding="utf-8"))
            self.documents[path.stem] = doc
            self.models.update(doc.get("models", {}))
            for api in doc.get("apis", []):
                for op in api.get("operations", []):
                    params = tuple(
                        Param(
                            name=p["name"],
                            where=p["paramType"],
                            data_type=p["dataType"],
                            required=bool(p.get("required")),
                            allow_multiple=bool(p.get("allowMultiple")),
                            allowable=p.get("allowableValues"),
                        )
                        for p in op.get("parameters", [])
                    )
                    self.operations.append(
                        Operation(path.stem, api["path"], op["httpMethod"], op["nickname"], params, _compile(api["path"]))
                    )
        # Literal segments win over templates: /channels/create before /channels/{channelId}.
        self.operations.sort(key=lambda o: o.template.count("{"))
        self.event_types = set(self.models["Event"]["subTypes"])

    def raw_document(self, name: str) -> bytes:
        return (self.docs_dir / f"{name}.json").read_bytes()

    # ---- REST ---------------------------------------------------------------------------------
    def match(self, method: str, path: str) -> Match:
        """Find the operation for `path` (without the /ari prefix)."""
        candidates = [(op, m) for op in self.operations if (m := op.regex.match(path))]
        if not candidates:
            return Match(None, {}, [f"no ARI resource matches path {path}"], False)
        for op, m in candidates:
            if op.method == method:
                return Match(op, m.groupdict(), [], True)
        allowed = sorted({op.method for op, _ in candidates})
        return Match(None, {}, [f"method {method} not allowed on {candidates[0][0].template} (allowed: {allowed})"], True)

    def check_params(self, op: Operation, query: dict[str, list[str]], body: Any) -> list[str]:
        """Check query and JSON-body parameters of a call to `op`.

        Asterisk reads non-body parameters from the query string or from the keys of a JSON object body;
        a body parameter (e.g. originate's `variables`) is the key of that object.
        """
        problems: list[str] = []
        by_name = {p.name: p for p in op.params if p.where != "path"}
        supplied: dict[str, list[Any]] = {}
        for name, values in query.items():
            if name == "api_key":
                continue
            supplied.setdefault(name, []).extend(values)
        if body is not None:
            if isinstance(body, dict):
                for name, value in body.items():
                    supplied.setdefault(name, []).append(value)
            else:
                problems.append(f"{op.route}: JSON body must be an object")
        for name, values in supplied.items():
            param = by_name.get(name)
            if param is None:
                problems.append(f"{op.route}: unknown parameter {name!r} (known: {sorted(by_name)})")
                continue
            if len(values) > 1:
                problems.append(f"{op.route}: parameter {name!r} given {len(values)} times")
            for value in values:
                problems.extend(f"{op.route}: {p}" for p in self._check_value(param, value))
        for param in op.params:
            if param.required and param.where != "path" and param.name not in supplied:
                problems.append(f"{op.route}: missing required parameter {param.name!r}")
        return problems

    def _check_value(self, param: Param, value: Any) -> list[str]:
        if param.where == "body":
            if param.data_type in ("containers", "object") and not isinstance(value, dict):
                return [f"body parameter {param.name!r} must be an object"]
            if isinstance(value, dict) and param.data_type == "containers":
                bad = [k for k, v in value.items() if not isinstance(v, str)]
                if bad:
                    return [f"body parameter {param.name!r}: values must be strings ({bad})"]
            return []
        if isinstance(value, list):
            items = value
        elif param.allow_multiple and isinstance(value, str):
            items = value.split(",")
        else:
            items = [value]
        if len(items) > 1 and not param.allow_multiple:
            return [f"parameter {param.name!r} does not take a list"]
        problems = []
        for item in items:
            problems.extend(self._check_scalar(param, item))
        return problems

    def _check_scalar(self, param: Param, value: Any) -> list[str]:
        name, dtype = param.name, param.data_type
        if dtype in ("int", "long"):
            if isinstance(value, bool):
                return [f"parameter {name!r} must be an integer, got {value!r}"]
            try:
                number = int(value)
            except (TypeError, ValueError):
                return [f"parameter {name!r} must be an integer, got {value!r}"]
            allow = param.allowable or {}
            if allow.get("valueType") == "RANGE":
                if "min" in allow and number < allow["min"]:
                    return [f"parameter {name!r} below minimum {allow['min']}: {number}"]
                if "max" in allow and number > allow["max"]:
                    return [f"parameter {name!r} above maximum {allow['max']}: {number}"]
            return []
        if dtype == "boolean":
            if isinstance(value, bool) or str(value).lower() in _TRUE | _FALSE:
                return []
            return [f"parameter {name!r} must be a boolean, got {value!r}"]
        if dtype == "string":
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                return [f"parameter {name!r} must be a string, got {value!r}"]
            allow = param.allowable or {}
            if allow.get("valueType") == "LIST" and str(value) not in allow["values"]:
                return [f"parameter {name!r} value {value!r} not in {allow['values']}"]
            return []
        return []

    # ---- events -------------------------------------------------------------------------------
    def validate_event(self, event: Any) -> list[str]:
        """Validate an event against Message + Event + its own model. Unknown fields are problems too."""
        if not isinstance(event, dict):
            return ["event is not a JSON object"]
        etype = event.get("type")
        if etype not in self.event_types:
            return [f"unknown event type {etype!r}"]
        props: dict[str, Any] = {}
        for model in ("Message", "Event", etype):
            props.update(self.models[model]["properties"])
        return self._check_object(etype, props, event, etype)

    def validate_model(self, model: str, value: Any) -> list[str]:
        return self._check_type(model, value, model)

    def _check_object(self, model: str, props: dict[str, Any], value: dict[str, Any], where: str) -> list[str]:
        problems = []
        for name, prop in props.items():
            if prop.get("required") and name not in value:
                problems.append(f"{where}: missing required field {name!r}")
        for name, item in value.items():
            prop = props.get(name)
            if prop is None:
                problems.append(f"{where}: field {name!r} is not in model {model}")
                continue
            problems.extend(self._check_type(prop["type"], item, f"{where}.{name}"))
            allow = prop.get("allowableValues")
            if allow and allow.get("valueType") == "LIST" and item not in allow["values"]:
                problems.append(f"{where}.{name}: {item!r} not in {allow['values']}")
        return problems

    def _check_type(self, dtype: str, value: Any, where: str) -> list[str]:
        if dtype.startswith("List[") and dtype.endswith("]"):
            if not isinstance(value, list):
                return [f"{where}: expected a list, got {type(value).__name__}"]
            out: list[str] = []
            for i, item in enumerate(value):
                out.extend(self._check_type(dtype[5:-1], item, f"{where}[{i}]"))
            return out
        simple = {
            "string": lambda v: isinstance(v, str),
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
            "object": lambda v: isinstance(v, dict),
            "Date": lambda v: isinstance(v, str) and bool(_DATE.match(v)),
        }
        if dtype in simple:
            return [] if simple[dtype](value) else [f"{where}: {value!r} is not a {dtype}"]
        model = self.models.get(dtype)
        if model is None:
            return [f"{where}: unknown type {dtype}"]
        if not isinstance(value, dict):
            return [f"{where}: expected {dtype} object"]
        return self._check_object(dtype, model.get("properties", {}), value, where)


@cache
def load_spec() -> AriSpec:
    return AriSpec()
