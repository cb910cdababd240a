"""A double click on the staff admin's Add payment / Add refund books once.

The add form carries a one-time key made when it is rendered; the service takes it as
the Idempotency-Key (as the API's header), so the same rendered form sent twice answers
the second time with the first booking and a message instead of booking it again.
"""

import datetime as dt
import re
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import User

from billing.models import Allocation, Payment, Refund
from billing.services.payments import account_credit, payment_record
from tests.billing.factories import billed_network
from tests.billing.helpers import NOW, bill_month

pytestmark = pytest.mark.django_db
KEY = re.compile(r'name="submission_key" value="([^"]+)"')


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_superuser("boss", "boss@example.org", "pw"))
    return client


@pytest.fixture
def account():
    network, (contract,) = billed_network(accounts=1)
    bill_month(network)  # November: 1,360.98 DKK owed
    return contract.account


def rendered(client, url: str) -> dict:
    """The one-time key of the add form as rendered ({} if it has none)."""
    page = client.get(url)
    assert page.status_code == 200
    found = KEY.search(page.content.decode())
    return {"submission_key": found.group(1)} if found else {}


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


class TestAddPaymentSentTwice:
    URL = "/admin/billing/payment/add/"

    def form(self, account, **changes) -> dict:
        return {
            "account": account.pk,
            "amount": "500.00",
            "received_on": "2026-12-05",
            "reference": "",
            "bank_transaction_id": "",
            **changes,
        }

    def test_the_second_submit_answers_with_the_first_payment(self, staff, account):
        form = {**self.form(account), **rendered(staff, self.URL)}

        first = staff.post(self.URL, form)
        again = staff.post(self.URL, form, follow=True)

        assert first.status_code == 302
        payment = Payment.objects.get()  # was: two payments, 1,000.00 DKK paid of 500.00
        assert sum(Allocation.objects.values_list("amount", flat=True)) == D("500.00")
        assert again.redirect_chain[-1][0] == f"/admin/billing/payment/{payment.pk}/change/"
        assert any(
            "sent already" in m and "nothing was booked again" in m for m in messages_of(again)
        )

    def test_a_payment_with_the_banks_id_sent_twice_is_answered_not_refused(self, staff, account):
        form = {**self.form(account, bank_transaction_id="B-80"), **rendered(staff, self.URL)}

        staff.post(self.URL, form)
        again = staff.post(self.URL, form, follow=True)

        assert Payment.objects.get().bank_transaction_id == "B-80"
        assert any("sent already" in m for m in messages_of(again))

    def test_a_new_form_books_a_second_payment_of_the_same_amount(self, staff, account):
        staff.post(self.URL, {**self.form(account), **rendered(staff, self.URL)})
        staff.post(self.URL, {**self.form(account), **rendered(staff, self.URL)})

        assert sorted(Payment.objects.values_list("amount", flat=True)) == [
            D("500.00"),
            D("500.00"),
        ]

    def test_the_same_form_sent_again_with_another_amount_books_nothing(self, staff, account):
        key = rendered(staff, self.URL)
        staff.post(self.URL, {**self.form(account), **key})

        edited = staff.post(self.URL, {**self.form(account, amount="50.00"), **key}, follow=True)

        assert list(Payment.objects.values_list("amount", flat=True)) == [D("500.00")]
        assert any("open again for a new" in m for m in messages_of(edited))


class TestAddRefundSentTwice:
    URL = "/admin/billing/refund/add/"

    @pytest.fixture
    def credit(self, account):
        payment_record(
            account=account, amount=D("2000.00"), received_on=dt.date(2026, 12, 5), now=NOW
        )
        assert account_credit(account=account) == D("639.02")  # 2,000.00 − 1,360.98

    def form(self, account, amount: str) -> dict:
        return {
            "account": account.pk,
            "amount": amount,
            "paid_on": "2026-12-20",
            "reference": "back",
        }

    def test_the_second_submit_pays_nothing_out_again(self, staff, account, credit):
        form = {**self.form(account, "300.00"), **rendered(staff, self.URL)}

        staff.post(self.URL, form)
        again = staff.post(self.URL, form, follow=True)

        refund = Refund.objects.get()  # was: two refunds, 600.00 DKK paid out
        assert account_credit(account=account) == D("339.02")
        assert again.redirect_chain[-1][0] == f"/admin/billing/refund/{refund.pk}/change/"
        assert any("sent already" in m for m in messages_of(again))

    def test_a_refund_of_all_the_credit_sent_twice_is_answered_not_refused(
        self, staff, account, credit
    ):
        form = {**self.form(account, "639.02"), **rendered(staff, self.URL)}

        staff.post(self.URL, form)
        again = staff.post(self.URL, form, follow=True)

        assert Refund.objects.get().amount == D("639.02")
        assert account_credit(account=account) == D("0.00")
        assert any("sent already" in m for m in messages_of(again))
