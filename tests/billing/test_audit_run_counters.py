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


def of_the_period(run: BillingRun) -> tuple[int, int, int, int, int]:
    """What the bills of the run's period and its exceptions say, once the run is issued
    (a failed account billed after the issue is billed outside the run, for it:
    ``runs.bill_into_run``): (total, done, held, failed, issued)."""
    bills = Invoice.objects.filter(
        network=run.network, kind=run.kind, period_start=run.period_start, period_end=run.period_end
    ).exclude(state=Invoice.State.CANCELLED)
    failed = BillingRunException.objects.filter(run=run).count()
    return (
        bills.count() + failed,
        bills.count(),
        bills.filter(state=Invoice.State.DRAFT, held=True).count(),
        failed,
        bills.filter(number__isnull=False).count(),
    )


def issued_with_a_failed_account():
    """Three accounts billed and issued, the second failed (no reading on 1 December)."""
    network, contracts = billed_network(accounts=3)
    contracts[1].connection.boundary_registers.filter(on=DEC).delete()
    run = bill_month(network)
    assert counters(run) == of_the_period(run) == (3, 2, 0, 1, 2)
    return run, contracts


@pytest.mark.django_db
def test_a_failed_account_billed_after_the_runs_issue_counts_done_and_issued_once():
    from billing.services.runs import billing_run_exceptions_retry

    run, contracts = issued_with_a_failed_account()
    # tried while the reading is still missing: it stays the one failure its chunk counted
    assert billing_run_exceptions_retry(run=run, now=LATER) == []
    assert counters(run) == (3, 2, 0, 1, 2)

    register(contracts[1].connection, DEC, D("20000") + 23 * 1500)  # the reading comes
    (late,) = billing_run_exceptions_retry(run=run, now=LATER)

    assert (late.run_id, late.state) == (None, Invoice.State.ISSUED)
    # was (3, 2, 0, 1, 2): failed beside three issued bills, the exception gone
    assert counters(run) == of_the_period(run) == (3, 3, 0, 0, 3)
    assert run.progress_percent == 100
    # staff again and the nightly look: nothing billed, nothing counted twice
    assert billing_run_exceptions_retry(run=run, now=LATER) == []
    nothing_changed_since_the_last_look()
    assert contracts_rebill_changed(now=LATER + dt.timedelta(days=1)) == ([], [])
    assert counters(run) == (3, 3, 0, 0, 3)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_retries_at_once_bill_and_count_the_failed_account_once(monkeypatch):
    """Staff retrying while the nightly look bills the account: the second waits for the
    run's lock, then finds the account billed and counts nothing."""
    from billing.services import runs
    from billing.services.runs import billing_run_exceptions_retry
    from tests.concurrency import Pause, finish, in_thread, waits_for_a_lock

    run, contracts = issued_with_a_failed_account()
    register(contracts[1].connection, DEC, D("20000") + 23 * 1500)
    pause = Pause(monkeypatch, runs, "invoices_issue")  # the first holds the run, bill written
    first, first_billed = in_thread(billing_run_exceptions_retry, run=run, now=LATER)
    try:
        pause.wait()
        second, second_billed = in_thread(billing_run_exceptions_retry, run=run, now=LATER)
        assert waits_for_a_lock(second, "billing_billingrun")
    finally:
        pause.released.set()
    finish(first, second)

    assert "error" not in first_billed
    assert "error" not in second_billed
    assert [len(first_billed["value"]), len(second_billed["value"])] == [1, 0]
    assert counters(run) == of_the_period(run) == (3, 3, 0, 0, 3)


@pytest.mark.django_db
def test_a_failed_account_billed_held_after_the_runs_issue_counts_held_then_issued():
    from billing.services.invoices import invoice_release
    from billing.services.runs import billing_run_exceptions_retry, billing_run_issue

    run, contracts = issued_with_a_failed_account()
    # the reading comes, 9.5 MWh in November: more than 10 kW can deliver, held
    register(contracts[1].connection, DEC, D("53000") + 9500)
    (late,) = billing_run_exceptions_retry(run=run, now=LATER)

    assert (late.run_id, late.state, late.held) == (run.pk, Invoice.State.DRAFT, True)
    # was (3, 3, 0, 0, 2): done but not held, and its release issued it outside the run
    assert counters(run) == of_the_period(run) == (3, 3, 1, 0, 2)

    invoice_release(invoice=late, note="checked the meter", now=LATER)
    assert counters(run) == of_the_period(run) == (3, 3, 0, 0, 2)
    assert billing_run_issue(run=run, issued_at=LATER) == [late.pk]  # "Issue unheld drafts"
    late.refresh_from_db()
    assert (late.state, late.number is not None) == (Invoice.State.ISSUED, True)
    assert counters(run) == of_the_period(run) == (3, 3, 0, 0, 3)  # was issued 2
    assert billing_run_issue(run=run, issued_at=LATER) == []
    assert counters(run) == (3, 3, 0, 0, 3)


@pytest.mark.django_db
def test_a_late_held_bill_issued_by_itself_is_counted_issued_by_its_run():
    from billing.services.invoices import invoice_issue, invoice_release
    from billing.services.runs import billing_run_exceptions_retry

    run, contracts = issued_with_a_failed_account()
    register(contracts[1].connection, DEC, D("53000") + 9500)
    (late,) = billing_run_exceptions_retry(run=run, now=LATER)
    late = invoice_release(invoice=late, now=LATER)
    invoice_issue(invoice=late, issued_at=LATER)  # the invoice admin's "Issue drafts"

    assert counters(run) == of_the_period(run) == (3, 3, 0, 0, 3)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_retries_at_once_count_a_held_late_bill_once(monkeypatch):
    """The first retry holds the run with the held draft written; the second waits for
    the run, finds the account billed and counts nothing."""
    from billing.services import runs
    from billing.services.runs import billing_run_exceptions_retry
    from tests.concurrency import Pause, finish, in_thread, waits_for_a_lock

    run, contracts = issued_with_a_failed_account()
    register(contracts[1].connection, DEC, D("53000") + 9500)
    pause = Pause(monkeypatch, runs, "drafts_write", after=True)
    first, first_billed = in_thread(billing_run_exceptions_retry, run=run, now=LATER)
    try:
        pause.wait()
        second, second_billed = in_thread(billing_run_exceptions_retry, run=run, now=LATER)
        assert waits_for_a_lock(second, "billing_billingrun")
    finally:
        pause.released.set()
    finish(first, second)

    assert "error" not in first_billed
    assert "error" not in second_billed
    assert [len(first_billed["value"]), len(second_billed["value"])] == [1, 0]
    assert counters(run) == of_the_period(run) == (3, 3, 1, 0, 2)


NOV16 = dt.date(2026, 11, 16)


def a_newcomer_without_a_move_in_reading(*, issue: bool):
    """One account billed for November; a new occupant recorded late, moved in on the
    16th, with no register that day: the run never planned the newcomer's account."""
    from customers.services import contract_move_in
    from tests.customers.factories import AccountFactory

    network, (contract,) = billed_network(accounts=1)
    run = bill_month(network, issue=issue)
    assert contracts_rebill_changed(now=NOW) == ([], [])
    newcomer = AccountFactory(network=network)
    contract_move_in(
        account=newcomer, connection=contract.connection, move_in_on=NOV16, end_previous=True
    )
    return run, contract, newcomer


@pytest.mark.django_db
def test_a_late_exception_for_an_account_the_run_never_planned_counts_failed():
    run, contract, newcomer = a_newcomer_without_a_move_in_reading(issue=True)
    assert counters(run) == (1, 1, 0, 0, 1)

    assert contracts_rebill_changed(now=LATER) == ([], [])

    assert BillingRunException.objects.get(run=run, account=newcomer).code == (
        "late_missing_register"
    )
    # was (1, 1, 0, 0, 1): nothing failed beside the newcomer's exception (the previous
    # occupant's late_rerate is an account billed, counted done)
    assert counters(run) == (2, 1, 0, 1, 1)
    assert run.progress_percent == 100
    assert contracts_rebill_changed(now=LATER + dt.timedelta(days=1)) == ([], [])
    assert counters(run) == (2, 1, 0, 1, 1)  # tried again, still failing: counted once

    register(contract.connection, NOV16, D("43000") + 800)  # the move-in reading comes
    _rerated, [late] = contracts_rebill_changed(now=LATER + dt.timedelta(days=2))

    assert (late.account_id, late.run_id, late.state) == (newcomer.pk, None, Invoice.State.ISSUED)
    assert not BillingRunException.objects.filter(run=run).exists()
    assert counters(run) == (2, 2, 0, 0, 2)
    assert run.progress_percent == 100


@pytest.mark.django_db
def test_a_late_exception_for_an_unplanned_account_of_a_drafted_run_is_counted_once_billed():
    run, contract, newcomer = a_newcomer_without_a_move_in_reading(issue=False)
    assert counters(run) == from_bills(run) == (1, 1, 0, 0, 0)

    contracts_rebill_changed(now=LATER)
    assert counters(run) == (2, 1, 0, 1, 0)  # was (1, 1, 0, 0, 0)

    register(contract.connection, NOV16, D("43000") + 800)
    _rerated, [late] = contracts_rebill_changed(now=LATER + dt.timedelta(days=1))

    assert (late.account_id, late.run_id) == (newcomer.pk, run.pk)
    # the account counted failed moves to done: not total 3 (counted again as new)
    assert counters(run) == from_bills(run) == (2, 2, 0, 0, 0)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_looks_at_once_count_an_unplanned_accounts_failure_once(monkeypatch):
    """Staff's look and the night's at the newcomer at once: the second waits for the
    run's lock, finds the exception recorded and counts nothing."""
    from billing.services import contract_changes
    from tests.concurrency import Pause, finish, in_thread, waits_for_a_lock

    run, _contract, newcomer = a_newcomer_without_a_move_in_reading(issue=True)
    pause = Pause(monkeypatch, contract_changes, "late_exception_record", after=True)
    first, first_billed = in_thread(account_bill_missed, account=newcomer, run=run, now=LATER)
    try:
        pause.wait()
        second, second_billed = in_thread(account_bill_missed, account=newcomer, run=run, now=LATER)
        assert waits_for_a_lock(second, "billing_billingrun")
    finally:
        pause.released.set()
    finish(first, second)

    assert first_billed == second_billed == {"value": None}
    assert BillingRunException.objects.filter(run=run, account=newcomer).count() == 1
    assert counters(run) == (2, 1, 0, 1, 1)


@pytest.mark.django_db
def test_the_migration_counts_the_late_exceptions_recorded_before_once():
    """Exceptions recorded before for accounts the run counted nowhere were never
    counted: billing one now would take one off a ``failed`` that never counted it."""
    import importlib

    from django.apps import apps

    from customers.services import contract_move_in
    from tests.customers.factories import AccountFactory

    migration = importlib.import_module("billing.migrations.0024_count_late_failures")
    network, contracts = billed_network(accounts=2)
    contracts[1].connection.boundary_registers.filter(on=DEC).delete()  # its chunk fails it
    run = bill_month(network)
    assert contracts_rebill_changed(now=NOW) == ([], [])
    newcomer = AccountFactory(network=network)
    contract_move_in(
        account=newcomer, connection=contracts[0].connection, move_in_on=NOV16, end_previous=True
    )
    contracts_rebill_changed(now=LATER)
    codes = dict(BillingRunException.objects.filter(run=run).values_list("account_id", "code"))
    assert codes == {
        contracts[0].account_id: "late_rerate",  # billed: counted done
        contracts[1].account_id: "missing_register",  # counted failed by its chunk
        newcomer.pk: "late_missing_register",
    }
    assert counters(run) == (3, 1, 0, 2, 1)
    BillingRun.objects.filter(pk=run.pk).update(total=2, failed=1)  # as recorded before

    migration.count_late_failures(apps, None)

    assert counters(run) == (3, 1, 0, 2, 1)
    register(contracts[0].connection, NOV16, D("43000") + 800)  # the move-in reading
    contracts_rebill_changed(now=LATER + dt.timedelta(days=1))
    assert counters(run) == (3, 2, 0, 1, 2)
