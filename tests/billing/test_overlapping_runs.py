"""Invoice runs of different lengths over the same months never bill a day twice.

A network may be billed by the quarter and, for some days, by the month (the days before
an on-account plan year that starts inside a quarter).  A quarter's invoice bills its
months: a later run for one of them skips the account as billed.  A month's invoice bills
part of its quarter: a later run for the quarter would bill that month twice, so the
account is an exception naming the invoice, and the rest wants runs of months.
"""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import BillingRunException, Invoice
from billing.services.contract_changes import account_bill_missed
from tests.billing.factories import billed_network, contract_with_connection, register
from tests.billing.helpers import bill_month

# a month of the factory's network: 1.5 MWh × 592.52 + 1200/12 + 10 kW × 120/12
MONTH_NET = Decimal("1088.78")
Q3, JULY, AUGUST = dt.date(2026, 7, 1), dt.date(2026, 7, 1), dt.date(2026, 8, 1)
AFTER_Q3 = dt.datetime(2026, 10, 2, 8, tzinfo=dt.UTC)


def _invoiced(account) -> list[tuple[dt.date, dt.date, Decimal]]:
    return sorted(
        Invoice.objects.filter(account=account, kind="invoice")
        .exclude(state="cancelled")
        .values_list("period_start", "period_end", "net")
    )


@pytest.mark.django_db
class TestOverlappingInvoiceRuns:
    def test_a_month_inside_a_quarter_billed_already_is_not_billed_again(self):
        network, [contract] = billed_network(accounts=1)
        quarter = bill_month(network, start=Q3, months=3, now=AFTER_Q3)
        assert (quarter.done, quarter.failed, quarter.issued) == (1, 0, 1)

        july = bill_month(network, start=JULY, now=AFTER_Q3)

        assert (july.total, july.done, july.failed, july.issued) == (1, 1, 0, 0)
        assert _invoiced(contract.account) == [(Q3, dt.date(2026, 10, 1), 3 * MONTH_NET)]

    def test_a_quarter_over_a_month_billed_already_is_an_exception_not_a_second_july(self):
        network, [first] = billed_network(accounts=1)
        bill_month(network, start=JULY, now=AFTER_Q3)
        second = contract_with_connection(network=network)  # moved in after July's run
        register(second.connection, Q3, Decimal("20000"))
        register(second.connection, dt.date(2026, 10, 1), Decimal("24500"))

        quarter = bill_month(network, start=Q3, months=3, now=AFTER_Q3)

        assert (quarter.total, quarter.done, quarter.failed, quarter.issued) == (2, 1, 1, 1)
        assert _invoiced(first.account) == [(JULY, AUGUST, MONTH_NET)]  # not July twice
        assert _invoiced(second.account) == [(Q3, dt.date(2026, 10, 1), 3 * MONTH_NET)]
        exception = BillingRunException.objects.get(run=quarter, account=first.account)
        assert exception.code == "billed_in_part"
        number = Invoice.objects.get(account=first.account).display_number
        assert exception.error == (
            f"2026-07-01–2026-10-01 is billed in part already (invoice {number} for "
            "2026-07-01–2026-08-01): invoicing it would bill those days twice; bill the rest "
            "by runs of the billed invoices' periods"
        )
        # the nightly look does not bill it either
        assert account_bill_missed(account=first.account, run=quarter, now=AFTER_Q3) is None
        assert _invoiced(first.account) == [(JULY, AUGUST, MONTH_NET)]

        # the rest of the quarter, by the month
        august = bill_month(network, start=AUGUST, now=AFTER_Q3)
        assert (august.done, august.failed, august.issued) == (2, 0, 1)  # the second: Q3
        assert _invoiced(first.account) == [
            (JULY, AUGUST, MONTH_NET),
            (AUGUST, dt.date(2026, 9, 1), MONTH_NET),
        ]

    def test_no_run_over_the_days_of_an_invoice_run_still_billing(self):
        from billing.models import BillingRun
        from billing.services.runs import billing_run_create
        from heatutility.errors import ConflictError

        network, _ = billed_network(accounts=1)
        quarter = billing_run_create(network=network, period_start=Q3, months=3, now=AFTER_Q3)
        with pytest.raises(
            ConflictError, match=r"invoice run for \[2026-07-01, 2026-10-01\) still billing"
        ):
            billing_run_create(network=network, period_start=AUGUST, now=AFTER_Q3)
        # other days, or another kind, do not wait for it
        assert billing_run_create(network=network, period_start=dt.date(2026, 6, 1), now=AFTER_Q3)
        BillingRun.objects.filter(pk=quarter.pk).update(state=BillingRun.State.DRAFTED)
        assert billing_run_create(
            network=network, period_start=AUGUST, now=AFTER_Q3
        ).period_end == dt.date(2026, 9, 1)

    def test_the_days_before_a_plan_year_inside_a_quarter_are_billed_by_a_months_run(self):
        """The remedy ``on_account_in_part`` names: the quarter's run stops the account
        whose plan year starts inside it; a run for the month before the plan bills that
        account alone (the other's quarter invoice contains the month)."""
        from billing.models import InstalmentPlan

        network, [planned, other] = billed_network(accounts=2)
        InstalmentPlan.objects.create(
            account=planned.account,
            year_start=dt.date(2026, 2, 1),
            year_end=dt.date(2027, 2, 1),
            frequency="monthly",
            last_year_mwh=Decimal("18"),
            estimated_mwh=Decimal("18"),
            created_at=dt.datetime(2026, 1, 10, tzinfo=dt.UTC),
        )
        after_q1 = dt.datetime(2026, 4, 2, 8, tzinfo=dt.UTC)
        q1 = bill_month(network, start=dt.date(2026, 1, 1), months=3, now=after_q1)
        assert BillingRunException.objects.get(run=q1).code == "on_account_in_part"
        january = bill_month(network, start=dt.date(2026, 1, 1), now=after_q1)

        assert (january.total, january.done, january.failed, january.issued) == (2, 2, 0, 1)
        assert _invoiced(planned.account) == [(dt.date(2026, 1, 1), dt.date(2026, 2, 1), MONTH_NET)]
        assert _invoiced(other.account) == [
            (dt.date(2026, 1, 1), dt.date(2026, 4, 1), 3 * MONTH_NET)
        ]
