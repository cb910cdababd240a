"""Retention: readings before the horizon are refused at intake; old months are archived."""

import datetime as dt
import gzip

import orjson
import pytest
from django.db import IntegrityError, connection, transaction
from django.test import TestCase
from rest_framework.test import APIClient

from metering.models import IngestBatch, Reading
from metering.retention import readings_archive, readings_horizon
from metering.vendors import vendor_key_create
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory, add_readings
from tests.retention import retention_years_since

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)


def reading(serial, read_at):
    return {
        "meter": serial,
        "read_at": read_at,
        "energy": "1000",
        "energy_unit": "kWh",
        "volume_m3": "12.5",
    }


class TestHorizon:
    def test_current_year_and_three_before_are_kept(self, settings):
        settings.READINGS_RETENTION_YEARS = 3
        assert readings_horizon(now=NOW, time_zone="UTC") == dt.datetime(2023, 1, 1, tzinfo=dt.UTC)


class TestLateReadingBeyondHorizon:
    def test_is_refused_itemised_and_nothing_is_stored(self, settings):
        settings.READINGS_RETENTION_YEARS = retention_years_since(2026)  # whatever the year
        vendor = MeterVendorFactory()
        meter = HeatMeterFactory(vendor=vendor)
        _, key = vendor_key_create(vendor=vendor, label="test")
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        horizon = readings_horizon(now=dt.datetime.now(dt.UTC), time_zone=settings.TIME_ZONE)
        rows = [
            reading(meter.serial, "2026-11-01T00:00:00+01:00"),
            reading(meter.serial, (horizon - dt.timedelta(hours=1)).isoformat()),
        ]

        with TestCase.captureOnCommitCallbacks(execute=True):
            response = api.post(
                "/api/v1/readings/", data=orjson.dumps(rows), content_type="application/json"
            )

        assert response.status_code in (400, 422)
        errors = response.json()["errors"]
        assert [(e["row"], e["field"], e["code"]) for e in errors] == [
            (1, "read_at", "beyond_retention")
        ]
        assert not Reading.objects.exists()
        assert not IngestBatch.objects.exists()

    def test_a_reading_at_the_horizon_is_taken(self):
        from metering.ingest.rows import validate_json_rows

        horizon = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
        rows, errors = validate_json_rows(
            [reading("1", "2023-01-01T00:00:00+00:00"), reading("1", "2023-01-01T00:59:59+01:00")],
            max_rows=10,
            not_before=lambda serials: dict.fromkeys(serials, horizon),
        )
        assert [r[2] for r in rows] == ["2023-01-01T00:00:00+00:00"]
        assert [(e.row, e.code) for e in errors.items] == [(1, "beyond_retention")]


@pytest.mark.postgres
class TestArchive:
    def test_old_months_are_archived_and_cannot_come_back_silently(self, settings, tmp_path):
        settings.READINGS_RETENTION_YEARS = 3
        settings.READINGS_ARCHIVE_DIR = tmp_path
        meter = HeatMeterFactory()
        old = [dt.datetime(2021, 3, d, tzinfo=dt.UTC) for d in (1, 2, 31)]
        add_readings(meter, [(at, "100", "1") for at in old])
        add_readings(meter, [(dt.datetime(2026, 10, 1, tzinfo=dt.UTC), "900", "9")])

        assert [m.partition for m in readings_archive(now=NOW, dry_run=True)] >= [
            "metering_reading_y2021m03"
        ]
        assert Reading.objects.count() == 4

        archived = {m.partition: m for m in readings_archive(now=NOW)}

        month = archived["metering_reading_y2021m03"]
        assert month.rows == 3
        with gzip.open(month.path, "rt") as handle:
            lines = handle.read().splitlines()
        assert lines[0].startswith("meter_id,read_at,energy_kwh")
        assert len(lines) == 4
        assert "metering_reading_y2026m10" not in archived
        assert list(Reading.objects.values_list("read_at", flat=True)) == [
            dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
        ]
        # the month's place is held: a late reading cannot re-create it
        with pytest.raises(IntegrityError, match="reading_archived"), transaction.atomic():
            add_readings(meter, [(dt.datetime(2021, 3, 5, tzinfo=dt.UTC), "150", "1.5")])
        # running again finds nothing new for that month
        assert "metering_reading_y2021m03" not in {
            m.partition for m in readings_archive(now=NOW, dry_run=True)
        }
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM metering_reading_y2021m03")
            assert cursor.fetchone()[0] == 0

    def test_the_monthly_beat_task_archives_what_fell_behind(self, settings, tmp_path):
        from django.conf import settings as django_settings

        from metering.tasks import readings_archive_monthly

        entry = django_settings.CELERY_BEAT_SCHEDULE["metering-readings-archive-monthly"]
        assert entry["task"] == "metering.tasks.readings_archive_monthly"
        settings.READINGS_RETENTION_YEARS = retention_years_since(2023)  # the task reads the clock
        settings.READINGS_ARCHIVE_DIR = tmp_path
        meter = HeatMeterFactory()
        add_readings(meter, [(dt.datetime(2020, 5, 4, tzinfo=dt.UTC), "100", "1")])
        add_readings(meter, [(dt.datetime(2026, 10, 1, tzinfo=dt.UTC), "900", "9")])

        assert readings_archive_monthly.apply().get() >= 1
        assert (tmp_path / "metering_reading_y2020m05.csv.gz").exists()
        assert Reading.objects.count() == 1
        assert readings_archive_monthly.apply().get() == 0  # again: nothing left to do


class TestCommand:
    def test_dry_run_names_the_horizon_and_changes_nothing(self, settings):
        from io import StringIO

        from django.core.management import call_command

        settings.READINGS_RETENTION_YEARS = 3
        out = StringIO()

        call_command("readings_archive", "--dry-run", stdout=out)

        year = dt.datetime.now(dt.UTC).year - 3
        assert f"Retention horizon {year}-01-01." in out.getvalue()
