"""Audit of document delivery (billing.services.delivery, billing.tasks): each test shows
a bug and is expected to fail until it is fixed."""

import datetime as dt

import pytest

from billing import documents, reminders, tasks
from billing.models import DunningLetter, Invoice
from billing.services.dunning import dunning_run
from tests.billing.factories import billed_network
from tests.billing.helpers import NOW, bill_month
from tests.billing.test_aconto import YEAR, planned_network
from tests.billing.test_delivery import (
    FIRST_OF_NOVEMBER,
    OCTOBER,
    OCTOBER_DUE,
    october,
    with_pdf,
)


def _moved_out_and_settled():
    """Two accounts on a quarterly plan; one moves out on 1 March 2026 and gets its final
    settlement now: -1360.98 in its favour, all of it used on its open instalment."""
    from billing.models import InstalmentPlan
    from billing.services.aconto import final_settlement_issue
    from customers.models import Account, Contract

    network, (_stays, leaves) = planned_network(accounts=2)
    bill_month(network, start=YEAR, months=3, kind="instalment")
    Contract.objects.filter(pk=leaves.pk).update(valid_to=dt.date(2026, 3, 1))
    Account.objects.filter(pk=leaves.account_id).update(status=Account.Status.CLOSED)
    plan = InstalmentPlan.objects.get(account=leaves.account)
    final = final_settlement_issue(plan=plan, now=NOW)
    instalment = Invoice.objects.get(account=leaves.account, kind="instalment")
    return with_pdf(final), instalment


@pytest.mark.django_db
class TestRenderFailure:
    def test_invoices_rendered_before_a_failed_render_are_emailed(
        self, mailoutbox, monkeypatch, django_capture_on_commit_callbacks
    ):
        first, second = october(), october()
        real_render = documents.invoice_pdf_render
        calls = []

        def render_failing_second(*, invoice):
            calls.append(invoice.pk)
            if len(calls) == 2:
                raise OSError("WeasyPrint: font cache unavailable")
            return real_render(invoice=invoice)

        monkeypatch.setattr(documents, "invoice_pdf_render", render_failing_second)
        with (
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(OSError, match="font cache"),
        ):
            tasks.invoices_render_pdfs([first.pk, second.pk])
        # the task is run again (a retry, a redelivery after a crash, the admin action)
        with django_capture_on_commit_callbacks(execute=True):
            tasks.invoices_render_pdfs([first.pk, second.pk])

        rendered_first = Invoice.objects.get(pk=calls[0])
        assert rendered_first.pdf
        assert rendered_first.emailed_at is not None  # actually: PDF stored, never e-mailed
        assert len(mailoutbox) == 2

    def test_letters_rendered_before_a_failed_render_are_emailed(
        self, mailoutbox, monkeypatch, django_capture_on_commit_callbacks
    ):
        network, _contracts = billed_network(accounts=2)
        bill_month(network, start=OCTOBER, now=FIRST_OF_NOVEMBER)
        # the first reminders, 7 days late; their PDFs not rendered yet (nothing committed)
        dunning_run(now=dt.datetime.combine(OCTOBER_DUE + dt.timedelta(days=7), dt.time(6), dt.UTC))
        letter_ids = sorted(DunningLetter.objects.values_list("pk", flat=True))
        assert len(letter_ids) == 2
        real_render = reminders.reminder_pdf_render
        calls = []

        def render_failing_second(*, letter):
            calls.append(letter.pk)
            if len(calls) == 2:
                raise OSError("WeasyPrint: font cache unavailable")
            return real_render(letter=letter)

        monkeypatch.setattr(reminders, "reminder_pdf_render", render_failing_second)
        with (
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(OSError, match="font cache"),
        ):
            tasks.dunning_letters_render_pdfs(letter_ids)
        with django_capture_on_commit_callbacks(execute=True):
            tasks.dunning_letters_render_pdfs(letter_ids)

        rendered_first = DunningLetter.objects.get(pk=calls[0])
        assert rendered_first.pdf
        assert rendered_first.emailed_at is not None  # actually: PDF stored, never e-mailed
        assert len(mailoutbox) == 2


@pytest.mark.django_db
class TestSettlementBody:
    def test_a_final_settlement_is_emailed_as_final_over_the_days_supplied(self, mailoutbox):
        final, _instalment = _moved_out_and_settled()
        assert documents.invoice_context(invoice=final)["title"] == "Final settlement"

        assert tasks.invoices_email([final.pk]) == 1

        (message,) = mailoutbox
        assert message.subject.startswith("Final settlement")
        assert "2026-01-01 – 2026-02-28" in message.body  # actually 2026-12-31

    def test_a_settlement_credit_used_on_an_instalment_says_so(self, mailoutbox):
        final, instalment = _moved_out_and_settled()
        final.refresh_from_db()
        assert final.paid == final.gross  # all of its credit used
        assert documents.invoice_context(invoice=final)["credit_use"]["left"] == 0

        assert tasks.invoices_email([final.pk]) == 1

        (message,) = mailoutbox
        # the customer is told the credit settled the instalment, not that it is theirs
        assert instalment.display_number in message.body


@pytest.mark.django_db
class TestQueue:
    def test_a_fee_invoices_letter_is_emailed_on_the_render_tasks_queue(
        self, monkeypatch, django_capture_on_commit_callbacks
    ):
        invoice = october()
        for days in (7, 21):  # the second reminder charges a fee; nothing rendered yet
            dunning_run(
                now=dt.datetime.combine(OCTOBER_DUE + dt.timedelta(days=days), dt.time(6), dt.UTC)
            )
        letter = DunningLetter.objects.get(account=invoice.account, fee_invoice__isnull=False)
        queued = []
        for task in (tasks.invoices_email, tasks.dunning_letters_email):
            monkeypatch.setattr(
                task,
                "apply_async",
                lambda args, name=task.name, **options: queued.append((name, args, options)),
            )

        with django_capture_on_commit_callbacks(execute=True):
            tasks.invoices_render_pdfs.apply(
                args=([invoice.pk, letter.fee_invoice_id],), routing_key="billing"
            )

        assert queued == [
            ("billing.tasks.invoices_email", ([invoice.pk],), {"queue": "billing"}),
            ("billing.tasks.dunning_letters_email", ([letter.pk],), {"queue": "billing"}),
        ]  # actually the letter's e-mail has no queue: the default one
