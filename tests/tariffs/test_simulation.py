"""Price examples for every listed standard customer, and the impact distribution, worked out by hand."""

import datetime as dt
from decimal import Decimal as D

from tariffs.published import PUBLISHED_TARIFFS
from tariffs.rating import Determinants, TariffSpec, components_from_data
from tariffs.simulation import bill_changes, price_examples


def spec(components) -> TariffSpec:
    return TariffSpec(
        version_id=1,
        tariff_code="t",
        currency="DKK",
        vat_rate=D("0.25"),
        components=components_from_data(components),
    )


def test_price_examples_for_all_listed_standard_customers():
    # HOFOR 2024: kW × 210.91 + MWh × 592.52; ΔT 30 °C sits in the neutral band (cooling line 0.00)
    # kW = MWh·1000 / 2,000 h (houses) or / 2,400 h (multi-dwelling), rounded to 0.01 kW
    examples = {
        e["key"]: e
        for e in price_examples(spec=spec(PUBLISHED_TARIFFS["hofor-2024"]["components"]), year=2026)
    }
    expected = {  # key: (kW, capacity, energy, net, gross incl. 25 % VAT)
        "se-house-15": ("7.50", "1581.83", "8887.80", "10469.63", "13087.04"),
        "se-house-20": ("10.00", "2109.10", "11850.40", "13959.50", "17449.38"),
        "se-house-30": ("15.00", "3163.65", "17775.60", "20939.25", "26174.06"),
        "se-house-40": ("20.00", "4218.20", "23700.80", "27919.00", "34898.75"),
        "se-multi-80": ("33.33", "7029.63", "47401.60", "54431.23", "68039.04"),
        "se-multi-193": ("80.42", "16961.38", "114356.36", "131317.74", "164147.18"),
        "se-multi-500": ("208.33", "43938.88", "296260.00", "340198.88", "425248.60"),
        "se-multi-1000": ("416.67", "87879.87", "592520.00", "680399.87", "850499.84"),
        "dk-house-130m2": ("9.05", "1908.74", "10724.61", "12633.35", "15791.69"),
    }
    assert list(examples) == list(expected)
    for key, (kw, capacity, energy, net, gross) in expected.items():
        e = examples[key]
        assert e["contracted_kw"] == D(kw), key
        assert [(ln.component, ln.amount) for ln in e["lines"]] == [
            ("capacity", D(capacity)),
            ("energy", D(energy)),
            ("cooling", D("0.00")),
        ], key
        assert (e["net"], e["gross"]) == (D(net), D(gross)), key
    assert examples["dk-house-130m2"]["heated_area_m2"] == D("130")
    assert examples["se-multi-193"]["gross_per_mwh"] == D("850.50")  # 164,147.18 / 193


def test_impact_distribution_percentiles_and_largest_increases():
    year = (dt.date(2025, 1, 1), dt.date(2026, 1, 1))
    current = spec([{"type": "energy", "code": "energy", "description": "Energy", "price": "500"}])
    draft = spec(
        [
            {"type": "fixed", "code": "fixed", "description": "Fixed", "amount": "100"},
            {"type": "energy", "code": "energy", "description": "Energy", "price": "480"},
        ]
    )

    def det(mwh):
        return Determinants(
            period_start=year[0],
            period_end=year[1],
            energy_mwh=D(mwh),
            volume_m3=D(0),
            return_temp_c=None,
            flow_temp_c=None,
            contracted_kw=D(5),
            heated_area_m2=D(100),
        )

    # change = 100 − 20 × MWh for 1…10 MWh: 80, 60, 40, 20, 0, −20, −40, −60, −80, −100
    rows = [(i, current, det(i)) for i in range(1, 11)]
    result = bill_changes(rows=rows, draft=draft, largest=3)
    assert result["count"] == 10
    assert result["mean"] == D("-10.00")
    assert (result["min"], result["max"]) == (D("-100.00"), D("80.00"))
    # nearest rank of the sorted changes: p10 → 1st, p25 → 3rd, p50 → 5th, p75 → 8th, p90 → 9th
    assert result["percentiles"] == {
        "p10": D("-100.00"),
        "p25": D("-60.00"),
        "p50": D("-20.00"),
        "p75": D("40.00"),
        "p90": D("60.00"),
    }
    assert (result["increased"], result["decreased"]) == (4, 5)
    assert [(r["connection_id"], r["change"]) for r in result["largest_increases"]] == [
        (1, D("80.00")),
        (2, D("60.00")),
        (3, D("40.00")),
    ]
    # a connection without a current tariff: its whole draft bill is the change
    new = bill_changes(rows=[(99, None, det(2))], draft=draft)
    assert new["largest_increases"][0]["change"] == D("1060.00")
