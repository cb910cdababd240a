"""The PDF says which trailing year's consumption chose a block-price split.

Block prices rate the trailing year (docs/billing.md, Determinants): a block-priced
segment records ``annual_from`` and ``annual_energy_mwh``, and the PDF prints them in
a sentence under the segment's block lines; without a register a year earlier it says
the block limits were scaled to the period.  Tariffs without blocks say nothing.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from pypdf import PdfReader

from billing.documents import blocks_basis, invoice_pdf_bytes
from billing.models import Invoice
from tests.billing.factories import contract_with_connection, register, tariff_version
from tests.billing.helpers import bill_month
from tests.customers.factories import NetworkFactory

BLOCKS = [{"upto": "5", "price": "600.00"}, {"price": "300.00"}]
BLOCK_ENERGY = {"type": "energy", "code": "energy", "description": "Energy", "blocks": BLOCKS}


def _text(invoice: Invoice) -> str:
    reader = PdfReader(io.BytesIO(invoice_pdf_bytes(invoice=invoice)))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def _network(*, monthly_kwh: str, first: dt.date = dt.date(2025, 1, 1), components=None):
    """One account on a tariff (blocks by default) with registers on each 1st from
    ``first`` to 1 December 2026."""
    network = NetworkFactory()
    tariff_version(network=network, components=components or [BLOCK_ENERGY])
    contract = contract_with_connection(network=network)
    value, day = Decimal("10000"), first
    while day <= dt.date(2026, 12, 1):
        register(contract.connection, day, value)
        value += Decimal(monthly_kwh)
        day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return network


@pytest.mark.django_db
class TestPdfSaysTheTrailingYearBehindTheBlocks:
    def test_the_trailing_year_and_its_mwh_follow_the_block_lines(self):
        """1,500 kWh a month: 18 MWh from 1 December 2025 to 30 November 2026; the
        month's 1.5 MWh falls into the blocks as that year does, 5/18 below 5 MWh."""
        bill_month(_network(monthly_kwh="1500"))
        invoice = Invoice.objects.get()
        # 1.5 × 5/18 = 0.416667 MWh × 600.00 = 250.00; 1.083333 MWh × 300.00 = 325.00
        assert [(ln.quantity, ln.amount) for ln in invoice.lines.order_by("position")] == [
            (Decimal("0.416667"), Decimal("250.00")),
            (Decimal("1.083333"), Decimal("325.00")),
        ]
        assert (invoice.net, invoice.vat, invoice.gross) == (
            Decimal("575.00"),
            Decimal("143.75"),
            Decimal("718.75"),
        )

        text = _text(invoice)
        sentence = "Blocks by consumption over the 12 months 2025-12-01 – 2026-11-30: 18.000 MWh"
        assert sentence in text
        # under the block lines, before the totals
        above = text.index("Energy (above 5 MWh/year)")
        assert text.index("Energy (up to 5 MWh/year)") < above < text.index(sentence)
        assert text.index(sentence) < text.index("Total excl. VAT")

    def test_the_trailing_years_mwh_is_rounded_half_up_to_three_places(self):
        # 12 × 1,520.83375 kWh = 18.2500050 MWh, recorded 18.250005: 18.250 MWh
        bill_month(_network(monthly_kwh="1520.83375"))
        invoice = Invoice.objects.get()
        assert invoice.determinants["segments"][0]["annual_energy_mwh"] == "18.250005"
        assert (
            "Blocks by consumption over the 12 months 2025-12-01 – 2026-11-30: 18.250 MWh"
            in _text(invoice)
        )

    def test_without_a_register_a_year_earlier_the_pdf_says_the_blocks_were_scaled(self):
        bill_month(_network(monthly_kwh="1500", first=dt.date(2026, 1, 1)))
        invoice = Invoice.objects.get()
        assert invoice.determinants["segments"][0]["annual_energy_mwh"] is None

        text = _text(invoice)
        assert (
            "Blocks scaled to this period: no meter reading on 2025-12-01, 12 months before "
            "2026-12-01, to measure the year by." in text
        )
        assert "Blocks by consumption" not in text

    def test_a_tariff_without_blocks_says_nothing_of_them(self):
        flat = {"type": "energy", "code": "energy", "description": "Energy", "price": "592.52"}
        bill_month(_network(monthly_kwh="1500", components=[flat]))
        assert "Blocks" not in _text(Invoice.objects.get())

    def test_a_credit_note_repeats_the_sentence_under_its_reversed_lines(self):
        from billing.services.invoices import invoice_credit
        from tests.billing.helpers import NOW

        bill_month(_network(monthly_kwh="1500"))
        credit_note = invoice_credit(invoice=Invoice.objects.get(), now=NOW)
        text = _text(credit_note)
        assert "Credit: Energy (above 5 MWh/year)" in text
        assert (
            "Blocks by consumption over the 12 months 2025-12-01 – 2026-11-30: 18.000 MWh" in text
        )


class TestBlocksBasis:
    def test_segments_of_one_interval_name_the_intervals_trailing_year(self):
        """A tariff change on the 16th: both block-priced slices were split by the year
        to the interval's end (1 December), recorded with the same ``annual_from``."""
        segments = [
            {
                "connection_id": 11,
                "period_start": "2026-11-01",
                "period_end": "2026-11-16",
                "tariff_version_id": 7,
                "annual_energy_mwh": "7.499501",
                "annual_from": "2025-12-01",
            },
            {
                "connection_id": 11,
                "period_start": "2026-11-16",
                "period_end": "2026-12-01",
                "tariff_version_id": 8,
                "annual_energy_mwh": "7.499501",
                "annual_from": "2025-12-01",
            },
            # no blocks: nothing said
            {"connection_id": 12, "period_start": "2026-11-01", "period_end": "2026-12-01"},
            # moved out on the 20th: the year to 20 November
            {
                "connection_id": 13,
                "period_start": "2026-11-01",
                "period_end": "2026-11-20",
                "tariff_version_id": 7,
                "annual_energy_mwh": "3.2",
                "annual_from": "2025-11-20",
            },
        ]
        said = "Blocks by consumption over the 12 months 2025-12-01 – 2026-11-30: 7.500 MWh"
        assert blocks_basis(segments) == [
            ((11, "2026-11-01", "2026-11-16", 7), said),
            ((11, "2026-11-16", "2026-12-01", 8), said),
            (
                (13, "2026-11-01", "2026-11-20", 7),
                "Blocks by consumption over the 12 months 2025-11-20 – 2026-11-19: 3.200 MWh",
            ),
        ]

    def test_an_instalments_segments_say_nothing(self):
        assert blocks_basis([{"plan_id": 3, "estimated_mwh": "12.0", "connections": [1]}]) == []

    def test_a_sentence_without_its_lines_is_printed_after_the_table(self):
        from types import SimpleNamespace

        from billing.documents import blocks_notes_place

        segment = {
            "connection_id": 11,
            "period_start": "2026-11-01",
            "period_end": "2026-12-01",
            "tariff_version_id": 7,
            "annual_energy_mwh": "18.0",
            "annual_from": "2025-12-01",
        }
        energy = SimpleNamespace(
            kind="energy",
            connection_id=11,
            period_start=dt.date(2026, 11, 1),
            period_end=dt.date(2026, 12, 1),
            tariff_version_id=7,
            blocks_note=None,
        )
        other = SimpleNamespace(**{**vars(energy), "tariff_version_id": 8})
        said = "Blocks by consumption over the 12 months 2025-12-01 – 2026-11-30: 18.000 MWh"

        assert blocks_notes_place([energy], [segment]) == []
        assert energy.blocks_note == said
        assert blocks_notes_place([other], [segment, segment]) == [said]
        assert other.blocks_note is None
