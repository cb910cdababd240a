"""A credit note larger than what is open on its original: the excess is account credit.

Worked figures (tariff of tests/billing/factories: 592.52 /MWh, 100.00 subscription and
100.00 capacity a month, VAT 25 %):
  1.5 MWh: 888.78 + 200.00 = 1,088.78 net, VAT 272.20, gross 1,360.98
  0.5 MWh: 296.26 + 200.00 =   496.26 net, VAT 124.07, gross   620.33
  1.0 MWh: 592.52 + 200.00 =   792.52 net, VAT 198.13, gross   990.65
  2.5 MWh: 1,481.30 + 200.00 = 1,681.30 net, VAT 420.33, gross 2,101.63
"""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import Allocation, Invoice
from billing.services.payments import account_balance, account_credit, payment_record
from billing.services.rerating import invoice_rerate
from tests.billing.factories import billed_network, register
from tests.billing.helpers import NOW, bill_month, invoice_of

LATER = NOW + dt.timedelta(days=3)


def fresh(invoice):
    invoice.refresh_from_db()
    return invoice


@pytest.mark.django_db
class TestCreditNoteAboveOpenAmount:
    def test_excess_settles_the_correction_stays_as_credit_then_settles_the_next_bill(self):
        network, (contract,) = billed_network(accounts=1)
        account = contract.account
        bill_month(network)  # November: 1.5 MWh
        original = invoice_of(contract, kind="invoice")
        assert original.gross == Decimal("1360.98")
        payment_record(
            account=account, amount=Decimal("1360.98"), received_on=dt.date(2026, 12, 5), now=NOW
        )
        # the end read is corrected: 0.5 MWh in November
        register(contract.connection, dt.date(2026, 12, 1), Decimal("43500"))

        credit_note, correction = invoice_rerate(invoice=original, now=LATER)

        assert credit_note.gross == Decimal("-1360.98")
        assert correction.gross == Decimal("620.33")
        # nothing was open on the paid original: the credit note settles the correction...
        allocation = Allocation.objects.get(credit_note=credit_note)
        assert (allocation.invoice_id, allocation.amount) == (correction.pk, Decimal("620.33"))
        assert fresh(correction).state == Invoice.State.PAID
        # ...and the other 740.65 is the customer's credit, in the balance and as credit
        assert fresh(credit_note).paid == Decimal("-620.33")
        assert fresh(credit_note).state == Invoice.State.PARTLY_PAID
        assert account_balance(account=account) == Decimal("-740.65")
        assert account_credit(account=account) == Decimal("740.65")

        # December (2.5 MWh) is settled first from that credit
        bill_month(network, start=dt.date(2026, 12, 1), now=NOW + dt.timedelta(days=31))

        december = invoice_of(contract, kind="invoice", period_start=dt.date(2026, 12, 1))
        assert december.gross == Decimal("2101.63")
        assert december.paid == Decimal("740.65")
        assert december.state == Invoice.State.PARTLY_PAID
        assert fresh(credit_note).paid == Decimal("-1360.98")
        assert fresh(credit_note).state == Invoice.State.PAID
        assert account_credit(account=account) == Decimal("0.00")
        assert account_balance(account=account) == Decimal("1360.98")  # 2,101.63 − 740.65

    def test_excess_goes_to_the_oldest_open_invoice_first(self):
        network, (contract,) = billed_network(accounts=1)
        account = contract.account
        bill_month(network, start=dt.date(2026, 10, 1), now=NOW - dt.timedelta(days=31))
        bill_month(network)
        october = invoice_of(contract, period_start=dt.date(2026, 10, 1))
        november = invoice_of(contract, period_start=dt.date(2026, 11, 1))
        payment_record(
            account=account, amount=Decimal("1360.98"), received_on=dt.date(2026, 11, 20), now=NOW
        )
        assert fresh(october).state == Invoice.State.PAID
        register(contract.connection, dt.date(2026, 11, 1), Decimal("42500"))  # October 1.0 MWh

        credit_note, correction = invoice_rerate(invoice=october, now=LATER)

        assert correction.gross == Decimal("990.65")
        # the paid October leaves all 1,360.98 as credit: November, open and older than
        # the correction, takes it all
        assert list(
            Allocation.objects.filter(credit_note=credit_note).values_list("invoice_id", "amount")
        ) == [(november.pk, Decimal("1360.98"))]
        assert fresh(november).state == Invoice.State.PAID
        assert fresh(credit_note).state == Invoice.State.PAID
        assert fresh(correction).paid == Decimal("0.00")
        assert account_credit(account=account) == Decimal("0.00")
        assert account_balance(account=account) == Decimal("990.65")

    def test_a_partly_paid_original_takes_its_open_amount_first(self):
        network, (contract,) = billed_network(accounts=1)
        account = contract.account
        bill_month(network)
        original = invoice_of(contract, kind="invoice")
        payment_record(
            account=account, amount=Decimal("1000.00"), received_on=dt.date(2026, 12, 5), now=NOW
        )
        register(contract.connection, dt.date(2026, 12, 1), Decimal("43500"))

        credit_note, correction = invoice_rerate(invoice=original, now=LATER)

        by_invoice = dict(
            Allocation.objects.filter(credit_note=credit_note).values_list("invoice_id", "amount")
        )
        # 360.98 closes the original, 620.33 the correction; 379.67 is left as credit
        assert by_invoice == {original.pk: Decimal("360.98"), correction.pk: Decimal("620.33")}
        assert fresh(original).state == Invoice.State.PAID
        assert account_credit(account=account) == Decimal("379.67")
        assert account_balance(account=account) == Decimal("-379.67")

    def test_balance_api_shows_the_credit(self, admin_user):
        from rest_framework.test import APIClient

        network, (contract,) = billed_network(accounts=1)
        bill_month(network)
        payment_record(
            account=contract.account,
            amount=Decimal("1360.98"),
            received_on=dt.date(2026, 12, 5),
            now=NOW,
        )
        register(contract.connection, dt.date(2026, 12, 1), Decimal("43500"))
        invoice_rerate(invoice=invoice_of(contract, kind="invoice"), now=LATER)
        client = APIClient()
        client.force_authenticate(admin_user)

        body = client.get(f"/api/v1/billing/payments/balance/?account={contract.account_id}").json()

        assert Decimal(body["balance"]) == Decimal("-740.65")
        assert body["credit"] == "740.65"
