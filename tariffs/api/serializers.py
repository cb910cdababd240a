"""Explicit serializers for the tariffs API (no ``__all__``)."""

from __future__ import annotations

import functools
import zoneinfo
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from customers.models import Network
from heatutility.api import BoundedDateField, BoundedModelSerializer, ModelValidationMixin
from heatutility.errors import DomainError
from tariffs import models
from tariffs.caps import parse_cap_inputs
from tariffs.rating import TariffComponentsInvalid, components_from_data
from tariffs.services import price_cap_operating_cost_check, price_cap_versions_above

BIGINT_MAX = 2**63 - 1


# model serializers of this app: every model date is a BoundedDateField
ModelSerializer = BoundedModelSerializer


def _itemised(exc: DomainError, prefix: str) -> serializers.ValidationError:
    """A domain error's items as a DRF error keyed by their path below ``prefix``
    (``components.0.blocks.0`` → ``{"0.blocks.0": [...]}`` on the ``components`` field)."""
    detail: dict[str, list] = {}
    for e in exc.errors:
        field = e.field or prefix
        key = field[len(prefix) :].lstrip(".") if field.startswith(prefix) else field
        detail.setdefault(key or "non_field_errors", []).append(ErrorDetail(e.message, code=e.code))
    return serializers.ValidationError(
        detail or {"non_field_errors": [ErrorDetail(exc.message, code=exc.code)]}
    )


def _validate_components(value):
    try:
        components_from_data(value)
    except TariffComponentsInvalid as exc:
        raise _itemised(exc, "components") from exc
    return value


def _ends_after_start(attrs, start: str, end: str, message: str) -> None:
    if attrs.get(start) is not None and attrs.get(end) is not None and attrs[end] <= attrs[start]:
        raise serializers.ValidationError({end: message})


# the database's check: 0 ≤ VAT < 1 (a fraction, 4 decimals)
VAT_RATE_BOUNDS = {"min_value": Decimal("0"), "max_value": Decimal("0.9999")}


class TariffSerializer(ModelValidationMixin, ModelSerializer):
    """A customer class on a network.  A tariff with versions or assignments keeps its
    network (400 on ``network``): another network gets a tariff of its own."""

    class Meta:
        model = models.Tariff
        fields = ["id", "network", "code", "name", "customer_class", "is_default", "created_at"]
        read_only_fields = ["created_at"]


class TariffVersionSerializer(ModelSerializer):
    components = serializers.JSONField(help_text="Component list; schema in docs/tariffs.md.")

    class Meta:
        model = models.TariffVersion
        fields = [
            "id",
            "tariff",
            "number",
            "valid_from",
            "valid_to",
            "status",
            "prices_include_vat",
            "vat_rate",
            "components",
            "notes",
            "created_at",
            "approved_at",
            "approved_by",
            "approved_under_cap",
            "published_at",
        ]
        read_only_fields = [
            "number",
            "status",
            "created_at",
            "approved_at",
            "approved_by",
            "approved_under_cap",
            "published_at",
        ]
        extra_kwargs = {"vat_rate": VAT_RATE_BOUNDS}

    def validate_components(self, value):
        return _validate_components(value)

    def validate(self, attrs):
        _ends_after_start(
            attrs,
            "valid_from",
            "valid_to",
            "A tariff version must end after it starts (valid_to is exclusive).",
        )
        return attrs


class TariffVersionDraftUpdateSerializer(serializers.Serializer):
    valid_from = BoundedDateField(required=False)
    valid_to = BoundedDateField(required=False, allow_null=True)
    components = serializers.JSONField(required=False)
    prices_include_vat = serializers.BooleanField(required=False)
    vat_rate = serializers.DecimalField(
        max_digits=5, decimal_places=4, required=False, **VAT_RATE_BOUNDS
    )
    notes = serializers.CharField(required=False, allow_blank=True)

    def validate_components(self, value):
        return _validate_components(value)

    def validate(self, attrs):
        _ends_after_start(
            attrs,
            "valid_from",
            "valid_to",
            "A tariff version must end after it starts (valid_to is exclusive).",
        )
        return attrs


class NewVersionSerializer(serializers.Serializer):
    valid_from = BoundedDateField()


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
    as_of = BoundedDateField(required=False)


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
    percentiles = serializers.DictField(
        child=serializers.DecimalField(max_digits=16, decimal_places=2)
    )
    sources = serializers.DictField(child=serializers.IntegerField())
    largest_increases = ImpactChangeSerializer(many=True)


class CapCheckSerializer(serializers.Serializer):
    caps = serializers.ListField(child=serializers.IntegerField())
    excesses = serializers.ListField(child=serializers.CharField())


class TariffAssignmentSerializer(ModelSerializer):
    class Meta:
        model = models.TariffAssignment
        fields = ["id", "connection", "tariff", "valid_from", "valid_to", "created_at"]
        read_only_fields = ["created_at"]


class BulkAssignSerializer(serializers.Serializer):
    tariff = serializers.PrimaryKeyRelatedField(queryset=models.Tariff.objects.all())
    connection_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=BIGINT_MAX), allow_empty=False
    )
    valid_from = BoundedDateField()


class PlantSerializer(ModelSerializer):
    class Meta:
        model = models.Plant
        fields = ["id", "network", "code", "name"]


class PlantUnitSerializer(ModelSerializer):
    class Meta:
        model = models.PlantUnit
        fields = [
            "id",
            "plant",
            "code",
            "name",
            "kind",
            "source_type",
            "capacity_mw",
            "lorenz_efficiency",
            "boiler_efficiency",
            "fuel_price_per_mwh",
            "co2_t_per_mwh_fuel",
            "co2_price_per_t",
            "om_fixed_per_mw_year",
            "om_variable_per_mwh",
            "investment",
            "lifetime_years",
            "interest_rate",
            "capital_method",
            "commissioned_on",
        ]

    def validate(self, attrs):
        """The table's check constraints as field errors (400), not a bare 409."""

        def value(name):
            if name in attrs:
                return attrs[name]
            if self.instance is not None:
                return getattr(self.instance, name)
            return models.PlantUnit._meta.get_field(name).get_default()

        errors = {}
        if value("capacity_mw") is not None and value("capacity_mw") <= 0:
            errors["capacity_mw"] = "A unit's capacity must be above 0."
        if not 0 < value("lorenz_efficiency") <= 1:
            errors["lorenz_efficiency"] = "The Lorenz efficiency is above 0 and at most 1."
        if not 0 < value("boiler_efficiency") <= Decimal("1.2"):
            errors["boiler_efficiency"] = "The boiler efficiency is above 0 and at most 1.2."
        if value("kind") == models.PlantUnit.Kind.HEAT_PUMP and not value("source_type"):
            errors["source_type"] = "A heat pump needs a source type."
        if value("lifetime_years") < 1:
            errors["lifetime_years"] = "The lifetime is at least 1 year."
        if not 0 <= value("interest_rate") <= 1:
            errors["interest_rate"] = "The interest rate is a fraction from 0 to 1 (0.04 for 4 %)."
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


def _currency_field() -> serializers.RegexField:
    """An ISO 4217 code, DKK when left out (charges and plant-data imports)."""
    return serializers.RegexField(
        r"^[A-Z]{3}$",
        required=False,
        default="DKK",
        error_messages={"invalid": "A currency is three capital letters (ISO 4217)."},
    )


class ElectricityChargeSerializer(ModelSerializer):
    # as the plant-data imports' currency: a charge in "eu" would never match a cap's
    currency = _currency_field()

    class Meta:
        model = models.ElectricityCharge
        fields = [
            "id",
            "price_area",
            "kind",
            "valid_from",
            "valid_to",
            "hour_from",
            "hour_to",
            "amount_per_mwh",
            "currency",
            "data_import",
        ]
        read_only_fields = ["data_import"]
        extra_kwargs = {
            "hour_from": {"min_value": 0, "max_value": 23},
            "hour_to": {"min_value": 1, "max_value": 24},
        }

    def validate(self, attrs):
        _ends_after_start(
            attrs,
            "valid_from",
            "valid_to",
            "A charge must end after it starts (valid_to is exclusive).",
        )
        if attrs.get("hour_from", 0) >= attrs.get("hour_to", 24):
            raise serializers.ValidationError(
                {"hour_to": "The hour band must end after it starts."}
            )
        return attrs


class UnitHourSerializer(ModelSerializer):
    class Meta:
        model = models.UnitHour
        fields = [
            "id",
            "unit",
            "hour_start",
            "heat_mwh",
            "electricity_mwh",
            "fuel_mwh",
            "source_in_c",
            "source_out_c",
            "supply_c",
            "return_c",
            "data_import",
        ]
        read_only_fields = fields


class SpotPriceSerializer(ModelSerializer):
    class Meta:
        model = models.SpotPrice
        fields = ["id", "price_area", "hour_start", "price_per_mwh", "currency", "data_import"]
        read_only_fields = fields


class DataImportSerializer(ModelSerializer):
    kind = serializers.CharField(
        read_only=True, help_text="unit_hours | spot_prices | electricity_charges"
    )

    class Meta:
        model = models.DataImport
        fields = [
            "id",
            "kind",
            "unit",
            "price_area",
            "currency",
            "time_zone",
            "filename",
            "status",
            "rows",
            "resolution_minutes",
            "first_hour",
            "last_hour",
            "errors",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class DataImportCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=models.DataImport.Kind.choices)
    unit = serializers.PrimaryKeyRelatedField(
        queryset=models.PlantUnit.objects.all(), required=False, allow_null=True
    )
    price_area = serializers.CharField(required=False, allow_blank=True, default="", max_length=20)
    currency = _currency_field()
    time_zone = serializers.CharField(
        required=False,
        default="Europe/Copenhagen",
        max_length=64,
        help_text="IANA zone of naive times in the file",
    )
    file = serializers.FileField(
        required=False, help_text="CSV file (multipart); or send `content`."
    )
    content = serializers.CharField(required=False, help_text="CSV text.", trim_whitespace=False)

    def validate_time_zone(self, value):
        if value not in _time_zones():
            raise serializers.ValidationError(
                f"{value!r} is not a known IANA time zone (e.g. Europe/Copenhagen)."
            )
        return value

    def validate(self, attrs):
        if not attrs.get("file") and not attrs.get("content"):
            raise serializers.ValidationError("Send a CSV `file` or its `content`.")
        if attrs["kind"] == models.DataImport.Kind.UNIT_HOURS and not attrs.get("unit"):
            raise serializers.ValidationError({"unit": "Unit operating data needs the unit."})
        if attrs["kind"] == models.DataImport.Kind.SPOT_PRICES and not attrs.get("price_area"):
            raise serializers.ValidationError({"price_area": "Prices need the price area."})
        return attrs


class OperatingCostSerializer(ModelSerializer):
    class Meta:
        model = models.OperatingCost
        fields = [
            "id",
            "network",
            "period_start",
            "period_end",
            "inputs",
            "results",
            "cost_per_mwh_produced",
            "cost_per_mwh_sold",
            "computed_at",
        ]
        read_only_fields = fields


class OperatingCostComputeSerializer(serializers.Serializer):
    network = serializers.PrimaryKeyRelatedField(queryset=Network.objects.all())
    period_start = BoundedDateField()
    period_end = BoundedDateField()
    # heat sold is above 0 (it divides the cost); the loss share is a fraction from 0 to below 1
    heat_sold_mwh = serializers.DecimalField(
        max_digits=14, decimal_places=3, required=False, allow_null=True, min_value=Decimal("0.001")
    )
    loss_share = serializers.DecimalField(
        max_digits=6,
        decimal_places=4,
        required=False,
        allow_null=True,
        min_value=Decimal("0"),
        max_value=Decimal("0.9999"),
    )
    network_costs_per_year = serializers.DecimalField(
        max_digits=14, decimal_places=2, required=False, default=0
    )

    def validate(self, attrs):
        _ends_after_start(
            attrs,
            "period_start",
            "period_end",
            "The period must end after it starts (period_end is exclusive).",
        )
        return attrs


class VersionAboveCapSerializer(serializers.Serializer):
    tariff = serializers.CharField(help_text="The tariff's code.")
    version_id = serializers.IntegerField()
    number = serializers.IntegerField()
    valid_from = serializers.DateField()
    valid_to = serializers.DateField(allow_null=True)
    messages = serializers.ListField(
        child=serializers.CharField(), help_text="Every excess, as approval words it."
    )


class PriceCapSerializer(ModelSerializer):
    versions_above_cap = serializers.SerializerMethodField(
        help_text="Approved or published tariff versions in the cap's period whose prices exceed it (approved "
        "before the cap was adopted): approve a version under the cap from the day the excess must end."
    )

    class Meta:
        model = models.PriceCap
        fields = [
            "id",
            "network",
            "method",
            "status",
            "period_start",
            "period_end",
            "currency",
            "includes_vat",
            "energy_cap_per_mwh",
            "fixed_cap_per_year",
            "capacity_cap_per_kw",
            "area_cap_per_m2",
            "reference_total_cap",
            "operating_cost",
            "inputs",
            "results",
            "computed_at",
            "adopted_at",
            "versions_above_cap",
        ]
        read_only_fields = fields

    @extend_schema_field(VersionAboveCapSerializer(many=True))
    def get_versions_above_cap(self, cap) -> list[dict]:
        return VersionAboveCapSerializer(price_cap_versions_above(cap=cap), many=True).data


class PriceCapComputeSerializer(serializers.Serializer):
    network = serializers.PrimaryKeyRelatedField(queryset=Network.objects.all())
    method = serializers.ChoiceField(choices=models.PriceCap.Method.choices)
    period_start = BoundedDateField()
    period_end = BoundedDateField()
    inputs = serializers.DictField(help_text="Method inputs; see docs/tariffs.md (Price caps).")
    operating_cost = serializers.PrimaryKeyRelatedField(
        queryset=models.OperatingCost.objects.all(), required=False, allow_null=True
    )

    def validate(self, attrs):
        _ends_after_start(
            attrs,
            "period_start",
            "period_end",
            "The period must end after it starts (period_end is exclusive).",
        )
        try:
            parse_cap_inputs(method=attrs["method"], inputs=attrs["inputs"])
            price_cap_operating_cost_check(
                network=attrs["network"], operating_cost=attrs.get("operating_cost")
            )
        except DomainError as exc:
            raise _itemised(exc, "") from exc
        return attrs


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())
