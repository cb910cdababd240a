"""Demo step 1: a small heat network with its customers, buildings, connections and meters.

Everything goes through the same services staff use (move-in, meter installation), so
the demo exercises the real rules.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from django.db import transaction

from customers import models, services
from heatutility.timeutil import local_midnight
from metering.installations import meter_install
from metering.models import HeatMeter

STREETS = ["Amager Strandvej", "Sundholmsvej", "Islands Brygge", "Njalsgade", "Ørestads Boulevard"]


def _network_code() -> tuple[str, int]:
    """``demo``, or ``demo-2``, ``demo-3`` … when the demo runs again on the same database."""
    code, n = "demo", 1
    while models.Network.objects.filter(code=code).exists():
        n += 1
        code = f"demo-{n}"
    return code, n


@transaction.atomic
def run(ctx) -> list[str]:
    rng = random.Random(ctx.seed)
    code, n = _network_code()
    first_account = 700_000 + (n - 1) * 100_000  # 700001…, then 800001… (numbers are unique)
    network = models.Network.objects.create(
        code=code,
        name=f"Amager Havvarme ({code})",
        time_zone="Europe/Copenhagen",
        currency="DKK",
        price_area="DK2",
        design_supply_temp_c=Decimal("75.0"),
        design_return_temp_c=Decimal("40.0"),
        normal_degree_days=Decimal("2906"),  # DMI's normal year for Denmark
    )
    ctx.network = network
    supply_from = dt.date(ctx.as_of.year - 2, 1, 1)
    installed_at = local_midnight(supply_from, network.time_zone)
    account_ids, connection_ids, meter_ids = [], [], []
    houses = flats = 0
    for i in range(ctx.size):
        multi = i % 5 == 4  # every fifth connection is a multi-dwelling building
        area = (
            Decimal(rng.randint(900, 4000))
            if multi
            else Decimal(rng.choice([95, 110, 130, 145, 170]))
        )
        building = models.Building.objects.create(
            street=f"{STREETS[i % len(STREETS)]} {i + 1}",
            postal_code="2300",
            city="København S",
            heated_area_m2=area,
            dwellings=max(1, int(area // 75)) if multi else 1,
            use=models.Building.Use.MULTI_DWELLING if multi else models.Building.Use.HOUSE,
            year_built=rng.randint(1930, 2015),
        )
        flats += multi
        houses += not multi
        # Contracted capacity ≈ 60 W/m² for older stock, at least 8 kW.
        capacity = max(Decimal("8"), (area * Decimal("0.06")).quantize(Decimal("1")))
        connection = models.ServiceConnection.objects.create(
            number=f"{code.upper()}-{i + 1:05d}",
            building=building,
            network=network,
            contracted_capacity_kw=capacity,
            connected_on=supply_from,
        )
        unit = models.BuildingInterfaceUnit.objects.create(
            connection=connection,
            maker="Danfoss",
            model="Termix VVX-I" if not multi else "Termix BTD",
            serial=f"{code.upper()}-BIU-{i + 1:05d}",
            installed_on=supply_from,
        )
        meter = HeatMeter.objects.create(
            maker="Kamstrup",
            model="MULTICAL 603",
            serial=f"{code.upper()}-{68000000 + i}",
            register_unit="kWh" if not multi else "MWh",
            resolution=Decimal("1") if not multi else Decimal("0.001"),
            register_max=Decimal("99999999") if not multi else Decimal("99999.999"),
            verification_due_on=dt.date(ctx.as_of.year + 4, 6, 30),
        )
        meter_install(
            meter=meter, unit=unit, installed_at=installed_at, reason="demo network build-out"
        )
        kind = models.Customer.Kind.ORGANISATION if multi else models.Customer.Kind.PERSON
        customer = models.Customer.objects.create(
            kind=kind,
            name=f"Boligforeningen {building.street}" if multi else f"Demo Customer {i + 1}",
            organisation_number=f"DK{30000000 + i}" if multi else "",
            email=f"customer{i + 1}@{code}.example.org",
        )
        account = models.Account.objects.create(
            number=f"{first_account + i + 1}",
            customer=customer,
            network=network,
            billing_street=building.street,
            billing_postal_code=building.postal_code,
            billing_city=building.city,
        )
        services.contract_move_in(account=account, connection=connection, move_in_on=supply_from)
        account_ids.append(account.pk)
        connection_ids.append(connection.pk)
        meter_ids.append(meter.pk)

    ctx.data.update(connections=connection_ids, accounts=account_ids, meters=meter_ids)
    return [
        f"network {network.name}: {ctx.size} connections ({houses} houses, {flats} multi-dwelling), "
        f"time zone {network.time_zone}, currency {network.currency}, price area {network.price_area}",
        f"{len(account_ids)} accounts with contracts from {supply_from.isoformat()}, "
        f"{len(meter_ids)} Kamstrup meters installed",
    ]
