"""Re-rating for contracts changed after billing looks from the upgrade on.

Without this row the first look would take every contract ever saved as changed and
recompute every current invoice once (nothing would change, but for hours on a large
network); a new database has no bills before it anyway.
"""

from django.db import migrations
from django.utils import timezone


def start_looking_now(apps, schema_editor):
    RerateCursor = apps.get_model("billing", "RerateCursor")
    RerateCursor.objects.get_or_create(name="contracts", defaults={"checked_until": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [("billing", "0011_instalmentplan_connections")]

    operations = [migrations.RunPython(start_looking_now, migrations.RunPython.noop)]
