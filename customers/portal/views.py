"""The customer portal: a customer sees only their own accounts, consumption and invoices.

Every query starts from ``customers.selectors.accounts_for_user``; an account number
that is not the caller's is a 404, never a 403, so numbers cannot be probed.
"""

from __future__ import annotations

import datetime as dt
import importlib
from zoneinfo import ZoneInfo

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from customers import selectors


def _invoice_selector():
    """billing's read model of invoices, when the billing app offers one."""
    try:
        module = importlib.import_module("billing.selectors")
    except ImportError:
        return None
    return getattr(module, "invoices_for_accounts", None)


@login_required
def account_list(request):
    accounts = selectors.accounts_for_user(user=request.user).select_related("network", "customer")
    return render(request, "portal/accounts.html", {"accounts": accounts})


@login_required
def account_detail(request, number: str):
    account = (
        selectors.accounts_for_user(user=request.user)
        .select_related("network", "customer")
        .filter(number=number)
        .first()
    )
    if account is None:
        raise Http404("No such account.")
    today = timezone.localdate(timezone=ZoneInfo(account.network.time_zone))
    consumption = selectors.monthly_consumption(account=account, months=13, today=today)
    invoices_for_accounts = _invoice_selector()
    invoices = invoices_for_accounts(account_ids=[account.pk]) if invoices_for_accounts else []
    contracts = account.contracts.select_related("connection", "connection__building").order_by(
        "-valid_from"
    )
    return render(
        request,
        "portal/account.html",
        {
            "account": account,
            "contracts": contracts,
            "consumption": consumption,
            "invoices": invoices,
            "as_of": today,
            "generated_at": dt.datetime.now(tz=dt.UTC),
        },
    )
