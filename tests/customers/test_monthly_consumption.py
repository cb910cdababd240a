import datetime as dt
from decimal import Decimal

import pytest

from customers.models import Contract
from customers.selectors import monthly_consumption
from tests.billing.factories import register
from tests.customers.factories import AccountFactory, ContractFactory, ServiceConnectionFactory

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 11, 27)
SEP, OCT, NOV = dt.date(2026, 9, 1), dt.date(2026, 10, 1), dt.date(2026, 11, 1)
MID_OCT = dt.date(2026, 10, 15)


def by_month(account, months=3, today=TODAY):
    return {m.month: m for m in monthly_consumption(account=account, months=months, today=today)}


def renew(contract, on):
    """End ``contract`` the day before ``on`` and continue it on the same connection."""
    Contract.objects.filter(pk=contract.pk).update(valid_to=on)
    return ContractFactory(account=contract.account, connection=contract.connection, valid_from=on)


class TestMonthlyConsumptionOfOneConnection:
    def test_a_contract_renewed_mid_month_keeps_the_month(self):
        contract = ContractFactory(valid_from=dt.date(2025, 1, 1))
        renew(contract, MID_OCT)
        for on, kwh, m3 in ((SEP, "0", "0"), (OCT, "400", "10"), (MID_OCT, "600", "15"),
                            (NOV, "900", "22.5")):  # fmt: skip
            register(contract.connection, on, kwh, volume=m3)

        months = by_month(contract.account)

        october = months[OCT]
        assert october.energy_mwh == Decimal("0.5")  # 900 − 400 kWh, every day supplied
        assert october.volume_m3 == Decimal("12.5")
        assert october.partial is False
        assert months[SEP].energy_mwh == Decimal("0.4")

    def test_last_year_counts_a_month_renewed_mid_month(self):
        contract = ContractFactory(valid_from=dt.date(2024, 1, 1))
        renew(contract, dt.date(2025, 10, 15))
        for on, kwh in ((dt.date(2025, 10, 1), "1000"), (dt.date(2025, 11, 1), "1650"),
                        (OCT, "5000"), (NOV, "5700")):  # fmt: skip
            register(contract.connection, on, kwh)

        october = by_month(contract.account)[OCT]

        assert october.energy_mwh == Decimal("0.7")
        assert october.same_month_last_year_mwh == Decimal("0.65")


class TestMonthlyConsumptionOfSeveralConnections:
    def _two_connections(self, *, second_from=dt.date(2025, 1, 1), second_to=None):
        first = ContractFactory(valid_from=dt.date(2025, 1, 1))
        second = ContractFactory(
            account=first.account,
            connection=ServiceConnectionFactory(network=first.account.network),
            valid_from=second_from,
            valid_to=second_to,
        )
        for on, kwh in ((SEP, "0"), (OCT, "1000"), (NOV, "2000")):
            register(first.connection, on, kwh)
        return first, second

    def test_a_connection_added_mid_month_leaves_the_month_without_a_figure(
        self, django_assert_num_queries
    ):
        first, second = self._two_connections(second_from=MID_OCT)
        for on, kwh in ((OCT, "0"), (MID_OCT, "300"), (NOV, "800"), (dt.date(2026, 12, 1), "1900")):
            register(second.connection, on, kwh)

        with django_assert_num_queries(2):  # contracts, registers: not per month or connection
            months = by_month(first.account)

        october = months[OCT]
        assert (october.energy_mwh, october.volume_m3) == (None, None)
        assert october.partial is True
        assert months[SEP].energy_mwh == Decimal("1")  # only the first connection was held
        assert months[SEP].partial is False

    def test_a_connection_given_up_mid_month_leaves_the_month_without_a_figure(self):
        first, second = self._two_connections(second_to=MID_OCT)
        ContractFactory(connection=second.connection, valid_from=MID_OCT)  # the next occupant
        for on, kwh in ((SEP, "0"), (OCT, "2000"), (NOV, "3000")):
            register(second.connection, on, kwh)

        months = by_month(first.account)

        assert months[OCT].energy_mwh is None
        assert months[OCT].partial is True
        assert months[SEP].energy_mwh == Decimal("3")  # 1 + 2 MWh, both held all month

    def test_a_missing_register_on_one_connection_leaves_the_month_without_a_figure(self):
        first, second = self._two_connections()
        register(second.connection, SEP, "0")
        register(second.connection, OCT, "250")  # its 1 November value not there (yet)

        months = by_month(first.account)

        assert months[OCT].energy_mwh is None
        assert months[OCT].partial is False
        assert months[SEP].energy_mwh == Decimal("1.25")


class TestPortalConsumptionTable:
    def test_a_month_supplied_in_part_is_marked_not_shown_as_the_whole(
        self, client, django_user_model
    ):
        from django.utils import timezone

        from heatutility.timeutil import add_months

        # the portal shows the 13 whole months before today: take the one before last
        month = add_months(timezone.localdate().replace(day=1), -2)
        after = add_months(month, 1)
        account = AccountFactory(number="700001")
        first = ContractFactory(account=account, valid_from=add_months(month, -1))
        second = ContractFactory(account=account, valid_from=month + dt.timedelta(days=14))
        register(first.connection, month, "1000")
        register(first.connection, after, "2000")
        register(second.connection, month, "0")
        register(second.connection, after, "500")
        user = django_user_model.objects.create_user("portal-700001", password="a-long-pw-123")
        account.customer.user = user
        account.customer.save()
        client.force_login(user)

        page = client.get(f"/portal/accounts/{account.number}/")

        row = next(m for m, _ in page.context["consumption"] if m.month == month)
        text = page.content.decode()
        assert row.energy_mwh is None  # not 1.000, the first connection's part as the whole
        assert ">1.000<" not in text
        assert ">1.500<" not in text
        assert "part of month</span>" in text
        assert row.partial is True
