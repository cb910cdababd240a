"""Audit of payments: amounts that round to nothing, ambiguous thousands
separators in bank statements, bank transaction ids re-used with other data, and two
payments or imports at once (PostgreSQL)."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connections

from billing.models import Allocation, Invoice, Payment, Refund
from billing.services import payments as payment_services
from billing.services.payments import (
    PaymentImportInvalid,
    account_balance,
    payment_record,
    payments_import_csv,
    refund_record,
)
from heatutility.errors import DomainError
from tests.billing.factories import billed_network
from tests.billing.helpers import NOW, bill_month, invoice_of
from tests.customers.factories import AccountFactory, NetworkFactory

HEADER = "date,amount,reference,account,transaction_id\n"
D = Decimal


def errors_of(exc: PaymentImportInvalid) -> list[tuple]:
    return [(e.row, e.field, e.code) for e in exc.errors]


@pytest.mark.django_db
class TestAmountsThatRoundToNothing:
    """Positivity is checked on the amount as booked (rounded to the minor unit), so an
    amount that rounds to zero is a DomainError (422), not a CHECK violation (500)."""

    def test_a_payment_of_less_than_half_a_minor_unit_is_refused(self):
        account = AccountFactory(network=NetworkFactory(currency="ISK"))  # no minor unit
        with pytest.raises(DomainError, match="positive"):
            payment_record(
                account=account, amount=D("0.40"), received_on=dt.date(2026, 12, 3), now=NOW
            )
        dkk = AccountFactory(network=NetworkFactory(currency="DKK"))
        with pytest.raises(DomainError, match="positive"):
            payment_record(
                account=dkk, amount=D("0.004"), received_on=dt.date(2026, 12, 3), now=NOW
            )
        assert not Payment.objects.exists()

    def test_a_refund_of_less_than_half_a_minor_unit_is_refused(self):
        account = AccountFactory(network=NetworkFactory(currency="DKK"))
        payment_record(
            account=account, amount=D("10.00"), received_on=dt.date(2026, 12, 3), now=NOW
        )
        with pytest.raises(DomainError, match="positive"):
            refund_record(account=account, amount=D("0.004"), paid_on=dt.date(2026, 12, 4), now=NOW)
        assert not Refund.objects.exists()
        assert Payment.objects.get().unallocated == D("10.00")


@pytest.fixture
def account():
    return AccountFactory(network=NetworkFactory(currency="DKK"))


@pytest.mark.django_db
class TestAmbiguousThousands:
    """``1.234`` is 1,234.00 in a Danish statement and 1.234 in an English one: read as a
    decimal it was booked as 1.23 DKK, a thousandth of the payment, without a word."""

    @pytest.mark.parametrize("written", ["1.234", '"1,234"', "12.500", '"999,000"', "+1.234"])
    def test_a_single_separator_before_three_digits_is_an_itemised_error(self, account, written):
        text = (
            HEADER
            + f"2026-12-03,100.00,first,{account.number},tx-1\n"
            + f"2026-12-03,{written},ref,{account.number},tx-2\n"
        )
        with pytest.raises(PaymentImportInvalid) as info:
            payments_import_csv(text=text, now=NOW)
        assert errors_of(info.value) == [(3, "amount", "ambiguous")]
        assert not Payment.objects.exists()

    @pytest.mark.parametrize(
        ("written", "amount"),
        [
            ("1.234,00", "1234.00"),
            ("1,234.00", "1234.00"),
            ("1.234.567", "1234567.00"),
            ("0.005", "0.01"),
            ("12.34", "12.34"),
            ("1234", "1234.00"),
            ("1 234", "1234.00"),
        ],
    )
    def test_unambiguous_amounts_are_read_as_before(self, account, written, amount):
        text = HEADER + f'2026-12-03,"{written}",ref,{account.number},tx-1\n'
        assert payments_import_csv(text=text, now=NOW).created == 1
        assert Payment.objects.get().amount == D(amount)

    def test_an_ambiguous_outgoing_row_is_still_skipped(self, account):
        text = HEADER + f"2026-12-03,-1.234,fee,,tx-1\n2026-12-03,5.00,x,{account.number},tx-2\n"
        result = payments_import_csv(text=text, now=NOW)
        assert (result.created, result.skipped) == (1, 1)


@pytest.mark.django_db
class TestTransactionIdsImportedBefore:
    """A transaction id seen in an earlier import is a duplicate only if it is the same
    transaction (account, date, amount); another payment under a re-used id (banks that
    number per statement) was dropped as a 'duplicate': the customer's money was never
    booked and the invoice went on to dunning."""

    def test_the_same_transaction_sent_again_is_a_duplicate(self, account):
        text = HEADER + f"2026-12-03,100.00,first,{account.number},tx-1\n"
        payments_import_csv(text=text, now=NOW)
        again = payments_import_csv(text=text.replace("first", "first (re-sent)"), now=NOW)
        assert (again.created, again.duplicates) == (0, 1)
        assert Payment.objects.count() == 1

    def test_another_payment_under_an_id_imported_before_is_a_conflict(self, account):
        other = AccountFactory(network=account.network)
        payments_import_csv(text=HEADER + f"2026-12-03,100.00,first,{account.number},1\n", now=NOW)
        later = (
            HEADER
            + f"2027-01-05,40.00,ok,{account.number},2\n"
            + f"2027-01-05,250.00,january,{other.number},1\n"
        )
        with pytest.raises(PaymentImportInvalid) as info:
            payments_import_csv(text=later, now=NOW)
        assert errors_of(info.value) == [(3, "transaction_id", "conflict")]
        assert "imported before" in info.value.errors[0].message
        assert Payment.objects.count() == 1  # nothing of the refused statement stored
        assert account_balance(account=other) == D("0.00")

    def test_a_concurrent_import_of_another_payment_under_the_id_is_a_conflict(
        self, account, monkeypatch
    ):
        real = payment_services.payment_record

        def raced(**kwargs):
            if kwargs["bank_transaction_id"] == "tx-2":  # recorded meanwhile, other amount
                real(**{**kwargs, "amount": D("999.00")})
            return real(**kwargs)

        monkeypatch.setattr(payment_services, "payment_record", raced)
        text = (
            HEADER
            + f"2026-12-03,100.00,a,{account.number},tx-1\n"
            + f"2026-12-03,200.00,b,{account.number},tx-2\n"
        )
        with pytest.raises(PaymentImportInvalid) as info:
            payments_import_csv(text=text, now=NOW)
        assert errors_of(info.value) == [(3, "transaction_id", "conflict")]
        assert not Payment.objects.exists()  # the whole import rolled back


def in_threads(*fns):
    errors, barrier = [], threading.Barrier(len(fns))

    def wrap(fn):
        try:
            barrier.wait()
            fn()
        except Exception as exc:  # pragma: no cover - reported by the caller
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=wrap, args=(fn,)) for fn in fns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestConcurrent:
    def test_two_payments_at_once_never_allocate_more_than_is_open(self):
        network, (contract,) = billed_network(accounts=1)
        bill_month(network)
        invoice = invoice_of(contract)

        def pay():
            payment_record(
                account=contract.account,
                amount=invoice.gross,
                received_on=dt.date(2026, 12, 3),
                now=NOW,
            )

        assert in_threads(pay, pay) == []
        invoice.refresh_from_db()
        assert (invoice.paid, invoice.state) == (invoice.gross, Invoice.State.PAID)
        assert sum(Allocation.objects.values_list("amount", flat=True)) == invoice.gross
        assert sorted(Payment.objects.values_list("unallocated", flat=True)) == [
            D("0.00"),
            invoice.gross,
        ]

    def test_the_same_statement_imported_twice_at_once_books_each_payment_once(self):
        network, contracts = billed_network(accounts=2)
        bill_month(network)
        text = HEADER + "".join(
            f"2026-12-03,100.00,x,{c.account.number},tx-{n}\n" for n, c in enumerate(contracts)
        )
        results = []

        def run():
            results.append(payments_import_csv(text=text, now=NOW))

        assert in_threads(run, run) == []
        assert sorted((r.created, r.duplicates) for r in results) == [(0, 2), (2, 0)]
        assert Payment.objects.count() == 2
        assert [i.paid for i in Invoice.objects.all()] == [D("100.00"), D("100.00")]
