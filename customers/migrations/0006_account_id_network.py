"""Accounts are unique by (id, network): the target of the invoices' key (account, network)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0005_identifier_numbers_printable"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="account",
            constraint=models.UniqueConstraint(fields=("id", "network"), name="account_id_network"),
        ),
    ]
