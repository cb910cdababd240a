"""Archiving a month stopped half-way (the worker killed or its time limit hit, the
statement cancelled while ``DETACH … CONCURRENTLY`` waits for older transactions): the
next run finishes that month, and goes on with the others.

Before, a month whose concurrent detach was interrupted stayed "pending detach", and
every later run failed on it ("already pending detach"): no month was archived again.
A month detached but not yet dropped was no partition any more, so later runs skipped
it: its table stayed, and no placeholder held its place."""

import datetime as dt
import gzip
import threading

import pytest
from django.db import DatabaseError, IntegrityError, connection, connections, transaction

from metering import retention
from metering.models import Reading
from metering.retention import readings_archive
from tests.concurrency import finish, in_thread
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.postgres
NOW = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)
MONTH = "metering_reading_y2019m07"
OLD = [dt.datetime(2019, 7, d, tzinfo=dt.UTC) for d in (1, 2, 31)]


def _table_state(name: str) -> tuple[bool, bool, bool]:
    """(exists, a partition of metering_reading, holds the archived placeholder check)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = c.oid "
            "AND inhparent = 'metering_reading'::regclass), EXISTS (SELECT 1 FROM "
            "pg_constraint k WHERE k.conrelid = c.oid AND k.conname = 'reading_archived') "
            "FROM pg_class c WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace",
            [name],
        )
        row = cursor.fetchone()
    return (False, False, False) if row is None else (True, *row)


def _archived_lines(path) -> list[str]:
    with gzip.open(path, "rt") as handle:
        return handle.read().splitlines()


@pytest.mark.django_db
def test_a_month_detached_but_not_dropped_is_finished(settings, tmp_path):
    settings.READINGS_RETENTION_YEARS = 3
    settings.READINGS_ARCHIVE_DIR = tmp_path
    meter = HeatMeterFactory()
    add_readings(meter, [(at, "100", "1") for at in OLD])
    # the worker died after the detach, before the drop and the placeholder
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE metering_reading DETACH PARTITION {MONTH}")

    assert MONTH in [m.partition for m in readings_archive(now=NOW, dry_run=True)]
    archived = {m.partition: m for m in readings_archive(now=NOW)}

    assert archived[MONTH].rows == 3
    assert len(_archived_lines(archived[MONTH].path)) == 4  # the header and 3 readings
    assert _table_state(MONTH) == (True, True, True)  # the placeholder, nothing else
    with pytest.raises(IntegrityError, match="reading_archived"), transaction.atomic():
        add_readings(meter, [(dt.datetime(2019, 7, 5, tzinfo=dt.UTC), "150", "1.5")])
    assert MONTH not in [m.partition for m in readings_archive(now=NOW, dry_run=True)]


@pytest.mark.django_db(transaction=True)
def test_a_month_whose_concurrent_detach_was_interrupted_is_finished(
    settings, tmp_path, monkeypatch
):
    # committed for good here: only this test's month, not older ones other tests left
    real = retention._partitions
    monkeypatch.setattr(
        retention, "_partitions", lambda cursor: [p for p in real(cursor) if p[0] == MONTH]
    )
    settings.READINGS_RETENTION_YEARS = 3
    settings.READINGS_ARCHIVE_DIR = tmp_path
    meter = HeatMeterFactory()
    add_readings(meter, [(at, "100", "1") for at in OLD])
    try:
        # a report reading the readings holds its transaction open; the archive's
        # concurrent detach waits for it, and its statement is cancelled meanwhile
        reading, done = threading.Event(), threading.Event()

        def report():
            with transaction.atomic():
                Reading.objects.filter(read_at__lt=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)).count()
                reading.set()
                done.wait(30)

        thread, outcome = in_thread(report)
        assert reading.wait(30)
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = '500ms'")
        try:
            with pytest.raises(DatabaseError, match="statement timeout"):
                readings_archive(now=NOW)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET statement_timeout = 0")
            done.set()
            finish(thread)
        assert "error" not in outcome, outcome

        archived = {m.partition: m for m in readings_archive(now=NOW)}  # the next run

        assert archived[MONTH].rows == 3
        assert len(_archived_lines(archived[MONTH].path)) == 4
        assert _table_state(MONTH) == (True, True, True)
        assert not Reading.objects.filter(read_at__in=OLD).exists()
    finally:  # the placeholder outlives this test's flush: later tests get the month back
        connections.close_all()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {MONTH}")
