from decimal import Decimal

from rest_framework import serializers

from customers import models
from heatutility.api import BoundedDateField, ModelValidationMixin


class NetworkSerializer(ModelValidationMixin, serializers.ModelSerializer):
    class Meta:
        model = models.Network
        fields = [
            "id",
            "code",
            "name",
            "time_zone",
            "currency",
            "design_supply_temp_c",
            "design_return_temp_c",
            "price_area",
            "normal_degree_days",
        ]

    def validate(self, attrs):
        from customers.services import network_edit_errors

        if self.instance is not None:
            errors = network_edit_errors(
                network=self.instance,
                currency=attrs.get("currency", self.instance.currency),
                time_zone=attrs.get("time_zone", self.instance.time_zone),
            )
            if errors:
                raise serializers.ValidationError({e.field: [e.message] for e in errors})
        return super().validate(attrs)


class CustomerSerializer(ModelValidationMixin, serializers.ModelSerializer):
    class Meta:
        model = models.Customer
        fields = ["id", "kind", "name", "organisation_number", "email", "phone"]


class AccountSerializer(ModelValidationMixin, serializers.ModelSerializer):
    class Meta:
        model = models.Account
        fields = [
            "id",
            "number",
            "customer",
            "network",
            "status",
            "billing_name",
            "billing_street",
            "billing_postal_code",
            "billing_city",
            "billing_country",
            "payment_terms_days",
        ]
        read_only_fields = ["status"]


class BuildingSerializer(ModelValidationMixin, serializers.ModelSerializer):
    class Meta:
        model = models.Building
        fields = [
            "id",
            "street",
            "postal_code",
            "city",
            "country",
            "register_id",
            "heated_area_m2",
            "dwellings",
            "use",
            "year_built",
        ]

    def validate_heated_area_m2(self, value):
        if self.instance is not None and value != self.instance.heated_area_m2:
            raise serializers.ValidationError(
                "Set when the building is created; afterwards record an area change "
                "(POST …/buildings/{id}/area-changes/) with the day it applies from, "
                "so that billing prices each day with its own m²."
            )
        return value


class AreaChangeSerializer(serializers.ModelSerializer):
    """An area change; the view passes the building in the context (``building``)."""

    valid_from = BoundedDateField(help_text="First day (local) of the new heated area.")
    heated_area_m2 = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=Decimal("0.01")
    )

    class Meta:
        model = models.AreaChange
        fields = ["id", "building", "valid_from", "heated_area_m2", "previous_m2", "reason"]
        read_only_fields = ["id", "building", "previous_m2"]

    def validate_valid_from(self, value):
        building = self.context.get("building")
        if building is not None and building.area_changes.filter(valid_from=value).exists():
            raise serializers.ValidationError("This building already has an area change that day.")
        return value


class ServiceConnectionSerializer(ModelValidationMixin, serializers.ModelSerializer):
    class Meta:
        model = models.ServiceConnection
        fields = [
            "id",
            "number",
            "building",
            "network",
            "contracted_capacity_kw",
            "status",
            "connected_on",
            "disconnected_on",
        ]

    def validate(self, attrs):
        from customers.services import connection_edit_errors

        if self.instance is not None:  # before super(), which sets attrs on the instance
            errors = connection_edit_errors(
                connection=self.instance,
                network_id=attrs.get("network", self.instance.network).pk,
                building_id=attrs.get("building", self.instance.building).pk,
                connected_on=attrs.get("connected_on", self.instance.connected_on),
                disconnected_on=attrs.get("disconnected_on", self.instance.disconnected_on),
                status=attrs.get("status", self.instance.status),
            )
            if errors:
                detail: dict[str, list[str]] = {}
                for error in errors:
                    detail.setdefault(error.field, []).append(error.message)
                raise serializers.ValidationError(detail)
        return super().validate(attrs)

    def validate_contracted_capacity_kw(self, value):
        if self.instance is not None and value != self.instance.contracted_capacity_kw:
            raise serializers.ValidationError(
                "Set when the connection is created; afterwards record a capacity change "
                "(POST …/connections/{id}/capacity-changes/) with the day it applies from, "
                "so that billing prices each day with its own kW."
            )
        return value


class CapacityChangeSerializer(serializers.ModelSerializer):
    """A capacity change; the view passes the connection in the context (``connection``)."""

    valid_from = BoundedDateField(help_text="First day (local) of the new capacity.")
    capacity_kw = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=Decimal("0.01")
    )

    class Meta:
        model = models.CapacityChange
        fields = ["id", "connection", "valid_from", "capacity_kw", "previous_kw", "reason"]
        read_only_fields = ["id", "connection", "previous_kw"]

    def validate_valid_from(self, value):
        from customers.services import capacity_change_errors

        connection = self.context.get("connection")
        if connection is not None and connection.capacity_changes.filter(valid_from=value).exists():
            raise serializers.ValidationError(
                "This connection already has a capacity change that day."
            )
        if connection is not None and (
            errors := capacity_change_errors(connection=connection, valid_from=value)
        ):
            raise serializers.ValidationError([e.message for e in errors])
        return value


class BuildingInterfaceUnitSerializer(ModelValidationMixin, serializers.ModelSerializer):
    class Meta:
        model = models.BuildingInterfaceUnit
        fields = [
            "id",
            "connection",
            "maker",
            "model",
            "serial",
            "kind",
            "domestic_hot_water",
            "installed_on",
            "removed_on",
            "design_supply_temp_c",
            "design_return_temp_c",
        ]

    def validate_connection(self, value):
        from customers.services import interface_unit_edit_errors

        if self.instance is not None and (
            errors := interface_unit_edit_errors(unit=self.instance, connection_id=value.pk)
        ):
            raise serializers.ValidationError([e.message for e in errors])
        return value


class ContractSerializer(serializers.ModelSerializer):
    class Meta:
        model = models.Contract
        fields = ["id", "account", "connection", "valid_from", "valid_to", "created_at"]
        read_only_fields = fields


class MoveInSerializer(serializers.Serializer):
    account = serializers.PrimaryKeyRelatedField(queryset=models.Account.objects.all())
    connection = serializers.PrimaryKeyRelatedField(queryset=models.ServiceConnection.objects.all())
    move_in_on = BoundedDateField()
    end_previous = serializers.BooleanField(
        default=False, help_text="End an open contract of the previous occupant on the same day."
    )


class MoveOutSerializer(serializers.Serializer):
    move_out_on = BoundedDateField(help_text="First day no longer supplied.")


class AccountStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=models.Account.Status.choices)
    reason = serializers.CharField(required=False, allow_blank=True, default="")
