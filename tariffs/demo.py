"""Demo step 3: a year of plant and price data → COP → operating cost → cap → tariff.

Synthetic but physically plausible hourly data for the demo network's price area,
generated deterministically from ``ctx.seed``: a seawater heat pump (Lorenz η 0.55,
measured COP a little below the model, as early projects found) and an electric peak
boiler; day-ahead prices with a windy weekend of negative hours.  The files are written
as a SCADA export (naive local times, the repeated 02:00 of the autumn DST night twice)
and an ENTSO-E day-ahead export (``MTU (CET/CEST)``) and go through the real import task.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_FLOOR, Decimal

import numpy as np
import pandas as pd
from django.contrib.auth.models import Group, User
from django.db.models import Q, Sum
from django.utils import timezone

from customers.models import ServiceConnection
from heatutility.roles import TARIFF_MANAGER
from heatutility.timeutil import add_months, local_midnight, month_start
from tariffs.cop import modelled_cop
from tariffs.models import DataImport, ElectricityCharge, Plant, PlantUnit, PriceCap, Tariff
from tariffs.selectors import tariff_spec_for_version
from tariffs.services import (
    TariffAboveCap,
    cost_based_inputs_from_cost,
    data_import_create,
    operating_cost_compute,
    price_cap_adopt,
    price_cap_compute,
    tariff_assign,
    tariff_version_approve,
    tariff_version_create,
    tariff_version_publish,
)
from tariffs.simulation import price_examples
from tariffs.tasks import data_import_run_task

HP_MW = Decimal("0.45")
BOILER_MW = Decimal("0.40")
LOSS_SHARE = Decimal("0.18")


def _floor(value: Decimal, step: str = "1") -> Decimal:
    return (value / Decimal(step)).to_integral_value(rounding=ROUND_FLOOR) * Decimal(step)


def synthetic_year(
    *, seed: int, start_at: pd.Timestamp, end_at: pd.Timestamp, tz: str, annual_heat_mwh: float
):
    """Hourly outdoor/seawater temperatures, heat demand, unit dispatch and spot prices."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start_at, end_at, freq="h", inclusive="left", tz="UTC")
    local = idx.tz_convert(tz)
    doy = local.day_of_year.to_numpy()
    hour = local.hour.to_numpy()
    season = np.cos(2 * np.pi * (doy - 20) / 365.25)  # 1 in late January, −1 in July
    outdoor = (
        8.5
        - 9.0 * season
        + 3.0 * np.sin(2 * np.pi * (hour - 9) / 24)
        + rng.normal(0, 2.0, len(idx))
    )
    seawater = np.clip(9.0 - 6.0 * season + rng.normal(0, 0.3, len(idx)), 1.5, 17.0)
    demand_shape = np.clip(17.0 - outdoor, 0, None) + 2.2 + 0.8 * ((hour >= 6) & (hour <= 9))
    demand = demand_shape / demand_shape.sum() * annual_heat_mwh
    supply = np.clip(82.0 - 0.6 * outdoor, 68.0, 85.0)
    ret = np.clip(40.0 + rng.normal(0, 1.0, len(idx)), 36.0, 45.0)
    hp_heat = np.minimum(demand, float(HP_MW))
    boiler_heat = demand - hp_heat
    cop_model = modelled_cop(
        efficiency=0.55,
        sink_in_c=ret,
        sink_out_c=supply,
        source_in_c=seawater,
        source_out_c=np.maximum(seawater - 3.5, 0.5),
    )
    cop_real = cop_model * np.clip(rng.normal(0.93, 0.03, len(idx)), 0.8, 1.02)
    hp_elec = hp_heat / cop_real
    hp_elec[rng.random(len(idx)) < 0.01] = np.nan  # meter gaps: modelled COP fills them
    weekday = local.day_of_week.to_numpy()
    spot = (
        620
        + 180 * season
        + 160 * ((hour >= 7) & (hour <= 9))
        + 260 * ((hour >= 17) & (hour <= 20))
        - 120 * (weekday >= 5)
        + rng.normal(0, 90, len(idx))
    )
    # a windy summer Sunday: midday prices below zero
    sunday = np.flatnonzero((local.month == 6) & (weekday == 6) & (hour >= 11) & (hour <= 15))[:5]
    spot[sunday] = -np.array([35.0, 60.0, 82.5, 41.0, 12.0])[: len(sunday)]
    return pd.DataFrame(
        {
            "hour_start": idx,
            "local": local,
            "outdoor": outdoor,
            "seawater_in": seawater,
            "seawater_out": np.maximum(seawater - 3.5, 0.5),
            "supply": supply,
            "return": ret,
            "hp_heat": hp_heat,
            "hp_elec": hp_elec,
            "boiler_heat": boiler_heat,
            "spot": np.round(spot, 2),
        }
    )


def scada_csv(frame: pd.DataFrame, *, unit: str) -> str:
    """SCADA export: naive local times (the autumn 02:00 twice, summer time first)."""
    out = pd.DataFrame({"time": frame["local"].dt.strftime("%Y-%m-%d %H:%M")})
    if unit == "hp":
        out["heat_mwh"] = frame["hp_heat"].round(6)
        out["electricity_mwh"] = frame["hp_elec"].round(6)
        out["source_in_c"] = frame["seawater_in"].round(2)
        out["source_out_c"] = frame["seawater_out"].round(2)
    else:
        out["heat_mwh"] = frame["boiler_heat"].round(6)
        out["electricity_mwh"] = (frame["boiler_heat"] / 0.99).round(6)
    out["supply_c"] = frame["supply"].round(2)
    out["return_c"] = frame["return"].round(2)
    return out.to_csv(index=False)


def entsoe_csv(frame: pd.DataFrame, tz: str) -> str:
    start = frame["local"]
    end = (frame["hour_start"] + pd.Timedelta(hours=1)).dt.tz_convert(tz)
    ambiguous = start.duplicated(keep=False) | start.dt.strftime("%Y-%m-%d %H").duplicated(
        keep=False
    )
    marker = np.where(ambiguous, " (" + start.dt.strftime("%Z") + ")", "")
    mtu = start.dt.strftime("%d.%m.%Y %H:%M") + " - " + end.dt.strftime("%d.%m.%Y %H:%M") + marker
    return pd.DataFrame({"MTU (CET/CEST)": mtu, "Day-ahead Price [DKK/MWh]": frame["spot"]}).to_csv(
        index=False
    )


def charges_csv(start: dt.date, currency: str) -> str:
    """Effective-dated charges: a time-of-use grid tariff (peak 17–21 h), system tariffs, tax."""
    rows = [
        ("grid", "0-6", "150"),
        ("grid", "6-17", "230"),
        ("grid", "17-21", "450"),
        ("grid", "21-24", "230"),
        ("system", "", "145"),
        ("tax", "", "8"),
    ]
    lines = [f"kind,valid_from,valid_to,hours,Amount [{currency}/MWh]"]
    lines += [f"{kind},{start.isoformat()},,{hours},{amount}" for kind, hours, amount in rows]
    return "\n".join(lines) + "\n"


def _import(**kwargs) -> DataImport:
    record = data_import_create(enqueue=False, **kwargs)
    data_import_run_task.apply(args=(record.pk,))  # the real task, run here whatever the broker
    record.refresh_from_db()
    if record.status != DataImport.Status.DONE:
        raise RuntimeError(f"demo import {record.filename} failed: {record.errors[:3]}")
    return record


def run(ctx) -> list[str]:
    network = ctx.network
    tz = network.time_zone
    now = timezone.now()
    end = month_start(ctx.as_of)
    start = add_months(end, -12)
    conn_ids = list(ctx.data.get("connections", []))
    conns = ServiceConnection.objects.filter(id__in=conn_ids)
    area = conns.aggregate(a=Sum("building__heated_area_m2"))["a"] or Decimal(0)
    kw_total = conns.aggregate(k=Sum("contracted_capacity_kw"))["k"] or Decimal(1)
    sold_estimate = float(area) * 0.13  # 130 kWh per m² and year
    produced_estimate = sold_estimate / (1 - float(LOSS_SHARE))

    plant = Plant.objects.create(
        network=network, code=f"{network.code}-plant", name=f"{network.name} heat plant"
    )
    hp = PlantUnit.objects.create(
        plant=plant,
        code="hp1",
        name="Seawater heat pump",
        kind=PlantUnit.Kind.HEAT_PUMP,
        source_type=PlantUnit.Source.SEAWATER,
        capacity_mw=HP_MW,
        lorenz_efficiency=Decimal("0.55"),
        om_fixed_per_mw_year=Decimal("150000"),
        om_variable_per_mwh=Decimal("20"),
        investment=Decimal("6300000"),
        lifetime_years=25,
        interest_rate=Decimal("0.035"),
    )
    boiler = PlantUnit.objects.create(
        plant=plant,
        code="eb1",
        name="Electric peak boiler",
        kind=PlantUnit.Kind.ELECTRIC_BOILER,
        capacity_mw=BOILER_MW,
        boiler_efficiency=Decimal("0.99"),
        om_fixed_per_mw_year=Decimal("10000"),
        om_variable_per_mwh=Decimal("5"),
        investment=Decimal("600000"),
        lifetime_years=20,
        interest_rate=Decimal("0.035"),
    )
    start_at = pd.Timestamp(local_midnight(start, tz))
    end_at = pd.Timestamp(local_midnight(end, tz))
    frame = synthetic_year(
        seed=ctx.seed, start_at=start_at, end_at=end_at, tz=tz, annual_heat_mwh=produced_estimate
    )
    _import(
        kind="unit_hours",
        unit=hp,
        content=scada_csv(frame, unit="hp"),
        filename="scada-hp1.csv",
        time_zone=tz,
    )
    _import(
        kind="unit_hours",
        unit=boiler,
        content=scada_csv(frame, unit="eb"),
        filename="scada-eb1.csv",
        time_zone=tz,
    )
    prices = _import(
        kind="spot_prices",
        price_area=network.price_area,
        currency=network.currency,
        content=entsoe_csv(frame, tz),
        filename=f"entsoe-{network.price_area}.csv",
        time_zone=tz,
    )
    # grid tariff (time of use), system tariffs and electricity tax (illustrative DK levels for a
    # heat-pump plant), imported from their CSV through the same task
    charges = None
    if (
        not ElectricityCharge.objects.filter(price_area=network.price_area, valid_from__lt=end)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=start))
        .exists()
    ):
        charges = _import(
            kind="electricity_charges",
            price_area=network.price_area,
            currency=network.currency,
            content=charges_csv(start, network.currency),
            filename=f"charges-{network.price_area}.csv",
            time_zone=tz,
        )

    cost = operating_cost_compute(
        network=network,
        period_start=start,
        period_end=end,
        now=now,
        loss_share=LOSS_SHARE,
        network_costs_per_year=Decimal("180000"),
    )
    figures = cost.results["figures"]
    unit_figures = cost.results["per_unit"]["hp1"]
    inputs = cost_based_inputs_from_cost(
        cost=cost, connections=len(conn_ids), contracted_kw_total=kw_total
    )
    cap = price_cap_compute(
        network=network,
        method=PriceCap.Method.COST_BASED,
        period_start=start,
        period_end=add_months(start, 12),
        inputs=inputs,
        now=now,
        operating_cost=cost,
    )
    cap = price_cap_adopt(cap=cap, now=now)

    manager, _ = User.objects.get_or_create(username="tariff.manager", defaults={"is_staff": True})
    manager.groups.add(Group.objects.get(name=TARIFF_MANAGER))
    manager = User.objects.get(pk=manager.pk)
    tariff, _ = Tariff.objects.get_or_create(
        network=network,
        code="standard",
        defaults={"name": "Standard tariff", "customer_class": "all"},
    )
    energy = _floor(cap.energy_cap_per_mwh * Decimal("0.98"), "0.5")
    capacity = _floor(cap.capacity_cap_per_kw * Decimal("0.98"), "0.5")
    subscription = _floor(cap.fixed_cap_per_year * Decimal("0.98"), "10")
    components = [
        {
            "type": "fixed",
            "code": "subscription",
            "description": "Subscription and meter",
            "amount": str(subscription),
            "kind": "meter_rent",
        },
        {
            "type": "banded",
            "code": "capacity",
            "description": "Capacity charge",
            "basis": "capacity",
            "unit": "kW",
            "bands": [{"unit_price": str(capacity)}],
        },
        {
            "type": "energy",
            "code": "energy",
            "description": "Energy charge",
            "unit": "MWh",
            "price": str(energy),
        },
        {
            "type": "cooling",
            "code": "cooling",
            "description": "Cooling correction",
            "target": "30",
            "band_below": "5",
            "band_above": "5",
            "penalty_rate": "0.008",
            "bonus_rate": "0.008",
        },
    ]
    valid_from = dt.date(ctx.as_of.year - 2, 1, 1)
    too_high = tariff_version_create(
        tariff=tariff,
        valid_from=valid_from,
        components=[*components[:2], {**components[2], "price": str(energy + 100)}, components[3]],
        notes="demo: a draft above the cap",
    )
    try:
        tariff_version_approve(version=too_high, user=manager, now=now)
        refused = "NOT refused (unexpected)"
    except TariffAboveCap as exc:
        refused = exc.errors[0].message
    version = tariff_version_create(
        tariff=tariff,
        valid_from=valid_from,
        components=components,
        notes="demo: priced 2 % under the cost-based cap",
    )
    version = tariff_version_approve(version=version, user=manager, now=now)
    version = tariff_version_publish(version=version, user=manager, now=now)
    assigned = tariff_assign(tariff=tariff, connection_ids=conn_ids, valid_from=valid_from)
    example = next(
        e
        for e in price_examples(spec=tariff_spec_for_version(version), year=ctx.as_of.year)
        if e["key"] == "dk-house-130m2"
    )
    # the 2026 Danish benchmark, for comparison (not adopted): an individual air-to-water heat pump
    benchmark = price_cap_compute(
        network=network,
        method=PriceCap.Method.SUBSTITUTION,
        period_start=start,
        period_end=add_months(start, 12),
        now=now,
        inputs={
            "reference": {
                "energy_mwh": "18.1",
                "heated_area_m2": "130",
                "contracted_kw": "9.05",
                "volume_m3": "518.87",
            },
            "individual_scop": "3.0",
            "consumer_extra_per_mwh": "600",
            "investment": "110000",
            "lifetime_years": 15,
            "interest_rate": "0.04",
            "om_per_year": "1500",
        },
    )
    ctx.data.update(
        tariff_id=tariff.pk,
        tariff_version_id=version.pk,
        price_cap_id=cap.pk,
        operating_cost_id=cost.pk,
    )
    negative = int((frame["spot"] < 0).sum())
    return [
        f"plant {plant.code}: seawater heat pump {HP_MW} MW + electric boiler {BOILER_MW} MW; "
        f"{prices.rows} hourly prices for {network.price_area} ({negative} negative), {start} to {end}; "
        f"{charges.rows if charges else 0} electricity charges imported (grid tariff by time of use)",
        f"seasonal COP measured {unit_figures['seasonal_cop_measured']} vs modelled (Lorenz η 0.55) "
        f"{unit_figures['seasonal_cop_modelled']} (gap {unit_figures.get('cop_gap')})",
        f"heat produced {Decimal(figures['heat_produced_mwh']):.1f} MWh, sold {Decimal(figures['heat_sold_mwh']):.1f} MWh; "
        f"cost {figures['total_cost']} {network.currency} = {figures['cost_per_mwh_produced']}/MWh produced, "
        f"{figures['cost_per_mwh_sold']}/MWh sold",
        f"cost-based cap #{cap.pk} [{cap.period_start}, {cap.period_end}): energy {cap.energy_cap_per_mwh}/MWh, "
        f"fixed {cap.fixed_cap_per_year}/year, capacity {cap.capacity_cap_per_kw}/kW",
        f"over-cap draft refused: {refused}",
        f"tariff {tariff.code} v{version.number} {version.status} from {version.valid_from}: subscription {subscription}/year, "
        f"capacity {capacity}/kW, energy {energy}/MWh, cooling ±0.8 %/°C beyond 25–35 °C; {assigned} connections assigned",
        f"price example 130 m² house, 18.1 MWh: {example['net']} {network.currency}/year net, {example['gross']} incl. VAT; "
        f"individual heat pump benchmark (substitution cap #{benchmark.pk}) {benchmark.reference_total_cap} net",
    ]
