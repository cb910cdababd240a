"""Indexes for the staff admin's search of meters (see customers 0008): a serial from its
start, a maker or model anywhere in it.  PostgreSQL only."""

import importlib

from django.db import migrations

search_indexes = importlib.import_module("customers.migrations.0008_search_indexes")

INDEXES = [
    ("meter_serial_search", "metering_heatmeter", "serial", "prefix"),
    ("meter_maker_search", "metering_heatmeter", "maker", "trgm"),
    ("meter_model_search", "metering_heatmeter", "model", "trgm"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0008_search_indexes"),
        ("metering", "0016_ingestbatch_failures"),
    ]

    operations = [search_indexes.create_indexes(INDEXES)]
