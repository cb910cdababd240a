"""How many times a register wrapped between two reads far apart.

Registers alone show a rollover, not how many: VEE counts one wrap.  When the interval
is long enough that a second wrap would still stay within what the meter can plausibly
have counted (energy: VEE's capacity limit, 1.5 × contracted kW; volume: the meter's
nominal flow qp), the count is a guess and the read goes to staff as suspect.  Worked
by hand on a 99,999 kWh register (wrap 100,000 kWh) and a 999.99 m³ one (wrap 1,000 m³).
"""

import datetime as dt
from decimal import Decimal

import pytest

from heatutility.timeutil import local_midnight
from metering.models import BoundaryRegister, Reading, ReadingIssue
from metering.services import vee_run_meter
from metering.vee.rules import RULES, Read, validate
from metering.vee.services import reading_issues_accept
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
INSTALLED = [(dt.datetime(2020, 1, 1, tzinfo=dt.UTC), None)]
CPH = "Europe/Copenhagen"


def read(hours, energy, volume="10"):
    return Read(T0 + dt.timedelta(hours=hours), Decimal(energy), Decimal(volume))


def findings(reads, *, contracted_kw=Decimal("10"), nominal_flow_m3h=None):
    return [
        (f.code, f.severity, f.message)
        for f in validate(
            reads=reads,
            previous=None,
            register_max_kwh=Decimal("99999"),
            volume_register_max_m3=Decimal("999.99"),
            register_wrap_kwh=Decimal("100000"),
            volume_register_wrap_m3=Decimal("1000.00"),
            contracted_kw=contracted_kw,
            nominal_flow_m3h=nominal_flow_m3h,
            installed=INSTALLED,
            now=NOW,
        )
    ]


def codes(reads, **limits):
    return [(code, severity) for code, severity, _ in findings(reads, **limits)]


class TestEnergyRolloverCount:
    def test_a_year_between_reads_could_hide_a_second_wrap(self):
        # 99,000 → 500 over 8,760 h: one wrap is 1,500 kWh, two are 101,500 kWh, and
        # 1.5 × 10 kW × 8,760 h = 131,400 kWh allows both
        found = findings([read(0, "99000"), read(8760, "500")])

        assert found == [
            ("rollover", "info", "Energy register rolled over after 99000 kWh."),
            (
                "rollover_ambiguous",
                "warning",
                "Energy register rolled over after 99000 kWh; 8760 h since "
                "2025-01-01T00:00:00+00:00 allow up to 2 wraps of 100000 kWh within "
                "1.5 × contracted 10 kW: counted as one.",
            ),
        ]
        assert RULES["rollover_ambiguous"].severity == "warning"

    def test_the_limit_is_where_a_second_wrap_fits_the_capacity(self):
        # 101,500 kWh at 15 kW take 6,766.7 h
        assert codes([read(0, "99000"), read(6766, "500")]) == [("rollover", "info")]
        assert codes([read(0, "99000"), read(6767, "500")]) == [
            ("rollover", "info"),
            ("rollover_ambiguous", "warning"),
        ]

    def test_a_single_wrap_an_hour_apart_is_unchanged(self):
        assert findings([read(0, "99995"), read(1, "4")]) == [
            ("rollover", "info", "Energy register rolled over after 99995 kWh."),
        ]

    def test_a_single_wrap_a_month_apart_is_unchanged(self):
        # 720 h × 15 kW = 10,800 kWh: no room for a second wrap of 100,000
        assert codes([read(0, "99000"), read(720, "500")]) == [("rollover", "info")]

    def test_without_a_contracted_kw_there_is_no_limit_and_one_wrap_counts(self):
        assert codes([read(0, "99000"), read(8760, "500")], contracted_kw=None) == [
            ("rollover", "info")
        ]

    def test_a_second_wrap_above_capacity_is_the_capacity_finding_alone(self):
        # 1,500 kWh in an hour is above 15 kW already: a second wrap is out of the question
        assert codes([read(0, "99000"), read(1, "500")]) == [
            ("rollover", "info"),
            ("consumption_above_capacity", "warning"),
        ]


class TestVolumeRolloverCount:
    def test_a_month_at_qp_could_hide_a_second_volume_wrap(self):
        # 990 → 5 m³ over 720 h: one wrap is 15 m³, two are 1,015 m³; qp 1.5 m³/h × 720 h
        # = 1,080 m³ allows both
        reads = [read(0, "1000", "990.00"), read(720, "1100", "5.00")]

        found = findings(reads, nominal_flow_m3h=Decimal("1.5"))

        assert [(code, severity) for code, severity, _ in found] == [
            ("volume_rollover", "info"),
            ("volume_rollover_ambiguous", "warning"),
        ]
        assert "up to 2 wraps of 1000.00 m³ at qp 1.5 m³/h" in found[1][2]

    def test_a_day_at_qp_allows_one_volume_wrap_only(self):
        reads = [read(0, "1000", "990.00"), read(24, "1010", "5.00")]

        assert codes(reads, nominal_flow_m3h=Decimal("1.5")) == [("volume_rollover", "info")]

    def test_without_qp_one_volume_wrap_counts_as_before(self):
        reads = [read(0, "1000", "990.00"), read(720, "1100", "5.00")]

        assert codes(reads) == [("volume_rollover", "info")]


@pytest.mark.django_db
class TestAmbiguousRolloverGoesToStaff:
    def _a_year_between_reads(self):
        # contracted 10 kW (the factory's): 15 kW × 8,760 h fits a second wrap
        inst = MeterInstallationFactory(
            meter=HeatMeterFactory(register_max=Decimal("99999"), resolution=Decimal("1")),
            installed_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        )
        last_year, this_year = (
            local_midnight(dt.date(2025, 11, 1), CPH),
            local_midnight(dt.date(2026, 11, 1), CPH),
        )
        add_readings(inst.meter, [(last_year, "99000", "10"), (this_year, "500", "20")])
        vee_run_meter(meter_id=inst.meter_id, start=last_year, end=this_year, now=NOW)
        return inst, this_year

    def test_the_read_is_suspect_with_an_open_finding_not_valid(self):
        inst, this_year = self._a_year_between_reads()

        assert Reading.objects.get(meter=inst.meter, read_at=this_year).status == "suspect"
        issues = dict(ReadingIssue.objects.filter(meter=inst.meter).values_list("code", "state"))
        assert issues == {"rollover": "accepted", "rollover_ambiguous": "open"}
        # no boundary rests on the suspect read
        assert not BoundaryRegister.objects.filter(
            connection=inst.unit.connection, on=dt.date(2026, 11, 1)
        ).exists()

    def test_once_staff_accept_it_counts_one_wrap(self, admin_user):
        inst, this_year = self._a_year_between_reads()

        reading_issues_accept(
            issues=ReadingIssue.objects.filter(code="rollover_ambiguous"),
            actor=admin_user,
            reason="Meter checked on site: one rollover",
            now=NOW,
        )

        assert Reading.objects.get(meter=inst.meter, read_at=this_year).status == "valid"
        row = BoundaryRegister.objects.get(connection=inst.unit.connection, on=dt.date(2026, 11, 1))
        # 99,000 → 99,999 → 0 → 500: 1,500 kWh
        assert (row.energy_kwh, row.status) == (Decimal("100500.000000"), "actual")

    def test_a_month_between_reads_is_valid_as_before(self):
        inst = MeterInstallationFactory(
            meter=HeatMeterFactory(register_max=Decimal("99999"), resolution=Decimal("1")),
            installed_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        )
        october, november = (
            local_midnight(dt.date(2026, 10, 1), CPH),
            local_midnight(dt.date(2026, 11, 1), CPH),
        )
        add_readings(inst.meter, [(october, "99000", "10"), (november, "500", "20")])

        vee_run_meter(meter_id=inst.meter_id, start=october, end=november, now=NOW)

        assert set(Reading.objects.filter(meter=inst.meter).values_list("status", flat=True)) == {
            "valid"
        }
        assert list(ReadingIssue.objects.values_list("code", "state")) == [("rollover", "accepted")]
        row = BoundaryRegister.objects.get(connection=inst.unit.connection, on=dt.date(2026, 11, 1))
        assert (row.energy_kwh, row.status) == (Decimal("100500.000000"), "actual")
