"""Energy registers between a meter's register unit and kWh: the one conversion.

A heat meter counts energy in its register unit (``HeatMeter.register_unit``: Wh, kWh,
MWh or GJ; EN 1434 register); readings, installations and everything downstream keep
kWh.  ``KWH_PER_UNIT`` holds the factors (1 GJ = 1000/3.6 kWh exactly).  Stored values
are rounded half up to ``ENERGY_PLACES`` (``heatutility.money.quantize_energy``), so the
same register delivered by a vendor, typed into the admin or sent to the API is the
same kWh.  PostgreSQL ingestion converts in SQL (``metering.ingest.store.ENERGY_KWH_SQL``)
with the same result.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from heatutility.money import ENERGY_PLACES, MONEY_ROUNDING, quantize_energy
from metering.models import KWH_PER_UNIT

_STEP = Decimal(1).scaleb(-ENERGY_PLACES)


def register_to_kwh(value: Decimal, unit: str) -> Decimal:
    """A register ``value`` read in ``unit``, in kWh as stored: times ``KWH_PER_UNIT``,
    rounded half up to 6 decimals.  Wh, kWh and MWh with up to 6 decimals convert
    exactly; GJ to within 0.0000005 kWh.  ``KeyError`` for a unit that is not one."""
    # quantize_energy spelled out (the same step and rounding, no call): this runs for
    # every row of a delivery stored on SQLite
    return (value * KWH_PER_UNIT[unit]).quantize(_STEP, rounding=MONEY_ROUNDING)


def delivered_to_kwh(value: Decimal, unit: str) -> Decimal:
    """A delivered energy ``value`` in ``unit``, in kWh as an intake stores it: the value
    rounded half up to the 6 decimals it is kept with (``Reading.energy_value``, the rows'
    validator, ``metering.ingest.store.ENERGY_KWH_SQL``), then :func:`register_to_kwh`.
    A value delivered with more decimals (a file's raw 1.2345675 MWh, kept so in a
    conflict) is 1,234.568 kWh, as its intake stores it, not 1,234.5675."""
    return register_to_kwh(value.quantize(_STEP, rounding=MONEY_ROUNDING), unit)


def kwh_to_register(kwh: Decimal, unit: str) -> Decimal:
    """Stored ``kwh`` in ``unit``, as the meter's display shows it: divided by
    ``KWH_PER_UNIT``, rounded half up to 6 decimals.  The inverse of
    :func:`register_to_kwh` for a register with up to 6 decimals in kWh, MWh or GJ (a Wh
    register keeps only the 3 decimals its kWh has)."""
    return quantize_energy(kwh / KWH_PER_UNIT[unit])


def kwh_to_register_half_even(kwh: Decimal, unit: str) -> Decimal:
    """Stored ``kwh`` in ``unit`` for a comparison with the register maximum
    (``HeatMeter.register_max``, 6 decimals in the register unit): as
    :func:`kwh_to_register`, but rounded half even, as the maximum checks
    (``metering.installations``, ``metering.meters``) have always compared.  The two
    differ only on an exact tie in the 7th decimal (1.0000005 MWh from 1000.0005 kWh)."""
    return (kwh / KWH_PER_UNIT[unit]).quantize(_STEP, rounding=ROUND_HALF_EVEN)
