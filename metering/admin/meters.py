"""Staff admin for heat meters, with their installation history and the buttons to
install, remove or exchange them (``metering.admin.installations``).

A meter's changes are saved through ``metering.meters.meter_update``: the register unit
is fixed once the meter has readings, a register maximum stays at or above the registers
stored, and a change of its register settings revalidates its readings and the boundary
registers they feed, as through the API.  A meter is deleted only through
``metering.meters.meter_delete`` (one entered by mistake, with nothing recorded for it),
from its page or the list's "delete selected" action alike."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db import transaction
from django.shortcuts import redirect

from customers.admin import HistoryAdmin
from heatutility.errors import DomainError
from metering import meters, models
from metering.admin.installations import METER_LABELS, InstallationInline, installation_tools


class HeatMeterForm(forms.ModelForm):
    """The rules of ``meter_update`` on the form, so its errors show on their fields."""

    def clean(self):
        data = super().clean()
        if self.instance.pk is not None:  # not yet changed: the form sets it after clean
            values = {name: data[name] for name in self.changed_data if name in data}
            for error in meters.meter_update_errors(meter=self.instance, values=values):
                self.add_error(error.field if error.field in self.fields else None, error.message)
        return data


@admin.register(models.HeatMeter)
class HeatMeterAdmin(HistoryAdmin):
    form = HeatMeterForm
    list_display = (
        "serial",
        "maker",
        "model",
        "register_unit",
        "accuracy_class",
        "verification_due_on",
    )
    search_fields = (
        "^serial",
        "maker",
        "model",
        "^installations__unit__connection__number",
        "installations__unit__connection__building__street",
    )
    list_filter = ("maker", "register_unit", "accuracy_class", "verification_due_on")
    fieldsets = (
        (None, {"fields": ("maker", "model", "serial", "vendor")}),
        (
            "Registers",
            {
                "fields": (
                    "register_unit",
                    "resolution",
                    "register_max",
                    "volume_resolution",
                    "volume_register_max",
                ),
                "description": "Each register rolls over to 0 one resolution step after its "
                "maximum (a rollover adds maximum + resolution); VEE and the boundary "
                "registers count the rollovers.  Changing these (or the nominal flow) "
                "revalidates the meter's readings and the boundary registers from its first "
                "installation.  The register unit is fixed once the meter has readings: "
                "correct the maximum and resolution in it.",
            },
        ),
        (
            "Metrology",
            {
                "fields": (
                    "accuracy_class",
                    "flow_sensor_position",
                    "nominal_flow_m3h",
                    "verification_due_on",
                )
            },
        ),
    )
    inlines = [InstallationInline]
    change_form_template = "admin/metering/installation_tools_change_form.html"

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        # shown read-only once the meter has readings; a form opened before they arrived
        # still posts the unit, and then says on the field why it cannot change (rather
        # than dropping the change unnoticed)
        if (
            obj is not None
            and "register_unit" not in request.POST
            and meters.meter_has_readings(meter=obj)
        ):
            return (*readonly, "register_unit")
        return readonly

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        # ``obj`` carries the form's values already; the service compares the stored ones
        values = {name: form.cleaned_data[name] for name in form.changed_data}
        meters.meter_update(meter=obj, values=values, actor=request.user)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        meter = self.get_object(request, unquote(object_id))
        tools = (
            installation_tools(
                request.user,
                installation=meter.installations.filter(removed_at__isnull=True).first(),
                install_query={"meter": meter.pk},
                labels=METER_LABELS,
            )
            if meter is not None
            else []
        )
        try:
            return super().change_view(
                request, object_id, form_url, {**(extra_context or {}), "installation_tools": tools}
            )
        except DomainError as exc:  # the service refused what the form allowed (readings
            # arrived meanwhile): nothing was saved; the page again with why, not a 500
            self.message_user(request, exc.message, messages.ERROR)
            return redirect(request.get_full_path())

    # --- deletion: only through meters.meter_delete --------------------------------------

    def get_deleted_objects(self, objs, request):
        """Django's confirmation page (one meter's or the selected ones') lists why a
        meter is kept as protected objects, so nothing is deleted and staff see why:
        readings have no database foreign key to the meter for the collector to find."""
        to_delete, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        for meter in objs:
            protected += [e.message for e in meters.meter_delete_refusals(meter=meter)]
        return to_delete, counts, perms_needed, protected

    def delete_model(self, request, obj):
        meters.meter_delete(meter=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        # all or none (``changelist_view``), locked in one order
        for meter in queryset.order_by("pk"):
            meters.meter_delete(meter=meter, actor=request.user)

    def delete_view(self, request, object_id, extra_context=None):
        try:  # Django runs it in a transaction: the refused delete's log entry goes too
            return super().delete_view(request, object_id, extra_context)
        except DomainError as exc:  # something was recorded for it after the page was shown
            self.message_user(request, exc.message, messages.ERROR)
            return redirect(request.get_full_path())

    def changelist_view(self, request, extra_context=None):
        try:
            with transaction.atomic():  # "delete selected": none goes if one is refused
                return super().changelist_view(request, extra_context)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return redirect(request.get_full_path())
