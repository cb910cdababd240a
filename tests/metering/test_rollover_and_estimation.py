"""Register rollovers and boundary estimates: the audit's four cases, worked by hand.

EN 1434 registers (DOMAIN.md §2) count up to their maximum; one resolution step later
they read 0, so a rollover adds maximum + resolution.
"""

import datetime as dt
from decimal import Decimal

import pytest

from heatutility.timeutil import local_midnight
from metering.installations import meter_remove
from metering.models import BoundaryRegister, Reading, ReadingIssue
from metering.services import boundary_registers_ensure, vee_run_meter
from metering.vee.rules import Read, validate
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

CPH = "Europe/Copenhagen"
OCT, NOV = dt.date(2026, 10, 1), dt.date(2026, 11, 1)
T0 = dt.datetime(2026, 10, 31, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
INSTALLED = [(dt.datetime(2020, 1, 1, tzinfo=dt.UTC), None)]


def at(day, hour=0):
    return local_midnight(day, CPH) + dt.timedelta(hours=hour)


def register(connection, on):
    row = BoundaryRegister.objects.get(connection=connection, on=on)
    return row.energy_kwh, row.volume_m3, row.status, row.method


def hourly(hour, energy, volume="10"):
    return Read(T0 + dt.timedelta(hours=hour), Decimal(energy), Decimal(volume))


def findings(reads, *, previous=None, installed=INSTALLED, **registers):
    limits = {
        "register_max_kwh": Decimal("99999999"),
        "volume_register_max_m3": Decimal("99999999"),
        "register_wrap_kwh": Decimal("100000000"),
        "volume_register_wrap_m3": Decimal("100000000"),
    } | registers
    return [
        (f.read_at.hour, f.code, f.severity)
        for f in validate(
            reads=reads,
            previous=previous,
            contracted_kw=Decimal("10"),
            installed=installed,
            now=NOW,
            **limits,
        )
    ]


@pytest.mark.django_db
class TestRolloverBetweenBoundaries:
    def test_a_rollover_vee_has_not_seen_yet_is_counted_between_two_boundaries(self):
        inst = MeterInstallationFactory(
            meter=HeatMeterFactory(
                register_max=Decimal("99999"),  # 1 kWh steps: 99,999 → 0, a wrap of 100,000
                volume_register_max=Decimal("999.99"),
                volume_resolution=Decimal("0.01"),  # a wrap of 1,000 m³
            ),
        )
        add_readings(
            inst.meter,
            [
                (at(OCT), "99000", "990.00"),
                (at(dt.date(2026, 10, 10)), "99900", "999.00"),
                (at(dt.date(2026, 10, 20)), "500", "5.00"),  # rolled over
                (at(dt.date(2026, 10, 31), 12), "1400", "14.00"),
                (at(NOV), "1500", "15.00"),
            ],
        )
        assert not ReadingIssue.objects.exists()  # VEE has not run

        boundary_registers_ensure(connection_ids=[inst.unit.connection_id], dates=[OCT, NOV])

        conn = inst.unit.connection
        assert register(conn, OCT) == (
            Decimal("99000.000000"),
            Decimal("990.0000"),
            "actual",
            "reading",
        )
        # 99,000 → 100,000 (1,000) + 0 → 1,500: 2,500 kWh; 990 → 1,000 → 15: 25 m³
        assert register(conn, NOV) == (
            Decimal("101500.000000"),
            Decimal("1015.0000"),
            "actual",
            "reading",
        )


class TestSpikeIsTheOutlier:
    def test_one_garbled_high_read_is_rejected_and_the_reads_after_it_are_not(self):
        reads = [hourly(h, str(1000 + 5 * h)) for h in range(24)]
        reads[10] = hourly(10, "990000")

        assert findings(reads) == [
            (10, "consumption_above_capacity", "warning"),
            (10, "register_spike", "error"),
        ]

    def test_a_spike_that_looks_like_a_rollover_is_the_outlier_too(self):
        # 5 → 99,999 → 10 on a 99,999 kWh register: a rollover would mean 100,005 kWh in
        # two hours; the reads on both sides agree on 5 kWh
        reads = [hourly(0, "0"), hourly(1, "5"), hourly(2, "99999"), hourly(3, "10")]

        assert findings(
            reads, register_max_kwh=Decimal("99999"), register_wrap_kwh=Decimal("100000")
        ) == [
            (2, "consumption_above_capacity", "warning"),
            (2, "register_spike", "error"),
        ]

    def test_a_low_garbled_read_is_still_the_one_rejected(self):
        reads = [hourly(0, "1000"), hourly(1, "1005"), hourly(2, "5"), hourly(3, "1015")]

        assert findings(reads) == [(2, "register_decrease", "error")]

    def test_a_rejected_read_is_never_the_reference(self):
        # the 00:00 read is from before the installation (another site's register)
        installed = [(T0 + dt.timedelta(hours=1), None)]
        reads = [hourly(0, "5000"), hourly(1, "100"), hourly(2, "105")]

        assert findings(reads, installed=installed) == [(0, "outside_installation", "error")]

    @pytest.mark.django_db
    def test_after_vee_the_boundary_is_the_good_read(self):
        inst = MeterInstallationFactory()
        rows = [(at(dt.date(2026, 10, 31), h), str(1000 + 5 * h), "10") for h in range(49)]
        rows[10] = (rows[10][0], "990000", "10")
        add_readings(inst.meter, rows)

        vee_run_meter(
            meter_id=inst.meter_id,
            start=at(dt.date(2026, 10, 31)),
            end=at(dt.date(2026, 11, 2)),
            now=NOW,
        )
        boundary_registers_ensure(
            connection_ids=[inst.unit.connection_id], dates=[NOV], refresh=True
        )

        rejected = Reading.objects.filter(meter=inst.meter, status="rejected")
        assert list(rejected.values_list("read_at", flat=True)) == [rows[10][0]]
        assert register(inst.unit.connection, NOV) == (
            Decimal("1120.000000"),
            Decimal("10.0000"),
            "actual",
            "reading",
        )


@pytest.mark.django_db
class TestRemovedMeterWithoutReplacement:
    def test_no_meter_no_consumption_after_the_removal(self):
        inst = MeterInstallationFactory(installed_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
        add_readings(
            inst.meter,
            [
                (at(dt.date(2025, 10, 1)), "0", "0"),
                (at(dt.date(2025, 11, 1)), "3000", "30"),
                (at(OCT), "20000", "200"),
                (at(dt.date(2026, 10, 10)), "20900", "209"),
            ],
        )
        meter_remove(
            installation=inst,
            removed_at=at(dt.date(2026, 10, 10), 1),
            final_energy_kwh=Decimal("20900"),
            final_volume_m3=Decimal("209"),
            reason="disconnected",
        )

        boundary_registers_ensure(connection_ids=[inst.unit.connection_id], dates=[OCT, NOV])

        # last year's October (3,000 kWh) is not invented for a connection with no meter
        assert register(inst.unit.connection, NOV) == (
            Decimal("20900.000000"),
            Decimal("209.0000"),
            "estimated",
            "removal_register",
        )
        assert register(inst.unit.connection, OCT)[0] == Decimal("20000.000000")


class TestRolloverAddsMaximumPlusResolution:
    def test_the_meter_knows_its_wrap(self):
        kwh = HeatMeterFactory.build(register_max=Decimal("99999999"), resolution=Decimal("1"))
        mwh = HeatMeterFactory.build(
            register_unit="MWh", register_max=Decimal("99999.999"), resolution=Decimal("0.001")
        )
        gj = HeatMeterFactory.build(
            register_unit="GJ", register_max=Decimal("99999.99"), resolution=Decimal("0.01")
        )
        volume = HeatMeterFactory.build(
            volume_register_max=Decimal("999999.99"), volume_resolution=Decimal("0.01")
        )

        assert kwh.register_wrap_kwh == Decimal("100000000")
        assert mwh.register_wrap_kwh == Decimal("100000000.000")
        # 100,000 GJ = 100,000,000 / 3.6 kWh
        assert gj.register_wrap_kwh == Decimal("100000.00") * (Decimal(1000) / Decimal("3.6"))
        assert volume.volume_register_wrap_m3 == Decimal("1000000.00")

    def test_vee_counts_the_step_from_the_maximum_to_zero(self):
        # 99,995 → 4 in an hour on a 99,999 kWh register: 4 + 1 (to 0) + 4 = 9 kWh, 9 kW
        # average, above 1.5 × 5.5 kW = 8.25 kW (8 kWh without the step would pass)
        reads = [hourly(0, "99995"), hourly(1, "4")]

        found = [
            (f.code, f.message)
            for f in validate(
                reads=reads,
                previous=None,
                register_max_kwh=Decimal("99999"),
                volume_register_max_m3=Decimal("999.99"),
                register_wrap_kwh=Decimal("100000"),
                volume_register_wrap_m3=Decimal("1000.00"),
                contracted_kw=Decimal("5.5"),
                installed=INSTALLED,
                now=NOW,
            )
        ]

        assert found == [
            ("rollover", "Energy register rolled over after 99995 kWh."),
            ("consumption_above_capacity", "9.0 kW average over 1.0 h; contracted 5.5 kW."),
        ]

    @pytest.mark.django_db
    def test_boundaries_count_the_step_from_the_maximum_to_zero(self, settings):
        # the factory's installation (2020) lies before the horizon as of NOW (2023 by the
        # default's 3 years), so its initial register is not judged against these reads
        settings.READINGS_RETENTION_YEARS = 3
        inst = MeterInstallationFactory(
            meter=HeatMeterFactory(
                register_max=Decimal("99999999"),
                resolution=Decimal("1"),
                volume_register_max=Decimal("999999.99"),
                volume_resolution=Decimal("0.01"),
            ),
        )
        add_readings(
            inst.meter,
            [
                (at(OCT), "99999990", "999999.90"),
                (at(dt.date(2026, 10, 15)), "99999999", "999999.99"),
                (at(dt.date(2026, 10, 16)), "5", "0.03"),
                (at(NOV), "10", "0.10"),
            ],
        )
        vee_run_meter(meter_id=inst.meter_id, start=at(dt.date(2026, 9, 30)), end=at(NOV), now=NOW)

        boundary_registers_ensure(
            connection_ids=[inst.unit.connection_id], dates=[OCT, NOV], refresh=True
        )

        assert set(Reading.objects.values_list("status", flat=True)) == {"valid"}
        oct_e, oct_v, *_ = register(inst.unit.connection, OCT)
        nov_e, nov_v, *_ = register(inst.unit.connection, NOV)
        # 99,999,990 → 99,999,999 (9) → 0 (1) → 10 (10); 999,999.90 → 0 (0.10) → 0.10
        assert (nov_e - oct_e, nov_v - oct_v) == (Decimal("20.000000"), Decimal("0.2000"))

    @pytest.mark.django_db
    def test_a_rollover_after_the_last_read_of_a_removed_meter_adds_the_step(self):
        inst = MeterInstallationFactory(
            meter=HeatMeterFactory(register_max=Decimal("99999"), resolution=Decimal("1")),
            installed_at=at(dt.date(2026, 1, 1)),
            initial_energy_kwh=Decimal("90000"),
            removed_at=at(dt.date(2026, 10, 15)),
            final_energy_kwh=Decimal("20"),
            final_volume_m3=Decimal("10"),
        )
        add_readings(inst.meter, [(at(OCT), "99990", "5")])

        boundary_registers_ensure(connection_ids=[inst.unit.connection_id], dates=[OCT, NOV])

        # 99,990 → 99,999 (9) → 0 (1) → 20 (20): 30 kWh after the 1 October read
        nov = register(inst.unit.connection, NOV)
        assert nov[0] - register(inst.unit.connection, OCT)[0] == Decimal("30.000000")
        assert nov[3] == "removal_register"
