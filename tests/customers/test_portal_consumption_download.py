"""The portal's download of a customer's own consumption data (EED access to data):
``/portal/accounts/<number>/consumption.csv``, only of the caller's contract periods."""

import csv
import datetime as dt
import io
from decimal import Decimal
from types import SimpleNamespace

import pytest

from customers.portal.forms import ConsumptionExportForm
from metering.models import BoundaryRegister
from tests.customers.factories import (
    AccountFactory,
    BuildingInterfaceUnitFactory,
    ContractFactory,
    NetworkFactory,
    ServiceConnectionFactory,
)
from tests.metering.factories import MeterInstallationFactory
from tests.metering.factories_readings import add_readings

pytestmark = pytest.mark.django_db

# the first hour of Sunday 26 October 2025 in Copenhagen (CEST, +02:00); that day has
# 25 hours (03:00 CEST becomes 02:00 CET)
T0 = dt.datetime(2025, 10, 25, 22, tzinfo=dt.UTC)
# 00:00 on 14 November 2025 local (CET, +01:00): 457 hours after T0
T1 = dt.datetime(2025, 11, 13, 23, tzinfo=dt.UTC)
HEADER = [
    "connection",
    "meter",
    "local_time",
    "utc_offset",
    "energy_kwh",
    "volume_m3",
    "flow_temp_c",
    "return_temp_c",
    "status",
]
MONTH_HEADER = [
    "connection",
    "month",
    "period_start",
    "period_end",
    "start_energy_kwh",
    "start_volume_m3",
    "start_register",
    "end_energy_kwh",
    "end_volume_m3",
    "end_register",
    "consumption_kwh",
    "consumption_m3",
]


def reading(hour: int, status: str | None = None):
    """The hourly reading ``hour`` hours after T0: 1.5 kWh and 0.02 m³ an hour."""
    return (
        T0 + dt.timedelta(hours=hour),
        Decimal("5000") + Decimal("1.5") * hour,
        Decimal("100") + Decimal("0.02") * hour,
        {"flow_temp_c": Decimal("72.40"), "return_temp_c": Decimal("38.10")},
    )


@pytest.fixture
def moved():
    """One connection, its meter read hourly over 26 October (the DST day) and over 14-15
    November 2025; the old tenant moved out and the new one in on 15 November."""
    network = NetworkFactory(time_zone="Europe/Copenhagen")
    connection = ServiceConnectionFactory(network=network, number="SC-7")
    unit = BuildingInterfaceUnitFactory(connection=connection)
    meter = MeterInstallationFactory(unit=unit, meter__serial="67001234").meter
    old = ContractFactory(
        account=AccountFactory(network=network, number="400001"),
        connection=connection,
        valid_from=dt.date(2024, 1, 1),
        valid_to=dt.date(2025, 11, 15),
    )
    new = ContractFactory(
        account=AccountFactory(network=network, number="400002"),
        connection=connection,
        valid_from=dt.date(2025, 11, 15),
    )
    hours = [*range(0, 26), *range(457, 506)]
    special = {480: "suspect", 482: "estimated", 483: "rejected"}
    add_readings(meter, [reading(h) for h in hours if h not in special])
    for hour, status in special.items():
        add_readings(meter, [reading(hour)], status=status)
    for on, kwh, m3, status in [
        (dt.date(2025, 10, 1), "4000", "90", "actual"),
        (dt.date(2025, 11, 1), "4900.5", "99.5", "actual"),
        (dt.date(2025, 11, 15), "5721.5", "109.62", "estimated"),
        (dt.date(2025, 12, 1), "6500.25", "120", "actual"),
    ]:
        BoundaryRegister.objects.create(
            connection=connection,
            on=on,
            energy_kwh=Decimal(kwh),
            volume_m3=Decimal(m3),
            status=status,
        )
    return SimpleNamespace(old=old, new=new)


@pytest.fixture
def login(client, django_user_model):
    def login_as(account):
        customer = account.customer
        if customer.user is None:
            customer.user = django_user_model.objects.create_user(
                f"portal-{account.number}", password="a-long-test-password-1"
            )
            customer.save()
        client.force_login(customer.user)
        return client

    return login_as


def download(client, number, **params):
    response = client.get(f"/portal/accounts/{number}/consumption.csv", params)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


class TestHours:
    def test_the_new_tenant_sees_from_their_move_in_on(self, moved, login):
        rows = download(
            login(moved.new.account),
            "400002",
            start="2025-11-14",
            end="2025-11-16",
            resolution="hour",
        )

        assert rows[0] == HEADER
        data = rows[1:]
        # 24 hours of 15 November, less the rejected 02:00 reading
        assert len(data) == 23
        assert [",".join(r) for r in data[:3]] == [
            "SC-7,67001234,2025-11-15 00:00:00,+01:00,5721.500000,109.6200,72.40,38.10,valid",
            "SC-7,67001234,2025-11-15 01:00:00,+01:00,5723.000000,109.6400,72.40,38.10,estimated",
            "SC-7,67001234,2025-11-15 03:00:00,+01:00,5726.000000,109.6800,72.40,38.10,valid",
        ]
        # the 16 November 00:00 reading is outside the range (end is not included)
        assert data[-1][2:6] == ["2025-11-15 23:00:00", "+01:00", "5756.000000", "110.0800"]

    def test_the_old_tenant_sees_nothing_after_moving_out(self, moved, login):
        rows = download(
            login(moved.old.account),
            "400001",
            start="2025-11-14",
            end="2025-11-16",
            resolution="hour",
        )

        data = rows[1:]
        assert len(data) == 24
        assert data[0][2:6] == ["2025-11-14 00:00:00", "+01:00", "5685.500000", "109.1400"]
        assert ",".join(data[-1]) == (
            "SC-7,67001234,2025-11-14 23:00:00,+01:00,5720.000000,109.6000,72.40,38.10,suspect"
        )

    def test_the_dst_day_has_25_hours_with_their_offsets(self, moved, login):
        rows = download(
            login(moved.old.account),
            "400001",
            start="2025-10-26",
            end="2025-10-27",
            resolution="hour",
        )

        data = rows[1:]
        assert len(data) == 25
        assert [(r[2][11:16], r[3]) for r in data[:5]] == [
            ("00:00", "+02:00"),
            ("01:00", "+02:00"),
            ("02:00", "+02:00"),
            ("02:00", "+01:00"),
            ("03:00", "+01:00"),
        ]
        assert data[3][4] == "5004.500000"
        assert data[-1][2:5] == ["2025-10-26 23:00:00", "+01:00", "5036.000000"]

    def test_the_new_tenant_sees_no_hour_of_the_previous_occupant(self, moved, login):
        rows = download(
            login(moved.new.account),
            "400002",
            start="2025-10-26",
            end="2025-11-15",
            resolution="hour",
        )

        assert rows == [HEADER]

    def test_across_a_meter_exchange_each_meter_while_installed(self, login):
        contract = ContractFactory(connection__number="SC-9", valid_from=dt.date(2025, 1, 1))
        unit = BuildingInterfaceUnitFactory(connection=contract.connection)
        exchange = dt.datetime(2025, 10, 26, 12, tzinfo=dt.UTC)  # 13:00 local (+01:00)
        old = MeterInstallationFactory(
            unit=unit,
            meter__serial="OLD-1",
            removed_at=exchange,
            final_energy_kwh=Decimal("801"),
            final_volume_m3=Decimal("8"),
        )
        new = MeterInstallationFactory(unit=unit, meter__serial="NEW-2", installed_at=exchange)
        hour = dt.timedelta(hours=1)
        # the old meter went on reporting after its removal: not this connection's data
        add_readings(
            old.meter,
            [(exchange - hour, "800", "8"), (exchange, "801", "8"), (exchange + hour, "802", "8")],
        )
        add_readings(new.meter, [(exchange, "0", "0"), (exchange + hour, "2", "0.5")])

        rows = download(
            login(contract.account),
            contract.account.number,
            start="2025-10-26",
            end="2025-10-27",
            resolution="hour",
        )

        assert [",".join(r[1:5]) for r in rows[1:]] == [
            "OLD-1,2025-10-26 12:00:00,+01:00,800.000000",
            "OLD-1,2025-10-26 13:00:00,+01:00,801.000000",
            "NEW-2,2025-10-26 13:00:00,+01:00,0.000000",
            "NEW-2,2025-10-26 14:00:00,+01:00,2.000000",
        ]


class TestDays:
    def test_a_row_at_each_local_midnight(self, moved, login):
        old_rows = download(
            login(moved.old.account),
            "400001",
            start="2025-10-26",
            end="2025-10-28",
            resolution="day",
        )
        new_rows = download(
            login(moved.new.account),
            "400002",
            start="2025-11-14",
            end="2025-11-17",
            resolution="day",
        )

        assert [r[2:6] for r in old_rows[1:]] == [
            ["2025-10-26 00:00:00", "+02:00", "5000.000000", "100.0000"],
            ["2025-10-27 00:00:00", "+01:00", "5037.500000", "100.5000"],
        ]
        assert [r[2:6] for r in new_rows[1:]] == [
            ["2025-11-15 00:00:00", "+01:00", "5721.500000", "109.6200"],
            ["2025-11-16 00:00:00", "+01:00", "5757.500000", "110.1000"],
        ]


class TestMonths:
    def test_each_tenant_gets_the_registers_of_their_own_days(self, moved, login):
        old_rows = download(
            login(moved.old.account), "400001", start="2025-10-01", end="2025-12-01"
        )
        new_rows = download(
            login(moved.new.account), "400002", start="2025-10-01", end="2025-12-01"
        )

        assert old_rows[0] == new_rows[0] == MONTH_HEADER
        assert [",".join(r) for r in old_rows[1:]] == [
            "SC-7,2025-10,2025-10-01,2025-11-01,"
            "4000.000000,90.0000,actual,4900.500000,99.5000,actual,900.500000,9.5000",
            "SC-7,2025-11,2025-11-01,2025-11-15,"
            "4900.500000,99.5000,actual,5721.500000,109.6200,estimated,821.000000,10.1200",
        ]
        assert [",".join(r) for r in new_rows[1:]] == [
            "SC-7,2025-11,2025-11-15,2025-12-01,"
            "5721.500000,109.6200,estimated,6500.250000,120.0000,actual,778.750000,10.3800",
        ]

    def test_a_missing_register_leaves_the_figures_empty(self, moved, login):
        rows = download(login(moved.old.account), "400001", start="2025-09-01", end="2025-10-01")

        assert ",".join(rows[1]) == (
            "SC-7,2025-09,2025-09-01,2025-10-01,,,,4000.000000,90.0000,actual,,"
        )

    def test_defaults_are_the_last_twelve_complete_months_by_month(self):
        form = ConsumptionExportForm({}, today=dt.date(2025, 12, 10))

        assert form.is_valid()
        assert form.cleaned_data == {
            "start": dt.date(2024, 12, 1),
            "end": dt.date(2025, 12, 1),
            "resolution": "month",
        }


class TestPrivacy:
    def test_another_customers_account_is_not_found(self, moved, login):
        client = login(moved.new.account)

        response = client.get("/portal/accounts/400001/consumption.csv", {"resolution": "hour"})

        assert response.status_code == 404

    def test_a_customer_with_two_accounts_sees_each_under_its_own(self, moved, login):
        second = ContractFactory(
            account=AccountFactory(
                customer=moved.old.account.customer, network=moved.old.account.network
            ),
            connection__number="SC-8",
            valid_from=dt.date(2025, 1, 1),
        )
        meter = MeterInstallationFactory(
            unit=BuildingInterfaceUnitFactory(connection=second.connection)
        ).meter
        add_readings(meter, [(T0, "1", "1")])
        client = login(moved.old.account)

        first_rows = download(
            client, "400001", start="2025-10-26", end="2025-10-27", resolution="hour"
        )
        second_rows = download(
            client, second.account.number, start="2025-10-26", end="2025-10-27", resolution="hour"
        )

        assert {r[0] for r in first_rows[1:]} == {"SC-7"}
        assert [r[:5] for r in second_rows[1:]] == [
            ["SC-8", meter.serial, "2025-10-26 00:00:00", "+02:00", "1.000000"]
        ]

    def test_anonymous_visitors_are_sent_to_log_in(self, moved, client):
        response = client.get("/portal/accounts/400001/consumption.csv")

        assert response.status_code == 302
        assert response["Location"].startswith("/portal/login/")

    def test_staff_without_a_customer_find_no_account(self, moved, client, django_user_model):
        staff = django_user_model.objects.create_superuser(
            "root", "r@example.org", "a-long-test-password-1"
        )
        client.force_login(staff)

        response = client.get("/portal/accounts/400001/consumption.csv")

        assert response.status_code == 404


class TestBadRequests:
    @pytest.mark.parametrize(
        ("params", "says"),
        [
            ({"start": "2025-13-01"}, "start"),
            ({"end": "1.11.2025"}, "end"),
            ({"resolution": "week"}, "resolution"),
            ({"start": "2025-11-01", "end": "2025-11-01"}, "end"),
            ({"start": "1800-01-01", "end": "1800-02-01"}, "start"),
            ({"start": "2024-01-01", "end": "2025-01-02", "resolution": "hour"}, "366 days"),
            ({"start": "2024-01-01", "end": "2025-02-05", "resolution": "day"}, "400 days"),
        ],
    )
    def test_refused_with_the_reason(self, moved, login, params, says):
        response = login(moved.old.account).get("/portal/accounts/400001/consumption.csv", params)

        assert response.status_code == 400
        assert says in response.content.decode()

    def test_a_year_of_hours_is_allowed(self, moved, login):
        rows = download(
            login(moved.old.account),
            "400001",
            start="2024-11-01",
            end="2025-11-01",
            resolution="hour",
        )

        assert len(rows) == 1 + 26  # the 26 readings of 26 October and 27 October 00:00


class TestAccountPage:
    def test_links_the_three_resolutions(self, moved, login):
        page = login(moved.old.account).get("/portal/accounts/400001/").content.decode()

        for resolution in ("month", "day", "hour"):
            assert f"/portal/accounts/400001/consumption.csv?resolution={resolution}" in page
