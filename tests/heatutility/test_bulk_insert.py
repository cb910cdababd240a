import datetime as dt
from decimal import Decimal

import pytest

from billing.models import InstalmentPlan
from heatutility.db import bulk_insert
from tests.customers.factories import AccountFactory

FIELDS = ["account", "year_start", "year_end", "frequency", "last_year_mwh", "estimated_mwh",
          "estimated_m3", "explanation", "created_at"]  # fmt: skip


@pytest.mark.django_db
def test_values_round_trip_exactly_on_every_database():
    """COPY text on PostgreSQL (escaped tabs, new lines, backslashes), bulk_create elsewhere."""
    account = AccountFactory()
    at = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)
    text = "tab\there, new line\nthere, back\\slash, carriage\rreturn, ×, ø"
    bulk_insert(
        InstalmentPlan,
        FIELDS,
        [
            (account.pk, dt.date(2026, 1, 1), dt.date(2027, 1, 1), "monthly",
             Decimal("18.123456"), Decimal("0.000001"), Decimal("-0.5"), text, at),
        ],
    )  # fmt: skip
    plan = InstalmentPlan.objects.get()
    assert (plan.account_id, plan.year_start, plan.year_end, plan.frequency) == (
        account.pk, dt.date(2026, 1, 1), dt.date(2027, 1, 1), "monthly"
    )  # fmt: skip
    assert (plan.last_year_mwh, plan.estimated_mwh, plan.estimated_m3) == (
        Decimal("18.123456"), Decimal("0.000001"), Decimal("-0.5")
    )  # fmt: skip
    assert plan.explanation == text
    assert plan.created_at == at
    assert plan.connections == []  # left out: the model's default, as bulk_create gives it


@pytest.mark.django_db
def test_a_constraint_refuses_the_whole_batch():
    from django.db import IntegrityError, transaction

    account = AccountFactory()
    row = (account.pk, dt.date(2026, 1, 1), dt.date(2027, 1, 1), "monthly", Decimal(1),
           Decimal(1), Decimal(0), "", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))  # fmt: skip
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk_insert(InstalmentPlan, FIELDS, [row, row])  # one plan per account and year
    assert InstalmentPlan.objects.count() == 0
