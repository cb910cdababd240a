"""Staff clients for the metering admin tests."""

import pytest
from django.contrib.auth.models import Group

from heatutility.roles import METERING_OPERATOR


@pytest.fixture
def login(client, django_user_model):
    """Log the test client in as a staff user holding ``role`` (None: no role)."""

    def as_role(role):
        user = django_user_model.objects.create_user(
            (role or "no-role").replace(" ", "-"), password="a-long-test-password-1", is_staff=True
        )
        if role:
            user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        client.user = user
        return client

    return as_role


@pytest.fixture
def operator(login):
    """The test client logged in as a metering operator."""
    return login(METERING_OPERATOR)
