"""An annual settlement under seasonal prices across a meter exchange: each season is
billed its measured months' energy (docs/billing.md, "When a tariff version changes
inside the period…"), also for the month start that falls between the exchange and the
new meter's first read, which no reading's validation stored."""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import BillingRun, Invoice
from billing.services.aconto import instalment_plan_create
from heatutility.timeutil import local_midnight
from metering.installations import meter_exchange
from metering.services import vee_run_meter
from tests.billing.factories import tariff_version
from tests.billing.helpers import bill_month
from tests.customers.factories import (
    AccountFactory,
    BuildingInterfaceUnitFactory,
    ContractFactory,
    NetworkFactory,
    ServiceConnectionFactory,
)
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

CPH = "Europe/Copenhagen"
SEASONS = [
    {"label": "summer", "months": [5, 6, 7, 8, 9], "price": "300"},
    {"label": "winter", "months": [1, 2, 3, 4, 10, 11, 12], "price": "600"},
]
# kWh per month of 2026; June is 100 kWh on the old meter (1–21 June) and 200 on the
# new one (21–30 June), July 200 to its 11th then nothing more
KWH = [3000, 2500, 2000, 1500, 500, 300, 200, 200, 500, 1500, 2500, 3000]


def _at(day: dt.date) -> dt.datetime:
    return local_midnight(day, CPH)


def _deliver(meter, rows, now):
    add_readings(meter, [(_at(day), str(kwh), str(kwh / 50)) for day, kwh in rows])
    vee_run_meter(meter_id=meter.pk, start=_at(rows[0][0]), end=_at(rows[-1][0]), now=now)


@pytest.mark.django_db
def test_a_settlement_across_an_exchange_bills_each_season_its_measured_months():
    network = NetworkFactory(time_zone=CPH, currency="DKK")
    tariff_version(
        network=network,
        valid_from=dt.date(2020, 1, 1),
        components=[
            {"type": "energy", "code": "energy", "description": "Energy", "seasons": SEASONS}
        ],
    )
    connection = ServiceConnectionFactory(network=network, contracted_capacity_kw=Decimal(10))
    unit = BuildingInterfaceUnitFactory(connection=connection)
    account = AccountFactory(network=network)
    ContractFactory(account=account, connection=connection, valid_from=dt.date(2024, 1, 1))
    old = MeterInstallationFactory(unit=unit, installed_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    # the old meter: 2025 (for the plan), then each month start of 2026 to 1 June
    value, rows = 10000, [(dt.date(2025, 1, 1), 0), (dt.date(2026, 1, 1), 10000)]
    for month in range(5):
        value += KWH[month]
        rows.append((dt.date(2026, month + 2, 1), value))
    _deliver(old.meter, rows, now=_at(dt.date(2026, 6, 1)))
    instalment_plan_create(
        account=account,
        year_start=dt.date(2026, 1, 1),
        frequency="quarterly",
        now=_at(dt.date(2025, 12, 1)),
    )
    # exchanged on 21 June at 00:00 after 100 kWh; the new meter starts at 0 and is first
    # read on 11 July (400 kWh since the exchange, half of it by 1 July)
    new = HeatMeterFactory()
    exchanged = value + 100
    meter_exchange(
        unit=unit,
        new_meter=new,
        exchanged_at=_at(dt.date(2026, 6, 21)),
        old_final_energy_kwh=Decimal(exchanged),
        old_final_volume_m3=Decimal(exchanged) / 50,
        new_initial_energy_kwh=Decimal(0),
        new_initial_volume_m3=Decimal(0),
        now=_at(dt.date(2026, 6, 21)),
    )
    register, rows = 400, [(dt.date(2026, 7, 11), 400)]
    for month in range(7, 12):  # August … January: each month start
        register += KWH[month]
        rows.append((dt.date(2026, month + 2, 1) if month < 11 else dt.date(2027, 1, 1), register))
    _deliver(new, rows, now=_at(dt.date(2027, 1, 1)))

    now = _at(dt.date(2027, 1, 2)) + dt.timedelta(hours=8)
    run = bill_month(
        network,
        start=dt.date(2026, 1, 1),
        months=12,
        kind="settlement",
        now=now,
        chunk_size=1,
        issue=False,
    )
    assert run.state == BillingRun.State.DRAFTED, list(run.exceptions.values("code", "error"))

    settlement = Invoice.objects.get(account=account, kind="settlement")
    lines = {
        line.description: (line.quantity, line.amount)
        for line in settlement.lines.filter(component="energy")
    }
    # summer May–September 500 + 300 + 200 + 200 + 500 = 1,700 kWh × 300 per MWh;
    # winter 16,000 kWh × 600 per MWh (by days: summer 153/365 of 17.7 MWh, 2,225.84)
    assert lines == {
        "Energy (summer)": (Decimal("1.7"), Decimal("510.00")),
        "Energy (winter)": (Decimal("16"), Decimal("9600.00")),
    }
    # every month start the seasons were measured by is recorded on the settlement,
    # 1 July (between the exchange and the new meter's first read) interpolated
    days = {r["on"]: r for r in settlement.readings}
    assert sorted(days) == [dt.date(2026, m, 1).isoformat() for m in range(1, 13)] + ["2027-01-01"]
    assert (days["2026-07-01"]["status"], days["2026-07-01"]["method"]) == (
        "estimated",
        "interpolation",
    )
