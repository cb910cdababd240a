"""The m³·°C registers (volume × flow / return temperature) are continuous per connection
across a meter exchange, like energy and volume, so that billing's volume-weighted
temperatures over a period with an exchange weigh both meters' water."""

import datetime as dt
from decimal import Decimal

import pytest

from heatutility.timeutil import local_midnight
from metering.selectors import boundary_registers
from metering.services import boundary_registers_ensure
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.django_db
CPH = "Europe/Copenhagen"
NOV, DEC = dt.date(2026, 11, 1), dt.date(2026, 12, 1)


def at(day, hour=0):
    return local_midnight(day, CPH) + dt.timedelta(hours=hour)


def temps(flow, ret):
    return {"flow_temp_m3c": Decimal(flow), "return_temp_m3c": Decimal(ret)}


def exchange_in_november():
    """A meter exchanged on 15 November at 12:00, its final read taken at that instant;
    the new meter installed at 13:00.  Returns (old, new) installations."""
    old = MeterInstallationFactory(
        meter=HeatMeterFactory(),
        installed_at=at(dt.date(2026, 1, 1)),
        initial_energy_kwh=Decimal("0"),
        initial_volume_m3=Decimal("0"),
        removed_at=at(dt.date(2026, 11, 15), 12),
        final_energy_kwh=Decimal("6000"),
        final_volume_m3=Decimal("150"),
    )
    new = MeterInstallationFactory(
        meter=HeatMeterFactory(),
        unit=old.unit,
        installed_at=at(dt.date(2026, 11, 15), 13),
        initial_energy_kwh=Decimal("0"),
        initial_volume_m3=Decimal("0"),
    )
    # old meter: 100 m³ at 70/40 °C before November, then 50 m³ at 80/30 °C until removal
    add_readings(
        old.meter,
        [
            (at(NOV), "4000", "100", temps("7000", "4000")),
            (at(dt.date(2026, 11, 15), 12), "6000", "150", temps("11000", "5500")),
        ],
    )
    # new meter (its own registers from 500 m³·°C): 25 m³ at 60/20 °C until December
    add_readings(
        new.meter,
        [
            (at(dt.date(2026, 11, 15), 13), "0", "0", temps("500", "500")),
            (at(DEC), "1000", "25", temps("2000", "1000")),
        ],
    )
    return old, new


def november_water(connection_id):
    """November's volume and volume-weighted flow / return temperatures (°C, 2 places)."""
    boundary_registers_ensure(connection_ids=[connection_id], dates=[NOV, DEC])
    frame = boundary_registers(connection_ids=[connection_id], dates=[NOV, DEC])
    got = {row.on: row for row in frame.itertuples()}
    volume = got[DEC].volume_m3 - got[NOV].volume_m3
    flow = (got[DEC].flow_temp_m3c - got[NOV].flow_temp_m3c) / volume
    ret = (got[DEC].return_temp_m3c - got[NOV].return_temp_m3c) / volume
    return volume, flow.quantize(Decimal("0.01")), ret.quantize(Decimal("0.01"))


def test_exchange_inside_the_month_keeps_the_temperature_registers_continuous():
    old, _new = exchange_in_november()

    # November's water: 50 m³ at 80/30 and 25 m³ at 60/20 → 73.33 / 26.67 °C
    assert november_water(old.unit.connection_id) == (
        Decimal("75.0000"),
        Decimal("73.33"),
        Decimal("26.67"),
    )


def test_the_final_read_at_the_removal_instant_stays_valid_through_vee():
    """VEE counted a read at ``removed_at`` outside the installation, rejected it, and the
    month then lost the old meter's final m³·°C registers (20.00 / 6.67 °C)."""
    from metering.models import Reading
    from metering.vee.services import vee_run_meter

    old, new = exchange_in_november()
    for meter in (old.meter, new.meter):
        vee_run_meter(meter_id=meter.pk, start=at(NOV), end=at(DEC), now=at(DEC, 6))

    final = Reading.objects.get(meter=old.meter, read_at=old.removed_at)
    assert final.status == Reading.Status.VALID
    assert november_water(old.unit.connection_id) == (
        Decimal("75.0000"),
        Decimal("73.33"),
        Decimal("26.67"),
    )
