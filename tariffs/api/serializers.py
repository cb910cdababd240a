"""Explicit serializers for the tariffs API (no ``__all__``)."""

from __future__ import annotations

from rest_framework import serializers

from customers.models import Network
from tariffs import models
from tariffs.rating import TariffComponentsInvalid, components_from_data


class TariffSerializer(serializers.ModelSerializer):
    class Meta:
        model = models.Tariff
        fields = ["id", "network", "code", "name", "customer_class", "is_default", "created_at"]
        read_only_fields = ["created_at"]


class TariffVersionSerializer(serializers.ModelSerializer):
    components = serializers.JSONField(help_text="Component list; schema in docs/tariffs.md.")

    class Meta:
        model = models.TariffVersion
        fields = [
            "id", "tariff", "number", "valid_from", "valid_to", "status", "prices_include_vat", "vat_rate",
            "components", "notes", "created_at", "approved_at", "approved_by", "approved_under_cap", "published_at",
        ]
        read_only_fields = ["number", "status", "created_at", "approved_at", "approved_by", "approved_under_cap", "published_at"]

    def validate_components(self, value):
        try:
            components_from_data(value)
        except TariffComponentsInvalid as exc:
            raise serializers.ValidationError([f"{e.field}: {e.message}" for e in exc.errors]) from exc
        return value


class TariffVersionDraftUpdateSerializer(serializers.Serializer):
    valid_from = serializers.DateField(required=False)
    valid_to = serializers.DateField(required=False, allow_null=True)
    components = serializers.JSONField(required=False)
    prices_include_vat = serializers.BooleanField(required=False)
    vat_rate = serializers.DecimalField(max_digits=5, decimal_places=4, required=False)
    notes = serializers.CharField(required=False, allow_blank=True)


class NewVersionSerializer(serializers.Serializer):
    valid_from = serializers.DateField()


class PricedLineSerializer(serializers.Serializer):
    component = serializers.CharField()
    kind = serializers.CharField()
    description = serializers.CharField()
    explanation = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=20, decimal_places=6)
    unit = serializers.CharField()
    unit_price = serializers.DecimalField(max_digits=20, decimal_places=10)
    period_fraction = serializers.DecimalField(max_digits=14, decimal_places=10)
    amount = serializers.DecimalField(max_digits=16, decimal_places=2)
    vat_rate = serializers.DecimalField(max_digits=5, decimal_places=4)


class PriceExamplesQuerySerializer(serializers.Serializer):
    year = serializers.IntegerField(min_value=1900, max_value=2200, required=False)


class ImpactQuerySerializer(serializers.Serializer):
    as_of = serializers.DateField(required=False)


class PriceExampleSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    energy_mwh = serializers.DecimalField(max_digits=12, decimal_places=3)
    heated_area_m2 = serializers.DecimalField(max_digits=12, decimal_places=2)
    contracted_kw = serializers.DecimalField(max_digits=12, decimal_places=2)
    net = serializers.DecimalField(max_digits=16, decimal_places=2)
    vat = serializers.DecimalField(max_digits=16, decimal_places=2)
    gross = serializers.DecimalField(max_digits=16, decimal_places=2)
    fixed_net = serializers.DecimalField(max_digits=16, decimal_places=2)
    variable_net = serializers.DecimalField(max_digits=16, decimal_places=2)
    gross_per_mwh = serializers.DecimalField(max_digits=16, decimal_places=2)
    lines = PricedLineSerializer(many=True)


class ImpactChangeSerializer(serializers.Serializer):
    connection_id = serializers.IntegerField()
    before = serializers.DecimalField(max_digits=16, decimal_places=2)
    after = serializers.DecimalField(max_digits=16, decimal_places=2)
    change = serializers.DecimalField(max_digits=16, decimal_places=2)
    change_pct = serializers.DecimalField(max_digits=10, decimal_places=1, allow_null=True)


class ImpactSerializer(serializers.Serializer):
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    count = serializers.IntegerField()
    mean = serializers.DecimalField(max_digits=16, decimal_places=2)
    min = serializers.DecimalField(max_digits=16, decimal_places=2)
    max = serializers.DecimalField(max_digits=16, decimal_places=2)
    increased = serializers.IntegerField()
    decreased = serializers.IntegerField()
    percentiles = serializers.DictField(child=serializers.DecimalField(max_digits=16, decimal_places=2))
    sources = serializers.DictField(child=serializers.IntegerField())
    largest_increases = ImpactChangeSerializer(many=True)


class CapCheckSerializer(serializers.Serializer):
    caps = serializers.ListField(child=serializers.IntegerField())
    excesses = serializers.ListField(child=serializers.CharField())


class TariffAssignmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = models.TariffAssignment
        fields = ["id", "connection", "tariff", "valid_from", "valid_to", "created_at"]
        read_only_fields = ["created_at"]


class BulkAssignSerializer(serializers.Serializer):
    tariff = serializers.PrimaryKeyRelatedField(queryset=models.Tariff.objects.all())
    connection_ids = serializers.ListField(child=serializers.IntegerField(), allow_empty=False)
    valid_from = serializers.DateField()


class PlantSerializer(serializers.ModelSerializer):
    class Meta:
        model = models.Plant
        fields = ["id", "network", "code", "name"]


class PlantUnitSerializer(serializers.ModelSerializer):
    class Meta:
        model = models.PlantUnit
        fields = [
            "id", "plant", "code", "name", "kind", "source_type", "capacity_mw", "lorenz_efficiency",
            "boiler_efficiency", "fuel_price_per_mwh", "co2_t_per_mwh_fuel", "co2_price_per_t",
            "om_fixed_per_mw_year", "om_variable_per_mwh", "investment", "lifetime_years", "interest_rate",
            "capital_method", "commissioned_on",
        ]


class ElectricityChargeSerializer(serializers.ModelSerializer):
    class Meta:
        model = models.ElectricityCharge
        fields = ["id", "price_area", "kind", "valid_from", "valid_to", "hour_from", "hour_to", "amount_per_mwh",
                  "currency", "data_import"]
        read_only_fields = ["data_import"]


class UnitHourSerializer(serializers.ModelSerializer):
    class Meta:
        model = models.UnitHour
        fields = ["id", "unit", "hour_start", "heat_mwh", "electricity_mwh", "fuel_mwh", "source_in_c", "source_out_c",
                  "supply_c", "return_c", "data_import"]
        read_only_fields = fields


class SpotPriceSerializer(serializers.ModelSerializer):
    class Meta:
        model = models.SpotPrice
        fields = ["id", "price_area", "hour_start", "price_per_mwh", "currency", "data_import"]
        read_only_fields = fields


class DataImportSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(read_only=True, help_text="unit_hours | spot_prices | electricity_charges")

    class Meta:
        model = models.DataImport
        fields = [
            "id", "kind", "unit", "price_area", "currency", "time_zone", "filename", "status", "rows",
            "first_hour", "last_hour", "errors", "created_at", "finished_at",
        ]
        read_only_fields = fields


class DataImportCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=models.DataImport.Kind.choices)
    unit = serializers.PrimaryKeyRelatedField(queryset=models.PlantUnit.objects.all(), required=False, allow_null=True)
    price_area = serializers.CharField(required=False, allow_blank=True, default="")
    currency = serializers.CharField(required=False, default="DKK")
    time_zone = serializers.CharField(required=False, default="Europe/Copenhagen")
    file = serializers.FileField(required=False, help_text="CSV file (multipart); or send `content`.")
    content = serializers.CharField(required=False, help_text="CSV text.", trim_whitespace=False)

    def validate(self, attrs):
        if not attrs.get("file") and not attrs.get("content"):
            raise serializers.ValidationError("Send a CSV `file` or its `content`.")
        if attrs["kind"] == models.DataImport.Kind.UNIT_HOURS and not attrs.get("unit"):
            raise serializers.ValidationError({"unit": "Unit operating data needs the unit."})
        if attrs["kind"] == models.DataImport.Kind.SPOT_PRICES and not attrs.get("price_area"):
            raise serializers.ValidationError({"price_area": "Prices need the price area."})
        return attrs


class OperatingCostSerializer(serializers.ModelSerializer):
    class Meta:
        model = models.OperatingCost
        fields = ["id", "network", "period_start", "period_end", "inputs", "results", "cost_per_mwh_produced",
                  "cost_per_mwh_sold", "computed_at"]
        read_only_fields = fields


class OperatingCostComputeSerializer(serializers.Serializer):
    network = serializers.PrimaryKeyRelatedField(queryset=Network.objects.all())
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    heat_sold_mwh = serializers.DecimalField(max_digits=14, decimal_places=3, required=False, allow_null=True)
    loss_share = serializers.DecimalField(max_digits=6, decimal_places=4, required=False, allow_null=True)
    network_costs_per_year = serializers.DecimalField(max_digits=14, decimal_places=2, required=False, default=0)


class PriceCapSerializer(serializers.ModelSerializer):
    class Meta:
        model = models.PriceCap
        fields = [
            "id", "network", "method", "status", "period_start", "period_end", "currency", "includes_vat",
            "energy_cap_per_mwh", "fixed_cap_per_year", "capacity_cap_per_kw", "area_cap_per_m2",
            "reference_total_cap", "operating_cost", "inputs", "results", "computed_at", "adopted_at",
        ]
        read_only_fields = fields


class PriceCapComputeSerializer(serializers.Serializer):
    network = serializers.PrimaryKeyRelatedField(queryset=Network.objects.all())
    method = serializers.ChoiceField(choices=models.PriceCap.Method.choices)
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    inputs = serializers.DictField(help_text="Method inputs; see docs/tariffs.md (Price caps).")
    operating_cost = serializers.PrimaryKeyRelatedField(queryset=models.OperatingCost.objects.all(), required=False, allow_null=True)
