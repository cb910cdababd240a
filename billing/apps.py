from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from django.core.checks import register

        from billing.checks import delivery_check, dunning_ladder_check

        register(delivery_check, deploy=True)
        register(dunning_ladder_check)

        from tariffs.signals import tariff_version_closed

        tariff_version_closed.connect(_rerate_closed_version, dispatch_uid="billing-rerate")


def _rerate_closed_version(sender, version_id: int, **kwargs) -> None:
    """A corrected tariff: re-rate the bills priced with the closed version after its
    new end (a task; the nightly ``rerate_tariff_corrections`` catches a lost one)."""
    from billing import tasks

    tasks.rerate_tariff_versions.apply_async(([version_id],), **tasks._options())
