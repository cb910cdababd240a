"""An Idempotency-Key longer than the stored 100 characters is still the vendor's key.

The views cut the header to 100 characters, so two different keys with the same first
100 characters (a job id after a long fixed prefix) were one key: the second batch,
never sent before, was refused 422 ``idempotency_key_reused`` (or, with the same body,
answered with the first batch, and nothing of it stored).
"""

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase
from rest_framework.test import APIClient

from metering.models import IngestBatch, Reading
from metering.vendors import vendor_key_create
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db

PREFIX = "headend-7/export/" + "x" * 90  # 107 characters, then the job's own part


@pytest.fixture
def vendor():
    return MeterVendorFactory(csv_separator=";", csv_decimal_comma=True)


@pytest.fixture
def client(vendor):
    _, key = vendor_key_create(vendor=vendor)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return api


def post_json(client, serial, hour, key):
    rows = [
        {
            "meter": serial,
            "read_at": f"2026-11-01T{hour:02d}:00:00+01:00",
            "energy": str(1000 + hour),
            "energy_unit": "kWh",
            "volume_m3": "12.5",
        }
    ]
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(
            "/api/v1/readings/",
            data=orjson.dumps(rows),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=key,
        )


def post_file(client, serial, hour, key):
    text = f"meter;read_at;energy;volume_m3\n{serial};2026-11-01 {hour:02d}:00;{1000 + hour};12,5\n"
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(
            "/api/v1/readings/files/",
            {"file": SimpleUploadedFile("export.csv", text.encode(), "text/csv")},
            format="multipart",
            HTTP_IDEMPOTENCY_KEY=key,
        )


@pytest.mark.parametrize("post", [post_json, post_file])
def test_long_keys_differing_after_100_characters_are_two_batches(client, vendor, post):
    meter = HeatMeterFactory(vendor=vendor)

    first = post(client, meter.serial, 1, PREFIX + "-job-1")
    second = post(client, meter.serial, 2, PREFIX + "-job-2")

    assert first.status_code == 202, first.json()
    assert second.status_code == 202, second.json()
    assert second.json()["batch"] != first.json()["batch"]
    assert "Idempotent-Replayed" not in second.headers
    assert Reading.objects.filter(meter=meter).count() == 2


@pytest.mark.parametrize("post", [post_json, post_file])
def test_a_long_key_sent_again_replays_its_first_answer(client, vendor, post):
    meter = HeatMeterFactory(vendor=vendor)

    first = post(client, meter.serial, 1, PREFIX + "-job-1")
    again = post(client, meter.serial, 1, PREFIX + "-job-1")
    other_body = post(client, meter.serial, 3, PREFIX + "-job-1")

    assert (first.status_code, again.status_code) == (202, 202), again.json()
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other_body.status_code == 422
    assert other_body.json()["code"] == "idempotency_key_reused"
    assert IngestBatch.objects.filter(vendor=vendor).count() == 1
    assert Reading.objects.filter(meter=meter).count() == 1
