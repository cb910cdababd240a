"""Staff admin for tariffs, plant data, operating cost and price caps.

Writes that carry rules go through the services: approving and publishing versions
(tariff managers only), importing files (a Celery task), computing costs and caps.
Approved versions are shown read-only; the cost and cap pages render PNG plots.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Sum
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from customers.models import Network, ServiceConnection
from heatutility.admin import IndexedSearchMixin
from heatutility.errors import DomainError
from heatutility.uploads import upload_read, upload_text
from tariffs import models, services
from tariffs.plots import PLOTS, render_cap_plot, render_plot
from tariffs.selectors import tariff_spec_for_version
from tariffs.simulation import price_examples, tariff_version_impact


class ReportYearForm(forms.Form):
    year = forms.IntegerField(min_value=1900, max_value=2200, required=False)


class TariffVersionInline(admin.TabularInline):
    model = models.TariffVersion
    fields = ["number", "valid_from", "valid_to", "status", "approved_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(models.Tariff)
class TariffAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "network", "customer_class", "is_default"]
    list_filter = ["network", "is_default"]
    search_fields = ["code", "name"]
    inlines = [TariffVersionInline]


class TariffVersionForm(forms.ModelForm):
    class Meta:
        model = models.TariffVersion
        fields = [
            "tariff",
            "valid_from",
            "valid_to",
            "prices_include_vat",
            "vat_rate",
            "components",
            "notes",
        ]
        widgets = {
            "components": forms.Textarea(
                attrs={"rows": 20, "cols": 100, "style": "font-family: monospace"}
            )
        }


@admin.register(models.TariffVersion)
class TariffVersionAdmin(admin.ModelAdmin):
    form = TariffVersionForm
    list_display = [
        "tariff",
        "number",
        "valid_from",
        "valid_to",
        "status",
        "approved_at",
        "approved_by",
        "report_link",
    ]
    list_filter = ["status", "tariff__network"]
    search_fields = ["tariff__code", "tariff__name"]
    actions = ["approve_versions", "publish_versions"]

    def get_readonly_fields(self, request, obj=None):
        base = [
            "number",
            "status",
            "approved_at",
            "approved_by",
            "approved_under_cap",
            "published_at",
            "created_at",
        ]
        if obj is not None and obj.is_locked:
            return [
                *base,
                "tariff",
                "valid_from",
                "valid_to",
                "prices_include_vat",
                "vat_rate",
                "components",
                "notes",
            ]
        return base

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_locked:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data[f] for f in form.changed_data if f != "tariff"}
        if change:
            services.tariff_version_update_draft(version=obj, **data)
        else:
            created = services.tariff_version_create(
                tariff=form.cleaned_data["tariff"],
                valid_from=obj.valid_from,
                valid_to=obj.valid_to,
                components=obj.components,
                prices_include_vat=obj.prices_include_vat,
                vat_rate=obj.vat_rate,
                notes=obj.notes,
            )
            obj.pk = created.pk
            obj.number = created.number

    @admin.display(description="Impact & examples")
    def report_link(self, obj):
        return format_html(
            '<a href="{}">open</a>', reverse("admin:tariffs_tariffversion_report", args=[obj.pk])
        )

    def has_approve_permission(self, request):
        return request.user.has_perm("tariffs.approve_tariffversion")

    @admin.action(
        description="Approve selected drafts (under the price cap)", permissions=["approve"]
    )
    def approve_versions(self, request, queryset):
        if not request.user.has_perm("tariffs.approve_tariffversion"):
            raise PermissionDenied
        for version in queryset:
            try:
                services.tariff_version_approve(
                    version=version, user=request.user, now=timezone.now()
                )
                self.message_user(request, f"Approved {version}.", messages.SUCCESS)
            except DomainError as exc:
                self.message_user(request, f"{version}: {exc.message}", messages.ERROR)

    @admin.action(description="Publish selected approved versions", permissions=["approve"])
    def publish_versions(self, request, queryset):
        if not request.user.has_perm("tariffs.approve_tariffversion"):
            raise PermissionDenied
        for version in queryset:
            try:
                services.tariff_version_publish(
                    version=version, user=request.user, now=timezone.now()
                )
                self.message_user(request, f"Published {version}.", messages.SUCCESS)
            except DomainError as exc:
                self.message_user(request, f"{version}: {exc.message}", messages.ERROR)

    def get_urls(self):
        return [
            path(
                "<int:pk>/report/",
                self.admin_site.admin_view(self.report_view),
                name="tariffs_tariffversion_report",
            ),
            *super().get_urls(),
        ]

    def report_view(self, request, pk):
        version = get_object_or_404(
            models.TariffVersion.objects.select_related("tariff__network"), pk=pk
        )
        if not self.has_view_permission(request, version):
            raise PermissionDenied
        spec = tariff_spec_for_version(version)
        query = ReportYearForm(request.GET)
        if not query.is_valid():
            messages.error(
                request,
                f"Year: {' '.join(query.errors['year'])} Showing {version.valid_from.year}.",
            )
        year = query.cleaned_data.get("year") or version.valid_from.year
        as_of = timezone.localdate(timezone=ZoneInfo(version.tariff.network.time_zone))
        context = {
            **self.admin_site.each_context(request),
            "title": f"{version}: cap check, impact and price examples",
            "version": version,
            "examples": price_examples(spec=spec, year=year),
            "year": year,
            "impact": tariff_version_impact(version=version, as_of=as_of),
            "cap_check": services.tariff_version_cap_check(version=version),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "tariffs/version_report.html", context)


@admin.register(models.TariffAssignment)
class TariffAssignmentAdmin(IndexedSearchMixin, admin.ModelAdmin):
    list_display = ["connection", "tariff", "valid_from", "valid_to"]
    list_filter = ["tariff"]
    search_fields = ["^connection__number"]
    raw_id_fields = ["connection"]


class PlantUnitInline(admin.TabularInline):
    model = models.PlantUnit
    extra = 0
    fields = [
        "code",
        "name",
        "kind",
        "source_type",
        "capacity_mw",
        "lorenz_efficiency",
        "boiler_efficiency",
    ]


@admin.register(models.Plant)
class PlantAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "network"]
    inlines = [PlantUnitInline]


@admin.register(models.PlantUnit)
class PlantUnitAdmin(admin.ModelAdmin):
    list_display = ["__str__", "name", "kind", "source_type", "capacity_mw", "lorenz_efficiency"]
    list_filter = ["kind", "source_type"]


@admin.register(models.ElectricityCharge)
class ElectricityChargeAdmin(admin.ModelAdmin):
    list_display = [
        "price_area",
        "kind",
        "valid_from",
        "valid_to",
        "hour_from",
        "hour_to",
        "amount_per_mwh",
        "currency",
        "data_import",
    ]
    list_filter = ["price_area", "kind"]
    readonly_fields = ["data_import"]


class DataImportForm(forms.ModelForm):
    upload = forms.FileField(
        required=False,
        help_text="CSV file (SCADA export, ENTSO-E day-ahead export, or effective-dated grid/system/tax charges).",
    )

    class Meta:
        model = models.DataImport
        fields = ["kind", "unit", "price_area", "currency", "time_zone", "content"]
        widgets = {"content": forms.Textarea(attrs={"rows": 6})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "content" in self.fields:  # absent when a recorded import is only viewed
            self.fields["content"].required = False

    def clean(self):
        data = super().clean()
        upload = data.get("upload")
        if upload:
            try:
                data["content"] = upload_text(upload_read(upload, field="upload"), field="upload")
            except DomainError as exc:
                raise forms.ValidationError(exc.message) from exc
        if not data.get("content"):
            raise forms.ValidationError("Upload a CSV file or paste its content.")
        return data


@admin.register(models.DataImport)
class DataImportAdmin(admin.ModelAdmin):
    form = DataImportForm
    list_display = [
        "id",
        "kind",
        "unit",
        "price_area",
        "filename",
        "status",
        "rows",
        "resolution_minutes",
        "first_hour",
        "last_hour",
        "created_at",
    ]
    list_filter = ["kind", "status", "resolution_minutes"]
    readonly_fields = [
        "status",
        "rows",
        "resolution_minutes",
        "first_hour",
        "last_hour",
        "errors",
        "finished_at",
        "filename",
    ]
    preview_lines = 20

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def _recorded(self) -> list[str]:
        """A recorded import is read-only: its file as a preview, not a year of hours inline."""
        kept = [f for f in DataImportForm.Meta.fields if f != "content"]
        return [*kept, "content_preview", *self.readonly_fields]

    def get_fields(self, request, obj=None):
        return super().get_fields(request, obj) if obj is None else self._recorded()

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is None else self._recorded()

    @admin.display(description="File (first lines)")
    def content_preview(self, obj):
        lines = obj.content.splitlines()
        more = len(lines) - self.preview_lines
        shown = "\n".join(lines[: self.preview_lines])
        return format_html("<pre>{}</pre>{}", shown, f"… and {more} more lines" if more > 0 else "")

    def save_model(self, request, obj, form, change):
        upload = form.cleaned_data.get("upload")
        created = services.data_import_create(
            kind=obj.kind,
            content=form.cleaned_data["content"],
            filename=getattr(upload, "name", "") or "",
            unit=obj.unit,
            price_area=obj.price_area,
            currency=obj.currency,
            time_zone=obj.time_zone,
        )
        obj.pk = created.pk


class OperatingCostComputeForm(forms.Form):
    network = forms.ModelChoiceField(queryset=Network.objects.all())
    period_start = forms.DateField(help_text="First local day (inclusive).")
    period_end = forms.DateField(help_text="Local day after the last (exclusive).")
    loss_share = forms.DecimalField(
        required=False,
        max_digits=6,
        decimal_places=4,
        help_text="Network losses as a share of heat produced (or give heat sold).",
    )
    heat_sold_mwh = forms.DecimalField(required=False, max_digits=14, decimal_places=3)
    network_costs_per_year = forms.DecimalField(
        required=False, max_digits=14, decimal_places=2, initial=0
    )


class PriceCapComputeForm(forms.Form):
    network = forms.ModelChoiceField(queryset=Network.objects.all())
    method = forms.ChoiceField(choices=models.PriceCap.Method.choices)
    period_start = forms.DateField()
    period_end = forms.DateField()
    operating_cost = forms.ModelChoiceField(
        queryset=models.OperatingCost.objects.all(),
        required=False,
        help_text="Cost-based: take variable/fixed costs and sales from this run (inputs below add to it).",
    )
    inputs = forms.JSONField(
        initial=dict,
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "cols": 90}),
        help_text="Method inputs as JSON, see docs/tariffs.md (Price caps).",
    )


def _compute_view(model_admin, request, form_class, title, compute):
    if not model_admin.has_add_permission_for_compute(request):
        raise PermissionDenied
    form = form_class(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            obj = compute(form.cleaned_data)
        except DomainError as exc:
            form.add_error(None, exc.message)
            for item in exc.errors:
                form.add_error(None, f"{item.field or ''}: {item.message}")
        else:
            model_admin.message_user(request, f"Computed {obj}.", messages.SUCCESS)
            return HttpResponseRedirect(
                reverse(f"admin:tariffs_{model_admin.model._meta.model_name}_report", args=[obj.pk])
            )
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "tariffs/compute_form.html", context)


@admin.register(models.OperatingCost)
class OperatingCostAdmin(admin.ModelAdmin):
    list_display = [
        "network",
        "period_start",
        "period_end",
        "cost_per_mwh_produced",
        "cost_per_mwh_sold",
        "computed_at",
        "report_link",
    ]
    list_filter = ["network"]
    exclude = ["hourly_csv"]
    readonly_fields = [
        "network",
        "period_start",
        "period_end",
        "inputs",
        "results",
        "cost_per_mwh_produced",
        "cost_per_mwh_sold",
        "computed_at",
    ]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission_for_compute(self, request):
        return super().has_add_permission(request)

    def add_view(self, request, form_url="", extra_context=None):
        def compute(data):
            return services.operating_cost_compute(
                network=data["network"],
                period_start=data["period_start"],
                period_end=data["period_end"],
                now=timezone.now(),
                loss_share=data.get("loss_share"),
                heat_sold_mwh=data.get("heat_sold_mwh"),
                network_costs_per_year=data.get("network_costs_per_year") or Decimal(0),
            )

        return _compute_view(
            self, request, OperatingCostComputeForm, "Compute operating cost", compute
        )

    @admin.display(description="Report")
    def report_link(self, obj):
        return format_html(
            '<a href="{}">plots</a>', reverse("admin:tariffs_operatingcost_report", args=[obj.pk])
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/report/",
                self.admin_site.admin_view(self.report_view),
                name="tariffs_operatingcost_report",
            ),
            path(
                "<int:pk>/hourly.csv",
                self.admin_site.admin_view(self.hourly_csv),
                name="tariffs_operatingcost_hourly",
            ),
            *super().get_urls(),
        ]

    def report_view(self, request, pk):
        cost = get_object_or_404(models.OperatingCost.objects.select_related("network"), pk=pk)
        if not self.has_view_permission(request, cost):
            raise PermissionDenied
        plots = [
            (title, base64.b64encode(render_plot(cost=cost, kind=kind)).decode("ascii"))
            for kind, title in PLOTS.items()
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Operating cost: {cost}",
            "cost": cost,
            "figures": cost.results.get("figures", {}),
            "per_unit": cost.results.get("per_unit", {}),
            "cop_by_month": cost.results.get("cop_by_month", {}),
            "plots": plots,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "tariffs/operating_cost.html", context)

    def hourly_csv(self, request, pk):
        cost = get_object_or_404(models.OperatingCost, pk=pk)
        if not self.has_view_permission(request, cost):
            raise PermissionDenied
        response = HttpResponse(cost.hourly_csv, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="operating-cost-{cost.pk}-hourly.csv"'
        )
        return response


def _above_cap_text(found: dict) -> str:
    end = found["valid_to"] or "open"
    return (
        f"Tariff {found['tariff']} version {found['number']} ({found['valid_from']} to {end}) is in force above "
        f"this cap: {' '.join(found['messages'])} Approve a version under the cap from the day the excess must end."
    )


@admin.register(models.PriceCap)
class PriceCapAdmin(admin.ModelAdmin):
    list_display = [
        "network",
        "method",
        "status",
        "period_start",
        "period_end",
        "energy_cap_per_mwh",
        "fixed_cap_per_year",
        "capacity_cap_per_kw",
        "reference_total_cap",
        "report_link",
    ]
    list_filter = ["network", "method", "status"]
    readonly_fields = [
        "network",
        "method",
        "status",
        "period_start",
        "period_end",
        "currency",
        "includes_vat",
        "energy_cap_per_mwh",
        "fixed_cap_per_year",
        "capacity_cap_per_kw",
        "area_cap_per_m2",
        "reference_total_cap",
        "operating_cost",
        "inputs",
        "results",
        "computed_at",
        "adopted_at",
        "versions_above_cap",
    ]
    actions = ["adopt_caps"]

    @admin.display(description="Versions in force above this cap")
    def versions_above_cap(self, obj):
        found = services.price_cap_versions_above(cap=obj) if obj and obj.pk else []
        if not found:
            return "None"
        return format_html_join(mark_safe("<br>"), "{}", ((_above_cap_text(f),) for f in found))

    def has_add_permission_for_compute(self, request):
        return super().has_add_permission(request)

    def add_view(self, request, form_url="", extra_context=None):
        def compute(data):
            inputs = dict(data.get("inputs") or {})
            cost = data.get("operating_cost")
            if cost is not None and data["method"] == models.PriceCap.Method.COST_BASED:
                network = data["network"]
                conns = ServiceConnection.objects.filter(network=network)
                base = services.cost_based_inputs_from_cost(
                    cost=cost,
                    connections=conns.count() or 1,
                    contracted_kw_total=conns.aggregate(k=Sum("contracted_capacity_kw"))["k"]
                    or Decimal(1),
                )
                inputs = {**base, **inputs}
            return services.price_cap_compute(
                network=data["network"],
                method=data["method"],
                period_start=data["period_start"],
                period_end=data["period_end"],
                inputs=inputs,
                now=timezone.now(),
                operating_cost=cost,
            )

        return _compute_view(self, request, PriceCapComputeForm, "Compute a price cap", compute)

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    @admin.display(description="Report")
    def report_link(self, obj):
        return format_html(
            '<a href="{}">open</a>', reverse("admin:tariffs_pricecap_report", args=[obj.pk])
        )

    @admin.action(description="Adopt selected caps", permissions=["change"])
    def adopt_caps(self, request, queryset):
        for cap in queryset:
            try:
                services.price_cap_adopt(cap=cap, now=timezone.now())
                self.message_user(request, f"Adopted {cap}.", messages.SUCCESS)
                for found in services.price_cap_versions_above(cap=cap):
                    self.message_user(request, _above_cap_text(found), messages.WARNING)
            except DomainError as exc:
                self.message_user(request, f"{cap}: {exc.message}", messages.ERROR)

    def get_urls(self):
        return [
            path(
                "<int:pk>/report/",
                self.admin_site.admin_view(self.report_view),
                name="tariffs_pricecap_report",
            ),
            path(
                "<int:pk>/export.<str:fmt>",
                self.admin_site.admin_view(self.export_view),
                name="tariffs_pricecap_export",
            ),
            *super().get_urls(),
        ]

    def report_view(self, request, pk):
        cap = get_object_or_404(
            models.PriceCap.objects.select_related("network", "operating_cost"), pk=pk
        )
        if not self.has_view_permission(request, cap):
            raise PermissionDenied
        plots = [
            (
                "Cost per MWh sold vs the energy cap",
                base64.b64encode(render_cap_plot(cap=cap)).decode("ascii"),
            )
        ]
        if cap.operating_cost_id:
            plots += [
                (
                    title,
                    base64.b64encode(render_plot(cost=cap.operating_cost, kind=kind)).decode(
                        "ascii"
                    ),
                )
                for kind, title in PLOTS.items()
            ]
        try:
            recompute, refused = services.price_cap_recompute(cap=cap), None
        except (
            DomainError
        ) as exc:  # the stored inputs no longer compute (e.g. prices now in another currency)
            recompute, refused = None, exc
        context = {
            **self.admin_site.each_context(request),
            "title": f"Price cap: {cap}",
            "cap": cap,
            "recompute": recompute,
            "recompute_refused": refused,
            "plots": plots,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "tariffs/price_cap.html", context)

    def export_view(self, request, pk, fmt):
        cap = get_object_or_404(models.PriceCap, pk=pk)
        if not self.has_view_permission(request, cap):
            raise PermissionDenied
        fmt = "csv" if fmt == "csv" else "json"
        response = HttpResponse(
            services.price_cap_export(cap=cap, fmt=fmt),
            content_type="text/csv" if fmt == "csv" else "application/json",
        )
        response["Content-Disposition"] = f'attachment; filename="price-cap-{cap.pk}.{fmt}"'
        return response


@admin.register(models.SpotPrice)
class SpotPriceAdmin(admin.ModelAdmin):
    list_display = ["price_area", "hour_start", "price_per_mwh", "currency"]
    list_filter = ["price_area"]
    date_hierarchy = "hour_start"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
