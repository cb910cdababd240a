"""Overdue invoices and dunning: reminder letters, their notices and their fees.

* **Local dates.** Each network's own time zone (``Network.time_zone``) decides what
  "today" is: when an invoice becomes overdue and which ladder level it has reached.
* **The ladder** (``BILLING["DUNNING_LADDER"]``): days after the due date, a title, a fee
  and, for the last level, what happens next.  An invoice gets each level at most once
  (unique constraint ``dunningnotice_one_per_level``), one level per run, and the next
  level only after the previous letter's pay-by date has passed, so a missed day never
  sends two levels at once and no letter overtakes the time the last one gave.
* **One ladder per claim**: a correction (re-rating, rebill) is the claim of the invoice
  it replaces and goes on from that chain's letters (:func:`claim_history`), so a
  re-rated period is never dunned, nor charged fees, from level 1 again.  But every
  invoice has its own payment term and the ladder's first days of grace before any
  letter, and each letter keeps the ladder's spacing from the claim's one before: a
  correction's final notice never comes the day after its own due date.
* **One letter per account and day** (renteloven §9 b: the fee is per letter): every
  invoice of an account that reaches a level the same day gets its notice in one
  :class:`~billing.models.DunningLetter` (unique constraint
  ``dunningletter_one_per_account_day``), with the highest level's title and next steps
  and one fee, the highest fee among the levels reached.
* **Fees** are charged as an issued invoice of their own (``Invoice.Kind.REMINDER_FEE``),
  numbered from the same series and counter as every invoice (gapless), due on the
  letter's pay-by date, VAT at ``BILLING["REMINDER_FEE_VAT_RATE"]`` (0: outside the VAT
  scope in Denmark).  It is an ordinary receivable (balance, allocation, exports, credit
  notes) that is never re-rated, never dunned itself and never a period's bill.  Once
  every invoice its letter reminded of is credited in full and not replaced by a
  correction, nothing was owed, and crediting the last of them credits the fee
  (:func:`reminder_fees_never_owed`, ``invoices.invoice_credit``).
* **No dunning in credit**: an account whose balance is ≤ 0 is not dunned (its credit
  covers what is open; allocation will settle it).  Credit an account that still owes
  holds (a payment or credit note not allocated yet) settles its open invoices, oldest
  due first as on every issue, before its letter is written: the letter reminds of, and
  charges a fee for, only what is still owed, and no fee stays open beside the credit.
* **After the final notice**: the day's run goes on to hand over to debt collection what
  the final notice's pay-by date left open (``billing.services.collection``); an invoice
  handed over gets no further letter or fee.
* An account's letter, its notices and its fee invoice are one transaction; the PDF
  (``billing.reminders``) is rendered by a Celery task after commit.  Running the day
  twice changes nothing; of two concurrent runs, the unique constraints let one send.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Exists, OuterRef

from billing import conf
from billing.calc import BillDraft, DraftLine, totals
from billing.models import CollectionCase, DunningLetter, DunningNotice, Invoice
from billing.services.collection import collection_cases_open, collection_cases_settle
from billing.services.invoices import _counter
from billing.services.write import drafts_write
from customers.models import Account, Network
from heatutility.money import quantize_money

log = logging.getLogger(__name__)
ZERO = Decimal("0")
FEE_COMPONENT = "reminder_fee"


@dataclass(frozen=True)
class LadderStep:
    level: int
    days: int
    title: str
    fee: Decimal
    next_steps: str


def dunning_ladder() -> list[LadderStep]:
    """The configured ladder, levels numbered from 1; the last level always says what
    happens next (its ``next`` text, or its title)."""
    steps = conf.get("DUNNING_LADDER")
    ladder = []
    for level, step in enumerate(steps, start=1):
        next_steps = str(step.get("next", ""))
        if level == len(steps) and not next_steps:
            next_steps = (
                f"This is our final notice ({step['title']}). If the total is not paid by the "
                "pay-by date, we will take the step this notice names without a further reminder."
            )
        ladder.append(
            LadderStep(
                level=level,
                days=int(step["days"]),
                title=str(step["title"]),
                fee=Decimal(str(step.get("fee", "0"))),
                next_steps=next_steps,
            )
        )
    return ladder


def invoices_mark_overdue(*, today: dt.date, network_id: int | None = None) -> int:
    """Mark open receivables due before ``today`` (a local date of ``network_id``) overdue."""
    overdue = Invoice.objects.filter(
        state__in=(Invoice.State.ISSUED, Invoice.State.PARTLY_PAID), due_on__lt=today, gross__gt=0
    )
    if network_id is not None:
        overdue = overdue.filter(network_id=network_id)
    with transaction.atomic():
        # in id order first, as a payment's allocation locks an account's open invoices:
        # the UPDATE alone locks them in the order it finds them in the table, and one
        # holding a newer invoice while waiting for an older one a payment held deadlocked
        # with it (PostgreSQL aborted the payment or the day's dunning run)
        list(overdue.select_for_update().order_by("pk").values_list("pk", flat=True))
        return overdue.update(state=Invoice.State.OVERDUE)


def dunning_run(*, now: dt.datetime) -> list[DunningLetter]:
    """Mark overdue invoices and send each account one letter with the next ladder level
    each of its invoices has reached, network by network, each on its own local date.
    Returns the letters sent."""
    letters: list[DunningLetter] = []
    for network in Network.objects.order_by("pk"):
        letters.extend(network_dunning_run(network=network, now=now))
    return letters


def network_dunning_run(*, network: Network, now: dt.datetime) -> list[DunningLetter]:
    from billing.services.payments import account_balance  # payments re-exports this module

    today = now.astimezone(ZoneInfo(network.time_zone)).date()
    invoices_mark_overdue(today=today, network_id=network.pk)
    ladder = dunning_ladder()
    overdue = (
        Invoice.objects.filter(network=network, state=Invoice.State.OVERDUE, gross__gt=0)
        # no fee on a fee; a credit note is never dunned, not even one with a positive
        # amount (it takes back a settlement in the customer's favour)
        .exclude(kind__in=(Invoice.Kind.REMINDER_FEE, Invoice.Kind.CREDIT_NOTE))
        # handed over to collection (or withdrawn from it): no letter or fee follows
        .exclude(Exists(CollectionCase.objects.filter(invoice=OuterRef("pk"))))
        .select_related("account__network")
        .prefetch_related("dunning_notices")
        .order_by("account_id", "due_on", "number")
    )
    due: dict[int, list[tuple[Invoice, LadderStep]]] = {}
    for invoice in overdue:
        step = _next_step(claim=claim_history(invoice), ladder=ladder, today=today)
        if step is not None:
            due.setdefault(invoice.account_id, []).append((invoice, step))
    letters = []
    for items in due.values():
        account = items[0][0].account
        if account_balance(account=account) <= 0:
            continue
        for attempt in (1, 2):
            try:
                letter = dunning_letter_send(account=account, due=items, today=today, now=now)
                break
            except OperationalError:  # a deadlock with staff crediting one of its invoices
                if attempt == 2:  # tomorrow's run sends it; the other accounts get theirs
                    log.exception("dunning: account %s skipped today", account.pk)
                    letter = None
        if letter is not None:
            letters.append(letter)
    # after the ladder: what its final notice did not bring in goes to debt collection
    collection_cases_open(network=network, today=today, now=now)
    collection_cases_settle(on=today, network_id=network.pk)  # one a path outside allocation left
    return letters


@dataclass(frozen=True)
class ClaimHistory:
    """The dunning so far of the claim an overdue invoice stands for: the notices of the
    invoice and of those it replaces, the due date its ladder counts from, and the
    invoice's own due date."""

    due_on: dt.date
    notices: tuple[DunningNotice, ...]
    invoice_due_on: dt.date


def claim_history(invoice: Invoice) -> ClaimHistory:
    """The claim ``invoice`` stands for.  A correction (a re-rating's, or a rebill of an
    invoice staff credited) bills the same account, period and supply as the invoice it
    replaces, only the amount changed: the same claim (renteloven §9 b: at most three
    letters per claim, each at least 10 days after the one before).  So its ladder goes
    on from its chain's letters, counted from the due date of the invoice that had the
    claim's first one; a chain never dunned starts afresh from the correction's due date.
    """
    notices = list(invoice.dunning_notices.all())
    due_on = {invoice.pk: invoice.due_on}
    doc = invoice
    while doc.kind == Invoice.Kind.CORRECTION and doc.original_id is not None:
        doc = (
            Invoice.objects.only("kind", "original_id", "due_on")
            .prefetch_related("dunning_notices")
            .get(pk=doc.original_id)
        )
        due_on[doc.pk] = doc.due_on
        notices.extend(doc.dunning_notices.all())
    first = min(notices, key=lambda n: (n.sent_on, n.level), default=None)
    start = due_on[first.invoice_id] if first is not None else invoice.due_on
    return ClaimHistory(
        due_on=start or invoice.due_on, notices=tuple(notices), invoice_due_on=invoice.due_on
    )


def _next_step(
    *, claim: ClaimHistory, ladder: list[LadderStep], today: dt.date
) -> LadderStep | None:
    """The first level the claim has not had, once today is on or after the latest of:
    the level's days after the claim's due date (the claim's ladder); the ladder's first
    days after the invoice's own due date (a correction's customer has its payment term
    and grace, as for any invoice); the day after the previous letter's pay-by date; and
    the ladder's days between the previous level and this one after the previous letter
    (a late letter moves the next one with it).  None once the claim has had as many
    letters as the ladder has levels (a correction dunned afresh before its chain
    counted as one claim has had more: it gets no further letter, and no further fee)."""
    sent = {n.level for n in claim.notices}
    letters = {n.letter_id or -n.pk for n in claim.notices}
    step = next((step for step in ladder if step.level not in sent), None)
    if step is None or len(letters) >= len(ladder):
        return None
    earliest = max(
        claim.due_on + dt.timedelta(days=step.days),
        claim.invoice_due_on + dt.timedelta(days=ladder[0].days),
    )
    previous = max(claim.notices, key=lambda n: (n.sent_on, n.level), default=None)
    if previous is not None:
        spacing = step.days - ladder[step.level - 2].days if step.level > 1 else 0
        earliest = max(
            earliest,
            (previous.pay_by or previous.sent_on) + dt.timedelta(days=1),
            previous.sent_on + dt.timedelta(days=spacing),
        )
    return step if today >= earliest else None


def letter_terms(steps: Sequence[LadderStep]) -> tuple[LadderStep, Decimal]:
    """The step a letter covering ``steps`` speaks for (the highest level: its title and
    next steps) and the letter's one fee (the highest fee among the steps)."""
    if not steps:
        raise ValueError("a letter covers at least one step")
    return max(steps, key=lambda s: s.level), max(s.fee for s in steps)


def dunning_letter_send(
    *,
    account: Account,
    due: Sequence[tuple[Invoice, LadderStep]],
    today: dt.date,
    now: dt.datetime,
) -> DunningLetter | None:
    """Send ``account`` today's letter: a notice per (invoice, step) of ``due`` that still
    applies, and for a fee its issued fee invoice, in one transaction; the PDF is rendered
    after commit.  None when nothing applies any more (paid, by the account's credit too,
    or sent meanwhile) or the account has had today's letter (the unique constraints
    decide between two runs)."""
    from billing.services.payments import payments_apply_unallocated  # it imports this module

    _, planned_fee = letter_terms([step for _, step in due])
    steps = {invoice.pk: step for invoice, step in due}
    pay_by = today + dt.timedelta(days=conf.reminder_pay_days())
    try:
        with transaction.atomic():
            # the series counter before the invoice rows: the order issuing locks them in
            series = conf.invoice_series(today.year)
            counter = _counter(series) if planned_fee > 0 else None
            # the account's credit first, as when an invoice is issued (it locks all the
            # account's open invoices in id order before its payments, so before the
            # letter's own): whatever is left open afterwards is what the letter is about,
            # and there is no credit left for the fee (credit beyond what is open leaves
            # nothing to remind of)
            payments_apply_unallocated(on=today, account_id=account.pk)
            invoices = list(Invoice.objects.select_for_update().filter(pk__in=steps).order_by("pk"))
            if _letter_sent(account_id=account.pk, today=today):
                return None  # the account's next letter is another day's
            sent = set(
                DunningNotice.objects.filter(invoice_id__in=steps).values_list(
                    "invoice_id", "level"
                )
            )
            lines = sorted(
                (
                    (invoice, steps[invoice.pk])
                    for invoice in invoices
                    if invoice.state == Invoice.State.OVERDUE
                    and invoice.gross - invoice.paid > 0
                    and (invoice.pk, steps[invoice.pk].level) not in sent
                ),
                key=lambda line: (line[0].due_on, line[0].number or 0, line[0].pk),
            )
            if not lines:
                return None
            top, fee = letter_terms([step for _, step in lines])
            currency = lines[0][0].currency
            letter = DunningLetter.objects.create(
                account=account,
                sent_on=today,
                pay_by=pay_by,
                level=top.level,
                title=top.title,
                next_steps=top.next_steps,
                currency=currency,
                fee=quantize_money(fee, currency) if fee > 0 else ZERO,
                open_amount=sum((invoice.gross - invoice.paid for invoice, _ in lines), ZERO),
            )
            DunningNotice.objects.bulk_create(
                DunningNotice(
                    invoice=invoice,
                    letter=letter,
                    level=step.level,
                    title=step.title,
                    open_amount=invoice.gross - invoice.paid,
                    sent_on=today,
                    pay_by=pay_by,
                    next_steps=step.next_steps,
                )
                for invoice, step in lines
            )
            if letter.fee > 0 and counter is not None:  # fewer steps: at most the planned fee
                letter.fee_invoice = _fee_invoice_issue(
                    letter=letter,
                    invoices=[invoice for invoice, _ in lines],
                    network_id=lines[0][0].network_id,
                    series=series,
                    number=counter.last_number + 1,
                    now=now,
                )
                counter.last_number += 1
                counter.save(update_fields=["last_number"])
                letter.save(update_fields=["fee_invoice"])
            letter_id = letter.pk
            transaction.on_commit(lambda: _letters_dispatch([letter_id]))
    except IntegrityError:
        sent = set(
            DunningNotice.objects.filter(invoice_id__in=steps).values_list("invoice_id", "level")
        )
        if _letter_sent(account_id=account.pk, today=today) or all(
            (invoice_id, step.level) in sent for invoice_id, step in steps.items()
        ):
            return None  # a concurrent run sent it; ours rolled back, numbers included
        raise
    return letter


def _letter_sent(*, account_id: int, today: dt.date) -> bool:
    return DunningLetter.objects.filter(account_id=account_id, sent_on=today, legacy=False).exists()


def _fee_invoice_issue(
    *,
    letter: DunningLetter,
    invoices: Sequence[Invoice],
    network_id: int,
    series: str,
    number: int,
    now: dt.datetime,
) -> Invoice:
    """Write the letter's fee as an issued invoice numbered ``number`` (the caller holds
    the series counter lock): one line, quantity 1, the configured VAT rate."""
    numbers = ", ".join(invoice.display_number for invoice in invoices)
    line = DraftLine(
        connection_id=None,
        period_start=letter.sent_on,
        period_end=letter.sent_on + dt.timedelta(days=1),
        tariff_version_id=None,
        component=FEE_COMPONENT,
        kind=FEE_COMPONENT,
        description=f"Reminder fee: {letter.title}"[:200],
        explanation=f"{letter.title} of {letter.sent_on.isoformat()} for invoice(s) {numbers}"[
            :300
        ],
        quantity=Decimal("1"),
        unit="letter",
        unit_price=letter.fee,
        amount=letter.fee,
        vat_rate=conf.reminder_fee_vat_rate(),
    )
    net, vat, breakdown = totals([line], letter.currency)
    draft = BillDraft(
        account_id=letter.account_id,
        period_start=line.period_start,
        period_end=line.period_end,
        currency=letter.currency,
        lines=[line],
        net=net,
        vat=vat,
        gross=net + vat,
        vat_breakdown=breakdown,
        readings=[],
        has_estimated_reads=False,
        tariff_version_ids=[],
        determinants=[],
        comparison={},
    )
    (fee_id,) = drafts_write(
        drafts=[draft],
        network_id=network_id,
        run_id=None,
        kind=Invoice.Kind.REMINDER_FEE,
        now=now,
        issued=[(series, number, now, letter.pay_by)],
    )
    return Invoice.objects.get(pk=fee_id)


def claim_chain_ids(invoice: Invoice) -> list[int]:
    """``invoice`` and the invoices its corrections replace, back to the claim's first
    (the chain :func:`claim_history` counts the ladder over)."""
    ids = [invoice.pk]
    doc = invoice
    while doc.kind == Invoice.Kind.CORRECTION and doc.original_id is not None:
        doc = Invoice.objects.only("kind", "original_id").get(pk=doc.original_id)
        ids.append(doc.pk)
    return ids


def claim_fee_invoice_ids(invoice: Invoice) -> list[int]:
    """The fee invoices of the letters that reminded of ``invoice``'s claim: those
    crediting it may credit (:func:`reminder_fees_never_owed`), locked with it."""
    return list(
        _letters_with_fee_of(invoice)
        .order_by("fee_invoice_id")
        .values_list("fee_invoice_id", flat=True)
    )


def _never_owed(invoice: Invoice) -> bool:
    """Whether nothing of ``invoice`` was owed: a period's bill (an invoice or a
    correction) credited in full by an issued credit note and not replaced by a
    correction that was owed itself.  An instalment or a settlement credited is replaced
    by the year's settlement: its debt was due."""
    if invoice.kind not in (Invoice.Kind.INVOICE, Invoice.Kind.CORRECTION):
        return False
    replacing = Invoice.objects.filter(original=invoice).exclude(state=Invoice.State.CANCELLED)
    if not replacing.filter(kind=Invoice.Kind.CREDIT_NOTE, number__isnull=False).exists():
        return False
    return all(_never_owed(doc) for doc in replacing.filter(kind=Invoice.Kind.CORRECTION))


def reminder_fees_never_owed(*, invoice: Invoice) -> list[Invoice]:
    """The fee invoices, not credited yet, of the letters that reminded of ``invoice``'s
    claim and every one of whose invoices turns out never to have been owed
    (:func:`_never_owed`): renteloven §9 b, a reminder fee presupposes a debt that was
    due.  A letter that also reminded of an invoice still owed, or of one a correction
    replaced (re-rated to another amount: the debt existed), keeps its fee."""
    letters = (
        _letters_with_fee_of(invoice)
        .filter(fee_invoice__in=Invoice.objects.not_credited())
        .select_related("fee_invoice")
        .prefetch_related("notices__invoice")
        .order_by("pk")
    )
    return [
        letter.fee_invoice
        for letter in letters
        if all(_never_owed(notice.invoice) for notice in letter.notices.all())
    ]


def _letters_with_fee_of(invoice: Invoice):
    """The letters with a fee that reminded of ``invoice``'s claim (each once)."""
    reminded = DunningNotice.objects.filter(invoice_id__in=claim_chain_ids(invoice))
    return DunningLetter.objects.filter(
        Exists(reminded.filter(letter=OuterRef("pk"))), fee_invoice__isnull=False
    )


def _letters_dispatch(letter_ids: list[int]) -> None:
    from billing import tasks

    tasks.dunning_letters_render_pdfs.delay(letter_ids)
