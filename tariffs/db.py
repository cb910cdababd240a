"""A no-overlap constraint that only binds rows matching a condition.

Drafts of a tariff version may overlap the version in force (a draft for next year is
written while this year's open-ended version applies); approved and published versions
never overlap.  On PostgreSQL this is a partial GiST exclusion constraint
(``EXCLUDE … WHERE (status IN ('approved','published'))``); model validation runs the same
rule as an ORM query on every backend.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Q

from heatutility.db import NoOverlapConstraint


class ConditionalNoOverlapConstraint(NoOverlapConstraint):
    def __init__(self, *, condition: Q, **kwargs) -> None:
        super().__init__(**kwargs)
        self.condition = condition

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        kwargs["condition"] = self.condition
        return path, args, kwargs

    def validate(self, model, instance, exclude=None, using=DEFAULT_DB_ALIAS):
        fields = (*self.group, self.start, self.end)
        if exclude and any(f in exclude for f in fields):
            return
        values = instance._get_field_expression_map(meta=model._meta, exclude=exclude)
        if not self.condition.check(values, using=using):
            return
        start = getattr(instance, self.start)
        end = getattr(instance, self.end)
        if start is None:
            return
        lookup = {}
        for field in self.group:
            attname = model._meta.get_field(field).attname
            value = getattr(instance, attname)
            if value is None:
                return
            lookup[attname] = value
        overlapping = model._default_manager.using(using).filter(self.condition, **lookup)
        overlapping = overlapping.filter(
            Q(**{f"{self.end}__isnull": True}) | Q(**{f"{self.end}__gt": start})
        )
        if end is not None:
            overlapping = overlapping.filter(**{f"{self.start}__lt": end})
        if not instance._state.adding and instance.pk is not None:
            overlapping = overlapping.exclude(pk=instance.pk)
        if overlapping.exists():
            raise ValidationError(
                self.get_violation_error_message(), code=self.violation_error_code
            )
