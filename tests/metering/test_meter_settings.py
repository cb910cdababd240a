"""A meter's register settings change through ``metering.meters.meter_update``, which
revalidates its readings, so VEE's findings and the boundary registers follow them.

Worked by hand: a meter installed on 15 September 2025 at 95,000 kWh / 950 m³ reads
99,000 kWh on 1 October, 99,900 on 10 October, then 500 on 20 October, 1,400 at noon on
31 October and 1,500 on 1 November.  As a five-digit register (maximum 99,999 kWh,
1 kWh steps) it rolled over on 20 October, adding 100,000 kWh: the connection's register
is 99,000 − 95,000 = 4,000 kWh on 1 October and 1,500 − 95,000 + 100,000 = 6,500 kWh on
1 November.  As a six-digit register (999,999 kWh) the fall from 99,900 to 500 is no
rollover (99,900 is not in the top tenth of the range) but a decrease, and the three
reads below 99,900 are rejected.

The register unit is fixed once the meter has readings: it scales the maximum and the
resolution, and a change would move the rollover band of reads VEE has judged.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib import messages
from django.test import TestCase

from heatutility.errors import DomainError
from heatutility.roles import METERING_OPERATOR
from heatutility.timeutil import local_midnight
from metering.admin.meters import HeatMeterAdmin
from metering.meters import UnableToChangeMeter, meter_update, meter_update_errors
from metering.models import BoundaryRegister, HeatMeter, Reading, ReadingIssue
from metering.services import vee_run_meter
from tests.billing.helpers import client_for
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.django_db
CPH = "Europe/Copenhagen"
D = dt.date
OCT, NOV = D(2025, 10, 1), D(2025, 11, 1)


def at(day, hour=0):
    return local_midnight(day, CPH) + dt.timedelta(hours=hour)


INSTALLED = at(D(2025, 9, 15))
ROLLED = at(D(2025, 10, 20))
BELOW = [ROLLED, at(D(2025, 10, 31), 12), at(NOV)]  # the reads after the fall


def read_across_the_fall(**meter):
    """The meter of the module docstring, installed and read; VEE has run."""
    inst = MeterInstallationFactory(
        installed_at=INSTALLED,
        initial_energy_kwh=Decimal("95000"),
        initial_volume_m3=Decimal("950"),
        **{f"meter__{name}": value for name, value in meter.items()},
    )
    add_readings(
        inst.meter,
        [
            (at(OCT), "99000", "990"),
            (at(D(2025, 10, 10)), "99900", "999"),
            (ROLLED, "500", "1005"),
            (at(D(2025, 10, 31), 12), "1400", "1014"),
            (at(NOV), "1500", "1015"),
        ],
    )
    vee_run_meter(meter_id=inst.meter_id, start=INSTALLED, end=at(NOV), now=at(D(2025, 11, 2)))
    return inst


def five_digits():
    return read_across_the_fall(register_max=Decimal("99999"))


def six_digits():
    return read_across_the_fall(register_max=Decimal("999999"))


def findings(meter):
    return list(
        ReadingIssue.objects.filter(meter=meter)
        .order_by("read_at", "code")
        .values_list("read_at", "code", "state")
    )


def statuses(meter):
    return list(
        Reading.objects.filter(meter=meter).order_by("read_at").values_list("status", flat=True)
    )


def register(connection, day):
    b = BoundaryRegister.objects.filter(connection=connection, on=day).first()
    return None if b is None else (b.energy_kwh, b.volume_m3, b.status, b.method)


ROLLED_OVER = [(ROLLED, "rollover", "accepted")]
DECREASES = [(moment, "register_decrease", "open") for moment in BELOW]
OCTOBER = (Decimal("4000.000000"), Decimal("40.0000"), "actual", "reading")
# 1,500 − 95,000 + 100,000 kWh; 1,015 − 950 m³
NOVEMBER = (Decimal("6500.000000"), Decimal("65.0000"), "actual", "reading")


def assert_five_digits(inst):
    assert findings(inst.meter) == ROLLED_OVER
    assert statuses(inst.meter) == ["valid"] * 5
    assert register(inst.unit.connection, OCT) == OCTOBER
    assert register(inst.unit.connection, NOV) == NOVEMBER


def assert_six_digits(inst, *, november):
    assert findings(inst.meter) == DECREASES
    assert statuses(inst.meter) == ["valid", "valid", "rejected", "rejected", "rejected"]
    assert register(inst.unit.connection, OCT) == OCTOBER
    assert register(inst.unit.connection, NOV) == november


# What 1 November becomes when the rollover goes: its reads are rejected and nothing
# supports an estimate, so the value stays for the record but is no longer billed.
NOVEMBER_WITHDRAWN = (Decimal("6500.000000"), Decimal("65.0000"), "withdrawn", "no usable read")


def change(meter, **values):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return meter_update(meter=meter, values=values)


class TestMeterUpdateRevalidates:
    def test_a_larger_maximum_takes_back_the_stored_rollover(self):
        inst = five_digits()
        assert_five_digits(inst)

        change(inst.meter, register_max=Decimal("999999"))

        assert HeatMeter.objects.get(pk=inst.meter_id).register_max == Decimal("999999")
        assert_six_digits(inst, november=NOVEMBER_WITHDRAWN)

    def test_the_right_maximum_finds_the_rollover_the_wrong_one_called_a_decrease(self):
        inst = six_digits()
        assert_six_digits(inst, november=None)  # nothing supported a value

        change(inst.meter, register_max=Decimal("99999"))

        assert_five_digits(inst)

    def test_a_corrected_resolution_changes_what_the_rollover_adds(self):
        # a 99,999.9 kWh display whose 0.1 kWh step was left at the default 1 kWh: the
        # rollover added 100,000.9 kWh instead of 100,000.0
        inst = read_across_the_fall(register_max=Decimal("99999.9"), resolution=Decimal("1"))
        assert register(inst.unit.connection, NOV)[0] == Decimal("6500.900000")

        change(inst.meter, resolution=Decimal("0.1"))

        assert findings(inst.meter) == ROLLED_OVER
        assert register(inst.unit.connection, NOV) == NOVEMBER

    def test_only_a_register_setting_of_an_installed_meter_queues_a_revalidation(self):
        inst = five_digits()
        in_store = HeatMeterFactory()

        with TestCase.captureOnCommitCallbacks() as details:
            meter = meter_update(
                meter=inst.meter, values={"verification_due_on": D(2034, 1, 1), "model": "603"}
            )
        with TestCase.captureOnCommitCallbacks() as never_installed:
            meter_update(meter=in_store, values={"register_max": Decimal("99999")})
        with TestCase.captureOnCommitCallbacks() as qp:
            meter_update(meter=inst.meter, values={"nominal_flow_m3h": Decimal("2.5")})

        assert (meter.verification_due_on, meter.model) == (D(2034, 1, 1), "603")
        assert HeatMeter.objects.get(pk=in_store.pk).register_max == Decimal("99999")
        assert (len(details), len(never_installed), len(qp)) == (0, 0, 1)

    def test_a_value_the_model_refuses_is_itemised_and_nothing_changes(self):
        inst = five_digits()

        with pytest.raises(DomainError) as caught:  # a step as large as the whole register
            meter_update(meter=inst.meter, values={"resolution": Decimal("100000")})

        assert [e.message for e in caught.value.errors] == [
            "The register maximum must be larger than its resolution."
        ]
        meter = HeatMeter.objects.get(pk=inst.meter_id)
        assert (meter.register_max, meter.resolution) == (Decimal("99999"), Decimal("1"))
        assert_five_digits(inst)


class TestRegisterUnit:
    def test_is_fixed_once_the_meter_has_readings(self):
        inst = five_digits()

        with pytest.raises(UnableToChangeMeter) as caught:
            change(inst.meter, register_unit="MWh", register_max=Decimal("99.999"))

        assert [(e.code, e.field) for e in caught.value.errors] == [
            ("register_unit_fixed", "register_unit")
        ]
        assert caught.value.status_code == 422
        meter = HeatMeter.objects.get(pk=inst.meter_id)
        assert (meter.register_unit, meter.register_max) == ("kWh", Decimal("99999"))
        assert_five_digits(inst)

    def test_changes_before_the_first_reading_and_revalidates_the_installation(self):
        inst = MeterInstallationFactory(installed_at=INSTALLED)

        with TestCase.captureOnCommitCallbacks() as queued:
            meter = meter_update(meter=inst.meter, values={"register_unit": "MWh"})

        assert meter.register_unit == "MWh"
        assert len(queued) == 1  # its installation's registers wrap at the new maximum

    def test_other_fields_are_not_the_services_to_change(self):
        meter = HeatMeterFactory()

        with pytest.raises(UnableToChangeMeter) as caught:
            meter_update(meter=meter, values={"created_at": at(OCT)})

        assert [(e.code, e.field) for e in caught.value.errors] == [("not_editable", "created_at")]


# --- the admin -------------------------------------------------------------------------


def change_url(meter):
    return f"/admin/metering/heatmeter/{meter.pk}/change/"


def meter_form(meter, *, with_unit=True, **changes):
    """The meter's change form as posted, with ``changes``; its installation rows are
    shown read-only (only their management form is posted)."""
    body = {
        "maker": meter.maker,
        "model": meter.model,
        "serial": meter.serial,
        "vendor": "",
        "register_unit": meter.register_unit,
        "resolution": meter.resolution,
        "register_max": meter.register_max,
        "volume_resolution": meter.volume_resolution,
        "volume_register_max": meter.volume_register_max,
        "accuracy_class": meter.accuracy_class,
        "flow_sensor_position": meter.flow_sensor_position,
        "nominal_flow_m3h": "",
        "verification_due_on": "2030-01-01",
        "installations-TOTAL_FORMS": meter.installations.count(),
        "installations-INITIAL_FORMS": meter.installations.count(),
        "installations-MIN_NUM_FORMS": 0,
        "installations-MAX_NUM_FORMS": 1000,
        **changes,
    }
    if not with_unit:
        del body["register_unit"]
    return body


class TestMeterAdmin:
    def test_saving_a_new_maximum_revalidates_the_meters_readings(self, operator):
        inst = five_digits()

        with TestCase.captureOnCommitCallbacks(execute=True):
            response = operator.post(
                change_url(inst.meter),
                meter_form(inst.meter, with_unit=False, register_max="999999"),
            )

        assert response.status_code == 302, response.context["adminform"].form.errors
        meter = HeatMeter.objects.get(pk=inst.meter_id)
        assert meter.register_max == Decimal("999999")
        assert meter.history.latest().history_user == operator.user
        assert_six_digits(inst, november=NOVEMBER_WITHDRAWN)

    def test_the_register_unit_is_shown_read_only_once_the_meter_has_readings(self, operator):
        inst = five_digits()
        fresh = HeatMeterFactory()

        with_readings = operator.get(change_url(inst.meter)).content.decode()
        without = operator.get(change_url(fresh)).content.decode()

        assert 'name="register_unit"' not in with_readings
        assert "The register unit is fixed once the meter has readings" in with_readings
        assert 'name="register_unit"' in without

    def test_a_unit_posted_from_a_page_opened_before_the_readings_is_refused_on_its_field(
        self, operator
    ):
        inst = five_digits()  # the readings arrived after the page was opened

        response = operator.post(
            change_url(inst.meter), meter_form(inst.meter, register_unit="MWh", model="603")
        )

        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert list(errors) == ["register_unit"]
        assert errors["register_unit"] == [
            f"Meter {inst.meter} has readings: its register unit stays kWh (correct the "
            "maximum and resolution in kWh instead)."
        ]
        meter = HeatMeter.objects.get(pk=inst.meter_id)
        assert (meter.register_unit, meter.model) == ("kWh", "MULTICAL 603")

    def test_readings_arriving_while_saving_leave_the_unit_and_say_why(self, operator, monkeypatch):
        """The first reading is stored after the form was checked, before the save."""
        inst = MeterInstallationFactory(installed_at=INSTALLED)
        save_model = HeatMeterAdmin.save_model

        def first_reading_arrives(admin, request, obj, form, change):
            add_readings(inst.meter, [(at(OCT), "99000", "990")])
            save_model(admin, request, obj, form, change)

        monkeypatch.setattr(HeatMeterAdmin, "save_model", first_reading_arrives)

        response = operator.post(
            change_url(inst.meter), meter_form(inst.meter, register_unit="MWh"), follow=True
        )

        assert response.redirect_chain == [(change_url(inst.meter), 302)]
        assert [(m.level, m.message) for m in response.context["messages"]] == [
            (
                messages.ERROR,
                f"Cannot change meter {inst.meter}: Meter {inst.meter} has readings: its "
                "register unit stays kWh (correct the maximum and resolution in kWh instead).",
            )
        ]
        assert HeatMeter.objects.get(pk=inst.meter_id).register_unit == "kWh"

    def test_a_meter_without_readings_changes_its_unit_and_revalidates_its_installation(
        self, operator
    ):
        inst = MeterInstallationFactory(installed_at=INSTALLED)

        with TestCase.captureOnCommitCallbacks() as queued:
            response = operator.post(
                change_url(inst.meter), meter_form(inst.meter, register_unit="MWh")
            )

        assert response.status_code == 302
        assert HeatMeter.objects.get(pk=inst.meter_id).register_unit == "MWh"
        assert len(queued) == 1  # its installation's registers wrap at the new maximum


# --- the API ---------------------------------------------------------------------------


class TestMeterApi:
    def test_patching_the_maximum_revalidates_the_meters_readings(self):
        inst = five_digits()

        with TestCase.captureOnCommitCallbacks(execute=True):
            response = client_for(METERING_OPERATOR).patch(
                f"/api/v1/meters/{inst.meter_id}/", {"register_max": "999999"}, format="json"
            )

        assert response.status_code == 200, response.content
        assert response.json()["register_max"] == "999999.000000"
        assert_six_digits(inst, november=NOVEMBER_WITHDRAWN)

    def test_the_unit_of_a_meter_with_readings_is_a_422_and_nothing_changes(self):
        inst = five_digits()

        response = client_for(METERING_OPERATOR).patch(
            f"/api/v1/meters/{inst.meter_id}/",
            {"register_unit": "MWh", "register_max": "99.999"},
            format="json",
        )

        assert response.status_code == 422, response.content
        body = response.json()
        assert body["code"] == "unable_to_change_meter"
        assert [(e["code"], e["field"]) for e in body["errors"]] == [
            ("register_unit_fixed", "register_unit")
        ]
        meter = HeatMeter.objects.get(pk=inst.meter_id)
        assert (meter.register_unit, meter.register_max) == ("kWh", Decimal("99999"))


# --- a maximum below the registers stored ------------------------------------------------


def below_stored(caught):
    return [(e.code, e.field, e.message) for e in caught.value.errors]


class TestMaximumBelowTheStoredRegisters:
    """A maximum typed a digit short (9,999 for 99,999) would turn the rollover on
    20 October into a decrease and stop finding rollovers: refused, nothing changes."""

    def test_an_energy_maximum_below_the_highest_reading_is_refused_on_its_field(self):
        inst = five_digits()  # its highest reading: 99,900 kWh on 10 October

        with pytest.raises(UnableToChangeMeter) as caught:
            change(inst.meter, register_max=Decimal("9999"))

        assert below_stored(caught) == [
            (
                "register_max_below_stored",
                "register_max",
                f"The energy register maximum 9999 kWh is below 99900 kWh, a stored reading "
                f"of meter {inst.meter}: the register reaches at least that (is a digit "
                "missing?).",
            )
        ]
        assert HeatMeter.objects.get(pk=inst.meter_id).register_max == Decimal("99999")
        assert_five_digits(inst)

    def test_the_readings_kwh_are_compared_in_the_register_unit(self):
        # 99,900 kWh = 99.9 MWh; the maximum is typed in MWh
        inst = read_across_the_fall(register_unit="MWh", register_max=Decimal("99.999"))

        with pytest.raises(UnableToChangeMeter) as caught:
            change(inst.meter, register_max=Decimal("99.8"))
        change(inst.meter, register_max=Decimal("99.9"))  # the register at its maximum

        assert [e.message.split(",")[0] for e in caught.value.errors] == [
            "The energy register maximum 99.8 MWh is below 99.9 MWh"
        ]
        assert HeatMeter.objects.get(pk=inst.meter_id).register_max == Decimal("99.9")

    def test_a_reading_at_a_gj_maximum_is_not_refused_for_the_conversions_last_digit(self):
        # 100.01 GJ is 27,780.5555… kWh, stored rounded up to 27,780.555556 kWh: back in
        # GJ that is 100.0100000016, which must still count as 100.01
        meter = HeatMeterFactory(register_unit="GJ", register_max=Decimal("99999.99"))
        add_readings(meter, [(at(OCT), "27780.555556", "5")])

        with pytest.raises(UnableToChangeMeter) as caught:
            meter_update(meter=meter, values={"register_max": Decimal("100.00")})
        meter = meter_update(meter=meter, values={"register_max": Decimal("100.01")})

        assert "below 100.01 GJ, a stored reading" in caught.value.errors[0].message
        assert meter.register_max == Decimal("100.01")

    def test_a_volume_maximum_below_the_highest_reading_is_refused_on_its_field(self):
        inst = five_digits()  # its highest volume: 1,015 m³ on 1 November

        with pytest.raises(UnableToChangeMeter) as caught:
            change(inst.meter, volume_register_max=Decimal("999.99"), model="603")

        assert [(e.code, e.field) for e in caught.value.errors] == [
            ("register_max_below_stored", "volume_register_max")
        ]
        assert "999.99 m³ is below 1015 m³, a stored reading" in caught.value.errors[0].message
        meter = HeatMeter.objects.get(pk=inst.meter_id)
        assert (meter.volume_register_max, meter.model) == (Decimal("99999999"), "MULTICAL 603")

    def test_the_installations_initial_and_final_registers_count_too(self):
        installed = MeterInstallationFactory(
            installed_at=INSTALLED, initial_energy_kwh=Decimal("95000")
        )
        removed = MeterInstallationFactory(
            installed_at=INSTALLED,
            removed_at=at(OCT),
            final_energy_kwh=Decimal("120000"),
            final_volume_m3=Decimal("1200"),
        )

        with pytest.raises(UnableToChangeMeter) as initial:
            change(installed.meter, register_max=Decimal("9999"))
        with pytest.raises(UnableToChangeMeter) as final:
            change(removed.meter, register_max=Decimal("99999"), volume_register_max=Decimal("999"))

        assert "below 95000 kWh, an installation's initial register" in (
            initial.value.errors[0].message
        )
        assert [
            (e.field, e.message.split(", ")[1].split(" of ")[0]) for e in final.value.errors
        ] == [
            ("register_max", "an installation's final register"),
            ("volume_register_max", "an installation's final register"),
        ]

    def test_one_query_finds_the_highest_registers_and_only_for_a_new_maximum(
        self, django_assert_num_queries
    ):
        inst = five_digits()
        # a maximum stored too low before the rule: other changes still save
        HeatMeter.objects.filter(pk=inst.meter_id).update(register_max=Decimal("9999"))
        meter = HeatMeter.objects.get(pk=inst.meter_id)

        with django_assert_num_queries(1):
            errors = meter_update_errors(
                meter=meter,
                values={"register_max": Decimal("9998"), "volume_register_max": Decimal("999")},
            )
        with django_assert_num_queries(0):
            unchanged = meter_update_errors(
                meter=meter, values={"register_max": Decimal("9999"), "model": "603"}
            )

        assert [e.field for e in errors] == ["register_max", "volume_register_max"]
        assert unchanged == []


class TestMaximumBelowTheStoredRegistersInTheAdminAndTheApi:
    def test_the_admin_shows_it_on_the_field_and_saves_nothing(self, operator):
        inst = five_digits()

        response = operator.post(
            change_url(inst.meter), meter_form(inst.meter, with_unit=False, register_max="9999")
        )

        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert list(errors) == ["register_max"]
        assert errors["register_max"][0].startswith(
            "The energy register maximum 9999 kWh is below 99900 kWh"
        )
        assert HeatMeter.objects.get(pk=inst.meter_id).register_max == Decimal("99999")

    def test_the_api_answers_422_on_the_field(self):
        inst = five_digits()

        response = client_for(METERING_OPERATOR).patch(
            f"/api/v1/meters/{inst.meter_id}/", {"volume_register_max": "999"}, format="json"
        )

        assert response.status_code == 422, response.content
        body = response.json()
        assert body["code"] == "unable_to_change_meter"
        assert [(e["code"], e["field"]) for e in body["errors"]] == [
            ("register_max_below_stored", "volume_register_max")
        ]
        assert HeatMeter.objects.get(pk=inst.meter_id).volume_register_max == Decimal("99999999")
