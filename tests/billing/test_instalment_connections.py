"""Instalments of an account over several premises: each connection pays its own part of
the plan (its own last year, its own fixed charges) for the days the account holds it.

Tariff (tests.billing.factories): 1,200 subscription + 10 kW × 120 + MWh × 592.52 a year,
so one premises with 18 MWh a year is 13,065.36 a year, 3,266.34 a quarter.
"""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import Invoice
from billing.services.aconto import instalment_plan_create
from customers.models import Contract
from tests.billing.factories import billed_network, register
from tests.billing.helpers import NOW, bill_month
from tests.customers.factories import ContractFactory, ServiceConnectionFactory

YEAR = dt.date(2026, 1, 1)


def _monthly_registers(connection, *, first=10000, step=1500):
    """Registers on the 1st of each month of 2025 and 2026 (``step`` kWh a month)."""
    value = Decimal(first)
    for month in range(25):
        register(connection, dt.date(2025 + month // 12, month % 12 + 1, 1), value)
        value += step


def _second_premises(network, account=None, *, valid_from=dt.date(2024, 1, 1), step=1500):
    connection = ServiceConnectionFactory(network=network, contracted_capacity_kw=Decimal("10"))
    _monthly_registers(connection, first=50000, step=step)
    if account is not None:
        ContractFactory(account=account, connection=connection, valid_from=valid_from)
    return connection


def _instalment(start):
    return Invoice.objects.get(kind="instalment", period_start=start)


@pytest.mark.django_db
class TestInstalmentsPerConnection:
    def test_premises_given_up_is_no_longer_charged(self):
        network, (first,) = billed_network(accounts=1)
        second = _second_premises(network, first.account)
        plan = instalment_plan_create(
            account=first.account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        assert plan.last_year_mwh == plan.estimated_mwh == Decimal("36")  # 18 + 18
        bill_month(network, start=YEAR, months=3, kind="instalment")
        Contract.objects.filter(pk=first.pk).update(valid_to=dt.date(2026, 4, 1))
        bill_month(network, start=dt.date(2026, 4, 1), months=3, kind="instalment")

        # two premises: 2 × 13,065.36 / 4
        assert _instalment(YEAR).net == Decimal("6532.68")
        # the second premises alone: its 18 MWh and its own fixed charges (was 5,932.68:
        # 36 MWh with one premises' fixed charges)
        q2 = _instalment(dt.date(2026, 4, 1))
        assert q2.net == Decimal("3266.34")
        assert q2.lines.get().explanation.startswith(
            f"1/4 × estimated annual charge 13,065.36 DKK (connection {second.number}, "
            "18.000 MWh) (last year 36.000 MWh"
        )
        assert [(p["connection_id"], p["estimated_mwh"]) for p in plan.connections] == [
            (first.connection_id, "18.000000"),
            (second.pk, "18.000000"),
        ]
        # the PDF compares Q2 with the premises it bills: a quarter of its 18 MWh
        from billing.documents import invoice_context

        assert invoice_context(invoice=q2)["plan_last_year"]["share_mwh"] == Decimal("4.500")
        assert invoice_context(invoice=_instalment(YEAR))["plan_last_year"]["share_mwh"] == Decimal(
            "9.000"
        )

    def test_move_within_the_network_charges_one_flat_at_a_time(self):
        network, (flat_a,) = billed_network(accounts=1)
        account = flat_a.account
        Contract.objects.filter(pk=flat_a.pk).update(valid_to=dt.date(2026, 7, 1))
        _second_premises(network, account, valid_from=dt.date(2026, 7, 1))
        plan = instalment_plan_create(
            account=account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        assert plan.estimated_mwh == Decimal("36")  # both flats' last year, 18 each

        for quarter in (1, 4, 7, 10):
            bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")

        # flat A until 1 July, flat B after: 13,065.36 / 4 each quarter (Q1 was 5,932.68)
        nets = list(
            Invoice.objects.filter(kind="instalment")
            .order_by("period_start")
            .values_list("net", flat=True)
        )
        assert nets == [Decimal("3266.34")] * 4

    def test_contract_ending_mid_quarter_pays_its_own_days(self):
        network, (first,) = billed_network(accounts=1)
        _second_premises(network, first.account)
        instalment_plan_create(
            account=first.account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        Contract.objects.filter(pk=first.pk).update(valid_to=dt.date(2026, 2, 15))

        bill_month(network, start=YEAR, months=3, kind="instalment")

        # first premises 13,065.36 / 4 × 45/90 days = 1,633.17; second 3,266.34 in full
        # (was 6,532.68: both premises' charges for the whole quarter)
        q1 = _instalment(YEAR)
        assert q1.net == Decimal("4899.51")
        assert "13,065.36 DKK × 45/90 days supplied" in q1.lines.get().explanation

    def test_plan_parts_add_up_to_the_climate_corrected_total(self):
        network, (first,) = billed_network(accounts=1)
        second = _second_premises(network, first.account, step=750)  # 9 MWh last year
        plan = instalment_plan_create(
            account=first.account,
            year_start=YEAR,
            frequency="quarterly",
            now=NOW,
            degree_days_normal=Decimal("2906"),
            degree_days_last_year=Decimal("2737.5"),
        )
        # 0.8 × 27 × 2906 / 2737.5 + 0.2 × 27 = 28.3295342… MWh; 18/27 and 9/27 of it
        assert plan.last_year_mwh == Decimal("27")
        assert plan.estimated_mwh == Decimal("28.329534")
        parts = {p["connection_id"]: p for p in plan.connections}
        assert parts[first.connection_id]["estimated_mwh"] == "18.886356"
        assert parts[second.pk]["estimated_mwh"] == "9.443178"
        assert sum(Decimal(p["estimated_m3"]) for p in plan.connections) == plan.estimated_m3
        assert plan.explanation == (
            f"last year 27.000 MWh (18.000 connection {first.connection.number} + 9.000 "
            f"connection {second.number}), climate-corrected with 80% heating share × 2906 "
            "normal / 2737.5 actual degree days = 28.330 MWh"
        )

    def test_settlement_bills_actuals_and_credits_the_instalments(self):
        network, (first,) = billed_network(accounts=1)
        _second_premises(network, first.account)
        instalment_plan_create(
            account=first.account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        bill_month(network, start=YEAR, months=3, kind="instalment")
        Contract.objects.filter(pk=first.pk).update(valid_to=dt.date(2026, 4, 1))
        for quarter in (4, 7, 10):
            bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")

        bill_month(
            network,
            start=YEAR,
            months=12,
            kind="settlement",
            now=dt.datetime(2027, 1, 5, 8, tzinfo=dt.UTC),
        )

        settlement = Invoice.objects.get(kind="settlement")
        credit = settlement.lines.get(component="on_account")
        assert credit.amount == Decimal("-16331.70")  # 6,532.68 + 3 × 3,266.34

    def test_plan_made_before_per_connection_parts_is_shared_by_kw(self):
        network, (first,) = billed_network(accounts=1)
        _second_premises(network, first.account)
        plan = instalment_plan_create(
            account=first.account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        plan.connections = []
        plan.save(update_fields=["connections"])

        bill_month(network, start=YEAR, months=3, kind="instalment")

        assert _instalment(YEAR).net == Decimal("6532.68")  # 36 MWh shared 10 kW : 10 kW
