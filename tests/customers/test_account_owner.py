"""An account that has been supplied keeps its customer (and so its history)."""

import pytest

from customers.models import Account
from tests.billing.helpers import client_for
from tests.customers.factories import AccountFactory, ContractFactory, CustomerFactory

pytestmark = pytest.mark.django_db


def test_the_api_refuses_to_give_a_supplied_account_to_another_customer():
    account = ContractFactory().account
    other = CustomerFactory()

    response = client_for("billing clerk").patch(
        f"/api/v1/accounts/{account.pk}/", {"customer": other.pk}, format="json"
    )

    assert response.status_code == 400
    assert "open a new account" in str(response.json())
    assert Account.objects.get(pk=account.pk).customer_id == account.customer_id


def test_an_account_without_contracts_may_still_be_corrected():
    account = AccountFactory()
    other = CustomerFactory()

    response = client_for("billing clerk").patch(
        f"/api/v1/accounts/{account.pk}/", {"customer": other.pk}, format="json"
    )

    assert response.status_code == 200
    assert Account.objects.get(pk=account.pk).customer_id == other.pk


def test_the_billing_address_of_a_supplied_account_can_change():
    account = ContractFactory().account

    response = client_for("billing clerk").patch(
        f"/api/v1/accounts/{account.pk}/", {"billing_city": "Aarhus"}, format="json"
    )

    assert response.status_code == 200
    assert Account.objects.get(pk=account.pk).billing_city == "Aarhus"


def test_the_admin_refuses_it_too(admin_client):
    account = ContractFactory().account
    other = CustomerFactory()
    page = admin_client.get(f"/admin/customers/account/{account.pk}/change/")
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update({"customer": other.pk, "network": account.network_id})
    for prefix_form in page.context["inline_admin_formsets"]:
        management = prefix_form.formset.management_form
        for name, field in management.fields.items():
            data[f"{management.prefix}-{name}"] = management.initial.get(name, field.initial)
        for inline_form in prefix_form.formset.forms:
            for name, value in inline_form.initial.items():
                data[f"{inline_form.prefix}-{name}"] = value if value is not None else ""
            data[f"{inline_form.prefix}-id"] = inline_form.instance.pk

    response = admin_client.post(f"/admin/customers/account/{account.pk}/change/", data)

    assert response.status_code == 200  # the form again, with the error
    assert "open a new account" in response.content.decode()
    assert Account.objects.get(pk=account.pk).customer_id == account.customer_id
