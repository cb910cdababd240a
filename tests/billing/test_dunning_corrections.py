"""Dunning a correction: the invoice that replaces a re-rated or credited one is the same
claim (same account, period and supply, only its amount changed), so it continues its
original's ladder (renteloven §9 b: at most three letters per claim, each at least 10
days after the one before, the fees charged on the original counting).  The correction's
own payment term and the ladder's first days of grace still come first, and each letter
keeps the ladder's spacing from the claim's one before."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Sum

from billing.models import DunningLetter, DunningNotice, Invoice
from billing.services.delivery import letter_message
from billing.services.dunning import dunning_run
from billing.services.invoices import invoice_credit
from billing.services.rerating import invoice_rebill, invoice_rerate
from tests.billing.factories import register
from tests.billing.test_dunning import OCTOBER_DUE, at, late, october_billed, pdf_text

# October's end register, billed at 43000 kWh (1.5 MWh for the month)
OCTOBER_END = dt.date(2026, 11, 1)
# the late actual read: 1.6 MWh, 0.1 MWh × 592.52 = 59.25 net more, 74.06 gross
CORRECTED_KWH = Decimal("43100")
ORIGINAL_GROSS = Decimal("1360.98")
CORRECTED_GROSS = Decimal("1435.04")


def run_daily(first: dt.date, last: dt.date, capture=None) -> list[DunningLetter]:
    """The beat's dunning run on every day from ``first`` to ``last``; the letters sent."""
    letters = []
    day = first
    while day <= last:
        if capture is None:
            letters += dunning_run(now=at(day))
        else:
            with capture(execute=True):
                letters += dunning_run(now=at(day))
        day += dt.timedelta(days=1)
    return letters


def history(account) -> list[tuple[dt.date, str, int, Decimal]]:
    """(sent on, invoice number, level, letter fee) of every notice the account got."""
    return [
        (n.sent_on, n.invoice.display_number, n.level, n.letter.fee)
        for n in DunningNotice.objects.filter(invoice__account=account)
        .select_related("invoice", "letter")
        .order_by("sent_on", "level")
    ]


def fees_invoiced(account) -> Decimal:
    return Invoice.objects.filter(account=account, kind=Invoice.Kind.REMINDER_FEE).aggregate(
        total=Sum("gross")
    )["total"] or Decimal("0.00")


def rerated(contract_account, october, *, on: dt.date) -> Invoice:
    register(contract_account.contracts.get().connection, OCTOBER_END, CORRECTED_KWH)
    _credit, correction = invoice_rerate(invoice=october, now=at(on))
    assert correction.gross == CORRECTED_GROSS
    return correction


@pytest.mark.django_db
class TestACorrectionContinuesItsOriginalsLadder:
    def test_after_two_letters_the_correction_gets_the_final_notice_only(self):
        _network, account, october = october_billed()
        assert (october.gross, october.due_on) == (ORIGINAL_GROSS, OCTOBER_DUE)
        dunning_run(now=late(7))  # 22 November, level 1, no fee
        dunning_run(now=late(21))  # 6 December, level 2, 100.00
        assert fees_invoiced(account) == Decimal("100.00")

        correction = rerated(account, october, on=dt.date(2026, 12, 10))
        assert correction.due_on == dt.date(2026, 12, 24)
        letters = run_daily(dt.date(2026, 12, 11), dt.date(2027, 3, 31))

        # the claim's level 3, once, but not the day after the correction's due date
        # (25 December, before the customer had its 14 days' term and 7 days' grace):
        # 7 days after it, as any invoice's first letter
        assert [(letter.sent_on, letter.level, letter.fee) for letter in letters] == [
            (dt.date(2026, 12, 31), 3, Decimal("100.00"))
        ]
        number = correction.display_number
        assert history(account) == [
            (dt.date(2026, 11, 22), october.display_number, 1, Decimal("0.00")),
            (dt.date(2026, 12, 6), october.display_number, 2, Decimal("100.00")),
            (dt.date(2026, 12, 31), number, 3, Decimal("100.00")),
        ]
        # the ladder's fees once for the claim (0 + 100 + 100), not 300.00
        assert fees_invoiced(account) == Decimal("200.00")
        assert letters[0].title == "Final notice before disconnection"
        assert letters[0].open_amount == CORRECTED_GROSS

    def test_after_one_letter_the_correction_continues_at_level_2(self):
        _network, account, october = october_billed()
        dunning_run(now=late(7))  # 22 November, level 1

        correction = rerated(account, october, on=dt.date(2026, 11, 25))
        assert correction.due_on == dt.date(2026, 12, 9)
        letters = run_daily(dt.date(2026, 11, 26), dt.date(2027, 3, 31))

        # level 2 7 days after the correction's own due date (not the day after it);
        # level 3 the ladder's 14 days after that letter (its pay-by date, 26 December,
        # and 35 days after October's due date, 20 December, are earlier)
        assert [(letter.sent_on, letter.level, letter.fee) for letter in letters] == [
            (dt.date(2026, 12, 16), 2, Decimal("100.00")),
            (dt.date(2026, 12, 30), 3, Decimal("100.00")),
        ]
        assert [level for _on, _number, level, _fee in history(account)] == [1, 2, 3]
        assert fees_invoiced(account) == Decimal("200.00")

    def test_the_next_letter_keeps_its_distance_from_the_last_one(self):
        _network, account, october = october_billed()
        account.payment_terms_days = 1
        account.save(update_fields=["payment_terms_days"])
        dunning_run(now=late(7))
        dunning_run(now=late(21))  # 6 December, pay by 16 December

        correction = rerated(account, october, on=dt.date(2026, 12, 7))
        assert correction.due_on == dt.date(2026, 12, 8)
        letters = run_daily(dt.date(2026, 12, 8), dt.date(2027, 3, 31))

        # overdue from 9 December, but the level-2 letter gave until 16 December and the
        # ladder's level 3 is 35 days after October's due date: 20 December
        assert [(letter.sent_on, letter.level, letter.fee) for letter in letters] == [
            (dt.date(2026, 12, 20), 3, Decimal("100.00"))
        ]
        assert fees_invoiced(account) == Decimal("200.00")

    def test_the_next_letter_keeps_the_ladders_spacing_from_a_late_one(self):
        _network, account, october = october_billed()
        account.payment_terms_days = 1
        account.save(update_fields=["payment_terms_days"])
        dunning_run(now=late(7))
        dunning_run(now=late(30))  # level 2 sent late: 15 December, pay by 25 December

        correction = rerated(account, october, on=dt.date(2026, 12, 16))
        assert correction.due_on == dt.date(2026, 12, 17)
        letters = run_daily(dt.date(2026, 12, 17), dt.date(2027, 3, 31))

        # the claim's 35 days (20 December), the correction's grace (24 December) and the
        # last letter's pay-by date (25 December) have passed by 26 December; the ladder's
        # 14 days between its second and third letter, counted from that letter, have not
        assert [(letter.sent_on, letter.level, letter.fee) for letter in letters] == [
            (dt.date(2026, 12, 29), 3, Decimal("100.00"))
        ]
        assert fees_invoiced(account) == Decimal("200.00")

    def test_after_the_final_notice_the_correction_gets_no_letter_and_no_fee(self):
        _network, account, october = october_billed()
        for days in (7, 21, 35):
            dunning_run(now=late(days))
        assert fees_invoiced(account) == Decimal("200.00")

        rerated(account, october, on=dt.date(2026, 12, 22))
        letters = run_daily(dt.date(2026, 12, 23), dt.date(2027, 3, 31))

        assert letters == []
        assert fees_invoiced(account) == Decimal("200.00")
        assert len(history(account)) == 3

    def test_a_correction_of_a_correction_continues_the_same_ladder(self):
        _network, account, october = october_billed()
        dunning_run(now=late(7))  # level 1 on October
        first = rerated(account, october, on=dt.date(2026, 11, 25))
        run_daily(dt.date(2026, 11, 26), dt.date(2026, 12, 17))  # level 2 on 16 December
        register(account.contracts.get().connection, OCTOBER_END, Decimal("43200"))
        _credit, second = invoice_rerate(invoice=first, now=at(dt.date(2026, 12, 18)))
        assert second.gross == Decimal("1509.10")  # 1.7 MWh
        assert second.due_on == dt.date(2027, 1, 1)

        letters = run_daily(dt.date(2026, 12, 19), dt.date(2027, 3, 31))

        # 7 days after the second correction's own due date: the claim's level 3, the last
        assert [(letter.sent_on, letter.level, letter.fee) for letter in letters] == [
            (dt.date(2027, 1, 8), 3, Decimal("100.00"))
        ]
        assert [(number, level) for _on, number, level, _fee in history(account)] == [
            (october.display_number, 1),
            (first.display_number, 2),
            (second.display_number, 3),
        ]
        assert fees_invoiced(account) == Decimal("200.00")

    def test_a_rebill_after_a_credit_by_hand_continues_the_ladder(self):
        _network, account, october = october_billed()
        dunning_run(now=late(7))
        dunning_run(now=late(21))  # level 2, 100.00
        invoice_credit(invoice=october, now=at(dt.date(2026, 12, 8)))
        register(account.contracts.get().connection, OCTOBER_END, CORRECTED_KWH)

        rebill = invoice_rebill(invoice=october, now=at(dt.date(2026, 12, 10)))
        assert (rebill.kind, rebill.gross) == (Invoice.Kind.CORRECTION, CORRECTED_GROSS)
        assert rebill.due_on == dt.date(2026, 12, 24)
        letters = run_daily(dt.date(2026, 12, 11), dt.date(2027, 3, 31))

        assert [(letter.sent_on, letter.level, letter.fee) for letter in letters] == [
            (dt.date(2026, 12, 31), 3, Decimal("100.00"))
        ]
        assert fees_invoiced(account) == Decimal("200.00")

    def test_a_correction_of_an_invoice_never_dunned_starts_at_level_1(self):
        _network, account, october = october_billed()
        correction = rerated(account, october, on=dt.date(2026, 11, 10))  # before it was due
        assert correction.due_on == dt.date(2026, 11, 24)

        letters = run_daily(dt.date(2026, 11, 11), dt.date(2027, 3, 31))

        assert [(letter.sent_on, letter.level, letter.fee) for letter in letters] == [
            (dt.date(2026, 12, 1), 1, Decimal("0.00")),
            (dt.date(2026, 12, 15), 2, Decimal("100.00")),
            (dt.date(2026, 12, 29), 3, Decimal("100.00")),
        ]
        assert fees_invoiced(account) == Decimal("200.00")

    def test_a_correction_dunned_afresh_before_gets_no_letter_beyond_the_ladders_three(self):
        """Letters sent before corrections continued their chain's ladder: the original
        had levels 1 and 2, its correction levels 1 and 2 again (four letters, 200.00):
        the claim has had more than the ladder's three letters, so nothing more."""
        _network, account, october = october_billed()
        dunning_run(now=late(7))
        dunning_run(now=late(21))
        correction = rerated(account, october, on=dt.date(2026, 12, 10))
        for level, sent_on, fee in (
            (1, dt.date(2026, 12, 31), "0"),
            (2, dt.date(2027, 1, 14), "100.00"),
        ):
            letter = DunningLetter.objects.create(
                account=account,
                sent_on=sent_on,
                pay_by=sent_on + dt.timedelta(days=10),
                level=level,
                title=f"L{level}",
                currency="DKK",
                fee=Decimal(fee),
                open_amount=CORRECTED_GROSS,
            )
            DunningNotice.objects.create(
                invoice=correction,
                letter=letter,
                level=level,
                title=f"L{level}",
                open_amount=CORRECTED_GROSS,
                sent_on=sent_on,
                pay_by=letter.pay_by,
            )

        letters = run_daily(dt.date(2027, 1, 15), dt.date(2027, 3, 31))

        assert letters == []
        assert DunningNotice.objects.filter(invoice=correction).count() == 2


@pytest.mark.django_db
class TestTheCorrectionsLetterSaysWhatCameBefore:
    def test_the_letter_names_the_replaced_invoice_and_its_earlier_reminders(
        self, django_capture_on_commit_callbacks
    ):
        _network, account, october = october_billed()
        dunning_run(now=late(7))
        dunning_run(now=late(21))
        correction = rerated(account, october, on=dt.date(2026, 12, 10))

        (letter,) = run_daily(
            dt.date(2026, 12, 31), dt.date(2026, 12, 31), django_capture_on_commit_callbacks
        )

        letter.refresh_from_db()
        text = " ".join(pdf_text(letter.pdf).split())
        assert f"{correction.display_number} (correction invoice)" in text
        assert f"replaces {october.display_number}" in text
        assert "reminded on 2026-11-22 (1: Payment reminder)" in text
        assert "2026-12-06 (2: Second reminder)" in text
        assert "3: Final notice before disconnection" in text
        _subject, body = letter_message(letter=letter)
        assert (
            f"Overdue: {correction.display_number} (replaces {october.display_number}), "
            "open 1435.04 DKK." in body
        )

    def test_a_letter_of_an_ordinary_invoice_says_nothing_of_replacing(
        self, django_capture_on_commit_callbacks
    ):
        october_billed()
        with django_capture_on_commit_callbacks(execute=True):
            dunning_run(now=late(7))
            (letter,) = dunning_run(now=late(21))

        letter.refresh_from_db()
        assert "replaces" not in pdf_text(letter.pdf)
        assert "replaces" not in letter_message(letter=letter)[1]
