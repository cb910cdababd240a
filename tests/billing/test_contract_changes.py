"""Move-ins and move-outs recorded after their month was billed: nothing billed twice,
nothing lost (billing.services.contract_changes)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import tasks
from billing.models import Allocation, BillingRunException, Invoice
from billing.services.contract_changes import contracts_rebill_changed
from billing.services.payments import payment_record
from customers.services import contract_move_in, contract_move_out
from tests.billing.factories import billed_network, contract_with_connection, register
from tests.billing.helpers import NOW, bill_month
from tests.customers.factories import AccountFactory, NetworkFactory

LATER = NOW + dt.timedelta(days=20)
NOV16 = dt.date(2026, 11, 16)


def looked_at_everything_so_far():
    """The nightly look has run once since the arrangement's contracts were made."""
    assert contracts_rebill_changed(now=NOW) == ([], [])


def energy(invoice) -> Decimal:
    return sum((line.quantity for line in invoice.lines.filter(component="energy")), Decimal(0))


@pytest.mark.django_db
class TestLateMoveOut:
    def test_a_move_out_recorded_after_billing_credits_the_days_after_it(self):
        network, (contract,) = billed_network(accounts=1)
        bill_month(network)
        looked_at_everything_so_far()
        original = Invoice.objects.get(account=contract.account, kind="invoice")
        register(contract.connection, NOV16, Decimal("43000") + 800)  # the move-out reading

        contract_move_out(contract=contract, move_out_on=NOV16)
        [(credit, correction)], billed = contracts_rebill_changed(now=LATER)

        assert billed == []
        assert credit.kind == "credit_note"
        assert credit.original_id == original.pk
        assert correction.kind == "correction"
        assert correction.number is not None
        lines = {line.component: line for line in correction.lines.all()}
        assert lines["energy"].quantity == Decimal("0.8")
        assert lines["energy"].amount == Decimal("474.02")  # 0.8 × 592.52 = 474.016
        # 15 of November's 30 days of a month's 1/12 of 1200.00 and of 10 kW × 120.00
        assert lines["subscription"].amount == Decimal("50.00")
        assert lines["capacity"].amount == Decimal("50.00")
        assert correction.net == Decimal("574.02")
        assert correction.gross == Decimal("717.53")  # 574.02 + 143.505 VAT (143.51)

    def test_a_move_out_before_the_period_credits_the_whole_invoice(self):
        network, (contract,) = billed_network(accounts=1)
        bill_month(network)
        looked_at_everything_so_far()
        original = Invoice.objects.get(account=contract.account, kind="invoice")

        contract_move_out(contract=contract, move_out_on=dt.date(2026, 11, 1))
        [(credit, correction)], billed = contracts_rebill_changed(now=LATER)

        assert correction is None
        assert billed == []
        assert credit.gross == -original.gross
        assert credit.number is not None
        original.refresh_from_db()
        assert original.state == Invoice.State.PAID  # settled by its credit note


@pytest.mark.django_db
class TestLateMoveIn:
    def test_the_new_occupant_is_billed_for_the_days_the_run_could_not_see(self):
        network, (contract,) = billed_network(accounts=1)
        run = bill_month(network)
        looked_at_everything_so_far()
        register(contract.connection, NOV16, Decimal("43000") + 800)
        newcomer = AccountFactory(network=network)

        contract_move_in(
            account=newcomer, connection=contract.connection, move_in_on=NOV16, end_previous=True
        )
        [(_credit, correction)], [late] = contracts_rebill_changed(now=LATER)

        assert late.account_id == newcomer.pk
        assert (late.kind, late.state) == ("invoice", Invoice.State.ISSUED)
        assert late.number is not None
        assert late.run_id is None
        assert (late.period_start, late.period_end) == (dt.date(2026, 11, 1), dt.date(2026, 12, 1))
        assert energy(late) == Decimal("0.7")  # 43,000 + 1,500 at December 1st
        # the connection's 1.5 MWh billed once between the two occupants, none lost
        assert energy(correction) + energy(late) == Decimal("1.5")
        run.refresh_from_db()
        assert run.state == "issued"
        assert run.total == 1

    def test_the_late_bill_uses_the_newcomers_credit_on_the_local_day(self):
        """Looked at 23:30 UTC on 21 December, 00:30 on the 22nd in Copenhagen: the late
        bill is issued on the 22nd (local), and the newcomer's advance payment settles
        it on that day, not on the UTC date."""
        network, (contract,) = billed_network(accounts=1)
        bill_month(network)
        looked_at_everything_so_far()
        register(contract.connection, NOV16, Decimal("43000") + 800)
        newcomer = AccountFactory(network=network)
        advance = payment_record(
            account=newcomer,
            amount=Decimal("2000.00"),
            received_on=dt.date(2026, 12, 20),
            now=NOW,
        )
        contract_move_in(
            account=newcomer, connection=contract.connection, move_in_on=NOV16, end_previous=True
        )
        late_evening = dt.datetime(2026, 12, 21, 23, 30, tzinfo=dt.UTC)

        _rerated, [late] = contracts_rebill_changed(now=late_evening)

        assert late.state == Invoice.State.PAID
        allocation = Allocation.objects.get(payment=advance, invoice=late)
        assert allocation.allocated_on == dt.date(2026, 12, 22)
        assert allocation.amount == late.gross

    def test_a_run_not_issued_yet_takes_the_late_bill_in_with_its_drafts(self):
        from billing.services.runs import billing_run_issue

        network, (contract,) = billed_network(accounts=1)
        run = bill_month(network, issue=False)  # drafted, staff still reviewing
        looked_at_everything_so_far()
        register(contract.connection, NOV16, Decimal("43000") + 800)
        newcomer = AccountFactory(network=network)
        contract_move_in(
            account=newcomer, connection=contract.connection, move_in_on=NOV16, end_previous=True
        )

        _rerated, [late] = contracts_rebill_changed(now=LATER)

        assert (late.run_id, late.state) == (run.pk, Invoice.State.DRAFT)
        run.refresh_from_db()
        assert (run.total, run.done) == (2, 2)
        # the previous occupant's draft now ends at the move-out
        previous = Invoice.objects.get(account=contract.account, kind="invoice")
        assert previous.state == Invoice.State.DRAFT
        assert energy(previous) + energy(late) == Decimal("1.5")
        billing_run_issue(run=run, issued_at=LATER)
        late.refresh_from_db()
        previous.refresh_from_db()
        assert late.state == previous.state == Invoice.State.ISSUED
        assert not Invoice.objects.filter(kind__in=["credit_note", "correction"]).exists()

    def test_a_draft_with_no_contract_day_left_is_cancelled(self):
        network, (contract,) = billed_network(accounts=1)
        bill_month(network, issue=False)
        looked_at_everything_so_far()

        contract_move_out(contract=contract, move_out_on=dt.date(2026, 11, 1))
        contracts_rebill_changed(now=LATER)

        draft = Invoice.objects.get(account=contract.account, kind="invoice")
        assert draft.state == Invoice.State.CANCELLED

    def test_looking_again_bills_nothing_twice(self):
        network, (contract,) = billed_network(accounts=1)
        bill_month(network)
        looked_at_everything_so_far()
        register(contract.connection, NOV16, Decimal("43000") + 800)
        newcomer = AccountFactory(network=network)
        contract_move_in(
            account=newcomer, connection=contract.connection, move_in_on=NOV16, end_previous=True
        )
        assert len(contracts_rebill_changed(now=LATER)[1]) == 1

        assert contracts_rebill_changed(now=LATER) == ([], [])
        # even a look from the beginning of time finds everything billed
        from billing.models import RerateCursor

        RerateCursor.objects.filter(name="contracts").update(
            checked_until=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        )
        assert contracts_rebill_changed(now=LATER) == ([], [])
        assert Invoice.objects.filter(account=newcomer, kind="invoice").count() == 1
        assert Invoice.objects.filter(kind="credit_note").count() == 1

    def test_an_account_on_account_is_left_to_its_settlement(self):
        from billing.models import InstalmentPlan

        network, (contract,) = billed_network(accounts=1)
        bill_month(network)
        looked_at_everything_so_far()
        newcomer = AccountFactory(network=network)
        InstalmentPlan.objects.create(
            account=newcomer,
            year_start=dt.date(2026, 1, 1),
            year_end=dt.date(2027, 1, 1),
            frequency="monthly",
            last_year_mwh=Decimal("12"),
            estimated_mwh=Decimal("12"),
            created_at=NOW,
        )

        contract_move_in(
            account=newcomer, connection=contract.connection, move_in_on=NOV16, end_previous=True
        )
        _rerated, billed = contracts_rebill_changed(now=LATER)

        assert billed == []
        assert not Invoice.objects.filter(account=newcomer).exists()

    def test_a_move_in_day_without_a_register_shows_on_the_run_until_it_has_one(self):
        network, (contract,) = billed_network(accounts=1)
        run = bill_month(network)
        looked_at_everything_so_far()
        newcomer = AccountFactory(network=network)
        contract_move_in(
            account=newcomer, connection=contract.connection, move_in_on=NOV16, end_previous=True
        )

        assert contracts_rebill_changed(now=LATER) == ([], [])

        shown = dict(BillingRunException.objects.filter(run=run).values_list("account_id", "code"))
        assert shown == {contract.account_id: "late_rerate", newcomer.pk: "late_missing_register"}
        assert contracts_rebill_changed(now=LATER) == ([], [])  # tried again: still missing
        # the move-out reading arrives: the next night's look does both
        register(contract.connection, NOV16, Decimal("43000") + 800)

        [(_credit, correction)], [late] = contracts_rebill_changed(now=LATER)

        assert energy(correction) + energy(late) == Decimal("1.5")
        assert not BillingRunException.objects.filter(run=run).exists()
        assert contracts_rebill_changed(now=LATER) == ([], [])

    def test_an_account_that_cannot_be_billed_shows_on_the_run(self):
        network = NetworkFactory()  # no tariff: nothing can be priced
        run = bill_month(network)  # a run over no accounts yet
        assert run.state == "issued"
        looked_at_everything_so_far()

        contract = contract_with_connection(network=network, valid_from=NOV16)
        for day in (NOV16, dt.date(2026, 12, 1)):
            register(contract.connection, day, Decimal("5000"))
        _rerated, billed = contracts_rebill_changed(now=LATER)

        assert billed == []
        exception = BillingRunException.objects.get(run=run, account=contract.account)
        assert exception.code == "late_no_tariff"
        assert "after the run" in exception.error

    def test_the_beat_task_runs_the_look(self):
        network, (contract,) = billed_network(accounts=1)
        bill_month(network)
        looked_at_everything_so_far()
        register(contract.connection, NOV16, Decimal("43000") + 800)
        contract_move_in(
            account=AccountFactory(network=network),
            connection=contract.connection,
            move_in_on=NOV16,
            end_previous=True,
        )

        assert tasks.rebill_changed_contracts.delay().get() == 2  # one re-rated, one billed


@pytest.mark.django_db
class TestContractCorrectedToAnotherConnection:
    def test_the_month_billed_on_the_wrong_flat_is_credited_and_billed_on_the_right_one(self):
        """A contract entered on the wrong flat is corrected in the admin's contract form
        (same account, same dates, another connection) after its month was billed."""
        from django.forms import modelform_factory

        from customers.admin import ContractForm
        from customers.models import Contract
        from tests.customers.factories import ServiceConnectionFactory

        network, (contract,) = billed_network(accounts=1)
        right = ServiceConnectionFactory(network=network, contracted_capacity_kw=Decimal("10.00"))
        register(right, dt.date(2026, 11, 1), Decimal("50000"))
        register(right, dt.date(2026, 12, 1), Decimal("53000"))  # 3 MWh in November
        bill_month(network)
        looked_at_everything_so_far()
        # the contract was made long before: the look sees its correction, not its creation
        Contract.history.update(history_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
        original = Invoice.objects.get(account=contract.account, kind="invoice")
        assert energy(original) == Decimal("1.5")  # the wrong flat's meter
        form = modelform_factory(
            Contract, form=ContractForm, fields=("account", "connection", "valid_from", "valid_to")
        )(
            data={
                "account": contract.account_id,
                "connection": right.pk,
                "valid_from": contract.valid_from.isoformat(),
                "valid_to": "",
            },
            instance=contract,
        )
        assert form.is_valid(), form.errors
        form.save()

        [(credit, correction)], billed = contracts_rebill_changed(now=LATER)

        assert billed == []
        assert (credit.original_id, credit.net) == (original.pk, -original.net)
        lines = {line.component: line for line in correction.lines.all()}
        assert lines["energy"].connection_id == right.pk
        assert (lines["energy"].quantity, lines["energy"].amount) == (
            Decimal("3"),
            Decimal("1777.56"),  # 3 × 592.52
        )
        # a month's 1/12 of 1200.00 and of 10 kW × 120.00: 100.00 + 100.00 + 1777.56
        assert correction.net == Decimal("1977.56")
        assert correction.gross == Decimal("2471.95")  # VAT 494.39
        assert correction.number is not None
        assert contracts_rebill_changed(now=LATER) == ([], [])  # once


@pytest.mark.django_db
def test_a_settled_year_whose_move_out_on_its_first_day_comes_late_keeps_the_instalments_credited():
    """The settlement billed 2026's 18 MWh and credited its four instalments; then a
    move-out on 1 January 2026 is recorded: its correction bills nothing and credits the
    instalments still, it is not a credit note alone that leaves them billed."""
    from billing.services.aconto import instalment_plan_create
    from customers.models import Contract

    network, (contract,) = billed_network(accounts=1)
    year = dt.date(2026, 1, 1)
    instalment_plan_create(
        account=contract.account, year_start=year, frequency="quarterly", now=NOW
    )
    for quarter in (1, 4, 7, 10):
        bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")
    after_the_year = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)
    bill_month(network, start=year, months=12, kind="settlement", now=after_the_year)
    settlement = Invoice.objects.get(kind="settlement")
    assert (settlement.net, settlement.gross) == (Decimal("0.00"), Decimal("-0.02"))
    looked_at_everything_so_far()
    Contract.history.update(history_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))

    contract_move_out(contract=Contract.objects.get(pk=contract.pk), move_out_on=year)
    [(credit, correction)], billed = contracts_rebill_changed(now=after_the_year)

    assert billed == []
    assert credit.original_id == settlement.pk
    assert correction is not None
    assert [(line.component, line.amount) for line in correction.lines.all()] == [
        ("on_account", Decimal("-13065.36"))
    ]
    # the year's VAT 0.00 less 4 × 816.59 invoiced on the instalments
    assert (correction.net, correction.vat) == (Decimal("-13065.36"), Decimal("-3266.36"))
    issued = Invoice.objects.filter(account=contract.account, number__isnull=False)
    assert sum((i.net for i in issued), Decimal(0)) == Decimal("0.00")


@pytest.mark.django_db
def test_the_cursor_starts_at_the_upgrade():
    """The migration's row: an existing deployment does not recompute all of its past."""
    import importlib

    from django.apps import apps

    from billing.models import RerateCursor

    migration = importlib.import_module("billing.migrations.0012_contracts_rerate_cursor")
    RerateCursor.objects.filter(name="contracts").delete()
    before = timezone.now()

    migration.start_looking_now(apps, None)
    migration.start_looking_now(apps, None)  # a second migrate keeps the first row

    cursor = RerateCursor.objects.get(name="contracts")
    assert before <= cursor.checked_until <= timezone.now()
