"""VEE writes: run the rules over new or chosen readings, resolve the exception queue.

Readings land as ``valid``; VEE (nightly for batches not yet checked, or on a staff
rerun for a meter and period) records findings as :class:`ReadingIssue` rows and marks
readings ``rejected`` (error) or ``suspect`` (warning).  Staff accept (→ valid), reject
(→ rejected) or edit (→ edited, original kept in :class:`ReadingEdit`).  Afterwards the
affected connections' boundary registers are refreshed.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from django.db import transaction
from django.db.models import Max, Min

from heatutility.errors import DomainError, ErrorItem
from heatutility.timeutil import local_midnight, month_starts
from metering.models import (
    IngestBatch,
    IngestBatchMeter,
    MeterInstallation,
    Reading,
    ReadingEdit,
    ReadingIssue,
)
from metering.vee import rules
from metering.vee.estimation import boundary_registers_ensure

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


def vee_run_meter(*, meter_id: int, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> int:
    """Validate the meter's readings in ``[start, end]``; returns the number of findings."""
    installs = list(
        MeterInstallation.objects.filter(meter_id=meter_id).select_related(
            "unit__connection__network", "meter"
        )
    )
    reads = [
        rules.Read(*values)
        for values in Reading.objects.filter(
            meter_id=meter_id, read_at__gte=start, read_at__lte=end
        )
        .exclude(status=Reading.Status.EDITED)
        .order_by("read_at")
        .values_list(*READ_FIELDS)
    ]
    if not reads:
        return 0
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
            if i.installed_at <= reads[-1].read_at
            and (i.removed_at is None or reads[-1].read_at < i.removed_at)
        ),
        None,
    )
    meter = installs[0].meter if installs else None
    findings = rules.validate(
        reads=reads,
        previous=rules.Read(*prev_values) if prev_values else None,
        register_max_kwh=meter.register_max_kwh if meter else Decimal("1e14"),
        volume_register_max_m3=meter.volume_register_max if meter else Decimal("1e12"),
        register_wrap_kwh=meter.register_wrap_kwh if meter else None,
        volume_register_wrap_m3=meter.volume_register_wrap_m3 if meter else None,
        contracted_kw=active.unit.connection.contracted_capacity_kw if active else None,
        installed=[(i.installed_at, i.removed_at) for i in installs],
        now=now,
    )
    by_status = defaultdict(set)
    for f in findings:
        if f.severity in STATUS_FOR:
            by_status[STATUS_FOR[f.severity]].add(f.read_at)
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
                for f in findings
            ],
            ignore_conflicts=True,
        )
        rejected = by_status[Reading.Status.REJECTED]
        suspect = by_status[Reading.Status.SUSPECT] - rejected
        # readings staff already accepted keep their status
        accepted = set(
            ReadingIssue.objects.filter(
                meter_id=meter_id,
                read_at__gte=start,
                read_at__lte=end,
                state=ReadingIssue.State.ACCEPTED,
            ).values_list("read_at", flat=True)
        )
        for status, moments in (
            (Reading.Status.REJECTED, rejected - accepted),
            (Reading.Status.SUSPECT, suspect - accepted),
        ):
            if moments:
                Reading.objects.filter(
                    meter_id=meter_id, read_at__in=sorted(moments), status=Reading.Status.VALID
                ).update(status=status)
    _refresh_boundaries(installs=installs, start=start, end=end)
    return len(findings)


def _refresh_boundaries(*, installs, start: dt.datetime, end: dt.datetime) -> None:
    """Month starts inside the span get values; existing values in or after it are refreshed."""
    for connection in {i.unit.connection for i in installs}:
        zone = connection.network.time_zone
        first = start.astimezone(dt.UTC).date()
        last = end.astimezone(dt.UTC).date() + dt.timedelta(days=1)
        wanted = [d for d in month_starts(first, last + dt.timedelta(days=1)) if start <= local_midnight(d, zone) <= end]
        from metering.models import BoundaryRegister

        later = list(
            BoundaryRegister.objects.filter(
                connection=connection, on__gte=first - dt.timedelta(days=1)
            )
            .exclude(status="edited")
            .values_list("on", flat=True)
        )
        if wanted or later:
            boundary_registers_ensure(
                connection_ids=[connection.pk], dates=[*wanted, *later], refresh=True
            )


def vee_run_pending(*, now: dt.datetime) -> int:
    """Nightly: validate what finished batches brought in and were not yet checked."""
    batches = list(
        IngestBatch.objects.filter(
            state=IngestBatch.State.DONE, vee_done_at__isnull=True
        ).values_list("pk", flat=True)
    )
    if not batches:
        return 0
    spans = (
        IngestBatchMeter.objects.filter(batch_id__in=batches)
        .values("meter_id")
        .annotate(first=Min("first_read_at"), last=Max("last_read_at"))
    )
    findings = 0
    for span in spans:
        # one day before: the previous read is the reference of the decrease/consumption rules
        findings += vee_run_meter(
            meter_id=span["meter_id"],
            start=span["first"] - dt.timedelta(days=1),
            end=span["last"],
            now=now,
        )
    IngestBatch.objects.filter(pk__in=batches).update(vee_done_at=now)
    return findings


# --- the exception queue ------------------------------------------------------------------


def _reading(issue: ReadingIssue):
    return Reading.objects.filter(meter_id=issue.meter_id, read_at=issue.read_at)


def reading_issues_accept(*, issues, actor, reason: str, now: dt.datetime) -> int:
    """Accept findings: the readings count as valid (the finding stays, marked accepted)."""
    count = 0
    with transaction.atomic():
        for issue in issues.select_for_update(of=("self",)).filter(state=ReadingIssue.State.OPEN):
            issue.state, issue.resolved_by, issue.resolved_at, issue.resolution_reason = (
                "accepted",
                actor,
                now,
                reason,
            )
            issue.save(update_fields=["state", "resolved_by", "resolved_at", "resolution_reason"])
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
            count += 1
    return count


def reading_issues_reject(*, issues, actor, reason: str, now: dt.datetime) -> int:
    count = 0
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
            count += 1
    return count


EDITABLE = (
    "energy_kwh",
    "volume_m3",
    "flow_temp_c",
    "return_temp_c",
    "flow_temp_m3c",
    "return_temp_m3c",
)


def reading_edit(
    *, meter_id: int, read_at: dt.datetime, values: dict, actor, reason: str, now: dt.datetime
) -> ReadingEdit:
    """Correct a reading; the original values are kept with who, when and why."""
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
    installs = list(
        MeterInstallation.objects.filter(meter_id=meter_id).select_related(
            "unit__connection__network"
        )
    )
    _refresh_boundaries(
        installs=installs,
        start=read_at - dt.timedelta(days=40),
        end=read_at + dt.timedelta(days=40),
    )
    return edit


def reading_conflicts_resolve(*, conflicts, take_incoming: bool, actor, now: dt.datetime) -> int:
    """Close open conflicts: keep the stored reading, or apply the delivered values as an
    edit (so the original stays on record with who, when and why)."""
    from metering.models import KWH_PER_UNIT, ReadingConflict

    count = 0
    for conflict in conflicts.filter(state=ReadingConflict.State.OPEN).order_by("pk"):
        if take_incoming:
            incoming = conflict.incoming
            values = {}
            if incoming.get("energy_value") is not None:
                unit = incoming.get("energy_unit") or "kWh"
                values["energy_kwh"] = (
                    Decimal(str(incoming["energy_value"])) * KWH_PER_UNIT[unit]
                ).quantize(Decimal("0.000001"))
            for field in (
                "volume_m3",
                "flow_temp_c",
                "return_temp_c",
                "flow_temp_m3c",
                "return_temp_m3c",
            ):
                if incoming.get(field) is not None:
                    values[field] = Decimal(str(incoming[field]))
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
        count += 1
    return count
