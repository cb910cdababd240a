"""The migrated database holds every constraint and index the models declare.

``makemigrations --check`` compares the models with the migrations' *state*, not with
the database: a migration whose SQL dropped more than its state says goes unnoticed
there.  (Django's ``AlterField(db_index=False)`` of a foreign key drops every one-column
b-tree index on that column, partial unique indexes included.)
"""

import pytest
from django.apps import apps
from django.db import connection

from heatutility.db import NoOverlapConstraint


def _declared():
    for model in apps.get_models():
        if model._meta.managed and not model._meta.proxy:
            for item in [*model._meta.constraints, *model._meta.indexes]:
                if isinstance(item, NoOverlapConstraint) and connection.vendor != "postgresql":
                    continue  # PostgreSQL only by design (model validation elsewhere)
                yield model._meta.db_table, item.name


@pytest.mark.django_db
def test_every_declared_constraint_and_index_exists():
    declared = list(_declared())
    with connection.cursor() as cursor:
        present = {
            table: set(connection.introspection.get_constraints(cursor, table))
            for table in {table for table, _ in declared}
        }

    missing = [f"{table}.{name}" for table, name in declared if name not in present[table]]

    assert len(declared) > 20
    assert missing == [], missing


def test_every_api_operation_documents_its_error_answers():
    """Clients generated from the schema expect the errors the API gives, in its shape."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    missing = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            wanted = {"401", "403"} | ({"400", "422"} if method != "get" else set())
            wanted |= {"404"} if "{" in path else set()
            wanted |= {"413"} if method in ("post", "put", "patch") else set()
            missing += [f"{method} {path} {code}" for code in wanted - set(operation["responses"])]
            for code in wanted:
                content = operation["responses"][code].get("content", {})
                assert content["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }, (method, path, code)

    assert len(schema["paths"]) > 50
    assert missing == []


def test_vendor_operations_document_their_rate_limit():
    """A vendor's key is throttled (HEATUTILITY_VENDOR_THROTTLE, 429 above it,
    docs/vendor-api.md): the schema the vendor generates its client from says so."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    vendor_operations = [
        (method, path, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if {"VendorApiKey": []} in operation.get("security", ())
    ]

    assert len(vendor_operations) == 4
    for method, path, operation in vendor_operations:
        answer = operation["responses"].get("429")
        assert answer, (method, path)
        assert answer["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }


@pytest.mark.django_db
def test_a_throttled_vendor_gets_429_in_the_error_shape(monkeypatch):
    from rest_framework.test import APIClient

    from metering.vendors import VendorRateThrottle, vendor_key_create
    from tests.metering.factories_readings import MeterVendorFactory

    monkeypatch.setattr(VendorRateThrottle, "THROTTLE_RATES", {"vendor": "2/min"})
    _, key = vendor_key_create(vendor=MeterVendorFactory(), label="t")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")

    answers = [client.get("/api/v1/readings/meters/") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["code"] == "throttled"
    assert answers[2]["Retry-After"]
