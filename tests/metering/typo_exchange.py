"""The scenario of an initial register typed wrong at an exchange, shared by the tests of
VEE's check of it (``test_initial_register_step``) and of its correction
(``test_installation_correct``): a meter exchanged on 15 October 2026 whose new meter's
initial register was typed 12,345 kWh for 1,234, then read daily from 1,300 kWh."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.test import TestCase

from heatutility.timeutil import local_midnight
from metering.installations import meter_exchange, meter_installation_correct
from metering.models import BoundaryRegister

CPH = "Europe/Copenhagen"
OCT, NOV = dt.date(2026, 10, 1), dt.date(2026, 11, 1)
EXCHANGED = dt.datetime(2026, 10, 15, 10, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC)
SEP_1 = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
TYPO, RIGHT = Decimal("12345"), Decimal("1234")


def daily(first: dt.date, days: int, energy: int, volume: int) -> list[tuple]:
    """Readings at local midnight: 100 kWh and 1 m³ a day from ``energy``, ``volume``."""
    return [
        (
            local_midnight(first + dt.timedelta(days=k), CPH),
            str(energy + 100 * k),
            str(volume + k),
        )
        for k in range(days)
    ]


NEW_READS = daily(dt.date(2026, 10, 16), 17, 1300, 10)  # 1,300 … 2,900 kWh on 1 November


def boundary(connection, on):
    row = BoundaryRegister.objects.filter(connection=connection, on=on).first()
    return None if row is None else (row.energy_kwh, row.status)


def exchanged(*, exchanged_at: dt.datetime, initial_energy_kwh: Decimal):
    """A billed connection whose meter, installed on 1 September and read daily to 15
    October (50,000 kWh on, 54,400 then), was exchanged as recorded at ``exchanged_at``
    (final registers 54,450 kWh and 545 m³) for a new meter with ``initial_energy_kwh``,
    read from 16 October (:data:`NEW_READS`).  The readings are stored, not validated;
    the exchange's revalidation is queued, not run.  Returns (contract, old, new)."""
    from tests.billing.factories import contract_with_connection, tariff_version
    from tests.customers.factories import BuildingInterfaceUnitFactory, NetworkFactory
    from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
    from tests.metering.factories_readings import add_readings

    network = NetworkFactory()
    tariff_version(network=network)
    contract = contract_with_connection(network=network)
    unit = BuildingInterfaceUnitFactory(connection=contract.connection)
    old = MeterInstallationFactory(unit=unit, installed_at=SEP_1)
    add_readings(old.meter, daily(dt.date(2026, 9, 1), 45, 50000, 500))
    meter = HeatMeterFactory()
    old, new = exchange(unit, meter, initial_energy_kwh, exchanged_at=exchanged_at)
    add_readings(meter, NEW_READS)
    return contract, old, new


def exchange(unit, meter, initial_energy_kwh, *, exchanged_at=EXCHANGED, **more):
    """The unit's meter exchanged for ``meter`` (final registers 54,450 kWh and 545 m³),
    as of :data:`NOW`; the revalidation is queued, not run (the test runs it)."""
    with TestCase.captureOnCommitCallbacks():
        return meter_exchange(
            unit=unit,
            new_meter=meter,
            exchanged_at=exchanged_at,
            old_final_energy_kwh=Decimal("54450"),
            old_final_volume_m3=Decimal("545"),
            new_initial_energy_kwh=initial_energy_kwh,
            now=NOW,
            **more,
        )


def correction(installation, reason: str, **fields):
    """(the corrected installation, the callbacks queued for after the commit) of
    ``meter_installation_correct`` as of :data:`NOW`, by no user unless ``actor``."""
    fields.setdefault("actor", None)
    with TestCase.captureOnCommitCallbacks() as queued:
        corrected = meter_installation_correct(
            installation=installation, reason=reason, now=NOW, **fields
        )
    return corrected, queued
