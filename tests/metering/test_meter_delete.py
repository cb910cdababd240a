"""A heat meter is deleted only when nothing was recorded for it (entered by mistake).

``Reading`` has no database foreign key to the meter (docs/readings-storage.md), so the
collector does not see a meter's readings: without the check in
``metering.meters.meter_delete`` a meter with readings and nothing else would go and
leave its readings orphaned.  Installations, findings and edits are kept for the record
too; each reason is itemised (409 through the API, listed on the admin's confirmation
page, for one meter or the selected ones).
"""

import datetime as dt

import pytest
from django.contrib import messages
from rest_framework.test import APIClient

from metering.admin.meters import HeatMeterAdmin
from metering.meters import UnableToDeleteMeter, meter_delete, meter_delete_refusals
from metering.models import HeatMeter, Reading, ReadingEdit, ReadingIssue
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.django_db
READ_AT = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
METERS = "/admin/metering/heatmeter/"


def read(meter):
    """``meter`` with one reading, and nothing else recorded for it."""
    add_readings(meter, [(READ_AT, "1200", "12")])
    return meter


def readings_of(meter_id):
    return Reading.objects.filter(meter_id=meter_id).count()


def deletion(meter_id):
    """The meter's history row of its deletion: (who, why)."""
    row = HeatMeter.history.filter(id=meter_id, history_type="-").get()
    return row.history_user, row.history_change_reason


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password="a-long-test-password-1")


class TestMeterDelete:
    def test_a_meter_with_only_readings_is_kept_and_its_readings_stay(self):
        meter = read(HeatMeterFactory(serial="R-1"))

        with pytest.raises(UnableToDeleteMeter) as caught:
            meter_delete(meter=meter)

        assert caught.value.status_code == 409
        assert caught.value.as_dict() == {
            "message": "Meter Kamstrup R-1 cannot be deleted: it has readings.  A meter taken "
            "out of service is removed from its unit, and kept.",
            "code": "unable_to_delete_meter",
            "errors": [
                {
                    "code": "has_readings",
                    "message": "Meter Kamstrup R-1 cannot be deleted: it has readings.",
                }
            ],
        }
        assert HeatMeter.objects.filter(pk=meter.pk).exists()
        assert readings_of(meter.pk) == 1

    def test_every_reason_to_keep_a_meter_is_itemised(self, superuser):
        meter = read(MeterInstallationFactory().meter)
        ReadingIssue.objects.create(
            meter=meter,
            read_at=READ_AT,
            code="register_decrease",
            severity="error",
            message="down",
            created_at=READ_AT,
        )
        ReadingEdit.objects.create(
            meter=meter,
            read_at=READ_AT,
            original={},
            edited={},
            edited_by=superuser,
            edited_at=READ_AT,
            reason="typo",
        )

        with pytest.raises(UnableToDeleteMeter) as caught:
            meter_delete(meter=meter)

        assert [e.code for e in caught.value.errors] == [
            "has_readings",
            "has_installations",
            "has_findings",
            "has_edits",
        ]
        assert HeatMeter.objects.filter(pk=meter.pk).exists()

    def test_a_meter_entered_by_mistake_is_deleted_by_whom_and_why(
        self, superuser, django_assert_num_queries
    ):
        meter = HeatMeterFactory()
        kept = read(HeatMeterFactory())

        with django_assert_num_queries(1):  # every reason, one query
            assert meter_delete_refusals(meter=kept) != []
        meter_delete(meter=meter, actor=superuser)

        assert not HeatMeter.objects.filter(pk=meter.pk).exists()
        assert deletion(meter.pk) == (superuser, "deleted (entered by mistake)")


class TestMeterDeleteThroughTheApi:
    def client(self, user):
        client = APIClient()
        client.force_authenticate(user)
        return client

    def test_a_meter_with_readings_is_a_409_and_its_readings_stay(self, superuser):
        meter = read(HeatMeterFactory())

        response = self.client(superuser).delete(f"/api/v1/meters/{meter.pk}/")

        assert response.status_code == 409, response.content
        body = response.json()
        assert body["code"] == "unable_to_delete_meter"
        assert [e["code"] for e in body["errors"]] == ["has_readings"]
        assert HeatMeter.objects.filter(pk=meter.pk).exists()
        assert readings_of(meter.pk) == 1

    def test_an_installed_meter_is_refused_with_the_reason_not_a_bare_conflict(self, superuser):
        meter = MeterInstallationFactory().meter

        response = self.client(superuser).delete(f"/api/v1/meters/{meter.pk}/")

        assert response.status_code == 409, response.content
        assert response.json()["code"] == "unable_to_delete_meter"
        assert [e["code"] for e in response.json()["errors"]] == ["has_installations"]

    def test_a_meter_entered_by_mistake_is_deleted_and_the_history_names_the_caller(
        self, superuser
    ):
        meter = HeatMeterFactory()

        response = self.client(superuser).delete(f"/api/v1/meters/{meter.pk}/")

        assert response.status_code == 204, response.content
        assert not HeatMeter.objects.filter(pk=meter.pk).exists()
        assert deletion(meter.pk) == (superuser, "deleted (entered by mistake)")

    def test_the_refusal_is_documented(self, admin_client):
        schema = admin_client.get(
            "/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
        ).json()

        operation = schema["paths"]["/api/v1/meters/{id}/"]["delete"]
        assert "409 `unable_to_delete_meter`" in operation["description"]
        assert "409" in operation["responses"]


class TestMeterDeleteInTheAdmin:
    def test_the_delete_page_says_why_and_posting_it_deletes_nothing(self, admin_client):
        meter = read(HeatMeterFactory(serial="R-1"))

        page = admin_client.get(f"{METERS}{meter.pk}/delete/")
        posted = admin_client.post(f"{METERS}{meter.pk}/delete/", {"post": "yes"})

        assert page.status_code == 200
        assert "Meter Kamstrup R-1 cannot be deleted: it has readings." in page.content.decode()
        assert posted.status_code == 200  # the confirmation page again, with the reason
        assert HeatMeter.objects.filter(pk=meter.pk).exists()
        assert readings_of(meter.pk) == 1

    def test_delete_selected_deletes_none_while_one_is_kept(self, admin_client):
        mistake = HeatMeterFactory()
        kept = read(HeatMeterFactory(serial="R-1"))

        response = admin_client.post(
            METERS,
            {"action": "delete_selected", "_selected_action": [mistake.pk, kept.pk], "post": "yes"},
        )

        assert response.status_code == 200
        assert "Meter Kamstrup R-1 cannot be deleted: it has readings." in response.content.decode()
        assert HeatMeter.objects.filter(pk__in=[mistake.pk, kept.pk]).count() == 2

    def test_a_reading_stored_after_the_confirmation_still_refuses_the_delete(
        self, admin_client, monkeypatch
    ):
        """The reading arrives after the page checked the meter, before it is deleted."""
        meter = HeatMeterFactory(serial="R-1")
        log_deletions = HeatMeterAdmin.log_deletions

        def reading_arrives(admin, request, queryset):
            read(meter)
            return log_deletions(admin, request, queryset)

        monkeypatch.setattr(HeatMeterAdmin, "log_deletions", reading_arrives)

        response = admin_client.post(f"{METERS}{meter.pk}/delete/", {"post": "yes"}, follow=True)

        assert response.redirect_chain == [(f"{METERS}{meter.pk}/delete/", 302)]
        assert [(m.level, m.message) for m in response.context["messages"]] == [
            (
                messages.ERROR,
                "Meter Kamstrup R-1 cannot be deleted: it has readings.  A meter taken out of "
                "service is removed from its unit, and kept.",
            )
        ]
        assert HeatMeter.objects.filter(pk=meter.pk).exists()

    def test_delete_selected_goes_through_the_service_too(self, admin_client, monkeypatch):
        """A reading arrives for the second selected meter after the confirmation: the
        first is not deleted either, and no deletion is logged."""
        first, second = HeatMeterFactory(), HeatMeterFactory(serial="R-2")
        log_deletions = HeatMeterAdmin.log_deletions

        def reading_arrives(admin, request, queryset):
            read(second)
            return log_deletions(admin, request, queryset)

        monkeypatch.setattr(HeatMeterAdmin, "log_deletions", reading_arrives)

        response = admin_client.post(
            METERS,
            {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
            follow=True,
        )

        assert [m.message for m in response.context["messages"]] == [
            "Meter Kamstrup R-2 cannot be deleted: it has readings.  A meter taken out of "
            "service is removed from its unit, and kept."
        ]
        assert HeatMeter.objects.filter(pk__in=[first.pk, second.pk]).count() == 2
        assert not HeatMeter.history.filter(history_type="-").exists()

    def test_a_meter_entered_by_mistake_is_deleted_from_its_page(self, admin_client):
        meter = HeatMeterFactory()

        response = admin_client.post(f"{METERS}{meter.pk}/delete/", {"post": "yes"})

        assert response.status_code == 302
        assert not HeatMeter.objects.filter(pk=meter.pk).exists()
        assert deletion(meter.pk)[1] == "deleted (entered by mistake)"
