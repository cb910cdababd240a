"""Reads for customers: who is supplied where, and when."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import Q, QuerySet

from customers.models import (
    Account,
    AreaChange,
    Building,
    CapacityChange,
    Contract,
    ServiceConnection,
)
from heatutility.csvcells import csv_cell, csv_stream
from heatutility.timeutil import add_months, local_period_bounds


def contracts_active_between(
    *, network_id: int, start: dt.date, end: dt.date
) -> QuerySet[Contract]:
    """Contracts of a network that supply any day of the local range ``[start, end)``."""
    return (
        Contract.objects.filter(connection__network_id=network_id, valid_from__lt=end)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=start))
        .select_related("account", "connection", "connection__building")
    )


def capacity_on(*, connection: ServiceConnection, day: dt.date) -> Decimal:
    """The connection's contracted kW on ``day`` (see :class:`CapacityChange`)."""
    return _value_on(
        CapacityChange.objects.filter(connection=connection),
        day,
        value="capacity_kw",
        previous="previous_kw",
        current=connection.contracted_capacity_kw,
    )


def _value_on(changes: QuerySet, day: dt.date, *, value: str, previous: str, current: Decimal):
    """The value of dated ``changes`` on ``day``: that of the latest change on or before
    it; before the first change, what that change replaced; with none, ``current``."""
    latest = changes.filter(valid_from__lte=day).order_by("-valid_from").first()
    if latest is not None:
        return getattr(latest, value)
    first = changes.order_by("valid_from").first()
    return current if first is None else getattr(first, previous)


def capacities_in_force(
    changes: list[tuple[dt.date, Decimal, Decimal]], default: Decimal, start: dt.date, end: dt.date
) -> tuple[Decimal, tuple[tuple[dt.date, Decimal], ...]]:
    """The kW on ``start`` and the changes strictly inside ``(start, end)``, from one
    connection's ``changes`` (valid_from, capacity_kw, previous_kw) in date order;
    ``default``: the connection's kW when it has no change (billing's chunk query)."""
    if not changes:
        return default, ()
    kw = changes[0][2]
    inside = []
    for day, capacity, _previous in changes:
        if day <= start:
            kw = capacity
        elif day < end:
            inside.append((day, capacity))
    return kw, tuple(inside)


def area_on(*, building: Building, day: dt.date) -> Decimal:
    """The building's heated m² on ``day`` (see :class:`AreaChange`)."""
    return _value_on(
        AreaChange.objects.filter(building=building),
        day,
        value="heated_area_m2",
        previous="previous_m2",
        current=building.heated_area_m2,
    )


def areas_in_force(
    changes: list[tuple[dt.date, Decimal, Decimal]], default: Decimal, start: dt.date, end: dt.date
) -> tuple[Decimal, tuple[tuple[dt.date, Decimal], ...]]:
    """The m² on ``start`` and the changes strictly inside ``(start, end)``, from one
    building's ``changes`` (valid_from, heated_area_m2, previous_m2) in date order;
    ``default``: the building's m² when it has no change.  The same walk as
    :func:`capacities_in_force`."""
    return capacities_in_force(changes, default, start, end)


def account_ids_by_number(*, network_id: int, numbers: list[str]) -> tuple[list[int], list[str]]:
    """The ids of the network's accounts with these customer numbers, and the numbers
    that are not accounts of the network (in the order given)."""
    found = dict(
        Account.objects.filter(network_id=network_id, number__in=set(numbers)).values_list(
            "number", "pk"
        )
    )
    return sorted(set(found.values())), [n for n in numbers if n not in found]


def accounts_for_user(*, user) -> QuerySet[Account]:
    """The accounts a portal user may see: only their own customer's."""
    if not user.is_authenticated:
        return Account.objects.none()
    return Account.objects.filter(customer__user=user)


@dataclass(frozen=True)
class MonthConsumption:
    month: dt.date
    energy_mwh: Decimal | None
    volume_m3: Decimal | None
    estimated: bool
    same_month_last_year_mwh: Decimal | None
    # supplied for only part of the month (moved in or out, or a connection added or
    # given up): no figure here, the bill shows the days supplied
    partial: bool = False


@dataclass(frozen=True)
class _MonthFigure:
    energy_kwh: Decimal | None
    volume_m3: Decimal | None
    estimated: bool
    partial: bool


_NO_FIGURE = _MonthFigure(None, None, estimated=False, partial=False)


def _month_figure(
    *, start: dt.date, end: dt.date, contracts: list[Contract], values: dict
) -> _MonthFigure:
    """The account's consumption in the local month ``[start, end)``, or no figure.

    A month has a figure only if every connection the account held in it is supplied
    under the account's contracts on every day of it (a renewal on the same connection,
    ``[.., 15th)`` then ``[15th, ..)``, covers the month) and has both boundary registers.
    A month held only in part is ``partial``: the overview shows no figure rather than
    part of the month as the whole; the bill shows the days supplied.
    """
    month_days = (end - start).days
    days_held: dict[int, int] = {}
    for contract in contracts:
        days = (min(contract.valid_to or end, end) - max(contract.valid_from, start)).days
        if days > 0:  # contracts on one connection never overlap (database constraint)
            days_held[contract.connection_id] = days_held.get(contract.connection_id, 0) + days
    if not days_held:
        return _NO_FIGURE
    if any(days < month_days for days in days_held.values()):
        return _MonthFigure(None, None, estimated=False, partial=True)
    energy = volume = Decimal("0")
    estimated = False
    for connection_id in days_held:
        a = values.get((connection_id, start))
        b = values.get((connection_id, end))
        if a is None or b is None:
            return _NO_FIGURE
        energy += b.energy_kwh - a.energy_kwh
        volume += b.volume_m3 - a.volume_m3
        estimated |= "estimated" in (a.status, b.status)
    return _MonthFigure(energy, volume, estimated=estimated, partial=False)


def monthly_consumption(*, account: Account, months: int, today: dt.date) -> list[MonthConsumption]:
    """Energy per complete local month over the account's contracts, newest first.

    Uses metering's boundary registers (continuous connection registers), so a month's
    consumption on a connection is the difference of two values. A month counts only if
    the account was supplied on every day of it at every connection it held then (see
    ``_month_figure``); "same month last year" follows the same rule over the account's
    own contracts only. Two queries, whatever the number of months or connections.
    """
    from metering.selectors import boundary_registers

    first_of_this_month = today.replace(day=1)
    starts = [add_months(first_of_this_month, -n) for n in range(months + 12, 0, -1)]
    boundaries = [*starts, first_of_this_month]
    contracts = list(account.contracts.all())
    if not contracts:
        return []
    frame = boundary_registers(
        connection_ids=[c.connection_id for c in contracts], dates=boundaries
    )
    values = {(row.connection_id, row.on): row for row in frame.itertuples(index=False)}

    per_month = {
        start: _month_figure(
            start=start, end=add_months(start, 1), contracts=contracts, values=values
        )
        for start in starts
    }

    result = []
    for start in reversed(starts[-months:]):
        figure = per_month[start]
        last_year = per_month.get(add_months(start, -12), _NO_FIGURE).energy_kwh
        result.append(
            MonthConsumption(
                month=start,
                energy_mwh=None if figure.energy_kwh is None else figure.energy_kwh / 1000,
                volume_m3=figure.volume_m3,
                estimated=figure.estimated,
                same_month_last_year_mwh=None if last_year is None else last_year / 1000,
                partial=figure.partial,
            )
        )
    return result


# --- The customer's own consumption data (portal download) ------------------------------

EXPORT_RESOLUTIONS = ("month", "day", "hour")
# the longest range (days) one download covers, per resolution: a year of hours
# (≈ 8,800 rows a connection), 400 days, ten years of months
EXPORT_MAX_DAYS = {"hour": 366, "day": 400, "month": 3660}
EXPORT_READING_COLUMNS = [
    "connection",
    "meter",
    "local_time",
    "utc_offset",
    "energy_kwh",
    "volume_m3",
    "flow_temp_c",
    "return_temp_c",
    "status",
]
EXPORT_MONTH_COLUMNS = [
    "connection",
    "month",
    "period_start",
    "period_end",
    "start_energy_kwh",
    "start_volume_m3",
    "start_register",
    "end_energy_kwh",
    "end_volume_m3",
    "end_register",
    "consumption_kwh",
    "consumption_m3",
]


def supply_windows(
    *, account: Account, start: dt.date, end: dt.date
) -> list[tuple[ServiceConnection, dt.date, dt.date]]:
    """The account's own supply inside the local range ``[start, end)``: per connection,
    its contract periods clipped to the range (a renewal's adjacent periods joined), by
    connection number and date.  What a customer may see of a connection's data: not the
    previous occupant's days, nor the days after their own move-out."""
    windows: list[tuple[ServiceConnection, dt.date, dt.date]] = []
    contracts = account.contracts.select_related("connection").order_by(
        "connection__number", "connection_id", "valid_from"
    )
    for contract in contracts:
        lo = max(contract.valid_from, start)
        hi = min(contract.valid_to or end, end)
        if lo >= hi:
            continue
        if windows and windows[-1][0].pk == contract.connection_id and windows[-1][2] == lo:
            windows[-1] = (windows[-1][0], windows[-1][1], hi)
        else:
            windows.append((contract.connection, lo, hi))
    return windows


def consumption_csv(
    *, account: Account, start: dt.date, end: dt.date, resolution: str, today: dt.date
) -> Iterator[str]:
    """The account's consumption data over the local dates ``[start, end)`` as CSV
    (streamed), only of its own contract periods (:func:`supply_windows`) and up to the
    end of ``today``.

    ``month``: per connection and local month (part of it where the contract starts or
    ends in it), the boundary registers at its start and end with their status (actual,
    estimated, edited) and the difference.  ``day`` / ``hour``: the meter readings as
    stored (registers, temperatures, status), the first of each local day or hour, in
    the network's local time with the UTC offset written out (a DST day has 23 or 25
    hours).  The range's length is checked by the caller (``EXPORT_MAX_DAYS``).
    """
    end = min(end, today + dt.timedelta(days=1))
    windows = supply_windows(account=account, start=start, end=end) if start < end else []
    if resolution == "month":
        return csv_stream(EXPORT_MONTH_COLUMNS, _month_rows(windows), safe=False)
    zone = ZoneInfo(account.network.time_zone)
    return csv_stream(
        EXPORT_READING_COLUMNS, _reading_rows(windows, zone=zone, by=resolution), safe=False
    )


def _month_rows(windows) -> Iterator[list]:
    from metering.selectors import BOUNDARY_COLUMNS, boundary_register_rows

    pieces = []
    for connection, lo, hi in windows:
        month = lo.replace(day=1)
        while month < hi:
            pieces.append((connection, month, max(lo, month), min(hi, add_months(month, 1))))
            month = add_months(month, 1)
    rows = boundary_register_rows(
        connection_ids=[c.pk for c, *_ in pieces],
        dates=[day for _c, _m, a, b in pieces for day in (a, b)],
    )
    at = BOUNDARY_COLUMNS.index("connection_id"), BOUNDARY_COLUMNS.index("on")
    registers = {(row[at[0]], row[at[1]]): row for row in rows}
    energy, volume, status = (
        BOUNDARY_COLUMNS.index(name) for name in ("energy_kwh", "volume_m3", "status")
    )
    for connection, month, a, b in pieces:
        first = registers.get((connection.pk, a))
        last = registers.get((connection.pk, b))
        both = first is not None and last is not None
        yield [
            csv_cell(connection.number),
            month.strftime("%Y-%m"),
            a.isoformat(),
            b.isoformat(),
            *((first[energy], first[volume], first[status]) if first else ("", "", "")),
            *((last[energy], last[volume], last[status]) if last else ("", "", "")),
            last[energy] - first[energy] if both else "",
            last[volume] - first[volume] if both else "",
        ]


def _reading_rows(windows, *, zone: ZoneInfo, by: str) -> Iterator[list]:
    from metering.selectors import connection_readings

    for connection, lo, hi in windows:
        since, until = local_period_bounds(lo, hi, zone)
        seen = None  # (meter, local day or hour) of the last row written
        for serial, read_at, energy, volume, flow, back, status in connection_readings(
            connection_id=connection.pk, since=since, until=until
        ):
            local = read_at.astimezone(zone)
            offset = local.utcoffset()
            if by == "day":
                bucket = (serial, local.date())
            else:  # the offset tells the two 02:00 hours of an autumn DST day apart
                bucket = (serial, local.replace(minute=0, second=0, microsecond=0), offset)
            if bucket == seen:
                continue
            seen = bucket
            yield [  # the offset "+01:00" as it is: not text a spreadsheet runs
                csv_cell(connection.number),
                csv_cell(serial),
                local.strftime("%Y-%m-%d %H:%M:%S"),
                _utc_offset(offset),
                energy,
                volume,
                "" if flow is None else flow,
                "" if back is None else back,
                status,
            ]


def _utc_offset(offset: dt.timedelta) -> str:
    """``+01:00`` / ``-03:30``."""
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"
