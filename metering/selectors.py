"""Reads that other apps use.  Billing reads register values only through these.

``boundary_registers`` is one set-based query returning a pandas frame; values are
continuous *connection* registers (see :class:`metering.models.BoundaryRegister`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator, Sequence
from decimal import Decimal

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import Case, Count, Exists, OuterRef, Q, QuerySet, Subquery, Sum, When

from heatutility.db import id_array
from metering.models import (
    BoundaryRegister,
    DegreeDay,
    HeatMeter,
    IngestBatch,
    IngestBatchMeter,
    MeterInstallation,
    MeterVendor,
    Reading,
    ReadingIssue,
)
from metering.vee.rules import AMBIGUOUS_ROLLOVER_CODES, DECREASE

BOUNDARY_COLUMNS = [
    "id",
    "connection_id",
    "on",
    "energy_kwh",
    "volume_m3",
    "flow_temp_m3c",
    "return_temp_m3c",
    "status",
    "method",
]


def boundary_register_rows(
    *, connection_ids: Sequence[int], dates: Sequence[dt.date]
) -> list[tuple]:
    """Register values at 00:00 local of ``dates`` for ``connection_ids``, as tuples of
    :data:`BOUNDARY_COLUMNS` ordered by connection and date (numbers as ``Decimal``).

    One row per existing (connection, date) pair; missing and withdrawn ones are absent (call
    ``metering.services.boundary_registers_ensure`` first to have them estimated).  The
    billing chunk reads these rows directly (no frame: building one and reading it back
    was ≈ 5 % of a billing worker's CPU); :func:`boundary_registers` is the same as a frame.
    """
    connection_ids = sorted({int(c) for c in connection_ids})
    dates = sorted(set(dates))
    if not connection_ids or not dates:
        return []
    if connection.vendor != "postgresql":  # portable fallback (SQLite): the ORM converts
        return list(
            BoundaryRegister.objects.filter(connection_id__in=connection_ids, on__in=dates)
            .exclude(status=BoundaryRegister.Status.WITHDRAWN)
            .order_by("connection_id", "on")
            .values_list(*BOUNDARY_COLUMNS)
        )
    # two array parameters instead of thousands of IN placeholders; psycopg returns
    # numeric as Decimal, date as date (no Django converters needed)
    table = BoundaryRegister._meta.db_table
    select = ", ".join(connection.ops.quote_name(c) for c in BOUNDARY_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {select} FROM {connection.ops.quote_name(table)} "
            # the arrays as scalar sub-selects (InitPlan parameters): with the constants
            # visible, the planner estimates thousands of matches and scans the whole
            # table (parallel seq scan, ~2× slower at 20,000 connections and growing
            # with the table); as parameters it always takes the index
            "WHERE connection_id = ANY((SELECT %s::bigint[])::bigint[]) "
            'AND "on" = ANY((SELECT %s::date[])::date[]) '
            f"AND status <> '{BoundaryRegister.Status.WITHDRAWN}' "
            'ORDER BY connection_id, "on"',
            [id_array(connection_ids), "{" + ",".join(d.isoformat() for d in dates) + "}"],
        )
        return cursor.fetchall()


def boundary_registers(*, connection_ids: Sequence[int], dates: Sequence[dt.date]) -> pd.DataFrame:
    """:func:`boundary_register_rows` as a frame, one column per :data:`BOUNDARY_COLUMNS`.

    Decimal columns hold ``Decimal`` objects (object dtype), never floats.
    """
    rows = boundary_register_rows(connection_ids=connection_ids, dates=dates)
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in BOUNDARY_COLUMNS})
    # column-wise: one object array per column (Decimal, date, str, None kept as they are),
    # the two id columns as int64 — no per-cell inference or astype passes
    columns = list(zip(*rows, strict=True))
    data = {
        "id": pd.Series(np.fromiter(columns[0], dtype=np.int64, count=len(rows)), copy=False),
        "connection_id": pd.Series(
            np.fromiter(columns[1], dtype=np.int64, count=len(rows)), copy=False
        ),
    }
    for name, values in zip(BOUNDARY_COLUMNS[2:], columns[2:], strict=True):
        # dtype=object explicitly: pandas 3 would otherwise infer "str" for status/method
        data[name] = pd.Series(
            np.fromiter(values, dtype=object, count=len(rows)), dtype=object, copy=False
        )
    return pd.DataFrame(data, columns=BOUNDARY_COLUMNS, copy=False)


def boundary_registers_updated_since(*, since: dt.datetime) -> list[tuple[int, dt.date]]:
    """(connection_id, on) pairs whose value was created or changed at or after ``since``."""
    return [
        (int(connection_id), on)
        for connection_id, on in BoundaryRegister.objects.filter(updated_at__gte=since)
        .order_by("connection_id", "on")
        .values_list("connection_id", "on")
    ]


def degree_days_total(*, network_id: int, start: dt.date, end: dt.date) -> Decimal | None:
    """Heating degree days of ``[start, end)`` in the network's area, or None unless
    every day of it has a value (a sum over a gap would understate the weather)."""
    days = (end - start).days
    if days <= 0:
        return None
    found = DegreeDay.objects.filter(network_id=network_id, on__gte=start, on__lt=end).aggregate(
        days=Count("id"), total=Sum("degree_days")
    )
    return found["total"] if found["days"] == days else None


def degree_days_by_month(*, network_id: int, months: Sequence[dt.date]) -> dict[dt.date, Decimal]:
    """Heating degree days per local calendar month (keyed by its first day) for the
    given months; a month is left out unless every one of its days has a value."""
    from django.db.models.functions import TruncMonth

    from heatutility.timeutil import add_months

    months = sorted({m.replace(day=1) for m in months})
    if not months:
        return {}
    rows = (
        DegreeDay.objects.filter(
            network_id=network_id, on__gte=months[0], on__lt=add_months(months[-1], 1)
        )
        .annotate(month=TruncMonth("on"))
        .values("month")
        .annotate(days=Count("id"), total=Sum("degree_days"))
    )
    wanted = set(months)
    return {
        row["month"]: row["total"]
        for row in rows
        if row["month"] in wanted
        and row["days"] == (add_months(row["month"], 1) - row["month"]).days
    }


def vendor_meters(*, vendor: MeterVendor, now: dt.datetime) -> QuerySet[HeatMeter]:
    """The meters a vendor's head-end delivers, by serial, each with whether it is installed
    at ``now`` and its latest reading (its time and when it arrived): what the head-end
    needs to see which meters it should send and where its deliveries have a gap.

    The latest reading is the latest this vendor delivered: a reading of one of its
    batches, or one it delivered again after another vendor (a head-end that takes over
    a meter re-sends recent history: duplicates, stored once, the first vendor's; its
    batch records the latest per meter, ``IngestBatchMeter.last_duplicate_at``), with
    when that delivery arrived.  After a meter moves to another vendor, the
    new one does not see when the old one last delivered, and estimates are not
    deliveries.  It is one backward index scan of ``(meter_id, read_at)`` per meter and
    partition, each row checked by its batch's primary key and the duplicates' partial
    index, so a page of meters costs a page of probes, not a scan.
    """
    delivered = IngestBatch.objects.filter(pk=OuterRef("batch_id"), vendor=vendor)
    duplicated = IngestBatchMeter.objects.filter(
        meter_id=OuterRef("meter_id"), last_duplicate_at=OuterRef("read_at"), batch__vendor=vendor
    ).order_by("batch__received_at")
    latest = (
        Reading.objects.filter(Exists(delivered) | Exists(duplicated), meter_id=OuterRef("pk"))
        .annotate(
            delivered_at=Case(
                When(Exists(delivered), then="received_at"),
                default=Subquery(duplicated.values("batch__received_at")[:1]),
            )
        )
        .order_by("-read_at")
    )
    installed = MeterInstallation.objects.filter(
        Q(removed_at__isnull=True) | Q(removed_at__gt=now),
        meter_id=OuterRef("pk"),
        installed_at__lte=now,
    )
    return (
        HeatMeter.objects.filter(vendor=vendor)
        .annotate(
            installed=Exists(installed),
            last_read_at=Subquery(latest.values("read_at")[:1]),
            last_received_at=Subquery(latest.values("delivered_at")[:1]),
        )
        .order_by("serial", "pk")
    )


def readings_usable_around(
    *, meter_id: int, start: dt.datetime, end: dt.datetime
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Times of the meter's last usable read before ``start`` and first after ``end``
    (None where there is none): the span over which estimates can depend on reads in
    ``[start, end]``.  Two descents of the primary key (meter_id, read_at)."""
    usable = Reading.objects.filter(meter_id=meter_id, status__in=("valid", "edited", "estimated"))
    before = usable.filter(read_at__lt=start).order_by("-read_at").values_list("read_at", flat=True)
    after = usable.filter(read_at__gt=end).order_by("read_at").values_list("read_at", flat=True)
    return before.first(), after.first()


def reading_last_at(*, meter_id: int) -> dt.datetime | None:
    """Time of the meter's latest reading, whatever its status."""
    return (
        Reading.objects.filter(meter_id=meter_id)
        .order_by("-read_at")
        .values_list("read_at", flat=True)
        .first()
    )


def rollovers_undecided(
    *, connection_ids: Collection[int]
) -> dict[int, list[tuple[str, str, dt.datetime, dt.datetime, str]]]:
    """Ambiguous register rollovers staff have not decided yet (open ``rollover_ambiguous``
    / ``volume_rollover_ambiguous`` findings) on ``connection_ids``: per connection,
    (meter serial, ``"energy"`` or ``"volume"``, since, read_at, the network's zone).

    Register values from ``since`` (the last usable read before ``read_at`` in the
    installation, else its start: the initial register) to ``read_at`` count one wrap
    where the register may have wrapped more often, so a bill across that span waits
    for staff.  See :func:`registers_undecided`.
    """
    return registers_undecided(connection_ids=connection_ids, decreases=False)[0]


def registers_undecided(
    *, connection_ids: Collection[int], decreases: bool = True
) -> tuple[
    dict[int, list[tuple[str, str, dt.datetime, dt.datetime, str]]],
    dict[int, list[tuple[str, dt.datetime, dt.datetime, str]]],
]:
    """Register findings staff have not decided yet on ``connection_ids`` (the
    connection whose installation covers the read), in read order: the ambiguous
    rollovers (as :func:`rollovers_undecided`) and, with ``decreases``, the register
    decreases (open ``register_decrease`` findings, whose reads VEE rejected) per
    connection as (meter serial, since, read_at, the network's zone).  ``since`` is the
    last usable read before ``read_at`` in the installation, else its start (the
    initial register): where the register values the finding puts in doubt begin.

    Open findings of these kinds are few in the whole utility (the staff's queue): they
    are fetched in one small query and matched to the connections here, instead of
    sending a chunk's ids to the database.
    """
    covering = MeterInstallation.objects.filter(
        Q(removed_at__isnull=True) | Q(removed_at__gte=OuterRef("read_at")),
        meter_id=OuterRef("meter_id"),
        installed_at__lte=OuterRef("read_at"),
    )
    previous = Reading.objects.filter(
        meter_id=OuterRef("meter_id"),
        read_at__lt=OuterRef("read_at"),
        status__in=("valid", "edited", "estimated"),
    ).order_by("-read_at")
    codes = (*AMBIGUOUS_ROLLOVER_CODES, DECREASE) if decreases else AMBIGUOUS_ROLLOVER_CODES
    rows = (
        ReadingIssue.objects.filter(state=ReadingIssue.State.OPEN, code__in=codes)
        .annotate(
            connection=Subquery(covering.values("unit__connection_id")[:1]),
            installed_at=Subquery(covering.values("installed_at")[:1]),
            time_zone=Subquery(covering.values("unit__connection__network__time_zone")[:1]),
            since=Subquery(previous.values("read_at")[:1]),
        )
        .order_by("read_at", "pk")
        .values_list(
            "connection", "meter__serial", "code", "installed_at", "since", "read_at", "time_zone"
        )
    )
    wanted = set(connection_ids)
    rollovers: dict[int, list[tuple[str, str, dt.datetime, dt.datetime, str]]] = {}
    falls: dict[int, list[tuple[str, dt.datetime, dt.datetime, str]]] = {}
    for cid, serial, code, installed_at, since, read_at, zone in rows:
        if cid not in wanted:
            continue
        # a read before this installation belongs to another: the initial register is
        # where this connection's register starts
        since = installed_at if since is None or since < installed_at else since
        if code == DECREASE:
            falls.setdefault(cid, []).append((serial, since, read_at, zone))
        else:
            register = "energy" if code == "rollover_ambiguous" else "volume"
            rollovers.setdefault(cid, []).append((serial, register, since, read_at, zone))
    return rollovers, falls


def batch_vee_failed() -> Exists:
    """For a query of batches: whether the nightly VEE failed on one of the batch's meters
    (evaluated per batch on the unique (batch, meter) index)."""
    return Exists(IngestBatchMeter.objects.filter(batch=OuterRef("pk"), vee_attempts__gt=0))


def batch_vee_failures(*, batch: IngestBatch, limit: int) -> list[IngestBatchMeter]:
    """Up to ``limit`` of the batch's meters whose nightly VEE failed, most attempts first."""
    return list(
        batch.meter_spans.filter(vee_attempts__gt=0)
        .select_related("meter")
        .order_by("-vee_attempts", "meter__serial")[:limit]
    )


READING_EXPORT_COLUMNS = (
    "read_at",
    "energy_kwh",
    "volume_m3",
    "flow_temp_c",
    "return_temp_c",
    "status",
)


def connection_readings(
    *, connection_id: int, since: dt.datetime, until: dt.datetime, chunk_size: int = 2000
) -> Iterator[tuple]:
    """The readings taken at a connection in ``[since, until)``, in time order, as
    (meter serial, *:data:`READING_EXPORT_COLUMNS`), streamed.

    A meter's readings count only while it was installed in one of the connection's
    interface units (its read at the removal too, :class:`MeterInstallation`); rejected
    readings are left out.  One query per installation overlapping the range.
    """
    installations = (
        MeterInstallation.objects.filter(unit__connection_id=connection_id, installed_at__lt=until)
        .filter(Q(removed_at__isnull=True) | Q(removed_at__gte=since))
        .select_related("meter")
        .order_by("installed_at", "pk")
    )
    for installation in list(installations):
        reads = Reading.objects.filter(
            meter_id=installation.meter_id,
            read_at__gte=max(since, installation.installed_at),
            read_at__lt=until,
        ).exclude(status=Reading.Status.REJECTED)
        if installation.removed_at is not None:
            reads = reads.filter(read_at__lte=installation.removed_at)
        serial = installation.meter.serial
        for row in (
            reads.order_by("read_at")
            .values_list(*READING_EXPORT_COLUMNS)
            .iterator(chunk_size=chunk_size)
        ):
            yield (serial, *row)
