"""Length limits of every text a person types, one table for the panel, the API and the services.

The services check them (`limited`), so a panel form, an API call and a robot all meet the same
refusal; the API's pydantic schemas and the panel's `maxlength` attributes read the same numbers.
"""

from __future__ import annotations

from models.errors import ValidationFailed

# field name -> (maximum characters, the field as a person reads it)
TEXT_LIMITS: dict[str, tuple[int, str]] = {
    "description": (10_000, "описание"),  # reporter_phone: String(40) raw input; titles: String(200) columns
    "reporter_name": (200, "заявитель"),
    "reporter_phone": (40, "телефон"),
    "reason": (2_000, "причина"),
    "comment": (10_000, "комментарий"),
    "note": (2_000, "заметка"),
    "full_name": (200, "ФИО"),
    "incident_title": (200, "что случилось"),
    "incident_announcement": (2_000, "объявление"),
    "name": (200, "название"),
    "short_name": (60, "краткое название"),
}


def max_length(field: str) -> int:
    return TEXT_LIMITS[field][0]


def _grouped(n: int) -> str:
    return f"{n:,}".replace(",", "\u00a0")


def limited(field: str, value: str | None, *, form_field: str | None = None) -> str:
    """`value` stripped, or ValidationFailed in Russian when it is longer than `field`'s limit."""
    text = (value or "").strip()
    limit, title = TEXT_LIMITS[field]
    if len(text) > limit:
        raise ValidationFailed(
            f"поле «{title}» длиннее допустимого: не больше {_grouped(limit)} символов (введено {_grouped(len(text))})",
            field=form_field or field, limit=limit,
        )
    return text


__all__ = ["TEXT_LIMITS", "limited", "max_length"]
