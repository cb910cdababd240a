"""Audit: a corrected tariff reaches the bills it changes, and only those."""

import datetime as dt
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from billing.models import BillingRunException, Invoice
from billing.services import rerating
from billing.services.rerating import invoices_rerate_for_tariff_versions
from heatutility.roles import TARIFF_MANAGER
from metering.models import BoundaryRegister
from tariffs.models import TariffVersion
from tariffs.services import tariff_version_approve, tariff_version_create
from tests.billing.factories import COMPONENTS, billed_network
from tests.billing.helpers import NOV, NOW, bill_month, client_for, invoice_of, staff_user

LATER = NOW + dt.timedelta(days=3)
OCT = dt.date(2026, 10, 1)


def corrected_components(energy_price="580.00"):
    components = [dict(c) for c in COMPONENTS]
    components[2] = {**components[2], "price": energy_price}
    return components


def correction_draft(valid_from=NOV, energy_price="580.00"):
    """A draft correcting the (open) standard version from ``valid_from``."""
    old = TariffVersion.objects.get()
    return old, tariff_version_create(
        tariff=old.tariff, valid_from=valid_from, components=corrected_components(energy_price)
    )


def close_and_add(network, valid_from=NOV):
    """What approving a correction from ``valid_from`` leaves: the old version closed."""
    from tests.billing.factories import tariff_version

    old = TariffVersion.objects.get()
    TariffVersion.objects.filter(pk=old.pk).update(valid_to=valid_from)
    tariff_version(network=network, valid_from=valid_from, components=corrected_components())
    return old


@pytest.mark.django_db
class TestApprovingACorrectionReachesTheBills:
    def test_approving_a_retroactive_version_rerates_the_billed_period(
        self, django_capture_on_commit_callbacks
    ):
        network, contracts = billed_network(accounts=2)
        bill_month(network, start=OCT)
        bill_month(network)
        _old, draft = correction_draft()

        with django_capture_on_commit_callbacks(execute=True):
            tariff_version_approve(version=draft, user=staff_user(TARIFF_MANAGER), now=LATER)

        for contract in contracts:
            original = invoice_of(contract, kind="invoice", period_start=NOV)
            credit = Invoice.objects.get(original=original, kind="credit_note")
            assert credit.gross == -original.gross
            correction = Invoice.objects.get(original=original, kind="correction")
            assert correction.number is not None
            # 1.5 MWh × 580.00 instead of × 592.52: 12.52 × 1.5 = 18.78 net less
            assert correction.lines.get(component="energy").amount == Decimal("870.00")
            assert original.net - correction.net == Decimal("18.78")
            # October was priced before the correction's first day: untouched
            october = invoice_of(contract, kind="invoice", period_start=OCT)
            assert not Invoice.objects.filter(original=october).exists()

    def test_the_api_approval_rerates_and_answers_200(self, django_capture_on_commit_callbacks):
        network, contracts = billed_network(accounts=1)
        bill_month(network)
        _old, draft = correction_draft()
        client = client_for(TARIFF_MANAGER)

        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/api/v1/tariff-versions/{draft.pk}/approve/")

        assert response.status_code == 200, response.content
        original = invoice_of(contracts[0], kind="invoice")
        correction = Invoice.objects.get(original=original, kind="correction")
        assert correction.lines.get(component="energy").amount == Decimal("870.00")

    def test_an_ordinary_future_version_rerates_nothing(self, django_capture_on_commit_callbacks):
        network, _ = billed_network(accounts=1)
        bill_month(network)
        _old, draft = correction_draft(valid_from=dt.date(2027, 1, 1))

        with (
            mock.patch.object(
                rerating, "invoice_recompute", wraps=rerating.invoice_recompute
            ) as recompute,
            django_capture_on_commit_callbacks(execute=True),
        ):
            tariff_version_approve(version=draft, user=staff_user(TARIFF_MANAGER), now=LATER)

        assert recompute.call_count == 0
        assert not Invoice.objects.filter(kind="credit_note").exists()


@pytest.mark.django_db
class TestRerateForTariffVersions:
    def test_an_invoice_that_cannot_be_recomputed_is_an_exception_not_a_crash(self):
        network, contracts = billed_network(accounts=2)
        run = bill_month(network)
        old = close_and_add(network)
        # account 0's end register vanished (deleted by mistake): its bill cannot be recomputed
        BoundaryRegister.objects.filter(
            connection=contracts[0].connection, on=dt.date(2026, 12, 1)
        ).delete()

        results = invoices_rerate_for_tariff_versions(version_ids=[old.pk], now=LATER)

        assert [credit.original.account_id for credit, _ in results] == [contracts[1].account_id]
        stuck = invoice_of(contracts[0], kind="invoice")
        assert not Invoice.objects.filter(original=stuck).exists()  # stands as billed
        exception = BillingRunException.objects.get(run=run, account=contracts[0].account)
        assert exception.code == "late_rerate"
        # run again (the register put back): resumes with the one left, nothing twice
        from tests.billing.factories import register

        register(contracts[0].connection, dt.date(2026, 12, 1), Decimal("10000") + 23 * 1500)
        [(credit, _)] = invoices_rerate_for_tariff_versions(version_ids=[old.pk], now=LATER)
        assert credit.original_id == stuck.pk
        assert invoices_rerate_for_tariff_versions(version_ids=[old.pk], now=LATER) == []
        assert Invoice.objects.filter(kind="credit_note").count() == 2
        assert not BillingRunException.objects.filter(run=run, code="late_rerate").exists()

    def test_drafts_of_an_unissued_run_are_recomputed_not_left_at_old_prices(self):
        network, contracts = billed_network(accounts=1)
        bill_month(network, issue=False)
        old = close_and_add(network)

        results = invoices_rerate_for_tariff_versions(version_ids=[old.pk], now=LATER)

        draft = invoice_of(contracts[0], kind="invoice")
        assert draft.state == Invoice.State.DRAFT
        assert draft.number is None
        assert draft.lines.get(component="energy").amount == Decimal("870.00")
        assert old.pk not in draft.tariff_version_ids
        assert results == []  # nothing issued, nothing credited
        assert not Invoice.objects.filter(kind="credit_note").exists()

    def test_a_held_correction_draft_is_recomputed_not_rerated(self):
        network, contracts = billed_network(accounts=1)
        bill_month(network)
        original = invoice_of(contracts[0], kind="invoice")
        # a correction waiting for review, priced with the old version
        from billing.services.invoices import invoice_credit, invoice_hold
        from billing.services.rerating import invoice_recompute
        from billing.services.write import drafts_write

        invoice_credit(invoice=original, now=LATER)
        (held_id,) = drafts_write(
            drafts=[invoice_recompute(invoice=original)],
            network_id=network.pk,
            run_id=None,
            kind=Invoice.Kind.CORRECTION,
            now=LATER,
            original_ids=[original.pk],
        )
        # held by staff for review (a hold the computation made would be lifted by the
        # recomputation, and the plausible correction issued: test_rerating_drafts.py)
        invoice_hold(invoice=Invoice.objects.get(pk=held_id), reason="review")
        old = close_and_add(network)

        invoices_rerate_for_tariff_versions(version_ids=[old.pk], now=LATER)

        held = Invoice.objects.get(pk=held_id)
        assert (held.state, held.held, held.hold_reason) == (Invoice.State.DRAFT, True, "review")
        assert held.number is None
        assert held.lines.get(component="energy").amount == Decimal("870.00")
        assert not Invoice.objects.filter(original=held).exists()

    def test_only_invoices_over_the_corrected_days_are_recomputed(self):
        network, _ = billed_network(accounts=2)
        bill_month(network, start=OCT)
        bill_month(network)
        old = close_and_add(network)

        with mock.patch.object(
            rerating, "invoice_recompute", wraps=rerating.invoice_recompute
        ) as recompute:
            results = invoices_rerate_for_tariff_versions(version_ids=[old.pk], now=LATER)

        assert len(results) == 2
        assert {c.kwargs["invoice"].period_start for c in recompute.call_args_list} == {NOV}
        assert recompute.call_count == 2

    def test_a_correction_of_a_correction_is_rerated_and_twice_changes_nothing(self):
        network, _contracts = billed_network(accounts=1)
        bill_month(network)
        old = close_and_add(network)
        [(_, first)] = invoices_rerate_for_tariff_versions(version_ids=[old.pk], now=LATER)
        # the corrected version is corrected again from the 16th
        newer = TariffVersion.objects.get(valid_from=NOV)
        TariffVersion.objects.filter(pk=newer.pk).update(valid_to=dt.date(2026, 11, 16))
        from tests.billing.factories import tariff_version

        tariff_version(
            network=network,
            valid_from=dt.date(2026, 11, 16),
            components=corrected_components("600.00"),
        )

        [(credit, second)] = invoices_rerate_for_tariff_versions(version_ids=[newer.pk], now=LATER)

        assert credit.original_id == first.pk
        assert second.original_id == first.pk
        assert invoices_rerate_for_tariff_versions(version_ids=[newer.pk], now=LATER) == []
        assert invoices_rerate_for_tariff_versions(version_ids=[old.pk], now=LATER) == []
        assert Invoice.objects.filter(kind="credit_note").count() == 2


@pytest.mark.django_db
def test_a_correction_whose_task_was_lost_is_rerated_by_the_nightly_look(
    django_capture_on_commit_callbacks,
):
    """The approval queues the re-rating after commit; with the broker down that task is
    lost.  The nightly look finds the version the approval closed and re-rates anyway,
    and a second look changes nothing.

    The look keeps its place by the clock of the writes (``look_horizon``), so the
    approval and the looks here take the clock too: an approval stamped with a fixed
    date would fall behind the first look once the real date passed it."""
    from billing.services.rerating import invoices_rerate_tariff_corrections

    network, (contract,) = billed_network(accounts=1)
    bill_month(network)
    assert invoices_rerate_tariff_corrections(now=timezone.now()) == []  # looks from now on
    _old, draft = correction_draft()
    with django_capture_on_commit_callbacks(execute=False):  # the task never queued
        tariff_version_approve(version=draft, user=staff_user(TARIFF_MANAGER), now=timezone.now())

    [(credit, correction)] = invoices_rerate_tariff_corrections(now=timezone.now())

    original = invoice_of(contract, kind="invoice", period_start=NOV)
    assert credit.original_id == original.pk
    assert correction.lines.get(component="energy").amount == Decimal("870.00")
    assert invoices_rerate_tariff_corrections(now=timezone.now()) == []


def test_tariffs_tells_billing_through_a_signal_not_an_import():
    """Tariffs depends on no app that depends on it: billing listens for the closed
    version (billing.apps), tariffs imports nothing of billing."""
    import pathlib

    tariffs = pathlib.Path(__file__).resolve().parents[2] / "tariffs"
    assert (tariffs / "models.py").exists()
    for path in tariffs.rglob("*.py"):
        assert "from billing" not in path.read_text(), path
        assert "import billing" not in path.read_text(), path


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestAnApprovalWaitsForBillsPricedBeforeIt:
    """A chunk that read the old version must commit before an approval can: otherwise
    the approval's re-rating looked before the chunk's bills existed, and they kept the
    old price until the nightly look."""

    def _approve_elsewhere(self, draft, user, *, lock_timeout_ms=None):
        """Approve from another thread (its own database connection); the exception, if
        any, else None."""
        import threading

        from django.db import connection as thread_connection

        outcome = {}

        def run():
            try:
                if lock_timeout_ms is not None:
                    with thread_connection.cursor() as cursor:
                        cursor.execute(f"SET lock_timeout = '{lock_timeout_ms}ms'")
                tariff_version_approve(version=draft, user=user, now=LATER)
                outcome["error"] = None
            except Exception as error:  # the outcome is the assertion
                outcome["error"] = error
            finally:
                thread_connection.close()

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(timeout=30)
        return outcome["error"]

    def test_the_approval_waits_while_a_transaction_holds_the_versions_it_priced(self):
        from django.db import OperationalError, transaction

        from tariffs.selectors import tariff_slices_for_connections

        _network, contracts = billed_network(accounts=1)
        _old, draft = correction_draft()
        manager = staff_user(TARIFF_MANAGER)

        with transaction.atomic():  # the chunk
            slices = tariff_slices_for_connections(
                connection_ids=[contracts[0].connection_id], start=NOV, end=dt.date(2026, 12, 1)
            )
            error = self._approve_elsewhere(draft, manager, lock_timeout_ms=300)

        assert isinstance(error, OperationalError)
        assert "lock timeout" in str(error)
        [(_start, _end, spec)] = slices[contracts[0].connection_id]
        assert spec.version_id == _old.pk
        # once the chunk has committed, the approval goes through
        assert self._approve_elsewhere(draft, manager) is None
        draft.refresh_from_db()
        assert draft.status == TariffVersion.Status.APPROVED

    def test_the_approval_does_not_lock_its_network_against_other_documents(self):
        """A payment, reminder or instalment being written for the network holds a key
        share on the network's row; the approval used to take that row for update."""
        import psycopg
        from django.db import connection

        network, _contracts = billed_network(accounts=1)
        _old, draft = correction_draft()
        manager = staff_user(TARIFF_MANAGER)
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        writer = psycopg.connect(**params)
        try:
            # what an uncommitted invoice row's foreign-key check holds
            writer.execute(
                "SELECT id FROM customers_network WHERE id = %s FOR KEY SHARE", [network.pk]
            )
            error = self._approve_elsewhere(draft, manager, lock_timeout_ms=300)
        finally:
            writer.rollback()
            writer.close()

        assert error is None
        draft.refresh_from_db()
        assert draft.status == TariffVersion.Status.APPROVED
