"""API plumbing shared by every app: one exception handler, one error shape.

Every error body is ``{"message": str, "code": str, "errors": [{"row", "field", "code",
"message"}]}``, with ``row`` present for batch input and ``field`` a dotted path.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import InvalidPage
from django.db import IntegrityError, models
from django.http import Http404
from django.utils import timezone
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from heatutility.db import constraint_messages
from heatutility.errors import DomainError
from heatutility.timeutil import DATE_OUT_OF_RANGE, EARLIEST_DATE, LATEST_DATE, date_in_range


def _flatten(detail, field: str | None = None, row: int | None = None) -> list[dict]:
    """Turn DRF's nested error detail into a flat, itemised list."""
    items: list[dict] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                items.extend(_flatten(value, field, row))
            else:
                items.extend(_flatten(value, f"{field}.{key}" if field else str(key), row))
    elif isinstance(detail, list):
        if detail and all(isinstance(v, dict) for v in detail) and field is None:
            for index, value in enumerate(detail):
                items.extend(_flatten(value, None, index))
        elif detail and any(isinstance(v, (dict, list)) for v in detail):
            for index, value in enumerate(detail):
                if value:
                    items.extend(_flatten(value, f"{field}.{index}" if field else str(index), row))
        else:
            for value in detail:
                items.extend(_flatten(value, field, row))
    else:
        item = {"code": getattr(detail, "code", "invalid"), "message": str(detail)}
        if field is not None:
            item["field"] = field
        if row is not None:
            item["row"] = row
        items.append(item)
    return items


def _integrity_message(exc: IntegrityError) -> str:
    cause = exc.__cause__
    name = getattr(getattr(cause, "diag", None), "constraint_name", None)
    messages = constraint_messages()
    if name and name in messages:
        return messages[name]
    text = str(exc)
    for constraint, message in messages.items():
        if constraint in text:
            return message
    return "The change conflicts with existing data."


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = f"The request body is larger than {limit} bytes."
        return Response(
            {
                "message": message,
                "code": "too_large",
                "errors": [{"code": "too_large", "message": message}],
            },
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, DjangoValidationError):
        detail = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        exc = exceptions.ValidationError(detail)
    if isinstance(exc, IntegrityError):
        message = _integrity_message(exc)
        return Response(
            {
                "message": message,
                "code": "conflict",
                "errors": [{"code": "conflict", "message": message}],
            },
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, exceptions.NotFound) and isinstance(exc.__context__, InvalidPage):
        # DRF's pagination answers a bad ``?page=`` (0, "x", past the last page) with a
        # bare 404 "Invalid page."; it is bad input on one parameter, so say which.
        exc = exceptions.ValidationError({"page": [str(exc.__context__)]}, code="invalid_page")
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        response.data = {
            "message": "The request is invalid: "
            + "; ".join(
                (f"row {e['row']} " if "row" in e else "")
                + (f"{e['field']}: " if "field" in e else "")
                + e["message"]
                for e in errors[:5]
            )
            + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""),
            "code": "invalid",
            "errors": errors,
        }
    else:
        detail = (
            response.data.get("detail", response.data)
            if isinstance(response.data, dict)
            else response.data
        )
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        response.data = {"message": str(detail), "code": code, "errors": []}
    return response


class ModelValidationMixin:
    """Serializers that run the model's own ``full_clean`` (fields and constraints), so
    the API refuses exactly what the admin and the database refuse, with the same words."""

    def validate(self, attrs):
        attrs = super().validate(attrs)
        model = self.Meta.model
        instance = self.instance or model()
        for name, value in attrs.items():
            setattr(instance, name, value)
        try:
            instance.full_clean()
        except DjangoValidationError as exc:
            detail = (
                exc.message_dict
                if hasattr(exc, "error_dict")
                else {"non_field_errors": exc.messages}
            )
            raise serializers.ValidationError(detail) from exc
        return attrs


class BoundedDateField(serializers.DateField):
    """A date the product can work with (``heatutility.timeutil.date_in_range``).  Python's
    own range (years 1 to 9999) lets a period, the year before it or a UTC conversion fall
    off its ends in the services; this says so as a 400 on the field instead."""

    default_error_messages = {
        "out_of_range": DATE_OUT_OF_RANGE,
    }

    def to_internal_value(self, value):
        day = super().to_internal_value(value)
        if not date_in_range(day):
            self.fail("out_of_range")
        return day


class BoundedDateTimeField(serializers.DateTimeField):
    """An instant within the same dates, with its UTC offset, returned in UTC.  (PostgreSQL
    refuses offsets beyond ±15:59 that Python accepts.)

    A wall time without offset is refused (``missing_offset``): DRF read it in the
    server's ``TIME_ZONE``, silently, and an autumn night's repeated hour as summer time,
    where the services want the instant a meter was installed or exchanged."""

    default_error_messages = {
        "out_of_range": f"Enter a moment from {EARLIEST_DATE} to {LATEST_DATE}.",
        "missing_offset": "Enter the moment with its UTC offset, e.g. 2026-03-01T10:00:00+01:00.",
    }

    def enforce_timezone(self, value):
        if timezone.is_naive(value):
            self.fail("missing_offset")
        return super().enforce_timezone(value)

    def to_internal_value(self, value):
        try:
            moment = super().to_internal_value(value)
        except OverflowError:  # a naive year-1 value made aware
            self.fail("out_of_range")
        except serializers.ValidationError as exc:  # DRF's own "overflow": the same limit
            if any(getattr(detail, "code", None) == "overflow" for detail in exc.detail):
                self.fail("out_of_range")
            raise
        if not date_in_range(moment.date()):
            self.fail("out_of_range")
        return moment.astimezone(dt.UTC) if moment.tzinfo else moment


class BoundedModelSerializer(serializers.ModelSerializer):
    """A model serializer whose model date and date-time fields are bounded."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateField: BoundedDateField,
        models.DateTimeField: BoundedDateTimeField,
    }


def not_found(request, exception=None):
    """Django's 404 (no URL matched, e.g. ``/api/v1/readings/batches/abc/``): the API's
    error shape under ``/api/``, the usual page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        message = "Not found."
        return JsonResponse({"message": message, "code": "not_found", "errors": []}, status=404)
    return page_not_found(request, exception)
