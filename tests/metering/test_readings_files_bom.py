"""A UTF-8 file with a byte-order mark whose header names are quoted (Excel's "CSV UTF-8"
from a sheet with quoted cells, or an export quoting every field) is read like any
other: the upload's header check read the mark as part of the first column's name,
'\\ufeff"meter"', and refused the file 422 (unknown_column '"meter"', missing_column
'meter'), although processing strips the mark and reads the file."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase
from rest_framework.test import APIClient

from metering.models import IngestBatch, Reading
from metering.vendors import vendor_key_create
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("decimal_comma", [True, False])
def test_a_bom_before_a_quoted_header_is_no_part_of_the_first_column(decimal_comma):
    vendor = MeterVendorFactory(
        csv_columns={"meter": "Målernr", "read_at": "Tidspunkt"},
        csv_separator=";",
        csv_decimal_comma=decimal_comma,
    )
    meter = HeatMeterFactory(vendor=vendor)
    _, key = vendor_key_create(vendor=vendor)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    energy, volume = ("1000,5", "12,5") if decimal_comma else ("1000.5", "12.5")
    text = (
        '\ufeff"Målernr";"Tidspunkt";"energy";"volume_m3"\r\n'
        f'"{meter.serial}";"2026-11-01 00:00";"{energy}";"{volume}"\r\n'
    )

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(
            "/api/v1/readings/files/",
            {"file": SimpleUploadedFile("export.csv", text.encode(), "text/csv")},
            format="multipart",
        )

    assert response.status_code == 202, response.json()
    batch = IngestBatch.objects.get(pk=response.json()["batch"])
    assert (batch.state, batch.accepted, batch.errors) == ("done", 1, [])
    stored = Reading.objects.get(meter=meter)
    assert (str(stored.energy_kwh), str(stored.volume_m3)) == ("1000.500000", "12.5000")
