from django.db import migrations


def forwards(apps, schema_editor):
    # The payload is written once and read once, then cleared: compressing ~1 MB per
    # batch costs more CPU than the disk it saves.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE metering_ingestbatch ALTER COLUMN payload SET STORAGE EXTERNAL")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE metering_ingestbatch ALTER COLUMN payload SET STORAGE EXTENDED")


class Migration(migrations.Migration):
    dependencies = [("metering", "0003_readings_vendors_batches")]

    operations = [migrations.RunPython(forwards, backwards, elidable=True)]
