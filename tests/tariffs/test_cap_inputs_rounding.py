"""A cap's inputs derived from an operating-cost run round as money does: half up.

The electricity cost index (a price per MWh, 4 decimals) and the annualised costs and
sales of a cost-based cap (6 decimals) used to take ``Decimal``'s default, half even,
unlike every other amount and price (``heatutility.money.MONEY_ROUNDING``).  They differ
only on an exact tie, which these figures are built to hit.
"""

import datetime as dt
from decimal import Decimal as D

from tariffs.models import OperatingCost
from tariffs.services import cost_based_inputs_from_cost, electricity_index_from_cost


def cost_run(start: dt.date, end: dt.date, **figures: str) -> OperatingCost:
    # the two functions read the run's figures and period only: no database needed
    return OperatingCost(pk=7, period_start=start, period_end=end, results={"figures": figures})


def test_the_electricity_index_rounds_a_tie_half_up():
    # 1.0001 DKK over 2 MWh: 0.50005 DKK/MWh, a tie at the index's 4 decimals
    cost = cost_run(
        dt.date(2026, 1, 1), dt.date(2026, 2, 1), electricity_cost="1.0001", electricity_mwh="2"
    )
    assert electricity_index_from_cost(cost) == D("0.5001")


def test_the_electricity_index_rounds_a_negative_tie_away_from_zero():
    # a month that earned more from selling power than it paid (a negative cost)
    cost = cost_run(
        dt.date(2026, 1, 1), dt.date(2026, 2, 1), electricity_cost="-1.0001", electricity_mwh="2"
    )
    assert electricity_index_from_cost(cost) == D("-0.5001")


def test_annualised_cap_inputs_round_a_tie_half_up():
    # two years of costs halved: 1.000001 → 0.5000005, a tie at 6 decimals
    cost = cost_run(
        dt.date(2026, 1, 1),
        dt.date(2028, 1, 1),
        variable_cost="1.000001",
        fixed_cost="3.000003",
        heat_sold_mwh="5.000005",
    )
    inputs = cost_based_inputs_from_cost(cost=cost, connections=1, contracted_kw_total=D("10"))
    assert inputs["variable_costs"] == "0.500001"
    assert inputs["fixed_costs"] == "1.500002"
    assert inputs["forecast_sales_mwh"] == "2.500003"
    # the run's own figures are kept as they were
    assert inputs["annualised_from"]["variable_costs"] == "1.000001"
    assert inputs["annualised_from"]["year_fraction"] == "2/1"
