"""Accounts an instalment or settlement run's chunk could not bill are billed once their
data is put right, as those of invoice runs are: each test failed before its fix."""

import datetime as dt
from decimal import Decimal as D

import pytest

from billing.models import BillingRun, BillingRunException, Invoice
from billing.services.aconto import instalment_plan_create
from billing.services.contract_changes import contracts_rebill_changed
from tests.billing.factories import billed_network, register
from tests.billing.helpers import NOW, bill_month
from tests.billing.test_audit_run_counters import counters, nothing_changed_since_the_last_look

YEAR = dt.date(2026, 1, 1)
NEXT_YEAR = dt.date(2027, 1, 1)
AFTER_THE_YEAR = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)
LATER = dt.datetime(2027, 1, 20, 3, 30, tzinfo=dt.UTC)


def on_account_year(accounts: int = 2):
    """A network whose accounts are on account for 2026 with four quarterly instalments
    issued (each 3,266.34 net: the year's 13,065.36 of 18 MWh)."""
    network, contracts = billed_network(accounts=accounts)
    for contract in contracts:
        instalment_plan_create(
            account=contract.account, year_start=YEAR, frequency="quarterly", now=NOW
        )
    for quarter in (1, 4, 7, 10):
        bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")
    return network, contracts


@pytest.mark.django_db
@pytest.mark.parametrize("issue", [False, True])
def test_an_account_a_settlement_run_could_not_settle_is_settled_once_its_reading_comes(issue):
    network, contracts = on_account_year()
    contracts[1].connection.boundary_registers.filter(on=NEXT_YEAR).delete()
    run = bill_month(
        network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR, issue=issue
    )
    assert BillingRunException.objects.get(run=run).code == "missing_register"
    assert counters(run)[:4] == (2, 1, 0, 1)
    nothing_changed_since_the_last_look()
    recorded = BillingRunException.objects.values("code", "error", "created_at").get()
    assert contracts_rebill_changed(now=LATER) == ([], [])  # the reading not there yet
    assert BillingRunException.objects.values("code", "error", "created_at").get() == recorded

    register(contracts[1].connection, NEXT_YEAR, D("20000") + 24 * 1500)  # the reading comes
    _rerated, billed = contracts_rebill_changed(now=LATER)

    # was never settled: the look retried only invoice runs' exceptions, and a second
    # settlement run for the year is refused while this one stands
    (late,) = billed
    assert (late.account_id, late.kind) == (contracts[1].account_id, "settlement")
    # 18 MWh actual less the instalments' 13,065.36: net 0.00, VAT back 0.02
    assert (late.net, late.vat, late.gross) == (D("0.00"), D("-0.02"), D("-0.02"))
    assert not BillingRunException.objects.filter(run=run).exists()
    if issue:  # after the run's issue: issued at once, as the run issued the other one
        other = Invoice.objects.get(account=contracts[0].account, kind="settlement")
        assert late.number == other.number + 1
        assert (late.run_id, late.state) == (None, other.state)
    else:  # one of the run's drafts, issued with the rest
        assert (late.run_id, late.state) == (run.pk, "draft")
        assert counters(run) == (2, 2, 0, 0, 0)
    assert contracts_rebill_changed(now=LATER) == ([], [])
    assert Invoice.objects.filter(kind="settlement").exclude(state="cancelled").count() == 2


@pytest.mark.django_db
def test_an_account_an_instalment_run_could_not_bill_is_billed_once_its_tariff_is_there():
    from tariffs.models import Tariff, TariffAssignment
    from tests.billing.factories import tariff_version

    network, contracts = billed_network(accounts=2)
    for contract in contracts:
        instalment_plan_create(
            account=contract.account, year_start=YEAR, frequency="quarterly", now=NOW
        )
    special = Tariff.objects.create(network=network, code="special", name="Special")
    TariffAssignment.objects.create(
        connection=contracts[1].connection, tariff=special, valid_from=dt.date(2024, 1, 1)
    )
    run = bill_month(network, start=YEAR, months=3, kind="instalment", issue=False)
    assert BillingRunException.objects.get(run=run).code == "no_tariff"
    nothing_changed_since_the_last_look()

    tariff_version(network=network, tariff=special)  # the tariff gets its version
    _rerated, billed = contracts_rebill_changed(now=NOW)

    (late,) = billed
    assert (late.account_id, late.kind, late.run_id, late.state) == (
        contracts[1].account_id,
        "instalment",
        run.pk,
        "draft",
    )
    assert late.net == D("3266.34")
    assert counters(run) == (2, 2, 0, 0, 0)
    assert not BillingRunException.objects.filter(run=run).exists()


@pytest.mark.django_db
def test_an_account_failed_in_a_cancelled_settlement_run_is_left_to_the_next_run():
    from billing.services.runs import billing_run_cancel

    network, contracts = on_account_year()
    contracts[1].connection.boundary_registers.filter(on=NEXT_YEAR).delete()
    run = bill_month(
        network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR, issue=False
    )
    billing_run_cancel(run=run)
    nothing_changed_since_the_last_look()
    register(contracts[1].connection, NEXT_YEAR, D("20000") + 24 * 1500)

    assert contracts_rebill_changed(now=LATER) == ([], [])
    run.refresh_from_db()
    assert run.state == BillingRun.State.CANCELLED
    assert not Invoice.objects.filter(account=contracts[1].account, kind="settlement").exists()


def failed_settlement(*, issue: bool):
    """A settlement run that could not settle the second account (no reading at the
    year's end), the reading entered since."""
    network, contracts = on_account_year()
    contracts[1].connection.boundary_registers.filter(on=NEXT_YEAR).delete()
    run = bill_month(
        network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR, issue=issue
    )
    register(contracts[1].connection, NEXT_YEAR, D("20000") + 24 * 1500)
    return run, contracts


@pytest.mark.django_db
class TestStaffRetry:
    """Staff need not wait for the night: ``POST runs/{id}/retry-exceptions/`` and the
    admin action bill the run's failed accounts now."""

    URL = "/api/v1/billing/runs/{}/retry-exceptions/"

    def test_a_clerk_bills_a_drafted_runs_failed_account_into_it(self):
        from heatutility.roles import AUDITOR, BILLING_CLERK
        from tests.billing.helpers import client_for

        run, contracts = failed_settlement(issue=False)
        assert client_for(AUDITOR).post(self.URL.format(run.pk)).status_code == 403

        response = client_for(BILLING_CLERK).post(self.URL.format(run.pk))

        assert response.status_code == 200
        body = response.json()
        assert (body["total"], body["done"], body["failed"], body["percent"]) == (2, 2, 0, 100)
        late = Invoice.objects.get(account=contracts[1].account, kind="settlement")
        assert (late.run_id, late.state, late.gross) == (run.pk, "draft", D("-0.02"))

    def test_after_the_runs_issue_it_needs_the_permission_to_issue(self):
        from tests.billing.helpers import api_client, staff_with_permissions

        run, contracts = failed_settlement(issue=True)
        clerk = api_client(staff_with_permissions("clerk", "view_billingrun", "change_billingrun"))
        refused = clerk.post(self.URL.format(run.pk))
        assert refused.status_code == 403
        assert "billing.issue_billingrun" in refused.json()["message"]
        assert not Invoice.objects.filter(account=contracts[1].account, kind="settlement").exists()

        issuer = api_client(
            staff_with_permissions(
                "issuer", "view_billingrun", "change_billingrun", "issue_billingrun"
            )
        )
        assert issuer.post(self.URL.format(run.pk)).status_code == 200
        late = Invoice.objects.get(account=contracts[1].account, kind="settlement")
        assert late.number is not None
        assert late.gross == D("-0.02")

    def test_a_cancelled_run_is_refused(self):
        from billing.services.runs import billing_run_cancel
        from heatutility.roles import BILLING_CLERK
        from tests.billing.helpers import client_for

        run, contracts = failed_settlement(issue=False)
        billing_run_cancel(run=run)

        response = client_for(BILLING_CLERK).post(self.URL.format(run.pk))

        assert response.status_code == 409
        assert not Invoice.objects.filter(
            account=contracts[1].account, kind="settlement", state="draft"
        ).exists()

    def test_the_admin_action_bills_an_invoice_runs_failed_account(self, client):
        from django.contrib.auth.models import User

        from tests.billing.test_audit_run_counters import DEC

        network, contracts = billed_network(accounts=2)
        contracts[1].connection.boundary_registers.filter(on=DEC).delete()
        run = bill_month(network, issue=False)
        register(contracts[1].connection, DEC, D("20000") + 23 * 1500)
        client.force_login(User.objects.create_superuser("boss", "boss@example.org", "pw"))

        page = client.post(
            "/admin/billing/billingrun/",
            {"action": "retry_exceptions", "_selected_action": [run.pk]},
            follow=True,
        ).content.decode()

        assert "1 account(s) billed, 0 still failing." in page
        assert counters(run) == (2, 2, 0, 0, 0)
        assert Invoice.objects.get(account=contracts[1].account).run_id == run.pk
