"""A bill across an ambiguous register rollover staff have not decided is held.

While a ``rollover_ambiguous`` / ``volume_rollover_ambiguous`` finding is open, register
values from the read before it to its read count one wrap where there may have been
more: a bill whose period reaches into that span waits for staff, with the reason, and
is not issued with its run.  A bill before the span, or after the read (every value
after it moves alike), does not depend on the count.  The billing run writes bills as
COPY rows on PostgreSQL and as drafts elsewhere; both are held.
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


def _undecided(contract, *, since, read, code="rollover_ambiguous", state="open"):
    """A meter on the contract's connection with a usable read at ``since`` and, at
    ``read``, a suspect one with an ambiguous-rollover finding in ``state``."""
    inst = MeterInstallationFactory(
        meter=HeatMeterFactory(register_max=Decimal("99999")),
        unit=BuildingInterfaceUnitFactory(connection=contract.connection),
        installed_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )
    add_readings(inst.meter, [(since, "99000", "10")])
    add_readings(inst.meter, [(read, "500", "20")], status="suspect")
    ReadingIssue.objects.create(
        meter=inst.meter,
        read_at=read,
        code=code,
        severity="warning",
        state=state,
        message="x",
        created_at=read,
    )
    return inst


def _reason(inst, register, since, read):
    return (
        f"the {register} register of meter {inst.meter.serial} on connection "
        f"{inst.unit.connection_id} rolled over between {since} and {read}, long enough to "
        "wrap more than once, and counts one wrap until staff decide the ambiguous rollover "
        "in the reading issues (then recompute the draft)"
    )


class TestUndecidedRolloverHoldsTheBill:
    def test_a_run_holds_the_bill_across_the_span_alone_and_issues_the_others(self):
        network, contracts = billed_network(accounts=4)
        october, december = local_midnight(dt.date(2026, 10, 1), CPH), local_midnight(DEC, CPH)
        across = _undecided(
            contracts[0], since=october, read=local_midnight(dt.date(2026, 11, 15), CPH)
        )
        # the November bill starts at the undecided read: both its registers move alike
        _undecided(
            contracts[1],
            since=local_midnight(dt.date(2026, 9, 1), CPH),
            read=local_midnight(NOV, CPH),
        )
        # it ends at the read before the undecided one
        _undecided(contracts[2], since=december, read=local_midnight(dt.date(2027, 3, 1), CPH))
        # staff decided it
        _undecided(
            contracts[3],
            since=october,
            read=local_midnight(dt.date(2026, 11, 15), CPH),
            state="accepted",
        )

        run = bill_month(network, issue=False)
        billing_run_issue(run=run, issued_at=NOW)

        assert run.held == 1
        held = Invoice.objects.get(account=contracts[0].account)
        assert (held.held, held.state, held.number) == (True, "draft", None)
        assert held.hold_reason == _reason(across, "energy", "2026-10-01 00:00", "2026-11-15 00:00")
        others = Invoice.objects.exclude(pk=held.pk)
        assert set(others.values_list("held", "hold_reason", "state")) == {(False, "", "issued")}

    def test_a_volume_rollover_holds_the_draft(self):
        _network, contracts = billed_network(accounts=1)
        # the read before is in last December, the undecided read in January: the
        # November bill lies inside the span
        inst = _undecided(
            contracts[0],
            since=local_midnight(dt.date(2025, 12, 1), CPH),
            read=local_midnight(dt.date(2027, 1, 10), CPH) + dt.timedelta(hours=7),
            code="volume_rollover_ambiguous",
        )

        drafts, failures = drafts_compute(
            currency="DKK",
            account_ids=[contracts[0].account_id],
            period_start=NOV,
            period_end=DEC,
            time_zone=CPH,
        )

        assert failures == {}
        assert drafts[0].hold_reasons == [
            _reason(inst, "volume", "2025-12-01 00:00", "2027-01-10 07:00")
        ]
        assert drafts[0].net == Decimal("1088.78")  # billed as the registers stand
