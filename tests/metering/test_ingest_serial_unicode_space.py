"""A serial padded with a Unicode space (a no-break space from a spreadsheet, U+3000,
U+2009) names its meter on every path.

The Python rules trim it (``str.strip``), as the JSON path does; PostgreSQL's CSV fast
path trims only ASCII spaces (``btrim``), found no meter '67000000\\xa0' and refused
the row ``unknown_meter`` (accepted 0, rejected 1), while the same file with one other
doubtful row, or on SQLite, stored it.  The fast path now leaves such files to the
Python rules.
"""

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from metering.ingest.batches import readings_batch_process
from metering.models import IngestBatch, Reading
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("decimal_comma", [True, False])
@pytest.mark.parametrize("space", ["\xa0", "\u3000", "\u2009"])
def test_a_serial_padded_with_a_unicode_space_names_its_meter(decimal_comma, space):
    sep = ";" if decimal_comma else ","
    vendor = MeterVendorFactory(csv_separator=sep, csv_decimal_comma=decimal_comma)
    meter, other = HeatMeterFactory(vendor=vendor), HeatMeterFactory(vendor=vendor)
    energy = "1000,5" if decimal_comma else "1000.5"
    text = (
        f"meter{sep}read_at{sep}energy{sep}volume_m3\n"
        f"{meter.serial}{space}{sep}2026-11-01T00:00:00+01:00{sep}{energy}{sep}1\n"
        f"{other.serial}{sep}2026-11-01T00:00:00+01:00{sep}{energy}{sep}1\n"
    )
    batch = IngestBatch.objects.create(vendor=vendor, source="file", received_at=timezone.now())
    batch.file.save("export.csv", ContentFile(text.encode()))

    batch = readings_batch_process(batch_id=batch.pk, now=timezone.now())

    assert (batch.state, batch.accepted, batch.rejected, batch.errors) == ("done", 2, 0, [])
    assert Reading.objects.filter(meter=meter).count() == 1
