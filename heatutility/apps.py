from django.apps import AppConfig


class HeatutilityConfig(AppConfig):
    name = "heatutility"
    verbose_name = "heatutility"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from heatutility.roles import sync_roles_after_migrate

        post_migrate.connect(sync_roles_after_migrate, sender=self)
