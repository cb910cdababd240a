"""Plant operating cost over a period, vectorised over hours with pandas (DOMAIN.md §6).

Pure: frames and dataclasses in, a :class:`CostResult` out (no ORM, no clock).

* electricity ``Σ_h E_h · (spot_h + grid_h + system_h + tax_h)`` where ``E_h`` is the metered
  electricity, or ``Q_h / COP_h`` with the modelled (Lorenz) COP when not metered; a
  negative spot hour lowers the cost but tariffs and tax are still paid;
* fuel boilers ``Σ_h Q_h / η · (fuel price + CO₂ factor × CO₂ price)`` (metered fuel if given);
* O&M: fixed per MW of capacity per year × year fraction + variable per MWh of heat;
* capital per year: annuity ``I·r / (1 − (1 + r)^−n)`` or straight-line depreciation plus
  interest on the remaining book value, for the unit's asset year (counted from
  ``commissioned_on``; 0 before commissioning and after the lifetime), × year fraction; a
  period that spans an anniversary is split there and each part charged at its own year;
* network costs per year × year fraction; network losses = heat produced − heat sold.

Floats carry the hourly maths; every figure leaves through :func:`heatutility.money.to_decimal`
and is rounded once (money to the cent, energy to 6 decimals).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd

from heatutility.money import quantize_energy, quantize_money, to_decimal
from tariffs.cop import measured_cop, modelled_cop, seasonal_cop
from tariffs.rating import year_fraction


def annuity(*, investment: Decimal, rate: Decimal, years: int) -> Decimal:
    """Yearly payment ``I·r / (1 − (1 + r)^−n)``; ``I / n`` at a zero rate (unrounded)."""
    if years <= 0:
        raise ValueError("lifetime must be at least one year")
    if rate == 0:
        return investment / years
    return investment * rate / (1 - (1 + rate) ** -years)


def capital_cost_per_year(*, method: str, investment: Decimal, rate: Decimal, years: int, year_index: int) -> Decimal:
    """Capital cost of asset year ``year_index`` (1-based): the annuity is paid in years 1…n,
    depreciation plus interest follows the book value; nothing before commissioning or after
    the lifetime (a written-off unit costs no capital)."""
    if method == "depreciation":
        return depreciation_with_interest(investment=investment, rate=rate, years=years, year_index=year_index)
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


def asset_year_pieces(*, commissioned_on: dt.date, start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date, int]]:
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


def depreciation_with_interest(*, investment: Decimal, rate: Decimal, years: int, year_index: int) -> Decimal:
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

    def as_json(self) -> dict:
        def s(v):
            return None if v is None else format(v, "f")

        return {
            "currency": self.currency,
            "figures": {k: s(v) for k, v in self.figures.items()},
            "per_unit": {u: {k: s(v) for k, v in d.items()} for u, d in self.per_unit.items()},
            "cop_by_month": {
                u: [{k: (s(v) if isinstance(v, Decimal) else v) for k, v in row.items()} for row in rows]
                for u, rows in self.cop_by_month.items()
            },
        }


def _cop_by_month(rows: pd.DataFrame, time_zone: str) -> list[dict]:
    """Seasonal (energy-weighted) COP measured and modelled per local month, and their gap."""
    month = rows["hour_start"].dt.tz_convert(time_zone).dt.strftime("%Y-%m")
    metered = rows["electricity_mwh"].notna() & (rows["electricity_mwh"] > 0)
    modelled = rows["cop_modelled"].notna() & (rows["cop_modelled"] > 0)
    frame = pd.DataFrame({
        "month": month,
        "q_meas": rows["heat_mwh"].where(metered, 0.0),
        "e_meas": rows["electricity_mwh"].where(metered, 0.0),
        "q_mod": rows["heat_mwh"].where(modelled, 0.0),
        "e_mod": (rows["heat_mwh"] / rows["cop_modelled"]).where(modelled, 0.0),
    }).groupby("month").sum()
    out = []
    for m, r in frame.iterrows():
        meas = float(r["q_meas"] / r["e_meas"]) if r["e_meas"] > 0 else None
        mod = float(r["q_mod"] / r["e_mod"]) if r["e_mod"] > 0 else None
        out.append({
            "month": m,
            "heat_mwh": _energy(float(r["q_mod"] if r["q_mod"] else r["q_meas"])),
            "seasonal_cop_measured": None if meas is None else to_decimal(round(meas, 4)),
            "seasonal_cop_modelled": None if mod is None else to_decimal(round(mod, 4)),
            "gap": None if meas is None or mod is None else to_decimal(round(meas - mod, 4)),
        })
    return out


def _money(value: float, currency: str) -> Decimal:
    return quantize_money(to_decimal(round(float(value), 6)), currency)


def _energy(value: float) -> Decimal:
    return quantize_energy(to_decimal(round(float(value), 9)))


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
    params = {u.id: u for u in units}
    frame = hours.merge(prices, on="hour_start", how="left")
    missing_price = frame["spot"].isna() & frame["unit_id"].map(
        lambda i: params[i].kind in ("heat_pump", "electric_boiler")
    )
    if missing_price.any():
        first = frame.loc[missing_price, "hour_start"].min()
        raise ValueError(
            f"{int(missing_price.sum())} operating hours have no electricity price (first {first:%Y-%m-%d %H:%M} UTC); import prices first"
        )
    kind = frame["unit_id"].map(lambda i: params[i].kind)
    eta_lorenz = frame["unit_id"].map(lambda i: float(params[i].lorenz_efficiency))
    eta_boiler = frame["unit_id"].map(lambda i: float(params[i].boiler_efficiency))
    frame["electricity_price"] = frame[["spot", "grid", "system", "tax"]].sum(axis=1, min_count=1)
    frame["cop_measured"] = np.where(kind == "heat_pump", measured_cop(frame["heat_mwh"], frame["electricity_mwh"]), np.nan)
    frame["cop_modelled"] = np.where(
        kind == "heat_pump",
        modelled_cop(
            efficiency=1.0,
            sink_in_c=frame["return_c"],
            sink_out_c=frame["supply_c"],
            source_in_c=frame["source_in_c"],
            source_out_c=frame["source_out_c"],
        ) * eta_lorenz,
        np.nan,
    )
    metered = frame["electricity_mwh"].notna() & (frame["electricity_mwh"] > 0)
    heat = frame["heat_mwh"].fillna(0.0)
    frame["electricity_used_mwh"] = np.select(
        [kind == "heat_pump", kind == "electric_boiler"],
        [
            np.where(metered, frame["electricity_mwh"], heat / frame["cop_modelled"]),
            np.where(metered, frame["electricity_mwh"], heat / eta_boiler),
        ],
        default=0.0,
    )
    unmodelled = (kind == "heat_pump") & ~metered & (heat > 0) & frame["cop_modelled"].isna()
    if unmodelled.any():
        raise ValueError(
            f"{int(unmodelled.sum())} heat-pump hours have neither metered electricity nor temperatures for a COP model"
        )
    frame["electricity_cost"] = frame["electricity_used_mwh"] * frame["electricity_price"].fillna(0.0)
    fuel_price = frame["unit_id"].map(
        lambda i: float(params[i].fuel_price_per_mwh + params[i].co2_t_per_mwh_fuel * params[i].co2_price_per_t)
    )
    frame["fuel_used_mwh"] = np.where(
        kind == "fuel_boiler",
        np.where(frame["fuel_mwh"].notna(), frame["fuel_mwh"], heat / eta_boiler),
        0.0,
    )
    frame["fuel_cost"] = frame["fuel_used_mwh"] * fuel_price
    frame["om_variable_cost"] = heat * frame["unit_id"].map(lambda i: float(params[i].om_variable_per_mwh))
    frame["variable_cost"] = frame["electricity_cost"] + frame["fuel_cost"] + frame["om_variable_cost"]

    per_unit: dict[str, dict[str, Decimal | None]] = {}
    cop_by_month: dict[str, list[dict]] = {}
    fixed_om_total = Decimal(0)
    capital_total = Decimal(0)
    for u in units:
        rows = frame[frame["unit_id"] == u.id]
        if u.commissioned_on is not None:
            pieces = asset_year_pieces(commissioned_on=u.commissioned_on, start=period_start, end=period_end)
        else:  # commissioning date unknown: every day counts as the given asset year (default 1)
            pieces = [(period_start, period_end, u.year_index)]

        def per_year(k: int, u: UnitParams = u) -> Decimal:
            return capital_cost_per_year(method=u.capital_method, investment=u.investment, rate=u.interest_rate,
                                         years=u.lifetime_years, year_index=k)

        capital = quantize_money(
            sum((_frac_mul(per_year(k), year_fraction(s, e)) for s, e, k in pieces), Decimal(0)), currency
        )
        first_year = pieces[0][2] if pieces else u.year_index
        capital_year = per_year(first_year)
        fixed_om = quantize_money(_frac_mul(u.capacity_mw * u.om_fixed_per_mw_year, fraction), currency)
        fixed_om_total += fixed_om
        capital_total += capital
        hp = rows if u.kind == "heat_pump" else rows.iloc[0:0]
        meas = hp[hp["electricity_mwh"].notna() & (hp["electricity_mwh"] > 0)]
        scop_meas = seasonal_cop(meas["heat_mwh"], meas["electricity_mwh"]) if len(meas) else None
        model_ok = hp[hp["cop_modelled"].notna() & (hp["cop_modelled"] > 0)]
        scop_model = (
            seasonal_cop(model_ok["heat_mwh"], model_ok["heat_mwh"] / model_ok["cop_modelled"]) if len(model_ok) else None
        )
        per_unit[u.code] = {
            "heat_mwh": _energy(rows["heat_mwh"].sum()),
            "electricity_mwh": _energy(rows["electricity_used_mwh"].sum()),
            "fuel_mwh": _energy(rows["fuel_used_mwh"].sum()),
            "electricity_cost": _money(rows["electricity_cost"].sum(), currency),
            "fuel_cost": _money(rows["fuel_cost"].sum(), currency),
            "om_variable_cost": _money(rows["om_variable_cost"].sum(), currency),
            "om_fixed_cost": fixed_om,
            "capital_cost": capital,
            "capital_per_year": quantize_money(capital_year, currency),
            "asset_year_index": Decimal(first_year),
            "seasonal_cop_measured": None if scop_meas is None else to_decimal(round(scop_meas, 4)),
            "seasonal_cop_modelled": None if scop_model is None else to_decimal(round(scop_model, 4)),
        }
        if scop_meas is not None and scop_model is not None:
            per_unit[u.code]["cop_gap"] = to_decimal(round(scop_meas - scop_model, 4))
        if u.kind == "heat_pump" and len(hp):
            cop_by_month[u.code] = _cop_by_month(hp, time_zone)

    producing = frame[kind != "storage"]
    produced = _energy(producing["heat_mwh"].sum())
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
        "cost_per_mwh_produced": quantize_money(total / produced, currency) if produced else Decimal(0),
        "cost_per_mwh_sold": quantize_money(total / sold, currency) if sold else Decimal(0),
        "variable_cost_per_mwh_sold": quantize_money(variable / sold, currency) if sold else Decimal(0),
    }
    figures["loss_share"] = figures["loss_share"].quantize(Decimal("0.000001"))
    hourly = frame[[
        "unit_id", "hour_start", "heat_mwh", "electricity_used_mwh", "cop_measured", "cop_modelled",
        "spot", "grid", "system", "tax", "electricity_price", "electricity_cost", "fuel_used_mwh",
        "fuel_cost", "om_variable_cost", "variable_cost",
    ]].copy()
    hourly["unit"] = hourly["unit_id"].map(lambda i: params[i].code)
    return CostResult(currency=currency, figures=figures, per_unit=per_unit, hourly=hourly, cop_by_month=cop_by_month)


def _frac_mul(value: Decimal, fraction: Fraction) -> Decimal:
    return value * Decimal(fraction.numerator) / Decimal(fraction.denominator)
