"""The retention horizon is 1 January of the oldest retained year in the network's zone.

Retained years are the network's local years: with three years before 2026, 2023 is
kept, and in Europe/Copenhagen 2023 begins at 2022-12-31 23:00 UTC.  The horizon was
1 January 00:00 UTC, so a Copenhagen meter's reading of local midnight on 1 January
2023 (its boundary register of the year's first day) was refused ``beyond_retention``,
and a network west of UTC (America/Nuuk, UTC-3 then) took three hours of 2022.  A
meter's zone is its network's (the earliest horizon of them, for a meter that served
several); a meter never installed takes the installation's zone (``TIME_ZONE``).

Partitions are UTC months: December 2022 holds Copenhagen's first hour of 2023, so it
is archived only once 2023 itself falls behind the horizon, a year later.
"""

import datetime as dt
from decimal import Decimal

import orjson
import pytest
from django.core.files.base import ContentFile
from django.test import TestCase

from metering.ingest.batches import (
    InvalidDelivery,
    readings_batch_process,
    readings_batch_submit,
)
from metering.installations import UnableToInstallMeter, meter_install
from metering.models import IngestBatch, Reading
from metering.retention import readings_archive, readings_archive_horizon, readings_horizon
from tests.customers.factories import BuildingInterfaceUnitFactory, NetworkFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import MeterVendorFactory, add_readings

pytestmark = pytest.mark.django_db
UTC = dt.UTC
RECEIVED = dt.datetime(2026, 11, 27, 12, tzinfo=UTC)
COPENHAGEN_NEW_YEAR = dt.datetime(2022, 12, 31, 23, tzinfo=UTC)  # 2023-01-01 00:00 CET


@pytest.fixture(autouse=True)
def _three_years(settings):
    settings.READINGS_RETENTION_YEARS = 3  # the default: 2023 on is kept as of 2026
    settings.TIME_ZONE = "Europe/Copenhagen"


def _meter_in(zone: str, vendor):
    meter = HeatMeterFactory(vendor=vendor)
    unit = BuildingInterfaceUnitFactory(connection__network=NetworkFactory(time_zone=zone))
    MeterInstallationFactory(
        meter=meter, unit=unit, installed_at=dt.datetime(2020, 1, 1, tzinfo=UTC)
    )
    return meter


def _submit(vendor, meter, read_at: str):
    body = orjson.dumps(
        [
            {
                "meter": meter.serial,
                "read_at": read_at,
                "energy": 1000,
                "energy_unit": "kWh",
                "volume_m3": 12.5,
            }
        ]
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        return readings_batch_submit(vendor=vendor, body=body, received_at=RECEIVED)


class TestHorizon:
    def test_is_local_midnight_of_the_first_retained_year(self):
        assert readings_horizon(now=RECEIVED, time_zone="Europe/Copenhagen") == COPENHAGEN_NEW_YEAR
        assert readings_horizon(now=RECEIVED, time_zone="America/Nuuk") == dt.datetime(
            2023, 1, 1, 3, tzinfo=UTC
        )

    def test_the_current_year_is_the_local_one(self):
        # 2026-12-31 23:30 UTC is already 2027 in Copenhagen: 2024 is the oldest kept
        late = dt.datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
        assert readings_horizon(now=late, time_zone="Europe/Copenhagen") == dt.datetime(
            2023, 12, 31, 23, tzinfo=UTC
        )


class TestIntake:
    def test_the_local_new_year_reading_of_the_oldest_retained_year_is_taken(self):
        vendor = MeterVendorFactory()
        meter = _meter_in("Europe/Copenhagen", vendor)

        _submit(vendor, meter, "2023-01-01T00:00:00+01:00")

        assert list(Reading.objects.values_list("read_at", flat=True)) == [COPENHAGEN_NEW_YEAR]

    def test_a_reading_of_the_last_local_hour_before_is_refused(self):
        vendor = MeterVendorFactory()
        meter = _meter_in("Europe/Copenhagen", vendor)

        with pytest.raises(InvalidDelivery) as refused:
            _submit(vendor, meter, "2022-12-31T23:59:59+01:00")

        assert [(e.row, e.code) for e in refused.value.errors] == [(0, "beyond_retention")]
        assert not Reading.objects.exists()

    def test_a_meter_west_of_utc_is_refused_its_network_s_last_evening_of_2022(self):
        vendor = MeterVendorFactory()
        meter = _meter_in("America/Nuuk", vendor)

        with pytest.raises(InvalidDelivery) as refused:
            _submit(vendor, meter, "2023-01-01T01:00:00+00:00")  # 22:00 on 31 Dec in Nuuk

        assert [(e.row, e.code) for e in refused.value.errors] == [(0, "beyond_retention")]

    def test_a_meter_never_installed_takes_the_installation_s_zone(self):
        vendor = MeterVendorFactory()
        meter = HeatMeterFactory(vendor=vendor)

        _submit(vendor, meter, "2023-01-01T00:00:00+01:00")

        assert Reading.objects.filter(meter=meter).count() == 1

    @pytest.mark.parametrize("path", ["fast", "python"])
    def test_a_file_s_local_new_year_reading_is_taken_on_every_path(self, path, monkeypatch):
        from metering.ingest import fastcsv

        if path == "python":
            monkeypatch.setattr(fastcsv, "available", lambda: False)
        vendor = MeterVendorFactory(csv_separator=",", csv_decimal_comma=False)
        meter = _meter_in("Europe/Copenhagen", vendor)
        batch = IngestBatch.objects.create(vendor=vendor, source="file", received_at=RECEIVED)
        text = f"meter,read_at,energy,volume_m3\n{meter.serial},2023-01-01 00:00,1000.5,12\n"
        batch.file.save("export.csv", ContentFile(text.encode()))

        batch = readings_batch_process(batch_id=batch.pk, now=RECEIVED)

        assert (batch.state, batch.accepted, batch.errors) == ("done", 1, [])
        assert list(Reading.objects.values_list("read_at", flat=True)) == [COPENHAGEN_NEW_YEAR]


def test_an_installation_on_local_new_year_is_checked_against_its_first_reads():
    """``initial_above_first_read`` applies to installations since the horizon (VEE's
    rule): one at local midnight of 1 January 2023 is one of them."""
    meter = HeatMeterFactory()
    add_readings(meter, [(dt.datetime(2023, 1, 2, tzinfo=UTC), "1300", "10")])
    unit = BuildingInterfaceUnitFactory(connection__network=NetworkFactory())

    with pytest.raises(UnableToInstallMeter) as refused:
        meter_install(
            meter=meter,
            unit=unit,
            installed_at=COPENHAGEN_NEW_YEAR,
            initial_energy_kwh=Decimal("12345"),
            now=RECEIVED,
        )

    assert [e.code for e in refused.value.errors] == ["initial_above_first_read"]


@pytest.mark.postgres
class TestArchive:
    def test_december_is_kept_while_it_holds_a_network_s_first_retained_hour(
        self, settings, tmp_path
    ):
        settings.READINGS_ARCHIVE_DIR = tmp_path
        NetworkFactory(time_zone="Europe/Copenhagen")
        NetworkFactory(time_zone="America/Nuuk")
        meter = HeatMeterFactory()
        november = dt.datetime(2022, 11, 30, 23, tzinfo=UTC)
        add_readings(meter, [(november, "100", "1"), (COPENHAGEN_NEW_YEAR, "200", "2")])

        assert readings_archive_horizon(now=RECEIVED) == COPENHAGEN_NEW_YEAR
        archived = [m.partition for m in readings_archive(now=RECEIVED)]

        assert "metering_reading_y2022m11" in archived
        assert "metering_reading_y2022m12" not in archived
        assert list(Reading.objects.values_list("read_at", flat=True)) == [COPENHAGEN_NEW_YEAR]

        a_year_later = [m.partition for m in readings_archive(now=RECEIVED.replace(year=2027))]

        assert "metering_reading_y2022m12" in a_year_later
        assert not Reading.objects.exists()
