"""Billing benchmark: one monthly billing run over N accounts on PostgreSQL + Redis.

    .venv/bin/python bench/billing.py                 # 100,000 accounts, 2 worker processes
    .venv/bin/python bench/billing.py --accounts 20000 --pdfs 40

Builds N accounts (one connection, one contract each) with a year of monthly boundary
registers in its own database (``heatutility_bench_b`` unless ``DATABASE_URL`` is set),
then runs one monthly billing run end to end on real Celery workers (one worker with two
prefork processes): chunks of drafts with lines, then issue with gapless numbers, no
PDFs.  In the same process it times two lower bounds:

(a) one SQL ``INSERT … SELECT`` computing the same energy totals and amounts into a bare
    table;
(b) a plain ``COPY`` of as many rows as the run wrote (invoices and lines, the same
    bytes) into bare tables without indexes or constraints.

It prints seconds, bills per second and both ratios, then PDFs per second (rendered by
the same two worker processes), and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/heatutility_bench_b"
DEFAULT_REDIS = "redis://127.0.0.1:6379/3"
QUEUE = "bench-billing"
PERIOD = ("2026-11-01", "2026-12-01")
# Monthly registers from Nov 2025 to Dec 2026 (14 values, 13 months of consumption).
MONTHS = [f"{2025 + (m + 10) // 12}-{(m + 10) % 12 + 1:02d}-01" for m in range(14)]
# Share of a year's heat per month, Jan..Dec (heating season shape).
SEASON = [0.16, 0.14, 0.12, 0.08, 0.05, 0.03, 0.02, 0.02, 0.04, 0.08, 0.11, 0.15]


def setup_env(args) -> None:
    os.environ.setdefault("DATABASE_URL", DEFAULT_DB)
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS)
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    # PDFs per second measures rendering; delivering them by e-mail is another job
    os.environ.setdefault("BILLING_EMAIL_DOCUMENTS", "false")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heatutility.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    url = os.environ["DATABASE_URL"]
    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    exists = subprocess.run(
        ["psql", admin, "-Atc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not exists:
        subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)


def build_data(n: int) -> None:
    """N accounts with one connection each and 14 monthly register values (set-based SQL)."""
    from django.db import connection
    from django.utils import timezone

    from customers.models import Network
    from tariffs.models import Tariff, TariffVersion

    tables = [
        "billing_allocation",
        "billing_dunningnotice",
        "billing_payment",
        "billing_invoiceline",
        "billing_invoice",
        "billing_billingrunexception",
        "billing_billingrunchunk",
        "billing_billingrun",
        "billing_invoicenumbercounter",
        "billing_instalmentplan",
        "metering_boundaryregister",
        "tariffs_tariffassignment",
        "tariffs_tariffversion",
        "tariffs_tariff",
        "customers_contract",
        "customers_serviceconnection",
        "customers_building",
        "customers_account",
        "customers_customer",
        "customers_network",
    ]
    with connection.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    network = Network.objects.create(
        code="bench",
        name="Bench network",
        time_zone="Europe/Copenhagen",
        currency="DKK",
        price_area="DK2",
    )
    tariff = Tariff.objects.create(network=network, code="std", name="Standard", is_default=True)
    TariffVersion.objects.create(
        tariff=tariff,
        number=1,
        valid_from="2020-01-01",
        status="approved",
        approved_at=timezone.now(),
        vat_rate="0.25",
        components=[
            {
                "type": "fixed",
                "code": "subscription",
                "description": "Subscription",
                "amount": "1200.00",
            },
            {
                "type": "banded",
                "code": "capacity",
                "description": "Capacity charge",
                "basis": "capacity",
                "unit": "kW",
                "bands": [{"upto": None, "unit_price": "120.00"}],
            },
            {"type": "energy", "code": "energy", "description": "Energy charge", "price": "592.52"},
        ],
    )
    cumulative = [0.0]
    for m in range(13):
        month = (m + 10) % 12  # index into SEASON: Nov 2025 first
        cumulative.append(cumulative[-1] + SEASON[month])
    cum_sql = "ARRAY[" + ",".join(f"{c:.6f}" for c in cumulative) + "]::numeric[]"
    dates_sql = "ARRAY[" + ",".join(f"'{d}'" for d in MONTHS) + "]::date[]"
    nid = network.pk
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO customers_customer (id, kind, name, organisation_number, email, phone, created_at) "
            "SELECT g, 'person', 'Bench customer ' || g, '', '', '', now() FROM generate_series(1, %s) g",
            [n],
        )
        cur.execute(
            "INSERT INTO customers_account (id, number, status, billing_name, billing_street, "
            "billing_postal_code, billing_city, billing_country, payment_terms_days, created_at, "
            "customer_id, network_id) SELECT g, lpad(g::text, 8, '0'), 'active', '', "
            "'Benchvej ' || g, '2300', 'København S', 'DK', 14, now(), g, %s "
            "FROM generate_series(1, %s) g",
            [nid, n],
        )
        cur.execute(
            "INSERT INTO customers_building (id, street, postal_code, city, country, register_id, "
            "heated_area_m2, dwellings, use, year_built) SELECT g, 'Benchvej ' || g, '2300', "
            "'København S', 'DK', '', 80 + g %% 120, 1, 'house', 1970 FROM generate_series(1, %s) g",
            [n],
        )
        cur.execute(
            "INSERT INTO customers_serviceconnection (id, number, contracted_capacity_kw, status, "
            "connected_on, disconnected_on, building_id, network_id) SELECT g, 'BC' || g, "
            "8 + g %% 10, 'active', '2020-01-01', NULL, g, %s FROM generate_series(1, %s) g",
            [nid, n],
        )
        cur.execute(
            "INSERT INTO customers_contract (id, valid_from, valid_to, created_at, account_id, "
            "connection_id) SELECT g, '2020-01-01', NULL, now(), g, g FROM generate_series(1, %s) g",
            [n],
        )
        # annual consumption 12–22 MWh; registers are cumulative kWh at 00:00 on the 1st
        cur.execute(
            f"""
            INSERT INTO metering_boundaryregister (connection_id, "on", energy_kwh, volume_m3,
                flow_temp_m3c, return_temp_m3c, status, method, updated_at)
            SELECT g, ({dates_sql})[m],
                   round(50000 + (12000 + (g * 7919) %% 10000) * ({cum_sql})[m], 3) AS e,
                   round((50000 + (12000 + (g * 7919) %% 10000) * ({cum_sql})[m]) / 38.0, 4),
                   round((50000 + (12000 + (g * 7919) %% 10000) * ({cum_sql})[m]) / 38.0 * 70, 4),
                   round((50000 + (12000 + (g * 7919) %% 10000) * ({cum_sql})[m]) / 38.0 * 36, 4),
                   CASE WHEN g %% 50 = 0 AND m = 14 THEN 'estimated' ELSE 'actual' END,
                   CASE WHEN g %% 50 = 0 AND m = 14 THEN 'interpolation' ELSE 'reading' END,
                   now()
            FROM generate_series(1, %s) g CROSS JOIN generate_series(1, 14) m
            """,
            [n],
        )
        for table in (
            "customers_customer",
            "customers_account",
            "customers_building",
            "customers_serviceconnection",
            "customers_contract",
        ):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        cur.execute("ANALYZE")


def data_present(n: int) -> bool:
    """True when the database holds exactly the bench data for N accounts; then only
    the billing tables are emptied (``--keep-data``)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT count(*), max(id) FROM customers_account")
        if tuple(cur.fetchone()) != (n, n):
            return False
        cur.execute(
            "TRUNCATE billing_allocation, billing_dunningnotice, billing_payment, "
            "billing_invoiceline, billing_invoice, billing_billingrunexception, "
            "billing_billingrunchunk, billing_billingrun, billing_invoicenumbercounter "
            "RESTART IDENTITY CASCADE"
        )
        cur.execute("ANALYZE billing_invoice")
    return True


def start_worker(concurrency: int) -> subprocess.Popen:
    from heatutility.celery import app

    env = os.environ.copy()
    env["PYTHONPATH"] = str(ROOT)
    (ROOT / "var").mkdir(exist_ok=True)  # absent in a fresh clone
    log = open(ROOT / "var" / "bench-billing-worker.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "heatutility",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--queues",
            QUEUE,
            "--hostname",
            "bench-billing@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5) or []
        if any(next(iter(r)).startswith("bench-billing@") for r in replies):
            return proc
    raise RuntimeError("worker did not start; see var/bench-billing-worker.log")


def stop_worker(proc: subprocess.Popen) -> None:
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process so far (Linux /proc; None elsewhere or if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker_pids(worker: subprocess.Popen) -> list[int]:
    """The Celery main process and its pool processes."""
    pids = [worker.pid]
    try:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                if ppid == worker.pid:
                    pids.append(int(entry))
    except OSError:
        pass
    return pids


def _backend_pids() -> list[int]:
    """PostgreSQL backends of this database other than the bench's own (same host)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cur.fetchall()]


def cpu_snapshot(worker: subprocess.Popen) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {"workers": {}, "postgres": {}}
    for kind, pids in (("workers", _worker_pids(worker)), ("postgres", _backend_pids())):
        for pid in pids:
            cpu = _cpu_seconds(pid)
            if cpu is not None:
                out[kind][pid] = cpu
    return out


def cpu_merge(into: dict, snap: dict) -> dict:
    """Keep the latest figure per process (backends come and go with the tasks)."""
    for kind, values in snap.items():
        into.setdefault(kind, {}).update(values)
    return into


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per kind between two snapshots (processes started in between from 0)."""
    return {
        kind: sum(v - before[kind].get(pid, 0.0) for pid, v in after[kind].items())
        for kind in after
    }


def billing_run(chunk_size: int, worker: subprocess.Popen | None = None) -> tuple[float, object]:
    import datetime as dt

    from django.db import connection
    from django.utils import timezone

    from billing import tasks
    from billing.models import BillingRun
    from billing.services.runs import billing_run_create
    from customers.models import Network
    from heatutility.timeutil import local_midnight

    network = Network.objects.get(code="bench")
    cpu_before = cpu_snapshot(worker) if worker is not None else None
    started = time.perf_counter()
    # the run's clock: the morning after the period (a month is billed once it is over)
    billing_day = local_midnight(dt.date.fromisoformat(PERIOD[1]), network.time_zone)
    now = max(timezone.now(), billing_day + dt.timedelta(hours=7))
    run = billing_run_create(
        network=network,
        period_start=dt.date.fromisoformat(PERIOD[0]),
        now=now,
        chunk_size=chunk_size,
        issue_when_drafted=True,
        render_pdfs=False,
    )
    tasks.billing_run_start.apply_async((run.pk,), queue=QUEUE)
    cpu_seen: dict = {}
    sampled = 0.0
    with connection.cursor() as cur:
        while True:
            if cpu_before is not None and time.perf_counter() - sampled >= 0.5:
                # every 0.5 s: the workers keep their backends, so an exiting backend
                # (rare) loses at most its last half second; cheap enough not to load
                # the two cores the run is measured on
                cpu_merge(cpu_seen, cpu_snapshot(worker))
                sampled = time.perf_counter()
            cur.execute(
                "SELECT state, held + failed FROM billing_billingrun WHERE id = %s", [run.pk]
            )
            state, stopped = cur.fetchone()
            if state == BillingRun.State.ISSUED:
                break
            if state == BillingRun.State.DRAFTED and stopped:
                break
            time.sleep(0.02)
    elapsed = time.perf_counter() - started
    run.refresh_from_db()
    if cpu_before is not None:
        run.cpu = cpu_used(cpu_before, cpu_merge(cpu_seen, cpu_snapshot(worker)))
    return elapsed, run


def bound_sql() -> float:
    """(a) the same energy totals and amounts, one INSERT … SELECT into a bare table."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_bound_a")
        cur.execute(
            "CREATE TABLE bench_bound_a (account_id bigint, energy_mwh numeric, energy numeric, "
            "subscription numeric, capacity numeric, net numeric, vat numeric, gross numeric)"
        )
        started = time.perf_counter()
        cur.execute(
            """
            INSERT INTO bench_bound_a
            SELECT account_id, mwh, energy, sub, cap, energy + sub + cap,
                   round((energy + sub + cap) * 0.25, 2),
                   energy + sub + cap + round((energy + sub + cap) * 0.25, 2)
            FROM (
                SELECT c.account_id, round((e.energy_kwh - s.energy_kwh) / 1000, 6) AS mwh,
                       round(round((e.energy_kwh - s.energy_kwh) / 1000, 6) * 592.52, 2) AS energy,
                       round(1200.00 / 12, 2) AS sub,
                       round(sc.contracted_capacity_kw * 120.00 / 12, 2) AS cap
                FROM customers_contract c
                JOIN customers_serviceconnection sc ON sc.id = c.connection_id
                JOIN metering_boundaryregister s ON s.connection_id = c.connection_id AND s."on" = %s
                JOIN metering_boundaryregister e ON e.connection_id = c.connection_id AND e."on" = %s
            ) x
            """,
            list(PERIOD),
        )
        return time.perf_counter() - started


def bound_copy(repeats: int) -> tuple[list[float], int, int]:
    """(b) COPY the rows the run wrote (same bytes) into bare tables, ``repeats`` times
    (each into new tables): the seconds of each; the bound is the best of them."""
    from django.db import connection

    with connection.cursor() as cur:
        raw = cur.cursor
        buffers = {}
        for table in ("billing_invoice", "billing_invoiceline"):
            buf = io.BytesIO()
            with raw.copy(f"COPY {table} TO STDOUT") as copy:
                for data in copy:
                    buf.write(data)
            buffers[table] = buf.getvalue()
        times = []
        for _ in range(repeats):
            for table in buffers:
                cur.execute(f"DROP TABLE IF EXISTS bench_copy_{table}")
                cur.execute(
                    f"CREATE TABLE bench_copy_{table} AS SELECT * FROM {table} WITH NO DATA"
                )
            started = time.perf_counter()
            for table, data in buffers.items():
                with raw.copy(f"COPY bench_copy_{table} FROM STDIN") as copy:
                    copy.write(data)
            times.append(time.perf_counter() - started)
        cur.execute("SELECT count(*) FROM bench_copy_billing_invoice")
        invoices = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM bench_copy_billing_invoiceline")
        lines = cur.fetchone()[0]
    return times, invoices, lines


def pdfs_per_second(count: int) -> float:
    from billing import tasks
    from billing.models import Invoice

    ids = list(
        Invoice.objects.filter(number__isnull=False)
        .order_by("id")
        .values_list("id", flat=True)[:count]
    )
    Invoice.objects.filter(id__in=ids).update(pdf="")
    started = time.perf_counter()
    tasks._queue = QUEUE
    tasks.invoices_render_pdfs_dispatch(ids)
    while Invoice.objects.filter(id__in=ids, pdf="").exists():
        time.sleep(0.1)
    return len(ids) / (time.perf_counter() - started)


def lapper(into: dict[str, float], size: int):
    """``lap(name)``: the µs per bill (of ``size``) since the last lap, into ``into``."""
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        into[name] = (now - clock) / size * 1e6
        clock = now

    return lap


def chunk_breakdown(size: int = 2500) -> dict[str, float]:
    """Microseconds per bill for each phase of one chunk, in this process (October)."""
    import datetime as dt
    from decimal import Decimal

    from django.db import connection, transaction
    from django.utils import timezone

    from billing import conf
    from billing.services import compute
    from billing.services.render import bills_render
    from billing.services.write import drafts_write
    from customers.models import Network
    from metering import selectors as metering_selectors
    from tariffs.rating import Determinants, rate
    from tariffs.selectors import tariff_slices_for_connections

    start, end = dt.date(2026, 10, 1), dt.date(2026, 11, 1)
    ids = list(range(1, size + 1))
    import gc

    gc.disable()  # as in a worker's chunk (billing.services.runs._gc_paused)
    network = Network.objects.get(code="bench")
    t: dict[str, float] = {}
    lap = lapper(t, size)
    intervals = compute.contract_intervals(account_ids=ids, start=start, end=end)
    lap("contracts query")
    slices = tariff_slices_for_connections(connection_ids=ids, start=start, end=end)
    lap("tariffs.selectors.tariff_slices_for_connections")
    dates = [start, end, dt.date(2025, 10, 1), dt.date(2025, 11, 1)]
    rows = metering_selectors.boundary_register_rows(connection_ids=ids, dates=dates)
    lap("metering.selectors.boundary_register_rows")
    registers = compute.registers_from_rows(rows)
    lap("rows to registers")
    drafts, failures = bills_render(  # the run's path: rows straight from the registers
        currency="DKK",
        account_ids=ids,
        period_start=start,
        period_end=end,
        intervals=intervals,
        slices=slices,
        registers=registers,
        rate=rate,
        determinants_type=Determinants,
        plausibility=conf.plausibility(),
    )
    assert not failures, failures
    lap("bills_render (rate, totals, COPY text)")
    spec = slices[1][0][2]
    for a in ids:
        iv = intervals[a][0]
        first, last = registers[(iv.connection_id, start)], registers[(iv.connection_id, end)]
        rate(
            determinants=Determinants(
                period_start=start,
                period_end=end,
                energy_mwh=((last.energy_kwh - first.energy_kwh) / 1000).quantize(
                    Decimal("0.000001")
                ),
                volume_m3=last.volume_m3 - first.volume_m3,
                return_temp_c=None,
                flow_temp_c=None,
                contracted_kw=iv.contracted_kw,
                heated_area_m2=iv.heated_area_m2,
            ),
            tariff=spec,
        )
    lap("  of which tariffs.rating.rate alone (again)")
    with transaction.atomic():
        drafts_write(
            drafts=drafts, network_id=network.pk, run_id=None, kind="invoice", now=timezone.now()
        )
        lap("write (COPY invoices + lines)")
    lap("commit (deferred FK checks)")
    with connection.cursor() as cur:
        cur.execute(
            "DELETE FROM billing_invoiceline WHERE invoice_id IN "
            "(SELECT id FROM billing_invoice WHERE period_start = %s)",
            [start],
        )
        cur.execute("DELETE FROM billing_invoice WHERE period_start = %s", [start])
    gc.enable()
    return t


def sql_pricing_probe(size: int = 2500) -> dict[str, float]:
    """Microseconds per bill of one chunk priced and written inside PostgreSQL.

    What a second, set-based rating engine would cost for the common bill (one
    contract, one tariff version, fixed + capacity + flat energy): the lines that depend
    on the period and the kW alone come from ``tariffs.rating.rate`` as the run's path
    has them; energy, totals, VAT and the JSON columns are computed in SQL into a
    temporary table, then the lines and invoices go in with ``INSERT … SELECT``.  Same
    October chunk as :func:`chunk_breakdown`; rolled back.
    """
    import datetime as dt
    from decimal import Decimal

    from django.db import connection, transaction

    from billing.services import compute
    from tariffs.rating import Determinants, EnergyCharge, rate
    from tariffs.selectors import tariff_slices_for_connections

    start, end = dt.date(2026, 10, 1), dt.date(2026, 11, 1)
    ids = list(range(1, size + 1))
    intervals = compute.contract_intervals(account_ids=ids, start=start, end=end)
    slices = tariff_slices_for_connections(connection_ids=ids, start=start, end=end)
    spec = slices[1][0][2]
    (energy,) = [c for c in spec.components if isinstance(c, EnergyCharge)]
    static: dict[Decimal, Decimal] = {}  # kW -> the amounts of the lines on period and kW
    accounts, connections, kws, m2s, fixed = [], [], [], [], []
    for a in ids:
        iv = intervals[a][0]
        if iv.contracted_kw not in static:
            lines = rate(
                determinants=Determinants(
                    start,
                    end,
                    Decimal(0),
                    Decimal(0),
                    None,
                    None,
                    iv.contracted_kw,
                    iv.heated_area_m2,
                ),
                tariff=spec,
            )
            static[iv.contracted_kw] = sum(ln.amount for ln in lines if ln.kind != "energy")
        accounts.append(a)
        connections.append(iv.connection_id)
        kws.append(iv.contracted_kw)
        m2s.append(iv.heated_area_m2)
        fixed.append(static[iv.contracted_kw])
    params = {
        "acc": accounts,
        "cid": connections,
        "kw": kws,
        "m2": m2s,
        "fixed": fixed,
        "ps": start,
        "pe": end,
        "lys": dt.date(2025, 10, 1),
        "lye": dt.date(2025, 11, 1),
        "price": energy.price,
        "vat": spec.vat_rate,
        "vid": spec.version_id,
        "num": [10_000_000 + i for i in range(size)],
    }
    t: dict[str, float] = {}
    with transaction.atomic(), connection.cursor() as cur:
        lap = lapper(t, size)
        cur.execute(PROBE_PRICE, params)
        cur.execute("SELECT account_id FROM bench_probe WHERE python")
        assert not cur.fetchall()
        lap("SQL: registers, energy, totals, JSON (temp table)")
        cur.execute(PROBE_LINES, params)
        lap("SQL: INSERT … SELECT lines")
        cur.execute(PROBE_INVOICES, params)
        lap("SQL: INSERT … SELECT invoices")
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        lap("SQL: deferred FK checks")
        transaction.set_rollback(True)
    return t


PROBE_PRICE = """
CREATE TEMP TABLE bench_probe ON COMMIT DROP AS
WITH a AS (
  SELECT * FROM unnest(%(acc)s::bigint[], %(cid)s::bigint[], %(kw)s::numeric[],
                       %(m2)s::numeric[], %(fixed)s::numeric[]) AS a(account_id, cid, kw, m2, fixed)
), r AS (
  SELECT a.*, s.id AS s_id, s.energy_kwh AS s_e, s.volume_m3 AS s_v, s.flow_temp_m3c AS s_f,
         s.return_temp_m3c AS s_r, s.status AS s_st, s.method AS s_m, e.id AS e_id,
         e.energy_kwh AS e_e, e.volume_m3 AS e_v, e.flow_temp_m3c AS e_f,
         e.return_temp_m3c AS e_r, e.status AS e_st, e.method AS e_m,
         ly.energy_kwh AS ly_e, tr.energy_kwh AS tr_e
  FROM a
  LEFT JOIN metering_boundaryregister s ON s.connection_id = a.cid AND s."on" = %(ps)s
  LEFT JOIN metering_boundaryregister e ON e.connection_id = a.cid AND e."on" = %(pe)s
  LEFT JOIN metering_boundaryregister ly ON ly.connection_id = a.cid AND ly."on" = %(lys)s
  LEFT JOIN metering_boundaryregister tr ON tr.connection_id = a.cid AND tr."on" = %(lye)s
), c AS (
  SELECT r.*, round((e_e - s_e) * 0.001, 6) AS mwh, e_v - s_v AS vol,
         CASE WHEN e_v > s_v AND e_r >= s_r
              THEN div(200 * (e_r - s_r) + (e_v - s_v), 2 * (e_v - s_v)) / 100.0 END AS rt,
         CASE WHEN e_v > s_v AND e_f >= s_f
              THEN div(200 * (e_f - s_f) + (e_v - s_v), 2 * (e_v - s_v)) / 100.0 END AS ft,
         round((tr_e - ly_e) * 0.001, 6) AS ly_mwh
  FROM r
), p AS (
  SELECT c.*, round(mwh * %(price)s, 2) AS energy_amount,
         fixed + round(mwh * %(price)s, 2) AS net FROM c
)
SELECT p.*, nextval((SELECT pg_get_serial_sequence('billing_invoice', 'id'))::regclass) AS invoice_id,
   round(net * %(vat)s, 2) AS vat,
   (s_id IS NULL OR e_id IS NULL OR mwh < 0 OR vol < 0) AS python,
   jsonb_build_array(
     jsonb_build_object('id', s_id, 'connection_id', cid, 'on', %(ps)s::text,
       'energy_kwh', s_e::text, 'volume_m3', s_v::text, 'status', s_st, 'method', s_m),
     jsonb_build_object('id', e_id, 'connection_id', cid, 'on', %(pe)s::text,
       'energy_kwh', e_e::text, 'volume_m3', e_v::text, 'status', e_st, 'method', e_m)
   ) AS readings,
   jsonb_build_object(
     'segments', jsonb_build_array(jsonb_build_object(
       'connection_id', cid, 'period_start', %(ps)s::text, 'period_end', %(pe)s::text,
       'tariff_version_id', %(vid)s, 'energy_mwh', mwh::text, 'volume_m3', vol::text,
       'return_temp_c', rt::text, 'flow_temp_c', ft::text, 'contracted_kw', kw::text,
       'heated_area_m2', m2::text, 'days', %(pe)s::date - %(ps)s::date)),
     'vat', jsonb_build_array(jsonb_build_object(
       'rate', %(vat)s::text, 'base', net::text, 'vat', round(net * %(vat)s, 2)::text))
   ) AS determinants,
   jsonb_build_object('energy_mwh', mwh::text, 'last_year_mwh', ly_mwh::text) AS comparison
FROM p
"""
PROBE_LINES = """
INSERT INTO billing_invoiceline (invoice_id, position, connection_id, period_start,
  period_end, tariff_version_id, component, kind, description, explanation, quantity, unit,
  unit_price, amount, vat_rate)
SELECT b.invoice_id, t.pos, b.cid, %(ps)s, %(pe)s, %(vid)s, t.component, t.kind,
       t.description,
       CASE WHEN t.pos = 3 THEN rtrim(rtrim(b.mwh::text, '0'), '.') || ' MWh × …'
            ELSE t.explanation END,
       CASE WHEN t.pos = 3 THEN b.mwh ELSE b.kw END, t.unit, t.unit_price,
       CASE WHEN t.pos = 3 THEN b.energy_amount ELSE b.fixed / 2 END, %(vat)s
FROM bench_probe b CROSS JOIN (VALUES
  (1, 'subscription', 'fixed', 'Subscription', '… × 1/12 year (…)', 'year', 1200),
  (2, 'capacity', 'capacity', 'Capacity charge', '… kW × … × 1/12 year (…)', 'kW', 120),
  (3, 'energy', 'energy', 'Energy charge', '', 'MWh', 592.52)
) AS t(pos, component, kind, description, explanation, unit, unit_price)
WHERE NOT b.python
"""
PROBE_INVOICES = """
INSERT INTO billing_invoice (id, account_id, network_id, run_id, kind, state, period_start,
  period_end, held, hold_reason, series, number, issued_at, due_on, currency, net, vat,
  gross, paid, original_id, has_estimated_reads, tariff_version_ids, readings,
  determinants, comparison, pdf, created_at)
SELECT b.invoice_id, b.account_id, ac.network_id, NULL, 'invoice', 'issued', %(ps)s, %(pe)s,
  false, '', 'PROBE', n.number, now(), %(pe)s::date + ac.payment_terms_days, 'DKK', b.net,
  b.vat, b.net + b.vat, 0, NULL, (b.s_st = 'estimated' OR b.e_st = 'estimated'),
  jsonb_build_array(%(vid)s), b.readings, b.determinants, b.comparison, '', now()
FROM bench_probe b
JOIN unnest(%(acc)s::bigint[], %(num)s::bigint[]) AS n(account_id, number)
  ON n.account_id = b.account_id
JOIN customers_account ac ON ac.id = b.account_id
WHERE NOT b.python
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=2500)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--pdfs", type=int, default=100, help="PDFs to render for PDFs/s (0: skip)")
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="reuse accounts and registers from the last run of the same size (iterating)",
    )
    parser.add_argument(
        "--bound-repeats",
        type=int,
        default=3,
        help="time bound (b) this many times and take the best: a lower bound is the least "
        "the COPY needs, and one timing right after the run scatters by ±20 %%",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time one chunk's phases in process, and the same chunk priced in SQL",
    )
    args = parser.parse_args()
    setup_env(args)

    import django

    django.setup()
    from django.core.management import call_command

    from heatutility.celery import app

    app.conf.task_always_eager = False
    app.conf.task_default_queue = QUEUE
    call_command("migrate", verbosity=0)
    t = time.perf_counter()
    if args.keep_data and data_present(args.accounts):
        print(f"data: {args.accounts} accounts kept, billing tables emptied")
    else:
        build_data(args.accounts)
        print(
            f"data: {args.accounts} accounts, {args.accounts * 14} registers in "
            f"{time.perf_counter() - t:.1f} s"
        )
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(QUEUE)
    worker = start_worker(args.concurrency)
    try:
        load_start = os.getloadavg()[0]
        seconds, run = billing_run(args.chunk_size, worker)
        load_end = os.getloadavg()[0]
        print(
            f"run: {run.state}, total {run.total}, drafted {run.done}, held {run.held}, "
            f"failed {run.failed}, issued {run.issued}"
        )
        bills = run.issued
        cpu = getattr(run, "cpu", None) or {}
        if bills and cpu:
            print(
                "CPU during the run: "
                + ", ".join(f"{k} {v:.2f} s" for k, v in cpu.items())
                + f" = {sum(cpu.values()) / bills * 1e6:.0f} µs/bill "
                + f"({', '.join(f'{k} {v / bills * 1e6:.0f}' for k, v in cpu.items())}); "
                + f"load average {load_start:.2f} at the start, {load_end:.2f} at the end"
            )
        a = bound_sql()
        b_times, invoices, lines = bound_copy(args.bound_repeats)
        b = min(b_times)
        print(
            f"billing run: {bills} bills in {seconds:.2f} s = {bills / seconds:,.0f} bills/s "
            f"({args.concurrency} worker processes)"
        )
        print(
            f"bound (a) INSERT … SELECT of the same totals: {a:.2f} s -> ratio {seconds / a:.1f}×"
        )
        print(
            f"bound (b) COPY of {invoices} invoices + {lines} lines: {b:.2f} s -> ratio {seconds / b:.1f}×"
            + (
                f" (best of {len(b_times)}: {' / '.join(f'{t:.2f}' for t in b_times)} s)"
                if len(b_times) > 1
                else ""
            )
        )
        if args.breakdown:
            phases = chunk_breakdown()
            for phase, micros in phases.items():
                print(f"  {phase:<50} {micros:7.0f} µs/bill")
            run_path = sum(v for k, v in phases.items() if not k.startswith("  "))
            probe = sql_pricing_probe()
            for phase, micros in probe.items():
                print(f"  {phase:<50} {micros:7.0f} µs/bill")
            print(
                f"  one chunk: the run's path {run_path:.0f} µs/bill, priced in SQL "
                f"{sum(probe.values()):.0f} µs/bill (ratio {sum(probe.values()) / run_path:.2f})"
            )
        pdf_rate = pdfs_per_second(args.pdfs) if args.pdfs else 0.0
        if args.pdfs:
            print(
                f"PDFs: {pdf_rate:.1f} PDFs/s over {args.concurrency} worker processes ({args.pdfs} invoices)"
            )
    finally:
        stop_worker(worker)
    print(
        json.dumps(
            {
                "bills": bills,
                "seconds": round(seconds, 2),
                "bills_per_s": round(bills / seconds, 1),
                "ratio_sql": round(seconds / a, 2),
                "ratio_write": round(seconds / b, 2),
                "bound_b_seconds": [round(t, 2) for t in b_times],
                "pdfs_per_s": round(pdf_rate, 2),
                "cpu_us_per_bill": {k: round(v / bills * 1e6) for k, v in cpu.items()}
                if bills
                else {},
                "load_avg": [round(load_start, 2), round(load_end, 2)],
            }
        )
    )


if __name__ == "__main__":
    main()
