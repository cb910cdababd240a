"""Dunning letters (WeasyPrint, like invoice PDFs): one per notice, stored on the notice
and, when the level charges a fee, on the fee invoice too (its document is the letter).

A letter names the overdue invoice (number, due date, what is open), the fee and its
invoice, the total now due, the new pay-by date, the utility and where to complain
(the settings the invoice PDF uses) and, for the final level, what happens next.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.template.loader import render_to_string

from billing.models import DunningNotice, Invoice

ZERO = Decimal("0")


def reminder_context(*, notice: DunningNotice) -> dict:
    invoice = notice.invoice
    account = invoice.account
    fee_invoice = notice.fee_invoice
    fee_gross = fee_invoice.gross if fee_invoice is not None else ZERO
    others = (
        Invoice.objects.filter(account=account, state=Invoice.State.OVERDUE, gross__gt=0)
        .exclude(pk__in=[invoice.pk, notice.fee_invoice_id or 0])
        .order_by("due_on", "number")
    )
    return {
        "notice": notice,
        "invoice": invoice,
        "account": account,
        "customer": account.customer,
        "fee_invoice": fee_invoice,
        "fee_gross": fee_gross,
        "total_due": notice.open_amount + fee_gross,
        "currency": invoice.currency,
        "other_overdue": [
            {"number": i.display_number, "due_on": i.due_on, "open": i.gross - i.paid}
            for i in others
        ],
        "utility_name": settings.HEATUTILITY.get("UTILITY_NAME", ""),
        "complaints": settings.HEATUTILITY.get("COMPLAINTS_CONTACT", ""),
        "reference": fee_invoice.display_number if fee_invoice else invoice.display_number,
    }


def reminder_pdf_bytes(*, notice: DunningNotice) -> bytes:
    from weasyprint import HTML

    html = render_to_string("billing/reminder.html", reminder_context(notice=notice))
    return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()


def reminder_pdf_render(*, notice: DunningNotice) -> str:
    """Render and store the notice's letter, and make it its fee invoice's PDF.

    Idempotent: an existing letter is kept; two renderers racing keep the first stored
    (the other's file is removed), and the fee invoice always gets the notice's file.
    """
    name = notice.pdf.name
    if not name:
        if notice.pay_by is None:
            raise ValueError("a notice sent before letters existed has no letter")
        data = reminder_pdf_bytes(notice=notice)
        saved = default_storage.save(
            f"reminders/{notice.sent_on:%Y/%m}/"
            f"{notice.invoice.display_number}-level-{notice.level}.pdf",
            ContentFile(data),
        )
        DunningNotice.objects.filter(pk=notice.pk, pdf="").update(pdf=saved)
        name = DunningNotice.objects.values_list("pdf", flat=True).get(pk=notice.pk)
        if name != saved:
            default_storage.delete(saved)
        notice.pdf.name = name
    if notice.fee_invoice_id is not None:
        Invoice.objects.filter(pk=notice.fee_invoice_id, pdf="").update(pdf=name)
    return name
