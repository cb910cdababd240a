"""Who and where: networks, customers, accounts, buildings, connections, contracts.

Knows nothing of prices (see ``../shared/ARCHITECTURE.md``).  Validity periods are
half-open ``[valid_from, valid_to)`` in local dates of the network's time zone; overlaps
are refused by PostgreSQL exclusion constraints (:class:`heatutility.db.NoOverlapConstraint`).
"""

from __future__ import annotations

import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from heatutility.db import NoOverlapConstraint
from heatutility.money import MINOR_UNITS


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone such as 'Europe/Copenhagen'.")


def default_time_zone() -> str:
    """A new network's zone: the installation's (``HEATUTILITY_TIME_ZONE``)."""
    return settings.TIME_ZONE


def validate_identifier(value: str) -> None:
    """A number printed on invoices, quoted in payment references and e-mail subjects:
    no line breaks or other control characters, no blanks at either end."""
    import unicodedata

    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        raise ValidationError("Use no line breaks, tabs or other control characters.")
    if value != value.strip():
        raise ValidationError("Remove the blanks at the start or end.")


class Network(models.Model):
    """A district-heating network: the unit that is priced, capped and billed."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    time_zone = models.CharField(
        max_length=64, default=default_time_zone, validators=[validate_time_zone]
    )
    currency = models.CharField(
        max_length=3,
        default="DKK",
        choices=[(code, code) for code in sorted(MINOR_UNITS)],
    )
    design_supply_temp_c = models.DecimalField(
        max_digits=5, decimal_places=1, default=Decimal("75.0")
    )
    design_return_temp_c = models.DecimalField(
        max_digits=5, decimal_places=1, default=Decimal("40.0")
    )
    price_area = models.CharField(
        max_length=20, help_text="Electricity bidding zone, e.g. DK1, DK2, SE3, DE-LU."
    )
    normal_degree_days = models.DecimalField(
        max_digits=7,
        decimal_places=1,
        null=True,
        blank=True,
        help_text="Heating degree days of a normal year in the network's area (base 17 °C; "
        "2906 for Denmark). On-account estimates are climate-corrected to it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(design_supply_temp_c__gt=F("design_return_temp_c")),
                name="network_supply_above_return",
                violation_error_message="The design supply temperature must be above the return temperature.",
            ),
            models.CheckConstraint(
                condition=Q(normal_degree_days__gt=0) | Q(normal_degree_days__isnull=True),
                name="network_normal_degree_days_positive",
                violation_error_message="Normal-year degree days must be positive.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    class Kind(models.TextChoices):
        PERSON = "person", "Person"
        ORGANISATION = "organisation", "Organisation"

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PERSON)
    name = models.CharField(max_length=200, db_index=True)
    organisation_number = models.CharField(
        max_length=40, blank=True, help_text="Company registration number (CVR, HRB, org.nr)."
    )
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="customer",
        help_text="Portal login of this customer, if any.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="person") | ~Q(organisation_number=""),
                name="customer_organisation_has_number",
                violation_error_message="An organisation needs its registration number.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    """A billing account: who receives the invoices for one or more contracts."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        CLOSED = "closed", "Closed"

    number = models.CharField(
        max_length=20, unique=True, validators=[validate_identifier], help_text="Customer number."
    )
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="accounts")
    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="accounts")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    billing_name = models.CharField(max_length=200, blank=True)
    billing_street = models.CharField(max_length=200)
    billing_postal_code = models.CharField(max_length=20)
    billing_city = models.CharField(max_length=100)
    billing_country = models.CharField(max_length=2, default="DK")
    payment_terms_days = models.PositiveSmallIntegerField(default=14)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["number"]
        constraints = [
            models.CheckConstraint(
                condition=Q(payment_terms_days__lte=90),
                name="account_payment_terms_at_most_90_days",
                violation_error_message="Payment terms may not exceed 90 days.",
            ),
            # the target of the invoices' key (account, network): an invoice is numbered
            # in its account's network (billing.Invoice)
            models.UniqueConstraint(fields=["id", "network"], name="account_id_network"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.customer}"

    def clean(self) -> None:
        """An account that has been supplied or billed keeps its customer and network:
        its invoices, payments and consumption are that customer's, and the portal shows
        an account's whole history to its customer.  A new customer gets a new account.
        (The invoices' database key (account, network) refuses the network's change too.)"""
        super().clean()
        if self.pk is None:
            return
        before = Account.objects.filter(pk=self.pk).values("customer_id", "network_id").first()
        if before is None or not (self.contracts.exists() or self.invoices.exists()):
            return
        errors = {}
        if before["customer_id"] != self.customer_id:
            errors["customer"] = (
                "This account has contracts, so its history belongs to its customer: "
                "open a new account for the new customer."
            )
        if before["network_id"] != self.network_id:
            errors["network"] = "This account has contracts or invoices: its network cannot change."
        if errors:
            raise ValidationError(errors)

    @property
    def billing_address(self) -> str:
        return f"{self.billing_street}, {self.billing_postal_code} {self.billing_city}"


class Building(models.Model):
    class Use(models.TextChoices):
        HOUSE = "house", "Single-family house"
        TERRACED = "terraced", "Terraced house"
        MULTI_DWELLING = "multi_dwelling", "Multi-dwelling building"
        OFFICE = "office", "Office"
        RETAIL = "retail", "Retail"
        PUBLIC = "public", "Public (school, hospital, university)"
        INDUSTRY = "industry", "Industry"
        OTHER = "other", "Other"

    street = models.CharField(max_length=200, db_index=True)
    postal_code = models.CharField(max_length=20)
    city = models.CharField(max_length=100)
    country = models.CharField(max_length=2, default="DK")
    register_id = models.CharField(
        max_length=60, blank=True, help_text="Building register id (e.g. BBR) for m² data."
    )
    heated_area_m2 = models.DecimalField(
        max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    dwellings = models.PositiveIntegerField(default=1)
    use = models.CharField(max_length=20, choices=Use.choices, default=Use.HOUSE)
    year_built = models.PositiveSmallIntegerField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["street"]
        constraints = [
            models.CheckConstraint(
                condition=Q(heated_area_m2__gte=0),
                name="building_area_not_negative",
                violation_error_message="The heated floor area cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(year_built__isnull=True)
                | Q(year_built__gte=1500, year_built__lte=2100),
                name="building_year_built_plausible",
                violation_error_message="The year built must lie between 1500 and 2100.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.street}, {self.postal_code} {self.city}"


class ServiceConnection(models.Model):
    """A building's connection to a network, with its contracted capacity."""

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        ACTIVE = "active", "Active"
        DISCONNECTED = "disconnected", "Disconnected"

    number = models.CharField(
        max_length=30,
        unique=True,
        validators=[validate_identifier],
        help_text="Installation / point of delivery number.",
    )
    building = models.ForeignKey(Building, on_delete=models.PROTECT, related_name="connections")
    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="connections")
    contracted_capacity_kw = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    connected_on = models.DateField(null=True, blank=True)
    disconnected_on = models.DateField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["number"]
        constraints = [
            models.CheckConstraint(
                condition=Q(contracted_capacity_kw__gt=0),
                name="connection_capacity_positive",
                violation_error_message="The contracted capacity must be above 0 kW.",
            ),
            models.CheckConstraint(
                condition=Q(disconnected_on__isnull=True)
                | Q(connected_on__isnull=False, disconnected_on__gt=F("connected_on")),
                name="connection_disconnected_after_connected",
                violation_error_message="A connection is disconnected after it was connected.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number} ({self.building})"


class CapacityChange(models.Model):
    """The connection's contracted capacity from ``valid_from`` (a local date) on.

    The kW in force on a day is that of the latest change on or before it; before the
    first change, what that change replaced (``previous_kw``); with no change at all,
    the connection's ``contracted_capacity_kw``, which always holds today's value.
    Billing prices capacity by these days (a change on the 16th is charged from the
    16th) and re-rates a period that a change recorded late reaches back into.
    Recorded through ``customers.services.connection_capacity_change``; never edited.
    """

    connection = models.ForeignKey(
        ServiceConnection, on_delete=models.PROTECT, related_name="capacity_changes"
    )
    valid_from = models.DateField(help_text="First day (local) of the new capacity.")
    capacity_kw = models.DecimalField(max_digits=10, decimal_places=2)
    previous_kw = models.DecimalField(
        max_digits=10, decimal_places=2, help_text="The capacity the day before, when recorded."
    )
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["connection", "valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "valid_from"],
                name="capacitychange_one_per_connection_day",
                violation_error_message="This connection already has a capacity change that day.",
            ),
            models.CheckConstraint(
                condition=Q(capacity_kw__gt=0),
                name="capacitychange_capacity_positive",
                violation_error_message="The contracted capacity must be above 0 kW.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.connection.number}: {self.capacity_kw} kW from {self.valid_from}"


class AreaChange(models.Model):
    """The building's heated floor area from ``valid_from`` (a local date) on.

    Like :class:`CapacityChange`: the m² in force on a day is that of the latest change
    on or before it; before the first change, what that change replaced
    (``previous_m2``); with no change at all, the building's ``heated_area_m2``, which
    always holds today's value.  Billing prices area charges of every connection of the
    building by these days and re-rates a period that a change recorded late reaches
    back into.  Recorded through ``customers.services.building_area_change``; never
    edited.
    """

    building = models.ForeignKey(Building, on_delete=models.PROTECT, related_name="area_changes")
    valid_from = models.DateField(help_text="First day (local) of the new heated area.")
    heated_area_m2 = models.DecimalField(max_digits=10, decimal_places=2)
    previous_m2 = models.DecimalField(
        max_digits=10, decimal_places=2, help_text="The heated area the day before, when recorded."
    )
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["building", "valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["building", "valid_from"],
                name="areachange_one_per_building_day",
                violation_error_message="This building already has an area change that day.",
            ),
            models.CheckConstraint(
                condition=Q(heated_area_m2__gt=0),
                name="areachange_area_positive",
                violation_error_message="The heated floor area must be above 0 m².",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.building}: {self.heated_area_m2} m² from {self.valid_from}"


class BuildingInterfaceUnit(models.Model):
    """The substation where a building meets the network; the heat meter sits here."""

    class Kind(models.TextChoices):
        DIRECT = "direct", "Direct"
        INDIRECT = "indirect", "Indirect (heat exchanger)"

    connection = models.ForeignKey(
        ServiceConnection, on_delete=models.PROTECT, related_name="interface_units"
    )
    maker = models.CharField(max_length=100)
    model = models.CharField(max_length=100)
    serial = models.CharField(max_length=60)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.INDIRECT)
    domestic_hot_water = models.BooleanField(default=True)
    installed_on = models.DateField()
    removed_on = models.DateField(null=True, blank=True)
    design_supply_temp_c = models.DecimalField(
        max_digits=5, decimal_places=1, default=Decimal("70.0")
    )
    design_return_temp_c = models.DecimalField(
        max_digits=5, decimal_places=1, default=Decimal("35.0")
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["connection", "installed_on"]
        verbose_name = "building interface unit"
        constraints = [
            models.UniqueConstraint(
                fields=["maker", "serial"],
                name="biu_unique_maker_serial",
                violation_error_message="An interface unit with this maker and serial exists already.",
            ),
            models.CheckConstraint(
                condition=Q(removed_on__isnull=True) | Q(removed_on__gt=F("installed_on")),
                name="biu_removed_after_installed",
                violation_error_message="An interface unit is removed after it was installed.",
            ),
            models.CheckConstraint(
                condition=Q(design_supply_temp_c__gt=F("design_return_temp_c")),
                name="biu_supply_above_return",
                violation_error_message="The design supply temperature must be above the return temperature.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.maker} {self.model} {self.serial}"


class Contract(models.Model):
    """An account's supply on a connection for ``[valid_from, valid_to)`` (local dates)."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="contracts")
    connection = models.ForeignKey(
        ServiceConnection, on_delete=models.PROTECT, related_name="contracts"
    )
    valid_from = models.DateField(help_text="Move-in date (first day supplied).")
    valid_to = models.DateField(
        null=True,
        blank=True,
        help_text="Move-out date (first day no longer supplied); empty = open.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["connection", "valid_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=F("valid_from")),
                name="contract_ends_after_start",
                violation_error_message="A contract must end after it starts.",
            ),
            NoOverlapConstraint(
                name="contract_no_overlap_per_connection",
                group=["connection"],
                start="valid_from",
                end="valid_to",
                violation_error_message="This connection already has a contract in that period.",
            ),
        ]

    def __str__(self) -> str:
        end = self.valid_to.isoformat() if self.valid_to else "…"
        return f"{self.account.number} @ {self.connection.number} [{self.valid_from}, {end})"
