"""An exchange replaces the installation its caller had in front of them, or nothing.

Two staff members (or a staff member and an API client) exchange the meter of one unit
from what they saw a moment ago.  The first exchange installs meter B in place of A;
the second still means A, with A's final registers.  Without naming A the second would
remove B, the meter the first exchange just installed, with A's registers as B's final
ones.  ``meter_exchange(old_installation=…)`` checks the unit's open installation under
the unit's lock: another one is a conflict (409) and nothing changes.

The interleaving is made deterministic: the first exchange commits before the second
call reaches the service.
"""

import datetime as dt
from decimal import Decimal

import pytest

from heatutility.errors import ConflictError
from heatutility.roles import METERING_OPERATOR
from metering import installations
from metering.installations import (
    InstallationAlreadyRemoved,
    InstallationChanged,
    UnableToInstallMeter,
    meter_exchange,
    meter_remove,
)
from metering.models import MeterInstallation
from tests.billing.helpers import client_for
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory

pytestmark = pytest.mark.django_db
EXCHANGE = "/api/v1/meter-installations/exchange/"
INSTALLED = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
FIRST = dt.datetime(2025, 10, 15, 8, tzinfo=dt.UTC)  # the colleague's exchange, A → B
SECOND = dt.datetime(2025, 10, 15, 9, tzinfo=dt.UTC)  # the stale one, still meaning A


def installed_a():
    return MeterInstallationFactory(installed_at=INSTALLED, meter__serial="A-1")


def colleague_exchanges(a):
    """The first exchange: meter B replaces A (A's final registers 4,300 kWh, 43 m³)."""
    _old, new = meter_exchange(
        unit=a.unit,
        new_meter=HeatMeterFactory(serial="B-2"),
        exchanged_at=FIRST,
        old_final_energy_kwh=Decimal("4300"),
        old_final_volume_m3=Decimal("43"),
    )
    return new


def the_units_installations(unit):
    return list(
        MeterInstallation.objects.filter(unit=unit)
        .order_by("installed_at")
        .values_list("meter__serial", "removed_at", "final_energy_kwh")
    )


AFTER_THE_FIRST = [("A-1", FIRST, Decimal("4300.000000")), ("B-2", None, None)]


class TestMeterExchangeOfTheExpectedInstallation:
    def test_a_stale_installation_is_a_conflict_and_the_meter_installed_meanwhile_stays(self):
        a = installed_a()  # what the second caller saw
        b = colleague_exchanges(a)
        history = MeterInstallation.history.filter(id=b.pk).count()

        with pytest.raises(InstallationChanged) as caught:
            meter_exchange(
                unit=a.unit,
                old_installation=a,
                new_meter=HeatMeterFactory(serial="C-3"),
                exchanged_at=SECOND,
                old_final_energy_kwh=Decimal("4310"),  # read off A, not B
                old_final_volume_m3=Decimal("43.1"),
            )

        message = (
            f"Kamstrup A-1 is no longer the meter in {a.unit}: it was removed at "
            "2025-10-15T08:00:00+00:00, and Kamstrup B-2 has been installed there since "
            "2025-10-15T08:00:00+00:00; nothing was changed."
        )
        assert isinstance(caught.value, ConflictError)
        assert caught.value.status_code == 409
        assert caught.value.as_dict() == {
            "message": message,
            "code": "installation_changed",
            "errors": [
                {"code": "installation_changed", "field": "old_installation", "message": message}
            ],
        }
        assert the_units_installations(a.unit) == AFTER_THE_FIRST
        assert MeterInstallation.history.filter(id=b.pk).count() == history

    def test_an_installation_removed_meanwhile_is_a_conflict_too(self):
        a = installed_a()
        meter_remove(
            installation=MeterInstallation.objects.get(pk=a.pk),
            removed_at=FIRST,
            final_energy_kwh=Decimal("4300"),
            final_volume_m3=Decimal("43"),
        )

        with pytest.raises(InstallationChanged, match="it was removed at 2025-10-15T08:00"):
            meter_exchange(
                unit=a.unit,
                old_installation=a,
                new_meter=HeatMeterFactory(),
                exchanged_at=SECOND,
                old_final_energy_kwh=Decimal("4310"),
                old_final_volume_m3=Decimal("43.1"),
            )

        assert MeterInstallation.objects.filter(unit=a.unit).count() == 1

    def test_the_installation_still_open_is_exchanged(self):
        a = installed_a()

        old, new = meter_exchange(
            unit=a.unit,
            old_installation=a,
            new_meter=HeatMeterFactory(serial="B-2"),
            exchanged_at=FIRST,
            old_final_energy_kwh=Decimal("4300"),
            old_final_volume_m3=Decimal("43"),
        )

        assert (old.pk, new.unit_id) == (a.pk, a.unit_id)
        assert the_units_installations(a.unit) == AFTER_THE_FIRST

    def test_an_installation_of_another_unit_is_refused(self):
        a = installed_a()
        elsewhere = MeterInstallationFactory(installed_at=INSTALLED)

        with pytest.raises(UnableToInstallMeter) as caught:
            meter_exchange(
                unit=a.unit,
                old_installation=elsewhere,
                new_meter=HeatMeterFactory(),
                exchanged_at=FIRST,
                old_final_energy_kwh=Decimal("4300"),
                old_final_volume_m3=Decimal("43"),
            )

        assert [(e.code, e.field) for e in caught.value.errors] == [
            ("other_unit", "old_installation")
        ]
        assert caught.value.status_code == 422
        assert MeterInstallation.objects.filter(removed_at__isnull=False).count() == 0


class TestExchangeInTheAdminAfterAnotherExchange:
    def test_the_form_opened_for_a_replaced_meter_refuses_and_leaves_the_new_one(
        self, operator, monkeypatch
    ):
        """The colleague's exchange commits after the view found A open, before the
        service takes its lock."""
        a = installed_a()
        real = installations.meter_exchange

        def colleague_first(**values):
            colleague_exchanges(a)
            return real(**values)

        monkeypatch.setattr(installations, "meter_exchange", colleague_first)

        response = operator.post(
            f"/admin/metering/meterinstallation/{a.pk}/exchange/",
            {
                "exchanged_at": "2025-10-15T09:00:00+00:00",
                "old_final_energy_kwh": "4310",
                "old_final_volume_m3": "43.1",
                "new_meter": HeatMeterFactory(serial="C-3").pk,
                "new_initial_energy_kwh": "0",
                "new_initial_volume_m3": "0",
            },
        )

        assert response.status_code == 200
        (error,) = response.context["form"].non_field_errors()
        assert error.startswith("Kamstrup A-1 is no longer the meter in ")
        assert "Kamstrup B-2 has been installed there since" in error
        assert the_units_installations(a.unit) == AFTER_THE_FIRST


class TestExchangeThroughTheApi:
    @pytest.fixture(autouse=True)
    def meter_c(self):
        self.meter_c = HeatMeterFactory(serial="C-3")

    def body(self, a, **fields):
        return {
            "unit": a.unit_id,
            "new_meter": self.meter_c.pk,
            "exchanged_at": "2025-10-15T09:00:00Z",
            "old_final_energy_kwh": "4310",
            "old_final_volume_m3": "43.1",
            **fields,
        }

    def test_naming_a_replaced_installation_is_a_409_and_nothing_changes(self):
        a = installed_a()
        b = colleague_exchanges(a)
        client = client_for(METERING_OPERATOR)

        response = client.post(EXCHANGE, self.body(a, old_installation=a.pk), format="json")

        assert response.status_code == 409, response.content
        body = response.json()
        assert body["code"] == "installation_changed"
        assert [(e["code"], e["field"]) for e in body["errors"]] == [
            ("installation_changed", "old_installation")
        ]
        assert body["message"].endswith("; nothing was changed.")
        assert the_units_installations(a.unit) == AFTER_THE_FIRST

        # the client looks again: B is the meter to replace, with B's registers
        retry = client.post(
            EXCHANGE,
            self.body(a, old_installation=b.pk, old_final_energy_kwh="12"),
            format="json",
        )

        assert retry.status_code == 201, retry.content
        assert [row["id"] for row in retry.json()][:1] == [b.pk]
        assert the_units_installations(a.unit)[1:] == [
            ("B-2", SECOND, Decimal("12.000000")),
            ("C-3", None, None),
        ]

    def test_an_installation_of_another_unit_is_a_422(self):
        a = installed_a()
        elsewhere = MeterInstallationFactory(installed_at=INSTALLED)

        response = client_for(METERING_OPERATOR).post(
            EXCHANGE, self.body(a, old_installation=elsewhere.pk), format="json"
        )

        assert response.status_code == 422, response.content
        assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [
            ("other_unit", "old_installation")
        ]
        assert MeterInstallation.objects.filter(removed_at__isnull=False).count() == 0

    def test_the_field_is_optional_and_documented(self, admin_client):
        a = installed_a()

        response = client_for(METERING_OPERATOR).post(EXCHANGE, self.body(a), format="json")
        schema = admin_client.get(
            "/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
        ).json()

        assert response.status_code == 201, response.content
        request = schema["components"]["schemas"]["ExchangeRequest"]
        assert "old_installation" not in request["required"]
        assert request["properties"]["old_installation"]["type"] == "integer"
        assert (
            "409 `installation_changed`" in request["properties"]["old_installation"]["description"]
        )
        operation = schema["paths"][EXCHANGE]["post"]
        assert "409" in operation["responses"]


# --- a removal racing an exchange -------------------------------------------------------

EARLIER = dt.datetime(2025, 10, 15, 7, tzinfo=dt.UTC)  # the removal's time, before FIRST


class TestMeterRemoveAfterAnExchange:
    """A removal was started from A's open installation; an exchange of the unit commits
    first.  The removal, earlier in time, must not move A's removal to 07:00 with its
    own registers (B's consumption from 08:00 would then start from A's wrong final)."""

    def test_a_stale_installation_is_a_conflict_and_the_exchange_stands(self):
        a = installed_a()  # what the removal started from
        colleague_exchanges(a)
        history = MeterInstallation.history.filter(id=a.pk).count()

        with pytest.raises(InstallationAlreadyRemoved) as caught:
            meter_remove(
                installation=a,
                removed_at=EARLIER,
                final_energy_kwh=Decimal("4250"),
                final_volume_m3=Decimal("42.5"),
            )

        message = (
            f"Meter Kamstrup A-1 was already removed from {a.unit} at "
            "2025-10-15T08:00:00+00:00 (final registers 4300.000000 kWh, 43.0000 m³); "
            "nothing was changed."
        )
        assert isinstance(caught.value, ConflictError)
        assert caught.value.as_dict() == {
            "message": message,
            "code": "already_removed",
            "errors": [{"code": "already_removed", "field": "removed_at", "message": message}],
        }
        assert the_units_installations(a.unit) == AFTER_THE_FIRST
        assert MeterInstallation.history.filter(id=a.pk).count() == history

    def test_a_second_removal_from_the_same_stale_object_is_refused(self):
        a = installed_a()
        meter_remove(
            installation=MeterInstallation.objects.get(pk=a.pk),  # another user's copy
            removed_at=FIRST,
            final_energy_kwh=Decimal("4300"),
            final_volume_m3=Decimal("43"),
        )

        with pytest.raises(InstallationAlreadyRemoved):
            meter_remove(
                installation=a,
                removed_at=EARLIER,
                final_energy_kwh=Decimal("4250"),
                final_volume_m3=Decimal("42.5"),
            )

        assert the_units_installations(a.unit) == [("A-1", FIRST, Decimal("4300.000000"))]


def exchange_commits_first(monkeypatch, a):
    """The colleague's exchange commits after the view loaded A, before the service
    (which the exchange itself calls too: only the view's call is preceded by it)."""
    real = installations.meter_remove
    started = []

    def colleague_first(**values):
        if not started:
            started.append(True)
            colleague_exchanges(a)
        return real(**values)

    monkeypatch.setattr(installations, "meter_remove", colleague_first)


class TestRemoveThroughTheApiAndTheAdminAfterAnExchange:
    def test_the_api_answers_409_and_the_exchange_stands(self, monkeypatch):
        a = installed_a()
        exchange_commits_first(monkeypatch, a)

        response = client_for(METERING_OPERATOR).post(
            f"/api/v1/meter-installations/{a.pk}/remove/",
            {
                "removed_at": "2025-10-15T07:00:00Z",
                "final_energy_kwh": "4250",
                "final_volume_m3": "42.5",
            },
            format="json",
        )

        assert response.status_code == 409, response.content
        assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [
            ("already_removed", "removed_at")
        ]
        assert the_units_installations(a.unit) == AFTER_THE_FIRST

    def test_the_admin_form_says_so_and_the_exchange_stands(self, operator, monkeypatch):
        a = installed_a()
        exchange_commits_first(monkeypatch, a)

        response = operator.post(
            f"/admin/metering/meterinstallation/{a.pk}/remove/",
            {
                "removed_at": "2025-10-15T07:00:00+00:00",
                "final_energy_kwh": "4250",
                "final_volume_m3": "42.5",
            },
        )

        assert response.status_code == 200
        form = response.context["form"]
        assert form.errors["removed_at"][0].startswith("Meter Kamstrup A-1 was already removed")
        assert the_units_installations(a.unit) == AFTER_THE_FIRST
