"""COP, capital, hourly electricity cost and the four cap methods against hand-worked numbers."""

import datetime as dt
from decimal import Decimal as D

import pandas as pd
import pytest

from tariffs.caps import (
    CapInputsInvalid,
    CapLimits,
    IndexClause,
    IndexTerm,
    check_against_cap,
    cost_based_cap,
    indexation_cap,
    indexation_factor,
    maximum_price_cap,
    rebase_index_base,
    substitution_cap,
)
from tariffs.cop import carnot_cop, log_mean_temperature_k, lorenz_cop, modelled_cop, seasonal_cop
from tariffs.costs import UnitParams, annuity, depreciation_with_interest, operating_cost
from tariffs.published import PUBLISHED_TARIFFS
from tariffs.rating import Determinants, TariffSpec, components_from_data
from tariffs.units import convert_energy, convert_power, to_decimal_exact


class TestUnits:
    def test_energy_round_trips_exactly(self):
        # 18.1 MWh = 65.16 GJ = 18,100 kWh; and back without loss
        assert to_decimal_exact(convert_energy(D("18.1"), "MWh", "GJ")) == D("65.16")
        assert convert_energy(
            convert_energy(D("18.1"), "MWh", "GJ"), "GJ", "MWh"
        ) == convert_energy(D("18.1"), "MWh", "MWh")
        assert to_decimal_exact(convert_energy(D("18.1"), "MWh", "kWh")) == D("18100")

    def test_power_units(self):
        # 1 Mcal/h = 4.1868 MJ / 3600 s = 1.163 kW; 500 l/h at ΔT 30 K = 500 × 30 × 1.163 W = 17.445 kW
        assert to_decimal_exact(convert_power(D("1"), "Mcal/h", "kW")) == D("1.163")
        assert to_decimal_exact(convert_power(D("500"), "l/h", "kW", delta_t_k=D("30"))) == D(
            "17.445"
        )
        assert to_decimal_exact(convert_power(D("2.5"), "MW", "kW")) == D("2500")


class TestCop:
    def test_lorenz_cop_of_a_seawater_heat_pump(self):
        # sink 40 → 80 °C: T̄ = 40 / ln(353.15/313.15) = 332.749 K; source 4 → 1 °C: T̄ = 3 / ln(277.15/274.15) = 275.647 K
        # COP_L = 332.749 / 57.102 = 5.8273; η 0.55 → 3.205 (DEA sheet 40 name-plate 3.4 implies η ≈ 0.58)
        assert log_mean_temperature_k(40, 80) == pytest.approx(332.7494, abs=1e-3)
        assert lorenz_cop(
            sink_in_c=40, sink_out_c=80, source_in_c=4, source_out_c=1
        ) == pytest.approx(5.8273, abs=1e-4)
        assert modelled_cop(
            efficiency=0.55, sink_in_c=40, sink_out_c=80, source_in_c=4, source_out_c=1
        ) == pytest.approx(3.2050, abs=1e-4)

    def test_carnot_and_equal_temperatures(self):
        # 353.15 / 76 = 4.6467
        assert carnot_cop(sink_c=80, source_c=4) == pytest.approx(4.6467, abs=1e-4)
        assert log_mean_temperature_k(50, 50) == pytest.approx(323.15)

    def test_seasonal_cop_is_energy_weighted(self):
        # hours: 10 MWh at COP 2 (5 MWh el) and 1 MWh at COP 5 (0.2 MWh el): ΣQ/ΣE = 11/5.2 = 2.1154, not (2+5)/2
        assert seasonal_cop([10, 1], [5, 0.2]) == pytest.approx(2.11538, abs=1e-5)


class TestCapital:
    def test_annuity(self):
        # 1,000,000 × 0.04 / (1 − 1.04^−25) = 1,000,000 × 0.0640120 = 64,011.96
        assert round(annuity(investment=D(1_000_000), rate=D("0.04"), years=25), 2) == D("64011.96")
        assert annuity(investment=D(1000), rate=D(0), years=4) == D(250)

    def test_depreciation_with_interest(self):
        # year 3 of 10: 100,000/10 = 10,000 + 5 % of the book value 80,000 = 4,000 → 14,000
        assert depreciation_with_interest(
            investment=D(100_000), rate=D("0.05"), years=10, year_index=3
        ) == D(14000)


def _hours():
    t0 = pd.Timestamp("2026-01-01 00:00", tz="UTC")
    hp = pd.DataFrame(
        {
            "unit_id": 1,
            "hour_start": [
                t0,
                t0 + pd.Timedelta(hours=1),
                t0 + pd.Timedelta(hours=2),
                t0 + pd.Timedelta(hours=3),
            ],
            "heat_mwh": [12.0, 12.0, 12.0, 10.0],
            "electricity_mwh": [4.0, 4.0, 4.0, None],  # last hour not metered → modelled COP
            "fuel_mwh": [None] * 4,
            "source_in_c": [10.0] * 4,
            "source_out_c": [5.0] * 4,
            "supply_c": [70.0] * 4,
            "return_c": [40.0] * 4,
        }
    )
    boiler = hp.assign(unit_id=2, heat_mwh=[0.0, 0.0, 0.0, 1.98], electricity_mwh=[None] * 4)
    prices = pd.DataFrame(
        {
            "hour_start": hp["hour_start"],
            "spot": [500.0, -100.0, 200.0, 300.0],
            "grid": [100.0] * 4,
            "system": [20.0] * 4,
            "tax": [10.0] * 4,
        }
    )
    return pd.concat([hp, boiler], ignore_index=True), prices


class TestOperatingCost:
    def test_hourly_electricity_cost_with_a_negative_price_hour(self):
        # prices/MWh: 500+130 = 630, −100+130 = 30 (negative spot, still a cost), 330, 430
        # metered hours: 4 × 630 + 4 × 30 + 4 × 330 = 3,960.00
        # hour 4: COP = 0.5 × Lorenz(40→70 / 10→5) = 0.5 × 6.93591 = 3.46796 → 10 / 3.46796 = 2.883542 MWh × 430 = 1,239.92
        # electric boiler (η 0.99): 1.98 / 0.99 = 2 MWh × 430 = 860.00
        hours, prices = _hours()
        units = [
            UnitParams(
                id=1,
                code="hp",
                kind="heat_pump",
                capacity_mw=D(10),
                lorenz_efficiency=D("0.5"),
                om_fixed_per_mw_year=D(0),
                om_variable_per_mwh=D(2),
            ),
            UnitParams(
                id=2,
                code="eb",
                kind="electric_boiler",
                capacity_mw=D(5),
                boiler_efficiency=D("0.99"),
            ),
        ]
        result = operating_cost(
            hours=hours,
            prices=prices,
            units=units,
            period_start=dt.date(2026, 1, 1),
            period_end=dt.date(2026, 1, 2),
            currency="DKK",
            loss_share=D("0.2"),
        )
        assert result.per_unit["hp"]["electricity_cost"] == D("5199.92")  # 3,960.00 + 1,239.92
        assert result.per_unit["eb"]["electricity_cost"] == D("860.00")
        # variable O&M 2 × 46 MWh = 92.00; heat 47.98 MWh produced, sold 80 % = 38.384
        assert result.figures["om_variable_cost"] == D("92.00")
        assert result.figures["heat_produced_mwh"] == D("47.980000")
        assert result.figures["heat_sold_mwh"] == D("38.384000")
        assert result.figures["total_cost"] == D("6151.92")
        # 6,151.92 / 47.98 = 128.218 → 128.22; / 38.384 = 160.2731 → 160.27
        assert result.figures["cost_per_mwh_produced"] == D("128.22")
        assert result.figures["cost_per_mwh_sold"] == D("160.27")
        # seasonal COP measured 36/12 = 3; modelled over the same hours = 3.4680
        assert result.per_unit["hp"]["seasonal_cop_measured"] == D("3.0")
        assert result.per_unit["hp"]["seasonal_cop_modelled"] == D("3.468")

    def test_missing_price_is_refused(self):
        hours, prices = _hours()
        with pytest.raises(ValueError, match="no electricity price"):
            operating_cost(
                hours=hours,
                prices=prices.iloc[:2],
                currency="DKK",
                units=[
                    UnitParams(id=1, code="hp", kind="heat_pump", capacity_mw=D(1)),
                    UnitParams(id=2, code="eb", kind="electric_boiler", capacity_mw=D(1)),
                ],
                period_start=dt.date(2026, 1, 1),
                period_end=dt.date(2026, 1, 2),
            )


class TestCaps:
    def test_cost_based(self):
        # costs 6.0 M variable + 4.0 M fixed; 0.5 M over-recovered last year shared 60/40
        # energy (6.0 − 0.3) M / 50,000 MWh = 114.00; fixed 3.8 M × 20 % / 1,000 = 760.00; 3.8 M × 80 % / 12,000 kW = 253.33
        r = cost_based_cap(
            currency="DKK",
            variable_costs=D(6_000_000),
            fixed_costs=D(4_000_000),
            over_recovery=D(500_000),
            approved_return=D(0),
            forecast_sales_mwh=D(50_000),
            connections=1000,
            contracted_kw_total=D(12_000),
        )
        assert (r.limits.energy_per_mwh, r.limits.fixed_per_year, r.limits.capacity_per_kw) == (
            D("114.00"),
            D("760.00"),
            D("253.33"),
        )
        assert r.figures["allowed_revenue"] == "9500000"

    def test_indexation_factor_and_price_neutral_rebasing(self):
        # P = 80 × (0.2 + 0.5 × 120/100 + 0.3 × 110/100) = 80 × 1.13 = 90.40
        clause = IndexClause(
            price="energy",
            base_price=D(80),
            fixed_weight=D("0.2"),
            cost_terms=(IndexTerm("electricity", D("0.5"), D(100), D(120)),),
            market_term=IndexTerm("destatis_heat", D("0.3"), D(100), D(110)),
        )
        assert indexation_factor(clause) == D("1.13")
        assert indexation_cap(currency="EUR", clauses=[clause]).limits.energy_per_mwh == D("90.40")
        # the electricity index is rebased: 125 on the old series = 100 on the new one
        new_base = rebase_index_base(base_value=D(100), old_at_link=D(125), new_at_link=D(100))
        rebased = IndexClause(
            price="energy",
            base_price=D(80),
            fixed_weight=D("0.2"),
            cost_terms=(IndexTerm("electricity", D("0.5"), new_base, D(120) * D(100) / D(125)),),
            market_term=IndexTerm("destatis_heat", D("0.3"), D(100), D(110)),
        )
        assert new_base == D(80)
        assert indexation_factor(rebased) == D("1.13")

    def test_indexation_weights_must_sum_to_one(self):
        clause = IndexClause(
            price="energy",
            base_price=D(80),
            fixed_weight=D("0.3"),
            cost_terms=(IndexTerm("el", D("0.5"), D(100), D(120)),),
            market_term=IndexTerm("m", D("0.3"), D(100), D(110)),
        )
        with pytest.raises(CapInputsInvalid, match=r"sum to 1\.1"):
            indexation_factor(clause)

    def test_maximum_price_incl_vat(self):
        # 50.00 EUR/GJ × 3.6 = 180.00 EUR/MWh incl. VAT
        r = maximum_price_cap(
            currency="EUR", fixed_per_year_incl_vat=D("600"), price_per_gj_incl_vat=D("50")
        )
        assert (r.limits.energy_per_mwh, r.limits.fixed_per_year, r.limits.includes_vat) == (
            D("180.00"),
            D("600.00"),
            True,
        )

    def test_substitution_benchmark(self):
        # 20 MWh spread over 4 hours (5 MWh each) at COP 3: 5/3 MWh, rounded half up to 1 Wh before it
        # is priced = 1.666667 MWh an hour; electricity (spot + 1,000 consumer tariffs)
        # 2,000 + 3,000 + 900 (spot −100) + 1,500 = 7,400 → 1.666667 × 7,400 = 12,333.3358 (exact)
        # + annuity 100,000 × 0.04 / (1 − 1.04^−15) = 8,994.1100 + O&M 1,500 = 22,827.4458 → 22,827.45
        # (pricing the unrounded 5/3 MWh gave 12,333.3333… and 22,827.44)
        ref = Determinants(
            period_start=dt.date(2026, 1, 1),
            period_end=dt.date(2027, 1, 1),
            energy_mwh=D(20),
            volume_m3=D(0),
            return_temp_c=None,
            flow_temp_c=None,
            contracted_kw=D(10),
            heated_area_m2=D(130),
        )
        r = substitution_cap(
            currency="DKK",
            hourly_electricity_price=[1000, 2000, -100, 500],
            hourly_demand_share=[0.25] * 4,
            hourly_cop=3.0,
            annual_demand_mwh=D(20),
            consumer_extra_per_mwh=D(1000),
            investment=D(100_000),
            lifetime_years=15,
            interest_rate=D("0.04"),
            om_per_year=D(1500),
            reference=ref,
        )
        assert r.limits.reference_total == D("22827.45")
        assert (r.figures["electricity_mwh"], r.figures["electricity_cost"]) == (
            "6.6666680000",
            "12333.3358000000",
        )

    def test_check_names_component_cap_and_excess(self):
        entry = PUBLISHED_TARIFFS["hofor-2024"]
        spec = TariffSpec(
            version_id=1,
            tariff_code="hofor",
            currency="DKK",
            vat_rate=D("0.25"),
            components=components_from_data(entry["components"]),
        )
        excesses = check_against_cap(
            spec=spec,
            cap=CapLimits(currency="DKK", energy_per_mwh=D("580.00"), capacity_per_kw=D("250")),
        )
        assert [e.message() for e in excesses] == [
            "Component 'energy' 592.52 DKK/MWh exceeds the energy cap 580.00 DKK/MWh by 12.52 DKK/MWh."
        ]


def test_cop_gap_is_reported_per_month():
    hours, prices = _hours()
    units = [
        UnitParams(
            id=1, code="hp", kind="heat_pump", capacity_mw=D(10), lorenz_efficiency=D("0.5")
        ),
        UnitParams(id=2, code="eb", kind="electric_boiler", capacity_mw=D(5)),
    ]
    result = operating_cost(
        hours=hours,
        prices=prices,
        units=units,
        period_start=dt.date(2026, 1, 1),
        period_end=dt.date(2026, 1, 2),
        currency="DKK",
        time_zone="Europe/Copenhagen",
    )
    (month,) = result.cop_by_month["hp"]
    # measured over the three metered hours 36/12 = 3.0; modelled 3.4680; gap −0.468
    assert (
        month["month"],
        month["seasonal_cop_measured"],
        month["seasonal_cop_modelled"],
        month["gap"],
    ) == (
        "2026-01",
        D("3.0"),
        D("3.468"),
        D("-0.468"),
    )


def test_peak_boiler_fuel_and_co2_fixed_om_capital_network_costs_and_losses():
    t0 = pd.Timestamp("2026-01-10 00:00", tz="UTC")
    hours = pd.DataFrame(
        {
            "unit_id": [1, 1],
            "hour_start": [t0, t0 + pd.Timedelta(hours=1)],
            "heat_mwh": [9.0, 4.5],
            "electricity_mwh": [None, None],
            "fuel_mwh": [None, 5.0],  # first hour: fuel = heat / η = 10 MWh
            "source_in_c": [None] * 2,
            "source_out_c": [None] * 2,
            "supply_c": [None] * 2,
            "return_c": [None] * 2,
        }
    )
    prices = pd.DataFrame(
        {
            "hour_start": hours["hour_start"],
            "spot": [100.0, 100.0],
            "grid": [0.0] * 2,
            "system": [0.0] * 2,
            "tax": [0.0] * 2,
        }
    )
    units = [
        UnitParams(
            id=1,
            code="fb",
            kind="fuel_boiler",
            capacity_mw=D(10),
            boiler_efficiency=D("0.9"),
            fuel_price_per_mwh=D(300),
            co2_t_per_mwh_fuel=D("0.2"),
            co2_price_per_t=D(500),
            om_fixed_per_mw_year=D(12000),
            om_variable_per_mwh=D(3),
            investment=D(1_000_000),
            interest_rate=D("0.05"),
            lifetime_years=20,
        ),
        UnitParams(
            id=2,
            code="fb2",
            kind="fuel_boiler",
            capacity_mw=D(5),
            investment=D(600_000),
            interest_rate=D("0.04"),
            lifetime_years=10,
            capital_method="depreciation",
            year_index=3,
        ),
    ]
    # January = exactly 1/12 of a year
    r = operating_cost(
        hours=hours,
        prices=prices,
        units=units,
        period_start=dt.date(2026, 1, 1),
        period_end=dt.date(2026, 2, 1),
        currency="DKK",
        heat_sold_mwh=D(10),
        network_costs_per_year=D(120_000),
    )
    # fuel (10 + 5) MWh × (300 + 0.2 t × 500) = 6,000.00
    assert r.figures["fuel_cost"] == D("6000.00")
    # variable O&M 3 × 13.5 = 40.50; fixed O&M 12,000 × 10 MW / 12 = 10,000.00
    assert (r.figures["om_variable_cost"], r.figures["om_fixed_cost"]) == (
        D("40.50"),
        D("10000.00"),
    )
    # capital: annuity 1,000,000 × 0.05 / (1 − 1.05^−20) = 80,242.59/yr → /12 = 6,686.88;
    # depreciation 60,000 + 4 % of the year-3 book value 480,000 = 79,200/yr → /12 = 6,600.00
    assert (r.per_unit["fb"]["capital_cost"], r.per_unit["fb2"]["capital_cost"]) == (
        D("6686.88"),
        D("6600.00"),
    )
    assert r.figures["network_cost"] == D("10000.00")
    # losses = produced − sold = 13.5 − 10
    assert (r.figures["heat_produced_mwh"], r.figures["network_losses_mwh"]) == (
        D("13.500000"),
        D("3.500000"),
    )
    # total 6,040.50 variable + 33,286.88 fixed = 39,327.38; / 13.5 = 2,913.14; / 10 = 3,932.74
    assert r.figures["total_cost"] == D("39327.38")
    assert (r.figures["cost_per_mwh_produced"], r.figures["cost_per_mwh_sold"]) == (
        D("2913.14"),
        D("3932.74"),
    )


def test_a_fuel_boiler_hour_with_heat_but_a_zero_fuel_reading_is_costed_at_heat_over_efficiency():
    # A SCADA export that writes 0 where the fuel meter has no value: 9 MWh of heat cannot
    # have burnt no fuel.  As for electricity (and the production mix), only a reading above
    # 0 is a metered value; the hour is modelled as Q / η = 9 / 0.9 = 10 MWh × 300 = 3,000.00.
    t0 = pd.Timestamp("2026-01-10 00:00", tz="UTC")
    hours = pd.DataFrame(
        {
            "unit_id": [1, 1],
            "hour_start": [t0, t0 + pd.Timedelta(hours=1)],
            "heat_mwh": [D("9"), D("0")],
            "electricity_mwh": [None, None],
            "fuel_mwh": [D("0"), D("0.5")],  # hour 2: standby burn, metered
            "source_in_c": [None] * 2,
            "source_out_c": [None] * 2,
            "supply_c": [None] * 2,
            "return_c": [None] * 2,
        }
    )
    prices = pd.DataFrame(
        {
            "hour_start": hours["hour_start"],
            "spot": [D(100)] * 2,
            "grid": [D(0)] * 2,
            "system": [D(0)] * 2,
            "tax": [D(0)] * 2,
        }
    )
    units = [
        UnitParams(
            id=1,
            code="fb",
            kind="fuel_boiler",
            capacity_mw=D(10),
            boiler_efficiency=D("0.9"),
            fuel_price_per_mwh=D(300),
        )
    ]
    r = operating_cost(
        hours=hours,
        prices=prices,
        units=units,
        period_start=dt.date(2026, 1, 10),
        period_end=dt.date(2026, 1, 11),
        currency="DKK",
    )
    # 10 MWh modelled + 0.5 MWh metered = 10.5 MWh × 300 = 3,150.00
    assert r.per_unit["fb"]["fuel_mwh"] == D("10.500000")
    assert r.figures["fuel_cost"] == D("3150.00")
