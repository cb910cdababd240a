import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase

from metering.models import IngestBatch, Reading, ReadingIssue, VendorApiKey
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import MeterVendorFactory, add_readings

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


class TestReadingsAdmin:
    def test_staff_issue_a_key_that_is_shown_once_and_stored_hashed(self, admin_client):
        from django.contrib.sessions.models import Session

        vendor = MeterVendorFactory()
        response = admin_client.post(
            "/admin/metering/metervendor/",
            {"action": "issue_key", "_selected_action": [vendor.pk]},
        )
        assert response.status_code == 200  # the key's own page, not a redirect
        assert "no-store" in response["Cache-Control"]
        page = response.content.decode()
        key = page.split("<code>")[1].split("</code>")[0]
        assert key.startswith("hu_")
        # not in a message: the messages cookie is signed, not encrypted, and the session
        # table keeps them in clear until shown
        assert not any(key in m.value for m in response.cookies.values())
        assert not any(key in s.get_decoded().__repr__() for s in Session.objects.all())
        assert key not in admin_client.get("/admin/metering/metervendor/").content.decode()
        stored = VendorApiKey.objects.get(vendor=vendor)
        assert key.startswith("hu_")
        assert key not in stored.key_hash
        assert (
            key
            not in admin_client.get(
                f"/admin/metering/vendorapikey/{stored.pk}/change/"
            ).content.decode()
        )

    def test_upload_a_file_and_see_progress(self, admin_client):
        vendor = MeterVendorFactory(csv_separator=",", csv_decimal_comma=False)
        meter = HeatMeterFactory(vendor=vendor)
        content = (
            f"meter,read_at,energy,volume_m3\n{meter.serial},2026-11-01T00:00:00Z,10.5,1\n".encode()
        )
        with TestCase.captureOnCommitCallbacks(execute=True):
            response = admin_client.post(
                "/admin/metering/ingestbatch/upload/",
                {"vendor": vendor.pk, "file": SimpleUploadedFile("x.csv", content)},
            )
        assert response.status_code == 302
        batch = IngestBatch.objects.get()
        assert (batch.state, batch.accepted) == ("done", 1)
        page = admin_client.get("/admin/metering/ingestbatch/").content.decode()
        assert "<progress" in page

    def test_a_file_above_the_upload_limit_is_refused_on_the_form(self, admin_client, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50
        vendor = MeterVendorFactory(csv_separator=",", csv_decimal_comma=False)
        content = b"meter,read_at,energy,volume_m3\n" + b"M-1,2026-11-01T00:00:00Z,10.5,1\n" * 2

        response = admin_client.post(
            "/admin/metering/ingestbatch/upload/",
            {"vendor": vendor.pk, "file": SimpleUploadedFile("x.csv", content)},
        )

        assert response.status_code == 200  # the form again, with the reason
        (error,) = response.context["form"].errors["file"]
        assert error.startswith(f"file too_large: The file has {len(content)} bytes; at most 50")
        assert not IngestBatch.objects.exists()

    def test_bulk_accept_needs_a_reason_and_records_who(self, admin_client, admin_user):
        inst = MeterInstallationFactory()
        add_readings(inst.meter, [(T0, "100", "1", {"status_code": 4})], status="suspect")
        issue = ReadingIssue.objects.create(
            meter=inst.meter,
            read_at=T0,
            code="fault_status",
            severity="warning",
            message="Meter status code 4.",
            created_at=T0,
        )
        data = {"action": "accept", "_selected_action": [issue.pk]}
        confirm = admin_client.post("/admin/metering/readingissue/", data)
        assert b"why?" in confirm.content
        admin_client.post("/admin/metering/readingissue/", {**data, "reason": "Checked on site"})
        issue.refresh_from_db()
        assert (issue.state, issue.resolved_by, issue.resolution_reason) == (
            "accepted",
            admin_user,
            "Checked on site",
        )
        assert Reading.objects.get(meter=inst.meter).status == "valid"

    def test_edit_a_reading_from_the_queue(self, admin_client):
        inst = MeterInstallationFactory()
        add_readings(inst.meter, [(T0, "100", "1")], status="rejected")
        issue = ReadingIssue.objects.create(
            meter=inst.meter,
            read_at=T0,
            code="register_decrease",
            severity="error",
            message="x",
            created_at=T0,
        )
        response = admin_client.post(
            f"/admin/metering/readingissue/{issue.pk}/edit-reading/",
            {"energy_kwh": "150", "volume_m3": "1", "reason": "Read off the display"},
        )
        assert response.status_code == 302
        reading = Reading.objects.get(meter=inst.meter)
        assert (reading.energy_kwh, reading.status) == (Decimal("150"), "edited")

    def test_an_unknown_issue_is_not_found_not_a_server_error(self, admin_client):
        response = admin_client.get("/admin/metering/readingissue/999999/edit-reading/")
        assert response.status_code == 404


class TestConflictReview:
    def test_applying_delivered_values_edits_the_reading_and_keeps_the_original(
        self, admin_client, admin_user
    ):
        from metering.models import IngestBatch, ReadingConflict, ReadingEdit

        inst = MeterInstallationFactory()
        add_readings(inst.meter, [(T0, "100", "1")])
        batch = IngestBatch.objects.create(
            vendor=MeterVendorFactory(), source="api", received_at=T0
        )
        conflict = ReadingConflict.objects.create(
            batch=batch,
            row=0,
            meter=inst.meter,
            read_at=T0,
            incoming={"energy_value": "0.1015", "energy_unit": "MWh", "volume_m3": "1.02"},
        )
        admin_client.post(
            "/admin/metering/readingconflict/",
            {"action": "apply_incoming", "_selected_action": [conflict.pk]},
        )
        reading = Reading.objects.get(meter=inst.meter)
        assert (reading.energy_kwh, reading.volume_m3, reading.status) == (
            Decimal("101.5"),
            Decimal("1.02"),
            "edited",
        )
        edit = ReadingEdit.objects.get()
        assert edit.original["energy_kwh"] == "100.000000"
        conflict.refresh_from_db()
        assert (conflict.state, conflict.resolved_by) == ("took", admin_user)

    def _conflict(self, energy_value, unit="MWh"):
        from metering.models import IngestBatch, ReadingConflict

        inst = MeterInstallationFactory()
        add_readings(inst.meter, [(T0, "100", "1")])
        batch = IngestBatch.objects.create(
            vendor=MeterVendorFactory(), source="api", received_at=T0
        )
        return ReadingConflict.objects.create(
            batch=batch,
            row=0,
            meter=inst.meter,
            read_at=T0,
            incoming={"energy_value": energy_value, "energy_unit": unit, "volume_m3": "1.02"},
        )

    def test_delivered_units_are_converted_half_up_as_ingestion_does(self, admin_user):
        from django.utils import timezone

        from metering.vee.services import reading_conflicts_resolve

        # the value as an intake keeps it (0.101500 MWh, 6 decimals half up), then
        # converted: 101.5 kWh, as the intake of 0.1015000005 MWh stores it
        conflict = self._conflict("0.1015000005")

        reading_conflicts_resolve(
            conflicts=type(conflict).objects.all(),
            take_incoming=True,
            actor=admin_user,
            now=timezone.now(),
        )

        assert Reading.objects.get(meter=conflict.meter).energy_kwh == Decimal("101.5")
        conflict.refresh_from_db()
        assert conflict.state == "took"

    def test_a_conflict_whose_edit_fails_stays_open_with_the_reading_untouched(
        self, admin_user, monkeypatch
    ):
        from django.utils import timezone

        from metering.vee import services

        conflict = self._conflict("0.2")

        def crash_after_the_edit(**kwargs):
            real_edit(**kwargs)
            raise RuntimeError("worker killed")

        real_edit = services.reading_edit
        monkeypatch.setattr(services, "reading_edit", crash_after_the_edit)
        with pytest.raises(RuntimeError):
            services.reading_conflicts_resolve(
                conflicts=type(conflict).objects.all(),
                take_incoming=True,
                actor=admin_user,
                now=timezone.now(),
            )

        conflict.refresh_from_db()
        assert conflict.state == "open"  # resolved again later: one edit, not two
        assert Reading.objects.get(meter=conflict.meter).energy_kwh == Decimal("100")


def test_rotating_a_key_shows_its_replacement_once_and_revokes_it(admin_client):
    vendor = MeterVendorFactory()
    admin_client.post(
        "/admin/metering/metervendor/", {"action": "issue_key", "_selected_action": [vendor.pk]}
    )
    old = VendorApiKey.objects.get(vendor=vendor)

    response = admin_client.post(
        "/admin/metering/vendorapikey/", {"action": "rotate", "_selected_action": [old.pk]}
    )

    page = response.content.decode()
    key = page.split("<code>")[1].split("</code>")[0]
    old.refresh_from_db()
    assert old.revoked_at is not None
    assert f"replaces {old.prefix}…, now revoked" in page
    new = VendorApiKey.objects.get(vendor=vendor, revoked_at__isnull=True)
    assert key.startswith(f"hu_{new.prefix}_")
    assert not any(key in m.value for m in response.cookies.values())
