"""Which invoices the nightly re-rating look reads for changed registers, and in which
order it re-rates them."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Invoice
from billing.services.rerating import (
    _around,
    _spans,
    current_invoices,
    invoices_affected_by_registers,
    invoices_rerate_changed,
)
from tests.billing.factories import billed_network, register
from tests.billing.helpers import bill_month

JAN, JUN, NOV = dt.date(2026, 1, 1), dt.date(2026, 6, 1), dt.date(2026, 11, 1)

pytestmark = pytest.mark.django_db


def test_days_a_month_apart_are_one_span_and_further_apart_two():
    days = [dt.date(2026, 12, 1), dt.date(2026, 1, 1), dt.date(2026, 1, 20), dt.date(2026, 2, 20)]

    assert _spans(days) == [
        (dt.date(2026, 1, 1), dt.date(2026, 2, 20)),
        (dt.date(2026, 12, 1), dt.date(2026, 12, 1)),
    ]


def test_changed_days_far_apart_do_not_read_the_bills_of_the_months_between():
    network, contracts = billed_network(accounts=2)
    for start in (JAN, JUN, NOV):
        bill_month(network, start=start)
    connection = contracts[0].connection_id
    # a correction of January's first register and the registers of 1 December
    pairs = {(connection, JAN), (connection, dt.date(2026, 12, 1))}

    read = sorted({i.period_start for i in _around(current_invoices(), pairs)})

    # January's bills hold 1 January and November's 1 December; June's neither (before,
    # every bill from January to November was read and decoded)
    assert read == [JAN, NOV]


def test_a_register_a_year_before_a_bill_still_finds_that_bill():
    network, contracts = billed_network(accounts=1)
    bill_month(network, start=NOV)
    connection = contracts[0].connection_id

    read = list(_around(current_invoices(), {(connection, dt.date(2025, 12, 1))}))

    assert [i.period_start for i in read] == [NOV]


def test_affected_invoices_come_newest_period_first_then_by_account_number():
    network, contracts = billed_network(accounts=2)
    for start in (JUN, NOV):
        bill_month(network, start=start)
    first, second = sorted(contracts, key=lambda c: c.account.number)
    pairs = {(c.connection_id, day) for c in contracts for day in (JUN, NOV)}

    found = invoices_affected_by_registers(pairs)

    assert [(i.period_start, i.account_id) for i in found] == [
        (NOV, first.account_id),
        (NOV, second.account_id),
        (JUN, first.account_id),
        (JUN, second.account_id),
    ]


def test_a_look_over_changes_far_apart_rerates_both_ends():
    network, contracts = billed_network(accounts=1)
    for start in (JAN, JUN, NOV):
        bill_month(network, start=start)
    connection = contracts[0].connection
    # the registers were 10,000 kWh on 1 January 2025 and 1,500 kWh more each month
    register(connection, JAN, Decimal("27900"))  # was 28,000: January used 100 kWh more
    register(connection, dt.date(2026, 12, 1), Decimal("46000"))  # was 44,500

    results = invoices_rerate_changed(now=timezone.now())

    corrected = sorted(
        (credit.original.period_start, correction.lines.get(component="energy").quantity)
        for credit, correction in results
    )
    # December 2025 (not billed here) aside: January 1.6 MWh, November 3.0 MWh
    assert corrected == [(JAN, Decimal("1.6")), (NOV, Decimal("3"))]
    assert Invoice.objects.filter(kind="correction", original__period_start=JUN).count() == 0
