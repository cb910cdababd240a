"""The staff admin's search and autocomplete (``heatutility.admin.IndexedSearchMixin``):
identifiers from their start, names and addresses anywhere in them, each row once."""

import pytest
from django.db import connection

from tests.customers.factories import (
    BuildingInterfaceUnitFactory,
    ContractFactory,
    CustomerFactory,
)
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory

pytestmark = pytest.mark.django_db

ACCOUNTS = "/admin/customers/account/"
CONNECTIONS = "/admin/customers/serviceconnection/"
CONTRACTS = "/admin/customers/contract/"
CUSTOMERS = "/admin/customers/customer/"
INSTALLATIONS = "/admin/metering/meterinstallation/"
METERS = "/admin/metering/heatmeter/"


def found(client, url, term):
    response = client.get(url, {"q": term})
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def suggested(client, field, term):
    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "customers", "model_name": "contract", "field_name": field, "term": term},
    )
    assert response.status_code == 200
    return [int(row["id"]) for row in response.json()["results"]]


@pytest.fixture
def supplied():
    """Ingrid Havmand's account 40117 on connection PD-7700, Kajgade 7, meter 67123456."""
    contract = ContractFactory(
        account__number="40117",
        account__customer__name="Ingrid Havmand",
        account__customer__email="ingrid@havmand.dk",
        account__billing_street="Postboks 12",
        connection__number="PD-7700",
        connection__building__street="Kajgade 7",
        connection__building__city="Svendborg",
    )
    unit = BuildingInterfaceUnitFactory(connection=contract.connection, serial="U-5501")
    MeterInstallationFactory(unit=unit, meter__serial="67123456")
    ContractFactory(account__number="50117", connection__number="QD-7700")  # someone else
    return contract


class TestAccountSearch:
    @pytest.mark.parametrize("term", ["40117", "401", "pd-77", "671234", "havmand", "kajga"])
    def test_finds_the_account_by_number_connection_meter_name_and_address(
        self, admin_client, supplied, term
    ):
        assert found(admin_client, ACCOUNTS, term) == [supplied.account]

    @pytest.mark.parametrize("term", ["0117", "7700", "123456"])
    def test_an_identifier_is_found_from_its_start_only(self, admin_client, supplied, term):
        assert found(admin_client, ACCOUNTS, term) == []

    def test_every_term_must_match_some_field(self, admin_client, supplied):
        assert found(admin_client, ACCOUNTS, "Ingrid Kajgade") == [supplied.account]
        assert found(admin_client, ACCOUNTS, "Ingrid Strandvejen") == []
        assert found(admin_client, ACCOUNTS, '"Ingrid Havmand"') == [supplied.account]

    def test_an_account_matching_through_several_contracts_is_listed_once(
        self, admin_client, supplied
    ):
        ContractFactory(
            account=supplied.account,
            connection__building__street="Kajgade 9",
            valid_from=supplied.valid_from,
        )

        assert found(admin_client, ACCOUNTS, "Kajgade") == [supplied.account]
        assert suggested(admin_client, "account", "Kajgade") == [supplied.account.pk]

    def test_a_one_or_two_character_term_is_found_at_the_start_of_a_word(
        self, admin_client, supplied
    ):
        neighbour = ContractFactory(
            connection__building__street="Kajgade 17", account__customer__name="Bo Ask"
        ).account

        assert found(admin_client, ACCOUNTS, "Kajgade 7") == [supplied.account]
        assert found(admin_client, ACCOUNTS, "as") == [neighbour]  # Ask, not Havmand


class TestConnectionSearch:
    @pytest.mark.parametrize(
        "term", ["PD-7700", "pd-7", "40117", "Havmand", "67123456", "Kajgade", "svendborg"]
    )
    def test_finds_the_connection_by_its_own_and_its_accounts_data(
        self, admin_client, supplied, term
    ):
        assert found(admin_client, CONNECTIONS, term) == [supplied.connection]
        assert suggested(admin_client, "connection", term) == [supplied.connection.pk]

    def test_a_connection_with_several_matching_accounts_is_listed_once(
        self, admin_client, supplied
    ):
        supplied.valid_to = supplied.valid_from.replace(year=supplied.valid_from.year + 1)
        supplied.save()
        ContractFactory(
            account__customer__name="Jens Havmand",
            connection=supplied.connection,
            valid_from=supplied.valid_to,
        )

        assert found(admin_client, CONNECTIONS, "Havmand") == [supplied.connection]
        assert suggested(admin_client, "connection", "havmand") == [supplied.connection.pk]


class TestOtherSearches:
    def test_contracts_by_account_number_name_connection_and_street(self, admin_client, supplied):
        for term in ["4011", "Ingrid", "PD-77", "gade 7"]:
            assert found(admin_client, CONTRACTS, term) == [supplied], term

    def test_customers_by_name_email_and_account_number(self, admin_client, supplied):
        CustomerFactory(name="Someone Else")
        for term in ["avman", "@havmand", "40117"]:
            assert found(admin_client, CUSTOMERS, term) == [supplied.account.customer], term

    def test_meter_installations_by_meter_unit_connection_and_street(self, admin_client, supplied):
        installation = supplied.connection.interface_units.get().meter_installations.get()
        MeterInstallationFactory()  # another meter elsewhere
        for term in ["6712", "u-55", "PD-7700", "Kajgade"]:
            assert found(admin_client, INSTALLATIONS, term) == [installation], term

    def test_meters_by_serial_and_model_anywhere(self, admin_client, supplied):
        meter = supplied.connection.interface_units.get().meter_installations.get().meter
        other = HeatMeterFactory(model="Sharky 775")
        assert found(admin_client, METERS, "67123456") == [meter]
        assert found(admin_client, METERS, "arky 775") == [other]


@pytest.mark.postgres
def test_the_search_indexes_exist_after_migrate():
    names = {
        "customer_name_search": "gin_trgm_ops",
        "customer_email_search": "gin_trgm_ops",
        "account_number_search": "text_pattern_ops",
        "account_street_search": "gin_trgm_ops",
        "building_street_search": "gin_trgm_ops",
        "connection_number_search": "text_pattern_ops",
        "biu_serial_search": "text_pattern_ops",
        "meter_serial_search": "text_pattern_ops",
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(%s)", [list(names)]
        )
        found_defs = dict(cursor.fetchall())
    assert set(found_defs) == set(names)
    for name, opclass in names.items():
        assert "upper(" in found_defs[name]
        assert opclass in found_defs[name]


class TestSearchFields:
    def test_every_indexed_admin_names_field_paths(self):
        """A search field the mixin cannot read (a typo, an explicit lookup) would send
        the whole admin back to Django's unindexed search without a word."""
        from django.contrib import admin

        from heatutility.admin import IndexedSearchMixin, _is_field_path

        unread = [
            (model.__name__, field)
            for model, model_admin in admin.site._registry.items()
            if isinstance(model_admin, IndexedSearchMixin)
            for field in model_admin.search_fields
            if not _is_field_path(model, field.lstrip("^="))
        ]
        assert unread == []

    def test_an_explicit_lookup_is_left_to_django(self, supplied):
        from django.contrib import admin

        from customers.models import Account
        from heatutility.admin import IndexedSearchMixin

        class ExactNumberAdmin(IndexedSearchMixin, admin.ModelAdmin):
            search_fields = ["number__exact"]

        model_admin = ExactNumberAdmin(Account, admin.site)
        rows, _ = model_admin.get_search_results(None, Account.objects.all(), "40117")

        assert list(rows) == [supplied.account]
