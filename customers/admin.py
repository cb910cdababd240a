"""Staff admin for customers, accounts, buildings, connections, interface units, contracts.

Every admin keeps a read-only change history (who, when, what) through
django-simple-history; reverting is disabled (``SIMPLE_HISTORY_REVERT_DISABLED``).
"""

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from customers import models


class HistoryAdmin(SimpleHistoryAdmin):
    """Base for every staff admin: change history on, list pages that scale."""

    list_per_page = 50
    show_full_result_count = False


class AccountInline(admin.TabularInline):
    model = models.Account
    extra = 0
    fields = ("number", "network", "status", "billing_city")
    show_change_link = True


class ContractInline(admin.TabularInline):
    model = models.Contract
    extra = 0
    fields = ("account", "connection", "valid_from", "valid_to")
    autocomplete_fields = ("account", "connection")
    show_change_link = True


class ConnectionInline(admin.TabularInline):
    model = models.ServiceConnection
    extra = 0
    fields = ("number", "network", "contracted_capacity_kw", "status", "connected_on")
    show_change_link = True


class InterfaceUnitInline(admin.TabularInline):
    model = models.BuildingInterfaceUnit
    extra = 0
    fields = ("maker", "model", "serial", "kind", "installed_on", "removed_on")
    show_change_link = True


@admin.register(models.Network)
class NetworkAdmin(HistoryAdmin):
    list_display = ("code", "name", "time_zone", "currency", "price_area")
    search_fields = ("code", "name")
    list_filter = ("currency", "price_area")


@admin.register(models.Customer)
class CustomerAdmin(HistoryAdmin):
    list_display = ("name", "kind", "email", "phone", "organisation_number")
    search_fields = ("name", "email", "organisation_number", "accounts__number")
    list_filter = ("kind",)
    inlines = [AccountInline]
    raw_id_fields = ("user",)


@admin.register(models.Account)
class AccountAdmin(HistoryAdmin):
    list_display = ("number", "customer", "network", "status", "billing_address")
    search_fields = (
        "number",
        "customer__name",
        "billing_street",
        "billing_city",
        "contracts__connection__building__street",
        "contracts__connection__interface_units__meter_installations__meter__serial",
    )
    list_filter = ("status", "network")
    list_select_related = ("customer", "network")
    autocomplete_fields = ("customer",)
    inlines = [ContractInline]


@admin.register(models.Building)
class BuildingAdmin(HistoryAdmin):
    list_display = (
        "street",
        "postal_code",
        "city",
        "use",
        "heated_area_m2",
        "dwellings",
        "year_built",
    )
    search_fields = ("street", "postal_code", "city", "register_id", "connections__number")
    list_filter = ("use", "city")
    inlines = [ConnectionInline]


@admin.register(models.ServiceConnection)
class ServiceConnectionAdmin(HistoryAdmin):
    list_display = (
        "number",
        "building",
        "network",
        "contracted_capacity_kw",
        "status",
        "connected_on",
    )
    search_fields = (
        "number",
        "building__street",
        "building__city",
        "contracts__account__number",
        "contracts__account__customer__name",
        "interface_units__meter_installations__meter__serial",
    )
    list_filter = ("status", "network")
    list_select_related = ("building", "network")
    autocomplete_fields = ("building",)
    inlines = [InterfaceUnitInline, ContractInline]


@admin.register(models.BuildingInterfaceUnit)
class BuildingInterfaceUnitAdmin(HistoryAdmin):
    list_display = ("serial", "maker", "model", "kind", "connection", "installed_on", "removed_on")
    search_fields = ("serial", "maker", "connection__number", "connection__building__street")
    list_filter = ("kind", "maker", "domestic_hot_water")
    list_select_related = ("connection",)
    autocomplete_fields = ("connection",)


@admin.register(models.Contract)
class ContractAdmin(HistoryAdmin):
    list_display = ("account", "connection", "valid_from", "valid_to")
    search_fields = (
        "account__number",
        "account__customer__name",
        "connection__number",
        "connection__building__street",
    )
    list_filter = ("connection__network", "valid_from")
    list_select_related = ("account", "account__customer", "connection")
    autocomplete_fields = ("account", "connection")
    date_hierarchy = "valid_from"
