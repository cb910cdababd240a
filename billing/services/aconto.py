"""On-account (a-conto) instalments and the annual settlement (DOMAIN.md §7).

* A plan estimates the year's consumption from last year's, climate-corrected with
  degree days (DOMAIN.md §3: ``corrected = share · c · DD_normal / DD_actual +
  (1 − share) · c``).
* Each instalment is 1/n (n = 12 monthly, 4 quarterly) of the estimated annual charge at
  the prices in force at the instalment's period: instalments follow price changes.
  The annual charge is rated by ``tariffs.rating.rate`` over the plan year; the
  instalment is ``quantize_money(annual net of a VAT rate / n)``, one line per VAT rate.
* The settlement bills the year's actual consumption (every tariff version in force,
  prorated by days) and credits the instalments issued for the year, per VAT rate: their
  net and the VAT invoiced on them.  Each instalment rounded its own VAT, so the
  settlement's VAT of a rate is the VAT of the year's charge (rounded once, as on any
  bill) less the VAT invoiced on the instalments, not the VAT of the difference: over
  the year the customer then pays exactly the year's net and its correctly rounded VAT.
  A credited instalment (credit note not cancelled) counts for neither.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import OperationalError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from billing import conf
from billing.calc import (
    BillDraft,
    BillingError,
    ContractInterval,
    DraftLine,
    basis_pieces,
    climate_corrected,
    one_year_earlier,
    totals,
)
from billing.models import InstalmentPlan, InstalmentPlanning, Invoice, InvoiceLine
from billing.services.compute import (
    contract_intervals,
    drafts_compute,
    registers_load,
)
from customers.models import Account, Network, ServiceConnection
from customers.selectors import contracts_active_between
from heatutility.db import bulk_insert
from heatutility.errors import ConflictError, DomainError
from heatutility.money import plain, quantize_energy, quantize_money
from heatutility.timeutil import DATE_OUT_OF_RANGE, add_months, date_in_range
from metering import selectors as metering_selectors

ZERO = Decimal("0")


class UnableToPlanInstalments(DomainError):
    code = "unable_to_plan"


PLANNING_LOCK = 0x4950  # advisory lock namespace ("IP"), keyed by network id
PLAN_FIELDS = [
    "account",
    "year_start",
    "year_end",
    "frequency",
    "last_year_mwh",
    "estimated_mwh",
    "estimated_m3",
    "connections",
    "explanation",
    "created_at",
]


@dataclass
class PlanningResult:
    """What :func:`instalment_plans_create` did: the accounts planned, those that already
    had a plan for the year (left as they are), and why the others could not be planned."""

    created: list[int] = field(default_factory=list)
    existing: list[int] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Weather:
    share: Decimal
    dd_normal: Decimal | None
    dd_actual: Decimal | None

    def note(self, corrected: Decimal) -> str:
        if self.dd_normal and self.dd_actual:
            return (
                f", climate-corrected with {self.share:.0%} heating share × "
                f"{plain(self.dd_normal)} normal / {plain(self.dd_actual)} actual degree days"
                f" = {corrected:.3f} MWh"
            )
        missing = "normal-year" if not self.dd_normal else "last year's"
        return f", not climate-corrected ({missing} degree days unknown)"


def plan_weather(*, network: Network, year_start: dt.date) -> tuple[Decimal | None, Decimal | None]:
    """(normal-year degree days, last year's degree days) for plans starting ``year_start``:
    the network's normal year and the sum of its daily degree days over the twelve months
    before (None where unknown or incomplete)."""
    return network.normal_degree_days, metering_selectors.degree_days_total(
        network_id=network.pk, start=one_year_earlier(year_start), end=year_start
    )


def instalment_plans_create(
    *,
    network: Network,
    year_start: dt.date,
    frequency: str,
    now: dt.datetime,
    account_ids: Sequence[int] | None = None,
    degree_days_normal: Decimal | None = None,
    degree_days_last_year: Decimal | None = None,
    chunk_size: int = 2000,
) -> PlanningResult:
    """Plan a year of instalments for the network's accounts (or ``account_ids``).

    The estimate is what the account's premises used in the twelve months before
    ``year_start``: the connections the account holds in the plan year, whoever was the
    customer then (a new tenant inherits the flat's history), from the boundary registers
    at both ends (estimated by metering where none was read), climate-corrected with the
    network's normal-year degree days against last year's (``degree_days_*`` override
    them).  Accounts that already have a plan overlapping the year are left alone, so a
    planning run can be repeated.  All of it is one transaction under a lock per network:
    a planning stores every plan or none, and two at once do not collide.
    """
    _planning_check(year_start=year_start, frequency=frequency)
    year_end = add_months(year_start, 12)
    with transaction.atomic():
        planning_lock(network.pk)  # a second planning of the network waits, then skips
        result = PlanningResult()
        in_year = contracts_active_between(network_id=network.pk, start=year_start, end=year_end)
        if account_ids is None:
            ids = sorted(set(in_year.values_list("account_id", flat=True)))
        else:
            ids = sorted(set(account_ids))
            supplied = set(in_year.filter(account_id__in=ids).values_list("account_id", flat=True))
            for account_id in ids:
                if account_id not in supplied:
                    result.failures[account_id] = (
                        f"No contract in {network.code} during the plan year."
                    )
            ids = [i for i in ids if i in supplied]
        overlapping = InstalmentPlan.objects.overlapping(year_start, year_end)
        if account_ids is None:  # by network: no list of 100,000 ids to send
            overlapping = overlapping.filter(account__network=network)
        else:
            overlapping = overlapping.filter(account_id__in=ids)
        planned = set(overlapping.values_list("account_id", flat=True)) & set(ids)
        result.existing = sorted(planned)
        normal, actual = plan_weather(network=network, year_start=year_start)
        weather = _Weather(
            share=conf.heating_share(),
            dd_normal=degree_days_normal if degree_days_normal is not None else normal,
            dd_actual=degree_days_last_year if degree_days_last_year is not None else actual,
        )
        todo = [i for i in ids if i not in planned]
        for offset in range(0, len(todo), max(1, chunk_size)):
            rows, failures = _plan_chunk(
                todo[offset : offset + chunk_size],
                year_start=year_start,
                frequency=frequency,
                weather=weather,
                now=now,
            )
            bulk_insert(InstalmentPlan, PLAN_FIELDS, rows)
            result.created.extend(row[0] for row in rows)
            result.failures.update(failures)
    return result


def _planning_check(*, year_start: dt.date, frequency: str) -> None:
    if not date_in_range(year_start):
        raise UnableToPlanInstalments(f"Settlement year: {DATE_OUT_OF_RANGE}")
    if year_start.day != 1:
        raise UnableToPlanInstalments("A settlement year starts on the first of a month.")
    if frequency not in InstalmentPlan.Frequency.values:
        raise UnableToPlanInstalments(f"Unknown frequency {frequency!r}.")
    if frequency == InstalmentPlan.Frequency.QUARTERLY and year_start.month not in (1, 4, 7, 10):
        # instalment runs bill calendar quarters: a year from another month would be
        # billed quarters that straddle its start and end
        raise UnableToPlanInstalments(
            "A year of quarterly instalments starts in January, April, July or October."
        )


def instalment_planning_request(
    *,
    network: Network,
    year_start: dt.date,
    frequency: str,
    now: dt.datetime,
    account_ids: Sequence[int] | None = None,
    user=None,
) -> InstalmentPlanning:
    """Record staff's request to plan a year (checked now, 422 if it cannot be planned at
    all); ``billing.tasks.instalment_planning_run`` plans it on a worker."""
    _planning_check(year_start=year_start, frequency=frequency)
    return InstalmentPlanning.objects.create(
        network=network,
        year_start=year_start,
        frequency=frequency,
        account_ids=sorted(set(account_ids)) if account_ids is not None else None,
        requested_by=user,
        requested_at=now,
    )


def instalment_planning_run(*, planning_id: int, now: dt.datetime) -> InstalmentPlanning:
    """Plan what ``planning`` asks for and record the outcome on it.

    Safe to run twice: a finished planning is left as it is, and one interrupted while
    running stored nothing (:func:`instalment_plans_create` is one transaction) and is
    planned again.  A refusal of the whole planning is recorded as *failed*, with why.
    """
    with transaction.atomic():
        planning = (
            InstalmentPlanning.objects.select_for_update(of=("self",))  # not the network's row
            .select_related("network")
            .get(pk=planning_id)
        )
        if planning.state in (InstalmentPlanning.State.DONE, InstalmentPlanning.State.FAILED):
            return planning
        planning.state = InstalmentPlanning.State.RUNNING
        planning.save(update_fields=["state"])
    try:
        result = instalment_plans_create(
            network=planning.network,
            year_start=planning.year_start,
            frequency=planning.frequency,
            account_ids=planning.account_ids,
            now=now,
        )
    except DomainError as exc:
        planning.state, planning.error = InstalmentPlanning.State.FAILED, exc.message
    except OperationalError:
        raise  # the database went away: left running, the task retries
    except Exception as exc:
        planning.state = InstalmentPlanning.State.FAILED
        planning.error = f"Unexpected error ({type(exc).__name__}); see the worker's log."
        planning.finished_at = timezone.now()
        planning.save(update_fields=["state", "error", "finished_at"])
        raise
    else:
        numbers = dict(
            Account.objects.filter(pk__in=list(result.failures)).values_list("pk", "number")
        )
        planning.state = InstalmentPlanning.State.DONE
        planning.created, planning.existing = len(result.created), len(result.existing)
        planning.failures = [
            {"account": numbers[pk], "message": message}
            for pk, message in sorted(result.failures.items())
        ]
    planning.finished_at = timezone.now()
    with transaction.atomic():
        # delivered twice (acks_late) while the first was planning: the first's outcome
        # (plans made) stands; the second found them all existing
        current = InstalmentPlanning.objects.select_for_update().get(pk=planning.pk)
        if current.state in (InstalmentPlanning.State.DONE, InstalmentPlanning.State.FAILED):
            return current
        planning.save(
            update_fields=["state", "error", "created", "existing", "failures", "finished_at"]
        )
    return planning


def _plan_chunk(
    account_ids: list[int],
    *,
    year_start: dt.date,
    frequency: str,
    weather: _Weather,
    now: dt.datetime,
) -> tuple[list[tuple], dict[int, str]]:
    """Plan rows for a chunk of accounts (contracts and registers in one query each),
    and why the others could not be planned."""
    year_end, last_start = add_months(year_start, 12), one_year_earlier(year_start)
    intervals = contract_intervals(account_ids=account_ids, start=year_start, end=year_end)
    connection_ids = sorted({iv.connection_id for ivs in intervals.values() for iv in ivs})
    registers = registers_load(
        connection_ids=connection_ids,
        dates=[last_start, year_start],
        required={(c, d) for c in connection_ids for d in (last_start, year_start)},
    )
    held = {
        account_id: sorted({iv.connection_id for iv in intervals.get(account_id, [])})
        for account_id in account_ids
    }
    # connection numbers name the parts of a plan over several premises (few accounts)
    several = sorted({c for ids in held.values() if len(ids) > 1 for c in ids})
    numbers = (
        dict(ServiceConnection.objects.filter(pk__in=several).values_list("pk", "number"))
        if several
        else {}
    )
    as_json = _json_column()
    rows, failures = [], {}
    invoiced = _invoiced_in_year(account_ids, year_start=year_start, year_end=year_end)
    for account_id in account_ids:
        if account_id in invoiced:
            failures[account_id] = _invoiced_reason(
                invoiced[account_id], year_start=year_start, frequency=frequency
            )
            continue
        try:
            rows.append(
                _plan_row(
                    account_id=account_id,
                    connection_ids=held[account_id],
                    numbers=numbers,
                    as_json=as_json,
                    registers=registers,
                    last_start=last_start,
                    year_start=year_start,
                    year_end=year_end,
                    frequency=frequency,
                    weather=weather,
                    now=now,
                )
            )
        except UnableToPlanInstalments as exc:
            failures[account_id] = exc.message
    return rows, failures


def _invoiced_in_year(
    account_ids: list[int], *, year_start: dt.date, year_end: dt.date
) -> dict[int, list[tuple[str, dt.date, dt.date]]]:
    """Per account, the invoices and corrections that bill days of the plan year and
    stand (not cancelled, not credited; a run's draft too, it will be issued): (number,
    first day, end).  The settlement bills the whole plan year and credits instalments
    only, so a year planned over them would bill those days twice."""
    out: dict[int, list[tuple[str, dt.date, dt.date]]] = defaultdict(list)
    for account_id, series, number, pk, start, end in (
        Invoice.objects.filter(
            account_id__in=account_ids,
            kind__in=(Invoice.Kind.INVOICE, Invoice.Kind.CORRECTION),
            period_start__lt=year_end,
            period_end__gt=year_start,
        )
        .exclude(state=Invoice.State.CANCELLED)
        .not_credited()
        .order_by("account_id", "period_start", "pk")
        .values_list("account_id", "series", "number", "pk", "period_start", "period_end")
    ):
        out[account_id].append((Invoice.name_of(series, number, pk), start, end))
    return out


def _invoiced_reason(
    invoices: list[tuple[str, dt.date, dt.date]], *, year_start: dt.date, frequency: str
) -> str:
    """Why a year partly billed by invoices is not planned, and from when it can be."""
    first_free = max(max(end for _, _, end in invoices), year_start)
    if first_free.day != 1:
        first_free = add_months(first_free, 1)
    unit = "month"
    if frequency == InstalmentPlan.Frequency.QUARTERLY:
        unit = "quarter"  # a year of quarterly instalments starts on a calendar quarter
        while first_free.month not in (1, 4, 7, 10):
            first_free = add_months(first_free, 1)
    items = "; ".join(
        f"{name} for {start.isoformat()} to {(end - dt.timedelta(days=1)).isoformat()}"
        for name, start, end in invoices
    )
    return (
        f"Invoices already bill part of the plan year from {year_start.isoformat()} "
        f"({items}), and its settlement would bill those days again: plan the year from "
        f"{first_free.isoformat()}, the first {unit} not invoiced."
    )


def _json_column():
    """How a JSON value goes into :func:`bulk_insert`: JSON text for PostgreSQL's COPY,
    the value itself for ``bulk_create``."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return lambda value: json.dumps(value, separators=(",", ":"))
    return lambda value: value


def planning_lock(network_id: int, *, shared: bool = False) -> None:
    """The network's planning lock until the transaction ends (PostgreSQL; SQLite
    serialises writers anyway).

    A planning takes it alone: a second planning of the network waits, then skips the
    accounts planned.  Whatever bills a network's invoices (an invoice run's chunk, a
    late bill) takes it ``shared`` before it looks for plans: a planning then waits for
    those invoices and refuses their year (``_invoiced_in_year``), and a chunk started
    during a planning waits for its plans and leaves those accounts to them.  Without it
    each missed the other's uncommitted rows and the month was billed by an invoice and
    again by the plan year's settlement.  Billers do not wait for each other."""
    from django.db import connection

    if connection.vendor == "postgresql":
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {function}(%s, %s)", [PLANNING_LOCK, network_id])


def _plan_row(
    *,
    account_id: int,
    connection_ids: list[int],
    numbers: dict[int, str],
    as_json,
    registers: dict,
    last_start: dt.date,
    year_start: dt.date,
    year_end: dt.date,
    frequency: str,
    weather: _Weather,
    now: dt.datetime,
) -> tuple:
    """One plan's values in ``PLAN_FIELDS`` order.

    The estimate is made per connection (each premises' own last year), so that an
    instalment bills only the premises the account holds in its period; the plan's
    figures are their sums.  Climate correction is linear, so each connection's corrected
    MWh is its share of the plan's (rounded once, the remainder on the last connection):
    the parts add up to the plan exactly.
    """
    if not connection_ids:
        raise UnableToPlanInstalments("No connection under contract in the plan year.")
    used: list[tuple[int, Decimal, Decimal]] = []  # connection, kWh, m³ last year
    on_estimates: set[int] = set()  # connections whose last year rests on an estimate
    for connection_id in connection_ids:
        a = registers.get((connection_id, last_start))
        b = registers.get((connection_id, year_start))
        if a is None or b is None:
            raise UnableToPlanInstalments(
                f"No register value for connection {connection_id} on "
                f"{(last_start if a is None else year_start).isoformat()}: last year's "
                "consumption is unknown."
            )
        if b.energy_kwh < a.energy_kwh or b.volume_m3 < a.volume_m3:
            raise UnableToPlanInstalments(
                f"The register of connection {connection_id} went down from "
                f"{last_start.isoformat()} to {year_start.isoformat()} "
                f"({a.energy_kwh} to {b.energy_kwh} kWh, {a.volume_m3} to {b.volume_m3} m³): "
                "last year's consumption is not known."
            )
        used.append((connection_id, b.energy_kwh - a.energy_kwh, b.volume_m3 - a.volume_m3))
        if "estimated" in (a.status, b.status):
            on_estimates.add(connection_id)
    energy = sum((kwh for _, kwh, _ in used), ZERO)
    volume = sum((m3 for _, _, m3 in used), ZERO)
    last_mwh = quantize_energy(energy / 1000)
    corrected = quantize_energy(
        climate_corrected(
            consumption=last_mwh,
            heating_share=weather.share,
            dd_normal=weather.dd_normal,
            dd_actual=weather.dd_actual,
        )
    )
    factor = corrected / last_mwh if last_mwh else Decimal(1)
    estimated_m3 = (volume * factor).quantize(M3)
    lasts = _parts(last_mwh, [kwh / 1000 for _, kwh, _ in used], quantize_energy)
    parts = [
        {
            "connection_id": connection_id,
            "number": numbers.get(connection_id, ""),
            "last_year_mwh": str(last),
            "estimated_mwh": str(estimated),
            "estimated_m3": str(m3),
            # last year's figure rests on an estimated register (the PDF marks it)
            "last_year_estimated": connection_id in on_estimates,
        }
        for (connection_id, _, _), last, estimated, m3 in zip(
            used,
            lasts,
            _parts(corrected, lasts, quantize_energy),
            _parts(estimated_m3, [m3 for _, _, m3 in used], lambda v: v.quantize(M3)),
            strict=True,
        )
    ]
    last_year = f"last year {last_mwh:.3f} MWh"
    if len(parts) > 1:
        last_year += (
            " ("
            + " + ".join(
                f"{Decimal(p['last_year_mwh']):.3f} connection {p['number'] or p['connection_id']}"
                for p in parts
            )
            + ")"
        )
    return (
        account_id,
        year_start,
        year_end,
        frequency,
        last_mwh,
        corrected,
        estimated_m3,
        as_json(parts),
        last_year + weather.note(corrected),
        now,
    )


M3 = Decimal("0.0001")


def _parts(total: Decimal, weights: Sequence[Decimal], rounded) -> list[Decimal]:
    """``total`` split in proportion to ``weights``, each part rounded, the last taking
    what is left so the parts add up to ``total`` (equal parts where the weights are 0)."""
    whole = sum(weights, ZERO)
    if len(weights) == 1:
        return [total]
    parts = [rounded(total * w / whole if whole else total / len(weights)) for w in weights[:-1]]
    return [*parts, total - sum(parts, ZERO)]


def instalment_plan_create(
    *,
    account: Account,
    year_start: dt.date,
    frequency: str,
    now: dt.datetime,
    degree_days_normal: Decimal | None = None,
    degree_days_last_year: Decimal | None = None,
) -> InstalmentPlan:
    """One account's plan (see :func:`instalment_plans_create`); refuses a second one."""
    result = instalment_plans_create(
        network=account.network,
        year_start=year_start,
        frequency=frequency,
        now=now,
        account_ids=[account.pk],
        degree_days_normal=degree_days_normal,
        degree_days_last_year=degree_days_last_year,
    )
    if result.existing:
        raise UnableToPlanInstalments(
            f"Account {account.number} already has an instalment plan for that year."
        )
    if result.failures:
        raise UnableToPlanInstalments(result.failures[account.pk])
    return InstalmentPlan.objects.get(account=account, year_start=year_start)


def plan_account_ids(*, network_id: int, period_start: dt.date, months: int) -> list[int]:
    """Accounts with a plan of the run's frequency for the period that are still supplied
    in it (a customer who moved out gets no more instalments; the settlement bills the
    rest)."""
    frequency = (
        InstalmentPlan.Frequency.MONTHLY if months == 1 else InstalmentPlan.Frequency.QUARTERLY
    )
    supplied = contracts_active_between(
        network_id=network_id, start=period_start, end=add_months(period_start, months)
    ).values("account_id")
    return list(
        InstalmentPlan.objects.in_force(period_start)
        .filter(account__network_id=network_id, frequency=frequency, account_id__in=supplied)
        .exclude(Exists(_settlements_of_plan()))  # a settled year is not charged again
        .exclude(ended_on__lte=period_start)  # nor the days after a final settlement
        .order_by("account_id")
        .values_list("account_id", flat=True)
    )


def invoice_days_of(
    plans: Sequence[tuple[int, dt.date, dt.date, dt.date | None]],
    *,
    period_start: dt.date,
    period_end: dt.date,
) -> tuple[dict[int, tuple[dt.date, dt.date]], dict[int, BillingError]]:
    """For an invoice over ``[period_start, period_end)`` of accounts with ``plans``
    (account, year start, year end, ended on) sharing a day with it: per account the days
    the invoice bills, where a final settlement ended the plan inside the period (from
    that day: the account moved in again), and why the others cannot be invoiced (their
    plan year covers part of the period).  A plan ended before the period, or on account
    for all of it, is neither (the invoice bills all of it, or the account is not
    invoiced)."""
    days: dict[int, tuple[dt.date, dt.date]] = {}
    in_part: dict[int, BillingError] = {}
    for account_id, year_start, year_end, ended_on in plans:
        end = year_end if ended_on is None else min(year_end, ended_on)
        if end <= period_start or year_start >= period_end:
            continue  # on account for none of the period
        if year_start <= period_start and end < period_end and ended_on is not None:
            days[account_id] = (end, period_end)  # the final settlement settled the rest
            continue
        in_part[account_id] = BillingError(
            f"on account from {year_start.isoformat()} to {end.isoformat()}, which covers "
            f"only part of {period_start.isoformat()}–{period_end.isoformat()}: bill "
            "the days outside the plan year by a run that ends or starts at its boundary",
            code="on_account_in_part",
        )
    for account_id in in_part:
        days.pop(account_id, None)  # two plans: one in part stops it
    return days, in_part


def invoice_days(
    *, account_ids: Sequence[int], period_start: dt.date, period_end: dt.date
) -> tuple[dict[int, tuple[dt.date, dt.date]], dict[int, BillingError]]:
    """:func:`invoice_days_of` the accounts' plans (one query)."""
    plans = (
        InstalmentPlan.objects.on_account_in(period_start, period_end)
        .filter(account_id__in=list(account_ids))
        .values_list("account_id", "year_start", "year_end", "ended_on")
    )
    return invoice_days_of(list(plans), period_start=period_start, period_end=period_end)


def plan_billed(*, plan: InstalmentPlan) -> bool:
    """Whether an instalment or the settlement of the plan's year was billed (a draft
    too, not a cancelled one): the plan then stands, for the settlement credits the
    instalments of the accounts with a plan for the year, and invoice runs skip them."""
    return (
        Invoice.objects.filter(
            account_id=plan.account_id,
            kind__in=(Invoice.Kind.INSTALMENT, Invoice.Kind.SETTLEMENT),
            period_start__gte=plan.year_start,
            period_start__lt=plan.year_end,
        )
        .exclude(state=Invoice.State.CANCELLED)
        .exists()
    )


def _settlements_of_plan():
    """The settlement (not cancelled) of the plan year of ``OuterRef``'s plan."""
    return Invoice.objects.filter(
        account_id=OuterRef("account_id"),
        kind=Invoice.Kind.SETTLEMENT,
        period_start=OuterRef("year_start"),
        period_end=OuterRef("year_end"),
    ).exclude(state=Invoice.State.CANCELLED)


def _line(
    description: str, explanation: str, amount: Decimal, vat_rate: Decimal, ps, pe
) -> DraftLine:
    return DraftLine(
        connection_id=None,
        period_start=ps,
        period_end=pe,
        tariff_version_id=None,
        component="on_account",
        kind="on_account",
        description=description[:200],
        explanation=explanation[:300],
        quantity=Decimal(1),
        unit="instalment",
        unit_price=amount,
        amount=amount,
        vat_rate=vat_rate,
    )


def _days_supplied(intervals: Sequence) -> int:
    """Days of the period with at least one of ``intervals`` (clipped to it): one
    connection's contracts, so each premises pays for the days it is held."""
    days, reached = 0, None
    for iv in sorted(intervals, key=lambda iv: iv.start):
        start = iv.start if reached is None or iv.start > reached else reached
        if iv.end > start:
            days += (iv.end - start).days
            reached = iv.end
    return days


def _held_slices(slices: Sequence, intervals: Sequence) -> list:
    """``slices`` (start, end, spec) clipped to the days of ``intervals``."""
    out = []
    for s, e, spec in slices:
        for iv in sorted(intervals, key=lambda iv: iv.start):
            a, b = max(s, iv.start), min(e, iv.end)
            if a < b:
                if out and out[-1][2] is spec and out[-1][1] == a:
                    a = out.pop()[0]  # a renewed contract: one slice, not two
                out.append((a, b, spec))
    return out


def _basis_pieces_held(intervals: Sequence, slices: Sequence) -> list:
    """``slices`` (held days) cut per contract interval and at its kW and m² changes,
    each piece with its kW and m² (``billing.calc.basis_pieces``); neighbours that
    differ in nothing (a renewal on the same terms) are one piece."""
    out: list = []
    for iv in sorted(intervals, key=lambda iv: iv.start):
        for (s, e, spec), kw, m2 in basis_pieces(iv, _held_slices(slices, [iv])):
            if out:
                (a, b, last_spec), last_kw, last_m2 = out[-1]
                if b == s and last_spec is spec and (last_kw, last_m2) == (kw, m2):
                    out[-1] = ((a, e, spec), kw, m2)
                    continue
            out.append(((s, e, spec), kw, m2))
    return out


def instalment_drafts(
    *,
    currency: str,
    account_ids: Sequence[int],
    period_start: dt.date,
    period_end: dt.date,
    time_zone: str | None = None,  # unused: an estimate is not checked against capacity
) -> tuple[list[BillDraft], dict[int, BillingError]]:
    from tariffs.rating import Determinants, rate
    from tariffs.selectors import tariff_slices_for_connections

    plans = {
        p.account_id: p
        for p in InstalmentPlan.objects.in_force(period_start)
        .filter(account_id__in=list(account_ids))
        .annotate(settled=Exists(_settlements_of_plan()))
    }
    intervals = contract_intervals(account_ids=account_ids, start=period_start, end=period_end)
    slices = tariff_slices_for_connections(
        connection_ids=sorted({i.connection_id for ivs in intervals.values() for i in ivs}),
        start=period_start,
        end=period_end,
    )
    drafts, failures = [], {}
    for account_id in account_ids:
        plan = plans.get(account_id)
        ivs = intervals.get(account_id, [])
        try:
            if plan is None or not ivs:
                raise BillingError("no instalment plan or contract for the period", code="no_plan")
            if plan.settled:  # its settlement billed the year's actual and credited the rest
                raise BillingError(
                    f"the plan year from {plan.year_start.isoformat()} is already settled",
                    code="year_settled",
                )
            n = 12 if plan.frequency == InstalmentPlan.Frequency.MONTHLY else 4
            step = 12 // n
            months = (
                (period_start.year - plan.year_start.year) * 12
                + period_start.month
                - plan.year_start.month
            )
            index = months // step + 1
            # each premises held in the period pays its own part of the plan: its own
            # estimated MWh and fixed charges, for the days the account holds it (a
            # renewed contract on one connection is two intervals, not two premises:
            # its latest terms)
            held: dict[int, list[ContractInterval]] = defaultdict(list)
            for iv in ivs:
                held[iv.connection_id].append(iv)
            planned = {int(p["connection_id"]): p for p in plan.connections}
            days = (period_end - period_start).days
            total_kw = sum(
                (max(civs, key=lambda iv: iv.start).contracted_kw for civs in held.values()),
                ZERO,
            ) or Decimal(1)
            parts: list[tuple[str, int, dict[Decimal, Decimal]]] = []
            version_ids, estimated = [], ZERO
            for connection_id in sorted(held):
                iv = max(held[connection_id], key=lambda iv: iv.start)
                conn_slices = slices.get(connection_id) or []
                if not conn_slices:
                    raise BillingError(
                        f"no tariff for connection {connection_id}", code="no_tariff"
                    )
                # prices are weighted over the days the account holds the connection,
                # not over days before a move-in or after a move-out
                conn_slices = _held_slices(conn_slices, held[connection_id]) or conn_slices
                version_ids.extend(spec.version_id for _s, _e, spec in conn_slices)
                if plan.connections:
                    part = planned.get(connection_id)
                    energy = Decimal(part["estimated_mwh"]) if part else ZERO
                    volume = Decimal(part["estimated_m3"]) if part else ZERO
                    annual_energy = energy
                    name = (
                        f"connection {part['number'] or connection_id}, {energy:.3f} MWh"
                        if part
                        else f"connection {connection_id} is not in the plan: no MWh estimated"
                    )
                else:  # a plan made before plans were kept per connection: shared by kW
                    share = iv.contracted_kw / total_kw
                    energy = quantize_energy(plan.estimated_mwh * share)
                    volume = (plan.estimated_m3 * share).quantize(M3)
                    annual_energy, name = plan.estimated_mwh, ""
                # the estimated year at the prices (and contracted kW and heated m²) in
                # force in the instalment's own period: a change inside it is weighted by
                # days, and so is a renewal's (each contract's days at its own kW and m²)
                pieces = _basis_pieces_held(held[connection_id], conn_slices)
                weight = sum((e - s).days for (s, e, _spec), _kw, _m2 in pieces)
                annual: dict[Decimal, Decimal] = defaultdict(lambda: ZERO)
                for (s, e, spec), kw, m2 in pieces:
                    det = Determinants(
                        period_start=plan.year_start,
                        period_end=plan.year_end,
                        energy_mwh=energy,
                        volume_m3=volume,
                        return_temp_c=None,
                        flow_temp_c=None,
                        contracted_kw=kw,
                        heated_area_m2=m2,
                        annual_energy_mwh=annual_energy,
                    )
                    for priced in rate(determinants=det, tariff=spec):
                        annual[priced.vat_rate] += priced.amount * (e - s).days / weight
                if len(pieces) > 1:
                    changes = ", ".join(sorted({s.isoformat() for (s, _e, _sp), *_ in pieces[1:]}))
                    name = f"{name}; " if name else ""
                    name += f"prices changing on {changes}, weighted by days"
                supplied = _days_supplied(held[connection_id])
                estimated += energy * supplied / days
                parts.append((name, supplied, annual))
            lines = []
            for vat_rate in sorted({r for _, _, annual in parts for r in annual}):
                amount, said = ZERO, []
                for name, supplied, annual in parts:
                    if vat_rate not in annual:
                        continue
                    # a move-in or move-out within the period pays for the days supplied
                    amount += annual[vat_rate] * supplied / (n * days)
                    held_for = "" if supplied == days else f" × {supplied}/{days} days supplied"
                    said.append(
                        f"{annual[vat_rate]:,.2f} {currency}{held_for}"
                        + (
                            f" ({name})"
                            if name and (len(planned) > 1 or len(held) > 1 or "weighted" in name)
                            else ""
                        )
                    )
                lines.append(
                    _line(
                        f"On-account instalment {index} of {n}",
                        f"1/{n} × estimated annual charge {' + '.join(said)} "
                        f"({plan.explanation}) at current prices",
                        quantize_money(amount, currency),
                        vat_rate,
                        period_start,
                        period_end,
                    )
                )
            net, vat, breakdown = totals(lines, currency)
            drafts.append(
                BillDraft(
                    account_id=account_id,
                    period_start=period_start,
                    period_end=period_end,
                    currency=currency,
                    lines=lines,
                    net=net,
                    vat=vat,
                    gross=net + vat,
                    vat_breakdown=breakdown,
                    readings=[],
                    has_estimated_reads=False,
                    tariff_version_ids=sorted(set(version_ids)),
                    determinants=[
                        {
                            "plan_id": plan.pk,
                            "estimated_mwh": str(plan.estimated_mwh),
                            "connections": sorted(held),
                        }
                    ],
                    comparison={
                        "energy_mwh": str(quantize_energy(estimated / n)),
                        "last_year_mwh": None,
                    },
                )
            )
        except BillingError as exc:
            failures[account_id] = exc
    return drafts, failures


@dataclass
class _Invoiced:
    """What the year's instalments invoiced at one VAT rate."""

    count: int = 0
    net: Decimal = ZERO
    vat: Decimal = ZERO


def _instalments_invoiced(
    *, account_ids: Sequence[int], period_start: dt.date, period_end: dt.date
) -> tuple[dict[int, dict[Decimal, _Invoiced]], dict[int, BillingError]]:
    """The net and VAT per VAT rate of each account's issued instalments for the year.

    The net is the sum of an instalment's lines at the rate; the VAT is the one invoiced
    on it (its stored VAT breakdown), checked against its lines and its VAT total: an
    instalment whose record disagrees with itself fails its account's settlement rather
    than settle a guess.  Instalments with a credit note (not cancelled) are left out,
    and so is the credit note, which reversed them exactly.  An instalment or an
    instalment's credit note still a draft fails its account's settlement: issued after
    it, or cancelled, it would leave the year billed twice or not credited.
    """
    failures: dict[int, BillingError] = {}
    in_year = Q(period_start__gte=period_start, period_start__lt=period_end)
    for account_id, kind, series, number, start in (
        Invoice.objects.filter(account_id__in=list(account_ids), number__isnull=True)
        .exclude(state=Invoice.State.CANCELLED)
        .filter(
            (Q(kind=Invoice.Kind.INSTALMENT) & in_year)
            | Q(
                kind=Invoice.Kind.CREDIT_NOTE,
                original__kind=Invoice.Kind.INSTALMENT,
                original__period_start__gte=period_start,
                original__period_start__lt=period_end,
            )
        )
        .order_by("account_id", "pk")
        .values_list("account_id", "kind", "original__series", "original__number", "period_start")
    ):
        if account_id in failures:
            continue
        what = (
            f"the instalment from {start.isoformat()}"
            if kind == Invoice.Kind.INSTALMENT
            else f"the credit note of instalment {Invoice.number_of(series, number)}"
        )
        failures[account_id] = BillingError(
            f"{what} is a draft: issue or cancel it before the year is settled",
            code="instalment_draft_pending",
        )
    instalments = {
        invoice_id: (account_id, series, number, vat, determinants)
        for invoice_id, account_id, series, number, vat, determinants in Invoice.objects.filter(
            account_id__in=list(account_ids),
            kind=Invoice.Kind.INSTALMENT,
            number__isnull=False,
            period_start__gte=period_start,
            period_start__lt=period_end,
        )
        .not_credited()
        .values_list("id", "account_id", "series", "number", "vat", "determinants")
    }
    nets: dict[int, dict[Decimal, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for invoice_id, vat_rate, amount in InvoiceLine.objects.filter(
        invoice_id__in=list(instalments)
    ).values_list("invoice_id", "vat_rate", "amount"):
        nets[invoice_id][vat_rate] += amount
    invoiced: dict[int, dict[Decimal, _Invoiced]] = defaultdict(dict)
    for invoice_id, (account_id, series, number, vat, determinants) in sorted(instalments.items()):
        vats = {Decimal(row["rate"]): Decimal(row["vat"]) for row in determinants.get("vat", [])}
        bases = {Decimal(row["rate"]): Decimal(row["base"]) for row in determinants.get("vat", [])}
        if bases != dict(nets[invoice_id]) or sum(vats.values(), ZERO) != vat:
            failures[account_id] = BillingError(
                f"instalment {Invoice.number_of(series, number)}: its VAT per rate does not match its lines "
                "and VAT total; the VAT invoiced on it is unknown",
                code="instalment_vat_unknown",
            )
            continue
        for vat_rate, net in nets[invoice_id].items():
            known = invoiced[account_id].setdefault(vat_rate, _Invoiced())
            known.count += 1
            known.net += net
            known.vat += vats[vat_rate]
    return invoiced, failures


def _percent(vat_rate: Decimal) -> str:
    return f"{(vat_rate * 100).normalize():f}"


def _settle(draft: BillDraft, invoiced: dict[Decimal, _Invoiced], currency: str) -> None:
    """Credit the instalments on the year's bill ``draft``: one line per VAT rate with
    their net, and per rate VAT = the year's VAT − the VAT invoiced on them."""
    _, _, breakdown = totals(draft.lines, currency)
    year = {Decimal(row["rate"]): (Decimal(row["base"]), Decimal(row["vat"])) for row in breakdown}
    rates = sorted(set(year) | set(invoiced))
    for vat_rate in rates:
        paid = invoiced.get(vat_rate)
        if paid is None:
            continue
        year_vat = year.get(vat_rate, (ZERO, ZERO))[1]
        draft.lines.append(
            _line(
                "On-account instalments billed for the year",
                f"{paid.count} instalments, {paid.net:,.2f} {currency} excl. VAT, credited; "
                f"VAT {_percent(vat_rate)} % = {year_vat:,.2f} on the year's charge less "
                f"{paid.vat:,.2f} invoiced on the instalments",
                -paid.net,
                vat_rate,
                draft.period_start,
                draft.period_end,
            )
        )
    draft.net, _, _ = totals(draft.lines, currency)
    draft.vat, draft.vat_breakdown = ZERO, []
    for vat_rate in rates:
        year_base, year_vat = year.get(vat_rate, (ZERO, ZERO))
        paid = invoiced.get(vat_rate) or _Invoiced()
        vat = quantize_money(year_vat - paid.vat, currency)
        draft.vat += vat
        draft.vat_breakdown.append(
            {
                "rate": str(vat_rate),
                "base": str(quantize_money(year_base - paid.net, currency)),
                "vat": str(vat),
                # how the rate's VAT came about: the year's, less the instalments'
                "year_base": str(quantize_money(year_base, currency)),
                "year_vat": str(quantize_money(year_vat, currency)),
                "instalments_base": str(quantize_money(paid.net, currency)),
                "instalments_vat": str(quantize_money(paid.vat, currency)),
            }
        )
    draft.vat = quantize_money(draft.vat, currency)
    draft.gross = draft.net + draft.vat


def settlement_drafts(
    *,
    currency: str,
    account_ids: Sequence[int],
    period_start: dt.date,
    period_end: dt.date,
    ensure: bool = True,
    time_zone: str | None = None,
) -> tuple[list[BillDraft], dict[int, BillingError]]:
    """The year's actual bill less the instalments issued for it, per VAT rate: their
    net and the VAT invoiced on them (see the module's docstring).

    The period is the plan year: an account whose plan year is another one is not
    settled over this period (its days outside the plan year were billed by invoices)."""
    other_year: dict[int, BillingError] = {
        account_id: BillingError(
            f"on account from {year_start.isoformat()} to {year_end.isoformat()}: a "
            "settlement bills the plan year, not "
            f"{period_start.isoformat()}–{period_end.isoformat()}",
            code="not_plan_year",
        )
        for account_id, year_start, year_end in InstalmentPlan.objects.overlapping(
            period_start, period_end
        )
        .filter(account_id__in=list(account_ids))
        .exclude(year_start=period_start, year_end=period_end)
        .values_list("account_id", "year_start", "year_end")
    }
    # a plan a final settlement ended: the year's days up to the move-out it settled;
    # the account's days after it (moved in again) are invoiced
    ended = {
        account_id: (period_start, ended_on)
        for account_id, ended_on in InstalmentPlan.objects.filter(
            account_id__in=list(account_ids),
            year_start=period_start,
            year_end=period_end,
            ended_on__isnull=False,
        ).values_list("account_id", "ended_on")
    }
    drafts, failures = drafts_compute(
        currency=currency,
        account_ids=[a for a in account_ids if a not in other_year],
        period_start=period_start,
        period_end=period_end,
        ensure=ensure,
        time_zone=time_zone,
        days=ended or None,
    )
    failures.update(other_year)
    invoiced, unknown = _instalments_invoiced(
        account_ids=account_ids, period_start=period_start, period_end=period_end
    )
    for account_id, failure in list(failures.items()):
        if failure.code == "no_contract" and invoiced.get(account_id):
            # no day of the year supplied (a move-out on its first day recorded after an
            # instalment was billed in advance): nothing to bill, the instalments to credit
            drafts.append(_nothing_supplied(account_id, currency, period_start, period_end))
            del failures[account_id]
    settled = []
    for draft in drafts:
        if draft.account_id in unknown:
            failures[draft.account_id] = unknown[draft.account_id]
            continue
        _settle(draft, invoiced.get(draft.account_id, {}), currency)
        settled.append(draft)
    return settled, failures


def _nothing_supplied(
    account_id: int, currency: str, period_start: dt.date, period_end: dt.date
) -> BillDraft:
    """The year's bill of an account supplied on none of its days: no line, no energy."""
    return BillDraft(
        account_id=account_id,
        period_start=period_start,
        period_end=period_end,
        currency=currency,
        lines=[],
        net=ZERO,
        vat=ZERO,
        gross=ZERO,
        vat_breakdown=[],
        readings=[],
        has_estimated_reads=False,
        tariff_version_ids=[],
        determinants=[],
        comparison={"energy_mwh": str(quantize_energy(ZERO)), "last_year_mwh": None},
    )


class UnableToSettle(DomainError):
    code = "unable_to_settle"


def final_settlement_issue(*, plan: InstalmentPlan, now: dt.datetime) -> Invoice:
    """Settle a plan's year early for an account that was closed after its move-out.

    The invoice is the one the year's settlement run would make: the actual consumption
    of the days supplied, less the instalments issued, with the plan year as its period
    (only the instalments' credit for a move-out on the year's first day).
    So the customer's final bill does not wait for the year's end, and the settlement run
    then counts the account as billed: an account is billed once per period and kind.
    A plausible settlement is issued at once; an implausible one stays a held draft.
    """
    from billing.services.invoices import invoice_issue
    from billing.services.write import drafts_write

    account = plan.account
    network = account.network
    if account.status != Account.Status.CLOSED:
        raise UnableToSettle(
            f"Account {account.number} is not closed. An open account is settled by the "
            "year's settlement run; close it after the move-out to settle it now."
        )
    ends = [c.valid_to for c in account.contracts.all() if c.valid_to is not None]
    moved_out = max(ends, default=None)
    not_supplied = (
        f"Account {account.number} was not supplied in the plan year from "
        f"{plan.year_start.isoformat()}"
    )
    if moved_out is None:
        raise UnableToSettle(f"{not_supplied}.")
    if now.astimezone(ZoneInfo(network.time_zone)).date() < moved_out:
        raise UnableToSettle(
            f"The move-out on {moved_out.isoformat()} is still ahead; its meter reading "
            "is needed first."
        )
    with transaction.atomic():
        Account.objects.select_for_update().get(pk=account.pk)  # one settlement at a time
        settled = (
            Invoice.objects.filter(
                account=account,
                kind=Invoice.Kind.SETTLEMENT,
                period_start=plan.year_start,
                period_end=plan.year_end,
            )
            .exclude(state=Invoice.State.CANCELLED)
            .first()
        )
        if settled is not None:
            raise ConflictError(
                f"The year from {plan.year_start.isoformat()} of account {account.number} "
                f"is already settled ({settled.display_number})."
            )
        if moved_out < plan.year_end:
            # settled to the move-out: should the account be supplied again later in the
            # year (reopened, moved in again), invoices bill those days, not the plan
            InstalmentPlan.objects.filter(pk=plan.pk).update(
                ended_on=max(moved_out, plan.year_start)
            )
            plan.ended_on = max(moved_out, plan.year_start)
        drafts, failures = settlement_drafts(
            currency=network.currency,
            account_ids=[account.pk],
            period_start=plan.year_start,
            period_end=plan.year_end,
            time_zone=network.time_zone,
        )
        failure = failures.get(account.pk)
        if failure is not None and failure.code == "no_contract":
            # moved out on the year's first day or before, with no instalment to credit
            raise UnableToSettle(f"{not_supplied}, and no instalment billed for it stands.")
        if failure is not None:
            raise UnableToSettle(f"Account {account.number}: {failure}")
        (invoice_id,) = drafts_write(
            drafts=drafts,
            network_id=network.pk,
            run_id=None,
            kind=Invoice.Kind.SETTLEMENT,
            now=now,
        )
        invoice = Invoice.objects.select_related("network").get(pk=invoice_id)
        if not invoice.held:
            invoice = invoice_issue(invoice=invoice, issued_at=now)
    return invoice
