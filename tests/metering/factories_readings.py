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


def second_store_chunk_fails(patch) -> None:
    """Make the ingest's second stored chunk fail (a worker losing its disk half-way),
    on both storing paths; ``patch`` is a pytest ``monkeypatch`` (or its context)."""
    from metering.ingest import batches, store

    calls = []

    def failing_second(real_function):
        def store_chunk(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("worker lost its disk")
            return real_function(*args, **kwargs)

        return store_chunk

    patch.setattr(batches, "store_rows", failing_second(batches.store_rows))
    patch.setattr(store, "stage_to_readings", failing_second(store.stage_to_readings))
