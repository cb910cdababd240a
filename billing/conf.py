"""Billing settings with defaults; override in Django settings as ``BILLING = {...}``."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

from billing.calc import Plausibility

DEFAULTS = {
    "CHUNK_SIZE": 1000,
    "PLAUSIBILITY": {
        "ratio_high": "2.5",
        "ratio_low": "0.3",
        "min_last_year_mwh": "0.5",
        "capacity_factor": "1.0",
        "temperature_min": "0",
        "temperature_max": "150",
    },
    # Dunning ladder: days after the due date, title, fee (in the invoice currency).
    "DUNNING_LADDER": [
        {"days": 7, "title": "Payment reminder", "fee": "0.00"},
        {"days": 21, "title": "Second reminder", "fee": "100.00"},
        {"days": 35, "title": "Final notice before disconnection", "fee": "100.00"},
    ],
    # Climate correction of last year's consumption for on-account estimates (DOMAIN.md §3).
    "HEATING_SHARE": "0.8",
    "PDF_CHUNK": 25,
}


def get(name: str):
    return getattr(settings, "BILLING", {}).get(name, DEFAULTS[name])


def heating_share() -> Decimal:
    """The weather-dependent share of consumption for climate corrections."""
    return Decimal(str(get("HEATING_SHARE")))


def plausibility() -> Plausibility:
    values = {**DEFAULTS["PLAUSIBILITY"], **get("PLAUSIBILITY")}
    return Plausibility(**{k: Decimal(str(v)) for k, v in values.items()})


def invoice_series(year: int) -> str:
    return f"{settings.HEATUTILITY.get('INVOICE_SERIES', 'INV')}-{year}"
