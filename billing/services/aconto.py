"""On-account (a-conto) instalments and the annual settlement (DOMAIN.md §7).

* A plan estimates the year's consumption from last year's, climate-corrected with
  degree days (DOMAIN.md §3: ``corrected = share · c · DD_normal / DD_actual +
  (1 − share) · c``).
* Each instalment is 1/n (n = 12 monthly, 4 quarterly) of the estimated annual charge at
  the prices in force at the instalment's period: instalments follow price changes.
  The annual charge is rated by ``tariffs.rating.rate`` over the plan year; the
  instalment is ``quantize_money(annual net of a VAT rate / n)``, one line per VAT rate.
* The settlement bills the year's actual consumption (every tariff version in force,
  prorated by days) and credits the net of the instalments issued for the year, per VAT
  rate, so VAT is settled exactly.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

from django.db.models import Q

from billing import conf
from billing.calc import (
    BillDraft,
    BillingError,
    DraftLine,
    climate_corrected,
    one_year_earlier,
    totals,
)
from billing.models import InstalmentPlan, Invoice, InvoiceLine
from billing.services.compute import contract_intervals, drafts_compute, registers_frame_to_dict
from customers.models import Account
from heatutility.errors import DomainError
from heatutility.money import quantize_energy, quantize_money
from heatutility.timeutil import add_months
from metering import selectors as metering_selectors

ZERO = Decimal("0")


class UnableToPlanInstalments(DomainError):
    code = "unable_to_plan"


def instalment_plan_create(
    *,
    account: Account,
    year_start: dt.date,
    frequency: str,
    now: dt.datetime,
    degree_days_normal: Decimal | None = None,
    degree_days_last_year: Decimal | None = None,
) -> InstalmentPlan:
    """Plan a year of instalments from last year's climate-corrected consumption."""
    if year_start.day != 1:
        raise UnableToPlanInstalments("A settlement year starts on the first of a month.")
    last_start = one_year_earlier(year_start)
    intervals = contract_intervals(account_ids=[account.pk], start=last_start, end=year_start).get(
        account.pk, []
    )
    if not intervals:
        raise UnableToPlanInstalments("The account had no contract last year.")
    frame = metering_selectors.boundary_registers(
        connection_ids=[i.connection_id for i in intervals],
        dates=sorted({d for i in intervals for d in (i.start, i.end)}),
    )
    registers = registers_frame_to_dict(frame)
    energy = volume = ZERO
    for iv in intervals:
        a, b = (
            registers.get((iv.connection_id, iv.start)),
            registers.get((iv.connection_id, iv.end)),
        )
        if a is None or b is None:
            raise UnableToPlanInstalments(
                f"Last year's registers are missing for connection {iv.connection_id}."
            )
        energy += b.energy_kwh - a.energy_kwh
        volume += b.volume_m3 - a.volume_m3
    last_mwh = quantize_energy(energy / 1000)
    share = Decimal(str(conf.get("HEATING_SHARE")))
    corrected = quantize_energy(
        climate_corrected(
            consumption=last_mwh,
            heating_share=share,
            dd_normal=degree_days_normal,
            dd_actual=degree_days_last_year,
        )
    )
    factor = corrected / last_mwh if last_mwh else Decimal(1)
    explanation = f"last year {last_mwh} MWh"
    if degree_days_normal and degree_days_last_year:
        explanation += (
            f", climate-corrected with {share:.0%} heating share × {degree_days_normal} normal / "
            f"{degree_days_last_year} actual degree days = {corrected} MWh"
        )
    return InstalmentPlan.objects.create(
        account=account,
        year_start=year_start,
        year_end=add_months(year_start, 12),
        frequency=frequency,
        last_year_mwh=last_mwh,
        estimated_mwh=corrected,
        estimated_m3=(volume * factor).quantize(Decimal("0.0001")),
        explanation=explanation,
        created_at=now,
    )


def plan_account_ids(*, network_id: int, period_start: dt.date, months: int) -> list[int]:
    frequency = (
        InstalmentPlan.Frequency.MONTHLY if months == 1 else InstalmentPlan.Frequency.QUARTERLY
    )
    return list(
        InstalmentPlan.objects.filter(
            account__network_id=network_id,
            frequency=frequency,
            year_start__lte=period_start,
            year_end__gt=period_start,
        )
        .order_by("account_id")
        .values_list("account_id", flat=True)
    )


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


def instalment_drafts(
    *, currency: str, account_ids: Sequence[int], period_start: dt.date, period_end: dt.date
) -> tuple[list[BillDraft], dict[int, BillingError]]:
    from tariffs.rating import Determinants, rate
    from tariffs.selectors import tariff_slices_for_connections

    plans = {
        p.account_id: p
        for p in InstalmentPlan.objects.filter(
            account_id__in=list(account_ids),
            year_start__lte=period_start,
            year_end__gt=period_start,
        )
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
            n = 12 if plan.frequency == InstalmentPlan.Frequency.MONTHLY else 4
            step = 12 // n
            months = (
                (period_start.year - plan.year_start.year) * 12
                + period_start.month
                - plan.year_start.month
            )
            index = months // step + 1
            total_kw = sum((i.contracted_kw for i in ivs), ZERO) or Decimal(1)
            by_rate: dict[Decimal, Decimal] = defaultdict(lambda: ZERO)
            version_ids = []
            for iv in ivs:
                conn_slices = slices.get(iv.connection_id) or []
                if not conn_slices:
                    raise BillingError(
                        f"no tariff for connection {iv.connection_id}", code="no_tariff"
                    )
                spec = conn_slices[0][2]
                version_ids.append(spec.version_id)
                share = iv.contracted_kw / total_kw
                det = Determinants(
                    period_start=plan.year_start,
                    period_end=plan.year_end,
                    energy_mwh=quantize_energy(plan.estimated_mwh * share),
                    volume_m3=(plan.estimated_m3 * share).quantize(Decimal("0.0001")),
                    return_temp_c=None,
                    flow_temp_c=None,
                    contracted_kw=iv.contracted_kw,
                    heated_area_m2=iv.heated_area_m2,
                    annual_energy_mwh=plan.estimated_mwh,
                )
                for priced in rate(determinants=det, tariff=spec):
                    by_rate[priced.vat_rate] += priced.amount
            lines = []
            for vat_rate, annual in sorted(by_rate.items()):
                amount = quantize_money(annual / n, currency)
                lines.append(
                    _line(
                        f"On-account instalment {index} of {n}",
                        f"1/{n} × estimated annual charge {annual:,.2f} {currency} "
                        f"({plan.estimated_mwh.normalize():f} MWh; {plan.explanation}) at current prices",
                        amount,
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
                    determinants=[{"plan_id": plan.pk, "estimated_mwh": str(plan.estimated_mwh)}],
                    comparison={"energy_mwh": str(plan.estimated_mwh / n), "last_year_mwh": None},
                )
            )
        except BillingError as exc:
            failures[account_id] = exc
    return drafts, failures


def settlement_drafts(
    *, currency: str, account_ids: Sequence[int], period_start: dt.date, period_end: dt.date
) -> tuple[list[BillDraft], dict[int, BillingError]]:
    """The year's actual bill minus the instalments issued for it (per VAT rate)."""
    drafts, failures = drafts_compute(
        currency=currency, account_ids=account_ids, period_start=period_start, period_end=period_end
    )
    billed: dict[int, dict[Decimal, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    counts: dict[int, int] = defaultdict(int)
    instalments = (
        Invoice.objects.filter(
            account_id__in=list(account_ids),
            kind=Invoice.Kind.INSTALMENT,
            number__isnull=False,
            period_start__gte=period_start,
            period_start__lt=period_end,
        )
        .exclude(Q(corrections__kind=Invoice.Kind.CREDIT_NOTE))
        .values_list("id", "account_id")
    )
    instalment_account = dict(instalments)
    for inv_id in instalment_account:
        counts[instalment_account[inv_id]] += 1
    for invoice_id, vat_rate, amount in InvoiceLine.objects.filter(
        invoice_id__in=list(instalment_account)
    ).values_list("invoice_id", "vat_rate", "amount"):
        billed[instalment_account[invoice_id]][vat_rate] += amount
    for draft in drafts:
        for vat_rate, amount in sorted(billed.get(draft.account_id, {}).items()):
            draft.lines.append(
                _line(
                    "On-account instalments billed for the year",
                    f"{counts[draft.account_id]} instalments, {amount:,.2f} {currency} excl. VAT, credited",
                    -amount,
                    vat_rate,
                    period_start,
                    period_end,
                )
            )
        draft.net, draft.vat, draft.vat_breakdown = totals(draft.lines, currency)
        draft.gross = draft.net + draft.vat
    return drafts, failures
