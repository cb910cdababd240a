"""Bounds of what the tariffs app accepts, so absurd but well-formed input is refused with
a field-level error instead of overflowing dates, decimals or database columns later.

* Dates: 1900-01-01 … 2200-12-31 (a 12-month window before a date, a local midnight in
  UTC and every year arithmetic stay inside ``datetime``'s range).
* Component values (prices, amounts, thresholds, rates): finite, ``|x| < 10⁹`` and at
  most 6 decimals: a net unit price is kept to 6 decimals and an invoice line's
  ``unit_price`` is ``DecimalField(20, 6)``, its ``amount`` ``DecimalField(14, 2)``.
* Price cap inputs: finite, ``|x| < 10¹²`` (a network's yearly costs in its currency).
"""

from __future__ import annotations

from decimal import Decimal

from heatutility.timeutil import EARLIEST_DATE, LATEST_DATE, date_in_range  # noqa: F401

MIN_DATE, MAX_DATE = EARLIEST_DATE, LATEST_DATE  # heatutility.timeutil, for every app

COMPONENT_VALUE_LIMIT = Decimal(10) ** 9
COMPONENT_PLACES = 6
COMPONENT_CODE_MAX_LENGTH = 40  # billing.InvoiceLine.component
COMPONENT_DESCRIPTION_MAX_LENGTH = 200  # billing.InvoiceLine.description

CAP_INPUT_LIMIT = Decimal(10) ** 12
