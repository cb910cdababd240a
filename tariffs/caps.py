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
    base: Decimal  # K₀ (index value in the base period)
    current: Decimal  # K (index value now)


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

    @property
    def excess(self) -> Decimal:
        return self.price - self.limit

    def message(self) -> str:
        return (
            f"Component '{self.component}' {self.price:f} {self.currency}{self.unit} exceeds the {self.cap} "
            f"{self.limit:f} {self.currency}{self.unit} by {self.excess:f} {self.currency}{self.unit}."
        )


def _per_kw(price: Decimal, c: BandedCharge) -> Decimal:
    if c.unit == "l/h":
        return price / (c.design_delta_t * Decimal(WATER_KWH_PER_LITRE_KELVIN.numerator) / Decimal(WATER_KWH_PER_LITRE_KELVIN.denominator))
    factor = POWER_UNITS[c.unit]
    return price * Decimal(factor.denominator) / Decimal(factor.numerator)


def check_against_cap(*, spec: TariffSpec, cap: CapLimits) -> list[CapExcess]:
    """Every price of the version that exceeds a limit, compared on the cap's VAT basis."""
    vat = spec.vat_rate

    def basis(price: Decimal) -> Decimal:
        net = price / (1 + vat) if spec.prices_include_vat else price
        gross = net * (1 + vat)
        return quantize_money(gross if cap.includes_vat else net, spec.currency)

    out: list[CapExcess] = []
    fixed_total = Decimal(0)
    fixed_codes: list[str] = []
    for c in spec.components:
        if isinstance(c, EnergyCharge) and cap.energy_per_mwh is not None:
            prices = [(c.description, c.price)] if c.price is not None else []
            prices += [(f"{c.description} ({s.label})", s.price) for s in c.seasons]
            prices += [(f"{c.description} (block)", b.price) for b in c.blocks]
            factor = ENERGY_UNITS[c.unit]
            for _label, p in prices:
                per_mwh = basis(p * Decimal(factor.denominator) / Decimal(factor.numerator))
                if per_mwh > cap.energy_per_mwh:
                    out.append(CapExcess(c.code, "energy cap", per_mwh, cap.energy_per_mwh, "/MWh", spec.currency))
        elif isinstance(c, FixedCharge):
            fixed_total += basis(c.amount * (12 if c.per == "month" else 1))
            fixed_codes.append(c.code)
        elif isinstance(c, BandedCharge):
            for b in c.bands:
                if b.fixed:
                    fixed_total += basis(b.fixed * (12 if c.fixed_per == "month" else 1))
                    fixed_codes.append(c.code) if c.code not in fixed_codes else None
                    break  # the first band's fee is what a small customer pays
            if c.basis == "capacity" and cap.capacity_per_kw is not None:
                top = max((basis(_per_kw(b.unit_price, c)) for b in c.bands), default=Decimal(0))
                if top > cap.capacity_per_kw:
                    out.append(CapExcess(c.code, "capacity cap", top, cap.capacity_per_kw, "/kW/year", spec.currency))
            if c.basis == "area" and cap.area_per_m2 is not None:
                top = max((basis(b.unit_price) for b in c.bands), default=Decimal(0))
                if top > cap.area_per_m2:
                    out.append(CapExcess(c.code, "area cap", top, cap.area_per_m2, "/m²/year", spec.currency))
    if cap.fixed_per_year is not None and fixed_total > cap.fixed_per_year:
        out.append(CapExcess("+".join(fixed_codes), "fixed-charge cap", fixed_total, cap.fixed_per_year, "/year", spec.currency))
    if cap.reference_total is not None and cap.reference is not None:
        lines = rate(determinants=cap.reference, tariff=spec)
        t = totals(lines, spec.currency)
        bill = t.gross if cap.includes_vat else t.net
        if bill > cap.reference_total:
            out.append(CapExcess("(yearly bill of the reference customer)", cap.label, bill, cap.reference_total, "/year", spec.currency))
    return out
