"""Staff admin for customers, accounts, buildings, connections, interface units, contracts.

Every admin keeps a read-only change history (who, when, what) through
django-simple-history; reverting is disabled (``SIMPLE_HISTORY_REVERT_DISABLED``).
"""

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from simple_history.admin import SimpleHistoryAdmin

from customers import models
from heatutility.admin import IndexedSearchMixin, refuse_dates_out_of_range
from heatutility.errors import DomainError


class HistoryAdmin(IndexedSearchMixin, SimpleHistoryAdmin):
    """Base for every staff admin: change history on, list pages (and searches) that
    scale."""

    list_per_page = 50
    show_full_result_count = False


class AccountForm(forms.ModelForm):
    """An account's status changes under the rules of ``account_set_status`` (closing
    needs every contract ended by today), as through the API."""

    def clean(self):
        from customers.services import account_status_errors

        data = super().clean()
        status = data.get("status")
        if status and "status" in self.changed_data and self.instance.pk is not None:
            errors = account_status_errors(account=self.instance, status=status)
            if errors and errors[0].code == "open_contract":
                self.add_error("status", "This account still has an open contract: move out first.")
            elif errors:
                self.add_error("status", f"This account is {errors[0].message}: close it then.")
        return data


class ContractForm(forms.ModelForm):
    """A contract written here keeps the move-in rules of ``contract_move_in`` (same
    network, within the connection's life, an active account and connection for a new
    one), ends by the connection's disconnection and by today for a closed account
    (``contract_end_errors``), and has dates the product can work with."""

    def clean(self):
        from customers.services import contract_end_errors, contract_supply_errors

        data = super().clean()
        refuse_dates_out_of_range(self, "valid_from", "valid_to")
        account, connection, day = (data.get(k) for k in ("account", "connection", "valid_from"))
        new = self.instance.pk is None
        moved = new or {"account", "connection", "valid_from"} & set(self.changed_data)
        if account and connection and day and moved:
            fields = {"move_in_on": "valid_from"}
            for error in contract_supply_errors(
                account=account, connection=connection, move_in_on=day, new=new
            ):
                field = fields.get(error.field, error.field)
                self.add_error(field if field in self.fields else None, error.message)
        end = self.cleaned_data.get("valid_to")
        extended = new or {"account", "connection", "valid_to"} & set(self.changed_data)
        if account and connection and extended:
            for error in contract_end_errors(
                account=account, connection=connection, move_out_on=end
            ):
                if new and error.code == "account_closed":
                    continue  # said by the move-in rules (account_not_active)
                self.add_error("valid_to" if "valid_to" in self.fields else None, error.message)
        return data


class ContractInlineFormSet(forms.BaseInlineFormSet):
    """The contracts of one form do not overlap one another either: each form is checked
    against the stored contracts only, so two new rows (or a row extended over a new
    one) would pass one by one."""

    def clean(self):
        super().clean()
        spans = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE"):  # an empty extra row has no data
                continue
            connection, start = data.get("connection"), data.get("valid_from")
            if connection is None or start is None:
                continue
            spans.append((connection.pk, start, data.get("valid_to"), form))
        for i, (connection, start, end, form) in enumerate(spans):
            for other_connection, other_start, other_end, _ in spans[:i]:
                if (
                    connection == other_connection
                    and (other_end is None or start < other_end)
                    and (end is None or other_start < end)
                ):
                    form.add_error(None, "This connection already has a contract in that period.")
                    break


class NetworkForm(forms.ModelForm):
    """A network in use keeps its currency and time zone (as through the API)."""

    def clean(self):
        from customers.services import network_edit_errors

        data = super().clean()
        if self.instance.pk is None:
            return data
        for error in network_edit_errors(
            network=self.instance,
            currency=data.get("currency", self.instance.currency),
            time_zone=data.get("time_zone", self.instance.time_zone),
        ):
            self.add_error(error.field, error.message)
        return data


class ServiceConnectionForm(forms.ModelForm):
    """A stored connection keeps its network and building while it has contracts, and its
    contracts and capacity changes within its connection dates (as through the API)."""

    def clean(self):
        from customers.services import connection_edit_errors

        data = super().clean()
        if self.instance.pk is None:
            return data
        network = data.get("network") if "network" in self.fields else self.instance.network
        building = data.get("building") if "building" in self.fields else self.instance.building
        if network is None or building is None:
            return data
        for error in connection_edit_errors(
            connection=self.instance,
            network_id=network.pk,
            building_id=building.pk,
            connected_on=data.get("connected_on", self.instance.connected_on),
            disconnected_on=data.get("disconnected_on", self.instance.disconnected_on),
            status=data.get("status", self.instance.status),
        ):
            if error.field in self.fields:
                self.add_error(error.field, error.message)
            else:
                self.add_error(None, error.message)
        return data


class BuildingInterfaceUnitForm(forms.ModelForm):
    """A unit with meter installations stays on its connection (as through the API)."""

    def clean(self):
        from customers.services import interface_unit_edit_errors

        data = super().clean()
        connection = data.get("connection")
        if self.instance.pk is not None and connection is not None:
            for error in interface_unit_edit_errors(
                unit=self.instance, connection_id=connection.pk
            ):
                self.add_error("connection", error.message)
        return data


class AccountInline(admin.TabularInline):
    model = models.Account
    form = AccountForm
    extra = 0
    fields = ("number", "network", "status", "billing_city")
    show_change_link = True


class ContractInline(admin.TabularInline):
    model = models.Contract
    form = ContractForm
    formset = ContractInlineFormSet
    extra = 0
    fields = ("account", "connection", "valid_from", "valid_to")
    autocomplete_fields = ("account", "connection")
    show_change_link = True


class ConnectionInline(admin.TabularInline):
    model = models.ServiceConnection
    form = ServiceConnectionForm
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
    form = BuildingInterfaceUnitForm
    extra = 0
    fields = ("maker", "model", "serial", "kind", "installed_on", "removed_on")
    show_change_link = True


@admin.register(models.Network)
class NetworkAdmin(HistoryAdmin):
    form = NetworkForm
    list_display = ("code", "name", "time_zone", "currency", "price_area")
    search_fields = ("code", "name")
    list_filter = ("currency", "price_area")


@admin.register(models.Customer)
class CustomerAdmin(HistoryAdmin):
    list_display = ("name", "kind", "email", "phone", "organisation_number", "has_login")
    search_fields = ("name", "email", "^organisation_number", "^accounts__number")
    list_filter = ("kind",)
    list_select_related = ("user",)
    inlines = [AccountInline]
    raw_id_fields = ("user",)
    actions = ["invite_to_portal"]

    @admin.display(boolean=True, description="portal login")
    def has_login(self, customer) -> bool:
        return customer.user_id is not None

    @admin.action(
        description="Invite to the portal (e-mail a link to set the password)",
        permissions=["change"],
    )
    def invite_to_portal(self, request, queryset):
        from customers.services import portal_invite

        base_url = request.build_absolute_uri("/")
        invited = 0
        for customer in queryset.select_related("user"):
            try:
                portal_invite(customer=customer, base_url=base_url, actor=request.user)
            except DomainError as error:
                self.message_user(request, f"{customer.name}: {error}", messages.ERROR)
            else:
                invited += 1
        if invited:
            self.message_user(request, f"Invited {invited} customer(s).", messages.SUCCESS)


@admin.register(models.Account)
class AccountAdmin(HistoryAdmin):
    form = AccountForm
    list_display = ("number", "customer", "network", "status", "billing_address")
    # ^: identifiers found from their start (IndexedSearchMixin)
    search_fields = (
        "^number",
        "customer__name",
        "billing_street",
        "billing_city",
        "^contracts__connection__number",
        "contracts__connection__building__street",
        "^contracts__connection__interface_units__meter_installations__meter__serial",
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
    search_fields = ("street", "^postal_code", "city", "^register_id", "^connections__number")
    list_filter = ("use", "city")
    inlines = [AreaChangeInline, ConnectionInline]

    def get_readonly_fields(self, request, obj=None):
        # set once when created; then changed by a dated area change (billing prices
        # each day with the m² in force that day)
        readonly = super().get_readonly_fields(request, obj)
        return (*readonly, "heated_area_m2") if obj is not None else readonly


@admin.register(models.ServiceConnection)
class ServiceConnectionAdmin(HistoryAdmin):
    form = ServiceConnectionForm
    list_display = (
        "number",
        "building",
        "network",
        "contracted_capacity_kw",
        "status",
        "connected_on",
    )
    search_fields = (
        "^number",
        "building__street",
        "building__city",
        "^contracts__account__number",
        "contracts__account__customer__name",
        "^interface_units__meter_installations__meter__serial",
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
        from customers.services import capacity_change_errors

        data = super().clean()
        refuse_dates_out_of_range(self, "valid_from")
        connection, day, kw = (data.get(k) for k in ("connection", "valid_from", "capacity_kw"))
        if connection and day:
            for error in capacity_change_errors(connection=connection, valid_from=day):
                self.add_error(error.field, error.message)
            day = self.cleaned_data.get("valid_from")
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


class DatedChangeAdmin(IndexedSearchMixin, admin.ModelAdmin):
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

    def add_view(self, request, form_url="", extra_context=None):
        try:
            return super().add_view(request, form_url, extra_context)
        except DomainError as exc:  # the service refused what the form allowed (a change
            # recorded meanwhile by someone else): the form again with why, not a 500
            self.message_user(request, exc.message, messages.ERROR)
            return redirect(request.get_full_path())


@admin.register(models.CapacityChange)
class CapacityChangeAdmin(DatedChangeAdmin):
    """Contracted capacity changes: recorded through the service, never edited."""

    form = CapacityChangeForm
    list_display = ("connection", "valid_from", "capacity_kw", "previous_kw", "created_at")
    search_fields = ("^connection__number",)
    list_filter = ("connection__network",)
    # a connection is named by its building's address
    list_select_related = ("connection__building",)
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
        refuse_dates_out_of_range(self, "valid_from")
        building, day, m2 = (data.get(k) for k in ("building", "valid_from", "heated_area_m2"))
        if building and day and m2 is not None and area_on(building=building, day=day) == m2:
            raise forms.ValidationError(f"{building} has {m2} m² on {day.isoformat()} already.")
        return data


@admin.register(models.AreaChange)
class AreaChangeAdmin(DatedChangeAdmin):
    """Heated area changes: recorded through the service, never edited."""

    form = AreaChangeForm
    list_display = ("building", "valid_from", "heated_area_m2", "previous_m2", "created_at")
    search_fields = (
        "building__street",
        "^building__register_id",
        "^building__connections__number",
    )
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
    form = BuildingInterfaceUnitForm
    list_display = ("serial", "maker", "model", "kind", "connection", "installed_on", "removed_on")
    search_fields = ("^serial", "maker", "^connection__number", "connection__building__street")
    list_filter = ("kind", "maker", "domestic_hot_water")
    # a connection is named by its building's address
    list_select_related = ("connection__building",)
    autocomplete_fields = ("connection",)


@admin.register(models.Contract)
class ContractAdmin(HistoryAdmin):
    form = ContractForm
    list_display = ("account", "connection", "valid_from", "valid_to")
    search_fields = (
        "^account__number",
        "account__customer__name",
        "^connection__number",
        "connection__building__street",
    )
    list_filter = ("connection__network", "valid_from")
    list_select_related = ("account__customer", "connection__building")
    autocomplete_fields = ("account", "connection")
    date_hierarchy = "valid_from"
