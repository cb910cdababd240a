"""Reading ingestion throughput against the physical limit (a plain COPY).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/heatutility_bench_m \\
        .venv/bin/python bench/ingest.py [--meters 1000] [--days 30] [--api-url URL]

Generates realistic hourly readings (cumulative energy/volume registers following a
daily heating profile, temperatures, power, flow, volume-weighted temperature
registers) and in the same run times three ways in:

* ``copy``: a plain COPY of the same rows, already in PostgreSQL's text format, into a
  bare table with the same primary key (meter_id, read_at): the physical limit.
* ``file``: the vendor CSV bytes through the real file path (``readings_file_submit`` +
  ``readings_batch_process``: parse, validate, resolve meters, store, count).
* ``api``: HTTP POSTs of 5,000 readings (JSON) to a running server, several in
  flight, until every batch is stored.  Without ``--api-url`` the script starts
  gunicorn on 127.0.0.1 itself (tasks eager: each request stores its batch before it
  answers, so the clock stops when the data is in).

The database is migrated and the bench vendor's previous readings are removed first (in a
database whose name contains "bench" the readings table is truncated).
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heatutility.settings")


def generate(meters: int, days: int, start: dt.datetime, seed: int = 7):
    """Hourly readings as a pandas frame (one row per meter and hour)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    hours = days * 24
    times = pd.date_range(start, periods=hours, freq="h", tz="UTC")
    hour_of_day = np.asarray(times.hour)
    profile = 1.0 + 0.35 * np.cos((hour_of_day - 7) / 24 * 2 * np.pi)  # morning peak
    size = rng.uniform(1.5, 6.0, meters)  # average kW per building
    power = np.clip(
        size[:, None] * profile[None, :] * rng.normal(1, 0.08, (meters, hours)), 0.05, None
    )
    flow_t = 72 + rng.normal(0, 1.5, (meters, hours))
    return_t = 38 + rng.normal(0, 2.0, (meters, hours))
    dt_k = flow_t - return_t
    flow = power / (1.163 * dt_k)  # m³/h from P = ρ·c·V̇·ΔT
    energy = rng.uniform(1e4, 9e4, meters)[:, None] + np.cumsum(power, axis=1)
    volume = rng.uniform(100, 900, meters)[:, None] + np.cumsum(flow, axis=1)
    flow_m3c = np.cumsum(flow * flow_t, axis=1) + 30000
    return_m3c = np.cumsum(flow * return_t, axis=1) + 15000
    serials = np.array([f"BENCH{m:07d}" for m in range(meters)])
    frame = pd.DataFrame(
        {
            "meter": np.repeat(serials, hours),
            "read_at": np.tile(times.strftime("%Y-%m-%dT%H:%M:%S+00:00"), meters),
            "energy": np.round(energy.ravel(), 3),
            "volume_m3": np.round(volume.ravel(), 4),
            "flow_temp_c": np.round(flow_t.ravel(), 2),
            "return_temp_c": np.round(return_t.ravel(), 2),
            "power_kw": np.round(power.ravel(), 3),
            "flow_m3h": np.round(flow.ravel(), 4),
            "status_code": 0,
            "flow_temp_m3c": np.round(flow_m3c.ravel(), 4),
            "return_temp_m3c": np.round(return_m3c.ravel(), 4),
        }
    )
    return frame, serials


def setup(meters: int):
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from metering.models import HeatMeter, MeterVendor
    from metering.vendors import vendor_key_create

    call_command("migrate", verbosity=0)
    vendor, _ = MeterVendor.objects.update_or_create(
        code="bench",
        defaults={
            "name": "Bench head-end",
            "csv_columns": {},
            "csv_separator": ",",
            "csv_decimal_comma": False,
            "csv_energy_unit": "kWh",
            "csv_time_zone": "UTC",
        },
    )
    existing = set(HeatMeter.objects.filter(vendor=vendor).values_list("serial", flat=True))
    HeatMeter.objects.bulk_create(
        [
            HeatMeter(maker="Bench", model="MULTICAL 603", serial=f"BENCH{m:07d}", vendor=vendor)
            for m in range(meters)
            if f"BENCH{m:07d}" not in existing
        ]
    )
    ids = list(HeatMeter.objects.filter(vendor=vendor).values_list("id", flat=True))
    with connection.cursor() as cursor:
        if "bench" in connection.settings_dict["NAME"]:
            # a database of its own: start from empty partitions (no dead tuples, no bloat)
            cursor.execute(
                "TRUNCATE metering_reading, metering_ingestbatchmeter, metering_readingconflict"
            )
        else:
            cursor.execute("DELETE FROM metering_reading WHERE meter_id = ANY(%s)", [ids])
        cursor.execute("DROP TABLE IF EXISTS bench_copy")
    _, key = vendor_key_create(vendor=vendor, label="bench")
    return vendor, key


def copy_text(frame, meter_ids: dict) -> bytes:
    """The rows in COPY text format, as the bare table stores them (prepared untimed)."""
    out = frame.copy()
    out.insert(0, "meter_id", out.pop("meter").map(meter_ids))
    out.insert(2, "energy_kwh", out["energy"])
    out.insert(4, "energy_unit", "kWh")
    out["status"] = "valid"
    out["batch_id"] = 0
    out["received_at"] = "2026-11-27T00:00:00+00:00"
    buffer = io.StringIO()
    out.to_csv(buffer, sep="\t", header=False, index=False)
    return buffer.getvalue().encode()


BARE_TABLE = """
CREATE TABLE bench_copy (
    meter_id bigint NOT NULL, read_at timestamptz NOT NULL, energy_kwh numeric(20, 6) NOT NULL,
    energy_value numeric(20, 6) NOT NULL, energy_unit varchar(3) NOT NULL,
    volume_m3 numeric(16, 4) NOT NULL, flow_temp_c numeric(6, 2), return_temp_c numeric(6, 2),
    power_kw numeric(12, 3), flow_m3h numeric(12, 4), status_code integer,
    flow_temp_m3c numeric(20, 4), return_temp_m3c numeric(20, 4), status varchar(10) NOT NULL,
    batch_id bigint, received_at timestamptz NOT NULL,
    PRIMARY KEY (meter_id, read_at))
"""
COPY_COLUMNS = (
    "meter_id, read_at, energy_kwh, energy_value, energy_unit, volume_m3, flow_temp_c, return_temp_c, "
    "power_kw, flow_m3h, status_code, flow_temp_m3c, return_temp_m3c, status, batch_id, received_at"
)


def bench_copy(data: bytes) -> float:
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute(BARE_TABLE)
    started = time.perf_counter()
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        cursor.copy(f"COPY bench_copy ({COPY_COLUMNS}) FROM STDIN") as copy,
    ):
        copy.write(data)
    elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_copy")
    return elapsed


def bench_file(vendor, frame) -> tuple[float, object]:
    from django.utils import timezone

    from metering.ingest.batches import readings_batch_process, readings_file_submit

    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    content = buffer.getvalue().encode()
    started = time.perf_counter()
    batch, _ = readings_file_submit(
        vendor=vendor, content=content, file_name="bench.csv", received_at=timezone.now()
    )
    batch = readings_batch_process(batch_id=batch.pk, now=timezone.now())
    return time.perf_counter() - started, batch


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(workers: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {
        **os.environ,
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "LOG_LEVEL": "WARNING",
        "HEATUTILITY_VENDOR_THROTTLE": "100000/min",  # measuring throughput, not the limit
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "heatutility.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "300",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)  # noqa: S310
            return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("gunicorn did not start")


def bench_api(url: str, key: str, frame, batch_size: int, concurrency: int) -> tuple[float, dict]:
    import orjson

    records = frame.to_dict("records")
    bodies = [
        orjson.dumps([{**r, "energy_unit": "kWh"} for r in records[i : i + batch_size]])
        for i in range(0, len(records), batch_size)
    ]

    def post(body: bytes) -> dict:
        request = urllib.request.Request(  # noqa: S310
            f"{url}/api/v1/readings/",
            data=body,
            method="POST",
            headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310
            answer = json.loads(response.read())
        status_url = f"{url}{answer['status_url']}"
        while True:  # with a real worker the batch may still be queued
            status = urllib.request.Request(status_url, headers={"Authorization": f"Api-Key {key}"})  # noqa: S310
            with urllib.request.urlopen(status, timeout=60) as response:  # noqa: S310
                state = json.loads(response.read())
            if state["state"] in ("done", "failed"):
                return state
            time.sleep(0.2)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        states = list(pool.map(post, bodies))
    elapsed = time.perf_counter() - started
    totals = {
        k: sum(s[k] for s in states) for k in ("accepted", "duplicate", "conflicting", "rejected")
    }
    totals["failed"] = sum(s["state"] == "failed" for s in states)
    return elapsed, totals


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--api-url", default="", help="running server; default: start gunicorn here"
    )
    parser.add_argument("--api-batch", type=int, default=5000)
    parser.add_argument("--api-concurrency", type=int, default=8)
    parser.add_argument("--server-workers", type=int, default=4)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (its own, e.g. heatutility_bench).")

    vendor, key = setup(args.meters)
    from metering.models import HeatMeter

    meter_ids = dict(HeatMeter.objects.filter(vendor=vendor).values_list("serial", "id"))
    file_frame, _ = generate(args.meters, args.days, dt.datetime(2026, 9, 1, tzinfo=dt.UTC))
    api_frame, _ = generate(
        args.meters,
        args.days,
        dt.datetime(2026, 9, 1, tzinfo=dt.UTC) + dt.timedelta(days=args.days),
        seed=8,
    )
    rows = len(file_frame)
    print(f"rows per path: {rows:,} ({args.meters:,} meters × {args.days} days hourly)")

    copy_seconds = bench_copy(copy_text(file_frame, meter_ids))
    copy_rate = rows / copy_seconds
    print(
        f"plain COPY into bare table: {copy_seconds:6.2f} s  {copy_rate:12,.0f} readings/s  (limit)"
    )

    file_seconds, batch = bench_file(vendor, file_frame)
    if batch.state != "done" or batch.accepted != rows:
        sys.exit(
            f"file path did not store every row: {batch.state} {batch.accepted} {batch.errors[:3]}"
        )
    file_rate = rows / file_seconds
    print(
        f"file path (CSV → readings): {file_seconds:6.2f} s  {file_rate:12,.0f} readings/s  "
        f"{file_rate / copy_rate:6.1%} of COPY"
    )

    server = None
    url = args.api_url
    if not url:
        server, url = start_server(args.server_workers)
    try:
        api_seconds, totals = bench_api(url, key, api_frame, args.api_batch, args.api_concurrency)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    if totals["accepted"] != rows or totals["failed"]:
        sys.exit(f"API path did not store every row: {totals}")
    api_rate = rows / api_seconds
    print(
        f"API path (HTTP, {args.api_batch:,}/request, {args.api_concurrency} in flight): {api_seconds:6.2f} s  "
        f"{api_rate:12,.0f} readings/s  {api_rate / copy_rate:6.1%} of COPY"
    )
    print(
        json.dumps(
            {
                "rows": rows,
                "copy_rows_per_s": round(copy_rate),
                "file_rows_per_s": round(file_rate),
                "api_rows_per_s": round(api_rate),
                "file_ratio": round(file_rate / copy_rate, 3),
                "api_ratio": round(api_rate / copy_rate, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
