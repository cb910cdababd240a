"""Two callers estimate the same connection's boundary at once (a billing chunk and
the revalidation after an exchange, or two billing workers of a connection shared by
a move-out and a move-in): the second one waits for the first, then works from what it
stored.  Without that both found the value missing, and the second insert failed on
the (connection, day) unique constraint: the chunk or the revalidation failed."""

import datetime as dt

import pytest

from heatutility.timeutil import local_midnight
from metering.models import BoundaryRegister
from metering.services import boundary_registers_ensure
from metering.vee import estimation
from tests.concurrency import Pause, finish, in_thread, waits_for_a_lock
from tests.metering.factories import MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
CPH = "Europe/Copenhagen"
JAN, FEB = dt.date(2026, 1, 1), dt.date(2026, 2, 1)


def test_two_callers_estimating_one_boundary_at_once_both_succeed(monkeypatch):
    inst = MeterInstallationFactory(installed_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    add_readings(
        inst.meter,
        [
            (local_midnight(JAN, CPH) + dt.timedelta(days=20), "1000", "10"),
            (local_midnight(FEB, CPH) + dt.timedelta(days=10), "1400", "14"),
        ],
    )
    connection_id = inst.unit.connection_id
    # the first caller has computed 1 February and not stored it yet
    pause = Pause(monkeypatch, estimation, "estimate", after=True)
    first, first_outcome = in_thread(
        boundary_registers_ensure, connection_ids=[connection_id], dates=[FEB]
    )
    pause.wait()

    second, second_outcome = in_thread(
        boundary_registers_ensure, connection_ids=[connection_id], dates=[FEB]
    )
    # it queues behind the first (and did not find the value missing meanwhile)
    assert waits_for_a_lock(second, "")
    pause.released.set()
    finish(first, second)

    assert "error" not in first_outcome, first_outcome
    assert "error" not in second_outcome, second_outcome
    assert list(
        BoundaryRegister.objects.filter(connection_id=connection_id).values_list(
            "on", "status", "method"
        )
    ) == [(FEB, "estimated", "interpolation")]
