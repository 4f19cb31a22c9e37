"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

Every route is one entry of `OPERATIONS`; the schemas come from the pydantic models in
`schemas.py` (a test checks that every rule of the blueprint is documented and that real
responses match their schemas).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from models.base import INT_MAX
from models.rules.access import Scope
from models.rules.audit import OBJECT_TITLES_RU
from models.ticket import TicketStatus
from web.api.v1 import admin as admin_api
from web.api.v1 import admin_robot as robot_api
from web.api.v1 import admin_telephony as tel_api
from web.api.v1 import admin_users as users_api
from web.api.v1 import analytics as analytics_api
from web.api.v1 import audit_chain as chain_api
from web.api.v1 import bp
from web.api.v1 import calls as calls_api
from web.api.v1 import dispatch as dispatch_api
from web.api.v1 import executor as executor_api
from web.api.v1 import incidents as incidents_api
from web.api.v1 import inspection as inspection_api
from web.api.v1 import ratings as ratings_api
from web.api.v1 import recordings as recordings_api
from web.api.v1 import schemas as sc
from web.auth import public, route_scope
from web.inputs import MAX_YEAR, MIN_YEAR

REF = "#/components/schemas/{model}"
URL_PREFIX = "/api/v1"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _q(name: str, description: str, schema: dict[str, Any] | None = None, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or {"type": "string"}}


# Ids are INTEGER columns: a path id past the maximum is a 404, a query or body one a 400.
ID = {"type": "integer", "minimum": 1, "maximum": INT_MAX}
BOOL01 = {"type": "string", "enum": ["1", "0", "true", "false", "any"]}
DATE = {"type": "string", "description": "YYYY-MM-DD (местная дата организации) или дата-время ISO 8601"}
PAGING = [
    _q("cursor", "Курсор следующей страницы из next_cursor"),
    _q("limit", "Размер страницы, 1..200 (по умолчанию 50)", {"type": "integer", "minimum": 1, "maximum": 200}),
]
JOURNAL_FILTERS = [
    _q("organization_id", "Организация (из доступных пользователю)", ID),
    _q("house_id", "Дом", ID),
    _q("status", "Статус; можно повторять или перечислять через запятую",
       {"type": "array", "items": {"type": "string", "enum": [s.value for s in TicketStatus]}}),
    _q("category_id", "Категория", ID),
    _q("executor_id", "Исполнитель", ID),
    _q("emergency", "Только аварийные (1) или только неаварийные (0)", BOOL01),
    _q("overdue", "Только просроченные (1) или только непросроченные (0)", BOOL01),
    _q("registered_from", "Зарегистрирована не раньше", DATE),
    _q("registered_to", "Зарегистрирована не позже (дата включительно)", DATE),
    _q("incident_started_from", "Начало аварии не раньше", DATE),
    _q("incident_started_to", "Начало аварии не позже", DATE),
    _q("incident_liquidated_from", "Ликвидация аварии не раньше", DATE),
    _q("incident_liquidated_to", "Ликвидация аварии не позже", DATE),
    _q("q", "Поиск: номер заявки (2026-000123 или 123), телефон заявителя, текст описания или имя"),
    *PAGING,
]
ORG_FILTER = [_q("organization_id", "Только эта организация", ID)]


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    summary: str
    tag: str
    response: type[BaseModel]
    status: int = 200
    body: type[BaseModel] | None = None
    body_optional: bool = False
    params: list[dict[str, Any]] = field(default_factory=list)
    errors: tuple[int, ...] = (401,)
    description: str = ""
    public: bool = False
    media: str = "application/json"  # the success response's content type (audio/wav: a binary body)
    body_media: str = "application/json"  # multipart/form-data: a file upload


TICKET_ID = {"name": "ticket_id", "in": "path", "required": True, "schema": ID}
HOUSE_ID = {"name": "house_id", "in": "path", "required": True, "schema": ID}
RESIDENT_ID = {"name": "resident_id", "in": "path", "required": True, "schema": ID}
CALL_ID = {"name": "call_id", "in": "path", "required": True, "schema": ID}
MISSED_CALL_ID = {"name": "missed_call_id", "in": "path", "required": True, "schema": ID}
CALL_FILTERS = [
    _q("organization_id", "Организация (из доступных пользователю)", ID),
    _q("from", "Начало звонка не раньше", DATE),
    _q("to", "Начало звонка не позже (дата включительно)", DATE),
    _q("direction", "Направление", {"type": "string", "enum": ["inbound", "outbound"]}),
    _q("outcome", "Исход; можно повторять или перечислять через запятую; missed — все пропущенные входящие",
       {"type": "array", "items": {"type": "string", "enum": ["missed", "answered", "missed_timeout", "abandoned",
                                                              "voicemail", "no_answer", "busy", "failed"]}}),
    _q("phone", "Номер жителя в любой записи"),
    *PAGING,
]
LOCAL_DAY = {"type": "string", "format": "date", "description": "YYYY-MM-DD, местный день организации"}
RECORDING_ID = {"name": "recording_id", "in": "path", "required": True, "schema": ID}
MISSED_FILTERS = [
    _q("organization_id", "Организация (из доступных пользователю)", ID),
    _q("status", "open — очередь (по умолчанию), closed — закрытые, all — все",
       {"type": "string", "enum": ["open", "closed", "all"]}),
    _q("from", "Первый звонок не раньше", DATE),
    _q("to", "Первый звонок не позже (дата включительно)", DATE),
    _q("breach", "Только нарушения (1): житель достигнут позже 10 минут или не достигнут, голосовое сообщение "
                 "не прослушано за 10 минут", BOOL01),
    _q("cursor", "Курсор следующей страницы из next_cursor"),
    _q("limit", "Размер страницы, 1..500 (по умолчанию 100; очередь — 500)", {"type": "integer", "minimum": 1, "maximum": 500}),
]
STAFF_ONLY = "Роли: администратор, руководитель, диспетчер."
READERS_TOO = "Роли: администратор, руководитель, диспетчер, проверяющий (только чтение)."
EXECUTOR_TOO = "Исполнитель видит и меняет только назначенные ему заявки."
EXECUTOR_HOUSES = "Исполнитель видит только дома назначенных ему заявок."
ADMIN_ONLY = "Роль: администратор; только его организации."
EXECUTOR_ONLY = "Роль: исполнитель (приложение исполнителя)."
FIELD_ACTIONS = ("Исполнитель — по своим заявкам; диспетчер, руководитель, администратор — за исполнителя. Повтор "
                 "того же client_id отвечает 200 с первым результатом и ничего не меняет. 409 field-conflict — "
                 "заявку передали другому исполнителю или она уже в состоянии, где действие не имеет смысла "
                 "(сообщение — для показа исполнителю).")
RECORDING_LOGS_ROLES = "Роли: администратор, руководитель, проверяющий (только чтение)."
RECORDING_LOG_FILTERS = [_q("organization_id", "Только эта организация", ID),
                         _q("from", "Первый день (по умолчанию 29 дней назад)", LOCAL_DAY),
                         _q("to", "Последний день включительно (по умолчанию сегодня)", LOCAL_DAY)]
ORGANIZATION_ID = {"name": "organization_id", "in": "path", "required": True, "schema": ID}
PACK_ID = {"name": "pack_id", "in": "path", "required": True, "schema": ID}
INCIDENT_ID = {"name": "incident_id", "in": "path", "required": True, "schema": ID}
PHONE_ID = {"name": "phone_id", "in": "path", "required": True, "schema": ID}
RECORDING_ID = {"name": "recording_id", "in": "path", "required": True, "schema": ID}
CATEGORY_ID = {"name": "category_id", "in": "path", "required": True, "schema": ID}
USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": ID}
SESSION_ID = {"name": "session_id", "in": "path", "required": True, "schema": ID}
TOKEN_ID = {"name": "token_id", "in": "path", "required": True, "schema": ID}
WHOLE = (" Пользователя, который работает и в организации, которой администратор не управляет, меняет только "
         "администратор всех его организаций (иначе 403).")

OPERATIONS: tuple[Op, ...] = (
    Op("get", "/tickets", "Журнал заявок с фильтрами (новые сверху, постранично)", "tickets", sc.TicketPage,
       params=JOURNAL_FILTERS, errors=(400, 401), description=EXECUTOR_TOO),
    Op("post", "/tickets", "Зарегистрировать заявку", "tickets", sc.Ticket, 201, sc.TicketCreate,
       errors=(400, 401, 403, 422), description=STAFF_ONLY + " Номер и нормативные сроки назначаются автоматически."
       " Заявка аварийной категории с is_emergency=false требует not_emergency_reason."),
    Op("get", "/incidents", "Аварии: идущие и прошедшие, новые сверху", "incidents", incidents_api.IncidentList,
       params=[_q("organization_id", "Только эта организация", ID), _q("active", "true — идущие, false — ликвидированные",
               {"type": "string", "enum": ["true", "false"]}), _q("limit", "Сколько (1–200, по умолчанию 100)",
                                                                  {"type": "integer", "minimum": 1, "maximum": 200})],
       errors=(400, 401, 403, 404), description=READERS_TOO),
    Op("post", "/incidents", "Зарегистрировать аварию в доме", "incidents", incidents_api.IncidentOut, 201,
       incidents_api.IncidentCreate, errors=(400, 401, 403, 404),
       description=STAFF_ONLY + " Как на странице «Аварии»: звонящим из дома показывается объявление, ОМСУ/ЕДДС "
       "получает сообщение (для ХВС, ГВС, отопления, канализации, электро- и газоснабжения)."),
    Op("get", "/incidents/{incident_id}", "Авария", "incidents", incidents_api.IncidentOut, params=[INCIDENT_ID],
       errors=(401, 403, 404), description=READERS_TOO),
    Op("post", "/incidents/{incident_id}/localize", "Отметить аварию локализованной", "incidents",
       incidents_api.IncidentOut, body=incidents_api.IncidentMark, body_optional=True, params=[INCIDENT_ID],
       errors=(400, 401, 403, 404), description=STAFF_ONLY + " ОМСУ/ЕДДС получает сообщение."),
    Op("post", "/incidents/{incident_id}/liquidate", "Отметить аварию ликвидированной", "incidents",
       incidents_api.IncidentOut, body=incidents_api.IncidentMark, body_optional=True, params=[INCIDENT_ID],
       errors=(400, 401, 403, 404), description=STAFF_ONLY + " ОМСУ/ЕДДС получает сообщение; регистрируется "
       "заявка «Внеочередной осмотр общего имущества после аварии» со сроком сутки (follow_up_ticket_id), если "
       "эта категория организации включена."),
    Op("post", "/incidents/{incident_id}/notify-residents", "Оповестить жителей дома об аварии или её устранении",
       "incidents", incidents_api.ResidentsNoticeOut, body=incidents_api.ResidentsNotice, params=[INCIDENT_ID],
       errors=(400, 401, 403, 404), description=STAFF_ONLY + " SMS на мобильный или письмо каждому жителю дома по "
       "шаблону incident или restored; отказ жителя и тихие часы соблюдаются; оповещённым раньше — не повторно."),
    Op("get", "/tickets/{ticket_id}/messages", "Сообщения по заявке: ОМСУ/ЕДДС, жителю, исполнителю", "tickets",
       sc.TicketMessages, params=[TICKET_ID], errors=(401, 403, 404),
       description=READERS_TOO + " Текст, канал, получатель, номер у оператора и отчёт о доставке каждого "
       "сообщения, и сообщения ОМСУ/ЕДДС об аварии, к которой привязана заявка."),
    Op("get", "/tickets/{ticket_id}", "Карточка заявки с историей и комментариями", "tickets", sc.TicketCard,
       params=[TICKET_ID], errors=(401, 404), description=EXECUTOR_TOO),
    Op("patch", "/tickets/{ticket_id}", "Изменить поля заявки", "tickets", sc.Ticket, body=sc.TicketUpdate,
       params=[TICKET_ID], errors=(400, 401, 403, 404, 409, 422),
       description=STAFF_ONLY + " Сроки пересчитываются при смене категории, аварийности или времени повреждения."
       " Снять аварийность с заявки аварийной категории можно только с причиной (reason)."),
    Op("post", "/tickets/{ticket_id}/transition", "Сменить статус заявки", "tickets", sc.Ticket,
       body=sc.TransitionRequest, params=[TICKET_ID], errors=(400, 401, 403, 404, 409),
       description="Отмена и отклонение требуют причину. " + EXECUTOR_TOO
       + " Исполнитель может перевести заявку только в «В работе» или «Выполнена»."),
    Op("post", "/tickets/{ticket_id}/reopen", "Открыть заявку повторно", "tickets", sc.Ticket,
       body=sc.ReopenRequest, params=[TICKET_ID], errors=(400, 401, 403, 404, 409),
       description=STAFF_ONLY + " Счётчик повторных открытий увеличивается."),
    Op("post", "/tickets/{ticket_id}/assign", "Назначить исполнителя", "tickets", sc.Ticket,
       body=sc.AssignRequest, params=[TICKET_ID], errors=(400, 401, 403, 404, 409), description=STAFF_ONLY),
    Op("post", "/tickets/{ticket_id}/localized", "Отметить локализацию аварии", "tickets", sc.Ticket,
       body=sc.LocalizedRequest, body_optional=True, params=[TICKET_ID], errors=(400, 401, 404, 409),
       description=EXECUTOR_TOO),
    Op("post", "/tickets/{ticket_id}/comments", "Добавить комментарий", "tickets", sc.Comment, 201,
       sc.CommentCreate, params=[TICKET_ID], errors=(400, 401, 404), description=EXECUTOR_TOO),
    Op("get", "/houses", "Дома (поиск по адресу, постранично)", "houses", sc.HousePage,
       params=[_q("q", "Слова адреса"), *ORG_FILTER, *PAGING], errors=(400, 401), description=EXECUTOR_HOUSES),
    Op("get", "/houses/{house_id}", "Карточка дома: помещения и заметки", "houses", sc.HouseCard,
       params=[HOUSE_ID], errors=(401, 404), description=EXECUTOR_HOUSES),
    Op("patch", "/houses/{house_id}/location", "Координаты дома (карта диспетчера)", "houses", sc.House,
       body=dispatch_api.HouseLocation, params=[HOUSE_ID], errors=(400, 401, 403, 404),
       description=STAFF_ONLY + " Обе координаты null — очистить. Изменение записывается в журнал изменений."),
    Op("get", "/dispatch/map", "Карта диспетчера: открытые заявки по срочности и исполнители на смене", "dispatch",
       dispatch_api.DispatchMap, params=[_q("organization_id", "Организация (обязательна, если их несколько)", ID)],
       errors=(400, 401, 403), description=READERS_TOO + " Проверяющему местоположение исполнителей не выдаётся."),
    Op("get", "/tickets/{ticket_id}/nearest-executors", "Ближайшие свободные исполнители для аварийной заявки",
       "dispatch", dispatch_api.NearestExecutorList, params=[TICKET_ID], errors=(401, 403, 404),
       description=STAFF_ONLY + " Свободен — на смене и без открытой аварийной заявки; расстояние по прямой "
       "от последнего местоположения до дома."),
    Op("get", "/residents", "Поиск жителя по телефону (карточка звонящего)", "residents", sc.ResidentList,
       params=[_q("phone", "Номер в любой записи; сравнивается в E.164", required=True)], errors=(400, 401, 403),
       description=READERS_TOO + " Неизвестный номер — пустой список."),
    Op("get", "/residents/{resident_id}", "Житель", "residents", sc.Resident, params=[RESIDENT_ID],
       errors=(401, 403, 404), description=READERS_TOO),
    Op("get", "/organizations", "Организации пользователя", "directory", sc.OrganizationList),
    Op("get", "/categories", "Категории заявок с нормативными сроками", "directory", sc.CategoryList,
       params=ORG_FILTER, errors=(400, 401)),
    Op("get", "/executors", "Исполнители", "directory", sc.ExecutorList, params=ORG_FILTER,
       errors=(400, 401, 403), description=READERS_TOO),
    Op("get", "/calls", "Журнал звонков (новые сверху, постранично)", "calls", calls_api.CallPage,
       params=CALL_FILTERS, errors=(400, 401, 403), description=READERS_TOO),
    Op("get", "/calls/{call_id}", "Звонок: записи и связанные заявки", "calls", calls_api.Call, params=[CALL_ID],
       errors=(401, 403, 404), description=READERS_TOO + " Прослушивание и скачивание записей — в панели, с журналом доступа."),
    Op("get", "/calls/compliance", "Ответ за 5 минут, перезвон и прослушивание голосовых за 10 минут, по дням; нарушения",
       "calls", calls_api.ComplianceList,
       params=[_q("organization_id", "Только эта организация", ID), _q("from", "Первый день (по умолчанию 6 дней назад)",
                                                                       LOCAL_DAY),
               _q("to", "Последний день включительно (по умолчанию сегодня)", LOCAL_DAY)],
       errors=(400, 401, 403, 404),
       description="Роли: администратор, руководитель, проверяющий (как и страница панели). День — местный день каждой "
       "организации: поступления звонка, первого пропущенного звонка, получения голосового сообщения. Для перезвона "
       "засчитываются обратный вызов, на который житель ответил, и повторный звонок жителя, принятый диспетчером. "
       "`breaches` — каждое нарушение с фактическим временем."),
    Op("get", "/missed-calls", "Пропущенные звонки: очередь (срочные сверху) или закрытые, с отметкой о нарушении",
       "calls", calls_api.MissedCallList, params=MISSED_FILTERS, errors=(400, 401, 403),
       description=READERS_TOO + " Закрытые и все — новые сверху, постранично; у каждого срок, фактическое время, "
       "когда житель был достигнут, и обратные вызовы со временем ответа, кто перезванивал и записью."),
    Op("get", "/missed-calls/{missed_call_id}", "Пропущенный звонок: срок, факт, обратные вызовы, голосовое сообщение",
       "calls", calls_api.MissedCall, params=[MISSED_CALL_ID], errors=(401, 403, 404), description=READERS_TOO),
    Op("post", "/voice-messages/{recording_id}/reviewed", "Отметить голосовое сообщение прослушанным", "calls",
       calls_api.VoiceMessageReviewed, params=[RECORDING_ID], errors=(401, 403, 404),
       description=STAFF_ONLY + " Записывает, кто и когда прослушал; повторная отметка ничего не меняет. "
       "Не прослушанное за 10 минут с получения — нарушение ПП 416."),
    Op("post", "/missed-calls/{missed_call_id}/close", "Закрыть пропущенный звонок с причиной", "calls",
       calls_api.MissedCall, body=calls_api.MissedCallCloseRequest, params=[MISSED_CALL_ID],
       errors=(400, 401, 403, 404, 409), description=STAFF_ONLY + " Причина обязательна."),
    Op("get", "/ratings/executors", "Средняя оценка жителей по исполнителям за период", "ratings",
       ratings_api.ExecutorRatingList,
       params=[_q("organization_id", "Только эта организация", ID),
               _q("from", "Первый день (по умолчанию 29 дней назад)", LOCAL_DAY),
               _q("to", "Последний день включительно (по умолчанию сегодня)", LOCAL_DAY)],
       errors=(400, 401, 403, 404),
       description="Роли: администратор, руководитель. Оценки считаются по исполнителю на момент оценки; "
       "день — местный день выбранной организации (без organization_id — первой из доступных)."),
    Op("get", "/analytics", "Аналитика за период: нагрузка и сроки, время ответа, оценки по неделям", "analytics",
       analytics_api.AnalyticsOut, params=RECORDING_LOG_FILTERS, errors=(400, 401, 403, 404),
       description=RECORDING_LOGS_ROLES + " Заявки, зарегистрированные за период, по исполнителям, категориям и "
       "домам (больше заявок — выше); входящие звонки по времени ожидания ответа; оценки по местным неделям. "
       "Те же цифры, что на странице «Отчёты → Аналитика» и в её выгрузке."),
    Op("get", "/analytics/today", "Соблюдение ПП 416 сегодня по каждой организации", "analytics",
       analytics_api.TodayList, errors=(401, 403),
       description=RECORDING_LOGS_ROLES + " С начала местных суток: ответ за 5 минут, перезвон за 10 минут, "
       "открытые нарушения, не локализованные аварии — как на странице «Отчёты → Сегодня»."),
    Op("get", "/analytics/interruptions", "Перерывы в подаче коммунальных услуг за месяц по домам", "analytics",
       analytics_api.InterruptionsOut, errors=(400, 401, 403, 404),
       params=[_q("organization_id", "Только эта организация", ID),
               _q("month", "Месяц ГГГГ-ММ (по умолчанию текущий месяц организации)",
                  {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"})],
       description=RECORDING_LOGS_ROLES + " Аварии по ресурсам ХВС, ГВС, водоотведение, электроснабжение, "
       "газоснабжение, отопление от начала до ликвидации против допустимых перерывов (приложение 1 к ПП № 354 или "
       "значения организации): всего за месяц, самый долгий, часы сверх нормы и снижение платы (0,15 % за час) — "
       "как на странице «Отчёты → Перерывы в подаче услуг». Сначала строки с превышением."),
    Op("get", "/audit/chain", "Проверка цепочки хешей истории заявок", "audit", chain_api.ChainList,
       params=[_q("organization_id", "Только эта организация", ID)], errors=(400, 401, 403, 404),
       description="Роли: администратор, руководитель, проверяющий. История заявок каждой организации связана "
       "цепочкой SHA-256 (каждая запись хранит хеш своего содержимого и предыдущей записи): проверка пересчитывает "
       "её и называет первое нарушенное звено. Голова целой цепочки (last_hash) — отметка, которую стоит записать."),
    Op("get", "/recordings/access-log", "Журнал доступа к записям разговоров за период", "recordings",
       recordings_api.RecordingAccessLog, params=RECORDING_LOG_FILTERS, errors=(400, 401, 403, 404),
       description=RECORDING_LOGS_ROLES + " Каждое прослушивание и скачивание записи (152-ФЗ), новые сверху."),
    Op("get", "/recordings/purge-log", "Журнал удаления записей разговоров за период", "recordings",
       recordings_api.RecordingPurgeLog, params=RECORDING_LOG_FILTERS, errors=(400, 401, 403, 404),
       description=RECORDING_LOGS_ROLES + " Что удалено, когда, какого размера и по какому правилу "
       "(срок хранения организации или вручную), новые сверху."),
    Op("post", "/inspection-packs", "Заказать пакет документов для проверки ГЖИ за период", "reports",
       inspection_api.InspectionPackOut, 202, inspection_api.InspectionPackCreate, errors=(400, 401, 403, 404),
       description=RECORDING_LOGS_ROLES + " Пакет (ZIP: журнал заявок в Excel и PDF, нарушения сроков, уведомления "
       "ОМСУ/ЕДДС и жителей, оценки, журналы записей разговоров, титульный лист с SHA-256 всех файлов и головой "
       "цепочки хешей) формируется в фоне: ответ — задание; проверяющий тоже может заказать пакет."),
    Op("get", "/inspection-packs/{pack_id}", "Состояние пакета для проверки", "reports",
       inspection_api.InspectionPackOut, params=[PACK_ID], errors=(401, 403, 404),
       description=RECORDING_LOGS_ROLES + " Пакет другой организации — 404."),
    Op("get", "/inspection-packs/{pack_id}/file", "Скачать пакет для проверки (ZIP)", "reports",
       inspection_api.InspectionPackOut, params=[PACK_ID], errors=(401, 403, 404), media="application/zip",
       description=RECORDING_LOGS_ROLES + " Каждое скачивание записывается (кто, когда, откуда)."),
    Op("post", "/recordings/{recording_id}/delete", "Удалить запись разговора вручную", "recordings",
       recordings_api.RecordingDeletedOut, body=recordings_api.RecordingDeleteRequest, params=[RECORDING_ID],
       errors=(400, 401, 403, 404, 409, 410),
       description="Роли: администратор, руководитель. Файл удаляется, удаление пишется в журнал удаления "
       "(правило «вручную», кто и почему). Запись звонка по заявке с запретом удаления не удаляется (409, "
       "error_id recording-held)."),
    Op("get", "/admin/organizations", "Настройки организаций администратора", "admin",
       admin_api.OrganizationSettingsList, description=ADMIN_ONLY),
    Op("post", "/admin/organizations", "Добавить организацию", "admin", admin_api.OrganizationSettings, 201,
       admin_api.OrganizationCreate, errors=(400, 401, 403),
       description=ADMIN_ONLY + " Организация получает категории заявок по ПП 416, добавивший её администратор — "
       "доступ к ней. Ошибки перечисляются по полям в details.fields."),
    Op("get", "/admin/organizations/{organization_id}", "Настройки организации", "admin",
       admin_api.OrganizationSettings, params=[ORGANIZATION_ID], errors=(401, 403, 404), description=ADMIN_ONLY),
    Op("patch", "/admin/organizations/{organization_id}", "Изменить настройки организации", "admin",
       admin_api.OrganizationSettings, body=admin_api.OrganizationSettingsUpdate, params=[ORGANIZATION_ID],
       errors=(400, 401, 403, 404),
       description=ADMIN_ONLY + " Меняются только переданные поля; каждое изменение — в журнале изменений. "
       "Ошибки перечисляются по полям в details.fields."),
    Op("get", "/admin/categories", "Категории заявок, включая отключённые", "admin", admin_api.AdminCategoryList,
       params=ORG_FILTER, errors=(400, 401, 403), description=ADMIN_ONLY),
    Op("post", "/admin/categories", "Добавить категорию заявок", "admin", admin_api.AdminCategory, 201,
       admin_api.CategoryCreate, errors=(400, 401, 403), description=ADMIN_ONLY),
    Op("get", "/admin/categories/{category_id}", "Категория заявок", "admin", admin_api.AdminCategory,
       params=[CATEGORY_ID], errors=(401, 403, 404), description=ADMIN_ONLY),
    Op("patch", "/admin/categories/{category_id}", "Изменить или отключить категорию заявок", "admin",
       admin_api.AdminCategory, body=admin_api.CategoryUpdate, params=[CATEGORY_ID], errors=(400, 401, 403, 404),
       description=ADMIN_ONLY + " Новые сроки действуют для заявок, зарегистрированных после изменения; "
       "сроки зарегистрированных заявок не меняются."),
    Op("get", "/admin/audit", "Журнал изменений настроек (новые сверху, постранично)", "admin", admin_api.AuditPage,
       params=[_q("organization_id", "Только эта организация", ID),
               _q("object_type", "Вид объекта", {"type": "string", "enum": list(OBJECT_TITLES_RU)}),
               _q("object_id", "Объект", ID), _q("actor_id", "Кто менял (пользователь)", ID),
               _q("from", "Не раньше", DATE), _q("to", "Не позже (дата включительно)", DATE),
               _q("q", "Слова названия объекта, поля, значения или имени"),
               _q("cursor", "Курсор следующей страницы из next_cursor", ID),
               _q("limit", "Размер страницы, 1..200 (по умолчанию 50)", {"type": "integer", "minimum": 1, "maximum": 200})],
       errors=(400, 401, 403, 404), description=ADMIN_ONLY + " Время — UTC."),
    Op("get", "/admin/users", "Пользователи организаций администратора", "admin", users_api.AdminUserList,
       params=[_q("organization_id", "Только эта организация", ID), _q("q", "Слова ФИО, логина или адреса эл. почты"),
               _q("active", "1 — действующие, 0 — отключённые, any или без параметра — все",
                  {"type": "string", "enum": ["1", "0", "true", "false", "any"]})],
       errors=(400, 401, 403), description=ADMIN_ONLY),
    Op("post", "/admin/users", "Добавить пользователя (временный пароль — в ответе, один раз)", "admin",
       users_api.AdminUserCreated, 201, users_api.AdminUserCreate, errors=(400, 401, 403),
       description=ADMIN_ONLY + " При первом входе пользователь задаёт свой пароль. Ошибки — по полям в details.fields."),
    Op("get", "/admin/users/{user_id}", "Пользователь", "admin", users_api.AdminUser, params=[USER_ID],
       errors=(401, 403, 404), description=ADMIN_ONLY),
    Op("patch", "/admin/users/{user_id}", "Изменить или отключить пользователя", "admin", users_api.AdminUser,
       body=users_api.AdminUserUpdate, params=[USER_ID], errors=(400, 401, 403, 404),
       description=ADMIN_ONLY + " Меняются только переданные поля; пользователь не удаляется." + WHOLE),
    Op("post", "/admin/users/{user_id}/password-reset", "Сбросить пароль: временный пароль — в ответе, один раз",
       "admin", users_api.TemporaryPassword, params=[USER_ID], errors=(401, 403, 404),
       description=ADMIN_ONLY + " Сессии пользователя завершаются, блокировка входа снимается." + WHOLE),
    Op("post", "/admin/users/{user_id}/two-factor-reset", "Сбросить двухфакторный вход (потерян телефон)", "admin",
       users_api.AdminUser, params=[USER_ID], errors=(401, 403, 404), description=ADMIN_ONLY + WHOLE),
    Op("post", "/admin/users/{user_id}/unlock", "Снять блокировку входа после неудачных попыток", "admin",
       users_api.AdminUser, params=[USER_ID], errors=(401, 403, 404), description=ADMIN_ONLY),
    Op("get", "/admin/users/{user_id}/sessions", "Открытые сессии пользователя в панели", "admin",
       users_api.AdminSessionList, params=[USER_ID], errors=(401, 403, 404), description=ADMIN_ONLY + WHOLE),
    Op("post", "/admin/users/{user_id}/sessions/end-all", "Выйти на всех устройствах", "admin",
       users_api.SessionsEnded, params=[USER_ID], errors=(401, 403, 404), description=ADMIN_ONLY + WHOLE),
    Op("post", "/admin/users/{user_id}/sessions/{session_id}/end", "Завершить одну сессию", "admin",
       users_api.SessionsEnded, params=[USER_ID, SESSION_ID], errors=(401, 403, 404), description=ADMIN_ONLY + WHOLE),
    Op("get", "/admin/users/{user_id}/tokens", "API-токены пользователя", "admin", users_api.AdminTokenList,
       params=[USER_ID], errors=(401, 403, 404), description=ADMIN_ONLY + WHOLE),
    Op("post", "/admin/users/{user_id}/tokens", "Выпустить API-токен пользователю (секрет — в ответе, один раз)",
       "admin", users_api.AdminTokenIssued, 201, users_api.AdminTokenCreate, params=[USER_ID],
       errors=(400, 401, 403, 404),
       description=ADMIN_ONLY + " Область settings — только администраторам, telephony — не исполнителям." + WHOLE),
    Op("post", "/admin/users/{user_id}/tokens/{token_id}/revoke", "Отозвать API-токен пользователя", "admin",
       users_api.AdminToken, params=[USER_ID, TOKEN_ID], errors=(401, 403, 404), description=ADMIN_ONLY + WHOLE),
    Op("get", "/admin/robot/{organization_id}", "Робот и уведомления: звонок за оценкой, тихие часы, шаблоны уведомлений",
       "admin", robot_api.RobotSettingsOut, params=[ORGANIZATION_ID], errors=(401, 403, 404), description=ADMIN_ONLY),
    Op("patch", "/admin/robot/{organization_id}", "Изменить настройки робота и уведомлений", "admin",
       robot_api.RobotSettingsOut, body=robot_api.RobotSettingsUpdate, params=[ORGANIZATION_ID],
       errors=(400, 401, 403, 404),
       description=ADMIN_ONLY + " Меняются только переданные поля (в `templates` — только названные события); "
       "проверки и сообщения — как на странице «Робот и уведомления»; каждое изменение — в журнале изменений."),
    Op("get", "/admin/telephony/{organization_id}", "Настройки телефонии и телефоны диспетчеров", "admin",
       tel_api.TelephonySettingsOut, params=[ORGANIZATION_ID], errors=(401, 403, 404), description=ADMIN_ONLY),
    Op("patch", "/admin/telephony/{organization_id}", "Изменить настройки телефонии", "admin",
       tel_api.TelephonySettingsOut, body=tel_api.TelephonySettingsUpdate, params=[ORGANIZATION_ID],
       errors=(400, 401, 403, 404),
       description=ADMIN_ONLY + " Меняются только переданные поля; действуют со следующего звонка (openads ari не "
       "перезапускается); каждое изменение — в журнале изменений."),
    Op("post", "/admin/telephony/{organization_id}/phones", "Добавить телефон диспетчера", "admin", tel_api.DispatcherPhoneOut,
       201, tel_api.PhoneCreate, params=[ORGANIZATION_ID], errors=(400, 401, 403, 404), description=ADMIN_ONLY),
    Op("get", "/admin/phones/{phone_id}", "Телефон диспетчера", "admin", tel_api.DispatcherPhoneOut, params=[PHONE_ID],
       errors=(401, 403, 404), description=ADMIN_ONLY),
    Op("patch", "/admin/phones/{phone_id}", "Изменить телефон диспетчера или его место в очереди вызова", "admin",
       tel_api.DispatcherPhoneOut, body=tel_api.PhoneUpdate, params=[PHONE_ID], errors=(400, 401, 403, 404),
       description=ADMIN_ONLY),
    Op("delete", "/admin/phones/{phone_id}", "Удалить телефон диспетчера", "admin", tel_api.TelephonySettingsOut,
       params=[PHONE_ID], errors=(401, 403, 404),
       description=ADMIN_ONLY + " Отвечает настройками телефонии организации после удаления."),
    Op("post", "/admin/telephony/{organization_id}/prompt", "Синтезировать подсказку, как её услышит житель",
       "admin", tel_api.PromptRequest, body=tel_api.PromptRequest, params=[ORGANIZATION_ID],
       errors=(400, 401, 403, 404, 503), media="audio/wav",
       description=ADMIN_ONLY + " Ответ — WAV (8 кГц, моно), синтез настроенным провайдером речи; 503 — синтез "
       "недоступен (error_id speech-unavailable)."),
    Op("get", "/admin/telephony/{organization_id}/status", "Состояние телефонии", "admin", tel_api.TelephonyStatusOut,
       params=[ORGANIZATION_ID], errors=(401, 403, 404),
       description=ADMIN_ONLY + " Подключения openads ari (по его сигналу раз в несколько секунд), транк, "
       "состояние телефонов организации, последний звонок по каждому пути, тестовые звонки."),
    Op("post", "/admin/telephony/{organization_id}/test-calls", "Тестовый звонок на телефон диспетчера", "admin",
       tel_api.TestCallOut, 202, tel_api.TestCallCreate, params=[ORGANIZATION_ID], errors=(400, 401, 403, 404, 409),
       description=ADMIN_ONLY + " openads ari звонит на телефон и проигрывает проверочную фразу; итог — в "
       "test_calls состояния телефонии. 409 — на этот телефон тестовый звонок уже идёт."),
    Op("get", "/executor/push-key", "Открытый ключ VAPID для подписки устройства на push", "executor",
       executor_api.PushKeyOut, errors=(401, 403), description=EXECUTOR_ONLY),
    Op("post", "/executor/push-subscriptions", "Подписать это устройство на push (PushSubscription.toJSON())",
       "executor", executor_api.PushSubscriptionOut, 201, executor_api.PushSubscriptionRequest,
       errors=(400, 401, 403), description=EXECUTOR_ONLY + " Та же подписка повторно — обновляется."),
    Op("delete", "/executor/push-subscriptions", "Отписать устройство от push", "executor",
       executor_api.PushRemovedOut, body=executor_api.PushUnsubscribeRequest, errors=(400, 401, 403),
       description=EXECUTOR_ONLY),
    Op("get", "/executor/alert-settings", "Мои уведомления: каналы и тихие часы", "executor",
       executor_api.AlertSettingsOut, errors=(401, 403), description=EXECUTOR_ONLY),
    Op("put", "/executor/alert-settings", "Изменить мои уведомления", "executor", executor_api.AlertSettingsOut,
       body=executor_api.AlertSettingsRequest, errors=(400, 401, 403),
       description=EXECUTOR_ONLY + " Тихие часы на аварийные заявки не действуют."),
    Op("get", "/executor/tickets", "Мои заявки: открытые, назначенные мне (аварийные, затем ближайший срок)",
       "executor", executor_api.FieldTicketList, errors=(401, 403), description=EXECUTOR_ONLY),
    Op("get", "/executor/tickets/{ticket_id}", "Моя заявка: адрес, подъезд и этаж, житель, заметки по дому, история",
       "executor", executor_api.FieldTicketCard, params=[TICKET_ID], errors=(401, 403, 404),
       description=EXECUTOR_TOO + " Диспетчер, руководитель, администратор и проверяющий видят карточку любой заявки "
       "своей организации."),
    Op("post", "/executor/tickets/{ticket_id}/actions", "Действие исполнителя (идемпотентно по client_id)",
       "executor", executor_api.ActionOut, 201, executor_api.ActionRequest, params=[TICKET_ID],
       errors=(400, 401, 403, 404, 409), description=FIELD_ACTIONS),
    Op("post", "/executor/tickets/{ticket_id}/files", "Фото (до/после) или голосовая заметка (идемпотентно по client_id)",
       "executor", executor_api.ActionOut, 201, executor_api.FileUpload, params=[TICKET_ID],
       errors=(400, 401, 403, 404, 409, 413), body_media="multipart/form-data", description=FIELD_ACTIONS),
    Op("get", "/executor/duty", "Моя смена", "executor", executor_api.DutyOut,
       params=[_q("organization_id", "Организация (если их несколько)", ID)], errors=(400, 401, 403),
       description=EXECUTOR_ONLY),
    Op("post", "/executor/duty", "Выйти на смену или уйти со смены", "executor", executor_api.DutyOut,
       body=executor_api.DutyRequest, errors=(400, 401, 403), description=EXECUTOR_ONLY),
    Op("post", "/executor/position", "Местоположение исполнителя (только на смене)", "executor",
       executor_api.PositionStored, 201, executor_api.PositionRequest, errors=(400, 401, 403, 409),
       description=EXECUTOR_ONLY + " Не на смене — 409 off-duty, ничего не сохраняется. Хранится столько дней, "
       "сколько задано в настройках организации."),
    Op("get", "/executor-positions", "Исполнители на карте: смена, последнее местоположение и время связи",
       "executor", executor_api.ExecutorPositionList, params=[_q("organization_id", "Организация", ID)],
       errors=(400, 401, 403), description=STAFF_ONLY + " Персональные данные (152-ФЗ): только своей организации."),
    Op("get", "/openapi.json", "Этот документ OpenAPI", "meta", sc.Error, public=True, errors=()),
)

ERROR_TEXTS = {
    400: "Некорректный запрос: details.fields перечисляет поля с ошибками",
    401: "Нет токена или он недействителен",
    403: "Роль пользователя не позволяет это действие, или токену не выдана нужная область действия "
         "(error_id insufficient-scope)",
    404: "Не найдено (в том числе объект другой организации)",
    409: "Конфликт состояния: переход статуса не разрешён или объект уже закрыт",
    410: "Запись уже удалена (error_id recording-deleted)",
    422: "Заявка аварийной категории регистрируется как неаварийная без причины "
         "(error_id not-emergency-reason-required, details.field not_emergency_reason)",
    413: "Файл слишком большой",
    503: "База данных недоступна (error_id database-unavailable) или занята другой записью (database-busy): "
         "повторите запрос через столько секунд, сколько в заголовке Retry-After (details.retry_after)",
}


def openapi_path(rule: str) -> str:
    """A Flask rule of the blueprint as an OpenAPI path: `/tickets/<int:ticket_id>` → `/tickets/{ticket_id}`."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.removeprefix(URL_PREFIX))


def route_scopes() -> dict[tuple[str, str], Scope]:
    """(OpenAPI path, method) → the scope the route enforces (web/auth.py `route_scope`), so the
    document states what the code does."""
    out: dict[tuple[str, str], Scope] = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.endpoint.startswith(bp.name + "."):
            continue
        view = current_app.view_functions[rule.endpoint]
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            scope = route_scope(view, method)
            if scope is not None:
                out[(openapi_path(rule.rule), method.lower())] = scope
    return out


@functools.cache
def document() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = [
        (m, "validation") for m in (*sc.REQUEST_MODELS, *calls_api.REQUEST_MODELS, *admin_api.REQUEST_MODELS,
                                    *users_api.REQUEST_MODELS, *tel_api.REQUEST_MODELS, *robot_api.REQUEST_MODELS,
                                    *inspection_api.REQUEST_MODELS, *executor_api.REQUEST_MODELS,
                                    *executor_api.ALERT_REQUEST_MODELS,
                                    *dispatch_api.REQUEST_MODELS, *incidents_api.REQUEST_MODELS)]
    models += [(m, "serialization") for m in (*sc.RESPONSE_MODELS, *calls_api.RESPONSE_MODELS,
                                              *ratings_api.RESPONSE_MODELS, *recordings_api.RESPONSE_MODELS,
                                              *analytics_api.RESPONSE_MODELS,
                                              *admin_api.RESPONSE_MODELS, *chain_api.RESPONSE_MODELS,
                                              *users_api.RESPONSE_MODELS, *tel_api.RESPONSE_MODELS, *robot_api.RESPONSE_MODELS,
                                              *inspection_api.RESPONSE_MODELS, *executor_api.RESPONSE_MODELS,
                                              *executor_api.ALERT_RESPONSE_MODELS,
                                              *dispatch_api.RESPONSE_MODELS, *incidents_api.RESPONSE_MODELS)]
    _, defs = models_json_schema(models, ref_template=REF)
    scopes = route_scopes()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {
            "operationId": f"{op.method}_{op.path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}"
            .replace(".", "_"),
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": op.params,
        }
        if op.public:
            entry["security"] = []
            entry["responses"] = {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {
                "schema": {"type": "object"}}}}}
        elif op.media != "application/json":
            entry["responses"] = {str(op.status): {"description": "Успешно", "content": {
                op.media: {"schema": {"type": "string", "format": "binary"}}}}}
        else:
            entry["responses"] = {str(op.status): {"description": "Успешно", "content": {
                "application/json": {"schema": _ref(op.response)}}}}
        if op.body is not None:
            entry["requestBody"] = {"required": not op.body_optional,
                                    "content": {op.body_media: {"schema": _ref(op.body)}}}
        description = op.description
        if not op.public:
            scope = scopes[(op.path, op.method)]
            entry["security"] = [{"bearerAuth": [scope.value]}]
            description = f"Область действия токена: `{scope.value}`. {description}".strip()
        if description:
            entry["description"] = description
        for status in sorted({*op.errors, *(() if op.public else (401, 403, 503))}):
            entry["responses"][str(status)] = {"description": ERROR_TEXTS[status], "content": {
                "application/json": {"schema": _ref(sc.Error)}}}
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OpenADS API",
            "version": "1.0.0",
            "description": (
                "JSON API аварийно-диспетчерской службы. Авторизация: заголовок `Authorization: Bearer <токен>` "
                "(персональный токен пользователя). Токен выдаётся с областями действия (scopes): `read` — "
                "чтение, `write` — изменения, `telephony` — звонки и очередь пропущенных звонков (любым методом), "
                "`settings` — администрирование: настройки организаций, категории, пользователи, журнал изменений "
                "`settings` — администрирование: настройки организаций, категории, телефония, журнал изменений "
                "(любым методом); "
                "у каждой операции указана нужная. Запрос с заголовком Authorization проверяется только по нему "
                "(cookie панели тогда не учитывается). Ошибки: `{\"error_id\", \"message\", \"details\"}`. "
                "Объекты другой организации отвечают 404. Проверяющему (роль `inspector`, только чтение) любой "
                "метод, кроме GET, отвечает 403 `read-only-role`; учётная запись с истёкшим сроком действия — 401 "
                "`account-expired`. Время в ответах — UTC (ISO 8601, суффикс Z); "
                "время без смещения в запросах читается в часовом поясе организации. "
                f"Даты в запросах — с {MIN_YEAR} по {MAX_YEAR} год, идентификаторы — до {INT_MAX}."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": "tickets", "description": "Заявки"}, {"name": "houses", "description": "Дома"},
                 {"name": "residents", "description": "Жители"}, {"name": "calls", "description": "Звонки"},
                 {"name": "ratings", "description": "Оценки жителей"},
                 {"name": "analytics", "description": "Аналитика для руководителей"},
                 {"name": "incidents", "description": "Аварии в домах"},
                 {"name": "audit", "description": "Проверка неизменности журнала"},
                 {"name": "recordings", "description": "Журналы доступа к записям разговоров и их удаления"},
                 {"name": "reports", "description": "Пакет документов для проверки ГЖИ"},
                 {"name": "directory", "description": "Справочники"},
                 {"name": "executor", "description": "Приложение исполнителя"},
                 {"name": "admin", "description": "Администрирование"}, {"name": "meta", "description": "Служебное"}],
        "paths": paths,
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


@bp.get("/openapi.json")
@public
def openapi_json() -> Any:
    return jsonify(document())
