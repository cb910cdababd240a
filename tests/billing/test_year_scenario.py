"""A customer's whole year, month by month through the real services, against hand
calculation to the cent (DOMAIN.md §2, §4, §7; rating rules in tariffs/rating.py).

Tariff (VAT 25 %): subscription per year, capacity per kW and year (each month 1/12 of a
year, a part month its days' share of that twelfth), energy per MWh, volume per m³ and
the HOFOR cooling incentive (0.8 % of the energy charge per °C of ΔT = MWh · 860 / m³
beyond 30 ± 5 °C, bonus and penalty).  Version 2 from 16 July.

The walk: January and February plain; a meter exchange on 17 March; the new meter's
10,000 kWh register rolls over in April and again in August; May's end register read
late (estimated on May's and June's bills, then re-rated: credit note and correction);
the tariff changes on 16 July with no register that day (split by days); a move-out and
a new occupant's move-in on 20 August; a capacity change on 16 September.  Then the sum
of everything billed less everything credited must equal the true figures exactly.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest

from billing import tasks
from billing.models import BillingRun, Invoice
from billing.services.rerating import invoices_rerate_changed
from billing.services.runs import billing_run_create, billing_run_issue
from customers.services import connection_capacity_change, contract_move_in
from heatutility.timeutil import local_midnight
from metering.installations import meter_exchange
from metering.services import vee_run_meter
from tests.billing.factories import tariff_version
from tests.billing.helpers import bill_month
from tests.customers.factories import (
    AccountFactory,
    BuildingInterfaceUnitFactory,
    ContractFactory,
    NetworkFactory,
    ServiceConnectionFactory,
)
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import add_readings

CPH = "Europe/Copenhagen"
C2 = Decimal("0.01")
TARIFF_CHANGE = dt.date(2026, 7, 16)


def cooling(**extra):
    return {
        "type": "cooling",
        "code": "cooling",
        "description": "Cooling",
        "target": "30",
        "band_below": "5",
        "band_above": "5",
        "penalty_rate": "0.008",
        "bonus_rate": "0.008",
    } | extra


def components(fixed, capacity, energy, volume):
    return [
        {"type": "fixed", "code": "subscription", "description": "Subscription", "amount": fixed},
        {
            "type": "banded",
            "code": "capacity",
            "description": "Capacity",
            "basis": "capacity",
            "unit": "kW",
            "bands": [{"upto": None, "unit_price": capacity}],
        },
        {"type": "energy", "code": "energy", "description": "Energy", "price": energy},
        {"type": "volume", "code": "volume", "description": "Water", "price": volume},
        cooling(),
    ]


PRICES = {
    1: {
        "fixed": Decimal("1200.00"),
        "capacity": Decimal("120.00"),
        "energy": Decimal("592.52"),
        "volume": Decimal("5.00"),
    },
    2: {
        "fixed": Decimal("1320.00"),
        "capacity": Decimal("132.00"),
        "energy": Decimal("612.00"),
        "volume": Decimal("5.50"),
    },
}


def money(value) -> Decimal:
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    return value.quantize(C2, rounding=ROUND_HALF_UP)


def days_in(day: dt.date) -> int:
    nxt = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return (nxt - day.replace(day=1)).days


def hand_lines(version, start, end, *, kw_pieces, mwh, m3):
    """Every line of one segment [start, end) inside one month, by the formulas:
    {component: [(quantity, unit price, amount), ...]}."""
    p = PRICES[version]
    month_days = days_in(start)
    share = Fraction((end - start).days, month_days * 12)
    out = {
        "subscription": [(Decimal(1), p["fixed"], money(Fraction(p["fixed"]) * share))],
        "capacity": [
            (
                kw,
                p["capacity"],
                money(Fraction(kw * p["capacity"]) * Fraction((b - a).days, month_days * 12)),
            )
            for a, b, kw in kw_pieces
        ],
        "energy": [(mwh, p["energy"], money(mwh * p["energy"]))],
        "volume": [(m3, p["volume"], money(m3 * p["volume"]))],
    }
    delta_t = mwh * 860 / m3
    if delta_t > 35:
        rate = -Decimal("0.008") * (delta_t - 35)
    elif delta_t < 25:
        rate = Decimal("0.008") * (25 - delta_t)
    else:
        rate = Decimal(0)
    energy_amount = out["energy"][0][2]
    out["cooling"] = [(energy_amount, rate, money(energy_amount * rate))]
    return out


def hand_bill(segments):
    """Lines of several segments, net, VAT (25 % on the net, half up once), gross."""
    lines = []
    for seg in segments:
        for comp, rows in hand_lines(**seg).items():
            lines += [(comp, *row) for row in rows]
    net = sum((amount for *_x, amount in lines), Decimal(0))
    vat = money(net * Decimal("0.25"))
    return sorted(lines), net, vat, net + vat


def bill_lines(invoice):
    return sorted(
        (ln.component, ln.quantity.normalize(), ln.unit_price.normalize(), ln.amount)
        for ln in invoice.lines.all()
    )


def normalized(lines):
    return sorted((c, Decimal(q).normalize(), Decimal(u).normalize(), a) for c, q, u, a in lines)


def at(day, hour=0, minute=0):
    return local_midnight(day, CPH) + dt.timedelta(hours=hour, minutes=minute)


def deliver(meter, rows, now):
    """Readings arrive from the head-end and are validated (VEE refreshes boundaries)."""
    add_readings(meter, [(at(d, *hm), e, v) for d, e, v, *hm in rows])
    times = [at(d, *hm) for d, _e, _v, *hm in rows]
    vee_run_meter(meter_id=meter.pk, start=min(times), end=max(times), now=now)


def run_month(network, start, *, retry=False):
    end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    now = local_midnight(end, CPH) + dt.timedelta(days=1, hours=8)
    run = billing_run_create(
        network=network, period_start=start, months=1, now=now, chunk_size=1, render_pdfs=False
    )
    tasks.billing_run_start.delay(run.pk)
    if retry:  # a worker's retry and a second issue: nothing more
        for chunk in run.chunks.all():
            tasks.billing_run_chunk.delay(chunk.pk)
        tasks.billing_run_start.delay(run.pk)
    run.refresh_from_db()
    assert run.state == BillingRun.State.DRAFTED, list(run.exceptions.values("code", "error"))
    billing_run_issue(run=run, issued_at=now)
    if retry:
        billing_run_issue(run=run, issued_at=now)
    return run


def monthly(account, start):
    return Invoice.objects.get(account=account, kind="invoice", period_start=start)


def check(invoice, segments):
    lines, net, vat, gross = hand_bill(segments)
    assert bill_lines(invoice) == normalized(lines), invoice
    assert (invoice.net, invoice.vat, invoice.gross) == (net, vat, gross), invoice
    return gross


@pytest.mark.django_db
class TestAYearOfOneConnection:
    def test_every_bill_of_the_year_to_the_cent_and_nothing_billed_twice(self):
        network = NetworkFactory(time_zone=CPH, currency="DKK")
        tariff_version(
            network=network,
            valid_from=dt.date(2025, 1, 1),
            valid_to=TARIFF_CHANGE,
            components=components("1200.00", "120.00", "592.52", "5.00"),
        )
        tariff_version(
            network=network,
            valid_from=TARIFF_CHANGE,
            components=components("1320.00", "132.00", "612.00", "5.50"),
        )
        connection = ServiceConnectionFactory(network=network, contracted_capacity_kw=Decimal(10))
        unit = BuildingInterfaceUnitFactory(connection=connection)
        alice = AccountFactory(network=network)
        ContractFactory(account=alice, connection=connection, valid_from=dt.date(2025, 1, 1))
        m1 = MeterInstallationFactory(
            unit=unit, installed_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        ).meter
        kw10 = Decimal(10)
        truth = {}  # (account, month) -> true gross

        # -- January, February: plain months
        deliver(
            m1,
            [(dt.date(2026, 1, 1), "50000", "1000"), (dt.date(2026, 2, 1), "53000", "1060")],
            now=at(dt.date(2026, 2, 1), 2),
        )
        run_month(network, dt.date(2026, 1, 1), retry=True)
        jan = monthly(alice, dt.date(2026, 1, 1))
        # ΔT = 3 × 860 / 60 = 43 °C: 8 °C above 35, bonus 6.4 % of 1,777.56 = 113.76
        assert jan.lines.get(component="cooling").amount == Decimal("-113.76")
        assert (jan.net, jan.vat, jan.gross) == (
            Decimal("2163.80"),  # 100 + 100 + 1,777.56 + 300 − 113.76
            Decimal("540.95"),  # 540.95
            Decimal("2704.75"),
        )
        truth[alice, 1] = check(
            jan,
            [
                {
                    "version": 1,
                    "start": dt.date(2026, 1, 1),
                    "end": dt.date(2026, 2, 1),
                    "kw_pieces": [(dt.date(2026, 1, 1), dt.date(2026, 2, 1), kw10)],
                    "mwh": Decimal("3"),
                    "m3": Decimal("60"),
                }
            ],
        )
        assert not jan.has_estimated_reads
        assert Invoice.objects.filter(account=alice).count() == 1  # the retry billed nothing

        deliver(m1, [(dt.date(2026, 3, 1), "55800", "1130")], now=at(dt.date(2026, 3, 1), 2))
        run_month(network, dt.date(2026, 2, 1))
        feb = monthly(alice, dt.date(2026, 2, 1))
        truth[alice, 2] = check(
            feb,
            [
                {
                    "version": 1,
                    "start": dt.date(2026, 2, 1),
                    "end": dt.date(2026, 3, 1),
                    "kw_pieces": [(dt.date(2026, 2, 1), dt.date(2026, 3, 1), kw10)],
                    "mwh": Decimal("2.8"),
                    "m3": Decimal("70"),
                }
            ],
        )

        # -- March: the meter is exchanged on 17 March at 10:00; the new one's register
        # starts at 99,000 kWh and wraps at 100,000 kWh
        deliver(m1, [(dt.date(2026, 3, 17), "57400", "1170", 10)], now=at(dt.date(2026, 3, 17), 11))
        m2 = HeatMeterFactory(register_max=Decimal("99999"))
        meter_exchange(
            unit=unit,
            new_meter=m2,
            exchanged_at=at(dt.date(2026, 3, 17), 10),
            old_final_energy_kwh=Decimal("57400"),
            old_final_volume_m3=Decimal("1170"),
            new_initial_energy_kwh=Decimal("99000"),
            new_initial_volume_m3=Decimal("500"),
            now=at(dt.date(2026, 3, 17), 11),
        )
        deliver(m2, [(dt.date(2026, 4, 1), "99900", "510")], now=at(dt.date(2026, 4, 1), 2))
        run_month(network, dt.date(2026, 3, 1))
        mar = monthly(alice, dt.date(2026, 3, 1))
        # 57,400 − 55,800 + 99,900 − 99,000 = 2,500 kWh; 1,170 − 1,130 + 510 − 500 = 50 m³
        truth[alice, 3] = check(
            mar,
            [
                {
                    "version": 1,
                    "start": dt.date(2026, 3, 1),
                    "end": dt.date(2026, 4, 1),
                    "kw_pieces": [(dt.date(2026, 3, 1), dt.date(2026, 4, 1), kw10)],
                    "mwh": Decimal("2.5"),
                    "m3": Decimal("50"),
                }
            ],
        )

        # -- April: the register rolls over (99,900 → 1,900: 2,000 kWh)
        deliver(m2, [(dt.date(2026, 5, 1), "1900", "550")], now=at(dt.date(2026, 5, 1), 2))
        run_month(network, dt.date(2026, 4, 1))
        apr = monthly(alice, dt.date(2026, 4, 1))
        truth[alice, 4] = check(
            apr,
            [
                {
                    "version": 1,
                    "start": dt.date(2026, 4, 1),
                    "end": dt.date(2026, 5, 1),
                    "kw_pieces": [(dt.date(2026, 4, 1), dt.date(2026, 5, 1), kw10)],
                    "mwh": Decimal("2"),
                    "m3": Decimal("40"),
                }
            ],
        )

        # -- May: 1 June's read is late; a read on 5 June interpolates it
        deliver(m2, [(dt.date(2026, 6, 5), "3600", "584")], now=at(dt.date(2026, 6, 5), 2))
        run_month(network, dt.date(2026, 5, 1))
        may = monthly(alice, dt.date(2026, 5, 1))
        assert may.has_estimated_reads
        # 1,900 + 1,700 × 31/35 = 3,405.714286 kWh; 550 + 34 × 31/35 = 580.1143 m³
        est_mwh, est_m3 = Decimal("1.505714"), Decimal("30.1143")
        assert may.lines.get(component="energy").quantity == est_mwh
        assert may.lines.get(component="volume").quantity == est_m3

        deliver(m2, [(dt.date(2026, 7, 1), "4600", "610")], now=at(dt.date(2026, 7, 1), 2))
        run_month(network, dt.date(2026, 6, 1))
        jun = monthly(alice, dt.date(2026, 6, 1))
        assert jun.has_estimated_reads
        assert jun.lines.get(component="energy").quantity == Decimal("1.194286")

        # -- the 1 June read arrives: May and June are credited and billed again
        deliver(m2, [(dt.date(2026, 6, 1), "3400", "580")], now=at(dt.date(2026, 7, 3), 2))
        results = invoices_rerate_changed(now=at(dt.date(2026, 7, 3), 3))
        assert {credit.original_id for credit, _ in results} == {may.pk, jun.pk}
        for credit, correction in results:
            original = Invoice.objects.get(pk=credit.original_id)
            assert credit.gross == -original.gross
            assert correction.original_id == original.pk
            assert not correction.has_estimated_reads
        assert invoices_rerate_changed(now=at(dt.date(2026, 7, 3), 4)) == []
        may_fix = Invoice.objects.get(kind="correction", original=may)
        jun_fix = Invoice.objects.get(kind="correction", original=jun)
        truth[alice, 5] = check(
            may_fix,
            [
                {
                    "version": 1,
                    "start": dt.date(2026, 5, 1),
                    "end": dt.date(2026, 6, 1),
                    "kw_pieces": [(dt.date(2026, 5, 1), dt.date(2026, 6, 1), kw10)],
                    "mwh": Decimal("1.5"),
                    "m3": Decimal("30"),
                }
            ],
        )
        truth[alice, 6] = check(
            jun_fix,
            [
                {
                    "version": 1,
                    "start": dt.date(2026, 6, 1),
                    "end": dt.date(2026, 7, 1),
                    "kw_pieces": [(dt.date(2026, 6, 1), dt.date(2026, 7, 1), kw10)],
                    "mwh": Decimal("1.2"),
                    "m3": Decimal("30"),
                }
            ],
        )

        # -- July: version 2 from the 16th, no register that day: 15 and 16 days of 31
        deliver(m2, [(dt.date(2026, 8, 1), "7700", "672")], now=at(dt.date(2026, 8, 1), 2))
        run_month(network, dt.date(2026, 7, 1))
        jul = monthly(alice, dt.date(2026, 7, 1))
        truth[alice, 7] = check(
            jul,
            [
                {
                    "version": 1,
                    "start": dt.date(2026, 7, 1),
                    "end": TARIFF_CHANGE,
                    "kw_pieces": [(dt.date(2026, 7, 1), TARIFF_CHANGE, kw10)],
                    "mwh": Decimal("1.5"),
                    "m3": Decimal("30"),
                },
                {
                    "version": 2,
                    "start": TARIFF_CHANGE,
                    "end": dt.date(2026, 8, 1),
                    "kw_pieces": [(TARIFF_CHANGE, dt.date(2026, 8, 1), kw10)],
                    "mwh": Decimal("1.6"),
                    "m3": Decimal("32"),
                },
            ],
        )

        # -- August: Bob moves in on the 20th (Alice out)
        bob = AccountFactory(network=network)
        contract_move_in(
            account=bob, connection=connection, move_in_on=dt.date(2026, 8, 20), end_previous=True
        )
        deliver(
            m2,
            [(dt.date(2026, 8, 20), "9600", "710"), (dt.date(2026, 9, 1), "10700", "732")],
            now=at(dt.date(2026, 9, 1), 2),
        )
        run_month(network, dt.date(2026, 8, 1))
        aug_a = monthly(alice, dt.date(2026, 8, 1))
        aug_b = monthly(bob, dt.date(2026, 8, 1))
        truth[alice, 8] = check(
            aug_a,
            [
                {
                    "version": 2,
                    "start": dt.date(2026, 8, 1),
                    "end": dt.date(2026, 8, 20),
                    "kw_pieces": [(dt.date(2026, 8, 1), dt.date(2026, 8, 20), kw10)],
                    "mwh": Decimal("1.9"),
                    "m3": Decimal("38"),
                }
            ],
        )
        truth[bob, 8] = check(
            aug_b,
            [
                {
                    "version": 2,
                    "start": dt.date(2026, 8, 20),
                    "end": dt.date(2026, 9, 1),
                    "kw_pieces": [(dt.date(2026, 8, 20), dt.date(2026, 9, 1), kw10)],
                    "mwh": Decimal("1.1"),
                    "m3": Decimal("22"),
                }
            ],
        )
        assert bob.invoices.filter(period_start__lt=dt.date(2026, 8, 1)).count() == 0

        # -- September: 15 kW from the 16th
        connection_capacity_change(
            connection=connection,
            capacity_kw=Decimal(15),
            valid_from=dt.date(2026, 9, 16),
            reason="upgrade",
        )
        deliver(m2, [(dt.date(2026, 10, 1), "12700", "772")], now=at(dt.date(2026, 10, 1), 2))
        run_month(network, dt.date(2026, 9, 1))
        sep_b = monthly(bob, dt.date(2026, 9, 1))
        truth[bob, 9] = check(
            sep_b,
            [
                {
                    "version": 2,
                    "start": dt.date(2026, 9, 1),
                    "end": dt.date(2026, 10, 1),
                    "kw_pieces": [
                        (dt.date(2026, 9, 1), dt.date(2026, 9, 16), kw10),
                        (dt.date(2026, 9, 16), dt.date(2026, 10, 1), Decimal(15)),
                    ],
                    "mwh": Decimal("2"),
                    "m3": Decimal("40"),
                }
            ],
        )
        assert not Invoice.objects.filter(account=alice, period_start=dt.date(2026, 9, 1)).exists()

        # -- October (DST ends on the 25th) and November: plain months for Bob, 15 kW
        deliver(m2, [(dt.date(2026, 11, 1), "15700", "832")], now=at(dt.date(2026, 11, 1), 2))
        run_month(network, dt.date(2026, 10, 1))
        truth[bob, 10] = check(
            monthly(bob, dt.date(2026, 10, 1)),
            [
                {
                    "version": 2,
                    "start": dt.date(2026, 10, 1),
                    "end": dt.date(2026, 11, 1),
                    "kw_pieces": [(dt.date(2026, 10, 1), dt.date(2026, 11, 1), Decimal(15))],
                    "mwh": Decimal("3"),
                    "m3": Decimal("60"),
                }
            ],
        )

        # -- the year: everything billed less everything credited is the true figures
        for account in (alice, bob):
            docs = Invoice.objects.filter(account=account, number__isnull=False)
            billed = sum((d.gross for d in docs), Decimal(0))
            expected = sum((g for (a, _m), g in truth.items() if a == account), Decimal(0))
            assert billed == expected, account
            assert not docs.filter(state="draft").exists()


def year_share(start: dt.date, end: dt.date) -> Fraction:
    """Each calendar month 1/12 of a year, a part month its days' share of it."""
    total, day = Fraction(0), start
    while day < end:
        nxt = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        stop = min(end, nxt)
        total += Fraction((stop - day).days, days_in(day) * 12)
        day = stop
    return total


def annual_net(version, *, share, kw, mwh, m3) -> Decimal:
    """Net of one segment priced over ``share`` of a year (lines rounded, then summed)."""
    p = PRICES[version]
    energy = money(mwh * p["energy"])
    delta_t = mwh * 860 / m3
    rate = -Decimal("0.008") * (delta_t - 35) if delta_t > 35 else Decimal(0)
    assert delta_t >= 25
    return (
        money(Fraction(p["fixed"]) * share)
        + money(Fraction(kw * p["capacity"]) * share)
        + energy
        + money(m3 * p["volume"])
        + money(energy * rate)
    )


@pytest.mark.django_db
class TestAYearOnAccount:
    # kWh per month of 2026; 20 m³ per MWh (ΔT 43)
    KWH = [3000, 2800, 2500, 2000, 1500, 1200, 3100, 900, 1100, 2000, 2600, 3400]

    def test_instalments_and_the_settlement_bill_exactly_the_year(self):
        network = NetworkFactory(time_zone=CPH, currency="DKK")
        tariff_version(
            network=network,
            valid_from=dt.date(2025, 1, 1),
            valid_to=TARIFF_CHANGE,
            components=components("1200.00", "120.00", "592.52", "5.00"),
        )
        tariff_version(
            network=network,
            valid_from=TARIFF_CHANGE,
            components=components("1320.00", "132.00", "612.00", "5.50"),
        )
        connection = ServiceConnectionFactory(network=network, contracted_capacity_kw=Decimal(10))
        unit = BuildingInterfaceUnitFactory(connection=connection)
        carol = AccountFactory(network=network)
        ContractFactory(account=carol, connection=connection, valid_from=dt.date(2024, 1, 1))
        meter = MeterInstallationFactory(
            unit=unit, installed_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        ).meter
        # 2025: 24 MWh, 480 m³
        deliver(
            meter,
            [(dt.date(2025, 1, 1), "10000", "200"), (dt.date(2026, 1, 1), "34000", "680")],
            now=at(dt.date(2026, 1, 1), 2),
        )

        from billing.services.aconto import instalment_plan_create

        plan = instalment_plan_create(
            account=carol,
            year_start=dt.date(2026, 1, 1),
            frequency="monthly",
            now=at(dt.date(2025, 12, 1)),
        )
        assert plan.estimated_mwh == Decimal("24")

        months = [dt.date(2026, m, 1) for m in range(1, 13)]
        for month in months:
            run = billing_run_create(
                network=network,
                period_start=month,
                months=1,
                kind="instalment",
                now=at(month) - dt.timedelta(days=5),
                chunk_size=1,
                render_pdfs=False,
            )
            tasks.billing_run_start.delay(run.pk)
            tasks.billing_run_start.delay(run.pk)  # retried: nothing more
            run.refresh_from_db()
            billing_run_issue(run=run, issued_at=at(month) - dt.timedelta(days=5))
        instalments = list(
            Invoice.objects.filter(account=carol, kind="instalment").order_by("period_start")
        )
        assert len(instalments) == 12
        full = {"share": Fraction(1), "kw": Decimal(10), "mwh": Decimal(24), "m3": Decimal(480)}
        v1, v2 = annual_net(1, **full), annual_net(2, **full)
        assert (v1, v2) == (Decimal("18110.37"), Decimal("19027.97"))
        july = money(Fraction(v1) * Fraction(15, 31) / 12 + Fraction(v2) * Fraction(16, 31) / 12)
        expected_nets = [money(Fraction(v1) / 12)] * 6 + [july] + [money(Fraction(v2) / 12)] * 5
        assert [i.net for i in instalments] == expected_nets
        for i in instalments:
            assert i.vat == money(i.net * Decimal("0.25"))

        # the year's readings at the month starts
        value, rows = Decimal(34000), []
        for end, kwh in zip([*months[1:], dt.date(2027, 1, 1)], self.KWH, strict=True):
            value += kwh
            rows.append((end, str(value), str(680 + (value - 34000) / 50)))
        deliver(meter, rows, now=at(dt.date(2027, 1, 1), 2))

        # invoice runs leave the account on account alone
        run_month(network, dt.date(2026, 3, 1))
        assert not Invoice.objects.filter(account=carol, kind="invoice").exists()

        now = at(dt.date(2027, 1, 2), 8)
        run = bill_month(
            network,
            start=dt.date(2026, 1, 1),
            months=12,
            kind="settlement",
            now=now,
            chunk_size=1,
            issue=False,
        )
        assert run.state == BillingRun.State.DRAFTED, list(run.exceptions.values("code", "error"))
        billing_run_issue(run=run, issued_at=now)
        settlement = Invoice.objects.get(account=carol, kind="settlement")
        # the version change on 16 July: July's 3,100 kWh shared 15/31 and 16/31, as
        # July's own bill would, the other months as measured
        first = sum(self.KWH[:6]) + 1500
        total = sum(self.KWH)
        year = annual_net(
            1,
            share=year_share(dt.date(2026, 1, 1), TARIFF_CHANGE),
            kw=Decimal(10),
            mwh=Decimal(first) / 1000,
            m3=Decimal(first) / 50,
        ) + annual_net(
            2,
            share=year_share(TARIFF_CHANGE, dt.date(2027, 1, 1)),
            kw=Decimal(10),
            mwh=Decimal(total - first) / 1000,
            m3=Decimal(total - first) / 50,
        )
        year_vat = money(year * Decimal("0.25"))
        paid_net = sum((i.net for i in instalments), Decimal(0))
        paid_vat = sum((i.vat for i in instalments), Decimal(0))
        assert settlement.net == year - paid_net
        assert settlement.vat == year_vat - paid_vat
        billed = sum(
            (d.gross for d in Invoice.objects.filter(account=carol, number__isnull=False)),
            Decimal(0),
        )
        assert billed == year + year_vat

        # a corrected December reading re-rates the settlement: still exactly the year
        from django.contrib.auth.models import User

        from metering.services import reading_edit

        reading_edit(
            meter_id=meter.pk,
            read_at=at(dt.date(2027, 1, 1)),
            values={"energy_kwh": value + 100, "volume_m3": 680 + (value + 100 - 34000) / 50},
            actor=User.objects.create_user("clerk"),
            reason="misread",
            now=at(dt.date(2027, 1, 5), 2),
        )
        meter_rows = invoices_rerate_changed(now=at(dt.date(2027, 1, 5), 3))
        assert len(meter_rows) == 1
        assert invoices_rerate_changed(now=at(dt.date(2027, 1, 5), 4)) == []
        year2 = annual_net(
            1,
            share=year_share(dt.date(2026, 1, 1), TARIFF_CHANGE),
            kw=Decimal(10),
            mwh=Decimal(first) / 1000,
            m3=Decimal(first) / 50,
        ) + annual_net(
            2,
            share=year_share(TARIFF_CHANGE, dt.date(2027, 1, 1)),
            kw=Decimal(10),
            mwh=Decimal(total + 100 - first) / 1000,
            m3=Decimal(total + 100 - first) / 50,
        )
        billed = sum(
            (d.gross for d in Invoice.objects.filter(account=carol, number__isnull=False)),
            Decimal(0),
        )
        assert billed == year2 + money(year2 * Decimal("0.25"))


@pytest.mark.django_db
class TestLateChanges:
    """A move-out, a new occupant and a capacity change all recorded after their month
    was billed; then the move-day read arrives and replaces its estimate."""

    def test_late_move_capacity_and_read_leave_exactly_the_true_figures(self):
        from billing.services.contract_changes import contracts_rebill_changed

        network = NetworkFactory(time_zone=CPH, currency="DKK")
        tariff_version(
            network=network,
            valid_from=dt.date(2025, 1, 1),
            components=components("1320.00", "132.00", "612.00", "5.50"),
        )
        connection = ServiceConnectionFactory(network=network, contracted_capacity_kw=Decimal(10))
        unit = BuildingInterfaceUnitFactory(connection=connection)
        alice = AccountFactory(network=network)
        ContractFactory(account=alice, connection=connection, valid_from=dt.date(2025, 1, 1))
        meter = MeterInstallationFactory(
            unit=unit, installed_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        ).meter
        deliver(
            meter,
            [(dt.date(2026, 8, 1), "13100", "262"), (dt.date(2026, 9, 1), "16200", "324")],
            now=at(dt.date(2026, 9, 1), 2),
        )
        run_month(network, dt.date(2026, 8, 1))
        aug = monthly(alice, dt.date(2026, 8, 1))
        kw10, aug1, aug20, sep1 = (
            Decimal(10),
            dt.date(2026, 8, 1),
            dt.date(2026, 8, 20),
            dt.date(2026, 9, 1),
        )
        check(
            aug,
            [
                {
                    "version": 2,
                    "start": aug1,
                    "end": sep1,
                    "kw_pieces": [(aug1, sep1, kw10)],
                    "mwh": Decimal("3.1"),
                    "m3": Decimal("62"),
                }
            ],
        )

        # recorded on 3 September: Bob moved in on 20 August
        bob = AccountFactory(network=network)
        contract_move_in(account=bob, connection=connection, move_in_on=aug20, end_previous=True)
        rerated, billed = contracts_rebill_changed(now=at(dt.date(2026, 9, 3), 2))
        assert [credit.original_id for credit, _ in rerated] == [aug.pk]
        assert [b.account_id for b in billed] == [bob.pk]
        assert contracts_rebill_changed(now=at(dt.date(2026, 9, 3), 3)) == ([], [])
        alice_aug = Invoice.objects.get(kind="correction", original=aug)
        bob_aug = monthly(bob, aug1)
        # no read on the 20th: 13,100 + 3,100 × 19/31 = 15,000 kWh; 262 + 62 × 19/31 = 300 m³
        assert alice_aug.has_estimated_reads
        assert bob_aug.has_estimated_reads
        check(
            alice_aug,
            [
                {
                    "version": 2,
                    "start": aug1,
                    "end": aug20,
                    "kw_pieces": [(aug1, aug20, kw10)],
                    "mwh": Decimal("1.9"),
                    "m3": Decimal("38"),
                }
            ],
        )
        check(
            bob_aug,
            [
                {
                    "version": 2,
                    "start": aug20,
                    "end": sep1,
                    "kw_pieces": [(aug20, sep1, kw10)],
                    "mwh": Decimal("1.2"),
                    "m3": Decimal("24"),
                }
            ],
        )

        # September billed at 10 kW; the upgrade to 15 kW from the 16th recorded on 5 October
        deliver(meter, [(dt.date(2026, 10, 1), "18200", "364")], now=at(dt.date(2026, 10, 1), 2))
        run_month(network, sep1)
        sep = monthly(bob, sep1)
        connection_capacity_change(
            connection=connection,
            capacity_kw=Decimal(15),
            valid_from=dt.date(2026, 9, 16),
            reason="upgrade",
        )
        rerated, billed = contracts_rebill_changed(now=at(dt.date(2026, 10, 5), 2))
        assert [credit.original_id for credit, _ in rerated] == [sep.pk]
        assert billed == []
        oct1, sep16 = dt.date(2026, 10, 1), dt.date(2026, 9, 16)
        sep_true = check(
            Invoice.objects.get(kind="correction", original=sep),
            [
                {
                    "version": 2,
                    "start": sep1,
                    "end": oct1,
                    "kw_pieces": [(sep1, sep16, kw10), (sep16, oct1, Decimal(15))],
                    "mwh": Decimal("2"),
                    "m3": Decimal("40"),
                }
            ],
        )

        # the 20 August read arrives: 15,100 kWh, 302 m³
        deliver(meter, [(aug20, "15100", "302")], now=at(dt.date(2026, 10, 6), 2))
        results = invoices_rerate_changed(now=at(dt.date(2026, 10, 6), 3))
        assert sorted(c.original_id for c, _ in results) == sorted([alice_aug.pk, bob_aug.pk])
        assert invoices_rerate_changed(now=at(dt.date(2026, 10, 6), 4)) == []
        alice_true = check(
            Invoice.objects.get(kind="correction", original=alice_aug),
            [
                {
                    "version": 2,
                    "start": aug1,
                    "end": aug20,
                    "kw_pieces": [(aug1, aug20, kw10)],
                    "mwh": Decimal("2"),
                    "m3": Decimal("40"),
                }
            ],
        )
        bob_true = check(
            Invoice.objects.get(kind="correction", original=bob_aug),
            [
                {
                    "version": 2,
                    "start": aug20,
                    "end": sep1,
                    "kw_pieces": [(aug20, sep1, kw10)],
                    "mwh": Decimal("1.1"),
                    "m3": Decimal("22"),
                }
            ],
        )
        for fix in Invoice.objects.filter(kind="correction", original__in=[alice_aug, bob_aug]):
            assert not fix.has_estimated_reads

        def billed_total(account):
            docs = Invoice.objects.filter(account=account, number__isnull=False)
            return sum((d.gross for d in docs), Decimal(0))

        assert billed_total(alice) == alice_true
        assert billed_total(bob) == bob_true + sep_true


@pytest.mark.django_db
class TestPriceCorrectionApprovedLate:
    def test_a_version_approved_from_inside_a_billed_month_rebills_only_its_days(
        self, django_capture_on_commit_callbacks
    ):
        from heatutility.roles import TARIFF_MANAGER
        from tariffs.services import tariff_version_approve, tariff_version_create
        from tests.billing.helpers import staff_user

        network = NetworkFactory(time_zone=CPH, currency="DKK")
        v1 = tariff_version(
            network=network,
            valid_from=dt.date(2025, 1, 1),
            components=components("1200.00", "120.00", "592.52", "5.00"),
        )
        connection = ServiceConnectionFactory(network=network, contracted_capacity_kw=Decimal(10))
        unit = BuildingInterfaceUnitFactory(connection=connection)
        dave = AccountFactory(network=network)
        ContractFactory(account=dave, connection=connection, valid_from=dt.date(2025, 1, 1))
        meter = MeterInstallationFactory(
            unit=unit, installed_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        ).meter
        kw10 = Decimal(10)
        feb, mar, apr = dt.date(2026, 2, 1), dt.date(2026, 3, 1), dt.date(2026, 4, 1)
        deliver(
            meter, [(feb, "1000", "20"), (mar, "4000", "80"), (apr, "7100", "142")], now=at(apr, 2)
        )
        run_month(network, feb)
        run_month(network, mar)
        feb_bill, mar_bill = monthly(dave, feb), monthly(dave, mar)

        change = dt.date(2026, 3, 16)
        draft = tariff_version_create(
            tariff=v1.tariff,
            valid_from=change,
            components=components("1320.00", "132.00", "612.00", "5.50"),
        )
        with django_capture_on_commit_callbacks(execute=True):
            tariff_version_approve(
                version=draft, user=staff_user(TARIFF_MANAGER), now=at(dt.date(2026, 4, 5), 9)
            )

        fix = Invoice.objects.get(kind="correction", original=mar_bill)
        assert not Invoice.objects.filter(original=feb_bill).exists()
        # 3,100 kWh over March shared 15/31 and 16/31: 1,500 and 1,600 kWh; 62 m³: 30 and 32
        truth = check(
            fix,
            [
                {
                    "version": 1,
                    "start": mar,
                    "end": change,
                    "kw_pieces": [(mar, change, kw10)],
                    "mwh": Decimal("1.5"),
                    "m3": Decimal("30"),
                },
                {
                    "version": 2,
                    "start": change,
                    "end": apr,
                    "kw_pieces": [(change, apr, kw10)],
                    "mwh": Decimal("1.6"),
                    "m3": Decimal("32"),
                },
            ],
        )
        from billing.services.rerating import invoices_rerate_tariff_corrections

        assert invoices_rerate_tariff_corrections(now=at(dt.date(2026, 4, 6), 2)) == []
        docs = Invoice.objects.filter(account=dave, number__isnull=False)
        assert sum((d.gross for d in docs), Decimal(0)) == feb_bill.gross + truth


@pytest.mark.django_db
class TestOnAccountMoveOut:
    def test_final_settlement_and_the_next_occupants_invoice_share_june_exactly(self):
        from billing.models import InstalmentPlan
        from billing.services.aconto import final_settlement_issue, instalment_plan_create
        from customers.models import Account
        from customers.services import account_set_status

        network = NetworkFactory(time_zone=CPH, currency="DKK")
        tariff_version(
            network=network,
            valid_from=dt.date(2025, 1, 1),
            components=components("1200.00", "120.00", "592.52", "5.00"),
        )
        connection = ServiceConnectionFactory(network=network, contracted_capacity_kw=Decimal(10))
        unit = BuildingInterfaceUnitFactory(connection=connection)
        carol = AccountFactory(network=network)
        ContractFactory(account=carol, connection=connection, valid_from=dt.date(2024, 1, 1))
        meter = MeterInstallationFactory(
            unit=unit, installed_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        ).meter
        deliver(
            meter,
            [(dt.date(2025, 1, 1), "10000", "200"), (dt.date(2026, 1, 1), "34000", "680")],
            now=at(dt.date(2026, 1, 1), 2),
        )
        instalment_plan_create(
            account=carol,
            year_start=dt.date(2026, 1, 1),
            frequency="monthly",
            now=at(dt.date(2025, 12, 1)),
        )
        jun20, jul1 = dt.date(2026, 6, 20), dt.date(2026, 7, 1)
        erin = AccountFactory(network=network)
        contract_move_in(account=erin, connection=connection, move_in_on=jun20, end_previous=True)
        for m in range(1, 8):
            month = dt.date(2026, m, 1)
            bill_month(
                network,
                start=month,
                kind="instalment",
                now=at(month) - dt.timedelta(days=5),
                chunk_size=1,
            )
        instalments = list(
            Invoice.objects.filter(account=carol, kind="instalment").order_by("period_start")
        )
        full = annual_net(1, share=Fraction(1), kw=Decimal(10), mwh=Decimal(24), m3=Decimal(480))
        # five whole months, then June's 19 of 30 days supplied; nothing for July
        assert [i.net for i in instalments] == [money(Fraction(full) / 12)] * 5 + [
            money(Fraction(full) * Fraction(19, 360))
        ]
        assert not Invoice.objects.filter(account=erin, kind="instalment").exists()

        kwh = [3000, 2800, 2500, 2000, 1500]
        value, rows = Decimal(34000), []
        for m, used in enumerate(kwh, start=2):
            value += used
            rows.append((dt.date(2026, m, 1), str(value), str(680 + (value - 34000) / 50)))
        rows.append((jun20, str(value + 760), str(680 + (value + 760 - 34000) / 50)))
        rows.append((jul1, str(value + 1200), str(680 + (value + 1200 - 34000) / 50)))
        deliver(meter, rows, now=at(jul1, 2))

        run_month(network, dt.date(2026, 6, 1))
        assert not Invoice.objects.filter(account=carol, kind="invoice").exists()
        erin_june = check(
            monthly(erin, dt.date(2026, 6, 1)),
            [
                {
                    "version": 1,
                    "start": jun20,
                    "end": jul1,
                    "kw_pieces": [(jun20, jul1, Decimal(10))],
                    "mwh": Decimal("0.44"),
                    "m3": Decimal("8.8"),
                }
            ],
        )

        carol = Account.objects.get(pk=carol.pk)
        account_set_status(account=carol, status=Account.Status.CLOSED)
        plan = InstalmentPlan.objects.get(account=carol)
        settlement = final_settlement_issue(plan=plan, now=at(dt.date(2026, 7, 2), 9))
        used = Decimal(sum(kwh) + 760)
        year = annual_net(
            1,
            share=year_share(dt.date(2026, 1, 1), jun20),
            kw=Decimal(10),
            mwh=used / 1000,
            m3=used / 50,
        )
        year_vat = money(year * Decimal("0.25"))
        paid_net = sum((i.net for i in instalments), Decimal(0))
        paid_vat = sum((i.vat for i in instalments), Decimal(0))
        assert (settlement.net, settlement.vat) == (year - paid_net, year_vat - paid_vat)
        docs = Invoice.objects.filter(account=carol, number__isnull=False)
        assert sum((d.gross for d in docs), Decimal(0)) == year + year_vat
        docs = Invoice.objects.filter(account=erin, number__isnull=False)
        assert sum((d.gross for d in docs), Decimal(0)) == erin_june

        # the year's settlement run later leaves Carol's settled year alone
        bill_month(
            network,
            start=dt.date(2026, 1, 1),
            months=12,
            kind="settlement",
            now=at(dt.date(2027, 1, 2), 8),
            chunk_size=1,
        )
        assert Invoice.objects.filter(account=carol, kind="settlement").count() == 1
