"""Boundary-register estimation reads only the neighbours it needs, never a whole history.

At 100,000 meters read hourly a meter has 8,760 reads a year; estimating two month
starts must not load them.
"""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from heatutility.timeutil import local_midnight
from metering.selectors import boundary_registers
from metering.services import boundary_registers_ensure
from metering.vee import estimation
from tests.metering.factories import MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.django_db
CPH = "Europe/Copenhagen"
FIRST = dt.date(2024, 6, 1)


def noon(day):
    return local_midnight(day, CPH) + dt.timedelta(hours=12)


def energy(day):
    """10 kWh a day, read every day at 12:00 local since 1 June 2024."""
    return Decimal(10 * (day - FIRST).days)


@pytest.fixture
def daily_meter():
    inst = MeterInstallationFactory(installed_at=local_midnight(dt.date(2024, 5, 1), CPH))
    days = [FIRST + dt.timedelta(days=n) for n in range((dt.date(2026, 11, 20) - FIRST).days + 1)]
    add_readings(inst.meter, [(noon(d), str(energy(d)), str(energy(d) / 100)) for d in days])
    return inst


@pytest.fixture
def loaded_points(monkeypatch):
    """The points each estimate is computed from (what was loaded from the readings)."""
    seen = []
    real = estimation.estimate

    def spy(*, points, **kwargs):
        seen.append(points)
        return real(points=points, **kwargs)

    monkeypatch.setattr(estimation, "estimate", spy)
    return seen


class TestEstimationIsWindowed:
    def test_only_the_neighbours_of_each_boundary_and_last_year_are_loaded(
        self, daily_meter, loaded_points, django_assert_max_num_queries
    ):
        conn = daily_meter.unit.connection
        dates = [dt.date(2026, 10, 1), dt.date(2026, 11, 1), dt.date(2026, 12, 1)]

        # the connection's lock, registers, connections, installations, nearest reads
        # (two rounds), rollover markers, degree days (two), three inserts, all in a
        # savepoint: 14, whatever the history
        with (
            django_assert_max_num_queries(14),
            CaptureQueriesContext(connection) as queries,
        ):
            boundary_registers_ensure(connection_ids=[conn.id], dates=dates)

        frame = boundary_registers(connection_ids=[conn.id], dates=dates)
        got = {row.on: (row.energy_kwh, row.status, row.method) for row in frame.itertuples()}
        # midnight is half-way between two noon reads (no DST change on these nights)
        assert got[dt.date(2026, 10, 1)] == (
            energy(dt.date(2026, 9, 30)) + 5,
            "estimated",
            "interpolation",
        )
        assert got[dt.date(2026, 11, 1)] == (
            energy(dt.date(2026, 10, 31)) + 5,
            "estimated",
            "interpolation",
        )
        # no later read: 20 Nov 12:00 → 1 Dec 00:00 a year earlier was 10.5 days × 10 kWh
        assert got[dt.date(2026, 12, 1)] == (
            energy(dt.date(2026, 11, 20)) + 105,
            "estimated",
            "last_year",
        )

        # 903 reads stored; the estimates saw only the nearest read on each side of every
        # instant they asked about
        read_days = sorted(
            p.at.astimezone(estimation.ZoneInfo(CPH)).date() for p in loaded_points[-1] if p.is_read
        )
        assert read_days == [
            dt.date(2025, 9, 30),
            dt.date(2025, 10, 1),
            dt.date(2025, 10, 31),
            dt.date(2025, 11, 1),
            dt.date(2025, 11, 19),
            dt.date(2025, 11, 20),
            dt.date(2025, 11, 30),
            dt.date(2025, 12, 1),
            dt.date(2026, 9, 30),
            dt.date(2026, 10, 1),
            dt.date(2026, 10, 31),
            dt.date(2026, 11, 1),
            dt.date(2026, 11, 20),
        ]
        assert FIRST not in read_days
        reading_queries = [
            q["sql"] for q in queries if re.search(r"\bmetering_reading\b", q["sql"])
        ]
        assert reading_queries
        # every look-up of readings is a bounded nearest-read descent, not a range scan
        assert all("LIMIT 1" in sql for sql in reading_queries)

    def test_a_connection_with_several_meters_and_many_dates_needs_no_more_queries(
        self, daily_meter, django_assert_max_num_queries
    ):
        other = MeterInstallationFactory(installed_at=local_midnight(dt.date(2024, 5, 1), CPH))
        every_3_days = [dt.date(2025, 12, 1) + dt.timedelta(days=3 * n) for n in range(120)]
        add_readings(other.meter, [(noon(d), 30 * n, n) for n, d in enumerate(every_3_days)])
        months = [dt.date(2026, m, 1) for m in range(1, 12)]
        connection_ids = [daily_meter.unit.connection.id, other.unit.connection.id]

        # 22 registers written one by one (plus savepoints); reads in one statement
        with django_assert_max_num_queries(6 + 22 * 3):
            boundary_registers_ensure(connection_ids=connection_ids, dates=months)

        frame = boundary_registers(connection_ids=connection_ids, dates=months)
        daily = frame[frame.connection_id == daily_meter.unit.connection.id]
        assert list(daily.energy_kwh) == [energy(m - dt.timedelta(days=1)) + 5 for m in months]
        assert len(frame) == 22
