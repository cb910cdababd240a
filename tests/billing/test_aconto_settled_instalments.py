"""An instalment credited by its year's settlement is not credited a second time by hand."""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import Invoice
from billing.services.invoices import InstalmentSettled, invoice_credit
from tests.billing.helpers import bill_month, client_for
from tests.billing.test_aconto import YEAR, planned_network

pytestmark = pytest.mark.django_db
AFTER_THE_YEAR = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)
# 1,200 subscription + 10 kW × 120 + 18 MWh × 592.52 a year; 3,266.34 a quarter
YEAR_NET = Decimal("13065.36")


def billed_net(account) -> Decimal:
    """Net of every issued document of the account, credit notes included."""
    return sum(
        (i.net for i in Invoice.objects.filter(account=account, number__isnull=False)),
        Decimal("0"),
    )


def instalments_billed(network):
    for quarter in (1, 4, 7, 10):
        bill_month(network, start=dt.date(2026, quarter, 1), months=3, kind="instalment")


def second_quarter():
    return Invoice.objects.get(kind="instalment", period_start=dt.date(2026, 4, 1))


def test_an_instalment_of_a_settled_year_is_not_credited_again():
    network, (contract,) = planned_network(accounts=1)
    instalments_billed(network)
    bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR)
    assert billed_net(contract.account) == YEAR_NET

    with pytest.raises(InstalmentSettled) as refused:
        invoice_credit(invoice=second_quarter(), now=AFTER_THE_YEAR)

    settlement = Invoice.objects.get(kind="settlement")
    assert settlement.display_number in refused.value.message
    assert billed_net(contract.account) == YEAR_NET
    assert not Invoice.objects.filter(kind="credit_note").exists()


def test_nor_while_the_settlement_is_a_draft():
    network, _ = planned_network(accounts=1)
    instalments_billed(network)
    bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR, issue=False)

    with pytest.raises(InstalmentSettled) as refused:
        invoice_credit(invoice=second_quarter(), now=AFTER_THE_YEAR)

    assert "the draft settlement of its year (2026-01-01 to 2027-01-01)" in refused.value.message


def test_before_the_year_is_settled_the_settlement_counts_the_credit():
    network, (contract,) = planned_network(accounts=1)
    instalments_billed(network)

    invoice_credit(invoice=second_quarter(), now=AFTER_THE_YEAR)
    bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR)

    assert billed_net(contract.account) == YEAR_NET


def test_once_the_settlement_is_credited_the_instalment_may_be_credited():
    network, (contract,) = planned_network(accounts=1)
    instalments_billed(network)
    bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR)
    invoice_credit(invoice=Invoice.objects.get(kind="settlement"), now=AFTER_THE_YEAR)

    invoice_credit(invoice=second_quarter(), now=AFTER_THE_YEAR)

    # three instalments stand: 3 × 3,266.34
    assert billed_net(contract.account) == Decimal("9799.02")


def test_the_api_answers_409_with_the_reason():
    from heatutility.roles import BILLING_CLERK

    network, _ = planned_network(accounts=1)
    instalments_billed(network)
    bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR)

    response = client_for(BILLING_CLERK).post(
        f"/api/v1/billing/invoices/{second_quarter().pk}/credit/"
    )

    assert response.status_code == 409
    assert response.json()["code"] == "instalment_settled"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_credit_while_the_settlement_is_computed_waits_for_it_and_is_refused(monkeypatch):
    """The settlement run's chunk has counted the instalments (and credits them) but not
    written yet; staff's credit of one of them waits for the chunk's lock on the account,
    then sees the settlement and is refused: the instalment is credited once."""
    from billing.services import runs
    from tests.concurrency import Pause, finish, in_thread, waits_for_a_lock

    network, (contract,) = planned_network(accounts=1)
    instalments_billed(network)
    run = runs.billing_run_create(
        network=network,
        period_start=YEAR,
        months=12,
        kind="settlement",
        now=AFTER_THE_YEAR,
        render_pdfs=False,
    )
    (chunk_id,) = runs.billing_run_plan(run=run, now=AFTER_THE_YEAR)
    pause = Pause(monkeypatch, runs, "_write_numbered")  # counted, not yet written
    settling, settled = in_thread(
        runs.billing_run_chunk_process, chunk_id=chunk_id, now=AFTER_THE_YEAR
    )
    try:
        pause.wait()
        crediting, credited = in_thread(
            invoice_credit, invoice=second_quarter(), now=AFTER_THE_YEAR
        )
        waited = waits_for_a_lock(crediting, "customers_account")
    finally:
        pause.released.set()
    finish(settling, crediting)

    assert settled.get("error") is None
    assert isinstance(credited.get("error"), InstalmentSettled)
    assert waited
    assert not Invoice.objects.filter(kind="credit_note").exists()
    settlement = Invoice.objects.get(kind="settlement", account=contract.account)
    credit = settlement.lines.get(component="on_account")
    assert credit.amount == -4 * Decimal("3266.34")
