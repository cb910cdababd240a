"""Bad input to the tariffs API gets an itemised 400/422 naming the field, never a 500,
and nothing is half-applied (found by fuzzing the staff API)."""

import datetime as dt
import json
import random
from decimal import Decimal

import pytest

from heatutility.errors import DomainError
from heatutility.roles import TARIFF_MANAGER
from tariffs import models
from tariffs.caps import CapInputsInvalid
from tariffs.imports import parse_electricity_charges, parse_spot_prices, parse_unit_hours
from tariffs.rating import (
    Determinants,
    TariffComponentsInvalid,
    TariffSpec,
    components_from_data,
    rate,
)
from tariffs.services import (
    compute_cap_result,
    data_import_create,
    data_import_run,
    price_cap_compute,
    tariff_version_update_draft,
)
from tests.customers.factories import NetworkFactory, ServiceConnectionFactory
from tests.tariffs.factories import PlantUnitFactory, TariffFactory, TariffVersionFactory
from tests.tariffs.test_api import client_for

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def manager():
    return client_for(TARIFF_MANAGER, "validator")


@pytest.fixture
def network():
    return NetworkFactory(code="val-net")


def fields(response) -> list[str]:
    return [e.get("field") for e in response.json()["errors"]]


# ----------------------------------------------------------------------------- 1. impact as_of
@pytest.mark.parametrize("as_of", ["0001-01-01", "1899-12-31", "2201-01-01", "9999-12-31"])
def test_impact_as_of_outside_1900_to_2200_is_a_400_naming_as_of(manager, as_of):
    version = TariffVersionFactory()
    response = manager.get(f"/api/v1/tariff-versions/{version.pk}/impact/?as_of={as_of}")
    assert response.status_code == 400, response.content
    assert fields(response) == ["as_of"]


def test_impact_at_the_first_accepted_date_works(manager):
    version = TariffVersionFactory()
    response = manager.get(f"/api/v1/tariff-versions/{version.pk}/impact/?as_of=1900-01-01")
    assert response.status_code == 200, response.content
    assert response.json()["period_start"] == "1899-01-01"


# ----------------------------------------------------------------------------- 2. assignments
class TestAssign:
    def test_an_id_beyond_bigint_is_a_400_naming_it(self, manager):
        tariff = TariffFactory()
        response = manager.post(
            "/api/v1/tariff-assignments/assign/",
            {
                "tariff": tariff.pk,
                "connection_ids": [9223372036854775808],
                "valid_from": "2027-01-01",
            },
            format="json",
        )
        assert response.status_code == 400, response.content
        assert fields(response) == ["connection_ids.0"]

    def test_a_negative_id_is_a_400_naming_it(self, manager):
        tariff = TariffFactory()
        response = manager.post(
            "/api/v1/tariff-assignments/assign/",
            {"tariff": tariff.pk, "connection_ids": [-1, 5], "valid_from": "2027-01-01"},
            format="json",
        )
        assert response.status_code == 400, response.content
        assert fields(response) == ["connection_ids.0"]

    def test_unknown_and_foreign_ids_are_named_and_nothing_is_assigned(self, manager, network):
        tariff = TariffFactory(network=network)
        mine = ServiceConnectionFactory(network=network)
        foreign = ServiceConnectionFactory()
        response = manager.post(
            "/api/v1/tariff-assignments/assign/",
            {
                "tariff": tariff.pk,
                "connection_ids": [mine.pk, 999999, mine.pk, foreign.pk, 999999],
                "valid_from": "2027-01-01",
            },
            format="json",
        )
        assert response.status_code == 422, response.content
        body = response.json()
        assert {(e["field"], e["code"]) for e in body["errors"]} == {
            ("connection_ids.1", "not_found"),
            ("connection_ids.3", "wrong_network"),
        }
        assert "999999" in body["message"]
        assert str(foreign.pk) in body["message"]
        assert not models.TariffAssignment.objects.exists()

    def test_known_ids_are_assigned(self, manager, network):
        tariff = TariffFactory(network=network)
        a, b = ServiceConnectionFactory(network=network), ServiceConnectionFactory(network=network)
        response = manager.post(
            "/api/v1/tariff-assignments/assign/",
            {"tariff": tariff.pk, "connection_ids": [a.pk, b.pk, a.pk], "valid_from": "2027-01-01"},
            format="json",
        )
        assert response.status_code == 200, response.content
        assert response.json() == {"created": 2}


# ----------------------------------------------------------------------------- 3. component shapes
def energy(**extra):
    return {"type": "energy", "code": "e", "unit": "MWh", **extra}


MALFORMED = [
    ([energy(blocks=[5])], "components.0.blocks.0"),
    ([energy(blocks=[{"upto": "10", "price": "1"}, "x"])], "components.0.blocks.1"),
    ([energy(blocks={"upto": 1})], "components.0.blocks"),
    (
        [{"type": "banded", "code": "c", "basis": "capacity", "unit": "kW", "bands": [5]}],
        "components.0.bands.0",
    ),
    (
        [
            {
                "type": "banded",
                "code": "c",
                "basis": "capacity",
                "unit": "kW",
                "bands": [{"unit_price": "1"}, 7],
            }
        ],
        "components.0.bands.1",
    ),
    ([energy(seasons=[5])], "components.0.seasons.0"),
    ([energy(seasons="abc")], "components.0.seasons"),
    (
        [energy(seasons=[{"label": "all", "months": "abc", "price": "1"}])],
        "components.0.seasons.0.months",
    ),
    (
        [energy(seasons=[{"label": "all", "months": [1, "x", *range(2, 13)], "price": "1"}])],
        "components.0.seasons.0.months.1",
    ),
    (
        [energy(seasons=[{"label": ["a"], "months": list(range(1, 13)), "price": "1"}])],
        "components.0.seasons.0.label",
    ),
    ([{"type": ["energy"], "code": "e", "price": "1"}], "components.0.type"),
    ([{"type": {"x": 1}, "code": "e", "price": "1"}], "components.0.type"),
    ([energy(code={"a": 1}, price="1")], "components.0.code"),
    ([energy(code="x" * 41, price="1")], "components.0.code"),
    ([energy(description=[1], price="1")], "components.0.description"),
    ([energy(price={"amount": 1})], "components.0.price"),
    ([energy(price=True)], "components.0.price"),
    ([energy(unit=["MWh"], price="1")], "components.0.unit"),
    (
        [
            energy(price="1"),
            {
                "type": "cooling",
                "code": "k",
                "target": "30",
                "penalty_rate": "0.01",
                "energy_components": [{}],
            },
        ],
        "components.1.energy_components.0",
    ),
    (
        [
            energy(price="1"),
            {
                "type": "cooling",
                "code": "k",
                "target": "30",
                "penalty_rate": "0.01",
                "energy_components": "e",
            },
        ],
        "components.1.energy_components",
    ),
    (
        [
            energy(price="1"),
            {
                "type": "cooling",
                "code": "k",
                "target": "30",
                "penalty_rate": "0.01",
                "metric_places": "x",
            },
        ],
        "components.1.metric_places",
    ),
    (
        [
            energy(price="1"),
            {
                "type": "cooling",
                "code": "k",
                "target": "30",
                "penalty_rate": "0.01",
                "metric_places": 10**6,
            },
        ],
        "components.1.metric_places",
    ),
    ([{"type": "fixed", "code": "f", "amount": "1", "per": ["year"]}], "components.0.per"),
    ("abc", "components"),
    ([5], "components.0"),
]


class TestComponentShapes:
    @pytest.mark.parametrize(("components", "field"), MALFORMED)
    def test_create_refuses_with_the_path(self, manager, components, field):
        tariff = TariffFactory()
        response = manager.post(
            "/api/v1/tariff-versions/",
            {"tariff": tariff.pk, "valid_from": "2031-01-01", "components": components},
            format="json",
        )
        assert response.status_code == 400, response.content
        assert field in fields(response)
        assert not models.TariffVersion.objects.exists()

    @pytest.mark.parametrize(("components", "field"), MALFORMED[:8])
    def test_patch_of_a_draft_refuses_with_the_path(self, manager, components, field):
        version = TariffVersionFactory()
        before = list(version.components)
        response = manager.patch(
            f"/api/v1/tariff-versions/{version.pk}/", {"components": components}, format="json"
        )
        assert response.status_code == 400, response.content
        assert field in fields(response)
        version.refresh_from_db()
        assert version.components == before

    def test_the_service_refuses_the_same_as_a_domain_error(self):
        version = TariffVersionFactory()
        with pytest.raises(TariffComponentsInvalid) as err:
            tariff_version_update_draft(version=version, components=[energy(blocks=[5])])
        assert [e.field for e in err.value.errors] == ["components.0.blocks.0"]

    def test_any_json_shape_is_refused_with_paths_never_a_crash(self):
        """Random JSON in every position a component reads: valid, or refused with paths."""
        rnd = random.Random(20270101)
        leaves = [
            None,
            True,
            0,
            -1,
            5,
            1.5,
            "",
            "x",
            "12",
            "1e999999",
            "NaN",
            "sNaN",
            "-Infinity",
            [],
            {},
            [5],
            {"a": 1},
            "MWh",
            "kW",
            "l/h",
            "m²",
            "capacity",
            "area",
            "energy",
            "month",
            "graduated",
            "whole",
            10**30,
        ]
        keys = [
            "type",
            "code",
            "description",
            "price",
            "amount",
            "per",
            "kind",
            "basis",
            "unit",
            "bands",
            "upto",
            "unit_price",
            "fixed",
            "mode",
            "fixed_per",
            "design_delta_t",
            "seasons",
            "label",
            "months",
            "blocks",
            "target",
            "penalty_rate",
            "bonus_rate",
            "metric",
            "source",
            "factor",
            "factor_unit",
            "band_below",
            "band_above",
            "count_from",
            "rate_basis",
            "rate_unit",
            "energy_components",
            "metric_places",
            "max_degrees",
            "target_flow_slope",
            "target_flow_ref",
            "target_min",
            "target_max",
        ]

        def value(depth):
            roll = rnd.random()
            if depth > 2 or roll < 0.5:
                return rnd.choice(leaves)
            if roll < 0.75:
                return [value(depth + 1) for _ in range(rnd.randint(0, 3))]
            return {rnd.choice(keys): value(depth + 1) for _ in range(rnd.randint(0, 4))}

        for _ in range(3000):
            comp = {
                "type": rnd.choice(
                    ["fixed", "banded", "energy", "volume", "cooling", rnd.choice(leaves)]
                ),
                "code": rnd.choice(["a", "b", rnd.choice(leaves)]),
            }
            for key in rnd.sample(keys[2:], rnd.randint(0, 6)):
                comp[key] = value(0)
            data = [comp] if rnd.random() < 0.8 else [comp, value(0)]
            errors = None
            try:
                components_from_data(json.loads(json.dumps(data)))
            except TariffComponentsInvalid as exc:
                errors = exc.errors
            if errors is not None:
                assert errors
                assert all(e.field and e.field.startswith("components") for e in errors), errors


# ----------------------------------------------------------------------------- 4. absurd decimals
class TestComponentValues:
    @pytest.mark.parametrize(
        ("components", "field"),
        [
            ([energy(price="1e999999")], "components.0.price"),
            ([energy(price="-1e999999999")], "components.0.price"),
            ([energy(price="1000000000")], "components.0.price"),
            ([energy(price="NaN")], "components.0.price"),
            ([energy(price="sNaN")], "components.0.price"),
            ([energy(price="Infinity")], "components.0.price"),
            ([energy(price="1.0000001")], "components.0.price"),
            ([energy(price=1e300)], "components.0.price"),
            (
                [energy(blocks=[{"upto": "1e20", "price": "1"}, {"price": "2"}])],
                "components.0.blocks.0.upto",
            ),
            (
                [energy(blocks=[{"upto": "10", "price": "1"}, {"price": "1e999999"}])],
                "components.0.blocks.1.price",
            ),
            (
                [
                    energy(
                        seasons=[
                            {"label": "all", "months": list(range(1, 13)), "price": "1E+999999"}
                        ]
                    )
                ],
                "components.0.seasons.0.price",
            ),
            (
                [
                    {
                        "type": "banded",
                        "code": "c",
                        "basis": "capacity",
                        "unit": "kW",
                        "bands": [{"unit_price": "1e999999"}],
                    }
                ],
                "components.0.bands.0.unit_price",
            ),
            (
                [
                    {
                        "type": "banded",
                        "code": "c",
                        "basis": "capacity",
                        "unit": "l/h",
                        "design_delta_t": "0",
                        "bands": [{"unit_price": "1"}],
                    }
                ],
                "components.0.design_delta_t",
            ),
            ([{"type": "fixed", "code": "f", "amount": "-1e10"}], "components.0.amount"),
            ([{"type": "volume", "code": "v", "price": "0.0000001"}], "components.0.price"),
            (
                [
                    energy(price="1"),
                    {"type": "cooling", "code": "k", "target": "30", "penalty_rate": "1e999999"},
                ],
                "components.1.penalty_rate",
            ),
            (
                [
                    energy(price="1"),
                    {
                        "type": "cooling",
                        "code": "k",
                        "target": "30",
                        "penalty_rate": "0.01",
                        "factor": "0",
                    },
                ],
                "components.1.factor",
            ),
        ],
    )
    def test_refused_with_the_path(self, manager, components, field):
        tariff = TariffFactory()
        response = manager.post(
            "/api/v1/tariff-versions/",
            {"tariff": tariff.pk, "valid_from": "2031-01-01", "components": components},
            format="json",
        )
        assert response.status_code == 400, response.content
        assert field in fields(response)

    def test_the_largest_accepted_price_rates_without_overflow(self):
        spec = TariffSpec(
            version_id=1,
            tariff_code="t",
            currency="DKK",
            vat_rate=Decimal("0.25"),
            prices_include_vat=True,
            components=components_from_data([energy(price="999999999.999999")]),
        )
        det = Determinants(
            period_start=dt.date(2027, 1, 1),
            period_end=dt.date(2028, 1, 1),
            energy_mwh=Decimal("18.1"),
            volume_m3=Decimal(0),
            return_temp_c=None,
            flow_temp_c=None,
            contracted_kw=Decimal(0),
            heated_area_m2=Decimal(0),
        )
        (line,) = rate(determinants=det, tariff=spec)
        assert line.unit_price == Decimal("799999999.999999")
        assert line.amount == Decimal("14480000000.00")  # 18.1 × 799,999,999.999999, half up

    def test_an_absurd_price_can_no_longer_reach_price_examples(self, manager):
        tariff = TariffFactory()
        response = manager.post(
            "/api/v1/tariff-versions/",
            {
                "tariff": tariff.pk,
                "valid_from": "2031-01-01",
                "components": [
                    {"type": "energy", "code": "energy", "unit": "MWh", "price": "1e999999"}
                ],
            },
            format="json",
        )
        assert response.status_code == 400
        assert fields(response) == ["components.0.price"]


# ----------------------------------------------------------------------------- 5. price cap inputs
COST_BASED = {
    "fixed_costs": "1",
    "variable_costs": "1",
    "forecast_sales_mwh": "1",
    "contracted_kw_total": "1",
    "connections": 1,
}
SUBSTITUTION = {"reference": {"energy_mwh": "18.1"}}


def cost_run_of(network):
    return models.OperatingCost.objects.create(
        network=network,
        period_start=dt.date(2026, 1, 1),
        period_end=dt.date(2027, 1, 1),
        cost_per_mwh_produced=Decimal("0"),
        cost_per_mwh_sold=Decimal("0"),
        computed_at=NOW,
    )


class TestCapInputs:
    @pytest.mark.parametrize(
        ("method", "inputs", "field"),
        [
            ("cost_based", {**COST_BASED, "connections": "abc"}, "inputs.connections"),
            ("cost_based", {**COST_BASED, "connections": 1.5}, "inputs.connections"),
            ("cost_based", {**COST_BASED, "connections": 0}, "inputs.connections"),
            ("cost_based", {**COST_BASED, "connections": "+-5"}, "inputs.connections"),
            ("cost_based", {**COST_BASED, "connections": "-+1"}, "inputs.connections"),
            ("cost_based", {**COST_BASED, "connections": "²"}, "inputs.connections"),
            ("cost_based", {**COST_BASED, "fixed_costs": "1e999999"}, "inputs.fixed_costs"),
            ("cost_based", {**COST_BASED, "fixed_costs": "NaN"}, "inputs.fixed_costs"),
            ("cost_based", {**COST_BASED, "fixed_costs": [1]}, "inputs.fixed_costs"),
            ("cost_based", {**COST_BASED, "forecast_sales_mwh": "0"}, "inputs.forecast_sales_mwh"),
            (
                "cost_based",
                {**COST_BASED, "contracted_kw_total": "-5"},
                "inputs.contracted_kw_total",
            ),
            (
                "cost_based",
                {**COST_BASED, "fixed_share_per_connection": "2"},
                "inputs.fixed_share_per_connection",
            ),
            (
                "cost_based",
                {k: v for k, v in COST_BASED.items() if k != "fixed_costs"},
                "inputs.fixed_costs",
            ),
            ("indexation", {"clauses": 5}, "inputs.clauses"),
            ("indexation", {"clauses": [5]}, "inputs.clauses.0"),
            (
                "indexation",
                {
                    "clauses": [
                        {
                            "price": "energy",
                            "base_price": "1",
                            "a": "0.5",
                            "cost_terms": 5,
                            "market_term": {
                                "name": "M",
                                "weight": "0.5",
                                "base": "1",
                                "current": "1",
                            },
                        }
                    ]
                },
                "inputs.clauses.0.cost_terms",
            ),
            (
                "indexation",
                {
                    "clauses": [
                        {
                            "price": "energy",
                            "base_price": "1",
                            "a": "0.5",
                            "market_term": {
                                "name": "M",
                                "weight": "0.5",
                                "base": "0",
                                "current": "1",
                            },
                        }
                    ]
                },
                "inputs.clauses.0.market_term.base",
            ),
            (
                "indexation",
                {
                    "clauses": [
                        {
                            "price": "energy",
                            "base_price": "1",
                            "a": "0.5",
                            "market_term": {
                                "name": "M",
                                "weight": "0.5",
                                "base": "1",
                                "current": "1",
                                "rebase": 5,
                            },
                        }
                    ]
                },
                "inputs.clauses.0.market_term.rebase",
            ),
            (
                "indexation",
                {"clauses": [{"price": "heat", "base_price": "1", "a": "1", "market_term": 5}]},
                "inputs.clauses.0.price",
            ),
            # the market index is entered by staff (DOMAIN.md §5), not taken from a cost run
            (
                "indexation",
                {
                    "clauses": [
                        {
                            "price": "energy",
                            "base_price": "1",
                            "a": "0.5",
                            "market_term": {
                                "name": "M",
                                "weight": "0.5",
                                "base_cost_id": 1,
                                "base": "100",
                                "current": "1",
                            },
                        }
                    ]
                },
                "inputs.clauses.0.market_term.base_cost_id",
            ),
            (
                "indexation",
                {
                    "clauses": [
                        {
                            "price": "energy",
                            "base_price": "1",
                            "a": "0.5",
                            "market_term": {
                                "name": "M",
                                "weight": "0.5",
                                "base": "100",
                                "current_cost_id": 1,
                            },
                        }
                    ]
                },
                "inputs.clauses.0.market_term.current_cost_id",
            ),
            (
                "maximum_price",
                {"fixed_per_year_incl_vat": "1", "price_per_gj_incl_vat": "sNaN"},
                "inputs.price_per_gj_incl_vat",
            ),
            ("substitution", {**SUBSTITUTION, "lifetime_years": 0}, "inputs.lifetime_years"),
            ("substitution", {**SUBSTITUTION, "lifetime_years": "x"}, "inputs.lifetime_years"),
            ("substitution", {**SUBSTITUTION, "individual_scop": "0"}, "inputs.individual_scop"),
            ("substitution", {**SUBSTITUTION, "interest_rate": "-1"}, "inputs.interest_rate"),
            (
                "substitution",
                {**SUBSTITUTION, "include_utility_tariffs": "no"},
                "inputs.include_utility_tariffs",
            ),
            ("substitution", {"reference": 5}, "inputs.reference"),
            ("substitution", {"reference": {"energy_mwh": "0"}}, "inputs.reference.energy_mwh"),
            ("substitution", {}, "inputs.reference"),
        ],
    )
    def test_refused_up_front_naming_the_input(self, manager, network, method, inputs, field):
        response = manager.post(
            "/api/v1/price-caps/",
            {
                "network": network.pk,
                "method": method,
                "period_start": "2027-01-01",
                "period_end": "2028-01-01",
                "inputs": inputs,
            },
            format="json",
        )
        assert response.status_code == 400, response.content
        assert field in fields(response)
        assert not models.PriceCap.objects.exists()

    def test_the_service_names_the_input_too(self, network):
        with pytest.raises(CapInputsInvalid) as err:
            compute_cap_result(
                method="cost_based",
                currency="DKK",
                inputs={**COST_BASED, "fixed_costs": "NaN"},
                network=network,
                period_start=dt.date(2027, 1, 1),
                period_end=dt.date(2028, 1, 1),
            )
        assert [e.field for e in err.value.errors] == ["inputs.fixed_costs"]

    def test_a_cost_run_of_another_network_is_refused_on_the_field(self, manager, network):
        cost = cost_run_of(NetworkFactory(code="other-net", currency="SEK"))
        response = manager.post(
            "/api/v1/price-caps/",
            {
                "network": network.pk,
                "method": "cost_based",
                "period_start": "2027-01-01",
                "period_end": "2028-01-01",
                "inputs": COST_BASED,
                "operating_cost": cost.pk,
            },
            format="json",
        )
        assert response.status_code == 400, response.content
        assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
            ("operating_cost", "wrong_network")
        ]
        assert not models.PriceCap.objects.exists()

    def test_the_service_refuses_a_cost_run_of_another_network_too(self, network):
        cost = cost_run_of(NetworkFactory(code="other-net"))
        with pytest.raises(DomainError) as err:
            price_cap_compute(
                network=network,
                method="cost_based",
                period_start=dt.date(2027, 1, 1),
                period_end=dt.date(2028, 1, 1),
                inputs=COST_BASED,
                now=NOW,
                operating_cost=cost,
            )
        assert [(e.field, e.code) for e in err.value.errors] == [
            ("operating_cost", "wrong_network")
        ]
        assert "other-net" in err.value.message
        assert not models.PriceCap.objects.exists()

    def test_a_cap_too_large_to_store_is_refused_naming_the_limit(self, manager, network):
        response = manager.post(
            "/api/v1/price-caps/",
            {
                "network": network.pk,
                "method": "cost_based",
                "period_start": "2027-01-01",
                "period_end": "2028-01-01",
                "inputs": {
                    **COST_BASED,
                    "variable_costs": "100000000000",
                    "forecast_sales_mwh": "0.001",
                },
            },
            format="json",
        )
        assert response.status_code == 422, response.content
        assert fields(response) == ["energy_cap_per_mwh"]
        assert not models.PriceCap.objects.exists()

    def test_an_unknown_operating_cost_is_named(self, manager, network):
        response = manager.post(
            "/api/v1/price-caps/",
            {
                "network": network.pk,
                "method": "indexation",
                "period_start": "2027-01-01",
                "period_end": "2028-01-01",
                "inputs": {
                    "clauses": [
                        {
                            "price": "energy",
                            "base_price": "100",
                            "a": "0.4",
                            "cost_terms": [
                                {
                                    "name": "el",
                                    "weight": "0.3",
                                    "base_cost_id": 999999,
                                    "current": "1",
                                }
                            ],
                            "market_term": {
                                "name": "M",
                                "weight": "0.3",
                                "base": "1",
                                "current": "1",
                            },
                        }
                    ]
                },
            },
            format="json",
        )
        assert response.status_code == 422, response.content
        assert fields(response) == ["inputs.clauses.0.cost_terms.0.base_cost_id"]

    def test_valid_inputs_still_compute(self, manager, network):
        response = manager.post(
            "/api/v1/price-caps/",
            {
                "network": network.pk,
                "method": "maximum_price",
                "period_start": "2027-01-01",
                "period_end": "2028-01-01",
                "inputs": {"fixed_per_year_incl_vat": "500", "price_per_gj_incl_vat": "47.38"},
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        assert response.json()["energy_cap_per_mwh"] == "170.57"


# ----------------------------------------------------------------------------- 6. plant data imports
class TestDataImports:
    @pytest.mark.parametrize(
        ("extra", "field"),
        [
            ({"currency": "DKKX"}, "currency"),
            ({"currency": "dkk"}, "currency"),
            ({"price_area": "X" * 21}, "price_area"),
            ({"time_zone": "Not/AZone"}, "time_zone"),
            ({"time_zone": "../../etc/passwd"}, "time_zone"),
            ({"time_zone": "Europe"}, "time_zone"),
        ],
    )
    def test_bad_settings_are_a_400_naming_the_field(self, manager, extra, field):
        response = manager.post(
            "/api/v1/plant-data-imports/",
            {"kind": "spot_prices", "price_area": "DK2", "content": "time,price\n", **extra},
            format="json",
        )
        assert response.status_code == 400, response.content
        assert fields(response) == [field]
        assert not models.DataImport.objects.exists()

    def test_a_file_above_the_upload_limit_is_a_413_and_nothing_is_recorded(
        self, manager, settings
    ):
        from django.core.files.uploadedfile import SimpleUploadedFile

        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
        prices = "time,price\n" + "2026-01-05T00:00:00+01:00,1\n" * 10
        response = manager.post(
            "/api/v1/plant-data-imports/",
            {
                "kind": "spot_prices",
                "price_area": "DK2",
                "file": SimpleUploadedFile("prices.csv", prices.encode()),
            },
            format="multipart",
        )
        assert response.status_code == 413, response.content
        assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
            ("file", "too_large")
        ]
        assert not models.DataImport.objects.exists()

    def test_a_long_file_name_is_shortened_not_a_server_error(self, manager):
        """An upload's name may have 255 characters (Django cuts it there); the import
        keeps 200: PostgreSQL refused the longer one with a 500."""
        from django.core.files.uploadedfile import SimpleUploadedFile

        prices = "time,price\n2026-01-05T00:00:00+01:00,1\n"
        response = manager.post(
            "/api/v1/plant-data-imports/",
            {
                "kind": "spot_prices",
                "price_area": "DK2",
                "file": SimpleUploadedFile("p" * 240 + ".csv", prices.encode()),
            },
            format="multipart",
        )
        assert response.status_code == 202, response.content
        assert response.json()["filename"] == "p" * 196 + ".csv"
        assert models.DataImport.objects.get().filename == "p" * 196 + ".csv"

    def test_an_unknown_zone_fails_the_import_with_a_reason_instead_of_leaving_it_pending(self):
        record = data_import_create(
            kind="spot_prices",
            price_area="DK2",
            time_zone="Not/AZone",
            content="time,price\n2027-01-01 00:00,1\n",
            enqueue=False,
        )
        record = data_import_run(data_import_id=record.pk, now=NOW)
        assert record.status == models.DataImport.Status.FAILED
        assert record.errors[0]["code"] == "invalid_time_zone"
        assert record.errors[0]["field"] == "time_zone"

    def test_numeric_overflow_in_a_scada_file_is_reported_by_row_and_column(self):
        unit = PlantUnitFactory()
        hours = [f"2027-01-05T{h:02d}:00:00+01:00" for h in range(24)]
        rows = [f"{t},5.0,1.6\n" for t in hours]
        rows[2] = f"{hours[2]},1e300,1.6\n"
        rows[5] = f"{hours[5]},5.0,inf\n"
        record = data_import_create(
            kind="unit_hours",
            unit=unit,
            enqueue=False,
            content="time,heat_mwh,electricity_mwh\n" + "".join(rows),
        )
        record = data_import_run(data_import_id=record.pk, now=NOW)
        assert record.status == models.DataImport.Status.FAILED
        assert [(e["code"], e["row"], e["field"]) for e in record.errors] == [
            ("out_of_range", 4, "heat_mwh"),
            ("out_of_range", 7, "electricity_mwh"),
        ]
        assert not models.UnitHour.objects.exists()

    def test_values_are_checked_against_what_the_columns_hold(self):
        hours = [f"2027-01-05T{h:02d}:00:00+01:00" for h in range(24)]
        ok = "time,heat_mwh,supply_c\n" + "".join(f"{t},99999999.999999,9999.99\n" for t in hours)
        assert len(parse_unit_hours(ok, time_zone="Europe/Copenhagen")) == 24
        from tariffs.imports import ImportRejected

        with pytest.raises(ImportRejected) as err:
            parse_unit_hours(ok.replace("9999.99\n", "10000\n", 1), time_zone="Europe/Copenhagen")
        assert [(e.row, e.field) for e in err.value.errors] == [(2, "supply_c")]
        with pytest.raises(ImportRejected) as err:
            parse_spot_prices(
                "time,price\n"
                + "".join(f"{t},{'1e12' if i == 0 else 1}\n" for i, t in enumerate(hours)),
                time_zone="Europe/Copenhagen",
                currency="DKK",
            )
        assert [(e.code, e.row, e.field) for e in err.value.errors] == [
            ("out_of_range", 2, "price")
        ]

    def test_charge_files_bound_amounts_and_dates(self):
        from tariffs.imports import ImportRejected

        with pytest.raises(ImportRejected) as err:
            parse_electricity_charges(
                "kind,valid_from,valid_to,amount_per_mwh\ngrid,2027-01-01,,1e20\ntax,0001-01-01,,1\n"
                "system,2027-01-01,9999-01-01,1\n",
                price_area="DK2",
                currency="DKK",
            )
        assert [(e.code, e.row, e.field) for e in err.value.errors] == [
            ("out_of_range", 2, "amount_per_mwh"),
            ("invalid_date", 3, "valid_from"),
            ("invalid_date", 4, "valid_to"),
        ]


# ----------------------------------------------------------------------------- 7. dates
class TestDates:
    def test_operating_cost_dates_are_bounded_and_ordered(self, manager, network):
        r = manager.post(
            "/api/v1/operating-costs/",
            {"network": network.pk, "period_start": "0001-01-01", "period_end": "0001-12-31"},
            format="json",
        )
        assert r.status_code == 400, r.content
        assert fields(r) == ["period_start", "period_end"]
        r = manager.post(
            "/api/v1/operating-costs/",
            {"network": network.pk, "period_start": "2027-02-01", "period_end": "2027-01-01"},
            format="json",
        )
        assert r.status_code == 400, r.content
        assert fields(r) == ["period_end"]

    def test_price_cap_dates_are_bounded_and_ordered(self, manager, network):
        payload = {
            "network": network.pk,
            "method": "maximum_price",
            "inputs": {"fixed_per_year_incl_vat": "1", "price_per_gj_incl_vat": "1"},
        }
        r = manager.post(
            "/api/v1/price-caps/",
            {**payload, "period_start": "0001-01-01", "period_end": "9999-12-31"},
            format="json",
        )
        assert r.status_code == 400, r.content
        assert fields(r) == ["period_start", "period_end"]
        r = manager.post(
            "/api/v1/price-caps/",
            {**payload, "period_start": "2027-01-01", "period_end": "2027-01-01"},
            format="json",
        )
        assert r.status_code == 400, r.content
        assert fields(r) == ["period_end"]

    def test_version_assignment_and_charge_dates_are_bounded(self, manager):
        version = TariffVersionFactory()
        tariff = version.tariff
        checks = [
            manager.post(
                "/api/v1/tariff-versions/",
                {"tariff": tariff.pk, "valid_from": "0001-01-01", "components": version.components},
                format="json",
            ),
            manager.patch(
                f"/api/v1/tariff-versions/{version.pk}/", {"valid_to": "9999-12-31"}, format="json"
            ),
            manager.post(
                f"/api/v1/tariff-versions/{version.pk}/new-version/",
                {"valid_from": "0001-01-01"},
                format="json",
            ),
            manager.post(
                "/api/v1/tariff-assignments/assign/",
                {"tariff": tariff.pk, "connection_ids": [1], "valid_from": "0001-01-01"},
                format="json",
            ),
            manager.post(
                "/api/v1/electricity-charges/",
                {
                    "price_area": "DK2",
                    "kind": "grid",
                    "valid_from": "0001-01-01",
                    "amount_per_mwh": "1",
                },
                format="json",
            ),
        ]
        assert [r.status_code for r in checks] == [400] * 5
        assert [fields(r) for r in checks] == [
            ["valid_from"],
            ["valid_to"],
            ["valid_from"],
            ["valid_from"],
            ["valid_from"],
        ]
        assert models.TariffVersion.objects.count() == 1
        assert not models.ElectricityCharge.objects.exists()


# ----------------------------------------------------------------------------- 8. check constraints as fields
class TestConstraintsAsFields:
    def test_vat_rate_out_of_range_is_a_400_naming_vat_rate(self, manager):
        version = TariffVersionFactory()
        r = manager.patch(
            f"/api/v1/tariff-versions/{version.pk}/", {"vat_rate": "9.9999"}, format="json"
        )
        assert r.status_code == 400, r.content
        assert fields(r) == ["vat_rate"]
        r = manager.post(
            "/api/v1/tariff-versions/",
            {
                "tariff": version.tariff_id,
                "valid_from": "2031-01-01",
                "vat_rate": "1.0000",
                "components": version.components,
            },
            format="json",
        )
        assert r.status_code == 400, r.content
        assert fields(r) == ["vat_rate"]
        version.refresh_from_db()
        assert version.vat_rate == Decimal("0.25")

    def test_valid_to_before_valid_from_names_the_field(self, manager):
        version = TariffVersionFactory(valid_from=dt.date(2026, 1, 1))
        r = manager.patch(
            f"/api/v1/tariff-versions/{version.pk}/", {"valid_to": "2025-01-01"}, format="json"
        )
        assert r.status_code == 422, r.content
        assert fields(r) == ["valid_to"]
        r = manager.patch(
            f"/api/v1/tariff-versions/{version.pk}/", {"valid_to": "2027-01-01"}, format="json"
        )
        assert r.status_code == 200
        r = manager.patch(
            f"/api/v1/tariff-versions/{version.pk}/", {"valid_from": "2027-06-01"}, format="json"
        )
        assert r.status_code == 422, r.content
        assert fields(r) == ["valid_from"]
        r = manager.patch(
            f"/api/v1/tariff-versions/{version.pk}/",
            {"valid_from": "2027-06-01", "valid_to": "2027-01-01"},
            format="json",
        )
        assert r.status_code == 400, r.content
        assert fields(r) == ["valid_to"]
        r = manager.post(
            "/api/v1/tariff-versions/",
            {
                "tariff": version.tariff_id,
                "valid_from": "2031-01-01",
                "valid_to": "2030-01-01",
                "components": version.components,
            },
            format="json",
        )
        assert r.status_code == 400, r.content
        assert fields(r) == ["valid_to"]
        version.refresh_from_db()
        assert (version.valid_from, version.valid_to) == (dt.date(2026, 1, 1), dt.date(2027, 1, 1))

    def test_electricity_charge_periods_and_hours_name_the_field(self, manager):
        base = {
            "price_area": "DK2",
            "kind": "grid",
            "amount_per_mwh": "1",
            "valid_from": "2027-01-01",
        }
        r = manager.post(
            "/api/v1/electricity-charges/", {**base, "valid_to": "2026-01-01"}, format="json"
        )
        assert (r.status_code, fields(r)) == (400, ["valid_to"])
        r = manager.post(
            "/api/v1/electricity-charges/", {**base, "hour_from": 17, "hour_to": 17}, format="json"
        )
        assert (r.status_code, fields(r)) == (400, ["hour_to"])
        r = manager.post("/api/v1/electricity-charges/", {**base, "hour_to": 25}, format="json")
        assert (r.status_code, fields(r)) == (400, ["hour_to"])
        assert not models.ElectricityCharge.objects.exists()

    @pytest.mark.parametrize("currency", ["eu", "EU", "EURO", "€"])
    def test_an_electricity_charge_currency_is_three_capital_letters(self, manager, currency):
        base = {
            "price_area": "DK2",
            "kind": "grid",
            "amount_per_mwh": "1",
            "valid_from": "2027-01-01",
        }
        r = manager.post(
            "/api/v1/electricity-charges/", {**base, "currency": currency}, format="json"
        )
        assert (r.status_code, fields(r)) == (400, ["currency"])
        assert not models.ElectricityCharge.objects.exists()
        assert (
            manager.post(
                "/api/v1/electricity-charges/", {**base, "currency": "EUR"}, format="json"
            ).status_code
            == 201
        )
