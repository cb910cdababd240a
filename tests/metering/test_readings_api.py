import datetime as dt
from decimal import Decimal

import orjson
import pytest
from django.test import TestCase
from django.utils import timezone
from rest_framework.test import APIClient

from metering.models import IngestBatch, Reading, ReadingConflict
from metering.vendors import vendor_key_create, vendor_key_revoke
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def vendor():
    return MeterVendorFactory()


@pytest.fixture
def client(vendor):
    _, key = vendor_key_create(vendor=vendor, label="test")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return api


def reading(serial, hour, energy="1000.5", **extra):
    at = dt.datetime(2026, 11, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))) + dt.timedelta(
        hours=hour
    )
    return {
        "meter": serial,
        "read_at": at.isoformat(),
        "energy": energy,
        "energy_unit": "kWh",
        "volume_m3": "12.5",
        **extra,
    }


def post(client, rows, **headers):
    """POST a batch; the task queued on commit runs (eagerly) as after a real commit."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(
            "/api/v1/readings/", data=orjson.dumps(rows), content_type="application/json", **headers
        )


class TestReadingBatchApi:
    def test_accepted_batch_is_stored_with_counts(self, client, vendor):
        meter = HeatMeterFactory(vendor=vendor)
        rows = [
            reading(
                meter.serial,
                h,
                energy=str(1000 + h),
                flow_temp_c=70,
                return_temp_c="38.5",
                status_code=0,
            )
            for h in range(3)
        ]

        response = post(client, rows)

        assert response.status_code == 202, response.json()
        batch = IngestBatch.objects.get(pk=response.json()["batch"])
        assert batch.state == "done"
        assert (batch.accepted, batch.duplicate, batch.conflicting, batch.rejected) == (3, 0, 0, 0)
        stored = list(Reading.objects.filter(meter=meter).order_by("read_at"))
        assert [r.energy_kwh for r in stored] == [Decimal("1000"), Decimal("1001"), Decimal("1002")]
        assert stored[0].read_at == dt.datetime(2026, 10, 31, 23, tzinfo=dt.UTC)
        assert stored[0].return_temp_c == Decimal("38.5")
        status = client.get(f"/api/v1/readings/batches/{batch.pk}/").json()
        assert status["state"] == "done"
        assert status["accepted"] == 3

    def test_units_are_normalised_to_kwh_and_original_kept(self, client, vendor):
        meter = HeatMeterFactory(vendor=vendor)
        rows = [
            reading(meter.serial, 0, energy="3.6", energy_unit="GJ"),
            reading(meter.serial, 1, energy="1000.001", energy_unit="MWh"),
            reading(meter.serial, 2, energy="1000001500", energy_unit="Wh"),
        ]
        rows[0]["energy_unit"] = "GJ"
        rows[1]["energy_unit"] = "MWh"
        rows[2]["energy_unit"] = "Wh"
        assert post(client, rows).status_code == 202
        stored = list(Reading.objects.filter(meter=meter).order_by("read_at"))
        assert [r.energy_kwh for r in stored] == [
            Decimal("1000"),
            Decimal("1000001"),
            Decimal("1000001.5"),
        ]
        assert stored[0].energy_value == Decimal("3.6")
        assert stored[0].energy_unit == "GJ"

    def test_same_reading_again_is_a_duplicate_and_different_values_a_conflict(
        self, client, vendor
    ):
        meter = HeatMeterFactory(vendor=vendor)
        assert post(client, [reading(meter.serial, 0), reading(meter.serial, 1)]).status_code == 202

        response = post(
            client,
            [
                reading(meter.serial, 0),
                reading(meter.serial, 1, energy="999"),
                reading(meter.serial, 2),
            ],
        )

        batch = IngestBatch.objects.get(pk=response.json()["batch"])
        assert (batch.accepted, batch.duplicate, batch.conflicting) == (1, 1, 1)
        assert Reading.objects.filter(meter=meter).count() == 3
        original = Reading.objects.get(meter=meter, read_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
        assert original.energy_kwh == Decimal("1000.5")  # untouched
        conflict = ReadingConflict.objects.get()
        assert conflict.row == 1
        assert conflict.state == "open"
        assert Decimal(str(conflict.incoming["energy_value"])) == Decimal("999")

    def test_idempotency_key_replays_the_first_answer(self, client, vendor):
        meter = HeatMeterFactory(vendor=vendor)
        first = post(client, [reading(meter.serial, 0)], HTTP_IDEMPOTENCY_KEY="abc-1")
        again = post(client, [reading(meter.serial, 0)], HTTP_IDEMPOTENCY_KEY="abc-1")
        assert again.status_code == 202
        assert again.json() == first.json()
        assert again["Idempotent-Replayed"] == "true"
        assert IngestBatch.objects.count() == 1
        other_body = post(client, [reading(meter.serial, 5)], HTTP_IDEMPOTENCY_KEY="abc-1")
        assert other_body.status_code == 422
        assert other_body.json()["code"] == "idempotency_key_reused"

    def test_other_vendors_and_unknown_meters_are_refused_per_row(self, client, vendor):
        mine = HeatMeterFactory(vendor=vendor)
        theirs = HeatMeterFactory(vendor=MeterVendorFactory())
        response = post(
            client, [reading(mine.serial, 0), reading(theirs.serial, 0), reading("NOPE", 0)]
        )
        batch = IngestBatch.objects.get(pk=response.json()["batch"])
        assert (batch.accepted, batch.rejected) == (1, 2)
        assert [(e["row"], e["code"]) for e in batch.errors] == [
            (1, "meter_not_assigned"),
            (2, "unknown_meter"),
        ]
        assert not Reading.objects.filter(meter=theirs).exists()

    def test_a_revoked_key_is_refused(self, vendor):
        api_key, key = vendor_key_create(vendor=vendor)
        vendor_key_revoke(api_key=api_key, now=timezone.now())
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        assert post(api, [reading("1", 0)]).status_code == 401
        assert api_key.key_hash != key
        assert key not in api_key.key_hash

    def test_staff_session_cannot_post_as_vendor(self, admin_user):
        api = APIClient()
        api.force_authenticate(admin_user)
        assert post(api, [reading("1", 0)]).status_code == 403


class TestVendorMeters:
    def test_a_vendor_lists_its_own_meters_with_installation_and_latest_reading(
        self, client, vendor
    ):
        from metering.installations import meter_install
        from tests.customers.factories import BuildingInterfaceUnitFactory

        installed = HeatMeterFactory(vendor=vendor, serial="A-2")
        spare = HeatMeterFactory(vendor=vendor, serial="A-1")
        theirs = HeatMeterFactory(vendor=MeterVendorFactory(), serial="B-1")
        meter_install(
            meter=installed,
            unit=BuildingInterfaceUnitFactory(),
            installed_at=dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
        )
        assert (
            post(client, [reading("A-2", 0), reading("A-2", 5, energy="1001")]).status_code == 202
        )
        stored = Reading.objects.get(
            meter=installed, read_at=dt.datetime(2026, 11, 1, 4, tzinfo=dt.UTC)
        )

        listed = client.get("/api/v1/readings/meters/")

        assert listed.status_code == 200
        rows = listed.json()["results"]
        assert [(r["serial"], r["installed"]) for r in rows] == [("A-1", False), ("A-2", True)]
        assert rows[0]["last_read_at"] is None
        assert dt.datetime.fromisoformat(rows[1]["last_read_at"]) == stored.read_at
        assert dt.datetime.fromisoformat(rows[1]["last_received_at"]) == stored.received_at
        assert set(rows[1]) == {
            "serial", "maker", "model", "register_unit", "resolution", "register_max",
            "volume_register_max", "installed", "last_read_at", "last_received_at",
        }  # fmt: skip
        one = client.get("/api/v1/readings/meters/?serial=A-1").json()["results"]
        assert [r["serial"] for r in one] == [spare.serial]
        # another vendor's meter is not there, even asked for by serial
        assert client.get(f"/api/v1/readings/meters/?serial={theirs.serial}").json()["count"] == 0

    def test_after_a_meter_moves_vendor_the_new_one_sees_only_its_own_deliveries(
        self, client, vendor
    ):
        before = MeterVendorFactory()
        _, key = vendor_key_create(vendor=before, label="old head-end")
        old = APIClient()
        old.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        meter = HeatMeterFactory(vendor=before, serial="M-1")
        assert post(old, [reading("M-1", 0), reading("M-1", 6, energy="1001")]).status_code == 202
        meter.vendor = vendor
        meter.save(update_fields=["vendor"])

        row = client.get("/api/v1/readings/meters/").json()["results"][0]
        assert (row["serial"], row["last_read_at"], row["last_received_at"]) == ("M-1", None, None)

        assert post(client, [reading("M-1", 3, energy="1000.8")]).status_code == 202
        row = client.get("/api/v1/readings/meters/").json()["results"][0]
        # its own reading at 03:00, not the old vendor's later one at 06:00
        mine = Reading.objects.get(meter=meter, read_at=dt.datetime(2026, 11, 1, 2, tzinfo=dt.UTC))
        assert dt.datetime.fromisoformat(row["last_read_at"]) == mine.read_at
        assert dt.datetime.fromisoformat(row["last_received_at"]) == mine.received_at

    def test_a_vendor_has_one_meter_per_serial(self, vendor):
        """A delivery names its meter by serial alone: two of one vendor's meters with one
        serial (two makers) took each delivered reading twice, once on each meter (one
        row: accepted 2)."""
        from django.core.exceptions import ValidationError
        from django.db import IntegrityError, transaction

        HeatMeterFactory(vendor=vendor, serial="S-1", maker="Kamstrup")
        twin = HeatMeterFactory.build(vendor=vendor, serial="S-1", maker="Diehl")

        with pytest.raises(ValidationError, match="delivers a meter with this serial"):
            twin.full_clean()
        with pytest.raises(IntegrityError), transaction.atomic():
            twin.save()
        # another vendor's meter, or one with no vendor yet, may carry the serial
        HeatMeterFactory(vendor=MeterVendorFactory(), serial="S-1", maker="Diehl")
        HeatMeterFactory(vendor=None, serial="S-1", maker="Sensus")
        HeatMeterFactory(vendor=None, serial="S-1", maker="Itron")

    def test_only_a_vendor_key_lists_meters(self, admin_user):
        assert APIClient().get("/api/v1/readings/meters/").status_code == 401
        staff = APIClient()
        staff.force_authenticate(admin_user)
        assert staff.get("/api/v1/readings/meters/").status_code == 403


class TestBadJsonInput:
    @pytest.mark.parametrize(
        ("body", "status", "codes"),
        [
            (b"{not json", 400, ["malformed_json"]),
            (b"[]", 422, ["empty"]),
            (b'{"a": 1}', 422, ["not_a_list"]),
            (
                orjson.dumps(
                    [
                        {
                            "meter": "1",
                            "read_at": "2026-11-01T00:00:00",
                            "energy": 1,
                            "energy_unit": "kWh",
                            "volume_m3": 1,
                        }
                    ]
                ),
                422,
                ["missing_offset"],
            ),
            (
                orjson.dumps(
                    [
                        {
                            "meter": "1",
                            "read_at": "2026-11-01T00:00:00Z",
                            "energy": "12,5x",
                            "energy_unit": "kWh",
                            "volume_m3": -1,
                            "colour": "red",
                        }
                    ]
                ),
                422,
                ["unknown_field", "not_a_number", "negative"],
            ),
            (
                orjson.dumps(
                    [
                        {
                            "meter": "1",
                            "read_at": "2026-11-01T00:00:00Z",
                            "energy": 1e20,
                            "energy_unit": "BTU",
                            "volume_m3": 1,
                            "flow_temp_c": 900,
                        }
                    ]
                ),
                422,
                ["invalid_choice", "out_of_range", "out_of_range"],
            ),
            (
                orjson.dumps([{"read_at": "2026-11-01T00:00:00Z"}]),
                422,
                ["required", "required", "required", "required"],
            ),
        ],
    )
    def test_shape_errors_are_itemised_and_nothing_is_stored(self, client, body, status, codes):
        response = client.post("/api/v1/readings/", data=body, content_type="application/json")
        assert response.status_code == status, response.json()
        assert sorted(e["code"] for e in response.json()["errors"]) == sorted(codes)
        assert IngestBatch.objects.count() == 0

    def test_error_items_name_row_and_field(self, client, vendor):
        meter = HeatMeterFactory(vendor=vendor)
        rows = [reading(meter.serial, 0), reading(meter.serial, 1, power_kw="abc")]
        body = client.post(
            "/api/v1/readings/", data=orjson.dumps(rows), content_type="application/json"
        ).json()
        assert body["errors"] == [
            {
                "row": 1,
                "field": "power_kw",
                "code": "not_a_number",
                "message": "power_kw must be a number, got 'abc'.",
            }
        ]
        assert Reading.objects.count() == 0

    def test_duplicate_rows_inside_one_batch_are_refused(self, client, vendor):
        meter = HeatMeterFactory(vendor=vendor)
        response = post(
            client, [reading(meter.serial, 0), reading(meter.serial, 1), reading(meter.serial, 0)]
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["row"] == 2
        assert response.json()["errors"][0]["code"] == "duplicate_in_batch"
        assert Reading.objects.count() == 0

    def test_oversize_body_is_413(self, client, vendor):
        rows = [reading("1", h) for h in range(10_001)]
        response = post(client, rows)
        assert response.status_code == 413
        huge = b"[" + b" " * (9 * 1024 * 1024) + b"]"
        response = client.post("/api/v1/readings/", data=huge, content_type="application/json")
        assert response.status_code == 413
        assert IngestBatch.objects.count() == 0

    def test_wrong_content_type_is_415(self, client):
        response = client.post("/api/v1/readings/", data="meter;x", content_type="text/csv")
        assert response.status_code == 415


class TestThrottle:
    def test_each_vendor_has_its_own_request_budget(self, settings, vendor):
        from django.core.cache import cache

        cache.clear()
        from rest_framework.settings import api_settings

        from metering.vendors import VendorRateThrottle

        VendorRateThrottle.THROTTLE_RATES = {
            **api_settings.DEFAULT_THROTTLE_RATES,
            "vendor": "2/min",
        }
        try:
            _, key = vendor_key_create(vendor=vendor)
            api = APIClient()
            api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
            codes = [api.get("/api/v1/readings/batches/999/").status_code for _ in range(3)]
            assert codes == [404, 404, 429]
            other = APIClient()
            other.credentials(
                HTTP_AUTHORIZATION=f"Api-Key {vendor_key_create(vendor=MeterVendorFactory())[1]}"
            )
            assert other.get("/api/v1/readings/batches/999/").status_code == 404
        finally:
            VendorRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
            cache.clear()
