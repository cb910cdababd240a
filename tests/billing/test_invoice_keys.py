"""An invoice's account, network and run agree (migration 0019's composite keys).

The invoice's network picks its number series; its account and its run must be of that
network.  PostgreSQL checks both at commit, as it checked the single keys before; the
account's own validation refuses moving a billed account to another network before the
key would.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection

from billing.models import BillingRun, Invoice
from customers.models import Account
from tests.billing.helpers import NOW, client_for
from tests.customers.factories import AccountFactory, NetworkFactory

pytestmark = pytest.mark.django_db


def draft(account, *, network=None, run=None) -> Invoice:
    return Invoice.objects.create(
        account=account,
        network=network or account.network,
        run=run,
        period_start=dt.date(2026, 11, 1),
        period_end=dt.date(2026, 12, 1),
        currency="DKK",
        net=Decimal("100.00"),
        vat=Decimal("25.00"),
        gross=Decimal("125.00"),
        created_at=NOW,
    )


def a_run(network) -> BillingRun:
    return BillingRun.objects.create(
        network=network,
        period_start=dt.date(2026, 11, 1),
        period_end=dt.date(2026, 12, 1),
        created_at=NOW,
    )


def commit_checks():
    """The deferred keys checked now, as at commit (the test's transaction never commits):
    Django's ``check_constraints`` (SET CONSTRAINTS ALL IMMEDIATE, then DEFERRED again).
    What fails leaves the test's transaction aborted, so it comes last."""
    connection.check_constraints()


@pytest.mark.postgres
class TestTheDatabaseKeys:
    def test_an_invoice_in_its_accounts_network_of_a_run_of_that_network_commits(self):
        account = AccountFactory()
        draft(account, run=a_run(account.network))
        draft(AccountFactory(network=account.network))  # no run: a manual invoice

        commit_checks()

        assert Invoice.objects.filter(network=account.network).count() == 2

    def test_an_invoice_numbered_in_another_network_than_its_accounts_is_refused(self):
        account = AccountFactory()
        draft(account, network=NetworkFactory())
        with pytest.raises(IntegrityError, match="invoice_account_in_network"):
            commit_checks()

    def test_an_invoice_of_a_run_of_another_network_is_refused(self):
        account = AccountFactory()
        draft(account, run=a_run(NetworkFactory()))
        with pytest.raises(IntegrityError, match="invoice_run_in_network"):
            commit_checks()

    def test_an_invoice_of_an_account_that_does_not_exist_is_refused(self):
        account = AccountFactory()
        draft(Account(pk=account.pk + 1000, network=account.network))
        with pytest.raises(IntegrityError, match="invoice_account_in_network"):
            commit_checks()

    def test_a_billed_accounts_network_cannot_change_below_the_orm(self):
        account = AccountFactory()
        draft(account)
        Account.objects.filter(pk=account.pk).update(network=NetworkFactory())
        with pytest.raises(IntegrityError, match="invoice_account_in_network"):
            commit_checks()


def test_the_api_refuses_to_move_a_billed_account_to_another_network():
    # billed without contracts (say, a manual invoice): the invoices alone keep the network
    account = AccountFactory()
    draft(account)
    other = NetworkFactory()

    response = client_for("billing clerk").patch(
        f"/api/v1/accounts/{account.pk}/", {"network": other.pk}, format="json"
    )

    assert response.status_code == 400
    assert "network" in str(response.json())
    assert "contracts or invoices" in str(response.json())
    assert Account.objects.get(pk=account.pk).network_id == account.network_id


def test_an_account_never_supplied_nor_billed_may_still_move():
    account = AccountFactory()
    other = NetworkFactory()

    response = client_for("billing clerk").patch(
        f"/api/v1/accounts/{account.pk}/", {"network": other.pk}, format="json"
    )

    assert response.status_code == 200
    assert Account.objects.get(pk=account.pk).network_id == other.pk
