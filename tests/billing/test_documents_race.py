"""Two renderers of the same invoice's PDF at once (PostgreSQL, real connections).

The batch task, its retry after a lost ack and the admin's "render PDFs" action can
render one invoice at the same moment: each sees no PDF, renders and saves a file, and
only the first name is stored on the invoice.  The other's file was left in the document
store for good (nothing refers to it) and its renderer answered with it as if it were
the invoice's PDF; a dunning letter's renderer already removes it.
"""

import pytest
from django.conf import settings

from billing import documents
from billing.documents import invoice_pdf_render
from billing.models import Invoice
from tests.billing.factories import billed_network
from tests.billing.helpers import bill_month
from tests.concurrency import Pause, finish, in_thread

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def stored_pdfs() -> list[str]:
    root = settings.MEDIA_ROOT
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.pdf"))


def test_the_second_renderer_keeps_the_first_pdf_and_removes_its_own(monkeypatch):
    network, _ = billed_network(accounts=1)
    bill_month(network)
    invoice = Invoice.objects.get()
    pause = Pause(monkeypatch, documents, "invoice_pdf_bytes", after=True)  # rendered, not stored
    late, late_done = in_thread(invoice_pdf_render, invoice=Invoice.objects.get(pk=invoice.pk))
    try:
        pause.wait()
        first = invoice_pdf_render(invoice=Invoice.objects.get(pk=invoice.pk))
    finally:
        pause.released.set()
    finish(late)

    assert "error" not in late_done, repr(late_done.get("error"))
    invoice.refresh_from_db()
    assert invoice.pdf.name == first
    assert late_done["value"] == first  # was: the name of its own, orphaned, file
    assert stored_pdfs() == [first]  # was: two files, the second nobody's
