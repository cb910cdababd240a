import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token


@pytest.fixture
def make_staff(db):
    def make(role: str | None, *, username: str | None = None) -> User:
        user = User.objects.create_user(
            username=username or f"staff-{(role or 'none').replace(' ', '-')}",
            password="a-long-test-password-1",
            is_staff=True,
        )
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def api_client_for():
    from rest_framework.test import APIClient

    def make(user: User) -> APIClient:
        client = APIClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make
