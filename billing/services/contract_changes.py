"""Contracts (and contracted capacities) changed after their days were billed: re-rate,
and bill what was missed.

A move-out or move-in is often recorded weeks late, after the month's run billed the
network.  Nothing may be billed twice or lost (DOMAIN.md §7):

* an account whose contracts changed has its current invoices over the changed days
  re-rated (:func:`billing.services.rerating.invoice_rerate`): a move-out recorded late
  credits the days after it, one before the period credits the whole invoice;
* an account with contract days in a period a run has already taken up (the new
  occupant's days) but no bill for it gets that bill now: a draft of the run while the
  run is not issued, else numbered and issued at once (or held for review when
  implausible); the partial unique constraint
  ``invoice_account_billed_once_per_period`` keeps it to one.  An account that cannot be
  billed or re-rated becomes an exception on that run (code ``late_…``), where staff see
  it with the reason; each look tries it again until it succeeds.

Changes are found through the contracts' history (every save through the services, the
admin and the API records one) and the capacity changes recorded, from a cursor like
the registers' re-rating: a capacity change dated back re-rates the days from it on.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from billing.calc import BillingError
from billing.models import BillingRun, BillingRunException, InstalmentPlan, Invoice, RerateCursor
from billing.services.compute import drafts_compute
from billing.services.invoices import invoice_cancel_draft, invoice_replace_draft, invoices_issue
from billing.services.payments import payments_apply_unallocated
from billing.services.rerating import (
    RERATE_OVERLAP,
    NoContractDays,
    UnableToRerate,
    _pdfs_after_commit,
    current_invoices,
    invoice_recompute,
    invoice_rerate,
)
from billing.services.write import drafts_write
from customers.models import Account, CapacityChange, Contract

log = logging.getLogger(__name__)

Span = tuple[dt.date, dt.date | None]  # [start, end); None: open
# code prefix of the exceptions recorded here: each night's look tries their accounts again
LATE = "late_"


def contract_spans_changed_since(*, since: dt.datetime) -> dict[int, list[Span]]:
    """Per account, the spans of every version (before and after the change) of the
    contracts created, changed or deleted at or after ``since``."""
    history = Contract.history.model
    changed = history.objects.filter(history_date__gte=since).values("id")
    spans: dict[int, list[Span]] = defaultdict(list)
    for account_id, start, end in (
        history.objects.filter(id__in=changed)
        .values_list("account_id", "valid_from", "valid_to")
        .distinct()
    ):
        spans[account_id].append((start, end))
    return dict(spans)


def capacity_spans_changed_since(*, since: dt.datetime) -> dict[int, list[Span]]:
    """Per account, the days from a contracted-capacity change recorded at or after
    ``since`` on that the account held the connection (a change dated back re-rates)."""
    spans: dict[int, list[Span]] = defaultdict(list)
    for connection_id, day in CapacityChange.objects.filter(created_at__gte=since).values_list(
        "connection_id", "valid_from"
    ):
        for account_id, start, end in (
            Contract.objects.filter(connection_id=connection_id)
            .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=day))
            .values_list("account_id", "valid_from", "valid_to")
        ):
            spans[account_id].append((max(start, day), end))
    return dict(spans)


def _overlaps(spans: list[Span], start: dt.date, end: dt.date) -> bool:
    return any(s < end and (e is None or e > start) for s, e in spans)


def account_contracts_rebill(
    *, account: Account, spans: list[Span], now: dt.datetime
) -> tuple[list[tuple[Invoice, Invoice | None]], list[Invoice]]:
    """Re-rate ``account``'s current invoices over ``spans`` and bill the periods over
    them that runs have taken up without it.  Returns (re-ratings, new invoices)."""
    lo = min(s for s, _ in spans)
    hi = None if any(e is None for _, e in spans) else max(e for _, e in spans)
    rerated = []
    invoices = current_invoices().filter(account=account, period_end__gt=lo)
    if hi is not None:
        invoices = invoices.filter(period_start__lt=hi)
    for invoice in invoices.order_by("period_start", "pk"):
        if not _overlaps(spans, invoice.period_start, invoice.period_end):
            continue
        try:
            result = invoice_rerate(invoice=invoice, now=now, ensure=True)
        except UnableToRerate as exc:  # shown on the period's run; the look goes on
            run = (
                invoice.run
                or _runs_taken_up(account=account, lo=invoice.period_start, hi=invoice.period_end)
                .filter(period_start=invoice.period_start, period_end=invoice.period_end)
                .first()
            )
            if run is None:
                log.error("account %s: %s not re-rated: %s", account.pk, invoice, exc)
                continue
            failure = BillingError(
                f"{invoice.display_number} could not be re-rated: {exc}", code="rerate"
            )
            _record_exception(run=run, account=account, failure=failure, now=now)
            continue
        BillingRunException.objects.filter(
            account=account,
            code=LATE + "rerate",
            run__period_start=invoice.period_start,
            run__period_end=invoice.period_end,
        ).delete()
        if result:
            rerated.append(result)
    _drafts_recompute(account=account, spans=spans, lo=lo, hi=hi, now=now)
    billed = [
        invoice
        for run in _runs_taken_up(account=account, lo=lo, hi=hi)
        if _overlaps(spans, run.period_start, run.period_end)
        and (invoice := account_bill_missed(account=account, run=run, now=now)) is not None
    ]
    return rerated, billed


def _drafts_recompute(
    *, account: Account, spans: list[Span], lo: dt.date, hi: dt.date | None, now: dt.datetime
) -> None:
    """Drafts of runs not issued yet are computed again as the contracts now stand (one
    with no contract day left is cancelled): the run issues them as they should be."""
    drafts = Invoice.objects.filter(
        account=account, state=Invoice.State.DRAFT, kind=Invoice.Kind.INVOICE, period_end__gt=lo
    )
    if hi is not None:
        drafts = drafts.filter(period_start__lt=hi)
    for invoice in drafts.select_related("network", "run"):
        if not _overlaps(spans, invoice.period_start, invoice.period_end):
            continue
        try:
            invoice_replace_draft(
                invoice=invoice, draft=invoice_recompute(invoice=invoice, ensure=True)
            )
        except NoContractDays:
            invoice_cancel_draft(invoice=invoice)
        except UnableToRerate as exc:
            if invoice.run is not None:
                failure = BillingError(
                    f"draft #{invoice.pk} could not be recomputed: {exc}", code="rerate"
                )
                _record_exception(run=invoice.run, account=account, failure=failure, now=now)


def _runs_taken_up(*, account: Account, lo: dt.date, hi: dt.date | None):
    """The network's invoice runs over the span whose accounts were already planned:
    an account given a contract afterwards is in none of their chunks."""
    runs = (
        BillingRun.objects.filter(network_id=account.network_id, kind=BillingRun.Kind.INVOICE)
        .exclude(state__in=[BillingRun.State.CREATED, BillingRun.State.CANCELLED])
        .filter(period_end__gt=lo)
        .order_by("period_start")
    )
    return runs if hi is None else runs.filter(period_start__lt=hi)


def account_bill_missed(*, account: Account, run: BillingRun, now: dt.datetime) -> Invoice | None:
    """Bill ``account`` for ``run``'s period if the run did not and it had contract days
    then; None if there is nothing to bill (billed already, on account, no contract days).

    A run not issued yet takes the bill in as one of its drafts (staff review and issue
    it with the rest); after its issue the bill is issued at once, unless it looks
    implausible (then a held draft, released by staff).  A bill that cannot be computed
    becomes an exception on ``run``.
    """
    start, end = run.period_start, run.period_end
    with transaction.atomic():
        # one biller at a time, and the run's issue step waits (or goes first)
        run = BillingRun.objects.select_for_update().select_related("network").get(pk=run.pk)
        billed = (
            Invoice.objects.filter(
                account=account, kind=Invoice.Kind.INVOICE, period_start=start, period_end=end
            )
            .exclude(state=Invoice.State.CANCELLED)
            .exists()
        )
        on_account = InstalmentPlan.objects.overlapping(start, end).filter(account=account)
        if billed or on_account.exists():  # the instalments and their settlement bill it
            return None
        network = run.network
        drafts, failures = drafts_compute(
            currency=network.currency,
            account_ids=[account.pk],
            period_start=start,
            period_end=end,
            time_zone=network.time_zone,
        )
        failure = failures.get(account.pk)
        if failure is not None and failure.code == "no_contract":
            return None
        if failure is not None:
            _record_exception(run=run, account=account, failure=failure, now=now)
            return None
        BillingRunException.objects.filter(run=run, account=account).delete()
        joins_run = run.state in (BillingRun.State.RUNNING, BillingRun.State.DRAFTED)
        try:
            with transaction.atomic():
                (invoice_id,) = drafts_write(
                    drafts=drafts,
                    network_id=network.pk,
                    run_id=run.pk if joins_run else None,
                    kind=Invoice.Kind.INVOICE,
                    now=now,
                )
        except IntegrityError:  # the run's own chunk billed it meanwhile
            return None
        if joins_run:
            BillingRun.objects.filter(pk=run.pk).update(
                total=F("total") + 1, done=F("done") + 1, held=F("held") + int(drafts[0].held)
            )
        elif not drafts[0].held:
            invoices_issue(issued_at=now, invoice_ids=[invoice_id], time_zone=network.time_zone)
            payments_apply_unallocated(on=now.date(), account_id=account.pk)
            _pdfs_after_commit([invoice_id])
        return Invoice.objects.get(pk=invoice_id)


def _record_exception(
    *, run: BillingRun, account: Account, failure: BillingError, now: dt.datetime
) -> None:
    BillingRunException.objects.update_or_create(
        run=run,
        account=account,
        defaults={
            "code": (LATE + failure.code)[:40],
            "error": f"after the run: {failure}"[:500],
            "created_at": now,
            "resolved": False,
        },
    )


def contracts_rebill_changed(*, now: dt.datetime) -> tuple[list, list[Invoice]]:
    """Re-rate and bill what the contracts changed since the last look touch (beat)."""
    cursor, _ = RerateCursor.objects.get_or_create(
        name="contracts", defaults={"checked_until": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)}
    )
    look_started = timezone.now()
    rerated, billed = [], []
    changed = contract_spans_changed_since(since=cursor.checked_until)
    for account_id, spans in capacity_spans_changed_since(since=cursor.checked_until).items():
        changed.setdefault(account_id, []).extend(spans)
    # and what could not be done before (a reading missing then, a tariff not yet assigned)
    for account_id, start, end in BillingRunException.objects.filter(
        code__startswith=LATE, resolved=False
    ).values_list("account_id", "run__period_start", "run__period_end"):
        changed.setdefault(account_id, []).append((start, end))
    for account in Account.objects.filter(pk__in=changed).order_by("pk"):
        r, b = account_contracts_rebill(account=account, spans=changed[account.pk], now=now)
        rerated += r
        billed += b
    cursor.checked_until = max(cursor.checked_until, look_started - RERATE_OVERLAP)
    cursor.save(update_fields=["checked_until"])
    log.info("contract changes: %d re-rated, %d billed late", len(rerated), len(billed))
    return rerated, billed
