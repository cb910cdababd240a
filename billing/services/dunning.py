"""Overdue invoices and dunning: reminder notices, their fees and their letters.

* **Local dates.** Each network's own time zone (``Network.time_zone``) decides what
  "today" is: when an invoice becomes overdue and which ladder level it has reached.
* **The ladder** (``BILLING["DUNNING_LADDER"]``): days after the due date, a title, a fee
  and, for the last level, what happens next.  An invoice gets each level at most once
  (unique constraint ``dunningnotice_one_per_level``), one level per run, and the next
  level only after the previous letter's pay-by date has passed, so a missed day never
  sends two letters at once and no letter overtakes the time the last one gave.
* **Fees** are charged as an issued invoice of their own (``Invoice.Kind.REMINDER_FEE``),
  numbered from the same series and counter as every invoice (gapless), due on the
  letter's pay-by date, VAT at ``BILLING["REMINDER_FEE_VAT_RATE"]`` (0: outside the VAT
  scope in Denmark).  It is an ordinary receivable (balance, allocation, exports, credit
  notes) that is never re-rated, never dunned itself and never a period's bill.
* **No dunning in credit**: an account whose balance is ≤ 0 is not dunned (its credit
  covers what is open; allocation will settle it).
* The notice and its fee invoice are one transaction; the letter (PDF, ``billing.reminders``)
  is rendered by a Celery task after commit.  Running the day twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction

from billing import conf
from billing.calc import BillDraft, DraftLine, totals
from billing.models import DunningNotice, Invoice
from billing.services.invoices import _counter
from billing.services.write import drafts_write
from customers.models import Network
from heatutility.money import quantize_money

ZERO = Decimal("0")
FEE_COMPONENT = "reminder_fee"


@dataclass(frozen=True)
class LadderStep:
    level: int
    days: int
    title: str
    fee: Decimal
    next_steps: str


def dunning_ladder() -> list[LadderStep]:
    """The configured ladder, levels numbered from 1; the last level always says what
    happens next (its ``next`` text, or its title)."""
    steps = conf.get("DUNNING_LADDER")
    ladder = []
    for level, step in enumerate(steps, start=1):
        next_steps = str(step.get("next", ""))
        if level == len(steps) and not next_steps:
            next_steps = (
                f"This is our final notice ({step['title']}). If the total is not paid by the "
                "pay-by date, we will take the step this notice names without a further reminder."
            )
        ladder.append(
            LadderStep(
                level=level,
                days=int(step["days"]),
                title=str(step["title"]),
                fee=Decimal(str(step.get("fee", "0"))),
                next_steps=next_steps,
            )
        )
    return ladder


def invoices_mark_overdue(*, today: dt.date, network_id: int | None = None) -> int:
    """Mark open receivables due before ``today`` (a local date of ``network_id``) overdue."""
    overdue = Invoice.objects.filter(
        state__in=(Invoice.State.ISSUED, Invoice.State.PARTLY_PAID), due_on__lt=today, gross__gt=0
    )
    if network_id is not None:
        overdue = overdue.filter(network_id=network_id)
    return overdue.update(state=Invoice.State.OVERDUE)


def dunning_run(*, now: dt.datetime) -> list[DunningNotice]:
    """Mark overdue invoices and send each the next ladder level it has reached, network
    by network, each on its own local date.  Returns the notices sent."""
    notices: list[DunningNotice] = []
    for network in Network.objects.order_by("pk"):
        notices.extend(network_dunning_run(network=network, now=now))
    return notices


def network_dunning_run(*, network: Network, now: dt.datetime) -> list[DunningNotice]:
    from billing.services.payments import account_balance  # payments re-exports this module

    today = now.astimezone(ZoneInfo(network.time_zone)).date()
    invoices_mark_overdue(today=today, network_id=network.pk)
    ladder = dunning_ladder()
    overdue = (
        Invoice.objects.filter(network=network, state=Invoice.State.OVERDUE, gross__gt=0)
        .exclude(kind=Invoice.Kind.REMINDER_FEE)  # no fee on a fee
        .select_related("account__network")
        .prefetch_related("dunning_notices")
        .order_by("due_on", "number")
    )
    in_credit: dict[int, bool] = {}
    notices = []
    for invoice in overdue:
        step = _next_step(invoice=invoice, ladder=ladder, today=today)
        if step is None:
            continue
        if invoice.account_id not in in_credit:
            in_credit[invoice.account_id] = account_balance(account=invoice.account) <= 0
        if in_credit[invoice.account_id]:
            continue
        notice = dunning_notice_send(invoice=invoice, step=step, today=today, now=now)
        if notice is not None:
            notices.append(notice)
    return notices


def _next_step(*, invoice: Invoice, ladder: list[LadderStep], today: dt.date) -> LadderStep | None:
    """The first level ``invoice`` has not had, if it has reached it and the previous
    letter's pay-by date has passed."""
    sent = {n.level: n for n in invoice.dunning_notices.all()}
    days_late = (today - invoice.due_on).days
    for step in ladder:
        if step.level in sent:
            continue
        previous = max(sent.values(), key=lambda n: n.level, default=None)
        if previous is not None and today <= (previous.pay_by or previous.sent_on):
            return None
        return step if days_late >= step.days else None
    return None


def dunning_notice_send(
    *, invoice: Invoice, step: LadderStep, today: dt.date, now: dt.datetime
) -> DunningNotice | None:
    """Send ``step`` for ``invoice``: the notice, and for a fee its issued fee invoice, in
    one transaction; the letter is rendered after commit.  None when the invoice is no
    longer overdue or the level was sent meanwhile (the unique constraint decides)."""
    currency = invoice.currency
    fee = quantize_money(step.fee, currency) if step.fee > 0 else ZERO
    pay_by = today + dt.timedelta(days=conf.reminder_pay_days())
    try:
        with transaction.atomic():
            # the series counter before the invoice row: the order issuing locks them in
            series = conf.invoice_series(today.year)
            counter = _counter(series) if fee > 0 else None
            invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
            open_amount = invoice.gross - invoice.paid
            if invoice.state != Invoice.State.OVERDUE or open_amount <= 0:
                return None
            if DunningNotice.objects.filter(invoice=invoice, level=step.level).exists():
                return None
            notice = DunningNotice.objects.create(
                invoice=invoice,
                level=step.level,
                title=step.title,
                fee=fee,
                open_amount=open_amount,
                sent_on=today,
                pay_by=pay_by,
                next_steps=step.next_steps,
            )
            if counter is not None:
                notice.fee_invoice = _fee_invoice_issue(
                    invoice=invoice,
                    notice=notice,
                    series=series,
                    number=counter.last_number + 1,
                    now=now,
                )
                counter.last_number += 1
                counter.save(update_fields=["last_number"])
                notice.save(update_fields=["fee_invoice"])
            notice_id = notice.pk
            transaction.on_commit(lambda: _letters_dispatch([notice_id]))
    except IntegrityError:
        if DunningNotice.objects.filter(invoice_id=invoice.pk, level=step.level).exists():
            return None  # a concurrent run sent it; ours rolled back, numbers included
        raise
    return notice


def _fee_invoice_issue(
    *, invoice: Invoice, notice: DunningNotice, series: str, number: int, now: dt.datetime
) -> Invoice:
    """Write the notice's fee as an issued invoice numbered ``number`` (the caller holds
    the series counter lock): one line, quantity 1, the configured VAT rate."""
    line = DraftLine(
        connection_id=None,
        period_start=notice.sent_on,
        period_end=notice.sent_on + dt.timedelta(days=1),
        tariff_version_id=None,
        component=FEE_COMPONENT,
        kind=FEE_COMPONENT,
        description=f"Reminder fee: {notice.title}"[:200],
        explanation=(
            f"{notice.title} of {notice.sent_on.isoformat()} for invoice {invoice.display_number}"
        )[:300],
        quantity=Decimal("1"),
        unit="letter",
        unit_price=notice.fee,
        amount=notice.fee,
        vat_rate=conf.reminder_fee_vat_rate(),
    )
    net, vat, breakdown = totals([line], invoice.currency)
    draft = BillDraft(
        account_id=invoice.account_id,
        period_start=line.period_start,
        period_end=line.period_end,
        currency=invoice.currency,
        lines=[line],
        net=net,
        vat=vat,
        gross=net + vat,
        vat_breakdown=breakdown,
        readings=[],
        has_estimated_reads=False,
        tariff_version_ids=[],
        determinants=[],
        comparison={},
    )
    (fee_id,) = drafts_write(
        drafts=[draft],
        network_id=invoice.network_id,
        run_id=None,
        kind=Invoice.Kind.REMINDER_FEE,
        now=now,
        issued=[(series, number, now, notice.pay_by)],
    )
    return Invoice.objects.get(pk=fee_id)


def _letters_dispatch(notice_ids: list[int]) -> None:
    from billing import tasks

    tasks.reminders_render_pdfs.delay(notice_ids)
