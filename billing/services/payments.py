"""Payments, allocation, balance, overdue detection and dunning.

Allocation rule: a payment goes first to the invoice its reference names (``INV-2026-000123``
or the bare number), then to the open invoices of the account, oldest due date first
(then lowest number).  What is left stays on the payment as unallocated credit and is used
when the next invoice is issued or allocation is re-run.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import F, Sum

from billing import conf
from billing.models import Allocation, DunningNotice, Invoice, Payment, Refund, RefundPart
from billing.services.invoices import invoice_payment_state
from customers.models import Account
from heatutility.errors import DomainError, ErrorItem
from heatutility.money import quantize_money

ZERO = Decimal("0")
OPEN_STATES = (Invoice.State.ISSUED, Invoice.State.PARTLY_PAID, Invoice.State.OVERDUE)


class PaymentImportInvalid(DomainError):
    code = "payment_import_invalid"


class RefundExceedsCredit(DomainError):
    code = "refund_exceeds_credit"


def _reference_invoice(account: Account, reference: str) -> Invoice | None:
    match = re.search(r"([A-Z]+-\d{4})-(\d+)", reference or "")
    qs = Invoice.objects.filter(account=account, state__in=OPEN_STATES)
    if match:
        return qs.filter(series=match.group(1), number=int(match.group(2))).first()
    return None


def _settle(
    invoices, left: Decimal, *, on: dt.date, allocations: list[Allocation], **source
) -> Decimal:
    """Settle ``invoices`` in order from ``left`` (a payment or a credit note, ``source``);
    returns what is left.  The invoices are locked by the caller."""
    for invoice in invoices:
        if left <= 0:
            break
        amount = min(left, invoice.gross - invoice.paid)
        if amount <= 0:
            continue
        allocations.append(
            Allocation.objects.create(invoice=invoice, amount=amount, allocated_on=on, **source)
        )
        invoice_payment_state(invoice=invoice, paid=invoice.paid + amount)
        left -= amount
    return left


def payment_allocate(*, payment: Payment, on: dt.date) -> list[Allocation]:
    """Allocate what is left of ``payment``: referenced invoice first, then oldest first."""
    allocations: list[Allocation] = []
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        left = payment.unallocated
        open_invoices = list(
            Invoice.objects.select_for_update()
            .filter(account_id=payment.account_id, state__in=OPEN_STATES, gross__gt=0)
            .order_by("due_on", "number")
        )
        referenced = _reference_invoice(payment.account, payment.reference)
        if referenced is not None:
            open_invoices.sort(key=lambda inv: inv.pk != referenced.pk)
        left = _settle(open_invoices, left, on=on, allocations=allocations, payment=payment)
        payment.unallocated = left
        payment.save(update_fields=["unallocated"])
    return allocations


def payment_record(
    *,
    account: Account,
    amount: Decimal,
    received_on: dt.date,
    now: dt.datetime,
    reference: str = "",
    source: str = Payment.Source.STAFF,
    bank_transaction_id: str = "",
    user=None,
) -> Payment:
    if amount <= 0:
        raise DomainError("A payment amount must be positive.")
    amount = quantize_money(amount, account.network.currency)
    with transaction.atomic():
        payment = Payment.objects.create(
            account=account,
            amount=amount,
            currency=account.network.currency,
            received_on=received_on,
            reference=reference,
            source=source,
            bank_transaction_id=bank_transaction_id,
            unallocated=amount,
            created_by=user,
            created_at=now,
        )
        payment_allocate(payment=payment, on=received_on)
    payment.refresh_from_db()
    return payment


def credit_notes_with_credit():
    """Issued credit notes not used up: ``paid`` (negative: what they settled) is still
    above ``gross`` (negative: what they credit)."""
    return Invoice.objects.filter(
        kind=Invoice.Kind.CREDIT_NOTE, state__in=OPEN_STATES, paid__gt=F("gross")
    )


def credit_notes_allocate(*, account_id: int, on: dt.date) -> list[Allocation]:
    """Use what the account's credit notes have left on its open invoices, oldest due first.

    A credit note first settles its original (``invoices._apply_credit_notes``); when it
    credits more than was open there (the original was paid), the excess is account
    credit and settles the next invoices, like an overpayment (DOMAIN.md §7: only the
    difference of a cancel/rebill reaches the customer).  Older credit notes are used
    first.
    """
    allocations: list[Allocation] = []
    with transaction.atomic():
        rows = _open_invoices_locked(account_id)
        notes = _notes_with_credit(rows)
        receivables = sorted(
            (i for i in rows if i.gross > 0 and i.paid < i.gross),
            key=lambda i: (i.due_on, i.number),
        )
        for note in notes:
            left = _settle(
                receivables,
                note.paid - note.gross,
                on=on,
                allocations=allocations,
                credit_note=note,
            )
            used = note.paid - note.gross - left
            if used > 0:
                _note_use(note, used)
    return allocations


def _open_invoices_locked(account_id: int) -> list[Invoice]:
    """The account's open invoices and credit notes, locked in one statement in id order."""
    return list(
        Invoice.objects.select_for_update()
        .filter(account_id=account_id, state__in=OPEN_STATES)
        .order_by("pk")
    )


def _notes_with_credit(rows: list[Invoice]) -> list[Invoice]:
    """Credit notes among ``rows`` with credit left, older first."""
    return sorted(
        (i for i in rows if i.kind == Invoice.Kind.CREDIT_NOTE and i.paid > i.gross),
        key=lambda i: (i.issued_at, i.number),
    )


def _note_use(note: Invoice, amount: Decimal) -> None:
    """``amount`` of a credit note's credit is used (settled an invoice, or refunded)."""
    note.paid -= amount
    note.state = Invoice.State.PAID if note.paid == note.gross else Invoice.State.PARTLY_PAID
    note.save(update_fields=["paid", "state"])


def account_credit(*, account: Account) -> Decimal:
    """Credit the account holds and has not used yet: unallocated payments plus what its
    credit notes have left (refund it, or it settles the next invoices)."""
    payments = Payment.objects.filter(account=account).aggregate(s=Sum("unallocated"))["s"] or ZERO
    notes = (
        credit_notes_with_credit()
        .filter(account=account)
        .aggregate(s=Sum(F("paid") - F("gross")))["s"]
        or ZERO
    )
    return quantize_money(payments + notes, account.network.currency)


def payments_apply_unallocated(
    *, on: dt.date, network_id: int | None = None, account_id: int | None = None
) -> int:
    """Use account credit on invoices issued since (after every issue): first what credit
    notes have left, then payments' unallocated amounts.

    Returns the number of allocations made.  Only accounts that hold credit are touched.
    """
    notes = credit_notes_with_credit()
    if network_id is not None:
        notes = notes.filter(network_id=network_id)
    if account_id is not None:
        notes = notes.filter(account_id=account_id)
    made = 0
    for note_account_id in sorted(set(notes.values_list("account_id", flat=True))):
        made += len(credit_notes_allocate(account_id=note_account_id, on=on))
    payments = Payment.objects.filter(unallocated__gt=0)
    if network_id is not None:
        payments = payments.filter(account__network_id=network_id)
    if account_id is not None:
        payments = payments.filter(account_id=account_id)
    for payment in payments.order_by("received_on", "id"):
        made += len(payment_allocate(payment=payment, on=on))
    return made


@dataclass
class ImportResult:
    created: int = 0
    duplicates: int = 0
    errors: list[ErrorItem] = field(default_factory=list)


def _decimal(text: str) -> Decimal:
    text = text.strip().replace(" ", "")
    if "," in text and "." in text:
        text = text.replace(".", "").replace(",", ".")  # 1.234,56
    elif "," in text:
        text = text.replace(",", ".")
    return Decimal(text)


def payments_import_csv(*, text: str, now: dt.datetime, user=None) -> ImportResult:
    """Import a bank statement CSV (``,`` or ``;``; decimal comma accepted).

    Columns: ``date`` (YYYY-MM-DD), ``amount``, ``reference`` (invoice number or free text),
    ``account`` (customer number; optional if the reference names an invoice),
    ``transaction_id`` (the bank's id; a transaction is imported once).  Credits only:
    rows with amount ≤ 0 are reported and skipped.
    """
    sample = text[:2000]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    required = {"date", "amount", "transaction_id"}
    missing = required - {(h or "").strip().lower() for h in (reader.fieldnames or [])}
    if missing:
        raise PaymentImportInvalid(
            f"The statement lacks column(s): {', '.join(sorted(missing))}.",
            errors=[ErrorItem(code="missing_column", message=m, field=m) for m in sorted(missing)],
        )
    result = ImportResult()
    for row_number, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        try:
            received_on = dt.date.fromisoformat(row["date"])
        except ValueError:
            result.errors.append(
                ErrorItem(code="invalid", message="not a date", field="date", row=row_number)
            )
            continue
        try:
            amount = _decimal(row["amount"])
        except (InvalidOperation, ValueError):
            result.errors.append(
                ErrorItem(code="invalid", message="not an amount", field="amount", row=row_number)
            )
            continue
        if amount <= 0:
            result.errors.append(
                ErrorItem(
                    code="not_credit",
                    message="not an incoming payment",
                    field="amount",
                    row=row_number,
                )
            )
            continue
        account = None
        if row.get("account"):
            account = (
                Account.objects.filter(number=row["account"]).select_related("network").first()
            )
        if account is None:
            match = re.search(r"([A-Z]+-\d{4})-(\d+)", row.get("reference", ""))
            if match:
                invoice = (
                    Invoice.objects.filter(series=match.group(1), number=int(match.group(2)))
                    .select_related("account__network")
                    .first()
                )
                account = invoice.account if invoice else None
        if account is None:
            result.errors.append(
                ErrorItem(
                    code="unmatched",
                    message="no account or invoice matches",
                    field="reference",
                    row=row_number,
                )
            )
            continue
        try:
            with transaction.atomic():
                payment_record(
                    account=account,
                    amount=amount,
                    received_on=received_on,
                    now=now,
                    reference=row.get("reference", ""),
                    source=Payment.Source.BANK,
                    bank_transaction_id=row["transaction_id"],
                    user=user,
                )
            result.created += 1
        except IntegrityError:
            result.duplicates += 1
    return result


def account_balance(*, account: Account) -> Decimal:
    """Issued gross (credit notes negative) minus payments received plus refunds paid
    out: > 0 means owed, < 0 is credit the customer holds."""
    billed = (
        Invoice.objects.filter(account=account, number__isnull=False).aggregate(s=Sum("gross"))["s"]
        or ZERO
    )
    paid = Payment.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or ZERO
    refunded = Refund.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or ZERO
    return quantize_money(billed - paid + refunded, account.network.currency)


def refund_record(
    *,
    account: Account,
    amount: Decimal,
    paid_on: dt.date,
    now: dt.datetime,
    reference: str = "",
    user=None,
) -> Refund:
    """Pay account credit back to the customer.

    The refund takes what credit notes have left first (oldest first), then payments'
    unallocated amounts (oldest first), the same order in which credit settles new
    invoices; each source it takes from is recorded as a :class:`RefundPart`.  More than
    the account's credit is refused, and nothing is changed.
    """
    if amount <= 0:
        raise DomainError("A refund amount must be positive.")
    currency = account.network.currency
    amount = quantize_money(amount, currency)
    with transaction.atomic():
        # the account's credit, locked: its open invoices (credit notes among them) and
        # its payments with money left, each in id order
        notes = _notes_with_credit(_open_invoices_locked(account.pk))
        payments = list(
            Payment.objects.select_for_update()
            .filter(account=account, unallocated__gt=0)
            .order_by("received_on", "pk")
        )
        credit = sum((n.paid - n.gross for n in notes), ZERO) + sum(
            (p.unallocated for p in payments), ZERO
        )
        if amount > credit:
            raise RefundExceedsCredit(
                f"The account holds {credit} {currency} of credit; {amount} cannot be refunded.",
                errors=[
                    ErrorItem(
                        code="exceeds_credit",
                        message=f"at most {credit}",
                        field="amount",
                    )
                ],
            )
        refund = Refund.objects.create(
            account=account,
            amount=amount,
            currency=currency,
            paid_on=paid_on,
            reference=reference,
            created_by=user,
            created_at=now,
        )
        left = amount
        parts: list[RefundPart] = []
        for note in notes:
            if left <= 0:
                break
            part = min(left, note.paid - note.gross)
            parts.append(RefundPart(refund=refund, credit_note=note, amount=part))
            _note_use(note, part)
            left -= part
        for payment in payments:
            if left <= 0:
                break
            part = min(left, payment.unallocated)
            parts.append(RefundPart(refund=refund, payment=payment, amount=part))
            payment.unallocated -= part
            payment.save(update_fields=["unallocated"])
            left -= part
        RefundPart.objects.bulk_create(parts)
    return refund


def invoices_mark_overdue(*, today: dt.date) -> int:
    return Invoice.objects.filter(
        state__in=(Invoice.State.ISSUED, Invoice.State.PARTLY_PAID), due_on__lt=today, gross__gt=0
    ).update(state=Invoice.State.OVERDUE)


def dunning_run(*, now: dt.datetime, time_zone: str = "Europe/Copenhagen") -> list[DunningNotice]:
    """Mark overdue invoices and send each the next ladder level it has reached.

    The ladder (settings ``BILLING["DUNNING_LADDER"]``) lists days after the due date, a
    title and a fee; an invoice gets each level at most once (unique constraint), one level
    per run, so a missed day never sends two letters at once.
    """
    today = now.astimezone(ZoneInfo(time_zone)).date()
    invoices_mark_overdue(today=today)
    ladder = conf.get("DUNNING_LADDER")
    notices = []
    overdue = Invoice.objects.filter(state=Invoice.State.OVERDUE).prefetch_related(
        "dunning_notices"
    )
    for invoice in overdue:
        sent = {n.level for n in invoice.dunning_notices.all()}
        days_late = (today - invoice.due_on).days
        for level, step in enumerate(ladder, start=1):
            if level in sent:
                continue
            if days_late >= int(step["days"]):
                try:
                    with transaction.atomic():
                        notices.append(
                            DunningNotice.objects.create(
                                invoice=invoice,
                                level=level,
                                title=step["title"],
                                fee=Decimal(str(step.get("fee", "0"))),
                                open_amount=invoice.gross - invoice.paid,
                                sent_on=today,
                            )
                        )
                except IntegrityError:
                    pass
            break
    return notices
