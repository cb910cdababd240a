"""Audit of ``tariffs.rating``: edge inputs and explanations, figures worked out by hand
(net, one rounding per line, half up)."""

import datetime as dt
from decimal import Decimal as D

from tariffs.rating import Determinants, TariffSpec, components_from_data, rate

# winter 500, summer 300 DKK/MWh
SEASONAL_ENERGY = {
    "type": "energy",
    "code": "energy",
    "description": "Energy",
    "seasons": [
        {"label": "winter", "months": [1, 2, 3, 10, 11, 12], "price": "500"},
        {"label": "summer", "months": [4, 5, 6, 7, 8, 9], "price": "300"},
    ],
}


def det(start, end, *, mwh="10", m3="100", return_c=None, flow_c=None, by_month=None):
    return Determinants(
        period_start=start,
        period_end=end,
        energy_mwh=D(mwh),
        volume_m3=D(m3),
        return_temp_c=None if return_c is None else D(return_c),
        flow_temp_c=None if flow_c is None else D(flow_c),
        contracted_kw=D("10"),
        heated_area_m2=D("130"),
        energy_by_month=by_month,
    )


def make(components):
    return TariffSpec(
        version_id=1,
        tariff_code="audit",
        currency="DKK",
        vat_rate=D("0.25"),
        components=components_from_data(components),
    )


DAY = dt.date(2026, 3, 10)
YEAR = (dt.date(2026, 1, 1), dt.date(2027, 1, 1))

ENERGY_100 = {"type": "energy", "code": "energy", "description": "Energy", "price": "100"}


class TestZeroLengthPeriod:
    def test_block_prices_over_a_zero_length_period_do_not_crash(self):
        spec = make(
            [
                {
                    "type": "energy",
                    "code": "energy",
                    "description": "Energy",
                    "blocks": [{"upto": "10", "price": "500"}, {"price": "400"}],
                },
            ]
        )
        # no days: the annual limits scale to 0 MWh, so all 5 MWh fall above them
        lines = rate(determinants=det(DAY, DAY, mwh="5"), tariff=spec)
        assert [(ln.description, ln.quantity, ln.amount) for ln in lines] == [
            ("Energy (above 10 MWh/year)", D("5.000000"), D("2000.00"))
        ]
        assert lines[0].explanation == "5 MWh × 400.00 DKK/MWh"

    def test_seasonal_energy_of_a_zero_length_period_is_still_billed(self):
        spec = make([SEASONAL_ENERGY])
        # no day to share by: the 5 MWh are priced in the season of the period's month (March)
        lines = rate(determinants=det(DAY, DAY, mwh="5"), tariff=spec)
        assert [(ln.description, ln.quantity, ln.amount) for ln in lines] == [
            ("Energy (winter)", D("5.000000"), D("2500.00"))
        ]
        assert lines[0].explanation == "5 MWh × 500.00 DKK/MWh"

    def test_zero_energy_seasons_keep_their_lines_unchanged(self):
        spec = make([SEASONAL_ENERGY])
        assert rate(determinants=det(DAY, DAY, mwh="0"), tariff=spec) == []


class TestReturnTemperature:
    # Løjt-style: return target 40 °C, 3 °C allowance, 2 % of the energy charge per °C above
    def spec(self, **extra):
        return make(
            [
                ENERGY_100,
                {
                    "type": "cooling",
                    "code": "return",
                    "description": "Return temperature",
                    "metric": "return_temp",
                    "target": "40",
                    "band_above": "3",
                    "rate_basis": "percent_of_energy",
                    "penalty_rate": "0.02",
                    **extra,
                },
            ]
        )

    def test_metric_places_rounds_the_return_temperature(self):
        spec = self.spec(metric_places=0)
        # 43.4 °C → 43 °C: inside 40 + 3, no penalty (not 0.4 °C × 2 % × 1,000 = 8.00)
        inside = rate(determinants=det(*YEAR, return_c="43.4"), tariff=spec)[1]
        assert inside.amount == D("0.00")
        # 43.5 °C → 44 °C: 1 °C above 43 → 1,000.00 × 2 % × 1 = 20.00 (not 0.5 °C → 10.00)
        above = rate(determinants=det(*YEAR, return_c="43.5"), tariff=spec)[1]
        assert above.amount == D("20.00")
        assert above.explanation == (
            "average return temperature 44.00 °C, neutral band 40.0–43.0 °C; "
            "1.00 °C above 43.0 °C: penalty; 1,000.00 DKK energy charge × 2.00 % × 1.00 °C"
        )

    def test_without_metric_places_the_return_temperature_is_used_as_measured(self):
        line = rate(determinants=det(*YEAR, return_c="43.5"), tariff=self.spec())[1]
        assert line.amount == D("10.00")  # 1,000.00 × 2 % × 0.5

    def test_the_explanation_shows_the_exact_band_of_a_moving_target(self):
        # target 40 − 1 × (60.25 − 55) = 34.75 °C, band up to 37.75 °C; 37.76 is 0.01 above:
        # 1,000.00 × 2 % × 0.01 = 0.20.  Rounded to one decimal the band would read
        # "34.8–37.8" and 37.76 °C would look inside it, contradicting the penalty.
        spec = self.spec(
            target_flow_slope="-1", target_flow_ref="55", target_min="30", target_max="40"
        )
        line = rate(determinants=det(*YEAR, return_c="37.76", flow_c="60.25"), tariff=spec)[1]
        assert line.amount == D("0.20")
        assert line.explanation == (
            "average return temperature 37.76 °C, neutral band 34.75–37.75 °C; "
            "0.01 °C above 37.75 °C: penalty; 1,000.00 DKK energy charge × 2.00 % × 0.01 °C"
        )


class TestSeasonsByMonthlyEnergy:
    def test_a_month_with_negative_energy_is_priced_in_its_own_season(self):
        spec = make([SEASONAL_ENERGY])
        # March +5 MWh (winter), April −1 MWh (summer: a register corrected down)
        by_month = ((dt.date(2026, 3, 1), D("5")), (dt.date(2026, 4, 1), D("-1")))
        lines = rate(
            determinants=det(dt.date(2026, 3, 1), dt.date(2026, 5, 1), mwh="4", by_month=by_month),
            tariff=spec,
        )
        # 5 × 500 − 1 × 300 = 2,200.00 (not 4 × 500 = 2,000.00 all in winter)
        assert [(ln.description, ln.quantity, ln.amount) for ln in lines] == [
            ("Energy (winter)", D("5.000000"), D("2500.00")),
            ("Energy (summer)", D("-1.000000"), D("-300.00")),
        ]
        assert sum(ln.amount for ln in lines) == D("2200.00")

    def test_monthly_energies_that_cancel_are_each_priced_in_their_season(self):
        spec = make([SEASONAL_ENERGY])
        # March +2 MWh (winter), April −2 MWh (summer): 0 MWh in all, yet each month was
        # measured and is priced as in the test above, not dropped
        by_month = ((dt.date(2026, 3, 1), D("2")), (dt.date(2026, 4, 1), D("-2")))
        lines = rate(
            determinants=det(dt.date(2026, 3, 1), dt.date(2026, 5, 1), mwh="0", by_month=by_month),
            tariff=spec,
        )
        # 2 × 500 − 2 × 300 = 400.00
        assert [(ln.description, ln.quantity, ln.amount) for ln in lines] == [
            ("Energy (winter)", D("2.000000"), D("1000.00")),
            ("Energy (summer)", D("-2.000000"), D("-600.00")),
        ]

    def test_monthly_energies_that_cancel_in_gj_keep_a_zero_total(self):
        spec = make([{**SEASONAL_ENERGY, "unit": "GJ"}])
        by_month = ((dt.date(2026, 3, 1), D("1.001")), (dt.date(2026, 4, 1), D("-1.001")))
        lines = rate(
            determinants=det(dt.date(2026, 3, 1), dt.date(2026, 5, 1), mwh="0", by_month=by_month),
            tariff=spec,
        )
        # 1.001 MWh = 3.6036 GJ: + in winter, − in summer, the quantities adding to 0
        assert [(ln.quantity, ln.amount) for ln in lines] == [
            (D("3.603600"), D("1801.80")),
            (D("-3.603600"), D("-1081.08")),
        ]
