"""Re-rating: a late or corrected reading, or a corrected tariff, changes a billed period.

Cancel/rebill (DOMAIN.md §7): the original is credited in full by a credit note that
references it, and a correction invoice with the recomputed figures references it too.
Only the difference reaches the customer's balance (the credit note first settles the
original's open amount).  Nothing is billed twice or lost:

* an invoice is credited at most once (unique constraint ``invoice_credited_at_most_once``),
  and the original is locked while it is re-rated;
* the current bill of a period is the newest invoice/correction without a credit note,
  so a second change re-rates the correction, never the original again;
* an unchanged result (same lines and totals) issues nothing;
* an invoice staff credited in full by hand is billed again with :func:`invoice_rebill`:
  a correction as the data stands then, also at most once per invoice (unique constraint
  ``invoice_corrected_at_most_once``), since the billing run counts the period as billed;
* an annual settlement is re-rated as a settlement: its correction credits the year's
  instalments again, since the credit note took back the original's credit of them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from billing.calc import BillDraft, BillingError, one_year_earlier
from billing.models import (
    BillingRun,
    BillingRunException,
    Invoice,
    RerateCursor,
    RerateFailure,
)
from billing.services.compute import drafts_compute
from billing.services.invoices import (
    InvoiceIsIssued,
    _local_issue_date,
    invoice_cancel_draft,
    invoice_credit,
    invoice_issue,
    invoice_lock_with_open_invoices,
    invoice_replace_draft,
    invoices_issue,
    invoices_render_after_commit,
    series_counter_lock,
)
from billing.services.payments import payments_apply_unallocated
from billing.services.write import drafts_write
from customers.models import Account
from heatutility.db import oldest_open_write_started
from heatutility.errors import ConflictError, DomainError
from metering import selectors as metering_selectors

log = logging.getLogger(__name__)

RERATABLE = (Invoice.Kind.INVOICE, Invoice.Kind.SETTLEMENT, Invoice.Kind.CORRECTION)


class UnableToRerate(DomainError):
    code = "unable_to_rerate"


class OnAccountPeriod(UnableToRerate):
    """An invoice's period is (in part) on account now: the year was planned after the
    invoice was credited, and the instalments and the year's settlement bill its days."""

    status_code = 409
    code = "on_account"


class NoContractDays(UnableToRerate):
    """The account has no contract day left in the invoice's period (a move-out recorded
    late, a contract entered by mistake and removed): nothing to bill there any more."""

    code = "no_contract"


def current_invoices():
    """Issued invoices and corrections that have not been credited."""
    return Invoice.objects.filter(kind__in=RERATABLE, number__isnull=False).not_credited()


def _billed_kind(invoice: Invoice) -> str:
    """What a correction corrects, down its chain: invoice or settlement."""
    while invoice.kind == Invoice.Kind.CORRECTION and invoice.original_id is not None:
        invoice = Invoice.objects.only("kind", "original_id").get(pk=invoice.original_id)
    return invoice.kind


def invoice_recompute(*, invoice: Invoice, ensure: bool = False) -> BillDraft:
    """The bill for the invoice's account and period as the data stands now (for an
    annual settlement, or a correction of one: with the year's instalments credited).

    ``ensure``: have metering estimate a register the bill needs and never needed
    before (a move-out day recorded late); otherwise such a bill cannot be recomputed.
    """
    from billing.services.aconto import invoice_days, settlement_drafts

    settles = _billed_kind(invoice) == Invoice.Kind.SETTLEMENT
    options = {}
    if not settles:
        # the days a final settlement did not settle (the account moved in again)
        days, _in_part = invoice_days(
            account_ids=[invoice.account_id],
            period_start=invoice.period_start,
            period_end=invoice.period_end,
        )
        options = {"days": days} if days else {}
    drafts, failures = (settlement_drafts if settles else drafts_compute)(
        currency=invoice.currency,
        time_zone=invoice.network.time_zone,
        account_ids=[invoice.account_id],
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        ensure=ensure,
        **options,
    )
    if failures:
        failure = failures[invoice.account_id]
        raise (NoContractDays if failure.code == "no_contract" else UnableToRerate)(str(failure))
    return drafts[0]


def _signature(lines) -> list[tuple]:
    return sorted(
        (
            line.connection_id or 0,  # None: a line of no connection (instalments credited)
            line.component,
            str(line.period_start),
            line.quantity.normalize(),
            line.unit_price.normalize(),
            line.amount,
            line.vat_rate.normalize(),
        )
        for line in lines
    )


def invoice_rerate(
    *, invoice: Invoice, now: dt.datetime, ensure: bool = False
) -> tuple[Invoice, Invoice | None] | None:
    """Credit ``invoice`` and issue a correction when its figures changed; else None.

    A correction that looks implausible stays a held draft for staff review (the credit
    note is issued regardless, so the balance never carries a wrong amount).  When the
    account has no contract day left in the period, the credit note stands alone
    (correction None).
    """
    with transaction.atomic():
        # the counter before the invoice row (see invoices.series_counter_lock): held for
        # the recomputation, a few milliseconds, since a changed bill issues two documents.
        # Only the invoice row: a run's issue step holds its network's row (locked with the
        # run) while it waits for the counter, so locking the network here deadlocked.
        series_counter_lock(issued_at=now, time_zone=invoice.network.time_zone)
        # with the account's open invoices, in id order: its credit note settles them as a
        # payment's allocation does, which locks them in that order
        invoice_lock_with_open_invoices(invoice)
        invoice = Invoice.objects.select_related("network").get(pk=invoice.pk)
        if not current_invoices().filter(pk=invoice.pk).exists():
            return None  # credited meanwhile: its correction is the one to re-rate
        try:
            draft = invoice_recompute(invoice=invoice, ensure=ensure)
        except NoContractDays:
            if _billed_kind(invoice) != Invoice.Kind.INVOICE:
                raise  # a settlement's year is settled by a settlement, not a credit alone
            credit_note = invoice_credit(invoice=invoice, now=now)
            invoices_render_after_commit([credit_note.pk])
            return credit_note, None
        if (
            _signature(draft.lines) == _signature(invoice.lines.all())
            and draft.gross == invoice.gross
        ):
            return None
        # the correction replaces it: the debt existed, its reminder fees stay
        credit_note = invoice_credit(invoice=invoice, now=now, corrected=True)
        correction = _correction_write(invoice=invoice, draft=draft, now=now)
        invoices_render_after_commit(
            [credit_note.pk, correction.pk]
        )  # a held correction: on release
        return credit_note, correction


def _correction_write(*, invoice: Invoice, draft: BillDraft, now: dt.datetime) -> Invoice:
    """Write ``draft`` as the correction of ``invoice``; issue it unless it is held."""
    (correction_id,) = drafts_write(
        drafts=[draft],
        network_id=invoice.network_id,
        run_id=None,
        kind=Invoice.Kind.CORRECTION,
        now=now,
        original_ids=[invoice.pk],
    )
    if not draft.held:
        invoices_issue(
            issued_at=now, invoice_ids=[correction_id], time_zone=invoice.network.time_zone
        )
        # what the credit note left (the original was paid) settles the correction
        payments_apply_unallocated(
            on=_local_issue_date(now, invoice.network.time_zone), account_id=invoice.account_id
        )
    return Invoice.objects.get(pk=correction_id)


# -- what cannot be re-rated now: an exception on the period's run, tried again nightly

# code prefix of the exceptions recorded after a run (late contract changes, re-ratings
# that cannot be done now): each night's contract look tries their accounts again
LATE = "late_"


def run_of(invoice: Invoice) -> BillingRun | None:
    """The run that billed the period an invoice, correction or settlement stands for
    (a correction's own run is none: its original's).  A bill written outside a run (the
    nightly look's, after its run was issued) stands for the period of the run of its
    network, kind and period, where there is one (not cancelled): staff look there."""
    doc = invoice
    while doc.run_id is None and doc.original_id is not None:
        doc = Invoice.objects.only("run_id", "original_id").get(pk=doc.original_id)
    if doc.run_id is not None:
        return BillingRun.objects.get(pk=doc.run_id)
    doc = Invoice.objects.only("network_id", "kind", "period_start", "period_end").get(pk=doc.pk)
    if doc.kind not in BillingRun.Kind.values:
        return None
    return (
        BillingRun.objects.filter(
            network_id=doc.network_id,
            kind=doc.kind,
            period_start=doc.period_start,
            period_end=doc.period_end,
        )
        .exclude(state=BillingRun.State.CANCELLED)
        .first()
    )


def late_exception_record(
    *,
    run: BillingRun,
    account_id: int,
    failure: BillingError,
    now: dt.datetime,
    uncounted: bool = False,
) -> None:
    """Record that ``account_id`` could not be billed or re-rated for ``run`` after the
    run.  An exception (not marked resolved) that says so already is left as it is: the
    run's own (its chunk failed the account for the same reason) and a late one alike,
    with when it was recorded, so each night's new try does not turn the run's failure
    into one found after it, nor hide since when the account has been failing.

    ``uncounted``: the run counts the account nowhere (it never planned it, a new
    occupant, or its draft was cancelled) and it has no bill of the period; the caller
    holds the run's lock.  The account's first exception on the run counts it then,
    ``failed`` +1 and ``total`` +1 (so ``done + failed`` stays ``total``), or the run
    said nothing failed beside a listed exception; billing it later moves it from
    ``failed`` to ``done`` (``runs.bill_into_run``)."""
    said = (failure.code, str(failure)), (LATE + failure.code, f"after the run: {failure}"[:500])
    if BillingRunException.objects.filter(
        Q(code=said[0][0], error=said[0][1]) | Q(code=said[1][0], error=said[1][1]),
        run=run,
        account_id=account_id,
        resolved=False,
    ).exists():
        return
    _exception, created = BillingRunException.objects.update_or_create(
        run=run,
        account_id=account_id,
        defaults={
            "code": (LATE + failure.code)[:40],
            "error": f"after the run: {failure}"[:500],
            "created_at": now,
            "resolved": False,
        },
    )
    if created and uncounted:
        BillingRun.objects.filter(pk=run.pk).update(total=F("total") + 1, failed=F("failed") + 1)


def draft_refresh(*, invoice: Invoice, now: dt.datetime):
    """Recompute a draft in place, or cancel it when no contract day is left; if staff
    issued it meanwhile, re-rate it instead (that re-rating, else None).

    A draft of no run (a correction, a settlement) is issued at once when it is plausible
    (:func:`_correction_write`, ``aconto.final_settlement_issue``): one held until now
    whose hold the recomputation lifts is issued here, as it would have been at first,
    since no run's issue will take it."""
    try:
        try:
            draft = invoice_recompute(invoice=invoice, ensure=True)
        except NoContractDays:
            invoice_cancel_draft(invoice=invoice)
        else:
            with transaction.atomic():
                refreshed = invoice_replace_draft(
                    invoice=invoice, draft=draft, may_issue_at=now if invoice.held else None
                )
                if invoice.held and not refreshed.held and refreshed.run_id is None:
                    invoice_issue(invoice=refreshed, issued_at=now)
                    invoices_render_after_commit([refreshed.pk])
    except InvoiceIsIssued:
        invoice.refresh_from_db()
        return invoice_rerate(invoice=invoice, now=now, ensure=True)
    return None


def rerate_failure_record(*, invoice: Invoice, failure: Exception, now: dt.datetime) -> None:
    """Record for staff that ``invoice`` (of no run) could not be re-rated, and why.

    One record per invoice, kept since the first failure: a new try updates when it was
    tried; one failing for another reason than the record says opens it again, even if
    staff had marked it resolved (what they resolved was the other reason)."""
    code = str(getattr(failure, "code", "") or "rerate")[:40]
    error = str(getattr(failure, "message", None) or failure)[:500]
    with transaction.atomic():
        record, created = RerateFailure.objects.select_for_update().get_or_create(
            invoice_id=invoice.pk,
            defaults={
                "account_id": invoice.account_id,
                "code": code,
                "error": error,
                "created_at": now,
                "last_tried_at": now,
            },
        )
        if created:
            return
        changed = record.error != error
        RerateFailure.objects.filter(pk=record.pk).update(
            last_tried_at=now,
            **({"code": code, "error": error, "resolved": False} if changed else {}),
        )


def rerate_failures_resolve(*, ids: Iterable[int]) -> int:
    """Mark failed re-ratings dealt with (staff's admin action); how many were open."""
    return RerateFailure.objects.filter(pk__in=list(ids), resolved=False).update(resolved=True)


def rerate_each(invoices: Iterable[Invoice], attempt, *, now: dt.datetime) -> list:
    """``attempt(invoice)`` for each invoice (a re-rating, a draft's recomputation);
    their results.  One that cannot be done now stands as it is and becomes a
    ``late_rerate`` exception on its period's run for staff (cleared once it succeeds);
    the others are done all the same."""
    results = []
    for invoice in invoices:
        run = None
        try:
            result = attempt(invoice)
        except UnableToRerate as exc:
            run = run_of(invoice)
            if run is None:
                log.warning("account %s: %s not re-rated: %s", invoice.account_id, invoice, exc)
                rerate_failure_record(invoice=invoice, failure=exc, now=now)
                continue
            what = invoice.display_number or f"draft #{invoice.pk}"
            failure = BillingError(f"{what} could not be re-rated: {exc}", code="rerate")
            late_exception_record(run=run, account_id=invoice.account_id, failure=failure, now=now)
            continue
        if (run := run_of(invoice)) is not None:
            BillingRunException.objects.filter(
                run=run, account_id=invoice.account_id, code=LATE + "rerate"
            ).delete()
        else:
            RerateFailure.objects.filter(invoice_id=invoice.pk).delete()
        if result:
            results.append(result)
    return results


def invoice_rebill(*, invoice: Invoice, now: dt.datetime) -> Invoice:
    """Bill the period of an invoice that staff credited in full again, as the data stands
    now: a correction referencing it (held for review if it looks implausible).

    The billing run counts a credited period as billed, so this is how it is billed
    again, after the data behind the credit was put right.  At most once per invoice.
    """
    if invoice.kind not in RERATABLE or invoice.number is None:
        raise UnableToRerate(
            "Only issued invoices, annual settlements and corrections are billed again; "
            "instalments are settled by the annual settlement."
        )
    with transaction.atomic():
        series_counter_lock(issued_at=now, time_zone=invoice.network.time_zone)
        # the invoice row alone, as in invoice_rerate (not its network's)
        invoice = (
            Invoice.objects.select_for_update(of=("self",))
            .select_related("network")
            .get(pk=invoice.pk)
        )
        related = Invoice.objects.filter(original=invoice).exclude(state=Invoice.State.CANCELLED)
        if not related.filter(kind=Invoice.Kind.CREDIT_NOTE).exists():
            raise ConflictError(
                f"Invoice {invoice.display_number} is not credited: re-rate it instead."
            )
        done = related.filter(kind=Invoice.Kind.CORRECTION).first()
        if done is not None:
            raise ConflictError(
                f"Invoice {invoice.display_number} is already billed again "
                f"by {done.display_number or f'draft #{done.pk}'}."
            )
        if _billed_kind(invoice) == Invoice.Kind.INVOICE:
            _assert_not_on_account(invoice)
        return _correction_write(invoice=invoice, draft=invoice_recompute(invoice=invoice), now=now)


def _assert_not_on_account(invoice: Invoice) -> None:
    """Refuse to bill an invoice's period again when an instalment plan of its account
    covers days of it: the settlement bills the whole plan year (a plan may be made over
    an invoice credited in full, which then bills nothing), so a correction would bill
    those days twice."""
    from billing.models import InstalmentPlan
    from billing.services.aconto import invoice_days

    # a plan a final settlement ended inside the period leaves the days after it to
    # the invoice (the account moved in again): billed again, it bills those alone
    days, _in_part = invoice_days(
        account_ids=[invoice.account_id],
        period_start=invoice.period_start,
        period_end=invoice.period_end,
    )
    plan = (
        InstalmentPlan.objects.on_account_in(invoice.period_start, invoice.period_end)
        .filter(account_id=invoice.account_id)
        .order_by("year_start")
        .first()
    )
    if plan is not None and invoice.account_id not in days:
        until = plan.ended_on or plan.year_end
        raise OnAccountPeriod(
            f"Invoice {invoice.display_number}: its period is on account from "
            f"{plan.year_start.isoformat()} to {until.isoformat()}, and the year's "
            "instalments and settlement bill those days; it is not billed again."
        )


# from a day to the day a year later (365 or 366 days: billing.calc.one_year_earlier)
A_YEAR_ON = (dt.timedelta(days=365), dt.timedelta(days=366))


def invoices_affected_by_registers(pairs: Iterable[tuple[int, dt.date]]) -> list[Invoice]:
    """Current invoices whose bill used a register value at one of ``pairs``, or split a
    connection's consumption by days at one of them (a tariff change inside the period
    with no register then: a register arriving later measures that split), or rated a
    block price over the trailing year from one of them (the register a year before a
    contract interval's end: recorded in ``readings`` when there was one, and the day in
    the segment's ``annual_from`` either way).

    These are every register an amount rests on.  The comparison's
    ``last_year_readings`` are not looked at: the register a year before an interval's
    end counts only through block prices (above), the one a year before its start
    measures nothing but the same period last year, and an issued invoice never changes,
    its comparison included (drafts resting on that figure are computed again:
    :func:`drafts_affected_by_registers`).

    The candidates are found by their period (the registers' days, and the same a year
    on for the trailing year), then checked against what each recorded."""
    pairs = set(pairs)
    if not pairs:
        return []
    wanted = {(cid, day.isoformat()) for cid, day in pairs}  # as the invoices record them
    candidates = _around(current_invoices(), pairs).only(
        "id", "account_id", "readings", "determinants", "period_start", "period_end"
    )
    hits = [
        invoice
        for invoice in candidates.iterator(chunk_size=2000)
        if not wanted.isdisjoint(_registers_used(invoice))
    ]
    # re-rated (and their credit notes numbered) in Invoice.Meta.ordering, sorted here:
    # the candidates are many wide rows, the hits few
    numbers = dict(
        Account.objects.filter(pk__in={i.account_id for i in hits}).values_list("pk", "number")
    )
    hits.sort(key=lambda invoice: numbers[invoice.account_id])
    hits.sort(key=lambda invoice: invoice.period_start, reverse=True)
    return hits


def drafts_affected_by_registers(pairs: Iterable[tuple[int, dt.date]]) -> list[Invoice]:
    """Drafts (of runs whose drafts wait to be issued, held or released ones, corrections,
    settlements) that used a register at one of ``pairs``: one their amounts rest on
    (as :func:`invoices_affected_by_registers` reads them) or one behind last year's
    figure (the comparison's ``last_year_readings``, which the plausibility hold
    compares with).

    Each is computed again in place (:func:`draft_refresh`) by the look that sees the
    change: the look moves past it, so a draft issued later on the old register would
    never be re-rated.  Its hold follows the recomputation unless staff held it for a
    reason of their own (``invoices.invoice_replace_draft``)."""
    pairs = set(pairs)
    if not pairs:
        return []
    wanted = {(cid, day.isoformat()) for cid, day in pairs}
    drafts = Invoice.objects.filter(state=Invoice.State.DRAFT, kind__in=RERATABLE)
    hits = [
        invoice.pk
        for invoice in _around(drafts, pairs)
        .only("id", "readings", "determinants", "comparison", "period_start", "period_end")
        .iterator(chunk_size=2000)
        if not wanted.isdisjoint(_registers_used(invoice))
        or not wanted.isdisjoint(_last_year_used(invoice))
    ]
    return list(Invoice.objects.filter(pk__in=hits).select_related("network").order_by("pk"))


# changed days closer together than this are looked for as one span of days: a span
# costs one condition, and the bills of the days between are few next to those at both
# ends (a month's bills touch both its first days)
SPAN_GAP = dt.timedelta(days=31)


def _spans(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """``days`` as spans ``(first, last)``, a new one wherever the gap exceeds SPAN_GAP."""
    spans: list[list[dt.date]] = []
    for day in sorted(set(days)):
        if spans and day - spans[-1][1] <= SPAN_GAP:
            spans[-1][1] = day
        else:
            spans.append([day, day])
    return [(first, last) for first, last in spans]


def _around(invoices, pairs: set[tuple[int, dt.date]]):
    """``invoices`` whose period touches the days of ``pairs``, or the same days a year on:
    a register on day d is a year before a contract interval's bound 365 or 366 days
    later (``one_year_earlier``), inside [period_start, period_end].

    The days are taken span by span (:func:`_spans`), not from the first to the last: a
    correction in January and the registers of December would otherwise read every bill
    of the months between.  Unordered: the candidates are read once, in any order."""
    touching = Q()
    for first, last in _spans(d for _, d in pairs):
        touching |= Q(period_start__lte=last, period_end__gte=first) | Q(
            period_start__lte=last + A_YEAR_ON[1], period_end__gte=first + A_YEAR_ON[0]
        )
    return invoices.filter(touching).order_by()


def _registers_used(invoice: Invoice) -> list[tuple[int, str]]:
    """(connection, ISO day) of every register the invoice's amounts rest on, as it
    recorded them (see :func:`invoices_affected_by_registers`)."""
    used = [(r["connection_id"], r["on"]) for r in invoice.readings]
    for segment in invoice.determinants.get("segments", ()):
        if segment.get("period_start", "") > invoice.period_start.isoformat():
            used.append((segment["connection_id"], segment["period_start"]))
        if segment.get("annual_from"):
            used.append((segment["connection_id"], segment["annual_from"]))
    return used


def _last_year_used(invoice: Invoice) -> list[tuple[int, str]]:
    """(connection, ISO day) of the registers behind the comparison's last-year figure
    (``last_year_readings``).  A bill written before they were recorded has no such key:
    then the days a year before each register it used, its contract intervals' bounds
    among them."""
    comparison = invoice.comparison or {}
    if "last_year_readings" in comparison:
        return [(r["connection_id"], r["on"]) for r in comparison["last_year_readings"]]
    return [
        (r["connection_id"], one_year_earlier(dt.date.fromisoformat(r["on"])).isoformat())
        for r in invoice.readings
    ]


# How far back each look starts again before the previous one began (or before the
# oldest transaction then still open, see :func:`look_horizon`): covers the clocks of the
# application hosts, which stamp the rows, against each other and the database's.
# Looking at a register twice costs a recomputation and issues nothing (an unchanged
# bill is not re-rated).
RERATE_OVERLAP = dt.timedelta(minutes=10)
HELD_BACK_WARNING = dt.timedelta(hours=1)


def rerate_cursor_advance(*, cursor: RerateCursor, to: dt.datetime) -> None:
    """Move ``cursor`` to ``to`` if that is later, in the database: two looks at once
    (a slow night, a beat delivered twice) never move it back, whichever ends last."""
    RerateCursor.objects.filter(pk=cursor.pk).update(
        checked_until=Greatest(F("checked_until"), Value(to))
    )
    cursor.refresh_from_db(fields=["checked_until"])


def look_horizon() -> dt.datetime:
    """Where the next look at rows changed "since" may start, taken before this look
    reads anything: a row stamped (``updated_at``, ``history_date``, ``created_at``)
    before that moment by a transaction that commits only after the look read the table
    must be seen by the next look.  Such a transaction is open now, so the horizon is
    the earlier of now and the oldest open writing transaction's start
    (:func:`heatutility.db.oldest_open_write_started`), less :data:`RERATE_OVERLAP`.
    An import that runs for an hour holds the horizon back for that hour; nothing it
    wrote is skipped."""
    horizon = timezone.now()  # the clock of the writes (not a document date ahead of it)
    oldest = oldest_open_write_started()
    if oldest is not None and oldest < horizon:
        if oldest < horizon - HELD_BACK_WARNING:
            # e.g. a session left "idle in transaction": every look reads again what
            # changed since it began (correct, but the looks grow) until it ends
            log.warning(
                "a transaction open since %s holds the re-rating looks back", oldest.isoformat()
            )
        horizon = oldest
    return horizon - RERATE_OVERLAP


def invoices_rerate_changed(*, now: dt.datetime) -> list[tuple[Invoice, Invoice]]:
    """Re-rate every current invoice whose registers changed since the last look, and
    compute again in place every draft that rests on one (:func:`drafts_affected_by_registers`:
    its own registers or last year's; an issued invoice is re-rated for the registers
    its amounts rest on alone, :func:`invoices_affected_by_registers`).

    An invoice that cannot be recomputed (a corrected register below the period's
    start, say) stands as billed and becomes a ``late_rerate`` exception on its period's
    run for staff, retried every night by the contract look until the data is put
    right; the others are re-rated all the same (:func:`rerate_each`).
    """
    cursor, _ = RerateCursor.objects.get_or_create(
        name="registers", defaults={"checked_until": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)}
    )
    horizon = look_horizon()
    pairs = metering_selectors.boundary_registers_updated_since(since=cursor.checked_until)
    # found first: a held correction the re-ratings below write is computed already
    drafts = drafts_affected_by_registers(pairs)
    results = rerate_each(
        invoices_affected_by_registers(pairs),
        lambda invoice: invoice_rerate(invoice=invoice, now=now),
        now=now,
    )
    # a draft staff issued meanwhile is re-rated instead (its credit note and correction)
    results += rerate_each(drafts, lambda invoice: draft_refresh(invoice=invoice, now=now), now=now)
    rerate_cursor_advance(cursor=cursor, to=horizon)
    return results


def invoices_rerate_for_tariff_versions(
    *, version_ids: Iterable[int], now: dt.datetime
) -> list[tuple[Invoice, Invoice | None]]:
    """Re-rate current invoices priced with a corrected tariff version.

    An approved version never changes but its end: a correction approved from a day
    inside a billed period closes it on that day, so only the bills priced with it over
    a period ending after its (new) end change.  Those are found by a query (the
    network, the period and, where the database can, the version ids), not by reading
    every invoice.  Issued ones are re-rated (a correction's own versions count, so a
    second correction re-rates the correction); drafts (of a run not issued yet, held
    corrections and settlements) are computed again, not credited.  One that cannot be
    recomputed stands as billed and becomes a ``late_rerate`` exception for staff; the
    others are re-rated all the same, and running this again resumes (re-rated ones are
    credited, so never twice).
    """
    from django.db import connection

    from tariffs.models import TariffVersion

    wanted = set(version_ids)
    where = Q(pk__in=[])
    for version in TariffVersion.objects.filter(pk__in=wanted).select_related("tariff"):
        part = Q(network_id=version.tariff.network_id)
        if version.valid_to is not None:
            part &= Q(period_end__gt=version.valid_to)
        if connection.features.supports_json_field_contains:
            part &= Q(tariff_version_ids__contains=[version.pk])
        where |= part

    def priced_with_them(invoices):
        """Their ids first (the documents re-rating writes are not walked again)."""
        rows = invoices.filter(where).order_by("period_start", "pk")
        ids = [
            pk
            for pk, versions in rows.values_list("pk", "tariff_version_ids").iterator(
                chunk_size=2000
            )
            if wanted & set(versions or ())
        ]
        return (Invoice.objects.select_related("network").get(pk=pk) for pk in ids)

    results = rerate_each(
        priced_with_them(current_invoices()),
        lambda invoice: invoice_rerate(invoice=invoice, now=now),
        now=now,
    )
    drafts = Invoice.objects.filter(state=Invoice.State.DRAFT, kind__in=RERATABLE)
    return results + rerate_each(
        priced_with_them(drafts), lambda invoice: draft_refresh(invoice=invoice, now=now), now=now
    )


def invoices_rerate_tariff_corrections(*, now: dt.datetime) -> list[tuple[Invoice, Invoice | None]]:
    """Nightly: re-rate for every tariff version closed by an approval since the last
    look (the approved successor starts where it ends).  The approval queues the same
    at once; this catches a task lost on the way, and a second pass changes nothing."""
    from tariffs.models import TariffVersion

    cursor, _ = RerateCursor.objects.get_or_create(
        name="tariffs", defaults={"checked_until": timezone.now()}
    )
    horizon = look_horizon()
    closed = set()
    for tariff_id, starts in TariffVersion.objects.filter(
        approved_at__gte=cursor.checked_until
    ).values_list("tariff_id", "valid_from"):
        closed.update(
            TariffVersion.objects.filter(tariff_id=tariff_id, valid_to=starts)
            .exclude(status=TariffVersion.Status.DRAFT)
            .values_list("pk", flat=True)
        )
    results = (
        invoices_rerate_for_tariff_versions(version_ids=sorted(closed), now=now) if closed else []
    )
    rerate_cursor_advance(cursor=cursor, to=horizon)
    return results


def invoice_draft_recompute(*, invoice: Invoice) -> Invoice:
    """Staff "correct": after fixing readings or contracts, recompute a (held) draft."""
    from billing.services.invoices import invoice_assert_draft, invoice_replace_draft

    invoice_assert_draft(invoice=invoice)
    return invoice_replace_draft(invoice=invoice, draft=invoice_recompute(invoice=invoice))
