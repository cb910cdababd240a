"""Staff admin: pages render with plots; only tariff managers approve; locked versions are read-only."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from heatutility.roles import AUDITOR, BILLING_CLERK, TARIFF_MANAGER
from tariffs.models import DataImport, PriceCap, TariffVersion
from tariffs.services import (
    cost_based_inputs_from_cost,
    data_import_run,
    operating_cost_compute,
    price_cap_compute,
)
from tests.customers.factories import NetworkFactory
from tests.tariffs.factories import PlantUnitFactory, TariffFactory, TariffVersionFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def login(role: str, username: str) -> Client:
    user = User.objects.create_user(username=username, password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def cap():
    network = NetworkFactory(code="adm")
    unit = PlantUnitFactory(plant__network=network)
    hours = [f"2026-01-05T{h:02d}:00:00+01:00" for h in range(24)]
    for kind, text, kw in (
        (
            "unit_hours",
            "time,heat_mwh,electricity_mwh,source_in_c,source_out_c,supply_c,return_c\n"
            + "".join(f"{t},5.0,{'' if i == 5 else 1.6},6,3,75,40\n" for i, t in enumerate(hours)),
            {"unit": unit},
        ),
        (
            "spot_prices",
            "time,price\n"
            + "".join(f"{t},{-20 if i == 3 else 500}\n" for i, t in enumerate(hours)),
            {"price_area": network.price_area},
        ),
    ):
        record = DataImport.objects.create(kind=kind, content=text, **kw)
        assert data_import_run(data_import_id=record.pk, now=NOW).status == "done"
    cost = operating_cost_compute(
        network=network,
        period_start=dt.date(2026, 1, 5),
        period_end=dt.date(2026, 1, 6),
        now=NOW,
        loss_share=D("0.2"),
    )
    inputs = cost_based_inputs_from_cost(cost=cost, connections=10, contracted_kw_total=D("100"))
    return price_cap_compute(
        network=network,
        method=PriceCap.Method.COST_BASED,
        period_start=dt.date(2026, 1, 1),
        period_end=dt.date(2027, 1, 1),
        inputs=inputs,
        now=NOW,
        operating_cost=cost,
    )


class TestAdminPages:
    def test_cost_and_cap_pages_render_with_plots(self, cap):
        client = login(TARIFF_MANAGER, "m")
        page = client.get(
            reverse("admin:tariffs_operatingcost_report", args=[cap.operating_cost_id])
        )
        assert page.status_code == 200
        assert page.content.count(b"data:image/png;base64,") == 3
        page = client.get(reverse("admin:tariffs_pricecap_report", args=[cap.pk]))
        assert page.status_code == 200
        assert b"identical to the cent" in page.content
        # the cap's own plot (cost per MWh sold vs the energy cap) and its cost run's three
        assert page.content.count(b"data:image/png;base64,") == 4
        for title in (b"Cost per MWh sold vs the energy cap",):
            assert title in page.content
        assert (
            client.get(reverse("admin:tariffs_pricecap_export", args=[cap.pk, "csv"])).status_code
            == 200
        )
        for name in (
            "tariff",
            "tariffversion",
            "plant",
            "plantunit",
            "dataimport",
            "operatingcost",
            "pricecap",
            "spotprice",
            "electricitycharge",
            "tariffassignment",
        ):
            assert client.get(reverse(f"admin:tariffs_{name}_changelist")).status_code == 200, name

    def test_a_cap_whose_recompute_is_refused_shows_the_reason_on_its_report(self):
        import pandas as pd

        from tariffs.models import ElectricityCharge, SpotPrice

        network = NetworkFactory(code="caps-adm", price_area="DK2", currency="DKK")
        hours = pd.date_range(
            "2026-01-05", "2026-01-06", freq="h", inclusive="left", tz="Europe/Copenhagen"
        )
        SpotPrice.objects.bulk_create(
            SpotPrice(
                price_area="DK2",
                hour_start=t.tz_convert("UTC").to_pydatetime(),
                price_per_mwh=D(100),
            )
            for t in hours
        )
        ElectricityCharge.objects.create(
            price_area="DK2", kind="grid", valid_from=dt.date(2026, 1, 1), amount_per_mwh=D(50)
        )
        cap = price_cap_compute(
            network=network,
            method=PriceCap.Method.SUBSTITUTION,
            period_start=dt.date(2026, 1, 5),
            period_end=dt.date(2026, 1, 6),
            now=NOW,
            inputs={"reference": {"energy_mwh": "2.4"}, "include_utility_tariffs": True},
        )
        # later a charge of the price area is entered in another currency: the stored inputs
        # no longer compute (services._check_price_currency)
        ElectricityCharge.objects.create(
            price_area="DK2",
            kind="tax",
            valid_from=dt.date(2026, 1, 1),
            amount_per_mwh=D(10),
            currency="EUR",
        )

        page = login(TARIFF_MANAGER, "m").get(
            reverse("admin:tariffs_pricecap_report", args=[cap.pk])
        )

        assert page.status_code == 200
        text = page.content.decode()
        assert (
            "<strong>REFUSED</strong>: Electricity prices of DK2 for the period are in EUR" in text
        )
        assert "identical to the cent" not in text

    def test_a_recorded_import_is_shown_read_only_with_a_preview_of_its_file(self):
        hours = "".join(f"2026-01-05T{h:02d}:00:00+01:00,{400 + h}\n" for h in range(24))
        record = DataImport.objects.create(
            kind="spot_prices", price_area="DK1", content="time,price\n" + hours
        )
        client = login(TARIFF_MANAGER, "m")
        page = client.get(reverse("admin:tariffs_dataimport_change", args=[record.pk]))
        assert page.status_code == 200
        text = page.content.decode()
        assert "2026-01-05T18:00:00+01:00,418" in text  # line 20 of 25 is shown
        assert "2026-01-05T19:00:00+01:00" not in text
        assert "… and 5 more lines" in text
        assert 'name="content"' not in text  # nothing to edit
        add = client.get(reverse("admin:tariffs_dataimport_add"))
        assert add.status_code == 200
        assert 'name="content"' in add.content.decode()

    def test_an_upload_that_is_not_text_is_refused_on_the_form(self):
        from django.core.files.uploadedfile import SimpleUploadedFile

        client = login(TARIFF_MANAGER, "m")
        page = client.post(
            reverse("admin:tariffs_dataimport_add"),
            {
                "kind": "spot_prices",
                "unit": "",
                "price_area": "DK1",
                "currency": "DKK",
                "time_zone": "Europe/Copenhagen",
                "content": "",
                "upload": SimpleUploadedFile("prices.xlsx", b"PK\x03\x04\x00\x00"),
            },
        )
        assert page.status_code == 200  # the form again, with the reason
        assert "The file is not text (a NUL byte at position 4)." in page.content.decode()
        assert not DataImport.objects.exists()

    def test_an_upload_above_the_limit_is_refused_on_the_form(self, settings):
        from django.core.files.uploadedfile import SimpleUploadedFile

        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
        client = login(TARIFF_MANAGER, "m")
        prices = "time,price\n" + "2026-01-05T00:00:00+01:00,1\n" * 10
        page = client.post(
            reverse("admin:tariffs_dataimport_add"),
            {
                "kind": "spot_prices",
                "unit": "",
                "price_area": "DK1",
                "currency": "DKK",
                "time_zone": "Europe/Copenhagen",
                "content": "",
                "upload": SimpleUploadedFile("prices.csv", prices.encode()),
            },
        )
        assert page.status_code == 200  # the form again, with the reason
        assert (
            f"The file has {len(prices)} bytes; at most 100 are accepted" in page.content.decode()
        )
        assert not DataImport.objects.exists()

    def test_version_report_shows_impact_and_examples(self):
        version = TariffVersionFactory(tariff=TariffFactory())
        client = login(TARIFF_MANAGER, "m")
        page = client.get(reverse("admin:tariffs_tariffversion_report", args=[version.pk]))
        assert page.status_code == 200
        assert b"Reference house 130 m\xc2\xb2" in page.content
        url = reverse("admin:tariffs_tariffversion_report", args=[version.pk])
        page = client.get(f"{url}?year=abc", follow=True)
        assert page.status_code == 200
        assert (
            f"Year: Enter a whole number. Showing {version.valid_from.year}."
            in page.content.decode()
        )

    def test_only_tariff_managers_approve_from_the_admin(self):
        version = TariffVersionFactory(tariff=TariffFactory())
        url = reverse("admin:tariffs_tariffversion_changelist")
        clerk = login(BILLING_CLERK, "c")
        clerk.post(url, {"action": "approve_versions", "_selected_action": [version.pk]})
        version.refresh_from_db()
        assert version.status == "draft"
        manager = login(TARIFF_MANAGER, "m")
        manager.post(url, {"action": "approve_versions", "_selected_action": [version.pk]})
        version.refresh_from_db()
        assert version.status == TariffVersion.Status.APPROVED
        page = manager.get(reverse("admin:tariffs_tariffversion_change", args=[version.pk]))
        assert b'name="components"' not in page.content  # read-only once approved
        assert timezone.is_aware(version.approved_at)


class TestAdminCompute:
    def test_manager_computes_cost_then_a_cost_based_cap_from_the_admin(self, cap):
        client = login(TARIFF_MANAGER, "m")
        network = cap.network
        response = client.post(
            reverse("admin:tariffs_operatingcost_add"),
            {
                "network": network.pk,
                "period_start": "2026-01-05",
                "period_end": "2026-01-06",
                "loss_share": "0.1",
                "network_costs_per_year": "0",
            },
        )
        assert response.status_code == 302, response.content[:2000]
        from tariffs.models import OperatingCost

        cost = OperatingCost.objects.latest("pk")
        response = client.post(
            reverse("admin:tariffs_pricecap_add"),
            {
                "network": network.pk,
                "method": "cost_based",
                "period_start": "2027-01-01",
                "period_end": "2028-01-01",
                "operating_cost": cost.pk,
                "inputs": '{"over_recovery": "100"}',
            },
        )
        assert response.status_code == 302, response.content[:2000]
        new_cap = PriceCap.objects.latest("pk")
        assert new_cap.inputs["over_recovery"] == "100"
        assert new_cap.inputs["operating_cost_id"] == cost.pk

    def test_a_cost_run_of_another_network_is_refused_on_the_form(self, cap):
        other = NetworkFactory(code="other-net")
        client = login(TARIFF_MANAGER, "m")
        response = client.post(
            reverse("admin:tariffs_pricecap_add"),
            {
                "network": other.pk,
                "method": "cost_based",
                "period_start": "2027-01-01",
                "period_end": "2028-01-01",
                "operating_cost": cap.operating_cost_id,
                "inputs": "{}",
            },
        )
        assert response.status_code == 200
        assert f"Operating cost #{cap.operating_cost_id} is of network" in response.content.decode()
        assert not PriceCap.objects.filter(network=other).exists()

    def test_a_missing_input_is_shown_on_the_form(self, cap):
        client = login(TARIFF_MANAGER, "m")
        response = client.post(
            reverse("admin:tariffs_pricecap_add"),
            {
                "network": cap.network.pk,
                "method": "maximum_price",
                "period_start": "2027-01-01",
                "period_end": "2028-01-01",
                "inputs": "{}",
            },
        )
        assert response.status_code == 200
        assert b"Missing input" in response.content

    def test_only_tariff_managers_adopt_caps_from_the_admin(self, cap):
        url = reverse("admin:tariffs_pricecap_changelist")
        for role, name in ((AUDITOR, "a"), (BILLING_CLERK, "c")):
            viewer = login(role, name)
            assert 'value="adopt_caps"' not in viewer.get(url).content.decode()
            viewer.post(url, {"action": "adopt_caps", "_selected_action": [cap.pk]})
            cap.refresh_from_db()
            assert cap.status == PriceCap.Status.DRAFT
        page = login(TARIFF_MANAGER, "m").post(
            url, {"action": "adopt_caps", "_selected_action": [cap.pk]}, follow=True
        )
        cap.refresh_from_db()
        assert cap.status == PriceCap.Status.ADOPTED
        assert f"Adopted {cap}." in page.content.decode()

    def test_a_billing_clerk_cannot_compute(self, cap):
        clerk = login(BILLING_CLERK, "c")
        assert clerk.get(reverse("admin:tariffs_pricecap_add")).status_code == 403


def test_indexation_electricity_index_derived_from_cost_runs(cap):
    # the electricity cost index K is the average price per MWh a cost run paid
    from tariffs.services import electricity_index_from_cost

    cost = cap.operating_cost
    k = electricity_index_from_cost(cost)
    f = cost.results["figures"]
    assert k == (D(f["electricity_cost"]) / D(f["electricity_mwh"])).quantize(D("0.0001"))
    de = price_cap_compute(
        network=cap.network,
        method=PriceCap.Method.INDEXATION,
        period_start=dt.date(2028, 1, 1),
        period_end=dt.date(2029, 1, 1),
        now=NOW,
        inputs={
            "clauses": [
                {
                    "price": "energy",
                    "base_price": "80",
                    "a": "0.2",
                    "cost_terms": [
                        {
                            "name": "electricity",
                            "weight": "0.5",
                            "base_cost_id": cost.pk,
                            "current_cost_id": cost.pk,
                        }
                    ],
                    "market_term": {
                        "name": "destatis",
                        "weight": "0.3",
                        "base": "100",
                        "current": "110",
                    },
                }
            ]
        },
    )
    # K/K0 = 1 (same run): P = 80 × (0.2 + 0.5 + 0.3 × 1.1) = 80 × 1.03 = 82.40
    assert de.energy_cap_per_mwh == D("82.40")
    assert de.results["energy.electricity.ratio"] == "1"
    from tariffs.services import price_cap_recompute

    assert price_cap_recompute(cap=de) == {}
