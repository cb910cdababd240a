"""An energy unit padded with spaces ("kWh ", " MWh") is read alike on every path.

PostgreSQL's staging of decimal-comma files trims the unit (``btrim``), so such a file
was stored there; a point-decimal file, any file on SQLite, and a decimal-comma file
with one other bad row (the Python rules then decide every row) refused the same rows
``invalid_choice``, although those rules trim the serial, the numbers and the time.
The Python rules now trim the unit too; a unit of spaces only is then no unit (the
vendor's default), like an empty field.
"""

from decimal import Decimal

import orjson
import pytest
from django.core.files.base import ContentFile
from django.test import TestCase
from django.utils import timezone

from metering.ingest.batches import readings_batch_process, readings_batch_submit
from metering.models import IngestBatch, Reading
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db


def _file_batch(vendor, text: str) -> IngestBatch:
    batch = IngestBatch.objects.create(vendor=vendor, source="file", received_at=timezone.now())
    batch.file.save("export.csv", ContentFile(text.encode()))
    return readings_batch_process(batch_id=batch.pk, now=timezone.now())


@pytest.mark.parametrize("decimal_comma", [True, False])
@pytest.mark.parametrize(
    ("unit", "kwh"),
    [("kWh ", "1000.5"), (" MWh", "1000500"), ("  ", "1000.5"), ("GJ", "277916.666667")],
)
def test_a_files_padded_unit_is_read_on_either_path(decimal_comma, unit, kwh):
    sep = ";" if decimal_comma else ","
    vendor = MeterVendorFactory(
        csv_separator=sep, csv_decimal_comma=decimal_comma, csv_energy_unit="kWh"
    )
    meter = HeatMeterFactory(vendor=vendor)
    energy = "1000,5" if decimal_comma else "1000.5"
    text = (
        f"meter{sep}read_at{sep}energy{sep}energy_unit{sep}volume_m3\n"
        f"{meter.serial}{sep}2026-11-01T00:00:00+01:00{sep}{energy}{sep}{unit}{sep}1\n"
    )

    batch = _file_batch(vendor, text)

    assert (batch.state, batch.accepted, batch.errors) == ("done", 1, [])
    assert Reading.objects.get(meter=meter).energy_kwh == Decimal(kwh)


def test_a_json_readings_padded_unit_is_read():
    vendor = MeterVendorFactory()
    meter = HeatMeterFactory(vendor=vendor)
    row = {
        "meter": meter.serial,
        "read_at": "2026-11-01T00:00:00+01:00",
        "energy": "1000.5",
        "energy_unit": " MWh ",
        "volume_m3": "1",
    }
    with TestCase.captureOnCommitCallbacks(execute=True):
        batch, _ = readings_batch_submit(
            vendor=vendor, body=orjson.dumps([row]), received_at=timezone.now()
        )
    batch.refresh_from_db()
    assert (batch.state, batch.accepted) == ("done", 1)
    stored = Reading.objects.get(meter=meter)
    assert (stored.energy_kwh, stored.energy_unit) == (Decimal("1000500"), "MWh")
