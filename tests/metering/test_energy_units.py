"""A reading in MWh, GJ or Wh is stored the same way by every path, so sending it again
by another path is a duplicate, not a conflict (DOMAIN.md §2: never counted twice)."""

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

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


def _file(vendor, text: str) -> IngestBatch:
    batch = IngestBatch.objects.create(vendor=vendor, source="file", received_at=timezone.now())
    batch.file.save("readings.csv", ContentFile(text.encode()))
    readings_batch_process(batch_id=batch.pk, now=timezone.now())
    batch.refresh_from_db()
    return batch


def _rest(vendor, rows: list[dict]) -> IngestBatch:
    with TestCase.captureOnCommitCallbacks(execute=True):
        batch, _ = readings_batch_submit(
            vendor=vendor, body=orjson.dumps(rows), received_at=timezone.now()
        )
    batch.refresh_from_db()
    return batch


@pytest.mark.parametrize("comma", [False, True])
@pytest.mark.parametrize(
    ("unit", "value", "kwh"),
    [
        # the value is kept to 6 decimals (half up) and then converted: 1.234567 MWh
        ("MWh", "1.2345674", Decimal("1234.567000")),
        # 12.345679 GJ × 1000 / 3.6 = 3429.3552777…
        ("GJ", "12.3456785", Decimal("3429.355278")),
        ("Wh", "1234567.8905", Decimal("1234.567891")),
    ],
)
def test_a_file_reading_sent_again_by_rest_is_a_duplicate(comma, unit, value, kwh):
    vendor = MeterVendorFactory(
        csv_columns={},
        csv_separator=";",
        csv_decimal_comma=comma,
        csv_energy_unit=unit,
        csv_time_zone="UTC",
    )
    meter = HeatMeterFactory(vendor=vendor)
    shown = value.replace(".", ",") if comma else value
    read_at = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    text = f"meter;read_at;energy;volume_m3\n{meter.serial};{read_at.isoformat()};{shown};1\n"

    assert _file(vendor, text).state == "done"
    again = _rest(
        vendor,
        [
            {
                "meter": meter.serial,
                "read_at": "2026-09-01T00:00:00Z",
                "energy": value,
                "energy_unit": unit,
                "volume_m3": "1",
            }
        ],
    )

    reading = Reading.objects.get(meter=meter)
    assert reading.energy_value == Decimal(value).quantize(Decimal("0.000001"), ROUND_HALF_UP)
    assert reading.energy_kwh == kwh
    assert (again.duplicate, again.conflicting) == (1, 0)
