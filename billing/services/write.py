"""Writing drafts in bulk: COPY on PostgreSQL, ``bulk_create`` elsewhere.

Invoice ids are drawn from the table's sequence in one statement so that lines can be
written in the same COPY pass without a round trip per invoice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import connection

from billing.calc import BillDraft
from billing.models import Invoice, InvoiceLine
from billing.services.render import Caches, Rendered, render_draft
from heatutility.db import copy_escape as esc
from heatutility.db import copy_write

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
    if connection.vendor == "postgresql":
        prepared = copy_prepare(
            drafts=drafts,
            network_id=network_id,
            run_id=run_id,
            kind=kind,
            now=now,
            original_ids=originals,
            issue=None if issued is None else [i and (i[0], i[2], i[3]) for i in issued],
        )
        prepared.copy_lines()
        prepared.copy_invoices(numbers=None if issued is None else [i and i[1] for i in issued])
        return prepared.ids
    values = [
        _invoice_values(d, network_id=network_id, run_id=run_id, kind=kind, now=now, original_id=o)
        for d, o in zip(drafts, originals, strict=True)
    ]
    if issued is not None:
        for v, issue in zip(values, issued, strict=True):
            if issue is not None:
                v["series"], v["number"], v["issued_at"], v["due_on"] = issue
                v["state"] = Invoice.State.ISSUED
    invoices = Invoice.objects.bulk_create([Invoice(**v) for v in values])
    ids = [inv.pk for inv in invoices]
    lines = [
        InvoiceLine(**dict(zip(LINE_COLUMNS, _line_values(inv_id, pos, line), strict=True)))
        for inv_id, draft in zip(ids, drafts, strict=True)
        for pos, line in enumerate(draft.lines, start=1)
    ]
    InvoiceLine.objects.bulk_create(lines, batch_size=2000)
    return ids


class CopyWrite:
    """Drafts turned into COPY text up front, written in two steps (PostgreSQL).

    Everything that costs CPU (ids from the sequence, every row's text) is done by
    :func:`copy_prepare` *before* the caller takes the invoice-series lock; under the
    lock only the numbers are filled in (``head + number + tail`` per invoice row) and
    the invoices are copied.  Lines go first (:meth:`copy_lines`): they need no numbers,
    foreign keys are checked at commit, and the trigger refusing lines on issued
    invoices must not see this transaction's issued ones.
    """

    def __init__(self, ids: list[int], heads: list[str], tails: list[str], lines: list[str]):
        self.ids = ids
        self._heads = heads
        self._tails = tails
        self._lines = lines

    def copy_lines(self) -> None:
        if self._lines:
            _copy(f"COPY billing_invoiceline ({', '.join(LINE_COLUMNS)}) FROM STDIN", self._lines)

    def copy_invoices(self, *, numbers: Sequence[int | None] | None = None) -> None:
        if numbers is None:
            rows = [h + "\\N" + t for h, t in zip(self._heads, self._tails, strict=True)]
        else:
            rows = [
                h + ("\\N" if n is None else str(n)) + t
                for h, t, n in zip(self._heads, self._tails, numbers, strict=True)
            ]
        _copy(f"COPY billing_invoice ({', '.join(INVOICE_COLUMNS)}) FROM STDIN", rows)


def copy_prepare(
    *,
    drafts: Sequence[BillDraft | Rendered],
    network_id: int,
    run_id: int | None,
    kind: str,
    now: dt.datetime,
    original_ids: Sequence[int | None] | None = None,
    issue: Sequence[tuple[str, dt.datetime, dt.date] | None] | None = None,
) -> CopyWrite:
    """Ids and COPY text for ``drafts`` (PostgreSQL); ``issue`` (series, issued_at,
    due_on) per draft marks the ones written issued; their numbers come later."""
    with connection.cursor() as cursor:
        # the sequence looked up once (an InitPlan), not once per id: per row the
        # catalogue lookup made 2,500 ids cost 17-19 ms instead of 2-3 ms
        cursor.execute(
            "SELECT nextval((SELECT pg_get_serial_sequence('billing_invoice', 'id'))::regclass) "
            "FROM generate_series(1, %s)",
            [len(drafts)],
        )
        ids = [row[0] for row in cursor.fetchall()]
    n = "\\N"
    common = f"\t{network_id}\t{n if run_id is None else run_id}\t{esc(str(kind))}\t"
    created = now.isoformat()
    draft_mid = f"{Invoice.State.DRAFT.value}\t"
    draft_tail_head = f"\t{n}\t{n}\t"
    issued_state = f"{Invoice.State.ISSUED.value}\t"
    heads: list[str] = []
    tails: list[str] = []
    lines: list[str] = []
    originals = original_ids if original_ids is not None else [None] * len(drafts)
    issues = issue if issue is not None else [None] * len(drafts)
    cache = Caches()
    for inv_id, d, original, iss in zip(ids, drafts, originals, issues, strict=True):
        r = d if type(d) is Rendered else render_draft(d, cache)
        if iss is None:
            state, series, mid = draft_mid, "", draft_tail_head
        else:
            series, issued_at, due_on = iss
            state = issued_state
            mid = f"\t{issued_at.isoformat()}\t{due_on.isoformat()}\t"
            series = esc(series)
        heads.append(
            f"{inv_id}\t{r.account_id}{common}{state}{r.period}\t"
            f"{'t' if r.held else 'f'}\t{r.hold}\t{series}\t"
        )
        tails.append(f"{mid}{r.body}{n if original is None else original}{r.rest}{created}")
        lines.extend(f"{inv_id}\t{pos}\t{text}" for pos, text in enumerate(r.lines, start=1))
    return CopyWrite(ids, heads, tails, lines)


def _copy(sql: str, rows: list[str]) -> None:
    copy_write(sql, "\n".join(rows) + "\n")
