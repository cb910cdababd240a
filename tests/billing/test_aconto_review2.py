"""On-account billing, second review: what was billed twice or not at all."""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import BillingRun, Invoice
from billing.services.aconto import instalment_plan_create
from billing.services.invoices import invoice_credit
from tests.billing.factories import billed_network
from tests.billing.helpers import NOW, bill_month, invoice_of

YEAR = dt.date(2026, 1, 1)
FEB_2 = dt.datetime(2026, 2, 2, 8, 0, tzinfo=dt.UTC)
AFTER_THE_YEAR = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)


def _billed_net(account) -> Decimal:
    return sum(
        (i.net for i in Invoice.objects.filter(account=account, number__isnull=False)),
        Decimal("0"),
    )


@pytest.mark.django_db
class TestACreditedInvoiceInsideAPlanYear:
    """January was invoiced, then credited in full; the year was planned on account from
    January (allowed: the credited invoice bills nothing).  The year's settlement bills
    January: billing the credited invoice again would bill it twice."""

    def _arrange(self):
        network, [contract] = billed_network(accounts=1)
        bill_month(network, start=YEAR, now=FEB_2)
        january = invoice_of(contract, kind="invoice")
        invoice_credit(invoice=january, now=FEB_2)
        instalment_plan_create(
            account=contract.account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        return network, contract, january

    def _settle_the_year(self, network):
        for quarter in (1, 4, 7, 10):
            bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")
        run = bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR)
        assert (run.total, run.failed) == (1, 0)

    def test_staff_cannot_bill_it_again(self):
        from billing.services.rerating import UnableToRerate, invoice_rebill

        network, contract, january = self._arrange()

        with pytest.raises(UnableToRerate, match="on account") as refused:
            invoice_rebill(invoice=january, now=FEB_2)

        assert refused.value.status_code == 409
        assert not Invoice.objects.filter(original=january, kind="correction").exists()
        self._settle_the_year(network)
        # 1200 + 10 kW × 120 + 18 MWh × 592.52, once (not + 1,088.78 for January again)
        assert _billed_net(contract.account) == Decimal("13065.36")

    def test_a_late_contract_change_does_not_bill_it_again(self):
        from billing.services.contract_changes import account_bill_missed

        network, contract, january = self._arrange()
        run = BillingRun.objects.get(kind="invoice", period_start=YEAR)

        assert account_bill_missed(account=contract.account, run=run, now=FEB_2) is None

        assert not Invoice.objects.filter(original=january, kind="correction").exists()
        assert not run.exceptions.exists()
        self._settle_the_year(network)
        assert _billed_net(contract.account) == Decimal("13065.36")


@pytest.fixture
def admin_client_(client):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("boss", "boss@example.org", "pw"))
    return client


@pytest.mark.django_db
class TestDeletingAPlanInTheAdmin:
    """A plan whose year has instalments billed is what the settlement run settles by:
    deleted, its instalments would never be credited (the settlement run takes accounts
    with a plan for the year), and invoice runs would bill the year again."""

    def _planned(self):
        from billing.models import InstalmentPlan

        network, [contract] = billed_network(accounts=1)
        instalment_plan_create(
            account=contract.account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        return network, contract, InstalmentPlan.objects.get()

    def test_a_plan_with_an_instalment_billed_is_not_deleted(self, admin_client_):
        from billing.models import InstalmentPlan

        network, contract, plan = self._planned()
        bill_month(network, start=YEAR, months=3, kind="instalment")
        assert invoice_of(contract, kind="instalment").net == Decimal("3266.34")

        page = admin_client_.post(
            f"/admin/billing/instalmentplan/{plan.pk}/delete/", {"post": "yes"}
        )
        assert page.status_code == 403
        admin_client_.post(
            "/admin/billing/instalmentplan/",
            {"action": "delete_selected", "_selected_action": [plan.pk], "post": "yes"},
        )
        assert InstalmentPlan.objects.filter(pk=plan.pk).exists()

        for quarter in (4, 7, 10):
            bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")
        run = bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR)
        assert (run.total, run.failed) == (1, 0)
        assert _billed_net(contract.account) == Decimal("13065.36")

    def test_a_plan_nothing_was_billed_on_may_be_deleted(self, admin_client_):
        from billing.models import InstalmentPlan

        _network, _contract, plan = self._planned()

        admin_client_.post(f"/admin/billing/instalmentplan/{plan.pk}/delete/", {"post": "yes"})

        assert not InstalmentPlan.objects.filter(pk=plan.pk).exists()
