"""The OpenAPI schema's numbers for readings say what the API accepts.

The schema showed drf-spectacular's patterns for ``DecimalField(max_digits, …)``: one
digit more than the API takes for every number (energy up to 10¹⁴ where the API stops
below 10¹³), a minus sign for registers that cannot be negative, temperatures up to
9999.99 °C (the API takes −50 to below 200), and an empty or lone ``.`` value.  A client
generated from the schema sent such values and got 422s.  Each number's pattern now is
exactly the plain values the API takes and stores as sent, with its ``maxLength`` and a
description of the range and rounding; what lies just beyond is refused, itemised.
"""

import datetime as dt
import re

import orjson
import pytest
from django.test import TestCase
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from metering.models import IngestBatch, Reading
from metering.vendors import vendor_key_create
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db

# field -> (the highest and lowest values the API takes, values just beyond, the code)
LIMITS = {
    "energy": (
        ["9999999999999.999999", "0"],
        [("10000000000000", "out_of_range"), ("-0.000001", "negative"), (".", "not_a_number")],
    ),
    "volume_m3": (
        ["99999999999.9999", "0"],
        [("100000000000", "out_of_range"), ("-0.0001", "negative")],
    ),
    "flow_temp_c": (["199.99", "-50.00"], [("200", "out_of_range"), ("-50.01", "out_of_range")]),
    "return_temp_c": (
        ["199.99", "-50"],
        [("200.00", "out_of_range"), ("-50.01", "out_of_range")],
    ),
    "power_kw": (["99999999.999", "0"], [("100000000", "out_of_range"), ("-1", "negative")]),
    "flow_m3h": (["9999999.9999", "0"], [("10000000", "out_of_range"), ("-1", "negative")]),
    "flow_temp_m3c": (
        ["999999999999999.9999", "0"],
        [("1000000000000000", "out_of_range"), ("-1", "negative")],
    ),
    "return_temp_m3c": (
        ["999999999999999.9999", "0"],
        [("1000000000000000", "out_of_range"), ("-1", "negative")],
    ),
}
# energy in the units whose limit is lower than the pattern's (the description says so)
ENERGY_BY_UNIT = {
    "MWh": ("99999999999.999999", "100000000000"),
    "GJ": ("359999999999.999999", "360000000000"),
}
PLACES = {
    "energy": 6,
    "volume_m3": 4,
    "flow_temp_c": 2,
    "return_temp_c": 2,
    "power_kw": 3,
    "flow_m3h": 4,
    "flow_temp_m3c": 4,
    "return_temp_m3c": 4,
}


@pytest.fixture(scope="module")
def numbers():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    properties = schema["components"]["schemas"]["ReadingInRequest"]["properties"]
    return {name: spec for name, spec in properties.items() if spec.get("format") == "decimal"}


def _api(vendor):
    _, key = vendor_key_create(vendor=vendor)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def _row(meter, hour, **values):
    row = {
        "meter": meter.serial,
        "read_at": (timezone.now() - dt.timedelta(hours=100 - hour)).isoformat(),
        "energy": "1",
        "energy_unit": "kWh",
        "volume_m3": "1",
    }
    return row | values


def test_every_documented_number_has_its_limits_in_the_schema(numbers):
    assert set(numbers) == set(LIMITS)
    for name, (at_limit, beyond) in LIMITS.items():
        spec = numbers[name]
        pattern = re.compile(spec["pattern"])
        for value in at_limit:
            assert pattern.match(value), (name, value)
            assert len(value) <= spec["maxLength"], (name, value)
        assert spec["maxLength"] == max(len(value) for value in at_limit), name
        for value, _code in beyond:
            assert not pattern.match(value), (name, value)
        for value in ("", "1e3", "+1", "1.", f"1.{'0' * (PLACES[name] + 1)}", "01"):
            assert not pattern.match(value), (name, value)  # not the plain form
        assert f"at most {PLACES[name]} decimal places" in spec["description"], name
        assert "rounded half up" in spec["description"], name
    assert "MWh below 10¹¹" in numbers["energy"]["description"]
    assert "GJ below 3.6·10¹¹" in numbers["energy"]["description"]


def test_values_at_the_limits_are_accepted_and_stored_as_sent(numbers, on_postgres):
    vendor = MeterVendorFactory()
    meter = HeatMeterFactory(vendor=vendor)
    rows = [
        _row(meter, hour, **{name: values[i] for name, (values, _) in LIMITS.items()})
        for hour, i in enumerate((0, 1))
    ]
    for hour, (unit, (at_limit, _beyond)) in enumerate(ENERGY_BY_UNIT.items(), start=2):
        assert re.match(numbers["energy"]["pattern"], at_limit)
        rows.append(_row(meter, hour, energy=at_limit, energy_unit=unit))

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = _api(vendor).post(
            "/api/v1/readings/", data=orjson.dumps(rows), content_type="application/json"
        )

    assert response.status_code == 202, response.json()
    batch = IngestBatch.objects.get(pk=response.json()["batch"])
    assert (batch.state, batch.accepted, batch.rejected, batch.error_count) == ("done", 4, 0, 0)
    if not on_postgres:
        return  # SQLite keeps a 20-digit decimal as a double: 10000000000000.0
    highest = Reading.objects.filter(meter=meter).order_by("read_at").first()
    assert highest.energy_value == highest.energy_kwh
    assert str(highest.energy_kwh) == "9999999999999.999999"
    assert str(highest.flow_temp_c) == "199.99"
    assert str(highest.flow_temp_m3c) == "999999999999999.9999"


def test_values_just_beyond_are_refused_itemised_by_row_and_field():
    vendor = MeterVendorFactory()
    meter = HeatMeterFactory(vendor=vendor)
    rows, expected = [], set()
    for name, (_at_limit, beyond) in LIMITS.items():
        for value, code in beyond:
            expected.add((len(rows), name, code))
            rows.append(_row(meter, len(rows), **{name: value}))
    for unit, (_at_limit, beyond) in ENERGY_BY_UNIT.items():
        expected.add((len(rows), "energy", "out_of_range"))
        rows.append(_row(meter, len(rows), energy=beyond, energy_unit=unit))

    response = _api(vendor).post(
        "/api/v1/readings/", data=orjson.dumps(rows), content_type="application/json"
    )

    assert response.status_code == 422, response.json()
    items = response.json()["errors"]
    assert {(e["row"], e["field"], e["code"]) for e in items} == expected
    assert len(items) == len(rows) == 19
    assert not IngestBatch.objects.exists()
