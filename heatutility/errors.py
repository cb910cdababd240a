"""Domain errors that carry what went wrong and where, for the API and the admin.

A service raises a subclass of :class:`DomainError`; the API's exception handler
(``heatutility.api.exception_handler``) renders it as
``{"message": ..., "errors": [{"row": 12, "field": "energy", "code": ..., "message": ...}]}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ErrorItem:
    code: str
    message: str
    field: str | None = None
    row: int | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


class DomainError(Exception):
    """A business rule refused an operation. ``status_code`` is the HTTP status to use."""

    status_code = 422
    code = "invalid"

    def __init__(self, message: str, *, errors: list[ErrorItem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors or [])

    @classmethod
    def refusing(cls, what: str, errors: list[ErrorItem]) -> DomainError:
        """The error for ``errors``: ``what`` (e.g. "Cannot install meter"), then each
        item's message, joined by "; "."""
        return cls(f"{what}: " + "; ".join(e.message for e in errors), errors=errors)

    def as_dict(self) -> dict:
        return {
            "message": self.message,
            "code": self.code,
            "errors": [e.as_dict() for e in self.errors],
        }


class ConflictError(DomainError):
    status_code = 409
    code = "conflict"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
