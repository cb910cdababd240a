"""Delivering issued documents to the customer: each invoice's PDF and each dunning
letter is e-mailed to the customer's address (``Customer.email`` of its account) once its
PDF is stored; a customer without an address gets it printed and posted by staff (the
admin's "to print" list, then "Mark as printed and posted").  Every document ends up
with ``emailed_at`` or ``posted_at``: the admin shows the ones that have neither.

* A reminder fee's PDF is its dunning letter (``billing.reminders``): the letter is
  e-mailed or posted, and its fee invoice is stamped with it; it is never sent alone.
* At most once: the document's row is locked (``select_for_update``), skipped when it was
  e-mailed or posted already, the message sent and ``emailed_at`` set in the same
  transaction.  A failed send (SMTP error, connection refused: :data:`DELIVERY_ERRORS`)
  raises and rolls back, so the document stays unmarked and the task's retry sends it.
  Only a crash between the mail server accepting the message and the commit can send it
  twice.
* ``BILLING["EMAIL_DOCUMENTS"] = False``: nothing is e-mailed; every document is to print.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core import mail
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from billing import conf
from billing.models import DunningLetter, Invoice
from heatutility.money import quantize_money

logger = logging.getLogger(__name__)

# what a retry can cure: the mail server refusing or failing, the network, a file read
DELIVERY_ERRORS = (smtplib.SMTPException, OSError)
# refusals of one message (its recipient, its content): the batch's others still go out;
# any other failure (server unreachable, login, sender refused) stops the batch at once
ONE_MESSAGE_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError)


class Delivery(models.TextChoices):
    EMAILED = "emailed", "Delivered by e-mail"
    POSTED = "posted", "Printed and posted"
    TO_PRINT = "to_print", "To print (no e-mail address)"
    NOT_YET = "not_yet", "Not yet delivered"


# --- reads ----------------------------------------------------------------------------


def documents_by_delivery(queryset: QuerySet, *, delivery: str) -> QuerySet:
    """Invoices or dunning letters (``queryset``) by how they were delivered.

    Awaiting delivery are issued documents neither e-mailed nor posted (a reminder-fee
    invoice goes with its letter, never on its own); of those, *to print* have their PDF
    and no e-mail address to send it to (every one when e-mailing is switched off), *not
    yet* are the rest: PDF not rendered yet, or the e-mail not sent yet (or failing)."""
    if delivery == Delivery.EMAILED:
        return queryset.filter(emailed_at__isnull=False)
    if delivery == Delivery.POSTED:
        return queryset.filter(posted_at__isnull=False)
    waiting = queryset.filter(emailed_at=None, posted_at=None)
    if queryset.model is Invoice:
        waiting = waiting.filter(number__isnull=False).exclude(kind=Invoice.Kind.REMINDER_FEE)
    printable = ~Q(pdf="")
    if conf.email_documents():
        printable &= Q(account__customer__email="")
    if delivery == Delivery.TO_PRINT:
        return waiting.filter(printable)
    if delivery == Delivery.NOT_YET:
        return waiting.exclude(printable)
    raise ValueError(f"unknown delivery {delivery!r}")


def delivery_status(document: Invoice | DunningLetter) -> str:
    """How a document was delivered, as the admin lists it."""
    if document.emailed_at is not None:
        return f"e-mailed {timezone.localtime(document.emailed_at):%Y-%m-%d}"
    if document.posted_at is not None:
        return f"posted {timezone.localtime(document.posted_at):%Y-%m-%d}"
    if isinstance(document, Invoice):
        if not document.is_issued:
            return "—"
        if document.kind == Invoice.Kind.REMINDER_FEE:
            return "with its letter"
    if document.pdf and (not conf.email_documents() or not document.account.customer.email):
        return "to print"
    return "not yet"


# --- e-mail ---------------------------------------------------------------------------


def _money(value, currency: str) -> str:
    return f"{quantize_money(value, currency):f} {currency}"


def _closing() -> list[str]:
    lines = []
    complaints = settings.HEATUTILITY.get("COMPLAINTS_CONTACT", "")
    if complaints:
        lines += [complaints, ""]
    return [*lines, "Kind regards", settings.HEATUTILITY.get("UTILITY_NAME", "")]


def invoice_message(*, invoice: Invoice) -> tuple[str, str]:
    """Subject and plain-text body of an invoice's e-mail: what it is, its number, the
    period, the total and when it is due (what is still open when part is settled)."""
    from billing.documents import _credit_use, _moved_out, _title

    account, currency = invoice.account, invoice.currency
    # as the PDF says it: a final settlement (and its credit note or correction) is
    # called so and ends on the last day supplied
    moved_out = _moved_out(invoice, list(invoice.lines.all()))
    what = _title(invoice, moved_out)
    last_day = (moved_out or invoice.period_end) - dt.timedelta(days=1)
    lines = [
        f"Dear {account.billing_name or account.customer.name},",
        "",
        f"please find attached your {what.lower()} {invoice.display_number} for account "
        f"{account.number}, "
        f"{invoice.period_start:%Y-%m-%d} – {last_day:%Y-%m-%d} (PDF).",
        "",
    ]
    if invoice.gross > 0:
        due = f", due on {invoice.due_on:%Y-%m-%d}" if invoice.due_on else ""
        lines.append(f"Total: {_money(invoice.gross, currency)}{due}.")
        if invoice.paid > 0:
            lines.append(
                f"Already settled: {_money(invoice.paid, currency)}; "
                f"still to pay: {_money(invoice.gross - invoice.paid, currency)}."
            )
    elif invoice.gross < 0:
        lines.append(f"Total: {_money(invoice.gross, currency)}, in your favour.")
        use = _credit_use(invoice)
        if use and use["rows"]:  # what the credit has settled already, as the PDF lists it
            lines += [f"{row['label']}: {_money(row['amount'], currency)}." for row in use["rows"]]
            lines.append(f"Left as credit on your account: {_money(use['left'], currency)}.")
    else:
        lines.append(f"Total: {_money(invoice.gross, currency)}, nothing to pay.")
    lines += ["", *_closing()]
    return f"{what} {invoice.display_number}, account {account.number}", "\n".join(lines)


def letter_message(*, letter: DunningLetter) -> tuple[str, str]:
    """Subject and plain-text body of a dunning letter's e-mail: the invoices it reminds
    of, what is open, its fee and fee invoice, the total now due and the pay-by date."""
    account, currency = letter.account, letter.currency
    numbers = [
        n.invoice.display_number
        # a correction continues the ladder of the invoice it replaces: name that one
        + (
            f" (replaces {n.invoice.original.display_number})"
            if n.invoice.kind == Invoice.Kind.CORRECTION and n.invoice.original is not None
            else ""
        )
        for n in letter.notices.select_related("invoice__original").order_by(
            "invoice__due_on", "invoice__number"
        )
    ]
    fee = letter.fee_invoice.gross if letter.fee_invoice_id else 0
    lines = [
        f"Dear {account.billing_name or account.customer.name},",
        "",
        f'please find attached our letter "{letter.title}" of {letter.sent_on:%Y-%m-%d} '
        f"for account {account.number} (PDF).",
        "",
        f"Overdue: {', '.join(numbers) or '—'}, open {_money(letter.open_amount, currency)}.",
    ]
    if letter.fee_invoice_id:
        lines.append(
            f"Reminder fee: {_money(fee, currency)} (invoice {letter.fee_invoice.display_number})."
        )
    lines.append(
        f"Total now due: {_money(letter.open_amount + fee, currency)}, to pay by "
        f"{letter.pay_by:%Y-%m-%d}."
    )
    if letter.next_steps:
        lines += ["", letter.next_steps]
    lines += ["", *_closing()]
    return f"{letter.title}, account {account.number}", "\n".join(lines)


def _send(document, *, subject: str, body: str, connection) -> None:
    with document.pdf.open("rb") as handle:
        data = handle.read()
    message = mail.EmailMessage(
        # a header is one line: a line break in the data it names (an account number or a
        # letter title typed with one) made Django refuse the message (BadHeaderError)
        subject=" ".join(subject.split()),
        body=body,
        to=[document.account.customer.email],
        connection=connection,
    )
    message.attach(document.pdf_filename, data, "application/pdf")
    if connection is not None:
        connection.open()  # kept open for the batch's next message (no-op when open)
    message.send()


def _ready(document) -> bool:
    return (
        bool(document.pdf)
        and document.emailed_at is None
        and document.posted_at is None
        and bool(document.account.customer.email)
    )


def invoice_email(*, invoice_id: int, now: dt.datetime, connection=None) -> bool:
    """E-mail the PDF of issued invoice ``invoice_id`` to its customer, at most once.

    False (nothing sent) when e-mailing is off, the invoice has no PDF, was delivered
    already, its customer has no address, or it is a reminder fee (its letter is sent).
    Raises :data:`DELIVERY_ERRORS` with nothing marked when the send fails."""
    if not conf.email_documents():
        return False
    with transaction.atomic():
        invoice = (
            Invoice.objects.select_for_update(of=("self",))
            .select_related("account__customer")
            .filter(pk=invoice_id, number__isnull=False)
            .exclude(kind=Invoice.Kind.REMINDER_FEE)
            .first()
        )
        if invoice is None or not _ready(invoice):
            return False
        subject, body = invoice_message(invoice=invoice)
        _send(invoice, subject=subject, body=body, connection=connection)
        Invoice.objects.filter(pk=invoice.pk).update(emailed_at=now)
    # debug: emailed_at is the record; a run's thousands of sends would flood the log
    logger.debug("invoice %s e-mailed to account %s", invoice.display_number, invoice.account_id)
    return True


def dunning_letter_email(*, letter_id: int, now: dt.datetime, connection=None) -> bool:
    """E-mail dunning letter ``letter_id`` (its PDF) to its customer, at most once, and
    count its fee invoice delivered with it.  False and raises as :func:`invoice_email`."""
    if not conf.email_documents():
        return False
    with transaction.atomic():
        letter = (
            DunningLetter.objects.select_for_update(of=("self",))
            .select_related("account__customer", "fee_invoice")
            .filter(pk=letter_id)
            .first()
        )
        if letter is None or not _ready(letter):
            return False
        subject, body = letter_message(letter=letter)
        _send(letter, subject=subject, body=body, connection=connection)
        DunningLetter.objects.filter(pk=letter.pk).update(emailed_at=now)
        if letter.fee_invoice_id is not None:
            Invoice.objects.filter(pk=letter.fee_invoice_id, emailed_at=None).update(emailed_at=now)
    logger.debug("dunning letter %s e-mailed to account %s", letter.pk, letter.account_id)
    return True


def _each(send: Callable[..., bool], ids: Iterable[int], *, now: dt.datetime, what: str) -> int:
    """Send each document over one mail-server connection.  A refusal of one message does
    not stop the others and is raised at the end; any other failure is raised at once.
    The task then retries the batch, skipping what was sent."""
    if not conf.email_documents():
        return 0
    sent, refused = 0, None
    connection = mail.get_connection()
    try:
        for pk in sorted(ids):
            try:
                sent += send(pk, now=now, connection=connection)
            except ONE_MESSAGE_ERRORS as exc:
                logger.warning("e-mail of %s %s refused: %s", what, pk, exc)
                refused = refused or exc
                connection.close()  # a session that failed is not reused
    finally:
        connection.close()
    if refused is not None:
        raise refused
    return sent


def invoices_email(*, invoice_ids: Iterable[int], now: dt.datetime) -> int:
    """E-mail the issued invoices ``invoice_ids`` (:func:`invoice_email` each); the number
    sent."""
    return _each(
        lambda pk, **kw: invoice_email(invoice_id=pk, **kw), invoice_ids, now=now, what="invoice"
    )


def dunning_letters_email(*, letter_ids: Iterable[int], now: dt.datetime) -> int:
    """E-mail the dunning letters ``letter_ids`` (:func:`dunning_letter_email` each)."""
    return _each(
        lambda pk, **kw: dunning_letter_email(letter_id=pk, **kw),
        letter_ids,
        now=now,
        what="dunning letter",
    )


# --- printed and posted ---------------------------------------------------------------


def invoices_mark_posted(*, invoice_ids: Iterable[int], posted_at: dt.datetime) -> int:
    """Staff printed and posted these invoices: those issued, with a PDF and not delivered
    yet are marked (a reminder fee is posted with its letter); the number marked."""
    return (
        Invoice.objects.filter(
            pk__in=list(invoice_ids), number__isnull=False, emailed_at=None, posted_at=None
        )
        .exclude(pdf="")
        .exclude(kind=Invoice.Kind.REMINDER_FEE)
        .update(posted_at=posted_at)
    )


def dunning_letters_mark_posted(*, letter_ids: Iterable[int], posted_at: dt.datetime) -> int:
    """Staff printed and posted these letters: those with a PDF and not delivered yet are
    marked, their fee invoices with them; the number marked."""
    with transaction.atomic():
        rows = list(
            DunningLetter.objects.select_for_update()
            .filter(pk__in=list(letter_ids), emailed_at=None, posted_at=None)
            .exclude(pdf="")
            .order_by("pk")
            .values_list("pk", "fee_invoice_id")
        )
        DunningLetter.objects.filter(pk__in=[pk for pk, _ in rows]).update(posted_at=posted_at)
        Invoice.objects.filter(
            pk__in=[fee for _, fee in rows if fee is not None], emailed_at=None, posted_at=None
        ).update(posted_at=posted_at)
    return len(rows)
