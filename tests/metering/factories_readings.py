import factory

from metering import models


class MeterVendorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.MeterVendor

    code = factory.Sequence(lambda n: f"vendor-{n}")
    name = factory.Sequence(lambda n: f"Head-end {n}")
    csv_columns = factory.LazyFunction(dict)
    csv_separator = ";"
    csv_decimal_comma = True
    csv_energy_unit = "kWh"
    csv_time_zone = "Europe/Copenhagen"
