"""API base: schema and docs, error shape, constraint violations, authentication."""

import datetime as dt

import pytest

from heatutility.roles import BILLING_CLERK, METERING_OPERATOR
from tests.customers.factories import ContractFactory, NetworkFactory
from tests.metering.factories import HeatMeterFactory

pytestmark = pytest.mark.django_db


class TestSchemaAndDocs:
    def test_openapi_schema_describes_the_staff_endpoints(self, make_staff, api_client_for):
        client = api_client_for(make_staff(None))

        response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

        assert response.status_code == 200
        paths = response.json()["paths"]
        for path in (
            "/api/v1/accounts/",
            "/api/v1/contracts/move-in/",
            "/api/v1/contracts/{id}/move-out/",
            "/api/v1/meters/",
            "/api/v1/meter-installations/exchange/",
        ):
            assert path in paths

    def test_interactive_docs_are_served_to_staff(self, client, make_staff):
        client.force_login(make_staff(None))

        response = client.get("/api/docs/")

        assert response.status_code == 200
        assert b"swagger" in response.content.lower()

    def test_a_vendor_reads_the_schema_with_its_key(self):
        from rest_framework.test import APIClient

        from metering.vendors import vendor_key_create
        from tests.metering.factories_readings import MeterVendorFactory

        _, key = vendor_key_create(vendor=MeterVendorFactory(), label="docs")
        vendor = APIClient()
        vendor.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")

        response = vendor.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

        assert response.status_code == 200
        assert "/api/v1/readings/" in response.json()["paths"]

    @pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
    def test_anonymous_callers_and_customers_get_no_schema(self, client, path, django_user_model):
        assert client.get(path).status_code == 401

        customer = django_user_model.objects.create_user("portal-user", password="x-long-pw-1")
        client.force_login(customer)
        assert client.get(path).status_code == 403


class TestErrors:
    def test_validation_errors_are_itemised_by_field(self, make_staff, api_client_for):
        client = api_client_for(make_staff(BILLING_CLERK))

        response = client.post(
            "/api/v1/buildings/", {"street": "", "heated_area_m2": "-5"}, format="json"
        )

        body = response.json()
        assert response.status_code == 400
        fields = {e["field"] for e in body["errors"]}
        assert {"street", "postal_code", "city", "heated_area_m2"} <= fields
        assert body["message"].startswith("The request is invalid")

    def test_model_constraints_come_back_with_their_message(self, make_staff, api_client_for):
        client = api_client_for(make_staff(BILLING_CLERK))
        body = {
            "code": "x",
            "name": "X",
            "price_area": "DK1",
            "design_supply_temp_c": "40",
            "design_return_temp_c": "60",
        }

        response = client.post("/api/v1/networks/", body, format="json")

        assert (
            response.status_code == 403
        )  # networks are reference data: billing clerks may not add them
        # … a clerk may, however, see why a move-in is refused:
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1))
        other = ContractFactory(account__network=contract.account.network).account
        response = client.post(
            "/api/v1/contracts/move-in/",
            {"account": other.pk, "connection": contract.connection.pk, "move_in_on": "2026-02-01"},
            format="json",
        )
        assert response.status_code == 422
        assert "already has a contract in that period" in response.json()["message"]

    def test_duplicate_meter_is_refused_with_the_constraint_message(
        self, make_staff, api_client_for
    ):
        HeatMeterFactory(maker="Kamstrup", serial="555")
        client = api_client_for(make_staff(METERING_OPERATOR))

        response = client.post(
            "/api/v1/meters/",
            {"maker": "Kamstrup", "model": "MC 603", "serial": "555"},
            format="json",
        )

        assert response.status_code == 400
        assert "maker and serial exists already" in response.json()["message"]

    def test_deleting_a_referenced_record_is_a_conflict(self, django_user_model, api_client_for):
        admin = django_user_model.objects.create_superuser(
            "root", "root@example.org", "a-long-test-password-1"
        )
        network = NetworkFactory()
        ContractFactory(account__network=network)

        response = api_client_for(admin).delete(f"/api/v1/networks/{network.pk}/")

        assert response.status_code == 409
        assert "still referenced" in response.json()["message"]

    def test_move_out_through_the_api(self, make_staff, api_client_for):
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1))
        client = api_client_for(make_staff(BILLING_CLERK))

        response = client.post(
            f"/api/v1/contracts/{contract.pk}/move-out/",
            {"move_out_on": "2026-09-01"},
            format="json",
        )

        assert response.status_code == 200
        assert response.json()["valid_to"] == "2026-09-01"


class TestPagination:
    def test_lists_are_paginated(self, make_staff, api_client_for):
        HeatMeterFactory.create_batch(55)
        client = api_client_for(make_staff(METERING_OPERATOR))

        first = client.get("/api/v1/meters/").json()

        assert first["count"] == 55
        assert len(first["results"]) == 50
        assert first["next"]


@pytest.mark.django_db
def test_a_staff_body_over_the_limit_is_a_413_in_the_error_shape(settings, admin_user):
    from rest_framework.test import APIClient

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client = APIClient()
    client.force_authenticate(admin_user)

    response = client.post(
        "/api/v1/customers/", {"name": "x" * 2000, "kind": "person"}, format="json"
    )

    assert response.status_code == 413
    assert response.json() == {
        "message": "The request body is larger than 1000 bytes.",
        "code": "too_large",
        "errors": [{"code": "too_large", "message": "The request body is larger than 1000 bytes."}],
    }


@pytest.mark.django_db
def test_unknown_and_malformed_ids_are_json_404s(admin_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(admin_user)
    body = {
        "removed_at": "2026-01-01T00:00:00+01:00",
        "final_energy_kwh": "1",
        "final_volume_m3": "1",
    }

    removed = client.post("/api/v1/meter-installations/abc/remove/", body, format="json")
    unrouted = client.get("/api/v1/no-such-thing/")

    assert (removed.status_code, removed.json()["code"]) == (404, "not_found")
    assert (unrouted.status_code, unrouted["Content-Type"]) == (404, "application/json")
    assert unrouted.json() == {"message": "Not found.", "code": "not_found", "errors": []}


@pytest.mark.django_db
def test_instants_outside_the_product_dates_are_a_400_on_the_field(admin_user):
    from rest_framework.test import APIClient

    from tests.customers.factories import BuildingInterfaceUnitFactory

    client = APIClient()
    client.force_authenticate(admin_user)
    body = {"meter": HeatMeterFactory().pk, "unit": BuildingInterfaceUnitFactory().pk}

    for moment in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        response = client.post(
            "/api/v1/meter-installations/install/", {**body, "installed_at": moment}, format="json"
        )
        assert response.status_code == 400, (moment, response.content)
        assert response.json()["errors"] == [
            {
                "code": "out_of_range",
                "field": "installed_at",
                "message": "Enter a moment from 1900-01-01 to 2200-12-31.",
            }
        ]
    # an offset PostgreSQL refuses (beyond ±15:59) is stored as the same instant
    installed = client.post(
        "/api/v1/meter-installations/install/",
        {**body, "installed_at": "2026-01-01T00:00:00-22:59"},
        format="json",
    )
    assert installed.status_code == 201, installed.content
    assert installed.json()["installed_at"].startswith("2026-01-01T23:59:00")
