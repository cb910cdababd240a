"""A batch that keeps failing on a database error is given up after a few attempts.

Processing interrupted by the database (``OperationalError``: a lost connection, a
statement timeout, a lock timeout) leaves the batch for beat's sweep, which queued it
again every 10 minutes, forever, however often it failed the same way.  Each such
failure is now counted on the batch with its error (``failures``, ``last_error``, seen
by staff in the admin); at ``INGEST_MAX_FAILURES`` (default 5) the batch ends
``failed`` with a ``processing_failed`` error the vendor's status call shows, and the
sweep leaves it.  A worker killed half-way records no failure: the resume after its
last committed chunk is unchanged.
"""

import datetime as dt

import orjson
import pytest
from django.db import OperationalError
from django.test import TestCase
from django.utils import timezone
from rest_framework.test import APIClient

from metering.ingest import batches
from metering.ingest.batches import batches_stalled, readings_batch_process, readings_batch_submit
from metering.models import IngestBatch, Reading
from metering.vendors import vendor_key_create
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db


def _batch(vendor, meter, received_at):
    body = orjson.dumps(
        [
            {
                "meter": meter.serial,
                "read_at": "2026-11-01T00:00:00+01:00",
                "energy": 1,
                "energy_unit": "kWh",
                "volume_m3": 1,
            }
        ]
    )
    batch, _ = readings_batch_submit(vendor=vendor, body=body, received_at=received_at)
    return batch


def test_a_batch_failing_on_the_database_is_given_up_after_the_limit(monkeypatch, settings):
    settings.INGEST_MAX_FAILURES = 3
    vendor = MeterVendorFactory()
    meter = HeatMeterFactory(vendor=vendor)
    received = timezone.now() - dt.timedelta(hours=1)
    batch = _batch(vendor, meter, received)

    def broken(**kwargs):
        raise OperationalError("canceling statement due to lock timeout")

    monkeypatch.setattr(batches, "_process", broken)
    for attempt in range(1, 3):
        with pytest.raises(OperationalError):
            readings_batch_process(batch_id=batch.pk, now=timezone.now())
        batch.refresh_from_db()
        assert (batch.state, batch.failures) == ("received", attempt)
        assert "lock timeout" in batch.last_error
        assert batches_stalled(now=timezone.now()) == [batch.pk]  # the sweep retries it

    given_up = readings_batch_process(batch_id=batch.pk, now=timezone.now())

    batch.refresh_from_db()
    assert given_up.state == batch.state == "failed"
    assert batch.failures == 3
    assert batch.last_error == "OperationalError: canceling statement due to lock timeout"
    assert [e["code"] for e in batch.errors] == ["processing_failed"]
    assert "3 times" in batch.errors[0]["message"]
    assert batch.finished_at is not None
    assert batches_stalled(now=timezone.now()) == []  # no longer queued again

    _, key = vendor_key_create(vendor=vendor)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    status = api.get(f"/api/v1/readings/batches/{batch.pk}/").json()
    assert status["state"] == "failed"
    assert [e["code"] for e in status["errors"]] == ["processing_failed"]


def test_a_batch_at_the_limit_is_not_processed_again(monkeypatch, settings):
    """The limit reached while the failure could not be recorded as final (the database
    gone): the next run marks it failed instead of trying again."""
    settings.INGEST_MAX_FAILURES = 2
    vendor = MeterVendorFactory()
    meter = HeatMeterFactory(vendor=vendor)
    batch = _batch(vendor, meter, timezone.now())
    IngestBatch.objects.filter(pk=batch.pk).update(failures=2, last_error="OperationalError: x")

    done = readings_batch_process(batch_id=batch.pk, now=timezone.now())

    assert done.state == "failed"
    assert Reading.objects.count() == 0


def test_a_failure_then_success_is_done(monkeypatch):
    vendor = MeterVendorFactory()
    meter = HeatMeterFactory(vendor=vendor)
    batch = _batch(vendor, meter, timezone.now())
    real = batches._process
    calls = []

    def flaky(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr(batches, "_process", flaky)
    with pytest.raises(OperationalError):
        readings_batch_process(batch_id=batch.pk, now=timezone.now())
    done = readings_batch_process(batch_id=batch.pk, now=timezone.now())
    assert (done.state, done.accepted, done.failures) == ("done", 1, 1)


def test_resuming_after_killed_workers_is_not_a_failure(settings):
    settings.INGEST_MAX_FAILURES = 1
    vendor = MeterVendorFactory(csv_columns={}, csv_separator=",", csv_decimal_comma=False)
    meter = HeatMeterFactory(vendor=vendor)
    from django.core.files.base import ContentFile

    text = "meter,read_at,energy,volume_m3\n" + "".join(
        f"{meter.serial},2026-11-01T{h:02d}:00:00Z,{h},1\n" for h in range(10)
    )
    batch = IngestBatch.objects.create(vendor=vendor, source="file", received_at=timezone.now())
    batch.file.save("b.csv", ContentFile(text.encode()))
    for _ in range(4):  # four workers each died after one chunk
        readings_batch_process(batch_id=batch.pk, now=timezone.now(), chunk_rows=2, max_chunks=1)
    with TestCase.captureOnCommitCallbacks(execute=True):
        done = readings_batch_process(batch_id=batch.pk, now=timezone.now(), chunk_rows=2)
    assert (done.state, done.accepted, done.failures) == ("done", 10, 0)


def test_the_vendor_is_told_what_to_do_not_the_database_errors_class(monkeypatch, settings, caplog):
    """The given-up batch's status said "(last: OperationalError; …)": a class name of
    the utility's software that tells the vendor nothing.  The vendor's item says whose
    side failed and what to do; the error itself stays in the staff log and on the batch
    (``last_error``), never in the API's answer."""
    settings.INGEST_MAX_FAILURES = 2
    vendor = MeterVendorFactory()
    meter = HeatMeterFactory(vendor=vendor)
    batch = _batch(vendor, meter, timezone.now() - dt.timedelta(hours=1))
    secret = (
        'connection to server at "db.internal" (10.1.2.3), port 5432 failed: FATAL: '
        'password authentication failed for user "heatutility"'
    )

    def broken(**kwargs):
        raise OperationalError(secret)

    monkeypatch.setattr(batches, "_process", broken)
    with pytest.raises(OperationalError):
        readings_batch_process(batch_id=batch.pk, now=timezone.now())
    with caplog.at_level("ERROR", logger="metering.ingest.batches"):
        readings_batch_process(batch_id=batch.pk, now=timezone.now())

    _, key = vendor_key_create(vendor=vendor)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    response = api.get(f"/api/v1/readings/batches/{batch.pk}/")

    assert response.status_code == 200
    status = response.json()
    assert (status["state"], status["error_count"], status["accepted"]) == ("failed", 1, 0)
    assert status["errors"] == [
        {
            "code": "processing_failed",
            "message": (
                "The utility's database was unavailable each of the 2 times this batch "
                "was processed (not a fault in your data; if it happens again, tell the "
                f"utility the reference batch {batch.pk}), so it was given up; rows "
                "stored: none. Deliver the readings again, with a new Idempotency-Key: "
                "readings stored already count as duplicates."
            ),
        }
    ]
    body = response.content.decode()
    for internal in ("OperationalError", "10.1.2.3", "db.internal", "password", "FATAL"):
        assert internal not in body
    # staff keep the error: in the log and on the batch
    given_up = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
    assert given_up == [
        f"batch {batch.pk}: given up after 2 database failures (last: OperationalError: {secret})"
    ]
    batch.refresh_from_db()
    assert batch.last_error == f"OperationalError: {secret}"


@pytest.mark.parametrize(
    "error",
    [OperationalError("canceling statement due to statement timeout"), ValueError("a bug")],
    ids=["database", "bug"],
)
def test_every_attempt_counts_also_one_that_fails(monkeypatch, error):
    """On PostgreSQL a JSON batch's claim committed with its rows, so a run that failed
    rolled its ``attempts`` back: a batch failed twice, then done, showed 1 attempt."""
    vendor = MeterVendorFactory()
    meter = HeatMeterFactory(vendor=vendor)
    batch = _batch(vendor, meter, timezone.now())
    real_staged, real_rows = batches.store_staged_postgres, batches.store_rows
    calls = []

    def failing_twice(real):
        def store(**kwargs):
            calls.append(1)
            if len(calls) <= 2:
                raise error
            return real(**kwargs)

        return store

    monkeypatch.setattr(batches, "store_staged_postgres", failing_twice(real_staged))
    monkeypatch.setattr(batches, "store_rows", failing_twice(real_rows))
    if isinstance(error, OperationalError):
        for attempt in (1, 2):
            with pytest.raises(OperationalError):
                readings_batch_process(batch_id=batch.pk, now=timezone.now())
            batch.refresh_from_db()
            assert (batch.attempts, batch.failures, batch.accepted) == (attempt, attempt, 0)
        done = readings_batch_process(batch_id=batch.pk, now=timezone.now())
        assert (done.state, done.attempts, done.failures, done.accepted) == ("done", 3, 2, 1)
    else:
        failed = readings_batch_process(batch_id=batch.pk, now=timezone.now())
        assert (failed.state, failed.attempts, failed.accepted) == ("failed", 1, 0)
    assert Reading.objects.filter(batch_id=batch.pk).count() == (
        1 if isinstance(error, OperationalError) else 0
    )
