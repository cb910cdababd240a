"""Billing runs: plan chunks, compute drafts chunk by chunk, finish, issue, resume.

Restartability: a chunk is computed and written in ONE transaction together with its
progress counters and its ``done`` flag.  A worker killed mid-chunk leaves nothing of it
behind; a chunk that committed is never recomputed (``done`` is checked under a row
lock, and accounts that already have an invoice for the period are skipped).  Beneath
that, the partial unique constraint ``invoice_account_billed_once_per_period`` makes a
second bill for the same account and period impossible.  :func:`billing_run_resume`
re-dispatches the chunks that are not done (after a crash, or from the admin).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import time
from zoneinfo import ZoneInfo

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q

from billing import conf
from billing.calc import BillingError
from billing.models import BillingRun, BillingRunChunk, BillingRunException, Invoice
from billing.services.aconto import planning_lock
from billing.services.compute import drafts_compute
from billing.services.invoices import _local_issue_date, accounts_lock, invoices_issue
from billing.services.write import drafts_write
from customers.models import Account, Contract, Network
from heatutility.db import id_array
from heatutility.errors import ConflictError, DomainError
from heatutility.timeutil import add_months, local_midnight, months_between

log = logging.getLogger(__name__)


class InvalidBillingPeriod(DomainError):
    code = "invalid_period"


class RunNotReady(ConflictError):
    code = "run_not_ready"


class PeriodNotEnded(DomainError):
    code = "period_not_ended"


def billing_period(*, start: dt.date, months: int) -> tuple[dt.date, dt.date]:
    """A local calendar month (``months=1``) or quarter (``months=3``) starting on ``start``."""
    if start.day != 1:
        raise InvalidBillingPeriod("A billing period starts on the first day of a month.")
    if months == 3 and start.month not in (1, 4, 7, 10):
        raise InvalidBillingPeriod("A quarter starts in January, April, July or October.")
    if months not in (1, 3, 12):
        raise InvalidBillingPeriod("A billing period is a month, a quarter or a year.")
    return start, add_months(start, months)


def billing_run_check(
    *,
    network: Network,
    period_start: dt.date,
    months: int = 1,
    kind: str = BillingRun.Kind.INVOICE,
    now: dt.datetime,
) -> tuple[dt.date, dt.date]:
    """The period ``[start, end)`` of a run that may be created now, or the
    :class:`DomainError` saying why not.

    Consumption (invoices, settlements) is billed once its period is over in the
    network's zone: before that the end registers would be estimates of a future
    reading.  On-account instalments are billed in advance.  One active run per network,
    kind and period (also a database constraint, for two requests at once).
    """
    start, end = billing_period(start=period_start, months=months)
    ends = local_midnight(end, network.time_zone)
    if kind != BillingRun.Kind.INSTALMENT and now < ends:
        raise PeriodNotEnded(
            f"[{start}, {end}) has not ended yet: it ends at "
            f"{ends.astimezone(ZoneInfo(network.time_zone)):%Y-%m-%d %H:%M} "
            f"({network.time_zone}).  Consumption is billed once its period is over; "
            "on-account instalments are billed in advance."
        )
    active = BillingRun.objects.filter(
        network=network, kind=kind, period_start=start, period_end=end
    ).exclude(state=BillingRun.State.CANCELLED)
    if active.exists():
        raise _run_exists(network, kind, start, end)
    if kind == BillingRun.Kind.INVOICE:
        # an invoice run over some of the same days still writing its bills: which of
        # them this run bills depends on those bills (``_already_billed``)
        busy = (
            BillingRun.objects.filter(
                network=network,
                kind=kind,
                state__in=(BillingRun.State.CREATED, BillingRun.State.RUNNING),
                period_start__lt=end,
                period_end__gt=start,
            )
            .order_by("period_start")
            .first()
        )
        if busy is not None:
            raise ConflictError(
                f"{network} has an invoice run for [{busy.period_start}, {busy.period_end}) "
                f"still billing; [{start}, {end}) shares days with it, and which accounts it "
                "bills depends on that run's bills: create it once that run is drafted."
            )
    return start, end


def _run_exists(network: Network, kind: str, start: dt.date, end: dt.date) -> ConflictError:
    return ConflictError(
        f"{network} already has a billing run ({BillingRun.Kind(kind).label.lower()}) "
        f"for [{start}, {end}); resume or cancel it."
    )


def billing_run_create(
    *,
    network: Network,
    period_start: dt.date,
    months: int = 1,
    kind: str = BillingRun.Kind.INVOICE,
    now: dt.datetime,
    user=None,
    chunk_size: int | None = None,
    issue_when_drafted: bool = False,
    render_pdfs: bool = True,
) -> BillingRun:
    """Create a run if :func:`billing_run_check` allows it (the network's row locked: two
    runs over some of the same days are not created at once)."""
    try:
        with transaction.atomic():
            Network.objects.select_for_update(no_key=True).only("pk").get(pk=network.pk)
            start, end = billing_run_check(
                network=network, period_start=period_start, months=months, kind=kind, now=now
            )
            return BillingRun.objects.create(
                network=network,
                kind=kind,
                period_start=start,
                period_end=end,
                created_at=now,
                created_by=user,
                chunk_size=chunk_size or conf.get("CHUNK_SIZE"),
                issue_when_drafted=issue_when_drafted,
                render_pdfs=render_pdfs,
            )
    except IntegrityError as exc:  # created meanwhile by another request
        raise _run_exists(network, kind, start, end) from exc


def run_account_ids(*, run: BillingRun) -> list[int]:
    """The accounts a run bills, by its kind (a network may hold both kinds of account):

    * instalment runs: accounts with a plan of the run's frequency, still supplied;
    * settlement runs: accounts with an instalment plan for exactly the period (its
      year), and only those: an account billed by invoice runs has had its year billed;
    * invoice runs: accounts with a contract overlapping the period, except those on
      account for all of it (their instalments and settlement bill it).  An account whose
      plan covers only part of the period is taken and stopped in its chunk with a reason
      (``_on_account_in_part``): neither kind of bill may cover those days twice.  A plan
      a final settlement ended (``InstalmentPlan.ended_on``) is on account until then:
      the account's days after it (moved in again) are invoiced.
    """
    from billing.models import InstalmentPlan

    if run.kind == BillingRun.Kind.INSTALMENT:
        from billing.services.aconto import plan_account_ids

        months = months_between(run.period_start, run.period_end)
        return plan_account_ids(
            network_id=run.network_id, period_start=run.period_start, months=months
        )
    plans = InstalmentPlan.objects.overlapping(run.period_start, run.period_end).filter(
        account__network_id=run.network_id
    )
    if run.kind == BillingRun.Kind.SETTLEMENT:
        # the plans whose year is the run's period: a plan year from July is settled by
        # a run over its own year, not by one over the calendar year (which would bill
        # months its invoices billed already: aconto refuses that account as well)
        year = plans.filter(year_start=run.period_start, year_end=run.period_end)
        return sorted(set(year.values_list("account_id", flat=True)))
    on_account = plans.on_account_for(run.period_start, run.period_end)
    # a final settlement ended the plan inside the period: the contracts it settled (ended
    # by then) are not invoiced, a later one (moved in again) is, from that day
    ended_inside = plans.filter(
        year_start__lte=run.period_start,
        ended_on__gt=run.period_start,
        ended_on__lt=run.period_end,
        account_id=OuterRef("account_id"),
        ended_on__gte=OuterRef("valid_to"),
    )
    return list(
        Contract.objects.filter(account__network_id=run.network_id, valid_from__lt=run.period_end)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=run.period_start))
        .exclude(account_id__in=on_account.values("account_id"))
        .exclude(Q(valid_to__isnull=False) & Exists(ended_inside))
        .order_by("account_id")
        .values_list("account_id", flat=True)
        .distinct()
    )


def _on_account_in_part(
    *, run: BillingRun, account_ids: list[int]
) -> tuple[dict[int, tuple[dt.date, dt.date]], dict[int, BillingError]]:
    """Invoice runs: the accounts whose instalment plan is on account for part of the
    run's period: the days their bills cover where a final settlement ended the plan
    inside it (:func:`billing.services.aconto.invoice_days_of`), and the others, which
    are not billed (the reason)."""
    from billing.models import InstalmentPlan
    from billing.services.aconto import invoice_days, invoice_days_of

    if run.kind != BillingRun.Kind.INVOICE or not account_ids:
        return {}, {}
    if connection.vendor != "postgresql":
        return invoice_days(
            account_ids=account_ids, period_start=run.period_start, period_end=run.period_end
        )
    # the chunk's ids as one array parameter, not a list of 2,500 literals
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT account_id, year_start, year_end, ended_on "
            f"FROM {InstalmentPlan._meta.db_table} "
            "WHERE account_id = ANY(%s::bigint[]) AND year_start < %s AND year_end > %s "
            "AND (ended_on IS NULL OR ended_on > %s)",
            [id_array(account_ids), run.period_end, run.period_start, run.period_start],
        )
        plans = cursor.fetchall()
    return invoice_days_of(plans, period_start=run.period_start, period_end=run.period_end)


def billing_run_plan(*, run: BillingRun, now: dt.datetime) -> list[int]:
    """Split the run's accounts into chunks (once); returns the ids of chunks not done."""
    with transaction.atomic():
        run = BillingRun.objects.select_for_update().get(pk=run.pk)
        if run.state == BillingRun.State.CANCELLED:
            raise RunNotReady("The run is cancelled.")
        # planned once, by the run's first start: a run past ``created`` is not planned
        # again (an empty run has no chunks, and re-planning it would put a drafted or
        # issued run back to running/drafted and bill accounts added since)
        if run.state == BillingRun.State.CREATED and not run.chunks.exists():
            ids = run_account_ids(run=run)
            size = max(1, run.chunk_size)
            BillingRunChunk.objects.bulk_create(
                BillingRunChunk(run=run, index=n, account_ids=ids[i : i + size])
                for n, i in enumerate(range(0, len(ids), size))
            )
            run.total = len(ids)
            run.state = BillingRun.State.RUNNING
            run.started_at = now
            run.save(update_fields=["total", "state", "started_at"])
            if not ids:
                _finish(run=run, now=now)
        return list(run.chunks.filter(done=False).values_list("id", flat=True))


@contextlib.contextmanager
def _gc_paused():
    """No cyclic GC passes while a chunk allocates its many short-lived objects.

    The chunk's objects are freed by reference counting; full collections over the
    worker's heap in the middle of a chunk cost 25–45 % of its time (bench/README.md).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def billing_run_chunk_process(*, chunk_id: int, now: dt.datetime, throttle_s: float = 0.0) -> bool:
    """Compute and write one chunk; returns False when it was already done."""
    with _gc_paused():
        return _chunk_process(chunk_id=chunk_id, now=now, throttle_s=throttle_s)


def _chunk_process(*, chunk_id: int, now: dt.datetime, throttle_s: float) -> bool:
    chunk = BillingRunChunk.objects.select_related("run__network").get(pk=chunk_id)
    if chunk.done:
        return False
    run = chunk.run
    if run.state != BillingRun.State.RUNNING:
        return False
    network = run.network
    BillingRunChunk.objects.filter(pk=chunk.pk).update(attempts=F("attempts") + 1)
    with transaction.atomic():
        locked = BillingRunChunk.objects.select_for_update().get(pk=chunk.pk)
        if locked.done:
            return False
        if run.kind == BillingRun.Kind.INVOICE:
            planning_lock(network.pk, shared=True)  # before looking for plans (aconto)
        already, billed_part = _already_billed(run=run, account_ids=chunk.account_ids)
        days, in_part = _on_account_in_part(run=run, account_ids=chunk.account_ids)
        in_part.update(billed_part)
        todo = [a for a in chunk.account_ids if a not in already and a not in in_part]
        if run.kind == BillingRun.Kind.SETTLEMENT:
            # before counting their instalments: staff crediting one meanwhile waits for
            # this chunk and then sees its settlement (invoices.invoice_credit)
            accounts_lock(todo)
        compute_options = {"days": days} if days else {}
        if run.kind == BillingRun.Kind.INVOICE and connection.vendor == "postgresql":
            compute_options["render"] = True  # rows for COPY straight away
        drafts, failures = _compute_isolating(run, todo, compute_options)
        failures.update(in_part)
        issued = None
        try:
            with transaction.atomic():  # savepoint: numbers and rows together
                if connection.vendor == "postgresql":
                    ids, issued = _write_numbered(run=run, drafts=drafts, now=now)
                else:
                    if run.issue_when_drafted:
                        issued = _number_chunk(run=run, drafts=drafts, now=now)
                    ids = drafts_write(
                        drafts=drafts,
                        network_id=network.pk,
                        run_id=run.pk,
                        kind=_invoice_kind(run),
                        now=now,
                        issued=issued,
                    )
        except DatabaseError:
            # One bad bill must not sink the chunk: write them one by one as drafts
            # (the run's issue step numbers them), the refused ones become exceptions.
            issued, ids, drafts = None, [], list(drafts)
            written = []
            for draft in drafts:
                try:
                    with transaction.atomic():
                        ids += drafts_write(
                            drafts=[draft],
                            network_id=network.pk,
                            run_id=run.pk,
                            kind=_invoice_kind(run),
                            now=now,
                        )
                    written.append(draft)
                except DatabaseError as exc:
                    failures[draft.account_id] = BillingError(
                        f"could not be stored: {exc}".splitlines()[0][:500], code="write_error"
                    )
            drafts = written
        n_issued = sum(1 for i in issued or [] if i is not None)
        if n_issued and run.render_pdfs:
            from billing import tasks

            issued_ids = [i for i, x in zip(ids, issued, strict=True) if x is not None]
            transaction.on_commit(lambda: tasks.invoices_render_pdfs_dispatch(issued_ids))
        if failures:
            BillingRunException.objects.filter(run=run, account_id__in=list(failures)).delete()
        BillingRunException.objects.bulk_create(
            BillingRunException(
                run=run, account_id=account_id, code=exc.code, error=str(exc), created_at=now
            )
            for account_id, exc in failures.items()
        )
        if throttle_s:
            time.sleep(throttle_s)  # fault-injection/throttle knob (tests, shared databases)
        locked.done = True
        locked.finished_at = now
        locked.save(update_fields=["done", "finished_at"])
        # only while the run is running: this UPDATE waits for a cancel that locked the
        # run meanwhile and then matches nothing, and the chunk rolls back (otherwise its
        # drafts would outlive the cancel as drafts of a cancelled run, and a new run for
        # the period would skip those accounts as billed: billed by no issued invoice)
        counted = BillingRun.objects.filter(pk=run.pk, state=BillingRun.State.RUNNING).update(
            done=F("done") + len(drafts) + len(already),
            held=F("held") + sum(1 for d in drafts if d.held),
            failed=F("failed") + len(failures),
            issued=F("issued") + n_issued,
        )
        if not counted:
            transaction.set_rollback(True)
            return False
        if not BillingRunChunk.objects.filter(run=run, done=False).exists():
            run = BillingRun.objects.select_for_update().get(pk=run.pk)
            if (
                run.state == BillingRun.State.RUNNING
                and not BillingRunChunk.objects.filter(run=run, done=False).exists()
            ):
                _finish(run=run, now=now)
    return True


def _compute_isolating(run: BillingRun, account_ids: list[int], options: dict):
    """The chunk's bills and failures.  Something that stops the whole chunk (a stored
    tariff version that no longer reads, say, or a bug) must not stop the run: the
    accounts are then computed one by one and each one that fails becomes an exception
    with the reason, so the run finishes and staff see why.  Database errors propagate
    (the task retries them)."""
    network = run.network

    def compute(ids):
        return _compute(run)(
            currency=network.currency,
            account_ids=ids,
            period_start=run.period_start,
            period_end=run.period_end,
            time_zone=network.time_zone,
            **options,
        )

    try:
        with transaction.atomic():  # a savepoint: a failed query leaves the chunk usable
            return compute(account_ids)
    except DatabaseError:
        raise
    except Exception:
        log.exception("run %s: chunk failed as a whole; computing its accounts one by one", run.pk)
    drafts, failures = [], {}
    for account_id in account_ids:
        try:
            with transaction.atomic():
                one, failed = compute([account_id])
        except DatabaseError:
            raise
        except Exception as exc:
            reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            items = getattr(exc, "errors", None) or []  # a DomainError's itemised reasons
            if items:
                reason += " " + "; ".join(
                    f"{item.field}: {item.message}" if item.field else item.message
                    for item in items[:3]
                )
            failures[account_id] = BillingError(
                f"could not be computed: {reason}".splitlines()[0][:500], code="compute_error"
            )
            continue
        drafts += one
        failures.update(failed)
    return drafts, failures


def _number_chunk(*, run: BillingRun, drafts, now: dt.datetime):
    """Auto-issue: number the chunk's unheld bills as they are written (same transaction).

    The series counter is locked only after the chunk was computed, so workers queue on
    it just for the write and commit; numbers stay gapless because the counter and the
    invoices commit (or roll back) together.
    """
    from zoneinfo import ZoneInfo

    from billing.services.invoices import _counter

    network = run.network
    issue_date = now.astimezone(ZoneInfo(network.time_zone)).date()
    terms = _payment_terms([d.account_id for d in drafts if not d.held])
    counter = _counter(conf.invoice_series(issue_date.year))
    number = counter.last_number
    issue_by_account = {}
    for draft in sorted(drafts, key=lambda d: d.account_id):
        if draft.held:
            continue
        number += 1
        issue_by_account[draft.account_id] = (
            counter.series,
            number,
            now,
            issue_date + dt.timedelta(days=terms[draft.account_id]),
        )
    counter.last_number = number
    counter.save(update_fields=["last_number"])
    return [issue_by_account.get(d.account_id) for d in drafts]


def _issue_plan(*, run: BillingRun, drafts, now: dt.datetime):
    """Series, and per draft (rank among the chunk's unheld bills in account order,
    due date) or None for held ones; numbers are ``counter + rank`` under the lock."""
    from zoneinfo import ZoneInfo

    issue_date = now.astimezone(ZoneInfo(run.network.time_zone)).date()
    terms = _payment_terms([d.account_id for d in drafts if not d.held])
    rank = {a: k for k, a in enumerate(sorted(d.account_id for d in drafts if not d.held), start=1)}
    plan = [
        None
        if d.held
        else (rank[d.account_id], issue_date + dt.timedelta(days=terms[d.account_id]))
        for d in drafts
    ]
    return conf.invoice_series(issue_date.year), plan, len(rank)


def _write_numbered(*, run: BillingRun, drafts, now: dt.datetime):
    """PostgreSQL chunk write with the series lock held as briefly as possible.

    Ids, every row's COPY text and the lines are written first; only then is the
    series counter locked, the numbers filled in (``last_number + rank``) and the
    invoices copied.  Counter and invoices commit or roll back together: gapless.
    """
    from billing.services.invoices import _counter
    from billing.services.write import copy_prepare

    plan = None
    if run.issue_when_drafted:
        series, plan, count = _issue_plan(run=run, drafts=drafts, now=now)
    prepared = copy_prepare(
        drafts=drafts,
        network_id=run.network_id,
        run_id=run.pk,
        kind=_invoice_kind(run),
        now=now,
        issue=None if plan is None else [p and (series, now, p[1]) for p in plan],
    )
    prepared.copy_lines()
    if plan is None:
        prepared.copy_invoices()
        return prepared.ids, None
    numbers: list[int | None] = [None] * len(drafts)
    if count:
        # the run before the counter, the order every issuer takes (invoices module doc):
        # the lock the run's counters' UPDATE takes at the end of the chunk anyway
        BillingRun.objects.select_for_update(no_key=True).only("pk").get(pk=run.pk)
        counter = _counter(series)  # SELECT … FOR UPDATE: held until commit
        base = counter.last_number
        numbers = [None if p is None else base + p[0] for p in plan]
        counter.last_number = base + count
        counter.save(update_fields=["last_number"])
    prepared.copy_invoices(numbers=numbers)
    issued = [
        None if p is None else (series, n, now, p[1]) for p, n in zip(plan, numbers, strict=True)
    ]
    return prepared.ids, issued


def _payment_terms(account_ids: list[int]) -> dict[int, int]:
    if not account_ids:
        return {}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, payment_terms_days FROM customers_account WHERE id = ANY(%s::bigint[])",
                [id_array(account_ids)],
            )
            return dict(cursor.fetchall())
    return dict(Account.objects.filter(id__in=account_ids).values_list("id", "payment_terms_days"))


def _already_billed(
    *, run: BillingRun, account_ids: list[int]
) -> tuple[set[int], dict[int, BillingError]]:
    """The accounts billed for the run's period already, and (invoice runs) those billed
    for part of it, each with why it is not billed again.

    An invoice (not cancelled; a draft too) of the run's kind and period bills it; for
    invoice runs so does one of a longer period containing it (July after a quarterly
    run for Q3).  One of another period that covers only part of it (Q3 after a monthly
    run for July) makes the account an exception: billing the quarter would bill July
    twice, so the rest wants runs of the billed invoices' length (see
    :func:`billed_in_part`).
    """
    kind = _invoice_kind(run)
    overlapping = kind == Invoice.Kind.INVOICE
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT account_id, period_start, period_end, series, number, id "
                "FROM billing_invoice WHERE account_id = ANY(%s::bigint[]) AND kind = %s "
                + (
                    "AND period_start < %s AND period_end > %s "
                    if overlapping
                    else "AND period_end = %s AND period_start = %s "
                )
                + "AND state <> 'cancelled'",
                [id_array(account_ids), kind, run.period_end, run.period_start],
            )
            rows = cursor.fetchall()
    else:
        found = Invoice.objects.filter(account_id__in=account_ids, kind=kind).exclude(
            state=Invoice.State.CANCELLED
        )
        if overlapping:
            found = found.filter(period_start__lt=run.period_end, period_end__gt=run.period_start)
        else:
            found = found.filter(period_start=run.period_start, period_end=run.period_end)
        rows = found.values_list(
            "account_id", "period_start", "period_end", "series", "number", "id"
        )
    by_account: dict[int, list[tuple]] = {}
    for account_id, *invoice in rows:
        by_account.setdefault(account_id, []).append(tuple(invoice))
    covered, partly = set(), {}
    for account_id, invoices in by_account.items():
        failure = billed_in_part(invoices, start=run.period_start, end=run.period_end)
        if failure is None:
            covered.add(account_id)
        else:
            partly[account_id] = failure
    return covered, partly


def billed_in_part(invoices, *, start: dt.date, end: dt.date) -> BillingError | None:
    """None when one of ``invoices`` (period_start, period_end, series, number, id), the
    account's invoices overlapping ``[start, end)``, bills all of it; otherwise why the
    period cannot be invoiced (``billed_in_part``)."""
    if any(ps <= start and pe >= end for ps, pe, *_ in invoices):
        return None
    named = ", ".join(
        f"{'invoice ' if number else ''}{Invoice.name_of(series, number, pk)} for "
        f"{ps.isoformat()}–{pe.isoformat()}"
        for ps, pe, series, number, pk in sorted(invoices)
    )
    return BillingError(
        f"{start.isoformat()}–{end.isoformat()} is billed in part already ({named}): "
        "invoicing it would bill those days twice; bill the rest by runs of the billed "
        "invoices' periods",
        code="billed_in_part",
    )


def _compute(run: BillingRun):
    from billing.services import aconto

    return {
        BillingRun.Kind.INVOICE: drafts_compute,
        BillingRun.Kind.INSTALMENT: aconto.instalment_drafts,
        BillingRun.Kind.SETTLEMENT: aconto.settlement_drafts,
    }[run.kind]


def _invoice_kind(run: BillingRun) -> str:
    return {
        BillingRun.Kind.INVOICE: Invoice.Kind.INVOICE,
        BillingRun.Kind.INSTALMENT: Invoice.Kind.INSTALMENT,
        BillingRun.Kind.SETTLEMENT: Invoice.Kind.SETTLEMENT,
    }[run.kind]


def _finish(*, run: BillingRun, now: dt.datetime) -> None:
    run.state = BillingRun.State.DRAFTED
    run.drafted_at = now
    run.save(update_fields=["state", "drafted_at"])
    if run.issue_when_drafted:
        from billing import tasks

        transaction.on_commit(
            lambda: tasks.billing_run_issue.apply_async((run.pk,), **tasks._options())
        )


def billing_run_issue(*, run: BillingRun, issued_at: dt.datetime) -> list[int]:
    """Issue every unheld draft of a drafted run (held ones wait for release)."""
    with transaction.atomic():
        # the run row only: a lock on its network (FOR UPDATE) would block every document
        # written for the network meanwhile (an invoice row's key share on it), among
        # them a re-rating's, which holds the series counter this step waits for
        run = (
            BillingRun.objects.select_for_update(of=("self",))
            .select_related("network")
            .get(pk=run.pk)
        )
        if run.state not in (BillingRun.State.DRAFTED, BillingRun.State.ISSUED):
            raise RunNotReady(f"The run is {run.get_state_display().lower()}, not drafted.")
        ids = invoices_issue(issued_at=issued_at, run_id=run.pk, time_zone=run.network.time_zone)
        run.state = BillingRun.State.ISSUED
        run.issued_at = run.issued_at or issued_at
        run.issued = F("issued") + len(ids)
        run.save(update_fields=["state", "issued_at", "issued"])
        from billing.services.payments import payments_apply_unallocated

        # customers' prepayments / overpayments settle the new invoices
        payments_apply_unallocated(
            on=_local_issue_date(issued_at, run.network.time_zone), network_id=run.network_id
        )
        if run.render_pdfs and ids:
            from billing import tasks

            transaction.on_commit(lambda: tasks.invoices_render_pdfs_dispatch(ids))
    return ids


def billing_run_assert_resumable(*, run: BillingRun) -> None:
    """Refuse (409) before anything is dispatched: a cancelled run is not resumed."""
    if BillingRun.objects.filter(pk=run.pk, state=BillingRun.State.CANCELLED).exists():
        raise RunNotReady("The run is cancelled.")


# A run with no progress for this long lost its tasks (the broker down when they were
# queued, messages gone with a worker); a chunk of 2,500 bills takes about a second.
RUN_STALLED_AFTER = dt.timedelta(minutes=15)
# a chunk tried this often without finishing fails for a reason resuming will not fix
# (the database refusing its rows, say): beat stops resuming its run; staff look at it
CHUNK_MAX_ATTEMPTS = 5


def billing_runs_stalled(*, now: dt.datetime, after: dt.timedelta = RUN_STALLED_AFTER) -> list[int]:
    """Runs created or running that have made no progress for ``after``: never started
    (``created``), or ``running`` with chunks left and none finished lately, unless a
    chunk left was tried ``CHUNK_MAX_ATTEMPTS`` times.  Resuming one is safe: chunks done
    are skipped, and no account is billed twice for a period."""
    worn = BillingRunChunk.objects.filter(done=False, attempts__gte=CHUNK_MAX_ATTEMPTS)
    since = now - after
    recent = BillingRunChunk.objects.filter(finished_at__gte=since).values("run_id")
    return list(
        BillingRun.objects.filter(
            Q(state=BillingRun.State.CREATED, created_at__lt=since)
            | Q(state=BillingRun.State.RUNNING, started_at__lt=since, chunks__done=False)
        )
        .exclude(pk__in=recent)
        .exclude(pk__in=worn.values("run_id"))
        .order_by("pk")
        .distinct()
        .values_list("pk", flat=True)
    )


def billing_run_resume(*, run: BillingRun, now: dt.datetime) -> list[int]:
    """Chunks still to do (e.g. after a killed worker); the caller dispatches them."""
    return billing_run_plan(run=run, now=now)


def billing_run_cancel(*, run: BillingRun) -> BillingRun:
    """Cancel a run that has not issued anything: its drafts become cancelled drafts."""
    with transaction.atomic():
        run = BillingRun.objects.select_for_update().get(pk=run.pk)
        if run.state in (BillingRun.State.ISSUING, BillingRun.State.ISSUED):
            raise RunNotReady("An issued run cannot be cancelled; credit its invoices instead.")
        # a run that issues when drafted numbers its chunks' bills as they are written
        if Invoice.objects.filter(run=run, number__isnull=False).exists():
            raise RunNotReady(
                "The run has issued invoices already (it issues when drafted) and cannot be "
                "cancelled; credit its invoices instead."
            )
        Invoice.objects.filter(run=run, state=Invoice.State.DRAFT).update(
            state=Invoice.State.CANCELLED
        )
        run.state = BillingRun.State.CANCELLED
        run.save(update_fields=["state"])
    return run


# the states in which a run's failed accounts are billed into it or after it (a cancelled
# run's are billed by the run that replaces it; one being planned or issued waits)
RETRY_STATES = (BillingRun.State.RUNNING, BillingRun.State.DRAFTED, BillingRun.State.ISSUED)


def billing_run_exceptions_retry(*, run: BillingRun, now: dt.datetime) -> list[Invoice]:
    """Bill the accounts ``run``'s chunks could not bill (its exceptions not marked
    resolved), as their data stands now: the bills made.

    A run not issued yet takes each bill in as one of its drafts (its counters count the
    account done instead of failed); after its issue the bill is issued at once unless it
    looks implausible (then a held draft of the run, issued with the run's unheld drafts
    once staff release it: :func:`bill_into_run`).  An account that still fails
    keeps its exception.  The nightly contracts look calls this for every run that is not
    cancelled (``contract_changes.contracts_rebill_changed``); staff may too.
    """
    if run.state not in RETRY_STATES:
        raise RunNotReady(
            f"The run is {run.get_state_display().lower()}: only the failed accounts of a "
            "running, drafted or issued run are billed again."
        )
    account_ids = list(
        BillingRunException.objects.filter(run=run, resolved=False)
        .order_by("account_id")
        .values_list("account_id", flat=True)
    )
    if run.kind == BillingRun.Kind.INVOICE:
        from billing.services.contract_changes import account_bill_missed

        return [
            invoice
            for account in Account.objects.filter(pk__in=account_ids).order_by("pk")
            if (invoice := account_bill_missed(account=account, run=run, now=now)) is not None
        ]
    return [
        invoice
        for account_id in account_ids
        if (invoice := _account_bill_again(run=run, account_id=account_id, now=now)) is not None
    ]


def _account_bill_again(*, run: BillingRun, account_id: int, now: dt.datetime) -> Invoice | None:
    """An instalment or settlement run's bill for an account its chunk could not bill
    (see :func:`billing_run_exceptions_retry`); None if it still cannot be made, or the
    account has its bill of the period already (a late re-rating's exception: the
    contracts look re-rates it)."""
    from billing.services.rerating import late_exception_record

    with transaction.atomic():
        if run.kind == BillingRun.Kind.SETTLEMENT:
            accounts_lock([account_id])  # before the instalments are counted, as a chunk
        run = (
            BillingRun.objects.select_for_update(of=("self",))
            .select_related("network")
            .get(pk=run.pk)
        )
        if run.state not in RETRY_STATES:
            return None
        if not BillingRunException.objects.filter(
            run=run, account_id=account_id, resolved=False
        ).exists() or any(_already_billed(run=run, account_ids=[account_id])):
            return None
        network = run.network
        drafts, failures = _compute(run)(
            currency=network.currency,
            account_ids=[account_id],
            period_start=run.period_start,
            period_end=run.period_end,
            time_zone=network.time_zone,
        )
        failure = failures.get(account_id)
        if failure is not None:
            late_exception_record(run=run, account_id=account_id, failure=failure, now=now)
            return None
        # planned in a chunk done and no bill of the run: that chunk counted it failed
        planned = bool(chunks_holding(run=run, account_id=account_id))
        return bill_into_run(
            run=run, account_id=account_id, drafts=drafts, counted_failed=planned, now=now
        )


def chunks_holding(*, run: BillingRun, account_id: int) -> list[bool]:
    """Whether each of the run's chunks that planned ``account_id`` is done.  PostgreSQL
    looks inside the chunks' id lists itself (``@>``), so a night retrying many accounts
    of a large run does not read every list back once per account."""
    chunks = run.chunks.all()
    if connection.vendor == "postgresql":
        return list(
            chunks.filter(account_ids__contains=[account_id]).values_list("done", flat=True)
        )
    return [done for done, ids in chunks.values_list("done", "account_ids") if account_id in ids]


def bill_into_run(
    *, run: BillingRun, account_id: int, drafts, counted_failed: bool, now: dt.datetime
) -> Invoice | None:
    """Write an account's bill its run could not make (``drafts``: the one draft), in the
    caller's transaction with the run locked: before the run's issue as one of its drafts
    (counted done; ``counted_failed``: the run counted it failed, by its chunk or by its
    exception after the run, ``rerating.late_exception_record``), after it issued at once
    unless held.  The account's exceptions on the run go.  None if it was billed meanwhile.

    After the issue the bill is written outside the run, but an account the run counted
    failed is the run's all the same: it moves from ``failed`` to ``done`` (and
    ``issued`` when issued at once), or the run showed a failure beside a full set of
    issued bills.  Held, that account's bill is one of the run's drafts (``held`` +1),
    counted as the run's other held drafts are: its release takes it off ``held`` and
    its issue, the run's ("Issue unheld drafts") or its own, counts it ``issued``
    (``invoices.invoice_release``, ``invoice_issue``); outside the run its release issued
    it uncounted.  An account the run never planned (a new occupant) billed after the
    issue at its first try is not counted."""
    from billing.services.invoices import invoices_render_after_commit
    from billing.services.payments import payments_apply_unallocated

    network = run.network
    held = drafts[0].held
    joins_run = run.state in (BillingRun.State.RUNNING, BillingRun.State.DRAFTED) or (
        counted_failed and held
    )
    try:
        with transaction.atomic():
            (invoice_id,) = drafts_write(
                drafts=drafts,
                network_id=network.pk,
                run_id=run.pk if joins_run else None,
                kind=_invoice_kind(run),
                now=now,
            )
    except IntegrityError:  # billed meanwhile (the run's own chunk, say)
        return None
    BillingRunException.objects.filter(run=run, account_id=account_id).delete()
    issued: list[int] = []
    if not joins_run and not held:
        issued = invoices_issue(
            issued_at=now, invoice_ids=[invoice_id], time_zone=network.time_zone
        )
        # the local issue date, as invoice_issue (the UTC date is a day early at night)
        payments_apply_unallocated(
            on=_local_issue_date(now, network.time_zone), account_id=account_id
        )
        invoices_render_after_commit([invoice_id])
    if joins_run or counted_failed:
        # the run row is the caller's lock already (taken before the series counter):
        # a second retry waits for it and then finds the account billed, counting nothing
        BillingRun.objects.filter(pk=run.pk).update(
            total=F("total") + (0 if counted_failed else 1),
            done=F("done") + 1,
            failed=F("failed") - int(counted_failed),
            held=F("held") + int(held),  # held: a draft of the run (joins_run)
            issued=F("issued") + len(issued),
        )
    return Invoice.objects.get(pk=invoice_id)


def account_ids_for_network(*, network: Network) -> list[int]:
    return list(Account.objects.filter(network=network).values_list("id", flat=True))
