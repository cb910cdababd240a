"""Money and energy quantities: the one place where amounts are rounded.

Rounding rule (documented in docs/billing.md):
  * Every monetary amount is a ``Decimal`` and is rounded once, at line level, to the
    currency's minor unit with ``ROUND_HALF_UP`` (ties away from zero, as PostgreSQL's
    ``round(numeric)`` does).  Totals are sums of rounded lines, never re-rounded sums of
    raw products.
  * Unit prices keep ``PRICE_PLACES`` decimals; energy keeps ``ENERGY_PLACES`` decimals of
    the unit it is expressed in.
  * Floats never carry money: values leaving pandas go through :func:`to_decimal`, which
    converts via ``repr`` so that ``0.1`` becomes ``Decimal("0.1")``, not its binary
    expansion.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MONEY_ROUNDING = ROUND_HALF_UP
PRICE_PLACES = 6
ENERGY_PLACES = 6

# ISO 4217 minor units for the currencies a European heat network bills in.
MINOR_UNITS: dict[str, int] = {
    "DKK": 2,
    "EUR": 2,
    "SEK": 2,
    "NOK": 2,
    "GBP": 2,
    "PLN": 2,
    "CHF": 2,
    "CZK": 2,
    "ISK": 0,
}

ZERO = Decimal("0")


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of ``currency``, e.g. ``Decimal('0.01')`` for DKK."""
    try:
        places = MINOR_UNITS[currency]
    except KeyError as exc:
        raise ValueError(f"unknown currency {currency!r}") from exc
    return Decimal(1).scaleb(-places)


def quantize_money(value: Decimal | int | str, currency: str) -> Decimal:
    """Round ``value`` to the currency's minor unit, half up (away from zero on ties)."""
    return to_decimal(value).quantize(minor_unit(currency), rounding=MONEY_ROUNDING)


def quantize_price(value: Decimal | int | str) -> Decimal:
    """Round a unit price to ``PRICE_PLACES`` decimals, half up."""
    return to_decimal(value).quantize(Decimal(1).scaleb(-PRICE_PLACES), rounding=MONEY_ROUNDING)


def quantize_energy(value: Decimal | int | str) -> Decimal:
    """Round an energy quantity to ``ENERGY_PLACES`` decimals, half up."""
    return to_decimal(value).quantize(Decimal(1).scaleb(-ENERGY_PLACES), rounding=MONEY_ROUNDING)


def to_decimal(value: object) -> Decimal:
    """Convert a number to ``Decimal`` without picking up binary float noise."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("booleans are not amounts")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"not a finite number: {value!r}")
        return Decimal(repr(value))
    try:
        return Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc


def plain(value: Decimal) -> str:
    """``value`` as people write it: no trailing zeros, no exponent (2906.0 as "2906",
    37.50 as "37.5", 9.9E+4 as "99000"), the same text on every database."""
    return f"{value.normalize():f}"
