"""OpenAPI naming: every model's choice set gets a stable, readable enum name.

drf-spectacular names an enum after its field (``status`` → ``StatusEnum``); with many
``status``/``kind``/``state`` fields it falls back to hashed names (``Kind44dEnum``) and
warns.  We name each nested ``TextChoices`` after its model instead
(``InvoiceStateEnum``, ``PlantUnitKindEnum``), so the schema stays stable for vendors.
"""

from __future__ import annotations

from django.apps import apps
from django.db import models


def enum_name_overrides() -> dict[str, type[models.Choices]]:
    overrides: dict[str, type[models.Choices]] = {}
    seen: set[tuple] = set()
    for model in apps.get_models():
        if model.__name__.startswith("Historical"):
            continue
        for name, value in vars(model).items():
            if not (isinstance(value, type) and issubclass(value, models.Choices)):
                continue
            key = tuple(value.values)
            if key in seen:
                continue  # the same choice set is one enum, named after its first model
            seen.add(key)
            overrides[f"{model.__name__}{name}Enum"] = value
    return overrides


def install_enum_name_overrides(settings) -> None:
    configured = settings.SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})
    for name, choices in enum_name_overrides().items():
        configured.setdefault(name, choices)


_ERROR_DESCRIPTIONS = {
    "400": "Malformed input: every bad field (and row) itemised.",
    "401": "No or invalid credentials.",
    "403": "The caller's role may not do this.",
    "404": "No such object (or not the caller's).",
    "409": "Conflicts with the current state (already done, locked, issued).",
    "413": "The body, or a file in it, is larger than HEATUTILITY_MAX_UPLOAD_BYTES.",
    "422": "Well-formed, but a business rule refuses it; the reason, itemised.",
    "429": "Too many requests for this API key (HEATUTILITY_VENDOR_THROTTLE, 600/min by "
    "default); retry after the Retry-After header's seconds.",
}
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "row": {"type": "integer"},
                    "field": {"type": "string"},
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                },
                "required": ["code", "message"],
            },
        },
    },
    "required": ["message", "code", "errors"],
}


def error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation lists the error answers it can
    give, all in the one error shape (``heatutility.api.exception_handler``), so clients
    generated from the schema expect them.  Answers an operation documents itself stay."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", _ERROR_SCHEMA)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            codes = ["401", "403"]
            if "{" in path:
                codes.append("404")
            writes = method != "get"
            if writes or any(p.get("in") == "query" for p in operation.get("parameters", ())):
                codes.append("400")
            if writes:
                codes += ["409", "422"]
            if method in ("post", "put", "patch"):  # a body: Django's and upload_read's limit
                codes.append("413")
            if {"VendorApiKey": []} in operation.get("security", ()):
                codes.append("429")  # metering.vendors.VendorRateThrottle
            responses = operation.setdefault("responses", {})
            for code in codes:
                responses.setdefault(
                    code, {"description": _ERROR_DESCRIPTIONS[code], "content": error}
                )
            for code, response in responses.items():
                # An error a view documents itself (its own description) has the one shape.
                if code in _ERROR_DESCRIPTIONS and "content" not in response:
                    response["content"] = error
    return result
