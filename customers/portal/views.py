"""The customer portal: a customer sees only their own accounts, consumption and invoices.

Every query starts from ``customers.selectors.accounts_for_user``; an account number
that is not the caller's is a 404, never a 403, so numbers cannot be probed.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from billing import selectors as billing_selectors
from billing.documents import pdf_response
from customers import selectors
from customers.portal.forms import ConsumptionExportForm
from customers.services import portal_mail_context


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset view, its e-mail signed with the utility's name."""

    def form_valid(self, form):
        self.extra_email_context = portal_mail_context()
        return super().form_valid(form)


def _own_account_ids(user) -> list[int]:
    return list(selectors.accounts_for_user(user=user).values_list("pk", flat=True))


@login_required
def account_list(request):
    accounts = selectors.accounts_for_user(user=request.user).select_related("network", "customer")
    return render(request, "portal/accounts.html", {"accounts": accounts})


def _own_account(user, number: str):
    account = (
        selectors.accounts_for_user(user=user)
        .select_related("network", "customer")
        .filter(number=number)
        .first()
    )
    if account is None:
        raise Http404("No such account.")
    return account


@login_required
def account_detail(request, number: str):
    account = _own_account(request.user, number)
    today = timezone.localdate(timezone=ZoneInfo(account.network.time_zone))
    consumption = selectors.monthly_consumption(account=account, months=13, today=today)
    in_this_weather = billing_selectors.months_in_this_weather(
        network_id=account.network_id,
        months=[(m.month, m.same_month_last_year_mwh) for m in consumption],
    )
    invoices = billing_selectors.invoices_for_accounts(account_ids=[account.pk])
    reminders = billing_selectors.letters_for_accounts(account_ids=[account.pk])
    money = billing_selectors.account_money(account=account)
    plan = billing_selectors.plan_in_force(account_id=account.pk, on=today)
    contracts = account.contracts.select_related("connection", "connection__building").order_by(
        "-valid_from"
    )
    # instants on the page (an invoice's issue time) read as dates of the network's zone,
    # as its PDF and the exports print them, not of the server's TIME_ZONE
    with timezone.override(ZoneInfo(account.network.time_zone)):
        return render(
            request,
            "portal/account.html",
            {
                "account": account,
                "contracts": contracts,
                "consumption": [(m, in_this_weather.get(m.month)) for m in consumption],
                "invoices": invoices,
                "reminders": reminders,
                "money": money,
                "plan": plan,
                "as_of": today,
                "generated_at": dt.datetime.now(tz=dt.UTC),
            },
        )


@login_required
def consumption_csv(request, number: str):
    """The account's own consumption data as CSV (``start``, ``end``: local dates, end
    not included; ``resolution``: month, day or hour), see
    :func:`customers.selectors.consumption_csv`.  A bad query is a 400 naming the
    parameter; another customer's account a 404, whatever the query."""
    account = _own_account(request.user, number)
    today = timezone.localdate(timezone=ZoneInfo(account.network.time_zone))
    form = ConsumptionExportForm(request.GET, today=today)
    if not form.is_valid():
        reasons = "\n".join(
            f"{name}: {message}" for name, messages in form.errors.items() for message in messages
        )
        return HttpResponseBadRequest(reasons, content_type="text/plain; charset=utf-8")
    query = form.cleaned_data
    response = StreamingHttpResponse(
        selectors.consumption_csv(account=account, today=today, **query),
        content_type="text/csv; charset=utf-8",
    )
    name = re.sub(r"[^A-Za-z0-9-]", "_", account.number)
    response["Content-Disposition"] = (
        f'attachment; filename="consumption-{name}-{query["resolution"]}-'
        f'{query["start"]}-{query["end"]}.csv"'
    )
    return response


@login_required
def invoice_pdf(request, invoice_id: int):
    """The PDF of one of the caller's issued invoices; anything else is a 404."""
    invoice = billing_selectors.invoice_for_accounts(
        invoice_id=invoice_id, account_ids=_own_account_ids(request.user)
    )
    if invoice is None or not invoice.pdf:
        raise Http404("No such invoice document.")
    return pdf_response(invoice)


@login_required
def reminder_pdf(request, letter_id: int):
    """A dunning letter sent to one of the caller's accounts; anything else is a 404,
    exactly as for invoice PDFs."""
    letter = billing_selectors.letter_for_accounts(
        letter_id=letter_id, account_ids=_own_account_ids(request.user)
    )
    if letter is None or not letter.pdf:
        raise Http404("No such reminder letter.")
    return pdf_response(letter)


@login_required
def notice_reminder_pdf(request, notice_id: int):
    """The letter a dunning notice was sent in (links made when each notice was a letter
    of its own), scoped like :func:`reminder_pdf`."""
    letter = billing_selectors.letter_of_notice_for_accounts(
        notice_id=notice_id, account_ids=_own_account_ids(request.user)
    )
    if letter is None or not letter.pdf:
        raise Http404("No such reminder letter.")
    return pdf_response(letter)
