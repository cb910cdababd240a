"""An installation or removal time typed wrong, corrected (``meter_installation_correct``
with ``installed_at`` / ``removed_at``).

The scenario: a meter exchanged on 15 October 2026 at 10:00 UTC (the new meter's initial
register 1,234 kWh, right this time) was recorded as exchanged on 1 November at 10:00.
The new meter's daily readings from 16 October (1,300 kWh on, 2,900 on 1 November) were
all before its recorded installation, so VEE rejected them as outside any installation,
and the connection's 1 November register could only be estimated from the old meter.
An exchange moves as one: moving the new meter's installation moves the old meter's
removal, each checked with its own registers.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import TestCase
from django.utils import timezone

from billing.services.rerating import invoices_rerate_changed
from heatutility.errors import DomainError
from heatutility.roles import METERING_OPERATOR
from metering.installations import (
    UnableToInstallMeter,
)
from metering.models import BoundaryRegister, MeterInstallation, Reading, RevalidationRequest
from metering.vee.services import vee_revalidate_meter, vee_run_meter
from tests.billing.helpers import bill_month, client_for, invoice_of
from tests.customers.factories import BuildingInterfaceUnitFactory
from tests.metering.factories import MeterInstallationFactory
from tests.metering.factories_readings import add_readings
from tests.metering.typo_exchange import (
    EXCHANGED,
    NOV,
    NOW,
    OCT,
    RIGHT,
    SEP_1,
    boundary,
    correction,
    exchanged,
)

pytestmark = pytest.mark.django_db

TYPED = dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)  # the exchange as recorded


def statuses(meter) -> set[str]:
    return set(Reading.objects.filter(meter=meter).values_list("status", flat=True))


def times(installation) -> tuple:
    installation.refresh_from_db()
    return installation.installed_at, installation.removed_at


def exchanged_at_the_typed_time():
    """(contract, old installation, new installation), the exchange recorded at TYPED,
    both meters' readings stored and validated as the nights did."""
    contract, old, new = exchanged(exchanged_at=TYPED, initial_energy_kwh=RIGHT)
    for each in (old, new):
        vee_run_meter(meter_id=each.meter_id, start=SEP_1, end=NOW, now=NOW)
    RevalidationRequest.objects.all().delete()  # the exchange's, run above
    return contract, old, new


def correct(installation, reason="exchange typed on the day of the paperwork", **fields):
    return correction(installation, reason, **fields)


def revalidate_as_requested() -> None:
    """What the queued tasks do, from the requests the correction wrote."""
    for meter_id, since in RevalidationRequest.objects.values_list("meter_id", "since"):
        vee_revalidate_meter(meter_id=meter_id, start=since, now=NOW)


def refused(installation, *others, **fields) -> list[tuple[str, str | None]]:
    """The items of a refused correction, having checked that nothing was saved."""
    before = [times(each) for each in (installation, *others)]
    history = MeterInstallation.history.count()
    with pytest.raises(UnableToInstallMeter) as refusal:
        correct(installation, **fields)
    assert [times(each) for each in (installation, *others)] == before
    assert MeterInstallation.history.count() == history
    assert not RevalidationRequest.objects.exists()
    return [(e.code, e.field) for e in refusal.value.errors]


class TestTheExchangeTimeCorrected:
    def test_both_halves_move_and_the_readings_count_again(self, admin_user):
        contract, old, new = exchanged_at_the_typed_time()
        assert statuses(new.meter) == {"rejected"}
        before = boundary(contract.connection, NOV)
        assert before is None or before[1] != "actual"

        corrected, queued = correct(new, installed_at=EXCHANGED, actor=admin_user)
        revalidate_as_requested()

        assert times(corrected) == (EXCHANGED, None)
        assert times(old) == (SEP_1, EXCHANGED)
        assert len(queued) == 2  # one revalidation task per meter, after the commit
        assert statuses(new.meter) == {"valid"}
        # 54,450 at the exchange, then 2,900 − 1,234 on the new meter
        assert boundary(contract.connection, NOV) == (Decimal("56116.000000"), "actual")
        for each in (old, new):
            latest = each.history.latest()
            assert (latest.history_user, latest.history_change_reason) == (
                admin_user,
                "exchange typed on the day of the paperwork",
            )

    def test_moving_the_old_meters_removal_moves_the_new_meters_installation(self):
        _contract, old, new = exchanged_at_the_typed_time()

        correct(old, removed_at=EXCHANGED)

        assert times(old) == (SEP_1, EXCHANGED)
        assert times(new) == (EXCHANGED, None)

    def test_each_meter_is_revalidated_from_the_earliest_time_concerned(self):
        _contract, old, new = exchanged_at_the_typed_time()

        correct(new, installed_at=EXCHANGED)

        assert dict(RevalidationRequest.objects.values_list("meter_id", "since")) == {
            new.meter_id: EXCHANGED,
            old.meter_id: SEP_1,
        }

    def test_registers_stay_each_installations_own(self):
        _contract, old, new = exchanged_at_the_typed_time()

        correct(new, installed_at=EXCHANGED)

        old.refresh_from_db()
        new.refresh_from_db()
        assert (old.final_energy_kwh, new.initial_energy_kwh) == (Decimal("54450"), RIGHT)

    def test_the_same_time_again_changes_nothing(self):
        _contract, _old, new = exchanged_at_the_typed_time()
        history = MeterInstallation.history.count()

        correct(new, installed_at=TYPED)

        assert MeterInstallation.history.count() == history
        assert not RevalidationRequest.objects.exists()

    def test_registers_recorded_between_steps_before_that_rule_do_not_block_a_move(self):
        """Registers stored before off-step registers were refused (a meter set to count
        in whole kWh afterwards): a moved time checks them against the readings, not
        again against the display's step, which does not depend on the time."""
        _contract, old, new = exchanged_at_the_typed_time()
        MeterInstallation.objects.filter(pk=old.pk).update(final_energy_kwh=Decimal("54450.5"))
        MeterInstallation.objects.filter(pk=new.pk).update(initial_energy_kwh=Decimal("1233.5"))

        corrected, _ = correct(new, installed_at=EXCHANGED)

        assert times(corrected) == (EXCHANGED, None)
        assert times(old) == (SEP_1, EXCHANGED)
        RevalidationRequest.objects.all().delete()
        # given anew, the register is checked against the step
        assert refused(new, old, initial_energy_kwh=Decimal("1234.5")) == [
            ("off_resolution", "initial_energy_kwh")
        ]

    def test_a_register_and_a_time_corrected_together(self):
        _contract, old, _new = exchanged_at_the_typed_time()

        correct(old, removed_at=EXCHANGED, final_energy_kwh=Decimal("54460"))

        old.refresh_from_db()
        assert (old.removed_at, old.final_energy_kwh) == (EXCHANGED, Decimal("54460"))


def test_the_october_bill_on_the_estimate_is_rerated_once_the_time_is_corrected():
    """Billed while the exchange stood at 1 November, October ended on an estimate from
    the old meter; corrected, the re-rating look credits it and bills 3.116 MWh (the old
    meter's 1,450 kWh to the exchange, the new meter's 1,666 since)."""
    contract, _old, new = exchanged_at_the_typed_time()
    bill_month(contract.account.network, start=OCT, now=NOW)
    billed = invoice_of(contract, kind="invoice")
    (energy,) = billed.lines.filter(component="energy")
    assert energy.quantity != Decimal("3.116")
    # the registers billed were seen by an earlier look
    BoundaryRegister.objects.update(updated_at=timezone.now() - dt.timedelta(days=1))
    assert invoices_rerate_changed(now=timezone.now()) == []

    correct(new, installed_at=EXCHANGED)
    revalidate_as_requested()
    [(credit, correction)] = invoices_rerate_changed(now=timezone.now())

    assert credit.original_id == correction.original_id == billed.pk
    assert credit.gross == -billed.gross
    (energy,) = correction.lines.filter(component="energy")
    assert energy.quantity == Decimal("3.116")
    assert not correction.has_estimated_reads


class TestRefusals:
    def test_an_exchange_cannot_move_before_the_old_meters_installation(self):
        _contract, old, new = exchanged_at_the_typed_time()

        assert refused(new, old, installed_at=SEP_1 - dt.timedelta(days=1)) == [
            ("exchange_out_of_order", "installed_at")
        ]

    def test_a_removal_not_after_the_installation(self):
        _contract, old, new = exchanged_at_the_typed_time()

        assert refused(old, new, removed_at=SEP_1) == [("removed_before_installed", "removed_at")]

    def test_the_new_meters_initial_register_is_checked_at_the_moved_installation(self):
        """The new meter's initial 1,234 kWh against its first read after the new time:
        one taken at the workshop, 1,000 kWh, before the meter was installed."""
        _contract, old, new = exchanged_at_the_typed_time()
        # a read of the new meter at the workshop, before it was installed
        add_readings(new.meter, [(dt.datetime(2026, 10, 10, tzinfo=dt.UTC), "1000", "5")])

        assert refused(new, old, installed_at=dt.datetime(2026, 10, 9, tzinfo=dt.UTC)) == [
            ("initial_above_first_read", "installed_at")
        ]

    def test_the_old_meters_final_register_is_checked_at_the_moved_removal(self):
        """The old meter read 54,400 kWh at midnight on 15 October: a removal moved past
        that read with a final register of 54,350 would have the register fall."""
        _contract, old, new = exchanged_at_the_typed_time()
        correct(old, removed_at=EXCHANGED)
        RevalidationRequest.objects.all().delete()
        correct(old, removed_at=dt.datetime(2026, 10, 14, 10, tzinfo=dt.UTC))
        RevalidationRequest.objects.all().delete()
        correct(old, final_energy_kwh=Decimal("54350"))
        RevalidationRequest.objects.all().delete()

        assert refused(old, new, removed_at=EXCHANGED) == [("final_below_last_read", "removed_at")]

    def test_the_new_meters_initial_register_is_checked_at_a_moved_removal(self):
        """Moving the old meter's removal moves the new meter's installation: its initial
        register must not lie above its first reading after the new time."""
        _contract, old, new = exchanged_at_the_typed_time()
        add_readings(new.meter, [(dt.datetime(2026, 10, 10, tzinfo=dt.UTC), "1000", "5")])

        assert refused(old, new, removed_at=dt.datetime(2026, 10, 9, tzinfo=dt.UTC)) == [
            ("initial_above_first_read", "removed_at")
        ]

    def test_an_installed_meter_has_no_removal_to_move(self):
        _contract, _old, new = exchanged_at_the_typed_time()

        assert refused(new, removed_at=NOW) == [("not_removed", "removed_at")]

    def test_a_time_without_an_offset(self):
        _contract, _old, new = exchanged_at_the_typed_time()

        assert refused(new, installed_at=dt.datetime(2026, 10, 15, 10)) == [
            ("naive_datetime", "installed_at")
        ]

    def test_a_move_into_another_installation_is_refused_and_nothing_changes(self):
        """Not an exchange (a day without a meter between them): the unit's installations
        never overlap."""
        unit = BuildingInterfaceUnitFactory()
        first = MeterInstallationFactory(
            unit=unit,
            installed_at=SEP_1,
            removed_at=dt.datetime(2026, 9, 10, tzinfo=dt.UTC),
            final_energy_kwh=Decimal("900"),
            final_volume_m3=Decimal("9"),
        )
        second = MeterInstallationFactory(
            unit=unit, installed_at=dt.datetime(2026, 9, 11, tzinfo=dt.UTC)
        )

        with pytest.raises(DomainError):
            correct(second, installed_at=dt.datetime(2026, 9, 5, tzinfo=dt.UTC))

        assert times(first) == (SEP_1, dt.datetime(2026, 9, 10, tzinfo=dt.UTC))
        assert times(second) == (dt.datetime(2026, 9, 11, tzinfo=dt.UTC), None)


class TestTheApi:
    def test_a_moved_time_answers_the_installation(self):
        _contract, old, new = exchanged_at_the_typed_time()

        with TestCase.captureOnCommitCallbacks():
            response = client_for(METERING_OPERATOR).post(
                f"/api/v1/meter-installations/{new.pk}/correct/",
                {"installed_at": "2026-10-15T12:00:00+02:00", "reason": "typed late"},
                format="json",
            )

        assert response.status_code == 200, response.content
        moved = dt.datetime.fromisoformat(response.json()["installed_at"])
        assert moved == EXCHANGED
        assert times(old) == (SEP_1, EXCHANGED)

    def test_a_refusal_is_a_422_on_the_time(self):
        _contract, _old, new = exchanged_at_the_typed_time()

        response = client_for(METERING_OPERATOR).post(
            f"/api/v1/meter-installations/{new.pk}/correct/",
            {"removed_at": "2026-11-02T00:00:00Z", "reason": "typo"},
            format="json",
        )

        assert response.status_code == 422, response.content
        assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [
            ("not_removed", "removed_at")
        ]


class TestTheAdminForm:
    def url(self, installation) -> str:
        return f"/admin/metering/meterinstallation/{installation.pk}/correct/"

    def test_the_form_opens_with_the_times_as_recorded_in_local_time(self, operator):
        _contract, old, new = exchanged_at_the_typed_time()

        installed = operator.get(self.url(new)).context["form"]
        removed = operator.get(self.url(old)).context["form"]

        # 10:00 UTC is 11:00 in Copenhagen (CET), shown as the admin types it
        assert installed["installed_at"].value() == dt.datetime(2026, 11, 1, 11, 0)
        assert "removed_at" not in installed.fields  # installed: no removal to correct
        assert removed["removed_at"].value() == dt.datetime(2026, 11, 1, 11, 0)

    def test_a_moved_installation_moves_the_exchange(self, operator):
        _contract, old, new = exchanged_at_the_typed_time()

        with TestCase.captureOnCommitCallbacks():
            response = operator.post(
                self.url(new),
                {
                    "installed_at": "2026-10-15 12:00",  # local (Copenhagen, CEST)
                    "initial_energy_kwh": "1234",
                    "initial_volume_m3": "0",
                    "reason": "typed on the day of the paperwork",
                },
            )

        assert response.status_code == 302, response.context["form"].errors
        assert times(new) == (EXCHANGED, None)
        assert times(old) == (SEP_1, EXCHANGED)

    def test_a_refusal_shows_on_the_time(self, operator):
        _contract, _old, new = exchanged_at_the_typed_time()

        response = operator.post(
            self.url(new),
            {
                "installed_at": "2026-08-01 12:00",
                "initial_energy_kwh": "1234",
                "initial_volume_m3": "0",
                "reason": "typo",
            },
        )

        assert response.status_code == 200
        errors = response.context["form"].errors
        assert list(errors) == ["installed_at"]
        assert "the exchange cannot move past it" in errors["installed_at"][0]
        assert times(new) == (TYPED, None)

    def test_a_time_in_the_repeated_dst_hour_reads_back_as_the_same_instant(self, operator):
        """02:30 on 25 October 2026 happens twice in Copenhagen: the form shows the
        recorded one with its offset, so a correction of a register leaves it as it is."""
        first_0230 = dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC)  # 02:30 CEST
        installation = MeterInstallationFactory(
            installed_at=first_0230, initial_energy_kwh=Decimal("12345")
        )

        form = operator.get(self.url(installation)).context["form"]
        shown = form["installed_at"].value()
        with TestCase.captureOnCommitCallbacks():
            response = operator.post(
                self.url(installation),
                {
                    "installed_at": shown,
                    "initial_energy_kwh": "1234",
                    "initial_volume_m3": "0",
                    "reason": "typo",
                },
            )

        assert shown == "2026-10-25T02:30+02:00"
        assert response.status_code == 302, response.context["form"].errors
        installation.refresh_from_db()
        assert (installation.installed_at, installation.initial_energy_kwh) == (
            first_0230,
            Decimal("1234"),
        )
