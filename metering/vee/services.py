"""VEE writes: run the rules over new or chosen readings, resolve the exception queue.

Readings land as ``valid``; VEE (nightly for batches not yet checked, or on a staff
rerun for a meter and period) records findings as :class:`ReadingIssue` rows and marks
readings ``rejected`` (error) or ``suspect`` (warning).  Staff accept (→ valid; an
ambiguous rollover with the number of wraps they found; a register decrease with the
number of wraps, declaring it a rollover), reject (→ rejected) or edit
(→ edited, original kept in :class:`ReadingEdit`; the edit is judged by the same rules
with its neighbours, and refused where they reject it).  Afterwards the affected
connections' boundary registers are refreshed.

A rerun recomputes VEE's own verdicts: a reading whose findings are gone is valid again
and its stale open findings leave the queue.  Staff decisions stand: a finding staff
accepted does not count against its reading, a reading staff rejected stays rejected,
an edited reading stays edited (it is judged again, as the reference of its neighbours,
and what the rules find on it goes to the queue).  The one exception is a decision the reads no
longer allow: an accepted ambiguous rollover, or a decrease declared a rollover, whose
wrap count does not fit under the meter's register settings (changed since) is
reopened, with why, and stays in the queue until staff decide again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, Max, Min, OuterRef, Q

from heatutility.errors import DomainError, ErrorItem
from heatutility.money import plain
from heatutility.timeutil import local_midnight, month_starts
from metering.models import (
    BoundaryRegister,
    IngestBatch,
    IngestBatchMeter,
    MeterInstallation,
    Reading,
    ReadingEdit,
    ReadingIssue,
    RevalidationRequest,
)
from metering.retention import readings_horizon
from metering.selectors import reading_last_at, readings_usable_around
from metering.vee import rules
from metering.vee.estimation import USABLE, boundary_registers_ensure

READ_FIELDS = (
    "read_at",
    "energy_kwh",
    "volume_m3",
    "flow_temp_c",
    "return_temp_c",
    "power_kw",
    "flow_m3h",
    "status_code",
    "status",
)
STATUS_FOR = {"error": Reading.Status.REJECTED, "warning": Reading.Status.SUSPECT}
# statuses VEE itself sets and may take back; estimated and edited readings are left alone
VEE_VERDICTS = (Reading.Status.VALID, Reading.Status.SUSPECT, Reading.Status.REJECTED)
_CHUNK = 5000
# what a failed revalidation records of its exception (RevalidationRequest.last_error)
LAST_ERROR_LENGTH = 500

log = logging.getLogger(__name__)


def _installs(meter_id: int) -> list[MeterInstallation]:
    return list(
        MeterInstallation.objects.filter(meter_id=meter_id).select_related(
            "unit__connection__network", "meter"
        )
    )


def _initials(installs: list[MeterInstallation], *, now: dt.datetime) -> list[rules.Read]:
    """The initial registers VEE checks each installation's first read against
    (``rules.validate``): those of installations begun since the retention horizon.  An
    older installation's first reads may be archived, and the register may have rolled
    over among them: its first read online is no first read."""
    return [
        rules.Read(i.installed_at, i.initial_energy_kwh, i.initial_volume_m3)
        for i in installs
        if i.installed_at >= _horizon(i, now=now)
    ]


def _horizon(installation: MeterInstallation, *, now: dt.datetime) -> dt.datetime:
    """The retention horizon of ``installation``'s network."""
    return readings_horizon(now=now, time_zone=installation.unit.connection.network.time_zone)


def vee_run_meter(*, meter_id: int, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> int:
    """Validate the meter's readings in ``[start, end]``; returns the number of findings.
    (:func:`_vee_run_meter`, which returns them.)"""
    return len(_vee_run_meter(meter_id=meter_id, start=start, end=end, now=now))


def _vee_run_meter(
    *, meter_id: int, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> list[rules.Finding]:
    """Validate the meter's readings in ``[start, end]``; returns the findings.

    The last usable read before ``start`` is judged again with them: a garbled read that
    ended the previous run had no later read to show it was the odd one out, and must
    not become the reference that the new reads are found to fall below.  So is the
    first read after ``end`` that VEE judges (valid, suspect or estimated): a read
    delivered late, between reads validated already, is only seen to be the odd one out
    (a spike above both neighbours) with the read after it, and that read's verdict
    depends on it.

    Staff-edited readings are judged with the others, by the same rules (their status
    stays ``edited``, a staff decision; their findings go to the queue): the neighbours
    are judged against the edited values, and :func:`reading_edit` refuses an edit the
    rules reject.  An edit is staff's later word on a reading they had rejected.
    """
    before = (
        Reading.objects.filter(meter_id=meter_id, read_at__lt=start, status__in=USABLE)
        .order_by("-read_at")
        .values_list("read_at", flat=True)
        .first()
    )
    if before is not None:
        start = before
    after = (
        Reading.objects.filter(
            meter_id=meter_id,
            read_at__gt=end,
            status__in=(
                Reading.Status.VALID,
                Reading.Status.SUSPECT,
                Reading.Status.ESTIMATED,
                Reading.Status.EDITED,
            ),
        )
        .order_by("read_at")
        .values_list("read_at", flat=True)
        .first()
    )
    if after is not None:
        end = after
    installs = _installs(meter_id)
    issues = list(
        ReadingIssue.objects.filter(
            meter_id=meter_id, read_at__gte=start, read_at__lte=end
        ).values_list("pk", "read_at", "code", "severity", "state", "resolved_by_id", "resolved_at")
    )
    # staff decisions (ReadingIssue.state set by reading_issues_accept / _reject)
    staff_rejected = {
        at for _, at, _, _, state, _, _ in issues if state == ReadingIssue.State.REJECTED
    }
    staff_accepted: dict[dt.datetime, set[str]] = defaultdict(set)
    for _, at, code, severity, state, _, _ in issues:
        if state == ReadingIssue.State.ACCEPTED and severity in STATUS_FOR:
            staff_accepted[at].add(code)
    # decisions revalidation reopened (_decisions_recheck): open until staff decide again,
    # whether or not VEE still raises them
    reopened = [
        (at, severity)
        for _, at, _, severity, state, _, resolved_at in issues
        if state == ReadingIssue.State.OPEN and resolved_at is not None
    ]
    stored = {}
    reads = []
    for values in (
        Reading.objects.filter(meter_id=meter_id, read_at__gte=start, read_at__lte=end)
        .order_by("read_at")
        .values_list(*READ_FIELDS)
    ):
        read = rules.Read(*values)
        stored[read.read_at] = read.status
        if read.status == Reading.Status.EDITED:  # edited after staff rejected it
            staff_rejected.discard(read.read_at)
        # VEE's own earlier verdicts are recomputed, not taken as given
        status = (
            Reading.Status.REJECTED
            if read.read_at in staff_rejected
            else Reading.Status.VALID
            if read.status in VEE_VERDICTS
            else read.status
        )
        reads.append(rules.Read(*values[:-1], status=str(status)))
    if not reads:
        _refresh_boundaries(meter_id=meter_id, installs=installs, start=start, end=end, now=now)
        return []
    prev_values = (
        Reading.objects.filter(
            meter_id=meter_id, read_at__lt=start, status__in=("valid", "edited", "estimated")
        )
        .order_by("-read_at")
        .values_list(*READ_FIELDS)
        .first()
    )
    active = next(
        (
            i
            for i in installs
            if rules.installed_then(i.installed_at, i.removed_at, reads[-1].read_at)
        ),
        None,
    )
    meter = installs[0].meter if installs else None
    # decreases staff declared rollovers: the register counts their wraps there
    declared = dict(
        ReadingIssue.objects.filter(
            meter_id=meter_id,
            read_at__gte=start,
            read_at__lte=end,
            code=rules.DECREASE,
            state=ReadingIssue.State.ACCEPTED,
            wraps__isnull=False,
        ).values_list("read_at", "wraps")
    )
    findings = rules.validate(
        reads=reads,
        previous=rules.Read(*prev_values) if prev_values else None,
        register_max_kwh=meter.register_max_kwh if meter else Decimal("1e14"),
        volume_register_max_m3=meter.volume_register_max if meter else Decimal("1e12"),
        register_wrap_kwh=meter.register_wrap_kwh if meter else None,
        volume_register_wrap_m3=meter.volume_register_wrap_m3 if meter else None,
        nominal_flow_m3h=meter.nominal_flow_m3h if meter else None,
        contracted_kw=active.unit.connection.contracted_capacity_kw if active else None,
        installed=[(i.installed_at, i.removed_at) for i in installs],
        initials=_initials(installs, now=now),
        now=now,
        declared=declared,
    )
    # a reading staff rejected is decided: no new findings on it
    kept = [f for f in findings if f.read_at not in staff_rejected]
    found = {(f.read_at, f.code) for f in kept}
    against: dict[dt.datetime, set[str]] = defaultdict(set)  # severities still counting
    for f in kept:
        if f.severity in STATUS_FOR and f.code not in staff_accepted[f.read_at]:
            against[f.read_at].add(f.severity)
    for at, severity in reopened:
        if at not in staff_rejected and severity in STATUS_FOR:
            against[at].add(severity)
    target: dict[str, list[dt.datetime]] = defaultdict(list)
    for at, status in stored.items():
        if at in staff_rejected or status not in VEE_VERDICTS:
            continue
        verdict = (
            Reading.Status.REJECTED
            if "error" in against[at]
            else Reading.Status.SUSPECT
            if "warning" in against[at]
            else Reading.Status.VALID
        )
        if verdict != status:
            target[verdict].append(at)
    # VEE's findings that no longer hold: open ones leave the queue, and its own rollover
    # markers go (estimation and meter removal take them as hints of a rollover)
    stale = [
        pk
        for pk, at, code, _, state, resolved_by, resolved_at in issues
        if at in stored
        and at not in staff_rejected
        and (at, code) not in found
        and (
            (state == ReadingIssue.State.OPEN and resolved_at is None)
            or (
                state == ReadingIssue.State.ACCEPTED
                and code in rules.ROLLOVER_CODES
                and resolved_by is None
            )
        )
    ]
    with transaction.atomic():
        ReadingIssue.objects.bulk_create(
            [
                ReadingIssue(
                    meter_id=meter_id,
                    read_at=f.read_at,
                    code=f.code,
                    severity=f.severity,
                    message=f.message[:300],
                    created_at=now,
                    state=ReadingIssue.State.ACCEPTED
                    if f.code in rules.ROLLOVER_CODES
                    else ReadingIssue.State.OPEN,
                )
                for f in kept
            ],
            ignore_conflicts=True,
        )
        for i in range(0, len(stale), _CHUNK):
            ReadingIssue.objects.filter(pk__in=stale[i : i + _CHUNK]).delete()
        for status, moments in target.items():
            moments.sort()
            for i in range(0, len(moments), _CHUNK):
                Reading.objects.filter(
                    meter_id=meter_id,
                    read_at__in=moments[i : i + _CHUNK],
                    status__in=VEE_VERDICTS,
                ).update(status=status)
        undeclared = _decisions_recheck(
            issue_ids=[
                pk
                for pk, at, code, _, state, _, _ in issues
                if state == ReadingIssue.State.ACCEPTED
                and code in rules.WRAP_CODES
                and at in stored
                and at not in staff_rejected
            ],
            now=now,
        )
    if undeclared:
        # the reads were judged with a declared rollover that is open again: judged
        # again without it (once: a reopened decision has no count to recheck)
        return _vee_run_meter(meter_id=meter_id, start=start, end=end, now=now)
    _refresh_boundaries(meter_id=meter_id, installs=installs, start=start, end=end, now=now)
    return findings


def _decisions_recheck(*, issue_ids: list[int], now: dt.datetime) -> int:
    """Reopen the accepted ambiguous rollovers among ``issue_ids`` whose wrap count (one
    where staff stated none) the reads no longer allow: the meter's register settings
    changed (a maximum, resolution or qp), or the reads around it did.  Staff decisions
    stand where they are still possible; one that is not is neither kept (its wraps
    would be counted at the new wrap) nor changed behind staff's back: the finding is
    open again, with why and the decision it replaces, recorded as a resolution by the
    system (no actor).  Its reading is suspect again, and the boundaries count one wrap
    and hold the bills across it, as for any undecided ambiguous rollover.

    The same holds for a ``register_decrease`` staff declared a rollover (accepted with
    a count, :func:`reading_issues_accept`): one whose count no longer fits (or where
    the reads no longer fall) is open again, its reading rejected, and no wrap is
    counted there.  Returns how many of those were reopened: the caller judged the
    reads with them as rollovers."""
    if not issue_ids:
        return 0
    undeclared = 0
    for issue in (
        ReadingIssue.objects.select_for_update(of=("self",))
        .filter(pk__in=issue_ids, state=ReadingIssue.State.ACCEPTED)
        .select_related("meter", "resolved_by")
        .order_by("read_at", "pk")
    ):
        if issue.code == rules.DECREASE:
            if issue.wraps is None:  # accepted as a decrease, no rollover declared
                continue
            wraps = issue.wraps
            fits, since = _decrease_fits(issue)
            if fits and all(wraps <= fit.wraps for fit in fits):
                continue
            why = (
                "the reads no longer show a decrease here"
                if not fits
                else "; ".join(
                    f"at most {fit.wraps} wrap(s) of the {fit.register} register fit its fall "
                    f"since {since.isoformat()}, not {wraps}"
                    for fit in fits
                    if wraps > fit.wraps
                )
            )
            undeclared += 1
        else:
            wraps = issue.wraps or 1
            most, since = _wraps_possible(issue)
            if most is not None and wraps <= most:
                continue
            why = (
                "the reads no longer show a rollover here"
                if most is None
                else f"at most {most} wrap(s) fit the time since {since.isoformat()}, not {wraps}"
            )
        decided = (
            f"accepted with {wraps} wrap(s) by {issue.resolved_by or 'the system'}"
            + (f" at {issue.resolved_at.isoformat()}" if issue.resolved_at else "")
            + (f": {issue.resolution_reason}" if issue.resolution_reason else "")
        )
        issue.state, issue.resolved_by, issue.resolved_at = ReadingIssue.State.OPEN, None, now
        issue.resolution_reason = (
            f"Reopened by revalidation: with the meter's register settings {why}; decide "
            f"again (was {decided})."
        )[:300]
        issue.wraps = None
        issue.save(
            update_fields=["state", "resolved_by", "resolved_at", "resolution_reason", "wraps"]
        )
        _reading(issue).filter(status=Reading.Status.VALID).update(
            status=STATUS_FOR[issue.severity]
        )
    return undeclared


def _first_reads_reach(
    *,
    installs: list[MeterInstallation],
    before: dt.datetime | None,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
) -> dict[int, dt.datetime]:
    """Per connection, how far back before ``start`` the month starts to create reach
    when the meter's reads in ``[start, end]`` are the first of its installation there
    (``before``, the meter's last usable read before ``start``, lies before the
    installation, or there is none): to the previous meter's last usable read on the
    connection (the month starts across the exchange: that read, its final register,
    the new initial register and the new first read are points of the series), else
    its removal, else the installation itself (a first installation).  Nothing reaches
    past the retention horizon, and installations begun before it are left out (their
    first reads may be archived, as for VEE's initial-register check).  A normal batch,
    with a read of its installation before it, reaches no further and costs no query."""
    reach: dict[int, dt.datetime] = {}
    for inst in installs:
        if (
            inst.installed_at > end
            or (inst.removed_at is not None and inst.removed_at < start)
            or (before is not None and before >= inst.installed_at)
        ):
            continue
        horizon = _horizon(inst, now=now)
        if inst.installed_at < horizon:
            continue
        connection_id = inst.unit.connection_id
        since = inst.installed_at
        previous = (
            MeterInstallation.objects.filter(
                unit__connection_id=connection_id, installed_at__lt=inst.installed_at
            )
            .order_by("-installed_at")
            .values_list("meter_id", "installed_at", "removed_at")
            .first()
        )
        if previous is not None:
            meter, installed_at, removed_at = previous
            ended = min(removed_at or inst.installed_at, inst.installed_at)
            last = (
                Reading.objects.filter(
                    meter_id=meter,
                    read_at__gte=installed_at,
                    read_at__lte=ended,
                    status__in=USABLE,
                )
                .order_by("-read_at")
                .values_list("read_at", flat=True)
                .first()
            )
            since = last or ended
        since = max(since, horizon)
        if since < reach.get(connection_id, start):
            reach[connection_id] = since
    return reach


def _refresh_boundaries(
    *,
    meter_id: int,
    installs: list[MeterInstallation],
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
) -> None:
    """Refresh every boundary whose value can depend on the meter's reads in
    ``[start, end]`` (they arrived, were edited, accepted or rejected) and create the
    month starts inside it; where they are the first reads of an installation, also
    those since the previous meter's last read or the installation
    (:func:`_first_reads_reach`): no read of the meter lies before them to span them.

    An estimate uses the nearest usable reads on each side, so the values that can
    change lie from the last usable read before ``start`` to the first after ``end``
    (all later ones when there is none, or when a rollover lies in the span: it shifts
    every later value); estimates from last year's consumption can use reads anywhere
    since then, so they are refreshed too.  Staff-edited values are left alone.  Values
    that change get a new ``updated_at``, which billing's re-rating picks up.
    """
    connections = {i.unit.connection_id: i.unit.connection for i in installs}
    if not connections:
        return
    before, after = readings_usable_around(meter_id=meter_id, start=start, end=end)
    low = min(start, before or min(i.installed_at for i in installs))
    high = max(end, after) if after is not None else None
    if (
        high is not None
        and ReadingIssue.objects.filter(
            meter_id=meter_id,
            code__in=(*rules.ROLLOVER_CODES, *rules.AMBIGUOUS_ROLLOVER_CODES),
            read_at__gte=low,
            read_at__lte=high,
        ).exists()
    ):
        high = None
    reach = _first_reads_reach(installs=installs, before=before, start=start, end=end, now=now)
    # in id order: each call locks its connection (boundary_registers_ensure)
    for pk, connection in sorted(connections.items()):
        zone = ZoneInfo(connection.network.time_zone)
        since = reach.get(pk, start)
        first = since.astimezone(dt.UTC).date()
        last = end.astimezone(dt.UTC).date() + dt.timedelta(days=1)
        wanted = [
            d
            for d in month_starts(first, last + dt.timedelta(days=1))
            if since <= local_midnight(d, zone) <= end
        ]
        # local dates: the boundary on the day of ``low`` lies at or before it
        span = Q(on__gte=low.astimezone(zone).date())
        if high is not None:
            span &= Q(on__lte=high.astimezone(zone).date())
        span |= Q(
            on__gte=low.astimezone(zone).date(),
            method__startswith="last_year",
        )
        existing = list(
            BoundaryRegister.objects.filter(span, connection=connection)
            .exclude(status=BoundaryRegister.Status.EDITED)
            .values_list("on", flat=True)
        )
        if wanted or existing:
            boundary_registers_ensure(
                connection_ids=[connection.pk], dates=[*wanted, *existing], refresh=True
            )


def vee_revalidate_meter(*, meter_id: int, start: dt.datetime, now: dt.datetime) -> int:
    """Validate the meter's readings from ``start`` to its latest again and refresh the
    boundaries they feed: after an installation, removal or exchange moved the time the
    meter counts for a connection (readings that arrived before the paperwork), or a
    change of its register settings (``metering.meters.meter_update``: maximum,
    resolution, unit, nominal flow) changed how VEE reads its registers.

    The pending requests this run covers (:class:`RevalidationRequest` of the meter from
    ``start`` on, committed before it began, so their changes are what it reads) are
    deleted in the transaction of its results: a request made meanwhile, or one from an
    earlier time, stays for its own task or the nightly run.  A run that fails leaves
    them all."""
    with transaction.atomic():
        covered = list(
            RevalidationRequest.objects.filter(meter_id=meter_id, since__gte=start).values_list(
                "pk", flat=True
            )
        )
        last = reading_last_at(meter_id=meter_id)
        findings = vee_run_meter(
            meter_id=meter_id, start=start, end=max(start, last or start), now=now
        )
        if covered:
            RevalidationRequest.objects.filter(pk__in=covered).delete()
    return findings


@dataclass
class RevalidationOutcome:
    """What a run over several meters did: the meters revalidated, those that failed
    (their requests stay, with the failure recorded), and the findings of the former."""

    revalidated: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    findings: int = 0


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:LAST_ERROR_LENGTH]


def _failure_record(rows, *, exc: BaseException, now: dt.datetime, what: str, prefix="") -> None:
    """One more failed attempt on ``rows`` (revalidation requests, or a meter's spans of
    the batches it holds unchecked: fields ``{prefix}attempts``, ``{prefix}last_error``,
    ``{prefix}last_attempt_at``), after the failed run's rollback, in a transaction of
    its own."""
    try:
        with transaction.atomic():
            rows.update(
                **{
                    f"{prefix}attempts": F(f"{prefix}attempts") + 1,
                    f"{prefix}last_error": _error_text(exc),
                    f"{prefix}last_attempt_at": now,
                }
            )
    except Exception:  # the database itself is failing: the log has to do
        log.exception("could not record %s", what)


def _revalidate_each(
    starts: Iterable[tuple[int, dt.datetime]], *, now: dt.datetime
) -> RevalidationOutcome:
    """:func:`vee_revalidate_meter` for each (meter, start), one meter's failure not
    stopping the others: its transaction is rolled back (its requests stay pending,
    nothing of the run is kept), the error is logged, and the requests the run would
    have covered get the attempt recorded, in a transaction of their own."""
    outcome = RevalidationOutcome()
    for meter_id, start in starts:
        try:
            outcome.findings += vee_revalidate_meter(meter_id=meter_id, start=start, now=now)
        except Exception as exc:
            log.exception("revalidation of meter %s from %s failed", meter_id, start.isoformat())
            outcome.failed.append(meter_id)
            _failure_record(
                RevalidationRequest.objects.filter(meter_id=meter_id, since__gte=start),
                exc=exc,
                now=now,
                what=f"meter {meter_id}: the failed revalidation",
            )
        else:
            outcome.revalidated.append(meter_id)
    return outcome


def revalidation_requests_run(*, now: dt.datetime) -> int:
    """Nightly: run the revalidations still pending ``METERING_REVALIDATION_GRACE`` after
    they were requested (their task was lost: the broker was down, a worker died), each
    meter once from its earliest such ``since``; returns the number of findings.
    Younger requests are left to their tasks (unless a run here covers them).  A meter
    whose run fails keeps its requests, with the failure recorded on them, and the
    others are run all the same."""
    pending = (
        RevalidationRequest.objects.filter(
            requested_at__lt=now - settings.METERING_REVALIDATION_GRACE
        )
        .values("meter_id")
        .annotate(since=Min("since"))
        .order_by("meter_id")
    )
    starts = [(row["meter_id"], row["since"]) for row in pending]
    return _revalidate_each(starts, now=now).findings


def revalidation_requests_run_for(
    *, meter_ids: Iterable[int], now: dt.datetime
) -> RevalidationOutcome:
    """Staff's "Revalidate now": run the given meters' pending revalidations at once,
    each meter from its earliest pending ``since`` (so all its requests are covered),
    whatever their age.  A meter without pending requests is skipped; one whose run
    fails keeps its requests, with the failure recorded, and the others are run."""
    return _revalidate_each(_pending_starts(meter_ids), now=now)


def revalidation_requests_queue_for(*, meter_ids: Iterable[int]) -> int:
    """Staff's "Revalidate now" for more meters than a web request should run: one
    ``vee_revalidate`` task per meter, from its earliest pending ``since``, sent after
    the transaction commits; the number of meters queued.  Their requests stay until
    each run succeeds (a lost or failed task is run again nightly, its error in the
    list)."""
    from metering.tasks import vee_revalidate

    starts = _pending_starts(meter_ids)
    for meter_id, since in starts:
        transaction.on_commit(
            lambda m=meter_id, s=since: vee_revalidate.delay(m, s.isoformat()), robust=True
        )
    return len(starts)


def _pending_starts(meter_ids: Iterable[int]) -> list[tuple[int, dt.datetime]]:
    """(meter, earliest pending ``since``) of those of ``meter_ids`` with requests."""
    pending = (
        RevalidationRequest.objects.filter(meter_id__in=set(meter_ids))
        .values("meter_id")
        .annotate(since=Min("since"))
        .order_by("meter_id")
    )
    return [(row["meter_id"], row["since"]) for row in pending]


# how far back the nightly run looks for removals whose re-validation task was lost
REMOVAL_BACKSTOP = dt.timedelta(days=35)


def vee_run_pending(*, now: dt.datetime) -> int:
    """Nightly: validate what finished batches brought in and were not yet checked,
    readings rejected as outside an installation that was recorded since, and run the
    revalidations whose task was lost (:func:`revalidation_requests_run`).

    A batch that ended ``failed`` on an internal error keeps the chunks it committed
    (``batches._fail_unexpected``): those readings count like any others, so they are
    validated too (a batch refused on its data stored nothing and has no spans)."""
    batches = list(
        IngestBatch.objects.filter(
            state__in=(IngestBatch.State.DONE, IngestBatch.State.FAILED),
            vee_done_at__isnull=True,
        ).values_list("pk", flat=True)
    )
    spans = (
        list(
            IngestBatchMeter.objects.filter(batch_id__in=batches)
            .values("meter_id")
            .annotate(first=Min("first_read_at"), last=Max("last_read_at"))
        )
        if batches
        else []
    )
    batch_spans = len(spans)  # the first spans are the batches'; the backstops follow
    # a backstop for a lost re-validation task: the open findings are few (the queue);
    # installed at the read's time as rules.installed_then says, in SQL
    installed = MeterInstallation.objects.filter(
        Q(removed_at__isnull=True) | Q(removed_at__gte=OuterRef("read_at")),
        meter_id=OuterRef("meter_id"),
        installed_at__lte=OuterRef("read_at"),
    )
    staff_rejected = ReadingIssue.objects.filter(
        meter_id=OuterRef("meter_id"),
        read_at=OuterRef("read_at"),
        state=ReadingIssue.State.REJECTED,
    )
    spans += list(
        ReadingIssue.objects.filter(
            Exists(installed), code="outside_installation", state=ReadingIssue.State.OPEN
        )
        .exclude(Exists(staff_rejected))
        .values("meter_id")
        .annotate(first=Min("read_at"), last=Max("read_at"))
    )
    # and for a lost task after a removal: reads since a recent removal that no
    # installation covers but that still count (few removals a night, each an index range)
    for meter_id, removed_at in MeterInstallation.objects.filter(
        removed_at__gte=now - REMOVAL_BACKSTOP, removed_at__lte=now
    ).values_list("meter_id", "removed_at"):
        uncovered = (
            Reading.objects.filter(meter_id=meter_id, read_at__gte=removed_at)
            .exclude(status=Reading.Status.REJECTED)
            .exclude(Exists(installed))
            .aggregate(first=Min("read_at"), last=Max("read_at"))
        )
        if uncovered["first"] is not None:
            spans.append({"meter_id": meter_id, **uncovered})
    findings = 0
    failed: set[int] = set()
    for number, span in enumerate(spans):
        # one meter's failure stops neither the others nor the revalidations below: its
        # span is rolled back whole (findings and boundaries) and logged
        try:
            with transaction.atomic():
                # one day before: the previous read is the reference of the
                # decrease/consumption rules
                findings += vee_run_meter(
                    meter_id=span["meter_id"],
                    start=span["first"] - dt.timedelta(days=1),
                    end=span["last"],
                    now=now,
                )
        except Exception as exc:
            log.exception(
                "nightly VEE of meter %s from %s to %s failed",
                span["meter_id"],
                span["first"].isoformat(),
                span["last"].isoformat(),
            )
            if number < batch_spans:
                failed.add(span["meter_id"])
                _failure_record(
                    IngestBatchMeter.objects.filter(
                        batch_id__in=batches, meter_id=span["meter_id"]
                    ),
                    exc=exc,
                    now=now,
                    what=f"meter {span['meter_id']}: the failed nightly VEE",
                    prefix="vee_",
                )
    if batches:
        # a batch is checked when all its meters were: one with a failed meter stays
        # for the next night (VEE is idempotent, so its other meters are run again)
        IngestBatch.objects.filter(pk__in=batches).exclude(
            pk__in=IngestBatchMeter.objects.filter(
                batch_id__in=batches, meter_id__in=failed
            ).values("batch_id")
        ).update(vee_done_at=now)
    return findings + revalidation_requests_run(now=now)


# --- the exception queue ------------------------------------------------------------------


def _reading(issue: ReadingIssue):
    return Reading.objects.filter(meter_id=issue.meter_id, read_at=issue.read_at)


def _refresh_touched(touched: dict[int, list[dt.datetime]], *, now: dt.datetime) -> None:
    """Refresh the boundaries fed by readings whose status staff changed."""
    for meter_id, moments in touched.items():
        _refresh_boundaries(
            meter_id=meter_id,
            installs=_installs(meter_id),
            start=min(moments),
            end=max(moments),
            now=now,
        )


class UnableToAcceptIssue(DomainError):
    code = "unable_to_accept_issue"


def _issue_step(
    issue: ReadingIssue,
) -> tuple[MeterInstallation, rules.Read, rules.Read] | None:
    """The installation of ``issue``'s reading, the previous usable read of that
    installation (the initial register when there is none) and the reading: the
    interval estimation counts the issue's wraps over.  None without either."""
    installs = _installs(issue.meter_id)
    inst = next(
        (i for i in installs if rules.installed_then(i.installed_at, i.removed_at, issue.read_at)),
        None,
    )
    values = _reading(issue).values_list(*READ_FIELDS).first()
    if inst is None or values is None:
        return None
    previous = (
        Reading.objects.filter(
            meter_id=issue.meter_id,
            read_at__gte=inst.installed_at,
            read_at__lt=issue.read_at,
            status__in=USABLE,
        )
        .order_by("-read_at")
        .values_list(*READ_FIELDS)
        .first()
    )
    last = (
        rules.Read(*previous)
        if previous
        else rules.Read(inst.installed_at, inst.initial_energy_kwh, inst.initial_volume_m3)
    )
    return inst, last, rules.Read(*values)


def _wraps_possible(issue: ReadingIssue) -> tuple[int | None, dt.datetime | None]:
    """How many wraps the register of an ambiguous-rollover ``issue`` may have made since
    the previous usable read of its installation (the initial register when there is
    none), and that read's time: the interval estimation counts the wraps over.  (None,
    …) when the reads no longer show a rollover there."""
    step = _issue_step(issue)
    if step is None:
        return None, None
    inst, last, read = step
    meter = inst.meter
    most = rules.rollover_wraps_possible(
        code=issue.code,
        last=last,
        read=read,
        register_max_kwh=meter.register_max_kwh,
        volume_register_max_m3=meter.volume_register_max,
        register_wrap_kwh=meter.register_wrap_kwh,
        volume_register_wrap_m3=meter.volume_register_wrap_m3,
        contracted_kw=inst.unit.connection.contracted_capacity_kw,
        nominal_flow_m3h=meter.nominal_flow_m3h,
    )
    return most, last.read_at


def _decrease_fits(
    issue: ReadingIssue,
) -> tuple[list[rules.DecreaseFit], dt.datetime | None]:
    """For a ``register_decrease`` ``issue``: how a rollover declared at its read fits
    each register that fell since the previous usable read of its installation (the
    initial register when there is none), and that read's time ([] where none fell)."""
    step = _issue_step(issue)
    if step is None:
        return [], None
    inst, last, read = step
    meter = inst.meter
    fits = rules.decrease_wraps_possible(
        last=last,
        read=read,
        register_wrap_kwh=meter.register_wrap_kwh,
        volume_register_wrap_m3=meter.volume_register_wrap_m3,
        contracted_kw=inst.unit.connection.contracted_capacity_kw,
        nominal_flow_m3h=meter.nominal_flow_m3h,
    )
    return fits, last.read_at


def _misfit(fit: rules.DecreaseFit, wraps: int, since: dt.datetime) -> str:
    """Why ``wraps`` wraps do not fit the fall ``fit`` describes."""
    fell = (
        f"the {fit.register} register fell {plain(fit.fall)} {fit.unit} since {since.isoformat()}"
    )
    if fit.most is None:
        return f"{fell}, and {fit.limit}: one wrap is counted, not {wraps}"
    most = (
        f"at most {fit.wraps} wrap(s) fit"
        if fit.wraps
        else "not even one wrap fits: is the read wrong?"
    )
    return (
        f"{fell}; {wraps} wrap(s) of {plain(fit.wrap)} {fit.unit} would count "
        f"{plain(fit.counted(wraps))} {fit.unit} in {fit.hours:.1f} h, above the "
        f"{plain(fit.most)} {fit.unit} that {fit.limit} allow; {most}"
    )


def _wraps_errors(issues: list[ReadingIssue], wraps: int) -> list[ErrorItem]:
    """Why ``wraps`` cannot be the wrap count of each of ``issues`` (empty: it can)."""
    errors = []
    declared: set[int] = set()
    for issue in issues:
        where = f"{issue.code} of meter {issue.meter} at {issue.read_at.isoformat()}"
        if issue.code not in rules.WRAP_CODES:
            errors.append(
                ErrorItem(
                    code="not_ambiguous_rollover",
                    field="wraps",
                    message=f"{where}: only an ambiguous rollover, or a register decrease "
                    "declared a rollover, takes a wrap count.",
                )
            )
            continue
        if wraps < 1:
            errors.append(
                ErrorItem(
                    code="min_value",
                    field="wraps",
                    message=f"{where}: a rolled-over register wrapped at least once, not {wraps}.",
                )
            )
            continue
        if issue.code == rules.DECREASE:
            if issue.meter_id in declared:
                # the later decreases are judged again against the wrapped register
                errors.append(
                    ErrorItem(
                        code="one_declared_rollover_per_meter",
                        field="wraps",
                        message=f"{where}: declare one rollover of a meter at a time, the "
                        "earliest; the later reads are then judged against the wrapped "
                        "register.",
                    )
                )
                continue
            declared.add(issue.meter_id)
            fits, since = _decrease_fits(issue)
            if not fits:
                errors.append(
                    ErrorItem(
                        code="no_decrease",
                        field="wraps",
                        message=f"{where}: the usable reads no longer show a decrease at "
                        "this read; rerun validation for the meter, or reject the finding.",
                    )
                )
            errors += [
                ErrorItem(
                    code="too_many_wraps",
                    field="wraps",
                    message=f"{where}: {_misfit(fit, wraps, since)}.",
                )
                for fit in fits
                if wraps > fit.wraps
            ]
            continue
        most, since = _wraps_possible(issue)
        if most is None:
            errors.append(
                ErrorItem(
                    code="no_rollover",
                    field="wraps",
                    message=f"{where}: the usable reads no longer show a rollover at this "
                    "read; rerun validation for the meter, or reject the finding.",
                )
            )
        elif wraps > most:
            errors.append(
                ErrorItem(
                    code="too_many_wraps",
                    field="wraps",
                    message=f"{where}: at most {most} wrap(s) fit the time since "
                    f"{since.isoformat()} within what the meter can count, not {wraps}.",
                )
            )
    return errors


def reading_issues_accept(
    *, issues, actor, reason: str, now: dt.datetime, wraps: int | None = None
) -> int:
    """Accept findings: the readings count as valid (the finding stays, marked accepted).

    ``wraps``: for ambiguous rollovers only (``rules.AMBIGUOUS_ROLLOVER_CODES``), how many
    times staff found the register wrapped since the previous usable read (VEE counts
    one); estimation then counts that many at the read.  It runs from 1 to what the time
    since that read allows (:func:`rules.rollover_wraps_possible`, the limit VEE's
    finding used); otherwise nothing is accepted (:class:`UnableToAcceptIssue`, an item
    per issue).  Without ``wraps`` an ambiguous rollover counts one wrap, refused the
    same way where the reads show no rollover at it.  The boundaries back to that read
    and all later ones are refreshed.

    ``wraps`` on a ``register_decrease`` declares the fall a rollover (VEE counts one
    only from the top tenth of the register into its bottom tenth, so a real wrap that
    lands higher, or starts lower, is a decrease): each register that fell since the
    previous usable read counts that many wraps at the read, which must keep what it
    counted within the same limit (:func:`rules.decrease_wraps_possible`: energy 1.5 ×
    contracted kW, volume qp; one wrap where the limit is unknown), else nothing is
    accepted (``too_many_wraps``, ``no_decrease``; one meter's earliest decrease at a
    time, ``one_declared_rollover_per_meter``).  The meter's reads from that read on are
    then validated again, in the same transaction: the read is valid and the reference
    of the later ones, which are judged against the wrapped register, and the
    boundaries count the wraps (:func:`_vee_run_meter`).  Accepted without ``wraps`` a
    decrease stays a decrease: the reading counts as it stands.
    """
    count = 0
    touched: dict[int, list[dt.datetime]] = defaultdict(list)
    declared: dict[int, dt.datetime] = {}
    with transaction.atomic():
        locked = list(
            issues.select_for_update(of=("self",))
            .filter(state=ReadingIssue.State.OPEN)
            .select_related("meter")
        )
        # without a count an ambiguous rollover is accepted as one wrap, which needs a
        # rollover: one the reads no longer show (a decision revalidation reopened after
        # the maximum changed) would only be reopened again
        errors = (
            _wraps_errors(locked, wraps)
            if wraps is not None
            else _wraps_errors([i for i in locked if i.code in rules.AMBIGUOUS_ROLLOVER_CODES], 1)
        )
        if errors:
            raise UnableToAcceptIssue.refusing(
                "Cannot accept with that wrap count" if wraps else "Cannot accept", errors
            )
        for issue in locked:
            issue.state, issue.resolved_by, issue.resolved_at, issue.resolution_reason = (
                "accepted",
                actor,
                now,
                reason,
            )
            issue.wraps = wraps
            issue.save(
                update_fields=["state", "resolved_by", "resolved_at", "resolution_reason", "wraps"]
            )
            if wraps is not None and issue.code == rules.DECREASE:
                declared[issue.meter_id] = issue.read_at
            still_open = ReadingIssue.objects.filter(
                meter_id=issue.meter_id,
                read_at=issue.read_at,
                state="open",
                severity__in=("warning", "error"),
            ).exists()
            if not still_open:
                _reading(issue).filter(status__in=("suspect", "rejected")).update(
                    status=Reading.Status.VALID
                )
            touched[issue.meter_id].append(issue.read_at)
            count += 1
        for meter_id, read_at in sorted(declared.items()):
            # the later reads were judged against the register before the wrap
            _vee_run_meter(
                meter_id=meter_id,
                start=read_at,
                end=max(read_at, reading_last_at(meter_id=meter_id) or read_at),
                now=now,
            )
    _refresh_touched({m: moments for m, moments in touched.items() if m not in declared}, now=now)
    return count


def reading_issues_reject(*, issues, actor, reason: str, now: dt.datetime) -> int:
    """Reject findings: their readings are rejected (no longer used for registers)."""
    count = 0
    touched: dict[int, list[dt.datetime]] = defaultdict(list)
    with transaction.atomic():
        for issue in issues.select_for_update(of=("self",)).filter(state=ReadingIssue.State.OPEN):
            issue.state, issue.resolved_by, issue.resolved_at, issue.resolution_reason = (
                "rejected",
                actor,
                now,
                reason,
            )
            issue.save(update_fields=["state", "resolved_by", "resolved_at", "resolution_reason"])
            _reading(issue).exclude(status="edited").update(status=Reading.Status.REJECTED)
            touched[issue.meter_id].append(issue.read_at)
            count += 1
    _refresh_touched(touched, now=now)
    return count


EDITABLE = (
    "energy_kwh",
    "volume_m3",
    "flow_temp_c",
    "return_temp_c",
    "flow_temp_m3c",
    "return_temp_m3c",
)

# the cumulative ones among them (the temperatures in °C may be below 0)
REGISTERS = ("energy_kwh", "volume_m3", "flow_temp_m3c", "return_temp_m3c")


# findings on a reading's time, not its values: an edit changes neither, and they stay in
# the queue (a reading delivered before its meter's installation was recorded)
TIME_FINDINGS = ("outside_installation", "future_timestamp")


class UnableToEditReading(DomainError):
    code = "unable_to_edit_reading"


def reading_edit(
    *, meter_id: int, read_at: dt.datetime, values: dict, actor, reason: str, now: dt.datetime
) -> ReadingEdit:
    """Correct a reading; the original values are kept with who, when and why.

    The edit is a step of VEE: the edited reading is judged with its neighbours by the
    rules an incoming reading meets (:func:`vee_run_meter`, in the edit's transaction).
    A value they reject (``register_spike``: above both neighbours, which agree without
    it; ``register_decrease`` from the previous usable reading) is refused (:class:`UnableToEditReading`, an item per finding) and nothing
    changes.  Otherwise the reading is ``edited``, its open findings are closed as
    edited (who, when, why), the neighbours are judged again against the new values
    (findings that came from the old ones go, new ones land in the queue), its warnings
    stay in the queue, and the boundary registers it feeds are recomputed."""
    if not reason.strip():
        raise DomainError(
            "An edit needs a reason.",
            errors=[ErrorItem(code="required", field="reason", message="Say why.")],
        )
    unknown = set(values) - set(EDITABLE)
    if unknown:
        raise DomainError(
            "Only registers and temperatures can be edited.",
            errors=[
                ErrorItem(code="not_editable", field=f, message=f"{f} cannot be edited.")
                for f in sorted(unknown)
            ],
        )
    negative = [f for f in REGISTERS if values.get(f) is not None and Decimal(str(values[f])) < 0]
    if negative:  # a register counts up from 0: the boundaries would take it as it is
        raise DomainError(
            "A register is never below 0.",
            errors=[
                ErrorItem(code="negative", field=f, message=f"{f} is below 0.") for f in negative
            ],
        )
    with transaction.atomic():
        rows = Reading.objects.select_for_update().filter(meter_id=meter_id, read_at=read_at)
        original = rows.values(*EDITABLE, "status").first()
        if original is None:
            raise DomainError(
                "No such reading.",
                errors=[ErrorItem(code="not_found", message="No reading at that time.")],
            )
        edit = ReadingEdit.objects.create(
            meter_id=meter_id,
            read_at=read_at,
            edited_by=actor,
            edited_at=now,
            reason=reason,
            original={k: (str(v) if v is not None else None) for k, v in original.items()},
            edited={k: str(v) for k, v in values.items()},
        )
        rows.update(**values, status=Reading.Status.EDITED)
        ReadingIssue.objects.filter(meter_id=meter_id, read_at=read_at, state="open").update(
            state=ReadingIssue.State.EDITED,
            resolved_by=actor,
            resolved_at=now,
            resolution_reason=reason[:300],
        )
        # judged as an incoming reading is, the neighbours with it; the boundaries follow
        errors = [
            ErrorItem(code=f.code, message=f.message)
            for f in _vee_run_meter(meter_id=meter_id, start=read_at, end=read_at, now=now)
            if f.read_at == read_at and f.severity == "error" and f.code not in TIME_FINDINGS
        ]
        if errors:  # rolls the edit back whole
            raise UnableToEditReading.refusing(
                f"The edited reading at {read_at.isoformat()} fails validation", errors
            )
    return edit


def reading_conflicts_resolve(*, conflicts, take_incoming: bool, actor, now: dt.datetime) -> int:
    """Close open conflicts: keep the stored reading, or apply the delivered values as an
    edit (so the original stays on record with who, when and why).

    Delivered values the rules reject (:func:`reading_edit`) are not applied: that
    conflict stays open, the others are resolved, and then :class:`UnableToEditReading`
    says how many were and why each refused one was (``resolved``: their number)."""
    from metering.models import ReadingConflict

    count = 0
    refused: list[ErrorItem] = []
    open_ids = conflicts.filter(state=ReadingConflict.State.OPEN).order_by("pk")
    for conflict_id in list(open_ids.values_list("pk", flat=True)):
        # one conflict at a time, locked: the edit and the close commit together, and a
        # second clerk resolving the same conflict at once finds it closed
        try:
            with transaction.atomic():
                conflict = ReadingConflict.objects.select_for_update().get(pk=conflict_id)
                if conflict.state != ReadingConflict.State.OPEN:
                    continue
                _conflict_resolve(conflict, take_incoming=take_incoming, actor=actor, now=now)
        except UnableToEditReading as exc:
            refused += [
                ErrorItem(code=e.code, message=f"conflict {conflict_id}: {e.message}")
                for e in exc.errors
            ]
            continue
        count += 1
    if refused:
        error = UnableToEditReading.refusing(
            f"Applied the delivered values of {count} conflict(s); the others stay open", refused
        )
        error.resolved = count
        raise error
    return count


def _conflict_resolve(conflict, *, take_incoming: bool, actor, now: dt.datetime) -> None:
    from metering.ingest.rows import DECIMAL_PLACES
    from metering.models import ReadingConflict
    from metering.units import delivered_to_kwh

    if take_incoming:
        incoming = conflict.incoming
        values = {}
        if incoming.get("energy_value") is not None:
            unit = incoming.get("energy_unit") or "kWh"
            # as an intake of the same delivery stores it (a file's conflict keeps the
            # value as sent, which may have more decimals than the column)
            values["energy_kwh"] = delivered_to_kwh(Decimal(str(incoming["energy_value"])), unit)
        for field in (
            "volume_m3",
            "flow_temp_c",
            "return_temp_c",
            "flow_temp_m3c",
            "return_temp_m3c",
        ):
            if incoming.get(field) is not None:
                # the column's decimals, half up, as the intake rounds them
                values[field] = Decimal(str(incoming[field])).quantize(
                    Decimal(1).scaleb(-DECIMAL_PLACES[field]), rounding=ROUND_HALF_UP
                )
        reading_edit(
            meter_id=conflict.meter_id,
            read_at=conflict.read_at,
            values=values,
            actor=actor,
            reason=f"Vendor re-delivered different values (batch {conflict.batch_id}, row {conflict.row})",
            now=now,
        )
    conflict.state = (
        ReadingConflict.State.TOOK_INCOMING
        if take_incoming
        else ReadingConflict.State.KEPT_ORIGINAL
    )
    conflict.resolved_by, conflict.resolved_at = actor, now
    conflict.save(update_fields=["state", "resolved_by", "resolved_at"])
