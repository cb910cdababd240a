"""Two electricity-charge stores of one price area and kind at the same instant.

``services.electricity_charges_store`` refuses a charge whose hour band covers hours of
another band's days (the database's exclusion constraint binds one band only).  It read
the stored charges and checked against them, but two stores in the same instant did not
see each other's new rows: an all-day grid tariff and a 17–21 peak band for the same days
were both stored, and the hourly price took whichever the frame applied last.  The store
now serialises per (price area, kind) on PostgreSQL, so the second one waits, sees the
first one's charge and is refused (``overlap``).

Two real connections (threads); the interleaving is forced by pausing the first store
just before it inserts.
"""

import datetime as dt
from decimal import Decimal as D

import pytest

from tariffs.imports import ChargeRow, ImportRejected
from tariffs.models import ElectricityCharge
from tariffs.services import electricity_charges_store
from tests.concurrency import Pause, finish, in_thread, waits_for_a_lock

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def row(hour_from: int, hour_to: int, amount: str) -> ChargeRow:
    return ChargeRow(
        row=None,
        price_area="DK2",
        kind="grid",
        valid_from=dt.date(2026, 1, 1),
        valid_to=None,
        hour_from=hour_from,
        hour_to=hour_to,
        amount_per_mwh=D(amount),
        currency="DKK",
    )


def test_two_overlapping_bands_stored_at_once_are_not_both_kept(monkeypatch):
    pause = Pause(monkeypatch, ElectricityCharge.objects, "bulk_create")
    first, first_out = in_thread(electricity_charges_store, rows=[row(0, 24, "200")])
    pause.wait()  # the all-day charge checked, not inserted yet
    second, second_out = in_thread(electricity_charges_store, rows=[row(17, 21, "450")])
    waits_for_a_lock(second, "", seconds=3)
    pause.released.set()
    finish(first, second)
    assert "error" not in first_out, first_out
    assert isinstance(second_out.get("error"), ImportRejected), second_out
    assert [e.code for e in second_out["error"].errors] == ["overlap"]
    assert list(
        ElectricityCharge.objects.values_list("hour_from", "hour_to", "amount_per_mwh")
    ) == [(0, 24, D("200.0000"))]
