"""One meter's failure does not stop the night's work for the others.

Nightly VEE (``vee_run_pending``) validates what new batches brought in and runs the
revalidations whose task was lost (``revalidation_requests_run``), meter by meter.  A
meter whose run raises (bad data, a bug, a lock timeout) is rolled back whole and
logged; its requests stay pending with the failure recorded on them (``attempts``,
``last_error``, ``last_attempt_at``), its batches stay unchecked, and the next meter is
run.

The meters are the five-digit registers of ``test_meter_settings``, read again as six
digits (``test_revalidation_outbox``): a revalidation that ran rejects the reads after
the fall, one that did not leaves them valid.
"""

import datetime as dt
import logging

import orjson
import pytest
from django.test import TestCase

from metering.ingest.batches import readings_batch_submit
from metering.models import (
    IngestBatch,
    IngestBatchMeter,
    Reading,
    ReadingIssue,
    RevalidationRequest,
)
from metering.vee import services
from metering.vee.services import (
    LAST_ERROR_LENGTH,
    revalidation_requests_run_for,
    vee_run_pending,
)
from tests.metering.factories import MeterInstallationFactory
from tests.metering.factories_readings import MeterVendorFactory
from tests.metering.test_meter_settings import (
    INSTALLED,
    NOVEMBER_WITHDRAWN,
    assert_five_digits,
    assert_six_digits,
    five_digits,
)
from tests.metering.test_revalidation_outbox import GRACE, SIX_DIGITS, change_and_lose_the_task

pytestmark = pytest.mark.django_db
REAL_VEE_RUN_METER = services.vee_run_meter


def fails_for(meter_id, message="lock timeout on the meter's readings"):
    """``vee_run_meter`` that raises for one meter, after its writes (so a rollback that
    leaves them would show), and runs the others."""

    def vee_run_meter(**arguments):
        findings = REAL_VEE_RUN_METER(**arguments)
        if arguments["meter_id"] == meter_id:
            raise RuntimeError(message)
        return findings

    return vee_run_meter


def two_meters_with_lost_tasks():
    """Two meters whose new register settings were never revalidated; the moment the
    night runs them."""
    broken, fine = five_digits(), five_digits()
    change_and_lose_the_task(broken.meter, **SIX_DIGITS)
    request = change_and_lose_the_task(fine.meter, **SIX_DIGITS)
    return broken, fine, request.requested_at + GRACE + dt.timedelta(minutes=1)


def request_of(inst):
    return RevalidationRequest.objects.get(meter=inst.meter)


class TestTheNightlyRevalidations:
    def test_a_failing_meter_does_not_stop_the_next_one(self, monkeypatch):
        broken, fine, night = two_meters_with_lost_tasks()
        monkeypatch.setattr(services, "vee_run_meter", fails_for(broken.meter_id))

        vee_run_pending(now=night)

        assert not RevalidationRequest.objects.filter(meter=fine.meter).exists()
        assert_six_digits(fine, november=NOVEMBER_WITHDRAWN)
        failed = request_of(broken)
        assert (failed.since, failed.attempts, failed.last_attempt_at) == (INSTALLED, 1, night)
        assert failed.last_error == "RuntimeError: lock timeout on the meter's readings"
        assert_five_digits(broken)  # its run was rolled back whole

    def test_the_failure_is_logged_with_the_meter(self, monkeypatch, caplog):
        broken, _fine, night = two_meters_with_lost_tasks()
        monkeypatch.setattr(services, "vee_run_meter", fails_for(broken.meter_id))

        with caplog.at_level(logging.ERROR, logger="metering.vee.services"):
            vee_run_pending(now=night)

        (record,) = caplog.records
        assert f"meter {broken.meter_id}" in record.getMessage()
        assert record.exc_info[0] is RuntimeError

    def test_a_later_successful_night_works_the_request_off(self, monkeypatch):
        broken, _fine, night = two_meters_with_lost_tasks()
        monkeypatch.setattr(services, "vee_run_meter", fails_for(broken.meter_id))
        vee_run_pending(now=night)
        monkeypatch.undo()

        vee_run_pending(now=night + dt.timedelta(days=1))

        assert RevalidationRequest.objects.count() == 0
        assert_six_digits(broken, november=NOVEMBER_WITHDRAWN)

    def test_each_failed_night_counts_and_the_last_error_is_kept_short(self, monkeypatch):
        broken, _fine, night = two_meters_with_lost_tasks()
        monkeypatch.setattr(services, "vee_run_meter", fails_for(broken.meter_id))
        vee_run_pending(now=night)
        monkeypatch.setattr(services, "vee_run_meter", fails_for(broken.meter_id, "x" * 2000))

        vee_run_pending(now=night + dt.timedelta(days=1))

        failed = request_of(broken)
        assert (failed.attempts, failed.last_attempt_at) == (2, night + dt.timedelta(days=1))
        assert len(failed.last_error) == LAST_ERROR_LENGTH
        assert failed.last_error.startswith("RuntimeError: xxx")


class TestRevalidatingChosenMeters:
    def test_runs_each_from_its_earliest_request_and_reports_the_failed(self, monkeypatch):
        broken, fine, _night = two_meters_with_lost_tasks()
        now = request_of(fine).requested_at  # younger than the grace: run all the same
        monkeypatch.setattr(services, "vee_run_meter", fails_for(broken.meter_id))

        outcome = revalidation_requests_run_for(meter_ids=[broken.meter_id, fine.meter_id], now=now)

        assert (outcome.revalidated, outcome.failed) == ([fine.meter_id], [broken.meter_id])
        assert not RevalidationRequest.objects.filter(meter=fine.meter).exists()
        assert request_of(broken).attempts == 1
        assert_six_digits(fine, november=NOVEMBER_WITHDRAWN)

    def test_a_meter_without_pending_requests_is_skipped(self):
        inst = five_digits()

        outcome = revalidation_requests_run_for(meter_ids=[inst.meter_id], now=INSTALLED)

        assert (outcome.revalidated, outcome.failed, outcome.findings) == ([], [], 0)


T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def delivered(vendor, inst):
    """A batch with a register decrease (the third read) for the meter."""
    body = orjson.dumps(
        [
            {
                "meter": inst.meter.serial,
                "read_at": (T0 + dt.timedelta(hours=h)).isoformat(),
                "energy": e,
                "energy_unit": "kWh",
                "volume_m3": 1 + h / 10,
            }
            for h, e in enumerate([100, 104, 99, 108])
        ]
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        batch, _ = readings_batch_submit(vendor=vendor, body=body, received_at=T0)
    return batch


def decrease_rejected(inst):
    read = Reading.objects.get(meter=inst.meter, read_at=T0 + dt.timedelta(hours=2))
    return read.status == "rejected"


def one_failing_of_two(monkeypatch, message="lock timeout on the meter's readings"):
    """Two meters of a vendor, a batch for each, and VEE failing on the first: the
    meters (broken, fine) and their batches (held, checked once a night has run)."""
    vendor = MeterVendorFactory()
    broken, fine = (
        MeterInstallationFactory(meter__vendor=vendor),
        MeterInstallationFactory(meter__vendor=vendor),
    )
    held, checked = delivered(vendor, broken), delivered(vendor, fine)
    monkeypatch.setattr(services, "vee_run_meter", fails_for(broken.meter_id, message))
    return broken, fine, held, checked


class TestTheNightlyBatches:
    def test_a_batch_is_checked_only_when_all_its_meters_were(self, monkeypatch):
        broken, fine, held, checked = one_failing_of_two(monkeypatch)

        vee_run_pending(now=T0 + dt.timedelta(days=1))

        held.refresh_from_db()
        checked.refresh_from_db()
        assert (held.vee_done_at, checked.vee_done_at) == (None, T0 + dt.timedelta(days=1))
        assert decrease_rejected(fine)
        assert not decrease_rejected(broken)
        assert not ReadingIssue.objects.filter(meter=broken.meter).exists()

    def test_the_next_night_checks_the_batch_it_held(self, monkeypatch):
        vendor = MeterVendorFactory()
        inst = MeterInstallationFactory(meter__vendor=vendor)
        batch = delivered(vendor, inst)
        monkeypatch.setattr(services, "vee_run_meter", fails_for(inst.meter_id))
        vee_run_pending(now=T0 + dt.timedelta(days=1))
        monkeypatch.undo()

        vee_run_pending(now=T0 + dt.timedelta(days=2))

        batch.refresh_from_db()
        assert batch.vee_done_at == T0 + dt.timedelta(days=2)
        assert decrease_rejected(inst)
        assert IngestBatch.objects.filter(vee_done_at__isnull=True).count() == 0

    def test_the_failing_meter_is_recorded_on_the_batch_each_night(self, monkeypatch):
        broken, fine, held, checked = one_failing_of_two(monkeypatch, "x" * 900)
        vee_run_pending(now=T0 + dt.timedelta(days=1))
        monkeypatch.setattr(services, "vee_run_meter", fails_for(broken.meter_id))

        vee_run_pending(now=T0 + dt.timedelta(days=2))

        span = IngestBatchMeter.objects.get(batch=held, meter=broken.meter)
        assert span.vee_attempts == 2
        assert span.vee_last_error == "RuntimeError: lock timeout on the meter's readings"
        assert span.vee_last_attempt_at == T0 + dt.timedelta(days=2)
        untouched = IngestBatchMeter.objects.get(batch=checked, meter=fine.meter)
        assert (untouched.vee_attempts, untouched.vee_last_error) == (0, "")

    def test_a_failure_record_is_kept_short(self, monkeypatch):
        vendor = MeterVendorFactory()
        inst = MeterInstallationFactory(meter__vendor=vendor)
        batch = delivered(vendor, inst)
        monkeypatch.setattr(services, "vee_run_meter", fails_for(inst.meter_id, "x" * 900))

        vee_run_pending(now=T0 + dt.timedelta(days=1))

        span = IngestBatchMeter.objects.get(batch=batch, meter=inst.meter)
        assert len(span.vee_last_error) == LAST_ERROR_LENGTH
        assert span.vee_last_error.startswith("RuntimeError: xxx")
