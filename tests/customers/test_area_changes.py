"""A building's heated area with its history: dated changes, today's m² on the building."""

import datetime as dt
from decimal import Decimal

import pytest

from customers.models import AreaChange
from customers.selectors import area_on
from customers.services import (
    UnableToChangeArea,
    areas_sync_due,
    building_area_change,
    building_area_sync,
)
from heatutility.errors import DomainError
from tests.billing.helpers import client_for
from tests.customers.factories import BuildingFactory
from tests.customers.test_admin import clerk_client  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

D = Decimal


def building(m2="130.00"):
    return BuildingFactory(heated_area_m2=D(m2))


class TestAreaOn:
    def test_each_day_has_the_m2_of_the_latest_change_before_it(self):
        house = building()
        building_area_change(
            building=house, heated_area_m2=D("200"), valid_from=dt.date(2026, 3, 1)
        )
        building_area_change(
            building=house, heated_area_m2=D("180"), valid_from=dt.date(2026, 9, 1)
        )

        assert area_on(building=house, day=dt.date(2026, 2, 28)) == D("130.00")
        assert area_on(building=house, day=dt.date(2026, 3, 1)) == D("200")
        assert area_on(building=house, day=dt.date(2026, 8, 31)) == D("200")
        assert area_on(building=house, day=dt.date(2026, 9, 1)) == D("180")

    def test_a_change_dated_back_before_the_first_keeps_the_days_before_it(self):
        house = building()
        building_area_change(
            building=house, heated_area_m2=D("200"), valid_from=dt.date(2026, 3, 1)
        )
        first = building_area_change(
            building=house, heated_area_m2=D("150"), valid_from=dt.date(2026, 1, 1)
        )

        assert first.previous_m2 == D("130.00")
        assert area_on(building=house, day=dt.date(2025, 12, 31)) == D("130.00")
        assert area_on(building=house, day=dt.date(2026, 2, 1)) == D("150")

    def test_the_building_shows_todays_m2(self):
        house = building()
        building_area_change(
            building=house, heated_area_m2=D("200"), valid_from=dt.date(2020, 1, 1)
        )
        house.refresh_from_db()
        assert house.heated_area_m2 == D("200")

    def test_a_change_dated_ahead_reaches_the_building_when_due(self):
        house = building()
        ahead = dt.date(2099, 1, 1)
        building_area_change(building=house, heated_area_m2=D("200"), valid_from=ahead)
        house.refresh_from_db()
        assert house.heated_area_m2 == D("130.00")  # not yet
        assert areas_sync_due() == 0

        assert building_area_sync(building=house, today=ahead) is True
        house.refresh_from_db()
        assert house.heated_area_m2 == D("200")

    def test_an_unchanged_area_or_a_second_change_that_day_is_refused(self):
        house = building()
        with pytest.raises(UnableToChangeArea):
            building_area_change(
                building=house, heated_area_m2=D("130"), valid_from=dt.date(2026, 1, 1)
            )
        building_area_change(
            building=house, heated_area_m2=D("200"), valid_from=dt.date(2026, 1, 1)
        )
        with pytest.raises(DomainError):
            building_area_change(
                building=house, heated_area_m2=D("210"), valid_from=dt.date(2026, 1, 1)
            )
        assert AreaChange.objects.filter(building=house).count() == 1

    def test_an_area_of_zero_is_refused(self):
        house = building()
        with pytest.raises(DomainError):
            building_area_change(
                building=house, heated_area_m2=D("0"), valid_from=dt.date(2026, 1, 1)
            )
        assert not AreaChange.objects.exists()


class TestApi:
    def test_a_clerk_records_a_change_and_lists_them(self):
        house = building()
        api = client_for("billing clerk")
        url = f"/api/v1/buildings/{house.pk}/area-changes/"

        created = api.post(
            url, {"valid_from": "2026-11-16", "heated_area_m2": "200.00", "reason": "extension"}
        )

        assert created.status_code == 201, created.content
        assert created.json()["previous_m2"] == "130.00"
        assert [c["heated_area_m2"] for c in api.get(url).json()] == ["200.00"]

    def test_the_m2_itself_is_not_edited_on_the_building(self):
        house = building()
        api = client_for("billing clerk")

        response = api.patch(f"/api/v1/buildings/{house.pk}/", {"heated_area_m2": "200"})

        assert response.status_code == 400
        assert "area change" in str(response.json())
        house.refresh_from_db()
        assert house.heated_area_m2 == D("130.00")

    def test_an_area_of_zero_or_a_second_change_that_day_is_a_400_on_the_field(self):
        house = building()
        api = client_for("billing clerk")
        url = f"/api/v1/buildings/{house.pk}/area-changes/"

        zero = api.post(url, {"valid_from": "2026-11-16", "heated_area_m2": "0"})
        assert zero.status_code == 400, zero.content
        assert [e.get("field") for e in zero.json()["errors"]] == ["heated_area_m2"]

        assert (
            api.post(url, {"valid_from": "2026-11-16", "heated_area_m2": "200"}).status_code == 201
        )
        again = api.post(url, {"valid_from": "2026-11-16", "heated_area_m2": "210"})
        assert again.status_code == 400, again.content
        assert [e.get("field") for e in again.json()["errors"]] == ["valid_from"]
        assert AreaChange.objects.count() == 1

    def test_an_auditor_may_not_record_a_change(self):
        house = building()
        response = client_for("auditor").post(
            f"/api/v1/buildings/{house.pk}/area-changes/",
            {"valid_from": "2026-11-16", "heated_area_m2": "200.00"},
        )
        assert response.status_code == 403
        assert not AreaChange.objects.exists()


class TestAdmin:
    def test_a_clerk_adds_a_change_through_the_service(self, clerk_client):  # noqa: F811
        house = building()

        response = clerk_client.post(
            "/admin/customers/areachange/add/",
            {"building": house.pk, "valid_from": "2026-11-16", "heated_area_m2": "200.00"},
        )

        assert response.status_code == 302
        change = AreaChange.objects.get(building=house)
        assert change.previous_m2 == D("130.00")
        assert change.created_by == clerk_client.user

    def test_an_unchanged_area_is_a_form_error(self, clerk_client):  # noqa: F811
        house = building()
        response = clerk_client.post(
            "/admin/customers/areachange/add/",
            {"building": house.pk, "valid_from": "2026-11-16", "heated_area_m2": "130.00"},
        )
        assert response.status_code == 200
        assert "already" in response.content.decode()
        assert not AreaChange.objects.exists()

    def test_the_m2_is_read_only_on_an_existing_building(self, clerk_client):  # noqa: F811
        house = building()
        page = clerk_client.get(f"/admin/customers/building/{house.pk}/change/")
        assert page.status_code == 200
        assert 'name="heated_area_m2"' not in page.content.decode()
        assert (
            'name="heated_area_m2"'
            in clerk_client.get("/admin/customers/building/add/").content.decode()
        )

    def test_a_change_is_not_edited_or_deleted(self, clerk_client):  # noqa: F811
        house = building()
        change = building_area_change(
            building=house, heated_area_m2=D("200"), valid_from=dt.date(2026, 11, 16)
        )
        url = f"/admin/customers/areachange/{change.pk}/"
        clerk_client.post(
            f"{url}change/",
            {"building": house.pk, "valid_from": "2026-11-16", "heated_area_m2": "250.00"},
        )
        clerk_client.post(f"{url}delete/", {"post": "yes"})

        change.refresh_from_db()
        assert change.heated_area_m2 == D("200.00")
