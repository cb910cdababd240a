"""Deployment checks for billing (``manage.py check --deploy``)."""

from __future__ import annotations

from django.conf import settings
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
