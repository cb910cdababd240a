"""A vendor's CSV settings are checked when staff save them, not when the vendor's
file arrives: a time zone, encoding or column mapping that cannot be used would make
every upload of the vendor an HTTP 500 (unknown encoding, a mapping that is no
mapping) or a batch failed on an internal error (an unknown zone)."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from metering.models import MeterVendor
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db


def _form(vendor: MeterVendor, **changes) -> dict:
    data = {
        "code": vendor.code,
        "name": vendor.name,
        "is_active": "on",
        "csv_columns": '{"meter": "MeterNo"}',
        "csv_separator": ";",
        "csv_decimal_comma": "on",
        "csv_energy_unit": "kWh",
        "csv_time_zone": "Europe/Copenhagen",
        "csv_encoding": "utf-8",
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
    }
    return data | changes


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("csv_time_zone", "Europe/Copenhagn", "time zone"),
        ("csv_encoding", "utf-9", "encoding"),
        ("csv_columns", '["meter", "read_at"]', "mapping"),
        ("csv_columns", '{"meter": ["MeterNo"]}', "column name"),
        ("csv_columns", '{"meterno": "MeterNo"}', "not a field"),
    ],
)
def test_the_admin_refuses_csv_settings_an_upload_cannot_use(admin_client, field, value, why):
    vendor = MeterVendorFactory()

    response = admin_client.post(
        reverse("admin:metering_metervendor_change", args=[vendor.pk]),
        _form(vendor, **{field: value}),
    )

    assert response.status_code == 200  # the form again, with the error
    assert why in str(response.context["adminform"].form.errors[field])
    before = MeterVendorFactory.build()
    vendor.refresh_from_db()
    assert getattr(vendor, field) == getattr(before, field)  # nothing saved


def test_usable_settings_are_saved(admin_client):
    vendor = MeterVendorFactory()

    response = admin_client.post(
        reverse("admin:metering_metervendor_change", args=[vendor.pk]),
        _form(
            vendor,
            csv_time_zone="America/New_York",
            csv_encoding="latin-1",
            csv_columns='{"meter": "MeterNo", "read_at": "Time"}',
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    vendor.refresh_from_db()
    assert (vendor.csv_time_zone, vendor.csv_encoding) == ("America/New_York", "latin-1")
    assert vendor.csv_columns == {"meter": "MeterNo", "read_at": "Time"}


def test_full_clean_names_each_field():
    vendor = MeterVendorFactory.build(
        csv_time_zone="Mars/Olympus", csv_encoding="nope", csv_columns={"meter": 5}
    )

    with pytest.raises(ValidationError) as refused:
        vendor.full_clean(exclude=["code"])

    assert set(refused.value.message_dict) >= {"csv_time_zone", "csv_encoding", "csv_columns"}
