"""What heat may cost: plant, hourly series, operating cost, price caps, tariffs.

Tariff versions are effective-dated, half-open ``[valid_from, valid_to)``; approved and
published versions never overlap (partial exclusion constraint on PostgreSQL) and never
change: the services refuse it and a database trigger (migration 0002) refuses an UPDATE
of an approved version's prices, dates or VAT, except closing an open end once when a
successor is approved.  Components are stored as JSON and validated into the pure
dataclasses of :mod:`tariffs.rating`.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from heatutility.db import NoOverlapConstraint
from tariffs.db import ConditionalNoOverlapConstraint

IN_FORCE = ("approved", "published")


# ----------------------------------------------------------------------------- tariffs
class Tariff(models.Model):
    """A customer class on a network (e.g. "Houses", "Multi-dwelling")."""

    network = models.ForeignKey(
        "customers.Network", on_delete=models.PROTECT, related_name="tariffs"
    )
    code = models.SlugField(max_length=40)
    name = models.CharField(max_length=200)
    customer_class = models.CharField(max_length=100, blank=True)
    is_default = models.BooleanField(
        default=False,
        help_text="Applies to the network's connections that have no tariff assignment.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["network", "code"]
        constraints = [
            models.UniqueConstraint(
                fields=["network", "code"],
                name="tariff_unique_code_per_network",
                violation_error_message="This network already has a tariff with this code.",
            ),
            models.UniqueConstraint(
                fields=["network"],
                condition=Q(is_default=True),
                name="tariff_one_default_per_network",
                violation_error_message="A network has at most one default tariff.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} – {self.name}"

    def clean(self) -> None:
        """A tariff in use keeps its network, as an account does (``customers.Account.clean``):
        its versions are priced in that network's currency and approved under its caps, and
        its assignments hold that network's connections (``services.tariff_assign`` refuses
        another network's).  Moved, those connections would be billed on a foreign tariff.
        Another network gets a tariff of its own."""
        super().clean()
        if self.pk is None:
            return
        before = Tariff.objects.filter(pk=self.pk).values_list("network_id", flat=True).first()
        if before is None or before == self.network_id:
            return
        if self.versions.exists() or self.assignments.exists():
            raise ValidationError(
                {
                    "network": "This tariff has versions or assignments: its network cannot change. "
                    "Create a tariff on the other network instead."
                }
            )


class TariffVersion(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        APPROVED = "approved", "Approved"
        PUBLISHED = "published", "Published"

    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True, help_text="Exclusive; empty = open.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    prices_include_vat = models.BooleanField(
        default=False, help_text="Prices entered incl. VAT; rating converts them to net."
    )
    vat_rate = models.DecimalField(max_digits=5, decimal_places=4, default=Decimal("0.25"))
    components = models.JSONField(default=list, help_text="See docs/tariffs.md for the schema.")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_under_cap = models.ForeignKey(
        "PriceCap",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="approved_versions",
    )
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tariff", "valid_from"]
        permissions = [("approve_tariffversion", "Can approve tariff versions")]
        constraints = [
            models.UniqueConstraint(
                fields=["tariff", "number"],
                name="tariffversion_unique_number",
                violation_error_message="This tariff already has a version with this number.",
            ),
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=F("valid_from")),
                name="tariffversion_ends_after_start",
                violation_error_message="A tariff version must end after it starts.",
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(approved_at__isnull=False),
                name="tariffversion_approved_has_time",
                violation_error_message="An approved version records when it was approved.",
            ),
            models.CheckConstraint(
                condition=Q(vat_rate__gte=0) & Q(vat_rate__lt=1),
                name="tariffversion_vat_rate_range",
                violation_error_message="The VAT rate is a fraction between 0 and 1.",
            ),
            ConditionalNoOverlapConstraint(
                name="tariffversion_no_overlap_in_force",
                group=["tariff"],
                start="valid_from",
                end="valid_to",
                condition=Q(status__in=IN_FORCE),
                violation_error_message="An approved version of this tariff already covers part of that period.",
            ),
        ]

    def __str__(self) -> str:
        end = self.valid_to.isoformat() if self.valid_to else "…"
        return f"{self.tariff.code} v{self.number} [{self.valid_from}, {end}) {self.status}"

    @property
    def is_locked(self) -> bool:
        return self.status in IN_FORCE

    def clean(self) -> None:
        from tariffs.rating import TariffComponentsInvalid, components_from_data

        try:
            components_from_data(self.components)
        except TariffComponentsInvalid as exc:
            raise ValidationError(
                {"components": [f"{e.field}: {e.message}" for e in exc.errors]}
            ) from exc


class TariffAssignment(models.Model):
    """Which tariff applies to a service connection, ``[valid_from, valid_to)``."""

    connection = models.ForeignKey(
        "customers.ServiceConnection", on_delete=models.PROTECT, related_name="tariff_assignments"
    )
    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="assignments")
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["connection", "valid_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=F("valid_from")),
                name="tariffassignment_ends_after_start",
                violation_error_message="An assignment must end after it starts.",
            ),
            NoOverlapConstraint(
                name="tariffassignment_no_overlap",
                group=["connection"],
                start="valid_from",
                end="valid_to",
                violation_error_message="This connection already has a tariff in that period.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.connection_id} → {self.tariff.code} from {self.valid_from}"


# ----------------------------------------------------------------------------- plant
class Plant(models.Model):
    network = models.ForeignKey(
        "customers.Network", on_delete=models.PROTECT, related_name="plants"
    )
    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class PlantUnit(models.Model):
    class Kind(models.TextChoices):
        HEAT_PUMP = "heat_pump", "Heat pump"
        ELECTRIC_BOILER = "electric_boiler", "Electric boiler"
        FUEL_BOILER = "fuel_boiler", "Fuel boiler"
        STORAGE = "storage", "Thermal storage"

    class Source(models.TextChoices):
        NONE = "", "—"
        SEAWATER = "seawater", "Seawater"
        RIVER = "river", "River water"
        WASTEWATER = "wastewater", "Wastewater"
        DATA_CENTRE = "data_centre", "Data centre"
        INDUSTRIAL = "industrial", "Industrial waste heat"
        AMBIENT_AIR = "ambient_air", "Ambient air"

    class Capital(models.TextChoices):
        ANNUITY = "annuity", "Annuity"
        DEPRECIATION = "depreciation", "Straight-line depreciation + interest"

    plant = models.ForeignKey(Plant, on_delete=models.PROTECT, related_name="units")
    code = models.SlugField(max_length=40)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    source_type = models.CharField(max_length=20, choices=Source.choices, blank=True, default="")
    capacity_mw = models.DecimalField(
        max_digits=10, decimal_places=3, help_text="Heat output (MW), or storage MWh."
    )
    lorenz_efficiency = models.DecimalField(
        max_digits=4, decimal_places=3, default=Decimal("0.550")
    )
    boiler_efficiency = models.DecimalField(
        max_digits=4, decimal_places=3, default=Decimal("0.990")
    )
    fuel_price_per_mwh = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    co2_t_per_mwh_fuel = models.DecimalField(max_digits=8, decimal_places=5, default=Decimal("0"))
    co2_price_per_t = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    om_fixed_per_mw_year = models.DecimalField(
        max_digits=14, decimal_places=2, default=Decimal("0")
    )
    om_variable_per_mwh = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    investment = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0"))
    lifetime_years = models.PositiveSmallIntegerField(default=25)
    interest_rate = models.DecimalField(max_digits=6, decimal_places=5, default=Decimal("0.04"))
    capital_method = models.CharField(
        max_length=20, choices=Capital.choices, default=Capital.ANNUITY
    )
    commissioned_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["plant", "code"]
        constraints = [
            models.UniqueConstraint(
                fields=["plant", "code"],
                name="plantunit_unique_code",
                violation_error_message="This plant already has a unit with this code.",
            ),
            models.CheckConstraint(
                condition=Q(capacity_mw__gt=0),
                name="plantunit_capacity_positive",
                violation_error_message="A unit's capacity must be above 0.",
            ),
            models.CheckConstraint(
                condition=Q(lorenz_efficiency__gt=0, lorenz_efficiency__lte=1)
                & Q(boiler_efficiency__gt=0, boiler_efficiency__lte=Decimal("1.2")),
                name="plantunit_efficiencies_plausible",
                violation_error_message="Efficiencies must be positive (Lorenz ≤ 1).",
            ),
            models.CheckConstraint(
                condition=~Q(kind="heat_pump") | ~Q(source_type=""),
                name="plantunit_heat_pump_has_source",
                violation_error_message="A heat pump needs a source type.",
            ),
            # a rate is a fraction (0.04 = 4 %): "4" typed for 4 % made 400 % capital costs
            models.CheckConstraint(
                condition=Q(lifetime_years__gte=1, interest_rate__gte=0, interest_rate__lte=1),
                name="plantunit_capital_inputs_plausible",
                violation_error_message="The lifetime is at least 1 year and the interest rate a "
                "fraction from 0 to 1, such as 0.04.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plant.code}/{self.code}"


class UnitHour(models.Model):
    """One hour of a unit's operation, ``[hour_start, hour_start + 1 h)`` in UTC."""

    unit = models.ForeignKey(PlantUnit, on_delete=models.CASCADE, related_name="hours")
    hour_start = models.DateTimeField()
    heat_mwh = models.DecimalField(max_digits=14, decimal_places=6)
    electricity_mwh = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    fuel_mwh = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    source_in_c = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    source_out_c = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    supply_c = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    return_c = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    data_import = models.ForeignKey(
        "DataImport", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["unit", "hour_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["unit", "hour_start"],
                name="unithour_unique",
                violation_error_message="This unit already has a value for that hour.",
            ),
            models.CheckConstraint(
                condition=Q(heat_mwh__gte=0),
                name="unithour_heat_not_negative",
                violation_error_message="Heat delivered cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.unit_id} {self.hour_start:%Y-%m-%d %H:%M}Z"


class SpotPrice(models.Model):
    """Day-ahead price of one hour in one bidding zone (per MWh, network currency)."""

    price_area = models.CharField(max_length=20)
    hour_start = models.DateTimeField()
    price_per_mwh = models.DecimalField(max_digits=12, decimal_places=4)
    currency = models.CharField(max_length=3, default="DKK")
    data_import = models.ForeignKey(
        "DataImport", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["price_area", "hour_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["price_area", "hour_start"],
                name="spotprice_unique",
                violation_error_message="This price area already has a price for that hour.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.price_area} {self.hour_start:%Y-%m-%d %H:%M}Z {self.price_per_mwh}"


class ElectricityCharge(models.Model):
    """Grid tariff, system tariffs or electricity tax per MWh, effective-dated ``[valid_from, valid_to)``.

    A time-of-use charge (e.g. a grid tariff's peak hours) applies to the local hours
    ``[hour_from, hour_to)`` of each day in the network's zone; an all-day charge is
    ``[0, 24)``.  Within a price area and kind the date ranges of one hour band never
    overlap (database constraint); that different hour bands of the same days do not
    overlap either is checked by the import (:func:`tariffs.imports.parse_electricity_charges`)
    and :func:`tariffs.services.electricity_charges_store`.
    """

    class Kind(models.TextChoices):
        GRID = "grid", "Grid tariff"
        SYSTEM = "system", "System tariffs"
        TAX = "tax", "Electricity tax"

    price_area = models.CharField(max_length=20)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)
    amount_per_mwh = models.DecimalField(max_digits=12, decimal_places=4)
    currency = models.CharField(max_length=3, default="DKK")
    hour_from = models.PositiveSmallIntegerField(
        default=0, help_text="Local hour the charge starts each day (0–23)."
    )
    hour_to = models.PositiveSmallIntegerField(
        default=24, help_text="Local hour it ends, exclusive (1–24)."
    )
    data_import = models.ForeignKey(
        "DataImport", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["price_area", "kind", "valid_from", "hour_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=F("valid_from")),
                name="electricitycharge_ends_after_start",
                violation_error_message="A charge must end after it starts.",
            ),
            models.CheckConstraint(
                condition=Q(hour_from__gte=0, hour_from__lt=F("hour_to"), hour_to__lte=24),
                name="electricitycharge_hours_valid",
                violation_error_message="Hours run from 0 to 24 and the band must end after it starts.",
            ),
            NoOverlapConstraint(
                name="electricitycharge_no_overlap",
                group=["price_area", "kind", "hour_from", "hour_to"],
                start="valid_from",
                end="valid_to",
                violation_error_message="This charge already has a value in that period.",
            ),
        ]

    def __str__(self) -> str:
        hours = (
            ""
            if (self.hour_from, self.hour_to) == (0, 24)
            else f" {self.hour_from:02d}–{self.hour_to:02d}h"
        )
        return (
            f"{self.price_area} {self.kind}{hours} {self.amount_per_mwh}/MWh from {self.valid_from}"
        )

    def clean(self) -> None:
        """Another hour band of the same area and kind may not cover the same hours of the same days."""
        if self.valid_from is None or self.hour_from is None or self.hour_to is None:
            return
        others = (
            ElectricityCharge.objects.filter(
                price_area=self.price_area,
                kind=self.kind,
                hour_from__lt=self.hour_to,
                hour_to__gt=self.hour_from,
            )
            .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=self.valid_from))
            .exclude(pk=self.pk)
        )
        if self.valid_to is not None:
            others = others.filter(valid_from__lt=self.valid_to)
        clash = others.exclude(hour_from=self.hour_from, hour_to=self.hour_to).first()
        if clash is not None:
            raise ValidationError(
                f"Hours {self.hour_from:02d}–{self.hour_to:02d} overlap charge #{clash.pk} "
                f"({clash.hour_from:02d}–{clash.hour_to:02d} from {clash.valid_from})."
            )


class DataImport(models.Model):
    """A CSV file of hourly data, imported by a Celery task (idempotent).

    Day-ahead prices may come at 15-minute resolution; they are stored hourly (the mean of
    the hour's four prices) and ``resolution_minutes`` says so, for every ``SpotPrice`` the
    import wrote (``SpotPrice.data_import``) and the cost and cap figures priced on them."""

    class Kind(models.TextChoices):
        UNIT_HOURS = "unit_hours", "Unit operating data (SCADA export)"
        SPOT_PRICES = "spot_prices", "Day-ahead prices (ENTSO-E export)"
        ELECTRICITY_CHARGES = (
            "electricity_charges",
            "Grid tariff, system tariffs, electricity tax (effective-dated)",
        )

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Imported"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    unit = models.ForeignKey(
        PlantUnit, null=True, blank=True, on_delete=models.PROTECT, related_name="imports"
    )
    price_area = models.CharField(max_length=20, blank=True)
    currency = models.CharField(max_length=3, default="DKK")
    time_zone = models.CharField(
        max_length=64,
        default="Europe/Copenhagen",
        help_text="Zone of naive local timestamps in the file.",
    )
    filename = models.CharField(max_length=200, blank=True)
    content = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    rows = models.PositiveIntegerField(default=0)
    resolution_minutes = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Resolution of the file's values: 60 (hourly) or 15 (quarter-hour day-ahead prices, "
        "stored as each hour's mean of its four quarter-hour prices). Empty for charges and "
        "until the import has run.",
    )
    first_hour = models.DateTimeField(null=True, blank=True)
    last_hour = models.DateTimeField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="unit_hours") & Q(unit__isnull=False))
                | (Q(kind="spot_prices") & ~Q(price_area=""))
                | Q(kind="electricity_charges"),
                name="dataimport_target_given",
                violation_error_message="Unit data needs a unit; spot prices need a price area.",
            ),
            models.CheckConstraint(
                condition=Q(resolution_minutes__isnull=True) | Q(resolution_minutes__in=[15, 60]),
                name="dataimport_resolution_known",
                violation_error_message="Values are hourly (60 minutes) or quarter-hourly (15 minutes).",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.filename} ({self.status})"


# ----------------------------------------------------------------------------- cost & caps
class OperatingCost(models.Model):
    """Operating cost of a network's plant over ``[period_start, period_end)`` with every figure."""

    network = models.ForeignKey(
        "customers.Network", on_delete=models.PROTECT, related_name="operating_costs"
    )
    period_start = models.DateField()
    period_end = models.DateField()
    inputs = models.JSONField(default=dict)
    results = models.JSONField(default=dict)
    hourly_csv = models.TextField(blank=True, help_text="Every hourly intermediate series, CSV.")
    cost_per_mwh_produced = models.DecimalField(max_digits=12, decimal_places=2)
    cost_per_mwh_sold = models.DecimalField(max_digits=12, decimal_places=2)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["network", "-period_start"]
        constraints = [
            models.CheckConstraint(
                condition=Q(period_end__gt=F("period_start")),
                name="operatingcost_period_valid",
                violation_error_message="The period must end after it starts.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.network} cost [{self.period_start}, {self.period_end})"


class PriceCap(models.Model):
    class Method(models.TextChoices):
        COST_BASED = "cost_based", "Cost-based / non-profit (DK)"
        INDEXATION = "indexation", "Indexation clause (DE, AVBFernwärmeV §24)"
        MAXIMUM_PRICE = "maximum_price", "Maximum price (NL)"
        SUBSTITUTION = "substitution", "Substitution benchmark (NO, DK 2026)"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ADOPTED = "adopted", "Adopted"

    network = models.ForeignKey(
        "customers.Network", on_delete=models.PROTECT, related_name="price_caps"
    )
    method = models.CharField(max_length=20, choices=Method.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    period_start = models.DateField()
    period_end = models.DateField()
    currency = models.CharField(max_length=3)
    includes_vat = models.BooleanField(default=False)
    energy_cap_per_mwh = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    fixed_cap_per_year = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    capacity_cap_per_kw = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True
    )
    area_cap_per_m2 = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    reference_total_cap = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True
    )
    operating_cost = models.ForeignKey(
        OperatingCost, null=True, blank=True, on_delete=models.PROTECT, related_name="caps"
    )
    inputs = models.JSONField(default=dict)
    results = models.JSONField(default=dict)
    computed_at = models.DateTimeField()
    adopted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["network", "-period_start"]
        constraints = [
            models.CheckConstraint(
                condition=Q(period_end__gt=F("period_start")),
                name="pricecap_period_valid",
                violation_error_message="The period must end after it starts.",
            ),
            ConditionalNoOverlapConstraint(
                name="pricecap_no_overlap_adopted",
                group=["network"],
                start="period_start",
                end="period_end",
                condition=Q(status="adopted"),
                violation_error_message="An adopted price cap already covers part of that period.",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.network} {self.get_method_display()} [{self.period_start}, {self.period_end})"
        )
