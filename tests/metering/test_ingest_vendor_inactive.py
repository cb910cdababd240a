"""A vendor deactivated by staff while its batches wait in the queue: the worker holds
them (nothing stored, a clear reason), as the API refuses the vendor's new deliveries;
staff process them again once the vendor is active again."""

import datetime as dt

import orjson
import pytest
from django.core.files.base import ContentFile
from django.test import TestCase

from metering.ingest.batches import (
    batches_stalled,
    readings_batch_process,
    readings_batch_submit,
    readings_batches_release,
)
from metering.models import IngestBatch, IngestBatchMeter, Reading
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC)


def _json_batch(vendor, meter, hours=3) -> IngestBatch:
    """Submitted (queued) while the vendor was active; its task has not run yet."""
    body = orjson.dumps(
        [
            {
                "meter": meter.serial,
                "read_at": (T0 + dt.timedelta(hours=h)).isoformat(),
                "energy": str(1000 + h),
                "energy_unit": "kWh",
                "volume_m3": "12.5",
            }
            for h in range(hours)
        ]
    )
    batch, _ = readings_batch_submit(vendor=vendor, body=body, received_at=T0)
    return batch


def _file_batch(vendor, meter) -> IngestBatch:
    batch = IngestBatch.objects.create(vendor=vendor, source="file", received_at=T0)
    text = f"meter,read_at,energy,volume_m3\n{meter.serial},2026-11-01T00:00:00Z,10.5,1\n"
    batch.file.save("export.csv", ContentFile(text.encode()))
    return batch


def _deactivate(vendor) -> None:
    vendor.is_active = False
    vendor.save(update_fields=["is_active"])


@pytest.fixture
def vendor():
    return MeterVendorFactory(csv_separator=",", csv_decimal_comma=False)


class TestBatchOfDeactivatedVendor:
    @pytest.mark.parametrize("make", [_json_batch, _file_batch], ids=["json", "file"])
    def test_a_queued_batch_is_held_with_nothing_stored(self, vendor, make):
        meter = HeatMeterFactory(vendor=vendor)
        batch = make(vendor, meter)
        _deactivate(vendor)

        held = readings_batch_process(batch_id=batch.pk, now=NOW)

        assert held.state == IngestBatch.State.HELD
        assert (held.progress, held.accepted, held.duplicate, held.rejected) == (0, 0, 0, 0)
        assert [e["code"] for e in held.errors] == ["vendor_inactive"]
        assert held.error_count == 1
        assert "deactivated" in held.errors[0]["message"]
        assert held.finished_at is None
        assert not Reading.objects.exists()
        assert not IngestBatchMeter.objects.exists()
        # a redelivered task, or the beat sweep, leaves it held
        assert readings_batch_process(batch_id=batch.pk, now=NOW).state == "held"
        assert batches_stalled(now=NOW + dt.timedelta(days=1)) == []
        assert not Reading.objects.exists()

    def test_a_held_batch_is_not_released_while_the_vendor_is_inactive(self, vendor):
        meter = HeatMeterFactory(vendor=vendor)
        batch = _json_batch(vendor, meter)
        _deactivate(vendor)
        readings_batch_process(batch_id=batch.pk, now=NOW)

        with TestCase.captureOnCommitCallbacks(execute=True) as queued:
            released = readings_batches_release(batches=IngestBatch.objects.all())

        assert released == 0
        assert queued == []
        assert IngestBatch.objects.get(pk=batch.pk).state == "held"

    def test_staff_process_it_once_the_vendor_is_active_again(self, vendor):
        meter = HeatMeterFactory(vendor=vendor)
        batch = _json_batch(vendor, meter, hours=3)
        _deactivate(vendor)
        readings_batch_process(batch_id=batch.pk, now=NOW)
        vendor.is_active = True
        vendor.save(update_fields=["is_active"])

        with TestCase.captureOnCommitCallbacks(execute=True):  # the task runs eagerly
            released = readings_batches_release(batches=IngestBatch.objects.all())

        assert released == 1
        done = IngestBatch.objects.get(pk=batch.pk)
        assert (done.state, done.accepted, done.error_count, done.errors) == ("done", 3, 0, [])
        assert Reading.objects.filter(meter=meter, batch_id=batch.pk).count() == 3

    def test_a_batch_already_storing_when_the_vendor_was_deactivated_is_finished(
        self, vendor, monkeypatch
    ):
        """Readings are append-only: a file with chunks committed is completed, not left
        half stored."""
        from metering.ingest import fastcsv

        monkeypatch.setattr(fastcsv, "available", lambda: False)
        meter = HeatMeterFactory(vendor=vendor)
        lines = ["meter,read_at,energy,volume_m3"] + [
            f"{meter.serial},{(T0 + dt.timedelta(hours=h)).isoformat()},{10 + h},1"
            for h in range(4)
        ]
        batch = IngestBatch.objects.create(vendor=vendor, source="file", received_at=T0)
        batch.file.save("export.csv", ContentFile(("\n".join(lines) + "\n").encode()))
        half = readings_batch_process(batch_id=batch.pk, now=NOW, chunk_rows=2, max_chunks=1)
        assert (half.state, half.progress) == ("processing", 2)
        _deactivate(vendor)

        done = readings_batch_process(batch_id=batch.pk, now=NOW, chunk_rows=2)

        assert (done.state, done.accepted) == ("done", 4)
        assert Reading.objects.filter(meter=meter).count() == 4


class TestReleaseInAdmin:
    def test_staff_release_held_batches_from_the_list(self, admin_client, vendor):
        meter = HeatMeterFactory(vendor=vendor)
        held, waiting = _json_batch(vendor, meter), _file_batch(vendor, meter)
        _deactivate(vendor)
        readings_batch_process(batch_id=held.pk, now=NOW)
        vendor.is_active = True
        vendor.save(update_fields=["is_active"])

        with TestCase.captureOnCommitCallbacks(execute=True):
            response = admin_client.post(
                "/admin/metering/ingestbatch/",
                {"action": "release", "_selected_action": [held.pk, waiting.pk]},
                follow=True,
            )

        assert response.status_code == 200
        assert "1 held batch(es) queued again" in response.content.decode()
        assert IngestBatch.objects.get(pk=held.pk).state == "done"
        assert IngestBatch.objects.get(pk=waiting.pk).state == "received"  # not held: untouched


def _vendor_form(vendor, **changes) -> dict:
    data = {
        "code": vendor.code,
        "name": vendor.name,
        "is_active": "on",
        "csv_columns": "{}",
        "csv_separator": ",",
        "csv_encoding": "utf-8",
        "csv_energy_unit": "kWh",
        "csv_time_zone": "Europe/Copenhagen",
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
    }
    return data | changes


class TestReactivatingTheVendorReleasesItsHeldBatches:
    """Setting the vendor active again queues its held batches, after the save commits,
    through the service the admin action uses: once, nothing stored twice."""

    def _held(self, vendor, hours=3):
        meter = HeatMeterFactory(vendor=vendor)
        batch = _json_batch(vendor, meter, hours=hours)
        _deactivate(vendor)
        assert readings_batch_process(batch_id=batch.pk, now=NOW).state == "held"
        return meter, batch

    def test_the_vendor_admins_save_processes_them_once(self, admin_client, vendor):
        meter, batch = self._held(vendor, hours=3)
        url = f"/admin/metering/metervendor/{vendor.pk}/change/"

        with TestCase.captureOnCommitCallbacks(execute=True) as queued:
            response = admin_client.post(url, _vendor_form(vendor))

        assert response.status_code == 302, response.context["adminform"].form.errors
        assert len(queued) == 1  # the batch's task, after the save committed
        done = IngestBatch.objects.get(pk=batch.pk)
        assert (done.state, done.accepted, done.duplicate, done.error_count) == ("done", 3, 0, 0)
        assert done.errors == []
        assert Reading.objects.filter(meter=meter).count() == 3

        # saving the active vendor again queues nothing: the batch is done, stored once
        with TestCase.captureOnCommitCallbacks(execute=True) as again:
            response = admin_client.post(url, _vendor_form(vendor, name="Renamed"))

        assert response.status_code == 302
        assert again == []
        assert IngestBatch.objects.get(pk=batch.pk).accepted == 3
        assert Reading.objects.filter(meter=meter).count() == 3

    def test_saving_the_vendor_still_inactive_leaves_them_held(self, admin_client, vendor):
        _meter, batch = self._held(vendor)
        form = _vendor_form(vendor, name="Renamed")
        del form["is_active"]  # an unticked checkbox is not sent

        with TestCase.captureOnCommitCallbacks(execute=True) as queued:
            response = admin_client.post(f"/admin/metering/metervendor/{vendor.pk}/change/", form)

        assert response.status_code == 302
        assert queued == []
        assert IngestBatch.objects.get(pk=batch.pk).state == "held"
        assert not Reading.objects.exists()

    def test_the_service_activating_a_vendor_releases_them(self, vendor):
        from metering.vendors import vendor_activate

        meter, batch = self._held(vendor, hours=2)
        other = MeterVendorFactory()  # another vendor's held batch stays held
        other_meter, other_batch = self._held(other, hours=1)

        with TestCase.captureOnCommitCallbacks(execute=True) as queued:
            released = vendor_activate(vendor=vendor)

        assert released == 1
        assert len(queued) == 1
        vendor.refresh_from_db()
        assert vendor.is_active
        assert IngestBatch.objects.get(pk=batch.pk).state == "done"
        assert Reading.objects.filter(meter=meter).count() == 2
        assert IngestBatch.objects.get(pk=other_batch.pk).state == "held"
        assert not Reading.objects.filter(meter=other_meter).exists()
        # activating it again changes nothing
        with TestCase.captureOnCommitCallbacks(execute=True) as again:
            assert vendor_activate(vendor=vendor) == 0
        assert again == []
        assert Reading.objects.filter(meter=meter).count() == 2
