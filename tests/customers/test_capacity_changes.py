"""Contracted capacity with its history: dated changes, today's kW on the connection."""

import datetime as dt
from decimal import Decimal

import pytest

from customers.models import CapacityChange
from customers.selectors import capacity_on
from customers.services import (
    UnableToChangeCapacity,
    capacities_sync_due,
    connection_capacity_change,
    connection_capacity_sync,
)
from tests.billing.helpers import client_for
from tests.customers.factories import ServiceConnectionFactory
from tests.customers.test_admin import clerk_client  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

D = Decimal


def connection(kw="10.00"):
    return ServiceConnectionFactory(contracted_capacity_kw=D(kw))


class TestCapacityOn:
    def test_each_day_has_the_kw_of_the_latest_change_before_it(self):
        conn = connection()
        connection_capacity_change(
            connection=conn, capacity_kw=D("20"), valid_from=dt.date(2026, 3, 1)
        )
        connection_capacity_change(
            connection=conn, capacity_kw=D("15"), valid_from=dt.date(2026, 9, 1)
        )

        assert capacity_on(connection=conn, day=dt.date(2026, 2, 28)) == D("10.00")
        assert capacity_on(connection=conn, day=dt.date(2026, 3, 1)) == D("20")
        assert capacity_on(connection=conn, day=dt.date(2026, 8, 31)) == D("20")
        assert capacity_on(connection=conn, day=dt.date(2026, 9, 1)) == D("15")

    def test_a_change_dated_back_before_the_first_keeps_the_days_before_it(self):
        conn = connection()
        connection_capacity_change(
            connection=conn, capacity_kw=D("20"), valid_from=dt.date(2026, 3, 1)
        )
        first = connection_capacity_change(
            connection=conn, capacity_kw=D("12"), valid_from=dt.date(2026, 1, 1)
        )

        assert first.previous_kw == D("10.00")
        assert capacity_on(connection=conn, day=dt.date(2025, 12, 31)) == D("10.00")
        assert capacity_on(connection=conn, day=dt.date(2026, 2, 1)) == D("12")

    def test_the_connection_shows_todays_kw(self):
        conn = connection()
        connection_capacity_change(
            connection=conn, capacity_kw=D("20"), valid_from=dt.date(2020, 1, 1)
        )
        conn.refresh_from_db()
        assert conn.contracted_capacity_kw == D("20")

    def test_a_change_dated_ahead_reaches_the_connection_when_due(self):
        conn = connection()
        ahead = dt.date(2099, 1, 1)
        connection_capacity_change(connection=conn, capacity_kw=D("20"), valid_from=ahead)
        conn.refresh_from_db()
        assert conn.contracted_capacity_kw == D("10.00")  # not yet
        assert capacities_sync_due() == 0

        assert connection_capacity_sync(connection=conn, today=ahead) is True
        conn.refresh_from_db()
        assert conn.contracted_capacity_kw == D("20")

    def test_an_unchanged_capacity_or_a_second_change_that_day_is_refused(self):
        conn = connection()
        with pytest.raises(UnableToChangeCapacity):
            connection_capacity_change(
                connection=conn, capacity_kw=D("10"), valid_from=dt.date(2026, 1, 1)
            )
        connection_capacity_change(
            connection=conn, capacity_kw=D("20"), valid_from=dt.date(2026, 1, 1)
        )
        from heatutility.errors import DomainError

        with pytest.raises(DomainError):
            connection_capacity_change(
                connection=conn, capacity_kw=D("30"), valid_from=dt.date(2026, 1, 1)
            )
        assert CapacityChange.objects.filter(connection=conn).count() == 1

    def test_no_change_from_the_disconnection_on(self):
        # the connection's changes lie within [connected_on, disconnected_on), which
        # editing the dates keeps; a change recorded after the disconnection did not
        conn = connection()
        conn.disconnected_on = dt.date(2026, 6, 1)
        conn.save()
        for day in (dt.date(2026, 6, 1), dt.date(2026, 9, 1)):
            with pytest.raises(UnableToChangeCapacity) as refused:
                connection_capacity_change(connection=conn, capacity_kw=D("20"), valid_from=day)
            assert [(e.code, e.field) for e in refused.value.errors] == [
                ("after_disconnected", "valid_from")
            ]
        connection_capacity_change(
            connection=conn, capacity_kw=D("20"), valid_from=dt.date(2026, 5, 31)
        )
        assert CapacityChange.objects.filter(connection=conn).count() == 1


class TestApi:
    def test_a_clerk_records_a_change_and_lists_them(self):
        conn = connection()
        api = client_for("billing clerk")
        url = f"/api/v1/connections/{conn.pk}/capacity-changes/"

        created = api.post(
            url, {"valid_from": "2026-11-16", "capacity_kw": "20.00", "reason": "upgrade"}
        )

        assert created.status_code == 201, created.content
        assert created.json()["previous_kw"] == "10.00"
        assert [c["capacity_kw"] for c in api.get(url).json()] == ["20.00"]

    def test_the_kw_itself_is_not_edited_on_the_connection(self):
        conn = connection()
        api = client_for("billing clerk")

        response = api.patch(f"/api/v1/connections/{conn.pk}/", {"contracted_capacity_kw": "25"})

        assert response.status_code == 400
        assert "capacity change" in str(response.json())
        conn.refresh_from_db()
        assert conn.contracted_capacity_kw == D("10.00")

    def test_an_auditor_may_not_record_a_change(self):
        conn = connection()
        response = client_for("auditor").post(
            f"/api/v1/connections/{conn.pk}/capacity-changes/",
            {"valid_from": "2026-11-16", "capacity_kw": "20.00"},
        )
        assert response.status_code == 403
        assert not CapacityChange.objects.exists()


class TestAdmin:
    def test_a_clerk_adds_a_change_through_the_service(self, clerk_client):  # noqa: F811
        conn = connection()

        response = clerk_client.post(
            "/admin/customers/capacitychange/add/",
            {"connection": conn.pk, "valid_from": "2026-11-16", "capacity_kw": "20.00"},
        )

        assert response.status_code == 302
        change = CapacityChange.objects.get(connection=conn)
        assert change.previous_kw == D("10.00")
        assert change.created_by == clerk_client.user

    def test_an_unchanged_capacity_is_a_form_error(self, clerk_client):  # noqa: F811
        conn = connection()
        response = clerk_client.post(
            "/admin/customers/capacitychange/add/",
            {"connection": conn.pk, "valid_from": "2026-11-16", "capacity_kw": "10.00"},
        )
        assert response.status_code == 200
        assert "already" in response.content.decode()
        assert not CapacityChange.objects.exists()


def test_a_change_the_service_refuses_after_the_form_is_a_message_not_a_500(
    clerk_client,  # noqa: F811
    monkeypatch,
):
    """Another clerk recorded a change for the same day between the form's check and
    the save: the service's refusal comes back as a message on the form."""
    from customers import services
    from customers.services import UnableToChangeCapacity

    def lost_the_race(**kwargs):
        raise UnableToChangeCapacity("2026-11-16 has a capacity change already.")

    monkeypatch.setattr(services, "connection_capacity_change", lost_the_race)
    conn = connection()

    response = clerk_client.post(
        "/admin/customers/capacitychange/add/",
        {"connection": conn.pk, "valid_from": "2026-11-16", "capacity_kw": "20.00"},
        follow=True,
    )

    assert response.status_code == 200
    assert "has a capacity change already" in response.content.decode()
    assert not CapacityChange.objects.exists()
