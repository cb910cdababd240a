"""A real Celery worker on Redis is killed half-way through a file: nothing lost or doubled."""

import datetime as dt
import time

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from metering.models import IngestBatch, Reading
from metering.tasks import ingest_batch
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def small_chunks(monkeypatch):
    # the worker process reads this at import: many small commits, so a kill lands mid-file
    monkeypatch.setenv("HEATUTILITY_INGEST_CHUNK_ROWS", "2000")


def _wait(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_killed_worker_batch_reruns_with_nothing_lost_or_doubled(small_chunks, celery_worker):
    vendor = MeterVendorFactory(csv_decimal_comma=False, csv_separator=",")
    meters = [HeatMeterFactory(vendor=vendor) for _ in range(50)]
    start = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    lines = ["meter,read_at,energy,volume_m3"]
    for meter in meters:
        for hour in range(2000):  # 100,000 rows over Sept–Nov: three partitions
            lines.append(
                f"{meter.serial},{(start + dt.timedelta(hours=hour)).isoformat()},{1000 + hour * 3.5},{hour / 10}"
            )
    batch = IngestBatch.objects.create(vendor=vendor, source="file", received_at=timezone.now())
    batch.file.save("big.csv", ContentFile(("\n".join(lines) + "\n").encode()))
    total = len(lines) - 1

    ingest_batch.delay(batch.pk)
    assert _wait(lambda: 0 < IngestBatch.objects.get(pk=batch.pk).progress < total * 0.6), (
        celery_worker.log()
    )
    celery_worker.kill()

    half = IngestBatch.objects.get(pk=batch.pk)
    assert half.state == "processing"
    assert 0 < half.progress < total
    assert Reading.objects.count() == half.progress  # exactly the committed chunks

    celery_worker.start()
    ingest_batch.delay(batch.pk)  # run it again (a redelivered message does the same)
    assert _wait(lambda: IngestBatch.objects.get(pk=batch.pk).state == "done"), celery_worker.log()

    done = IngestBatch.objects.get(pk=batch.pk)
    assert Reading.objects.count() == total
    assert (done.accepted, done.duplicate, done.conflicting, done.rejected) == (total, 0, 0, 0)
    assert done.attempts == 2


@pytest.mark.django_db
def test_a_batch_whose_task_was_lost_is_processed_by_the_beat_sweep():
    """The broker was down when the batch was queued: beat queues it again, once it has
    waited long enough; a batch just received is left to its own task."""
    import orjson
    from django.test import TestCase

    from metering.ingest.batches import readings_batch_submit
    from metering.tasks import ingest_batches_redispatch
    from tests.metering.factories import MeterInstallationFactory

    vendor = MeterVendorFactory()
    inst = MeterInstallationFactory(meter__vendor=vendor)
    now = timezone.now()

    def submit(hour, received_at):
        body = orjson.dumps(
            [
                {
                    "meter": inst.meter.serial,
                    "read_at": f"2026-11-01T{hour:02d}:00:00+01:00",
                    "energy": str(100 + hour),
                    "energy_unit": "kWh",
                    "volume_m3": "1",
                }
            ]
        )
        with TestCase.captureOnCommitCallbacks(execute=False):  # the queueing is lost
            batch, _ = readings_batch_submit(vendor=vendor, body=body, received_at=received_at)
        return batch

    lost = submit(1, now - dt.timedelta(minutes=20))
    fresh = submit(2, now - dt.timedelta(minutes=2))

    assert ingest_batches_redispatch.delay().get() == 1

    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert (lost.state, fresh.state) == (IngestBatch.State.DONE, IngestBatch.State.RECEIVED)
    assert Reading.objects.count() == 1
    assert ingest_batches_redispatch.delay().get() == 0  # done: nothing to queue again
