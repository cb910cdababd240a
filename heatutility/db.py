"""Database helpers shared by the apps."""

from __future__ import annotations

import json

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateRangeField, DateTimeRangeField, RangeOperators
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS
from django.db.models import F, Func, Q, Value

_RANGE_FIELDS = {"daterange": DateRangeField, "tstzrange": DateTimeRangeField}


class NoOverlapConstraint(ExclusionConstraint):
    """Half-open ``[start, end)`` intervals never overlap within a group.

    On PostgreSQL this is a GiST exclusion constraint (``btree_gist`` for the equality
    part), so the database itself refuses an overlap even under concurrent writes.  An
    open end (``NULL``) means "until further notice".  Model validation (admin forms,
    ``full_clean``) runs the same rule as a portable ORM query so that the message is
    clear on every backend; the embedded SQLite default has only that check.  With a
    ``condition`` only matching rows are bound (a partial exclusion constraint).
    """

    def __init__(
        self,
        *,
        name: str,
        group: list[str] | tuple[str, ...],
        start: str,
        end: str,
        range_function: str = "daterange",
        condition: Q | None = None,
        violation_error_message: str | None = None,
    ) -> None:
        self.group = tuple(group)
        self.start = start
        self.end = end
        self.range_function = range_function
        expressions = [(F(field), RangeOperators.EQUAL) for field in self.group]
        expressions.append(
            (
                Func(
                    F(start),
                    F(end),
                    Value("[)"),
                    function=range_function,
                    output_field=_RANGE_FIELDS[range_function](),
                ),
                RangeOperators.OVERLAPS,
            )
        )
        super().__init__(
            name=name,
            expressions=expressions,
            index_type="gist",
            condition=condition,
            violation_error_message=violation_error_message,
        )

    def deconstruct(self):
        path = f"{self.__class__.__module__}.{self.__class__.__qualname__}"
        kwargs = {
            "name": self.name,
            "group": list(self.group),
            "start": self.start,
            "end": self.end,
            "range_function": self.range_function,
        }
        if self.condition is not None:
            kwargs["condition"] = self.condition
        if self.violation_error_message != self.default_violation_error_message:
            kwargs["violation_error_message"] = self.violation_error_message
        return path, (), kwargs

    def __eq__(self, other):
        if isinstance(other, NoOverlapConstraint):
            return self.deconstruct() == other.deconstruct()
        return super().__eq__(other)

    def __hash__(self):
        return hash(self.name)

    def constraint_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().constraint_sql(model, schema_editor)

    def create_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().create_sql(model, schema_editor)

    def remove_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().remove_sql(model, schema_editor)

    def validate(self, model, instance, exclude=None, using=DEFAULT_DB_ALIAS):
        fields = (*self.group, self.start, self.end)
        if exclude and any(f in exclude for f in fields):
            return
        if self.condition is not None:
            values = instance._get_field_expression_map(meta=model._meta, exclude=exclude)
            if not self.condition.check(values, using=using):
                return  # the rule binds only rows matching the condition
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
        overlapping = model._default_manager.using(using).filter(**lookup)
        if self.condition is not None:
            overlapping = overlapping.filter(self.condition)
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


def constraint_messages() -> dict[str, str]:
    """Map every model constraint's name to its human message, for IntegrityError reports."""
    from django.apps import apps

    messages: dict[str, str] = {}
    for model in apps.get_models():
        for constraint in model._meta.constraints:
            messages[constraint.name] = str(constraint.get_violation_error_message())
    return messages


def id_array(ids) -> str:
    """``ids`` as one PostgreSQL array literal (``'{1,2,3}'``), for ``= ANY(%s::bigint[])``.

    Hot path: one text parameter instead of thousands of ``IN`` placeholders or a list
    the driver adapts element by element (that adaptation was ≈ 5 % of a billing
    worker's CPU, bench/README.md).  Only for integers: each is passed through ``int``.
    """
    return "{" + ",".join(map(str, map(int, ids))) + "}"


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_escape(text: str) -> str:
    """One text value in PostgreSQL's COPY text format (hot path: no copy when clean)."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_ESCAPES)
    return text


def _copy_text(value) -> str:
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, str):
        return copy_escape(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def copy_write(sql: str, text: str) -> None:
    """Send ``text`` (rows in COPY text format) to ``COPY … FROM STDIN`` (PostgreSQL),
    with psycopg's errors raised as Django's."""
    from django.db import connection

    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(sql) as copy,  # cursor.cursor: psycopg's, under Django's wrapper
    ):
        copy.write(text)


def bulk_insert(model, fields: list[str], rows: list[tuple]) -> None:
    """Insert ``rows`` (values of ``fields`` in that order) as new rows of ``model``.

    On PostgreSQL one ``COPY``: tens of times cheaper than ``bulk_create`` for large
    batches (no model instances, no placeholders, no per-value adaptation); elsewhere
    ``bulk_create``.  Values are text, numbers, dates, datetimes, booleans or None (a
    foreign key by its id); constraints and triggers apply as for any insert.
    """
    from django.db import connection

    if not rows:
        return
    opts = model._meta
    attnames = [opts.get_field(name).attname for name in fields]
    if connection.vendor != "postgresql":
        model.objects.bulk_create(
            [model(**dict(zip(attnames, row, strict=True))) for row in rows], batch_size=1000
        )
        return
    # fields left out get their model default, as bulk_create gives them (COPY would
    # leave them NULL: Django keeps defaults in Python, not in the table)
    listed = {opts.get_field(name).name for name in fields}
    defaults = [
        f
        for f in opts.concrete_fields
        if f.name not in listed and not f.primary_key and f.has_default()
    ]
    tail = "".join(
        "\t"
        + (
            copy_escape(json.dumps(f.get_default()))
            if f.get_internal_type() == "JSONField"
            else _copy_text(f.get_default())
        )
        for f in defaults
    )
    columns = ", ".join(
        connection.ops.quote_name(f.column) for f in [opts.get_field(n) for n in fields] + defaults
    )
    copy_write(
        f"COPY {opts.db_table} ({columns}) FROM STDIN",
        "".join("\t".join(map(_copy_text, row)) + tail + "\n" for row in rows),
    )


def oldest_open_write_started():
    """When the oldest transaction of this database that has written and is still open
    began (PostgreSQL's clock), this session's own excepted; None if there is none, and
    on SQLite (one writer at a time: nothing stays open behind a reader's back).

    A look at "rows changed since" that moves its watermark past this moment could skip
    rows of that transaction: they carry a time from before the watermark but become
    visible only when it commits.  ``pg_stat_activity`` lists the sessions of this
    database's role, i.e. the application's own writers.
    """
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(xact_start) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_xid IS NOT NULL"
        )
        return cursor.fetchone()[0]
