"""Who changed what: every service save records its actor and reason in the history.

django-simple-history keeps a read-only history row per change.  Requests through the
admin or the API get their user from ``HistoryRequestMiddleware``; services that run
outside a request (tasks, commands) pass the actor explicitly.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction

from heatutility.db import constraint_messages
from heatutility.errors import ConflictError, DomainError, ErrorItem


def mark_actor(instance: models.Model, *, actor=None, reason: str = "") -> models.Model:
    if actor is not None and getattr(actor, "is_authenticated", False):
        instance._history_user = actor
    if reason:
        instance._change_reason = reason
    return instance


def validation_error_to_domain(exc: ValidationError, message: str) -> DomainError:
    items: list[ErrorItem] = []
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            for text in errors:
                items.append(
                    ErrorItem(
                        code="invalid", message=text, field=None if field == "__all__" else field
                    )
                )
    else:
        items = [ErrorItem(code="invalid", message=text) for text in exc.messages]
    detail = "; ".join(item.message for item in items)
    return DomainError(f"{message}: {detail}" if detail else message, errors=items)


@contextmanager
def integrity_as_conflict():
    """Turn a database constraint violation (a lost race) into a clear ConflictError."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        name = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
        messages = constraint_messages()
        message = messages.get(name or "") or next(
            (text for constraint, text in messages.items() if constraint in str(exc)),
            "The change conflicts with existing data.",
        )
        raise ConflictError(message, errors=[ErrorItem(code="conflict", message=message)]) from exc


def clean_and_save(
    instance: models.Model, *, actor=None, reason: str = "", what: str
) -> models.Model:
    """Validate every field and constraint, then save; violations become DomainErrors."""
    try:
        instance.full_clean()
    except ValidationError as exc:
        raise validation_error_to_domain(exc, f"Cannot save {what}") from exc
    mark_actor(instance, actor=actor, reason=reason)
    with integrity_as_conflict():
        instance.save()
    return instance
