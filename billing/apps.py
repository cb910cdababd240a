from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from django.core.checks import register

        from billing.checks import delivery_check

        register(delivery_check, deploy=True)
