import factory
import orjson
from django.core.files.base import ContentFile
from django.test import TestCase
from django.utils import timezone

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


def deliver_json(vendor, meter, rows, *, received_at):
    """A vendor's REST delivery of ``rows`` (read_at, energy kWh, volume m³) for
    ``meter``, processed as the worker would."""
    from metering.ingest.batches import readings_batch_submit

    body = orjson.dumps(
        [
            {
                "meter": meter.serial,
                "read_at": read_at.isoformat(),
                "energy": energy,
                "energy_unit": "kWh",
                "volume_m3": volume,
            }
            for read_at, energy, volume in rows
        ]
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        readings_batch_submit(vendor=vendor, body=body, received_at=received_at)


def ingest_file(vendor, text, *, path, monkeypatch):
    """A vendor's CSV file processed by PostgreSQL's fast path or (``path="python"``) by
    the Python rules; returns the batch."""
    from metering.ingest import fastcsv
    from metering.ingest.batches import readings_batch_process

    if path == "python":
        monkeypatch.setattr(fastcsv, "available", lambda: False)
    batch = models.IngestBatch.objects.create(
        vendor=vendor, source="file", received_at=timezone.now()
    )
    batch.file.save("export.csv", ContentFile(text.encode()))
    return readings_batch_process(batch_id=batch.pk, now=timezone.now())
