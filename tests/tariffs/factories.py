import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from tariffs import models
from tests.customers.factories import NetworkFactory

HOFOR_2024 = [
    {
        "type": "banded",
        "code": "capacity",
        "description": "Capacity charge",
        "basis": "capacity",
        "unit": "kW",
        "bands": [{"unit_price": "210.91"}],
    },
    {"type": "energy", "code": "energy", "description": "Energy charge", "price": "592.52"},
]


class TariffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Tariff

    network = factory.SubFactory(NetworkFactory)
    code = factory.Sequence(lambda n: f"tariff-{n}")
    name = factory.Sequence(lambda n: f"Tariff {n}")


class TariffVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.TariffVersion

    tariff = factory.SubFactory(TariffFactory)
    number = factory.Sequence(lambda n: n + 1)
    valid_from = dt.date(2026, 1, 1)
    valid_to = None
    status = models.TariffVersion.Status.DRAFT
    vat_rate = Decimal("0.25")
    components = factory.LazyFunction(lambda: list(HOFOR_2024))

    class Params:
        approved = factory.Trait(
            status=models.TariffVersion.Status.APPROVED,
            approved_at=factory.LazyFunction(timezone.now),
        )


class TariffAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.TariffAssignment

    tariff = factory.SubFactory(TariffFactory)
    valid_from = dt.date(2026, 1, 1)


class PlantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Plant

    network = factory.SubFactory(NetworkFactory)
    code = factory.Sequence(lambda n: f"plant-{n}")
    name = factory.Sequence(lambda n: f"Plant {n}")


class PlantUnitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.PlantUnit

    plant = factory.SubFactory(PlantFactory)
    code = factory.Sequence(lambda n: f"hp{n}")
    name = "Seawater heat pump"
    kind = models.PlantUnit.Kind.HEAT_PUMP
    source_type = models.PlantUnit.Source.SEAWATER
    capacity_mw = Decimal("10")
