"""Staff see the pending revalidation requests in the admin, view only, and a metering
operator may run the selected requests' meters at once ("Revalidate now")."""

import pytest
from django.contrib import messages
from django.urls import reverse

from heatutility.roles import AUDITOR
from metering.models import RevalidationRequest
from metering.vee import services
from tests.metering.test_meter_settings import NOVEMBER_WITHDRAWN, assert_six_digits, five_digits
from tests.metering.test_revalidation_errors import fails_for
from tests.metering.test_revalidation_outbox import SIX_DIGITS, change_and_lose_the_task

pytestmark = pytest.mark.django_db
LIST = reverse("admin:metering_revalidationrequest_changelist")


def lost_task():
    """A meter whose new register settings wait for their revalidation, and its request."""
    inst = five_digits()
    return inst, change_and_lose_the_task(inst.meter, **SIX_DIGITS)


def revalidate_now(client, *requests):
    return client.post(
        LIST,
        {"action": "revalidate_now", "_selected_action": [r.pk for r in requests]},
        follow=True,
    )


def shown(response):
    return [(m.level, str(m)) for m in response.context["messages"]]


class TestTheList:
    def test_an_operator_sees_the_pending_requests_with_their_meters(self, operator):
        inst, _request = lost_task()

        page = operator.get(LIST)

        assert page.status_code == 200
        meter_page = reverse("admin:metering_heatmeter_change", args=[inst.meter_id])
        assert f'<a href="{meter_page}">{inst.meter.serial}</a>' in page.content.decode()

    def test_a_search_by_serial_finds_the_meter(self, operator):
        inst, request = lost_task()
        other, _ = lost_task()

        page = operator.get(LIST, {"q": inst.meter.serial})

        assert list(page.context["cl"].result_list) == [request]
        assert other.meter.serial not in page.content.decode()

    def test_the_failed_ones_can_be_filtered_and_show_their_error(self, operator, monkeypatch):
        broken, failed = lost_task()
        _fine, waiting = lost_task()
        monkeypatch.setattr(services, "vee_run_meter", fails_for(broken.meter_id))
        services.revalidation_requests_run_for(meter_ids=[broken.meter_id], now=failed.requested_at)

        page = operator.get(LIST, {"failed": "yes"})

        assert list(page.context["cl"].result_list) == [failed]
        assert "RuntimeError: lock timeout" in page.content.decode()
        assert list(operator.get(LIST, {"failed": "no"}).context["cl"].result_list) == [waiting]

    def test_staff_without_a_role_may_not_open_it(self, login):
        lost_task()
        client = login(None)

        assert client.get(LIST).status_code == 403

    def test_it_is_not_in_the_index_for_staff_without_a_role(self, login):
        client = login(None)

        assert LIST not in client.get(reverse("admin:index")).content.decode()


class TestViewOnly:
    def test_adding_changing_and_deleting_are_not_offered(self, operator):
        _inst, request = lost_task()
        change = reverse("admin:metering_revalidationrequest_change", args=[request.pk])
        delete = reverse("admin:metering_revalidationrequest_delete", args=[request.pk])

        page = operator.get(LIST)
        actions = [name for name, _label in page.context["action_form"].fields["action"].choices]

        assert actions == ["", "revalidate_now"]  # no "delete selected"
        assert operator.get(reverse("admin:metering_revalidationrequest_add")).status_code == 403
        assert operator.post(change, {"since": "2020-01-01 00:00"}).status_code == 403
        assert operator.get(delete).status_code == 403
        assert 'name="_save"' not in operator.get(change).content.decode()
        assert RevalidationRequest.objects.filter(pk=request.pk).exists()

    def test_an_auditor_sees_the_list_but_is_not_offered_the_action(self, login):
        lost_task()
        client = login(AUDITOR)

        page = client.get(LIST)

        assert page.status_code == 200
        assert page.context["action_form"] is None  # no action it may use

    def test_an_auditor_posting_the_action_revalidates_nothing(self, login):
        _inst, request = lost_task()
        client = login(AUDITOR)

        revalidate_now(client, request)

        assert RevalidationRequest.objects.filter(pk=request.pk).exists()


class TestRevalidateNow:
    def test_revalidates_the_meter_and_removes_the_request(self, operator):
        inst, request = lost_task()

        response = revalidate_now(operator, request)

        assert shown(response) == [(messages.SUCCESS, "Revalidated 1 meter(s), 0 failed.")]
        assert not RevalidationRequest.objects.filter(pk=request.pk).exists()
        assert_six_digits(inst, november=NOVEMBER_WITHDRAWN)

    def test_reports_a_failed_meter_and_keeps_its_request(self, operator, monkeypatch):
        broken, failed = lost_task()
        fine, done = lost_task()
        monkeypatch.setattr(services, "vee_run_meter", fails_for(broken.meter_id))

        response = revalidate_now(operator, failed, done)

        assert shown(response) == [
            (
                messages.WARNING,
                "Revalidated 1 meter(s), 1 failed; their requests stay, "
                "with the error in the list.",
            )
        ]
        assert list(RevalidationRequest.objects.values_list("pk", "attempts")) == [(failed.pk, 1)]
        assert_six_digits(fine, november=NOVEMBER_WITHDRAWN)

    def test_a_larger_selection_is_queued_a_task_per_meter(
        self, operator, monkeypatch, django_capture_on_commit_callbacks
    ):
        from unittest import mock

        from metering.admin import revalidation

        monkeypatch.setattr(revalidation, "RUN_IN_REQUEST", 1)
        _first, one = lost_task()
        _second, two = lost_task()

        with (
            mock.patch("metering.tasks.vee_revalidate.delay") as delay,
            django_capture_on_commit_callbacks(execute=True),
        ):
            response = revalidate_now(operator, one, two)

        assert shown(response) == [
            (
                messages.INFO,
                "Queued the revalidation of 2 meter(s): each request leaves the list once its "
                "meter is revalidated; a failure shows here with its error.",
            )
        ]
        assert sorted(call.args for call in delay.call_args_list) == sorted(
            (r.meter_id, r.since.isoformat()) for r in (one, two)
        )
        # nothing ran in the request: both still wait, as queued
        assert RevalidationRequest.objects.filter(pk__in=[one.pk, two.pk]).count() == 2


class TestBatchesHeldByAFailingMeter:
    """The batches list says which batches the nightly VEE has checked, which wait, and
    which it failed on; the batch's page names the meter and the error."""

    BATCHES = reverse("admin:metering_ingestbatch_changelist")

    def nights(self, monkeypatch):
        from metering.vee.services import vee_run_pending
        from tests.metering.test_revalidation_errors import T0, delivered, one_failing_of_two

        broken, fine, held, checked = one_failing_of_two(monkeypatch)
        vee_run_pending(now=T0)
        monkeypatch.undo()
        waiting = delivered(fine.meter.vendor, fine)  # came in after the night
        return broken, held, checked, waiting

    def test_the_list_shows_each_batch_s_vee_state(self, operator, monkeypatch):
        _broken, held, checked, waiting = self.nights(monkeypatch)

        page = operator.get(self.BATCHES)

        rows = rows_by_batch(page)
        assert "failed on a meter" in rows[held.pk]
        assert "checked 2026-11-01" in rows[checked.pk]
        assert "waits for the nightly run" in rows[waiting.pk]

    def test_the_failed_ones_can_be_filtered(self, operator, monkeypatch):
        _broken, held, checked, waiting = self.nights(monkeypatch)

        def listed(value):
            page = operator.get(self.BATCHES, {"vee": value})
            return {b.pk for b in page.context["cl"].result_list}

        assert listed("failing") == {held.pk}
        assert listed("waiting") == {waiting.pk}
        assert listed("checked") == {checked.pk}

    def test_the_batch_page_names_the_meter_and_the_error(self, operator, monkeypatch):
        broken, held, checked, _waiting = self.nights(monkeypatch)

        page = operator.get(reverse("admin:metering_ingestbatch_change", args=[held.pk]))
        other = operator.get(reverse("admin:metering_ingestbatch_change", args=[checked.pk]))

        text = page.content.decode()
        assert f"{broken.meter} (1× failed, last 2026-11-01" in text
        assert "RuntimeError: lock timeout on the meter&#x27;s readings" in text
        assert "lock timeout" not in other.content.decode()


def rows_by_batch(page):
    """Each listed batch's row of the change list, as HTML, by the batch's id."""
    rows = page.content.decode().split("<tr")
    return {
        batch.pk: next(
            row
            for row in rows
            if reverse("admin:metering_ingestbatch_change", args=[batch.pk]) in row
        )
        for batch in page.context["cl"].result_list
    }
