"""Dunning: one letter per account and day, local dates per network, reminder fees as
invoices, letter PDFs, the admin and the portal."""

import datetime as dt
import importlib
import io
import threading
from decimal import Decimal

import pytest
from django.db import IntegrityError, connections, transaction
from pypdf import PdfReader

from billing import selectors, tasks
from billing.models import (
    Allocation,
    DunningLetter,
    DunningNotice,
    Invoice,
    InvoiceLine,
    InvoiceNumberCounter,
    Payment,
)
from billing.services.dunning import LadderStep, dunning_run, letter_terms
from billing.services.invoices import invoice_credit
from billing.services.payments import account_balance, account_credit, payment_record
from billing.services.rerating import current_invoices
from tests.billing.factories import billed_network
from tests.billing.helpers import NOW, bill_month, invoice_of

OCTOBER = dt.date(2026, 10, 1)
# October is issued on 1 November (Copenhagen) with 14 days' terms: due 15 November
OCTOBER_DUE = dt.date(2026, 11, 15)
# what one month of the test network's accounts comes to (1.5 MWh, 10 kW, VAT 25 %)
MONTH_GROSS = Decimal("1360.98")
FIRST_OF_NOVEMBER = NOW - dt.timedelta(days=31)


def at(day: dt.date, hour: int = 6) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def late(days: int) -> dt.datetime:
    """06:00 UTC (07:00 in Copenhagen) ``days`` after October's due date."""
    return at(OCTOBER_DUE + dt.timedelta(days=days))


def october_billed(*, time_zone: str = "Europe/Copenhagen"):
    network, contracts = billed_network(accounts=1)
    network.time_zone = time_zone
    network.save(update_fields=["time_zone"])
    bill_month(network, start=OCTOBER, now=FIRST_OF_NOVEMBER)
    return network, contracts[0].account, invoice_of(contracts[0], period_start=OCTOBER)


def three_months_billed(*, accounts: int = 1):
    """August, September and October billed together on 1 November: three invoices per
    account, all due 15 November.  Returns (network, accounts)."""
    network, contracts = billed_network(accounts=accounts)
    for start in (dt.date(2026, 8, 1), dt.date(2026, 9, 1), OCTOBER):
        bill_month(network, start=start, now=FIRST_OF_NOVEMBER)
    return network, [contract.account for contract in contracts]


def overdue_of(account) -> list[Invoice]:
    return list(Invoice.objects.filter(account=account).order_by("due_on", "number"))


def second_reminder(capture=None):
    """October billed, then the first reminder (7 days late) and the second (21 days,
    with the ladder's 100.00 fee).  Returns (account, october, second letter)."""
    _network, account, october = october_billed()
    dunning_run(now=late(7))
    if capture is None:
        letters = dunning_run(now=late(21))
    else:
        with capture(execute=True):
            letters = dunning_run(now=late(21))
    (letter,) = [letter for letter in letters if letter.account_id == account.pk]
    october.refresh_from_db()
    return account, october, letter


def notices_of(letters) -> list[tuple[int, int]]:
    return sorted((n.invoice_id, n.level) for letter in letters for n in letter.notices.all())


def pdf_text(field) -> str:
    with field.open("rb") as handle:
        reader = PdfReader(io.BytesIO(handle.read()))
    return "\n".join(page.extract_text() for page in reader.pages)


class TestLetterTerms:
    """Pure: which level a letter speaks for and what it charges."""

    def step(self, level: int, fee: str) -> LadderStep:
        return LadderStep(
            level=level, days=7 * level, title=f"L{level}", fee=Decimal(fee), next_steps=""
        )

    def test_the_highest_level_speaks_and_the_highest_fee_is_charged_once(self):
        top, fee = letter_terms(
            [self.step(1, "0.00"), self.step(2, "100.00"), self.step(2, "100.00")]
        )

        assert (top.level, top.title, fee) == (2, "L2", Decimal("100.00"))

    def test_a_lower_level_with_a_higher_fee_sets_the_fee(self):
        top, fee = letter_terms([self.step(1, "60.00"), self.step(3, "40.00")])

        assert (top.level, fee) == (3, Decimal("60.00"))

    def test_a_letter_covers_at_least_one_step(self):
        with pytest.raises(ValueError, match="at least one step"):
            letter_terms([])


@pytest.mark.django_db
class TestOneLetterPerAccountAndDay:
    def test_three_invoices_reaching_level_2_the_same_day_get_one_letter_and_one_fee(self):
        _network, (account,) = three_months_billed()
        invoices = overdue_of(account)
        (first,) = dunning_run(now=late(7))

        (letter,) = dunning_run(now=late(21))

        assert notices_of([first]) == [(i.pk, 1) for i in invoices]
        assert (first.fee, first.fee_invoice) == (Decimal("0.00"), None)
        assert notices_of([letter]) == [(i.pk, 2) for i in invoices]
        assert (letter.account_id, letter.level, letter.title) == (account.pk, 2, "Second reminder")
        assert (letter.sent_on, letter.pay_by) == (dt.date(2026, 12, 6), dt.date(2026, 12, 16))
        assert letter.open_amount == 3 * MONTH_GROSS == Decimal("4082.94")
        assert letter.fee == Decimal("100.00")
        fees = Invoice.objects.filter(kind=Invoice.Kind.REMINDER_FEE)
        assert [(f.pk, f.gross, f.due_on) for f in fees] == [
            (letter.fee_invoice_id, Decimal("100.00"), letter.pay_by)
        ]
        # the notices are the invoices' history; the fee is the letter's
        assert {(n.fee, n.fee_invoice_id, n.pdf.name) for n in letter.notices.all()} == {
            (Decimal("0.00"), None, "")
        }
        assert DunningLetter.objects.count() == 2
        assert DunningNotice.objects.count() == 6
        assert account_balance(account=account) == Decimal("4082.94") + Decimal("100.00")

    def test_two_accounts_get_a_letter_each(self):
        _network, accounts = three_months_billed(accounts=2)
        dunning_run(now=late(7))

        letters = dunning_run(now=late(21))

        assert sorted(letter.account_id for letter in letters) == sorted(a.pk for a in accounts)
        for letter in letters:
            assert letter.notices.count() == 3
            assert letter.open_amount == Decimal("4082.94")
            assert letter.fee_invoice.account_id == letter.account_id
            assert letter.fee_invoice.gross == Decimal("100.00")
        assert Invoice.objects.filter(kind=Invoice.Kind.REMINDER_FEE).count() == 2

    def test_invoices_at_different_levels_share_one_letter_with_the_highest_levels_terms(self):
        network, account, october = october_billed()
        dunning_run(now=late(7))  # October: first reminder
        bill_month(network, start=dt.date(2026, 11, 1))  # issued 2 December, due 16 December
        november = Invoice.objects.get(account=account, period_start=dt.date(2026, 11, 1))

        (letter,) = dunning_run(now=at(dt.date(2026, 12, 23)))  # November 7 days late

        assert notices_of([letter]) == sorted([(october.pk, 2), (november.pk, 1)])
        assert (letter.level, letter.title, letter.fee) == (2, "Second reminder", Decimal("100.00"))
        assert letter.open_amount == 2 * MONTH_GROSS
        assert letter.fee_invoice.gross == Decimal("100.00")
        assert Invoice.objects.filter(kind=Invoice.Kind.REMINDER_FEE).count() == 1

    def test_the_fee_is_the_highest_of_the_levels_reached_not_their_sum(self, settings):
        settings.BILLING = {
            "DUNNING_LADDER": [
                {"days": 7, "title": "Payment reminder", "fee": "40.00"},
                {"days": 21, "title": "Second reminder", "fee": "65.50"},
                {"days": 35, "title": "Final notice", "fee": "100.00"},
            ]
        }
        network, _account, _october = october_billed()
        dunning_run(now=late(7))
        bill_month(network, start=dt.date(2026, 11, 1))

        (letter,) = dunning_run(now=at(dt.date(2026, 12, 23)))

        assert {n.level for n in letter.notices.all()} == {1, 2}
        assert letter.fee == Decimal("65.50")
        assert letter.fee_invoice.gross == Decimal("65.50")

    def test_the_letter_lists_every_invoice_its_level_and_the_total(
        self, django_capture_on_commit_callbacks
    ):
        _network, (account,) = three_months_billed()
        invoices = overdue_of(account)
        dunning_run(now=late(7))
        with django_capture_on_commit_callbacks(execute=True):
            (letter,) = dunning_run(now=late(21))

        letter.refresh_from_db()
        text = " ".join(pdf_text(letter.pdf).split())
        assert text.count("Second reminder") >= 3  # the title and each invoice's level
        for invoice in invoices:
            assert invoice.display_number in text
        assert "2026-11-15" in text  # their due date
        assert text.count(str(MONTH_GROSS)) >= 3  # each one's open amount
        assert "Total open 4082.94" in text
        assert letter.fee_invoice.display_number in text
        assert "100.00" in text
        assert "4182.94 DKK" in text  # total now due: the three and one fee
        assert "2026-12-16" in text  # pay by
        assert "Your other overdue invoices" not in text
        assert Invoice.objects.get(pk=letter.fee_invoice_id).pdf.name == letter.pdf.name

    def test_running_the_day_twice_sends_nothing_more(self, django_capture_on_commit_callbacks):
        _network, _accounts = three_months_billed()
        dunning_run(now=late(7))
        with django_capture_on_commit_callbacks(execute=True):
            dunning_run(now=late(21))
        state = (
            list(DunningLetter.objects.values_list("pk", "fee_invoice_id", "pdf", "open_amount")),
            list(DunningNotice.objects.values_list("pk", "letter_id", "level")),
            list(Invoice.objects.values_list("pk", "number", "state", "paid", "pdf")),
            InvoiceNumberCounter.objects.get(series="INV-2026").last_number,
        )

        with django_capture_on_commit_callbacks(execute=True):
            assert dunning_run(now=late(21) + dt.timedelta(hours=15)) == []  # 22:00 local

        assert state == (
            list(DunningLetter.objects.values_list("pk", "fee_invoice_id", "pdf", "open_amount")),
            list(DunningNotice.objects.values_list("pk", "letter_id", "level")),
            list(Invoice.objects.values_list("pk", "number", "state", "paid", "pdf")),
            InvoiceNumberCounter.objects.get(series="INV-2026").last_number,
        )

    def test_an_account_in_credit_gets_nothing_the_other_its_letter(self):
        _network, (in_credit, owing) = three_months_billed(accounts=2)
        Payment.objects.create(  # received, not allocated yet: it covers everything open
            account=in_credit,
            amount=Decimal("5000.00"),
            currency="DKK",
            received_on=dt.date(2026, 11, 20),
            unallocated=Decimal("5000.00"),
            created_at=late(5),
        )

        first = dunning_run(now=late(7))
        second = dunning_run(now=late(21))

        assert [letter.account_id for letter in first + second] == [owing.pk, owing.pk]
        assert not DunningLetter.objects.filter(account=in_credit).exists()
        assert not DunningNotice.objects.filter(invoice__account=in_credit).exists()
        assert not Invoice.objects.filter(account=in_credit, kind=Invoice.Kind.REMINDER_FEE)

    def test_the_database_refuses_a_second_letter_for_an_account_the_same_day(self):
        _account, _october, letter = second_reminder()
        fields = {
            "account_id": letter.account_id,
            "sent_on": letter.sent_on,
            "pay_by": letter.pay_by,
            "level": 1,
            "title": "Payment reminder",
            "currency": "DKK",
            "open_amount": Decimal("1.00"),
        }

        with pytest.raises(IntegrityError), transaction.atomic():
            DunningLetter.objects.create(**fields)
        # letters sent one per notice before this rule are kept as they were
        DunningLetter.objects.create(**fields, legacy=True)


@pytest.mark.django_db
class TestReminderFeeInvoice:
    def test_a_ladder_fee_is_an_issued_invoice_due_on_the_letters_pay_by_date(self):
        _account, october, letter = second_reminder()

        fee = letter.fee_invoice
        assert (letter.level, letter.fee, letter.open_amount) == (
            2,
            Decimal("100.00"),
            october.gross,
        )
        assert letter.sent_on == dt.date(2026, 12, 6)
        assert letter.pay_by == dt.date(2026, 12, 16)  # 10 days (BILLING["REMINDER_PAY_DAYS"])
        assert (fee.kind, fee.state, fee.original_id) == (
            Invoice.Kind.REMINDER_FEE,
            Invoice.State.ISSUED,
            None,
        )
        assert (fee.net, fee.vat, fee.gross, fee.paid) == (
            Decimal("100.00"),
            Decimal("0.00"),
            Decimal("100.00"),
            Decimal("0"),
        )
        assert fee.due_on == letter.pay_by
        assert (fee.account_id, fee.currency) == (october.account_id, "DKK")
        (line,) = InvoiceLine.objects.filter(invoice=fee)
        assert (line.component, line.quantity, line.unit_price, line.amount, line.vat_rate) == (
            "reminder_fee",
            Decimal("1"),
            Decimal("100.00"),
            Decimal("100.00"),
            Decimal("0"),
        )
        assert october.display_number in line.explanation
        assert fee.determinants["vat"] == [{"rate": "0", "base": "100.00", "vat": "0.00"}]

    def test_the_fee_invoice_is_numbered_gapless_between_the_invoices_around_it(self):
        network, account, october = october_billed()
        bill_month(network, start=dt.date(2026, 11, 1))  # issued 2 December
        november = Invoice.objects.get(account=account, period_start=dt.date(2026, 11, 1))
        dunning_run(now=late(7))
        (letter,) = dunning_run(now=late(21))
        credit_note = invoice_credit(invoice=november, now=late(22))

        numbers = [
            (i.series, i.number) for i in (october, november, letter.fee_invoice, credit_note)
        ]
        assert numbers == [("INV-2026", n) for n in (1, 2, 3, 4)]
        assert InvoiceNumberCounter.objects.get(series="INV-2026").last_number == 4

    def test_the_balance_includes_the_fee(self):
        _network, account, october = october_billed()
        dunning_run(now=late(7))
        assert account_balance(account=account) == october.gross

        dunning_run(now=late(21))

        assert account_balance(account=account) == october.gross + Decimal("100.00")

    def test_a_payment_settles_the_fee_invoice_too(self):
        account, october, letter = second_reminder()

        payment = payment_record(
            account=account,
            amount=october.gross + Decimal("100.00"),
            received_on=dt.date(2026, 12, 10),
            now=late(25),
        )

        fee = Invoice.objects.get(pk=letter.fee_invoice_id)
        october.refresh_from_db()
        assert (october.state, fee.state) == (Invoice.State.PAID, Invoice.State.PAID)
        assert Allocation.objects.get(invoice=fee, payment=payment).amount == Decimal("100.00")
        assert payment.unallocated == Decimal("0.00")
        assert account_balance(account=account) == Decimal("0.00")

    def test_the_fee_vat_rate_is_configurable(self, settings):
        settings.BILLING = {"REMINDER_FEE_VAT_RATE": "0.25"}

        _account, _october, letter = second_reminder()

        fee = letter.fee_invoice
        assert (fee.net, fee.vat, fee.gross) == (
            Decimal("100.00"),
            Decimal("25.00"),
            Decimal("125.00"),
        )

    def test_fee_invoices_are_not_dunned_re_rated_or_a_periods_bill_but_can_be_credited(self):
        account, october, letter = second_reminder()
        fee = letter.fee_invoice

        later = dunning_run(now=late(60))  # the fee is long overdue by now

        fee.refresh_from_db()
        assert fee.state == Invoice.State.OVERDUE
        assert notices_of(later) == [(october.pk, 3)]
        assert not DunningNotice.objects.filter(invoice=fee).exists()
        assert not current_invoices().filter(pk=fee.pk).exists()
        credit_note = invoice_credit(invoice=fee, now=late(61))
        fee.refresh_from_db()
        assert (credit_note.original_id, credit_note.gross) == (fee.pk, Decimal("-100.00"))
        assert fee.state == Invoice.State.PAID
        assert account_balance(account=account) == october.gross + Decimal("100.00")

    def test_the_journal_books_the_fee_on_its_own_revenue_account(self):
        _account, _october, letter = second_reminder()
        fee = letter.fee_invoice

        rows = [
            r
            for r in selectors.journal_rows(
                network_id=fee.network_id, start=dt.date(2026, 12, 1), end=dt.date(2027, 1, 1)
            )
            if r[1] == fee.display_number
        ]
        invoice_rows = list(
            selectors.invoices_csv(
                network_id=fee.network_id, start=dt.date(2026, 12, 1), end=dt.date(2027, 1, 1)
            )
        )

        assert [(r[2], r[4], r[5], r[6]) for r in rows] == [
            ("1100", "Reminder fee", Decimal("100.00"), ""),
            ("3900", "Reminder fee: Second reminder", "", Decimal("100.00")),
        ]
        assert any(f"{fee.display_number},reminder_fee," in chunk for chunk in invoice_rows)


@pytest.mark.django_db
class TestReminderLetter:
    def test_the_letter_names_invoice_amounts_fee_and_pay_by_date(
        self, django_capture_on_commit_callbacks
    ):
        account, october, letter = second_reminder(django_capture_on_commit_callbacks)

        letter.refresh_from_db()
        fee = Invoice.objects.get(pk=letter.fee_invoice_id)
        text = pdf_text(letter.pdf)
        assert "Second reminder" in text
        assert october.display_number in text
        assert "2026-11-15" in text  # October's due date
        assert str(october.gross) in text  # open amount
        assert fee.display_number in text
        assert "100.00" in text
        assert str(october.gross + Decimal("100.00")) in text  # total now due
        assert "2026-12-16" in text  # pay by
        assert account.number in text
        assert "Demo Fjernvarme A/S" in text
        assert "Ankenævnet" in text
        assert fee.pdf.name == letter.pdf.name  # the fee invoice's document is the letter

    def test_the_final_letter_says_what_happens_next(self, django_capture_on_commit_callbacks):
        _network, _account, _october = october_billed()
        dunning_run(now=late(7))
        dunning_run(now=late(21))
        with django_capture_on_commit_callbacks(execute=True):
            (final,) = dunning_run(now=late(35))

        final.refresh_from_db()
        text = " ".join(pdf_text(final.pdf).split())
        assert "Final notice before disconnection" in text
        assert "What happens next" in text
        assert "disconnect your heat supply" in text

    def test_rendering_twice_keeps_the_letter_and_invoices_leave_fees_to_it(
        self, django_capture_on_commit_callbacks
    ):
        _account, _october, letter = second_reminder(django_capture_on_commit_callbacks)
        letter.refresh_from_db()
        name = letter.pdf.name
        (notice,) = letter.notices.all()

        assert tasks.dunning_letters_render_pdfs([letter.pk]) == 0
        assert tasks.reminders_render_pdfs([notice.pk]) == 0  # the old task name: its letter
        assert tasks.invoices_render_pdfs([letter.fee_invoice_id]) == 0

        letter.refresh_from_db()
        assert letter.pdf.name == name
        assert Invoice.objects.get(pk=letter.fee_invoice_id).pdf.name == name

    def test_the_old_task_name_renders_the_letters_of_the_notices_it_is_given(self):
        _account, _october, letter = second_reminder()  # no on-commit: not rendered yet
        (notice,) = letter.notices.all()

        assert tasks.reminders_render_pdfs([notice.pk]) == 1

        letter.refresh_from_db()
        assert letter.pdf
        assert Invoice.objects.get(pk=letter.fee_invoice_id).pdf.name == letter.pdf.name


@pytest.mark.django_db
class TestLettersFromOldNotices:
    """Migration 0015: a notice sent as a letter of its own becomes a letter of its own."""

    def migrate(self):
        module = importlib.import_module("billing.migrations.0015_dunning_letters_from_notices")
        from django.apps import apps

        module.notices_to_letters(apps, None)

    def test_each_sent_notice_becomes_its_own_letter_with_its_fee_invoice_and_pdf(self):
        network, account, october = october_billed()
        bill_month(network, start=dt.date(2026, 11, 1))
        november = Invoice.objects.get(account=account, period_start=dt.date(2026, 11, 1))
        fee = Invoice.objects.create(  # an issued fee invoice of the old kind, as rows
            account=account,
            network=network,
            kind=Invoice.Kind.REMINDER_FEE,
            state=Invoice.State.ISSUED,
            period_start=dt.date(2026, 12, 6),
            period_end=dt.date(2026, 12, 7),
            series="INV-2026",
            number=99,
            due_on=dt.date(2026, 12, 16),
            currency="DKK",
            net=Decimal("100.00"),
            gross=Decimal("100.00"),
            created_at=late(21),
        )
        same_day = {"sent_on": dt.date(2026, 12, 6), "pay_by": dt.date(2026, 12, 16)}
        before_letters = DunningNotice.objects.create(
            invoice=october, level=1, title="Payment reminder", open_amount=october.gross,
            sent_on=dt.date(2026, 11, 22),
        )  # fmt: skip
        with_fee = DunningNotice.objects.create(
            invoice=october, level=2, title="Second reminder", open_amount=october.gross,
            fee=Decimal("100.00"), fee_invoice=fee, pdf="reminders/2026/12/a.pdf", **same_day,
        )  # fmt: skip
        without_fee = DunningNotice.objects.create(
            invoice=november, level=1, title="Payment reminder", open_amount=november.gross,
            pdf="reminders/2026/12/b.pdf", **same_day,
        )  # fmt: skip

        self.migrate()
        self.migrate()  # once only

        before_letters.refresh_from_db()
        assert before_letters.letter is None
        letters = {n.pk: n.letter for n in DunningNotice.objects.exclude(letter=None)}
        assert set(letters) == {with_fee.pk, without_fee.pk}
        assert DunningLetter.objects.count() == 2
        first, second = letters[with_fee.pk], letters[without_fee.pk]
        assert (first.account_id, first.sent_on, first.legacy) == (
            account.pk,
            same_day["sent_on"],
            True,
        )
        assert (first.level, first.fee, first.fee_invoice_id, first.pdf.name) == (
            2, Decimal("100.00"), fee.pk, "reminders/2026/12/a.pdf"
        )  # fmt: skip
        assert (first.open_amount, first.pay_by) == (october.gross, same_day["pay_by"])
        assert (second.level, second.fee, second.fee_invoice_id, second.pdf.name) == (
            1, Decimal("0.00"), None, "reminders/2026/12/b.pdf"
        )  # fmt: skip
        # the old notice keeps its fee invoice: its history does not change
        with_fee.refresh_from_db()
        assert (with_fee.fee, with_fee.fee_invoice_id) == (Decimal("100.00"), fee.pk)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestConcurrentRuns:
    def test_two_runs_at_once_send_each_account_one_letter_and_one_fee(self):
        _network, accounts = three_months_billed(accounts=3)
        dunning_run(now=late(7))
        counter_before = InvoiceNumberCounter.objects.get(series="INV-2026").last_number
        results, errors = [], []
        barrier = threading.Barrier(2)

        def run():
            try:
                barrier.wait()
                results.append(dunning_run(now=late(21)))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        assert sum(len(r) for r in results) == 3
        level_2 = DunningLetter.objects.filter(level=2)
        assert sorted(level_2.values_list("account_id", flat=True)) == sorted(
            a.pk for a in accounts
        )
        assert DunningNotice.objects.filter(level=2).count() == 9
        assert Invoice.objects.filter(kind=Invoice.Kind.REMINDER_FEE).count() == 3
        # gapless: exactly three numbers more
        assert InvoiceNumberCounter.objects.get(series="INV-2026").last_number == counter_before + 3


@pytest.mark.django_db
class TestLocalDates:
    def test_each_network_dunns_on_its_own_local_date(self):
        """02:00 UTC is already the next day in Copenhagen, still the day before in New
        York: an invoice due the day before in Copenhagen is overdue, one due the same
        local day in New York is not."""
        _cph, _a, copenhagen = october_billed()
        _ny, _b, new_york = october_billed(time_zone="America/New_York")
        assert copenhagen.due_on == new_york.due_on == OCTOBER_DUE

        dunning_run(now=at(OCTOBER_DUE + dt.timedelta(days=1), hour=2))
        copenhagen.refresh_from_db()
        new_york.refresh_from_db()
        assert (copenhagen.state, new_york.state) == (Invoice.State.OVERDUE, Invoice.State.ISSUED)

        letters = dunning_run(now=at(OCTOBER_DUE + dt.timedelta(days=7), hour=2))
        assert notices_of(letters) == [(copenhagen.pk, 1)]
        assert letters[0].sent_on == dt.date(2026, 11, 22)

        letters = dunning_run(now=at(OCTOBER_DUE + dt.timedelta(days=7), hour=6))
        assert notices_of(letters) == [(new_york.pk, 1)]
        assert letters[0].sent_on == dt.date(2026, 11, 22)


@pytest.mark.django_db
class TestNoDunningInCredit:
    def test_an_account_whose_credit_covers_what_is_open_is_not_dunned(self):
        _network, account, october = october_billed()
        # a payment received, not allocated yet: the account holds more credit than it owes
        Payment.objects.create(
            account=account,
            amount=october.gross,
            currency="DKK",
            received_on=dt.date(2026, 11, 20),
            unallocated=october.gross,
            created_at=late(5),
        )
        assert account_balance(account=account) == Decimal("0.00")

        assert dunning_run(now=late(7)) == []
        assert dunning_run(now=late(21)) == []

        assert not DunningLetter.objects.exists()
        assert not DunningNotice.objects.exists()
        assert not Invoice.objects.filter(kind=Invoice.Kind.REMINDER_FEE).exists()


def unallocated_payment(account, amount: str, received_on: dt.date) -> Payment:
    """A payment received and booked, not allocated yet: credit the account holds."""
    return Payment.objects.create(
        account=account,
        amount=Decimal(amount),
        currency="DKK",
        received_on=received_on,
        unallocated=Decimal(amount),
        created_at=at(received_on),
    )


@pytest.mark.django_db
class TestAccountCreditBeforeTheLetter:
    """Credit the account holds when its letter is sent settles what is open first (oldest
    due first, as when any invoice is issued): the letter, its fee and its total are
    about what is still owed, and no fee stays open while credit sits on the account."""

    def test_a_credit_smaller_than_what_is_open_settles_the_oldest_before_the_letter(self):
        _network, account, october = october_billed()
        dunning_run(now=late(7))
        payment = unallocated_payment(account, "50.00", dt.date(2026, 12, 1))
        assert account_credit(account=account) == Decimal("50.00")

        (letter,) = dunning_run(now=late(21))

        october.refresh_from_db()
        payment.refresh_from_db()
        assert (october.paid, october.state) == (Decimal("50.00"), Invoice.State.OVERDUE)
        assert payment.unallocated == Decimal("0.00")
        assert account_credit(account=account) == Decimal("0.00")
        assert (letter.level, letter.open_amount, letter.fee) == (
            2,
            Decimal("1310.98"),
            Decimal("100.00"),
        )
        assert letter.notices.get().open_amount == Decimal("1310.98")
        fee = letter.fee_invoice
        assert (fee.gross, fee.paid, fee.state) == (
            Decimal("100.00"),
            Decimal("0.00"),
            Invoice.State.ISSUED,
        )
        # what the letter asks for is what the account owes: 1310.98 + 100.00
        assert account_balance(account=account) == Decimal("1410.98")

    def test_a_credit_covering_the_overdue_invoice_means_no_letter_and_no_fee(self):
        network, account, october = october_billed()
        dunning_run(now=late(7))
        bill_month(network, start=dt.date(2026, 11, 1))  # issued 2 December, due 16 December
        november = Invoice.objects.get(account=account, period_start=dt.date(2026, 11, 1))
        unallocated_payment(account, "1400.00", dt.date(2026, 12, 3))
        # still owed overall (November is not due yet), so the account is dunned
        assert account_balance(account=account) == Decimal("1321.96")

        assert dunning_run(now=late(21)) == []

        october.refresh_from_db()
        november.refresh_from_db()
        assert (october.paid, october.state) == (MONTH_GROSS, Invoice.State.PAID)
        assert (november.paid, november.state) == (Decimal("39.02"), Invoice.State.PARTLY_PAID)
        assert account_credit(account=account) == Decimal("0.00")
        assert DunningLetter.objects.filter(sent_on=dt.date(2026, 12, 6)).count() == 0
        assert not Invoice.objects.filter(kind=Invoice.Kind.REMINDER_FEE).exists()
        assert account_balance(account=account) == Decimal("1321.96")


@pytest.mark.django_db
class TestIdempotentDailyRun:
    def test_running_the_beat_task_twice_the_same_day_changes_nothing(
        self, monkeypatch, django_capture_on_commit_callbacks
    ):
        _network, _account, _october = october_billed()
        dunning_run(now=late(7))
        monkeypatch.setattr("django.utils.timezone.now", lambda: late(21))

        with django_capture_on_commit_callbacks(execute=True):
            first = tasks.dunning_daily.delay().get()
        state = (
            list(DunningLetter.objects.values_list("pk", "level", "fee_invoice_id", "pdf")),
            list(DunningNotice.objects.values_list("pk", "level", "letter_id")),
            list(Invoice.objects.values_list("pk", "number", "state", "paid", "pdf")),
            InvoiceNumberCounter.objects.get(series="INV-2026").last_number,
        )
        with django_capture_on_commit_callbacks(execute=True):
            second = tasks.dunning_daily.delay().get()

        assert (first, second) == (1, 0)
        assert state == (
            list(DunningLetter.objects.values_list("pk", "level", "fee_invoice_id", "pdf")),
            list(DunningNotice.objects.values_list("pk", "level", "letter_id")),
            list(Invoice.objects.values_list("pk", "number", "state", "paid", "pdf")),
            InvoiceNumberCounter.objects.get(series="INV-2026").last_number,
        )
        assert Invoice.objects.filter(kind=Invoice.Kind.REMINDER_FEE).count() == 1
        assert DunningLetter.objects.get(level=2).pdf  # its letter, rendered once


@pytest.fixture
def admin_client_(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("boss", "b@example.org", "pw"))
    return client


@pytest.mark.django_db
class TestDunningAdmin:
    def test_staff_see_a_letter_its_invoices_fee_invoice_and_pdf(
        self, admin_client_, django_capture_on_commit_callbacks
    ):
        _network, (account,) = three_months_billed()
        dunning_run(now=late(7))
        with django_capture_on_commit_callbacks(execute=True):
            (letter,) = dunning_run(now=late(21))
        letter.refresh_from_db()

        listing = admin_client_.get(f"/admin/billing/dunningletter/?q={account.number}")
        page = admin_client_.get(f"/admin/billing/dunningletter/{letter.pk}/change/")
        pdf = admin_client_.get(f"/admin/billing/dunningletter/{letter.pk}/pdf/")

        assert listing.status_code == 200
        assert f"/admin/billing/dunningletter/{letter.pk}/pdf/" in listing.content.decode()
        body = page.content.decode()
        assert f"/admin/billing/invoice/{letter.fee_invoice_id}/change/" in body
        for invoice in overdue_of(account):
            if invoice.kind != Invoice.Kind.REMINDER_FEE:
                assert invoice.display_number in body
        assert (pdf.status_code, pdf["Content-Type"]) == (200, "application/pdf")
        assert admin_client_.get("/admin/billing/dunningletter/add/").status_code == 403

    def test_the_notice_admin_links_its_letter(self, admin_client_):
        _account, _october, letter = second_reminder()
        (notice,) = letter.notices.all()

        page = admin_client_.get(f"/admin/billing/dunningnotice/{notice.pk}/change/")

        assert f"/admin/billing/dunningletter/{letter.pk}/change/" in page.content.decode()

    def test_the_render_action_renders_missing_letters(self, admin_client_):
        _account, _october, letter = second_reminder()  # no on-commit: not rendered yet
        assert not letter.pdf

        response = admin_client_.post(
            "/admin/billing/dunningletter/",
            {"action": "render_letters", "_selected_action": [letter.pk]},
        )

        assert response.status_code == 302
        letter.refresh_from_db()
        assert letter.pdf
        assert Invoice.objects.get(pk=letter.fee_invoice_id).pdf.name == letter.pdf.name


@pytest.mark.django_db
class TestPortalReminders:
    def test_a_customer_sees_and_downloads_only_their_own_letters(
        self, client, django_user_model, django_capture_on_commit_callbacks
    ):
        _other_network, other_account, _ = october_billed()  # dunned alongside, same days
        account, _october, letter = second_reminder(django_capture_on_commit_callbacks)
        letter.refresh_from_db()
        owner = django_user_model.objects.create_user("owner", password="a-long-test-password-1")
        stranger = django_user_model.objects.create_user(
            "stranger", password="a-long-test-password-1"
        )
        account.customer.user = owner
        account.customer.save()
        other_account.customer.user = stranger
        other_account.customer.save()
        other_letter = DunningLetter.objects.filter(account=other_account).first()  # newest

        client.force_login(owner)
        page = client.get(f"/portal/accounts/{account.number}/")
        pdf = client.get(f"/portal/letters/{letter.pk}.pdf")
        fee_pdf = client.get(f"/portal/invoices/{letter.fee_invoice_id}.pdf")
        assert page.status_code == 200
        assert [(x.account_id, x.level) for x in page.context["reminders"]] == [
            (account.pk, 2),
            (account.pk, 1),
        ]  # newest first
        assert f"/portal/letters/{letter.pk}.pdf" in page.content.decode()
        assert (pdf.status_code, pdf["Content-Type"]) == (200, "application/pdf")
        assert b"".join(pdf.streaming_content) == b"".join(fee_pdf.streaming_content)
        assert client.get(f"/portal/letters/{other_letter.pk}.pdf").status_code == 404

        client.force_login(stranger)
        assert client.get(f"/portal/letters/{letter.pk}.pdf").status_code == 404
        assert client.get(f"/portal/invoices/{letter.fee_invoice_id}.pdf").status_code == 404
        others = client.get(f"/portal/accounts/{other_account.number}/").context["reminders"]
        assert [(x.account_id, x.level) for x in others] == [
            (other_account.pk, 2),
            (other_account.pk, 1),
        ]

    def test_the_address_of_a_notice_still_gives_its_letter_to_its_owner_only(
        self, client, django_user_model, django_capture_on_commit_callbacks
    ):
        account, _october, letter = second_reminder(django_capture_on_commit_callbacks)
        (notice,) = letter.notices.all()
        owner = django_user_model.objects.create_user("owner", password="a-long-test-password-1")
        account.customer.user = owner
        account.customer.save()
        stranger = django_user_model.objects.create_user(
            "stranger", password="a-long-test-password-1"
        )

        client.force_login(owner)
        old = client.get(f"/portal/reminders/{notice.pk}.pdf")
        new = client.get(f"/portal/letters/{letter.pk}.pdf")
        assert old.status_code == 200
        assert b"".join(old.streaming_content) == b"".join(new.streaming_content)

        client.force_login(stranger)
        assert client.get(f"/portal/reminders/{notice.pk}.pdf").status_code == 404
