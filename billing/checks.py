"""System checks for billing: the dunning ladder against the law (``manage.py check``),
and delivery settings (``manage.py check --deploy``)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.checks import Error as CheckError
from django.core.checks import Warning as CheckWarning

# backends that accept a message without delivering it to anybody
NOT_DELIVERING = (
    "console.EmailBackend",
    "locmem.EmailBackend",
    "filebased.EmailBackend",
    "dummy.EmailBackend",
)


def delivery_check(app_configs=None, **kwargs) -> list[CheckWarning]:
    """Documents e-mailed to customers need a backend that delivers and a sender the
    mail server accepts: else every invoice is marked e-mailed while nobody got it, or
    sits in retries."""
    from billing import conf

    if not conf.email_documents():
        return []
    warnings = []
    if settings.EMAIL_BACKEND.endswith(NOT_DELIVERING):
        warnings.append(
            CheckWarning(
                f"EMAIL_BACKEND is {settings.EMAIL_BACKEND}: invoices and dunning letters would "
                "be marked e-mailed without reaching anybody.",
                hint="Set DJANGO_EMAIL_BACKEND to an SMTP (or provider) backend, or "
                "BILLING_EMAIL_DOCUMENTS=false to print and post them.",
                id="billing.W001",
            )
        )
    if settings.DEFAULT_FROM_EMAIL.rstrip(">").endswith("@localhost"):
        warnings.append(
            CheckWarning(
                f"DEFAULT_FROM_EMAIL is {settings.DEFAULT_FROM_EMAIL!r}: mail servers refuse "
                "a sender at localhost, and every document would sit in retries.",
                hint="Set DJANGO_DEFAULT_FROM_EMAIL to the utility's billing address.",
                id="billing.W002",
            )
        )
    return warnings


LADDER = "BILLING['DUNNING_LADDER']"
LIMITS = "BILLING['DUNNING_LIMITS']"
LIMITS_HINT = (
    f"Change the ladder, or set {LIMITS} to the limits of the country the utility bills in."
)


def dunning_ladder_check(app_configs=None, **kwargs) -> list[CheckError]:
    """The dunning ladder (``BILLING["DUNNING_LADDER"]``) is one ``billing.services.dunning``
    can follow, within the legal limits on reminders (``BILLING["DUNNING_LIMITS"]``): a
    ladder the law forbids would charge every late customer an unlawful fee, and one
    that cannot be read stops the daily run, until somebody notices.

    Each step has ``days`` after the due date (a whole number from 0: E001) later than
    the step before (E002), a ``title`` (E001) and a ``fee`` that is a decimal amount of
    0 or more (E003; none is 0).  The limits default to Denmark's, renteloven §9 b: fees
    for at most 3 reminders per claim (``max_fees``, E004), at least 10 days between
    reminders (``min_days_between``, E005) and at most 100 DKK a reminder (``max_fee``,
    in the invoice currency, E006).  Another country sets its own; a limit left out or
    None is not checked, and ``DUNNING_LIMITS = None`` checks none.  Limits that cannot
    be read are E007.
    """
    from billing import conf

    limits, errors = _limits(conf.get("DUNNING_LIMITS"))
    steps = conf.get("DUNNING_LADDER")
    if not isinstance(steps, list | tuple):
        errors.append(CheckError(f"{LADDER} is {steps!r}: a list of steps.", id="billing.E001"))
        return errors
    previous: tuple[int, int] | None = None  # (level, days) of the last step with days
    fees = 0
    for level, step in enumerate(steps, start=1):
        if not isinstance(step, Mapping) or "days" not in step or "title" not in step:
            errors.append(
                CheckError(
                    f'{LADDER} step {level} needs "days" and "title", and may have "fee" and '
                    f'"next": it is {step!r}.',
                    id="billing.E001",
                )
            )
            continue
        name = f"{LADDER} step {level} ({step['title']})"
        days = _whole(step["days"])
        if days is None:
            errors.append(
                CheckError(
                    f"{name} has days {step['days']!r}: a whole number of days after the due "
                    "date, 0 or more.",
                    id="billing.E001",
                )
            )
        elif previous is not None and days <= previous[1]:
            errors.append(
                CheckError(
                    f"{name} is {days} days after the due date, not later than step "
                    f"{previous[0]} ({previous[1]} days): the steps must come strictly later.",
                    id="billing.E002",
                )
            )
        else:
            min_days = limits.get("min_days_between")
            if previous is not None and min_days is not None and days - previous[1] < min_days:
                errors.append(
                    CheckError(
                        f"{name} comes {days - previous[1]} days after step {previous[0]}: "
                        f"reminders must be at least {min_days} days apart ({LIMITS} "
                        "min_days_between).",
                        hint=LIMITS_HINT,
                        id="billing.E005",
                    )
                )
            previous = (level, days)
        fee = _amount(step.get("fee", "0"))
        if fee is None:
            errors.append(
                CheckError(
                    f"{name} has fee {step.get('fee')!r}: a decimal amount of 0 or more (as a "
                    'string, "100.00"; "0.00" for none).',
                    id="billing.E003",
                )
            )
            continue
        if fee == 0:
            continue
        fees += 1
        max_fees = limits.get("max_fees")
        if max_fees is not None and fees > max_fees:
            errors.append(
                CheckError(
                    f"{name} charges reminder fee number {fees}: at most {max_fees} reminder "
                    f"fee{'' if max_fees == 1 else 's'} may be charged per claim ({LIMITS} "
                    "max_fees).",
                    hint=LIMITS_HINT,
                    id="billing.E004",
                )
            )
        max_fee = limits.get("max_fee")
        if max_fee is not None and fee > max_fee:
            errors.append(
                CheckError(
                    f"{name} charges {fee}: at most {max_fee} per reminder ({LIMITS} max_fee).",
                    hint=LIMITS_HINT,
                    id="billing.E006",
                )
            )
    return errors


def _limits(value) -> tuple[dict, list[CheckError]]:
    """The readable limits of ``value`` (a limit None or left out: not checked), and an
    E007 for each that cannot be read."""
    readers = {"max_fees": _whole, "min_days_between": _whole, "max_fee": _amount}
    if value is None:
        return {}, []
    if not isinstance(value, Mapping) or not set(value) <= set(readers):
        return {}, [
            CheckError(
                f"{LIMITS} is {value!r}: None, or a mapping of {', '.join(readers)}.",
                id="billing.E007",
            )
        ]
    limits, errors = {}, []
    for key, raw in value.items():
        limits[key] = None if raw is None else readers[key](raw)
        if raw is not None and limits[key] is None:
            errors.append(
                CheckError(
                    f"{LIMITS} {key} is {raw!r}: a number of 0 or more, or None for no limit.",
                    id="billing.E007",
                )
            )
    return limits, errors


def _whole(value) -> int | None:
    """``value`` as a whole number from 0 (an int or its digits), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if number >= 0 else None


def _amount(value) -> Decimal | None:
    """``value`` as a finite decimal amount from 0, else None."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None
