import datetime as dt
from decimal import Decimal

import pytest

from billing.models import Invoice
from tariffs.models import TariffVersion
from tests.billing.factories import (
    COMPONENTS,
    contract_with_connection,
    register,
    tariff_version,
)
from tests.billing.helpers import bill_month
from tests.customers.factories import NetworkFactory

NOV, MID, DEC = dt.date(2026, 11, 1), dt.date(2026, 11, 16), dt.date(2026, 12, 1)


@pytest.mark.django_db
class TestProration:
    def test_move_in_mid_month_bills_from_the_move_in_register_and_prorates_by_days(self):
        network = NetworkFactory()
        tariff_version(network=network)
        contract = contract_with_connection(network=network, valid_from=MID)
        register(contract.connection, MID, Decimal("5000"))
        register(contract.connection, DEC, Decimal("5800"))
        run = bill_month(network, issue=False)
        assert run.failed == 0
        invoice = Invoice.objects.get()
        lines = {line.component: line for line in invoice.lines.all()}
        assert lines["energy"].quantity == Decimal("0.8")
        assert lines["energy"].amount == Decimal("474.02")  # 0.8 × 592.52 = 474.016
        # 15 of November's 30 days: 1200/12 × 15/30 = 50.00; 10 kW × 120/12 × 15/30 = 50.00
        assert lines["subscription"].amount == Decimal("50.00")
        assert lines["capacity"].amount == Decimal("50.00")
        assert "2026-11-16 – 2026-11-30" in lines["energy"].description
        assert [r["on"] for r in invoice.readings] == ["2026-11-16", "2026-12-01"]

    def test_move_out_and_next_tenant_are_billed_separately(self):
        network = NetworkFactory()
        tariff_version(network=network)
        first = contract_with_connection(
            network=network, valid_from=dt.date(2024, 1, 1), valid_to=MID
        )
        from tests.customers.factories import ContractFactory

        second = ContractFactory(
            connection=first.connection, account__network=network, valid_from=MID
        )
        for day, value in ((NOV, 1000), (MID, 1600), (DEC, 2000)):
            register(first.connection, day, Decimal(value))
        bill_month(network, issue=False)
        out = Invoice.objects.get(account=first.account)
        moved_in = Invoice.objects.get(account=second.account)
        assert out.lines.get(component="energy").quantity == Decimal("0.6")
        assert moved_in.lines.get(component="energy").quantity == Decimal("0.4")

    def test_tariff_change_inside_the_period_splits_energy_by_days_without_a_register(self):
        network = NetworkFactory()
        old = tariff_version(network=network, valid_from=dt.date(2020, 1, 1))
        TariffVersion.objects.filter(pk=old.pk).update(valid_to=MID)
        components = [dict(c) for c in COMPONENTS]
        components[2] = {**components[2], "price": "600.00"}
        new = tariff_version(network=network, valid_from=MID, components=components)
        contract = contract_with_connection(network=network)
        register(contract.connection, NOV, Decimal("1000"))
        register(contract.connection, DEC, Decimal("4000"))
        bill_month(network, issue=False)
        invoice = Invoice.objects.get()
        energy = list(invoice.lines.filter(component="energy").order_by("position"))
        assert [e.quantity for e in energy] == [Decimal("1.5"), Decimal("1.5")]  # 15 + 15 days
        assert [e.amount for e in energy] == [Decimal("888.78"), Decimal("900.00")]
        assert sorted(invoice.tariff_version_ids) == sorted([old.pk, new.pk])
        subscription = [line.amount for line in invoice.lines.filter(component="subscription")]
        assert subscription == [Decimal("50.00"), Decimal("50.00")]

    def test_tariff_change_uses_the_register_at_the_change_date_when_there_is_one(self):
        network = NetworkFactory()
        old = tariff_version(network=network, valid_from=dt.date(2020, 1, 1))
        TariffVersion.objects.filter(pk=old.pk).update(valid_to=MID)
        tariff_version(network=network, valid_from=MID)
        contract = contract_with_connection(network=network)
        for day, value in ((NOV, 1000), (MID, 3000), (DEC, 4000)):
            register(contract.connection, day, Decimal(value))
        bill_month(network, issue=False)
        energy = list(Invoice.objects.get().lines.filter(component="energy").order_by("position"))
        assert [e.quantity for e in energy] == [Decimal("2"), Decimal("1")]

    @pytest.mark.parametrize(
        ("measured", "expected_mwh", "expected_amounts"),
        [
            # a register at the first change: January is measured (7 MWh); February and
            # March share the other 2 MWh by days, 28/59 and 31/59
            (
                (dt.date(2026, 2, 1), 7000),
                # 2000 kWh × 28/59 = 949.1525… → 949.153 kWh; the rest 1050.847 kWh
                ["7", "0.949153", "1.050847"],
                # 7 × 500; 0.949153 × 600 = 569.4918; 1.050847 × 700 = 735.5929
                ["3500.00", "569.49", "735.59"],
            ),
            # a register at the second change: March is measured (1 MWh); January and
            # February share the other 8 MWh, 31/59 and 28/59
            (
                (dt.date(2026, 3, 1), 8000),
                # 8000 kWh × 31/59 = 4203.3898… → 4203.390 kWh; the rest 3796.610 kWh
                ["4.20339", "3.79661", "1"],
                # 4.20339 × 500 = 2101.695 (half up); 3.79661 × 600 = 2277.966; 1 × 700
                ["2101.70", "2277.97", "700.00"],
            ),
        ],
    )
    def test_two_changes_in_a_quarter_and_a_register_at_only_one_of_them(
        self, measured, expected_mwh, expected_amounts
    ):
        """Every kWh between the quarter's registers is billed once: a measured stretch
        is billed as measured, the rest of the quarter is shared by days."""
        network = NetworkFactory()
        energy = [{"type": "energy", "code": "energy", "description": "Energy", "price": ""}]
        starts = [dt.date(2020, 1, 1), dt.date(2026, 2, 1), dt.date(2026, 3, 1)]
        for start, end, price in zip(
            starts, [*starts[1:], None], ["500", "600", "700"], strict=True
        ):
            version = tariff_version(
                network=network, valid_from=start, components=[{**energy[0], "price": price}]
            )
            TariffVersion.objects.filter(pk=version.pk).update(valid_to=end)
        contract = contract_with_connection(network=network, valid_from=dt.date(2025, 1, 1))
        for day, value in ((dt.date(2026, 1, 1), 0), measured, (dt.date(2026, 4, 1), 9000)):
            register(contract.connection, day, Decimal(value))

        bill_month(
            network,
            start=dt.date(2026, 1, 1),
            months=3,
            now=dt.datetime(2026, 4, 2, 8, 0, tzinfo=dt.UTC),
            issue=False,
        )

        lines = list(Invoice.objects.get().lines.filter(component="energy").order_by("position"))
        assert [line.quantity for line in lines] == [Decimal(q) for q in expected_mwh]
        assert sum(line.quantity for line in lines) == Decimal("9")
        assert [line.amount for line in lines] == [Decimal(a) for a in expected_amounts]


@pytest.mark.django_db
@pytest.mark.parametrize(("kwh", "held"), [("7450", False), ("7451", True)])
def test_full_load_in_a_dst_month_counts_its_745_hours(kwh, held):
    """October 2026 in Copenhagen has 745 hours (clocks go back on the 25th): 10 kW at
    full load is 7.450 MWh, which is possible; a kWh more is not."""
    network = NetworkFactory()  # Europe/Copenhagen
    tariff_version(network=network)
    contract = contract_with_connection(network=network)
    register(contract.connection, dt.date(2026, 10, 1), Decimal("0"))
    register(contract.connection, dt.date(2026, 11, 1), Decimal(kwh))

    bill_month(network, start=dt.date(2026, 10, 1), issue=False)

    invoice = Invoice.objects.get()
    assert invoice.held is held
    if held:
        assert "(7.450000 MWh at full load)" in invoice.hold_reason


def test_volume_weighted_temperatures_round_half_up_like_money():
    """30.125 °C is 30.13, not the banker's 30.12: the one rounding rule."""
    from billing.calc import ContractInterval, Register, interval_values

    interval = ContractInterval(1, NOV, DEC, Decimal("10"), Decimal("100"))
    first = Register(1, Decimal("0"), Decimal("0"), Decimal("0"), Decimal("0"), "actual")
    # 8 m³: Δ(°C·m³) 241 → 30.125 °C return, 561 → 70.125 °C flow
    last = Register(2, Decimal("1000"), Decimal("8"), Decimal("561"), Decimal("241"), "actual")

    *_, return_temp, flow_temp = interval_values(interval, first, last, {}.get)

    assert (return_temp, flow_temp) == (Decimal("30.13"), Decimal("70.13"))


@pytest.mark.django_db
@pytest.mark.parametrize("months", [3, 12])
def test_seasonal_prices_over_several_months_use_each_months_measured_energy(months):
    """A quarter or a year priced by season bills each month's energy at its season's
    price where month-start registers exist, not the total shared by days."""
    network = NetworkFactory()
    seasons = [
        {"label": "summer", "months": [5, 6, 7, 8, 9], "price": "300"},
        {"label": "winter", "months": [1, 2, 3, 4, 10, 11, 12], "price": "600"},
    ]
    tariff_version(
        network=network,
        components=[
            {"type": "energy", "code": "energy", "description": "Energy", "seasons": seasons}
        ],
    )
    contract = contract_with_connection(network=network)
    monthly = [3000, 2500, 2000, 1500, 500, 200, 200, 200, 500, 1500, 2500, 3000]  # kWh
    start = dt.date(2026, 4, 1) if months == 3 else dt.date(2026, 1, 1)  # Apr–Jun: 2 seasons
    value = Decimal(10000)
    for month in range(12):
        register(contract.connection, dt.date(2026, month + 1, 1), value)
        value += monthly[month]
    register(contract.connection, dt.date(2027, 1, 1), value)

    bill_month(
        network,
        start=start,
        months=months,
        now=dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC),
        issue=False,
    )

    lines = {
        line.description: line for line in Invoice.objects.get().lines.filter(component="energy")
    }
    if months == 3:
        # April 1.5 MWh winter; May 0.5 + June 0.2 = 0.7 MWh summer
        assert lines["Energy (winter)"].quantity == Decimal("1.5")
        assert lines["Energy (summer)"].quantity == Decimal("0.7")
        assert lines["Energy (summer)"].amount == Decimal("210.00")  # 0.7 × 300
    else:
        # summer May–Sep 1.6 MWh × 300 + winter 16.0 MWh × 600 = 480 + 9,600
        assert lines["Energy (summer)"].quantity == Decimal("1.6")
        assert lines["Energy (winter)"].quantity == Decimal("16")
        assert sum(line.amount for line in lines.values()) == Decimal("10080.00")


@pytest.mark.django_db
@pytest.mark.parametrize("months", [3, 12])
def test_a_price_change_inside_a_quarter_or_year_splits_by_the_month_registers(months):
    """A tariff version changing on 16 August inside a quarter (or the year an annual
    settlement bills) prices each month measured by its month-start registers at the
    version in force, and shares only August's measured energy by days (15/31 and
    16/31), as the monthly bills would: sharing the whole period's energy by days put
    winter's heat at summer's price."""
    network = NetworkFactory()
    energy = {"type": "energy", "code": "energy", "description": "Energy"}
    change = dt.date(2026, 8, 16)
    old = tariff_version(network=network, components=[{**energy, "price": "500"}])
    TariffVersion.objects.filter(pk=old.pk).update(valid_to=change)
    tariff_version(network=network, valid_from=change, components=[{**energy, "price": "600"}])
    contract = contract_with_connection(network=network)
    monthly = [3000, 2500, 2000, 1500, 500, 200, 200, 3100, 500, 1500, 2500, 3000]  # kWh
    value = Decimal(10000)
    for month in range(12):
        register(contract.connection, dt.date(2026, month + 1, 1), value)
        value += monthly[month]
    register(contract.connection, dt.date(2027, 1, 1), value)
    start = dt.date(2026, 7, 1) if months == 3 else dt.date(2026, 1, 1)

    bill_month(
        network,
        start=start,
        months=months,
        now=dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC),
        issue=False,
    )

    lines = list(Invoice.objects.get().lines.filter(component="energy").order_by("position"))
    # August: 3,100 kWh × 15/31 = 1,500 kWh at the old price, 1,600 kWh at the new one
    if months == 3:
        # July 200 + 1,500 = 1.7 MWh × 500; 1,600 + September 500 = 2.1 MWh × 600
        assert [line.quantity for line in lines] == [Decimal("1.7"), Decimal("2.1")]
        assert [line.amount for line in lines] == [Decimal("850.00"), Decimal("1260.00")]
    else:
        # January–July 9,900 + 1,500 = 11.4 MWh × 500; 1,600 + 7,500 = 9.1 MWh × 600
        assert [line.quantity for line in lines] == [Decimal("11.4"), Decimal("9.1")]
        assert [line.amount for line in lines] == [Decimal("5700.00"), Decimal("5460.00")]


@pytest.mark.django_db
def test_a_change_without_a_register_is_measured_from_the_nearest_register_around_it():
    """Two changes in February, a register at the first (10th) only: the second (20th)
    shares what the registers measured from the 10th to 1 March by days, not February's
    whole energy (which would put it below the 10th's register)."""
    network = NetworkFactory()
    energy = {"type": "energy", "code": "energy", "description": "Energy"}
    starts = [dt.date(2020, 1, 1), dt.date(2026, 2, 10), dt.date(2026, 2, 20)]
    for start, end, price in zip(starts, [*starts[1:], None], ["500", "600", "700"], strict=True):
        version = tariff_version(
            network=network, valid_from=start, components=[{**energy, "price": price}]
        )
        TariffVersion.objects.filter(pk=version.pk).update(valid_to=end)
    contract = contract_with_connection(network=network, valid_from=dt.date(2025, 1, 1))
    for day, value in (
        (dt.date(2026, 1, 1), 0),
        (dt.date(2026, 2, 1), 1000),
        (dt.date(2026, 2, 10), 1900),
        (dt.date(2026, 3, 1), 2090),
        (dt.date(2026, 4, 1), 3090),
    ):
        register(contract.connection, day, Decimal(value))

    bill_month(
        network,
        start=dt.date(2026, 1, 1),
        months=3,
        now=dt.datetime(2026, 4, 2, 8, 0, tzinfo=dt.UTC),
        issue=False,
    )

    lines = list(Invoice.objects.get().lines.filter(component="energy").order_by("position"))
    # to the 10th 1,900 kWh; 10th–20th 190 × 10/19 = 100 kWh; then 90 + 1,000 kWh
    assert [line.quantity for line in lines] == [Decimal("1.9"), Decimal("0.1"), Decimal("1.09")]


@pytest.mark.django_db
def test_seasonal_prices_and_a_version_change_in_the_year_price_each_measured_month():
    """A year billed at once (an annual settlement) under seasonal prices with a new
    version from 16 August: each version's segment bills its months' measured energy at
    their season's price (August shared 15/31 and 16/31 around the change), not the
    segment's energy shared among the seasons by days."""
    network = NetworkFactory()
    change = dt.date(2026, 8, 16)

    def seasonal(summer, winter):
        seasons = [
            {"label": "summer", "months": [5, 6, 7, 8, 9], "price": summer},
            {"label": "winter", "months": [1, 2, 3, 4, 10, 11, 12], "price": winter},
        ]
        return [{"type": "energy", "code": "energy", "description": "Energy", "seasons": seasons}]

    old = tariff_version(network=network, components=seasonal("300", "600"))
    TariffVersion.objects.filter(pk=old.pk).update(valid_to=change)
    tariff_version(network=network, valid_from=change, components=seasonal("330", "660"))
    contract = contract_with_connection(network=network)
    monthly = [3000, 2500, 2000, 1500, 500, 200, 200, 3100, 500, 1500, 2500, 3000]  # kWh
    value = Decimal(10000)
    for month in range(12):
        register(contract.connection, dt.date(2026, month + 1, 1), value)
        value += monthly[month]
    register(contract.connection, dt.date(2027, 1, 1), value)

    bill_month(
        network,
        start=dt.date(2026, 1, 1),
        months=12,
        now=dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC),
        issue=False,
    )

    lines = [
        (line.description.split(" (")[1].rstrip(")"), line.quantity, line.amount)
        for line in Invoice.objects.get().lines.filter(component="energy").order_by("position")
    ]
    assert [(season, quantity) for season, quantity, _ in lines] == [
        # May–July 0.9 + August 1–15 1.5 = 2.4 MWh; January–April 9 MWh
        ("summer", Decimal("2.4")),
        ("winter", Decimal("9")),
        # August 16–31 1.6 + September 0.5 = 2.1 MWh; October–December 7 MWh
        ("summer", Decimal("2.1")),
        ("winter", Decimal("7")),
    ]
    assert [amount for *_, amount in lines] == [
        Decimal("720.00"),  # 2.4 × 300
        Decimal("5400.00"),  # 9 × 600
        Decimal("693.00"),  # 2.1 × 330
        Decimal("4620.00"),  # 7 × 660
    ]
