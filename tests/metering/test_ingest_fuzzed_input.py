"""Input found by fuzzing the vendor API: refused with itemised errors, never a 500, and
no batch left waiting in 'received' or 'processing'."""

import datetime as dt
import random
from decimal import Decimal

import orjson
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import TestCase
from django.utils import timezone
from rest_framework.test import APIClient

from metering.ingest import batches, store
from metering.ingest.batches import readings_batch_process
from metering.ingest.rows import (
    DECIMAL_PLACES,
    ENERGY_LIMIT_BY_UNIT,
    NUMERIC_LIMITS,
    json_rows_fast,
    tsv_rows,
    validate_csv_rows,
    validate_json_rows,
)
from metering.models import KWH_PER_UNIT, IngestBatch, Reading
from metering.vendors import vendor_key_create
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory, second_store_chunk_fails

pytestmark = pytest.mark.django_db


@pytest.fixture
def vendor():
    return MeterVendorFactory()


@pytest.fixture
def client(vendor):
    _, key = vendor_key_create(vendor=vendor, label="fuzz")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return api


def row(serial="DEMO-68000000", **change):
    return {
        "meter": serial,
        "read_at": "2026-11-01T00:00:00+01:00",
        "energy": "1",
        "energy_unit": "kWh",
        "volume_m3": "1",
        **change,
    }


def post(client, rows):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(
            "/api/v1/readings/", data=orjson.dumps(rows), content_type="application/json"
        )


def errors_of(response):
    return [(e.get("row"), e.get("field"), e["code"]) for e in response.json()["errors"]]


def file_batch(vendor, text: str) -> IngestBatch:
    batch = IngestBatch.objects.create(vendor=vendor, source="file", received_at=timezone.now())
    batch.file.save("fuzz.csv", ContentFile(text.encode()))
    readings_batch_process(batch_id=batch.pk, now=timezone.now(), chunk_rows=3)
    batch.refresh_from_db()
    return batch


@pytest.fixture
def comma_vendor():
    """Decimal comma, local times without offset, energy unit column: the text stage."""
    return MeterVendorFactory(
        csv_columns={}, csv_separator=";", csv_decimal_comma=True, csv_time_zone="Europe/Berlin"
    )


@pytest.fixture
def point_vendor():
    """Point decimal with ISO timestamps: PostgreSQL's typed COPY stage (CHECK)."""
    return MeterVendorFactory(
        csv_columns={}, csv_separator=",", csv_decimal_comma=False, csv_time_zone="UTC"
    )


COMMA_HEADER = "meter;read_at;energy;energy_unit;volume_m3;flow_temp_c;return_temp_c;status_code\n"
POINT_HEADER = "meter,read_at,energy,energy_unit,volume_m3,power_kw\n"


class TestReadAtAtTheEdgeOfTheCalendar:
    @pytest.mark.parametrize("read_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
    def test_json_is_a_row_error_not_a_500(self, client, read_at):
        response = post(client, [row(), row(read_at=read_at)])
        assert response.status_code == 422, response.content
        assert errors_of(response) == [(1, "read_at", "out_of_range")]
        assert IngestBatch.objects.count() == 0

    @pytest.mark.parametrize("read_at", ["0001-01-01 00:30", "9999-12-31 23:59"])
    def test_a_csv_line_fails_the_file_with_its_row(self, comma_vendor, read_at):
        meter = HeatMeterFactory(vendor=comma_vendor)
        text = COMMA_HEADER + (
            f"{meter.serial};2026-01-01 00:30;1;kWh;1;;;\n{meter.serial};{read_at};1;kWh;1;;;\n"
        )
        batch = file_batch(comma_vendor, text)
        assert batch.state == "failed"
        assert [(e["row"], e["field"], e["code"]) for e in batch.errors] == [
            (1, "read_at", "out_of_range")
        ]
        assert Reading.objects.count() == 0

    def test_the_validator_refuses_years_next_to_the_range_in_any_zone(self):
        rows = [
            ["A", "1999-12-31 23:30", "1", "1"],  # 22:30 UTC: before 2000
            ["A", "2100-01-01 00:30", "1", "1"],  # 2099-12-31 23:30 UTC: inside
            ["A", "0001-01-01 00:00", "1", "1"],
            ["A", "9999-12-31 23:59", "1", "1"],
        ]
        _, errors = validate_csv_rows(
            rows,
            header=["meter", "read_at", "energy", "volume_m3"],
            mapping={},
            time_zone="Europe/Berlin",
            decimal_comma=False,
            energy_unit="kWh",
        )
        assert [(e.row, e.code) for e in errors.items] == [
            (0, "out_of_range"),
            (2, "out_of_range"),
            (3, "out_of_range"),
        ]


class TestControlCharactersInText:
    @pytest.mark.parametrize("serial", ["A\u0000B", "A\tB", "A\nB", "\u0000"])
    def test_json_serial_is_a_row_error(self, client, serial):
        response = post(client, [row(), row(serial=serial, read_at="2026-11-01T01:00:00+01:00")])
        assert response.status_code == 422, response.content
        assert errors_of(response) == [(1, "meter", "invalid")]
        assert IngestBatch.objects.count() == 0

    @pytest.mark.parametrize(
        ("change", "field", "code"),
        [
            ({"energy_unit": "kWh\u0000"}, "energy_unit", "invalid_choice"),
            ({"energy": "1\u0000"}, "energy", "not_a_number"),
            ({"status_code": "1\u0000"}, "status_code", "invalid"),
            ({"read_at": "2026-11-01T00:00:00+01:00\u0000"}, "read_at", "invalid_datetime"),
            ({"read_at": "2026-11-01\u000000:00+01:00"}, "read_at", "invalid_datetime"),
            ({"\u0000": 1}, "\\x00", "unknown_field"),
        ],
    )
    def test_other_text_fields_with_nul_are_row_errors(self, client, change, field, code):
        response = post(client, [row(**change)])
        assert response.status_code == 422, response.content
        assert errors_of(response) == [(0, field, code)]

    @pytest.mark.parametrize("value", ["A\u0000B", "A\u0001B"])
    def test_a_csv_serial_fails_the_file_with_its_row(self, point_vendor, value):
        meter = HeatMeterFactory(vendor=point_vendor)
        text = POINT_HEADER + (
            f"{meter.serial},2026-09-01T00:00:00Z,1,kWh,1,\n{value},2026-09-01T01:00:00Z,1,kWh,1,\n"
        )
        batch = file_batch(point_vendor, text)
        assert batch.state == "failed"
        assert [(e["row"], e["field"], e["code"]) for e in batch.errors] == [
            (1, "meter", "invalid")
        ]
        assert Reading.objects.count() == 0

    def test_a_nul_in_another_csv_field_fails_the_file_and_the_errors_are_stored(
        self, comma_vendor
    ):
        meter = HeatMeterFactory(vendor=comma_vendor)
        text = COMMA_HEADER + (
            f"{meter.serial};2026-01-01 00:30;1\u0000;kWh\u0000;1;;;7\u0000\n"
            f"{meter.serial};2026-01-01 01:30\u0000;1;kWh;1;;;\n"
        )
        batch = file_batch(comma_vendor, text)
        assert batch.state == "failed"
        assert [(e["row"], e["field"], e["code"]) for e in batch.errors] == [
            (0, "energy_unit", "invalid_choice"),
            (0, "energy", "not_a_number"),
            (0, "status_code", "invalid"),
            (1, "read_at", "invalid_datetime"),
        ]
        assert Reading.objects.count() == 0

    def test_an_idempotency_key_with_nul_is_a_400(self, client, point_vendor):
        with TestCase.captureOnCommitCallbacks(execute=True):
            response = client.post(
                "/api/v1/readings/",
                data=orjson.dumps([row()]),
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY="job\u00007",
            )
        assert response.status_code == 400, response.content
        assert errors_of(response) == [(None, "Idempotency-Key", "invalid")]
        with TestCase.captureOnCommitCallbacks(execute=True):
            response = client.post(
                "/api/v1/readings/files/",
                {"file": SimpleUploadedFile("a.csv", POINT_HEADER.encode(), "text/csv")},
                format="multipart",
                HTTP_IDEMPOTENCY_KEY="job\u00007",
            )
        assert response.status_code == 400, response.content
        assert IngestBatch.objects.count() == 0

    def test_control_characters_are_left_out_of_a_file_name(self, vendor):
        batch, _ = batches.readings_file_submit(
            vendor=vendor,
            content=b"meter;read_at;energy;volume_m3\n",
            file_name="export\u0000\u0007.csv",
            received_at=timezone.now(),
        )
        assert IngestBatch.objects.get(pk=batch.pk).file_name == "export.csv"

    def test_the_meter_list_refuses_a_nul_serial_with_400(self, client):
        response = client.get("/api/v1/readings/meters/?serial=%00")
        assert response.status_code == 400, response.content
        assert [e["field"] for e in response.json()["errors"]] == ["serial"]
        assert client.get("/api/v1/readings/meters/?serial=nope").json()["count"] == 0


class TestNumbersThatDoNotFitTheirColumn:
    @pytest.mark.parametrize(
        ("change", "field", "code"),
        [
            ({"energy": "1e20000"}, "energy", "out_of_range"),
            ({"energy": "1e-99999999999999999999"}, "energy", "out_of_range"),
            ({"energy": "0e99999999999999999999"}, "energy", "out_of_range"),
            ({"energy": "1" + "0" * 20000}, "energy", "out_of_range"),
            ({"energy": "2e11", "energy_unit": "MWh"}, "energy", "out_of_range"),
            ({"energy": 4e11, "energy_unit": "GJ"}, "energy", "out_of_range"),
            # digits of other scripts: float() takes them, PostgreSQL's COPY does not
            ({"energy": "\u0661\u0662\u0663"}, "energy", "not_a_number"),
            ({"volume_m3": "1.\u0665"}, "volume_m3", "not_a_number"),
        ],
    )
    def test_json_is_a_row_error_naming_the_field(self, client, change, field, code):
        response = post(client, [row(), row(read_at="2026-11-01T01:00:00+01:00", **change)])
        assert response.status_code == 422, response.content
        assert errors_of(response) == [(1, field, code)]
        assert IngestBatch.objects.count() == 0
        assert len(response.content) < 2000  # a 20,000-digit value is not echoed in full

    def test_more_decimals_than_the_column_holds_are_rounded_half_up(self, client, vendor):
        """A vendor's float noise or unit conversion is a reading, not an error: rounded to
        the column (as the database would), and 1e-20000 is simply 0."""
        meter = HeatMeterFactory(vendor=vendor)
        rows = [
            row(meter.serial, energy=0.1 + 0.2, volume_m3="0.00005", flow_temp_c=70.125),
            row(
                meter.serial,
                read_at="2026-11-01T01:00:00+01:00",
                energy="1.2345675",
                energy_unit="MWh",
                volume_m3="1e-20000",
                power_kw=1e-05,
            ),
        ]
        response = post(client, rows)
        assert response.status_code == 202, response.content
        assert IngestBatch.objects.get().state == "done"
        first, second = Reading.objects.filter(meter=meter).order_by("read_at")
        # 0.30000000000000004 → 0.3; 0.00005 m³ → 0.0001; 70.125 °C → 70.13
        assert (first.energy_value, first.volume_m3, first.flow_temp_c) == (
            Decimal("0.3"),
            Decimal("0.0001"),
            Decimal("70.13"),
        )
        # 1.2345675 MWh → 1.234568 (half up); 1e-20000 m³ → 0; 0.00001 kW → 0.000
        assert (second.energy_value, second.volume_m3, second.power_kw) == (
            Decimal("1.234568"),
            Decimal("0"),
            Decimal("0"),
        )

    def test_what_fits_is_stored_exactly(self, client, vendor):
        meter = HeatMeterFactory(vendor=vendor)
        rows = [
            row(meter.serial, energy="1.5000000000e-5", volume_m3="9999.12340000"),
            row(
                meter.serial,
                read_at="2026-11-01T01:00:00+01:00",
                energy="99999999999.999",
                energy_unit="MWh",
                volume_m3="0e-20000",
                flow_temp_c="-0.50",
            ),
        ]
        response = post(client, rows)
        assert response.status_code == 202, response.content
        assert IngestBatch.objects.get().state == "done"
        small, big = Reading.objects.filter(meter=meter).order_by("read_at")
        assert (small.energy_value, small.volume_m3) == (Decimal("0.000015"), Decimal("9999.1234"))
        assert big.energy_kwh == Decimal("99999999999999")
        assert (big.volume_m3, big.flow_temp_c) == (Decimal("0"), Decimal("-0.5"))

    @pytest.mark.parametrize(
        ("line", "field", "code"),
        [
            ("2026-01-01 00:30;1e20000;kWh;1;;;", "energy", "out_of_range"),
            ("2026-01-01 00:30;100000000000;MWh;1;;;", "energy", "out_of_range"),
        ],
    )
    def test_a_decimal_comma_csv_line_fails_the_file_with_its_row(
        self, comma_vendor, line, field, code
    ):
        meter = HeatMeterFactory(vendor=comma_vendor)
        text = COMMA_HEADER + f"{meter.serial};2026-01-01 01:30;1;kWh;1;;;\n{meter.serial};{line}\n"
        batch = file_batch(comma_vendor, text)
        assert batch.state == "failed"
        assert [(e["row"], e["field"], e["code"]) for e in batch.errors] == [(1, field, code)]
        assert Reading.objects.count() == 0

    @pytest.mark.parametrize(
        ("values", "field", "code"),
        [
            ("1e20000,kWh,1,", "energy", "out_of_range"),
            ("360000000000,GJ,1,", "energy", "out_of_range"),
        ],
    )
    def test_a_point_decimal_csv_line_fails_the_file_with_its_row(
        self, point_vendor, values, field, code
    ):
        # on PostgreSQL COPY would take most of these (or round them) without the CHECK
        meter = HeatMeterFactory(vendor=point_vendor)
        text = POINT_HEADER + (
            f"{meter.serial},2026-09-01T00:00:00Z,1,kWh,1,\n"
            f"{meter.serial},2026-09-01T01:00:00Z,{values}\n"
        )
        batch = file_batch(point_vendor, text)
        assert batch.state == "failed"
        assert [(e["row"], e["field"], e["code"]) for e in batch.errors] == [(1, field, code)]
        assert Reading.objects.count() == 0

    def test_files_round_more_decimals_than_the_column_holds(self, point_vendor, comma_vendor):
        point_meter = HeatMeterFactory(vendor=point_vendor)
        point = file_batch(
            point_vendor,
            POINT_HEADER + f"{point_meter.serial},2026-09-01T00:00:00Z,1.0000005,kWh,0.00005,\n",
        )
        comma_meter = HeatMeterFactory(vendor=comma_vendor)
        comma = file_batch(
            comma_vendor, COMMA_HEADER + f"{comma_meter.serial};2026-01-01 01:30;1;kWh;1;70,125;;\n"
        )

        assert (point.state, comma.state) == ("done", "done"), (point.errors, comma.errors)
        stored = Reading.objects.get(meter=point_meter)
        assert (stored.energy_value, stored.volume_m3) == (Decimal("1.000001"), Decimal("0.0001"))
        assert Reading.objects.get(meter=comma_meter).flow_temp_c == Decimal("70.13")

    def test_point_decimal_trailing_zeros_and_unit_limits_that_fit_are_stored(self, point_vendor):
        meter = HeatMeterFactory(vendor=point_vendor)
        text = POINT_HEADER + (
            f"{meter.serial},2026-09-01T00:00:00Z,1.500000000,kWh,2.00000,0.5000\n"
            f"{meter.serial},2026-09-01T01:00:00Z,359999999999.999,GJ,3,\n"
        )
        batch = file_batch(point_vendor, text)
        assert (batch.state, batch.accepted) == ("done", 2), batch.errors
        first, second = Reading.objects.filter(meter=meter).order_by("read_at")
        assert (first.energy_value, first.volume_m3, first.power_kw) == (
            Decimal("1.5"),
            Decimal("2"),
            Decimal("0.5"),
        )
        assert second.energy_kwh < Decimal("1e14")


def test_the_limits_match_the_reading_columns():
    for field, places in DECIMAL_PLACES.items():
        column = Reading._meta.get_field("energy_value" if field == "energy" else field)
        assert column.decimal_places == places, field
        assert NUMERIC_LIMITS[field][1] <= 10 ** (column.max_digits - column.decimal_places)
    kwh = Reading._meta.get_field("energy_kwh")
    most = 10 ** (kwh.max_digits - kwh.decimal_places)
    for unit, factor in KWH_PER_UNIT.items():
        limit = min(NUMERIC_LIMITS["energy"][1], ENERGY_LIMIT_BY_UNIT.get(unit, float("inf")))
        assert Decimal(str(limit)) * factor <= most, unit


class TestBothLanesAgree:
    @pytest.mark.parametrize(
        "change",
        [
            {"meter": "A\u0000B"},
            {"meter": "A\u007fB"},
            {"read_at": "0001-01-01T00:00:00+01:00"},
            {"read_at": "9999-12-31T23:59:59-01:00"},
            {"energy": 2e11, "energy_unit": "MWh"},
        ],
    )
    def test_the_fast_lane_leaves_it_to_the_careful_lane_which_refuses_it(self, change):
        rows = [row(energy=1.5, volume_m3=2), row(**{"read_at": "2026-11-01T01:00:00Z", **change})]
        assert json_rows_fast(rows, max_rows=10) is None
        _, errors = validate_json_rows(rows, max_rows=10)
        assert [e.row for e in errors.items] == [1]

    @pytest.mark.parametrize("change", [{"power_kw": 0.0005}, {"flow_temp_c": 70.001}])
    def test_extra_decimals_go_to_the_careful_lane_which_rounds_them(self, change):
        rows = [row(energy=1.5, volume_m3=2), row(**{"read_at": "2026-11-01T01:00:00Z", **change})]
        assert json_rows_fast(rows, max_rows=10) is None
        _, errors = validate_json_rows(rows, max_rows=10)
        assert not errors

    def test_random_floats_the_fast_lane_takes_the_careful_lane_takes_the_same(self):
        generator = random.Random(20260101)
        for _ in range(200):
            places = generator.randint(0, 8)
            values = [
                round(generator.uniform(0, 10 ** generator.randint(0, 12)), places)
                for _ in range(len(DECIMAL_PLACES))
            ]
            rows = [
                row(
                    read_at=f"2026-11-01T{h:02d}:00:00Z",
                    energy=values[0],
                    volume_m3=values[1] % 1e11,
                    flow_temp_c=values[2] % 200,
                    return_temp_c=values[3] % 200,
                    power_kw=values[4] % 1e8,
                    flow_m3h=values[5] % 1e7,
                    flow_temp_m3c=values[6],
                    return_temp_m3c=values[7],
                    energy_unit=generator.choice(["Wh", "kWh", "MWh", "GJ"]),
                )
                for h in range(3)
            ]
            fast = json_rows_fast(rows, max_rows=10)
            careful, errors = validate_json_rows(rows, max_rows=10)
            if fast is None:
                continue  # the careful lane decides; nothing to compare
            assert not errors, (rows, errors.items)
            for quick, slow in zip(tsv_rows(fast), careful, strict=True):
                numbers = [None if v is None else Decimal(v) for v in (*quick[3:4], *quick[5:12])]
                assert numbers == [
                    None if v is None else Decimal(v) for v in (*slow[3:4], *slow[5:12])
                ]


class TestAFailureNeverLeavesABatchWaiting:
    def _break_storing(self, monkeypatch):
        def broken(*args, **kwargs):
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(batches, "store_rows", broken)
        monkeypatch.setattr(batches, "store_staged_postgres", broken)
        monkeypatch.setattr(store, "stage_to_readings", broken)

    def test_a_json_batch_ends_failed_with_the_reason_and_can_be_sent_again(
        self, client, vendor, monkeypatch
    ):
        meter = HeatMeterFactory(vendor=vendor)
        rows = [row(meter.serial), row(meter.serial, read_at="2026-11-01T01:00:00+01:00")]
        with monkeypatch.context() as patch:
            self._break_storing(patch)
            response = post(client, rows)
        assert response.status_code == 202
        batch = IngestBatch.objects.get(pk=response.json()["batch"])
        assert (batch.state, batch.accepted) == ("failed", 0)
        assert [e["code"] for e in batch.errors] == ["processing_failed"]
        assert batch.finished_at is not None
        status = client.get(f"/api/v1/readings/batches/{batch.pk}/").json()
        assert status["state"] == "failed"
        assert "Deliver the readings again" in status["errors"][0]["message"]
        assert "disk on fire" not in status["errors"][0]["message"]
        # the task running again (a redelivered message) leaves a failed batch alone
        assert readings_batch_process(batch_id=batch.pk, now=timezone.now()).state == "failed"

        again = post(client, rows)
        assert IngestBatch.objects.get(pk=again.json()["batch"]).accepted == 2
        assert Reading.objects.filter(meter=meter).count() == 2

    def test_a_lost_database_connection_leaves_the_batch_for_the_next_sweep(
        self, vendor, monkeypatch
    ):
        """Not the batch's fault: it is not failed (the vendor need not resend); processing
        it again, as beat's sweep does, stores it once."""
        from django.db import OperationalError

        meter = HeatMeterFactory(vendor=vendor)
        body = orjson.dumps(
            [row(meter.serial), row(meter.serial, read_at="2026-11-01T01:00:00+01:00")]
        )
        with TestCase.captureOnCommitCallbacks(execute=False):
            batch, _ = batches.readings_batch_submit(
                vendor=vendor, body=body, received_at=timezone.now()
            )

        def gone(*args, **kwargs):
            raise OperationalError("server closed the connection unexpectedly")

        with monkeypatch.context() as patch:
            patch.setattr(batches, "store_rows", gone)
            patch.setattr(batches, "store_staged_postgres", gone)
            with pytest.raises(OperationalError):
                readings_batch_process(batch_id=batch.pk, now=timezone.now())
        batch.refresh_from_db()
        assert batch.state in ("received", "processing")
        assert batch.errors == []

        done = readings_batch_process(batch_id=batch.pk, now=timezone.now())

        assert (done.state, done.accepted) == ("done", 2)
        assert Reading.objects.filter(meter=meter).count() == 2

    def test_a_file_failing_half_way_ends_failed_and_a_resend_doubles_nothing(
        self, point_vendor, monkeypatch
    ):
        meter = HeatMeterFactory(vendor=point_vendor)
        text = POINT_HEADER + "".join(
            f"{meter.serial},2026-09-01T{h:02d}:00:00Z,{h},kWh,1,\n" for h in range(7)
        )
        with monkeypatch.context() as patch:
            second_store_chunk_fails(patch)
            batch = file_batch(point_vendor, text)
        assert (batch.state, batch.progress, batch.accepted) == ("failed", 3, 3)
        assert [e["code"] for e in batch.errors] == ["processing_failed"]
        assert "rows stored: 3 of 7" in batch.errors[0]["message"]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT to_regclass(%s)", [f"metering_stage_typed_{batch.pk}"])
                assert cursor.fetchone() == (None,)  # no stage table left behind

        again = file_batch(point_vendor, text)
        assert (again.state, again.accepted, again.duplicate) == ("done", 4, 3)
        assert Reading.objects.filter(meter=meter).count() == 7

    def test_a_batch_that_fails_before_it_is_claimed_does_not_stay_received(
        self, vendor, monkeypatch
    ):
        batch = IngestBatch.objects.create(
            vendor=vendor, source="api", payload="garbage", row_count=1, received_at=timezone.now()
        )
        monkeypatch.setattr(
            batches, "_process", lambda **kwargs: (_ for _ in ()).throw(ValueError("bug"))
        )
        done = readings_batch_process(batch_id=batch.pk, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        assert (done.state, done.error_count) == ("failed", 1)
        assert done.started_at == done.finished_at == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_a_header_name_with_nul_is_stored_in_the_errors_without_failing(point_vendor):
    # the first line passes the check at submission; the quoted name runs on to line 2
    text = 'meter,read_at,energy,"volume_m3\n\u0000"\nA,2026-09-01T00:00:00Z,1,1\n'
    batch = file_batch(point_vendor, text)
    assert batch.state == "failed"
    assert [(e["field"], e["code"]) for e in batch.errors][:2] == [
        ("volume_m3\n\\x00", "unknown_column"),
        ("volume_m3", "missing_column"),
    ]
