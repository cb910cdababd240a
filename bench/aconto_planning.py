"""On-account planning: a settlement year of instalment plans for N accounts (PostgreSQL).

    .venv/bin/python bench/aconto_planning.py               # 100,000 accounts
    .venv/bin/python bench/aconto_planning.py --accounts 20000

Uses the billing benchmark's database and data (``bench/billing.py`` builds them when the
database does not hold N accounts): one connection per account with monthly boundary
registers from November 2025.  Adds a year of daily degree days and a normal year, then,
in one transaction that is rolled back at the end (the data stays as it was), times:

* ``billing.services.aconto.instalment_plans_create`` for the whole network, December
  2026 to November 2027: accounts and contracts, the premises' registers a year apart
  (checked by ``boundary_registers_ensure``), the climate-corrected estimate and its
  explanation, the plans written;
* a baseline in the same process: one ``INSERT … SELECT`` computing the same last-year
  and climate-corrected MWh into a bare table.

It prints seconds, accounts per second and the ratio, and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.billing import build_data, setup_env

YEAR_START = dt.date(2026, 12, 1)
LAST_START = dt.date(2025, 12, 1)
NORMAL = Decimal("2906")


def _degree_days(network_id: int) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("DELETE FROM metering_degreeday WHERE network_id = %s", [network_id])
        cur.execute(
            'INSERT INTO metering_degreeday (network_id, "on", degree_days) '
            "SELECT %s, d::date, round((8 + 7 * cos(2 * pi() * extract(doy FROM d) / 365))"
            "::numeric, 2) FROM generate_series(%s::date, %s::date - 1, '1 day') d",
            [network_id, LAST_START, YEAR_START],
        )
        cur.execute(
            "UPDATE customers_network SET normal_degree_days = %s WHERE id = %s",
            [
                NORMAL,
                network_id,
            ],
        )


def baseline(network_id: int, share: Decimal, dd_actual: Decimal) -> float:
    """The same estimates as one statement into a bare table."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE bare_plan (account_id bigint, last_mwh numeric, "
            "estimated_mwh numeric, estimated_m3 numeric) ON COMMIT DROP"
        )
        t = time.perf_counter()
        cur.execute(
            """
            INSERT INTO bare_plan
            SELECT c.account_id, round((b.energy_kwh - a.energy_kwh) / 1000, 6),
                   round(%(share)s * (b.energy_kwh - a.energy_kwh) / 1000 * %(normal)s
                         / %(actual)s + (1 - %(share)s) * (b.energy_kwh - a.energy_kwh) / 1000, 6),
                   round((b.volume_m3 - a.volume_m3) * (%(share)s * %(normal)s / %(actual)s
                         + 1 - %(share)s), 4)
            FROM customers_contract c
            JOIN customers_account acc ON acc.id = c.account_id AND acc.network_id = %(network)s
            JOIN metering_boundaryregister a ON a.connection_id = c.connection_id
                 AND a."on" = %(last)s
            JOIN metering_boundaryregister b ON b.connection_id = c.connection_id
                 AND b."on" = %(start)s
            WHERE c.valid_from < %(end)s AND (c.valid_to IS NULL OR c.valid_to > %(start)s)
            """,
            {
                "share": share,
                "normal": NORMAL,
                "actual": dd_actual,
                "network": network_id,
                "last": LAST_START,
                "start": YEAR_START,
                "end": dt.date(2027, 12, 1),
            },
        )
        return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    args = parser.parse_args()
    setup_env(args)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from bench.billing import data_present
    from billing import conf
    from billing.models import InstalmentPlan
    from billing.services.aconto import instalment_plans_create, plan_weather
    from customers.models import Network

    call_command("migrate", verbosity=0)
    if not data_present(args.accounts):
        t = time.perf_counter()
        build_data(args.accounts)
        print(f"data: {args.accounts} accounts built in {time.perf_counter() - t:.1f} s")
    network = Network.objects.get()
    share = conf.heating_share()
    with transaction.atomic():
        _degree_days(network.pk)
        network.refresh_from_db()
        _normal, dd_actual = plan_weather(network=network, year_start=YEAR_START)
        t = time.perf_counter()
        result = instalment_plans_create(
            network=network, year_start=YEAR_START, frequency="monthly", now=timezone.now()
        )
        seconds = time.perf_counter() - t
        plans = InstalmentPlan.objects.count()
        sample = InstalmentPlan.objects.order_by("account_id").first()
        base = baseline(network.pk, share, dd_actual)
        with transaction.get_connection().cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM bare_plan b JOIN billing_instalmentplan p "
                "USING (account_id) WHERE p.estimated_mwh = b.estimated_mwh"
            )
            same = cur.fetchone()[0]
        transaction.set_rollback(True)
    made = len(result.created)
    print(
        f"planning: {made} plans ({len(result.failures)} failed, {len(result.existing)} kept) "
        f"in {seconds:.2f} s = {made / seconds:,.0f} accounts/s"
    )
    print(f"  e.g. account {sample.account_id}: {sample.explanation}")
    print(f"  degree days last year {dd_actual}, normal {NORMAL}")
    print(
        f"baseline INSERT … SELECT of the same estimates: {base:.2f} s -> ratio {seconds / base:.1f}×"
    )
    print(f"estimates equal to the baseline's: {same} of {plans}")
    print(
        json.dumps(
            {
                "accounts": made,
                "seconds": round(seconds, 2),
                "accounts_per_s": round(made / seconds, 1),
                "baseline_seconds": round(base, 2),
                "ratio": round(seconds / base, 2),
                "equal_to_baseline": same,
            }
        )
    )


if __name__ == "__main__":
    main()
