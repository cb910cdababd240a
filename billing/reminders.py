"""Dunning letters (WeasyPrint, like invoice PDFs): one per :class:`DunningLetter`, stored
on the letter and, when it charges a fee, on the fee invoice too (its document is the
letter).

A letter lists every invoice it reminds of (number, due date, what is open, the level
reached; for a correction, the invoice it replaces and the claim's earlier reminders),
the total open, its one fee and the fee invoice, the total now due, the new
pay-by date, the account's other overdue invoices, the utility and where to complain
(the settings the invoice PDF uses) and, for the final level, what happens next.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.template.loader import render_to_string

from billing.documents import pdf_store_once
from billing.models import DunningLetter, Invoice

ZERO = Decimal("0")


def reminder_context(*, letter: DunningLetter) -> dict:
    account = letter.account
    fee_invoice = letter.fee_invoice
    fee_gross = fee_invoice.gross if fee_invoice is not None else ZERO
    notices = list(
        letter.notices.select_related("invoice__original").order_by(
            "invoice__due_on", "invoice__number"
        )
    )
    for notice in notices:
        notice.replaces, notice.earlier = _claim_before(notice=notice, letter=letter)
    others = (
        Invoice.objects.filter(account=account, state=Invoice.State.OVERDUE, gross__gt=0)
        .exclude(kind=Invoice.Kind.CREDIT_NOTE)
        .exclude(pk__in=[n.invoice_id for n in notices] + [letter.fee_invoice_id or 0])
        .order_by("due_on", "number")
    )
    references = [n.invoice.display_number for n in notices]
    if fee_invoice is not None:
        references.append(fee_invoice.display_number)
    return {
        "letter": letter,
        "notices": notices,
        "account": account,
        "customer": account.customer,
        "fee_invoice": fee_invoice,
        "fee_gross": fee_gross,
        "total_due": letter.open_amount + fee_gross,
        "currency": letter.currency,
        "other_overdue": [
            {"number": i.display_number, "due_on": i.due_on, "open": i.gross - i.paid}
            for i in others
        ],
        "utility_name": settings.HEATUTILITY.get("UTILITY_NAME", ""),
        "complaints": settings.HEATUTILITY.get("COMPLAINTS_CONTACT", ""),
        "references": references,
    }


def _claim_before(*, notice, letter: DunningLetter) -> tuple[str, list[str]]:
    """For a correction's notice: the number of the invoice it replaces and the claim's
    reminders before this letter ("2026-12-06 (2: Second reminder)"), since its ladder
    goes on from theirs (``dunning.claim_history``): a final notice for an invoice the
    customer was never reminded of would not make sense.  Empty for other invoices."""
    from billing.services.dunning import claim_history

    invoice = notice.invoice
    if invoice.kind != Invoice.Kind.CORRECTION or invoice.original is None:
        return "", []
    earlier = sorted(
        (n for n in claim_history(invoice).notices if n.sent_on < letter.sent_on),
        key=lambda n: (n.sent_on, n.level),
    )
    return invoice.original.display_number, [
        f"{n.sent_on.isoformat()} ({n.level}: {n.title})" for n in earlier
    ]


def reminder_pdf_bytes(*, letter: DunningLetter) -> bytes:
    from weasyprint import HTML

    html = render_to_string("billing/reminder.html", reminder_context(letter=letter))
    return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()


def reminder_pdf_render(*, letter: DunningLetter) -> str:
    """Render and store the letter's PDF, and make it its fee invoice's PDF.

    Idempotent: an existing PDF is kept; two renderers racing keep the first stored (the
    other's file is removed), and the fee invoice always gets the letter's file.
    """
    name = letter.pdf.name
    if not name:
        name = pdf_store_once(
            document=letter,
            path=f"reminders/{letter.sent_on:%Y/%m}/{letter.account.number}-{letter.sent_on}.pdf",
            data=reminder_pdf_bytes(letter=letter),
        )
    if letter.fee_invoice_id is not None:
        Invoice.objects.filter(pk=letter.fee_invoice_id, pdf="").update(pdf=name)
    return name
