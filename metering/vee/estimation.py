"""Boundary registers: a connection's continuous register at local midnights.

The connection register is cumulative since its first meter:
``offset(installation) + reading − initial + rollovers × register max``, for energy and
volume alike (each with its own maximum), where the offset adds each earlier
installation's ``final − initial + rollovers × register max`` (DOMAIN.md §2: consumption across an
exchange = old final − old previous read + new read − new initial).  Installation and
removal registers enter the series as points, so interpolation works across exchanges.

At a boundary instant T (00:00 local):
1. a usable read (valid/edited/estimated) exactly at T → ``actual`` / ``reading``;
2. reads on both sides → linear interpolation in time → ``estimated`` / ``interpolation``;
3. no later read → consumption of the same dates one year earlier, scaled by degree days
   (this period / last year's) when both are loaded → ``estimated`` /
   ``last_year_degree_days`` (``last_year`` without degree days);
4. otherwise nothing: never a silent invention.
Estimates are replaced in place when reads arrive (``updated_at`` changes; billing's
``boundary_registers_updated_since`` picks that up).  ``edited`` values are left alone.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Sum

from customers.models import ServiceConnection
from heatutility.timeutil import local_midnight
from metering.models import BoundaryRegister, DegreeDay, MeterInstallation, Reading
from metering.vee.rules import is_rollover

USABLE = ("valid", "edited", "estimated")
E6, V4 = Decimal("0.000001"), Decimal("0.0001")


@dataclass(frozen=True)
class Point:
    at: dt.datetime
    energy: Decimal
    volume: Decimal
    flow_m3c: Decimal | None
    return_m3c: Decimal | None
    is_read: bool


def connection_series(*, connection_id: int) -> list[Point]:
    """Continuous register points of a connection, in time order."""
    installations = list(
        MeterInstallation.objects.filter(unit__connection_id=connection_id)
        .select_related("meter")
        .order_by("installed_at")
    )
    points: list[Point] = []
    offset_e = offset_v = Decimal(0)
    for inst in installations:
        reads = Reading.objects.filter(
            meter_id=inst.meter_id, read_at__gte=inst.installed_at, status__in=USABLE
        )
        if inst.removed_at:
            reads = reads.filter(read_at__lte=inst.removed_at)
        max_kwh, max_m3 = inst.meter.register_max_kwh, inst.meter.volume_register_max
        points.append(Point(inst.installed_at, offset_e, offset_v, None, None, False))
        rollovers = rollovers_v = Decimal(0)
        previous, previous_v = inst.initial_energy_kwh, inst.initial_volume_m3
        for at, energy, volume, f3, r3 in reads.order_by("read_at").values_list(
            "read_at", "energy_kwh", "volume_m3", "flow_temp_m3c", "return_temp_m3c"
        ):
            if energy < previous and is_rollover(previous, energy, max_kwh):
                rollovers += max_kwh
            if volume < previous_v and is_rollover(previous_v, volume, max_m3):
                rollovers_v += max_m3
            previous, previous_v = energy, volume
            points.append(
                Point(
                    at,
                    offset_e + energy - inst.initial_energy_kwh + rollovers,
                    offset_v + volume - inst.initial_volume_m3 + rollovers_v,
                    f3,
                    r3,
                    True,
                )
            )
        if inst.removed_at is not None:
            offset_e += inst.final_energy_kwh - inst.initial_energy_kwh + rollovers
            offset_v += inst.final_volume_m3 - inst.initial_volume_m3 + rollovers_v
            points.append(Point(inst.removed_at, offset_e, offset_v, None, None, False))
    points.sort(key=lambda p: p.at)
    return points


def _lerp(a: Decimal | None, b: Decimal | None, share: Decimal) -> Decimal | None:
    if a is None or b is None:
        return None
    return a + (b - a) * share


def value_at(points: list[Point], at: dt.datetime) -> tuple[Point, str] | None:
    """Register at ``at`` from reads alone: (value, method) or None."""
    times = [p.at for p in points]
    i = bisect.bisect_left(times, at)
    if i < len(points) and points[i].at == at:
        return points[i], "reading" if points[i].is_read else "installation_register"
    if 0 < i < len(points):
        a, b = points[i - 1], points[i]
        share = Decimal((at - a.at).total_seconds()) / Decimal((b.at - a.at).total_seconds())
        return (
            Point(
                at,
                a.energy + (b.energy - a.energy) * share,
                a.volume + (b.volume - a.volume) * share,
                _lerp(a.flow_m3c, b.flow_m3c, share),
                _lerp(a.return_m3c, b.return_m3c, share),
                False,
            ),
            "interpolation",
        )
    return None


def _degree_days(network_id: int, start: dt.date, end: dt.date) -> Decimal | None:
    days = (end - start).days
    rows = DegreeDay.objects.filter(network_id=network_id, on__gte=start, on__lt=end)
    if days <= 0 or rows.count() != days:
        return None
    return rows.aggregate(total=Sum("degree_days"))["total"]


def _instant_year_earlier(at: dt.datetime) -> dt.datetime:
    try:
        return at.replace(year=at.year - 1)
    except ValueError:  # 29 February
        return at.replace(year=at.year - 1, day=28)


def _year_earlier(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def estimate(
    *, points: list[Point], on: dt.date, zone: str, network_id: int
) -> tuple[Point, str, str] | None:
    """(value, status, method) for 00:00 local of ``on``, or None if nothing supports one."""
    at = local_midnight(on, zone)
    found = value_at(points, at)
    if found is not None:
        point, method = found
        return point, ("actual" if method == "reading" else "estimated"), method
    reads = [p for p in points if p.at < at]
    if not reads:
        return None
    last = reads[-1]
    last_day = last.at.astimezone(ZoneInfo(zone)).date()
    earlier_from = value_at(points, _instant_year_earlier(last.at))
    earlier_to = value_at(points, local_midnight(_year_earlier(on), zone))
    if earlier_from is None or earlier_to is None:
        return None
    consumption_e = earlier_to[0].energy - earlier_from[0].energy
    consumption_v = earlier_to[0].volume - earlier_from[0].volume
    method = "last_year"
    dd_now = _degree_days(network_id, last_day, on)
    dd_then = _degree_days(network_id, _year_earlier(last_day), _year_earlier(on))
    if dd_now is not None and dd_then:
        factor = dd_now / dd_then
        consumption_e, consumption_v = consumption_e * factor, consumption_v * factor
        method = "last_year_degree_days"
    value = Point(
        at,
        last.energy + max(consumption_e, Decimal(0)),
        last.volume + max(consumption_v, Decimal(0)),
        None,
        None,
        False,
    )
    return value, "estimated", method


def boundary_registers_ensure(
    *, connection_ids: Sequence[int], dates: Sequence[dt.date], refresh: bool = False
) -> None:
    """Make sure a value exists for each (connection, date), estimating where none was read.

    Idempotent.  With ``refresh``, existing estimated/actual values are recomputed too
    (after new reads arrived); staff-edited values are never overwritten.
    """
    dates = sorted(set(dates))
    connections = ServiceConnection.objects.filter(pk__in=set(connection_ids)).select_related(
        "network"
    )
    existing = defaultdict(dict)
    for register in BoundaryRegister.objects.filter(
        connection_id__in=set(connection_ids), on__in=dates
    ):
        existing[register.connection_id][register.on] = register
    for connection in connections:
        have = existing[connection.pk]
        wanted = [d for d in dates if d not in have or (refresh and have[d].status != "edited")]
        if not wanted:
            continue
        points = connection_series(connection_id=connection.pk)
        with transaction.atomic():
            for on in wanted:
                result = estimate(
                    points=points,
                    on=on,
                    zone=connection.network.time_zone,
                    network_id=connection.network_id,
                )
                if result is None:
                    continue
                value, status, method = result
                fields = {
                    "energy_kwh": value.energy.quantize(E6),
                    "volume_m3": value.volume.quantize(V4),
                    "flow_temp_m3c": None
                    if value.flow_m3c is None
                    else value.flow_m3c.quantize(V4),
                    "return_temp_m3c": None
                    if value.return_m3c is None
                    else value.return_m3c.quantize(V4),
                    "status": status,
                    "method": method,
                }
                current = have.get(on)
                if current is None:
                    BoundaryRegister.objects.create(connection=connection, on=on, **fields)
                elif any(getattr(current, k) != v for k, v in fields.items()):
                    for key, val in fields.items():
                        setattr(current, key, val)
                    current.save()
