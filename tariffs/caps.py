"""Regulated price caps (DOMAIN.md §5), pure: inputs in, limits and every figure out.

Each method returns a :class:`CapResult`: the limits a tariff version is checked against
(:func:`check_against_cap`) and ``figures``, every intermediate value as a string, so the
stored cap can be exported (CSV/JSON) and recomputed to the cent from its inputs.

Rounding: every limit is rounded half up to the currency's minor unit (one rounding, at
the end); intermediate figures are kept unrounded to 10 decimals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from heatutility.errors import DomainError, ErrorItem
from heatutility.money import quantize_money
from tariffs.costs import annuity
from tariffs.rating import (
    BandedCharge,
    Determinants,
    EnergyCharge,
    FixedCharge,
    TariffSpec,
    rate,
    totals,
)
from tariffs.units import ENERGY_UNITS, POWER_UNITS, WATER_KWH_PER_LITRE_KELVIN

PLACES = Decimal("0.0000000001")


class CapInputsInvalid(DomainError):
    code = "cap_inputs_invalid"


def _d(value, name: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except Exception as exc:
        raise CapInputsInvalid(
            f"{name} is not a number.", errors=[ErrorItem(code="invalid", message="Not a number.", field=name)]
        ) from exc
    return d


def _s(value: Decimal) -> str:
    return format(value.quantize(PLACES) if value != value.to_integral_value() else value, "f")


@dataclass(frozen=True)
class CapLimits:
    currency: str
    includes_vat: bool = False
    energy_per_mwh: Decimal | None = None
    fixed_per_year: Decimal | None = None
    capacity_per_kw: Decimal | None = None
    area_per_m2: Decimal | None = None
    reference_total: Decimal | None = None
    reference: Determinants | None = None
    label: str = "price cap"


@dataclass(frozen=True)
class CapResult:
    limits: CapLimits
    figures: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------- methods
def cost_based_cap(
    *,
    currency: str,
    variable_costs: Decimal,
    fixed_costs: Decimal,
    over_recovery: Decimal,
    approved_return: Decimal,
    forecast_sales_mwh: Decimal,
    connections: int,
    contracted_kw_total: Decimal,
    fixed_share_per_connection: Decimal = Decimal("0.2"),
) -> CapResult:
    """Danish non-profit: allowed revenue = costs − last period's over-recovery + approved return.

    The adjustment (return − over-recovery) is shared between variable and fixed costs in
    proportion to their size.  Allowed variable cost / forecast sales bounds the energy
    price per MWh; allowed fixed cost bounds the fixed charge per connection
    (``fixed_share_per_connection`` of it) and the capacity charge per kW (the rest).
    """
    if forecast_sales_mwh <= 0 or connections <= 0 or contracted_kw_total <= 0:
        raise CapInputsInvalid("Forecast sales, connections and contracted kW must be above 0.")
    costs = variable_costs + fixed_costs
    adjustment = approved_return - over_recovery
    variable_share = variable_costs / costs if costs else Decimal(0)
    allowed_variable = variable_costs + adjustment * variable_share
    allowed_fixed = fixed_costs + adjustment * (1 - variable_share)
    energy = allowed_variable / forecast_sales_mwh
    fixed = allowed_fixed * fixed_share_per_connection / connections
    capacity = allowed_fixed * (1 - fixed_share_per_connection) / contracted_kw_total
    limits = CapLimits(
        currency=currency,
        energy_per_mwh=quantize_money(energy, currency),
        fixed_per_year=quantize_money(fixed, currency),
        capacity_per_kw=quantize_money(capacity, currency),
        label="cost-based cap",
    )
    figures = {
        "variable_costs": _s(variable_costs),
        "fixed_costs": _s(fixed_costs),
        "total_costs": _s(costs),
        "over_recovery": _s(over_recovery),
        "approved_return": _s(approved_return),
        "allowed_revenue": _s(costs + adjustment),
        "variable_share": _s(variable_share),
        "allowed_variable_costs": _s(allowed_variable),
        "allowed_fixed_costs": _s(allowed_fixed),
        "forecast_sales_mwh": _s(forecast_sales_mwh),
        "connections": str(connections),
        "contracted_kw_total": _s(contracted_kw_total),
        "energy_cap_unrounded": _s(energy),
        "fixed_cap_unrounded": _s(fixed),
        "capacity_cap_unrounded": _s(capacity),
    }
    return CapResult(limits=limits, figures=figures)


@dataclass(frozen=True)
class IndexTerm:
    name: str
    weight: Decimal
    base: Decimal  # K₀ (index value in the base period), on the series ``current`` is on
    current: Decimal  # K (index value now)
    base_before_rebase: Decimal | None = None  # K₀ as agreed, on the series before a rebasing


@dataclass(frozen=True)
class IndexClause:
    """``P = P0 · (a + Σ bᵢ·Kᵢ/Kᵢ₀ + c·M/M₀)`` for one price (energy, capacity or meter)."""

    price: str  # energy | capacity | meter
    base_price: Decimal  # P0
    fixed_weight: Decimal  # a
    cost_terms: tuple[IndexTerm, ...]
    market_term: IndexTerm  # c, M, M0 (AVBFernwärmeV §24(4): the heat market must count)


def indexation_factor(clause: IndexClause) -> Decimal:
    weights = clause.fixed_weight + sum((t.weight for t in clause.cost_terms), Decimal(0)) + clause.market_term.weight
    if weights != 1:
        raise CapInputsInvalid(
            f"The weights of the {clause.price} clause sum to {weights}, not 1 (a + Σb + c = 1).",
            errors=[ErrorItem(code="weights", message=f"sum {weights}", field=f"clauses.{clause.price}")],
        )
    if clause.market_term.weight <= 0:
        raise CapInputsInvalid(f"The {clause.price} clause needs a market index with a positive weight (§24(4)).")
    for t in (*clause.cost_terms, clause.market_term):
        if t.base <= 0:
            raise CapInputsInvalid(f"Index {t.name} has base value {t.base}; it must be above 0.")
    factor = clause.fixed_weight
    for t in (*clause.cost_terms, clause.market_term):
        factor += t.weight * t.current / t.base
    return factor


def rebase_index_base(*, base_value: Decimal, old_at_link: Decimal, new_at_link: Decimal) -> Decimal:
    """K₀ expressed on a rebased series: ``K₀ · new/old`` at the linking period.

    A statistics office rebasing an index (e.g. 2015=100 → 2020=100) multiplies every value
    by ``new/old``; rebasing K₀ by the same factor keeps K/K₀, hence the price, unchanged.
    """
    return base_value * new_at_link / old_at_link


def indexation_cap(*, currency: str, clauses: list[IndexClause]) -> CapResult:
    """German price-change clause: separate clauses for energy, capacity and meter prices."""
    figures: dict[str, str] = {}
    out: dict[str, Decimal] = {}
    for clause in clauses:
        factor = indexation_factor(clause)
        price = clause.base_price * factor
        out[clause.price] = quantize_money(price, currency)
        figures[f"{clause.price}.base_price"] = _s(clause.base_price)
        figures[f"{clause.price}.a"] = _s(clause.fixed_weight)
        for t in (*clause.cost_terms, clause.market_term):
            figures[f"{clause.price}.{t.name}.weight"] = _s(t.weight)
            if t.base_before_rebase is not None:
                figures[f"{clause.price}.{t.name}.base_before_rebase"] = _s(t.base_before_rebase)
                figures[f"{clause.price}.{t.name}.base_rebased"] = _s(t.base)
            figures[f"{clause.price}.{t.name}.ratio"] = _s(t.current / t.base)
        figures[f"{clause.price}.factor"] = _s(factor)
        figures[f"{clause.price}.price_unrounded"] = _s(price)
    limits = CapLimits(
        currency=currency,
        energy_per_mwh=out.get("energy"),
        capacity_per_kw=out.get("capacity"),
        fixed_per_year=out.get("meter"),
        label="indexation clause",
    )
    return CapResult(limits=limits, figures=figures)


def maximum_price_cap(*, currency: str, fixed_per_year_incl_vat: Decimal, price_per_gj_incl_vat: Decimal) -> CapResult:
    """Dutch Warmtewet maximum (ACM): fixed part per year + price per GJ, both incl. VAT."""
    per_mwh = price_per_gj_incl_vat * 36 / 10
    limits = CapLimits(
        currency=currency,
        includes_vat=True,
        energy_per_mwh=quantize_money(per_mwh, currency),
        fixed_per_year=quantize_money(fixed_per_year_incl_vat, currency),
        label="maximum price",
    )
    return CapResult(limits=limits, figures={
        "price_per_gj_incl_vat": _s(price_per_gj_incl_vat),
        "price_per_mwh_incl_vat": _s(per_mwh),
        "fixed_per_year_incl_vat": _s(fixed_per_year_incl_vat),
    })


def substitution_cap(
    *,
    currency: str,
    hourly_electricity_price,  # pandas Series / array per MWh (spot + grid + system + tax)
    hourly_demand_share,  # same length, sums to 1: the reference building's demand profile
    hourly_cop,  # same length or scalar: the individual heat pump's COP
    annual_demand_mwh: Decimal,
    consumer_extra_per_mwh: Decimal,
    investment: Decimal,
    lifetime_years: int,
    interest_rate: Decimal,
    om_per_year: Decimal,
    reference: Determinants,
) -> CapResult:
    """Individual heat pump benchmark: district heat may cost no more per year.

    Yearly cost = Σ_h demand_h / COP_h · (electricity_h + consumer extra) + annuity of the
    unit + O&M.  The reference customer's yearly bill under a tariff must not exceed it.
    """
    import numpy as np

    price = np.asarray(hourly_electricity_price, dtype="float64") + float(consumer_extra_per_mwh)
    share = np.asarray(hourly_demand_share, dtype="float64")
    cop = np.broadcast_to(np.asarray(hourly_cop, dtype="float64"), share.shape)
    if abs(share.sum() - 1) > 1e-9:
        raise CapInputsInvalid("The demand profile must sum to 1.")
    demand = share * float(annual_demand_mwh)
    electricity_mwh = float((demand / cop).sum())
    electricity_cost = Decimal(repr(round(float((demand / cop * price).sum()), 6)))
    capital = annuity(investment=investment, rate=interest_rate, years=lifetime_years)
    total = electricity_cost + capital + om_per_year
    limits = CapLimits(
        currency=currency,
        reference_total=quantize_money(total, currency),
        reference=reference,
        label="substitution benchmark",
    )
    return CapResult(limits=limits, figures={
        "annual_demand_mwh": _s(annual_demand_mwh),
        "electricity_mwh": _s(Decimal(repr(round(electricity_mwh, 6)))),
        "seasonal_cop": _s(Decimal(repr(round(float(annual_demand_mwh) / electricity_mwh, 6)))),
        "electricity_cost": _s(electricity_cost),
        "capital_per_year": _s(capital),
        "om_per_year": _s(om_per_year),
        "total_per_year": _s(total),
        "total_per_mwh": _s(total / annual_demand_mwh),
    })


# ----------------------------------------------------------------------------- check
@dataclass(frozen=True)
class CapExcess:
    component: str
    cap: str
    price: Decimal
    limit: Decimal
    unit: str
    currency: str
    part: str = ""  # which part of the component: a season, a block, a band (with its fee)

    @property
    def excess(self) -> Decimal:
        return self.price - self.limit

    def message(self) -> str:
        part = f" {self.part}" if self.part else ""
        return (
            f"Component '{self.component}'{part} {self.price:f} {self.currency}{self.unit} exceeds the {self.cap} "
            f"{self.limit:f} {self.currency}{self.unit} by {self.excess:f} {self.currency}{self.unit}."
        )


def _per_kw(price: Decimal, c: BandedCharge) -> Decimal:
    if c.unit == "l/h":
        return price / (c.design_delta_t * Decimal(WATER_KWH_PER_LITRE_KELVIN.numerator) / Decimal(WATER_KWH_PER_LITRE_KELVIN.denominator))
    factor = POWER_UNITS[c.unit]
    return price * Decimal(factor.denominator) / Decimal(factor.numerator)


def _band_label(c: BandedCharge, index: int) -> str:
    """``band 2 (20–50 kW)``; empty for a flat (one open band) charge."""
    if len(c.bands) == 1:
        return ""
    lower = c.bands[index - 1].upto if index else Decimal(0)
    upper = c.bands[index].upto
    span = f"{lower:f}–{upper:f}" if upper is not None else f"above {lower:f}"
    return f"band {index + 1} ({span} {c.unit})"


def _band_fees_per_year(c: BandedCharge, basis) -> list[Decimal]:
    """The fixed fee per year a customer in each band pays (graduated: every band reached)."""
    per_year = 12 if c.fixed_per == "month" else 1
    fees, reached = [], Decimal(0)
    for b in c.bands:
        reached += b.fixed
        fees.append(basis((reached if c.mode == "graduated" else b.fixed) * per_year))
    return fees


def check_against_cap(*, spec: TariffSpec, cap: CapLimits) -> list[CapExcess]:
    """Every price of the version that exceeds a limit, compared on the cap's VAT basis.

    * energy: the flat price, each seasonal and each block price, per MWh;
    * capacity / area: each band's unit price, per kW (converted from MW, Mcal/h, l/h) or m²;
    * fixed-charge cap: what a connection pays in fixed charges per year.  Without banded
      fees that is the sum of the fixed charges; with them it is checked for every band of
      every banded charge: the fixed charges + that band's fee (graduated: the fees of all
      bands reached) + the lowest fee of each other banded charge;
    * the reference customer's yearly bill against a benchmark total.
    """
    vat = spec.vat_rate

    def basis(price: Decimal) -> Decimal:
        net = price / (1 + vat) if spec.prices_include_vat else price
        gross = net * (1 + vat)
        return quantize_money(gross if cap.includes_vat else net, spec.currency)

    out: list[CapExcess] = []
    fixed_total = Decimal(0)
    fixed_codes: list[str] = []
    banded_fees: list[tuple[BandedCharge, list[Decimal]]] = []
    for c in spec.components:
        if isinstance(c, EnergyCharge) and cap.energy_per_mwh is not None:
            prices = [("", c.price)] if c.price is not None else []
            prices += [(f"({s.label})", s.price) for s in c.seasons]
            lower = Decimal(0)
            for b in c.blocks:
                span = f"{lower:f}–{b.upto:f}" if b.upto is not None else f"above {lower:f}"
                prices.append((f"(block {span} {c.unit}/year)", b.price))
                lower = b.upto if b.upto is not None else lower
            factor = ENERGY_UNITS[c.unit]
            for label, p in prices:
                per_mwh = basis(p * Decimal(factor.denominator) / Decimal(factor.numerator))
                if per_mwh > cap.energy_per_mwh:
                    out.append(CapExcess(c.code, "energy cap", per_mwh, cap.energy_per_mwh, "/MWh", spec.currency, label))
        elif isinstance(c, FixedCharge):
            fixed_total += basis(c.amount * (12 if c.per == "month" else 1))
            fixed_codes.append(c.code)
        elif isinstance(c, BandedCharge):
            if any(b.fixed for b in c.bands):
                banded_fees.append((c, _band_fees_per_year(c, basis)))
            limit, unit, name, per_unit = (
                (cap.capacity_per_kw, "/kW/year", "capacity cap", lambda price, c=c: _per_kw(price, c))
                if c.basis == "capacity" else (cap.area_per_m2, "/m²/year", "area cap", lambda price: price)
            )
            if limit is not None:
                for i, b in enumerate(c.bands):
                    price = basis(per_unit(b.unit_price))
                    if price > limit:
                        out.append(CapExcess(c.code, name, price, limit, unit, spec.currency, _band_label(c, i)))
    if cap.fixed_per_year is not None:
        if not banded_fees:
            if fixed_total > cap.fixed_per_year:
                out.append(CapExcess("+".join(fixed_codes), "fixed-charge cap", fixed_total, cap.fixed_per_year, "/year", spec.currency))
        else:
            lowest = {c.code: min(fees) for c, fees in banded_fees}
            for c, fees in banded_fees:
                others = fixed_total + sum((v for k, v in lowest.items() if k != c.code), Decimal(0))
                other_codes = fixed_codes + [k for k in lowest if k != c.code]
                for i, fee in enumerate(fees):
                    if i and c.mode == "graduated" and not c.bands[i].fixed:
                        continue  # same fees as the band below: already reported there
                    total = others + fee
                    if total > cap.fixed_per_year:
                        band = _band_label(c, i) or "band 1"
                        part = f"{band} fixed fee"
                        if c.mode == "graduated" and i:
                            part += " (with the fees of the bands below)"
                        if others:
                            part += f" {fee:f} + other fixed charges ({'+'.join(other_codes)}) {others:f} ="
                        out.append(CapExcess(c.code, "fixed-charge cap", total, cap.fixed_per_year, "/year", spec.currency, part))
    if cap.reference_total is not None and cap.reference is not None:
        lines = rate(determinants=cap.reference, tariff=spec)
        t = totals(lines, spec.currency)
        bill = t.gross if cap.includes_vat else t.net
        if bill > cap.reference_total:
            out.append(CapExcess("(yearly bill of the reference customer)", cap.label, bill, cap.reference_total, "/year", spec.currency))
    return out
