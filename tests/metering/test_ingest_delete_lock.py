"""A delivery being stored and a meter being deleted at the same instant.

Readings have no database foreign key to their meter (docs/readings-storage.md): the
delete (``metering.meters.meter_delete``) locks the meter ``FOR UPDATE`` and refuses a
meter with readings.  Before, the ingest resolved meters without a lock, so a delete in
the same instant as a delivery of the meter's first readings saw none (they were not
committed yet), went ahead, and left the readings orphaned.  Now every store path locks
the meters of the rows it is about to store ``FOR KEY SHARE`` in the transaction that
stores them: a delete that comes second waits and then finds the readings (409); a
delete that comes first wins, and the delivery refuses that meter's rows as an unknown
meter's, itemised, while the other meters' rows go in.

Two real connections (threads); each interleaving is forced by pausing one side inside
its transaction and waiting until PostgreSQL shows the other waiting for a row lock.
"""

import datetime as dt

import orjson
import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from metering import meters
from metering.ingest import batches, fastcsv, store
from metering.ingest.batches import readings_batch_process, readings_batch_submit
from metering.meters import UnableToChangeMeter, UnableToDeleteMeter, meter_delete, meter_update
from metering.models import HeatMeter, IngestBatch, IngestBatchMeter, Reading
from tests.concurrency import Pause, finish, in_thread, waits_for_a_lock
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
START = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
HOURS = 10
PATHS = ("api", "file", "file_decimal_comma", "python_lane")
# the paths whose meters are resolved before the transaction that stores the rows
RESOLVED_BEFORE = ("file", "file_decimal_comma", "python_lane")


def delivery(path: str, monkeypatch, vendor, serials: list[str]) -> IngestBatch:
    """A batch of ``HOURS`` hourly readings per serial (in that order), queued but not
    processed yet, through ``path``."""
    readings = [
        (serial, START + dt.timedelta(hours=h), 1000 + 2.5 * h, 10 + h / 10)
        for serial in serials
        for h in range(HOURS)
    ]
    if path == "api":
        monkeypatch.setattr(batches, "_enqueue", lambda batch: None)
        body = orjson.dumps(
            [
                {
                    "meter": serial,
                    "read_at": at.isoformat(),
                    "energy": energy,
                    "energy_unit": "kWh",
                    "volume_m3": volume,
                }
                for serial, at, energy, volume in readings
            ]
        )
        batch, _ = readings_batch_submit(vendor=vendor, body=body, received_at=timezone.now())
        return batch
    comma = path == "file_decimal_comma"
    vendor.csv_separator, vendor.csv_decimal_comma, vendor.csv_time_zone = (
        (";", True, "UTC") if comma else (",", False, "UTC")
    )
    vendor.save()
    if path == "python_lane":  # what a file takes when the server-side lane declines it
        monkeypatch.setattr(fastcsv, "available", lambda: False)
    separator = vendor.csv_separator

    def number(value: float) -> str:
        return str(value).replace(".", ",") if comma else str(value)

    lines = [separator.join(("meter", "read_at", "energy", "volume_m3"))] + [
        separator.join((serial, at.isoformat(), number(energy), number(volume)))
        for serial, at, energy, volume in readings
    ]
    batch = IngestBatch.objects.create(vendor=vendor, source="file", received_at=timezone.now())
    batch.file.save("readings.csv", ContentFile(("\n".join(lines) + "\n").encode()))
    return batch


def process(batch: IngestBatch) -> IngestBatch:
    return readings_batch_process(batch_id=batch.pk, now=timezone.now())


@pytest.fixture
def vendor():
    return MeterVendorFactory()


@pytest.fixture
def kept(vendor):
    """A meter of the vendor that nobody deletes."""
    return HeatMeterFactory(vendor=vendor, serial="KEPT-1")


@pytest.fixture
def mistake(vendor):
    """A meter entered by mistake (never installed, never read) that a head-end starts
    reporting just as staff delete it."""
    return HeatMeterFactory(vendor=vendor, serial="MISTAKE-2")


def readings_of(meter_id: int) -> int:
    return Reading.objects.filter(meter_id=meter_id).count()


def refused_as_unknown(batch: IngestBatch, serial: str) -> list:
    return [
        (error["row"], error["code"], error["field"], error["message"])
        for error in batch.errors
        if serial in error["message"]
    ]


UNKNOWN = [
    (row, "unknown_meter", "meter", "Unknown meter MISTAKE-2; the row was refused.")
    for row in range(HOURS, 2 * HOURS)
]


@pytest.mark.parametrize("path", PATHS)
class TestADeleteDuringADelivery:
    def test_waits_for_the_delivery_and_then_finds_the_readings(
        self, path, monkeypatch, vendor, kept, mistake
    ):
        batch = delivery(path, monkeypatch, vendor, [kept.serial, mistake.serial])
        stored = Pause(monkeypatch, batches, "batch_add_result")  # rows in, not committed
        ingest, ingested = in_thread(process, batch=batch)
        stored.wait()

        deleting, deleted = in_thread(meter_delete, meter=mistake)
        waited = waits_for_a_lock(deleting, "FOR UPDATE")
        stored.released.set()
        finish(ingest, deleting)

        assert waited
        assert isinstance(deleted.get("error"), UnableToDeleteMeter), deleted
        assert [e.code for e in deleted["error"].errors] == ["has_readings"]
        assert HeatMeter.objects.filter(pk=mistake.pk).exists()
        done = ingested["value"]
        assert (done.state, done.accepted, done.rejected) == ("done", 2 * HOURS, 0)
        assert (readings_of(kept.pk), readings_of(mistake.pk)) == (HOURS, HOURS)

    def test_that_came_first_wins_and_the_delivery_refuses_the_meters_rows(
        self, path, monkeypatch, vendor, kept, mistake
    ):
        batch = delivery(path, monkeypatch, vendor, [kept.serial, mistake.serial])
        checked = Pause(monkeypatch, meters, "meter_delete_refusals", after=True)
        deleting, deleted = in_thread(meter_delete, meter=mistake)
        checked.wait()  # nothing recorded for the meter: it goes, once this commits

        ingest, _ingested = in_thread(process, batch=batch)
        waited = waits_for_a_lock(ingest, "FOR KEY SHARE")
        checked.released.set()
        finish(deleting, ingest)

        assert waited
        assert deleted == {"value": None}
        assert not HeatMeter.objects.filter(pk=mistake.pk).exists()
        done = IngestBatch.objects.get(pk=batch.pk)
        assert (done.state, done.accepted, done.rejected) == ("done", HOURS, HOURS), done.errors
        assert refused_as_unknown(done, mistake.serial) == UNKNOWN
        assert (readings_of(kept.pk), readings_of(mistake.pk)) == (HOURS, 0)
        assert list(IngestBatchMeter.objects.values_list("meter_id", flat=True)) == [kept.pk]


@pytest.mark.parametrize("path", RESOLVED_BEFORE)
def test_a_meter_deleted_after_its_rows_were_resolved_gets_none_of_them(
    path, monkeypatch, vendor, kept, mistake
):
    """The file paths know the vendor's meters before the chunk's transaction; a delete
    committed in between is found when the chunk locks its meters."""
    batch = delivery(path, monkeypatch, vendor, [kept.serial, mistake.serial])
    storing = Pause(monkeypatch, store, "stage_to_readings")  # in the chunk's transaction
    ingest, ingested = in_thread(process, batch=batch)
    storing.wait()

    meter_delete(meter=mistake)  # nothing stored for it yet: allowed
    storing.released.set()
    finish(ingest)

    done = ingested["value"]
    assert (done.state, done.accepted, done.rejected) == ("done", HOURS, HOURS), done.errors
    assert refused_as_unknown(done, mistake.serial) == UNKNOWN
    assert (readings_of(kept.pk), readings_of(mistake.pk)) == (HOURS, 0)
    assert list(IngestBatchMeter.objects.values_list("meter_id", flat=True)) == [kept.pk]


class TestAMeterUpdateDuringADelivery:
    def test_a_register_setting_does_not_wait_but_the_unit_waits_and_finds_the_readings(
        self, monkeypatch, vendor, mistake
    ):
        batch = delivery("api", monkeypatch, vendor, [mistake.serial])
        stored = Pause(monkeypatch, batches, "batch_add_result")
        ingest, ingested = in_thread(process, batch=batch)
        stored.wait()

        qp, qp_outcome = in_thread(meter_update, meter=mistake, values={"nominal_flow_m3h": 2.5})
        qp.join(timeout=20)  # FOR NO KEY UPDATE: no wait for the delivery
        qp_done_meanwhile = not qp.is_alive()
        unit, unit_outcome = in_thread(meter_update, meter=mistake, values={"register_unit": "MWh"})
        unit_waited = waits_for_a_lock(unit, "FOR UPDATE")
        stored.released.set()
        finish(ingest, qp, unit)

        assert qp_done_meanwhile, qp_outcome
        assert "error" not in qp_outcome, qp_outcome
        assert unit_waited
        assert isinstance(unit_outcome.get("error"), UnableToChangeMeter), unit_outcome
        assert [e.code for e in unit_outcome["error"].errors] == ["register_unit_fixed"]
        meter = HeatMeter.objects.get(pk=mistake.pk)
        assert (meter.register_unit, str(meter.nominal_flow_m3h)) == ("kWh", "2.500")
        assert ingested["value"].accepted == HOURS


def not_assigned(serial: str) -> list:
    return [
        (
            row,
            "meter_not_assigned",
            "meter",
            f"Meter {serial} is not assigned to this vendor; the row was refused.",
        )
        for row in range(HOURS, 2 * HOURS)
    ]


@pytest.mark.parametrize("path", PATHS)
class TestAVendorChangeDuringADelivery:
    """A meter moved to another vendor while a delivery of its rows is being stored:
    the rows go in for the meter as it was when the delivery locked it, or are refused
    as not the vendor's, never neither (before, a move between a chunk's lock and its
    insert left them neither stored nor refused, and the batch's counts short)."""

    def test_waits_for_the_delivery_that_locked_the_meter_and_its_rows_go_in(
        self, path, monkeypatch, vendor, kept, mistake
    ):
        batch = delivery(path, monkeypatch, vendor, [kept.serial, mistake.serial])
        other = MeterVendorFactory()
        locked = Pause(monkeypatch, store, "meters_lock", after=True)  # rows not in yet
        ingest, ingested = in_thread(process, batch=batch)
        locked.wait()

        moving, moved = in_thread(meter_update, meter=mistake, values={"vendor": other})
        waited = waits_for_a_lock(moving, "FOR UPDATE")
        locked.released.set()
        finish(ingest, moving)

        assert waited
        assert moved == {"value": HeatMeter.objects.get(pk=mistake.pk)}
        done = ingested["value"]
        assert (done.state, done.accepted, done.rejected) == ("done", 2 * HOURS, 0), done.errors
        assert (readings_of(kept.pk), readings_of(mistake.pk)) == (HOURS, HOURS)
        assert HeatMeter.objects.get(pk=mistake.pk).vendor_id == other.pk

    def test_that_came_first_has_the_delivery_wait_and_refuse_the_meters_rows(
        self, path, monkeypatch, vendor, kept, mistake
    ):
        batch = delivery(path, monkeypatch, vendor, [kept.serial, mistake.serial])
        other = MeterVendorFactory()
        saved = Pause(monkeypatch, meters, "clean_and_save", after=True)  # not committed
        moving, _moved = in_thread(meter_update, meter=mistake, values={"vendor": other})
        saved.wait()

        ingest, ingested = in_thread(process, batch=batch)
        waited = waits_for_a_lock(ingest, "FOR KEY SHARE")
        saved.released.set()
        finish(moving, ingest)

        assert waited
        done = ingested["value"]
        assert (done.state, done.accepted, done.rejected) == ("done", HOURS, HOURS), done.errors
        assert refused_as_unknown(done, mistake.serial) == not_assigned(mistake.serial)
        assert (readings_of(kept.pk), readings_of(mistake.pk)) == (HOURS, 0)


@pytest.mark.parametrize("path", RESOLVED_BEFORE)
def test_a_meter_moved_to_another_vendor_after_its_rows_were_resolved_gets_none_of_them(
    path, monkeypatch, vendor, kept, mistake
):
    """The file paths know the vendor's meters before the chunk's transaction; a move
    committed in between is found when the chunk locks its meters, as a delete is
    (before, the rows went in for a meter that was another vendor's by then)."""
    batch = delivery(path, monkeypatch, vendor, [kept.serial, mistake.serial])
    storing = Pause(monkeypatch, store, "stage_to_readings")  # in the chunk's transaction
    ingest, ingested = in_thread(process, batch=batch)
    storing.wait()

    meter_update(meter=mistake, values={"vendor": MeterVendorFactory()})
    storing.released.set()
    finish(ingest)

    done = ingested["value"]
    assert (done.state, done.accepted, done.rejected) == ("done", HOURS, HOURS), done.errors
    assert refused_as_unknown(done, mistake.serial) == not_assigned(mistake.serial)
    assert (readings_of(kept.pk), readings_of(mistake.pk)) == (HOURS, 0)
