import datetime as dt

import pytest

from tariffs.models import TariffAssignment
from tariffs.selectors import tariff_slices_for_connections
from tariffs.services import tariff_assign
from tests.customers.factories import ServiceConnectionFactory
from tests.tariffs.factories import TariffFactory, TariffVersionFactory

pytestmark = pytest.mark.django_db


def tariffs_on(network, count):
    tariffs = [TariffFactory(network=network) for _ in range(count)]
    for tariff in tariffs:
        TariffVersionFactory(tariff=tariff, approved=True, valid_from=dt.date(2020, 1, 1))
    return tariffs


def assignments_of(connection):
    return list(
        TariffAssignment.objects.filter(connection=connection)
        .order_by("valid_from")
        .values_list("tariff_id", "valid_from", "valid_to")
    )


class TestTariffAssign:
    def test_an_assignment_before_a_planned_one_ends_the_day_the_planned_one_begins(self):
        conn = ServiceConnectionFactory()
        current, planned, new = tariffs_on(conn.network, 3)
        tariff_assign(tariff=current, connection_ids=[conn.pk], valid_from=dt.date(2026, 1, 1))
        tariff_assign(tariff=planned, connection_ids=[conn.pk], valid_from=dt.date(2026, 7, 1))

        created = tariff_assign(
            tariff=new, connection_ids=[conn.pk], valid_from=dt.date(2026, 3, 1)
        )

        assert created == 1
        assert assignments_of(conn) == [
            (current.pk, dt.date(2026, 1, 1), dt.date(2026, 3, 1)),
            (new.pk, dt.date(2026, 3, 1), dt.date(2026, 7, 1)),
            (planned.pk, dt.date(2026, 7, 1), None),
        ]

    def test_july_after_a_planned_change_is_billed_once_on_the_planned_tariff(self):
        conn = ServiceConnectionFactory()
        current, planned, new = tariffs_on(conn.network, 3)
        tariff_assign(tariff=current, connection_ids=[conn.pk], valid_from=dt.date(2026, 1, 1))
        tariff_assign(tariff=planned, connection_ids=[conn.pk], valid_from=dt.date(2026, 7, 1))
        tariff_assign(tariff=new, connection_ids=[conn.pk], valid_from=dt.date(2026, 3, 1))

        july = tariff_slices_for_connections(
            connection_ids=[conn.pk], start=dt.date(2026, 7, 1), end=dt.date(2026, 8, 1)
        )[conn.pk]

        assert [(start, end, spec.tariff_code) for start, end, spec in july] == [
            (dt.date(2026, 7, 1), dt.date(2026, 8, 1), planned.code)
        ]

    def test_a_planned_assignment_of_the_same_tariff_starts_earlier_instead(self):
        conn = ServiceConnectionFactory()
        current, planned = tariffs_on(conn.network, 2)
        tariff_assign(tariff=current, connection_ids=[conn.pk], valid_from=dt.date(2026, 1, 1))
        tariff_assign(tariff=planned, connection_ids=[conn.pk], valid_from=dt.date(2026, 7, 1))

        tariff_assign(tariff=planned, connection_ids=[conn.pk], valid_from=dt.date(2026, 3, 1))

        assert assignments_of(conn) == [
            (current.pk, dt.date(2026, 1, 1), dt.date(2026, 3, 1)),
            (planned.pk, dt.date(2026, 3, 1), None),
        ]

    def test_assigning_again_before_a_planned_one_changes_nothing(self):
        conn = ServiceConnectionFactory()
        current, planned, new = tariffs_on(conn.network, 3)
        tariff_assign(tariff=current, connection_ids=[conn.pk], valid_from=dt.date(2026, 1, 1))
        tariff_assign(tariff=planned, connection_ids=[conn.pk], valid_from=dt.date(2026, 7, 1))
        tariff_assign(tariff=new, connection_ids=[conn.pk], valid_from=dt.date(2026, 3, 1))
        before = assignments_of(conn)

        created = tariff_assign(
            tariff=new, connection_ids=[conn.pk], valid_from=dt.date(2026, 3, 1)
        )

        assert created == 0
        assert assignments_of(conn) == before
