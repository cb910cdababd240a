"""A change of a meter's register settings rechecks what was decided under the old ones.

Staff decisions on findings stand where the new settings still allow them.  An
accepted ambiguous rollover whose wrap count the new maximum (or qp) no longer allows
is reopened by the revalidation, saying why and what was decided, so staff decide
again; until they do it counts one wrap and holds the bills across it, as any undecided
one.  A new maximum under which a past removal's final register no longer rolls over
from the last reading is refused, as a maximum below a stored register is.

Worked by hand on a 99,999 kWh register (1 kWh steps: a wrap adds 100,000 kWh) on the
factory's 10 kW connection (VEE's limit 15 kW): 99,000 kWh at 1 January 2026, 500 kWh at
1 November, 600 kWh at 1 December.  From January to November are 304 days, 7,296 h:
15 kW fit 109,440 kWh.  One wrap is 1,500 kWh, two 101,500 kWh: both fit, so the
rollover is ambiguous, and staff found two (1 November: 500 + 2 × 100,000 = 200,500).
As a 109,999 kWh register (a wrap of 110,000 kWh) one wrap is 11,500 kWh and two
121,500 kWh: only one fits.  As a 999,999 kWh register 99,000 is not in the top tenth
of the range: the fall to 500 is a decrease, no rollover.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.test import TestCase

from heatutility.timeutil import local_midnight
from metering.installations import meter_remove
from metering.meters import UnableToChangeMeter, meter_update
from metering.models import (
    BoundaryRegister,
    HeatMeter,
    Reading,
    ReadingIssue,
    RevalidationRequest,
)
from metering.selectors import rollovers_undecided
from metering.services import boundary_registers_ensure, vee_run_meter
from metering.vee.services import (
    UnableToAcceptIssue,
    reading_issues_accept,
    reading_issues_reject,
    vee_revalidate_meter,
)
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.django_db

CPH = "Europe/Copenhagen"
D = dt.date
INSTALLED = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 12, 15, tzinfo=dt.UTC)
LATER = dt.datetime(2026, 12, 16, 8, tzinfo=dt.UTC)  # when the revalidation runs


def at(day):
    return local_midnight(day, CPH)


JAN, NOV, DEC = at(D(2026, 1, 1)), at(D(2026, 11, 1)), at(D(2026, 12, 1))


def _accepted(actor, *, wraps=2):
    """The meter of the module docstring, read and validated; staff accepted the
    ambiguous rollover at 1 November with ``wraps`` (None: as VEE counted, one)."""
    inst = MeterInstallationFactory(
        meter=HeatMeterFactory(register_max=Decimal("99999"), resolution=Decimal("1")),
        installed_at=INSTALLED,
    )
    add_readings(inst.meter, [(JAN, "99000", "10"), (NOV, "500", "20"), (DEC, "600", "21")])
    vee_run_meter(meter_id=inst.meter_id, start=JAN, end=DEC, now=NOW)
    reading_issues_accept(
        issues=_ambiguous(), actor=actor, reason="Logger shows two", now=NOW, wraps=wraps
    )
    return inst


def _ambiguous(code="rollover_ambiguous"):
    return ReadingIssue.objects.filter(code=code)


def _settings_changed(inst, **values):
    """``meter_update`` with ``values``, then the revalidation it queued, run at LATER."""
    with TestCase.captureOnCommitCallbacks():  # the task is run here, at a known time
        meter_update(meter=inst.meter, values=values)
    (since,) = RevalidationRequest.objects.filter(meter=inst.meter).values_list("since", flat=True)
    vee_revalidate_meter(meter_id=inst.meter_id, start=since, now=LATER)


def _decision(code="rollover_ambiguous"):
    issue = _ambiguous(code).get()
    return issue.state, issue.wraps, issue.resolved_by, issue.resolved_at


def _status(inst, moment):
    return Reading.objects.get(meter=inst.meter, read_at=moment).status


def _energy(inst, day):
    b = BoundaryRegister.objects.get(connection=inst.unit.connection, on=day)
    return b.energy_kwh, b.status, b.method


def _held_across(inst):
    """The undecided rollovers billing holds the connection's bills for: (register,
    since, read)."""
    return [
        (register, since, read)
        for _serial, register, since, read, _zone in rollovers_undecided(
            connection_ids=[inst.unit.connection_id]
        ).get(inst.unit.connection_id, [])
    ]


class TestAcceptedRolloverAfterANewMaximum:
    def test_a_count_the_new_maximum_no_longer_allows_is_reopened_for_staff(self, admin_user):
        inst = _accepted(admin_user)
        assert _energy(inst, D(2026, 12, 1)) == (Decimal("200600.000000"), "actual", "reading")

        _settings_changed(inst, register_max=Decimal("109999"))

        assert _decision() == ("open", None, None, LATER)
        assert _ambiguous().get().resolution_reason == (
            "Reopened by revalidation: with the meter's register settings at most 1 wrap(s) "
            f"fit the time since {JAN.isoformat()}, not 2; decide again (was accepted with 2 "
            f"wrap(s) by admin at {NOW.isoformat()}: Logger shows two)."
        )
        assert _status(inst, NOV) == "suspect"
        assert _held_across(inst) == [("energy", JAN, NOV)]
        # one wrap of 110,000 kWh, not the two staff stated: 600 + 110,000
        assert _energy(inst, D(2026, 12, 1)) == (Decimal("110600.000000"), "actual", "reading")
        assert _energy(inst, D(2026, 11, 1))[1:] == ("estimated", "interpolation")

    def test_staff_decide_again_within_what_the_new_maximum_allows(self, admin_user):
        inst = _accepted(admin_user)
        _settings_changed(inst, register_max=Decimal("109999"))

        with pytest.raises(UnableToAcceptIssue) as refused:
            reading_issues_accept(
                issues=_ambiguous(), actor=admin_user, reason="Two", now=LATER, wraps=2
            )
        reading_issues_accept(issues=_ambiguous(), actor=admin_user, reason="One", now=LATER)
        vee_revalidate_meter(meter_id=inst.meter_id, start=INSTALLED, now=LATER)

        assert [e.code for e in refused.value.errors] == ["too_many_wraps"]
        assert _decision() == ("accepted", None, admin_user, LATER)
        assert _status(inst, NOV) == "valid"
        assert _held_across(inst) == []
        assert _energy(inst, D(2026, 11, 1)) == (Decimal("110500.000000"), "actual", "reading")

    def test_a_count_the_new_maximum_still_allows_stands(self, admin_user):
        # 99,499 kWh (a wrap of 99,500): one wrap is 1,000 kWh, two 100,500 kWh; both fit
        inst = _accepted(admin_user)

        _settings_changed(inst, register_max=Decimal("99499"))

        assert _decision() == ("accepted", 2, admin_user, NOW)
        assert _ambiguous().get().resolution_reason == "Logger shows two"
        assert _status(inst, NOV) == "valid"
        assert _held_across(inst) == []
        assert _energy(inst, D(2026, 11, 1)) == (Decimal("199500.000000"), "actual", "reading")

    def test_the_reopened_finding_stays_open_when_validation_runs_again(self, admin_user):
        # VEE no longer raises the ambiguity (one wrap fits): the finding is staff's to close
        inst = _accepted(admin_user)
        _settings_changed(inst, register_max=Decimal("109999"))

        vee_run_meter(meter_id=inst.meter_id, start=INSTALLED, end=DEC, now=LATER)

        assert _decision() == ("open", None, None, LATER)
        assert _status(inst, NOV) == "suspect"
        assert _held_across(inst) == [("energy", JAN, NOV)]

    @pytest.mark.parametrize("wraps", [2, None])
    def test_a_rollover_the_new_maximum_calls_a_decrease_is_reopened(self, admin_user, wraps):
        inst = _accepted(admin_user, wraps=wraps)

        _settings_changed(inst, register_max=Decimal("999999"))

        assert _decision() == ("open", None, None, LATER)
        assert (
            _ambiguous()
            .get()
            .resolution_reason.startswith(
                "Reopened by revalidation: with the meter's register settings the reads no longer "
                f"show a rollover here; decide again (was accepted with {wraps or 1} wrap(s) by admin"
            )
        )
        # beside VEE's own findings on the reads below 99,000
        assert list(
            _ambiguous("register_decrease").values_list("read_at", "state").order_by("read_at")
        ) == [(NOV, "open"), (DEC, "open")]
        assert (_status(inst, NOV), _status(inst, DEC)) == ("rejected", "rejected")
        assert _held_across(inst) == [("energy", JAN, NOV)]

    def test_a_rollover_that_is_gone_cannot_be_accepted_as_one_only_rejected(self, admin_user):
        inst = _accepted(admin_user)
        _settings_changed(inst, register_max=Decimal("999999"))

        with pytest.raises(UnableToAcceptIssue) as refused:
            reading_issues_accept(issues=_ambiguous(), actor=admin_user, reason="One", now=LATER)
        reading_issues_reject(issues=_ambiguous(), actor=admin_user, reason="None", now=LATER)
        vee_revalidate_meter(meter_id=inst.meter_id, start=INSTALLED, now=LATER)

        assert [(e.code, e.field) for e in refused.value.errors] == [("no_rollover", "wraps")]
        assert _decision() == ("rejected", None, admin_user, LATER)
        assert _status(inst, NOV) == "rejected"
        assert _held_across(inst) == []


class TestAcceptedVolumeRolloverAfterANewNominalFlow:
    def test_a_count_the_new_qp_no_longer_allows_is_reopened(self, admin_user):
        # 990.00 → 5.00 m³ over October 2026 (745 h): one wrap is 15 m³, two 1,015 m³; qp
        # 1.5 m³/h fits 1,117.5 m³ (two), the corrected 1.0 m³/h 745 m³ (one)
        inst = MeterInstallationFactory(
            meter=HeatMeterFactory(
                volume_register_max=Decimal("999.99"),
                volume_resolution=Decimal("0.01"),
                nominal_flow_m3h=Decimal("1.5"),
            ),
            installed_at=INSTALLED,
        )
        october = at(D(2026, 10, 1))
        add_readings(inst.meter, [(october, "1000", "990.00"), (NOV, "1100", "5.00")])
        vee_run_meter(meter_id=inst.meter_id, start=october, end=NOV, now=NOW)
        reading_issues_accept(
            issues=_ambiguous("volume_rollover_ambiguous"),
            actor=admin_user,
            reason="Two",
            now=NOW,
            wraps=2,
        )
        volume = BoundaryRegister.objects.get(connection=inst.unit.connection, on=D(2026, 11, 1))
        assert volume.volume_m3 == Decimal("2005.0000")

        _settings_changed(inst, nominal_flow_m3h=Decimal("1.0"))

        assert _decision("volume_rollover_ambiguous") == ("open", None, None, LATER)
        assert _status(inst, NOV) == "suspect"
        assert _held_across(inst) == [("volume", october, NOV)]


# --- past removals' final registers ------------------------------------------------------

MARCH, REMOVED, APRIL = at(D(2026, 3, 1)), at(D(2026, 3, 15)), at(D(2026, 4, 1))


def _removed_after_its_rollover(**meter):
    """A meter read 99,900 kWh / 950 m³ on 1 March and removed on 15 March at 500 kWh /
    99 m³: both registers rolled over after the last reading (99,999 kWh and 999.99 m³
    registers).  The next meter reads 100 kWh / 10 m³ on 1 April: the connection's
    register is 500 + 100,000 + 100 = 100,600 kWh then."""
    registers = {
        "register_max": Decimal("99999"),
        "volume_register_max": Decimal("999.99"),
        "volume_resolution": Decimal("0.01"),
    }
    inst = MeterInstallationFactory(
        meter=HeatMeterFactory(**(registers | meter)), installed_at=INSTALLED
    )
    add_readings(inst.meter, [(JAN, "99000", "900"), (MARCH, "99900", "950")])
    with TestCase.captureOnCommitCallbacks(execute=True):
        meter_remove(
            installation=inst,
            removed_at=REMOVED,
            final_energy_kwh=Decimal("500"),
            final_volume_m3=Decimal("99"),
        )
    successor = MeterInstallationFactory(unit=inst.unit, installed_at=REMOVED)
    add_readings(successor.meter, [(APRIL, "100", "10")])
    boundary_registers_ensure(connection_ids=[inst.unit.connection_id], dates=[D(2026, 4, 1)])
    assert _energy(inst, D(2026, 4, 1)) == (Decimal("100600.000000"), "actual", "reading")
    return inst


class TestRemovalsFinalRegistersAfterANewMaximum:
    def test_a_maximum_below_a_final_register_was_already_refused(self):
        # (before this change too: ``_maximum_below_stored`` counts installation registers)
        removed = MeterInstallationFactory(
            meter=HeatMeterFactory(register_max=Decimal("999999")),
            installed_at=INSTALLED,
            removed_at=MARCH,
            final_energy_kwh=Decimal("120000"),
            final_volume_m3=Decimal("12"),
        )

        with pytest.raises(UnableToChangeMeter) as refused:
            meter_update(meter=removed.meter, values={"register_max": Decimal("99999")})

        assert [(e.code, e.field) for e in refused.value.errors] == [
            ("register_max_below_stored", "register_max")
        ]
        assert "below 120000 kWh, an installation's final register" in (
            refused.value.errors[0].message
        )

    def test_a_larger_maximum_that_makes_the_rollover_a_decrease_is_refused(self):
        inst = _removed_after_its_rollover()

        with pytest.raises(UnableToChangeMeter) as refused:
            meter_update(meter=inst.meter, values={"register_max": Decimal("999999")})

        assert [e.as_dict() for e in refused.value.errors] == [
            {
                "code": "final_below_last_read",
                "field": "register_max",
                "message": f"With the energy register maximum 999999 kWh the final register "
                f"500 kWh of meter {inst.meter}'s removal at {REMOVED.isoformat()} lies below "
                "its last reading 99900 kWh and does not roll over from it (from the top "
                "tenth of the range into the bottom tenth): the connection's register would "
                "fall at the removal.",
            }
        ]
        assert HeatMeter.objects.get(pk=inst.meter_id).register_max == Decimal("99999")
        assert not RevalidationRequest.objects.filter(meter=inst.meter).exists()
        assert _energy(inst, D(2026, 4, 1)) == (Decimal("100600.000000"), "actual", "reading")

    def test_a_smaller_maximum_that_moves_the_band_past_the_final_register_is_refused(self):
        # 999.99 → 960 m³: still above every stored volume (950), but 99 m³ is no longer
        # in the bottom tenth (96 m³)
        inst = _removed_after_its_rollover()

        with pytest.raises(UnableToChangeMeter) as refused:
            meter_update(meter=inst.meter, values={"volume_register_max": Decimal("960")})

        assert [(e.code, e.field) for e in refused.value.errors] == [
            ("final_below_last_read", "volume_register_max")
        ]
        assert "final register 99 m³" in refused.value.errors[0].message
        assert HeatMeter.objects.get(pk=inst.meter_id).volume_register_max == Decimal("999.99")

    def test_a_maximum_that_keeps_the_rollover_is_saved_and_the_wrap_follows_it(self):
        # 99,949 kWh: 99,900 is in the top tenth, 500 in the bottom; a wrap adds 99,950
        inst = _removed_after_its_rollover()

        with TestCase.captureOnCommitCallbacks(execute=True):
            meter_update(meter=inst.meter, values={"register_max": Decimal("99949")})

        assert HeatMeter.objects.get(pk=inst.meter_id).register_max == Decimal("99949")
        assert _energy(inst, D(2026, 4, 1)) == (Decimal("100550.000000"), "actual", "reading")

    def test_the_meters_unit_is_respected(self):
        # an MWh register: 99.9 MWh last read, 0.5 MWh final; 999.999 MWh is refused
        inst = _removed_after_its_rollover(
            register_unit="MWh", register_max=Decimal("99.999"), resolution=Decimal("0.001")
        )

        with pytest.raises(UnableToChangeMeter) as refused:
            meter_update(meter=inst.meter, values={"register_max": Decimal("999.999")})
        meter_update(meter=inst.meter, values={"register_max": Decimal("99.95")})

        assert "final register 0.5 MWh" in refused.value.errors[0].message
        assert "last reading 99.9 MWh" in refused.value.errors[0].message
