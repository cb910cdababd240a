"""README: ``HEATUTILITY_TIME_ZONE`` is the default zone for new networks (and beat)."""

import pytest
from rest_framework.test import APIClient

from customers.models import Network

pytestmark = pytest.mark.django_db


def test_a_network_created_without_a_zone_takes_the_configured_one(settings):
    settings.TIME_ZONE = "Europe/Helsinki"  # HEATUTILITY_TIME_ZONE=Europe/Helsinki

    assert Network(code="vantaa", name="Vantaa", price_area="FI").time_zone == "Europe/Helsinki"


def test_the_api_creates_a_network_in_the_configured_zone(settings, django_user_model):
    settings.TIME_ZONE = "Europe/Stockholm"
    admin = django_user_model.objects.create_superuser("root", password="a-long-test-password-1")
    client = APIClient()
    client.force_authenticate(admin)

    response = client.post(
        "/api/v1/networks/",
        {"code": "kiruna", "name": "Kiruna", "price_area": "SE1"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert response.json()["time_zone"] == "Europe/Stockholm"
    assert Network.objects.get(code="kiruna").time_zone == "Europe/Stockholm"
