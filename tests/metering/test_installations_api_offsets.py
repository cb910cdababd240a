"""The staff API takes the moment a meter was installed, removed or exchanged with its UTC
offset.  A wall time without one was read in the server's ``TIME_ZONE``, silently (and
the autumn night's repeated 02:30 as summer time), so an installation could start an
hour away from the moment the fitter wrote down: now it is refused on its field, and
nothing is stored."""

import datetime as dt

import pytest

from heatutility.roles import METERING_OPERATOR
from metering.models import MeterInstallation
from tests.billing.helpers import client_for
from tests.customers.factories import BuildingInterfaceUnitFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory

pytestmark = pytest.mark.django_db
INSTALLED = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def refusals(response) -> list[tuple[str, str]]:
    return [(e["code"], e["field"]) for e in response.json()["errors"]]


def install(moment: str):
    return client_for(METERING_OPERATOR).post(
        "/api/v1/meter-installations/install/",
        {
            "meter": HeatMeterFactory().pk,
            "unit": BuildingInterfaceUnitFactory().pk,
            "installed_at": moment,
        },
        format="json",
    )


@pytest.mark.parametrize("moment", ["2026-03-01T10:00:00", "2026-10-25T02:30:00", "2026-03-01"])
def test_an_installation_moment_without_offset_is_refused(moment):
    response = install(moment)

    assert response.status_code == 400, response.content
    assert refusals(response) == [("missing_offset", "installed_at")]
    assert "with its UTC offset" in response.json()["errors"][0]["message"]
    assert not MeterInstallation.objects.exists()


@pytest.mark.parametrize("moment", ["2026-10-25T02:30:00+02:00", "2026-10-25T00:30:00Z"])
def test_the_same_moment_with_an_offset_is_stored_as_that_instant(moment):
    response = install(moment)

    assert response.status_code == 201, response.content
    assert MeterInstallation.objects.get().installed_at == dt.datetime(
        2026, 10, 25, 0, 30, tzinfo=dt.UTC
    )


def test_a_removal_and_an_exchange_without_offset_are_refused_and_nothing_changes():
    old = MeterInstallationFactory(installed_at=INSTALLED)
    client = client_for(METERING_OPERATOR)

    removal = client.post(
        f"/api/v1/meter-installations/{old.pk}/remove/",
        {"removed_at": "2026-03-01T10:00:00", "final_energy_kwh": "2", "final_volume_m3": "10"},
        format="json",
    )
    exchange = client.post(
        "/api/v1/meter-installations/exchange/",
        {
            "unit": old.unit_id,
            "old_installation": old.pk,
            "new_meter": HeatMeterFactory().pk,
            "exchanged_at": "2026-03-01T10:00:00",
            "old_final_energy_kwh": "4.3",
            "old_final_volume_m3": "43",
        },
        format="json",
    )

    assert (removal.status_code, exchange.status_code) == (400, 400)
    assert refusals(removal) == [("missing_offset", "removed_at")]
    assert refusals(exchange) == [("missing_offset", "exchanged_at")]
    old.refresh_from_db()
    assert old.removed_at is None
    assert MeterInstallation.objects.count() == 1
