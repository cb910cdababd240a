import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metering.models import BoundaryRegister
from metering.selectors import boundary_registers, boundary_registers_updated_since
from tests.customers.factories import ServiceConnectionFactory

pytestmark = pytest.mark.django_db


def _register(conn, on, energy, status="actual", method="reading", flow=None, ret=None):
    return BoundaryRegister.objects.create(
        connection=conn,
        on=on,
        energy_kwh=Decimal(energy),
        volume_m3=Decimal("12.5000"),
        flow_temp_m3c=flow,
        return_temp_m3c=ret,
        status=status,
        method=method,
    )


class TestBoundaryRegisters:
    def test_returns_existing_pairs_as_decimals_in_one_query(self):
        a, b = ServiceConnectionFactory(), ServiceConnectionFactory()
        r1 = _register(a, dt.date(2026, 10, 1), "1000.123456", flow=Decimal("937.5000"))
        _register(a, dt.date(2026, 11, 1), "1800.5", status="estimated", method="interpolation")
        _register(b, dt.date(2026, 10, 1), "5")
        _register(b, dt.date(2026, 9, 1), "1")  # date not asked for

        with CaptureQueriesContext(connection) as queries:
            frame = boundary_registers(
                connection_ids=[a.id, b.id],
                dates=[dt.date(2026, 10, 1), dt.date(2026, 11, 1)],
            )

        assert len(queries) == 1
        assert list(frame.columns) == [
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
        assert len(frame) == 3  # b has no value on 2026-11-01: simply absent
        first = frame.iloc[0]
        assert first["id"] == r1.id
        assert first["connection_id"] == a.id
        assert first["on"] == dt.date(2026, 10, 1)
        assert first["energy_kwh"] == Decimal("1000.123456")
        assert isinstance(first["energy_kwh"], Decimal)
        assert first["flow_temp_m3c"] == Decimal("937.5")
        assert first["return_temp_m3c"] is None
        estimated = frame[(frame.connection_id == a.id) & (frame.on == dt.date(2026, 11, 1))]
        assert estimated.iloc[0]["status"] == "estimated"
        assert estimated.iloc[0]["method"] == "interpolation"

    def test_empty_input_gives_empty_frame_with_columns(self):
        frame = boundary_registers(connection_ids=[], dates=[dt.date(2026, 1, 1)])
        assert frame.empty
        assert "energy_kwh" in frame.columns


class TestBoundaryRegistersUpdatedSince:
    def test_lists_pairs_changed_at_or_after(self):
        conn = ServiceConnectionFactory()
        old = _register(conn, dt.date(2026, 9, 1), "1")
        new = _register(conn, dt.date(2026, 10, 1), "2")
        cut = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        BoundaryRegister.objects.filter(pk=old.pk).update(updated_at=cut - dt.timedelta(seconds=1))
        BoundaryRegister.objects.filter(pk=new.pk).update(updated_at=cut)

        assert boundary_registers_updated_since(since=cut) == [(conn.id, dt.date(2026, 10, 1))]


class TestDegreeDaysAreRecords:
    def test_a_network_with_degree_days_cannot_be_deleted_with_them(self):
        from django.db.models import ProtectedError

        from metering.models import DegreeDay
        from tests.customers.factories import NetworkFactory

        network = NetworkFactory()
        DegreeDay.objects.create(
            network=network, on=dt.date(2026, 1, 5), degree_days=Decimal("12.40")
        )

        with pytest.raises(ProtectedError):
            network.delete()
        assert DegreeDay.objects.filter(network=network).count() == 1
