"""Pydantic v2 models of the API: request bodies (validated strictly, unknown fields refused) and
response shapes (used for the OpenAPI document; tests check real responses against them).

Date-times are ISO 8601. A date-time without an offset is read in the organization's time zone;
responses are always UTC with a `Z` suffix. Ids and date-times in bodies are bounded (`web.inputs`):
an id past the INTEGER columns' range or a year outside 1900–2199 is a 400, not a 500.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.rules.text_limits import max_length as _limit
from models.ticket import Channel, TicketStatus, Visibility
from web.inputs import Id, Moment


class Body(BaseModel):
    """Request bodies: strict types (no "1" for 1), unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests --------------------------------------------------------------------------------------


class TicketCreate(Body):
    organization_id: Id | None = Field(
        None, description="Организация заявки; обязательна, если пользователь обслуживает несколько организаций"
    )
    category_id: Id
    description: str = Field(min_length=1, max_length=_limit("description"))
    house_id: Id | None = None
    premise_id: Id | None = None
    resident_id: Id | None = None
    reporter_name: str = Field("", max_length=_limit("reporter_name"))
    reporter_phone: str | None = Field(None, max_length=_limit("reporter_phone"), description="Любая запись номера; хранится в E.164")
    is_emergency: bool | None = Field(None, description="null: как у категории")
    not_emergency_reason: str = Field(
        "", max_length=_limit("reason"),
        description="Почему заявка аварийной категории не аварийная: обязательна при is_emergency=false "
                    "для аварийной категории (иначе 422 not-emergency-reason-required)",
    )
    damage_detected_at: Moment | None = None
    planned_due_at: Moment | None = None
    incident_id: Id | None = None
    executor_id: Id | None = None
    channel: Channel = Channel.API


class TicketUpdate(Body):
    """Only the fields present are changed; `reason` is written to the history."""

    description: str | None = Field(None, min_length=1, max_length=_limit("description"))
    reporter_name: str | None = Field(None, max_length=_limit("reporter_name"))
    reporter_phone: str | None = Field(None, max_length=_limit("reporter_phone"))
    house_id: Id | None = None
    premise_id: Id | None = None
    resident_id: Id | None = None
    category_id: Id | None = None
    is_emergency: bool | None = None
    damage_detected_at: Moment | None = None
    planned_due_at: Moment | None = None
    incident_id: Id | None = None
    reason: str = Field("", max_length=_limit("reason"))


# Fields of TicketUpdate that may not be set to null.
NOT_NULLABLE_UPDATE = ("description", "reporter_name", "category_id", "is_emergency")


class TransitionRequest(Body):
    to: TicketStatus
    reason: str = Field("", max_length=_limit("reason"))


class ReopenRequest(Body):
    reason: str = Field(min_length=1, max_length=_limit("reason"))


class AssignRequest(Body):
    executor_id: Id


class LocalizedRequest(Body):
    at: Moment | None = Field(None, description="Время локализации; по умолчанию — сейчас")


class CommentCreate(Body):
    text: str = Field(min_length=1, max_length=_limit("comment"))
    visibility: Visibility = Visibility.INTERNAL


# --- responses -------------------------------------------------------------------------------------


class Error(Out):
    error_id: str = Field(description="Машинный код ошибки (kebab-case)")
    message: str = Field(description="Сообщение на русском языке")
    details: dict[str, Any]


class Ref(Out):
    id: int


class UserRef(Ref):
    full_name: str


class HouseRef(Ref):
    address: str


class PremiseRef(Ref):
    number: str


class CategoryRef(Ref):
    name: str


class RatingRef(Out):
    value: int = Field(description="Оценка жителя от 1 до 5")
    source: str | None = Field(description="speech — голосом роботу, dtmf — с клавиатуры, dispatcher — со слов жителя")
    rated_at: datetime | None
    flagged: bool = Field(description="Оценка 1–2: требует внимания руководителя")


class Ticket(Out):
    id: int
    number: str = Field(description="Номер заявки, уникальный в организации: 2026-000123")
    organization_id: int
    channel: Channel
    status: TicketStatus
    status_title: str
    registered_at: datetime
    registered_by: UserRef | None
    reporter_name: str
    reporter_phone: str | None
    resident_id: int | None
    house: HouseRef | None
    premise: PremiseRef | None
    category: CategoryRef
    description: str
    is_emergency: bool
    not_emergency_reason: str | None = Field(description="Почему заявка аварийной категории не аварийная")
    executor: UserRef | None
    incident_id: int | None
    damage_detected_at: datetime | None
    localize_due_at: datetime | None
    due_at: datetime
    planned_due_at: datetime | None
    localized_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    overdue: bool = Field(description="Просрочена: ближайший срок уже прошёл")
    reopen_count: int
    municipality_notified_at: datetime | None
    rating: RatingRef | None


class HistoryEntry(Out):
    at: datetime
    user: UserRef | None
    action: str
    from_status: TicketStatus | None
    to_status: TicketStatus | None
    changes: dict[str, list[Any]]
    reason: str


class Comment(Out):
    id: int
    created_at: datetime
    author: UserRef | None
    text: str
    visibility: Visibility


class AttachmentOut(Out):
    id: int
    filename: str
    content_type: str
    size: int
    visibility: Visibility
    created_at: datetime


class TicketCard(Ticket):
    history: list[HistoryEntry]
    comments: list[Comment]
    attachments: list[AttachmentOut]


class MessageOut(Out):
    id: int
    ticket_id: int | None
    incident_id: int | None = Field(description="Сообщение ОМСУ/ЕДДС об аварии (не об одной заявке)")
    purpose: str = Field(description="Назначение: municipality_emergency, resident_done, executor_assigned, ...")
    purpose_title: str = Field(description="Назначение по-русски")
    channel: str = Field(description="email, sms, voice, push")
    recipient: str = Field(description="Адрес или номер (E.164)")
    subject: str
    body: str = Field(description="Текст сообщения, как он отправлен")
    status: str = Field(description="pending — в очереди, sent — отправлено, failed — не отправлено")
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    last_error: str
    provider_message_id: str | None = Field(description="Номер сообщения у оператора (почтового сервера, SMS-шлюза)")
    delivery_status: str | None = Field(description="Отчёт о доставке SMS: queued, sent, delivered, failed, unknown")
    delivery_title: str = Field(description="Отчёт о доставке по-русски (пусто — отчёта нет)")
    delivery_checked_at: datetime | None


class TicketMessages(Out):
    items: list[MessageOut]


class TicketPage(Out):
    items: list[Ticket]
    next_cursor: str | None = Field(description="Передайте в ?cursor= для следующей страницы; null — это последняя")


class Premise(Out):
    id: int
    number: str
    kind: str
    entrance: str | None
    floor: str | None


class HouseNote(Out):
    id: int
    text: str
    created_at: datetime


class House(Out):
    id: int
    organization_id: int
    address: str
    fias_id: str | None
    latitude: float | None
    longitude: float | None


class HouseCard(House):
    premises: list[Premise]
    notes: list[HouseNote]


class HousePage(Out):
    items: list[House]
    next_cursor: str | None


class Phone(Out):
    phone: str = Field(description="E.164")
    label: str


class OpenTicketRef(Out):
    id: int
    number: str
    status: TicketStatus
    status_title: str
    category: str
    registered_at: datetime


class Resident(Out):
    id: int
    organization_id: int
    full_name: str
    note: str = Field(description="Заметка для диспетчера")
    email: str | None
    phones: list[Phone]
    premise: PremiseRef | None
    house: HouseRef | None
    account: str | None = Field(description="Номер лицевого счёта")
    open_tickets: list[OpenTicketRef]


class ResidentList(Out):
    items: list[Resident]


class Organization(Out):
    id: int
    name: str
    short_name: str
    kind: str
    timezone: str
    hotline_numbers: list[str]


class OrganizationList(Out):
    items: list[Organization]


class Category(Out):
    id: int
    organization_id: int
    code: str
    name: str
    is_emergency: bool
    localize_minutes: int | None
    resolve_minutes: int | None
    window_start: str | None = Field(description="Начало окна отсчёта срока (местное время, ЧЧ:ММ)")
    window_end: str | None


class CategoryList(Out):
    items: list[Category]


class Executor(Out):
    id: int
    full_name: str
    organization_ids: list[int]


class ExecutorList(Out):
    items: list[Executor]


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    TicketCreate, TicketUpdate, TransitionRequest, ReopenRequest, AssignRequest, LocalizedRequest, CommentCreate,
)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Error, Ticket, TicketCard, TicketPage, Comment, House, HouseCard, HousePage, Resident, ResidentList,
    Organization, OrganizationList, Category, CategoryList, Executor, ExecutorList, TicketMessages,
)
