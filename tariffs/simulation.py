"""Before approval: the impact of a draft on every bill, and standard price examples.

Pure parts (:func:`bill_changes`, :func:`price_examples`) take specs and determinants;
:func:`tariff_version_impact` gathers the last 12 months of determinants.

Determinants source: ``metering.selectors.boundary_registers`` (continuous connection
registers at the first and last day; energy and volume are differences, temperatures the
difference of the m³·°C registers over the volume).  Where a connection has no register
pair, the *standard estimate* is used and counted separately: 130 kWh per m² of heated
area and year, cooling ΔT 30 °C (volume = MWh × 860 / 30).

Standard customers (price examples): Swedish "Nils Holgersson" style houses using 15, 20,
30 and 40 MWh and multi-dwelling buildings using 80, 193, 500 and 1,000 MWh, and the Danish
reference house of 130 m² using 18.1 MWh.  Assumptions for the determinants the examples
do not state: capacity = MWh × 1000 / 2,000 h (houses) or / 2,400 h (multi-dwelling),
heated area = MWh × 1000 / 130 kWh/m² (except the Danish house: 130 m²), cooling 30 °C.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from heatutility.money import quantize_money
from tariffs.rating import Determinants, TariffSpec, rate, totals

STANDARD_KWH_PER_M2 = Decimal(130)
STANDARD_DELTA_T = Decimal(30)
HOUSE_FULL_LOAD_HOURS = 2000
MULTI_DWELLING_FULL_LOAD_HOURS = 2400
LARGEST_HOUSE_MWH = Decimal(40)  # the largest Swedish standard house; above it: multi-dwelling


@dataclass(frozen=True)
class StandardCustomer:
    key: str
    label: str
    energy_mwh: Decimal
    heated_area_m2: Decimal
    contracted_kw: Decimal


def _std(key, label, mwh, hours, area=None) -> StandardCustomer:
    mwh = Decimal(mwh)
    return StandardCustomer(
        key=key,
        label=label,
        energy_mwh=mwh,
        heated_area_m2=Decimal(area)
        if area is not None
        else (mwh * 1000 / STANDARD_KWH_PER_M2).quantize(Decimal("0.01")),
        contracted_kw=(mwh * 1000 / hours).quantize(Decimal("0.01")),
    )


STANDARD_CUSTOMERS: tuple[StandardCustomer, ...] = (
    _std("se-house-15", "House, 15 MWh/year (SE)", "15", 2000),
    _std("se-house-20", "House, 20 MWh/year (SE)", "20", 2000),
    _std("se-house-30", "House, 30 MWh/year (SE)", "30", 2000),
    _std("se-house-40", "House, 40 MWh/year (SE)", "40", 2000),
    _std("se-multi-80", "Multi-dwelling, 80 MWh/year (SE)", "80", 2400),
    _std("se-multi-193", "Multi-dwelling, 193 MWh/year (SE)", "193", 2400),
    _std("se-multi-500", "Multi-dwelling, 500 MWh/year (SE)", "500", 2400),
    _std("se-multi-1000", "Multi-dwelling, 1,000 MWh/year (SE)", "1000", 2400),
    _std("dk-house-130m2", "Reference house 130 m², 18.1 MWh/year (DK)", "18.1", 2000, area="130"),
)


def standard_volume_m3(energy_mwh: Decimal) -> Decimal:
    """Network water for ``energy_mwh`` at the standard cooling: MWh × 860 / 30 °C."""
    return (energy_mwh * 860 / STANDARD_DELTA_T).quantize(Decimal("0.01"))


def standard_assumptions(energy_mwh: Decimal) -> dict[str, Decimal]:
    """The determinants the price examples assume for a customer using ``energy_mwh`` a year.

    A standard customer's own figures where one uses exactly that much (18.1 MWh: the Danish
    130 m² house, 9.05 kW); otherwise the rules above: a house up to 40 MWh (2,000 h), a
    multi-dwelling building above (2,400 h), 130 kWh/m², cooling 30 °C.
    """
    customer = next((c for c in STANDARD_CUSTOMERS if c.energy_mwh == energy_mwh), None)
    if customer is None:
        hours = (
            HOUSE_FULL_LOAD_HOURS
            if energy_mwh <= LARGEST_HOUSE_MWH
            else MULTI_DWELLING_FULL_LOAD_HOURS
        )
        customer = _std("", "", energy_mwh, hours)
    return {
        "volume_m3": standard_volume_m3(energy_mwh),
        "contracted_kw": customer.contracted_kw,
        "heated_area_m2": customer.heated_area_m2,
    }


def standard_determinants(customer: StandardCustomer, *, year: int) -> Determinants:
    return Determinants(
        period_start=dt.date(year, 1, 1),
        period_end=dt.date(year + 1, 1, 1),
        energy_mwh=customer.energy_mwh,
        volume_m3=standard_volume_m3(customer.energy_mwh),
        return_temp_c=None,
        flow_temp_c=None,
        contracted_kw=customer.contracted_kw,
        heated_area_m2=customer.heated_area_m2,
        annual_energy_mwh=customer.energy_mwh,
    )


def price_examples(*, spec: TariffSpec, year: int, customers=STANDARD_CUSTOMERS) -> list[dict]:
    """Yearly cost of each standard customer under ``spec`` (net, VAT, gross, per MWh)."""
    out = []
    for c in customers:
        lines = rate(determinants=standard_determinants(c, year=year), tariff=spec)
        t = totals(lines, spec.currency)
        fixed = sum(
            (ln.amount for ln in lines if ln.kind not in ("energy", "volume", "cooling")),
            Decimal(0),
        )
        out.append(
            {
                "key": c.key,
                "label": c.label,
                "energy_mwh": c.energy_mwh,
                "heated_area_m2": c.heated_area_m2,
                "contracted_kw": c.contracted_kw,
                "net": t.net,
                "vat": t.vat,
                "gross": t.gross,
                "fixed_net": fixed,
                "variable_net": t.net - fixed,
                "gross_per_mwh": quantize_money(t.gross / c.energy_mwh, spec.currency),
                "lines": lines,
            }
        )
    return out


def _percentile(sorted_values: list[Decimal], p: int) -> Decimal:
    """Nearest-rank percentile (no interpolation, so every figure is a real bill change)."""
    if not sorted_values:
        return Decimal(0)
    import math

    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def bill_changes(
    *, rows: list[tuple[int, TariffSpec | None, Determinants]], draft: TariffSpec, largest: int = 10
) -> dict:
    """Net bill under the current spec and under the draft for every (connection, current, det)."""
    changes: list[tuple[int, Decimal, Decimal, Decimal]] = []
    for connection_id, current, det in rows:
        before = (
            totals(rate(determinants=det, tariff=current), current.currency).net
            if current
            else Decimal(0)
        )
        after = totals(rate(determinants=det, tariff=draft), draft.currency).net
        changes.append((connection_id, before, after, after - before))
    deltas = sorted(c[3] for c in changes)
    n = len(deltas)
    mean = quantize_money(sum(deltas, Decimal(0)) / n, draft.currency) if n else Decimal(0)
    top = sorted(changes, key=lambda c: c[3], reverse=True)[:largest]
    return {
        "count": n,
        "mean": mean,
        "min": deltas[0] if n else Decimal(0),
        "max": deltas[-1] if n else Decimal(0),
        "percentiles": {f"p{p}": _percentile(deltas, p) for p in (10, 25, 50, 75, 90)},
        "increased": sum(1 for d in deltas if d > 0),
        "decreased": sum(1 for d in deltas if d < 0),
        "largest_increases": [
            {
                "connection_id": cid,
                "before": b,
                "after": a,
                "change": d,
                "change_pct": (d / b * 100).quantize(Decimal("0.1")) if b else None,
            }
            for cid, b, a, d in top
        ],
    }


# ----------------------------------------------------------------------------- with data
def _one_year_later(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February → 1 March
        return dt.date(day.year + 1, 3, 1)


def last_year_determinants(
    *, connection_ids: list[int], start: dt.date, end: dt.date
) -> dict[int, tuple[Determinants, str]]:
    """Determinants of ``[start, end)`` per connection and their source ("metered"/"standard")."""
    from customers.models import ServiceConnection

    conns = {
        cid: (kw, area)
        for cid, kw, area in ServiceConnection.objects.filter(id__in=connection_ids).values_list(
            "id", "contracted_capacity_kw", "building__heated_area_m2"
        )
    }
    registers: dict[int, dict[dt.date, tuple]] = {}
    try:
        from metering.selectors import boundary_registers
    except ImportError:  # metering without the selector: standard estimates only
        boundary_registers = None
    if boundary_registers is not None and conns:
        frame = boundary_registers(connection_ids=list(conns), dates=[start, end])
        for row in frame.itertuples(index=False):
            registers.setdefault(int(row.connection_id), {})[row.on] = (
                row.energy_kwh,
                row.volume_m3,
                row.flow_temp_m3c,
                row.return_temp_m3c,
            )
    # the standard estimate is per year: the share of a year is the window's days over the
    # days of the year that starts with it (366 when it spans a 29 February), so 12 months is 1
    fraction = Decimal((end - start).days) / Decimal((_one_year_later(start) - start).days)
    out: dict[int, tuple[Determinants, str]] = {}
    for cid, (kw, area) in conns.items():
        regs = registers.get(cid, {})
        if start in regs and end in regs:
            e0, v0, f0, r0 = regs[start]
            e1, v1, f1, r1 = regs[end]
            energy = (Decimal(e1) - Decimal(e0)) / 1000
            volume = Decimal(v1) - Decimal(v0)
            flow = ret = None
            if volume > 0 and None not in (f0, f1, r0, r1):
                flow = ((Decimal(f1) - Decimal(f0)) / volume).quantize(Decimal("0.01"))
                ret = ((Decimal(r1) - Decimal(r0)) / volume).quantize(Decimal("0.01"))
            source = "metered"
        else:
            energy = (Decimal(area) * STANDARD_KWH_PER_M2 / 1000 * fraction).quantize(
                Decimal("0.001")
            )
            volume = (energy * 860 / STANDARD_DELTA_T).quantize(Decimal("0.01"))
            flow = ret = None
            source = "standard"
        out[cid] = (
            Determinants(
                period_start=start,
                period_end=end,
                energy_mwh=energy,
                volume_m3=volume,
                return_temp_c=ret,
                flow_temp_c=flow,
                contracted_kw=Decimal(kw),
                heated_area_m2=Decimal(area),
                annual_energy_mwh=energy,
            ),
            source,
        )
    return out


def tariff_version_impact(*, version, as_of: dt.date) -> dict:
    """Apply ``version`` to the last 12 months before ``as_of`` of every connection on its tariff."""
    from customers.models import ServiceConnection
    from tariffs.models import TariffAssignment
    from tariffs.selectors import tariff_slices_for_connections, tariff_spec_for_version

    start = dt.date(as_of.year - 1, as_of.month, 1)
    end = dt.date(as_of.year, as_of.month, 1)
    tariff = version.tariff
    connection_ids = set(
        TariffAssignment.objects.filter(tariff=tariff, valid_from__lt=end).values_list(
            "connection_id", flat=True
        )
    )
    if tariff.is_default:
        connection_ids |= set(
            ServiceConnection.objects.filter(network_id=tariff.network_id)
            .exclude(tariff_assignments__valid_from__lt=end)
            .values_list("id", flat=True)
        )
    ids = sorted(connection_ids)
    determinants = last_year_determinants(connection_ids=ids, start=start, end=end)
    slices = tariff_slices_for_connections(connection_ids=ids, start=start, end=end)
    draft = tariff_spec_for_version(version)
    rows = []
    for cid in ids:
        det, _ = determinants[cid]
        # current = the version in force on the last day of the window
        current = slices[cid][-1][2] if slices.get(cid) else None
        rows.append((cid, current, det))
    result = bill_changes(rows=rows, draft=draft)
    result["period_start"] = start
    result["period_end"] = end
    result["sources"] = {
        "metered": sum(1 for _, s in determinants.values() if s == "metered"),
        "standard": sum(1 for _, s in determinants.values() if s == "standard"),
    }
    return result
