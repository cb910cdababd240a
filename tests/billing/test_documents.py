import datetime as dt
import io
from decimal import Decimal

import pytest
from pypdf import PdfReader

from billing import tasks
from billing.models import Invoice
from billing.services.runs import billing_run_create, billing_run_issue
from tests.billing.factories import billed_network, register

NOW = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)


def pdf_text(invoice: Invoice) -> str:
    invoice.refresh_from_db()
    with invoice.pdf.open("rb") as handle:
        reader = PdfReader(io.BytesIO(handle.read()))
    return "\n".join(page.extract_text() for page in reader.pages)


def issue_november(network, capture_on_commit) -> Invoice:
    """Bill and issue November 2026 (PDFs rendered on commit); the one invoice."""
    run = billing_run_create(network=network, period_start=dt.date(2026, 11, 1), now=NOW)
    tasks.billing_run_start.delay(run.pk)
    run.refresh_from_db()
    with capture_on_commit(execute=True):
        billing_run_issue(run=run, issued_at=NOW)
    return Invoice.objects.get()


@pytest.mark.django_db
class TestInvoicePdf:
    def test_issue_renders_a_pdf_that_explains_every_line(self, django_capture_on_commit_callbacks):
        network, contracts = billed_network(accounts=1)
        register(
            contracts[0].connection,
            dt.date(2026, 12, 1),
            Decimal("10000") + 22 * 1500 + 1500,
            status="estimated",
        )
        invoice = issue_november(network, django_capture_on_commit_callbacks)
        assert invoice.pdf.name.endswith("INV-2026-000001.pdf")
        text = pdf_text(invoice)
        assert "INV-2026-000001" in text
        assert "1.5 MWh × 592.52 DKK/MWh" in text.replace("\n", " ")
        assert "888.78" in text
        assert "1360.98" in text
        assert "ESTIMATED" in text
        assert "Same period last year: 1.500 MWh" in text
        assert "VAT 25 % on 1088.78" in text
        assert "Where to complain" in text
        assert "Ankenævnet på Energiområdet" in text
        assert "No price cap has been adopted" in text


def _degree_days(network, start: dt.date, end: dt.date, per_day: str) -> None:
    from metering.models import DegreeDay

    days = (end - start).days
    DegreeDay.objects.bulk_create(
        DegreeDay(network=network, on=start + dt.timedelta(days=i), degree_days=Decimal(per_day))
        for i in range(days)
    )


@pytest.mark.django_db
class TestWeatherCorrectedComparison:
    """EED Annex IX: last year's consumption climate-corrected, beside the actual figure."""

    def test_last_year_in_this_periods_weather(self, django_capture_on_commit_callbacks):
        from billing.documents import weather_comparison

        network, _ = billed_network(accounts=1)
        # November 2026 twice as cold as November 2025: 600 against 300 degree days
        _degree_days(network, dt.date(2026, 11, 1), dt.date(2026, 12, 1), "20")
        _degree_days(network, dt.date(2025, 11, 1), dt.date(2025, 12, 1), "10")
        invoice = issue_november(network, django_capture_on_commit_callbacks)
        # 1.5 MWh last year: 80 % of it doubles with the weather, 20 % does not
        # 0.8 × 1.5 × 600 / 300 + 0.2 × 1.5 = 2.7 MWh; this period's 1.5 MWh is -44.4 %
        weather = weather_comparison(
            network_id=network.pk, start=invoice.period_start, end=invoice.period_end,
            last_mwh=Decimal("1.500"),
        )  # fmt: skip
        assert weather["last_corrected_mwh"] == Decimal("2.700")
        assert (weather["dd_this"], weather["dd_last"]) == (Decimal("600"), Decimal("300"))
        text = " ".join(pdf_text(invoice).split())
        assert "Same period last year: 1.500 MWh (0.0 %)" in text
        # (the PDF's text breaks "climate-corrected" at its hyphen)
        assert "corrected to this period's weather: 2.700 MWh (-44.4 % weather-adjusted)" in text
        assert "Degree days (base 17 °C): 600 this period, 300 last year" in text
        assert "Last year, this weather" in text  # the chart's extra bar

    def test_no_correction_over_a_gap_in_degree_days(self):
        from billing.documents import weather_comparison
        from metering.models import DegreeDay

        network, _ = billed_network(accounts=1)
        _degree_days(network, dt.date(2026, 11, 1), dt.date(2026, 12, 1), "20")
        _degree_days(network, dt.date(2025, 11, 1), dt.date(2025, 12, 1), "10")
        DegreeDay.objects.filter(network=network, on=dt.date(2025, 11, 17)).delete()
        november = {"network_id": network.pk, "start": dt.date(2026, 11, 1),
                    "end": dt.date(2026, 12, 1)}  # fmt: skip
        assert weather_comparison(**november, last_mwh=Decimal("1.5")) is None
        assert weather_comparison(**november, last_mwh=None) is None
        # October has no degree days at all
        october = {**november, "start": dt.date(2026, 10, 1), "end": dt.date(2026, 11, 1)}
        assert weather_comparison(**october, last_mwh=Decimal("1.5")) is None


class TestUnitPrices:
    @pytest.mark.parametrize(
        ("price", "text"),
        [("592.520000", "592.52"), ("1200", "1200.00"), ("0.123456", "0.123456"),
         ("-13065.360000", "-13065.36"), ("1.2E+3", "1200.00"), ("0", "0.00")],
    )  # fmt: skip
    def test_every_significant_decimal_and_at_least_two(self, price, text):
        from billing.documents import unit_price_text

        assert unit_price_text(Decimal(price)) == text


@pytest.mark.django_db
class TestInstalmentPdf:
    def test_an_instalment_says_its_figure_is_an_estimate_and_bills_no_readings(self):
        from pypdf import PdfReader

        from billing.documents import invoice_pdf_bytes
        from billing.services.aconto import instalment_plan_create
        from tests.billing.helpers import bill_month

        network, contracts = billed_network(accounts=1)
        instalment_plan_create(
            account=contracts[0].account,
            year_start=dt.date(2026, 1, 1),
            frequency="quarterly",
            now=NOW,
        )
        bill_month(network, start=dt.date(2026, 1, 1), months=3, kind="instalment")
        invoice = Invoice.objects.get(kind="instalment")
        reader = PdfReader(io.BytesIO(invoice_pdf_bytes(invoice=invoice)))
        text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
        assert "Estimated for this period (on-account): 4.500 MWh" in text  # 18 MWh / 4
        assert "This period:" not in text
        assert "None: an on-account instalment is an estimate" in text
        assert "Estimate (on-account) 4.500 MWh" in text  # the chart's bar
        assert "1 instalment 3266.34 3266.34" in text  # unit price without trailing zeros


@pytest.mark.django_db
class TestCreditNotePdf:
    def test_a_credit_note_says_what_it_reverses_and_asks_for_no_payment(self):
        from django.utils import timezone
        from pypdf import PdfReader

        from billing.documents import invoice_pdf_bytes
        from billing.services.rerating import invoices_rerate_changed
        from tests.billing.helpers import bill_month

        network, contracts = billed_network(accounts=1)
        end = dt.date(2026, 12, 1)
        register(contracts[0].connection, end, Decimal("44500"), status="estimated")
        bill_month(network)
        register(contracts[0].connection, end, Decimal("44600"), status="actual")
        [(credit, correction)] = invoices_rerate_changed(now=timezone.now())

        def text_of(invoice):
            reader = PdfReader(io.BytesIO(invoice_pdf_bytes(invoice=invoice)))
            return " ".join(" ".join(page.extract_text() for page in reader.pages).split())

        # the original rests on an estimate: it promises a correction only if the actual
        # changes the figures (an actual of the same value changes nothing)
        assert (
            "Readings marked ESTIMATED were estimated; when the actual reading arrives and "
            "changes the figures, this bill is credited and corrected automatically."
            in text_of(credit.original)
        )
        credit_text = text_of(credit)
        assert "Total credited incl. VAT -1360.98 DKK" in credit_text
        assert (
            f"This credit note reverses invoice {credit.original.display_number} in full. "
            f"Invoice {correction.display_number} bills the corrected figures." in credit_text
        )
        assert "Due:" not in credit_text
        assert "Nothing to pay: the credit first settles what is open on invoice" in credit_text
        assert "Your consumption" not in credit_text
        correction_text = text_of(correction)
        assert "Total to pay incl. VAT 1435.04 DKK" in correction_text
        assert f"Payment: quote {correction.display_number} as the reference." in correction_text
        assert "This period: 1.600 MWh" in correction_text


@pytest.mark.django_db
class TestDraftPdf:
    def test_a_draft_is_refused_with_the_reason(self):
        """A draft (no number yet) has no PDF: refused as a domain error naming the
        field, not a bare ValueError the API and the admin cannot show."""
        from billing.documents import UnableToRenderInvoice, invoice_pdf_render

        network, _ = billed_network(accounts=1)
        run = billing_run_create(network=network, period_start=dt.date(2026, 11, 1), now=NOW)
        tasks.billing_run_start.delay(run.pk)
        draft = Invoice.objects.get()
        assert draft.number is None

        with pytest.raises(UnableToRenderInvoice, match="not issued") as refused:
            invoice_pdf_render(invoice=draft)

        assert [(e.field, e.code) for e in refused.value.errors] == [("number", "not_issued")]
        draft.refresh_from_db()
        assert draft.pdf.name == ""


@pytest.mark.django_db
class TestReminderFeePdf:
    """A reminder fee's document is its dunning letter, whoever asks for its PDF."""

    def fee_unrendered(self) -> Invoice:
        """The fee invoice of October's second reminder, nothing rendered yet."""
        from billing.services.dunning import dunning_run
        from tests.billing.test_delivery import OCTOBER_DUE, october

        october()
        for days in (7, 21):  # the letters' PDFs would be rendered on commit: not here
            dunning_run(
                now=dt.datetime.combine(OCTOBER_DUE + dt.timedelta(days=days), dt.time(6), dt.UTC)
            )
        return Invoice.objects.get(kind=Invoice.Kind.REMINDER_FEE)

    def test_rendering_it_as_an_invoice_is_refused(self):
        from billing.documents import UnableToRenderInvoice, invoice_pdf_render

        fee = self.fee_unrendered()

        # was rendered as an energy invoice (consumption, comparison, price cap) and
        # stored as the fee's PDF, so the letter's never became it
        with pytest.raises(UnableToRenderInvoice, match="dunning letter") as refused:
            invoice_pdf_render(invoice=fee)

        assert [(e.field, e.code) for e in refused.value.errors] == [("kind", "reminder_fee")]
        fee.refresh_from_db()
        assert fee.pdf.name == ""

    def test_the_render_task_gives_it_its_letters_pdf(self):
        fee = self.fee_unrendered()

        assert tasks.invoices_render_pdfs([fee.pk]) == 1  # the letter, rendered

        fee.refresh_from_db()
        assert fee.pdf.name == fee.dunning_letter.pdf.name != ""
