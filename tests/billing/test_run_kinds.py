"""A network may hold accounts billed monthly and accounts on account (a-conto): each
run bills only its own kind, so no day is billed twice."""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import BillingRunException, Invoice
from billing.services.aconto import instalment_plan_create
from tests.billing.factories import billed_network
from tests.billing.helpers import NOW, bill_month

YEAR = dt.date(2026, 1, 1)
AFTER_THE_YEAR = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)


def _mixed():
    network, (planned, monthly) = billed_network(accounts=2)
    instalment_plan_create(account=planned.account, year_start=YEAR, frequency="quarterly", now=NOW)
    return network, planned, monthly


@pytest.mark.django_db
class TestRunKinds:
    def test_an_invoice_run_leaves_out_accounts_on_account(self):
        network, planned, monthly = _mixed()

        run = bill_month(network, start=YEAR)

        assert (run.total, run.failed) == (1, 0)
        assert not Invoice.objects.filter(account=planned.account, kind="invoice").exists()
        assert Invoice.objects.get(account=monthly.account, kind="invoice").net == Decimal(
            "1088.78"
        )

    def test_a_settlement_run_settles_only_accounts_on_account(self):
        network, planned, monthly = _mixed()
        bill_month(network, start=YEAR, months=3, kind="instalment")
        for month in range(1, 13):
            bill_month(network, start=dt.date(2026, month, 1), now=AFTER_THE_YEAR)

        run = bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR)

        assert run.total == 1
        assert Invoice.objects.filter(account=planned.account, kind="settlement").count() == 1
        assert not Invoice.objects.filter(account=monthly.account, kind="settlement").exists()
        # the monthly account's year: its 12 invoices, nothing more
        monthly_net = sum(i.net for i in Invoice.objects.filter(account=monthly.account))
        assert monthly_net == Decimal("13065.36")

    def test_a_plan_year_covering_part_of_the_period_stops_the_account_with_a_reason(self):
        network, contracts = billed_network(accounts=1)
        instalment_plan_create(
            account=contracts[0].account,
            year_start=dt.date(2026, 2, 1),
            frequency="monthly",
            now=NOW,
        )

        run = bill_month(network, start=YEAR, months=3, issue=False)

        assert (run.total, run.failed) == (1, 1)
        assert not Invoice.objects.exists()
        exception = BillingRunException.objects.get(run=run)
        assert exception.code == "on_account_in_part"
        assert "2026-02-01" in exception.error
