"""Contracts (and contracted capacities and heated areas) changed after their days were
billed: re-rate, and bill what was missed.

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
admin and the API records one) and the capacity and area changes recorded, from a cursor
like the registers' re-rating: a capacity change dated back re-rates the days it governs
on its connection, an area change those on every connection of its building.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict

from django.db import transaction
from django.db.models import Q

from billing.calc import BillingError
from billing.models import BillingRun, BillingRunException, InstalmentPlan, Invoice, RerateCursor
from billing.services.aconto import invoice_days, planning_lock
from billing.services.compute import drafts_compute
from billing.services.rerating import (
    LATE,
    NoContractDays,
    UnableToRerate,
    current_invoices,
    draft_refresh,
    invoice_rebill,
    invoice_rerate,
    late_exception_record,
    look_horizon,
    rerate_cursor_advance,
    rerate_each,
)
from billing.services.runs import (
    RETRY_STATES,
    bill_into_run,
    billed_in_part,
    billing_run_exceptions_retry,
    chunks_holding,
)
from customers.models import Account, AreaChange, CapacityChange, Contract

log = logging.getLogger(__name__)

Span = tuple[dt.date, dt.date | None]  # [start, end); None: open


def contract_spans_changed_since(*, since: dt.datetime) -> dict[int, list[Span]]:
    """Per account, the days a contract change made at or after ``since`` touched: for a
    new or deleted contract all of its days; for a changed one the days it gained or
    lost (an earlier move-in, a later or earlier move-out); for one moved to another
    account or corrected to another connection all of its days before and after, for
    both accounts (the same one for a connection): the bills measured the wrong meter."""
    history = Contract.history.model
    changed = history.objects.filter(history_date__gte=since).values("id")
    spans: dict[int, list[Span]] = defaultdict(list)
    previous = None
    for row in (
        history.objects.filter(id__in=changed)
        .order_by("id", "history_date", "history_id")
        .values(
            "id",
            "history_date",
            "history_type",
            "account_id",
            "connection_id",
            "valid_from",
            "valid_to",
        )
    ):
        before = previous if previous is not None and previous["id"] == row["id"] else None
        previous = row
        if row["history_date"] < since:
            continue
        span = (row["valid_from"], row["valid_to"])
        if before is None or row["history_type"] != "~":  # created or deleted
            spans[row["account_id"]].append(span)
        elif (before["account_id"], before["connection_id"]) != (
            row["account_id"],
            row["connection_id"],
        ):  # moved to another account or corrected to another connection: every day
            spans[before["account_id"]].append((before["valid_from"], before["valid_to"]))
            spans[row["account_id"]].append(span)
        else:
            spans[row["account_id"]].extend(
                _changed_days((before["valid_from"], before["valid_to"]), span)
            )
    return {account_id: days for account_id, days in spans.items() if days}


def _changed_days(old: Span, new: Span) -> list[Span]:
    """The days in one of two spans of the same contract but not in the other (at most
    two stretches: around the start and around the end)."""
    out: list[Span] = []
    if old[0] != new[0]:
        out.append((min(old[0], new[0]), max(old[0], new[0])))
    if old[1] != new[1]:
        ends = [e for e in (old[1], new[1]) if e is not None]
        out.append((min(ends), None if len(ends) < 2 else max(ends)))
    return out


def capacity_spans_changed_since(*, since: dt.datetime) -> dict[int, list[Span]]:
    """Per account, the days a contracted-capacity change recorded at or after ``since``
    governs (from its day to the connection's next change) that the account held the
    connection: a change dated back re-rates those days, and only those."""
    return _governed_spans(
        CapacityChange.objects.filter(created_at__gte=since).values_list(
            "connection_id", "valid_from"
        ),
        changes_of=lambda cid: CapacityChange.objects.filter(connection_id=cid),
        contracts_of=lambda cid: Contract.objects.filter(connection_id=cid),
    )


def area_spans_changed_since(*, since: dt.datetime) -> dict[int, list[Span]]:
    """Per account, the days a heated-area change recorded at or after ``since`` governs
    (from its day to the building's next change) that the account held a connection of
    the building: a change dated back re-rates those days, and only those."""
    return _governed_spans(
        AreaChange.objects.filter(created_at__gte=since).values_list("building_id", "valid_from"),
        changes_of=lambda bid: AreaChange.objects.filter(building_id=bid),
        contracts_of=lambda bid: Contract.objects.filter(connection__building_id=bid),
    )


def _governed_spans(changed, *, changes_of, contracts_of) -> dict[int, list[Span]]:
    """For each (owner, day) of ``changed``: the days from ``day`` to the owner's next
    change, per account whose contract (``contracts_of(owner)``) held them."""
    spans: dict[int, list[Span]] = defaultdict(list)
    for owner, day in changed:
        until = (
            changes_of(owner)
            .filter(valid_from__gt=day)
            .order_by("valid_from")
            .values_list("valid_from", flat=True)
            .first()
        )
        contracts = contracts_of(owner).filter(Q(valid_to__isnull=True) | Q(valid_to__gt=day))
        if until is not None:
            contracts = contracts.filter(valid_from__lt=until)
        for account_id, start, end in contracts.values_list("account_id", "valid_from", "valid_to"):
            ends = [e for e in (end, until) if e is not None]
            spans[account_id].append((max(start, day), min(ends) if ends else None))
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
    invoices = current_invoices().filter(account=account, period_end__gt=lo)
    if hi is not None:
        invoices = invoices.filter(period_start__lt=hi)
    rerated = rerate_each(  # one that cannot be: shown on the period's run; the look goes on
        (
            invoice
            for invoice in invoices.order_by("period_start", "pk")
            if _overlaps(spans, invoice.period_start, invoice.period_end)
        ),
        lambda invoice: invoice_rerate(invoice=invoice, now=now, ensure=True),
        now=now,
    )
    rerated += _drafts_recompute(account=account, spans=spans, lo=lo, hi=hi, now=now)
    billed = [
        invoice
        for run in _runs_taken_up(account=account, lo=lo, hi=hi)
        if _overlaps(spans, run.period_start, run.period_end)
        and (invoice := account_bill_missed(account=account, run=run, now=now)) is not None
    ]
    return rerated, billed


def _drafts_recompute(
    *, account: Account, spans: list[Span], lo: dt.date, hi: dt.date | None, now: dt.datetime
) -> list[tuple[Invoice, Invoice | None]]:
    """Drafts (of runs not issued yet, held corrections and settlements) are computed
    again as the contracts now stand, one with no contract day left is cancelled: what
    is issued later is right.  A draft issued meanwhile is re-rated instead."""
    drafts = Invoice.objects.filter(
        account=account,
        state=Invoice.State.DRAFT,
        kind__in=(Invoice.Kind.INVOICE, Invoice.Kind.CORRECTION, Invoice.Kind.SETTLEMENT),
        period_end__gt=lo,
    )
    if hi is not None:
        drafts = drafts.filter(period_start__lt=hi)
    return rerate_each(
        (
            invoice
            for invoice in drafts.select_related("network", "run")
            if _overlaps(spans, invoice.period_start, invoice.period_end)
        ),
        lambda invoice: draft_refresh(invoice=invoice, now=now),
        now=now,
    )


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
    """Bill ``account`` for ``run``'s period if nothing bills it now and it had contract
    days then; None if there is nothing to bill (billed, on account, no contract days).

    A run not issued yet takes the bill in as one of its drafts (staff review and issue
    it with the rest); after its issue the bill is issued at once, unless it looks
    implausible (then a held draft, released by staff).  A period whose bill was credited
    in full (a move-out recorded by mistake, then undone) is billed again by
    :func:`billing.services.rerating.invoice_rebill`.  A bill that cannot be made
    becomes an exception on ``run``.
    """
    start, end = run.period_start, run.period_end
    with transaction.atomic():
        # one biller at a time, and the run's issue step waits (or goes first); the run
        # row only, not its network's (see runs.billing_run_issue)
        run = (
            BillingRun.objects.select_for_update(of=("self",))
            .select_related("network")
            .get(pk=run.pk)
        )
        planned = _planned_in(run=run, account=account)
        if planned == "pending":
            return None  # a chunk of the run still to come bills it
        planning_lock(account.network_id, shared=True)  # before looking for plans (aconto)
        plans = InstalmentPlan.objects.on_account_in(start, end).filter(account=account)
        if plans.on_account_for(start, end).exists():
            # the instalments and their settlement bill it, also when the period's
            # invoice was credited in full and the year planned afterwards
            return None
        existing = (
            Invoice.objects.filter(
                account=account, kind=Invoice.Kind.INVOICE, period_start=start, period_end=end
            )
            .exclude(state=Invoice.State.CANCELLED)
            .first()
        )
        if existing is not None:
            return _rebill_if_credited(run=run, account=account, invoice=existing, now=now)
        # an invoice of another period over these days: one containing them bills them
        # (a quarter's), one covering part of them makes billing the period bill it twice
        others = list(
            Invoice.objects.filter(
                account=account,
                kind=Invoice.Kind.INVOICE,
                period_start__lt=end,
                period_end__gt=start,
            )
            .exclude(state=Invoice.State.CANCELLED)
            .values_list("period_start", "period_end", "series", "number", "id")
        )
        # planned in a chunk done that wrote no bill of the run for it: that chunk counted
        # it failed (its exception may say since why it failed after the run, ``late_…``);
        # one the run counted nowhere (never planned, its draft cancelled) is counted
        # failed by its first exception after the run (``late_exception_record``)
        counted_failed = (
            planned == "done" and not Invoice.objects.filter(run=run, account=account).exists()
        ) or BillingRunException.objects.filter(run=run, account=account).exists()
        if others:
            failure = billed_in_part(others, start=start, end=end)
            if failure is not None:
                late_exception_record(
                    run=run,
                    account_id=account.pk,
                    failure=failure,
                    now=now,
                    uncounted=not counted_failed,
                )
            return None
        network = run.network
        # a final settlement that ended the plan inside the period: the days after it
        days, in_part = invoice_days(account_ids=[account.pk], period_start=start, period_end=end)
        if in_part:
            drafts, failures = [], in_part
        else:
            drafts, failures = drafts_compute(
                currency=network.currency,
                account_ids=[account.pk],
                period_start=start,
                period_end=end,
                time_zone=network.time_zone,
                days=days or None,
            )
        failure = failures.get(account.pk)
        if failure is not None and failure.code == "no_contract":
            return None
        if failure is not None:
            late_exception_record(
                run=run,
                account_id=account.pk,
                failure=failure,
                now=now,
                uncounted=not counted_failed,
            )
            return None
        return bill_into_run(
            run=run, account_id=account.pk, drafts=drafts, counted_failed=counted_failed, now=now
        )


def _planned_in(*, run: BillingRun, account: Account) -> str | None:
    """Whether ``run`` planned ``account``: "pending" in a chunk not done yet, "done" in
    one done, None in none (the contract came after the run was planned)."""
    done = chunks_holding(run=run, account_id=account.pk)
    if not done:
        return None
    return "done" if all(done) else "pending"


def _rebill_if_credited(
    *, run: BillingRun, account: Account, invoice: Invoice, now: dt.datetime
) -> Invoice | None:
    """The period's bill, followed down its corrections: if the last one was credited
    in full and the account had contract days, bill the period again (a correction)."""
    last = invoice
    while (
        nxt := Invoice.objects.filter(original=last, kind=Invoice.Kind.CORRECTION)
        .exclude(state=Invoice.State.CANCELLED)
        .first()
    ) is not None:
        last = nxt
    credited = (
        Invoice.objects.filter(original=last, kind=Invoice.Kind.CREDIT_NOTE)
        .exclude(state=Invoice.State.CANCELLED)
        .exists()
    )
    if last.number is None or not credited:
        return None  # a bill stands (or a draft that will): nothing missed
    try:
        with transaction.atomic():
            return invoice_rebill(invoice=last, now=now)
    except NoContractDays:
        return None
    except UnableToRerate as exc:
        failure = BillingError(f"{last.display_number} could not be billed again: {exc}")
        late_exception_record(run=run, account_id=account.pk, failure=failure, now=now)
        return None


def contracts_rebill_changed(*, now: dt.datetime) -> tuple[list, list[Invoice]]:
    """Re-rate and bill what the contracts changed since the last look touch (beat)."""
    cursor, _ = RerateCursor.objects.get_or_create(
        name="contracts", defaults={"checked_until": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)}
    )
    horizon = look_horizon()
    rerated, billed = [], []
    changed = contract_spans_changed_since(since=cursor.checked_until)
    for late in (capacity_spans_changed_since, area_spans_changed_since):
        for account_id, spans in late(since=cursor.checked_until).items():
            changed.setdefault(account_id, []).extend(spans)
    # and what could not be done before (a reading missing then, a tariff not yet
    # assigned): after the run, and the accounts an invoice run's chunk could not bill
    # (no other look bills those into their run once their data is put right; a
    # cancelled run's are billed by the run that replaces it)
    retry = Q(code__startswith=LATE) | Q(run__kind=BillingRun.Kind.INVOICE) & ~Q(
        run__state=BillingRun.State.CANCELLED
    )
    for account_id, start, end in BillingRunException.objects.filter(
        retry, resolved=False
    ).values_list("account_id", "run__period_start", "run__period_end"):
        changed.setdefault(account_id, []).append((start, end))
    for account in Account.objects.filter(pk__in=changed).order_by("pk"):
        r, b = account_contracts_rebill(account=account, spans=changed[account.pk], now=now)
        rerated += r
        billed += b
    # the accounts an instalment or settlement run's chunk could not bill: into their run
    # (or issued after it), as the data stands now
    for run in BillingRun.objects.filter(
        state__in=RETRY_STATES,
        exceptions__resolved=False,
        kind__in=(BillingRun.Kind.INSTALMENT, BillingRun.Kind.SETTLEMENT),
    ).distinct():
        billed += billing_run_exceptions_retry(run=run, now=now)
    rerate_cursor_advance(cursor=cursor, to=horizon)
    log.info("contract changes: %d re-rated, %d billed late", len(rerated), len(billed))
    return rerated, billed
