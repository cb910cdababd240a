"""Staff or the re-rating look changing a run's draft while staff issue that run.

Issuing a run locks the run row, then the series counter, then the run's drafts
(``billing_run_issue``).  Holding, releasing, refreshing and issuing a single draft
change the run's counters too (``held``, ``issued``): they used to lock the draft first
and the run second, so a hold while the run was being issued deadlocked (PostgreSQL
aborted one side).  Now they lock the run first, like issuing: the draft's change waits
for the issue and then finds the draft issued (or, a held one, still a draft).

Two real connections (threads); the issue is paused after it locked the run and before
it locks anything else, until PostgreSQL shows the other side waiting for a lock.
"""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection

from billing.models import BillingRun, BillingRunChunk, Invoice
from billing.services import invoices, runs
from billing.services.invoices import (
    InvoiceIsIssued,
    invoice_cancel_draft,
    invoice_hold,
    invoice_issue,
    invoice_release,
)
from billing.services.rerating import draft_refresh
from billing.services.runs import (
    billing_run_chunk_process,
    billing_run_create,
    billing_run_issue,
    billing_run_plan,
)
from tests.billing.factories import billed_network, register
from tests.billing.helpers import NOV, NOW, bill_month, invoice_of
from tests.concurrency import in_thread, waits_for_a_lock

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
DEC = dt.date(2026, 12, 1)  # the end register of November, the month billed


class PausedIssue:
    """``billing_run_issue`` stopped after it locked the run, before the counter and the
    invoices, until released."""

    def __init__(self, monkeypatch):
        self.reached, self.released = threading.Event(), threading.Event()
        real = runs.invoices_issue

        def paused(**kwargs):
            self.reached.set()
            assert self.released.wait(30), "never released"
            return real(**kwargs)

        monkeypatch.setattr(runs, "invoices_issue", paused)


def row_free(invoice: Invoice) -> bool:
    """Whether no other transaction holds a lock on the invoice's row."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM billing_invoice WHERE id = %s FOR UPDATE SKIP LOCKED", [invoice.pk]
        )
        return cursor.fetchone() is not None


def race(monkeypatch, run: BillingRun, draft: Invoice, change, **arguments):
    """Issue ``run`` and, while the issue holds the run, ``change(**arguments)``."""
    pause = PausedIssue(monkeypatch)
    issuing, issued = in_thread(billing_run_issue, run=run, issued_at=NOW)
    try:
        assert pause.reached.wait(30), "the issue never got there"
        changing, changed = in_thread(change, **arguments)
        waited = waits_for_a_lock(changing, "billing_billingrun")
        draft_free = row_free(draft)
    finally:
        pause.released.set()
    for thread in (issuing, changing):
        thread.join(timeout=60)
        assert not thread.is_alive()
    run.refresh_from_db()
    draft.refresh_from_db()
    return waited, draft_free, issued, changed


def held_drafts(run: BillingRun) -> int:
    return Invoice.objects.filter(run=run, state=Invoice.State.DRAFT, held=True).count()


def drafted(*, held: bool = False):
    network, contracts = billed_network(accounts=2)
    if held:  # an estimated 9.5 MWh in November: more than 10 kW can deliver
        register(contracts[0].connection, DEC, Decimal("52500"), status="estimated")
    run = bill_month(network, issue=False)
    draft = invoice_of(contracts[0], kind="invoice")
    assert (draft.state, draft.held, run.held) == (Invoice.State.DRAFT, held, int(held))
    return run, contracts, draft


class TestADraftChangedWhileItsRunIsIssued:
    def test_a_hold_waits_for_the_issue_and_finds_the_draft_issued(self, monkeypatch):
        run, _, draft = drafted()

        waited, draft_free, issued, held = race(
            monkeypatch, run, draft, invoice_hold, invoice=draft, reason="customer disputes"
        )

        assert issued.get("error") is None
        assert isinstance(held.get("error"), InvoiceIsIssued)
        assert (draft.state, draft.held) == (Invoice.State.ISSUED, False)
        assert (run.state, run.issued, run.held) == (BillingRun.State.ISSUED, 2, 0)
        # it waited for the run without holding the draft
        assert (waited, draft_free) == (True, True)

    def test_a_release_waits_for_the_issue_and_the_released_draft_waits_for_the_next(
        self, monkeypatch
    ):
        run, _, draft = drafted(held=True)

        waited, draft_free, issued, released = race(
            monkeypatch, run, draft, invoice_release, invoice=draft, note="meter checked"
        )

        assert (issued.get("error"), released.get("error")) == (None, None)
        assert (draft.state, draft.held) == (Invoice.State.DRAFT, False)
        assert (run.issued, run.held, held_drafts(run)) == (1, 0, 0)
        assert (waited, draft_free) == (True, True)

    def test_a_refresh_that_holds_the_draft_waits_and_rerates_the_issued_bill(self, monkeypatch):
        """The re-rating look (``draft_refresh``) after an implausible register: the
        draft would be held; issued meanwhile, it is credited and corrected instead."""
        run, contracts, draft = drafted()
        register(contracts[0].connection, DEC, Decimal("52500"))

        waited, draft_free, issued, refreshed = race(
            monkeypatch, run, draft, draft_refresh, invoice=draft, now=NOW
        )

        assert (issued.get("error"), refreshed.get("error")) == (None, None)
        credit_note, correction = refreshed["value"]
        assert draft.number is not None  # issued with the run (then settled by the note)
        assert (credit_note.original_id, correction.original_id) == (draft.pk, draft.pk)
        assert (correction.state, correction.held, correction.run_id) == (
            Invoice.State.DRAFT,
            True,
            None,
        )
        assert (run.issued, run.held, held_drafts(run)) == (2, 0, 0)
        assert (waited, draft_free) == (True, True)

    def test_cancelling_a_held_draft_waits_and_the_run_no_longer_counts_it(self, monkeypatch):
        """What the refresh does to a draft with no contract day left."""
        run, _, draft = drafted(held=True)

        waited, draft_free, issued, cancelled = race(
            monkeypatch, run, draft, invoice_cancel_draft, invoice=draft
        )

        assert (issued.get("error"), cancelled.get("error")) == (None, None)
        assert draft.state == Invoice.State.CANCELLED
        assert (run.issued, run.held, held_drafts(run)) == (1, 0, 0)
        assert (waited, draft_free) == (True, True)

    def test_issuing_one_draft_waits_for_the_run_and_finds_it_issued(self, monkeypatch):
        run, _, draft = drafted()

        waited, draft_free, issued, issued_one = race(
            monkeypatch, run, draft, invoice_issue, invoice=draft, issued_at=NOW
        )

        assert issued.get("error") is None
        assert isinstance(issued_one.get("error"), InvoiceIsIssued)
        assert draft.state == Invoice.State.ISSUED
        assert (run.issued, run.held) == (2, 0)  # counted once
        assert (waited, draft_free) == (True, True)


def test_issuing_a_released_draft_while_a_chunk_of_its_run_numbers_its_bills(monkeypatch):
    """A run that issues when drafted: the chunk locks the run before the counter too,
    so staff issuing a released draft of an earlier chunk (run, then counter) wait for
    it instead of deadlocking with its counters' UPDATE.  (A third chunk stays to do:
    the last one would issue the run when drafted, after its commit.)"""
    network, contracts = billed_network(accounts=3)
    register(contracts[0].connection, DEC, Decimal("52500"), status="estimated")  # held
    run = billing_run_create(
        network=network,
        period_start=NOV,
        now=NOW,
        chunk_size=1,
        issue_when_drafted=True,
        render_pdfs=False,
    )
    first, second, _third = sorted(
        BillingRunChunk.objects.filter(pk__in=billing_run_plan(run=run, now=NOW)),
        key=lambda chunk: contracts[0].account_id not in chunk.account_ids,
    )
    billing_run_chunk_process(chunk_id=first.pk, now=NOW)
    draft = invoice_release(invoice=invoice_of(contracts[0]), note="meter checked")
    reached, released = threading.Event(), threading.Event()
    counter = invoices._counter

    def paused_counter(series):  # the chunk's: it holds the counter, its run UPDATE next
        locked = counter(series)
        if not reached.is_set():
            reached.set()
            assert released.wait(30), "never released"
        return locked

    monkeypatch.setattr(invoices, "_counter", paused_counter)
    chunking, chunked = in_thread(billing_run_chunk_process, chunk_id=second.pk, now=NOW)
    try:
        assert reached.wait(30), "the chunk never got there"
        issuing, issued_one = in_thread(invoice_issue, invoice=draft, issued_at=NOW)
        waited = waits_for_a_lock(issuing, "")  # any lock
    finally:
        released.set()
    for thread in (chunking, issuing):
        thread.join(timeout=60)
        assert not thread.is_alive()

    assert (chunked.get("error"), issued_one.get("error")) == (None, None)
    run.refresh_from_db()
    numbers = sorted(Invoice.objects.filter(run=run).values_list("number", flat=True))
    assert (run.issued, run.held, len(numbers), numbers[1] - numbers[0]) == (2, 0, 2, 1)
    assert waited


def test_releasing_a_correction_takes_the_counter_before_the_correction(monkeypatch):
    """A correction has no run: its release issues it (``invoice_release``), so it takes
    the series counter first, as every issuer does, and waits there without holding the
    correction's row (the other way round, an issue of the same draft deadlocked)."""
    from django.db import transaction
    from django.utils import timezone

    from billing.conf import invoice_series
    from billing.models import InvoiceNumberCounter
    from billing.services.rerating import invoices_rerate_changed
    from metering.models import BoundaryRegister

    network, contracts = billed_network(accounts=1)
    bill_month(network)
    BoundaryRegister.objects.update(updated_at=timezone.now() - dt.timedelta(days=1))
    register(contracts[0].connection, DEC, Decimal("52500"), status="estimated")
    [(_credit, correction)] = invoices_rerate_changed(now=timezone.now())
    assert (correction.run_id, correction.held) == (None, True)
    # the series the release at NOW numbers in; the re-rating's credit note, issued by the
    # clock, takes the real year's, which is another one from 2027 on
    counted = InvoiceNumberCounter.objects.get(series=invoice_series(NOW.year)).last_number
    reached, released = threading.Event(), threading.Event()

    def holding_the_counter():  # another issuer, between its counter and its rows
        with transaction.atomic():
            invoices.series_counter_lock(issued_at=NOW, time_zone=network.time_zone)
            reached.set()
            assert released.wait(30), "never released"

    holding, held = in_thread(holding_the_counter)
    try:
        assert reached.wait(30), "the other issuer never got there"
        releasing, release = in_thread(
            invoice_release, invoice=correction, note="estimate agreed", now=NOW
        )
        waited = waits_for_a_lock(releasing, "billing_invoicenumbercounter")
        correction_free = row_free(correction)
    finally:
        released.set()
    for thread in (holding, releasing):
        thread.join(timeout=60)
        assert not thread.is_alive()

    assert (held.get("error"), release.get("error")) == (None, None)
    correction.refresh_from_db()
    assert (correction.state, correction.held, correction.number) == (
        Invoice.State.ISSUED,
        False,
        counted + 1,
    )
    assert (waited, correction_free) == (True, True)
