"""An instalment has no "same period last year": its comparison carries no registers.

An on-account instalment bills 1/n of the plan's estimated year (billing.services.aconto),
not a measured period: there is no consumption of its period to compare, no
plausibility hold against last year, and so no ``last_year_readings`` /
``last_year_estimated`` (``last_year_mwh`` is null).  Its PDF shows the plan's last year,
1/n of it, instead.  The document code reads the keys with a default, so instalments and
bills written before the keys existed render alike.  The plan records, per connection,
whether last year's figure rests on an estimated register, and the instalment's PDF
marks the figure ESTIMATED then.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from pypdf import PdfReader

from billing.documents import invoice_context, invoice_pdf_bytes
from billing.models import InstalmentPlan, Invoice
from billing.services.aconto import instalment_plan_create
from tests.billing.factories import billed_network, register
from tests.billing.helpers import NOW, bill_month, invoice_of

YEAR = dt.date(2026, 1, 1)


def _text(invoice: Invoice) -> str:
    reader = PdfReader(io.BytesIO(invoice_pdf_bytes(invoice=invoice)))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


@pytest.mark.django_db
class TestInstalmentComparison:
    def _instalment(self, *, estimated: bool = False) -> Invoice:
        network, contracts = billed_network(accounts=1)
        if estimated:  # the plan's register a year before its year, estimated
            register(contracts[0].connection, dt.date(2025, 1, 1), "10000", status="estimated")
        instalment_plan_create(
            account=contracts[0].account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        bill_month(network, start=YEAR, months=3, kind="instalment")
        return invoice_of(contracts[0], kind="instalment")

    def test_it_records_no_same_period_last_year(self):
        instalment = self._instalment()

        # 2025: 12 × 1.5 MWh = 18 MWh estimated (no degree days: not corrected); a quarter
        assert instalment.comparison == {"energy_mwh": "4.500000", "last_year_mwh": None}
        assert instalment.readings == []
        assert not instalment.held

    def test_its_pdf_marks_the_plans_last_year_estimated_where_a_register_was(self):
        instalment = self._instalment(estimated=True)

        context = invoice_context(invoice=instalment)
        text = _text(instalment)

        assert context["last_estimates"] == []  # the instalment's own comparison: none
        assert context["plan_last_year"] == {
            "share_mwh": Decimal("4.500"),
            "year_mwh": Decimal("18.000000"),
            "n": 4,
            "estimated": True,
        }
        assert "Last year, 1/4 of 18.000 MWh: 4.500 MWh ESTIMATED (0.0 %)" in text
        assert "Same period last year" not in text

    def test_its_pdf_shows_the_plans_last_year_unmarked_on_actual_registers(self):
        instalment = self._instalment()

        text = _text(instalment)

        assert invoice_context(invoice=instalment)["plan_last_year"]["estimated"] is False
        assert "Last year, 1/4 of 18.000 MWh: 4.500 MWh (0.0 %)" in text
        assert "ESTIMATED" not in text

    def test_a_plan_made_before_it_recorded_estimates_marks_nothing(self):
        instalment = self._instalment(estimated=True)
        plan = InstalmentPlan.objects.get()
        plan.connections = [
            {k: v for k, v in part.items() if k != "last_year_estimated"}
            for part in plan.connections
        ]
        plan.save(update_fields=["connections"])

        assert invoice_context(invoice=instalment)["plan_last_year"]["estimated"] is False
        assert "ESTIMATED" not in _text(instalment)
        # 1/4 of the year's charge: 18 MWh × 592.52 + 1,200.00 + 10 kW × 120.00, VAT 25 %
        assert (instalment.net, instalment.vat, instalment.gross) == (
            Decimal("3266.34"),
            Decimal("816.59"),
            Decimal("4082.93"),
        )


@pytest.mark.django_db
def test_a_bill_written_before_last_years_registers_were_recorded_still_renders():
    network, contracts = billed_network(accounts=1)
    # last November's end register estimated: a bill made now marks its figure ESTIMATED
    register(contracts[0].connection, dt.date(2025, 12, 1), 10000 + 11 * 1500, status="estimated")
    bill_month(network, issue=False)  # a draft: an issued invoice's row never changes
    invoice = invoice_of(contracts[0], kind="invoice")
    assert invoice.comparison["last_year_estimated"] is True
    assert "ESTIMATED" in _text(invoice)
    Invoice.objects.filter(pk=invoice.pk).update(
        comparison={"energy_mwh": "1.500000", "last_year_mwh": "1.500000"}
    )
    invoice.refresh_from_db()

    text = _text(invoice)

    assert invoice_context(invoice=invoice)["last_estimates"] == []
    assert "Same period last year: 1.500 MWh (0.0 %)" in text
    assert "ESTIMATED" not in text
