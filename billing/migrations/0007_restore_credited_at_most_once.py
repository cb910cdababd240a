"""Restore ``invoice_credited_at_most_once`` where 0005 dropped it.

0005's ``AlterField(original, db_index=False)`` makes Django drop every one-column b-tree
index on ``original_id``: on PostgreSQL that took the partial unique index behind this
constraint with it, while the migration state kept the constraint.  The service still
refused a second credit note (under a row lock), but the database no longer did.
SQLite rebuilds the table on ``AlterField`` and kept it.
"""

from django.db import migrations

NAME = "invoice_credited_at_most_once"


def restore(apps, schema_editor):
    invoice = apps.get_model("billing", "Invoice")
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        present = connection.introspection.get_constraints(cursor, invoice._meta.db_table)
    if NAME not in present:
        (constraint,) = [c for c in invoice._meta.constraints if c.name == NAME]
        schema_editor.add_constraint(invoice, constraint)


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_refunds")]

    operations = [migrations.RunPython(restore, migrations.RunPython.noop)]
