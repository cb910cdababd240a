"""A file's row numbers name its lines (file line = row + 2), blank lines included."""

import datetime as dt

import pytest
from django.test import TestCase

from metering.ingest.batches import readings_file_submit
from metering.models import Reading
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db
RECEIVED = dt.datetime(2026, 9, 4, tzinfo=dt.UTC)


def submitted(vendor, text):
    with TestCase.captureOnCommitCallbacks(execute=True):
        batch, _ = readings_file_submit(
            vendor=vendor, content=text.encode(), file_name="x.csv", received_at=RECEIVED
        )
    batch.refresh_from_db()
    return batch


def test_an_error_after_a_blank_line_names_the_row_of_its_line():
    vendor = MeterVendorFactory(csv_decimal_comma=False)
    meter = HeatMeterFactory(vendor=vendor)
    text = (
        "meter;read_at;energy;volume_m3\n"  # line 1
        f"{meter.serial};2026-09-01 00:00;100;1\n"  # line 2: row 0
        "\n"  # line 3: blank
        f"{meter.serial};2026-09-02 00:00;110;1.1\n"  # line 4: row 2
        f"{meter.serial};2026-09-03 00:00;abc;1.2\n"  # line 5: row 3, the bad value
    )

    batch = submitted(vendor, text)

    assert batch.state == "failed"
    (error,) = batch.errors
    assert (error["row"], error["field"], error["code"]) == (3, "energy", "not_a_number")


def test_blank_lines_are_skipped():
    vendor = MeterVendorFactory(csv_decimal_comma=False)
    meter = HeatMeterFactory(vendor=vendor)
    text = (
        "meter;read_at;energy;volume_m3\n\n"
        f"{meter.serial};2026-09-01 00:00;100;1\n\n\n"
        f"{meter.serial};2026-09-02 00:00;110;1.1\n\n"
    )

    batch = submitted(vendor, text)

    assert (batch.state, batch.accepted, batch.rejected) == ("done", 2, 0)
    assert Reading.objects.filter(meter=meter).count() == 2


def test_a_file_of_blank_lines_holds_no_readings():
    vendor = MeterVendorFactory(csv_decimal_comma=False)

    batch = submitted(vendor, "meter;read_at;energy;volume_m3\n\n\n")

    assert batch.state == "failed"
    assert [(e["code"], e["message"]) for e in batch.errors] == [
        ("empty", "The file contains no readings.")
    ]
