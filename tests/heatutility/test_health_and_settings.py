import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
class TestHealthz:
    def test_reports_database_and_broker(self, client):
        response = client.get("/healthz")

        body = response.json()
        assert response.status_code == 200
        assert body["status"] == "ok"
        assert body["checks"]["database"]["ok"] is True
        assert body["checks"]["broker"]["ok"] is True

    def test_unreachable_broker_makes_it_unavailable(self, client, settings):
        settings.REDIS_URL = "redis://127.0.0.1:1/0"

        response = client.get("/healthz")

        assert response.status_code == 503
        assert response.json()["checks"]["broker"]["ok"] is False

    def test_anonymous_callers_get_no_details(self, client, settings):
        settings.REDIS_URL = "redis://127.0.0.1:1/0"

        response = client.get("/healthz", {"workers": "1"})

        assert response.status_code == 503
        assert response.json()["checks"] == {"database": {"ok": True}, "broker": {"ok": False}}

    def test_staff_see_the_error(self, client, settings, django_user_model):
        settings.REDIS_URL = "redis://127.0.0.1:1/0"
        client.force_login(django_user_model.objects.create_user("ops", is_staff=True))

        broker = client.get("/healthz").json()["checks"]["broker"]

        assert broker["ok"] is False
        assert broker["broker"] == "redis"
        assert "127.0.0.1:1" in broker["error"]

    @pytest.mark.redis
    def test_real_redis_broker_is_reported(self, client, django_user_model):
        client.force_login(django_user_model.objects.create_user("ops", is_staff=True))

        body = client.get("/healthz").json()

        assert body["checks"]["broker"]["broker"] == "redis"
        assert body["checks"]["database"]["vendor"] == "postgresql"


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestProductionSettings:
    def test_check_deploy_passes_without_warnings(self):
        result = _manage(
            "check",
            "--deploy",
            "--fail-level",
            "WARNING",
            DJANGO_SETTINGS_MODULE="heatutility.settings.production",
            DJANGO_SECRET_KEY="k" * 20 + "a-real-secret-from-the-environment-0123456789",
            DJANGO_ALLOWED_HOSTS="heat.example.org",
            DJANGO_DEFAULT_FROM_EMAIL="Heat Utility <billing@heat.example.org>",
        )

        assert result.returncode == 0, result.stdout + result.stderr

    def test_check_deploy_wants_a_real_sender_for_the_customers_mail(self):
        result = _manage(
            "check",
            "--deploy",
            "--fail-level",
            "WARNING",
            DJANGO_SETTINGS_MODULE="heatutility.settings.production",
            DJANGO_SECRET_KEY="k" * 20 + "a-real-secret-from-the-environment-0123456789",
            DJANGO_ALLOWED_HOSTS="heat.example.org",
            DJANGO_DEFAULT_FROM_EMAIL="Heat Utility <noreply@localhost>",
        )

        assert result.returncode != 0
        assert "billing.W002" in result.stderr + result.stdout

    def test_production_refuses_to_start_without_a_secret_key(self):
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
        result = subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": "heatutility.settings.production"},
            capture_output=True,
            text=True,
            timeout=120,
        )

        assert result.returncode != 0
        assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.redis
class TestRealWorkers:
    def test_healthz_lists_a_running_worker(self, client, celery_worker, django_user_model):
        client.force_login(django_user_model.objects.create_user("ops", is_staff=True))

        body = client.get("/healthz", {"workers": "1"}).json()

        assert any(
            name.startswith(celery_worker.queue) for name in body["checks"]["workers"]["workers"]
        )


class TestBeatSchedule:
    def test_every_entry_names_a_registered_task(self):
        from django.conf import settings

        from heatutility.celery import app

        app.loader.import_default_modules()
        for entry in settings.CELERY_BEAT_SCHEDULE.values():
            assert entry["task"] in app.tasks, entry["task"]


@pytest.mark.postgres
@pytest.mark.django_db
def test_sessions_run_without_jit_compilation():
    # the server compiles by default (jit = on): a billing run's planning query spent 294
    # of its 421 ms compiling (bench/README.md)
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"


def test_database_jit_accepts_only_off_or_server():
    result = _manage("check", DATABASE_URL="postgres://u@127.0.0.1:5432/x", DATABASE_JIT="maybe")

    assert result.returncode != 0
    assert "DATABASE_JIT must be 'off' or 'server'" in result.stderr
