"""An invoice's account, network and run agree: two composite keys instead of three.

The three single-column keys (invoice → account, → network, → run) let an invoice name
an account of one network and be numbered in another network's series, or belong to a
run of another network.  On PostgreSQL they are replaced by

* (account_id, network_id) → customers_account (id, network_id): the account exists and
  is of the invoice's network (which exists: the account's own key says so);
* (run_id, network_id) → billing_billingrun (id, network_id): the run, when there is
  one, is of the invoice's network (MATCH SIMPLE: no run, no check),

both ``DEFERRABLE INITIALLY DEFERRED`` as Django's keys are.  A bill written by a run
costs two key checks at commit instead of three.  The fields keep Django's
``on_delete=PROTECT``.  SQLite (embedded default) has no keys for these columns.
"""

import django.db.models.deletion
from django.db import migrations, models

FORWARD = """
ALTER TABLE billing_invoice
    ADD CONSTRAINT invoice_account_in_network FOREIGN KEY (account_id, network_id)
        REFERENCES customers_account (id, network_id) DEFERRABLE INITIALLY DEFERRED,
    ADD CONSTRAINT invoice_run_in_network FOREIGN KEY (run_id, network_id)
        REFERENCES billing_billingrun (id, network_id) DEFERRABLE INITIALLY DEFERRED;
"""

BACKWARD = """
ALTER TABLE billing_invoice
    DROP CONSTRAINT IF EXISTS invoice_account_in_network,
    DROP CONSTRAINT IF EXISTS invoice_run_in_network;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0018_invoice_held_by_staff"),
        ("customers", "0006_account_id_network"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="billingrun",
            constraint=models.UniqueConstraint(
                fields=("id", "network"), name="billingrun_id_network"
            ),
        ),
        # backwards, the composite keys go before the single ones come back
        migrations.RunPython(migrations.RunPython.noop, backward),
        migrations.AlterField(
            model_name="invoice",
            name="account",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="invoices",
                to="customers.account",
            ),
        ),
        migrations.AlterField(
            model_name="invoice",
            name="network",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="customers.network",
            ),
        ),
        migrations.AlterField(
            model_name="invoice",
            name="run",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="invoices",
                to="billing.billingrun",
            ),
        ),
        migrations.RunPython(forward, migrations.RunPython.noop),
    ]
