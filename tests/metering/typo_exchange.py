"""The scenario of an initial register typed wrong at an exchange, shared by the tests of
VEE's check of it (``test_initial_register_step``) and of its correction
(``test_installation_correct``): a meter exchanged on 15 October 2026 whose new meter's
initial register was typed 12,345 kWh for 1,234, then read daily from 1,300 kWh."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from heatutility.timeutil import local_midnight
from metering.models import BoundaryRegister

CPH = "Europe/Copenhagen"
OCT, NOV = dt.date(2026, 10, 1), dt.date(2026, 11, 1)
EXCHANGED = dt.datetime(2026, 10, 15, 10, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC)
TYPO, RIGHT = Decimal("12345"), Decimal("1234")


def daily(first: dt.date, days: int, energy: int, volume: int) -> list[tuple]:
    """Readings at local midnight: 100 kWh and 1 m³ a day from ``energy``, ``volume``."""
    return [
        (
            local_midnight(first + dt.timedelta(days=k), CPH),
            str(energy + 100 * k),
            str(volume + k),
        )
        for k in range(days)
    ]


NEW_READS = daily(dt.date(2026, 10, 16), 17, 1300, 10)  # 1,300 … 2,900 kWh on 1 November


def boundary(connection, on):
    row = BoundaryRegister.objects.filter(connection=connection, on=on).first()
    return None if row is None else (row.energy_kwh, row.status)
