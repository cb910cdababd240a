"""Every admin page of every registered model, and every GET of the staff API, answers
without a server error on the demo's data (three admin 500s were once found by hand)."""

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import NoReverseMatch, reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_data():
    """The demo's customers, readings and tariffs, a billed and issued October, plans."""
    import customers.demo
    import metering.demo
    import tariffs.demo
    from billing import tasks
    from billing.services.aconto import instalment_plans_create
    from billing.services.payments import payment_record
    from billing.services.runs import billing_run_create, billing_run_issue
    from heatutility.demo import DemoContext

    now = dt.datetime(2026, 11, 27, 8, tzinfo=dt.UTC)
    ctx = DemoContext(as_of=dt.date(2026, 11, 27), size=3, seed=1, stdout=io.StringIO())
    for step in (customers.demo, metering.demo, tariffs.demo):
        step.run(ctx)
    run = billing_run_create(
        network=ctx.network, period_start=dt.date(2026, 10, 1), now=now, render_pdfs=False
    )
    tasks.billing_run_start.delay(run.pk)
    run.refresh_from_db()
    billing_run_issue(run=run, issued_at=now)
    instalment_plans_create(
        network=ctx.network, year_start=dt.date(2026, 11, 1), frequency="monthly", now=now
    )
    account = ctx.network.accounts.order_by("pk").first()
    payment_record(account=account, amount=Decimal("100.00"), received_on=now.date(), now=now)


def _pages(model, model_admin):
    opts = model._meta
    name = f"admin:{opts.app_label}_{opts.model_name}"
    yield reverse(f"{name}_changelist")
    if model_admin.search_fields:
        yield reverse(f"{name}_changelist") + "?q=1"
    yield reverse(f"{name}_add")
    first = model._default_manager.order_by("pk").first()
    if first is not None:
        for view in ("change", "history", "delete"):
            try:
                yield reverse(f"{name}_{view}", args=[first.pk])
            except NoReverseMatch:
                continue


def test_every_admin_page_opens_on_the_demo_data(client, demo_data):
    """As a superuser (every form and action) and as an auditor (every page read-only)."""
    from django.contrib.auth.models import Group

    from heatutility.roles import AUDITOR

    auditor = User.objects.create_user("auditor", is_staff=True)
    auditor.groups.add(Group.objects.get(name=AUDITOR))
    users = [User.objects.create_superuser("smoke", "smoke@example.org", "pw"), auditor]
    opened, failures = 0, []
    for user in users:
        client.force_login(user)
        for model, model_admin in admin.site._registry.items():
            for url in _pages(model, model_admin):
                response = client.get(url)
                opened += 1
                if response.status_code >= 500:
                    failures.append((user.username, url, response.status_code))
    assert failures == []
    assert opened > 300  # every registered model for both users, not an empty registry


def _api_paths(client) -> list[str]:
    """Every GET of the OpenAPI schema: lists, and details of the first listed object."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    lists = [p for p, ops in schema["paths"].items() if "get" in ops and "{" not in p]
    paths = list(lists)
    for path, ops in schema["paths"].items():
        if "get" not in ops or path.count("{") != 1 or "{id}" not in path:
            continue
        listing = path.split("{id}")[0]
        if listing not in lists:
            continue
        body = client.get(listing).json()
        rows = body.get("results", []) if isinstance(body, dict) else body
        if rows and isinstance(rows[0], dict) and "id" in rows[0]:
            paths.append(path.replace("{id}", str(rows[0]["id"])))
    return paths


def test_every_staff_api_get_answers_without_a_server_error(demo_data):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(User.objects.create_superuser("api", "api@example.org", "pw"))
    paths = _api_paths(client)
    failures = [(p, r.status_code) for p in paths if (r := client.get(p)).status_code >= 500]
    assert failures == []
    assert len(paths) > 40
    assert sum("{" not in p and p.rstrip("/").split("/")[-1].isdigit() for p in paths) > 10
