"""Every published tariff of DOMAIN.md §4, encoded as data and priced for a sample customer.

The expected figures are worked out by hand in the comments (net of VAT unless stated;
each line rounded half up to the cent, totals summed from lines, VAT on the net sum).
"""

import datetime as dt
from decimal import Decimal as D

import pytest

from tariffs.published import PUBLISHED_TARIFFS
from tariffs.rating import Determinants, TariffSpec, components_from_data, rate, totals

YEAR_2024 = (dt.date(2024, 1, 1), dt.date(2025, 1, 1))


def spec(key: str) -> TariffSpec:
    entry = PUBLISHED_TARIFFS[key]
    return TariffSpec(
        version_id=1,
        tariff_code=key,
        currency=entry["currency"],
        vat_rate=D(entry["vat_rate"]),
        components=components_from_data(entry["components"]),
        prices_include_vat=entry["prices_include_vat"],
    )


def det(
    *, mwh, m3, kw="10", m2="130", period=YEAR_2024, flow=None, ret=None, annual=None, by_month=None
):
    return Determinants(
        period_start=period[0],
        period_end=period[1],
        energy_mwh=D(mwh),
        volume_m3=D(m3),
        return_temp_c=None if ret is None else D(ret),
        flow_temp_c=None if flow is None else D(flow),
        contracted_kw=D(kw),
        heated_area_m2=D(m2),
        annual_energy_mwh=None if annual is None else D(annual),
        energy_by_month=by_month,
    )


def amounts(lines):
    return [(ln.component, ln.amount) for ln in lines]


class TestHofor:
    def test_house_with_poor_cooling_pays_the_correction(self):
        # 10 kW, 18.1 MWh, 778.3 m³ → ΔT = 18.1 × 860 / 778.3 = 20.0 °C, 5.0 °C below the band edge 25 °C
        # capacity 10 × 210.91 = 2,109.10; energy 18.1 × 592.52 = 10,724.612 → 10,724.61
        # cooling 10,724.61 × 0.8 % × 5 = 428.9844 → 428.98; net 13,262.69; VAT 3,315.6725 → 3,315.67
        lines = rate(determinants=det(mwh="18.1", m3="778.3"), tariff=spec("hofor-2024"))
        assert amounts(lines) == [
            ("capacity", D("2109.10")),
            ("energy", D("10724.61")),
            ("cooling", D("428.98")),
        ]
        t = totals(lines, "DKK")
        assert (t.net, t.vat, t.gross) == (D("13262.69"), D("3315.67"), D("16578.36"))

    def test_cooling_inside_the_band_is_neutral_and_a_month_is_a_twelfth(self):
        # February 2024 (leap year, 29 days) is 1/12 year: capacity 2,109.10 / 12 = 175.758… → 175.76
        # 1.5 MWh, 43 m³ → ΔT = 1290/43 = 30.0 °C: no correction
        lines = rate(
            determinants=det(mwh="1.5", m3="43", period=(dt.date(2024, 2, 1), dt.date(2024, 3, 1))),
            tariff=spec("hofor-2024"),
        )
        assert amounts(lines) == [
            ("capacity", D("175.76")),
            ("energy", D("888.78")),
            ("cooling", D("0.00")),
        ]
        assert lines[0].period_fraction == D("0.0833333333")

    def test_good_cooling_earns_a_bonus(self):
        # 18.1 MWh, 389.15 m³ → ΔT = 15,566 / 389.15 = 40.0 °C, 5 °C above 35 °C: −4 % of 10,724.61 = −428.98
        lines = rate(determinants=det(mwh="18.1", m3="389.15"), tariff=spec("hofor-2024"))
        assert lines[-1].amount == D("-428.98")


class TestTaarnby:
    def test_penalty_per_gj_per_degree_below_39_from_the_band_edge(self):
        # 18.1 MWh = 65.16 GJ; 484 m³ → ΔT = 65.16 / 484 × 242 = 32.58 °C, 6.42 °C below 39 °C
        # energy 65.16 × 150 = 9,774.00; penalty 65.16 × 1.05 × 6.42 = 439.24356 → 439.24
        lines = rate(determinants=det(mwh="18.1", m3="484"), tariff=spec("taarnby"))
        assert amounts(lines) == [("energy", D("9774.00")), ("cooling", D("439.24"))]

    def test_bonus_above_41(self):
        # 363 m³ → ΔT = 43.44 °C, 2.44 °C above 41: bonus 65.16 × 1.05 × 2.44 = 166.93992 → −166.94
        lines = rate(determinants=det(mwh="18.1", m3="363"), tariff=spec("taarnby"))
        assert lines[-1].amount == D("-166.94")

    def test_dead_band_is_neutral(self):
        # 394.218 m³ → ΔT = 15,768.72 / 394.218 = 40.0 °C
        lines = rate(determinants=det(mwh="18.1", m3="394.218"), tariff=spec("taarnby"))
        assert lines[-1].amount == D("0.00")


class TestHolte:
    def test_prices_entered_incl_vat_bill_net_lines_and_gross_matches_the_price_list(self):
        # net prices: 42.00/1.25 = 33.60 per m²; 795/1.25 = 636.00 per MWh; 25/1.25 = 20.00 per MWh·°C
        # 130 m² × 33.60 = 4,368.00; 18.1 × 636 = 11,511.60; ΔT 20 °C → 15 °C below 35: 18.1 × 20 × 15 = 5,430.00
        # net 21,309.60, VAT 5,327.40, gross 26,637.00 (= 130×42 + 18.1×795 + 18.1×25×15 incl. VAT)
        lines = rate(determinants=det(mwh="18.1", m3="778.3"), tariff=spec("holte-2023"))
        assert amounts(lines) == [
            ("area", D("4368.00")),
            ("energy", D("11511.60")),
            ("motivation", D("5430.00")),
        ]
        t = totals(lines, "DKK")
        assert (t.net, t.vat, t.gross) == (D("21309.60"), D("5327.40"), D("26637.00"))

    def test_large_building_gets_the_lower_m2_rates_in_bands(self):
        # 25,000 m²: 10,000 × 33.60 + 10,000 × 26.88 + 5,000 × 20.16 = 336,000 + 268,800 + 100,800
        lines = rate(determinants=det(mwh="0", m3="0", m2="25000"), tariff=spec("holte-2023"))
        assert [ln.amount for ln in lines if ln.component == "area"] == [
            D("336000.00"),
            D("268800.00"),
            D("100800.00"),
        ]

    def test_no_penalty_above_35(self):
        lines = rate(determinants=det(mwh="18.1", m3="389.15"), tariff=spec("holte-2023"))
        assert lines[-1].amount == D("0.00")


class TestHirtshalsAndHjoerring:
    def test_hirtshals_percent_of_consumption_per_degree_below_minimum(self):
        # subscription 1,000.00; 130 × 12 = 1,560.00; 18.1 × 500 = 9,050.00;
        # ΔT 20 °C → 10 °C below 30: 2 % × 10 = 20 % of 9,050.00 = 1,810.00; net 13,420.00
        lines = rate(determinants=det(mwh="18.1", m3="778.3"), tariff=spec("hirtshals"))
        assert amounts(lines) == [
            ("subscription", D("1000.00")),
            ("area", D("1560.00")),
            ("energy", D("9050.00")),
            ("cooling", D("1810.00")),
        ]

    def test_hjoerring_capacity_per_mcal_per_hour(self):
        # 10 kW = 10 / 1.163 = 8.598452 Mcal/h × 196.93 = 1,693.2932 → 1,693.29; 18.1 × 357 = 6,461.70
        # ΔT 20 °C → 5 °C below 25: 7.5 % × 6,461.70 = 484.6275 → 484.63
        lines = rate(determinants=det(mwh="18.1", m3="778.3"), tariff=spec("hjoerring-2024"))
        assert amounts(lines) == [
            ("capacity", D("1693.29")),
            ("energy", D("6461.70")),
            ("cooling", D("484.63")),
        ]
        assert lines[0].quantity == D("8.598452")


class TestFynAndKerteminde:
    def test_fyn_reference_house_matches_the_published_price_example(self):
        # meter 260.00; 130 m² × 10 = 1,300.00; 18.1 MWh = 65.16 GJ × 87 = 5,668.92; 486.5 m³ × 2.80 = 1,362.20
        # net 8,591.12, VAT 2,147.78, gross 10,738.90 — Fyn publishes 10,739 DKK for 130 m² / 18.1 MWh
        lines = rate(determinants=det(mwh="18.1", m3="486.5"), tariff=spec("fyn"))
        assert amounts(lines) == [
            ("meter", D("260.00")),
            ("area", D("1300.00")),
            ("energy", D("5668.92")),
            ("volume", D("1362.20")),
        ]
        assert totals(lines, "DKK").gross == D("10738.90")
        assert lines[2].unit == "GJ"
        assert lines[2].quantity == D("65.16")

    def test_fyn_m2_bands(self):
        # 5,000 m²: 1,000 × 10 + 2,000 × 9 + 2,000 × 8 = 10,000 + 18,000 + 16,000
        lines = rate(determinants=det(mwh="0", m3="0", m2="5000"), tariff=spec("fyn"))
        assert [ln.amount for ln in lines if ln.component == "area"] == [
            D("10000.00"),
            D("18000.00"),
            D("16000.00"),
        ]

    def test_kerteminde_incl_vat_prices(self):
        # net: 803/1.25 = 642.40; 22/1.25 = 17.60 × 130 = 2,288.00; 525/1.25 = 420 × 18.1 = 7,602.00;
        # 4.92/1.25 = 3.936 × 600 = 2,361.60; net 12,894.00, VAT 3,223.50, gross 16,117.50
        lines = rate(determinants=det(mwh="18.1", m3="600"), tariff=spec("kerteminde-2024"))
        assert amounts(lines) == [
            ("subscription", D("642.40")),
            ("area", D("2288.00")),
            ("energy", D("7602.00")),
            ("volume", D("2361.60")),
        ]
        t = totals(lines, "DKK")
        assert (t.net, t.gross) == (D("12894.00"), D("16117.50"))
        assert lines[0].kind == "meter_rent"


class TestKarlstad:
    def test_kw_band_with_monthly_fee_and_three_seasons(self):
        # 80 kW lies in the ≤100 kW band: fee 180 × 12 = 2,160.00; 80 × 420 = 33,600.00
        # energy by month: winter 110 MWh × 690 = 75,900; spring/autumn 55 × 330 = 18,150; summer 28 × 220 = 6,160
        # net 135,970.00, VAT 33,992.50
        by_month = tuple(
            (dt.date(2024, m, 1), D(v))
            for m, v in {
                1: "30",
                2: "28",
                3: "22",
                12: "30",
                4: "15",
                5: "10",
                10: "12",
                11: "18",
                6: "7",
                7: "7",
                8: "7",
                9: "7",
            }.items()
        )
        lines = rate(
            determinants=det(mwh="193", m3="5533", kw="80", by_month=by_month),
            tariff=spec("karlstad"),
        )
        assert amounts(lines) == [
            ("capacity", D("2160.00")),
            ("capacity", D("33600.00")),
            ("energy", D("75900.00")),
            ("energy", D("18150.00")),
            ("energy", D("6160.00")),
        ]
        t = totals(lines, "SEK")
        assert (t.net, t.vat) == (D("135970.00"), D("33992.50"))

    def test_a_larger_connection_falls_in_the_next_band_for_all_its_kw(self):
        # 250 kW → ≤500 band: 720 × 12 = 8,640.00 fee; 250 × 405 = 101,250.00
        lines = rate(determinants=det(mwh="0", m3="0", kw="250"), tariff=spec("karlstad"))
        assert [ln.amount for ln in lines if ln.component == "capacity"] == [
            D("8640.00"),
            D("101250.00"),
        ]

    def test_a_winter_month_uses_the_winter_price(self):
        # January 2026: fee 2,160/12 = 180.00, capacity 33,600/12 = 2,800.00, 20 MWh × 690 = 13,800.00
        lines = rate(
            determinants=det(
                mwh="20", m3="600", kw="80", period=(dt.date(2026, 1, 1), dt.date(2026, 2, 1))
            ),
            tariff=spec("karlstad"),
        )
        assert amounts(lines) == [
            ("capacity", D("180.00")),
            ("capacity", D("2800.00")),
            ("energy", D("13800.00")),
        ]


class TestWaldkraiburg:
    def test_graduated_capacity_and_energy_block_above_500_mwh(self):
        # 120 kW: 422.73 + 85 × 27.23 (2,314.55) + 20 × 22.93 (458.60) = 3,195.88
        # 600 MWh: 500 × 82.40 = 41,200.00 + 100 × 71.65 = 7,165.00; net 51,560.88; VAT 19 % 9,796.5672 → 9,796.57
        lines = rate(
            determinants=det(mwh="600", m3="17200", kw="120", annual="600"),
            tariff=spec("waldkraiburg-2025"),
        )
        assert amounts(lines) == [
            ("capacity", D("422.73")),
            ("capacity", D("2314.55")),
            ("capacity", D("458.60")),
            ("energy", D("41200.00")),
            ("energy", D("7165.00")),
        ]
        t = totals(lines, "EUR")
        assert (t.net, t.vat, t.gross) == (D("51560.88"), D("9796.57"), D("61357.45"))

    def test_monthly_bill_splits_energy_in_the_annual_proportion(self):
        # annual 600 MWh: 500/600 of January's 60 MWh at 82.40 (50 × 82.40 = 4,120.00), 10 × 71.65 = 716.50
        lines = rate(
            determinants=det(
                mwh="60",
                m3="1720",
                kw="120",
                annual="600",
                period=(dt.date(2025, 1, 1), dt.date(2025, 2, 1)),
            ),
            tariff=spec("waldkraiburg-2025"),
        )
        assert [(ln.quantity, ln.amount) for ln in lines if ln.kind == "energy"] == [
            (D("50.000000"), D("4120.00")),
            (D("10.000000"), D("716.50")),
        ]


class TestLoejt:
    def test_required_return_temperature_follows_the_supply_temperature(self):
        # supply 60 °C → required return 40 − (60 − 55) = 35 °C, +3 °C allowance = 38; return 40 → 2 °C over
        # energy 65.16 GJ × 146.40 = 9,539.424 → 9,539.42; penalty 2 % × 2 = 4 % → 381.5768 → 381.58
        # fixed 1,000 + meter 600 + 130 × 9 = 1,170
        lines = rate(
            determinants=det(mwh="18.1", m3="600", flow="60", ret="40"), tariff=spec("loejt-2024")
        )
        assert amounts(lines) == [
            ("fixed", D("1000.00")),
            ("meter", D("600.00")),
            ("area", D("1170.00")),
            ("energy", D("9539.42")),
            ("motivation", D("381.58")),
        ]


class TestMeterRentAndValidation:
    def test_meter_rent_per_month_prorated_by_days(self):
        # meter rent entered per month, 70.00 → 840.00 per year;
        # 1–16 March 2024 = 15/31 of a twelfth: 840 × 15/372 = 33.870967… → 33.87
        s = TariffSpec(
            version_id=1,
            tariff_code="x",
            currency="DKK",
            vat_rate=D("0.25"),
            components=components_from_data(
                [
                    {
                        "type": "fixed",
                        "code": "meter",
                        "description": "Meter rent",
                        "amount": "70.00",
                        "per": "month",
                        "kind": "meter_rent",
                    }
                ]
            ),
        )
        lines = rate(
            determinants=det(mwh="1", m3="30", period=(dt.date(2024, 3, 1), dt.date(2024, 3, 16))),
            tariff=s,
        )
        assert lines[0].amount == D("33.87")

    def test_invalid_components_are_refused_with_paths(self):
        from tariffs.rating import TariffComponentsInvalid

        with pytest.raises(TariffComponentsInvalid) as err:
            components_from_data(
                [
                    {"type": "energy", "code": "e", "price": "abc"},
                    {
                        "type": "banded",
                        "code": "c",
                        "basis": "capacity",
                        "unit": "l/h",
                        "bands": [{"upto": "5", "unit_price": "1"}],
                    },
                    {"type": "cooling", "code": "k", "target": "30", "energy_components": ["nope"]},
                ]
            )
        fields = {e.field for e in err.value.errors}
        assert {
            "components.0.price",
            "components.1.design_delta_t",
            "components.1.bands.0.upto",
            "components.2",
        } <= fields
        assert "components.2.energy_components.0" in fields

    def test_l_per_hour_capacity_price_converts_with_the_design_delta_t(self):
        # 17.445 kW at ΔT 30 K = 17,445 / (30 × 1.163) = 500 l/h × 0.50 EUR/(l/h)/year = 250.00
        s = TariffSpec(
            version_id=1,
            tariff_code="berlin",
            currency="EUR",
            vat_rate=D("0.19"),
            components=components_from_data(
                [
                    {
                        "type": "banded",
                        "code": "c",
                        "basis": "capacity",
                        "unit": "l/h",
                        "design_delta_t": "30",
                        "bands": [{"unit_price": "0.50"}],
                    }
                ]
            ),
        )
        lines = rate(determinants=det(mwh="0", m3="0", kw="17.445"), tariff=s)
        assert (lines[0].quantity, lines[0].amount) == (D("500.000000"), D("250.00"))
