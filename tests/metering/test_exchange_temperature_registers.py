"""The m³·°C registers recorded at a meter exchange weigh the water across it whole.

A removal may record the old meter's final flow / return temperature registers (m³·°C)
and an installation the new meter's initial ones.  Given, the connection's temperature
registers run from the old meter's last read to its final register, and the new meter's
continue from that register at its installation; without them the old meter's end is
its last read and the new meter's anchor its first read, as before.

Worked by hand: before November the old meter counted 100 m³ (7,000 / 4,000 m³·°C);
to its removal on 15 November at 12:00, 50 m³ more at 80 / 30 °C (its last read, at
06:00, saw 44 of them); the new meter (its registers from 500 m³·°C) counts 25 m³ at
60 / 20 °C to December, 2 of them by its first read.  November: 75 m³, flow
(4,000 + 1,500) / 75 = 73.33 °C, return (1,500 + 500) / 75 = 26.67 °C.
"""

import datetime as dt
from decimal import Decimal

import pytest

from heatutility.roles import METERING_OPERATOR
from heatutility.timeutil import local_midnight
from metering.installations import UnableToInstallMeter, meter_exchange, meter_remove
from metering.models import MeterInstallation
from metering.selectors import boundary_registers
from metering.services import boundary_registers_ensure
from tests.billing.helpers import client_for
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.django_db
CPH = "Europe/Copenhagen"
NOV, DEC = dt.date(2026, 11, 1), dt.date(2026, 12, 1)
EXCHANGED_AT = local_midnight(dt.date(2026, 11, 15), CPH) + dt.timedelta(hours=12)


def at(day, hour=0):
    return local_midnight(day, CPH) + dt.timedelta(hours=hour)


def temps(flow, ret):
    return {"flow_temp_m3c": Decimal(flow), "return_temp_m3c": Decimal(ret)}


def old_meter_read_until_the_morning():
    old = MeterInstallationFactory(installed_at=at(dt.date(2026, 1, 1)))
    add_readings(
        old.meter,
        [
            (at(NOV), "4000", "100", temps("7000", "4000")),
            (at(dt.date(2026, 11, 15), 6), "5800", "144", temps("10520", "5320")),
        ],
    )
    return old


def exchange(old, new_meter, **registers):
    return meter_exchange(
        unit=old.unit,
        new_meter=new_meter,
        exchanged_at=EXCHANGED_AT,
        old_final_energy_kwh=Decimal("6000"),
        old_final_volume_m3=Decimal("150"),
        **registers,
    )


def november(connection_id):
    """The registers on 1 November and 1 December: {on: (volume, flow m³·°C, return m³·°C)}."""
    boundary_registers_ensure(connection_ids=[connection_id], dates=[NOV, DEC])
    frame = boundary_registers(connection_ids=[connection_id], dates=[NOV, DEC])
    return {
        row.on: (row.volume_m3, row.flow_temp_m3c, row.return_temp_m3c)
        for row in frame.itertuples()
    }


def water(registers):
    """Volume and volume-weighted flow / return temperatures (°C, 2 places)."""
    (v0, f0, r0), (v1, f1, r1) = registers[NOV], registers[DEC]
    volume = v1 - v0
    return (
        volume,
        ((f1 - f0) / volume).quantize(Decimal("0.01")),
        ((r1 - r0) / volume).quantize(Decimal("0.01")),
    )


class TestFinalTemperatureRegistersAtRemoval:
    def test_the_old_meters_water_after_its_last_read_is_weighted(self):
        old = old_meter_read_until_the_morning()
        new_meter = HeatMeterFactory()
        add_readings(
            new_meter,
            [
                (EXCHANGED_AT, "0", "0", temps("500", "500")),
                (at(DEC), "1000", "25", temps("2000", "1000")),
            ],
        )

        removed, _new = exchange(
            old,
            new_meter,
            old_final_flow_temp_m3c=Decimal("11000"),
            old_final_return_temp_m3c=Decimal("5500"),
        )

        assert (removed.final_flow_temp_m3c, removed.final_return_temp_m3c) == (
            Decimal("11000"),
            Decimal("5500"),
        )
        registers = november(old.unit.connection_id)
        # the new meter continues from 11,000 / 5,500: 2,000 + 10,500 and 1,000 + 5,000
        assert registers[DEC] == (Decimal("175.0000"), Decimal("12500.0000"), Decimal("6000.0000"))
        assert water(registers) == (Decimal("75.0000"), Decimal("73.33"), Decimal("26.67"))

    def test_with_initial_registers_the_new_meters_water_before_its_first_read_counts_too(self):
        old = old_meter_read_until_the_morning()
        new_meter = HeatMeterFactory()
        add_readings(
            new_meter,
            [
                (at(dt.date(2026, 11, 16)), "80", "2", temps("620", "540")),
                (at(DEC), "1000", "25", temps("2000", "1000")),
            ],
        )

        _old, new = exchange(
            old,
            new_meter,
            old_final_flow_temp_m3c=Decimal("11000"),
            old_final_return_temp_m3c=Decimal("5500"),
            new_initial_flow_temp_m3c=Decimal("500"),
            new_initial_return_temp_m3c=Decimal("500"),
        )

        assert (new.initial_flow_temp_m3c, new.initial_return_temp_m3c) == (
            Decimal("500"),
            Decimal("500"),
        )
        registers = november(old.unit.connection_id)
        assert registers[DEC] == (Decimal("175.0000"), Decimal("12500.0000"), Decimal("6000.0000"))
        assert water(registers) == (Decimal("75.0000"), Decimal("73.33"), Decimal("26.67"))

    def test_a_final_register_below_the_last_read_is_refused_and_nothing_changes(self):
        old = old_meter_read_until_the_morning()

        with pytest.raises(UnableToInstallMeter) as refused:
            meter_remove(
                installation=old,
                removed_at=EXCHANGED_AT,
                final_energy_kwh=Decimal("6000"),
                final_volume_m3=Decimal("150"),
                final_flow_temp_m3c=Decimal("11000"),
                final_return_temp_m3c=Decimal("5000"),
            )

        assert [e.as_dict() for e in refused.value.errors] == [
            {
                "code": "final_below_last_read",
                "field": "final_return_temp_m3c",
                "message": "The final return temperature register 5000 m³·°C is below "
                "5320.0000 m³·°C, the last reading's (or the initial) before the removal; "
                "leave it empty if the register was reset.",
            }
        ]
        old.refresh_from_db()
        assert (old.removed_at, old.final_flow_temp_m3c) == (None, None)


class TestExchangeThroughTheApi:
    def test_staff_record_the_temperature_registers_of_an_exchange(self):
        old = MeterInstallationFactory(installed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))

        response = client_for(METERING_OPERATOR).post(
            "/api/v1/meter-installations/exchange/",
            {
                "unit": old.unit_id,
                "new_meter": HeatMeterFactory().pk,
                "exchanged_at": "2026-10-15T10:00:00Z",
                "old_final_energy_kwh": "100",
                "old_final_volume_m3": "12",
                "old_final_flow_temp_m3c": "840.5",
                "old_final_return_temp_m3c": "420.25",
                "new_initial_flow_temp_m3c": "3.5",
            },
            format="json",
        )

        assert response.status_code == 201, response.content
        removed, installed = response.json()
        assert (removed["final_flow_temp_m3c"], removed["final_return_temp_m3c"]) == (
            "840.5000",
            "420.2500",
        )
        assert (installed["initial_flow_temp_m3c"], installed["initial_return_temp_m3c"]) == (
            "3.5000",
            None,
        )
        assert MeterInstallation.objects.get(pk=installed["id"]).initial_flow_temp_m3c == Decimal(
            "3.5"
        )


class TestExchangeInTheAdmin:
    def test_the_meters_installation_rows_show_the_temperature_registers(self, admin_client):
        inst = MeterInstallationFactory(
            initial_flow_temp_m3c=Decimal("17.25"), initial_return_temp_m3c=Decimal("8.5")
        )

        page = admin_client.get(f"/admin/metering/heatmeter/{inst.meter_id}/change/")

        assert page.status_code == 200
        content = page.content.decode()
        assert "17.2500" in content
        assert "8.5000" in content
        assert 'name="installations-0-initial_flow_temp_m3c"' not in content  # read-only

    def test_the_exchange_form_takes_the_temperature_registers(self, admin_client):
        inst = MeterInstallationFactory()
        new = HeatMeterFactory()

        response = admin_client.post(
            f"/admin/metering/meterinstallation/{inst.pk}/exchange/",
            {
                "exchanged_at": "2026-11-15 12:00",
                "old_final_energy_kwh": "10",
                "old_final_volume_m3": "1",
                "old_final_flow_temp_m3c": "840.5",
                "old_final_return_temp_m3c": "420.25",
                "new_meter": new.pk,
                "new_initial_energy_kwh": "0",
                "new_initial_volume_m3": "0",
                "new_initial_flow_temp_m3c": "3.5",
                "new_initial_return_temp_m3c": "",
            },
        )

        assert response.status_code == 302
        inst.refresh_from_db()
        installed = MeterInstallation.objects.get(meter=new)
        assert (inst.removed_at, installed.installed_at) == (EXCHANGED_AT, EXCHANGED_AT)
        assert (inst.final_flow_temp_m3c, inst.final_return_temp_m3c) == (
            Decimal("840.5"),
            Decimal("420.25"),
        )
        assert (installed.initial_flow_temp_m3c, installed.initial_return_temp_m3c) == (
            Decimal("3.5"),
            None,
        )
