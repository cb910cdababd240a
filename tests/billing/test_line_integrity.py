"""Invoice lines without a per-row foreign key (migration 0006): the set-based checks
keep every guarantee the foreign key gave, and issued invoices still never change."""

import threading
import time
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, connections, transaction

from billing.models import Invoice, InvoiceLine
from tests.billing.factories import billed_network
from tests.billing.helpers import bill_month

LINE = {
    "position": 99,
    "component": "x",
    "kind": "x",
    "description": "x",
    "explanation": "x",
    "quantity": 1,
    "unit": "x",
    "unit_price": 1,
    "amount": 1,
    "vat_rate": 0,
}


def _sql(sql, params=None, using="default"):
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.postgres
@pytest.mark.django_db
class TestLinesBelongToInvoices:
    def test_a_line_of_a_missing_invoice_is_refused(self):
        network, _ = billed_network(accounts=1)
        bill_month(network, issue=False)
        missing = Invoice.objects.order_by("-id").values_list("id", flat=True)[0] + 1000
        with pytest.raises(IntegrityError, match="does not exist"), transaction.atomic():
            InvoiceLine.objects.create(invoice_id=missing, **LINE)

    def test_moving_a_line_to_a_missing_invoice_is_refused(self):
        network, _ = billed_network(accounts=1)
        bill_month(network, issue=False)
        line = InvoiceLine.objects.first()
        with pytest.raises(IntegrityError, match="does not exist"), transaction.atomic():
            InvoiceLine.objects.filter(pk=line.pk).update(invoice_id=line.invoice_id + 1000)

    def test_deleting_a_draft_that_still_has_lines_is_refused(self):
        network, _ = billed_network(accounts=1)
        bill_month(network, issue=False)
        draft = Invoice.objects.get()
        with pytest.raises(IntegrityError, match="still has lines"), transaction.atomic():
            _sql("DELETE FROM billing_invoice WHERE id = %s", [draft.pk])

    def test_the_orm_deletes_a_draft_with_its_lines(self):
        network, _ = billed_network(accounts=1)
        bill_month(network, issue=False)
        draft = Invoice.objects.get()
        draft.delete()
        assert not InvoiceLine.objects.exists()

    def test_an_invoice_id_never_changes(self):
        network, _ = billed_network(accounts=1)
        bill_month(network, issue=False)
        draft = Invoice.objects.get()
        with pytest.raises(IntegrityError, match="cannot change"), transaction.atomic():
            Invoice.objects.filter(pk=draft.pk).update(id=draft.pk + 1000)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestLinesAcrossTransactions:
    def test_no_lines_for_an_invoice_issued_by_an_earlier_transaction(self):
        network, _ = billed_network(accounts=1)
        bill_month(network)  # committed: issued
        invoice = Invoice.objects.get()
        assert invoice.number is not None
        with pytest.raises(IntegrityError, match="issued invoice"), transaction.atomic():
            InvoiceLine.objects.create(invoice=invoice, **LINE)
        # nor by rewriting its creating transaction
        with pytest.raises(IntegrityError, match="cannot be changed"), transaction.atomic():
            _sql(
                "UPDATE billing_invoice SET created_xact = pg_current_xact_id() WHERE id = %s",
                [invoice.pk],
            )

    def test_invoices_are_truncated_only_with_their_lines(self):
        network, _ = billed_network(accounts=1)
        bill_month(network, issue=False)
        with (
            pytest.raises(IntegrityError, match="without billing_invoiceline"),
            transaction.atomic(),
        ):
            _sql("TRUNCATE billing_invoice CASCADE")
        # CASCADE reaches allocations/dunning only; lines are not referenced by a key
        with transaction.atomic():
            _sql("TRUNCATE billing_invoiceline, billing_invoice CASCADE")
        assert not Invoice.objects.exists()

    def test_lines_may_still_be_added_to_a_draft_of_an_earlier_transaction(self):
        network, _ = billed_network(accounts=1)
        bill_month(network, issue=False)
        draft = Invoice.objects.get()
        InvoiceLine.objects.create(invoice=draft, **{**LINE, "amount": Decimal("1.00")})
        assert draft.lines.count() == 4

    def test_a_draft_gaining_lines_cannot_be_deleted_until_they_commit(self):
        """The foreign key's FOR KEY SHARE lock, set-based: the delete waits, then fails."""
        network, _ = billed_network(accounts=1)
        bill_month(network, issue=False)
        draft = Invoice.objects.get()
        _sql("DELETE FROM billing_invoiceline WHERE invoice_id = %s", [draft.pk])
        inserted = threading.Event()
        result = {}

        def add_line():
            try:
                with transaction.atomic():
                    InvoiceLine.objects.create(invoice_id=draft.pk, **LINE)
                    inserted.set()
                    time.sleep(1.0)  # the delete below waits for this commit
            finally:
                inserted.set()
                connection.close()

        def delete_draft():
            try:
                with transaction.atomic():
                    _sql("DELETE FROM billing_invoice WHERE id = %s", [draft.pk])
                result["delete"] = "deleted"
            except IntegrityError as exc:
                result["delete"] = str(exc)
            finally:
                connection.close()

        writer = threading.Thread(target=add_line)
        writer.start()
        assert inserted.wait(10)
        started = time.monotonic()
        deleter = threading.Thread(target=delete_draft)
        deleter.start()
        writer.join(10)
        deleter.join(10)
        assert time.monotonic() - started > 0.5  # it waited for the line's transaction
        assert "still has lines" in result["delete"]
        assert Invoice.objects.filter(pk=draft.pk).exists()
        assert InvoiceLine.objects.filter(invoice_id=draft.pk).count() == 1

    def test_a_line_for_a_draft_being_deleted_waits_then_fails(self):
        network, _ = billed_network(accounts=1)
        bill_month(network, issue=False)
        draft = Invoice.objects.get()
        _sql("DELETE FROM billing_invoiceline WHERE invoice_id = %s", [draft.pk])
        deleted = threading.Event()
        result = {}

        def delete_draft():
            try:
                with transaction.atomic():
                    _sql("DELETE FROM billing_invoice WHERE id = %s", [draft.pk])
                    deleted.set()
                    time.sleep(1.0)
            finally:
                deleted.set()
                connection.close()

        def add_line():
            try:
                with transaction.atomic():
                    InvoiceLine.objects.create(invoice_id=draft.pk, **LINE)
                result["line"] = "written"
            except IntegrityError as exc:
                result["line"] = str(exc)
            finally:
                connection.close()

        deleter = threading.Thread(target=delete_draft)
        deleter.start()
        assert deleted.wait(10)
        writer = threading.Thread(target=add_line)
        writer.start()
        deleter.join(10)
        writer.join(10)
        assert "does not exist" in result["line"]
        assert not Invoice.objects.filter(pk=draft.pk).exists()
        assert not InvoiceLine.objects.filter(invoice_id=draft.pk).exists()
