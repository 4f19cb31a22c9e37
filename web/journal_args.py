"""The journal's filters from query-string arguments: one parser for the panel, the API and the export.

Arguments: organization_id, house_id, status (repeatable or comma-separated), category_id, executor_id,
emergency (1/0), overdue (1/0), registered_from, registered_to, incident_started_from/_to,
incident_liquidated_from/_to (YYYY-MM-DD in the organization's zone — `_to` dates are inclusive —
or ISO 8601 date-times), q (ticket number, phone or text), cursor (from `next_cursor`), limit (1..200).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from werkzeug.datastructures import MultiDict

from models.errors import ValidationFailed
from models.queries import JournalFilter
from models.ticket import Ticket, TicketStatus
from web import inputs

DATE_FIELDS = (
    "registered_from", "registered_to", "incident_started_from", "incident_started_to",
    "incident_liquidated_from", "incident_liquidated_to",
)
DATE_RANGES = (("registered_from", "registered_to"), ("incident_started_from", "incident_started_to"),
               ("incident_liquidated_from", "incident_liquidated_to"))
INT_FIELDS = ("organization_id", "house_id", "category_id", "executor_id")
MAX_LIMIT = 200


def bool_arg(name: str, raw: str) -> bool | None:
    value = raw.strip().lower()
    if value in ("", "any"):
        return None
    if value in ("1", "true", "yes", "да"):
        return True
    if value in ("0", "false", "no", "нет"):
        return False
    raise ValidationFailed(f"{inputs.field_title(name)}: ожидается «да» или «нет»", field=name, value=raw)


def encode_cursor(ticket: Ticket) -> str:
    return inputs.encode_cursor(ticket.registered_at, ticket.id)


def parse_journal_filter(args: MultiDict[str, str], tz: ZoneInfo, default_limit: int = 50) -> JournalFilter:
    f = JournalFilter(limit=default_limit)
    for name in INT_FIELDS:
        raw = args.get(name, "").strip()
        if raw:
            setattr(f, name, inputs.optional_int(raw, name))
    statuses: list[TicketStatus] = []
    for raw in args.getlist("status"):
        for part in raw.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                statuses.append(TicketStatus(part))
            except ValueError as exc:
                raise ValidationFailed(f"неизвестный статус «{part[:40]}»", field="status", value=part) from exc
    f.statuses = statuses
    f.emergency = bool_arg("emergency", args.get("emergency", ""))
    f.overdue = bool_arg("overdue", args.get("overdue", ""))
    for name in DATE_FIELDS:
        raw = args.get(name, "").strip()
        if raw:
            setattr(f, name, inputs.moment_arg(name, raw, tz, end_day=name.endswith("_to")))
    for start, end in DATE_RANGES:
        low, high = getattr(f, start), getattr(f, end)
        if low is not None and high is not None and low > high:
            raise ValidationFailed(
                f"период задан наоборот: {inputs.FIELD_TITLES_RU[start]} {args.get(start, '').strip()} "
                f"позже, чем {inputs.FIELD_TITLES_RU[end]} {args.get(end, '').strip()}; поменяйте даты местами",
                field=start, value=args.get(start, ""))
    f.q = args.get("q", "").strip()[:200]
    cursor = args.get("cursor", "").strip()
    if cursor:
        f.before = inputs.decode_cursor(cursor)
    raw_limit = args.get("limit", "").strip()
    if raw_limit:
        limit = inputs.optional_int(raw_limit, "limit")
        if limit is None or not 1 <= limit <= MAX_LIMIT:
            raise ValidationFailed(f"число строк должно быть от 1 до {MAX_LIMIT}", field="limit", value=raw_limit)
        f.limit = limit
    return f
