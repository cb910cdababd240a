"""``manage.py ingest_readings --vendor CODE path.csv``: a vendor file through the real path."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from heatutility.errors import DomainError
from metering.ingest.batches import readings_batch_process, readings_file_submit
from metering.models import IngestBatch, MeterVendor


class Command(BaseCommand):
    help = "Ingest a vendor CSV file as a batch (queued on Celery, or processed here with --now)."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--vendor", required=True, help="MeterVendor code.")
        parser.add_argument(
            "--now", action="store_true", help="Process in this process instead of a worker."
        )

    def handle(self, *args, path: str, vendor: str, now: bool, **options):
        try:
            vendor_obj = MeterVendor.objects.get(code=vendor)
        except MeterVendor.DoesNotExist as exc:
            raise CommandError(f"No vendor with code {vendor!r}.") from exc
        content = Path(path).read_bytes()
        try:
            batch, _ = readings_file_submit(
                vendor=vendor_obj,
                content=content,
                file_name=Path(path).name,
                received_at=timezone.now(),
            )
        except DomainError as exc:
            lines = [exc.message] + [f"  {e.as_dict()}" for e in exc.errors[:20]]
            raise CommandError("\n".join(lines)) from exc
        if now:
            readings_batch_process(batch_id=batch.pk, now=timezone.now())
        batch = IngestBatch.objects.get(pk=batch.pk)
        self.stdout.write(
            f"batch {batch.pk}: {batch.state}; rows {batch.row_count}, accepted {batch.accepted}, "
            f"duplicate {batch.duplicate}, conflicting {batch.conflicting}, rejected {batch.rejected}, "
            f"errors {batch.error_count}"
        )
        for error in batch.errors[:20]:
            self.stdout.write(f"  {error}")
