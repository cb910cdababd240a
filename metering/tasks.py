"""Celery tasks: thin, take ids, call one service, safe to run twice."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone


@shared_task(acks_late=True, reject_on_worker_lost=True, max_retries=3)
def ingest_batch(batch_id: int) -> None:
    from metering.ingest.batches import readings_batch_process

    readings_batch_process(batch_id=batch_id, now=timezone.now())


@shared_task(acks_late=True)
def ingest_batches_redispatch() -> int:
    """Beat: queue again every batch whose task was lost (never lost, never doubled: see
    ``batches_stalled``)."""
    from metering.ingest.batches import batches_stalled

    stalled = batches_stalled(now=timezone.now())
    for batch_id in stalled:
        ingest_batch.delay(batch_id)
    return len(stalled)


@shared_task(acks_late=True)
def vee_nightly() -> None:
    from metering.vee.services import vee_run_pending

    vee_run_pending(now=timezone.now())


@shared_task(acks_late=True)
def vee_rerun(meter_id: int, start: str, end: str) -> None:
    from metering.vee.services import vee_run_meter

    vee_run_meter(
        meter_id=meter_id,
        start=dt.datetime.fromisoformat(start),
        end=dt.datetime.fromisoformat(end),
        now=timezone.now(),
    )


@shared_task(acks_late=True)
def vee_revalidate(meter_id: int, since: str) -> None:
    """After an installation, removal or exchange, or a change of the meter's register
    settings (``metering.meters.meter_update``): the meter's readings from ``since``;
    the requests it covered (``RevalidationRequest``) go with its results."""
    from metering.vee.services import vee_revalidate_meter

    vee_revalidate_meter(
        meter_id=meter_id, start=dt.datetime.fromisoformat(since), now=timezone.now()
    )


@shared_task(acks_late=True)
def readings_archive_monthly() -> int:
    """Beat: archive the monthly readings partitions that fell behind the retention horizon
    (a no-op when none did, so running it twice is harmless)."""
    from metering.retention import readings_archive

    return len(readings_archive(now=timezone.now()))
