"""Invoice writes: issuing with gapless numbers, hold/release, credit notes.

Gapless numbering: numbers come from :class:`~billing.models.InvoiceNumberCounter`, one
row per series (``INV-2026``), locked with ``SELECT … FOR UPDATE`` in the same
transaction that stamps the numbers on the invoices.  A rolled-back issue gives its
numbers back with the transaction; concurrent issuers queue on the counter row.  The
bulk UPDATE checks that it numbered exactly the rows it counted and otherwise raises
(rolling back), so a row changed concurrently can never leave a hole.

Lock order: (accounts →) billing run → series counter → invoices.  Accounts are locked
first only where a settlement and an instalment's credit meet (:func:`accounts_lock`):
a settlement run's chunk locks its accounts before it counts their instalments, and
crediting an instalment locks its account before the counter, so the one waits for the
other and never credits what the other just credited.  Issuing a run
(``runs.billing_run_issue``), a chunk numbering its bills (``runs._write_numbered``) and
billing a missed account into a run (``contract_changes.account_bill_missed``) take them
in that order.  So do the services that change a run's draft and the run's counters
(hold, release, refresh, cancel, issuing one draft: :func:`_lock_run_of`), checking the
draft is still one under the locks: the other way round (the draft, then the run's
``held`` UPDATE), a hold while staff issued the run deadlocked.  Releasing a held draft
of no run issues it (:func:`invoice_release`): it takes the series counter before the
draft, as the refresh that lifts such a hold does.  Invoices are locked in id order; a
transaction that books for many accounts (a statement import, a run's issue step using
the accounts' credit) locks all their open invoices up front in one statement
(``payments.accounts_open_invoices_lock``), as marking overdue does: account by account,
in the order of the file or of the payments' dates, two such transactions deadlocked.
Crediting an invoice locks, in that one statement, the fee invoices of the letters that
reminded of it too (paid ones included): it may credit them (renteloven §9 b, a fee for a
debt that never existed, :func:`_reminder_fees_credit`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from billing import conf
from billing.calc import BillDraft, DraftLine, totals
from billing.models import Allocation, BillingRun, Invoice, InvoiceLine, InvoiceNumberCounter
from billing.services.collection import collection_cases_settle
from heatutility.errors import ConflictError, DomainError


class InvoiceIsIssued(ConflictError):
    code = "invoice_issued"


class UnableToIssueInvoice(DomainError):
    code = "unable_to_issue"


class InstalmentSettled(ConflictError):
    code = "instalment_settled"


class NumberingRace(Exception):
    """Rows changed under a bulk issue; the transaction is rolled back and retried."""


def invoice_assert_draft(*, invoice: Invoice) -> None:
    if invoice.number is not None or invoice.state != Invoice.State.DRAFT:
        raise InvoiceIsIssued(
            f"Invoice {invoice.display_number or invoice.pk} is {invoice.state}; issued "
            "invoices never change: credit it instead."
        )


def _counter(series: str) -> InvoiceNumberCounter:
    InvoiceNumberCounter.objects.get_or_create(series=series)
    return InvoiceNumberCounter.objects.select_for_update().get(series=series)


def _local_issue_date(issued_at: dt.datetime, tz: str) -> dt.date:
    return issued_at.astimezone(ZoneInfo(tz)).date()


def series_counter_lock(*, issued_at: dt.datetime, time_zone: str) -> InvoiceNumberCounter:
    """Lock the counter of the series a document issued at ``issued_at`` takes its number
    from.  Lock order: the counter first, then invoice rows (billing runs, dunning and
    issuing all do; a run's row comes before both, see the module doc): a credit or
    re-rating that locked its invoice first and the counter second deadlocked with the
    dunning run."""
    return _counter(conf.invoice_series(_local_issue_date(issued_at, time_zone).year))


def invoices_issue(
    *,
    issued_at: dt.datetime,
    invoice_ids: Sequence[int] | None = None,
    run_id: int | None = None,
    time_zone: str = "Europe/Copenhagen",
) -> list[int]:
    """Issue the unheld drafts among ``invoice_ids`` (or of run ``run_id``).

    Numbers follow account number order within the batch.  Returns the issued ids.
    """
    if invoice_ids is None and run_id is None:
        raise ValueError("give invoice_ids or run_id")
    for _attempt in range(5):
        try:
            with transaction.atomic():
                return _issue_once(
                    issued_at=issued_at, invoice_ids=invoice_ids, run_id=run_id, tz=time_zone
                )
        except NumberingRace:
            continue
    raise UnableToIssueInvoice("Invoices kept changing while being issued; try again.")


def _issue_once(
    *, issued_at: dt.datetime, invoice_ids: Sequence[int] | None, run_id: int | None, tz: str
) -> list[int]:
    issue_date = _local_issue_date(issued_at, tz)
    series = conf.invoice_series(issue_date.year)
    counter = _counter(series)
    base = counter.last_number
    drafts = Invoice.objects.filter(state=Invoice.State.DRAFT, held=False)
    if invoice_ids is not None:
        drafts = drafts.filter(id__in=list(invoice_ids))
    if run_id is not None:
        drafts = drafts.filter(run_id=run_id)
    if connection.vendor == "postgresql":
        where = ["i.state = 'draft'", "NOT i.held"]
        params: list = []
        if invoice_ids is not None:
            where.append("i.id = ANY(%s)")
            params.append(list(invoice_ids))
        if run_id is not None:
            where.append("i.run_id = %s")
            params.append(run_id)
        sql = f"""
            WITH r AS (
                SELECT i.id, row_number() OVER (ORDER BY a.number, i.id) AS rn
                FROM billing_invoice i JOIN customers_account a ON a.id = i.account_id
                WHERE {" AND ".join(where)}
            )
            UPDATE billing_invoice i
               SET state = 'issued', series = %s, number = %s + r.rn, issued_at = %s,
                   due_on = %s::date + a.payment_terms_days
              FROM r, customers_account a
             WHERE i.id = r.id AND a.id = i.account_id AND i.state = 'draft' AND NOT i.held
            RETURNING i.id, r.rn
        """
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, series, base, issued_at, issue_date])
            rows = cursor.fetchall()
        count = len(rows)
        if count and max(rn for _, rn in rows) != count:
            raise NumberingRace
        ids = [i for i, _ in rows]
    else:
        invoices = list(drafts.select_related("account").order_by("account__number", "id"))
        for offset, invoice in enumerate(invoices, start=1):
            invoice.state = Invoice.State.ISSUED
            invoice.series = series
            invoice.number = base + offset
            invoice.issued_at = issued_at
            invoice.due_on = issue_date + dt.timedelta(days=invoice.account.payment_terms_days)
        Invoice.objects.bulk_update(
            invoices, ["state", "series", "number", "issued_at", "due_on"], batch_size=500
        )
        ids = [inv.pk for inv in invoices]
        count = len(ids)
    counter.last_number = base + count
    counter.save(update_fields=["last_number"])
    _apply_credit_notes(ids=ids, on=issue_date)
    return ids


def invoice_issue(*, invoice: Invoice, issued_at: dt.datetime) -> Invoice:
    """Issue one draft (must not be held)."""
    time_zone = invoice.network.time_zone
    with transaction.atomic():
        run_id = _lock_run_of(invoice)  # before the counter and the invoice (module doc)
        invoice.refresh_from_db()
        invoice_assert_draft(invoice=invoice)
        if invoice.held:
            raise UnableToIssueInvoice(
                f"Invoice draft {invoice.pk} is held for review: {invoice.hold_reason}. "
                "Release it first."
            )
        ids = invoices_issue(issued_at=issued_at, invoice_ids=[invoice.pk], time_zone=time_zone)
        if not ids:
            raise UnableToIssueInvoice(f"Invoice draft {invoice.pk} could not be issued.")
        if run_id:  # a run's draft (a released one, say): the run counts it
            BillingRun.objects.filter(pk=run_id).update(issued=F("issued") + len(ids))
    from billing.services.payments import payments_apply_unallocated

    # the local issue date (the UTC date is the day before from 22:00/23:00 UTC on)
    payments_apply_unallocated(
        on=_local_issue_date(issued_at, time_zone), account_id=invoice.account_id
    )
    invoice.refresh_from_db()
    return invoice


def invoice_hold(*, invoice: Invoice, reason: str) -> Invoice:
    """Staff hold a draft for a reason of their own (``held_by_staff``): it stands, with
    the reason, over any recomputation until staff release it."""
    with transaction.atomic():
        invoice = _lock_draft(invoice)
        if not invoice.held and invoice.run_id:
            _run_held_delta(invoice.run_id, +1)
        invoice.held = invoice.held_by_staff = True
        invoice.hold_reason = reason
        invoice.save(update_fields=["held", "held_by_staff", "hold_reason"])
    return invoice


def invoice_release(*, invoice: Invoice, note: str = "", now: dt.datetime | None = None) -> Invoice:
    """Staff reviewed a held draft and let it go.

    A run's draft goes out with the run's issue ("Issue drafts" once the run is issued).
    A draft of no run (a correction, a settlement) is issued as it is released, at
    ``now``: such a draft is issued at once when it is plausible, and no run's issue ever
    takes it, so a released one left a draft kept its period unbilled beside the credit
    note that made way for it.  Its PDF is rendered once the release commits."""
    now = now or timezone.now()
    with transaction.atomic():
        invoice = _lock_draft(invoice, may_issue_at=now)
        if invoice.held and invoice.run_id:
            _run_held_delta(invoice.run_id, -1)
        invoice.held = invoice.held_by_staff = False
        invoice.hold_reason = f"released: {note}" if note else ""
        invoice.save(update_fields=["held", "held_by_staff", "hold_reason"])
        if invoice.run_id is None:
            invoice = invoice_issue(invoice=invoice, issued_at=now)
            invoices_render_after_commit([invoice.pk])
    return invoice


def release_issues(invoice: Invoice) -> bool:
    """Whether :func:`invoice_release` issues ``invoice`` (a draft of no run): who
    releases it must then be allowed to issue invoices too."""
    return invoice.run_id is None


RELEASE_ISSUES_MESSAGE = (
    "Releasing a correction or settlement issues it (no run will): that needs the "
    "permission to issue invoices as well."
)


def invoices_render_after_commit(invoice_ids: list[int]) -> None:
    """Render the PDFs of the issued ones of ``invoice_ids`` once the transaction
    commits (nothing is rendered for a rolled-back issue)."""
    from billing import tasks

    transaction.on_commit(lambda: tasks.invoices_render_pdfs_dispatch(invoice_ids))


def _lock_run_of(invoice: Invoice) -> int | None:
    """Lock the run of ``invoice`` (if any; fixed for a draft), as issuing the run does
    before it locks the counter and the drafts; its id."""
    run_id = Invoice.objects.values_list("run_id", flat=True).get(pk=invoice.pk)
    if run_id is not None:
        # the lock the run's counter UPDATE takes, taken first: it waits for an issue
        # of the run, and lets the run's chunks insert their drafts meanwhile
        BillingRun.objects.select_for_update(no_key=True).only("pk").get(pk=run_id)
    return run_id


def _lock_draft(invoice: Invoice, *, may_issue_at: dt.datetime | None = None) -> Invoice:
    """The draft ``invoice`` locked after its run (module doc: lock order), still a draft.

    ``may_issue_at``: the caller may issue it in this transaction, at that time; a draft
    of no run then takes the series counter before its row, as issuing does (a run's
    draft is issued by its run, which takes the counter after the run)."""
    if _lock_run_of(invoice) is None and may_issue_at is not None:
        series_counter_lock(issued_at=may_issue_at, time_zone=invoice.network.time_zone)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    invoice_assert_draft(invoice=invoice)
    return invoice


def _run_held_delta(run_id: int, delta: int) -> None:
    BillingRun.objects.filter(pk=run_id).update(held=F("held") + delta)


def invoice_cancel_draft(*, invoice: Invoice) -> Invoice:
    """Discard a draft (its account has nothing to bill for the period): its run no
    longer counts the account (``total``, ``done``, and ``held`` if it was held); a bill
    made for it later into the run (``contract_changes.account_bill_missed``) counts it
    again, once."""
    with transaction.atomic():
        invoice = _lock_draft(invoice)
        if invoice.run_id:
            BillingRun.objects.filter(pk=invoice.run_id).update(
                total=F("total") - 1, done=F("done") - 1, held=F("held") - int(invoice.held)
            )
        invoice.state = Invoice.State.CANCELLED
        invoice.save(update_fields=["state"])
    return invoice


def invoice_replace_draft(
    *, invoice: Invoice, draft: BillDraft, may_issue_at: dt.datetime | None = None
) -> Invoice:
    """Replace a draft's figures with a recomputation (staff "correct" after a fix, the
    looks at corrected registers, contracts and tariffs).

    The hold follows the recomputation (released when plausible now, held with the
    reason as the data now stands when not), except a hold staff made for a reason of
    their own (``held_by_staff``, :func:`invoice_hold`): that stands with its reason
    until staff release it, over the new figures.
    Decided under the row's lock (taken after its run's), so a hold or release committed
    meanwhile counts.  ``may_issue_at``: the caller may issue it afterwards in the same
    transaction (:func:`_lock_draft`)."""
    from billing.services.write import LINE_COLUMNS, _line_values

    with transaction.atomic():
        invoice = _lock_draft(invoice, may_issue_at=may_issue_at)
        invoice.lines.all().delete()
        InvoiceLine.objects.bulk_create(
            InvoiceLine(**dict(zip(LINE_COLUMNS, _line_values(invoice.pk, pos, line), strict=True)))
            for pos, line in enumerate(draft.lines, start=1)
        )
        was_held = invoice.held
        invoice.net, invoice.vat, invoice.gross = draft.net, draft.vat, draft.gross
        if not invoice.held_by_staff:
            invoice.held = draft.held
            invoice.hold_reason = "; ".join(draft.hold_reasons)
        invoice.readings = draft.readings
        invoice.has_estimated_reads = draft.has_estimated_reads
        invoice.tariff_version_ids = draft.tariff_version_ids
        invoice.determinants = {"segments": draft.determinants, "vat": draft.vat_breakdown}
        invoice.comparison = draft.comparison
        invoice.save()
        if invoice.run_id and was_held != invoice.held:
            _run_held_delta(invoice.run_id, 1 if invoice.held else -1)
    return invoice


def _negated(lines: Sequence[InvoiceLine]) -> list[DraftLine]:
    return [
        DraftLine(
            connection_id=line.connection_id,
            period_start=line.period_start,
            period_end=line.period_end,
            tariff_version_id=line.tariff_version_id,
            component=line.component,
            kind=line.kind,
            description=f"Credit: {line.description}"[:200],
            explanation=f"reverses {line.explanation}"[:300],
            quantity=-line.quantity,
            unit=line.unit,
            unit_price=line.unit_price,
            amount=-line.amount,
            vat_rate=line.vat_rate,
        )
        for line in lines
    ]


_ZERO = Decimal("0")


def credit_note_draft(*, invoice: Invoice) -> BillDraft:
    """A credit note reversing ``invoice`` exactly: every line negated, and the VAT it
    charged per rate as stored.  Not the VAT of the negated lines: a settlement's VAT is
    the year's less the instalments' (``billing.services.aconto``), which that would miss
    by a few cents."""
    lines = _negated(list(invoice.lines.all()))
    stored = invoice.determinants.get("vat")
    if stored:
        breakdown = [
            {
                key: value if key == "rate" else str(_ZERO - Decimal(value))
                for key, value in row.items()
            }
            for row in stored
        ]
        net, vat = _ZERO - invoice.net, _ZERO - invoice.vat
    else:  # a document without a stored breakdown: its lines' VAT, the invoice rule
        net, vat, breakdown = totals(lines, invoice.currency)
    return BillDraft(
        account_id=invoice.account_id,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        currency=invoice.currency,
        lines=lines,
        net=net,
        vat=vat,
        gross=net + vat,
        vat_breakdown=breakdown,
        readings=invoice.readings,
        has_estimated_reads=invoice.has_estimated_reads,
        tariff_version_ids=list(invoice.tariff_version_ids),
        determinants=invoice.determinants.get("segments", []),
        comparison=invoice.comparison,
    )


def invoice_credit(
    *, invoice: Invoice, now: dt.datetime, issue: bool = True, corrected: bool = False
) -> Invoice:
    """Credit an issued invoice in full: a credit note referencing it (at most once).

    Issued, it also credits the reminder fees charged for a debt that never existed
    (:func:`_reminder_fees_credit`), unless ``corrected``: a correction replacing the
    invoice follows in the same transaction (a re-rating to another amount), so the
    debt existed and the fees stay."""
    from billing.services.write import drafts_write

    if invoice.number is None:
        raise UnableToIssueInvoice("Only issued invoices are credited; cancel a draft instead.")
    if invoice.kind == Invoice.Kind.CREDIT_NOTE:
        raise UnableToIssueInvoice("A credit note is not credited; issue a new invoice instead.")
    with transaction.atomic():
        if invoice.kind == Invoice.Kind.INSTALMENT:
            # before the counter, as a settlement run's chunk takes it: a settlement being
            # computed for the account is waited for, then seen below
            accounts_lock([invoice.account_id])
        if issue:  # the series counter before the invoice row: the order every issuer takes
            series_counter_lock(issued_at=now, time_zone=invoice.network.time_zone)
        invoice_lock_with_open_invoices(invoice)
        if (
            Invoice.objects.filter(original=invoice, kind=Invoice.Kind.CREDIT_NOTE)
            .exclude(state=Invoice.State.CANCELLED)
            .exists()
        ):
            raise ConflictError(f"Invoice {invoice.display_number} has already been credited.")
        if invoice.kind == Invoice.Kind.INSTALMENT:
            settling = settlement_of_instalment(invoice)
            if settling is not None:
                raise InstalmentSettled(
                    f"Instalment {invoice.display_number} is credited by "
                    f"{settling.display_number or 'the draft settlement'} of its year "
                    f"({settling.period_start.isoformat()} to {settling.period_end.isoformat()}): "
                    "credit or correct the settlement instead."
                )
        draft = credit_note_draft(invoice=invoice)
        (credit_id,) = drafts_write(
            drafts=[draft],
            network_id=invoice.network_id,
            run_id=None,
            kind=Invoice.Kind.CREDIT_NOTE,
            now=now,
            original_ids=[invoice.pk],
        )
        if issue:
            time_zone = invoice.network.time_zone
            invoices_issue(issued_at=now, invoice_ids=[credit_id], time_zone=time_zone)
            from billing.services.payments import payments_apply_unallocated

            # the credit note of a credit (a settlement in the customer's favour) is a
            # bill to pay: the credit the account holds settles it, as every bill issued
            payments_apply_unallocated(
                on=_local_issue_date(now, time_zone), account_id=invoice.account_id
            )
            if not corrected:
                _reminder_fees_credit(invoice=invoice, now=now)
    return Invoice.objects.get(pk=credit_id)


def _reminder_fees_credit(*, invoice: Invoice, now: dt.datetime) -> None:
    """Credit the fees of the letters that reminded only of debts that never existed,
    ``invoice`` (just credited in full, no correction) the last of them
    (``dunning.reminder_fees_never_owed``, renteloven §9 b), and settle a collection case
    for them.  Each fee's credit note is issued as any credit note is: it settles what is
    open of the fee, and a fee already paid becomes the account's credit.  The caller
    holds the series counter and the fee invoices' rows (locked with the invoice's:
    :func:`invoice_lock_with_open_invoices`)."""
    from billing.services.dunning import reminder_fees_never_owed

    fees = reminder_fees_never_owed(invoice=invoice)
    for fee in fees:
        invoice_credit(invoice=fee, now=now)
    if fees:
        # settled, not withdrawn: nothing it handed over is open any more, by a credit of
        # the ledger dated like any (a withdrawal is staff's decision, with its reason)
        collection_cases_settle(
            on=_local_issue_date(now, invoice.network.time_zone),
            invoice_ids=[invoice.pk, *(fee.pk for fee in fees)],
        )


def accounts_lock(account_ids: Sequence[int]) -> None:
    """Lock the accounts' rows (in id order; ``FOR NO KEY UPDATE``, so invoices may still
    reference them) until the transaction ends: where a settlement and the credit of one
    of its instalments meet (module doc, lock order)."""
    from customers.models import Account

    list(
        Account.objects.select_for_update(no_key=True)
        .filter(pk__in=list(account_ids))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def invoice_lock_with_open_invoices(invoice: Invoice) -> None:
    """Lock ``invoice`` together with its account's open invoices and credit notes, in id
    order, in one statement, until the transaction ends.

    A credit note settles its original and then, with what it credits beyond that, the
    account's other open invoices (:func:`_apply_credit_notes`): those are the rows a
    payment's allocation and a refund lock, in id order (``payments.payment_allocate``).
    Locking the original alone first, then the others, deadlocked against a payment of
    the same account that held the older invoices and waited for the original.  The fee
    invoices of the letters that reminded of it are among them, paid ones too: crediting
    it may credit them (:func:`_reminder_fees_credit`)."""
    from billing.services.dunning import claim_fee_invoice_ids
    from billing.services.payments import OPEN_STATES

    fee_ids = claim_fee_invoice_ids(invoice)
    list(
        Invoice.objects.select_for_update(of=("self",))
        .filter(
            Q(pk=invoice.pk)
            | Q(pk__in=fee_ids)
            | Q(account_id=invoice.account_id, state__in=OPEN_STATES)
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def settlement_of_instalment(instalment: Invoice) -> Invoice | None:
    """The current settlement of the plan year an instalment falls in (issued or a draft,
    or its correction after a re-rating), which credits the instalment; None before the
    year is settled or once its settlement is credited."""
    years = Q()
    for start, end in (
        Invoice.objects.filter(
            account_id=instalment.account_id,
            kind=Invoice.Kind.SETTLEMENT,
            period_start__lte=instalment.period_start,
            period_end__gt=instalment.period_start,
        )
        .exclude(state=Invoice.State.CANCELLED)
        .values_list("period_start", "period_end")
    ):
        years |= Q(period_start=start, period_end=end)
    if not years:
        return None
    return (
        Invoice.objects.filter(
            years,
            account_id=instalment.account_id,
            kind__in=(Invoice.Kind.SETTLEMENT, Invoice.Kind.CORRECTION),
        )
        .exclude(state=Invoice.State.CANCELLED)
        .not_credited()
        .order_by("-pk")
        .first()
    )


def _apply_credit_notes(*, ids: Sequence[int], on: dt.date) -> None:
    """A newly issued credit note first settles what is still open on its original; what
    it credits beyond that is account credit, used on the account's other open invoices."""
    credit_notes = list(
        Invoice.objects.filter(id__in=list(ids), kind=Invoice.Kind.CREDIT_NOTE).select_related(
            "original"
        )
    )
    overdue_paid = []
    for note in credit_notes:
        original = Invoice.objects.select_for_update().get(pk=note.original_id)
        amount = min(original.gross - original.paid, -note.gross)
        if amount > 0:
            Allocation.objects.create(
                invoice=original, credit_note=note, amount=amount, allocated_on=on
            )
            was_overdue = original.state == Invoice.State.OVERDUE
            invoice_payment_state(invoice=original, paid=original.paid + amount)
            if was_overdue and original.state == Invoice.State.PAID:
                overdue_paid.append(original.pk)  # only an overdue invoice is in a case
            note.paid = -amount
            note.state = (
                Invoice.State.PAID if note.paid == note.gross else Invoice.State.PARTLY_PAID
            )
            note.save(update_fields=["paid", "state"])
    if overdue_paid:  # credited: a collection case for it is settled
        collection_cases_settle(on=on, invoice_ids=overdue_paid)
    if credit_notes:
        # more credited than was open on the original: the rest settles other open bills
        from billing.services.payments import credit_notes_allocate

        for account_id in sorted({note.account_id for note in credit_notes}):
            credit_notes_allocate(account_id=account_id, on=on)


def invoice_payment_state(*, invoice: Invoice, paid: Decimal, today: dt.date | None = None) -> None:
    """Set the allocated amount and the payment state that follows from it."""
    invoice.paid = paid
    if paid >= invoice.gross:
        invoice.state = Invoice.State.PAID
    elif today is not None and invoice.due_on and invoice.due_on < today:
        invoice.state = Invoice.State.OVERDUE
    elif paid > 0:
        invoice.state = (
            Invoice.State.OVERDUE
            if invoice.state == Invoice.State.OVERDUE
            else Invoice.State.PARTLY_PAID
        )
    else:
        invoice.state = (
            Invoice.State.OVERDUE
            if invoice.state == Invoice.State.OVERDUE
            else Invoice.State.ISSUED
        )
    invoice.save(update_fields=["paid", "state"])
