"""A removal (or an exchange) and a change of the meter's register maximum at the same
instant.

A removal checks its final registers against the meter's register maximum; a change of
the maximum checks the registers the meter has stored, past removals' final registers
among them (``metering.meters.meter_update``, under the meter's lock).  The removal used
to read the meter without that lock, so each side checked what the other had not
committed yet and both went in: a final register of 50,000 kWh on a meter whose range
now ends at 9,999 kWh.  Now a removal and an exchange lock the meter first (FOR NO KEY
UPDATE, deliveries go on): whichever comes second waits and is checked against what the
first committed.

Two real connections (threads); each interleaving is forced by pausing one side inside
its transaction until PostgreSQL shows the other waiting for a lock.
"""

import datetime as dt
from decimal import Decimal

import pytest

from metering import installations, meters
from metering.installations import UnableToInstallMeter, meter_exchange, meter_remove
from metering.meters import UnableToChangeMeter, meter_update
from metering.models import HeatMeter, MeterInstallation
from tests.concurrency import Pause, finish, in_thread, waits_for_a_lock
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
REMOVED = dt.datetime(2026, 10, 15, 10, tzinfo=dt.UTC)
SMALLER = {"register_max": Decimal("9999")}  # kWh: below the final register below
FINAL = {"final_energy_kwh": Decimal("50000"), "final_volume_m3": Decimal("500")}


def installed() -> MeterInstallation:
    return MeterInstallationFactory(installed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def removing(installation):
    return in_thread(meter_remove, installation=installation, removed_at=REMOVED, **FINAL)


def exchanging(installation):
    return in_thread(
        meter_exchange,
        unit=installation.unit,
        new_meter=HeatMeterFactory(),
        exchanged_at=REMOVED,
        old_final_energy_kwh=FINAL["final_energy_kwh"],
        old_final_volume_m3=FINAL["final_volume_m3"],
    )


def codes(error) -> list[str]:
    return [item.code for item in error.errors]


@pytest.mark.parametrize("remove", [removing, exchanging], ids=["removal", "exchange"])
def test_a_removal_waits_for_the_new_maximum_and_is_checked_against_it(monkeypatch, remove):
    installation = installed()
    pause = Pause(monkeypatch, meters, "meter_update_errors", after=True)
    updating, updated = in_thread(meter_update, meter=installation.meter, values=SMALLER)
    try:
        pause.wait()  # the change holds the meter, its checks done
        thread, outcome = remove(installation)
        waited = waits_for_a_lock(thread, "metering_heatmeter")
    finally:
        pause.released.set()
    finish(updating, thread)

    assert updated.get("error") is None
    assert isinstance(outcome.get("error"), UnableToInstallMeter)
    assert "above_register_max" in codes(outcome["error"])
    installation.refresh_from_db()
    assert (installation.removed_at, installation.final_energy_kwh) == (None, None)
    assert HeatMeter.objects.get(pk=installation.meter_id).register_max == Decimal("9999")
    assert waited


@pytest.mark.parametrize("remove", [removing, exchanging], ids=["removal", "exchange"])
def test_a_new_maximum_waits_for_the_removal_and_is_checked_against_it(monkeypatch, remove):
    installation = installed()
    pause = Pause(monkeypatch, installations, "_final_errors", after=True)
    thread, outcome = remove(installation)
    try:
        pause.wait()  # the removal holds the meter and the installation, its checks done
        updating, updated = in_thread(meter_update, meter=installation.meter, values=SMALLER)
        waited = waits_for_a_lock(updating, "metering_heatmeter")
    finally:
        pause.released.set()
    finish(thread, updating)

    assert outcome.get("error") is None
    assert isinstance(updated.get("error"), UnableToChangeMeter)
    assert codes(updated["error"]) == ["register_max_below_stored"]
    installation.refresh_from_db()
    assert (installation.removed_at, installation.final_energy_kwh) == (REMOVED, Decimal("50000"))
    assert HeatMeter.objects.get(pk=installation.meter_id).register_max == Decimal("99999999")
    assert waited
