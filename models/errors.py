"""Domain exceptions. Each carries a kebab-case `error_id` that web/ maps to an HTTP status."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    error_id = "domain-error"
    http_status = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    """Also raised for another organization's object: existence is not disclosed."""

    error_id = "not-found"
    http_status = 404


class TicketNotFound(NotFound):
    error_id = "ticket-not-found"


class TransitionNotAllowed(DomainError):
    error_id = "transition-not-allowed"
    http_status = 409

    def __init__(self, current: str, wanted: str, message: str | None = None) -> None:
        super().__init__(
            message or f"переход из статуса «{current}» в «{wanted}» не разрешён", current=current, wanted=wanted
        )


class ValidationFailed(DomainError):
    error_id = "invalid-input"
    http_status = 400


class NotEmergencyReasonRequired(ValidationFailed):
    """A ticket of an emergency category registered (or changed) as not an emergency without the
    dispatcher saying why (decision 0039)."""

    error_id = "not-emergency-reason-required"
    http_status = 422


class PermissionDenied(DomainError):
    error_id = "forbidden"
    http_status = 403


class ImportFailed(DomainError):
    error_id = "import-failed"
    http_status = 400


class FieldConflict(DomainError):
    """An executor's action that no longer fits the ticket (reassigned meanwhile, already done,
    cancelled): the app shows `message` to the executor instead of overwriting (decision 0042)."""

    error_id = "field-conflict"
    http_status = 409


class OffDuty(DomainError):
    """A position reported while the executor is not on duty: never stored (152-ФЗ)."""

    error_id = "off-duty"
    http_status = 409


class FileTooLarge(ValidationFailed):
    """An upload over its limit (a photo, a voice note): 413, nothing kept."""

    error_id = "file-too-large"
    http_status = 413
