"""Money in the plant cost model and the substitution benchmark is exact (DOMAIN.md §6, STYLE 4).

Physics stays float (temperatures, the Lorenz COP); an energy out of a model (Q / COP, Q / η)
is rounded half up to 1 Wh before it is priced; hourly amounts are exact products of Decimal
energy and price, and every reported figure is rounded once, half up to the cent.  The
expected figures here are worked out with ``decimal`` in the test, not with the code's helpers.
"""

import csv
import datetime as dt
import io
from decimal import ROUND_HALF_UP, localcontext
from decimal import Decimal as D

import pandas as pd
import pytest

from heatutility.money import quantize_money, to_decimal
from tariffs.cop import modelled_cop
from tariffs.costs import UnitParams, operating_cost
from tariffs.models import ElectricityCharge, PriceCap, SpotPrice, UnitHour
from tests.customers.factories import NetworkFactory
from tests.tariffs.factories import PlantUnitFactory

NOW = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
DAY = (dt.date(2026, 1, 5), dt.date(2026, 1, 6))  # a Copenhagen day: 2026-01-04 23:00 UTC on
FIRST_HOUR = pd.Timestamp("2026-01-04 23:00", tz="UTC")
CHARGES = {"grid": D("30.2000"), "system": D("10.7000"), "tax": D("4.0000")}  # 44.9 DKK/MWh


def wh(mwh: D) -> D:
    """An energy rounded half up to 1 Wh (6 decimals of MWh)."""
    return mwh.quantize(D("0.000001"), rounding=ROUND_HALF_UP)


def cents(amount: D) -> D:
    return amount.quantize(D("0.01"), rounding=ROUND_HALF_UP)


def hours(n: int) -> list[pd.Timestamp]:
    return [FIRST_HOUR + pd.Timedelta(hours=h) for h in range(n)]


def electricity_prices(area: str, spots: list[D]) -> None:
    """Spot prices for the first hours of ``DAY`` and the three constant charges."""
    SpotPrice.objects.bulk_create(
        SpotPrice(price_area=area, hour_start=t.to_pydatetime(), price_per_mwh=spot)
        for t, spot in zip(hours(len(spots)), spots, strict=True)
    )
    for kind, amount in CHARGES.items():
        ElectricityCharge.objects.create(
            price_area=area, kind=kind, valid_from=dt.date(2026, 1, 1), amount_per_mwh=amount
        )


def old_float_money(amounts: list[float]) -> D:
    """What the float path did: a float sum, rounded to 6 decimals, then half up to the cent."""
    return quantize_money(to_decimal(round(float(pd.Series(amounts).sum()), 6)), "DKK")


def frame(units: dict[int, dict], spot: list[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pure-call frames (floats, as the tests of the cost model pass them)."""
    n = len(spot)
    t = hours(n)
    rows = []
    for unit_id, cols in units.items():
        rows.append(
            pd.DataFrame(
                {
                    "unit_id": unit_id,
                    "hour_start": t,
                    "heat_mwh": cols["heat"],
                    "electricity_mwh": [None] * n,
                    "fuel_mwh": [None] * n,
                    "source_in_c": cols.get("source_in", [None] * n),
                    "source_out_c": cols.get("source_out", [None] * n),
                    "supply_c": cols.get("supply", [None] * n),
                    "return_c": cols.get("return", [None] * n),
                }
            )
        )
    prices = pd.DataFrame(
        {"hour_start": t, "spot": spot, **{k: float(v) for k, v in CHARGES.items()}}
    )
    return pd.concat(rows, ignore_index=True), prices


HP = UnitParams(
    id=1,
    code="hp",
    kind="heat_pump",
    capacity_mw=D(10),
    lorenz_efficiency=D("0.5"),
    om_variable_per_mwh=D("2.5"),
)
EB = UnitParams(
    id=2, code="eb", kind="electric_boiler", capacity_mw=D(5), boiler_efficiency=D("0.99")
)
FB = UnitParams(
    id=3,
    code="fb",
    kind="fuel_boiler",
    capacity_mw=D(20),
    boiler_efficiency=D("0.93"),
    fuel_price_per_mwh=D("310.5"),
    co2_t_per_mwh_fuel=D("0.202"),
    co2_price_per_t=D("85.25"),
    om_variable_per_mwh=D("1.75"),
)
FUEL_PRICE = D("310.5") + D("0.202") * D("85.25")  # 327.7205 DKK per MWh of fuel


def a_week():
    """168 hours of a heat pump (modelled COP), an electric and a fuel boiler (Q/η), with
    hourly spot prices that move; the decimals each value was written as, and the frames."""
    n = 168
    heat = {
        unit: [D(f"{1 + (h * k) % 9}.{(h * k * 7919) % 10**6:06d}") for h in range(n)]
        for unit, k in ((1, 5), (2, 7), (3, 11))
    }
    spot = [D(-40) + D((h * 104729) % 6_000_000).scaleb(-4) for h in range(n)]
    temps = {
        "source_in": [4 + (h % 7) * 0.5 for h in range(n)],
        "source_out": [1 + (h % 5) * 0.25 for h in range(n)],
        "supply": [70 + (h % 11) for h in range(n)],
        "return": [38 + (h % 6) for h in range(n)],
    }
    units = {
        1: {"heat": [float(q) for q in heat[1]], **temps},
        2: {"heat": [float(q) for q in heat[2]]},
        3: {"heat": [float(q) for q in heat[3]]},
    }
    hours_frame, prices = frame(units, [float(s) for s in spot])
    return heat, spot, temps, hours_frame, prices


class TestOperatingCostIsPricedOnDecimalEnergy:
    def test_the_cost_is_the_sum_of_wh_rounded_energy_times_price_worked_out_independently(self):
        heat, spot, temps, hours_frame, prices = a_week()
        result = operating_cost(
            hours=hours_frame,
            prices=prices,
            units=[HP, EB, FB],
            period_start=dt.date(2026, 1, 5),
            period_end=dt.date(2026, 1, 12),
            currency="DKK",
        )
        price = [s + sum(CHARGES.values()) for s in spot]
        # the COP is physics (a float); η 0.5 × Lorenz of the same temperatures
        cop = modelled_cop(
            efficiency=0.5,
            sink_in_c=temps["return"],
            sink_out_c=temps["supply"],
            source_in_c=temps["source_in"],
            source_out_c=temps["source_out"],
        )
        with localcontext() as ctx:
            ctx.prec = 80
            hp_mwh = [wh(q / D(repr(c))) for q, c in zip(heat[1], cop.tolist(), strict=True)]
            eb_mwh = [wh(q / D("0.99")) for q in heat[2]]
            fuel_mwh = [wh(q / D("0.93")) for q in heat[3]]
            hp_cost = sum(e * p for e, p in zip(hp_mwh, price, strict=True))
            eb_cost = sum(e * p for e, p in zip(eb_mwh, price, strict=True))
            fuel_cost = sum(f * FUEL_PRICE for f in fuel_mwh)
            om = [sum(heat[1]) * D("2.5"), sum(heat[3]) * D("1.75")]
        per_unit = result.per_unit
        assert (per_unit["hp"]["electricity_mwh"], per_unit["hp"]["electricity_cost"]) == (
            sum(hp_mwh),
            cents(hp_cost),
        )
        assert (per_unit["eb"]["electricity_mwh"], per_unit["eb"]["electricity_cost"]) == (
            sum(eb_mwh),
            cents(eb_cost),
        )
        assert (per_unit["fb"]["fuel_mwh"], per_unit["fb"]["fuel_cost"]) == (
            sum(fuel_mwh),
            cents(fuel_cost),
        )
        # network figures: the per-unit amounts (each rounded once) added up
        figures = result.figures
        assert figures["electricity_mwh"] == sum(hp_mwh) + sum(eb_mwh)
        assert figures["electricity_cost"] == cents(hp_cost) + cents(eb_cost)
        assert figures["om_variable_cost"] == cents(om[0]) + cents(om[1])
        assert figures["variable_cost"] == sum(map(cents, [hp_cost, eb_cost, fuel_cost, *om]))
        # the hourly series carry the very energies and amounts that were summed
        hourly = result.hourly
        assert hourly.loc[hourly["unit"] == "hp", "electricity_used_mwh"].tolist() == hp_mwh
        assert hourly.loc[hourly["unit"] == "eb", "electricity_price"].tolist() == price
        assert sum(hourly.loc[hourly["unit"] == "hp", "electricity_cost"]) == hp_cost

    def test_energy_times_a_constant_price_is_the_reported_cost(self):
        # 24 h × 1 MWh of heat at a constant 700.0123 DKK/MWh (spot 655.1123 + 44.9 charges):
        # the boiler's 1/0.99 = 1.010101 MWh an hour → 24.242424 MWh; × 700.0123 = 16,969.99498…
        # → 16,969.99 both ways.  Pricing the unrounded 24/0.99 MWh gave 16,969.99515… → 16,970.00,
        # next to a reported 24.242424 MWh that × 700.0123 makes 16,969.99.
        n = 24
        hours_frame, prices = frame(
            {
                1: {
                    "heat": [3.0] * n,
                    "source_in": [4.0 + h / 4 for h in range(n)],
                    "source_out": [1.0] * n,
                    "supply": [75.0] * n,
                    "return": [40.0] * n,
                },
                2: {"heat": [1.0] * n},
                3: {"heat": [1.0] * n},
            },
            [655.1123] * n,
        )
        result = operating_cost(
            hours=hours_frame,
            prices=prices,
            units=[HP, EB, FB],
            period_start=DAY[0],
            period_end=DAY[1],
            currency="DKK",
        )
        price = D("700.0123")
        for code in ("hp", "eb"):
            unit = result.per_unit[code]
            assert unit["electricity_cost"] == quantize_money(
                unit["electricity_mwh"] * price, "DKK"
            )
        assert result.per_unit["eb"]["electricity_mwh"] == D("24.242424")
        assert result.per_unit["eb"]["electricity_cost"] == D("16969.99")
        fb = result.per_unit["fb"]
        assert fb["fuel_cost"] == quantize_money(fb["fuel_mwh"] * FUEL_PRICE, "DKK")
        assert fb["om_variable_cost"] == quantize_money(fb["heat_mwh"] * D("1.75"), "DKK")
        assert old_float_money([(1 / 0.99) * 700.0123] * n) == D("16970.00")


@pytest.mark.django_db
class TestOperatingCostFromTheDatabase:
    @pytest.fixture
    def cost(self):
        """An electric boiler's two metered hours: 1.000000 MWh at 100.0000 DKK/MWh and 4 Wh at
        1,249.9999 DKK/MWh: exactly 100.0000000000 + 0.0049999996 = 100.0049999996 DKK."""
        network = NetworkFactory(code="exact-cent", price_area="DK1")
        boiler = PlantUnitFactory(
            plant__network=network,
            code="eb",
            kind="electric_boiler",
            source_type="",
            boiler_efficiency=D("0.99"),
        )
        electricity_prices("DK1", [D("55.1000"), D("1205.0999")])  # + 44.9 charges
        UnitHour.objects.bulk_create(
            UnitHour(unit=boiler, hour_start=t.to_pydatetime(), heat_mwh=q, electricity_mwh=e)
            for t, q, e in zip(
                hours(2),
                (D("0.990000"), D("0.000004")),
                (D("1.000000"), D("0.000004")),
                strict=True,
            )
        )
        from tariffs.services import operating_cost_compute

        return operating_cost_compute(
            network=network, period_start=DAY[0], period_end=DAY[1], now=NOW
        )

    def test_an_amount_a_hair_below_the_half_cent_is_rounded_down(self, cost):
        # 100.0049999996 is below 100.005: half up to the cent gives 100.00
        assert cost.results["figures"]["electricity_cost"] == "100.00"
        assert cost.results["per_unit"]["eb"]["electricity_cost"] == "100.00"
        assert cost.results["figures"]["electricity_mwh"] == "1.000004"
        # the float path summed 100.0049999996 as a float, rounded it to 6 decimals (100.005000)
        # and then half up: 100.01, a cent the amount does not reach
        float_prices = [55.1 + 30.2 + 10.7 + 4.0, 1205.0999 + 30.2 + 10.7 + 4.0]
        assert old_float_money([1.0 * float_prices[0], 0.000004 * float_prices[1]]) == D("100.01")

    def test_the_stored_hourly_series_reproduce_every_figure(self, cost):
        # a regulator sums the stored hours with decimals: energy × price, to the figure's cent
        rows = list(csv.DictReader(io.StringIO(cost.hourly_csv)))
        energy = sum(D(r["electricity_used_mwh"]) for r in rows)
        amount = sum(D(r["electricity_used_mwh"]) * D(r["electricity_price"]) for r in rows)
        assert D(cost.results["figures"]["electricity_mwh"]) == energy
        assert D(cost.results["figures"]["electricity_cost"]) == cents(amount) == D("100.00")
        assert [r["electricity_price"] for r in rows] == ["100.0000", "1249.9999"]
        assert sum(D(r["electricity_cost"]) for r in rows) == amount == D("100.0049999996")


@pytest.mark.django_db
class TestSubstitutionBenchmarkIsExact:
    def test_wh_rounded_hourly_electricity_priced_exactly_is_the_benchmark(self):
        # the network's heat profile over the day: 8 hours of 2 MWh, 16 of 1 MWh (Σ 32), so the
        # shares are 1/16 and 1/32; the reference house uses 18.1 MWh at SCOP 2.7
        network = NetworkFactory(code="exact-benchmark", price_area="DK1")
        unit = PlantUnitFactory(plant__network=network, code="hp")
        heat = [D(2) if h % 3 == 0 else D(1) for h in range(24)]
        assert sum(heat) == 32
        UnitHour.objects.bulk_create(
            UnitHour(unit=unit, hour_start=t.to_pydatetime(), heat_mwh=q, electricity_mwh=D(1))
            for t, q in zip(hours(24), heat, strict=True)
        )
        spots = [D("100.1") + D(h) * D("7.0003") for h in range(24)]
        electricity_prices("DK1", spots)
        inputs = {
            "reference": {"energy_mwh": "18.1", "heated_area_m2": "130", "contracted_kw": "9"},
            "individual_scop": "2.7",
            "consumer_extra_per_mwh": "123.4567",
            "investment": "0",
            "om_per_year": "1500",
            "include_utility_tariffs": True,
        }
        from tariffs.services import price_cap_compute

        cap = price_cap_compute(
            network=network,
            method=PriceCap.Method.SUBSTITUTION,
            period_start=DAY[0],
            period_end=DAY[1],
            inputs=inputs,
            now=NOW,
        )
        with localcontext() as ctx:
            ctx.prec = 80
            energy = [wh(q / 32 * D("18.1") / D("2.7")) for q in heat]
            cost = sum(
                e * (s + sum(CHARGES.values()) + D("123.4567"))
                for e, s in zip(energy, spots, strict=True)
            )
        assert D(cap.results["electricity_mwh"]) == sum(energy)
        assert D(cap.results["electricity_cost"]) == cost
        assert cap.reference_total_cap == cents(cost + 1500)
        # the benchmark's seasonal COP is the model's: 18.1 MWh / (18.1 / 2.7)
        assert D(cap.results["seasonal_cop"]) == D("2.7")
