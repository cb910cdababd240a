"""The frame contract of ``boundary_registers`` in detail: dtypes, order, None, duplicates."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metering.models import BoundaryRegister
from metering.selectors import boundary_registers
from tests.customers.factories import ServiceConnectionFactory

pytestmark = pytest.mark.django_db


def test_frame_dtypes_order_and_values_for_many_ids():
    a, b = ServiceConnectionFactory(), ServiceConnectionFactory()
    days = [dt.date(2026, 9, 1), dt.date(2026, 10, 1), dt.date(2026, 11, 1)]
    for conn in (b, a):  # inserted out of order
        for i, day in enumerate(reversed(days)):
            BoundaryRegister.objects.create(
                connection=conn,
                on=day,
                energy_kwh=Decimal("100.000001") * (i + 1),
                volume_m3=Decimal("2.5000"),
                flow_temp_m3c=None if i else Decimal("150.0000"),
                return_temp_m3c=Decimal("80.2500"),
                status="estimated" if i == 1 else "actual",
                method="",
            )
    ids = [b.id, a.id, a.id, *range(10_000_000, 10_001_500)]  # duplicates and many unknown ids
    with CaptureQueriesContext(connection) as queries:
        frame = boundary_registers(
            connection_ids=ids, dates=[days[2], days[0], days[0], dt.date(2030, 1, 1)]
        )
    assert len(queries) == 1
    assert [str(t) for t in frame.dtypes] == ["int64", "int64", *["object"] * 7]
    assert list(zip(frame.connection_id, frame.on, strict=True)) == [
        (a.id, days[0]),
        (a.id, days[2]),
        (b.id, days[0]),
        (b.id, days[2]),
    ]
    row = frame.iloc[0]  # 1 September is the third value inserted: i = 2
    assert row["energy_kwh"] == Decimal("300.000003")
    assert isinstance(row["energy_kwh"], Decimal)
    assert isinstance(row["volume_m3"], Decimal)
    assert row["flow_temp_m3c"] is None
    assert row["return_temp_m3c"] == Decimal("80.25")
    assert row["status"] == "actual"
    assert row["method"] == ""
    assert isinstance(row["on"], dt.date)
    last = frame.iloc[1]  # 1 November: i = 0
    assert last["flow_temp_m3c"] == Decimal("150")
    assert isinstance(last["flow_temp_m3c"], Decimal)
    assert frame.id.tolist() == [
        BoundaryRegister.objects.get(connection=c, on=d).pk
        for c, d in ((a, days[0]), (a, days[2]), (b, days[0]), (b, days[2]))
    ]


def test_no_matching_rows_gives_empty_object_frame():
    conn = ServiceConnectionFactory()
    frame = boundary_registers(connection_ids=[conn.id], dates=[dt.date(2026, 1, 1)])
    assert frame.empty
    assert list(frame.columns)[:3] == ["id", "connection_id", "on"]
    assert set(map(str, frame.dtypes)) == {"object"}
