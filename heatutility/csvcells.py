"""Cells of the CSV files staff export (accounting, the regulator), safe to open in a
spreadsheet.

A text cell starting with one of :data:`FORMULA_PREFIXES` is a formula to a spreadsheet
(CSV injection): it is exported with a leading apostrophe, so that it reads as text.
Amounts (Decimals) stay numbers, a credit note's -1360.98 too.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """``value`` as a CSV cell safe to open in a spreadsheet."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_stream(
    header: list[str], rows: Iterable[list], *, safe: bool = True, chunk_chars: int = 64_000
) -> Iterator[str]:
    """The CSV text of ``header`` and ``rows`` in pieces of about ``chunk_chars`` (a
    streamed response's chunks; the header comes at once, so the download starts before
    the first query is done).  ``safe``: text cells through :func:`csv_cell` (staff's
    exports); ``False`` writes them as they are (values the caller made, e.g. a UTC
    offset ``+01:00`` that must stay one)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    yield _taken(buf)
    for row in rows:
        writer.writerow([csv_cell(cell) for cell in row] if safe else row)
        if buf.tell() >= chunk_chars:
            yield _taken(buf)
    if buf.tell():
        yield _taken(buf)


def _taken(buf: io.StringIO) -> str:
    value = buf.getvalue()
    buf.seek(0)
    buf.truncate(0)
    return value
