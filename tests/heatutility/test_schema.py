"""The migrated database holds every constraint and index the models declare.

``makemigrations --check`` compares the models with the migrations' *state*, not with
the database: a migration whose SQL dropped more than its state says goes unnoticed
there.  (Django's ``AlterField(db_index=False)`` of a foreign key drops every one-column
b-tree index on that column, partial unique indexes included.)
"""

import pytest
from django.apps import apps
from django.db import connection

from heatutility.db import NoOverlapConstraint


def _declared():
    for model in apps.get_models():
        if model._meta.managed and not model._meta.proxy:
            for item in [*model._meta.constraints, *model._meta.indexes]:
                if isinstance(item, NoOverlapConstraint) and connection.vendor != "postgresql":
                    continue  # PostgreSQL only by design (model validation elsewhere)
                yield model._meta.db_table, item.name


@pytest.mark.django_db
def test_every_declared_constraint_and_index_exists():
    declared = list(_declared())
    with connection.cursor() as cursor:
        present = {
            table: set(connection.introspection.get_constraints(cursor, table))
            for table in {table for table, _ in declared}
        }

    missing = [f"{table}.{name}" for table, name in declared if name not in present[table]]

    assert len(declared) > 20
    assert missing == [], missing
