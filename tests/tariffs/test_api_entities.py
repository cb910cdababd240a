"""`/api/v1/` has an endpoint for every tariffs entity; charges keep their no-overlap rule via the API."""

import pytest

from heatutility.roles import AUDITOR, TARIFF_MANAGER
from tests.customers.factories import NetworkFactory
from tests.tariffs.test_admin import cap  # noqa: F401  (fixture)
from tests.tariffs.test_api import client_for

pytestmark = pytest.mark.django_db

ENDPOINTS = (
    "tariffs",
    "tariff-versions",
    "tariff-assignments",
    "plants",
    "plant-units",
    "electricity-charges",
    "plant-data-imports",
    "unit-hours",
    "spot-prices",
    "operating-costs",
    "price-caps",
)


def test_every_entity_has_an_endpoint_staff_can_read():
    auditor = client_for(AUDITOR, "aud")
    for name in ENDPOINTS:
        r = auditor.get(f"/api/v1/{name}/")
        assert r.status_code == 200, name
        assert "results" in r.json(), name


def test_plant_units_charges_and_hourly_series_through_the_api(django_capture_on_commit_callbacks):
    network = NetworkFactory(code="api-ent")
    manager = client_for(TARIFF_MANAGER, "mgr")
    plant = manager.post(
        "/api/v1/plants/", {"network": network.id, "code": "p1", "name": "Plant"}, format="json"
    )
    assert plant.status_code == 201, plant.content
    unit = manager.post(
        "/api/v1/plant-units/",
        {
            "plant": plant.json()["id"],
            "code": "hp",
            "name": "HP",
            "kind": "heat_pump",
            "source_type": "wastewater",
            "capacity_mw": "2.5",
        },
        format="json",
    )
    assert unit.status_code == 201, unit.content
    assert (
        client_for(AUDITOR, "aud2")
        .post("/api/v1/plants/", {"network": network.id, "code": "x", "name": "x"}, format="json")
        .status_code
        == 403
    )

    charge = {
        "price_area": "DK2",
        "kind": "grid",
        "valid_from": "2026-01-01",
        "amount_per_mwh": "200",
        "currency": "DKK",
    }
    first = manager.post("/api/v1/electricity-charges/", charge, format="json")
    assert first.status_code == 201, first.content
    assert (first.json()["hour_from"], first.json()["hour_to"], first.json()["valid_to"]) == (
        0,
        24,
        None,
    )
    # a successor closes the open charge; an overlapping peak band is refused
    second = manager.post(
        "/api/v1/electricity-charges/",
        {**charge, "valid_from": "2027-01-01", "amount_per_mwh": "210"},
        format="json",
    )
    assert second.status_code == 201, second.content
    assert (
        manager.get(f"/api/v1/electricity-charges/{first.json()['id']}/").json()["valid_to"]
        == "2027-01-01"
    )
    peak = manager.post(
        "/api/v1/electricity-charges/",
        {**charge, "valid_from": "2027-01-01", "hour_from": 17, "hour_to": 21},
        format="json",
    )
    assert peak.status_code == 422
    assert peak.json()["errors"][0]["code"] == "overlap"

    hours = [f"2026-01-05T{h:02d}:00:00+01:00" for h in range(24)]
    scada = "time,heat_mwh,electricity_mwh\n" + "".join(f"{t},2.0,0.5\n" for t in hours)
    prices = "time,price\n" + "".join(f"{t},{300 + i}\n" for i, t in enumerate(hours))
    with django_capture_on_commit_callbacks(execute=True):
        manager.post(
            "/api/v1/plant-data-imports/",
            {"kind": "unit_hours", "unit": unit.json()["id"], "content": scada},
            format="json",
        )
        manager.post(
            "/api/v1/plant-data-imports/",
            {"kind": "spot_prices", "price_area": "DK2", "content": prices},
            format="json",
        )
    series = manager.get(
        f"/api/v1/unit-hours/?unit={unit.json()['id']}&hour_start__gte=2026-01-05T10:00:00Z"
    ).json()
    assert series["count"] == 13  # 11:00 local = 10:00 UTC … 23:00 local
    assert series["results"][0]["heat_mwh"] == "2.000000"
    spot = manager.get(
        "/api/v1/spot-prices/?price_area=DK2&hour_start__lt=2026-01-05T01:00:00Z"
    ).json()
    assert [r["price_per_mwh"] for r in spot["results"]] == ["300.0000", "301.0000"]
    # an offset PostgreSQL would refuse (beyond ±15:59) is the same instant in UTC
    far = manager.get(
        "/api/v1/spot-prices/", {"price_area": "DK2", "hour_start__lt": "2026-01-04T02:01:00-22:59"}
    )
    assert [r["price_per_mwh"] for r in far.json()["results"]] == ["300.0000", "301.0000"]
    year_one = manager.get("/api/v1/unit-hours/", {"hour_start__gte": "0001-01-01T00:00:00"})
    assert year_one.status_code == 400
    assert year_one.json()["errors"][0]["field"] == "hour_start__gte"


def test_charges_csv_upload_through_the_api(django_capture_on_commit_callbacks):
    manager = client_for(TARIFF_MANAGER, "mgr2")
    text = "kind,valid_from,hours,Amount [DKK/kWh]\ngrid,2026-01-01,0-17,0.2\ngrid,2026-01-01,17-24,0.45\ntax,2026-01-01,,0.008\n"
    with django_capture_on_commit_callbacks(execute=True):
        r = manager.post(
            "/api/v1/plant-data-imports/",
            {"kind": "electricity_charges", "price_area": "DK1", "content": text},
            format="json",
        )
    assert r.status_code == 202, r.content
    record = manager.get(f"/api/v1/plant-data-imports/{r.json()['id']}/").json()
    assert (record["status"], record["rows"]) == ("done", 3)
    charges = manager.get("/api/v1/electricity-charges/?price_area=DK1&kind=grid").json()["results"]
    assert [(c["hour_from"], c["hour_to"], c["amount_per_mwh"]) for c in charges] == [
        (0, 17, "200.0000"),
        (17, 24, "450.0000"),
    ]


def test_a_heat_pump_without_a_source_type_is_refused():
    network = NetworkFactory(code="api-hp")
    manager = client_for(TARIFF_MANAGER, "mgr3")
    plant = manager.post(
        "/api/v1/plants/", {"network": network.id, "code": "p2", "name": "Plant"}, format="json"
    ).json()
    r = manager.post(
        "/api/v1/plant-units/",
        {
            "plant": plant["id"],
            "code": "hp",
            "name": "HP",
            "kind": "heat_pump",
            "capacity_mw": "2.5",
        },
        format="json",
    )
    assert r.status_code == 400  # the database constraint, checked first and named by field
    assert [(e["field"], e["message"]) for e in r.json()["errors"]] == [
        ("source_type", "A heat pump needs a source type.")
    ]
    unit = manager.post(
        "/api/v1/plant-units/",
        {
            "plant": plant["id"],
            "code": "eb",
            "name": "EB",
            "kind": "electric_boiler",
            "capacity_mw": "2.5",
        },
        format="json",
    )
    assert unit.status_code == 201, unit.content
    for change, field in (
        ({"capacity_mw": "0"}, "capacity_mw"),
        ({"lorenz_efficiency": "1.5"}, "lorenz_efficiency"),
        ({"boiler_efficiency": "0"}, "boiler_efficiency"),
        ({"kind": "heat_pump"}, "source_type"),
        # a rate is a fraction: "4" meant 4 % and gave 400 % capital costs
        ({"interest_rate": "4"}, "interest_rate"),
        ({"interest_rate": "-1"}, "interest_rate"),
        ({"lifetime_years": 0}, "lifetime_years"),
    ):
        r = manager.patch(f"/api/v1/plant-units/{unit.json()['id']}/", change, format="json")
        assert r.status_code == 400, change
        assert [e["field"] for e in r.json()["errors"]] == [field]


def test_cap_plots_through_the_api(cap):  # noqa: F811
    manager = client_for(TARIFF_MANAGER, "mgr4")
    for kind in ("cap", "cop", "electricity_price", "cost_per_mwh"):
        png = manager.get(f"/api/v1/price-caps/{cap.pk}/plots/{kind}/")
        assert png.status_code == 200, kind
        assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert manager.get(f"/api/v1/price-caps/{cap.pk}/plots/nonsense/").status_code == 404
