"""Delivery: every issued invoice and dunning letter is e-mailed to the customer once its
PDF is stored, at most once, or listed for staff to print and post."""

import datetime as dt
import smtplib
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend

from billing import tasks
from billing.models import DunningLetter, Invoice
from billing.services import delivery
from billing.services.dunning import dunning_run
from billing.services.invoices import invoice_credit
from heatutility.celery import app as celery_app
from tests.billing.factories import billed_network
from tests.billing.helpers import NOW, bill_month, invoice_of

OCTOBER = dt.date(2026, 10, 1)
OCTOBER_DUE = dt.date(2026, 11, 15)  # issued 1 November, 14 days' terms
FIRST_OF_NOVEMBER = NOW - dt.timedelta(days=31)
MONTH_GROSS = Decimal("1360.98")  # one month of the test network's account


class FailingBackend(LocmemBackend):
    """The mail server: refuses the next ``failures`` sends, then delivers (locmem)."""

    failures = 0

    def send_messages(self, messages):
        if FailingBackend.failures:
            FailingBackend.failures -= 1
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return super().send_messages(messages)


class RefusingBackend(LocmemBackend):
    """The mail server: refuses the addresses in ``refused``, delivers the others."""

    refused: frozenset[str] = frozenset({"nobody@invalid.example"})

    def send_messages(self, messages):
        for message in messages:
            if set(message.to) & self.refused:
                raise smtplib.SMTPRecipientsRefused({message.to[0]: (550, b"No such user")})
        return super().send_messages(messages)


@pytest.fixture
def failing_mail(settings):
    settings.EMAIL_BACKEND = "tests.billing.test_delivery.FailingBackend"
    yield FailingBackend
    FailingBackend.failures = 0


def october(*, email: str | None = None) -> Invoice:
    """October billed and issued on 1 November (no PDF yet); the account's invoice."""
    network, (contract,) = billed_network(accounts=1)
    if email is not None:
        customer = contract.account.customer
        customer.email = email
        customer.save(update_fields=["email"])
    bill_month(network, start=OCTOBER, now=FIRST_OF_NOVEMBER)
    return invoice_of(contract, period_start=OCTOBER)


def with_pdf(invoice: Invoice) -> Invoice:
    """Give an issued invoice a stored PDF without rendering it (the e-mail only sends it)."""
    name = default_storage.save(f"invoices/{invoice.display_number}.pdf", ContentFile(b"%PDF-1.7"))
    Invoice.objects.filter(pk=invoice.pk).update(pdf=name)
    invoice.refresh_from_db()
    return invoice


def second_letter(capture) -> DunningLetter:
    """October billed, its first reminder (7 days late, not rendered) and the second
    (21 days, 100.00 fee) rendered on commit and so e-mailed."""
    invoice = october()
    dunning_run(now=dt.datetime.combine(OCTOBER_DUE + dt.timedelta(days=7), dt.time(6), dt.UTC))
    with capture(execute=True):
        letters = dunning_run(
            now=dt.datetime.combine(OCTOBER_DUE + dt.timedelta(days=21), dt.time(6), dt.UTC)
        )
    (letter,) = [letter for letter in letters if letter.account_id == invoice.account_id]
    letter.refresh_from_db()
    return letter


@pytest.mark.django_db
class TestInvoiceEmail:
    def test_an_issued_invoice_is_emailed_with_its_pdf_once_it_is_rendered(
        self, mailoutbox, django_capture_on_commit_callbacks
    ):
        invoice = october()

        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.invoices_render_pdfs([invoice.pk]) == 1

        invoice.refresh_from_db()
        (message,) = mailoutbox
        assert message.to == [invoice.account.customer.email]
        assert (
            message.subject == f"Invoice {invoice.display_number}, account {invoice.account.number}"
        )
        assert invoice.display_number in message.body
        assert invoice.gross == MONTH_GROSS
        assert "Total: 1360.98 DKK, due on 2026-11-15." in message.body
        assert "2026-10-01 – 2026-10-31" in message.body
        ((filename, content, mimetype),) = message.attachments
        assert (filename, mimetype) == (f"{invoice.display_number}.pdf", "application/pdf")
        with invoice.pdf.open("rb") as handle:
            assert content == handle.read()
        assert content.startswith(b"%PDF")
        assert invoice.emailed_at is not None
        assert invoice.posted_at is None

    def test_a_credit_note_is_emailed_as_a_credit_in_the_customers_favour(self, mailoutbox):
        invoice = with_pdf(october())
        note = with_pdf(invoice_credit(invoice=invoice, now=NOW))

        assert tasks.invoices_email([invoice.pk, note.pk]) == 2

        by_subject = {m.subject.split(",")[0]: m for m in mailoutbox}
        body = by_subject[f"Credit note {note.display_number}"].body
        assert "Total: -1360.98 DKK, in your favour." in body
        assert by_subject[f"Invoice {invoice.display_number}"].attachments[0][0] == (
            f"{invoice.display_number}.pdf"
        )

    def test_running_the_task_twice_sends_once(self, mailoutbox):
        invoice = with_pdf(october())

        assert tasks.invoices_email([invoice.pk]) == 1
        assert tasks.invoices_email([invoice.pk]) == 0

        assert len(mailoutbox) == 1

    def test_an_invoice_without_pdf_or_not_issued_is_not_emailed(self, mailoutbox):
        invoice = october()
        network, (contract,) = billed_network(accounts=1)
        bill_month(network, start=OCTOBER, issue=False, now=FIRST_OF_NOVEMBER)
        draft = invoice_of(contract, period_start=OCTOBER)

        assert tasks.invoices_email([invoice.pk, draft.pk]) == 0

        assert mailoutbox == []
        assert draft.number is None


@pytest.mark.django_db
class TestFailedSend:
    def test_an_smtp_failure_leaves_it_unmarked_and_the_next_attempt_sends_it(
        self, mailoutbox, failing_mail
    ):
        invoice = with_pdf(october())
        failing_mail.failures = 1

        with pytest.raises(smtplib.SMTPServerDisconnected):
            delivery.invoices_email(invoice_ids=[invoice.pk], now=NOW)

        invoice.refresh_from_db()
        assert (invoice.emailed_at, mailoutbox) == (None, [])

        assert delivery.invoices_email(invoice_ids=[invoice.pk], now=NOW) == 1

        invoice.refresh_from_db()
        assert invoice.emailed_at == NOW
        assert len(mailoutbox) == 1

    def test_the_task_retries_a_failed_send_and_sends_it_once(
        self, mailoutbox, failing_mail, monkeypatch
    ):
        invoice = with_pdf(october())
        failing_mail.failures = 2
        # in process, the retries run at once (a worker waits 60 s, 120 s, … in between)
        monkeypatch.setitem(celery_app.conf, "task_eager_propagates", False)

        result = tasks.invoices_email.delay([invoice.pk])

        assert (result.state, result.result) == ("SUCCESS", 1)
        assert failing_mail.failures == 0  # it failed twice first

        invoice.refresh_from_db()
        assert invoice.emailed_at is not None
        assert len(mailoutbox) == 1

    def test_a_refused_recipient_does_not_stop_the_others_and_is_retried(
        self, mailoutbox, settings
    ):
        refused = with_pdf(october(email="nobody@invalid.example"))
        other = with_pdf(october())
        settings.EMAIL_BACKEND = "tests.billing.test_delivery.RefusingBackend"

        with pytest.raises(smtplib.SMTPRecipientsRefused):
            delivery.invoices_email(invoice_ids=[refused.pk, other.pk], now=NOW)

        assert [m.to for m in mailoutbox] == [[other.account.customer.email]]
        assert Invoice.objects.get(pk=refused.pk).emailed_at is None
        assert Invoice.objects.get(pk=other.pk).emailed_at == NOW


@pytest.mark.django_db
class TestDunningLetterEmail:
    def test_a_letter_is_emailed_once_with_its_pdf_and_its_fee_invoice_goes_with_it(
        self, mailoutbox, django_capture_on_commit_callbacks
    ):
        letter = second_letter(django_capture_on_commit_callbacks)
        fee = Invoice.objects.get(pk=letter.fee_invoice_id)
        overdue = Invoice.objects.get(account=letter.account, kind=Invoice.Kind.INVOICE)

        (message,) = mailoutbox  # October's invoice was never rendered; the first letter neither
        assert message.subject == f"Second reminder, account {letter.account.number}"
        ((filename, content, mimetype),) = message.attachments
        assert filename == f"reminder-{letter.account.number}-{letter.sent_on}.pdf"
        assert mimetype == "application/pdf"
        assert content.startswith(b"%PDF")
        assert f"Overdue: {overdue.display_number}, open 1360.98 DKK." in message.body
        assert f"Reminder fee: 100.00 DKK (invoice {fee.display_number})." in message.body
        assert "Total now due: 1460.98 DKK, to pay by 2026-12-16." in message.body
        assert letter.emailed_at is not None
        assert fee.emailed_at == letter.emailed_at  # delivered with its letter
        assert fee.pdf.name == letter.pdf.name

        # the fee invoice is never sent on its own, the letter never twice
        assert tasks.invoices_render_pdfs([fee.pk]) == 0
        assert tasks.invoices_email([fee.pk]) == 0
        assert tasks.dunning_letters_email([letter.pk]) == 0
        assert len(mailoutbox) == 1


@pytest.mark.django_db
class TestSwitchedOff:
    def test_nothing_is_emailed_and_every_document_is_to_print(
        self, settings, mailoutbox, django_capture_on_commit_callbacks
    ):
        settings.BILLING = {"EMAIL_DOCUMENTS": False}
        invoice = october()

        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            tasks.invoices_render_pdfs([invoice.pk])
        sent = tasks.invoices_email([invoice.pk])

        assert (callbacks, sent, mailoutbox) == ([], 0, [])
        to_print = delivery.documents_by_delivery(Invoice.objects.all(), delivery="to_print")
        assert list(to_print) == [invoice]


@pytest.fixture
def staff(admin_client):
    return admin_client


@pytest.mark.django_db
class TestToPrint:
    def test_a_customer_without_email_gets_nothing_and_the_invoice_is_to_print(
        self, staff, mailoutbox, django_capture_on_commit_callbacks
    ):
        invoice = october(email="")
        emailed = with_pdf(october())

        with django_capture_on_commit_callbacks(execute=True):
            tasks.invoices_render_pdfs([invoice.pk])
        tasks.invoices_email([emailed.pk])

        invoice.refresh_from_db()
        assert invoice.pdf
        assert invoice.emailed_at is None
        assert [m.to for m in mailoutbox] == [[emailed.account.customer.email]]
        to_print = staff.get("/admin/billing/invoice/?delivery=to_print").content.decode()
        by_email = staff.get("/admin/billing/invoice/?delivery=emailed").content.decode()
        not_yet = staff.get("/admin/billing/invoice/?delivery=not_yet").content.decode()
        assert invoice.display_number in to_print
        assert emailed.display_number not in to_print
        assert emailed.display_number in by_email
        assert invoice.display_number not in not_yet

    def test_an_invoice_whose_pdf_is_not_rendered_yet_is_not_yet_delivered(self):
        invoice = october()

        not_yet = delivery.documents_by_delivery(Invoice.objects.all(), delivery="not_yet")

        assert list(not_yet) == [invoice]
        assert delivery.delivery_status(invoice) == "not yet"

    def test_the_admin_action_marks_invoices_printed_and_posted(self, staff, mailoutbox):
        invoice = with_pdf(october(email=""))

        response = staff.post(
            "/admin/billing/invoice/",
            {"action": "mark_posted", "_selected_action": [invoice.pk]},
        )

        assert response.status_code == 302
        invoice.refresh_from_db()
        assert invoice.posted_at is not None
        assert invoice.emailed_at is None
        posted = staff.get("/admin/billing/invoice/?delivery=posted").content.decode()
        to_print = staff.get("/admin/billing/invoice/?delivery=to_print").content.decode()
        assert invoice.display_number in posted
        assert invoice.display_number not in to_print
        # posted is delivered: a late e-mail (an address added since) does not send it again
        invoice.account.customer.email = "late@example.org"
        invoice.account.customer.save(update_fields=["email"])
        assert tasks.invoices_email([invoice.pk]) == 0
        assert mailoutbox == []

    def test_a_letter_without_email_is_to_print_and_posted_with_its_fee_invoice(
        self, staff, mailoutbox, django_capture_on_commit_callbacks
    ):
        invoice = october(email="")
        dunning_run(now=dt.datetime.combine(OCTOBER_DUE + dt.timedelta(days=7), dt.time(6), dt.UTC))
        with django_capture_on_commit_callbacks(execute=True):
            (letter,) = dunning_run(
                now=dt.datetime.combine(OCTOBER_DUE + dt.timedelta(days=21), dt.time(6), dt.UTC)
            )
        letter.refresh_from_db()
        assert letter.pdf
        assert letter.emailed_at is None
        assert mailoutbox == []
        assert invoice.account_id == letter.account_id
        listing = staff.get("/admin/billing/dunningletter/?delivery=to_print").content.decode()
        assert f"/admin/billing/dunningletter/{letter.pk}/change/" in listing
        # the fee invoice goes with the letter: not on the invoices' print list
        fee = Invoice.objects.get(pk=letter.fee_invoice_id)
        to_print = delivery.documents_by_delivery(Invoice.objects.all(), delivery="to_print")
        assert fee not in to_print

        response = staff.post(
            "/admin/billing/dunningletter/",
            {"action": "mark_posted", "_selected_action": [letter.pk]},
        )

        assert response.status_code == 302
        letter.refresh_from_db()
        fee.refresh_from_db()
        assert letter.posted_at is not None
        assert fee.posted_at == letter.posted_at


@pytest.mark.django_db
def test_the_api_says_how_an_invoice_was_delivered(mailoutbox):
    from tests.billing.helpers import client_for

    invoice = with_pdf(october())
    assert tasks.invoices_email([invoice.pk]) == 1

    body = client_for("auditor").get(f"/api/v1/billing/invoices/{invoice.pk}/").json()

    assert body["emailed_at"] is not None
    assert body["posted_at"] is None


class TestDeployCheck:
    def test_a_sender_at_localhost_or_a_backend_that_delivers_nothing_is_flagged(self, settings):
        from billing.checks import delivery_check

        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.DEFAULT_FROM_EMAIL = "Demo Fjernvarme A/S <noreply@localhost>"
        assert [w.id for w in delivery_check()] == ["billing.W002"]

        settings.DEFAULT_FROM_EMAIL = "Demo Fjernvarme A/S <billing@demo.example.org>"
        assert delivery_check() == []

        settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
        assert [w.id for w in delivery_check()] == ["billing.W001"]

        settings.BILLING = {"EMAIL_DOCUMENTS": False}  # printed and posted: no mail needed
        assert delivery_check() == []
