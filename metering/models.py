"""What was measured: heat meters (EN 1434) and where they were installed.

Energy registers are stored normalised to kWh as ``Decimal``; the meter keeps the unit
its display counts in (Wh, kWh, MWh or GJ), its resolution and the register maximum
(the largest value shown) after which it rolls over to zero.  The volume register (m³)
has its own resolution and maximum.  A rollover adds maximum + resolution (the step from
the largest value to 0): ``HeatMeter.register_wrap_kwh`` / ``volume_register_wrap_m3``.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from customers.models import BuildingInterfaceUnit
from heatutility.db import NoOverlapConstraint
from metering.vee.rules import WRAP_CODES

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
    volume_register_max = models.DecimalField(
        max_digits=16,
        decimal_places=4,
        default=Decimal("99999999"),
        help_text="Largest volume register value, m³; the next step rolls over to 0.",
    )
    volume_resolution = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        default=Decimal("0.0001"),
        help_text="Smallest volume register step, m³ (the default is the stored precision: "
        "set the meter's own step, e.g. 0.01 for a 999999.99 m³ register).",
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
    vendor = models.ForeignKey(
        "metering.MeterVendor",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="meters",
        help_text="Head-end system that delivers this meter's readings.",
    )
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
            # a vendor's delivery names the meter by serial alone (metering.ingest)
            models.UniqueConstraint(
                fields=["vendor", "serial"],
                name="heatmeter_unique_vendor_serial",
                violation_error_message="This vendor delivers a meter with this serial "
                "already; its readings could not tell the two apart.",
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
            models.CheckConstraint(
                condition=Q(volume_register_max__gt=0),
                name="heatmeter_volume_register_max_positive",
                violation_error_message="The volume register maximum must be above 0.",
            ),
            models.CheckConstraint(
                condition=Q(volume_resolution__gt=0),
                name="heatmeter_volume_resolution_positive",
                violation_error_message="The volume register resolution must be above 0.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.maker} {self.serial}"

    @property
    def register_max_kwh(self) -> Decimal:
        """The largest energy register value, kWh."""
        return self.register_max * KWH_PER_UNIT[self.register_unit]

    @property
    def register_wrap_kwh(self) -> Decimal:
        """What one rollover of the energy register adds, kWh: from the largest value
        one more step reaches 0 (EN 1434 register: maximum + resolution)."""
        return (self.register_max + self.resolution) * KWH_PER_UNIT[self.register_unit]

    @property
    def volume_register_wrap_m3(self) -> Decimal:
        """What one rollover of the volume register adds, m³ (maximum + resolution)."""
        return self.volume_register_max + self.volume_resolution


class MeterInstallation(models.Model):
    """A meter in an interface unit from ``installed_at`` until ``removed_at``.

    Installations of one unit or meter do not overlap (``[installed_at, removed_at)``),
    but a read of the meter taken at ``removed_at`` is its final read in this
    installation: VEE, estimation and the exchange's checks all count it
    (``metering.vee.rules.installed_then``).

    The initial and final registers make consumption across a meter exchange exact:
    old final − old previous read + new read − new initial (DOMAIN.md §2).  The
    volume-weighted temperature registers (m³·°C) are optional at both ends: where given
    they weigh the water between the last read and the removal, and between the
    installation and the first read; where not, those hours are not weighted.
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
    initial_flow_temp_m3c = models.DecimalField(
        max_digits=20,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Volume-weighted flow temperature register at installation, m³·°C (optional).",
    )
    initial_return_temp_m3c = models.DecimalField(
        max_digits=20,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Volume-weighted return temperature register at installation, m³·°C (optional).",
    )
    final_flow_temp_m3c = models.DecimalField(
        max_digits=20,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Volume-weighted flow temperature register at removal, m³·°C (optional).",
    )
    final_return_temp_m3c = models.DecimalField(
        max_digits=20,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Volume-weighted return temperature register at removal, m³·°C (optional).",
    )
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
            models.CheckConstraint(
                condition=(Q(initial_flow_temp_m3c__isnull=True) | Q(initial_flow_temp_m3c__gte=0))
                & (Q(initial_return_temp_m3c__isnull=True) | Q(initial_return_temp_m3c__gte=0))
                & (Q(final_flow_temp_m3c__isnull=True) | Q(final_flow_temp_m3c__gte=0))
                & (Q(final_return_temp_m3c__isnull=True) | Q(final_return_temp_m3c__gte=0)),
                name="installation_temperature_registers_not_negative",
                violation_error_message="Temperature registers (m³·°C) cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(removed_at__isnull=False)
                | Q(final_flow_temp_m3c__isnull=True, final_return_temp_m3c__isnull=True),
                name="installation_final_temperature_registers_at_removal",
                violation_error_message="Final temperature registers (m³·°C) belong to a removal.",
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


class RevalidationRequest(models.Model):
    """A pending revalidation of a meter's readings from ``since`` (an outbox row).

    Written in the transaction of the change that needs it (an installation, removal or
    exchange, a change of the meter's register settings), so it exists exactly when the
    change does; the revalidation deletes the requests it covered in the transaction of
    its results, and nightly VEE re-runs those still pending after a grace period (the
    task was lost: broker down, worker killed).  Written by
    ``metering.installations.revalidation_queue``, worked off by
    ``metering.vee.services.vee_revalidate_meter``.

    A run that fails (nightly, or staff's "Revalidate now" in the admin) leaves the
    request and records the failure on it, so staff see which meters are stuck and why.
    """

    meter = models.ForeignKey(
        HeatMeter, on_delete=models.CASCADE, related_name="revalidation_requests"
    )
    since = models.DateTimeField(help_text="Revalidate the meter's readings from here on.")
    requested_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(
        default=0, help_text="Runs that failed on it (nightly or from the admin)."
    )
    last_error = models.TextField(
        blank=True, help_text="The last failed run's exception, class and message."
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["requested_at", "pk"]

    def __str__(self) -> str:
        return f"Revalidate {self.meter_id} from {self.since.isoformat()}"


class BoundaryRegister(models.Model):
    """A connection's continuous register at the start of a local day (00:00 in the zone).

    Billing reads only these (through ``metering.selectors``): consumption over
    ``[a, b)`` is ``value(b) − value(a)``.  Values are *connection* registers: cumulative
    since the connection's first meter, so a meter exchange or a register rollover never
    shows up as a jump.  ``status`` says whether the value was read, estimated or edited,
    or ``withdrawn``: the reads it came from were rejected and nothing supports an
    estimate (yet).  A withdrawn value is kept for the record, but billing does not see
    it (``metering.selectors``): the bills that used it are re-rated, and until a read,
    an estimate or a staff edit replaces it they cannot be (an exception for staff).
    """

    class Status(models.TextChoices):
        ACTUAL = "actual", "Actual (read)"
        ESTIMATED = "estimated", "Estimated"
        EDITED = "edited", "Edited by staff"
        WITHDRAWN = "withdrawn", "Withdrawn (no read or estimate supports it)"

    connection = models.ForeignKey(
        "customers.ServiceConnection", on_delete=models.PROTECT, related_name="boundary_registers"
    )
    on = models.DateField(help_text="Local date whose midnight the value belongs to.")
    energy_kwh = models.DecimalField(max_digits=20, decimal_places=6)
    volume_m3 = models.DecimalField(max_digits=16, decimal_places=4)
    flow_temp_m3c = models.DecimalField(
        max_digits=20,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Volume-weighted flow temperature register, m³·°C.",
    )
    return_temp_m3c = models.DecimalField(
        max_digits=20,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Volume-weighted return temperature register, m³·°C.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTUAL)
    method = models.CharField(
        max_length=40,
        blank=True,
        help_text="How the value was obtained: reading, interpolation, last_year_degree_days, …",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["connection", "on"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "on"],
                name="boundary_register_unique_per_day",
                violation_error_message="This connection already has a register value for that date.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.connection_id} @ {self.on}: {self.energy_kwh} kWh ({self.status})"


# --- Vendors, readings, batches, VEE ---------------------------------------------------


class MeterVendor(models.Model):
    """A meter vendor's head-end system that delivers readings for its assigned meters.

    The CSV fields describe the vendor's file export: which column holds what, the
    separator, decimal comma, the energy unit and the zone of timestamps without offset.
    """

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    csv_columns = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            'Vendor column name for each field, e.g. {"meter": "MeterNo", "read_at": "Time", '
            '"energy": "Energy"}; fields left out use their own name.'
        ),
    )
    csv_separator = models.CharField(max_length=1, default=";")
    csv_decimal_comma = models.BooleanField(default=True)
    csv_energy_unit = models.CharField(
        max_length=3, choices=EnergyUnit.choices, default=EnergyUnit.KWH
    )
    csv_time_zone = models.CharField(
        max_length=64,
        default="Europe/Copenhagen",
        help_text="Zone of timestamps that carry no UTC offset (file delivery only).",
    )
    csv_encoding = models.CharField(max_length=20, default="utf-8")
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """The CSV settings an upload reads the vendor's files with, checked when staff
        save them: an unknown zone or encoding, or a column mapping that is no mapping
        of known fields to column names, would fail every file of the vendor on an
        internal error (HTTP 500 at the upload, or a batch failed in the task)."""
        import codecs
        import zoneinfo

        from django.core.exceptions import ValidationError

        from metering.ingest.rows import ALL_FIELDS

        errors: dict[str, list[str]] = {}
        if self.csv_time_zone not in zoneinfo.available_timezones():
            errors.setdefault("csv_time_zone", []).append(
                f"{self.csv_time_zone!r} is not an IANA time zone such as 'Europe/Copenhagen'."
            )
        try:
            codecs.lookup(self.csv_encoding)
        except (LookupError, TypeError, ValueError):
            errors.setdefault("csv_encoding", []).append(
                f"{self.csv_encoding!r} is not a known text encoding such as 'utf-8' or 'latin-1'."
            )
        columns = self.csv_columns
        if not isinstance(columns, dict):
            errors.setdefault("csv_columns", []).append(
                'Give a mapping of fields to column names, e.g. {"meter": "MeterNo"}.'
            )
        else:
            for field, name in columns.items():
                if field not in ALL_FIELDS:
                    errors.setdefault("csv_columns", []).append(
                        f"{field!r} is not a field; fields: {', '.join(ALL_FIELDS)}."
                    )
                elif not isinstance(name, str) or not name.strip():
                    errors.setdefault("csv_columns", []).append(
                        f"The column name of {field!r} must be text, not {name!r}."
                    )
        if errors:
            raise ValidationError(errors)


class VendorApiKey(models.Model):
    """An API key of a vendor.  Only a SHA-256 of the key is stored; it is shown once.

    Keys are 256-bit random tokens, so a fast hash is enough (no password stretching
    needed); ``prefix`` finds the row without scanning.
    """

    vendor = models.ForeignKey(MeterVendor, on_delete=models.CASCADE, related_name="api_keys")
    label = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["vendor", "-created_at"]
        verbose_name = "vendor API key"

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "active"
        return f"{self.vendor} {self.prefix}… ({state})"


class Reading(models.Model):
    """One reading of a meter's registers, identified by (meter, read_at).

    On PostgreSQL the table is range-partitioned by ``read_at`` (one partition per UTC
    month, created as needed; see docs/readings-storage.md), which Django cannot express:
    migration 0003 creates it with SQL and this model mirrors its columns.  There is no
    database foreign key to the meter, deliberately: the bulk path resolves meters
    set-based before inserting, and per-row RI triggers would halve its throughput.
    """

    class Status(models.TextChoices):
        VALID = "valid", "Valid"
        SUSPECT = "suspect", "Suspect"
        REJECTED = "rejected", "Rejected"
        ESTIMATED = "estimated", "Estimated"
        EDITED = "edited", "Edited"

    pk = models.CompositePrimaryKey("meter_id", "read_at")
    meter = models.ForeignKey(
        HeatMeter, on_delete=models.DO_NOTHING, db_constraint=False, related_name="readings"
    )
    read_at = models.DateTimeField()
    energy_kwh = models.DecimalField(max_digits=20, decimal_places=6)
    energy_value = models.DecimalField(
        max_digits=20, decimal_places=6, help_text="Energy register as delivered, in energy_unit."
    )
    energy_unit = models.CharField(max_length=3, choices=EnergyUnit.choices)
    volume_m3 = models.DecimalField(max_digits=16, decimal_places=4)
    flow_temp_c = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    return_temp_c = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    power_kw = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    flow_m3h = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    status_code = models.IntegerField(null=True, blank=True, help_text="Meter info/status code.")
    flow_temp_m3c = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    return_temp_m3c = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.VALID)
    batch_id = models.BigIntegerField(null=True, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["meter_id", "read_at"]

    def __str__(self) -> str:
        return f"{self.meter_id} @ {self.read_at.isoformat()}: {self.energy_kwh} kWh"


class IngestBatch(models.Model):
    """One delivery (a JSON request or a file) and what became of each row."""

    class Source(models.TextChoices):
        API = "api", "JSON API"
        FILE = "file", "CSV file"

    class State(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed (nothing stored)"
        HELD = "held", "Held: vendor deactivated (nothing stored)"

    vendor = models.ForeignKey(MeterVendor, on_delete=models.PROTECT, related_name="batches")
    source = models.CharField(max_length=4, choices=Source.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RECEIVED)
    idempotency_key = models.CharField(max_length=100, blank=True)
    body_sha256 = models.CharField(max_length=64, blank=True)
    file = models.FileField(upload_to="ingest/%Y/%m/", blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    payload = models.TextField(
        blank=True, help_text="Validated JSON rows, normalised (tab-separated), for the task."
    )
    row_count = models.PositiveIntegerField(default=0)
    progress = models.PositiveIntegerField(default=0, help_text="Rows processed and committed.")
    accepted = models.PositiveIntegerField(default=0)
    duplicate = models.PositiveIntegerField(default=0)
    conflicting = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    response = models.JSONField(
        null=True, blank=True, help_text="First answer, replayed for the same Idempotency-Key."
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    failures = models.PositiveSmallIntegerField(
        default=0,
        db_default=0,
        help_text="Processing runs interrupted by a database error; at the limit "
        "(INGEST_MAX_FAILURES) the batch is failed.",
    )
    last_error = models.TextField(
        blank=True, db_default="", help_text="The last such run's error, class and message."
    )
    received_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    vee_done_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-received_at"]
        verbose_name_plural = "ingest batches"
        constraints = [
            models.UniqueConstraint(
                fields=["vendor", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="ingestbatch_unique_idempotency_key",
                violation_error_message="This Idempotency-Key was used for another batch.",
            ),
        ]
        indexes = [models.Index(fields=["state", "vee_done_at"], name="ingestbatch_vee_idx")]

    def __str__(self) -> str:
        return f"Batch {self.pk} ({self.vendor}, {self.source}, {self.state})"


class IngestBatchMeter(models.Model):
    """Which meters and time span a batch touched, so VEE revisits only those.

    A nightly VEE run that fails on the meter (``vee_run_pending``) records it here, so
    staff see which meter holds the batch unchecked, and why.
    """

    batch = models.ForeignKey(IngestBatch, on_delete=models.CASCADE, related_name="meter_spans")
    meter = models.ForeignKey(HeatMeter, on_delete=models.CASCADE, related_name="+")
    first_read_at = models.DateTimeField()
    last_read_at = models.DateTimeField()
    last_duplicate_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Latest of the batch's rows for the meter that duplicated a stored reading "
        "(one another vendor delivered before the meter moved, say): stored once, and still "
        "a delivery of the batch's vendor.",
    )
    vee_attempts = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Nightly VEE runs that failed on this meter."
    )
    vee_last_error = models.TextField(
        blank=True, db_default="", help_text="The last failed run's exception, class and message."
    )
    vee_last_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["batch", "meter"], name="ingestbatchmeter_unique"),
        ]
        indexes = [
            # a reading's duplicates by meter and time (metering.selectors.vendor_meters);
            # few batches have one
            models.Index(
                fields=["meter", "last_duplicate_at"],
                condition=Q(last_duplicate_at__isnull=False),
                name="ingestbatchmeter_dup_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.batch_id}/{self.meter_id}"


class ReadingConflict(models.Model):
    """A delivered reading whose key exists with different values: kept for review."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        KEPT_ORIGINAL = "kept", "Original kept"
        TOOK_INCOMING = "took", "Incoming applied (as edit)"

    batch = models.ForeignKey(IngestBatch, on_delete=models.CASCADE, related_name="conflicts")
    row = models.PositiveIntegerField(help_text="Row index in the batch (0-based).")
    meter = models.ForeignKey(HeatMeter, on_delete=models.PROTECT, related_name="+")
    read_at = models.DateTimeField()
    incoming = models.JSONField()
    state = models.CharField(max_length=5, choices=State.choices, default=State.OPEN)
    resolved_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["meter", "read_at"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "row"], name="readingconflict_unique_row"),
        ]

    def __str__(self) -> str:
        return f"Conflict {self.meter_id} @ {self.read_at.isoformat()}"


class ReadingIssue(models.Model):
    """A VEE finding on one reading: the staff exception queue (and rollover markers)."""

    class Severity(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning (suspect)"
        ERROR = "error", "Error (rejected)"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        EDITED = "edited", "Edited"

    meter = models.ForeignKey(HeatMeter, on_delete=models.PROTECT, related_name="reading_issues")
    read_at = models.DateTimeField()
    code = models.CharField(max_length=40)
    severity = models.CharField(max_length=7, choices=Severity.choices)
    message = models.CharField(max_length=300)
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN)
    created_at = models.DateTimeField()
    resolved_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_reason = models.CharField(max_length=300, blank=True)
    wraps = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="How many times the register wrapped since the previous usable read, as "
        "staff found when accepting an ambiguous rollover (empty: one, as VEE counted), or "
        "declaring a register decrease a rollover.",
    )

    class Meta:
        ordering = ["meter", "read_at", "code"]
        constraints = [
            models.UniqueConstraint(
                fields=["meter", "read_at", "code"], name="readingissue_unique_rule"
            ),
            models.CheckConstraint(
                condition=Q(wraps__isnull=True)
                | Q(code__in=WRAP_CODES, state="accepted", wraps__gte=1),
                name="readingissue_wraps_on_accepted_rollover",
                violation_error_message="A wrap count belongs to an accepted ambiguous "
                "rollover or a register decrease declared a rollover, and is at least 1.",
            ),
        ]
        indexes = [models.Index(fields=["state", "severity"], name="readingissue_queue_idx")]

    def __str__(self) -> str:
        return f"{self.code} {self.meter_id} @ {self.read_at.isoformat()}"


class ReadingEdit(models.Model):
    """A staff correction of a reading: the original values, the new ones, who, when, why."""

    meter = models.ForeignKey(HeatMeter, on_delete=models.PROTECT, related_name="reading_edits")
    read_at = models.DateTimeField()
    original = models.JSONField()
    edited = models.JSONField()
    edited_by = models.ForeignKey("auth.User", on_delete=models.PROTECT, related_name="+")
    edited_at = models.DateTimeField()
    reason = models.CharField(max_length=300)

    class Meta:
        ordering = ["-edited_at"]

    def __str__(self) -> str:
        return f"Edit {self.meter_id} @ {self.read_at.isoformat()} by {self.edited_by}"


class DegreeDay(models.Model):
    """Heating degree days of a network's area for one local date (base 17 °C)."""

    network = models.ForeignKey(
        "customers.Network", on_delete=models.PROTECT, related_name="degree_days"
    )
    on = models.DateField()
    degree_days = models.DecimalField(max_digits=6, decimal_places=2)

    class Meta:
        ordering = ["network", "on"]
        constraints = [
            models.UniqueConstraint(fields=["network", "on"], name="degreeday_unique_per_day"),
            models.CheckConstraint(
                condition=Q(degree_days__gte=0),
                name="degreeday_not_negative",
                violation_error_message="Degree days cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.network_id} {self.on}: {self.degree_days}"
