"""Staff admin for pending revalidation requests (``RevalidationRequest``, an outbox):
what is waiting to be revalidated, and what failed and why.

The requests are written and worked off by the services only, so the list is view-only;
"Revalidate now" runs the selected requests' meters at once
(``metering.vee.services.revalidation_requests_run_for``), or, for more than
``RUN_IN_REQUEST`` meters, queues a task per meter (``revalidation_requests_queue_for``)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from heatutility.admin import IndexedSearchMixin, ViewOnlyAdmin
from metering import models
from metering.vee.services import (
    revalidation_requests_queue_for,
    revalidation_requests_run_for,
)

REVALIDATE = "metering.change_revalidationrequest"
# meters revalidated in the request itself, with their outcome on the page; a larger
# selection is queued as tasks (a meter's run reads all its readings since ``since``)
RUN_IN_REQUEST = 10


class FailedFilter(admin.SimpleListFilter):
    title = "runs"
    parameter_name = "failed"

    def lookups(self, request, model_admin):
        return (("yes", "Failed at least once"), ("no", "Not failed"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(attempts__gt=0)
        if self.value() == "no":
            return queryset.filter(attempts=0)
        return queryset


@admin.register(models.RevalidationRequest)
class RevalidationRequestAdmin(IndexedSearchMixin, ViewOnlyAdmin):
    """Pending requests; a request stays here while its meter's revalidation has not
    succeeded (its task is queued or was lost, or the run failed: ``last_error``)."""

    list_display = (
        "meter_link",
        "since",
        "requested_at",
        "attempts",
        "last_error",
        "last_attempt_at",
    )
    list_filter = (FailedFilter, "requested_at", "last_attempt_at")
    list_select_related = ("meter",)
    search_fields = ("^meter__serial",)
    readonly_fields = [f.name for f in models.RevalidationRequest._meta.fields]
    actions = ["revalidate_now"]

    @admin.display(description="meter", ordering="meter__serial")
    def meter_link(self, obj):
        url = reverse("admin:metering_heatmeter_change", args=[obj.meter_id])
        return format_html('<a href="{}">{}</a>', url, obj.meter.serial)

    def has_revalidate_permission(self, request) -> bool:
        # the model's change permission: the requests themselves are never edited here
        return request.user.has_perm(REVALIDATE)

    @admin.action(
        description="Revalidate now (the selected requests' meters)",
        permissions=["revalidate"],
    )
    def revalidate_now(self, request, queryset):
        meter_ids = set(queryset.values_list("meter_id", flat=True))
        if len(meter_ids) > RUN_IN_REQUEST:
            queued = revalidation_requests_queue_for(meter_ids=meter_ids)
            self.message_user(
                request,
                f"Queued the revalidation of {queued} meter(s): each request leaves the list "
                "once its meter is revalidated; a failure shows here with its error.",
                messages.INFO,
            )
            return
        outcome = revalidation_requests_run_for(meter_ids=meter_ids, now=timezone.now())
        failed = len(outcome.failed)
        self.message_user(
            request,
            f"Revalidated {len(outcome.revalidated)} meter(s), {failed} failed"
            + ("; their requests stay, with the error in the list." if failed else "."),
            messages.WARNING if failed else messages.SUCCESS,
        )
