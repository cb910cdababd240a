"""A real Celery worker imports a year of SCADA data; a kill mid-import loses or doubles nothing."""

import time

import pandas as pd
import pytest

from tariffs.models import DataImport, UnitHour
from tariffs.tasks import data_import_run_task
from tests.tariffs.factories import PlantUnitFactory

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def _wait(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_killed_import_is_all_or_nothing_and_reruns_to_the_same_rows(celery_worker):
    unit = PlantUnitFactory()
    hours = pd.date_range(
        "2025-01-01", "2026-01-01", freq="h", inclusive="left", tz="Europe/Copenhagen"
    )
    text = "time,heat_mwh,electricity_mwh\n" + "".join(f"{t.isoformat()},5.0,1.5\n" for t in hours)
    record = DataImport.objects.create(
        kind="unit_hours", unit=unit, content=text, filename="year.csv"
    )

    data_import_run_task.delay(record.pk)
    time.sleep(0.5)
    celery_worker.kill()
    # one transaction per file: either every hour is stored or none
    assert UnitHour.objects.filter(unit=unit).count() in (0, 8760)

    celery_worker.start()
    data_import_run_task.delay(record.pk)
    data_import_run_task.delay(record.pk)  # a duplicate delivery is harmless
    assert _wait(lambda: DataImport.objects.get(pk=record.pk).status == "done"), celery_worker.log()
    assert _wait(lambda: UnitHour.objects.filter(unit=unit).count() == 8760), celery_worker.log()
    time.sleep(1)
    assert UnitHour.objects.filter(unit=unit).count() == 8760
    assert DataImport.objects.get(pk=record.pk).rows == 8760
