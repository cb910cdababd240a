"""Staff declare a register decrease a rollover, stating the wraps.

VEE counts a fall as a rollover only from the top tenth of the register into its bottom
tenth (``rules.is_rollover``): a garbled low reading must not be billed as a wrap.  A
real wrap that lands higher (a 4-digit register, 9,999 kWh: 9,900 → 1,900 over 30 days on
a 10 kW connection, 2,000 kWh, where 1.5 × 10 kW × 720 h = 10,800 kWh fit) is a
``register_decrease``; staff who find it a wrap accept it with the number of wraps.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.test import TestCase

from heatutility.timeutil import local_midnight
from metering.meters import meter_update
from metering.models import BoundaryRegister, Reading, ReadingIssue, RevalidationRequest
from metering.services import boundary_registers_ensure, vee_run_meter
from metering.vee.services import (
    UnableToAcceptIssue,
    reading_issues_accept,
    vee_revalidate_meter,
)
from tests.customers.factories import BuildingInterfaceUnitFactory, ServiceConnectionFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.django_db

CPH = "Europe/Copenhagen"
YEAR = 2025  # in the past: the admin decides at the clock's time
NOW = dt.datetime(YEAR, 12, 20, tzinfo=dt.UTC)
OCT, NOV, DEC = (local_midnight(dt.date(YEAR, m, 1), CPH) for m in (10, 11, 12))
LATER = local_midnight(dt.date(YEAR, 12, 15), CPH)


def _four_digits(connection=None):
    """A 4-digit meter (9,999 kWh, wrap 10,000 kWh) on a 10 kW connection, read 9,800
    (1 Oct) → 9,900 (1 Nov) → 1,900 (1 Dec) → 2,000 (15 Dec), validated."""
    connection = connection or ServiceConnectionFactory(contracted_capacity_kw=Decimal("10"))
    inst = MeterInstallationFactory(
        meter=HeatMeterFactory(register_max=Decimal("9999"), resolution=Decimal("1")),
        unit=BuildingInterfaceUnitFactory(connection=connection),
        installed_at=local_midnight(dt.date(YEAR, 9, 1), CPH),
        initial_energy_kwh=Decimal("9000"),
        initial_volume_m3=Decimal("100"),
    )
    add_readings(
        inst.meter,
        [(OCT, "9800", "120"), (NOV, "9900", "122"), (DEC, "1900", "162"), (LATER, "2000", "164")],
    )
    vee_run_meter(meter_id=inst.meter_id, start=OCT, end=LATER, now=NOW)
    return inst


def _status(inst, at):
    return Reading.objects.get(meter=inst.meter, read_at=at).status


def _boundaries(inst, *days):
    boundary_registers_ensure(connection_ids=[inst.unit.connection_id], dates=list(days))
    found = dict(
        BoundaryRegister.objects.filter(connection=inst.unit.connection, on__in=days)
        .exclude(status="withdrawn")
        .values_list("on", "energy_kwh")
    )
    return [found.get(day) for day in days]


def _decrease(at=DEC):
    return ReadingIssue.objects.filter(code="register_decrease", read_at=at)


def _declare(actor, wraps=1, at=DEC):
    return reading_issues_accept(
        issues=_decrease(at), actor=actor, reason="Display shows the wrap", now=NOW, wraps=wraps
    )


def _days(*days):
    return [dt.date(YEAR, m, d) for m, d in days]


class TestUndeclared:
    def test_a_plain_acceptance_keeps_the_decrease_and_the_dead_end(self, admin_user):
        """What staff could do before: accept the finding.  The reading counts as it
        stands, a fall of 8,000 kWh (November billed −8,000 kWh), and every later read
        is still judged against 9,900 and rejected."""
        inst = _four_digits()
        assert list(_decrease_all().values_list("read_at", flat=True)) == [DEC, LATER]

        reading_issues_accept(issues=_decrease(), actor=admin_user, reason="ok", now=NOW)
        vee_run_meter(meter_id=inst.meter_id, start=OCT, end=LATER, now=NOW)

        assert (_status(inst, DEC), _status(inst, LATER)) == ("valid", "rejected")
        # 9,900 − 9,000 = 900 on 1 November, 1,900 − 9,000 = −7,100 on 1 December
        assert _boundaries(inst, *_days((11, 1), (12, 1))) == [
            Decimal("900.000000"),
            Decimal("-7100.000000"),
        ]


def _decrease_all():
    return ReadingIssue.objects.filter(code="register_decrease")


class TestDeclaredRollover:
    def test_one_wrap_counts_2000_kwh_and_later_reads_are_valid(self, admin_user):
        inst = _four_digits()

        assert _declare(admin_user, wraps=1) == 1

        issue = _decrease().get()
        assert (issue.state, issue.wraps, issue.resolved_by) == ("accepted", 1, admin_user)
        assert (_status(inst, DEC), _status(inst, LATER)) == ("valid", "valid")
        # the later read is judged against 1,900: its decrease is gone
        assert list(_decrease_all().values_list("read_at", flat=True)) == [DEC]
        marker = ReadingIssue.objects.get(code="rollover")
        assert (marker.read_at, marker.state) == (DEC, "accepted")
        assert "declared by staff" in marker.message
        assert not ReadingIssue.objects.filter(code="rollover_ambiguous").exists()
        # 1 Nov 9,900 − 9,000 = 900; 1 Dec 900 + (9,999 + 1 − 9,900 + 1,900) = 2,900;
        # 16 Nov half-way (360 of 720 h): 1,900; 15 Dec 2,900 + 100 = 3,000
        assert _boundaries(inst, *_days((11, 1), (11, 16), (12, 1), (12, 15))) == [
            Decimal("900.000000"),
            Decimal("1900.000000"),
            Decimal("2900.000000"),
            Decimal("3000.000000"),
        ]
        december = BoundaryRegister.objects.get(
            connection=inst.unit.connection, on=dt.date(YEAR, 12, 1)
        )
        assert (december.status, december.method) == ("actual", "reading")

    def test_the_boundaries_stored_before_are_corrected(self, admin_user):
        inst = _four_digits()
        # stored while 1,900 was rejected: 1 Dec from 9,900 on (no later usable read)
        _boundaries(inst, *_days((11, 1), (12, 1)))

        _declare(admin_user)

        assert _boundaries(inst, *_days((11, 1), (12, 1))) == [
            Decimal("900.000000"),
            Decimal("2900.000000"),
        ]

    def test_a_rerun_of_validation_keeps_the_declaration(self, admin_user):
        inst = _four_digits()
        _declare(admin_user)

        vee_run_meter(meter_id=inst.meter_id, start=OCT, end=LATER, now=NOW)

        assert list(_decrease_all().values_list("read_at", "state", "wraps")) == [
            (DEC, "accepted", 1)
        ]
        assert (_status(inst, DEC), _status(inst, LATER)) == ("valid", "valid")
        assert _boundaries(inst, *_days((12, 1), (12, 15))) == [
            Decimal("2900.000000"),
            Decimal("3000.000000"),
        ]


class TestRefused:
    def _refused(self, actor, wraps, issues=None):
        with pytest.raises(UnableToAcceptIssue) as caught:
            reading_issues_accept(
                issues=issues if issues is not None else _decrease(),
                actor=actor,
                reason="x",
                now=NOW,
                wraps=wraps,
            )
        return caught.value

    def _unchanged(self, inst):
        assert set(_decrease_all().values_list("state", "wraps")) == {("open", None)}
        assert (_status(inst, DEC), _status(inst, LATER)) == ("rejected", "rejected")

    def test_two_wraps_are_more_than_the_connection_takes(self, admin_user):
        inst = _four_digits()

        error = self._refused(admin_user, 2)

        serial = inst.meter.serial
        # two wraps: 20,000 − 8,000 = 12,000 kWh in 720 h; 15 kW × 720 h = 10,800 kWh
        assert [(e.code, e.field, e.message) for e in error.errors] == [
            (
                "too_many_wraps",
                "wraps",
                f"register_decrease of meter {inst.meter} at {DEC.isoformat()}: the energy "
                f"register fell 8000 kWh since {NOV.isoformat()}; 2 wrap(s) of 10000 kWh "
                "would count 12000 kWh in 720.0 h, above the 10800 kWh that 1.5 × contracted "
                "10.00 kW allow; at most 1 wrap(s) fit.",
            )
        ]
        assert serial in error.errors[0].message
        self._unchanged(inst)

    def test_no_wrap_fits_a_fall_over_a_day(self, admin_user):
        # the same fall within a day: one wrap is 2,000 kWh, 15 kW × 24 h = 360 kWh
        connection = ServiceConnectionFactory(contracted_capacity_kw=Decimal("10"))
        inst = MeterInstallationFactory(
            meter=HeatMeterFactory(register_max=Decimal("9999"), resolution=Decimal("1")),
            unit=BuildingInterfaceUnitFactory(connection=connection),
            installed_at=local_midnight(dt.date(YEAR, 9, 1), CPH),
            initial_energy_kwh=Decimal("9000"),
        )
        day = NOV + dt.timedelta(days=1)
        add_readings(inst.meter, [(OCT, "9800", "1"), (NOV, "9900", "2"), (day, "1900", "3")])
        vee_run_meter(meter_id=inst.meter_id, start=OCT, end=day, now=NOW)

        error = self._refused(admin_user, 1, _decrease(day))

        assert [e.code for e in error.errors] == ["too_many_wraps"]
        assert error.errors[0].message.endswith(
            "would count 2000 kWh in 24.0 h, above the 360 kWh that 1.5 × contracted 10.00 kW "
            "allow; not even one wrap fits: is the read wrong?."
        )
        assert _decrease(day).get().state == "open"

    def test_zero_wraps(self, admin_user):
        inst = _four_digits()

        error = self._refused(admin_user, 0)

        assert [(e.code, e.field) for e in error.errors] == [("min_value", "wraps")]
        self._unchanged(inst)

    def test_one_decrease_of_a_meter_at_a_time(self, admin_user):
        inst = _four_digits()

        error = self._refused(admin_user, 1, _decrease_all())

        assert [(e.code, e.message) for e in error.errors] == [
            (
                "one_declared_rollover_per_meter",
                f"register_decrease of meter {inst.meter} at {LATER.isoformat()}: declare one "
                "rollover of a meter at a time, the earliest; the later reads are then judged "
                "against the wrapped register.",
            )
        ]
        self._unchanged(inst)

    def test_a_wrap_count_on_another_error_is_refused(self, admin_user):
        _four_digits()
        issue = _decrease()
        issue.update(code="future_timestamp")

        error = self._refused(admin_user, 1, ReadingIssue.objects.filter(code="future_timestamp"))

        assert [e.code for e in error.errors] == ["not_ambiguous_rollover"]


class TestSettingsChange:
    def test_a_declaration_the_new_maximum_no_longer_allows_is_reopened(self, admin_user):
        inst = _four_digits()
        _declare(admin_user)
        later = NOW + dt.timedelta(days=1)

        # a 5-digit register: one wrap from 9,900 to 1,900 would be 92,000 kWh
        with TestCase.captureOnCommitCallbacks():
            meter_update(meter=inst.meter, values={"register_max": Decimal("99999")})
        (since,) = RevalidationRequest.objects.filter(meter=inst.meter).values_list(
            "since", flat=True
        )
        vee_revalidate_meter(meter_id=inst.meter_id, start=since, now=later)

        issue = _decrease().get()
        assert (issue.state, issue.wraps, issue.resolved_by, issue.resolved_at) == (
            "open",
            None,
            None,
            later,
        )
        assert issue.resolution_reason == (
            "Reopened by revalidation: with the meter's register settings at most 0 wrap(s) "
            f"of the energy register fit its fall since {NOV.isoformat()}, not 1; decide "
            f"again (was accepted with 1 wrap(s) by admin at {NOW.isoformat()}: Display "
            "shows the wrap)."
        )
        # no wrap counted, the reads judged against 9,900 again
        assert (_status(inst, DEC), _status(inst, LATER)) == ("rejected", "rejected")
        assert not ReadingIssue.objects.filter(code="rollover").exists()
        assert _decrease(LATER).get().state == "open"
        # 1 December had the wrap's 2,900 kWh: no usable read supports a value now
        december = BoundaryRegister.objects.get(
            connection=inst.unit.connection, on=dt.date(YEAR, 12, 1)
        )
        assert (december.energy_kwh, december.status) == (Decimal("2900.000000"), "withdrawn")
        assert _boundaries(
            inst,
            *_days(
                (11, 1),
            ),
        )[0] == Decimal("900.000000")


class TestBilled:
    def test_the_november_bill_charges_the_2000_kwh_across_the_wrap(self, admin_user):
        from billing.models import Invoice
        from tests.billing.factories import ENERGY_PRICE, contract_with_connection, tariff_version
        from tests.billing.helpers import bill_month
        from tests.customers.factories import NetworkFactory

        network = NetworkFactory(time_zone=CPH)
        tariff_version(network=network)
        contract = contract_with_connection(network=network, kw="10.00")
        _four_digits(contract.connection)
        _declare(admin_user)

        run = bill_month(network, start=dt.date(YEAR, 11, 1), issue=False, now=NOW)

        assert list(run.exceptions.values_list("code", flat=True)) == []
        invoice = Invoice.objects.get(account=contract.account)
        assert not invoice.held, invoice.hold_reason
        (energy,) = invoice.lines.filter(component="energy")
        # 9,999 + 1 − 9,900 + 1,900 = 2,000 kWh = 2 MWh × 592.52
        assert (energy.quantity, energy.unit_price, energy.amount) == (
            Decimal("2.000000"),
            ENERGY_PRICE,
            Decimal("1185.04"),
        )


class TestAdmin:
    def test_staff_declare_the_rollover_from_the_queue(self, admin_client):
        inst = _four_digits()
        issue = _decrease().get()
        data = {"action": "accept_wraps", "_selected_action": [issue.pk]}

        confirm = admin_client.post("/admin/metering/readingissue/", data)
        assert b'name="wraps"' in confirm.content
        admin_client.post(
            "/admin/metering/readingissue/", {**data, "reason": "Display wrapped", "wraps": "1"}
        )

        issue.refresh_from_db()
        assert (issue.state, issue.wraps, issue.resolution_reason) == (
            "accepted",
            1,
            "Display wrapped",
        )
        assert (_status(inst, DEC), _status(inst, LATER)) == ("valid", "valid")
        assert _boundaries(
            inst,
            *_days(
                (12, 1),
            ),
        ) == [Decimal("2900.000000")]

    def test_a_count_that_does_not_fit_shows_on_the_form(self, admin_client):
        inst = _four_digits()
        issue = _decrease().get()

        response = admin_client.post(
            "/admin/metering/readingissue/",
            {
                "action": "accept_wraps",
                "_selected_action": [issue.pk],
                "reason": "Two?",
                "wraps": "2",
            },
        )

        assert response.status_code == 200
        assert "at most 1 wrap(s) fit" in response.content.decode()
        issue.refresh_from_db()
        assert (issue.state, issue.wraps) == ("open", None)
        assert _status(inst, DEC) == "rejected"


class TestVolume:
    def _both_fall(self):
        """Energy 9,900 → 1,900 kWh and volume 990.00 → 100.00 m³ over November, on a
        999.99 m³ register (wrap 1,000.00 m³) with no nominal flow qp."""
        connection = ServiceConnectionFactory(contracted_capacity_kw=Decimal("10"))
        inst = MeterInstallationFactory(
            meter=HeatMeterFactory(
                register_max=Decimal("9999"),
                resolution=Decimal("1"),
                volume_register_max=Decimal("999.99"),
                volume_resolution=Decimal("0.01"),
            ),
            unit=BuildingInterfaceUnitFactory(connection=connection),
            installed_at=local_midnight(dt.date(YEAR, 9, 1), CPH),
            initial_energy_kwh=Decimal("9000"),
            initial_volume_m3=Decimal("950"),
        )
        add_readings(inst.meter, [(OCT, "9800", "980"), (NOV, "9900", "990"), (DEC, "1900", "100")])
        vee_run_meter(meter_id=inst.meter_id, start=OCT, end=DEC, now=NOW)
        return inst

    def test_each_register_that_fell_counts_the_wrap(self, admin_user):
        inst = self._both_fall()

        _declare(admin_user)

        assert ReadingIssue.objects.filter(read_at=DEC, code="volume_rollover").exists()
        _boundaries(inst, *_days((11, 1), (12, 1)))
        # energy 900 → 2,900 kWh; volume 990 − 950 = 40 → 40 + 1,000 − 990 + 100 = 150 m³
        assert list(
            BoundaryRegister.objects.filter(connection=inst.unit.connection)
            .order_by("on")
            .values_list("on", "energy_kwh", "volume_m3")
        ) == [
            # the installation's month start, stored with the meter's first reads
            (dt.date(YEAR, 9, 1), Decimal("0.000000"), Decimal("0.0000")),
            (dt.date(YEAR, 10, 1), Decimal("800.000000"), Decimal("30.0000")),
            (dt.date(YEAR, 11, 1), Decimal("900.000000"), Decimal("40.0000")),
            (dt.date(YEAR, 12, 1), Decimal("2900.000000"), Decimal("150.0000")),
        ]

    def test_without_qp_one_volume_wrap_is_counted(self, admin_user):
        inst = self._both_fall()

        with pytest.raises(UnableToAcceptIssue) as caught:
            _declare(admin_user, wraps=2)

        assert [e.message.split(f"{DEC.isoformat()}: ")[1] for e in caught.value.errors] == [
            f"the energy register fell 8000 kWh since {NOV.isoformat()}; 2 wrap(s) of 10000 "
            "kWh would count 12000 kWh in 720.0 h, above the 10800 kWh that 1.5 × contracted "
            "10.00 kW allow; at most 1 wrap(s) fit.",
            f"the volume register fell 890 m³ since {NOV.isoformat()}, and the meter has no "
            "nominal flow qp: one wrap is counted, not 2.",
        ]
        assert _status(inst, DEC) == "rejected"


class TestInstallationCorrected:
    def test_a_declared_rollover_from_the_initial_register_is_no_digit_typed_wrong(
        self, admin_user
    ):
        """Installed at 9,900 kWh on 1 November, first read 1,900 kWh on 1 December: a
        decrease from the initial register, which staff declare a wrap.  Moving the
        installation an hour earlier then checks the initial register against that read
        again: it rolled over, as staff declared, so the correction is not refused."""
        from metering.installations import meter_installation_correct

        connection = ServiceConnectionFactory(contracted_capacity_kw=Decimal("10"))
        inst = MeterInstallationFactory(
            meter=HeatMeterFactory(register_max=Decimal("9999"), resolution=Decimal("1")),
            unit=BuildingInterfaceUnitFactory(connection=connection),
            installed_at=NOV,
            initial_energy_kwh=Decimal("9900"),
        )
        add_readings(inst.meter, [(DEC, "1900", "5")])
        vee_run_meter(meter_id=inst.meter_id, start=NOV, end=DEC, now=NOW)
        assert "below the initial registers" in _decrease().get().message
        _declare(admin_user)
        assert _status(inst, DEC) == "valid"

        with TestCase.captureOnCommitCallbacks(execute=True):
            meter_installation_correct(
                installation=inst,
                installed_at=NOV - dt.timedelta(hours=1),
                reason="Fitted an hour earlier",
                actor=admin_user,
                now=NOW,
            )

        inst.refresh_from_db()
        assert inst.installed_at == NOV - dt.timedelta(hours=1)
        assert list(_decrease_all().values_list("state", "wraps")) == [("accepted", 1)]
        assert _status(inst, DEC) == "valid"
        assert _boundaries(
            inst,
            *_days(
                (12, 1),
            ),
        ) == [Decimal("2000.000000")]
