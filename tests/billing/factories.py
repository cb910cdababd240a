"""Billing test arrangement: a network with accounts, connections, registers and a tariff.

Boundary registers and approved tariff versions are created directly as rows: that is
test arrangement (metering and tariffs own the services that make them in production).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from metering.models import BoundaryRegister
from tariffs.models import Tariff, TariffVersion
from tests.customers.factories import (
    AccountFactory,
    ContractFactory,
    NetworkFactory,
    ServiceConnectionFactory,
)

ENERGY_PRICE = Decimal("592.52")
COMPONENTS = [
    {"type": "fixed", "code": "subscription", "description": "Subscription", "amount": "1200.00"},
    {
        "type": "banded",
        "code": "capacity",
        "description": "Capacity charge",
        "basis": "capacity",
        "unit": "kW",
        "bands": [{"upto": None, "unit_price": "120.00"}],
    },
    {"type": "energy", "code": "energy", "description": "Energy charge", "price": "592.52"},
]


def tariff_version(
    *,
    network,
    valid_from=dt.date(2020, 1, 1),
    valid_to=None,
    components=None,
    number=None,
    tariff=None,
    vat_rate=Decimal("0.25"),
):
    tariff = (
        tariff
        or Tariff.objects.get_or_create(
            network=network, code="std", defaults={"name": "Standard", "is_default": True}
        )[0]
    )
    return TariffVersion.objects.create(
        tariff=tariff,
        number=number or (tariff.versions.count() + 1),
        valid_from=valid_from,
        valid_to=valid_to,
        status=TariffVersion.Status.APPROVED,
        approved_at=timezone.now(),
        vat_rate=vat_rate,
        components=components or COMPONENTS,
    )


def register(connection, on, energy_kwh, *, volume=None, status="actual", ret=None):
    energy_kwh = Decimal(str(energy_kwh))
    volume = (
        Decimal(str(volume))
        if volume is not None
        else (energy_kwh / 40).quantize(Decimal("0.0001"))
    )
    return BoundaryRegister.objects.update_or_create(
        connection=connection,
        on=on,
        defaults={
            "energy_kwh": energy_kwh,
            "volume_m3": volume,
            "return_temp_m3c": None if ret is None else Decimal(str(ret)),
            "status": status,
            "method": "reading" if status == "actual" else "interpolation",
        },
    )[0]


def contract_with_connection(
    *, network, account=None, valid_from=dt.date(2024, 1, 1), valid_to=None, kw="10.00"
):
    account = account or AccountFactory(network=network)
    connection = ServiceConnectionFactory(network=network, contracted_capacity_kw=Decimal(kw))
    return ContractFactory(
        account=account, connection=connection, valid_from=valid_from, valid_to=valid_to
    )


def billed_network(*, accounts=3, monthly_kwh=1500, start=dt.date(2025, 1, 1), months=24):
    """A network whose accounts each have one connection with monthly registers."""
    network = NetworkFactory()
    tariff_version(network=network)
    contracts = []
    for n in range(accounts):
        contract = contract_with_connection(network=network)
        value = Decimal(10000 * (n + 1))
        day = start
        for _ in range(months + 1):
            register(contract.connection, day, value)
            value += Decimal(monthly_kwh)
            day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        contracts.append(contract)
    return network, contracts
