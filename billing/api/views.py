"""Staff API for billing: runs and their progress, invoices and PDFs, payments, exports.

Each action makes one service call; rules live in ``billing.services``.
"""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors, tasks
from billing.api import serializers
from billing.documents import pdf_response
from billing.models import (
    BillingRun,
    CollectionCase,
    InstalmentPlan,
    InstalmentPlanning,
    Invoice,
    Payment,
    Refund,
)
from billing.services import aconto, rerating
from billing.services import invoices as invoice_services
from billing.services import payments as payment_services
from billing.services import runs as run_services
from customers.models import Account
from heatutility.errors import NotFound
from heatutility.permissions import HasPermission
from heatutility.uploads import upload_read, upload_text

ISSUE_RUN = "billing.issue_billingrun"
# resuming and cancelling change a run (the admin's actions need the same): not the
# default's POST -> add_billingrun
CHANGE_RUN = HasPermission.of("billing.change_billingrun")
IDEMPOTENCY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Any unique value of yours (e.g. a UUID) per payment or refund: a request "
    "sent again with it (after a timeout) answers the first booking instead of booking "
    "again; the key with other data is refused (422 idempotency_key_reused).",
)
RETRY_ISSUES = "The run is issued, so its failed accounts' bills are issued at once: permission"


class BillingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Billing runs; ``GET /billing/runs/{id}/`` shows progress (done/total, held, failed)."""

    queryset = BillingRun.objects.select_related("network")
    serializer_class = serializers.BillingRunSerializer
    filterset_fields = ["network", "state", "kind", "period_start"]

    @extend_schema(
        request=serializers.BillingRunCreateSerializer,
        responses={201: serializers.BillingRunSerializer},
    )
    def create(self, request):
        """Create a run for a month/quarter and start it on the workers."""
        body = serializers.BillingRunCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        # a run issued when drafted issues its invoices as the ``issue`` action does
        if body.validated_data["issue_when_drafted"] and not request.user.has_perm(ISSUE_RUN):
            self.permission_denied(
                request, message=f"Issuing the run when drafted requires permission: {ISSUE_RUN}."
            )
        run = run_services.billing_run_create(
            now=timezone.now(), user=request.user, **body.validated_data
        )
        tasks.billing_run_start.delay(run.pk)
        run.refresh_from_db()
        return Response(serializers.BillingRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=serializers.BillingRunSerializer)
    @action(detail=True, methods=["post"], permission_classes=[CHANGE_RUN])
    def resume(self, request, pk=None):
        """Dispatch the chunks that are not done (after a crash); safe to call twice."""
        run = self.get_object()
        run_services.billing_run_assert_resumable(run=run)
        tasks.billing_run_resume.delay(run.pk)
        run.refresh_from_db()
        return Response(serializers.BillingRunSerializer(run).data)

    @extend_schema(request=None, responses=serializers.BillingRunSerializer)
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[HasPermission.of(ISSUE_RUN)],
    )
    def issue(self, request, pk=None):
        """Issue every unheld draft of a drafted run (numbers assigned, PDFs rendered)."""
        run = self.get_object()
        run_services.billing_run_issue(run=run, issued_at=timezone.now())
        run.refresh_from_db()
        return Response(serializers.BillingRunSerializer(run).data)

    @extend_schema(request=None, responses=serializers.BillingRunSerializer)
    @action(detail=True, methods=["post"], permission_classes=[CHANGE_RUN])
    def cancel(self, request, pk=None):
        run = run_services.billing_run_cancel(run=self.get_object())
        return Response(serializers.BillingRunSerializer(run).data)

    @extend_schema(request=None, responses=serializers.BillingRunSerializer)
    @action(
        detail=True,
        methods=["post"],
        url_path="retry-exceptions",
        permission_classes=[CHANGE_RUN],
    )
    def retry_exceptions(self, request, pk=None):
        """Bill the accounts the run could not bill (its exceptions not marked resolved) as
        their data stands now: into the run while it is not issued, issued at once after
        its issue (which needs the permission to issue too).  The nightly look does the
        same; an account that still fails keeps its exception."""
        run = self.get_object()
        if run.state == BillingRun.State.ISSUED and not request.user.has_perm(ISSUE_RUN):
            self.permission_denied(request, message=f"{RETRY_ISSUES} {ISSUE_RUN}.")
        run_services.billing_run_exceptions_retry(run=run, now=timezone.now())
        run.refresh_from_db()
        return Response(serializers.BillingRunSerializer(run).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "resolved", bool, description="Only resolved (true) or open (false) ones."
            ),
            OpenApiParameter(
                "code", str, description="Only this code, e.g. no_reads or late_rerate."
            ),
        ],
        responses=serializers.BillingRunExceptionSerializer(many=True),
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def exceptions(self, request, pk=None):
        """The accounts the run could not bill and why, 50 a page in account order (a run
        can fail for thousands of accounts: 5,000 in one answer were 768 kB); ``resolved``
        and ``code`` narrow them (a malformed one is a 400 on that parameter)."""
        run = self.get_object()
        query = serializers.RunExceptionsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.run_exceptions(run=run, **query.validated_data))
        return self.get_paginated_response(
            serializers.BillingRunExceptionSerializer(page, many=True).data
        )


class InstalmentPlanViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """On-account plans; ``POST`` plans a settlement year for a network (or listed accounts)."""

    queryset = InstalmentPlan.objects.select_related("account")
    serializer_class = serializers.InstalmentPlanSerializer
    filterset_fields = ["account", "account__network", "year_start", "frequency"]

    @extend_schema(
        request=serializers.InstalmentPlanningSerializer,
        responses={202: serializers.PlanningResultSerializer},
    )
    def create(self, request):
        """Plan instalments from last year's climate-corrected consumption, on a worker;
        repeatable (accounts that already have a plan for the year keep it).  Answers 202
        with the planning: ``state`` queued or running (poll ``instalment-plannings/{id}/``),
        or already done where tasks run in process."""
        body = serializers.InstalmentPlanningSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        planning = aconto.instalment_planning_request(
            now=timezone.now(), user=request.user, **body.validated_data
        )
        tasks.instalment_planning_run.delay(planning.pk)
        planning.refresh_from_db()
        return Response(
            serializers.PlanningResultSerializer(planning).data, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(request=None, responses={201: serializers.InvoiceSerializer})
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[HasPermission.of("billing.issue_invoice")],
    )
    def settle(self, request, pk=None):
        """Final settlement now for an account closed after its move-out (the annual
        settlement run then skips it); an implausible one stays a held draft."""
        invoice = aconto.final_settlement_issue(plan=self.get_object(), now=timezone.now())
        if invoice.number is not None:
            tasks.invoices_render_pdfs.delay([invoice.pk])
        return Response(
            serializers.InvoiceSerializer(invoice, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class InstalmentPlanningViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Plannings staff asked for (``POST instalment-plans/``) and what each did."""

    queryset = InstalmentPlanning.objects.all()
    serializer_class = serializers.PlanningResultSerializer
    filterset_fields = ["network", "year_start", "state"]


class InvoiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Invoice.objects.select_related("account", "network").prefetch_related("lines")
    filterset_fields = ["account", "state", "kind", "run", "network", "held", "period_start"]
    search_fields = ["account__number", "account__customer__name"]
    ordering_fields = ["number", "issued_at", "due_on", "gross"]

    def get_serializer_class(self):
        return (
            serializers.InvoiceListSerializer
            if self.action == "list"
            else serializers.InvoiceSerializer
        )

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def pdf(self, request, pk=None):
        """Download the invoice PDF (rendered by a Celery task after issue)."""
        invoice = self.get_object()
        if not invoice.pdf:
            raise NotFound("The PDF has not been rendered yet.")
        return pdf_response(invoice)

    @extend_schema(request=serializers.ReasonSerializer, responses=serializers.InvoiceSerializer)
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[HasPermission.of("billing.release_invoice")],
    )
    def release(self, request, pk=None):
        """Release a held draft after review.  A run's draft goes out with the run's
        issue; a correction or settlement (no run issues it) is issued at once."""
        body = serializers.ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        invoice = self.get_object()
        if invoice_services.release_issues(invoice) and not request.user.has_perm(
            "billing.issue_invoice"
        ):
            self.permission_denied(request, message=invoice_services.RELEASE_ISSUES_MESSAGE)
        invoice = invoice_services.invoice_release(
            invoice=invoice, note=body.validated_data["reason"], now=timezone.now()
        )
        return Response(serializers.InvoiceSerializer(invoice, context={"request": request}).data)

    @extend_schema(request=serializers.ReasonSerializer, responses=serializers.InvoiceSerializer)
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[HasPermission.of("billing.release_invoice")],
    )
    def hold(self, request, pk=None):
        body = serializers.ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        invoice = invoice_services.invoice_hold(
            invoice=self.get_object(), reason=body.validated_data["reason"] or "held by staff"
        )
        return Response(serializers.InvoiceSerializer(invoice, context={"request": request}).data)

    @extend_schema(request=None, responses=serializers.InvoiceSerializer)
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[HasPermission.of("billing.issue_invoice")],
    )
    def issue(self, request, pk=None):
        invoice = invoice_services.invoice_issue(
            invoice=self.get_object(), issued_at=timezone.now()
        )
        tasks.invoices_render_pdfs.delay([invoice.pk])
        return Response(serializers.InvoiceSerializer(invoice, context={"request": request}).data)

    @extend_schema(request=None, responses={201: serializers.InvoiceSerializer})
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[HasPermission.of("billing.credit_invoice")],
    )
    def credit(self, request, pk=None):
        """Credit an issued invoice in full (a credit note referencing it)."""
        note = invoice_services.invoice_credit(invoice=self.get_object(), now=timezone.now())
        tasks.invoices_render_pdfs.delay([note.pk])
        return Response(
            serializers.InvoiceSerializer(note, context={"request": request}).data, status=201
        )

    @extend_schema(request=None, responses=serializers.InvoiceSerializer(many=True))
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[HasPermission.of("billing.credit_invoice")],
        pagination_class=None,
        filter_backends=[],
    )
    def rerate(self, request, pk=None):
        """Recompute; if the figures changed, issue a credit note and a correction."""
        result = rerating.invoice_rerate(invoice=self.get_object(), now=timezone.now())
        docs = [doc for doc in result or () if doc is not None]  # a credit note may stand alone
        return Response(
            serializers.InvoiceSerializer(docs, many=True, context={"request": request}).data
        )

    @extend_schema(request=None, responses={201: serializers.InvoiceSerializer})
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[HasPermission.of("billing.credit_invoice")],
    )
    def rebill(self, request, pk=None):
        """Bill a period credited in full again, as the data stands now: a correction
        referencing the credited invoice (409 if it is not credited or already rebilled)."""
        correction = rerating.invoice_rebill(invoice=self.get_object(), now=timezone.now())
        if correction.is_issued:
            tasks.invoices_render_pdfs.delay([correction.pk])
        return Response(
            serializers.InvoiceSerializer(correction, context={"request": request}).data,
            status=201,
        )


class PaymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Payment.objects.select_related("account")
    serializer_class = serializers.PaymentSerializer
    filterset_fields = ["account", "source", "received_on"]
    search_fields = ["reference", "account__number", "bank_transaction_id"]

    @extend_schema(
        request=serializers.PaymentCreateSerializer,
        responses={201: serializers.PaymentSerializer},
        parameters=[IDEMPOTENCY],
    )
    def create(self, request):
        """Record a payment; it is allocated at once (reference first, then oldest first).
        Sent again with the same ``Idempotency-Key``, the first payment is the answer."""
        key = request.headers.get("Idempotency-Key", "")
        body = serializers.PaymentCreateSerializer(
            data=request.data, context={"user": request.user, "idempotency_key": key}
        )
        body.is_valid(raise_exception=True)
        payment = payment_services.payment_record(
            now=timezone.now(), user=request.user, idempotency_key=key, **body.validated_data
        )
        return Response(serializers.PaymentSerializer(payment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={"multipart/form-data": serializers.PaymentImportSerializer},
        responses=serializers.PaymentImportResultSerializer,
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=[MultiPartParser, FormParser],
    )
    def import_statement(self, request):
        """Import a bank statement CSV; each bank transaction is imported once."""
        body = serializers.PaymentImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        text = upload_text(upload_read(body.validated_data["file"]))
        result = payment_services.payments_import_csv(
            text=text, now=timezone.now(), user=request.user
        )
        return Response(
            {
                "created": result.created,
                "duplicates": result.duplicates,
                "skipped": result.skipped,
                "unmatched": result.unmatched,
                "errors": [e.as_dict() for e in result.errors],
            }
        )

    @extend_schema(
        parameters=[OpenApiParameter("account", int, required=True)],
        responses={
            200: serializers.BalanceSerializer,
            404: OpenApiResponse(description="No such account."),
        },
    )
    @action(detail=False, methods=["get"])
    def balance(self, request):
        """An account's balance: issued gross minus payments plus refunds (> 0 = owed),
        and the credit it holds unused (unallocated payments, what credit notes have
        left).  A missing or malformed ``account`` is a 400 on that parameter."""

        query = serializers.BalanceQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            account = Account.objects.select_related("network").get(
                pk=query.validated_data["account"]
            )
        except Account.DoesNotExist as exc:
            raise NotFound("No such account.") from exc
        balance = payment_services.account_balance(account=account)
        credit = payment_services.account_credit(account=account)
        return Response(
            {
                "account": account.pk,
                "balance": str(balance),
                "credit": str(credit),
                "currency": account.network.currency,
            }
        )


class RefundViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Refund.objects.select_related("account").prefetch_related("parts")
    serializer_class = serializers.RefundSerializer
    filterset_fields = ["account", "paid_on"]
    search_fields = ["reference", "account__number"]

    @extend_schema(
        request=serializers.RefundCreateSerializer,
        responses={201: serializers.RefundSerializer},
        parameters=[IDEMPOTENCY],
    )
    def create(self, request):
        """Pay account credit back (what credit notes left first, then unallocated
        payments); more than the account's credit is refused with 422.  Sent again with
        the same ``Idempotency-Key``, the first refund is the answer: nothing is paid twice."""
        body = serializers.RefundCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        refund = payment_services.refund_record(
            now=timezone.now(),
            user=request.user,
            idempotency_key=request.headers.get("Idempotency-Key", ""),
            **body.validated_data,
        )
        return Response(serializers.RefundSerializer(refund).data, status=status.HTTP_201_CREATED)


class _ExportView(APIView):
    queryset = Invoice.objects.none()  # permission: billing.view_invoice
    filename = ""

    def rows(self, **kwargs):  # pragma: no cover - overridden
        raise NotImplementedError

    @extend_schema(
        parameters=[
            OpenApiParameter("start", OpenApiTypes.DATE, required=True),
            OpenApiParameter("end", OpenApiTypes.DATE, required=True, description="exclusive"),
            OpenApiParameter("network", int),
        ],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request):
        query = serializers.ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        response = StreamingHttpResponse(
            self.rows(network_id=q.get("network"), start=q["start"], end=q["end"]),
            content_type="text/csv",
        )
        response["Content-Disposition"] = f'attachment; filename="{self.filename}-{q["start"]}.csv"'
        return response


class InvoiceExportView(_ExportView):
    """CSV of issued invoices for accounting."""

    filename = "invoices"

    def rows(self, **kwargs):
        return selectors.invoices_csv(**kwargs)


class JournalExportView(_ExportView):
    """CSV of double-entry journal lines (receivables, revenue per component, prepayments,
    VAT, payments)."""

    filename = "journal"

    def rows(self, **kwargs):
        return selectors.journal_csv(**kwargs)


class CollectionExportView(APIView):
    """CSV of the collection cases still to hand to the collection agency."""

    queryset = CollectionCase.objects.none()  # permission: billing.view_collectioncase

    @extend_schema(
        parameters=[OpenApiParameter("network", int)],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request):
        query = serializers.CollectionExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        response = StreamingHttpResponse(
            selectors.collection_cases_csv(network_id=query.validated_data.get("network")),
            content_type="text/csv",
        )
        response["Content-Disposition"] = 'attachment; filename="collection-cases.csv"'
        return response
