"""The admin's install, remove and exchange forms take the energy register in the meter's
own register unit, as staff read it off the display, and store its kWh.

The conversions are worked out by hand: 1 MWh = 1,000 kWh; 1 GJ = 1,000/3.6 kWh =
2,500/9 kWh, rounded half up to 6 decimals (as ingestion converts a delivered GJ):
12,345.67 GJ = 30,864,175/9 = 3,429,352.777… kWh → 3,429,352.777778;
1,000.01 GJ = 2,500,025/9 = 277,780.555… kWh → 277,780.555556;
0.01 GJ = 25/9 = 2.777… kWh → 2.777778.
"""

import datetime as dt
from decimal import Decimal

import pytest

from metering.models import EnergyUnit, HeatMeter, MeterInstallation
from tests.customers.factories import BuildingInterfaceUnitFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory

pytestmark = pytest.mark.django_db
INSTALLATIONS = "/admin/metering/meterinstallation/"
INSTALL = f"{INSTALLATIONS}install/"
INSTALLED_AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def remove_url(installation):
    return f"{INSTALLATIONS}{installation.pk}/remove/"


def exchange_url(installation):
    return f"{INSTALLATIONS}{installation.pk}/exchange/"


def mwh_meter(**fields):
    return HeatMeterFactory(
        register_unit=EnergyUnit.MWH,
        resolution=Decimal("0.001"),
        register_max=Decimal("99999.999"),
        **fields,
    )


def gj_meter(**fields):
    return HeatMeterFactory(
        register_unit=EnergyUnit.GJ,
        resolution=Decimal("0.01"),
        register_max=Decimal("999999.99"),
        **fields,
    )


def installed(meter, initial_kwh="0"):
    return MeterInstallationFactory(
        meter=meter, installed_at=INSTALLED_AT, initial_energy_kwh=Decimal(initial_kwh)
    )


def install(client, meter, unit_of_register, energy, **fields):
    return client.post(
        INSTALL,
        {
            "meter": meter.pk,
            "unit": BuildingInterfaceUnitFactory().pk,
            "installed_at": "2026-03-01 10:00",
            "initial_energy_unit": unit_of_register,
            "initial_energy_kwh": energy,
            "initial_volume_m3": "0",
            **fields,
        },
    )


def remove(client, installation, unit_of_register, energy):
    return client.post(
        remove_url(installation),
        {
            "removed_at": "2026-03-01 10:00",
            "final_energy_unit": unit_of_register,
            "final_energy_kwh": energy,
            "final_volume_m3": "10",
        },
    )


def exchange(client, installation, old, new_meter, new, **fields):
    """``old`` and ``new``: (unit, energy register) of the old and the new meter."""
    return client.post(
        exchange_url(installation),
        {
            "exchanged_at": "2026-03-10 10:30",
            "old_final_energy_unit": old[0],
            "old_final_energy_kwh": old[1],
            "old_final_volume_m3": "10",
            "new_meter": new_meter.pk,
            "new_initial_energy_unit": new[0],
            "new_initial_energy_kwh": new[1],
            "new_initial_volume_m3": "0",
            **fields,
        },
    )


def label(response, field):
    return response.context["form"][field].label


class TestInstallTakesTheMetersUnit:
    def test_a_mwh_meters_register_is_typed_in_mwh_and_stored_in_kwh(self, operator):
        meter = mwh_meter()

        response = install(operator, meter, "MWh", "12345.678")

        assert response.status_code == 302
        assert MeterInstallation.objects.get(meter=meter).initial_energy_kwh == Decimal(
            "12345678.000000"
        )

    def test_a_gj_meters_register_is_stored_times_1000_over_3_6_rounded_half_up(self, operator):
        meter = gj_meter()

        response = install(operator, meter, "GJ", "12345.67")

        assert response.status_code == 302
        assert MeterInstallation.objects.get(meter=meter).initial_energy_kwh == Decimal(
            "3429352.777778"
        )

    def test_the_form_opened_for_a_meter_shows_its_unit_and_how_it_is_stored(self, operator):
        meter = gj_meter()

        response = operator.get(INSTALL, {"meter": meter.pk})

        assert label(response, "initial_energy_kwh") == "Initial energy register (GJ)"
        assert response.context["form"]["initial_energy_unit"].value() == "GJ"
        page = response.content.decode()
        assert "Initial energy register (GJ)" in page
        assert "× 1,000/3.6 (1 GJ = 277.777… kWh), rounded half up to 6 decimals" in page

    def test_the_form_opened_without_a_meter_asks_for_the_unit(self, operator):
        response = operator.get(INSTALL)

        assert label(response, "initial_energy_kwh") == (
            "Initial energy register (in the unit chosen above)"
        )
        assert response.context["form"]["initial_energy_unit"].value() in ("", None)
        assert 'name="initial_energy_unit"' in response.content.decode()

    def test_a_kwh_meter_is_labelled_kwh_and_stores_the_register_as_typed(self, operator):
        meter = HeatMeterFactory(resolution=Decimal("0.1"))

        page = operator.get(INSTALL, {"meter": meter.pk})
        response = install(operator, meter, "kWh", "1234.5")

        assert label(page, "initial_energy_kwh") == "Initial energy register (kWh)"
        assert response.status_code == 302
        assert MeterInstallation.objects.get(meter=meter).initial_energy_kwh == Decimal("1234.5")

    def test_a_register_between_the_displays_steps_shows_on_its_field(self, operator):
        """12,345.6785 MWh on a display counting 0.001 MWh: a digit too many."""
        meter = mwh_meter()

        response = install(operator, meter, "MWh", "12345.6785")

        assert response.status_code == 200
        (error,) = response.context["form"].errors["initial_energy_kwh"]
        assert "12345.6785 MWh is not a step" in error
        assert "steps of 0.001 MWh" in error
        assert not MeterInstallation.objects.filter(meter=meter).exists()

    def test_a_unit_other_than_the_meters_is_refused_not_converted(self, operator):
        meter = mwh_meter()

        converted_by_hand = install(operator, meter, "kWh", "12345678")
        not_chosen = install(operator, meter, "", "12345.678")

        for response in (converted_by_hand, not_chosen):
            assert response.status_code == 200
            errors = response.context["form"].errors
            assert list(errors) == ["initial_energy_unit"]
            assert "counts its energy register in MWh" in errors["initial_energy_unit"][0]
            assert "choose MWh" in errors["initial_energy_unit"][0]
        assert "not kWh" in converted_by_hand.context["form"].errors["initial_energy_unit"][0]
        # shown again for the chosen meter, in its unit
        assert label(not_chosen, "initial_energy_kwh") == "Initial energy register (MWh)"
        assert not MeterInstallation.objects.filter(meter=meter).exists()

    def test_a_post_without_the_unit_means_kwh_and_is_refused_for_a_mwh_meter(self, operator):
        """A form opened before the unit field existed took kWh."""
        meter = mwh_meter()

        response = operator.post(
            INSTALL,
            {
                "meter": meter.pk,
                "unit": BuildingInterfaceUnitFactory().pk,
                "installed_at": "2026-03-01 10:00",
                "initial_energy_kwh": "12345678",
                "initial_volume_m3": "0",
            },
        )

        assert response.status_code == 200
        assert list(response.context["form"].errors) == ["initial_energy_unit"]
        assert not MeterInstallation.objects.filter(meter=meter).exists()

    def test_bad_input_is_refused_field_by_field(self, operator):
        meter = mwh_meter()

        response = install(
            operator, meter, "TWh", "12.3456789", initial_volume_m3="-1", installed_at="soon"
        )
        too_large = install(operator, meter, "MWh", "100000000000")

        assert response.status_code == 200
        errors = response.context["form"].errors
        assert sorted(errors) == [
            "initial_energy_kwh",
            "initial_energy_unit",
            "initial_volume_m3",
            "installed_at",
        ]
        assert "TWh is not one of the available choices" in errors["initial_energy_unit"][0]
        assert "6 decimal places" in errors["initial_energy_kwh"][0]
        assert too_large.status_code == 200
        (error,) = too_large.context["form"].errors["initial_energy_kwh"]
        assert error.startswith("100000000000 MWh is 100000000000000 kWh, more than an energy")
        assert not MeterInstallation.objects.filter(meter=meter).exists()


class TestRemoveTakesTheMetersUnit:
    def test_a_mwh_meters_final_register_is_typed_in_mwh_and_stored_in_kwh(self, operator):
        inst = installed(mwh_meter(), initial_kwh="12345678")

        page = operator.get(remove_url(inst))
        response = remove(operator, inst, "MWh", "12400.5")

        assert label(page, "final_energy_kwh") == "Final energy register (MWh)"
        content = page.content.decode()
        assert '<input type="hidden" name="final_energy_unit" value="MWh"' in content
        assert "from 12345678.000000 kWh (12345.678 MWh) and" in content
        assert response.status_code == 302
        inst.refresh_from_db()
        assert inst.final_energy_kwh == Decimal("12400500.000000")

    def test_a_gj_meters_final_register_is_stored_in_kwh_rounded_half_up(self, operator):
        inst = installed(gj_meter())

        response = remove(operator, inst, "GJ", "1000.01")

        assert response.status_code == 302
        inst.refresh_from_db()
        assert inst.final_energy_kwh == Decimal("277780.555556")

    def test_the_services_error_shows_what_the_register_typed_was_in_kwh(self, operator):
        inst = installed(mwh_meter(), initial_kwh="12345678")

        response = remove(operator, inst, "MWh", "12345.677")

        assert response.status_code == 200
        (error,) = response.context["form"].errors["final_energy_kwh"]
        assert "is below the initial 12345678.000000 kWh" in error
        assert error.endswith("(entered as 12345.677 MWh = 12345677.000000 kWh)")
        inst.refresh_from_db()
        assert inst.removed_at is None

    def test_a_form_opened_before_the_meters_unit_changed_is_refused(self, operator):
        inst = installed(HeatMeterFactory())
        page = operator.get(remove_url(inst))
        assert label(page, "final_energy_kwh") == "Final energy register (kWh)"
        HeatMeter.objects.filter(pk=inst.meter_id).update(register_unit=EnergyUnit.MWH)

        response = remove(operator, inst, "kWh", "12400500")

        assert response.status_code == 200
        (error,) = response.context["form"].errors["final_energy_kwh"]
        assert error.startswith(f"Meter {inst.meter} counts its energy register in MWh, but ")
        assert "this form was opened for registers in kWh: enter the register in MWh" in error
        content = response.content.decode()
        assert '<input type="hidden" name="final_energy_unit" value="MWh"' in content
        assert "Final energy register (MWh)" in content
        inst.refresh_from_db()
        assert (inst.removed_at, inst.final_energy_kwh) == (None, None)

    def test_a_post_without_the_unit_is_refused_for_a_mwh_meter(self, operator):
        inst = installed(mwh_meter())

        response = operator.post(
            remove_url(inst),
            {"removed_at": "2026-03-01 10:00", "final_energy_kwh": "12400", "final_volume_m3": "1"},
        )

        assert response.status_code == 200
        (error,) = response.context["form"].errors["final_energy_kwh"]
        assert "in MWh, but this form was opened for registers in kWh" in error
        inst.refresh_from_db()
        assert inst.removed_at is None


class TestExchangeTakesEachMetersUnit:
    def test_a_mwh_meter_exchanged_for_a_kwh_meter_converts_each_with_its_own_unit(self, operator):
        inst = installed(mwh_meter())
        new = HeatMeterFactory()

        page = operator.get(exchange_url(inst))
        response = exchange(operator, inst, ("MWh", "4.337"), new, ("kWh", "12"))

        assert label(page, "old_final_energy_kwh") == "Final energy register (MWh)"
        assert label(page, "new_initial_energy_kwh") == (
            "Initial energy register (in the unit chosen above)"
        )
        assert response.status_code == 302
        inst.refresh_from_db()
        opened = MeterInstallation.objects.get(meter=new)
        assert (inst.final_energy_kwh, opened.initial_energy_kwh) == (
            Decimal("4337.000000"),
            Decimal("12.000000"),
        )

    def test_a_kwh_meter_exchanged_for_a_gj_meter_converts_the_new_register(self, operator):
        inst = installed(HeatMeterFactory())
        new = gj_meter()

        response = exchange(operator, inst, ("kWh", "4337"), new, ("GJ", "0.01"))

        assert response.status_code == 302
        inst.refresh_from_db()
        assert inst.final_energy_kwh == Decimal("4337.000000")
        assert MeterInstallation.objects.get(meter=new).initial_energy_kwh == Decimal("2.777778")

    def test_the_new_meters_register_in_the_old_meters_unit_is_refused(self, operator):
        inst = installed(HeatMeterFactory())
        new = mwh_meter()

        response = exchange(operator, inst, ("kWh", "4337"), new, ("kWh", "12000"))

        assert response.status_code == 200
        form = response.context["form"]
        assert list(form.errors) == ["new_initial_energy_unit"]
        assert (
            "counts its energy register in MWh, not kWh"
            in form.errors["new_initial_energy_unit"][0]
        )
        assert label(response, "new_initial_energy_kwh") == "Initial energy register (MWh)"
        inst.refresh_from_db()
        assert inst.removed_at is None
        assert not MeterInstallation.objects.filter(meter=new).exists()

    def test_the_old_meters_register_in_another_unit_is_refused(self, operator):
        inst = installed(mwh_meter())
        new = HeatMeterFactory()

        response = exchange(operator, inst, ("kWh", "4337"), new, ("kWh", "0"))

        assert response.status_code == 200
        assert list(response.context["form"].errors) == ["old_final_energy_kwh"]
        inst.refresh_from_db()
        assert inst.removed_at is None


class TestTheHistoryShowsKwhAndTheMetersUnit:
    @pytest.fixture
    def removed(self):
        """A MWh meter installed at 12,345.678 MWh and removed at 12,400.5 MWh."""
        return MeterInstallationFactory(
            meter=mwh_meter(),
            installed_at=INSTALLED_AT,
            initial_energy_kwh=Decimal("12345678"),
            removed_at=INSTALLED_AT + dt.timedelta(days=30),
            final_energy_kwh=Decimal("12400500"),
            final_volume_m3=Decimal("10"),
        )

    @pytest.mark.parametrize(
        "page",
        [
            "/admin/metering/heatmeter/{inst.meter_id}/change/",
            "/admin/customers/buildinginterfaceunit/{inst.unit_id}/change/",
            INSTALLATIONS + "{inst.pk}/change/",
        ],
    )
    def test_each_page_shows_the_registers_in_kwh_and_in_mwh(self, admin_client, removed, page):
        content = admin_client.get(page.format(inst=removed)).content.decode()

        assert "12345678.000000 kWh (12345.678 MWh)" in content
        assert "12400500.000000 kWh (12400.5 MWh)" in content

    def test_each_recorded_version_shows_its_registers_in_kwh_and_in_mwh(
        self, admin_client, removed
    ):
        version = removed.history.latest().history_id

        page = admin_client.get(f"{INSTALLATIONS}{removed.pk}/history/{version}/")

        assert page.status_code == 200
        assert "12400500.000000 kWh (12400.5 MWh)" in page.content.decode()

    def test_a_gj_meters_register_is_shown_in_gj_as_typed(self, admin_client):
        inst = installed(gj_meter(), initial_kwh="3429352.777778")

        content = admin_client.get(f"{INSTALLATIONS}{inst.pk}/change/").content.decode()

        assert "3429352.777778 kWh (12345.67 GJ)" in content

    def test_a_kwh_meters_register_is_shown_in_kwh(self, admin_client):
        inst = installed(HeatMeterFactory(), initial_kwh="1060")

        content = admin_client.get(
            f"/admin/metering/heatmeter/{inst.meter_id}/change/"
        ).content.decode()

        assert "1060.000000 kWh" in content
        assert "1060.000000 kWh (" not in content
