"""Area charges are billed with the heated m² in force each day (customers.AreaChange)."""

import datetime as dt
from decimal import Decimal

import pytest

from billing.calc import ContractInterval, basis_pieces, m2_in_force
from billing.models import Invoice
from billing.services.aconto import instalment_plan_create
from billing.services.contract_changes import contracts_rebill_changed
from billing.services.rerating import invoice_rerate
from customers.services import building_area_change, connection_capacity_change
from tests.billing.factories import COMPONENTS, contract_with_connection, register, tariff_version
from tests.billing.helpers import NOW, bill_month
from tests.customers.factories import NetworkFactory

D = Decimal
OCT1 = dt.date(2026, 10, 1)
NOV1 = dt.date(2026, 11, 1)
NOV16 = dt.date(2026, 11, 16)
LATER = NOW + dt.timedelta(days=20)
AREA = {
    "type": "banded",
    "code": "area",
    "description": "Area charge",
    "basis": "area",
    "bands": [{"upto": None, "unit_price": "12.00"}],
}


def area_network(*, start=dt.date(2025, 1, 1), months=24):
    """One account on one connection (10 kW, 130 m², 1.5 MWh a month) under the standard
    tariff with an area charge of 12.00 per m² and year."""
    network = NetworkFactory()
    tariff_version(network=network, components=[*COMPONENTS, AREA])
    contract = contract_with_connection(network=network)
    value, day = D(10000), start
    for _ in range(months + 1):
        register(contract.connection, day, value)
        value += 1500
        day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return network, contract


def charged(invoice, component) -> list[tuple[Decimal, Decimal]]:
    return [
        (line.quantity, line.amount)
        for line in invoice.lines.filter(component=component).order_by("position")
    ]


def change_area(contract, m2, valid_from):
    return building_area_change(
        building=contract.connection.building, heated_area_m2=D(m2), valid_from=valid_from
    )


def invoice_of(contract, period_start=NOV1):
    return Invoice.objects.get(account=contract.account, kind="invoice", period_start=period_start)


@pytest.mark.django_db
class TestAreaChangeInsideThePeriod:
    def test_each_part_of_the_month_is_charged_at_its_own_m2(self):
        network, contract = area_network()
        change_area(contract, "200", NOV16)  # an extension registered from 16 November

        bill_month(network)

        invoice = invoice_of(contract)
        # 12.00 per m² and year: a month's 1/12 by days, 15 of 30 days at each area
        assert charged(invoice, "area") == [(D("130"), D("65.00")), (D("200"), D("100.00"))]
        # only the charges on the area are cut: energy, capacity and subscription are whole
        assert charged(invoice, "energy") == [(D("1.5"), D("888.78"))]
        assert charged(invoice, "capacity") == [(D("10"), D("100.00"))]
        assert charged(invoice, "subscription") == [(D("1"), D("100.00"))]
        assert invoice.net == D("1253.78")  # 100.00 + 100.00 + 65.00 + 100.00 + 888.78
        (segment,) = invoice.determinants["segments"]
        assert segment["heated_area_m2"] == "130.00"
        assert segment["heated_area_m2_from"] == [
            ["2026-11-01", "130.00"],
            ["2026-11-16", "200.00"],
        ]

    def test_a_change_on_the_periods_first_day_bills_the_month_at_the_new_m2(self):
        network, contract = area_network()
        change_area(contract, "200", NOV1)

        bill_month(network)

        assert charged(invoice_of(contract), "area") == [(D("200"), D("200.00"))]

    def test_kw_and_m2_changing_inside_one_month_each_charge_by_its_own_days(self):
        network, contract = area_network()
        connection_capacity_change(
            connection=contract.connection, capacity_kw=D("20"), valid_from=dt.date(2026, 11, 11)
        )
        change_area(contract, "200", dt.date(2026, 11, 21))

        bill_month(network)

        invoice = invoice_of(contract)
        # capacity: 10 kW × 120.00 / 12 × 10/30 = 33.333, 20 kW × 120.00 / 12 × 20/30 = 133.333
        assert charged(invoice, "capacity") == [(D("10"), D("33.33")), (D("20"), D("133.33"))]
        # area: 130 m² × 12.00 / 12 × 20/30 = 86.667, 200 m² × 12.00 / 12 × 10/30 = 66.667
        assert charged(invoice, "area") == [(D("130"), D("86.67")), (D("200"), D("66.67"))]
        assert charged(invoice, "energy") == [(D("1.5"), D("888.78"))]
        assert invoice.net == D("1308.78")  # 100.00 + 166.66 + 153.34 + 888.78


@pytest.mark.django_db
class TestRerating:
    def test_a_past_month_is_recomputed_with_the_m2_it_had(self):
        network, contract = area_network()
        bill_month(network, start=OCT1)
        october = invoice_of(contract, OCT1)
        assert charged(october, "area") == [(D("130"), D("130.00"))]

        # from November on (in force today: the building itself now says 200 m²)
        change_area(contract, "200", NOV1)
        contract.connection.building.refresh_from_db()
        assert contract.connection.building.heated_area_m2 == D("200")

        assert invoice_rerate(invoice=october, now=LATER) is None  # same figures: nothing issued

    def test_a_change_dated_back_rerates_only_the_billed_months_it_reaches(self):
        network, contract = area_network()
        bill_month(network, start=OCT1)
        bill_month(network)
        assert contracts_rebill_changed(now=NOW) == ([], [])
        november = invoice_of(contract)

        change_area(contract, "200", NOV16)
        [(credit, correction)], billed = contracts_rebill_changed(now=LATER)

        assert billed == []
        assert credit.original_id == november.pk  # October is before the change: untouched
        assert correction.net - november.net == D("35.00")  # 70 m² more for 15 of 30 days
        assert not Invoice.objects.filter(original=invoice_of(contract, OCT1)).exists()
        assert contracts_rebill_changed(now=LATER) == ([], [])

    def test_a_change_dated_back_before_a_later_one_rerates_only_the_days_until_it(self):
        network, contract = area_network()
        change_area(contract, "200", NOV1)  # recorded in time
        bill_month(network, start=OCT1)
        bill_month(network)
        assert contracts_rebill_changed(now=NOW) == ([], [])
        october = invoice_of(contract, OCT1)

        change_area(contract, "160", dt.date(2026, 10, 16))  # recorded late
        [(credit, correction)], _ = contracts_rebill_changed(now=LATER)

        # November keeps its 200 m² (governed by the change of 1 November)
        assert credit.original_id == october.pk
        # 130 m² × 12.00 / 12 for the month: 130.00; now 130 m² for 15 of 31 days (62.90)
        # and 160 m² for 16 (82.58): 15.48 more
        assert charged(correction, "area") == [(D("130"), D("62.90")), (D("160"), D("82.58"))]
        assert correction.net - october.net == D("15.48")

    def test_a_change_reaches_every_account_on_the_building(self):
        network, contract = area_network()
        neighbour = contract_with_connection(network=network)
        neighbour.connection.building = contract.connection.building  # a second connection
        neighbour.connection.save()
        for day, kwh in ((NOV1, 5000), (dt.date(2026, 12, 1), 6500)):
            register(neighbour.connection, day, D(kwh))
        bill_month(network)
        assert contracts_rebill_changed(now=NOW) == ([], [])

        change_area(contract, "200", NOV16)
        rerated, _ = contracts_rebill_changed(now=LATER)

        assert sorted(credit.account_id for credit, _ in rerated) == sorted(
            [contract.account_id, neighbour.account_id]
        )


@pytest.mark.django_db
class TestInstalments:
    def test_an_area_change_inside_the_quarter_is_weighted_by_days(self):
        network, contract = area_network()
        instalment_plan_create(
            account=contract.account, year_start=dt.date(2026, 1, 1), frequency="quarterly", now=NOW
        )
        change_area(contract, "200", dt.date(2026, 8, 15))

        bill_month(network, start=dt.date(2026, 7, 1), months=3, kind="instalment")

        q3 = Invoice.objects.get(kind="instalment")
        # a year at 130 m²: 1200 + 10 kW × 120 + 130 × 12 + 18 MWh × 592.52 = 14,625.36 for
        # 45 of the quarter's 92 days, at 200 m² 15,465.36 for 47:
        # (14,625.36 × 45 + 15,465.36 × 47) / 92 / 4 = 3,763.6226
        assert q3.net == D("3763.62")
        assert "prices changing on 2026-08-15, weighted by days" in q3.lines.get().explanation


class TestPieces:
    """The pure cut of a slice by kW and m² (no database)."""

    interval = ContractInterval(
        1,
        NOV1,
        dt.date(2026, 12, 1),
        D("10"),
        D("130"),
        kw_changes=((dt.date(2026, 11, 11), D("20")),),
        m2_changes=((dt.date(2026, 11, 21), D("200")),),
    )

    def test_the_m2_in_force_is_cut_at_its_own_changes_only(self):
        assert m2_in_force(self.interval, NOV1, dt.date(2026, 12, 1)) == [
            (NOV1, dt.date(2026, 11, 21), D("130")),
            (dt.date(2026, 11, 21), dt.date(2026, 12, 1), D("200")),
        ]
        assert m2_in_force(self.interval, dt.date(2026, 11, 25), dt.date(2026, 12, 1)) == [
            (dt.date(2026, 11, 25), dt.date(2026, 12, 1), D("200")),
        ]

    def test_instalment_pieces_are_cut_at_both_with_each_value(self):
        spec = object()
        assert basis_pieces(self.interval, [(NOV1, dt.date(2026, 12, 1), spec)]) == [
            ((NOV1, dt.date(2026, 11, 11), spec), D("10"), D("130")),
            ((dt.date(2026, 11, 11), dt.date(2026, 11, 21), spec), D("20"), D("130")),
            ((dt.date(2026, 11, 21), dt.date(2026, 12, 1), spec), D("20"), D("200")),
        ]
