"""Indexes for the staff admin's search of payments and refunds (see customers 0008):
the reference a customer wrote and the bank's transaction id, anywhere in them.

Without them each search read every payment of the utility (a year of a 100,000-account
network's bank statements is over a million rows).  PostgreSQL only.
"""

import importlib

from django.db import migrations

search_indexes = importlib.import_module("customers.migrations.0008_search_indexes")

INDEXES = [
    ("payment_reference_search", "billing_payment", "reference", "trgm"),
    ("payment_bank_id_search", "billing_payment", "bank_transaction_id", "trgm"),
    ("refund_reference_search", "billing_refund", "reference", "trgm"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0008_search_indexes"),
        ("billing", "0021_payment_refund_idempotency_key"),
    ]

    operations = [search_indexes.create_indexes(INDEXES)]
