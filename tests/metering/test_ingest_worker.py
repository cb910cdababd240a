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
