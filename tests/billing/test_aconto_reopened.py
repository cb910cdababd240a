"""A final settlement, then the account reopened and moved in again within the plan year.

The final settlement settles the plan year's days up to the move-out it was issued for;
the days of a later move-in in the same year are billed by monthly invoices, once: not
by instalments (the year is settled), not by the settlement (it would bill days not yet
consumed), and not twice.
"""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import InstalmentPlan, Invoice
from billing.services.aconto import final_settlement_issue, instalment_plan_create
from customers.models import Account, Contract
from customers.services import account_set_status, contract_move_in, contract_move_out
from tests.billing.factories import billed_network, register
from tests.billing.helpers import bill_month

YEAR = dt.date(2026, 1, 1)
NEXT_YEAR = dt.date(2027, 1, 1)
# a month of the factory's network: 1.5 MWh × 592.52 + 1200/12 + 10 kW × 120/12
MONTH_NET = Decimal("1088.78")


def at(day: dt.date, hour: int = 8) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC)


def month_after(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _billed_net(account) -> Decimal:
    return sum(
        (i.net for i in Invoice.objects.filter(account=account, number__isnull=False)),
        Decimal("0"),
    )


def _finally_settled(*, move_out: dt.date, settled_on: dt.date, registers=()):
    """One account on monthly instalments for 2026, billed until it moves out, closed and
    finally settled (``registers``: more (day, kWh) read on its connection)."""
    network, [contract] = billed_network(accounts=1)
    for day, kwh in registers:
        register(contract.connection, day, Decimal(kwh))
    account = contract.account
    instalment_plan_create(
        account=account, year_start=YEAR, frequency="monthly", now=at(dt.date(2025, 12, 20))
    )
    month = YEAR
    while month < move_out:
        bill_month(network, start=month, kind="instalment", now=at(month))
        month = month_after(month)
    contract_move_out(contract=Contract.objects.get(pk=contract.pk), move_out_on=move_out)
    account_set_status(account=Account.objects.get(pk=account.pk), status=Account.Status.CLOSED)
    final = final_settlement_issue(
        plan=InstalmentPlan.objects.get(account=account), now=at(settled_on)
    )
    return network, contract, final


def _moved_in_again(contract, on: dt.date) -> Contract:
    account = account_set_status(
        account=Account.objects.get(pk=contract.account_id), status=Account.Status.ACTIVE
    )
    return contract_move_in(account=account, connection=contract.connection, move_in_on=on)


def _nightly_look(now: dt.datetime):
    from billing.services.contract_changes import contracts_rebill_changed

    return contracts_rebill_changed(now=now)


@pytest.mark.django_db
class TestMovedInAgainAfterAFinalSettlement:
    def test_the_months_after_the_move_in_are_invoiced_once(self):
        network, contract, final = _finally_settled(
            move_out=dt.date(2026, 6, 1), settled_on=dt.date(2026, 6, 5)
        )
        # Jan–May: 5 × (100 + 100 + 888.78) less the five instalments of 1,088.78
        assert final.net == Decimal("0.00")
        settled = _billed_net(contract.account)
        assert settled == 5 * MONTH_NET

        _moved_in_again(contract, dt.date(2026, 7, 1))
        # the contract look the night after: the settled year is not billed again for
        # July–December in advance (the factory has registers for those future days)
        _nightly_look(at(dt.date(2026, 7, 2), 2))
        assert not Invoice.objects.filter(account=contract.account, original=final).exists()
        assert _billed_net(contract.account) == settled

        month = dt.date(2026, 6, 1)
        while month < NEXT_YEAR:
            bill_month(network, start=month, kind="instalment", now=at(month))
            bill_month(network, start=month, now=at(month_after(month), 9))
            month = month_after(month)
        bill_month(network, start=YEAR, months=12, kind="settlement", now=at(dt.date(2027, 1, 5)))
        _nightly_look(at(dt.date(2027, 1, 6), 2))

        assert not Invoice.objects.filter(
            account=contract.account, kind="instalment", period_start__gte=dt.date(2026, 6, 1)
        ).exists()
        invoices = Invoice.objects.filter(account=contract.account, kind="invoice").order_by(
            "period_start"
        )
        # July to December, one invoice each; June had no day supplied
        assert [(i.period_start, i.net) for i in invoices] == [
            (dt.date(2026, m, 1), MONTH_NET) for m in range(7, 13)
        ]
        assert Invoice.objects.filter(account=contract.account, kind="settlement").count() == 1
        assert not Invoice.objects.filter(
            account=contract.account, kind__in=("credit_note", "correction")
        ).exists()
        assert _billed_net(contract.account) == 11 * MONTH_NET  # 11,976.58

    def test_a_move_in_in_the_month_of_the_move_out_bills_its_own_days(self):
        # 1 June 10000 + 17 × 1500 = 35,500 kWh; 600 kWh by the 11th, 600 more by the 21st
        network, contract, final = _finally_settled(
            move_out=dt.date(2026, 6, 11),
            settled_on=dt.date(2026, 6, 15),
            registers=[(dt.date(2026, 6, 11), "36100"), (dt.date(2026, 6, 21), "36700")],
        )
        energy = final.lines.get(component="energy")
        assert (energy.period_end, energy.quantity) == (dt.date(2026, 6, 11), Decimal("8.1"))

        _moved_in_again(contract, dt.date(2026, 6, 21))
        _nightly_look(at(dt.date(2026, 6, 22), 2))
        assert not Invoice.objects.filter(account=contract.account, original=final).exists()

        bill_month(network, start=dt.date(2026, 6, 1), now=at(dt.date(2026, 7, 1), 9))

        june = Invoice.objects.get(account=contract.account, kind="invoice")
        # 21–30 June only (1–10 June was settled): 0.3 MWh × 592.52 = 177.756 → 177.76,
        # 1200 and 10 kW × 120 a year for 10 of June's 30 days: 33.33 + 33.33
        assert [(line.component, line.period_start, line.amount) for line in june.lines.all()] == [
            ("subscription", dt.date(2026, 6, 21), Decimal("33.33")),
            ("capacity", dt.date(2026, 6, 21), Decimal("33.33")),
            ("energy", dt.date(2026, 6, 21), Decimal("177.76")),
        ]
        assert not june.run.exceptions.exists()

    def test_a_move_in_recorded_after_the_months_run_is_billed_by_the_nightly_look(self):
        network, contract, _final = _finally_settled(
            move_out=dt.date(2026, 6, 11),
            settled_on=dt.date(2026, 6, 15),
            registers=[(dt.date(2026, 6, 11), "36100"), (dt.date(2026, 6, 21), "36700")],
        )
        run = bill_month(network, start=dt.date(2026, 6, 1), now=at(dt.date(2026, 7, 1), 9))
        # the settled 1–10 June are not invoiced, and are no exception either
        assert (run.total, run.done, run.failed) == (0, 0, 0)

        _moved_in_again(contract, dt.date(2026, 6, 21))
        _rerated, billed = _nightly_look(at(dt.date(2026, 7, 3), 2))

        [june] = billed
        assert june.number is not None
        assert (june.period_start, june.net) == (dt.date(2026, 6, 1), Decimal("244.42"))
        assert {line.period_start for line in june.lines.all()} == {dt.date(2026, 6, 21)}
        assert _nightly_look(at(dt.date(2026, 7, 4), 2)) == ([], [])


@pytest.mark.django_db
def test_a_year_settled_without_a_move_in_again_is_not_invoiced():
    network, contract, final = _finally_settled(
        move_out=dt.date(2026, 6, 11),
        settled_on=dt.date(2026, 6, 15),
        registers=[(dt.date(2026, 6, 11), "36100")],
    )
    plan = InstalmentPlan.objects.get(account=contract.account)
    assert plan.ended_on == dt.date(2026, 6, 11)

    for month in (dt.date(2026, 6, 1), dt.date(2026, 7, 1)):
        run = bill_month(network, start=month, now=at(month_after(month), 9))
        assert (run.total, run.failed) == (0, 0)
    run = bill_month(network, start=YEAR, months=12, kind="settlement", now=at(NEXT_YEAR, 9))
    assert (run.total, run.done, run.failed) == (1, 1, 0)  # the final settlement

    assert list(
        Invoice.objects.filter(account=contract.account, number__isnull=False)
        .exclude(kind="instalment")
        .values_list("pk", flat=True)
    ) == [final.pk]


@pytest.mark.django_db
def test_migration_ends_the_plans_finally_settled_before_it():
    import importlib

    from django.apps import apps

    _network, contract, _final = _finally_settled(
        move_out=dt.date(2026, 6, 1), settled_on=dt.date(2026, 6, 5)
    )
    InstalmentPlan.objects.update(ended_on=None)  # as before the migration
    migration = importlib.import_module("billing.migrations.0020_instalmentplan_ended_on")

    migration.final_settlements_end_plans(apps, None)

    assert InstalmentPlan.objects.get(account=contract.account).ended_on == dt.date(2026, 6, 1)


@pytest.mark.django_db
def test_a_move_out_corrected_later_after_the_final_settlement_invoices_the_days_after():
    network, contract, final = _finally_settled(
        move_out=dt.date(2026, 6, 1),
        settled_on=dt.date(2026, 6, 5),
        registers=[(dt.date(2026, 6, 11), "36100")],
    )
    run = bill_month(network, start=dt.date(2026, 6, 1), now=at(dt.date(2026, 7, 1), 9))
    assert run.total == 0
    Contract.objects.filter(pk=contract.pk).update(valid_to=dt.date(2026, 6, 11))
    Contract.objects.get(pk=contract.pk).save()  # recorded in the contract's history

    _rerated, billed = _nightly_look(at(dt.date(2026, 7, 3), 2))

    assert not Invoice.objects.filter(original=final).exists()  # the settlement stands
    [june] = billed
    # 1–10 June: 0.6 MWh × 592.52 = 355.51, 10 of 30 days of 100.00 twice: 33.33 + 33.33
    assert (june.period_start, june.net) == (dt.date(2026, 6, 1), Decimal("422.17"))
