"""The accounting journal of on-account instalments and their settlement (accrual).

An instalment is billed before the heat is delivered: a customer prepayment (a
liability), not revenue.  Revenue is recognised when the settlement bills the year's
actual consumption; the settlement's line crediting the instalments releases the
prepayments.  VAT is due when invoiced, instalments included.

Worked figures (tariff of tests/billing/factories, VAT 25 %): 2025 used 18 MWh, so the
plan's year charge is 1,200 subscription + 10 kW × 120 + 18 × 592.52 = 13,065.36; a
monthly instalment 1,088.78 net + 272.20 VAT = 1,360.98.  2026 uses 20 MWh: 2,400.00 +
20 × 592.52 = 14,250.40 net, 3,562.60 VAT.  The settlement: 14,250.40 − 13,065.36 =
1,185.04 net, 3,562.60 − 12 × 272.20 = 296.20 VAT, 1,481.24 gross.
"""

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest

from billing.models import Invoice
from billing.selectors import journal_rows, ledger
from billing.services.aconto import instalment_plan_create
from billing.services.invoices import invoice_credit
from billing.services.rerating import invoice_rerate
from metering.models import BoundaryRegister
from tests.billing.factories import billed_network
from tests.billing.helpers import bill_month, invoice_of

pytestmark = pytest.mark.django_db
YEAR = dt.date(2026, 1, 1)
ALL_TIME = {"start": dt.date(2020, 1, 1), "end": dt.date(2030, 1, 1)}
AFTER_THE_YEAR = dt.datetime(2027, 1, 5, 8, 0, tzinfo=dt.UTC)
ZERO = Decimal("0")


def monthly_plan():
    network, (contract,) = billed_network(accounts=1)  # 1.5 MWh a month in 2025 and 2026
    instalment_plan_create(
        account=contract.account,
        year_start=YEAR,
        frequency="monthly",
        now=dt.datetime(2025, 12, 15, 8, 0, tzinfo=dt.UTC),
    )
    return network, contract


def instalment_billed(network, month: int):
    bill_month(
        network,
        start=dt.date(2026, month, 1),
        kind="instalment",
        now=dt.datetime(2026, month, 1, 8, 0, tzinfo=dt.UTC),
    )


def booked(rows, document: str) -> list[tuple]:
    """(ledger account, text, debit, credit) of one document's rows."""
    return [(r[2], r[4], r[5], r[6]) for r in rows if r[1] == document]


def balance_by_account(rows) -> dict[str, Decimal]:
    """Debits less credits per ledger account."""
    balance: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for r in rows:
        balance[r[2]] += (r[5] or ZERO) - (r[6] or ZERO)
    return dict(balance)


def test_an_instalment_books_a_prepayment_and_its_credit_note_reverses_it():
    network, contract = monthly_plan()
    instalment_billed(network, 1)
    instalment = invoice_of(contract, kind="instalment")
    credit_note = invoice_credit(
        invoice=instalment, now=dt.datetime(2026, 1, 10, 8, 0, tzinfo=dt.UTC)
    )

    rows = list(journal_rows(network_id=network.pk, **ALL_TIME))

    assert booked(rows, instalment.display_number) == [
        ("1100", "On-account instalment", Decimal("1360.98"), ""),
        ("2400", "On-account instalment 1 of 12", "", Decimal("1088.78")),
        ("2610", "VAT 0.2500", "", Decimal("272.20")),
    ]
    assert booked(rows, credit_note.display_number) == [
        ("1100", "Credit note", "", Decimal("1360.98")),
        ("2400", "Credit: On-account instalment 1 of 12", Decimal("1088.78"), ""),
        ("2610", "VAT 0.2500", Decimal("272.20"), ""),
    ]


def test_the_prepayments_account_is_configured_like_the_others(settings):
    settings.BILLING = {**settings.BILLING, "LEDGER": {"prepayments": "2450"}}
    network, _contract = monthly_plan()
    instalment_billed(network, 1)

    rows = list(journal_rows(network_id=network.pk, **ALL_TIME))

    assert [r[2] for r in rows] == ["1100", "2450", "2610"]
    assert ledger()["revenue"]["energy"] == "3010"  # the other defaults kept


def year_billed(network, contract, *, year_end_kwh: str):
    for month in range(1, 13):
        instalment_billed(network, month)
    BoundaryRegister.objects.filter(connection=contract.connection, on=dt.date(2027, 1, 1)).update(
        energy_kwh=Decimal(year_end_kwh)
    )
    bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR)
    return invoice_of(contract, kind="settlement")


def test_a_plan_year_recognises_the_settled_consumption_as_revenue_and_nets_prepayments():
    network, contract = monthly_plan()
    # 2026 used 20 MWh, not the 18 the plan estimated: 2 MWh more by the year's end
    settlement = year_billed(network, contract, year_end_kwh="48000")
    assert (settlement.net, settlement.vat, settlement.gross) == (
        Decimal("1185.04"),
        Decimal("296.20"),
        Decimal("1481.24"),
    )

    rows = list(journal_rows(network_id=network.pk, **ALL_TIME))

    assert booked(rows, settlement.display_number) == [
        ("1100", "Annual settlement", Decimal("1481.24"), ""),
        ("3000", "Subscription", "", Decimal("1200.00")),
        ("3000", "Capacity charge (above 0 kW)", "", Decimal("1200.00")),
        ("3010", "Energy charge", "", Decimal("11850.40")),  # 20 MWh × 592.52
        # the instalments credited release the prepayments, not revenue
        ("2400", "On-account instalments billed for the year", Decimal("13065.36"), ""),
        ("2610", "VAT 0.2500", "", Decimal("296.20")),
    ]
    documents = {r[1] for r in rows}
    assert len(documents) == 13
    for document in documents:
        assert sum(balance_by_account(r for r in rows if r[1] == document).values()) == ZERO
    balance = balance_by_account(rows)
    consumption = sum((line.amount for line in settlement.lines.exclude(kind="on_account")), ZERO)
    assert consumption == Decimal("14250.40")
    assert balance == {
        "1100": Decimal("17813.00"),  # 12 × 1,360.98 + 1,481.24
        "2400": ZERO,  # 12 × 1,088.78 credited, 13,065.36 released
        "3000": Decimal("-2400.00"),
        "3010": Decimal("-11850.40"),
        "2610": Decimal("-3562.60"),  # 12 × 272.20 + 296.20: 25 % of 14,250.40
    }
    revenue = set(ledger()["revenue"].values())
    assert -sum(v for k, v in balance.items() if k in revenue) == consumption


def test_an_instalment_credited_in_the_year_leaves_the_prepayments_at_zero():
    """A credited instalment counts for neither: the settlement credits the other 11."""
    network, _contract = monthly_plan()
    for month in range(1, 13):
        instalment_billed(network, month)
    march = Invoice.objects.get(kind="instalment", period_start=dt.date(2026, 3, 1))
    invoice_credit(invoice=march, now=dt.datetime(2026, 3, 10, 8, 0, tzinfo=dt.UTC))
    bill_month(network, start=YEAR, months=12, kind="settlement", now=AFTER_THE_YEAR)

    balance = balance_by_account(journal_rows(network_id=network.pk, **ALL_TIME))

    assert balance["2400"] == ZERO  # 12 × 1,088.78 − 1,088.78 − 11 × 1,088.78
    assert balance["3000"] + balance["3010"] == Decimal("-13065.36")  # the 18 MWh of 2026
    assert balance["2610"] == Decimal("-3266.34")  # 25 % of 13,065.36, rounded once


def test_a_re_rated_settlement_moves_revenue_and_leaves_the_prepayments_at_zero():
    """Its credit note gives the prepayments back, its correction releases them again."""
    network, contract = monthly_plan()
    settlement = year_billed(network, contract, year_end_kwh="48000")
    # a corrected year-end reading: 21 MWh in 2026
    BoundaryRegister.objects.filter(connection=contract.connection, on=dt.date(2027, 1, 1)).update(
        energy_kwh=Decimal("49000")
    )
    credit_note, correction = invoice_rerate(
        invoice=settlement, now=dt.datetime(2027, 2, 1, 8, 0, tzinfo=dt.UTC)
    )
    assert correction.number is not None

    rows = list(journal_rows(network_id=network.pk, **ALL_TIME))

    assert [r for r in booked(rows, credit_note.display_number) if r[0] == "2400"] == [
        ("2400", "Credit: On-account instalments billed for the year", "", Decimal("13065.36"))
    ]
    balance = balance_by_account(rows)
    assert balance["2400"] == ZERO
    # 2,400.00 + 21 × 592.52 = 14,842.92, VAT 3,710.73
    assert balance["3000"] + balance["3010"] == Decimal("-14842.92")
    assert balance["2610"] == Decimal("-3710.73")
