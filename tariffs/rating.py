"""Pure rating: billing determinants × an approved tariff version → priced lines.

No ORM, no clock.  A tariff version is a tuple of *components* (frozen dataclasses below),
stored as JSON on :class:`tariffs.models.TariffVersion` and validated back into these
classes by :func:`components_from_data`.  Every published tariff named in DOMAIN.md §4 is
data over these six component types (see ``docs/tariffs.md`` for each encoding):

* :class:`FixedCharge`     subscription, meter fee, meter rent (per year or per month)
* :class:`BandedCharge`    capacity (kW, MW, Mcal/h, l/h) or heated area (m²) charges, flat,
                           graduated in bands (Holte, Fyn, Waldkraiburg) or with the band
                           containing the quantity pricing all of it plus its fixed fee
                           (Karlstad / Karlskoga kW bands)
* :class:`EnergyCharge`    per MWh, GJ or kWh; flat, seasonal (Karlstad) or in annual
                           blocks (Waldkraiburg)
* :class:`VolumeCharge`    per m³ of network water (Fyn, Kerteminde)
* :class:`CoolingIncentive` ΔT / return temperature bonus and penalty in every shape of
                           §4: % of the energy charge per °C beyond a band (HOFOR), money per
                           GJ/MWh per °C outside a dead band (Tårnby) or below a target (Holte),
                           % of the consumption charge per °C below a minimum (Hirtshals,
                           Hjørring), return temperature target depending on supply (Løjt)

Rules (documented in docs/tariffs.md):

* **Proration** of annual amounts: each calendar month counts 1/12 of a year; a partly
  covered month counts ``days covered / days in month`` of its twelfth.  A whole year is
  exactly 1, a whole month exactly 1/12, regardless of leap years.
* **VAT**: rating returns net lines and no VAT line.  When a version's prices are entered
  incl. VAT, every money price is converted to net first, ``price / (1 + VAT)`` rounded half
  up to 6 decimals.  Percentages are not prices and are not converted.
* **Rounding**: one rounding per line, ``quantize_money(quantity × unit_price × period
  fraction)`` half up, with the quantity and unit price as displayed (at most 6 decimals,
  as the invoice line stores them: a cooling rate × degrees with more is rounded half up
  first).  Totals are sums of lines.  A component may give several lines (one per band, season or block), all with
  the component's code.
* **Seasons**: energy is split by the months in ``Determinants.energy_by_month`` when given;
  otherwise in proportion to the days of the period in each season (monthly billing makes
  it exact).
* **Blocks** are annual quantities: with ``annual_energy_mwh`` (trailing 12 months) the
  period's energy is split in the proportion in which the annual consumption falls into the
  blocks; without it the block limits are scaled by the period's year fraction.  The
  blocks' quantities add up to the period's energy exactly (largest remainder).
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, ClassVar

from heatutility.errors import DomainError, ErrorItem
from heatutility.money import (
    MONEY_ROUNDING,
    PRICE_PLACES,
    minor_unit,
    quantize_energy,
    quantize_money,
    quantize_price,
)
from tariffs.limits import (
    COMPONENT_CODE_MAX_LENGTH,
    COMPONENT_DESCRIPTION_MAX_LENGTH,
    COMPONENT_PLACES,
    COMPONENT_VALUE_LIMIT,
)
from tariffs.units import ENERGY_UNITS, POWER_UNITS, convert_energy, convert_power

ZERO = Decimal("0")
ONE = Decimal("1")


# --------------------------------------------------------------------------- inputs/outputs
@dataclass(frozen=True)
class Determinants:
    period_start: dt.date  # local date, inclusive
    period_end: dt.date  # local date, exclusive
    energy_mwh: Decimal
    volume_m3: Decimal
    return_temp_c: Decimal | None  # volume-weighted average return temperature
    flow_temp_c: Decimal | None  # volume-weighted average flow (supply) temperature
    contracted_kw: Decimal
    heated_area_m2: Decimal
    annual_energy_mwh: Decimal | None = None  # trailing 12 months, for block prices
    # optional split of energy_mwh by calendar month (first day of month, MWh), for seasons
    energy_by_month: tuple[tuple[dt.date, Decimal], ...] | None = None


@dataclass(frozen=True)
class PricedLine:
    component: str
    kind: str
    description: str
    explanation: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal  # net of VAT, quantize_money'd
    vat_rate: Decimal
    # share of a year for annual prices (1 for consumption lines):
    # amount = quantize_money(quantity × unit_price × period_fraction)
    period_fraction: Decimal = ONE


# --------------------------------------------------------------------------- components
@dataclass(frozen=True)
class FixedCharge:
    """A fixed amount per connection: subscription, meter fee, meter rent."""

    type: ClassVar[str] = "fixed"
    code: str
    description: str
    amount: Decimal
    per: str = "year"  # year | month
    kind: str = "fixed"  # fixed | meter_rent


@dataclass(frozen=True)
class Band:
    upto: Decimal | None  # upper limit of the band in the charge's unit; None = open
    unit_price: Decimal = ZERO  # per unit and year
    fixed: Decimal = ZERO  # fee when the band is reached (graduated) / applies (whole)


@dataclass(frozen=True)
class BandedCharge:
    """A charge on contracted capacity or heated area, flat or in bands.

    ``graduated``: each band's unit price applies to the part of the quantity inside the
    band, and the fixed fee of every band reached is added (Holte, Fyn, Waldkraiburg).
    ``whole``: the band that contains the quantity prices all of it and adds its fixed fee
    (Karlstad-style kW bands).  A flat price is one open band.
    """

    type: ClassVar[str] = "banded"
    code: str
    description: str
    basis: str  # capacity | area
    unit: str  # kW | MW | Mcal/h | l/h | m²
    bands: tuple[Band, ...]
    mode: str = "graduated"  # graduated | whole
    fixed_per: str = "year"  # year | month: period of the bands' fixed fees
    design_delta_t: Decimal | None = None  # K, needed for l/h


@dataclass(frozen=True)
class Season:
    label: str
    months: tuple[int, ...]
    price: Decimal


@dataclass(frozen=True)
class Block:
    upto: Decimal | None  # annual quantity in the charge's unit; None = open
    price: Decimal


@dataclass(frozen=True)
class EnergyCharge:
    """Per MWh / GJ / kWh: flat ``price``, or ``seasons``, or annual ``blocks``."""

    type: ClassVar[str] = "energy"
    code: str
    description: str
    unit: str = "MWh"
    price: Decimal | None = None
    seasons: tuple[Season, ...] = ()
    blocks: tuple[Block, ...] = ()


@dataclass(frozen=True)
class VolumeCharge:
    type: ClassVar[str] = "volume"
    code: str
    description: str
    price: Decimal  # per m³


@dataclass(frozen=True)
class CoolingIncentive:
    """Bonus/penalty for cooling the network water (or a low return temperature).

    ``metric``: ``cooling`` (ΔT; higher is better) or ``return_temp`` (lower is better).
    ``source`` for cooling: ``energy_volume`` (ΔT = energy in ``factor_unit`` / m³ ×
    ``factor``; HOFOR MWh × 860, Tårnby GJ × 242) or ``temperatures`` (flow − return).
    Neutral band ``[target − band_below, target + band_above]``; degrees outside count from
    the band ``edge`` or from the ``target``.  Rates: ``percent_of_energy`` (a fraction of
    the energy charge per °C, e.g. 0.008 = 0.8 %) or ``per_unit`` (money per ``rate_unit``
    of energy per °C).  ``target_flow_slope``: the target moves with the supply temperature,
    ``target + slope × (flow − target_flow_ref)`` clamped to ``[target_min, target_max]``.
    """

    type: ClassVar[str] = "cooling"
    code: str
    description: str
    target: Decimal
    penalty_rate: Decimal | None
    bonus_rate: Decimal | None = None
    metric: str = "cooling"  # cooling | return_temp
    source: str = "energy_volume"  # energy_volume | temperatures
    factor: Decimal = Decimal("860")
    factor_unit: str = "MWh"
    band_below: Decimal = ZERO
    band_above: Decimal = ZERO
    count_from: str = "edge"  # edge | target
    rate_basis: str = "percent_of_energy"  # percent_of_energy | per_unit
    rate_unit: str = "MWh"
    energy_components: tuple[str, ...] = ()  # empty = every energy component
    metric_places: int | None = None
    max_degrees: Decimal | None = None
    target_flow_slope: Decimal | None = None
    target_flow_ref: Decimal | None = None
    target_min: Decimal | None = None
    target_max: Decimal | None = None


Component = FixedCharge | BandedCharge | EnergyCharge | VolumeCharge | CoolingIncentive
COMPONENT_TYPES: dict[str, type] = {
    c.type: c for c in (FixedCharge, BandedCharge, EnergyCharge, VolumeCharge, CoolingIncentive)
}


@dataclass(frozen=True)
class TariffSpec:
    """Immutable snapshot of an approved TariffVersion."""

    version_id: int
    tariff_code: str
    currency: str
    vat_rate: Decimal
    components: tuple[Component, ...] = field(default_factory=tuple)
    prices_include_vat: bool = False
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None

    @property
    def capacity_codes(self) -> frozenset[str]:
        """Codes of the components priced on the contracted capacity (banded charges on
        kW or another power unit): the ones a capacity change inside a period reprices."""
        return frozenset(
            c.code for c in self.components if isinstance(c, BandedCharge) and c.basis != "area"
        )

    @property
    def area_codes(self) -> frozenset[str]:
        """Codes of the components priced on the heated area (banded charges on m²): the
        ones an area change inside a period reprices."""
        return frozenset(
            c.code for c in self.components if isinstance(c, BandedCharge) and c.basis == "area"
        )

    @property
    def prices_by_season(self) -> bool:
        """Energy priced by season: a bill over several months then wants each month's
        energy (``Determinants.energy_by_month``)."""
        return any(isinstance(c, EnergyCharge) and c.seasons for c in self.components)


class TariffComponentsInvalid(DomainError):
    code = "tariff_components_invalid"


class RatingError(DomainError):
    code = "rating_error"


# --------------------------------------------------------------------------- helpers
def year_fraction(start: dt.date, end: dt.date) -> Fraction:
    """Share of a year of ``[start, end)``: each calendar month is 1/12, split by days."""
    if end < start:
        raise RatingError(f"period ends {end} before it starts {start}")
    total = Fraction(0)
    day = start
    while day < end:
        days_in_month = calendar.monthrange(day.year, day.month)[1]
        month_end = dt.date(day.year, day.month, days_in_month) + dt.timedelta(days=1)
        stop = min(end, month_end)
        total += Fraction((stop - day).days, days_in_month * 12)
        day = stop
    return total


def _dec(value: Fraction, places: int = 10) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        Decimal(1).scaleb(-places)
    )


def _fmt(value: Decimal, places: int = 2) -> str:
    return f"{value:,.{places}f}"


def _exact(value: Decimal, places: int = 2) -> str:
    """``value`` with at least ``places`` decimals and every further one it has, so that an
    explanation reproduces its amount: a price of 699.99 incl. 25 % VAT is 559.992 net,
    not "559.99"; 592.520000 is "592.52"."""
    whole, _, frac = f"{value:,f}".partition(".")
    frac = frac.rstrip("0").ljust(places, "0")
    return f"{whole}.{frac}" if frac else whole


def _year_text(fraction: Fraction) -> str:
    """A year fraction as the exact ratio rating multiplies by: "1/12 year", not 0.083333."""
    if fraction.denominator == 1:
        return f"{fraction.numerator} year{'' if fraction.numerator == 1 else 's'}"
    return f"{fraction.numerator}/{fraction.denominator} year"


_ENERGY_EXP = Decimal(1).scaleb(-6)  # quantize_energy's exponent (ENERGY_PLACES)


def _qty(value: Fraction | Decimal) -> Decimal:
    if type(value) is Decimal:  # fast path: exactly quantize_energy's operation
        return value.quantize(_ENERGY_EXP, rounding=MONEY_ROUNDING)
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    q = quantize_energy(value)
    return q


@functools.lru_cache(maxsize=4096)
def _period(start: dt.date, end: dt.date) -> tuple[Fraction, Decimal, Decimal, Decimal, str]:
    """``year_fraction`` of ``[start, end)`` and everything rating derives from it.

    Cached: a billing run prices thousands of connections over the same few periods.
    """
    fraction = year_fraction(start, end)
    fraction_dec = _dec(fraction)
    return (
        fraction,
        fraction_dec,
        Decimal(fraction.numerator),
        Decimal(fraction.denominator),
        f"{_year_text(fraction)} ({start} to {end})",
    )


class _Compiled:
    """Per-TariffSpec constants, built once per spec object instead of once per bill.

    Holds the currency's minor unit, net prices (``price / (1 + VAT)`` for prices incl.
    VAT), the component order and the static parts of every explanation (``static``,
    keyed by component identity; filled lazily by the handlers).  A spec is immutable, so
    nothing here can go stale; results are the same as computing everything per call.
    """

    __slots__ = (
        "cooling",
        "cur",
        "include_vat",
        "lines",
        "minor",
        "nets",
        "plain",
        "static",
        "vat_rate",
    )

    def __init__(self, spec: TariffSpec) -> None:
        self.cur = spec.currency
        try:
            self.minor: Decimal | None = minor_unit(spec.currency)
        except ValueError:  # unknown currency: quantize_money raises when a line is priced
            self.minor = None
        self.vat_rate = spec.vat_rate
        self.include_vat = spec.prices_include_vat
        self.nets: dict[Decimal, Decimal] = {}
        self.static: dict[int, Any] = {}
        # (component index, period, quantity it depends on) -> its lines, for the
        # components whose lines depend on nothing else (see :func:`rate`)
        self.lines: dict[tuple, tuple[PricedLine, ...]] = {}
        self.plain = tuple(
            (i, c.type, c)
            for i, c in enumerate(spec.components)
            if not isinstance(c, CoolingIncentive)
        )
        self.cooling = tuple(
            (i, c) for i, c in enumerate(spec.components) if isinstance(c, CoolingIncentive)
        )


# id(spec) -> (spec, compiled); the spec is kept alive by the entry, so its id is not reused
_COMPILED: dict[int, tuple[TariffSpec, _Compiled]] = {}
_COMPILED_MAX = 512


def _compiled(spec: TariffSpec) -> _Compiled:
    entry = _COMPILED.get(id(spec))
    if entry is not None and entry[0] is spec:
        return entry[1]
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.clear()
    compiled = _Compiled(spec)
    _COMPILED[id(spec)] = (spec, compiled)
    return compiled


_new_object = object.__new__


# unit -> (numerator, denominator) of one MWh in that unit (exact, from tariffs.units)
_MWH_RATIO: dict[str, tuple[int, int]] = {}


def _mwh_ratio(unit: str) -> tuple[int, int]:
    ratio = _MWH_RATIO.get(unit)
    if ratio is None:
        one = convert_energy(1, "MWh", unit)  # raises UnitError for an unknown unit
        ratio = _MWH_RATIO[unit] = (one.numerator, one.denominator)
    return ratio


def _mwh_qty(value: Decimal, unit: str) -> Decimal:
    """``_qty(convert_energy(value, "MWh", unit))`` in integers instead of Fractions.

    The same exact rational divided once (Decimal division is correctly rounded, so an
    unreduced numerator/denominator gives the same result), then the same quantize.
    """
    if type(value) is not Decimal or not value.is_finite():
        return _qty(convert_energy(value, "MWh", unit))
    p, q = _mwh_ratio(unit)
    n, d = value.as_integer_ratio()
    return (Decimal(n * p) / Decimal(d * q)).quantize(_ENERGY_EXP, rounding=MONEY_ROUNDING)


class _Pricer:
    def __init__(
        self, spec: TariffSpec, det: Determinants, compiled: _Compiled | None = None
    ) -> None:
        self.spec = spec
        self.det = det
        c = compiled if compiled is not None else _compiled(spec)
        self.cur = c.cur
        self.minor = c.minor
        self.vat_rate = c.vat_rate
        self.include_vat = c.include_vat
        self.nets = c.nets
        self.static = c.static
        (
            self.fraction,
            self.fraction_dec,
            self.fraction_num,
            self.fraction_den,
            self.period_str,
        ) = _period(det.period_start, det.period_end)
        self.energy_amounts: dict[str, Decimal] = {}

    def net(self, price: Decimal) -> Decimal:
        if self.include_vat:
            net = self.nets.get(price)
            if net is None:
                net = self.nets[price] = quantize_price(price / (ONE + self.vat_rate))
            return net
        return price

    def line(self, comp, kind, description, explanation, quantity, unit, unit_price, annual):
        value = quantity * unit_price
        if annual:
            # the same one division a Fraction would end in; exact whenever the result terminates
            value = value * self.fraction_num / self.fraction_den
        if self.minor is not None and type(value) is Decimal:
            amount = value.quantize(self.minor, rounding=MONEY_ROUNDING)  # = quantize_money
        else:
            amount = quantize_money(value, self.cur)
        # PricedLine(...) without the frozen dataclass's per-field object.__setattr__: the
        # same instance (fields only, no __post_init__), a few µs cheaper per line
        ln = _new_object(PricedLine)
        ln.__dict__.update(
            component=comp.code,
            kind=kind,
            description=description,
            explanation=explanation,
            quantity=quantity,
            unit=unit,
            unit_price=unit_price,
            amount=amount,
            vat_rate=self.vat_rate,
            period_fraction=self.fraction_dec if annual else ONE,
        )
        return ln

    def period_text(self) -> str:
        return self.period_str

    # -- components
    def fixed(self, c: FixedCharge) -> list[PricedLine]:
        static = self.static.get(id(c))
        if static is None:
            annual = self.net(c.amount) * (12 if c.per == "month" else 1)
            per_text = (
                f"{_exact(self.net(c.amount))} {self.cur}/month × 12" if c.per == "month" else ""
            )
            head = f"{_exact(annual)} {self.cur}/year{' (' + per_text + ')' if per_text else ''} × "
            static = self.static[id(c)] = (annual, head)
        annual, head = static
        return [
            self.line(
                c, c.kind, c.description, head + self.period_str, ONE, "year", annual, annual=True
            )
        ]

    def _banded_static(self, c: BandedCharge) -> tuple:
        """Per band: (fee or None, fee description, fee text head, net unit price,
        description, text after the quantity) — everything not depending on the bill."""
        fee_factor = 12 if c.fixed_per == "month" else 1
        rows = []
        lower = ZERO
        for band in c.bands:
            top = band.upto
            if c.mode == "whole":
                label = f"band up to {band.upto} {c.unit}" if band.upto is not None else "top band"
                fee_desc = f"{c.description} – fixed fee ({label})"
            else:
                label = (
                    f"{lower.normalize():f}–{top.normalize():f} {c.unit}"
                    if top is not None
                    else f"above {lower.normalize():f} {c.unit}"
                )
                fee_desc = f"{c.description} – fixed ({label})"
            fee = self.net(band.fixed) * fee_factor if band.fixed else None
            price = self.net(band.unit_price)
            rows.append(
                (
                    fee,
                    fee_desc,
                    f"{_exact(fee)} {self.cur}/year × " if fee is not None else "",
                    price,
                    f"{c.description} ({label})",
                    f" {c.unit} × {_exact(price)} {self.cur}/{c.unit}/year × ",
                )
            )
            if top is not None:
                lower = top
        return "area" if c.basis == "area" else "capacity", tuple(rows)

    def banded(self, c: BandedCharge) -> list[PricedLine]:
        det = self.det
        if c.basis == "area":
            qty = _qty(det.heated_area_m2)
        else:
            qty = _qty(
                det.contracted_kw
                if c.unit == "kW"
                else convert_power(det.contracted_kw, "kW", c.unit, delta_t_k=c.design_delta_t)
            )
        static = self.static.get(id(c))
        if static is None:
            static = self.static[id(c)] = self._banded_static(c)
        kind, rows = static
        period = self.period_str
        lines: list[PricedLine] = []
        if c.mode == "whole":
            index = next(
                (j for j, b in enumerate(c.bands) if b.upto is None or qty <= b.upto),
                len(c.bands) - 1,
            )
            fee, fee_desc, fee_head, price, desc, tail = rows[index]
            if fee is not None:
                lines.append(
                    self.line(c, kind, fee_desc, fee_head + period, ONE, "year", fee, annual=True)
                )
            if price:
                lines.append(
                    self.line(
                        c,
                        kind,
                        desc,
                        f"{qty.normalize():f}{tail}{period}",
                        qty,
                        c.unit,
                        price,
                        annual=True,
                    )
                )
            return lines
        lower = ZERO
        for band, (fee, fee_desc, fee_head, price, desc, tail) in zip(c.bands, rows, strict=True):
            top = band.upto
            if qty <= lower and lower > 0:
                break
            part = (min(qty, top) if top is not None else qty) - lower
            part = max(part, ZERO)
            if fee is not None:
                lines.append(
                    self.line(c, kind, fee_desc, fee_head + period, ONE, "year", fee, annual=True)
                )
            if price and part > 0:
                lines.append(
                    self.line(
                        c,
                        kind,
                        desc,
                        f"{part.normalize():f}{tail}{period}",
                        part,
                        c.unit,
                        price,
                        annual=True,
                    )
                )
            if top is None or qty <= top:
                break
            lower = top
        return lines

    def energy(self, c: EnergyCharge) -> list[PricedLine]:
        det = self.det
        total = _qty(det.energy_mwh) if c.unit == "MWh" else _mwh_qty(det.energy_mwh, c.unit)
        lines: list[PricedLine] = []
        if c.seasons:
            shares = self._season_shares(c)
            own = None
            if not any(shares.values()) and det.energy_by_month:
                # monthly energies that cancel exactly: each season its own, as when they
                # do not (the quantities then add up to the period's 0 all the same)
                own = self._season_energies(c)
                shares = {i: Fraction(mwh) for i, mwh in own.items()}
            remaining = total
            parts: list[tuple[Season, Decimal]] = []
            nonzero = [s for i, s in enumerate(c.seasons) if shares[i] != 0]  # a negative month too
            if not nonzero and total:  # no day or monthly energy to share by: the period's month
                nonzero = [s for s in c.seasons if det.period_start.month in s.months][:1]
            index = {id(s): i for i, s in enumerate(c.seasons)}
            for s in nonzero:
                if s is nonzero[-1]:
                    q = remaining
                elif own is not None:
                    mwh = own[index[id(s)]]
                    q = _qty(mwh) if c.unit == "MWh" else _mwh_qty(mwh, c.unit)
                    remaining -= q
                else:
                    q = _qty(Fraction(total) * shares[index[id(s)]])
                    remaining -= q
                parts.append((s, q))
            static = self.static.get(id(c))
            if static is None:
                static = self.static[id(c)] = {
                    id(s): (
                        self.net(s.price),
                        f"{c.description} ({s.label})",
                        f" {c.unit} × {_exact(self.net(s.price))} {self.cur}/{c.unit}",
                    )
                    for s in c.seasons
                }
            for s, q in parts:
                price, desc, tail = static[id(s)]
                lines.append(
                    self.line(
                        c,
                        "energy",
                        desc,
                        f"{q.normalize():f}{tail}",
                        q,
                        c.unit,
                        price,
                        annual=False,
                    )
                )
        elif c.blocks:
            for label, q, price in self._block_parts(c, total):
                price = self.net(price)
                lines.append(
                    self.line(
                        c,
                        "energy",
                        f"{c.description} ({label})",
                        f"{q.normalize():f} {c.unit} × {_exact(price)} {self.cur}/{c.unit}",
                        q,
                        c.unit,
                        price,
                        annual=False,
                    )
                )
        else:
            static = self.static.get(id(c))
            if static is None:
                price = self.net(c.price)
                static = self.static[id(c)] = (
                    price,
                    f" {c.unit} × {_exact(price)} {self.cur}/{c.unit}",
                )
            price, tail = static
            lines.append(
                self.line(
                    c,
                    "energy",
                    c.description,
                    f"{total.normalize():f}{tail}",
                    total,
                    c.unit,
                    price,
                    annual=False,
                )
            )
        self.energy_amounts[c.code] = sum((ln.amount for ln in lines), ZERO)
        return lines

    def _season_energies(self, c: EnergyCharge) -> dict[int, Decimal]:
        """Each season's measured MWh (``energy_by_month`` summed), by its position."""
        month_season = {m: i for i, s in enumerate(c.seasons) for m in s.months}
        own = dict.fromkeys(range(len(c.seasons)), ZERO)
        for month, mwh in self.det.energy_by_month:
            own[month_season[month.month]] += mwh
        return own

    def _season_shares(self, c: EnergyCharge) -> dict[int, Fraction]:
        """Each season's share of the energy, by its position (one label may name two
        ranges of months, each with its own price)."""
        det = self.det
        month_season = {m: i for i, s in enumerate(c.seasons) for m in s.months}
        weights = {i: Fraction(0) for i in range(len(c.seasons))}
        if det.energy_by_month:
            for month, mwh in det.energy_by_month:
                weights[month_season[month.month]] += Fraction(mwh)
        else:
            # days of the period in each season, counted a month at a time in integers
            days = dict.fromkeys(range(len(c.seasons)), 0)
            day = det.period_start
            while day < det.period_end:
                month_end = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
                stop = min(det.period_end, month_end)
                days[month_season[day.month]] += (stop - day).days
                day = stop
            weights = {i: Fraction(n) for i, n in days.items()}
        total = sum(weights.values(), Fraction(0))
        if total == 0:
            return {k: Fraction(0) for k in weights}
        return {k: v / total for k, v in weights.items()}

    def _block_parts(self, c: EnergyCharge, total: Decimal) -> list[tuple[str, Decimal, Decimal]]:
        det = self.det
        if det.annual_energy_mwh:
            annual = Fraction(convert_energy(det.annual_energy_mwh, "MWh", c.unit))
            scale = Fraction(1)
            base = annual
        else:
            base = Fraction(total)
            scale = self.fraction
        lower = Fraction(0)
        prev: Decimal | None = (
            None  # the previous block's annual limit (lower / scale; scale may be 0)
        )
        raw: list[tuple[str, Fraction, Decimal]] = []
        for b in c.blocks:
            top = Fraction(b.upto) * scale if b.upto is not None else None
            inside = (min(base, top) if top is not None else base) - lower
            inside = max(inside, Fraction(0))
            label = (
                f"up to {b.upto.normalize():f} {c.unit}/year"
                if prev is None and b.upto is not None
                else f"above {(prev or ZERO).normalize():f} {c.unit}/year"
                if b.upto is None
                else f"{prev.normalize():f}–{b.upto.normalize():f} {c.unit}/year"
            )
            if inside > 0:
                raw.append((label, inside, b.price))
            if top is None or base <= top:
                break
            lower = top
            prev = b.upto
        if det.annual_energy_mwh and base > 0:
            shares = [Fraction(total) * inside / base for _, inside, _ in raw]
        else:
            shares = [inside for _, inside, _ in raw]
        quantities = _allocate(total, shares)
        parts = [(label, q, price) for (label, _, price), q in zip(raw, quantities, strict=True)]
        return parts or [(c.description, ZERO, c.blocks[0].price)]

    def volume(self, c: VolumeCharge) -> list[PricedLine]:
        q = _qty(self.det.volume_m3)
        static = self.static.get(id(c))
        if static is None:
            price = self.net(c.price)
            static = self.static[id(c)] = (price, f" m³ × {_exact(price)} {self.cur}/m³")
        price, tail = static
        return [
            self.line(
                c, "volume", c.description, f"{q.normalize():f}{tail}", q, "m³", price, annual=False
            )
        ]

    def cooling(self, c: CoolingIncentive) -> list[PricedLine]:
        det = self.det
        metric, metric_text = self._cooling_metric(c)
        if metric is None:
            return [
                self.line(
                    c,
                    "cooling",
                    c.description,
                    f"no {metric_text} data for the period: no bonus or penalty",
                    ZERO,
                    c.rate_unit if c.rate_basis == "per_unit" else self.cur,
                    ZERO,
                    annual=False,
                )
            ]
        target = c.target
        if c.target_flow_slope is not None and det.flow_temp_c is not None:
            target = c.target + c.target_flow_slope * (
                det.flow_temp_c - (c.target_flow_ref or ZERO)
            )
            if c.target_min is not None:
                target = max(target, c.target_min)
            if c.target_max is not None:
                target = min(target, c.target_max)
        low, high = target - c.band_below, target + c.band_above
        higher_is_better = c.metric == "cooling"
        degrees, rate, verdict = ZERO, ZERO, "inside the neutral band: no bonus or penalty"
        worse = metric < low if higher_is_better else metric > high
        better = metric > high if higher_is_better else metric < low
        if worse:
            edge = (low if higher_is_better else high) if c.count_from == "edge" else target
            outside = abs(edge - metric)
            where = f"{_fmt(outside, 2)} °C {'below' if higher_is_better else 'above'} {_exact(edge, 1)} °C"
            if c.penalty_rate:
                degrees, rate, verdict = outside, c.penalty_rate, f"{where}: penalty"
            else:  # a bonus-only tariff: outside the band on the penalty side, not inside it
                verdict = f"{where}: no penalty in this tariff"
        elif better:
            edge = (high if higher_is_better else low) if c.count_from == "edge" else target
            outside = abs(metric - edge)
            where = f"{_fmt(outside, 2)} °C {'above' if higher_is_better else 'below'} {_exact(edge, 1)} °C"
            if c.bonus_rate:
                degrees, rate, verdict = outside, -c.bonus_rate, f"{where}: bonus"
            else:
                verdict = f"{where}: no bonus in this tariff"
        if c.max_degrees is not None:
            degrees = min(degrees, c.max_degrees)
        head = f"{metric_text} {_fmt(metric, 2)} °C, neutral band {_exact(low, 1)}–{_exact(high, 1)} °C; {verdict}"
        # rate × degrees can have more decimals than an invoice line's unit price keeps (6):
        # the line carries it rounded half up, and its amount and text use that price
        if c.rate_basis == "percent_of_energy":
            codes = c.energy_components or tuple(self.energy_amounts)
            base = sum((self.energy_amounts.get(code, ZERO) for code in codes), ZERO)
            exact = rate * degrees
            unit_price = _unit_price(exact)
            expl = f"{head}; {_fmt(base)} {self.cur} energy charge × " + (
                f"{rate * 100:f} % × {_exact(degrees)} °C"
                if unit_price == exact
                else f"{_exact(unit_price * 100)} % ({rate * 100:f} % × {_exact(degrees)} °C = {_exact(exact * 100)} %, rounded half up)"
            )
            return [
                self.line(
                    c, "cooling", c.description, expl, base, self.cur, unit_price, annual=False
                )
            ]
        q = _mwh_qty(det.energy_mwh, c.rate_unit)
        price = self.net(rate) if rate else ZERO
        exact = price * degrees
        unit_price = _unit_price(exact)
        per = f"{self.cur}/{c.rate_unit}"
        expl = f"{head}; {q.normalize():f} {c.rate_unit} × " + (
            f"{_exact(price)} {per}/°C × {_exact(degrees)} °C"
            if unit_price == exact
            else f"{_exact(unit_price)} {per} ({_exact(price)} {per}/°C × {_exact(degrees)} °C = {_exact(exact)} {per}, rounded half up)"
        )
        return [
            self.line(c, "cooling", c.description, expl, q, c.rate_unit, unit_price, annual=False)
        ]

    def _cooling_metric(self, c: CoolingIncentive) -> tuple[Decimal | None, str]:
        det = self.det
        text = "cooling ΔT"
        if c.metric == "return_temp":
            value, text = det.return_temp_c, "average return temperature"
            if value is None:
                return None, text
        elif c.source == "temperatures":
            if det.flow_temp_c is None or det.return_temp_c is None:
                return None, "cooling (flow − return)"
            value = det.flow_temp_c - det.return_temp_c
        else:
            if not det.volume_m3 or det.volume_m3 <= 0:
                return None, "cooling"
            value = _cooling_dt(det.energy_mwh, det.volume_m3, c.factor, c.factor_unit)
        if c.metric_places is not None:
            value = value.quantize(Decimal(1).scaleb(-c.metric_places), rounding=MONEY_ROUNDING)
        return value, text


def _unit_price(value: Decimal) -> Decimal:
    """``value`` as a line's unit price: unchanged with at most ``PRICE_PLACES`` decimals
    (the invoice line's column), else ``quantize_price`` (half up)."""
    return value if value.as_tuple().exponent >= -PRICE_PLACES else quantize_price(value)


def _allocate(total: Decimal, shares: Sequence[Fraction]) -> list[Decimal]:
    """Exact ``shares`` of ``total`` (one sign, adding up to it) as 6-decimal quantities that
    add up to ``total`` exactly (largest remainder): each share rounded towards zero, the
    millionths left over to the largest remainders, ties to the later share.

    Whenever rounding each share half up on its own already adds up, that is the result;
    otherwise a share is 0.000001 off its own rounding (never off its exact value by as
    much) instead of the lines missing the period's energy: three blocks rounded one by one
    gave 2.316308 + 3.474462 + 2.739210 = 8.529980 for 8.529981 MWh.
    """
    sign = -1 if total < 0 else 1
    units: list[int] = []
    remainders: list[Fraction] = []
    for share in shares:
        scaled = abs(share) * 1_000_000
        units.append(scaled.numerator // scaled.denominator)
        remainders.append(scaled - units[-1])
    left = int(abs(total).scaleb(6)) - sum(units)
    for i in sorted(range(len(units)), key=lambda i: (remainders[i], i), reverse=True)[:left]:
        units[i] += 1
    return [Decimal(sign * u).scaleb(-6) for u in units]


def _cooling_dt(energy_mwh: Decimal, volume_m3: Decimal, factor: Decimal, unit: str) -> Decimal:
    """``_dec(energy in unit / volume × factor, 6)`` (volume > 0) in integers: the same
    exact rational, one correctly rounded division, the same quantize."""
    if not all(type(v) is Decimal and v.is_finite() for v in (energy_mwh, volume_m3, factor)):
        energy = Fraction(convert_energy(energy_mwh, "MWh", unit))
        return _dec(energy / Fraction(volume_m3) * Fraction(factor), 6)
    p, q = _mwh_ratio(unit)
    en, ed = energy_mwh.as_integer_ratio()
    vn, vd = volume_m3.as_integer_ratio()
    fn, fd = factor.as_integer_ratio()
    value = Decimal(en * p * vd * fn) / Decimal(ed * q * vn * fd)
    return value.quantize(Decimal(1).scaleb(-6))


_LINES_MEMO_MAX = 4096


def _priced(
    pricer: _Pricer, compiled: _Compiled, index: int, handler: str, comp
) -> Sequence[PricedLine]:
    """``pricer.<handler>(comp)``; fixed and banded charges once per distinct input.

    A fixed charge's lines depend only on the period, a banded charge's only on the
    period and the contracted capacity (or heated area): a billing run prices the same
    few of those for thousands of connections, so they are priced once and the same
    (frozen) ``PricedLine`` objects returned.  Equal inputs give equal lines: the
    quantity is quantized before anything is derived from it.
    """
    if handler == "fixed":
        det = pricer.det
        key = (index, det.period_start, det.period_end)
    elif handler == "banded":
        det = pricer.det
        basis = det.heated_area_m2 if comp.basis == "area" else det.contracted_kw
        key = (index, det.period_start, det.period_end, basis)
    else:
        return getattr(pricer, handler)(comp)
    memo = compiled.lines
    lines = memo.get(key)
    if lines is None:
        if len(memo) >= _LINES_MEMO_MAX:
            memo.clear()
        lines = memo[key] = tuple(getattr(pricer, handler)(comp))
    return lines


def rate(*, determinants: Determinants, tariff: TariffSpec) -> list[PricedLine]:
    """Price one connection's determinants for one period under one tariff version."""
    compiled = _compiled(tariff)
    pricer = _Pricer(tariff, determinants, compiled)
    if not compiled.cooling:  # lines in component order
        out: list[PricedLine] = []
        for index, handler, comp in compiled.plain:
            out.extend(_priced(pricer, compiled, index, handler, comp))
        return out
    # cooling incentives last (they need the energy charges), lines still in component order
    by_index: dict[int, list[PricedLine]] = {}
    for index, handler, comp in compiled.plain:
        by_index[index] = list(_priced(pricer, compiled, index, handler, comp))
    for index, comp in compiled.cooling:
        by_index[index] = pricer.cooling(comp)
    return [line for index in sorted(by_index) for line in by_index[index]]


@dataclass(frozen=True)
class Totals:
    net: Decimal
    vat: Decimal
    gross: Decimal


def totals(lines: list[PricedLine], currency: str) -> Totals:
    """Net = Σ lines; VAT per rate on the rate's net sum, rounded half up (invoice rule)."""
    net = sum((ln.amount for ln in lines), ZERO)
    by_rate: dict[Decimal, Decimal] = {}
    for ln in lines:
        by_rate[ln.vat_rate] = by_rate.get(ln.vat_rate, ZERO) + ln.amount
    vat = sum((quantize_money(amount * r, currency) for r, amount in by_rate.items()), ZERO)
    return Totals(net=net, vat=vat, gross=net + vat)


# --------------------------------------------------------------------------- (de)serialise
# Validation is total: whatever JSON shape comes in, the result is the component tuple or
# TariffComponentsInvalid listing every problem with its path (``components.0.blocks.1.price``).
_VALUE_EXP = Decimal(1).scaleb(-COMPONENT_PLACES)


def _parse_decimal(
    value: Any,
    path: str,
    errors: list[ErrorItem],
    *,
    optional=False,
    positive=False,
    non_negative=False,
) -> Decimal | None:
    """A finite number ``|x| < 10⁹`` with at most 6 decimals (see ``tariffs.limits``)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if optional:
            return None
        errors.append(ErrorItem(code="required", message="This value is required.", field=path))
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        errors.append(ErrorItem(code="invalid", message="A number is required.", field=path))
        return None
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        errors.append(
            ErrorItem(code="invalid", message=f"{_short(value)} is not a number.", field=path)
        )
        return None
    if not d.is_finite():
        errors.append(ErrorItem(code="invalid", message="Must be a finite number.", field=path))
        return None
    if d.copy_abs() >= COMPONENT_VALUE_LIMIT:  # copy_abs: exact, never overflows
        errors.append(
            ErrorItem(
                code="out_of_range",
                message=f"Must be between -{COMPONENT_VALUE_LIMIT:,} and {COMPONENT_VALUE_LIMIT:,}.",
                field=path,
            )
        )
        return None
    if d != d.quantize(_VALUE_EXP):
        errors.append(
            ErrorItem(
                code="max_decimal_places",
                message=f"At most {COMPONENT_PLACES} decimal places.",
                field=path,
            )
        )
        return None
    if positive and d <= 0:
        errors.append(ErrorItem(code="min_value", message="Must be above 0.", field=path))
        return None
    if non_negative and d < 0:
        errors.append(ErrorItem(code="min_value", message="Must not be negative.", field=path))
        return None
    return d


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _choice(value, choices, path, errors):
    if not isinstance(value, str) or value not in choices:
        errors.append(
            ErrorItem(
                code="invalid_choice",
                message=f"{_short(value)} is not one of {', '.join(choices)}.",
                field=path,
            )
        )
    return value


def _text(value: Any, path: str, errors: list[ErrorItem], *, max_length: int) -> str | None:
    if not isinstance(value, str):
        errors.append(ErrorItem(code="invalid", message="A text is required.", field=path))
        return None
    if len(value) > max_length:
        errors.append(
            ErrorItem(code="max_length", message=f"At most {max_length} characters.", field=path)
        )
        return None
    return value


def _items(value: Any, path: str, errors: list[ErrorItem]) -> list:
    """A list (missing or null = empty); anything else is an error."""
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(ErrorItem(code="invalid", message="Expected a list.", field=path))
        return []
    return value


def _object(value: Any, path: str, errors: list[ErrorItem]) -> bool:
    if not isinstance(value, dict):
        errors.append(ErrorItem(code="invalid", message="Expected an object.", field=path))
        return False
    return True


def components_from_data(data: Any) -> tuple[Component, ...]:
    """Validate JSON-ish component data into component dataclasses (or raise with paths)."""
    errors: list[ErrorItem] = []
    if not isinstance(data, list):
        raise TariffComponentsInvalid(
            "Components must be a list.",
            errors=[ErrorItem(code="invalid", message="Expected a list.", field="components")],
        )
    result: list[tuple[int, Component]] = []
    codes: set[str] = set()
    for i, raw in enumerate(data):
        p = f"components.{i}"
        if not _object(raw, p, errors):
            continue
        ctype = raw.get("type")
        if not isinstance(ctype, str) or ctype not in COMPONENT_TYPES:
            errors.append(
                ErrorItem(
                    code="invalid_choice",
                    message=f"type must be one of {', '.join(COMPONENT_TYPES)}.",
                    field=f"{p}.type",
                )
            )
            continue
        code = raw.get("code")
        if code is None or (isinstance(code, str) and not code.strip()):
            errors.append(
                ErrorItem(
                    code="required", message="Every component needs a code.", field=f"{p}.code"
                )
            )
            code = ""
        else:
            code = (
                _text(code, f"{p}.code", errors, max_length=COMPONENT_CODE_MAX_LENGTH) or ""
            ).strip()
            if code in codes:
                errors.append(
                    ErrorItem(
                        code="duplicate",
                        message=f"Component code {code!r} is used twice.",
                        field=f"{p}.code",
                    )
                )
            codes.add(code)
        desc = raw.get("description")
        if desc is None or desc == "":
            desc = code
        else:
            desc = (
                _text(desc, f"{p}.description", errors, max_length=COMPONENT_DESCRIPTION_MAX_LENGTH)
                or code
            )
        known = {f.name for f in fields(COMPONENT_TYPES[ctype])} | {"type"}
        for key in raw:
            if key not in known:
                errors.append(
                    ErrorItem(
                        code="unknown_field",
                        message=f"Unknown field {_short(key)} for a {ctype} component.",
                        field=f"{p}.{key}",
                    )
                )
        try:
            comp = _build(ctype, raw, code, desc, p, errors)
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            # a safety net only: _build checks every shape it reads
            errors.append(
                ErrorItem(code="invalid", message=str(exc) or type(exc).__name__, field=p)
            )
            continue
        if comp is not None:
            result.append((i, comp))
    energy_codes = {c.code for _, c in result if isinstance(c, EnergyCharge)}
    for i, c in result:
        if isinstance(c, CoolingIncentive):
            for k, ref in enumerate(c.energy_components):
                if ref not in energy_codes:
                    errors.append(
                        ErrorItem(
                            code="invalid",
                            message=f"{ref!r} is not an energy component of this version.",
                            field=f"components.{i}.energy_components.{k}",
                        )
                    )
    if errors:
        raise TariffComponentsInvalid("The tariff components are invalid.", errors=errors)
    return tuple(c for _, c in result)


def _month(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and 1 <= value <= 12:
        return value
    return None


def _limits(
    items: list, key: str, p: str, name: str, errors: list[ErrorItem]
) -> list[Decimal | None]:
    """The ``upto`` of each band or block: increasing, above 0, only the last open."""
    out: list[Decimal | None] = []
    previous = ZERO
    for j, item in enumerate(items):
        path = f"{p}.{j}.{key}"
        upto = (
            _parse_decimal(item.get(key), path, errors, optional=True)
            if isinstance(item, dict)
            else None
        )
        if isinstance(item, dict):
            if upto is not None and upto <= previous:
                errors.append(
                    ErrorItem(
                        code="invalid",
                        message=f"{name} limits must be above 0 and increase.",
                        field=path,
                    )
                )
            if upto is None and j != len(items) - 1 and (item.get(key) in (None, "")):
                errors.append(
                    ErrorItem(
                        code="invalid",
                        message=f"Only the last {name.lower()} may be open.",
                        field=path,
                    )
                )
            if upto is not None and j == len(items) - 1:
                errors.append(
                    ErrorItem(
                        code="invalid",
                        message=f"The last {name.lower()} must be open ({key} empty).",
                        field=path,
                    )
                )
        previous = upto if upto is not None else previous
        out.append(upto)
    return out


def _build(ctype, raw, code, desc, p, errors) -> Component | None:
    dec = _parse_decimal
    if ctype == "fixed":
        amount = dec(raw.get("amount"), f"{p}.amount", errors)
        per = _choice(raw.get("per", "year"), ("year", "month"), f"{p}.per", errors)
        kind = _choice(raw.get("kind", "fixed"), ("fixed", "meter_rent"), f"{p}.kind", errors)
        return FixedCharge(code=code, description=desc, amount=amount, per=per, kind=kind)
    if ctype == "volume":
        return VolumeCharge(
            code=code, description=desc, price=dec(raw.get("price"), f"{p}.price", errors)
        )
    if ctype == "banded":
        basis = _choice(raw.get("basis"), ("capacity", "area"), f"{p}.basis", errors)
        unit = raw.get("unit") or ("m²" if basis == "area" else "kW")
        if basis == "area":
            _choice(unit, ("m²",), f"{p}.unit", errors)
        else:
            _choice(unit, (*POWER_UNITS, "l/h"), f"{p}.unit", errors)
        bands_raw = raw.get("bands")
        if not isinstance(bands_raw, list) or not bands_raw:
            errors.append(
                ErrorItem(
                    code="required", message="At least one band is needed.", field=f"{p}.bands"
                )
            )
            return None
        limits = _limits(bands_raw, "upto", f"{p}.bands", "Band", errors)
        bands = []
        for j, b in enumerate(bands_raw):
            bp = f"{p}.bands.{j}"
            if not _object(b, bp, errors):
                continue
            bands.append(
                Band(
                    upto=limits[j],
                    unit_price=dec(b.get("unit_price", "0"), f"{bp}.unit_price", errors) or ZERO,
                    fixed=dec(b.get("fixed", "0"), f"{bp}.fixed", errors) or ZERO,
                )
            )
        delta_t = dec(
            raw.get("design_delta_t"), f"{p}.design_delta_t", errors, optional=True, positive=True
        )
        if unit == "l/h" and not delta_t and raw.get("design_delta_t") in (None, ""):
            errors.append(
                ErrorItem(
                    code="required",
                    message="A l/h capacity price needs design_delta_t.",
                    field=f"{p}.design_delta_t",
                )
            )
        return BandedCharge(
            code=code,
            description=desc,
            basis=basis,
            unit=unit,
            bands=tuple(bands),
            mode=_choice(raw.get("mode", "graduated"), ("graduated", "whole"), f"{p}.mode", errors),
            fixed_per=_choice(
                raw.get("fixed_per", "year"), ("year", "month"), f"{p}.fixed_per", errors
            ),
            design_delta_t=delta_t,
        )
    if ctype == "energy":
        unit = _choice(raw.get("unit", "MWh"), tuple(ENERGY_UNITS), f"{p}.unit", errors)
        price = dec(raw.get("price"), f"{p}.price", errors, optional=True)
        seasons = []
        months_seen: set[int] = set()
        seasons_raw = _items(raw.get("seasons"), f"{p}.seasons", errors)
        for j, s in enumerate(seasons_raw):
            sp = f"{p}.seasons.{j}"
            if not _object(s, sp, errors):
                continue
            months_raw = s.get("months")
            months: list[int] = []
            if not isinstance(months_raw, list) or not months_raw:
                errors.append(
                    ErrorItem(
                        code="invalid",
                        message="months must be a list of months 1–12.",
                        field=f"{sp}.months",
                    )
                )
            else:
                for k, m in enumerate(months_raw):
                    month = _month(m)
                    if month is None:
                        errors.append(
                            ErrorItem(
                                code="invalid",
                                message="A month is a whole number 1–12.",
                                field=f"{sp}.months.{k}",
                            )
                        )
                    else:
                        months.append(month)
            if months_seen & set(months):
                errors.append(
                    ErrorItem(
                        code="invalid",
                        message="A month belongs to two seasons.",
                        field=f"{sp}.months",
                    )
                )
            months_seen |= set(months)
            label = s.get("label")
            if label is None or label == "":
                label = f"season {j + 1}"
            else:
                label = _text(label, f"{sp}.label", errors, max_length=60) or f"season {j + 1}"
            # one label may name two ranges ("winter": Jan–Mar and Oct–Dec): rating shares
            # energy per label, as tariffs stored before this check was written do
            seasons.append(
                Season(
                    label=label,
                    months=tuple(months),
                    price=dec(s.get("price"), f"{sp}.price", errors),
                )
            )
        if seasons_raw and months_seen != set(range(1, 13)):
            errors.append(
                ErrorItem(
                    code="invalid",
                    message="Seasons must cover all twelve months.",
                    field=f"{p}.seasons",
                )
            )
        blocks = []
        blocks_raw = _items(raw.get("blocks"), f"{p}.blocks", errors)
        limits = _limits(blocks_raw, "upto", f"{p}.blocks", "Block", errors)
        for j, b in enumerate(blocks_raw):
            bp = f"{p}.blocks.{j}"
            if not _object(b, bp, errors):
                continue
            blocks.append(Block(upto=limits[j], price=dec(b.get("price"), f"{bp}.price", errors)))
        given = sum(
            1
            for x in (raw.get("price") not in (None, ""), bool(seasons_raw), bool(blocks_raw))
            if x
        )
        if given != 1:
            errors.append(
                ErrorItem(
                    code="invalid", message="Give exactly one of price, seasons or blocks.", field=p
                )
            )
        return EnergyCharge(
            code=code,
            description=desc,
            unit=unit,
            price=price,
            seasons=tuple(seasons),
            blocks=tuple(blocks),
        )
    if ctype == "cooling":
        kwargs: dict[str, Any] = {}
        kwargs["target"] = dec(raw.get("target"), f"{p}.target", errors)
        for name in (
            "penalty_rate",
            "bonus_rate",
            "target_flow_slope",
            "target_flow_ref",
            "target_min",
            "target_max",
        ):
            kwargs[name] = dec(raw.get(name), f"{p}.{name}", errors, optional=True)
        kwargs["max_degrees"] = dec(
            raw.get("max_degrees"), f"{p}.max_degrees", errors, optional=True, non_negative=True
        )
        kwargs["factor"] = dec(raw.get("factor", "860"), f"{p}.factor", errors, positive=True)
        for name in ("band_below", "band_above"):
            kwargs[name] = dec(raw.get(name, "0"), f"{p}.{name}", errors, non_negative=True)
        kwargs["metric"] = _choice(
            raw.get("metric", "cooling"), ("cooling", "return_temp"), f"{p}.metric", errors
        )
        kwargs["source"] = _choice(
            raw.get("source", "energy_volume"),
            ("energy_volume", "temperatures"),
            f"{p}.source",
            errors,
        )
        kwargs["factor_unit"] = _choice(
            raw.get("factor_unit", "MWh"), tuple(ENERGY_UNITS), f"{p}.factor_unit", errors
        )
        kwargs["count_from"] = _choice(
            raw.get("count_from", "edge"), ("edge", "target"), f"{p}.count_from", errors
        )
        kwargs["rate_basis"] = _choice(
            raw.get("rate_basis", "percent_of_energy"),
            ("percent_of_energy", "per_unit"),
            f"{p}.rate_basis",
            errors,
        )
        kwargs["rate_unit"] = _choice(
            raw.get("rate_unit", "MWh"), tuple(ENERGY_UNITS), f"{p}.rate_unit", errors
        )
        refs = []
        for k, ref in enumerate(
            _items(raw.get("energy_components"), f"{p}.energy_components", errors)
        ):
            if not isinstance(ref, str) or not ref.strip():
                errors.append(
                    ErrorItem(
                        code="invalid",
                        message="The code of an energy component is required.",
                        field=f"{p}.energy_components.{k}",
                    )
                )
            else:
                refs.append(ref.strip())
        kwargs["energy_components"] = tuple(refs)
        mp = raw.get("metric_places")
        if mp is not None and (
            isinstance(mp, bool) or not isinstance(mp, int) or not 0 <= mp <= COMPONENT_PLACES
        ):
            errors.append(
                ErrorItem(
                    code="invalid",
                    message=f"metric_places is a whole number 0–{COMPONENT_PLACES}.",
                    field=f"{p}.metric_places",
                )
            )
            mp = None
        kwargs["metric_places"] = mp
        if kwargs["penalty_rate"] is None and kwargs["bonus_rate"] is None:
            errors.append(
                ErrorItem(
                    code="required", message="Give a penalty_rate, a bonus_rate or both.", field=p
                )
            )
        return CoolingIncentive(code=code, description=desc, **kwargs)
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def components_to_data(components: tuple[Component, ...]) -> list[dict]:
    out = []
    for c in components:
        d = {"type": c.type, **asdict(c)}
        out.append({k: _jsonable(v) for k, v in d.items() if v is not None and v != () and v != []})
    return out
