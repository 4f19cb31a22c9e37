"""How an outgoing message (`outbox_messages`) reads to a person: its purpose, channel, sending
state and delivery report in Russian (the ticket card's «Сообщения», the incidents page, the
inspection pack). Pure data."""

from __future__ import annotations

PURPOSE_TITLES_RU: dict[str, str] = {
    "municipality_emergency": "ОМСУ/ЕДДС: авария",
    "municipality_emergency_done": "ОМСУ/ЕДДС: авария устранена",
    "municipality_incident": "ОМСУ/ЕДДС: авария в доме",
    "municipality_incident_localized": "ОМСУ/ЕДДС: авария локализована",
    "municipality_incident_liquidated": "ОМСУ/ЕДДС: авария ликвидирована",
    "executor_assigned": "Исполнителю: назначение",
    "resident_registered": "Жителю: заявка зарегистрирована",
    "resident_assigned": "Жителю: назначен исполнитель",
    "resident_done": "Жителю: выполнена, приглашение оценить",
    "resident_closed": "Жителю: заявка закрыта",
    "resident_en_route": "Жителю: исполнитель выехал",
    "resident_incident": "Жителям дома: авария",
    "resident_restored": "Жителям дома: авария устранена",
    "executor_alert": "Исполнителю: аварийная заявка, требуется подтверждение",
    "executor_push": "Исполнителю: назначение (push)",
}

CHANNEL_TITLES_RU: dict[str, str] = {"email": "эл. почта", "sms": "SMS", "push": "уведомление в приложении",
                                     "voice": "звонок робота"}

STATUS_TITLES_RU: dict[str, str] = {"pending": "в очереди", "sent": "отправлено", "failed": "не отправлено"}

# The SMS gateway's delivery report (models.ports.DeliveryStatus).
DELIVERY_TITLES_RU: dict[str, str] = {
    "queued": "ожидает отправки у оператора",
    "sent": "передано оператору, отчёта о доставке ещё нет",
    "delivered": "доставлено",
    "failed": "не доставлено",
    "unknown": "оператор не сообщил о доставке",
}


def purpose_title(purpose: str) -> str:
    return PURPOSE_TITLES_RU.get(purpose, "Сообщение")


def delivery_title(status: str | None) -> str:
    """The delivery report as read on the card ("" when none was received)."""
    if not status:
        return ""
    return DELIVERY_TITLES_RU.get(status, "оператор не сообщил о доставке")
