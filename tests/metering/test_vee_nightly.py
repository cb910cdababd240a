import datetime as dt

import pytest
from django.db import connection
from django.test import TestCase
from drf_spectacular.generators import SchemaGenerator

from metering.ingest.batches import readings_batch_submit
from metering.models import IngestBatch, Reading, ReadingIssue
from metering.tasks import vee_nightly, vee_rerun
from tests.metering.factories import MeterInstallationFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _body(serial, values):
    import orjson

    return orjson.dumps(
        [
            {
                "meter": serial,
                "read_at": (T0 + dt.timedelta(hours=h)).isoformat(),
                "energy": e,
                "energy_unit": "kWh",
                "volume_m3": 1 + h / 10,
            }
            for h, e in enumerate(values)
        ]
    )


def test_nightly_vee_checks_new_batches_once():
    vendor = MeterVendorFactory()
    inst = MeterInstallationFactory(meter__vendor=vendor)
    with TestCase.captureOnCommitCallbacks(execute=True):
        batch, _ = readings_batch_submit(
            vendor=vendor, body=_body(inst.meter.serial, [100, 104, 99, 108]), received_at=T0
        )

    vee_nightly.delay()

    batch.refresh_from_db()
    assert batch.vee_done_at is not None
    assert (
        Reading.objects.get(meter=inst.meter, read_at=T0 + dt.timedelta(hours=2)).status
        == "rejected"
    )
    assert ReadingIssue.objects.filter(code="register_decrease").count() == 1
    vee_nightly.delay()  # nothing new: idempotent
    assert ReadingIssue.objects.count() == 1
    assert IngestBatch.objects.filter(vee_done_at__isnull=True).count() == 0


def test_staff_rerun_for_a_meter_and_period_is_idempotent():
    inst = MeterInstallationFactory()
    from tests.metering.factories_readings import add_readings

    add_readings(inst.meter, [(T0, "100", "1"), (T0 + dt.timedelta(hours=1), "90", "1")])
    for _ in range(2):
        vee_rerun.delay(inst.meter.pk, T0.isoformat(), (T0 + dt.timedelta(days=1)).isoformat())
    assert ReadingIssue.objects.filter(meter=inst.meter, code="register_decrease").count() == 1


def test_openapi_schema_describes_the_vendor_api():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    post = schema["paths"]["/api/v1/readings/"]["post"]
    assert {"202", "400", "413", "422"} <= set(post["responses"])
    assert post["security"] == [{"VendorApiKey": []}]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert "/api/v1/readings/files/" in schema["paths"]
    assert "/api/v1/readings/batches/{id}/" in schema["paths"]
    assert connection.vendor  # schema generation needs no data
