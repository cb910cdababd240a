"""Two overlapping caps adopted at once from the staff admin (PostgreSQL, real connections).

Each adoption checks the "no overlapping adopted caps" rule before it saves, but neither
sees the other's uncommitted adoption: the database's exclusion constraint refuses the
second one when the first commits.  That refusal must read as the rule's message in the
admin, as the API's 409 does, not as a server error; the refused cap stays a draft.
"""

import datetime as dt

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from heatutility.roles import TARIFF_MANAGER
from tariffs.models import PriceCap
from tariffs.services import price_cap_adopt, price_cap_compute
from tests.concurrency import Pause, finish, in_thread, waits_for_a_lock
from tests.customers.factories import NetworkFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
NOW = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
INPUTS = {"fixed_per_year_incl_vat": "512.37", "price_per_gj_incl_vat": "47.38"}


def draft(network, start: dt.date, end: dt.date) -> PriceCap:
    return price_cap_compute(
        network=network,
        method=PriceCap.Method.MAXIMUM_PRICE,
        period_start=start,
        period_end=end,
        inputs=dict(INPUTS),
        now=NOW,
    )


def admin_adopt(*, cap_pk: int, user_pk: int):
    client = Client()
    client.force_login(User.objects.get(pk=user_pk))
    return client.post(
        reverse("admin:tariffs_pricecap_changelist"),
        {"action": "adopt_caps", "_selected_action": [cap_pk]},
        follow=True,
    )


def test_two_overlapping_caps_adopted_at_once_refuse_the_second_with_a_message(monkeypatch):
    network = NetworkFactory(code="cap-race")
    first = draft(network, dt.date(2026, 1, 1), dt.date(2027, 1, 1))
    second = draft(network, dt.date(2026, 7, 1), dt.date(2027, 7, 1))
    manager = User.objects.create_user(username="m", password="x", is_staff=True)
    manager.groups.add(Group.objects.get(name=TARIFF_MANAGER))

    pause = Pause(monkeypatch, PriceCap, "save", after=True)  # adopted, not yet committed
    adopting, adopted = in_thread(price_cap_adopt, cap=first, now=NOW)
    try:
        pause.wait()
        racing, raced = in_thread(admin_adopt, cap_pk=second.pk, user_pk=manager.pk)
        assert waits_for_a_lock(racing, 'UPDATE "tariffs_pricecap"')
    finally:
        pause.released.set()
    finish(adopting, racing)

    assert "error" not in adopted, repr(adopted.get("error"))
    assert "error" not in raced, repr(raced.get("error"))  # was: IntegrityError, a 500 in the admin
    page = raced["value"]
    assert page.status_code == 200
    assert "An adopted price cap already covers part of that period." in page.content.decode()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (PriceCap.Status.ADOPTED, PriceCap.Status.DRAFT)
    assert second.adopted_at is None
