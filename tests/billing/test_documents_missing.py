"""A stored PDF gone from the document store is a 404 that says so, not a server error."""

import logging

import pytest
from django.core.files.storage import default_storage

from billing.documents import invoice_pdf_render
from billing.models import Invoice
from heatutility.roles import AUDITOR
from tests.billing.factories import billed_network
from tests.billing.helpers import bill_month, client_for

pytestmark = pytest.mark.django_db


def invoice_whose_pdf_was_lost() -> Invoice:
    network, _ = billed_network(accounts=1)
    bill_month(network)
    invoice = Invoice.objects.get()
    invoice_pdf_render(invoice=invoice)
    invoice.refresh_from_db()
    default_storage.delete(invoice.pdf.name)  # a lost volume, a restore without the media
    return invoice


def test_the_api_answers_404_with_the_reason_and_logs_it(caplog):
    invoice = invoice_whose_pdf_was_lost()

    with caplog.at_level(logging.ERROR, logger="billing.documents"):
        response = client_for(AUDITOR).get(f"/api/v1/billing/invoices/{invoice.pk}/pdf/")

    assert response.status_code == 404
    assert "not in the document store" in response.json()["message"]
    assert f"its PDF {invoice.pdf.name} is not in the document store" in caplog.text


def test_the_admin_answers_404(admin_client):
    invoice = invoice_whose_pdf_was_lost()
    admin_client.raise_request_exception = False

    response = admin_client.get(f"/admin/billing/invoice/{invoice.pk}/pdf/")

    assert response.status_code == 404


def test_the_portal_answers_404(client, django_user_model):
    invoice = invoice_whose_pdf_was_lost()
    customer = invoice.account.customer
    customer.user = django_user_model.objects.create_user(
        "portal-lost-pdf", password="a-long-test-password-1"
    )
    customer.save()
    client.force_login(customer.user)
    client.raise_request_exception = False

    response = client.get(f"/portal/invoices/{invoice.pk}.pdf")

    assert response.status_code == 404
