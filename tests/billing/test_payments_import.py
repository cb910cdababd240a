"""Bank statement import: a bad file is refused whole with every bad row named (422, never
a 500), nothing of it stored; a clean file is recorded once (re-sending it is harmless)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from billing.models import Allocation, Invoice, Payment
from billing.services import payments as payment_services
from billing.services.payments import PaymentImportInvalid, payment_record, payments_import_csv
from heatutility.roles import BILLING_CLERK
from tests.billing.factories import billed_network
from tests.billing.helpers import NOW, bill_month, client_for
from tests.customers.factories import AccountFactory, NetworkFactory

HEADER = "date,amount,reference,account,transaction_id\n"


@pytest.fixture
def account():
    return AccountFactory(network=NetworkFactory(currency="DKK"))


def statement(account, *rows: str) -> str:
    """A statement: a good row (tx-1), then ``rows`` (``{account}`` filled in), then
    another good row (tx-9)."""
    middle = "".join(r.format(account=account.number) + "\n" for r in rows)
    return (
        HEADER
        + f"2026-12-03,100.00,first,{account.number},tx-1\n"
        + middle
        + f"2026-12-04,200.00,last,{account.number},tx-9\n"
    )


def refused(text: str) -> PaymentImportInvalid:
    with pytest.raises(PaymentImportInvalid) as info:
        payments_import_csv(text=text, now=NOW)
    assert not Payment.objects.exists(), "a refused statement stores nothing"
    return info.value


def refused_after_booking(text: str) -> PaymentImportInvalid:
    """Like :func:`refused`, with payments booked before the import."""
    before = Payment.objects.count()
    with pytest.raises(PaymentImportInvalid) as info:
        payments_import_csv(text=text, now=NOW)
    assert Payment.objects.count() == before, "a refused statement stores nothing"
    return info.value


def errors_of(exc: PaymentImportInvalid) -> list[tuple]:
    return [(e.row, e.field, e.code) for e in exc.errors]


@pytest.mark.django_db
class TestBadRowsAreRefusedNotCrashed:
    @pytest.mark.parametrize(
        ("row", "expected"),
        [
            # a. a field more than the header has
            ("2026-12-03,10.00,ref,{account},tx-a,EXTRA", (3, None, "extra_fields")),
            # b./c. not finite, or not an amount a bank writes
            ("2026-12-03,NaN,ref,{account},tx-a", (3, "amount", "invalid")),
            ("2026-12-03,sNaN,ref,{account},tx-a", (3, "amount", "invalid")),
            ("2026-12-03,Infinity,ref,{account},tx-a", (3, "amount", "invalid")),
            ("2026-12-03,-Infinity,ref,{account},tx-a", (3, "amount", "invalid")),
            ("2026-12-03,1e30,ref,{account},tx-a", (3, "amount", "invalid")),
            ("2026-12-03,1.2.3,ref,{account},tx-a", (3, "amount", "invalid")),
            ("2026-12-03,,ref,{account},tx-a", (3, "amount", "required")),
            # c. beyond Payment.amount's 12 integer digits, as written or once rounded
            ("2026-12-03,1000000000000.00,ref,{account},tx-a", (3, "amount", "too_large")),
            ("2026-12-03,999999999999.995,ref,{account},tx-a", (3, "amount", "too_large")),
            # d. longer than the columns
            ("2026-12-03,10.00," + "r" * 61 + ",{account},tx-a", (3, "reference", "too_long")),
            ("2026-12-03,10.00,ref,{account}," + "t" * 81, (3, "transaction_id", "too_long")),
            # dates, ids, accounts
            ("2026-13-03,10.00,ref,{account},tx-a", (3, "date", "invalid")),
            ("03.12.2026,10.00,ref,{account},tx-a", (3, "date", "invalid")),
            # a typo the API refuses too (a payment no journal export could ever show)
            ("0026-12-03,10.00,ref,{account},tx-a", (3, "date", "out_of_range")),
            ("2226-12-03,10.00,ref,,tx-a", (3, "date", "out_of_range")),
            ("2026-12-03,10.00,ref,{account},", (3, "transaction_id", "required")),
            ("2026-12-03,10.00,ref,{account}\x00,tx-a", (3, "account", "invalid")),
            ("2026-12-03,10.00,r\x00f,{account},tx-a", (3, "reference", "invalid")),
            # e./g. malformed CSV
            ("2026-12-03,10.00," + "x" * 131_073 + ",{account},tx-a", (3, None, "malformed")),
            ('2026-12-03,10.00,"a"b,{account},tx-a', (3, None, "malformed")),
        ],
    )
    def test_a_bad_row_refuses_the_whole_file(self, account, row, expected):
        exc = refused(statement(account, row))
        assert errors_of(exc) == [expected]
        assert exc.message.startswith("Nothing was imported: 1 row(s) of the statement have")

    def test_a_date_outside_the_products_range_says_so_as_the_api_does(self, account):
        exc = refused(statement(account, "0026-12-03,10.00,ref,{account},tx-a"))
        assert [e.message for e in exc.errors] == ["Enter a date from 1900-01-01 to 2200-12-31."]

    def test_an_unterminated_quote_is_reported_not_merged(self, account):
        text = statement(account, '2026-12-03,10.00,"unterminated,{account},tx-a')
        assert errors_of(refused(text)) == [(3, None, "malformed")]

    def test_every_bad_row_is_listed_with_its_row_and_column(self, account):
        text = statement(
            account,
            "2026-12-03,1.2.3,ref,{account},tx-2",
            "2026-12-03,10.00,ref,{account},tx-3",
            "not a date,NaN,ref,nobody,",
        )
        exc = refused(text)
        assert errors_of(exc) == [
            (3, "amount", "invalid"),
            (5, "date", "invalid"),
            (5, "amount", "invalid"),
            (5, "transaction_id", "required"),
        ]
        assert exc.message == (
            "Nothing was imported: 2 row(s) of the statement have errors: "
            "row 3 amount: not an amount; "
            "row 5 date: not a date (YYYY-MM-DD); row 5 amount: not an amount; "
            "row 5 transaction_id: required."
        )

    def test_credits_matching_no_account_are_listed_and_the_rest_imported(self, account):
        """A supplier's refund, interest, an unreadable reference: not customer payments
        the import can place; listed for staff, and the statement's payments imported."""
        text = statement(
            account,
            "2026-12-03,250.00,Supplier refund 4711,,tx-x",
            "2026-12-03,10.00,ref,999999,tx-y",
            "2026-12-03,10.00,INV-2026-" + "9" * 30 + ",,tx-big",
            "2026-12-03,0.00,Interest,,tx-z",
            "2026-12-03,0.004,ref,{account},tx-tiny",
        )

        result = payments_import_csv(text=text, now=NOW)

        assert (result.created, result.duplicates, result.skipped) == (2, 0, 2)
        assert [
            (u["row"], u["amount"], u["reference"], u["account"]) for u in result.unmatched
        ] == [
            (3, "250.00", "Supplier refund 4711", ""),
            (4, "10.00", "ref", "999999"),
            (5, "10.00", "INV-2026-" + "9" * 30, ""),
        ]
        assert Payment.objects.count() == 2
        again = payments_import_csv(text=text, now=NOW)  # sent again: nothing doubled
        assert (again.created, again.duplicates, len(again.unmatched)) == (0, 2, 3)

    def test_an_unmatched_credit_booked_by_hand_counts_as_a_duplicate_when_sent_again(
        self, account
    ):
        """Staff book a listed credit by hand with the bank's id (API, admin): the same
        statement sent again must not list it for booking a second time."""
        text = statement(account, "2026-12-03,250.00,from grandma,,tx-x")
        first = payments_import_csv(text=text, now=NOW)
        assert [u["transaction_id"] for u in first.unmatched] == ["tx-x"]
        payment_record(
            account=account,
            amount=Decimal("250.00"),
            received_on=dt.date(2026, 12, 3),
            reference="from grandma",
            bank_transaction_id="tx-x",
            now=NOW,
        )

        again = payments_import_csv(text=text, now=NOW)

        assert (again.created, again.duplicates, again.unmatched) == (0, 3, [])
        assert Payment.objects.count() == 3
        assert Payment.objects.get(bank_transaction_id="tx-x").amount == Decimal("250.00")

    def test_an_unmatched_credit_whose_id_was_booked_with_another_amount_is_a_conflict(
        self, account
    ):
        """Another transaction under the bank's id (or a typo when booking): refused like
        an imported one with other data, not counted away as a duplicate."""
        payment_record(
            account=account,
            amount=Decimal("25.00"),
            received_on=dt.date(2026, 12, 3),
            bank_transaction_id="tx-x",
            now=NOW,
        )

        exc = refused_after_booking(statement(account, "2026-12-03,250.00,from grandma,,tx-x"))

        assert errors_of(exc) == [(3, "transaction_id", "conflict")]
        assert "booked before with other data (25.00 DKK on 2026-12-03)" in exc.message

    def test_an_unmatched_credit_twice_in_the_file_is_listed_once(self, account):
        text = statement(
            account,
            "2026-12-03,250.00,from grandma,,tx-x",
            "2026-12-03,250.00,from grandma,,tx-x",  # the bank's export repeats it
        )

        result = payments_import_csv(text=text, now=NOW)

        assert [u["transaction_id"] for u in result.unmatched] == ["tx-x"]
        assert (result.created, result.duplicates) == (2, 1)

    def test_an_unmatched_credit_twice_in_the_file_with_other_data_is_an_error(self, account):
        text = statement(
            account,
            "2026-12-03,250.00,from grandma,,tx-x",
            "2026-12-03,25.00,from grandma,,tx-x",
        )

        assert errors_of(refused(text)) == [(4, "transaction_id", "conflict")]

    def test_a_transaction_twice_in_the_file_with_other_data_is_an_error(self, account):
        text = statement(account, "2026-12-03,99.00,first,{account},tx-1")
        assert errors_of(refused(text)) == [(3, "transaction_id", "conflict")]

    def test_a_missing_column_is_refused(self, account):
        with pytest.raises(PaymentImportInvalid) as info:
            payments_import_csv(text="date,amount,reference\n2026-12-03,1,x\n", now=NOW)
        assert errors_of(info.value) == [(None, "transaction_id", "missing_column")]
        with pytest.raises(PaymentImportInvalid) as info:
            payments_import_csv(text="", now=NOW)
        assert [e.field for e in info.value.errors] == ["date", "amount", "transaction_id"]


@pytest.mark.django_db
class TestCleanStatements:
    def test_cr_only_line_endings_are_read(self, account):
        text = statement(account).replace("\n", "\r")
        result = payments_import_csv(text=text, now=NOW)
        assert (result.created, result.duplicates) == (2, 0)
        assert sorted(Payment.objects.values_list("amount", flat=True)) == [
            Decimal("100.00"),
            Decimal("200.00"),
        ]

    @pytest.mark.parametrize(
        ("written", "amount"),
        [
            ("1234.56", "1234.56"),
            ('"1234,56"', "1234.56"),
            ('"1.234,56"', "1234.56"),
            ('"1,234.56"', "1234.56"),  # was read as 1.23456 -> 1.23
            ('"1 234,56"', "1234.56"),
            ("1.234.567", "1234567.00"),
            ("+0.005", "0.01"),  # rounded half up to the minor unit
            ("999999999999.99", "999999999999.99"),
        ],
    )
    def test_amount_formats(self, account, written, amount):
        text = HEADER + f"2026-12-03,{written},ref,{account.number},tx-f\n"
        assert payments_import_csv(text=text, now=NOW).created == 1
        assert Payment.objects.get().amount == Decimal(amount)

    def test_repeats_within_the_file_and_resent_statements_are_duplicates(self, account):
        text = statement(account, "2026-12-03,100.00,first,{account},tx-1", ",,,,", "")
        result = payments_import_csv(text=text, now=NOW)
        assert (result.created, result.duplicates, result.errors) == (2, 1, [])
        again = payments_import_csv(text=text, now=NOW)
        assert (again.created, again.duplicates) == (0, 3)
        assert Payment.objects.count() == 2

    def test_a_failure_while_recording_leaves_nothing_behind(self, account, monkeypatch):
        real = payment_services.payment_record
        calls = []

        def second_fails(**kwargs):
            calls.append(kwargs["bank_transaction_id"])
            if len(calls) == 2:
                raise RuntimeError("database went away")
            return real(**kwargs)

        monkeypatch.setattr(payment_services, "payment_record", second_fails)
        with pytest.raises(RuntimeError):
            payments_import_csv(text=statement(account), now=NOW)
        assert not Payment.objects.exists()  # tx-1 was rolled back with the rest
        monkeypatch.setattr(payment_services, "payment_record", real)
        assert payments_import_csv(text=statement(account), now=NOW).created == 2

    def test_a_concurrent_import_of_the_same_transaction_counts_as_duplicate(
        self, account, monkeypatch
    ):
        real = payment_services.payment_record

        def raced(**kwargs):
            if kwargs["bank_transaction_id"] == "tx-9":  # another import recorded it meanwhile
                real(**{**kwargs, "reference": "other import"})
            return real(**kwargs)

        monkeypatch.setattr(payment_services, "payment_record", raced)
        result = payments_import_csv(text=statement(account), now=NOW)
        assert (result.created, result.duplicates) == (1, 1)
        assert Payment.objects.get(bank_transaction_id="tx-9").reference == "other import"

    def test_another_integrity_error_is_not_taken_for_a_duplicate(self, account, monkeypatch):
        def broken(**kwargs):
            raise IntegrityError("CHECK constraint failed: payment_amount_positive")

        monkeypatch.setattr(payment_services, "payment_record", broken)
        with pytest.raises(IntegrityError):
            payments_import_csv(text=statement(account), now=NOW)

    def test_accounts_and_invoices_are_looked_up_once_not_per_row(self):
        network, contracts = billed_network(accounts=3)
        bill_month(network)
        invoices = list(Invoice.objects.order_by("pk"))
        rows = [
            f"2026-12-05,1.00,{inv.display_number},,by-invoice-{n}"
            for n, inv in enumerate(invoices)
        ] + [
            f"2026-12-05,1.00,x,{c.account.number},by-account-{n}-{k}"
            for n, c in enumerate(contracts)
            for k in range(10)
        ]
        with CaptureQueriesContext(connection) as queries:
            result = payments_import_csv(text=HEADER + "\n".join(rows) + "\n", now=NOW)
        assert result.created == 33
        account_queries = [q for q in queries if 'FROM "customers_account"' in q["sql"]]
        assert len(account_queries) == 1
        invoice_lookups = [  # the invoice -> account (and network) lookup
            q
            for q in queries
            if 'FROM "billing_invoice"' in q["sql"] and '"customers_network"' in q["sql"]
        ]
        assert len(invoice_lookups) == 1
        # allocation is as before: each payment went to its invoice
        for inv in invoices:
            assert Allocation.objects.filter(invoice=inv).count() == 11


@pytest.mark.django_db
class TestImportEndpoints:
    def test_api_answers_422_listing_the_bad_rows_and_stores_nothing(self, account):
        clerk = client_for(BILLING_CLERK)
        text = statement(
            account,
            "2026-12-03,NaN,ref,{account},tx-2",
            "2026-12-03,10.00,ref,{account},tx-3,EXTRA",
            "2026-13-03,10.00,ref,{account},tx-4",
        )
        upload = SimpleUploadedFile("statement.csv", text.encode())
        response = clerk.post(
            "/api/v1/billing/payments/import/", {"file": upload}, format="multipart"
        )
        assert response.status_code == 422
        body = response.json()
        assert body["code"] == "payment_import_invalid"
        assert body["errors"] == [
            {"code": "invalid", "field": "amount", "message": "not an amount", "row": 3},
            {"code": "extra_fields", "message": "6 fields, the header has 5", "row": 4},
            {"code": "invalid", "field": "date", "message": "not a date (YYYY-MM-DD)", "row": 5},
        ]
        assert not Payment.objects.exists()

    def test_api_refuses_a_statement_above_the_upload_limit_with_a_413(self, account, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
        clerk = client_for(BILLING_CLERK)
        upload = SimpleUploadedFile("statement.csv", statement(account).encode())
        assert upload.size > 100

        response = clerk.post(
            "/api/v1/billing/payments/import/", {"file": upload}, format="multipart"
        )

        assert response.status_code == 413
        assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
            ("file", "too_large")
        ]
        assert not Payment.objects.exists()

    def test_admin_refuses_a_statement_above_the_upload_limit_on_the_form(
        self, client, account, settings
    ):
        from django.contrib.auth.models import User

        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
        client.force_login(User.objects.create_superuser("boss", "boss@example.org", "pw"))
        upload = SimpleUploadedFile("statement.csv", statement(account).encode())

        response = client.post("/admin/billing/payment/import/", {"file": upload})

        assert response.status_code == 200  # the form again, with the reason
        assert response.context["form"].non_field_errors() == [
            f"file: The file has {upload.size} bytes; at most 100 are accepted: split it "
            "into smaller files."
        ]
        assert not Payment.objects.exists()

    def test_admin_names_the_bad_rows_and_stores_nothing(self, client, account):
        from django.contrib.auth.models import User

        client.force_login(User.objects.create_superuser("boss", "boss@example.org", "pw"))
        text = statement(
            account,
            "2026-12-03,1e30,ref,{account},tx-2",
            "2026-12-03,10.00,ref,{account},tx-3,EXTRA",
        )
        upload = SimpleUploadedFile("statement.csv", text.encode())
        response = client.post("/admin/billing/payment/import/", {"file": upload}, follow=True)
        assert response.status_code == 200  # the form again, every bad row on it
        assert response.context["form"].non_field_errors() == [
            "row 3 amount: not an amount",
            "row 4: 6 fields, the header has 5",
        ]
        assert "row 4: 6 fields, the header has 5" in response.content.decode()
        assert not Payment.objects.exists()


@pytest.mark.django_db
def test_debit_rows_of_a_statement_are_skipped_and_counted(account):
    """A bank statement holds the account's fees and outgoing transfers too: not customer
    payments, so they are skipped (whatever their account column says), not refused."""
    text = statement(
        account,
        "2026-12-03,-5.00,Bank fee,,tx-fee",
        "2026-12-03,-1.234,Transfer to savings,somebody else,tx-out",
    )

    result = payments_import_csv(text=text, now=NOW)

    assert (result.created, result.duplicates, result.skipped) == (2, 0, 2)
    assert sorted(Payment.objects.values_list("amount", flat=True)) == [
        Decimal("100.00"),
        Decimal("200.00"),
    ]
