"""A corrected register a year earlier: what it can change, and what re-rating does.

Two registers a year earlier enter a bill (billing.calc.interval_values): the one a year
before each contract interval's end and the one a year before its start.  Only block
prices turn either into money, and only the first: the trailing year (the interval's end
register less the one a year earlier) chooses the blocks.  That register is one of the
bill's ``readings`` (and its day the segment's ``annual_from``), so a correction of it
re-rates the bill like any other (credit note and correction, to the cent).  The one a
year before the start only measures "same period last year" (the comparison, and the
plausibility hold against it): correcting it changes no amount, so an issued bill gets
no credit note (issued invoices never change, their comparison included), while a draft
held because of last year's figure is computed again by the next look: released when it
is now plausible, its reason updated when it is not.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Invoice
from billing.services.invoices import invoice_hold
from billing.services.rerating import invoices_rerate_changed
from metering.models import BoundaryRegister
from tests.billing.factories import contract_with_connection, register, tariff_version
from tests.billing.helpers import bill_month, invoice_of
from tests.customers.factories import NetworkFactory

NOV, DEC = dt.date(2026, 11, 1), dt.date(2026, 12, 1)
NOV_LY, DEC_LY = dt.date(2025, 11, 1), dt.date(2025, 12, 1)
BLOCKS = [
    {
        "type": "energy",
        "code": "energy",
        "description": "Energy",
        "blocks": [{"upto": "20", "price": "600.00"}, {"price": "300.00"}],
    }
]


def _seen_by_an_earlier_look() -> None:
    """The registers billed were seen by a look before (not within its overlap)."""
    BoundaryRegister.objects.update(updated_at=timezone.now() - dt.timedelta(days=1))
    assert invoices_rerate_changed(now=timezone.now()) == []


def _connection(network, registers: dict[dt.date, str], *, statuses=None):
    contract = contract_with_connection(network=network)
    for day, kwh in registers.items():
        register(contract.connection, day, Decimal(kwh), status=(statuses or {}).get(day, "actual"))
    return contract


@pytest.mark.django_db
class TestARegisterAYearEarlierOnABlockPricedBill:
    """2 MWh in November 2026; blocks of 20 MWh a year at 600.00, then 300.00."""

    def _billed(self):
        network = NetworkFactory()
        tariff_version(network=network, components=BLOCKS)
        # last November 2.5 MWh; the trailing year to 1 December 2026 19.5 MWh
        contract = _connection(
            network, {NOV_LY: "6000", DEC_LY: "8500", NOV: "26000", DEC: "28000"}
        )
        bill_month(network)
        original = invoice_of(contract, kind="invoice")
        _seen_by_an_earlier_look()
        return contract, original

    def test_the_trailing_years_register_is_recorded_on_the_bill(self):
        _contract, original = self._billed()

        # all 2 MWh in the first block: 2 × 600.00
        assert (original.net, original.vat, original.gross) == (
            Decimal("1200.00"),
            Decimal("300.00"),
            Decimal("1500.00"),
        )
        assert [r["on"] for r in original.readings] == ["2025-12-01", "2026-11-01", "2026-12-01"]
        segment = original.determinants["segments"][0]
        assert (segment["annual_from"], segment["annual_energy_mwh"]) == ("2025-12-01", "19.500000")
        assert [r["on"] for r in original.comparison["last_year_readings"]] == [
            "2025-11-01",
            "2025-12-01",
        ]

    def test_a_corrected_trailing_year_register_rerates_the_amount(self):
        contract, original = self._billed()
        # read again: 7,000 kWh, so the trailing year is 21 MWh and crosses the block limit
        register(contract.connection, DEC_LY, Decimal("7000"))

        [(credit, correction)] = invoices_rerate_changed(now=timezone.now())

        assert credit.original_id == original.pk
        assert credit.gross == Decimal("-1500.00")
        # 2 MWh × 20/21 = 1.904762 MWh × 600.00 = 1,142.86; × 1/21 = 0.095238 × 300.00 = 28.57
        energy = correction.lines.order_by("position")
        assert [(line.quantity, line.amount) for line in energy] == [
            (Decimal("1.904762"), Decimal("1142.86")),
            (Decimal("0.095238"), Decimal("28.57")),
        ]
        # VAT 25 % of 1,171.43 = 292.8575 → 292.86
        assert (correction.net, correction.vat, correction.gross) == (
            Decimal("1171.43"),
            Decimal("292.86"),
            Decimal("1464.29"),
        )
        assert correction.determinants["segments"][0]["annual_energy_mwh"] == "21.000000"
        # last year's figure moved with it: 7,000 − 6,000 kWh
        assert correction.comparison["last_year_mwh"] == "1.000000"

    def test_a_corrected_register_a_year_before_the_period_changes_no_amount(self):
        contract, original = self._billed()
        comparison = original.comparison
        register(contract.connection, NOV_LY, Decimal("7000"))

        assert invoices_rerate_changed(now=timezone.now()) == []

        assert not Invoice.objects.filter(original=original).exists()
        original.refresh_from_db()
        assert original.comparison == comparison  # issued: as it was issued
        assert original.comparison["last_year_mwh"] == "2.500000"


@pytest.mark.django_db
class TestAHeldDraftRestingOnLastYear:
    """1.5 MWh in November 2026 against 0.5 MWh last November from an estimated register:
    3.00× last year, held.  The standard tariff: 1.5 × 592.52 = 888.78, subscription
    100.00, capacity 100.00; net 1,088.78, VAT 272.20, gross 1,360.98."""

    def _held(self, *, estimated_end: str = "10500"):
        network = NetworkFactory()
        tariff_version(network=network)
        held = _connection(
            network,
            {NOV_LY: "10000", DEC_LY: estimated_end, NOV: "20000", DEC: "21500"},
            statuses={DEC_LY: "estimated"},
        )
        # a neighbour, issued with the run: its last year 1.2 MWh
        issued = _connection(network, {NOV_LY: "5000", DEC_LY: "6200", NOV: "8000", DEC: "9500"})
        run = bill_month(network)
        draft = invoice_of(held, kind="invoice")
        assert draft.state == Invoice.State.DRAFT
        assert draft.held
        assert draft.hold_reason == (
            "1.500000 MWh is 3.00× the same period last year "
            "(0.500000 MWh, from an estimated register)"
        )
        run.refresh_from_db()
        assert run.held == 1
        _seen_by_an_earlier_look()
        return run, held, issued, draft

    def test_a_corrected_register_makes_it_plausible_and_releases_it(self):
        run, held, _issued, draft = self._held()
        register(held.connection, DEC_LY, Decimal("11200"))  # read: 1.2 MWh last November

        assert invoices_rerate_changed(now=timezone.now()) == []  # nothing issued

        draft.refresh_from_db()
        assert (draft.state, draft.held, draft.hold_reason) == (Invoice.State.DRAFT, False, "")
        assert draft.comparison["last_year_mwh"] == "1.200000"
        assert draft.comparison["last_year_estimated"] is False
        assert [r["energy_kwh"] for r in draft.comparison["last_year_readings"]] == [
            "10000.000000",
            "11200.000000",
        ]
        assert (draft.net, draft.vat, draft.gross) == (
            Decimal("1088.78"),
            Decimal("272.20"),
            Decimal("1360.98"),
        )
        run.refresh_from_db()
        assert run.held == 0

    def test_still_implausible_it_stays_held_with_the_reason_as_the_data_now_stands(self):
        _run, held, _issued, draft = self._held()
        register(held.connection, DEC_LY, Decimal("10550"))  # read: 0.55 MWh, 2.73×

        invoices_rerate_changed(now=timezone.now())

        draft.refresh_from_db()
        assert draft.held
        assert draft.hold_reason == (
            "1.500000 MWh is 2.73× the same period last year (0.550000 MWh)"
        )
        assert draft.gross == Decimal("1360.98")

    def test_its_own_corrected_register_is_looked_at_too(self):
        """The ratio is this period's MWh over last year's: a corrected register of the
        period itself also decides whether the hold still stands."""
        _run, held, _issued, draft = self._held()
        register(held.connection, DEC, Decimal("21100"))  # 1.1 MWh: 2.20×

        invoices_rerate_changed(now=timezone.now())

        draft.refresh_from_db()
        assert (draft.held, draft.hold_reason) == (False, "")
        # 1.1 × 592.52 = 651.77 + 200.00; VAT 25 % of 851.77 = 212.9425 → 212.94
        assert (draft.net, draft.vat, draft.gross) == (
            Decimal("851.77"),
            Decimal("212.94"),
            Decimal("1064.71"),
        )

    def test_an_issued_bill_keeps_its_comparison_and_gets_no_credit_note(self):
        _run, _held, issued, _draft = self._held()
        original = invoice_of(issued, kind="invoice")
        assert original.comparison["last_year_mwh"] == "1.200000"
        register(issued.connection, DEC_LY, Decimal("5600"))  # 0.6 MWh: 2.50×, no hold

        assert invoices_rerate_changed(now=timezone.now()) == []

        assert not Invoice.objects.filter(original=original).exists()
        original.refresh_from_db()
        assert original.comparison["last_year_mwh"] == "1.200000"
        assert original.gross == Decimal("1360.98")

    def test_a_draft_staff_hold_for_their_own_reason_stays_held_on_the_new_figures(self):
        _run, held, _issued, draft = self._held()
        invoice_hold(invoice=draft, reason="customer disputes the meter")
        register(held.connection, DEC_LY, Decimal("11200"))

        invoices_rerate_changed(now=timezone.now())

        draft.refresh_from_db()
        assert (draft.held, draft.hold_reason) == (True, "customer disputes the meter")
        # computed again all the same (tests/billing/test_rerating_drafts.py): staff
        # release what the data now says
        assert draft.comparison["last_year_mwh"] == "1.200000"

    def test_a_draft_written_before_last_years_registers_were_recorded_is_found(self):
        _run, held, _issued, draft = self._held()
        Invoice.objects.filter(pk=draft.pk).update(
            comparison={"energy_mwh": "1.500000", "last_year_mwh": "0.500000"}
        )
        register(held.connection, DEC_LY, Decimal("11200"))

        invoices_rerate_changed(now=timezone.now())

        draft.refresh_from_db()
        assert (draft.held, draft.hold_reason) == (False, "")
        assert draft.comparison["last_year_mwh"] == "1.200000"
