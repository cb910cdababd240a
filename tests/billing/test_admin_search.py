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
