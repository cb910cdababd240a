"""Every band's fee and price, every season and block, is checked against its cap."""

import datetime as dt
from decimal import Decimal as D

import pytest

from tariffs.caps import CapLimits, check_against_cap
from tariffs.published import PUBLISHED_TARIFFS
from tariffs.rating import TariffSpec, components_from_data
from tariffs.services import TariffAboveCap, tariff_version_approve, tariff_version_create
from tests.tariffs.factories import TariffFactory
from tests.tariffs.test_approval import NOW, cost_cap, manager, network  # noqa: F401  (fixtures)


def spec_of(key: str, **overrides) -> TariffSpec:
    entry = PUBLISHED_TARIFFS[key]
    return TariffSpec(
        version_id=1,
        tariff_code=key,
        currency=entry["currency"],
        vat_rate=D(entry["vat_rate"]),
        components=components_from_data(overrides.get("components", entry["components"])),
        prices_include_vat=entry["prices_include_vat"],
    )


def messages(spec, **limits):
    return [
        e.message()
        for e in check_against_cap(spec=spec, cap=CapLimits(currency=spec.currency, **limits))
    ]


class TestEveryBandAndPrice:
    def test_karlstad_each_kw_band_fee_and_price_and_each_season(self):
        # monthly fees ×12: 2,160 / 8,640 / 43,200 / 216,000 SEK per year
        assert messages(
            spec_of("karlstad"),
            energy_per_mwh=D("600.00"),
            capacity_per_kw=D("410.00"),
            fixed_per_year=D("10000.00"),
        ) == [
            "Component 'capacity' band 1 (0–100 kW) 420.00 SEK/kW/year exceeds the capacity cap 410.00 SEK/kW/year by 10.00 SEK/kW/year.",
            "Component 'energy' (winter) 690.00 SEK/MWh exceeds the energy cap 600.00 SEK/MWh by 90.00 SEK/MWh.",
            "Component 'capacity' band 3 (500–2000 kW) fixed fee 43200.00 SEK/year exceeds the fixed-charge cap "
            "10000.00 SEK/year by 33200.00 SEK/year.",
            "Component 'capacity' band 4 (above 2000 kW) fixed fee 216000.00 SEK/year exceeds the fixed-charge cap "
            "10000.00 SEK/year by 206000.00 SEK/year.",
        ]

    def test_a_higher_band_fee_is_not_hidden_by_the_first(self):
        # the first band's 2,160 SEK is under the cap; before, that was all that was checked
        assert messages(spec_of("karlstad"), fixed_per_year=D("8640.00")) == [
            "Component 'capacity' band 3 (500–2000 kW) fixed fee 43200.00 SEK/year exceeds the fixed-charge cap "
            "8640.00 SEK/year by 34560.00 SEK/year.",
            "Component 'capacity' band 4 (above 2000 kW) fixed fee 216000.00 SEK/year exceeds the fixed-charge cap "
            "8640.00 SEK/year by 207360.00 SEK/year.",
        ]
        assert messages(spec_of("karlstad"), fixed_per_year=D("216000.00")) == []

    def test_graduated_fee_with_other_fixed_charges_and_energy_blocks(self):
        components = [
            {"type": "fixed", "code": "meter", "description": "Meter", "amount": "50.00"},
            *PUBLISHED_TARIFFS["waldkraiburg-2025"]["components"],
        ]
        spec = spec_of("waldkraiburg-2025", components=components)
        # Grundpreis band 1 (0–15 kW) 422.73 + meter 50 = 472.73; bands 2–4 add no fee (reported once)
        assert messages(
            spec, fixed_per_year=D("450.00"), capacity_per_kw=D("25.00"), energy_per_mwh=D("75.00")
        ) == [
            "Component 'capacity' band 2 (15–100 kW) 27.23 EUR/kW/year exceeds the capacity cap 25.00 EUR/kW/year by 2.23 EUR/kW/year.",
            "Component 'energy' (block 0–500 MWh/year) 82.40 EUR/MWh exceeds the energy cap 75.00 EUR/MWh by 7.40 EUR/MWh.",
            "Component 'capacity' band 1 (0–15 kW) fixed fee 422.73 + other fixed charges (meter) 50.00 = 472.73 EUR/year "
            "exceeds the fixed-charge cap 450.00 EUR/year by 22.73 EUR/year.",
        ]

    def test_area_bands_and_prices_entered_incl_vat(self):
        # Holte, incl. VAT 42 DKK/m² → 33.60 net; compared net, and incl. VAT against an incl.-VAT cap
        spec = spec_of("holte-2023")
        assert [m for m in messages(spec, area_per_m2=D("33.00")) if "area cap" in m] == [
            "Component 'area' band 1 (0–10000 m²) 33.60 DKK/m²/year exceeds the area cap 33.00 DKK/m²/year by 0.60 DKK/m²/year."
        ]
        assert messages(spec, area_per_m2=D("41.00"), includes_vat=True) == [
            "Component 'area' band 1 (0–10000 m²) 42.00 DKK/m²/year exceeds the area cap 41.00 DKK/m²/year by 1.00 DKK/m²/year.",
        ]


@pytest.mark.django_db
def test_approval_refuses_a_higher_bands_fee_and_price_with_the_cap_named(manager, network):  # noqa: F811
    cap = cost_cap(
        network
    )  # fixed 800.00 DKK/year per connection, capacity 240.00 DKK/kW, energy 600.00 DKK/MWh
    components = [
        {
            "type": "fixed",
            "code": "subscription",
            "description": "Subscription",
            "amount": "300.00",
        },
        {
            "type": "banded",
            "code": "capacity",
            "description": "kW bands",
            "basis": "capacity",
            "unit": "kW",
            "mode": "whole",
            "bands": [
                {"upto": "100", "unit_price": "230", "fixed": "400"},
                {"upto": "500", "unit_price": "235", "fixed": "450"},
                {"unit_price": "245", "fixed": "600"},
            ],
        },
        {"type": "energy", "code": "energy", "description": "Energy", "price": "590"},
    ]
    tariff = TariffFactory(network=network, code="large")
    draft = tariff_version_create(
        tariff=tariff, valid_from=dt.date(2026, 1, 1), components=components
    )
    with pytest.raises(TariffAboveCap) as err:
        tariff_version_approve(version=draft, user=manager, now=NOW)
    where = f"(cap #{cap.pk}, Cost-based / non-profit (DK), 2026-01-01–2027-01-01)"
    assert [e.message for e in err.value.errors] == [
        f"Component 'capacity' band 3 (above 500 kW) 245.00 DKK/kW/year exceeds the capacity cap {where} "
        "240.00 DKK/kW/year by 5.00 DKK/kW/year.",
        f"Component 'capacity' band 3 (above 500 kW) fixed fee 600.00 + other fixed charges (subscription) 300.00 = "
        f"900.00 DKK/year exceeds the fixed-charge cap {where} 800.00 DKK/year by 100.00 DKK/year.",
    ]
    components[1]["bands"][2] = {"unit_price": "240", "fixed": "500"}
    ok = tariff_version_create(tariff=tariff, valid_from=dt.date(2026, 1, 1), components=components)
    assert tariff_version_approve(version=ok, user=manager, now=NOW).approved_under_cap == cap
