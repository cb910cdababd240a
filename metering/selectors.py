"""Reads that other apps use.  Billing reads register values only through these.

``boundary_registers`` is one set-based query returning a pandas frame; values are
continuous *connection* registers (see :class:`metering.models.BoundaryRegister`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd

from metering.models import BoundaryRegister

BOUNDARY_COLUMNS = [
    "id",
    "connection_id",
    "on",
    "energy_kwh",
    "volume_m3",
    "flow_temp_m3c",
    "return_temp_m3c",
    "status",
    "method",
]


def boundary_registers(*, connection_ids: Sequence[int], dates: Sequence[dt.date]) -> pd.DataFrame:
    """Register values at 00:00 local of ``dates`` for ``connection_ids``.

    One row per existing (connection, date) pair; missing pairs are absent (call
    ``metering.services.boundary_registers_ensure`` first to have them estimated).
    Decimal columns hold ``Decimal`` objects (object dtype), never floats.
    """
    connection_ids = sorted({int(c) for c in connection_ids})
    dates = sorted(set(dates))
    if not connection_ids or not dates:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in BOUNDARY_COLUMNS})
    rows = list(
        BoundaryRegister.objects.filter(connection_id__in=connection_ids, on__in=dates)
        .order_by("connection_id", "on")
        .values_list(*BOUNDARY_COLUMNS)
    )
    frame = pd.DataFrame.from_records(rows, columns=BOUNDARY_COLUMNS)
    for column in BOUNDARY_COLUMNS:
        frame[column] = frame[column].astype(object)
    if not rows:
        return frame
    frame["id"] = frame["id"].astype("int64")
    frame["connection_id"] = frame["connection_id"].astype("int64")
    return frame


def boundary_registers_updated_since(*, since: dt.datetime) -> list[tuple[int, dt.date]]:
    """(connection_id, on) pairs whose value was created or changed at or after ``since``."""
    return [
        (int(connection_id), on)
        for connection_id, on in BoundaryRegister.objects.filter(updated_at__gte=since)
        .order_by("connection_id", "on")
        .values_list("connection_id", "on")
    ]
