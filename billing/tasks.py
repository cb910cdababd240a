"""Celery tasks: thin, take ids, call one service, safe to run twice."""

from __future__ import annotations

import gc
import importlib
import smtplib

from celery import group, shared_task
from celery.signals import worker_init
from django.db import OperationalError, transaction
from django.utils import timezone

from billing import conf
from billing.models import BillingRun

# The queue the running task came from: follow-up tasks (chunks, issue, PDFs) go to the
# same queue, so a run started on a dedicated queue stays on its workers.
_queue: str | None = None


def _enter(task) -> None:
    global _queue
    info = getattr(task.request, "delivery_info", None) or {}
    _queue = info.get("routing_key") or None


def _options() -> dict:
    return {"queue": _queue} if _queue else {}


# billing.services.runs brings compute, write and invoices; metering.selectors brings pandas
_CHUNK_MODULES = (
    "billing.services.runs",
    "metering.selectors",
    "tariffs.rating",
    "tariffs.selectors",
)


@worker_init.connect
def _worker_warm(**_kwargs) -> None:
    """Import the chunk's code path in the worker's main process, before the pool forks.

    Otherwise every pool process pays for importing pandas, the selectors and the rating
    engine (about a second of CPU) inside its first chunk.  ``gc.freeze()`` then moves
    everything imported so far out of the collector's reach: later collections do not
    walk (or copy-on-write touch) the modules the pool processes share.
    """
    for module in _CHUNK_MODULES:
        importlib.import_module(module)
    gc.collect()
    gc.freeze()


@shared_task(bind=True, acks_late=True)
def billing_run_start(self, run_id: int, throttle_s: float = 0.0) -> int:
    """Plan the run's chunks and fan them out over the workers (a Celery group)."""
    from billing.services.runs import billing_run_plan

    _enter(self)
    run = BillingRun.objects.get(pk=run_id)
    chunk_ids = billing_run_plan(run=run, now=timezone.now())
    if chunk_ids:
        group(billing_run_chunk.s(cid, throttle_s) for cid in chunk_ids).apply_async(**_options())
    return len(chunk_ids)


# A resumed run is the same operation: plan (no-op if planned) and dispatch what is left.
billing_run_resume = billing_run_start


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError,),  # lost connection, deadlock, serialization: retry
    retry_backoff=True,
    max_retries=3,
)
def billing_run_chunk(self, chunk_id: int, throttle_s: float = 0.0) -> bool:
    from billing.services.runs import billing_run_chunk_process

    _enter(self)
    return billing_run_chunk_process(chunk_id=chunk_id, now=timezone.now(), throttle_s=throttle_s)


@shared_task(bind=True, acks_late=True)
def billing_run_issue(self, run_id: int) -> int:
    from billing.services.runs import billing_run_issue as issue

    _enter(self)
    return len(issue(run=BillingRun.objects.get(pk=run_id), issued_at=timezone.now()))


@shared_task(bind=True, acks_late=True)
def invoices_render_pdfs(self, invoice_ids: list[int]) -> int:
    """Render the missing PDFs of issued invoices and e-mail them after commit; a reminder
    fee's document is its dunning letter, rendered (or re-used) and e-mailed by the
    letter renderer."""
    from billing.documents import invoice_pdf_render
    from billing.models import DunningLetter, Invoice

    queue = _queue_of(self.request)
    rendered = 0
    missing = Invoice.objects.filter(id__in=invoice_ids, pdf="").exclude(number=None)
    try:
        for invoice in missing.exclude(kind=Invoice.Kind.REMINDER_FEE):
            invoice_pdf_render(invoice=invoice)
            rendered += 1
    finally:  # also what an earlier, failed or killed, run of this batch stored
        _email_after_commit(invoices_email, _invoices_undelivered(invoice_ids), queue=queue)
    letters = DunningLetter.objects.filter(
        fee_invoice__in=missing.filter(kind=Invoice.Kind.REMINDER_FEE)
    ).values_list("pk", flat=True)
    if letters:
        return rendered + _letters_render(list(letters), queue=queue)
    return rendered


@shared_task(bind=True, acks_late=True)
def dunning_letters_render_pdfs(self, letter_ids: list[int]) -> int:
    """Render the PDFs of the dunning letters ``letter_ids``, give each fee invoice its
    letter and e-mail the letters after commit (safe to run twice: an existing PDF is
    kept and re-used)."""
    return _letters_render(letter_ids, queue=_queue_of(self.request))


def _letters_render(letter_ids: list[int], *, queue: str | None) -> int:
    from billing.models import DunningLetter
    from billing.reminders import reminder_pdf_render

    rendered = 0
    letters = DunningLetter.objects.filter(id__in=letter_ids).select_related(
        "account__customer", "fee_invoice"
    )
    try:
        for letter in letters:
            if letter.pdf and (letter.fee_invoice_id is None or letter.fee_invoice.pdf):
                continue
            reminder_pdf_render(letter=letter)
            rendered += 1
    finally:  # also what an earlier, failed or killed, run of this batch stored
        undelivered = DunningLetter.objects.filter(
            id__in=letter_ids, emailed_at__isnull=True, posted_at__isnull=True
        ).exclude(pdf="")
        _email_after_commit(
            dunning_letters_email, list(undelivered.values_list("pk", flat=True)), queue=queue
        )
    return rendered


def _invoices_undelivered(invoice_ids: list[int]) -> list[int]:
    """Those of ``invoice_ids`` with a stored PDF, e-mailed or posted by nobody yet (a
    reminder fee travels with its letter)."""
    from billing.models import Invoice

    return list(
        Invoice.objects.filter(id__in=invoice_ids, emailed_at__isnull=True, posted_at__isnull=True)
        .exclude(number=None)
        .exclude(pdf="")
        .exclude(kind=Invoice.Kind.REMINDER_FEE)
        .values_list("pk", flat=True)
    )


def _queue_of(request) -> str | None:
    """The queue a task was delivered from (None when it runs in process)."""
    return (getattr(request, "delivery_info", None) or {}).get("routing_key")


def _email_after_commit(task, ids: list[int], *, queue: str | None) -> None:
    """E-mail the documents ``ids`` once their PDFs have committed, on ``queue`` (the one
    the rendering task came from); switched off: nothing is queued.  The e-mail task
    skips whatever was delivered meanwhile."""
    if not ids or not conf.email_documents():
        return
    options = {"queue": queue} if queue else {}
    transaction.on_commit(lambda: task.apply_async((ids,), **options))


# A send that fails (mail server down, connection refused) is retried with backoff, for
# some hours; what was sent is skipped by the retry.  Still failing: the admin lists the
# documents as not yet delivered.
_DELIVERY_RETRY = {
    "acks_late": True,
    "autoretry_for": (smtplib.SMTPException, OSError),
    "retry_backoff": 60,
    "retry_backoff_max": 60 * 60,
    "retry_jitter": False,  # 60 s, doubling: with jitter the first retry could be at once
    "max_retries": 8,
}


@shared_task(**_DELIVERY_RETRY)
def invoices_email(invoice_ids: list[int]) -> int:
    """E-mail the stored PDFs of the issued invoices ``invoice_ids``, each at most once."""
    from billing.services.delivery import invoices_email as email

    return email(invoice_ids=invoice_ids, now=timezone.now())


@shared_task(**_DELIVERY_RETRY)
def dunning_letters_email(letter_ids: list[int]) -> int:
    """E-mail the dunning letters ``letter_ids`` (their PDFs), each at most once."""
    from billing.services.delivery import dunning_letters_email as email

    return email(letter_ids=letter_ids, now=timezone.now())


@shared_task(bind=True, acks_late=True)
def reminders_render_pdfs(self, notice_ids: list[int]) -> int:
    """The letters of the dunning notices ``notice_ids`` (the name tasks queued before
    letters covered an account use; the notice admin's action)."""
    from billing.models import DunningNotice

    letter_ids = DunningNotice.objects.filter(id__in=notice_ids, letter__isnull=False).values_list(
        "letter_id", flat=True
    )
    return _letters_render(sorted(set(letter_ids)), queue=_queue_of(self.request))


def invoices_render_pdfs_dispatch(invoice_ids: list[int]) -> None:
    """Render PDFs in parallel: one task per small batch of invoices."""
    if not invoice_ids:
        return
    size = conf.get("PDF_CHUNK")
    ids = list(invoice_ids)
    group(invoices_render_pdfs.s(ids[i : i + size]) for i in range(0, len(ids), size)).apply_async(
        **_options()
    )


@shared_task(acks_late=True)
def rerate_changed_registers() -> int:
    from billing.services.rerating import invoices_rerate_changed

    return len(invoices_rerate_changed(now=timezone.now()))


@shared_task(acks_late=True, time_limit=30 * 60, soft_time_limit=25 * 60)
def rerate_tariff_versions(version_ids: list[int]) -> int:
    """A corrected tariff: re-rate the bills priced with these versions after their end
    (safe to run twice: nothing is credited twice)."""
    from billing.services.rerating import invoices_rerate_for_tariff_versions

    return len(invoices_rerate_for_tariff_versions(version_ids=version_ids, now=timezone.now()))


@shared_task(acks_late=True)
def rerate_tariff_corrections() -> int:
    """Beat: the same for every version closed by an approval since the last look (a
    task lost with the broker when the approval committed is caught up here)."""
    from billing.services.rerating import invoices_rerate_tariff_corrections

    return len(invoices_rerate_tariff_corrections(now=timezone.now()))


@shared_task(acks_late=True)
def rebill_changed_contracts() -> int:
    """Beat: contracts changed after their days were billed (a late move-in or move-out):
    re-rate the invoices over them and bill the days no run billed."""
    from billing.services.contract_changes import contracts_rebill_changed

    rerated, billed = contracts_rebill_changed(now=timezone.now())
    return len(rerated) + len(billed)


@shared_task(acks_late=True)
def dunning_daily() -> int:
    """Beat: per network on its local date, mark overdue invoices and send each account
    one letter with the next dunning level its invoices reached (settings ladder): the
    letter, its notices and fee invoice, its PDF after commit.  Returns the letters sent."""
    from billing.services.dunning import dunning_run

    return len(dunning_run(now=timezone.now()))


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),  # lost connection, deadlock: plan again
    retry_backoff=True,
    max_retries=3,
)
def instalment_planning_run(planning_id: int) -> str:
    """Plan the settlement year staff asked for (one transaction; safe to run twice)."""
    from billing.services.aconto import instalment_planning_run as run

    return run(planning_id=planning_id, now=timezone.now()).state


@shared_task(acks_late=True)
def billing_runs_resume_stalled() -> int:
    """Beat: resume the runs whose tasks were lost (see ``billing_runs_stalled``)."""
    from billing.services.runs import billing_runs_stalled

    stalled = billing_runs_stalled(now=timezone.now())
    for run_id in stalled:
        billing_run_resume.delay(run_id)
    return len(stalled)
