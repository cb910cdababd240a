"""Retention of raw readings: the horizon, and archiving the monthly partitions before it.

Readings are kept online for the current year and ``READINGS_RETENTION_YEARS`` before it,
local years of the meter's network (docs/readings-storage.md).  A month wholly before
every network's horizon is written to a gzipped CSV in ``READINGS_ARCHIVE_DIR``,
detached and dropped; an empty partition of the same name and range with ``CHECK
(false)`` takes its place, so a late reading for that month can never re-create it
silently (intake refuses such readings with an itemised error
first; the check is the last line).  Staff restore a month by dropping the placeholder,
re-creating the partition and COPYing the file back.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction

from customers.models import Network
from heatutility.timeutil import local_midnight
from metering.ingest.store import month_span
from metering.models import MeterInstallation

ARCHIVED_CHECK = "reading_archived"
_PARTITION = re.compile(r"^metering_reading_y(\d{4})m(\d{2})$")


def retained_since(*, now: dt.datetime, time_zone: str) -> dt.date:
    """The first local date whose readings are kept online in a network of ``time_zone``:
    1 January of its current local year minus ``READINGS_RETENTION_YEARS``."""
    year = now.astimezone(ZoneInfo(time_zone)).year - settings.READINGS_RETENTION_YEARS
    return dt.date(year, 1, 1)


def readings_horizon(*, now: dt.datetime, time_zone: str) -> dt.datetime:
    """Oldest instant whose readings are kept online in a network of ``time_zone``: the
    local midnight that begins :func:`retained_since` (in UTC).  Retained years are the
    network's local years, as its billing periods are: Copenhagen's 2023 begins at
    2022-12-31 23:00 UTC, and its reading of that midnight is 2023's."""
    return local_midnight(retained_since(now=now, time_zone=time_zone), time_zone)


def readings_horizons(
    *, now: dt.datetime, vendor_id: int
) -> Callable[[Collection[str]], dict[str, dt.datetime]]:
    """For an intake: serials → each meter's horizon as of ``now``, one query per call.

    A meter's zone is its network's; a meter that served networks of several zones takes
    the earliest of their horizons (a reading of a year retained in any of them is never
    refused); a serial of no installed meter of the vendor, the installation's zone
    (``TIME_ZONE``, a new network's default).  :func:`readings_archive_horizon` counts
    the same zones."""

    def horizons(serials: Collection[str]) -> dict[str, dt.datetime]:
        default = readings_horizon(now=now, time_zone=settings.TIME_ZONE)
        found: dict[str, dt.datetime] = {}
        for serial, zone in (
            MeterInstallation.objects.filter(meter__vendor_id=vendor_id, meter__serial__in=serials)
            .values_list("meter__serial", "unit__connection__network__time_zone")
            .distinct()
        ):
            horizon = readings_horizon(now=now, time_zone=zone)
            found[serial] = min(horizon, found.get(serial, horizon))
        return {serial: found.get(serial, default) for serial in serials}

    return horizons


def readings_archive_horizon(*, now: dt.datetime) -> dt.datetime:
    """The earliest horizon of every zone readings are kept in (each network's and
    ``TIME_ZONE``, :func:`readings_horizons`).  Partitions are UTC months shared by all
    networks: a month is archived only when it ends by every network's horizon.  East of
    UTC a network's first retained hour lies in the UTC December before (Copenhagen's
    2023 begins at 2022-12-31 23:00 UTC), so that December stays online a year longer,
    until the year it begins falls behind the horizon too."""
    zones = {settings.TIME_ZONE, *Network.objects.values_list("time_zone", flat=True)}
    return min(readings_horizon(now=now, time_zone=zone) for zone in zones)


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
    """Archive every monthly partition that ends on or before every network's horizon
    (:func:`readings_archive_horizon`; PostgreSQL).

    Per month: COPY to ``<dir>/<partition>.csv.gz`` (written to a temporary name, synced,
    then renamed), DETACH (CONCURRENTLY when not inside a transaction: readers and the
    ingest path are not blocked), DROP, and the ``CHECK (false)`` placeholder.  Months
    already archived are skipped, so running it again does nothing.
    """
    if connection.vendor != "postgresql":
        return []
    horizon = readings_archive_horizon(now=now)
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
