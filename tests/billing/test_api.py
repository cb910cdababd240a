import datetime as dt
from decimal import Decimal

import pytest

from billing.models import BillingRun, Invoice
from heatutility.roles import AUDITOR, BILLING_CLERK
from tests.billing.factories import billed_network
from tests.billing.helpers import NOW, bill_month, client_for


@pytest.mark.django_db
class TestBillingApi:
    def test_clerk_creates_a_run_and_sees_its_progress(self, django_capture_on_commit_callbacks):
        network, _ = billed_network(accounts=2)
        clerk = client_for(BILLING_CLERK)
        with django_capture_on_commit_callbacks(execute=True):
            response = clerk.post(
                "/api/v1/billing/runs/",
                {"network": network.pk, "period_start": "2026-10-01", "render_pdfs": False},
                format="json",
            )
        assert response.status_code == 201, response.json()
        run_id = response.json()["id"]
        progress = clerk.get(f"/api/v1/billing/runs/{run_id}/").json()
        assert (progress["state"], progress["total"], progress["done"], progress["percent"]) == (
            "drafted",
            2,
            2,
            100,
        )
        duplicate = clerk.post(
            "/api/v1/billing/runs/",
            {"network": network.pk, "period_start": "2026-10-01"},
            format="json",
        )
        assert duplicate.status_code == 409
        assert (
            "already has a billing run (periodic invoices) for [2026-10-01, 2026-11-01)"
            in (duplicate.json()["message"])
        )
        issued = clerk.post(f"/api/v1/billing/runs/{run_id}/issue/")
        assert issued.json()["state"] == "issued"

    def test_a_run_issued_when_drafted_needs_the_permission_to_issue_runs(
        self, django_capture_on_commit_callbacks, client
    ):
        """``issue_when_drafted`` issues the run's drafts without the ``issue`` action:
        who may create runs but not issue them was issuing every invoice that way."""
        from tests.billing.helpers import api_client, staff_with_permissions

        network, _ = billed_network(accounts=2)
        drafter = staff_with_permissions(
            "drafter", "view_billingrun", "add_billingrun", "change_billingrun"
        )
        body = {"network": network.pk, "period_start": "2026-10-01", "render_pdfs": False}

        with django_capture_on_commit_callbacks(execute=True):
            refused = api_client(drafter).post(
                "/api/v1/billing/runs/", {**body, "issue_when_drafted": True}, format="json"
            )
            drafted = api_client(drafter).post("/api/v1/billing/runs/", body, format="json")

        assert refused.status_code == 403
        assert "billing.issue_billingrun" in refused.json()["message"]
        assert drafted.status_code == 201, drafted.json()
        assert drafted.json()["state"] == "drafted"
        assert not Invoice.objects.filter(number__isnull=False).exists()
        # nor switched on afterwards in the admin
        client.force_login(drafter)
        run = BillingRun.objects.get()
        client.post(
            f"/admin/billing/billingrun/{run.pk}/change/",
            {
                "issue_when_drafted": "on",
                "render_pdfs": "",
                "exceptions-TOTAL_FORMS": "0",
                "exceptions-INITIAL_FORMS": "0",
            },
        )
        run.refresh_from_db()
        assert run.issue_when_drafted is False

    def test_a_month_that_has_not_ended_is_refused_and_instalments_are_billed_ahead(self):
        from zoneinfo import ZoneInfo

        from django.utils import timezone

        network, _ = billed_network(accounts=1)
        clerk = client_for(BILLING_CLERK)
        today = timezone.now().astimezone(ZoneInfo(network.time_zone)).date()
        this_month = today.replace(day=1).isoformat()

        refused = clerk.post(
            "/api/v1/billing/runs/",
            {"network": network.pk, "period_start": this_month},
            format="json",
        )

        assert refused.status_code == 422
        assert refused.json()["code"] == "period_not_ended"
        assert f"[{this_month}, " in refused.json()["message"]
        assert not BillingRun.objects.exists()
        ahead = clerk.post(
            "/api/v1/billing/runs/",
            {"network": network.pk, "period_start": this_month, "kind": "instalment"},
            format="json",
        )
        assert ahead.status_code == 201, ahead.json()

    def test_invoice_detail_lists_explained_lines_and_pdf_download(
        self, django_capture_on_commit_callbacks
    ):
        network, _contracts = billed_network(accounts=1)
        run = bill_month(network, issue=False)
        run.render_pdfs = True
        run.save()
        from billing.services.runs import billing_run_issue
        from tests.billing.helpers import NOW

        with django_capture_on_commit_callbacks(execute=True):
            billing_run_issue(run=run, issued_at=NOW)
        auditor = client_for(AUDITOR)
        invoice = Invoice.objects.get()
        body = auditor.get(f"/api/v1/billing/invoices/{invoice.pk}/").json()
        assert body["number"] == "INV-2026-000001"
        energy = next(line for line in body["lines"] if line["component"] == "energy")
        assert energy["amount"] == "888.78"
        assert "592.52" in energy["explanation"]
        pdf = auditor.get(f"/api/v1/billing/invoices/{invoice.pk}/pdf/")
        assert pdf.status_code == 200
        assert pdf["Content-Type"] == "application/pdf"
        assert b"".join(pdf.streaming_content).startswith(b"%PDF")

    def test_auditor_cannot_issue_or_record_payments(self):
        network, _ = billed_network(accounts=1)
        bill_month(network, issue=False)
        auditor = client_for(AUDITOR)
        invoice = Invoice.objects.get()
        assert auditor.post(f"/api/v1/billing/invoices/{invoice.pk}/issue/").status_code == 403
        assert auditor.post("/api/v1/billing/payments/", {}, format="json").status_code == 403

    def test_payment_import_and_balance(self):
        network, contracts = billed_network(accounts=1)
        bill_month(network)
        invoice = Invoice.objects.get()
        clerk = client_for(BILLING_CLERK)
        from django.core.files.uploadedfile import SimpleUploadedFile

        upload = SimpleUploadedFile(
            "statement.csv",
            f"date,amount,reference,account,transaction_id\n2026-12-05,500.00,{invoice.display_number},,B1\n".encode(),
        )
        result = clerk.post(
            "/api/v1/billing/payments/import/", {"file": upload}, format="multipart"
        ).json()
        assert result == {
            "created": 1,
            "duplicates": 0,
            "skipped": 0,
            "unmatched": [],
            "errors": [],
        }
        balance = clerk.get(
            f"/api/v1/billing/payments/balance/?account={contracts[0].account_id}"
        ).json()
        assert Decimal(balance["balance"]) == invoice.gross - Decimal("500.00")

    def test_a_bank_statement_in_windows_1252_is_read_and_a_binary_file_refused(self):
        from django.core.files.uploadedfile import SimpleUploadedFile

        from billing.models import Payment

        network, _ = billed_network(accounts=1)
        bill_month(network)
        invoice = Invoice.objects.get()
        clerk = client_for(BILLING_CLERK)
        text = (
            "date;amount;reference;account;transaction_id\n"
            f"2026-12-05;1.234,50;{invoice.display_number} Søren Ærø;;B-1252\n"
        )
        upload = SimpleUploadedFile("statement.csv", text.encode("cp1252"))  # Danish banks' export
        result = clerk.post(
            "/api/v1/billing/payments/import/", {"file": upload}, format="multipart"
        )
        assert result.json() == {
            "created": 1,
            "duplicates": 0,
            "skipped": 0,
            "unmatched": [],
            "errors": [],
        }
        payment = Payment.objects.get(bank_transaction_id="B-1252")
        assert (payment.amount, payment.reference) == (
            Decimal("1234.50"),
            f"{invoice.display_number} Søren Ærø",
        )
        spreadsheet = SimpleUploadedFile("statement.xlsx", b"PK\x03\x04\x14\x00\x06\x00")
        refused = clerk.post(
            "/api/v1/billing/payments/import/", {"file": spreadsheet}, format="multipart"
        )
        assert refused.status_code == 422
        assert refused.json()["errors"] == [
            {
                "code": "encoding",
                "field": "file",
                "message": "The file is not text (a NUL byte at position 5).",
            }
        ]
        assert Payment.objects.count() == 1

    def test_credit_via_api_references_the_original(self):
        network, _ = billed_network(accounts=1)
        bill_month(network)
        invoice = Invoice.objects.get()
        clerk = client_for(BILLING_CLERK)
        response = clerk.post(f"/api/v1/billing/invoices/{invoice.pk}/credit/")
        assert response.status_code == 201
        assert response.json()["original"] == invoice.pk
        assert response.json()["gross"] == f"-{invoice.gross}"
        again = clerk.post(f"/api/v1/billing/invoices/{invoice.pk}/credit/")
        assert again.status_code == 409

    def test_rebill_via_api_bills_a_credited_period_again_once(self):
        network, _ = billed_network(accounts=1)
        bill_month(network)
        invoice = Invoice.objects.get()
        clerk = client_for(BILLING_CLERK)
        auditor = client_for(AUDITOR)
        assert auditor.post(f"/api/v1/billing/invoices/{invoice.pk}/rebill/").status_code == 403
        not_credited = clerk.post(f"/api/v1/billing/invoices/{invoice.pk}/rebill/")
        assert not_credited.status_code == 409
        assert "re-rate it instead" in not_credited.json()["message"]
        clerk.post(f"/api/v1/billing/invoices/{invoice.pk}/credit/")
        response = clerk.post(f"/api/v1/billing/invoices/{invoice.pk}/rebill/")
        assert response.status_code == 201
        body = response.json()
        assert (body["kind"], body["original"], body["gross"]) == (
            "correction",
            invoice.pk,
            str(invoice.gross),
        )
        assert clerk.post(f"/api/v1/billing/invoices/{invoice.pk}/rebill/").status_code == 409

    def test_exports_balance_debits_and_credits(self):
        network, _ = billed_network(accounts=2)
        bill_month(network)
        clerk = client_for(BILLING_CLERK)
        params = f"start=2020-01-01&end=2030-01-01&network={network.pk}"
        invoices_csv = b"".join(
            clerk.get(f"/api/v1/billing/exports/invoices.csv?{params}").streaming_content
        ).decode()
        assert invoices_csv.splitlines()[0].startswith("number,kind,state")
        assert len(invoices_csv.splitlines()) == 3
        journal = b"".join(
            clerk.get(f"/api/v1/billing/exports/journal.csv?{params}").streaming_content
        ).decode()
        rows = [line.split(",") for line in journal.splitlines()[1:]]
        debit = sum(Decimal(r[5]) for r in rows if r[5])
        credit = sum(Decimal(r[6]) for r in rows if r[6])
        assert debit == credit == sum(i.gross for i in Invoice.objects.all())
        assert BillingRun.objects.count() == 1

    def test_exports_date_an_invoice_by_its_local_issue_day(self):
        from billing.selectors import invoices_csv, journal_rows

        network, _ = billed_network(accounts=1)  # Europe/Copenhagen
        # 23:30 UTC on 31 December is 00:30 on 1 January in Copenhagen: a January document
        bill_month(network, now=dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC))
        number = Invoice.objects.get().display_number

        def exported(start, end):
            rows = list(invoices_csv(network_id=network.pk, start=start, end=end))[1:]
            return [row.split(",")[:4] for row in "".join(rows).splitlines()]

        january = (dt.date(2027, 1, 1), dt.date(2027, 2, 1))
        assert exported(dt.date(2026, 12, 1), dt.date(2027, 1, 1)) == []
        assert exported(*january) == [[number, "invoice", "issued", "2027-01-01"]]
        days = {
            row[0] for row in journal_rows(network_id=network.pk, start=january[0], end=january[1])
        }
        assert days == {"2027-01-01"}


@pytest.mark.django_db
class TestInstalmentPlanningApi:
    def test_clerk_plans_a_network_and_failures_come_back_by_account_number(self):
        from billing.models import InstalmentPlan
        from metering.models import BoundaryRegister

        network, contracts = billed_network(accounts=3)
        BoundaryRegister.objects.filter(
            connection=contracts[2].connection, on=dt.date(2026, 1, 1)
        ).delete()
        clerk = client_for(BILLING_CLERK)
        body = {"network": network.pk, "year_start": "2026-01-01", "frequency": "monthly"}

        response = clerk.post("/api/v1/billing/instalment-plans/", body, format="json")

        assert response.status_code == 202, response.content
        planning = response.json()
        assert {k: planning[k] for k in ("state", "created", "existing", "failures")} == {
            "state": "done",  # tasks run in process here; on workers: poll the planning
            "created": 2,
            "existing": 0,
            "failures": [
                {
                    "account": contracts[2].account.number,
                    "message": f"No register value for connection {contracts[2].connection_id}"
                    " on 2026-01-01: last year's consumption is unknown.",
                }
            ],
        }
        polled = clerk.get(f"/api/v1/billing/instalment-plannings/{planning['id']}/").json()
        assert polled == planning
        listed = clerk.get(
            "/api/v1/billing/instalment-plans/", {"account__network": network.pk}
        ).json()
        rows = listed["results"] if isinstance(listed, dict) else listed
        assert sorted((r["account_number"], r["estimated_mwh"]) for r in rows) == sorted(
            (c.account.number, "18.000000") for c in contracts[:2]
        )
        again = clerk.post("/api/v1/billing/instalment-plans/", body, format="json").json()
        assert (again["created"], again["existing"]) == (0, 2)
        assert InstalmentPlan.objects.count() == 2

    def test_unknown_account_numbers_are_itemised_and_nothing_is_planned(self):
        from billing.models import InstalmentPlan

        network, contracts = billed_network(accounts=1)
        clerk = client_for(BILLING_CLERK)
        body = {
            "network": network.pk,
            "year_start": "2026-01-01",
            "frequency": "quarterly",
            "accounts": [contracts[0].account.number, "no-such-1"],
        }
        response = clerk.post("/api/v1/billing/instalment-plans/", body, format="json")
        assert response.status_code == 400
        assert "no-such-1" in str(response.json())
        assert InstalmentPlan.objects.count() == 0
        body["year_start"] = "2026-01-15"
        body["accounts"] = [contracts[0].account.number]
        response = clerk.post("/api/v1/billing/instalment-plans/", body, format="json")
        assert response.status_code == 422
        assert "first of a month" in response.json()["message"]

    def test_dates_the_product_cannot_work_with_are_a_400_on_the_field(self):
        network, _ = billed_network(accounts=1)
        clerk = client_for(BILLING_CLERK)
        for url, body, field in (
            ("/api/v1/billing/runs/", {"network": network.pk, "period_start": "9999-12-01"},
             "period_start"),
            ("/api/v1/billing/instalment-plans/",
             {"network": network.pk, "year_start": "0001-01-01", "frequency": "monthly"},
             "year_start"),
            ("/api/v1/billing/instalment-plans/",
             {"network": network.pk, "year_start": "9999-01-01", "frequency": "monthly"},
             "year_start"),
        ):  # fmt: skip
            response = clerk.post(url, body, format="json")
            assert response.status_code == 400, (url, response.content)
            assert response.json()["errors"] == [
                {
                    "code": "out_of_range",
                    "field": field,
                    "message": "Enter a date from 1900-01-01 to 2200-12-31.",
                }
            ]

    def test_an_auditor_may_read_plans_but_not_make_them(self):
        network, _ = billed_network(accounts=1)
        auditor = client_for(AUDITOR)
        assert auditor.get("/api/v1/billing/instalment-plans/").status_code == 200
        body = {"network": network.pk, "year_start": "2026-01-01", "frequency": "monthly"}
        assert (
            auditor.post("/api/v1/billing/instalment-plans/", body, format="json").status_code
            == 403
        )


@pytest.mark.django_db
class TestFinalSettlementApi:
    def test_clerk_settles_a_closed_account_now_and_an_open_one_is_refused(self):
        from billing.models import InstalmentPlan
        from billing.services.aconto import instalment_plan_create
        from customers.models import Account, Contract

        network, contracts = billed_network(accounts=2)
        year = dt.date(2026, 1, 1)
        for contract in contracts:
            instalment_plan_create(
                account=contract.account, year_start=year, frequency="quarterly", now=NOW
            )
        bill_month(network, start=year, months=3, kind="instalment")
        leaves = contracts[1]
        Contract.objects.filter(pk=leaves.pk).update(valid_to=dt.date(2026, 3, 1))
        Account.objects.filter(pk=leaves.account_id).update(status=Account.Status.CLOSED)
        clerk = client_for(BILLING_CLERK)
        url = "/api/v1/billing/instalment-plans/{}/settle/"

        done = clerk.post(url.format(InstalmentPlan.objects.get(account=leaves.account).pk))
        assert done.status_code == 201, done.content
        assert (done.json()["kind"], done.json()["gross"]) == ("settlement", "-1360.98")
        again = clerk.post(url.format(InstalmentPlan.objects.get(account=leaves.account).pk))
        assert again.status_code == 409
        refused = clerk.post(
            url.format(InstalmentPlan.objects.get(account=contracts[0].account).pk)
        )
        assert refused.status_code == 422
        assert "is not closed" in refused.json()["message"]
        auditor = client_for(AUDITOR)
        assert auditor.post(url.format(InstalmentPlan.objects.first().pk)).status_code == 403


@pytest.mark.django_db
class TestPaymentBookedByHandWithItsBankId:
    """A credit an import could not place is booked by hand with the bank's id: the same
    statement imported again then finds it instead of booking it a second time."""

    def test_an_import_after_booking_by_hand_books_nothing_twice(self):
        from django.core.files.uploadedfile import SimpleUploadedFile

        from billing.models import Payment

        network, contracts = billed_network(accounts=1)
        bill_month(network)
        clerk = client_for(BILLING_CLERK)
        account = contracts[0].account
        booked = clerk.post(
            "/api/v1/billing/payments/",
            {
                "account": account.pk,
                "amount": "500.00",
                "received_on": "2026-12-05",
                "reference": "unreadable",
                "bank_transaction_id": "B-77",
            },
            format="json",
        )
        assert booked.status_code == 201, booked.json()
        statement = (
            "date,amount,reference,account,transaction_id\n"
            f"2026-12-05,500.00,unreadable,{account.number},B-77\n"
        )

        result = clerk.post(
            "/api/v1/billing/payments/import/",
            {"file": SimpleUploadedFile("statement.csv", statement.encode())},
            format="multipart",
        ).json()

        assert (result["created"], result["duplicates"]) == (0, 1)
        assert Payment.objects.get().bank_transaction_id == "B-77"

    def test_an_amount_that_rounds_to_nothing_is_refused_on_its_field(self):
        from tests.customers.factories import AccountFactory, NetworkFactory

        account = AccountFactory(network=NetworkFactory(currency="ISK"))
        clerk = client_for(BILLING_CLERK)

        response = clerk.post(
            "/api/v1/billing/payments/",
            {"account": account.pk, "amount": "0.40", "received_on": "2026-12-05"},
            format="json",
        )

        assert response.status_code == 422
        assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
            ("amount", "invalid")
        ]

    def test_a_bank_id_recorded_already_is_refused_on_its_field(self):
        network, contracts = billed_network(accounts=1)
        bill_month(network)
        clerk = client_for(BILLING_CLERK)
        body = {
            "account": contracts[0].account_id,
            "amount": "10.00",
            "received_on": "2026-12-05",
            "bank_transaction_id": "B-78",
        }
        assert clerk.post("/api/v1/billing/payments/", body, format="json").status_code == 201

        again = clerk.post("/api/v1/billing/payments/", body, format="json")

        assert again.status_code == 400
        assert "bank_transaction_id" in str(again.json())


@pytest.mark.django_db
class TestRunExceptionsApi:
    """``GET runs/{id}/exceptions/`` comes a page at a time, as the other staff lists do: a
    run can fail for thousands of accounts (5,000 were 768 kB in one answer)."""

    URL = "/api/v1/billing/runs/{}/exceptions/"

    def run_failing(self, count: int) -> BillingRun:
        from billing.models import BillingRunException
        from tests.customers.factories import AccountFactory, NetworkFactory

        network = NetworkFactory()
        run = BillingRun.objects.create(
            network=network,
            period_start=dt.date(2026, 11, 1),
            period_end=dt.date(2026, 12, 1),
            created_at=NOW,
            state=BillingRun.State.DRAFTED,
        )
        # recorded in the reverse of the accounts' order (as a retry rewrites them)
        for account in reversed(AccountFactory.create_batch(count, network=network)):
            BillingRunException.objects.create(
                run=run, account=account, code="no_reads", error="No reads", created_at=NOW
            )
        return run

    def test_a_run_with_many_failed_accounts_lists_them_50_a_page_by_account(self):
        run = self.run_failing(55)
        auditor = client_for(AUDITOR)

        first = auditor.get(self.URL.format(run.pk))
        second = auditor.get(first.json()["next"])

        assert first.status_code == second.status_code == 200
        # was one list of all 55
        assert (first.json()["count"], len(first.json()["results"])) == (55, 50)
        assert (second.json()["next"], len(second.json()["results"])) == (None, 5)
        listed = [e["account"] for e in first.json()["results"] + second.json()["results"]]
        assert listed == sorted(run.exceptions.values_list("account_id", flat=True))

    def test_a_page_past_the_last_is_a_400_on_page(self):
        run = self.run_failing(2)

        response = client_for(AUDITOR).get(self.URL.format(run.pk) + "?page=2")

        assert response.status_code == 400
        assert [e["field"] for e in response.json()["errors"]] == ["page"]

    def test_open_or_resolved_ones_and_one_code_alone(self):
        run = self.run_failing(4)
        first, second, third, fourth = run.exceptions.order_by("account_id")
        run.exceptions.filter(pk__in=[first.pk, third.pk]).update(resolved=True)
        run.exceptions.filter(pk=second.pk).update(code="late_rerate")
        auditor = client_for(AUDITOR)

        def listed(query):
            response = auditor.get(self.URL.format(run.pk) + query)
            assert response.status_code == 200
            return [e["account"] for e in response.json()["results"]]

        assert listed("?resolved=true") == [first.account_id, third.account_id]
        assert listed("?resolved=false") == [second.account_id, fourth.account_id]
        assert listed("?resolved=false&code=late_rerate") == [second.account_id]
        assert len(listed("")) == 4
        bad = auditor.get(self.URL.format(run.pk) + "?resolved=perhaps")
        assert bad.status_code == 400
        assert [e["field"] for e in bad.json()["errors"]] == ["resolved"]

    def test_the_schema_describes_the_page(self):
        from drf_spectacular.generators import SchemaGenerator

        schema = SchemaGenerator().get_schema(request=None, public=True)
        operation = schema["paths"]["/api/v1/billing/runs/{id}/exceptions/"]["get"]

        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/PaginatedBillingRunExceptionList"}
        assert {"page", "resolved", "code"} <= {p["name"] for p in operation["parameters"]}
        assert "400" in operation["responses"]  # a bad ?page=
