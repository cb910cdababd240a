"""Billing reads: progress, balances, CSV exports of invoices, accounting journal lines and
the collection cases to hand to the collection agency."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Prefetch, Q

from billing.models import (
    BillingRun,
    CollectionCase,
    CollectionFee,
    DunningLetter,
    DunningNotice,
    Invoice,
    InvoiceLine,
    Payment,
    Refund,
)
from customers.models import Network
from heatutility.csvcells import csv_stream
from heatutility.money import MONEY_ROUNDING
from heatutility.timeutil import local_period_bounds

TWO_PLACES = Decimal("0.01")  # exports write every amount with two places

ZERO = Decimal("0")

DEFAULT_LEDGER = {
    "receivables": "1100",
    "bank": "1000",
    "vat": "2610",
    # on-account instalments are billed before the heat is delivered: customer
    # prepayments (a liability) until the settlement bills the year's consumption
    "prepayments": "2400",
    "revenue": {
        "default": "3000",
        "energy": "3010",
        "volume": "3020",
        "cooling": "3030",
        # dunning fees are no sale of heat: an income account of their own
        "reminder_fee": "3900",
    },
}


def months_in_this_weather(
    *, network_id: int, months: list[tuple[dt.date, Decimal | None]]
) -> dict[dt.date, Decimal]:
    """For (month, same month last year in MWh) pairs: last year's figure climate-corrected
    to this month's weather (EED Annex IX), where both months' degree days are complete."""
    from billing import conf
    from billing.calc import climate_corrected
    from heatutility.timeutil import add_months
    from metering.selectors import degree_days_by_month

    known = [month for month, last in months if last is not None]
    degree_days = degree_days_by_month(
        network_id=network_id, months=known + [add_months(m, -12) for m in known]
    )
    share = conf.heating_share()
    corrected = {}
    for month, last in months:
        this, before = degree_days.get(month), degree_days.get(add_months(month, -12))
        if last is not None and this and before:
            corrected[month] = climate_corrected(
                consumption=last, heating_share=share, dd_normal=this, dd_actual=before
            ).quantize(Decimal("0.001"))
    return corrected


def ledger() -> dict:
    """The ledger accounts: ``BILLING["LEDGER"]`` over the defaults, key by key, also
    inside ``revenue`` (a setting that maps only ``energy`` keeps ``default`` and
    ``reminder_fee``: without them a journal export broke off in the middle)."""
    configured = getattr(settings, "BILLING", {}).get("LEDGER", {})
    accounts = {**DEFAULT_LEDGER, **configured}
    accounts["revenue"] = {**DEFAULT_LEDGER["revenue"], **configured.get("revenue", {})}
    return accounts


def run_progress(*, run: BillingRun) -> dict:
    return {
        "state": run.state,
        "total": run.total,
        "done": run.done,
        "held": run.held,
        "failed": run.failed,
        "issued": run.issued,
        "percent": run.progress_percent,
    }


def run_exceptions(*, run: BillingRun, resolved: bool | None = None, code: str | None = None):
    """The run's exceptions in account order, open or resolved ones alone, one code alone."""
    rows = run.exceptions.order_by("account_id", "id")
    if resolved is not None:
        rows = rows.filter(resolved=resolved)
    if code:
        rows = rows.filter(code=code)
    return rows


def issued_invoices(*, network_id: int | None, start: dt.date, end: dt.date):
    """Invoices issued on the local dates ``[start, end)`` of their network's time zone
    (an invoice issued at 00:30 on 1 January in Copenhagen belongs to January, not to
    the 31 December it still is in UTC)."""
    networks = (
        Network.objects.all() if network_id is None else Network.objects.filter(pk=network_id)
    )
    issued_in_range = Q(pk__in=[])
    for pk, zone in networks.values_list("pk", "time_zone"):
        since, until = local_period_bounds(start, end, zone)
        issued_in_range |= Q(network_id=pk, issued_at__gte=since, issued_at__lt=until)
    qs = Invoice.objects.filter(issued_in_range, number__isnull=False).select_related(
        "account__customer", "original", "network"
    )
    return qs.order_by("series", "number")


def issued_on(invoice: Invoice) -> str:
    """The local date an invoice was issued on, in its network's time zone (ISO)."""
    return invoice.issued_at.astimezone(ZoneInfo(invoice.network.time_zone)).date().isoformat()


# invoices read (and their lines held) at a time by the exports
EXPORT_CHUNK_SIZE = 2000

INVOICE_EXPORT_COLUMNS = [
    "number",
    "kind",
    "state",
    "issued_on",
    "due_on",
    "account",
    "customer",
    "period_start",
    "period_end",
    "currency",
    "net",
    "vat",
    "gross",
    "paid",
    "original",
    "estimated_reads",
]


def invoices_csv(*, network_id: int | None, start: dt.date, end: dt.date) -> Iterator[str]:
    """CSV of issued invoices, one row each (streamed)."""
    invoices = issued_invoices(network_id=network_id, start=start, end=end)
    return csv_stream(
        INVOICE_EXPORT_COLUMNS,
        (_invoice_row(inv) for inv in invoices.iterator(chunk_size=EXPORT_CHUNK_SIZE)),
    )


def _invoice_row(inv: Invoice) -> list:
    return [
        inv.display_number,
        inv.kind,
        inv.state,
        issued_on(inv),
        inv.due_on.isoformat() if inv.due_on else "",
        inv.account.number,
        inv.account.customer.name,
        inv.period_start.isoformat(),
        inv.period_end.isoformat(),
        inv.currency,
        inv.net,
        inv.vat,
        inv.gross,
        inv.paid,
        inv.original.display_number if inv.original else "",
        "yes" if inv.has_estimated_reads else "no",
    ]


JOURNAL_COLUMNS = [
    "date",
    "document",
    "ledger_account",
    "customer_account",
    "text",
    "debit",
    "credit",
    "currency",
]


def journal_rows(*, network_id: int | None, start: dt.date, end: dt.date) -> Iterator[list]:
    """Double-entry journal lines for invoices (revenue per component, VAT per rate),
    payments and refunds.

    An invoice debits receivables with its gross and credits revenue per line and VAT per
    rate; a credit note does the reverse (negative amounts swap sides).  Every document's
    debits equal its credits.

    On-account lines book to prepayments, not revenue (accrual): an instalment credits
    prepayments with its net, and the settlement's line crediting the instalments (a
    negative amount) debits them, while its consumption lines are the year's revenue.
    Over a settled year the prepayments net to zero.  VAT is booked as invoiced.
    """
    accounts = ledger()
    revenue = accounts["revenue"]

    def line_account(line: InvoiceLine) -> str:
        if line.kind == "on_account":  # billing.services.aconto: instalments, their credit
            return accounts["prepayments"]
        return revenue.get(line.kind, revenue["default"])

    def side(amount: Decimal) -> tuple[Decimal | str, Decimal | str]:
        return (amount, "") if amount >= 0 else ("", -amount)

    def invoices_with_lines() -> Iterator[tuple[Invoice, list]]:
        """The issued invoices with their lines, read a chunk of invoices at a time (a
        large export never holds every invoice and line in memory)."""
        chunk: list[Invoice] = []
        invoices = issued_invoices(network_id=network_id, start=start, end=end)
        for inv in invoices.iterator(chunk_size=EXPORT_CHUNK_SIZE):
            chunk.append(inv)
            if len(chunk) >= EXPORT_CHUNK_SIZE:
                yield from with_lines(chunk)
                chunk = []
        if chunk:
            yield from with_lines(chunk)

    def with_lines(chunk: list[Invoice]) -> Iterator[tuple[Invoice, list]]:
        lines_by_invoice: dict[int, list] = {}
        for line in InvoiceLine.objects.filter(invoice_id__in=[i.pk for i in chunk]).order_by(
            "invoice_id", "position"
        ):
            lines_by_invoice.setdefault(line.invoice_id, []).append(line)
        for inv in chunk:
            yield inv, lines_by_invoice.get(inv.pk, [])

    for inv, inv_lines in invoices_with_lines():
        day = issued_on(inv)
        doc = inv.display_number
        debit, credit = side(inv.gross)
        yield [
            day,
            doc,
            accounts["receivables"],
            inv.account.number,
            inv.get_kind_display(),
            debit,
            credit,
            inv.currency,
        ]
        for line in inv_lines:
            credit, debit = side(line.amount)
            yield [
                day,
                doc,
                line_account(line),
                inv.account.number,
                line.description,
                debit,
                credit,
                inv.currency,
            ]
        for vat in inv.determinants.get("vat", []):
            # as recorded on the bill, in the currency's minor unit ("272" in ISK):
            # written with two places like every other amount of the export
            amount = Decimal(vat["vat"]).quantize(TWO_PLACES, rounding=MONEY_ROUNDING)
            if amount:
                credit, debit = side(amount)
                yield [
                    day,
                    doc,
                    accounts["vat"],
                    inv.account.number,
                    f"VAT {vat['rate']}",
                    debit,
                    credit,
                    inv.currency,
                ]
    payments = Payment.objects.filter(received_on__gte=start, received_on__lt=end).select_related(
        "account"
    )
    if network_id:
        payments = payments.filter(account__network_id=network_id)
    for p in payments.order_by("received_on", "id"):
        doc = f"PAY-{p.pk}"
        yield [
            p.received_on.isoformat(),
            doc,
            accounts["bank"],
            p.account.number,
            f"Payment {p.reference}".strip(),
            p.amount,
            "",
            p.currency,
        ]
        yield [
            p.received_on.isoformat(),
            doc,
            accounts["receivables"],
            p.account.number,
            f"Payment {p.reference}".strip(),
            "",
            p.amount,
            p.currency,
        ]
    # a refund pays credit back: the customer's (negative) receivable is debited, the bank
    # credited
    refunds = Refund.objects.filter(paid_on__gte=start, paid_on__lt=end).select_related("account")
    if network_id:
        refunds = refunds.filter(account__network_id=network_id)
    for r in refunds.order_by("paid_on", "id"):
        doc = f"REF-{r.pk}"
        text = f"Refund {r.reference}".strip()
        day = r.paid_on.isoformat()
        yield [day, doc, accounts["receivables"], r.account.number, text, r.amount, "", r.currency]
        yield [day, doc, accounts["bank"], r.account.number, text, "", r.amount, r.currency]


def journal_csv(*, network_id: int | None, start: dt.date, end: dt.date) -> Iterator[str]:
    return csv_stream(JOURNAL_COLUMNS, journal_rows(network_id=network_id, start=start, end=end))


COLLECTION_EXPORT_COLUMNS = [
    "account",
    "customer",
    "address",
    "invoice",
    "due_on",
    "currency",
    "principal_open",
    "fees_open",
    "amount_open",
    "opened_on",
    "letters",
]


def collection_cases(*, network_id: int | None = None, states=(CollectionCase.State.OPEN,)):
    """The collection cases in ``states`` (default: open, still to hand over), oldest
    first."""
    cases = CollectionCase.objects.filter(state__in=list(states))
    if network_id is not None:
        cases = cases.filter(account__network_id=network_id)
    return cases.order_by("opened_on", "pk")


def collection_cases_csv(
    *, network_id: int | None = None, cases=None, states=(CollectionCase.State.OPEN,)
) -> Iterator[str]:
    """CSV for the collection agency, one row per case (streamed, a chunk of cases at a
    time): the customer and where to find them, the invoice and its due date, what is
    open now on the invoice and on the reminder fees handed over with it (a payment
    since the handover lowers it), and the reminder letters sent for its claim with their
    dates.  ``cases``: these cases (the admin's selection) instead of ``states``."""
    if cases is None:
        cases = collection_cases(network_id=network_id, states=states)
    queryset = cases.select_related("account__customer", "invoice").prefetch_related(
        "invoice__dunning_notices"
    )

    def rows() -> Iterator[list]:
        chunk: list[CollectionCase] = []
        for case in queryset.iterator(chunk_size=EXPORT_CHUNK_SIZE):
            chunk.append(case)
            if len(chunk) >= EXPORT_CHUNK_SIZE:
                yield from _collection_rows(chunk)
                chunk = []
        yield from _collection_rows(chunk)

    return csv_stream(COLLECTION_EXPORT_COLUMNS, rows())


def _collection_rows(chunk: list[CollectionCase]) -> Iterator[list]:
    """The export's rows of a chunk of cases (their fees in one query)."""
    from billing.services.dunning import claim_history

    fees: dict[int, Decimal] = {}
    for case_id, gross, paid in CollectionFee.objects.filter(
        case_id__in=[c.pk for c in chunk]
    ).values_list("case_id", "fee_invoice__gross", "fee_invoice__paid"):
        fees[case_id] = fees.get(case_id, ZERO) + gross - paid
    for case in chunk:
        account, invoice = case.account, case.invoice
        notices = sorted(claim_history(invoice).notices, key=lambda n: (n.sent_on, n.level))
        principal = invoice.gross - invoice.paid
        fee = fees.get(case.pk, ZERO)
        yield [
            account.number,
            account.billing_name or account.customer.name,
            f"{account.billing_street}, {account.billing_postal_code} "
            f"{account.billing_city}, {account.billing_country}",
            invoice.display_number,
            invoice.due_on.isoformat() if invoice.due_on else "",
            case.currency,
            principal,
            fee,
            principal + fee,
            case.opened_on.isoformat(),
            "; ".join(f"{n.sent_on.isoformat()} {n.title}" for n in notices),
        ]


def invoices_for_accounts(*, account_ids: list[int]) -> list[Invoice]:
    """Issued invoices and credit notes of ``account_ids``, newest first (customer portal).

    Drafts and held bills are internal and never shown to customers.
    """
    return list(
        Invoice.objects.filter(account_id__in=account_ids, number__isnull=False)
        .only(
            "id",
            "account_id",
            "kind",
            "state",
            "series",
            "number",
            "period_start",
            "period_end",
            "issued_at",
            "due_on",
            "currency",
            "gross",
            "paid",
            "pdf",
        )
        .order_by("-issued_at", "-number")
    )


def invoice_for_accounts(*, invoice_id: int, account_ids: list[int]) -> Invoice | None:
    """One issued invoice, only if it belongs to one of ``account_ids``."""
    return Invoice.objects.filter(
        pk=invoice_id, account_id__in=account_ids, number__isnull=False
    ).first()


def letters_for_accounts(*, account_ids: list[int]) -> list[DunningLetter]:
    """The dunning letters sent to ``account_ids``, newest first, each with the notices
    (invoices and levels) it covers (portal)."""
    return list(
        DunningLetter.objects.filter(account_id__in=account_ids)
        .select_related("account", "fee_invoice")
        .prefetch_related(
            Prefetch(
                "notices",
                queryset=DunningNotice.objects.select_related("invoice").order_by(
                    "invoice__due_on", "invoice__number"
                ),
            )
        )
        .order_by("-sent_on", "-level", "-pk")
    )


def letter_for_accounts(*, letter_id: int, account_ids: list[int]) -> DunningLetter | None:
    """One dunning letter, only if it was sent to one of ``account_ids``."""
    return (
        DunningLetter.objects.filter(pk=letter_id, account_id__in=account_ids)
        .select_related("account")
        .first()
    )


def letter_of_notice_for_accounts(
    *, notice_id: int, account_ids: list[int]
) -> DunningLetter | None:
    """The letter a dunning notice was sent in, only if it went to one of ``account_ids``
    (the portal's address of a reminder before letters covered an account)."""
    return (
        DunningLetter.objects.filter(notices__pk=notice_id, account_id__in=account_ids)
        .select_related("account")
        .first()
    )


def plan_in_force(*, account_id: int, on: dt.date):
    """The account's on-account plan whose settlement year contains ``on``, or None."""
    from billing.models import InstalmentPlan

    return (
        InstalmentPlan.objects.in_force(on)
        .filter(account_id=account_id)
        .order_by("-year_start")
        .first()
    )


def account_money(*, account, limit: int = 24) -> dict:
    """What the customer portal shows of an account's money: the balance (> 0 owed),
    the credit it holds, and its latest payments and refunds (newest first)."""
    from billing.services.payments import account_balance, account_credit

    return {
        "balance": account_balance(account=account),
        "credit": account_credit(account=account),
        "currency": account.network.currency,
        "payments": list(
            Payment.objects.filter(account=account)
            .only("id", "amount", "currency", "received_on", "reference")
            .order_by("-received_on", "-id")[:limit]
        ),
        "refunds": list(
            Refund.objects.filter(account=account)
            .only("id", "amount", "currency", "paid_on", "reference")
            .order_by("-paid_on", "-id")[:limit]
        ),
    }
