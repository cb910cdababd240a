"""Two nightly looks at once never move a re-rating cursor backwards (PostgreSQL).

A look takes its horizon before it reads, and saved ``max(cursor as it read it,
horizon)`` when done.  A look that started earlier and finished later (a slow night, a
beat delivered twice) wrote its earlier horizon over the later one saved meanwhile, and
the next looks read again what had been looked at.  The move is now made in the
database: ``GREATEST(checked_until, horizon)``.
"""

import datetime as dt

import pytest

from billing.models import RerateCursor
from billing.services import contract_changes, rerating
from tests.concurrency import Pause, finish, in_thread

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
NOW = dt.datetime(2026, 12, 2, 2, 0, tzinfo=dt.UTC)
START = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
EARLIER, LATER = (
    dt.datetime(2026, 12, 2, 1, 0, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 2, 1, 30, tzinfo=dt.UTC),
)

LOOKS = {
    "registers": (rerating, rerating.invoices_rerate_changed),
    "tariffs": (rerating, rerating.invoices_rerate_tariff_corrections),
    "contracts": (contract_changes, contract_changes.contracts_rebill_changed),
}


@pytest.mark.parametrize("name", LOOKS)
def test_a_look_that_ends_last_keeps_the_later_horizon(monkeypatch, name):
    module, look = LOOKS[name]
    RerateCursor.objects.create(name=name, checked_until=START)
    horizons = iter([EARLIER, LATER])  # the first look's, then the second's
    monkeypatch.setattr(module, "look_horizon", lambda: next(horizons))
    pause = Pause(monkeypatch, module, "look_horizon", after=True)  # the first, horizon taken

    slow, slow_done = in_thread(look, now=NOW)
    try:
        pause.wait()
        look(now=NOW)  # the second look, all through
        assert RerateCursor.objects.get(name=name).checked_until == LATER
    finally:
        pause.released.set()
    finish(slow)

    assert "error" not in slow_done, repr(slow_done.get("error"))
    # was: 2026-12-02 01:00, the first look's horizon over the second's
    assert RerateCursor.objects.get(name=name).checked_until == LATER
