import pytest
from django.contrib.auth.models import User

from billing.models import BillingRun, Invoice
from tests.billing.factories import billed_network
from tests.billing.helpers import bill_month


@pytest.fixture
def admin_client_(client):
    user = User.objects.create_superuser("boss", "boss@example.org", "pw")
    client.force_login(user)
    return client


@pytest.mark.django_db
class TestBillingAdmin:
    def test_run_list_shows_a_progress_bar(self, admin_client_):
        network, _ = billed_network(accounts=2)
        bill_month(network, issue=False)
        page = admin_client_.get("/admin/billing/billingrun/").content.decode()
        assert "2 / 2 (100%)" in page

    def test_release_action_releases_held_drafts(self, admin_client_):
        network, _ = billed_network(accounts=1)
        bill_month(network, issue=False)
        invoice = Invoice.objects.get()
        Invoice.objects.filter(pk=invoice.pk).update(held=True, hold_reason="check")
        BillingRun.objects.update(held=1)
        admin_client_.post(
            "/admin/billing/invoice/",
            {"action": "release", "_selected_action": [invoice.pk]},
        )
        invoice.refresh_from_db()
        assert not invoice.held
        assert BillingRun.objects.get().held == 0

    def test_invoice_and_payment_pages_render(self, admin_client_):
        network, _ = billed_network(accounts=1)
        bill_month(network)
        invoice = Invoice.objects.get()
        assert admin_client_.get(f"/admin/billing/invoice/{invoice.pk}/change/").status_code == 200
        assert admin_client_.get("/admin/billing/payment/").status_code == 200
        assert admin_client_.get("/admin/billing/payment/import/").status_code == 200
