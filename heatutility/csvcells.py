"""Cells of the CSV files staff export (accounting, the regulator), safe to open in a
spreadsheet.

A text cell starting with one of :data:`FORMULA_PREFIXES` is a formula to a spreadsheet
(CSV injection): it is exported with a leading apostrophe, so that it reads as text.
Amounts (Decimals) stay numbers, a credit note's -1360.98 too.
"""

from __future__ import annotations

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """``value`` as a CSV cell safe to open in a spreadsheet."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
