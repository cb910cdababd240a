"""Reads for customers: who is supplied where, and when."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, QuerySet

from customers.models import (
    Account,
    AreaChange,
    Building,
    CapacityChange,
    Contract,
    ServiceConnection,
)
from heatutility.timeutil import add_months


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
