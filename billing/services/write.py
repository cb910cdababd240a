"""Writing drafts in bulk: COPY on PostgreSQL, ``bulk_create`` elsewhere.

Invoice ids are drawn from the table's sequence in one statement so that lines can be
written in the same COPY pass without a round trip per invoice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal

from django.db import connection

from billing.calc import BillDraft
from billing.models import Invoice, InvoiceLine

INVOICE_COLUMNS = [
    "id",
    "account_id",
    "network_id",
    "run_id",
    "kind",
    "state",
    "period_start",
    "period_end",
    "held",
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
    "original_id",
    "has_estimated_reads",
    "tariff_version_ids",
    "readings",
    "determinants",
    "comparison",
    "pdf",
    "created_at",
]
LINE_COLUMNS = [
    "invoice_id",
    "position",
    "connection_id",
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


def _invoice_values(
    draft: BillDraft,
    *,
    network_id: int,
    run_id: int | None,
    kind: str,
    now: dt.datetime,
    original_id: int | None,
) -> dict:
    return {
        "account_id": draft.account_id,
        "network_id": network_id,
        "run_id": run_id,
        "kind": kind,
        "state": Invoice.State.DRAFT,
        "period_start": draft.period_start,
        "period_end": draft.period_end,
        "held": draft.held,
        "hold_reason": "; ".join(draft.hold_reasons),
        "series": "",
        "number": None,
        "issued_at": None,
        "due_on": None,
        "currency": draft.currency,
        "net": draft.net,
        "vat": draft.vat,
        "gross": draft.gross,
        "paid": 0,
        "original_id": original_id,
        "has_estimated_reads": draft.has_estimated_reads,
        "tariff_version_ids": draft.tariff_version_ids,
        "readings": draft.readings,
        "determinants": {"segments": draft.determinants, "vat": draft.vat_breakdown},
        "comparison": draft.comparison,
        "pdf": "",
        "created_at": now,
    }


def _line_values(invoice_id: int, position: int, line) -> tuple:
    return (
        invoice_id,
        position,
        line.connection_id,
        line.period_start,
        line.period_end,
        line.tariff_version_id,
        line.component,
        line.kind,
        line.description,
        line.explanation,
        line.quantity,
        line.unit,
        line.unit_price,
        line.amount,
        line.vat_rate,
    )


def drafts_write(
    *,
    drafts: Sequence[BillDraft],
    network_id: int,
    run_id: int | None,
    kind: str,
    now: dt.datetime,
    original_ids: Sequence[int | None] | None = None,
    issued: Sequence[tuple[str, int, dt.datetime, dt.date] | None] | None = None,
) -> list[int]:
    """Insert the drafts and their lines; returns the new invoice ids in order.

    ``issued`` (series, number, issued_at, due_on) per draft writes it issued at once;
    the caller holds the series counter lock in the same transaction (gapless numbers).
    """
    if not drafts:
        return []
    originals = list(original_ids) if original_ids is not None else [None] * len(drafts)
    values = [
        _invoice_values(d, network_id=network_id, run_id=run_id, kind=kind, now=now, original_id=o)
        for d, o in zip(drafts, originals, strict=True)
    ]
    if issued is not None:
        for v, issue in zip(values, issued, strict=True):
            if issue is not None:
                v["series"], v["number"], v["issued_at"], v["due_on"] = issue
                v["state"] = Invoice.State.ISSUED
    if connection.vendor == "postgresql":
        return _copy_write(drafts, values)
    invoices = Invoice.objects.bulk_create([Invoice(**v) for v in values])
    ids = [inv.pk for inv in invoices]
    lines = [
        InvoiceLine(**dict(zip(LINE_COLUMNS, _line_values(inv_id, pos, line), strict=True)))
        for inv_id, draft in zip(ids, drafts, strict=True)
        for pos, line in enumerate(draft.lines, start=1)
    ]
    InvoiceLine.objects.bulk_create(lines, batch_size=2000)
    return ids


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _esc(text: str) -> str:
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_ESCAPES)
    return text


def _text(value) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return _esc(str(value))


def _line_text(invoice_id: int, position: int, line) -> str:
    """A line row in COPY text format, column order of ``LINE_COLUMNS`` (hot path)."""
    n = "\\N"
    return (
        f"{invoice_id}\t{position}\t{n if line.connection_id is None else line.connection_id}\t"
        f"{n if line.period_start is None else line.period_start.isoformat()}\t"
        f"{n if line.period_end is None else line.period_end.isoformat()}\t"
        f"{n if line.tariff_version_id is None else line.tariff_version_id}\t"
        f"{_esc(line.component)}\t{_esc(line.kind)}\t{_esc(line.description)}\t"
        f"{_esc(line.explanation)}\t{line.quantity}\t{_esc(line.unit)}\t{line.unit_price}\t"
        f"{line.amount}\t{line.vat_rate}"
    )


def _copy_write(drafts: Sequence[BillDraft], values: list[dict]) -> list[int]:
    """COPY in text format, built as one buffer per table (no per-value adapter calls)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('billing_invoice', 'id')) "
            "FROM generate_series(1, %s)",
            [len(values)],
        )
        ids = [row[0] for row in cursor.fetchall()]
        json_columns = {"tariff_version_ids", "readings", "determinants", "comparison"}
        out = []
        for inv_id, v in zip(ids, values, strict=True):
            row = [str(inv_id)]
            for column in INVOICE_COLUMNS[1:]:
                value = v[column]
                if column in json_columns:
                    value = json.dumps(value, separators=(",", ":"))
                row.append(_text(value))
            out.append("\t".join(row))
        lines_out = [
            _line_text(inv_id, pos, line)
            for inv_id, draft in zip(ids, drafts, strict=True)
            for pos, line in enumerate(draft.lines, start=1)
        ]
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with connection.wrap_database_errors:  # psycopg errors as django.db errors
            _copy_rows(raw, lines_out, out)
    return ids


def _copy_rows(raw, lines_out: list[str], out: list[str]) -> None:
    # Lines first: foreign keys are checked at commit, and the trigger that refuses lines
    # on issued invoices must not see this transaction's (auto-)issued ones.
    if lines_out:
        with raw.copy(f"COPY billing_invoiceline ({', '.join(LINE_COLUMNS)}) FROM STDIN") as copy:
            copy.write("\n".join(lines_out) + "\n")
    with raw.copy(f"COPY billing_invoice ({', '.join(INVOICE_COLUMNS)}) FROM STDIN") as copy:
        copy.write("\n".join(out) + "\n")
