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

    # the nightly look tries the account (a contract change, say) before the reading came
    assert account_bill_missed(account=contracts[1].account, run=run, now=LATER) is None
    assert BillingRunException.objects.get(run=run).code == "late_missing_register"
    assert counters(run) == from_bills(run) == (3, 2, 0, 1, 0)

    register(contracts[1].connection, DEC, D("20000") + 23 * 1500)
    late = account_bill_missed(account=contracts[1].account, run=run, now=LATER)

    assert late.run_id == run.pk
    # was failed 1 beside done 3 of total 3 (progress 133 %)
    assert counters(run) == from_bills(run) == (3, 3, 0, 0, 0)
    assert run.progress_percent == 100
