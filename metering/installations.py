"""Meter installation, removal and exchange (writes).

An exchange closes the old installation with its final registers and opens the new one
with its initial registers at the same instant, atomically, so that consumption across
the exchange is exact (DOMAIN.md §2).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction

from customers.models import BuildingInterfaceUnit
from heatutility.audit import clean_and_save
from heatutility.errors import DomainError, ErrorItem
from metering.models import HeatMeter, MeterInstallation


class UnableToInstallMeter(DomainError):
    code = "unable_to_install_meter"


def _revalidation_queue(*, meter_id: int, since: dt.datetime) -> None:
    """After commit, validate the meter's readings from ``since`` again and refresh the
    boundaries they feed: readings that arrived before the installation was recorded
    were rejected as outside it, readings after a removal now are, and the connection's
    registers around the change moved.  (Nightly VEE also picks up readings rejected as
    outside an installation recorded since, should the task be lost.)"""
    from metering.tasks import vee_revalidate

    transaction.on_commit(lambda: vee_revalidate.delay(meter_id, since.isoformat()))


def meter_install(
    *,
    meter: HeatMeter,
    unit: BuildingInterfaceUnit,
    installed_at: dt.datetime,
    initial_energy_kwh: Decimal = Decimal("0"),
    initial_volume_m3: Decimal = Decimal("0"),
    reason: str = "",
    actor=None,
) -> MeterInstallation:
    if installed_at.tzinfo is None:
        raise UnableToInstallMeter(
            "installed_at must carry a time zone offset.",
            errors=[ErrorItem(code="naive_datetime", field="installed_at", message="no offset")],
        )
    with transaction.atomic():
        # Same lock order everywhere (unit, then meter) so exchanges cannot deadlock.
        BuildingInterfaceUnit.objects.select_for_update().get(pk=unit.pk)
        HeatMeter.objects.select_for_update().get(pk=meter.pk)
        installation = MeterInstallation(
            meter=meter,
            unit=unit,
            installed_at=installed_at,
            initial_energy_kwh=initial_energy_kwh,
            initial_volume_m3=initial_volume_m3,
            reason=reason,
        )
        clean_and_save(
            installation, actor=actor, reason=reason or "install", what="meter installation"
        )
        _revalidation_queue(meter_id=meter.pk, since=installed_at)
        return installation


def _rolled_over(
    installation: MeterInstallation, removed_at: dt.datetime, register: str, final: Decimal
) -> bool:
    """Did the meter's ``register`` (``energy_kwh`` or ``volume_m3``) roll over while it
    was installed: VEE found a rollover, or the final register is the bottom of the range
    after a last read at its top (the rollover came after the last read)?"""
    from metering.models import Reading, ReadingIssue
    from metering.vee.estimation import USABLE
    from metering.vee.rules import is_rollover

    meter = installation.meter
    during = {"read_at__gte": installation.installed_at, "read_at__lte": removed_at}
    code = "rollover" if register == "energy_kwh" else "volume_rollover"
    if ReadingIssue.objects.filter(meter=meter, code=code, **during).exists():
        return True
    last = (
        Reading.objects.filter(meter=meter, status__in=USABLE, **during)
        .order_by("-read_at")
        .values_list(register, flat=True)
        .first()
    )
    maximum = meter.register_max_kwh if register == "energy_kwh" else meter.volume_register_max
    return last is not None and final < last and is_rollover(last, final, maximum)


def _below_last_read(
    installation: MeterInstallation, removed_at: dt.datetime, register: str, final: Decimal
) -> Decimal | None:
    """The last usable read of ``register`` while installed, when the final register lies
    below it without rolling over from it (else None).

    The connection register continues from the final register (DOMAIN.md §2: old final −
    old previous read); one below the last read would make the consumption between that
    read and the exchange negative, whatever the initial register was.
    """
    from metering.models import Reading
    from metering.vee.estimation import USABLE
    from metering.vee.rules import is_rollover

    meter = installation.meter
    last = (
        Reading.objects.filter(
            meter=meter,
            status__in=USABLE,
            read_at__gte=installation.installed_at,
            read_at__lte=removed_at,
        )
        .order_by("-read_at")
        .values_list(register, flat=True)
        .first()
    )
    maximum = meter.register_max_kwh if register == "energy_kwh" else meter.volume_register_max
    if last is not None and final < last and not is_rollover(last, final, maximum):
        return last
    return None


def meter_remove(
    *,
    installation: MeterInstallation,
    removed_at: dt.datetime,
    final_energy_kwh: Decimal,
    final_volume_m3: Decimal,
    reason: str = "",
    actor=None,
) -> MeterInstallation:
    if installation.removed_at is not None:
        raise UnableToInstallMeter(
            f"Meter {installation.meter} was already removed at {installation.removed_at.isoformat()}.",
            errors=[
                ErrorItem(code="already_removed", field="removed_at", message="already removed")
            ],
        )
    errors = []
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
        last = _below_last_read(installation, removed_at, register, final)
        if last is not None:
            errors.append(
                ErrorItem(
                    code="final_below_last_read",
                    field=field,
                    message=f"The final {register.split('_')[0]} register {final} {unit} is below the last reading {last} {unit} before the removal, and the register did not roll over.",
                )
            )
    if errors:
        raise UnableToInstallMeter(
            "Cannot remove meter: " + "; ".join(e.message for e in errors), errors=errors
        )
    with transaction.atomic():
        installation.removed_at = removed_at
        installation.final_energy_kwh = final_energy_kwh
        installation.final_volume_m3 = final_volume_m3
        clean_and_save(
            installation, actor=actor, reason=reason or "removal", what="meter installation"
        )
        _revalidation_queue(meter_id=installation.meter_id, since=removed_at)
    return installation


def meter_exchange(
    *,
    unit: BuildingInterfaceUnit,
    new_meter: HeatMeter,
    exchanged_at: dt.datetime,
    old_final_energy_kwh: Decimal,
    old_final_volume_m3: Decimal,
    new_initial_energy_kwh: Decimal = Decimal("0"),
    new_initial_volume_m3: Decimal = Decimal("0"),
    reason: str = "exchange",
    actor=None,
) -> tuple[MeterInstallation, MeterInstallation]:
    """Replace the meter installed in ``unit`` at ``exchanged_at``; returns (old, new)."""
    with transaction.atomic():
        BuildingInterfaceUnit.objects.select_for_update().get(pk=unit.pk)
        current = (
            MeterInstallation.objects.select_for_update(of=("self",))  # not the meter's row
            .filter(unit=unit, removed_at__isnull=True, installed_at__lt=exchanged_at)
            .select_related("meter")
            .first()
        )
        if current is None:
            raise UnableToInstallMeter(
                f"Interface unit {unit} has no meter installed before {exchanged_at.isoformat()}.",
                errors=[
                    ErrorItem(code="no_current_meter", field="unit", message="no meter installed")
                ],
            )
        old = meter_remove(
            installation=current,
            removed_at=exchanged_at,
            final_energy_kwh=old_final_energy_kwh,
            final_volume_m3=old_final_volume_m3,
            reason=reason,
            actor=actor,
        )
        new = meter_install(
            meter=new_meter,
            unit=unit,
            installed_at=exchanged_at,
            initial_energy_kwh=new_initial_energy_kwh,
            initial_volume_m3=new_initial_volume_m3,
            reason=reason,
            actor=actor,
        )
        return old, new
