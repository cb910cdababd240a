"""After a meter moves from head-end A to head-end B, B re-sends recent history: the rows
A delivered already are duplicates (stored once, A's), and still deliveries of B's, so
B's ``last_read_at`` (what staff and B see of B's deliveries) moves with them."""

import datetime as dt

import pytest
from rest_framework.test import APIClient

from metering.models import IngestBatch, Reading
from metering.selectors import vendor_meters
from metering.vendors import vendor_key_create
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory, deliver_json, ingest_file

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
A_AT = dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)  # when A's delivery arrived
B_AT = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)  # B's


def _rows(hours, bump=0):
    return [(T0 + dt.timedelta(hours=h), str(1000 + h + bump), "12.5") for h in hours]


def _latest(vendor):
    meter = vendor_meters(vendor=vendor, now=B_AT).get()
    return meter.last_read_at, meter.last_received_at


@pytest.fixture
def moved():
    """Meter M-1 delivered by A for 00:00–06:00, then assigned to B."""
    a, b = MeterVendorFactory(), MeterVendorFactory(csv_separator=",", csv_decimal_comma=False)
    meter = HeatMeterFactory(vendor=a, serial="M-1")
    deliver_json(a, meter, _rows(range(7)), received_at=A_AT)
    meter.vendor = b
    meter.save(update_fields=["vendor"])
    return a, b, meter


class TestLastReadOfTheNewVendor:
    def test_a_resent_duplicate_counts_for_the_new_vendor_without_being_stored_again(self, moved):
        a, b, meter = moved
        first = set(Reading.objects.values_list("read_at", "batch_id", "received_at"))
        assert _latest(b) == (None, None)

        deliver_json(b, meter, _rows(range(7)), received_at=B_AT)

        batch = IngestBatch.objects.get(vendor=b)
        assert (batch.state, batch.accepted, batch.duplicate) == ("done", 0, 7)
        assert set(Reading.objects.values_list("read_at", "batch_id", "received_at")) == first
        assert _latest(b) == (T0 + dt.timedelta(hours=6), B_AT)
        assert not vendor_meters(vendor=a, now=B_AT).exists()  # A no longer delivers it

    def test_a_conflicting_resend_is_not_a_duplicate_and_does_not_count(self, moved):
        _, b, meter = moved

        deliver_json(b, meter, [*_rows(range(4)), *_rows([6], bump=5)], received_at=B_AT)

        batch = IngestBatch.objects.get(vendor=b)
        assert (batch.duplicate, batch.conflicting) == (4, 1)
        assert _latest(b) == (T0 + dt.timedelta(hours=3), B_AT)

    def test_the_later_of_its_own_readings_and_its_duplicates_counts(self, moved):
        _, b, meter = moved
        own_at = dt.datetime(2026, 11, 2, 10, tzinfo=dt.UTC)
        deliver_json(b, meter, _rows(range(2)), received_at=B_AT)  # duplicates up to 01:00
        deliver_json(b, meter, _rows([9]), received_at=own_at)  # its own 09:00

        assert _latest(b) == (T0 + dt.timedelta(hours=9), own_at)

        later = dt.datetime(2026, 11, 2, 11, tzinfo=dt.UTC)
        deliver_json(b, meter, _rows([6, 7, 8]), received_at=later)  # 06:00 a duplicate

        assert _latest(b) == (T0 + dt.timedelta(hours=9), own_at)

    @pytest.mark.parametrize("path", ["fast", "python"])
    def test_a_resent_file_counts_too(self, moved, path, monkeypatch):
        _, b, _meter = moved
        lines = ["meter,read_at,energy,volume_m3"] + [
            f"M-1,{at.isoformat()},{energy},{volume}" for at, energy, volume in _rows(range(5))
        ]

        batch = ingest_file(b, "\n".join(lines) + "\n", path=path, monkeypatch=monkeypatch)

        assert (batch.state, batch.accepted, batch.duplicate) == ("done", 0, 5)
        assert _latest(b) == (T0 + dt.timedelta(hours=4), batch.received_at)

    def test_the_vendor_api_shows_it(self, moved):
        _, b, meter = moved
        deliver_json(b, meter, _rows(range(7)), received_at=B_AT)
        _, key = vendor_key_create(vendor=b)
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")

        row = api.get("/api/v1/readings/meters/").json()["results"][0]

        assert dt.datetime.fromisoformat(row["last_read_at"]) == T0 + dt.timedelta(hours=6)
        assert dt.datetime.fromisoformat(row["last_received_at"]) == B_AT
