"""The admin's "rerun validation for a meter" form refuses times it cannot work with."""

from unittest import mock

import pytest
from django.urls import reverse

from tests.metering.factories import HeatMeterFactory

pytestmark = pytest.mark.django_db
URL = reverse("admin:metering_ingestbatch_vee_rerun")


def rerun(client, meter, start, end):
    with mock.patch("metering.tasks.vee_rerun.delay") as delay:
        response = client.post(URL, {"meter": meter.pk, "start": start, "end": end})
    return response, delay


def test_a_valid_window_is_queued(operator):
    meter = HeatMeterFactory()
    response, delay = rerun(operator, meter, "2026-10-01 00:00", "2026-10-31 23:00")
    assert response.status_code == 302
    delay.assert_called_once()
    assert delay.call_args.args[0] == meter.pk


def test_an_end_before_the_start_is_refused(operator):
    response, delay = rerun(operator, HeatMeterFactory(), "2026-10-31 00:00", "2026-10-01 00:00")
    assert response.status_code == 200
    assert response.context["form"].errors == {"end": ["The end lies before the start."]}
    delay.assert_not_called()


def test_a_time_in_year_one_is_refused(operator):
    response, delay = rerun(operator, HeatMeterFactory(), "0001-01-01 00:00", "2026-10-01 00:00")
    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["start"]
    delay.assert_not_called()
