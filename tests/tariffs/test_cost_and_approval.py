"""Capital cost by the unit's age, yearly cost-based caps from shorter cost runs, and
approving a bounded version after an open one (audit findings 1, 2, 6 and 7)."""

import datetime as dt
from decimal import Decimal as D

import pandas as pd
import pytest
from django.contrib.auth.models import Group, User

from heatutility.roles import TARIFF_MANAGER
from tariffs.costs import UnitParams, operating_cost
from tariffs.models import OperatingCost, PriceCap, TariffVersion, UnitHour
from tariffs.selectors import tariff_slices_for_connections
from tariffs.services import (
    TariffVersionInvalid,
    cost_based_inputs_from_cost,
    operating_cost_compute,
    price_cap_compute,
    price_cap_recompute,
    tariff_version_approve,
    tariff_version_create,
    tariff_version_new_from,
    unit_params,
)
from tests.customers.factories import NetworkFactory, ServiceConnectionFactory
from tests.tariffs.factories import PlantUnitFactory, TariffFactory

NOW = dt.datetime(2025, 12, 1, 9, 0, tzinfo=dt.UTC)
YEAR_2026 = (dt.date(2026, 1, 1), dt.date(2027, 1, 1))


def capital_cost(unit: UnitParams, start: dt.date, end: dt.date) -> D:
    """The cost model's capital cost of one fuel boiler that ran a single hour in the period."""
    t = pd.Timestamp(start, tz="UTC") + pd.Timedelta(hours=12)
    hours = pd.DataFrame(
        {
            "unit_id": [unit.id],
            "hour_start": [t],
            "heat_mwh": [1.0],
            "electricity_mwh": [None],
            "fuel_mwh": [None],
            "source_in_c": [None],
            "source_out_c": [None],
            "supply_c": [None],
            "return_c": [None],
        }
    )
    prices = pd.DataFrame(
        {"hour_start": [t], "spot": [0.0], "grid": [0.0], "system": [0.0], "tax": [0.0]}
    )
    result = operating_cost(
        hours=hours, prices=prices, units=[unit], period_start=start, period_end=end, currency="DKK"
    )
    return result.figures["capital_cost"]


def boiler(**kwargs) -> UnitParams:
    # 1,000,000 DKK over 20 years at 5 %
    base = {
        "id": 1,
        "code": "fb",
        "kind": "fuel_boiler",
        "capacity_mw": D(1),
        "investment": D(1_000_000),
        "lifetime_years": 20,
        "interest_rate": D("0.05"),
    }
    return UnitParams(**{**base, **kwargs})


class TestCapitalCostFollowsTheUnitsAge:
    @pytest.mark.django_db
    def test_depreciation_in_the_eleventh_year_charges_interest_on_half_the_book_value(self):
        unit = PlantUnitFactory(
            kind="fuel_boiler",
            source_type="",
            capacity_mw=D(1),
            investment=D(1_000_000),
            lifetime_years=20,
            interest_rate=D("0.05"),
            capital_method="depreciation",
            commissioned_on=dt.date(2016, 1, 1),
        )
        # 2026 is asset year 11: 1,000,000/20 = 50,000 + 5 % × 1,000,000 × 10/20 = 25,000
        assert capital_cost(unit_params(unit), *YEAR_2026) == D("75000.00")

    @pytest.mark.django_db
    def test_annuity_stops_after_the_lifetime(self):
        unit = PlantUnitFactory(
            kind="fuel_boiler",
            source_type="",
            capacity_mw=D(1),
            investment=D(1_000_000),
            lifetime_years=20,
            interest_rate=D("0.05"),
            capital_method="annuity",
            commissioned_on=dt.date(1990, 1, 1),
        )
        # paid off in 2009: no annuity in 2026 (it was 80,242.59 a year)
        assert capital_cost(unit_params(unit), *YEAR_2026) == D("0.00")

    def test_a_written_off_unit_has_no_depreciation_and_no_interest(self):
        unit = boiler(capital_method="depreciation", commissioned_on=dt.date(1990, 1, 1))
        assert capital_cost(unit, *YEAR_2026) == D("0.00")

    def test_the_last_year_of_the_life_is_still_charged(self):
        # commissioned 2007-01-01: 2026 is year 20 of 20 → 50,000 + 5 % × 1,000,000 × 1/20 = 52,500
        unit = boiler(capital_method="depreciation", commissioned_on=dt.date(2007, 1, 1))
        assert capital_cost(unit, *YEAR_2026) == D("52500.00")

    def test_a_year_across_the_anniversary_is_split_there(self):
        # commissioned 2016-07-01: Jan–Jun 2026 is year 10 (50,000 + 5 % × 1,000,000 × 11/20 = 77,500),
        # Jul–Dec year 11 (75,000); half a year each: 38,750 + 37,500
        unit = boiler(capital_method="depreciation", commissioned_on=dt.date(2016, 7, 1))
        assert capital_cost(unit, *YEAR_2026) == D("76250.00")

    def test_no_capital_cost_before_commissioning(self):
        # commissioned 2026-04-01: annuity 80,242.587… × 9/12 months = 60,181.94
        unit = boiler(capital_method="annuity", commissioned_on=dt.date(2026, 4, 1))
        assert capital_cost(unit, *YEAR_2026) == D("60181.94")

    def test_no_fixed_om_before_commissioning(self):
        # a unit that does not exist yet has no operation to maintain: commissioned
        # 2026-04-01, 12,000 per MW·year × 1 MW × 9/12 months = 9,000.00, not the whole 12,000.00
        unit = boiler(
            capital_method="annuity",
            commissioned_on=dt.date(2026, 4, 1),
            om_fixed_per_mw_year=D(12000),
        )
        t = pd.Timestamp("2026-06-01 12:00", tz="UTC")
        hours = pd.DataFrame(
            {
                "unit_id": [1],
                "hour_start": [t],
                "heat_mwh": [1.0],
                "electricity_mwh": [None],
                "fuel_mwh": [None],
                "source_in_c": [None],
                "source_out_c": [None],
                "supply_c": [None],
                "return_c": [None],
            }
        )
        prices = pd.DataFrame(
            {"hour_start": [t], "spot": [0.0], "grid": [0.0], "system": [0.0], "tax": [0.0]}
        )
        result = operating_cost(
            hours=hours,
            prices=prices,
            units=[unit],
            period_start=YEAR_2026[0],
            period_end=YEAR_2026[1],
            currency="DKK",
        )
        assert result.per_unit["fb"]["om_fixed_cost"] == D("9000.00")
        assert result.figures["om_fixed_cost"] == D("9000.00")
        # written off (after its lifetime) it still runs and is maintained: the whole year
        old = boiler(commissioned_on=dt.date(1990, 1, 1), om_fixed_per_mw_year=D(12000))
        result = operating_cost(
            hours=hours,
            prices=prices,
            units=[old],
            period_start=YEAR_2026[0],
            period_end=YEAR_2026[1],
            currency="DKK",
        )
        assert result.figures["om_fixed_cost"] == D("12000.00")

    def test_without_a_commissioning_date_the_given_year_is_charged(self):
        unit = boiler(capital_method="depreciation")  # year 1: 50,000 + 5 % × 1,000,000
        assert capital_cost(unit, *YEAR_2026) == D("100000.00")

    @pytest.mark.django_db
    def test_the_stored_inputs_say_which_asset_year_was_charged(self):
        network = NetworkFactory(currency="DKK")
        known = PlantUnitFactory(
            plant__network=network,
            code="fb1",
            kind="fuel_boiler",
            source_type="",
            capital_method="depreciation",
            investment=D(1_000_000),
            lifetime_years=20,
            interest_rate=D("0.05"),
            commissioned_on=dt.date(2016, 1, 1),
        )
        unknown = PlantUnitFactory(
            plant=known.plant,
            code="fb2",
            kind="fuel_boiler",
            source_type="",
            investment=D(0),
            commissioned_on=None,
        )
        for unit in (known, unknown):
            UnitHour.objects.create(
                unit=unit, hour_start=dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC), heat_mwh=D(1)
            )
        cost = operating_cost_compute(
            network=network,
            period_start=dt.date(2026, 1, 1),
            period_end=dt.date(2027, 1, 1),
            now=NOW,
        )
        units = {u["code"]: u for u in cost.inputs["units"]}
        assert units["fb1"]["commissioned_on"] == "2016-01-01"
        assert (
            units["fb1"]["capital_year_basis"]
            == "commissioned 2016-01-01: [2026-01-01, 2027-01-01) asset year 11 of 20"
        )
        assert units["fb2"]["capital_year_basis"].startswith(
            "commissioned_on not recorded: charged as asset year 1 of"
        )
        assert cost.results["per_unit"]["fb1"]["capital_cost"] == "75000.00"
        assert cost.results["per_unit"]["fb1"]["asset_year_index"] == "11"


@pytest.mark.django_db
class TestYearlyCostBasedCapFromACostRun:
    def run(self, network, start, end, fixed, variable, sold):
        return OperatingCost.objects.create(
            network=network,
            period_start=start,
            period_end=end,
            inputs={},
            results={
                "figures": {"variable_cost": variable, "fixed_cost": fixed, "heat_sold_mwh": sold}
            },
            cost_per_mwh_produced=D(800),
            cost_per_mwh_sold=D(800),
            computed_at=NOW,
        )

    def cap(self, network, cost):
        inputs = cost_based_inputs_from_cost(
            cost=cost, connections=1000, contracted_kw_total=D(12_000)
        )
        return price_cap_compute(
            network=network,
            method=PriceCap.Method.COST_BASED,
            period_start=YEAR_2026[0],
            period_end=YEAR_2026[1],
            inputs=inputs,
            now=NOW,
            operating_cost=cost,
        )

    def test_a_month_of_fixed_costs_is_annualised(self):
        network = NetworkFactory(currency="DKK")
        cost = self.run(
            network, dt.date(2026, 1, 1), dt.date(2026, 2, 1), "1000000", "3000000", "5000"
        )
        cap = self.cap(network, cost)
        # 1,000,000 for January = 12,000,000 a year: 20 % / 1,000 connections = 2,400.00,
        # 80 % / 12,000 kW = 800.00; energy 3,000,000 / 5,000 MWh = 600.00 whatever the length
        assert (cap.fixed_cap_per_year, cap.capacity_cap_per_kw, cap.energy_cap_per_mwh) == (
            D("2400.00"),
            D("800.00"),
            D("600.00"),
        )
        assert cap.inputs["fixed_costs"] == "12000000"
        assert cap.inputs["annualised_from"] == {
            "operating_cost_period": "[2026-01-01, 2026-02-01)",
            "year_fraction": "1/12",
            "variable_costs": "3000000",
            "fixed_costs": "1000000",
            "forecast_sales_mwh": "5000",
        }
        assert price_cap_recompute(cap=cap) == {}

    def test_a_year_of_costs_is_taken_as_it_is(self):
        network = NetworkFactory(currency="DKK")
        cost = self.run(network, *YEAR_2026, "12000000.00", "36000000.00", "60000.000000")
        cap = self.cap(network, cost)
        assert (cap.fixed_cap_per_year, cap.capacity_cap_per_kw, cap.energy_cap_per_mwh) == (
            D("2400.00"),
            D("800.00"),
            D("600.00"),
        )


@pytest.mark.django_db
class TestApprovingABoundedVersion:
    @pytest.fixture
    def manager(self):
        user = User.objects.create_user(username="manager", password="x", is_staff=True)
        user.groups.add(Group.objects.get(name=TARIFF_MANAGER))
        return User.objects.get(pk=user.pk)

    @pytest.fixture
    def tariff(self):
        return TariffFactory(network=NetworkFactory(currency="DKK"), is_default=True)

    def version(self, tariff, valid_from, valid_to=None, price="500"):
        return tariff_version_create(
            tariff=tariff,
            valid_from=valid_from,
            valid_to=valid_to,
            components=[{"type": "energy", "code": "energy", "price": price}],
        )

    def test_a_bounded_successor_of_an_open_version_is_refused(self, tariff, manager):
        v1 = tariff_version_approve(
            version=self.version(tariff, dt.date(2026, 1, 1)), user=manager, now=NOW
        )
        v2 = self.version(tariff, dt.date(2026, 7, 1), dt.date(2026, 10, 1), price="450")
        with pytest.raises(TariffVersionInvalid) as refused:
            tariff_version_approve(version=v2, user=manager, now=NOW)
        assert [(e.code, e.field) for e in refused.value.errors] == [
            ("would_leave_gap", "valid_to")
        ]
        assert "without a price from 2026-10-01" in refused.value.message
        v1.refresh_from_db()
        v2.refresh_from_db()
        assert (v1.valid_to, v2.status) == (None, TariffVersion.Status.DRAFT)

    def test_an_open_successor_and_its_follow_up_leave_no_day_without_a_tariff(
        self, tariff, manager
    ):
        connection = ServiceConnectionFactory(network=tariff.network)
        v1 = tariff_version_approve(
            version=self.version(tariff, dt.date(2026, 1, 1)), user=manager, now=NOW
        )
        tariff_version_approve(
            version=self.version(tariff, dt.date(2026, 7, 1), price="450"), user=manager, now=NOW
        )
        tariff_version_approve(
            version=tariff_version_new_from(version=v1, valid_from=dt.date(2026, 10, 1)),
            user=manager,
            now=NOW,
        )
        slices = tariff_slices_for_connections(
            connection_ids=[connection.pk], start=YEAR_2026[0], end=YEAR_2026[1]
        )[connection.pk]
        assert [(s, e) for s, e, _ in slices] == [
            (dt.date(2026, 1, 1), dt.date(2026, 7, 1)),
            (dt.date(2026, 7, 1), dt.date(2026, 10, 1)),
            (dt.date(2026, 10, 1), dt.date(2027, 1, 1)),
        ]

    def test_a_bounded_first_version_is_approved(self, tariff, manager):
        v = tariff_version_approve(
            version=self.version(tariff, dt.date(2026, 1, 1), dt.date(2027, 1, 1)),
            user=manager,
            now=NOW,
        )
        assert v.status == TariffVersion.Status.APPROVED
