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
"""

from __future__ import annotations

from django.db import transaction

from heatutility.audit import clean_and_save
from heatutility.errors import DomainError, ErrorItem
from metering.installations import revalidation_queue
from metering.models import HeatMeter, Reading

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


def meter_has_readings(*, meter: HeatMeter) -> bool:
    """Has any reading of ``meter`` been stored (whatever VEE made of it)?"""
    return Reading.objects.filter(meter_id=meter.pk).exists()


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
    return errors


def meter_update(*, meter: HeatMeter, values: dict, actor=None, reason: str = "") -> HeatMeter:
    """Save ``values`` (field name → value) on ``meter``; returns the meter as stored.

    A change of a register setting (``REGISTER_SETTINGS``) of an installed meter queues
    the revalidation of its readings from its first installation: VEE's findings
    (rollovers, ambiguous rollovers, decreases) and the boundary registers billing
    reads are recomputed with the new settings (staff decisions on findings stand)."""
    with transaction.atomic():
        # the stored values, whatever the caller's instance holds (a form or serializer
        # may have set the new ones on it already)
        current = HeatMeter.objects.select_for_update().get(pk=meter.pk)
        errors = meter_update_errors(meter=current, values=values)
        if errors:
            raise UnableToChangeMeter(
                f"Cannot change meter {current}: " + "; ".join(e.message for e in errors),
                errors=errors,
            )
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
