"""Audit of billing runs, issuing and dunning: each test failed before its fix."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection, connections

from billing.models import Allocation, BillingRun, Invoice
from billing.services.invoices import invoice_hold, invoice_issue, invoice_release
from billing.services.runs import (
    RunNotReady,
    billing_run_cancel,
    billing_run_chunk_process,
    billing_run_create,
    billing_run_issue,
    billing_run_plan,
    billing_run_resume,
)
from tests.billing.factories import billed_network
from tests.billing.helpers import NOV, NOW, bill_month


def _planned(network, **kwargs):
    run = billing_run_create(
        network=network, period_start=NOV, now=NOW, chunk_size=2, render_pdfs=False, **kwargs
    )
    chunk_ids = billing_run_plan(run=run, now=NOW)
    return run, chunk_ids


class _CancelAfterStateCheck:
    """Cancel the run once the chunk has read it as running, before its transaction:
    what a staff cancel committed while a worker computes the chunk looks like."""

    def __init__(self, run):
        self.run = run
        self.fired = False

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not self.fired and "attempts" in sql and sql.lstrip().upper().startswith("UPDATE"):
            self.fired = True
            billing_run_cancel(run=self.run)
        return result


@pytest.mark.django_db
class TestCancelRacingAChunk:
    def test_a_chunk_does_not_leave_drafts_behind_a_cancel_and_a_new_run_bills_them(self):
        network, contracts = billed_network(accounts=3)
        run, chunk_ids = _planned(network)
        hook = _CancelAfterStateCheck(run)
        with connection.execute_wrapper(hook):
            billing_run_chunk_process(chunk_id=chunk_ids[0], now=NOW)
        assert hook.fired
        run.refresh_from_db()
        assert run.state == BillingRun.State.CANCELLED
        # nothing of the cancelled run stays a live draft
        assert not Invoice.objects.filter(run=run).exclude(state=Invoice.State.CANCELLED).exists()
        assert (run.done, run.failed, run.issued) == (0, 0, 0)

        again = bill_month(network)
        assert again.state == BillingRun.State.ISSUED
        assert (again.total, again.done, again.issued) == (3, 3, 3)
        for contract in contracts:
            assert (
                Invoice.objects.get(account=contract.account, state=Invoice.State.ISSUED).run_id
                == again.pk
            )


@pytest.mark.django_db
class TestCancelAfterAutoIssue:
    def test_a_run_whose_chunks_issued_invoices_cannot_be_cancelled(self):
        network, _ = billed_network(accounts=3)
        run, chunk_ids = _planned(network, issue_when_drafted=True)
        billing_run_chunk_process(chunk_id=chunk_ids[0], now=NOW)
        run.refresh_from_db()
        assert run.state == BillingRun.State.RUNNING
        assert run.issued == 2
        with pytest.raises(RunNotReady):
            billing_run_cancel(run=run)
        run.refresh_from_db()
        assert run.state == BillingRun.State.RUNNING

    def test_the_api_answers_409(self):
        from heatutility.roles import BILLING_CLERK
        from tests.billing.helpers import client_for

        network, _ = billed_network(accounts=3)
        run, chunk_ids = _planned(network, issue_when_drafted=True)
        billing_run_chunk_process(chunk_id=chunk_ids[0], now=NOW)
        response = client_for(BILLING_CLERK).post(f"/api/v1/billing/runs/{run.pk}/cancel/")
        assert response.status_code == 409
        run.refresh_from_db()
        assert run.state == BillingRun.State.RUNNING


@pytest.mark.django_db
class TestResumingAnEmptyRun:
    def test_resuming_an_issued_run_without_accounts_leaves_it_issued(self):
        network, _ = billed_network(accounts=2)  # contracts from 2024-01-01
        run = bill_month(network, start=dt.date(2023, 11, 1))
        assert (run.state, run.total) == (BillingRun.State.ISSUED, 0)
        started = run.started_at
        assert billing_run_resume(run=run, now=NOW + dt.timedelta(days=3)) == []
        run.refresh_from_db()
        assert run.state == BillingRun.State.ISSUED
        assert run.started_at == started


@pytest.mark.django_db
class TestReleasedDraftIssuedAlone:
    def test_the_run_counts_a_released_draft_issued_on_its_own(self):
        network, _ = billed_network(accounts=2)
        run = bill_month(network, issue=False)
        held = invoice_hold(invoice=Invoice.objects.order_by("pk").first(), reason="check")
        billing_run_issue(run=run, issued_at=NOW)
        run.refresh_from_db()
        assert (run.issued, run.held) == (1, 1)
        invoice_release(invoice=held, note="ok")
        issued = invoice_issue(invoice=Invoice.objects.get(pk=held.pk), issued_at=NOW)
        assert issued.number == 2
        run.refresh_from_db()
        assert (run.issued, run.held) == (2, 0)


@pytest.mark.django_db
class TestLocalAllocationDate:
    """Credit used on the new invoices is allocated on the network's local issue date."""

    LATE_EVENING = dt.datetime(2026, 12, 2, 23, 30, tzinfo=dt.UTC)  # 3 Dec in Copenhagen

    def _prepaid(self):
        from billing.services.payments import payment_record

        network, contracts = billed_network(accounts=1)
        payment_record(
            account=contracts[0].account,
            amount=Decimal("100.00"),
            received_on=dt.date(2026, 12, 1),
            now=NOW,
        )
        return network

    def test_run_issue(self):
        network = self._prepaid()
        bill_month(network, now=self.LATE_EVENING)
        assert Allocation.objects.get().allocated_on == dt.date(2026, 12, 3)

    def test_single_issue(self):
        network = self._prepaid()
        bill_month(network, issue=False)
        invoice_issue(invoice=Invoice.objects.get(), issued_at=self.LATE_EVENING)
        assert Allocation.objects.get().allocated_on == dt.date(2026, 12, 3)


@pytest.mark.django_db
class TestAdminEditOfARunningRun:
    def test_saving_a_run_keeps_what_its_chunks_committed_meanwhile(self, rf):
        from django.contrib.admin.sites import site
        from django.contrib.auth.models import User

        network, _ = billed_network(accounts=3)
        run, chunk_ids = _planned(network)
        user = User.objects.create_superuser("boss", "boss@example.org", "pw")
        request = rf.post("/")
        request.user = user
        model_admin = site._registry[BillingRun]
        stale = BillingRun.objects.get(pk=run.pk)  # the change form loads the run
        form = model_admin.get_form(request, stale, change=True)(
            data={"issue_when_drafted": "", "render_pdfs": "on"}, instance=stale
        )
        assert form.is_valid(), form.errors
        for chunk_id in chunk_ids:  # the workers finish the run meanwhile
            billing_run_chunk_process(chunk_id=chunk_id, now=NOW)
        model_admin.save_model(request, model_admin.save_form(request, form, True), form, True)
        run.refresh_from_db()
        assert run.state == BillingRun.State.DRAFTED
        assert (run.total, run.done) == (3, 3)
        assert run.render_pdfs


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestCancelRacingAChunkOnPostgres:
    def test_a_cancel_committed_while_a_worker_computes_a_chunk_wins(self, monkeypatch):
        from billing.services import runs

        network, contracts = billed_network(accounts=3)
        run, chunk_ids = _planned(network)
        computed, cancelled = threading.Event(), threading.Event()
        original = runs._compute_isolating
        errors = []

        def compute(*args, **kwargs):
            result = original(*args, **kwargs)
            computed.set()
            cancelled.wait(10)
            return result

        monkeypatch.setattr(runs, "_compute_isolating", compute)

        def worker():
            try:
                billing_run_chunk_process(chunk_id=chunk_ids[0], now=NOW)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                connections.close_all()

        thread = threading.Thread(target=worker)
        thread.start()
        assert computed.wait(10)
        billing_run_cancel(run=run)
        cancelled.set()
        thread.join(20)
        assert not errors
        assert not Invoice.objects.filter(run=run).exclude(state=Invoice.State.CANCELLED).exists()
        monkeypatch.setattr(runs, "_compute_isolating", original)
        again = bill_month(network)
        assert (again.done, again.issued) == (3, 3)
        assert Invoice.objects.filter(state=Invoice.State.ISSUED).count() == len(contracts)
