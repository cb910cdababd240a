import datetime as dt
from decimal import Decimal

import pytest

from customers.selectors import monthly_consumption
from metering.models import BoundaryRegister
from tests.customers.factories import ContractFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer_login(client, django_user_model):
    def login(contract):
        user = django_user_model.objects.create_user(
            f"portal-{contract.account.number}", password="a-long-test-password-1"
        )
        contract.account.customer.user = user
        contract.account.customer.save()
        client.force_login(user)
        return client

    return login


def register(connection, on, kwh, m3, status="actual"):
    return BoundaryRegister.objects.create(
        connection=connection, on=on, energy_kwh=Decimal(kwh), volume_m3=Decimal(m3), status=status
    )


class TestPortalScoping:
    def test_a_customer_sees_only_their_own_accounts(self, customer_login):
        mine = ContractFactory()
        theirs = ContractFactory()
        client = customer_login(mine)

        listing = client.get("/portal/")

        assert listing.status_code == 200
        assert list(listing.context["accounts"]) == [mine.account]
        assert theirs.account.number not in listing.content.decode()

    def test_another_customers_account_is_not_found(self, customer_login):
        mine = ContractFactory()
        theirs = ContractFactory()
        client = customer_login(mine)

        assert client.get(f"/portal/accounts/{mine.account.number}/").status_code == 200
        assert client.get(f"/portal/accounts/{theirs.account.number}/").status_code == 404

    def test_anonymous_visitors_are_sent_to_log_in(self, client):
        response = client.get("/portal/")

        assert response.status_code == 302
        assert response["Location"].startswith("/portal/login/")

    def test_staff_without_a_customer_see_no_accounts(self, client, django_user_model):
        ContractFactory()
        staff = django_user_model.objects.create_superuser(
            "root", "r@example.org", "a-long-test-password-1"
        )
        client.force_login(staff)

        assert list(client.get("/portal/").context["accounts"]) == []


class TestMonthlyConsumption:
    def test_months_are_register_differences_with_estimates_marked(self):
        contract = ContractFactory(valid_from=dt.date(2025, 1, 1))
        connection = contract.connection
        register(connection, dt.date(2025, 9, 1), "1000.000", "10.0")
        register(connection, dt.date(2025, 10, 1), "1500.500", "19.5")
        register(connection, dt.date(2026, 9, 1), "9000.000", "100.0")
        register(connection, dt.date(2026, 10, 1), "9700.250", "112.25", status="estimated")
        register(connection, dt.date(2026, 11, 1), "11000.000", "130.0")

        months = monthly_consumption(
            account=contract.account, months=3, today=dt.date(2026, 11, 27)
        )

        assert [m.month for m in months] == [
            dt.date(2026, 10, 1),
            dt.date(2026, 9, 1),
            dt.date(2026, 8, 1),
        ]
        october, september, august = months
        assert october.energy_mwh == Decimal("1.29975")
        assert october.estimated is True
        assert september.energy_mwh == Decimal("0.70025")
        assert september.volume_m3 == Decimal("12.25")
        assert september.estimated is True  # ends on the estimated 1 October value
        assert september.same_month_last_year_mwh == Decimal("0.5005")
        assert august.energy_mwh is None

    def test_months_outside_the_contract_are_left_out(self):
        contract = ContractFactory(valid_from=dt.date(2026, 10, 15))
        register(contract.connection, dt.date(2026, 10, 1), "0", "0")
        register(contract.connection, dt.date(2026, 11, 1), "500", "5")

        months = monthly_consumption(
            account=contract.account, months=1, today=dt.date(2026, 11, 27)
        )

        assert months[0].energy_mwh is None  # moved in mid-month: shown on the bill only


class TestPortalInvoices:
    def _bill(self):
        from tests.billing.factories import billed_network
        from tests.billing.helpers import bill_month

        network, contracts = billed_network(accounts=2)
        bill_month(network)
        return contracts

    def test_lists_the_customers_issued_invoices_and_serves_their_pdf(self, customer_login):
        from billing.documents import invoice_pdf_render
        from billing.models import Invoice

        mine, theirs = self._bill()
        invoice = Invoice.objects.get(account=mine.account)
        other = Invoice.objects.get(account=theirs.account)
        invoice_pdf_render(invoice=invoice)
        invoice_pdf_render(invoice=other)
        client = customer_login(mine)

        page = client.get(f"/portal/accounts/{mine.account.number}/")
        pdf = client.get(f"/portal/invoices/{invoice.pk}.pdf")
        foreign = client.get(f"/portal/invoices/{other.pk}.pdf")

        assert [i.pk for i in page.context["invoices"]] == [invoice.pk]
        assert invoice.display_number in page.content.decode()
        assert pdf.status_code == 200
        assert pdf["Content-Type"] == "application/pdf"
        assert b"".join(pdf.streaming_content).startswith(b"%PDF")
        assert foreign.status_code == 404

    def test_drafts_are_not_shown_to_customers(self, customer_login):
        from tests.billing.factories import billed_network
        from tests.billing.helpers import bill_month

        network, (contract, *_) = billed_network(accounts=1)
        bill_month(network, issue=False)
        client = customer_login(contract)

        page = client.get(f"/portal/accounts/{contract.account.number}/")

        assert list(page.context["invoices"]) == []

    def test_shows_the_balance_payments_and_refunds_of_the_account_only(self, customer_login):
        from billing.services.payments import payment_record, refund_record
        from tests.billing.helpers import NOW

        mine, theirs = self._bill()  # 1,360.98 DKK each
        payment_record(
            account=mine.account,
            amount=Decimal("1500.00"),
            received_on=dt.date(2026, 12, 5),
            now=NOW,
            reference="bank 1",
        )
        refund_record(
            account=mine.account,
            amount=Decimal("100.00"),
            paid_on=dt.date(2026, 12, 9),
            now=NOW,
            reference="transfer 7",
        )
        payment_record(
            account=theirs.account,
            amount=Decimal("77.77"),
            received_on=dt.date(2026, 12, 6),
            now=NOW,
            reference="not yours",
        )
        client = customer_login(mine)

        page = client.get(f"/portal/accounts/{mine.account.number}/")
        text = page.content.decode()

        money = page.context["money"]
        # 1,360.98 billed − 1,500.00 paid + 100.00 refunded
        assert (money["balance"], money["credit"]) == (Decimal("-39.02"), Decimal("39.02"))
        assert "39.02 DKK</strong> of credit" in text
        assert "bank 1" in text
        assert "transfer 7" in text
        assert "not yours" not in text
        other = client.get(f"/portal/accounts/{theirs.account.number}/")
        assert other.status_code == 404


class TestIssueDateInTheNetworksZone:
    def test_the_issue_date_is_the_networks_local_date_as_on_the_pdf(self, customer_login):
        """A London network's invoice issued at 23:30 UTC on 1 December was issued on
        1 December there (its PDF and exports say so), not on the 2 December it already
        is in the server's zone (Europe/Copenhagen)."""
        from billing.documents import invoice_context
        from billing.models import Invoice
        from customers.models import Network
        from tests.billing.factories import billed_network
        from tests.billing.helpers import bill_month

        network, (contract,) = billed_network(accounts=1)
        Network.objects.filter(pk=network.pk).update(time_zone="Europe/London")
        network.refresh_from_db()
        bill_month(network, now=dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.UTC))
        invoice = Invoice.objects.get(account=contract.account)

        page = customer_login(contract).get(f"/portal/accounts/{contract.account.number}/")
        row = next(
            line.split("</tr>")[0]
            for line in page.content.decode().split("<tr>")
            if invoice.display_number in line
        )

        assert invoice_context(invoice=invoice)["issued_on"] == dt.date(2026, 12, 1)
        assert "<td>2026-12-01</td>" in row
        assert "2026-12-02" not in row


class TestLastYearInThisWeather:
    def test_the_portal_shows_last_years_month_in_this_months_weather(self, customer_login):
        from django.utils import timezone

        from billing.selectors import months_in_this_weather
        from heatutility.timeutil import add_months
        from metering.models import DegreeDay

        # the portal shows the last 13 whole months before today: take the one before last
        month = add_months(timezone.localdate().replace(day=1), -2)
        before = add_months(month, -12)
        contract = ContractFactory(valid_from=add_months(before, -1))
        connection, network = contract.connection, contract.account.network
        for on, kwh in [(before, "1000"), (add_months(before, 1), "1500"),
                        (month, "9000"), (add_months(month, 1), "9700")]:  # fmt: skip
            register(connection, on, kwh, "0")
        days = {}
        for start, per_day in ((before, 2), (month, 3)):  # this year's month colder
            days[start] = (add_months(start, 1) - start).days
            DegreeDay.objects.bulk_create(
                DegreeDay(network=network, on=start + dt.timedelta(d), degree_days=per_day)
                for d in range(days[start])
            )
        # 0.5 MWh last year: 0.8 × 0.5 × (3 × days) / (2 × days last year) + 0.2 × 0.5
        expected = (
            Decimal("0.4") * 3 * days[month] / (2 * days[before]) + Decimal("0.1")
        ).quantize(Decimal("0.001"))
        assert months_in_this_weather(
            network_id=network.pk,
            months=[(month, Decimal("0.5")), (add_months(month, -1), Decimal("0.4"))],
        ) == {month: expected}  # the month before: no degree days, no figure

        page = customer_login(contract).get(f"/portal/accounts/{contract.account.number}/")
        rows = {m.month: weather for m, weather in page.context["consumption"]}
        assert rows[month] == expected
        assert "Last year in this month's weather" in page.content.decode()

    def test_a_month_with_a_missing_day_gets_no_figure(self):
        from billing.selectors import months_in_this_weather
        from metering.models import DegreeDay

        contract = ContractFactory()
        network = contract.account.network
        for year in (2025, 2026):
            DegreeDay.objects.bulk_create(
                DegreeDay(network=network, on=dt.date(year, 9, d), degree_days=Decimal(2))
                for d in range(1, 31) if (year, d) != (2025, 30)
            )  # fmt: skip
        september = dt.date(2026, 9, 1)
        assert (
            months_in_this_weather(network_id=network.pk, months=[(september, Decimal("0.5"))])
            == {}
        )


class TestOnAccountPlanInThePortal:
    def test_the_customer_sees_the_plan_in_force_and_how_it_was_estimated(self, customer_login):
        from django.utils import timezone

        from billing.models import InstalmentPlan
        from heatutility.timeutil import add_months

        contract = ContractFactory(valid_from=dt.date(2025, 1, 1))
        this_month = timezone.localdate().replace(day=1)  # the portal shows today's plan
        InstalmentPlan.objects.create(
            account=contract.account, year_start=this_month,
            year_end=add_months(this_month, 12), frequency="monthly", last_year_mwh=Decimal("18"),
            estimated_mwh=Decimal("18.886356"), explanation="last year 18.000 MWh, corrected",
            created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        )  # fmt: skip
        page = customer_login(contract).get(f"/portal/accounts/{contract.account.number}/")
        text = " ".join(page.content.decode().split())
        assert "you pay monthly instalments on account" in text
        assert "<strong>18.886 MWh</strong> for the year (last year 18.000 MWh, corrected)" in text

    def test_no_section_without_a_plan(self, customer_login):
        contract = ContractFactory()
        page = customer_login(contract).get(f"/portal/accounts/{contract.account.number}/")
        assert "On-account payments" not in page.content.decode()
