"""Set-based storage of validated reading rows: no row-by-row ORM saves.

PostgreSQL: COPY the chunk into a temporary staging table, then one
``INSERT … SELECT … ON CONFLICT (meter_id, read_at) DO NOTHING``.  Rows that did not go
in are classified in one join: the same values again are *duplicates* (stored once),
different values are *conflicts* (kept in ReadingConflict, the original untouched).
SQLite (the embedded default): the same outcome with ``executemany`` and
``INSERT OR IGNORE``.

A chunk's rows, its counters and the batch's progress commit in one transaction (the
caller's), so a worker killed half-way leaves either all of a chunk or none of it.  The
rows' meters are locked in that transaction first (``FOR KEY SHARE``, :func:`meters_lock`):
readings have no foreign key to their meter, and a meter is deleted under its row lock
(``metering.meters.meter_delete``) only if it has none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import IntegrityError, connection, transaction

from heatutility.db import copy_escape
from heatutility.errors import ErrorItem
from metering.ingest.rows import DECIMAL_PLACES, NORMALISED_FIELDS, OPTIONAL_NUMERIC
from metering.units import delivered_to_kwh

STAGE_COLUMNS = """
    row_no integer, serial text, read_at timestamptz, energy_value numeric,
    energy_unit text, volume_m3 numeric, flow_temp_c numeric, return_temp_c numeric,
    power_kw numeric, flow_m3h numeric, flow_temp_m3c numeric, return_temp_m3c numeric,
    status_code integer
"""
STAGE_FIELDS = (
    "row_no, serial, read_at, energy_value, energy_unit, volume_m3, flow_temp_c, return_temp_c, "
    "power_kw, flow_m3h, flow_temp_m3c, return_temp_m3c, status_code"
)
# The value as stored (6 decimals, half up: the column's own rounding and the API's), then
# converted and rounded half up again: every path stores the same kWh for the same
# reading, so a reading sent again by another path is a duplicate, not a conflict.
_ENERGY_VALUE_SQL = "round(s.energy_value, 6)"
ENERGY_KWH_SQL = (
    f"round(CASE s.energy_unit WHEN 'kWh' THEN {_ENERGY_VALUE_SQL}"
    f" WHEN 'Wh' THEN {_ENERGY_VALUE_SQL} / 1000 WHEN 'MWh' THEN {_ENERGY_VALUE_SQL} * 1000"
    f" ELSE {_ENERGY_VALUE_SQL} * 1000 / 3.6 END, 6)"
)
# stored column -> (staged expression, scale); equality decides duplicate vs conflict
COMPARED = {
    "energy_kwh": (ENERGY_KWH_SQL, None),
    "volume_m3": ("s.volume_m3", 4),
    "flow_temp_c": ("s.flow_temp_c", 2),
    "return_temp_c": ("s.return_temp_c", 2),
    "power_kw": ("s.power_kw", 3),
    "flow_m3h": ("s.flow_m3h", 4),
    "flow_temp_m3c": ("s.flow_temp_m3c", 4),
    "return_temp_m3c": ("s.return_temp_m3c", 4),
    "status_code": ("s.status_code", None),
}


@dataclass
class ChunkResult:
    accepted: int = 0
    duplicate: int = 0
    conflicting: int = 0
    rejected: int = 0
    errors: list[ErrorItem] = field(default_factory=list)


def _scaled(expr: str, scale: int | None) -> str:
    return f"round({expr}, {scale})" if scale is not None else expr


def _same_values_sql() -> str:
    return " AND ".join(
        f"r.{column} IS NOT DISTINCT FROM {_scaled(expr, scale)}"
        for column, (expr, scale) in COMPARED.items()
    )


def _incoming_json_sql() -> str:
    pairs = ", ".join(
        f"'{name}', s.{name}" for name in STAGE_FIELDS.replace(" ", "").split(",")[1:]
    )
    return f"jsonb_build_object({pairs})"


# --- partitions ------------------------------------------------------------------------


def month_span(year: int, month: int) -> tuple[dt.date, dt.date]:
    """First day of the (UTC) month and of the next: a partition's bounds."""
    return dt.date(year, month, 1), dt.date(year + month // 12, month % 12 + 1, 1)


def partition_name(year: int, month: int) -> str:
    return f"metering_reading_y{year:04d}m{month:02d}"


def partitions_ensure(*, months: set[tuple[int, int]]) -> list[str]:
    """Create the monthly partitions (UTC months) that do not exist yet; returns new names.

    Runs in its own short transaction before data goes in: creating a partition locks
    the parent table, which must not be held for the whole insert.
    """
    if connection.vendor != "postgresql" or not months:
        return []
    created: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'metering_reading'"
        )
        existing = {name for (name,) in cursor.fetchall()}
    for year, month in sorted(months):
        name = partition_name(year, month)
        if name in existing:
            continue
        start, end = month_span(year, month)
        with transaction.atomic(), connection.cursor() as cursor:
            # one creator at a time; a concurrent one finds the table and does nothing
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('metering_reading_partitions'))")
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF metering_reading "
                f"FOR VALUES FROM ('{start.isoformat()} 00:00+00') TO ('{end.isoformat()} 00:00+00')"
            )
        created.append(name)
    return created


def months_of(rows: list[tuple]) -> set[tuple[int, int]]:
    index = NORMALISED_FIELDS.index("read_at")
    return {(int(m[:4]), int(m[5:7])) for m in {row[index][:7] for row in rows}}


# --- PostgreSQL ------------------------------------------------------------------------


def months_of_tsv(text: str) -> set[tuple[int, int]]:
    """UTC months of normalised COPY text (read_at is the third column, in UTC)."""
    # "\n" only (as COPY reads it): splitlines() also breaks at U+2028 inside a serial
    found = {line.split("\t", 3)[2][:7] for line in text.split("\n") if line}
    return {(int(m[:4]), int(m[5:7])) for m in found}


def stage_batch_payload(*, batch_id: int) -> set[tuple[int, int]]:
    """COPY a JSON batch's normalised payload into this session's temporary stage.

    Returns the UTC months it covers (their partitions must exist before the INSERT).
    """
    with connection.cursor() as cursor:
        stage_create(cursor)
        cursor.execute("SELECT payload FROM metering_ingestbatch WHERE id = %s", [batch_id])
        (text,) = cursor.fetchone()
        with cursor.copy(f"COPY metering_stage ({STAGE_FIELDS}) FROM STDIN") as copy:
            copy.write(text)
    return months_of_tsv(text)


def store_staged_postgres(
    *, rows: int, batch_id: int, vendor_id: int, received_at: dt.datetime
) -> ChunkResult:
    """Move the session's staged batch into readings (inside the caller's transaction)."""
    with connection.cursor() as cursor:
        result = stage_to_readings(
            cursor,
            stage="metering_stage",
            batch_id=batch_id,
            vendor_id=vendor_id,
            received_at=received_at,
            rows=rows,
            resolve_meters=True,
        )
        cursor.execute("TRUNCATE metering_stage")
    return result


def tsv(rows: list[tuple]) -> str:
    def cell(value):
        return "\\N" if value is None else copy_escape(value)

    # stage column order: row, serial, read_at, energy, unit, volume, optional..., status
    return "".join("\t".join(map(cell, row)) + "\n" for row in rows)


def stage_create(cursor, name: str = "metering_stage", *, temporary: bool = True) -> None:
    kind = "TEMPORARY" if temporary else "UNLOGGED"
    cursor.execute(f"CREATE {kind} TABLE IF NOT EXISTS {name} (meter_id bigint, {STAGE_COLUMNS})")
    cursor.execute(f"TRUNCATE {name}")


def meter_sql(*, resolve_meters: bool) -> tuple[str, str]:
    """(meter id expression, join) for a stage.

    A stage with serials only (``resolve_meters``) joins the vendor's meters; otherwise
    ``meter_id`` was resolved when staging (NULL = not this vendor's meter).
    """
    if resolve_meters:
        return (
            "m.id",
            "JOIN metering_heatmeter m ON m.serial = s.serial AND m.vendor_id = %(vendor)s",
        )
    return "s.meter_id", ""


def _targets(months: set[tuple[int, int]] | None, read_at: str) -> list[tuple[str, str]]:
    """(table, extra condition) pairs a plain INSERT writes to: the month partitions, or
    the partitioned parent (which routes each row) when the months are not known."""
    if not months or connection.vendor != "postgresql":
        return [("metering_reading", "")]
    targets = []
    for year, month in sorted(months):
        start, end = month_span(year, month)
        targets.append(
            (
                partition_name(year, month),
                f" AND {read_at} >= '{start.isoformat()} 00:00+00'"
                f" AND {read_at} < '{end.isoformat()} 00:00+00'",
            )
        )
    return targets


def refused_error(*, row: int, serial: str, exists: bool) -> ErrorItem:
    """The itemised error of a row for a meter that is not the vendor's."""
    if exists:
        return ErrorItem(
            row=row,
            field="meter",
            code="meter_not_assigned",
            message=f"Meter {serial} is not assigned to this vendor; the row was refused.",
        )
    return ErrorItem(
        row=row,
        field="meter",
        code="unknown_meter",
        message=f"Unknown meter {serial}; the row was refused.",
    )


def refused_rows(cursor, *, stage: str, where: str, refused: str, params: dict) -> list:
    """(row, serial, serial exists for another vendor) of the staged rows ``refused``
    (a condition) picks: rows not for this vendor's meters."""
    cursor.execute(
        f"""SELECT s.row_no, s.serial,
                   EXISTS (SELECT 1 FROM metering_heatmeter o WHERE o.serial = s.serial)
              FROM {stage} s
             WHERE {where} AND {refused}
             ORDER BY s.row_no""",
        params,
    )
    return cursor.fetchall()


def meters_lock(
    cursor,
    *,
    stage: str,
    where: str,
    resolve_meters: bool,
    refused: list,
    serials: list[str] | None,
    params: dict,
) -> list[str]:
    """Lock the meters of the staged rows matching ``where`` (``FOR KEY SHARE``, in id
    order, one statement) in the caller's transaction, before their rows go in; returns
    the serials whose rows cannot go in: their meter was deleted meanwhile, or is not
    the vendor's (on a stage of serials only, ``resolve_meters``), or no longer is (moved
    to another vendor since the rows were resolved), except the serials of the rows in
    ``refused``, refused by the caller already.  ``serials``: on such a
    stage, the vendor's meters the rows are for, when the caller knows them (the
    stage's rows are then not read here).

    Readings have no foreign key to their meter (docs/readings-storage.md), so this is
    what keeps a concurrent ``metering.meters.meter_delete`` (which locks the meter
    ``FOR UPDATE``) from orphaning them: a delete that came first finishes, and its
    meter's rows are refused here; one that comes later waits for this transaction and
    then finds the readings.  A change of the meter's vendor, serial or register unit
    (``metering.meters.WAIT_FOR_DELIVERIES``, ``FOR UPDATE``) waits the same way, so
    the rows go in for the meter as it was when locked, or (the change came first) are
    refused as not the vendor's: never neither.  ``FOR KEY SHARE`` conflicts with
    nothing else: other deliveries, and other updates of the meter (``FOR NO KEY
    UPDATE``), go on.
    """
    if serials is not None:
        if not serials:
            return []
        params["serials"] = serials
        cursor.execute(
            "SELECT m.serial FROM metering_heatmeter m WHERE m.vendor_id = %(vendor)s "
            "AND m.serial = ANY(%(serials)s) ORDER BY m.id FOR KEY SHARE",
            params,
        )
        return sorted(set(serials) - {serial for (serial,) in cursor.fetchall()})
    if resolve_meters:  # the vendor's meters by serial, as the insert joins them
        params["refused_serials"] = sorted({serial for _row, serial, _exists in refused})
        known = " AND s.serial <> ALL(%(refused_serials)s)" if refused else ""
        wanted = (
            "SELECT key, key AS serial "
            f"FROM (SELECT DISTINCT s.serial AS key FROM {stage} s WHERE {where}{known}) d"
        )
        locked = (
            "SELECT m.serial AS key FROM metering_heatmeter m WHERE m.vendor_id = %(vendor)s "
            "AND m.serial IN (SELECT key FROM wanted)"
        )
    else:  # resolved when staged
        wanted = (
            f"SELECT DISTINCT s.meter_id AS key, s.serial FROM {stage} s "
            f"WHERE {where} AND s.meter_id IS NOT NULL"
        )
        # still the vendor's: a meter moved to another vendor since the rows were
        # resolved is not (its rows are refused), as on a stage of serials only
        locked = (
            "SELECT m.id AS key FROM metering_heatmeter m WHERE m.vendor_id = %(vendor)s "
            "AND m.id IN (SELECT key FROM wanted)"
        )
    # one statement, one snapshot: a meter found here whose row is gone once its lock was
    # granted was deleted meanwhile (locking skips it)
    cursor.execute(
        f"""WITH wanted AS MATERIALIZED ({wanted}),
                 locked AS MATERIALIZED ({locked} ORDER BY m.id FOR KEY SHARE OF m)
            SELECT DISTINCT w.serial FROM wanted w
             WHERE w.key NOT IN (SELECT key FROM locked) ORDER BY w.serial""",
        params,
    )
    return [serial for (serial,) in cursor.fetchall()]


def vendor_meters_lock(cursor, *, vendor_id: int, serials: list[str]) -> dict[str, int]:
    """Serial → id of the vendor's meters among ``serials``, locked ``FOR KEY SHARE`` (in
    id order) until the caller's transaction ends; a meter deleted meanwhile is not
    among them (:func:`meters_lock`)."""
    cursor.execute(
        "SELECT serial, id FROM metering_heatmeter WHERE vendor_id = %s AND serial = ANY(%s) "
        "ORDER BY id FOR KEY SHARE",
        [vendor_id, serials],
    )
    return dict(cursor.fetchall())


def batch_spans(
    cursor, *, stage: str, eligible: str, meter: str, params: dict, read_at: str = "s.read_at"
) -> None:
    """Record which meters and times the batch touched (for VEE); idempotent."""
    cursor.execute(
        f"""INSERT INTO metering_ingestbatchmeter (batch_id, meter_id, first_read_at, last_read_at)
            SELECT %(batch)s, {meter}, min({read_at}), max({read_at}) {eligible} GROUP BY {meter}
            ON CONFLICT (batch_id, meter_id) DO UPDATE
               SET first_read_at = LEAST(metering_ingestbatchmeter.first_read_at, EXCLUDED.first_read_at),
                   last_read_at = GREATEST(metering_ingestbatchmeter.last_read_at, EXCLUDED.last_read_at)""",
        params,
    )


def stage_to_readings(
    cursor,
    *,
    stage: str,
    batch_id: int,
    vendor_id: int,
    received_at: dt.datetime,
    rows: int,
    where: str = "TRUE",
    resolve_meters: bool = False,
    refused: list[tuple[int, str, bool]] | None = None,
    serials: list[str] | None = None,
    spans: bool = True,
    months: set[tuple[int, int]] | None = None,
    read_at: str = "s.read_at",
) -> ChunkResult:
    """Move staged rows (those matching ``where``, ``rows`` of them) into readings.

    The stage carries ``meter_id``, resolved set-based against the vendor's meters
    before (NULL = not this vendor's meter: the row is refused), or only serials
    (``resolve_meters``: joined here).  ``refused``: rows the caller found not to be the
    vendor's (else found here); ``serials``: the vendor's meters among the rows, when the
    caller knows them.  The rows' meters are locked first (:func:`meters_lock`):
    rows of a meter deleted meanwhile are refused as those of an unknown meter, and
    nothing of theirs is stored.  ``months``: the UTC
    months the rows fall in, whose partitions exist; new rows then go straight into them.
    ``read_at``: the stage's timestamp expression (a cast where the stage keeps the text).
    """
    result = ChunkResult()
    params = {"batch": batch_id, "vendor": vendor_id, "received": received_at}
    meter, join = meter_sql(resolve_meters=resolve_meters)
    missing = meters_lock(
        cursor,
        stage=stage,
        where=where,
        resolve_meters=resolve_meters,
        refused=refused or [],
        serials=serials,
        params=params,
    )
    if resolve_meters:
        # without statistics on the fresh stage the planner may pick a nested loop over it
        cursor.execute("SELECT set_config('enable_nestloop', 'off', true)")
    elif refused is None:  # resolved when staged: NULL is not this vendor's meter
        refused = refused_rows(
            cursor, stage=stage, where=where, refused="s.meter_id IS NULL", params=params
        )
    refused = refused or []
    if missing:  # not the vendor's meters, or deleted since the rows were resolved
        params["missing"] = missing
        more = refused_rows(
            cursor, stage=stage, where=where, refused="s.serial = ANY(%(missing)s)", params=params
        )
        seen = {row for row, *_ in refused}  # refused by the caller already: counted once
        refused = sorted([*refused, *(row for row in more if row[0] not in seen)])
        where = f"{where} AND s.serial <> ALL(%(missing)s)"
    for row_no, serial, exists in refused:
        result.rejected += 1
        result.errors.append(refused_error(row=row_no, serial=serial, exists=exists))
    optional = ", ".join(OPTIONAL_NUMERIC)
    optional_s = ", ".join(f"s.{name}" for name in OPTIONAL_NUMERIC)
    eligible = f"FROM {stage} s {join} WHERE {where} AND {meter} IS NOT NULL"
    columns = (
        f"meter_id, read_at, energy_kwh, energy_value, energy_unit, volume_m3, {optional}, "
        "status_code, status, batch_id, received_at"
    )
    select = (
        f"SELECT {meter}, {read_at}, {ENERGY_KWH_SQL}, s.energy_value, s.energy_unit, s.volume_m3, "
        f"{optional_s}, s.status_code, 'valid', %(batch)s, %(received)s {eligible}"
    )
    # New keys are the common case: a plain INSERT is about twice as fast as one with
    # ON CONFLICT (no speculative insertion), and one straight into the month's partition
    # saves tuple routing.  The first existing key aborts it at once (savepoint) and the
    # ON CONFLICT statement below does the work instead.
    expected = rows - result.rejected
    inserted = 0
    try:
        with transaction.atomic():
            for target, bounds in _targets(months, read_at):
                cursor.execute(f"INSERT INTO {target} ({columns}) {select}{bounds}", params)
                inserted += cursor.rowcount
    except IntegrityError:
        inserted = 0
    if inserted != expected:  # an existing key, or rows outside the given months
        cursor.execute(
            f"""WITH inserted AS (
                    INSERT INTO metering_reading ({columns}) {select}
                    ON CONFLICT (meter_id, read_at) DO NOTHING
                    RETURNING 1)
                SELECT count(*) FROM inserted""",
            params,
        )
        inserted += cursor.fetchone()[0]
    if spans:
        batch_spans(
            cursor, stage=stage, eligible=eligible, meter=meter, params=params, read_at=read_at
        )
    if resolve_meters:
        cursor.execute("SELECT set_config('enable_nestloop', 'on', true)")
    if inserted == rows - result.rejected:
        result.accepted = inserted
        return result
    # Some keys existed: one join tells ours (an earlier attempt of this batch),
    # duplicates and conflicts apart.
    join = f"""FROM {stage} s {join}
          JOIN metering_reading r ON r.meter_id = {meter} AND r.read_at = {read_at}
         WHERE {where}"""
    cursor.execute(
        f"""SELECT count(*) FILTER (WHERE r.batch_id IS NOT DISTINCT FROM %(batch)s),
                   count(*) FILTER (WHERE r.batch_id IS DISTINCT FROM %(batch)s AND ({_same_values_sql()})),
                   count(*) FILTER (WHERE r.batch_id IS DISTINCT FROM %(batch)s AND NOT ({_same_values_sql()}))
             {join}""",
        params,
    )
    result.accepted, result.duplicate, result.conflicting = cursor.fetchone()
    if result.duplicate:
        # a duplicate is stored once (the first delivery's), and is still a delivery of
        # this batch's vendor: its latest per meter counts for the vendor's last read
        # (metering.selectors.vendor_meters)
        cursor.execute(
            f"""UPDATE metering_ingestbatchmeter b
                   SET last_duplicate_at = GREATEST(b.last_duplicate_at, d.read_at)
                  FROM (SELECT {meter} AS meter_id, max({read_at}) AS read_at
                        {join} AND r.batch_id IS DISTINCT FROM %(batch)s
                        AND ({_same_values_sql()}) GROUP BY 1) d
                 WHERE b.batch_id = %(batch)s AND b.meter_id = d.meter_id""",
            params,
        )
    if result.conflicting:
        cursor.execute(
            f"""INSERT INTO metering_readingconflict (batch_id, "row", meter_id, read_at, incoming, state)
                SELECT %(batch)s, s.row_no, {meter}, {read_at}, {_incoming_json_sql()}, 'open'
                {join} AND r.batch_id IS DISTINCT FROM %(batch)s AND NOT ({_same_values_sql()})
                ON CONFLICT (batch_id, "row") DO NOTHING""",
            params,
        )
    return result


def store_rows_postgres(
    *, rows: list[tuple], batch_id: int, vendor_id: int, received_at: dt.datetime
) -> ChunkResult:
    from metering.models import HeatMeter

    serials = {row[1] for row in rows}
    mine = dict(
        HeatMeter.objects.filter(vendor_id=vendor_id, serial__in=serials).values_list(
            "serial", "id"
        )
    )
    with connection.cursor() as cursor:
        stage_create(cursor)
        with cursor.copy(f"COPY metering_stage (meter_id, {STAGE_FIELDS}) FROM STDIN") as copy:
            copy.write(tsv([(_id(mine.get(row[1])), *row) for row in rows]))
        result = stage_to_readings(
            cursor,
            stage="metering_stage",
            batch_id=batch_id,
            vendor_id=vendor_id,
            received_at=received_at,
            rows=len(rows),
        )
        cursor.execute("TRUNCATE metering_stage")
    return result


def _id(value: int | None) -> str | None:
    return None if value is None else str(value)


# --- SQLite (embedded default) ----------------------------------------------------------

# the Reading columns' decimal places, by column (rows.py keys them by row field)
_SCALES = {
    ("energy_kwh" if field == "energy" else field): places
    for field, places in DECIMAL_PLACES.items()
}


def _q(value, scale: int | None):
    if value is None:
        return None
    number = Decimal(str(value))
    return number.quantize(Decimal(1).scaleb(-scale)) if scale is not None else int(number)


def _same_values(incoming: dict, stored: Sequence) -> bool:
    """Whether a row's ``COMPARED`` values (``incoming``, by column) are the stored ones
    (in ``COMPARED`` order): a duplicate, not a conflict, as ``_same_values_sql``."""
    return all(
        _q(incoming[column], _SCALES.get(column)) == _q(value, _SCALES.get(column))
        for column, value in zip(COMPARED, stored, strict=True)
    )


def readings_stored_differing(rows: list[tuple], *, vendor_id: int, batch_id: int) -> set[str]:
    """The row numbers of normalised ``rows`` whose meter (the vendor's, by serial) has a
    reading stored at the row's ``read_at`` by another batch with other values: stored
    there, the row would be a conflict.  One query, for both databases.

    Readings staff edited or estimated are left out: their values are no vendor's, so
    a row that differs from them is no sign of another reading (it is a conflict, for
    staff, as anywhere)."""
    from metering.models import Reading

    if not rows:
        return set()
    found = {
        (serial, read_at): values
        for serial, read_at, *values in Reading.objects.filter(
            meter__vendor_id=vendor_id,
            meter__serial__in={row[1] for row in rows},
            read_at__in={dt.datetime.fromisoformat(row[2]) for row in rows},
        )
        .exclude(batch_id=batch_id)
        .exclude(status__in=[Reading.Status.EDITED, Reading.Status.ESTIMATED])
        .values_list("meter__serial", "read_at", *COMPARED)
    }
    differing = set()
    for row in rows:
        stored = found.get((row[1], dt.datetime.fromisoformat(row[2])))
        incoming = {
            "energy_kwh": delivered_to_kwh(Decimal(row[3]), row[4]),
            "volume_m3": row[5],
            **dict(zip(OPTIONAL_NUMERIC, row[6:12], strict=True)),
            "status_code": row[12],
        }
        if stored is not None and not _same_values(incoming, stored):
            differing.add(row[0])
    return differing


def store_rows_sqlite(
    *, rows: list[tuple], batch_id: int, vendor_id: int, received_at: dt.datetime
) -> ChunkResult:
    from metering.models import HeatMeter, IngestBatchMeter, ReadingConflict

    ops = connection.ops
    result = ChunkResult()
    serials = {row[1] for row in rows}
    mine = dict(
        HeatMeter.objects.filter(vendor_id=vendor_id, serial__in=serials).values_list(
            "serial", "id"
        )
    )
    known = set(
        HeatMeter.objects.filter(serial__in=serials - set(mine)).values_list("serial", flat=True)
    )
    eligible = []
    for row in rows:
        if row[1] in mine:
            eligible.append(row)
            continue
        result.rejected += 1
        result.errors.append(refused_error(row=int(row[0]), serial=row[1], exists=row[1] in known))
    if not eligible:
        return result
    received = ops.adapt_datetimefield_value(received_at)
    records = []
    spans: dict[int, list] = {}
    to_kwh = delivered_to_kwh  # a local name in the per-row loop
    for row in eligible:
        meter_id = mine[row[1]]
        read_at = dt.datetime.fromisoformat(row[2])
        energy_kwh = to_kwh(Decimal(row[3]), row[4])
        span = spans.setdefault(meter_id, [read_at, read_at])
        span[0], span[1] = min(span[0], read_at), max(span[1], read_at)
        records.append(
            (
                meter_id,
                ops.adapt_datetimefield_value(read_at),
                str(energy_kwh),
                row[3],
                row[4],
                row[5],
                *row[6:12],
                None if row[12] is None else int(row[12]),
                "valid",
                batch_id,
                received,
                int(row[0]),
                read_at,
            )
        )
    keys = {(r[0], r[1]) for r in records}
    columns = (
        "meter_id, read_at, energy_kwh, energy_value, energy_unit, volume_m3, flow_temp_c, return_temp_c, "
        "power_kw, flow_m3h, flow_temp_m3c, return_temp_m3c, status_code, status, batch_id, received_at"
    )
    compared = list(COMPARED)
    existing = {}
    with connection.cursor() as cursor:
        meter_ids = sorted({r[0] for r in records})
        low, high = min(r[1] for r in records), max(r[1] for r in records)
        placeholders = ",".join("%s" for _ in meter_ids)
        cursor.execute(
            f"SELECT meter_id, read_at, batch_id, {', '.join(compared)} FROM metering_reading "
            f"WHERE meter_id IN ({placeholders}) AND read_at BETWEEN %s AND %s",
            [*meter_ids, low, high],
        )
        for meter_id, read_at, batch, *values in cursor.fetchall():
            read_at = read_at if isinstance(read_at, str) else str(read_at)  # naive UTC, as adapted
            if (meter_id, read_at) in keys:
                existing[(meter_id, read_at)] = (batch, values)
        fresh = [r[:16] for r in records if (r[0], r[1]) not in existing]
        cursor.executemany(
            f"INSERT OR IGNORE INTO metering_reading ({columns}) VALUES ({', '.join(['%s'] * 16)})",
            fresh,
        )
    result.accepted += len(fresh)
    conflicts = []
    duplicated: dict[int, dt.datetime] = {}  # meter -> latest duplicate: see the PostgreSQL path
    for r in records:
        found = existing.get((r[0], r[1]))
        if found is None:
            continue
        batch, values = found
        if batch == batch_id:
            result.accepted += 1
            continue
        mapping = {
            "energy_kwh": r[2],
            "volume_m3": r[5],
            "flow_temp_c": r[6],
            "return_temp_c": r[7],
            "power_kw": r[8],
            "flow_m3h": r[9],
            "flow_temp_m3c": r[10],
            "return_temp_m3c": r[11],
            "status_code": r[12],
        }
        if _same_values(mapping, values):
            result.duplicate += 1
            duplicated[r[0]] = max(duplicated.get(r[0], r[17]), r[17])
        else:
            result.conflicting += 1
            incoming = {
                "energy_value": r[3],
                "energy_unit": r[4],
                **{k: v for k, v in mapping.items() if k != "energy_kwh"},
            }
            conflicts.append(
                ReadingConflict(
                    batch_id=batch_id, row=r[16], meter_id=r[0], read_at=r[17], incoming=incoming
                )
            )
    ReadingConflict.objects.bulk_create(conflicts, ignore_conflicts=True)
    for meter_id, (first, last) in spans.items():
        span, created = IngestBatchMeter.objects.get_or_create(
            batch_id=batch_id,
            meter_id=meter_id,
            defaults={"first_read_at": first, "last_read_at": last},
        )
        if not created and (first < span.first_read_at or last > span.last_read_at):
            span.first_read_at, span.last_read_at = (
                min(first, span.first_read_at),
                max(last, span.last_read_at),
            )
            span.save(update_fields=["first_read_at", "last_read_at"])
        latest = duplicated.get(meter_id)
        if latest is not None and (
            span.last_duplicate_at is None or latest > span.last_duplicate_at
        ):
            span.last_duplicate_at = latest
            span.save(update_fields=["last_duplicate_at"])
    return result


def store_rows(
    *, rows: list[tuple], batch_id: int, vendor_id: int, received_at: dt.datetime
) -> ChunkResult:
    """Store one chunk of normalised rows; call inside the chunk's transaction."""
    if connection.vendor == "postgresql":
        return store_rows_postgres(
            rows=rows, batch_id=batch_id, vendor_id=vendor_id, received_at=received_at
        )
    return store_rows_sqlite(
        rows=rows, batch_id=batch_id, vendor_id=vendor_id, received_at=received_at
    )
