"""Staff admin for ingestion and VEE: batches (with progress), file upload, the exception
queue (bulk accept/reject, edit with the original kept), conflicts, edits, degree days."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from heatutility.admin import IndexedSearchMixin, ViewOnlyAdmin
from heatutility.errors import DomainError
from heatutility.uploads import upload_read
from metering import models
from metering.ingest.batches import readings_batches_release, readings_file_submit
from metering.selectors import batch_vee_failed, batch_vee_failures
from metering.vee.services import (
    reading_conflicts_resolve,
    reading_edit,
    reading_issues_accept,
    reading_issues_reject,
)


class UploadForm(forms.Form):
    vendor = forms.ModelChoiceField(queryset=models.MeterVendor.objects.filter(is_active=True))
    file = forms.FileField(help_text="The vendor's CSV export; its column mapping applies.")


class VeeRerunForm(forms.Form):
    meter = forms.ModelChoiceField(queryset=models.HeatMeter.objects.all())
    start = forms.DateTimeField(help_text="From (inclusive), e.g. 2026-10-01 00:00")
    end = forms.DateTimeField(help_text="To (inclusive)")

    def clean(self):
        """Times the product can work with (the task steps a day back from ``start``),
        in order: refused here, not failed in the worker after "queued"."""
        from heatutility.timeutil import DATE_OUT_OF_RANGE, date_in_range

        data = super().clean()
        for field in ("start", "end"):
            when = data.get(field)
            if when is not None and not date_in_range(when.date()):
                self.add_error(field, DATE_OUT_OF_RANGE)
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None and start > end:
            self.add_error("end", "The end lies before the start.")
        return data


class VeeFilter(admin.SimpleListFilter):
    title = "VEE"
    parameter_name = "vee"

    def lookups(self, request, model_admin):
        return [
            ("waiting", "Waits for the nightly run"),
            ("failing", "Failed on a meter"),
            ("checked", "Checked"),
        ]

    def queryset(self, request, queryset):
        failing = batch_vee_failed()
        if self.value() == "checked":
            return queryset.filter(vee_done_at__isnull=False)
        unchecked = queryset.filter(
            vee_done_at__isnull=True,
            state__in=(models.IngestBatch.State.DONE, models.IngestBatch.State.FAILED),
        )
        if self.value() == "failing":
            return unchecked.filter(failing)
        if self.value() == "waiting":
            return unchecked.exclude(failing)
        return queryset


@admin.register(models.IngestBatch)
class IngestBatchAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "vendor",
        "source",
        "state",
        "progress_bar",
        "accepted",
        "duplicate",
        "conflicting",
        "rejected",
        "error_count",
        "received_at",
        "finished_at",
        "vee",
    )
    list_filter = ("state", "source", "vendor", VeeFilter)
    readonly_fields = [
        *(f.name for f in models.IngestBatch._meta.fields if f.name != "payload"),
        "vee_failures",
    ]
    exclude = ("payload",)
    actions = ["release"]
    FAILURES_SHOWN = 20  # meters listed under "nightly VEE failures"
    change_list_template = "admin/metering/ingestbatch/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(vee_failing=batch_vee_failed())

    def has_release_permission(self, request):
        return request.user.has_perm("metering.add_reading")  # as uploading a file

    @admin.action(
        description="Process held batches again (their vendor is active again)",
        permissions=["release"],
    )
    def release(self, request, queryset):
        count = readings_batches_release(batches=queryset)
        self.message_user(
            request,
            f"{count} held batch(es) queued again; batches of a vendor still inactive, "
            "and batches not held, were left as they are.",
        )

    @admin.display(description="VEE")
    def vee(self, obj):
        if obj.vee_done_at is not None:
            return f"checked {timezone.localtime(obj.vee_done_at):%Y-%m-%d %H:%M}"
        if obj.vee_failing:
            return format_html("<strong>{}</strong>", "failed on a meter")
        if obj.state in (models.IngestBatch.State.DONE, models.IngestBatch.State.FAILED):
            return "waits for the nightly run"
        return "—"

    @admin.display(description="nightly VEE failures")
    def vee_failures(self, obj):
        """The meters whose nightly VEE failed, worst first (a batch is checked only when
        all its meters were; ``metering.vee.services.vee_run_pending``)."""
        failing = batch_vee_failures(batch=obj, limit=self.FAILURES_SHOWN + 1)
        if not failing:
            return "—"
        rows = format_html_join(
            "",
            "<li>{} ({}× failed, last {}): {}</li>",
            (
                (
                    span.meter,
                    span.vee_attempts,
                    f"{timezone.localtime(span.vee_last_attempt_at):%Y-%m-%d %H:%M}"
                    if span.vee_last_attempt_at
                    else "?",
                    span.vee_last_error,
                )
                for span in failing[: self.FAILURES_SHOWN]
            ),
        )
        more = " and more" if len(failing) > self.FAILURES_SHOWN else ""
        return format_html("<ul>{}</ul>{}", rows, more)

    @admin.display(description="progress")
    def progress_bar(self, obj):
        total = obj.row_count or 0
        share = 100 if obj.state == "done" else (int(100 * obj.progress / total) if total else 0)
        return format_html(
            '<progress max="100" value="{}"></progress> {} / {}', share, obj.progress, total or "?"
        )

    def get_urls(self):
        return [
            path(
                "upload/",
                self.admin_site.admin_view(self.upload_view),
                name="metering_ingestbatch_upload",
            ),
            path(
                "vee-rerun/",
                self.admin_site.admin_view(self.vee_rerun_view),
                name="metering_ingestbatch_vee_rerun",
            ),
            *super().get_urls(),
        ]

    def upload_view(self, request):
        if not request.user.has_perm("metering.add_reading"):
            messages.error(request, "You may not upload readings.")
            return redirect(reverse("admin:metering_ingestbatch_changelist"))
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                batch, _ = readings_file_submit(
                    vendor=form.cleaned_data["vendor"],
                    content=upload_read(upload),
                    file_name=upload.name,
                    received_at=timezone.now(),
                    created_by=request.user,
                )
            except DomainError as exc:
                for error in exc.errors[:20]:
                    form.add_error("file", f"{error.field or ''} {error.code}: {error.message}")
            else:
                messages.success(
                    request, f"File queued as batch {batch.pk}; progress shows in the list."
                )
                return redirect(reverse("admin:metering_ingestbatch_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Upload a vendor CSV file",
        }
        return render(request, "admin/metering/form.html", context)

    def vee_rerun_view(self, request):
        if not request.user.has_perm("metering.change_reading"):
            messages.error(request, "You may not rerun validation.")
            return redirect(reverse("admin:metering_ingestbatch_changelist"))
        form = VeeRerunForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            from metering.tasks import vee_rerun

            data = form.cleaned_data
            vee_rerun.delay(data["meter"].pk, data["start"].isoformat(), data["end"].isoformat())
            messages.success(
                request,
                f"Validation queued for {data['meter']} from {data['start']} to {data['end']}.",
            )
            return redirect(reverse("admin:metering_readingissue_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Rerun validation for a meter",
        }
        return render(request, "admin/metering/form.html", context)


class ResolveForm(forms.Form):
    reason = forms.CharField(max_length=300)


class ResolveWrapsForm(ResolveForm):
    wraps = forms.IntegerField(
        min_value=1,
        max_value=32767,
        label="Wraps",
        help_text="How many times the register wrapped since the previous usable read "
        "(VEE counted one; a register decrease counts as a rollover of that many wraps); at "
        "most what the time since that read allows.",
    )


class EditForm(forms.Form):
    energy_kwh = forms.DecimalField(max_digits=20, decimal_places=6, required=False)
    volume_m3 = forms.DecimalField(max_digits=16, decimal_places=4, required=False)
    flow_temp_c = forms.DecimalField(max_digits=6, decimal_places=2, required=False)
    return_temp_c = forms.DecimalField(max_digits=6, decimal_places=2, required=False)
    reason = forms.CharField(max_length=300)


class ReadingIssueChangeList(ChangeList):
    """The queue's page with each issue's reading read in one query, not one per row."""

    def get_results(self, request):
        super().get_results(request)
        issues = list(self.result_list)
        if not issues:
            return
        keys = Q()
        for issue in issues:
            keys |= Q(meter_id=issue.meter_id, read_at=issue.read_at)
        readings = {(r.meter_id, r.read_at): r for r in models.Reading.objects.filter(keys)}
        for issue in issues:
            issue.page_reading = readings.get((issue.meter_id, issue.read_at))


@admin.register(models.ReadingIssue)
class ReadingIssueAdmin(IndexedSearchMixin, admin.ModelAdmin):
    """The exception queue: suspect and rejected readings waiting for a person."""

    list_display = (
        "meter",
        "read_at",
        "code",
        "severity",
        "state",
        "wraps",
        "message",
        "reading_values",
        "resolved_by",
    )
    list_filter = ("state", "severity", "code")
    search_fields = ("^meter__serial",)
    readonly_fields = [f.name for f in models.ReadingIssue._meta.fields]
    actions = ["accept", "accept_wraps", "reject"]
    date_hierarchy = "read_at"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("meter", "resolved_by")

    def has_add_permission(self, request):
        return False

    def get_changelist(self, request, **kwargs):
        return ReadingIssueChangeList

    @admin.display(description="reading")
    def reading_values(self, obj):
        if hasattr(obj, "page_reading"):  # the changelist read the page's readings
            reading = obj.page_reading
        else:
            reading = models.Reading.objects.filter(
                meter_id=obj.meter_id, read_at=obj.read_at
            ).first()
        if reading is None:
            return "—"
        link = reverse("admin:metering_readingissue_edit", args=[obj.pk])
        return format_html(
            '{} kWh, {} m³ ({}) <a href="{}">edit</a>',
            reading.energy_kwh,
            reading.volume_m3,
            reading.status,
            link,
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/edit-reading/",
                self.admin_site.admin_view(self.edit_view),
                name="metering_readingissue_edit",
            ),
            *super().get_urls(),
        ]

    def _resolve(self, request, queryset, service, verb, form_class=ResolveForm):
        form = form_class(request.POST if "reason" in request.POST else None)
        if form.is_bound and form.is_valid():
            try:
                count = service(
                    issues=queryset, actor=request.user, now=timezone.now(), **form.cleaned_data
                )
            except DomainError as exc:
                for error in exc.errors[:20]:
                    form.add_error(
                        error.field if error.field in form.fields else None, error.message
                    )
            else:
                self.message_user(request, f"{verb} {count} finding(s).")
                return None
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "queryset": queryset,
            "action": request.POST.get("action"),
            "title": f"{verb} {queryset.count()} finding(s): why?",
        }
        return render(request, "admin/metering/resolve.html", context)

    @admin.action(description="Accept selected (reading counts as valid)", permissions=["change"])
    def accept(self, request, queryset):
        return self._resolve(request, queryset, reading_issues_accept, "Accepted")

    @admin.action(
        description="Accept selected ambiguous rollovers or register decreases as rollovers, "
        "stating how many wraps",
        permissions=["change"],
    )
    def accept_wraps(self, request, queryset):
        return self._resolve(
            request, queryset, reading_issues_accept, "Accepted", form_class=ResolveWrapsForm
        )

    @admin.action(description="Reject selected (reading is not used)", permissions=["change"])
    def reject(self, request, queryset):
        return self._resolve(request, queryset, reading_issues_reject, "Rejected")

    def edit_view(self, request, pk: int):
        if not request.user.has_perm("metering.change_reading"):
            messages.error(request, "You may not edit readings.")
            return redirect(reverse("admin:metering_readingissue_changelist"))
        issue = get_object_or_404(models.ReadingIssue, pk=pk)
        reading = models.Reading.objects.filter(
            meter_id=issue.meter_id, read_at=issue.read_at
        ).first()
        initial = (
            {
                f: getattr(reading, f)
                for f in ("energy_kwh", "volume_m3", "flow_temp_c", "return_temp_c")
            }
            if reading
            else {}
        )
        form = EditForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            values = {
                k: v
                for k, v in form.cleaned_data.items()
                if k != "reason" and v is not None and v != initial.get(k)
            }
            try:
                reading_edit(
                    meter_id=issue.meter_id,
                    read_at=issue.read_at,
                    values=values,
                    actor=request.user,
                    reason=form.cleaned_data["reason"],
                    now=timezone.now(),
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, "Reading edited; the original is kept in Reading edits.")
                return redirect(reverse("admin:metering_readingissue_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": f"Edit reading of {issue.meter} at {issue.read_at:%Y-%m-%d %H:%M %Z}",
        }
        return render(request, "admin/metering/form.html", context)


@admin.register(models.ReadingConflict)
class ReadingConflictAdmin(admin.ModelAdmin):
    """Delivered values that differ from a stored reading: keep the original, or apply the
    delivered values as a staff edit (the original is kept in Reading edits)."""

    list_display = ("meter", "read_at", "batch", "row", "state", "incoming", "resolved_by")
    list_filter = ("state",)
    readonly_fields = [f.name for f in models.ReadingConflict._meta.fields]
    actions = ["keep_original", "apply_incoming"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Keep the stored reading", permissions=["change"])
    def keep_original(self, request, queryset):
        count = reading_conflicts_resolve(
            conflicts=queryset, take_incoming=False, actor=request.user, now=timezone.now()
        )
        self.message_user(request, f"Kept the original of {count} reading(s).")

    @admin.action(description="Apply the delivered values (as an edit)", permissions=["change"])
    def apply_incoming(self, request, queryset):
        try:
            count = reading_conflicts_resolve(
                conflicts=queryset, take_incoming=True, actor=request.user, now=timezone.now()
            )
        except DomainError as exc:  # values VEE rejects: those conflicts stay open
            self.message_user(request, exc.message, level=messages.ERROR)
            return
        self.message_user(request, f"Applied delivered values to {count} reading(s).")


@admin.register(models.ReadingEdit)
class ReadingEditAdmin(ViewOnlyAdmin):
    list_display = ("meter", "read_at", "edited_by", "edited_at", "reason", "original", "edited")
    readonly_fields = [f.name for f in models.ReadingEdit._meta.fields]


@admin.register(models.DegreeDay)
class DegreeDayAdmin(admin.ModelAdmin):
    list_display = ("network", "on", "degree_days")
    list_filter = ("network",)
    date_hierarchy = "on"
