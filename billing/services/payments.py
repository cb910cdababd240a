"""Payments, allocation, balance and refunds (overdue and dunning: ``billing.services.dunning``).

Allocation rule: a payment goes first to the invoice its reference names (``INV-2026-000123``
or the bare number), then to the open invoices of the account, oldest due date first
(then lowest number).  What is left stays on the payment as unallocated credit and is used
when the next invoice is issued or allocation is re-run.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet, Sum

from billing.models import Allocation, Invoice, Payment, Refund, RefundPart
from billing.services.collection import collection_cases_settle
from billing.services.dunning import dunning_run, invoices_mark_overdue  # noqa: F401 (moved)
from billing.services.invoices import invoice_payment_state
from customers.models import Account
from heatutility.errors import ConflictError, DomainError, ErrorItem
from heatutility.money import quantize_money
from heatutility.timeutil import DATE_OUT_OF_RANGE, date_in_range

ZERO = Decimal("0")
OPEN_STATES = (Invoice.State.ISSUED, Invoice.State.PARTLY_PAID, Invoice.State.OVERDUE)


class PaymentImportInvalid(DomainError):
    code = "payment_import_invalid"


class BankTransactionBooked(ConflictError):
    pass


BANK_TRANSACTION_BOOKED = "This bank transaction was imported already."


class RefundExceedsCredit(DomainError):
    code = "refund_exceeds_credit"


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"


IDEMPOTENCY_KEY_STORED = 100  # the column; a longer key is stored as its SHA-256


def idempotency_key_stored(key: str) -> str:
    """An API request's ``Idempotency-Key`` as stored on the payment or refund it books:
    as sent, or (longer than the column) ``sha256:`` and its digest; control characters
    are refused on the header."""
    key = (key or "").strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        message = "The Idempotency-Key header contains control characters."
        raise DomainError(
            message, errors=[ErrorItem(code="invalid", field="Idempotency-Key", message=message)]
        )
    if len(key) <= IDEMPOTENCY_KEY_STORED:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _booked_before(model, *, user, key: str, **same):
    """The payment or refund ``user`` booked under the Idempotency-Key ``key`` before
    (a request sent again after a timeout: it is answered, not booked twice); None if
    none.  The key used for another booking (``same`` differs) is refused."""
    if not key or user is None:
        return None
    first = model.objects.filter(created_by=user, idempotency_key=key).first()
    if first is None:
        return None
    differing = sorted(name for name, value in same.items() if getattr(first, name) != value)
    if differing:
        what = model._meta.verbose_name
        message = (
            f"This Idempotency-Key was used for {what} {first.pk} with another "
            f"{', '.join(differing)}: use a new key for a new {what}."
        )
        raise IdempotencyKeyReused(
            message,
            errors=[
                ErrorItem(code="idempotency_key_reused", field="Idempotency-Key", message=message)
            ],
        )
    return first


# case-insensitive: customers type "inv-2026-000123" too (series are stored in capitals)
_INVOICE_REFERENCE = re.compile(r"([A-Z]+-\d{4})-(\d+)", re.IGNORECASE)
_MAX_INVOICE_NUMBER = 2**63 - 1  # Invoice.number is a bigint


def _invoice_key(reference: str) -> tuple[str, int] | None:
    """The ``(series, number)`` an ``INV-2026-000123`` in ``reference`` names, if any
    (a number too large to be an invoice number names none)."""
    match = _INVOICE_REFERENCE.search(reference or "")
    if not match or len(match.group(2).lstrip("0")) > 19:
        return None
    number = int(match.group(2))
    return (match.group(1), number) if number <= _MAX_INVOICE_NUMBER else None


def _reference_invoice(account_id: int, reference: str) -> Invoice | None:
    key = _invoice_key(reference)
    if key is None:
        return None
    return Invoice.objects.filter(
        account_id=account_id, state__in=OPEN_STATES, series__in=_spellings(key[0]), number=key[1]
    ).first()


def _spellings(series: str) -> set[str]:
    """The series as written and in capitals (an index lookup, unlike ``iexact``)."""
    return {series, series.upper()}


def _settle(
    invoices, left: Decimal, *, on: dt.date, allocations: list[Allocation], **source
) -> Decimal:
    """Settle ``invoices`` in order from ``left`` (a payment or a credit note, ``source``);
    returns what is left.  The invoices are locked by the caller.  A collection case
    whose last open invoice this settles is settled with it."""
    overdue_paid = []
    for invoice in invoices:
        if left <= 0:
            break
        amount = min(left, invoice.gross - invoice.paid)
        if amount <= 0:
            continue
        allocations.append(
            Allocation.objects.create(invoice=invoice, amount=amount, allocated_on=on, **source)
        )
        was_overdue = invoice.state == Invoice.State.OVERDUE
        invoice_payment_state(invoice=invoice, paid=invoice.paid + amount)
        if was_overdue and invoice.state == Invoice.State.PAID:
            overdue_paid.append(invoice.pk)  # only an overdue invoice is in a case
        left -= amount
    if overdue_paid:
        collection_cases_settle(on=on, invoice_ids=overdue_paid)
    return left


def payment_allocate(*, payment: Payment, on: dt.date) -> list[Allocation]:
    """Allocate what is left of ``payment``: referenced invoice first, then oldest first."""
    allocations: list[Allocation] = []
    with transaction.atomic():
        # every allocation and refund on an account locks its invoices (id order) before
        # its payments: refunds and credit notes take them in that order, and the
        # opposite order here deadlocked a payment's allocation against a refund
        open_invoices = sorted(
            Invoice.objects.select_for_update()
            .filter(account_id=payment.account_id, state__in=OPEN_STATES, gross__gt=0)
            .order_by("pk"),
            key=lambda invoice: (invoice.due_on, invoice.number),
        )
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        left = payment.unallocated
        referenced = _reference_invoice(payment.account_id, payment.reference)
        if referenced is not None:
            open_invoices.sort(key=lambda inv: inv.pk != referenced.pk)
        left = _settle(open_invoices, left, on=on, allocations=allocations, payment=payment)
        payment.unallocated = left
        payment.save(update_fields=["unallocated"])
    return allocations


def payment_amount_check(*, amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded to ``currency``'s minor unit; refused unless that is positive.

    Checked once rounded: 0.004 DKK (0.40 ISK) is nothing, and the CHECK constraint would
    turn it into a database error (500) instead of a refusal.  The admin's form calls
    this too, to show the refusal on the field."""
    rounded = quantize_money(amount, currency)
    if rounded <= 0:
        message = "A payment amount must be positive" + (
            f" ({amount} {currency} is {rounded} once rounded to the currency)."
            if amount > 0
            else "."
        )
        raise DomainError(
            message, errors=[ErrorItem(code="invalid", message=message, field="amount")]
        )
    return rounded


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
    idempotency_key: str = "",
) -> Payment:
    """Book a payment and settle the account's open invoices with it.  A bank
    transaction id booked already (by a statement import committing it after the
    caller's own check, say) is refused on its field (409), not left to the database.
    Sent again by ``user`` under the same ``idempotency_key`` (the API's header), the
    payment booked the first time is returned and nothing is booked."""
    amount = payment_amount_check(amount=amount, currency=account.network.currency)
    key = idempotency_key_stored(idempotency_key) if user is not None else ""
    same = {
        "account_id": account.pk,
        "amount": amount,
        "received_on": received_on,
        "reference": reference,
        "bank_transaction_id": bank_transaction_id,
    }
    if (first := _booked_before(Payment, user=user, key=key, **same)) is not None:
        return first
    try:
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
                idempotency_key=key,
            )
            payment_allocate(payment=payment, on=received_on)
    except IntegrityError:
        # the same request, sent again while the first was booking it
        if (first := _booked_before(Payment, user=user, key=key, **same)) is not None:
            return first
        if (
            bank_transaction_id
            and Payment.objects.filter(bank_transaction_id=bank_transaction_id).exists()
        ):
            raise BankTransactionBooked(
                BANK_TRANSACTION_BOOKED,
                errors=[
                    ErrorItem(
                        code="conflict",
                        message=BANK_TRANSACTION_BOOKED,
                        field="bank_transaction_id",
                    )
                ],
            ) from None
        raise
    payment.refresh_from_db()
    return payment


def credit_notes_with_credit():
    """Issued credit documents not used up: credit notes, and settlements (or their
    corrections) that came out in the customer's favour.  ``paid`` (negative: what they
    settled) is still above ``gross`` (negative: what they credit)."""
    return Invoice.objects.filter(gross__lt=0, state__in=OPEN_STATES, paid__gt=F("gross"))


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


def accounts_open_invoices_lock(*account_ids) -> None:
    """Lock the open invoices and credit notes of the accounts in ``account_ids`` (each
    ids, or a query of rows with an ``account_id``) in one statement, in id order, until
    the transaction ends.

    For a transaction that books for many accounts (a statement import, using credit
    after an issue): taken account by account, in the order of the file or of the
    payments' dates, two such transactions naming two accounts in opposite orders
    deadlocked (PostgreSQL refused one whole).  One id order across accounts is also the
    order marking invoices overdue takes (``dunning.invoices_mark_overdue``), and each
    account's own locks (:func:`payment_allocate`, refunds) are a part of it."""
    if not connection.features.has_select_for_update:
        return
    # the accounts first, then their invoices: with the queries inside the lock's WHERE
    # (``account_id IN (…) OR account_id IN (…)``) PostgreSQL read every open invoice of
    # every account (107 ms after a 100,000-bill run, when no account held credit)
    accounts: set[int] = set()
    for ids in account_ids:
        if isinstance(ids, QuerySet):
            ids = ids.values_list("account_id", flat=True)
        accounts.update(ids)
    if not accounts:
        return
    list(
        Invoice.objects.select_for_update()
        .filter(account_id__in=sorted(accounts), state__in=OPEN_STATES)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _notes_with_credit(rows: list[Invoice]) -> list[Invoice]:
    """Credit documents among ``rows`` (negative gross: credit notes, a settlement in the
    customer's favour) with credit left, older first."""
    return sorted(
        (i for i in rows if i.gross < 0 and i.paid > i.gross),
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
    payments = Payment.objects.filter(unallocated__gt=0)
    if network_id is not None:
        notes = notes.filter(network_id=network_id)
        payments = payments.filter(account__network_id=network_id)
    if account_id is not None:
        notes = notes.filter(account_id=account_id)
        payments = payments.filter(account_id=account_id)
    made = 0
    with transaction.atomic():
        # every such account's invoices up front, in id order: account by account, in the
        # order of the payments' dates, a run's issue step deadlocked with an import
        accounts_open_invoices_lock(notes.order_by(), payments.order_by())
        for note_account_id in sorted(set(notes.order_by().values_list("account_id", flat=True))):
            made += len(credit_notes_allocate(account_id=note_account_id, on=on))
        for payment in payments.order_by("received_on", "id"):
            made += len(payment_allocate(payment=payment, on=on))
    return made


@dataclass
class ImportResult:
    created: int = 0
    duplicates: int = 0
    # rows that are no customer payment: outgoing (fees, transfers) or zero amounts
    skipped: int = 0
    # incoming credits no account or invoice matches (a supplier's refund, an unreadable
    # reference): not imported, listed for staff to record by hand ({row, date, amount,
    # reference, account, transaction_id})
    unmatched: list[dict] = field(default_factory=list)
    # kept for callers: a statement with a bad row is refused whole (PaymentImportInvalid),
    # so a returned result has no errors
    errors: list[ErrorItem] = field(default_factory=list)


STATEMENT_COLUMNS = ("date", "amount", "reference", "account", "transaction_id")
_REQUIRED_COLUMNS = ("date", "amount", "transaction_id")
_QUERY_CHUNK = 400  # keeps every IN (…) under SQLite's 999 parameters
_ERRORS_IN_MESSAGE = 5


def _parse_amount(text: str) -> Decimal:
    """A statement amount: ``1234.56``, ``1234,56``, ``1.234,56``, ``1,234.56``,
    ``1 234,56``, signed.  With both separators the rightmost is the decimal one; one kind
    appearing more than once groups thousands; a single one is the decimal separator.
    Exponents, ``NaN`` and ``Infinity`` are refused (``ValueError``)."""
    text = text.strip().replace(" ", "").replace("\u00a0", "")
    sign = ""
    if text[:1] in ("+", "-"):
        sign, text = text[0], text[1:]
    if not text or not any(c.isdigit() for c in text) or text.strip("0123456789.,"):
        raise ValueError(text)
    commas, dots = text.count(","), text.count(".")
    if commas and dots:
        point = "," if text.rfind(",") > text.rfind(".") else "."
    elif commas + dots == 1:
        point = "," if commas else "."
    else:
        point = None
    whole, frac = text.rsplit(point, 1) if point else (text, "")
    if (point and point in whole) or (frac and not frac.isdigit()):
        raise ValueError(text)
    thousands = [sep for sep in ",." if sep in whole]
    if thousands:
        groups = whole.split(thousands[0])
        if not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
            raise ValueError(text)
        whole = "".join(groups)
    if whole and not whole.isdigit():
        raise ValueError(text)
    return Decimal(f"{sign}{whole or '0'}.{frac or '0'}")


# one separator before exactly three digits, after one to three digits that can lead a
# thousands group: ``1.234`` is 1,234.00 in a Danish statement, 1.234 in an English one
_AMBIGUOUS_AMOUNT = re.compile(r"[+-]?[1-9]\d{0,2}[.,]\d{3}")


def _ambiguous_amount(text: str) -> bool:
    return bool(_AMBIGUOUS_AMOUNT.fullmatch(text.strip().replace(" ", "").replace("\u00a0", "")))


@dataclass
class _StatementRow:
    row: int
    received_on: dt.date | None
    amount: Decimal | None  # as written; rounded once the account's currency is known
    reference: str
    account_number: str
    transaction_id: str
    bad: set[str]  # columns already reported
    account: Account | None = None
    debit: bool = False  # money going out: skipped


def _statement_rows(text: str) -> tuple[list[_StatementRow], list[ErrorItem]]:
    """Read every row of the statement; what is wrong with a row's own fields is
    reported, with the row number (the header is row 1) and the column."""
    text = text.removeprefix("\ufeff")
    sample = text[:2000]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    # newline="": \r\n, \n and a bare \r all end a line (old Mac / some bank exports);
    # strict: a stray or unterminated quote is an error, not a silently merged row
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as exc:
        raise PaymentImportInvalid(
            f"The statement's header is not valid CSV ({exc}).",
            errors=[ErrorItem(code="malformed", message=f"not valid CSV: {exc}", row=1)],
        ) from exc
    missing = [c for c in _REQUIRED_COLUMNS if c not in header]
    twice = sorted({c for c in STATEMENT_COLUMNS if header.count(c) > 1})
    if missing or twice:
        raise PaymentImportInvalid(
            "; ".join(
                part
                for part in (
                    missing and f"The statement lacks column(s): {', '.join(missing)}.",
                    twice and f"The statement has column(s) twice: {', '.join(twice)}.",
                )
                if part
            ),
            errors=[ErrorItem(code="missing_column", message=m, field=m) for m in missing]
            + [ErrorItem(code="duplicate_column", message=c, field=c) for c in twice],
        )
    position = {c: header.index(c) for c in STATEMENT_COLUMNS if c in header}
    limits = {
        "reference": Payment._meta.get_field("reference").max_length,
        "transaction_id": Payment._meta.get_field("bank_transaction_id").max_length,
        "account": Account._meta.get_field("number").max_length,
    }
    rows: list[_StatementRow] = []
    errors: list[ErrorItem] = []
    row_number = 1
    while True:
        row_number += 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(
                ErrorItem(code="malformed", message=f"not valid CSV: {exc}", row=row_number)
            )
            continue
        if not any(f.strip() for f in fields):
            continue  # an empty line, or a spreadsheet's row of empty cells
        if len(fields) > len(header):
            errors.append(
                ErrorItem(
                    code="extra_fields",
                    message=f"{len(fields)} fields, the header has {len(header)}",
                    row=row_number,
                )
            )
            continue
        value = {c: fields[i].strip() if i < len(fields) else "" for c, i in position.items()}
        row_errors = _field_errors(value, limits, row_number)
        received_on = amount = None
        if not any(e.field == "date" for e in row_errors):
            try:
                received_on = dt.date.fromisoformat(value["date"])
            except ValueError:
                row_errors.append(_invalid("date", "not a date (YYYY-MM-DD)", row_number))
            else:
                if not date_in_range(received_on):  # 0026-12-03: the API refuses it too
                    row_errors.append(
                        _invalid("date", DATE_OUT_OF_RANGE, row_number, "out_of_range")
                    )
                    received_on = None
        if not any(e.field == "amount" for e in row_errors):
            try:
                amount = _parse_amount(value["amount"])
            except (ValueError, InvalidOperation):
                row_errors.append(_invalid("amount", "not an amount", row_number))
            else:
                if amount <= 0:
                    # money going out (a bank fee, a transfer) or nothing: not a customer
                    # payment; skipped whatever its other columns hold
                    rows.append(
                        _StatementRow(row_number, None, amount, "", "", "", set(), debit=True)
                    )
                    continue
                if _ambiguous_amount(value["amount"]):
                    # read as a decimal it was booked as 1.23, a thousandth of the payment
                    row_errors.append(
                        _invalid(
                            "amount",
                            f"{value['amount']} is ambiguous (a thousands separator or a "
                            "decimal point?): write the decimals, e.g. 1.234,00 or 1,234.00",
                            row_number,
                            "ambiguous",
                        )
                    )
                row_errors.extend(_amount_errors(amount, None, row_number))
        if any(e.field == "amount" for e in row_errors):
            amount = None
        errors.extend(row_errors)
        rows.append(
            _StatementRow(
                row=row_number,
                received_on=received_on,
                amount=amount,
                reference=value.get("reference", ""),
                account_number=value.get("account", ""),
                transaction_id=value["transaction_id"],
                bad={e.field for e in row_errors},
            )
        )
    return rows, errors


def _invalid(column: str, message: str, row: int, code: str = "invalid") -> ErrorItem:
    return ErrorItem(code=code, message=message, field=column, row=row)


def _field_errors(value: dict[str, str], limits: dict[str, int], row: int) -> list[ErrorItem]:
    errors = []
    for column in STATEMENT_COLUMNS:
        text = value.get(column, "")
        if column in _REQUIRED_COLUMNS and not text:
            errors.append(_invalid(column, "required", row, "required"))
        elif "\x00" in text:
            errors.append(_invalid(column, "contains a NUL character", row))
        elif column in limits and len(text) > limits[column]:
            errors.append(
                _invalid(
                    column,
                    f"{len(text)} characters, at most {limits[column]}",
                    row,
                    "too_long",
                )
            )
    return errors


def _amount_errors(amount: Decimal, currency: str | None, row: int) -> list[ErrorItem]:
    """An amount is a credit (> 0 once rounded to ``currency``'s minor unit) that fits
    ``Payment.amount``.  Without a currency (account not known) only what holds in any
    currency is checked."""
    amount_field = Payment._meta.get_field("amount")
    integer_digits = amount_field.max_digits - amount_field.decimal_places
    if amount.adjusted() >= integer_digits:
        return [_invalid("amount", f"more than {integer_digits} digits", row, "too_large")]
    if currency is None:
        return []
    rounded = quantize_money(amount, currency)
    if rounded.adjusted() >= integer_digits:
        return [_invalid("amount", f"more than {integer_digits} digits", row, "too_large")]
    return []


def _chunks(values, size: int = _QUERY_CHUNK):
    values = sorted(values)
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _match_accounts(rows: list[_StatementRow]) -> None:
    """Set each row's account: the one its ``account`` column names, else the account of
    the invoice its reference names.  Two queries per chunk of rows, not one per row."""
    by_number: dict[str, Account] = {}
    wanted_numbers = {r.account_number for r in rows if r.account_number and "account" not in r.bad}
    for numbers in _chunks(wanted_numbers):
        for account in Account.objects.filter(number__in=numbers).select_related("network"):
            by_number[account.number] = account
    keys = {}
    for row in rows:
        row.account = by_number.get(row.account_number)
        if row.account is None and (key := _invoice_key(row.reference)) is not None:
            keys[row.row] = key
    by_invoice: dict[tuple[str, int], Account] = {}
    for chunk in _chunks(set(keys.values()), _QUERY_CHUNK // 2):
        wanted = Q()
        for series, number in chunk:
            wanted |= Q(series__in=_spellings(series), number=number)
        for invoice in Invoice.objects.filter(wanted).select_related("account__network"):
            by_invoice[(invoice.series.upper(), invoice.number)] = invoice.account
    for row in rows:
        if row.row in keys:
            series, number = keys[row.row]
            row.account = by_invoice.get((series.upper(), number))


def _refused(errors: list[ErrorItem]) -> PaymentImportInvalid:
    order = {c: i for i, c in enumerate(STATEMENT_COLUMNS)}
    errors = sorted(errors, key=lambda e: (e.row or 0, order.get(e.field, -1)))
    bad_rows = len({e.row for e in errors})
    listed = "; ".join(
        f"row {e.row}" + (f" {e.field}" if e.field else "") + f": {e.message}"
        for e in errors[:_ERRORS_IN_MESSAGE]
    )
    more = len(errors) - _ERRORS_IN_MESSAGE
    return PaymentImportInvalid(
        f"Nothing was imported: {bad_rows} row(s) of the statement have errors: {listed}"
        + (f" (and {more} more)." if more > 0 else "."),
        errors=errors,
    )


def payments_import_csv(*, text: str, now: dt.datetime, user=None) -> ImportResult:
    """Import a bank statement CSV (``,`` or ``;``; decimal comma accepted).

    Columns: ``date`` (YYYY-MM-DD), ``amount``, ``reference`` (invoice number or free text),
    ``account`` (customer number; optional if the reference names an invoice),
    ``transaction_id`` (the bank's id; a transaction is imported once).  Credits are
    payments; debit rows (bank fees, outgoing transfers) are skipped and counted.

    All or nothing: every row is checked first (date, within the product's range as the
    API's dates, amount within ``Payment.amount``,
    lengths, well-formed CSV); if any row is malformed, nothing is stored and
    :class:`PaymentImportInvalid` lists every bad row and column.  Rows that are no
    customer payment (outgoing, or zero once rounded) are skipped and counted; incoming
    credits no account or invoice matches are not imported but listed (``unmatched``)
    for staff to record by hand.  A clean statement is
    recorded in one transaction, rows in file order, each allocated as
    :func:`payment_record` does (the accounts' open invoices are locked first, all at
    once: :func:`accounts_open_invoices_lock`); transactions imported before (same bank
    transaction id, also a repeat within the file) count as duplicates, so a statement can be sent again.
    So does an unmatched credit staff booked by hand under its bank transaction id (same
    date and amount; other data under that id is a ``conflict``).
    """
    rows, errors = _statement_rows(text)
    _match_accounts(rows)
    first_of: dict[str, _StatementRow] = {}
    new_rows: list[_StatementRow] = []
    unplaced: list[_StatementRow] = []
    duplicates = skipped = 0
    for row in rows:
        if row.debit:
            skipped += 1
            continue
        if row.account is None:
            if row.bad:
                continue
            # well-formed, but nobody's: staff record it by hand (listed once, below)
        elif row.amount is not None:
            row_errors = _amount_errors(row.amount, row.account.network.currency, row.row)
            errors.extend(row_errors)
            if not row_errors:
                row.amount = quantize_money(row.amount, row.account.network.currency)
                if not row.amount:  # 0.004 DKK: nothing once rounded
                    skipped += 1
                    continue
        first = first_of.setdefault(row.transaction_id, row)
        if first is row:
            (unplaced if row.account is None else new_rows).append(row)
        elif _same_transaction(first) != _same_transaction(row):
            errors.append(
                _invalid(
                    "transaction_id",
                    f"also on row {first.row} with other data",
                    row.row,
                    "conflict",
                )
            )
        else:
            duplicates += 1
    # a transaction id imported before is a duplicate only if it is the same transaction:
    # another payment under it (banks that number per statement or per day) would be
    # dropped as a "duplicate", never booked, and its invoice dunned
    imported = _imported_before({r.transaction_id for r in new_rows + unplaced})
    for row in new_rows:
        stored = imported.get(row.transaction_id)
        complete = row.amount is not None and row.received_on is not None
        if stored is not None and complete and stored[:3] != _transaction_key(row):
            errors.append(_imported_conflict(row, stored))
    # a credit listed as unmatched that staff then booked by hand under the bank's id (API,
    # admin) is booked: sent again, the statement must not list it for booking twice
    unmatched: list[dict] = []
    for row in unplaced:
        stored = imported.get(row.transaction_id)
        if stored is None:
            unmatched.append(_unmatched(row))
        elif stored[1:3] == (row.received_on, quantize_money(row.amount, stored[3])):
            duplicates += 1
        else:  # another transaction under the same id: as for an imported one, refused
            errors.append(_booked_conflict(row, stored))
    if errors:
        raise _refused(errors)
    result = ImportResult(duplicates=duplicates, skipped=skipped, unmatched=unmatched)
    with transaction.atomic():
        # the accounts' invoices up front, in id order: row by row, two imports naming two
        # accounts in opposite orders (or an import and a run's issue step) deadlocked
        accounts_open_invoices_lock(
            sorted({r.account.pk for r in new_rows if r.transaction_id not in imported})
        )
        for row in new_rows:
            if row.transaction_id in imported:
                result.duplicates += 1
                continue
            try:
                # payment_record's own atomic block is a savepoint here: a unique
                # violation (a concurrent import of the same statement; the service says
                # BankTransactionBooked) undoes only it
                payment_record(
                    account=row.account,
                    amount=row.amount,
                    received_on=row.received_on,
                    now=now,
                    reference=row.reference,
                    source=Payment.Source.BANK,
                    bank_transaction_id=row.transaction_id,
                    user=user,
                )
            except (BankTransactionBooked, IntegrityError):
                stored = _imported_before({row.transaction_id}).get(row.transaction_id)
                if stored is None:
                    raise
                if stored[:3] != _transaction_key(row):  # all or nothing: the rest rolls back
                    raise _refused([_imported_conflict(row, stored)]) from None
                result.duplicates += 1
            else:
                result.created += 1
    return result


def _transaction_key(row: _StatementRow) -> tuple:
    return (row.account.pk, row.received_on, row.amount)


def _imported_before(transaction_ids) -> dict[str, tuple]:
    """The payments stored under ``transaction_ids`` (imported, or booked by hand with
    the bank's id): id -> (account, date, amount, currency)."""
    stored: dict[str, tuple] = {}
    for ids in _chunks(transaction_ids):
        for transaction_id, *payment in Payment.objects.filter(
            bank_transaction_id__in=ids
        ).values_list("bank_transaction_id", "account_id", "received_on", "amount", "currency"):
            stored[transaction_id] = tuple(payment)
    return stored


def _same_transaction(row: _StatementRow) -> tuple:
    """What a row repeated in a statement must repeat: an unmatched one its account
    column as written too (nothing else names where it belongs)."""
    return (
        row.received_on,
        row.amount,
        row.reference,
        row.account,
        row.account_number if row.account is None else None,
    )


def _unmatched(row: _StatementRow) -> dict:
    return {
        "row": row.row,
        "date": row.received_on.isoformat(),
        "amount": str(row.amount),
        "reference": row.reference,
        "account": row.account_number,
        "transaction_id": row.transaction_id,
    }


def _booked_conflict(row: _StatementRow, stored: tuple) -> ErrorItem:
    _account_id, received_on, amount, currency = stored
    return _invalid(
        "transaction_id",
        f"booked before with other data ({amount} {currency} on {received_on.isoformat()})",
        row.row,
        "conflict",
    )


def _imported_conflict(row: _StatementRow, stored: tuple) -> ErrorItem:
    _account_id, received_on, amount, _currency = stored
    return _invalid(
        "transaction_id",
        f"imported before with other data ({amount} on {received_on.isoformat()}"
        f"{'' if stored[0] == row.account.pk else ', another account'})",
        row.row,
        "conflict",
    )


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
    idempotency_key: str = "",
) -> Refund:
    """Pay account credit back to the customer.

    Sent again by ``user`` under the same ``idempotency_key`` (the API's header: a
    client retrying after a timeout), the refund made the first time is returned and
    nothing is paid out again; the key used for another refund is refused (422).

    The refund takes what credit notes have left first (oldest first), then payments'
    unallocated amounts (oldest first), the same order in which credit settles new
    invoices; each source it takes from is recorded as a :class:`RefundPart`.  More than
    the account's credit is refused, and nothing is changed.
    """
    currency = account.network.currency
    amount = quantize_money(amount, currency)  # checked once rounded, as payments are
    if amount <= 0:
        raise DomainError("A refund amount must be positive.")
    key = idempotency_key_stored(idempotency_key) if user is not None else ""
    same = {"account_id": account.pk, "amount": amount, "paid_on": paid_on, "reference": reference}
    try:
        return _refund_record(
            account=account, amount=amount, paid_on=paid_on, now=now, user=user, key=key, same=same
        )
    except IntegrityError:
        # the same request, sent again while the first was paying it (its key's
        # constraint); the first refund is the answer
        if (first := _booked_before(Refund, user=user, key=key, **same)) is not None:
            return first
        raise


def _refund_record(
    *,
    account: Account,
    amount: Decimal,
    paid_on: dt.date,
    now: dt.datetime,
    user,
    key: str,
    same: dict,
) -> Refund:
    currency = account.network.currency
    reference = same["reference"]
    with transaction.atomic():
        # the account's credit, locked: its open invoices (credit notes among them) and
        # its payments with money left, each in id order
        notes = _notes_with_credit(_open_invoices_locked(account.pk))
        payments = list(
            Payment.objects.select_for_update()
            .filter(account=account, unallocated__gt=0)
            .order_by("received_on", "pk")
        )
        # looked for behind the locks: a first request paying meanwhile has committed
        if (first := _booked_before(Refund, user=user, key=key, **same)) is not None:
            return first
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
            idempotency_key=key,
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
