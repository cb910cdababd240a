"""The pure billing core: register values + contracts + tariff slices → a bill.

No ORM and no clock.  :func:`bill_compute` turns what the chunk loader gathered for one
account into a :class:`BillDraft`: determinants per segment, priced lines (through the
tariffs app's pure ``rate``), VAT per rate and totals, the readings used, and a
plausibility verdict.  See docs/billing.md for every rule used here.

Segments.  An account's period is cut into segments: one per contract interval
(move-in/move-out clip the period, DOMAIN.md §7) and, inside it, one per tariff version
in force (``tariff_slices_for_connections``).  Energy and volume of a contract interval
are register differences between its bounds.  When a tariff version changes inside
it, a register at the change date measures each side; without one, the interval's
energy and volume are split by days.  The slices' MWh are rounded cumulatively from the
interval's start, so they add up to the interval's rounded register difference exactly.
Block prices rate the trailing year (register at the interval's end less one a year
earlier): that register is recorded on the bill like the bounds.  The same period last
year (the comparison and its plausibility hold) is measured by the registers a year
before each interval's bounds: the comparison records them (``last_year_readings``, in
the readings' shape) and whether one was estimated (``last_year_estimated``), so the
figure can be audited and recomputed; none when there is no figure.

Rounding (one rule): each line amount is rounded half up to the currency's minor unit
by ``rate``; VAT is computed per VAT rate on the sum of that rate's lines and rounded
half up once; gross = net + VAT.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from dataclasses import replace as dc_replace
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from heatutility.money import MONEY_ROUNDING, minor_unit, quantize_energy, quantize_money
from heatutility.timeutil import hours_in_local_period, local_midnight, month_starts

ZERO = Decimal("0")
KWH_PER_MWH = Decimal("1000")
_E6 = Decimal("0.000001")  # heatutility.money.ENERGY_PLACES
_C2 = Decimal("0.01")
_M4 = Decimal("0.0001")


def _energy(value: Decimal) -> Decimal:
    """``quantize_energy`` (hot path: a Decimal is rounded directly, no scaleb per call)."""
    if type(value) is Decimal:
        return value.quantize(_E6, rounding=MONEY_ROUNDING)
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
    # the end of the last contract another account held on this connection before this
    # one (None: nobody else): the same period last year is shown only when nobody else
    # lived there then (their consumption is theirs, not the new occupant's)
    others_until: dt.date | None = None
    # contracted capacity changes strictly inside (start, end): (first day, kW), in date
    # order; ``contracted_kw`` is the kW on ``start`` (customers.CapacityChange)
    kw_changes: tuple[tuple[dt.date, Decimal], ...] = ()
    # heated area changes of the connection's building strictly inside (start, end):
    # (first day, m²), in date order; ``heated_area_m2`` is the m² on ``start``
    # (customers.AreaChange)
    m2_changes: tuple[tuple[dt.date, Decimal], ...] = ()


class PendingRollover(NamedTuple):
    """A meter's register rollover staff have not decided yet (metering's open
    ``rollover_ambiguous`` / ``volume_rollover_ambiguous`` finding): register values
    from ``since_at`` (the previous usable read) to ``read_at`` count one wrap where the
    register may have wrapped more often."""

    meter: str
    register: str  # "energy" or "volume"
    since_at: dt.datetime
    read_at: dt.datetime
    time_zone: str  # the network's, whose local midnights bound the bills


class PendingDecrease(NamedTuple):
    """A fall of a meter's register staff have not decided yet (metering's open
    ``register_decrease`` finding, whose read VEE rejected): register values from
    ``since_at`` (the previous usable read) on are estimated around a fall that is
    either the register's (staff accept it, with a wrap count where it rolled over) or
    a garbled read's (staff reject it)."""

    meter: str
    since_at: dt.datetime
    read_at: dt.datetime
    time_zone: str  # the network's, whose local midnights bound the bills


@dataclass(frozen=True)
class Plausibility:
    """Hold a bill for review when its energy is far off last year or the connection's kW,
    or its volume-weighted temperatures cannot be right."""

    ratio_high: Decimal = Decimal("2.5")
    ratio_low: Decimal = Decimal("0.3")
    min_last_year_mwh: Decimal = Decimal("0.5")
    capacity_factor: Decimal = Decimal("1.0")
    # volume-weighted flow/return temperatures outside this range (°C) mean a m³·°C
    # register rolled over, was reset or is broken: the cooling charge would be wrong
    temperature_min: Decimal = Decimal("0")
    temperature_max: Decimal = Decimal("150")
    # the network's zone: a full-load month has 743 or 745 hours where DST changes
    time_zone: str | None = None

    def full_load_mwh(self, kw: Decimal, start: dt.date, end: dt.date) -> Decimal:
        """What ``kw`` delivers at full load over the local dates ``[start, end)``."""
        if self.time_zone is None:
            hours = (end - start).days * 24
        else:
            hours = hours_in_local_period(start, end, self.time_zone)
        return kw * hours / KWH_PER_MWH


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
    unit = _minor(currency)
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
        amount = (base * rate).quantize(unit, rounding=MONEY_ROUNDING)
        vat += amount
        breakdown.append({"rate": str(rate), "base": str(base), "vat": str(amount)})
    return (
        net.quantize(unit, rounding=MONEY_ROUNDING),
        vat.quantize(unit, rounding=MONEY_ROUNDING),
        breakdown,
    )


def _fmt_days(start: dt.date, end: dt.date) -> str:
    return f"{start.isoformat()} – {(end - dt.timedelta(days=1)).isoformat()}"


def climate_corrected(
    *,
    consumption: Decimal,
    heating_share: Decimal,
    dd_normal: Decimal | None,
    dd_actual: Decimal | None,
) -> Decimal:
    """``consumption`` (measured in weather of ``dd_actual`` degree days) in the weather of
    ``dd_normal``: only the heating share scales with degree days (DOMAIN.md §3);
    unchanged when either figure is unknown."""
    if not dd_normal or not dd_actual:
        return consumption
    return heating_share * consumption * dd_normal / dd_actual + (1 - heating_share) * consumption


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
_ISO: dict[dt.date, str] = {}
_MINOR: dict[str, Decimal] = {}


def _iso(day: dt.date) -> str:
    """``day.isoformat()``, cached (a run formats the same few dates thousands of times)."""
    text = _ISO.get(day)
    if text is None:
        text = day.isoformat()
        if len(_ISO) < 10_000:
            _ISO[day] = text
    return text


def _minor(currency: str) -> Decimal:
    """``minor_unit(currency)``, cached per currency (raises the same ValueError)."""
    unit = _MINOR.get(currency)
    if unit is None:
        unit = _MINOR[currency] = minor_unit(currency)
    return unit


_PLAIN_DATACLASSES: dict[type, bool] = {}


def _new_determinants(cls: type, **values):
    """``cls(**values)`` for rating's frozen ``Determinants``, without the frozen
    dataclass's ``object.__setattr__`` per field (~3 µs per bill): the same instance when
    ``cls`` is a plain dataclass (no ``__post_init__``, no slots) and every field is given."""
    plain = _PLAIN_DATACLASSES.get(cls)
    if plain is None:
        names = {f.name for f in fields(cls)} if is_dataclass(cls) else None
        plain = _PLAIN_DATACLASSES[cls] = (
            names is not None
            and not hasattr(cls, "__post_init__")
            and not hasattr(cls, "__slots__")
            and names == set(_DETERMINANT_FIELDS)
        )
    if not plain:
        return cls(**values)
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


_DETERMINANT_FIELDS = (
    "period_start",
    "period_end",
    "energy_mwh",
    "volume_m3",
    "return_temp_c",
    "flow_temp_c",
    "contracted_kw",
    "heated_area_m2",
    "annual_energy_mwh",
    "energy_by_month",
)


def prices_by_blocks(spec: Any) -> bool:
    """A tariff version (``TariffSpec``) with energy priced in annual blocks: its bills
    rate the trailing year (``Determinants.annual_energy_mwh``) and record its register."""
    return any(getattr(c, "blocks", None) for c in spec.components)


def _interval_order(interval: ContractInterval) -> tuple:
    return interval.connection_id, interval.start


def _first(item):
    return item[0]


def _reading_order(reading: dict[str, Any]) -> tuple:
    return reading["connection_id"], reading["on"]


def reading_record(reg: Register, connection_id: int, day: dt.date) -> dict[str, Any]:
    """A register as a bill records it (``Invoice.readings``, and the comparison's
    ``last_year_readings``): the keys and their order are the COPY text's
    (``billing.services.render._reading_json`` writes the same)."""
    return {
        "id": reg.id,
        "connection_id": connection_id,
        "on": _iso(day),
        "energy_kwh": str(reg.energy_kwh),
        "volume_m3": str(reg.volume_m3),
        "status": reg.status,
        "method": reg.method,
    }


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

    Hot path (once per account in a run): constants are cached per currency and date,
    and the common case (one tariff slice per interval) takes no detours.
    """
    plausibility = plausibility or Plausibility()
    unit = _minor(currency)
    if not intervals:
        raise BillingError("no contract in the period", code="no_contract")
    lines: list[DraftLine] = []
    readings: dict[int, dict[str, Any]] = {}
    determinants_out: list[dict[str, Any]] = []
    version_ids: list[int] = []
    energy_total = ZERO
    last_year_total: Decimal | None = ZERO
    # the registers a year before each interval's bounds behind ``last_year_total``
    last_year_readings: dict[int, dict[str, Any]] = {}
    capacity_mwh = ZERO
    temperatures: list[tuple[int, Decimal | None, Decimal | None]] = []
    # months measured with less energy than none (connection, first day, MWh)
    falls: list[tuple[int, dt.date, Decimal]] = []
    get = registers.get

    def use(connection_id: int, day: dt.date) -> Register:
        reg = get((connection_id, day))
        if reg is None:
            raise BillingError(
                f"no register value for connection {connection_id} on {day.isoformat()}",
                code="missing_register",
            )
        if reg.id not in readings:
            readings[reg.id] = reading_record(reg, connection_id, day)
        return reg

    for interval in sorted(intervals, key=_interval_order) if len(intervals) > 1 else intervals:
        cid = interval.connection_id
        i_start, i_end = interval.start, interval.end
        first = use(cid, i_start)
        last = use(cid, i_end)
        (
            energy_kwh,
            volume,
            ly_energy_kwh,
            ly_registers,
            annual_mwh,
            return_temp,
            flow_temp,
        ) = interval_values(interval, first, last, get)
        energy_total += energy_kwh
        temperatures.append((cid, return_temp, flow_temp))
        days_total = (i_end - i_start).days
        if last_year_total is not None and ly_registers is not None:
            last_year_total += ly_energy_kwh
            for day, reg in zip(
                (one_year_earlier(i_start), one_year_earlier(i_end)), ly_registers, strict=True
            ):
                if reg.id not in last_year_readings:
                    last_year_readings[reg.id] = reading_record(reg, cid, day)
        else:
            last_year_total = None
        return_text = None if return_temp is None else str(return_temp)
        flow_text = None if flow_temp is None else str(flow_temp)
        kw_text = str(interval.contracted_kw)
        m2_text = str(interval.heated_area_m2)

        conn_slices = [
            (s if s > i_start else i_start, e if e < i_end else i_end, spec)
            for s, e, spec in slices.get(cid, ())
            if s < i_end and e > i_start
        ]
        if len(conn_slices) > 1:
            conn_slices.sort(key=_first)
        covered = sum((e - s).days for s, e, _ in conn_slices)
        if covered != days_total:
            raise BillingError(
                f"no approved tariff covers connection {cid} for all of "
                f"{_fmt_days(i_start, i_end)}",
                code="no_tariff",
            )
        if len(conn_slices) == 1:
            consumption = ((_energy(energy_kwh / KWH_PER_MWH), volume),)
            split_get, split_use = get, use
        else:
            # a change with no register: a value from the registers around it
            split_get, split_use = _month_split_registers(
                cid, conn_slices, i_start, i_end, first, last, get, use
            )
            consumption = _slices_consumption(cid, conn_slices, first, last, split_get, split_use)
        # block prices rate the trailing year: its first register is one the bill used
        blocks = [prices_by_blocks(spec) for _s, _e, spec in conn_slices]
        annual_from = one_year_earlier(i_end) if True in blocks else None
        if annual_from is not None and annual_mwh is not None:
            use(cid, annual_from)
        for (s, e, spec), (seg_energy, seg_volume), by_blocks in zip(
            conn_slices, consumption, blocks, strict=True
        ):
            # the contracted kW and heated m² inside the slice: a change reprices only the
            # charges on its basis, piece by piece; energy and the rest are priced over
            # the whole slice
            kw_pieces = kw_in_force(interval, s, e)
            m2_pieces = m2_in_force(interval, s, e)
            segment = interval
            if kw_pieces[0][2] != interval.contracted_kw:
                segment = segment._replace(contracted_kw=kw_pieces[0][2])
            if m2_pieces[0][2] != interval.heated_area_m2:
                segment = segment._replace(heated_area_m2=m2_pieces[0][2])
            for a, b, kw in kw_pieces:
                capacity_mwh += plausibility.full_load_mwh(kw, a, b)
            by_month = (
                _energy_by_month(cid, s, e, i_start, i_end, first, last, split_get, split_use)
                if spec.prices_by_season
                else None
            )
            if by_month:
                falls.extend((cid, day, mwh) for day, mwh in by_month if mwh < 0)
            det = segment_determinants(
                determinants_type,
                segment,
                s,
                e,
                energy_mwh=seg_energy,
                volume=seg_volume,
                temps=(return_temp, flow_temp),
                annual_mwh=annual_mwh,
                by_month=by_month,
            )
            version_id = spec.version_id
            segment_out = {
                "connection_id": cid,
                "period_start": _iso(s),
                "period_end": _iso(e),
                "tariff_version_id": version_id,
                "energy_mwh": str(det.energy_mwh),
                "volume_m3": str(det.volume_m3),
                "return_temp_c": return_text,
                "flow_temp_c": flow_text,
                "contracted_kw": kw_text if segment is interval else str(segment.contracted_kw),
                "heated_area_m2": m2_text if segment is interval else str(segment.heated_area_m2),
                "days": (e - s).days,
            }
            if len(kw_pieces) > 1:
                segment_out["contracted_kw_from"] = [[_iso(a), str(kw)] for a, _b, kw in kw_pieces]
            if len(m2_pieces) > 1:
                segment_out["heated_area_m2_from"] = [[_iso(a), str(m2)] for a, _b, m2 in m2_pieces]
            if by_blocks:
                # the trailing year that split the energy into blocks (None: no register a
                # year earlier, the block limits were scaled to the segment)
                segment_out["annual_energy_mwh"] = None if annual_mwh is None else str(annual_mwh)
                segment_out["annual_from"] = _iso(annual_from)
            determinants_out.append(segment_out)
            if version_id not in version_ids:
                version_ids.append(version_id)
            for a, b, priced in _priced_by_basis(rate, det, spec, s, e, kw_pieces, m2_pieces):
                description = priced.description
                if a != period_start or b != period_end:
                    description = f"{description} ({_fmt_days(a, b)})"
                amount = priced.amount
                lines.append(
                    DraftLine(
                        cid,
                        a,
                        b,
                        version_id,
                        priced.component,
                        priced.kind,
                        description[:200],
                        priced.explanation[:300],
                        priced.quantity,
                        priced.unit,
                        priced.unit_price,
                        amount.quantize(unit, rounding=MONEY_ROUNDING)
                        if type(amount) is Decimal
                        else quantize_money(amount, currency),
                        priced.vat_rate,
                    )
                )

    net, vat, breakdown = totals(lines, currency)
    energy_mwh = _energy(energy_total / KWH_PER_MWH)
    if last_year_total is None:
        last_year_mwh, ly_used, ly_estimated = None, [], False
    else:
        last_year_mwh = _energy(last_year_total / KWH_PER_MWH)
        ly_used = sorted(last_year_readings.values(), key=_reading_order)
        ly_estimated = any(r["status"] == "estimated" for r in ly_used)
    holds = hold_reasons(
        energy_mwh,
        capacity_mwh,
        last_year_mwh,
        plausibility,
        temperatures,
        last_year_estimated=ly_estimated,
        falls=falls,
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
        readings=sorted(readings.values(), key=_reading_order),
        has_estimated_reads=any(r["status"] == "estimated" for r in readings.values()),
        tariff_version_ids=version_ids,
        determinants=determinants_out,
        comparison={
            "energy_mwh": str(energy_mwh),
            "last_year_mwh": None if last_year_mwh is None else str(last_year_mwh),
            "last_year_readings": ly_used,
            "last_year_estimated": ly_estimated,
        },
        hold_reasons=holds,
    )


def month_starts_inside(start: dt.date, end: dt.date) -> list[dt.date]:
    """The first days of months strictly inside ``(start, end)``: where a period or a
    segment spans months."""
    return month_starts(start + dt.timedelta(days=1), end)


def _energy_by_month(
    cid: int,
    start: dt.date,
    end: dt.date,
    i_start: dt.date,
    i_end: dt.date,
    first: Register,
    last: Register,
    get: Callable[[tuple[int, dt.date]], Register | None],
    use: Callable[[int, dt.date], Register],
) -> tuple[tuple[dt.date, Decimal], ...] | None:
    """Each month's measured MWh of a segment spanning months, for seasonal prices; None
    for a segment within one month, or where a month-start register is missing (rating
    then shares the energy by days)."""
    inside = month_starts_inside(start, end)
    if not inside:
        return None
    bounds = [start, *inside, end]
    registers = [
        first if day == i_start else last if day == i_end else get((cid, day)) for day in bounds
    ]
    if any(reg is None for reg in registers):
        return None
    for day in bounds:
        if day not in (i_start, i_end):
            use(cid, day)
    return tuple(
        (day, _energy((b.energy_kwh - a.energy_kwh) / KWH_PER_MWH))
        for day, a, b in zip(bounds, registers, registers[1:], strict=False)
    )


def _in_force(
    value: Decimal, changes: tuple[tuple[dt.date, Decimal], ...], start: dt.date, end: dt.date
) -> list[tuple[dt.date, dt.date, Decimal]]:
    """``[start, end)`` cut where ``changes`` (first day, value) change ``value`` (the one
    in force at the interval's start), each piece with its value: one piece when it does
    not change."""
    cuts = []
    for day, changed in changes:
        if day <= start:
            value = changed
        elif day < end:
            cuts.append((day, changed))
    if not cuts:
        return [(start, end, value)]
    pieces, a = [], start
    for day, changed in cuts:
        pieces.append((a, day, value))
        a, value = day, changed
    pieces.append((a, end, value))
    return pieces


def kw_in_force(
    interval: ContractInterval, start: dt.date, end: dt.date
) -> list[tuple[dt.date, dt.date, Decimal]]:
    """``[start, end)`` (inside ``interval``) cut where the contracted kW changes, each
    piece with its kW: one piece when it does not change."""
    return _in_force(interval.contracted_kw, interval.kw_changes, start, end)


def m2_in_force(
    interval: ContractInterval, start: dt.date, end: dt.date
) -> list[tuple[dt.date, dt.date, Decimal]]:
    """``[start, end)`` (inside ``interval``) cut where the building's heated m² changes,
    each piece with its m²: one piece when it does not change."""
    return _in_force(interval.heated_area_m2, interval.m2_changes, start, end)


def basis_pieces(
    interval: ContractInterval, slices: Sequence[tuple[dt.date, dt.date, Any]]
) -> list[tuple[tuple[dt.date, dt.date, Any], Decimal, Decimal]]:
    """``slices`` cut at the interval's capacity and area changes, each piece with its kW
    and m²."""
    out = []
    for s, e, spec in slices:
        kws, m2s = kw_in_force(interval, s, e), m2_in_force(interval, s, e)
        cuts = sorted({a for a, _b, _v in kws} | {a for a, _b, _v in m2s})
        for a, b in zip(cuts, [*cuts[1:], e], strict=True):
            kw = next(v for x, y, v in kws if x <= a < y)
            m2 = next(v for x, y, v in m2s if x <= a < y)
            out.append(((a, b, spec), kw, m2))
    return out


def _priced_by_basis(rate, det, spec, start, end, kw_pieces, m2_pieces):
    """(start, end, line) of a slice's priced lines, in component order.  Where the kW
    or the m² changes inside the slice, the lines of the charges on that basis come
    piece by piece, each priced at its own basis's value; the rest over the whole slice."""
    whole = rate(determinants=det, tariff=spec)
    by_code: dict[str, list] = {}
    for codes, pieces, name in (
        (spec.capacity_codes, kw_pieces, "contracted_kw"),
        (spec.area_codes, m2_pieces, "heated_area_m2"),
    ):
        if len(pieces) < 2 or not codes:
            continue
        for a, b, value in pieces:
            piece_det = dc_replace(det, period_start=a, period_end=b, **{name: value})
            for p in rate(determinants=piece_det, tariff=spec):
                if p.component in codes:
                    by_code.setdefault(p.component, []).append((a, b, p))
    if not by_code:
        return [(start, end, line) for line in whole]
    out, done = [], set()
    for line in whole:
        code = line.component
        if code not in by_code:
            out.append((start, end, line))
        elif code not in done:
            done.add(code)
            out.extend(by_code[code])
    return out


def _month_split_registers(
    cid: int,
    slices: Sequence[tuple[dt.date, dt.date, Any]],
    i_start: dt.date,
    i_end: dt.date,
    first: Register,
    last: Register,
    get: Callable[[tuple[int, dt.date]], Register | None],
    use: Callable[[int, dt.date], Register],
) -> tuple[Callable[[tuple[int, dt.date]], Register | None], Callable[[int, dt.date], Register]]:
    """``get`` and ``use`` for :func:`_slices_consumption`, with a register at each
    tariff change inside a contract interval that spans months and has none: the
    measured month around the change (its month-start registers, or the interval's
    bounds) shared by days, as the month's own bill shares it.  Without this a quarter's
    or a year's energy (an annual settlement's) was shared by days over the whole
    interval, pricing winter's heat at a summer change's price although the registers
    measured each month; under seasonal prices a segment ending at such a change had no
    month-by-month energy and shared its energy among the seasons by days.  The
    month-start registers used are recorded on the bill (a corrected one re-rates it).  Within one month nothing changes: the interval's own
    bounds are the nearest registers, and its energy is shared by days as before."""
    inside = month_starts_inside(i_start, i_end)
    if not inside:
        return get, use
    # the registers around a change: the interval's bounds, the month starts and the
    # other changes' registers where there are any
    days = {*inside, *(e for _s, e, _spec in slices[:-1])}
    known = [(i_start, first), (i_end, last)]
    known += [(day, reg) for day in days if (reg := get((cid, day))) is not None]
    made: dict[dt.date, tuple[Register, dt.date, dt.date]] = {}
    for _s, e, _spec in slices[:-1]:
        if get((cid, e)) is not None:
            continue
        a_day, a = max(((d, r) for d, r in known if d < e), key=_first)
        b_day, b = min(((d, r) for d, r in known if d > e), key=_first)
        if (a_day, b_day) == (i_start, i_end):
            continue  # no month register between: shared by days over the interval
        done, days = (e - a_day).days, (b_day - a_day).days
        made[e] = (
            Register(
                0,
                _energy(a.energy_kwh + (b.energy_kwh - a.energy_kwh) * done / days),
                (a.volume_m3 + (b.volume_m3 - a.volume_m3) * done / days).quantize(
                    _M4, rounding=MONEY_ROUNDING
                ),
                None,
                None,
                "estimated",
                "interpolation",
            ),
            a_day,
            b_day,
        )
    if not made:
        return get, use

    def split_get(key: tuple[int, dt.date]) -> Register | None:
        found = made.get(key[1]) if key[0] == cid else None
        return found[0] if found is not None else get(key)

    def split_use(connection_id: int, day: dt.date) -> Register:
        found = made.get(day) if connection_id == cid else None
        if found is None:
            return use(connection_id, day)
        register, a_day, b_day = found
        for bound in (a_day, b_day):
            if bound not in (i_start, i_end):
                use(connection_id, bound)
        return register

    return split_get, split_use


def _slices_consumption(
    cid: int,
    slices: Sequence[tuple[dt.date, dt.date, Any]],
    first: Register,
    last: Register,
    get: Callable[[tuple[int, dt.date]], Register | None],
    use: Callable[[int, dt.date], Register],
) -> list[tuple[Decimal, Decimal]]:
    """Energy (MWh) and volume (m³) of each tariff slice of one contract interval.

    The registers at the slices' boundaries, where there are any, cut the interval into
    measured stretches; each stretch's consumption is shared among its slices by days.
    Each slice's MWh is the interval's consumption from its start to the slice's end
    (measured at a register, or the stretch's share by days), rounded half up to 6
    decimals, less the same at the slice's start: the slices add up to the interval's
    rounded register difference exactly (what the bill's comparison says), none is off
    its exact share by a millionth MWh or more, and none is negative.  Rounding each
    slice on its own missed the interval's MWh by up to a millionth per slice.  Volume
    is shared by days to 4 decimals, the stretch's last slice taking what is left, so
    the slices add up to exactly what the registers measured.
    """
    out: list[tuple[Decimal, Decimal]] = []
    start, stretch, below = first, [], ZERO
    for index, (s, e, _spec) in enumerate(slices):
        stretch.append((e - s).days)
        end = last if index == len(slices) - 1 else get((cid, e))
        if end is None:
            continue
        if end is not last:
            use(cid, e)
        energy, volume = _consumption(cid, start, end, f"before {e.isoformat()}")
        before = start.energy_kwh - first.energy_kwh  # the interval's kWh up to the stretch
        days, done, volume_left = sum(stretch), 0, volume
        for slice_days in stretch[:-1]:
            done += slice_days
            upto = _energy((before + energy * done / days) / KWH_PER_MWH)
            part_volume = (volume * (Decimal(slice_days) / Decimal(days))).quantize(_M4)
            out.append((upto - below, part_volume))
            below = upto
            volume_left -= part_volume
        upto = _energy((end.energy_kwh - first.energy_kwh) / KWH_PER_MWH)
        out.append((upto - below, volume_left))
        start, stretch, below = end, [], upto
    return out


def _consumption(
    cid: int, a: Register, b: Register, when: str | Callable[[], str]
) -> tuple[Decimal, Decimal]:
    """kWh and m³ between two registers of a connection; refused if either went down
    (``when`` says over which days; a callable is asked only then: the billing run's
    hot path formats no dates for bills that are fine)."""
    energy, volume = b.energy_kwh - a.energy_kwh, b.volume_m3 - a.volume_m3
    if energy < 0 or volume < 0:
        when = when() if callable(when) else when
        raise BillingError(
            f"register decreased on connection {cid} {when}", code="negative_consumption"
        )
    return energy, volume


def interval_values(
    interval: ContractInterval,
    first: Register,
    last: Register,
    get: Callable[[tuple[int, dt.date]], Register | None],
) -> tuple[
    Decimal,
    Decimal,
    Decimal | None,
    tuple[Register, Register] | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
]:
    """One contract interval's consumption from its bound registers.

    Returns (energy kWh, volume m³, the same period's energy one year earlier in kWh or
    None, the two registers that measure it (a year before the interval's start and
    end) or None, trailing-year MWh at the interval's end or None, volume-weighted
    return and flow temperatures or None).  Raises :class:`BillingError` when a register
    decreased.
    """
    cid, i_start, i_end = interval.connection_id, interval.start, interval.end
    energy_kwh, volume = _consumption(cid, first, last, lambda: f"over {_fmt_days(i_start, i_end)}")
    ly_from = one_year_earlier(i_start)
    ly_start = get((cid, ly_from))
    trailing = get((cid, one_year_earlier(i_end)))
    if (
        ly_start
        and trailing
        and (interval.others_until is None or interval.others_until <= ly_from)
    ):
        ly_energy = trailing.energy_kwh - ly_start.energy_kwh
        ly_registers = (ly_start, trailing)
    else:
        ly_energy = ly_registers = None
    annual_mwh = (
        _energy((last.energy_kwh - trailing.energy_kwh) / KWH_PER_MWH)
        if trailing is not None
        else None
    )
    # volume-weighted temperatures: Δ(temp·m³) / Δm³
    return_temp = flow_temp = None
    if volume > 0:
        a, b = last.return_temp_m3c, first.return_temp_m3c
        if a is not None and b is not None:
            return_temp = ((a - b) / volume).quantize(_C2, rounding=MONEY_ROUNDING)
        a, b = last.flow_temp_m3c, first.flow_temp_m3c
        if a is not None and b is not None:
            flow_temp = ((a - b) / volume).quantize(_C2, rounding=MONEY_ROUNDING)
    return energy_kwh, volume, ly_energy, ly_registers, annual_mwh, return_temp, flow_temp


def segment_determinants(
    determinants_type: type,
    interval: ContractInterval,
    start: dt.date,
    end: dt.date,
    *,
    energy_mwh: Decimal,
    volume: Decimal,
    temps: tuple[Decimal | None, Decimal | None],
    annual_mwh: Decimal | None,
    by_month: tuple[tuple[dt.date, Decimal], ...] | None = None,
):
    """Rating's determinants for one segment ``[start, end)`` of a contract interval
    (energy in MWh to 6 places, the segment's share of the interval's rounded MWh;
    temperatures: return, flow; MWh by month where the segment spans months and every
    month start has a register)."""
    return _new_determinants(
        determinants_type,
        period_start=start,
        period_end=end,
        energy_mwh=energy_mwh,
        volume_m3=volume,
        return_temp_c=temps[0],
        flow_temp_c=temps[1],
        contracted_kw=interval.contracted_kw,
        heated_area_m2=interval.heated_area_m2,
        annual_energy_mwh=annual_mwh,
        energy_by_month=by_month,
    )


def hold_reasons(
    energy_mwh: Decimal,
    capacity_mwh: Decimal,
    last_year_mwh: Decimal | None,
    plausibility: Plausibility,
    temperatures: Sequence[tuple[int, Decimal | None, Decimal | None]] = (),
    *,
    last_year_estimated: bool = False,
    falls: Sequence[tuple[int, dt.date, Decimal]] = (),
) -> list[str]:
    """Why a bill looks implausible (empty: it does not): more energy than the contracted
    capacity can deliver, far off the same period last year (``last_year_estimated``:
    that figure rests on an estimated register, which the reason says, since the
    estimate may be what is off), a volume-weighted flow or return temperature
    (``temperatures``: connection, return, flow) out of range, or a month whose
    registers fell (``falls``: connection, the month's first day in the period, its
    MWh below zero), which seasonal prices would bill as negative energy.

    A register that fell between a contract interval's bounds, or across a measured
    stretch of it, stops the bill instead (``negative_consumption``, :func:`_consumption`):
    the energy a bill prices as a whole is never negative.  Only a month measured
    inside a longer period (:func:`_energy_by_month`, for seasonal prices) may be; the
    billing run's hot path bills one month and has none."""
    holds: list[str] = []
    for cid, day, mwh in falls:
        holds.append(
            f"the registers of connection {cid} fell by {-mwh} MWh in the month from "
            f"{day.isoformat()}, which its season's energy would bill as negative (a "
            "register decrease accepted without a wrap count?)"
        )
    low, high = plausibility.temperature_min, plausibility.temperature_max
    for cid, *values in temperatures:
        for name, value in zip(("return", "flow"), values, strict=True):
            if value is not None and not low <= value <= high:
                holds.append(
                    f"volume-weighted {name} temperature {value} °C on connection {cid} is "
                    f"outside {low}–{high} °C (a m³·°C register rolled over or failed?)"
                )
    if energy_mwh > capacity_mwh * plausibility.capacity_factor:
        holds.append(
            f"{energy_mwh} MWh is more than the contracted capacity can deliver in the period "
            f"({quantize_energy(capacity_mwh)} MWh at full load)"
        )
    if last_year_mwh is not None and last_year_mwh >= plausibility.min_last_year_mwh:
        ratio = energy_mwh / last_year_mwh
        if ratio > plausibility.ratio_high or ratio < plausibility.ratio_low:
            basis = ", from an estimated register" if last_year_estimated else ""
            holds.append(
                f"{energy_mwh} MWh is {ratio:.2f}× the same period last year "
                f"({last_year_mwh} MWh{basis})"
            )
    return holds


def rollover_hold_reasons(
    intervals: Sequence[ContractInterval], pending: dict[int, Sequence[PendingRollover]]
) -> list[str]:
    """Why a bill waits for a rollover decision (empty: it does not): a contract interval
    whose registers lie on both sides of an undecided rollover's instant, or between
    the read before it and it, counts one wrap where staff may still find more.  An
    interval that starts at or after the rollover's read, or ends at or before the read
    before it, does not depend on the count (every value after the read moves alike)."""
    holds: list[str] = []
    for interval in intervals:
        for rollover in pending.get(interval.connection_id, ()):
            zone = rollover.time_zone
            if local_midnight(interval.start, zone) < rollover.read_at and (
                local_midnight(interval.end, zone) > rollover.since_at
            ):
                holds.append(
                    f"the {rollover.register} register of meter {rollover.meter} on connection "
                    f"{interval.connection_id} rolled over between "
                    f"{_local_minutes(rollover.since_at, zone)} and "
                    f"{_local_minutes(rollover.read_at, zone)}, long enough to wrap more than "
                    "once, and counts one wrap until staff decide the ambiguous rollover in "
                    "the reading issues (then recompute the draft)"
                )
    return holds


def decrease_hold_reasons(
    intervals: Sequence[ContractInterval], pending: dict[int, Sequence[PendingDecrease]]
) -> list[str]:
    """Why a bill waits for a register decrease decision (empty: it does not): a
    contract interval that reaches past the read before an undecided decrease and
    starts at or before the decrease's read.  Unlike a rollover's wraps, the decision
    moves the register at the read itself (accepted: the fallen value; rejected: one
    estimated around it), so a bill starting there depends on it too; one ending at or
    before the read before it does not."""
    holds: list[str] = []
    for interval in intervals:
        for decrease in pending.get(interval.connection_id, ()):
            zone = decrease.time_zone
            if local_midnight(interval.start, zone) <= decrease.read_at and (
                local_midnight(interval.end, zone) > decrease.since_at
            ):
                holds.append(
                    f"the register of meter {decrease.meter} on connection "
                    f"{interval.connection_id} went down at "
                    f"{_local_minutes(decrease.read_at, zone)} from the read at "
                    f"{_local_minutes(decrease.since_at, zone)}, and staff have not accepted "
                    "or rejected the register decrease in the reading issues: the bill's "
                    "registers may be wrong until they do (then recompute the draft)"
                )
    return holds


def _local_minutes(at: dt.datetime, zone: str) -> str:
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def bills_each(
    account_ids: Sequence[int], make: Callable[[int], Any]
) -> tuple[list[Any], dict[int, BillingError]]:
    """``make(account_id)`` for each account in order; failures by account.

    One bad account never fails the rest: a :class:`BillingError` is kept as it is, any
    other exception becomes one with code ``error``.
    """
    made: list[Any] = []
    failures: dict[int, BillingError] = {}
    for account_id in account_ids:
        try:
            made.append(make(account_id))
        except BillingError as exc:
            failures[account_id] = exc
        except Exception as exc:  # one bad account never fails the run
            failures[account_id] = BillingError(f"{type(exc).__name__}: {exc}", code="error")
    return made, failures
