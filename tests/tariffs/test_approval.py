"""Approving tariff versions: only tariff managers, only under the cap, never changing afterwards."""

import datetime as dt
import json
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction
from django.utils import timezone

from heatutility.roles import BILLING_CLERK, TARIFF_MANAGER
from tariffs.models import PriceCap, TariffVersion
from tariffs.published import PUBLISHED_TARIFFS
from tariffs.selectors import tariff_spec_for_version
from tariffs.services import (
    NotAllowed,
    TariffAboveCap,
    TariffVersionLocked,
    price_cap_adopt,
    price_cap_compute,
    price_cap_export,
    price_cap_recompute,
    price_cap_versions_above,
    tariff_version_approve,
    tariff_version_create,
    tariff_version_new_from,
    tariff_version_update_draft,
)
from tariffs.simulation import price_examples, tariff_version_impact
from tests.customers.factories import NetworkFactory, ServiceConnectionFactory
from tests.tariffs.factories import TariffAssignmentFactory, TariffFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2025, 12, 1, 9, 0, tzinfo=dt.UTC)


def staff(role: str, username: str) -> User:
    user = User.objects.create_user(username=username, password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def manager():
    return staff(TARIFF_MANAGER, "manager")


@pytest.fixture
def network():
    return NetworkFactory(code="cph", currency="DKK")


def cost_cap(network, *, energy_cost_mwh=D("600"), adopt=True):
    # variable 600 DKK/MWh × 50,000 MWh = 30 M; fixed 12 M; 12 M × 80 % / 40,000 kW = 240.00 DKK/kW
    cap = price_cap_compute(
        network=network,
        method=PriceCap.Method.COST_BASED,
        period_start=dt.date(2026, 1, 1),
        period_end=dt.date(2027, 1, 1),
        now=NOW,
        inputs={
            "variable_costs": str(energy_cost_mwh * 50_000),
            "fixed_costs": "12000000",
            "forecast_sales_mwh": "50000",
            "connections": 3000,
            "contracted_kw_total": "40000",
            "over_recovery": "0",
            "approved_return": "0",
        },
    )
    return price_cap_adopt(cap=cap, now=NOW) if adopt else cap


def hofor_draft(network, valid_from=dt.date(2026, 1, 1), tariff=None):
    tariff = tariff or TariffFactory(network=network, code="houses")
    return tariff_version_create(
        tariff=tariff,
        valid_from=valid_from,
        components=PUBLISHED_TARIFFS["hofor-2024"]["components"],
    )


class TestApproval:
    def test_a_tariff_manager_approves_under_the_cap(self, manager, network):
        cap = cost_cap(network)
        version = hofor_draft(network)
        approved = tariff_version_approve(version=version, user=manager, now=NOW)
        assert approved.status == TariffVersion.Status.APPROVED
        assert approved.approved_by == manager
        assert approved.approved_under_cap == cap

    def test_over_cap_is_refused_naming_component_cap_and_excess(self, manager, network):
        cost_cap(network, energy_cost_mwh=D("580"))  # energy cap 580.00 < 592.52
        version = hofor_draft(network)
        with pytest.raises(TariffAboveCap) as err:
            tariff_version_approve(version=version, user=manager, now=NOW)
        assert "Component 'energy' 592.52 DKK/MWh exceeds the energy cap" in err.value.message
        assert "580.00 DKK/MWh by 12.52 DKK/MWh" in err.value.message
        version.refresh_from_db()
        assert version.status == TariffVersion.Status.DRAFT

    def test_only_the_tariff_manager_role_may_approve(self, network):
        clerk = staff(BILLING_CLERK, "clerk")
        version = hofor_draft(network)
        with pytest.raises(NotAllowed, match="Only a tariff manager"):
            tariff_version_approve(version=version, user=clerk, now=NOW)
        assert not clerk.has_perm("tariffs.approve_tariffversion")

    def test_a_successor_closes_the_open_predecessor(self, manager, network):
        first = tariff_version_approve(version=hofor_draft(network), user=manager, now=NOW)
        second = tariff_version_new_from(version=first, valid_from=dt.date(2026, 7, 1))
        tariff_version_approve(version=second, user=manager, now=NOW)
        first.refresh_from_db()
        assert first.valid_to == dt.date(2026, 7, 1)


class TestImmutability:
    def test_service_refuses_to_change_an_approved_version(self, manager, network):
        version = tariff_version_approve(version=hofor_draft(network), user=manager, now=NOW)
        with pytest.raises(TariffVersionLocked, match="cannot change; create a new version"):
            tariff_version_update_draft(version=version, components=[])

    def test_database_refuses_changes_and_deletes_of_approved_versions(self, manager, network):
        version = tariff_version_approve(version=hofor_draft(network), user=manager, now=NOW)
        with pytest.raises(IntegrityError, match="tariffversion_locked"), transaction.atomic():
            TariffVersion.objects.filter(pk=version.pk).update(vat_rate=D("0.20"))
        with pytest.raises(IntegrityError, match="tariffversion_locked"), transaction.atomic():
            TariffVersion.objects.filter(pk=version.pk).update(valid_from=dt.date(2026, 2, 1))
        with pytest.raises(IntegrityError, match="tariffversion_locked"), transaction.atomic():
            TariffVersion.objects.filter(pk=version.pk).delete()
        with pytest.raises(IntegrityError, match="tariffversion_locked"), transaction.atomic():
            TariffVersion.objects.filter(pk=version.pk).update(
                approved_at=NOW - dt.timedelta(days=1)
            )
        version.refresh_from_db()
        assert version.vat_rate == D("0.2500")

    def test_drafts_can_change(self, network):
        version = hofor_draft(network)
        tariff_version_update_draft(version=version, notes="checked")
        version.refresh_from_db()
        assert version.notes == "checked"

    @pytest.mark.postgres
    def test_postgres_refuses_two_overlapping_approved_versions(self, network):
        from tests.tariffs.factories import TariffVersionFactory

        tariff = TariffFactory(network=network)
        TariffVersionFactory(tariff=tariff, approved=True, valid_from=dt.date(2026, 1, 1))
        TariffVersionFactory(tariff=tariff, valid_from=dt.date(2026, 3, 1))  # a draft may overlap
        with pytest.raises(IntegrityError), transaction.atomic():
            TariffVersionFactory(tariff=tariff, approved=True, valid_from=dt.date(2026, 6, 1))


class TestCapRecordKeeping:
    def test_cap_is_recomputed_to_the_cent_and_exported(self, network):
        cap = cost_cap(network, adopt=False)
        assert cap.energy_cap_per_mwh == D("600.00")
        assert cap.capacity_cap_per_kw == D("240.00")
        assert price_cap_recompute(cap=cap) == {}
        data = json.loads(price_cap_export(cap=cap, fmt="json"))
        assert data["limits"]["energy_cap_per_mwh"] == "600.00"
        assert data["inputs"]["variable_costs"] == "30000000"
        csv = price_cap_export(cap=cap, fmt="csv")
        assert "limits,energy_cap_per_mwh,600.00" in csv

    def test_maximum_price_and_indexation_caps_through_the_service(self, network, manager):
        nl = price_cap_compute(
            network=network,
            method=PriceCap.Method.MAXIMUM_PRICE,
            period_start=dt.date(2026, 1, 1),
            period_end=dt.date(2027, 1, 1),
            now=NOW,
            inputs={"fixed_per_year_incl_vat": "3000", "price_per_gj_incl_vat": "200"},
        )
        assert (nl.energy_cap_per_mwh, nl.includes_vat) == (D("720.00"), True)
        de = price_cap_compute(
            network=network,
            method=PriceCap.Method.INDEXATION,
            period_start=dt.date(2027, 1, 1),
            period_end=dt.date(2028, 1, 1),
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
                                "base": "100",
                                "current": "120",
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
        assert de.energy_cap_per_mwh == D("90.40")
        assert price_cap_recompute(cap=de) == {}
        # HOFOR incl. VAT: 592.52 × 1.25 = 740.65 > 720.00 (NL cap incl. VAT)
        price_cap_adopt(cap=nl, now=NOW)
        with pytest.raises(TariffAboveCap, match=r"740\.65 DKK/MWh exceeds the energy cap"):
            tariff_version_approve(version=hofor_draft(network), user=manager, now=NOW)


class TestImpactAndExamples:
    def test_price_examples_for_standard_customers(self, network):
        version = hofor_draft(network)
        examples = {
            e["key"]: e for e in price_examples(spec=tariff_spec_for_version(version), year=2026)
        }
        # DK reference house: 18.1 MWh, 9.05 kW (18,100 kWh / 2,000 h), ΔT 30 → no cooling correction
        # 9.05 × 210.91 = 1,908.7355 → 1,908.74; 18.1 × 592.52 = 10,724.61; net 12,633.35; gross 15,791.69
        house = examples["dk-house-130m2"]
        assert (house["net"], house["gross"]) == (D("12633.35"), D("15791.69"))
        assert set(examples) >= {"se-house-15", "se-multi-193", "se-multi-1000"}

    def test_impact_simulation_distribution(self, manager, network):
        tariff = TariffFactory(network=network, code="houses")
        current = tariff_version_approve(
            version=hofor_draft(network, valid_from=dt.date(2024, 1, 1), tariff=tariff),
            user=manager,
            now=NOW,
        )
        for area in ("100", "130", "200"):
            conn = ServiceConnectionFactory(network=network, building__heated_area_m2=D(area))
            TariffAssignmentFactory(connection=conn, tariff=tariff, valid_from=dt.date(2024, 1, 1))
        components = [dict(c) for c in current.components]
        components[1] = {**components[1], "price": "652.52"}  # +60 DKK/MWh
        draft = tariff_version_create(
            tariff=tariff, valid_from=dt.date(2026, 1, 1), components=components
        )
        result = tariff_version_impact(version=draft, as_of=dt.date(2025, 12, 1))
        # standard estimate 130 kWh/m²·yr over Dec 2024–Nov 2025 (365 days): 13.0 / 16.9 / 26.0 MWh
        # changes 60 × MWh: 780.00, 1,014.00, 1,560.00
        assert result["count"] == 3
        assert result["sources"] == {"metered": 0, "standard": 3}
        assert result["mean"] == D("1118.00")
        assert result["percentiles"]["p50"] == D("1014.00")
        assert [r["change"] for r in result["largest_increases"]] == [
            D("1560.00"),
            D("1014.00"),
            D("780.00"),
        ]
        assert timezone.is_aware(NOW)


class TestImpactFromMeteredRegisters:
    def test_determinants_come_from_boundary_registers_when_present(self, manager, network):
        from metering.models import BoundaryRegister

        tariff = TariffFactory(network=network, code="metered")
        tariff_version_approve(
            version=hofor_draft(network, valid_from=dt.date(2024, 1, 1), tariff=tariff),
            user=manager,
            now=NOW,
        )
        conn = ServiceConnectionFactory(network=network)
        TariffAssignmentFactory(connection=conn, tariff=tariff, valid_from=dt.date(2024, 1, 1))
        # registers 1 Dec 2024 and 1 Dec 2025: 18,100 kWh and 778.3 m³ apart; m³·°C registers give
        # flow 70 °C and return 50 °C (ΔT 20 → HOFOR penalty 5 °C × 0.8 %)
        BoundaryRegister.objects.create(
            connection=conn,
            on=dt.date(2024, 12, 1),
            energy_kwh=D("1000"),
            volume_m3=D("100"),
            flow_temp_m3c=D("7000"),
            return_temp_m3c=D("5000"),
        )
        BoundaryRegister.objects.create(
            connection=conn,
            on=dt.date(2025, 12, 1),
            energy_kwh=D("19100"),
            volume_m3=D("878.3"),
            flow_temp_m3c=D("7000") + D("778.3") * 70,
            return_temp_m3c=D("5000") + D("778.3") * 50,
        )
        components = [dict(c) for c in PUBLISHED_TARIFFS["hofor-2024"]["components"]]
        components[1] = {**components[1], "price": "602.52"}  # +10 DKK/MWh
        draft = tariff_version_create(
            tariff=tariff, valid_from=dt.date(2026, 1, 1), components=components
        )
        result = tariff_version_impact(version=draft, as_of=dt.date(2025, 12, 15))
        # energy +181.00 and the cooling penalty on it +7.24 (4 % of 181.00): 188.24
        assert result["sources"] == {"metered": 1, "standard": 0}
        assert result["largest_increases"][0]["change"] == D("188.24")


class TestCapAdoptedAfterApproval:
    """Approval checks the caps adopted by then; a cap adopted later names the versions in
    force above it (service, API, admin), which billing would otherwise price above it."""

    def test_versions_in_force_above_a_later_cap_are_named_with_every_excess(
        self, manager, network
    ):
        first = tariff_version_approve(
            version=hofor_draft(network), user=manager, now=NOW
        )  # no cap yet
        second = tariff_version_new_from(version=first, valid_from=dt.date(2027, 1, 1))
        second.components[1]["price"] = "570.00"
        second.save(update_fields=["components"])
        tariff_version_approve(version=second, user=manager, now=NOW)
        cap = cost_cap(network, energy_cost_mwh=D("580"), adopt=False)  # 2026: energy cap 580.00
        assert price_cap_versions_above(cap=cap) == [
            {
                "tariff": "houses",
                "version_id": first.pk,
                "number": first.number,
                "valid_from": dt.date(2026, 1, 1),
                "valid_to": dt.date(2027, 1, 1),
                "messages": [
                    f"Component 'energy' 592.52 DKK/MWh exceeds the energy cap (cap #{cap.pk}, Cost-based / non-profit "
                    "(DK), 2026-01-01–2027-01-01) 580.00 DKK/MWh by 12.52 DKK/MWh."
                ],
            }
        ]  # the 2027 version (570.00) is outside the cap's period
        assert (
            price_cap_adopt(cap=cap, now=NOW).status == PriceCap.Status.ADOPTED
        )  # a fact: adopted all the same

    def test_a_cap_the_versions_keep_names_none(self, manager, network):
        tariff_version_approve(version=hofor_draft(network), user=manager, now=NOW)
        components = [dict(c) for c in PUBLISHED_TARIFFS["hofor-2024"]["components"]]
        components[1]["price"] = (
            "900.00"  # a draft above the cap is not in force: approval will refuse it
        )
        tariff_version_create(
            tariff=TariffFactory(network=network, code="draft"),
            valid_from=dt.date(2026, 1, 1),
            components=components,
        )
        assert price_cap_versions_above(cap=cost_cap(network, energy_cost_mwh=D("600"))) == []

    def test_the_api_and_the_admin_show_them_on_adopting(self, manager, network):
        from django.test import Client
        from django.urls import reverse
        from rest_framework.test import APIClient

        version = tariff_version_approve(version=hofor_draft(network), user=manager, now=NOW)
        cap = cost_cap(network, energy_cost_mwh=D("580"), adopt=False)
        api = APIClient()
        api.force_authenticate(manager)
        body = api.post(f"/api/v1/price-caps/{cap.pk}/adopt/").json()
        assert body["status"] == "adopted"
        assert [
            (v["version_id"], v["valid_from"], v["valid_to"]) for v in body["versions_above_cap"]
        ] == [(version.pk, "2026-01-01", None)]
        assert "by 12.52 DKK/MWh" in body["versions_above_cap"][0]["messages"][0]

        elsewhere = NetworkFactory(
            code="osl", currency="DKK"
        )  # one adopted cap per period and network
        version = tariff_version_approve(version=hofor_draft(elsewhere), user=manager, now=NOW)
        other = cost_cap(elsewhere, energy_cost_mwh=D("580"), adopt=False)
        admin = Client()
        admin.force_login(manager)
        page = admin.post(
            reverse("admin:tariffs_pricecap_changelist"),
            {"action": "adopt_caps", "_selected_action": [other.pk]},
            follow=True,
        ).content.decode()
        assert (
            f"Tariff houses version {version.number} (2026-01-01 to open) is in force above this cap"
            in page
        )
        assert "592.52 DKK/MWh exceeds the energy cap" in page
        detail = admin.get(
            reverse("admin:tariffs_pricecap_change", args=[other.pk])
        ).content.decode()
        assert "Versions in force above this cap" in detail
        assert "by 12.52 DKK/MWh" in detail
