"""A refund or payment the API client sends again (its first request timed out, the
answer was lost on the way back) with the same ``Idempotency-Key`` is booked once: the
second answer is the first refund or payment.  Before, a retried refund of 300.00 paid
600.00 out of 840.65 of credit, and a retried payment of 100.00 booked 200.00.

Figures: ``credit_from_note_and_overpayment`` (tests/billing/test_refunds.py), 840.65 of
credit: 740.65 a credit note left and 100.00 overpaid."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User

from billing.models import Payment, Refund
from billing.services.payments import account_credit
from heatutility.roles import BILLING_CLERK
from tests.billing.helpers import api_client, client_for
from tests.billing.test_refunds import credit_from_note_and_overpayment

pytestmark = pytest.mark.django_db
D = Decimal


class TestARefundSentTwice:
    def test_with_the_same_key_pays_once_and_answers_the_first(self):
        account, _note, _overpaid = credit_from_note_and_overpayment()
        clerk = client_for(BILLING_CLERK)
        body = {"account": account.pk, "amount": "300.00", "paid_on": "2026-12-22"}

        first = clerk.post(
            "/api/v1/billing/refunds/", body, format="json", HTTP_IDEMPOTENCY_KEY="r-1"
        )
        again = clerk.post(
            "/api/v1/billing/refunds/", body, format="json", HTTP_IDEMPOTENCY_KEY="r-1"
        )

        assert first.status_code == 201, first.json()
        assert again.status_code == 201, again.json()
        assert again.json()["id"] == first.json()["id"]
        assert list(Refund.objects.filter(account=account).values_list("amount", flat=True)) == [
            D("300.00")
        ]
        assert account_credit(account=account) == D("540.65")

    def test_another_key_is_another_refund(self):
        account, _note, _overpaid = credit_from_note_and_overpayment()
        clerk = client_for(BILLING_CLERK)
        body = {"account": account.pk, "amount": "300.00", "paid_on": "2026-12-22"}

        clerk.post("/api/v1/billing/refunds/", body, format="json", HTTP_IDEMPOTENCY_KEY="r-1")
        clerk.post("/api/v1/billing/refunds/", body, format="json", HTTP_IDEMPOTENCY_KEY="r-2")

        assert account_credit(account=account) == D("240.65")

    def test_the_same_key_for_another_refund_is_refused_and_nothing_is_paid(self):
        account, _note, _overpaid = credit_from_note_and_overpayment()
        clerk = client_for(BILLING_CLERK)
        body = {"account": account.pk, "amount": "300.00", "paid_on": "2026-12-22"}
        clerk.post("/api/v1/billing/refunds/", body, format="json", HTTP_IDEMPOTENCY_KEY="r-1")

        other = clerk.post(
            "/api/v1/billing/refunds/",
            {**body, "amount": "200.00"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="r-1",
        )

        assert other.status_code == 422, other.json()
        assert other.json()["code"] == "idempotency_key_reused"
        assert account_credit(account=account) == D("540.65")


class TestAPaymentSentTwice:
    def test_with_the_same_key_is_booked_once(self):
        account, _note, _overpaid = credit_from_note_and_overpayment()
        clerk = client_for(BILLING_CLERK)
        body = {"account": account.pk, "amount": "100.00", "received_on": "2026-12-21"}
        before = Payment.objects.filter(account=account).count()

        first = clerk.post(
            "/api/v1/billing/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="p-1"
        )
        again = clerk.post(
            "/api/v1/billing/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="p-1"
        )

        assert first.status_code == 201, first.json()
        assert again.status_code == 201, again.json()
        assert again.json()["id"] == first.json()["id"]
        assert Payment.objects.filter(account=account).count() == before + 1
        assert account_credit(account=account) == D("940.65")

    def test_with_a_bank_id_and_the_same_key_answers_the_first(self):
        # the serializer's "recorded already" answered the retry 400, as if it had failed
        account, _note, _overpaid = credit_from_note_and_overpayment()
        clerk = client_for(BILLING_CLERK)
        body = {
            "account": account.pk,
            "amount": "100.00",
            "received_on": "2026-12-21",
            "bank_transaction_id": "BANK-77",
        }

        first = clerk.post(
            "/api/v1/billing/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="p-7"
        )
        again = clerk.post(
            "/api/v1/billing/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="p-7"
        )
        other_key = clerk.post(
            "/api/v1/billing/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="p-8"
        )

        assert (first.status_code, again.status_code) == (201, 201), again.json()
        assert again.json()["id"] == first.json()["id"]
        assert other_key.status_code == 400  # a new request for a booked bank transaction
        assert other_key.json()["errors"][0]["field"] == "bank_transaction_id"
        assert Payment.objects.filter(bank_transaction_id="BANK-77").count() == 1
        assert account_credit(account=account) == D("940.65")

    def test_without_a_key_two_posts_are_two_payments(self):
        account, _note, _overpaid = credit_from_note_and_overpayment()
        clerk = client_for(BILLING_CLERK)
        body = {"account": account.pk, "amount": "100.00", "received_on": "2026-12-21"}

        clerk.post("/api/v1/billing/payments/", body, format="json")
        clerk.post("/api/v1/billing/payments/", body, format="json")

        assert account_credit(account=account) == D("1040.65")


def test_a_key_another_clerk_used_is_theirs_alone():
    account, _note, _overpaid = credit_from_note_and_overpayment()
    body = {"account": account.pk, "amount": "100.00", "paid_on": "2026-12-22"}
    clerks = []
    for name in ("anna", "bo"):
        user = User.objects.create_user(username=name, is_staff=True)
        user.groups.add(Group.objects.get(name=BILLING_CLERK))
        clerks.append(api_client(user))

    for clerk in clerks:
        answer = clerk.post(
            "/api/v1/billing/refunds/", body, format="json", HTTP_IDEMPOTENCY_KEY="1"
        )
        assert answer.status_code == 201, answer.json()

    assert account_credit(account=account) == D("640.65")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_refund_sent_again_while_the_first_pays_waits_and_answers_it(monkeypatch):
    from billing.services import payments
    from billing.services.payments import refund_record
    from tests.billing.helpers import NOW, staff_user
    from tests.concurrency import Pause, finish, in_thread, waits_for_a_lock

    account, _note, _overpaid = credit_from_note_and_overpayment()
    clerk = staff_user(BILLING_CLERK)
    request = {
        "account": account,
        "amount": D("300.00"),
        "paid_on": dt.date(2026, 12, 22),
        "now": NOW,
        "user": clerk,
        "idempotency_key": "r-1",
    }
    pause = Pause(monkeypatch, payments, "_note_use", after=True)  # the first is paying
    first, first_outcome = in_thread(refund_record, **request)
    pause.wait()
    again, again_outcome = in_thread(refund_record, **request)
    assert waits_for_a_lock(again, "")
    pause.released.set()
    finish(first, again)

    assert "error" not in first_outcome, first_outcome
    assert "error" not in again_outcome, again_outcome
    assert again_outcome["value"].pk == first_outcome["value"].pk
    assert account_credit(account=account) == D("540.65")
