"""Readings more than a tolerance after the delivery was received are refused at intake.

A head-end with a wrong clock sent readings up to year 2100; intake took them, made
their monthly partitions and moved the meter's ``last_read_at`` to the future, and only
nightly VEE flagged them.  Now a row more than ``READINGS_FUTURE_TOLERANCE_HOURS``
(default 24) after the batch was received is refused ``future_timestamp`` (itemised),
and the batch follows its rule: a JSON request is refused whole (422), a file fails
whole.  The same on every path (the JSON fast and careful lanes, the CSV fast path
and the Python rules).
"""

import datetime as dt

import orjson
import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from metering.ingest.batches import InvalidDelivery, readings_batch_process, readings_batch_submit
from metering.models import IngestBatch, Reading
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db


def _stamp(moment):
    return moment.replace(microsecond=0).isoformat()


@pytest.mark.parametrize("lane", ["fast", "careful"])
def test_a_json_reading_too_far_ahead_refuses_the_request(lane):
    vendor = MeterVendorFactory()
    meter = HeatMeterFactory(vendor=vendor)
    now = timezone.now()
    energy = 100.5 if lane == "fast" else "100.5"  # a string takes the careful lane
    rows = [
        {
            "meter": meter.serial,
            "read_at": _stamp(now + dt.timedelta(hours=h)),
            "energy": energy,
            "energy_unit": "kWh",
            "volume_m3": 1,
        }
        for h in (-1, 23, 25)
    ]
    with pytest.raises(InvalidDelivery) as raised:
        readings_batch_submit(vendor=vendor, body=orjson.dumps(rows), received_at=now)
    assert [(e.row, e.field, e.code) for e in raised.value.errors] == [
        (2, "read_at", "future_timestamp")
    ]
    assert IngestBatch.objects.count() == 0


def test_the_tolerance_is_a_setting(settings):
    settings.READINGS_FUTURE_TOLERANCE_HOURS = 1
    vendor = MeterVendorFactory()
    meter = HeatMeterFactory(vendor=vendor)
    now = timezone.now()
    row = {
        "meter": meter.serial,
        "read_at": _stamp(now + dt.timedelta(hours=2)),
        "energy": 1,
        "energy_unit": "kWh",
        "volume_m3": 1,
    }
    with pytest.raises(InvalidDelivery) as raised:
        readings_batch_submit(vendor=vendor, body=orjson.dumps([row]), received_at=now)
    assert [e.code for e in raised.value.errors] == ["future_timestamp"]


@pytest.mark.parametrize("path", ["fast", "python"])
@pytest.mark.parametrize("decimal_comma", [True, False])
def test_a_file_with_a_reading_too_far_ahead_fails(decimal_comma, path, monkeypatch):
    if path == "python":
        from metering.ingest import fastcsv

        monkeypatch.setattr(fastcsv, "available", lambda: False)
    sep = ";" if decimal_comma else ","
    vendor = MeterVendorFactory(
        csv_columns={}, csv_separator=sep, csv_decimal_comma=decimal_comma, csv_time_zone="UTC"
    )
    meter = HeatMeterFactory(vendor=vendor)
    now = timezone.now()
    text = f"meter{sep}read_at{sep}energy{sep}volume_m3\n" + "".join(
        f"{meter.serial}{sep}{_stamp(now + dt.timedelta(hours=h))}{sep}{100 + h}{sep}1\n"
        for h in (-2, 23, 24 * 365 * 50)
    )
    batch = IngestBatch.objects.create(vendor=vendor, source="file", received_at=now)
    batch.file.save("export.csv", ContentFile(text.encode()))
    batch = readings_batch_process(batch_id=batch.pk, now=now)

    assert batch.state == "failed"
    assert [(e["row"], e["field"], e["code"]) for e in batch.errors] == [
        (2, "read_at", "future_timestamp")
    ]
    assert Reading.objects.count() == 0
    from django.db import connection

    if connection.vendor == "postgresql":  # no partition made for the year 2076
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('metering_reading_y2076m11')")
            assert cursor.fetchone() == (None,)
