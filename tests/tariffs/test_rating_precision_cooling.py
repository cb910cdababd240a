"""Cooling incentive lines: the explanation says where the metric is when the tariff has
no bonus or no penalty on that side of the band, and a line's unit price fits the invoice
line's 6-decimal column, with the amount and the text computed from that stored price.
Figures worked out by hand (net, one rounding per line, half up).
"""

import datetime as dt
from decimal import ROUND_HALF_UP
from decimal import Decimal as D

from tariffs.rating import Determinants, TariffSpec, components_from_data, rate

YEAR = (dt.date(2026, 1, 1), dt.date(2027, 1, 1))
ENERGY_500 = {"type": "energy", "code": "energy", "description": "Energy", "price": "500"}


def make(cooling, *, energy=ENERGY_500):
    return TariffSpec(
        version_id=1,
        tariff_code="cooling",
        currency="DKK",
        vat_rate=D("0.25"),
        components=components_from_data(
            [energy, {"type": "cooling", "code": "cooling", "description": "Cooling", **cooling}]
        ),
    )


def det(*, mwh, m3="100", flow=None, ret=None):
    return Determinants(
        period_start=YEAR[0],
        period_end=YEAR[1],
        energy_mwh=D(mwh),
        volume_m3=D(m3),
        return_temp_c=None if ret is None else D(ret),
        flow_temp_c=None if flow is None else D(flow),
        contracted_kw=D("10"),
        heated_area_m2=D("130"),
    )


def cooling_line(cooling, determinants):
    lines = rate(determinants=determinants, tariff=make(cooling))
    (line,) = [ln for ln in lines if ln.component == "cooling"]
    return line


# HOFOR-style: ΔT = MWh × 860 / m³, neutral band 25–35 °C, 0.8 % of the energy charge per °C
HOFOR_BONUS_ONLY = {"target": "30", "band_below": "5", "band_above": "5", "bonus_rate": "0.008"}
HOFOR_BOTH = {**HOFOR_BONUS_ONLY, "penalty_rate": "0.008"}
# Holte-style: 25 DKK per MWh per °C of ΔT below 35 °C, no bonus
HOLTE_PENALTY_ONLY = {"target": "35", "rate_basis": "per_unit", "penalty_rate": "25"}
# Løjt-style: return temperature above 40 + 3 °C costs 2 % of the energy charge per °C
LOEJT_PENALTY_ONLY = {
    "metric": "return_temp", "target": "40", "band_above": "3", "penalty_rate": "0.02",
}  # fmt: skip


class TestOneSidedIncentiveExplanations:
    def test_bonus_only_tariff_with_poor_cooling_says_there_is_no_penalty(self):
        # 20 MWh, 860 m³ → ΔT = 20 × 860 / 860 = 20 °C, 5 °C below the band's edge 25 °C
        line = cooling_line(HOFOR_BONUS_ONLY, det(mwh="20", m3="860"))

        assert line.amount == D("0.00")
        assert line.explanation == (
            "cooling ΔT 20.00 °C, neutral band 25.0–35.0 °C; "
            "5.00 °C below 25.0 °C: no penalty in this tariff; "
            "10,000.00 DKK energy charge × 0 % × 0.00 °C"
        )

    def test_bonus_only_tariff_counting_from_the_target_names_the_target(self):
        line = cooling_line({**HOFOR_BONUS_ONLY, "count_from": "target"}, det(mwh="20", m3="860"))

        assert line.amount == D("0.00")
        assert "; 10.00 °C below 30.0 °C: no penalty in this tariff; " in line.explanation

    def test_penalty_only_tariff_with_good_cooling_says_there_is_no_bonus(self):
        # 20 MWh, 430 m³ → ΔT = 40 °C, 5 °C above 35 °C
        line = cooling_line(HOLTE_PENALTY_ONLY, det(mwh="20", m3="430"))

        assert line.amount == D("0.00")
        assert line.explanation == (
            "cooling ΔT 40.00 °C, neutral band 35.0–35.0 °C; "
            "5.00 °C above 35.0 °C: no bonus in this tariff; "
            "20 MWh × 0.00 DKK/MWh/°C × 0.00 °C"
        )

    def test_penalty_only_return_temperature_below_the_band_says_there_is_no_bonus(self):
        # a low return temperature is the good side: 38 °C is 2 °C below the band 40–43 °C
        line = cooling_line(LOEJT_PENALTY_ONLY, det(mwh="2", ret="38"))

        assert line.amount == D("0.00")
        assert line.explanation == (
            "average return temperature 38.00 °C, neutral band 40.0–43.0 °C; "
            "2.00 °C below 40.0 °C: no bonus in this tariff; "
            "1,000.00 DKK energy charge × 0 % × 0.00 °C"
        )

    def test_bonus_only_return_temperature_above_the_band_says_there_is_no_penalty(self):
        bonus_only = {**LOEJT_PENALTY_ONLY, "penalty_rate": None, "bonus_rate": "0.02"}
        line = cooling_line(bonus_only, det(mwh="2", ret="45.5"))

        assert line.amount == D("0.00")
        assert line.explanation == (
            "average return temperature 45.50 °C, neutral band 40.0–43.0 °C; "
            "2.50 °C above 43.0 °C: no penalty in this tariff; "
            "1,000.00 DKK energy charge × 0 % × 0.00 °C"
        )

    def test_inside_the_band_is_still_the_neutral_band(self):
        # 20 MWh, 600 m³ → ΔT = 17,200 / 600 = 28.666667 °C, inside 25–35 °C
        line = cooling_line(HOFOR_BONUS_ONLY, det(mwh="20", m3="600"))

        assert line.amount == D("0.00")
        assert "; inside the neutral band: no bonus or penalty; " in line.explanation


class TestUnitPriceFitsTheInvoiceLineColumn:
    """``InvoiceLine.unit_price`` is ``DecimalField(20, 6)``: a stored line must reproduce
    its own amount and explanation."""

    def assert_stores_as_it_prices(self, line):
        assert line.unit_price.as_tuple().exponent >= -6
        assert line.unit_price == line.unit_price.quantize(D("0.000001"))
        assert line.amount == (line.quantity * line.unit_price).quantize(
            D("0.01"), rounding=ROUND_HALF_UP
        )

    def test_percent_of_energy_per_degree_rounds_the_unit_price_half_up(self):
        # energy 200 MWh × 500 = 100,000.00; ΔT = 60 − 38.123457 = 21.876543 °C, 3.123457 °C
        # below 25 °C: 0.008 × 3.123457 = 0.024987656 (9 decimals) → unit price 0.024988;
        # 100,000.00 × 0.024988 = 2,498.80 (not 100,000 × 0.024987656 = 2,498.7656 → 2,498.77)
        cooling = {**HOFOR_BOTH, "source": "temperatures"}
        line = cooling_line(cooling, det(mwh="200", flow="60", ret="38.123457"))

        assert (line.quantity, line.unit_price, line.amount) == (
            D("100000.00"), D("0.024988"), D("2498.80"),
        )  # fmt: skip
        self.assert_stores_as_it_prices(line)
        assert line.explanation == (
            "cooling ΔT 21.88 °C, neutral band 25.0–35.0 °C; 3.12 °C below 25.0 °C: penalty; "
            "100,000.00 DKK energy charge × 2.4988 % "
            "(0.800 % × 3.123457 °C = 2.4987656 %, rounded half up)"
        )

    def test_a_bonus_unit_price_rounds_half_up_away_from_zero(self):
        # ΔT = 60 − 21.876543 = 38.123457 °C, 3.123457 °C above 35 °C: −0.024987656 →
        # −0.024988; 100,000.00 × −0.024988 = −2,498.80
        cooling = {**HOFOR_BOTH, "source": "temperatures"}
        line = cooling_line(cooling, det(mwh="200", flow="60", ret="21.876543"))

        assert (line.unit_price, line.amount) == (D("-0.024988"), D("-2498.80"))
        self.assert_stores_as_it_prices(line)
        assert line.explanation.endswith(
            "3.12 °C above 35.0 °C: bonus; 100,000.00 DKK energy charge × -2.4988 % "
            "(-0.800 % × 3.123457 °C = -2.4987656 %, rounded half up)"
        )

    def test_money_per_mwh_per_degree_rounds_the_unit_price_half_up(self):
        # 20,000 MWh; ΔT = 60 − 31.876549 = 28.123451 °C, 6.876549 °C below 35 °C:
        # 1.05 × 6.876549 = 7.22037645 DKK/MWh (8 decimals) → 7.220376;
        # 20,000 × 7.220376 = 144,407.52 (not 20,000 × 7.22037645 = 144,407.529 → 144,407.53)
        cooling = {**HOLTE_PENALTY_ONLY, "penalty_rate": "1.05", "source": "temperatures"}
        line = cooling_line(cooling, det(mwh="20000", flow="60", ret="31.876549"))

        assert (line.quantity, line.unit_price, line.amount) == (
            D("20000.000000"), D("7.220376"), D("144407.52"),
        )  # fmt: skip
        self.assert_stores_as_it_prices(line)
        assert line.explanation == (
            "cooling ΔT 28.12 °C, neutral band 35.0–35.0 °C; 6.88 °C below 35.0 °C: penalty; "
            "20000 MWh × 7.220376 DKK/MWh "
            "(1.05 DKK/MWh/°C × 6.876549 °C = 7.22037645 DKK/MWh, rounded half up)"
        )

    def test_a_unit_price_within_six_decimals_keeps_the_plain_explanation(self):
        # 20,000 MWh, ΔT 28 °C: 7 °C below 35 °C × 1.05 = 7.35 DKK/MWh; 147,000.00
        cooling = {**HOLTE_PENALTY_ONLY, "penalty_rate": "1.05", "source": "temperatures"}
        line = cooling_line(cooling, det(mwh="20000", flow="60", ret="32"))

        assert (line.unit_price, line.amount) == (D("7.35"), D("147000.00"))
        self.assert_stores_as_it_prices(line)
        assert line.explanation.endswith("; 20000 MWh × 1.05 DKK/MWh/°C × 7.00 °C")
