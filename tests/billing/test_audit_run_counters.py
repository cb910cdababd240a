"""A run's counters (total/done/held/failed/issued) say what its bills say after every
action on it: each test failed before its fix."""

import datetime as dt
from decimal import Decimal as D

import pytest

from billing.models import BillingRun, BillingRunException, Invoice
from billing.services.contract_changes import account_bill_missed, contracts_rebill_changed
from customers.services import contract_move_out
from tests.billing.factories import billed_network, register
from tests.billing.helpers import NOV, NOW, bill_month

LATER = NOW + dt.timedelta(days=20)
DEC = dt.date(2026, 12, 1)


def counters(run: BillingRun) -> tuple[int, int, int, int, int]:
    run.refresh_from_db()
    return run.total, run.done, run.held, run.failed, run.issued


def from_bills(run: BillingRun) -> tuple[int, int, int, int, int]:
    """What the run's bills and exceptions say: (total, done, held, failed, issued)."""
    bills = Invoice.objects.filter(run=run).exclude(state=Invoice.State.CANCELLED)
    failed = BillingRunException.objects.filter(run=run).count()
    return (
        bills.count() + failed,
        bills.count(),
        bills.filter(state=Invoice.State.DRAFT, held=True).count(),
        failed,
        bills.filter(number__isnull=False).count(),
    )


@pytest.mark.django_db
def test_a_draft_cancelled_for_no_contract_day_and_billed_again_counts_once():
    network, (contract,) = billed_network(accounts=1)
    run = bill_month(network, issue=False)
    assert contracts_rebill_changed(now=NOW) == ([], [])

    # a move-out on the 1st entered by mistake: the draft is cancelled
    contract_move_out(contract=contract, move_out_on=NOV)
    contracts_rebill_changed(now=LATER)
    assert not Invoice.objects.filter(run=run).exclude(state=Invoice.State.CANCELLED).exists()
    assert counters(run) == from_bills(run) == (0, 0, 0, 0, 0)

    # staff put the contract back: the account is billed into the run again, once
    contract.refresh_from_db()
    contract.valid_to = None
    contract.save()
    _rerated, [late] = contracts_rebill_changed(now=LATER + dt.timedelta(days=1))

    assert late.run_id == run.pk
    assert counters(run) == from_bills(run) == (1, 1, 0, 0, 0)  # was done 2 of total 1
    assert run.progress_percent == 100


@pytest.mark.django_db
def test_an_account_failed_in_its_chunk_and_again_after_the_run_leaves_failed_when_billed():
    network, contracts = billed_network(accounts=3)
    contracts[1].connection.boundary_registers.filter(on=DEC).delete()
    run = bill_month(network, issue=False)
    assert counters(run) == from_bills(run) == (3, 2, 0, 1, 0)

    # the nightly look tries the account (a contract change, say) when a wrong reading
    # came: it fails for another reason, found after the run
    register(contracts[1].connection, DEC, D("100"))
    assert account_bill_missed(account=contracts[1].account, run=run, now=LATER) is None
    assert BillingRunException.objects.get(run=run).code.startswith("late_")
    assert counters(run) == from_bills(run) == (3, 2, 0, 1, 0)

    register(contracts[1].connection, DEC, D("20000") + 23 * 1500)
    late = account_bill_missed(account=contracts[1].account, run=run, now=LATER)

    assert late.run_id == run.pk
    # was failed 1 beside done 3 of total 3 (progress 133 %)
    assert counters(run) == from_bills(run) == (3, 3, 0, 0, 0)
    assert run.progress_percent == 100


def nothing_changed_since_the_last_look():
    """The contracts look's cursor past every contract saved so far (the look reads
    again what changed in its overlap): what it does next comes from the exceptions."""
    from django.utils import timezone

    from billing.models import RerateCursor

    RerateCursor.objects.update_or_create(
        name="contracts", defaults={"checked_until": timezone.now() + dt.timedelta(hours=1)}
    )


@pytest.mark.django_db
def test_an_account_failed_in_its_chunk_is_billed_into_the_run_once_its_data_is_put_right():
    network, contracts = billed_network(accounts=3)
    contracts[1].connection.boundary_registers.filter(on=DEC).delete()
    run = bill_month(network, issue=False)
    assert BillingRunException.objects.get(run=run).code == "missing_register"
    nothing_changed_since_the_last_look()

    register(contracts[1].connection, DEC, D("20000") + 23 * 1500)  # the reading comes
    _rerated, billed = contracts_rebill_changed(now=LATER)

    # was never billed: no look tried an account its run's chunk could not bill
    (late,) = billed
    assert (late.account_id, late.run_id, late.state) == (contracts[1].account_id, run.pk, "draft")
    assert not BillingRunException.objects.filter(run=run).exists()
    assert counters(run) == from_bills(run) == (3, 3, 0, 0, 0)
    assert contracts_rebill_changed(now=LATER) == ([], [])


@pytest.mark.django_db
def test_an_account_failed_in_a_cancelled_run_is_left_to_the_next_run():
    from billing.services.runs import billing_run_cancel

    network, contracts = billed_network(accounts=2)
    contracts[1].connection.boundary_registers.filter(on=DEC).delete()
    run = bill_month(network, issue=False)
    billing_run_cancel(run=run)
    nothing_changed_since_the_last_look()
    register(contracts[1].connection, DEC, D("20000") + 23 * 1500)

    assert contracts_rebill_changed(now=LATER) == ([], [])
    assert not Invoice.objects.filter(account=contracts[1].account).exists()


@pytest.mark.django_db
def test_an_account_that_still_fails_keeps_its_exception_as_its_run_recorded_it():
    network, contracts = billed_network(accounts=2)
    contracts[1].connection.boundary_registers.filter(on=DEC).delete()
    run = bill_month(network, issue=False)
    recorded = BillingRunException.objects.get(run=run)
    assert recorded.code == "missing_register"
    nothing_changed_since_the_last_look()

    for night in (1, 2):  # the reading has not come
        assert contracts_rebill_changed(now=LATER + dt.timedelta(days=night)) == ([], [])

    # was rewritten each night as late_missing_register, "after the run: …", created
    # that night: the run's own failure looked like one found after it, and since when
    # the account has been unbilled was lost
    exception = BillingRunException.objects.get(run=run)
    assert (exception.code, exception.error, exception.created_at) == (
        "missing_register",
        recorded.error,
        recorded.created_at,
    )
    assert counters(run) == from_bills(run) == (2, 1, 0, 1, 0)
