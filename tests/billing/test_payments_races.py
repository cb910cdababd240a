"""Payments booked by two sessions at once (PostgreSQL, real connections).

A statement import books many accounts' payments in one transaction, and a billing
run's issue step uses the credit of many accounts in one transaction: each locks the
open invoices of every account it books for.  Taken account by account in the order of
the file (or of the payments' dates), two such transactions naming two accounts in
opposite orders deadlocked, and PostgreSQL refused one of them whole.

One side is paused after it booked (allocated) its first payment, holding that
account's invoices, until PostgreSQL shows the other side waiting for a lock.
"""

import datetime as dt
from decimal import Decimal

import pytest

from billing import tasks
from billing.models import Allocation, Payment
from billing.services import payments as payment_services
from billing.services.payments import payment_record, payments_import_csv
from billing.services.runs import billing_run_create, billing_run_issue
from heatutility.roles import BILLING_CLERK
from tests.billing.factories import billed_network
from tests.billing.helpers import NOV, NOW, bill_month, client_for
from tests.concurrency import Pause, finish, in_thread, waits_for_a_lock

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
HEADER = "date,amount,reference,account,transaction_id\n"
D = Decimal


def statement(*rows: tuple) -> str:
    return HEADER + "".join(
        f"2026-12-03,{amount},x,{account.number},{tx}\n" for account, amount, tx in rows
    )


def two_accounts():
    network, contracts = billed_network(accounts=2)
    first, second = sorted((c.account for c in contracts), key=lambda a: a.pk)
    return network, first, second


def outcome_of(done: dict):
    assert "error" not in done, repr(done.get("error"))
    return done["value"]


def test_two_imports_naming_two_accounts_in_opposite_orders(monkeypatch):
    network, first, second = two_accounts()
    bill_month(network)  # both accounts owe their November bill
    one = statement((first, "10.00", "a-1"), (second, "10.00", "a-2"))
    other = statement((second, "20.00", "b-2"), (first, "20.00", "b-1"))
    pause = Pause(monkeypatch, payment_services, "payment_record", after=True)
    importing, imported = in_thread(payments_import_csv, text=one, now=NOW)
    try:
        pause.wait()  # holds the first account's invoices
        racing, raced = in_thread(payments_import_csv, text=other, now=NOW)
        assert waits_for_a_lock(racing, 'FROM "billing_invoice"')
    finally:
        pause.released.set()
    finish(importing, racing)

    assert outcome_of(imported).created == 2
    assert outcome_of(raced).created == 2
    assert Payment.objects.count() == 4
    for account in (first, second):
        paid = Allocation.objects.filter(invoice__account=account).values_list("amount", flat=True)
        assert sum(paid) == D("30.00")


def test_an_import_while_the_run_uses_prepaid_credit_on_its_bills(monkeypatch):
    """An auto-issued run numbers its bills chunk by chunk; its issue step then uses the
    accounts' credit on them, payments oldest first (here the second account's)."""
    network, first, second = two_accounts()
    payment_record(account=second, amount=D("100.00"), received_on=dt.date(2026, 11, 20), now=NOW)
    payment_record(account=first, amount=D("100.00"), received_on=dt.date(2026, 11, 25), now=NOW)
    run = billing_run_create(
        network=network,
        period_start=NOV,
        now=NOW,
        chunk_size=2,
        render_pdfs=False,
        issue_when_drafted=True,
    )
    with monkeypatch.context() as later:  # the issue step is raced below
        later.setattr(tasks.billing_run_issue, "apply_async", lambda *a, **k: None)
        tasks.billing_run_start.delay(run.pk)
    run.refresh_from_db()
    assert run.issued == 2
    assert not Allocation.objects.exists()  # the credit is not used yet

    pause = Pause(monkeypatch, payment_services, "payment_allocate", after=True)
    issuing, issued = in_thread(billing_run_issue, run=run, issued_at=NOW)
    try:
        pause.wait()  # used the second account's prepayment: holds its bill
        importing, imported = in_thread(
            payments_import_csv,
            text=statement((first, "10.00", "c-1"), (second, "10.00", "c-2")),
            now=NOW,
        )
        assert waits_for_a_lock(importing, 'FROM "billing_invoice"')
    finally:
        pause.released.set()
    finish(issuing, importing)

    outcome_of(issued)
    assert outcome_of(imported).created == 2
    assert Allocation.objects.filter(payment__bank_transaction_id__in=("c-1", "c-2")).count() == 2
    assert Allocation.objects.filter(payment__received_on__lt=dt.date(2026, 12, 1)).count() == 2


def test_a_payment_whose_bank_id_an_import_books_meanwhile_is_a_conflict(monkeypatch):
    """The API checks the bank transaction id (400 on its field), then records; an
    import committing the same id in between meets the unique constraint, which the API
    answers as an itemised 409 (not a 500), and nothing is booked twice."""
    network, first, _second = two_accounts()
    bill_month(network)
    clerk = client_for(BILLING_CLERK)
    body = {
        "account": first.pk,
        "amount": "10.00",
        "received_on": "2026-12-03",
        "bank_transaction_id": "B-9",
    }
    response = _posted_while_an_import_books_b9(
        monkeypatch, first, clerk.post, path="/api/v1/billing/payments/", data=body, format="json"
    )

    assert response.status_code == 409
    assert response.json()["errors"] == [
        {
            "code": "conflict",
            "message": "This bank transaction was imported already.",
            "field": "bank_transaction_id",
        }
    ]
    assert Payment.objects.get().source == Payment.Source.BANK


def test_a_payment_the_admin_adds_whose_bank_id_an_import_books_meanwhile(monkeypatch):
    """The admin's form checks the bank transaction id, then the service records it: an
    import committing the same id in between is the form again with why (was a 500 on
    the unique constraint), and nothing is booked twice."""
    import html

    from django.contrib.auth.models import User
    from django.test import Client

    network, first, _second = two_accounts()
    bill_month(network)
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "boss@example.org", "pw"))
    form = {
        "account": first.pk,
        "amount": "10.00",
        "received_on": "2026-12-03",
        "reference": "",
        "bank_transaction_id": "B-9",
    }
    response = _posted_while_an_import_books_b9(
        monkeypatch, first, client.post, path="/admin/billing/payment/add/", data=form, follow=True
    )

    assert response.status_code == 200
    assert "This bank transaction was imported already." in html.unescape(response.content.decode())
    assert Payment.objects.get().source == Payment.Source.BANK


def _posted_while_an_import_books_b9(monkeypatch, account, post, **request):
    """``post(**request)`` in a thread, paused after its bank id was checked and before
    the payment is recorded, while a statement import books bank id B-9 for ``account``;
    the response."""
    pause = Pause(monkeypatch, payment_services, "payment_record")  # checked, not recorded
    posting, posted = in_thread(post, **request)
    try:
        pause.wait()
        assert payments_import_csv(text=statement((account, "10.00", "B-9")), now=NOW).created == 1
    finally:
        pause.released.set()
    finish(posting)
    return outcome_of(posted)
