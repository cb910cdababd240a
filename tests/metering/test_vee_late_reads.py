"""A reading delivered late, between reads VEE has validated already, is judged against
the reads on both sides of it: the nightly run validates a batch's span, and the first
read after the span is judged again with it (as the last one before it is)."""

import datetime as dt
from decimal import Decimal

import orjson
import pytest
from django.test import TestCase

from heatutility.timeutil import local_midnight
from metering.ingest.batches import readings_batch_submit
from metering.models import BoundaryRegister, Reading, ReadingIssue
from metering.services import boundary_registers_ensure, vee_run_pending
from tests.metering.factories import MeterInstallationFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db
CPH = "Europe/Copenhagen"
FEB = dt.date(2026, 2, 1)
MIDNIGHT = local_midnight(FEB, CPH)  # 2026-01-31 23:00 UTC
NOW = dt.datetime(2026, 2, 3, tzinfo=dt.UTC)


def _deliver(vendor, serial, rows, *, received_at):
    body = orjson.dumps(
        [
            {
                "meter": serial,
                "read_at": at.isoformat(),
                "energy": energy,
                "energy_unit": "kWh",
                "volume_m3": volume,
            }
            for at, energy, volume in rows
        ]
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        readings_batch_submit(vendor=vendor, body=body, received_at=received_at)


def test_a_late_garbled_read_between_two_validated_reads_is_the_spike():
    vendor = MeterVendorFactory()
    inst = MeterInstallationFactory(
        meter__vendor=vendor,
        installed_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        unit__connection__contracted_capacity_kw=Decimal("500"),
    )
    # hourly reads around 1 February, 10 kWh an hour, the one at midnight missing
    hours = [h for h in range(-24, 24) if h != 0]
    _deliver(
        vendor,
        inst.meter.serial,
        [(MIDNIGHT + dt.timedelta(hours=h), 1240 + 10 * h, 10 + h / 100) for h in hours],
        received_at=NOW,
    )
    vee_run_pending(now=NOW)
    conn = inst.unit.connection
    boundary_registers_ensure(connection_ids=[conn.pk], dates=[FEB])
    assert BoundaryRegister.objects.get(connection=conn, on=FEB).energy_kwh == Decimal("1240")

    # the head-end delivers 23:30 late, garbled: 1,300 kWh between 1,230 (23:00) and
    # 1,250 (01:00); 70 kWh in half an hour is within the connection's 500 kW
    late = MIDNIGHT - dt.timedelta(minutes=30)
    _deliver(vendor, inst.meter.serial, [(late, 1300, "9.995")], received_at=NOW)
    vee_run_pending(now=NOW)

    # 1,230 and 1,250 agree without it: it is the odd one out, not the reads after it
    assert Reading.objects.get(meter=inst.meter, read_at=late).status == "rejected"
    assert list(
        ReadingIssue.objects.filter(meter=inst.meter, severity="error").values_list(
            "read_at", "code"
        )
    ) == [(late, "register_spike")]
    after = Reading.objects.get(meter=inst.meter, read_at=MIDNIGHT + dt.timedelta(hours=1))
    assert after.status == "valid"
    # January ends at 1,240 kWh, not 1,283.33 (interpolated from the garbled read)
    assert BoundaryRegister.objects.get(connection=conn, on=FEB).energy_kwh == Decimal("1240")
