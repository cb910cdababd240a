"""Test set-up shared by every app.

* Tests marked ``postgres`` need PostgreSQL; ``redis`` tests need a Redis broker and start
  real Celery worker processes.  On the embedded SQLite default they are skipped with a
  reason; CI sets ``HEATUTILITY_FORBID_SKIPS=1`` and then any skipped test fails the run.
* Celery runs tasks eagerly in the test process unless a test asks for a real worker
  (``celery_worker`` fixture in ``tests/workers.py``).
* The readings' retention horizon stays at 1 January 2023 whatever the year
  (``tests/retention.py``), so the tests' 2023–2027 readings are never refused as too old.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.db import connection

from heatutility.celery import app as celery_app
from tests.retention import SUITE_HORIZON_YEAR, retention_years_since

pytest_plugins = ["tests.workers"]


def pytest_configure(config):
    """The tests' readings (2023 on) stay inside the retention window whatever year the
    suite runs in (``tests.retention``); worker processes get the same setting."""
    settings.READINGS_RETENTION_YEARS = max(
        settings.READINGS_RETENTION_YEARS, retention_years_since(SUITE_HORIZON_YEAR)
    )


def _on_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://…")
    skip_redis = pytest.mark.skip(
        reason="needs PostgreSQL and Redis with real Celery workers: set DATABASE_URL and REDIS_URL"
    )
    for item in items:
        if "postgres" in item.keywords and not _on_postgres():
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not (settings.REDIS_URL and _on_postgres()):
            item.add_marker(skip_redis)


def pytest_sessionfinish(session, exitstatus):
    """In CI every test runs: a skipped test is a failed run."""
    if os.environ.get("HEATUTILITY_FORBID_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        reporter.write_line(
            f"HEATUTILITY_FORBID_SKIPS=1: {skipped} test(s) were skipped; CI requires all to run.",
            red=True,
        )
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def _eager_celery():
    """Tasks run in process unless a test starts a real worker; each test starts outside
    any task.  (An embedded test worker's pool sets Celery's process-wide "inside a
    task" flag when it starts, which can happen after the fixture reset it: a later
    test's ``result.get()`` then refused to wait, depending on test order.)"""
    from celery._state import _set_task_join_will_block

    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    _set_task_join_will_block(False)
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _fresh_local_cache():
    """Each test starts with an empty in-process cache (the embedded default).  SQLite
    hands a rolled-back test's ids out again, so a throttle's history kept under a
    vendor's id leaked into a later test whose vendor got the same id (a 429 on its
    first request).  Redis is not flushed: it is the broker too, and PostgreSQL's ids
    do not repeat."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    if isinstance(caches["default"], LocMemCache):
        caches["default"].clear()


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"
