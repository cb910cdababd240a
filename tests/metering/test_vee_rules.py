"""VEE rules are pure: worked examples without a database."""

import datetime as dt
from decimal import Decimal

from metering.vee.rules import RULES, Read, validate

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
INSTALLED = [(dt.datetime(2020, 1, 1, tzinfo=dt.UTC), None)]


def r(hour, energy, volume="10", **extra):
    return Read(
        read_at=T0 + dt.timedelta(hours=hour),
        energy_kwh=Decimal(energy),
        volume_m3=Decimal(volume),
        **extra,
    )


def codes(
    reads,
    previous=None,
    contracted_kw=Decimal("10"),
    register_max=Decimal("99999999"),
    installed=INSTALLED,
    volume_register_max=Decimal("99999999"),
    resolution=Decimal("1"),
    volume_resolution=Decimal("0.0001"),
):
    return [
        (f.read_at.hour, f.code, f.severity)
        for f in validate(
            reads=reads,
            previous=previous,
            register_max_kwh=register_max,
            volume_register_max_m3=volume_register_max,
            register_wrap_kwh=register_max + resolution,
            volume_register_wrap_m3=volume_register_max + volume_resolution,
            contracted_kw=contracted_kw,
            installed=installed,
            now=NOW,
        )
    ]


class TestRules:
    def test_every_rule_has_a_severity(self):
        assert {rule.severity for rule in RULES.values()} <= {"info", "warning", "error"}

    def test_clean_series_has_no_findings(self):
        assert codes([r(0, "100", "10.0"), r(1, "105", "10.1"), r(2, "110", "10.2")]) == []

    def test_register_decrease_is_an_error_and_the_good_read_stays_reference(self):
        assert codes([r(0, "100"), r(1, "90"), r(2, "104")]) == [(1, "register_decrease", "error")]

    def test_rollover_at_register_max_is_not_a_decrease(self):
        found = codes([r(0, "99999"), r(1, "3")], register_max=Decimal("99999"))
        assert found == [(1, "rollover", "info")]

    def test_volume_rollover_at_its_maximum_is_not_a_decrease(self):
        # 999.95 → 0.05 m³ on a 1,000 m³ register: 0.1 m³ in the hour, as the meter says
        found = codes(
            [
                r(0, "100", "999.95"),
                r(1, "105", "0.05", power_kw=Decimal("5"), flow_m3h=Decimal("0.1")),
            ],
            volume_register_max=Decimal("999.99"),
            volume_resolution=Decimal("0.01"),
        )
        assert found == [(1, "volume_rollover", "info")]

    def test_volume_decrease_that_is_no_rollover_is_an_error(self):
        assert codes([r(0, "100", "500.0"), r(1, "105", "400.0")]) == [
            (1, "register_decrease", "error")
        ]
        # low in the range, but from the middle of the register: not a rollover
        assert codes(
            [r(0, "100", "500.0"), r(1, "105", "0.05")], volume_register_max=Decimal("999.99")
        ) == [(1, "register_decrease", "error")]

    def test_energy_rollover_does_not_excuse_a_volume_decrease(self):
        found = codes([r(0, "99999", "50.0"), r(1, "3", "40.0")], register_max=Decimal("99999"))
        assert found == [(1, "register_decrease", "error")]

    def test_consumption_above_contracted_capacity(self):
        # 20 kWh in one hour = 20 kW average > 1.5 × 10 kW
        assert codes([r(0, "100"), r(1, "120")]) == [(1, "consumption_above_capacity", "warning")]
        assert codes([r(0, "100"), r(1, "114")]) == []

    def test_return_above_flow_and_ranges(self):
        assert codes([r(0, "1", flow_temp_c=Decimal("40"), return_temp_c=Decimal("45"))]) == [
            (0, "return_above_flow", "warning")
        ]
        assert codes([r(0, "1", flow_temp_c=Decimal("150"), return_temp_c=Decimal("45"))]) == [
            (0, "temperature_out_of_range", "warning")
        ]

    def test_power_and_flow_must_match_register_deltas(self):
        # 5 kWh and 0.1 m³ in an hour: 5 kW, 0.1 m³/h; reported 40 kW is far off
        ok = [
            r(0, "100", "10.0"),
            r(1, "105", "10.1", power_kw=Decimal("5.5"), flow_m3h=Decimal("0.1")),
        ]
        bad = [
            r(0, "100", "10.0"),
            r(1, "105", "10.1", power_kw=Decimal("40"), flow_m3h=Decimal("0.1")),
        ]
        assert codes(ok) == []
        assert codes(bad) == [(1, "power_inconsistent", "warning")]

    def test_future_and_outside_installation(self):
        future = Read(
            read_at=NOW + dt.timedelta(hours=1), energy_kwh=Decimal(1), volume_m3=Decimal(1)
        )
        assert [c for _, c, _ in codes([future])] == ["future_timestamp"]
        later = [(T0 + dt.timedelta(hours=5), None)]
        assert codes([r(0, "1")], installed=later) == [(0, "outside_installation", "error")]

    def test_fault_status_code(self):
        assert codes([r(0, "1", status_code=16)]) == [(0, "fault_status", "warning")]
        assert codes([r(0, "1", status_code=0)]) == []

    def test_gap_is_detected_against_the_usual_cadence(self):
        reads = [r(h, str(100 + h)) for h in range(5)] + [r(40, "140"), r(41, "141")]
        assert codes(reads) == [(16, "gap", "info")]  # hour 40 = next day 16:00
