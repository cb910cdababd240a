"""Create the staff role groups (billing clerk, metering operator, tariff manager, auditor)."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from heatutility.roles import sync_roles

    sync_roles(apps=apps)


def remove_roles(apps, schema_editor):
    from heatutility.roles import ROLE_POLICY

    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLE_POLICY)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("customers", "0001_initial"),
        ("metering", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
