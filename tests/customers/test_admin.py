import datetime as dt

import pytest

from customers.models import Contract
from heatutility.roles import BILLING_CLERK
from tests.customers.factories import AccountFactory, BuildingInterfaceUnitFactory, ContractFactory
from tests.metering.factories import MeterInstallationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def clerk_client(client, django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(
        "clerk", password="a-long-test-password-1", is_staff=True
    )
    user.groups.add(Group.objects.get(name=BILLING_CLERK))
    client.force_login(user)
    client.user = user
    return client


class TestAccountAdmin:
    def test_finds_an_account_by_its_meter_serial(self, clerk_client):
        contract = ContractFactory()
        unit = BuildingInterfaceUnitFactory(connection=contract.connection)
        MeterInstallationFactory(unit=unit, meter__serial="67123456")
        AccountFactory()  # someone else

        response = clerk_client.get("/admin/customers/account/", {"q": "67123456"})

        assert response.status_code == 200
        assert list(response.context["cl"].result_list) == [contract.account]

    @pytest.mark.parametrize("field", ["number", "name", "street"])
    def test_finds_an_account_by_number_name_and_address(self, clerk_client, field):
        account = AccountFactory(
            number="4711", customer__name="Ingrid Havmand", billing_street="Kajgade 7"
        )
        AccountFactory()
        query = {"number": "4711", "name": "Havmand", "street": "Kajgade"}[field]

        response = clerk_client.get("/admin/customers/account/", {"q": query})

        assert list(response.context["cl"].result_list) == [account]

    def test_change_history_records_who_changed_what(self, clerk_client):
        account = AccountFactory(billing_city="Odense")
        data = {
            "number": account.number,
            "customer": account.customer.pk,
            "network": account.network.pk,
            "status": "active",
            "billing_name": "",
            "billing_street": account.billing_street,
            "billing_postal_code": account.billing_postal_code,
            "billing_city": "Aarhus",
            "billing_country": "DK",
            "payment_terms_days": 14,
            "contracts-TOTAL_FORMS": 0,
            "contracts-INITIAL_FORMS": 0,
        }

        response = clerk_client.post(f"/admin/customers/account/{account.pk}/change/", data)
        history = clerk_client.get(f"/admin/customers/account/{account.pk}/history/")

        assert response.status_code == 302
        latest = account.history.first()
        assert latest.history_user == clerk_client.user
        assert latest.billing_city == "Aarhus"
        assert latest.prev_record.billing_city == "Odense"
        assert history.status_code == 200
        assert b"clerk" in history.content


class TestContractAdmin:
    def test_overlap_is_refused_with_a_clear_message(self, clerk_client):
        existing = ContractFactory(valid_from=dt.date(2026, 1, 1))
        other = AccountFactory(network=existing.account.network)

        response = clerk_client.post(
            "/admin/customers/contract/add/",
            {"account": other.pk, "connection": existing.connection.pk, "valid_from": "2026-04-01"},
        )

        assert response.status_code == 200  # the form comes back with the error
        assert "This connection already has a contract in that period." in response.content.decode()
        assert Contract.objects.count() == 1


class TestInterfaceUnitAdmin:
    def test_shows_the_meter_installation_history(self, client, django_user_model):
        installation = MeterInstallationFactory(meter__serial="67999001")
        admin = django_user_model.objects.create_superuser(
            "root", "root@example.org", "a-long-test-password-1"
        )
        client.force_login(admin)

        response = client.get(
            f"/admin/customers/buildinginterfaceunit/{installation.unit.pk}/change/"
        )

        assert response.status_code == 200
        assert "67999001" in response.content.decode()
