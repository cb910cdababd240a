"""The annual settlement settles VAT exactly (DOMAIN.md §7, heatutility/money.py).

Each on-account instalment rounds its own VAT; the settlement credits the instalments'
net *and the VAT invoiced on them*, so that over the year the customer pays the year's
actual net and the VAT of it rounded once (half up, per rate), to the cent.

The arrangement: one account, 10 kW, a plan of 18 MWh a year billed quarterly at
1200 subscription + 10 kW × 120 + 18 MWh × 592.52 = 13,065.36 a year, 3266.34 a quarter.
"""

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.template.loader import render_to_string

from billing.documents import invoice_context
from billing.models import Invoice
from billing.services.aconto import instalment_plan_create
from billing.services.invoices import invoice_cancel_draft, invoice_credit
from tariffs.models import TariffVersion
from tests.billing.factories import billed_network, register, tariff_version
from tests.billing.helpers import NOW, bill_month, invoice_of

YEAR = dt.date(2026, 1, 1)
AFTER_THE_YEAR = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)
QUARTERS = (dt.date(2026, 1, 1), dt.date(2026, 4, 1), dt.date(2026, 7, 1), dt.date(2026, 10, 1))


def _planned(*, vat_rate: str = "0.25"):
    network, (contract,) = billed_network(accounts=1)
    if vat_rate != "0.25":  # an approved version never changes: a new one from the year
        TariffVersion.objects.filter(tariff__network=network).update(valid_to=YEAR)
        tariff_version(network=network, valid_from=YEAR, vat_rate=Decimal(vat_rate))
    instalment_plan_create(
        account=contract.account, year_start=YEAR, frequency="quarterly", now=NOW
    )
    return network, contract


def _instalments(network) -> None:
    for quarter in QUARTERS:
        bill_month(network, start=quarter, months=3, kind="instalment")


def _year_uses(contract, *, mwh: int) -> None:
    """The year's registers say ``mwh`` MWh, spread evenly over the months (the plan
    estimated 18 from last year's registers)."""
    start = Decimal("28000")  # the register on 2026-01-01 (2 × 12 × 1500 kWh after 10000)
    for month in range(1, 13):
        on = dt.date(2026 + month // 12, month % 12 + 1, 1)
        register(contract.connection, on, start + Decimal(mwh * 1000) * month / 12)


def _settle(network, contract) -> Invoice:
    run = bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR)
    assert (run.failed, run.held) == (0, 0)
    return invoice_of(contract, kind="settlement")


def _billed_for_the_year(contract) -> tuple[Decimal, Decimal, Decimal]:
    """Net, VAT and gross of every issued document of the year (credit notes included)."""
    issued = Invoice.objects.filter(account=contract.account, number__isnull=False)
    return tuple(
        sum((getattr(i, f) for i in issued), Decimal("0")) for f in ("net", "vat", "gross")
    )


@pytest.mark.django_db
class TestSettlementVat:
    def test_vat_rounded_up_on_each_instalment_is_given_back(self):
        # the audit's case: 21 MWh used, 18 estimated
        network, contract = _planned()
        _instalments(network)
        _year_uses(contract, mwh=21)

        settlement = _settle(network, contract)

        quarter = Invoice.objects.filter(kind="instalment").first()
        assert (quarter.net, quarter.vat, quarter.gross) == (
            Decimal("3266.34"),
            Decimal("816.59"),  # 816.585 half up, four times: 3266.36
            Decimal("4082.93"),
        )
        # year: 2400 + 21 × 592.52 = 14,842.92, VAT 3710.73; less 13,065.36 and 3266.36
        assert settlement.net == Decimal("1777.56")
        assert settlement.vat == Decimal("444.37")  # not 1777.56 × 25 % = 444.39
        assert settlement.gross == Decimal("2221.93")
        assert _billed_for_the_year(contract) == (
            Decimal("14842.92"),
            Decimal("3710.73"),
            Decimal("18553.65"),  # was 4 × 4082.93 + 2221.95 = 18553.67
        )

    def test_the_settlement_explains_its_vat_per_rate(self):
        network, contract = _planned()
        _instalments(network)
        _year_uses(contract, mwh=21)

        settlement = _settle(network, contract)

        credit = settlement.lines.get(component="on_account")
        assert credit.amount == Decimal("-13065.36")
        assert credit.explanation == (
            "4 instalments, 13,065.36 DKK excl. VAT, credited; VAT 25 % = 3,710.73 on the "
            "year's charge less 3,266.36 invoiced on the instalments"
        )
        assert settlement.determinants["vat"] == [
            {
                "rate": "0.2500",
                "base": "1777.56",
                "vat": "444.37",
                "year_base": "14842.92",
                "year_vat": "3710.73",
                "instalments_base": "13065.36",
                "instalments_vat": "3266.36",
            }
        ]
        assert sum(line.amount for line in settlement.lines.all()) == settlement.net
        context = invoice_context(invoice=settlement)
        assert [(v["percent"], v["base"], v["vat"]) for v in context["vat"]] == [
            ("25", "1777.56", "444.37")
        ]
        html = render_to_string("billing/invoice.html", context)
        assert (
            "VAT 25 %: 3710.73 on the year's 14842.92, less 3266.36 invoiced on the instalments"
            in html
        )
        assert "444.37" in html
        assert "2221.93 DKK" in html

    def test_a_year_as_estimated_gives_back_the_cents_rounded_up(self):
        network, contract = _planned()
        _instalments(network)

        settlement = _settle(network, contract)

        # 18 MWh as estimated: net 0.00; VAT 3266.34 on the year less 4 × 816.59
        assert (settlement.net, settlement.vat, settlement.gross) == (
            Decimal("0.00"),
            Decimal("-0.02"),
            Decimal("-0.02"),
        )
        assert _billed_for_the_year(contract) == (
            Decimal("13065.36"),
            Decimal("3266.34"),
            Decimal("16331.70"),
        )

    def test_vat_rounded_down_on_each_instalment_is_billed(self):
        # at 7 %: 3266.34 × 0.07 = 228.6438 → 228.64 per instalment, 914.56 in all
        network, contract = _planned(vat_rate="0.07")
        _instalments(network)
        _year_uses(contract, mwh=21)

        settlement = _settle(network, contract)

        assert Invoice.objects.filter(kind="instalment", vat=Decimal("228.64")).count() == 4
        # year: 14,842.92 × 0.07 = 1039.0044 → 1039.00; less 914.56
        assert settlement.net == Decimal("1777.56")
        assert settlement.vat == Decimal("124.44")  # not 1777.56 × 7 % = 124.4292 → 124.43
        assert settlement.gross == Decimal("1902.00")
        assert _billed_for_the_year(contract) == (
            Decimal("14842.92"),
            Decimal("1039.00"),
            Decimal("15881.92"),
        )

    def test_a_refund_settlement_gives_back_the_vat_invoiced(self):
        network, contract = _planned()
        _instalments(network)
        _year_uses(contract, mwh=15)

        settlement = _settle(network, contract)

        # year: 2400 + 15 × 592.52 = 11,287.80, VAT 2821.95; less 13,065.36 and 3266.36
        assert settlement.net == Decimal("-1777.56")
        assert settlement.vat == Decimal("-444.41")  # not −444.39
        assert settlement.gross == Decimal("-2221.97")
        assert _billed_for_the_year(contract) == (
            Decimal("11287.80"),
            Decimal("2821.95"),
            Decimal("14109.75"),
        )
        html = render_to_string("billing/invoice.html", invoice_context(invoice=settlement))
        assert (
            "VAT 25 %: 2821.95 on the year's 11287.80, less 3266.36 invoiced on the instalments"
            in html
        )
        assert "-444.41" in html

    def test_a_credited_instalment_counts_for_nothing(self):
        network, contract = _planned()
        _instalments(network)
        second = Invoice.objects.get(kind="instalment", period_start=QUARTERS[1])
        credit_note = invoice_credit(invoice=second, now=NOW)
        assert credit_note.gross == Decimal("-4082.93")

        settlement = _settle(network, contract)

        credit = settlement.lines.get(component="on_account")
        assert credit.amount == Decimal("-9799.02")  # three instalments
        assert credit.explanation.startswith("3 instalments, 9,799.02 DKK excl. VAT")
        # 3266.34 of VAT on the year less 3 × 816.59
        assert (settlement.net, settlement.vat, settlement.gross) == (
            Decimal("3266.34"),
            Decimal("816.57"),
            Decimal("4082.91"),
        )
        assert _billed_for_the_year(contract) == (
            Decimal("13065.36"),
            Decimal("3266.34"),
            Decimal("16331.70"),
        )

    def test_an_instalment_whose_credit_note_was_cancelled_still_counts(self):
        network, contract = _planned()
        _instalments(network)
        second = Invoice.objects.get(kind="instalment", period_start=QUARTERS[1])
        invoice_cancel_draft(invoice=invoice_credit(invoice=second, now=NOW, issue=False))

        settlement = _settle(network, contract)

        assert settlement.lines.get(component="on_account").amount == Decimal("-13065.36")
        assert (settlement.net, settlement.vat, settlement.gross) == (
            Decimal("0.00"),
            Decimal("-0.02"),
            Decimal("-0.02"),
        )
        # and the settlement's PDF lists it among the four it credits
        listed = invoice_context(invoice=settlement)["instalments_credited"]
        assert [i["period_start"] for i in listed] == list(QUARTERS)

    def test_each_vat_rate_is_settled_on_its_own(self):
        # the VAT rate falls to 7 % from July with a new tariff version, prices unchanged
        network, contract = _planned()
        first = TariffVersion.objects.get(tariff__network=network)
        TariffVersion.objects.filter(pk=first.pk).update(valid_to=dt.date(2026, 7, 1))
        tariff_version(network=network, valid_from=dt.date(2026, 7, 1), vat_rate=Decimal("0.07"))
        _instalments(network)
        _year_uses(contract, mwh=21)

        settlement = _settle(network, contract)

        rows = {row["rate"]: row for row in settlement.determinants["vat"]}
        # each half year: 600 + 600 + 10.5 MWh × 592.52 = 7421.46; instalments: Q1, Q2 at
        # 25 % (816.59 each), Q3, Q4 at 7 % (228.64 each)
        assert rows == {
            "0.2500": {
                "rate": "0.2500",
                "base": "888.78",
                "vat": "222.19",  # 1855.37 (1855.365) − 1633.18, not 222.195 → 222.20
                "year_base": "7421.46",
                "year_vat": "1855.37",
                "instalments_base": "6532.68",
                "instalments_vat": "1633.18",
            },
            "0.0700": {
                "rate": "0.0700",
                "base": "888.78",
                "vat": "62.22",  # 519.50 (519.5022) − 457.28, not 62.2146 → 62.21
                "year_base": "7421.46",
                "year_vat": "519.50",
                "instalments_base": "6532.68",
                "instalments_vat": "457.28",
            },
        }
        assert (settlement.net, settlement.vat, settlement.gross) == (
            Decimal("1777.56"),
            Decimal("284.41"),
            Decimal("2061.97"),
        )
        for rate, row in rows.items():
            year_base = Decimal(row["year_base"])
            year_vat = (year_base * Decimal(rate)).quantize(Decimal("0.01"), ROUND_HALF_UP)
            assert Decimal(row["year_vat"]) == year_vat
            assert Decimal(row["vat"]) == year_vat - Decimal(row["instalments_vat"])
            assert Decimal(row["base"]) == year_base - Decimal(row["instalments_base"])
            billed = Invoice.objects.filter(account=contract.account, number__isnull=False)
            lines = [ln for i in billed for ln in i.lines.all() if ln.vat_rate == Decimal(rate)]
            assert sum(ln.amount for ln in lines) == year_base  # the year's net at the rate
            invoiced_vat = sum(
                Decimal(v["vat"])
                for i in billed
                for v in i.determinants["vat"]
                if v["rate"] == rate
            )
            assert invoiced_vat == year_vat  # the year's VAT at the rate, to the cent
        assert settlement.vat == sum(Decimal(row["vat"]) for row in rows.values())
        assert settlement.gross == settlement.net + settlement.vat

    def test_an_instalment_without_its_vat_per_rate_stops_the_accounts_settlement(self):
        from billing.models import BillingRunException
        from billing.services.runs import billing_run_issue

        network, _contract = _planned()
        runs = [
            bill_month(network, start=quarter, months=3, kind="instalment", issue=False)
            for quarter in QUARTERS
        ]
        # a record without its VAT per rate (written so before issue: issued ones never change)
        broken = Invoice.objects.get(kind="instalment", period_start=QUARTERS[2])
        Invoice.objects.filter(pk=broken.pk).update(determinants={"segments": [], "vat": []})
        for run in runs:
            billing_run_issue(run=run, issued_at=NOW)
        broken.refresh_from_db()

        run = bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR)

        assert (run.done, run.failed) == (0, 1)
        exception = BillingRunException.objects.get(run=run)
        assert exception.code == "instalment_vat_unknown"
        assert exception.error == (
            f"instalment {broken.display_number}: its VAT per rate does not match its lines "
            "and VAT total; the VAT invoiced on it is unknown"
        )
        assert not Invoice.objects.filter(kind="settlement").exists()


@pytest.mark.django_db
def test_crediting_a_settlement_reverses_exactly_the_vat_it_charged():
    """A settlement's VAT is the year's less the instalments' (444.37), not the VAT of
    its lines (444.39): its credit note gives back what was charged, not 0.02 more."""
    network, contract = _planned()
    _instalments(network)
    _year_uses(contract, mwh=21)
    settlement = _settle(network, contract)

    note = invoice_credit(invoice=settlement, now=AFTER_THE_YEAR)

    assert (note.net, note.vat, note.gross) == (
        Decimal("-1777.56"),
        Decimal("-444.37"),
        Decimal("-2221.93"),
    )
    assert note.determinants["vat"] == [
        {k: v if k == "rate" else str(-Decimal(v)) for k, v in row.items()}
        for row in settlement.determinants["vat"]
    ]
    # the year billed as if nothing were settled: the four instalments, no more, no less
    assert _billed_for_the_year(contract) == (
        Decimal("13065.36"),
        Decimal("3266.36"),
        Decimal("16331.72"),
    )
