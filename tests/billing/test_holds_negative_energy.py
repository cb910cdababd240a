"""A bill that would price a fall of the registers as negative energy is held.

A ``register_decrease`` staff accept without a wrap count lets the register fall: the
reading counts as it stands.  A bill whose bounds lie on both sides of the fall sees
less at its end than at its start and is refused (``negative_consumption``, a run
exception, ``tests/billing/test_billing_run.py``).  A quarter or a year priced by
season is measured month by month (``billing.calc._energy_by_month``), so a fall inside
it reached rating as a month of negative energy: the season's energy line went out
negative with its run.  Now such a bill is held for review with the month and the
connection in the reason (``billing.calc.hold_reasons``); staff correct the readings
and recompute the draft, or release it as it stands.

Figures: energy priced by season, winter (April) 600, summer (May–September) 300 per
MWh, VAT 25 %.  The meter reads 10,000 kWh on 1 April, 11,500 on 15 April, 13,000 on
1 May, 9,500 on 1 June (−3,500 kWh in May, below mid-April too: a fall, not a spike of
May) and 10,500 on 1 July (+1,000 in June, still below mid-April); staff accept both decreases as they stand.  The
quarter measures +500 kWh.  April 3.0 MWh × 600 = 1,800.00; summer −3.5 + 1.0 = −2.5
MWh × 300 = −750.00; net 1,050.00.  The ordinary account (3,000, 500, 200 kWh) bills
1,800.00 + 0.7 × 300 = 210.00: net 2,010.00, VAT 502.50, gross 2,512.50.
"""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import Invoice
from heatutility.timeutil import local_midnight
from metering.models import Reading, ReadingIssue
from metering.vee.services import reading_issues_accept, vee_run_meter
from tests.billing.factories import contract_with_connection, register, tariff_version
from tests.billing.helpers import bill_month
from tests.customers.factories import BuildingInterfaceUnitFactory, NetworkFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.django_db

CPH = "Europe/Copenhagen"
APR, MAY, JUN, JUL = (dt.date(2026, m, 1) for m in (4, 5, 6, 7))
NOW = dt.datetime(2026, 7, 5, 8, 0, tzinfo=dt.UTC)
SEASONS = [
    {"label": "summer", "months": [5, 6, 7, 8, 9], "price": "300"},
    {"label": "winter", "months": [1, 2, 3, 4, 10, 11, 12], "price": "600"},
]


def _seasonal_network():
    network = NetworkFactory(time_zone=CPH)
    tariff_version(
        network=network,
        components=[
            {"type": "energy", "code": "energy", "description": "Energy", "seasons": SEASONS}
        ],
    )
    return network


def _fall_accepted(contract, actor):
    """The meter on the contract's connection reads the module's figures; VEE rejects
    the reads of 1 June and 1 July as decreases from 13,000 kWh and staff accept both
    without a wrap count."""
    inst = MeterInstallationFactory(
        meter=HeatMeterFactory(),
        unit=BuildingInterfaceUnitFactory(connection=contract.connection),
        installed_at=local_midnight(dt.date(2026, 3, 1), CPH),
        initial_energy_kwh=Decimal("9000"),
        initial_volume_m3=Decimal("200"),
    )
    reads = [(APR, "10000", "250"), (dt.date(2026, 4, 15), "11500", "290")]
    reads += [(MAY, "13000", "325"), (JUN, "9500", "330")]
    reads.append((JUL, "10500", "335"))
    add_readings(inst.meter, [(local_midnight(day, CPH), e, v) for day, e, v in reads])
    vee_run_meter(
        meter_id=inst.meter_id,
        start=local_midnight(APR, CPH),
        end=local_midnight(JUL, CPH),
        now=NOW,
    )
    decreases = ReadingIssue.objects.filter(meter=inst.meter, code="register_decrease")
    assert sorted(decreases.values_list("read_at", "state")) == [
        (local_midnight(JUN, CPH), "open"),
        (local_midnight(JUL, CPH), "open"),
    ]
    assert reading_issues_accept(issues=decreases, actor=actor, reason="as read", now=NOW) == 2
    assert set(Reading.objects.filter(meter=inst.meter).values_list("status", flat=True)) == {
        "valid"
    }
    return inst


class TestAFallInsideASeasonalQuarter:
    def test_is_held_not_issued_with_a_negative_energy_line(self, admin_user):
        network = _seasonal_network()
        fell = contract_with_connection(network=network)
        ordinary = contract_with_connection(network=network)
        for day, value in ((APR, 20000), (MAY, 23000), (JUN, 23500), (JUL, 23700)):
            register(ordinary.connection, day, value)
        _fall_accepted(fell, admin_user)

        run = bill_month(network, start=APR, months=3, now=NOW)

        assert (run.held, run.failed) == (1, 0)
        held = Invoice.objects.get(account=fell.account)
        assert (held.held, held.state, held.number) == (True, "draft", None)
        assert held.hold_reason == (
            f"the registers of connection {fell.connection_id} fell by 3.500000 MWh in the "
            "month from 2026-05-01, which its season's energy would bill as negative (a "
            "register decrease accepted without a wrap count?)"
        )
        # billed as the registers stand, for staff to correct or release
        assert sorted(held.lines.values_list("description", "quantity", "amount")) == [
            ("Energy (summer)", Decimal("-2.500000"), Decimal("-750.00")),
            ("Energy (winter)", Decimal("3.000000"), Decimal("1800.00")),
        ]
        assert held.net == Decimal("1050.00")
        issued = Invoice.objects.get(account=ordinary.account)
        assert (issued.state, issued.held, issued.hold_reason) == ("issued", False, "")
        assert (issued.net, issued.vat, issued.gross) == (
            Decimal("2010.00"),
            Decimal("502.50"),
            Decimal("2512.50"),
        )
