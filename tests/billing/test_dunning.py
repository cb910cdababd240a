"""Dunning: local dates per network, reminder fees as invoices, letters, the portal."""

import datetime as dt
import io
from decimal import Decimal

import pytest
from pypdf import PdfReader

from billing import selectors, tasks
from billing.models import (
    Allocation,
    DunningNotice,
    Invoice,
    InvoiceLine,
    InvoiceNumberCounter,
    Payment,
)
from billing.services.dunning import dunning_run
from billing.services.invoices import invoice_credit
from billing.services.payments import account_balance, payment_record
from billing.services.rerating import current_invoices
from tests.billing.factories import billed_network
from tests.billing.helpers import NOW, bill_month, invoice_of

OCTOBER = dt.date(2026, 10, 1)
# October is issued on 1 November (Copenhagen) with 14 days' terms: due 15 November
OCTOBER_DUE = dt.date(2026, 11, 15)


def at(day: dt.date, hour: int = 6) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def late(days: int) -> dt.datetime:
    """06:00 UTC (07:00 in Copenhagen) ``days`` after October's due date."""
    return at(OCTOBER_DUE + dt.timedelta(days=days))


def october_billed(*, time_zone: str = "Europe/Copenhagen"):
    network, contracts = billed_network(accounts=1)
    network.time_zone = time_zone
    network.save(update_fields=["time_zone"])
    bill_month(network, start=OCTOBER, now=NOW - dt.timedelta(days=31))
    return network, contracts[0].account, invoice_of(contracts[0], period_start=OCTOBER)


def second_reminder(capture=None):
    """October billed, then the first reminder (7 days late) and the second (21 days,
    with the ladder's 100.00 fee).  Returns (account, october, second notice)."""
    _network, account, october = october_billed()
    dunning_run(now=late(7))
    if capture is None:
        (notice,) = dunning_run(now=late(21))
    else:
        with capture(execute=True):
            (notice,) = dunning_run(now=late(21))
    october.refresh_from_db()
    return account, october, notice


def pdf_text(field) -> str:
    with field.open("rb") as handle:
        reader = PdfReader(io.BytesIO(handle.read()))
    return "\n".join(page.extract_text() for page in reader.pages)


@pytest.mark.django_db
class TestReminderFeeInvoice:
    def test_a_ladder_fee_is_an_issued_invoice_due_on_the_letters_pay_by_date(self):
        _account, october, notice = second_reminder()

        fee = notice.fee_invoice
        assert (notice.level, notice.fee, notice.open_amount) == (
            2,
            Decimal("100.00"),
            october.gross,
        )
        assert notice.sent_on == dt.date(2026, 12, 6)
        assert notice.pay_by == dt.date(2026, 12, 16)  # 10 days (BILLING["REMINDER_PAY_DAYS"])
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
        assert fee.due_on == notice.pay_by
        assert (fee.account_id, fee.currency) == (october.account_id, "DKK")
        (line,) = InvoiceLine.objects.filter(invoice=fee)
        assert (line.component, line.quantity, line.unit_price, line.amount, line.vat_rate) == (
            "reminder_fee",
            Decimal("1"),
            Decimal("100.00"),
            Decimal("100.00"),
            Decimal("0"),
        )
        assert fee.determinants["vat"] == [{"rate": "0", "base": "100.00", "vat": "0.00"}]

    def test_the_fee_invoice_is_numbered_gapless_between_the_invoices_around_it(self):
        network, account, october = october_billed()
        bill_month(network, start=dt.date(2026, 11, 1))  # issued 2 December
        november = Invoice.objects.get(account=account, period_start=dt.date(2026, 11, 1))
        dunning_run(now=late(7))
        (notice,) = dunning_run(now=late(21))
        credit_note = invoice_credit(invoice=november, now=late(22))

        numbers = [
            (i.series, i.number) for i in (october, november, notice.fee_invoice, credit_note)
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
        account, october, notice = second_reminder()

        payment = payment_record(
            account=account,
            amount=october.gross + Decimal("100.00"),
            received_on=dt.date(2026, 12, 10),
            now=late(25),
        )

        fee = Invoice.objects.get(pk=notice.fee_invoice_id)
        october.refresh_from_db()
        assert (october.state, fee.state) == (Invoice.State.PAID, Invoice.State.PAID)
        assert Allocation.objects.get(invoice=fee, payment=payment).amount == Decimal("100.00")
        assert payment.unallocated == Decimal("0.00")
        assert account_balance(account=account) == Decimal("0.00")

    def test_the_fee_vat_rate_is_configurable(self, settings):
        settings.BILLING = {"REMINDER_FEE_VAT_RATE": "0.25"}

        _account, _october, notice = second_reminder()

        fee = notice.fee_invoice
        assert (fee.net, fee.vat, fee.gross) == (
            Decimal("100.00"),
            Decimal("25.00"),
            Decimal("125.00"),
        )

    def test_fee_invoices_are_not_dunned_re_rated_or_a_periods_bill_but_can_be_credited(self):
        account, october, notice = second_reminder()
        fee = notice.fee_invoice

        later = dunning_run(now=late(60))  # the fee is long overdue by now

        fee.refresh_from_db()
        assert fee.state == Invoice.State.OVERDUE
        assert [(n.invoice_id, n.level) for n in later] == [(october.pk, 3)]
        assert not DunningNotice.objects.filter(invoice=fee).exists()
        assert not current_invoices().filter(pk=fee.pk).exists()
        credit_note = invoice_credit(invoice=fee, now=late(61))
        fee.refresh_from_db()
        assert (credit_note.original_id, credit_note.gross) == (fee.pk, Decimal("-100.00"))
        assert fee.state == Invoice.State.PAID
        assert account_balance(account=account) == october.gross + Decimal("100.00")

    def test_the_journal_books_the_fee_on_its_own_revenue_account(self):
        _account, _october, notice = second_reminder()
        fee = notice.fee_invoice

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
        account, october, notice = second_reminder(django_capture_on_commit_callbacks)

        notice.refresh_from_db()
        fee = Invoice.objects.get(pk=notice.fee_invoice_id)
        text = pdf_text(notice.pdf)
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
        assert fee.pdf.name == notice.pdf.name  # the fee invoice's document is the letter

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
        _account, _october, notice = second_reminder(django_capture_on_commit_callbacks)
        notice.refresh_from_db()
        name = notice.pdf.name

        assert tasks.reminders_render_pdfs([notice.pk]) == 0
        assert tasks.invoices_render_pdfs([notice.fee_invoice_id]) == 0

        notice.refresh_from_db()
        assert notice.pdf.name == name
        assert Invoice.objects.get(pk=notice.fee_invoice_id).pdf.name == name


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

        notices = dunning_run(now=at(OCTOBER_DUE + dt.timedelta(days=7), hour=2))
        assert [n.invoice_id for n in notices] == [copenhagen.pk]
        assert notices[0].sent_on == dt.date(2026, 11, 22)

        notices = dunning_run(now=at(OCTOBER_DUE + dt.timedelta(days=7), hour=6))
        assert [(n.invoice_id, n.sent_on) for n in notices] == [
            (new_york.pk, dt.date(2026, 11, 22))
        ]


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

        assert not DunningNotice.objects.exists()
        assert not Invoice.objects.filter(kind=Invoice.Kind.REMINDER_FEE).exists()


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
            list(DunningNotice.objects.values_list("pk", "level", "fee_invoice_id", "pdf")),
            list(Invoice.objects.values_list("pk", "number", "state", "paid", "pdf")),
            InvoiceNumberCounter.objects.get(series="INV-2026").last_number,
        )
        with django_capture_on_commit_callbacks(execute=True):
            second = tasks.dunning_daily.delay().get()

        assert (first, second) == (1, 0)
        assert state == (
            list(DunningNotice.objects.values_list("pk", "level", "fee_invoice_id", "pdf")),
            list(Invoice.objects.values_list("pk", "number", "state", "paid", "pdf")),
            InvoiceNumberCounter.objects.get(series="INV-2026").last_number,
        )
        assert Invoice.objects.filter(kind=Invoice.Kind.REMINDER_FEE).count() == 1
        assert DunningNotice.objects.get(level=2).pdf  # its letter, rendered once


@pytest.mark.django_db
class TestPortalReminders:
    def test_a_customer_sees_and_downloads_only_their_own_letters(
        self, client, django_user_model, django_capture_on_commit_callbacks
    ):
        account, _october, notice = second_reminder(django_capture_on_commit_callbacks)
        notice.refresh_from_db()
        _other_network, other_account, _ = october_billed()
        owner = django_user_model.objects.create_user("owner", password="a-long-test-password-1")
        stranger = django_user_model.objects.create_user(
            "stranger", password="a-long-test-password-1"
        )
        account.customer.user = owner
        account.customer.save()
        other_account.customer.user = stranger
        other_account.customer.save()

        client.force_login(owner)
        page = client.get(f"/portal/accounts/{account.number}/")
        letter = client.get(f"/portal/reminders/{notice.pk}.pdf")
        fee_pdf = client.get(f"/portal/invoices/{notice.fee_invoice_id}.pdf")
        assert page.status_code == 200
        assert [n.level for n in page.context["reminders"]] == [2, 1]  # newest first
        assert f"/portal/reminders/{notice.pk}.pdf" in page.content.decode()
        assert (letter.status_code, letter["Content-Type"]) == (200, "application/pdf")
        assert b"".join(letter.streaming_content) == b"".join(fee_pdf.streaming_content)

        client.force_login(stranger)
        assert client.get(f"/portal/reminders/{notice.pk}.pdf").status_code == 404
        assert client.get(f"/portal/invoices/{notice.fee_invoice_id}.pdf").status_code == 404
        assert client.get(f"/portal/accounts/{other_account.number}/").context["reminders"] == []
