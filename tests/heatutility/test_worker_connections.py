"""A real worker keeps its database connection between tasks, and replaces a broken one."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from billing import tasks

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def _worker_backends() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return {row[0] for row in cursor.fetchall()}


def _run_task_on_each_pool_process(times: int = 4) -> None:
    # prefetch 1 and two pool processes: concurrent tasks land on both
    results = [tasks.billing_runs_resume_stalled.delay() for _ in range(times)]
    assert [r.get(timeout=60) for r in results] == [0] * times


def test_worker_keeps_its_connection_between_tasks(celery_worker):
    _run_task_on_each_pool_process()
    after_first = _worker_backends()
    assert after_first, "the pool processes' connections stay open after their tasks"
    _run_task_on_each_pool_process()
    # the same backends served the second round (new ones would have new pids)
    assert _worker_backends() == after_first


def test_a_broken_connection_is_replaced_before_the_next_task(celery_worker):
    _run_task_on_each_pool_process()
    before = _worker_backends()
    assert before
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [list(before)]
        )
    deadline = time.monotonic() + 10
    while _worker_backends() & before and time.monotonic() < deadline:
        time.sleep(0.05)
    _run_task_on_each_pool_process()  # would raise "terminating connection" otherwise
    assert _worker_backends()
    assert not _worker_backends() & before
