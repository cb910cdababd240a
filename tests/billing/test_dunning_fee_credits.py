"""A reminder fee presupposes a debt that was due (renteloven §9 b): when every invoice a
letter reminded of is credited in full and not replaced by a correction (nothing of it
was owed: a late move-out, an invoice billed wrongly), crediting the last of them credits
the letter's fee too, in the same transaction, and a collection case for them settles.
A re-rating to another amount (a correction) shows the debt existed: the fee stays."""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import CollectionCase, Invoice
from billing.services.dunning import dunning_run
from billing.services.invoices import invoice_credit
from billing.services.payments import account_balance, account_credit, payment_record
from billing.services.rerating import invoice_rerate
from customers.services import contract_move_out
from tests.billing.factories import billed_network, register
from tests.billing.helpers import bill_month, invoice_of
from tests.billing.test_dunning import (
    FIRST_OF_NOVEMBER,
    MONTH_GROSS,
    OCTOBER,
    at,
    late,
    second_reminder,
)
from tests.billing.test_dunning_collection import final_notice_sent

# the second reminder is sent 6 December with its 100.00 fee, due 16 December
CREDITED_ON = dt.date(2026, 12, 8)
FEE = Decimal("100.00")


def credit_notes_of(invoice: Invoice) -> list[tuple[Decimal, Decimal, str, bool]]:
    """(gross, paid, state, numbered) of the credit notes referencing ``invoice``."""
    return [
        (note.gross, note.paid, note.state, note.number is not None)
        for note in Invoice.objects.filter(original=invoice, kind=Invoice.Kind.CREDIT_NOTE)
    ]


def refreshed(invoice: Invoice) -> Invoice:
    invoice.refresh_from_db()
    return invoice


@pytest.mark.django_db
class TestTheFeeOfADebtNeverOwedIsCredited:
    def test_crediting_the_reminded_invoice_by_hand_credits_the_letters_fee(self):
        account, october, letter = second_reminder()
        assert account_balance(account=account) == MONTH_GROSS + FEE == Decimal("1460.98")

        invoice_credit(invoice=october, now=at(CREDITED_ON))

        fee = refreshed(letter.fee_invoice)
        assert credit_notes_of(fee) == [(Decimal("-100.00"), Decimal("-100.00"), "paid", True)]
        assert (fee.state, fee.paid) == (Invoice.State.PAID, Decimal("100.00"))
        assert refreshed(october).state == Invoice.State.PAID
        assert account_balance(account=account) == Decimal("0.00")
        # nothing is open: no further letter or fee, nothing handed over
        assert [ltr for d in (35, 46, 60) for ltr in dunning_run(now=late(d))] == []
        assert not CollectionCase.objects.exists()

    def test_a_late_move_out_that_leaves_no_contract_day_credits_the_fee(self):
        account, october, letter = second_reminder()
        contract_move_out(contract=account.contracts.get(), move_out_on=OCTOBER)

        credit_note, correction = invoice_rerate(invoice=october, now=at(CREDITED_ON))

        assert correction is None
        assert credit_note.gross == -MONTH_GROSS == Decimal("-1360.98")
        fee = refreshed(letter.fee_invoice)
        assert credit_notes_of(fee) == [(Decimal("-100.00"), Decimal("-100.00"), "paid", True)]
        assert fee.state == Invoice.State.PAID
        assert account_balance(account=account) == Decimal("0.00")

    def test_a_letter_keeps_its_fee_until_every_invoice_it_reminded_of_is_credited(self):
        network, (contract,) = billed_network(accounts=1)
        for start in (dt.date(2026, 9, 1), OCTOBER):
            bill_month(network, start=start, now=FIRST_OF_NOVEMBER)
        account = contract.account
        september = invoice_of(contract, period_start=dt.date(2026, 9, 1))
        october = invoice_of(contract, period_start=OCTOBER)
        dunning_run(now=late(7))
        (letter,) = dunning_run(now=late(21))
        assert sorted(n.invoice_id for n in letter.notices.all()) == [september.pk, october.pk]
        assert letter.fee == FEE

        invoice_credit(invoice=october, now=at(CREDITED_ON))

        fee = refreshed(letter.fee_invoice)
        assert credit_notes_of(fee) == []
        assert (fee.state, fee.paid) == (Invoice.State.ISSUED, Decimal("0.00"))
        assert account_balance(account=account) == MONTH_GROSS + FEE == Decimal("1460.98")

        invoice_credit(invoice=september, now=at(dt.date(2026, 12, 9)))

        assert credit_notes_of(fee) == [(Decimal("-100.00"), Decimal("-100.00"), "paid", True)]
        assert account_balance(account=account) == Decimal("0.00")

    def test_a_fee_already_paid_becomes_account_credit(self):
        account, october, letter = second_reminder()
        payment_record(
            account=account,
            amount=Decimal("1460.98"),
            received_on=dt.date(2026, 12, 7),
            now=at(dt.date(2026, 12, 7)),
        )
        fee = refreshed(letter.fee_invoice)
        assert (fee.state, fee.paid) == (Invoice.State.PAID, Decimal("100.00"))

        invoice_credit(invoice=october, now=at(CREDITED_ON))

        # nothing was open to settle: both credit notes are the customer's credit
        assert credit_notes_of(fee) == [(Decimal("-100.00"), Decimal("0.00"), "issued", True)]
        assert account_balance(account=account) == Decimal("-1460.98")
        assert account_credit(account=account) == Decimal("1460.98")

    def test_a_case_handed_over_settles_and_both_fees_are_credited(self):
        _network, account, october = final_notice_sent()
        dunning_run(now=late(46))
        case = CollectionCase.objects.get()
        assert (case.open_amount, case.fee_amount) == (Decimal("1560.98"), Decimal("200.00"))

        invoice_credit(invoice=october, now=late(50))

        fees = Invoice.objects.filter(account=account, kind=Invoice.Kind.REMINDER_FEE)
        assert [credit_notes_of(fee) for fee in fees.order_by("number")] == [
            [(Decimal("-100.00"), Decimal("-100.00"), "paid", True)]
        ] * 2
        case.refresh_from_db()
        assert (case.state, case.settled_on) == (CollectionCase.State.SETTLED, dt.date(2027, 1, 4))
        assert account_balance(account=account) == Decimal("0.00")

    def test_a_correction_credited_in_full_later_credits_the_fee_of_its_claim(self):
        account, october, letter = second_reminder()
        register(account.contracts.get().connection, dt.date(2026, 11, 1), Decimal("43100"))
        _credit, correction = invoice_rerate(invoice=october, now=at(CREDITED_ON))
        assert credit_notes_of(letter.fee_invoice) == []

        invoice_credit(invoice=correction, now=at(dt.date(2026, 12, 10)))

        assert credit_notes_of(letter.fee_invoice) == [
            (Decimal("-100.00"), Decimal("-100.00"), "paid", True)
        ]
        assert account_balance(account=account) == Decimal("0.00")


@pytest.mark.django_db
class TestTheFeeOfADebtThatExistedStays:
    def test_a_re_rating_to_another_amount_keeps_the_fee(self):
        account, october, letter = second_reminder()
        # the late actual read: 1.6 MWh instead of 1.5, 1435.04 instead of 1360.98
        register(account.contracts.get().connection, dt.date(2026, 11, 1), Decimal("43100"))

        _credit, correction = invoice_rerate(invoice=october, now=at(CREDITED_ON))

        assert correction.gross == Decimal("1435.04")
        fee = refreshed(letter.fee_invoice)
        assert credit_notes_of(fee) == []
        assert (fee.state, fee.paid) == (Invoice.State.ISSUED, Decimal("0.00"))
        assert account_balance(account=account) == Decimal("1535.04")
