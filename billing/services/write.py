"""Writing drafts in bulk: COPY on PostgreSQL, ``bulk_create`` elsewhere.

Invoice ids are drawn from the table's sequence in one statement so that lines can be
written in the same COPY pass without a round trip per invoice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

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


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _esc(text: str) -> str:
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_ESCAPES)
    return text


_JSON = json.JSONEncoder(separators=(",", ":"))  # same bytes as json.dumps(..., separators)
try:  # the C encoder made once, not per call (JSONEncoder.encode builds one each time)
    from json.encoder import c_make_encoder, encode_basestring_ascii

    _C_JSON = c_make_encoder(
        None, None, encode_basestring_ascii, None, ":", ",", False, False, True
    )
except ImportError:  # pragma: no cover - pure-Python json
    _C_JSON = None


def _json(value) -> str:
    """Compact JSON (same text as ``json.dumps(value, separators=(",", ":"))``), COPY-escaped.

    Only plain lists/dicts of str/int/None/bool go through the shared C encoder (no
    cycle check needed: the drafts' JSON is built fresh from values); anything else
    takes the standard encoder."""
    if _C_JSON is not None:
        try:
            return _esc("".join(_C_JSON(value, 0)))
        except TypeError:
            pass
    return _esc(_JSON.encode(value))


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
    drafts: Sequence[BillDraft],
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
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('billing_invoice', 'id')) "
            "FROM generate_series(1, %s)",
            [len(drafts)],
        )
        ids = [row[0] for row in cursor.fetchall()]
    n = "\\N"
    common = f"\t{network_id}\t{n if run_id is None else run_id}\t{_esc(str(kind))}\t"
    created = now.isoformat()
    draft_mid = f"{Invoice.State.DRAFT.value}\t"
    draft_tail_head = f"\t{n}\t{n}\t"
    issued_state = f"{Invoice.State.ISSUED.value}\t"
    iso: dict[dt.date, str] = {}
    heads: list[str] = []
    tails: list[str] = []
    originals = original_ids if original_ids is not None else [None] * len(drafts)
    issues = issue if issue is not None else [None] * len(drafts)
    for inv_id, d, original, iss in zip(ids, drafts, originals, issues, strict=True):
        ps = iso.get(d.period_start)
        if ps is None:
            ps = iso[d.period_start] = d.period_start.isoformat()
        pe = iso.get(d.period_end)
        if pe is None:
            pe = iso[d.period_end] = d.period_end.isoformat()
        if iss is None:
            state, series, mid = draft_mid, "", draft_tail_head
        else:
            series, issued_at, due_on = iss
            state = issued_state
            mid = f"\t{issued_at.isoformat()}\t{due_on.isoformat()}\t"
            series = _esc(series)
        hold = _esc("; ".join(d.hold_reasons)) if d.hold_reasons else ""
        heads.append(
            f"{inv_id}\t{d.account_id}{common}{state}{ps}\t{pe}\t"
            f"{'t' if d.held else 'f'}\t{hold}\t{series}\t"
        )
        tails.append(
            f"{mid}{_esc(d.currency)}\t{d.net}\t{d.vat}\t{d.gross}\t0\t"
            f"{n if original is None else original}\t{'t' if d.has_estimated_reads else 'f'}\t"
            f"{_json(d.tariff_version_ids)}\t{_json(d.readings)}\t"
            f"{_json({'segments': d.determinants, 'vat': d.vat_breakdown})}\t"
            f"{_json(d.comparison)}\t\t{created}"
        )
    return CopyWrite(ids, heads, tails, _lines_text(ids, drafts, iso))


def _lines_text(ids: list[int], drafts: Sequence[BillDraft], iso: dict) -> list[str]:
    """Line rows in COPY text format, column order of ``LINE_COLUMNS`` (hot path: the
    texts that repeat from bill to bill are escaped once)."""
    n = "\\N"
    esc: dict[str, str] = {}
    out = []
    append = out.append
    for inv_id, draft in zip(ids, drafts, strict=True):
        for pos, line in enumerate(draft.lines, start=1):
            ps, pe = line.period_start, line.period_end
            ps = n if ps is None else (iso.get(ps) or iso.setdefault(ps, ps.isoformat()))
            pe = n if pe is None else (iso.get(pe) or iso.setdefault(pe, pe.isoformat()))
            head = (line.component, line.kind, line.description)
            fixed = esc.get(head)
            if fixed is None:
                fixed = esc[head] = "\t".join(_esc(t) for t in head)
            unit = line.unit
            unit = esc.get(unit) or esc.setdefault(unit, _esc(unit))
            append(
                f"{inv_id}\t{pos}\t{n if line.connection_id is None else line.connection_id}\t"
                f"{ps}\t{pe}\t{n if line.tariff_version_id is None else line.tariff_version_id}\t"
                f"{fixed}\t{_esc(line.explanation)}\t{line.quantity}\t{unit}\t"
                f"{line.unit_price}\t{line.amount}\t{line.vat_rate}"
            )
    return out


def _copy(sql: str, rows: list[str]) -> None:
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        # psycopg errors as django.db errors
        with connection.wrap_database_errors, raw.copy(sql) as copy:
            copy.write("\n".join(rows) + "\n")
