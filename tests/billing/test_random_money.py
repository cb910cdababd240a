"""A seeded, randomised audit of the money on accounts (docs/billing.md: Payments, Dunning).

Each scenario is drawn from ``random.Random(seed)``: one network, one to three accounts
(each with a connection, monthly boundary registers and its own payment terms), a tariff
with odd prices, then 30–40 steps, each chosen at random and done through the public
services, with a clock (``now``) that only moves forward:

* **bill** the next month (a billing run, ``tests.billing.helpers.bill_month``; held
  drafts released and issued as staff would);
* **pay**: ``payment_record`` for an account, less than, exactly or more than what is
  open (one invoice's open amount, all of it), with no reference, the number of an open
  invoice (sometimes in lower case), of a paid one or free text; sometimes a prepayment,
  an amount with a third decimal, or an API retry under its ``Idempotency-Key``;
* **import** a small bank statement (``payments_import_csv``): rows by customer number or
  by invoice reference, decimal commas, a bank fee, an unmatched credit, a repeated row,
  sometimes the previous statement sent again;
* **re-rate**: a billed boundary register corrected, and the nightly look
  (``invoices_rerate_changed``) credits every current bill resting on it and issues its
  correction (a held one released);
* **credit by hand** a current bill (``invoice_credit``) and bill it again
  (``invoice_rebill``) at once or at a later credit step; or credit a reminder fee;
* **refund** part or all of an account's credit (``refund_record``), or try more than it
  holds (refused, nothing changes);
* **dunning** a few days later (``dunning_run``: overdue, letters, reminder-fee invoices);
* **days pass**.

After every step, for every account, to the cent (``Decimal``, exact):

1. an invoice's ``paid`` is the sum of its allocations, ``0 ≤ paid ≤ gross``; a credit
   document (gross < 0) receives no allocation;
2. a credit document's used credit (``−paid``) is its allocations plus its refund parts,
   never more than it credits;
3. a payment's amount is its allocations plus its refund parts plus ``unallocated ≥ 0``; a
   refund's amount is the sum of its parts; every allocation and refund part stays within
   its account, and every allocation has one source;
4. ``account_balance`` = open receivables − credit left (credit notes' unused credit +
   unallocated payments), counted here from the rows; ``account_credit`` = that credit;
5. no account holds unused credit and an open receivable at once.  Asserted after every
   step: each step that issues a document or books a payment uses the account's credit
   (run issue, single issue, credit note, correction, payment allocation:
   ``payments_apply_unallocated`` / ``payment_allocate``), a refund only lowers credit, and
   the one document written without using credit, dunning's fee invoice, is only charged
   to an account whose balance is > 0, which (by 4 and this invariant before) holds none;
6. states follow paid/gross (issued, partly paid, paid; overdue exactly when open and due
   before the last dunning day), numbers are gapless per series (and the series counter
   says so), and an issued document never changes (its figures and lines as first seen).

``HEATUTILITY_MONEY_AUDIT_SCENARIOS=N`` runs N scenarios (default 8: well under a minute
on PostgreSQL); ``HEATUTILITY_MONEY_AUDIT_SEEDS=3,17`` runs just those seeds;
``HEATUTILITY_MONEY_AUDIT_SEED`` shifts the seed range.  Without them the billing audit's
``HEATUTILITY_AUDIT_SCENARIOS`` / ``_SEEDS`` / ``_SEED`` are used, so one variable runs
many scenarios of both audits.  ``HEATUTILITY_MONEY_AUDIT_VERBOSE=1`` (with ``-s``) prints
every scenario's steps.  A failure prints the seed, the steps done and what broke.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from billing.models import (
    Allocation,
    BillingRun,
    Invoice,
    InvoiceNumberCounter,
    Payment,
    Refund,
    RefundPart,
)
from billing.services.dunning import dunning_run
from billing.services.invoices import invoice_credit, invoice_release
from billing.services.payments import (
    RefundExceedsCredit,
    account_balance,
    account_credit,
    payment_record,
    payments_import_csv,
    refund_record,
)
from billing.services.rerating import current_invoices, invoice_rebill, invoices_rerate_changed
from billing.services.runs import billing_run_issue
from metering.models import BoundaryRegister
from tests.billing.factories import contract_with_connection, register, tariff_version
from tests.billing.helpers import bill_month
from tests.customers.factories import AccountFactory, NetworkFactory

ZERO = Decimal("0")
CENT = Decimal("0.01")
FIRST_MONTH = dt.date(2026, 1, 1)
START = dt.datetime(2026, 1, 20, 8, 0, tzinfo=dt.UTC)
REGISTERS_FROM = dt.date(2025, 1, 1)
REGISTER_MONTHS = 48  # 2025-01-01 … 2029-01-01: every month a scenario can bill
PERIODIC = (Invoice.Kind.INVOICE, Invoice.Kind.CORRECTION)


def _env(name: str, default: str = "") -> str:
    value = os.environ.get(f"HEATUTILITY_MONEY_AUDIT_{name}", "").strip()
    return value or os.environ.get(f"HEATUTILITY_AUDIT_{name}", "").strip() or default


def _scenario_seeds() -> list[int]:
    listed = _env("SEEDS")
    if listed:
        return [int(s) for s in listed.split(",") if s.strip()]
    count = int(_env("SCENARIOS", "8"))
    base = int(_env("SEED", "0"))
    return list(range(base, base + count))


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _cents(rng: random.Random, lo: Decimal, hi: Decimal) -> Decimal:
    """A random amount in [lo, hi] in cents."""
    lo_c, hi_c = int(lo / CENT), int(hi / CENT)
    return Decimal(rng.randint(lo_c, max(lo_c, hi_c))) * CENT


class Broken(AssertionError):
    pass


@dataclass
class World:
    seed: int
    rng: random.Random
    network: object = None
    accounts: list = field(default_factory=list)
    connections: dict = field(default_factory=dict)  # account pk -> connection
    registers: dict = field(default_factory=dict)  # connection pk -> {date: kWh}
    now: dt.datetime = START
    next_month: dt.date = FIRST_MONTH
    last_dunning_day: dt.date | None = None
    snapshots: dict = field(default_factory=dict)  # invoice pk -> figures and lines
    pending_rebill: list = field(default_factory=list)  # credited by hand, not billed again
    statements: list = field(default_factory=list)
    transactions: int = 0
    log: list = field(default_factory=list)
    user: object = None

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(ZoneInfo(self.network.time_zone)).date()

    def say(self, text: str) -> None:
        self.log.append(f"{len(self.log) + 1:2d}. [{self.now:%Y-%m-%d %H:%M}] {text}")

    def fail(self, problems: list[str]) -> None:
        raise Broken(
            f"seed {self.seed}: "
            + ", ".join(f"{a.number} ({a.payment_terms_days} d)" for a in self.accounts)
            + "\n"
            + "\n".join(self.log)
            + "\nbroken after the last step:\n  "
            + "\n  ".join(problems)
        )

    def later(self, days: int, hours: int = 0) -> None:
        self.now += dt.timedelta(days=days, hours=hours)


# --------------------------------------------------------------------------- building
def build(seed: int) -> World:
    rng = random.Random(seed)
    world = World(seed=seed, rng=rng)
    world.network = NetworkFactory()
    components = [
        {
            "type": "fixed",
            "code": "subscription",
            "description": "Subscription",
            "amount": str(_cents(rng, Decimal("300"), Decimal("2400"))),
        },
        {
            "type": "banded",
            "code": "capacity",
            "description": "Capacity charge",
            "basis": "capacity",
            "unit": "kW",
            "bands": [
                {"upto": None, "unit_price": str(_cents(rng, Decimal("40"), Decimal("250")))}
            ],
        },
        {
            "type": "energy",
            "code": "energy",
            "description": "Energy charge",
            "price": str(_cents(rng, Decimal("200"), Decimal("900"))),
        },
    ]
    tariff_version(
        network=world.network,
        components=components,
        vat_rate=rng.choice([Decimal("0.25"), Decimal("0.25"), Decimal("0.06"), Decimal("0")]),
    )
    for _ in range(rng.randint(1, 3)):
        account = AccountFactory(
            network=world.network, payment_terms_days=rng.choice([7, 14, 14, 30])
        )
        kw = f"{rng.randint(6, 25)}.{rng.choice(['00', '50'])}"
        contract = contract_with_connection(network=world.network, account=account, kw=kw)
        values, value, day = {}, Decimal(rng.randint(1000, 90000)), REGISTERS_FROM
        for _month in range(REGISTER_MONTHS + 1):
            register(contract.connection, day, value)
            values[day] = value
            value += rng.randint(1000, 2000)
            day = _add_months(day, 1)
        world.accounts.append(account)
        world.connections[account.pk] = contract.connection
        world.registers[contract.connection.pk] = values
    _registers_seen()
    world.user = User.objects.create_user(username=f"api-{seed}", is_staff=True)
    world.say(f"network {world.network.pk}: {components}, {len(world.accounts)} account(s)")
    return world


def _registers_seen() -> None:
    """Every register so far was seen by an earlier re-rating look (test arrangement:
    the look re-reads registers written in the last minutes, and re-rating unchanged
    bills, though harmless, would only slow the audit down)."""
    BoundaryRegister.objects.update(updated_at=timezone.now() - dt.timedelta(days=1))


# --------------------------------------------------------------------------- steps
def _open_receivables(account_id: int) -> list[Invoice]:
    return sorted(
        (
            i
            for i in Invoice.objects.filter(
                account_id=account_id, number__isnull=False, gross__gt=0
            )
            if i.paid < i.gross
        ),
        key=lambda i: (i.due_on, i.number),
    )


def _release_held(world: World, documents) -> None:
    for doc in documents:
        if doc is None:
            continue
        doc.refresh_from_db()
        if doc.number is None and doc.held:
            invoice_release(invoice=doc, note="randomised money audit", now=world.now)
            world.say(f"   released held #{doc.pk} ({doc.hold_reason[:60]})")


def step_bill(world: World) -> None:
    month = world.next_month
    end = _add_months(month, 1)
    ready = dt.datetime.combine(end, dt.time(8), tzinfo=dt.UTC) + dt.timedelta(
        days=world.rng.randint(0, 4)
    )
    world.now = max(world.now, ready)
    run = bill_month(world.network, start=month, now=world.now)
    held = list(Invoice.objects.filter(run=run, state=Invoice.State.DRAFT, held=True))
    for draft in held:
        invoice_release(invoice=draft, note="randomised money audit", now=world.now)
    if held:
        billing_run_issue(run=run, issued_at=world.now)  # "Issue drafts"
    run.refresh_from_db()
    world.next_month = end
    world.say(
        f"bill {month:%Y-%m}: run {run.pk} {run.state}, {run.issued} issued, {len(held)} held"
    )
    if run.failed or run.state != BillingRun.State.ISSUED:
        world.fail([f"harness: run {run.pk} {run.state}, {run.failed} failed"])


def step_pay(world: World) -> None:
    rng = world.rng
    owing = [a for a in world.accounts if _open_receivables(a.pk)]
    account = rng.choice(owing if owing and rng.random() < 0.75 else world.accounts)
    open_ = _open_receivables(account.pk)
    total = sum((i.gross - i.paid for i in open_), ZERO)
    reference, how = "", "prepayment"
    if not open_:
        amount = _cents(rng, Decimal("5"), Decimal("900"))
    else:
        how = rng.choice(["less", "one", "one", "all", "more"])
        target = rng.choice(open_)
        if how == "less" and total > CENT:
            amount = _cents(rng, CENT, total - CENT)
        elif how == "one":
            amount = target.gross - target.paid
        elif how == "more":
            amount = total + _cents(rng, CENT, Decimal("800"))
        else:
            how, amount = "all", total
        pick = rng.random()
        if pick < 0.45:
            reference = target.display_number
        elif pick < 0.55:
            reference = f"Invoice {target.display_number.lower()}, thanks"
        elif pick < 0.65:
            paid = Invoice.objects.filter(account=account, state=Invoice.State.PAID).first()
            reference = paid.display_number if paid else "rent"
        elif pick < 0.7:
            reference = "heating, see letter"
        elif pick < 0.75:  # another account's bill: not this payer's, so oldest first
            other = (
                Invoice.objects.filter(network=world.network, number__isnull=False)
                .exclude(account=account)
                .first()
            )
            reference = other.display_number if other else ""
    if rng.random() < 0.1:
        amount += Decimal("0.005")  # a third decimal: rounded half up to the cent
    retry = rng.random() < 0.15
    key = f"key-{world.seed}-{len(world.log)}" if retry else ""
    kwargs = {
        "account": account,
        "amount": amount,
        "received_on": world.today - dt.timedelta(days=rng.randint(0, 3)),
        "now": world.now,
        "reference": reference,
        "user": world.user if retry else None,
        "idempotency_key": key,
    }
    payment = payment_record(**kwargs)
    world.say(
        f"pay {account.number} {amount} ({how}; open {total} on {len(open_)}) "
        f"ref {reference!r}: payment {payment.pk}, unallocated {payment.unallocated}"
        + (" (sent twice)" if retry else "")
    )
    if retry:
        again = payment_record(**kwargs)
        if again.pk != payment.pk or Payment.objects.filter(idempotency_key=key).count() != 1:
            world.fail([f"a retry under its key booked again: {payment.pk}, {again.pk}"])


def step_import(world: World) -> None:
    rng = world.rng
    if world.statements and rng.random() < 0.2:
        text, created = world.statements[-1], Payment.objects.count()
        result = payments_import_csv(text=text, now=world.now)
        world.say(f"import the last statement again: {result}")
        if result.created or Payment.objects.count() != created:
            world.fail([f"a statement sent again booked {result.created} payment(s)"])
        return
    semicolon = rng.random() < 0.5
    sep = ";" if semicolon else ","
    rows, expected = [], {"created": 0, "skipped": 0, "unmatched": 0, "duplicates": 0}
    for _ in range(rng.randint(1, 4)):
        world.transactions += 1
        tx = f"bank-{world.seed}-{world.transactions}"
        day = (world.today - dt.timedelta(days=rng.randint(0, 5))).isoformat()
        kind = rng.random()
        account = rng.choice(world.accounts)
        open_ = _open_receivables(account.pk)
        if kind < 0.1:  # a bank fee: outgoing, skipped
            amount, reference, number = Decimal("-15.00"), "fee", ""
            expected["skipped"] += 1
        elif kind < 0.18:  # nobody's
            amount, reference, number = _cents(rng, Decimal("1"), Decimal("300")), "?", ""
            expected["unmatched"] += 1
        else:
            if open_ and rng.random() < 0.7:
                target = rng.choice(open_)
                amount = rng.choice(
                    [
                        target.gross - target.paid,
                        _cents(rng, CENT, target.gross),
                        target.gross + _cents(rng, CENT, Decimal("300")),
                    ]
                )
                reference = target.display_number
            else:
                amount, reference = _cents(rng, Decimal("1"), Decimal("1500")), "a conto"
            # by reference alone when it names an invoice of the account, else by number
            number = "" if reference.startswith("INV") and rng.random() < 0.5 else account.number
            expected["created"] += 1
        shown = f"{amount:.2f}".replace(".", ",") if semicolon else f"{amount:.2f}"
        row = [day, shown, reference, number, tx]
        rows.append(sep.join(row))
        if rng.random() < 0.1:  # the bank repeats a line
            rows.append(sep.join(row))
            expected["skipped" if amount < 0 else "duplicates"] += 1
    header = sep.join(("date", "amount", "reference", "account", "transaction_id"))
    text = "\n".join([header, *rows]) + "\n"
    before = Payment.objects.count()
    result = payments_import_csv(text=text, now=world.now)
    world.statements.append(text)
    world.say(f"import {len(rows)} row(s): {result}\n      " + "\n      ".join(rows))
    got = {
        "created": result.created,
        "skipped": result.skipped,
        "unmatched": len(result.unmatched),
        "duplicates": result.duplicates,
    }
    if got != expected or Payment.objects.count() != before + expected["created"]:
        world.fail([f"import: expected {expected}, got {got}"])


def step_rerate(world: World) -> None:
    """Correct a boundary register a current bill rests on; the look credits every
    current bill on it and issues its correction."""
    rng = world.rng
    bills = list(current_invoices().filter(network=world.network, kind__in=PERIODIC).order_by("pk"))
    if not bills:
        return step_bill(world)
    bill = rng.choice(bills)
    connection = world.connections[bill.account_id]
    day = rng.choice([bill.period_start, bill.period_end])
    values = world.registers[connection.pk]
    low, high = values[_add_months(day, -1)], values[_add_months(day, 1)]
    new = values[day]
    while new == values[day]:
        new = Decimal(
            rng.randint(
                int(low + (high - low) * Decimal("0.25")), int(low + (high - low) * Decimal("0.75"))
            )
        )
    register(connection, day, new)
    values[day] = new
    expected = set(
        current_invoices()
        .filter(account_id=bill.account_id, kind__in=PERIODIC)
        .filter(period_start=day)
        .values_list("pk", flat=True)
    ) | set(
        current_invoices()
        .filter(account_id=bill.account_id, kind__in=PERIODIC)
        .filter(period_end=day)
        .values_list("pk", flat=True)
    )
    results = invoices_rerate_changed(now=world.now)
    _registers_seen()
    world.say(
        f"re-rate: register of {day} on connection {connection.pk} → {new} kWh; "
        f"credited {sorted(c.original_id for c, _ in results)}, corrections "
        f"{[(c.pk if c else None) for _, c in results]}"
    )
    _release_held(world, [c for _, c in results])
    problems = []
    credited = {credit.original_id for credit, _ in results}
    if credited != expected:
        problems.append(f"re-rate: credited {sorted(credited)}, expected {sorted(expected)}")
    for credit, correction in results:
        original = Invoice.objects.get(pk=credit.original_id)
        if credit.number is None or credit.gross != -original.gross:
            problems.append(f"credit note #{credit.pk}: {credit.gross} of {original.gross}")
        if correction is None:
            problems.append(f"#{original.pk} credited without a correction")
    if problems:
        world.fail(problems)


def step_credit(world: World) -> None:
    rng = world.rng
    if world.pending_rebill and rng.random() < 0.6:
        original = world.pending_rebill.pop(0)
        again = invoice_rebill(invoice=original, now=world.now)
        world.say(f"rebill #{original.pk} later: correction #{again.pk} {again.gross}")
        _release_held(world, [again])
        return
    fees = list(
        Invoice.objects.filter(
            network=world.network, kind=Invoice.Kind.REMINDER_FEE, number__isnull=False
        )
        .not_credited()
        .order_by("pk")
    )
    bills = list(current_invoices().filter(network=world.network, kind__in=PERIODIC).order_by("pk"))
    if fees and (not bills or rng.random() < 0.4):
        fee = rng.choice(fees)
        credit = invoice_credit(invoice=fee, now=world.now)
        world.say(f"credit fee #{fee.pk} ({fee.gross}, paid {fee.paid}): #{credit.pk}")
        return
    if not bills:
        return step_bill(world)
    original = rng.choice(bills)
    credit = invoice_credit(invoice=original, now=world.now)
    world.say(
        f"credit #{original.pk} {original.period_start:%Y-%m} by hand "
        f"({original.gross}, paid {original.paid}): credit note #{credit.pk}"
    )
    if credit.gross != -original.gross:
        world.fail([f"credit note #{credit.pk}: {credit.gross} of {original.gross}"])
    if rng.random() < 0.7:
        again = invoice_rebill(invoice=original, now=world.now)
        world.say(f"   rebill: correction #{again.pk} {again.gross}")
        _release_held(world, [again])
    else:
        world.pending_rebill.append(original)


def _money_state(world: World) -> tuple:
    ids = [a.pk for a in world.accounts]
    return (
        list(
            Invoice.objects.filter(account_id__in=ids).order_by("pk").values_list("paid", "state")
        ),
        list(Payment.objects.filter(account_id__in=ids).order_by("pk").values_list("unallocated")),
        Refund.objects.filter(account_id__in=ids).count(),
        RefundPart.objects.count(),
    )


def step_refund(world: World) -> None:
    rng = world.rng
    credits = {a.pk: account_credit(account=a) for a in world.accounts}
    holding = [a for a in world.accounts if credits[a.pk] > 0]
    account = rng.choice(holding or world.accounts)
    credit = credits[account.pk]
    if credit <= 0 or rng.random() < 0.15:  # more than it holds: refused, nothing changes
        before = _money_state(world)
        amount = credit + rng.choice([CENT, Decimal("50.00")])
        with pytest.raises(RefundExceedsCredit):
            refund_record(account=account, amount=amount, paid_on=world.today, now=world.now)
        world.say(f"refund {amount} to {account.number} (credit {credit}): refused")
        if _money_state(world) != before:
            world.fail(["a refused refund changed money rows"])
        return
    amount = credit if rng.random() < 0.4 else _cents(rng, CENT, credit)
    refund = refund_record(account=account, amount=amount, paid_on=world.today, now=world.now)
    left = account_credit(account=account)
    world.say(f"refund {amount} of {credit} to {account.number}: refund {refund.pk}, left {left}")
    if left != credit - amount:
        world.fail([f"refund {amount} of credit {credit} left {left}"])


def step_dunning(world: World) -> None:
    world.later(world.rng.randint(1, 15), world.rng.randint(0, 20))
    letters = dunning_run(now=world.now)
    world.last_dunning_day = world.today
    world.say(
        "dunning: "
        + (
            ", ".join(
                f"{letter.account.number} level {letter.level} fee {letter.fee}"
                for letter in letters
            )
            or "no letter"
        )
    )
    problems = []
    for letter in letters:
        if letter.account.network_id != world.network.pk:
            continue
        if letter.fee > 0 and (
            letter.fee_invoice is None or letter.fee_invoice.gross != letter.fee
        ):
            problems.append(f"letter {letter.pk}: fee {letter.fee}, invoice {letter.fee_invoice}")
    if problems:
        world.fail(problems)


def step_days(world: World) -> None:
    days = world.rng.randint(1, 25)
    world.later(days)
    world.say(f"{days} day(s) pass")


STEPS = [
    (step_bill, 6),
    (step_pay, 6),
    (step_import, 3),
    (step_rerate, 3),
    (step_credit, 2),
    (step_refund, 2),
    (step_dunning, 3),
    (step_days, 2),
]


# --------------------------------------------------------------------------- invariants
def _snapshot(invoice: Invoice, lines: list) -> tuple:
    return (
        invoice.kind,
        invoice.account_id,
        invoice.original_id,
        invoice.series,
        invoice.number,
        invoice.issued_at,
        invoice.due_on,
        invoice.period_start,
        invoice.period_end,
        invoice.currency,
        invoice.net,
        invoice.vat,
        invoice.gross,
        tuple(lines),
    )


def check(world: World) -> None:
    problems: list[str] = []
    account_ids = [a.pk for a in world.accounts]
    issued = list(
        Invoice.objects.filter(network=world.network, number__isnull=False).order_by("pk")
    )
    by_pk = {i.pk: i for i in issued}
    lines = defaultdict(list)
    for row in (
        Invoice.objects.filter(network=world.network, number__isnull=False)
        .values_list(
            "pk",
            "lines__position",
            "lines__component",
            "lines__period_start",
            "lines__period_end",
            "lines__quantity",
            "lines__unit_price",
            "lines__amount",
            "lines__vat_rate",
        )
        .order_by("pk", "lines__position")
    ):
        lines[row[0]].append(row[1:])
    allocations = list(Allocation.objects.filter(invoice__account_id__in=account_ids))
    allocations += list(
        Allocation.objects.filter(payment__account_id__in=account_ids).exclude(
            invoice__account_id__in=account_ids
        )
    )
    payments = {p.pk: p for p in Payment.objects.filter(account_id__in=account_ids)}
    refunds = list(Refund.objects.filter(account_id__in=account_ids))
    parts = list(RefundPart.objects.filter(refund__account_id__in=account_ids))

    to_invoice, from_note, from_payment = (defaultdict(lambda: ZERO) for _ in range(3))
    for a in allocations:
        invoice = by_pk.get(a.invoice_id)
        if (a.payment_id is None) == (a.credit_note_id is None) or a.amount <= 0:
            problems.append(
                f"allocation {a.pk}: {a.amount}, payment {a.payment_id}, note {a.credit_note_id}"
            )
        if invoice is None:
            problems.append(f"allocation {a.pk} to #{a.invoice_id}, not an issued bill here")
            continue
        source_account = (
            payments[a.payment_id].account_id
            if a.payment_id in payments
            else by_pk[a.credit_note_id].account_id
            if a.credit_note_id in by_pk
            else None
        )
        if source_account != invoice.account_id:
            problems.append(
                f"allocation {a.pk}: from account {source_account} to {invoice.account_id}"
            )
        to_invoice[a.invoice_id] += a.amount
        if a.credit_note_id:
            from_note[a.credit_note_id] += a.amount
        else:
            from_payment[a.payment_id] += a.amount
    refunded_note, refunded_payment, refund_sum = (defaultdict(lambda: ZERO) for _ in range(3))
    refund_accounts = {r.pk: r.account_id for r in refunds}
    for part in parts:
        if (part.payment_id is None) == (part.credit_note_id is None) or part.amount <= 0:
            problems.append(f"refund part {part.pk}: {part.amount}")
        source = payments.get(part.payment_id) or by_pk.get(part.credit_note_id)
        if source is None or source.account_id != refund_accounts[part.refund_id]:
            problems.append(
                f"refund part {part.pk} of refund {part.refund_id} from another account"
            )
        refund_sum[part.refund_id] += part.amount
        if part.credit_note_id:
            refunded_note[part.credit_note_id] += part.amount
        else:
            refunded_payment[part.payment_id] += part.amount
    for r in refunds:
        if r.amount != refund_sum[r.pk]:
            problems.append(f"refund {r.pk}: {r.amount}, parts {refund_sum[r.pk]}")

    open_by, credit_by = defaultdict(lambda: ZERO), defaultdict(lambda: ZERO)
    overdue_before = world.last_dunning_day
    for inv in issued:
        name = f"{inv.kind} #{inv.pk} {inv.display_number}"
        if inv.gross >= 0:
            if inv.paid != to_invoice[inv.pk]:
                problems.append(f"{name}: paid {inv.paid}, allocations {to_invoice[inv.pk]}")
            if not ZERO <= inv.paid <= inv.gross:
                problems.append(f"{name}: paid {inv.paid} of gross {inv.gross}")
            if from_note[inv.pk] or refunded_note[inv.pk]:
                problems.append(f"{name}: a receivable used as credit")
            open_by[inv.account_id] += inv.gross - inv.paid
            is_open = inv.paid < inv.gross
            if not is_open:
                want = {Invoice.State.PAID}
            elif overdue_before is not None and inv.due_on < overdue_before:
                want = {Invoice.State.OVERDUE}
            else:
                want = {Invoice.State.PARTLY_PAID} if inv.paid > 0 else {Invoice.State.ISSUED}
            if inv.gross == 0:
                want = {Invoice.State.PAID, Invoice.State.ISSUED}
        else:
            used = -inv.paid
            if to_invoice[inv.pk]:
                problems.append(f"{name}: a credit document received {to_invoice[inv.pk]}")
            if used != from_note[inv.pk] + refunded_note[inv.pk]:
                problems.append(
                    f"{name}: used {used}, allocations {from_note[inv.pk]} + refunds "
                    f"{refunded_note[inv.pk]}"
                )
            if not ZERO <= used <= -inv.gross:
                problems.append(f"{name}: used {used} of {-inv.gross}")
            credit_by[inv.account_id] += inv.paid - inv.gross
            want = (
                {Invoice.State.PAID}
                if inv.paid == inv.gross
                else {Invoice.State.ISSUED}
                if inv.paid == 0
                else {Invoice.State.PARTLY_PAID}
            )
        if inv.state not in want:
            problems.append(
                f"{name}: {inv.state}, paid {inv.paid} of {inv.gross}, due {inv.due_on} "
                f"(last dunning {overdue_before}); expected {sorted(want)}"
            )
        snap = _snapshot(inv, lines[inv.pk])
        first = world.snapshots.setdefault(inv.pk, snap)
        if first != snap:
            problems.append(f"{name} changed after issue: {first} → {snap}")
    gone = set(world.snapshots) - set(by_pk)
    if gone:
        problems.append(f"issued documents no longer issued: {sorted(gone)}")
    for p in payments.values():
        if (
            p.unallocated < 0
            or p.amount != from_payment[p.pk] + refunded_payment[p.pk] + p.unallocated
        ):
            problems.append(
                f"payment {p.pk}: {p.amount} ≠ allocations {from_payment[p.pk]} + refunds "
                f"{refunded_payment[p.pk]} + unallocated {p.unallocated}"
            )
        credit_by[p.account_id] += p.unallocated
    for account in world.accounts:
        balance = account_balance(account=account)
        owed, credit = open_by[account.pk], credit_by[account.pk]
        if balance != owed - credit:
            problems.append(
                f"account {account.number}: balance {balance}, open {owed} − credit {credit}"
            )
        if account_credit(account=account) != credit:
            problems.append(
                f"account {account.number}: account_credit {account_credit(account=account)}, "
                f"rows {credit}"
            )
        if owed > 0 and credit > 0:
            problems.append(f"account {account.number}: credit {credit} beside {owed} open")
    series = defaultdict(list)
    for inv in Invoice.objects.filter(number__isnull=False).values_list("series", "number"):
        series[inv[0]].append(inv[1])
    for name, numbers in series.items():
        counter = InvoiceNumberCounter.objects.get(series=name).last_number
        if sorted(numbers) != list(range(1, len(numbers) + 1)) or counter != len(numbers):
            problems.append(f"series {name}: numbers {sorted(numbers)}, counter {counter}")
    if problems:
        world.fail(problems)


# --------------------------------------------------------------------------- the audit
def play(seed: int) -> World:
    world = build(seed)
    check(world)
    functions, weights = zip(*STEPS, strict=True)
    for _ in range(world.rng.randint(30, 40)):
        step = world.rng.choices(functions, weights)[0]
        world.later(0, world.rng.randint(0, 5))
        step(world)
        check(world)
    return world


@pytest.mark.django_db
@pytest.mark.parametrize("seed", _scenario_seeds())
def test_random_steps_keep_the_money_on_accounts_exact(seed):
    world = play(seed)  # fails with the seed, the steps done and what broke
    if _env("VERBOSE"):
        print(f"\nseed {seed}:\n" + "\n".join(world.log))


@pytest.mark.django_db
def test_the_audit_sees_a_cent_missing():
    """The checks are not vacuous: a bill paid in part, then one cent of its ``paid``
    lost (a row changed behind the services' back) is reported, to the cent."""
    world = build(12345)
    step_bill(world)
    account = world.accounts[0]
    bill = _open_receivables(account.pk)[0]
    payment_record(account=account, amount=Decimal("10.00"), received_on=world.today, now=world.now)
    check(world)
    Invoice.objects.filter(pk=bill.pk).update(paid=Decimal("9.99"))

    with pytest.raises(Broken, match=r"paid 9\.99, allocations 10\.00"):
        check(world)
