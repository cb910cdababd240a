"""The readings' retention window in tests, pinned to a year instead of to the clock.

``READINGS_RETENTION_YEARS`` counts back from the current year (``readings_horizon``):
with the default of 3, readings of 2026 fall behind the horizon on 1 January 2030, and
every test that delivers them would start failing on that day.  The suite therefore
keeps its horizon at 1 January 2023 (what the default gives in 2026, where the tests'
data were written) whatever year it runs in, and tests of the horizon itself pin theirs
with :func:`retention_years_since`.

The suite's years count from the real year.  A test that passes a fixed ``now`` (say,
of 2026) and depends on where the horizon falls as of it must set the default's 3 years
itself: with the suite's count, that horizon moves back from 2029 on.
"""

from __future__ import annotations

import datetime as dt

SUITE_HORIZON_YEAR = 2023


def retention_years_since(year: int) -> int:
    """The ``READINGS_RETENTION_YEARS`` whose horizon is 1 January of ``year`` as of the
    clock (``readings_horizon`` counts the network's local years: in the hour or so a
    year when those and UTC's differ, the horizon is a year off)."""
    return dt.datetime.now(dt.UTC).year - year
