"""The pure billing core: register values + contracts + tariff slices → a bill.

No ORM and no clock.  :func:`bill_compute` turns what the chunk loader gathered for one
account into a :class:`BillDraft`: determinants per segment, priced lines (through the
tariffs app's pure ``rate``), VAT per rate and totals, the readings used, and a
plausibility verdict.  See docs/billing.md for every rule used here.

Segments.  An account's period is cut into segments: one per contract interval
(move-in/move-out clip the period, DOMAIN.md §7) and, inside it, one per tariff version
in force (``tariff_slices_for_connections``).  Energy and volume of a contract interval
are register differences between its bounds.  When a tariff version changes inside
it and no register exists at the change date, the interval's energy and volume are
split by days (the last slice takes the remainder, so slices add up exactly).

Rounding (one rule): each line amount is rounded half up to the currency's minor unit
by ``rate``; VAT is computed per VAT rate on the sum of that rate's lines and rounded
half up once; gross = net + VAT.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

from heatutility.money import MONEY_ROUNDING, minor_unit, quantize_energy, quantize_money

ZERO = Decimal("0")
KWH_PER_MWH = Decimal("1000")
_E6 = Decimal("0.000001")  # heatutility.money.ENERGY_PLACES
_C2 = Decimal("0.01")
_M4 = Decimal("0.0001")
assert MONEY_ROUNDING == ROUND_HALF_UP


def _energy(value: Decimal) -> Decimal:
    """``quantize_energy`` (hot path: a Decimal is rounded directly, no scaleb per call)."""
    if type(value) is Decimal:
        return value.quantize(_E6, rounding=ROUND_HALF_UP)
    return quantize_energy(value)


class BillingError(Exception):
    """An account cannot be billed; recorded as an exception on the run."""

    code = "billing_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class Register(NamedTuple):
    """A boundary register value (immutable; a tuple: 10,000 are made per chunk)."""

    id: int
    energy_kwh: Decimal
    volume_m3: Decimal
    flow_temp_m3c: Decimal | None
    return_temp_m3c: Decimal | None
    status: str
    method: str = ""


class ContractInterval(NamedTuple):
    """One connection supplied to the account for ``[start, end)`` within the period
    (immutable; a tuple: one per account per chunk)."""

    connection_id: int
    start: dt.date
    end: dt.date
    contracted_kw: Decimal
    heated_area_m2: Decimal


@dataclass(frozen=True)
class Plausibility:
    """Hold a bill for review when its energy is far off last year or the connection's kW."""

    ratio_high: Decimal = Decimal("2.5")
    ratio_low: Decimal = Decimal("0.3")
    min_last_year_mwh: Decimal = Decimal("0.5")
    capacity_factor: Decimal = Decimal("1.0")


@dataclass
class DraftLine:
    connection_id: int | None
    period_start: dt.date | None
    period_end: dt.date | None
    tariff_version_id: int | None
    component: str
    kind: str
    description: str
    explanation: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    vat_rate: Decimal


@dataclass
class BillDraft:
    account_id: int
    period_start: dt.date
    period_end: dt.date
    currency: str
    lines: list[DraftLine]
    net: Decimal
    vat: Decimal
    gross: Decimal
    vat_breakdown: list[dict[str, str]]
    readings: list[dict[str, Any]]
    has_estimated_reads: bool
    tariff_version_ids: list[int]
    determinants: list[dict[str, Any]]
    comparison: dict[str, Any]
    hold_reasons: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return bool(self.hold_reasons)


def totals(lines: Sequence[DraftLine], currency: str) -> tuple[Decimal, Decimal, list[dict]]:
    """Net, VAT and the per-rate breakdown: VAT on the sum of each rate's lines, half up."""
    unit = minor_unit(currency)
    by_rate: dict[Decimal, Decimal] = {}
    net = ZERO
    for line in lines:
        amount = line.amount
        net += amount
        rate = line.vat_rate
        by_rate[rate] = by_rate.get(rate, ZERO) + amount
    breakdown = []
    vat = ZERO
    for rate in sorted(by_rate) if len(by_rate) > 1 else by_rate:
        base = by_rate[rate]
        amount = (base * rate).quantize(unit, rounding=ROUND_HALF_UP)
        vat += amount
        breakdown.append({"rate": str(rate), "base": str(base), "vat": str(amount)})
    return (
        net.quantize(unit, rounding=ROUND_HALF_UP),
        vat.quantize(unit, rounding=ROUND_HALF_UP),
        breakdown,
    )


def _diff(later: Decimal | None, earlier: Decimal | None) -> Decimal | None:
    if later is None or earlier is None:
        return None
    return later - earlier


def _weighted_temp(start: Register, end: Register, attr: str, volume: Decimal) -> Decimal | None:
    diff = _diff(getattr(end, attr), getattr(start, attr))
    if diff is None or volume <= 0:
        return None
    return (diff / volume).quantize(_C2)


def _fmt_days(start: dt.date, end: dt.date) -> str:
    return f"{start.isoformat()} – {(end - dt.timedelta(days=1)).isoformat()}"


def one_year_earlier(day: dt.date) -> dt.date:
    earlier = _YEAR_EARLIER.get(day)
    if earlier is None:
        try:
            earlier = day.replace(year=day.year - 1)
        except ValueError:  # 29 February
            earlier = day.replace(year=day.year - 1, day=28)
        if len(_YEAR_EARLIER) < 10_000:
            _YEAR_EARLIER[day] = earlier
    return earlier


_YEAR_EARLIER: dict[dt.date, dt.date] = {}


def bill_compute(
    *,
    account_id: int,
    period_start: dt.date,
    period_end: dt.date,
    currency: str,
    intervals: Sequence[ContractInterval],
    slices: dict[int, list[tuple[dt.date, dt.date, Any]]],
    registers: dict[tuple[int, dt.date], Register],
    rate: Callable[..., list],
    determinants_type: type,
    plausibility: Plausibility | None = None,
) -> BillDraft:
    """Compute one account's bill for ``[period_start, period_end)``.

    ``registers`` maps (connection_id, local date) to the register at 00:00 of that date,
    including, where known, one year before each interval bound (for the comparison and
    the trailing-year energy).  Raises :class:`BillingError` when a bill cannot be made.
    """
    plausibility = plausibility or Plausibility()
    unit = minor_unit(currency)
    if not intervals:
        raise BillingError("no contract in the period", code="no_contract")
    lines: list[DraftLine] = []
    readings: dict[int, dict[str, Any]] = {}
    determinants_out: list[dict[str, Any]] = []
    version_ids: list[int] = []
    energy_total = ZERO
    last_year_total: Decimal | None = ZERO
    capacity_mwh = ZERO

    def use(connection_id: int, day: dt.date) -> Register:
        reg = registers.get((connection_id, day))
        if reg is None:
            raise BillingError(
                f"no register value for connection {connection_id} on {day.isoformat()}",
                code="missing_register",
            )
        readings.setdefault(
            reg.id,
            {
                "id": reg.id,
                "connection_id": connection_id,
                "on": day.isoformat(),
                "energy_kwh": str(reg.energy_kwh),
                "volume_m3": str(reg.volume_m3),
                "status": reg.status,
                "method": reg.method,
            },
        )
        return reg

    for interval in sorted(intervals, key=lambda i: (i.connection_id, i.start)):
        cid = interval.connection_id
        first = use(cid, interval.start)
        last = use(cid, interval.end)
        energy_kwh = last.energy_kwh - first.energy_kwh
        volume = last.volume_m3 - first.volume_m3
        if energy_kwh < 0 or volume < 0:
            raise BillingError(
                f"register decreased on connection {cid} over {_fmt_days(interval.start, interval.end)}",
                code="negative_consumption",
            )
        energy_total += energy_kwh
        days_total = (interval.end - interval.start).days
        capacity_mwh += interval.contracted_kw * days_total * 24 / KWH_PER_MWH
        ly_start = registers.get((cid, one_year_earlier(interval.start)))
        ly_end = trailing = registers.get((cid, one_year_earlier(interval.end)))
        if last_year_total is not None and ly_start and ly_end:
            last_year_total += ly_end.energy_kwh - ly_start.energy_kwh
        else:
            last_year_total = None
        annual_mwh = (
            _energy((last.energy_kwh - trailing.energy_kwh) / KWH_PER_MWH)
            if trailing is not None
            else None
        )
        return_temp = _weighted_temp(first, last, "return_temp_m3c", volume)
        flow_temp = _weighted_temp(first, last, "flow_temp_m3c", volume)

        conn_slices = [
            (max(s, interval.start), min(e, interval.end), spec)
            for s, e, spec in slices.get(cid, [])
            if s < interval.end and e > interval.start
        ]
        conn_slices.sort(key=lambda x: x[0])
        covered = sum((e - s).days for s, e, _ in conn_slices)
        if covered != days_total:
            raise BillingError(
                f"no approved tariff covers connection {cid} for all of "
                f"{_fmt_days(interval.start, interval.end)}",
                code="no_tariff",
            )
        energy_left, volume_left = energy_kwh, volume
        for index, (s, e, spec) in enumerate(conn_slices):
            if len(conn_slices) == 1:
                seg_energy, seg_volume = energy_kwh, volume
            else:
                a = registers.get((cid, s)) if s != interval.start else first
                b = registers.get((cid, e)) if e != interval.end else last
                if a is not None and b is not None:
                    seg_energy = b.energy_kwh - a.energy_kwh
                    seg_volume = b.volume_m3 - a.volume_m3
                    use(cid, s)
                    use(cid, e)
                elif index == len(conn_slices) - 1:
                    seg_energy, seg_volume = energy_left, volume_left
                else:
                    share = Decimal((e - s).days) / Decimal(days_total)
                    seg_energy = _energy(energy_kwh * share)
                    seg_volume = (volume * share).quantize(Decimal("0.0001"))
                energy_left -= seg_energy
                volume_left -= seg_volume
            det = determinants_type(
                period_start=s,
                period_end=e,
                energy_mwh=_energy(seg_energy / KWH_PER_MWH),
                volume_m3=seg_volume,
                return_temp_c=return_temp,
                flow_temp_c=flow_temp,
                contracted_kw=interval.contracted_kw,
                heated_area_m2=interval.heated_area_m2,
                annual_energy_mwh=annual_mwh,
            )
            determinants_out.append(
                {
                    "connection_id": cid,
                    "period_start": s.isoformat(),
                    "period_end": e.isoformat(),
                    "tariff_version_id": spec.version_id,
                    "energy_mwh": str(det.energy_mwh),
                    "volume_m3": str(det.volume_m3),
                    "return_temp_c": None if return_temp is None else str(return_temp),
                    "flow_temp_c": None if flow_temp is None else str(flow_temp),
                    "contracted_kw": str(interval.contracted_kw),
                    "heated_area_m2": str(interval.heated_area_m2),
                    "days": (e - s).days,
                }
            )
            if spec.version_id not in version_ids:
                version_ids.append(spec.version_id)
            partial = (s, e) != (period_start, period_end)
            for priced in rate(determinants=det, tariff=spec):
                description = priced.description
                if partial:
                    description = f"{description} ({_fmt_days(s, e)})"
                lines.append(
                    DraftLine(
                        connection_id=cid,
                        period_start=s,
                        period_end=e,
                        tariff_version_id=spec.version_id,
                        component=priced.component,
                        kind=priced.kind,
                        description=description[:200],
                        explanation=priced.explanation[:300],
                        quantity=priced.quantity,
                        unit=priced.unit,
                        unit_price=priced.unit_price,
                        amount=priced.amount.quantize(unit, rounding=ROUND_HALF_UP)
                        if type(priced.amount) is Decimal
                        else quantize_money(priced.amount, currency),
                        vat_rate=priced.vat_rate,
                    )
                )

    net, vat, breakdown = totals(lines, currency)
    energy_mwh = _energy(energy_total / KWH_PER_MWH)
    last_year_mwh = None if last_year_total is None else _energy(last_year_total / KWH_PER_MWH)
    holds: list[str] = []
    if energy_mwh > capacity_mwh * plausibility.capacity_factor:
        holds.append(
            f"{energy_mwh} MWh is more than the contracted capacity can deliver in the period "
            f"({quantize_energy(capacity_mwh)} MWh at full load)"
        )
    if last_year_mwh is not None and last_year_mwh >= plausibility.min_last_year_mwh:
        ratio = energy_mwh / last_year_mwh
        if ratio > plausibility.ratio_high or ratio < plausibility.ratio_low:
            holds.append(
                f"{energy_mwh} MWh is {ratio:.2f}× the same period last year ({last_year_mwh} MWh)"
            )
    return BillDraft(
        account_id=account_id,
        period_start=period_start,
        period_end=period_end,
        currency=currency,
        lines=lines,
        net=net,
        vat=vat,
        gross=net + vat,
        vat_breakdown=breakdown,
        readings=sorted(readings.values(), key=lambda r: (r["connection_id"], r["on"])),
        has_estimated_reads=any(r["status"] == "estimated" for r in readings.values()),
        tariff_version_ids=version_ids,
        determinants=determinants_out,
        comparison={
            "energy_mwh": str(energy_mwh),
            "last_year_mwh": None if last_year_mwh is None else str(last_year_mwh),
        },
        hold_reasons=holds,
    )
