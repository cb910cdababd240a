"""Accounts an instalment or settlement run's chunk could not bill are billed once their
data is put right, as those of invoice runs are: each test failed before its fix."""

import datetime as dt
from decimal import Decimal as D

import pytest

from billing.models import BillingRun, BillingRunException, Invoice
from billing.services.aconto import instalment_plan_create
from billing.services.contract_changes import contracts_rebill_changed
from tests.billing.factories import billed_network, register
from tests.billing.helpers import NOW, bill_month
from tests.billing.test_audit_run_counters import counters, nothing_changed_since_the_last_look

YEAR = dt.date(2026, 1, 1)
NEXT_YEAR = dt.date(2027, 1, 1)
AFTER_THE_YEAR = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)
LATER = dt.datetime(2027, 1, 20, 3, 30, tzinfo=dt.UTC)


def on_account_year(accounts: int = 2):
    """A network whose accounts are on account for 2026 with four quarterly instalments
    issued (each 3,266.34 net: the year's 13,065.36 of 18 MWh)."""
    network, contracts = billed_network(accounts=accounts)
    for contract in contracts:
        instalment_plan_create(
            account=contract.account, year_start=YEAR, frequency="quarterly", now=NOW
        )
    for quarter in (1, 4, 7, 10):
        bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")
    return network, contracts


@pytest.mark.django_db
@pytest.mark.parametrize("issue", [False, True])
def test_an_account_a_settlement_run_could_not_settle_is_settled_once_its_reading_comes(issue):
    network, contracts = on_account_year()
    contracts[1].connection.boundary_registers.filter(on=NEXT_YEAR).delete()
    run = bill_month(
        network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR, issue=issue
    )
    assert BillingRunException.objects.get(run=run).code == "missing_register"
    assert counters(run)[:4] == (2, 1, 0, 1)
    nothing_changed_since_the_last_look()

    register(contracts[1].connection, NEXT_YEAR, D("20000") + 24 * 1500)  # the reading comes
    _rerated, billed = contracts_rebill_changed(now=LATER)

    # was never settled: the look retried only invoice runs' exceptions, and a second
    # settlement run for the year is refused while this one stands
    (late,) = billed
    assert (late.account_id, late.kind) == (contracts[1].account_id, "settlement")
    # 18 MWh actual less the instalments' 13,065.36: net 0.00, VAT back 0.02
    assert (late.net, late.vat, late.gross) == (D("0.00"), D("-0.02"), D("-0.02"))
    assert not BillingRunException.objects.filter(run=run).exists()
    if issue:  # after the run's issue: issued at once, as the run issued the other one
        other = Invoice.objects.get(account=contracts[0].account, kind="settlement")
        assert late.number == other.number + 1
        assert (late.run_id, late.state) == (None, other.state)
    else:  # one of the run's drafts, issued with the rest
        assert (late.run_id, late.state) == (run.pk, "draft")
        assert counters(run) == (2, 2, 0, 0, 0)
    assert contracts_rebill_changed(now=LATER) == ([], [])
    assert Invoice.objects.filter(kind="settlement").exclude(state="cancelled").count() == 2


@pytest.mark.django_db
def test_an_account_an_instalment_run_could_not_bill_is_billed_once_its_tariff_is_there():
    from tariffs.models import Tariff, TariffAssignment
    from tests.billing.factories import tariff_version

    network, contracts = billed_network(accounts=2)
    for contract in contracts:
        instalment_plan_create(
            account=contract.account, year_start=YEAR, frequency="quarterly", now=NOW
        )
    special = Tariff.objects.create(network=network, code="special", name="Special")
    TariffAssignment.objects.create(
        connection=contracts[1].connection, tariff=special, valid_from=dt.date(2024, 1, 1)
    )
    run = bill_month(network, start=YEAR, months=3, kind="instalment", issue=False)
    assert BillingRunException.objects.get(run=run).code == "no_tariff"
    nothing_changed_since_the_last_look()

    tariff_version(network=network, tariff=special)  # the tariff gets its version
    _rerated, billed = contracts_rebill_changed(now=NOW)

    (late,) = billed
    assert (late.account_id, late.kind, late.run_id, late.state) == (
        contracts[1].account_id,
        "instalment",
        run.pk,
        "draft",
    )
    assert late.net == D("3266.34")
    assert counters(run) == (2, 2, 0, 0, 0)
    assert not BillingRunException.objects.filter(run=run).exists()


@pytest.mark.django_db
def test_an_account_failed_in_a_cancelled_settlement_run_is_left_to_the_next_run():
    from billing.services.runs import billing_run_cancel

    network, contracts = on_account_year()
    contracts[1].connection.boundary_registers.filter(on=NEXT_YEAR).delete()
    run = bill_month(
        network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR, issue=False
    )
    billing_run_cancel(run=run)
    nothing_changed_since_the_last_look()
    register(contracts[1].connection, NEXT_YEAR, D("20000") + 24 * 1500)

    assert contracts_rebill_changed(now=LATER) == ([], [])
    run.refresh_from_db()
    assert run.state == BillingRun.State.CANCELLED
    assert not Invoice.objects.filter(account=contracts[1].account, kind="settlement").exists()
