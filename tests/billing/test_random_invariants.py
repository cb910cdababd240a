"""A seeded, randomised audit of the billing invariants (docs/billing.md, docs/tariffs.md).

Each scenario is drawn from ``random.Random(seed)`` and built through the factories and
the public services of every app: meters installed and exchanged through
``metering.installations``, readings stored and validated by VEE (so rollovers are
found as in production), boundary registers estimated by metering when billing asks,
tariff versions as approved rows, and bills made by real billing runs (Celery eager),
issued, re-rated and settled through ``billing.services``.

What varies: tariff components (fixed per year or month, capacity per kW in flat,
graduated or whole bands, area per m², energy per MWh/GJ/kWh flat, seasonal or in
annual blocks, volume, cooling/return-temperature incentives), VAT rate and prices
incl. VAT, a tariff version change inside the period (sometimes with another VAT
rate), another tariff assigned from a day of the period, move-in and move-out inside
the period (the next tenant, a vacancy, a renewal by the same account, one account on
two premises), contracted kW and heated m² changes, up to two meter exchanges (or a
removal with the next meter installed days later), energy and volume register
rollovers (also between the last read and the final register), boundaries read at
local midnight (actual), interpolated, or estimated from last year until the last
days' reads arrive, monthly and quarterly periods with March and October (the DST
months in Europe/Copenhagen) over-represented, a year of monthly bills, and on-account
instalments (monthly or quarterly) with the annual settlement and final settlements.
After billing: corrected reads (late reads, staff edits), contracts, kW and m² changed
late (the nightly look), a corrected tariff approved from a billed day, and a bill or
an instalment credited by hand (and the period billed again).

The expected consumption is computed here from the raw values generated (a continuous
register through every read and exchange instant, interpolated linearly in UTC time as
metering documents), never from what billing or metering stored.

Invariants checked on every document (to the cent, ``Decimal``, exact):

1. Σ lines = net, gross = net + VAT, VAT per rate on the rate's line sum rounded half
   up once; every line = quantity × unit price (× the year fraction for annual charges)
   rounded half up;
2. the bill recomputes to the same figures (``invoice_recompute``), and from what it
   recorded (its segments' determinants and tariff versions, ``tariffs.rating.rate``);
3. energy and volume billed over each contract interval = the continuous register
   difference between its bounds, across exchanges and rollovers;
4. the parts of a prorated interval tile the days supplied, and a fixed yearly fee
   over a year of monthly bills adds up to the fee within one rounding per line;
5. re-rating an unchanged period issues nothing; after a corrected reading the credit
   note reverses the original exactly, the correction is the recomputed bill, and each
   account has one live bill per period;
6. a settlement bills the actual year and credits exactly the instalments issued.

Defects found are reproduced in small, hand-shrunk tests at the end of this file,
marked ``xfail(strict=True)``; the random audit recognises them (``KNOWN_DEFECTS``) so
the suite stays green until they are fixed, and fails on anything new.  None is open:
the two it found (A: slices' MWh rounded one by one, B: the trailing-year register of
block prices not recorded) are fixed, and their shrunk tests are plain tests now.

``HEATUTILITY_AUDIT_SCENARIOS=N`` runs N scenarios (default 120: about a minute on
SQLite); ``HEATUTILITY_AUDIT_SEEDS=3,17`` runs just those seeds;
``HEATUTILITY_AUDIT_SEED`` shifts the seed range.  A failure prints the scenario.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from billing import tasks
from billing.models import InstalmentPlan, Invoice, InvoiceLine
from billing.services.aconto import final_settlement_issue, instalment_plan_create
from billing.services.contract_changes import contracts_rebill_changed
from billing.services.invoices import invoice_credit, invoice_issue, invoice_release
from billing.services.payments import account_balance
from billing.services.rerating import (
    current_invoices,
    invoice_rebill,
    invoice_recompute,
    invoices_rerate_changed,
)
from billing.services.runs import billing_run_create, billing_run_issue
from customers.models import Account, Contract
from customers.selectors import area_on, capacity_on
from customers.services import (
    account_set_status,
    building_area_change,
    connection_capacity_change,
    contract_move_in,
    contract_move_out,
)
from metering.installations import meter_exchange, meter_install, meter_remove
from metering.models import BoundaryRegister, MeterInstallation, Reading
from metering.services import vee_run_meter
from tariffs.models import Tariff, TariffVersion
from tariffs.rating import Determinants, rate
from tariffs.selectors import tariff_slices_for_connections, tariff_spec_for_version
from tariffs.services import tariff_assign, tariff_version_approve, tariff_version_create
from tests.customers.factories import (
    AccountFactory,
    BuildingFactory,
    BuildingInterfaceUnitFactory,
    ContractFactory,
    NetworkFactory,
    ServiceConnectionFactory,
)
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import add_readings

CPH = ZoneInfo("Europe/Copenhagen")
NOW = dt.datetime(2027, 2, 1, 8, 0, tzinfo=dt.UTC)  # every period billed is over
CENT = Decimal("0.01")
E6 = Decimal("0.000001")
# A billed MWh figure may differ from the exact register difference by its own rounding
# to 6 decimals, plus the two boundary values' storage rounding (6 decimals of kWh).
ENERGY_TOLERANCE = Fraction(1, 2_000_000) + Fraction(2, 10**9)
VOLUME_TOLERANCE = Fraction(1, 10_000) + Fraction(1, 10**8)  # two bounds at 4 decimals
ANNUAL_KINDS = {"fixed", "meter_rent", "capacity", "area"}
YEAR = dt.date(2026, 1, 1)


def _scenario_seeds() -> list[int]:
    listed = os.environ.get("HEATUTILITY_AUDIT_SEEDS", "").strip()
    if listed:
        return [int(s) for s in listed.split(",") if s.strip()]
    count = int(os.environ.get("HEATUTILITY_AUDIT_SCENARIOS", "120"))
    base = int(os.environ.get("HEATUTILITY_AUDIT_SEED", "0"))
    return list(range(base, base + count))


# --------------------------------------------------------------------------- arithmetic
def _local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=CPH).astimezone(dt.UTC)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _half_up(value: Fraction | Decimal, places: int = 2) -> Decimal:
    """``value`` rounded half up (away from zero) to ``places`` decimals, exactly."""
    value = Fraction(value)
    sign = -1 if value < 0 else 1
    scaled = abs(value) * 10**places
    whole = scaled.numerator // scaled.denominator
    if scaled - whole >= Fraction(1, 2):
        whole += 1
    return Decimal(sign * whole).scaleb(-places)


def _year_fraction(start: dt.date, end: dt.date) -> Fraction:
    """docs/tariffs.md: each calendar month is 1/12 of a year, split by days."""
    total, day = Fraction(0), start
    while day < end:
        stop = min(end, _add_months(day, 1))
        total += Fraction((stop - day).days, 12 * calendar.monthrange(day.year, day.month)[1])
        day = stop
    return total


# --------------------------------------------------------------------------- scenario
@dataclass
class VersionPlan:
    valid_from: dt.date
    valid_to: dt.date | None
    vat_rate: Decimal
    prices_include_vat: bool
    components: list[dict]


@dataclass
class TenantPlan:
    valid_from: dt.date
    valid_to: dt.date | None


@dataclass
class ConnectionPlan:
    kw: Decimal
    area_m2: Decimal
    tenants: list[TenantPlan]
    daily_kwh: int
    delta_t: int
    return_c: int
    read_every_days: int
    exact_reads: list[dt.date]  # boundaries read at local midnight (actual)
    # meters taken out and the next put in: (removed_at, installed_at); the same instant
    # for an exchange, later for a removal with the next meter installed days after
    swaps: tuple[tuple[dt.datetime, dt.datetime], ...]
    rollover: int | None  # which meter's registers wrap (0: the first)
    rolls: tuple[str, ...]  # which registers wrap: "energy", "volume"
    final_read_at_exchange: bool
    kw_change: tuple[dt.date, Decimal] | None = None
    area_change: tuple[dt.date, Decimal] | None = None
    renewal: bool = False  # the second contract is the first tenant's again
    late_reads_after: dt.datetime | None = None  # reads after it arrive after billing


@dataclass
class Correction:
    connection: int  # index
    on: dt.date
    factor: Fraction  # the corrected consumption from the read before ``on``


@dataclass
class LateChange:
    """A contract, capacity or area change recorded after the period was billed."""

    what: str  # move (a new tenant from ``on``) | out | kw | m2
    connection: int  # index
    on: dt.date


@dataclass
class Scenario:
    seed: int
    kind: str  # period | year | aconto
    period_start: dt.date
    months: int
    versions: list[VersionPlan]
    connections: list[ConnectionPlan]
    reads_from: dt.date
    reads_until: dt.date
    frequency: str = ""
    shared_account: bool = False  # connection 1's first tenant is connection 0's
    correction: Correction | None = None
    late: LateChange | None = None
    final_settlement: bool = False  # a tenant moving out in the year is settled at once
    # another tariff assigned to a connection from a day of the period (index, day, version)
    assignment: tuple[int, dt.date, VersionPlan] | None = None
    # a corrected tariff version approved after billing, from a day already billed
    tariff_correction: VersionPlan | None = None
    credit_by_hand: bool = False  # staff credit a bill (an instalment) in full by hand

    @property
    def period_end(self) -> dt.date:
        return _add_months(self.period_start, self.months)

    def describe(self) -> str:
        out = [
            f"seed {self.seed}: {self.kind} {self.period_start}+{self.months}m "
            f"{self.frequency} reads {self.reads_from}..{self.reads_until}"
            + (" shared account" if self.shared_account else "")
        ]
        for v in self.versions:
            out.append(
                f"  version {v.valid_from}..{v.valid_to} vat {v.vat_rate} "
                f"incl={v.prices_include_vat} {v.components}"
            )
        for i, c in enumerate(self.connections):
            out.append(
                f"  connection {i}: {c.kw} kW {c.area_m2} m² tenants "
                f"{[(str(t.valid_from), str(t.valid_to)) for t in c.tenants]} "
                f"{c.daily_kwh} kWh/day every {c.read_every_days} d "
                f"exact {[str(d) for d in c.exact_reads]} swaps {[(str(a), str(b)) for a, b in c.swaps]} "
                f"rollover {c.rollover} {c.rolls} final-read {c.final_read_at_exchange} "
                f"kW {c.kw_change} m² {c.area_change} renewal {c.renewal} "
                f"late reads after {c.late_reads_after}"
            )
        if self.correction:
            out.append(f"  correction {self.correction}")
        if self.late:
            out.append(f"  recorded late: {self.late}")
        if self.final_settlement:
            out.append("  final settlement of tenants moving out")
        if self.assignment:
            index, day, v = self.assignment
            out.append(f"  connection {index} on tariff 'alt' from {day}: {v}")
        if self.tariff_correction:
            out.append(f"  tariff corrected after billing: {self.tariff_correction}")
        if self.credit_by_hand:
            out.append("  staff credit a bill by hand (and bill the period again)")
        return "\n".join(out)


def _amount(rng: random.Random, lo: float, hi: float, places: int | None = None) -> str:
    places = rng.choice((2, 2, 2, 0, 3, 6)) if places is None else places
    scale = 10**places
    return f"{Decimal(rng.randint(int(lo * scale), int(hi * scale))).scaleb(-places):f}"


ENERGY_PRICE = {"MWh": (200, 900), "GJ": (55, 250), "kWh": (0.2, 0.9)}
PER_MWH = {"MWh": Fraction(1), "GJ": Fraction(36, 10), "kWh": Fraction(1000)}


def _components(rng: random.Random, *, blocks: bool) -> list[dict]:
    comps: list[dict] = []
    if rng.random() < 0.8:
        per = rng.choice(["year", "year", "month"])
        comps.append(
            {
                "type": "fixed",
                "code": "subscription",
                "description": "Subscription",
                "amount": _amount(rng, 100, 3000) if per == "year" else _amount(rng, 10, 250),
                "per": per,
                "kind": rng.choice(["fixed", "fixed", "meter_rent"]),
            }
        )
    if rng.random() < 0.7:
        shape = rng.choice(["flat", "flat", "graduated", "whole"])
        if shape == "flat":
            bands = [{"unit_price": _amount(rng, 50, 400)}]
        elif shape == "graduated":
            bands = [
                {"upto": "15", "unit_price": _amount(rng, 80, 400), "fixed": _amount(rng, 0, 500)},
                {"unit_price": _amount(rng, 50, 300)},
            ]
        else:
            bands = [
                {"upto": "15", "unit_price": _amount(rng, 80, 400), "fixed": _amount(rng, 0, 900)},
                {"upto": "30", "unit_price": _amount(rng, 70, 300), "fixed": _amount(rng, 0, 900)},
                {"unit_price": _amount(rng, 50, 250), "fixed": _amount(rng, 0, 900)},
            ]
        comps.append(
            {
                "type": "banded",
                "code": "capacity",
                "description": "Capacity charge",
                "basis": "capacity",
                "unit": "kW",
                "bands": bands,
                "mode": "whole" if shape == "whole" else "graduated",
                "fixed_per": rng.choice(["year", "month"]),
            }
        )
    if rng.random() < 0.25:
        comps.append(
            {
                "type": "banded",
                "code": "area",
                "description": "Area charge",
                "basis": "area",
                "unit": "m²",
                "bands": [
                    {"upto": "150", "unit_price": _amount(rng, 5, 40)},
                    {"unit_price": _amount(rng, 2, 20)},
                ],
            }
        )
    unit = rng.choice(["MWh", "MWh", "MWh", "GJ", "kWh"])
    lo, hi = ENERGY_PRICE[unit]
    energy: dict = {
        "type": "energy",
        "code": "energy",
        "description": "Energy charge",
        "unit": unit,
    }
    shape = rng.random()
    if shape < 0.15:
        energy["seasons"] = [
            {"label": "summer", "months": [5, 6, 7, 8, 9], "price": _amount(rng, lo, hi)},
            {"label": "winter", "months": [1, 2, 3, 10, 11, 12], "price": _amount(rng, lo, hi)},
            {"label": "spring", "months": [4], "price": _amount(rng, lo, hi)},
        ]
    elif shape < 0.3 and blocks:
        limit = Fraction(rng.randint(3, 40)) * PER_MWH[unit]
        energy["blocks"] = [
            {
                "upto": f"{Decimal(limit.numerator) / limit.denominator:f}",
                "price": _amount(rng, lo, hi),
            },
            {"price": _amount(rng, lo, hi)},
        ]
    else:
        energy["price"] = _amount(rng, lo, hi)
    comps.append(energy)
    if rng.random() < 0.4:
        comps.append(
            {
                "type": "volume",
                "code": "volume",
                "description": "Water",
                "price": _amount(rng, 1, 15),
            }
        )
    if rng.random() < 0.35:
        comps.append(
            rng.choice(
                [
                    {  # HOFOR: 0.8 %/°C of the energy charge beyond 30 ± 5 °C
                        "type": "cooling",
                        "code": "cooling",
                        "description": "Cooling",
                        "target": "30",
                        "band_below": "5",
                        "band_above": "5",
                        "penalty_rate": "0.008",
                        "bonus_rate": "0.008",
                    },
                    {  # Tårnby: 1.05 per GJ per °C outside 39–41 °C
                        "type": "cooling",
                        "code": "cooling",
                        "description": "Cooling",
                        "target": "40",
                        "band_below": "1",
                        "band_above": "1",
                        "factor": "242",
                        "factor_unit": "GJ",
                        "penalty_rate": "1.05",
                        "bonus_rate": "1.05",
                        "rate_basis": "per_unit",
                        "rate_unit": "GJ",
                    },
                    {  # Holte: 25 per MWh per °C below 35 °C, penalty only
                        "type": "cooling",
                        "code": "cooling",
                        "description": "Cooling",
                        "target": "35",
                        "penalty_rate": "25",
                        "rate_basis": "per_unit",
                        "count_from": "target",
                    },
                    {  # return temperature above 40 °C: 1.5 %/°C
                        "type": "cooling",
                        "code": "cooling",
                        "description": "Return temperature",
                        "metric": "return_temp",
                        "target": "40",
                        "penalty_rate": "0.015",
                        "bonus_rate": "0.005",
                    },
                ]
            )
        )
    return comps


VATS = [Decimal("0.25")] * 4 + [Decimal("0.19"), Decimal("0.07"), Decimal("0"), Decimal("0.125")]


def _versions(rng: random.Random, *, change: dt.date | None, blocks: bool) -> list[VersionPlan]:
    vat = rng.choice(VATS)
    first = VersionPlan(
        dt.date(2020, 1, 1), change, vat, rng.random() < 0.2, _components(rng, blocks=blocks)
    )
    if change is None:
        return [first]
    second = VersionPlan(
        change,
        None,
        rng.choice(VATS) if rng.random() < 0.25 else vat,
        rng.random() < 0.2,
        _components(rng, blocks=blocks),
    )
    return [first, second]


def _day_inside(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    """A day strictly after ``start`` and before ``end``."""
    return start + dt.timedelta(days=rng.randint(1, (end - start).days - 1))


def _connection(
    rng: random.Random,
    *,
    start: dt.date,
    end: dt.date,
    boundaries: set[dt.date],
    exchange_window: tuple[dt.date, dt.date],
    read_every: list[int],
    change: dt.date | None = None,
) -> ConnectionPlan:
    kw = Decimal(rng.choice(["6", "8", "10", "12.5", "16", "20", "25", "32", "40"]))
    tenants: list[TenantPlan] = []
    moves_in = rng.random() < 0.25
    moves_out = rng.random() < 0.3
    on_change = change is not None and rng.random() < 0.3  # a move on the tariff's change day
    first_from = _day_inside(rng, start, end) if moves_in else dt.date(2024, 1, 1)
    if moves_in and on_change:
        first_from = change
    if moves_out and (end - max(first_from, start)).days > 2:
        out = _day_inside(rng, max(first_from, start), end)
        if on_change and not moves_in and change > start:
            out = change
        tenants.append(TenantPlan(first_from, out))
        after = rng.random()
        if after < 0.35:
            tenants.append(TenantPlan(out, None))
        elif after < 0.5 and (end - out).days > 2:  # empty for a few days
            gap = rng.randint(1, min(5, (end - out).days - 1))
            tenants.append(TenantPlan(out + dt.timedelta(days=gap), None))
    else:
        tenants.append(TenantPlan(first_from, None))
    bounds = set(boundaries)
    for t in tenants:
        bounds.add(t.valid_from)
        if t.valid_to:
            bounds.add(t.valid_to)
    exact = [d for d in sorted(bounds) if start <= d <= end and rng.random() < 0.5]
    swaps: list[tuple[dt.datetime, dt.datetime]] = []
    lo, hi = exchange_window
    for _ in range(rng.choices([0, 1, 2], weights=[68, 27, 5])[0]):
        day = lo + dt.timedelta(days=rng.randint(0, (hi - lo).days - 1))
        if rng.random() < 0.2:  # "on the 1st": at local midnight, maybe a boundary
            if rng.random() < 0.5:
                day = rng.choice(sorted(d for d in bounds if lo < d < hi) or [day])
            removed = _local_midnight(day)
        else:
            removed = dt.datetime.combine(
                day, dt.time(rng.randint(0, 23), rng.randint(1, 59)), tzinfo=CPH
            ).astimezone(dt.UTC)
        installed = removed
        if rng.random() < 0.2:  # no meter for a while: nothing is counted then
            installed += dt.timedelta(days=rng.randint(0, 3), hours=rng.randint(1, 23))
        if all(abs(removed - a) > dt.timedelta(days=4) for a, _b in swaps):
            swaps.append((removed, installed))
    swaps.sort()
    rollover, rolls = None, ()
    if rng.random() < 0.3:
        rollover = rng.randint(0, len(swaps))
        rolls = rng.choice([("energy",), ("energy",), ("volume",), ("energy", "volume")])
    kw_change = area_change = None
    if rng.random() < 0.1:
        kw_change = (
            _day_inside(rng, start, end),
            (kw * Decimal(rng.choice(["0.8", "1.25", "1.5"]))).quantize(CENT),
        )
    if rng.random() < 0.07:
        area_change = (_day_inside(rng, start, end), Decimal(rng.randint(45, 400)))
    return ConnectionPlan(
        kw=kw,
        area_m2=Decimal(rng.randint(45, 400)),
        tenants=tenants,
        daily_kwh=max(1, int(kw * 24 * Decimal(rng.uniform(0.05, 0.45)))),
        delta_t=rng.randint(18, 45),
        return_c=rng.randint(28, 50),
        read_every_days=rng.choice(read_every),
        exact_reads=exact,
        swaps=tuple(swaps),
        rollover=rollover,
        rolls=rolls,
        final_read_at_exchange=rng.random() < 0.3,
        kw_change=kw_change,
        area_change=area_change,
        renewal=len(tenants) > 1 and rng.random() < 0.2,
    )


def scenario_from_seed(seed: int) -> Scenario:
    rng = random.Random(seed)
    roll = rng.random()
    kind = "aconto" if roll < 0.1 else "year" if roll < 0.17 else "period"
    if kind == "period":
        months = rng.choice([1, 1, 1, 3])
        if months == 1:
            start = dt.date(2026, rng.choice([1, 2, 3, 3, 3, 4, 6, 9, 10, 10, 10, 11, 12]), 1)
        else:
            start = dt.date(2026, rng.choice([1, 1, 4, 7, 10, 10]), 1)
        end = _add_months(start, months)
        history = rng.random() < 0.15  # a year of reads before: last year, block prices
        change = None
        if rng.random() < 0.35:
            inside = [d for d in (_add_months(start, 1), _add_months(start, 2)) if d < end]
            change = (
                rng.choice(inside)
                if months == 3 and rng.random() < 0.3
                else _day_inside(rng, start, end)
            )
        versions = _versions(rng, change=change, blocks=history)
        boundaries = {start, end} | ({change} if change else set())
        connections = [
            _connection(
                rng,
                start=start,
                end=end,
                boundaries=boundaries,
                exchange_window=(start - dt.timedelta(days=3), end + dt.timedelta(days=2)),
                read_every=[7, 10, 14] if history else [1, 2, 3, 5, 7],
                change=change,
            )
            for _ in range(rng.choice([1, 1, 2, 2, 3]))
        ]
        for plan in connections if history else ():
            # the reads of the period's last days arrive after the run: its end register
            # is estimated from last year's consumption, then re-rated
            cutoff = _local_midnight(end - dt.timedelta(days=rng.randint(0, 6)))
            cutoff -= dt.timedelta(hours=rng.randint(1, 20))
            if rng.random() < 0.4 and all(
                b < cutoff - dt.timedelta(days=20) for _a, b in plan.swaps
            ):
                plan.late_reads_after = cutoff
        scenario = Scenario(
            seed,
            kind,
            start,
            months,
            versions,
            connections,
            reads_from=start - dt.timedelta(days=12 + (365 if history else 0)),
            reads_until=end + dt.timedelta(days=10),
        )
    else:
        start, end = YEAR, _add_months(YEAR, 12)
        change = _day_inside(rng, start, end) if rng.random() < 0.4 else None
        versions = _versions(rng, change=change, blocks=kind == "aconto")
        connections = []
        for _ in range(rng.choice([1, 1, 2])):
            plan = _connection(
                rng,
                start=start,
                end=end,
                boundaries={start, end},
                exchange_window=(start, end),
                read_every=[7, 10, 14],
                change=change,
            )
            if kind == "year":  # a whole year supplied: the fixed fee adds up over it
                plan.tenants = [TenantPlan(dt.date(2024, 1, 1), None)]
                plan.kw_change = plan.area_change = None
                plan.renewal = False
            connections.append(plan)
        scenario = Scenario(
            seed,
            kind,
            start,
            12 if kind == "aconto" else 1,
            versions,
            connections,
            reads_from=dt.date(2024, 12, 10) if kind == "aconto" else dt.date(2025, 12, 10),
            reads_until=dt.date(2027, 1, 20),
            frequency=rng.choice(["monthly", "quarterly", "quarterly"]) if kind == "aconto" else "",
        )
    scenario.shared_account = len(scenario.connections) > 1 and rng.random() < 0.2
    if kind != "aconto" and rng.random() < 0.2:
        index = rng.randrange(len(scenario.connections))
        plan = scenario.connections[index]
        on = _day_inside(
            rng,
            scenario.period_start,
            _add_months(scenario.period_start, 12 if kind == "year" else scenario.months),
        )
        open_before = [t for t in plan.tenants if t.valid_to is None and t.valid_from < on]
        what = rng.choice(["move", "move", "out", "kw", "m2"] if open_before else ["kw", "m2"])
        # a change recorded that very day already is corrected, not changed again (the
        # services refuse a second one): the late change is then of the other kind
        that_day = {
            "kw": bool(plan.kw_change and plan.kw_change[0] == on),
            "m2": bool(plan.area_change and plan.area_change[0] == on),
        }
        if that_day.get(what):
            what = next((w for w in ("kw", "m2") if not that_day[w]), None)
        if what is not None:
            scenario.late = LateChange(what, index, on)
    scenario.credit_by_hand = rng.random() < 0.15
    if kind == "aconto":
        scenario.final_settlement = rng.random() < 0.5
    else:
        billed_end = _add_months(scenario.period_start, 12 if kind == "year" else scenario.months)
        if rng.random() < 0.12:
            day = _day_inside(rng, scenario.period_start, billed_end)
            (alt,) = _versions(rng, change=None, blocks=False)
            alt.valid_from = dt.date(2020, 1, 1)
            scenario.assignment = (rng.randrange(len(scenario.connections)), day, alt)
        if rng.random() < 0.15:
            opened = versions[-1].valid_from
            first = max(opened, scenario.period_start)
            if (billed_end - first).days > 1:
                (fix,) = _versions(rng, change=None, blocks=False)
                fix.valid_from = _day_inside(rng, first, billed_end)
                scenario.tariff_correction = fix
    if rng.random() < 0.45:
        index = rng.randrange(len(scenario.connections))
        plan = scenario.connections[index]
        moves = {t.valid_to for t in plan.tenants if t.valid_to}
        if kind == "period":
            changes = {v.valid_from for v in versions if v.valid_from.day == 1}
            candidates = (
                {scenario.period_start, scenario.period_end}
                | moves
                | (changes & {_add_months(scenario.period_start, m) for m in (1, 2)})
            )
        elif kind == "year":
            candidates = {_add_months(YEAR, rng.randint(1, 12))}
        else:
            candidates = {_add_months(YEAR, 12)} | moves
        on = rng.choice(sorted(candidates))
        scenario.correction = Correction(index, on, Fraction(rng.randint(70, 130), 100))
    return scenario


# --------------------------------------------------------------------------- the truth
@dataclass
class Point:
    at: dt.datetime
    energy: int  # kWh, continuous since the first installation
    volume: Decimal  # m³
    return_m3c: Decimal
    flow_m3c: Decimal


@dataclass
class Truth:
    """The connection's continuous registers at every read and exchange instant, and
    what metering can know of them (reads after ``cutoff`` have not arrived yet)."""

    points: list[Point]
    exact: set[dt.datetime] = field(default_factory=set)  # instants with a usable read
    cutoff: dt.datetime | None = None

    @staticmethod
    def _between(points: list[Point], when: dt.datetime) -> tuple[Fraction, Fraction]:
        for p in points:
            if p.at == when:
                return Fraction(p.energy), Fraction(p.volume)
        after = next(i for i, p in enumerate(points) if p.at > when)
        a, b = points[after - 1], points[after]
        share = Fraction(int((when - a.at).total_seconds()), int((b.at - a.at).total_seconds()))
        return (
            a.energy + (b.energy - a.energy) * share,
            Fraction(a.volume) + (Fraction(b.volume) - Fraction(a.volume)) * share,
        )

    def at(self, when: dt.datetime) -> tuple[Fraction, Fraction]:
        """(kWh, m³) at ``when``: linear in time between the surrounding points."""
        return self._between(self.points, when)

    def on(self, day: dt.date) -> tuple[Fraction, Fraction]:
        """(kWh, m³) at the local midnight of ``day`` as metering can know it: between
        the reads around it, or after the last read that arrived, that read plus the
        consumption of the same dates a year earlier (docs/billing.md, estimation)."""
        when = _local_midnight(day)
        known = [p for p in self.points if self.cutoff is None or p.at <= self.cutoff]
        if when <= known[-1].at:
            return self._between(known, when)
        last = known[-1]
        e_from, v_from = self._between(known, last.at.replace(year=last.at.year - 1))
        e_to, v_to = self._between(known, _local_midnight(_year_earlier(day)))
        return (
            last.energy + max(e_to - e_from, Fraction(0)),
            Fraction(last.volume) + max(v_to - v_from, Fraction(0)),
        )


@dataclass
class MeterLife:
    meter: object
    installed_at: dt.datetime
    removed_at: dt.datetime | None
    initial_energy: int
    initial_volume: Decimal
    wrap: int  # energy register maximum + resolution (1 kWh)
    vwrap: Decimal  # volume register maximum + resolution (0.01 m³)
    base: Point  # continuous registers at installation


@dataclass
class Built:
    plan: ConnectionPlan
    connection: object
    unit: object
    truth: Truth
    lives: list[MeterLife]
    accounts: list[object]
    late_rows: list[tuple] = field(default_factory=list)


@dataclass
class World:
    scenario: Scenario
    network: object
    connections: list[Built]
    violations: list[tuple[str, str, str | None]] = field(default_factory=list)
    checked: set[int] = field(default_factory=set)
    corrected: bool = False  # a corrected reading was applied: recompute every live bill

    def fail(self, invariant: str, message: str, known: str | None = None) -> None:
        self.violations.append((invariant, message, known))

    def index_of(self, connection_id: int) -> int:
        return next(i for i, b in enumerate(self.connections) if b.connection.pk == connection_id)


def _meter_value(life: MeterLife, point: Point) -> tuple[int, Decimal, Decimal, Decimal]:
    """What the meter of ``life`` shows at ``point``."""
    energy = (life.initial_energy + point.energy - life.base.energy) % life.wrap
    volume = (life.initial_volume + point.volume - life.base.volume) % life.vwrap
    return (
        energy,
        volume,
        point.return_m3c - life.base.return_m3c,
        point.flow_m3c - life.base.flow_m3c,
    )


def _read_instants(rng: random.Random, s: Scenario, plan: ConnectionPlan) -> list[dt.datetime]:
    instants = {_local_midnight(day) for day in plan.exact_reads}
    day = s.reads_from
    while day <= s.reads_until:
        local = dt.datetime.combine(
            day, dt.time(rng.randint(1, 23), rng.randint(0, 59)), tzinfo=CPH
        )
        instants.add(local.astimezone(dt.UTC))
        day += dt.timedelta(days=plan.read_every_days)
    last = dt.datetime.combine(s.reads_until, dt.time(rng.randint(1, 23)), tzinfo=CPH)
    instants.add(last.astimezone(dt.UTC))  # a read after every boundary
    hour = dt.timedelta(hours=1)
    for removed, installed in plan.swaps:
        # no read without a meter, none within an hour of a swap except the final read
        instants = {t for t in instants if not removed - hour <= t <= installed + hour}
        if plan.final_read_at_exchange:
            instants.add(removed)
    return sorted(instants)


def _truth(
    rng: random.Random, plan: ConnectionPlan, instants: list[dt.datetime], start: dt.datetime
) -> list[Point]:
    """Continuous registers from ``start`` through ``instants`` and the swaps; flat
    while no meter is installed (metering counts nothing then)."""
    swaps = {a for a, _b in plan.swaps} | {b for _a, b in plan.swaps}
    unmetered = {b for a, b in plan.swaps if b > a}
    moments = sorted({start, *instants} | swaps)
    points = [Point(moments[0], 0, Decimal("0"), Decimal("0"), Decimal("0"))]
    hourly = Fraction(plan.daily_kwh, 24)
    for at in moments[1:]:
        last = points[-1]
        hours = Fraction(int((at - last.at).total_seconds()), 3600)
        kwh = 0 if at in unmetered else int(hourly * hours * Fraction(rng.randint(60, 140), 100))
        delta_t = plan.delta_t + rng.randint(-3, 3)
        m3 = (Decimal(kwh) / (Decimal("1.163") * delta_t)).quantize(CENT)
        ret = Decimal(plan.return_c + rng.randint(-2, 2))
        points.append(
            Point(
                at,
                last.energy + kwh,
                last.volume + m3,
                last.return_m3c + m3 * ret,
                last.flow_m3c + m3 * (ret + delta_t),
            )
        )
    return points


def _register_size(used: Fraction | int | Decimal, smallest: int) -> int:
    """A register (10^k units) that ``used`` fills to at most a fifth."""
    size = smallest
    while size < 5 * used:
        size *= 10
    return size


def _wrap_initial(rng: random.Random, values: list, size, *, at_end: bool = False) -> object:
    """An initial register that makes the register roll over between two reads in the
    middle of the meter's life (VEE's band: from the top tenth into the bottom tenth).
    ``values``: the continuous register at installation, then at each read."""
    reads = values[1:]
    k = max(1, len(reads) // 2)
    if at_end:  # between the last read and the final register taken at the exchange
        k = len(reads) - 1
    while k < len(reads) - 1 and reads[k] == reads[k - 1]:
        k += 1
    step = Fraction(reads[k] - reads[k - 1])
    after = Fraction(rng.randint(0, 99), 100) * min(step, Fraction(size) / 20)
    after = int(after) if isinstance(size, int) else Decimal(int(after * 100)) / 100
    return size + after - (reads[k] - values[0])


def _build_connection(world: World, index: int, plan: ConnectionPlan) -> Built:
    s, network = world.scenario, world.network
    rng = random.Random(f"{s.seed}/{index}/reads")
    building = BuildingFactory(heated_area_m2=plan.area_m2)
    connection = ServiceConnectionFactory(
        network=network, building=building, contracted_capacity_kw=plan.kw
    )
    unit = BuildingInterfaceUnitFactory(connection=connection)
    accounts = []
    for n, tenant in enumerate(plan.tenants):
        if s.shared_account and index == 1 and n == 0:
            account = world.connections[0].accounts[0]  # one account, two premises
        elif plan.renewal and n == 1:
            account = accounts[0]  # the same customer's contract renewed
        else:
            account = AccountFactory(network=network)
        ContractFactory(
            account=account,
            connection=connection,
            valid_from=tenant.valid_from,
            valid_to=tenant.valid_to,
        )
        accounts.append(account)
    if plan.kw_change:
        connection_capacity_change(
            connection=connection, capacity_kw=plan.kw_change[1], valid_from=plan.kw_change[0]
        )
    if plan.area_change:
        building_area_change(
            building=building, heated_area_m2=plan.area_change[1], valid_from=plan.area_change[0]
        )
    instants = _read_instants(rng, s, plan)
    installed_at = instants[0] - dt.timedelta(hours=rng.randint(2, 30))
    points = _truth(rng, plan, instants, installed_at)
    by_time = {p.at: p for p in points}
    read_set = set(instants)
    lives: list[MeterLife] = []
    starts = [installed_at] + [b for _a, b in plan.swaps]
    ends = [a for a, _b in plan.swaps] + [None]
    for n, (since, until) in enumerate(zip(starts, ends, strict=True)):
        own = [
            p
            for p in points
            if p.at == since
            or (p.at in read_set and p.at > since and (until is None or p.at <= until))
        ]
        if until is not None:
            own.append(by_time[until])
        size = _register_size(own[-1].energy - own[0].energy, 100_000)
        vsize = Decimal(_register_size(own[-1].volume - own[0].volume, 10_000))
        rolls = plan.rolls if plan.rollover == n and len(own) > 3 else ()
        # an old meter may roll over after its last read, before its final register
        at_end = until is not None and rng.random() < 0.4
        if "energy" in rolls:
            initial = _wrap_initial(rng, [p.energy for p in own], size, at_end=at_end)
        else:
            initial = rng.randint(0, size // 20) if n else rng.randint(0, size // 4)
        if "volume" in rolls:
            initial_volume = _wrap_initial(rng, [p.volume for p in own], vsize, at_end=at_end)
        else:
            initial_volume = Decimal(rng.randint(0, 500))
        lives.append(
            MeterLife(
                meter=HeatMeterFactory(
                    register_max=Decimal(size - 1),
                    volume_register_max=vsize - CENT,
                    volume_resolution=CENT,
                ),
                installed_at=since,
                removed_at=until,
                initial_energy=initial,
                initial_volume=initial_volume,
                wrap=size,
                vwrap=vsize,
                base=by_time[since],
            )
        )
    first = lives[0]
    meter_install(
        meter=first.meter,
        unit=unit,
        installed_at=first.installed_at,
        initial_energy_kwh=Decimal(first.initial_energy),
        initial_volume_m3=first.initial_volume,
    )
    for n, life in enumerate(lives):
        if n:
            old = lives[n - 1]
            final = _meter_value(old, by_time[old.removed_at])
            if old.removed_at == life.installed_at:
                meter_exchange(
                    unit=unit,
                    new_meter=life.meter,
                    exchanged_at=life.installed_at,
                    old_final_energy_kwh=Decimal(final[0]),
                    old_final_volume_m3=final[1],
                    new_initial_energy_kwh=Decimal(life.initial_energy),
                    new_initial_volume_m3=life.initial_volume,
                )
            else:
                meter_remove(
                    installation=MeterInstallation.objects.get(meter=old.meter, unit=unit),
                    removed_at=old.removed_at,
                    final_energy_kwh=Decimal(final[0]),
                    final_volume_m3=final[1],
                )
                meter_install(
                    meter=life.meter,
                    unit=unit,
                    installed_at=life.installed_at,
                    initial_energy_kwh=Decimal(life.initial_energy),
                    initial_volume_m3=life.initial_volume,
                )
        rows = []
        for p in points:
            if p.at not in read_set or p.at < life.installed_at:
                continue
            if life.removed_at is not None and p.at > life.removed_at:
                continue
            if n and p.at == life.installed_at:
                continue  # the read at an exchange is the old meter's final read
            energy, volume, ret, flow = _meter_value(life, p)
            rows.append(
                (p.at, str(energy), str(volume), {"return_temp_m3c": ret, "flow_temp_m3c": flow})
            )
        late = [row for row in rows if plan.late_reads_after and row[0] > plan.late_reads_after]
        rows = rows[: len(rows) - len(late)]
        if rows:
            add_readings(life.meter, rows)
            # readings arrive and VEE checks them before the next meter is recorded
            vee_run_meter(meter_id=life.meter.pk, start=rows[0][0], end=rows[-1][0], now=NOW)
    known = {t for t in read_set if plan.late_reads_after is None or t <= plan.late_reads_after}
    truth = Truth(points, known, plan.late_reads_after)
    return Built(plan, connection, unit, truth, lives, accounts, late)


def _tariff(network, versions: list[VersionPlan]) -> None:
    tariff = Tariff.objects.create(network=network, code="std", name="Standard", is_default=True)
    for number, v in enumerate(versions, start=1):
        TariffVersion.objects.create(  # test arrangement, as tests/billing/factories.py
            tariff=tariff,
            number=number,
            valid_from=v.valid_from,
            valid_to=v.valid_to,
            status=TariffVersion.Status.APPROVED,
            approved_at=timezone.now(),
            vat_rate=v.vat_rate,
            prices_include_vat=v.prices_include_vat,
            components=v.components,
        )


def _manager():
    from django.contrib.auth.models import Group, User

    from heatutility.roles import TARIFF_MANAGER

    user, created = User.objects.get_or_create(
        username="audit-tariffs", defaults={"is_staff": True}
    )
    if created:
        user.groups.add(Group.objects.get(name=TARIFF_MANAGER))
    return user


def _approve(tariff, v: VersionPlan, *, now: dt.datetime) -> TariffVersion:
    """A version drafted and approved through the tariffs services (no price cap here)."""
    draft = tariff_version_create(
        tariff=tariff,
        valid_from=v.valid_from,
        valid_to=v.valid_to,
        components=v.components,
        prices_include_vat=v.prices_include_vat,
        vat_rate=v.vat_rate,
    )
    return tariff_version_approve(version=draft, user=_manager(), now=now)


def build(s: Scenario) -> World:
    world = World(s, NetworkFactory(), [])
    _tariff(world.network, s.versions)
    for index, plan in enumerate(s.connections):
        world.connections.append(_build_connection(world, index, plan))
    if s.assignment:
        index, day, version = s.assignment
        alt = Tariff.objects.create(network=world.network, code="alt", name="Alternative")
        _approve(alt, version, now=NOW)
        tariff_assign(
            tariff=alt, connection_ids=[world.connections[index].connection.pk], valid_from=day
        )
    not_valid = list(
        Reading.objects.filter(meter__installations__unit__connection__network=world.network)
        .exclude(status="valid")
        .values_list("meter_id", "read_at", "status")
        .distinct()
    )
    if not_valid:
        world.fail("generator", f"VEE did not accept every generated read: {not_valid[:5]}")
    return world


# --------------------------------------------------------------------------- running
def run_period(
    world: World, *, start: dt.date, months: int, kind: str = "invoice", now: dt.datetime = NOW
):
    run = billing_run_create(
        network=world.network,
        period_start=start,
        months=months,
        kind=kind,
        now=now,
        chunk_size=2,
        render_pdfs=False,
    )
    tasks.billing_run_start.delay(run.pk)
    run.refresh_from_db()
    for failure in run.exceptions.all():
        world.fail(
            "billed",
            f"{kind} run {start}+{months}m: account {failure.account_id} not billed: "
            f"{failure.code} {failure.error}",
        )
    for held in Invoice.objects.filter(run=run, held=True, state=Invoice.State.DRAFT):
        invoice_release(invoice=held, note="randomised audit")  # plausibility is not audited
    billing_run_issue(run=run, issued_at=now)
    return run


def _contract_intervals(invoice: Invoice) -> dict[int, list[tuple[dt.date, dt.date]]]:
    out: dict[int, list[tuple[dt.date, dt.date]]] = defaultdict(list)
    for c in Contract.objects.filter(account_id=invoice.account_id):
        start = max(c.valid_from, invoice.period_start)
        end = min(c.valid_to or invoice.period_end, invoice.period_end)
        if start < end:
            out[c.connection_id].append((start, end))
    return out


def _billed_kind(invoice: Invoice) -> str:
    while invoice.kind == Invoice.Kind.CORRECTION:
        invoice = invoice.original
    return invoice.kind


def _name(invoice: Invoice) -> str:
    return f"{invoice.kind} #{invoice.pk} {invoice.period_start}..{invoice.period_end}"


def _dec(value: Fraction) -> str:
    return f"{Decimal(value.numerator) / Decimal(value.denominator):.9f}"


# --------------------------------------------------------------------------- invariants
def check_totals(world: World, invoice: Invoice) -> None:
    """Invariant 1 (a settlement's VAT is checked in :func:`check_settlement`)."""
    name = _name(invoice)
    lines = list(invoice.lines.order_by("position"))
    net = sum((line.amount for line in lines), Decimal(0))
    if net != invoice.net:
        world.fail("1 net", f"{name}: Σ lines {net} ≠ net {invoice.net}")
    if invoice.gross != invoice.net + invoice.vat:
        world.fail("1 gross", f"{name}: gross {invoice.gross} ≠ {invoice.net} + {invoice.vat}")
    if (
        invoice.kind != Invoice.Kind.CREDIT_NOTE
        and _billed_kind(invoice) != Invoice.Kind.SETTLEMENT
    ):
        by_rate: dict[Decimal, Decimal] = defaultdict(Decimal)
        for line in lines:
            by_rate[line.vat_rate] += line.amount
        vat = sum((_half_up(base * r) for r, base in by_rate.items()), Decimal(0))
        if vat != invoice.vat:
            world.fail("1 vat", f"{name}: VAT {invoice.vat} ≠ Σ per rate {vat} ({dict(by_rate)})")
    stored = sum((Decimal(row["vat"]) for row in invoice.determinants.get("vat", [])), Decimal(0))
    if stored != invoice.vat:
        world.fail("1 vat record", f"{name}: VAT breakdown {stored} ≠ VAT {invoice.vat}")
    for line in lines:
        exact = Fraction(line.quantity) * Fraction(line.unit_price)
        if line.kind in ANNUAL_KINDS:
            exact *= _year_fraction(line.period_start, line.period_end)
        expected = _half_up(exact)
        if line.amount != expected:
            world.fail(
                "1 line",
                f"{name}: line {line.component} {line.period_start}..{line.period_end} "
                f"{line.quantity} × {line.unit_price} = {line.amount}, expected {expected}",
            )


def _energy_check(
    world: World,
    name: str,
    what: str,
    segments: list[dict],
    exact_kwh: Fraction,
    *,
    roundings: int = 1,
) -> None:
    """Σ MWh billed over ``segments`` against the exact register difference: at most
    ``roundings`` roundings to 6 decimals, and the bounds' storage rounding.  The slices
    of a contract interval add up to its register difference rounded once
    (docs/billing.md: rounded cumulatively from the interval's start, whether a register
    at a tariff change measures the slices or they share the energy by days); a stretch
    inside it is the difference of two such rounded running totals."""
    billed = sum((Fraction(Decimal(s["energy_mwh"])) for s in segments), Fraction(0))
    off = abs(billed - exact_kwh / 1000)
    if off <= roundings * ENERGY_TOLERANCE:
        return
    world.fail(
        "3 energy",
        f"{name}: {what}: billed {[s['energy_mwh'] for s in segments]} = {_dec(billed)} MWh, "
        f"register difference {_dec(exact_kwh / 1000)} MWh",
    )


def check_consumption(world: World, invoice: Invoice) -> None:
    """Invariants 3 and 4 on one consumption bill, correction or settlement."""
    name = _name(invoice)
    built = {b.connection.pk: b for b in world.connections}
    segments = invoice.determinants.get("segments", [])
    recorded = {(r["connection_id"], r["on"]) for r in invoice.readings}
    intervals = _contract_intervals(invoice)
    for cid, spans in intervals.items():
        truth = built[cid].truth
        where = f"connection {cid} (#{world.index_of(cid)})"
        for start, end in spans:
            mine = sorted(
                (
                    s
                    for s in segments
                    if s["connection_id"] == cid
                    and start.isoformat() <= s["period_start"] < end.isoformat()
                ),
                key=lambda s: s["period_start"],
            )
            days = sum(s["days"] for s in mine)
            if days != (end - start).days:
                world.fail("4 days", f"{name}: {where} {start}..{end}: days {days}")
            edges = [start.isoformat()] + [s["period_end"] for s in mine]
            if [s["period_start"] for s in mine] != edges[:-1] or edges[-1] != end.isoformat():
                world.fail(
                    "4 tiles",
                    f"{name}: {where} segments {[(s['period_start'], s['period_end']) for s in mine]}",
                )
                continue
            (e0, v0), (e1, v1) = truth.on(start), truth.on(end)
            cuts = [s for s in mine[1:] if (cid, s["period_start"]) in recorded]
            _energy_check(world, name, f"{where} {start}..{end}", mine, e1 - e0)
            volume = sum((Fraction(Decimal(s["volume_m3"])) for s in mine), Fraction(0))
            if abs(volume - (v1 - v0)) > VOLUME_TOLERANCE:
                world.fail(
                    "3 volume",
                    f"{name}: {where} {start}..{end}: billed {_dec(volume)} m³, "
                    f"register difference {_dec(v1 - v0)} m³",
                )
            # stretches between the registers used inside the interval: measured
            bounds = [start] + [dt.date.fromisoformat(s["period_start"]) for s in cuts] + [end]
            for a, b in itertools.pairwise(bounds):
                stretch = [s for s in mine if a.isoformat() <= s["period_start"] < b.isoformat()]
                exact = truth.on(b)[0] - truth.on(a)[0]
                if len(cuts):
                    _energy_check(
                        world,
                        name,
                        f"{where} measured {a}..{b}",
                        stretch,
                        exact,
                        roundings=1 if a == start else 2,
                    )
            # a change without a register: the registers around it (the interval's
            # bounds, the month starts and changes with one) share what they measured
            # by days (docs/billing.md); each slice is a rounded running total less
            # another, both within half a millionth of the exact one
            points = sorted(
                {start, end}
                | {
                    day
                    for c, on in recorded
                    if c == cid and start < (day := dt.date.fromisoformat(on)) < end
                }
            )

            def running(day, points=points, truth=truth, start=start):
                a = max(p for p in points if p <= day)
                b = min(p for p in points if p >= day)
                e_a, e_b = truth.on(a)[0], truth.on(b)[0]
                at = e_a if a == b else e_a + (e_b - e_a) * Fraction((day - a).days, (b - a).days)
                return (at - truth.on(start)[0]) / 1000

            for seg in mine if len(mine) > 1 else ():
                s0 = dt.date.fromisoformat(seg["period_start"])
                s1 = dt.date.fromisoformat(seg["period_end"])
                share = running(s1) - running(s0)
                off = abs(Fraction(Decimal(seg["energy_mwh"])) - share)
                if off > 2 * ENERGY_TOLERANCE:
                    world.fail(
                        "3 split by days",
                        f"{name}: {where} slice {seg['period_start']}..{seg['period_end']} "
                        f"{seg['energy_mwh']} MWh, the registers around it give {_dec(share)}",
                    )
    estimated = any(r["status"] == "estimated" for r in invoice.readings)
    if invoice.has_estimated_reads != estimated:
        world.fail("3 status", f"{name}: has_estimated_reads {invoice.has_estimated_reads}")
    # every register used: the continuous value since the first meter, and its status
    for reading in invoice.readings:
        b = built.get(reading["connection_id"])
        if b is None:
            continue
        day = dt.date.fromisoformat(reading["on"])
        energy, volume = b.truth.on(day)
        if abs(Fraction(Decimal(reading["energy_kwh"])) - energy) > Fraction(1, 10**6):
            world.fail(
                "3 register",
                f"{name}: connection {b.connection.pk} on {day}: stored "
                f"{reading['energy_kwh']} kWh, continuous register {_dec(energy)}",
            )
        if abs(Fraction(Decimal(reading["volume_m3"])) - volume) > Fraction(1, 10**4):
            world.fail(
                "3 register",
                f"{name}: connection {b.connection.pk} on {day}: stored "
                f"{reading['volume_m3']} m³, continuous register {_dec(volume)}",
            )
        actual = _local_midnight(day) in b.truth.exact
        if (reading["status"] == "actual") != actual:
            world.fail(
                "3 status",
                f"{name}: connection {b.connection.pk} on {day}: {reading['status']} "
                f"({reading['method']}), {'read' if actual else 'not read'} at local midnight",
            )
    # annual charges: in each segment, each component's pieces tile the segment's days
    lines = list(invoice.lines.all())
    for seg in segments:
        start = dt.date.fromisoformat(seg["period_start"])
        end = dt.date.fromisoformat(seg["period_end"])
        pieces: dict[str, set] = defaultdict(set)
        for line in lines:
            if (
                line.connection_id == seg["connection_id"]
                and line.tariff_version_id == seg["tariff_version_id"]
                and line.kind in ANNUAL_KINDS
                and start <= line.period_start < end
            ):
                pieces[line.component].add((line.period_start, line.period_end))
        for component, spans in pieces.items():
            ordered = sorted(spans)
            edges = [start] + [b for _a, b in ordered]
            if [a for a, _b in ordered] != edges[:-1] or edges[-1] != end:
                world.fail(
                    "4 prorated",
                    f"{name}: {component} on connection {seg['connection_id']} in "
                    f"{start}..{end} is billed for {ordered}",
                )


def _signature(lines) -> list[tuple]:
    return sorted(
        (
            line.connection_id or 0,
            line.component,
            str(line.period_start),
            str(line.period_end),
            Decimal(line.quantity).normalize(),
            Decimal(line.unit_price).normalize(),
            Decimal(line.amount),
            Decimal(line.vat_rate).normalize(),
        )
        for line in lines
    )


def check_recompute(world: World, invoice: Invoice) -> None:
    """Invariant 2: the recomputation service gives the same figures."""
    name = _name(invoice)
    try:
        draft = invoice_recompute(invoice=invoice)
    except Exception as exc:  # any refusal is a finding
        world.fail("2 recompute", f"{name}: not recomputable: {type(exc).__name__}: {exc}")
        return
    if _signature(draft.lines) != _signature(invoice.lines.all()):
        world.fail(
            "2 recompute",
            f"{name}: recomputed lines differ:\n    stored     {_signature(invoice.lines.all())}"
            f"\n    recomputed {_signature(draft.lines)}",
        )
    if (draft.net, draft.vat, draft.gross) != (invoice.net, invoice.vat, invoice.gross):
        world.fail(
            "2 recompute",
            f"{name}: recomputed {draft.net}/{draft.vat}/{draft.gross}, stored "
            f"{invoice.net}/{invoice.vat}/{invoice.gross}",
        )


def _pieces(seg: dict, key: str, end: dt.date) -> list[tuple[dt.date, dt.date, Decimal]]:
    starts = seg.get(key)
    if not starts:
        return []
    days = [dt.date.fromisoformat(a) for a, _v in starts] + [end]
    return [(a, b, Decimal(v)) for (_a, v), a, b in zip(starts, days, days[1:], strict=False)]


def _register_or_between(
    registers: dict, cid: int, day: dt.date, lo: dt.date, hi: dt.date
) -> Decimal | None:
    """The recorded register of ``day``, or for a tariff change with none (docs/billing.md)
    the value by days between the recorded registers nearest around it within the
    contract interval ``[lo, hi]``, to 6 decimals (kWh).  None where those are the
    interval's own bounds (no month-start register between): billing then shares the
    interval by days (``billing.calc._month_split_registers``)."""
    value = registers.get((cid, day.isoformat()))
    if value is not None:
        return value
    days = [d for c, on in registers if c == cid and lo <= (d := dt.date.fromisoformat(on)) <= hi]
    before, after = [d for d in days if d < day], [d for d in days if d > day]
    if not before or not after:
        return None
    a, b = max(before), min(after)
    if (a, b) == (lo, hi):
        return None
    va, vb = registers[(cid, a.isoformat())], registers[(cid, b.isoformat())]
    return (va + (vb - va) * (day - a).days / (b - a).days).quantize(E6, ROUND_HALF_UP)


def _rate_recorded(seg: dict, spec, *, by_month, annual) -> list:
    """Rate one recorded segment as billing does (docs/billing.md, Determinants): a kW
    or m² change inside it reprices the charges on that basis piece by piece."""
    start = dt.date.fromisoformat(seg["period_start"])
    end = dt.date.fromisoformat(seg["period_end"])

    def det(a, b, **changes):
        values = {
            "period_start": a,
            "period_end": b,
            "energy_mwh": Decimal(seg["energy_mwh"]),
            "volume_m3": Decimal(seg["volume_m3"]),
            "return_temp_c": None
            if seg["return_temp_c"] is None
            else Decimal(seg["return_temp_c"]),
            "flow_temp_c": None if seg["flow_temp_c"] is None else Decimal(seg["flow_temp_c"]),
            "contracted_kw": Decimal(seg["contracted_kw"]),
            "heated_area_m2": Decimal(seg["heated_area_m2"]),
            "annual_energy_mwh": annual,
            "energy_by_month": by_month,
        }
        return Determinants(**(values | changes))

    whole = rate(determinants=det(start, end), tariff=spec)
    replaced: dict[str, list] = {}
    for codes, key, name in (
        (spec.capacity_codes, "contracted_kw_from", "contracted_kw"),
        (spec.area_codes, "heated_area_m2_from", "heated_area_m2"),
    ):
        for a, b, value in _pieces(seg, key, end):
            for line in rate(determinants=det(a, b, **{name: value}), tariff=spec):
                if line.component in codes:
                    replaced.setdefault(line.component, []).append(line)
    return [line for line in whole if line.component not in replaced] + [
        line for lines in replaced.values() for line in lines
    ]


def check_recorded(world: World, invoice: Invoice) -> None:
    """Invariant 2: the lines follow from the invoice's own record (its segments'
    determinants and tariff versions; month-start registers from its readings; for block
    prices the trailing year's MWh, which is its readings' difference from a year before
    the interval's end to the end)."""
    name = _name(invoice)
    registers = {(r["connection_id"], r["on"]): Decimal(r["energy_kwh"]) for r in invoice.readings}
    stored = sorted(
        (
            line.connection_id,
            line.component,
            line.quantity.normalize(),
            line.unit_price.normalize(),
            line.amount,
        )
        for line in invoice.lines.exclude(component="on_account")
    )
    intervals = _contract_intervals(invoice)

    def rated() -> list:
        out = []
        for seg in invoice.determinants.get("segments", []):
            spec = tariff_spec_for_version(TariffVersion.objects.get(pk=seg["tariff_version_id"]))
            start = dt.date.fromisoformat(seg["period_start"])
            end = dt.date.fromisoformat(seg["period_end"])
            cid = seg["connection_id"]
            by_month = None
            if spec.prices_by_season:
                bounds = [start]
                day = _add_months(start.replace(day=1), 1)
                while day < end:
                    bounds.append(day)
                    day = _add_months(day, 1)
                bounds.append(end)
                i_start, i_end = next((a, b) for a, b in intervals[cid] if a <= start < b)
                # a tariff change at a bound may be valued by days between registers; a
                # month start inside is measured or missing: then the segment is shared
                # by days (billing.calc._energy_by_month), not interpolated month by month
                values = [
                    _register_or_between(registers, cid, d, i_start, i_end)
                    if d in (start, end)
                    else registers.get((cid, d.isoformat()))
                    for d in bounds
                ]
                if len(bounds) > 2 and None not in values:
                    by_month = tuple(
                        (d, ((b - a) / 1000).quantize(E6, rounding=ROUND_HALF_UP))
                        for d, a, b in zip(bounds, values, values[1:], strict=False)
                    )
            annual = None
            if any(getattr(c, "blocks", None) for c in spec.components):
                i_end = next(b for a, b in intervals[cid] if a <= start < b)
                since = _year_earlier(i_end).isoformat()
                trailing = registers.get((cid, since))
                last = registers.get((cid, i_end.isoformat()))
                expected = None
                if trailing is not None and last is not None:
                    expected = ((last - trailing) / 1000).quantize(E6, ROUND_HALF_UP)
                recorded = (seg.get("annual_from"), seg.get("annual_energy_mwh", "absent"))
                if recorded != (since, None if expected is None else str(expected)):
                    world.fail(
                        "2 recorded",
                        f"{name}: block-priced segment {seg['period_start']}..{seg['period_end']} "
                        f"records its trailing year as {recorded}; readings give "
                        f"{since}: {expected} MWh",
                    )
                annual = None if recorded[1] in (None, "absent") else Decimal(recorded[1])
            for line in _rate_recorded(seg, spec, by_month=by_month, annual=annual):
                out.append(
                    (
                        cid,
                        line.component,
                        line.quantity.normalize(),
                        line.unit_price.normalize(),
                        line.amount,
                    )
                )
        return sorted(out)

    expected = rated()
    if expected == stored:
        return
    world.fail(
        "2 recorded",
        f"{name}: lines rated from its recorded determinants differ:\n"
        f"    stored {stored}\n    rated  {expected}",
    )


def _year_earlier(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


def check_live(world: World) -> None:
    """Invariant 5: one live (issued, not credited) bill per account, period and kind,
    and no connection's day on two live bills of a kind (whoever's account)."""
    seen: dict[tuple, list[int]] = defaultdict(list)
    days: dict[tuple, list[tuple]] = defaultdict(list)
    for invoice in current_invoices().filter(network=world.network):
        kind = _billed_kind(invoice)
        key = (invoice.account_id, invoice.period_start, invoice.period_end, kind)
        seen[key].append(invoice.pk)
        for seg in invoice.determinants.get("segments", []):
            days[(seg["connection_id"], kind)].append(
                (seg["period_start"], seg["period_end"], invoice.pk)
            )
    for key, ids in seen.items():
        if len(ids) != 1:
            world.fail("5 billed once", f"account {key[0]} {key[1]}..{key[2]} {key[3]}: live {ids}")
    for (cid, kind), spans in days.items():
        spans.sort()
        for (_a0, b0, i0), (a1, _b1, i1) in itertools.pairwise(spans):
            if a1 < b0:
                world.fail(
                    "5 billed once",
                    f"connection {cid} ({kind}): days from {a1} to {b0} on #{i0} and #{i1}",
                )


def check_documents(world: World) -> None:
    """Invariants 1–4 on every document issued since the last check (a credited bill's
    figures stood for the data of its day), recomputation on every live bill."""
    live = set(current_invoices().filter(network=world.network).values_list("pk", flat=True))
    for invoice in Invoice.objects.filter(network=world.network, number__isnull=False).order_by(
        "pk"
    ):
        new = invoice.pk not in world.checked
        world.checked.add(invoice.pk)
        if new:
            check_totals(world, invoice)
        if invoice.kind not in (
            Invoice.Kind.INVOICE,
            Invoice.Kind.CORRECTION,
            Invoice.Kind.SETTLEMENT,
        ):
            continue
        if new:
            check_consumption(world, invoice)
            check_recorded(world, invoice)
        if invoice.pk in live and (new or world.corrected):
            check_recompute(world, invoice)
    check_live(world)


def check_year_of_fees(world: World) -> None:
    """Invariant 4: a yearly fee billed month by month adds up to the fee, each month's
    line rounded once (docs/tariffs.md): within half a cent per line."""
    if world.scenario.assignment:
        return  # the fee of another tariff for part of the year: the lines are checked one by one
    for built in world.connections:
        lines = list(
            InvoiceLine.objects.filter(
                invoice__network=world.network,
                invoice__kind=Invoice.Kind.INVOICE,
                connection=built.connection,
                kind__in=("fixed", "meter_rent"),
            )
        )
        if not lines:
            continue
        total = sum((line.amount for line in lines), Decimal(0))
        exact = Fraction(0)
        for v in world.scenario.versions:
            fixed = [c for c in v.components if c["type"] == "fixed"]
            start, end = (
                max(v.valid_from, YEAR),
                min(v.valid_to or _add_months(YEAR, 12), _add_months(YEAR, 12)),
            )
            if not fixed or start >= end:
                continue
            amount = Fraction(Decimal(fixed[0]["amount"]))
            if v.prices_include_vat:  # net per unit price, 6 decimals (docs/tariffs.md)
                amount = Fraction(_half_up(amount / (1 + Fraction(v.vat_rate)), 6))
            if fixed[0]["per"] == "month":
                amount *= 12
            exact += amount * _year_fraction(start, end)
        if abs(Fraction(total) - exact) > Fraction(len(lines), 200):
            world.fail(
                "4 yearly fee",
                f"connection {built.connection.pk}: {len(lines)} monthly lines add up to "
                f"{total}, the year's fee is {_dec(exact)}",
            )


def check_settlement(world: World) -> None:
    """Invariant 6: the year's actual bill, the instalments credited per VAT rate, and
    over the year the customer pays the year's net and its VAT rounded once."""
    for settlement in current_invoices().filter(network=world.network, period_start=YEAR):
        if _billed_kind(settlement) != Invoice.Kind.SETTLEMENT:
            continue
        name = f"{settlement.kind} #{settlement.pk} account {settlement.account_id}"
        instalments = Invoice.objects.filter(
            account_id=settlement.account_id, kind=Invoice.Kind.INSTALMENT, number__isnull=False
        ).not_credited()
        paid_net: dict[Decimal, Decimal] = defaultdict(Decimal)
        paid_vat: dict[Decimal, Decimal] = defaultdict(Decimal)
        for inst in instalments:
            for row in inst.determinants["vat"]:
                paid_vat[Decimal(row["rate"])] += Decimal(row["vat"])
            for line in inst.lines.all():
                paid_net[line.vat_rate] += line.amount
        year_base: dict[Decimal, Decimal] = defaultdict(Decimal)
        for line in settlement.lines.exclude(component="on_account"):
            year_base[line.vat_rate] += line.amount
        credited = list(settlement.lines.filter(component="on_account"))
        by_rate = {line.vat_rate: -line.amount for line in credited}
        if len(by_rate) != len(credited) or by_rate != dict(paid_net):
            world.fail(
                "6 instalments credited",
                f"{name}: credited {by_rate}, instalments issued {dict(paid_net)}",
            )
        year_vat = {r: _half_up(base * r) for r, base in year_base.items()}
        expected_vat = sum(year_vat.values(), Decimal(0)) - sum(paid_vat.values(), Decimal(0))
        if settlement.vat != expected_vat:
            world.fail(
                "6 vat",
                f"{name}: VAT {settlement.vat}, year's {year_vat} less instalments' "
                f"{dict(paid_vat)} = {expected_vat}",
            )
        year_net = sum(year_base.values(), Decimal(0))
        year_gross = year_net + sum(year_vat.values(), Decimal(0))
        paid_gross = sum((i.gross for i in instalments), Decimal(0))
        if paid_gross + settlement.gross != year_gross:
            world.fail(
                "6 year",
                f"{name}: instalments {paid_gross} + settlement {settlement.gross} ≠ the "
                f"year's {year_gross}",
            )


def check_instalments(world: World) -> None:
    """Each instalment is quantize(annual net of a VAT rate / n) of the plan's estimate,
    rated at the tariff in force (docs/billing.md, on-account), where one version
    covers its period and the account holds its connections all of it."""
    for invoice in Invoice.objects.filter(network=world.network, kind=Invoice.Kind.INSTALMENT):
        plan = InstalmentPlan.objects.get(account_id=invoice.account_id, year_start=YEAR)
        n = 12 if plan.frequency == "monthly" else 4
        start, end = invoice.period_start, invoice.period_end
        held = [
            c
            for c in Contract.objects.filter(account_id=invoice.account_id)
            if c.valid_from < end and (c.valid_to is None or c.valid_to > start)
        ]
        if any(c.valid_from > start or (c.valid_to and c.valid_to < end) for c in held):
            continue  # prorated by the days supplied
        annual: dict[Decimal, Fraction] = defaultdict(Fraction)
        for contract in held:
            connection = contract.connection
            slices = tariff_slices_for_connections(
                connection_ids=[connection.pk], start=start, end=end
            )[connection.pk]
            kw = capacity_on(connection=connection, day=start)
            m2 = area_on(building=connection.building, day=start)
            if (
                len(slices) != 1
                or kw != capacity_on(connection=connection, day=end - dt.timedelta(days=1))
                or m2 != area_on(building=connection.building, day=end - dt.timedelta(days=1))
            ):
                break
            part = next(p for p in plan.connections if int(p["connection_id"]) == connection.pk)
            estimated = Decimal(part["estimated_mwh"])
            det = Determinants(
                period_start=plan.year_start,
                period_end=plan.year_end,
                energy_mwh=estimated,
                volume_m3=Decimal(part["estimated_m3"]),
                return_temp_c=None,
                flow_temp_c=None,
                contracted_kw=kw,
                heated_area_m2=m2,
                annual_energy_mwh=estimated,
            )
            for line in rate(determinants=det, tariff=slices[0][2]):
                annual[line.vat_rate] += Fraction(line.amount)
        else:
            expected = {r: _half_up(a / n) for r, a in annual.items()}
            billed = {line.vat_rate: line.amount for line in invoice.lines.all()}
            if billed != expected:
                world.fail(
                    "6 instalment",
                    f"{_name(invoice)} account {invoice.account_id}: billed {billed}, "
                    f"1/{n} of the annual estimate {expected}",
                )


def check_credit(world: World, credit: Invoice, original: Invoice) -> None:
    name = f"credit note #{credit.pk} of #{original.pk}"
    negated = sorted(
        (line.component, str(line.period_start), -line.quantity, line.unit_price, -line.amount)
        for line in original.lines.all()
    )
    mine = sorted(
        (line.component, str(line.period_start), line.quantity, line.unit_price, line.amount)
        for line in credit.lines.all()
    )
    if mine != negated:
        world.fail("5 credit", f"{name}: lines do not reverse the original")
    if (credit.net, credit.vat, credit.gross) != (-original.net, -original.vat, -original.gross):
        world.fail(
            "5 credit",
            f"{name}: {credit.net}/{credit.vat}/{credit.gross} vs original "
            f"{original.net}/{original.vat}/{original.gross}",
        )


def correct_reading(world: World) -> bool:
    """Apply the scenario's corrected reading: a late actual read at a boundary that was
    interpolated (stored, then VEE), or staff's edit of the read at a boundary that was
    read (``reading_edit``).  False when the boundary lies next to a meter exchange."""
    from django.contrib.auth.models import User

    from metering.vee.services import reading_edit

    c = world.scenario.correction
    built = world.connections[c.connection]
    plan = built.plan
    at = _local_midnight(c.on)
    truth = built.truth
    reads = [p for p in truth.points if p.at in truth.exact and p.at != at]
    before = max((p for p in reads if p.at < at), key=lambda p: p.at)
    after = min((p for p in reads if p.at > at), key=lambda p: p.at)
    life = next(
        (
            life
            for life in built.lives
            if life.installed_at < before.at
            and (life.removed_at is None or after.at < life.removed_at)
        ),
        None,
    )
    if life is None:
        return False
    energy, _volume = truth.at(at)
    new_energy = before.energy + int((energy - before.energy) * c.factor)
    new_energy = min(max(new_energy, before.energy), after.energy)
    share = Fraction(new_energy - before.energy, max(1, after.energy - before.energy))
    volume = (
        before.volume + (after.volume - before.volume) * share.numerator / share.denominator
    ).quantize(CENT)
    point = Point(
        at,
        new_energy,
        volume,
        before.return_m3c + (volume - before.volume) * plan.return_c,
        before.flow_m3c + (volume - before.volume) * (plan.return_c + plan.delta_t),
    )
    energy_read, volume_read, ret, flow = _meter_value(life, point)
    existing = next((p for p in truth.points if p.at == at), None)
    if existing is not None and at in truth.exact:  # staff correct the boundary's read
        user = User.objects.get_or_create(username="audit")[0]
        reading_edit(
            meter_id=life.meter.pk,
            read_at=at,
            values={
                "energy_kwh": Decimal(energy_read),
                "volume_m3": volume_read,
                "return_temp_m3c": ret,
                "flow_temp_m3c": flow,
            },
            actor=user,
            reason="randomised audit: corrected register",
            now=NOW,
        )
        existing.energy, existing.volume = point.energy, point.volume
        existing.return_m3c, existing.flow_m3c = point.return_m3c, point.flow_m3c
    else:  # a late read arrives where the boundary was interpolated
        if existing is not None:
            return False  # an exchange at that midnight
        add_readings(
            life.meter,
            [
                (
                    at,
                    str(energy_read),
                    str(volume_read),
                    {"return_temp_m3c": ret, "flow_temp_m3c": flow},
                )
            ],
        )
        vee_run_meter(meter_id=life.meter.pk, start=at, end=at, now=NOW)
        truth.points.append(point)
        truth.points.sort(key=lambda p: p.at)
        truth.exact.add(at)
    status = Reading.objects.get(meter=life.meter, read_at=at).status
    if status not in ("valid", "edited"):
        world.fail("generator", f"corrected read at {at} is {status}")
    return True


def rerate_after_correction(world: World) -> None:
    """Invariant 5: re-rating unchanged data issues nothing; after a corrected reading
    each changed bill is credited in full and billed again as recomputed."""
    if world.scenario.correction is not None or world.scenario.seed % 4 == 0:
        unchanged = invoices_rerate_changed(now=NOW)
        if unchanged:
            world.fail("5 unchanged", f"re-rating unchanged data issued {unchanged}")
    if world.scenario.correction is None or not correct_reading(world):
        return
    world.corrected = True
    live_before = {inv.pk: inv for inv in current_invoices().filter(network=world.network)}
    for credit, correction in invoices_rerate_changed(now=NOW + dt.timedelta(days=1)):
        original = live_before.get(credit.original_id)
        if original is None:
            world.fail(
                "5 credit",
                f"credit note #{credit.pk} credits #{credit.original_id}, not a live bill",
            )
            continue
        check_credit(world, credit, original)
        if correction is None:
            world.fail("5 correction", f"#{original.pk} credited without a correction")
            continue
        if correction.held:
            # no run issues a correction: it is issued as it is released
            correction = invoice_release(
                invoice=correction, note="randomised audit", now=NOW + dt.timedelta(days=1)
            )
        # credit note + correction = the recomputed bill less the original, line by line
        fresh = invoice_recompute(invoice=original)
        if credit.gross + correction.gross != fresh.gross - original.gross or _signature(
            correction.lines.all()
        ) != _signature(fresh.lines):
            world.fail(
                "5 difference",
                f"#{original.pk}: credit {credit.gross} + correction {correction.gross} ≠ "
                f"recomputed {fresh.gross} − original {original.gross}",
            )
        # only the difference reaches the balance: what stands is the live documents
        account = original.account
        live = (
            Invoice.objects.filter(account=account, number__isnull=False)
            .not_credited()
            .exclude(kind=Invoice.Kind.CREDIT_NOTE)
        )
        balance, owed = account_balance(account=account), sum((i.gross for i in live), Decimal(0))
        if balance != owed:
            world.fail("5 balance", f"account {account.pk}: balance {balance}, live bills {owed}")
    if world.scenario.seed % 4 == 0:  # a second look changes nothing (a quarter of the runs)
        again = invoices_rerate_changed(now=NOW + dt.timedelta(days=2))
        if again:
            world.fail("5 idempotent", f"a second look re-rated again: {again}")


def arrive_late_reads(world: World) -> None:
    """The reads of the period's last days arrive after billing: VEE refreshes the
    boundaries estimated from last year, and the look re-rates the bills (invariant 5)."""
    arrived = [b for b in world.connections if b.late_rows]
    if not arrived:
        return
    for built in arrived:
        meter = built.lives[-1].meter
        add_readings(meter, built.late_rows)
        vee_run_meter(
            meter_id=meter.pk, start=built.late_rows[0][0], end=built.late_rows[-1][0], now=NOW
        )
        built.truth.cutoff = None
        built.truth.exact |= {row[0] for row in built.late_rows}
        built.late_rows = []
    world.corrected = True
    live_before = {inv.pk: inv for inv in current_invoices().filter(network=world.network)}
    later = NOW + dt.timedelta(hours=6)
    for credit, correction in invoices_rerate_changed(now=later):
        original = live_before.get(credit.original_id)
        if original is None:
            world.fail(
                "5 credit",
                f"credit note #{credit.pk} credits #{credit.original_id}, not a live bill",
            )
            continue
        check_credit(world, credit, original)
        if correction is not None and correction.held:
            invoice_release(invoice=correction, note="audit", now=later)


def correct_tariff(world: World, capture) -> None:
    """A corrected version approved from a day already billed: approving closes the
    open version that day and, once committed, re-rates the bills priced with it over
    the days after (docs/billing.md, corrected tariffs; invariant 5)."""
    fix = world.scenario.tariff_correction
    if fix is None:
        return
    tariff = Tariff.objects.get(network=world.network, code="std")
    closed = tariff.versions.get(valid_to__isnull=True)
    live_before = {inv.pk: inv for inv in current_invoices().filter(network=world.network)}
    before = set(Invoice.objects.filter(network=world.network).values_list("pk", flat=True))
    with capture() as committed:
        _approve(tariff, fix, now=NOW + dt.timedelta(days=2))
    for callback in committed:  # the approval's commit: the re-rating it queues
        callback()  # (what that queues in turn, the PDFs, is not audited here)
    world.corrected = True
    for credit in Invoice.objects.filter(
        network=world.network, kind=Invoice.Kind.CREDIT_NOTE
    ).exclude(pk__in=before):
        original = live_before.get(credit.original_id)
        if original is None:
            world.fail(
                "5 credit",
                f"credit note #{credit.pk} credits #{credit.original_id}, not a live bill",
            )
            continue
        check_credit(world, credit, original)
        if original.period_end <= fix.valid_from or closed.pk not in original.tariff_version_ids:
            world.fail(
                "5 tariff correction",
                f"#{original.pk} {original.period_start}..{original.period_end} re-rated for a "
                f"correction from {fix.valid_from} of version {closed.pk}",
            )
    _issue_held(world, NOW + dt.timedelta(days=2))


def credit_by_hand(world: World, *, kind: str) -> None:
    """Staff credit one issued bill in full by hand (``invoice_credit``); a periodic bill
    is then billed again (``invoice_rebill``): invariant 5.  An instalment so credited
    counts for nothing in the settlement (invariant 6, docs/billing.md)."""
    rng = random.Random(f"{world.scenario.seed}/by-hand")
    bills = list(
        current_invoices().filter(network=world.network, kind=kind).order_by("pk")
        if kind != Invoice.Kind.INSTALMENT
        else Invoice.objects.filter(network=world.network, kind=kind, number__isnull=False)
        .not_credited()
        .order_by("pk")
    )
    if not bills:
        return
    original = rng.choice(bills)
    later = NOW + dt.timedelta(days=3)
    credit = invoice_credit(invoice=original, now=later)
    check_credit(world, credit, original)
    if kind == Invoice.Kind.INSTALMENT:
        return
    world.corrected = True
    again = invoice_rebill(invoice=original, now=later)
    if again.number is None:
        invoice_release(invoice=again, note="randomised audit", now=later)


def _issue_held(world: World, now: dt.datetime) -> None:
    """Release and issue what was held for review (plausibility is not audited here)."""
    for held in Invoice.objects.filter(
        network=world.network, state=Invoice.State.DRAFT, held=True
    ).exclude(kind=Invoice.Kind.CREDIT_NOTE):
        released = invoice_release(invoice=held, note="randomised audit", now=now)
        if released.number is None:  # a run's draft (a correction is issued as released)
            invoice_issue(invoice=released, issued_at=now)


def apply_late_change(world: World) -> None:
    """A move-in, move-out, capacity or area change recorded after billing, and the
    nightly look that re-rates and bills what it touched (invariant 5)."""
    late = world.scenario.late
    if late is None:
        return
    built = world.connections[late.connection]
    connection = built.connection
    live_before = {inv.pk: inv for inv in current_invoices().filter(network=world.network)}
    if late.what in ("move", "out"):
        contract = Contract.objects.get(connection=connection, valid_to__isnull=True)
        if late.what == "move":
            account = AccountFactory(network=world.network)
            contract_move_in(
                account=account, connection=connection, move_in_on=late.on, end_previous=True
            )
            built.accounts.append(account)
        else:
            contract_move_out(contract=contract, move_out_on=late.on)
    elif late.what == "kw":
        kw = capacity_on(connection=connection, day=late.on)
        connection_capacity_change(
            connection=connection,
            capacity_kw=(kw * Decimal("1.25")).quantize(CENT),
            valid_from=late.on,
        )
    else:
        m2 = area_on(building=connection.building, day=late.on)
        building_area_change(
            building=connection.building, heated_area_m2=m2 + 25, valid_from=late.on
        )
    later = NOW + dt.timedelta(hours=12)
    world.corrected = True
    rerated, _billed = contracts_rebill_changed(now=later)
    _issue_held(world, later)
    for credit, _correction in rerated:
        if credit.kind != Invoice.Kind.CREDIT_NOTE:
            continue  # a draft recomputed in place
        original = live_before.get(credit.original_id)
        if original is None:
            world.fail(
                "5 credit",
                f"credit note #{credit.pk} credits #{credit.original_id}, not a live bill",
            )
            continue
        check_credit(world, credit, original)
    again, billed_again = contracts_rebill_changed(now=later + dt.timedelta(hours=1))
    if [r for r in again if r and r[0].kind == Invoice.Kind.CREDIT_NOTE] or billed_again:
        world.fail(
            "5 idempotent", f"a second contract look re-rated {again}, billed {billed_again}"
        )


def settle_moved_out(world: World) -> None:
    """Final settlement (``final_settlement_issue``) of accounts that moved out in the
    year and were closed, before the year's settlement run."""
    for account in {a.pk: a for b in world.connections for a in b.accounts}.values():
        ends = [c.valid_to for c in account.contracts.all()]
        if None in ends or max(ends) > dt.date(2026, 11, 1):
            continue
        account_set_status(account=account, status=Account.Status.CLOSED)
        plan = InstalmentPlan.objects.get(account=account, year_start=YEAR)
        invoice = final_settlement_issue(plan=plan, now=NOW)
        if invoice.number is None:
            invoice_release(invoice=invoice, note="randomised audit", now=NOW)


# --------------------------------------------------------------------------- scenarios
def play(s: Scenario, capture=None) -> World:
    world = build(s)
    if s.kind == "period":
        run_period(world, start=s.period_start, months=s.months)
    elif s.kind == "year":
        for month in range(12):
            run_period(world, start=_add_months(YEAR, month), months=1)
    else:
        planned = {a.pk: a for b in world.connections for a in b.accounts}
        for account in planned.values():
            instalment_plan_create(account=account, year_start=YEAR, frequency=s.frequency, now=NOW)
        step = 1 if s.frequency == "monthly" else 3
        for month in range(0, 12, step):
            start = _add_months(YEAR, month)
            run_period(
                world,
                start=start,
                months=step,
                kind="instalment",
                now=dt.datetime.combine(start, dt.time(8), tzinfo=dt.UTC),
            )
        if s.credit_by_hand:
            credit_by_hand(world, kind=Invoice.Kind.INSTALMENT)
        if s.final_settlement:
            settle_moved_out(world)
        run_period(world, start=YEAR, months=12, kind="settlement")
    check_documents(world)
    if s.kind == "year":
        check_year_of_fees(world)
    if s.kind == "aconto":
        check_settlement(world)
        check_instalments(world)
    if any(b.late_rows for b in world.connections):
        arrive_late_reads(world)
        check_documents(world)
    if s.late:
        apply_late_change(world)
        check_documents(world)
    if s.tariff_correction and capture is not None:
        correct_tariff(world, capture)
        check_documents(world)
    if s.credit_by_hand and s.kind != "aconto":
        credit_by_hand(world, kind=Invoice.Kind.INVOICE)
        check_documents(world)
    rerate_after_correction(world)
    check_documents(world)
    if s.kind == "aconto":
        check_settlement(world)
    return world


# --------------------------------------------------------------------------- the audit
# open defects the audit recognises, by key (``World.fail(..., known=key)``): none (A and
# B, below, are fixed)
KNOWN_DEFECTS: dict[str, str] = {}


@pytest.mark.django_db
@pytest.mark.parametrize("seed", _scenario_seeds())
def test_random_scenario_keeps_the_billing_invariants(seed, django_capture_on_commit_callbacks):
    scenario = scenario_from_seed(seed)
    world = play(scenario, django_capture_on_commit_callbacks)
    unknown = [(i, m) for i, m, known in world.violations if known is None]
    assert not unknown, scenario.describe() + "\n" + "\n".join(f"[{i}] {m}" for i, m in unknown)
    known = sorted({k for _i, _m, k in world.violations if k})
    if known:
        pytest.xfail("known defects: " + "; ".join(f"{k}: {KNOWN_DEFECTS[k]}" for k in known))


# --------------------------------------------------------------------------- defects, shrunk
# Each is the smallest scenario that shows one defect the audit found, worked by hand.
NOV, MID, DEC = dt.date(2026, 11, 1), dt.date(2026, 11, 16), dt.date(2026, 12, 1)
ENERGY_ONLY = [{"type": "energy", "code": "energy", "description": "Energy", "price": "600.00"}]


@pytest.mark.django_db
def test_energy_split_at_a_tariff_change_adds_up_to_the_register_difference():
    """Defect A (fixed).  November, a new tariff version from the 16th (same energy
    price), no register on the 16th.  1,000.0005 kWh between two interpolated bounds is
    1.0000005 MWh: 1.000001 MWh with 6 decimals, half up (the invoice's own comparison
    says so).  Shared by days, each half is 500.00025 kWh = 0.50000025 MWh → 0.500000:
    rounded slice by slice the energy lines billed 1.000000 MWh.  Rounded cumulatively
    from the interval's start (docs/billing.md) they bill 0.500000 + 0.500001."""
    from tests.billing.factories import contract_with_connection, register, tariff_version
    from tests.billing.helpers import bill_month

    network = NetworkFactory()
    tariff_version(network=network, valid_to=MID, components=ENERGY_ONLY)
    tariff_version(network=network, valid_from=MID, components=ENERGY_ONLY)
    contract = contract_with_connection(network=network)
    register(contract.connection, NOV, Decimal("0"), status="estimated")
    register(contract.connection, DEC, Decimal("1000.0005"), status="estimated")

    bill_month(network, issue=False)

    invoice = Invoice.objects.get()
    assert invoice.comparison["energy_mwh"] == "1.000001"
    quantities = [line.quantity for line in invoice.lines.filter(component="energy")]
    assert len(quantities) == 2
    assert sum(quantities) == Decimal("1.000001")


BLOCKS = [
    {
        "type": "energy",
        "code": "energy",
        "description": "Energy",
        "blocks": [{"upto": "20", "price": "600.00"}, {"price": "300.00"}],
    }
]


def _block_priced_bill():
    """November billed at annual block prices: 28,000 kWh on 1 December less 10,000 kWh
    estimated a year earlier is 18 MWh in the trailing year, all in the first block:
    2 MWh × 600.00 = 1,200.00."""
    from tests.billing.factories import contract_with_connection, register, tariff_version
    from tests.billing.helpers import bill_month

    network = NetworkFactory()
    tariff_version(network=network, components=BLOCKS)
    contract = contract_with_connection(network=network)
    register(contract.connection, dt.date(2025, 12, 1), Decimal("10000"), status="estimated")
    register(contract.connection, NOV, Decimal("26000"))
    register(contract.connection, DEC, Decimal("28000"))
    bill_month(network)
    invoice = Invoice.objects.get()
    assert invoice.lines.get(component="energy").amount == Decimal("1200.00")
    return contract, invoice


@pytest.mark.django_db
def test_a_block_priced_bill_records_the_trailing_year_register_it_used():
    """Defect B (fixed): the trailing-year register was read but not recorded
    (docs/billing.md: every register used is stored on the invoice)."""
    _contract, invoice = _block_priced_bill()

    assert "2025-12-01" in {reading["on"] for reading in invoice.readings}


@pytest.mark.django_db
def test_a_corrected_trailing_year_register_re_rates_a_block_priced_bill():
    """Defect B (fixed): re-rating looked only at the registers an invoice recorded (and
    at its period's days), so a corrected trailing-year register left a block-priced
    bill standing with stale figures."""
    from tests.billing.factories import register

    contract, original = _block_priced_bill()
    # the bill's registers were seen by an earlier look
    BoundaryRegister.objects.update(updated_at=timezone.now() - dt.timedelta(days=1))
    assert invoices_rerate_changed(now=NOW) == []
    # the read a year earlier arrives: 28 MWh in the trailing year, 8 above the first
    # block; November is 20/28 at 600.00 and 8/28 at 300.00: 857.14 + 171.43 = 1,028.57
    register(contract.connection, dt.date(2025, 12, 1), Decimal("0"))
    assert invoice_recompute(invoice=original).net == Decimal("1028.57")

    results = invoices_rerate_changed(now=NOW)

    assert len(results) == 1
    assert results[0][1].net == Decimal("1028.57")
