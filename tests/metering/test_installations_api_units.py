"""The API takes an installation's energy registers in the meter's register unit, as the
admin's forms do, where the request says which (``register_unit``; in an exchange
``old_register_unit`` and ``new_register_unit``, one per meter): it must be the meter's,
and the register is stored in kWh.  Without it the registers are kWh, as before."""

import datetime as dt
from decimal import Decimal

import pytest

from heatutility.roles import METERING_OPERATOR
from metering.models import MeterInstallation
from tests.billing.helpers import api_client, client_for, staff_with_permissions
from tests.customers.factories import BuildingInterfaceUnitFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory

pytestmark = pytest.mark.django_db
INSTALL = "/api/v1/meter-installations/install/"
EXCHANGE = "/api/v1/meter-installations/exchange/"
INSTALLED = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def remove_url(installation) -> str:
    return f"/api/v1/meter-installations/{installation.pk}/remove/"


def refusals(response) -> list[tuple[str, str]]:
    return [(e["code"], e["field"]) for e in response.json()["errors"]]


class TestInstall:
    def body(self, meter, **fields):
        return {
            "meter": meter.pk,
            "unit": BuildingInterfaceUnitFactory().pk,
            "installed_at": "2026-03-01T10:00:00+01:00",
            **fields,
        }

    def test_an_mwh_register_is_stored_times_1000_in_kwh(self):
        meter = HeatMeterFactory(
            register_unit="MWh", resolution=Decimal("0.000001"), register_max=Decimal("99999.999")
        )

        response = client_for(METERING_OPERATOR).post(
            INSTALL,
            self.body(meter, register_unit="MWh", initial_energy_kwh="12.345678"),
            format="json",
        )

        assert response.status_code == 201, response.content
        assert response.json()["initial_energy_kwh"] == "12345.678000"
        assert MeterInstallation.objects.get().initial_energy_kwh == Decimal("12345.678")

    def test_a_gj_register_is_rounded_half_up_to_6_decimals(self):
        meter = HeatMeterFactory(register_unit="GJ")

        response = client_for(METERING_OPERATOR).post(
            INSTALL, self.body(meter, register_unit="GJ", initial_energy_kwh="1"), format="json"
        )

        assert response.status_code == 201, response.content
        assert MeterInstallation.objects.get().initial_energy_kwh == Decimal("277.777778")

    def test_another_unit_than_the_meters_is_refused_and_nothing_is_stored(self):
        meter = HeatMeterFactory(register_unit="MWh")

        response = client_for(METERING_OPERATOR).post(
            INSTALL,
            self.body(meter, register_unit="kWh", initial_energy_kwh="12345"),
            format="json",
        )

        assert response.status_code == 422, response.content
        assert refusals(response) == [("unit_mismatch", "register_unit")]
        assert "counts its energy register in MWh, not kWh" in response.json()["message"]
        assert not MeterInstallation.objects.exists()

    def test_without_a_unit_the_register_is_kwh_as_before(self):
        meter = HeatMeterFactory(register_unit="MWh")

        response = client_for(METERING_OPERATOR).post(
            INSTALL, self.body(meter, initial_energy_kwh="12345"), format="json"
        )

        assert response.status_code == 201, response.content
        assert MeterInstallation.objects.get().initial_energy_kwh == Decimal("12345")

    def test_a_unit_that_is_none_of_the_register_units_is_a_400(self):
        meter = HeatMeterFactory(register_unit="kWh")

        response = client_for(METERING_OPERATOR).post(
            INSTALL, self.body(meter, register_unit="kwh"), format="json"
        )

        assert response.status_code == 400, response.content
        assert refusals(response) == [("invalid_choice", "register_unit")]
        assert not MeterInstallation.objects.exists()

    def test_the_register_max_is_checked_in_the_meters_unit(self):
        meter = HeatMeterFactory(register_unit="MWh", register_max=Decimal("999.999"))

        response = client_for(METERING_OPERATOR).post(
            INSTALL, self.body(meter, register_unit="MWh", initial_energy_kwh="1000"), format="json"
        )

        assert response.status_code == 422, response.content
        assert refusals(response) == [("above_register_max", "initial_energy_kwh")]
        assert "1000 MWh is above the register maximum" in response.json()["message"]


class TestRemove:
    def test_the_change_permission_is_enough(self):
        """A removal changes the installation: no add permission is asked for as well."""
        client = api_client(staff_with_permissions("fitter", "change_meterinstallation"))
        installation = MeterInstallationFactory(installed_at=INSTALLED)

        response = client.post(
            remove_url(installation),
            {
                "removed_at": "2026-03-01T10:00:00+01:00",
                "final_energy_kwh": "2000",
                "final_volume_m3": "10",
            },
            format="json",
        )

        assert response.status_code == 200, response.content
        installation.refresh_from_db()
        assert installation.final_energy_kwh == Decimal("2000")

    def test_a_gj_register_is_stored_in_kwh(self):
        installation = MeterInstallationFactory(installed_at=INSTALLED, meter__register_unit="GJ")

        response = client_for(METERING_OPERATOR).post(
            remove_url(installation),
            {
                "removed_at": "2026-03-01T10:00:00+01:00",
                "register_unit": "GJ",
                "final_energy_kwh": "2",
                "final_volume_m3": "10",
            },
            format="json",
        )

        assert response.status_code == 200, response.content
        installation.refresh_from_db()
        assert installation.final_energy_kwh == Decimal("555.555556")

    def test_another_unit_than_the_meters_is_refused_and_the_meter_stays(self):
        installation = MeterInstallationFactory(installed_at=INSTALLED, meter__register_unit="GJ")

        response = client_for(METERING_OPERATOR).post(
            remove_url(installation),
            {
                "removed_at": "2026-03-01T10:00:00+01:00",
                "register_unit": "MWh",
                "final_energy_kwh": "2",
                "final_volume_m3": "10",
            },
            format="json",
        )

        assert response.status_code == 422, response.content
        assert refusals(response) == [("unit_mismatch", "register_unit")]
        installation.refresh_from_db()
        assert (installation.removed_at, installation.final_energy_kwh) == (None, None)


class TestExchange:
    """The old meter counts in MWh, the new one in GJ: each register in its own unit."""

    @pytest.fixture
    def old(self):
        return MeterInstallationFactory(installed_at=INSTALLED, meter__register_unit="MWh")

    @pytest.fixture
    def new_meter(self):
        return HeatMeterFactory(register_unit="GJ")

    def body(self, old, new_meter, **fields):
        return {
            "unit": old.unit_id,
            "old_installation": old.pk,
            "new_meter": new_meter.pk,
            "exchanged_at": "2026-03-01T10:00:00+01:00",
            "old_final_energy_kwh": "4.3",
            "old_final_volume_m3": "43",
            "new_initial_energy_kwh": "1",
            **fields,
        }

    def test_each_register_is_converted_from_its_meters_unit(self, old, new_meter):
        response = client_for(METERING_OPERATOR).post(
            EXCHANGE,
            self.body(old, new_meter, old_register_unit="MWh", new_register_unit="GJ"),
            format="json",
        )

        assert response.status_code == 201, response.content
        removed, installed = response.json()
        assert (removed["final_energy_kwh"], installed["initial_energy_kwh"]) == (
            "4300.000000",
            "277.777778",
        )
        old.refresh_from_db()
        assert old.final_energy_kwh == Decimal("4300")
        assert MeterInstallation.objects.get(meter=new_meter).initial_energy_kwh == Decimal(
            "277.777778"
        )

    def test_a_register_without_its_unit_is_kwh(self, old, new_meter):
        response = client_for(METERING_OPERATOR).post(
            EXCHANGE,
            self.body(old, new_meter, old_register_unit="MWh", new_initial_energy_kwh="250"),
            format="json",
        )

        assert response.status_code == 201, response.content
        removed, installed = response.json()
        assert (removed["final_energy_kwh"], installed["initial_energy_kwh"]) == (
            "4300.000000",
            "250.000000",
        )

    @pytest.mark.parametrize(
        ("units", "field"),
        [
            ({"old_register_unit": "GJ", "new_register_unit": "GJ"}, "old_register_unit"),
            ({"old_register_unit": "MWh", "new_register_unit": "MWh"}, "new_register_unit"),
        ],
    )
    def test_a_unit_not_its_meters_is_refused_on_its_field_and_nothing_changes(
        self, old, new_meter, units, field
    ):
        response = client_for(METERING_OPERATOR).post(
            EXCHANGE, self.body(old, new_meter, **units), format="json"
        )

        assert response.status_code == 422, response.content
        assert refusals(response) == [("unit_mismatch", field)]
        old.refresh_from_db()
        assert (old.removed_at, old.final_energy_kwh) == (None, None)
        assert not MeterInstallation.objects.filter(meter=new_meter).exists()


def test_the_unit_fields_are_optional_and_documented(admin_client):
    schema = admin_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    schemas = schema["components"]["schemas"]

    for request, fields in (
        ("InstallRequest", ["register_unit"]),
        ("RemoveRequest", ["register_unit"]),
        ("ExchangeRequest", ["old_register_unit", "new_register_unit"]),
    ):
        for field in fields:
            prop = schemas[request]["properties"][field]
            assert field not in schemas[request]["required"]
            assert prop["allOf"] == [{"$ref": "#/components/schemas/EnergyUnitEnum"}]
            assert "422 `unit_mismatch`" in prop["description"]
    assert schemas["EnergyUnitEnum"]["enum"] == ["Wh", "kWh", "MWh", "GJ"]
