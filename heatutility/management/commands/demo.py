import datetime as dt
import logging

from django.core.management.base import BaseCommand, CommandError

from heatutility.demo import run_demo


class Command(BaseCommand):
    help = "Load a demo utility and run the main job end to end, printing a summary."

    def add_arguments(self, parser):
        parser.add_argument("--size", type=int, default=40, help="service connections (accounts)")
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument(
            "--as-of",
            type=dt.date.fromisoformat,
            default=dt.date(2026, 11, 27),
            help="'today' for the demo (local date); fixed so that runs are reproducible",
        )

    def handle(self, *args, size, seed, as_of, **options):
        if size < 1:
            raise CommandError("--size must be at least 1")
        # In-process tasks would log every success; the demo prints its own summary.
        logging.getLogger("celery").setLevel(logging.WARNING)
        run_demo(as_of=as_of, size=size, seed=seed, stdout=self.stdout)
