"""Admin pages at utility scale: a page's queries do not grow with the rows it shows.

A network has ~100,000 accounts, connections and meters, and a billing run can fail for
thousands of accounts; a page that asks the database once per row it shows is seconds
slow there.  Each test fills a page with N rows and bounds the queries below N.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from billing.models import BillingRun, BillingRunException, DunningLetter, DunningNotice, Invoice
from metering.models import Reading, ReadingIssue
from tests.customers.factories import (
    AccountFactory,
    BuildingInterfaceUnitFactory,
    ContractFactory,
    NetworkFactory,
)
from tests.metering.factories import HeatMeterFactory

N = 30
NOW = dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC)


@pytest.fixture
def staff_client(client):
    client.force_login(User.objects.create_superuser("boss", "boss@example.org", "pw"))
    return client


def _get(client, url):
    response = client.get(url)
    assert response.status_code == 200
    return response


def _run_with_exceptions(count):
    network = NetworkFactory()
    run = BillingRun.objects.create(
        network=network,
        period_start=dt.date(2026, 11, 1),
        period_end=dt.date(2026, 12, 1),
        created_at=NOW,
        state=BillingRun.State.DRAFTED,
    )
    for account in AccountFactory.create_batch(count, network=network):
        BillingRunException.objects.create(
            run=run, account=account, code="no_reads", error="No reads", created_at=NOW
        )
    return run


@pytest.mark.django_db
class TestPageQueriesDoNotGrowWithRows:
    def test_a_runs_page_with_many_failed_accounts(
        self, staff_client, django_assert_max_num_queries
    ):
        run = _run_with_exceptions(N)
        with django_assert_max_num_queries(15):
            page = _get(staff_client, f"/admin/billing/billingrun/{run.pk}/change/")
        page = page.content.decode()
        assert all(f">{e.account.number} " in page for e in run.exceptions.all())

    def test_a_runs_page_shows_its_first_exceptions_unresolved_first(
        self, staff_client, monkeypatch
    ):
        # 5,000 failed accounts were 5,000 form rows: 7.7 MB and 6.7 s to render
        monkeypatch.setattr("billing.admin.RUN_PAGE_EXCEPTIONS", 4)
        run = _run_with_exceptions(6)
        first = list(run.exceptions.order_by("account_id"))
        BillingRunException.objects.filter(pk=first[0].pk).update(resolved=True)
        page = _get(staff_client, f"/admin/billing/billingrun/{run.pk}/change/").content.decode()
        shown = [e.account.number for e in first if f">{e.account.number} " in page]
        assert shown == [e.account.number for e in first[1:5]]

    def test_an_exception_on_a_runs_page_is_marked_resolved(self, staff_client, monkeypatch):
        monkeypatch.setattr("billing.admin.RUN_PAGE_EXCEPTIONS", 2)
        run = _run_with_exceptions(3)
        shown = list(run.exceptions.order_by("resolved", "account_id")[:2])
        form = {
            "issue_when_drafted": "",
            "render_pdfs": "",
            "exceptions-TOTAL_FORMS": "2",
            "exceptions-INITIAL_FORMS": "2",
            "exceptions-MIN_NUM_FORMS": "0",
            "exceptions-MAX_NUM_FORMS": "1000",
        }
        for i, exception in enumerate(shown):
            form[f"exceptions-{i}-id"] = str(exception.pk)
            form[f"exceptions-{i}-run"] = str(run.pk)
        form["exceptions-1-resolved"] = "on"
        response = staff_client.post(f"/admin/billing/billingrun/{run.pk}/change/", form)
        assert response.status_code == 302
        assert list(run.exceptions.filter(resolved=True)) == [shown[1]]

    def test_the_contract_list(self, staff_client, django_assert_max_num_queries):
        ContractFactory.create_batch(N)
        with django_assert_max_num_queries(10):
            _get(staff_client, "/admin/customers/contract/")

    def test_the_interface_unit_list(self, staff_client, django_assert_max_num_queries):
        BuildingInterfaceUnitFactory.create_batch(N)
        with django_assert_max_num_queries(10):
            _get(staff_client, "/admin/customers/buildinginterfaceunit/")

    def test_the_reading_exception_queue(self, staff_client, django_assert_max_num_queries):
        from metering.ingest.store import partitions_ensure

        partitions_ensure(months={(2026, 11)})
        read_at = dt.datetime(2026, 11, 3, tzinfo=dt.UTC)
        for n, meter in enumerate(HeatMeterFactory.create_batch(N)):
            Reading.objects.create(
                meter=meter,
                read_at=read_at,
                energy_kwh=Decimal(1000 + n),
                energy_value=Decimal(1000 + n),
                energy_unit="kWh",
                volume_m3=Decimal("12.5"),
                status=Reading.Status.SUSPECT,
                received_at=NOW,
            )
            ReadingIssue.objects.create(
                meter=meter,
                read_at=read_at,
                code="spike",
                severity=ReadingIssue.Severity.ERROR,
                message="spike",
                created_at=NOW,
            )
        with django_assert_max_num_queries(12):
            page = _get(staff_client, "/admin/metering/readingissue/").content.decode()
        # each row still shows its reading's values
        assert all(f"{1000 + n}.000000 kWh" in page for n in range(N))

    def test_the_dunning_notice_list(self, staff_client, django_assert_max_num_queries):
        network = NetworkFactory()
        for n, account in enumerate(AccountFactory.create_batch(N, network=network)):
            invoice = Invoice.objects.create(
                account=account,
                network=network,
                state=Invoice.State.ISSUED,
                period_start=dt.date(2026, 10, 1),
                period_end=dt.date(2026, 11, 1),
                series="INV",
                number=n + 1,
                issued_at=NOW,
                due_on=dt.date(2026, 11, 15),
                currency="DKK",
                gross=Decimal("100.00"),
                net=Decimal("80.00"),
                vat=Decimal("20.00"),
                created_at=NOW,
            )
            letter = DunningLetter.objects.create(
                account=account,
                sent_on=dt.date(2026, 12, 1),
                pay_by=dt.date(2026, 12, 15),
                level=1,
                title="Reminder",
                currency="DKK",
                open_amount=Decimal("100.00"),
            )
            DunningNotice.objects.create(
                invoice=invoice,
                letter=letter,
                level=1,
                title="Reminder",
                open_amount=Decimal("100.00"),
                sent_on=dt.date(2026, 12, 1),
            )
        with django_assert_max_num_queries(12):
            _get(staff_client, "/admin/billing/dunningnotice/")
