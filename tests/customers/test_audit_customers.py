"""Audit of the customers app: contracts, dated changes, admin and API writes."""

import datetime as dt
from decimal import Decimal

import pytest

from customers.models import Account, AreaChange, CapacityChange, Contract, ServiceConnection
from customers.services import (
    UnableToChangeCapacity,
    UnableToMoveIn,
    UnableToMoveOut,
    connection_capacity_change,
    contract_move_in,
    contract_move_out,
)
from tests.billing.helpers import client_for
from tests.customers.factories import (
    AccountFactory,
    BuildingFactory,
    ContractFactory,
    NetworkFactory,
    ServiceConnectionFactory,
)
from tests.customers.test_admin import clerk_client  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

D = Decimal


def connection_form(connection, *contracts: dict, network=None) -> dict:
    """The connection admin's change form for ``connection`` (its network replaced by
    ``network``), no capacity or unit rows, and ``contracts`` as its contract inline:
    dicts of account, valid_from, valid_to, and id for a stored one (those first)."""
    data = {
        "number": connection.number,
        "building": connection.building.pk,
        "network": (network or connection.network).pk,
        "status": "active",
        "connected_on": "2020-01-01",
        "disconnected_on": "",
        "capacity_changes-TOTAL_FORMS": 0,
        "capacity_changes-INITIAL_FORMS": 0,
        "interface_units-TOTAL_FORMS": 0,
        "interface_units-INITIAL_FORMS": 0,
        "contracts-TOTAL_FORMS": len(contracts),
        "contracts-INITIAL_FORMS": sum("id" in row for row in contracts),
    }
    for i, row in enumerate(contracts):
        for key, value in {**row, "connection": connection.pk}.items():
            data[f"contracts-{i}-{key}"] = value
    return data


def closing_form(contract) -> dict:
    """The account admin's change form for ``contract``'s account, asking to close it,
    with the contract as its one inline row."""
    account = contract.account
    return {
        "number": account.number,
        "customer": account.customer.pk,
        "network": account.network.pk,
        "status": "closed",
        "billing_name": "",
        "billing_street": account.billing_street,
        "billing_postal_code": account.billing_postal_code,
        "billing_city": account.billing_city,
        "billing_country": "DK",
        "payment_terms_days": 14,
        "contracts-TOTAL_FORMS": 1,
        "contracts-INITIAL_FORMS": 1,
        "contracts-0-id": contract.pk,
        "contracts-0-account": account.pk,
        "contracts-0-connection": contract.connection.pk,
        "contracts-0-valid_from": contract.valid_from.isoformat(),
        "contracts-0-valid_to": contract.valid_to.isoformat() if contract.valid_to else "",
    }


class TestMoveOutOfAStaleContract:
    def test_a_contract_ended_meanwhile_is_not_extended(self):
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1))
        stale = Contract.objects.get(pk=contract.pk)
        contract_move_out(contract=contract, move_out_on=dt.date(2026, 3, 1))

        with pytest.raises(UnableToMoveOut, match="already ended"):
            contract_move_out(contract=stale, move_out_on=dt.date(2026, 9, 1))

        contract.refresh_from_db()
        assert contract.valid_to == dt.date(2026, 3, 1)


class TestMoveInOutsideTheConnectionsLife:
    def test_a_move_in_before_the_connection_was_connected_is_refused(self):
        network = NetworkFactory()
        account = AccountFactory(network=network)
        connection = ServiceConnectionFactory(network=network, connected_on=dt.date(2026, 3, 1))

        with pytest.raises(UnableToMoveIn) as caught:
            contract_move_in(account=account, connection=connection, move_in_on=dt.date(2026, 2, 1))

        assert caught.value.errors[0].field == "move_in_on"
        assert not Contract.objects.exists()

    def test_a_move_in_on_the_day_of_connection_is_accepted(self):
        network = NetworkFactory()
        account = AccountFactory(network=network)
        connection = ServiceConnectionFactory(network=network, connected_on=dt.date(2026, 3, 1))

        contract = contract_move_in(
            account=account, connection=connection, move_in_on=dt.date(2026, 3, 1)
        )

        assert contract.valid_from == dt.date(2026, 3, 1)


class TestCapacityChangeBeforeTheConnectionExisted:
    def test_is_refused_by_the_service(self):
        conn = ServiceConnectionFactory(connected_on=dt.date(2024, 6, 1))

        with pytest.raises(UnableToChangeCapacity) as caught:
            connection_capacity_change(
                connection=conn, capacity_kw=D("20"), valid_from=dt.date(2024, 5, 31)
            )

        assert caught.value.errors[0].field == "valid_from"
        assert not CapacityChange.objects.exists()

    def test_is_a_400_on_the_field_in_the_api(self):
        conn = ServiceConnectionFactory(connected_on=dt.date(2024, 6, 1))

        response = client_for("billing clerk").post(
            f"/api/v1/connections/{conn.pk}/capacity-changes/",
            {"valid_from": "2024-01-01", "capacity_kw": "20.00"},
        )

        assert response.status_code == 400, response.content
        assert response.json()["errors"][0]["field"] == "valid_from"
        assert not CapacityChange.objects.exists()

    def test_is_a_form_error_in_the_admin(self, clerk_client):  # noqa: F811
        conn = ServiceConnectionFactory(connected_on=dt.date(2024, 6, 1))

        response = clerk_client.post(
            "/admin/customers/capacitychange/add/",
            {"connection": conn.pk, "valid_from": "2024-01-01", "capacity_kw": "20.00"},
        )

        assert response.status_code == 200
        assert "connected" in response.content.decode()
        assert not CapacityChange.objects.exists()


class TestAdminDatesOutOfRange:
    def test_a_capacity_change_in_year_one_is_a_form_error(self, clerk_client):  # noqa: F811
        conn = ServiceConnectionFactory(connected_on=None)

        response = clerk_client.post(
            "/admin/customers/capacitychange/add/",
            {"connection": conn.pk, "valid_from": "0001-01-01", "capacity_kw": "20.00"},
        )

        assert response.status_code == 200
        assert not CapacityChange.objects.exists()

    def test_an_area_change_in_year_one_is_a_form_error(self, clerk_client):  # noqa: F811
        building = BuildingFactory()

        response = clerk_client.post(
            "/admin/customers/areachange/add/",
            {"building": building.pk, "valid_from": "0001-01-01", "heated_area_m2": "150.00"},
        )

        assert response.status_code == 200
        assert not AreaChange.objects.exists()


class TestContractAdminKeepsTheMoveInRules:
    def test_an_account_of_another_network_is_refused(self, clerk_client):  # noqa: F811
        account = AccountFactory()
        connection = ServiceConnectionFactory()  # another network

        response = clerk_client.post(
            "/admin/customers/contract/add/",
            {"account": account.pk, "connection": connection.pk, "valid_from": "2026-04-01"},
        )

        assert response.status_code == 200
        assert "another network" in response.content.decode()
        assert not Contract.objects.exists()


class TestAccountAdminKeepsTheCloseRule:
    def test_an_account_with_an_open_contract_is_not_closed(self, clerk_client):  # noqa: F811
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1))
        account = contract.account
        data = closing_form(contract)

        response = clerk_client.post(f"/admin/customers/account/{account.pk}/change/", data)

        assert response.status_code == 200
        account.refresh_from_db()
        assert account.status == Account.Status.ACTIVE


class TestContractInlineOverlap:
    def test_two_new_overlapping_contracts_in_one_form_are_refused(self, clerk_client):  # noqa: F811
        connection = ServiceConnectionFactory()
        first = AccountFactory(network=connection.network)
        second = AccountFactory(network=connection.network)
        data = connection_form(
            connection,
            {"account": first.pk, "valid_from": "2026-01-01", "valid_to": ""},
            {"account": second.pk, "valid_from": "2026-03-01", "valid_to": ""},
        )

        response = clerk_client.post(
            f"/admin/customers/serviceconnection/{connection.pk}/change/", data
        )

        assert response.status_code == 200
        assert Contract.objects.filter(connection=connection).count() == 0


class TestMoveInAfterDisconnection:
    def test_a_move_in_from_the_day_of_disconnection_is_refused(self):
        network = NetworkFactory()
        account = AccountFactory(network=network)
        connection = ServiceConnectionFactory(network=network, disconnected_on=dt.date(2026, 6, 1))

        with pytest.raises(UnableToMoveIn) as caught:
            contract_move_in(account=account, connection=connection, move_in_on=dt.date(2026, 6, 1))

        assert [e.code for e in caught.value.errors] == ["after_disconnected"]
        assert not Contract.objects.exists()

    def test_through_the_api_it_is_an_itemised_error_on_the_date(self):
        network = NetworkFactory()
        account = AccountFactory(network=network)
        connection = ServiceConnectionFactory(network=network, connected_on=dt.date(2026, 3, 1))

        response = client_for("billing clerk").post(
            "/api/v1/contracts/move-in/",
            {"account": account.pk, "connection": connection.pk, "move_in_on": "2026-02-01"},
        )

        assert response.status_code == 422, response.content
        assert response.json()["errors"][0]["field"] == "move_in_on"
        assert not Contract.objects.exists()


class TestContractAdminBeforeTheConnectionExisted:
    def test_a_contract_starting_before_the_connection_is_refused(self, clerk_client):  # noqa: F811
        connection = ServiceConnectionFactory(connected_on=dt.date(2026, 3, 1))
        account = AccountFactory(network=connection.network)

        response = clerk_client.post(
            "/admin/customers/contract/add/",
            {"account": account.pk, "connection": connection.pk, "valid_from": "2026-02-01"},
        )

        assert response.status_code == 200
        assert "was connected on 2026-03-01" in response.content.decode()
        assert not Contract.objects.exists()

    def test_an_ended_contract_of_a_suspended_account_can_still_be_corrected(
        self,
        clerk_client,  # noqa: F811
    ):
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1), valid_to=dt.date(2026, 6, 1))
        Account.objects.filter(pk=contract.account.pk).update(status=Account.Status.SUSPENDED)

        response = clerk_client.post(
            f"/admin/customers/contract/{contract.pk}/change/",
            {
                "account": contract.account.pk,
                "connection": contract.connection.pk,
                "valid_from": "2026-01-01",
                "valid_to": "2026-05-01",
            },
        )

        assert response.status_code == 302
        contract.refresh_from_db()
        assert contract.valid_to == dt.date(2026, 5, 1)


class TestContractInlineExtendedOverANewRow:
    def test_an_existing_contract_extended_over_a_new_one_is_refused(self, clerk_client):  # noqa: F811
        existing = ContractFactory(valid_from=dt.date(2026, 1, 1), valid_to=dt.date(2026, 3, 1))
        connection = existing.connection
        newcomer = AccountFactory(network=connection.network)
        data = connection_form(
            connection,
            {
                "id": existing.pk,
                "account": existing.account.pk,
                "valid_from": "2026-01-01",
                "valid_to": "2026-09-01",
            },
            {"account": newcomer.pk, "valid_from": "2026-03-01", "valid_to": ""},
        )

        response = clerk_client.post(
            f"/admin/customers/serviceconnection/{connection.pk}/change/", data
        )

        assert response.status_code == 200
        assert Contract.objects.filter(connection=connection).count() == 1
        existing.refresh_from_db()
        assert existing.valid_to == dt.date(2026, 3, 1)


class TestConnectionEditsKeepItsContracts:
    def test_the_network_of_a_connection_with_contracts_does_not_change(self):
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1))
        other = NetworkFactory()

        response = client_for("billing clerk").patch(
            f"/api/v1/connections/{contract.connection.pk}/", {"network": other.pk}
        )

        assert response.status_code == 400, response.content
        assert response.json()["errors"][0]["field"] == "network"
        contract.connection.refresh_from_db()
        assert contract.connection.network_id == contract.account.network_id

    def test_connected_after_a_contract_started_is_refused(self):
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1))

        response = client_for("billing clerk").patch(
            f"/api/v1/connections/{contract.connection.pk}/", {"connected_on": "2026-02-01"}
        )

        assert response.status_code == 400, response.content
        assert response.json()["errors"][0]["field"] == "connected_on"

    def test_connected_after_a_capacity_change_is_refused(self):
        conn = ServiceConnectionFactory(connected_on=dt.date(2024, 1, 1))
        connection_capacity_change(
            connection=conn, capacity_kw=D("20"), valid_from=dt.date(2024, 6, 1)
        )

        response = client_for("billing clerk").patch(
            f"/api/v1/connections/{conn.pk}/", {"connected_on": "2024-07-01"}
        )

        assert response.status_code == 400, response.content
        assert response.json()["errors"][0]["field"] == "connected_on"

    def test_disconnected_while_a_contract_is_open_is_refused(self):
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1))

        response = client_for("billing clerk").patch(
            f"/api/v1/connections/{contract.connection.pk}/",
            {"status": "disconnected", "disconnected_on": "2026-06-01"},
        )

        assert response.status_code == 400, response.content
        assert response.json()["errors"][0]["field"] == "disconnected_on"

    def test_disconnected_after_the_last_move_out_is_accepted(self):
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1), valid_to=dt.date(2026, 6, 1))

        response = client_for("billing clerk").patch(
            f"/api/v1/connections/{contract.connection.pk}/",
            {"status": "disconnected", "disconnected_on": "2026-06-01"},
        )

        assert response.status_code == 200, response.content

    def test_the_admin_refuses_the_network_change_too(self, clerk_client):  # noqa: F811
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1))
        connection = contract.connection
        other = NetworkFactory()
        data = connection_form(
            connection,
            {
                "id": contract.pk,
                "account": contract.account.pk,
                "valid_from": "2026-01-01",
                "valid_to": "",
            },
            network=other,
        )

        response = clerk_client.post(
            f"/admin/customers/serviceconnection/{connection.pk}/change/", data
        )

        assert response.status_code == 200
        connection.refresh_from_db()
        assert connection.network_id == contract.account.network_id


class TestInterfaceUnitKeepsItsMeterHistory:
    def test_a_unit_with_meters_does_not_move_to_another_connection(self):
        from tests.metering.factories import MeterInstallationFactory

        installation = MeterInstallationFactory()
        unit = installation.unit
        other = ServiceConnectionFactory(network=unit.connection.network)

        response = client_for("metering operator").patch(
            f"/api/v1/interface-units/{unit.pk}/", {"connection": other.pk}
        )

        assert response.status_code == 400, response.content
        assert response.json()["errors"][0]["field"] == "connection"
        unit.refresh_from_db()
        assert unit.connection_id != other.pk

    def test_the_admin_refuses_the_move_too(self, client, django_user_model):
        from tests.metering.factories import MeterInstallationFactory

        installation = MeterInstallationFactory()
        unit = installation.unit
        other = ServiceConnectionFactory(network=unit.connection.network)
        root = django_user_model.objects.create_superuser(
            "root", "root@example.org", "a-long-test-password-1"
        )
        client.force_login(root)

        response = client.post(
            f"/admin/customers/buildinginterfaceunit/{unit.pk}/change/",
            {
                "connection": other.pk,
                "maker": unit.maker,
                "model": unit.model,
                "serial": unit.serial,
                "kind": unit.kind,
                "domestic_hot_water": "on",
                "installed_on": "2020-01-01",
                "removed_on": "",
                "design_supply_temp_c": "70.0",
                "design_return_temp_c": "35.0",
                "meter_installations-TOTAL_FORMS": 0,
                "meter_installations-INITIAL_FORMS": 0,
            },
        )

        assert response.status_code == 200
        unit.refresh_from_db()
        assert unit.connection_id != other.pk

    def test_a_unit_without_meters_may_be_corrected(self):
        from tests.customers.factories import BuildingInterfaceUnitFactory

        unit = BuildingInterfaceUnitFactory()
        other = ServiceConnectionFactory(network=unit.connection.network)

        response = client_for("metering operator").patch(
            f"/api/v1/interface-units/{unit.pk}/", {"connection": other.pk}
        )

        assert response.status_code == 200, response.content


class TestAnAccountIsClosedOnceNoLongerSupplied:
    def test_a_move_out_ahead_keeps_it_open_until_that_day(self):
        from customers.services import account_status_errors

        contract = ContractFactory(valid_from=dt.date(2026, 1, 1))
        contract_move_out(contract=contract, move_out_on=dt.date(2026, 12, 15))
        account = contract.account

        errors = account_status_errors(
            account=account, status=Account.Status.CLOSED, today=dt.date(2026, 12, 14)
        )
        assert [(e.code, e.field, e.message) for e in errors] == [
            ("supplied_until", "status", "supplied until the move-out on 2026-12-15")
        ]
        assert not account_status_errors(
            account=account, status=Account.Status.CLOSED, today=dt.date(2026, 12, 15)
        )
        # suspending is not closing
        assert not account_status_errors(
            account=account, status=Account.Status.SUSPENDED, today=dt.date(2026, 12, 14)
        )

    def test_the_api_refuses_it_with_the_move_out_day_and_closes_after_it(self):
        from django.utils import timezone

        today = timezone.localdate()
        contract = ContractFactory(valid_from=today - dt.timedelta(days=90))
        contract_move_out(contract=contract, move_out_on=today + dt.timedelta(days=20))
        account = contract.account
        client = client_for("billing clerk")

        refused = client.post(
            f"/api/v1/accounts/{account.pk}/status/", {"status": "closed"}, format="json"
        )

        assert refused.status_code == 409
        body = refused.json()
        assert "close it from that day on" in str(body)
        assert (today + dt.timedelta(days=20)).isoformat() in str(body)
        account.refresh_from_db()
        assert account.status == Account.Status.ACTIVE

        Contract.objects.filter(pk=contract.pk).update(valid_to=today)
        closed = client.post(
            f"/api/v1/accounts/{account.pk}/status/", {"status": "closed"}, format="json"
        )
        assert closed.status_code == 200
        account.refresh_from_db()
        assert account.status == Account.Status.CLOSED

    def test_the_admin_refuses_it_with_the_move_out_day(self, clerk_client):  # noqa: F811
        from django.utils import timezone

        today = timezone.localdate()
        ends = today + dt.timedelta(days=3)
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1), valid_to=ends)
        account = contract.account
        data = closing_form(contract)

        response = clerk_client.post(f"/admin/customers/account/{account.pk}/change/", data)

        assert response.status_code == 200
        assert f"supplied until the move-out on {ends.isoformat()}" in response.content.decode()
        account.refresh_from_db()
        assert account.status == Account.Status.ACTIVE


class TestANetworkInUseKeepsItsCurrencyAndZone:
    @pytest.fixture
    def api(self, admin_user):
        from rest_framework.test import APIClient

        client = APIClient()
        client.force_authenticate(admin_user)
        return client

    def test_the_api_refuses_both_once_it_has_accounts(self, api):
        network = AccountFactory().network

        response = api.patch(
            f"/api/v1/networks/{network.pk}/",
            {"currency": "EUR", "time_zone": "Europe/Berlin"},
            format="json",
        )

        assert response.status_code == 400
        fields = {(e["field"], e["message"]) for e in response.json()["errors"]}
        assert fields == {
            (
                "currency",
                "This network is in use (accounts, connections, tariffs or price caps): "
                "its currency stays DKK.",
            ),
            (
                "time_zone",
                "This network is in use (accounts, connections, tariffs or price caps): "
                "its time zone stays Europe/Copenhagen.",
            ),
        }
        network.refresh_from_db()
        assert (network.currency, network.time_zone) == ("DKK", "Europe/Copenhagen")

    def test_a_new_network_may_still_change_and_other_fields_always(self, api):
        empty = NetworkFactory()
        used = ServiceConnectionFactory().network

        assert (
            api.patch(
                f"/api/v1/networks/{empty.pk}/", {"currency": "EUR"}, format="json"
            ).status_code
            == 200
        )
        assert (
            api.patch(
                f"/api/v1/networks/{used.pk}/", {"name": "Renamed"}, format="json"
            ).status_code
            == 200
        )
        empty.refresh_from_db()
        used.refresh_from_db()
        assert (empty.currency, used.name) == ("EUR", "Renamed")

    def test_the_admin_refuses_it_too(self, admin_client):
        from tests.tariffs.factories import TariffFactory

        network = TariffFactory().network
        page = admin_client.get(f"/admin/customers/network/{network.pk}/change/")
        data = {
            k: v
            for k, v in page.context["adminform"].form.initial.items()
            if v is not None and k != "id"
        }
        data["currency"] = "SEK"

        response = admin_client.post(f"/admin/customers/network/{network.pk}/change/", data)

        assert response.status_code == 200
        assert "its currency stays DKK" in response.content.decode()
        network.refresh_from_db()
        assert network.currency == "DKK"


class TestNumbersArePrintable:
    @pytest.mark.parametrize(
        ("number", "message"),
        [
            ("7000\r01", "Use no line breaks, tabs or other control characters."),
            ("7000\t01", "Use no line breaks, tabs or other control characters."),
            ("7000\u202801", "Use no line breaks, tabs or other control characters."),
        ],
    )
    def test_an_account_number_with_a_control_character_is_refused(self, number, message):
        account = AccountFactory()
        client = client_for("billing clerk")

        response = client.patch(
            f"/api/v1/accounts/{account.pk}/", {"number": number}, format="json"
        )

        assert response.status_code == 400
        assert [(e["field"], e["message"]) for e in response.json()["errors"]] == [
            ("number", message)
        ]
        account.refresh_from_db()
        assert account.number != number

    def test_ordinary_numbers_pass_and_blanks_at_the_ends_do_not(self):
        from django.core.exceptions import ValidationError

        from customers.models import validate_identifier

        for number in ("700001", "A-2026/17", "K 0042"):
            validate_identifier(number)
        with pytest.raises(ValidationError, match="Remove the blanks"):
            validate_identifier(" 700001")  # forms and the API trim; a direct save does not


class TestAContractEndsByTheDisconnection:
    """Billing bills every day of a contract and knows nothing of disconnection dates:
    a contract that runs past its connection's disconnection (or a closed account's
    last day) bills days nobody is supplied."""

    def test_a_move_in_before_a_recorded_disconnection_ends_on_it(self):
        connection = ServiceConnectionFactory(disconnected_on=dt.date(2026, 6, 1))
        account = AccountFactory(network=connection.network)

        contract = contract_move_in(
            account=account, connection=connection, move_in_on=dt.date(2026, 3, 1)
        )

        assert (contract.valid_from, contract.valid_to) == (
            dt.date(2026, 3, 1),
            dt.date(2026, 6, 1),
        )

    def test_the_admin_does_not_reopen_a_contract_of_a_disconnected_connection(
        self,
        clerk_client,  # noqa: F811
    ):
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1), valid_to=dt.date(2026, 5, 1))
        ServiceConnection.objects.filter(pk=contract.connection.pk).update(
            status=ServiceConnection.Status.DISCONNECTED, disconnected_on=dt.date(2026, 6, 1)
        )
        form = {
            "account": contract.account.pk,
            "connection": contract.connection.pk,
            "valid_from": "2026-01-01",
        }

        reopened = clerk_client.post(
            f"/admin/customers/contract/{contract.pk}/change/", {**form, "valid_to": ""}
        )
        extended = clerk_client.post(
            f"/admin/customers/contract/{contract.pk}/change/", {**form, "valid_to": "2026-07-01"}
        )
        up_to_it = clerk_client.post(
            f"/admin/customers/contract/{contract.pk}/change/", {**form, "valid_to": "2026-06-01"}
        )

        assert reopened.status_code == extended.status_code == 200
        assert "is disconnected from 2026-06-01" in reopened.content.decode()
        assert up_to_it.status_code == 302
        contract.refresh_from_db()
        assert contract.valid_to == dt.date(2026, 6, 1)

    def test_the_admin_does_not_reopen_a_contract_of_a_closed_account(
        self,
        clerk_client,  # noqa: F811
    ):
        contract = ContractFactory(valid_from=dt.date(2024, 1, 1), valid_to=dt.date(2024, 5, 1))
        Account.objects.filter(pk=contract.account.pk).update(status=Account.Status.CLOSED)
        form = {
            "account": contract.account.pk,
            "connection": contract.connection.pk,
            "valid_from": "2024-01-01",
        }

        reopened = clerk_client.post(
            f"/admin/customers/contract/{contract.pk}/change/", {**form, "valid_to": ""}
        )
        corrected = clerk_client.post(
            f"/admin/customers/contract/{contract.pk}/change/", {**form, "valid_to": "2024-04-01"}
        )

        assert reopened.status_code == 200
        assert "is closed" in reopened.content.decode()
        assert corrected.status_code == 302
        contract.refresh_from_db()
        assert contract.valid_to == dt.date(2024, 4, 1)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_account_closed_while_a_move_in_is_checked_gets_no_open_contract(monkeypatch):
    """The move-in's rules (an active account) and the close's (no open contract) were
    each checked on rows nobody held: a close between the move-in's check and its insert
    passed, and the closed account was supplied from then on.  Both take the account's
    row: the close waits for the move-in and then sees its open contract."""
    from customers import services
    from customers.services import account_set_status
    from heatutility.errors import ConflictError
    from tests.concurrency import Pause, finish, in_thread

    connection = ServiceConnectionFactory()
    account = AccountFactory(network=connection.network)
    pause = Pause(monkeypatch, services, "contract_supply_errors", after=True)
    mover, moved = in_thread(
        contract_move_in, account=account, connection=connection, move_in_on=dt.date(2026, 3, 1)
    )
    try:
        pause.wait()
        closer, closed = in_thread(
            account_set_status, account=Account.objects.get(pk=account.pk), status="closed"
        )
        closer.join(timeout=3)  # done at once before the fix, waiting for the row after it
    finally:
        pause.released.set()
    finish(mover, closer)

    account.refresh_from_db()
    open_contracts = Contract.objects.filter(account=account, valid_to__isnull=True).count()
    assert (account.status, open_contracts) != (Account.Status.CLOSED, 1)
    assert moved.get("error") is None
    assert isinstance(closed.get("error"), ConflictError)
    assert account.status == Account.Status.ACTIVE


class TestAConnectionWithContractsStaysInItsBuilding:
    """Area charges are priced by the m² of the connection's building (as it stands, per
    AreaChange): moving a billed connection to another building changed what a
    re-rating of its billed months charges, and nothing re-rated them."""

    def test_the_api_refuses_another_building(self):
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1))
        bigger = BuildingFactory(heated_area_m2=D("200.00"))

        response = client_for("billing clerk").patch(
            f"/api/v1/connections/{contract.connection.pk}/", {"building": bigger.pk}
        )

        assert response.status_code == 400, response.content
        assert response.json()["errors"][0]["field"] == "building"
        contract.connection.refresh_from_db()
        assert contract.connection.building_id != bigger.pk

    def test_the_admin_refuses_it_too(self, clerk_client):  # noqa: F811
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1))
        connection = contract.connection
        bigger = BuildingFactory(heated_area_m2=D("200.00"))
        data = connection_form(
            connection,
            {
                "id": contract.pk,
                "account": contract.account.pk,
                "valid_from": "2026-01-01",
                "valid_to": "",
            },
        )

        response = clerk_client.post(
            f"/admin/customers/serviceconnection/{connection.pk}/change/",
            {**data, "building": bigger.pk},
        )

        assert response.status_code == 200
        assert "stays in its building" in response.content.decode()
        connection.refresh_from_db()
        assert connection.building_id != bigger.pk

    def test_a_connection_without_contracts_may_still_be_corrected(self):
        connection = ServiceConnectionFactory()
        other = BuildingFactory()

        response = client_for("billing clerk").patch(
            f"/api/v1/connections/{connection.pk}/", {"building": other.pk}
        )

        assert response.status_code == 200, response.content
        connection.refresh_from_db()
        assert connection.building_id == other.pk


class TestAConnectionIsDisconnectedOnceNoLongerSupplied:
    """Billing bills every contract day whatever the connection's status: a connection
    marked disconnected under an open contract went on being billed as supplied."""

    def test_the_api_refuses_the_status_while_a_contract_is_open(self):
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1))

        response = client_for("billing clerk").patch(
            f"/api/v1/connections/{contract.connection.pk}/", {"status": "disconnected"}
        )

        assert response.status_code == 400, response.content
        assert response.json()["errors"][0]["field"] == "status"
        contract.connection.refresh_from_db()
        assert contract.connection.status == ServiceConnection.Status.ACTIVE

    def test_after_the_last_move_out_it_is_accepted(self):
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1), valid_to=dt.date(2026, 5, 1))

        response = client_for("billing clerk").patch(
            f"/api/v1/connections/{contract.connection.pk}/",
            {"status": "disconnected", "disconnected_on": "2026-05-01"},
        )

        assert response.status_code == 200, response.content


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_move_in_and_a_settlement_chunk_estimating_its_connection_do_not_deadlock():
    """Lock order accounts → connections: a settlement run's chunk locks its accounts
    (``accounts_lock``), then boundary estimation locks their connections.  A move-in
    that took the connection first and then waited for the account deadlocked with it
    (PostgreSQL aborted one side); it now takes the account first and simply waits."""
    import threading

    from django.db import transaction

    from billing.services.invoices import accounts_lock
    from metering.services import boundary_registers_ensure
    from tests.concurrency import finish, in_thread, waits_for_a_lock

    connection = ServiceConnectionFactory()
    account = AccountFactory(network=connection.network)
    holds, go = threading.Event(), threading.Event()

    def chunk():
        with transaction.atomic():
            accounts_lock([account.pk])
            holds.set()
            go.wait(timeout=30)
            boundary_registers_ensure(connection_ids=[connection.pk], dates=[dt.date(2026, 3, 1)])

    chunker, chunked = in_thread(chunk)
    try:
        assert holds.wait(timeout=30)
        mover, moved = in_thread(
            contract_move_in, account=account, connection=connection, move_in_on=dt.date(2026, 3, 1)
        )
        assert waits_for_a_lock(mover, "")
    finally:
        go.set()
    finish(chunker, mover)

    assert chunked.get("error") is None
    assert moved.get("error") is None
    assert Contract.objects.filter(account=account, connection=connection).count() == 1
