"""Customers set, reset and change their own portal password; staff invite them."""

import re
import uuid

import pytest
from django.core import mail
from django.test import TestCase

from customers.models import Customer
from customers.services import UnableToInvite, portal_invite
from tests.customers.factories import ContractFactory
from tests.customers.test_admin import clerk_client  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password-1"
NEW_PASSWORD = "another-long-password-2"


def _address() -> str:
    # the reset throttle counts per address in the (possibly shared) cache: one per test
    return f"kunde-{uuid.uuid4().hex[:10]}@example.org"


def _link(message) -> str:
    return re.search(r"https?://[^/\s]+(/portal/reset/\S+/)", message.body).group(1)


@pytest.fixture
def customer_user(django_user_model):
    contract = ContractFactory()
    customer = contract.account.customer
    email = _address()
    user = django_user_model.objects.create_user(email, email=email, password=PASSWORD)
    Customer.objects.filter(pk=customer.pk).update(user=user, email=email)
    return user


def _logs_in(client, username, password) -> bool:
    """Through the portal's login form (axes needs the request)."""
    answer = client.post("/portal/login/", {"username": username, "password": password})
    client.logout()
    return answer.status_code == 302 and answer["Location"] == "/portal/"


def _ask_reset(client, email):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post("/portal/password/reset/", {"email": email})


class TestForgottenPassword:
    def test_the_link_sets_a_new_password_once(self, client, customer_user):
        answer = _ask_reset(client, customer_user.email.upper())

        assert answer.status_code == 302
        assert answer["Location"] == "/portal/password/reset/sent/"
        assert [m.to for m in mail.outbox] == [[customer_user.email]]
        link = _link(mail.outbox[0])
        form = client.get(link, follow=True)  # Django swaps the token for a session marker
        assert form.status_code == 200
        assert form.context["validlink"]
        done = client.post(
            form.redirect_chain[-1][0],
            {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        )
        assert done["Location"] == "/portal/reset/done/"

        assert _logs_in(client, customer_user.username, NEW_PASSWORD)
        assert not _logs_in(client, customer_user.username, PASSWORD)
        again = client.get(link, follow=True)
        assert not again.context["validlink"]
        assert "cannot be used" in again.content.decode()

    def test_an_unknown_or_staff_address_gets_the_same_answer_and_no_mail(
        self, client, django_user_model
    ):
        staff_email = _address()
        django_user_model.objects.create_user(
            "staff-1", email=staff_email, password=PASSWORD, is_staff=True
        )

        for email in (_address(), staff_email):
            answer = _ask_reset(client, email)
            assert answer.status_code == 302
            assert answer["Location"] == "/portal/password/reset/sent/"
        assert mail.outbox == []

    def test_at_most_three_mails_an_hour_per_address(self, client, customer_user):
        for _ in range(5):
            assert _ask_reset(client, customer_user.email).status_code == 302

        assert len(mail.outbox) == 3

    def test_the_login_page_links_to_it(self, client):
        assert "/portal/password/reset/" in client.get("/portal/login/").content.decode()


class TestChangePassword:
    def test_a_logged_in_customer_changes_it_with_the_old_one(self, client, customer_user):
        client.force_login(customer_user)
        assert "/portal/password/" in client.get("/portal/").content.decode()

        wrong = client.post(
            "/portal/password/",
            {"old_password": "nope", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        )
        assert wrong.status_code == 200
        assert wrong.context["form"].errors["old_password"]
        changed = client.post(
            "/portal/password/",
            {
                "old_password": PASSWORD,
                "new_password1": NEW_PASSWORD,
                "new_password2": NEW_PASSWORD,
            },
        )
        assert changed["Location"] == "/portal/password/changed/"
        customer_user.refresh_from_db()
        assert customer_user.check_password(NEW_PASSWORD)

    def test_anonymous_is_sent_to_log_in(self, client):
        answer = client.get("/portal/password/")
        assert answer.status_code == 302
        assert answer["Location"].startswith("/portal/login/")


class TestInvitation:
    def test_a_customer_gets_a_login_without_password_and_a_link_to_set_it(self, client):
        contract = ContractFactory()
        customer = contract.account.customer
        customer.email = _address()
        customer.save()

        with TestCase.captureOnCommitCallbacks(execute=True):
            username = portal_invite(customer=customer, base_url="https://heat.example.org/")

        customer.refresh_from_db()
        user = customer.user
        assert username == user.username == customer.email
        assert not user.has_usable_password()
        (message,) = mail.outbox
        assert message.to == [customer.email]
        assert "https://heat.example.org/portal/reset/" in message.body
        form = client.get(_link(message), follow=True)
        client.post(
            form.redirect_chain[-1][0],
            {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        )
        assert _logs_in(client, customer.email, NEW_PASSWORD)
        user.refresh_from_db()
        client.force_login(user)
        assert contract.account.number in client.get("/portal/").content.decode()

    def test_no_address_a_taken_login_or_a_staff_login_is_refused(self, django_user_model):
        customer = ContractFactory().account.customer
        customer.email = ""
        with pytest.raises(UnableToInvite, match="no e-mail address"):
            portal_invite(customer=customer, base_url="https://heat.example.org")

        customer.email = _address()
        django_user_model.objects.create_user(customer.email.upper())
        with pytest.raises(UnableToInvite, match="belongs to someone else"):
            portal_invite(customer=customer, base_url="https://heat.example.org")

        customer.user = django_user_model.objects.create_user("staff-2", is_staff=True)
        with pytest.raises(UnableToInvite, match="staff login"):
            portal_invite(customer=customer, base_url="https://heat.example.org")
        assert mail.outbox == []

    def test_a_login_with_rights_beyond_the_portal_is_not_invited(self, django_user_model):
        # not staff, so not refused as such before: the link, mailed to the address staff
        # entered, handed over a superuser's or a role holder's login (the API honours both)
        from django.contrib.auth.models import Group, Permission

        customer = ContractFactory().account.customer
        customer.email = _address()
        superuser = django_user_model.objects.create_user("root-2", is_superuser=True)
        role_holder = django_user_model.objects.create_user("role-2")
        role_holder.groups.add(Group.objects.create(name="some role"))
        permitted = django_user_model.objects.create_user("perm-2")
        permitted.user_permissions.add(Permission.objects.get(codename="view_invoice"))
        for user in (superuser, role_holder, permitted):
            customer.user = user
            with pytest.raises(UnableToInvite, match="staff login"):
                portal_invite(customer=customer, base_url="https://heat.example.org")
            user.refresh_from_db()
            assert user.email == ""
        assert mail.outbox == []

    def test_the_admin_action_invites_and_reports_each_refusal(self, clerk_client):  # noqa: F811
        ok = ContractFactory().account.customer
        ok.email = _address()
        ok.save()
        no_mail = ContractFactory().account.customer
        no_mail.email = ""
        no_mail.save()

        with TestCase.captureOnCommitCallbacks(execute=True):
            answer = clerk_client.post(
                "/admin/customers/customer/",
                {"action": "invite_to_portal", "_selected_action": [ok.pk, no_mail.pk]},
                follow=True,
            )

        text = answer.content.decode()
        assert "Invited 1 customer(s)." in text
        assert f"{no_mail.name}: {no_mail.name} has no e-mail address" in text
        assert [m.to for m in mail.outbox] == [[ok.email]]
        assert "http://testserver/portal/reset/" in mail.outbox[0].body
