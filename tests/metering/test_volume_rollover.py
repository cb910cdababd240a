"""Volume register rollover (EN 1434: every register has a maximum), end to end."""

import datetime as dt
from decimal import Decimal

import pytest

from heatutility.timeutil import local_midnight
from metering.models import Reading, ReadingIssue
from metering.selectors import boundary_registers
from metering.services import boundary_registers_ensure, vee_run_meter
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.django_db
CPH = "Europe/Copenhagen"
OCT, NOV = dt.date(2026, 10, 1), dt.date(2026, 11, 1)
NOW = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)


def at(day, hour=0):
    return local_midnight(day, CPH) + dt.timedelta(hours=hour)


def volumes(connection):
    frame = boundary_registers(connection_ids=[connection.id], dates=[OCT, NOV])
    return {row.on: row.volume_m3 for row in frame.itertuples()}


class TestVolumeRollover:
    def test_rollover_is_not_flagged_and_gives_the_consumed_m3(self):
        inst = MeterInstallationFactory(
            # 999.99 m³ at 0.01 m³: the next step after 999.99 is 0, a wrap of 1,000 m³
            meter=HeatMeterFactory(
                volume_register_max=Decimal("999.99"), volume_resolution=Decimal("0.01")
            ),
            installed_at=at(dt.date(2026, 1, 1)),
            initial_volume_m3=Decimal("900"),
        )
        add_readings(
            inst.meter,
            [
                (at(OCT), "1000", "995.5"),
                (at(dt.date(2026, 10, 20)), "1400", "999.9"),
                (at(dt.date(2026, 10, 21)), "1420", "0.3"),
                (at(NOV), "1600", "4.25"),
            ],
        )

        vee_run_meter(meter_id=inst.meter.id, start=at(OCT), end=at(NOV), now=NOW)

        assert set(Reading.objects.values_list("status", flat=True)) == {"valid"}
        marker = ReadingIssue.objects.get()
        assert (marker.code, marker.state, marker.read_at) == (
            "volume_rollover",
            "accepted",
            at(dt.date(2026, 10, 21)),
        )
        got = volumes(inst.unit.connection)
        # 995.5 → 1000 (4.5) + 0 → 4.25: 8.75 m³ in October
        assert got[NOV] - got[OCT] == Decimal("8.7500")
        assert got[OCT] == Decimal("95.5000")

    def test_real_volume_decrease_is_rejected_and_not_used(self):
        inst = MeterInstallationFactory(installed_at=at(dt.date(2026, 1, 1)))
        add_readings(
            inst.meter,
            [
                (at(OCT), "1000", "500"),
                (at(dt.date(2026, 10, 20)), "1400", "420"),
                (at(NOV), "1600", "520"),
            ],
        )

        vee_run_meter(meter_id=inst.meter.id, start=at(OCT), end=at(NOV), now=NOW)

        issue = ReadingIssue.objects.get()
        assert (issue.code, issue.state, issue.read_at) == (
            "register_decrease",
            "open",
            at(dt.date(2026, 10, 20)),
        )
        assert Reading.objects.get(read_at=at(dt.date(2026, 10, 20))).status == "rejected"
        got = volumes(inst.unit.connection)
        assert got[NOV] - got[OCT] == Decimal("20.0000")

    def test_rollover_on_the_old_meter_across_an_exchange(self):
        old = MeterInstallationFactory(
            # 999.99 m³ at 0.01 m³: the next step after 999.99 is 0, a wrap of 1,000 m³
            meter=HeatMeterFactory(
                volume_register_max=Decimal("999.99"), volume_resolution=Decimal("0.01")
            ),
            installed_at=at(dt.date(2026, 1, 1)),
            initial_volume_m3=Decimal("990"),
        )
        exchange = at(dt.date(2026, 10, 15), 10)
        # the old meter rolled over before it was removed: its final register is below
        # its initial one
        old.removed_at, old.final_energy_kwh, old.final_volume_m3 = (
            exchange,
            Decimal("1500"),
            Decimal("4"),
        )
        old.save()
        new = MeterInstallationFactory(
            unit=old.unit,
            installed_at=exchange,
            initial_energy_kwh=Decimal("0"),
            initial_volume_m3=Decimal("2"),
        )
        add_readings(
            old.meter,
            [(at(OCT), "1000", "998"), (at(dt.date(2026, 10, 10)), "1300", "1.5")],
        )
        add_readings(new.meter, [(at(NOV), "100", "12")])
        vee_run_meter(meter_id=old.meter.id, start=at(OCT), end=exchange, now=NOW)

        boundary_registers_ensure(connection_ids=[old.unit.connection.id], dates=[OCT, NOV])

        got = volumes(old.unit.connection)
        # old: 998 → 1000 → 4 = 6 m³ after the read; new: 12 − 2 = 10 m³
        assert got[NOV] - got[OCT] == Decimal("16.0000")


class TestVolumeRegisterMaxIsManaged:
    def test_staff_set_it_over_the_api(self, admin_user):
        from rest_framework.test import APIClient

        client = APIClient()
        client.force_authenticate(admin_user)

        response = client.post(
            "/api/v1/meters/",
            {
                "maker": "Kamstrup",
                "model": "MULTICAL 403",
                "serial": "71000001",
                "register_max": "99999999",
                "volume_register_max": "999999.99",
            },
            format="json",
        )

        assert response.status_code == 201, response.json()
        assert response.json()["volume_register_max"] == "999999.9900"

    def test_admin_form_shows_it(self, admin_client):
        meter = HeatMeterFactory()

        response = admin_client.get(f"/admin/metering/heatmeter/{meter.pk}/change/")

        assert response.status_code == 200
        assert b'name="volume_register_max"' in response.content


class TestRolloverAtRemoval:
    def test_rollover_between_the_last_read_and_the_final_register_is_counted(self):
        """The old meter's registers roll over after its last read: its final register at
        removal is below that read.  The connection's register must keep rising."""
        old = MeterInstallationFactory(
            meter=HeatMeterFactory(
                register_max=Decimal("99999"),  # at 1 kWh: wraps at 100,000
                volume_register_max=Decimal("999.99"),
                volume_resolution=Decimal("0.01"),
            ),
            installed_at=at(dt.date(2026, 1, 1)),
            initial_energy_kwh=Decimal("90000"),
            initial_volume_m3=Decimal("900"),
            removed_at=at(dt.date(2026, 10, 15), 10),
            final_energy_kwh=Decimal("20"),  # 99,990 → 100,000 → 20: 30 kWh after the last read
            final_volume_m3=Decimal("0.5"),  # 999.8 → 1,000 → 0.5: 0.7 m³
        )
        new = MeterInstallationFactory(
            unit=old.unit,
            installed_at=at(dt.date(2026, 10, 15), 11),
            initial_energy_kwh=Decimal("0"),
            initial_volume_m3=Decimal("0"),
        )
        add_readings(
            old.meter,
            [(at(OCT), "99000", "990.0"), (at(dt.date(2026, 10, 15), 9), "99990", "999.8")],
        )
        add_readings(new.meter, [(at(NOV), "1000", "10.0")])

        boundary_registers_ensure(connection_ids=[old.unit.connection_id], dates=[OCT, NOV])

        frame = boundary_registers(connection_ids=[old.unit.connection_id], dates=[OCT, NOV])
        got = {row.on: (row.energy_kwh, row.volume_m3) for row in frame.itertuples()}
        # October: 99,000 → 99,990 (990) + 30 at the rollover + 1,000 on the new meter
        assert got[NOV][0] - got[OCT][0] == Decimal("2020.000000")
        # 990.0 → 999.8 (9.8) + 0.7 + 10.0 on the new meter
        assert got[NOV][1] - got[OCT][1] == Decimal("20.5000")
