"""Demo step: bill the last complete month before ``ctx.as_of`` for the demo network.

A billing run through the Celery tasks (eager on the embedded default, real workers with
REDIS_URL), issue with gapless numbers, PDFs rendered and stored, then a summary with a
sample invoice's explained lines.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.db.models import Sum

from billing import tasks
from billing.models import BillingRun, Invoice
from billing.services.runs import billing_run_create, billing_run_issue
from heatutility.demo import wait_until
from heatutility.timeutil import add_months, local_midnight, month_start


def run(ctx) -> list[str]:
    network = ctx.network
    period_start = add_months(month_start(ctx.as_of), -1)
    zone = ZoneInfo(network.time_zone)
    # the demo's "now": 07:00 local on as_of, so runs are reproducible
    now = local_midnight(ctx.as_of, zone) + dt.timedelta(hours=7)
    existing = BillingRun.objects.filter(
        network=network, period_start=period_start, kind=BillingRun.Kind.INVOICE
    ).exclude(state=BillingRun.State.CANCELLED)
    for old in existing:  # a re-run of the demo on the same database
        if old.state != BillingRun.State.ISSUED:
            from billing.services.runs import billing_run_cancel

            billing_run_cancel(run=old)
    billing_run = existing.filter(state=BillingRun.State.ISSUED).first()
    if billing_run is None:
        billing_run = billing_run_create(
            network=network, period_start=period_start, now=now, chunk_size=max(10, ctx.size // 4)
        )
        tasks.billing_run_start.delay(billing_run.pk)
        wait_until(
            lambda: BillingRun.objects.filter(
                pk=billing_run.pk, state=BillingRun.State.DRAFTED
            ).exists(),
            what=f"billing run {billing_run.pk}",
        )
        # issuing queues the PDFs (Celery; in process on the embedded default)
        ids = billing_run_issue(run=billing_run, issued_at=now)
        wait_until(
            lambda: not Invoice.objects.filter(pk__in=ids, pdf="").exists(),
            what=f"PDFs of {len(ids)} invoices",
        )
        billing_run.refresh_from_db()
    invoices = Invoice.objects.filter(run=billing_run)
    issued = invoices.filter(number__isnull=False)
    totals = issued.aggregate(net=Sum("net"), vat=Sum("vat"), gross=Sum("gross"))
    estimated = sum(
        1
        for readings in issued.values_list("readings", flat=True)
        for r in readings
        if r.get("status") == "estimated"
    )
    pdfs = issued.exclude(pdf="").count()
    lines = [
        f"billing run {period_start:%B %Y} for {network.name}: {billing_run.total} accounts, "
        f"{issued.count()} invoices issued, {billing_run.held} held for review, "
        f"{billing_run.failed} exceptions",
        f"total {totals['gross'] or 0:,.2f} {network.currency} incl. VAT "
        f"(net {totals['net'] or 0:,.2f} + VAT {totals['vat'] or 0:,.2f})",
        f"{issued.filter(has_estimated_reads=True).count()} invoices used estimated readings "
        f"({estimated} estimated register values, marked on the invoice)",
        f"{pdfs} PDFs stored (e.g. {issued.exclude(pdf='').values_list('pdf', flat=True).first() or '—'})",
        f"{issued.filter(emailed_at__isnull=False).count()} e-mailed to their customers with "
        f"the PDF attached{_mail_where()}",
    ]
    for exc in billing_run.exceptions.all()[:3]:
        lines.append(f"exception: account {exc.account_id}: {exc.error}")
    for held in invoices.filter(held=True)[:3]:
        lines.append(f"held: account {held.account_id}: {held.hold_reason}")
    sample = issued.order_by("number").first()
    if sample is not None:
        lines.append(
            f"sample {sample.display_number} (account {sample.account.number}), due {sample.due_on}:"
        )
        for line in sample.lines.all():
            lines.append(
                f"  {line.description}: {line.explanation} = {line.amount} {sample.currency}"
            )
        lines.append(f"  VAT {sample.vat}  total {sample.gross} {sample.currency}")
    return lines


def _mail_where() -> str:
    from django.conf import settings

    if settings.EMAIL_BACKEND.endswith("filebased.EmailBackend"):
        return f" (written to {settings.EMAIL_FILE_PATH}/)"
    return ""
