"""The main job on PostgreSQL and Redis with a real worker, as the README offers.

The file ingest, the billing run's chunks and the PDFs are Celery tasks: the demo hands
them to the worker and waits for them (before, it read the run straight after queueing
it and issued nothing, and processed the readings file beside the worker's task).
"""

import datetime as dt
import io

import pytest

from billing.models import BillingRun, Invoice
from heatutility.demo import run_demo
from metering.models import IngestBatch

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_the_main_job_runs_end_to_end_on_a_real_worker(celery_worker):
    out = io.StringIO()

    run_demo(as_of=dt.date(2026, 11, 27), size=8, seed=1, stdout=out)

    batches = IngestBatch.objects.order_by("pk")
    assert [b.state for b in batches] == ["done", "done"], celery_worker.log()
    assert batches[0].accepted == batches[0].row_count > 8 * 365
    run = BillingRun.objects.get()
    assert (run.state, run.total, run.issued, run.failed) == ("issued", 8, 8, 0)
    issued = Invoice.objects.filter(run=run).exclude(number=None)
    assert issued.count() == 8
    assert not issued.filter(pdf="").exists()
    text = out.getvalue()
    assert "8 invoices issued" in text
    assert "8 PDFs stored" in text
