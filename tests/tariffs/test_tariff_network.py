"""A tariff in use keeps its network (``Tariff.clean``), through the model, the API and the admin."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from heatutility.roles import TARIFF_MANAGER
from tariffs.models import Tariff
from tests.customers.factories import NetworkFactory, ServiceConnectionFactory
from tests.tariffs.factories import TariffAssignmentFactory, TariffFactory, TariffVersionFactory
from tests.tariffs.test_admin import login
from tests.tariffs.test_api import client_for

pytestmark = pytest.mark.django_db


class TestTariffKeepsItsNetwork:
    def test_a_tariff_with_a_version_keeps_its_network(self):
        tariff = TariffFactory()
        TariffVersionFactory(tariff=tariff)  # a draft already carries prices of its network
        tariff.network = NetworkFactory(code="away-net")

        with pytest.raises(ValidationError) as err:
            tariff.full_clean()

        assert list(err.value.message_dict) == ["network"]

    def test_a_tariff_with_assignments_keeps_its_network(self):
        connection = ServiceConnectionFactory()
        tariff = TariffFactory(network=connection.network)
        TariffAssignmentFactory(tariff=tariff, connection=connection)
        tariff.network = NetworkFactory(code="away-net")

        with pytest.raises(ValidationError) as err:
            tariff.full_clean()

        assert list(err.value.message_dict) == ["network"]

    def test_a_tariff_not_yet_in_use_may_move_to_another_network(self):
        tariff = TariffFactory()
        tariff.network = NetworkFactory(code="away-net")

        tariff.full_clean()

    def test_the_api_refuses_moving_a_tariff_in_use_on_the_network_field(self):
        home = NetworkFactory(code="home-net")
        tariff = TariffFactory(network=home)
        TariffVersionFactory(tariff=tariff, approved=True)
        manager = client_for(TARIFF_MANAGER, "mgr-move")

        response = manager.patch(
            f"/api/v1/tariffs/{tariff.pk}/",
            {"network": NetworkFactory(code="away-net").pk},
            format="json",
        )

        assert response.status_code == 400, response.content
        assert [e.get("field") for e in response.json()["errors"]] == ["network"]
        assert Tariff.objects.get(pk=tariff.pk).network == home

    def test_the_admin_refuses_moving_a_tariff_in_use_on_the_form(self):
        home = NetworkFactory(code="home-net")
        tariff = TariffFactory(network=home)
        TariffVersionFactory(tariff=tariff, approved=True)
        away = NetworkFactory(code="away-net")

        response = login(TARIFF_MANAGER, "m").post(
            reverse("admin:tariffs_tariff_change", args=[tariff.pk]),
            {
                "network": away.pk,
                "code": tariff.code,
                "name": tariff.name,
                "customer_class": "",
                "versions-TOTAL_FORMS": "0",
                "versions-INITIAL_FORMS": "0",
                "versions-MIN_NUM_FORMS": "0",
                "versions-MAX_NUM_FORMS": "1000",
            },
        )

        assert response.status_code == 200  # the form again, with the reason
        assert "its network cannot change" in response.content.decode()
        assert Tariff.objects.get(pk=tariff.pk).network == home
