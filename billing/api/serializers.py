from decimal import Decimal

from rest_framework import serializers

from billing.models import (
    BillingRun,
    BillingRunException,
    InstalmentPlan,
    InstalmentPlanning,
    Invoice,
    InvoiceLine,
    Payment,
    Refund,
    RefundPart,
)
from billing.services.aconto import PLAN_FIELDS
from billing.services.payments import idempotency_key_stored
from customers.models import Account, Network
from heatutility.api import BoundedDateField


class BillingRunSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(source="progress_percent", read_only=True)

    class Meta:
        model = BillingRun
        fields = [
            "id",
            "network",
            "kind",
            "period_start",
            "period_end",
            "state",
            "total",
            "done",
            "held",
            "failed",
            "issued",
            "percent",
            "issue_when_drafted",
            "render_pdfs",
            "created_at",
            "started_at",
            "drafted_at",
            "issued_at",
        ]
        read_only_fields = fields


class BillingRunCreateSerializer(serializers.Serializer):
    network = serializers.PrimaryKeyRelatedField(queryset=Network.objects.all())
    period_start = BoundedDateField(help_text="First day of the month or quarter (local).")
    months = serializers.ChoiceField(choices=[1, 3, 12], default=1)
    kind = serializers.ChoiceField(choices=BillingRun.Kind.choices, default=BillingRun.Kind.INVOICE)
    issue_when_drafted = serializers.BooleanField(
        default=False,
        help_text="Issue the drafts as soon as the run is drafted (unless held or failed); "
        "needs the permission to issue runs (billing.issue_billingrun), else 403.",
    )
    render_pdfs = serializers.BooleanField(default=True)


class InstalmentPlanSerializer(serializers.ModelSerializer):
    account_number = serializers.CharField(source="account.number", read_only=True)

    class Meta:
        model = InstalmentPlan
        fields = ["id", "account_number", *PLAN_FIELDS, "ended_on"]
        read_only_fields = fields


class InstalmentPlanningSerializer(serializers.Serializer):
    network = serializers.PrimaryKeyRelatedField(queryset=Network.objects.all())
    year_start = BoundedDateField(help_text="First day of the settlement year (local).")
    frequency = serializers.ChoiceField(choices=InstalmentPlan.Frequency.choices)
    accounts = serializers.ListField(
        child=serializers.CharField(max_length=20),
        required=False,
        allow_empty=False,
        max_length=200_000,
        help_text="Customer numbers to plan; absent: every account of the network with a "
        "contract in the year.",
    )

    def validate(self, attrs):
        numbers = attrs.pop("accounts", None)
        if numbers is not None:
            from customers.selectors import account_ids_by_number

            ids, unknown = account_ids_by_number(network_id=attrs["network"].pk, numbers=numbers)
            if unknown:
                raise serializers.ValidationError(
                    {
                        "accounts": [
                            f"Not an account of {attrs['network'].code}: {', '.join(unknown[:50])}"
                            + (f" and {len(unknown) - 50} more" if len(unknown) > 50 else "")
                        ]
                    }
                )
            attrs["account_ids"] = ids
        return attrs


class PlanningFailureSerializer(serializers.Serializer):
    account = serializers.CharField(help_text="Customer number.")
    message = serializers.CharField()


class PlanningResultSerializer(serializers.ModelSerializer):
    """A planning and, once it is done, what it did (failures by customer number)."""

    failures = PlanningFailureSerializer(many=True, read_only=True)
    accounts = serializers.SerializerMethodField(
        help_text="How many accounts were asked for; null: the whole network."
    )

    class Meta:
        model = InstalmentPlanning
        fields = [
            "id",
            "network",
            "year_start",
            "frequency",
            "accounts",
            "state",
            "created",
            "existing",
            "failures",
            "error",
            "requested_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_accounts(self, planning) -> int | None:
        return None if planning.account_ids is None else len(planning.account_ids)


class BillingRunExceptionSerializer(serializers.ModelSerializer):
    class Meta:
        model = BillingRunException
        fields = ["id", "account", "code", "error", "created_at", "resolved"]
        read_only_fields = fields


class InvoiceLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = [
            "position",
            "connection",
            "period_start",
            "period_end",
            "tariff_version_id",
            "component",
            "kind",
            "description",
            "explanation",
            "quantity",
            "unit",
            "unit_price",
            "amount",
            "vat_rate",
        ]
        read_only_fields = fields


class InvoiceSerializer(serializers.ModelSerializer):
    number = serializers.CharField(source="display_number", read_only=True)
    lines = InvoiceLineSerializer(many=True, read_only=True)
    pdf_url = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "kind",
            "state",
            "account",
            "network",
            "run",
            "period_start",
            "period_end",
            "held",
            "held_by_staff",
            "hold_reason",
            "issued_at",
            "due_on",
            "currency",
            "net",
            "vat",
            "gross",
            "paid",
            "original",
            "has_estimated_reads",
            "tariff_version_ids",
            "readings",
            "determinants",
            "comparison",
            "lines",
            "pdf_url",
            "emailed_at",
            "posted_at",
        ]
        read_only_fields = fields

    def get_pdf_url(self, obj) -> str | None:
        request = self.context.get("request")
        if not obj.pdf or request is None:
            return None
        return request.build_absolute_uri(
            f"{request.path.split('/billing/')[0]}/billing/invoices/{obj.pk}/pdf/"
        )


class InvoiceListSerializer(InvoiceSerializer):
    class Meta(InvoiceSerializer.Meta):
        fields = [
            f
            for f in InvoiceSerializer.Meta.fields
            if f not in ("lines", "readings", "determinants")
        ]
        read_only_fields = fields


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class PaymentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Payment
        fields = [
            "id",
            "account",
            "amount",
            "currency",
            "received_on",
            "reference",
            "source",
            "bank_transaction_id",
            "unallocated",
            "created_at",
        ]
        read_only_fields = [
            "id",
            "currency",
            "source",
            "bank_transaction_id",
            "unallocated",
            "created_at",
        ]


class PaymentCreateSerializer(serializers.Serializer):
    account = serializers.PrimaryKeyRelatedField(queryset=Account.objects.select_related("network"))
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"))
    received_on = BoundedDateField()
    reference = serializers.CharField(required=False, allow_blank=True, default="", max_length=60)
    bank_transaction_id = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=Payment._meta.get_field("bank_transaction_id").max_length,
        help_text="The bank's id of the transaction, e.g. for a credit a statement import "
        "listed as unmatched: importing that statement again then finds it booked.",
    )

    def validate_bank_transaction_id(self, value: str) -> str:
        value = value.strip()
        booked = Payment.objects.filter(bank_transaction_id=value)
        user, key = self.context.get("user"), self.context.get("idempotency_key")
        if key and user is not None:
            # the same request sent again (its Idempotency-Key): the service answers it
            # with the payment it booked the first time
            booked = booked.exclude(created_by=user, idempotency_key=idempotency_key_stored(key))
        if value and booked.exists():
            raise serializers.ValidationError("This bank transaction was recorded already.")
        return value


class RefundPartSerializer(serializers.ModelSerializer):
    class Meta:
        model = RefundPart
        fields = ["payment", "credit_note", "amount"]


class RefundSerializer(serializers.ModelSerializer):
    parts = RefundPartSerializer(many=True, read_only=True)

    class Meta:
        model = Refund
        fields = [
            "id",
            "account",
            "amount",
            "currency",
            "paid_on",
            "reference",
            "parts",
            "created_at",
        ]
        read_only_fields = fields


class RefundCreateSerializer(serializers.Serializer):
    account = serializers.PrimaryKeyRelatedField(queryset=Account.objects.select_related("network"))
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"))
    paid_on = BoundedDateField()
    reference = serializers.CharField(required=False, allow_blank=True, default="", max_length=60)


class PaymentImportSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="Bank statement CSV: date, amount, reference, account, transaction_id."
    )


class RunExceptionsQuerySerializer(serializers.Serializer):
    resolved = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Only resolved (true) or open (false) ones.",
    )
    code = serializers.CharField(
        required=False, max_length=40, help_text="Only this code, e.g. no_reads or late_rerate."
    )


class BalanceQuerySerializer(serializers.Serializer):
    account = serializers.IntegerField()


class BalanceSerializer(serializers.Serializer):
    account = serializers.IntegerField()
    balance = serializers.DecimalField(
        max_digits=16, decimal_places=2, help_text="Issued gross − payments + refunds; > 0 = owed."
    )
    credit = serializers.DecimalField(
        max_digits=16,
        decimal_places=2,
        help_text="Unused credit: unallocated payments and what credit notes have left.",
    )
    currency = serializers.CharField()


class ExportQuerySerializer(serializers.Serializer):
    start = BoundedDateField()
    end = BoundedDateField()
    network = serializers.IntegerField(required=False)


class CollectionExportQuerySerializer(serializers.Serializer):
    network = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


class PaymentImportResultSerializer(serializers.Serializer):
    created = serializers.IntegerField(help_text="Payments recorded (and allocated).")
    duplicates = serializers.IntegerField(
        help_text="Bank transactions imported before (or twice in the file): skipped."
    )
    skipped = serializers.IntegerField(
        help_text="Rows that are no customer payment (outgoing, or zero): skipped."
    )
    unmatched = serializers.ListField(
        child=serializers.DictField(),
        help_text="Incoming credits no account or invoice matches: not imported; row, date, "
        "amount, reference, account, transaction_id, for staff to record by hand.",
    )
    errors = serializers.ListField(
        child=serializers.DictField(), help_text="Always empty: a bad row refuses the file (422)."
    )
