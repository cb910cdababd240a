"""The PDF's quantity × unit price adds up to the amount, also for prorated annual charges."""

import datetime as dt
from decimal import Decimal

import pytest

from billing.documents import line_columns
from billing.models import InvoiceLine
from tests.billing.factories import billed_network
from tests.billing.test_documents import issue_november, pdf_text

D = Decimal


def line(**fields) -> InvoiceLine:
    defaults = {
        "period_start": dt.date(2026, 11, 1),
        "period_end": dt.date(2026, 12, 1),
        "quantity": D("1"),
        "unit": "year",
        "unit_price": D("3310.00"),
        "amount": D("275.83"),
    }
    return InvoiceLine(**{**defaults, **fields})


class TestLineColumns:
    def test_a_month_of_a_yearly_charge_shows_its_twelfth(self):
        assert line_columns(line(), "DKK") == ("1 year × 1/12", "3310.00 /year")

    def test_half_a_month_of_a_charge_per_kw(self):
        half = line(
            period_end=dt.date(2026, 11, 16),
            quantity=D("8"),
            unit="kW",
            unit_price=D("350.50"),
            amount=D("116.83"),  # 8 × 350.50 × 1/24 = 116.833
        )
        assert line_columns(half, "DKK") == ("8 kW × 1/24 year", "350.50 /kW/year")

    def test_consumption_and_whole_years_print_as_stored(self):
        energy = line(quantity=D("1.5"), unit="MWh", unit_price=D("592.52"), amount=D("888.78"))
        assert line_columns(energy, "DKK") == ("1.5 MWh", "592.52")
        year = line(
            period_start=dt.date(2026, 1, 1), period_end=dt.date(2027, 1, 1), amount=D("3310.00")
        )
        assert line_columns(year, "DKK") == ("1 year", "3310.00")


@pytest.mark.django_db
def test_the_invoice_pdf_prints_the_year_fraction(django_capture_on_commit_callbacks):
    network, _contracts = billed_network(accounts=1)  # 1200.00 a year, 10 kW × 120.00 a year

    text = pdf_text(issue_november(network, django_capture_on_commit_callbacks))

    assert "1 year × 1/12" in text
    assert "1200.00 /year" in text
    assert "10 kW × 1/12 year" in text
    assert "120.00 /kW/year" in text
