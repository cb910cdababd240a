"""Staff admin for heat meters, with their installation history and the buttons to
install, remove or exchange them (``metering.admin.installations``)."""

from django.contrib import admin
from django.contrib.admin.utils import unquote

from customers.admin import HistoryAdmin
from metering import models
from metering.admin.installations import METER_LABELS, InstallationInline, installation_tools


@admin.register(models.HeatMeter)
class HeatMeterAdmin(HistoryAdmin):
    list_display = (
        "serial",
        "maker",
        "model",
        "register_unit",
        "accuracy_class",
        "verification_due_on",
    )
    search_fields = (
        "serial",
        "maker",
        "model",
        "installations__unit__connection__number",
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
                "registers count the rollovers.",
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
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "installation_tools": tools}
        )
