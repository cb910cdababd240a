"""Admin search benchmark: the staff lists' ``?q=`` and autocomplete at N accounts.

    createdb -h 127.0.0.1 -U postgres heatutility_bench_s
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/heatutility_bench_s \\
        .venv/bin/python bench/admin_search.py            # 100,000 accounts
    ... bench/admin_search.py --accounts 20000 --keep-data

Builds N customers, accounts, buildings, connections, contracts, interface units, meters
and installations (set-based SQL; 15 first names × 20 surnames, 10 streets × 300 house
numbers, 8 cities: a common street or name matches up to 10 % of the network), then
requests each list and autocomplete with the Django test client as a superuser for an
account number, its prefix, a meter serial, a name, a first + last name and a street +
house number, and prints the best of three requests (whole request, milliseconds, and
the rows found).  Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TERMS = {
    "number": "00012345",
    "prefix": "000123",
    "serial": "67012345",
    "name": "Kjærgaard",
    "name2": "Mette Hansen",
    "address": "Jagtvej 17",
}
PAGES = {
    "account": "/admin/customers/account/",
    "connection": "/admin/customers/serviceconnection/",
    "contract": "/admin/customers/contract/",
    "customer": "/admin/customers/customer/",
    "building": "/admin/customers/building/",
    "installation": "/admin/metering/meterinstallation/",
    "meter": "/admin/metering/heatmeter/",
    "ac-account": "/admin/autocomplete/?app_label=customers&model_name=contract&field_name=account",
    "ac-connection": "/admin/autocomplete/?app_label=customers&model_name=contract"
    "&field_name=connection",
}
STREETS = (
    "ARRAY['Vesterbrogade','Nørrebrogade','Amagerbrogade','Strandvejen','Jagtvej',"
    "'Østerbrogade','Frederiksberg Allé','Gammel Kongevej','Roskildevej','Hillerødgade']"
)
CITIES = (
    "ARRAY['København','Frederiksberg','Hvidovre','Valby','Brønshøj','Herlev','Rødovre','Glostrup']"
)
FIRST = (
    "ARRAY['Anna','Mette','Lars','Jens','Peter','Kirsten','Hanne','Søren','Niels','Camilla',"
    "'Mikkel','Ida','Rasmus','Freja','Oliver']"
)
LAST = (
    "ARRAY['Jensen','Nielsen','Hansen','Pedersen','Andersen','Christensen','Larsen',"
    "'Sørensen','Rasmussen','Jørgensen','Petersen','Madsen','Kristensen','Olsen','Thomsen',"
    "'Christiansen','Poulsen','Johansen','Møller','Mortensen']"
)
BUILD = [
    f"""INSERT INTO customers_customer (id, kind, name, organisation_number, email, phone,
        created_at)
    SELECT g, 'person', ({FIRST})[1 + g %% 15] || ' ' || ({LAST})[1 + (g / 15) %% 20]
        || CASE WHEN g %% 97 = 0 THEN ' Kjærgaard' ELSE '' END,
        '', 'kunde' || g || '@example.dk', '', now() FROM generate_series(1, %(n)s) g""",
    f"""INSERT INTO customers_account (id, number, status, billing_name, billing_street,
        billing_postal_code, billing_city, billing_country, payment_terms_days, created_at,
        customer_id, network_id)
    SELECT g, lpad(g::text, 8, '0'), 'active', '', ({STREETS})[1 + g %% 10] || ' ' || (g %% 300 + 1),
        (2000 + g %% 900)::text, ({CITIES})[1 + g %% 8], 'DK', 14, now(), g, %(network)s
    FROM generate_series(1, %(n)s) g""",
    f"""INSERT INTO customers_building (id, street, postal_code, city, country, register_id,
        heated_area_m2, dwellings, use, year_built)
    SELECT g, ({STREETS})[1 + g %% 10] || ' ' || (g %% 300 + 1), (2000 + g %% 900)::text,
        ({CITIES})[1 + g %% 8], 'DK', 'BBR-' || lpad(g::text, 7, '0'), 80 + g %% 120, 1, 'house',
        1970
    FROM generate_series(1, %(n)s) g""",
    """INSERT INTO customers_serviceconnection (id, number, contracted_capacity_kw, status,
        connected_on, disconnected_on, building_id, network_id)
    SELECT g, 'PD' || lpad(g::text, 7, '0'), 8 + g %% 10, 'active', '2020-01-01', NULL, g,
        %(network)s FROM generate_series(1, %(n)s) g""",
    """INSERT INTO customers_contract (id, valid_from, valid_to, created_at, account_id,
        connection_id)
    SELECT g, '2020-01-01', NULL, now(), g, g FROM generate_series(1, %(n)s) g""",
    """INSERT INTO customers_buildinginterfaceunit (id, maker, model, serial, kind,
        domestic_hot_water, installed_on, removed_on, design_supply_temp_c,
        design_return_temp_c, connection_id)
    SELECT g, (ARRAY['Danfoss','Gemina','Redan'])[1 + g %% 3], 'Termix',
        'U' || lpad(g::text, 8, '0'), 'indirect', true, '2019-06-01', NULL, 70, 35, g
    FROM generate_series(1, %(n)s) g""",
    """INSERT INTO metering_heatmeter (id, maker, model, serial, register_unit, resolution,
        register_max, accuracy_class, flow_sensor_position, nominal_flow_m3h,
        verification_due_on, created_at, vendor_id, volume_register_max, volume_resolution)
    SELECT g, 'Kamstrup', 'MULTICAL 603', (67000000 + g)::text, 'kWh', 1, 99999999, 2,
        'return', 1.5, NULL, now(), NULL, 99999999, 0.01 FROM generate_series(1, %(n)s) g""",
    """INSERT INTO metering_meterinstallation (id, installed_at, removed_at,
        initial_energy_kwh, initial_volume_m3, reason, meter_id, unit_id)
    SELECT g, '2020-01-01T00:00Z', NULL, 0, 0, 'new', g, g FROM generate_series(1, %(n)s) g""",
]
TABLES = [
    "metering_meterinstallation",
    "metering_heatmeter",
    "customers_buildinginterfaceunit",
    "customers_contract",
    "customers_serviceconnection",
    "customers_building",
    "customers_account",
    "customers_customer",
]


def build_data(n: int) -> None:
    from django.db import connection

    from customers.models import Network

    with connection.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        network, _ = Network.objects.get_or_create(
            code="bench-search",
            defaults={"name": "Search bench", "currency": "DKK", "price_area": "DK2"},
        )
        for sql in BUILD:
            cur.execute(sql, {"n": n, "network": network.pk})
        for table in TABLES:
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", [n])
        # VACUUM: the rows inserted after the GIN indexes wait in their pending lists
        # (read in full by every search) until a vacuum; ANALYZE alone keeps them there
        cur.execute("VACUUM ANALYZE")


def time_searches(only: list[str]) -> dict:
    import logging

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()  # response.context
    logging.disable(logging.WARNING)
    user, _ = get_user_model().objects.get_or_create(
        username="bench-search", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    results = {}
    for label, url in PAGES.items():
        if only and label not in only:
            continue
        autocomplete = "autocomplete" in url
        row = {}
        for name, term in TERMS.items():
            path, _, query = url.partition("?")
            params = {**dict(parse_qsl(query)), ("term" if autocomplete else "q"): term}
            best = None
            for _ in range(3):
                t = time.perf_counter()
                response = client.get(path, params)
                elapsed = time.perf_counter() - t
                best = elapsed if best is None else min(best, elapsed)
            assert response.status_code == 200, (url, term, response.status_code)
            rows = (
                len(response.json()["results"])
                if autocomplete
                else response.context["cl"].result_count
            )
            row[name] = {"ms": round(best * 1000), "rows": rows}
        results[label] = row
        cells = " ".join(f"{k}={v['ms']}ms({v['rows']})" for k, v in row.items())
        print(f"{label:14s} {cells}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--keep-data", action="store_true", help="time the data already built")
    parser.add_argument("--only", nargs="*", default=[], choices=list(PAGES))
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heatutility.settings")
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/heatutility_bench_s")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if not args.keep_data:
        t = time.perf_counter()
        build_data(args.accounts)
        print(f"data: {args.accounts} accounts in {time.perf_counter() - t:.1f} s")
    load = os.getloadavg()[0]
    results = time_searches(args.only)
    print(json.dumps({"accounts": args.accounts, "load": round(load, 2), "results": results}))


if __name__ == "__main__":
    main()
