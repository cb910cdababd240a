"""A connection is metered by one meter at a time, whichever of its interface units holds it.

Estimation builds one register series per connection (``metering.vee.estimation``): with
meters in two units of one connection at the same time, both meters' reads were merged
into that series and one meter's consumption was lost (1,000 + 200 kWh billed as
1,000).  An installation, an exchange or a corrected time that would overlap an
installation in another unit of the connection is refused (422, an item naming the
other meter and unit), checked under the connection's lock, so two installations at the
same instant cannot both pass.
"""

import datetime as dt
from decimal import Decimal

import pytest

from heatutility.roles import METERING_OPERATOR
from metering import installations
from metering.installations import UnableToInstallMeter, meter_exchange, meter_install
from metering.models import MeterInstallation
from tests.billing.helpers import client_for
from tests.concurrency import Pause, finish, in_thread, waits_for_a_lock
from tests.customers.factories import BuildingInterfaceUnitFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MOVED = dt.datetime(2026, 6, 1, 8, tzinfo=dt.UTC)  # the meter moved from unit A to unit B
LATER = dt.datetime(2026, 9, 1, 8, tzinfo=dt.UTC)


def two_units():
    unit_a = BuildingInterfaceUnitFactory(serial="BIU-A")
    return unit_a, BuildingInterfaceUnitFactory(connection=unit_a.connection, serial="BIU-B")


def items(error) -> list[tuple[str, str | None]]:
    return [(item.code, item.field) for item in error.errors]


@pytest.mark.django_db
class TestMeterInstall:
    def test_a_meter_in_another_unit_of_the_connection_at_the_same_time_is_refused(self):
        unit_a, unit_b = two_units()
        meter_install(meter=HeatMeterFactory(serial="A-1"), unit=unit_a, installed_at=T0)

        with pytest.raises(UnableToInstallMeter) as refusal:
            meter_install(meter=HeatMeterFactory(serial="B-2"), unit=unit_b, installed_at=T0)

        assert items(refusal.value) == [("connection_has_meter", "unit")]
        message = refusal.value.errors[0].message
        assert "A-1" in message
        assert "BIU-A" in message
        assert MeterInstallation.objects.filter(unit=unit_b).count() == 0

    def test_a_back_dated_installation_overlapping_a_removed_meter_is_refused(self):
        unit_a, unit_b = two_units()
        MeterInstallationFactory(
            unit=unit_a,
            installed_at=T0,
            removed_at=MOVED,
            final_energy_kwh=Decimal("100"),
            final_volume_m3=Decimal("1"),
        )

        with pytest.raises(UnableToInstallMeter) as refusal:
            meter_install(
                meter=HeatMeterFactory(), unit=unit_b, installed_at=MOVED - dt.timedelta(hours=1)
            )

        assert items(refusal.value) == [("connection_has_meter", "unit")]

    def test_a_meter_moved_to_another_unit_at_the_removal_instant_is_installed(self):
        unit_a, unit_b = two_units()
        MeterInstallationFactory(
            unit=unit_a,
            installed_at=T0,
            removed_at=MOVED,
            final_energy_kwh=Decimal("100"),
            final_volume_m3=Decimal("1"),
        )

        installed = meter_install(meter=HeatMeterFactory(), unit=unit_b, installed_at=MOVED)

        assert installed.pk is not None

    def test_units_of_other_connections_do_not_count(self):
        MeterInstallationFactory(installed_at=T0)

        installed = meter_install(
            meter=HeatMeterFactory(), unit=BuildingInterfaceUnitFactory(), installed_at=T0
        )

        assert installed.pk is not None

    def test_the_api_answers_422_naming_the_other_meter_and_unit(self):
        unit_a, unit_b = two_units()
        meter_install(meter=HeatMeterFactory(serial="A-1"), unit=unit_a, installed_at=T0)
        meter = HeatMeterFactory(serial="B-2")

        response = client_for(METERING_OPERATOR).post(
            "/api/v1/meter-installations/install/",
            {"meter": meter.pk, "unit": unit_b.pk, "installed_at": "2026-03-01T00:00:00Z"},
            format="json",
        )

        assert response.status_code == 422, response.content
        (item,) = response.json()["errors"]
        assert (item["code"], item["field"]) == ("connection_has_meter", "unit")
        assert "A-1" in item["message"]
        assert "BIU-A" in item["message"]
        assert not MeterInstallation.objects.filter(meter=meter).exists()


@pytest.mark.django_db
class TestMeterExchange:
    def test_an_exchange_is_refused_while_another_unit_of_the_connection_has_a_meter(self):
        unit_a, unit_b = two_units()
        old = MeterInstallationFactory(unit=unit_a, installed_at=T0)
        # recorded before the rule: a second meter in unit B
        MeterInstallationFactory(unit=unit_b, installed_at=MOVED)

        with pytest.raises(UnableToInstallMeter) as refusal:
            meter_exchange(
                unit=unit_a,
                new_meter=HeatMeterFactory(),
                exchanged_at=LATER,
                old_final_energy_kwh=Decimal("100"),
                old_final_volume_m3=Decimal("1"),
            )

        assert items(refusal.value) == [("connection_has_meter", "unit")]
        old.refresh_from_db()
        assert old.removed_at is None  # nothing changed


@pytest.mark.django_db
class TestMeterInstallationCorrect:
    @pytest.fixture
    def moved(self):
        """A meter in unit A until MOVED, then another in unit B from MOVED."""
        unit_a, unit_b = two_units()
        in_a = MeterInstallationFactory(
            unit=unit_a,
            installed_at=T0,
            removed_at=MOVED,
            final_energy_kwh=Decimal("100"),
            final_volume_m3=Decimal("1"),
        )
        in_b = MeterInstallationFactory(unit=unit_b, installed_at=MOVED)
        return in_a, in_b

    def test_a_removal_moved_past_the_installation_in_another_unit_is_refused(self, moved):
        in_a, _in_b = moved

        with pytest.raises(UnableToInstallMeter) as refusal:
            installations.meter_installation_correct(
                installation=in_a, removed_at=LATER, reason="typed", actor=None
            )

        assert items(refusal.value) == [("connection_has_meter", "removed_at")]
        in_a.refresh_from_db()
        assert in_a.removed_at == MOVED

    def test_an_installation_moved_before_the_removal_in_another_unit_is_refused(self, moved):
        _in_a, in_b = moved

        with pytest.raises(UnableToInstallMeter) as refusal:
            installations.meter_installation_correct(
                installation=in_b, installed_at=T0, reason="typed", actor=None
            )

        assert items(refusal.value) == [("connection_has_meter", "installed_at")]

    def test_a_time_moved_within_the_gap_is_corrected(self, moved):
        in_a, _in_b = moved

        corrected = installations.meter_installation_correct(
            installation=in_a, removed_at=MOVED - dt.timedelta(hours=2), reason="typed", actor=None
        )

        assert corrected.removed_at == MOVED - dt.timedelta(hours=2)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_installations_in_two_units_at_once_are_checked_one_after_the_other(monkeypatch):
    """The first holds the connection, its check done; the second waits for the
    connection's lock and then sees the first installation."""
    unit_a, unit_b = two_units()
    pause = Pause(monkeypatch, installations, "_connection_overlaps", after=True)
    first, installed = in_thread(
        meter_install, meter=HeatMeterFactory(serial="A-1"), unit=unit_a, installed_at=T0
    )
    try:
        pause.wait()
        second, refused = in_thread(
            meter_install, meter=HeatMeterFactory(serial="B-2"), unit=unit_b, installed_at=T0
        )
        waited = waits_for_a_lock(second, "customers_serviceconnection")
    finally:
        pause.released.set()
    finish(first, second)

    assert installed.get("error") is None
    assert isinstance(refused.get("error"), UnableToInstallMeter)
    assert items(refused["error"]) == [("connection_has_meter", "unit")]
    assert list(
        MeterInstallation.objects.filter(unit__connection=unit_a.connection).values_list(
            "meter__serial", flat=True
        )
    ) == ["A-1"]
    assert waited
