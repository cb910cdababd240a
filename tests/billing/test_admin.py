import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from billing.models import BillingRun, Invoice
from tests.billing.factories import billed_network
from tests.billing.helpers import bill_month


@pytest.fixture
def admin_client_(client):
    user = User.objects.create_superuser("boss", "boss@example.org", "pw")
    client.force_login(user)
    return client


@pytest.mark.django_db
class TestBillingAdmin:
    def test_run_list_shows_a_progress_bar(self, admin_client_):
        network, _ = billed_network(accounts=2)
        bill_month(network, issue=False)
        page = admin_client_.get("/admin/billing/billingrun/").content.decode()
        assert "2 / 2 (100%)" in page

    def test_a_run_the_service_refuses_is_shown_on_the_form_and_not_created(self, admin_client_):
        import html
        import re

        network, _ = billed_network(accounts=1)
        bill_month(network, start=dt.date(2026, 10, 1), issue=False)  # October has a run
        page = admin_client_.get("/admin/billing/billingrun/add/").content.decode()
        inline = dict(re.findall(r'name="([^"]+-(?:TOTAL|INITIAL)_FORMS)"[^>]*value="(\d+)"', page))

        def add(start, end):
            form = {"network": network.pk, "kind": "invoice", "period_start": start,
                    "period_end": end, "chunk_size": 100, **inline}  # fmt: skip
            return admin_client_.post("/admin/billing/billingrun/add/", form)

        for (start, end), reason in [
            (("2026-10-01", "2026-11-01"), "already has a billing run (periodic invoices)"),
            (("2026-09-15", "2026-10-01"), "A billing period starts on the first day of a month."),
            (
                ("2026-09-01", "2026-10-15"),
                "A period from 2026-09-01 ends on 2026-10-01, not 2026-10-15.",
            ),
            (("2099-01-01", "2099-02-01"), "[2099-01-01, 2099-02-01) has not ended yet"),
        ]:
            response = add(start, end)
            assert response.status_code == 200  # the form again, with the reason
            assert reason in html.unescape(response.content.decode())
        assert BillingRun.objects.count() == 1
        assert add("2026-09-01", "2026-10-01").status_code == 302
        assert BillingRun.objects.count() == 2

    def test_run_actions_are_refused_to_roles_that_only_view_runs(self, client):
        from heatutility.roles import AUDITOR
        from tests.billing.helpers import staff_user

        network, _ = billed_network(accounts=1)
        run = bill_month(network, issue=False)
        client.force_login(staff_user(AUDITOR))
        changelist = client.get("/admin/billing/billingrun/").content.decode()
        assert 'value="cancel_runs"' not in changelist
        assert 'value="resume_runs"' not in changelist
        client.post(
            "/admin/billing/billingrun/", {"action": "cancel_runs", "_selected_action": [run.pk]}
        )
        run.refresh_from_db()
        assert run.state == BillingRun.State.DRAFTED
        assert Invoice.objects.get().state == Invoice.State.DRAFT

    def test_resuming_a_cancelled_run_is_refused_with_a_message(self, admin_client_):
        network, _ = billed_network(accounts=1)
        run = bill_month(network, issue=False)
        for action in ("cancel_runs", "resume_runs"):
            response = admin_client_.post(
                "/admin/billing/billingrun/",
                {"action": action, "_selected_action": [run.pk]},
                follow=True,
            )
        assert response.status_code == 200
        assert "The run is cancelled." in response.content.decode()
        run.refresh_from_db()
        assert run.state == BillingRun.State.CANCELLED

    def test_release_action_releases_held_drafts(self, admin_client_):
        network, _ = billed_network(accounts=1)
        bill_month(network, issue=False)
        invoice = Invoice.objects.get()
        Invoice.objects.filter(pk=invoice.pk).update(held=True, hold_reason="check")
        BillingRun.objects.update(held=1)
        admin_client_.post(
            "/admin/billing/invoice/",
            {"action": "release", "_selected_action": [invoice.pk]},
        )
        invoice.refresh_from_db()
        assert not invoice.held
        assert BillingRun.objects.get().held == 0

    def test_credit_then_rebill_actions_and_who_sees_them(self, admin_client_, client):
        from heatutility.roles import AUDITOR, BILLING_CLERK
        from tests.billing.helpers import staff_user

        network, _ = billed_network(accounts=1)
        bill_month(network)
        invoice = Invoice.objects.get()
        for action in ("credit", "rebill"):
            page = admin_client_.post(
                "/admin/billing/invoice/",
                {"action": action, "_selected_action": [invoice.pk]},
                follow=True,
            ).content.decode()
        assert "Billed 1 invoice(s) again." in page
        correction = Invoice.objects.get(kind="correction")
        assert (correction.original_id, correction.gross) == (invoice.pk, invoice.gross)
        # the verbs follow the roles' permissions, as in the API
        for role, shown in ((BILLING_CLERK, True), (AUDITOR, False)):
            client.force_login(staff_user(role))
            changelist = client.get("/admin/billing/invoice/").content.decode()
            assert ('value="rebill"' in changelist) is shown
            assert ('value="credit"' in changelist) is shown

    def test_invoice_and_payment_pages_render(self, admin_client_):
        network, _ = billed_network(accounts=1)
        bill_month(network)
        invoice = Invoice.objects.get()
        assert admin_client_.get(f"/admin/billing/invoice/{invoice.pk}/change/").status_code == 200
        assert admin_client_.get("/admin/billing/payment/").status_code == 200
        assert admin_client_.get("/admin/billing/payment/import/").status_code == 200


@pytest.mark.django_db
class TestRefundAdmin:
    def test_add_takes_it_from_the_credit_and_refuses_more(self, admin_client_):
        import datetime as dt
        from decimal import Decimal

        from billing.models import Refund
        from billing.services.payments import account_credit, payment_record
        from tests.billing.helpers import NOW

        network, (contract,) = billed_network(accounts=1)
        bill_month(network)
        account = contract.account
        payment_record(
            account=account, amount=Decimal("2000.00"), received_on=dt.date(2026, 12, 5), now=NOW
        )
        assert account_credit(account=account) == Decimal("639.02")  # 2,000.00 − 1,360.98

        too_much = admin_client_.post(
            "/admin/billing/refund/add/",
            {"account": account.pk, "amount": "639.03", "paid_on": "2026-12-20", "reference": ""},
        )
        assert too_much.status_code == 200
        assert "holds 639.02 DKK of credit" in too_much.content.decode()
        assert not Refund.objects.exists()

        done = admin_client_.post(
            "/admin/billing/refund/add/",
            {"account": account.pk, "amount": "639.02", "paid_on": "2026-12-20", "reference": "x"},
        )
        assert done.status_code == 302
        refund = Refund.objects.get()
        assert refund.parts.get().amount == Decimal("639.02")
        assert account_credit(account=account) == Decimal("0.00")
        assert admin_client_.get(f"/admin/billing/refund/{refund.pk}/change/").status_code == 200


@pytest.mark.django_db
class TestInstalmentPlanningAdmin:
    def test_add_plans_the_listed_accounts_and_reports_the_rest(self, admin_client_):
        from billing.models import InstalmentPlan
        from metering.models import BoundaryRegister

        network, contracts = billed_network(accounts=3)
        missing = contracts[1]
        BoundaryRegister.objects.filter(
            connection=missing.connection, on=dt.date(2025, 1, 1)
        ).delete()
        numbers = f"{contracts[0].account.number}, {missing.account.number}"
        form = {"network": network.pk, "year_start": "2026-01-01", "frequency": "monthly"}

        refused = admin_client_.post(
            "/admin/billing/instalmentplan/add/", {**form, "accounts": numbers + " X-404"}
        )
        assert refused.status_code == 200
        assert f"Not an account of {network.code}: X-404" in refused.content.decode()
        assert InstalmentPlan.objects.count() == 0

        done = admin_client_.post(
            "/admin/billing/instalmentplan/add/", {**form, "accounts": numbers}, follow=True
        )
        page = done.content.decode()
        assert (
            "Planned 1 account(s); 0 already had a plan for the year; 1 could not be planned."
            in page
        )
        assert f"Account {missing.account.number}: No register value for connection" in page
        plan = InstalmentPlan.objects.get()
        assert (plan.account_id, plan.estimated_mwh) == (contracts[0].account_id, 18)
        change = admin_client_.get(f"/admin/billing/instalmentplan/{plan.pk}/change/")
        assert change.status_code == 200
        assert 'name="estimated_mwh"' not in change.content.decode()  # computed, read-only

    def test_a_planning_left_to_the_workers_opens_its_own_page(self, admin_client_, monkeypatch):
        from billing import tasks
        from billing.models import InstalmentPlanning

        network, _ = billed_network(accounts=1)
        monkeypatch.setattr(tasks.instalment_planning_run, "delay", lambda planning_id: None)
        form = {"network": network.pk, "year_start": "2026-01-01", "frequency": "monthly"}

        response = admin_client_.post("/admin/billing/instalmentplan/add/", form, follow=True)

        planning = InstalmentPlanning.objects.get()
        assert response.redirect_chain[-1][0] == (
            f"/admin/billing/instalmentplanning/{planning.pk}/change/"
        )
        assert f"{planning} is queued on the workers" in response.content.decode()

    def test_final_settlement_action_settles_closed_accounts_and_names_refusals(
        self, admin_client_
    ):
        from billing.models import InstalmentPlan
        from billing.services.aconto import instalment_plan_create
        from customers.models import Account, Contract
        from tests.billing.helpers import NOW

        _network, contracts = billed_network(accounts=2)
        for contract in contracts:
            instalment_plan_create(
                account=contract.account, year_start=dt.date(2026, 1, 1), frequency="monthly",
                now=NOW,
            )  # fmt: skip
        leaves = contracts[1]
        Contract.objects.filter(pk=leaves.pk).update(valid_to=dt.date(2026, 3, 1))
        Account.objects.filter(pk=leaves.account_id).update(status=Account.Status.CLOSED)
        page = admin_client_.post(
            "/admin/billing/instalmentplan/",
            {"action": "final_settlement",
             "_selected_action": list(InstalmentPlan.objects.values_list("pk", flat=True))},
            follow=True,
        ).content.decode()  # fmt: skip
        settled = Invoice.objects.get(kind="settlement")
        assert settled.account_id == leaves.account_id
        assert f"final settlement {settled.display_number} issued" in page
        assert f"Account {contracts[0].account.number} is not closed." in page


@pytest.mark.django_db
def test_a_payment_booked_in_the_admin_keeps_the_banks_id(admin_client_):
    from billing.models import Payment

    network, contracts = billed_network(accounts=1)
    bill_month(network)
    form = {
        "account": contracts[0].account_id,
        "amount": "25.00",
        "received_on": "2026-12-05",
        "reference": "",
        "bank_transaction_id": " B-79 ",
    }

    response = admin_client_.post("/admin/billing/payment/add/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Payment.objects.get().bank_transaction_id == "B-79"
    again = admin_client_.post("/admin/billing/payment/add/", form)
    assert again.status_code == 200  # the form again, with the error
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_an_admin_payment_that_rounds_to_nothing_is_refused_on_its_field(admin_client_):
    """ISK has no minor unit: 0.40 ISK passes the form's two decimals but is nothing once
    rounded; the form says so on the amount (it was a server error), nothing is stored."""
    from billing.models import Payment
    from tests.customers.factories import AccountFactory, NetworkFactory

    account = AccountFactory(network=NetworkFactory(currency="ISK"))
    form = {
        "account": account.pk,
        "amount": "0.40",
        "received_on": "2026-12-05",
        "reference": "",
        "bank_transaction_id": "",
    }

    response = admin_client_.post("/admin/billing/payment/add/", form)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["amount"] == [
        "A payment amount must be positive (0.40 ISK is 0 once rounded to the currency)."
    ]
    assert not Payment.objects.exists()
    booked = admin_client_.post("/admin/billing/payment/add/", {**form, "amount": "1.00"})
    assert booked.status_code == 302
    assert Payment.objects.get().amount == Decimal("1")


@pytest.mark.django_db
def test_an_admin_payment_dated_out_of_range_is_refused_on_its_field(admin_client_):
    """The API and the statement import refuse a payment dated 0026-12-05 (a typo for
    2026): no journal export reaches it, so the journal would not reconcile."""
    from billing.models import Payment
    from heatutility.timeutil import DATE_OUT_OF_RANGE
    from tests.customers.factories import AccountFactory, NetworkFactory

    account = AccountFactory(network=NetworkFactory(currency="DKK"))
    form = {
        "account": account.pk,
        "amount": "100.00",
        "received_on": "0026-12-05",
        "reference": "",
        "bank_transaction_id": "",
    }

    response = admin_client_.post("/admin/billing/payment/add/", form)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["received_on"] == [DATE_OUT_OF_RANGE]
    assert not Payment.objects.exists()


@pytest.mark.django_db
class TestInvoiceListAtScale:
    """The invoice list must not sort or scan every invoice to show its first page: a
    year of monthly bills at 100,000 accounts is 1.2 million rows (2 s a page before)."""

    def test_newest_documents_first_and_a_filter_by_billing_period(self, admin_client_):
        from django.contrib.admin.sites import site

        network, _ = billed_network(accounts=2)
        october = bill_month(
            network, start=dt.date(2026, 10, 1), now=dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
        )
        november = bill_month(network)
        newest_first = list(Invoice.objects.order_by("-id").values_list("pk", flat=True))

        page = admin_client_.get("/admin/billing/invoice/")
        assert [o.pk for o in page.context["cl"].result_list] == newest_first
        # no date hierarchy: its MIN/MAX and DISTINCT over every invoice took 0.7 s a page
        assert site._registry[Invoice].date_hierarchy is None

        by_period = admin_client_.get("/admin/billing/invoice/?period=2026-10-01..2026-11-01")
        shown = [o.pk for o in by_period.context["cl"].result_list]
        assert shown == list(october.invoices.order_by("-id").values_list("pk", flat=True)) != []
        assert "November 2026" in page.content.decode()  # the filter's choices: the runs
        assert november.period_start == dt.date(2026, 11, 1)

    def test_the_first_page_reads_the_primary_key_not_a_sort(self, admin_client_):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        network, _ = billed_network(accounts=1)
        bill_month(network)
        with CaptureQueriesContext(connection) as queries:
            admin_client_.get("/admin/billing/invoice/")
        listing = [
            q["sql"] for q in queries if q["sql"].startswith('SELECT "billing_invoice"."id"')
        ]
        assert listing
        for sql in listing:
            assert sql.split(" ORDER BY ")[1].split(" LIMIT ")[0] == '"billing_invoice"."id" DESC'
