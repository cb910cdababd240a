import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Invoice, Payment
from billing.services.dunning import dunning_run
from billing.services.payments import (
    PaymentImportInvalid,
    account_balance,
    payment_record,
    payments_apply_unallocated,
    payments_import_csv,
)
from tests.billing.factories import billed_network
from tests.billing.helpers import NOW, bill_month, invoice_of


@pytest.mark.django_db
class TestPayments:
    def setup_two_months(self):
        network, contracts = billed_network(accounts=1)
        bill_month(network, start=dt.date(2026, 10, 1), now=NOW - dt.timedelta(days=31))
        bill_month(network, start=dt.date(2026, 11, 1))
        october = invoice_of(contracts[0], period_start=dt.date(2026, 10, 1))
        november = invoice_of(contracts[0], period_start=dt.date(2026, 11, 1))
        return contracts[0].account, october, november

    def test_payment_goes_to_the_oldest_invoice_first(self):
        account, october, november = self.setup_two_months()
        payment_record(
            account=account, amount=Decimal("1500.00"), received_on=dt.date(2026, 12, 3), now=NOW
        )
        october.refresh_from_db()
        november.refresh_from_db()
        assert october.state == Invoice.State.PAID
        assert november.state == Invoice.State.PARTLY_PAID
        assert november.paid == Decimal("1500.00") - october.gross
        assert account_balance(account=account) == october.gross + november.gross - Decimal(
            "1500.00"
        )

    # as printed, and typed in small letters: the reference still names its invoice
    @pytest.mark.parametrize("spelled", [str, str.lower], ids=["as_printed", "small_letters"])
    def test_reference_wins_over_age(self, spelled):
        account, october, november = self.setup_two_months()
        payment_record(
            account=account,
            amount=Decimal("100.00"),
            received_on=dt.date(2026, 12, 3),
            now=NOW,
            reference=f"payment {spelled(november.display_number)}",
        )
        november.refresh_from_db()
        october.refresh_from_db()
        assert november.paid == Decimal("100.00")
        assert october.paid == Decimal("0")

    def test_an_import_row_without_account_finds_it_by_a_small_letter_reference(self):
        account, _october, november = self.setup_two_months()
        csv_text = (
            "date;amount;reference;account;transaction_id\n"
            f"2026-12-03;100,00;{november.display_number.lower()};;T1\n"
        )

        result = payments_import_csv(text=csv_text, now=NOW)

        assert (result.created, result.unmatched) == (1, [])
        assert Payment.objects.get().account == account
        november.refresh_from_db()
        assert november.paid == Decimal("100.00")

    def test_bank_csv_import_refuses_a_file_with_bad_rows_and_is_idempotent(self):
        _account, _october, november = self.setup_two_months()
        good = f"2026-12-03;1.360,98;{november.display_number};;T1\n"
        csv_text = (
            "date;amount;reference;account;transaction_id\n"
            + good
            + "2026-12-03;-5,00;fee;;T2\n"
            + "2026-12-04;12,00;unknown;;\n"
        )
        with pytest.raises(PaymentImportInvalid) as refused:
            payments_import_csv(text=csv_text, now=NOW)
        # the bank fee (row 3) is not a payment and is skipped; row 4 has no transaction id
        assert [(e.row, e.field, e.code) for e in refused.value.errors] == [
            (4, "transaction_id", "required"),
        ]
        assert not Payment.objects.exists()  # nothing of the file is stored
        november.refresh_from_db()
        assert november.paid == Decimal("0")
        clean = "date;amount;reference;account;transaction_id\n" + good
        result = payments_import_csv(text=clean, now=NOW)
        assert (result.created, result.duplicates, result.errors) == (1, 0, [])
        again = payments_import_csv(text=clean, now=NOW)
        assert (again.created, again.duplicates) == (0, 1)
        payment = Payment.objects.get()
        november.refresh_from_db()
        assert payment.amount == Decimal("1360.98")
        assert (november.paid, november.state) == (november.gross, Invoice.State.PAID)
        assert payment.unallocated == Decimal("1360.98") - november.gross

    def test_dunning_ladder_sends_one_level_at_a_time(self):
        _account, october, november = self.setup_two_months()
        due = october.due_on
        (letter,) = dunning_run(
            now=dt.datetime.combine(due + dt.timedelta(days=8), dt.time(6), tzinfo=dt.UTC)
        )
        october.refresh_from_db()
        assert october.state == Invoice.State.OVERDUE
        assert [(n.invoice_id, n.level) for n in letter.notices.all()] == [(october.pk, 1)]
        # one letter for both invoices, with the second level's fee once
        (later,) = dunning_run(
            now=dt.datetime.combine(due + dt.timedelta(days=40), dt.time(6), tzinfo=dt.UTC)
        )
        assert sorted((n.invoice_id, n.level) for n in later.notices.all()) == [
            (october.pk, 2),
            (november.pk, 1),
        ]
        assert (later.level, later.fee) == (2, Decimal("100.00"))


@pytest.mark.django_db
class TestCredit:
    def test_an_overpayment_settles_the_next_invoice_when_it_is_issued(self):
        network, contracts = billed_network(accounts=1)
        bill_month(network, start=dt.date(2026, 10, 1), now=NOW - dt.timedelta(days=31))
        october = invoice_of(contracts[0], period_start=dt.date(2026, 10, 1))
        payment = payment_record(
            account=contracts[0].account,
            amount=october.gross + Decimal("500.00"),
            received_on=dt.date(2026, 11, 20),
            now=NOW,
        )
        assert payment.unallocated == Decimal("500.00")
        bill_month(network, start=dt.date(2026, 11, 1))
        november = invoice_of(contracts[0], period_start=dt.date(2026, 11, 1))
        assert november.paid == Decimal("500.00")
        assert november.state == Invoice.State.PARTLY_PAID
        payment.refresh_from_db()
        assert payment.unallocated == Decimal("0.00")

    @pytest.mark.postgres
    def test_credit_after_an_issue_locks_only_the_invoices_of_accounts_holding_credit(self):
        # the lock once read every open invoice of the network to find the few accounts
        # with credit (107 ms after a 100,000-bill run, bench/README.md): now it names them
        network, contracts = billed_network(accounts=3)
        bill_month(network, start=dt.date(2026, 10, 1), now=NOW - dt.timedelta(days=31))
        with CaptureQueriesContext(connection) as nobody:
            assert payments_apply_unallocated(on=dt.date(2026, 11, 2), network_id=network.pk) == 0
        assert [q["sql"] for q in nobody.captured_queries if "FOR UPDATE" in q["sql"]] == []

        holder = contracts[1].account
        october = invoice_of(contracts[1], period_start=dt.date(2026, 10, 1))
        payment = payment_record(
            account=holder,
            amount=october.gross + Decimal("80.00"),
            received_on=dt.date(2026, 11, 20),
            now=NOW,
        )
        assert payment.unallocated == Decimal("80.00")
        with CaptureQueriesContext(connection) as one:
            assert payments_apply_unallocated(on=dt.date(2026, 11, 21), network_id=network.pk) == 0
        lock = next(
            q["sql"]
            for q in one.captured_queries
            if "FOR UPDATE" in q["sql"] and 'FROM "billing_invoice"' in q["sql"]
        )
        where = lock.split("WHERE", 1)[1]
        assert "SELECT" not in where  # the accounts by id, not a query over invoices
        assert f'"account_id" IN ({holder.pk})' in where
        bill_month(network, start=dt.date(2026, 11, 1))  # its issue uses the 80.00
        november = invoice_of(contracts[1], period_start=dt.date(2026, 11, 1))
        assert november.paid == Decimal("80.00")
