"""Plant operating cost over a period, vectorised over hours with pandas (DOMAIN.md §6).

Pure: frames and dataclasses in, a :class:`CostResult` out (no ORM, no clock).

* electricity ``Σ_h E_h · (spot_h + grid_h + system_h + tax_h)`` where ``E_h`` is the metered
  electricity, or ``Q_h / COP_h`` with the modelled (Lorenz) COP when not metered; a
  negative spot hour lowers the cost but tariffs and tax are still paid;
* fuel boilers ``Σ_h Q_h / η · (fuel price + CO₂ factor × CO₂ price)`` (metered fuel where a
  reading above 0 is given: a 0 next to heat is a missing reading, as for electricity);
* O&M: fixed per MW of capacity per year × year fraction (from ``commissioned_on`` on) + variable
  per MWh of heat;
* capital per year: annuity ``I·r / (1 − (1 + r)^−n)`` or straight-line depreciation plus
  interest on the remaining book value, for the unit's asset year (counted from
  ``commissioned_on``; 0 before commissioning and after the lifetime), × year fraction; a
  period that spans an anniversary is split there and each part charged at its own year;
* network costs per year × year fraction; network losses = heat produced − heat sold.

Exactness rule (``heatutility.money``; docs/tariffs.md "Exact money"):

* physics is float: temperatures, the Lorenz COP (``tariffs.cop``), measured and seasonal COPs;
* energy is ``Decimal``: metered heat, electricity and fuel are the stored decimals (a float
  handed in is read by its shortest repr, :func:`heatutility.money.to_decimal`); an energy
  that comes out of a model, ``Q_h / COP_h`` (the float COP by its repr) or ``Q_h / η``, is
  rounded per hour, half up to 1 Wh (:func:`heatutility.money.quantize_energy`), before it is
  priced, and every hourly energy is held to that 1 Wh;
* money is exact: hourly prices are the exact sum of their components, hourly amounts the
  exact products energy × price, their sums exact (a decimal context that traps ``Inexact``
  proves it); each reported amount is rounded once, half up to the currency's minor unit
  (:func:`heatutility.money.quantize_money`), and network totals are sums of those rounded
  per-unit amounts;
* reported energies are sums of the hourly energies that were priced, so at a constant price
  ``energy × price`` rounded once is the reported cost.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from fractions import Fraction
from operator import add, mul

import numpy as np
import pandas as pd

from heatutility.money import quantize_energy, quantize_money, to_decimal
from tariffs.cop import measured_cop, modelled_cop, seasonal_cop
from tariffs.rating import year_fraction

PRICE_COMPONENTS = ("spot", "grid", "system", "tax")
ENERGY_COLUMNS = ("heat_mwh", "electricity_mwh", "fuel_mwh")
ELECTRIC_KINDS = ("heat_pump", "electric_boiler")
_UNIT_HOUR_COLUMNS = (
    "heat_mwh",
    "electricity_used_mwh",
    "electricity_cost",
    "fuel_used_mwh",
    "fuel_cost",
    "om_variable_cost",
    "variable_cost",
)
NO_ENERGY = quantize_energy(0)
# Hourly money runs in this context: wide enough that no product or sum is ever rounded, and
# one that was would raise (``Inexact`` is trapped), so every amount before the one rounding is exact.
EXACT = Context(prec=120, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])
# A model energy's quotient (heat / COP, heat / η) is taken to 60 digits and then rounded once,
# half up to 1 Wh: 60 digits are far more than a quotient of two short decimals needs for that
# one rounding to be the rounding of the exact quotient.
QUOTIENT = Context(prec=60)


def exact_values(values) -> list[Decimal | None]:
    """A column as exact decimals: ``Decimal`` (the database's values) and ``int`` as they are, a
    float by its shortest repr (:func:`heatutility.money.to_decimal`: ``0.1`` is ``Decimal('0.1')``),
    missing (``None``, NaN, ``pd.NA``) as ``None``."""
    items = (
        values.tolist() if hasattr(values, "tolist") else list(values)
    )  # Python scalars, not numpy's
    types = set(map(type, items))
    if types <= {Decimal, type(None)}:
        return items
    if types == {float}:  # to_decimal's rule, the shortest repr, without a Python call per value
        out = list(map(Decimal, map(repr, items)))
        for i, d in enumerate(out):
            if not d.is_finite():
                if not d.is_nan():
                    raise ValueError(f"not a finite number: {items[i]!r}")
                out[i] = None
        return out
    out: list[Decimal | None] = []
    floats: dict[float, Decimal] = {}
    for v in items:
        if type(v) is float:
            if v != v:
                out.append(None)
                continue
            d = floats.get(v)
            if d is None:
                d = floats[v] = to_decimal(v)
            out.append(d)
        elif v is None or v is pd.NA or v != v:
            out.append(None)
        else:
            out.append(to_decimal(v))
    return out


def hourly_electricity_price(
    prices: pd.DataFrame, *, components: tuple[str, ...] = PRICE_COMPONENTS
) -> list[Decimal | None]:
    """Electricity price per hour: the exact sum of the price ``components`` (spot, grid, system,
    tax per MWh), ``None`` where every component is missing.  Never a float sum (0.1 + 0.2 is 0.3)."""
    return _price_sums([exact_values(prices[c]) for c in components])


def _price_sums(columns: list[list[Decimal | None]]) -> list[Decimal | None]:
    with localcontext(EXACT):
        if not any(None in c for c in columns):  # every component priced (the database's frames)
            total = columns[0]
            for c in columns[1:]:
                total = list(map(add, total, c))
            return total
        out = []
        for parts in zip(*columns, strict=True):
            present = [p for p in parts if p is not None]
            out.append(sum(present[1:], present[0]) if present else None)
        return out


def _wh(energy_mwh: Decimal) -> Decimal:
    """An energy held to 1 Wh: a stored value (6 decimals already) as it is, else rounded."""
    return energy_mwh if energy_mwh.same_quantum(NO_ENERGY) else quantize_energy(energy_mwh)


def model_energy(heat_mwh: Decimal, divisor: Decimal) -> Decimal:
    """Energy a model gives for ``heat_mwh``: ``heat / divisor`` (a COP or an efficiency), rounded
    once, half up to 1 Wh (:func:`heatutility.money.quantize_energy`)."""
    return quantize_energy(QUOTIENT.divide(heat_mwh, divisor))


def annuity(*, investment: Decimal, rate: Decimal, years: int) -> Decimal:
    """Yearly payment ``I·r / (1 − (1 + r)^−n)``; ``I / n`` at a zero rate (unrounded)."""
    if years <= 0:
        raise ValueError("lifetime must be at least one year")
    if rate == 0:
        return investment / years
    return investment * rate / (1 - (1 + rate) ** -years)


def capital_cost_per_year(
    *, method: str, investment: Decimal, rate: Decimal, years: int, year_index: int
) -> Decimal:
    """Capital cost of asset year ``year_index`` (1-based): the annuity is paid in years 1…n,
    depreciation plus interest follows the book value; nothing before commissioning or after
    the lifetime (a written-off unit costs no capital)."""
    if method == "depreciation":
        return depreciation_with_interest(
            investment=investment, rate=rate, years=years, year_index=year_index
        )
    if years <= 0:
        raise ValueError("lifetime must be at least one year")
    if year_index < 1 or year_index > years:
        return Decimal(0)
    return annuity(investment=investment, rate=rate, years=years)


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a common year: the 28th
        return day.replace(year=day.year + years, day=28)


def asset_year_index(*, commissioned_on: dt.date, on: dt.date) -> int:
    """The asset year (1-based) that day ``on`` falls in: year k is
    ``[commissioned_on + (k−1) years, commissioned_on + k years)``; 0 or less before commissioning."""
    k = on.year - commissioned_on.year
    if _add_years(commissioned_on, k) > on:
        k -= 1
    return k + 1


def asset_year_pieces(
    *, commissioned_on: dt.date, start: dt.date, end: dt.date
) -> list[tuple[dt.date, dt.date, int]]:
    """``[start, end)`` split at the unit's commissioning date and anniversaries, each piece with its
    asset year (≤ 0 = not yet commissioned).  A partial asset year counts by its share of the
    period's year fraction (calendar months of 1/12, split by days, as every other per-year cost)."""
    pieces = []
    day = start
    while day < end:
        k = asset_year_index(commissioned_on=commissioned_on, on=day)
        boundary = commissioned_on if k < 1 else _add_years(commissioned_on, k)
        stop = min(end, boundary)
        pieces.append((day, stop, k))
        day = stop
    return pieces


def depreciation_with_interest(
    *, investment: Decimal, rate: Decimal, years: int, year_index: int
) -> Decimal:
    """Year ``k`` (1-based): ``I/n`` depreciation + interest on the book value at the start of year k.

    Outside the asset's life (before commissioning, ``k < 1``, or written off, ``k > n``)
    there is neither depreciation nor interest: 0."""
    if years <= 0:
        raise ValueError("lifetime must be at least one year")
    if year_index < 1 or year_index > years:
        return Decimal(0)
    book_value = investment * (Decimal(years - year_index + 1) / years)
    return investment / years + rate * book_value


@dataclass(frozen=True)
class UnitParams:
    id: int
    code: str
    kind: str  # heat_pump | electric_boiler | fuel_boiler | storage
    capacity_mw: Decimal
    lorenz_efficiency: Decimal = Decimal("0.55")
    boiler_efficiency: Decimal = Decimal("0.99")
    fuel_price_per_mwh: Decimal = Decimal(0)
    co2_t_per_mwh_fuel: Decimal = Decimal(0)
    co2_price_per_t: Decimal = Decimal(0)
    om_fixed_per_mw_year: Decimal = Decimal(0)
    om_variable_per_mwh: Decimal = Decimal(0)
    investment: Decimal = Decimal(0)
    lifetime_years: int = 25
    interest_rate: Decimal = Decimal("0.04")
    capital_method: str = "annuity"
    # the asset year comes from ``commissioned_on`` and the cost period; ``year_index`` is
    # used only for a unit whose commissioning date is not known
    year_index: int = 1
    commissioned_on: dt.date | None = None


@dataclass
class CostResult:
    currency: str
    figures: dict[str, Decimal]
    per_unit: dict[str, dict[str, Decimal | None]]
    hourly: pd.DataFrame = field(repr=False)
    cop_by_month: dict[str, list[dict]] = field(default_factory=dict)

    def hourly_csv(self) -> str:
        """The hourly series as CSV: decimals written out in full, fixed point (``0.0000000000``,
        not ``0E-10``), so that they sum with decimals to every figure; floats to 6 decimals."""
        out = self.hourly.copy()
        for c in [c for c in out.columns if pd.api.types.is_object_dtype(out[c])]:
            out[c] = [format(v, "f") if isinstance(v, Decimal) else v for v in out[c]]
        return out.to_csv(index=False, float_format="%.6f")

    def as_json(self) -> dict:
        def s(v):
            return None if v is None else format(v, "f")

        return {
            "currency": self.currency,
            "figures": {k: s(v) for k, v in self.figures.items()},
            "per_unit": {u: {k: s(v) for k, v in d.items()} for u, d in self.per_unit.items()},
            "cop_by_month": {
                u: [
                    {k: (s(v) if isinstance(v, Decimal) else v) for k, v in row.items()}
                    for row in rows
                ]
                for u, rows in self.cop_by_month.items()
            },
        }


def _unit_hours(
    u: UnitParams, *, heat, electricity_metered, fuel_metered, cop, price
) -> tuple[dict, dict]:
    """One unit's hourly energies (``Decimal``, 1 Wh) and money (exact) as lists, and their sums.

    Inputs per hour: exact heat, metered electricity and fuel (``None`` where not metered),
    the modelled COP (the float by its repr, ``None`` where there is no model) and the exact
    electricity price."""
    n = len(heat)
    nothing = [NO_ENERGY] * n
    heat = [NO_ENERGY if q is None else _wh(q) for q in heat]
    if u.kind == "heat_pump":
        electricity = []
        for q, m, c in zip(heat, electricity_metered, cop, strict=True):
            if m is not None and m > 0:  # metered
                electricity.append(_wh(m))
            elif c is not None:  # Q / COP of the model
                electricity.append(model_energy(q, c))
            else:  # no model: only where there is no heat (refused otherwise)
                electricity.append(NO_ENERGY)
    elif u.kind == "electric_boiler":  # metered, else Q / η
        electricity = [
            _wh(m) if m is not None and m > 0 else model_energy(q, u.boiler_efficiency)
            for q, m in zip(heat, electricity_metered, strict=True)
        ]
    else:
        electricity = nothing
    if u.kind == "fuel_boiler":  # metered fuel (a reading above 0, as for electricity), else Q / η
        fuel = [
            _wh(m) if m is not None and m > 0 else model_energy(q, u.boiler_efficiency)
            for q, m in zip(heat, fuel_metered, strict=True)
        ]
    else:
        fuel = nothing
    with localcontext(EXACT):  # no product or sum below is rounded (Inexact would raise)
        zero = [Decimal(0)] * n
        # an electric unit's hour always has a price (refused otherwise)
        electricity_cost = list(map(mul, electricity, price)) if u.kind in ELECTRIC_KINDS else zero
        fuel_price = u.fuel_price_per_mwh + u.co2_t_per_mwh_fuel * u.co2_price_per_t
        fuel_cost = [f * fuel_price for f in fuel] if u.kind == "fuel_boiler" else zero
        om_price = u.om_variable_per_mwh
        om_variable_cost = [q * om_price for q in heat]
        variable_cost = list(map(add, map(add, electricity_cost, fuel_cost), om_variable_cost))
        columns = {
            "heat_mwh": heat,
            "electricity_used_mwh": electricity,
            "electricity_cost": electricity_cost,
            "fuel_used_mwh": fuel,
            "fuel_cost": fuel_cost,
            "om_variable_cost": om_variable_cost,
            "variable_cost": variable_cost,
        }
        sums = {c: sum(values, Decimal(0)) for c, values in columns.items()}
    return columns, sums


def _cop_by_month(rows: pd.DataFrame, time_zone: str) -> list[dict]:
    """Seasonal (energy-weighted) COP measured and modelled per local month, and their gap.

    The COPs are physics (floats); the month's heat is the exact sum of the hourly heat."""
    month = rows["hour_start"].dt.tz_convert(time_zone).dt.strftime("%Y-%m")
    metered = rows["electricity_mwh"].notna() & (rows["electricity_mwh"] > 0)
    modelled = rows["cop_modelled"].notna() & (rows["cop_modelled"] > 0)
    heat: dict[str, list[Decimal]] = {}  # month: [heat of metered hours, heat of modelled hours]
    for m, q, is_metered, is_modelled in zip(
        month, rows["heat_exact"], metered, modelled, strict=True
    ):
        sums = heat.setdefault(m, [NO_ENERGY, NO_ENERGY])
        if is_metered:
            sums[0] += q
        if is_modelled:
            sums[1] += q
    frame = (
        pd.DataFrame(
            {
                "month": month,
                "q_meas": rows["heat_mwh"].where(metered, 0.0),
                "e_meas": rows["electricity_mwh"].where(metered, 0.0),
                "q_mod": rows["heat_mwh"].where(modelled, 0.0),
                "e_mod": (rows["heat_mwh"] / rows["cop_modelled"]).where(modelled, 0.0),
            }
        )
        .groupby("month")
        .sum()
    )
    out = []
    for m, r in frame.iterrows():
        meas = float(r["q_meas"] / r["e_meas"]) if r["e_meas"] > 0 else None
        mod = float(r["q_mod"] / r["e_mod"]) if r["e_mod"] > 0 else None
        out.append(
            {
                "month": m,
                "heat_mwh": heat[m][1] or heat[m][0],
                "seasonal_cop_measured": None if meas is None else to_decimal(round(meas, 4)),
                "seasonal_cop_modelled": None if mod is None else to_decimal(round(mod, 4)),
                "gap": None if meas is None or mod is None else to_decimal(round(meas - mod, 4)),
            }
        )
    return out


def operating_cost(
    *,
    hours: pd.DataFrame,
    prices: pd.DataFrame,
    units: list[UnitParams],
    period_start: dt.date,
    period_end: dt.date,
    currency: str,
    heat_sold_mwh: Decimal | None = None,
    loss_share: Decimal | None = None,
    network_costs_per_year: Decimal = Decimal(0),
    time_zone: str = "UTC",
) -> CostResult:
    """Cost of producing the period's heat; see the module docstring for each term."""
    fraction = year_fraction(period_start, period_end)
    years = float(fraction)
    # each hour's price once, exact; each frame row finds it by the price row it merged with
    prices = prices.reset_index(drop=True)
    price_parts = {c: exact_values(prices[c]) for c in PRICE_COMPONENTS}
    price_of_row = _price_sums(list(price_parts.values()))
    frame = hours.merge(prices.assign(_price_row=prices.index), on="hour_start", how="left")
    kind = frame["unit_id"].map({u.id: u.kind for u in units})
    if kind.isna().any():
        raise ValueError(
            f"hours of units {sorted(set(frame.loc[kind.isna(), 'unit_id']))} that are not in the plant"
        )
    missing_price = frame["spot"].isna() & kind.isin(ELECTRIC_KINDS)
    if missing_price.any():
        first = frame.loc[missing_price, "hour_start"].min()
        raise ValueError(
            f"{int(missing_price.sum())} operating hours have no electricity price (first {first:%Y-%m-%d %H:%M} UTC); import prices first"
        )
    price_row = (
        frame["_price_row"].fillna(len(prices)).to_numpy(dtype="int64")
    )  # len(prices): no price
    # exact decimals for pricing; the frame keeps floats for the physics (COP) only
    exact = {c: np.array(exact_values(frame[c]), dtype=object) for c in ENERGY_COLUMNS}
    for c in ENERGY_COLUMNS:
        frame[c] = frame[c].astype("float64")
    eta_lorenz = frame["unit_id"].map({u.id: float(u.lorenz_efficiency) for u in units})
    frame["cop_measured"] = np.where(
        kind == "heat_pump", measured_cop(frame["heat_mwh"], frame["electricity_mwh"]), np.nan
    )
    frame["cop_modelled"] = np.where(
        kind == "heat_pump",
        modelled_cop(
            efficiency=1.0,
            sink_in_c=frame["return_c"],
            sink_out_c=frame["supply_c"],
            source_in_c=frame["source_in_c"],
            source_out_c=frame["source_out_c"],
        )
        * eta_lorenz,
        np.nan,
    )
    metered = frame["electricity_mwh"].notna() & (frame["electricity_mwh"] > 0)
    modelled = np.isfinite(frame["cop_modelled"]) & (frame["cop_modelled"] > 0)
    unmodelled = (kind == "heat_pump") & ~metered & (frame["heat_mwh"] > 0) & ~modelled
    if unmodelled.any():
        raise ValueError(
            f"{int(unmodelled.sum())} heat-pump hours have neither metered electricity nor temperatures for a COP model"
        )

    # per unit: hourly energies and money (exact), put back in the frame's row order
    hourly_columns = {c: np.empty(len(frame), dtype=object) for c in _UNIT_HOUR_COLUMNS}
    cop = np.full(len(frame), None, dtype=object)
    cop[modelled.to_numpy()] = exact_values(frame.loc[modelled, "cop_modelled"])
    price = np.array([*price_of_row, None], dtype=object)
    unit_ids = frame["unit_id"].to_numpy()
    sums: dict[int, dict[str, Decimal]] = {}
    for u in units:
        at = np.flatnonzero(unit_ids == u.id)
        columns, sums[u.id] = _unit_hours(
            u,
            heat=exact["heat_mwh"][at].tolist(),
            electricity_metered=exact["electricity_mwh"][at].tolist(),
            fuel_metered=exact["fuel_mwh"][at].tolist(),
            cop=cop[at].tolist(),
            price=price[price_row[at]].tolist(),
        )
        for c, values in columns.items():
            hourly_columns[c][at] = values
    frame["heat_exact"] = hourly_columns["heat_mwh"]

    per_unit: dict[str, dict[str, Decimal | None]] = {}
    cop_by_month: dict[str, list[dict]] = {}
    fixed_om_total = Decimal(0)
    capital_total = Decimal(0)
    for u in units:
        rows = frame[frame["unit_id"] == u.id]
        if u.commissioned_on is not None:
            pieces = asset_year_pieces(
                commissioned_on=u.commissioned_on, start=period_start, end=period_end
            )
        else:  # commissioning date unknown: every day counts as the given asset year (default 1)
            pieces = [(period_start, period_end, u.year_index)]

        def per_year(k: int, u: UnitParams = u) -> Decimal:
            return capital_cost_per_year(
                method=u.capital_method,
                investment=u.investment,
                rate=u.interest_rate,
                years=u.lifetime_years,
                year_index=k,
            )

        capital = quantize_money(
            sum((_frac_mul(per_year(k), year_fraction(s, e)) for s, e, k in pieces), Decimal(0)),
            currency,
        )
        first_year = pieces[0][2] if pieces else u.year_index
        capital_year = per_year(first_year)
        # fixed O&M from commissioning on (a unit not yet built is not maintained); after its
        # lifetime a unit still runs and is maintained, written off or not
        in_service = sum((year_fraction(s, e) for s, e, k in pieces if k >= 1), Fraction(0))
        fixed_om = quantize_money(
            _frac_mul(u.capacity_mw * u.om_fixed_per_mw_year, in_service), currency
        )
        fixed_om_total += fixed_om
        capital_total += capital
        hp = rows if u.kind == "heat_pump" else rows.iloc[0:0]
        meas = hp[hp["electricity_mwh"].notna() & (hp["electricity_mwh"] > 0)]
        scop_meas = seasonal_cop(meas["heat_mwh"], meas["electricity_mwh"]) if len(meas) else None
        model_ok = hp[hp["cop_modelled"].notna() & (hp["cop_modelled"] > 0)]
        scop_model = (
            seasonal_cop(model_ok["heat_mwh"], model_ok["heat_mwh"] / model_ok["cop_modelled"])
            if len(model_ok)
            else None
        )
        acc = sums[u.id]
        per_unit[u.code] = {
            "heat_mwh": quantize_energy(acc["heat_mwh"]),
            "electricity_mwh": quantize_energy(acc["electricity_used_mwh"]),
            "fuel_mwh": quantize_energy(acc["fuel_used_mwh"]),
            "electricity_cost": quantize_money(acc["electricity_cost"], currency),
            "fuel_cost": quantize_money(acc["fuel_cost"], currency),
            "om_variable_cost": quantize_money(acc["om_variable_cost"], currency),
            "om_fixed_cost": fixed_om,
            "capital_cost": capital,
            "capital_per_year": quantize_money(capital_year, currency),
            "asset_year_index": Decimal(first_year),
            "seasonal_cop_measured": None if scop_meas is None else to_decimal(round(scop_meas, 4)),
            "seasonal_cop_modelled": None
            if scop_model is None
            else to_decimal(round(scop_model, 4)),
        }
        if scop_meas is not None and scop_model is not None:
            per_unit[u.code]["cop_gap"] = to_decimal(round(scop_meas - scop_model, 4))
        if u.kind == "heat_pump" and len(hp):
            cop_by_month[u.code] = _cop_by_month(hp, time_zone)

    produced = quantize_energy(
        sum((sums[u.id]["heat_mwh"] for u in units if u.kind != "storage"), Decimal(0))
    )
    if heat_sold_mwh is not None:
        sold = quantize_energy(heat_sold_mwh)
    else:
        sold = quantize_energy(produced * (1 - (loss_share or Decimal(0))))
    electricity = sum((d["electricity_cost"] for d in per_unit.values()), Decimal(0))
    fuel = sum((d["fuel_cost"] for d in per_unit.values()), Decimal(0))
    om_var = sum((d["om_variable_cost"] for d in per_unit.values()), Decimal(0))
    network = quantize_money(_frac_mul(network_costs_per_year, fraction), currency)
    variable = electricity + fuel + om_var
    fixed = fixed_om_total + capital_total + network
    total = variable + fixed
    figures = {
        "year_fraction": to_decimal(round(years, 10)),
        "hours": Decimal(int(frame["hour_start"].nunique())),
        "heat_produced_mwh": produced,
        "heat_sold_mwh": sold,
        "network_losses_mwh": produced - sold,
        "loss_share": (produced - sold) / produced if produced else Decimal(0),
        "electricity_mwh": sum((d["electricity_mwh"] for d in per_unit.values()), Decimal(0)),
        "electricity_cost": electricity,
        "fuel_cost": fuel,
        "om_variable_cost": om_var,
        "om_fixed_cost": fixed_om_total,
        "capital_cost": capital_total,
        "network_cost": network,
        "variable_cost": variable,
        "fixed_cost": fixed,
        "total_cost": total,
        "cost_per_mwh_produced": quantize_money(total / produced, currency)
        if produced
        else Decimal(0),
        "cost_per_mwh_sold": quantize_money(total / sold, currency) if sold else Decimal(0),
        "variable_cost_per_mwh_sold": quantize_money(variable / sold, currency)
        if sold
        else Decimal(0),
    }
    figures["loss_share"] = figures["loss_share"].quantize(Decimal("0.000001"))
    hourly = pd.DataFrame(
        {
            "unit_id": frame["unit_id"],
            "hour_start": frame["hour_start"],
            "heat_mwh": hourly_columns["heat_mwh"],
            "electricity_used_mwh": hourly_columns["electricity_used_mwh"],
            "cop_measured": frame["cop_measured"],
            "cop_modelled": frame["cop_modelled"],
            **{
                c: np.array([*parts, None], dtype=object)[price_row]
                for c, parts in price_parts.items()
            },
            "electricity_price": price[price_row],
            **{
                c: hourly_columns[c]
                for c in _UNIT_HOUR_COLUMNS
                if c not in ("heat_mwh", "electricity_used_mwh")
            },
        },
        index=frame.index,
    )
    hourly["unit"] = hourly["unit_id"].map({u.id: u.code for u in units})
    return CostResult(
        currency=currency,
        figures=figures,
        per_unit=per_unit,
        hourly=hourly,
        cop_by_month=cop_by_month,
    )


def _frac_mul(value: Decimal, fraction: Fraction) -> Decimal:
    return value * Decimal(fraction.numerator) / Decimal(fraction.denominator)
