"""Batches: accept a delivery, process it on Celery, and be safe to run again.

* ``readings_batch_submit`` validates a JSON body at once (shape errors → 400/422 with
  row, field and code; nothing stored) and stores the normalised rows on a new
  :class:`IngestBatch`; an ``Idempotency-Key`` seen before returns the first batch.
* ``readings_file_submit`` stores a vendor CSV file after checking its header.
* ``readings_batch_process`` (the Celery task's one call) stores the rows chunk by chunk.
  Each chunk, its counters and ``progress`` commit together, under a lock on the batch
  row; a rerun after a killed worker resumes after the last committed chunk, and
  ``ON CONFLICT`` plus the batch id on every reading make a replayed chunk count as
  accepted, never twice.  One process at a time works on a batch (a session lock on
  PostgreSQL): a second call meanwhile, such as a task delivered twice, leaves it alone.
* A batch whose vendor staff deactivated before it was processed is ``held``, nothing
  stored (the API refuses the vendor's new deliveries the same way); it is released
  when staff set the vendor active again (``metering.vendors.vendor_save``), or with the
  batch admin's action (``readings_batches_release``).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import hashlib
import io
import logging
import os

import orjson
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.db.models import QuerySet
from psycopg import errors as psycopg_errors

from heatutility.errors import DomainError, ErrorItem
from metering.ingest import rows as row_rules
from metering.ingest.store import (
    months_of,
    partitions_ensure,
    readings_stored_differing,
    stage_batch_payload,
    store_rows,
    store_staged_postgres,
    tsv,
)
from metering.models import IngestBatch, MeterVendor
from metering.retention import readings_horizons

MAX_JSON_ROWS = 10_000
# rows per committed chunk of a file (progress steps; what a killed worker may redo)
FILE_CHUNK_ROWS = int(os.environ.get("HEATUTILITY_INGEST_CHUNK_ROWS", "100000"))
MAX_STORED_ERRORS = row_rules.MAX_ERRORS

log = logging.getLogger(__name__)


class InvalidDelivery(DomainError):
    """The delivery is malformed; nothing was stored."""

    status_code = 422
    code = "invalid_delivery"


class MalformedBody(InvalidDelivery):
    status_code = 400
    code = "malformed"


class IdempotencyKeyReused(DomainError):
    status_code = 422
    code = "idempotency_key_reused"


def _errors_as_dicts(items) -> list[dict]:
    return [item.as_dict() for item in items]


def readings_latest(*, received_at: dt.datetime) -> dt.datetime:
    """The latest reading time a delivery received at ``received_at`` may carry: later
    ones are refused ``future_timestamp`` (``settings.READINGS_FUTURE_TOLERANCE_HOURS``
    covers clocks a little ahead and time-zone slips)."""
    hours = getattr(settings, "READINGS_FUTURE_TOLERANCE_HOURS", 24)
    return received_at + dt.timedelta(hours=hours)


def _invalid(message: str, errors: row_rules.RowErrors, cls=InvalidDelivery) -> DomainError:
    more = (
        f" ({errors.count} errors, first {len(errors.items)} listed)"
        if errors.count > len(errors.items)
        else ""
    )
    return cls(message + more, errors=errors.items)


def batch_answer(batch: IngestBatch) -> dict:
    return {
        "batch": batch.pk,
        "state": batch.state,
        "rows": batch.row_count,
        "status_url": f"/api/v1/readings/batches/{batch.pk}/",
    }


# IngestBatch.idempotency_key's length; a longer key is stored as its SHA-256
IDEMPOTENCY_KEY_STORED = 100


def _stored_key(idempotency_key: str) -> str:
    """The Idempotency-Key as stored: as sent, or (longer than the column) ``sha256:``
    and its digest, so keys that differ only after their first 100 characters stay two
    keys; refuses control characters (NUL is not storable as text)."""
    if row_rules.CONTROL_CHARACTERS.search(idempotency_key):
        raise MalformedBody(
            "The Idempotency-Key header contains control characters.",
            errors=[
                ErrorItem(
                    code="invalid",
                    field="Idempotency-Key",
                    message="Use printable characters only, e.g. your job id.",
                )
            ],
        )
    if len(idempotency_key) <= IDEMPOTENCY_KEY_STORED:
        return idempotency_key
    return "sha256:" + hashlib.sha256(idempotency_key.encode()).hexdigest()


def _replay(*, vendor: MeterVendor, idempotency_key: str, body_sha256: str) -> IngestBatch | None:
    """The batch this vendor delivered with ``idempotency_key`` (as stored: ``_stored_key``)
    before, if any; refuses a key used before for another body."""
    if not idempotency_key:
        return None
    batch = IngestBatch.objects.filter(vendor=vendor, idempotency_key=idempotency_key).first()
    if batch is None:
        return None
    if batch.body_sha256 and batch.body_sha256 != body_sha256:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request body.",
            errors=[
                ErrorItem(
                    code="idempotency_key_reused",
                    field="Idempotency-Key",
                    message="Use a new key for a new batch.",
                )
            ],
        )
    return batch


def readings_batch_submit(
    *, vendor: MeterVendor, body: bytes, idempotency_key: str = "", received_at: dt.datetime
) -> tuple[IngestBatch, bool]:
    """Validate a JSON batch and queue it; returns (batch, created)."""
    digest = hashlib.sha256(body).hexdigest()
    idempotency_key = _stored_key(idempotency_key)
    previous = _replay(vendor=vendor, idempotency_key=idempotency_key, body_sha256=digest)
    if previous is not None:
        return previous, False
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(
            f"The body is not valid JSON: {exc}",
            errors=[ErrorItem(code="malformed_json", message=str(exc))],
        ) from exc
    if isinstance(data, dict) and "readings" in data:
        data = data["readings"]
    horizon = readings_horizons(now=received_at, vendor_id=vendor.pk)
    latest = readings_latest(received_at=received_at)
    payload = row_rules.json_rows_fast(
        data, max_rows=MAX_JSON_ROWS, not_before=horizon, not_after=latest
    )
    if payload is None:  # something is off: the careful lane finds and itemises it
        normalised, errors = row_rules.validate_json_rows(
            data, max_rows=MAX_JSON_ROWS, not_before=horizon, not_after=latest
        )
        if errors:
            raise _invalid("The batch was refused; nothing was stored", errors)
        payload = tsv(normalised)
    row_count = payload.count("\n")

    def create() -> IngestBatch:
        batch = IngestBatch.objects.create(
            vendor=vendor,
            source=IngestBatch.Source.API,
            idempotency_key=idempotency_key,
            body_sha256=digest,
            payload=payload,
            row_count=row_count,
            received_at=received_at,
        )
        if idempotency_key:  # the first answer, replayed for a retry with this key
            batch.response = batch_answer(batch)
            batch.save(update_fields=["response"])
        _enqueue(batch)
        return batch

    return _create_once(create, vendor=vendor, idempotency_key=idempotency_key, digest=digest)


def _create_once(create, *, vendor: MeterVendor, idempotency_key: str, digest: str):
    """(``create()`` run in one transaction, True); or, when a concurrent retry with the
    same Idempotency-Key won the race (the key's unique constraint), (its batch, False):
    the answer a retry gets, not a 500."""
    try:
        with transaction.atomic():
            return create(), True
    except IntegrityError:
        previous = _replay(vendor=vendor, idempotency_key=idempotency_key, body_sha256=digest)
        if previous is None:
            raise
        return previous, False


def _sniff_header(raw: bytes, vendor: MeterVendor) -> None:
    errors = row_rules.RowErrors()
    first = raw.split(b"\n", 1)[0]
    try:
        text = first.decode(vendor.csv_encoding)
    except UnicodeDecodeError as exc:
        raise InvalidDelivery(
            f"The file is not {vendor.csv_encoding} text.",
            errors=[
                ErrorItem(code="encoding", message=f"Line 1: {exc.reason} at byte {exc.start}.")
            ],
        ) from exc
    # a byte-order mark is no part of the first name (processing strips it too): before
    # a quoted name it would keep the quotes in it
    text = text.lstrip("\ufeff").rstrip("\r")
    header = next(csv.reader([text], delimiter=vendor.csv_separator), [])
    if not [h for h in header if h.strip()]:
        errors.add(None, None, "empty", "The file is empty or has no header line.")
    else:
        row_rules.csv_positions(header=header, mapping=vendor.csv_columns or {}, errors=errors)
    if errors:
        raise _invalid("The file's header does not match the vendor's column mapping", errors)


def readings_file_submit(
    *,
    vendor: MeterVendor,
    content: bytes,
    file_name: str,
    received_at: dt.datetime,
    created_by=None,
    idempotency_key: str = "",
) -> tuple[IngestBatch, bool]:
    """Store a vendor CSV file as a batch and queue it (its header is checked at once)."""
    digest = hashlib.sha256(content).hexdigest()
    idempotency_key = _stored_key(idempotency_key)
    previous = _replay(vendor=vendor, idempotency_key=idempotency_key, body_sha256=digest)
    if previous is not None:
        return previous, False
    _sniff_header(content, vendor)

    def create() -> IngestBatch:
        batch = IngestBatch.objects.create(
            vendor=vendor,
            source=IngestBatch.Source.FILE,
            idempotency_key=idempotency_key,
            body_sha256=digest,
            file_name=row_rules.CONTROL_CHARACTERS.sub("", file_name)[:255],
            received_at=received_at,
            created_by=created_by,
        )
        batch.file.save(f"batch-{batch.pk}.csv", ContentFile(content), save=False)
        batch.response = batch_answer(batch)
        batch.save(update_fields=["file", "response"])
        _enqueue(batch)
        return batch

    return _create_once(create, vendor=vendor, idempotency_key=idempotency_key, digest=digest)


def _enqueue(batch: IngestBatch) -> None:
    from metering.tasks import ingest_batch

    transaction.on_commit(lambda: ingest_batch.delay(batch.pk))


# --- processing --------------------------------------------------------------------------


def _file_rows(batch: IngestBatch) -> tuple[list[tuple], row_rules.RowErrors]:
    vendor = batch.vendor
    with batch.file.open("rb") as handle:
        raw = handle.read()
    errors = row_rules.RowErrors()
    try:
        text = raw.decode(vendor.csv_encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        errors.add(
            None, None, "encoding", f"Line {line}: not {vendor.csv_encoding} text ({exc.reason})."
        )
        return [], errors
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=vendor.csv_separator)
    try:
        header = next(reader)
    except StopIteration:
        errors.add(None, None, "empty", "The file is empty.")
        return [], errors
    try:
        return row_rules.validate_csv_rows(
            reader,
            header=header,
            mapping=vendor.csv_columns or {},
            time_zone=vendor.csv_time_zone,
            decimal_comma=vendor.csv_decimal_comma,
            energy_unit=vendor.csv_energy_unit,
            not_before=readings_horizons(now=batch.received_at, vendor_id=vendor.pk),
            not_after=readings_latest(received_at=batch.received_at),
            stored_differs=functools.partial(
                readings_stored_differing, vendor_id=vendor.pk, batch_id=batch.pk
            ),
        )
    except csv.Error as exc:
        errors.add(None, None, "malformed_csv", f"The CSV cannot be read: {exc}.")
        return [], errors


# A batch not finished this long after it was received lost its task: the broker was
# down when it was queued, or the message went with a worker.  Far longer than a large
# file takes (720,000 readings: seconds).
STALLED_AFTER = dt.timedelta(minutes=15)


def batches_stalled(*, now: dt.datetime, after: dt.timedelta = STALLED_AFTER) -> list[int]:
    """Batches received more than ``after`` ago and still not done or failed.

    Processing one again is safe: a batch another worker is processing is skipped (its
    lock), one that was interrupted resumes after its last committed chunk, and a
    finished one is left as it is.
    """
    return list(
        IngestBatch.objects.filter(
            state__in=[IngestBatch.State.RECEIVED, IngestBatch.State.PROCESSING],
            received_at__lt=now - after,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )


# states a processing run leaves as they are: finished, or held for staff
SETTLED = (IngestBatch.State.DONE, IngestBatch.State.FAILED, IngestBatch.State.HELD)


def _claim(batch_id: int, now: dt.datetime) -> IngestBatch | None:
    with transaction.atomic():
        batch = (
            IngestBatch.objects.select_for_update(of=("self",))
            .select_related("vendor")
            .defer("payload")
            .get(pk=batch_id)
        )
        if batch.state in SETTLED:
            return None
        batch.state = IngestBatch.State.PROCESSING
        batch.attempts += 1
        batch.started_at = batch.started_at or now
        batch.save(update_fields=["state", "attempts", "started_at"])
    return batch


def _fail(batch: IngestBatch, errors: row_rules.RowErrors, now: dt.datetime) -> None:
    batch.state = IngestBatch.State.FAILED
    batch.errors = _errors_as_dicts(errors.items)
    batch.error_count = errors.count
    batch.finished_at = now
    batch.save(update_fields=["state", "errors", "error_count", "finished_at"])


def readings_batch_process(
    *,
    batch_id: int,
    now: dt.datetime,
    chunk_rows: int = FILE_CHUNK_ROWS,
    max_chunks: int | None = None,
) -> IngestBatch:
    """Store a batch's rows; safe to call again after a crash at any point.

    ``max_chunks`` stops after that many chunks (the batch stays ``processing``; a later
    call resumes), which is also what a killed worker leaves behind.  While another
    process is working on the batch, returns it as it stands without touching it.
    """
    with _processing_lock(batch_id) as mine:
        if not mine:
            return IngestBatch.objects.get(pk=batch_id)
        given_up = _give_up_if_failing(batch_id=batch_id, now=now)
        if given_up is not None:
            return given_up
        held = _hold_if_vendor_inactive(batch_id=batch_id)
        if held is not None:
            return held
        try:
            return _process_deadlock_retried(
                batch_id=batch_id, now=now, chunk_rows=chunk_rows, max_chunks=max_chunks
            )
        except (OperationalError, InterfaceError) as exc:
            # the database went away (a restart, a lost connection) or refused a statement
            # (a timeout): the batch stays as it is and beat queues it again (ingest_
            # batches_redispatch), when it resumes after its last committed chunk; the
            # failure is counted, and at the limit the batch is failed, not retried forever
            log.exception(
                "batch %s: interrupted by the database; left for the next sweep", batch_id
            )
            given_up = _failure_record(batch_id=batch_id, exc=exc, now=now)
            if given_up is not None:
                return given_up
            raise
        except Exception as exc:
            # A bug, not the sender's data (that is refused, itemised, before anything is
            # stored).  The batch must not wait in 'received' or 'processing' for a retry
            # that never comes: it ends 'failed' with the reason, and the sender can
            # deliver again (rows stored so far then count as duplicates).
            log.exception("batch %s: processing failed", batch_id)
            return _fail_unexpected(batch_id=batch_id, exc=exc, now=now)


# A batch whose rows go in while another batch writes the same readings in another order
# can deadlock with it: each waits for the other's uncommitted rows.  PostgreSQL aborts
# one; its transaction rolled back, so it is simply run again (it then finds the other's
# rows stored: duplicates), not left for the sweep a quarter of an hour later.
DEADLOCK_RETRIES = 3


def _process_deadlock_retried(
    *, batch_id: int, now: dt.datetime, chunk_rows: int, max_chunks: int | None
) -> IngestBatch:
    for attempt in range(1, DEADLOCK_RETRIES + 1):
        try:
            return _process(
                batch_id=batch_id, now=now, chunk_rows=chunk_rows, max_chunks=max_chunks
            )
        except OperationalError as exc:
            if attempt == DEADLOCK_RETRIES or not isinstance(
                exc.__cause__, psycopg_errors.DeadlockDetected
            ):
                raise
            log.warning("batch %s: deadlock with another delivery; processing again", batch_id)
    raise AssertionError("unreachable")  # pragma: no cover


def _fail_unexpected(*, batch_id: int, exc: Exception, now: dt.datetime) -> IngestBatch:
    """Mark a batch whose processing raised as failed; chunks committed before stay."""
    if (
        not connection.in_atomic_block
        and connection.connection is not None
        and not connection.is_usable()
    ):
        connection.close()  # a lost connection: the next query opens a new one
    try:
        from metering.ingest import fastcsv

        fastcsv.drop_stages(batch_id)
        with transaction.atomic():
            batch = IngestBatch.objects.select_for_update().defer("payload").get(pk=batch_id)
            if batch.state in (IngestBatch.State.DONE, IngestBatch.State.FAILED):
                return batch
            return _mark_failed(
                batch, f"Processing stopped on an internal error (reference: batch {batch.pk})", now
            )
    except DatabaseError:
        # the database itself is gone: the batch stays as it is for a later run
        log.exception("batch %s: could not be marked failed", batch_id)
        raise exc from None


def _max_failures() -> int:
    return getattr(settings, "INGEST_MAX_FAILURES", 5)


def _failure_record(*, batch_id: int, exc: Exception, now: dt.datetime) -> IngestBatch | None:
    """Count a run interrupted by a database error on the batch, with the error; returns
    the batch if that was the last one allowed (it is failed), else None.  Best effort:
    with the database gone nothing is recorded (an outage is not the batch's failure)."""
    if (
        not connection.in_atomic_block
        and connection.connection is not None
        and not connection.is_usable()
    ):
        connection.close()  # a lost connection: the next query opens a new one
    error = f"{type(exc).__name__}: {exc}".strip()[:2000]
    try:
        with transaction.atomic():
            batch = IngestBatch.objects.select_for_update().defer("payload").get(pk=batch_id)
            if batch.state in (IngestBatch.State.DONE, IngestBatch.State.FAILED):
                return None
            batch.failures += 1
            batch.last_error = error
            batch.save(update_fields=["failures", "last_error"])
        return _give_up_if_failing(batch_id=batch_id, now=now)
    except DatabaseError:
        log.exception("batch %s: its failure could not be recorded", batch_id)
        return None


def _mark_failed(batch: IngestBatch, why: str, now: dt.datetime) -> IngestBatch:
    """Fail ``batch`` (locked by the caller) with a ``processing_failed`` item saying why,
    how many rows were stored, and how to deliver the rest."""
    stored = f"{batch.progress} of {batch.row_count}" if batch.progress else "none"
    item = ErrorItem(
        code="processing_failed",
        message=(
            f"{why}; rows stored: {stored}. Deliver the readings again, with a new "
            "Idempotency-Key: readings stored already count as duplicates."
        ),
    )
    batch.state = IngestBatch.State.FAILED
    batch.errors = [*batch.errors, item.as_dict()]
    batch.error_count += 1
    batch.started_at = batch.started_at or now
    batch.finished_at = now
    batch.save(update_fields=["state", "errors", "error_count", "started_at", "finished_at"])
    return batch


def _give_up_if_failing(*, batch_id: int, now: dt.datetime) -> IngestBatch | None:
    """Fail the batch if ``INGEST_MAX_FAILURES`` runs ended on a database error; returns
    it then (else None).  A worker killed half-way records no failure, so resuming after
    the last committed chunk is never given up."""
    limit = _max_failures()
    if not IngestBatch.objects.filter(
        pk=batch_id,
        failures__gte=limit,
        state__in=[IngestBatch.State.RECEIVED, IngestBatch.State.PROCESSING],
    ).exists():
        return None
    from metering.ingest import fastcsv

    fastcsv.drop_stages(batch_id)
    with transaction.atomic():
        batch = IngestBatch.objects.select_for_update().defer("payload").get(pk=batch_id)
        if batch.state in (IngestBatch.State.DONE, IngestBatch.State.FAILED):
            return batch
        # the vendor is told whose side failed and what to do; the error itself (a class
        # name of our software, perhaps a host or user name) is for staff: the log below
        # and the batch's last_error
        batch = _mark_failed(
            batch,
            f"The utility's database was unavailable each of the {batch.failures} times "
            "this batch was processed (not a fault in your data; if it happens again, tell "
            f"the utility the reference batch {batch.pk}), so it was given up",
            now,
        )
    log.error(
        "batch %s: given up after %s database failures (last: %s)",
        batch_id,
        batch.failures,
        batch.last_error or "not recorded",
    )
    return batch


def _hold_if_vendor_inactive(*, batch_id: int) -> IngestBatch | None:
    """Hold the batch, nothing stored, if staff deactivated its vendor after it was
    received; returns it then (else None).  The API refuses an inactive vendor's key
    (``metering.vendors.vendor_for_key``), and a delivery queued before the deactivation
    is not applied behind staff's back either: it waits, with the reason, until staff
    release it (``readings_batches_release``).  A batch with chunks committed already
    was begun while the vendor was active and is finished: readings are append-only,
    and holding it would leave it half stored."""
    if not IngestBatch.objects.filter(
        pk=batch_id,
        vendor__is_active=False,
        progress=0,
        state__in=[IngestBatch.State.RECEIVED, IngestBatch.State.PROCESSING],
    ).exists():
        return None
    with transaction.atomic():
        # the vendor row too: a reactivation (``metering.vendors.vendor_save``) either
        # commits first and the batch is processed, or waits and releases it
        batch = (
            IngestBatch.objects.select_for_update(of=("self", "vendor"))
            .select_related("vendor")
            .defer("payload")
            .get(pk=batch_id)
        )
        if batch.vendor.is_active or batch.progress or batch.state in SETTLED:
            return None
        item = ErrorItem(
            code="vendor_inactive",
            message=(
                f"The vendor {batch.vendor.code} was deactivated before this batch was "
                "processed; nothing was stored. Staff process it once the vendor is active "
                "again."
            ),
        )
        batch.state = IngestBatch.State.HELD
        batch.errors, batch.error_count = [item.as_dict()], 1
        batch.save(update_fields=["state", "errors", "error_count"])
    log.warning("batch %s: held, vendor %s is inactive", batch_id, batch.vendor.code)
    return batch


def readings_batches_release(*, batches: QuerySet[IngestBatch]) -> int:
    """Queue again the held batches among ``batches`` whose vendor is active again (staff's
    decision); returns how many.  Those of a vendor still inactive stay held."""
    released = 0
    with transaction.atomic():
        for batch in (
            batches.filter(state=IngestBatch.State.HELD, vendor__is_active=True)
            .select_for_update(of=("self",))
            .defer("payload")
            .order_by("pk")
        ):
            batch.state = IngestBatch.State.RECEIVED
            batch.errors, batch.error_count = [], 0  # the hold's item: nothing else was stored
            batch.save(update_fields=["state", "errors", "error_count"])
            _enqueue(batch)
            released += 1
    return released


# pg_try_advisory_lock(namespace, key): both int4
_LOCK_NAMESPACE = 0x4D42  # "MB", metering batches
_INT4 = 2**31


@contextlib.contextmanager
def _processing_lock(batch_id: int):
    """Whether this process may work on the batch: one at a time (PostgreSQL).

    A session lock, not a transaction one: processing commits chunk by chunk, and the
    file path's stage tables are named after the batch, so two processors would drop
    each other's.  A killed worker's lock goes with its connection; a resumed run takes
    it again.  Other databases run tasks in process, one at a time: always True.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    key = [_LOCK_NAMESPACE, batch_id % _INT4]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
        mine = cursor.fetchone()[0]
    try:
        yield mine
    finally:
        if mine:
            # a lost session has lost the lock too
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)


def _process(
    *, batch_id: int, now: dt.datetime, chunk_rows: int, max_chunks: int | None
) -> IngestBatch:
    if connection.vendor == "postgresql":
        source = IngestBatch.objects.filter(pk=batch_id).values_list("source", flat=True).first()
        if source == IngestBatch.Source.API:
            return _process_api_postgres(batch_id=batch_id, now=now)
    batch = _claim(batch_id, now)
    if batch is None:
        return IngestBatch.objects.get(pk=batch_id)
    if batch.source == IngestBatch.Source.FILE:
        from metering.ingest import fastcsv

        if fastcsv.available():
            return fastcsv.process_file_batch(
                batch=batch, now=now, chunk_rows=chunk_rows, max_chunks=max_chunks
            )
    return process_rows_python(batch=batch, now=now, chunk_rows=chunk_rows, max_chunks=max_chunks)


def process_rows_python(
    *, batch: IngestBatch, now: dt.datetime, chunk_rows: int, max_chunks: int | None
) -> IngestBatch:
    """Validate (files) and store a claimed batch's rows in committed chunks."""
    if batch.source == IngestBatch.Source.API:
        rows = row_rules.tsv_rows(batch.payload)
    else:
        rows, errors = _file_rows(batch)
        if errors:
            _fail(batch, errors, now)
            return batch
        if batch.row_count != len(rows):
            IngestBatch.objects.filter(pk=batch.pk).update(row_count=len(rows))
    partitions_ensure(months=months_of(rows))
    done = 0
    for start in range(0, len(rows), chunk_rows):
        if max_chunks is not None and done >= max_chunks:
            return IngestBatch.objects.get(pk=batch.pk)
        end = min(start + chunk_rows, len(rows))
        with transaction.atomic():
            locked = IngestBatch.objects.select_for_update().get(pk=batch.pk)
            if locked.progress >= end:
                continue  # committed by an earlier attempt
            chunk = rows[max(start, locked.progress) : end]
            result = store_rows(
                rows=chunk,
                batch_id=batch.pk,
                vendor_id=batch.vendor_id,
                received_at=batch.received_at,
            )
            batch_add_result(locked, result, progress=end)
            done += 1
    return batch_finish(batch_id=batch.pk, now=now)


def _process_api_postgres(*, batch_id: int, now: dt.datetime) -> IngestBatch:
    """A JSON batch (≤ 10,000 rows) is one chunk: claim it (its attempt counted, committed
    first like a file's, so a run that fails counts too), stage its normalised payload,
    make its partitions, then one INSERT; rows, counts and the finished state commit in
    one transaction (a crash before that commit leaves the batch ``processing``, nothing
    stored, for the sweep)."""
    if _claim(batch_id, now) is None:
        return IngestBatch.objects.defer("payload").get(pk=batch_id)
    months = stage_batch_payload(batch_id=batch_id)
    partitions_ensure(months=months)
    with transaction.atomic():
        locked = IngestBatch.objects.select_for_update().defer("payload").get(pk=batch_id)
        if locked.state in SETTLED:
            return locked
        result = store_staged_postgres(
            rows=locked.row_count,
            batch_id=batch_id,
            vendor_id=locked.vendor_id,
            received_at=locked.received_at,
        )
        locked.state, locked.payload = IngestBatch.State.DONE, ""
        locked.finished_at = now
        batch_add_result(
            locked,
            result,
            progress=locked.row_count,
            extra_fields=["state", "payload", "finished_at"],
        )
    return locked


def batch_add_result(
    locked: IngestBatch, result, *, progress: int, extra_fields: list[str] | None = None
) -> None:
    """Add a chunk's counts to the (locked) batch, in the chunk's transaction."""
    locked.accepted += result.accepted
    locked.duplicate += result.duplicate
    locked.conflicting += result.conflicting
    locked.rejected += result.rejected
    locked.error_count += len(result.errors)
    room = MAX_STORED_ERRORS - len(locked.errors)
    if room > 0 and result.errors:
        locked.errors = [*locked.errors, *_errors_as_dicts(result.errors[:room])]
    locked.progress = progress
    locked.save(
        update_fields=[
            "accepted",
            "duplicate",
            "conflicting",
            "rejected",
            "error_count",
            "errors",
            "progress",
            *(extra_fields or []),
        ]
    )


def batch_finish(*, batch_id: int, now: dt.datetime) -> IngestBatch:
    with transaction.atomic():
        batch = IngestBatch.objects.select_for_update().get(pk=batch_id)
        if batch.state == IngestBatch.State.PROCESSING:
            batch.state = IngestBatch.State.DONE
            batch.finished_at = now
            batch.payload = ""  # stored in readings now; the batch keeps the counts
            batch.save(update_fields=["state", "finished_at", "payload"])
    return batch
