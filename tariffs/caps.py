"""Regulated price caps (DOMAIN.md §5), pure: inputs in, limits and every figure out.

Each method returns a :class:`CapResult`: the limits a tariff version is checked against
(:func:`check_against_cap`) and ``figures``, every intermediate value as a string, so the
stored cap can be exported (CSV/JSON) and recomputed to the cent from its inputs.

Rounding: every limit is rounded half up to the currency's minor unit (one rounding, at
the end); intermediate figures are kept unrounded to 10 decimals.  Money is ``Decimal`` and
exact up to that rounding; an energy that comes out of a model (the substitution benchmark's
``demand_h / COP_h``) is rounded half up to 1 Wh before it is priced, as in ``tariffs.costs``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from heatutility.errors import DomainError, ErrorItem
from heatutility.money import quantize_money
from tariffs.costs import EXACT, annuity, exact_values, model_energy
from tariffs.limits import CAP_INPUT_LIMIT
from tariffs.rating import (
    BandedCharge,
    Determinants,
    EnergyCharge,
    FixedCharge,
    PricedLine,
    TariffSpec,
    VolumeCharge,
    rate,
    totals,
)
from tariffs.simulation import STANDARD_CUSTOMERS, standard_assumptions, standard_determinants
from tariffs.units import ENERGY_UNITS, POWER_UNITS, WATER_KWH_PER_LITRE_KELVIN

PLACES = Decimal("0.0000000001")


class CapInputsInvalid(DomainError):
    code = "cap_inputs_invalid"


def _d(value, name: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except Exception as exc:
        raise CapInputsInvalid(
            f"{name} is not a number.",
            errors=[ErrorItem(code="invalid", message="Not a number.", field=name)],
        ) from exc
    return d


# ----------------------------------------------------------------------------- inputs
CAP_INPUT_PLACES = 10
INDEX_PRICES = ("energy", "capacity", "meter")
BIGINT_MAX = 2**63 - 1
# one optional sign, then ASCII digits: str.isdigit() also passes "²" and int() then fails
_WHOLE = re.compile(r"[+-]?[0-9]+")


class _Reader:
    """Reads the JSON inputs of a method, collecting every problem with its path."""

    def __init__(self) -> None:
        self.errors: list[ErrorItem] = []

    def error(self, path: str, message: str, code: str = "invalid") -> None:
        self.errors.append(ErrorItem(code=code, message=message, field=path))

    def number(
        self,
        data: dict,
        key: str,
        path: str,
        *,
        default: str | None = None,
        gt: Decimal | int | None = None,
        ge: Decimal | int | None = None,
        le: Decimal | int | None = None,
    ) -> Decimal | None:
        """A finite number, ``|x| < 10¹²``, at most 10 decimals, within the bounds given."""
        field = f"{path}.{key}"
        value = data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if default is None:
                self.error(field, "Required.", "required")
                return None
            value = default
        if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
            self.error(field, "A number is required.")
            return None
        try:
            d = Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            self.error(field, "Not a number.")
            return None
        if not d.is_finite():
            self.error(field, "Must be a finite number.")
            return None
        if d.copy_abs() >= CAP_INPUT_LIMIT:
            self.error(
                field,
                f"Must be between -{CAP_INPUT_LIMIT:,} and {CAP_INPUT_LIMIT:,}.",
                "out_of_range",
            )
            return None
        if d.as_tuple().exponent < -CAP_INPUT_PLACES and d != d.quantize(
            Decimal(1).scaleb(-CAP_INPUT_PLACES)
        ):
            self.error(field, f"At most {CAP_INPUT_PLACES} decimal places.", "max_decimal_places")
            return None
        for bound, ok, text in (
            (gt, lambda b: d > b, "above"),
            (ge, lambda b: d >= b, "at least"),
            (le, lambda b: d <= b, "at most"),
        ):
            if bound is not None and not ok(bound):
                self.error(field, f"Must be {text} {bound}.", "out_of_range")
                return None
        return d

    def integer(
        self,
        data: dict,
        key: str,
        path: str,
        *,
        default: int | None = None,
        ge: int = 1,
        le: int = 10**9,
    ) -> int | None:
        field = f"{path}.{key}"
        value = data.get(key)
        if value is None:
            if default is None:
                self.error(field, "Required.", "required")
                return None
            value = default
        number = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and len(value) < 30 and _WHOLE.fullmatch(value.strip()):
            number = int(value.strip())
        if number is None:
            self.error(field, "A whole number is required.")
            return None
        if not ge <= number <= le:
            self.error(field, f"Must be from {ge} to {le:,}.", "out_of_range")
            return None
        return number

    def obj(self, value: Any, path: str) -> dict | None:
        if not isinstance(value, dict):
            self.error(
                path,
                "Expected an object." if value is not None else "Required.",
                "invalid" if value is not None else "required",
            )
            return None
        return value


def _index_term_inputs(r: _Reader, t: Any, path: str, *, from_cost_runs: bool = True) -> None:
    """One index of a clause.  Only a cost index (``from_cost_runs``) may take K₀ and K from
    operating-cost runs (their electricity price); the market index M (Destatis heat-price
    index, DOMAIN.md §5) is a published statistic that staff enter, never a cost of ours."""
    t = r.obj(t, path)
    if t is None:
        return
    name = t.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 60:
        r.error(f"{path}.name", "A name (text, at most 60 characters) is required.")
    r.number(t, "weight", path)
    for key, ref in (("base", "base_cost_id"), ("current", "current_cost_id")):
        if ref in t and not from_cost_runs:
            r.error(
                f"{path}.{ref}",
                f"The market index is entered by staff: give {key} as a number, not an "
                "operating-cost run.",
            )
        if ref in t and from_cost_runs:
            r.integer(t, ref, path, le=BIGINT_MAX)
        elif key == "base":
            r.number(t, key, path, gt=0)
        else:
            r.number(t, key, path, ge=0)
    if t.get("rebase"):
        rebase = r.obj(t["rebase"], f"{path}.rebase")
        if rebase is not None:
            r.number(rebase, "old_at_link", f"{path}.rebase", gt=0)
            r.number(rebase, "new_at_link", f"{path}.rebase", gt=0)


REFERENCE_ASSUMABLE = ("volume_m3", "contracted_kw", "heated_area_m2")


def _reference_inputs(r: _Reader, ref: dict, path: str) -> dict[str, Any]:
    """The substitution benchmark's reference customer; what it does not state is assumed.

    A customer using heat has network water, floor area and a capacity: a missing, blank or
    zero volume, contracted kW or heated area is replaced by the standard assumption of the
    price examples (``simulation.standard_assumptions``: 18.1 MWh → 518.87 m³ at ΔT 30 °C,
    9.05 kW, 130 m²), or volume, area and capacity charges would be left out of the bill
    compared with the benchmark.  The assumed values are written into ``ref`` itself with
    their names under ``assumed``, so the cap's stored inputs say what was assumed and
    rebuild the same reference customer.
    """
    energy = r.number(ref, "energy_mwh", path, gt=0)
    out: dict[str, Any] = {"energy_mwh": energy}
    stated = {key: r.number(ref, key, path, default="0", ge=0) for key in REFERENCE_ASSUMABLE}
    assumed = list(ref.get("assumed") or []) if isinstance(ref.get("assumed"), list) else []
    standard = standard_assumptions(energy) if energy is not None else {}
    for key, value in stated.items():
        if value == 0 and standard:
            value = standard[key]
            ref[key] = format(value, "f")
            if key not in assumed:
                assumed.append(key)
        out[key] = value
    if assumed:
        ref["assumed"] = assumed
    out["assumed"] = tuple(assumed)
    return out


def parse_cap_inputs(*, method: str, inputs: Any) -> dict[str, Any]:
    """Check a method's inputs before anything is computed: types, finite and bounded
    numbers, positive divisors.  Returns the parsed values (Decimals, ints) by name, or
    raises :class:`CapInputsInvalid` with every problem at its path (``inputs.connections``,
    ``inputs.clauses.0.market_term.base``)."""
    r = _Reader()
    p = "inputs"
    out: dict[str, Any] = {}
    if not isinstance(inputs, dict):
        raise CapInputsInvalid(
            "The inputs must be an object.",
            errors=[ErrorItem(code="invalid", message="Expected an object.", field=p)],
        )
    if method == "cost_based":
        out["variable_costs"] = r.number(inputs, "variable_costs", p, ge=0)
        out["fixed_costs"] = r.number(inputs, "fixed_costs", p, ge=0)
        out["over_recovery"] = r.number(inputs, "over_recovery", p, default="0")
        out["approved_return"] = r.number(inputs, "approved_return", p, default="0")
        out["forecast_sales_mwh"] = r.number(inputs, "forecast_sales_mwh", p, gt=0)
        out["connections"] = r.integer(inputs, "connections", p)
        out["contracted_kw_total"] = r.number(inputs, "contracted_kw_total", p, gt=0)
        out["fixed_share_per_connection"] = r.number(
            inputs, "fixed_share_per_connection", p, default="0.2", ge=0, le=1
        )
    elif method == "maximum_price":
        out["fixed_per_year_incl_vat"] = r.number(inputs, "fixed_per_year_incl_vat", p, ge=0)
        out["price_per_gj_incl_vat"] = r.number(inputs, "price_per_gj_incl_vat", p, ge=0)
    elif method == "indexation":
        clauses = inputs.get("clauses")
        if not isinstance(clauses, list) or not clauses:
            r.error(
                f"{p}.clauses",
                "A list of clauses (energy, capacity, meter) is required.",
                "required" if clauses is None else "invalid",
            )
            clauses = []
        seen: set[str] = set()
        for i, clause in enumerate(clauses):
            cp = f"{p}.clauses.{i}"
            clause = r.obj(clause, cp)
            if clause is None:
                continue
            price = clause.get("price")
            if not isinstance(price, str) or price not in INDEX_PRICES:
                r.error(f"{cp}.price", f"One of {', '.join(INDEX_PRICES)}.", "invalid_choice")
            elif price in seen:
                r.error(f"{cp}.price", f"A second {price} clause.", "duplicate")
            else:
                seen.add(price)
            r.number(clause, "base_price", cp, ge=0)
            r.number(clause, "a", cp)
            terms = clause.get("cost_terms")
            if terms is not None and not isinstance(terms, list):
                r.error(f"{cp}.cost_terms", "Expected a list.")
                terms = []
            for j, term in enumerate(terms or []):
                _index_term_inputs(r, term, f"{cp}.cost_terms.{j}")
            _index_term_inputs(
                r, clause.get("market_term"), f"{cp}.market_term", from_cost_runs=False
            )
        out["clauses"] = clauses
    elif method == "substitution":
        ref = r.obj(inputs.get("reference"), f"{p}.reference")
        if ref is not None:
            out["reference"] = _reference_inputs(r, ref, f"{p}.reference")
        out["individual_scop"] = r.number(inputs, "individual_scop", p, default="3.0", gt=0, le=100)
        out["consumer_extra_per_mwh"] = r.number(inputs, "consumer_extra_per_mwh", p, default="0")
        out["investment"] = r.number(inputs, "investment", p, default="0", ge=0)
        out["lifetime_years"] = r.integer(inputs, "lifetime_years", p, default=15, le=100)
        out["interest_rate"] = r.number(inputs, "interest_rate", p, default="0.04", gt=-1, le=1)
        out["om_per_year"] = r.number(inputs, "om_per_year", p, default="0")
        flag = inputs.get("include_utility_tariffs", False)
        if not isinstance(flag, bool):
            r.error(f"{p}.include_utility_tariffs", "true or false.")
        out["include_utility_tariffs"] = flag is True
    else:
        raise CapInputsInvalid(
            f"Unknown method {method!r}.",
            errors=[ErrorItem(code="invalid_choice", message="Unknown method.", field="method")],
        )
    if r.errors:
        missing = [e.field.removeprefix("inputs.") for e in r.errors if e.code == "required"]
        invalid = [f"{e.field}: {e.message}" for e in r.errors if e.code != "required"]
        parts = []
        if missing:
            parts.append(
                f"Missing input {', '.join(repr(m) for m in missing)} for the {method} method."
            )
        if invalid:
            parts.append(
                f"Invalid inputs for the {method} method: {'; '.join(invalid[:5])}"
                + (f" (and {len(invalid) - 5} more)." if len(invalid) > 5 else ".")
            )
        raise CapInputsInvalid(" ".join(parts), errors=r.errors)
    return out


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
    weights = (
        clause.fixed_weight
        + sum((t.weight for t in clause.cost_terms), Decimal(0))
        + clause.market_term.weight
    )
    if weights != 1:
        raise CapInputsInvalid(
            f"The weights of the {clause.price} clause sum to {weights}, not 1 (a + Σb + c = 1).",
            errors=[
                ErrorItem(code="weights", message=f"sum {weights}", field=f"clauses.{clause.price}")
            ],
        )
    if clause.market_term.weight <= 0:
        raise CapInputsInvalid(
            f"The {clause.price} clause needs a market index with a positive weight (§24(4))."
        )
    for t in (*clause.cost_terms, clause.market_term):
        if t.base <= 0:
            raise CapInputsInvalid(f"Index {t.name} has base value {t.base}; it must be above 0.")
    factor = clause.fixed_weight
    for t in (*clause.cost_terms, clause.market_term):
        factor += t.weight * t.current / t.base
    return factor


def rebase_index_base(
    *, base_value: Decimal, old_at_link: Decimal, new_at_link: Decimal
) -> Decimal:
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


def maximum_price_cap(
    *, currency: str, fixed_per_year_incl_vat: Decimal, price_per_gj_incl_vat: Decimal
) -> CapResult:
    """Dutch Warmtewet maximum (ACM): fixed part per year + price per GJ, both incl. VAT."""
    per_mwh = price_per_gj_incl_vat * 36 / 10
    limits = CapLimits(
        currency=currency,
        includes_vat=True,
        energy_per_mwh=quantize_money(per_mwh, currency),
        fixed_per_year=quantize_money(fixed_per_year_incl_vat, currency),
        label="maximum price",
    )
    return CapResult(
        limits=limits,
        figures={
            "price_per_gj_incl_vat": _s(price_per_gj_incl_vat),
            "price_per_mwh_incl_vat": _s(per_mwh),
            "fixed_per_year_incl_vat": _s(fixed_per_year_incl_vat),
        },
    )


def substitution_cap(
    *,
    currency: str,
    hourly_electricity_price,  # per MWh (spot + grid + system + tax): Decimals, or floats / ints
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

    Yearly cost = Σ_h E_h · (electricity_h + consumer extra) + annuity of the unit + O&M, where
    ``E_h = demand_h / COP_h`` (``demand_h`` = the hour's share × the annual demand) is energy
    out of a model: rounded half up to 1 Wh (``quantize_energy``) before it is priced.  Prices,
    the hourly amounts and their sum are exact; the yearly cost is rounded once, half up to the
    cent.  The profile and the COP may be floats (read by their shortest repr); the
    ``seasonal_cop`` figure is the model's (annual demand / Σ demand_h / COP_h, float), before
    the hourly rounding.  The reference customer's yearly bill under a tariff must not exceed it.
    """
    import numpy as np

    share = np.asarray(hourly_demand_share, dtype="float64")
    cop = np.broadcast_to(np.asarray(hourly_cop, dtype=object), share.shape)
    if abs(share.sum() - 1) > 1e-9:
        raise CapInputsInvalid("The demand profile must sum to 1.")
    prices = exact_values(hourly_electricity_price)
    if len(prices) != len(share) or None in prices:
        raise CapInputsInvalid("Every hour of the demand profile needs an electricity price.")
    with localcontext(EXACT):  # exact: Inexact is trapped
        demand = [s * annual_demand_mwh for s in exact_values(share)]
    electricity = [model_energy(d, c) for d, c in zip(demand, exact_values(cop), strict=True)]
    with localcontext(EXACT):
        electricity_mwh = sum(electricity, Decimal(0))
        electricity_cost = sum(
            (e * (p + consumer_extra_per_mwh) for e, p in zip(electricity, prices, strict=True)),
            Decimal(0),
        )
    capital = annuity(investment=investment, rate=interest_rate, years=lifetime_years)
    with localcontext(EXACT):
        total = electricity_cost + capital + om_per_year
    modelled_mwh = float((share * float(annual_demand_mwh) / cop.astype("float64")).sum())
    limits = CapLimits(
        currency=currency,
        reference_total=quantize_money(total, currency),
        reference=reference,
        label="substitution benchmark",
    )
    return CapResult(
        limits=limits,
        figures={
            "annual_demand_mwh": _s(annual_demand_mwh),
            "electricity_mwh": _s(electricity_mwh),
            "seasonal_cop": _s(Decimal(repr(round(float(annual_demand_mwh) / modelled_mwh, 6)))),
            "electricity_cost": _s(electricity_cost),
            "capital_per_year": _s(capital),
            "om_per_year": _s(om_per_year),
            "total_per_year": _s(total),
            "total_per_mwh": _s(total / annual_demand_mwh),
        },
    )


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
        return price / (
            c.design_delta_t
            * Decimal(WATER_KWH_PER_LITRE_KELVIN.numerator)
            / Decimal(WATER_KWH_PER_LITRE_KELVIN.denominator)
        )
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
                    out.append(
                        CapExcess(
                            c.code,
                            "energy cap",
                            per_mwh,
                            cap.energy_per_mwh,
                            "/MWh",
                            spec.currency,
                            label,
                        )
                    )
        elif isinstance(c, FixedCharge):
            fixed_total += basis(c.amount * (12 if c.per == "month" else 1))
            fixed_codes.append(c.code)
        elif isinstance(c, BandedCharge):
            if any(b.fixed for b in c.bands):
                banded_fees.append((c, _band_fees_per_year(c, basis)))
            limit, unit, name, per_unit = (
                (
                    cap.capacity_per_kw,
                    "/kW/year",
                    "capacity cap",
                    lambda price, c=c: _per_kw(price, c),
                )
                if c.basis == "capacity"
                else (cap.area_per_m2, "/m²/year", "area cap", lambda price: price)
            )
            if limit is not None:
                for i, b in enumerate(c.bands):
                    price = basis(per_unit(b.unit_price))
                    if price > limit:
                        out.append(
                            CapExcess(
                                c.code, name, price, limit, unit, spec.currency, _band_label(c, i)
                            )
                        )
    if cap.fixed_per_year is not None:
        if not banded_fees:
            if fixed_total > cap.fixed_per_year:
                out.append(
                    CapExcess(
                        "+".join(fixed_codes),
                        "fixed-charge cap",
                        fixed_total,
                        cap.fixed_per_year,
                        "/year",
                        spec.currency,
                    )
                )
        else:
            lowest = {c.code: min(fees) for c, fees in banded_fees}
            for c, fees in banded_fees:
                others = fixed_total + sum(
                    (v for k, v in lowest.items() if k != c.code), Decimal(0)
                )
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
                        out.append(
                            CapExcess(
                                c.code,
                                "fixed-charge cap",
                                total,
                                cap.fixed_per_year,
                                "/year",
                                spec.currency,
                                part,
                            )
                        )
    if cap.reference_total is not None and cap.reference is not None:
        reference, assumed = reference_customer(cap.reference)
        lines = rate(determinants=reference, tariff=spec)
        t = totals(lines, spec.currency)
        bill = t.gross if cap.includes_vat else t.net
        if bill > cap.reference_total:
            part = f"({_describe(reference, assumed)})"
            out.append(
                CapExcess(
                    "(yearly bill of the reference customer)",
                    cap.label,
                    bill,
                    cap.reference_total,
                    "/year",
                    spec.currency,
                    part,
                )
            )
    elif cap.energy_per_mwh is not None:
        out += _unit_less_excesses(spec=spec, cap=cap)
    return out


# ------------------------------------------------------- charges without a per-unit limit
def reference_customer(reference: Determinants | None) -> tuple[Determinants, tuple[str, ...]]:
    """The customer whose yearly bill bounds the charges a cap has no per-unit limit for.

    The cap's own reference customer (billed for one whole year: twelve months from the
    month its period starts), else the Danish reference house of the price examples
    (130 m², 18.1 MWh, 9.05 kW, 518.87 m³ at ΔT 30 °C).  A zero volume, capacity or floor area
    next to heat used is read as "not stated" and the standard assumption is used (as
    :func:`parse_cap_inputs` does): the names of the assumed determinants come back too.
    """
    if reference is None:
        house = next(c for c in STANDARD_CUSTOMERS if c.key == REFERENCE_HOUSE)
        return standard_determinants(house, year=REFERENCE_YEAR), ("the standard reference house",)
    # the bill compared with a yearly benchmark is a yearly bill: twelve whole months from
    # the month the cap starts (exactly one year), whatever the cap's own period
    first = reference.period_start.replace(day=1)
    year = (first, first.replace(year=first.year + 1))
    if (reference.period_start, reference.period_end) != year:
        reference = replace(reference, period_start=year[0], period_end=year[1])
    standard = standard_assumptions(reference.energy_mwh)
    assumed = tuple(key for key in REFERENCE_ASSUMABLE if not getattr(reference, key))
    if not assumed:
        return reference, ()
    return replace(reference, **{key: standard[key] for key in assumed}), assumed


REFERENCE_HOUSE = "dk-house-130m2"
REFERENCE_YEAR = 2025  # any year of 365 days: the house is billed for one whole year


def _describe(det: Determinants, assumed: tuple[str, ...]) -> str:
    text = (
        f"reference customer {det.energy_mwh:f} MWh, {det.volume_m3:f} m³, {det.contracted_kw:f} kW, "
        f"{det.heated_area_m2:f} m²"
    )
    if assumed and assumed != ("the standard reference house",):
        text += f"; assumed: {', '.join(assumed)}"
    return text


def _unit_less_excesses(*, spec: TariffSpec, cap: CapLimits) -> list[CapExcess]:
    """Bound the charges a cap has no per-unit limit for, on the reference customer's bill.

    Rule (DOMAIN.md §4, §5): no charge escapes a cap because the cap has no limit in its unit.

    * a volume charge (per m³) is an energy-type charge (it prices the water that carries the
      energy): the reference customer's energy and volume charges together may not exceed the
      energy cap × its MWh;
    * an area charge (per m²) without an area cap is a capacity-type charge (Aarhus, Odense:
      the m² stand for the capacity): the reference customer's capacity and area charges
      (unit prices; band fees are under the fixed-charge cap) may not exceed the capacity cap
      × its kW;
    * what is still unbounded (capacity or area charges under a cap with neither a capacity
      nor an area limit, as the Dutch maximum price, which covers the whole bill) is bounded
      by the whole bill: the reference customer's yearly bill may not exceed what the cap's
      limits allow it: fixed cap + energy cap × MWh (+ capacity cap × kW, + area cap × m²).

    Amounts are the rated lines of the reference customer (:func:`reference_customer`) on the
    cap's VAT basis (each line's net amount, plus VAT rounded per line for a cap incl. VAT).
    Only charges without a limit of their own are checked here, so a tariff with limited
    charges only is checked exactly as before.
    """
    volume = [c for c in spec.components if isinstance(c, VolumeCharge)]
    area = [
        c
        for c in spec.components
        if isinstance(c, BandedCharge) and c.basis == "area" and cap.area_per_m2 is None
    ]
    capacity = [
        c
        for c in spec.components
        if isinstance(c, BandedCharge) and c.basis == "capacity" and cap.capacity_per_kw is None
    ]
    if not (volume or area or capacity):
        return []
    reference, assumed = reference_customer(cap.reference)
    lines = rate(determinants=reference, tariff=spec)
    who = _describe(reference, assumed)

    def amount(line: PricedLine) -> Decimal:
        if not cap.includes_vat:
            return line.amount
        return line.amount + quantize_money(line.amount * line.vat_rate, spec.currency)

    def by_code(selected: list[PricedLine]) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for ln in selected:
            out[ln.component] = out.get(ln.component, Decimal(0)) + amount(ln)
        return out

    def itemised(sums: dict[str, Decimal]) -> str:
        return " + ".join(f"{code} {value:f}" for code, value in sums.items())

    def bounded(charges, codes, selected, limit: str, allowed: Decimal, as_what: str) -> None:
        """``charges`` (and the others in ``codes``) together within ``allowed`` (a cap
        limit × the reference customer's quantity, described by ``limit``)."""
        sums = by_code([ln for ln in lines if ln.component in codes and selected(ln)])
        charged = sum(sums.values(), Decimal(0))
        if charged > allowed:
            out.append(
                CapExcess(
                    "+".join(c.code for c in charges),
                    limit,
                    charged,
                    allowed,
                    "/year",
                    spec.currency,
                    f"({as_what}; {who}: {itemised(sums)} =)",
                )
            )

    out: list[CapExcess] = []
    unbounded = {c.code for c in capacity}
    if volume:
        bounded(
            volume,
            {c.code for c in spec.components if isinstance(c, EnergyCharge)}
            | {c.code for c in volume},
            lambda ln: ln.kind in ("energy", "volume"),
            f"energy cap {cap.energy_per_mwh:f} {spec.currency}/MWh × {reference.energy_mwh:f} MWh",
            quantize_money(cap.energy_per_mwh * reference.energy_mwh, spec.currency),
            "volume charge as an energy-type charge",
        )
    if area:
        if cap.capacity_per_kw is None:
            unbounded |= {c.code for c in area}
        else:
            bounded(
                area,
                {c.code for c in area}
                | {
                    c.code
                    for c in spec.components
                    if isinstance(c, BandedCharge) and c.basis == "capacity"
                },
                lambda ln: ln.unit != "year",
                f"capacity cap {cap.capacity_per_kw:f} {spec.currency}/kW/year × "
                f"{reference.contracted_kw:f} kW",
                quantize_money(cap.capacity_per_kw * reference.contracted_kw, spec.currency),
                "area charge as a capacity-type charge",
            )
    if unbounded:
        bill = sum((amount(ln) for ln in lines), Decimal(0))
        allowed = quantize_money(
            (cap.fixed_per_year or 0)
            + cap.energy_per_mwh * reference.energy_mwh
            + (cap.capacity_per_kw or 0) * reference.contracted_kw
            + (cap.area_per_m2 or 0) * reference.heated_area_m2,
            spec.currency,
        )
        if bill > allowed:
            sums = by_code([ln for ln in lines if ln.component in unbounded])
            out.append(
                CapExcess(
                    "+".join(c.code for c in spec.components if c.code in unbounded),
                    f"{cap.label} for the whole yearly bill",
                    bill,
                    allowed,
                    "/year",
                    spec.currency,
                    f"(charges without a limit of their own: {itemised(sums)}; {who}: yearly bill)",
                )
            )
    return out
