"""An installation's registers are steps of the meter's register: a value between two
steps is one its display cannot show.

The slip this is for: a fitter reads 1.234 on a display counting whole kWh (1,234 kWh, the
dot a thousands separator as a Danish display or form writes it) and types 1.234.  Every
reading then counts from 1.234 kWh, and the installation's first bill charges 1,232.766
kWh that were never used.  A register above the maximum is the other slip
(``test_installations_register_max.py``); each is an item on its field, checked in the
meter's register unit, and nothing is stored.
"""

import datetime as dt
from decimal import Decimal

import pytest

from heatutility.roles import METERING_OPERATOR
from metering.installations import (
    UnableToInstallMeter,
    meter_exchange,
    meter_install,
    meter_installation_correct,
    meter_remove,
)
from metering.models import EnergyUnit, MeterInstallation, RevalidationRequest
from tests.billing.helpers import client_for
from tests.customers.factories import BuildingInterfaceUnitFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory

pytestmark = pytest.mark.django_db

AT = dt.datetime(2026, 3, 1, 23, tzinfo=dt.UTC)
LATER = dt.datetime(2026, 9, 1, 22, tzinfo=dt.UTC)


def install(meter, **registers) -> MeterInstallation:
    return meter_install(
        meter=meter, unit=BuildingInterfaceUnitFactory(), installed_at=AT, **registers
    )


def refused(meter, **registers) -> list[tuple[str, str]]:
    with pytest.raises(UnableToInstallMeter) as refusal:
        install(meter, **registers)
    return [(e.code, e.field) for e in refusal.value.errors]


def test_a_thousands_separator_typed_as_a_decimal_point_is_refused_and_nothing_stored():
    meter = HeatMeterFactory(resolution=Decimal("1"))

    with pytest.raises(UnableToInstallMeter) as refusal:
        install(meter, initial_energy_kwh=Decimal("1.234"))

    (error,) = refusal.value.errors
    assert (error.code, error.field) == ("off_resolution", "initial_energy_kwh")
    assert "1.234 kWh is not a step" in error.message
    assert "steps of 1 kWh" in error.message
    assert "thousands separator" in error.message
    assert not MeterInstallation.objects.filter(meter=meter).exists()
    assert not RevalidationRequest.objects.filter(meter=meter).exists()


def test_whole_steps_are_accepted_in_the_meters_unit():
    """0.001 MWh steps: 12.345 MWh is on a step (12,345 kWh stored), 12.3455 is not."""
    meter = HeatMeterFactory(register_unit=EnergyUnit.MWH, resolution=Decimal("0.001"))

    assert refused(meter=meter, initial_energy_kwh=Decimal("12345.5")) == [
        ("off_resolution", "initial_energy_kwh")
    ]
    installation = install(
        meter, initial_energy_kwh=Decimal("12.345"), register_unit=EnergyUnit.MWH
    )
    assert installation.initial_energy_kwh == Decimal("12345.000000")


def test_a_gj_register_on_its_step_is_accepted_though_its_kwh_are_not_whole():
    """1.001 GJ is 278.055556 kWh after rounding: still the step the display showed."""
    meter = HeatMeterFactory(register_unit=EnergyUnit.GJ, resolution=Decimal("0.001"))

    installation = install(meter, initial_energy_kwh=Decimal("1.001"), register_unit=EnergyUnit.GJ)

    assert installation.initial_energy_kwh == Decimal("278.055556")
    assert refused(
        meter=meter, initial_energy_kwh=Decimal("1.0005"), register_unit=EnergyUnit.GJ
    ) == [("off_resolution", "initial_energy_kwh")]


def test_the_volume_register_is_checked_against_its_own_step():
    meter = HeatMeterFactory(volume_resolution=Decimal("0.01"))

    assert refused(meter=meter, initial_volume_m3=Decimal("10.005")) == [
        ("off_resolution", "initial_volume_m3")
    ]
    assert install(meter, initial_volume_m3=Decimal("10.01")).initial_volume_m3 == Decimal("10.01")


def test_a_removal_between_steps_is_refused_and_the_installation_stays_open():
    installation = MeterInstallationFactory(installed_at=AT)

    with pytest.raises(UnableToInstallMeter) as refusal:
        meter_remove(
            installation=installation,
            removed_at=LATER,
            final_energy_kwh=Decimal("4.567"),
            final_volume_m3=Decimal("10"),
        )

    assert [(e.code, e.field) for e in refusal.value.errors] == [
        ("off_resolution", "final_energy_kwh")
    ]
    installation.refresh_from_db()
    assert (installation.removed_at, installation.final_energy_kwh) == (None, None)


def test_an_exchange_checks_each_meter_against_its_own_step():
    """4.5 is a step of the new MWh meter (4,500 kWh) and the old one counts whole kWh:
    the new meter's 4.5 typed as kWh is refused, in MWh accepted."""
    old = MeterInstallationFactory(installed_at=AT)
    new_meter = HeatMeterFactory(register_unit=EnergyUnit.MWH, resolution=Decimal("0.1"))
    exchange = {
        "unit": old.unit,
        "new_meter": new_meter,
        "exchanged_at": LATER,
        "old_final_energy_kwh": Decimal("4000"),
        "old_final_volume_m3": Decimal("10"),
    }

    with pytest.raises(UnableToInstallMeter) as refusal:
        meter_exchange(**exchange, new_initial_energy_kwh=Decimal("4.5"))

    assert [(e.code, e.field) for e in refusal.value.errors] == [
        ("off_resolution", "initial_energy_kwh")
    ]
    old.refresh_from_db()
    assert old.removed_at is None  # one transaction: nothing half-done
    _, new = meter_exchange(**exchange, new_initial_energy_kwh=Decimal("4500"))
    assert new.initial_energy_kwh == Decimal("4500")


def test_a_correction_between_steps_is_refused_and_the_register_stays():
    installation = MeterInstallationFactory(installed_at=AT, initial_energy_kwh=Decimal("1"))

    with pytest.raises(UnableToInstallMeter) as refusal:
        meter_installation_correct(
            installation=installation,
            initial_energy_kwh=Decimal("1.234"),
            reason="typo",
            actor=None,
        )

    assert [(e.code, e.field) for e in refusal.value.errors] == [
        ("off_resolution", "initial_energy_kwh")
    ]
    installation.refresh_from_db()
    assert installation.initial_energy_kwh == Decimal("1")


def test_the_api_answers_422_with_the_item():
    meter = HeatMeterFactory(resolution=Decimal("1"))

    response = client_for(METERING_OPERATOR).post(
        "/api/v1/meter-installations/install/",
        {
            "meter": meter.pk,
            "unit": BuildingInterfaceUnitFactory().pk,
            "installed_at": "2026-03-01T10:00:00+01:00",
            "initial_energy_kwh": "1.234",
        },
        format="json",
    )

    assert response.status_code == 422, response.content
    assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [
        ("off_resolution", "initial_energy_kwh")
    ]
    assert not MeterInstallation.objects.filter(meter=meter).exists()
