"""Staff admin for customers, accounts, buildings, connections, interface units, contracts.

Every admin keeps a read-only change history (who, when, what) through
django-simple-history; reverting is disabled (``SIMPLE_HISTORY_REVERT_DISABLED``).
"""

from django import forms
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
    # the kW changes by capacity change (dated); new connections on their own page
    readonly_fields = ("contracted_capacity_kw",)
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class DatedChangeInline(admin.TabularInline):
    """A dated change's history on its object's page: read-only, added through its own
    admin page (the service), never edited or deleted."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


class CapacityChangeInline(DatedChangeInline):
    model = models.CapacityChange
    fields = ("valid_from", "capacity_kw", "previous_kw", "reason", "created_at", "created_by")


class AreaChangeInline(DatedChangeInline):
    model = models.AreaChange
    fields = ("valid_from", "heated_area_m2", "previous_m2", "reason", "created_at", "created_by")


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
    inlines = [AreaChangeInline, ConnectionInline]

    def get_readonly_fields(self, request, obj=None):
        # set once when created; then changed by a dated area change (billing prices
        # each day with the m² in force that day)
        readonly = super().get_readonly_fields(request, obj)
        return (*readonly, "heated_area_m2") if obj is not None else readonly


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
    inlines = [CapacityChangeInline, InterfaceUnitInline, ContractInline]

    def get_readonly_fields(self, request, obj=None):
        # set once when created; then changed by a dated capacity change (billing prices
        # each day with the kW in force that day)
        readonly = super().get_readonly_fields(request, obj)
        return (*readonly, "contracted_capacity_kw") if obj is not None else readonly


class CapacityChangeForm(forms.ModelForm):
    class Meta:
        model = models.CapacityChange
        fields = ("connection", "valid_from", "capacity_kw", "reason")

    def clean(self):
        from customers.selectors import capacity_on

        data = super().clean()
        connection, day, kw = (data.get(k) for k in ("connection", "valid_from", "capacity_kw"))
        if (
            connection
            and day
            and kw is not None
            and capacity_on(connection=connection, day=day) == kw
        ):
            raise forms.ValidationError(
                f"{connection.number} is contracted for {kw} kW on {day.isoformat()} already."
            )
        return data


class DatedChangeAdmin(admin.ModelAdmin):
    """A dated change of a value (capacity, area): added through its service, which
    ``record`` calls with the form's object, and never edited or deleted."""

    date_hierarchy = "valid_from"

    def record(self, request, obj):
        raise NotImplementedError

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        obj.pk = self.record(request, obj).pk


@admin.register(models.CapacityChange)
class CapacityChangeAdmin(DatedChangeAdmin):
    """Contracted capacity changes: recorded through the service, never edited."""

    form = CapacityChangeForm
    list_display = ("connection", "valid_from", "capacity_kw", "previous_kw", "created_at")
    search_fields = ("connection__number",)
    list_filter = ("connection__network",)
    list_select_related = ("connection",)
    autocomplete_fields = ("connection",)

    def record(self, request, obj):
        from customers.services import connection_capacity_change

        return connection_capacity_change(
            connection=obj.connection,
            capacity_kw=obj.capacity_kw,
            valid_from=obj.valid_from,
            actor=request.user,
            reason=obj.reason,
        )


class AreaChangeForm(forms.ModelForm):
    class Meta:
        model = models.AreaChange
        fields = ("building", "valid_from", "heated_area_m2", "reason")

    def clean(self):
        from customers.selectors import area_on

        data = super().clean()
        building, day, m2 = (data.get(k) for k in ("building", "valid_from", "heated_area_m2"))
        if building and day and m2 is not None and area_on(building=building, day=day) == m2:
            raise forms.ValidationError(f"{building} has {m2} m² on {day.isoformat()} already.")
        return data


@admin.register(models.AreaChange)
class AreaChangeAdmin(DatedChangeAdmin):
    """Heated area changes: recorded through the service, never edited."""

    form = AreaChangeForm
    list_display = ("building", "valid_from", "heated_area_m2", "previous_m2", "created_at")
    search_fields = ("building__street", "building__register_id", "building__connections__number")
    list_filter = ("building__city",)
    list_select_related = ("building",)
    autocomplete_fields = ("building",)

    def record(self, request, obj):
        from customers.services import building_area_change

        return building_area_change(
            building=obj.building,
            heated_area_m2=obj.heated_area_m2,
            valid_from=obj.valid_from,
            actor=request.user,
            reason=obj.reason,
        )


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
