"""Two batches (JSON, or files) delivering the same readings in opposite order, processed
at once.

Each inserts its rows in its own order, and PostgreSQL makes an insert wait for the other
transaction's uncommitted row of the same key: batch A holds meter 1 and waits for
meter 2, batch B holds meter 2 and waits for meter 1.  PostgreSQL ends the cycle by
aborting one of them (deadlock detected).  Before the fix that batch's processing raised
and it stayed 'received' until the beat sweep queued it again, 15 to 25 minutes later
(``STALLED_AFTER`` after it was received, on the 10-minute beat); now it is processed
again at once, finding the other's rows stored: duplicates, stored once.
"""

import threading

import orjson
import pytest
from django.db import connection, connections
from django.utils import timezone

from metering.ingest import batches
from metering.models import IngestBatch, Reading
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# every row inserted waits a moment first (before its key goes into the index), so
# both batches hold their first row before either inserts its second
SLOW_INSERTS = """
CREATE FUNCTION test_slow_reading_insert() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_sleep(0.4); RETURN NEW; END $$;
CREATE TRIGGER test_slow_reading_insert BEFORE INSERT ON metering_reading
FOR EACH ROW EXECUTE FUNCTION test_slow_reading_insert();
"""
NORMAL_INSERTS = """
DROP TRIGGER IF EXISTS test_slow_reading_insert ON metering_reading;
DROP FUNCTION IF EXISTS test_slow_reading_insert();
"""


def _row(serial: str) -> dict:
    return {
        "meter": serial,
        "read_at": "2026-11-01T00:00:00+01:00",
        "energy": "1000.5",
        "energy_unit": "kWh",
        "volume_m3": "12.5",
    }


def _submit(vendor, serials: list[str], source: str) -> int:
    if source == "api":
        body = orjson.dumps([_row(serial) for serial in serials])
        batch, _ = batches.readings_batch_submit(
            vendor=vendor, body=body, received_at=timezone.now()
        )
    else:
        # decimal commas: the file's rows go in in the file's order (no join on meters)
        lines = ["meter;read_at;energy;volume_m3"]
        lines += [f"{serial};2026-11-01T00:00:00+01:00;1000,5;12,5" for serial in serials]
        batch, _ = batches.readings_file_submit(
            vendor=vendor,
            content=("\n".join(lines) + "\n").encode(),
            file_name="export.csv",
            received_at=timezone.now(),
        )
    return batch.pk


@pytest.mark.parametrize("source", ["api", "file"])
def test_two_batches_with_the_same_readings_in_opposite_order_are_both_processed(
    monkeypatch, source
):
    monkeypatch.setattr(batches, "_enqueue", lambda batch: None)  # processed below, at once
    vendor = MeterVendorFactory(csv_separator=";", csv_decimal_comma=True)
    one, two = HeatMeterFactory(vendor=vendor), HeatMeterFactory(vendor=vendor)
    ids = [
        _submit(vendor, [one.serial, two.serial], source),
        _submit(vendor, [two.serial, one.serial], source),
    ]
    # the readings' partition exists before the trigger slows its inserts
    from metering.ingest.store import partitions_ensure

    partitions_ensure(months={(2026, 10)})
    with connection.cursor() as cursor:
        cursor.execute(SLOW_INSERTS)
    start = threading.Barrier(2)
    outcomes: dict[int, object] = {}

    def process(batch_id: int) -> None:
        try:
            start.wait()
            outcomes[batch_id] = batches.readings_batch_process(
                batch_id=batch_id, now=timezone.now()
            )
        except Exception as exc:  # the assertion below shows it
            outcomes[batch_id] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=process, args=(batch_id,)) for batch_id in ids]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(NORMAL_INSERTS)

    assert not [o for o in outcomes.values() if isinstance(o, Exception)], outcomes
    done = IngestBatch.objects.filter(pk__in=ids).order_by("pk")
    assert [b.state for b in done] == ["done", "done"]
    # two readings, stored once: one batch accepted both, the other found them stored
    assert sorted((b.accepted, b.duplicate, b.conflicting, b.rejected) for b in done) == [
        (0, 2, 0, 0),
        (2, 0, 0, 0),
    ]
    assert Reading.objects.filter(meter__in=[one, two]).count() == 2
