"""Audit of tariffs and price caps: regression tests for the bugs found."""

import datetime as dt
from decimal import Decimal as D

import pandas as pd
import pytest

from heatutility.errors import DomainError
from tariffs.models import ElectricityCharge, PriceCap, SpotPrice
from tariffs.services import price_cap_compute
from tests.customers.factories import NetworkFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)

SUBSTITUTION = {
    "reference": {"energy_mwh": "2.4", "heated_area_m2": "130", "contracted_kw": "9"},
    "individual_scop": "3.0",
    "consumer_extra_per_mwh": "0",
    "investment": "0",
    "om_per_year": "0",
    "include_utility_tariffs": False,
}


def _hours(start, end):
    """The UTC starts of the Copenhagen hours in ``[start, end)``."""
    return pd.date_range(start, end, freq="h", inclusive="left", tz="Europe/Copenhagen").tz_convert(
        "UTC"
    )


def _unit_hours(unit, start, end):
    """5 MWh of heat for 1.6 MWh of electricity in every hour of ``[start, end)``."""
    from tariffs.models import UnitHour

    UnitHour.objects.bulk_create(
        UnitHour(unit=unit, hour_start=t.to_pydatetime(), heat_mwh=D(5), electricity_mwh=D("1.6"))
        for t in _hours(start, end)
    )


def _prices(area, start, end, skip=()):
    hours = _hours(start, end)
    SpotPrice.objects.bulk_create(
        SpotPrice(price_area=area, hour_start=t.to_pydatetime(), price_per_mwh=D(100))
        for i, t in enumerate(hours)
        if i not in skip
    )
    return len(hours)


def test_substitution_cap_refuses_a_period_with_missing_price_hours():
    net = NetworkFactory(code="sub-gap", price_area="DK1", currency="DKK")
    _prices("DK1", "2026-01-05", "2026-01-06", skip={5})
    with pytest.raises(DomainError) as exc:
        price_cap_compute(
            network=net,
            method=PriceCap.Method.SUBSTITUTION,
            period_start=dt.date(2026, 1, 5),
            period_end=dt.date(2026, 1, 6),
            inputs=dict(SUBSTITUTION),
            now=NOW,
        )
    assert "1 of the 24 hours" in exc.value.message
    assert "2026-01-05 05:00" in exc.value.message  # the first missing hour, local time
    assert [e.field for e in exc.value.errors] == ["period_start"]
    assert not PriceCap.objects.exists()


def test_substitution_cap_over_a_23_hour_dst_day_uses_its_23_hours():
    net = NetworkFactory(code="sub-dst", price_area="DK1", currency="DKK")
    assert _prices("DK1", "2026-03-29", "2026-03-30") == 23
    cap = price_cap_compute(
        network=net,
        method=PriceCap.Method.SUBSTITUTION,
        period_start=dt.date(2026, 3, 29),
        period_end=dt.date(2026, 3, 30),
        inputs=dict(SUBSTITUTION),
        now=NOW,
    )
    assert cap.reference_total_cap == D("80.00")  # 2.4 MWh / SCOP 3 × 100


def test_reference_customer_bill_is_a_yearly_bill_whatever_the_cap_period():
    """A substitution cap is a yearly benchmark (annual MWh, annuity, O&M per year): the
    reference customer's bill it bounds is priced over a whole year, not over the cap's period."""
    from tariffs.caps import check_against_cap
    from tariffs.selectors import tariff_spec_for_version
    from tariffs.services import cap_limits
    from tests.tariffs.factories import TariffVersionFactory

    net = NetworkFactory(code="sub-year", price_area="DK1", currency="DKK")
    _prices("DK1", "2026-01-05", "2026-01-06")
    cap = price_cap_compute(
        network=net,
        method=PriceCap.Method.SUBSTITUTION,
        period_start=dt.date(2026, 1, 5),
        period_end=dt.date(2026, 1, 6),
        inputs=dict(SUBSTITUTION),
        now=NOW,
    )
    assert cap.reference_total_cap == D("80.00")
    version = TariffVersionFactory(
        tariff__network=net,
        components=[
            {"type": "fixed", "code": "sub", "description": "Subscription", "amount": "1000"},
            {"type": "energy", "code": "energy", "description": "Energy", "price": "10"},
        ],
    )
    [excess] = check_against_cap(spec=tariff_spec_for_version(version), cap=cap_limits(cap))
    # 1,000.00 a year + 2.4 MWh × 10 = 1,024.00 (over one day it read 2.69 + 24.00 = 26.69: no excess)
    assert (excess.price, excess.limit) == (D("1024.00"), D("80.00"))


from django.contrib.auth.models import Group, User  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from heatutility.roles import TARIFF_MANAGER  # noqa: E402
from tests.tariffs.factories import PlantUnitFactory  # noqa: E402


def _manager():
    client = APIClient()
    user = User.objects.create_user(username="audit-m", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=TARIFF_MANAGER))
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize(
    "body",
    [{"loss_share": "1.5"}, {"loss_share": "-0.2"}, {"loss_share": "1"}, {"heat_sold_mwh": "-10"}],
)
def test_operating_cost_refuses_impossible_losses_or_sales(
    body, django_capture_on_commit_callbacks
):
    net = NetworkFactory(code="cost-bad", price_area="DK1")
    _unit_hours(PlantUnitFactory(plant__network=net), "2026-01-05", "2026-01-06")
    _prices("DK1", "2026-01-05", "2026-01-06")
    r = _manager().post(
        "/api/v1/operating-costs/",
        {"network": net.id, "period_start": "2026-01-05", "period_end": "2026-01-06", **body},
        format="json",
    )
    assert r.status_code == 400, r.content
    assert next(iter(body)) in str(r.json())
    from tariffs.models import OperatingCost

    assert not OperatingCost.objects.exists()
    # the service refuses it too (admin and other callers)
    from tariffs.services import operating_cost_compute

    with pytest.raises(DomainError) as exc:
        operating_cost_compute(
            network=net,
            period_start=dt.date(2026, 1, 5),
            period_end=dt.date(2026, 1, 6),
            now=NOW,
            **{k: D(v) for k, v in body.items()},
        )
    assert [e.field for e in exc.value.errors] == list(body)


def test_prices_in_another_currency_are_not_mixed_into_costs_or_caps():
    from tariffs.services import operating_cost_compute

    net = NetworkFactory(code="cost-eur", price_area="DK1", currency="EUR")
    _unit_hours(PlantUnitFactory(plant__network=net), "2026-01-05", "2026-01-06")
    _prices("DK1", "2026-01-05", "2026-01-06")  # stored in DKK (the default)
    with pytest.raises(DomainError, match="in DKK"):
        operating_cost_compute(
            network=net, period_start=dt.date(2026, 1, 5), period_end=dt.date(2026, 1, 6), now=NOW
        )
    with pytest.raises(DomainError, match="in DKK"):
        price_cap_compute(
            network=net,
            method=PriceCap.Method.SUBSTITUTION,
            period_start=dt.date(2026, 1, 5),
            period_end=dt.date(2026, 1, 6),
            inputs=dict(SUBSTITUTION),
            now=NOW,
        )
    SpotPrice.objects.update(currency="EUR")
    ElectricityCharge.objects.create(
        price_area="DK1",
        kind="grid",
        valid_from=dt.date(2026, 1, 1),
        amount_per_mwh=D("50"),
        currency="DKK",
    )
    with pytest.raises(DomainError, match="in DKK"):
        operating_cost_compute(
            network=net, period_start=dt.date(2026, 1, 5), period_end=dt.date(2026, 1, 6), now=NOW
        )
    ElectricityCharge.objects.update(currency="EUR")
    cost = operating_cost_compute(
        network=net, period_start=dt.date(2026, 1, 5), period_end=dt.date(2026, 1, 6), now=NOW
    )
    assert cost.results["figures"]["electricity_cost"] == "5760.00"  # 24 × 1.6 × (100 + 50)
