import datetime as dt
from decimal import Decimal

import pytest

from billing.models import Invoice
from billing.services.aconto import (
    UnableToPlanInstalments,
    climate_corrected,
    instalment_plan_create,
)
from tests.billing.factories import billed_network, tariff_version
from tests.billing.helpers import NOW, bill_month, invoice_of

YEAR = dt.date(2026, 1, 1)


class TestClimateCorrection:
    def test_formula_of_domain_section_3(self):
        # 0.8 × 18 × 3000/2500 + 0.2 × 18 = 17.28 + 3.6
        assert climate_corrected(
            consumption=Decimal("18"),
            heating_share=Decimal("0.8"),
            dd_normal=Decimal("3000"),
            dd_actual=Decimal("2500"),
        ) == Decimal("20.88")


@pytest.mark.django_db
class TestOnAccount:
    def test_plan_uses_last_years_climate_corrected_consumption(self):
        _network, contracts = billed_network(accounts=1)
        plan = instalment_plan_create(
            account=contracts[0].account,
            year_start=YEAR,
            frequency="monthly",
            now=NOW,
            degree_days_normal=Decimal("3000"),
            degree_days_last_year=Decimal("2500"),
        )
        assert plan.last_year_mwh == Decimal("18")  # 12 × 1.5 MWh in 2025
        assert plan.estimated_mwh == Decimal("20.88")

    def test_instalments_then_settlement_credits_what_was_billed(self):
        network, contracts = billed_network(accounts=1)
        instalment_plan_create(
            account=contracts[0].account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        for quarter in (1, 4, 7, 10):
            bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")
        instalments = Invoice.objects.filter(kind="instalment").order_by("period_start")
        assert instalments.count() == 4
        first = instalments[0]
        line = first.lines.get()
        # annual: 1200 subscription + 10 kW × 120 + 18 MWh × 592.52 = 13065.36; / 4 = 3266.34
        assert line.amount == Decimal("3266.34")
        assert line.description == "On-account instalment 1 of 4"
        assert line.explanation == (
            "1/4 × estimated annual charge 13,065.36 DKK (last year 18.000 MWh, not "
            "climate-corrected (normal-year degree days unknown)) at current prices"
        )
        assert first.vat == Decimal("816.59")  # 816.585 half up
        after_the_year = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)
        settlement_run = bill_month(
            network, start=YEAR, months=12, kind="settlement", now=after_the_year
        )
        assert settlement_run.failed == 0
        settlement = invoice_of(contracts[0], kind="settlement")
        credit = settlement.lines.get(component="on_account")
        assert credit.amount == Decimal("-13065.36")
        # 2026 actual = the same 18 MWh: the net settles to zero, and the VAT rounded up
        # on each instalment (4 × 816.59 = 3266.36) goes back: the year's is 3266.34
        assert settlement.net == Decimal("0.00")
        assert settlement.vat == Decimal("-0.02")
        assert settlement.gross == Decimal("-0.02")

    def test_instalments_follow_price_changes(self):
        network, contracts = billed_network(accounts=1)
        version = network.tariffs.get().versions.get()
        instalment_plan_create(
            account=contracts[0].account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        bill_month(network, start=dt.date(2026, 1, 1), months=3, kind="instalment")
        # a new version from July doubles the energy price
        from tariffs.models import TariffVersion

        TariffVersion.objects.filter(pk=version.pk).update(valid_to=dt.date(2026, 7, 1))
        components = [dict(c) for c in version.components]
        components[2]["price"] = "1185.04"
        tariff_version(network=network, valid_from=dt.date(2026, 7, 1), components=components)
        bill_month(network, start=dt.date(2026, 7, 1), months=3, kind="instalment")
        q1, q3 = Invoice.objects.filter(kind="instalment").order_by("period_start")
        assert q1.net == Decimal("3266.34")
        assert q3.net == Decimal("5932.68")  # (2400 + 18 × 1185.04) / 4

    def test_a_price_change_inside_the_quarter_is_weighted_by_days(self):
        network, contracts = billed_network(accounts=1)
        version = network.tariffs.get().versions.get()
        instalment_plan_create(
            account=contracts[0].account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        from tariffs.models import TariffVersion

        TariffVersion.objects.filter(pk=version.pk).update(valid_to=dt.date(2026, 8, 15))
        components = [dict(c) for c in version.components]
        components[2]["price"] = "1185.04"
        tariff_version(network=network, valid_from=dt.date(2026, 8, 15), components=components)

        bill_month(network, start=dt.date(2026, 7, 1), months=3, kind="instalment")

        q3 = Invoice.objects.get(kind="instalment")
        # a year at July's prices 13,065.36 for 45 of the quarter's 92 days, at the new
        # ones 23,730.72 for 47: (13,065.36 × 45 + 23,730.72 × 47) / 92 / 4 = 4,628.492
        assert q3.net == Decimal("4628.49")
        line = q3.lines.get()
        assert "prices changing on 2026-08-15, weighted by days" in line.explanation
        assert len(q3.tariff_version_ids) == 2


def planned_network(*, accounts: int, frequency: str = "quarterly"):
    """A billed network whose accounts each have an instalment plan for 2026."""
    network, contracts = billed_network(accounts=accounts)
    for contract in contracts:
        instalment_plan_create(
            account=contract.account, year_start=YEAR, frequency=frequency, now=NOW
        )
    return network, contracts


def _degree_days(network, start: dt.date, end: dt.date, per_day: str) -> None:
    from metering.models import DegreeDay

    DegreeDay.objects.bulk_create(
        DegreeDay(network=network, on=start + dt.timedelta(days=i), degree_days=Decimal(per_day))
        for i in range((end - start).days)
    )


@pytest.mark.django_db
class TestPlanningANetwork:
    """Staff plan a year of instalments for a whole network in one go."""

    def test_plans_every_account_from_data_and_reports_the_rest(self):
        from billing.models import InstalmentPlan
        from billing.services.aconto import instalment_plans_create
        from metering.models import BoundaryRegister

        network, contracts = billed_network(accounts=4)
        network.normal_degree_days = Decimal("2906")
        network.save()
        # 2025 was mild: 365 days × 7.5 = 2737.5 degree days
        _degree_days(network, dt.date(2025, 1, 1), YEAR, "7.5")
        planned, missing = contracts[2].account, contracts[3]
        instalment_plan_create(account=planned, year_start=YEAR, frequency="monthly", now=NOW)
        BoundaryRegister.objects.filter(connection=missing.connection, on=YEAR).delete()

        result = instalment_plans_create(
            network=network, year_start=YEAR, frequency="quarterly", now=NOW
        )

        assert result.existing == [planned.pk]
        assert result.failures == {
            missing.account_id: f"No register value for connection {missing.connection_id} on "
            "2026-01-01: last year's consumption is unknown."
        }
        assert sorted(result.created) == sorted(c.account_id for c in contracts[:2])
        plan = InstalmentPlan.objects.get(account=contracts[0].account)
        # 0.8 × 18 × 2906 / 2737.5 + 0.2 × 18 = 15.2863561… + 3.6 = 18.8863561… MWh
        assert plan.last_year_mwh == Decimal("18")
        assert plan.estimated_mwh == Decimal("18.886356")
        assert plan.frequency == "quarterly"
        assert plan.year_end == dt.date(2027, 1, 1)
        assert plan.explanation == (
            "last year 18.000 MWh, climate-corrected with 80% heating share × 2906 normal"
            " / 2737.5 actual degree days = 18.886 MWh"
        )
        # the monthly plan made first is left as it was
        assert InstalmentPlan.objects.get(account=planned).frequency == "monthly"

        again = instalment_plans_create(
            network=network, year_start=YEAR, frequency="quarterly", now=NOW
        )
        assert again.created == []
        assert len(again.existing) == 3
        assert InstalmentPlan.objects.count() == 3

    def test_without_complete_degree_days_the_estimate_is_last_years_and_says_so(self):
        from billing.services.aconto import instalment_plans_create

        network, _ = billed_network(accounts=1)
        network.normal_degree_days = Decimal("2906")
        network.save()
        _degree_days(network, dt.date(2025, 1, 2), YEAR, "7.5")  # 1 January missing
        from billing.models import InstalmentPlan

        result = instalment_plans_create(
            network=network, year_start=YEAR, frequency="monthly", now=NOW
        )
        plan = InstalmentPlan.objects.get()
        assert result.created == [plan.account_id]
        assert plan.estimated_mwh == plan.last_year_mwh == Decimal("18")
        assert plan.explanation == (
            "last year 18.000 MWh, not climate-corrected (last year's degree days unknown)"
        )

    def test_a_new_tenant_inherits_the_premises_history(self):
        from billing.services.aconto import instalment_plans_create
        from customers.models import Contract
        from tests.customers.factories import AccountFactory

        network, [old] = billed_network(accounts=1)
        Contract.objects.filter(pk=old.pk).update(valid_to=YEAR)
        newcomer = AccountFactory(network=network)
        Contract.objects.create(account=newcomer, connection=old.connection, valid_from=YEAR)

        result = instalment_plans_create(
            network=network, year_start=YEAR, frequency="monthly", now=NOW
        )

        from billing.models import InstalmentPlan

        assert result.created == [newcomer.pk]
        assert InstalmentPlan.objects.get().last_year_mwh == Decimal("18")
        assert result.failures == {}

    def test_accounts_named_outside_the_network_are_refused_by_name(self):
        from billing.services.aconto import instalment_plans_create

        network, [contract] = billed_network(accounts=1)
        _elsewhere, [foreign] = billed_network(accounts=1)
        result = instalment_plans_create(
            network=network,
            year_start=YEAR,
            frequency="monthly",
            now=NOW,
            account_ids=[contract.account_id, foreign.account_id],
        )
        assert result.created == [contract.account_id]
        assert result.failures == {
            foreign.account_id: f"No contract in {network.code} during the plan year."
        }

    def test_a_year_must_start_on_the_first(self):
        from billing.services.aconto import UnableToPlanInstalments, instalment_plans_create

        network, _ = billed_network(accounts=1)
        with pytest.raises(UnableToPlanInstalments):
            instalment_plans_create(
                network=network, year_start=dt.date(2026, 1, 15), frequency="monthly", now=NOW
            )


def _billed_net(account) -> Decimal:
    """Net of every issued document of the account (credit notes negative)."""
    return sum(
        (i.net for i in Invoice.objects.filter(account=account, number__isnull=False)),
        Decimal("0"),
    )


@pytest.mark.django_db
class TestPlanningAYearPartlyInvoiced:
    """The settlement bills the whole plan year and credits only instalments: a year
    that invoices already bill in part is not planned, and the refusal says from when
    it can be."""

    FEB_2 = dt.datetime(2026, 2, 2, 8, 0, tzinfo=dt.UTC)

    def test_an_account_whose_january_was_invoiced_is_planned_from_february(self):
        network, [contract] = billed_network(accounts=1)
        bill_month(network, start=YEAR, now=self.FEB_2)
        january = invoice_of(contract, kind="invoice")

        with pytest.raises(UnableToPlanInstalments) as refused:
            instalment_plan_create(
                account=contract.account, year_start=YEAR, frequency="monthly", now=NOW
            )

        assert refused.value.message == (
            "Invoices already bill part of the plan year from 2026-01-01 "
            f"({january.display_number} for 2026-01-01 to 2026-01-31), and its settlement "
            "would bill those days again: plan the year from 2026-02-01, the first month "
            "not invoiced."
        )
        plan = instalment_plan_create(
            account=contract.account,
            year_start=dt.date(2026, 2, 1),
            frequency="monthly",
            now=NOW,
        )
        assert (plan.year_start, plan.year_end) == (dt.date(2026, 2, 1), dt.date(2027, 2, 1))

    def test_a_network_planning_reports_them_and_plans_an_account_whose_invoice_was_credited(
        self,
    ):
        from billing.services.aconto import instalment_plans_create
        from billing.services.invoices import invoice_credit

        network, [invoiced, credited] = billed_network(accounts=2)
        bill_month(network, start=YEAR, now=self.FEB_2)
        january = invoice_of(invoiced, kind="invoice")
        invoice_credit(invoice=invoice_of(credited, kind="invoice"), now=self.FEB_2)

        result = instalment_plans_create(
            network=network, year_start=YEAR, frequency="quarterly", now=NOW
        )

        assert result.created == [credited.account_id]
        assert result.failures == {
            invoiced.account_id: "Invoices already bill part of the plan year from 2026-01-01 "
            f"({january.display_number} for 2026-01-01 to 2026-01-31), and its settlement "
            "would bill those days again: plan the year from 2026-04-01, the first quarter "
            "not invoiced."
        }
        # the credited January is billed once, by the year's settlement
        for quarter in (1, 4, 7, 10):
            bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")
        after_the_year = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)
        run = bill_month(network, start=YEAR, months=12, kind="settlement", now=after_the_year)
        assert (run.total, run.failed) == (1, 0)
        # 1200 + 10 kW × 120 + 18 MWh × 592.52
        assert _billed_net(credited.account) == Decimal("13065.36")

    def test_a_runs_draft_counts_and_a_cancelled_one_does_not(self):
        from billing.services.runs import billing_run_cancel

        network, [contract] = billed_network(accounts=1)
        run = bill_month(network, start=YEAR, now=self.FEB_2, issue=False)
        draft = invoice_of(contract, kind="invoice")

        with pytest.raises(UnableToPlanInstalments, match=f"draft #{draft.pk} for 2026-01-01"):
            instalment_plan_create(
                account=contract.account, year_start=YEAR, frequency="quarterly", now=NOW
            )
        billing_run_cancel(run=run)
        plan = instalment_plan_create(
            account=contract.account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        assert plan.year_start == YEAR


@pytest.mark.django_db
class TestPlanningJob:
    """A planning staff ask for is recorded, planned by a task, and safe to run twice."""

    def _planning(self, network, **fields):
        from billing.models import InstalmentPlanning

        return InstalmentPlanning.objects.create(
            network=network, frequency="quarterly", requested_at=NOW, **fields
        )

    def test_a_request_is_planned_once_even_if_the_task_runs_again(self):
        from billing.models import InstalmentPlan
        from billing.services.aconto import instalment_planning_request, instalment_planning_run

        network, contracts = billed_network(accounts=2)
        planning = instalment_planning_request(
            network=network,
            year_start=YEAR,
            frequency="quarterly",
            account_ids=[contracts[1].account_id],
            now=NOW,
        )
        assert (planning.state, planning.account_ids) == ("queued", [contracts[1].account_id])

        done = instalment_planning_run(planning_id=planning.pk, now=NOW)
        again = instalment_planning_run(planning_id=planning.pk, now=NOW)

        assert (done.state, done.created, done.existing, done.failures) == ("done", 1, 0, [])
        assert (again.state, again.created, again.finished_at) == ("done", 1, done.finished_at)
        assert list(InstalmentPlan.objects.values_list("account_id", flat=True)) == [
            contracts[1].account_id
        ]

    def test_a_second_delivery_finishing_later_keeps_the_first_outcome(self, monkeypatch):
        from billing.models import InstalmentPlanning
        from billing.services import aconto

        network, _ = billed_network(accounts=2)
        planning = self._planning(network, year_start=YEAR)
        real = aconto.instalment_plans_create

        def first_finishes_meanwhile(**kwargs):
            result = real(**kwargs)  # this delivery plans both accounts...
            InstalmentPlanning.objects.filter(pk=planning.pk).update(
                state="done", created=2, existing=0
            )  # ...while the other delivery had already recorded the same outcome
            result.existing, result.created = result.created, []
            return result

        monkeypatch.setattr(aconto, "instalment_plans_create", first_finishes_meanwhile)

        outcome = aconto.instalment_planning_run(planning_id=planning.pk, now=NOW)

        planning.refresh_from_db()
        assert (planning.state, planning.created, planning.existing) == ("done", 2, 0)
        assert (outcome.created, outcome.existing) == (2, 0)

    def test_one_left_running_by_a_lost_worker_is_planned_when_delivered_again(self):
        network, _ = billed_network(accounts=2)
        planning = self._planning(network, year_start=YEAR, state="running")

        from billing.services.aconto import instalment_planning_run

        done = instalment_planning_run(planning_id=planning.pk, now=NOW)

        assert (done.state, done.created) == ("done", 2)

    def test_a_refused_planning_is_recorded_as_failed_with_the_reason(self):
        from billing.models import InstalmentPlan
        from billing.services.aconto import instalment_planning_request, instalment_planning_run

        network, _ = billed_network(accounts=1)
        with pytest.raises(UnableToPlanInstalments, match="first of a month"):
            instalment_planning_request(
                network=network, year_start=dt.date(2026, 1, 15), frequency="monthly", now=NOW
            )
        # recorded before a rule changed, say: the task refuses it and says why
        planning = self._planning(network, year_start=dt.date(2026, 1, 15))

        failed = instalment_planning_run(planning_id=planning.pk, now=NOW)

        assert failed.state == "failed"
        assert failed.error == "A settlement year starts on the first of a month."
        assert failed.finished_at is not None
        assert not InstalmentPlan.objects.exists()


@pytest.mark.django_db
class TestMovingOut:
    def test_no_instalments_after_the_customer_moved_out(self):
        from billing.models import BillingRunException
        from customers.models import Contract

        network, contracts = planned_network(accounts=2)
        gone = contracts[1]
        Contract.objects.filter(pk=gone.pk).update(valid_to=dt.date(2026, 3, 1))

        first = bill_month(network, start=dt.date(2026, 1, 1), months=3, kind="instalment")
        second = bill_month(network, start=dt.date(2026, 4, 1), months=3, kind="instalment")

        assert (first.total, first.failed) == (2, 0)  # still supplied in January–February
        # the one who left pays for January and February only: 59 of the quarter's 90 days
        # 13,065.36 × 59 / (4 × 90) = 2141.2673… → 2141.27; the other pays a full quarter
        left = Invoice.objects.get(account=gone.account, kind="instalment").lines.get()
        assert left.amount == Decimal("2141.27")
        assert "13,065.36 DKK × 59/90 days supplied" in left.explanation
        stayed = Invoice.objects.get(
            account=contracts[0].account, kind="instalment", period_start=YEAR
        ).lines.get()
        assert stayed.amount == Decimal("3266.34")
        assert (second.total, second.failed) == (1, 0)
        assert not BillingRunException.objects.exists()
        assert list(
            Invoice.objects.filter(period_start=dt.date(2026, 4, 1)).values_list(
                "account_id", flat=True
            )
        ) == [contracts[0].account_id]

    def test_a_contract_renewed_on_the_same_connection_pays_one_premises_charge(self):
        from customers.models import Contract
        from tests.customers.factories import ContractFactory

        network, contracts = planned_network(accounts=1)
        renewed = contracts[0]
        Contract.objects.filter(pk=renewed.pk).update(valid_to=dt.date(2026, 2, 15))
        ContractFactory(
            account=renewed.account, connection=renewed.connection, valid_from=dt.date(2026, 2, 15)
        )

        bill_month(network, start=YEAR, months=3, kind="instalment")

        # (1200 subscription + 10 kW × 120 + 18 MWh × 592.52) / 4 = 13,065.36 / 4, once
        line = Invoice.objects.get(kind="instalment").lines.get()
        assert line.amount == Decimal("3266.34")
        assert "estimated annual charge 13,065.36 DKK" in line.explanation

    def test_a_renewal_with_new_kw_prices_each_contracts_days_at_its_own_kw(self):
        """Renewed on 15 February with 20 kW instead of 10: the quarter's 45 days before
        are estimated at 10 kW and its 45 days after at 20 kW, not all 90 at 20."""
        from customers.models import Contract
        from customers.services import connection_capacity_change
        from tests.customers.factories import ContractFactory

        network, contracts = planned_network(accounts=1)
        renewed = contracts[0]
        renewal = dt.date(2026, 2, 15)
        Contract.objects.filter(pk=renewed.pk).update(valid_to=renewal)
        ContractFactory(account=renewed.account, connection=renewed.connection, valid_from=renewal)
        connection_capacity_change(
            connection=renewed.connection, capacity_kw=Decimal("20"), valid_from=renewal
        )

        bill_month(network, start=YEAR, months=3, kind="instalment")

        # 13,065.36 a year at 10 kW, 14,265.36 at 20 kW (+ 10 kW × 120.00), by days:
        # (13,065.36 × 45 + 14,265.36 × 45) / 90 = 13,665.36; a quarter of it 3,416.34
        line = Invoice.objects.get(kind="instalment").lines.get()
        assert line.amount == Decimal("3416.34")
        assert "estimated annual charge 13,665.36 DKK" in line.explanation
        assert "weighted by days" in line.explanation


@pytest.mark.django_db
class TestNoDayOfTheYearSupplied:
    """An instalment billed in advance, then a move-out on the plan year's first day
    recorded late: the year's settlement bills nothing and credits the instalment."""

    AFTER_THE_YEAR = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)

    def test_the_years_settlement_credits_the_instalment_and_nothing_else(self):
        from billing.services.payments import account_balance
        from customers.models import Contract
        from customers.services import contract_move_out

        network, [contract] = planned_network(accounts=1)
        bill_month(network, start=YEAR, months=3, kind="instalment")
        instalment = invoice_of(contract, kind="instalment")
        assert (instalment.net, instalment.gross) == (Decimal("3266.34"), Decimal("4082.93"))

        contract_move_out(contract=Contract.objects.get(pk=contract.pk), move_out_on=YEAR)
        run = bill_month(network, start=YEAR, months=12, kind="settlement", now=self.AFTER_THE_YEAR)

        assert (run.total, run.done, run.failed) == (1, 1, 0)
        settlement = invoice_of(contract, kind="settlement")
        credit = settlement.lines.get()
        assert (credit.component, credit.amount) == ("on_account", Decimal("-3266.34"))
        assert "1 instalments, 3,266.34 DKK excl. VAT, credited" in credit.explanation
        # the year's VAT 0.00 less the 816.59 invoiced on the instalment
        assert (settlement.net, settlement.vat, settlement.gross) == (
            Decimal("-3266.34"),
            Decimal("-816.59"),
            Decimal("-4082.93"),
        )
        assert _billed_net(contract.account) == Decimal("0.00")
        assert account_balance(account=contract.account) == Decimal("0.00")
        from billing.documents import invoice_context

        context = invoice_context(invoice=settlement)  # the PDF: no day supplied
        assert (context["title"], context["moved_out"], context["days"]) == (
            "Final settlement",
            YEAR,
            0,
        )

    def test_staff_settle_it_at_once_once_the_account_is_closed(self):
        from billing.models import InstalmentPlan
        from billing.services.aconto import final_settlement_issue
        from customers.models import Account, Contract
        from customers.services import contract_move_out

        network, [contract] = planned_network(accounts=1)
        bill_month(network, start=YEAR, months=3, kind="instalment")
        contract_move_out(contract=Contract.objects.get(pk=contract.pk), move_out_on=YEAR)
        Account.objects.filter(pk=contract.account_id).update(status=Account.Status.CLOSED)

        final = final_settlement_issue(
            plan=InstalmentPlan.objects.get(account=contract.account), now=NOW
        )

        assert final.number is not None
        assert [line.amount for line in final.lines.all()] == [Decimal("-3266.34")]
        assert final.gross == Decimal("-4082.93")
        assert _billed_net(contract.account) == Decimal("0.00")
        run = bill_month(network, start=YEAR, months=12, kind="settlement", now=self.AFTER_THE_YEAR)
        assert (run.total, run.done, run.failed) == (1, 1, 0)  # counted as billed
        assert Invoice.objects.filter(kind="settlement").count() == 1

    def test_with_no_instalment_standing_there_is_nothing_to_settle(self):
        from billing.models import InstalmentPlan
        from billing.services.aconto import UnableToSettle, final_settlement_issue
        from billing.services.invoices import invoice_credit
        from customers.models import Account, Contract
        from customers.services import contract_move_out

        network, [contract] = planned_network(accounts=1)
        bill_month(network, start=YEAR, months=3, kind="instalment")
        invoice_credit(invoice=invoice_of(contract, kind="instalment"), now=NOW)
        contract_move_out(contract=Contract.objects.get(pk=contract.pk), move_out_on=YEAR)
        Account.objects.filter(pk=contract.account_id).update(status=Account.Status.CLOSED)

        with pytest.raises(UnableToSettle) as refused:
            final_settlement_issue(
                plan=InstalmentPlan.objects.get(account=contract.account), now=NOW
            )

        assert refused.value.message == (
            f"Account {contract.account.number} was not supplied in the plan year from "
            "2026-01-01, and no instalment billed for it stands."
        )
        assert not Invoice.objects.filter(kind="settlement").exists()


@pytest.mark.django_db
class TestFinalSettlement:
    def _moved_out_and_closed(self):
        from billing.models import InstalmentPlan
        from customers.models import Account, Contract

        network, contracts = planned_network(accounts=2)
        bill_month(network, start=YEAR, months=3, kind="instalment")
        stays, leaves = contracts
        Contract.objects.filter(pk=leaves.pk).update(valid_to=dt.date(2026, 3, 1))
        Account.objects.filter(pk=leaves.account_id).update(status=Account.Status.CLOSED)
        return network, stays, leaves, InstalmentPlan.objects.get(account=leaves.account)

    def test_a_closed_account_is_settled_now_and_the_years_run_skips_it(self):
        from billing.services.aconto import final_settlement_issue

        network, stays, leaves, plan = self._moved_out_and_closed()

        final = final_settlement_issue(plan=plan, now=NOW)

        assert final.kind == "settlement"
        assert final.number is not None
        assert (final.period_start, final.period_end) == (YEAR, dt.date(2027, 1, 1))
        energy = final.lines.get(component="energy")
        assert (energy.quantity, energy.amount) == (Decimal("3"), Decimal("1777.56"))  # Jan–Feb
        assert energy.period_end == dt.date(2026, 3, 1)
        credit = final.lines.get(component="on_account")
        assert credit.amount == Decimal("-3266.34")  # the one instalment issued
        # 1200 a year and 10 kW × 120 a year, each for two whole months: 200.00 + 200.00
        # + 1777.56 − 3266.34
        assert final.net == Decimal("-1088.78")
        assert final.gross == Decimal("-1360.98")  # VAT −272.195 → −272.20

        after_the_year = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)
        run = bill_month(network, start=YEAR, months=12, kind="settlement", now=after_the_year)
        assert (run.total, run.done, run.failed) == (2, 2, 0)
        assert Invoice.objects.filter(account=leaves.account, kind="settlement").count() == 1
        assert Invoice.objects.filter(account=stays.account, kind="settlement").count() == 1

    def test_a_final_settlement_in_credit_settles_the_open_instalment(self):
        from billing.services.aconto import final_settlement_issue
        from billing.services.payments import account_balance, account_credit

        _network, _stays, leaves, plan = self._moved_out_and_closed()
        instalment = Invoice.objects.get(account=leaves.account, kind="instalment")
        assert (instalment.gross, instalment.paid) == (Decimal("4082.93"), Decimal("0"))

        final = final_settlement_issue(plan=plan, now=NOW)

        instalment.refresh_from_db()
        final.refresh_from_db()
        # the settlement's credit of 1360.98 is used on what is still open, not left
        # beside an unpaid instalment that dunning would chase
        assert instalment.paid == Decimal("1360.98")
        assert instalment.state == Invoice.State.PARTLY_PAID
        assert (final.paid, final.state) == (Decimal("-1360.98"), Invoice.State.PAID)
        assert instalment.allocations.get().credit_note == final
        assert account_credit(account=leaves.account) == Decimal("0.00")
        assert account_balance(account=leaves.account) == Decimal("2721.95")
        # both documents say so
        from billing.documents import invoice_context

        assert invoice_context(invoice=final)["credit_use"] == {
            "rows": [
                {
                    "label": f"Settles invoice {instalment.display_number}",
                    "amount": Decimal("1360.98"),
                }
            ],
            "left": Decimal("0.00"),
        }
        settled = invoice_context(invoice=instalment)["settled"]
        assert [r["label"] for r in settled["rows"]] == [
            f"Settled by {final.get_kind_display().lower()} {final.display_number} of "
            f"{NOW.date():%Y-%m-%d}"
        ]
        assert settled["open"] == Decimal("2721.95")

    def test_a_final_settlement_in_credit_can_be_paid_back(self):
        from billing.services.aconto import final_settlement_issue
        from billing.services.payments import (
            account_balance,
            account_credit,
            payment_record,
            refund_record,
        )

        _network, _stays, leaves, plan = self._moved_out_and_closed()
        instalment = Invoice.objects.get(account=leaves.account, kind="instalment")
        payment_record(
            account=leaves.account,
            amount=instalment.gross,
            received_on=dt.date(2026, 4, 1),
            now=NOW,
        )

        final = final_settlement_issue(plan=plan, now=NOW)

        assert account_credit(account=leaves.account) == Decimal("1360.98")
        refund = refund_record(
            account=leaves.account, amount=Decimal("1360.98"), paid_on=NOW.date(), now=NOW
        )
        final.refresh_from_db()
        assert [(p.credit_note_id, p.amount) for p in refund.parts.all()] == [
            (final.pk, Decimal("1360.98"))
        ]
        assert final.state == Invoice.State.PAID
        assert account_balance(account=leaves.account) == Decimal("0.00")

    def test_the_pdf_calls_it_final_and_shows_the_days_supplied(self):
        from billing.documents import invoice_context
        from billing.services.aconto import final_settlement_issue

        network, _stays, _leaves, plan = self._moved_out_and_closed()
        # degree days for the months supplied only: 3 a day this year, 2 a day last year
        _degree_days(network, dt.date(2026, 1, 1), dt.date(2026, 3, 1), "3")
        _degree_days(network, dt.date(2025, 1, 1), dt.date(2025, 3, 1), "2")
        context = invoice_context(invoice=final_settlement_issue(plan=plan, now=NOW))
        assert context["title"] == "Final settlement"
        assert context["moved_out"] == dt.date(2026, 3, 1)
        assert (context["period_last_day"], context["days"]) == (dt.date(2026, 2, 28), 59)
        # last January–February's 3 MWh in this year's weather: 0.8 × 3 × 1.5 + 0.2 × 3
        assert context["last_mwh"] == Decimal("3")
        assert context["weather"]["last_corrected_mwh"] == Decimal("4.200")

    def test_refusals(self):
        from billing.models import InstalmentPlan
        from billing.services.aconto import UnableToSettle, final_settlement_issue
        from heatutility.errors import ConflictError

        _network, stays, _leaves, plan = self._moved_out_and_closed()
        open_plan = InstalmentPlan.objects.get(account=stays.account)
        with pytest.raises(UnableToSettle, match="is not closed"):
            final_settlement_issue(plan=open_plan, now=NOW)
        with pytest.raises(UnableToSettle, match="still ahead"):
            final_settlement_issue(plan=plan, now=dt.datetime(2026, 2, 27, tzinfo=dt.UTC))
        final_settlement_issue(plan=plan, now=NOW)
        with pytest.raises(ConflictError, match="already settled"):
            final_settlement_issue(plan=plan, now=NOW)
