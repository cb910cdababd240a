"""Applying a conflict's delivered values stores what a normal intake of them stores.

A delivery's energy is taken as the value rounded half up to the column's 6 decimals,
then converted to kWh (``metering.ingest.store.ENERGY_KWH_SQL``, the rows' validator).
The point-decimal file lane keeps the raw value in the conflict (``incoming``), and
applying it converted the raw value: 1.2345675 MWh stored as 1,234.5675 kWh where the
intake of the same value stores 1,234.568 kWh (0.0005 kWh off).
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from metering.models import Reading, ReadingConflict
from metering.vee.services import reading_conflicts_resolve
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory
from tests.metering.test_readings_files import ingest_file

pytestmark = pytest.mark.django_db

HEADER = "meter,read_at,energy,volume_m3,flow_temp_c,return_temp_c\n"
T0 = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)


@pytest.fixture
def mwh_vendor():
    return MeterVendorFactory(
        csv_columns={},
        csv_separator=",",
        csv_decimal_comma=False,
        csv_energy_unit="MWh",
        csv_time_zone="UTC",
    )


def test_applying_a_delivered_value_stores_the_intakes_kwh(mwh_vendor, admin_user):
    fresh = HeatMeterFactory(vendor=mwh_vendor)
    redelivered = HeatMeterFactory(vendor=mwh_vendor)
    row = "{serial},2026-09-01T00:00:00+00:00,{energy},1.23456,70,40\n"
    ingest_file(mwh_vendor, HEADER + row.format(serial=redelivered.serial, energy="1.0"))
    batch = ingest_file(
        mwh_vendor,
        HEADER
        + row.format(serial=fresh.serial, energy="1.2345675")
        + row.format(serial=redelivered.serial, energy="1.2345675"),
    )
    assert (batch.state, batch.accepted, batch.conflicting) == ("done", 1, 1)
    intake = Reading.objects.get(meter=fresh, read_at=T0)
    assert intake.energy_kwh == Decimal("1234.568")  # 1.234568 MWh, half up

    reading_conflicts_resolve(
        conflicts=ReadingConflict.objects.all(),
        take_incoming=True,
        actor=admin_user,
        now=timezone.now(),
    )

    applied = Reading.objects.get(meter=redelivered, read_at=T0)
    assert (applied.energy_kwh, applied.volume_m3) == (intake.energy_kwh, intake.volume_m3)
    assert applied.status == "edited"
