"""A staff edit goes through VEE's rules, as an incoming reading does.

Before, an edit set the reading ``edited`` and VEE never looked at it again (nightly
runs skipped edited readings): an edit typed above the next reading (a spike of 200 kWh
that the next reading takes back) or below the previous one was billed as typed, and
the neighbours judged against the old value kept their verdicts.  Now the edit is judged
with its neighbours in the same transaction (``metering.vee.services.reading_edit``): a
value the rules reject (``register_spike``, ``register_decrease``, …) is refused and
nothing changes; otherwise the neighbours are judged again against it and the boundary
registers it feeds are recomputed.
"""

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from heatutility.errors import DomainError
from metering.models import (
    BoundaryRegister,
    IngestBatch,
    Reading,
    ReadingConflict,
    ReadingEdit,
    ReadingIssue,
)
from metering.services import reading_edit, vee_run_meter
from metering.vee.services import reading_conflicts_resolve
from tests.metering.factories import MeterInstallationFactory
from tests.metering.factories_readings import MeterVendorFactory, add_readings
from tests.metering.test_vee_refresh import D, at

pytestmark = pytest.mark.django_db

DAYS = [D(2026, 1, 30), D(2026, 1, 31), D(2026, 2, 1), D(2026, 2, 2)]
NOW = at(D(2026, 2, 3))


@pytest.fixture
def clerk():
    return User.objects.create_user("clerk")


def meter_with(energies):
    """Daily readings at local midnight (10 kW contracted: at most 360 kWh a day),
    validated."""
    inst = MeterInstallationFactory()
    add_readings(
        inst.meter,
        [
            (at(day), energy, str(i))
            for i, (day, energy) in enumerate(zip(DAYS, energies, strict=True))
        ],
    )
    vee_run_meter(meter_id=inst.meter_id, start=at(DAYS[0]), end=at(DAYS[-1]), now=NOW)
    return inst


def status(inst, day):
    return Reading.objects.get(meter=inst.meter, read_at=at(day)).status


def edit(inst, day, energy, clerk):
    return reading_edit(
        meter_id=inst.meter_id,
        read_at=at(day),
        values={"energy_kwh": Decimal(energy)},
        actor=clerk,
        reason="read off the display",
        now=NOW,
    )


def test_an_edit_above_both_neighbours_is_refused_as_a_spike(clerk):
    inst = meter_with(["1000", "1100", "1200", "1300"])

    with pytest.raises(DomainError) as refused:
        edit(inst, DAYS[1], "1250", clerk)  # above 1 Feb's 1,200: a 50 kWh fall after it

    assert [e.code for e in refused.value.errors] == ["register_spike"]
    reading = Reading.objects.get(meter=inst.meter, read_at=at(DAYS[1]))
    assert (reading.energy_kwh, reading.status) == (Decimal("1100"), "valid")
    assert not ReadingEdit.objects.exists()
    assert [status(inst, day) for day in DAYS] == ["valid"] * 4


def test_an_edit_below_the_previous_reading_is_refused_as_a_decrease(clerk):
    inst = meter_with(["1000", "1100", "1200", "1300"])

    with pytest.raises(DomainError) as refused:
        edit(inst, DAYS[1], "990", clerk)

    assert "register_decrease" in [e.code for e in refused.value.errors]
    assert Reading.objects.get(meter=inst.meter, read_at=at(DAYS[1])).energy_kwh == Decimal("1100")
    assert not ReadingEdit.objects.exists()


def test_an_edit_rejudges_the_reading_after_it_and_the_boundary_it_feeds(clerk):
    # 31 Jan read 1,010 for 1,210 (a digit slipped): 1 Feb's 1,400 is then 390 kWh in a
    # day, above 1.5 × 10 kW (360 kWh), and suspect
    inst = meter_with(["1000", "1010", "1400", "1500"])
    assert [status(inst, day) for day in DAYS] == ["valid", "valid", "suspect", "valid"]
    conn = inst.unit.connection

    edit(inst, DAYS[1], "1210", clerk)

    # 190 kWh from the edited read: 1 Feb is valid again and its finding gone
    assert [status(inst, day) for day in DAYS] == ["valid", "edited", "valid", "valid"]
    assert not ReadingIssue.objects.filter(state="open").exists()
    register = BoundaryRegister.objects.get(connection=conn, on=D(2026, 2, 1))
    assert (register.energy_kwh, register.status) == (Decimal("1400"), "actual")


def _conflict(inst, energy):
    batch = IngestBatch.objects.create(
        vendor=MeterVendorFactory(), source="api", received_at=timezone.now()
    )
    return ReadingConflict.objects.create(
        batch=batch,
        row=0,
        meter=inst.meter,
        read_at=at(DAYS[1]),
        incoming={"energy_value": energy, "energy_unit": "kWh", "volume_m3": "1"},
    )


def test_delivered_values_the_rules_reject_leave_the_conflict_open(clerk):
    spiked = meter_with(["1000", "1100", "1200", "1300"])
    fine = meter_with(["1000", "1100", "1200", "1300"])
    refused_conflict, applied_conflict = _conflict(spiked, "1250"), _conflict(fine, "1150")

    with pytest.raises(DomainError) as refused:
        reading_conflicts_resolve(
            conflicts=ReadingConflict.objects.all(), take_incoming=True, actor=clerk, now=NOW
        )

    assert [e.code for e in refused.value.errors] == ["register_spike"]
    assert refused.value.resolved == 1
    refused_conflict.refresh_from_db()
    applied_conflict.refresh_from_db()
    assert (refused_conflict.state, applied_conflict.state) == ("open", "took")
    assert Reading.objects.get(meter=spiked.meter, read_at=at(DAYS[1])).energy_kwh == Decimal(
        "1100"
    )
    assert Reading.objects.get(meter=fine.meter, read_at=at(DAYS[1])).energy_kwh == Decimal("1150")


def test_the_admin_says_why_delivered_values_were_not_applied(admin_client):
    conflict = _conflict(meter_with(["1000", "1100", "1200", "1300"]), "1250")

    response = admin_client.post(
        "/admin/metering/readingconflict/",
        {"action": "apply_incoming", "_selected_action": [conflict.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "register_spike" not in response.content.decode()  # the rule's message, not code
    assert "the others stay open" in response.content.decode()
    conflict.refresh_from_db()
    assert conflict.state == "open"


def test_an_edited_reading_is_judged_again_by_a_later_run(clerk):
    # a reading delivered after the edit shows the edited value to be a spike: VEE says
    # so in the queue, and the staff decision (edited) stands until staff decide again
    inst = meter_with(["1000", "1100", "1200", "1300"])
    edit(inst, DAYS[3], "1500", clerk)
    add_readings(inst.meter, [(at(D(2026, 2, 3)), "1400", "9")])

    vee_run_meter(meter_id=inst.meter_id, start=at(D(2026, 2, 3)), end=at(D(2026, 2, 3)), now=NOW)

    assert status(inst, DAYS[3]) == "edited"
    assert list(ReadingIssue.objects.filter(state="open").values_list("code", flat=True)) == [
        "register_spike"
    ]
