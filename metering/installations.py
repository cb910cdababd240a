"""Meter installation, removal and exchange (writes).

An exchange closes the old installation with its final registers and opens the new one
with its initial registers at the same instant, atomically, so that consumption across
the exchange is exact (DOMAIN.md §2).

Energy registers are given in kWh, or in the meter's register unit where the caller
says which (``register_unit``; in an exchange ``old_register_unit`` and
``new_register_unit``, one per meter): that unit must be the meter's, and the register
is converted to kWh here (``metering.units.register_to_kwh``), under the transaction
that reads the meter.

A register or a time typed wrong at installation or removal is corrected in place
(:func:`meter_installation_correct`), with a reason, under the same checks; a moved time
moves an exchange as one.

A connection is metered by one meter at a time, whichever of its interface units holds
it: its boundary registers are one series per connection (``metering.vee.estimation``),
so a second meter at the same time would have one meter's consumption lost.  An
installation, an exchange and a moved time are refused where they would overlap an
installation in another unit of the connection (:func:`_connection_overlaps`), checked
under the connection's lock.  Locks are taken in one order: the connection, the unit,
the meter, the installation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from customers.models import BuildingInterfaceUnit, ServiceConnection
from heatutility.audit import clean_and_save
from heatutility.errors import ConflictError, DomainError, ErrorItem
from heatutility.money import plain
from metering.models import HeatMeter, MeterInstallation, RevalidationRequest
from metering.units import kwh_to_register_half_even, register_to_kwh


class UnableToInstallMeter(DomainError):
    code = "unable_to_install_meter"


class InstallationAlreadyRemoved(ConflictError):
    """The installation was ended (by a removal or an exchange) before this removal."""

    code = "already_removed"


class InstallationChanged(ConflictError):
    """The unit's meter is no longer the one the caller set out to replace."""

    code = "installation_changed"


def revalidation_queue(
    *, meter_id: int, since: dt.datetime, now: dt.datetime | None = None
) -> None:
    """Validate the meter's readings from ``since`` again and refresh the boundaries they
    feed: readings that arrived before the installation was recorded were rejected as
    outside it, readings after a removal now are, and the connection's registers around
    the change moved; or the meter's register settings, which VEE's rollover checks and
    the boundaries' wraps depend on, changed (``metering.meters``).

    Call inside the change's transaction: the request is a row
    (:class:`RevalidationRequest`) that commits or rolls back with the change, and the
    task goes to the broker after the commit.  Should the task be lost (the broker down,
    a worker killed), nightly VEE runs the request once it is older than
    ``METERING_REVALIDATION_GRACE`` (``metering.vee.services.revalidation_requests_run``);
    so a broker that refuses the task is logged, not an error for the committed change."""
    from metering.tasks import vee_revalidate

    RevalidationRequest.objects.create(
        meter_id=meter_id, since=since, requested_at=now or timezone.now()
    )
    transaction.on_commit(lambda: vee_revalidate.delay(meter_id, since.isoformat()), robust=True)


# the codes of :func:`_not_showable`: a register no display of the meter can show
NOT_SHOWABLE = ("above_register_max", "off_resolution")


def _not_showable(
    meter: HeatMeter, *, energy_kwh: Decimal, volume_m3: Decimal, at: str
) -> list[ErrorItem]:
    """Registers ``meter`` cannot show (``at``: "initial" or "final", the fields'
    prefix): above its register maximum, or between two steps of its resolution.  A unit
    or a digit typed wrong (kWh taken for MWh), it would read as a rollover or a decrease
    against every reading; a thousands separator typed as a decimal point (1.234 for
    1,234 on a meter counting whole kWh) would bill the difference as consumption.
    Energy is compared in the meter's register unit, rounded to the maximum's 6 places,
    as ``metering.meters`` checks a new maximum against the stored registers."""
    errors = []
    unit = meter.register_unit
    energy = kwh_to_register_half_even(energy_kwh, unit)
    for field, value, shown, maximum, step, what in (
        (f"{at}_energy_kwh", energy, unit, meter.register_max, meter.resolution, "energy"),
        (
            f"{at}_volume_m3",
            volume_m3,
            "m³",
            meter.volume_register_max,
            meter.volume_resolution,
            "volume",
        ),
    ):
        if value > maximum:
            errors.append(
                ErrorItem(
                    code="above_register_max",
                    field=field,
                    message=f"The {at} {what} register {plain(value)} {shown} is above the "
                    f"register maximum of meter {meter}, {plain(maximum)} {shown}: is the "
                    "unit or a digit wrong?",
                )
            )
        elif value % step:
            errors.append(
                ErrorItem(
                    code="off_resolution",
                    field=field,
                    message=f"The {at} {what} register {plain(value)} {shown} is not a "
                    f"step of meter {meter}'s register, which counts in steps of "
                    f"{plain(step)} {shown}: is a thousands separator typed as a decimal "
                    "point, or the unit wrong?  (If the meter counts in finer steps, "
                    "correct its resolution first.)",
                )
            )
    return errors


def _first_read(
    meter: HeatMeter,
    installed_at: dt.datetime,
    register: str,
    *,
    removed_at: dt.datetime | None = None,
    decreases: bool = False,
) -> tuple | None:
    """(time, ``register``) of the meter's first reading since ``installed_at`` (up to
    ``removed_at``, the removal's final read included) that counts for the installation
    once it is recorded, or None: usable or suspect (a warning leaves the register as the
    meter showed it), or rejected only as outside any installation (readings delivered
    before the paperwork, which the installation's revalidation takes in).  Readings
    staff rejected, and those VEE rejected for a register fault (a decrease, a spike),
    are not the meter's register.

    ``decreases``: rejected only for an open ``register_decrease`` counts too.  For a
    correction of a recorded installation: its first reading has no usable read of the
    installation before it, so its decrease is one from the initial register being
    corrected (VEE's reference, ``metering.vee.rules.validate``), not a fault of the
    reading."""
    from django.db.models import Q

    from metering.models import Reading
    from metering.vee.estimation import USABLE

    within = {} if removed_at is None else {"read_at__lte": removed_at}
    return (
        Reading.objects.filter(
            Q(status__in=(*USABLE, Reading.Status.SUSPECT)) | _rejected_only_as_outside(decreases),
            meter_id=meter.pk,
            read_at__gte=installed_at,
            **within,
            **{f"{register}__isnull": False},
        )
        .order_by("read_at")
        .values_list("read_at", register)
        .first()
    )


def _rejected_only_as_outside(decreases: bool = False):
    """Readings VEE rejected only as outside any installation (delivered before the
    paperwork, or beyond a time typed wrong), which the installation's revalidation
    takes in; ``decreases``: or only for an open ``register_decrease`` (see
    :func:`_first_read`).  Not those staff rejected, nor a register fault."""
    from django.db.models import Exists, OuterRef, Q

    from metering.models import Reading, ReadingIssue

    findings = ReadingIssue.objects.filter(
        meter_id=OuterRef("meter_id"), read_at=OuterRef("read_at")
    )
    tolerated = ["outside_installation"]
    if decreases:
        tolerated.append("register_decrease")
    rejected_only_as = findings.filter(code__in=tolerated, state=ReadingIssue.State.OPEN)
    faulted = findings.filter(
        Q(state=ReadingIssue.State.REJECTED)
        | Q(severity=ReadingIssue.Severity.ERROR, state=ReadingIssue.State.OPEN)
    ).exclude(code="outside_installation")
    if decreases:
        faulted = faulted.exclude(code="register_decrease", state=ReadingIssue.State.OPEN)
    return Q(Exists(rejected_only_as), ~Exists(faulted), status=Reading.Status.REJECTED)


def _declared_rollover(meter: HeatMeter, read_at: dt.datetime) -> bool:
    """Did staff declare the decrease at the meter's reading at ``read_at`` a rollover (a
    ``register_decrease`` accepted with a wrap count, ``metering.vee.services
    .reading_issues_accept``)?  Its register rolled over from the one before, though not
    in the band VEE counts on its own; the revalidation after a change rechecks that
    the count still fits (``_decisions_recheck``)."""
    from metering.models import ReadingIssue
    from metering.vee.rules import DECREASE

    return ReadingIssue.objects.filter(
        meter=meter,
        read_at=read_at,
        code=DECREASE,
        state=ReadingIssue.State.ACCEPTED,
        wraps__isnull=False,
    ).exists()


def _above_first_read(
    meter: HeatMeter,
    *,
    installed_at: dt.datetime,
    energy_kwh: Decimal,
    volume_m3: Decimal,
    now: dt.datetime,
    time_zone: str,
    removed_at: dt.datetime | None = None,
    decreases: bool = False,
) -> list[ErrorItem]:
    """Initial registers above the meter's first reading since ``installed_at`` (a
    back-dated installation recorded after the readings), where that reading does not
    roll over from them (from the top tenth of the range into the bottom tenth, or staff
    declared its decrease a rollover, :func:`_declared_rollover`): the
    connection's register would fall at the installation, as VEE's check of the first
    read against the initial register (``metering.vee.rules.validate``) finds.  As VEE,
    only for installations since the retention horizon as of ``now`` in ``time_zone``
    (the network's): an older one's first readings may be archived.  ``removed_at``, ``decreases``: see
    :func:`_first_read`."""
    from metering.retention import readings_horizon
    from metering.vee.rules import is_rollover

    if installed_at < readings_horizon(now=now, time_zone=time_zone):
        return []
    errors = []
    for register, field, initial, maximum, unit in (
        ("energy_kwh", "initial_energy_kwh", energy_kwh, meter.register_max_kwh, "kWh"),
        ("volume_m3", "initial_volume_m3", volume_m3, meter.volume_register_max, "m³"),
    ):
        first = _first_read(
            meter, installed_at, register, removed_at=removed_at, decreases=decreases
        )
        if first is None:
            continue
        read_at, value = first
        if (
            value < initial
            and not is_rollover(initial, value, maximum)
            and not _declared_rollover(meter, read_at)
        ):
            errors.append(
                ErrorItem(
                    code="initial_above_first_read",
                    field=field,
                    message=f"The initial {register.split('_')[0]} register {plain(initial)} "
                    f"{unit} is above the first reading since the installation, "
                    f"{plain(value)} {unit} at {read_at.isoformat()}, and the register did "
                    f"not roll over: is a digit wrong?",
                )
            )
    return errors


def _energy_kwh(
    meter: HeatMeter, value: Decimal, *, register_unit: str | None, field: str
) -> Decimal:
    """The energy register ``value`` of ``meter``, read in ``register_unit``, in kWh; with
    no unit, ``value`` is kWh already (as the API took registers before it took a unit).
    A unit other than the meter's is refused on ``field``, never converted, as the
    admin's forms refuse it: a register read in the wrong unit or meant for another meter
    must not be stored scaled by 1,000 or 277.78."""
    if register_unit is None:
        return value
    if register_unit != meter.register_unit:
        message = (
            f"Meter {meter} counts its energy register in {meter.register_unit}, not "
            f"{register_unit}: send the register in {meter.register_unit}, as its display "
            "shows it."
        )
        raise UnableToInstallMeter(
            message, errors=[ErrorItem(code="unit_mismatch", field=field, message=message)]
        )
    return register_to_kwh(value, register_unit)


def _lock_connection_then_unit(unit_id: int) -> BuildingInterfaceUnit:
    """Lock the unit's connection (``FOR NO KEY UPDATE``: rows referencing it, such as
    boundary registers, still go in), then the unit: the order every install, exchange
    and correction of times takes, after which no other installation on the connection
    can start or move until the commit (:func:`_connection_overlaps` sees them all).
    A unit moved to another connection in between (only one without meters can be:
    ``customers.services.interface_unit_edit_errors``) has that connection locked."""
    while True:
        connection_id = (
            BuildingInterfaceUnit.objects.filter(pk=unit_id)
            .values_list("connection_id", flat=True)
            .get()
        )
        ServiceConnection.objects.select_for_update(no_key=True).values_list("pk").get(
            pk=connection_id
        )
        unit = BuildingInterfaceUnit.objects.select_for_update().get(pk=unit_id)
        if unit.connection_id == connection_id:
            return unit


def _connection_overlaps(
    *,
    unit: BuildingInterfaceUnit,
    installed_at: dt.datetime,
    removed_at: dt.datetime | None,
    field: str,
) -> list[ErrorItem]:
    """An item (on ``field``) per installation in another unit of ``unit``'s connection
    overlapping ``[installed_at, removed_at)``.  A connection is metered by one meter at
    a time: estimation builds one series per connection, so a second meter's consumption
    would be lost.  (The unit's own installations never overlap: its constraint.)  Call
    under :func:`_lock_connection_then_unit`."""
    others = (
        MeterInstallation.objects.filter(unit__connection_id=unit.connection_id)
        .exclude(unit_id=unit.pk)
        .filter(Q(removed_at__isnull=True) | Q(removed_at__gt=installed_at))
        .select_related("meter", "unit")
        .order_by("installed_at", "pk")
    )
    if removed_at is not None:
        others = others.filter(installed_at__lt=removed_at)
    items = []
    for other in others:
        until = "on" if other.removed_at is None else f"until {other.removed_at.isoformat()}"
        items.append(
            ErrorItem(
                code="connection_has_meter",
                field=field,
                message=f"Meter {other.meter} is installed in interface unit {other.unit} of "
                f"the same connection from {other.installed_at.isoformat()} {until}: a "
                "connection is metered by one meter at a time; remove that meter first, "
                "or exchange it.",
            )
        )
    return items


def meter_install(
    *,
    meter: HeatMeter,
    unit: BuildingInterfaceUnit,
    installed_at: dt.datetime,
    initial_energy_kwh: Decimal = Decimal("0"),
    initial_volume_m3: Decimal = Decimal("0"),
    initial_flow_temp_m3c: Decimal | None = None,
    initial_return_temp_m3c: Decimal | None = None,
    register_unit: str | None = None,
    reason: str = "",
    actor=None,
    now: dt.datetime | None = None,
) -> MeterInstallation:
    """Install ``meter`` in ``unit`` at ``installed_at`` with its registers then; the
    m³·°C registers are optional (without them the connection's temperature registers
    continue from the meter's first read).  ``register_unit``: the unit
    ``initial_energy_kwh`` is given in, which must be the meter's (else kWh).

    Where readings since ``installed_at`` are stored already (an installation recorded
    after them), initial registers above the first one are refused unless it rolls over
    from them (``initial_above_first_read``, an item per register); readings that
    arrive later are checked against them by VEE (a ``register_decrease``), both as of
    ``now`` (the retention horizon; the clock's by default).

    A connection has one meter at a time: an installation overlapping one in another
    unit of the connection (from ``installed_at`` on) is refused
    (``connection_has_meter`` on ``unit``, naming that meter and unit), checked under
    the connection's lock."""
    if installed_at.tzinfo is None:
        raise UnableToInstallMeter(
            "installed_at must carry a time zone offset.",
            errors=[ErrorItem(code="naive_datetime", field="installed_at", message="no offset")],
        )
    now = now or timezone.now()
    with transaction.atomic():
        # Same lock order everywhere (connection, unit, then meter) so installations and
        # exchanges cannot deadlock.  The meter's lock holds off its deletion (FOR
        # UPDATE) and other installations, not the deliveries being stored (FOR KEY
        # SHARE, metering.ingest.store).
        unit = _lock_connection_then_unit(unit.pk)
        locked = HeatMeter.objects.select_for_update(no_key=True).get(pk=meter.pk)
        initial_energy_kwh = _energy_kwh(
            locked, initial_energy_kwh, register_unit=register_unit, field="register_unit"
        )
        errors = _connection_overlaps(
            unit=unit, installed_at=installed_at, removed_at=None, field="unit"
        ) + (
            _not_showable(
                locked, energy_kwh=initial_energy_kwh, volume_m3=initial_volume_m3, at="initial"
            )
            or _above_first_read(
                locked,
                installed_at=installed_at,
                energy_kwh=initial_energy_kwh,
                volume_m3=initial_volume_m3,
                now=now,
                time_zone=unit.connection.network.time_zone,
            )
        )
        if errors:
            raise UnableToInstallMeter.refusing("Cannot install meter", errors)
        installation = MeterInstallation(
            meter=meter,
            unit=unit,
            installed_at=installed_at,
            initial_energy_kwh=initial_energy_kwh,
            initial_volume_m3=initial_volume_m3,
            initial_flow_temp_m3c=initial_flow_temp_m3c,
            initial_return_temp_m3c=initial_return_temp_m3c,
            reason=reason,
        )
        clean_and_save(
            installation, actor=actor, reason=reason or "install", what="meter installation"
        )
        revalidation_queue(meter_id=meter.pk, since=installed_at, now=now)
        return installation


def _last_read(
    installation: MeterInstallation, removed_at: dt.datetime, register: str
) -> Decimal | None:
    """``register`` of the last usable read while installed (up to ``removed_at``) that
    has one, or None: the value a removal's final register is checked against.  A read
    rejected only as outside any installation counts (a removal time corrected to a
    later one takes in the reads after the time typed)."""
    from django.db.models import Q

    from metering.models import Reading
    from metering.vee.estimation import USABLE

    return (
        Reading.objects.filter(
            Q(status__in=USABLE) | _rejected_only_as_outside(),
            meter=installation.meter,
            read_at__gte=installation.installed_at,
            read_at__lte=removed_at,
            **{f"{register}__isnull": False},
        )
        .order_by("-read_at")
        .values_list(register, flat=True)
        .first()
    )


def _rolled_over(
    installation: MeterInstallation, removed_at: dt.datetime, register: str, final: Decimal
) -> bool:
    """Did the meter's ``register`` (``energy_kwh`` or ``volume_m3``) roll over while it
    was installed: VEE found a rollover, or the final register is the bottom of the range
    after a last read at its top (the rollover came after the last read)?"""
    from metering.models import ReadingIssue
    from metering.vee.rules import is_rollover

    meter = installation.meter
    code = "rollover" if register == "energy_kwh" else "volume_rollover"
    if ReadingIssue.objects.filter(
        meter=meter, code=code, read_at__gte=installation.installed_at, read_at__lte=removed_at
    ).exists():
        return True
    last = _last_read(installation, removed_at, register)
    maximum = meter.register_max_kwh if register == "energy_kwh" else meter.volume_register_max
    return last is not None and final < last and is_rollover(last, final, maximum)


def below_last_read(
    installation: MeterInstallation,
    removed_at: dt.datetime,
    register: str,
    final: Decimal,
    *,
    maximum: Decimal | None = None,
) -> Decimal | None:
    """The last usable read of ``register`` while installed, when the final register lies
    below it without rolling over from it (else None).  ``maximum``: the register's
    range (kWh, m³) a rollover is judged by, the meter's by default (a new maximum is
    judged by itself: ``metering.meters``).

    The connection register continues from the final register (DOMAIN.md §2: old final −
    old previous read); one below the last read would make the consumption between that
    read and the exchange negative, whatever the initial register was.
    """
    from metering.vee.rules import is_rollover

    meter = installation.meter
    last = _last_read(installation, removed_at, register)
    if maximum is None:
        maximum = meter.register_max_kwh if register == "energy_kwh" else meter.volume_register_max
    if last is not None and final < last and not is_rollover(last, final, maximum):
        return last
    return None


def _temperature_below(
    installation: MeterInstallation, removed_at: dt.datetime, register: str, final: Decimal
) -> Decimal | None:
    """The m³·°C ``register`` (``flow_temp_m3c`` / ``return_temp_m3c``) of the last usable
    read while installed that has one (else the initial register, where recorded) when
    ``final`` lies below it (else None).  These registers have no rollover correction: a
    final register below them would make the water before the removal negative."""
    last = _last_read(installation, removed_at, register)
    if last is None:
        last = getattr(installation, f"initial_{register}")
    return last if last is not None and final < last else None


def meter_remove(
    *,
    installation: MeterInstallation,
    removed_at: dt.datetime,
    final_energy_kwh: Decimal,
    final_volume_m3: Decimal,
    final_flow_temp_m3c: Decimal | None = None,
    final_return_temp_m3c: Decimal | None = None,
    register_unit: str | None = None,
    reason: str = "",
    actor=None,
    now: dt.datetime | None = None,
) -> MeterInstallation:
    """Take the meter out at ``removed_at`` with its final registers.  The final m³·°C
    registers are optional: where given they end the meter's volume-weighted
    temperatures at the removal, else they end at its last read.  ``register_unit``:
    the unit ``final_energy_kwh`` is given in, which must be the meter's (else kWh).

    The installation is read again under its row lock: one ended meanwhile (an exchange
    or another removal committed since the caller loaded it) is a conflict
    (:class:`InstallationAlreadyRemoved`, 409) and keeps its removal time and final
    registers, whichever of the two times is earlier."""
    now = now or timezone.now()
    with transaction.atomic():
        # the meter first (FOR NO KEY UPDATE, as an installation and a correction take
        # it): its register settings, which the final registers are checked against,
        # cannot change meanwhile (metering.meters.meter_update checks past removals
        # under the same lock); deliveries being stored go on.  Then the installation.
        HeatMeter.objects.select_for_update(no_key=True).values_list("pk").get(
            pk=installation.meter_id
        )
        installation = (
            MeterInstallation.objects.select_for_update(of=("self",))  # not the meter's row
            .select_related("meter", "unit")
            .get(pk=installation.pk)
        )
        if installation.removed_at is not None:
            message = (
                f"Meter {installation.meter} was already removed from {installation.unit} at "
                f"{installation.removed_at.isoformat()} (final registers "
                f"{installation.final_energy_kwh} kWh, {installation.final_volume_m3} m³); "
                "nothing was changed."
            )
            raise InstallationAlreadyRemoved(
                message,
                errors=[ErrorItem(code="already_removed", field="removed_at", message=message)],
            )
        return _remove(
            installation,
            removed_at=removed_at,
            final_energy_kwh=_energy_kwh(
                installation.meter,
                final_energy_kwh,
                register_unit=register_unit,
                field="register_unit",
            ),
            final_volume_m3=final_volume_m3,
            final_flow_temp_m3c=final_flow_temp_m3c,
            final_return_temp_m3c=final_return_temp_m3c,
            reason=reason,
            actor=actor,
            now=now,
        )


def _remove(
    installation: MeterInstallation,
    *,
    removed_at: dt.datetime,
    final_energy_kwh: Decimal,
    final_volume_m3: Decimal,
    final_flow_temp_m3c: Decimal | None,
    final_return_temp_m3c: Decimal | None,
    reason: str,
    actor,
    now: dt.datetime,
) -> MeterInstallation:
    """:func:`meter_remove` of the open ``installation``, locked by the caller."""
    errors = _final_errors(
        installation,
        removed_at=removed_at,
        final_energy_kwh=final_energy_kwh,
        final_volume_m3=final_volume_m3,
        final_flow_temp_m3c=final_flow_temp_m3c,
        final_return_temp_m3c=final_return_temp_m3c,
    )
    if errors:
        raise UnableToInstallMeter.refusing("Cannot remove meter", errors)
    installation.removed_at = removed_at
    installation.final_energy_kwh = final_energy_kwh
    installation.final_volume_m3 = final_volume_m3
    installation.final_flow_temp_m3c = final_flow_temp_m3c
    installation.final_return_temp_m3c = final_return_temp_m3c
    clean_and_save(installation, actor=actor, reason=reason or "removal", what="meter installation")
    revalidation_queue(meter_id=installation.meter_id, since=removed_at, now=now)
    return installation


def _final_errors(
    installation: MeterInstallation,
    *,
    removed_at: dt.datetime,
    final_energy_kwh: Decimal,
    final_volume_m3: Decimal,
    final_flow_temp_m3c: Decimal | None,
    final_return_temp_m3c: Decimal | None,
) -> list[ErrorItem]:
    """Why ``installation`` cannot end at ``removed_at`` with these final registers (an
    item per register), checked against its initial registers as they stand on it:
    at a removal and at a correction of the final (or initial) registers."""
    errors = _not_showable(
        installation.meter, energy_kwh=final_energy_kwh, volume_m3=final_volume_m3, at="final"
    )
    if final_energy_kwh < installation.initial_energy_kwh and not _rolled_over(
        installation, removed_at, "energy_kwh", final_energy_kwh
    ):
        errors.append(
            ErrorItem(
                code="final_below_initial",
                field="final_energy_kwh",
                message=f"The final energy register {final_energy_kwh} kWh is below the initial {installation.initial_energy_kwh} kWh, and the register did not roll over.",
            )
        )
    if final_volume_m3 < installation.initial_volume_m3 and not _rolled_over(
        installation, removed_at, "volume_m3", final_volume_m3
    ):
        errors.append(
            ErrorItem(
                code="final_below_initial",
                field="final_volume_m3",
                message=f"The final volume register {final_volume_m3} m³ is below the initial {installation.initial_volume_m3} m³, and the register did not roll over.",
            )
        )
    for register, field, final, unit in (
        ("energy_kwh", "final_energy_kwh", final_energy_kwh, "kWh"),
        ("volume_m3", "final_volume_m3", final_volume_m3, "m³"),
    ):
        if any(e.field == field for e in errors):
            continue
        last = below_last_read(installation, removed_at, register, final)
        if last is not None:
            errors.append(
                ErrorItem(
                    code="final_below_last_read",
                    field=field,
                    message=f"The final {register.split('_')[0]} register {final} {unit} is below the last reading {last} {unit} before the removal, and the register did not roll over.",
                )
            )
    for register, field, final in (
        ("flow_temp_m3c", "final_flow_temp_m3c", final_flow_temp_m3c),
        ("return_temp_m3c", "final_return_temp_m3c", final_return_temp_m3c),
    ):
        last = (
            None if final is None else _temperature_below(installation, removed_at, register, final)
        )
        if last is not None:
            errors.append(
                ErrorItem(
                    code="final_below_last_read",
                    field=field,
                    message=f"The final {register.split('_')[0]} temperature register {final} m³·°C is below {last} m³·°C, the last reading's (or the initial) before the removal; leave it empty if the register was reset.",
                )
            )
    return errors


def meter_exchange(
    *,
    unit: BuildingInterfaceUnit,
    new_meter: HeatMeter,
    exchanged_at: dt.datetime,
    old_final_energy_kwh: Decimal,
    old_final_volume_m3: Decimal,
    new_initial_energy_kwh: Decimal = Decimal("0"),
    new_initial_volume_m3: Decimal = Decimal("0"),
    old_final_flow_temp_m3c: Decimal | None = None,
    old_final_return_temp_m3c: Decimal | None = None,
    new_initial_flow_temp_m3c: Decimal | None = None,
    new_initial_return_temp_m3c: Decimal | None = None,
    old_register_unit: str | None = None,
    new_register_unit: str | None = None,
    old_installation: MeterInstallation | None = None,
    reason: str = "exchange",
    actor=None,
    now: dt.datetime | None = None,
) -> tuple[MeterInstallation, MeterInstallation]:
    """Replace the meter installed in ``unit`` at ``exchanged_at``; returns (old, new).

    ``old_installation``: the installation the caller means to close (the admin form's,
    or the one an API client names).  The final registers were read off that meter; if
    another exchange or a removal has ended it since the caller looked, they do not
    belong to the unit's meter now, and nothing changes (:class:`InstallationChanged`).
    Checked under the unit's lock, which every exchange takes first.  Without it the
    unit's current meter is replaced, whichever it is.

    The m³·°C registers at both ends are optional (see :func:`meter_remove` and
    :func:`meter_install`): given, the water across the exchange is weighted whole.

    Each meter's energy register is in kWh, or in its own register unit where given:
    ``old_register_unit`` the old meter's (``old_final_energy_kwh``), ``new_register_unit``
    the new meter's (``new_initial_energy_kwh``); a unit other than the meter's is
    refused (``unit_mismatch`` on that field)."""
    if old_installation is not None and old_installation.unit_id != unit.pk:
        message = f"Installation {old_installation.pk} ({old_installation}) is not in interface unit {unit}."
        raise UnableToInstallMeter(
            message,
            errors=[ErrorItem(code="other_unit", field="old_installation", message=message)],
        )
    now = now or timezone.now()  # one instant for both halves
    with transaction.atomic():
        # the connection, then the unit, as meter_install takes them
        unit = _lock_connection_then_unit(unit.pk)
        # at most one open installation per unit (installation_one_meter_per_unit); its
        # meter locked before it, in the order a removal takes them (meter_remove)
        open_now = MeterInstallation.objects.filter(unit=unit, removed_at__isnull=True)
        meter_id = open_now.values_list("meter_id", flat=True).first()
        if meter_id is not None:
            HeatMeter.objects.select_for_update(no_key=True).values_list("pk").get(pk=meter_id)
        current = (
            open_now.select_for_update(of=("self",))  # not the meter's row
            .select_related("meter")
            .first()
        )
        if old_installation is not None and (current is None or current.pk != old_installation.pk):
            raise _installation_changed(old_installation, current)
        if current is None or current.installed_at >= exchanged_at:
            message = (
                f"Interface unit {unit} has no meter installed before {exchanged_at.isoformat()}."
            )
            raise UnableToInstallMeter(
                message,
                errors=[ErrorItem(code="no_current_meter", field="unit", message=message)],
            )
        # converted here, not by meter_remove/meter_install: a refusal names the
        # exchange's field of the meter concerned
        old_final_energy_kwh = _energy_kwh(
            current.meter,
            old_final_energy_kwh,
            register_unit=old_register_unit,
            field="old_register_unit",
        )
        if new_register_unit is not None:
            # the lock meter_install takes, a moment early: the unit stays as checked
            new_initial_energy_kwh = _energy_kwh(
                HeatMeter.objects.select_for_update(no_key=True).get(pk=new_meter.pk),
                new_initial_energy_kwh,
                register_unit=new_register_unit,
                field="new_register_unit",
            )
        old = meter_remove(
            installation=current,
            removed_at=exchanged_at,
            final_energy_kwh=old_final_energy_kwh,
            final_volume_m3=old_final_volume_m3,
            final_flow_temp_m3c=old_final_flow_temp_m3c,
            final_return_temp_m3c=old_final_return_temp_m3c,
            reason=reason,
            actor=actor,
            now=now,
        )
        new = meter_install(
            meter=new_meter,
            unit=unit,
            installed_at=exchanged_at,
            initial_energy_kwh=new_initial_energy_kwh,
            initial_volume_m3=new_initial_volume_m3,
            initial_flow_temp_m3c=new_initial_flow_temp_m3c,
            initial_return_temp_m3c=new_initial_return_temp_m3c,
            reason=reason,
            actor=actor,
            now=now,
        )
        return old, new


def _installation_changed(
    expected: MeterInstallation, current: MeterInstallation | None
) -> InstallationChanged:
    """The exchange was meant for ``expected``; the unit's open installation is ``current``."""
    removed_at = (
        MeterInstallation.objects.filter(pk=expected.pk)
        .values_list("removed_at", flat=True)
        .first()
    )
    message = f"{expected.meter} is no longer the meter in {expected.unit}"
    if removed_at is not None:
        message += f": it was removed at {removed_at.isoformat()}"
    if current is not None:
        message += f", and {current.meter} has been installed there since {current.installed_at.isoformat()}"
    message += "; nothing was changed."
    return InstallationChanged(
        message,
        errors=[ErrorItem(code="installation_changed", field="old_installation", message=message)],
    )


class UnableToCorrectInstallation(UnableToInstallMeter):
    """A correction of an installation's registers was refused (422, itemised)."""

    code = "unable_to_correct_installation"


INITIAL_REGISTERS = (
    "initial_energy_kwh",
    "initial_volume_m3",
    "initial_flow_temp_m3c",
    "initial_return_temp_m3c",
)
FINAL_REGISTERS = (
    "final_energy_kwh",
    "final_volume_m3",
    "final_flow_temp_m3c",
    "final_return_temp_m3c",
)
# the optional registers, which a correction may empty (``clear``)
CLEARABLE = (
    "initial_flow_temp_m3c",
    "initial_return_temp_m3c",
    "final_flow_temp_m3c",
    "final_return_temp_m3c",
)


def meter_installation_correct(
    *,
    installation: MeterInstallation,
    initial_energy_kwh: Decimal | None = None,
    initial_volume_m3: Decimal | None = None,
    initial_flow_temp_m3c: Decimal | None = None,
    initial_return_temp_m3c: Decimal | None = None,
    final_energy_kwh: Decimal | None = None,
    final_volume_m3: Decimal | None = None,
    final_flow_temp_m3c: Decimal | None = None,
    final_return_temp_m3c: Decimal | None = None,
    installed_at: dt.datetime | None = None,
    removed_at: dt.datetime | None = None,
    clear: Iterable[str] = (),
    register_unit: str | None = None,
    reason: str,
    actor,
    now: dt.datetime | None = None,
) -> MeterInstallation:
    """Correct registers or times of ``installation`` typed wrong at its installation or
    removal (12,345 kWh for 1,234, the 3rd for the 1st): only what is given changes
    (None: as recorded), the final registers and ``removed_at`` only on a removed
    installation.  ``clear`` names optional registers recorded by mistake, emptied (the
    m³·°C registers, :data:`CLEARABLE`: a meter without them, or one reset).
    ``register_unit``: the unit the energy registers are given in, which must be the
    meter's (else kWh).  ``reason`` is required: the correction is audited with it and
    ``actor`` in the history.

    The corrected values are checked as at the installation and the removal (an item
    per field, :class:`UnableToCorrectInstallation`, nothing saved): the register
    maximum; an initial register against the first reading of the installation, which
    may be one VEE rejected as a decrease from the register being corrected
    (:func:`_first_read`); a final register against the last reading before the
    removal and against the initial register (a corrected initial register is checked
    against the recorded final one, the item on the initial field).  A moved time is
    checked the same way, the registers as they then stand against the readings on the
    new side of it (an item on the time's field).

    An exchange moves as one: the unit's meter was never missing, so a moved
    ``installed_at`` moves the removal of the meter it replaced at that instant, and a
    moved ``removed_at`` the installation of the meter that replaced it (each checked
    with its own registers, under the unit's lock, which every exchange takes first).
    An installation's registers stay its own.  Any other overlap is refused as the
    database refuses it (the unit's or the meter's installations never overlap), and
    one with an installation in another unit of the connection (``connection_has_meter``
    on the time's field: a connection has one meter at a time), under the connection's
    lock.

    The readings of every meter concerned are revalidated from the earliest time
    involved (queued in this transaction, :func:`revalidation_queue`): VEE's findings
    and the boundary registers follow the correction, and billing re-rates the periods
    whose boundary registers changed.  Values equal to those recorded change nothing
    (no history, no revalidation).  ``now``: the time of the change (the retention
    horizon of the checks against the readings, the revalidation's request); the
    clock's by default."""
    now = now or timezone.now()
    given = {
        field: value
        for field, value in zip(
            (*INITIAL_REGISTERS, *FINAL_REGISTERS),
            (
                initial_energy_kwh,
                initial_volume_m3,
                initial_flow_temp_m3c,
                initial_return_temp_m3c,
                final_energy_kwh,
                final_volume_m3,
                final_flow_temp_m3c,
                final_return_temp_m3c,
            ),
            strict=True,
        )
        if value is not None
    }
    times = {
        field: value
        for field, value in (("installed_at", installed_at), ("removed_at", removed_at))
        if value is not None
    }
    cleared = list(dict.fromkeys(clear))
    errors = [
        ErrorItem(
            code="naive_datetime",
            field=field,
            message=f"{field} must carry a time zone offset.",
        )
        for field, value in times.items()
        if value.tzinfo is None
    ]
    for field in cleared:
        if field not in CLEARABLE:
            errors.append(
                ErrorItem(
                    code="not_clearable",
                    field=field if field in (*INITIAL_REGISTERS, *FINAL_REGISTERS) else "clear",
                    message=f"{field} cannot be emptied: only the temperature registers "
                    f"({', '.join(CLEARABLE)}) are optional; type the right value instead.",
                )
            )
        elif field in given:
            errors.append(
                ErrorItem(
                    code="given_and_cleared",
                    field=field,
                    message=f"{field} is given a value and emptied: do one or the other.",
                )
            )
    if not (reason or "").strip():
        errors.append(
            ErrorItem(
                code="reason_required",
                field="reason",
                message="Say why the installation is corrected (the reason is kept in the "
                "installation's history).",
            )
        )
    if not given and not times and not cleared:
        errors.append(
            ErrorItem(
                code="nothing_to_correct",
                field=None,
                message="Give at least one register or time to correct.",
            )
        )
    if errors:
        raise UnableToCorrectInstallation.refusing("Cannot correct the installation", errors)
    with transaction.atomic():
        if times:
            # the connection and the unit first, as every installation and exchange
            # takes them: the meter the installation replaced (or that replaced it) stays
            # the one read below, and no installation in another unit of the connection
            # starts or moves meanwhile
            _lock_connection_then_unit(installation.unit_id)
        # the meter first (FOR NO KEY UPDATE, as an installation takes it): its register
        # settings, which the checks read, wait (metering.meters.meter_update), stored
        # deliveries go on; then the installation's row, as a removal locks it
        meter = HeatMeter.objects.select_for_update(no_key=True).get(pk=installation.meter_id)
        current = (
            MeterInstallation.objects.select_for_update(of=("self",))  # not the unit's row
            .select_related("unit")
            .get(pk=installation.pk)
        )
        current.meter = meter
        if current.removed_at is None:
            errors = [
                ErrorItem(
                    code="not_removed",
                    field=field,
                    message=f"Meter {meter} is installed in {current.unit} (not removed): "
                    f"it has no {'removal time' if field == 'removed_at' else 'final registers'} "
                    "to correct.",
                )
                for field in (*FINAL_REGISTERS, "removed_at")
                if field in given or field in times or field in cleared
            ]
            if errors:
                raise UnableToCorrectInstallation.refusing(f"Cannot correct {current}", errors)
        for field in ("initial_energy_kwh", "final_energy_kwh"):
            if field in given:
                given[field] = _energy_kwh(
                    meter, given[field], register_unit=register_unit, field="register_unit"
                )
        changed = {
            field: value for field, value in given.items() if value != getattr(current, field)
        } | {field: None for field in cleared if getattr(current, field) is not None}
        moved = {field: value for field, value in times.items() if value != getattr(current, field)}
        if not changed and not moved:
            return current
        installed_before = current.installed_at
        partners = _exchange_partners(current, moved)
        for field, value in (*changed.items(), *moved.items()):
            setattr(current, field, value)
        errors = _time_order_errors(current, partners) or [
            *_correction_errors(current, changed=set(changed), moved=set(moved), now=now),
            *_partner_errors(partners, now=now),
            *_moved_overlaps(current, moved=set(moved)),
        ]
        if errors:
            raise UnableToCorrectInstallation.refusing(f"Cannot correct {current}", errors)
        for each in _save_order(current, partners):
            clean_and_save(each, actor=actor, reason=reason.strip(), what="meter installation")
        revalidation_queue(
            meter_id=meter.pk, since=min(current.installed_at, installed_before), now=now
        )
        for partner, field, before in partners:
            since = min(partner.installed_at, before) if field == "installed_at" else None
            revalidation_queue(
                meter_id=partner.meter_id, since=since or partner.installed_at, now=now
            )
        return current


def _exchange_partners(
    installation: MeterInstallation, moved: dict[str, dt.datetime]
) -> list[tuple[MeterInstallation, str, dt.datetime]]:
    """The other halves of the exchanges whose time moves: (the installation, its field
    that moves along, its time before), the new time set on it.  A moved ``installed_at``
    takes the removal of the meter the unit had until then (removed at that instant), a
    moved ``removed_at`` the installation of the meter that replaced it; locked (the
    meter, then the installation), the unit's lock held by the caller."""
    partners = []
    for field, other in (("installed_at", "removed_at"), ("removed_at", "installed_at")):
        if field not in moved:
            continue
        partner = (
            MeterInstallation.objects.filter(
                unit_id=installation.unit_id, **{other: getattr(installation, field)}
            )
            .exclude(pk=installation.pk)
            .first()
        )
        if partner is None:
            continue
        partner_meter = HeatMeter.objects.select_for_update(no_key=True).get(pk=partner.meter_id)
        partner = MeterInstallation.objects.select_for_update(of=("self",)).get(pk=partner.pk)
        partner.meter = partner_meter
        partners.append((partner, other, getattr(partner, other)))
        setattr(partner, other, moved[field])
    return partners


def _moved_overlaps(installation: MeterInstallation, *, moved: set[str]) -> list[ErrorItem]:
    """:func:`_connection_overlaps` of ``installation`` at its moved times (the item on
    the first time moved).  An exchange's other half needs no check: it takes the
    unit's time this one gives up, so the unit's meters cover what they covered."""
    if not moved:
        return []
    return _connection_overlaps(
        unit=installation.unit,
        installed_at=installation.installed_at,
        removed_at=installation.removed_at,
        field="installed_at" if "installed_at" in moved else "removed_at",
    )


def _time_order_errors(
    installation: MeterInstallation, partners: list[tuple[MeterInstallation, str, dt.datetime]]
) -> list[ErrorItem]:
    """A removal not after its installation, here or on an exchange's other half."""
    errors = []
    if installation.removed_at is not None and installation.removed_at <= installation.installed_at:
        errors.append(
            ErrorItem(
                code="removed_before_installed",
                field="removed_at",
                message=f"The removal {installation.removed_at.isoformat()} is not after the "
                f"installation {installation.installed_at.isoformat()}.",
            )
        )
    for partner, field, _before in partners:
        if partner.removed_at is not None and partner.removed_at <= partner.installed_at:
            ours = "installed_at" if field == "removed_at" else "removed_at"
            errors.append(
                ErrorItem(
                    code="exchange_out_of_order",
                    field=ours,
                    message=f"Meter {partner.meter} in the same exchange was installed from "
                    f"{partner.installed_at.isoformat()} to {partner.removed_at.isoformat()}: "
                    "the exchange cannot move past it.",
                )
            )
    return errors


def _partner_errors(
    partners: list[tuple[MeterInstallation, str, dt.datetime]], *, now: dt.datetime
) -> list[ErrorItem]:
    """The install or removal checks of an exchange's other half at its moved time, with
    its own registers (an item on the correction's time field)."""
    errors = []
    for partner, field, _before in partners:
        if field == "removed_at":
            items = _final_errors_as_recorded(partner)
            ours, what = "installed_at", "the meter it replaced"
        else:
            items = _initial_errors_as_recorded(partner, now=now)
            ours, what = "removed_at", "the meter that replaced it"
        errors += [
            replace(item, field=ours, message=f"{what} ({partner.meter}): {item.message}")
            for item in items
            if item.code not in NOT_SHOWABLE  # its registers are not changed
        ]
    return errors


def _initial_errors_as_recorded(
    installation: MeterInstallation, *, now: dt.datetime
) -> list[ErrorItem]:
    """:func:`_above_first_read` of the initial registers set on ``installation`` (its
    first reading may be one VEE rejected as a decrease from them: they are corrected)."""
    return _above_first_read(
        installation.meter,
        installed_at=installation.installed_at,
        energy_kwh=installation.initial_energy_kwh,
        volume_m3=installation.initial_volume_m3,
        now=now,
        time_zone=installation.unit.connection.network.time_zone,
        removed_at=installation.removed_at,
        decreases=True,
    )


def _final_errors_as_recorded(installation: MeterInstallation) -> list[ErrorItem]:
    """:func:`_final_errors` of the removal and final registers set on ``installation``."""
    return _final_errors(
        installation,
        removed_at=installation.removed_at,
        final_energy_kwh=installation.final_energy_kwh,
        final_volume_m3=installation.final_volume_m3,
        final_flow_temp_m3c=installation.final_flow_temp_m3c,
        final_return_temp_m3c=installation.final_return_temp_m3c,
    )


def _save_order(
    installation: MeterInstallation, partners: list[tuple[MeterInstallation, str, dt.datetime]]
) -> list[MeterInstallation]:
    """The installations in an order that never has two overlap between the saves (the
    database refuses an overlap at once): each exchange's half that shrinks first."""
    before, after = [], []
    for partner, field, previous in partners:
        moved_to = getattr(partner, field)
        # the partner shrinks when its removal comes earlier or its installation later
        shrinks = moved_to < previous if field == "removed_at" else moved_to > previous
        (before if shrinks else after).append(partner)
    return [*before, installation, *after]


def _correction_errors(
    installation: MeterInstallation,
    *,
    changed: set[str],
    moved: set[str] = frozenset(),
    now: dt.datetime,
) -> list[ErrorItem]:
    """The install and removal checks of ``installation``, its corrections set on it,
    that concern the ``changed`` registers, or the registers at a ``moved`` time (the
    initial ones at ``installed_at``, the final ones at ``removed_at``; the item then on
    the time's field): a register recorded before, and not corrected nor moved, is not
    refused again."""
    at_moved = {
        **(dict.fromkeys(INITIAL_REGISTERS, "installed_at") if "installed_at" in moved else {}),
        **(dict.fromkeys(FINAL_REGISTERS, "removed_at") if "removed_at" in moved else {}),
    }
    return [
        item if item.field in changed else replace(item, field=at_moved.get(item.field))
        for item in _register_errors(installation, changed=changed | set(at_moved), now=now)
        # what a register is (above the maximum, between steps) does not depend on its time
        if item.field in changed or item.code not in NOT_SHOWABLE
    ]


def _register_errors(
    installation: MeterInstallation, *, changed: set[str], now: dt.datetime
) -> list[ErrorItem]:
    """The install and removal checks of ``installation`` that concern the ``changed``
    registers (:func:`_correction_errors`)."""
    meter = installation.meter
    errors: list[ErrorItem] = []
    if changed & {"initial_energy_kwh", "initial_volume_m3"}:
        errors = [
            e
            for e in _not_showable(
                meter,
                energy_kwh=installation.initial_energy_kwh,
                volume_m3=installation.initial_volume_m3,
                at="initial",
            )
            if e.field in changed
        ] or [e for e in _initial_errors_as_recorded(installation, now=now) if e.field in changed]
    if installation.removed_at is None:
        return errors
    for item in _final_errors_as_recorded(installation):
        initial = "initial_" + (item.field or "").removeprefix("final_")
        if item.field in changed:
            errors.append(item)
        elif item.code == "final_below_initial" and initial in changed:
            errors.append(replace(item, field=initial))  # on the register corrected
    for register in ("flow_temp_m3c", "return_temp_m3c"):
        initial = getattr(installation, f"initial_{register}")
        final = getattr(installation, f"final_{register}")
        if (
            f"initial_{register}" in changed
            and f"final_{register}" not in changed
            and final is not None
            and initial is not None
            and final < initial
        ):
            errors.append(
                ErrorItem(
                    code="final_below_initial",
                    field=f"initial_{register}",
                    message=f"The initial {register.split('_')[0]} temperature register "
                    f"{initial} m³·°C is above the final {final} m³·°C.",
                )
            )
    return errors
