"""Staff admin for billing: runs with a progress bar, invoices (hold/release/issue/credit),
payments (recorded through the service, bank statement import).  Every action calls one
service; issued invoices are read-only here as everywhere."""

from __future__ import annotations

import datetime as dt
import secrets

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import Q, Subquery
from django.forms.models import construct_instance
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from billing import tasks
from billing.models import (
    BillingRun,
    BillingRunException,
    CollectionCase,
    CollectionFee,
    DunningLetter,
    DunningNotice,
    InstalmentPlan,
    InstalmentPlanning,
    Invoice,
    InvoiceLine,
    InvoiceNumberCounter,
    Payment,
    Refund,
    RefundPart,
    RerateFailure,
)
from billing.services import aconto, collection, delivery
from billing.services import invoices as invoice_services
from billing.services import payments as payment_services
from billing.services import rerating as rerating_services
from billing.services import runs as run_services
from customers.models import Network
from customers.selectors import account_ids_by_number
from heatutility.admin import IndexedSearchMixin, ViewOnlyAdmin, refuse_dates_out_of_range
from heatutility.errors import DomainError
from heatutility.timeutil import months_between
from heatutility.uploads import upload_read, upload_text


def _report(modeladmin, request, func, queryset, done_message: str) -> None:
    ok = 0
    for obj in queryset:
        try:
            func(obj)
            ok += 1
        except DomainError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
    if ok:
        modeladmin.message_user(request, done_message.format(n=ok), messages.SUCCESS)


# exceptions a run's page shows: a run can fail for thousands of accounts (no reads for a
# whole district), and a page with a form row for each is megabytes and seconds to render
RUN_PAGE_EXCEPTIONS = 100


class FirstExceptionsFormSet(forms.models.BaseInlineFormSet):
    """The run's first ``RUN_PAGE_EXCEPTIONS`` exceptions, unresolved first (the same rows
    on the page and when it is saved: the order is total, per run one row per account)."""

    def get_queryset(self):
        if not hasattr(self, "_first"):
            self._first = (
                super().get_queryset().order_by("resolved", "account_id")[:RUN_PAGE_EXCEPTIONS]
            )
        return self._first


class BillingRunExceptionInline(admin.TabularInline):
    model = BillingRunException
    formset = FirstExceptionsFormSet
    verbose_name_plural = (
        f"Billing run exceptions (the first {RUN_PAGE_EXCEPTIONS}, unresolved first; "
        "all of them, 50 a page: GET /api/v1/billing/runs/<id>/exceptions/)"
    )
    extra = 0
    can_delete = False
    fields = ["account", "code", "error", "created_at", "resolved"]
    readonly_fields = ["account", "code", "error", "created_at"]

    def get_queryset(self, request):
        # each row names its account (and customer): one query, not two per row
        return super().get_queryset(request).select_related("account__customer")


# what staff choose for a new run (the rest of the page is progress, read-only)
RUN_INPUTS = [
    "network",
    "kind",
    "period_start",
    "period_end",
    "chunk_size",
    "issue_when_drafted",
    "render_pdfs",
]


class BillingRunForm(forms.ModelForm):
    """A new run is checked by the service before it is saved, so a refusal (period not
    over, not a month/quarter/year, a run for it exists) is shown on the form."""

    class Meta:
        model = BillingRun
        fields = RUN_INPUTS

    def clean(self):
        data = super().clean()
        network, start, end = (data.get(k) for k in ("network", "period_start", "period_end"))
        if self.instance.pk or not (network and start and end):
            return data  # a saved run's period is read-only
        try:
            _, checked_end = run_services.billing_run_check(
                network=network,
                period_start=start,
                months=months_between(start, end),
                kind=data.get("kind") or BillingRun.Kind.INVOICE,
                now=timezone.now(),
            )
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from exc
        if checked_end != end:
            raise forms.ValidationError(
                f"A period from {start} ends on {checked_end}, not {end}.", code="period_end"
            )
        return data


@admin.register(BillingRun)
class BillingRunAdmin(admin.ModelAdmin):
    form = BillingRunForm
    list_display = [
        "network",
        "kind",
        "period_start",
        "period_end",
        "state",
        "progress",
        "held",
        "failed",
        "issued",
    ]
    list_filter = ["state", "kind", "network"]
    date_hierarchy = "period_start"
    readonly_fields = [
        "state",
        "progress",
        "total",
        "done",
        "held",
        "failed",
        "issued",
        "created_at",
        "started_at",
        "drafted_at",
        "issued_at",
        "created_by",
    ]
    fields = [*RUN_INPUTS, *readonly_fields]
    inlines = [BillingRunExceptionInline]
    actions = ["resume_runs", "issue_runs", "cancel_runs", "retry_exceptions"]

    @admin.display(description="progress")
    def progress(self, run: BillingRun) -> str:
        pct = run.progress_percent
        return format_html(
            '<div style="width:140px;background:#eee;border:1px solid #ccc;height:14px;position:relative">'
            '<div style="width:{}%;background:#417690;height:14px"></div>'
            '<span style="position:absolute;top:0;left:4px;font-size:10px;color:#000">{} / {} ({}%)</span></div>',
            pct,
            run.done + run.failed,
            run.total,
            pct,
        )

    def get_readonly_fields(self, request, obj=None):
        # a run issued when drafted issues its invoices as the "issue" action does
        issuing = [] if self.has_issue_permission(request) else ["issue_when_drafted"]
        if obj is None:
            return [*self.readonly_fields, *issuing]
        return [
            *self.readonly_fields,
            "network",
            "kind",
            "period_start",
            "period_end",
            "chunk_size",
            *issuing,
        ]

    def save_model(self, request, obj, form, change):
        if change:
            # only what staff may edit on a saved run: a full save would write back the
            # state and counters read when the form was loaded over what the run's
            # chunks committed meanwhile (a drafted run back to running, stuck for good)
            fields = [f for f in form.changed_data if f in ("issue_when_drafted", "render_pdfs")]
            if fields:
                obj.save(update_fields=fields)
            return
        run = run_services.billing_run_create(
            network=obj.network,
            period_start=obj.period_start,
            months=months_between(obj.period_start, obj.period_end),
            kind=obj.kind,
            now=timezone.now(),
            user=request.user,
            chunk_size=obj.chunk_size,
            issue_when_drafted=obj.issue_when_drafted,
            render_pdfs=obj.render_pdfs,
        )
        obj.pk = run.pk
        obj.refresh_from_db()
        tasks.billing_run_start.delay(run.pk)

    @admin.action(description="Resume (dispatch chunks not done)", permissions=["change"])
    def resume_runs(self, request, queryset):
        def one(run):
            run_services.billing_run_assert_resumable(run=run)
            tasks.billing_run_resume.delay(run.pk)

        _report(self, request, one, queryset, "Resumed {n} run(s).")

    @admin.action(description="Issue unheld drafts", permissions=["issue"])
    def issue_runs(self, request, queryset):
        _report(
            self,
            request,
            lambda r: run_services.billing_run_issue(run=r, issued_at=timezone.now()),
            queryset,
            "Issued {n} run(s).",
        )

    @admin.action(description="Cancel (drafts only)", permissions=["change"])
    def cancel_runs(self, request, queryset):
        _report(
            self,
            request,
            lambda r: run_services.billing_run_cancel(run=r),
            queryset,
            "Cancelled {n} run(s).",
        )

    @admin.action(description="Bill the failed accounts again", permissions=["change"])
    def retry_exceptions(self, request, queryset):
        def one(run):
            if run.state == BillingRun.State.ISSUED and not self.has_issue_permission(request):
                raise DomainError(  # their bills would be issued at once
                    "The run is issued, so its failed accounts' bills are issued at once: "
                    "that needs the permission to issue runs."
                )
            billed = run_services.billing_run_exceptions_retry(run=run, now=timezone.now())
            left = run.exceptions.filter(resolved=False).count()
            self.message_user(
                request,
                f"{run}: {len(billed)} account(s) billed, {left} still failing.",
                messages.SUCCESS if billed else messages.WARNING,
            )

        _report(self, request, one, queryset, "Tried the failed accounts of {n} run(s).")

    def has_issue_permission(self, request):
        return request.user.has_perm("billing.issue_billingrun")


class DeliveryFilter(admin.SimpleListFilter):
    """Invoices and letters by delivery: e-mailed, posted, to print (no e-mail address),
    not yet delivered (``billing.services.delivery``)."""

    title = "delivery"
    parameter_name = "delivery"

    def lookups(self, request, model_admin):
        return delivery.Delivery.choices

    def queryset(self, request, queryset):
        if self.value() not in delivery.Delivery.values:
            return queryset
        return delivery.documents_by_delivery(queryset, delivery=self.value())


class BillingPeriodFilter(admin.SimpleListFilter):
    """Invoices by the billing period their period starts in, the periods being those
    of the billing runs (a few hundred rows, not a scan of every invoice as the date
    hierarchy's MIN/MAX and DISTINCT were: 0.7 s a page at 1.2 million invoices)."""

    title = "billing period"
    parameter_name = "period"

    def lookups(self, request, model_admin):
        periods = (
            BillingRun.objects.values_list("period_start", "period_end")
            .distinct()
            .order_by("-period_start", "period_end")[:60]
        )
        return [(f"{start}..{end}", _period_label(start, end)) for start, end in periods]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:  # the period in the value: a month's and a quarter's run may start together
            start, end = (dt.date.fromisoformat(day) for day in self.value().split(".."))
        except ValueError:
            return queryset.none()
        return queryset.filter(period_start__gte=start, period_start__lt=end)


def _period_label(start: dt.date, end: dt.date) -> str:
    months = months_between(start, end)
    if start.day == 1 and months == 1:
        return start.strftime("%B %Y")
    return f"{start.isoformat()} – {(end - dt.timedelta(days=1)).isoformat()}"


class PdfDownloadAdmin(IndexedSearchMixin, admin.ModelAdmin):
    """A stored PDF (``obj.pdf``, named ``obj.pdf_filename``) as a list column and a
    download view at ``<pk>/pdf/`` (``pdf_url_name``), for whoever may view the object;
    how it was delivered (column, filter, actions)."""

    pdf_url_name = ""

    @admin.display(description="delivery")
    def delivery_status(self, obj) -> str:
        return delivery.delivery_status(obj)

    def _delivery_report(self, request, *, done: int, selected: int, what: str) -> None:
        skipped = selected - done
        self.message_user(
            request,
            f"{what.format(n=done)}"
            + (f"; {skipped} skipped (delivered already, or not ready)." if skipped else "."),
            messages.SUCCESS if done else messages.WARNING,
        )

    @admin.display(description="PDF")
    def pdf_link(self, obj) -> str:
        if not obj.pdf:
            return "—"
        return format_html(
            '<a href="{}">PDF</a>', reverse(f"admin:{self.pdf_url_name}", args=[obj.pk])
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name=self.pdf_url_name,
            ),
            *super().get_urls(),
        ]

    def pdf_view(self, request, pk: int):
        from django.http import Http404

        from billing.documents import pdf_response

        obj = self.get_queryset(request).filter(pk=pk).first()
        if obj is None or not obj.pdf or not self.has_view_permission(request, obj):
            raise Http404
        return pdf_response(obj)


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = [
        "position",
        "description",
        "explanation",
        "quantity",
        "unit",
        "unit_price",
        "amount",
        "vat_rate",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(PdfDownloadAdmin):
    list_display = [
        "__str__",
        "kind",
        "state",
        "account",
        "period_start",
        "gross",
        "paid",
        "held",
        "due_on",
        "pdf_link",
        "delivery_status",
    ]
    list_filter = [
        "state",
        "kind",
        "held",
        "has_estimated_reads",
        DeliveryFilter,
        BillingPeriodFilter,
        "network",
        "run",
    ]
    # ^: from its start (IndexedSearchMixin); its own number in search_term_filters
    search_fields = ["^account__number", "account__customer__name"]
    # newest documents first, by the primary key: the first page reads 100 entries of
    # its index instead of sorting every invoice by period (1.2 s at 1.2 million; an
    # index on the period would cost every bill of a run); the period column still sorts
    ordering = ["-id"]
    list_select_related = ["account__customer"]
    inlines = [InvoiceLineInline]
    actions = [
        "release",
        "hold",
        "recompute",
        "issue",
        "credit",
        "rebill",
        "render_pdf",
        "email_documents",
        "mark_posted",
    ]
    readonly_fields = [
        "account",
        "network",
        "run",
        "kind",
        "state",
        "period_start",
        "period_end",
        "held",
        "held_by_staff",
        "hold_reason",
        "series",
        "number",
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
        "pdf_link",
        "delivery_status",
        "emailed_at",
        "posted_at",
        "created_at",
    ]
    exclude = ["pdf"]

    def search_term_filters(self, term):
        """The invoice's number as printed (``INV-2026-000042``) or bare (``42``,
        ``000042``, in any series): both by the unique (series, number) index, a bare
        number in each series a counter holds (no index of its own: every invoice a
        billing run writes would pay for it)."""
        series, _, digits = term.rpartition("-")
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
            return []
        if series:
            return [Q(series=series, number=int(digits))]
        in_use = InvoiceNumberCounter.objects.values("series")
        return [Q(series__in=Subquery(in_use), number=int(digits))]

    def has_add_permission(self, request):
        return False  # invoices come from runs, re-rating and services

    # the actions' custom verbs (Meta.permissions), as the API checks them
    def has_issue_permission(self, request):
        return request.user.has_perm("billing.issue_invoice")

    def has_release_permission(self, request):
        return request.user.has_perm("billing.release_invoice")

    def has_credit_permission(self, request):
        return request.user.has_perm("billing.credit_invoice")

    def has_delete_permission(self, request, obj=None):
        return False

    pdf_url_name = "billing_invoice_pdf"

    @admin.action(
        description="Release held drafts (a correction or settlement is issued at once)",
        permissions=["release"],
    )
    def release(self, request, queryset):
        may_issue = request.user.has_perm("billing.issue_invoice")

        def one(invoice):
            if invoice_services.release_issues(invoice) and not may_issue:
                raise invoice_services.UnableToIssueInvoice(invoice_services.RELEASE_ISSUES_MESSAGE)
            invoice_services.invoice_release(
                invoice=invoice, note=f"by {request.user}", now=timezone.now()
            )

        _report(
            self,
            request,
            one,
            queryset.filter(held=True),
            "Released {n} draft(s).",
        )

    @admin.action(description="Hold drafts for review", permissions=["release"])
    def hold(self, request, queryset):
        _report(
            self,
            request,
            lambda i: invoice_services.invoice_hold(invoice=i, reason=f"held by {request.user}"),
            queryset,
            "Held {n} draft(s).",
        )

    @admin.action(description="Recompute drafts (after a data correction)", permissions=["change"])
    def recompute(self, request, queryset):
        from billing.services.rerating import invoice_draft_recompute

        _report(
            self,
            request,
            lambda i: invoice_draft_recompute(invoice=i),
            queryset,
            "Recomputed {n} draft(s).",
        )

    @admin.action(description="Issue drafts", permissions=["issue"])
    def issue(self, request, queryset):
        def one(invoice):
            invoice_services.invoice_issue(invoice=invoice, issued_at=timezone.now())
            tasks.invoices_render_pdfs.delay([invoice.pk])

        _report(self, request, one, queryset.select_related("network"), "Issued {n} invoice(s).")

    @admin.action(description="Credit in full (credit note)", permissions=["credit"])
    def credit(self, request, queryset):
        def one(invoice):
            note = invoice_services.invoice_credit(invoice=invoice, now=timezone.now())
            tasks.invoices_render_pdfs.delay([note.pk])

        _report(self, request, one, queryset.select_related("network"), "Credited {n} invoice(s).")

    @admin.action(description="Bill credited invoices again (correction)", permissions=["credit"])
    def rebill(self, request, queryset):
        from billing.services.rerating import invoice_rebill

        def one(invoice):
            correction = invoice_rebill(invoice=invoice, now=timezone.now())
            if correction.is_issued:
                tasks.invoices_render_pdfs.delay([correction.pk])

        _report(self, request, one, queryset, "Billed {n} invoice(s) again.")

    @admin.action(description="Render missing PDFs", permissions=["change"])
    def render_pdf(self, request, queryset):
        tasks.invoices_render_pdfs.delay(list(queryset.values_list("pk", flat=True)))
        self.message_user(request, "PDF rendering queued.")

    @admin.action(description="E-mail to the customer (not yet delivered)", permissions=["change"])
    def email_documents(self, request, queryset):
        tasks.invoices_email.delay(list(queryset.values_list("pk", flat=True)))
        self.message_user(request, "E-mail queued for those not yet delivered.")

    @admin.action(description="Mark as printed and posted", permissions=["change"])
    def mark_posted(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        done = delivery.invoices_mark_posted(invoice_ids=ids, posted_at=timezone.now())
        self._delivery_report(
            request, done=done, selected=len(ids), what="Marked {n} invoice(s) printed and posted"
        )


class StatementImportForm(forms.Form):
    file = forms.FileField(
        help_text="CSV: date, amount, reference, account, transaction_id (',' or ';')."
    )


SUBMISSION_KEY = "submission_key"
SUBMISSION_KEY_PREFIX = "admin-form:"  # apart from the keys the same user sends the API


class OnceSubmittedForm(forms.ModelForm):
    """An add form that carries a one-time key, made when it is rendered and passed to
    the service as the Idempotency-Key: the same rendered form sent twice (a double
    click, a resent POST) books once.  ``user`` is set by the admin's ``get_form``.

    Sent again, the form's own checks are not run on it: they would refuse the repeat
    because of the first booking (the credit it took, the bank id it holds) where the
    service answers with that booking."""

    submission_key = forms.CharField(
        widget=forms.HiddenInput, required=False, initial=lambda: secrets.token_urlsafe(24)
    )
    user = None

    def submission_key_stored(self) -> str:
        key = self.data.get(SUBMISSION_KEY, "")
        return payment_services.idempotency_key_stored(SUBMISSION_KEY_PREFIX + key) if key else ""

    def booked_before(self):
        """The booking this rendered form made already, or None."""
        key = self.submission_key_stored()
        if not key or self.user is None or self.instance.pk is not None:
            return None
        model = self._meta.model
        return model.objects.filter(created_by=self.user, idempotency_key=key).first()

    def _post_clean(self):
        if self.booked_before() is None:
            super()._post_clean()
            return
        self.instance = construct_instance(
            self, self.instance, self._meta.fields, self._meta.exclude
        )


class RecordedByServiceAdmin(IndexedSearchMixin, admin.ModelAdmin):
    """Money movements are added through their service (allocation, credit checks) and
    never edited: the add form's fields are read-only afterwards.  The add form is sent
    once (:class:`OnceSubmittedForm`): sent twice, the second answers with the first
    booking."""

    def record(self, request, obj, *, now, idempotency_key: str):  # pragma: no cover - overridden
        raise NotImplementedError

    def get_fields(self, request, obj=None):
        return self.fields if obj else [*self.fields, SUBMISSION_KEY]

    def get_readonly_fields(self, request, obj=None):
        return self.fields if obj else []

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)  # a class made for this request
        form.user = request.user
        return form

    def save_model(self, request, obj, form, change):
        if change:
            return
        now = timezone.now()
        booked = self.record(request, obj, now=now, idempotency_key=form.submission_key_stored())
        # booked at another moment: the first submit of this form booked it
        request.booked_before = booked.created_at != now
        obj.pk = booked.pk
        obj.refresh_from_db()

    def log_addition(self, request, obj, message):
        if getattr(request, "booked_before", False):
            return None  # logged when it was booked
        return super().log_addition(request, obj, message)

    def response_add(self, request, obj, post_url_continue=None):
        if not getattr(request, "booked_before", False):
            return super().response_add(request, obj, post_url_continue)
        what = obj._meta.verbose_name
        self.message_user(
            request,
            f"This form was sent already: {what} “{obj}” was booked then, and nothing was booked again.",
            messages.WARNING,
        )
        opts = obj._meta
        return redirect(f"admin:{opts.app_label}_{opts.model_name}_change", obj.pk)

    def add_view(self, request, form_url="", extra_context=None):
        try:
            return super().add_view(request, form_url, extra_context)
        except payment_services.IdempotencyKeyReused:
            # the same rendered form (the browser's back button) sent with other figures
            what = self.model._meta.verbose_name
            self.message_user(
                request,
                f"This form was sent already for another {what}, and nothing was booked now: "
                f"it is open again for a new {what}.",
                messages.ERROR,
            )
            return redirect(request.get_full_path())
        except DomainError as exc:  # the service refused what the form allowed (the credit
            # went elsewhere, the bank id booked by an import since the form checked it):
            # the form again with why
            self.message_user(request, exc.message, messages.ERROR)
            return redirect(request.get_full_path())


class RefundPartInline(admin.TabularInline):
    model = RefundPart
    fields = ["payment", "credit_note", "amount"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class RefundForm(OnceSubmittedForm):
    class Meta:
        model = Refund
        fields = ["account", "amount", "paid_on", "reference"]

    def clean(self):
        data = super().clean()
        account, amount = data.get("account"), data.get("amount")
        if self.booked_before() is not None:
            return data  # sent again: the service answers with the first refund
        if self.instance.pk is None and account is not None and amount is not None:
            credit = payment_services.account_credit(account=account)
            if amount > credit:
                self.add_error(
                    "amount", f"The account holds {credit} {account.network.currency} of credit."
                )
        return data


@admin.register(Refund)
class RefundAdmin(RecordedByServiceAdmin):
    """Credit paid back to a customer; added through ``refund_record`` (which takes it
    from credit notes, then unallocated payments), never changed afterwards."""

    form = RefundForm
    list_display = ["paid_on", "account", "amount", "currency", "reference"]
    list_filter = ["paid_on"]
    search_fields = ["^account__number", "reference"]
    fields = ["account", "amount", "paid_on", "reference"]
    inlines = [RefundPartInline]

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def has_delete_permission(self, request, obj=None):
        return False

    def record(self, request, obj, *, now, idempotency_key: str):
        return payment_services.refund_record(
            account=obj.account,
            amount=obj.amount,
            paid_on=obj.paid_on,
            reference=obj.reference,
            now=now,
            user=request.user,
            idempotency_key=idempotency_key,
        )


class PaymentForm(OnceSubmittedForm):
    class Meta:
        model = Payment
        fields = ["account", "amount", "received_on", "reference", "bank_transaction_id"]

    def clean(self):
        data = super().clean()
        account, amount = data.get("account"), data.get("amount")
        if self.instance.pk is None and account is not None and amount is not None:
            try:  # the service's rule: 0.40 ISK is nothing once rounded
                payment_services.payment_amount_check(
                    amount=amount, currency=account.network.currency
                )
            except DomainError as exc:
                self.add_error("amount", exc.message)
        refuse_dates_out_of_range(self, "received_on")
        return data


@admin.register(Payment)
class PaymentAdmin(RecordedByServiceAdmin):
    form = PaymentForm
    list_display = [
        "received_on",
        "account",
        "amount",
        "currency",
        "reference",
        "source",
        "unallocated",
    ]
    list_filter = ["source", "received_on"]
    search_fields = ["^account__number", "reference", "bank_transaction_id"]
    # the bank's id, for a credit an import listed as unmatched: booked by hand, the
    # same statement imported again finds it instead of booking it twice
    fields = ["account", "amount", "received_on", "reference", "bank_transaction_id"]
    autocomplete_fields = []
    change_list_template = "billing/admin/payment_changelist.html"

    def record(self, request, obj, *, now, idempotency_key: str):
        return payment_services.payment_record(
            account=obj.account,
            amount=obj.amount,
            received_on=obj.received_on,
            reference=obj.reference,
            bank_transaction_id=obj.bank_transaction_id.strip(),
            now=now,
            user=request.user,
            idempotency_key=idempotency_key,
        )

    def get_urls(self):
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="billing_payment_import",
            ),
            *super().get_urls(),
        ]

    def import_view(self, request):
        if not self.has_add_permission(request):
            return redirect("admin:billing_payment_changelist")
        form = StatementImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                result = payment_services.payments_import_csv(
                    text=upload_text(upload_read(form.cleaned_data["file"])),
                    now=timezone.now(),
                    user=request.user,
                )
            except DomainError as exc:
                # the statement is refused whole: the form again, with every bad row
                for error in exc.errors[:100]:
                    where = " ".join(
                        part
                        for part in (f"row {error.row}" if error.row else "", error.field or "")
                        if part
                    )
                    form.add_error(None, f"{where}: {error.message}" if where else error.message)
                if not exc.errors or len(exc.errors) > 100:
                    form.add_error(None, exc.message)
            else:
                self.message_user(
                    request,
                    f"Imported {result.created} payment(s); {result.duplicates} already imported; "
                    f"{result.skipped} row(s) that are no customer payment skipped; "
                    f"{len(result.unmatched)} matching no account.",
                    messages.WARNING if result.unmatched else messages.SUCCESS,
                )
                for item in result.unmatched[:50]:
                    self.message_user(
                        request,
                        f"Row {item['row']}: {item['amount']} on {item['date']}, reference "
                        f"{item['reference']!r}, account {item['account'] or '—'}: no account or "
                        "invoice matches; record it by hand.",
                        messages.WARNING,
                    )
                return redirect("admin:billing_payment_changelist")
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Import bank statement",
            "opts": self.model._meta,
        }
        return render(request, "billing/admin/payment_import.html", context)


class InstalmentPlanningForm(forms.Form):
    network = forms.ModelChoiceField(queryset=Network.objects.all())
    year_start = forms.DateField(help_text="First day of the settlement year, e.g. 2027-01-01.")
    frequency = forms.ChoiceField(choices=InstalmentPlan.Frequency.choices)
    accounts = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Customer numbers, separated by spaces, commas or new lines. Empty: every "
        "account of the network with a contract in the year.",
    )

    def clean(self):
        cleaned = super().clean()
        numbers = cleaned.get("accounts", "").replace(",", " ").split()
        cleaned["account_ids"] = None
        if numbers and cleaned.get("network"):
            ids, unknown = account_ids_by_number(network_id=cleaned["network"].pk, numbers=numbers)
            if unknown:
                self.add_error(
                    "accounts",
                    f"Not an account of {cleaned['network'].code}: {', '.join(unknown[:50])}",
                )
            cleaned["account_ids"] = ids
        return cleaned


def _planning_report(modeladmin, request, planning: InstalmentPlanning) -> None:
    if planning.state == InstalmentPlanning.State.FAILED:
        modeladmin.message_user(request, planning.error, messages.ERROR)
    elif planning.state != InstalmentPlanning.State.DONE:
        modeladmin.message_user(
            request,
            f"{planning} is {planning.get_state_display().lower()} on the workers; "
            "this page shows its outcome when it is done.",
        )
    else:
        modeladmin.message_user(
            request,
            f"Planned {planning.created} account(s); {planning.existing} already "
            f"had a plan for the year; {len(planning.failures)} could not be planned.",
            messages.WARNING if planning.failures else messages.SUCCESS,
        )
        for failure in planning.failures[:20]:
            modeladmin.message_user(
                request, f"Account {failure['account']}: {failure['message']}", messages.WARNING
            )


@admin.register(InstalmentPlanning)
class InstalmentPlanningAdmin(ViewOnlyAdmin):
    """What staff asked to be planned and what each planning did (read-only; plannings
    are made with *Instalment plans → Add*)."""

    list_display = [
        "__str__",
        "network",
        "state",
        "created",
        "existing",
        "failure_count",
        "requested_by",
        "requested_at",
        "finished_at",
    ]
    list_filter = ["state", "network", "year_start"]
    readonly_fields = [
        "network",
        "year_start",
        "frequency",
        "state",
        "created",
        "existing",
        "failures_text",
        "error",
        "requested_by",
        "requested_at",
        "finished_at",
    ]
    exclude = ["account_ids", "failures"]

    @admin.display(description="could not be planned")
    def failure_count(self, planning):
        return len(planning.failures)

    @admin.display(description="Failures")
    def failures_text(self, planning):
        rows = ((f["account"], f["message"]) for f in planning.failures)
        return format_html_join("", "{}: {}<br>", rows) or "—"


@admin.register(InstalmentPlan)
class InstalmentPlanAdmin(IndexedSearchMixin, admin.ModelAdmin):
    """Plans are computed (last year's climate-corrected consumption), never typed in:
    "Add" opens the planning form for a network or a list of accounts."""

    list_display = ["account", "year_start", "frequency", "last_year_mwh", "estimated_mwh"]
    list_filter = ["frequency", "year_start", "account__network"]
    search_fields = ["^account__number"]
    readonly_fields = [*aconto.PLAN_FIELDS, "ended_on"]
    actions = ["final_settlement"]

    @admin.action(
        description="Final settlement now (accounts closed after their move-out)",
        permissions=["issue"],
    )
    def final_settlement(self, request, queryset):
        from billing import tasks

        for plan in queryset.select_related("account__network"):
            try:
                invoice = aconto.final_settlement_issue(plan=plan, now=timezone.now())
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                continue
            if invoice.number is None:
                self.message_user(
                    request,
                    f"Account {plan.account.number}: settlement drafted and held for review "
                    f"({invoice.hold_reason}).",
                    messages.WARNING,
                )
            else:
                tasks.invoices_render_pdfs.delay([invoice.pk])
                self.message_user(
                    request,
                    f"Account {plan.account.number}: final settlement {invoice.display_number} "
                    f"issued, {invoice.gross} {invoice.currency}.",
                )

    def has_issue_permission(self, request):
        return request.user.has_perm("billing.issue_invoice")

    def has_delete_permission(self, request, obj=None):
        # a plan the year's instalments or settlement were billed on is what settles
        # them: deleted, its instalments would never be credited
        if obj is not None and aconto.plan_billed(plan=obj):
            return False
        return super().has_delete_permission(request, obj)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            return redirect("admin:billing_instalmentplan_changelist")
        from billing import tasks

        form = InstalmentPlanningForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                planning = aconto.instalment_planning_request(
                    network=data["network"],
                    year_start=data["year_start"],
                    frequency=data["frequency"],
                    account_ids=data["account_ids"],
                    now=timezone.now(),
                    user=request.user,
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                tasks.instalment_planning_run.delay(planning.pk)
                planning.refresh_from_db()
                _planning_report(self, request, planning)
                if planning.state != InstalmentPlanning.State.DONE:
                    return redirect("admin:billing_instalmentplanning_change", planning.pk)
                return redirect(
                    reverse("admin:billing_instalmentplan_changelist")
                    + f"?year_start={data['year_start'].isoformat()}"
                )
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Plan on-account instalments",
            "opts": self.model._meta,
        }
        return render(request, "billing/admin/instalment_planning.html", context)


def _fee_invoice_link(fee_invoice: Invoice | None) -> str:
    if fee_invoice is None:
        return "—"
    url = reverse("admin:billing_invoice_change", args=[fee_invoice.pk])
    return format_html('<a href="{}">{}</a>', url, fee_invoice.display_number)


class DunningNoticeInline(admin.TabularInline):
    model = DunningNotice
    verbose_name_plural = "Invoices reminded of (notices)"
    extra = 0
    can_delete = False
    fields = ["invoice", "level", "title", "open_amount"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DunningLetter)
class DunningLetterAdmin(PdfDownloadAdmin):
    """Reminder letters sent by the daily dunning run (one per account and day), with the
    invoices each covers, its fee invoice and its PDF."""

    list_display = [
        "sent_on",
        "account",
        "level",
        "title",
        "open_amount",
        "fee",
        "fee_invoice_link",
        "pay_by",
        "pdf_link",
        "delivery_status",
    ]
    list_filter = ["level", "sent_on", DeliveryFilter, "account__network"]
    search_fields = ["^account__number", "account__customer__name"]
    date_hierarchy = "sent_on"
    list_select_related = ["account__customer", "fee_invoice"]
    inlines = [DunningNoticeInline]
    actions = ["render_letters", "email_documents", "mark_posted"]
    readonly_fields = [
        "account",
        "sent_on",
        "level",
        "title",
        "open_amount",
        "currency",
        "fee",
        "fee_invoice_link",
        "pay_by",
        "next_steps",
        "legacy",
        "pdf_link",
        "delivery_status",
        "emailed_at",
        "posted_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False  # letters come from the dunning run

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Fee invoice")
    def fee_invoice_link(self, letter: DunningLetter) -> str:
        return _fee_invoice_link(letter.fee_invoice)

    pdf_url_name = "billing_dunningletter_pdf"

    @admin.action(description="Render missing letters", permissions=["change"])
    def render_letters(self, request, queryset):
        tasks.dunning_letters_render_pdfs.delay(list(queryset.values_list("pk", flat=True)))
        self.message_user(request, "Letter rendering queued.")

    @admin.action(description="E-mail to the customer (not yet delivered)", permissions=["change"])
    def email_documents(self, request, queryset):
        tasks.dunning_letters_email.delay(list(queryset.values_list("pk", flat=True)))
        self.message_user(request, "E-mail queued for those not yet delivered.")

    @admin.action(description="Mark as printed and posted", permissions=["change"])
    def mark_posted(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        done = delivery.dunning_letters_mark_posted(letter_ids=ids, posted_at=timezone.now())
        self._delivery_report(
            request, done=done, selected=len(ids), what="Marked {n} letter(s) printed and posted"
        )


@admin.register(DunningNotice)
class DunningNoticeAdmin(IndexedSearchMixin, admin.ModelAdmin):
    """The levels each overdue invoice reached (its dunning history), with the letter each
    was sent in; fee invoices of notices sent before letters covered an account."""

    list_display = [
        "invoice",
        "account",
        "level",
        "title",
        "open_amount",
        "sent_on",
        "pay_by",
        "letter_link",
    ]
    list_filter = ["level", "sent_on", "invoice__network"]
    search_fields = ["^invoice__account__number", "invoice__account__customer__name"]
    date_hierarchy = "sent_on"
    # the account and the letter are named by their customer
    list_select_related = ["invoice__account__customer", "letter__account__customer", "fee_invoice"]
    actions = ["render_letters"]
    readonly_fields = [
        "invoice",
        "account",
        "level",
        "title",
        "open_amount",
        "sent_on",
        "pay_by",
        "next_steps",
        "letter_link",
        "fee",
        "fee_invoice_link",
    ]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False  # notices come from the dunning run

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Account")
    def account(self, notice: DunningNotice):
        return notice.invoice.account

    @admin.display(description="Letter")
    def letter_link(self, notice: DunningNotice) -> str:
        if notice.letter_id is None:
            return "—"
        url = reverse("admin:billing_dunningletter_change", args=[notice.letter_id])
        return format_html('<a href="{}">{}</a>', url, notice.letter)

    @admin.display(description="Fee invoice (before letters)")
    def fee_invoice_link(self, notice: DunningNotice) -> str:
        return _fee_invoice_link(notice.fee_invoice)

    @admin.action(description="Render missing letters", permissions=["change"])
    def render_letters(self, request, queryset):
        tasks.reminders_render_pdfs.delay(list(queryset.values_list("pk", flat=True)))
        self.message_user(request, "Letter rendering queued.")


@admin.register(RerateFailure)
class RerateFailureAdmin(IndexedSearchMixin, admin.ModelAdmin):
    """Issued bills of no run (final settlements, their corrections) that a late reading
    or a changed contract touched but that could not be re-rated: each says why, since
    when, and when it was last tried.  A run's bills show theirs among its exceptions."""

    list_display = [
        "invoice",
        "account",
        "code",
        "error",
        "created_at",
        "last_tried_at",
        "resolved",
    ]
    list_filter = ["resolved", "code", "invoice__network"]
    search_fields = ["^account__number", "account__customer__name"]
    list_select_related = ["invoice", "account__customer"]
    actions = ["resolve"]
    fields = readonly_fields = [
        "invoice",
        "account",
        "code",
        "error",
        "created_at",
        "last_tried_at",
        "resolved",
    ]

    def has_add_permission(self, request):
        return False  # recorded by the nightly re-rating

    def has_delete_permission(self, request, obj=None):
        return False  # a successful re-rating removes it

    @admin.action(description="Mark as dealt with by hand", permissions=["change"])
    def resolve(self, request, queryset):
        count = rerating_services.rerate_failures_resolve(ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} marked as dealt with.")


class CollectionActionForm(ActionForm):
    reason = forms.CharField(
        required=False,
        max_length=500,
        help_text="Withdraw: why (a dispute, an arrangement agreed with the customer, …).",
    )


class CollectionFeeInline(admin.TabularInline):
    model = CollectionFee
    verbose_name_plural = "Reminder fees handed over with it"
    extra = 0
    can_delete = False
    fields = ["fee_invoice", "open_amount"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(CollectionCase)
class CollectionCaseAdmin(IndexedSearchMixin, admin.ModelAdmin):
    """Invoices the daily dunning run handed over to debt collection after the final
    notice (``billing.services.collection``): mark them handed over to the agency,
    withdraw them with a reason, export them for the agency."""

    list_display = [
        "opened_on",
        "account",
        "invoice",
        "open_amount",
        "fee_amount",
        "currency",
        "state",
        "handed_over_at",
        "settled_on",
    ]
    list_filter = ["state", "account__network", "opened_on"]
    search_fields = ["^account__number", "account__customer__name"]
    date_hierarchy = "opened_on"
    list_select_related = ["account__customer", "invoice"]
    inlines = [CollectionFeeInline]
    action_form = CollectionActionForm
    actions = ["hand_over", "withdraw", "export_csv"]
    fields = readonly_fields = [
        "invoice",
        "account",
        "state",
        "currency",
        "open_amount",
        "fee_amount",
        "opened_on",
        "created_at",
        "handed_over_at",
        "settled_on",
        "closed_at",
        "note",
    ]

    def has_add_permission(self, request):
        return False  # cases come from the dunning run

    def has_delete_permission(self, request, obj=None):
        return False

    # the actions' custom verbs (Meta.permissions)
    def has_hand_over_permission(self, request):
        return request.user.has_perm("billing.hand_over_collectioncase")

    def has_withdraw_permission(self, request):
        return request.user.has_perm("billing.withdraw_collectioncase")

    @admin.action(description="Mark handed over to the agency", permissions=["hand_over"])
    def hand_over(self, request, queryset):
        now = timezone.now()
        _report(
            self,
            request,
            lambda case: collection.collection_case_hand_over(
                case=case, user=request.user, now=now
            ),
            queryset,
            "Marked {n} case(s) handed over.",
        )

    @admin.action(description="Withdraw (give the reason)", permissions=["withdraw"])
    def withdraw(self, request, queryset):
        reason = request.POST.get("reason", "").strip()
        if not reason:
            self.message_user(request, "A withdrawal needs a reason.", messages.ERROR)
            return
        now = timezone.now()
        _report(
            self,
            request,
            lambda case: collection.collection_case_withdraw(
                case=case, reason=reason, user=request.user, now=now
            ),
            queryset,
            "Withdrew {n} case(s).",
        )

    @admin.action(description="Export for the collection agency (CSV)", permissions=["view"])
    def export_csv(self, request, queryset):
        from billing.selectors import collection_cases_csv

        response = StreamingHttpResponse(
            collection_cases_csv(cases=queryset.order_by("opened_on", "pk")),
            content_type="text/csv",
        )
        response["Content-Disposition"] = 'attachment; filename="collection-cases.csv"'
        return response
