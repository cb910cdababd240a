"""PostgreSQL fast path for vendor CSV files: the server parses, checks and converts.

The file's bytes go unchanged into an UNLOGGED staging table of text columns (one
COPY … CSV, the cheapest write PostgreSQL has), one aggregate query checks every value
with the same rules as :mod:`metering.ingest.rows` (casts, ranges, duplicates inside the
file), and the rows then move into the readings in committed chunks with the same
``INSERT … SELECT … ON CONFLICT`` as every other path (:func:`store.stage_to_readings`).

Whenever the server finds anything wrong (a value that does not cast, a range, a
duplicate, a ragged line) the batch falls back to the Python validator, which lists
every error with row, field and code; so error reporting has one source of truth and
the fast path only ever handles files that are entirely valid.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging

import psycopg
from django.db import DatabaseError, connection, transaction

from metering.ingest import rows as row_rules
from metering.ingest import store
from metering.models import IngestBatch

log = logging.getLogger(__name__)

TIMESTAMP_RE = r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|[+-]\d\d(:?\d\d)?)?$"
OFFSET_RE = r"(Z|[+-]\d\d(:?\d\d)?)$"
INTEGER_RE = r"^\s*[+-]?\d+\s*$"


def available() -> bool:
    return connection.vendor == "postgresql"


def _number_sql(column: str, decimal_comma: bool) -> str:
    text = f"btrim({column})"
    if decimal_comma:
        text = f"(CASE WHEN strpos({text}, ',') > 0 THEN replace(replace({text}, '.', ''), ',', '.') ELSE {text} END)"
    return f"(NULLIF({text}, ''))::numeric"


def _typed_select(
    positions: dict[str, int], *, decimal_comma: bool, energy_unit: str, zone: str
) -> str:
    """SELECT list turning raw text columns into the stage's typed columns."""

    def col(field: str) -> str | None:
        return f"r.c{positions[field]}" if field in positions else None

    ts = col("read_at")
    quoted_zone = zone.replace("'", "''")
    read_at = (
        f"(CASE WHEN btrim({ts}) ~ '{OFFSET_RE}' THEN btrim({ts})::timestamptz "
        f"ELSE (btrim({ts})::timestamp AT TIME ZONE '{quoted_zone}') END)"
    )
    unit = f"NULLIF(btrim({col('energy_unit')}), '')" if col("energy_unit") else "NULL"
    parts = [
        "r.row_no - 1 AS row_no",  # 0-based data rows, as everywhere else
        f"btrim({col('meter')}) AS serial",
        f"{read_at} AS read_at",
        f"{_number_sql(col('energy'), decimal_comma)} AS energy_value",
        f"COALESCE({unit}, '{energy_unit}') AS energy_unit",
        f"{_number_sql(col('volume_m3'), decimal_comma)} AS volume_m3",
    ]
    for field in row_rules.OPTIONAL_NUMERIC:
        parts.append(
            f"{_number_sql(col(field), decimal_comma) if col(field) else 'NULL::numeric'} AS {field}"
        )
    status = col("status_code")
    parts.append(
        f"(NULLIF(btrim({status}), ''))::integer AS status_code"
        if status
        else "NULL::integer AS status_code"
    )
    return ", ".join(parts)


def _problems_sql(positions: dict[str, int], raw: str, typed: str) -> str:
    """One scan: count rows the Python validator would refuse (0 = the file is clean)."""
    checks = []
    for field in ("meter", "read_at", "energy", "volume_m3"):
        checks.append(f"NULLIF(btrim(r.c{positions[field]}), '') IS NULL")
    checks.append(f"length(btrim(r.c{positions['meter']})) > 60")
    checks.append(f"btrim(r.c{positions['read_at']}) !~ '{TIMESTAMP_RE}'")
    if "status_code" in positions:
        checks.append(
            f"(NULLIF(btrim(r.c{positions['status_code']}), '') IS NOT NULL AND r.c{positions['status_code']} !~ '{INTEGER_RE}')"
        )
    if "energy_unit" in positions:
        checks.append(
            f"(NULLIF(btrim(r.c{positions['energy_unit']}), '') NOT IN ({', '.join(repr(u) for u in row_rules.ENERGY_UNITS)}))"
        )
    for field, (low, high) in row_rules.NUMERIC_LIMITS.items():
        name = "energy_value" if field == "energy" else field
        checks.append(
            f"(t.{name} IS NOT NULL AND NOT (t.{name} >= {low:f} AND t.{name} < {high:f}))"
        )
    checks.append("(t.read_at < '2000-01-01T00:00Z' OR t.read_at >= '2100-01-01T00:00Z')")
    checks.append("(t.status_code IS NOT NULL AND t.status_code < 0)")
    return (
        f"SELECT count(*) FROM {raw} r JOIN {typed} t ON t.row_no = r.row_no - 1 WHERE "
        + " OR ".join(checks)
    )


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
    try:
        text = raw_bytes.decode(vendor.csv_encoding)
    except UnicodeDecodeError:
        return _fallback(
            batch, now=now, chunk_rows=chunk_rows, max_chunks=max_chunks, reason="encoding"
        )
    text = text.lstrip("\ufeff")
    first_line = text.split("\n", 1)[0].rstrip("\r")
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
    columns = ", ".join(f"c{i} text" for i in range(len(header)))
    if vendor.csv_encoding.lower().replace("-", "") not in ("utf8",):
        payload = text.encode("utf-8")
    else:
        payload = raw_bytes
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {raw}, {typed}")
            cursor.execute(f"CREATE UNLOGGED TABLE {raw} (row_no bigserial, {columns})")
            names = ", ".join(f"c{i}" for i in range(len(header)))
            delimiter = vendor.csv_separator.replace("'", "''")
            with cursor.copy(
                f"COPY {raw} ({names}) FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER '{delimiter}', ENCODING 'UTF8')"
            ) as copy:
                copy.write(payload)
            cursor.execute(f"SELECT count(*) FROM {raw}")
            (count,) = cursor.fetchone()
            if count == 0:
                raise _Decline("empty")
            select = _typed_select(
                positions,
                decimal_comma=vendor.csv_decimal_comma,
                energy_unit=vendor.csv_energy_unit,
                zone=vendor.csv_time_zone,
            )
            # the timestamp text is checked before PostgreSQL parses it ('yesterday' is valid SQL)
            ts = f"btrim(r.c{positions['read_at']})"
            cursor.execute(
                f"SELECT count(*) FROM {raw} r WHERE {ts} !~ '{TIMESTAMP_RE}' OR {ts} IS NULL"
            )
            if cursor.fetchone()[0]:
                raise _Decline("timestamps")
            cursor.execute(
                f"CREATE UNLOGGED TABLE {typed} AS SELECT {select} FROM {raw} r ORDER BY r.row_no"
            )
            cursor.execute(_problems_sql(positions, raw, typed))
            if cursor.fetchone()[0]:
                raise _Decline("values")
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {typed} GROUP BY serial, read_at HAVING count(*) > 1)"
            )
            if cursor.fetchone()[0]:
                raise _Decline("duplicates")
            cursor.execute(f"CREATE INDEX ON {typed} USING brin (row_no)")
            cursor.execute(
                f"SELECT DISTINCT date_trunc('month', read_at AT TIME ZONE 'UTC') FROM {typed}"
            )
            months = {(m.year, m.month) for (m,) in cursor.fetchall()}
    except (_Decline, DatabaseError, psycopg.Error) as exc:
        _drop(raw, typed)
        return _fallback(
            batch, now=now, chunk_rows=chunk_rows, max_chunks=max_chunks, reason=str(exc)[:200]
        )
    IngestBatch.objects.filter(pk=batch.pk).update(row_count=count)
    store.partitions_ensure(months=months)
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
            with connection.cursor() as cursor:
                result = store.stage_to_readings(
                    cursor,
                    stage=typed,
                    batch_id=batch.pk,
                    vendor_id=batch.vendor_id,
                    received_at=batch.received_at,
                    where=f"s.row_no >= {int(first)} AND s.row_no < {int(end)}",
                )
            batches.batch_add_result(locked, result, progress=end)
            done += 1
    _drop(raw, typed)
    return batches.batch_finish(batch_id=batch.pk, now=now)


class _Decline(Exception):
    pass


def _drop(*tables: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {', '.join(tables)}")
