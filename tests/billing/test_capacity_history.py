"""Capacity is billed with the kW in force each day (customers.CapacityChange)."""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import Invoice
from billing.services.contract_changes import contracts_rebill_changed
from billing.services.rerating import invoice_rerate
from customers.services import connection_capacity_change
from tests.billing.factories import billed_network
from tests.billing.helpers import NOW, bill_month

D = Decimal
NOV16 = dt.date(2026, 11, 16)
LATER = NOW + dt.timedelta(days=20)


def lines_of(invoice) -> list[tuple[str, str, Decimal, Decimal]]:
    return [
        (line.component, line.description, line.quantity, line.amount)
        for line in invoice.lines.order_by("position")
    ]


@pytest.mark.django_db
class TestCapacityChangeInsideThePeriod:
    def test_each_part_of_the_month_is_charged_at_its_own_kw(self):
        network, (contract,) = billed_network(accounts=1)  # 10 kW, 1.5 MWh a month
        connection_capacity_change(
            connection=contract.connection, capacity_kw=D("20"), valid_from=NOV16
        )

        bill_month(network)

        invoice = Invoice.objects.get(account=contract.account, kind="invoice")
        capacity = [(q, a) for c, _d, q, a in lines_of(invoice) if c == "capacity"]
        # 120.00 per kW and year: a month's 1/12 by days, 15 of 30 days at each kW
        assert capacity == [(D("10"), D("50.00")), (D("20"), D("100.00"))]
        # only the charges on the kW are cut: the month's energy and subscription are whole
        energy = [(q, a) for c, _d, q, a in lines_of(invoice) if c == "energy"]
        assert energy == [(D("1.5"), D("888.78"))]
        subscription = [a for c, _d, _q, a in lines_of(invoice) if c == "subscription"]
        assert subscription == [D("100.00")]
        assert invoice.net == D("1138.78")  # 100.00 + 50.00 + 100.00 + 888.78
        assert invoice.gross == D("1423.48")  # + 284.695 VAT, half up
        (segment,) = invoice.determinants["segments"]
        assert segment["contracted_kw"] == "10.00"
        assert segment["contracted_kw_from"] == [["2026-11-01", "10.00"], ["2026-11-16", "20.00"]]

    def test_a_change_on_the_periods_first_day_bills_the_month_at_the_new_kw(self):
        network, (contract,) = billed_network(accounts=1)
        connection_capacity_change(
            connection=contract.connection, capacity_kw=D("20"), valid_from=dt.date(2026, 11, 1)
        )

        bill_month(network)

        invoice = Invoice.objects.get(account=contract.account, kind="invoice")
        capacity = [(q, a) for c, _d, q, a in lines_of(invoice) if c == "capacity"]
        assert capacity == [(D("20"), D("200.00"))]


@pytest.mark.django_db
class TestRerating:
    def test_a_past_month_is_recomputed_with_the_kw_it_had(self):
        network, (contract,) = billed_network(accounts=1)
        bill_month(network, start=dt.date(2026, 10, 1))
        october = Invoice.objects.get(account=contract.account, kind="invoice")

        # from November on (in force today: the connection itself now says 20 kW)
        connection_capacity_change(
            connection=contract.connection, capacity_kw=D("20"), valid_from=dt.date(2026, 11, 1)
        )
        contract.connection.refresh_from_db()
        assert contract.connection.contracted_capacity_kw == D("20")

        assert invoice_rerate(invoice=october, now=LATER) is None  # same figures: nothing issued

    def test_a_change_dated_back_into_a_billed_month_rerates_it(self):
        network, (contract,) = billed_network(accounts=1)
        bill_month(network)
        assert contracts_rebill_changed(now=NOW) == ([], [])
        original = Invoice.objects.get(account=contract.account, kind="invoice")

        connection_capacity_change(
            connection=contract.connection, capacity_kw=D("20"), valid_from=NOV16
        )
        [(credit, correction)], billed = contracts_rebill_changed(now=LATER)

        assert billed == []
        assert credit.original_id == original.pk
        assert correction.net - original.net == D("50.00")  # 10 kW more for 15 of 30 days
        assert contracts_rebill_changed(now=LATER) == ([], [])
