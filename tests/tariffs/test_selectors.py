import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection

from tariffs.selectors import price_cap_summary, tariff_slices_for_connections
from tests.customers.factories import ServiceConnectionFactory
from tests.tariffs.factories import TariffAssignmentFactory, TariffFactory, TariffVersionFactory

pytestmark = pytest.mark.django_db


class TestTariffSlicesForConnections:
    def test_splits_where_the_version_changes_and_falls_back_to_the_default(
        self, django_assert_max_num_queries
    ):
        conn_a = ServiceConnectionFactory()
        conn_b = ServiceConnectionFactory(network=conn_a.network)
        special = TariffFactory(network=conn_a.network, code="special")
        default = TariffFactory(network=conn_a.network, code="houses", is_default=True)
        v1 = TariffVersionFactory(
            tariff=special,
            approved=True,
            valid_from=dt.date(2025, 1, 1),
            valid_to=dt.date(2026, 1, 15),
        )
        v2 = TariffVersionFactory(tariff=special, approved=True, valid_from=dt.date(2026, 1, 15))
        TariffVersionFactory(
            tariff=special, valid_from=dt.date(2026, 1, 20)
        )  # draft: never returned
        vd = TariffVersionFactory(tariff=default, approved=True, valid_from=dt.date(2020, 1, 1))
        TariffAssignmentFactory(connection=conn_a, tariff=special, valid_from=dt.date(2026, 1, 10))

        # whatever the number of connections: connections, assignments, defaults, versions,
        # and on PostgreSQL the share lock on their tariffs (selectors.tariffs_hold)
        with django_assert_max_num_queries(5 if connection.vendor == "postgresql" else 4):
            slices = tariff_slices_for_connections(
                connection_ids=[conn_a.id, conn_b.id],
                start=dt.date(2026, 1, 1),
                end=dt.date(2026, 2, 1),
            )

        a = [(s, e, spec.version_id) for s, e, spec in slices[conn_a.id]]
        assert a == [
            (dt.date(2026, 1, 1), dt.date(2026, 1, 10), vd.id),
            (dt.date(2026, 1, 10), dt.date(2026, 1, 15), v1.id),
            (dt.date(2026, 1, 15), dt.date(2026, 2, 1), v2.id),
        ]
        assert [(s, e, spec.version_id) for s, e, spec in slices[conn_b.id]] == [
            (dt.date(2026, 1, 1), dt.date(2026, 2, 1), vd.id)
        ]
        spec = slices[conn_b.id][0][2]
        assert spec.currency == "DKK"
        assert spec.vat_rate == Decimal("0.25")
        assert spec.components[1].price == Decimal("592.52")


class TestPriceCapSummary:
    def test_none_without_an_adopted_cap(self):
        conn = ServiceConnectionFactory()
        assert price_cap_summary(network_id=conn.network_id, on=dt.date(2026, 1, 1)) is None


def test_database_refuses_changing_an_approved_version():
    from django.db import IntegrityError, transaction

    version = TariffVersionFactory(approved=True)
    version.components = [{"type": "energy", "code": "energy", "description": "x", "price": "1"}]
    with pytest.raises(IntegrityError, match="tariffversion_locked"), transaction.atomic():
        version.save()
    assert connection.vendor in ("sqlite", "postgresql")
