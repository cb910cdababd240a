"""Exact unit conversion for energy, power and flow.

Every factor is an exact rational number (``fractions.Fraction``), so MWh → GJ → MWh
returns the value it started with; callers convert the result to ``Decimal`` only at
the edge (:func:`to_decimal_exact` or a quantize).

* Energy: 1 MWh = 1000 kWh = 3.6 GJ exactly (1 Wh = 3600 J).
* Power: 1 MW = 1000 kW; 1 Mcal/h = 1.163 kW exactly (International Table calorie,
  1 cal_IT = 4.1868 J: 4.1868 MJ / 3600 s = 1.163 kW).
* Flow ↔ power: a water flow of 1 l/h cooled by ΔT kelvin carries ``ΔT × 1.163 W``
  (1 kg per litre and c = 4.1868 kJ/(kg·K), the convention of Berlin-style l/h capacity
  prices).  Converting l/h needs a design ΔT.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

ENERGY_UNITS: dict[str, Fraction] = {
    # value in MWh of one unit
    "MWh": Fraction(1),
    "kWh": Fraction(1, 1000),
    "GJ": Fraction(10, 36),
}

POWER_UNITS: dict[str, Fraction] = {
    # value in kW of one unit
    "kW": Fraction(1),
    "MW": Fraction(1000),
    "Mcal/h": Fraction(1163, 1000),
}

# kWh carried by one litre of water per kelvin (4.1868 kJ / 3600)
WATER_KWH_PER_LITRE_KELVIN = Fraction(1163, 1_000_000)


class UnitError(ValueError):
    pass


def _frac(value: Decimal | int | str | Fraction) -> Fraction:
    if isinstance(value, Fraction):
        return value
    if isinstance(value, float):
        raise UnitError("floats are not accepted; pass Decimal or str")
    return Fraction(Decimal(value))


def convert_energy(value: Decimal | int | str | Fraction, from_unit: str, to_unit: str) -> Fraction:
    try:
        return _frac(value) * ENERGY_UNITS[from_unit] / ENERGY_UNITS[to_unit]
    except KeyError as exc:
        raise UnitError(
            f"unknown energy unit {exc.args[0]!r}; use one of {sorted(ENERGY_UNITS)}"
        ) from exc


def convert_power(
    value: Decimal | int | str | Fraction,
    from_unit: str,
    to_unit: str,
    *,
    delta_t_k: Decimal | None = None,
) -> Fraction:
    """Convert power between kW, MW, Mcal/h and (with a design ΔT) l/h of water flow."""
    v = _frac(value)
    if from_unit == "l/h":
        if not delta_t_k:
            raise UnitError("converting l/h needs a design temperature difference ΔT")
        kw = v * _frac(delta_t_k) * WATER_KWH_PER_LITRE_KELVIN
    else:
        try:
            kw = v * POWER_UNITS[from_unit]
        except KeyError as exc:
            raise UnitError(f"unknown power unit {from_unit!r}") from exc
    if to_unit == "l/h":
        if not delta_t_k:
            raise UnitError("converting to l/h needs a design temperature difference ΔT")
        return kw / (_frac(delta_t_k) * WATER_KWH_PER_LITRE_KELVIN)
    try:
        return kw / POWER_UNITS[to_unit]
    except KeyError as exc:
        raise UnitError(f"unknown power unit {to_unit!r}") from exc


def to_decimal_exact(value: Fraction, places: int = 12) -> Decimal:
    """A ``Decimal`` of ``value``; exact when the fraction terminates within ``places``."""
    q = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1).scaleb(-places))
    if q == q.to_integral_value():
        return q.quantize(Decimal(1))
    return q.normalize()
