"""What each staff role may and may not do, in the admin and the API."""

import pytest
from django.contrib.auth.models import Group, Permission

from heatutility.roles import AUDITOR, BILLING_CLERK, DOMAIN_APPS, METERING_OPERATOR, TARIFF_MANAGER
from tests.customers.factories import AccountFactory, CustomerFactory, NetworkFactory
from tests.metering.factories import HeatMeterFactory

pytestmark = pytest.mark.django_db


def admin_get(client, user, url):
    client.force_login(user)
    return client.get(url).status_code


class TestRoleGroups:
    def test_the_migration_created_the_four_roles(self):
        assert set(Group.objects.values_list("name", flat=True)) >= {
            BILLING_CLERK,
            METERING_OPERATOR,
            TARIFF_MANAGER,
            AUDITOR,
        }

    def test_auditor_may_view_every_domain_model_and_change_none(self):
        auditor = Group.objects.get(name=AUDITOR)
        codenames = set(auditor.permissions.values_list("codename", flat=True))
        domain_views = set(
            Permission.objects.filter(
                content_type__app_label__in=DOMAIN_APPS, codename__startswith="view_"
            ).values_list("codename", flat=True)
        )
        assert domain_views
        assert domain_views <= codenames
        assert not any(c.split("_", 1)[0] in {"add", "change", "delete"} for c in codenames)

    def test_only_the_tariff_manager_approves_tariff_versions(self):
        holders = Group.objects.filter(permissions__codename="approve_tariffversion")
        assert list(holders.values_list("name", flat=True)) in ([], [TARIFF_MANAGER])
        for role in (BILLING_CLERK, METERING_OPERATOR, AUDITOR):
            assert (
                not Group.objects.get(name=role)
                .permissions.filter(codename="approve_tariffversion")
                .exists()
            )


def test_every_admin_action_names_the_permission_it_needs():
    """Django offers an action without ``permissions=`` to everyone who may view the list,
    and runs it for them: each action must say which permission it needs."""
    from django.contrib import admin

    unguarded = [
        f"{model._meta.label}.{name}"
        for model, model_admin in admin.site._registry.items()
        for func, name, _description in model_admin._get_base_actions()
        if not getattr(func, "allowed_permissions", None)
    ]

    assert unguarded == []


class TestAdminByRole:
    @pytest.mark.parametrize(
        ("role", "url", "expected"),
        [
            (BILLING_CLERK, "/admin/customers/account/add/", 200),
            (BILLING_CLERK, "/admin/metering/heatmeter/", 200),
            (BILLING_CLERK, "/admin/metering/heatmeter/add/", 403),
            (METERING_OPERATOR, "/admin/metering/heatmeter/add/", 200),
            (METERING_OPERATOR, "/admin/customers/buildinginterfaceunit/add/", 200),
            (BILLING_CLERK, "/admin/customers/buildinginterfaceunit/add/", 403),
            (BILLING_CLERK, "/admin/customers/buildinginterfaceunit/", 200),
            (METERING_OPERATOR, "/admin/customers/account/add/", 403),
            (METERING_OPERATOR, "/admin/customers/account/", 200),
            (TARIFF_MANAGER, "/admin/customers/account/", 200),
            (TARIFF_MANAGER, "/admin/customers/account/add/", 403),
            (AUDITOR, "/admin/customers/account/", 200),
            (AUDITOR, "/admin/metering/meterinstallation/", 200),
            (AUDITOR, "/admin/customers/account/add/", 403),
            (AUDITOR, "/admin/metering/heatmeter/add/", 403),
        ],
    )
    def test_admin_pages(self, client, make_staff, role, url, expected):
        assert admin_get(client, make_staff(role), url) == expected

    def test_auditor_cannot_change_an_account(self, client, make_staff):
        account = AccountFactory(billing_city="Before")
        client.force_login(make_staff(AUDITOR))

        response = client.post(
            f"/admin/customers/account/{account.pk}/change/", {"billing_city": "After"}
        )

        account.refresh_from_db()
        assert response.status_code == 403
        assert account.billing_city == "Before"

    def test_staff_without_a_role_sees_nothing(self, client, make_staff):
        assert admin_get(client, make_staff(None), "/admin/customers/account/") == 403


class TestApiByRole:
    def _account_body(self):
        return {
            "number": "900001",
            "customer": CustomerFactory().pk,
            "network": NetworkFactory().pk,
            "billing_street": "Havnegade 1",
            "billing_postal_code": "1058",
            "billing_city": "København K",
        }

    def test_billing_clerk_opens_an_account(self, make_staff, api_client_for):
        client = api_client_for(make_staff(BILLING_CLERK))

        response = client.post("/api/v1/accounts/", self._account_body(), format="json")

        assert response.status_code == 201, response.json()
        assert response.json()["number"] == "900001"

    @pytest.mark.parametrize("role", [METERING_OPERATOR, TARIFF_MANAGER, AUDITOR])
    def test_other_roles_cannot_open_accounts(self, make_staff, api_client_for, role):
        client = api_client_for(make_staff(role))

        response = client.post("/api/v1/accounts/", self._account_body(), format="json")

        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"

    def test_metering_operator_registers_a_meter_but_billing_clerk_cannot(
        self, make_staff, api_client_for
    ):
        body = {
            "maker": "Kamstrup",
            "model": "MULTICAL 403",
            "serial": "71000001",
            "register_unit": "GJ",
        }

        operator = api_client_for(make_staff(METERING_OPERATOR)).post(
            "/api/v1/meters/", body, format="json"
        )
        clerk = api_client_for(make_staff(BILLING_CLERK)).post(
            "/api/v1/meters/", {**body, "serial": "71000002"}, format="json"
        )

        assert operator.status_code == 201
        assert clerk.status_code == 403

    def test_auditor_reads_everything(self, make_staff, api_client_for):
        AccountFactory()
        HeatMeterFactory()
        client = api_client_for(make_staff(AUDITOR))

        for url in (
            "/api/v1/accounts/",
            "/api/v1/meters/",
            "/api/v1/contracts/",
            "/api/v1/networks/",
        ):
            response = client.get(url)
            assert response.status_code == 200, url
        assert client.get("/api/v1/accounts/").json()["count"] == 1

    def test_non_staff_users_are_refused(self, django_user_model, api_client_for):
        user = django_user_model.objects.create_user(
            username="someone", password="a-long-test-password-1"
        )

        assert api_client_for(user).get("/api/v1/accounts/").status_code == 403

    def test_anonymous_requests_are_refused(self, client):
        assert client.get("/api/v1/accounts/").status_code in (401, 403)
