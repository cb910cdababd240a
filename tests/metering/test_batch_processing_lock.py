"""One process at a time works on a batch: a second processor leaves it alone.

Before the lock, two processors of one file (the Celery task and a direct call, or a
message delivered twice) dropped each other's stage tables and one failed with
``relation "metering_stage_typed_<id>" does not exist``.
"""

import datetime as dt
import threading

import psycopg
import pytest
from django.core.files.base import ContentFile
from django.db import connection, connections
from django.utils import timezone

from metering.ingest.batches import _LOCK_NAMESPACE, readings_batch_process
from metering.models import IngestBatch, Reading
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _file_batch(meters: int = 20, hours: int = 300) -> tuple[IngestBatch, int]:
    vendor = MeterVendorFactory(csv_columns={}, csv_separator=",", csv_decimal_comma=False)
    start = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    lines = ["meter,read_at,energy,volume_m3"]
    for meter in [HeatMeterFactory(vendor=vendor) for _ in range(meters)]:
        lines += [
            f"{meter.serial},{(start + dt.timedelta(hours=h)).isoformat()},{1000 + h * 2.5},{h / 10}"
            for h in range(hours)
        ]
    batch = IngestBatch.objects.create(vendor=vendor, source="file", received_at=timezone.now())
    batch.file.save("same.csv", ContentFile(("\n".join(lines) + "\n").encode()))
    return batch, meters * hours


def _dsn() -> str:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})


def test_two_processors_at_once_store_the_file_once_without_error():
    batch, rows = _file_batch()
    ready = threading.Barrier(2)
    outcomes: list[object] = []

    def process():
        try:
            ready.wait()
            outcomes.append(
                readings_batch_process(batch_id=batch.pk, now=timezone.now(), chunk_rows=500)
            )
        except Exception as exc:  # the assertion below shows it
            outcomes.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=process) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert [type(o) for o in outcomes] == [IngestBatch, IngestBatch], outcomes
    batch.refresh_from_db()
    assert (batch.state, batch.accepted, batch.duplicate, batch.progress) == ("done", rows, 0, rows)
    assert Reading.objects.filter(batch_id=batch.pk).count() == rows


def test_a_batch_another_process_holds_is_left_alone_then_processed_once_it_is_free():
    batch, rows = _file_batch(meters=2, hours=50)
    key = [_LOCK_NAMESPACE, batch.pk]
    with psycopg.connect(_dsn(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", key)
        left = readings_batch_process(batch_id=batch.pk, now=timezone.now())
        assert (left.state, left.progress, left.attempts) == ("received", 0, 0)
        assert Reading.objects.filter(batch_id=batch.pk).count() == 0
        # released here, not by closing: the server ends a closed session a moment later
        other.execute("SELECT pg_advisory_unlock(%s, %s)", key)
    done = readings_batch_process(batch_id=batch.pk, now=timezone.now())
    assert (done.state, done.accepted) == ("done", rows)
    assert Reading.objects.filter(batch_id=batch.pk).count() == rows
