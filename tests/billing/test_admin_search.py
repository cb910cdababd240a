"""The invoice list's search: by account number from its start, customer name anywhere,
and the invoice's own number as printed or bare."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import F
from django.db.models.functions import Greatest

from billing.models import Invoice, InvoiceNumberCounter
from tests.billing.helpers import NOW
from tests.customers.factories import AccountFactory

pytestmark = pytest.mark.django_db


def issued(account, *, series, number, month) -> Invoice:
    # numbered as the services number: from the series' counter
    counter, _ = InvoiceNumberCounter.objects.get_or_create(series=series)
    InvoiceNumberCounter.objects.filter(pk=counter.pk).update(
        last_number=Greatest(F("last_number"), number)
    )
    return Invoice.objects.create(
        account=account,
        network=account.network,
        period_start=dt.date(2026, month, 1),
        period_end=dt.date(2026, month + 1, 1),
        currency="DKK",
        net=Decimal("100.00"),
        vat=Decimal("25.00"),
        gross=Decimal("125.00"),
        state="issued",
        series=series,
        number=number,
        issued_at=NOW,
        created_at=NOW,
    )


def found(client, term):
    response = client.get("/admin/billing/invoice/", {"q": term})
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


class TestInvoiceSearch:
    @pytest.fixture
    def invoices(self):
        account = AccountFactory(number="40117", customer__name="Ingrid Havmand")
        other = AccountFactory(number="50117", customer__name="Jens Olsen")
        return (
            issued(account, series="INV-2026", number=42, month=3),
            issued(other, series="INV-2025", number=42, month=4),
            issued(other, series="INV-2026", number=4200, month=5),
        )

    def test_by_the_printed_number(self, admin_client, invoices):
        assert found(admin_client, "INV-2026-000042") == [invoices[0]]

    def test_by_the_bare_number_in_every_series(self, admin_client, invoices):
        assert set(found(admin_client, "000042")) == {invoices[0], invoices[1]}

    def test_by_account_number_from_its_start_and_customer_name(self, admin_client, invoices):
        assert found(admin_client, "4011") == [invoices[0]]
        assert found(admin_client, "0117") == []
        assert found(admin_client, "havmand") == [invoices[0]]


class TestPaymentSearch:
    """Payments and refunds by the customer's reference or the bank's transaction id,
    anywhere in them; on PostgreSQL from their trigram indexes (billing 0022)."""

    @pytest.fixture
    def payments(self):
        from billing.models import Payment

        account = AccountFactory(number="40117")
        other = AccountFactory(number="50117")

        def paid(account, reference, bank_id):
            return Payment.objects.create(
                account=account,
                amount=Decimal("812.50"),
                currency="DKK",
                received_on=dt.date(2026, 11, 2),
                reference=reference,
                source="bank",
                bank_transaction_id=bank_id,
                unallocated=Decimal("812.50"),
                created_at=NOW,
            )

        return (
            paid(account, "Faktura INV-2026-000042", "NDEA20261102-77001"),
            paid(other, "husleje november", "NDEA20261102-77002"),
        )

    def test_by_reference_and_bank_id_anywhere(self, admin_client, payments):
        first, second = payments

        def listed(term):
            response = admin_client.get("/admin/billing/payment/", {"q": term})
            assert response.status_code == 200
            return list(response.context["cl"].result_list)

        assert listed("000042") == [first]
        assert listed("NOVEMBER") == [second]
        assert listed("77002") == [second]
        assert listed("40117") == [first]  # the account number, from its start

    def test_refund_by_reference(self, admin_client):
        from billing.models import Refund

        refund = Refund.objects.create(
            account=AccountFactory(),
            amount=Decimal("120.00"),
            currency="DKK",
            paid_on=dt.date(2026, 11, 20),
            reference="Tilbagebetaling overskud 2025",
            created_at=NOW,
        )
        response = admin_client.get("/admin/billing/refund/", {"q": "overskud"})
        assert list(response.context["cl"].result_list) == [refund]

    @pytest.mark.postgres
    def test_the_searches_use_their_indexes(self, payments):
        from django.db import connection, transaction

        from billing.models import Payment, Refund

        cases = [
            (Payment, "reference", "payment_reference_search"),
            (Payment, "bank_transaction_id", "payment_bank_id_search"),
            (Refund, "reference", "refund_reference_search"),
        ]
        for model, field, index in cases:
            rows = model.objects.filter(**{f"{field}__icontains": "77002"}).values("pk")
            sql, params = rows.query.sql_with_params()
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_seqscan = off")  # a handful of rows here
                cursor.execute(f"EXPLAIN {sql}", params)
                plan = "\n".join(row[0] for row in cursor.fetchall())
            assert index in plan, plan
