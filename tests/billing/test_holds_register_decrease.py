"""A bill across a register decrease staff have not decided is held.

VEE rejects a reading whose energy or volume register is below the previous usable
read's (an open ``register_decrease`` finding, an error): until staff accept it (the
register fell, or with a wrap count it rolled over) or reject it (a garbled read), the
connection's registers from that read before it on are estimated around a fall nobody
has judged.  A bill whose period reaches into that span, or starts at the decrease's
read, waits for staff with the reason, like a bill across an undecided ambiguous
rollover; a decided decrease, or one after the period, holds nothing.  The billing run
writes bills as COPY rows on PostgreSQL and as drafts elsewhere; both are held.

Figures: each account's connection reads 1,500 kWh in November on 10 kW: energy 1.5 MWh
× 592.52 = 888.78, subscription 1,200 / 12 = 100.00, capacity 120 × 10 / 12 = 100.00;
net 1,088.78, VAT 25 % 272.20, gross 1,360.98.
"""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import Invoice
from billing.services.compute import drafts_compute
from billing.services.runs import billing_run_issue
from heatutility.timeutil import local_midnight
from metering.models import ReadingIssue
from tests.billing.factories import billed_network
from tests.billing.helpers import NOV, NOW, bill_month
from tests.customers.factories import BuildingInterfaceUnitFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.django_db

CPH = "Europe/Copenhagen"
DEC = dt.date(2026, 12, 1)


def _at(day: dt.date, hour: int = 0) -> dt.datetime:
    return local_midnight(day, CPH) + dt.timedelta(hours=hour)


def _decrease(contract, *, since, read, state="open"):
    """A meter on the contract's connection read 52,000 kWh at ``since`` and 51,000 kWh
    at ``read``: VEE rejected the read with a ``register_decrease`` in ``state``."""
    inst = MeterInstallationFactory(
        meter=HeatMeterFactory(),
        unit=BuildingInterfaceUnitFactory(connection=contract.connection),
        installed_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )
    add_readings(inst.meter, [(since, "52000", "1300")])
    add_readings(
        inst.meter,
        [(read, "51000", "1275")],
        status="rejected" if state != "accepted" else "valid",
    )
    ReadingIssue.objects.create(
        meter=inst.meter,
        read_at=read,
        code="register_decrease",
        severity="error",
        state=state,
        message="Energy 52000 → 51000 kWh, volume 1300 → 1275 m³.",
        created_at=read,
    )
    return inst


def _reason(inst, since, read):
    return (
        f"the register of meter {inst.meter.serial} on connection {inst.unit.connection_id} "
        f"went down at {read} from the read at {since}, and staff have not accepted or "
        "rejected the register decrease in the reading issues: the bill's registers may be "
        "wrong until they do (then recompute the draft)"
    )


class TestUndecidedDecreaseHoldsTheBill:
    def test_a_run_holds_the_bills_the_decrease_reaches_and_issues_the_others(self):
        network, contracts = billed_network(accounts=6)
        inside = _decrease(
            contracts[0], since=_at(dt.date(2026, 10, 15)), read=_at(dt.date(2026, 11, 15), 6)
        )
        # read at the period's end: the bill's last register
        at_end = _decrease(contracts[1], since=_at(NOV), read=_at(DEC))
        # read at the period's start: the bill's first register
        at_start = _decrease(contracts[2], since=_at(dt.date(2026, 10, 1)), read=_at(NOV))
        # decided: accepted, rejected
        for contract, state in ((contracts[3], "accepted"), (contracts[4], "rejected")):
            _decrease(
                contract,
                since=_at(dt.date(2026, 10, 15)),
                read=_at(dt.date(2026, 11, 15), 6),
                state=state,
            )
        # after the period: from its last register on
        _decrease(contracts[5], since=_at(DEC), read=_at(dt.date(2026, 12, 20)))

        run = bill_month(network, issue=False)
        billing_run_issue(run=run, issued_at=NOW)

        assert run.held == 3
        reasons = dict(Invoice.objects.filter(held=True).values_list("account_id", "hold_reason"))
        assert reasons == {
            contracts[0].account_id: _reason(inside, "2026-10-15 00:00", "2026-11-15 06:00"),
            contracts[1].account_id: _reason(at_end, "2026-11-01 00:00", "2026-12-01 00:00"),
            contracts[2].account_id: _reason(at_start, "2026-10-01 00:00", "2026-11-01 00:00"),
        }
        assert set(Invoice.objects.filter(held=True).values_list("state", "number", "net")) == {
            ("draft", None, Decimal("1088.78"))
        }
        issued = Invoice.objects.filter(held=False)
        assert sorted(issued.values_list("account_id", flat=True)) == [
            c.account_id for c in contracts[3:]
        ]
        assert set(issued.values_list("state", "hold_reason", "net", "vat", "gross")) == {
            ("issued", "", Decimal("1088.78"), Decimal("272.20"), Decimal("1360.98"))
        }

    def test_the_draft_is_held_with_the_rollover_hold_alike(self):
        _network, contracts = billed_network(accounts=1)
        inst = _decrease(
            contracts[0], since=_at(dt.date(2026, 11, 3), 7), read=_at(dt.date(2026, 11, 20), 7)
        )

        drafts, failures = drafts_compute(
            currency="DKK",
            account_ids=[contracts[0].account_id],
            period_start=NOV,
            period_end=DEC,
            time_zone=CPH,
        )

        assert failures == {}
        assert drafts[0].hold_reasons == [_reason(inst, "2026-11-03 07:00", "2026-11-20 07:00")]
        assert (drafts[0].net, drafts[0].gross) == (Decimal("1088.78"), Decimal("1360.98"))
