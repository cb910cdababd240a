import datetime as dt
from decimal import Decimal

import pytest

from heatutility.timeutil import local_midnight
from metering.models import BoundaryRegister, DegreeDay, Reading
from metering.selectors import boundary_registers
from metering.services import boundary_registers_ensure, vee_run_meter
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.django_db
CPH = "Europe/Copenhagen"


def at(day, hour=0):
    return local_midnight(day, CPH) + dt.timedelta(hours=hour)


def values(connection, *days):
    frame = boundary_registers(connection_ids=[connection.id], dates=days)
    return {row.on: (row.energy_kwh, row.status, row.method) for row in frame.itertuples()}


class TestBoundaryRegistersEnsure:
    def test_read_at_midnight_is_actual_and_between_reads_is_interpolated(self):
        inst = MeterInstallationFactory()
        conn = inst.unit.connection
        add_readings(
            inst.meter,
            [
                (at(dt.date(2026, 10, 1)), "1000", "10"),
                (at(dt.date(2026, 10, 31), 12), "1610", "16.1"),
            ],
        )

        boundary_registers_ensure(
            connection_ids=[conn.id], dates=[dt.date(2026, 10, 1), dt.date(2026, 10, 31)]
        )

        got = values(conn, dt.date(2026, 10, 1), dt.date(2026, 10, 31))
        assert got[dt.date(2026, 10, 1)] == (Decimal("1000"), "actual", "reading")
        # 1 Oct → 31 Oct 00:00 local is 721 h (25 Oct has 25 h); the second read is 12 h later
        assert got[dt.date(2026, 10, 31)] == (
            (Decimal("1000") + Decimal("610") * Decimal(721) / Decimal(733)).quantize(
                Decimal("0.000001")
            ),
            "estimated",
            "interpolation",
        )

    def test_nothing_is_invented_without_reads(self):
        inst = MeterInstallationFactory()
        boundary_registers_ensure(
            connection_ids=[inst.unit.connection.id], dates=[dt.date(2026, 10, 1)]
        )
        assert not BoundaryRegister.objects.exists()

    def test_without_later_read_last_year_scaled_by_degree_days_then_replaced_by_actual(self):
        inst = MeterInstallationFactory()
        conn = inst.unit.connection
        add_readings(
            inst.meter,
            [
                (at(dt.date(2025, 10, 1)), "0", "0"),
                (at(dt.date(2025, 11, 1)), "600", "6"),  # 600 kWh in Oct 2025
                (at(dt.date(2026, 10, 1)), "5000", "50"),
            ],
        )
        for year, dd in ((2025, "10"), (2026, "12")):  # October 2026 20 % colder
            DegreeDay.objects.bulk_create(
                [
                    DegreeDay(
                        network=conn.network, on=dt.date(year, 10, d), degree_days=Decimal(dd)
                    )
                    for d in range(1, 32)
                ]
            )

        boundary_registers_ensure(connection_ids=[conn.id], dates=[dt.date(2026, 11, 1)])
        assert values(conn, dt.date(2026, 11, 1))[dt.date(2026, 11, 1)] == (
            Decimal("5720.000000"),
            "estimated",
            "last_year_degree_days",
        )

        add_readings(inst.meter, [(at(dt.date(2026, 11, 1)), "5700", "57")])
        vee_run_meter(
            meter_id=inst.meter.id,
            start=at(dt.date(2026, 10, 31)),
            end=at(dt.date(2026, 11, 2)),
            now=at(dt.date(2026, 11, 27)),
        )
        assert values(conn, dt.date(2026, 11, 1))[dt.date(2026, 11, 1)] == (
            Decimal("5700"),
            "actual",
            "reading",
        )

    def test_consumption_across_meter_exchange_uses_final_and_initial_registers(self):
        old = MeterInstallationFactory(
            installed_at=at(dt.date(2026, 1, 1)), initial_energy_kwh=Decimal("100")
        )
        unit = old.unit
        exchange = at(dt.date(2026, 10, 15), 10)
        old.removed_at, old.final_energy_kwh, old.final_volume_m3 = (
            exchange,
            Decimal("2500"),
            Decimal("25"),
        )
        old.save()
        new = MeterInstallationFactory(
            unit=unit,
            meter=HeatMeterFactory(),
            installed_at=exchange,
            initial_energy_kwh=Decimal("7"),
            initial_volume_m3=Decimal("0"),
        )
        add_readings(old.meter, [(at(dt.date(2026, 10, 1)), "2300", "23")])
        add_readings(new.meter, [(at(dt.date(2026, 11, 1)), "407", "4")])

        boundary_registers_ensure(
            connection_ids=[unit.connection.id], dates=[dt.date(2026, 10, 1), dt.date(2026, 11, 1)]
        )

        got = values(unit.connection, dt.date(2026, 10, 1), dt.date(2026, 11, 1))
        # old: 2500 − 2300 = 200 after the read; new: 407 − 7 = 400 → 600 kWh in October
        assert got[dt.date(2026, 11, 1)][0] - got[dt.date(2026, 10, 1)][0] == Decimal("600")
        assert got[dt.date(2026, 11, 1)][1] == "actual"


def _degree_days(network, start, end, value):
    DegreeDay.objects.bulk_create(
        [
            DegreeDay(network=network, on=start + dt.timedelta(days=n), degree_days=Decimal(value))
            for n in range((end - start).days)
        ]
    )


@pytest.fixture
def stopped_meter():
    """A meter that stops reporting on 15 May 2026, after a cold late May and before a
    warm June (degree days), with last year's reads on both month starts."""
    inst = MeterInstallationFactory(installed_at=at(dt.date(2025, 1, 1)))
    add_readings(
        inst.meter,
        [
            (at(dt.date(2025, 5, 15)), "10000", "100"),
            (at(dt.date(2025, 6, 1)), "10400", "104"),  # 400 kWh in late May 2025
            (at(dt.date(2025, 7, 1)), "11000", "110"),  # 600 kWh in June 2025 (hot water)
            (at(dt.date(2026, 5, 15)), "20000", "200"),  # the last read
        ],
    )
    network = inst.unit.connection.network
    _degree_days(network, dt.date(2025, 5, 15), dt.date(2025, 6, 1), "1")  # 17
    _degree_days(network, dt.date(2026, 5, 15), dt.date(2026, 6, 1), "3")  # 51: cold May
    _degree_days(network, dt.date(2025, 6, 1), dt.date(2025, 7, 1), "2")  # 60
    _degree_days(network, dt.date(2026, 6, 1), dt.date(2026, 7, 1), "0.5")  # 15: warm June
    return inst.unit.connection


JUNE, JULY = dt.date(2026, 6, 1), dt.date(2026, 7, 1)


class TestLastYearEstimatesStayCumulative:
    """Registers are cumulative: an estimate continues from the latest boundary after the
    last read, adding last year's consumption over its own span (never below it)."""

    def test_month_starts_estimated_in_one_call_continue_from_each_other(self, stopped_meter):
        boundary_registers_ensure(connection_ids=[stopped_meter.id], dates=[JUNE, JULY])

        got = values(stopped_meter, JUNE, JULY)
        # 1 June: 20000 + 400 × 51/17; 1 July: + 600 × 15/60 (each on its own span; not
        # 20000 + 1000 × 66/77 ≈ 20857, which would bill June −343 kWh)
        assert got == {
            JUNE: (Decimal("21200"), "estimated", "last_year_degree_days"),
            JULY: (Decimal("21350"), "estimated", "last_year_degree_days"),
        }

    def test_a_month_start_estimated_later_continues_from_the_one_stored_before(
        self, stopped_meter
    ):
        # May is billed: 1 June is estimated and stored; July is billed a month later
        boundary_registers_ensure(connection_ids=[stopped_meter.id], dates=[JUNE])
        boundary_registers_ensure(connection_ids=[stopped_meter.id], dates=[JUNE, JULY])

        got = values(stopped_meter, JUNE, JULY)
        assert got[JUNE][0] == Decimal("21200")
        assert got[JULY] == (Decimal("21350"), "estimated", "last_year_degree_days")

    @pytest.mark.parametrize("status", ["edited", "actual"])
    def test_an_estimate_never_falls_below_an_earlier_edited_or_actual_boundary(
        self, stopped_meter, status
    ):
        # staff set 1 June higher than last year's consumption would make it (a read off
        # the display), or a value billing saw as read: July continues from it
        BoundaryRegister.objects.create(
            connection=stopped_meter,
            on=JUNE,
            energy_kwh=Decimal("23000"),
            volume_m3=Decimal("230"),
            status=status,
            method="staff" if status == "edited" else "reading",
        )

        boundary_registers_ensure(connection_ids=[stopped_meter.id], dates=[JULY])

        got = values(stopped_meter, JUNE, JULY)
        assert got[JUNE][0] == Decimal("23000")
        assert got[JULY] == (Decimal("23150"), "estimated", "last_year_degree_days")
        # refreshing the estimates (new reads elsewhere) leaves the chain as it is
        boundary_registers_ensure(connection_ids=[stopped_meter.id], dates=[JULY], refresh=True)
        assert values(stopped_meter, JULY)[JULY][0] == Decimal("23150")

    def test_a_day_estimated_after_the_next_month_start_stays_below_it(self, stopped_meter):
        """A back-dated move-in on 15 June needs a register that day after 1 July was
        stored (21,350 kWh); meanwhile early June's degree days were corrected up (3.5 a
        day): on its own span the estimate would be 21,200 + 280 kWh × 49/28 = 21,690,
        above 1 July, and the new occupant's 15 June – 1 July would bill −340 kWh."""
        boundary_registers_ensure(connection_ids=[stopped_meter.id], dates=[JUNE, JULY])
        DegreeDay.objects.filter(
            network=stopped_meter.network, on__gte=JUNE, on__lt=dt.date(2026, 6, 15)
        ).update(degree_days=Decimal("3.5"))
        mid_june = dt.date(2026, 6, 15)

        boundary_registers_ensure(connection_ids=[stopped_meter.id], dates=[mid_june])

        got = values(stopped_meter, JUNE, mid_june, JULY)
        assert [got[day][0] for day in (JUNE, mid_june, JULY)] == [
            Decimal("21200"),
            Decimal("21350"),
            Decimal("21350"),
        ]

    def test_an_estimate_after_a_withdrawn_boundary_continues_from_the_last_read(
        self, stopped_meter
    ):
        BoundaryRegister.objects.create(
            connection=stopped_meter,
            on=JUNE,
            energy_kwh=Decimal("99999"),
            volume_m3=Decimal("999"),
            status="withdrawn",
            method="no usable read",
        )

        boundary_registers_ensure(connection_ids=[stopped_meter.id], dates=[JULY])

        # 20000 + 1000 kWh (15 May → 1 July 2025) × 66/77 degree days
        expected = (Decimal("20000") + Decimal("1000") * Decimal(66) / Decimal(77)).quantize(
            Decimal("0.000001")
        )
        assert values(stopped_meter, JULY)[JULY][0] == expected


class TestVeeRunAndQueue:
    def test_suspect_and_rejected_readings_land_in_the_queue_and_can_be_resolved(self, admin_user):
        from metering.models import ReadingEdit, ReadingIssue
        from metering.vee.services import reading_edit, reading_issues_accept

        inst = MeterInstallationFactory()
        meter = inst.meter
        day = dt.date(2026, 11, 1)
        add_readings(
            meter,
            [
                (at(day, 0), "100", "1"),
                (at(day, 1), "90", "1"),
                (at(day, 2), "105", "1.1", {"status_code": 8}),
            ],
        )
        now = at(dt.date(2026, 11, 27))

        vee_run_meter(meter_id=meter.id, start=at(day), end=at(day, 23), now=now)

        statuses = dict(Reading.objects.filter(meter=meter).values_list("read_at", "status"))
        assert statuses[at(day, 1)] == "rejected"
        assert statuses[at(day, 2)] == "suspect"
        issues = ReadingIssue.objects.filter(meter=meter, state="open")
        assert sorted(issues.values_list("code", flat=True)) == [
            "fault_status",
            "register_decrease",
        ]

        reading_issues_accept(
            issues=ReadingIssue.objects.filter(code="fault_status"),
            actor=admin_user,
            reason="Battery warning only",
            now=now,
        )
        assert Reading.objects.get(meter=meter, read_at=at(day, 2)).status == "valid"

        reading_edit(
            meter_id=meter.id,
            read_at=at(day, 1),
            values={"energy_kwh": Decimal("102")},
            actor=admin_user,
            reason="Typo in manual read",
            now=now,
        )
        edited = Reading.objects.get(meter=meter, read_at=at(day, 1))
        assert (edited.energy_kwh, edited.status) == (Decimal("102"), "edited")
        edit = ReadingEdit.objects.get()
        assert edit.original["energy_kwh"] == "90.000000"
        assert edit.edited_by == admin_user
        assert ReadingIssue.objects.get(code="register_decrease").state == "edited"

    def test_an_edit_to_a_negative_register_is_refused(self, admin_user):
        # registers count up from 0; a minus typed by hand reached the month's boundary
        from heatutility.errors import DomainError
        from metering.models import ReadingEdit
        from metering.vee.services import reading_edit

        meter = MeterInstallationFactory().meter
        day = dt.date(2026, 11, 1)
        add_readings(meter, [(at(day, 0), "100", "1")])
        with pytest.raises(DomainError) as refused:
            reading_edit(
                meter_id=meter.id,
                read_at=at(day, 0),
                values={"energy_kwh": Decimal("-100"), "flow_temp_c": Decimal("-2")},
                actor=admin_user,
                reason="sign typed by mistake",
                now=at(dt.date(2026, 11, 27)),
            )
        assert [(e.code, e.field) for e in refused.value.errors] == [("negative", "energy_kwh")]
        assert Reading.objects.get(meter=meter, read_at=at(day, 0)).energy_kwh == Decimal("100")
        assert not ReadingEdit.objects.exists()
