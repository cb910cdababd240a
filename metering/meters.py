"""Heat meter master data (writes): a stored meter changes only through here.

Staff type a meter's register settings in from its data sheet, and correct them when
they prove wrong.  VEE reads the registers with them: a decrease from the top tenth of
the range into the bottom tenth is a rollover (``register_max``,
``volume_register_max``), a rollover adds maximum + resolution (``resolution``,
``volume_resolution``: EN 1434 register), and the nominal flow qp bounds how many volume
wraps fit between two reads (``nominal_flow_m3h``).  The stored findings and the
connection's boundary registers were computed with the settings of their time, so a
change revalidates the meter's readings from its first installation, as an
installation change does (:func:`metering.installations.revalidation_queue`).

The register unit is fixed once the meter has readings.  Readings are converted to kWh
from the unit each delivery states (``Reading.energy_unit``), so changing it would not
re-read them; but the register maximum and resolution are stated in it, and a new unit
would scale them (×1,000 from kWh to MWh, ×277.78 from kWh to GJ) without anyone typing
a number, moving the rollover band under readings VEE has judged.  The unit belongs to the meter's
calculator and is published to its head-end (``GET readings/meters/``).  A meter whose
unit was misread keeps it, and its maximum and resolution are corrected in that unit:
a 99,999.999 MWh register wraps like a 99,999,999 kWh one, VEE compares kWh.

A register maximum cannot be set below what the meter's registers have reached (its
readings, its installations' initial and final registers): a digit too few would turn
its past rollovers into decreases and stop finding new ones.  Nor can it move the
rollover band away from a past removal's final register that rolled over after the
last reading (``metering.installations`` refuses any other final register below that
reading): the connection's register would fall at the removal, and no revalidation
looks at that step.  Staff-accepted ambiguous rollovers the new settings no longer
allow are reopened by the revalidation (``metering.vee.services``).

A meter is deleted only when it was entered by mistake (:func:`meter_delete`): readings
have no database foreign key to it, so this is the check that keeps them from being
orphaned.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Subquery

from heatutility.audit import clean_and_save, mark_actor
from heatutility.errors import ConflictError, DomainError, ErrorItem
from heatutility.money import plain
from metering.installations import below_last_read, revalidation_queue
from metering.models import (
    KWH_PER_UNIT,
    HeatMeter,
    MeterInstallation,
    Reading,
    ReadingConflict,
    ReadingEdit,
    ReadingIssue,
)
from metering.units import kwh_to_register_half_even

# the settings VEE and the boundary registers read a meter's registers with
REGISTER_SETTINGS = (
    "register_unit",
    "resolution",
    "register_max",
    "volume_resolution",
    "volume_register_max",
    "nominal_flow_m3h",
)
EDITABLE = (
    "maker",
    "model",
    "serial",
    "vendor",
    *REGISTER_SETTINGS,
    "accuracy_class",
    "flow_sensor_position",
    "verification_due_on",
)


class UnableToChangeMeter(DomainError):
    code = "unable_to_change_meter"


class UnableToDeleteMeter(ConflictError):
    code = "unable_to_delete_meter"


def meter_has_readings(*, meter: HeatMeter) -> bool:
    """Has any reading of ``meter`` been stored (whatever VEE made of it)?"""
    return Reading.objects.filter(meter_id=meter.pk).exists()


def _highest_registers(*, meter: HeatMeter) -> dict[str, Decimal | bool | None]:
    """The highest energy (kWh) and volume (m³) register stored for ``meter``: over its
    readings, whatever their status, and its installations' initial and final registers
    (``reading_*``, ``initial_*``, ``final_*``; None where there is none); and whether it
    was ever removed (``removed``).  One query."""

    def highest(model, field):
        return Subquery(
            model.objects.filter(meter_id=OuterRef("pk"))
            .values("meter_id")
            .annotate(highest=Max(field))
            .values("highest")
        )

    return (
        HeatMeter.objects.filter(pk=meter.pk)
        .values(
            reading_energy=highest(Reading, "energy_kwh"),
            reading_volume=highest(Reading, "volume_m3"),
            initial_energy=highest(MeterInstallation, "initial_energy_kwh"),
            final_energy=highest(MeterInstallation, "final_energy_kwh"),
            initial_volume=highest(MeterInstallation, "initial_volume_m3"),
            final_volume=highest(MeterInstallation, "final_volume_m3"),
            removed=Exists(
                MeterInstallation.objects.filter(meter_id=OuterRef("pk"), removed_at__isnull=False)
            ),
        )
        .get()
    )


def _maximum_below_stored(*, meter: HeatMeter, values: dict, unit: str) -> list[ErrorItem]:
    """A new register maximum below what the meter has counted already: every stored
    register above it would read as wrapped, so past rollovers turn into decreases and
    rollover detection stops (a typo, 9,999 for 99,999).  Energy is stored in kWh and
    compared in the register unit (``kwh_to_register_half_even``), rounded to the
    maximum's 6 places so that a register read at the maximum itself is not refused for
    a conversion's last digit."""
    energy_max = values.get("register_max", meter.register_max)
    volume_max = values.get("volume_register_max", meter.volume_register_max)
    checks = []
    if energy_max is not None and (energy_max != meter.register_max or unit != meter.register_unit):
        checks.append(("energy", "register_max", energy_max, unit))
    if volume_max is not None and volume_max != meter.volume_register_max:
        checks.append(("volume", "volume_register_max", volume_max, "m³"))
    if not checks:
        return []
    stored = _highest_registers(meter=meter)
    errors = []
    for register, field, maximum, shown in checks:
        candidates = [
            (value, where)
            for value, where in (
                (stored[f"reading_{register}"], "a stored reading"),
                (stored[f"initial_{register}"], "an installation's initial register"),
                (stored[f"final_{register}"], "an installation's final register"),
            )
            if value is not None
        ]
        if not candidates:
            continue
        highest, where = max(candidates, key=lambda candidate: candidate[0])
        if register == "energy":
            highest = kwh_to_register_half_even(highest, unit)
        if maximum < highest:
            errors.append(
                ErrorItem(
                    code="register_max_below_stored",
                    field=field,
                    message=f"The {register} register maximum {plain(maximum)} {shown} is "
                    f"below {plain(highest)} {shown}, {where} of meter {meter}: the "
                    f"register reaches at least that (is a digit missing?).",
                )
            )
    if stored["removed"]:
        refused = {e.field for e in errors}
        errors += _finals_no_longer_rolled_over(
            meter=meter, checks=[check for check in checks if check[1] not in refused]
        )
    return errors


def _finals_no_longer_rolled_over(*, meter: HeatMeter, checks: list[tuple]) -> list[ErrorItem]:
    """The meter's past removals whose final register lies below the last usable reading
    of the installation and, with a new maximum (``checks``, as
    :func:`_maximum_below_stored` makes them), no longer rolls over from it: a removal
    with that final register is refused (``metering.installations.below_last_read``,
    ``final_below_last_read``), and the boundary registers would count a decrease at the
    removal."""
    removals = list(
        MeterInstallation.objects.filter(meter_id=meter.pk, removed_at__isnull=False).order_by(
            "installed_at"
        )
    )
    stored_as = {"energy": "energy_kwh", "volume": "volume_m3"}
    errors = []
    for register, field, maximum, shown in checks:
        limit = maximum * KWH_PER_UNIT[shown] if register == "energy" else maximum  # as stored
        for removal in removals:
            removal.meter = meter
            final = getattr(removal, f"final_{stored_as[register]}")
            reached = (
                None
                if final is None
                else below_last_read(
                    removal, removal.removed_at, stored_as[register], final, maximum=limit
                )
            )
            if reached is None:
                continue
            if register == "energy":
                final, reached = (kwh_to_register_half_even(v, shown) for v in (final, reached))
            errors.append(
                ErrorItem(
                    code="final_below_last_read",
                    field=field,
                    message=f"With the {register} register maximum {plain(maximum)} {shown} "
                    f"the final register {plain(final)} {shown} of meter {meter}'s removal "
                    f"at {removal.removed_at.isoformat()} lies below its last reading "
                    f"{plain(reached)} {shown} and does not roll over from it (from the top "
                    "tenth of the range into the bottom tenth): the connection's register "
                    "would fall at the removal.",
                )
            )
    return errors


def meter_update_errors(*, meter: HeatMeter, values: dict) -> list[ErrorItem]:
    """Why ``values`` cannot be saved on ``meter``, beyond its field and constraint
    checks (shared with the admin's meter form); ``meter`` holds the stored values."""
    errors = [
        ErrorItem(code="not_editable", field=name, message=f"{name} cannot be changed.")
        for name in sorted(set(values) - set(EDITABLE))
    ]
    unit = values.get("register_unit", meter.register_unit)
    if unit != meter.register_unit and meter_has_readings(meter=meter):
        errors.append(
            ErrorItem(
                code="register_unit_fixed",
                field="register_unit",
                message=f"Meter {meter} has readings: its register unit stays "
                f"{meter.register_unit} (correct the maximum and resolution in "
                f"{meter.register_unit} instead).",
            )
        )
    elif unit in KWH_PER_UNIT:  # an unknown unit is the field check's to refuse
        errors += _maximum_below_stored(meter=meter, values=values, unit=unit)
    return errors


# changes that wait for the deliveries being stored (FOR UPDATE against their FOR KEY
# SHARE, ``metering.ingest.store.meters_lock``); any other change goes on beside them
WAIT_FOR_DELIVERIES = ("register_unit", "vendor", "serial")


def meter_update(*, meter: HeatMeter, values: dict, actor=None, reason: str = "") -> HeatMeter:
    """Save ``values`` (field name → value) on ``meter``; returns the meter as stored.

    A change of a register setting (``REGISTER_SETTINGS``) of an installed meter queues
    the revalidation of its readings from its first installation: VEE's findings
    (rollovers, ambiguous rollovers, decreases) and the boundary registers billing
    reads are recomputed with the new settings (staff decisions on findings stand)."""
    with transaction.atomic():
        # the stored values, whatever the caller's instance holds (a form or serializer
        # may have set the new ones on it already); FOR NO KEY UPDATE: deliveries being
        # stored (FOR KEY SHARE, ``metering.ingest.store.meters_lock``) go on meanwhile
        current = HeatMeter.objects.select_for_update(no_key=True).get(pk=meter.pk)
        if any(
            name in values and values[name] != getattr(current, name)
            for name in WAIT_FOR_DELIVERIES
        ):
            # wait for deliveries being stored, and hold back new ones: the unit is fixed
            # by the meter's first reading, so the check must see every reading; the
            # vendor and serial are what a delivery found the meter by, so its rows go
            # in for the meter as it was when they were locked, or are refused as not
            # the vendor's, never neither
            HeatMeter.objects.select_for_update().values_list("pk").get(pk=meter.pk)
        errors = meter_update_errors(meter=current, values=values)
        if errors:
            raise UnableToChangeMeter.refusing(f"Cannot change meter {current}", errors)
        changed = [name for name, value in values.items() if getattr(current, name) != value]
        if not changed:
            return current
        for name in changed:
            setattr(current, name, values[name])
        clean_and_save(current, actor=actor, reason=reason, what="heat meter")
        first = (
            current.installations.order_by("installed_at")
            .values_list("installed_at", flat=True)
            .first()
        )
        if first is not None and set(changed) & set(REGISTER_SETTINGS):
            revalidation_queue(meter_id=current.pk, since=first)
    return current


# what keeps a meter: (related rows, code, why) — readings have no database foreign key
# to the meter (docs/readings-storage.md), so nothing but this check keeps them
_KEPT_BY = (
    (Reading, "has_readings", "it has readings"),
    (MeterInstallation, "has_installations", "it has been installed (its installation history)"),
    (ReadingIssue, "has_findings", "VEE has findings on its readings"),
    (ReadingEdit, "has_edits", "staff have edited its readings"),
    (ReadingConflict, "has_reading_conflicts", "deliveries of its readings are in conflict"),
)


def meter_delete_refusals(*, meter: HeatMeter) -> list[ErrorItem]:
    """Why ``meter`` cannot be deleted (empty: it can).  Only a meter entered by mistake,
    with nothing recorded for it, goes: its readings would be orphaned (they are kept
    for the billing-dispute window and re-rating), and its installations, findings and
    edits are the audit trail of what was billed.  One query."""
    present = (
        HeatMeter.objects.filter(pk=meter.pk)
        .values(
            **{
                code: Exists(model.objects.filter(meter_id=OuterRef("pk")))
                for model, code, _why in _KEPT_BY
            }
        )
        .first()
    )
    if present is None:
        return []
    return [
        ErrorItem(code=code, message=f"Meter {meter} cannot be deleted: {why}.")
        for _model, code, why in _KEPT_BY
        if present[code]
    ]


def meter_delete(*, meter: HeatMeter, actor=None, reason: str = "") -> None:
    """Delete ``meter``, entered by mistake; refused (:class:`UnableToDeleteMeter`, 409)
    while anything is recorded for it (:func:`meter_delete_refusals`).

    The meter's row is locked first (``FOR UPDATE``), so nothing can be recorded for it
    between the check and the delete: an installation locks it too, and the ingest
    takes ``FOR KEY SHARE`` on the meters of the rows it is about to store, in the
    transaction that stores them (``metering.ingest.store.meters_lock``).  A delivery
    being stored makes the delete wait and then find its readings (refused, 409); a
    delivery stored after the delete refuses the meter's rows as of an unknown meter."""
    with transaction.atomic():
        current = HeatMeter.objects.select_for_update().get(pk=meter.pk)
        refusals = meter_delete_refusals(meter=current)
        if refusals:
            whys = [why for _model, code, why in _KEPT_BY if any(r.code == code for r in refusals)]
            raise UnableToDeleteMeter(
                f"Meter {current} cannot be deleted: {'; '.join(whys)}.  A meter taken out "
                "of service is removed from its unit, and kept.",
                errors=refusals,
            )
        mark_actor(current, actor=actor, reason=reason or "deleted (entered by mistake)")
        current.delete()
