"""Retention of raw readings: the horizon, and archiving the monthly partitions before it.

Readings are kept online for the current year and ``READINGS_RETENTION_YEARS`` before it
(docs/readings-storage.md).  A month wholly before the horizon is written to a gzipped
CSV in ``READINGS_ARCHIVE_DIR``, detached and dropped; an empty partition of the same
name and range with ``CHECK (false)`` takes its place, so a late reading for that month
can never re-create it silently (intake refuses such readings with an itemised error
first; the check is the last line).  Staff restore a month by dropping the placeholder,
re-creating the partition and COPYing the file back.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from metering.ingest.store import month_span

ARCHIVED_CHECK = "reading_archived"
_PARTITION = re.compile(r"^metering_reading_y(\d{4})m(\d{2})$")


def readings_horizon(*, now: dt.datetime) -> dt.datetime:
    """Oldest instant whose readings are kept online: 1 January (UTC) of the current year
    minus ``READINGS_RETENTION_YEARS``."""
    year = now.astimezone(dt.UTC).year - settings.READINGS_RETENTION_YEARS
    return dt.datetime(year, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class ArchivedMonth:
    partition: str
    rows: int | None  # None: dry run
    path: Path | None


# what is left of a month: "attached" (a partition still to archive), "pending" (its
# ``DETACH … CONCURRENTLY`` was interrupted: the worker killed, the statement cancelled
# while it waited for older transactions), "detached" (stopped before the drop), and
# "archived" (the placeholder)
ATTACHED, PENDING, DETACHED, ARCHIVED = "attached", "pending", "detached", "archived"


def _partitions(cursor) -> list[tuple[str, str]]:
    """(name, state) of every month's table of metering_reading: its monthly partitions,
    and a month's table an interrupted archiving left detached."""
    cursor.execute(
        "SELECT c.relname, i.inhrelid IS NOT NULL, coalesce(i.inhdetachpending, false), "
        "EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.conname = %s) "
        "FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid "
        "WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace "
        "AND c.relname LIKE 'metering\\_reading\\_y%%' "
        "AND (i.inhparent IS NULL OR i.inhparent = 'metering_reading'::regclass) "
        "ORDER BY c.relname",
        [ARCHIVED_CHECK],
    )
    return [
        (name, ARCHIVED if archived else PENDING if pending else ATTACHED if attached else DETACHED)
        for name, attached, pending, archived in cursor.fetchall()
        if _PARTITION.match(name)
    ]


def readings_archive(*, now: dt.datetime, dry_run: bool = False) -> list[ArchivedMonth]:
    """Archive every monthly partition that ends on or before the horizon (PostgreSQL).

    Per month: COPY to ``<dir>/<partition>.csv.gz`` (written to a temporary name, synced,
    then renamed), DETACH (CONCURRENTLY when not inside a transaction: readers and the
    ingest path are not blocked), DROP, and the ``CHECK (false)`` placeholder.  Months
    already archived are skipped, so running it again does nothing.
    """
    if connection.vendor != "postgresql":
        return []
    horizon = readings_horizon(now=now)
    done: list[ArchivedMonth] = []
    with connection.cursor() as cursor:
        partitions = _partitions(cursor)
    for name, state in partitions:
        year, month = map(int, _PARTITION.match(name).groups())
        start, end = (
            dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) for day in month_span(year, month)
        )
        if state == ARCHIVED or end > horizon:
            continue
        if dry_run:
            done.append(ArchivedMonth(name, None, None))
            continue
        done.append(_archive_month(name, start, end, state))
    return done


def _archive_month(name: str, start: dt.datetime, end: dt.datetime, state: str) -> ArchivedMonth:
    """Archive one month; begun before (``state`` pending or detached), its table still
    holds every reading of the month, so the file is written again from it."""
    folder = Path(settings.READINGS_ARCHIVE_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv.gz"
    partial = path.with_suffix(".gz.partial")
    lines = 0
    with (
        connection.cursor() as cursor,
        gzip.open(partial, "wb") as out,
        cursor.copy(f"COPY {name} TO STDOUT (FORMAT csv, HEADER true)") as copy,
    ):
        for data in copy:
            lines += bytes(data).count(b"\n")
            out.write(data)
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(path)
    concurrently = "" if connection.in_atomic_block else " CONCURRENTLY"
    with connection.cursor() as cursor:
        if state == ATTACHED:
            cursor.execute(f"ALTER TABLE metering_reading DETACH PARTITION {name}{concurrently}")
        elif state == PENDING:
            cursor.execute(f"ALTER TABLE metering_reading DETACH PARTITION {name} FINALIZE")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {name}")
        cursor.execute(
            f"CREATE TABLE {name} PARTITION OF metering_reading "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
        cursor.execute(f"ALTER TABLE {name} ADD CONSTRAINT {ARCHIVED_CHECK} CHECK (false)")
    return ArchivedMonth(name, lines - 1, path)
