"""Billing writes (services), grouped by concern: runs, invoices, re-rating, on-account,
payments.  Import from the submodules, e.g. ``billing.services.runs.billing_run_create``."""
