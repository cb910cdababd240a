"""Boundary registers: a connection's continuous register at local midnights.

The connection register is cumulative since its first meter:
``offset(installation) + reading − initial + rollovers × wrap``, for energy and volume
alike (each with its own wrap: register maximum + resolution, the step from the largest
value to 0), where the offset adds each earlier installation's
``final − initial + rollovers × wrap`` (DOMAIN.md §2: consumption across an exchange =
old final − old previous read + new read − new initial).  Installation and removal
registers enter the series as points, so interpolation works across exchanges.  A
rollover counts one wrap, or as many as staff stated when they accepted an ambiguous one
(``ReadingIssue.wraps``); a decrease staff declared a rollover (a ``register_decrease``
accepted with a wrap count) counts as a rollover of that many wraps.

At a boundary instant T (00:00 local):
1. a usable read (valid/edited/estimated) exactly at T → ``actual`` / ``reading``;
2. reads on both sides → linear interpolation in time → ``estimated`` / ``interpolation``;
3. no later point and the last meter removed (none installed since) → the register at
   removal: no meter, no consumption (as between a removal and a later installation)
   → ``estimated`` / ``removal_register``;
4. no later read → continued from the latest boundary after the last read (computed
   earlier in the same call, or stored and not withdrawn: what billing saw), else from
   the last read, by last year's consumption over that same span, scaled by its degree
   days (this span / last year's) when both are loaded, never negative →
   ``estimated`` / ``last_year_degree_days`` (``last_year`` without degree days).
   Registers are cumulative: a boundary is never below an earlier one, whichever call
   estimated it, nor above a later one stored before it (a day estimated after the
   month start that follows it) (each month start extrapolated from the last read on its own degree-day
   ratio could fall: 1 June 21,200 kWh, 1 July 20,857 kWh);
5. otherwise nothing: never a silent invention.
Estimates are replaced in place when reads arrive (``updated_at`` changes; billing's
``boundary_registers_updated_since`` picks that up).  ``edited`` values are left alone.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection as db
from django.db import transaction
from django.db.models import OuterRef, Q, Subquery

from customers.models import ServiceConnection
from heatutility.timeutil import local_midnight
from metering.models import (
    BoundaryRegister,
    MeterInstallation,
    Reading,
    ReadingIssue,
)
from metering.selectors import degree_days_total
from metering.vee.rules import (
    AMBIGUOUS_ROLLOVER_CODES,
    DECREASE,
    ROLLOVER_CODES,
    installed_then,
    is_rollover,
)

USABLE = ("valid", "edited", "estimated")
ZERO = Decimal(0)
E6, V4 = Decimal("0.000001"), Decimal("0.0001")


@dataclass(frozen=True)
class Point:
    at: dt.datetime
    energy: Decimal
    volume: Decimal
    flow_m3c: Decimal | None
    return_m3c: Decimal | None
    is_read: bool
    is_removal: bool = False  # the final register of a meter taken out


@dataclass(frozen=True)
class _Probe:
    """Nearest usable reads of one installation around instant ``at``."""

    meter_id: int
    lo: dt.datetime  # installed_at
    hi: dt.datetime | None  # removed_at
    at: dt.datetime


_NEAREST_SQL = """
SELECT DISTINCT n.meter_id, n.read_at, n.energy_kwh, n.volume_m3, n.flow_temp_m3c, n.return_temp_m3c
FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[])
     AS p(meter_id, lo, hi, at)
CROSS JOIN LATERAL (
  (SELECT r.meter_id, r.read_at, r.energy_kwh, r.volume_m3, r.flow_temp_m3c, r.return_temp_m3c
     FROM metering_reading r
    WHERE r.meter_id = p.meter_id AND r.status = ANY(%s)
      AND r.read_at >= p.lo AND r.read_at < p.at
      AND r.read_at <= coalesce(p.hi, 'infinity'::timestamptz)
    ORDER BY r.read_at DESC LIMIT 1)
  UNION ALL
  (SELECT r.meter_id, r.read_at, r.energy_kwh, r.volume_m3, r.flow_temp_m3c, r.return_temp_m3c
     FROM metering_reading r
    WHERE r.meter_id = p.meter_id AND r.status = ANY(%s)
      AND r.read_at >= greatest(p.lo, p.at)
      AND r.read_at <= coalesce(p.hi, 'infinity'::timestamptz)
    ORDER BY r.read_at LIMIT 1)
) n
"""
_READ_COLUMNS = (
    "meter_id",
    "read_at",
    "energy_kwh",
    "volume_m3",
    "flow_temp_m3c",
    "return_temp_m3c",
)
_PROBES_PER_QUERY = 200


def _nearest_reads(probes: set[_Probe]) -> dict[int, dict[dt.datetime, tuple]]:
    """For each probe, the last usable read before ``at`` and the first at or after it,
    within the installation: {meter_id: {read_at: (energy, volume, flow_m3c, return_m3c)}}.

    Each lookup is a descent of the primary key (meter_id, read_at), so the cost does not
    grow with a meter's history; one statement for all probes.
    """
    found: dict[int, dict[dt.datetime, tuple]] = defaultdict(dict)
    ordered = sorted(probes, key=lambda p: (p.meter_id, p.at, p.lo))
    for i in range(0, len(ordered), _PROBES_PER_QUERY):
        chunk = ordered[i : i + _PROBES_PER_QUERY]
        if db.vendor == "postgresql":
            with db.cursor() as cursor:
                cursor.execute(
                    _NEAREST_SQL,
                    [
                        [p.meter_id for p in chunk],
                        [p.lo for p in chunk],
                        [p.hi for p in chunk],
                        [p.at for p in chunk],
                        list(USABLE),
                        list(USABLE),
                    ],
                )
                rows = cursor.fetchall()
        else:  # portable: the same two LIMIT 1 look-ups per probe, as scalar sub-queries
            match = Q()
            for p in chunk:
                reads = Reading.objects.filter(
                    meter_id=p.meter_id, status__in=USABLE, read_at__gte=p.lo
                )
                if p.hi is not None:
                    reads = reads.filter(read_at__lte=p.hi)
                before = reads.filter(read_at__lt=p.at).order_by("-read_at").values("read_at")[:1]
                after = reads.filter(read_at__gte=p.at).order_by("read_at").values("read_at")[:1]
                match |= Q(meter_id=p.meter_id, read_at=Subquery(before))
                match |= Q(meter_id=p.meter_id, read_at=Subquery(after))
            rows = Reading.objects.filter(match).values_list(*_READ_COLUMNS)
        for meter_id, read_at, *values in rows:
            found[meter_id][read_at] = tuple(values)
    return found


# the register (0 energy, 1 volume: the order of ``_series``) of an ambiguous rollover
_REGISTER_OF = {"rollover_ambiguous": 0, "volume_rollover_ambiguous": 1}

# {(meter_id, register): {read_at: wraps}}: wrap counts staff stated (register as above)
Wraps = dict[tuple[int, int], dict[dt.datetime, int]]
# {meter_id: {read_at: wraps}}: decreases staff declared rollovers, with their wraps
Declared = dict[int, dict[dt.datetime, int]]


def _rollover_hints(
    installs: list[MeterInstallation],
) -> tuple[dict[int, set[dt.datetime]], Wraps, Declared]:
    """Where VEE found a rollover (its accepted ``rollover`` / ``volume_rollover``
    findings): {meter_id: {read_at}}; the wraps staff stated where they accepted an
    ambiguous one with a count (``ReadingIssue.wraps``), also hints; and the decreases
    staff declared rollovers (``register_decrease`` accepted with a count), also hints.

    A meter rolls over a handful of times in its life, so these few instants replace a
    scan of its history.  They are only hints: the rollover is counted where the series
    of usable reads shows it (the reads on both sides of the hint are loaded), so a
    finding on a reading that was later rejected counts only if the usable reads agree.
    """
    hints: dict[int, set[dt.datetime]] = defaultdict(set)
    stated: Wraps = defaultdict(dict)
    declared: Declared = defaultdict(dict)
    if installs:
        for meter_id, read_at, code, wraps in ReadingIssue.objects.filter(
            Q(code__in=ROLLOVER_CODES)
            | Q(
                code__in=(*AMBIGUOUS_ROLLOVER_CODES, DECREASE),
                state=ReadingIssue.State.ACCEPTED,
                wraps__isnull=False,
            ),
            meter_id__in={i.meter_id for i in installs},
        ).values_list("meter_id", "read_at", "code", "wraps"):
            hints[meter_id].add(read_at)
            if code in _REGISTER_OF:
                stated[(meter_id, _REGISTER_OF[code])][read_at] = wraps
            elif code == DECREASE:
                declared[meter_id][read_at] = wraps
    return hints, stated, declared


def _probes(installs: list[MeterInstallation], instants: set[dt.datetime]) -> set[_Probe]:
    return {
        _Probe(i.meter_id, i.installed_at, i.removed_at, at) for i in installs for at in instants
    }


def _hint_probes(
    installs: list[MeterInstallation], hints: dict[int, set[dt.datetime]]
) -> set[_Probe]:
    return {
        _Probe(i.meter_id, i.installed_at, i.removed_at, at)
        for i in installs
        for at in hints.get(i.meter_id, ())
        if installed_then(i.installed_at, i.removed_at, at)
    }


def _exchange_probes(installs: list[MeterInstallation]) -> set[_Probe]:
    """The last read before each removal and the first read of each later meter: a
    rollover between the last read and the final register is only seen there, and the
    m³·°C registers continue from one meter to the next through them where the
    installations record no m³·°C registers at the exchange (the first meter keeps its
    own, so it needs no anchor)."""
    later = sorted(installs, key=lambda i: i.installed_at)[1:]
    return {_Probe(i.meter_id, i.installed_at, i.removed_at, i.installed_at) for i in later} | {
        _Probe(i.meter_id, i.installed_at, i.removed_at, i.removed_at)
        for i in installs
        if i.removed_at is not None
    }


def _rollovers(
    steps: list[tuple[dt.datetime, Decimal]],
    register_max: Decimal,
    declared: dict[dt.datetime, int] | None = None,
) -> list[dt.datetime]:
    """Instants where ``steps`` (time-ordered register values, the initial register
    first) roll over: one pass over consecutive values, VEE's rule (:func:`is_rollover`),
    or a fall at a read where staff declared one (``declared``)."""
    declared = declared or {}
    return [
        at
        for (_, before), (at, after) in itertools.pairwise(steps)
        if after < before and (at in declared or is_rollover(before, after, register_max))
    ]


def _counted(instants: list[dt.datetime], wraps: dict[dt.datetime, int]) -> list[dt.datetime]:
    """Rollover ``instants`` with each one repeated as often as staff said the register
    wrapped there (once where they said nothing), so ``bisect`` and ``len`` count wraps."""
    if not wraps:
        return instants
    return [at for at in instants for _ in range(wraps.get(at, 1))]


def _series(
    *,
    installs: list[MeterInstallation],
    reads: dict[int, dict[dt.datetime, tuple]],
    wraps: Wraps | None = None,
    declared: Declared | None = None,
) -> list[Point]:
    """Continuous register points of a connection from the reads that were loaded.

    ``reads`` holds the nearest usable reads on both sides of every probe (boundaries,
    VEE's rollover findings, exchanges), so :func:`value_at` finds the same neighbours
    here as in the connection's full series.  Rollovers are counted in one pass over the
    consecutive loaded values of each installation (initial register, reads, final
    register), whether VEE has checked those reads or not: a rollover between two of them
    counts at the later one.  Two loaded reads may lie weeks apart; the pass assumes the
    register wrapped once between them and that the decrease still falls in VEE's
    rollover band, unless staff stated the count where VEE found the interval long
    enough for more (``wraps``, from accepted ambiguous rollovers: that many wraps at
    that read).  A rollover VEE has already found has the reads on both sides of it
    loaded (its hint), so such a rollover is counted on a small register too.  So is a
    decrease staff declared a rollover (``declared``: {meter: {read: wraps}}): a register
    that falls at that read counts that many wraps there, whatever the band says.
    """
    wraps = wraps or {}
    declared = declared or {}
    points: list[Point] = []
    offset_e = offset_v = Decimal(0)
    # m³·°C registers: the first meter's as they are; each later meter's continue from
    # where the previous one's left off at its removal, anchored at its initial m³·°C
    # registers where the installation records them, else at its first read.  A meter's
    # end is its final m³·°C registers where the removal records them, else its last
    # read: then the water between that read and the removal (and between an
    # installation and a first read used as the anchor) is not weighted.
    temp_end: tuple[Decimal | None, Decimal | None] | None = None
    for inst in sorted(installs, key=lambda i: i.installed_at):
        in_range = sorted(
            (at, values)
            for at, values in reads.get(inst.meter_id, {}).items()
            if installed_then(inst.installed_at, inst.removed_at, at)
        )
        meter = inst.meter
        wrap_e, wrap_v = meter.register_wrap_kwh, meter.volume_register_wrap_m3
        stated_here = declared.get(inst.meter_id, {})
        rolled_e, rolled_v = (
            _counted(
                _rollovers(
                    [(inst.installed_at, initial)]
                    + [(at, values[index]) for at, values in in_range]
                    + ([] if inst.removed_at is None else [(inst.removed_at, final)]),
                    maximum,
                    stated_here,
                ),
                {**stated_here, **wraps.get((inst.meter_id, index), {})},
            )
            for index, initial, final, maximum in (
                (0, inst.initial_energy_kwh, inst.final_energy_kwh, meter.register_max_kwh),
                (1, inst.initial_volume_m3, inst.final_volume_m3, meter.volume_register_max),
            )
        )
        initial_temps = (inst.initial_flow_temp_m3c, inst.initial_return_temp_m3c)
        if temp_end is None:  # the first meter: its own m³·°C registers
            shift: tuple[Decimal | None, Decimal | None] = (ZERO, ZERO)
        else:
            first = in_range[0][1][2:] if in_range else (None, None)
            anchor = tuple(
                read if given is None else given
                for given, read in zip(initial_temps, first, strict=True)
            )
            shift = tuple(
                None if end is None or start is None else end - start
                for end, start in zip(temp_end, anchor, strict=True)
            )
        # the connection's m³·°C registers at the installation (None: not known there)
        continuous: tuple[Decimal | None, Decimal | None] = tuple(
            None if given is None or by is None else given + by
            for given, by in zip(initial_temps, shift, strict=True)
        )
        points.append(
            Point(
                inst.installed_at,
                offset_e,
                offset_v,
                *(continuous if temp_end is None else temp_end),
                False,
            )
        )
        for at, (energy, volume, f3, r3) in in_range:
            continuous = (
                None if f3 is None or shift[0] is None else f3 + shift[0],
                None if r3 is None or shift[1] is None else r3 + shift[1],
            )
            points.append(
                Point(
                    at,
                    offset_e
                    + energy
                    - inst.initial_energy_kwh
                    + wrap_e * bisect.bisect_right(rolled_e, at),
                    offset_v
                    + volume
                    - inst.initial_volume_m3
                    + wrap_v * bisect.bisect_right(rolled_v, at),
                    *continuous,
                    True,
                )
            )
        temp_end = continuous
        if inst.removed_at is not None:
            # rollovers up to the final register (one after the last read counts too)
            offset_e += inst.final_energy_kwh - inst.initial_energy_kwh + wrap_e * len(rolled_e)
            offset_v += inst.final_volume_m3 - inst.initial_volume_m3 + wrap_v * len(rolled_v)
            final_temps = (inst.final_flow_temp_m3c, inst.final_return_temp_m3c)
            temp_end = tuple(
                last if given is None else (None if by is None else given + by)
                for given, by, last in zip(final_temps, shift, temp_end, strict=True)
            )
            points.append(
                Point(inst.removed_at, offset_e, offset_v, *temp_end, False, is_removal=True)
            )
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
    *,
    points: list[Point],
    on: dt.date,
    zone: str,
    network_id: int,
    base: Point | None = None,
    ceiling: Point | None = None,
) -> tuple[Point, str, str] | None:
    """(value, status, method) for 00:00 local of ``on``, or None if nothing supports one.

    ``base``: the connection's latest boundary before ``on`` (estimated before it in the
    same call, or stored and not withdrawn), at its local midnight.  With no later read,
    the estimate continues from it where it lies after the last read, so the register
    never falls from one boundary to the next.  ``ceiling``: the connection's earliest
    stored boundary after ``on`` (a day estimated after a later one was stored, e.g. a
    back-dated move-in mid-month): the estimate stays at or below it, so the register
    does not fall after it either."""
    at = local_midnight(on, zone)
    found = value_at(points, at)
    if found is not None:
        point, method = found
        return point, ("actual" if method == "reading" else "estimated"), method
    reads = [p for p in points if p.at < at]
    if not reads:
        return None
    last = reads[-1]
    if last.is_removal:  # no meter since: the register stays where the last one ended
        return (
            Point(at, last.energy, last.volume, last.flow_m3c, last.return_m3c, False),
            "estimated",
            "removal_register",
        )
    if base is not None and last.at < base.at < at:  # a boundary: at a local midnight
        start = base
        start_day = base.at.astimezone(ZoneInfo(zone)).date()
        start_year_earlier = local_midnight(_year_earlier(start_day), zone)
    else:
        start = last
        start_day = last.at.astimezone(ZoneInfo(zone)).date()
        start_year_earlier = _instant_year_earlier(last.at)
    earlier_from = value_at(points, start_year_earlier)
    earlier_to = value_at(points, local_midnight(_year_earlier(on), zone))
    if earlier_from is None or earlier_to is None:
        return None
    consumption_e = earlier_to[0].energy - earlier_from[0].energy
    consumption_v = earlier_to[0].volume - earlier_from[0].volume
    method = "last_year"
    dd_now = degree_days_total(network_id=network_id, start=start_day, end=on)
    dd_then = degree_days_total(
        network_id=network_id, start=_year_earlier(start_day), end=_year_earlier(on)
    )
    if dd_now is not None and dd_then:
        factor = dd_now / dd_then
        consumption_e, consumption_v = consumption_e * factor, consumption_v * factor
        method = "last_year_degree_days"
    energy = start.energy + max(consumption_e, Decimal(0))
    volume = start.volume + max(consumption_v, Decimal(0))
    if ceiling is not None and ceiling.at > at:
        energy = max(start.energy, min(energy, ceiling.energy))
        volume = max(start.volume, min(volume, ceiling.volume))
    return Point(at, energy, volume, None, None, False), "estimated", method


def _boundary_point(register: BoundaryRegister, zone: str) -> Point:
    return Point(
        local_midnight(register.on, zone),
        register.energy_kwh,
        register.volume_m3,
        register.flow_temp_m3c,
        register.return_temp_m3c,
        False,
    )


def _stored_neighbours(dates: Sequence[dt.date]) -> dict[str, Subquery]:
    """For each of ``dates``, the connection's latest boundary before it and earliest
    after it that billing sees (not withdrawn), as annotations of a connection query:
    one descent of the (connection, on) key each.  An estimate with no later read
    continues from the one before when it lies after the last read (the month before,
    stored by the call that billed it) and stays at or below the one after
    (:func:`estimate`); one of ``dates`` recomputed in the same call stands in for its
    stored value, and its neighbours are loaded too."""
    stored = BoundaryRegister.objects.filter(connection_id=OuterRef("pk")).exclude(
        status=BoundaryRegister.Status.WITHDRAWN
    )
    neighbours = {}
    for i, day in enumerate(dates):
        neighbours[f"_stored_before_{i}"] = Subquery(
            stored.filter(on__lt=day).order_by("-on").values("pk")[:1]
        )
        neighbours[f"_stored_after_{i}"] = Subquery(
            stored.filter(on__gt=day).order_by("on").values("pk")[:1]
        )
    return neighbours


def boundary_registers_ensure(
    *, connection_ids: Sequence[int], dates: Sequence[dt.date], refresh: bool = False
) -> None:
    """Make sure a value exists for each (connection, date), estimating where none was read.

    Idempotent.  With ``refresh``, existing estimated/actual values are recomputed too
    (after new reads arrived); staff-edited values are never overwritten.

    Only the reads an estimate can use are loaded, for all connections at once: the
    nearest usable read before and after each boundary and its date a year earlier, then
    (where no later read exists) around the last read a year earlier, and a year before
    the stored boundary the estimate continues from.  A meter's history (8,760 hourly
    reads a year) is never read whole; of the stored boundaries, those of ``dates`` and
    the latest before and the earliest after each of them (with the connections, one
    descent each).

    Dates are estimated in order, each extrapolated one continuing from the boundary
    before it (:func:`estimate`), so a call that estimates July after one that stored
    June continues from June's value, as one call estimating both does.

    One caller at a time works on a connection: its row is locked (``FOR NO KEY
    UPDATE``, in id order, as installations lock it first) before anything is read, in
    a transaction that ends with the caller's.  A second caller (a billing chunk beside
    the revalidation after an exchange) waits, then reads what the first stored and the
    reads it committed: it neither inserts a value stored meanwhile (the unique
    (connection, day) constraint failed it) nor overwrites a newer value with one
    computed from reads it could not see yet.
    """
    with transaction.atomic():
        ids = sorted({int(c) for c in connection_ids})
        list(
            ServiceConnection.objects.select_for_update(no_key=True)
            .filter(pk__in=ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        _ensure(connection_ids=ids, dates=dates, refresh=refresh)


def _ensure(*, connection_ids: Sequence[int], dates: Sequence[dt.date], refresh: bool) -> None:
    """:func:`boundary_registers_ensure` of connections locked by the caller."""
    dates = sorted(set(dates))
    neighbours = _stored_neighbours(dates)
    connections = list(
        ServiceConnection.objects.filter(pk__in=set(connection_ids))
        .select_related("network")
        .annotate(**neighbours)
    )
    neighbour_pks = {getattr(c, name) for c in connections for name in neighbours} - {None}
    existing = defaultdict(dict)
    # the stored registers billing sees: where an estimate continues from, or stays below
    stored_of: dict[int, dict[dt.date, BoundaryRegister]] = defaultdict(dict)
    for register in BoundaryRegister.objects.filter(
        Q(connection_id__in=set(connection_ids), on__in=dates) | Q(pk__in=neighbour_pks)
    ):
        if register.on in dates:
            existing[register.connection_id][register.on] = register
        if register.status != BoundaryRegister.Status.WITHDRAWN:
            stored_of[register.connection_id][register.on] = register
    work = {}
    for connection in connections:
        have = existing[connection.pk]
        wanted = [
            d
            for d in dates
            if d not in have
            or have[d].status == BoundaryRegister.Status.WITHDRAWN
            or (refresh and have[d].status != BoundaryRegister.Status.EDITED)
        ]
        if wanted:
            work[connection.pk] = (connection, wanted)
    if not work:
        return
    installs_of: dict[int, list[MeterInstallation]] = defaultdict(list)
    for inst in (
        MeterInstallation.objects.filter(unit__connection_id__in=work)
        .select_related("meter", "unit")
        .order_by("installed_at")
    ):
        installs_of[inst.unit.connection_id].append(inst)

    # round 1: around each boundary, the same midnight a year earlier and VEE's rollovers
    hints, wraps, declared = _rollover_hints(
        [i for installs in installs_of.values() for i in installs]
    )
    probes_of: dict[int, set[_Probe]] = {}
    for pk, (connection, wanted) in work.items():
        zone = connection.network.time_zone
        instants = {local_midnight(on, zone) for on in wanted} | {
            local_midnight(_year_earlier(on), zone) for on in wanted
        }
        probes_of[pk] = (
            _probes(installs_of[pk], instants)
            | _hint_probes(installs_of[pk], hints)
            | _exchange_probes(installs_of[pk])
        )
    reads = _nearest_reads(set().union(*probes_of.values()))
    # round 2: no later read → last year's consumption from a year before the last read,
    # or before a stored boundary after it that an estimate continues from
    more_of: dict[int, set[_Probe]] = {}
    for pk, (connection, wanted) in work.items():
        zone = connection.network.time_zone
        points = _series(installs=installs_of[pk], reads=reads, wraps=wraps, declared=declared)
        instants = set()
        for on in wanted:
            at = local_midnight(on, zone)
            if value_at(points, at) is None:
                earlier = [p for p in points if p.at < at]
                if earlier and not earlier[-1].is_removal:
                    instants.add(_instant_year_earlier(earlier[-1].at))
                    instants |= {
                        local_midnight(_year_earlier(day), zone)
                        for day in stored_of[pk]
                        if day < on
                        and day not in wanted
                        and local_midnight(day, zone) > earlier[-1].at
                    }
        more_of[pk] = _probes(installs_of[pk], instants) - probes_of[pk]
        probes_of[pk] |= more_of[pk]
    more = set().union(*more_of.values())
    if more:
        for meter_id, found in _nearest_reads(more).items():
            reads[meter_id].update(found)

    for pk, (connection, wanted) in work.items():
        have = existing[pk]
        zone = connection.network.time_zone
        points = _series(installs=installs_of[pk], reads=reads, wraps=wraps, declared=declared)
        # the boundaries an estimate may continue from: those stored and not recomputed
        # here, then each one computed here, in date order
        boundaries = {
            on: _boundary_point(register, zone)
            for on, register in stored_of[pk].items()
            if on not in wanted
        }
        for on in wanted:
            earlier = [day for day in boundaries if day < on]
            later = [day for day in boundaries if day > on]
            result = estimate(
                points=points,
                on=on,
                zone=zone,
                network_id=connection.network_id,
                base=boundaries[max(earlier)] if earlier else None,
                ceiling=boundaries[min(later)] if later else None,
            )
            if result is None:
                current = have.get(on)
                if current is not None and current.status in (
                    BoundaryRegister.Status.ACTUAL,
                    BoundaryRegister.Status.ESTIMATED,
                ):
                    # its reads were rejected and nothing supports an estimate: kept
                    # for the record, but no longer billed; the new updated_at makes
                    # billing re-rate the bills that used it
                    current.status = BoundaryRegister.Status.WITHDRAWN
                    current.method = "no usable read"
                    current.save()
                continue
            value, status, method = result
            fields = {
                "energy_kwh": value.energy.quantize(E6),
                "volume_m3": value.volume.quantize(V4),
                "flow_temp_m3c": None if value.flow_m3c is None else value.flow_m3c.quantize(V4),
                "return_temp_m3c": None
                if value.return_m3c is None
                else value.return_m3c.quantize(V4),
                "status": status,
                "method": method,
            }
            boundaries[on] = Point(
                value.at,
                fields["energy_kwh"],
                fields["volume_m3"],
                fields["flow_temp_m3c"],
                fields["return_temp_m3c"],
                False,
            )
            current = have.get(on)
            if current is None:
                BoundaryRegister.objects.create(connection=connection, on=on, **fields)
            elif any(getattr(current, k) != v for k, v in fields.items()):
                for key, val in fields.items():
                    setattr(current, key, val)
                current.save()
