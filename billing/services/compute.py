"""Set-based loading for a set of accounts: contracts, tariff slices, register values.

A handful of queries per chunk regardless of its size (contracts in one query, tariff
slices through ``tariffs.selectors``, registers as one frame through
``metering.selectors``, the few undecided register rollovers and decreases), then the pure
:func:`billing.calc.bill_compute` per account.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal

from django.db import connection
from django.db.models import Max, OuterRef, Q, Subquery

from billing import conf
from billing.calc import (
    BillDraft,
    BillingError,
    ContractInterval,
    PendingDecrease,
    PendingRollover,
    Register,
    bill_compute,
    bills_each,
    decrease_hold_reasons,
    month_starts_inside,
    one_year_earlier,
    rollover_hold_reasons,
)
from customers.models import AreaChange, CapacityChange, Contract, ServiceConnection
from customers.selectors import areas_in_force, capacities_in_force
from heatutility.db import copy_escape, id_array
from metering import selectors as metering_selectors


def registers_ensure(pairs: Iterable[tuple[int, dt.date]]) -> None:
    """Ask metering to estimate missing boundary values (grouped by date: few calls)."""
    try:
        from metering.services import boundary_registers_ensure
    except ImportError:  # metering without estimation: missing values stay missing
        return
    by_date: dict[dt.date, set[int]] = defaultdict(set)
    for cid, day in pairs:
        by_date[day].add(cid)
    by_ids: dict[frozenset[int], list[dt.date]] = defaultdict(list)
    for day, ids in by_date.items():
        by_ids[frozenset(ids)].append(day)
    for ids, days in by_ids.items():
        boundary_registers_ensure(connection_ids=sorted(ids), dates=sorted(days))


def contract_intervals(
    *,
    account_ids: Sequence[int],
    start: dt.date,
    end: dt.date,
    days: dict[int, tuple[dt.date, dt.date]] | None = None,
) -> dict[int, list[ContractInterval]]:
    """Each account's connections within ``[start, end)``, clipped to its contracts
    (and, for the accounts in ``days``, to those days: a final settlement's, or the
    invoice's after it)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT c.account_id, c.connection_id, c.valid_from, c.valid_to,
                       sc.contracted_capacity_kw, b.heated_area_m2,
                       -- only a contract begun within the last year can follow somebody
                       -- else's inside last year's period: the others' end is looked up
                       -- for those alone (once per move-in, not once per bill)
                       CASE WHEN c.valid_from > %s THEN
                         (SELECT max(o.valid_to) FROM customers_contract o
                          WHERE o.connection_id = c.connection_id
                            AND o.account_id <> c.account_id AND o.valid_from < c.valid_from)
                       END
                FROM customers_contract c
                JOIN customers_serviceconnection sc ON sc.id = c.connection_id
                JOIN customers_building b ON b.id = sc.building_id
                -- the ids as an InitPlan parameter (as metering's boundary_register_rows):
                -- with the 2,500 constants visible the planner hash-joins a sequential
                -- scan of every connection of the network, per chunk (47 ms instead of
                -- 17 at 100,000 connections, and growing with the network)
                WHERE c.account_id = ANY((SELECT %s::bigint[])::bigint[]) AND c.valid_from < %s
                  AND (c.valid_to IS NULL OR c.valid_to > %s)
                """,
                [one_year_earlier(start), id_array(account_ids), end, start],
            )
            rows = cursor.fetchall()
    else:
        rows = (
            Contract.objects.filter(account_id__in=list(account_ids), valid_from__lt=end)
            .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=start))
            .values_list(
                "account_id",
                "connection_id",
                "valid_from",
                "valid_to",
                "connection__contracted_capacity_kw",
                "connection__building__heated_area_m2",
                Subquery(
                    Contract.objects.filter(
                        connection_id=OuterRef("connection_id"),
                        valid_from__lt=OuterRef("valid_from"),
                    )
                    .exclude(account_id=OuterRef("account_id"))
                    .values("connection_id")
                    .annotate(until=Max("valid_to"))
                    .values("until")
                ),
            )
        )
    rows = list(rows)
    connection_ids = {row[1] for row in rows}
    changes = capacity_changes(connection_ids=connection_ids)
    m2_by_connection = area_changes(connection_ids=connection_ids)
    out: dict[int, list[ContractInterval]] = defaultdict(list)
    for account_id, cid, valid_from, valid_to, kw, m2, others_until in rows:
        i_start = valid_from if valid_from > start else start
        i_end = (valid_to if valid_to < end else end) if valid_to else end
        if days and account_id in days:
            lo, hi = days[account_id]
            i_start, i_end = max(i_start, lo), min(i_end, hi)
            if i_start >= i_end:
                continue
        kw_changes = m2_changes = ()
        if cid in changes:
            kw, kw_changes = capacities_in_force(changes[cid], kw, i_start, i_end)
        if cid in m2_by_connection:
            m2, m2_changes = areas_in_force(m2_by_connection[cid], m2, i_start, i_end)
        # ContractInterval(connection_id, start, end, contracted_kw, heated_area_m2, …)
        out[account_id].append(
            ContractInterval(cid, i_start, i_end, kw, m2, others_until, kw_changes, m2_changes)
        )
    return out


def capacity_changes(
    *, connection_ids: set[int]
) -> dict[int, list[tuple[dt.date, Decimal, Decimal]]]:
    """Per connection, its capacity changes (valid_from, capacity_kw, previous_kw) in
    date order; connections without any are absent.  All of them, also those after the
    period: the first one's ``previous_kw`` is what the days before it had."""
    if not connection_ids:
        return {}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT connection_id, valid_from, capacity_kw, previous_kw "
                f"FROM {CapacityChange._meta.db_table} "
                "WHERE connection_id = ANY(%s::bigint[]) ORDER BY connection_id, valid_from",
                [id_array(connection_ids)],
            )
            rows = cursor.fetchall()
    else:
        rows = (
            CapacityChange.objects.filter(connection_id__in=connection_ids)
            .order_by("connection_id", "valid_from")
            .values_list("connection_id", "valid_from", "capacity_kw", "previous_kw")
        )
    out: dict[int, list[tuple[dt.date, Decimal, Decimal]]] = defaultdict(list)
    for cid, day, kw, previous in rows:
        out[cid].append((day, kw, previous))
    return out


def area_changes(*, connection_ids: set[int]) -> dict[int, list[tuple[dt.date, Decimal, Decimal]]]:
    """Per connection, the area changes of its building (valid_from, heated_area_m2,
    previous_m2) in date order; connections whose building has none are absent.  All
    of them, as :func:`capacity_changes`: one small query."""
    if not connection_ids:
        return {}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT sc.id, a.valid_from, a.heated_area_m2, a.previous_m2 "
                f"FROM {AreaChange._meta.db_table} a "
                f"JOIN {ServiceConnection._meta.db_table} sc ON sc.building_id = a.building_id "
                "WHERE sc.id = ANY(%s::bigint[]) ORDER BY sc.id, a.valid_from",
                [id_array(connection_ids)],
            )
            rows = cursor.fetchall()
    else:
        building_of = dict(
            ServiceConnection.objects.filter(pk__in=connection_ids).values_list("pk", "building_id")
        )
        by_building: dict[int, list] = defaultdict(list)
        for building_id, *change in (
            AreaChange.objects.filter(building_id__in=set(building_of.values()))
            .order_by("valid_from")
            .values_list("building_id", "valid_from", "heated_area_m2", "previous_m2")
        ):
            by_building[building_id].append(change)
        rows = [
            (cid, *change)
            for cid, building_id in building_of.items()
            for change in by_building.get(building_id, ())
        ]
    out: dict[int, list[tuple[dt.date, Decimal, Decimal]]] = defaultdict(list)
    for cid, day, m2, previous in rows:
        out[cid].append((day, m2, previous))
    return out


def registers_load(
    *,
    connection_ids: Sequence[int],
    dates: Sequence[dt.date],
    required: set[tuple[int, dt.date]],
    ensure: bool = True,
) -> dict[tuple[int, dt.date], Register]:
    """Register values of ``connection_ids`` × ``dates``; with ``ensure``, the
    ``required`` pairs that have none are estimated by metering first.

    ``ensure`` only creates values where none exist, so asking for the missing pairs
    alone is the same as asking for all of them, and much cheaper.
    """
    registers = registers_from_rows(
        metering_selectors.boundary_register_rows(connection_ids=connection_ids, dates=dates)
    )
    missing = required - registers.keys()
    if ensure and missing:
        registers_ensure(missing)
        rows = metering_selectors.boundary_register_rows(
            connection_ids=sorted({c for c, _ in missing}), dates=sorted({d for _, d in missing})
        )
        registers.update(registers_from_rows(rows))
    return registers


def registers_from_rows(rows) -> dict[tuple[int, dt.date], Register]:
    """The selector's rows (:data:`metering.selectors.BOUNDARY_COLUMNS`) as
    {(connection_id, date): Register}."""
    make = Register._make
    return {
        (cid, on): make((rid, energy, volume, flow, ret, status, method or ""))
        for rid, cid, on, energy, volume, flow, ret, status, method in rows
    }


def register_holds(
    *, intervals: dict[int, list[ContractInterval]], connection_ids: Sequence[int]
) -> dict[int, list[str]]:
    """Per account, why its bill waits for staff to decide an ambiguous register
    rollover (``billing.calc.rollover_hold_reasons``) or a register decrease
    (``billing.calc.decrease_hold_reasons``); accounts without are absent.  One small
    query per chunk: such undecided findings are rare."""
    undecided, falls = metering_selectors.registers_undecided(connection_ids=connection_ids)
    if not undecided and not falls:
        return {}
    pending = {cid: [PendingRollover(*row) for row in rows] for cid, rows in undecided.items()}
    decreases = {cid: [PendingDecrease(*row) for row in rows] for cid, rows in falls.items()}
    holds = {}
    for account_id, ivs in intervals.items():
        if any(iv.connection_id in pending or iv.connection_id in decreases for iv in ivs):
            reasons = rollover_hold_reasons(ivs, pending) + decrease_hold_reasons(ivs, decreases)
            if reasons:
                holds[account_id] = reasons
    return holds


def drafts_compute(
    *,
    currency: str,
    account_ids: Sequence[int],
    period_start: dt.date,
    period_end: dt.date,
    ensure: bool = True,
    render: bool = False,
    time_zone: str | None = None,
    days: dict[int, tuple[dt.date, dt.date]] | None = None,
) -> tuple[list[BillDraft], dict[int, BillingError]]:
    """Bills for ``account_ids`` over ``[period_start, period_end)``; failures by account.

    ``days``: per account, the days of the period its bill covers (on account for the
    others: :func:`billing.services.aconto.invoice_days`, a final settlement's year);
    the others' bills cover every contract day of the period.

    ``render``: the bills as the COPY rows they are written as
    (:class:`billing.services.render.Rendered`, PostgreSQL), not as drafts.
    ``time_zone``: the network's, for the hours of the period (the capacity check).
    Either way a bill across an ambiguous register rollover staff have not decided is
    held, and so is one across a register decrease they have not decided
    (:func:`register_holds`), besides the plausibility holds.
    """
    from tariffs.rating import Determinants, rate
    from tariffs.selectors import tariff_slices_for_connections

    intervals = contract_intervals(
        account_ids=account_ids, start=period_start, end=period_end, days=days
    )
    connection_ids = sorted({i.connection_id for ivs in intervals.values() for i in ivs})
    slices = (
        tariff_slices_for_connections(
            connection_ids=connection_ids, start=period_start, end=period_end
        )
        if connection_ids
        else {}
    )
    required: set[tuple[int, dt.date]] = set()
    optional: set[tuple[int, dt.date]] = set()
    # month starts a quarter's or a year's energy is measured by: estimated where none is
    # stored, like the bounds (billing.calc shares the whole interval by days when one is
    # missing); none inside a one-month interval, so a monthly run asks for nothing more
    months: set[tuple[int, dt.date]] = set()
    for ivs in intervals.values():
        for iv in ivs:
            required.update({(iv.connection_id, iv.start), (iv.connection_id, iv.end)})
            optional.update(
                {
                    (iv.connection_id, one_year_earlier(iv.start)),
                    (iv.connection_id, one_year_earlier(iv.end)),
                }
            )
            seasonal, changes = False, False
            for s, e, spec in slices.get(iv.connection_id, []):
                seasonal = seasonal or spec.prices_by_season
                for day in (s, e):
                    if iv.start < day < iv.end:
                        optional.add((iv.connection_id, day))
                        changes = True
            # a quarter or a year priced by season: each month's energy; one with a tariff
            # change inside: the month around it (billing.calc._month_split_registers)
            if seasonal or changes:
                months.update((iv.connection_id, d) for d in month_starts_inside(iv.start, iv.end))
    dates = sorted({d for _, d in required | optional | months})
    registers = registers_load(
        connection_ids=connection_ids, dates=dates, required=required | months, ensure=ensure
    )
    plausibility = conf.plausibility()
    if time_zone:
        plausibility = dataclasses.replace(plausibility, time_zone=time_zone)
    holds = register_holds(intervals=intervals, connection_ids=connection_ids)
    if render:
        from billing.services.render import bills_render

        rendered, failures = bills_render(
            currency=currency,
            account_ids=account_ids,
            period_start=period_start,
            period_end=period_end,
            intervals=intervals,
            slices=slices,
            registers=registers,
            rate=rate,
            determinants_type=Determinants,
            plausibility=plausibility,
        )
        for i, row in enumerate(rendered):
            if row.account_id in holds:
                more = copy_escape("; ".join(holds[row.account_id]))
                rendered[i] = row._replace(
                    held=True, hold=f"{row.hold}; {more}" if row.hold else more
                )
        return rendered, failures
    drafts, failures = bills_each(
        account_ids,
        lambda account_id: bill_compute(
            account_id=account_id,
            period_start=period_start,
            period_end=period_end,
            currency=currency,
            intervals=intervals.get(account_id, []),
            slices=slices,
            registers=registers,
            rate=rate,
            determinants_type=Determinants,
            plausibility=plausibility,
        ),
    )
    for draft in drafts:
        draft.hold_reasons.extend(holds.get(draft.account_id, ()))
    return drafts, failures
