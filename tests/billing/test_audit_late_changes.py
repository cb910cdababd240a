"""Audit of late contract changes and contracted-capacity history: bugs found, each
each reproduced by a test that failed before its fix."""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import BillingRunException, InstalmentPlan, Invoice
from billing.services.contract_changes import contracts_rebill_changed
from billing.services.rerating import invoice_rerate
from customers.services import contract_move_in, contract_move_out
from tests.billing.factories import billed_network, register
from tests.billing.helpers import NOW, bill_month, client_for
from tests.customers.factories import AccountFactory

pytestmark = pytest.mark.django_db

D = Decimal
LATER = NOW + dt.timedelta(days=20)
NOV1 = dt.date(2026, 11, 1)
NOV16 = dt.date(2026, 11, 16)
DEC1 = dt.date(2026, 12, 1)


def energy(invoice) -> Decimal:
    return sum((line.quantity for line in invoice.lines.filter(component="energy")), D(0))


def looked_at_everything_so_far():
    assert contracts_rebill_changed(now=NOW) == ([], [])


def test_a_held_correction_is_recomputed_after_a_late_move_out():
    network, (contract,) = billed_network(accounts=1)  # 43,000 kWh on Nov 1st
    bill_month(network)
    looked_at_everything_so_far()
    original = Invoice.objects.get(account=contract.account, kind="invoice")
    # a late Dec 1st reading: 9.5 MWh in November, more than 10 kW can deliver → held
    register(contract.connection, DEC1, D("52500"))
    _credit, held = invoice_rerate(invoice=original, now=NOW)
    assert (held.kind, held.state, held.held) == ("correction", "draft", True)
    assert energy(held) == D("9.5")

    register(contract.connection, NOV16, D("43800"))  # the move-out reading
    newcomer = AccountFactory(network=network)
    contract_move_in(
        account=newcomer, connection=contract.connection, move_in_on=NOV16, end_previous=True
    )
    _rerated, [late] = contracts_rebill_changed(now=LATER)

    assert energy(late) == D("8.7")  # the newcomer: 52,500 − 43,800
    held.refresh_from_db()
    # the old occupant's pending bill must stop at the move-out: 0.8 MWh, not 9.5
    assert energy(held) + energy(late) == D("9.5")


def test_a_move_out_undone_bills_the_period_again():
    network, (contract,) = billed_network(accounts=1)
    bill_month(network)
    looked_at_everything_so_far()
    original = Invoice.objects.get(account=contract.account, kind="invoice")
    assert original.gross == D("1360.98")

    # a move-out entered by mistake before the period: the whole invoice is credited
    contract_move_out(contract=contract, move_out_on=NOV1)
    [(credit, correction)], _ = contracts_rebill_changed(now=LATER)
    assert correction is None
    assert credit.gross == D("-1360.98")

    # staff put the contract back (the customer never left)
    contract.refresh_from_db()
    contract.valid_to = None
    contract.save()
    contracts_rebill_changed(now=LATER + dt.timedelta(days=1))

    billed = Invoice.objects.filter(
        account=contract.account, period_start=NOV1, number__isnull=False
    ).exclude(kind="credit_note")
    credited = Invoice.objects.filter(account=contract.account, kind="credit_note")
    # November is owed again in full: 1,360.98 billed, net of credits
    assert sum(i.gross for i in billed) + sum(c.gross for c in credited) == D("1360.98")


def test_a_late_move_in_on_account_for_part_of_the_period_shows_on_the_run():
    network, (contract,) = billed_network(accounts=1)
    run = bill_month(network)
    looked_at_everything_so_far()
    register(contract.connection, NOV16, D("43800"))
    newcomer = AccountFactory(network=network)
    InstalmentPlan.objects.create(  # its plan year ends inside November
        account=newcomer,
        year_start=dt.date(2025, 11, 20),
        year_end=dt.date(2026, 11, 20),
        frequency="monthly",
        last_year_mwh=D("12"),
        estimated_mwh=D("12"),
        created_at=NOW,
    )
    contract_move_in(
        account=newcomer, connection=contract.connection, move_in_on=NOV16, end_previous=True
    )

    contracts_rebill_changed(now=LATER)

    # the run would have stopped it with a reason; the late look must too
    assert BillingRunException.objects.filter(run=run, account=newcomer).exists()


SEASONAL = [
    {"type": "fixed", "code": "subscription", "description": "Subscription", "amount": "1200.00"},
    {
        "type": "energy",
        "code": "energy",
        "description": "Energy charge",
        "seasons": [
            {"label": "winter", "months": [1, 2, 3, 4, 10, 11, 12], "price": "600.00"},
            {"label": "summer", "months": [5, 6, 7, 8, 9], "price": "300.00"},
        ],
    },
]


def test_a_capacity_change_does_not_move_energy_between_seasons():
    from customers.services import connection_capacity_change
    from tests.billing.factories import contract_with_connection, tariff_version
    from tests.customers.factories import NetworkFactory

    network = NetworkFactory()
    tariff_version(network=network, components=SEASONAL)  # no capacity charge at all
    contract = contract_with_connection(network=network)
    # April 3 MWh (winter), May 1 MWh and June 0.5 MWh (summer), each month measured
    for day, kwh in (((4, 1), 10000), ((5, 1), 13000), ((6, 1), 14000), ((7, 1), 14500)):
        register(contract.connection, dt.date(2026, *day), D(kwh))
    connection_capacity_change(
        connection=contract.connection, capacity_kw=D("20"), valid_from=dt.date(2026, 5, 16)
    )

    bill_month(network, start=dt.date(2026, 4, 1), months=3)

    invoice = Invoice.objects.get(account=contract.account, kind="invoice")
    # 3 × 600.00 + 1.5 × 300.00 + a quarter of 1,200.00: as without the change
    assert invoice.net == D("2550.00")  # actual 2095.06: 1.52 winter MWh priced at summer


def test_a_late_move_out_leaves_the_months_before_it_alone():
    from tests.billing.factories import COMPONENTS, contract_with_connection, tariff_version
    from tests.customers.factories import NetworkFactory

    area = {
        "type": "banded",
        "code": "area",
        "description": "Area charge",
        "basis": "area",
        "bands": [{"upto": None, "unit_price": "12.00"}],
    }
    network = NetworkFactory()
    tariff_version(network=network, components=[*COMPONENTS, area])
    contract = contract_with_connection(network=network)  # since 2024, 130 m²
    for month, kwh in ((10, 40000), (11, 41500), (12, 43000)):
        register(contract.connection, dt.date(2026, month, 1), D(kwh))
    register(contract.connection, NOV16, D("42300"))
    bill_month(network, start=dt.date(2026, 10, 1))
    bill_month(network)
    looked_at_everything_so_far()
    # the contract was made long ago (each look goes back 10 minutes for late commits)
    from django.db.models import F

    from customers.models import Contract

    Contract.history.model.objects.update(history_date=F("history_date") - dt.timedelta(hours=1))
    october = Invoice.objects.get(account=contract.account, period_start=dt.date(2026, 10, 1))
    assert october.gross == D("1523.48")
    building = contract.connection.building
    building.heated_area_m2 = D("200.00")  # today's figure, for bills from now on
    building.save()

    contract_move_out(contract=contract, move_out_on=NOV16)
    rerated, _ = contracts_rebill_changed(now=LATER)

    # only November has changed days; October (actual: credited, re-billed at 1,610.98)
    assert [credit.period_start for credit, _ in rerated] == [NOV1]
    assert not Invoice.objects.filter(original=october).exists()


def test_a_capacity_of_zero_is_a_400_on_the_field():
    from customers.models import CapacityChange
    from tests.customers.factories import ServiceConnectionFactory

    connection = ServiceConnectionFactory(contracted_capacity_kw=D("10"))
    response = client_for("billing clerk").post(
        f"/api/v1/connections/{connection.pk}/capacity-changes/",
        {"valid_from": "2026-11-16", "capacity_kw": "0"},
    )

    assert not CapacityChange.objects.exists()
    assert response.status_code == 400, response.content
    assert [e.get("field") for e in response.json()["errors"]] == ["capacity_kw"]


def test_a_settlement_draft_is_recomputed_after_a_late_move_out():
    from billing.services.aconto import instalment_plan_create

    network, (contract,) = billed_network(accounts=1)  # 1.5 MWh a month all of 2026
    instalment_plan_create(
        account=contract.account, year_start=dt.date(2026, 1, 1), frequency="quarterly", now=NOW
    )
    after_the_year = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)
    bill_month(
        network,
        start=dt.date(2026, 1, 1),
        months=12,
        kind="settlement",
        issue=False,
        now=after_the_year,
    )
    assert contracts_rebill_changed(now=after_the_year) == ([], [])
    draft = Invoice.objects.get(account=contract.account, kind="settlement")
    assert energy(draft) == D("18")

    contract_move_out(contract=contract, move_out_on=dt.date(2026, 7, 1))
    contracts_rebill_changed(now=after_the_year)

    draft.refresh_from_db()
    assert energy(draft) == D("9")  # January to June only (actual: still 18 MWh)


def test_a_draft_recomputed_on_a_later_night_clears_its_exception():
    network, (contract,) = billed_network(accounts=1)
    run = bill_month(network, issue=False)  # drafted, not issued
    looked_at_everything_so_far()
    newcomer = AccountFactory(network=network)
    contract_move_in(
        account=newcomer, connection=contract.connection, move_in_on=NOV16, end_previous=True
    )
    contracts_rebill_changed(now=LATER)  # no move-out reading yet: both wait
    assert BillingRunException.objects.filter(run=run, account=contract.account).exists()

    register(contract.connection, NOV16, D("43800"))  # it arrives
    _rerated, [late] = contracts_rebill_changed(now=LATER)

    previous = Invoice.objects.get(account=contract.account, kind="invoice")
    assert energy(previous) + energy(late) == D("1.5")  # both done now
    assert not BillingRunException.objects.filter(run=run, resolved=False).exists()


def test_a_run_issued_during_the_look_does_not_crash_it(monkeypatch):
    from billing.services import rerating
    from billing.services.runs import billing_run_issue

    network, (contract,) = billed_network(accounts=1)
    run = bill_month(network, issue=False)
    looked_at_everything_so_far()
    register(contract.connection, NOV16, D("43800"))
    contract_move_out(contract=contract, move_out_on=NOV16)
    recompute = rerating.invoice_recompute  # draft_refresh's

    def staff_issue_the_run_meanwhile(*, invoice, ensure=False):
        billing_run_issue(run=run, issued_at=NOW)  # what another session commits
        return recompute(invoice=invoice, ensure=ensure)

    monkeypatch.setattr(rerating, "invoice_recompute", staff_issue_the_run_meanwhile)
    contracts_rebill_changed(now=LATER)  # actual: raises InvoiceIsIssued
    monkeypatch.undo()
    contracts_rebill_changed(now=LATER)

    current = Invoice.objects.filter(account=contract.account, number__isnull=False)
    assert sum(i.gross for i in current) == D("717.53")  # the days up to the move-out


def test_a_running_run_counts_each_account_once():
    from billing.models import BillingRun
    from billing.services.runs import (
        billing_run_chunk_process,
        billing_run_create,
        billing_run_plan,
    )

    network, (contract,) = billed_network(accounts=1)
    looked_at_everything_so_far()
    run = billing_run_create(
        network=network, period_start=NOV1, now=NOW, chunk_size=5, render_pdfs=False
    )
    [chunk_id] = billing_run_plan(run=run, now=NOW)  # running: the chunk not done yet
    register(contract.connection, NOV16, D("43800"))
    newcomer = AccountFactory(network=network)
    contract_move_in(
        account=newcomer, connection=contract.connection, move_in_on=NOV16, end_previous=True
    )
    contracts_rebill_changed(now=NOW)
    billing_run_chunk_process(chunk_id=chunk_id, now=NOW)

    run = BillingRun.objects.get(pk=run.pk)
    bills = Invoice.objects.filter(run=run).exclude(state="cancelled")
    assert sum(energy(i) for i in bills) == D("1.5")  # billed once between the two
    assert (run.state, run.total, run.done) == ("drafted", bills.count(), bills.count())


def test_a_settlement_correction_that_cannot_be_rerated_shows_on_its_run():
    from billing.services.aconto import instalment_plan_create

    network, (contract,) = billed_network(accounts=1)
    instalment_plan_create(
        account=contract.account, year_start=dt.date(2026, 1, 1), frequency="quarterly", now=NOW
    )
    after_the_year = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)
    run = bill_month(
        network, start=dt.date(2026, 1, 1), months=12, kind="settlement", now=after_the_year
    )
    settlement = Invoice.objects.get(account=contract.account, kind="settlement")
    register(contract.connection, dt.date(2027, 1, 1), D("46500"))  # a corrected year-end
    _credit, correction = invoice_rerate(invoice=settlement, now=after_the_year)
    assert correction.run_id is None
    assert contracts_rebill_changed(now=after_the_year) == ([], [])

    # a move-out on July 16th recorded late; the year cannot be re-rated yet
    contract_move_out(contract=contract, move_out_on=dt.date(2026, 7, 16))
    contracts_rebill_changed(now=after_the_year)

    # shown to staff on the year's run and retried each night (actual: a log line only)
    exception = BillingRunException.objects.get(run=run, account=contract.account)
    assert exception.code.startswith("late_")
