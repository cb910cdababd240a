import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import TestCase
from rest_framework.test import APIClient

from metering.models import IngestBatch, Reading
from metering.vendors import vendor_key_create
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory
from tests.retention import retention_years_since

pytestmark = pytest.mark.django_db


@pytest.fixture
def vendor():
    return MeterVendorFactory(
        csv_columns={
            "meter": "Målernr",
            "read_at": "Tidspunkt",
            "energy": "Energi",
            "volume_m3": "Volumen",
            "flow_temp_c": "Fremløb",
            "return_temp_c": "Retur",
        },
        csv_separator=";",
        csv_decimal_comma=True,
        csv_energy_unit="MWh",
        csv_time_zone="Europe/Copenhagen",
    )


@pytest.fixture
def client(vendor):
    _, key = vendor_key_create(vendor=vendor)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return api


HEADER = "Målernr;Tidspunkt;Energi;Volumen;Fremløb;Retur\n"


def upload(client, text, encoding="utf-8", name="export.csv"):
    data = text.encode(encoding) if isinstance(text, str) else text
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(
            "/api/v1/readings/files/",
            {"file": SimpleUploadedFile(name, data, "text/csv")},
            format="multipart",
        )


class TestCsvFiles:
    def test_vendor_mapping_decimal_comma_units_and_local_time(self, client, vendor):
        meter = HeatMeterFactory(vendor=vendor)
        text = (
            HEADER + f"{meter.serial};2026-03-29 01:00;12,345;1.234,5;70,5;38\n"
            f"{meter.serial};2026-03-29 03:00;12,350;1.234,6;;\n"
        )

        response = upload(client, text)

        assert response.status_code == 202, response.json()
        batch = IngestBatch.objects.get(pk=response.json()["batch"])
        assert (batch.state, batch.accepted) == ("done", 2)
        first, second = Reading.objects.filter(meter=meter).order_by("read_at")
        assert first.energy_kwh == Decimal("12345")  # MWh → kWh
        assert first.volume_m3 == Decimal("1234.5")
        assert first.flow_temp_c == Decimal("70.5")
        assert first.read_at == dt.datetime(2026, 3, 29, 0, tzinfo=dt.UTC)  # CET
        assert second.read_at == dt.datetime(2026, 3, 29, 1, tzinfo=dt.UTC)  # CEST after the jump

    def test_missing_and_unknown_columns_are_refused_at_once(self, client):
        response = upload(client, "Målernr;Tidspunkt;Farve\n1;2026-01-01 00:00;rød\n")
        assert response.status_code == 422
        codes = sorted((e["code"], e["field"]) for e in response.json()["errors"])
        assert codes == [
            ("missing_column", "Energi"),
            ("missing_column", "Volumen"),
            ("unknown_column", "Farve"),
        ]
        assert IngestBatch.objects.count() == 0

    def test_bad_rows_fail_the_whole_file_with_itemised_errors(self, client, vendor):
        meter = HeatMeterFactory(vendor=vendor)
        text = HEADER + (
            f"{meter.serial};2026-01-01 00:00;1,0;1,0;;\n"
            f"{meter.serial};yesterday;1,0;1,0;;\n"
            f"{meter.serial};2026-01-01 02:00;-5;1,0;;\n"
            f"{meter.serial};2026-01-01 03:00;abc;1,0;;\n"
            f"{meter.serial};2026-01-01 04:00;1,0\n"
            f"{meter.serial};2026-01-01 00:00;1,0;1,0;;\n"
        )
        batch = IngestBatch.objects.get(pk=upload(client, text).json()["batch"])
        assert batch.state == "failed"
        assert [(e["row"], e["code"]) for e in batch.errors] == [
            (1, "invalid_datetime"),
            (2, "negative"),
            (3, "not_a_number"),
            (4, "wrong_column_count"),
            (5, "duplicate_in_batch"),
        ]
        assert Reading.objects.count() == 0

    def test_wrong_encoding_is_reported_with_the_line(self, client, vendor):
        meter = HeatMeterFactory(vendor=vendor)
        data = (
            HEADER.encode()
            + f"{meter.serial};2026-01-01 00:00;1,0;1,0;;\n".encode()
            + "Ærø;x\n".encode("latin-1")
        )
        batch = IngestBatch.objects.get(pk=upload(client, data).json()["batch"])
        assert batch.state == "failed"
        assert batch.errors[0]["code"] == "encoding"
        assert batch.errors[0]["message"].startswith("Line 3")
        assert Reading.objects.count() == 0

    def test_malformed_and_empty_files(self, client):
        assert upload(client, "").status_code == 422
        response = upload(client, HEADER)
        batch = IngestBatch.objects.get(pk=response.json()["batch"])
        assert batch.state == "failed"
        assert batch.errors[0]["code"] == "empty"
        missing = APIClient()
        missing.credentials(**client._credentials)
        assert missing.post("/api/v1/readings/files/", {}, format="multipart").status_code == 400

    def test_management_command_ingests_a_path(self, vendor, tmp_path, capsys):
        meter = HeatMeterFactory(vendor=vendor)
        path = tmp_path / "export.csv"
        path.write_text(HEADER + f"{meter.serial};2026-01-01 00:00;1,5;1,0;;\n")
        with TestCase.captureOnCommitCallbacks(execute=True):
            call_command("ingest_readings", str(path), vendor=vendor.code, now=True)
        assert "accepted 1" in capsys.readouterr().out
        assert Reading.objects.get(meter=meter).energy_kwh == Decimal("1500")

    def test_chunked_processing_resumes_after_the_last_committed_chunk(self, vendor):
        from django.core.files.base import ContentFile
        from django.utils import timezone

        from metering.ingest.batches import readings_batch_process

        meter = HeatMeterFactory(vendor=vendor)
        rows = "".join(f"{meter.serial};2026-01-01 {h:02d}:00;{h},0;1,0;;\n" for h in range(10))
        batch = IngestBatch.objects.create(
            vendor=vendor, source="file", received_at=timezone.now(), row_count=10
        )
        batch.file.save("b.csv", ContentFile((HEADER + rows).encode()))
        # an earlier attempt committed the first chunk (4 rows), then its worker died
        readings_batch_process(batch_id=batch.pk, now=timezone.now(), chunk_rows=4, max_chunks=1)
        batch.refresh_from_db()
        assert (batch.state, batch.progress, batch.accepted) == ("processing", 4, 4)

        readings_batch_process(batch_id=batch.pk, now=timezone.now(), chunk_rows=4)

        batch.refresh_from_db()
        assert (batch.state, batch.progress, batch.accepted, batch.duplicate) == ("done", 10, 10, 0)
        assert Reading.objects.filter(meter=meter).count() == 10


class TestCsvRowsRefusedPerRow:
    def test_unknown_and_foreign_meters_are_refused_with_their_row(self, client, vendor):
        mine = HeatMeterFactory(vendor=vendor)
        theirs = HeatMeterFactory(vendor=MeterVendorFactory())
        text = HEADER + (
            f"{mine.serial};2026-01-01 00:00;1,0;1,0;;\n"
            f"{theirs.serial};2026-01-01 00:00;1,0;1,0;;\n"
            f"NOSUCH;2026-01-01 00:00;1,0;1,0;;\n"
            f"{mine.serial};2026-01-01 01:00;1,5;1,1;;\n"
        )
        batch = IngestBatch.objects.get(pk=upload(client, text).json()["batch"])
        assert (batch.state, batch.accepted, batch.rejected) == ("done", 2, 2)
        assert [(e["row"], e["code"]) for e in batch.errors] == [
            (1, "meter_not_assigned"),
            (2, "unknown_meter"),
        ]
        assert not Reading.objects.filter(meter=theirs).exists()

    def test_an_unbalanced_quote_fails_the_file(self, client, vendor):
        meter = HeatMeterFactory(vendor=vendor)
        text = (
            HEADER
            + f'{meter.serial};"2026-01-01 00:00;1,0;1,0;;\n{meter.serial};2026-01-01 01:00;1,0;1,0;;\n'
        )
        batch = IngestBatch.objects.get(pk=upload(client, text).json()["batch"])
        assert batch.state == "failed"
        assert batch.errors
        assert Reading.objects.count() == 0

    def test_an_oversize_file_is_413(self, client, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
        response = upload(client, HEADER + "x" * 200)
        assert response.status_code == 413
        assert response.json()["code"] == "too_large"
        assert IngestBatch.objects.count() == 0


@pytest.fixture
def plain_vendor():
    """A vendor sending point-decimal CSV with offsets (the staged path's typed COPY)."""
    return MeterVendorFactory(
        csv_columns={},
        csv_separator=",",
        csv_decimal_comma=False,
        csv_energy_unit="kWh",
        csv_time_zone="UTC",
    )


def ingest_file(vendor, text):
    from django.core.files.base import ContentFile
    from django.utils import timezone

    from metering.ingest.batches import readings_batch_process

    batch = IngestBatch.objects.create(vendor=vendor, source="file", received_at=timezone.now())
    batch.file.save("plain.csv", ContentFile(text.encode()))
    readings_batch_process(batch_id=batch.pk, now=timezone.now(), chunk_rows=3)
    batch.refresh_from_db()
    return batch


PLAIN_HEADER = "meter,read_at,energy,volume_m3,flow_temp_c,return_temp_c\n"


class TestPointDecimalFiles:
    """The same outcomes on every database: PostgreSQL's typed stage refuses bad values
    in the COPY (its CHECK) and the Python validator then itemises them."""

    def test_a_file_across_a_month_end_goes_into_both_months(self, plain_vendor, caplog):
        caplog.set_level("INFO", logger="metering.ingest.fastcsv")
        meter = HeatMeterFactory(vendor=plain_vendor)
        start = dt.datetime(2026, 9, 30, 20, tzinfo=dt.UTC)
        text = PLAIN_HEADER + "".join(
            f"{meter.serial},{(start + dt.timedelta(hours=h)).isoformat()},{1000 + h}.5,{10 + h},70.1,40.2\n"
            for h in range(8)
        )
        batch = ingest_file(plain_vendor, text)
        assert (batch.state, batch.accepted, batch.progress, batch.row_count) == ("done", 8, 8, 8)
        readings = Reading.objects.filter(meter=meter).order_by("read_at")
        assert [r.read_at.month for r in readings] == [9, 9, 9, 9, 10, 10, 10, 10]
        assert readings[0].energy_kwh == Decimal("1000.5")
        assert readings[7].volume_m3 == Decimal("17")
        from django.db import connection

        if connection.vendor == "postgresql":
            assert "declined" not in caplog.text  # the server-side path did the work
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT tableoid::regclass::text, count(*) FROM metering_reading "
                    "WHERE meter_id = %s GROUP BY 1 ORDER BY 1",
                    [meter.pk],
                )
                assert cursor.fetchall() == [
                    ("metering_reading_y2026m09", 4),
                    ("metering_reading_y2026m10", 4),
                ]

    def test_values_out_of_range_fail_the_file_with_their_row(self, plain_vendor):
        meter = HeatMeterFactory(vendor=plain_vendor)
        text = PLAIN_HEADER + (
            f"{meter.serial},2026-09-01T00:00:00+00:00,1.0,1.0,70,40\n"
            f"{meter.serial},2026-09-01T01:00:00+00:00,2.0,-1.0,70,40\n"
            f"{meter.serial},2026-09-01T02:00:00+00:00,3.0,1.0,250,40\n"
            f"{meter.serial},1999-09-01T03:00:00+00:00,4.0,1.0,70,40\n"
            f"{meter.serial},yesterday,5.0,1.0,70,40\n"
            f"{meter.serial},09/01/2026 05:00,6.0,1.0,70,40\n"
        )
        batch = ingest_file(plain_vendor, text)
        assert batch.state == "failed"
        assert [(e["row"], e["field"], e["code"]) for e in batch.errors] == [
            (1, "volume_m3", "negative"),
            (2, "flow_temp_c", "out_of_range"),
            (3, "read_at", "out_of_range"),
            (4, "read_at", "invalid_datetime"),
            (5, "read_at", "invalid_datetime"),
        ]
        assert Reading.objects.count() == 0

    def test_a_reading_twice_in_one_file_fails_it(self, plain_vendor):
        meter = HeatMeterFactory(vendor=plain_vendor)
        row = f"{meter.serial},2026-09-01T00:00:00+00:00,1.0,1.0,70,40\n"
        other = f"{meter.serial},2026-09-01T01:00:00+00:00,2.0,1.0,70,40\n"
        # the same instant written with another offset is the same reading
        same = f"{meter.serial},2026-09-01T02:00:00+02:00,1.0,1.0,70,40\n"
        batch = ingest_file(plain_vendor, PLAIN_HEADER + row + other + same)
        assert batch.state == "failed"
        assert [(e["row"], e["code"]) for e in batch.errors] == [(2, "duplicate_in_batch")]
        assert Reading.objects.count() == 0

    def test_a_file_sent_again_is_counted_as_duplicates_and_conflicts(self, plain_vendor):
        meter = HeatMeterFactory(vendor=plain_vendor)
        rows = [
            f"{meter.serial},2026-09-01T{h:02d}:00:00+00:00,{h}.0,1.0,70,40\n" for h in range(5)
        ]
        first = ingest_file(plain_vendor, PLAIN_HEADER + "".join(rows))
        rows[3] = f"{meter.serial},2026-09-01T03:00:00+00:00,99.0,1.0,70,40\n"
        rows.append(f"{meter.serial},2026-09-01T05:00:00+00:00,5.0,1.0,70,40\n")
        second = ingest_file(plain_vendor, PLAIN_HEADER + "".join(rows))
        assert (first.state, first.accepted) == ("done", 5)
        assert (second.state, second.accepted, second.duplicate, second.conflicting) == (
            "done",
            1,
            4,
            1,
        )
        stored = Reading.objects.get(meter=meter, read_at=dt.datetime(2026, 9, 1, 3, tzinfo=dt.UTC))
        assert stored.energy_kwh == Decimal("3")  # the original is untouched
        assert Reading.objects.filter(meter=meter).count() == 6

    def test_wall_clock_times_are_the_vendors_local_time(self, plain_vendor):
        plain_vendor.csv_time_zone = "Europe/Copenhagen"
        plain_vendor.save()
        meter = HeatMeterFactory(vendor=plain_vendor)
        text = PLAIN_HEADER + (
            f"{meter.serial},2026-10-25 01:00,1.0,1.0,70,40\n"  # CEST, +02:00
            f"{meter.serial},2026-10-25 04:00,2.0,1.0,70,40\n"  # CET, +01:00
            f"{meter.serial},2026-11-01T00:00:00+01:00,3.0,1.0,70,40\n"
        )
        batch = ingest_file(plain_vendor, text)
        assert (batch.state, batch.accepted) == ("done", 3)
        assert list(
            Reading.objects.filter(meter=meter)
            .order_by("read_at")
            .values_list("read_at", flat=True)
        ) == [
            dt.datetime(2026, 10, 24, 23, tzinfo=dt.UTC),
            dt.datetime(2026, 10, 25, 3, tzinfo=dt.UTC),
            dt.datetime(2026, 10, 31, 23, tzinfo=dt.UTC),
        ]

    def test_a_reading_before_the_retention_horizon_fails_the_file(self, plain_vendor, settings):
        from metering.retention import readings_horizon

        settings.READINGS_RETENTION_YEARS = retention_years_since(2026)  # whatever the year
        meter = HeatMeterFactory(vendor=plain_vendor)
        horizon = readings_horizon(now=dt.datetime.now(dt.UTC), time_zone=settings.TIME_ZONE)
        old = (horizon - dt.timedelta(hours=1)).isoformat()
        text = PLAIN_HEADER + (
            f"{meter.serial},2026-09-01T00:00:00+00:00,1.0,1.0,70,40\n"
            f"{meter.serial},{old},2.0,1.0,70,40\n"
        )
        batch = ingest_file(plain_vendor, text)
        assert batch.state == "failed"
        assert [(e["row"], e["field"], e["code"]) for e in batch.errors] == [
            (1, "read_at", "beyond_retention")
        ]
        assert Reading.objects.count() == 0


@pytest.mark.parametrize(
    ("lines", "iso"),
    [
        (b"A,2026-09-01T00:00:00+00:00,1\nB,2026-09-01 01:00,2\n", True),
        (b"A,2026-09-01T00:00:00Z,1\r\nB,2026-09-01T00:00:00.123456+01:00,2\r\n", True),
        (b"A,2026-09-01T00:00,1", True),  # no newline at the end
        (b"A,2026-09-01T00:00:00+00:00,1\nB,yesterday,2\n", False),
        (b"A,01-09-2026 00:00,1\n", False),  # DateStyle would decide the month
        (b"A,2026-09-01T00:00 CET,1\n", False),
        (b"A,2026-09-01T00:00,1\n\nB,2026-09-01T00:00,1\n", False),  # blank line
        (b"A,2026-09-01T00:00,1,9\n", False),  # ragged
        (b'"A",2026-09-01T00:00,1\n', False),  # quoted: let the CSV parser decide
    ],
)
def test_which_files_copy_parses_timestamps_for(lines, iso):
    from metering.ingest.fastcsv import iso_timestamps

    assert iso_timestamps(b"m,t,e\n" + lines, column=1, width=3, separator=",") is iso
    # the timestamp as the last column, with CRLF
    last = b"m;t\r\nA;2026-09-01T00:00:00+02:00\r\nB;2026-09-01 01:00\r\n"
    assert iso_timestamps(last, column=1, width=2, separator=";") is True
