"""The month start between an installation and its meter's first read is stored.

VEE creates the month starts between a meter's own reads after each batch.  The first
batch of a newly installed meter has no read of its own before it: its refresh reaches
back to the installation and, after an exchange, to the old meter's last read, so the
month start between them (old last read 23 June, exchange 28 June, new first read
7 July → 1 July) is interpolated across the exchange, as estimation does, instead of
never being stored (the portal's months, exports and last year's comparison read it).
"""

import datetime as dt
from decimal import Decimal
from unittest.mock import patch

import pytest
from django.test import TestCase

from customers.selectors import monthly_consumption
from heatutility.timeutil import local_midnight
from metering.installations import meter_exchange
from metering.models import BoundaryRegister, MeterInstallation, Reading
from metering.services import vee_run_pending
from tests.customers.factories import ContractFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import MeterVendorFactory, deliver_json

pytestmark = pytest.mark.django_db
CPH = "Europe/Copenhagen"
D = dt.date


def at(day, hour=0):
    return local_midnight(day, CPH) + dt.timedelta(hours=hour)


def deliver(vendor, meter, rows, *, received_at):
    """A vendor's REST delivery, processed as the worker would, then the nightly VEE."""
    deliver_json(vendor, meter, rows, received_at=received_at)
    vee_run_pending(now=received_at + dt.timedelta(hours=2))


def register(connection, day):
    b = BoundaryRegister.objects.filter(connection=connection, on=day).first()
    return None if b is None else (b.energy_kwh, b.volume_m3, b.status, b.method)


def test_the_month_start_between_an_exchange_and_the_new_meters_first_read_is_stored(
    client, django_user_model, django_assert_num_queries
):
    vendor = MeterVendorFactory()
    old = MeterInstallationFactory(
        meter__vendor=vendor,
        installed_at=at(D(2026, 5, 5), 12),
        initial_energy_kwh=Decimal("9300"),
        initial_volume_m3=Decimal("93"),
    )
    conn = old.unit.connection
    contract = ContractFactory(connection=conn, valid_from=D(2026, 5, 1))
    # every 14 days, 100 kWh a day, each delivered and validated on its own
    for day, kwh in ((D(2026, 5, 12), 10000), (D(2026, 5, 26), 11400),
                     (D(2026, 6, 9), 12800), (D(2026, 6, 23), 14200)):  # fmt: skip
        deliver(vendor, old.meter, [(at(day), str(kwh), str(kwh / 100))], received_at=at(day, 3))
    assert register(conn, D(2026, 6, 1)) == (
        Decimal("2700.000000"),  # 12,000 − the initial 9,300
        Decimal("27.0000"),
        "estimated",
        "interpolation",
    )

    new = HeatMeterFactory(vendor=vendor)
    with TestCase.captureOnCommitCallbacks(execute=True):  # its revalidations run
        meter_exchange(
            unit=old.unit,
            new_meter=new,
            exchanged_at=at(D(2026, 6, 28), 12),
            old_final_energy_kwh=Decimal("14750"),
            old_final_volume_m3=Decimal("147.5"),
            new_initial_energy_kwh=Decimal("250"),
            new_initial_volume_m3=Decimal("2.5"),
            now=at(D(2026, 6, 28), 13),
        )
    # the new meter's first batch: its first read lies after 1 July
    deliver(
        vendor,
        new,
        [(at(D(2026, 7, 7), 6), "1234", "12.34"), (at(D(2026, 7, 21), 6), "2914", "29.14")],
        received_at=at(D(2026, 7, 22)),
    )

    assert set(Reading.objects.filter(meter=new).values_list("status", flat=True)) == {"valid"}
    # the connection register is continuous: the old meter's 14,750 − 9,300 = 5,450 kWh
    # at the exchange (28 June 12:00), the new meter's 1,234 − 250 = 984 kWh more at
    # 7 July 06:00 (210 h later); 1 July 00:00 lies 60 h after the exchange
    energy, volume, status, method = register(conn, D(2026, 7, 1))
    assert (status, method) == ("estimated", "interpolation")
    assert energy.quantize(Decimal("0.001")) == Decimal("5731.143")  # 5,450 + 984 × 60/210
    assert energy == Decimal("5731.142857")
    assert volume == Decimal("57.3114")  # 147.5 − 93 + (12.34 − 2.5) × 60/210

    # the portal's consumption by month shows June (1 June → 1 July) once 1 August is in
    deliver(vendor, new, [(at(D(2026, 8, 4), 6), "4594", "45.94")], received_at=at(D(2026, 8, 5)))
    months = {
        m.month: m
        for m in monthly_consumption(account=contract.account, months=3, today=D(2026, 8, 20))
    }
    assert months[D(2026, 6, 1)].energy_mwh == Decimal("3.031142857")  # 5,731.142857 − 2,700
    assert months[D(2026, 6, 1)].estimated is True
    # 1 August 00:00: 258 h into the 336 h from 21 July 06:00, 2,914 + 1,680 × 258/336
    # = 4,204 on the new meter, 5,450 + 4,204 − 250 = 9,404 kWh on the connection
    assert months[D(2026, 7, 1)].energy_mwh == Decimal("3.672857143")  # 9,404 − 5,731.142857
    # as the customer sees it on the portal's account page
    user = django_user_model.objects.create_user("portal-exchange", password="a-long-pass-1")
    contract.account.customer.user = user
    contract.account.customer.save()
    client.force_login(user)
    with patch("django.utils.timezone.localdate", return_value=D(2026, 8, 20)):
        page = client.get(f"/portal/accounts/{contract.account.number}/")
    shown = {m.month: m.energy_mwh for m, _ in page.context["consumption"]}
    assert shown[D(2026, 6, 1)] == Decimal("3.031142857")
    assert shown[D(2026, 7, 1)] == Decimal("3.672857143")

    # a later batch has a read of its installation before it: it reaches back no
    # further, and finding that out costs no query
    from metering.vee.services import _first_reads_reach

    installs = list(MeterInstallation.objects.filter(meter=new).select_related("unit__connection"))
    with django_assert_num_queries(0):
        assert (
            _first_reads_reach(
                installs=installs,
                before=at(D(2026, 7, 7), 6),
                start=at(D(2026, 7, 21), 6),
                end=at(D(2026, 8, 4), 6),
                now=at(D(2026, 8, 5), 2),
            )
            == {}
        )


def test_the_month_start_between_a_first_installation_and_its_first_read_is_stored():
    vendor = MeterVendorFactory()
    inst = MeterInstallationFactory(
        meter__vendor=vendor,
        installed_at=at(D(2026, 6, 28), 12),
        initial_energy_kwh=Decimal("250"),
        initial_volume_m3=Decimal("2.5"),
    )
    conn = inst.unit.connection

    deliver(
        vendor,
        inst.meter,
        [(at(D(2026, 7, 7), 6), "1234", "12.34"), (at(D(2026, 7, 21), 6), "2914", "29.14")],
        received_at=at(D(2026, 7, 22)),
    )

    # 984 kWh over the 210 h from the installation to the first read, 60 h of them
    # before 1 July
    assert register(conn, D(2026, 7, 1)) == (
        Decimal("281.142857"),
        Decimal("2.8114"),
        "estimated",
        "interpolation",
    )
