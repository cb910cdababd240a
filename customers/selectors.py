"""Reads for customers: who is supplied where, and when."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, QuerySet

from customers.models import Account, Contract
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


def monthly_consumption(*, account: Account, months: int, today: dt.date) -> list[MonthConsumption]:
    """Energy per complete local month over the account's contracts, newest first.

    Uses metering's boundary registers (continuous connection registers), so a month's
    consumption is the difference of two values; months without both values are ``None``.
    Only days inside the account's contracts count.
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

    per_month: dict[dt.date, tuple[Decimal | None, Decimal | None, bool]] = {}
    for start in starts:
        end = add_months(start, 1)
        energy = volume = Decimal("0")
        estimated = False
        complete = False
        for contract in contracts:
            if contract.valid_from > start or (contract.valid_to and contract.valid_to < end):
                continue  # partial months are shown on the bill, not in this overview
            a = values.get((contract.connection_id, start))
            b = values.get((contract.connection_id, end))
            if a is None or b is None:
                continue
            complete = True
            energy += b.energy_kwh - a.energy_kwh
            volume += b.volume_m3 - a.volume_m3
            estimated |= "estimated" in (a.status, b.status)
        per_month[start] = (
            energy / 1000 if complete else None,
            volume if complete else None,
            estimated,
        )

    result = []
    for start in reversed(starts[-months:]):
        energy, volume, estimated = per_month[start]
        last_year = per_month.get(add_months(start, -12), (None, None, False))[0]
        result.append(MonthConsumption(start, energy, volume, estimated, last_year))
    return result
