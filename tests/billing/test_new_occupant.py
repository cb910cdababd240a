"""A new occupant's bill never shows the previous occupant's consumption."""

import datetime as dt

import pytest

from billing.models import Invoice
from customers.models import Contract
from tests.billing.factories import billed_network
from tests.billing.test_billing_run import run_month
from tests.customers.factories import AccountFactory, ContractFactory


def move(contract, *, on: dt.date, to_account=None):
    """End ``contract`` on ``on`` and start the next one on the same connection."""
    Contract.objects.filter(pk=contract.pk).update(valid_to=on)
    return ContractFactory(
        account=to_account or AccountFactory(network=contract.account.network),
        connection=contract.connection,
        valid_from=on,
    )


def assert_last_year(invoice, mwh: str, days: list[str]) -> None:
    """1.5 MWh this period; ``mwh`` last year, from the registers on ``days`` (read)."""
    comparison = dict(invoice.comparison)
    recorded = comparison.pop("last_year_readings")
    assert comparison == {
        "energy_mwh": "1.500000",
        "last_year_mwh": mwh,
        "last_year_estimated": False,
    }
    assert [r["on"] for r in recorded] == days
    assert {r["connection_id"] for r in recorded} == {r["connection_id"] for r in invoice.readings}


@pytest.mark.django_db
class TestSamePeriodLastYear:
    def test_a_new_occupant_gets_no_comparison_with_the_previous_one(self):
        network, (contract,) = billed_network(accounts=1)
        newcomer = move(contract, on=dt.date(2026, 6, 1))

        run_month(network)

        invoice = Invoice.objects.get(account=newcomer.account)
        # the flat used 1.5 MWh last November, but somebody else lived there then: no
        # figure, and none of their registers recorded
        assert invoice.comparison == {
            "energy_mwh": "1.500000",
            "last_year_mwh": None,
            "last_year_readings": [],
            "last_year_estimated": False,
        }
        assert not Invoice.objects.filter(account=contract.account).exists()

    def test_a_renewed_contract_keeps_the_accounts_own_history(self):
        network, (contract,) = billed_network(accounts=1)
        move(contract, on=dt.date(2026, 6, 1), to_account=contract.account)

        run_month(network)

        invoice = Invoice.objects.get(account=contract.account)
        assert_last_year(invoice, "1.500000", ["2025-11-01", "2025-12-01"])

    def test_an_occupant_who_moved_in_before_last_years_period_sees_it(self):
        network, (contract,) = billed_network(accounts=1)
        newcomer = move(contract, on=dt.date(2025, 11, 1))  # just in time for last November

        run_month(network)

        invoice = Invoice.objects.get(account=newcomer.account)
        assert_last_year(invoice, "1.500000", ["2025-11-01", "2025-12-01"])
