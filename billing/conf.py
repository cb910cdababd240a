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
    # Dunning ladder: days after the due date (in the network's local dates), title, fee
    # (in the invoice currency; > 0 is charged as a reminder-fee invoice) and, optionally,
    # what happens next if the letter is not paid ("next"; the last level always says it).
    # Danish practice (renteloven §9 b): at most 100 DKK per letter, at most three letters
    # per claim, at least 10 days apart.
    "DUNNING_LADDER": [
        {"days": 7, "title": "Payment reminder", "fee": "0.00"},
        {"days": 21, "title": "Second reminder", "fee": "100.00"},
        {
            "days": 35,
            "title": "Final notice before disconnection",
            "fee": "100.00",
            "next": (
                "If the total is not paid by the pay-by date, we will disconnect your heat "
                "supply as the terms of supply allow, after a further notice of the date, and "
                "pass the claim to debt collection. Reconnection is charged separately."
            ),
        },
    ],
    # Legal limits the ladder is checked against when Django starts (system check
    # billing.E004-E006, ``billing.checks.dunning_ladder_check``).  Default: Denmark,
    # renteloven §9 b: fees for at most 3 reminders per claim, at least 10 days between
    # reminders, at most 100 DKK a reminder.  Another country sets its own; a limit left
    # out or None is not checked, and None instead of the mapping checks none.
    "DUNNING_LIMITS": {"max_fees": 3, "min_days_between": 10, "max_fee": "100.00"},
    # Days a reminder letter gives to pay (its pay-by date, and the due date of its fee).
    "REMINDER_PAY_DAYS": 10,
    # VAT on reminder fees: outside the VAT scope in Denmark (compensation, not a supply).
    "REMINDER_FEE_VAT_RATE": "0",
    # Climate correction of last year's consumption for on-account estimates (DOMAIN.md §3).
    "HEATING_SHARE": "0.8",
    "PDF_CHUNK": 25,
    # E-mail each issued invoice's PDF and each dunning letter to the customer once the
    # PDF is stored (billing.services.delivery); False: nothing is e-mailed, every
    # document is printed and posted by staff (the admin's "to print" list).
    "EMAIL_DOCUMENTS": True,
    # Invoice PDF, fuel mix and emissions (EED Annex IX).  FUEL_MIX: the text printed when
    # the network's plant has no hourly data for the 12 months before the period's end
    # ("" = the PDF says the mix is not available).  GRID_EMISSION_G_PER_KWH: g CO₂ per kWh
    # of grid electricity (None = no emissions figure for electricity-driven heat), with
    # GRID_EMISSION_BASIS naming its source on the PDF (e.g. "Energinet, DK2 2024").
    "FUEL_MIX": "",
    "GRID_EMISSION_G_PER_KWH": None,
    "GRID_EMISSION_BASIS": "",
}


def get(name: str):
    return getattr(settings, "BILLING", {}).get(name, DEFAULTS[name])


def heating_share() -> Decimal:
    """The weather-dependent share of consumption for climate corrections."""
    return Decimal(str(get("HEATING_SHARE")))


def email_documents() -> bool:
    return bool(get("EMAIL_DOCUMENTS"))


def reminder_pay_days() -> int:
    return int(get("REMINDER_PAY_DAYS"))


def reminder_fee_vat_rate() -> Decimal:
    return Decimal(str(get("REMINDER_FEE_VAT_RATE")))


def plausibility() -> Plausibility:
    values = {**DEFAULTS["PLAUSIBILITY"], **get("PLAUSIBILITY")}
    return Plausibility(**{k: Decimal(str(v)) for k, v in values.items()})


def invoice_series(year: int) -> str:
    return f"{settings.HEATUTILITY.get('INVOICE_SERIES', 'INV')}-{year}"
