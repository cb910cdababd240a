import datetime as dt
import io

import pytest

import customers.demo
from customers.models import Account, Network
from heatutility.demo import DemoContext

pytestmark = pytest.mark.django_db


def test_the_demo_network_can_be_built_again_on_the_same_database():
    for _ in range(2):
        ctx = DemoContext(as_of=dt.date(2026, 11, 27), size=3, seed=1, stdout=io.StringIO())
        customers.demo.run(ctx)

    assert list(Network.objects.order_by("pk").values_list("code", flat=True)) == ["demo", "demo-2"]
    numbers = {
        code: sorted(Account.objects.filter(network__code=code).values_list("number", flat=True))
        for code in ("demo", "demo-2")
    }
    assert numbers == {
        "demo": ["700001", "700002", "700003"],
        "demo-2": ["800001", "800002", "800003"],
    }
