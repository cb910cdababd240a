"""PostgreSQL fast path for vendor CSV files: the server parses, checks and converts.

The file's bytes go unchanged into an UNLOGGED staging table (one COPY … CSV with FREEZE,
the cheapest write PostgreSQL has).  For point-decimal files the stage has typed columns
and one CHECK constraint with the same rules as :mod:`metering.ingest.rows` (casts,
ranges), so the COPY itself refuses a bad value; decimal-comma files are staged as text
and converted in one pass, then checked by one aggregate query.  One ``GROUP BY serial``
then gives each meter's time span and finds duplicates inside the file, and the rows move
into the readings in committed chunks (TID ranges of the stage, straight into the month's
partition) with :func:`store.stage_to_readings`.

Whenever the server finds anything wrong (a value that does not cast, a range, a
duplicate, a ragged line) the batch falls back to the Python validator, which lists
every error with row, field and code; so error reporting has one source of truth and
the fast path only ever handles files that are entirely valid.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import re

import numpy as np
import psycopg
from django.db import DatabaseError, connection, transaction

from metering.ingest import rows as row_rules
from metering.ingest import store
from metering.models import HeatMeter, IngestBatch, IngestBatchMeter
from metering.retention import readings_horizons

log = logging.getLogger(__name__)

# What may follow HH:MM in a timestamp that COPY or the stage's cast reads: the forms
# PostgreSQL and the Python rules (rows.py) read as the same instant.  PostgreSQL would
# take 24:00, a 60th second or a one-digit offset (+1) that the JSON path refuses, refuse
# an offset of +23:59 or a decimal comma it accepts, and round a seventh second decimal
# (…59.9999996 → the next second) that datetime.fromisoformat cuts off (…59.999999).
# Anything else goes to the Python validator, which decides for every lane, so a reading
# has one instant whichever path it comes by and is never stored twice.
ISO_TIME_TAIL = r"(:[0-5]\d(\.\d{1,6})?)?(Z|[+-](0\d|1[0-4])(:?[0-5]\d)?)?"
_ISO_TAIL_RE = re.compile(ISO_TIME_TAIL.encode())
# The same grammar for the stage's cast (a PostgreSQL regex; any other field is NULL)
ISO_TIMESTAMP_RE = rf"^\d{{4}}-\d\d-\d\d[T ]([01]\d|2[0-3]):[0-5]\d{ISO_TIME_TAIL}$"
# Offsets in a timestamp field that must hold a digit / the character given:
# YYYY-MM-DD[T ]HH:MM, then only digits and ":.+-Z" (seconds, fraction, offset).
ISO_DIGITS = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15)
ISO_TAIL = b"0123456789:.+-Z"


def iso_timestamps(payload: bytes, *, column: int, width: int, separator: str) -> bool:
    """Whether field ``column`` of every data line is an ISO 8601 timestamp.

    PostgreSQL's timestamptz input also takes 'yesterday', 'now' or a DateStyle-dependent
    01-09-2026, which the Python rules refuse; a file whose timestamps are all ISO can be
    parsed by COPY straight into a typed column.  Vectorised over the file's bytes; a file
    with quotes, blank or ragged lines says no (the other staging path sorts it out).
    """
    if b'"' in payload or len(separator) != 1:
        return False
    data = np.frombuffer(payload, dtype=np.uint8)
    ends = np.flatnonzero(data == 10)
    if not payload.endswith(b"\n"):
        ends = np.append(ends, len(data))
    separators = np.flatnonzero(data == ord(separator))
    lines = len(ends) - 1  # after the header
    if lines < 1 or len(separators) != (width - 1) * (lines + 1):
        return False
    per_line = separators.reshape(lines + 1, width - 1)[1:] if width > 1 else None
    starts = ends[:-1] + 1
    ends = ends[1:]
    if per_line is not None and ((per_line[:, 0] < starts) | (per_line[:, -1] >= ends)).any():
        return False  # some line has too many separators, another too few
    field_start = starts if column == 0 else per_line[:, column - 1] + 1
    last = column == width - 1  # then the field ends before a CR of CRLF
    field_end = ends - (data[ends - 1] == 13) if last else per_line[:, column]
    length = field_end - field_start
    if (length < 16).any() or (length > 32).any():
        return False
    digits = data[field_start[:, None] + np.array(ISO_DIGITS)]
    if ((digits < 48) | (digits > 57)).any():
        return False
    values = digits.astype(np.int16) - 48
    if (values[:, 8] * 10 + values[:, 9] > 23).any() or (values[:, 10] > 5).any():
        return False  # hour 24 or minute 60 and above: PostgreSQL rolls them over
    for offset, allowed in ((4, b"-"), (7, b"-"), (10, b"T "), (13, b":")):
        if not np.isin(data[field_start + offset], np.frombuffer(allowed, np.uint8)).all():
            return False
    # after the minutes: only ISO_TAIL characters (one gather per field length)
    allowed = np.zeros(256, dtype=bool)
    allowed[np.frombuffer(ISO_TAIL, np.uint8)] = True
    for size in np.unique(length):
        if size > 16:
            at = field_start[length == size]
            tails = data[at[:, None] + np.arange(16, size)]
            if not allowed[tails].all():
                return False
            # a file repeats a few tails (":00+01:00", ":00Z"): each distinct one checked
            distinct = np.unique(np.ascontiguousarray(tails).view(f"V{size - 16}").ravel())
            if not all(_ISO_TAIL_RE.fullmatch(tail.tobytes()) for tail in distinct):
                return False
    return True


def available() -> bool:
    return connection.vendor == "postgresql"


def _number_sql(column: str | None, decimal_comma: bool) -> str:
    # numeric input ignores surrounding spaces; an empty CSV field is already NULL
    if column is None:
        return "NULL::numeric"
    if decimal_comma:
        return (
            f"(CASE WHEN strpos({column}, ',') > 0 "
            f"THEN replace(replace({column}, '.', ''), ',', '.') ELSE {column} END)::numeric"
        )
    return f"{column}::numeric"


def _typed_select(positions: dict[str, int], *, decimal_comma: bool, energy_unit: str) -> str:
    """SELECT list turning raw text columns into the stage's typed columns.

    Timestamps without offset are read in the session's TimeZone, which the caller sets
    to the vendor's zone (``SET LOCAL TimeZone``): one cast for both kinds of value.
    """

    def col(field: str) -> str | None:
        return f"r.c{positions[field]}" if field in positions else None

    ts = col("read_at")
    unit = f"NULLIF(btrim({col('energy_unit')}), '')" if col("energy_unit") else "NULL"
    status = col("status_code")
    parts = [
        "m.id AS meter_id",
        "r.row_no - 1 AS row_no",  # 0-based data rows, as everywhere else
        f"btrim({col('meter')}) AS serial",
        # only strict ISO text reaches the cast: PostgreSQL would also take 'yesterday',
        # 24:00 or +1, and round a seventh second decimal the Python rules cut off
        f"(CASE WHEN {ts} ~ '{ISO_TIMESTAMP_RE}' THEN {ts}::timestamptz END) AS read_at",
        f"{_number_sql(col('energy'), decimal_comma)} AS energy_value",
        f"COALESCE({unit}, '{energy_unit}') AS energy_unit",
        f"{_number_sql(col('volume_m3'), decimal_comma)} AS volume_m3",
        *(
            f"{_number_sql(col(field), decimal_comma)} AS {field}"
            for field in row_rules.OPTIONAL_NUMERIC
        ),
        f"{status}::bigint AS status_code" if status else "NULL::bigint AS status_code",
        f"({_text_problems(positions, decimal_comma=decimal_comma)}) AS bad",
    ]
    return ", ".join(parts)


# a decimal-comma number with dots that group thousands (rows._GROUPED, as far as the
# fast path goes: anything else with a dot goes to the Python rules, which refuse it)
GROUPED_RE = r"^\s*[+-]?[0-9]{1,3}(\.[0-9]{3})+,[0-9]*\s*$"


def _text_problems(positions: dict[str, int], *, decimal_comma: bool = False) -> str:
    """Checks on the raw text that casting alone would not catch."""
    checks = [f"r.c{positions[f]} IS NULL" for f in ("meter", "read_at", "energy", "volume_m3")]
    if decimal_comma:  # a dot other than a thousands group (12.345: ambiguous_number)
        checks += [
            f"(strpos(r.c{positions[f]}, '.') > 0 AND r.c{positions[f]} !~ '{GROUPED_RE}')"
            for f in ("energy", "volume_m3", *row_rules.OPTIONAL_NUMERIC)
            if f in positions
        ]
    checks.append(f"length(r.c{positions['meter']}) > 60")
    checks.append(f"length(r.c{positions['read_at']}) > 40")
    if "energy_unit" in positions:
        units = ", ".join(f"'{u}'" for u in row_rules.ENERGY_UNITS)
        checks.append(f"(btrim(r.c{positions['energy_unit']}) NOT IN ({units}))")
    return " OR ".join(checks)


def _problem_terms(*, point_decimal: bool = False) -> list[str]:
    """Conditions on a typed stage row that the Python validator would refuse."""
    # the point-decimal stage keeps the timestamp as sent (text), cast when rows move on
    checks = ["read_at IS NULL"] if point_decimal else ["bad", "read_at IS NULL"]
    if point_decimal:  # what COPY accepts but the Python rules refuse
        units = ", ".join(f"'{u}'" for u in row_rules.ENERGY_UNITS)
        checks += [
            "serial IS NULL",
            "serial <> btrim(serial)",
            "length(serial) > 60",
            "energy_value IS NULL",
            "volume_m3 IS NULL",
            "energy_unit IS NULL",
            f"energy_unit NOT IN ({units})",
        ]
    for field, (low, high) in row_rules.NUMERIC_LIMITS.items():
        name = "energy_value" if field == "energy" else field
        checks.append(f"({name} IS NOT NULL AND NOT ({name} >= {low:f} AND {name} < {high:f}))")
        # more decimals than the column holds are rounded when the row moves on (half
        # away from zero, as the careful lane's half up)
    for unit, limit in row_rules.ENERGY_LIMIT_BY_UNIT.items():  # what kWh cannot hold
        checks.append(f"(energy_unit = '{unit}' AND energy_value >= {limit:f})")
    checks.append("read_at < '2000-01-01T00:00Z' OR read_at >= '2100-01-01T00:00Z'")
    checks.append("(status_code IS NOT NULL AND (status_code < 0 OR status_code >= 2147483648))")
    return checks


def _problems_sql(typed: str) -> str:
    """One scan over a typed stage: rows the Python validator would refuse (0 = clean)."""
    return f"SELECT count(*) FILTER (WHERE {' OR '.join(_problem_terms())}) FROM {typed}"


def _spans(cursor, typed: str) -> list[tuple]:
    """(serial, first, last read_at in UTC, duplicates inside the file?, first, last
    row) per serial.

    One ``GROUP BY serial`` (a sort; files usually come ordered by meter, which makes it
    cheap).  Instants come back as UTC wall times (the session's zone is the vendor's).
    The rows tell which meters a chunk may hold (the meters it locks).
    """
    cursor.execute(
        f"SELECT serial, min(read_at) AT TIME ZONE 'UTC', max(read_at) AT TIME ZONE 'UTC', "
        f"count(*) <> count(DISTINCT read_at), min(row_no), max(row_no) FROM {typed} "
        "GROUP BY serial"
    )
    return [
        (serial, low.replace(tzinfo=dt.UTC), high.replace(tzinfo=dt.UTC), duplicated, *rows)
        for serial, low, high, duplicated, *rows in cursor.fetchall()
    ]


def _fallback(
    batch: IngestBatch, *, now: dt.datetime, chunk_rows: int, max_chunks: int | None, reason: str
):
    from metering.ingest import batches

    log.info("batch %s: fast CSV path declined (%s); validating in Python", batch.pk, reason)
    return batches.process_rows_python(
        batch=batch, now=now, chunk_rows=chunk_rows, max_chunks=max_chunks
    )


def process_file_batch(
    *, batch: IngestBatch, now: dt.datetime, chunk_rows: int, max_chunks: int | None = None
):
    from metering.ingest import batches

    vendor = batch.vendor
    with batch.file.open("rb") as handle:
        raw_bytes = handle.read()
    utf8 = vendor.csv_encoding.lower().replace("-", "").replace("_", "") == "utf8"
    if utf8:
        payload = raw_bytes  # COPY checks the encoding itself (and declines on a bad byte)
        first_line = raw_bytes[: raw_bytes.find(b"\n") if b"\n" in raw_bytes[:65536] else 65536]
        first_line = first_line.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r")
    else:
        try:
            text = raw_bytes.decode(vendor.csv_encoding)
        except UnicodeDecodeError:
            return _fallback(
                batch, now=now, chunk_rows=chunk_rows, max_chunks=max_chunks, reason="encoding"
            )
        payload = text.encode("utf-8")
        first_line = text.split("\n", 1)[0].lstrip("\ufeff").rstrip("\r")
    header = next(csv.reader([first_line], delimiter=vendor.csv_separator), [])
    errors = row_rules.RowErrors()
    positions = row_rules.csv_positions(
        header=header, mapping=vendor.csv_columns or {}, errors=errors
    )
    if errors or not header:
        return _fallback(
            batch, now=now, chunk_rows=chunk_rows, max_chunks=max_chunks, reason="header"
        )
    raw, typed = f"metering_stage_raw_{batch.pk}", f"metering_stage_typed_{batch.pk}"
    # point-decimal files with ISO timestamps are parsed by COPY into typed columns; the
    # others are staged as text and converted (with the same checks) in one pass
    point_decimal = not vendor.csv_decimal_comma and iso_timestamps(
        payload, column=positions["read_at"], width=len(header), separator=vendor.csv_separator
    )
    delimiter = vendor.csv_separator.replace("'", "''")
    options = f"FORMAT csv, HEADER true, DELIMITER '{delimiter}', ENCODING 'UTF8'"
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {raw}, {typed}")
            # timestamps without offset are read in the vendor's zone (transaction-local)
            cursor.execute("SELECT set_config('TimeZone', %s, true)", [vendor.csv_time_zone])
            if point_decimal:  # the stage's CHECK refuses what the Python rules would refuse
                count = _stage_direct(cursor, typed, header, positions, options, payload, vendor)
            else:
                count = _stage_via_text(
                    cursor, raw, typed, header, positions, options, payload, batch
                )
            if count == 0:
                raise _Decline("empty")
            if not point_decimal:
                cursor.execute(_problems_sql(typed))
                if cursor.fetchone()[0]:
                    raise _Decline("values")
            # enough memory to sort every key once instead of spilling to disk
            cursor.execute("SELECT set_config('work_mem', '256MB', true)")
            per_serial = _spans(cursor, typed)
            # back to UTC: Django reads timestamptz assuming a UTC session
            cursor.execute("SELECT set_config('TimeZone', 'UTC', true)")
            if any(duplicated for _serial, _low, _high, duplicated, *_ in per_serial):
                raise _Decline("duplicates")
            # control characters in a serial: checked once per meter here, not per row
            # in the stage (the Python rules then itemise the rows); so is a Unicode
            # space around it (a no-break space), which btrim keeps and the Python
            # rules trim: they find its meter
            if any(
                row_rules.CONTROL_CHARACTERS.search(serial) or serial != serial.strip()
                for serial, *_ in per_serial
            ):
                raise _Decline("values")
            low, high = min(s[1] for s in per_serial), max(s[2] for s in per_serial)
            if low < row_rules.EARLIEST or high >= row_rules.LATEST:
                raise _Decline("values")
            horizons = readings_horizons(now=batch.received_at, vendor_id=batch.vendor_id)(
                [serial for serial, *_ in per_serial]
            )
            if any(first < horizons[serial] for serial, first, *_ in per_serial):
                raise _Decline("beyond the retention horizon")
            if high > batches.readings_latest(received_at=batch.received_at):
                raise _Decline("in the future")
            # a wall time of the autumn night's repeated hour: PostgreSQL reads every one
            # as standard time, the Python rules the first of a meter's as summer time,
            # or as winter time after a stored summer-time reading (rows.py); a file with
            # any instant in that hour (rarely more than one a year) goes to them,
            # offsets or not, so every path reads it the same
            if _in_repeated_hour(cursor, typed, vendor.csv_time_zone, low, high):
                raise _Decline("ambiguous local time")
            # each chunk is a row_no range; rows lie in the heap in row_no order, so the
            # range's first and last tuple ids bound a TID range scan (no index to build)
            cursor.execute(
                f"SELECT row_no / %s, min(ctid)::text, max(ctid)::text FROM {typed} GROUP BY 1",
                [chunk_rows],
            )
            tids = {int(k): (low, high) for k, low, high in cursor.fetchall()}
        months = _months_between(low, high)
    except (_Decline, DatabaseError, psycopg.Error) as exc:
        _drop(raw, typed)
        return _fallback(
            batch, now=now, chunk_rows=chunk_rows, max_chunks=max_chunks, reason=str(exc)[:200]
        )
    IngestBatch.objects.filter(pk=batch.pk).update(row_count=count)
    store.partitions_ensure(months=months)
    # the spans go in before the rows: should processing end half-way ('failed' keeps the
    # committed chunks), nightly VEE still finds the meters whose readings were stored.
    # Their meters are locked meanwhile, so a meter deleted at this instant is not one
    # of the vendor's here (its rows are refused), instead of failing the spans' key.
    with transaction.atomic(), connection.cursor() as cursor:
        mine = store.vendor_meters_lock(
            cursor, vendor_id=batch.vendor_id, serials=[serial for serial, *_ in per_serial]
        )
        foreign = [serial for serial, *_ in per_serial if serial not in mine]
        refused_all = []
        if foreign:  # rows for meters that are not this vendor's, refused with their row
            known = set(
                HeatMeter.objects.filter(serial__in=foreign).values_list("serial", flat=True)
            )
            cursor.execute(
                f"SELECT row_no, serial FROM {typed} WHERE serial = ANY(%s) ORDER BY row_no",
                [foreign],
            )
            refused_all = [(row, serial, serial in known) for row, serial in cursor.fetchall()]
        spans = [
            IngestBatchMeter(
                batch_id=batch.pk, meter_id=mine[serial], first_read_at=low, last_read_at=high
            )
            for serial, low, high, *_ in per_serial
            if serial in mine
        ]
        IngestBatchMeter.objects.bulk_create(spans, ignore_conflicts=True)
    done = 0
    for start in range(0, count, chunk_rows):
        end = min(start + chunk_rows, count)
        if max_chunks is not None and done >= max_chunks:
            return IngestBatch.objects.get(pk=batch.pk)
        with transaction.atomic():
            locked = IngestBatch.objects.select_for_update().get(pk=batch.pk)
            if locked.progress >= end:
                continue
            first = max(start, locked.progress)
            low, high = tids[start // chunk_rows]
            # the vendor's meters with rows in the chunk (the stage of serials only: the
            # meters to lock, without another pass over the chunk's rows)
            serials = [
                serial
                for serial, *_, first_row, last_row in per_serial
                if serial in mine and first_row < end and last_row >= first
            ]
            with connection.cursor() as cursor:
                result = store.stage_to_readings(
                    cursor,
                    stage=typed,
                    batch_id=batch.pk,
                    vendor_id=batch.vendor_id,
                    received_at=batch.received_at,
                    where=(
                        f"s.ctid BETWEEN '{low}'::tid AND '{high}'::tid "
                        f"AND s.row_no >= {int(first)} AND s.row_no < {int(end)}"
                    ),
                    rows=end - first,
                    resolve_meters=point_decimal,
                    refused=[r for r in refused_all if first <= r[0] < end],
                    serials=serials if point_decimal else None,
                    spans=False,
                    months=months,
                )
            batches.batch_add_result(locked, result, progress=end)
            done += 1
    _drop(raw, typed)
    return batches.batch_finish(batch_id=batch.pk, now=now)


STAGE_NAMES = {"meter": "serial", "energy": "energy_value"}


def _stage_direct(cursor, typed, header, positions, options, payload, vendor) -> int:
    """Point-decimal files COPY straight into typed columns: the server parses each value
    once.  Meters are joined when the rows move on (``resolve_meters``)."""
    by_position = {index: field for field, index in positions.items()}
    names = ", ".join(STAGE_NAMES.get(by_position[i], by_position[i]) for i in range(len(header)))
    unit = vendor.csv_energy_unit.replace("'", "''")
    cursor.execute(
        f"CREATE UNLOGGED TABLE {typed} ("
        "row_no bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 0 MINVALUE 0 CACHE 10000), "
        f"serial text, read_at timestamptz, energy_value numeric, energy_unit text DEFAULT '{unit}', "
        "volume_m3 numeric, "
        + ", ".join(f"{name} numeric" for name in row_rules.OPTIONAL_NUMERIC)
        + ", status_code bigint, "
        f"CHECK (({' OR '.join(_problem_terms(point_decimal=True))}) IS NOT TRUE))"
    )
    with cursor.copy(f"COPY {typed} ({names}) FROM STDIN WITH ({options}, FREEZE true)") as copy:
        copy.write(payload)
    count = cursor.rowcount
    return count


def _stage_via_text(cursor, raw, typed, header, positions, options, payload, batch) -> int:
    """Decimal-comma files: COPY as text, then convert (and resolve meters) in one pass."""
    vendor = batch.vendor
    columns = ", ".join(f"c{i} text" for i in range(len(header)))
    cursor.execute(f"CREATE UNLOGGED TABLE {raw} (row_no bigserial, {columns})")
    names = ", ".join(f"c{i}" for i in range(len(header)))
    with cursor.copy(f"COPY {raw} ({names}) FROM STDIN WITH ({options}, FREEZE true)") as copy:
        copy.write(payload)
    count = cursor.rowcount
    select = _typed_select(
        positions, decimal_comma=vendor.csv_decimal_comma, energy_unit=vendor.csv_energy_unit
    )
    cursor.execute(
        f"CREATE UNLOGGED TABLE {typed} AS SELECT {select} FROM {raw} r "
        f"LEFT JOIN metering_heatmeter m ON m.serial = btrim(r.c{positions['meter']}) "
        f"AND m.vendor_id = %s",
        [batch.vendor_id],
    )
    return count


def _in_repeated_hour(cursor, typed: str, time_zone: str, low, high) -> bool:
    """Whether a staged instant lies in a span whose wall times occur twice."""
    from zoneinfo import ZoneInfo

    spans = row_rules.ambiguous_spans(ZoneInfo(time_zone), low, high)
    if not spans:
        return False
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {typed} WHERE "
        + " OR ".join("(read_at >= %s AND read_at < %s)" for _ in spans)
        + ")",
        [moment for span in spans for moment in span],
    )
    return cursor.fetchone()[0]


def _months_between(first: dt.datetime, last: dt.datetime) -> set[tuple[int, int]]:
    first, last = first.astimezone(dt.UTC), last.astimezone(dt.UTC)
    months, year, month = set(), first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.add((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


class _Decline(Exception):
    pass


def drop_stages(batch_id: int) -> None:
    """Drop a batch's stage tables, if any (after processing failed half-way)."""
    if available():
        _drop(f"metering_stage_raw_{batch_id}", f"metering_stage_typed_{batch_id}")


def _drop(*tables: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {', '.join(tables)}")
