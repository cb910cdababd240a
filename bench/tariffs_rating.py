"""Rating throughput: ``tariffs.rating.rate`` per bill line set, for billing runs.

    .venv/bin/python bench/tariffs_rating.py [--n 20000]

Prices a month of determinants under every published tariff of ``tariffs/published.py``
and prints microseconds per ``rate`` call and bills per second on one core.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heatutility.settings")

import django

django.setup()

from tariffs.published import PUBLISHED_TARIFFS  # noqa: E402
from tariffs.rating import Determinants, TariffSpec, components_from_data, rate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    det = Determinants(
        period_start=dt.date(2026, 1, 1),
        period_end=dt.date(2026, 2, 1),
        energy_mwh=Decimal("2.345"),
        volume_m3=Decimal("70.1"),
        return_temp_c=Decimal("38.2"),
        flow_temp_c=Decimal("71.0"),
        contracted_kw=Decimal("12"),
        heated_area_m2=Decimal("130"),
        annual_energy_mwh=Decimal("18.1"),
    )
    for key, entry in PUBLISHED_TARIFFS.items():
        spec = TariffSpec(
            version_id=1,
            tariff_code=key,
            currency=entry["currency"],
            vat_rate=Decimal(entry["vat_rate"]),
            components=components_from_data(entry["components"]),
            prices_include_vat=entry["prices_include_vat"],
        )
        started = time.perf_counter()
        for _ in range(args.n):
            rate(determinants=det, tariff=spec)
        per = (time.perf_counter() - started) / args.n
        print(f"{key:20s} {per * 1e6:7.1f} µs/rate  {1 / per:9.0f} bills/s")


if __name__ == "__main__":
    main()
