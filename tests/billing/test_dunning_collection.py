"""Debt collection after the final notice: the daily dunning run hands an invoice still
open after the final notice's pay-by date over (one ``CollectionCase`` per invoice, with
the reminder fees charged for it), sends nothing more for it, and the case settles when
what it hands over is paid or credited; staff mark cases handed over or withdraw them and
export the open ones for the collection agency."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from billing import selectors
from billing.models import (
    CollectionCase,
    DunningLetter,
    DunningNotice,
    Invoice,
    InvoiceNumberCounter,
)
from billing.services.dunning import dunning_run
from billing.services.invoices import invoice_credit
from billing.services.payments import account_balance, payment_record
from heatutility.roles import AUDITOR, BILLING_CLERK
from tests.billing.helpers import api_client, staff_user
from tests.billing.test_dunning import MONTH_GROSS, at, late, october_billed

# the default ladder on October's invoice (due 15 November): reminders 22 November (no
# fee), 6 December (100.00) and the final notice 20 December (100.00), pay by 30 December
FINAL_PAY_BY = dt.date(2026, 12, 30)
FEES = Decimal("200.00")


def final_notice_sent():
    """October billed (1360.98) and dunned through the default ladder.  Returns
    (network, account, october)."""
    network, account, october = october_billed()
    for days in (7, 21, 35):
        dunning_run(now=late(days))
    assert late(45).date() == FINAL_PAY_BY
    october.refresh_from_db()
    return network, account, october


def dunning_state():
    return (
        list(DunningLetter.objects.values_list("pk", "level", "fee_invoice_id")),
        list(DunningNotice.objects.values_list("pk", "invoice_id", "level")),
        list(Invoice.objects.values_list("pk", "number", "state", "paid")),
        InvoiceNumberCounter.objects.get(series="INV-2026").last_number,
        list(CollectionCase.objects.values_list("pk", "invoice_id", "state", "open_amount")),
    )


def fee_invoices_of(account) -> list[Invoice]:
    return list(
        Invoice.objects.filter(account=account, kind=Invoice.Kind.REMINDER_FEE).order_by("number")
    )


@pytest.mark.django_db
class TestHandover:
    def test_not_before_the_final_notices_pay_by_date_has_passed(self):
        _network, _account, october = final_notice_sent()

        dunning_run(now=late(45))  # the pay-by date itself: the customer may still pay today

        assert october.state == Invoice.State.OVERDUE
        assert not CollectionCase.objects.exists()

    def test_an_invoice_open_after_the_final_notice_is_handed_over_with_its_fees(self):
        _network, account, october = final_notice_sent()

        assert dunning_run(now=late(46)) == []  # no letter: the ladder is over

        case = CollectionCase.objects.get()
        assert (case.invoice_id, case.account_id, case.state) == (
            october.pk,
            account.pk,
            CollectionCase.State.OPEN,
        )
        assert october.gross == MONTH_GROSS == Decimal("1360.98")
        # what the project calls open: the invoice's gross less what is allocated, and the
        # reminder-fee invoices its letters charged (100.00 + 100.00)
        assert (case.open_amount, case.fee_amount, case.currency) == (
            Decimal("1560.98"),
            FEES,
            "DKK",
        )
        assert sorted(f.fee_invoice_id for f in case.fees.all()) == [
            f.pk for f in fee_invoices_of(account)
        ]
        assert case.opened_on == dt.date(2026, 12, 31)
        assert case.created_at == late(46)
        assert account_balance(account=account) == Decimal("1560.98")

    def test_running_again_records_nothing_more_and_sends_no_letter_or_fee(self):
        final_notice_sent()
        dunning_run(now=late(46))
        state = dunning_state()

        assert dunning_run(now=late(46) + dt.timedelta(hours=12)) == []
        assert dunning_run(now=late(60)) == []
        assert dunning_run(now=late(120)) == []

        assert dunning_state() == state
        assert CollectionCase.objects.count() == 1

    def test_the_database_refuses_a_second_case_for_an_invoice(self):
        final_notice_sent()
        dunning_run(now=late(46))
        case = CollectionCase.objects.get()

        with pytest.raises(IntegrityError), transaction.atomic():
            CollectionCase.objects.create(
                invoice=case.invoice,
                account=case.account,
                currency="DKK",
                open_amount=Decimal("1.00"),
                opened_on=case.opened_on,
                created_at=late(47),
            )

    def test_a_partly_paid_invoices_case_is_what_remains(self):
        _network, account, october = final_notice_sent()
        # 500.00 after the final notice: oldest due first, all of it on October
        payment_record(
            account=account,
            amount=Decimal("500.00"),
            received_on=dt.date(2026, 12, 24),
            now=late(39),
        )

        dunning_run(now=late(46))

        case = CollectionCase.objects.get()
        october.refresh_from_db()
        assert october.paid == Decimal("500.00")
        assert (case.open_amount, case.fee_amount) == (Decimal("1060.98"), FEES)

    def test_an_invoice_paid_before_the_handover_is_not_handed_over_nor_its_paid_fees(self):
        _network, account, october = final_notice_sent()
        payment_record(
            account=account,
            amount=Decimal("1460.98"),
            received_on=dt.date(2026, 12, 24),
            now=late(39),
        )  # October and the first fee (due 16 December); the final notice's fee is left

        dunning_run(now=late(46))

        october.refresh_from_db()
        assert october.state == Invoice.State.PAID
        assert not CollectionCase.objects.exists()
        assert account_balance(account=account) == Decimal("100.00")

    def test_a_credited_invoice_is_not_handed_over(self):
        _network, _account, october = final_notice_sent()
        invoice_credit(invoice=october, now=late(40))

        dunning_run(now=late(46))

        assert not CollectionCase.objects.exists()

    def test_an_account_whose_credit_covers_it_is_not_handed_over(self):
        _network, account, _october = final_notice_sent()
        from tests.billing.test_dunning import unallocated_payment

        unallocated_payment(account, "1560.98", dt.date(2026, 12, 29))

        dunning_run(now=late(46))

        assert not CollectionCase.objects.exists()
        assert account_balance(account=account) == Decimal("0.00")


@pytest.mark.django_db
class TestSettlement:
    def handed_over(self):
        _network, account, october = final_notice_sent()
        dunning_run(now=late(46))
        return account, october, CollectionCase.objects.get()

    def test_payment_in_full_settles_the_case(self):
        account, _october, case = self.handed_over()

        payment_record(
            account=account,
            amount=Decimal("1560.98"),
            received_on=dt.date(2027, 1, 5),
            now=late(51),
        )

        case.refresh_from_db()
        assert case.state == CollectionCase.State.SETTLED
        assert case.settled_on == dt.date(2027, 1, 5)
        assert account_balance(account=account) == Decimal("0.00")

    def test_a_payment_of_the_invoice_alone_leaves_the_fees_open_in_the_case(self):
        account, october, case = self.handed_over()

        payment_record(
            account=account, amount=MONTH_GROSS, received_on=dt.date(2027, 1, 5), now=late(51)
        )

        case.refresh_from_db()
        october.refresh_from_db()
        assert october.state == Invoice.State.PAID
        assert (case.state, case.settled_on) == (CollectionCase.State.OPEN, None)

    def test_crediting_what_was_handed_over_settles_a_case_handed_over(self):
        account, october, case = self.handed_over()
        from billing.services.collection import collection_case_hand_over

        collection_case_hand_over(case=case, user=None, now=late(47))
        # credited in full, October was never owed: its letters' fees are credited with it
        invoice_credit(invoice=october, now=late(50))

        case.refresh_from_db()
        assert case.state == CollectionCase.State.SETTLED
        assert case.settled_on == dt.date(2027, 1, 4)
        assert [fee.state for fee in fee_invoices_of(account)] == [Invoice.State.PAID] * 2
        assert account_balance(account=account) == Decimal("0.00")

    def test_a_withdrawn_case_stays_withdrawn_when_paid(self):
        account, _october, case = self.handed_over()
        from billing.services.collection import collection_case_withdraw

        collection_case_withdraw(
            case=case, reason="Disputed by the customer", user=None, now=late(47)
        )
        payment_record(
            account=account,
            amount=Decimal("1560.98"),
            received_on=dt.date(2027, 1, 5),
            now=late(51),
        )

        case.refresh_from_db()
        assert case.state == CollectionCase.State.WITHDRAWN
        assert "Disputed by the customer" in case.note
        dunning_run(now=late(60))
        assert CollectionCase.objects.count() == 1


@pytest.mark.django_db
class TestCollectionExport:
    def test_one_row_per_open_case_with_the_customer_and_the_letters_sent(self):
        _network, account, october = final_notice_sent()
        dunning_run(now=late(46))

        rows = list(csv.reader(io.StringIO("".join(selectors.collection_cases_csv()))))

        assert rows[0] == selectors.COLLECTION_EXPORT_COLUMNS
        assert rows[1:] == [
            [
                account.number,
                account.customer.name,
                f"{account.billing_street}, {account.billing_postal_code} "
                f"{account.billing_city}, {account.billing_country}",
                october.display_number,
                "2026-11-15",
                "DKK",
                "1360.98",
                "200.00",
                "1560.98",
                "2026-12-31",
                "2026-11-22 Payment reminder; 2026-12-06 Second reminder; "
                "2026-12-20 Final notice before disconnection",
            ]
        ]

    def test_a_case_whose_invoice_is_paid_exports_the_fees_still_open(self):
        _network, account, _october = final_notice_sent()
        dunning_run(now=late(46))
        payment_record(
            account=account, amount=MONTH_GROSS, received_on=dt.date(2027, 1, 5), now=late(51)
        )

        rows = list(csv.DictReader(io.StringIO("".join(selectors.collection_cases_csv()))))

        assert [(r["principal_open"], r["fees_open"], r["amount_open"]) for r in rows] == [
            ("0.00", "200.00", "200.00")
        ]

    def test_cases_handed_over_settled_or_withdrawn_are_not_exported(self):
        final_notice_sent()
        dunning_run(now=late(46))
        from billing.services.collection import collection_case_hand_over

        collection_case_hand_over(case=CollectionCase.objects.get(), user=None, now=late(47))

        rows = list(csv.reader(io.StringIO("".join(selectors.collection_cases_csv()))))

        assert rows == [selectors.COLLECTION_EXPORT_COLUMNS]

    def test_a_clerk_downloads_it_from_the_api(self):
        network, account, _october = final_notice_sent()
        dunning_run(now=late(46))

        response = api_client(staff_user(BILLING_CLERK)).get(
            f"/api/v1/billing/exports/collection-cases.csv?network={network.pk}"
        )

        assert response.status_code == 200
        assert response["Content-Type"] == "text/csv"
        body = b"".join(response.streaming_content).decode()
        assert account.number in body
        assert "1560.98" in body


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("boss", "b@example.org", "pw"))
    return client


@pytest.mark.django_db
class TestCollectionAdmin:
    def test_the_list_filters_by_state_and_network(self, superuser_client):
        network, account, _october = final_notice_sent()
        dunning_run(now=late(46))

        page = superuser_client.get(
            f"/admin/billing/collectioncase/?state=open&account__network__id__exact={network.pk}"
        )

        assert page.status_code == 200
        assert account.number in page.content.decode()
        assert "1560.98" in page.content.decode()
        other = superuser_client.get("/admin/billing/collectioncase/?state=settled")
        assert account.number not in other.content.decode()

    def test_a_clerk_marks_a_case_handed_over(self, client):
        final_notice_sent()
        dunning_run(now=late(46))
        case = CollectionCase.objects.get()
        client.force_login(staff_user(BILLING_CLERK))

        response = client.post(
            "/admin/billing/collectioncase/",
            {"action": "hand_over", "_selected_action": [case.pk], "reason": ""},
        )

        assert response.status_code == 302
        case.refresh_from_db()
        assert case.state == CollectionCase.State.HANDED_OVER
        assert case.handed_over_at is not None

    def test_a_withdrawal_needs_a_reason(self, superuser_client):
        final_notice_sent()
        dunning_run(now=late(46))
        case = CollectionCase.objects.get()

        refused = superuser_client.post(
            "/admin/billing/collectioncase/",
            {"action": "withdraw", "_selected_action": [case.pk], "reason": ""},
            follow=True,
        )
        case.refresh_from_db()
        assert case.state == CollectionCase.State.OPEN
        assert "reason" in refused.content.decode()

        superuser_client.post(
            "/admin/billing/collectioncase/",
            {"action": "withdraw", "_selected_action": [case.pk], "reason": "Paid by the landlord"},
        )

        case.refresh_from_db()
        assert case.state == CollectionCase.State.WITHDRAWN
        assert "Paid by the landlord" in case.note
        assert case.closed_at is not None

    def test_a_role_without_the_permission_is_refused(self, client):
        final_notice_sent()
        dunning_run(now=late(46))
        case = CollectionCase.objects.get()
        client.force_login(staff_user(AUDITOR))

        changelist = client.get("/admin/billing/collectioncase/")
        assert changelist.status_code == 200  # auditors see the cases
        assert 'value="hand_over"' not in changelist.content.decode()
        assert 'value="withdraw"' not in changelist.content.decode()
        for action in ("hand_over", "withdraw"):
            client.post(
                "/admin/billing/collectioncase/",
                {"action": action, "_selected_action": [case.pk], "reason": "x"},
            )

        case.refresh_from_db()
        assert case.state == CollectionCase.State.OPEN

    def test_the_export_action_streams_the_selected_open_cases(self, superuser_client):
        _network, account, _october = final_notice_sent()
        dunning_run(now=late(46))
        case = CollectionCase.objects.get()

        response = superuser_client.post(
            "/admin/billing/collectioncase/",
            {"action": "export_csv", "_selected_action": [case.pk], "reason": ""},
        )

        assert response.status_code == 200
        assert response["Content-Type"] == "text/csv"
        body = b"".join(response.streaming_content).decode()
        assert body.splitlines()[0] == ",".join(selectors.COLLECTION_EXPORT_COLUMNS)
        assert f"{account.number}," in body


def test_fixture_dates_are_the_ladders():
    assert at(FINAL_PAY_BY) == late(45)
