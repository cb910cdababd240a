"""Repeated failed logins lock the username out from that address for a while."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password-1"


@pytest.fixture
def customer(django_user_model):
    return django_user_model.objects.create_user("kunde", password=PASSWORD)


def _login(client: Client, url: str, password: str):
    return client.post(url, {"username": "kunde", "password": password})


@pytest.mark.parametrize("url", ["/portal/login/", "/admin/login/", "/api/auth/login/"])
def test_five_wrong_passwords_lock_out_even_the_right_one(settings, customer, url):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, url, "wrong").status_code == 200  # the form again

    assert _login(client, url, "wrong").status_code == 429
    assert _login(client, url, PASSWORD).status_code == 429


def test_another_address_is_not_locked_out(settings, customer):
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(attacker, "/portal/login/", "wrong")

    response = _login(Client(REMOTE_ADDR="198.51.100.7"), "/portal/login/", PASSWORD)

    assert response.status_code == 302  # logged in, on to the portal


def test_a_successful_login_resets_the_count(settings, customer):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "/portal/login/", "wrong")
    assert _login(client, "/portal/login/", PASSWORD).status_code == 302
    client.logout()

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "/portal/login/", "wrong").status_code == 200
