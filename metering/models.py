"""What was measured: heat meters (EN 1434) and where they were installed.

Energy registers are stored normalised to kWh as ``Decimal``; the meter keeps the unit
its display counts in (Wh, kWh, MWh or GJ), its resolution and the register maximum
after which it rolls over to zero.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from customers.models import BuildingInterfaceUnit
from heatutility.db import NoOverlapConstraint

# kWh per one unit of each register unit (1 GJ = 1000/3.6 kWh exactly).
KWH_PER_UNIT: dict[str, Decimal] = {
    "Wh": Decimal("0.001"),
    "kWh": Decimal("1"),
    "MWh": Decimal("1000"),
    "GJ": Decimal("1000") / Decimal("3.6"),
}


class EnergyUnit(models.TextChoices):
    WH = "Wh", "Wh"
    KWH = "kWh", "kWh"
    MWH = "MWh", "MWh"
    GJ = "GJ", "GJ"


class HeatMeter(models.Model):
    class AccuracyClass(models.IntegerChoices):
        CLASS_1 = 1, "Class 1"
        CLASS_2 = 2, "Class 2"
        CLASS_3 = 3, "Class 3"

    class FlowSensorPosition(models.TextChoices):
        RETURN = "return", "Return pipe"
        FLOW = "flow", "Flow (supply) pipe"

    maker = models.CharField(max_length=100)
    model = models.CharField(max_length=100)
    serial = models.CharField(max_length=60, db_index=True)
    register_unit = models.CharField(
        max_length=3, choices=EnergyUnit.choices, default=EnergyUnit.KWH
    )
    resolution = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        default=Decimal("1"),
        help_text="Smallest register step, in the register unit.",
    )
    register_max = models.DecimalField(
        max_digits=20,
        decimal_places=6,
        default=Decimal("99999999"),
        help_text="Largest register value, in the register unit; the next step rolls over to 0.",
    )
    accuracy_class = models.PositiveSmallIntegerField(
        choices=AccuracyClass.choices, default=AccuracyClass.CLASS_2
    )
    flow_sensor_position = models.CharField(
        max_length=10, choices=FlowSensorPosition.choices, default=FlowSensorPosition.RETURN
    )
    nominal_flow_m3h = models.DecimalField(
        max_digits=8, decimal_places=3, null=True, blank=True, help_text="qp, m³/h."
    )
    verification_due_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["maker", "serial"]
        constraints = [
            models.UniqueConstraint(
                fields=["maker", "serial"],
                name="heatmeter_unique_maker_serial",
                violation_error_message="A meter with this maker and serial exists already.",
            ),
            models.CheckConstraint(
                condition=Q(resolution__gt=0),
                name="heatmeter_resolution_positive",
                violation_error_message="The register resolution must be above 0.",
            ),
            models.CheckConstraint(
                condition=Q(register_max__gt=F("resolution")),
                name="heatmeter_register_max_above_resolution",
                violation_error_message="The register maximum must be larger than its resolution.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.maker} {self.serial}"

    @property
    def register_max_kwh(self) -> Decimal:
        return self.register_max * KWH_PER_UNIT[self.register_unit]


class MeterInstallation(models.Model):
    """A meter in an interface unit for ``[installed_at, removed_at)``.

    The initial and final registers make consumption across a meter exchange exact:
    old final − old previous read + new read − new initial (DOMAIN.md §2).
    """

    meter = models.ForeignKey(HeatMeter, on_delete=models.PROTECT, related_name="installations")
    unit = models.ForeignKey(
        BuildingInterfaceUnit, on_delete=models.PROTECT, related_name="meter_installations"
    )
    installed_at = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True)
    initial_energy_kwh = models.DecimalField(max_digits=20, decimal_places=6, default=Decimal("0"))
    initial_volume_m3 = models.DecimalField(max_digits=16, decimal_places=4, default=Decimal("0"))
    final_energy_kwh = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    final_volume_m3 = models.DecimalField(max_digits=16, decimal_places=4, null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True, help_text="Why installed or exchanged.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["unit", "installed_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(removed_at__isnull=True) | Q(removed_at__gt=F("installed_at")),
                name="installation_removed_after_installed",
                violation_error_message="A meter is removed after it was installed.",
            ),
            models.CheckConstraint(
                condition=Q(removed_at__isnull=True)
                | Q(final_energy_kwh__isnull=False, final_volume_m3__isnull=False),
                name="installation_removed_has_final_registers",
                violation_error_message="A removed meter needs its final energy and volume registers.",
            ),
            models.CheckConstraint(
                condition=Q(initial_energy_kwh__gte=0) & Q(initial_volume_m3__gte=0),
                name="installation_initial_registers_not_negative",
                violation_error_message="Initial registers cannot be negative.",
            ),
            NoOverlapConstraint(
                name="installation_meter_in_one_place",
                group=["meter"],
                start="installed_at",
                end="removed_at",
                range_function="tstzrange",
                violation_error_message="This meter is installed elsewhere in that period.",
            ),
            NoOverlapConstraint(
                name="installation_one_meter_per_unit",
                group=["unit"],
                start="installed_at",
                end="removed_at",
                range_function="tstzrange",
                violation_error_message="This interface unit has another meter installed in that period.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.meter} in {self.unit}"
