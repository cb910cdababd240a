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
