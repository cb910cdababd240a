from django.apps import AppConfig, apps


class HeatutilityConfig(AppConfig):
    name = "heatutility"
    verbose_name = "heatutility"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import post_migrate

        from heatutility.roles import sync_roles_after_migrate
        from heatutility.schema import install_enum_name_overrides

        # post_migrate skips apps without models (this one), so listen on auth's signal;
        # sync_roles creates every app's permissions itself, so the order does not matter.
        post_migrate.connect(
            sync_roles_after_migrate,
            sender=apps.get_app_config("auth"),
            dispatch_uid="heatutility.sync_roles",
        )
        install_enum_name_overrides(settings)
