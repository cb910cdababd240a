import datetime as dt
from decimal import Decimal

import factory

from metering import models
from tests.customers.factories import BuildingInterfaceUnitFactory


class HeatMeterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.HeatMeter

    maker = "Kamstrup"
    model = "MULTICAL 603"
    serial = factory.Sequence(lambda n: f"{67000000 + n}")
    register_unit = models.EnergyUnit.KWH
    # a display's step: whole kWh (or Wh), 0.001 MWh or GJ
    resolution = factory.LazyAttribute(
        lambda meter: Decimal("1") if meter.register_unit in ("Wh", "kWh") else Decimal("0.001")
    )
    register_max = Decimal("99999999")
    volume_register_max = Decimal("99999999")
    accuracy_class = 2
    verification_due_on = dt.date(2030, 1, 1)


class MeterInstallationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.MeterInstallation

    meter = factory.SubFactory(HeatMeterFactory)
    unit = factory.SubFactory(BuildingInterfaceUnitFactory)
    installed_at = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    removed_at = None
    initial_energy_kwh = Decimal("0")
    initial_volume_m3 = Decimal("0")
