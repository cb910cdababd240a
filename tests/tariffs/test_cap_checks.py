"""Charges a cap has no per-unit limit for (area, volume, capacity) are still bounded, on the
reference customer's bill; the substitution reference customer assumes the standard values."""

import datetime as dt
from decimal import Decimal as D

import pytest

from tariffs.caps import CapLimits, check_against_cap, parse_cap_inputs
from tariffs.rating import Determinants, TariffSpec, components_from_data
from tariffs.simulation import last_year_determinants
from tests.customers.factories import ServiceConnectionFactory

FYN_AREA = {
    "type": "banded",
    "code": "area",
    "basis": "area",
    "unit": "m²",
    "bands": [
        {"upto": "150", "unit_price": "10"},
        {"upto": "300", "unit_price": "9"},
        {"upto": "500", "unit_price": "8"},
        {"unit_price": "7"},
    ],
}


def spec(components, *, vat="0.25", incl=False, cur="DKK") -> TariffSpec:
    return TariffSpec(
        version_id=1,
        tariff_code="t",
        currency=cur,
        vat_rate=D(vat),
        components=components_from_data(components),
        prices_include_vat=incl,
    )


def excesses(tariff, **limits):
    return [
        (e.component, e.price, e.limit, e.excess)
        for e in check_against_cap(spec=tariff, cap=CapLimits(currency=tariff.currency, **limits))
    ]


COST_CAP = {
    "energy_per_mwh": D("600.00"),
    "fixed_per_year": D("800.00"),
    "capacity_per_kw": D("240.00"),
}
NL_CAP = {
    "includes_vat": True,
    "energy_per_mwh": D("180.00"),
    "fixed_per_year": D("600.00"),
    "label": "maximum price",
}


class TestCostBasedCapBoundsAreaAndVolumeCharges:
    def test_area_and_volume_charges_are_refused_with_their_excess(self):
        # reference house 130 m², 18.1 MWh, 9.05 kW, 518.87 m³:
        # area 130 × 1,000 = 130,000.00 > 240 × 9.05 = 2,172.00; energy 10,860.00 + water 500 × 518.87
        # = 259,435.00 → 270,295.00 > 600 × 18.1 = 10,860.00
        tariff = spec(
            [
                {"type": "fixed", "code": "sub", "amount": "800"},
                {
                    "type": "banded",
                    "code": "area",
                    "basis": "area",
                    "unit": "m²",
                    "bands": [{"unit_price": "1000"}],
                },
                {"type": "energy", "code": "energy", "price": "600"},
                {"type": "volume", "code": "water", "price": "500"},
            ]
        )
        assert excesses(tariff, **COST_CAP) == [
            ("water", D("270295.00"), D("10860.00"), D("259435.00")),
            ("area", D("130000.00"), D("2172.00"), D("127828.00")),
        ]

    def test_message_names_component_and_reference_customer(self):
        tariff = spec(
            [
                {"type": "energy", "code": "energy", "price": "600"},
                {"type": "volume", "code": "water", "price": "1"},
            ]
        )
        [e] = check_against_cap(spec=tariff, cap=CapLimits(currency="DKK", **COST_CAP))
        assert e.message() == (
            "Component 'water' (volume charge as an energy-type charge; reference customer 18.1 MWh, 518.87 m³, "
            "9.05 kW, 130 m²: energy 10860.00 + water 518.87 =) 11378.87 DKK/year exceeds the energy cap "
            "600.00 DKK/MWh × 18.1 MWh 10860.00 DKK/year by 518.87 DKK/year."
        )

    def test_area_and_volume_charges_within_the_cap_pass(self):
        # energy 500/MWh × 18.1 = 9,050.00 + water 3.00 × 518.87 = 1,556.61 → 10,606.61 ≤ 10,860.00;
        # capacity 100 × 9.05 = 905.00 + area 10 × 130 = 1,300.00 → 2,205.00 > 2,172.00 by 33.00
        tariff = spec(
            [
                {
                    "type": "banded",
                    "code": "capacity",
                    "basis": "capacity",
                    "unit": "kW",
                    "bands": [{"unit_price": "100"}],
                },
                {
                    "type": "banded",
                    "code": "area",
                    "basis": "area",
                    "unit": "m²",
                    "bands": [{"unit_price": "10"}],
                },
                {"type": "energy", "code": "energy", "price": "500"},
                {"type": "volume", "code": "water", "price": "3"},
            ]
        )
        assert excesses(tariff, **COST_CAP) == [("area", D("2205.00"), D("2172.00"), D("33.00"))]
        assert excesses(tariff, **{**COST_CAP, "capacity_per_kw": D("250.00")}) == []

    def test_an_area_cap_of_its_own_is_used_instead(self):
        tariff = spec(
            [
                {"type": "energy", "code": "energy", "price": "600"},
                {
                    "type": "banded",
                    "code": "area",
                    "basis": "area",
                    "unit": "m²",
                    "bands": [{"unit_price": "1000"}],
                },
            ]
        )
        assert excesses(tariff, **COST_CAP, area_per_m2=D("1000.00")) == []


class TestMaximumPriceCoversTheWholeBill:
    def test_capacity_and_volume_on_top_of_the_maximum_are_refused(self):
        # incl. VAT: fixed 600.00 + 50 EUR/GJ × 65.16 GJ = 3,258.00 → allowed 3,858.00; the bill adds
        # 100 EUR/kW × 9.05 kW = 905.00 and 10 EUR/m³ × 518.87 m³ = 5,188.70 → 9,951.70
        tariff = spec(
            [
                {"type": "fixed", "code": "vastrecht", "amount": "600"},
                {"type": "energy", "code": "energy", "unit": "GJ", "price": "50"},
                {
                    "type": "banded",
                    "code": "capacity",
                    "basis": "capacity",
                    "unit": "kW",
                    "bands": [{"unit_price": "100"}],
                },
                {"type": "volume", "code": "water", "price": "10"},
            ],
            vat="0.21",
            incl=True,
            cur="EUR",
        )
        assert excesses(tariff, **NL_CAP) == [
            ("water", D("8446.70"), D("3258.00"), D("5188.70")),
            ("capacity", D("9951.70"), D("3858.00"), D("6093.70")),
        ]

    def test_a_tariff_at_the_maximum_passes(self):
        tariff = spec(
            [
                {"type": "fixed", "code": "vastrecht", "amount": "600"},
                {"type": "energy", "code": "energy", "unit": "GJ", "price": "50"},
            ],
            vat="0.21",
            incl=True,
            cur="EUR",
        )
        assert excesses(tariff, **NL_CAP) == []


class TestSubstitutionReferenceCustomer:
    FYN = [
        {"type": "fixed", "code": "meter", "amount": "260"},
        FYN_AREA,
        {"type": "energy", "code": "energy", "unit": "GJ", "price": "87"},
        {"type": "volume", "code": "water", "price": "50"},
    ]

    def test_missing_reference_values_take_the_standard_assumptions(self):
        inputs = {"reference": {"energy_mwh": "18.1", "heated_area_m2": "0"}}
        v = parse_cap_inputs(method="substitution", inputs=inputs)
        assert {k: v["reference"][k] for k in ("volume_m3", "contracted_kw", "heated_area_m2")} == {
            "volume_m3": D("518.87"),
            "contracted_kw": D("9.05"),
            "heated_area_m2": D("130"),
        }
        # the cap's inputs say what was assumed
        assert inputs["reference"] == {
            "energy_mwh": "18.1",
            "volume_m3": "518.87",
            "contracted_kw": "9.05",
            "heated_area_m2": "130",
            "assumed": ["volume_m3", "contracted_kw", "heated_area_m2"],
        }

    def test_stated_reference_values_are_kept(self):
        inputs = {"reference": {"energy_mwh": "2.4", "heated_area_m2": "130", "contracted_kw": "9"}}
        v = parse_cap_inputs(method="substitution", inputs=inputs)
        assert (
            v["reference"]["volume_m3"],
            v["reference"]["contracted_kw"],
            v["reference"]["heated_area_m2"],
        ) == (D("68.80"), D("9"), D("130"))
        assert inputs["reference"]["assumed"] == ["volume_m3"]

    def test_standard_assumptions_for_other_consumptions(self):
        from tariffs.simulation import standard_assumptions

        assert standard_assumptions(D("50")) == {
            "volume_m3": D("1433.33"),
            "contracted_kw": D("20.83"),
            "heated_area_m2": D("384.62"),
        }

    def test_reference_bill_counts_volume_area_and_capacity(self):
        # stored caps read as 0 m³, 0 kW, 0 m²: 260 + 1,300 + 87 × 65.16 = 5,668.92 + 50 × 518.87
        # = 25,943.50 → 33,172.42 (was 5,928.92 without volume and area)
        ref = Determinants(
            period_start=dt.date(2026, 1, 1),
            period_end=dt.date(2027, 1, 1),
            energy_mwh=D("18.1"),
            volume_m3=D(0),
            return_temp_c=None,
            flow_temp_c=None,
            contracted_kw=D(0),
            heated_area_m2=D(0),
        )
        from tariffs.caps import reference_customer

        assert reference_customer(ref)[1] == ("volume_m3", "contracted_kw", "heated_area_m2")
        cap = CapLimits(
            currency="DKK", reference_total=D("10000.00"), reference=ref, label="substitution"
        )
        [e] = check_against_cap(spec=spec(self.FYN), cap=cap)
        assert (e.price, e.limit, e.excess) == (D("33172.42"), D("10000.00"), D("23172.42"))


@pytest.mark.django_db
class TestStandardEstimateInALeapWindow:
    def test_twelve_months_over_29_february_are_one_year(self):
        c = ServiceConnectionFactory()  # 130 m²
        det, source = last_year_determinants(
            connection_ids=[c.pk], start=dt.date(2023, 4, 1), end=dt.date(2024, 4, 1)
        )[c.pk]
        assert (source, det.energy_mwh, det.volume_m3) == ("standard", D("16.900"), D("484.47"))

    def test_half_a_leap_year(self):
        # 2024-01-01..2024-07-01 = 182 of 366 days: 16.9 × 182/366 = 8.404
        c = ServiceConnectionFactory()
        det, _ = last_year_determinants(
            connection_ids=[c.pk], start=dt.date(2024, 1, 1), end=dt.date(2024, 7, 1)
        )[c.pk]
        assert det.energy_mwh == D("8.404")
