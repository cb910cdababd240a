"""Set-based upsert of hourly series: COPY on PostgreSQL, batched INSERT elsewhere.

On PostgreSQL the rows stream into a temporary table with ``COPY`` and reach the target
in one ``INSERT … SELECT … ON CONFLICT DO UPDATE``; on SQLite (the embedded default) the
ORM's ``bulk_create(update_conflicts=True)`` does the same in batches.  Either way a file
is one statement per few thousand hours, never one query per hour.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.db import connection


def upsert_rows(
    *, model, columns: Sequence[str], rows: Sequence[tuple], conflict: Sequence[str]
) -> int:
    """Insert ``rows`` (tuples in ``columns`` order, db column names); update on ``conflict``."""
    if not rows:
        return 0
    update = [c for c in columns if c not in conflict]
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(model._meta.db_table)
        tmp = connection.ops.quote_name(f"tmp_upsert_{uuid.uuid4().hex[:12]}")
        cols = ", ".join(connection.ops.quote_name(c) for c in columns)
        sets = ", ".join(
            f"{connection.ops.quote_name(c)} = EXCLUDED.{connection.ops.quote_name(c)}"
            for c in update
        )
        keys = ", ".join(connection.ops.quote_name(c) for c in conflict)
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE {tmp} ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA"
            )
            with cursor.cursor.copy(f"COPY {tmp} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {tmp} ON CONFLICT ({keys}) DO UPDATE SET {sets}"
            )
            cursor.execute(f"DROP TABLE {tmp}")
        return len(rows)
    fields = {f.column: f for f in model._meta.concrete_fields}
    objects = [
        model(**{fields[c].attname: v for c, v in zip(columns, row, strict=True)}) for row in rows
    ]
    model.objects.bulk_create(
        objects,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=[fields[c].name for c in conflict],
        update_fields=[fields[c].name for c in update],
    )
    return len(rows)
