"""VEE keeps boundary registers and its own verdicts current when readings change.

Late reads, staff edits, accepts and rejects refresh every boundary whose estimate can
depend on them (not a fixed window of days); a rerun takes back VEE's own verdicts once
their reason is gone, never a staff decision; installation changes revalidate.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import TestCase
from django.utils import timezone

from heatutility.timeutil import local_midnight
from metering.installations import meter_exchange, meter_remove
from metering.models import BoundaryRegister, Reading, ReadingIssue
from metering.selectors import boundary_registers_updated_since
from metering.services import (
    boundary_registers_ensure,
    reading_edit,
    vee_run_meter,
    vee_run_pending,
)
from metering.vee.services import reading_issues_accept, reading_issues_reject
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import MeterVendorFactory, add_readings, deliver_json

pytestmark = pytest.mark.django_db
CPH = "Europe/Copenhagen"
D = dt.date


def at(day, hour=0):
    return local_midnight(day, CPH) + dt.timedelta(hours=hour)


def register(connection, day):
    b = BoundaryRegister.objects.get(connection=connection, on=day)
    return b.energy_kwh, b.status, b.method


class TestLateReads:
    def test_late_read_after_a_gap_replaces_the_last_year_estimate(self):
        vendor = MeterVendorFactory()
        inst = MeterInstallationFactory(meter__vendor=vendor)
        conn = inst.unit.connection
        add_readings(
            inst.meter,
            [
                (at(D(2025, 10, 20)), "0", "0"),
                (at(D(2025, 11, 20)), "3100", "31"),
                (at(D(2026, 10, 20)), "10000", "100"),
            ],
        )
        boundary_registers_ensure(connection_ids=[conn.id], dates=[D(2026, 11, 1)])
        assert register(conn, D(2026, 11, 1)) == (
            Decimal("11202.550336"),
            "estimated",
            "last_year",
        )
        since = timezone.now()

        deliver_json(
            vendor,
            inst.meter,
            [(at(D(2026, 11, 20)), "10600", "106")],
            received_at=at(D(2026, 11, 21)),
        )
        vee_run_pending(now=at(D(2026, 11, 21), 2))

        # 20 Oct → 1 Nov is 289 h (25 Oct has 25 h) of the 745 h to 20 Nov
        assert register(conn, D(2026, 11, 1)) == (
            Decimal("10232.751678"),
            "estimated",
            "interpolation",
        )
        assert (conn.id, D(2026, 11, 1)) in boundary_registers_updated_since(since=since)

    def test_late_read_between_quarterly_reads_reinterpolates_earlier_month_starts(self):
        vendor = MeterVendorFactory()
        inst = MeterInstallationFactory(meter__vendor=vendor)
        conn = inst.unit.connection
        add_readings(
            inst.meter, [(at(D(2026, 1, 1)), "1000", "10"), (at(D(2026, 4, 1)), "10000", "100")]
        )
        boundary_registers_ensure(connection_ids=[conn.id], dates=[D(2026, 2, 1), D(2026, 3, 1)])
        assert register(conn, D(2026, 2, 1))[0] == Decimal("4101.435850")

        deliver_json(
            vendor, inst.meter, [(at(D(2026, 2, 15)), "3000", "30")], received_at=at(D(2026, 4, 2))
        )
        vee_run_pending(now=at(D(2026, 4, 2), 2))

        # 1 Feb: 744 h of the 1,080 h from 1 Jan to 15 Feb;
        # 1 Mar: 336 h of the 1,079 h from 15 Feb to 1 Apr (29 Mar has 23 h)
        assert register(conn, D(2026, 2, 1)) == (
            Decimal("2377.777778"),
            "estimated",
            "interpolation",
        )
        assert register(conn, D(2026, 3, 1)) == (
            Decimal("5179.796108"),
            "estimated",
            "interpolation",
        )

    def test_an_actual_read_equal_to_the_estimate_makes_the_register_actual(self):
        vendor = MeterVendorFactory()
        inst = MeterInstallationFactory(meter__vendor=vendor)
        conn = inst.unit.connection
        add_readings(
            inst.meter, [(at(D(2026, 1, 1)), "1000", "10"), (at(D(2026, 4, 1)), "10000", "100")]
        )
        boundary_registers_ensure(connection_ids=[conn.id], dates=[D(2026, 2, 1)])
        estimate = BoundaryRegister.objects.get(connection=conn, on=D(2026, 2, 1))
        assert (estimate.energy_kwh, estimate.status) == (Decimal("4101.435850"), "estimated")

        # read at the boundary's midnight, the very values estimated
        deliver_json(
            vendor,
            inst.meter,
            [(at(D(2026, 2, 1)), "4101.43585", str(estimate.volume_m3))],
            received_at=at(D(2026, 4, 2)),
        )
        vee_run_pending(now=at(D(2026, 4, 2), 2))

        # the same value, now actual: what bills and recomputations show from now on
        assert register(conn, D(2026, 2, 1)) == (Decimal("4101.435850"), "actual", "reading")


class TestStaffChanges:
    def test_edit_of_a_sparse_read_refreshes_every_month_start_it_feeds(self):
        clerk = User.objects.create_user("clerk")
        inst = MeterInstallationFactory()
        conn = inst.unit.connection
        add_readings(
            inst.meter, [(at(D(2026, 1, 1)), "1000", "10"), (at(D(2026, 4, 1)), "10000", "100")]
        )
        boundary_registers_ensure(connection_ids=[conn.id], dates=[D(2026, 2, 1), D(2026, 3, 1)])
        assert register(conn, D(2026, 2, 1))[0] == Decimal("4101.435850")
        since = timezone.now()

        reading_edit(
            meter_id=inst.meter_id,
            read_at=at(D(2026, 4, 1)),
            values={"energy_kwh": Decimal("4000")},
            actor=clerk,
            reason="typo: the register showed 4000",
            now=at(D(2026, 4, 2)),
        )

        # 744 h and 1,416 h of the 2,159 h from 1 Jan to 1 Apr
        assert register(conn, D(2026, 2, 1)) == (
            Decimal("2033.811950"),
            "estimated",
            "interpolation",
        )
        assert register(conn, D(2026, 3, 1)) == (
            Decimal("2967.577582"),
            "estimated",
            "interpolation",
        )
        assert {(conn.id, D(2026, 2, 1)), (conn.id, D(2026, 3, 1))} <= set(
            boundary_registers_updated_since(since=since)
        )

    def test_accepting_a_suspect_read_brings_it_into_the_boundaries(self):
        clerk = User.objects.create_user("clerk")
        inst = MeterInstallationFactory()
        conn = inst.unit.connection
        add_readings(
            inst.meter,
            [
                (at(D(2026, 1, 1)), "1000", "10"),
                (
                    at(D(2026, 2, 15)),
                    "4000",
                    "40",
                    {"flow_temp_c": Decimal("40"), "return_temp_c": Decimal("50")},
                ),
                (at(D(2026, 4, 1)), "10000", "100"),
            ],
        )
        vee_run_meter(
            meter_id=inst.meter_id,
            start=at(D(2026, 1, 1)),
            end=at(D(2026, 4, 1)),
            now=at(D(2026, 4, 2)),
        )
        boundary_registers_ensure(connection_ids=[conn.id], dates=[D(2026, 2, 1), D(2026, 3, 1)])
        assert register(conn, D(2026, 3, 1))[0] == Decimal("6902.732747")  # across the suspect

        reading_issues_accept(
            issues=ReadingIssue.objects.filter(code="return_above_flow"),
            actor=clerk,
            reason="sensors swapped, energy register fine",
            now=at(D(2026, 4, 3)),
        )

        assert register(conn, D(2026, 2, 1))[0] == Decimal("3066.666667")
        assert register(conn, D(2026, 3, 1))[0] == Decimal("5868.396664")

    def test_rejecting_a_read_takes_it_out_of_the_boundaries(self):
        clerk = User.objects.create_user("clerk")
        inst = MeterInstallationFactory()
        conn = inst.unit.connection
        daily = [(at(D(2026, 1, d)), str(1000 + 100 * (d - 26)), "10") for d in range(26, 32)]
        after_gap = [(at(D(2026, 2, d)), str(1500 + 100 * d), "20") for d in range(5, 9)]
        # after four silent days the meter reports 1600 (it was 1800): a gap, not an error
        add_readings(inst.meter, [*daily, (at(D(2026, 2, 4)), "1600", "15"), *after_gap])
        vee_run_meter(
            meter_id=inst.meter_id,
            start=at(D(2026, 1, 26)),
            end=at(D(2026, 2, 8)),
            now=at(D(2026, 2, 9)),
        )
        boundary_registers_ensure(connection_ids=[conn.id], dates=[D(2026, 2, 1)])
        assert register(conn, D(2026, 2, 1))[0] == Decimal("1525.000000")

        reading_issues_reject(
            issues=ReadingIssue.objects.filter(code="gap"),
            actor=clerk,
            reason="register read wrong after the outage",
            now=at(D(2026, 2, 9)),
        )

        # 24 h of the 120 h from 31 Jan (1500) to 5 Feb (2000)
        assert register(conn, D(2026, 2, 1)) == (
            Decimal("1600.000000"),
            "estimated",
            "interpolation",
        )


class TestRevalidation:
    def test_rejecting_a_spike_makes_the_good_reads_after_it_valid_again(self):
        """Needs rules.validate to skip a rejected read as the reference of the next."""
        clerk = User.objects.create_user("clerk")
        inst = MeterInstallationFactory()
        conn = inst.unit.connection
        rows = [(at(D(2026, 10, 31), h), str(1000 + 5 * h), str(10 + h / 100)) for h in range(49)]
        spike_at = rows[10][0]
        rows[10] = (spike_at, "990000", rows[10][2])
        add_readings(inst.meter, rows)
        window = {
            "meter_id": inst.meter_id,
            "start": at(D(2026, 10, 31)),
            "end": at(D(2026, 11, 2)),
        }
        vee_run_meter(**window, now=at(D(2026, 11, 3)))
        reading_issues_reject(
            issues=ReadingIssue.objects.filter(read_at=spike_at),
            actor=clerk,
            reason="garbled telegram",
            now=at(D(2026, 11, 3)),
        )

        vee_run_meter(**window, now=at(D(2026, 11, 3), 1))

        statuses = dict(Reading.objects.filter(meter=inst.meter).values_list("read_at", "status"))
        assert statuses.pop(spike_at) == "rejected"  # staff decision stands
        assert set(statuses.values()) == {"valid"}
        assert len(statuses) == 48
        assert not ReadingIssue.objects.filter(code="register_decrease").exists()
        assert register(conn, D(2026, 11, 1)) == (Decimal("1120"), "actual", "reading")

    def test_rerun_takes_back_rejections_whose_finding_is_gone(self):
        """Reads rejected after a spike (as the rule before ``register_spike`` left them)
        are valid again once the spike is rejected and VEE reruns."""
        clerk = User.objects.create_user("clerk")
        inst = MeterInstallationFactory()
        conn = inst.unit.connection
        rows = [(at(D(2026, 10, 31), h), str(1000 + 5 * h), str(10 + h / 100)) for h in range(49)]
        spike_at = rows[10][0]
        add_readings(inst.meter, rows[:10])
        add_readings(inst.meter, [(spike_at, "990000", rows[10][2])], status="suspect")
        add_readings(inst.meter, rows[11:], status="rejected")
        ReadingIssue.objects.bulk_create(
            [
                ReadingIssue(
                    meter=inst.meter,
                    read_at=spike_at,
                    code="consumption_above_capacity",
                    severity="warning",
                    message="988950 kW",
                    created_at=at(D(2026, 11, 3)),
                ),
                *(
                    ReadingIssue(
                        meter=inst.meter,
                        read_at=read_at,
                        code="register_decrease",
                        severity="error",
                        message="below 990000",
                        created_at=at(D(2026, 11, 3)),
                    )
                    for read_at, *_ in rows[11:]
                ),
            ]
        )
        reading_issues_reject(
            issues=ReadingIssue.objects.filter(read_at=spike_at),
            actor=clerk,
            reason="garbled telegram",
            now=at(D(2026, 11, 3)),
        )

        vee_run_meter(
            meter_id=inst.meter_id,
            start=at(D(2026, 10, 31)),
            end=at(D(2026, 11, 2)),
            now=at(D(2026, 11, 3), 1),
        )

        statuses = dict(Reading.objects.filter(meter=inst.meter).values_list("read_at", "status"))
        assert statuses.pop(spike_at) == "rejected"
        assert set(statuses.values()) == {"valid"}
        assert not ReadingIssue.objects.filter(code="register_decrease").exists()
        assert register(conn, D(2026, 11, 1)) == (Decimal("1120"), "actual", "reading")

    def test_rerun_takes_back_its_own_verdicts_but_not_staff_decisions(self):
        clerk = User.objects.create_user("clerk")
        inst = MeterInstallationFactory(unit__connection__contracted_capacity_kw=Decimal("2"))
        conn = inst.unit.connection
        hot = {"flow_temp_c": Decimal("40"), "return_temp_c": Decimal("50")}
        add_readings(
            inst.meter,
            [
                (at(D(2026, 11, 1), 0), "100", "1"),
                (at(D(2026, 11, 1), 1), "105", "1.05"),
                (at(D(2026, 11, 1), 2), "110", "1.1", hot),
                (at(D(2026, 11, 1), 3), "115", "1.15"),
            ],
        )
        window = {"meter_id": inst.meter_id, "start": at(D(2026, 11, 1)), "end": at(D(2026, 11, 2))}
        vee_run_meter(**window, now=at(D(2026, 11, 2)))  # 5 kW against 2 kW contracted
        reading_issues_accept(
            issues=ReadingIssue.objects.filter(code="return_above_flow"),
            actor=clerk,
            reason="sensors swapped",
            now=at(D(2026, 11, 2)),
        )
        reading_issues_reject(
            issues=ReadingIssue.objects.filter(read_at=at(D(2026, 11, 1), 3)),
            actor=clerk,
            reason="not plausible",
            now=at(D(2026, 11, 2)),
        )
        conn.contracted_capacity_kw = Decimal("10")  # the contract was entered wrong
        conn.save(update_fields=["contracted_capacity_kw"])

        vee_run_meter(**window, now=at(D(2026, 11, 2), 1))

        statuses = list(
            Reading.objects.filter(meter=inst.meter)
            .order_by("read_at")
            .values_list("status", flat=True)
        )
        assert statuses == ["valid", "valid", "valid", "rejected"]
        assert set(ReadingIssue.objects.values_list("read_at", "code", "state")) == {
            (at(D(2026, 11, 1), 2), "return_above_flow", "accepted"),
            (at(D(2026, 11, 1), 3), "consumption_above_capacity", "rejected"),
        }

    def _exchange_before_paperwork(self):
        inst = MeterInstallationFactory(installed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        add_readings(
            inst.meter, [(at(D(2026, 10, 1)), "4000", "40"), (at(D(2026, 10, 15)), "4336", "43.36")]
        )
        new = HeatMeterFactory()
        # the new meter delivers before the exchange is recorded: 24 kWh a day
        add_readings(
            new,
            [
                (at(D(2026, 10, 15)) + dt.timedelta(days=d), str(24 * d), str(d))
                for d in range(1, 20)
            ],
        )
        vee_run_meter(
            meter_id=new.pk,
            start=at(D(2026, 10, 15)),
            end=at(D(2026, 11, 5)),
            now=at(D(2026, 11, 5)),
        )
        assert set(Reading.objects.filter(meter=new).values_list("status", flat=True)) == {
            "rejected"
        }
        exchange = {
            "unit": inst.unit,
            "new_meter": new,
            "exchanged_at": at(D(2026, 10, 15), 1),
            "old_final_energy_kwh": Decimal("4337"),
            "old_final_volume_m3": Decimal("43.37"),
        }
        return inst.unit.connection, new, exchange

    def test_recording_an_exchange_revalidates_the_new_meters_reads(self):
        conn, new, exchange = self._exchange_before_paperwork()

        with TestCase.captureOnCommitCallbacks(execute=True):
            meter_exchange(**exchange)

        assert set(Reading.objects.filter(meter=new).values_list("status", flat=True)) == {"valid"}
        assert not ReadingIssue.objects.filter(meter=new, code="outside_installation").exists()
        # 4,337 on the old meter, then the new one's 408 at 31 Oct 23:00 local + 1 h of 24
        assert register(conn, D(2026, 11, 1)) == (
            Decimal("4746.000000"),
            "estimated",
            "interpolation",
        )

    def test_nightly_vee_revalidates_reads_of_an_installation_recorded_since(self):
        """Should the re-validation task be lost, the nightly run catches up."""
        conn, new, exchange = self._exchange_before_paperwork()
        meter_exchange(**exchange)  # its on-commit task never runs

        vee_run_pending(now=at(D(2026, 11, 6), 2))

        assert set(Reading.objects.filter(meter=new).values_list("status", flat=True)) == {"valid"}
        assert register(conn, D(2026, 11, 1))[0] == Decimal("4746.000000")

    def test_removal_rejects_the_reads_after_it(self):
        inst = MeterInstallationFactory(installed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        add_readings(
            inst.meter,
            [
                (at(D(2026, 10, 1)) + dt.timedelta(days=d), str(1000 + 24 * d), str(d))
                for d in range(5)
            ],
        )
        vee_run_meter(
            meter_id=inst.meter_id,
            start=at(D(2026, 10, 1)),
            end=at(D(2026, 10, 6)),
            now=at(D(2026, 10, 6)),
        )

        with TestCase.captureOnCommitCallbacks(execute=True):
            meter_remove(
                installation=inst,
                removed_at=at(D(2026, 10, 3), 12),
                final_energy_kwh=Decimal("1060"),
                final_volume_m3=Decimal("2.5"),
            )

        statuses = list(
            Reading.objects.filter(meter=inst.meter)
            .order_by("read_at")
            .values_list("status", flat=True)
        )
        assert statuses == ["valid", "valid", "valid", "rejected", "rejected"]


@pytest.mark.django_db
def test_nightly_vee_rejects_the_reads_after_a_removal_whose_task_was_lost():
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
    meter_remove(  # its on-commit re-validation task never runs
        installation=inst,
        removed_at=at(D(2026, 10, 3), 12),
        final_energy_kwh=Decimal("1060"),
        final_volume_m3=Decimal("2.5"),
    )

    vee_run_pending(now=at(D(2026, 10, 7), 2))

    statuses = list(
        Reading.objects.filter(meter=inst.meter)
        .order_by("read_at")
        .values_list("status", flat=True)
    )
    assert statuses == ["valid", "valid", "valid", "rejected", "rejected"]


@pytest.mark.django_db
def test_a_spike_that_ended_the_last_run_is_judged_with_the_next_reads():
    inst = MeterInstallationFactory(installed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    week = dt.timedelta(days=7)
    first = at(D(2026, 9, 1))
    # weekly reads, the third garbled high; nothing after it yet to tell it is the odd one
    add_readings(inst.meter, [(first, "1000", "10"), (first + week, "1100", "11")])
    add_readings(inst.meter, [(first + 2 * week, "2600", "12")])
    vee_run_meter(meter_id=inst.meter_id, start=first, end=first + 2 * week, now=first + 15 * week)
    assert Reading.objects.get(meter=inst.meter, read_at=first + 2 * week).status == "valid"
    # the next week's read arrives and the nightly window starts a day before it
    add_readings(inst.meter, [(first + 3 * week, "1300", "13")])

    vee_run_meter(
        meter_id=inst.meter_id,
        start=first + 3 * week - dt.timedelta(days=1),
        end=first + 3 * week,
        now=first + 15 * week,
    )

    statuses = dict(Reading.objects.filter(meter=inst.meter).values_list("read_at", "status"))
    assert statuses[first + 3 * week] == "valid"  # not a decrease from the spike
    assert statuses[first + 2 * week] == "rejected"
    assert ReadingIssue.objects.filter(read_at=first + 2 * week, code="register_spike").exists()


def test_a_value_whose_only_read_is_rejected_is_withdrawn_from_billing():
    """Rejected, with no read after it and no year before: nothing supports an estimate.
    The value stays for the record, marked withdrawn (billing re-rates what used it and
    no longer sees it), and comes back as soon as a read supports one."""
    from metering.selectors import boundary_register_rows

    clerk = User.objects.create_user("clerk")
    inst = MeterInstallationFactory(installed_at=at(D(2026, 10, 1)))
    conn = inst.unit.connection
    add_readings(
        inst.meter,
        [
            (at(D(2026, 10, 1)), "0", "0"),
            (at(D(2026, 10, 31), 12), "900", "20"),
            # return above flow: suspect, and staff reject it
            (at(D(2026, 11, 1)), "1000", "22", {"flow_temp_c": 40, "return_temp_c": 50}),
        ],
    )
    # billed from the read before validation ran (a month is billed the next morning)
    boundary_registers_ensure(connection_ids=[conn.id], dates=[D(2026, 11, 1)])
    assert register(conn, D(2026, 11, 1))[:2] == (Decimal("1000.000000"), "actual")
    since = timezone.now()

    vee_run_meter(
        meter_id=inst.meter_id,
        start=at(D(2026, 10, 1)),
        end=at(D(2026, 11, 1)),
        now=at(D(2026, 11, 2)),
    )
    reading_issues_reject(
        issues=ReadingIssue.objects.filter(code="return_above_flow"),
        actor=clerk,
        reason="sensors swapped",
        now=at(D(2026, 11, 2)),
    )

    assert register(conn, D(2026, 11, 1)) == (Decimal("1000.000000"), "withdrawn", "no usable read")
    assert boundary_register_rows(connection_ids=[conn.id], dates=[D(2026, 11, 1)]) == []
    assert (conn.id, D(2026, 11, 1)) in boundary_registers_updated_since(since=since)
    # a later read supports an interpolation: the value is back, estimated
    add_readings(inst.meter, [(at(D(2026, 11, 1), 12), "1100", "24")])
    boundary_registers_ensure(connection_ids=[conn.id], dates=[D(2026, 11, 1)])
    energy, status, _method = register(conn, D(2026, 11, 1))
    assert status == "estimated"
    assert energy == Decimal("1000.000000")  # 900 + 12 h of the 24 h to 1100
