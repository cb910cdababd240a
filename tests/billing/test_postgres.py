"""Guarantees that only PostgreSQL (and real workers on Redis) can prove."""

import datetime as dt
import threading
import time
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, connections, transaction

from billing import tasks
from billing.models import BillingRun, Invoice, InvoiceLine
from billing.services.invoices import invoice_issue
from billing.services.runs import billing_run_create
from tests.billing.factories import billed_network
from tests.billing.helpers import NOV, NOW, bill_month


def a_line(invoice, position) -> InvoiceLine:
    """An unsaved line of ``invoice`` at ``position`` (its figures do not matter here)."""
    return InvoiceLine(
        invoice=invoice,
        position=position,
        component="x",
        kind="x",
        description="x",
        explanation="x",
        quantity=1,
        unit="x",
        unit_price=1,
        amount=1,
        vat_rate=0,
    )


@pytest.mark.postgres
@pytest.mark.django_db
class TestIssuedInvoicesNeverChange:
    def test_database_refuses_changing_an_issued_invoice(self):
        network, _ = billed_network(accounts=1)
        bill_month(network)
        invoice = Invoice.objects.get()
        with pytest.raises(IntegrityError, match="cannot be changed"), transaction.atomic():
            Invoice.objects.filter(pk=invoice.pk).update(
                gross=Decimal("1.00"), net=Decimal("1.00"), vat=0
            )

    def test_database_refuses_touching_lines_of_an_issued_invoice(self):
        network, _ = billed_network(accounts=1)
        bill_month(network)
        line = InvoiceLine.objects.first()
        with pytest.raises(IntegrityError, match="cannot be changed"), transaction.atomic():
            InvoiceLine.objects.filter(pk=line.pk).update(amount=Decimal("0"))
        with pytest.raises(IntegrityError, match="issued invoice"), transaction.atomic():
            a_line(line.invoice, 99).save()

    def test_one_issued_invoice_among_a_bulk_of_draft_lines_is_refused(self):
        network, _ = billed_network(accounts=2)
        bill_month(network, issue=False)
        issued, other = Invoice.objects.order_by("pk")
        invoice_issue(invoice=issued, issued_at=NOW)

        def lines(invoice, first):
            return [a_line(invoice, first + k) for k in range(3)]

        with pytest.raises(IntegrityError, match="issued invoice"), transaction.atomic():
            InvoiceLine.objects.bulk_create(lines(other, 90) + lines(issued, 90))
        assert not InvoiceLine.objects.filter(position__gte=90).exists()
        InvoiceLine.objects.bulk_create(lines(other, 90))  # a draft's lines alone go in
        assert InvoiceLine.objects.filter(invoice=other, position__gte=90).count() == 3

    def test_database_refuses_deleting_an_issued_invoice(self):
        network, _ = billed_network(accounts=1)
        bill_month(network)
        with (
            pytest.raises(IntegrityError, match="cannot be deleted"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("DELETE FROM billing_invoice")

    def test_payment_state_may_still_move(self):
        network, _ = billed_network(accounts=1)
        bill_month(network)
        invoice = Invoice.objects.get()
        Invoice.objects.filter(pk=invoice.pk).update(state=Invoice.State.PAID, paid=invoice.gross)
        invoice.refresh_from_db()
        assert invoice.state == Invoice.State.PAID


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestGaplessNumberingUnderConcurrency:
    def test_parallel_issuers_get_gapless_unique_numbers(self):
        network, _ = billed_network(accounts=24, months=23)
        bill_month(network, issue=False)
        ids = list(Invoice.objects.order_by("id").values_list("id", flat=True))
        errors = []

        def issue(part):
            try:
                for invoice in Invoice.objects.filter(id__in=part).select_related("network"):
                    invoice_issue(invoice=invoice, issued_at=NOW)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=issue, args=(ids[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        numbers = sorted(Invoice.objects.values_list("number", flat=True))
        assert numbers == list(range(1, 25))

    def test_a_rolled_back_issue_leaves_no_gap(self):
        network, _ = billed_network(accounts=2, months=23)
        bill_month(network, issue=False)
        first, second = Invoice.objects.order_by("id").select_related("network")

        def crash_after_numbering():
            with transaction.atomic():
                invoice_issue(invoice=first, issued_at=NOW)
                raise RuntimeError("crash after numbering")

        with pytest.raises(RuntimeError):
            crash_after_numbering()
        invoice_issue(invoice=second, issued_at=NOW)
        second.refresh_from_db()
        assert second.number == 1


def wait_for(predicate, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.redis
class TestKilledWorker:
    def test_run_resumes_after_the_worker_is_killed_and_bills_each_account_once(
        self, celery_worker
    ):
        network, contracts = billed_network(accounts=24, months=23)
        run = billing_run_create(
            network=network, period_start=NOV, now=NOW, chunk_size=2, render_pdfs=False
        )
        tasks.billing_run_start.delay(run.pk, 0.7)
        assert wait_for(lambda: BillingRun.objects.get(pk=run.pk).done >= 4), celery_worker.log()
        celery_worker.kill()
        run.refresh_from_db()
        assert run.state == BillingRun.State.RUNNING
        assert run.done < run.total == 24
        celery_worker.start()
        tasks.billing_run_resume.delay(run.pk)
        assert wait_for(
            lambda: BillingRun.objects.get(pk=run.pk).state == BillingRun.State.DRAFTED
        ), celery_worker.log()
        run.refresh_from_db()
        assert (run.done, run.failed) == (24, 0)
        billed = list(Invoice.objects.values_list("account_id", flat=True))
        assert sorted(billed) == sorted(c.account_id for c in contracts)
        assert sum(chunk.attempts for chunk in run.chunks.all()) >= run.chunks.count()

    def test_a_planning_is_queued_and_planned_by_a_worker(self, celery_worker):
        from rest_framework.test import APIClient

        from billing.models import InstalmentPlan, InstalmentPlanning
        from heatutility.roles import BILLING_CLERK
        from tests.billing.helpers import staff_user

        network, _ = billed_network(accounts=3, months=23)
        clerk = APIClient()
        clerk.force_authenticate(staff_user(BILLING_CLERK))
        body = {"network": network.pk, "year_start": "2026-01-01", "frequency": "quarterly"}

        response = clerk.post("/api/v1/billing/instalment-plans/", body, format="json")

        assert response.status_code == 202, response.content
        assert response.json()["state"] in ("queued", "running", "done")
        url = f"/api/v1/billing/instalment-plannings/{response.json()['id']}/"
        assert wait_for(lambda: clerk.get(url).json()["state"] == "done"), celery_worker.log()
        assert (clerk.get(url).json()["created"], InstalmentPlan.objects.count()) == (3, 3)
        assert InstalmentPlanning.objects.get().requested_by.username == "billing_clerk"

    def test_issue_with_pdfs_on_real_workers(self, celery_worker):
        network, _ = billed_network(accounts=3, months=23)
        run = billing_run_create(
            network=network, period_start=NOV, now=NOW, issue_when_drafted=True
        )
        tasks.billing_run_start.delay(run.pk)
        assert wait_for(lambda: Invoice.objects.exclude(pdf="").count() == 3, timeout=120), (
            celery_worker.log()
        )
        assert sorted(Invoice.objects.values_list("number", flat=True)) == [1, 2, 3]


@pytest.mark.postgres
@pytest.mark.django_db
class TestCopyWriter:
    def test_text_with_tabs_newlines_and_backslashes_round_trips(self):
        from billing.calc import BillDraft, DraftLine
        from billing.services.write import drafts_write

        network, contracts = billed_network(accounts=1, months=1)
        text = "a\tb\nc\\d ø ΔT"
        line = DraftLine(
            connection_id=None,
            period_start=NOV,
            period_end=dt.date(2026, 12, 1),
            tariff_version_id=None,
            component="x",
            kind="fixed",
            description=text,
            explanation=text,
            quantity=Decimal("1"),
            unit="year",
            unit_price=Decimal("1.5"),
            amount=Decimal("1.50"),
            vat_rate=Decimal("0.25"),
        )
        draft = BillDraft(
            account_id=contracts[0].account_id,
            period_start=NOV,
            period_end=dt.date(2026, 12, 1),
            currency="DKK",
            lines=[line],
            net=Decimal("1.50"),
            vat=Decimal("0.38"),
            gross=Decimal("1.88"),
            vat_breakdown=[],
            readings=[{"note": text}],
            has_estimated_reads=False,
            tariff_version_ids=[],
            determinants=[],
            comparison={},
            hold_reasons=[text],
        )
        (invoice_id,) = drafts_write(
            drafts=[draft], network_id=network.pk, run_id=None, kind="invoice", now=NOW
        )
        invoice = Invoice.objects.get(pk=invoice_id)
        assert invoice.hold_reason == text
        assert invoice.readings == [{"note": text}]
        assert invoice.lines.get().explanation == text


@pytest.mark.postgres
@pytest.mark.django_db
class TestChunkWithAnUnstorableBill:
    def test_the_other_bills_are_written_and_the_bad_one_is_an_exception(self):
        from tests.billing.factories import register

        network, contracts = billed_network(accounts=3, months=23)
        # a register jump whose bill overflows the amount column (> 10^12 DKK)
        register(contracts[1].connection, dt.date(2026, 12, 1), Decimal("9000000000000"))
        run = bill_month(network, issue=False)
        assert (run.done, run.failed) == (2, 1)
        assert run.exceptions.get().code == "write_error"
        assert Invoice.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db
class TestRunWritesCommonBillsAsRows:
    def test_common_accounts_take_the_direct_path_and_match_a_recomputation(self):
        """On PostgreSQL a run's ordinary accounts are written straight as COPY rows
        (billing.services.render.bill_render); what lands is what bill_compute gives."""
        from unittest import mock

        from billing.services import render
        from billing.services.compute import drafts_compute

        network, contracts = billed_network(accounts=3)
        with (
            mock.patch.object(render, "bill_render", wraps=render.bill_render) as direct,
            mock.patch.object(render, "bill_compute", wraps=render.bill_compute) as fallback,
        ):
            run = bill_month(network, issue=False)

        assert (run.done, run.failed) == (3, 0)
        assert (direct.call_count, fallback.call_count) == (3, 0)  # none declined
        drafts, failures = drafts_compute(
            currency=network.currency,
            account_ids=[c.account_id for c in contracts],
            period_start=NOV,
            period_end=dt.date(2026, 12, 1),
        )
        assert failures == {}
        for draft in drafts:
            invoice = Invoice.objects.get(account_id=draft.account_id)
            assert (invoice.net, invoice.vat, invoice.gross) == (draft.net, draft.vat, draft.gross)
            assert invoice.readings == draft.readings
            assert invoice.determinants == {
                "segments": draft.determinants,
                "vat": draft.vat_breakdown,
            }
            assert invoice.comparison == draft.comparison
            lines = list(invoice.lines.order_by("position"))
            assert [(ln.component, ln.explanation, ln.quantity, ln.amount) for ln in lines] == [
                (d.component, d.explanation, d.quantity, d.amount) for d in draft.lines
            ]

    @pytest.mark.parametrize("shape", ["blocks", "tariff_change"])
    def test_block_prices_and_a_tariff_change_match_a_recomputation(self, shape):
        """Block prices take the direct path and record the trailing year's register and
        MWh as bill_compute does; a tariff version changing on the 16th falls back to
        bill_compute, its slices adding up to the comparison's MWh (1,000.0005 kWh a
        month: 1.000001 MWh, not 0.500000 twice)."""
        from unittest import mock

        from billing.services import render
        from billing.services.compute import drafts_compute
        from tests.billing.factories import contract_with_connection, register, tariff_version
        from tests.customers.factories import NetworkFactory

        network = NetworkFactory()
        mid = dt.date(2026, 11, 16)
        if shape == "blocks":
            blocks = [{"upto": "5", "price": "600.00"}, {"price": "300.00"}]
            energy = {"type": "energy", "code": "energy", "description": "Energy"}
            tariff_version(network=network, components=[{**energy, "blocks": blocks}])
        else:
            tariff_version(network=network, valid_to=mid)
            tariff_version(network=network, valid_from=mid)
        contracts = []
        for n in range(3):
            contract = contract_with_connection(network=network)
            value, day = Decimal(10000 * (n + 1)), dt.date(2025, 1, 1)
            while day <= dt.date(2026, 12, 1):
                register(contract.connection, day, value)
                value += Decimal("1000.0005")
                day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
            contracts.append(contract)
        with (
            mock.patch.object(render, "bill_render", wraps=render.bill_render) as direct,
            mock.patch.object(render, "bill_compute", wraps=render.bill_compute) as fallback,
        ):
            run = bill_month(network, issue=False)

        assert (run.done, run.failed) == (3, 0)
        expected_paths = (3, 0) if shape == "blocks" else (0, 3)
        assert (direct.call_count, fallback.call_count) == expected_paths
        drafts, failures = drafts_compute(
            currency=network.currency,
            account_ids=[c.account_id for c in contracts],
            period_start=NOV,
            period_end=dt.date(2026, 12, 1),
        )
        assert failures == {}
        for draft in drafts:
            invoice = Invoice.objects.get(account_id=draft.account_id)
            assert (invoice.net, invoice.vat, invoice.gross) == (draft.net, draft.vat, draft.gross)
            assert invoice.has_estimated_reads == draft.has_estimated_reads
            assert invoice.readings == draft.readings
            assert invoice.determinants == {
                "segments": draft.determinants,
                "vat": draft.vat_breakdown,
            }
            assert invoice.comparison == draft.comparison
            lines = list(invoice.lines.order_by("position"))
            assert [(ln.component, ln.explanation, ln.quantity, ln.amount) for ln in lines] == [
                (d.component, d.explanation, d.quantity, d.amount) for d in draft.lines
            ]
            segments = invoice.determinants["segments"]
            assert invoice.comparison["energy_mwh"] == "1.000001"
            if shape == "blocks":  # 12 months of 1,000.0005 kWh: 12.000006 MWh
                days = [r["on"] for r in invoice.readings]
                assert days == ["2025-12-01", "2026-11-01", "2026-12-01"]
                assert segments[0]["annual_energy_mwh"] == "12.000006"
            else:
                assert [s["energy_mwh"] for s in segments] == ["0.500000", "0.500001"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestPlanningTwiceAtOnce:
    def test_two_plannings_of_a_network_at_once_plan_each_account_once(self):
        from billing.models import InstalmentPlan
        from billing.services.aconto import instalment_plans_create

        network, _ = billed_network(accounts=6)
        results, errors = [], []
        barrier = threading.Barrier(2)

        def plan(frequency):
            try:
                barrier.wait()
                results.append(
                    instalment_plans_create(
                        network=network,
                        year_start=dt.date(2026, 1, 1),
                        frequency=frequency,
                        now=NOW,
                        chunk_size=2,  # three chunks: the lock must cover all of them
                    )
                )
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=plan, args=(f,)) for f in ("monthly", "quarterly")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        # one planning made all six plans, the other found them and kept them
        assert sorted((len(r.created), len(r.existing)) for r in results) == [(0, 6), (6, 0)]
        assert InstalmentPlan.objects.count() == 6
        assert len(set(InstalmentPlan.objects.values_list("frequency", flat=True))) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestLooksWaitForOpenTransactions:
    """A look at rows changed "since" must not move past a transaction still open: its
    rows carry a time from before the look but become visible only when it commits."""

    def _open_writer(self):
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        return psycopg.connect(**params)

    def test_a_register_written_by_a_transaction_open_through_a_look_is_rerated(self, monkeypatch):
        from django.utils import timezone

        from billing.services import rerating
        from metering.models import BoundaryRegister

        network, contracts = billed_network(accounts=1)
        bill_month(network)
        end = BoundaryRegister.objects.get(
            connection=contracts[0].connection, on=dt.date(2026, 12, 1)
        )
        writer = self._open_writer()
        try:
            # an import that began now and stamped its row now (the database's clock) …
            writer.execute(
                "UPDATE metering_boundaryregister SET energy_kwh = energy_kwh + 100, "
                "updated_at = now() WHERE id = %s",
                [end.pk],
            )
            # … and is still running when the nightly look comes half an hour later
            real_now = timezone.now
            monkeypatch.setattr(timezone, "now", lambda: real_now() + dt.timedelta(minutes=30))
            assert rerating.invoices_rerate_changed(now=timezone.now()) == []
            writer.commit()
        finally:
            writer.close()
        monkeypatch.setattr(timezone, "now", lambda: real_now() + dt.timedelta(minutes=31))

        [(credit, correction)] = rerating.invoices_rerate_changed(now=timezone.now())

        assert credit.kind == Invoice.Kind.CREDIT_NOTE
        assert correction.lines.get(component="energy").quantity == Decimal("1.6")

    def test_the_horizon_stops_before_the_oldest_open_writer(self):
        from django.utils import timezone

        from billing.services.rerating import RERATE_OVERLAP, look_horizon

        assert look_horizon() <= timezone.now() - RERATE_OVERLAP
        writer = self._open_writer()
        try:
            writer.execute("SELECT pg_current_xact_id()")  # has written: holds an xid
            started = writer.execute("SELECT now()").fetchone()[0]
            time.sleep(0.2)
            assert look_horizon() == started - RERATE_OVERLAP
        finally:
            writer.rollback()
            writer.close()
        assert look_horizon() > started - RERATE_OVERLAP


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_allocating_a_payment_while_a_refund_takes_its_credit_does_not_deadlock(monkeypatch):
    """Both lock the account's invoices first, then its payments: the allocation waits
    for the refund instead of holding the payment the refund waits for."""
    from billing.models import Payment, Refund
    from billing.services import payments as payment_services

    network, contracts = billed_network(accounts=1)
    bill_month(network)
    account = contracts[0].account
    invoice = Invoice.objects.get()
    # money received before the invoice and not yet used on it (the issue step's job)
    payment = Payment.objects.create(
        account=account,
        amount=Decimal("100.00"),
        unallocated=Decimal("100.00"),
        currency=network.currency,
        received_on=NOV,
        created_at=NOW,
    )
    refund_holds_the_invoices = threading.Event()
    locked = payment_services._open_invoices_locked

    def slow_lock(account_id):
        rows = locked(account_id)
        refund_holds_the_invoices.set()
        time.sleep(1.5)  # meanwhile the allocation starts
        return rows

    monkeypatch.setattr(payment_services, "_open_invoices_locked", slow_lock)
    errors: list[Exception] = []

    def refund():
        try:
            payment_services.refund_record(
                account=account, amount=Decimal("40.00"), paid_on=NOV, now=NOW
            )
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def allocate():
        try:
            refund_holds_the_invoices.wait(10)
            payment_services.payment_allocate(payment=payment, on=NOV)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=refund), threading.Thread(target=allocate)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Refund.objects.get().amount == Decimal("40.00")
    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert payment.unallocated == Decimal("0.00")
    assert invoice.paid == Decimal("60.00")  # what the refund left of the 100.00


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestPlanningBesideARun:
    """Planning a year and a monthly run's chunk over the same month each check the
    other's rows: without a lock between them each misses the other's uncommitted rows,
    and the month is billed by an invoice and again by the plan year's settlement."""

    def _chunk_open_in_thread(self, monkeypatch, network):
        """Start November's chunk in a thread; returns (thread, event set once its bills
        are written and its transaction is still open for ``HOLD`` seconds)."""
        from billing.services import runs

        run = billing_run_create(
            network=network, period_start=NOV, now=NOW, chunk_size=10, render_pdfs=False
        )
        (chunk_id,) = runs.billing_run_plan(run=run, now=NOW)
        written = threading.Event()
        real_sleep = time.sleep

        def throttle(seconds):
            written.set()
            real_sleep(seconds)

        monkeypatch.setattr(runs.time, "sleep", throttle)

        def work():
            try:
                runs.billing_run_chunk_process(chunk_id=chunk_id, now=NOW, throttle_s=self.HOLD)
            finally:
                connections.close_all()

        return threading.Thread(target=work), written

    HOLD = 1.0

    def test_a_planning_waits_for_the_chunk_and_leaves_its_invoiced_year_alone(self, monkeypatch):
        from billing.models import InstalmentPlan
        from billing.services.aconto import instalment_plans_create

        network, contracts = billed_network(accounts=2)
        thread, written = self._chunk_open_in_thread(monkeypatch, network)
        thread.start()
        assert written.wait(10)
        started = time.monotonic()
        result = instalment_plans_create(
            network=network, year_start=NOV, frequency="monthly", now=NOW
        )
        waited = time.monotonic() - started
        thread.join()

        # it waited for the chunk's commit, then saw November invoiced: no plan
        assert waited >= self.HOLD / 2
        assert result.created == []
        assert sorted(result.failures) == sorted(c.account_id for c in contracts)
        assert all(
            "Invoices already bill part of the plan year" in reason
            for reason in result.failures.values()
        )
        assert InstalmentPlan.objects.count() == 0
        assert Invoice.objects.filter(period_start=NOV).count() == 2

    def test_a_chunk_waits_for_a_planning_and_leaves_its_planned_accounts_alone(self, monkeypatch):
        from billing.models import BillingRunException, InstalmentPlan
        from billing.services import aconto, runs

        network, contracts = billed_network(accounts=2)
        run = billing_run_create(
            network=network, period_start=NOV, now=NOW, chunk_size=10, render_pdfs=False
        )
        (chunk_id,) = runs.billing_run_plan(run=run, now=NOW)
        planning_inside = threading.Event()
        real_plan_chunk = aconto._plan_chunk

        def slow_plan_chunk(*args, **kwargs):
            rows = real_plan_chunk(*args, **kwargs)
            planning_inside.set()
            time.sleep(self.HOLD)  # the planning's transaction stays open
            return rows

        monkeypatch.setattr(aconto, "_plan_chunk", slow_plan_chunk)

        def plan():
            try:
                aconto.instalment_plans_create(
                    network=network, year_start=NOV, frequency="monthly", now=NOW
                )
            finally:
                connections.close_all()

        thread = threading.Thread(target=plan)
        thread.start()
        assert planning_inside.wait(10)
        runs.billing_run_chunk_process(chunk_id=chunk_id, now=NOW)
        thread.join()

        # the chunk waited for the plans and billed nobody: the plan year bills November
        assert InstalmentPlan.objects.count() == 2
        assert Invoice.objects.filter(kind=Invoice.Kind.INVOICE).count() == 0
        assert set(
            BillingRunException.objects.filter(run=run).values_list("account_id", flat=True)
        ) == {c.account_id for c in contracts}
