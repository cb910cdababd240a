"""Refunds: account credit paid back to the customer, from credit notes first, then
unallocated payments; never more than the credit, and the balance, the credit and the
journal follow.

Worked figures (tariff of tests/billing/factories, see test_credit_surplus): November
1.5 MWh = 1,360.98 gross; corrected to 0.5 MWh = 620.33 gross; the credit note
(−1,360.98) settles the correction and leaves 740.65 of credit.
"""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import Invoice, Payment, Refund, RefundPart
from billing.selectors import journal_rows, ledger
from billing.services.payments import (
    RefundExceedsCredit,
    account_balance,
    account_credit,
    payment_record,
    refund_record,
)
from billing.services.rerating import invoice_rerate
from heatutility.errors import DomainError
from heatutility.roles import AUDITOR, BILLING_CLERK
from tests.billing.factories import billed_network, register
from tests.billing.helpers import NOW, bill_month, client_for, invoice_of

pytestmark = pytest.mark.django_db
LATER = NOW + dt.timedelta(days=3)
D = Decimal


def credit_from_note_and_overpayment():
    """An account holding 740.65 of credit-note credit and 100.00 overpaid."""
    network, (contract,) = billed_network(accounts=1)
    account = contract.account
    bill_month(network)
    original = invoice_of(contract, kind="invoice")
    payment_record(account=account, amount=D("1360.98"), received_on=dt.date(2026, 12, 5), now=NOW)
    register(contract.connection, dt.date(2026, 12, 1), D("43500"))
    credit_note, _correction = invoice_rerate(invoice=original, now=LATER)
    overpaid = payment_record(
        account=account, amount=D("100.00"), received_on=dt.date(2026, 12, 20), now=LATER
    )
    return account, credit_note, overpaid


def fresh(obj):
    obj.refresh_from_db()
    return obj


class TestRefundRecord:
    def test_takes_the_credit_note_first_then_the_payment(self):
        account, credit_note, overpaid = credit_from_note_and_overpayment()
        assert account_credit(account=account) == D("840.65")
        assert account_balance(account=account) == D("-840.65")

        refund = refund_record(
            account=account,
            amount=D("800"),
            paid_on=dt.date(2026, 12, 22),
            now=LATER,
            reference="transfer 4711",
        )

        assert refund.amount == D("800.00")
        assert refund.currency == "DKK"
        parts = list(RefundPart.objects.filter(refund=refund).order_by("id"))
        assert [(p.credit_note_id, p.payment_id, p.amount) for p in parts] == [
            (credit_note.pk, None, D("740.65")),
            (None, overpaid.pk, D("59.35")),
        ]
        assert fresh(credit_note).paid == D("-1360.98")
        assert fresh(credit_note).state == Invoice.State.PAID
        assert fresh(overpaid).unallocated == D("40.65")
        assert account_credit(account=account) == D("40.65")
        assert account_balance(account=account) == D("-40.65")

    def test_more_than_the_credit_is_refused_and_nothing_changes(self):
        account, credit_note, overpaid = credit_from_note_and_overpayment()

        with pytest.raises(RefundExceedsCredit) as caught:
            refund_record(
                account=account, amount=D("840.66"), paid_on=dt.date(2026, 12, 22), now=LATER
            )

        assert "840.65" in caught.value.message
        assert caught.value.errors[0].field == "amount"
        assert not Refund.objects.exists()
        assert fresh(credit_note).paid == D("-620.33")
        assert fresh(overpaid).unallocated == D("100.00")

    def test_all_of_it_and_then_nothing_more(self):
        account, _note, _payment = credit_from_note_and_overpayment()
        refund_record(account=account, amount=D("840.65"), paid_on=dt.date(2026, 12, 22), now=LATER)
        assert account_credit(account=account) == D("0.00")
        assert account_balance(account=account) == D("0.00")
        with pytest.raises(RefundExceedsCredit):
            refund_record(
                account=account, amount=D("0.01"), paid_on=dt.date(2026, 12, 23), now=LATER
            )

    @pytest.mark.parametrize("amount", ["0", "-5"])
    def test_amount_must_be_positive(self, amount):
        account, _note, _payment = credit_from_note_and_overpayment()
        with pytest.raises(DomainError, match="positive"):
            refund_record(
                account=account, amount=D(amount), paid_on=dt.date(2026, 12, 22), now=LATER
            )

    def test_journal_debits_receivables_and_credits_the_bank(self):
        account, _note, _payment = credit_from_note_and_overpayment()
        refund = refund_record(
            account=account, amount=D("123.45"), paid_on=dt.date(2026, 12, 22), now=LATER
        )

        rows = [
            r
            for r in journal_rows(
                network_id=account.network_id, start=dt.date(2026, 12, 1), end=dt.date(2027, 1, 1)
            )
            if r[1] == f"REF-{refund.pk}"
        ]

        accounts = ledger()
        assert [(r[0], r[2], r[3], r[5], r[6]) for r in rows] == [
            ("2026-12-22", accounts["receivables"], account.number, D("123.45"), ""),
            ("2026-12-22", accounts["bank"], account.number, "", D("123.45")),
        ]


class TestRefundApi:
    def test_clerk_refunds_and_sees_the_parts(self):
        account, credit_note, _payment = credit_from_note_and_overpayment()
        clerk = client_for(BILLING_CLERK)

        response = clerk.post(
            "/api/v1/billing/refunds/",
            {"account": account.pk, "amount": "700.00", "paid_on": "2026-12-22"},
            format="json",
        )

        assert response.status_code == 201, response.content
        body = response.json()
        assert body["amount"] == "700.00"
        assert body["parts"] == [
            {"payment": None, "credit_note": credit_note.pk, "amount": "700.00"}
        ]
        balance = clerk.get(f"/api/v1/billing/payments/balance/?account={account.pk}").json()
        assert (balance["balance"], balance["credit"]) == ("-140.65", "140.65")
        listed = clerk.get(f"/api/v1/billing/refunds/?account={account.pk}").json()
        assert [r["id"] for r in listed["results"]] == [body["id"]]

    def test_too_much_is_422_with_the_field(self):
        account, _note, _payment = credit_from_note_and_overpayment()
        response = client_for(BILLING_CLERK).post(
            "/api/v1/billing/refunds/",
            {"account": account.pk, "amount": "9999.00", "paid_on": "2026-12-22"},
            format="json",
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "amount"
        assert not Refund.objects.exists()

    def test_auditor_may_look_but_not_refund(self):
        account, _note, _payment = credit_from_note_and_overpayment()
        auditor = client_for(AUDITOR)
        response = auditor.post(
            "/api/v1/billing/refunds/",
            {"account": account.pk, "amount": "1.00", "paid_on": "2026-12-22"},
            format="json",
        )
        assert response.status_code == 403
        assert auditor.get("/api/v1/billing/refunds/").status_code == 200
        assert Payment.objects.filter(account=account).count() == 2
