"""The actions of the ticket history (`ticket_history.action`) and their Russian titles.

Every service that writes a history row uses one of these names; the card, the API consumers and
the inspection read the title from here. A test walks the services' source for `action=` names, so
an action added without a title fails it.
"""

from __future__ import annotations

ACTION_TITLES_RU: dict[str, str] = {
    "created": "Зарегистрирована",
    "assigned": "Назначен исполнитель",
    "status": "Смена статуса",
    "reopened": "Повторно открыта",
    "localized": "Локализована",
    "edited": "Изменена",
    "commented": "Комментарий",
    "municipality_notified": "ЕДДС уведомлена",
    "rated": "Оценка жителя",
    "notice_impossible": "Уведомление жителю невозможно",
    "rating_call_impossible": "Звонок для оценки невозможен",
    "accepted": "Исполнитель принял заявку",
    "en_route": "Исполнитель выехал",
    "on_site": "Исполнитель на месте",
    "returned": "Исполнитель вернул заявку диспетчеру",
    "attached": "Добавлен файл",
}

# The keys of a history row's `changes`, as a person reads them.
FIELD_TITLES_RU: dict[str, str] = {
    "category": "категория", "category_id": "категория", "description": "описание",
    "is_emergency": "аварийная", "due_at": "срок устранения", "executor": "исполнитель",
    "resolved_at": "выполнена", "closed_at": "закрыта", "localized_at": "локализована",
    "reopen_count": "открыта повторно (раз)", "reporter_name": "заявитель", "reporter_phone": "телефон",
    "house_id": "дом", "premise_id": "помещение", "resident_id": "житель", "damage_detected_at": "обнаружено",
    "planned_due_at": "срок, сообщённый жителю", "incident_id": "авария", "comment": "текст",
    "visibility": "видимость", "municipality_notified_at": "уведомлена", "recipient": "адрес",
    "rating": "оценка", "not_emergency_reason": "почему не аварийная",
    "accepted_at": "принята", "accepted_via": "как принята", "en_route_at": "выехал",
    "eta_at": "ориентировочное прибытие", "on_site_at": "на месте", "returned_at": "возвращена",
    "attachment": "файл", "kind": "вид",
}


def action_title(action: str) -> str:
    """The Russian title of a history action ("Действие" for a name written by a newer version)."""
    return ACTION_TITLES_RU.get(action, "Действие")
