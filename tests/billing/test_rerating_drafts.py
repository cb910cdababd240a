"""A register corrected while its bill is still a draft: billed on the corrected value, once.

The re-rating look (``invoices_rerate_changed``) re-rates the issued invoices resting on a
changed register.  A bill not issued yet (a run's drafts waiting for staff to issue them,
a held correction or settlement) is computed again in place by the same look, held or
not: the look moves past the correction, so a draft issued afterwards on the old register
would never be re-rated (the corrected energy lost).  Staff's own hold stands through the
recomputation; a hold the computation made follows the data.

Registers are corrected as the other re-rating tests do (``register``: the row metering's
VEE and staff edits write, ``updated_at`` stamped).  Standard tariff, 1.5 MWh a month:
888.78 energy (1.5 × 592.52), 100.00 subscription, 100.00 capacity; net 1,088.78, VAT
272.20, gross 1,360.98.  Read again as 1.6 MWh: 948.03 energy (948.032); net 1,148.03,
VAT 25 % 287.0075 → 287.01, gross 1,435.04.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from billing.models import Invoice
from billing.services import rerating
from billing.services.invoices import invoice_hold, invoice_issue, invoice_release
from billing.services.payments import account_balance
from billing.services.rerating import current_invoices, invoices_rerate_changed
from billing.services.runs import billing_run_issue
from heatutility.roles import BILLING_CLERK
from metering.models import BoundaryRegister
from tests.billing.factories import billed_network, register
from tests.billing.helpers import (
    NOW,
    api_client,
    bill_month,
    client_for,
    invoice_of,
    staff_with_permissions,
)

NOV, DEC = dt.date(2026, 11, 1), dt.date(2026, 12, 1)
READ_AGAIN = Decimal("44600")  # account 0's 1 December register: 43,000 + 1,600 kWh
CORRECTED = (Decimal("1148.03"), Decimal("287.01"), Decimal("1435.04"))
AS_DRAFTED = (Decimal("1088.78"), Decimal("272.20"), Decimal("1360.98"))
# 1 December estimated as 52,500 kWh, 9.5 MWh in November: 5,628.94 energy (5,628.94);
# net 5,828.94, VAT 1,457.235 → 1,457.24, gross 7,286.18
AS_ESTIMATED = (Decimal("5828.94"), Decimal("1457.24"), Decimal("7286.18"))


def _seen_by_an_earlier_look() -> None:
    """The registers billed were seen by a look before (not within its overlap)."""
    BoundaryRegister.objects.update(updated_at=timezone.now() - dt.timedelta(days=1))
    assert invoices_rerate_changed(now=timezone.now()) == []


def _the_looks_move_past_it() -> None:
    """Days go by: every register changed so far lies behind the looks' watermark (the
    nightly look's overlap is ten minutes), so no later look sees the correction again."""
    BoundaryRegister.objects.update(updated_at=timezone.now() - dt.timedelta(days=1))
    assert invoices_rerate_changed(now=timezone.now()) == []


def _totals(invoice: Invoice) -> tuple[Decimal, Decimal, Decimal]:
    return invoice.net, invoice.vat, invoice.gross


def _energy(invoice: Invoice) -> tuple[Decimal, Decimal]:
    line = invoice.lines.get(component="energy")
    return line.quantity, line.amount


def _billed(contract) -> Invoice:
    """The one bill of November that stands for the account (issued, not credited)."""
    [bill] = current_invoices().filter(account=contract.account, period_start=NOV)
    return bill


def _drafted(*, accounts: int = 2):
    network, contracts = billed_network(accounts=accounts)
    run = bill_month(network, issue=False)  # the run's drafts wait for staff to issue them
    draft = invoice_of(contracts[0], kind="invoice")
    assert (draft.state, draft.held) == (Invoice.State.DRAFT, False)
    assert _totals(draft) == AS_DRAFTED
    _seen_by_an_earlier_look()
    return run, contracts, draft


@pytest.mark.django_db
class TestARegisterCorrectedWhileTheRunWaitsToBeIssued:
    def test_the_issued_invoice_rests_on_the_corrected_register_billed_once(self):
        run, contracts, draft = _drafted()
        register(contracts[0].connection, DEC, READ_AGAIN)  # read again: 1.6 MWh, not 1.5

        assert invoices_rerate_changed(now=timezone.now()) == []  # nothing issued yet
        _the_looks_move_past_it()
        billing_run_issue(run=run, issued_at=NOW)
        assert invoices_rerate_changed(now=timezone.now()) == []

        bill = _billed(contracts[0])
        assert bill.pk == draft.pk  # the draft itself, computed again, then issued
        assert bill.number is not None
        assert _energy(bill) == (Decimal("1.6"), Decimal("948.03"))
        assert _totals(bill) == CORRECTED
        assert {(r["on"], r["energy_kwh"]) for r in bill.readings} == {
            ("2026-11-01", "43000.000000"),
            ("2026-12-01", "44600.000000"),
        }
        assert not Invoice.objects.filter(
            kind__in=[Invoice.Kind.CREDIT_NOTE, Invoice.Kind.CORRECTION]
        ).exists()
        assert account_balance(account=contracts[0].account) == Decimal("1435.04")

    def test_a_draft_whose_registers_did_not_change_is_not_rewritten(self):
        _run, contracts, draft = _drafted()
        other = invoice_of(contracts[1], kind="invoice")
        lines = list(other.lines.order_by("position").values_list("pk", "quantity", "amount"))
        register(contracts[0].connection, DEC, READ_AGAIN)

        with mock.patch.object(
            rerating, "invoice_recompute", wraps=rerating.invoice_recompute
        ) as recompute:
            invoices_rerate_changed(now=timezone.now())

        assert [c.kwargs["invoice"].pk for c in recompute.call_args_list] == [draft.pk]
        after = Invoice.objects.get(pk=other.pk)
        assert list(after.lines.order_by("position").values_list("pk", "quantity", "amount")) == (
            lines
        )
        assert (_totals(after), after.readings, after.comparison) == (
            AS_DRAFTED,
            other.readings,
            other.comparison,
        )

    def test_a_draft_issued_while_the_look_recomputes_it_is_rerated_instead(self):
        run, contracts, draft = _drafted(accounts=1)
        register(contracts[0].connection, DEC, READ_AGAIN)
        recompute = rerating.invoice_recompute

        def staff_issue_meanwhile(*, invoice, **kwargs):
            """Staff issue the run between the look's recomputation and its write."""
            bill = recompute(invoice=invoice, **kwargs)
            if invoice.pk == draft.pk and Invoice.objects.get(pk=draft.pk).number is None:
                billing_run_issue(run=run, issued_at=NOW)
            return bill

        with mock.patch.object(rerating, "invoice_recompute", side_effect=staff_issue_meanwhile):
            [(credit, correction)] = invoices_rerate_changed(now=timezone.now())

        assert credit.original_id == draft.pk
        assert _totals(credit) == tuple(-amount for amount in AS_DRAFTED)
        assert _energy(correction) == (Decimal("1.6"), Decimal("948.03"))
        assert _totals(correction) == CORRECTED
        assert _billed(contracts[0]).pk == correction.pk
        assert account_balance(account=contracts[0].account) == Decimal("1435.04")


@pytest.mark.django_db
class TestAHeldDraft:
    def test_staff_hold_and_reason_stand_and_the_amounts_are_corrected(self):
        run, contracts, draft = _drafted()
        invoice_hold(invoice=draft, reason="customer disputes the meter")
        register(contracts[0].connection, DEC, READ_AGAIN)

        assert invoices_rerate_changed(now=timezone.now()) == []

        draft.refresh_from_db()
        assert (draft.state, draft.held, draft.hold_reason) == (
            Invoice.State.DRAFT,
            True,
            "customer disputes the meter",
        )
        assert _energy(draft) == (Decimal("1.6"), Decimal("948.03"))
        assert _totals(draft) == CORRECTED
        run.refresh_from_db()
        assert run.held == 1

        # released and issued days later: billed once, on the corrected register
        _the_looks_move_past_it()
        invoice_issue(invoice=invoice_release(invoice=draft, note="meter checked"), issued_at=NOW)
        assert invoices_rerate_changed(now=timezone.now()) == []
        bill = _billed(contracts[0])
        assert (bill.pk, _totals(bill)) == (draft.pk, CORRECTED)
        assert account_balance(account=contracts[0].account) == Decimal("1435.04")

    def test_a_hold_the_computation_made_is_lifted_when_the_correction_makes_it_plausible(self):
        network, contracts = billed_network(accounts=1)
        # November's end register estimated 9.5 MWh on: more than 10 kW can deliver in a
        # month, and 6.33× last November's 1.5 MWh
        register(contracts[0].connection, DEC, Decimal("52500"), status="estimated")
        run = bill_month(network, issue=False)
        draft = invoice_of(contracts[0], kind="invoice")
        assert draft.held
        assert "more than the contracted capacity can deliver" in draft.hold_reason
        assert "× the same period last year" in draft.hold_reason
        _seen_by_an_earlier_look()
        register(contracts[0].connection, DEC, READ_AGAIN)  # the actual read

        assert invoices_rerate_changed(now=timezone.now()) == []

        draft.refresh_from_db()
        assert (draft.state, draft.held, draft.hold_reason) == (Invoice.State.DRAFT, False, "")
        assert _totals(draft) == CORRECTED
        assert not draft.has_estimated_reads
        run.refresh_from_db()
        assert run.held == 0
        billing_run_issue(run=run, issued_at=NOW)
        assert _billed(contracts[0]).pk == draft.pk

    def test_a_released_draft_that_looks_implausible_after_the_correction_is_held_again(self):
        """Staff released the figures they reviewed; new figures are reviewed again."""
        run, contracts, draft = _drafted()
        invoice_release(invoice=draft, note="looked fine")
        register(contracts[0].connection, DEC, Decimal("52500"))  # 9.5 MWh

        invoices_rerate_changed(now=timezone.now())

        draft.refresh_from_db()
        assert draft.held
        assert "more than the contracted capacity can deliver" in draft.hold_reason
        run.refresh_from_db()
        assert run.held == 1


@pytest.mark.django_db
class TestAHeldCorrection:
    """A correction has no run to issue it: it is issued at once when plausible, and held
    for staff when not (``rerating._correction_write``).  One held for what a later
    correction of the register takes back goes out then, as it would have at first."""

    def _held_correction(self):
        network, contracts = billed_network(accounts=1)
        bill_month(network)
        _seen_by_an_earlier_look()
        # 1 December estimated 9.5 MWh on: more than 10 kW can deliver in a month
        register(contracts[0].connection, DEC, Decimal("52500"), status="estimated")
        [(credit, correction)] = invoices_rerate_changed(now=timezone.now())
        assert (correction.state, correction.held) == (Invoice.State.DRAFT, True)
        assert "more than the contracted capacity can deliver" in correction.hold_reason
        _seen_by_an_earlier_look()
        return contracts, credit, correction

    def test_is_issued_when_the_corrected_register_makes_it_plausible(self):
        contracts, credit, correction = self._held_correction()
        register(contracts[0].connection, DEC, READ_AGAIN)  # the actual read

        invoices_rerate_changed(now=timezone.now())

        correction.refresh_from_db()
        assert (correction.held, correction.hold_reason) == (False, "")
        assert correction.number is not None
        assert _totals(correction) == CORRECTED
        assert _billed(contracts[0]).pk == correction.pk
        assert _totals(credit) == tuple(-amount for amount in AS_DRAFTED)
        assert account_balance(account=contracts[0].account) == Decimal("1435.04")

    def test_is_issued_when_staff_release_it(self, django_capture_on_commit_callbacks):
        """No run issues a correction, so staff's release issues it; before, it stayed a
        draft: the credit note stood alone and the period went unbilled."""
        contracts, credit, correction = self._held_correction()
        with (
            mock.patch("billing.tasks.invoices_render_pdfs_dispatch") as render,
            django_capture_on_commit_callbacks(execute=True),
        ):
            released = invoice_release(invoice=correction, note="estimate agreed", now=NOW)

        assert (released.state, released.held, released.hold_reason) == (
            Invoice.State.ISSUED,
            False,
            "released: estimate agreed",
        )
        assert released.number is not None
        render.assert_called_once_with([released.pk])
        assert _billed(contracts[0]).pk == correction.pk
        assert _totals(released) == AS_ESTIMATED
        assert _totals(credit) == tuple(-amount for amount in AS_DRAFTED)
        assert account_balance(account=contracts[0].account) == Decimal("7286.18")

    def test_the_api_release_issues_it_and_answers_with_its_number(self):
        contracts, _credit, correction = self._held_correction()
        response = client_for(BILLING_CLERK).post(
            f"/api/v1/billing/invoices/{correction.pk}/release/",
            {"reason": "estimate agreed"},
            format="json",
        )
        assert response.status_code == 200
        correction.refresh_from_db()
        body = response.json()
        assert (body["state"], body["held"], body["number"]) == (
            "issued",
            False,
            correction.display_number,
        )
        assert correction.number is not None
        assert account_balance(account=contracts[0].account) == Decimal("7286.18")

    def test_releasing_it_needs_the_permission_to_issue_too(self):
        """Releasing a correction issues it: who may release but not issue is refused,
        over the API (403) and in the admin (a message), and the draft stays held."""
        _contracts, _credit, correction = self._held_correction()
        api = api_client(staff_with_permissions("reviewer", "view_invoice", "release_invoice"))

        response = api.post(
            f"/api/v1/billing/invoices/{correction.pk}/release/",
            {"reason": "looks fine"},
            format="json",
        )
        correction.refresh_from_db()

        assert response.status_code == 403
        assert "permission to issue invoices" in response.json()["message"]
        assert (correction.state, correction.held) == (Invoice.State.DRAFT, True)

    def test_the_admin_action_refuses_it_to_who_may_not_issue(self, client):
        _contracts, _credit, correction = self._held_correction()
        client.force_login(
            staff_with_permissions("reviewer", "view_invoice", "change_invoice", "release_invoice")
        )

        page = client.post(
            "/admin/billing/invoice/",
            {"action": "release", "_selected_action": [correction.pk]},
            follow=True,
        ).content.decode()
        correction.refresh_from_db()

        assert "needs the permission to issue invoices as well" in page
        assert (correction.state, correction.held) == (Invoice.State.DRAFT, True)

    def test_a_run_draft_released_still_waits_for_the_run_issue(self):
        run, contracts, draft = _drafted()
        invoice_hold(invoice=draft, reason="meter checked on site first")
        released = invoice_release(invoice=draft, note="checked", now=NOW)
        assert (released.state, released.held, released.number) == (
            Invoice.State.DRAFT,
            False,
            None,
        )
        billing_run_issue(run=run, issued_at=NOW)
        assert _billed(contracts[0]).pk == draft.pk

    def test_stays_a_draft_while_it_is_still_implausible_or_staff_held_it(self):
        contracts, _credit, correction = self._held_correction()
        register(contracts[0].connection, DEC, Decimal("52000"), status="estimated")
        invoices_rerate_changed(now=timezone.now())
        correction.refresh_from_db()
        assert (correction.state, correction.held) == (Invoice.State.DRAFT, True)

        invoice_hold(invoice=correction, reason="customer disputes the meter")
        _seen_by_an_earlier_look()
        register(contracts[0].connection, DEC, READ_AGAIN)
        invoices_rerate_changed(now=timezone.now())
        correction.refresh_from_db()
        assert (correction.state, correction.held) == (Invoice.State.DRAFT, True)
        assert _totals(correction) == CORRECTED


@pytest.mark.django_db
def test_a_staff_hold_worded_like_a_computed_one_stands_all_the_same():
    """Staff's hold is told apart by who made it (``held_by_staff``), not by its words:
    a reason that quotes the checks' wording is still staff's."""
    _run, contracts, draft = _drafted()
    reason = "customer disputes the volume-weighted return temperature"
    invoice_hold(invoice=draft, reason=reason)
    register(contracts[0].connection, DEC, READ_AGAIN)

    invoices_rerate_changed(now=timezone.now())

    draft.refresh_from_db()
    assert (draft.held, draft.held_by_staff, draft.hold_reason) == (True, True, reason)
    assert _totals(draft) == CORRECTED
    released = invoice_release(invoice=draft, note="checked")
    assert (released.held, released.held_by_staff) == (False, False)


@pytest.mark.django_db
def test_a_computed_hold_is_not_staffs():
    network, contracts = billed_network(accounts=1)
    register(contracts[0].connection, DEC, Decimal("52500"), status="estimated")
    bill_month(network, issue=False)
    draft = invoice_of(contracts[0], kind="invoice")
    assert (draft.held, draft.held_by_staff) == (True, False)


@pytest.mark.django_db
def test_the_database_refuses_a_staff_hold_that_is_not_a_hold():
    from django.db import IntegrityError, transaction

    _run, _contracts, draft = _drafted(accounts=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=draft.pk).update(held=False, held_by_staff=True)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_migration_marks_the_held_drafts_staff_held_by_their_reasons():
    """Migration 0018 (``held_by_staff``) tells the drafts held before it by their reason:
    one made only of what the checks write is theirs, anything else staff's."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    _run, contracts, staffs = _drafted(accounts=2)
    invoice_hold(invoice=staffs, reason="held by admin")
    computed = invoice_of(contracts[1], kind="invoice")
    Invoice.objects.filter(pk=computed.pk).update(
        held=True, hold_reason="9.5 MWh is 6.33× the same period last year (1.5 MWh)"
    )
    executor = MigrationExecutor(connection)
    try:
        executor.migrate([("billing", "0017_held_drafts_index")])
        executor = MigrationExecutor(connection)
        executor.migrate([("billing", "0018_invoice_held_by_staff")])
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    assert Invoice.objects.get(pk=staffs.pk).held_by_staff
    assert not Invoice.objects.get(pk=computed.pk).held_by_staff
