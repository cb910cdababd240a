"""Correcting an installation's registers typed wrong (``meter_installation_correct``).

The worked example of ``test_initial_register_step.py``: a meter exchanged at 10:00 UTC
on 15 October 2026, its initial register typed 12,345 kWh for 1,234 kWh; it reads
1,300 kWh at midnight on 16 October and 100 kWh a day more, 2,900 kWh on 1 November.
The old meter read 53,000 kWh on 1 October and ended at 54,450 kWh.  VEE rejects every
new reading as a ``register_decrease`` from 12,345 kWh.  Corrected to 1,234 kWh, the
readings count again and the connection reads 54,450 + 2,900 − 1,234 = 56,116 kWh on
1 November (1,450 + 1,666 = 3,116 kWh in October).

Before, nothing corrected a recorded installation: the readings stayed rejected and the
next removal was refused, until someone edited the database.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import TestCase
from django.utils import timezone

from billing.services.compute import drafts_compute
from heatutility.roles import AUDITOR, BILLING_CLERK, METERING_OPERATOR
from metering.installations import (
    UnableToInstallMeter,
    meter_remove,
)
from metering.models import (
    MeterInstallation,
    Reading,
    ReadingIssue,
    RevalidationRequest,
)
from metering.selectors import boundary_registers_updated_since
from metering.vee.services import vee_revalidate_meter, vee_run_meter
from tests.billing.helpers import api_client, client_for, staff_with_permissions
from tests.metering.factories import MeterInstallationFactory
from tests.metering.typo_exchange import (
    EXCHANGED,
    NEW_READS,
    NOV,
    NOW,
    OCT,
    RIGHT,
    SEP_1,
    TYPO,
    boundary,
    correction,
    exchanged,
)

pytestmark = pytest.mark.django_db

INSTALLATIONS = "/admin/metering/meterinstallation/"


def statuses(meter) -> set[str]:
    return set(Reading.objects.filter(meter=meter).values_list("status", flat=True))


def registers(installation) -> tuple:
    installation.refresh_from_db()
    return (
        installation.initial_energy_kwh,
        installation.initial_volume_m3,
        installation.final_energy_kwh,
        installation.final_volume_m3,
    )


def history_count(installation) -> int:
    return MeterInstallation.history.filter(id=installation.pk).count()


def exchanged_and_read(initial_energy_kwh):
    """A billed connection whose meter was exchanged on 15 October, the new meter's
    initial register ``initial_energy_kwh``; its readings since, validated nightly.
    Returns (contract, old installation, new installation)."""
    contract, old, new = exchanged(exchanged_at=EXCHANGED, initial_energy_kwh=initial_energy_kwh)
    vee_run_meter(
        meter_id=new.meter_id,
        start=NEW_READS[0][0] - dt.timedelta(days=1),
        end=NEW_READS[-1][0],
        now=NOW,
    )
    RevalidationRequest.objects.all().delete()  # the exchange's, run above
    return contract, old, new


def removed_500_to_900():
    """A removed installation without readings: 500 kWh at the installation, 900 kWh
    (and 9 m³) at the removal."""
    return MeterInstallationFactory(
        installed_at=SEP_1,
        initial_energy_kwh=Decimal("500"),
        removed_at=EXCHANGED,
        final_energy_kwh=Decimal("900"),
        final_volume_m3=Decimal("9"),
    )


def revalidate_as_requested(meter) -> None:
    """What the queued task does, from the request the correction wrote."""
    (since,) = RevalidationRequest.objects.filter(meter=meter).values_list("since", flat=True)
    vee_revalidate_meter(meter_id=meter.pk, start=since, now=NOW)


def correct(installation, reason="initial register typed 12345 for 1234", **fields):
    return correction(installation, reason, **fields)


def refused(installation, **fields) -> list[tuple[str, str | None]]:
    """The items of a refused correction, having checked that nothing was saved."""
    before, history = registers(installation), history_count(installation)
    with pytest.raises(UnableToInstallMeter) as refusal:
        correct(installation, **fields)
    assert registers(installation) == before
    assert history_count(installation) == history
    assert not RevalidationRequest.objects.filter(meter_id=installation.meter_id).exists()
    return [(e.code, e.field) for e in refusal.value.errors]


class TestTheTypoCorrected:
    def test_the_readings_count_again_and_the_bill_across_the_exchange_is_right(self, admin_user):
        contract, old, new = exchanged_and_read(TYPO)
        assert statuses(new.meter) == {"rejected"}
        assert boundary(contract.connection, NOV) is None
        mark = timezone.now()

        corrected, queued = correct(new, initial_energy_kwh=RIGHT, actor=admin_user)
        revalidate_as_requested(new.meter)

        assert corrected.initial_energy_kwh == RIGHT
        assert len(queued) == 1  # the task, sent after the commit
        assert statuses(new.meter) == {"valid"}
        assert not ReadingIssue.objects.filter(meter=new.meter).exists()
        assert boundary(contract.connection, NOV) == (Decimal("56116.000000"), "actual")
        # billing's re-rating finds the moved register
        assert (contract.connection_id, NOV) in boundary_registers_updated_since(since=mark)
        drafts, failures = drafts_compute(
            currency="DKK", account_ids=[contract.account_id], period_start=OCT, period_end=NOV
        )
        assert failures == {}
        (energy,) = [line for line in drafts[0].lines if line.component == "energy"]
        assert energy.quantity == Decimal("3.116")
        # the exchange's other installation keeps its registers
        assert registers(old) == (Decimal("0"), Decimal("0"), Decimal("54450"), Decimal("545"))

    def test_the_history_keeps_who_corrected_what_and_why(self, admin_user):
        _, _, new = exchanged_and_read(TYPO)

        correct(new, initial_energy_kwh=RIGHT, actor=admin_user, reason="  typo on site  ")

        latest = new.history.latest()
        assert (latest.history_user, latest.history_change_reason) == (admin_user, "typo on site")
        assert latest.initial_energy_kwh == RIGHT
        assert latest.prev_record.initial_energy_kwh == TYPO

    def test_the_revalidation_is_queued_from_the_installation_in_the_same_transaction(self):
        _, _, new = exchanged_and_read(TYPO)

        correct(new, initial_energy_kwh=RIGHT)

        assert list(
            RevalidationRequest.objects.filter(meter=new.meter).values_list("since", flat=True)
        ) == [EXCHANGED]

    def test_only_the_registers_given_change(self):
        installation = MeterInstallationFactory(
            installed_at=EXCHANGED,
            initial_energy_kwh=TYPO,
            initial_volume_m3=Decimal("7"),
            initial_flow_temp_m3c=Decimal("50"),
        )

        correct(installation, initial_energy_kwh=RIGHT)

        installation.refresh_from_db()
        assert (
            installation.initial_energy_kwh,
            installation.initial_volume_m3,
            installation.initial_flow_temp_m3c,
        ) == (RIGHT, Decimal("7"), Decimal("50"))

    def test_a_register_in_the_meters_unit_is_stored_in_kwh(self):
        installation = MeterInstallationFactory(
            installed_at=EXCHANGED,
            meter__register_unit="MWh",
            meter__register_max=Decimal("99999.999"),
            initial_energy_kwh=TYPO,
        )

        corrected, _ = correct(
            installation, initial_energy_kwh=Decimal("1.234"), register_unit="MWh"
        )

        assert corrected.initial_energy_kwh == Decimal("1234")

    def test_the_same_values_again_change_nothing(self):
        installation = MeterInstallationFactory(installed_at=EXCHANGED, initial_energy_kwh=RIGHT)
        history = history_count(installation)

        _, queued = correct(installation, initial_energy_kwh=Decimal("1234.000"))

        assert history_count(installation) == history
        assert not queued
        assert not RevalidationRequest.objects.exists()


class TestFinalRegisterCorrection:
    def test_the_old_meters_final_register_moves_the_registers_after_the_exchange(self):
        contract, old, new = exchanged_and_read(RIGHT)
        assert boundary(contract.connection, NOV) == (Decimal("56116.000000"), "actual")

        correct(old, final_energy_kwh=Decimal("54550"), reason="final register misread")
        revalidate_as_requested(old.meter)

        assert registers(old)[2] == Decimal("54550")
        assert RevalidationRequest.objects.filter(meter=old.meter).count() == 0
        assert boundary(contract.connection, NOV) == (Decimal("56216.000000"), "actual")
        assert registers(new)[0] == RIGHT

    def test_the_revalidation_starts_at_the_installation(self):
        _, old, _ = exchanged_and_read(RIGHT)

        correct(old, final_volume_m3=Decimal("546"), reason="volume misread")

        assert list(
            RevalidationRequest.objects.filter(meter=old.meter).values_list("since", flat=True)
        ) == [SEP_1]

    def test_the_final_temperature_registers_are_corrected_too(self):
        _, old, _ = exchanged_and_read(RIGHT)

        correct(old, final_flow_temp_m3c=Decimal("30000"), reason="added from the display")

        old.refresh_from_db()
        assert old.final_flow_temp_m3c == Decimal("30000")


class TestAnOptionalRegisterEmptied:
    """The m³·°C registers are optional: one recorded by mistake (the meter has none, or
    it was reset) is emptied with ``clear``, audited and revalidated like any change."""

    def test_a_final_temperature_register_is_emptied(self, admin_user):
        _, old, _ = exchanged_and_read(RIGHT)
        correct(old, final_flow_temp_m3c=Decimal("30000"), reason="added from the display")
        RevalidationRequest.objects.all().delete()

        corrected, queued = correct(
            old, clear=["final_flow_temp_m3c"], reason="the meter has no such register"
        )

        old.refresh_from_db()
        assert (corrected.final_flow_temp_m3c, old.final_flow_temp_m3c) == (None, None)
        assert len(queued) == 1
        latest = old.history.latest()
        assert latest.history_change_reason == "the meter has no such register"
        assert latest.prev_record.final_flow_temp_m3c == Decimal("30000")

    def test_an_initial_temperature_register_is_emptied_beside_a_final_one(self):
        installation = MeterInstallationFactory(
            installed_at=EXCHANGED,
            initial_flow_temp_m3c=Decimal("50"),
            initial_return_temp_m3c=Decimal("30"),
        )

        correct(installation, clear=["initial_flow_temp_m3c"])

        installation.refresh_from_db()
        assert (installation.initial_flow_temp_m3c, installation.initial_return_temp_m3c) == (
            None,
            Decimal("30"),
        )

    def test_an_empty_register_emptied_again_changes_nothing(self):
        installation = MeterInstallationFactory(installed_at=EXCHANGED)
        history = history_count(installation)

        correct(installation, clear=["initial_flow_temp_m3c"])

        assert history_count(installation) == history
        assert not RevalidationRequest.objects.exists()

    def test_energy_and_volume_registers_cannot_be_emptied(self):
        installation = MeterInstallationFactory(installed_at=EXCHANGED)

        assert refused(installation, clear=["initial_energy_kwh", "initial_volume_m3"]) == [
            ("not_clearable", "initial_energy_kwh"),
            ("not_clearable", "initial_volume_m3"),
        ]

    def test_a_register_given_and_emptied(self):
        installation = MeterInstallationFactory(installed_at=EXCHANGED)

        assert refused(
            installation,
            initial_flow_temp_m3c=Decimal("50"),
            clear=["initial_flow_temp_m3c"],
        ) == [("given_and_cleared", "initial_flow_temp_m3c")]

    def test_a_final_register_of_an_installed_meter(self):
        installation = MeterInstallationFactory(installed_at=EXCHANGED)

        assert refused(installation, clear=["final_return_temp_m3c"]) == [
            ("not_removed", "final_return_temp_m3c")
        ]

    def test_the_api_takes_the_list(self):
        installation = MeterInstallationFactory(
            installed_at=EXCHANGED, initial_return_temp_m3c=Decimal("30")
        )

        client = client_for(METERING_OPERATOR)
        with TestCase.captureOnCommitCallbacks():
            response = client.post(
                api_url(installation),
                {"clear": ["initial_return_temp_m3c"], "reason": "no such register"},
                format="json",
            )
        unknown = client.post(
            api_url(installation),
            {"clear": ["initial_energy_kwh"], "reason": "typo"},
            format="json",
        )

        assert response.status_code == 200, response.content
        assert response.json()["initial_return_temp_m3c"] is None
        assert unknown.status_code == 400
        assert [(e["code"], e["field"]) for e in unknown.json()["errors"]] == [
            ("invalid_choice", "clear.0")
        ]

    def test_the_admin_form_empties_a_temperature_register_left_blank(self, operator):
        installation = MeterInstallationFactory(
            installed_at=EXCHANGED, initial_flow_temp_m3c=Decimal("50")
        )

        with TestCase.captureOnCommitCallbacks():
            response = operator.post(
                admin_url(installation),
                {
                    "initial_energy_kwh": "0",
                    "initial_volume_m3": "0",
                    "initial_flow_temp_m3c": "",
                    "reason": "no such register",
                },
            )

        assert response.status_code == 302, response.context["form"].errors
        installation.refresh_from_db()
        assert installation.initial_flow_temp_m3c is None


class TestRefusals:
    """Each refusal is itemised, and nothing is saved or queued (``refused``)."""

    def test_a_reason_is_required(self):
        installation = MeterInstallationFactory(installed_at=EXCHANGED, initial_energy_kwh=TYPO)

        assert refused(installation, initial_energy_kwh=RIGHT, reason="") == [
            ("reason_required", "reason")
        ]
        assert refused(installation, initial_energy_kwh=RIGHT, reason="   ") == [
            ("reason_required", "reason")
        ]

    def test_nothing_to_correct(self):
        installation = MeterInstallationFactory(installed_at=EXCHANGED)

        assert refused(installation) == [("nothing_to_correct", None)]

    def test_final_registers_of_an_installed_meter_are_refused_each(self):
        installation = MeterInstallationFactory(installed_at=EXCHANGED, initial_energy_kwh=TYPO)

        assert refused(
            installation,
            initial_energy_kwh=RIGHT,
            final_energy_kwh=Decimal("2000"),
            final_volume_m3=Decimal("20"),
        ) == [("not_removed", "final_energy_kwh"), ("not_removed", "final_volume_m3")]

    def test_a_register_above_the_meters_maximum(self):
        installation = MeterInstallationFactory(
            installed_at=EXCHANGED, meter__register_max=Decimal("99999")
        )

        assert refused(
            installation, initial_energy_kwh=Decimal("100000"), initial_volume_m3=Decimal("1")
        ) == [("above_register_max", "initial_energy_kwh")]

    def test_an_initial_register_above_a_first_reading_rejected_against_the_typo(self):
        """1,300 kWh was rejected as a decrease from 12,345: it is still the meter's
        register, so 13,000 is no correction of the typo."""
        _, _, new = exchanged_and_read(TYPO)

        assert refused(new, initial_energy_kwh=Decimal("13000")) == [
            ("initial_above_first_read", "initial_energy_kwh")
        ]

    def test_an_initial_register_above_a_valid_first_reading(self):
        _, _, new = exchanged_and_read(RIGHT)

        assert refused(new, initial_energy_kwh=TYPO, initial_volume_m3=Decimal("11")) == [
            ("initial_above_first_read", "initial_energy_kwh"),
            ("initial_above_first_read", "initial_volume_m3"),
        ]

    def test_a_final_register_below_the_last_reading(self):
        _, old, _ = exchanged_and_read(RIGHT)  # last read 54,400 kWh, 544 m³

        assert refused(old, final_energy_kwh=Decimal("5445"), final_volume_m3=Decimal("54")) == [
            ("final_below_last_read", "final_energy_kwh"),
            ("final_below_last_read", "final_volume_m3"),
        ]

    def test_a_final_register_below_the_initial(self):
        removed = removed_500_to_900()

        assert refused(removed, final_energy_kwh=Decimal("400")) == [
            ("final_below_initial", "final_energy_kwh")
        ]

    def test_an_initial_register_above_the_recorded_final_is_refused_on_the_initial(self):
        removed = removed_500_to_900()

        assert refused(removed, initial_energy_kwh=Decimal("1000")) == [
            ("final_below_initial", "initial_energy_kwh")
        ]

    def test_another_unit_than_the_meters(self):
        installation = MeterInstallationFactory(
            installed_at=EXCHANGED, meter__register_unit="MWh", initial_energy_kwh=TYPO
        )

        assert refused(installation, initial_energy_kwh=RIGHT, register_unit="kWh") == [
            ("unit_mismatch", "register_unit")
        ]

    def test_a_corrected_installation_can_be_removed(self):
        """Before: the removal after a typo was refused (final below the initial)."""
        installation = MeterInstallationFactory(installed_at=EXCHANGED, initial_energy_kwh=TYPO)
        correct(installation, initial_energy_kwh=RIGHT)

        removed = meter_remove(
            installation=installation,
            removed_at=NOW,
            final_energy_kwh=Decimal("3000"),
            final_volume_m3=Decimal("30"),
        )

        assert removed.final_energy_kwh == Decimal("3000")


def api_url(installation) -> str:
    return f"/api/v1/meter-installations/{installation.pk}/correct/"


def api_refusals(response) -> list[tuple[str, str | None]]:
    return [(e["code"], e.get("field")) for e in response.json()["errors"]]


class TestTheApi:
    def test_a_correction_answers_the_installation(self):
        installation = MeterInstallationFactory(
            installed_at=EXCHANGED,
            meter__register_unit="MWh",
            meter__register_max=Decimal("99999.999"),
            initial_energy_kwh=TYPO,
        )

        with TestCase.captureOnCommitCallbacks():
            response = client_for(METERING_OPERATOR).post(
                api_url(installation),
                {"register_unit": "MWh", "initial_energy_kwh": "1.234", "reason": "typo"},
                format="json",
            )

        assert response.status_code == 200, response.content
        assert response.json()["initial_energy_kwh"] == "1234.000000"
        latest = installation.history.latest()
        assert latest.history_change_reason == "typo"
        assert latest.history_user.groups.get().name == METERING_OPERATOR
        assert RevalidationRequest.objects.filter(meter=installation.meter).exists()

    def test_refusals_are_a_422_with_an_item_per_register(self):
        installation = MeterInstallationFactory(installed_at=EXCHANGED, initial_energy_kwh=TYPO)

        response = client_for(METERING_OPERATOR).post(
            api_url(installation),
            {"final_energy_kwh": "2000", "final_volume_m3": "20", "reason": "typo"},
            format="json",
        )

        assert response.status_code == 422, response.content
        assert api_refusals(response) == [
            ("not_removed", "final_energy_kwh"),
            ("not_removed", "final_volume_m3"),
        ]
        assert registers(installation)[0] == TYPO

    def test_the_reason_is_required(self):
        installation = MeterInstallationFactory(installed_at=EXCHANGED, initial_energy_kwh=TYPO)

        response = client_for(METERING_OPERATOR).post(
            api_url(installation), {"initial_energy_kwh": "1234"}, format="json"
        )

        assert response.status_code == 400, response.content
        assert api_refusals(response) == [("required", "reason")]
        assert registers(installation)[0] == TYPO

    @pytest.mark.parametrize("role", [AUDITOR, BILLING_CLERK])
    def test_staff_without_the_change_permission_are_refused(self, role):
        installation = MeterInstallationFactory(installed_at=EXCHANGED, initial_energy_kwh=TYPO)

        response = client_for(role).post(
            api_url(installation), {"initial_energy_kwh": "1234", "reason": "typo"}, format="json"
        )

        assert response.status_code == 403, response.content
        assert registers(installation)[0] == TYPO

    def test_the_change_permission_is_enough(self):
        """Correcting changes an installation: no add permission is asked for as well."""
        client = api_client(staff_with_permissions("fitter", "change_meterinstallation"))
        installation = MeterInstallationFactory(installed_at=EXCHANGED, initial_energy_kwh=TYPO)

        with TestCase.captureOnCommitCallbacks():
            response = client.post(
                api_url(installation),
                {"initial_energy_kwh": "1234", "reason": "typo"},
                format="json",
            )

        assert response.status_code == 200, response.content
        assert registers(installation)[0] == Decimal("1234")

    def test_an_unknown_installation_is_a_404(self):
        response = client_for(METERING_OPERATOR).post(
            "/api/v1/meter-installations/999999/correct/",
            {"initial_energy_kwh": "1234", "reason": "typo"},
            format="json",
        )

        assert response.status_code == 404


def admin_url(installation) -> str:
    return f"{INSTALLATIONS}{installation.pk}/correct/"


class TestTheAdminForm:
    def test_the_form_opens_with_the_registers_in_the_meters_unit(self, operator):
        installation = MeterInstallationFactory(
            installed_at=EXCHANGED,
            meter__register_unit="MWh",
            meter__register_max=Decimal("99999.999"),
            initial_energy_kwh=TYPO,
        )

        response = operator.get(admin_url(installation))

        assert response.status_code == 200
        form = response.context["form"]
        assert form["initial_energy_kwh"].value() == Decimal("12.345")
        assert form.fields["initial_energy_kwh"].label == "Initial energy register (MWh)"
        assert "final_energy_kwh" not in form.fields  # installed: no final registers

    def test_correcting_the_initial_register_saves_it_with_the_reason(self, operator):
        _, _, new = exchanged_and_read(TYPO)

        with TestCase.captureOnCommitCallbacks():
            response = operator.post(
                admin_url(new),
                {
                    "initial_energy_unit": "kWh",
                    "initial_energy_kwh": "1234",
                    "initial_volume_m3": "0",
                    "reason": "typed 12345 for 1234",
                },
            )
        revalidate_as_requested(new.meter)

        assert response.status_code == 302, response.context["form"].errors
        assert response["Location"] == f"{INSTALLATIONS}{new.pk}/change/"
        assert registers(new)[0] == RIGHT
        latest = new.history.latest()
        assert (latest.history_user, latest.history_change_reason) == (
            operator.user,
            "typed 12345 for 1234",
        )
        assert statuses(new.meter) == {"valid"}

    def test_only_the_registers_changed_are_sent(self, operator):
        installation = MeterInstallationFactory(
            installed_at=EXCHANGED, initial_energy_kwh=TYPO, initial_volume_m3=Decimal("7")
        )

        with TestCase.captureOnCommitCallbacks():
            response = operator.post(
                admin_url(installation),
                {"initial_energy_kwh": "1234", "initial_volume_m3": "7.0000", "reason": "typo"},
            )

        assert response.status_code == 302
        assert registers(installation)[:2] == (RIGHT, Decimal("7"))

    def test_a_refusal_shows_on_its_field_and_nothing_changes(self, operator):
        _, _, new = exchanged_and_read(TYPO)
        history = history_count(new)

        response = operator.post(
            admin_url(new),
            {"initial_energy_kwh": "13000", "initial_volume_m3": "0", "reason": "typo"},
        )

        assert response.status_code == 200
        errors = response.context["form"].errors
        assert list(errors) == ["initial_energy_kwh"]
        assert "above the first reading since the installation" in errors["initial_energy_kwh"][0]
        assert registers(new)[0] == TYPO
        assert history_count(new) == history

    def test_the_reason_is_required(self, operator):
        installation = MeterInstallationFactory(installed_at=EXCHANGED, initial_energy_kwh=TYPO)

        response = operator.post(
            admin_url(installation), {"initial_energy_kwh": "1234", "initial_volume_m3": "0"}
        )

        assert response.status_code == 200
        assert list(response.context["form"].errors) == ["reason"]
        assert registers(installation)[0] == TYPO

    def test_a_form_without_changes_says_so(self, operator):
        installation = MeterInstallationFactory(installed_at=EXCHANGED, initial_energy_kwh=TYPO)

        response = operator.post(
            admin_url(installation),
            {"initial_energy_kwh": "12345", "initial_volume_m3": "0", "reason": "typo"},
        )

        assert response.status_code == 200
        assert response.context["form"].non_field_errors() == [
            "Nothing to correct: change at least one register or time."
        ]

    def test_a_removed_installations_final_register_is_corrected(self, operator):
        contract, old, _ = exchanged_and_read(RIGHT)

        with TestCase.captureOnCommitCallbacks():
            response = operator.post(
                admin_url(old),
                {
                    "initial_energy_kwh": "0",
                    "initial_volume_m3": "0",
                    "final_energy_kwh": "54550",
                    "final_volume_m3": "545",
                    "reason": "final register misread",
                },
            )
        revalidate_as_requested(old.meter)

        assert response.status_code == 302, response.context["form"].errors
        assert registers(old)[2] == Decimal("54550")
        assert boundary(contract.connection, NOV) == (Decimal("56216.000000"), "actual")

    def test_the_installations_page_links_the_form_for_those_who_may_use_it(self, login):
        installation = MeterInstallationFactory()
        page = f"{INSTALLATIONS}{installation.pk}/change/"

        operators = login(METERING_OPERATOR).get(page).content.decode()
        auditors = login(AUDITOR).get(page).content.decode()

        assert f'href="{admin_url(installation)}">Correct registers or times<' in operators
        assert admin_url(installation) not in auditors

    @pytest.mark.parametrize("role", [AUDITOR, BILLING_CLERK, None])
    def test_staff_without_the_change_permission_are_refused(self, login, role):
        client = login(role)
        installation = MeterInstallationFactory(installed_at=EXCHANGED, initial_energy_kwh=TYPO)

        responses = [
            client.get(admin_url(installation)),
            client.post(
                admin_url(installation),
                {"initial_energy_kwh": "1234", "initial_volume_m3": "0", "reason": "typo"},
            ),
        ]

        assert [r.status_code for r in responses] == [403, 403]
        assert registers(installation)[0] == TYPO

    def test_the_change_permission_is_enough(self, login):
        client = login(None)
        client.user.user_permissions.add(
            Permission.objects.get(codename="change_meterinstallation")
        )
        installation = MeterInstallationFactory(installed_at=EXCHANGED)

        assert client.get(admin_url(installation)).status_code == 200
