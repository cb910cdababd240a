"""Extend the lock on approved versions to the approval record itself.

Who approved, when, and under which cap are part of what the regulator audits: once a
version is approved they never change either (0002 guarded prices, VAT, dates).
"""

from django.db import migrations

from tariffs.migrations import _lock_sql as sql


def up(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(sql.pg_function(with_approval_record=True), params=None)
    elif vendor == "sqlite":
        for statement in sql.sqlite_triggers(with_approval_record=True):
            schema_editor.execute(statement)


def down(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(sql.pg_function(with_approval_record=False), params=None)
    elif vendor == "sqlite":
        for statement in sql.sqlite_triggers(with_approval_record=False):
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("tariffs", "0002_tariffversion_lock_trigger")]
    operations = [migrations.RunPython(up, down)]
