import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Allocation, Invoice
from billing.services.invoices import invoice_credit, invoice_issue
from billing.services.payments import account_balance, payment_record
from billing.services.rerating import (
    UnableToRerate,
    invoice_rebill,
    invoice_rerate,
    invoices_rerate_changed,
)
from heatutility.errors import ConflictError
from tests.billing.factories import billed_network, contract_with_connection, register
from tests.billing.helpers import NOV, NOW, bill_month, invoice_of
from tests.billing.test_documents import pdf_text

LATER = NOW + dt.timedelta(days=3)
# re-rating watermarks compare with register update times: pass the real clock


@pytest.mark.django_db
class TestRerating:
    def test_corrected_reading_credits_the_original_and_issues_a_correction(self):
        network, contracts = billed_network(accounts=2)
        # November's end register was estimated at +1500 kWh; the actual read says +1600
        end = dt.date(2026, 12, 1)
        register(contracts[0].connection, end, Decimal("43000") + 1500, status="estimated")
        bill_month(network)
        original = invoice_of(contracts[0], kind="invoice")
        assert original.has_estimated_reads
        register(contracts[0].connection, end, Decimal("43000") + 1600, status="actual")

        results = invoices_rerate_changed(now=timezone.now())

        assert len(results) == 1
        credit, correction = results[0]
        assert credit.kind == Invoice.Kind.CREDIT_NOTE
        assert credit.original_id == original.pk
        assert credit.gross == -original.gross
        assert credit.number is not None
        assert correction.kind == Invoice.Kind.CORRECTION
        assert correction.original_id == original.pk
        energy = correction.lines.get(component="energy")
        assert energy.quantity == Decimal("1.6")
        assert energy.amount == Decimal("948.03")  # 1.6 × 592.52 = 948.032
        assert not correction.has_estimated_reads
        # only the difference reaches the balance: 0.1 MWh × 592.52 = 59.25 net, 74.06 gross
        assert account_balance(account=contracts[0].account) == correction.gross
        assert correction.gross - original.gross == Decimal("74.06")
        original.refresh_from_db()
        assert original.state == Invoice.State.PAID  # settled by its credit note

    def test_the_credit_note_and_the_correction_get_their_pdfs(
        self, django_capture_on_commit_callbacks
    ):
        network, contracts = billed_network(accounts=1)
        bill_month(network)
        register(contracts[0].connection, dt.date(2026, 12, 1), Decimal("44600"))

        with django_capture_on_commit_callbacks(execute=True):
            ((credit, correction),) = invoices_rerate_changed(now=timezone.now())

        for document in (credit, correction):
            document.refresh_from_db()
            assert document.pdf.name.endswith(".pdf")
            assert document.display_number in pdf_text(document)
        assert "Credit note" in pdf_text(credit)

    def test_rerating_twice_changes_nothing_more(self):
        network, contracts = billed_network(accounts=1)
        bill_month(network)
        register(contracts[0].connection, dt.date(2026, 12, 1), Decimal("44600"))
        assert len(invoices_rerate_changed(now=timezone.now())) == 1
        assert invoices_rerate_changed(now=timezone.now()) == []
        original = invoice_of(contracts[0], kind="invoice")
        assert invoice_rerate(invoice=original, now=LATER) is None  # already credited
        assert Invoice.objects.filter(kind="credit_note").count() == 1
        assert Invoice.objects.filter(kind="correction").count() == 1

    def test_a_register_committed_after_a_look_began_is_seen_by_the_next(self):
        from metering.models import BoundaryRegister

        network, contracts = billed_network(accounts=1)
        bill_month(network)
        look = timezone.now()
        assert invoices_rerate_changed(now=timezone.now()) == []
        # written just before that look began, but committed only after it read the table
        corrected = register(contracts[0].connection, dt.date(2026, 12, 1), Decimal("44600"))
        BoundaryRegister.objects.filter(pk=corrected.pk).update(
            updated_at=look - dt.timedelta(seconds=1)
        )

        [(_credit, correction)] = invoices_rerate_changed(now=timezone.now())

        assert correction.lines.get(component="energy").quantity == Decimal("1.6")
        assert invoices_rerate_changed(now=timezone.now()) == []  # seen again: nothing new

    def test_unchanged_figures_issue_nothing(self):
        network, contracts = billed_network(accounts=1)
        bill_month(network)
        original = invoice_of(contracts[0], kind="invoice")
        assert invoice_rerate(invoice=original, now=LATER) is None

    def test_a_second_correction_rerates_the_correction_not_the_original(self):
        network, contracts = billed_network(accounts=1)
        bill_month(network)
        register(contracts[0].connection, dt.date(2026, 12, 1), Decimal("44600"))
        invoices_rerate_changed(now=timezone.now())
        register(contracts[0].connection, dt.date(2026, 12, 1), Decimal("44700"))
        ((credit, correction),) = invoices_rerate_changed(now=timezone.now())
        first_correction = Invoice.objects.filter(kind="correction").order_by("id").first()
        assert credit.original_id == first_correction.pk
        assert correction.lines.get(component="energy").quantity == Decimal("1.7")

    def test_what_the_credit_note_settles_on_the_correction_is_dated_on_the_local_day(self):
        """At 23:30 UTC on 5 December it is 00:30 on 6 December in Copenhagen: the credit
        note and the correction are issued on the 6th (local), and so is the allocation
        of what the credit note left onto the correction, not on the UTC date."""
        network, (contract,) = billed_network(accounts=1)
        bill_month(network)
        original = invoice_of(contract, kind="invoice")
        payment_record(
            account=contract.account,
            amount=Decimal("1360.98"),
            received_on=dt.date(2026, 12, 5),
            now=NOW,
        )
        register(contract.connection, dt.date(2026, 12, 1), Decimal("43500"))
        late_evening = dt.datetime(2026, 12, 5, 23, 30, tzinfo=dt.UTC)

        credit_note, correction = invoice_rerate(invoice=original, now=late_evening)

        assert correction.state == Invoice.State.PAID
        allocation = Allocation.objects.get(credit_note=credit_note, invoice=correction)
        assert allocation.allocated_on == dt.date(2026, 12, 6)
        assert allocation.amount == correction.gross

    def test_recomputing_an_issued_invoice_gives_the_same_figures(self):
        from billing.services.rerating import invoice_recompute

        network, contracts = billed_network(accounts=1)
        bill_month(network)
        original = invoice_of(contracts[0], kind="invoice")
        draft = invoice_recompute(invoice=original)
        assert (draft.net, draft.vat, draft.gross) == (original.net, original.vat, original.gross)
        assert [line.amount for line in draft.lines] == [
            line.amount for line in original.lines.order_by("position")
        ]


@pytest.mark.django_db
class TestTariffCorrection:
    def test_corrected_tariff_rerates_the_invoices_priced_with_the_old_version(self):
        from billing.services.rerating import invoices_rerate_for_tariff_versions
        from tariffs.models import TariffVersion
        from tests.billing.factories import COMPONENTS, tariff_version

        network, _ = billed_network(accounts=2)
        bill_month(network)
        old = TariffVersion.objects.get()
        # the energy price for November was wrong: a corrected version replaces it
        TariffVersion.objects.filter(pk=old.pk).update(valid_to=dt.date(2026, 11, 1))
        components = [dict(c) for c in COMPONENTS]
        components[2] = {**components[2], "price": "580.00"}
        tariff_version(network=network, valid_from=dt.date(2026, 11, 1), components=components)

        results = invoices_rerate_for_tariff_versions(version_ids=[old.pk], now=LATER)

        assert len(results) == 2
        for credit, correction in results:
            assert credit.gross == -credit.original.gross
            energy = correction.lines.get(component="energy")
            assert energy.amount == Decimal("870.00")  # 1.5 × 580.00
        assert invoices_rerate_for_tariff_versions(version_ids=[old.pk], now=LATER) == []


@pytest.mark.django_db
def test_a_late_register_at_a_tariff_change_inside_the_period_rerates_the_split():
    from tariffs.models import TariffVersion
    from tests.billing.factories import COMPONENTS, contract_with_connection, tariff_version
    from tests.customers.factories import NetworkFactory

    network = NetworkFactory()
    mid = dt.date(2026, 11, 16)
    old = tariff_version(network=network, valid_from=dt.date(2020, 1, 1))
    TariffVersion.objects.filter(pk=old.pk).update(valid_to=mid)
    components = [dict(c) for c in COMPONENTS]
    components[2] = {**components[2], "price": "900.00"}
    tariff_version(network=network, valid_from=mid, components=components)
    contract = contract_with_connection(network=network)
    register(contract.connection, dt.date(2026, 11, 1), Decimal("1000"))
    register(contract.connection, dt.date(2026, 12, 1), Decimal("4000"))
    bill_month(network)
    original = invoice_of(contract, kind="invoice")
    # no register on the 16th: 3 MWh shared 15/15 days, 1.5 × 592.52 + 1.5 × 900 + 4 × 50
    assert original.net == Decimal("2438.78")
    assert invoices_rerate_changed(now=timezone.now()) == []  # the bill's registers: as billed
    # the reading of the 16th arrives late: only 0.5 MWh was used at the old price
    register(contract.connection, mid, Decimal("1500"), status="actual")

    [(credit, correction)] = invoices_rerate_changed(now=timezone.now())

    assert credit.original_id == original.pk
    energy = list(correction.lines.filter(component="energy").order_by("position"))
    assert [line.quantity for line in energy] == [Decimal("0.5"), Decimal("2.5")]
    # 0.5 × 592.52 = 296.26; 2.5 × 900 = 2250.00; + 200.00 fixed
    assert (correction.net, correction.gross) == (Decimal("2746.26"), Decimal("3432.83"))


BLOCKS = [
    {
        "type": "energy",
        "code": "energy",
        "description": "Energy",
        "blocks": [{"upto": "20", "price": "600.00"}, {"price": "300.00"}],
    }
]


@pytest.mark.django_db
class TestTrailingYearRerating:
    """Block prices rate the trailing year (docs/billing.md): a register a year before
    the period changes a block-priced bill, and only such a bill."""

    def _bill(self, components):
        from metering.models import BoundaryRegister
        from tests.billing.factories import contract_with_connection, tariff_version
        from tests.customers.factories import NetworkFactory

        network = NetworkFactory()
        tariff_version(network=network, components=components)
        contract = contract_with_connection(network=network)
        register(contract.connection, dt.date(2026, 11, 1), Decimal("26000"))
        register(contract.connection, dt.date(2026, 12, 1), Decimal("28000"))
        bill_month(network)
        # the bill's registers were seen by an earlier look (not within its overlap)
        BoundaryRegister.objects.update(updated_at=timezone.now() - dt.timedelta(days=1))
        assert invoices_rerate_changed(now=timezone.now()) == []
        return contract, invoice_of(contract, kind="invoice")

    def test_a_register_a_year_earlier_arriving_later_rerates_a_block_priced_bill(self):
        contract, original = self._bill(BLOCKS)
        # no register a year earlier: the limits scaled to the month, 20/12 MWh at 600.00
        # (1,000.00) and the other 0.333333 MWh at 300.00 (100.00)
        assert original.net == Decimal("1100.00")
        assert original.determinants["segments"][0]["annual_energy_mwh"] is None
        register(contract.connection, dt.date(2025, 12, 1), Decimal("10000"))

        [(credit, correction)] = invoices_rerate_changed(now=timezone.now())

        # 18 MWh in the trailing year: all of November's 2 MWh in the first block
        assert credit.original_id == original.pk
        assert correction.net == Decimal("1200.00")
        assert correction.determinants["segments"][0]["annual_energy_mwh"] == "18.000000"
        assert "2025-12-01" in {r["on"] for r in correction.readings}

    def test_a_register_a_year_earlier_leaves_a_bill_without_blocks_alone(self):
        from tests.billing.factories import COMPONENTS

        contract, original = self._bill(COMPONENTS)
        register(contract.connection, dt.date(2025, 12, 1), Decimal("10000"))

        assert invoices_rerate_changed(now=timezone.now()) == []
        assert [r["on"] for r in original.readings] == ["2026-11-01", "2026-12-01"]


@pytest.mark.django_db
class TestRebill:
    def test_a_period_credited_by_hand_is_billed_again_once_as_the_data_stands(self):
        network, contracts = billed_network(accounts=1)
        bill_month(network)
        original = invoice_of(contracts[0], kind="invoice")
        credit = invoice_credit(invoice=original, now=LATER)
        # staff credited because the end reading was wrong, then put it right
        register(contracts[0].connection, dt.date(2026, 12, 1), Decimal("44600"))

        correction = invoice_rebill(invoice=original, now=LATER)

        assert correction.kind == Invoice.Kind.CORRECTION
        assert correction.original_id == original.pk
        assert correction.number is not None
        energy = correction.lines.get(component="energy")
        assert energy.quantity == Decimal("1.6")
        assert energy.amount == Decimal("948.03")  # 1.6 × 592.52 = 948.032
        assert account_balance(account=contracts[0].account) == correction.gross
        assert credit.gross == -original.gross
        with pytest.raises(ConflictError, match="already billed again by"):
            invoice_rebill(invoice=original, now=LATER)
        assert Invoice.objects.filter(kind="correction").count() == 1
        # the correction is the period's current bill: a later change re-rates it
        register(contracts[0].connection, dt.date(2026, 12, 1), Decimal("44700"))
        ((_credit, second),) = invoices_rerate_changed(now=timezone.now())
        assert second.original_id == correction.pk

    def test_an_invoice_not_credited_is_rerated_not_rebilled(self):
        network, contracts = billed_network(accounts=1)
        bill_month(network)
        original = invoice_of(contracts[0], kind="invoice")
        with pytest.raises(ConflictError, match="is not credited: re-rate it instead"):
            invoice_rebill(invoice=original, now=LATER)
        credit = invoice_credit(invoice=original, now=LATER)
        with pytest.raises(UnableToRerate, match="Only issued invoices"):
            invoice_rebill(invoice=credit, now=LATER)
        assert not Invoice.objects.filter(kind="correction").exists()

    def test_the_database_refuses_a_second_correction_of_an_invoice(self):
        from django.db import IntegrityError, transaction

        network, contracts = billed_network(accounts=1)
        bill_month(network)
        original = invoice_of(contracts[0], kind="invoice")
        invoice_credit(invoice=original, now=LATER)
        correction = invoice_rebill(invoice=original, now=LATER)
        twin = Invoice.objects.get(pk=correction.pk)
        twin.pk, twin.number, twin.state = None, None, Invoice.State.DRAFT
        with pytest.raises(IntegrityError), transaction.atomic():
            twin.save(force_insert=True)


@pytest.mark.django_db
class TestSettlementRerating:
    def _settled_year(self):
        from billing.services.aconto import instalment_plan_create

        network, contracts = billed_network(accounts=1)
        year = dt.date(2026, 1, 1)
        instalment_plan_create(
            account=contracts[0].account, year_start=year, frequency="quarterly", now=NOW
        )
        for quarter in (1, 4, 7, 10):
            bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")
        after = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)
        bill_month(network, start=year, months=12, kind="settlement", now=after)
        return contracts[0], invoice_of(contracts[0], kind="settlement")

    def test_a_late_year_end_reading_corrects_the_settlement_and_keeps_the_credit(self):
        contract, settlement = self._settled_year()
        assert settlement.net == Decimal("0.00")  # 18 MWh, all paid on account
        # the year-end reading says 1 MWh more than the value the settlement used
        register(contract.connection, dt.date(2027, 1, 1), Decimal("47000"), status="actual")

        [(credit, correction)] = invoices_rerate_changed(now=timezone.now())

        assert credit.original_id == correction.original_id == settlement.pk
        assert correction.lines.get(component="energy").quantity == Decimal("19")
        assert correction.lines.get(component="on_account").amount == Decimal("-13065.36")
        assert correction.net == Decimal("592.52")  # the one extra MWh, nothing else
        # the year's VAT on 13,657.88 is 3,414.47; the instalments invoiced 3,266.36
        assert correction.vat == Decimal("148.11")
        assert correction.gross == Decimal("740.63")
        assert invoices_rerate_changed(now=timezone.now()) == []  # nothing twice

    def test_a_settlement_credited_by_hand_is_settled_again_with_the_instalments(self):
        _contract, settlement = self._settled_year()
        invoice_credit(invoice=settlement, now=LATER)

        correction = invoice_rebill(invoice=settlement, now=LATER)

        assert correction.lines.get(component="energy").quantity == Decimal("18")
        assert correction.lines.get(component="on_account").amount == Decimal("-13065.36")
        assert (correction.net, correction.gross) == (settlement.net, settlement.gross)

    def test_staff_recompute_of_a_held_settlement_keeps_the_instalment_credit(self):
        from billing.services.rerating import invoice_recompute

        _contract, settlement = self._settled_year()
        draft = invoice_recompute(invoice=settlement)
        assert [line.component for line in draft.lines][-1] == "on_account"
        assert draft.net == settlement.net


def test_a_transaction_open_for_hours_holds_the_looks_back_and_says_so(monkeypatch, caplog):
    from billing.services import rerating

    since = timezone.now() - dt.timedelta(hours=2)
    monkeypatch.setattr(rerating, "oldest_open_write_started", lambda: since)

    with caplog.at_level("WARNING", logger="billing.services.rerating"):
        assert rerating.look_horizon() == since - rerating.RERATE_OVERLAP

    assert f"open since {since.isoformat()} holds the re-rating looks back" in caplog.text
    caplog.clear()
    monkeypatch.setattr(rerating, "oldest_open_write_started", lambda: None)
    assert rerating.look_horizon() <= timezone.now() - rerating.RERATE_OVERLAP
    assert caplog.text == ""


@pytest.mark.django_db
def test_an_invoice_that_cannot_be_recomputed_is_an_exception_and_the_others_are_rerated():
    """A corrected register below the period's start makes one bill impossible: that
    one becomes an exception on its run for staff, the look goes on with the rest."""
    from billing.models import BillingRunException

    network, contracts = billed_network(accounts=2)
    run = bill_month(network)
    end = dt.date(2026, 12, 1)
    broken, fine = contracts
    register(broken.connection, end, Decimal("100"))  # below its 1 November value
    register(fine.connection, end, Decimal("20000") + 22 * 1500 + 1600)

    [(credit, correction)] = invoices_rerate_changed(now=timezone.now())

    assert credit.account_id == fine.account_id
    assert correction.lines.get(component="energy").quantity == Decimal("1.6")
    (exception,) = BillingRunException.objects.filter(run=run)
    assert exception.account_id == broken.account_id
    assert exception.code == "late_rerate"
    assert "register decreased" in exception.error
    assert invoice_of(broken, kind="invoice").state == Invoice.State.ISSUED  # stands as billed
    # put right (the real read arrives): the next look re-rates it and clears the exception
    register(broken.connection, end, Decimal("10000") + 22 * 1500 + 1700)
    [(credit, correction)] = invoices_rerate_changed(now=timezone.now())
    assert credit.account_id == broken.account_id
    assert correction.lines.get(component="energy").quantity == Decimal("1.7")
    assert not BillingRunException.objects.filter(run=run).exists()


@pytest.mark.django_db
def test_a_bill_whose_register_was_withdrawn_is_held_up_as_an_exception():
    """Metering withdrew the value a bill used (its read rejected, nothing to estimate
    from): the bill is no longer supported by any reading; staff see it on the run."""
    from billing.models import BillingRunException
    from metering.models import BoundaryRegister

    network, contracts = billed_network(accounts=1)
    run = bill_month(network)
    BoundaryRegister.objects.filter(
        connection=contracts[0].connection, on=dt.date(2026, 12, 1)
    ).update(status=BoundaryRegister.Status.WITHDRAWN, updated_at=timezone.now())

    assert invoices_rerate_changed(now=timezone.now()) == []

    (exception,) = BillingRunException.objects.filter(run=run)
    assert exception.code == "late_rerate"
    assert "2026-12-01" in exception.error


@pytest.mark.django_db
def test_a_late_bill_that_cannot_be_rerated_shows_on_its_periods_run():
    """A bill written after its run was issued (an account found by the nightly look) has
    no run of its own; a re-rating it cannot have is an exception on the run of its
    period all the same, not a line in a log staff never read."""
    from billing.models import BillingRunException
    from billing.services.contract_changes import contracts_rebill_changed

    network, _ = billed_network(accounts=1)
    run = bill_month(network)
    assert contracts_rebill_changed(now=NOW) == ([], [])  # the look is up to date
    late = contract_with_connection(network=network)  # saved after the run
    register(late.connection, NOV, Decimal("5000"))
    register(late.connection, dt.date(2026, 12, 1), Decimal("6500"))
    _rerated, [bill] = contracts_rebill_changed(now=NOW + dt.timedelta(hours=1))
    assert (bill.run_id, bill.state, bill.net) == (None, Invoice.State.ISSUED, Decimal("1088.78"))

    register(late.connection, dt.date(2026, 12, 1), Decimal("100"))  # corrected below 1 November
    assert invoices_rerate_changed(now=timezone.now()) == []

    (exception,) = BillingRunException.objects.filter(run=run, account=late.account)
    assert exception.code == "late_rerate"
    assert f"{bill.display_number} could not be re-rated" in exception.error


@pytest.mark.django_db
def test_a_bill_of_no_run_that_cannot_be_rerated_is_recorded_for_staff(caplog):
    """A bill with no run for its period (a final settlement, say) that cannot be
    re-rated was only logged; now staff see it (``RerateFailure``), kept since its first
    failure, reopened by another reason, and removed once a re-rating succeeds."""
    from billing.models import BillingRun, RerateFailure
    from billing.services.rerating import (
        UnableToRerate,
        rerate_failure_record,
        rerate_failures_resolve,
    )
    from metering.models import BoundaryRegister

    network, (contract,) = billed_network(accounts=1)
    run = bill_month(network, issue=False)
    Invoice.objects.filter(run=run).update(run=None)
    BillingRun.objects.filter(pk=run.pk).delete()
    bill = invoice_of(contract, kind="invoice")
    invoice_issue(invoice=bill, issued_at=NOW)
    end = dt.date(2026, 12, 1)

    register(contract.connection, end, Decimal("100"))  # corrected below 1 November
    first_try = timezone.now()
    with caplog.at_level("WARNING", logger="billing.services.rerating"):
        assert invoices_rerate_changed(now=first_try) == []
    assert "not re-rated" in caplog.text
    failure = RerateFailure.objects.get()
    assert (failure.invoice_id, failure.account_id) == (bill.pk, contract.account_id)
    assert "register decreased" in failure.error
    assert (failure.created_at, failure.last_tried_at, failure.resolved) == (
        first_try,
        first_try,
        False,
    )
    assert invoice_of(contract, kind="invoice").state == Invoice.State.ISSUED  # stands

    # staff deal with it: the same reason again leaves it resolved, another reopens it
    assert rerate_failures_resolve(ids=[failure.pk]) == 1
    second_try = first_try + dt.timedelta(days=1)
    rerate_failure_record(invoice=bill, failure=UnableToRerate(failure.error), now=second_try)
    failure.refresh_from_db()
    assert (failure.created_at, failure.last_tried_at, failure.resolved) == (
        first_try,
        second_try,
        True,
    )
    BoundaryRegister.objects.filter(connection=contract.connection, on=end).update(
        status=BoundaryRegister.Status.WITHDRAWN, updated_at=timezone.now()
    )
    invoices_rerate_changed(now=second_try)
    failure.refresh_from_db()
    assert (failure.created_at, failure.resolved) == (first_try, False)
    assert "register decreased" not in failure.error
    assert "2026-12-01" in failure.error

    # put right: the re-rating succeeds and the record goes
    register(contract.connection, end, Decimal("10000") + 22 * 1500 + 1700)
    [(credit, correction)] = invoices_rerate_changed(now=second_try + dt.timedelta(days=1))
    assert credit.original_id == bill.pk
    assert correction.lines.get(component="energy").quantity == Decimal("1.7")
    assert not RerateFailure.objects.exists()


@pytest.mark.django_db
def test_staff_mark_a_failed_rerating_dealt_with_in_the_admin(admin_client):
    from billing.models import RerateFailure

    network, (contract,) = billed_network(accounts=1)
    bill_month(network)
    bill = invoice_of(contract, kind="invoice")
    failure = RerateFailure.objects.create(
        invoice=bill,
        account=contract.account,
        code="unable_to_rerate",
        error="register decreased on connection 1",
        created_at=NOW,
        last_tried_at=NOW,
    )
    listed = admin_client.get("/admin/billing/reratefailure/", {"resolved__exact": "0"})
    assert list(listed.context["cl"].result_list) == [failure]

    response = admin_client.post(
        "/admin/billing/reratefailure/",
        {"action": "resolve", "_selected_action": [failure.pk]},
    )

    assert response.status_code == 302
    failure.refresh_from_db()
    assert failure.resolved
