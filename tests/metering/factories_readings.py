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


def add_readings(meter, rows, *, status="valid"):
    """Store readings directly (tests): rows of (read_at, energy_kwh, volume_m3[, extra dict])."""
    import datetime as dt
    from decimal import Decimal

    from metering.ingest.store import partitions_ensure

    partitions_ensure(
        months={(at.astimezone(dt.UTC).year, at.astimezone(dt.UTC).month) for at, *_ in rows}
    )
    objs = []
    for at, energy, volume, *extra in rows:
        objs.append(
            models.Reading(
                meter=meter,
                read_at=at,
                energy_kwh=Decimal(energy),
                energy_value=Decimal(energy),
                energy_unit="kWh",
                volume_m3=Decimal(volume),
                status=status,
                received_at=at,
                **(extra[0] if extra else {}),
            )
        )
    return models.Reading.objects.bulk_create(objs)
