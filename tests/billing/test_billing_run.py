import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import tasks
from billing.models import BillingRun, Invoice
from billing.services.runs import billing_run_create, billing_run_issue
from heatutility.errors import ConflictError
from tests.billing.factories import billed_network, register

NOW = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)
NOV = dt.date(2026, 11, 1)


def run_month(network, *, start=NOV, **kwargs):
    run = billing_run_create(network=network, period_start=start, now=NOW, chunk_size=2, **kwargs)
    tasks.billing_run_start.delay(run.pk)
    run.refresh_from_db()
    return run


@pytest.mark.django_db
class TestBillingRun:
    def test_run_drafts_one_invoice_per_account_with_lines_to_the_cent(self):
        network, contracts = billed_network(accounts=3)
        run = run_month(network)
        assert run.state == BillingRun.State.DRAFTED
        assert (run.total, run.done, run.held, run.failed) == (3, 3, 0, 0)
        invoice = Invoice.objects.get(account=contracts[0].account)
        lines = {line.component: line for line in invoice.lines.all()}
        assert lines["energy"].quantity == Decimal("1.5")
        assert lines["energy"].amount == Decimal("888.78")
        assert "1.5" in lines["energy"].explanation
        assert "592.52" in lines["energy"].explanation
        assert lines["subscription"].amount == Decimal("100.00")
        assert lines["capacity"].amount == Decimal("100.00")
        assert invoice.net == Decimal("1088.78")
        assert invoice.vat == Decimal("272.20")  # 272.195 rounded half up
        assert invoice.gross == Decimal("1360.98")
        comparison = dict(invoice.comparison)
        last_year = comparison.pop("last_year_readings")
        assert comparison == {
            "energy_mwh": "1.500000",
            "last_year_mwh": "1.500000",
            "last_year_estimated": False,
        }
        # 1 November and 1 December 2025 (factories.billed_network: 1,500 kWh a month)
        assert [(r["on"], r["energy_kwh"], r["status"]) for r in last_year] == [
            ("2025-11-01", "25000.000000", "actual"),
            ("2025-12-01", "26500.000000", "actual"),
        ]
        assert {r["on"] for r in invoice.readings} == {"2026-11-01", "2026-12-01"}
        assert not invoice.has_estimated_reads

    def test_issue_assigns_gapless_numbers_and_due_dates(self):
        network, _contracts = billed_network(accounts=3)
        run = run_month(network)
        ids = billing_run_issue(run=run, issued_at=NOW)
        assert len(ids) == 3
        numbers = sorted(Invoice.objects.values_list("number", flat=True))
        assert numbers == [1, 2, 3]
        invoice = Invoice.objects.get(number=1)
        assert invoice.series == "INV-2026"
        assert invoice.state == Invoice.State.ISSUED
        assert invoice.due_on == dt.date(2026, 12, 16)

    def test_second_active_run_for_the_same_period_is_refused(self):
        network, _ = billed_network(accounts=1)
        run_month(network)
        with pytest.raises(ConflictError):
            billing_run_create(network=network, period_start=NOV, now=NOW)

    def test_database_refuses_billing_an_account_twice_for_a_period(self):
        network, _ = billed_network(accounts=1)
        run_month(network)
        invoice = Invoice.objects.get()
        with pytest.raises(IntegrityError), transaction.atomic():
            Invoice.objects.create(
                account=invoice.account,
                network=network,
                period_start=NOV,
                period_end=dt.date(2026, 12, 1),
                currency="DKK",
                created_at=timezone.now(),
            )

    def test_rerunning_a_chunk_does_not_bill_twice(self):
        network, _ = billed_network(accounts=3)
        run = run_month(network)
        for chunk in run.chunks.all():
            assert tasks.billing_run_chunk.delay(chunk.pk).get() is False
        assert Invoice.objects.count() == 3

    def test_failing_account_becomes_an_exception_not_a_failed_run(self):
        network, contracts = billed_network(accounts=3)
        contracts[1].connection.boundary_registers.filter(on=dt.date(2026, 12, 1)).delete()
        run = run_month(network)
        assert run.state == BillingRun.State.DRAFTED
        assert (run.done, run.failed) == (2, 1)
        exc = run.exceptions.get()
        assert exc.account_id == contracts[1].account_id
        assert exc.code == "missing_register"

    def test_implausible_bill_is_held_and_not_issued(self):
        network, contracts = billed_network(accounts=2)
        register(contracts[0].connection, dt.date(2026, 12, 1), Decimal("10000") + 22 * 1500 + 6000)
        run = run_month(network)
        assert run.held == 1
        held = Invoice.objects.get(account=contracts[0].account)
        assert held.held
        assert "same period last year" in held.hold_reason
        billing_run_issue(run=run, issued_at=NOW)
        held.refresh_from_db()
        assert held.state == Invoice.State.DRAFT
        assert held.number is None


@pytest.mark.django_db
class TestAutoIssue:
    def test_run_that_issues_when_drafted_numbers_unheld_bills_and_keeps_held_ones(
        self, django_capture_on_commit_callbacks
    ):
        network, contracts = billed_network(accounts=3)
        register(contracts[1].connection, dt.date(2026, 12, 1), Decimal("20000") + 22 * 1500 + 9000)
        with django_capture_on_commit_callbacks(execute=True):
            run = run_month(network, issue_when_drafted=True, render_pdfs=False)
        run.refresh_from_db()
        assert run.state == BillingRun.State.ISSUED
        assert (run.issued, run.held) == (2, 1)
        numbers = dict(Invoice.objects.values_list("account_id", "number"))
        assert numbers == {
            contracts[0].account_id: 1,
            contracts[1].account_id: None,
            contracts[2].account_id: 2,
        }
        issued = Invoice.objects.get(number=1)
        assert issued.state == Invoice.State.ISSUED
        # 14 days after the local issue day (the UTC day differs from 23:00/22:00 UTC on)
        issued_on = issued.issued_at.astimezone(ZoneInfo(network.time_zone)).date()
        assert issued.due_on == issued_on + dt.timedelta(days=14)


@pytest.mark.django_db
class TestHeldDraftCorrection:
    def test_staff_fix_the_reading_and_recompute_the_held_draft(self):
        from billing.services.rerating import invoice_draft_recompute

        network, contracts = billed_network(accounts=1)
        end = dt.date(2026, 12, 1)
        register(contracts[0].connection, end, Decimal("10000") + 22 * 1500 + 9000)
        run = run_month(network)
        draft = Invoice.objects.get()
        assert draft.held
        register(contracts[0].connection, end, Decimal("10000") + 22 * 1500 + 1600, status="edited")
        draft = invoice_draft_recompute(invoice=draft)
        assert not draft.held
        assert draft.lines.get(component="energy").quantity == Decimal("1.6")
        run.refresh_from_db()
        assert run.held == 0


@pytest.mark.django_db
def test_a_period_is_billed_from_local_midnight_after_it_and_not_a_second_before():
    from billing.services.runs import PeriodNotEnded

    network, _ = billed_network(accounts=1)  # Europe/Copenhagen
    october = dt.date(2026, 10, 1)
    # October ends at 2026-11-01 00:00 CET = 2026-10-31 23:00 UTC (summer time ended on the 25th)
    ends = dt.datetime(2026, 10, 31, 23, 0, tzinfo=dt.UTC)
    with pytest.raises(PeriodNotEnded, match=r"it ends at 2026-11-01 00:00 \(Europe/Copenhagen\)"):
        billing_run_create(
            network=network, period_start=october, now=ends - dt.timedelta(seconds=1)
        )
    with pytest.raises(PeriodNotEnded):  # a settlement too: the year is not over
        billing_run_create(
            network=network,
            period_start=dt.date(2026, 1, 1),
            months=12,
            kind="settlement",
            now=ends,
        )
    run = billing_run_create(network=network, period_start=october, now=ends)
    assert (run.period_start, run.period_end) == (october, dt.date(2026, 11, 1))


@pytest.mark.django_db
def test_runs_whose_tasks_were_lost_are_resumed_by_the_beat_sweep():
    """The broker was down when a run's tasks were queued: beat resumes the runs that made
    no progress for 15 minutes; a run just created is left to its own tasks."""
    from billing.services.runs import billing_run_plan
    from billing.tasks import billing_runs_resume_stalled

    now = timezone.now()
    october = dt.date(2026, 10, 1)

    def run_for(accounts, at):
        network, _ = billed_network(accounts=accounts)
        return billing_run_create(
            network=network, period_start=october, now=at, chunk_size=2, render_pdfs=False
        )

    never_started = run_for(3, now - dt.timedelta(minutes=20))
    stuck = run_for(3, now - dt.timedelta(minutes=20))
    billing_run_plan(run=stuck, now=now - dt.timedelta(minutes=20))  # chunks never queued
    fresh = run_for(1, now - dt.timedelta(minutes=2))

    assert billing_runs_resume_stalled.delay().get() == 2

    for run in (never_started, stuck, fresh):
        run.refresh_from_db()
    assert (never_started.state, stuck.state, fresh.state) == ("drafted", "drafted", "created")
    assert (never_started.done, stuck.done) == (3, 3)
    assert Invoice.objects.filter(run__in=[never_started, stuck]).count() == 6
    assert billing_runs_resume_stalled.delay().get() == 0


@pytest.mark.django_db
def test_a_chunk_that_cannot_be_computed_as_a_whole_ends_as_exceptions_not_a_stuck_run():
    """A stored tariff version that no longer reads (written before a validation rule, or
    by hand) made the chunk raise: the run stayed 'running' with nothing to show.  Now its
    accounts are exceptions with the reason, and the others are billed."""
    from billing.models import BillingRunException
    from tariffs.models import Tariff, TariffAssignment, TariffVersion

    network, contracts = billed_network(accounts=3)
    odd = Tariff.objects.create(network=network, code="odd", name="Odd")
    version = TariffVersion.objects.create(
        tariff=odd, number=1, valid_from=dt.date(2020, 1, 1), status="approved",
        approved_at=timezone.now(), vat_rate=Decimal("0.25"),
        components=[{"type": "energy", "code": "energy", "price": "592.5200001"}],
    )  # fmt: skip
    TariffAssignment.objects.create(
        tariff=odd, connection=contracts[1].connection, valid_from=dt.date(2020, 1, 1)
    )
    assert version.components[0]["price"] == "592.5200001"  # 7 decimals: refused on reading

    run = run_month(network, render_pdfs=False)

    run.refresh_from_db()
    assert (run.state, run.done, run.failed) == ("drafted", 2, 1)
    exception = BillingRunException.objects.get(run=run)
    assert exception.account_id == contracts[1].account_id
    assert exception.code == "compute_error"
    assert "components.0.price" in exception.error


@pytest.mark.django_db
def test_beat_stops_resuming_a_run_whose_chunk_keeps_failing():
    from billing.services.runs import CHUNK_MAX_ATTEMPTS, billing_run_plan, billing_runs_stalled

    network, _ = billed_network(accounts=1)
    then = timezone.now() - dt.timedelta(minutes=20)
    run = billing_run_create(
        network=network, period_start=dt.date(2026, 10, 1), now=then, render_pdfs=False
    )
    billing_run_plan(run=run, now=then)
    assert billing_runs_stalled(now=timezone.now()) == [run.pk]

    run.chunks.update(attempts=CHUNK_MAX_ATTEMPTS)

    assert billing_runs_stalled(now=timezone.now()) == []


@pytest.mark.django_db
def test_a_register_that_went_down_stops_that_bill_with_the_days_it_covers():
    from billing.models import BillingRunException
    from tests.billing.helpers import bill_month

    network, contracts = billed_network(accounts=2)
    register(contracts[0].connection, dt.date(2026, 12, 1), Decimal("100"))  # below Nov 1st

    run = bill_month(network, issue=False)

    (exception,) = BillingRunException.objects.filter(run=run)
    assert exception.account_id == contracts[0].account_id
    assert exception.code == "negative_consumption"
    assert exception.error == (
        f"register decreased on connection {contracts[0].connection_id} "
        "over 2026-11-01 – 2026-11-30"
    )
    assert run.done == 1
    assert run.failed == 1
