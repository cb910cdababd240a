"""A revalidation request is a row written with the change that needs it (an outbox).

``metering.installations.revalidation_queue`` used to schedule the task on commit and
nothing else: with the broker down or the worker killed, a meter's new register
settings never reached VEE's findings or the boundary registers billing reads.  Now the
request (``RevalidationRequest``) commits or rolls back with the change; the task
deletes the requests it covered with its results, and nightly VEE runs those still
pending after ``METERING_REVALIDATION_GRACE``.

The meter is the one of ``test_meter_settings``: a five-digit register (maximum 99,999
kWh) that rolled over on 20 October; read as six digits (999,999 kWh) the fall is a
decrease and the three reads after it are rejected.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import TestCase
from kombu.exceptions import OperationalError

from heatutility.errors import DomainError
from metering import tasks
from metering.installations import revalidation_queue
from metering.meters import meter_delete, meter_update
from metering.models import HeatMeter, RevalidationRequest
from metering.vee import services
from metering.vee.services import vee_run_pending
from tests.metering.factories import HeatMeterFactory
from tests.metering.test_meter_settings import (
    INSTALLED,
    NOVEMBER_WITHDRAWN,
    ROLLED,
    assert_five_digits,
    assert_six_digits,
    five_digits,
)

pytestmark = pytest.mark.django_db
SIX_DIGITS = {"register_max": Decimal("999999")}
GRACE = dt.timedelta(hours=1)


def pending(meter):
    return list(
        RevalidationRequest.objects.filter(meter=meter).order_by("pk").values_list("pk", "since")
    )


def change_and_lose_the_task(meter, **values):
    """``meter_update`` whose task never reaches a worker: its on-commit dispatch is
    captured and dropped.  Returns the request the change wrote."""
    with TestCase.captureOnCommitCallbacks() as dispatches:
        meter_update(meter=meter, values=values)
    assert len(dispatches) == 1
    return RevalidationRequest.objects.filter(meter=meter).latest("pk")


class TestTheRequestIsWrittenWithTheChange:
    def test_a_settings_change_leaves_a_pending_request_from_the_first_installation(self):
        inst = five_digits()

        request = change_and_lose_the_task(inst.meter, **SIX_DIGITS)

        assert pending(inst.meter) == [(request.pk, INSTALLED)]
        assert request.requested_at is not None
        assert_five_digits(inst)  # nothing ran yet

    def test_a_change_rolled_back_takes_its_request_with_it(self):
        inst = five_digits()
        inside = []

        def change_then_fail():
            with transaction.atomic():
                meter_update(meter=inst.meter, values=SIX_DIGITS)
                inside.extend(since for _pk, since in pending(inst.meter))
                raise RuntimeError("the caller's transaction fails after the change")

        with TestCase.captureOnCommitCallbacks() as dispatches, pytest.raises(RuntimeError):
            change_then_fail()

        assert inside == [INSTALLED]
        assert pending(inst.meter) == []
        assert dispatches == []
        assert HeatMeter.objects.get(pk=inst.meter_id).register_max == Decimal("99999")

    def test_a_refused_change_requests_nothing_and_an_accepted_one_a_single_request(self):
        inst = five_digits()

        with pytest.raises(DomainError):
            meter_update(meter=inst.meter, values={"resolution": Decimal("100000")})
        refused = pending(inst.meter)
        request = change_and_lose_the_task(inst.meter, **SIX_DIGITS)

        assert refused == []
        assert pending(inst.meter) == [(request.pk, INSTALLED)]


class TestTheTaskWorksOffWhatItCovered:
    def test_a_successful_revalidation_removes_the_request(self):
        inst = five_digits()
        with TestCase.captureOnCommitCallbacks() as dispatches:
            meter_update(meter=inst.meter, values=SIX_DIGITS)
        before = pending(inst.meter)

        (dispatch,) = dispatches
        dispatch()  # the broker takes the task, a worker runs it

        assert [since for _pk, since in before] == [INSTALLED]
        assert pending(inst.meter) == []
        assert_six_digits(inst, november=NOVEMBER_WITHDRAWN)

    def test_a_request_made_while_it_runs_stays_for_its_own_task(self, monkeypatch):
        inst = five_digits()
        first = change_and_lose_the_task(inst.meter, **SIX_DIGITS)
        real = services.vee_run_meter
        made_meanwhile = []

        def staff_change_qp_meanwhile(**arguments):
            if not made_meanwhile:  # the run has read which requests it covers
                made_meanwhile.append(
                    change_and_lose_the_task(inst.meter, nominal_flow_m3h=Decimal("2.5"))
                )
            return real(**arguments)

        monkeypatch.setattr(services, "vee_run_meter", staff_change_qp_meanwhile)

        tasks.vee_revalidate.delay(inst.meter_id, INSTALLED.isoformat())

        (second,) = made_meanwhile
        assert (first.since, second.since) == (INSTALLED, INSTALLED)
        assert pending(inst.meter) == [(second.pk, INSTALLED)]
        assert_six_digits(inst, november=NOVEMBER_WITHDRAWN)

    def test_a_request_from_an_earlier_time_is_not_covered_by_a_later_run(self):
        inst = five_digits()
        with TestCase.captureOnCommitCallbacks():
            revalidation_queue(meter_id=inst.meter_id, since=INSTALLED)
            revalidation_queue(meter_id=inst.meter_id, since=ROLLED)
        earlier, later = pending(inst.meter)

        tasks.vee_revalidate.delay(inst.meter_id, ROLLED.isoformat())

        assert (earlier[1], later[1]) == (INSTALLED, ROLLED)
        assert pending(inst.meter) == [earlier]

    def test_a_failed_revalidation_keeps_the_request(self, monkeypatch):
        inst = five_digits()
        request = change_and_lose_the_task(inst.meter, **SIX_DIGITS)

        def worker_fails(**_arguments):
            raise RuntimeError("the worker's database connection dropped")

        monkeypatch.setattr(services, "vee_run_meter", worker_fails)

        with pytest.raises(RuntimeError):
            tasks.vee_revalidate.delay(inst.meter_id, INSTALLED.isoformat())

        assert pending(inst.meter) == [(request.pk, INSTALLED)]


class TestTheNightlyBackstop:
    def test_a_lost_task_is_run_by_nightly_vee_and_the_findings_follow_the_new_settings(self):
        inst = five_digits()
        request = change_and_lose_the_task(inst.meter, **SIX_DIGITS)

        vee_run_pending(now=request.requested_at + GRACE + dt.timedelta(minutes=1))

        assert pending(inst.meter) == []
        assert_six_digits(inst, november=NOVEMBER_WITHDRAWN)

    def test_the_nightly_task_runs_it_too(self, monkeypatch):
        inst = five_digits()
        request = change_and_lose_the_task(inst.meter, **SIX_DIGITS)
        later = request.requested_at + GRACE + dt.timedelta(minutes=1)
        monkeypatch.setattr(tasks.timezone, "now", lambda: later)

        tasks.vee_nightly.delay()

        assert pending(inst.meter) == []
        assert_six_digits(inst, november=NOVEMBER_WITHDRAWN)

    def test_a_request_younger_than_the_grace_period_is_left_to_its_task(self):
        inst = five_digits()
        request = change_and_lose_the_task(inst.meter, **SIX_DIGITS)

        vee_run_pending(now=request.requested_at + GRACE - dt.timedelta(minutes=1))

        assert pending(inst.meter) == [(request.pk, INSTALLED)]
        assert_five_digits(inst)

    def test_the_grace_period_is_a_setting(self, settings):
        inst = five_digits()
        request = change_and_lose_the_task(inst.meter, **SIX_DIGITS)
        settings.METERING_REVALIDATION_GRACE = dt.timedelta(minutes=5)

        vee_run_pending(now=request.requested_at + dt.timedelta(minutes=6))

        assert pending(inst.meter) == []
        assert_six_digits(inst, november=NOVEMBER_WITHDRAWN)


class TestADeletedMeter:
    def test_takes_its_pending_requests_with_it(self):
        meter = HeatMeterFactory()  # entered by mistake, never installed or read
        with TestCase.captureOnCommitCallbacks():
            revalidation_queue(meter_id=meter.pk, since=INSTALLED)
        before = pending(meter)

        meter_delete(meter=meter)

        assert [since for _pk, since in before] == [INSTALLED]
        assert not HeatMeter.objects.filter(pk=meter.pk).exists()
        assert RevalidationRequest.objects.count() == 0


@pytest.mark.django_db(transaction=True)
class TestWithTheBrokerDown:
    def test_the_committed_change_keeps_its_request_and_the_night_catches_up(self, monkeypatch):
        inst = five_digits()

        def broker_down(*_arguments, **_options):
            raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")

        monkeypatch.setattr(tasks.vee_revalidate, "delay", broker_down)

        meter = meter_update(meter=inst.meter, values=SIX_DIGITS)  # no error for the caller

        assert meter.register_max == Decimal("999999")
        (request,) = RevalidationRequest.objects.filter(meter=inst.meter)
        assert request.since == INSTALLED
        assert_five_digits(inst)

        vee_run_pending(now=request.requested_at + GRACE + dt.timedelta(minutes=1))

        assert pending(inst.meter) == []
        assert_six_digits(inst, november=NOVEMBER_WITHDRAWN)
