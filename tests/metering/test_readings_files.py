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
