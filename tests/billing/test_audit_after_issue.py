"""Audit of what follows an invoice's issue: payments, credit notes' money, refunds,
balance and dunning.  Each test reproduced a defect before its fix.

Worked figures (tariff of tests/billing/factories): a month of 1.5 MWh is 1,360.98 gross,
of 1.0 MWh 990.65.
"""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction

from billing.models import Invoice, Payment
from billing.services import invoices as invoice_services
from billing.services import rerating
from billing.services.dunning import invoices_mark_overdue
from billing.services.invoices import invoice_credit
from billing.services.payments import (
    RefundExceedsCredit,
    account_balance,
    account_credit,
    payment_record,
    refund_record,
)
from billing.services.rerating import invoice_rerate
from tests.billing.factories import billed_network, register
from tests.billing.helpers import NOW, bill_month
from tests.concurrency import Pause, finish, in_thread, waits_for_a_lock

D = Decimal
FIRST_OF_NOVEMBER = NOW - dt.timedelta(days=31)
MONTH_GROSS = D("1360.98")


def three_months_billed():
    """August, September and October of one account, billed on 1 November."""
    network, (contract,) = billed_network(accounts=1)
    for start in (dt.date(2026, 8, 1), dt.date(2026, 9, 1), dt.date(2026, 10, 1)):
        bill_month(network, start=start, now=FIRST_OF_NOVEMBER)
    invoices = list(Invoice.objects.filter(account=contract.account).order_by("pk"))
    return contract, invoices


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestCreditWhileAPaymentIsAllocated:
    """Crediting an invoice locked it alone, then (its credit note settling the account's
    other open invoices) those; a payment of the account locks them all in id order.  A
    payment that held the older invoices and waited for the credited one deadlocked:
    PostgreSQL aborted the payment (a 500, or a whole statement import refused)."""

    def pay_while_crediting(self, monkeypatch, *, pause_at, credit, before=None):
        contract, invoices = three_months_billed()
        if before is not None:
            before(contract)
        pause = Pause(monkeypatch, *pause_at)  # the credit holds its locks there
        crediting, credited = in_thread(credit, invoice=invoices[-1], now=NOW)
        pause.wait()
        paying, paid = in_thread(
            payment_record,
            account=contract.account,
            amount=D("5000.00"),
            received_on=dt.date(2026, 12, 1),
            now=NOW,
        )
        waited = waits_for_a_lock(paying, "billing_invoice")
        pause.released.set()
        finish(crediting, paying)
        assert waited
        assert "error" not in credited, credited
        assert "error" not in paid, paid
        for invoice in invoices:
            invoice.refresh_from_db()
        return contract.account, invoices, Payment.objects.get(pk=paid["value"].pk)

    def test_crediting_in_full(self, monkeypatch):
        account, invoices, payment = self.pay_while_crediting(
            monkeypatch, pause_at=(invoice_services, "credit_note_draft"), credit=invoice_credit
        )
        # the credit note settles October, the payment August and September
        assert [i.state for i in invoices] == [Invoice.State.PAID] * 3
        assert payment.unallocated == D("5000.00") - 2 * MONTH_GROSS == D("2278.04")
        assert account_balance(account=account) == D("-2278.04")

    def test_re_rating(self, monkeypatch):
        def lower_october(contract):  # its end register: 1.0 MWh instead of 1.5
            register(contract.connection, dt.date(2026, 11, 1), D("42500"))

        account, invoices, _payment = self.pay_while_crediting(
            monkeypatch,
            pause_at=(rerating, "invoice_recompute"),
            credit=invoice_rerate,
            before=lower_october,
        )
        correction = Invoice.objects.get(kind=Invoice.Kind.CORRECTION, original=invoices[-1])
        assert correction.gross == D("990.65")
        assert [i.state for i in invoices] == [Invoice.State.PAID] * 3
        # 5,000.00 paid for 1,360.98 + 1,360.98 + 990.65 billed
        assert account_balance(account=account) == D("-1287.39")


YEAR = dt.date(2026, 1, 1)


def settlement_in_credit():
    """A quarterly plan, Q1's instalment (4,082.93), a move-out on 1 March and the final
    settlement: −1,360.98 in the customer's favour, which settles part of the instalment
    (2,721.95 left open).  Returns (account, instalment, settlement)."""
    from billing.models import InstalmentPlan
    from billing.services.aconto import final_settlement_issue, instalment_plan_create
    from customers.models import Account, Contract

    network, (contract,) = billed_network(accounts=1)
    account = contract.account
    instalment_plan_create(account=account, year_start=YEAR, frequency="quarterly", now=NOW)
    bill_month(network, start=YEAR, months=3, kind="instalment")
    Contract.objects.filter(pk=contract.pk).update(valid_to=dt.date(2026, 3, 1))
    Account.objects.filter(pk=account.pk).update(status=Account.Status.CLOSED)
    settlement = final_settlement_issue(plan=InstalmentPlan.objects.get(account=account), now=NOW)
    instalment = Invoice.objects.get(account=account, kind=Invoice.Kind.INSTALMENT)
    return account, instalment, settlement


@pytest.mark.django_db
class TestACreditNoteToPayIsSettledByCreditHeld:
    """Crediting a settlement in the customer's favour issues a credit note to pay
    (positive gross).  Issuing it used only what credit notes had left, never a payment's
    unallocated amount: the note stayed open while the account held that much credit, and
    a refund paid the credit out although the customer owed it."""

    def test_an_overpayment_settles_the_credit_note(self):
        account, instalment, settlement = settlement_in_credit()
        assert (settlement.gross, instalment.gross) == (D("-1360.98"), D("4082.93"))
        # the customer pays the instalment as billed: 1,360.98 more than is open on it
        payment = payment_record(
            account=account, amount=D("4082.93"), received_on=dt.date(2026, 12, 10), now=NOW
        )
        assert payment.unallocated == D("1360.98")

        note = invoice_credit(invoice=settlement, now=NOW + dt.timedelta(days=9))

        assert note.gross == D("1360.98")
        note.refresh_from_db()
        payment.refresh_from_db()
        assert (note.state, note.paid) == (Invoice.State.PAID, D("1360.98"))
        assert payment.unallocated == D("0.00")
        assert account_balance(account=account) == account_credit(account=account) == D("0.00")
        with pytest.raises(RefundExceedsCredit):
            refund_record(
                account=account, amount=D("1360.98"), paid_on=dt.date(2026, 12, 20), now=NOW
            )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestMarkingOverdueWhileAPaymentIsAllocated:
    """The daily run marked a network's invoices overdue with one UPDATE, which locks
    them in the order it finds them (the table's, not their ids'); a payment locks its
    account's open invoices in id order.  An UPDATE that held a newer invoice and waited
    for an older one the payment held deadlocked with it: PostgreSQL aborted one side,
    the payment (a 500) or the whole dunning run."""

    def test_both_finish(self):
        contract, (august, september, october) = three_months_billed()
        after_october(august, september)
        held, release = threading.Event(), threading.Event()

        def hold_september():  # elsewhere: the payment takes August, then waits
            with transaction.atomic():
                Invoice.objects.select_for_update().get(pk=september.pk)
                held.set()
                assert release.wait(30)

        holding, _ = in_thread(hold_september)
        try:
            assert held.wait(30)
            paying, paid = in_thread(
                payment_record,
                account=contract.account,
                amount=D("5000.00"),
                received_on=dt.date(2026, 12, 1),
                now=NOW,
            )
            assert waits_for_a_lock(paying, "billing_invoice")
            marking, marked = in_thread(
                invoices_mark_overdue,
                today=dt.date(2026, 12, 1),
                network_id=contract.account.network_id,
            )
            # waits for August (the payment's): it used to hold October meanwhile
            assert waits_for_a_lock(marking, '"billing_invoice"."due_on" <')
        finally:
            release.set()
        finish(holding, paying, marking)
        assert "error" not in paid, paid
        assert "error" not in marked, marked
        for invoice in (august, september, october):
            invoice.refresh_from_db()
            assert invoice.state == Invoice.State.PAID


def after_october(*invoices):
    """Write ``invoices`` again until the table holds them after October, as a busy table
    does: an old snapshot held meanwhile keeps their former versions from being pruned,
    so the new ones no longer fit their page."""
    snapshot, done = threading.Event(), threading.Event()

    def hold_a_snapshot():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("SELECT count(*) FROM billing_invoice")
            snapshot.set()
            assert done.wait(30)

    holder, _ = in_thread(hold_a_snapshot)
    assert snapshot.wait(30)
    october = Invoice.objects.exclude(pk__in=[i.pk for i in invoices]).get()
    try:
        for n in range(40):
            if all(_ctid(i) > _ctid(october) for i in invoices):
                break
            Invoice.objects.filter(pk__in=[i.pk for i in invoices]).update(
                hold_reason=f"written again {n} " + "x" * 500
            )
    finally:
        done.set()
    finish(holder)
    assert all(_ctid(i) > _ctid(october) for i in invoices)


def _ctid(invoice) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT ctid::text FROM billing_invoice WHERE id = %s", [invoice.pk])
        page, item = cursor.fetchone()[0].strip("()").split(",")
    return int(page), int(item)
