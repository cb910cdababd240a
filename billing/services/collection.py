"""Debt collection (inkasso) after the dunning ladder: what the final notice leads to.

* **When.**  The daily dunning run (:func:`billing.services.dunning.network_dunning_run`),
  on the network's local date, opens a :class:`~billing.models.CollectionCase` for each
  overdue receivable whose claim (``dunning.claim_history``: a correction goes on from the
  letters of the invoice it replaces) had the ladder's final level and whose final
  notice's pay-by date has passed, and that is still open: not paid, not credited (a
  credit note, even a draft one, means staff are taking it back), on an account that
  still owes (credit it holds settles its invoices first, as before a letter).  A
  correction also waits its own due date plus the ladder's first days, the grace every
  invoice gets before dunning.  There is no payment-arrangement concept in heatutility;
  staff who agree one withdraw the case.
* **What.**  The invoice's open amount (gross less what is allocated) and the reminder
  fees charged for its claim that are still open: each fee invoice goes with one case
  (:class:`~billing.models.CollectionFee`, unique fee invoice), the first of its letter's
  invoices handed over, so a letter's one fee is never claimed twice.
* **Once.**  One case per invoice (unique constraint ``collectioncase_one_per_invoice``),
  whatever its state: running the day again, or after staff withdrew a case, opens
  nothing more; an invoice with a case gets no further letter or fee.  An account's cases
  are one transaction; of two concurrent runs, the constraint lets one record them.
* **Settled** when nothing it handed over is open any more (the invoice and its fees paid
  or credited): in the transaction of the allocation that settles the last of them
  (``payments._settle``, ``invoices._apply_credit_notes``), dated with it, so the list
  staff and the agency see is never behind the ledger; the daily run settles any case a
  path outside those left (the same query over every active case).  A withdrawn case
  stays withdrawn.  An invoice credited in full with no correction credits its letters'
  fees as well (``invoices._reminder_fees_credit``): its case is settled then, not
  withdrawn, since a credit in the ledger is what settles a case and a withdrawal is
  staff's decision, with a reason.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Sequence
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q

from billing.models import CollectionCase, CollectionFee, DunningNotice, Invoice
from customers.models import Account, Network
from heatutility.errors import DomainError

log = logging.getLogger(__name__)
ZERO = Decimal("0")
ACTIVE = (CollectionCase.State.OPEN, CollectionCase.State.HANDED_OVER)


class UnableToChangeCase(DomainError):
    code = "collection_case_state"


def collection_cases_open(
    *, network: Network, today: dt.date, now: dt.datetime
) -> list[CollectionCase]:
    """Open a case for each of ``network``'s overdue receivables whose final notice's
    pay-by date is before ``today`` (a local date) and that is still open.  Returns the
    cases opened."""
    from billing.services.dunning import claim_history, dunning_ladder
    from billing.services.payments import account_balance

    ladder = dunning_ladder()
    if not ladder:
        return []
    final_level = len(ladder)
    candidates = (
        Invoice.objects.filter(network=network, state=Invoice.State.OVERDUE, gross__gt=0)
        .exclude(kind__in=(Invoice.Kind.REMINDER_FEE, Invoice.Kind.CREDIT_NOTE))
        .exclude(Exists(CollectionCase.objects.filter(invoice=OuterRef("pk"))))
        .not_credited()
        # the claim's final notice is on the invoice, or on one it replaces (a correction)
        .filter(
            Exists(DunningNotice.objects.filter(invoice=OuterRef("pk"), level=final_level))
            | Q(kind=Invoice.Kind.CORRECTION)
        )
        .select_related("account__network")
        .prefetch_related("dunning_notices")
        .order_by("account_id", "due_on", "number")
    )
    due: dict[int, list[Invoice]] = {}
    for invoice in candidates:
        claim = claim_history(invoice)
        final = [n for n in claim.notices if n.level == final_level]
        if not final:
            continue
        notice = max(final, key=lambda n: n.sent_on)
        earliest = max(
            (notice.pay_by or notice.sent_on) + dt.timedelta(days=1),
            claim.invoice_due_on + dt.timedelta(days=ladder[0].days),
        )
        if today >= earliest:
            due.setdefault(invoice.account_id, []).append(invoice)
    cases: list[CollectionCase] = []
    for invoices in due.values():
        account = invoices[0].account
        if account_balance(account=account) <= 0:
            continue  # its credit covers what is open (allocation settles it)
        try:
            cases.extend(
                account_cases_open(account=account, invoices=invoices, today=today, now=now)
            )
        except IntegrityError:  # a concurrent run opened them; ours rolled back
            log.info("collection: account %s handed over by another run", account.pk)
    return cases


def account_cases_open(
    *, account: Account, invoices: Sequence[Invoice], today: dt.date, now: dt.datetime
) -> list[CollectionCase]:
    """Open ``account``'s cases for ``invoices`` (oldest due first), in one transaction:
    the account's credit is used first, then each invoice still open gets its case with
    the open fees of its claim's letters that no case holds yet."""
    from billing.services.dunning import claim_history
    from billing.services.payments import (
        accounts_open_invoices_lock,
        payments_apply_unallocated,
    )

    with transaction.atomic():
        # the account's open invoices, its fees among them, in id order before its
        # payments: the order a payment's allocation takes them in
        accounts_open_invoices_lock([account.pk])
        payments_apply_unallocated(on=today, account_id=account.pk)
        locked = Invoice.objects.in_bulk([i.pk for i in invoices])
        cases = []
        for invoice in invoices:
            current = locked[invoice.pk]
            if current.state != Invoice.State.OVERDUE or current.open_amount <= 0:
                continue
            fees = _fees_open(claim_history(invoice).notices)
            fee_amount = sum((fee.open_amount for fee in fees), ZERO)
            case = CollectionCase.objects.create(
                invoice=current,
                account=account,
                currency=current.currency,
                open_amount=current.open_amount + fee_amount,
                fee_amount=fee_amount,
                opened_on=today,
                created_at=now,
            )
            CollectionFee.objects.bulk_create(
                CollectionFee(case=case, fee_invoice=fee, open_amount=fee.open_amount)
                for fee in fees
            )
            cases.append(case)
    return cases


def _fees_open(notices: Sequence[DunningNotice]) -> list[Invoice]:
    """The reminder-fee invoices of ``notices``' letters (or, before letters, of the
    notices themselves) that are still open and go with no case yet (locked by the
    caller with the account's open invoices)."""
    letter_ids = [n.letter_id for n in notices if n.letter_id is not None]
    notice_fee_ids = [n.fee_invoice_id for n in notices if n.fee_invoice_id is not None]
    return list(
        Invoice.objects.filter(
            Q(dunning_letter__pk__in=letter_ids) | Q(pk__in=notice_fee_ids),
            kind=Invoice.Kind.REMINDER_FEE,
            state__in=(Invoice.State.ISSUED, Invoice.State.PARTLY_PAID, Invoice.State.OVERDUE),
        )
        .exclude(Exists(CollectionFee.objects.filter(fee_invoice=OuterRef("pk"))))
        .order_by("due_on", "number")
    )


def collection_cases_settle(
    *, on: dt.date, invoice_ids: Collection[int] | None = None, network_id: int | None = None
) -> int:
    """Settle the active cases (of ``invoice_ids``, as the invoice or one of its fees;
    None: all of them, of ``network_id`` if given) whose invoice and fees are all paid or
    credited, dated ``on``.  Returns how many were settled."""
    cases = CollectionCase.objects.filter(state__in=ACTIVE)
    if network_id is not None:
        cases = cases.filter(account__network_id=network_id)
    if invoice_ids is not None:
        ids = list(invoice_ids)
        if not ids:
            return 0
        cases = cases.filter(
            Q(invoice_id__in=ids)
            | Exists(CollectionFee.objects.filter(case=OuterRef("pk"), fee_invoice_id__in=ids))
        )
    settled = cases.filter(invoice__state=Invoice.State.PAID).exclude(
        Exists(
            CollectionFee.objects.filter(case=OuterRef("pk")).exclude(
                fee_invoice__state=Invoice.State.PAID
            )
        )
    )
    return CollectionCase.objects.filter(pk__in=settled.values("pk")).update(
        state=CollectionCase.State.SETTLED, settled_on=on
    )


def _case_locked(case: CollectionCase) -> CollectionCase:
    return CollectionCase.objects.select_for_update().get(pk=case.pk)


def _by(user) -> str:
    return f" by {user}" if user is not None else ""


def collection_case_hand_over(*, case: CollectionCase, user, now: dt.datetime) -> CollectionCase:
    """Record that staff handed an open case to the collection agency."""
    with transaction.atomic():
        case = _case_locked(case)
        if case.state != CollectionCase.State.OPEN:
            raise UnableToChangeCase(
                f"Only an open case is handed over; this one is {case.get_state_display().lower()}."
            )
        case.state = CollectionCase.State.HANDED_OVER
        case.handed_over_at = now
        case.note = _noted(case.note, f"{now:%Y-%m-%d %H:%M} UTC handed over{_by(user)}.")
        case.save(update_fields=["state", "handed_over_at", "note"])
    return case


def collection_case_withdraw(
    *, case: CollectionCase, reason: str, user, now: dt.datetime
) -> CollectionCase:
    """Withdraw an open or handed-over case (a dispute, an arrangement agreed with the
    customer, a claim wrongly handed over), with the reason.  The invoice stays as it is
    and is never handed over again (one case per invoice)."""
    reason = reason.strip()
    if not reason:
        raise UnableToChangeCase("A withdrawal needs a reason.")
    with transaction.atomic():
        case = _case_locked(case)
        if case.state not in ACTIVE:
            raise UnableToChangeCase(
                f"Only an open or handed-over case is withdrawn; this one is "
                f"{case.get_state_display().lower()}."
            )
        case.state = CollectionCase.State.WITHDRAWN
        case.closed_at = now
        case.note = _noted(case.note, f"{now:%Y-%m-%d %H:%M} UTC withdrawn{_by(user)}: {reason}")
        case.save(update_fields=["state", "closed_at", "note"])
    return case


def _noted(note: str, line: str) -> str:
    return f"{note}\n{line}" if note else line
