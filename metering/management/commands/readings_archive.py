"""Archive the monthly readings partitions before the retention horizon."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from metering.retention import readings_archive, readings_horizon


class Command(BaseCommand):
    help = (
        "Write each monthly readings partition that ends before the retention horizon to "
        "READINGS_ARCHIVE_DIR, then detach and drop it (PostgreSQL)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only list the months.")

    def handle(self, *args, dry_run: bool = False, **options):
        now = timezone.now()
        months = readings_archive(now=now, dry_run=dry_run)
        self.stdout.write(f"Retention horizon {readings_horizon(now=now).date().isoformat()}.")
        for month in months:
            if month.path is None:
                self.stdout.write(f"would archive {month.partition}")
            else:
                self.stdout.write(f"archived {month.partition}: {month.rows} rows → {month.path}")
        if not months:
            self.stdout.write("Nothing to archive.")
