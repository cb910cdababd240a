"""Published district-heating tariffs encoded as plain component data (no code per tariff).

Each entry is what a tariff manager would type into a version: ``components`` JSON, VAT
rate, whether prices are entered incl. VAT, and the source.  Figures marked *illustrative*
keep the published structure but not a verified price list (see docs/tariffs.md).
"""

from __future__ import annotations

PUBLISHED_TARIFFS: dict[str, dict] = {
    "hofor-2024": {
        "name": "HOFOR Copenhagen, district heating from 1 January 2024",
        "source": "hofor.dk price page 2024 (excl. VAT): capacity 210.91 DKK/kW, energy 592.52 DKK/MWh, "
        "cooling correction 0.8 % of the energy price per °C beyond ±5 °C of the 30 °C requirement",
        "currency": "DKK",
        "vat_rate": "0.25",
        "prices_include_vat": False,
        "components": [
            {
                "type": "banded",
                "code": "capacity",
                "description": "Capacity charge (effektbetaling)",
                "basis": "capacity",
                "unit": "kW",
                "bands": [{"unit_price": "210.91"}],
            },
            {
                "type": "energy",
                "code": "energy",
                "description": "Energy charge incl. taxes",
                "unit": "MWh",
                "price": "592.52",
            },
            {
                "type": "cooling",
                "code": "cooling",
                "description": "Cooling correction (afkøling)",
                "metric": "cooling",
                "source": "energy_volume",
                "factor": "860",
                "factor_unit": "MWh",
                "target": "30",
                "band_below": "5",
                "band_above": "5",
                "count_from": "edge",
                "rate_basis": "percent_of_energy",
                "penalty_rate": "0.008",
                "bonus_rate": "0.008",
            },
        ],
    },
    "taarnby": {
        "name": "Tårnby Forsyning Varme (cooling tariff as published; energy price illustrative)",
        "source": "taarnbyforsyning.dk 'Sådan beregnes afkølingen': ΔT = GJ/m³ × 242; 1.05 DKK/°C/GJ below 39 °C "
        "or above 41 °C, counted from the band edge (excl. VAT). Energy price 150 DKK/GJ is illustrative.",
        "currency": "DKK",
        "vat_rate": "0.25",
        "prices_include_vat": False,
        "components": [
            {
                "type": "energy",
                "code": "energy",
                "description": "Energy charge",
                "unit": "GJ",
                "price": "150.00",
            },
            {
                "type": "cooling",
                "code": "cooling",
                "description": "Cooling bonus / penalty",
                "metric": "cooling",
                "source": "energy_volume",
                "factor": "242",
                "factor_unit": "GJ",
                "target": "40",
                "band_below": "1",
                "band_above": "1",
                "count_from": "edge",
                "rate_basis": "per_unit",
                "rate_unit": "GJ",
                "penalty_rate": "1.05",
                "bonus_rate": "1.05",
            },
        ],
    },
    "holte-2023": {
        "name": "Holte Fjernvarme from 1 July 2023 (prices incl. VAT)",
        "source": "norfors.dk price page: fixed 42.00 DKK/m² (BBR) with 20 % rebate for 10,001–20,000 m² and 40 % "
        "above 20,000 m²; motivation fee 25 DKK/MWh × (35 °C − cooling); energy 795 DKK/MWh; all incl. VAT",
        "currency": "DKK",
        "vat_rate": "0.25",
        "prices_include_vat": True,
        "components": [
            {
                "type": "banded",
                "code": "area",
                "description": "Fixed price per m² (BBR)",
                "basis": "area",
                "unit": "m²",
                "bands": [
                    {"upto": "10000", "unit_price": "42.00"},
                    {"upto": "20000", "unit_price": "33.60"},
                    {"unit_price": "25.20"},
                ],
            },
            {
                "type": "energy",
                "code": "energy",
                "description": "Variable heat price",
                "unit": "MWh",
                "price": "795.00",
            },
            {
                "type": "cooling",
                "code": "motivation",
                "description": "Motivation fee (cooling below 35 °C)",
                "metric": "cooling",
                "source": "energy_volume",
                "factor": "860",
                "factor_unit": "MWh",
                "target": "35",
                "count_from": "target",
                "rate_basis": "per_unit",
                "rate_unit": "MWh",
                "penalty_rate": "25.00",
            },
        ],
    },
    "hirtshals": {
        "name": "Hirtshals-style tariff (structure as DOMAIN.md §4; prices illustrative)",
        "source": "Structure: subscription, m² charge, energy, + % of the consumption charge per °C of cooling below a "
        "minimum. Prices illustrative.",
        "currency": "DKK",
        "vat_rate": "0.25",
        "prices_include_vat": False,
        "components": [
            {
                "type": "fixed",
                "code": "subscription",
                "description": "Subscription",
                "amount": "1000.00",
            },
            {
                "type": "banded",
                "code": "area",
                "description": "Area charge",
                "basis": "area",
                "unit": "m²",
                "bands": [{"unit_price": "12.00"}],
            },
            {
                "type": "energy",
                "code": "energy",
                "description": "Energy charge",
                "unit": "MWh",
                "price": "500.00",
            },
            {
                "type": "cooling",
                "code": "cooling",
                "description": "Cooling surcharge",
                "metric": "cooling",
                "target": "30",
                "count_from": "target",
                "rate_basis": "percent_of_energy",
                "penalty_rate": "0.02",
            },
        ],
    },
    "hjoerring-2024": {
        "name": "Hjørring Varmeforsyning 2024 (excl. VAT)",
        "source": "hjvarme.dk: 357.00 DKK/MWh; capacity 196.93 DKK per Mcal/h; cooling requirement 25 °C, "
        "1.5 % of the yearly consumption charge per missing degree",
        "currency": "DKK",
        "vat_rate": "0.25",
        "prices_include_vat": False,
        "components": [
            {
                "type": "banded",
                "code": "capacity",
                "description": "Capacity charge",
                "basis": "capacity",
                "unit": "Mcal/h",
                "bands": [{"unit_price": "196.93"}],
            },
            {
                "type": "energy",
                "code": "energy",
                "description": "Energy charge",
                "unit": "MWh",
                "price": "357.00",
            },
            {
                "type": "cooling",
                "code": "cooling",
                "description": "Cooling surcharge (requirement 25 °C)",
                "metric": "cooling",
                "target": "25",
                "count_from": "target",
                "rate_basis": "percent_of_energy",
                "penalty_rate": "0.015",
            },
        ],
    },
    "fyn": {
        "name": "Fjernvarme Fyn, private customers (excl. VAT)",
        "source": "fjernvarmefyn.dk price overview: meter 260 DKK/year, 87.00 DKK/GJ (313.20 DKK/MWh), 2.80 DKK/m³, "
        "m² price 10/9/8/7 DKK in bands 1–1,000/1,001–3,000/3,001–7,000/over 7,000 m²",
        "currency": "DKK",
        "vat_rate": "0.25",
        "prices_include_vat": False,
        "components": [
            {
                "type": "fixed",
                "code": "meter",
                "description": "Meter fee (målerbidrag)",
                "amount": "260.00",
                "kind": "meter_rent",
            },
            {
                "type": "banded",
                "code": "area",
                "description": "Capacity contribution per m²",
                "basis": "area",
                "unit": "m²",
                "bands": [
                    {"upto": "1000", "unit_price": "10.00"},
                    {"upto": "3000", "unit_price": "9.00"},
                    {"upto": "7000", "unit_price": "8.00"},
                    {"unit_price": "7.00"},
                ],
            },
            {
                "type": "energy",
                "code": "energy",
                "description": "Energy contribution",
                "unit": "GJ",
                "price": "87.00",
            },
            {
                "type": "volume",
                "code": "volume",
                "description": "Transport contribution per m³",
                "price": "2.80",
            },
        ],
    },
    "kerteminde-2024": {
        "name": "Kerteminde Forsyning Varme 2024 (prices incl. VAT)",
        "source": "kertemindeforsyning.dk: 525 DKK/MWh, 4.92 DKK/m³ circulated water, 803 DKK per meter and year, "
        "22 DKK/m² (BBR), all incl. VAT",
        "currency": "DKK",
        "vat_rate": "0.25",
        "prices_include_vat": True,
        "components": [
            {
                "type": "fixed",
                "code": "subscription",
                "description": "Subscription per meter",
                "amount": "803.00",
                "kind": "meter_rent",
            },
            {
                "type": "banded",
                "code": "area",
                "description": "Fixed contribution per m²",
                "basis": "area",
                "unit": "m²",
                "bands": [{"unit_price": "22.00"}],
            },
            {
                "type": "energy",
                "code": "energy",
                "description": "Heat consumption",
                "unit": "MWh",
                "price": "525.00",
            },
            {
                "type": "volume",
                "code": "volume",
                "description": "Circulated district-heating water",
                "price": "4.92",
            },
        ],
    },
    "karlstad": {
        "name": "Karlstad-style tariff: kW bands with monthly fees, three seasons (prices illustrative)",
        "source": "Structure of DOMAIN.md §4 (Karlstad). Band levels follow a published Swedish kW-band list "
        "(Karlskoga Energi 2023 shape) and seasonal energy prices a published three-season list "
        "(Halmstad: 690/330/220 SEK/MWh); SEK excl. VAT, illustrative for Karlstad.",
        "currency": "SEK",
        "vat_rate": "0.25",
        "prices_include_vat": False,
        "components": [
            {
                "type": "banded",
                "code": "capacity",
                "description": "Capacity charge",
                "basis": "capacity",
                "unit": "kW",
                "mode": "whole",
                "fixed_per": "month",
                "bands": [
                    {"upto": "100", "unit_price": "420", "fixed": "180.00"},
                    {"upto": "500", "unit_price": "405", "fixed": "720.00"},
                    {"upto": "2000", "unit_price": "360", "fixed": "3600.00"},
                    {"unit_price": "340", "fixed": "18000.00"},
                ],
            },
            {
                "type": "energy",
                "code": "energy",
                "description": "Energy charge",
                "unit": "MWh",
                "seasons": [
                    {"label": "winter", "months": [1, 2, 3, 12], "price": "690"},
                    {"label": "spring/autumn", "months": [4, 5, 10, 11], "price": "330"},
                    {"label": "summer", "months": [6, 7, 8, 9], "price": "220"},
                ],
            },
        ],
    },
    "waldkraiburg-2025": {
        "name": "Stadtwerke Waldkraiburg geothermal district heat from 1 January 2025 (net)",
        "source": "stadtwerke-waldkraiburg.de Wärmepreise: Grundpreis up to 15 kW 422.73 EUR/a, plus 27.23 EUR/kW·a "
        "15–100 kW, 22.93 100–500 kW, 21.49 above 500 kW; Arbeitspreis 82.40 EUR/MWh up to 500 MWh, 71.65 above; "
        "19 % VAT",
        "currency": "EUR",
        "vat_rate": "0.19",
        "prices_include_vat": False,
        "components": [
            {
                "type": "banded",
                "code": "capacity",
                "description": "Grundpreis",
                "basis": "capacity",
                "unit": "kW",
                "bands": [
                    {"upto": "15", "fixed": "422.73"},
                    {"upto": "100", "unit_price": "27.23"},
                    {"upto": "500", "unit_price": "22.93"},
                    {"unit_price": "21.49"},
                ],
            },
            {
                "type": "energy",
                "code": "energy",
                "description": "Arbeitspreis",
                "unit": "MWh",
                "blocks": [{"upto": "500", "price": "82.40"}, {"price": "71.65"}],
            },
        ],
    },
    "loejt-2024": {
        "name": "Løjt Fjernvarme 2024 (excl. VAT): required return temperature depends on the supply temperature",
        "source": "lojtfjernvarme.dk: 146.40 DKK/GJ, fixed 1,000 DKK, 9.00 DKK/m², meter 600 DKK; +2 % of the GJ "
        "price per °C above the required return (40 °C at 55 °C supply, 1 °C lower per °C more, 30 °C from 65 °C), "
        "3 °C free allowance",
        "currency": "DKK",
        "vat_rate": "0.25",
        "prices_include_vat": False,
        "components": [
            {"type": "fixed", "code": "fixed", "description": "Fixed charge", "amount": "1000.00"},
            {
                "type": "fixed",
                "code": "meter",
                "description": "Meter rent",
                "amount": "600.00",
                "kind": "meter_rent",
            },
            {
                "type": "banded",
                "code": "area",
                "description": "m² charge",
                "basis": "area",
                "unit": "m²",
                "bands": [{"unit_price": "9.00"}],
            },
            {
                "type": "energy",
                "code": "energy",
                "description": "Consumption per GJ",
                "unit": "GJ",
                "price": "146.40",
            },
            {
                "type": "cooling",
                "code": "motivation",
                "description": "Motivation tariff (return temperature)",
                "metric": "return_temp",
                "target": "40",
                "target_flow_slope": "-1",
                "target_flow_ref": "55",
                "target_min": "30",
                "target_max": "40",
                "band_above": "3",
                "count_from": "edge",
                "rate_basis": "percent_of_energy",
                "penalty_rate": "0.02",
            },
        ],
    },
}
