"""The Celery application; configured from Django settings (``CELERY_*``)."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heatutility.settings")

app = Celery("heatutility")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _connections_tidy(task=None, **_kwargs) -> None:
    """Between tasks, treat database connections as Django does between requests.

    A worker keeps its connection from task to task (``CELERY_DB_REUSE_MAX``): a new
    PostgreSQL backend per task repeats its start-up, catalogue caches and plans for
    every billing chunk.  A connection that is broken, or older than ``CONN_MAX_AGE``,
    is still closed here; eager tasks run inside the caller's connection and are left
    alone.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
