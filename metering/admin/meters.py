"""Staff admin for heat meters and their installation history."""

from django.contrib import admin

from customers.admin import HistoryAdmin
from customers.models import BuildingInterfaceUnit
from metering import models


class InstallationInline(admin.TabularInline):
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
    autocomplete_fields = ("unit",)
    ordering = ("-installed_at",)
    show_change_link = True


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


@admin.register(models.MeterInstallation)
class MeterInstallationAdmin(HistoryAdmin):
    list_display = ("meter", "unit", "installed_at", "removed_at", "reason")
    search_fields = (
        "meter__serial",
        "unit__serial",
        "unit__connection__number",
        "unit__connection__building__street",
    )
    list_filter = ("removed_at", "meter__maker")
    list_select_related = ("meter", "unit")
    autocomplete_fields = ("meter", "unit")
    date_hierarchy = "installed_at"


class UnitInstallationInline(InstallationInline):
    """The meter installation history of an interface unit, shown on the unit's page."""

    fk_name = "unit"
    autocomplete_fields = ("meter",)
    fields = ("meter", *InstallationInline.fields[1:])


# customers knows nothing of meters; metering adds its history to the unit's admin page.
_unit_admin = admin.site._registry.get(BuildingInterfaceUnit)
if _unit_admin is not None and UnitInstallationInline not in _unit_admin.inlines:
    _unit_admin.inlines = [*_unit_admin.inlines, UnitInstallationInline]
