"""Invoice PDFs after the audit: the price cap on the cap's own VAT basis (every method),
what is already settled and what is still to pay, corrections of a final settlement, and
last year's figure on an instalment.

Worked figures (tariff of tests/billing/factories: 1,200.00 subscription and 10 kW ×
120.00 capacity a year, 592.52 /MWh, VAT 25 %):
  November, 1.5 MWh: 100.00 + 100.00 + 888.78 = 1,088.78 net, gross 1,360.98
  November, 1.6 MWh: 100.00 + 100.00 + 948.03 = 1,148.03 net, gross 1,435.04
  a year of the 18.1 MWh reference home: 1,200.00 + 1,200.00 + 10,724.61 = 13,124.61 net
"""

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.utils import timezone
from pypdf import PdfReader

from billing.documents import invoice_pdf_bytes
from billing.models import Invoice
from billing.services.payments import payment_record
from billing.services.rerating import invoice_rerate
from tariffs.models import PriceCap
from tests.billing.factories import billed_network, register
from tests.billing.helpers import NOW, bill_month, invoice_of

YEAR = dt.date(2026, 1, 1)
LATER = NOW + dt.timedelta(days=3)


def text_of(invoice: Invoice) -> str:
    invoice.refresh_from_db()
    reader = PdfReader(io.BytesIO(invoice_pdf_bytes(invoice=invoice)))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def adopted_cap(network, method, **figures) -> PriceCap:
    return PriceCap.objects.create(
        network=network,
        method=method,
        status=PriceCap.Status.ADOPTED,
        period_start=YEAR,
        period_end=dt.date(2027, 1, 1),
        currency="DKK",
        computed_at=timezone.now(),
        adopted_at=timezone.now(),
        **figures,
    )


@pytest.mark.django_db
class TestPriceCapSection:
    def test_a_substitution_benchmark_prints_its_figures_and_compares_the_bill(self):
        network, _ = billed_network(accounts=1)
        adopted_cap(
            network,
            PriceCap.Method.SUBSTITUTION,
            reference_total_cap=Decimal("25000.00"),
            inputs={
                "reference": {"energy_mwh": "18.1", "heated_area_m2": "130", "contracted_kw": "10"}
            },
            results={"seasonal_cop": "3.2", "total_per_year": "25000"},
        )
        bill_month(network)

        text = text_of(Invoice.objects.get())

        assert "excl. VAT): ." not in text
        assert (
            "District heating may cost a reference home using 18.100 MWh a year (130 m², 10 kW) "
            "no more than heating it with its own heat pump (seasonal COP 3.20): 25000.00 DKK a "
            "year excl. VAT, that is 1381.22 DKK per MWh." in text
        )  # 25,000.00 / 18.1 = 1,381.215…
        assert "The cap excludes VAT, and so do your prices below." in text
        assert (
            "The reference home's yearly bill under your tariff 25000.00 DKK/year "
            "13124.61 DKK/year within the cap" in text
        )
        # this bill: 1,088.78 excl. VAT for 1.5 MWh = 725.853…
        assert (
            "Your bill per MWh (all charges of this bill) 1381.22 DKK/MWh 725.85 DKK/MWh "
            "within the cap" in text
        )

    def test_a_cap_incl_vat_is_compared_with_prices_incl_vat(self):
        network, _ = billed_network(accounts=1)
        adopted_cap(
            network,
            PriceCap.Method.MAXIMUM_PRICE,
            includes_vat=True,
            energy_cap_per_mwh=Decimal("650.00"),
            fixed_cap_per_year=Decimal("1400.00"),
        )
        bill_month(network)

        text = text_of(Invoice.objects.get())

        assert "The cap includes VAT, so your prices are shown incl. VAT too" in text
        # 592.52 × 1.25 = 740.65 incl. VAT: above the 650.00 incl. VAT
        assert (
            "Energy price (average of this bill) 650.00 DKK/MWh 740.65 DKK/MWh "
            "(592.52 excl. VAT) above the cap by 90.65" in text
        )
        # 1,200.00 subscription a year × 1.25 = 1,500.00
        assert (
            "Fixed charges per connection and year 1400.00 DKK/year 1500.00 DKK/year "
            "(1200.00 excl. VAT) above the cap by 100.00" in text
        )

    def test_a_cap_excl_vat_is_compared_with_prices_excl_vat_limit_by_limit(self):
        network, _ = billed_network(accounts=1)
        adopted_cap(
            network,
            PriceCap.Method.COST_BASED,
            energy_cap_per_mwh=Decimal("600.00"),
            fixed_cap_per_year=Decimal("1300.00"),
            capacity_cap_per_kw=Decimal("100.00"),
        )
        bill_month(network)

        text = text_of(Invoice.objects.get())

        assert (
            "Energy price (average of this bill) 600.00 DKK/MWh 592.52 DKK/MWh within the cap"
            in text
        )
        assert (
            "Fixed charges per connection and year 1300.00 DKK/year 1200.00 DKK/year within the cap"
            in text
        )
        assert (
            "Capacity price per kW and year 100.00 DKK/kW/year 120.00 DKK/kW/year "
            "above the cap by 20.00" in text
        )


@pytest.mark.django_db
class TestWhatIsStillToPay:
    def test_a_correction_of_a_paid_invoice_shows_the_credit_and_the_difference(self):
        network, (contract,) = billed_network(accounts=1)
        bill_month(network)  # November: 1.5 MWh
        original = invoice_of(contract, kind="invoice")
        payment_record(
            account=contract.account,
            amount=Decimal("1360.98"),
            received_on=dt.date(2026, 12, 5),
            now=NOW,
            reference=original.display_number,
        )
        register(contract.connection, dt.date(2026, 12, 1), Decimal("44600"))  # 1.6 MWh

        credit_note, correction = invoice_rerate(invoice=original, now=LATER)

        text = text_of(correction)
        assert "Total to pay incl. VAT 1435.04" not in text
        assert "Total incl. VAT 1435.04 DKK" in text
        assert (
            f"Settled by credit note {credit_note.display_number} of 2026-12-05 (reverses "
            f"invoice {original.display_number}) -1360.98" in text
        )
        assert "Still to pay incl. VAT 74.06 DKK" in text  # 1,435.04 − 1,360.98
        assert f"Still to pay: 74.06 DKK, due {correction.due_on:%Y-%m-%d}" in text
        assert (
            f"Payment: please pay the 74.06 DKK still open by {correction.due_on:%Y-%m-%d}, "
            f"quoting {correction.display_number} as the reference." in text
        )
        # and the credit note says where its credit went
        credit_text = text_of(credit_note)
        assert f"Settles invoice {correction.display_number} 1360.98" in credit_text
        assert "Left on your account as credit 0.00 DKK" in credit_text

    def test_a_part_payment_is_shown_with_its_reference(self):
        network, (contract,) = billed_network(accounts=1)
        bill_month(network)
        invoice = invoice_of(contract, kind="invoice")
        unpaid = text_of(invoice)
        payment_record(
            account=contract.account,
            amount=Decimal("1000.00"),
            received_on=dt.date(2026, 12, 10),
            now=NOW,
            reference=invoice.display_number,
        )

        text = text_of(invoice)

        # nothing settled: the total is what there is to pay
        assert "Total to pay incl. VAT 1360.98 DKK" in unpaid
        assert "Still to pay" not in unpaid
        assert f"Payment received 2026-12-10, reference {invoice.display_number} -1000.00" in text
        assert "Still to pay incl. VAT 360.98 DKK" in text

    def test_a_fully_settled_invoice_says_there_is_nothing_to_pay(self):
        network, (contract,) = billed_network(accounts=1)
        bill_month(network)
        invoice = invoice_of(contract, kind="invoice")
        payment_record(
            account=contract.account,
            amount=Decimal("1360.98"),
            received_on=dt.date(2026, 12, 10),
            now=NOW,
        )

        text = text_of(invoice)

        assert "Nothing left to pay 0.00 DKK" in text
        assert "Settled in full" in text
        assert "Nothing to pay: this invoice is settled in full" in text
        assert "Due:" not in text


def _final_settlement():
    """Two accounts with quarterly instalments for 2026; the second moves out on 1 March,
    gets its first-quarter instalment and is settled at once."""
    from billing.models import InstalmentPlan
    from billing.services.aconto import final_settlement_issue, instalment_plan_create
    from customers.models import Account, Contract

    network, contracts = billed_network(accounts=2)
    for contract in contracts:
        instalment_plan_create(
            account=contract.account, year_start=YEAR, frequency="quarterly", now=NOW
        )
    bill_month(network, start=YEAR, months=3, kind="instalment")
    leaves = contracts[1]
    Contract.objects.filter(pk=leaves.pk).update(valid_to=dt.date(2026, 3, 1))
    Account.objects.filter(pk=leaves.account_id).update(status=Account.Status.CLOSED)
    plan = InstalmentPlan.objects.get(account=leaves.account)
    return leaves, final_settlement_issue(plan=plan, now=NOW)


@pytest.mark.django_db
class TestCorrectingAFinalSettlement:
    def test_the_credit_note_and_the_correction_keep_the_move_out(self):
        leaves, final = _final_settlement()
        # the move-out reading is corrected: 3.2 MWh in January–February, not 3.0
        register(leaves.connection, dt.date(2026, 3, 1), Decimal("41200"))

        credit_note, correction = invoice_rerate(invoice=final, now=LATER)

        for document, title in ((credit_note, "Credit note for final settlement"),
                                (correction, "Correction of final settlement")):  # fmt: skip
            text = text_of(document)
            assert title in text
            assert "Period: 2026-01-01 – 2026-02-28 (59 days)" in text
            assert "Moved out: 2026-03-01" in text
            assert "(365 days)" not in text
        correction_text = text_of(correction)
        # the reference house over the 59 days supplied: 18.1 × 59 / 365
        assert "Reference user (House, 130 m²): 2.926 MWh" in correction_text
        assert "This period: 3.200 MWh" in correction_text

    def test_a_correction_in_the_customers_favour_says_where_its_credit_goes(self):
        """A correction's credit is no credit note's: it settles the account's open
        invoices, oldest due first (here the instalment), not the settlement it corrects,
        which its credit note has reversed."""
        leaves, final = _final_settlement()
        register(leaves.connection, dt.date(2026, 3, 1), Decimal("41200"))
        instalment = Invoice.objects.get(account=leaves.account, kind="instalment")

        _, correction = invoice_rerate(invoice=final, now=LATER)

        assert correction.gross == Decimal("-1212.85")
        text = text_of(correction)
        assert f"Settles invoice {instalment.display_number} 1212.85" in text
        assert f"settles what is open on invoice {final.display_number}" not in text
        assert (
            "Nothing to pay: the credit first settles what is open on your invoices; any rest "
            "stays on your account as credit" in text
        )

    def test_the_settlement_names_the_instalments_it_credits(self):
        leaves, final = _final_settlement()
        instalment = Invoice.objects.get(account=leaves.account, kind="instalment")

        text = text_of(final)

        # the quarter's instalment, billed before the move-out (3,266.34 + 816.59 VAT), is
        # still open less what this settlement's credit of 1,360.98 settled on it
        assert (
            f"On-account instalments credited above: {instalment.display_number} (from "
            "2026-01-01; 2721.95 DKK of it still open)." in text
        )
        assert f"Settles invoice {instalment.display_number} 1360.98" in text


@pytest.mark.django_db
class TestInstalmentLastYear:
    def test_an_instalment_shows_last_years_consumption_from_its_plan(self):
        from billing.services.aconto import instalment_plan_create

        network, contracts = billed_network(accounts=1)
        instalment_plan_create(
            account=contracts[0].account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        bill_month(network, start=YEAR, months=3, kind="instalment")

        text = text_of(Invoice.objects.get(kind="instalment"))

        assert "no data" not in text
        # 2025: 12 × 1.5 MWh = 18 MWh; a quarter's share 4.5 MWh, as the estimate's
        assert "Last year, 1/4 of 18.000 MWh: 4.500 MWh (0.0 %)" in text
        assert "Last year (1/4) 4.500 MWh" in text  # the chart's bar


def test_the_utility_name_reads_as_written_in_the_page_footer():
    from billing.documents import css_string

    assert css_string('Amager & "Havvarme" <A/S>\\') == (
        "Amager \\26  \\22 Havvarme\\22  \\3c A/S\\3e \\5c "
    )
    assert css_string("Amager Havvarme A/S") == "Amager Havvarme A/S"


@pytest.mark.django_db
def test_the_average_energy_price_is_rounded_half_up(settings):
    from billing.documents import invoice_context
    from tests.billing.factories import billed_network
    from tests.billing.helpers import bill_month

    network, (contract,) = billed_network(accounts=1, monthly_kwh=400)
    bill_month(network)
    invoice = Invoice.objects.get(account=contract.account)
    energy = invoice.lines.get(component="energy")
    # 0.4 MWh × 592.52 = 237.008 → 237.01 billed, which is 592.525 per MWh
    assert (energy.quantity, energy.amount) == (Decimal("0.4"), Decimal("237.01"))

    assert invoice_context(invoice=invoice)["avg_energy_price"] == Decimal("592.53")


@pytest.mark.django_db
class TestEnergyPricedPerGigajoule:
    """A tariff may price energy per GJ (DOMAIN.md §4): 165.00 DKK/GJ is 594.00 DKK/MWh
    (1 MWh = 3.6 GJ).  November, 1.5 MWh = 5.4 GJ × 165.00 = 891.00."""

    @staticmethod
    def _gj_network():
        from tariffs.models import TariffVersion
        from tests.billing.factories import COMPONENTS, tariff_version

        network, _ = billed_network(accounts=1)
        TariffVersion.objects.filter(tariff__network=network).update(valid_to=YEAR)
        components = [dict(c) for c in COMPONENTS]
        components[2] = {**components[2], "unit": "GJ", "price": "165.00"}
        tariff_version(network=network, valid_from=YEAR, components=components)
        return network

    def test_the_energy_price_is_compared_with_the_cap_per_mwh(self):
        network = self._gj_network()
        adopted_cap(network, PriceCap.Method.COST_BASED, energy_cap_per_mwh=Decimal("600.00"))
        bill_month(network)
        invoice = Invoice.objects.get()
        assert invoice.lines.get(component="energy").amount == Decimal("891.00")

        text = text_of(invoice)

        assert "None of the cap's limits applies" not in text
        assert (
            "Energy price (average of this bill) 600.00 DKK/MWh 594.00 DKK/MWh within the cap"
            in text
        )
        assert "Average energy price: 594.00 DKK/MWh excl. VAT" in text
