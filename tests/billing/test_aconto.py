import datetime as dt
from decimal import Decimal

import pytest

from billing.models import Invoice
from billing.services.aconto import climate_corrected, instalment_plan_create
from tests.billing.factories import billed_network, tariff_version
from tests.billing.helpers import NOW, bill_month, invoice_of

YEAR = dt.date(2026, 1, 1)


class TestClimateCorrection:
    def test_formula_of_domain_section_3(self):
        # 0.8 × 18 × 3000/2500 + 0.2 × 18 = 17.28 + 3.6
        assert climate_corrected(
            consumption=Decimal("18"),
            heating_share=Decimal("0.8"),
            dd_normal=Decimal("3000"),
            dd_actual=Decimal("2500"),
        ) == Decimal("20.88")


@pytest.mark.django_db
class TestOnAccount:
    def test_plan_uses_last_years_climate_corrected_consumption(self):
        _network, contracts = billed_network(accounts=1)
        plan = instalment_plan_create(
            account=contracts[0].account,
            year_start=YEAR,
            frequency="monthly",
            now=NOW,
            degree_days_normal=Decimal("3000"),
            degree_days_last_year=Decimal("2500"),
        )
        assert plan.last_year_mwh == Decimal("18")  # 12 × 1.5 MWh in 2025
        assert plan.estimated_mwh == Decimal("20.88")

    def test_instalments_then_settlement_credits_what_was_billed(self):
        network, contracts = billed_network(accounts=1)
        instalment_plan_create(
            account=contracts[0].account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        for quarter in (1, 4, 7, 10):
            bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")
        instalments = Invoice.objects.filter(kind="instalment").order_by("period_start")
        assert instalments.count() == 4
        first = instalments[0]
        line = first.lines.get()
        # annual: 1200 subscription + 10 kW × 120 + 18 MWh × 592.52 = 13065.36; / 4 = 3266.34
        assert line.amount == Decimal("3266.34")
        assert line.description == "On-account instalment 1 of 4"
        assert first.vat == Decimal("816.59")  # 816.585 half up
        after_the_year = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)
        settlement_run = bill_month(
            network, start=YEAR, months=12, kind="settlement", now=after_the_year
        )
        assert settlement_run.failed == 0
        settlement = invoice_of(contracts[0], kind="settlement")
        credit = settlement.lines.get(component="on_account")
        assert credit.amount == Decimal("-13065.36")
        # 2026 actual = the same 18 MWh: the settlement nets to zero
        assert settlement.net == Decimal("0.00")
        assert settlement.gross == Decimal("0.00")

    def test_instalments_follow_price_changes(self):
        network, contracts = billed_network(accounts=1)
        version = network.tariffs.get().versions.get()
        instalment_plan_create(
            account=contracts[0].account, year_start=YEAR, frequency="quarterly", now=NOW
        )
        bill_month(network, start=dt.date(2026, 1, 1), months=3, kind="instalment")
        # a new version from July doubles the energy price
        from tariffs.models import TariffVersion

        TariffVersion.objects.filter(pk=version.pk).update(valid_to=dt.date(2026, 7, 1))
        components = [dict(c) for c in version.components]
        components[2]["price"] = "1185.04"
        tariff_version(network=network, valid_from=dt.date(2026, 7, 1), components=components)
        bill_month(network, start=dt.date(2026, 7, 1), months=3, kind="instalment")
        q1, q3 = Invoice.objects.filter(kind="instalment").order_by("period_start")
        assert q1.net == Decimal("3266.34")
        assert q3.net == Decimal("5932.68")  # (2400 + 18 × 1185.04) / 4
