"""Celery tasks: thin, take ids, call one service, safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone


@shared_task(acks_late=True, time_limit=30 * 60, soft_time_limit=25 * 60)
def data_import_run_task(data_import_id: int) -> str:
    from tariffs.services import data_import_run

    record = data_import_run(data_import_id=data_import_id, now=timezone.now())
    return record.status
