"""Staff admin for meter installations: the history is read-only, and a meter is
installed, removed or exchanged only through ``metering.installations``.

Those services check the rules (no overlap, final registers not below the last read
unless the register rolled over, the optional m³·°C registers) and queue the
revalidation that refreshes the boundary registers billing reads; an edit of the rows
themselves would skip both.  The forms here collect the values, make one service call
and show its itemised errors.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone

from customers.admin import HistoryAdmin
from customers.models import BuildingInterfaceUnit
from heatutility.errors import DomainError
from heatutility.timeutil import DATE_OUT_OF_RANGE, date_in_range
from metering import installations, models

INSTALL = "metering.add_meterinstallation"
CHANGE = "metering.change_meterinstallation"


# --- Forms: the fields of the services (and of the API's serializers) ------------------


class MomentField(forms.DateTimeField):
    """An instant, as the API takes it: with an offset, or else local time in the
    admin's zone (``settings.TIME_ZONE``; Django refuses a local time that a DST change
    makes ambiguous or skips).  Within the dates the product works with; returned in
    that zone, so the services' messages show the time as typed (and PostgreSQL never
    sees an offset beyond ±15:59, which Python accepts)."""

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "help_text",
            f"Local time ({settings.TIME_ZONE}), e.g. 2026-03-01 10:00; or with an offset, "
            "e.g. 2026-10-25T02:30+01:00 (needed in the repeated hour when DST ends).",
        )
        super().__init__(**kwargs)

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        if not date_in_range(moment.date()):
            raise forms.ValidationError(DATE_OUT_OF_RANGE, code="out_of_range")
        return timezone.localtime(moment)


def _energy(label: str, **kwargs) -> forms.DecimalField:
    return forms.DecimalField(
        label=label, max_digits=20, decimal_places=6, min_value=0, help_text="kWh", **kwargs
    )


def _volume(label: str, **kwargs) -> forms.DecimalField:
    return forms.DecimalField(
        label=label, max_digits=16, decimal_places=4, min_value=0, help_text="m³", **kwargs
    )


def _temperature(label: str) -> forms.DecimalField:
    """An optional volume-weighted temperature register."""
    return forms.DecimalField(
        label=label,
        max_digits=20,
        decimal_places=4,
        min_value=0,
        required=False,
        help_text="m³·°C; optional (leave empty if the meter has none or it was reset).",
    )


def _autocomplete(field_name: str) -> AutocompleteSelect:
    return AutocompleteSelect(models.MeterInstallation._meta.get_field(field_name), admin.site)


class InstallForm(forms.Form):
    meter = forms.ModelChoiceField(
        queryset=models.HeatMeter.objects.all(), widget=_autocomplete("meter")
    )
    unit = forms.ModelChoiceField(
        queryset=BuildingInterfaceUnit.objects.all(),
        widget=_autocomplete("unit"),
        label="Interface unit",
    )
    installed_at = MomentField()
    initial_energy_kwh = _energy("Initial energy register", initial=0)
    initial_volume_m3 = _volume("Initial volume register", initial=0)
    initial_flow_temp_m3c = _temperature("Initial flow temperature register")
    initial_return_temp_m3c = _temperature("Initial return temperature register")
    reason = forms.CharField(max_length=200, required=False)

    fieldsets = (
        ("Where and when", ("meter", "unit", "installed_at")),
        (
            "The meter's registers at installation",
            (
                "initial_energy_kwh",
                "initial_volume_m3",
                "initial_flow_temp_m3c",
                "initial_return_temp_m3c",
            ),
        ),
        (None, ("reason",)),
    )


class RemoveForm(forms.Form):
    removed_at = MomentField()
    final_energy_kwh = _energy("Final energy register")
    final_volume_m3 = _volume("Final volume register")
    final_flow_temp_m3c = _temperature("Final flow temperature register")
    final_return_temp_m3c = _temperature("Final return temperature register")
    reason = forms.CharField(max_length=200, required=False)

    fieldsets = (
        ("When", ("removed_at",)),
        (
            "The meter's registers at removal",
            (
                "final_energy_kwh",
                "final_volume_m3",
                "final_flow_temp_m3c",
                "final_return_temp_m3c",
            ),
        ),
        (None, ("reason",)),
    )


class ExchangeForm(forms.Form):
    """The fields of ``meter_exchange`` and the API's ``ExchangeSerializer``; the unit and
    the old installation are those the form was opened for."""

    exchanged_at = MomentField()
    old_final_energy_kwh = _energy("Final energy register")
    old_final_volume_m3 = _volume("Final volume register")
    old_final_flow_temp_m3c = _temperature("Final flow temperature register")
    old_final_return_temp_m3c = _temperature("Final return temperature register")
    new_meter = forms.ModelChoiceField(
        queryset=models.HeatMeter.objects.all(), widget=_autocomplete("meter")
    )
    new_initial_energy_kwh = _energy("Initial energy register", initial=0)
    new_initial_volume_m3 = _volume("Initial volume register", initial=0)
    new_initial_flow_temp_m3c = _temperature("Initial flow temperature register")
    new_initial_return_temp_m3c = _temperature("Initial return temperature register")
    reason = forms.CharField(max_length=200, required=False, help_text="Default: exchange.")

    fieldsets = (
        ("When", ("exchanged_at",)),
        (
            "The old meter's registers at removal",
            (
                "old_final_energy_kwh",
                "old_final_volume_m3",
                "old_final_flow_temp_m3c",
                "old_final_return_temp_m3c",
            ),
        ),
        (
            "The new meter and its registers at installation",
            (
                "new_meter",
                "new_initial_energy_kwh",
                "new_initial_volume_m3",
                "new_initial_flow_temp_m3c",
                "new_initial_return_temp_m3c",
            ),
        ),
        (None, ("reason",)),
    )


# An exchange removes with meter_remove and installs with meter_install: their fields,
# as the exchange form names them.
EXCHANGE_FIELDS = {
    "removed_at": "exchanged_at",
    "installed_at": "exchanged_at",
    "meter": "new_meter",
    **{
        f"final_{register}": f"old_final_{register}"
        for register in ("energy_kwh", "volume_m3", "flow_temp_m3c", "return_temp_m3c")
    },
    **{
        f"initial_{register}": f"new_initial_{register}"
        for register in ("energy_kwh", "volume_m3", "flow_temp_m3c", "return_temp_m3c")
    },
}


def show_errors(form: forms.Form, exc: DomainError, fields: dict[str, str] | None = None) -> None:
    """Each of the service's errors on its field, the others above the form."""
    for item in exc.errors:
        field = (fields or {}).get(item.field or "", item.field)
        form.add_error(field if field in form.fields else None, item.message)
    if not exc.errors:
        form.add_error(None, exc.message)


def require(request, *perms: str) -> None:
    if not request.user.has_perms(perms):
        raise PermissionDenied


def installation_tools(
    user,
    *,
    installation: models.MeterInstallation | None,
    install_query: dict[str, int],
    labels: dict[str, str],
) -> list[tuple[str, str]]:
    """Links to the flows that apply, as (label, url): remove and exchange for an open
    installation, install otherwise; only those the user may use."""
    tools = []
    if installation is None:
        if user.has_perm(INSTALL):
            url = reverse("admin:metering_meterinstallation_install")
            tools.append((labels["install"], f"{url}?{urlencode(install_query)}"))
        return tools
    if user.has_perm(CHANGE):
        url = reverse("admin:metering_meterinstallation_remove", args=[installation.pk])
        tools.append((labels["remove"], url))
    if user.has_perms((INSTALL, CHANGE)):
        url = reverse("admin:metering_meterinstallation_exchange", args=[installation.pk])
        tools.append((labels["exchange"], url))
    return tools


METER_LABELS = {
    "install": "Install in a unit",
    "remove": "Remove from its unit",
    "exchange": "Exchange",
}
UNIT_LABELS = {
    "install": "Install a meter",
    "remove": "Remove the meter",
    "exchange": "Exchange the meter",
}


# --- The history: shown, never edited -------------------------------------------------


class ReadOnlyInstallations:
    """Installations change only through the services (see the module docstring)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class InstallationInline(ReadOnlyInstallations, admin.TabularInline):
    model = models.MeterInstallation
    extra = 0
    fields = (
        "unit",
        "installed_at",
        "removed_at",
        "initial_energy_kwh",
        "final_energy_kwh",
        "initial_volume_m3",
        "final_volume_m3",
        "initial_flow_temp_m3c",
        "final_flow_temp_m3c",
        "initial_return_temp_m3c",
        "final_return_temp_m3c",
        "reason",
    )
    ordering = ("-installed_at",)
    show_change_link = True


class UnitInstallationInline(InstallationInline):
    """The meter installation history of an interface unit, shown on the unit's page
    with links to install, remove or exchange its meter."""

    fk_name = "unit"
    fields = ("meter", *InstallationInline.fields[1:])
    template = "admin/metering/edit_inline/unit_installations.html"

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.installation_tools = (
            installation_tools(
                request.user,
                installation=obj.meter_installations.filter(removed_at__isnull=True).first(),
                install_query={"unit": obj.pk},
                labels=UNIT_LABELS,
            )
            if obj is not None
            else []
        )
        return formset


@admin.register(models.MeterInstallation)
class MeterInstallationAdmin(ReadOnlyInstallations, HistoryAdmin):
    list_display = ("meter", "unit", "installed_at", "removed_at", "reason")
    search_fields = (
        "meter__serial",
        "unit__serial",
        "unit__connection__number",
        "unit__connection__building__street",
    )
    list_filter = ("removed_at", "meter__maker")
    list_select_related = ("meter", "unit")
    date_hierarchy = "installed_at"
    change_list_template = "admin/metering/meterinstallation/change_list.html"
    change_form_template = "admin/metering/installation_tools_change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        installation = self.get_object(request, unquote(object_id))
        tools = []
        if installation is not None and installation.removed_at is None:
            tools = installation_tools(
                request.user, installation=installation, install_query={}, labels=METER_LABELS
            )
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "installation_tools": tools}
        )

    def get_urls(self):
        return [
            path(
                "install/",
                self.admin_site.admin_view(self.install_view),
                name="metering_meterinstallation_install",
            ),
            path(
                "<int:pk>/remove/",
                self.admin_site.admin_view(self.remove_view),
                name="metering_meterinstallation_remove",
            ),
            path(
                "<int:pk>/exchange/",
                self.admin_site.admin_view(self.exchange_view),
                name="metering_meterinstallation_exchange",
            ),
            *super().get_urls(),
        ]

    def _render(self, request, form, *, title, submit, installation=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "form": form,
            "fieldsets": [
                (legend, [form[name] for name in names]) for legend, names in form.fieldsets
            ],
            "installation": installation,
            "submit": submit,
        }
        return render(request, "admin/metering/installation_form.html", context)

    def _installation(self, pk: int) -> models.MeterInstallation:
        return get_object_or_404(
            models.MeterInstallation.objects.select_related("meter", "unit"), pk=pk
        )

    def _closed(self, request, installation):
        """The form was opened for an installation that has ended since (another tab, a
        colleague): nothing to remove or exchange there any more."""
        messages.warning(
            request,
            f"{installation.meter} was removed from {installation.unit} at "
            f"{timezone.localtime(installation.removed_at):%Y-%m-%d %H:%M %Z}; "
            "nothing was changed.",
        )
        return redirect(reverse("admin:metering_meterinstallation_change", args=[installation.pk]))

    def install_view(self, request):
        require(request, INSTALL)
        initial = {k: v for k in ("meter", "unit") if (v := request.GET.get(k, "")).isdigit()}
        form = InstallForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                installation = installations.meter_install(actor=request.user, **form.cleaned_data)
            except DomainError as exc:
                show_errors(form, exc)
            else:
                messages.success(request, f"Installed {installation}.")
                return redirect(
                    reverse("admin:metering_heatmeter_change", args=[installation.meter_id])
                )
        return self._render(request, form, title="Install a meter", submit="Install")

    def remove_view(self, request, pk: int):
        require(request, CHANGE)
        installation = self._installation(pk)
        if installation.removed_at is not None:
            return self._closed(request, installation)
        form = RemoveForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                installations.meter_remove(
                    installation=installation, actor=request.user, **form.cleaned_data
                )
            except DomainError as exc:
                show_errors(form, exc)
            else:
                messages.success(request, f"Removed {installation}.")
                return redirect(
                    reverse("admin:metering_heatmeter_change", args=[installation.meter_id])
                )
        return self._render(
            request,
            form,
            title=f"Remove {installation.meter} from {installation.unit}",
            submit="Remove",
            installation=installation,
        )

    def exchange_view(self, request, pk: int):
        require(request, INSTALL, CHANGE)
        installation = self._installation(pk)
        if installation.removed_at is not None:
            return self._closed(request, installation)
        form = ExchangeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            values = {k: v for k, v in form.cleaned_data.items() if k != "reason" or v}
            try:
                # the installation the form was opened for, checked under the service's
                # lock: another exchange since then must not have its new meter removed
                _old, new = installations.meter_exchange(
                    unit=installation.unit,
                    old_installation=installation,
                    actor=request.user,
                    **values,
                )
            except DomainError as exc:
                show_errors(form, exc, EXCHANGE_FIELDS)
            else:
                messages.success(
                    request, f"Exchanged {installation.meter} for {new.meter} in {new.unit}."
                )
                return redirect(reverse("admin:metering_heatmeter_change", args=[new.meter_id]))
        return self._render(
            request,
            form,
            title=f"Exchange {installation.meter} in {installation.unit}",
            submit="Exchange",
            installation=installation,
        )


# customers knows nothing of meters; metering adds its history to the unit's admin page.
_unit_admin = admin.site._registry.get(BuildingInterfaceUnit)
if _unit_admin is not None and UnitInstallationInline not in _unit_admin.inlines:
    _unit_admin.inlines = [*_unit_admin.inlines, UnitInstallationInline]
