"""What was charged and paid: runs, invoices and lines, numbering, payments, dunning and
debt collection.

Invariants live in the database:

* one active :class:`BillingRun` per network, period and kind (partial unique constraint);
* no account is billed twice for one period (partial unique constraint on
  ``(account, period_start, period_end)`` for each billing kind, cancelled drafts aside);
* an invoice is credited at most once (unique ``original`` among credit notes);
* issued invoices never change: :func:`billing.services.invoices` refuses it, and on
  PostgreSQL triggers (migration ``0002``) refuse any UPDATE of an issued invoice's
  figures, any DELETE of an issued invoice, and any INSERT/UPDATE/DELETE of its lines;
* numbers are gapless per series: a counter row locked with ``SELECT … FOR UPDATE``
  hands out numbers in the same transaction that stamps them on the invoices, and
  ``(series, number)`` is unique.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Exists, F, OuterRef, Q

ZERO = Decimal("0")


class BillingRun(models.Model):
    """One billing pass over a network's accounts for a local month or quarter."""

    class Kind(models.TextChoices):
        INVOICE = "invoice", "Periodic invoices"
        INSTALMENT = "instalment", "On-account instalments"
        SETTLEMENT = "settlement", "Annual settlement"

    class State(models.TextChoices):
        CREATED = "created", "Created"
        RUNNING = "running", "Computing drafts"
        DRAFTED = "drafted", "Drafts ready for review"
        ISSUING = "issuing", "Issuing"
        ISSUED = "issued", "Issued"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE_STATES = (State.CREATED, State.RUNNING, State.DRAFTED, State.ISSUING, State.ISSUED)

    network = models.ForeignKey(
        "customers.Network", on_delete=models.PROTECT, related_name="billing_runs"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.INVOICE)
    period_start = models.DateField(help_text="First local day billed (inclusive).")
    period_end = models.DateField(help_text="First local day not billed (exclusive).")
    state = models.CharField(max_length=10, choices=State.choices, default=State.CREATED)
    chunk_size = models.PositiveIntegerField(default=1000)
    issue_when_drafted = models.BooleanField(
        default=False, help_text="Issue right after drafting unless drafts are held or failed."
    )
    render_pdfs = models.BooleanField(default=True, help_text="Render PDFs after issue.")
    total = models.PositiveIntegerField(default=0, help_text="Accounts in the run.")
    done = models.PositiveIntegerField(default=0, help_text="Accounts with a draft (incl. held).")
    held = models.PositiveIntegerField(default=0, help_text="Drafts held for review.")
    failed = models.PositiveIntegerField(default=0, help_text="Accounts that raised an exception.")
    issued = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    drafted_at = models.DateTimeField(null=True, blank=True)
    issued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period_start", "network"]
        permissions = [("issue_billingrun", "Can issue a billing run")]
        constraints = [
            models.CheckConstraint(
                condition=Q(period_end__gt=F("period_start")),
                name="billingrun_period_not_empty",
                violation_error_message="A billing period ends after it starts.",
            ),
            models.UniqueConstraint(
                fields=["network", "kind", "period_start", "period_end"],
                condition=~Q(state="cancelled"),
                name="billingrun_one_active_per_network_period",
                violation_error_message="This network already has a billing run for that period.",
            ),
            # the target of the invoices' key (run, network) (Invoice)
            models.UniqueConstraint(fields=["id", "network"], name="billingrun_id_network"),
        ]

    def __str__(self) -> str:
        return f"{self.network} {self.kind} [{self.period_start}, {self.period_end})"

    @property
    def progress_percent(self) -> int:
        if not self.total:
            return 100 if self.state not in (self.State.CREATED, self.State.RUNNING) else 0
        return int(100 * (self.done + self.failed) / self.total)


class BillingRunChunk(models.Model):
    """A slice of a run's accounts processed by one Celery task, in one transaction."""

    run = models.ForeignKey(BillingRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    account_ids = models.JSONField()
    done = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="billingrunchunk_unique_index"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} chunk {self.index}"


class BillingRunException(models.Model):
    """An account that could not be billed in a run; the run itself goes on."""

    run = models.ForeignKey(BillingRun, on_delete=models.CASCADE, related_name="exceptions")
    account = models.ForeignKey(
        "customers.Account", on_delete=models.PROTECT, related_name="billing_exceptions"
    )
    code = models.CharField(max_length=40)
    error = models.TextField()
    created_at = models.DateTimeField()
    resolved = models.BooleanField(default=False)

    class Meta:
        ordering = ["run", "account"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "account"], name="billingrunexception_one_per_account"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.error}"


class RerateFailure(models.Model):
    """An issued bill of no billing run (a final settlement, a correction of one) that a
    late reading or a changed contract touched but that could not be re-rated.

    A run's bills show such failures as the run's exceptions; these have no run, and
    were only logged.  One per invoice: each new try updates it and a successful one
    removes it (``billing.services.rerating.rerate_each``).  Staff mark it resolved once
    they have dealt with it by hand (a credit note, say); a later try failing for
    another reason opens it again."""

    invoice = models.OneToOneField(
        "Invoice", on_delete=models.CASCADE, related_name="rerate_failure"
    )
    account = models.ForeignKey(
        "customers.Account", on_delete=models.PROTECT, related_name="rerate_failures"
    )
    code = models.CharField(max_length=40)
    error = models.TextField()
    created_at = models.DateTimeField(help_text="When the re-rating first failed.")
    last_tried_at = models.DateTimeField()
    resolved = models.BooleanField(default=False)

    class Meta:
        ordering = ["resolved", "-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.invoice}: {self.error}"


class InvoiceNumberCounter(models.Model):
    """The last number handed out in a series; locked while numbers are assigned."""

    series = models.CharField(max_length=30, unique=True)
    last_number = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.series}: {self.last_number}"


class InvoiceQuerySet(models.QuerySet):
    def not_credited(self):
        """Without the invoices a credit note reverses (one not cancelled: a credit note
        only drafted and cancelled leaves its invoice standing)."""
        return self.exclude(
            Exists(
                Invoice.objects.filter(
                    original=OuterRef("pk"), kind=Invoice.Kind.CREDIT_NOTE
                ).exclude(state=Invoice.State.CANCELLED)
            )
        )


class Invoice(models.Model):
    class Kind(models.TextChoices):
        INVOICE = "invoice", "Invoice"
        CREDIT_NOTE = "credit_note", "Credit note"
        CORRECTION = "correction", "Correction invoice"
        INSTALMENT = "instalment", "On-account instalment"
        SETTLEMENT = "settlement", "Annual settlement"
        # a dunning letter's fee: a receivable of its own, never re-rated, never dunned,
        # never the bill of a period (billing.services.dunning)
        REMINDER_FEE = "reminder_fee", "Reminder fee"

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        ISSUED = "issued", "Issued"
        PARTLY_PAID = "partly_paid", "Partly paid"
        PAID = "paid", "Paid"
        OVERDUE = "overdue", "Overdue"
        CANCELLED = "cancelled", "Cancelled draft"

    # account and run lookups use the composite indexes below (no separate FK index).
    # On PostgreSQL the three columns are held by two composite keys instead of three
    # single ones (migration 0019): (account, network) → the account in its network and
    # (run, network) → the run of that network, so an invoice is numbered in the series
    # of its account's network and belongs to a run of that network, and a bill costs
    # two key checks instead of three.  Django's on_delete (PROTECT) applies as before.
    account = models.ForeignKey(
        "customers.Account",
        on_delete=models.PROTECT,
        related_name="invoices",
        db_index=False,
        db_constraint=False,
    )
    # few networks: an index on it would not be selective (every bill writes one entry)
    network = models.ForeignKey(
        "customers.Network",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    run = models.ForeignKey(
        BillingRun,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoices",
        db_index=False,
        db_constraint=False,
    )
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.INVOICE)
    state = models.CharField(max_length=12, choices=State.choices, default=State.DRAFT)
    period_start = models.DateField()
    period_end = models.DateField()
    held = models.BooleanField(default=False, help_text="Held for review; not issued with the run.")
    hold_reason = models.TextField(blank=True)
    held_by_staff = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Held by staff for a reason of their own (not by the plausibility checks): "
        "a recomputation keeps the hold and its reason until staff release it.",
    )
    series = models.CharField(max_length=30, blank=True)
    number = models.PositiveBigIntegerField(null=True, blank=True)
    issued_at = models.DateTimeField(null=True, blank=True)
    due_on = models.DateField(null=True, blank=True)
    currency = models.CharField(max_length=3)
    net = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    vat = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    gross = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    paid = models.DecimalField(
        max_digits=14, decimal_places=2, default=ZERO, help_text="Allocated payments and credits."
    )
    original = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="corrections",
        help_text="For credit notes and correction invoices: the invoice they correct.",
        db_index=False,
    )
    has_estimated_reads = models.BooleanField(default=False)
    tariff_version_ids = models.JSONField(default=list)
    readings = models.JSONField(
        default=list,
        help_text="Boundary registers used: id, connection_id, on, energy_kwh, volume_m3, status.",
    )
    determinants = models.JSONField(default=dict)
    comparison = models.JSONField(
        default=dict, help_text="This period and the same period last year, MWh."
    )
    pdf = models.FileField(upload_to="invoices/%Y/%m/", blank=True)
    # delivery of the PDF (billing.services.delivery): e-mailed to the customer, or printed
    # and posted by staff; a reminder fee's document is its dunning letter, delivered with it
    emailed_at = models.DateTimeField(
        null=True, blank=True, help_text="When its PDF was e-mailed to the customer."
    )
    posted_at = models.DateTimeField(
        null=True, blank=True, help_text="When staff marked it printed and posted."
    )
    created_at = models.DateTimeField()

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-period_start", "account"]
        permissions = [
            ("issue_invoice", "Can issue invoices"),
            ("release_invoice", "Can release held invoices"),
            ("credit_invoice", "Can credit issued invoices"),
        ]
        indexes = [
            models.Index(fields=["run", "state"], name="invoice_run_state"),
            models.Index(fields=["account", "state"], name="invoice_account_state"),
            # corrections of an invoice (the credit note's lookup uses its unique index)
            models.Index(
                fields=["original"],
                condition=Q(original__isnull=False),
                name="invoice_original_partial",
            ),
            # credit documents with credit left (payments.credit_notes_with_credit), looked
            # for after every issue: without it each billing run's issue step scanned the
            # whole table (0.7 s of a 100,000-bill run's serial tail, growing every month)
            models.Index(
                fields=["network", "account"],
                condition=Q(
                    gross__lt=0,
                    paid__gt=F("gross"),
                    state__in=["issued", "partly_paid", "overdue"],
                ),
                name="invoice_credit_left",
            ),
            # drafts, few next to the issued bills (a run's wait for staff to issue them;
            # auto-issued runs write theirs issued): each re-rating look finds those whose
            # registers changed (rerating.drafts_affected_by_registers) without reading
            # every invoice
            models.Index(
                fields=["period_start"],
                condition=Q(state="draft"),
                name="invoice_drafts",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "period_start", "period_end", "kind"],
                condition=Q(kind__in=["invoice", "instalment", "settlement"])
                & ~Q(state="cancelled"),
                name="invoice_account_billed_once_per_period",
                violation_error_message="This account is already billed for that period.",
            ),
            models.UniqueConstraint(
                fields=["original"],
                condition=Q(kind="credit_note") & ~Q(state="cancelled"),
                name="invoice_credited_at_most_once",
                violation_error_message="This invoice has already been credited.",
            ),
            models.UniqueConstraint(
                fields=["original"],
                condition=Q(kind="correction") & ~Q(state="cancelled"),
                name="invoice_corrected_at_most_once",
                violation_error_message="This invoice has already been billed again.",
            ),
            models.UniqueConstraint(
                fields=["series", "number"],
                condition=Q(number__isnull=False),
                name="invoice_number_unique_in_series",
                violation_error_message="This invoice number is already used in the series.",
            ),
            models.CheckConstraint(
                condition=Q(state__in=["draft", "cancelled"], number__isnull=True)
                | (~Q(state__in=["draft", "cancelled"]) & Q(number__isnull=False)),
                name="invoice_number_iff_issued",
                violation_error_message="An invoice has a number exactly when it is issued.",
            ),
            models.CheckConstraint(
                condition=Q(held_by_staff=False) | Q(held=True),
                name="invoice_staff_hold_is_a_hold",
                violation_error_message="A hold by staff is a hold.",
            ),
            models.CheckConstraint(
                # a tolerance below the minor unit: SQLite compares decimals as floats
                condition=Q(gross__gt=F("net") + F("vat") - Decimal("0.001"))
                & Q(gross__lt=F("net") + F("vat") + Decimal("0.001")),
                name="invoice_gross_is_net_plus_vat",
                violation_error_message="Gross must equal net plus VAT.",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["invoice", "instalment", "settlement", "reminder_fee"])
                | Q(original__isnull=False),
                name="invoice_correction_has_original",
                violation_error_message="Credit notes and corrections reference the original.",
            ),
        ]

    def __str__(self) -> str:
        return self.name_of(self.series, self.number, self.pk)

    @property
    def display_number(self) -> str:
        return self.number_of(self.series, self.number)

    @staticmethod
    def number_of(series: str, number: int | None) -> str:
        """The printed number (``INV-2026-000042``) from the columns, for rows read as
        values; "" before issue."""
        return f"{series}-{number:06d}" if number else ""

    @staticmethod
    def name_of(series: str, number: int | None, pk: int) -> str:
        """The number, or ``draft #pk`` before issue (what ``str(invoice)`` says)."""
        return Invoice.number_of(series, number) or f"draft #{pk}"

    @property
    def pdf_filename(self) -> str:
        return f"{self.display_number}.pdf"

    @property
    def is_issued(self) -> bool:
        return self.number is not None

    @property
    def open_amount(self) -> Decimal:
        return self.gross - self.paid


class InvoiceLine(models.Model):
    # (invoice, position) is unique, which indexes invoice lookups already
    invoice = models.ForeignKey(
        Invoice, on_delete=models.CASCADE, related_name="lines", db_index=False
    )
    position = models.PositiveSmallIntegerField()
    # A copy of the determinant's connection for display and exports; the invoice's
    # ``determinants`` and ``readings`` are the record.  No FK check per written line.
    connection = models.ForeignKey(
        "customers.ServiceConnection",
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)
    tariff_version_id = models.BigIntegerField(null=True, blank=True)
    component = models.CharField(max_length=40)
    kind = models.CharField(max_length=20)
    description = models.CharField(max_length=200)
    explanation = models.CharField(max_length=300)
    quantity = models.DecimalField(max_digits=20, decimal_places=6)
    unit = models.CharField(max_length=20)
    unit_price = models.DecimalField(max_digits=20, decimal_places=6)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    vat_rate = models.DecimalField(max_digits=5, decimal_places=4)

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice", "position"], name="invoiceline_unique_position"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount}"


class InstalmentPlanQuerySet(models.QuerySet):
    def overlapping(self, start: dt.date, end: dt.date):
        """Plans whose settlement year shares a day with ``[start, end)``."""
        return self.filter(year_start__lt=end, year_end__gt=start)

    def in_force(self, on: dt.date):
        """Plans whose settlement year contains ``on``."""
        return self.overlapping(on, on + dt.timedelta(days=1))

    def on_account_for(self, start: dt.date, end: dt.date):
        """Plans on account for all of ``[start, end)``: their year holds it and no final
        settlement ended them before its end (``InstalmentPlan.ended_on``)."""
        return self.filter(year_start__lte=start, year_end__gte=end).filter(
            Q(ended_on__isnull=True) | Q(ended_on__gte=end)
        )

    def on_account_in(self, start: dt.date, end: dt.date):
        """Plans on account for a day of ``[start, end)`` (from their year's start to its
        end, or to the day a final settlement ended them)."""
        return self.overlapping(start, end).filter(Q(ended_on__isnull=True) | Q(ended_on__gt=start))


class InstalmentPlan(models.Model):
    """On-account (a-conto) instalments for one account and settlement year."""

    class Frequency(models.TextChoices):
        MONTHLY = "monthly", "Monthly"
        QUARTERLY = "quarterly", "Quarterly"

    account = models.ForeignKey(
        "customers.Account", on_delete=models.PROTECT, related_name="instalment_plans"
    )
    year_start = models.DateField()
    year_end = models.DateField()
    frequency = models.CharField(max_length=10, choices=Frequency.choices)
    last_year_mwh = models.DecimalField(max_digits=14, decimal_places=6)
    estimated_mwh = models.DecimalField(
        max_digits=14, decimal_places=6, help_text="Last year's consumption, climate-corrected."
    )
    estimated_m3 = models.DecimalField(max_digits=16, decimal_places=4, default=ZERO)
    connections = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "The plan per connection held in the year: its number, last year's and estimated "
            "MWh and m³ (they add up to the plan's). Instalments bill each connection's share "
            "for the days the account holds it."
        ),
    )
    explanation = models.TextField(blank=True)
    created_at = models.DateTimeField()
    ended_on = models.DateField(
        null=True,
        blank=True,
        help_text=(
            "Set by the final settlement: the move-out it settled the year to. The plan is "
            "on account until then; days the account is supplied again later in the year "
            "(reopened, moved in again) are billed by invoices."
        ),
    )

    objects = InstalmentPlanQuerySet.as_manager()

    class Meta:
        ordering = ["account", "-year_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "year_start"], name="instalmentplan_one_per_account_year"
            ),
            models.CheckConstraint(
                condition=Q(year_end__gt=F("year_start")), name="instalmentplan_year_not_empty"
            ),
            models.CheckConstraint(
                condition=Q(ended_on__isnull=True)
                | Q(ended_on__gte=F("year_start"), ended_on__lt=F("year_end")),
                name="instalmentplan_ended_within_year",
                violation_error_message="A plan ends (final settlement) within its year.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.year_start} {self.frequency}"


class InstalmentPlanning(models.Model):
    """Staff asked for a settlement year of instalments to be planned (a network, or the
    accounts listed); a Celery task does it and records the outcome here."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    network = models.ForeignKey("customers.Network", on_delete=models.PROTECT, related_name="+")
    year_start = models.DateField()
    frequency = models.CharField(max_length=10, choices=InstalmentPlan.Frequency.choices)
    account_ids = models.JSONField(
        null=True, blank=True, help_text="The accounts asked for; empty: the whole network."
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    created = models.PositiveIntegerField(default=0, help_text="Plans made.")
    existing = models.PositiveIntegerField(
        default=0, help_text="Accounts that already had a plan for the year (kept)."
    )
    failures = models.JSONField(
        default=list, help_text="Accounts that could not be planned: customer number, reason."
    )
    error = models.TextField(blank=True, help_text="Why the planning failed as a whole.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"Planning {self.year_start} ({self.get_frequency_display().lower()}) #{self.pk}"


class Payment(models.Model):
    class Source(models.TextChoices):
        STAFF = "staff", "Recorded by staff"
        BANK = "bank", "Bank statement import"

    account = models.ForeignKey(
        "customers.Account", on_delete=models.PROTECT, related_name="payments"
    )
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    received_on = models.DateField()
    reference = models.CharField(max_length=60, blank=True, help_text="Invoice number, if given.")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.STAFF)
    bank_transaction_id = models.CharField(
        max_length=80, blank=True, help_text="The bank's id of the transaction (import)."
    )
    unallocated = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    idempotency_key = models.CharField(
        max_length=100,
        blank=True,
        help_text="The API request's Idempotency-Key: sent again, the payment is not booked again.",
    )

    class Meta:
        ordering = ["-received_on", "-id"]
        indexes = [
            # payments with money left to allocate, looked for after every issue
            models.Index(
                fields=["account"], condition=Q(unallocated__gt=0), name="payment_unallocated"
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.UniqueConstraint(
                fields=["bank_transaction_id"],
                condition=~Q(bank_transaction_id=""),
                name="payment_bank_transaction_once",
                violation_error_message="This bank transaction was imported already.",
            ),
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="payment_idempotency_key_once",
                violation_error_message="This Idempotency-Key was used for another payment.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.amount} {self.currency} on {self.received_on}"


class Allocation(models.Model):
    """Part of a payment, or of a credit document (``credit_note``: a credit note, or a
    settlement in the customer's favour), settling part of an invoice."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="allocations")
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="allocations"
    )
    credit_note = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="credit_allocations"
    )
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    allocated_on = models.DateField()

    class Meta:
        ordering = ["invoice", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="allocation_amount_positive"),
            models.CheckConstraint(
                condition=Q(payment__isnull=False, credit_note__isnull=True)
                | Q(payment__isnull=True, credit_note__isnull=False),
                name="allocation_from_payment_or_credit_note",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} to invoice {self.invoice_id}"


class Refund(models.Model):
    """Account credit paid back to the customer (an overpayment, what a credit note left).

    Its parts say which payments and credit notes the money came from; the credit they
    hold falls by as much (``billing.services.payments.refund_record``).
    """

    account = models.ForeignKey(
        "customers.Account", on_delete=models.PROTECT, related_name="refunds"
    )
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    paid_on = models.DateField()
    reference = models.CharField(
        max_length=60, blank=True, help_text="Bank transfer reference, cheque number, …"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    idempotency_key = models.CharField(
        max_length=100,
        blank=True,
        help_text="The API request's Idempotency-Key: sent again, nothing is paid again.",
    )

    class Meta:
        ordering = ["-paid_on", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="refund_idempotency_key_once",
                violation_error_message="This Idempotency-Key was used for another refund.",
            ),
        ]

    def __str__(self) -> str:
        return f"refund {self.amount} {self.currency} to {self.account_id} on {self.paid_on}"


class RefundPart(models.Model):
    """The part of a refund taken from one payment's unallocated amount or one credit note."""

    refund = models.ForeignKey(Refund, on_delete=models.PROTECT, related_name="parts")
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="refund_parts"
    )
    credit_note = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="refund_parts"
    )
    amount = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ordering = ["refund", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refundpart_amount_positive"),
            models.CheckConstraint(
                condition=Q(payment__isnull=False, credit_note__isnull=True)
                | Q(payment__isnull=True, credit_note__isnull=False),
                name="refundpart_from_payment_or_credit_note",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} of refund {self.refund_id}"


class DunningLetter(models.Model):
    """The reminder letter an account gets on a dunning day: every invoice that reached a
    ladder level that day (one :class:`DunningNotice` each), the highest level's title and
    next steps, and one fee, the highest of the levels reached (renteloven §9 b: a fee per
    letter, not per invoice), charged by its issued fee invoice."""

    account = models.ForeignKey(
        "customers.Account", on_delete=models.PROTECT, related_name="dunning_letters"
    )
    sent_on = models.DateField(help_text="Local date (the network's time zone).")
    pay_by = models.DateField(help_text="The new date to pay by (and the fee invoice's due date).")
    level = models.PositiveSmallIntegerField(help_text="The highest level among its notices.")
    title = models.CharField(max_length=100)
    next_steps = models.TextField(
        blank=True, help_text="What happens if it is not paid (the final level)."
    )
    currency = models.CharField(max_length=3)
    fee = models.DecimalField(max_digits=10, decimal_places=2, default=ZERO)
    fee_invoice = models.OneToOneField(
        Invoice,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="dunning_letter",
        help_text="The reminder-fee invoice charging the fee.",
    )
    open_amount = models.DecimalField(
        max_digits=14, decimal_places=2, help_text="What its invoices had open, fee excluded."
    )
    legacy = models.BooleanField(
        default=False,
        help_text="Made from a notice sent when every notice was a letter (migration 0014).",
    )
    pdf = models.FileField(upload_to="reminders/%Y/%m/", blank=True)
    emailed_at = models.DateTimeField(
        null=True, blank=True, help_text="When its PDF was e-mailed to the customer."
    )
    posted_at = models.DateTimeField(
        null=True, blank=True, help_text="When staff marked it printed and posted."
    )

    class Meta:
        ordering = ["-sent_on", "account"]
        constraints = [
            # letters sent one per notice before this rule stay as they were sent
            models.UniqueConstraint(
                fields=["account", "sent_on"],
                condition=Q(legacy=False),
                name="dunningletter_one_per_account_day",
                violation_error_message="This account already has a reminder letter that day.",
            ),
            models.CheckConstraint(
                condition=Q(fee__gt=0) | Q(fee_invoice__isnull=True),
                name="dunningletter_fee_invoice_only_with_fee",
                violation_error_message="Only a letter with a fee has a fee invoice.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} to {self.account} on {self.sent_on}"

    @property
    def pdf_filename(self) -> str:
        return f"reminder-{self.account.number}-{self.sent_on.isoformat()}.pdf"


class DunningNotice(models.Model):
    """One ladder level reached by an overdue invoice (the invoice's dunning history),
    sent in a :class:`DunningLetter`.  Notices sent before letters covered an account kept
    their own fee invoice and PDF; new notices have neither (the letter does)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="dunning_notices")
    letter = models.ForeignKey(
        DunningLetter,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="notices",
        help_text="The letter it was sent in (empty: sent before letters).",
    )
    level = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=100)
    fee = models.DecimalField(
        max_digits=10, decimal_places=2, default=ZERO, help_text="Old notices only: see the letter."
    )
    open_amount = models.DecimalField(max_digits=14, decimal_places=2)
    sent_on = models.DateField(help_text="Local date (the network's time zone).")
    pay_by = models.DateField(
        null=True, blank=True, help_text="The new date to pay by (empty: sent before letters)."
    )
    next_steps = models.TextField(
        blank=True, help_text="What happens if it is not paid (the final level)."
    )
    fee_invoice = models.OneToOneField(
        Invoice,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="dunning_notice",
        help_text="Old notices only: the reminder-fee invoice; new fees are the letter's.",
    )
    pdf = models.FileField(upload_to="reminders/%Y/%m/", blank=True)

    class Meta:
        ordering = ["invoice", "level"]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice", "level"], name="dunningnotice_one_per_level"
            ),
            models.CheckConstraint(
                condition=Q(fee__gt=0) | Q(fee_invoice__isnull=True),
                name="dunningnotice_fee_invoice_only_with_fee",
                violation_error_message="Only a notice with a fee has a fee invoice.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.invoice} level {self.level}"


class CollectionCase(models.Model):
    """An invoice handed over to debt collection (inkasso): still open after its claim's
    final notice's pay-by date, recorded by the daily dunning run
    (``billing.services.collection``) with what was open then, the invoice's and the
    reminder fees charged for it (:class:`CollectionFee`).  At most one per invoice; no
    letter or fee follows it.  Staff mark it handed over to the agency or withdraw it; it
    settles by itself once the invoice and its fees are paid or credited."""

    class State(models.TextChoices):
        OPEN = "open", "Open (to hand over)"
        HANDED_OVER = "handed_over", "Handed over"
        SETTLED = "settled", "Settled"
        WITHDRAWN = "withdrawn", "Withdrawn"

    # the unique constraint indexes it
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, related_name="collection_cases", db_index=False
    )
    account = models.ForeignKey(
        "customers.Account", on_delete=models.PROTECT, related_name="collection_cases"
    )
    state = models.CharField(max_length=12, choices=State.choices, default=State.OPEN)
    currency = models.CharField(max_length=3)
    open_amount = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        help_text="Open when the case was opened: the invoice's and its reminder fees'.",
    )
    fee_amount = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        default=ZERO,
        help_text="Of the open amount, the reminder fees.",
    )
    opened_on = models.DateField(help_text="Local date (the network's time zone).")
    created_at = models.DateTimeField()
    handed_over_at = models.DateTimeField(null=True, blank=True)
    settled_on = models.DateField(
        null=True, blank=True, help_text="The date of the payment or credit that settled it."
    )
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When it was withdrawn.")
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_on", "account"]
        permissions = [
            ("hand_over_collectioncase", "Can mark collection cases handed over"),
            ("withdraw_collectioncase", "Can withdraw collection cases"),
        ]
        indexes = [
            # the cases still to act on (the admin's default look, the agency's export)
            models.Index(
                fields=["state"],
                condition=Q(state__in=["open", "handed_over"]),
                name="collectioncase_active",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice"],
                name="collectioncase_one_per_invoice",
                violation_error_message="This invoice has already been handed over to collection.",
            ),
            models.CheckConstraint(
                condition=Q(fee_amount__gte=0, open_amount__gte=F("fee_amount")),
                name="collectioncase_fees_within_open",
                violation_error_message="The fees are part of the open amount.",
            ),
        ]

    def __str__(self) -> str:
        return f"Collection of {self.invoice}"


class CollectionFee(models.Model):
    """A reminder-fee invoice handed over with a case: each fee goes with one case (a
    letter's fee is charged once, however many invoices the letter reminded of)."""

    case = models.ForeignKey(CollectionCase, on_delete=models.CASCADE, related_name="fees")
    fee_invoice = models.OneToOneField(
        Invoice, on_delete=models.PROTECT, related_name="collection_fee"
    )
    open_amount = models.DecimalField(
        max_digits=14, decimal_places=2, help_text="Open when the case was opened."
    )

    class Meta:
        ordering = ["case", "fee_invoice"]

    def __str__(self) -> str:
        return f"{self.fee_invoice} with {self.case}"


class RerateCursor(models.Model):
    """How far re-rating has looked at changed boundary registers (one row)."""

    name = models.CharField(max_length=30, unique=True, default="registers")
    checked_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} checked until {self.checked_until}"
