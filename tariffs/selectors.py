"""Reads other apps use: tariff slices per connection and the price cap in force.

Which tariff applies to a connection: its :class:`~tariffs.models.TariffAssignment` for the
day, else the network's default tariff (``Tariff.is_default``).  Only approved or
published versions are ever returned.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Q

from customers.models import ServiceConnection
from heatutility.db import id_array
from heatutility.money import quantize_money
from tariffs.models import IN_FORCE, PlantUnit, PriceCap, Tariff, TariffAssignment, TariffVersion
from tariffs.rating import TariffSpec, components_from_data


def tariff_spec_for_version(version: TariffVersion, *, currency: str | None = None) -> TariffSpec:
    """The immutable rating snapshot of one version (drafts too: for simulation)."""
    return TariffSpec(
        version_id=version.pk or 0,
        tariff_code=version.tariff.code,
        currency=currency or version.tariff.network.currency,
        vat_rate=version.vat_rate,
        components=components_from_data(version.components),
        prices_include_vat=version.prices_include_vat,
        valid_from=version.valid_from,
        valid_to=version.valid_to,
    )


def _overlap(a_start, a_end, b_start, b_end):
    start = max(a_start, b_start)
    ends = [e for e in (a_end, b_end) if e is not None]
    end = min(ends) if ends else None
    if end is not None and end <= start:
        return None
    return start, end


def tariffs_hold(tariff_ids) -> None:
    """Share-lock the tariffs until the caller's transaction ends (PostgreSQL).

    An approval locks its tariff for update (``services.tariff_version_approve``), so it
    waits for a bill priced from these versions to commit, and the re-rating it starts on
    commit sees that bill; a bill priced after the approval reads the new version.
    Without it a billing chunk that read the old version before an approval, but wrote
    after the approval's re-rating had looked, kept the old price until the nightly look.
    Taken before the versions are read, in id order (no deadlock between two holders).
    """
    if tariff_ids and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {Tariff._meta.db_table} WHERE id = ANY(%s::bigint[]) ORDER BY id FOR SHARE",
                [id_array(sorted(tariff_ids))],
            )


def tariff_slices_for_connections(
    *, connection_ids: Sequence[int], start: dt.date, end: dt.date
) -> dict[int, list[tuple[dt.date, dt.date, TariffSpec]]]:
    """For each connection, the in-force tariff version(s) covering ``[start, end)``.

    Split where the assignment or the version changes; days with no tariff are simply not
    covered (billing reports them).  Four queries whatever the number of connections, and
    on PostgreSQL a fifth that holds their tariffs until the transaction ends
    (:func:`tariffs_hold`).
    """
    ids = list(dict.fromkeys(connection_ids))
    result: dict[int, list[tuple[dt.date, dt.date, TariffSpec]]] = {cid: [] for cid in ids}
    if not ids or end <= start:
        return result
    assignments: dict[int, list[tuple[dt.date, dt.date | None, int]]] = defaultdict(list)
    if connection.vendor == "postgresql":
        ids_literal = id_array(ids)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, network_id FROM {ServiceConnection._meta.db_table} WHERE id = ANY(%s::bigint[])",
                [ids_literal],
            )
            network_of = dict(cursor.fetchall())
            cursor.execute(
                f"SELECT connection_id, tariff_id, valid_from, valid_to FROM {TariffAssignment._meta.db_table} "
                "WHERE connection_id = ANY(%s::bigint[]) AND valid_from < %s AND (valid_to IS NULL OR valid_to > %s) "
                "ORDER BY connection_id, valid_from",
                [ids_literal, end, start],
            )
            assignment_rows = cursor.fetchall()
    else:
        network_of = dict(
            ServiceConnection.objects.filter(id__in=ids).values_list("id", "network_id")
        )
        assignment_rows = (
            TariffAssignment.objects.filter(connection_id__in=ids, valid_from__lt=end)
            .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=start))
            .order_by("connection_id", "valid_from")
            .values_list("connection_id", "tariff_id", "valid_from", "valid_to")
        )
    for cid, tid, vf, vt in assignment_rows:
        assignments[cid].append((vf, vt, tid))
    defaults = dict(
        Tariff.objects.filter(network_id__in=set(network_of.values()), is_default=True).values_list(
            "network_id", "id"
        )
    )
    tariff_ids = {t for rows in assignments.values() for _, _, t in rows} | set(defaults.values())
    tariffs_hold(tariff_ids)
    versions: dict[int, list[TariffVersion]] = defaultdict(list)
    for v in (
        TariffVersion.objects.filter(
            tariff_id__in=tariff_ids, status__in=IN_FORCE, valid_from__lt=end
        )
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=start))
        .select_related("tariff__network")
        .order_by("tariff_id", "valid_from")
    ):
        versions[v.tariff_id].append(v)
    specs: dict[int, TariffSpec] = {}

    def spec(v: TariffVersion) -> TariffSpec:
        if v.pk not in specs:
            specs[v.pk] = tariff_spec_for_version(v)
        return specs[v.pk]

    # (segment start, segment end, tariff id) -> the version pieces covering it, computed
    # once per distinct segment (most connections share the network default's one)
    pieces_of: dict[tuple[dt.date, dt.date, int], list[tuple[dt.date, dt.date, TariffSpec]]] = {}

    def pieces(
        s_start: dt.date, s_end: dt.date, tid: int
    ) -> list[tuple[dt.date, dt.date, TariffSpec]]:
        key = (s_start, s_end, tid)
        found = pieces_of.get(key)
        if found is None:
            found = pieces_of[key] = []
            for v in versions.get(tid, []):
                piece = _overlap(v.valid_from, v.valid_to, s_start, s_end)
                if piece is not None:
                    found.append((piece[0], piece[1], spec(v)))
        return found

    for cid in ids:
        default = defaults.get(network_of.get(cid))
        own = assignments.get(cid)
        if not own:  # no assignment in the period: the network default for all of it
            if default:
                result[cid] = sorted(pieces(start, end, default), key=lambda row: row[0])
            continue
        # segments of [start, end) → tariff id: assignments first, gaps from the default
        segments: list[tuple[dt.date, dt.date, int]] = []
        cursor = start
        for vf, vt, tid in own:
            seg = _overlap(vf, vt, start, end)
            if seg is None:
                continue
            if seg[0] > cursor and default:
                segments.append((cursor, seg[0], default))
            segments.append((seg[0], seg[1], tid))
            cursor = seg[1]
        if cursor < end and default:
            segments.append((cursor, end, default))
        for s_start, s_end, tid in segments:
            result[cid].extend(pieces(s_start, s_end, tid))
        result[cid].sort(key=lambda row: row[0])
    return result


def _cap_reference(cap: PriceCap) -> dict | None:
    """The reference customer a benchmark cap is computed for (``inputs.reference``), as
    Decimals, with the benchmark per MWh; None when the cap has none."""
    ref = cap.inputs.get("reference") if isinstance(cap.inputs, dict) else None
    if not isinstance(ref, dict) or ref.get("energy_mwh") in (None, ""):
        return None
    values = {
        key: Decimal(str(ref.get(key) or "0"))
        for key in ("energy_mwh", "volume_m3", "contracted_kw", "heated_area_m2")
    }
    if values["energy_mwh"] <= 0:
        return None
    per_mwh = None
    if cap.reference_total_cap is not None:
        per_mwh = quantize_money(cap.reference_total_cap / values["energy_mwh"], cap.currency)
    return {**values, "total_per_mwh": per_mwh}


def price_cap_summary(*, network_id: int, on: dt.date) -> dict | None:
    """The adopted price cap in force for the network on ``on`` (for invoices), or None.

    Every limit the cap holds, on the cap's own VAT basis (``includes_vat``), and for a
    benchmark cap (substitution: an individual heat pump, DOMAIN.md §5) the reference
    customer it was computed for and what the benchmark comes to per MWh.
    """
    cap = (
        PriceCap.objects.filter(
            network_id=network_id,
            status=PriceCap.Status.ADOPTED,
            period_start__lte=on,
            period_end__gt=on,
        )
        .order_by("-period_start")
        .first()
    )
    if cap is None:
        return None
    results = cap.results if isinstance(cap.results, dict) else {}
    scop = results.get("seasonal_cop")
    return {
        "id": cap.pk,
        "method": cap.method,
        "method_label": cap.get_method_display(),
        "period_start": cap.period_start,
        "period_end": cap.period_end,
        "currency": cap.currency,
        "includes_vat": cap.includes_vat,
        "energy_cap_per_mwh": cap.energy_cap_per_mwh,
        "fixed_cap_per_year": cap.fixed_cap_per_year,
        "capacity_cap_per_kw": cap.capacity_cap_per_kw,
        "area_cap_per_m2": cap.area_cap_per_m2,
        "reference_total_cap": cap.reference_total_cap,
        "reference": _cap_reference(cap),
        "seasonal_cop": Decimal(scop).quantize(Decimal("0.01")) if scop else None,
    }


def unit_hours_frame(*, unit_ids: Sequence[int], start_at: dt.datetime, end_at: dt.datetime):
    """Hourly unit data as a pandas frame (one query): the energies as the stored ``Decimal``
    values (``None`` where not metered), priced exactly by ``costs.operating_cost``; the
    temperatures as floats for the vectorised COP model (physics)."""
    import pandas as pd

    from tariffs.models import UnitHour

    cols = [
        "unit_id",
        "hour_start",
        "heat_mwh",
        "electricity_mwh",
        "fuel_mwh",
        "source_in_c",
        "source_out_c",
        "supply_c",
        "return_c",
    ]
    rows = UnitHour.objects.filter(
        unit_id__in=unit_ids, hour_start__gte=start_at, hour_start__lt=end_at
    ).values_list(*cols)
    frame = pd.DataFrame.from_records(list(rows), columns=cols)
    for c in ("source_in_c", "source_out_c", "supply_c", "return_c"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    frame["hour_start"] = pd.to_datetime(frame["hour_start"], utc=True)
    return frame


def spot_price_hours_by_resolution(
    *, price_area: str, start_at: dt.datetime, end_at: dt.datetime
) -> dict[str, int]:
    """How many of the area's stored hourly prices in ``[start_at, end_at)`` came from hourly and
    how many from 15-minute files (``{"60": n, "15": n}``; ``"unrecorded"`` for prices entered
    without an import or imported before the resolution was kept), so that figures priced on
    them show which hourly prices are means of four quarter-hour prices."""
    from django.db.models import Count

    from tariffs.models import SpotPrice

    counts = (
        SpotPrice.objects.filter(
            price_area=price_area, hour_start__gte=start_at, hour_start__lt=end_at
        )
        .values_list("data_import__resolution_minutes")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {
        "unrecorded" if minutes is None else str(minutes): n
        for minutes, n in sorted(counts, key=lambda c: -(c[0] or 0))
    }


def electricity_prices_frame(
    *, price_area: str, start_at: dt.datetime, end_at: dt.datetime, time_zone: str
):
    """Hourly spot + grid + system + tax per MWh for the area (two queries); time-of-use charges by
    local hour.  The prices are the stored ``Decimal`` values (a charge not in force: 0), so that
    their sum and the money priced on them are exact (``costs.hourly_electricity_price``)."""
    import pandas as pd

    from tariffs.models import ElectricityCharge, SpotPrice

    spot = pd.DataFrame.from_records(
        list(
            SpotPrice.objects.filter(
                price_area=price_area, hour_start__gte=start_at, hour_start__lt=end_at
            )
            .order_by("hour_start")
            .values_list("hour_start", "price_per_mwh")
        ),
        columns=["hour_start", "spot"],
    )
    spot["hour_start"] = pd.to_datetime(spot["hour_start"], utc=True)
    local = spot["hour_start"].dt.tz_convert(time_zone)
    local_day = local.dt.date
    local_hour = local.dt.hour  # both 02:00 hours of the 25-hour day are hour 2
    charges = list(
        ElectricityCharge.objects.filter(
            price_area=price_area, valid_from__lt=end_at.date() + dt.timedelta(days=1)
        )
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=start_at.date() - dt.timedelta(days=1)))
        .values_list("kind", "valid_from", "valid_to", "hour_from", "hour_to", "amount_per_mwh")
    )
    for kind in ("grid", "system", "tax"):
        spot[kind] = Decimal(0)
    for kind, vf, vt, h_from, h_to, amount in charges:
        mask = local_day >= vf
        if vt is not None:
            mask &= local_day < vt
        if (h_from, h_to) != (0, 24):  # time of use: local hours [h_from, h_to)
            mask &= (local_hour >= h_from) & (local_hour < h_to)
        spot.loc[mask, kind] = amount
    return spot


# Units that produce heat (thermal storage only shifts it) and what they run on.
_ELECTRIC_KINDS = ("heat_pump", "electric_boiler")
_PRODUCING_KINDS = (*_ELECTRIC_KINDS, "fuel_boiler")


def shares_percent(amounts: dict[str, Decimal], *, places: int = 1) -> dict[str, Decimal]:
    """Each amount's share of their total in %, rounded to ``places`` decimals by largest
    remainder (Hamilton): floor every share, then give the steps still missing to 100 to
    the largest remainders (ties: the larger amount, then the key), so the shares always
    add up to exactly 100.  Empty when the total is not positive."""
    total = sum(amounts.values(), Decimal(0))
    if total <= 0:
        return {}
    steps = 100 * 10**places
    raw = {key: value * steps / total for key, value in amounts.items()}
    floors = {key: int(share) for key, share in raw.items()}  # shares are ≥ 0: int() floors
    missing = steps - sum(floors.values())
    by_remainder = sorted(raw, key=lambda key: (-(raw[key] - floors[key]), -amounts[key], key))
    for key in by_remainder[:missing]:
        floors[key] += 1
    step = Decimal(1).scaleb(-places)
    return {key: Decimal(floors[key]) * step for key in amounts}


def heat_production_mix(
    *,
    network_id: int,
    start: dt.date,
    end: dt.date,
    time_zone: str,
    grid_g_co2_per_kwh: Decimal | None = None,
) -> dict | None:
    """What the network's plant produced over the local dates ``[start, end)``, per unit
    kind, with emissions per MWh produced (EED Annex IX: fuel mix and emissions); None
    when no unit produced heat then.  One aggregate query.

    * ``kinds``: heat per unit kind (storage left out: it shifts heat, it does not make
      it) and its share in % to one decimal, adding up to 100.0 (:func:`shares_percent`),
      largest first;
    * ``first_on`` / ``last_on``: the local days the hourly data covers within the range;
    * electricity of heat pumps and electric boilers as metered; hours without a meter
      value at the unit's measured ratio of electricity to heat over the range (an
      electric boiler that has none at its efficiency); ``electricity_estimated_mwh`` says
      how much of it that is.  Fuel boilers the same with fuel, at the unit's
      ``co2_t_per_mwh_fuel``;
    * ``emissions_kg_per_mwh``: ``(electricity MWh × grid_g_co2_per_kwh + fuel CO₂ kg) /
      heat MWh`` (g/kWh = kg/MWh), whole kg, half up; None with ``emissions_missing``
      naming why when electricity is used but no grid factor is given, or a heat pump's
      electricity is metered in none of its hours.
    """
    from django.db.models import Count, Max, Min, Sum

    from heatutility.timeutil import local_midnight
    from tariffs.models import UnitHour

    if end <= start:
        return None
    zone = ZoneInfo(time_zone)
    el_metered = Q(electricity_mwh__gt=0)
    fuel_metered = Q(fuel_mwh__gt=0)
    producing = Q(heat_mwh__gt=0)
    rows = list(
        UnitHour.objects.filter(
            unit__plant__network_id=network_id,
            unit__kind__in=_PRODUCING_KINDS,
            hour_start__gte=local_midnight(start, zone),
            hour_start__lt=local_midnight(end, zone),
        )
        .values("unit_id", "unit__kind", "unit__boiler_efficiency", "unit__co2_t_per_mwh_fuel")
        .annotate(
            hours=Count("id"),
            first_at=Min("hour_start"),
            last_at=Max("hour_start"),
            heat=Sum("heat_mwh"),
            el=Sum("electricity_mwh", filter=el_metered),
            el_heat=Sum("heat_mwh", filter=el_metered),
            el_gap_heat=Sum("heat_mwh", filter=producing & ~el_metered),
            fuel=Sum("fuel_mwh", filter=fuel_metered),
            fuel_heat=Sum("heat_mwh", filter=fuel_metered),
            fuel_gap_heat=Sum("heat_mwh", filter=producing & ~fuel_metered),
        )
        .order_by("unit_id")
    )
    zero = Decimal(0)
    heat_by_kind: dict[str, Decimal] = {}
    electricity = estimated = fuel_co2_kg = zero
    unmetered_heat_pump = False
    for row in rows:
        kind, heat = row["unit__kind"], row["heat"] or zero
        heat_by_kind[kind] = heat_by_kind.get(kind, zero) + heat
        if kind in _ELECTRIC_KINDS:
            used, gap_heat = row["el"] or zero, row["el_gap_heat"] or zero
            metered_heat = row["el_heat"] or zero
            if gap_heat and used and metered_heat:
                gap = gap_heat * used / metered_heat
            elif gap_heat and kind == "electric_boiler":
                gap = gap_heat / row["unit__boiler_efficiency"]
            elif gap_heat:  # a heat pump's COP cannot be told from its heat alone
                unmetered_heat_pump, gap = True, zero
            else:
                gap = zero
            electricity += used + gap
            estimated += gap
        else:
            used, gap_heat = row["fuel"] or zero, row["fuel_gap_heat"] or zero
            metered_heat = row["fuel_heat"] or zero
            if gap_heat and used and metered_heat:
                used += gap_heat * used / metered_heat
            elif gap_heat:
                used += gap_heat / row["unit__boiler_efficiency"]
            fuel_co2_kg += used * row["unit__co2_t_per_mwh_fuel"] * 1000
    heat_total = sum(heat_by_kind.values(), zero)
    if heat_total <= 0:
        return None
    percent = shares_percent(heat_by_kind)
    labels = dict(PlantUnit.Kind.choices)
    kinds = [
        {"kind": kind, "label": labels.get(kind, kind), "heat_mwh": heat, "percent": percent[kind]}
        for kind, heat in sorted(heat_by_kind.items(), key=lambda item: (-item[1], item[0]))
        if heat > 0
    ]
    missing = None
    if unmetered_heat_pump:
        missing = "a heat pump's electricity use is not metered"
    elif electricity > 0 and grid_g_co2_per_kwh is None:
        missing = "no emission factor for grid electricity is configured"
    emissions = None
    if missing is None:
        kg = electricity * (grid_g_co2_per_kwh or zero) + fuel_co2_kg
        emissions = (kg / heat_total).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    hour = dt.timedelta(hours=1)
    return {
        "first_on": min(r["first_at"] for r in rows).astimezone(zone).date(),
        "last_on": (max(r["last_at"] for r in rows) + hour - dt.timedelta(seconds=1))
        .astimezone(zone)
        .date(),
        "heat_mwh": heat_total,
        "kinds": kinds,
        "electricity_mwh": electricity,
        "electricity_estimated_mwh": estimated,
        "fuel_co2_kg": fuel_co2_kg,
        "grid_g_co2_per_kwh": grid_g_co2_per_kwh,
        "emissions_kg_per_mwh": emissions,
        "emissions_missing": missing,
    }
