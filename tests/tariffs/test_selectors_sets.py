"""``tariff_slices_for_connections`` over many connections: shared default pieces, assignments
ending inside the period, networks without a default, duplicate and unknown ids."""

import datetime as dt

import pytest
from django.db import connection

from tariffs.selectors import tariff_slices_for_connections
from tests.customers.factories import ServiceConnectionFactory
from tests.tariffs.factories import TariffAssignmentFactory, TariffFactory, TariffVersionFactory

pytestmark = pytest.mark.django_db

JAN = (dt.date(2026, 1, 1), dt.date(2026, 2, 1))


def as_ids(rows):
    return [(s, e, spec.version_id) for s, e, spec in rows]


def test_many_connections_few_queries_and_independent_lists(django_assert_max_num_queries):
    first = ServiceConnectionFactory()
    network = first.network
    others = [ServiceConnectionFactory(network=network) for _ in range(30)]
    default = TariffFactory(network=network, code="houses", is_default=True)
    old = TariffVersionFactory(
        tariff=default, approved=True, valid_from=dt.date(2020, 1, 1), valid_to=dt.date(2026, 1, 20)
    )
    new = TariffVersionFactory(tariff=default, approved=True, valid_from=dt.date(2026, 1, 20))
    special = TariffFactory(network=network, code="special")
    sv = TariffVersionFactory(tariff=special, approved=True, valid_from=dt.date(2025, 1, 1))
    # assigned for 5–12 January only: default before and after
    TariffAssignmentFactory(
        connection=first,
        tariff=special,
        valid_from=dt.date(2026, 1, 5),
        valid_to=dt.date(2026, 1, 12),
    )
    orphan = ServiceConnectionFactory()  # another network, no default tariff: nothing covers it

    ids = [first.id, *(c.id for c in others), others[0].id, orphan.id, 999_999]
    # on PostgreSQL one more: the share lock on the tariffs (selectors.tariffs_hold)
    with django_assert_max_num_queries(5 if connection.vendor == "postgresql" else 4):
        slices = tariff_slices_for_connections(connection_ids=ids, start=JAN[0], end=JAN[1])

    assert list(slices) == [first.id, *(c.id for c in others), orphan.id, 999_999]
    assert as_ids(slices[first.id]) == [
        (dt.date(2026, 1, 1), dt.date(2026, 1, 5), old.id),
        (dt.date(2026, 1, 5), dt.date(2026, 1, 12), sv.id),
        (dt.date(2026, 1, 12), dt.date(2026, 1, 20), old.id),
        (dt.date(2026, 1, 20), dt.date(2026, 2, 1), new.id),
    ]
    for c in others:
        assert as_ids(slices[c.id]) == [
            (dt.date(2026, 1, 1), dt.date(2026, 1, 20), old.id),
            (dt.date(2026, 1, 20), dt.date(2026, 2, 1), new.id),
        ]
    assert slices[orphan.id] == []
    assert slices[999_999] == []
    # one TariffSpec per version within the call
    assert slices[others[0].id][0][2] is slices[others[1].id][0][2] is slices[first.id][0][2]
    # every connection gets its own list
    slices[others[0].id].clear()
    assert len(slices[others[1].id]) == 2


def test_empty_inputs():
    assert tariff_slices_for_connections(connection_ids=[], start=JAN[0], end=JAN[1]) == {}
    conn = ServiceConnectionFactory()
    assert tariff_slices_for_connections(connection_ids=[conn.id], start=JAN[1], end=JAN[0]) == {
        conn.id: []
    }
