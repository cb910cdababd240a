"""The request example the OpenAPI schema shows vendors (``/api/docs/``' "Try it out", or
a client generator's sample) is a body the API accepts.

drf-spectacular wraps a list serializer's request example in a list once more, so the
two-reading example came out as ``[[{…}, {…}]]``: sent as shown, it was refused 422
``not_an_object``.
"""

import orjson
import pytest
from django.test import TestCase
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from metering.models import IngestBatch
from metering.vendors import vendor_key_create
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db


def test_the_schemas_reading_batch_example_is_accepted_as_shown():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    body = schema["paths"]["/api/v1/readings/"]["post"]["requestBody"]["content"]
    examples = body["application/json"]["examples"]
    vendor = MeterVendorFactory()
    serials = {row["meter"] for ex in examples.values() for row in ex["value"] if "meter" in row}
    for serial in serials:
        HeatMeterFactory(vendor=vendor, serial=serial)
    _, key = vendor_key_create(vendor=vendor)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")

    assert examples
    for name, example in examples.items():
        with TestCase.captureOnCommitCallbacks(execute=True):
            response = client.post(
                "/api/v1/readings/",
                data=orjson.dumps(example["value"]),
                content_type="application/json",
            )
        assert response.status_code == 202, (name, response.json())
        batch = IngestBatch.objects.get(pk=response.json()["batch"])
        assert (batch.state, batch.accepted, batch.rejected) == ("done", 2, 0), name
