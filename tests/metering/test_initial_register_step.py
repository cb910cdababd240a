"""The step from an installation's initial register to the meter's first reading.

Consumption of an installation counts from its initial register (DOMAIN.md §2: new
read − new initial), so a first reading below it is a fall of the connection's register
unless the register rolled over (from the top tenth of its range into the bottom
tenth).  Worked by hand: a meter exchanged at 10:00 UTC on 15 October 2026, its
initial register typed 12,345 kWh for 1,234 kWh; it reads 1,300 kWh at midnight on
16 October and 100 kWh a day more, 2,900 kWh on 1 November.  The old meter read
53,000 kWh on 1 October and ended at 54,450 kWh.  With the right initial register the
connection reads 54,450 + 2,900 − 1,234 = 56,116 kWh on 1 November (3,116 kWh in
October); with the typo it would read 45,005 kWh, 7,995 below 1 October.

Before, VEE compared a first reading with nothing (or with the meter's reads in an
earlier installation) and an installation recorded after the readings was not compared
with them: the fall reached billing as a failed bill (``negative_consumption``), or, on
a smaller typo, as consumption silently lost.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.test import TestCase

from billing.services.compute import drafts_compute
from metering.installations import UnableToInstallMeter, meter_install
from metering.meters import meter_update
from metering.models import (
    BoundaryRegister,
    MeterInstallation,
    Reading,
    ReadingIssue,
    RevalidationRequest,
)
from metering.vee.rules import Read, validate
from metering.vee.services import reading_issues_reject, vee_revalidate_meter, vee_run_meter
from tests.billing.factories import contract_with_connection, tariff_version
from tests.customers.factories import BuildingInterfaceUnitFactory, NetworkFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings
from tests.metering.typo_exchange import (
    EXCHANGED,
    NEW_READS,
    NOV,
    NOW,
    OCT,
    RIGHT,
    TYPO,
    boundary,
    daily,
    exchange,
)

LATER = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)  # the rules' examples lie before it


def nightly_vee(meter, rows) -> None:
    """VEE as the nightly run takes a delivery: from a day before its first reading."""
    vee_run_meter(
        meter_id=meter.pk,
        start=rows[0][0] - dt.timedelta(days=1),
        end=rows[-1][0],
        now=NOW,
    )


def findings(reads, *, initials=(), previous=None, register_max="99999999", kw="10", qp=None):
    maximum = Decimal(register_max)
    return [
        (f.read_at, f.code, f.severity)
        for f in validate(
            reads=reads,
            previous=previous,
            register_max_kwh=maximum,
            volume_register_max_m3=Decimal("99999999"),
            register_wrap_kwh=maximum + 1,
            volume_register_wrap_m3=Decimal("100000000"),
            contracted_kw=None if kw is None else Decimal(kw),
            nominal_flow_m3h=None if qp is None else Decimal(qp),
            installed=[(EXCHANGED, None)],
            initials=initials,
            now=LATER,
        )
    ]


def read(days: int, energy: str, volume: str = "10") -> Read:
    return Read(EXCHANGED + dt.timedelta(days=days), Decimal(energy), Decimal(volume))


def initial(energy: str, volume: str = "0") -> Read:
    return Read(EXCHANGED, Decimal(energy), Decimal(volume))


class TestTheRule:
    def test_a_first_read_below_the_initial_register_is_a_decrease_and_so_are_the_next(self):
        reads = [read(1, "1300"), read(2, "1400")]

        assert findings(reads, initials=[initial("12345")]) == [
            (reads[0].read_at, "register_decrease", "error"),
            (reads[1].read_at, "register_decrease", "error"),
        ]

    def test_the_message_points_at_the_installation(self):
        (finding,) = validate(
            reads=[read(1, "1300")],
            previous=None,
            register_max_kwh=Decimal("99999999"),
            volume_register_max_m3=Decimal("99999999"),
            contracted_kw=None,
            installed=[(EXCHANGED, None)],
            initials=[initial("12345")],
            now=NOW,
        )

        assert finding.message.startswith(
            "Energy 12345 → 1300 kWh, volume 0 → 10 m³, below the initial registers of the "
            "installation at 2026-10-15T10:00:00+00:00"
        )

    def test_a_read_below_the_initial_volume_register_is_a_decrease_too(self):
        reads = [read(1, "1300", "10")]

        assert findings(reads, initials=[initial("1234", "100")]) == [
            (reads[0].read_at, "register_decrease", "error")
        ]

    def test_a_first_read_that_rolls_over_from_the_initial_register_is_a_rollover(self):
        reads = [read(1, "30"), read(2, "130")]

        assert findings(reads, initials=[initial("99950")], register_max="99999") == [
            (reads[0].read_at, "rollover", "info")
        ]

    def test_a_first_read_above_the_initial_register_is_clean_however_long_after(self):
        # 30 days after the installation: no gap, and the rate rules wait for two reads
        reads = [read(30, "9300"), read(31, "9400")]

        assert findings(reads, initials=[initial("1234")]) == []

    def test_the_meters_reads_in_an_earlier_installation_are_not_the_reference(self):
        # back from verification with its register reset to 0, installed again
        earlier = Read(EXCHANGED - dt.timedelta(days=90), Decimal("50000"), Decimal("900"))

        assert findings([read(1, "100")], previous=earlier, initials=[initial("0")]) == []

    def test_the_initial_register_does_not_make_the_read_before_a_wrap_a_spike(self):
        # 0 at the installation, 99,000, then 500 after a wrap: 0 and 500 agree only
        # because the register went round once (no contracted kW: no rate rules)
        reads = [read(30, "99000"), read(31, "500")]

        assert findings(reads, initials=[initial("0")], register_max="99999", kw=None) == [
            (reads[1].read_at, "rollover", "info")
        ]


def _connection_billed():
    network = NetworkFactory()
    tariff_version(network=network)
    contract = contract_with_connection(network=network)
    unit = BuildingInterfaceUnitFactory(connection=contract.connection)
    return contract, unit


def _old_meter(unit):
    """The unit's meter since 1 September: 50,000 kWh then, 53,000 on 1 October."""
    old = MeterInstallationFactory(unit=unit, installed_at=dt.datetime(2026, 9, 1, tzinfo=dt.UTC))
    add_readings(old.meter, daily(dt.date(2026, 9, 1), 45, 50000, 500))
    return old


def _october_bill(contract):
    drafts, failures = drafts_compute(
        currency="DKK", account_ids=[contract.account_id], period_start=OCT, period_end=NOV
    )
    return drafts, {account: error.code for account, error in failures.items()}


@pytest.mark.django_db
class TestAnInitialRegisterTypedTooLow:
    """123 kWh typed for 1,234: every read is above it, so nothing falls, but the 1,111
    kWh between them would be billed as consumption at the installation.  What the
    register counted from the initial one is judged once, at the first usable read a day
    or more after the installation, against the capacity limit (1.5 × 10 kW here): an
    installation time recorded late cannot flag an hourly read an hour on."""

    def test_the_first_read_a_day_on_is_flagged_for_staff(self):
        reads = [read(1, "1300"), read(2, "1400")]

        # 1,177 kWh in 24 h: 49 kW on a 10 kW connection
        assert findings(reads, initials=[initial("123")]) == [
            (reads[0].read_at, "initial_register_low", "warning")
        ]

    def test_the_message_says_what_was_counted_and_asks(self):
        (finding,) = validate(
            reads=[read(1, "1300")],
            previous=None,
            register_max_kwh=Decimal("99999999"),
            volume_register_max_m3=Decimal("99999999"),
            contracted_kw=Decimal("10"),
            installed=[(EXCHANGED, None)],
            initials=[initial("123")],
            now=LATER,
        )

        assert finding.message == (
            "49.0 kW average over the 24.0 h since the installation at "
            "2026-10-15T10:00:00+00:00 (initial register 123 kWh, 1177 kWh counted); "
            "contracted 10 kW: is the initial register too low, or the installation time late?"
        )

    def test_the_right_initial_register_is_clean(self):
        assert findings([read(1, "1300"), read(2, "1400")], initials=[initial("1234")]) == []

    def test_reads_within_the_first_day_wait_for_one_a_day_on(self):
        hourly = [
            Read(EXCHANGED + dt.timedelta(hours=h), Decimal(1234 + 5 * h), Decimal("0"))
            for h in (1, 2, 25)
        ]
        # typed 123: 1,116 kWh in the first hour, judged only at hour 25 (46.6 kW)
        assert findings(hourly, initials=[initial("123")]) == [
            (hourly[2].read_at, "initial_register_low", "warning")
        ]

    def test_it_is_judged_in_the_run_that_reads_a_day_on(self):
        """The first reads validated the night before: the reference is one of them."""
        earlier = Read(EXCHANGED + dt.timedelta(hours=14), Decimal("1300"), Decimal("5"))
        later = [read(2, "1400")]

        assert findings(later, initials=[initial("123")], previous=earlier) == [
            (later[0].read_at, "initial_register_low", "warning")
        ]

    def test_without_a_contracted_capacity_nothing_is_judged(self):
        assert findings([read(1, "1300")], initials=[initial("123")], kw=None) == []

    def test_a_rollover_from_the_initial_register_is_not_judged(self):
        reads = [read(1, "30"), read(2, "130")]

        assert findings(reads, initials=[initial("99950")], register_max="99999") == [
            (reads[0].read_at, "rollover", "info")
        ]

    def test_an_initial_volume_register_typed_too_low_is_flagged_against_qp(self):
        """10,000 m³ typed for 10,990: 1,000 m³ in 24 h is 41.7 m³/h through a qp 2.5
        meter, which runs at most 60 m³ a day."""
        reads = [read(1, "1300", "11000"), read(2, "1400", "11010")]

        assert findings(reads, initials=[initial("1234", "10000")], qp="2.5") == [
            (reads[0].read_at, "initial_register_low", "warning")
        ]
        assert findings(reads, initials=[initial("1234", "10990")], qp="2.5") == []
        # without qp the volume has no limit to be judged against
        assert findings(reads, initials=[initial("1234", "10000")]) == []

    def test_one_finding_names_both_registers_typed_too_low(self):
        (finding,) = validate(
            reads=[read(1, "1300", "11000")],
            previous=None,
            register_max_kwh=Decimal("99999999"),
            volume_register_max_m3=Decimal("99999999"),
            contracted_kw=Decimal("10"),
            nominal_flow_m3h=Decimal("2.5"),
            installed=[(EXCHANGED, None)],
            initials=[initial("123", "10000")],
            now=LATER,
        )

        assert finding.message == (
            "49.0 kW average over the 24.0 h since the installation at "
            "2026-10-15T10:00:00+00:00 (initial register 123 kWh, 1177 kWh counted); "
            "contracted 10 kW; 41.67 m³/h average over the 24.0 h since the installation "
            "at 2026-10-15T10:00:00+00:00 (initial volume register 10000 m³, 1000 m³ "
            "counted); nominal flow qp 2.5 m³/h: are the initial registers too low, or the "
            "installation time late?"
        )

    def test_the_nightly_run_flags_the_read_and_staff_see_it(self):
        _contract, unit = _connection_billed()
        _old_meter(unit)
        meter = HeatMeterFactory()
        exchange(unit, meter, Decimal("123"))
        add_readings(meter, NEW_READS)

        nightly_vee(meter, NEW_READS)

        issues = ReadingIssue.objects.filter(meter=meter)
        # midnight of 17 October, 36 h after the exchange: 1,277 kWh, 35.5 kW
        assert list(issues.values_list("read_at", "code", "severity", "state")) == [
            (NEW_READS[1][0], "initial_register_low", "warning", "open")
        ]
        assert Reading.objects.get(meter=meter, read_at=NEW_READS[1][0]).status == "suspect"


@pytest.mark.django_db
class TestReadingsAfterTheInstallation:
    """Recorded first, read afterwards: VEE checks the first reads against the register."""

    def _exchanged_then_read(self, initial_energy_kwh):
        contract, unit = _connection_billed()
        _old_meter(unit)
        meter = HeatMeterFactory()
        exchange(unit, meter, initial_energy_kwh)
        add_readings(meter, NEW_READS)
        nightly_vee(meter, NEW_READS)
        return contract, meter

    def test_the_reads_below_the_initial_register_go_to_staff_rejected(self):
        contract, meter = self._exchanged_then_read(TYPO)

        issues = ReadingIssue.objects.filter(meter=meter)
        assert set(issues.values_list("code", "severity", "state")) == {
            ("register_decrease", "error", "open")
        }
        assert issues.count() == len(NEW_READS)
        assert set(Reading.objects.filter(meter=meter).values_list("status", flat=True)) == {
            "rejected"
        }
        # before: 45,005 kWh, "actual", from the 2,900 kWh read
        assert boundary(contract.connection, NOV) is None

    def test_the_bill_across_the_exchange_waits_for_a_register_not_a_fall(self):
        contract, _ = self._exchanged_then_read(TYPO)

        drafts, failures = _october_bill(contract)

        # before: negative_consumption, with nothing in metering's queue
        assert (drafts, failures) == ([], {contract.account_id: "missing_register"})

    def test_the_right_initial_register_bills_the_consumption_across_the_exchange(self):
        contract, meter = self._exchanged_then_read(RIGHT)

        assert not ReadingIssue.objects.filter(meter=meter).exists()
        assert boundary(contract.connection, NOV) == (Decimal("56116.000000"), "actual")
        drafts, failures = _october_bill(contract)
        assert failures == {}
        (energy,) = [line for line in drafts[0].lines if line.component == "energy"]
        assert energy.quantity == Decimal("3.116")  # 1,450 + 1,666 kWh

    def test_a_new_maximum_that_undoes_the_rollover_from_the_initial_register_is_found(self):
        """99,950 kWh at the installation on a 99,999 kWh register, 30 kWh a day later: a
        rollover (1,680 kWh on 1 November).  As a 999,999 kWh register it is a fall."""
        _, unit = _connection_billed()
        meter = HeatMeterFactory(register_max=Decimal("99999"))
        with TestCase.captureOnCommitCallbacks():
            meter_install(
                meter=meter,
                unit=unit,
                installed_at=EXCHANGED,
                initial_energy_kwh=Decimal("99950"),
            )
        reads = daily(dt.date(2026, 10, 16), 17, 30, 10)
        add_readings(meter, reads)
        nightly_vee(meter, reads)
        assert list(ReadingIssue.objects.filter(meter=meter).values_list("code", "state")) == [
            ("rollover", "accepted")
        ]
        assert boundary(unit.connection, NOV) == (Decimal("1680.000000"), "actual")

        with TestCase.captureOnCommitCallbacks():
            meter_update(meter=meter, values={"register_max": Decimal("999999")})
        vee_revalidate_meter(meter_id=meter.pk, start=EXCHANGED, now=NOW)

        assert set(ReadingIssue.objects.filter(meter=meter).values_list("code", "state")) == {
            ("register_decrease", "open")
        }
        # before: the reads stayed valid and 1 November read 1,630 − 99,950 kWh
        row = BoundaryRegister.objects.get(connection=unit.connection, on=NOV)
        assert (row.energy_kwh, row.status) == (Decimal("1680.000000"), "withdrawn")


@pytest.mark.django_db
class TestInstallationRecordedAfterTheReadings:
    """Read first (rejected as outside any installation), the paperwork back-dated."""

    def _read_before_the_paperwork(self, rows=NEW_READS):
        meter = HeatMeterFactory()
        add_readings(meter, rows)
        nightly_vee(meter, rows)
        assert set(ReadingIssue.objects.filter(meter=meter).values_list("code", flat=True)) == {
            "outside_installation"
        }
        return meter

    def test_an_initial_register_above_the_first_reading_is_refused(self):
        meter = self._read_before_the_paperwork()
        unit = BuildingInterfaceUnitFactory()

        with pytest.raises(UnableToInstallMeter) as refused:
            meter_install(
                meter=meter, unit=unit, installed_at=EXCHANGED, initial_energy_kwh=TYPO, now=NOW
            )

        assert [(e.code, e.field) for e in refused.value.errors] == [
            ("initial_above_first_read", "initial_energy_kwh")
        ]
        assert refused.value.errors[0].message == (
            "The initial energy register 12345 kWh is above the first reading since the "
            "installation, 1300 kWh at 2026-10-15T22:00:00+00:00, and the register did not "
            "roll over: is a digit wrong?"
        )
        assert not MeterInstallation.objects.filter(meter=meter).exists()

    def test_an_exchange_is_refused_the_same_way_and_the_old_meter_stays(self):
        _, unit = _connection_billed()
        old = _old_meter(unit)
        meter = self._read_before_the_paperwork()

        with pytest.raises(UnableToInstallMeter) as refused:
            exchange(unit, meter, TYPO)

        assert [(e.code, e.field) for e in refused.value.errors] == [
            ("initial_above_first_read", "initial_energy_kwh")
        ]
        old.refresh_from_db()
        assert old.removed_at is None
        assert not MeterInstallation.objects.filter(meter=meter).exists()

    def test_each_register_above_its_first_reading_is_an_item(self):
        meter = self._read_before_the_paperwork()

        with pytest.raises(UnableToInstallMeter) as refused:
            meter_install(
                meter=meter,
                unit=BuildingInterfaceUnitFactory(),
                installed_at=EXCHANGED,
                initial_energy_kwh=TYPO,
                initial_volume_m3=Decimal("100"),
                now=NOW,
            )

        assert [(e.code, e.field) for e in refused.value.errors] == [
            ("initial_above_first_read", "initial_energy_kwh"),
            ("initial_above_first_read", "initial_volume_m3"),
        ]

    def test_the_right_initial_register_is_installed_and_the_readings_count(self):
        meter = self._read_before_the_paperwork()
        unit = BuildingInterfaceUnitFactory()

        with TestCase.captureOnCommitCallbacks():
            meter_install(meter=meter, unit=unit, installed_at=EXCHANGED, initial_energy_kwh=RIGHT)
        vee_revalidate_meter(meter_id=meter.pk, start=EXCHANGED, now=NOW)

        assert set(Reading.objects.filter(meter=meter).values_list("status", flat=True)) == {
            "valid"
        }
        assert boundary(unit.connection, NOV) == (Decimal("1666.000000"), "actual")

    def test_a_first_reading_that_rolled_over_from_the_initial_register_is_no_refusal(self):
        meter = HeatMeterFactory(register_max=Decimal("99999"))
        rows = daily(dt.date(2026, 10, 16), 17, 30, 10)
        add_readings(meter, rows)
        nightly_vee(meter, rows)
        unit = BuildingInterfaceUnitFactory()

        with TestCase.captureOnCommitCallbacks():
            meter_install(
                meter=meter, unit=unit, installed_at=EXCHANGED, initial_energy_kwh=Decimal("99950")
            )
        vee_revalidate_meter(meter_id=meter.pk, start=EXCHANGED, now=NOW)

        assert boundary(unit.connection, NOV) == (Decimal("1680.000000"), "actual")

    def test_a_reading_staff_rejected_is_not_the_first_reading(self, admin_user):
        rows = [(NEW_READS[0][0], "13", "10"), *NEW_READS[1:]]  # a garbled 1,300 kWh
        meter = self._read_before_the_paperwork(rows)
        reading_issues_reject(
            issues=ReadingIssue.objects.filter(meter=meter, read_at=rows[0][0]),
            actor=admin_user,
            reason="garbled",
            now=NOW,
        )

        installation = meter_install(
            meter=meter,
            unit=BuildingInterfaceUnitFactory(),
            installed_at=EXCHANGED,
            initial_energy_kwh=RIGHT,
        )

        assert installation.initial_energy_kwh == RIGHT


@pytest.mark.django_db
def test_an_installation_older_than_the_readings_online_is_not_checked_against_them(settings):
    """Readings before the retention horizon (1 January 2023 in 2026) may be archived,
    and the register may have rolled over among them: the first read online is no first
    read of an installation begun in 2020."""
    settings.READINGS_RETENTION_YEARS = 3  # the default, not the suite's (tests.retention)
    installation = MeterInstallationFactory(
        meter=HeatMeterFactory(register_max=Decimal("99999")),
        installed_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        initial_energy_kwh=Decimal("50000"),
    )
    add_readings(installation.meter, NEW_READS)

    nightly_vee(installation.meter, NEW_READS)

    assert not ReadingIssue.objects.filter(meter=installation.meter).exists()


@pytest.mark.django_db
def test_a_back_dated_installation_is_checked_against_the_readings_online_as_of_now(settings):
    """The same installation, recorded in November 2026 and again as if in 2030, when
    October 2026 lies before the horizon (1 January 2027) and its readings may be
    archived: then the first read online is no first read of the installation."""
    settings.READINGS_RETENTION_YEARS = 3  # the default, not the suite's (tests.retention)
    meter = HeatMeterFactory()
    add_readings(meter, NEW_READS)
    install = {"meter": meter, "installed_at": EXCHANGED, "initial_energy_kwh": TYPO}

    with pytest.raises(UnableToInstallMeter) as refused:
        meter_install(unit=BuildingInterfaceUnitFactory(), **install, now=NOW)
    in_2030 = meter_install(
        unit=BuildingInterfaceUnitFactory(),
        **install,
        now=dt.datetime(2030, 3, 1, tzinfo=dt.UTC),
    )

    assert [e.code for e in refused.value.errors] == ["initial_above_first_read"]
    assert in_2030.initial_energy_kwh == TYPO
    assert RevalidationRequest.objects.get(meter=meter).requested_at == dt.datetime(
        2030, 3, 1, tzinfo=dt.UTC
    )
