import datetime as dt

from billing import tasks
from billing.models import Invoice
from billing.services.runs import billing_run_create, billing_run_issue

NOW = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)
NOV = dt.date(2026, 11, 1)


def bill_month(network, *, start=NOV, issue=True, months=1, kind="invoice", now=NOW, chunk_size=2):
    run = billing_run_create(
        network=network,
        period_start=start,
        months=months,
        kind=kind,
        now=now,
        chunk_size=chunk_size,
        render_pdfs=False,
    )
    tasks.billing_run_start.delay(run.pk)
    run.refresh_from_db()
    if issue:
        billing_run_issue(run=run, issued_at=now)
        run.refresh_from_db()
    return run


def invoice_of(contract, **filters) -> Invoice:
    return Invoice.objects.get(account=contract.account, **filters)


def staff_user(role: str):
    """A staff user holding ``role`` (a heatutility.roles group)."""
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username=role.replace(" ", "_"), is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def staff_with_permissions(username: str, *codenames: str):
    """A staff user holding exactly the permissions ``codenames`` (no role): for what a
    role made of other permissions than the shipped ones may do."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user(username=username, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def api_client(user):
    """An API client logged in as ``user``."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


def client_for(role: str):
    """An API client logged in as a staff user holding ``role`` (a heatutility.roles group)."""
    return api_client(staff_user(role))
