"""Staff admin for meter installations: the history is read-only, and a meter is
installed, removed or exchanged, and a register typed wrong corrected, only through
``metering.installations``.

Those services check the rules (no overlap, final registers not below the last read
unless the register rolled over, the optional m³·°C registers) and queue the
revalidation that refreshes the boundary registers billing reads; an edit of the rows
themselves would skip both.  The forms here collect the values, make one service call
and show its itemised errors.

Staff read the energy register off the meter's display, in the meter's register unit
(Wh, kWh, MWh or GJ), and type it in that unit; the forms convert it to the kWh the
services and the database keep (``metering.units.register_to_kwh``, as ingestion and
the API convert).  Each energy register is posted with the unit it was typed in, and a
unit other than the meter's is refused, never converted: a value read in the wrong
unit, or typed for another meter, or in a form opened before the meter's unit changed,
cannot be stored scaled by 1,000 or 277.78.
The fields keep the services' names (``initial_energy_kwh`` …): their cleaned value is
the kWh.  Volume (m³) and temperature (m³·°C) registers are taken as they are.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
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
from heatutility.money import plain
from heatutility.timeutil import DATE_OUT_OF_RANGE, date_in_range
from metering import installations, models
from metering.units import kwh_to_register, register_to_kwh

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

    def prepare_value(self, value):
        """A recorded instant as the admin reads it, in local time; one in the hour a DST
        change repeats with its offset, so that it reads back as the same instant."""
        if isinstance(value, dt.datetime) and timezone.is_aware(value):
            local = timezone.localtime(value)
            other = local.replace(fold=1 - local.fold)
            if other.utcoffset() != local.utcoffset():
                return local.isoformat(timespec="minutes")
        return super().prepare_value(value)

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        if not date_in_range(moment.date()):
            raise forms.ValidationError(DATE_OUT_OF_RANGE, code="out_of_range")
        return timezone.localtime(moment)


# --- Energy registers: typed in the meter's register unit, kept in kWh -----------------

KWH = models.EnergyUnit.KWH
_STORED = models.MeterInstallation._meta.get_field("initial_energy_kwh")
# the largest energy register the column holds, exclusive: 14 integer digits of kWh
KWH_LIMIT = Decimal(10) ** (_STORED.max_digits - _STORED.decimal_places)


def energy_shown(kwh: Decimal | None, meter: models.HeatMeter) -> str | None:
    """A stored energy register, in kWh, and in the meter's register unit where that is
    another (as its display showed it), for staff to check the two against each other."""
    if kwh is None:
        return None
    unit = meter.register_unit
    if unit == KWH:
        return f"{kwh} kWh"
    return f"{kwh} kWh ({plain(kwh_to_register(kwh, unit))} {unit})"


CONVERSIONS = {
    models.EnergyUnit.WH: "stored in kWh: ÷ 1,000, rounded half up to 6 decimals",
    KWH: "stored as typed",
    models.EnergyUnit.MWH: "stored in kWh: × 1,000, exactly",
    models.EnergyUnit.GJ: "stored in kWh: × 1,000/3.6 (1 GJ = 277.777… kWh), rounded half up "
    "to 6 decimals, as ingestion converts readings delivered in GJ",
}


def _energy_help(unit: str | None) -> str:
    if unit is None:
        return (
            "In the meter's register unit, chosen above, as its display shows it; stored in "
            "kWh (1 MWh = 1,000 kWh exactly; 1 GJ = 1,000/3.6 kWh and 1 Wh = 0.001 kWh, "
            "rounded half up to 6 decimals, as ingestion converts readings)."
        )
    return f"{unit}, as the meter's display shows it; {CONVERSIONS[unit]}."


def _energy(label: str, **kwargs) -> forms.DecimalField:
    """An energy register in the meter's register unit (labelled with it once the form
    knows the meter: ``RegistersInMeterUnits``); 6 decimals, as a delivered reading."""
    return forms.DecimalField(
        label=label, max_digits=20, decimal_places=6, min_value=0, help_text="", **kwargs
    )


class FixedUnitField(forms.CharField):
    """The register unit of a meter the form was opened for, sent back hidden with the
    value typed in it.  Checked against the meter's unit when posted; a form shown again
    carries the meter's unit now (its initial), not the stale one that was posted."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs):
        super().__init__(required=False, **kwargs)

    def bound_data(self, data, initial):
        return initial


def _unit_choice(label: str) -> forms.ChoiceField:
    """The unit an energy register is typed in, for a meter chosen in the same form: the
    meter's own unit, which it must be (``RegistersInMeterUnits``)."""
    return forms.ChoiceField(
        label=label,
        choices=[("", "— choose —"), *models.EnergyUnit.choices],
        required=False,
        help_text="The unit the meter's display counts energy in (its register unit).",
    )


class RegistersInMeterUnits(forms.Form):
    """Energy registers typed in their meter's register unit, cleaned to kWh.

    ``energy_units``: energy field → (its unit field, fixed), in the subclass; a fixed
    unit is a meter's the form was opened for (hidden), else the meter is chosen in the
    form and the unit with it.  A post without the unit field comes from a form opened
    before it existed, when these fields took kWh: it means kWh.
    """

    energy_units: dict[str, tuple[str, bool]] = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # what was typed, "entered as 12345.678 MWh = 12345678.000000 kWh", added to the
        # service's errors on the field (they speak kWh)
        self.entered: dict[str, str] = {}

    def meter_for(self, field: str) -> models.HeatMeter | None:
        """The meter whose register ``field`` is (a chosen one: once it is valid)."""
        raise NotImplementedError

    def show_unit(self, field: str, meter: models.HeatMeter | None) -> None:
        """Label ``field`` with ``meter``'s unit (where the form knows the meter yet)."""
        unit = meter.register_unit if meter is not None else None
        unit_field, _fixed = self.energy_units[field]
        formfield = self.fields[field]
        formfield.label = f"{formfield.label} ({unit or 'in the unit chosen above'})"
        formfield.help_text = _energy_help(unit)
        if unit is not None:
            self.fields[unit_field].initial = unit

    def clean(self):
        data = super().clean()
        for field, (unit_field, fixed) in self.energy_units.items():
            typed = data.pop(unit_field, "")
            if self.has_error(unit_field):  # not one of the units: said on the field
                continue
            if not typed and self.add_prefix(unit_field) not in self.data:
                typed = KWH
            self._to_kwh(data, field, unit_field=unit_field, typed=typed, fixed=fixed)
        return data

    def _to_kwh(self, data, field: str, *, unit_field: str, typed: str, fixed: bool) -> None:
        value, meter = data.get(field), self.meter_for(field)
        if value is None or meter is None:  # refused already, its error shows
            return
        unit = meter.register_unit
        if typed != unit and fixed:
            self.add_error(
                field,
                f"Meter {meter} counts its energy register in {unit}"
                + (f", but this form was opened for registers in {typed}" if typed else "")
                + f": enter the register in {unit}, as its display shows it.",
            )
            return
        if typed != unit:
            self.add_error(
                unit_field,
                f"Meter {meter} counts its energy register in {unit}"
                + (f", not {typed}" if typed else "")
                + f": choose {unit} and enter the register as its display shows it.",
            )
            return
        kwh = register_to_kwh(value, unit)
        if kwh >= KWH_LIMIT:
            self.add_error(
                field,
                f"{plain(value)} {unit} is {plain(kwh)} kWh, more than an energy register "
                f"holds (below {KWH_LIMIT} kWh): is the unit right?",
            )
            return
        data[field] = kwh
        if unit != KWH:
            self.entered[field] = f"entered as {plain(value)} {unit} = {kwh} kWh"


def _chosen_meter(form: forms.Form, field: str) -> models.HeatMeter | None:
    """The meter picked in ``field``: cleaned, else (to label the form) as posted or as
    the form was opened with."""
    if hasattr(form, "cleaned_data"):
        return form.cleaned_data.get(field)
    raw = form.data.get(form.add_prefix(field)) if form.is_bound else form.initial.get(field)
    if isinstance(raw, models.HeatMeter):
        return raw
    raw = str(raw or "")
    return models.HeatMeter.objects.filter(pk=raw).first() if raw.isdigit() else None


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


class InstallForm(RegistersInMeterUnits):
    meter = forms.ModelChoiceField(
        queryset=models.HeatMeter.objects.all(), widget=_autocomplete("meter")
    )
    unit = forms.ModelChoiceField(
        queryset=BuildingInterfaceUnit.objects.all(),
        widget=_autocomplete("unit"),
        label="Interface unit",
    )
    installed_at = MomentField()
    initial_energy_unit = _unit_choice("Energy register unit")
    initial_energy_kwh = _energy("Initial energy register", initial=0)
    initial_volume_m3 = _volume("Initial volume register", initial=0)
    initial_flow_temp_m3c = _temperature("Initial flow temperature register")
    initial_return_temp_m3c = _temperature("Initial return temperature register")
    reason = forms.CharField(max_length=200, required=False)

    energy_units = {"initial_energy_kwh": ("initial_energy_unit", False)}
    fieldsets = (
        ("Where and when", ("meter", "unit", "installed_at")),
        (
            "The meter's registers at installation",
            (
                "initial_energy_unit",
                "initial_energy_kwh",
                "initial_volume_m3",
                "initial_flow_temp_m3c",
                "initial_return_temp_m3c",
            ),
        ),
        (None, ("reason",)),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.show_unit("initial_energy_kwh", _chosen_meter(self, "meter"))

    def meter_for(self, field):
        return _chosen_meter(self, "meter")


class RemoveForm(RegistersInMeterUnits):
    """The registers of ``meter``, the installation's, at its removal."""

    removed_at = MomentField()
    final_energy_unit = FixedUnitField()
    final_energy_kwh = _energy("Final energy register")
    final_volume_m3 = _volume("Final volume register")
    final_flow_temp_m3c = _temperature("Final flow temperature register")
    final_return_temp_m3c = _temperature("Final return temperature register")
    reason = forms.CharField(max_length=200, required=False)

    energy_units = {"final_energy_kwh": ("final_energy_unit", True)}
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

    def __init__(self, *args, meter: models.HeatMeter, **kwargs):
        super().__init__(*args, **kwargs)
        self.meter = meter
        self.show_unit("final_energy_kwh", meter)

    def meter_for(self, field):
        return self.meter


class ExchangeForm(RegistersInMeterUnits):
    """The fields of ``meter_exchange`` and the API's ``ExchangeSerializer``; the unit and
    the old installation are those the form was opened for.  Each meter's energy
    register is typed in its own unit: the old meter's is known, the new meter's is
    chosen with it."""

    exchanged_at = MomentField()
    old_final_energy_unit = FixedUnitField()
    old_final_energy_kwh = _energy("Final energy register")
    old_final_volume_m3 = _volume("Final volume register")
    old_final_flow_temp_m3c = _temperature("Final flow temperature register")
    old_final_return_temp_m3c = _temperature("Final return temperature register")
    new_meter = forms.ModelChoiceField(
        queryset=models.HeatMeter.objects.all(), widget=_autocomplete("meter")
    )
    new_initial_energy_unit = _unit_choice("New meter's energy register unit")
    new_initial_energy_kwh = _energy("Initial energy register", initial=0)
    new_initial_volume_m3 = _volume("Initial volume register", initial=0)
    new_initial_flow_temp_m3c = _temperature("Initial flow temperature register")
    new_initial_return_temp_m3c = _temperature("Initial return temperature register")
    reason = forms.CharField(max_length=200, required=False, help_text="Default: exchange.")

    energy_units = {
        "old_final_energy_kwh": ("old_final_energy_unit", True),
        "new_initial_energy_kwh": ("new_initial_energy_unit", False),
    }
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
                "new_initial_energy_unit",
                "new_initial_energy_kwh",
                "new_initial_volume_m3",
                "new_initial_flow_temp_m3c",
                "new_initial_return_temp_m3c",
            ),
        ),
        (None, ("reason",)),
    )

    def __init__(self, *args, old_meter: models.HeatMeter, **kwargs):
        super().__init__(*args, **kwargs)
        self.old_meter = old_meter
        self.show_unit("old_final_energy_kwh", old_meter)
        self.show_unit("new_initial_energy_kwh", _chosen_meter(self, "new_meter"))

    def meter_for(self, field):
        return self.old_meter if field.startswith("old_") else _chosen_meter(self, "new_meter")


class CorrectForm(RegistersInMeterUnits):
    """The registers of ``meter_installation_correct``, opened with the installation's
    as recorded (energy in the meter's unit): those staff change are corrected, the
    others stay as they are.  The final registers are shown for a removed installation
    only; the reason is required, for the history."""

    initial_energy_unit = FixedUnitField()
    initial_energy_kwh = _energy("Initial energy register", required=False)
    initial_volume_m3 = _volume("Initial volume register", required=False)
    initial_flow_temp_m3c = _temperature("Initial flow temperature register")
    initial_return_temp_m3c = _temperature("Initial return temperature register")
    final_energy_unit = FixedUnitField()
    final_energy_kwh = _energy("Final energy register", required=False)
    final_volume_m3 = _volume("Final volume register", required=False)
    final_flow_temp_m3c = _temperature("Final flow temperature register")
    final_return_temp_m3c = _temperature("Final return temperature register")
    installed_at = MomentField(required=False)
    removed_at = MomentField(required=False)
    reason = forms.CharField(
        max_length=200, help_text="Why the installation is corrected; kept in the history."
    )

    REGISTERS = installations.INITIAL_REGISTERS + installations.FINAL_REGISTERS
    TIMES = ("installed_at", "removed_at")
    energy_units = {
        "initial_energy_kwh": ("initial_energy_unit", True),
        "final_energy_kwh": ("final_energy_unit", True),
    }

    def __init__(self, *args, installation: models.MeterInstallation, **kwargs):
        meter = installation.meter
        initial = {
            name: getattr(installation, name)
            for name in (*self.REGISTERS, *self.TIMES)
            if getattr(installation, name) is not None
        }
        for name in self.TIMES:
            if name in initial:
                initial[name] = timezone.localtime(initial[name])
        for name in ("initial_energy_kwh", "final_energy_kwh"):
            if name in initial:
                initial[name] = kwh_to_register(initial[name], meter.register_unit)
        super().__init__(*args, initial=initial, **kwargs)
        self.meter = meter
        at = ["initial"]
        if installation.removed_at is None:  # no final registers nor removal to correct
            for name in (*installations.FINAL_REGISTERS, "final_energy_unit", "removed_at"):
                del self.fields[name]
            self.energy_units = {"initial_energy_kwh": ("initial_energy_unit", True)}
        else:
            at.append("final")
        for prefix in at:
            self.show_unit(f"{prefix}_energy_kwh", meter)
        self.fieldsets = (
            (
                "When (an exchange moves as one: the other meter's removal or installation "
                "at that instant moves with it)",
                tuple(name for name in self.TIMES if name in self.fields),
            ),
            *(
                (
                    f"The meter's registers at {'installation' if p == 'initial' else 'removal'}",
                    tuple(
                        f"{p}_{register}"
                        for register in (
                            "energy_kwh",
                            "volume_m3",
                            "flow_temp_m3c",
                            "return_temp_m3c",
                        )
                    ),
                )
                for p in at
            ),
            (None, ("reason",)),
        )

    def meter_for(self, field):
        return self.meter

    def corrections(self) -> dict:
        """The registers (in kWh) and times staff changed; the others are not sent to the
        service."""
        changed = {
            name: self.cleaned_data[name]
            for name in self.changed_data
            if name in (*self.REGISTERS, *self.TIMES) and self.cleaned_data.get(name) is not None
        }
        # an optional (m³·°C) register emptied is cleared
        cleared = [
            name
            for name in self.changed_data
            if name in installations.CLEARABLE and self.cleaned_data.get(name) is None
        ]
        return {**changed, "clear": cleared} if cleared else changed

    def clean(self):
        data = super().clean()
        # a time left empty stays as recorded (it cannot be emptied: a removal is undone
        # by no correction); of the registers only the optional m³·°C ones can be
        for name in self.changed_data:
            if (
                name in self.REGISTERS
                and name not in installations.CLEARABLE
                and name in data
                and data[name] is None
            ):
                self.add_error(name, "A recorded register cannot be emptied here: type its value.")
        if not self.errors and not self.corrections():
            raise forms.ValidationError("Nothing to correct: change at least one register or time.")
        return data


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
    """Each of the service's errors on its field, the others above the form; on an energy
    register typed in another unit, with what that was in kWh (the service speaks kWh)."""
    entered = getattr(form, "entered", {})
    for item in exc.errors:
        field = (fields or {}).get(item.field or "", item.field)
        message = f"{item.message} ({entered[field]})" if field in entered else item.message
        form.add_error(field if field in form.fields else None, message)
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


class EnergyRegistersShown:
    """The energy registers as stored, in kWh, and in the meter's unit where that is
    another: what staff typed, to check against the meter (``energy_shown``)."""

    readonly_fields = ("initial_energy", "final_energy")

    @admin.display(description="Initial energy register")
    def initial_energy(self, installation):
        return energy_shown(installation.initial_energy_kwh, installation.meter)

    @admin.display(description="Final energy register")
    def final_energy(self, installation):
        return energy_shown(installation.final_energy_kwh, installation.meter)


class InstallationInline(EnergyRegistersShown, ReadOnlyInstallations, admin.TabularInline):
    model = models.MeterInstallation
    extra = 0
    fields = (
        "unit",
        "installed_at",
        "removed_at",
        "initial_energy",
        "final_energy",
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

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("meter", "unit")


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
class MeterInstallationAdmin(EnergyRegistersShown, ReadOnlyInstallations, HistoryAdmin):
    list_display = ("meter", "unit", "installed_at", "removed_at", "reason")
    fields = (
        "meter",
        "unit",
        "installed_at",
        "removed_at",
        "initial_energy",
        "initial_volume_m3",
        "final_energy",
        "final_volume_m3",
        "initial_flow_temp_m3c",
        "initial_return_temp_m3c",
        "final_flow_temp_m3c",
        "final_return_temp_m3c",
        "reason",
    )
    search_fields = (
        "^meter__serial",
        "^unit__serial",
        "^unit__connection__number",
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
        if installation is not None and request.user.has_perm(CHANGE):
            url = reverse("admin:metering_meterinstallation_correct", args=[installation.pk])
            tools = [*tools, ("Correct registers or times", url)]
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
            path(
                "<int:pk>/correct/",
                self.admin_site.admin_view(self.correct_view),
                name="metering_meterinstallation_correct",
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
            "initial_energy": installation
            and energy_shown(installation.initial_energy_kwh, installation.meter),
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
        form = RemoveForm(request.POST or None, meter=installation.meter)
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
        form = ExchangeForm(request.POST or None, old_meter=installation.meter)
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

    def correct_view(self, request, pk: int):
        require(request, CHANGE)
        installation = self._installation(pk)
        form = CorrectForm(request.POST or None, installation=installation)
        if request.method == "POST" and form.is_valid():
            try:
                installations.meter_installation_correct(
                    installation=installation,
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                    **form.corrections(),
                )
            except DomainError as exc:
                show_errors(form, exc)
            else:
                messages.success(
                    request,
                    f"Corrected {installation}; the readings of the meters concerned are "
                    "revalidated from the earliest time involved.",
                )
                return redirect(
                    reverse("admin:metering_meterinstallation_change", args=[installation.pk])
                )
        return self._render(
            request,
            form,
            title=f"Correct {installation.meter} in {installation.unit}",
            submit="Correct",
            installation=installation,
        )


# customers knows nothing of meters; metering adds its history to the unit's admin page.
_unit_admin = admin.site._registry.get(BuildingInterfaceUnit)
if _unit_admin is not None and UnitInstallationInline not in _unit_admin.inlines:
    _unit_admin.inlines = [*_unit_admin.inlines, UnitInstallationInline]
