"""Shared API plumbing: body parsing (pydantic → one 400 with the field list), the clock, roles,
organization resolution and the JSON shapes of date-times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from flask import current_app, request
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from models.errors import NotFound, PermissionDenied, ValidationFailed
from models.organization import Organization, User
from models.rules.access import READERS
from models.rules.access import STAFF as STAFF  # views import it from here
from web.auth import require_user
from web.clock import now as now  # the views call it as c.now()
from web.dbsession import session as db_session

M = TypeVar("M", bound=BaseModel)


# pydantic error types → Russian messages (anything else keeps pydantic's own text).
_MESSAGES_RU: dict[str, str] = {
    "missing": "обязательное поле",
    "extra_forbidden": "неизвестное поле",
    "int_type": "ожидается целое число",
    "int_parsing": "ожидается целое число",
    "int_from_float": "ожидается целое число",
    "greater_than_equal": "слишком маленькое число",
    "less_than_equal": "слишком большое число",
    "bool_type": "ожидается true или false",
    "bool_parsing": "ожидается true или false",
    "string_type": "ожидается строка",
    "string_too_short": "значение не может быть пустым",
    "string_too_long": "слишком длинное значение",
    "enum": "недопустимое значение",
    "datetime_type": "ожидается дата и время ISO 8601",
    "datetime_parsing": "ожидается дата и время ISO 8601",
    "datetime_from_date_parsing": "ожидается дата и время ISO 8601",
    "model_type": "ожидается JSON-объект",
    "model_attributes_type": "ожидается JSON-объект",
    "none_required": "ожидается null",
}


def field_errors(exc: PydanticValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        message = _MESSAGES_RU.get(err["type"], err["msg"])
        if err["type"] == "enum" and "expected" in (err.get("ctx") or {}):
            message = f"недопустимое значение, ожидается одно из: {err['ctx']['expected']}"
        out.append({"field": loc, "message": message, "type": err["type"]})
    return out


def invalid_body(exc: PydanticValidationError) -> ValidationFailed:
    fields = field_errors(exc)
    names = ", ".join(f["field"] for f in fields)
    return ValidationFailed(f"ошибка в полях запроса: {names}", fields=fields)


def parse_body(model: type[M], *, optional: bool = False) -> M:
    """The JSON object body validated by `model`; any problem is a 400 that names the fields."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if optional:
            return model.model_validate({})
        raise ValidationFailed("требуется тело запроса: JSON-объект", field="body")
    try:
        data = current_app.json.loads(raw)  # depth-limited (web.inputs): too deep is "not JSON" too
    except ValueError as exc:
        raise ValidationFailed("тело запроса — не JSON", field="body") from exc
    if not isinstance(data, dict):
        raise ValidationFailed("тело запроса должно быть JSON-объектом", field="body")
    try:
        return model.model_validate_json(raw)
    except PydanticValidationError as exc:
        raise invalid_body(exc) from exc


def utc_iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def aware(moment: datetime | None, tz: ZoneInfo) -> datetime | None:
    """A date-time from the body: without an offset it is read in the organization's zone."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def staff() -> User:
    return require_user(STAFF)


def reader() -> User:
    """Staff, or a read-only inspector (a GET route: writes are refused to inspectors in web/auth.py)."""
    return require_user(READERS)


def user_orgs(user: User) -> list[int]:
    ids = user.organization_ids
    if not ids:
        raise NotFound("нет доступных организаций")
    return ids


def organization(org_id: int) -> Organization:
    org = db_session().get(Organization, org_id)
    if org is None:  # pragma: no cover - memberships reference existing rows
        raise NotFound("организация не найдена", organization_id=org_id)
    return org


def org_for_create(user: User, organization_id: int | None) -> Organization:
    """The organization a new object goes to: the one named, or the user's only one."""
    ids = user_orgs(user)
    if organization_id is None:
        if len(ids) > 1:
            raise ValidationFailed(
                "укажите organization_id: вы обслуживаете несколько организаций", field="organization_id",
                choices=ids,
            )
        return organization(ids[0])
    if organization_id not in ids:
        raise ValidationFailed("организация не найдена", field="organization_id", value=organization_id)
    return organization(organization_id)


def forbid(message: str = "недостаточно прав") -> PermissionDenied:
    return PermissionDenied(message)
