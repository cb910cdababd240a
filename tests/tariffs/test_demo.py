"""The demo step runs end to end through the real import task, cost, cap and approval."""

import datetime as dt
import io

import pytest

from heatutility.demo import DemoContext
from tariffs.models import DataImport, PriceCap, TariffVersion
from tariffs.selectors import tariff_slices_for_connections

pytestmark = pytest.mark.django_db


def test_demo_step_loads_a_year_and_approves_a_tariff_under_the_cap():
    import customers.demo
    import tariffs.demo

    ctx = DemoContext(as_of=dt.date(2026, 11, 27), size=5, seed=3, stdout=io.StringIO())
    customers.demo.run(ctx)
    lines = tariffs.demo.run(ctx)

    assert DataImport.objects.filter(status=DataImport.Status.DONE).count() == 4
    assert set(
        DataImport.objects.exclude(kind="electricity_charges").values_list("rows", flat=True)
    ) == {8760}
    # grid tariff by time of use (4 bands), system tariffs, tax: imported from CSV
    assert DataImport.objects.get(kind="electricity_charges").rows == 6
    assert "6 electricity charges imported" in lines[0]
    assert "(5 negative)" in lines[0]
    assert "over-cap draft refused: Component 'energy'" in lines[4]
    version = TariffVersion.objects.get(pk=ctx.data["tariff_version_id"])
    assert version.status == TariffVersion.Status.PUBLISHED
    cap = PriceCap.objects.get(pk=ctx.data["price_cap_id"])
    assert version.approved_under_cap == cap
    energy = next(c for c in version.components if c["code"] == "energy")
    assert float(energy["price"]) <= float(cap.energy_cap_per_mwh)
    slices = tariff_slices_for_connections(
        connection_ids=ctx.data["connections"], start=dt.date(2026, 10, 1), end=dt.date(2026, 11, 1)
    )
    assert all(s and s[0][2].version_id == version.pk for s in slices.values())
