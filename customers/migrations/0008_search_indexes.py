"""Indexes for the staff admin's search (``heatutility.admin.IndexedSearchMixin``).

The admin matches each searched column in its own id subquery: a name, e-mail or address
anywhere in it (``UPPER(col) LIKE UPPER('%x%')``, Django's ``icontains``), served by a
trigram GIN index on ``upper(col)``; an identifier from its start (``UPPER(col) LIKE
UPPER('x%')``, ``istartswith``), served by a b-tree on ``upper(col) text_pattern_ops``.
PostgreSQL only (``pg_trgm`` is a trusted extension: the database owner may create it);
SQLite (embedded default) searches without them.
"""

from django.db import migrations

# (index, table, column, kind): "trgm" substring, "prefix" identifier
INDEXES = [
    ("customer_name_search", "customers_customer", "name", "trgm"),
    ("customer_email_search", "customers_customer", "email", "trgm"),
    ("customer_orgnumber_search", "customers_customer", "organisation_number", "prefix"),
    ("account_number_search", "customers_account", "number", "prefix"),
    ("account_street_search", "customers_account", "billing_street", "trgm"),
    ("account_city_search", "customers_account", "billing_city", "trgm"),
    ("building_street_search", "customers_building", "street", "trgm"),
    ("building_city_search", "customers_building", "city", "trgm"),
    ("building_postcode_search", "customers_building", "postal_code", "prefix"),
    ("building_register_search", "customers_building", "register_id", "prefix"),
    ("connection_number_search", "customers_serviceconnection", "number", "prefix"),
    ("biu_serial_search", "customers_buildinginterfaceunit", "serial", "prefix"),
    ("biu_maker_search", "customers_buildinginterfaceunit", "maker", "trgm"),
]


def create_sql(name: str, table: str, column: str, kind: str) -> str:
    if kind == "trgm":
        using = f"gin (upper({column}::text) gin_trgm_ops)"
    else:
        using = f"btree (upper({column}::text) text_pattern_ops)"
    return f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING {using}"


def create_trigram_extension(apps, schema_editor):
    """Not dropped backwards: something else may use it (and Django's
    ``TrigramExtension`` queries ``pg_extension`` backwards on SQLite too)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm", params=None)


def create_indexes(indexes):
    def forward(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for index in indexes:
                schema_editor.execute(create_sql(*index), params=None)
            # the planner knows an expression index's values only once the table is
            # analyzed, which autovacuum does only after enough rows change: until then
            # it guessed, and an account number's search took 2-3 times as long
            for table in dict.fromkeys(table for _, table, *_ in indexes):
                schema_editor.execute(f"ANALYZE {table}", params=None)

    def backward(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for name, *_ in indexes:
                schema_editor.execute(f"DROP INDEX IF EXISTS {name}", params=None)

    return migrations.RunPython(forward, backward)


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0007_network_time_zone_from_settings"),
    ]

    operations = [
        migrations.RunPython(create_trigram_extension, migrations.RunPython.noop),
        create_indexes(INDEXES),
    ]
