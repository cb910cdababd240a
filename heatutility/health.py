"""``/healthz``: is the database reachable, is the broker reachable."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"ok": False, "vendor": connection.vendor, "error": str(exc)}
    return {
        "ok": True,
        "vendor": connection.vendor,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def _check_broker() -> dict:
    if not settings.REDIS_URL:
        return {"ok": True, "broker": "in-process (tasks run eagerly)"}
    import redis

    started = time.perf_counter()
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2
        )
        client.ping()
    except Exception as exc:
        return {"ok": False, "broker": "redis", "error": str(exc)}
    return {
        "ok": True,
        "broker": "redis",
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def _check_workers() -> dict:
    """Celery workers answering a broadcast ping within a second (informational)."""
    if not settings.REDIS_URL:
        return {"ok": True, "workers": [], "note": "tasks run in process"}
    from heatutility.celery import app

    try:
        replies = app.control.ping(timeout=1.0) or []
    except Exception as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "workers": sorted(name for reply in replies for name in reply)}


@never_cache
@require_GET
def healthz(request):
    """Database and broker health, for load balancers and monitors: anyone gets the
    status (200 or 503) and which check failed.  Staff also get the details (database
    vendor, latencies, error texts, which name hosts) and, with ``?workers=1``, the Celery
    workers that answer a broadcast ping (not for anonymous callers: each one is a
    broadcast)."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    healthy = all(check["ok"] for check in checks.values())
    staff = request.user.is_authenticated and request.user.is_staff
    if staff and request.GET.get("workers") == "1":
        checks["workers"] = _check_workers()
    if not staff:
        checks = {name: {"ok": check["ok"]} for name, check in checks.items()}
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )
