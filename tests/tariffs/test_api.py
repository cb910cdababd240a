"""API smoke: permissions per role, draft → approve, caps, imports, plots, export."""

import datetime as dt

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from heatutility.roles import AUDITOR, BILLING_CLERK, TARIFF_MANAGER
from tariffs.models import TariffVersion
from tariffs.published import PUBLISHED_TARIFFS
from tests.customers.factories import NetworkFactory
from tests.tariffs.factories import PlantUnitFactory, TariffFactory

pytestmark = pytest.mark.django_db


def client_for(role: str | None, username: str) -> APIClient:
    client = APIClient()
    user = User.objects.create_user(username=username, password="x", is_staff=role is not None)
    if role:
        user.groups.add(Group.objects.get(name=role))
    client.force_authenticate(user)
    return client


@pytest.fixture
def network():
    return NetworkFactory(code="api-net")


def draft_payload(tariff_id, energy="592.52"):
    components = [dict(c) for c in PUBLISHED_TARIFFS["hofor-2024"]["components"]]
    components[1]["price"] = energy
    return {"tariff": tariff_id, "valid_from": "2026-01-01", "components": components}


class TestTariffVersionApi:
    def test_manager_drafts_checks_and_approves_under_the_cap(self, network):
        manager = client_for(TARIFF_MANAGER, "m")
        tariff = TariffFactory(network=network)
        cap = manager.post(
            "/api/v1/price-caps/",
            {
                "network": network.id,
                "method": "cost_based",
                "period_start": "2026-01-01",
                "period_end": "2027-01-01",
                "inputs": {
                    "variable_costs": "29000000",
                    "fixed_costs": "12000000",
                    "forecast_sales_mwh": "50000",
                    "connections": 3000,
                    "contracted_kw_total": "40000",
                },
            },
            format="json",
        )
        assert cap.status_code == 201, cap.content
        assert cap.json()["energy_cap_per_mwh"] == "580.00"
        assert manager.post(f"/api/v1/price-caps/{cap.json()['id']}/adopt/").status_code == 200

        created = manager.post("/api/v1/tariff-versions/", draft_payload(tariff.id), format="json")
        assert created.status_code == 201, created.content
        vid = created.json()["id"]
        check = manager.get(f"/api/v1/tariff-versions/{vid}/cap-check/").json()
        assert "by 12.52 DKK/MWh" in check["excesses"][0]

        refused = manager.post(f"/api/v1/tariff-versions/{vid}/approve/")
        assert refused.status_code == 422
        body = refused.json()
        assert body["code"] == "tariff_above_cap"
        assert "exceeds the energy cap" in body["errors"][0]["message"]

        fixed = manager.patch(
            f"/api/v1/tariff-versions/{vid}/",
            {"components": draft_payload(tariff.id, "575.00")["components"]},
            format="json",
        )
        assert fixed.status_code == 200, fixed.content
        approved = manager.post(f"/api/v1/tariff-versions/{vid}/approve/")
        assert approved.status_code == 200
        assert approved.json()["status"] == "approved"
        locked = manager.patch(f"/api/v1/tariff-versions/{vid}/", {"notes": "x"}, format="json")
        assert locked.status_code == 409

        examples = manager.get(f"/api/v1/tariff-versions/{vid}/price-examples/").json()
        assert {e["key"] for e in examples} >= {"dk-house-130m2", "se-house-20"}
        impact = manager.get(f"/api/v1/tariff-versions/{vid}/impact/?as_of=2026-11-27")
        assert impact.status_code == 200
        for query, field in (
            ("price-examples/?year=abc", "year"),
            ("price-examples/?year=99999", "year"),
            ("impact/?as_of=27.11.2026", "as_of"),
        ):
            bad = manager.get(f"/api/v1/tariff-versions/{vid}/{query}")
            assert bad.status_code == 400, query
            assert [e["field"] for e in bad.json()["errors"]] == [field]
        assert (
            manager.get(f"/api/v1/price-caps/{cap.json()['id']}/recompute/").json()["identical"]
            is True
        )
        csv = manager.get(f"/api/v1/price-caps/{cap.json()['id']}/export/?as=csv")
        assert csv["Content-Type"].startswith("text/csv")
        xml = manager.get(f"/api/v1/price-caps/{cap.json()['id']}/export/?as=xml")
        assert xml.status_code == 400  # not a JSON file answered for XML
        assert [(e["field"], e["message"]) for e in xml.json()["errors"]] == [
            ("as", "Export as json or csv, not 'xml'.")
        ]

    def test_billing_clerk_may_read_but_not_approve(self, network):
        version = TariffVersion.objects.create(
            tariff=TariffFactory(network=network),
            number=1,
            valid_from=dt.date(2026, 1, 1),
            components=draft_payload(0)["components"],
        )
        clerk = client_for(BILLING_CLERK, "c")
        assert clerk.get("/api/v1/tariff-versions/").status_code == 200
        assert clerk.post(f"/api/v1/tariff-versions/{version.id}/approve/").status_code == 403
        assert (
            clerk.post(
                "/api/v1/tariff-versions/", draft_payload(version.tariff_id), format="json"
            ).status_code
            == 403
        )
        auditor = client_for(AUDITOR, "a")
        assert auditor.post(f"/api/v1/tariff-versions/{version.id}/approve/").status_code == 403
        version.refresh_from_db()
        assert version.status == "draft"

    def test_anonymous_and_non_staff_are_refused(self):
        assert APIClient().get("/api/v1/tariffs/").status_code in (401, 403)
        assert client_for(None, "customer").get("/api/v1/tariffs/").status_code == 403

    def test_invalid_components_are_itemised(self, network):
        manager = client_for(TARIFF_MANAGER, "m2")
        tariff = TariffFactory(network=network)
        response = manager.post(
            "/api/v1/tariff-versions/",
            {
                "tariff": tariff.id,
                "valid_from": "2026-01-01",
                "components": [{"type": "energy", "code": "e", "price": "x"}],
            },
            format="json",
        )
        assert response.status_code == 400
        assert "components.0.price" in str(response.json())


class TestPlantDataApi:
    def test_upload_import_cost_and_plot(self, network, django_capture_on_commit_callbacks):
        manager = client_for(TARIFF_MANAGER, "m3")
        unit = PlantUnitFactory(plant__network=network)
        hours = [f"2026-01-05T{h:02d}:00:00+01:00" for h in range(24)]
        scada = (
            "time,heat_mwh,electricity_mwh,source_in_c,source_out_c,supply_c,return_c\n"
            + "".join(f"{t},5.0,1.6,6,3,75,40\n" for t in hours)
        )
        prices = "time,price\n" + "".join(
            f"{t},{-20 if i == 3 else 500}\n" for i, t in enumerate(hours)
        )
        with django_capture_on_commit_callbacks(execute=True):
            r1 = manager.post(
                "/api/v1/plant-data-imports/",
                {"kind": "unit_hours", "unit": unit.id, "content": scada},
                format="json",
            )
            r2 = manager.post(
                "/api/v1/plant-data-imports/",
                {"kind": "spot_prices", "price_area": network.price_area, "content": prices},
                format="json",
            )
        assert r1.status_code == 202
        assert manager.get(f"/api/v1/plant-data-imports/{r1.json()['id']}/").json()["rows"] == 24
        assert (
            manager.get(f"/api/v1/plant-data-imports/{r2.json()['id']}/").json()["status"] == "done"
        )
        cost = manager.post(
            "/api/v1/operating-costs/",
            {
                "network": network.id,
                "period_start": "2026-01-05",
                "period_end": "2026-01-06",
                "loss_share": "0.2",
            },
            format="json",
        )
        assert cost.status_code == 201, cost.content
        # 23 h × 1.6 MWh × 500 + 1.6 × (−20) = 18,400 − 32 = 18,368.00 (no tariffs entered)
        assert cost.json()["results"]["figures"]["electricity_cost"] == "18368.00"
        for kind in ("cop", "electricity_price", "cost_per_mwh"):
            png = manager.get(f"/api/v1/operating-costs/{cost.json()['id']}/plots/{kind}/")
            assert png.status_code == 200
            assert png.content[:8] == b"\x89PNG\r\n\x1a\n"

    def test_schema_is_served(self):
        manager = client_for(TARIFF_MANAGER, "m4")
        assert manager.get("/api/schema/").status_code == 200


class TestImpactWindowInTheNetworksZone:
    def test_without_as_of_the_window_ends_at_this_month_of_the_networks_zone(self, monkeypatch):
        """At 23:30 UTC on 30 November it is still November in London: a London network's
        impact covers the 12 months to 1 November, not to 1 December (Copenhagen's
        month, whose end registers London has not read yet)."""
        from tests.tariffs.factories import TariffVersionFactory

        network = NetworkFactory(code="london", time_zone="Europe/London")
        version = TariffVersionFactory(tariff=TariffFactory(network=network))
        monkeypatch.setattr(
            "django.utils.timezone.now", lambda: dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC)
        )

        impact = client_for(TARIFF_MANAGER, "m").get(
            f"/api/v1/tariff-versions/{version.pk}/impact/"
        )

        assert impact.status_code == 200, impact.content
        assert (impact.json()["period_start"], impact.json()["period_end"]) == (
            "2025-11-01",
            "2026-11-01",
        )
