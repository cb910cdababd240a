import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from heatutility.errors import DomainError
from metering.installations import (
    InstallationAlreadyRemoved,
    UnableToInstallMeter,
    meter_exchange,
    meter_install,
    meter_remove,
)
from metering.models import MeterInstallation
from tests.customers.factories import BuildingInterfaceUnitFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
T1 = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)


class TestMeterInstall:
    def test_installs_a_meter_in_an_interface_unit(self):
        meter = HeatMeterFactory(resolution=Decimal("0.1"))
        unit = BuildingInterfaceUnitFactory()

        installation = meter_install(
            meter=meter, unit=unit, installed_at=T0, initial_energy_kwh=Decimal("12.5")
        )

        assert installation.removed_at is None
        assert installation.initial_energy_kwh == Decimal("12.5")

    def test_a_meter_cannot_be_in_two_places_at_once(self):
        first = MeterInstallationFactory(installed_at=T0)
        elsewhere = BuildingInterfaceUnitFactory()

        with pytest.raises(DomainError, match="installed elsewhere in that period"):
            meter_install(meter=first.meter, unit=elsewhere, installed_at=T1)

    def test_a_unit_cannot_hold_two_meters_at_once(self):
        first = MeterInstallationFactory(installed_at=T0)

        with pytest.raises(DomainError, match="has another meter installed"):
            meter_install(meter=HeatMeterFactory(), unit=first.unit, installed_at=T1)

    def test_naive_datetimes_are_refused(self):
        with pytest.raises(UnableToInstallMeter, match="offset"):
            meter_install(
                meter=HeatMeterFactory(),
                unit=BuildingInterfaceUnitFactory(),
                installed_at=dt.datetime(2026, 1, 1),  # naive on purpose
            )


class TestMeterExchange:
    def test_closes_the_old_and_opens_the_new_at_the_same_instant(self):
        old = MeterInstallationFactory(installed_at=T0)
        new_meter = HeatMeterFactory()

        closed, opened = meter_exchange(
            unit=old.unit,
            new_meter=new_meter,
            exchanged_at=T1,
            old_final_energy_kwh=Decimal("45210.000"),
            old_final_volume_m3=Decimal("1002.5"),
            new_initial_energy_kwh=Decimal("3"),
        )

        assert closed.removed_at == opened.installed_at == T1
        assert closed.final_energy_kwh == Decimal("45210.000")
        assert opened.meter == new_meter
        assert opened.initial_energy_kwh == Decimal("3")
        assert MeterInstallation.objects.filter(unit=old.unit).count() == 2

    def test_final_register_below_initial_is_refused_and_nothing_changes(self):
        old = MeterInstallationFactory(installed_at=T0, initial_energy_kwh=Decimal("500"))

        with pytest.raises(UnableToInstallMeter, match="below the initial"):
            meter_exchange(
                unit=old.unit,
                new_meter=HeatMeterFactory(),
                exchanged_at=T1,
                old_final_energy_kwh=Decimal("499"),
                old_final_volume_m3=Decimal("10"),
            )

        old.refresh_from_db()
        assert old.removed_at is None
        assert MeterInstallation.objects.filter(unit=old.unit).count() == 1

    def test_exchange_without_a_current_meter_is_refused(self):
        with pytest.raises(UnableToInstallMeter, match="no meter installed"):
            meter_exchange(
                unit=BuildingInterfaceUnitFactory(),
                new_meter=HeatMeterFactory(),
                exchanged_at=T1,
                old_final_energy_kwh=Decimal("1"),
                old_final_volume_m3=Decimal("1"),
            )

    def test_removing_twice_is_refused(self):
        installation = MeterInstallationFactory(installed_at=T0)
        meter_remove(
            installation=installation,
            removed_at=T1,
            final_energy_kwh=Decimal("9"),
            final_volume_m3=Decimal("1"),
        )

        with pytest.raises(InstallationAlreadyRemoved, match="already removed") as caught:
            meter_remove(
                installation=installation,
                removed_at=T1 + dt.timedelta(days=1),
                final_energy_kwh=Decimal("9"),
                final_volume_m3=Decimal("1"),
            )

        assert caught.value.status_code == 409


@pytest.mark.postgres
class TestInstallationDatabaseConstraints:
    def test_meter_in_two_places_is_refused_by_the_database(self):
        first = MeterInstallationFactory(installed_at=T0)

        with (
            pytest.raises(IntegrityError, match="installation_meter_in_one_place"),
            transaction.atomic(),
        ):
            MeterInstallation.objects.create(
                meter=first.meter, unit=BuildingInterfaceUnitFactory(), installed_at=T1
            )

    def test_two_meters_in_one_unit_is_refused_by_the_database(self):
        first = MeterInstallationFactory(
            installed_at=T0, removed_at=T1, final_energy_kwh=1, final_volume_m3=1
        )

        with (
            pytest.raises(IntegrityError, match="installation_one_meter_per_unit"),
            transaction.atomic(),
        ):
            MeterInstallation.objects.create(
                meter=HeatMeterFactory(), unit=first.unit, installed_at=T1 - dt.timedelta(seconds=1)
            )

    def test_back_to_back_installations_are_allowed(self):
        first = MeterInstallationFactory(
            installed_at=T0, removed_at=T1, final_energy_kwh=1, final_volume_m3=1
        )

        MeterInstallation.objects.create(meter=HeatMeterFactory(), unit=first.unit, installed_at=T1)

        assert MeterInstallation.objects.filter(unit=first.unit).count() == 2

    def test_removed_meter_needs_final_registers(self):
        with (
            pytest.raises(IntegrityError, match="installation_removed_has_final_registers"),
            transaction.atomic(),
        ):
            MeterInstallation.objects.create(
                meter=HeatMeterFactory(),
                unit=BuildingInterfaceUnitFactory(),
                installed_at=T0,
                removed_at=T1,
            )

    def test_meter_serial_is_unique_per_maker(self):
        HeatMeterFactory(maker="Kamstrup", serial="123")
        HeatMeterFactory(maker="Diehl", serial="123")

        with (
            pytest.raises(IntegrityError, match="heatmeter_unique_maker_serial"),
            transaction.atomic(),
        ):
            HeatMeterFactory(maker="Kamstrup", serial="123")


class TestRemovalAfterRollover:
    """A final register below the initial one is legitimate when the register rolled over."""

    def _installed(self):
        from tests.metering.factories_readings import add_readings

        meter = HeatMeterFactory(
            register_max=Decimal("99999"),
            volume_register_max=Decimal("999.99"),
            volume_resolution=Decimal("0.01"),
        )
        installation = MeterInstallationFactory(
            meter=meter,
            installed_at=T0,
            initial_energy_kwh=Decimal("95000"),
            initial_volume_m3=Decimal("950"),
        )
        return installation, add_readings

    def test_rollover_after_the_last_read_is_accepted(self):
        installation, add_readings = self._installed()
        add_readings(installation.meter, [(T0 + dt.timedelta(days=30), "99950", "999.5")])

        removed = meter_remove(
            installation=installation,
            removed_at=T1,
            final_energy_kwh=Decimal("40"),
            final_volume_m3=Decimal("0.4"),
        )

        assert (removed.final_energy_kwh, removed.final_volume_m3) == (
            Decimal("40"),
            Decimal("0.4"),
        )

    def test_rollover_vee_found_earlier_is_accepted(self):
        from metering.models import ReadingIssue

        installation, add_readings = self._installed()
        add_readings(
            installation.meter,
            [
                (T0 + dt.timedelta(days=10), "99990", "960"),
                (T0 + dt.timedelta(days=11), "10", "961"),
                (T0 + dt.timedelta(days=30), "3000", "990"),
            ],
        )
        ReadingIssue.objects.create(
            meter=installation.meter,
            read_at=T0 + dt.timedelta(days=11),
            code="rollover",
            severity="info",
            state="accepted",
            message="rolled over",
            created_at=T1,
        )

        removed = meter_remove(
            installation=installation,
            removed_at=T1,
            final_energy_kwh=Decimal("3100"),
            final_volume_m3=Decimal("991"),
        )

        assert removed.final_energy_kwh == Decimal("3100")

    def test_below_initial_without_a_rollover_is_refused_per_register(self):
        from tests.metering.factories_readings import add_readings

        installation = MeterInstallationFactory(
            meter=HeatMeterFactory(
                register_max=Decimal("99999"),
                volume_register_max=Decimal("999.99"),
                volume_resolution=Decimal("0.01"),
            ),
            installed_at=T0,
            initial_energy_kwh=Decimal("50000"),
            initial_volume_m3=Decimal("500"),
        )
        add_readings(installation.meter, [(T0 + dt.timedelta(days=30), "60000", "999.5")])

        with pytest.raises(UnableToInstallMeter) as caught:
            meter_remove(
                installation=installation,
                removed_at=T1,
                final_energy_kwh=Decimal("40"),
                final_volume_m3=Decimal("0.4"),
            )

        # energy: 60,000 is not the top tenth of a 100,000 kWh register (a typo, or the
        # wrong meter); the volume register did roll over (999.5 → 0.4 of 1,000 m³)
        assert [(e.code, e.field) for e in caught.value.errors] == [
            ("final_below_initial", "final_energy_kwh")
        ]
        installation.refresh_from_db()
        assert installation.removed_at is None
