import datetime as dt
import io
from decimal import Decimal

import pytest
from pypdf import PdfReader

from billing import tasks
from billing.models import Invoice
from billing.services.runs import billing_run_create, billing_run_issue
from tests.billing.factories import billed_network, register

NOW = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)


def pdf_text(invoice: Invoice) -> str:
    invoice.refresh_from_db()
    with invoice.pdf.open("rb") as handle:
        reader = PdfReader(io.BytesIO(handle.read()))
    return "\n".join(page.extract_text() for page in reader.pages)


@pytest.mark.django_db
class TestInvoicePdf:
    def test_issue_renders_a_pdf_that_explains_every_line(self, django_capture_on_commit_callbacks):
        network, contracts = billed_network(accounts=1)
        register(
            contracts[0].connection,
            dt.date(2026, 12, 1),
            Decimal("10000") + 22 * 1500 + 1500,
            status="estimated",
        )
        run = billing_run_create(network=network, period_start=dt.date(2026, 11, 1), now=NOW)
        tasks.billing_run_start.delay(run.pk)
        run.refresh_from_db()
        with django_capture_on_commit_callbacks(execute=True):
            billing_run_issue(run=run, issued_at=NOW)
        invoice = Invoice.objects.get()
        assert invoice.pdf.name.endswith("INV-2026-000001.pdf")
        text = pdf_text(invoice)
        assert "INV-2026-000001" in text
        assert "1.5 MWh × 592.52 DKK/MWh" in text.replace("\n", " ")
        assert "888.78" in text
        assert "1360.98" in text
        assert "ESTIMATED" in text
        assert "Same period last year: 1.500 MWh" in text
        assert "VAT 25 % on 1088.78" in text
        assert "Where to complain" in text
        assert "Ankenævnet på Energiområdet" in text
        assert "No price cap has been adopted" in text
