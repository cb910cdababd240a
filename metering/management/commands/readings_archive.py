"""Archive the monthly readings partitions before the retention horizon."""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from metering.retention import readings_archive, readings_archive_horizon, retained_since


class Command(BaseCommand):
    help = (
        "Write each monthly readings partition that ends before every network's retention "
        "horizon to "
        "READINGS_ARCHIVE_DIR, then detach and drop it (PostgreSQL)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only list the months.")

    def handle(self, *args, dry_run: bool = False, **options):
        now = timezone.now()
        months = readings_archive(now=now, dry_run=dry_run)
        since = retained_since(now=now, time_zone=settings.TIME_ZONE)
        self.stdout.write(f"Retention horizon {since.isoformat()}.")
        # partitions are UTC months: those that end by every network's local horizon
        cut = readings_archive_horizon(now=now).isoformat()
        self.stdout.write(f"Archiving the UTC months that end by {cut}.")
        for month in months:
            if month.path is None:
                self.stdout.write(f"would archive {month.partition}")
            else:
                self.stdout.write(f"archived {month.partition}: {month.rows} rows → {month.path}")
        if not months:
            self.stdout.write("Nothing to archive.")
