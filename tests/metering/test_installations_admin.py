"""Meter installations in the staff admin: the history is read-only; installing,
removing and exchanging a meter go through ``metering.installations``, so the rules
hold and the readings and boundary registers are revalidated, as through the API.

Times are typed as local time in the admin's zone (Europe/Copenhagen), or with an
offset.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import TestCase

from heatutility.roles import AUDITOR, BILLING_CLERK
from heatutility.timeutil import local_midnight
from metering.models import BoundaryRegister, MeterInstallation, Reading, ReadingIssue
from metering.services import vee_run_meter
from tests.customers.factories import BuildingInterfaceUnitFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.django_db
CPH = "Europe/Copenhagen"
D = dt.date
INSTALLATIONS = "/admin/metering/meterinstallation/"


def at(day, hour=0):
    return local_midnight(day, CPH) + dt.timedelta(hours=hour)


def install_url():
    return f"{INSTALLATIONS}install/"


def remove_url(installation):
    return f"{INSTALLATIONS}{installation.pk}/remove/"


def exchange_url(installation):
    return f"{INSTALLATIONS}{installation.pk}/exchange/"


def statuses(meter):
    return list(
        Reading.objects.filter(meter=meter).order_by("read_at").values_list("status", flat=True)
    )


def boundary(connection, day):
    b = BoundaryRegister.objects.get(connection=connection, on=day)
    return b.energy_kwh, b.status, b.method


def reads_before_the_paperwork(meter):
    """The meter delivers 24 kWh a day from 15 October before its installation is
    recorded: VEE rejects every read as outside an installation."""
    add_readings(
        meter,
        [(at(D(2026, 10, 15)) + dt.timedelta(days=d), str(24 * d), str(d)) for d in range(1, 20)],
    )
    vee_run_meter(
        meter_id=meter.pk, start=at(D(2026, 10, 15)), end=at(D(2026, 11, 5)), now=at(D(2026, 11, 5))
    )
    assert set(statuses(meter)) == {"rejected"}


def installed_with_reads():
    """A meter installed since January, read daily from 1 October (1,000 kWh + 24 a day)."""
    inst = MeterInstallationFactory(installed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    add_readings(
        inst.meter,
        [(at(D(2026, 10, 1)) + dt.timedelta(days=d), str(1000 + 24 * d), str(d)) for d in range(5)],
    )
    vee_run_meter(
        meter_id=inst.meter_id,
        start=at(D(2026, 10, 1)),
        end=at(D(2026, 10, 6)),
        now=at(D(2026, 10, 6)),
    )
    return inst


def exchange_before_the_paperwork():
    """The old meter read 4,336 kWh on 15 October; the new one delivers from then on."""
    inst = MeterInstallationFactory(installed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    add_readings(
        inst.meter, [(at(D(2026, 10, 1)), "4000", "40"), (at(D(2026, 10, 15)), "4336", "43.36")]
    )
    new = HeatMeterFactory()
    reads_before_the_paperwork(new)
    return inst, new


def history_count(installation) -> int:
    return MeterInstallation.history.filter(id=installation.pk).count()


class TestInstallInTheAdmin:
    def test_installing_records_the_installation_and_revalidates_the_meters_reads(self, operator):
        unit, meter = BuildingInterfaceUnitFactory(), HeatMeterFactory()
        reads_before_the_paperwork(meter)

        with TestCase.captureOnCommitCallbacks(execute=True):
            response = operator.post(
                install_url(),
                {
                    "meter": meter.pk,
                    "unit": unit.pk,
                    "installed_at": "2026-10-15 01:00",  # local (CEST): 23:00 UTC the day before
                    "initial_energy_kwh": "0",
                    "initial_volume_m3": "0",
                    "initial_flow_temp_m3c": "12.5",
                    "reason": "new connection",
                },
            )

        assert response.status_code == 302
        assert response["Location"] == f"/admin/metering/heatmeter/{meter.pk}/change/"
        installation = MeterInstallation.objects.get(meter=meter)
        assert (installation.unit, installation.installed_at, installation.removed_at) == (
            unit,
            dt.datetime(2026, 10, 14, 23, tzinfo=dt.UTC),
            None,
        )
        assert (installation.initial_flow_temp_m3c, installation.initial_return_temp_m3c) == (
            Decimal("12.5"),
            None,
        )
        assert installation.history.get().history_user == operator.user
        # the service's revalidation: the reads count now, and billing's register moved
        assert set(statuses(meter)) == {"valid"}
        assert not ReadingIssue.objects.filter(meter=meter, code="outside_installation").exists()
        # 408 kWh at 31 Oct 23:00 local, then 24 a day: 409 at midnight
        assert boundary(unit.connection, D(2026, 11, 1)) == (
            Decimal("409.000000"),
            "estimated",
            "interpolation",
        )

    def test_a_unit_that_has_a_meter_is_refused_on_the_form_and_nothing_changes(self, operator):
        current = MeterInstallationFactory()
        meter = HeatMeterFactory()

        response = operator.post(
            install_url(),
            {
                "meter": meter.pk,
                "unit": current.unit.pk,
                "installed_at": "2026-03-01 10:00",
                "initial_energy_kwh": "0",
                "initial_volume_m3": "0",
            },
        )

        assert response.status_code == 200
        assert response.context["form"].non_field_errors() == [
            "This interface unit has another meter installed in that period."
        ]
        assert "another meter installed" in response.content.decode()
        assert not MeterInstallation.objects.filter(meter=meter).exists()

    def test_a_local_time_that_dst_repeats_needs_an_offset(self, operator):
        meter, unit = HeatMeterFactory(), BuildingInterfaceUnitFactory()
        body = {
            "meter": meter.pk,
            "unit": unit.pk,
            "initial_energy_kwh": "0",
            "initial_volume_m3": "0",
        }

        ambiguous = operator.post(install_url(), {**body, "installed_at": "2026-10-25 02:30"})
        assert ambiguous.status_code == 200
        assert "installed_at" in ambiguous.context["form"].errors
        assert not MeterInstallation.objects.exists()

        with_offset = operator.post(
            install_url(), {**body, "installed_at": "2026-10-25T02:30:00+01:00"}
        )
        assert with_offset.status_code == 302
        assert MeterInstallation.objects.get().installed_at == dt.datetime(
            2026, 10, 25, 1, 30, tzinfo=dt.UTC
        )

    def test_the_form_starts_from_the_unit_and_finds_meters_by_serial(self, operator):
        unit = BuildingInterfaceUnitFactory()
        meter = HeatMeterFactory(serial="71234567")

        response = operator.get(install_url(), {"unit": unit.pk})
        found = operator.get(
            "/admin/autocomplete/",
            {
                "app_label": "metering",
                "model_name": "meterinstallation",
                "field_name": "meter",
                "term": "7123",
            },
        )

        assert response.status_code == 200
        assert response.context["form"]["unit"].value() == str(unit.pk)
        assert 'data-field-name="meter"' in response.content.decode()
        assert [r["id"] for r in found.json()["results"]] == [str(meter.pk)]


class TestRemoveInTheAdmin:
    def test_removing_closes_the_installation_and_rejects_the_reads_after_it(self, operator):
        inst = installed_with_reads()

        with TestCase.captureOnCommitCallbacks(execute=True):
            response = operator.post(
                remove_url(inst),
                {
                    "removed_at": "2026-10-03 12:00",
                    "final_energy_kwh": "1060",
                    "final_volume_m3": "2.5",
                    "final_flow_temp_m3c": "",
                    "final_return_temp_m3c": "",
                    "reason": "defect",
                },
            )

        assert response.status_code == 302
        inst.refresh_from_db()
        assert (inst.removed_at, inst.final_energy_kwh, inst.final_volume_m3) == (
            at(D(2026, 10, 3), 12),
            Decimal("1060"),
            Decimal("2.5"),
        )
        assert inst.history.latest().history_user == operator.user
        # the service's revalidation: the reads after the removal no longer count
        assert statuses(inst.meter) == ["valid", "valid", "valid", "rejected", "rejected"]

    def test_a_final_register_below_the_last_read_is_shown_on_its_field_and_nothing_changes(
        self, operator
    ):
        inst = installed_with_reads()
        before = history_count(inst)

        response = operator.post(
            remove_url(inst),
            {
                "removed_at": "2026-10-03 12:00",
                "final_energy_kwh": "1000",
                "final_volume_m3": "2.5",
            },
        )

        assert response.status_code == 200
        errors = response.context["form"].errors
        assert list(errors) == ["final_energy_kwh"]
        assert "below the last reading 1048" in errors["final_energy_kwh"][0]
        inst.refresh_from_db()
        assert inst.removed_at is None
        assert history_count(inst) == before
        assert statuses(inst.meter) == ["valid"] * 5

    def test_a_removed_meter_cannot_be_removed_again(self, operator):
        inst = MeterInstallationFactory(
            removed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            final_energy_kwh=Decimal("5"),
            final_volume_m3=Decimal("1"),
        )

        response = operator.post(
            remove_url(inst),
            {"removed_at": "2026-03-01 10:00", "final_energy_kwh": "9", "final_volume_m3": "2"},
        )

        assert response.status_code == 302
        assert response["Location"] == f"{INSTALLATIONS}{inst.pk}/change/"
        inst.refresh_from_db()
        assert (inst.removed_at, inst.final_energy_kwh) == (
            dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            Decimal("5"),
        )


class TestExchangeInTheAdminForm:
    def test_exchanging_closes_the_old_opens_the_new_and_revalidates(self, operator):
        inst, new = exchange_before_the_paperwork()

        with TestCase.captureOnCommitCallbacks(execute=True):
            response = operator.post(
                exchange_url(inst),
                {
                    "exchanged_at": "2026-10-15 01:00",
                    "old_final_energy_kwh": "4337",
                    "old_final_volume_m3": "43.37",
                    "new_meter": new.pk,
                    "new_initial_energy_kwh": "0",
                    "new_initial_volume_m3": "0",
                },
            )

        assert response.status_code == 302
        assert response["Location"] == f"/admin/metering/heatmeter/{new.pk}/change/"
        inst.refresh_from_db()
        opened = MeterInstallation.objects.get(meter=new)
        assert inst.removed_at == opened.installed_at == at(D(2026, 10, 15), 1)
        assert (inst.final_energy_kwh, opened.unit, opened.reason) == (
            Decimal("4337"),
            inst.unit,
            "exchange",
        )
        assert set(statuses(new)) == {"valid"}
        # 4,337 on the old meter, then the new one's 408 at 31 Oct 23:00 local + 1 h of 24
        assert boundary(inst.unit.connection, D(2026, 11, 1)) == (
            Decimal("4746.000000"),
            "estimated",
            "interpolation",
        )

    def test_the_old_meters_errors_show_on_the_old_meters_fields(self, operator):
        inst = MeterInstallationFactory(initial_energy_kwh=Decimal("500"))
        new = HeatMeterFactory()

        response = operator.post(
            exchange_url(inst),
            {
                "exchanged_at": "2026-03-10 10:30",
                "old_final_energy_kwh": "499",
                "old_final_volume_m3": "10",
                "new_meter": new.pk,
                "new_initial_energy_kwh": "0",
                "new_initial_volume_m3": "0",
            },
        )

        assert response.status_code == 200
        errors = response.context["form"].errors
        assert list(errors) == ["old_final_energy_kwh"]
        assert "below the initial 500" in errors["old_final_energy_kwh"][0]
        inst.refresh_from_db()
        assert inst.removed_at is None
        assert not MeterInstallation.objects.filter(meter=new).exists()

    def test_a_new_meter_installed_elsewhere_leaves_the_old_one_in_place(self, operator):
        """The removal succeeds, the installation is refused: nothing is half-applied."""
        inst = MeterInstallationFactory()
        elsewhere = MeterInstallationFactory()
        before = history_count(inst)

        response = operator.post(
            exchange_url(inst),
            {
                "exchanged_at": "2026-03-10 10:30",
                "old_final_energy_kwh": "10",
                "old_final_volume_m3": "1",
                "new_meter": elsewhere.meter.pk,
                "new_initial_energy_kwh": "0",
                "new_initial_volume_m3": "0",
            },
        )

        assert response.status_code == 200
        assert response.context["form"].non_field_errors() == [
            "This meter is installed elsewhere in that period."
        ]
        inst.refresh_from_db()
        assert (inst.removed_at, inst.final_energy_kwh) == (None, None)
        assert history_count(inst) == before
        assert MeterInstallation.objects.filter(unit=inst.unit).count() == 1

    def test_an_exchange_before_the_meter_was_installed_is_refused(self, operator):
        inst = MeterInstallationFactory(installed_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))

        response = operator.post(
            exchange_url(inst),
            {
                "exchanged_at": "2026-02-01 00:00",
                "old_final_energy_kwh": "10",
                "old_final_volume_m3": "1",
                "new_meter": HeatMeterFactory().pk,
                "new_initial_energy_kwh": "0",
                "new_initial_volume_m3": "0",
            },
        )

        assert response.status_code == 200
        (error,) = response.context["form"].non_field_errors()
        assert "has no meter installed before 2026-02-01T00:00:00+01:00" in error
        assert MeterInstallation.objects.filter(unit=inst.unit).count() == 1


class TestInstallationHistoryIsReadOnly:
    def test_no_installation_is_added_in_the_admin(self, admin_client):
        assert admin_client.get(f"{INSTALLATIONS}add/").status_code == 403
        response = admin_client.post(
            f"{INSTALLATIONS}add/",
            {
                "meter": HeatMeterFactory().pk,
                "unit": BuildingInterfaceUnitFactory().pk,
                "installed_at_0": "2026-03-01",
                "installed_at_1": "10:00",
                "initial_energy_kwh": "0",
                "initial_volume_m3": "0",
            },
        )

        assert response.status_code == 403
        assert not MeterInstallation.objects.exists()

    def test_an_installation_is_shown_with_its_history_but_not_changed(self, admin_client):
        inst = installed_with_reads()
        with TestCase.captureOnCommitCallbacks(execute=True):
            admin_client.post(
                remove_url(inst),
                {
                    "removed_at": "2026-10-03 12:00",
                    "final_energy_kwh": "1060",
                    "final_volume_m3": "2.5",
                    "reason": "defect",
                },
            )

        page = admin_client.get(f"{INSTALLATIONS}{inst.pk}/change/")
        history = admin_client.get(f"{INSTALLATIONS}{inst.pk}/history/")
        response = admin_client.post(
            f"{INSTALLATIONS}{inst.pk}/change/",
            {
                "meter": inst.meter_id,
                "unit": inst.unit_id,
                "installed_at_0": "2026-01-01",
                "installed_at_1": "00:00",
                "removed_at_0": "",
                "removed_at_1": "",
                "initial_energy_kwh": "0",
                "initial_volume_m3": "0",
            },
        )

        assert page.status_code == 200
        assert 'name="removed_at' not in page.content.decode()
        assert history.status_code == 200
        assert "defect" in history.content.decode()
        assert response.status_code == 403
        inst.refresh_from_db()
        assert inst.removed_at == at(D(2026, 10, 3), 12)

    def test_no_installation_is_deleted_in_the_admin(self, admin_client):
        inst = MeterInstallationFactory()

        page = admin_client.post(f"{INSTALLATIONS}{inst.pk}/delete/", {"post": "yes"})
        action = admin_client.post(
            INSTALLATIONS,
            {"action": "delete_selected", "_selected_action": [inst.pk], "post": "yes"},
        )

        assert page.status_code == 403
        assert action.status_code in (200, 302)
        assert MeterInstallation.objects.filter(pk=inst.pk).exists()

    def test_the_meters_page_neither_changes_adds_nor_deletes_installations(self, admin_client):
        inst = MeterInstallationFactory(initial_energy_kwh=Decimal("5"))
        meter, unit = inst.meter, inst.unit
        row = {
            "id": inst.pk,
            "meter": meter.pk,
            "unit": unit.pk,
            "installed_at_0": "2026-01-01",
            "installed_at_1": "00:00",
            "initial_energy_kwh": "0",  # was 5
            "initial_volume_m3": "0",
            "reason": "edited in the admin",
        }
        added = {
            "meter": meter.pk,
            "unit": BuildingInterfaceUnitFactory().pk,
            "installed_at_0": "2019-01-01",
            "installed_at_1": "00:00",
            "removed_at_0": "2019-06-01",
            "removed_at_1": "00:00",
            "initial_energy_kwh": "0",
            "initial_volume_m3": "0",
            "final_energy_kwh": "1",
            "final_volume_m3": "1",
        }
        body = {
            "maker": meter.maker,
            "model": meter.model,
            "serial": meter.serial,
            "register_unit": meter.register_unit,
            "resolution": meter.resolution,
            "register_max": meter.register_max,
            "volume_resolution": meter.volume_resolution,
            "volume_register_max": meter.volume_register_max,
            "accuracy_class": meter.accuracy_class,
            "flow_sensor_position": meter.flow_sensor_position,
            "verification_due_on": "2030-01-01",
            "installations-TOTAL_FORMS": 2,
            "installations-INITIAL_FORMS": 1,
            "installations-MIN_NUM_FORMS": 0,
            "installations-MAX_NUM_FORMS": 1000,
            **{f"installations-0-{k}": v for k, v in row.items()},
            **{f"installations-1-{k}": v for k, v in added.items()},
        }

        edit = admin_client.post(f"/admin/metering/heatmeter/{meter.pk}/change/", body)
        delete = admin_client.post(
            f"/admin/metering/heatmeter/{meter.pk}/change/",
            {**body, "installations-TOTAL_FORMS": 1, "installations-0-DELETE": "on"},
        )

        assert (edit.status_code, delete.status_code) == (302, 302)  # the meter itself saves
        assert list(
            MeterInstallation.objects.values_list("pk", "initial_energy_kwh", "reason")
        ) == [(inst.pk, Decimal("5"), "")]

    def test_the_units_page_neither_changes_adds_nor_deletes_installations(self, admin_client):
        inst = MeterInstallationFactory(initial_energy_kwh=Decimal("5"))
        unit = inst.unit
        row = {
            "id": inst.pk,
            "meter": inst.meter_id,
            "unit": unit.pk,
            "installed_at_0": "2026-01-01",
            "installed_at_1": "00:00",
            "initial_energy_kwh": "0",  # was 5
            "initial_volume_m3": "0",
            "reason": "edited in the admin",
        }
        body = {
            "connection": unit.connection_id,
            "maker": unit.maker,
            "model": unit.model,
            "serial": unit.serial,
            "kind": unit.kind,
            "domestic_hot_water": "on",
            "installed_on": "2020-01-01",
            "design_supply_temp_c": "70.0",
            "design_return_temp_c": "35.0",
            "meter_installations-TOTAL_FORMS": 2,
            "meter_installations-INITIAL_FORMS": 1,
            "meter_installations-MIN_NUM_FORMS": 0,
            "meter_installations-MAX_NUM_FORMS": 1000,
            **{f"meter_installations-0-{k}": v for k, v in row.items()},
            "meter_installations-1-meter": HeatMeterFactory().pk,
            "meter_installations-1-unit": unit.pk,
            "meter_installations-1-installed_at_0": "2019-01-01",
            "meter_installations-1-installed_at_1": "00:00",
            "meter_installations-1-removed_at_0": "2019-06-01",
            "meter_installations-1-removed_at_1": "00:00",
            "meter_installations-1-initial_energy_kwh": "0",
            "meter_installations-1-initial_volume_m3": "0",
            "meter_installations-1-final_energy_kwh": "1",
            "meter_installations-1-final_volume_m3": "1",
        }
        url = f"/admin/customers/buildinginterfaceunit/{unit.pk}/change/"

        edit = admin_client.post(url, body)
        delete = admin_client.post(
            url,
            {**body, "meter_installations-TOTAL_FORMS": 1, "meter_installations-0-DELETE": "on"},
        )

        assert (edit.status_code, delete.status_code) == (302, 302)  # the unit itself saves
        assert list(
            MeterInstallation.objects.values_list("pk", "initial_energy_kwh", "reason")
        ) == [(inst.pk, Decimal("5"), "")]


class TestWhereStaffFindTheFlows:
    def test_a_meters_page_offers_removal_and_exchange_of_an_installed_meter(self, operator):
        inst = MeterInstallationFactory()

        page = operator.get(f"/admin/metering/heatmeter/{inst.meter_id}/change/").content.decode()

        assert f'href="{remove_url(inst)}">Remove from its unit<' in page
        assert f'href="{INSTALLATIONS}{inst.pk}/change/" class="inlineviewlink">View<' in page
        assert f'href="{exchange_url(inst)}">Exchange<' in page
        assert f"{install_url()}?" not in page

    def test_a_meters_page_offers_to_install_a_meter_in_store(self, operator):
        meter = HeatMeterFactory()

        page = operator.get(f"/admin/metering/heatmeter/{meter.pk}/change/").content.decode()

        assert f'href="{install_url()}?meter={meter.pk}">Install in a unit<' in page

    def test_a_units_page_offers_the_flows_for_its_meter(self, operator):
        inst = MeterInstallationFactory()
        empty = BuildingInterfaceUnitFactory()
        unit_page = "/admin/customers/buildinginterfaceunit/{}/change/"

        with_meter = operator.get(unit_page.format(inst.unit_id)).content.decode()
        without = operator.get(unit_page.format(empty.pk)).content.decode()

        assert f'href="{remove_url(inst)}">Remove the meter<' in with_meter
        assert f'href="{exchange_url(inst)}">Exchange the meter<' in with_meter
        assert f'href="{install_url()}?unit={empty.pk}">Install a meter<' in without

    def test_the_installation_list_offers_to_install_a_meter(self, operator):
        page = operator.get(INSTALLATIONS).content.decode()

        assert f'href="{install_url()}">Install a meter<' in page

    def test_each_button_shows_only_to_those_who_may_use_it(self, login):
        inst = MeterInstallationFactory()
        meter_page = f"/admin/metering/heatmeter/{inst.meter_id}/change/"
        remover = login(None)
        remover.user.user_permissions.add(
            *Permission.objects.filter(codename__in=["view_heatmeter", "change_meterinstallation"])
        )

        removes = remover.get(meter_page).content.decode()
        auditor = login(AUDITOR)
        views = auditor.get(meter_page).content.decode()
        lists = auditor.get(INSTALLATIONS).content.decode()

        assert remove_url(inst) in removes
        assert exchange_url(inst) not in removes  # an exchange installs, too
        assert remove_url(inst) not in views
        assert exchange_url(inst) not in views
        assert install_url() not in lists


class TestPermissions:
    @pytest.mark.parametrize("role", [AUDITOR, BILLING_CLERK, None])
    def test_staff_without_the_installation_permissions_are_refused(self, login, role):
        client = login(role)
        inst = MeterInstallationFactory()
        new = HeatMeterFactory()

        responses = [
            client.get(install_url()),
            client.post(
                install_url(),
                {
                    "meter": new.pk,
                    "unit": BuildingInterfaceUnitFactory().pk,
                    "installed_at": "2026-03-01 10:00",
                    "initial_energy_kwh": "0",
                    "initial_volume_m3": "0",
                },
            ),
            client.get(remove_url(inst)),
            client.post(
                remove_url(inst),
                {"removed_at": "2026-03-01 10:00", "final_energy_kwh": "9", "final_volume_m3": "1"},
            ),
            client.get(exchange_url(inst)),
            client.post(
                exchange_url(inst),
                {
                    "exchanged_at": "2026-03-01 10:00",
                    "old_final_energy_kwh": "9",
                    "old_final_volume_m3": "1",
                    "new_meter": new.pk,
                    "new_initial_energy_kwh": "0",
                    "new_initial_volume_m3": "0",
                },
            ),
        ]

        assert [r.status_code for r in responses] == [403] * 6
        inst.refresh_from_db()
        assert inst.removed_at is None
        assert MeterInstallation.objects.count() == 1

    def test_removing_needs_the_change_permission_only(self, login):
        client = login(None)
        client.user.user_permissions.add(
            Permission.objects.get(codename="change_meterinstallation")
        )
        inst = MeterInstallationFactory()

        assert client.get(remove_url(inst)).status_code == 200
        assert client.get(exchange_url(inst)).status_code == 403  # it installs, too
        assert client.get(install_url()).status_code == 403
