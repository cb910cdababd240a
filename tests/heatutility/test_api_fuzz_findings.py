"""What fuzzing the API against its own OpenAPI schema (schemathesis) found: each answer
is one the schema documents, and bad input is a 400 that names the parameter."""

import datetime as dt
from decimal import Decimal as D

import pytest

from heatutility.roles import BILLING_CLERK, METERING_OPERATOR, TARIFF_MANAGER
from tests.billing.helpers import client_for
from tests.customers.factories import AccountFactory, NetworkFactory
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(admin_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(admin_user)
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def assert_documented(schema, path: str, method: str, response) -> None:
    """The answer's status is one the operation lists, and an error is in the error shape."""
    responses = schema["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in responses, (
        f"{method.upper()} {path} answered {status}, documents {sorted(responses)}"
    )
    if response.status_code >= 400:
        documented = responses[status]["content"]["application/json"]["schema"]
        assert documented == {"$ref": "#/components/schemas/Error"}
        assert set(response.json()) == {"message", "code", "errors"}


class TestABadPageNumber:
    @pytest.mark.parametrize(
        ("page", "message"),
        [
            ("0", "That page number is less than 1"),
            ("x", "That page number is not an integer"),
            ("3", "That page contains no results"),
        ],
    )
    def test_is_a_400_on_the_page_parameter(self, schema, page, message):
        HeatMeterFactory.create_batch(2)
        operator = client_for(METERING_OPERATOR)

        response = operator.get(f"/api/v1/meters/?page={page}")

        assert response.status_code == 400, response.content
        assert response.json()["errors"] == [
            {"field": "page", "code": "invalid_page", "message": message}
        ]
        assert_documented(schema, "/api/v1/meters/", "get", response)

    def test_a_vendor_listing_its_meters_gets_the_same_400(self, schema):
        from rest_framework.test import APIClient

        from metering.vendors import vendor_key_create
        from tests.metering.factories_readings import MeterVendorFactory

        _, key = vendor_key_create(vendor=MeterVendorFactory(), label="fuzz")
        vendor = APIClient()
        vendor.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")

        response = vendor.get("/api/v1/readings/meters/?page=0")

        assert response.status_code == 400, response.content
        assert [e["field"] for e in response.json()["errors"]] == ["page"]
        assert_documented(schema, "/api/v1/readings/meters/", "get", response)

    def test_a_page_that_exists_is_still_served(self):
        HeatMeterFactory.create_batch(2)

        response = client_for(METERING_OPERATOR).get("/api/v1/meters/?page=1")

        assert response.status_code == 200
        assert response.json()["count"] == 2


class TestAccountBalance:
    PATH = "/api/v1/billing/payments/balance/"

    @pytest.mark.parametrize("query", ["", "?account=", "?account=abc", "?account=1.5"])
    def test_a_missing_or_malformed_account_is_a_400_on_that_parameter(self, schema, query):
        response = client_for(BILLING_CLERK).get(self.PATH + query)

        assert response.status_code == 400, response.content
        assert [e["field"] for e in response.json()["errors"]] == ["account"]
        assert_documented(schema, self.PATH, "get", response)

    def test_an_unknown_account_is_a_documented_404(self, schema):
        response = client_for(BILLING_CLERK).get(self.PATH + "?account=987654321")

        assert response.status_code == 404
        assert response.json()["message"] == "No such account."
        assert_documented(schema, self.PATH, "get", response)

    def test_the_balance_is_described_field_by_field(self, schema):
        account = AccountFactory()

        response = client_for(BILLING_CLERK).get(f"{self.PATH}?account={account.pk}")

        assert response.status_code == 200
        assert response.json() == {
            "account": account.pk,
            "balance": "0.00",
            "credit": "0.00",
            "currency": account.network.currency,
        }
        ok = schema["paths"][self.PATH]["get"]["responses"]["200"]
        ref = ok["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        assert set(schema["components"]["schemas"][ref]["properties"]) == set(response.json())


class TestPriceCapRecompute:
    def test_a_cap_that_can_no_longer_be_computed_is_a_documented_422(self, schema):
        import pandas as pd

        from tariffs.models import ElectricityCharge, SpotPrice
        from tariffs.services import price_cap_compute

        network = NetworkFactory(code="caps", price_area="DK2", currency="DKK")
        hours = pd.date_range(
            "2026-01-05", "2026-01-06", freq="h", inclusive="left", tz="Europe/Copenhagen"
        ).tz_convert("UTC")
        SpotPrice.objects.bulk_create(
            SpotPrice(price_area="DK2", hour_start=t.to_pydatetime(), price_per_mwh=D(100))
            for t in hours
        )
        ElectricityCharge.objects.create(
            price_area="DK2", kind="grid", valid_from=dt.date(2026, 1, 1), amount_per_mwh=D(50)
        )
        cap = price_cap_compute(
            network=network,
            method="substitution",
            period_start=dt.date(2026, 1, 5),
            period_end=dt.date(2026, 1, 6),
            inputs={
                "reference": {"energy_mwh": "2.4", "heated_area_m2": "130", "contracted_kw": "9"},
                "individual_scop": "3.0",
                "consumer_extra_per_mwh": "0",
                "investment": "0",
                "om_per_year": "0",
                "include_utility_tariffs": True,
            },
            now=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
        )
        network.currency = "EUR"  # the electricity prices stay in DKK
        network.save(update_fields=["currency"])

        response = client_for(TARIFF_MANAGER).get(f"/api/v1/price-caps/{cap.pk}/recompute/")

        assert response.status_code == 422, response.content
        assert "bills in EUR" in response.json()["message"]
        assert_documented(schema, "/api/v1/price-caps/{id}/recompute/", "get", response)


class TestMeterExchange:
    def test_the_two_installations_come_back_as_the_list_the_schema_describes(self, schema):
        old = MeterInstallationFactory(installed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        operator = client_for(METERING_OPERATOR)

        response = operator.post(
            "/api/v1/meter-installations/exchange/",
            {
                "unit": old.unit_id,
                "new_meter": HeatMeterFactory().pk,
                "exchanged_at": "2026-10-15T10:00:00Z",
                "old_final_energy_kwh": "100",
                "old_final_volume_m3": "12",
            },
            format="json",
        )

        assert response.status_code == 201, response.content
        body = response.json()
        assert [row["id"] for row in body][:1] == [old.pk]
        assert body[0]["removed_at"] is not None
        assert body[1]["removed_at"] is None
        operation = schema["paths"]["/api/v1/meter-installations/exchange/"]["post"]
        assert operation["responses"]["201"]["content"]["application/json"]["schema"] == {
            "type": "array",
            "items": {"$ref": "#/components/schemas/MeterInstallation"},
        }
        assert not [p for p in operation.get("parameters", ()) if p["in"] == "query"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestBillingLocksNoNetworkRow:
    """Fuzzing found ``POST /billing/invoices/{id}/rerate/`` answering 500 (PostgreSQL:
    deadlock detected): a run's issue step locked the run *and its network* (FOR UPDATE
    over ``select_related``), then waited for the series counter; a re-rating held the
    counter and locked its invoice and network, or wrote a document for the network (a
    key share on its row).  Billing now locks the run or invoice row alone, so each waits
    at most for the other's counter, never in a circle.  Each test holds the network row
    in another transaction the way the other side would and gives the lock 2 s."""

    @pytest.fixture
    def billed(self):
        from billing.models import Invoice
        from tests.billing.factories import billed_network
        from tests.billing.helpers import bill_month

        network, contracts = billed_network(accounts=1)
        run = bill_month(network)
        return network, run, contracts[0].account, Invoice.objects.get()

    @staticmethod
    def _holding(network, mode: str):
        import psycopg
        from django.db import connection

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        other = psycopg.connect(**params)
        other.execute(f"SELECT id FROM customers_network WHERE id = %s FOR {mode}", [network.pk])
        return other

    @staticmethod
    def _within_lock_timeout(other, call):
        from django.db import connection, transaction

        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '2s'")
                return call()
        finally:
            other.rollback()
            other.close()

    @pytest.mark.parametrize("action", ["rerate", "rebill"])
    def test_a_rerating_writes_its_documents_while_the_network_row_is_held(self, billed, action):
        from billing.services.invoices import invoice_credit
        from billing.services.rerating import invoice_rebill, invoice_rerate
        from tests.billing.helpers import NOW

        network, _, account, invoice = billed
        if action == "rebill":
            invoice_credit(invoice=invoice, now=NOW)
        else:  # November's end register corrected: a credit note and a correction
            from metering.models import BoundaryRegister
            from tests.billing.factories import register

            end = BoundaryRegister.objects.get(
                connection__contracts__account=account, on=dt.date(2026, 12, 1)
            )
            register(end.connection, end.on, end.energy_kwh + 100)
        # the run's issue step held the row this way (a document written meanwhile only
        # takes a key share, which this does not block)
        other = self._holding(network, "NO KEY UPDATE")

        if action == "rerate":
            result = self._within_lock_timeout(
                other, lambda: invoice_rerate(invoice=invoice, now=NOW)
            )
            credit_note, correction = result
            assert (credit_note.kind, correction.kind) == ("credit_note", "correction")
        else:
            correction = self._within_lock_timeout(
                other, lambda: invoice_rebill(invoice=invoice, now=NOW)
            )
            assert correction.original_id == invoice.pk

    def test_a_run_is_issued_while_a_document_of_its_network_is_being_written(self, billed):
        from billing.services.runs import billing_run_issue
        from tests.billing.helpers import NOW

        network, run, _, _ = billed
        other = self._holding(network, "KEY SHARE")  # an invoice row being inserted

        issued = self._within_lock_timeout(other, lambda: billing_run_issue(run=run, issued_at=NOW))

        assert issued == []  # issued before; the step is safe to repeat

    def test_a_late_bill_takes_its_run_while_a_document_of_its_network_is_being_written(
        self, billed
    ):
        from billing.services.contract_changes import account_bill_missed
        from tests.billing.helpers import NOW

        network, run, account, _ = billed
        other = self._holding(network, "KEY SHARE")

        missed = self._within_lock_timeout(
            other, lambda: account_bill_missed(account=account, run=run, now=NOW)
        )

        assert missed is None  # billed by the run already


class TestInvoiceEmailSubject:
    """Fuzzing created an account whose number holds a carriage return; issuing its
    run answered 500: the invoice e-mail's subject names the account number, and Django
    refuses a header with a line break (BadHeaderError), so the invoice never went out."""

    def test_an_account_number_with_a_line_break_still_gets_its_invoice(self, mailoutbox):
        from django.core.files.base import ContentFile
        from django.core.files.storage import default_storage

        from billing import tasks
        from billing.models import Invoice
        from tests.billing.factories import billed_network
        from tests.billing.helpers import bill_month

        network, (contract,) = billed_network(accounts=1)
        account = contract.account
        account.number = "70\r\n0001"
        account.save(update_fields=["number"])
        customer = account.customer
        customer.email = "kunde@example.org"
        customer.save(update_fields=["email"])
        bill_month(network)
        invoice = Invoice.objects.get(account=account)
        name = default_storage.save(f"invoices/{invoice.display_number}.pdf", ContentFile(b"%PDF"))
        Invoice.objects.filter(pk=invoice.pk).update(pdf=name)

        assert tasks.invoices_email([invoice.pk]) == 1

        (message,) = mailoutbox
        assert message.subject == f"Invoice {invoice.display_number}, account 70 0001"
        message.message()  # the headers as sent: no BadHeaderError
        assert Invoice.objects.get(pk=invoice.pk).emailed_at is not None


class TestASearchWithANullCharacter:
    def test_is_a_400_on_the_search_parameter(self, schema):
        response = client_for(BILLING_CLERK).get("/api/v1/accounts/?search=70%0001")

        assert response.status_code == 400
        assert response.json()["errors"] == [
            {
                "field": "search",
                "code": "null_characters_not_allowed",
                "message": "Null characters are not allowed.",
            }
        ]
        assert_documented(schema, "/api/v1/accounts/", "get", response)
