"""An installation's registers cannot lie above the meter's register maximum.

A MULTICAL with an 8-digit MWh display (maximum 99,999.999 MWh = 99,999,999 kWh) shows
at most that; a register typed above it is a wrong unit or a digit too many, and VEE
would read every later reading as a rollover or a decrease against it.  Energy compares
in the meter's unit: 99,999.999 MWh is 99,999,999.000000 kWh, the maximum itself, and
is accepted; one more Wh is refused.
"""

import datetime as dt
from decimal import Decimal

import pytest

from metering.installations import (
    UnableToInstallMeter,
    meter_exchange,
    meter_install,
    meter_remove,
)
from metering.models import EnergyUnit, MeterInstallation, RevalidationRequest
from tests.customers.factories import BuildingInterfaceUnitFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory

pytestmark = pytest.mark.django_db

AT = dt.datetime(2026, 3, 1, 23, tzinfo=dt.UTC)
LATER = dt.datetime(2026, 9, 1, 22, tzinfo=dt.UTC)


def mwh_meter(**kwargs):
    return HeatMeterFactory(
        register_unit=EnergyUnit.MWH,
        resolution=Decimal("0.001"),
        register_max=Decimal("99999.999"),
        volume_register_max=Decimal("999999.99"),
        **kwargs,
    )


def test_install_at_the_maximum_is_accepted():
    meter = mwh_meter()
    installation = meter_install(
        meter=meter,
        unit=BuildingInterfaceUnitFactory(),
        installed_at=AT,
        initial_energy_kwh=Decimal("99999999"),  # 99,999.999 MWh
        initial_volume_m3=Decimal("999999.99"),
    )
    installation.refresh_from_db()
    assert installation.initial_energy_kwh == Decimal("99999999.000000")


def test_install_above_the_maximum_is_refused_itemised_and_nothing_stored():
    meter = mwh_meter()
    with pytest.raises(UnableToInstallMeter) as refused:
        meter_install(
            meter=meter,
            unit=BuildingInterfaceUnitFactory(),
            installed_at=AT,
            initial_energy_kwh=Decimal("99999999.001"),  # one Wh above 99,999.999 MWh
            initial_volume_m3=Decimal("1000000"),
        )
    errors = {e.field: e for e in refused.value.errors}
    assert set(errors) == {"initial_energy_kwh", "initial_volume_m3"}
    assert {e.code for e in errors.values()} == {"above_register_max"}
    assert "99999.999001 MWh" in errors["initial_energy_kwh"].message
    assert "99999.999 MWh" in errors["initial_energy_kwh"].message
    assert "1000000 m³" in errors["initial_volume_m3"].message
    assert not MeterInstallation.objects.filter(meter=meter).exists()
    assert not RevalidationRequest.objects.filter(meter=meter).exists()


def test_kwh_typed_for_a_mwh_meter_is_refused():
    """The slip the check is for: 12,345.678 MWh on the display, 12,345,678 typed in
    the MWh field, stored ×1,000 as 12,345,678,000 kWh."""
    meter = mwh_meter()
    with pytest.raises(UnableToInstallMeter) as refused:
        meter_install(
            meter=meter,
            unit=BuildingInterfaceUnitFactory(),
            installed_at=AT,
            initial_energy_kwh=Decimal("12345678000"),
        )
    (error,) = refused.value.errors
    assert (error.code, error.field) == ("above_register_max", "initial_energy_kwh")
    assert "12345678 MWh" in error.message


def test_remove_above_the_maximum_is_refused_and_the_installation_stays_open():
    installation = MeterInstallationFactory(meter=mwh_meter(), installed_at=AT)
    with pytest.raises(UnableToInstallMeter) as refused:
        meter_remove(
            installation=installation,
            removed_at=LATER,
            final_energy_kwh=Decimal("100000000"),  # 100,000 MWh: nine digits
            final_volume_m3=Decimal("10"),
        )
    assert [(e.code, e.field) for e in refused.value.errors] == [
        ("above_register_max", "final_energy_kwh")
    ]
    installation.refresh_from_db()
    assert installation.removed_at is None
    assert installation.final_energy_kwh is None


def test_exchange_checks_each_meter_against_its_own_maximum():
    """The old meter counts kWh with 8 digits, the new one MWh: 5,000,000 kWh is a
    register the old one can show and the new one cannot (5,000 MWh can)."""
    old = MeterInstallationFactory(
        meter=HeatMeterFactory(register_max=Decimal("99999999")), installed_at=AT
    )
    new_meter = mwh_meter()
    with pytest.raises(UnableToInstallMeter) as refused:
        meter_exchange(
            unit=old.unit,
            new_meter=new_meter,
            exchanged_at=LATER,
            old_final_energy_kwh=Decimal("5000000"),
            old_final_volume_m3=Decimal("10"),
            new_initial_energy_kwh=Decimal("5000000000"),  # 5,000,000 MWh
        )
    assert [(e.code, e.field) for e in refused.value.errors] == [
        ("above_register_max", "initial_energy_kwh")
    ]
    old.refresh_from_db()
    assert old.removed_at is None  # the exchange is one transaction: nothing half-done

    _, new = meter_exchange(
        unit=old.unit,
        new_meter=new_meter,
        exchanged_at=LATER,
        old_final_energy_kwh=Decimal("5000000"),
        old_final_volume_m3=Decimal("10"),
        new_initial_energy_kwh=Decimal("5000000"),  # 5,000 MWh
    )
    old.refresh_from_db()
    assert old.final_energy_kwh == Decimal("5000000.000000")
    assert new.initial_energy_kwh == Decimal("5000000")
