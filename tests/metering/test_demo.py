import datetime as dt
import io

import pytest

from heatutility.demo import DemoContext
from metering.models import BoundaryRegister, IngestBatch, ReadingConflict, ReadingIssue

pytestmark = pytest.mark.django_db


def test_metering_demo_step_ingests_validates_and_estimates():
    import customers.demo
    import metering.demo

    ctx = DemoContext(as_of=dt.date(2026, 11, 27), size=8, seed=1, stdout=io.StringIO())
    customers.demo.run(ctx)

    lines = metering.demo.run(ctx)

    assert len(lines) == 4
    batch = IngestBatch.objects.order_by("pk").first()
    assert batch.state == "done"
    assert batch.accepted == batch.row_count > 8 * 365
    resent = IngestBatch.objects.order_by("pk").last()
    assert (resent.duplicate, resent.conflicting) == (2, 1)
    assert ReadingConflict.objects.count() == 1
    codes = set(ReadingIssue.objects.values_list("code", flat=True))
    assert {"register_decrease", "fault_status", "return_above_flow"} <= codes
    registers = BoundaryRegister.objects.filter(connection_id__in=ctx.data["connections"])
    assert registers.filter(on=dt.date(2026, 11, 1)).count() == 8
    methods = set(registers.filter(status="estimated").values_list("method", flat=True))
    # the meters were installed at 00:00 on 1 January 2024, their first reads delivered
    # are of September 2025: the first batch stores the month starts since the
    # installation too, the first one the initial register itself
    assert methods == {"installation_register", "interpolation", "last_year_degree_days"}
    assert registers.filter(on=dt.date(2024, 1, 1), method="installation_register").count() == 8
