"""Audit of the one-letter-per-account dunning (billing.services.dunning, migrations
0014/0015): each test reproduces a bug and is expected to fail until it is fixed."""

import datetime as dt
import threading
import time
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, connections

from billing.models import DunningLetter, DunningNotice, Invoice, InvoiceNumberCounter
from billing.services.dunning import dunning_run
from billing.services.invoices import invoice_credit
from tests.billing.factories import billed_network
from tests.billing.helpers import NOW, bill_month, invoice_of

OCTOBER = dt.date(2026, 10, 1)
# October is issued on 1 November (Copenhagen) with 14 days' terms: due 15 November
OCTOBER_DUE = dt.date(2026, 11, 15)
FIRST_OF_NOVEMBER = NOW - dt.timedelta(days=31)
YEAR = dt.date(2026, 1, 1)


def at(day: dt.date, hour: int = 6) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def late(days: int) -> dt.datetime:
    """06:00 UTC ``days`` after October's due date."""
    return at(OCTOBER_DUE + dt.timedelta(days=days))


def october_billed():
    network, contracts = billed_network(accounts=1)
    bill_month(network, start=OCTOBER, now=FIRST_OF_NOVEMBER)
    return network, contracts[0].account, invoice_of(contracts[0], period_start=OCTOBER)


def settlement_in_credit_credited():
    """A quarterly plan, Q1's instalment (4082.93, due 16 December), a move-out on 1 March
    and the final settlement now: −1360.98 in the customer's favour, which settles part of
    the instalment.  Staff then credit that settlement in full (say it went to the wrong
    account): the credit note reverses a credit, so its gross is +1360.98."""
    from billing.models import InstalmentPlan
    from billing.services.aconto import final_settlement_issue, instalment_plan_create
    from customers.models import Account, Contract

    network, (contract,) = billed_network(accounts=1)
    account = contract.account
    instalment_plan_create(account=account, year_start=YEAR, frequency="quarterly", now=NOW)
    bill_month(network, start=YEAR, months=3, kind="instalment")
    Contract.objects.filter(pk=contract.pk).update(valid_to=dt.date(2026, 3, 1))
    Account.objects.filter(pk=account.pk).update(status=Account.Status.CLOSED)
    final = final_settlement_issue(plan=InstalmentPlan.objects.get(account=account), now=NOW)
    credit_note = invoice_credit(invoice=final, now=NOW)
    return account, final, credit_note


@pytest.mark.django_db
class TestCreditNotesAreNeverDunned:
    def test_a_credit_note_reversing_a_settlement_in_credit_gets_no_notice(self):
        _account, final, credit_note = settlement_in_credit_credited()
        assert (final.gross, credit_note.gross) == (Decimal("-1360.98"), Decimal("1360.98"))
        assert credit_note.kind == Invoice.Kind.CREDIT_NOTE

        first = dunning_run(now=at(dt.date(2026, 12, 23)))  # 7 days after 16 December
        second = dunning_run(now=at(dt.date(2027, 1, 7)))  # 22 days

        dunned = [
            (n.invoice.kind, n.level) for letter in first + second for n in letter.notices.all()
        ]
        # the instalment is dunned; the credit note is never (docs/billing.md, Dunning)
        assert ("instalment", 1) in dunned
        assert not DunningNotice.objects.filter(invoice=credit_note).exists()
        # the letters' totals are the instalment's open amount only (2721.95)
        assert [letter.open_amount for letter in first] == [Decimal("2721.95")]


@pytest.mark.django_db
class TestErrorsAreNotSwallowed:
    def test_an_integrity_error_that_is_no_race_is_raised_not_swallowed(self):
        network, _account, _october = october_billed()
        dunning_run(now=late(7))  # October: level 1
        bill_month(network, start=dt.date(2026, 11, 1))  # November, INV-2026-000002
        # any non-race integrity error will do: here the series counter is behind, so the
        # fee invoice's number 2 is taken
        InvoiceNumberCounter.objects.filter(series="INV-2026").update(last_number=1)

        # 23 December: October reaches level 2 (fee), November level 1, in one letter
        with pytest.raises(IntegrityError):
            dunning_run(now=at(dt.date(2026, 12, 23)))


@pytest.mark.postgres  # a transactional test: SQLite's flush trips the tariff-version lock
@pytest.mark.django_db(transaction=True)
class TestReverseMigration:
    def test_reverse_keeps_a_letters_fee_invoice_and_pdf_on_its_notice(
        self, django_capture_on_commit_callbacks
    ):
        from django.db.migrations.executor import MigrationExecutor

        _network, _account, october = october_billed()
        dunning_run(now=late(7))
        with django_capture_on_commit_callbacks(execute=True):
            (letter,) = dunning_run(now=late(21))
        letter.refresh_from_db()
        assert letter.fee_invoice_id is not None
        assert letter.pdf
        fee_invoice_id, pdf = letter.fee_invoice_id, letter.pdf.name

        executor = MigrationExecutor(connection)
        try:
            executor.migrate([("billing", "0013_credit_left_indexes")])
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT fee, fee_invoice_id, pdf FROM billing_dunningnotice "
                    "WHERE invoice_id = %s AND level = 2",
                    [october.pk],
                )
                reversed_notice = cursor.fetchone()
            executor = MigrationExecutor(connection)
            executor.migrate([("billing", "0015_dunning_letters_from_notices")])
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT fee, fee_invoice_id, pdf FROM billing_dunningletter WHERE level = 2"
                )
                round_trip = cursor.fetchall()
        finally:
            executor = MigrationExecutor(connection)
            executor.migrate(executor.loader.graph.leaf_nodes())

        # the old schema's only home for a letter's fee: its (highest-level) notice
        assert tuple(reversed_notice) == (Decimal("100.00"), fee_invoice_id, pdf)
        assert [tuple(row) for row in round_trip] == [(Decimal("100.00"), fee_invoice_id, pdf)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestConcurrentCredit:
    def test_crediting_an_overdue_invoice_while_the_run_dunns_it(self, monkeypatch):
        from billing.services import invoices as invoice_services

        _network, _account, october = october_billed()
        _other, other_account, _other_october = october_billed()  # dunned after it
        dunning_run(now=late(7))
        credit_holds_the_invoice = threading.Event()
        draft = invoice_services.credit_note_draft

        def slow_draft(*, invoice):
            # invoice_credit holds the invoice row lock here, the counter comes next
            credit_holds_the_invoice.set()
            time.sleep(1.5)  # meanwhile the run takes the counter and waits for the invoice
            return draft(invoice=invoice)

        monkeypatch.setattr(invoice_services, "credit_note_draft", slow_draft)
        errors: list[Exception] = []
        letters: list = []

        def credit():
            try:
                invoice_credit(invoice=Invoice.objects.get(pk=october.pk), now=late(21))
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                connections.close_all()

        def dun():
            try:
                credit_holds_the_invoice.wait(10)
                letters.extend(dunning_run(now=late(21)))
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=credit), threading.Thread(target=dun)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        # the credited invoice is settled; the other network's account still got its letter
        assert [letter.account_id for letter in letters] == [other_account.pk]
        assert DunningLetter.objects.filter(account=other_account, level=2).exists()
