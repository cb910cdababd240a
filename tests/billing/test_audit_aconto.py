"""Audit of on-account billing (billing/services/aconto.py): nothing billed twice between
instalments, settlements and invoice runs; bad plan input refused with a reason.

Tariff (tests.billing.factories): 1,200 subscription + 10 kW × 120 + MWh × 592.52 a year,
so one premises with 18 MWh a year is 13,065.36 a year, 3,266.34 a quarter.
"""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import InstalmentPlan, Invoice, InvoiceLine
from billing.services.aconto import (
    UnableToPlanInstalments,
    final_settlement_issue,
    instalment_plan_create,
    instalment_planning_request,
    instalment_plans_create,
)
from customers.models import Account, Contract
from tests.billing.factories import billed_network, register
from tests.billing.helpers import NOW, bill_month

YEAR = dt.date(2026, 1, 1)
AFTER_THE_YEAR = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)


def _planned(accounts=1, *, frequency="quarterly", year_start=YEAR):
    network, contracts = billed_network(accounts=accounts)
    for contract in contracts:
        instalment_plan_create(
            account=contract.account, year_start=year_start, frequency=frequency, now=NOW
        )
    return network, contracts


def _billed_net(account) -> Decimal:
    """Net of every issued document of the account (credit notes included)."""
    return sum(
        (i.net for i in Invoice.objects.filter(account=account, number__isnull=False)),
        Decimal("0"),
    )


@pytest.mark.django_db
class TestNoInstalmentAfterTheYearIsSettled:
    def test_no_instalment_after_a_final_settlement(self):
        network, (stays, leaves) = _planned(accounts=2)
        Contract.objects.filter(pk=leaves.pk).update(valid_to=dt.date(2026, 3, 1))
        Account.objects.filter(pk=leaves.account_id).update(status=Account.Status.CLOSED)
        plan = InstalmentPlan.objects.get(account_id=leaves.account_id)
        final = final_settlement_issue(plan=plan, now=NOW)
        # no instalment issued yet: Jan–Feb's actual charge, nothing credited
        assert not final.lines.filter(component="on_account").exists()
        assert final.net == Decimal("2177.56")  # 200 + 200 + 3 MWh × 592.52

        # the first quarter's instalment run comes after (late): the settled year is
        # not charged again on account for January–February
        bill_month(network, start=YEAR, months=3, kind="instalment")

        assert not Invoice.objects.filter(account=leaves.account, kind="instalment").exists()
        assert Invoice.objects.filter(account=stays.account, kind="instalment").count() == 1
        assert _billed_net(leaves.account) == Decimal("2177.56")

    def test_no_instalment_after_the_annual_settlement(self):
        network, (contract,) = _planned(accounts=1)
        for quarter in (1, 4, 7):
            bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")
        settlement_run = bill_month(
            network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR
        )
        assert settlement_run.failed == 0
        # 18 MWh used: the year 13,065.36 less three instalments 9,799.02
        assert _billed_net(contract.account) == Decimal("13065.36")

        # the fourth quarter's instalment run, forgotten, is made after the settlement
        bill_month(
            network, start=dt.date(2026, 10, 1), months=3, kind="instalment", now=AFTER_THE_YEAR
        )

        assert not Invoice.objects.filter(
            kind="instalment", period_start=dt.date(2026, 10, 1), number__isnull=False
        ).exists()
        assert _billed_net(contract.account) == Decimal("13065.36")


@pytest.mark.django_db
class TestSettlementOnlyOfThePlanYear:
    def test_a_settlement_run_not_over_the_plan_year_does_not_bill_invoiced_months(self):
        # the plan year runs from July; January–June were billed by monthly invoices
        network, (contract,) = _planned(
            accounts=1, frequency="monthly", year_start=dt.date(2026, 7, 1)
        )
        for month in range(1, 7):
            run = bill_month(network, start=dt.date(2026, month, 1))
            assert run.failed == 0
        assert _billed_net(contract.account) == Decimal("6532.68")  # 6 × (100 + 100 + 1.5 × 592.52)
        for month in range(7, 13):
            bill_month(network, start=dt.date(2026, month, 1), kind="instalment")

        # a settlement run for the calendar year 2026, not the plan year: not its account
        run = bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR)

        assert (run.total, run.failed) == (0, 0)
        assert not Invoice.objects.filter(kind="settlement").exists()
        # and asked directly, the settlement refuses it with the reason
        from billing.services.aconto import settlement_drafts

        drafts, failures = settlement_drafts(
            currency=network.currency,
            account_ids=[contract.account_id],
            period_start=YEAR,
            period_end=dt.date(2027, 1, 1),
        )
        assert drafts == []
        assert failures[contract.account_id].code == "not_plan_year"
        energy = InvoiceLine.objects.filter(
            invoice__account=contract.account,
            invoice__number__isnull=False,
            component="energy",
            period_start__lt=dt.date(2026, 7, 1),
        )
        assert sum((line.quantity for line in energy), Decimal("0")) == Decimal("9")


@pytest.mark.django_db
class TestPlanningRefusals:
    def test_a_year_past_the_supported_dates_is_refused_not_a_500(self):
        network, _ = billed_network(accounts=1)
        with pytest.raises(UnableToPlanInstalments):
            instalment_planning_request(
                network=network, year_start=dt.date(9999, 1, 1), frequency="monthly", now=NOW
            )

    def test_a_quarterly_year_not_starting_a_calendar_quarter_is_refused(self):
        network, _ = billed_network(accounts=1)
        with pytest.raises(UnableToPlanInstalments, match="quarter"):
            instalment_plans_create(
                network=network, year_start=dt.date(2026, 2, 1), frequency="quarterly", now=NOW
            )

    def test_a_negative_last_year_is_not_planned(self):
        network, (contract,) = billed_network(accounts=1)
        # a meter exchanged without continuing the register: the year "used" −10 MWh
        register(contract.connection, YEAR, Decimal("0"))
        result = instalment_plans_create(
            network=network, year_start=YEAR, frequency="monthly", now=NOW
        )
        assert result.created == []
        assert contract.account_id in result.failures


@pytest.mark.django_db
def test_an_instalment_of_a_settled_year_is_refused_when_drafted():
    """A run planned before the settlement was issued still holds the account in its
    chunk: computing its instalment says the year is settled."""
    from billing.services.aconto import instalment_drafts

    _network, (stays, leaves) = _planned(accounts=2)
    Contract.objects.filter(pk=leaves.pk).update(valid_to=dt.date(2026, 3, 1))
    Account.objects.filter(pk=leaves.account_id).update(status=Account.Status.CLOSED)
    final_settlement_issue(plan=InstalmentPlan.objects.get(account_id=leaves.account_id), now=NOW)

    drafts, failures = instalment_drafts(
        currency="DKK",
        account_ids=[stays.account_id, leaves.account_id],
        period_start=YEAR,
        period_end=dt.date(2026, 4, 1),
    )

    assert [d.account_id for d in drafts] == [stays.account_id]
    assert failures[leaves.account_id].code == "year_settled"


@pytest.mark.django_db
class TestSettlementWithDraftsPending:
    def test_an_instalment_still_a_draft_stops_the_settlement(self):
        from billing.models import BillingRunException
        from billing.services.runs import billing_run_issue

        network, (contract,) = _planned(accounts=1)
        for quarter in (1, 4, 7):
            bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")
        q4 = bill_month(
            network, start=dt.date(2026, 10, 1), months=3, kind="instalment", issue=False
        )

        run = bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR)

        # settled now, it would credit three instalments; the fourth, issued after it,
        # would bill 3,266.34 more than the year's 13,065.36
        assert (run.done, run.failed) == (0, 1)
        assert BillingRunException.objects.get(run=run).code == "instalment_draft_pending"
        assert not Invoice.objects.filter(kind="settlement").exists()
        billing_run_issue(run=q4, issued_at=NOW)
        assert _billed_net(contract.account) == Decimal("13065.36")

    def test_an_instalment_credit_note_still_a_draft_stops_the_settlement(self):
        from billing.services.invoices import invoice_cancel_draft, invoice_credit

        network, (contract,) = _planned(accounts=1)
        for quarter in (1, 4, 7, 10):
            bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")
        second = Invoice.objects.get(kind="instalment", period_start=dt.date(2026, 4, 1))
        note = invoice_credit(invoice=second, now=NOW, issue=False)

        run = bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR)

        # settled now, the instalment would be left out as credited; the credit note then
        # cancelled, the customer would pay it on top of the year's 13,065.36
        assert (run.done, run.failed) == (0, 1)
        assert not Invoice.objects.filter(kind="settlement").exists()
        invoice_cancel_draft(invoice=note)
        assert _billed_net(contract.account) == Decimal("13065.36")


@pytest.mark.django_db
def test_a_price_change_before_a_move_in_is_not_weighted_into_its_instalment():
    """Instalments follow price changes weighted by days: by the days the account is
    supplied, not days before it moved in at prices it never paid."""
    from tariffs.models import TariffVersion
    from tests.billing.factories import tariff_version
    from tests.customers.factories import AccountFactory

    network, (old,) = billed_network(accounts=1)
    version = network.tariffs.get().versions.get()
    TariffVersion.objects.filter(pk=version.pk).update(valid_to=dt.date(2026, 2, 1))
    components = [dict(c) for c in version.components]
    components[2]["price"] = "1185.04"  # the energy price doubles from 1 February
    tariff_version(network=network, valid_from=dt.date(2026, 2, 1), components=components)
    Contract.objects.filter(pk=old.pk).update(valid_to=dt.date(2026, 3, 1))
    newcomer = AccountFactory(network=network)
    Contract.objects.create(
        account=newcomer, connection=old.connection, valid_from=dt.date(2026, 3, 1)
    )
    instalment_plan_create(account=newcomer, year_start=YEAR, frequency="quarterly", now=NOW)

    bill_month(network, start=YEAR, months=3, kind="instalment")

    line = Invoice.objects.get(account=newcomer, kind="instalment").lines.get()
    # supplied in March only, all of it at the new prices: a year of 2400 + 18 MWh ×
    # 1185.04 = 23,730.72, × 31 / (4 × 90) = 2043.478 (not the blend with January's
    # prices, (13,065.36 × 31 + 23,730.72 × 59) / 90 × 31 / 360 = 1727.14)
    assert line.amount == Decimal("2043.48")
    assert "prices changing" not in line.explanation
