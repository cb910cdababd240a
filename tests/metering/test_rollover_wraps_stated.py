"""Staff state how many times a register wrapped at an ambiguous rollover.

VEE counts a rollover as one wrap and, where the time since the previous read would fit
another, sends the read to staff (``rollover_ambiguous`` / ``volume_rollover_ambiguous``).
Staff who find more (on site, from the head-end's log) accept the finding with the count;
the boundary registers then count that many wraps at the read.  Worked by hand on a
99,999 kWh register (wrap 100,000 kWh) and a 999.99 m³ one (wrap 1,000.00 m³), on the
factory's 10 kW connection (VEE's limit: 15 kW).
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from heatutility.timeutil import local_midnight
from metering.models import BoundaryRegister, Reading, ReadingIssue
from metering.services import boundary_registers_ensure, vee_run_meter
from metering.vee.services import UnableToAcceptIssue, reading_issues_accept
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.django_db

CPH = "Europe/Copenhagen"
NOW = dt.datetime(2026, 12, 15, tzinfo=dt.UTC)
LAST_YEAR = local_midnight(dt.date(2025, 11, 1), CPH)
THIS_YEAR = local_midnight(dt.date(2026, 11, 1), CPH)
DECEMBER = local_midnight(dt.date(2026, 12, 1), CPH)


def _energy_meter():
    return MeterInstallationFactory(
        meter=HeatMeterFactory(register_max=Decimal("99999"), resolution=Decimal("1")),
        installed_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )


def _a_year_between_reads(*, december=False):
    """99,000 kWh → 500 kWh over 8,760 h: one wrap is 1,500 kWh, two 101,500 kWh; 15 kW
    × 8,760 h = 131,400 kWh fit two, not three.  ``december``: a read a month later."""
    inst = _energy_meter()
    rows = [(LAST_YEAR, "99000", "10"), (THIS_YEAR, "500", "20")]
    if december:
        rows.append((DECEMBER, "600", "21"))
    add_readings(inst.meter, rows)
    vee_run_meter(meter_id=inst.meter_id, start=LAST_YEAR, end=rows[-1][0], now=NOW)
    return inst


def _boundary(inst, on):
    return BoundaryRegister.objects.get(connection=inst.unit.connection, on=on)


def _ambiguous():
    return ReadingIssue.objects.filter(code="rollover_ambiguous")


class TestStatedEnergyWraps:
    def test_two_wraps_stated_count_twice_at_the_read(self, admin_user):
        inst = _a_year_between_reads()

        reading_issues_accept(
            issues=_ambiguous(), actor=admin_user, reason="Logger shows two", now=NOW, wraps=2
        )

        issue = _ambiguous().get()
        assert (issue.state, issue.wraps) == ("accepted", 2)
        assert Reading.objects.get(meter=inst.meter, read_at=THIS_YEAR).status == "valid"
        row = _boundary(inst, dt.date(2026, 11, 1))
        # 99,000 → 99,999 → 0 → 99,999 → 0 → 500: 500 + 2 × 100,000
        assert (row.energy_kwh, row.status) == (Decimal("200500.000000"), "actual")

    def test_the_boundaries_back_to_the_previous_read_and_after_are_refreshed(self, admin_user):
        inst = _a_year_between_reads(december=True)
        # while the read is suspect: interpolated from 2025-11-01 to 2026-12-01 (one wrap)
        boundary_registers_ensure(
            connection_ids=[inst.unit.connection_id],
            dates=[dt.date(2026, 1, 13), dt.date(2026, 12, 1)],
        )
        assert _boundary(inst, dt.date(2026, 12, 1)).energy_kwh == Decimal("100600.000000")

        reading_issues_accept(
            issues=_ambiguous(), actor=admin_user, reason="Logger shows two", now=NOW, wraps=2
        )

        # 2026-01-13 00:00 CET is 1,752 h of the 8,760 after the read of 2025-11-01:
        # 99,000 + (200,500 − 99,000) × 1,752 / 8,760 = 99,000 + 20,300
        january = _boundary(inst, dt.date(2026, 1, 13))
        assert (january.energy_kwh, january.method) == (Decimal("119300.000000"), "interpolation")
        assert _boundary(inst, dt.date(2026, 12, 1)).energy_kwh == Decimal("200600.000000")

    def test_a_rerun_of_validation_keeps_the_stated_count(self, admin_user):
        inst = _a_year_between_reads()
        reading_issues_accept(
            issues=_ambiguous(), actor=admin_user, reason="Logger shows two", now=NOW, wraps=2
        )

        vee_run_meter(meter_id=inst.meter_id, start=LAST_YEAR, end=THIS_YEAR, now=NOW)

        assert list(_ambiguous().values_list("state", "wraps")) == [("accepted", 2)]
        assert Reading.objects.get(meter=inst.meter, read_at=THIS_YEAR).status == "valid"
        assert _boundary(inst, dt.date(2026, 11, 1)).energy_kwh == Decimal("200500.000000")

    def test_estimation_counts_a_stated_count_found_in_the_queue(self):
        inst = _energy_meter()
        add_readings(inst.meter, [(LAST_YEAR, "99000", "10"), (THIS_YEAR, "500", "20")])
        marker = {"meter": inst.meter, "read_at": THIS_YEAR, "created_at": NOW, "message": "x"}
        ReadingIssue.objects.create(code="rollover", severity="info", state="accepted", **marker)
        ReadingIssue.objects.create(
            code="rollover_ambiguous", severity="warning", state="accepted", wraps=3, **marker
        )

        boundary_registers_ensure(
            connection_ids=[inst.unit.connection_id], dates=[dt.date(2026, 11, 1)]
        )

        assert _boundary(inst, dt.date(2026, 11, 1)).energy_kwh == Decimal("300500.000000")


class TestStatedVolumeWraps:
    def test_two_volume_wraps_stated_count_twice(self, admin_user):
        # 990.00 → 5.00 m³ over October (745 h, the DST night included): one wrap is
        # 15 m³, two 1,015 m³; qp 1.5 m³/h × 745 h = 1,117.5 m³ fit two
        inst = MeterInstallationFactory(
            meter=HeatMeterFactory(
                volume_register_max=Decimal("999.99"),
                volume_resolution=Decimal("0.01"),
                nominal_flow_m3h=Decimal("1.5"),
            ),
            installed_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        )
        october = local_midnight(dt.date(2026, 10, 1), CPH)
        add_readings(inst.meter, [(october, "1000", "990.00"), (THIS_YEAR, "1100", "5.00")])
        vee_run_meter(meter_id=inst.meter_id, start=october, end=THIS_YEAR, now=NOW)
        issues = ReadingIssue.objects.filter(code="volume_rollover_ambiguous", state="open")
        assert issues.count() == 1

        reading_issues_accept(issues=issues, actor=admin_user, reason="Two wraps", now=NOW, wraps=2)

        row = _boundary(inst, dt.date(2026, 11, 1))
        # 5.00 + 2 × 1,000.00; the energy register did not roll over
        assert (row.volume_m3, row.energy_kwh) == (Decimal("2005.0000"), Decimal("1100.000000"))


class TestWrapCountRefused:
    def test_more_wraps_than_the_interval_allows_are_refused_and_nothing_accepted(self, admin_user):
        inst = _a_year_between_reads()

        with pytest.raises(UnableToAcceptIssue) as refused:
            reading_issues_accept(
                issues=_ambiguous(), actor=admin_user, reason="Three?", now=NOW, wraps=3
            )

        assert [e.as_dict() for e in refused.value.errors] == [
            {
                "code": "too_many_wraps",
                "field": "wraps",
                "message": f"rollover_ambiguous of meter {inst.meter} at "
                f"{THIS_YEAR.isoformat()}: at most 2 wrap(s) fit the time since "
                f"{LAST_YEAR.isoformat()} within what the meter can count, not 3.",
            }
        ]
        assert list(_ambiguous().values_list("state", "wraps")) == [("open", None)]
        assert Reading.objects.get(meter=inst.meter, read_at=THIS_YEAR).status == "suspect"

    def test_no_wrap_at_all_is_refused(self, admin_user):
        _a_year_between_reads()

        with pytest.raises(UnableToAcceptIssue) as refused:
            reading_issues_accept(
                issues=_ambiguous(), actor=admin_user, reason="None", now=NOW, wraps=0
            )

        assert [(e.code, e.field) for e in refused.value.errors] == [("min_value", "wraps")]

    def test_a_wrap_count_on_another_finding_is_refused(self, admin_user):
        inst = _energy_meter()
        add_readings(inst.meter, [(THIS_YEAR, "100", "1", {"status_code": 4})], status="suspect")
        ReadingIssue.objects.create(
            meter=inst.meter,
            read_at=THIS_YEAR,
            code="fault_status",
            severity="warning",
            message="Meter status code 4.",
            created_at=NOW,
        )

        with pytest.raises(UnableToAcceptIssue) as refused:
            reading_issues_accept(
                issues=ReadingIssue.objects.all(), actor=admin_user, reason="x", now=NOW, wraps=2
            )

        assert [e.as_dict() for e in refused.value.errors] == [
            {
                "code": "not_ambiguous_rollover",
                "field": "wraps",
                "message": f"fault_status of meter {inst.meter} at {THIS_YEAR.isoformat()}: "
                "only an ambiguous rollover, or a register decrease declared a rollover, "
                "takes a wrap count.",
            }
        ]
        assert ReadingIssue.objects.get().state == "open"

    def test_the_database_keeps_wrap_counts_to_accepted_ambiguous_rollovers(self):
        inst = _energy_meter()
        fields = {"meter": inst.meter, "read_at": THIS_YEAR, "created_at": NOW, "message": "x"}

        for code, state in (("fault_status", "accepted"), ("rollover_ambiguous", "open")):
            with pytest.raises(IntegrityError), transaction.atomic():
                ReadingIssue.objects.create(
                    code=code, severity="warning", state=state, wraps=2, **fields
                )
        with pytest.raises(IntegrityError), transaction.atomic():
            ReadingIssue.objects.create(
                code="rollover_ambiguous", severity="warning", state="accepted", wraps=0, **fields
            )


class TestAdminAcceptWraps:
    def test_staff_accept_with_a_wrap_count_from_the_queue(self, admin_client):
        inst = _a_year_between_reads()
        issue = _ambiguous().get()
        data = {"action": "accept_wraps", "_selected_action": [issue.pk]}

        confirm = admin_client.post("/admin/metering/readingissue/", data)
        assert b'name="wraps"' in confirm.content
        admin_client.post(
            "/admin/metering/readingissue/", {**data, "reason": "Logger shows two", "wraps": "2"}
        )

        issue.refresh_from_db()
        assert (issue.state, issue.wraps, issue.resolution_reason) == (
            "accepted",
            2,
            "Logger shows two",
        )
        assert _boundary(inst, dt.date(2026, 11, 1)).energy_kwh == Decimal("200500.000000")

    def test_a_refused_count_shows_on_the_form_and_nothing_is_accepted(self, admin_client):
        _a_year_between_reads()
        issue = _ambiguous().get()

        response = admin_client.post(
            "/admin/metering/readingissue/",
            {
                "action": "accept_wraps",
                "_selected_action": [issue.pk],
                "reason": "Three?",
                "wraps": "3",
            },
        )

        assert response.status_code == 200
        assert "at most 2 wrap(s) fit the time since" in response.content.decode()
        issue.refresh_from_db()
        assert (issue.state, issue.wraps) == ("open", None)
