"""Reads for customers: who is supplied where, and when."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q, QuerySet

from customers.models import Account, Contract


def contracts_active_between(
    *, network_id: int, start: dt.date, end: dt.date
) -> QuerySet[Contract]:
    """Contracts of a network that supply any day of the local range ``[start, end)``."""
    return (
        Contract.objects.filter(connection__network_id=network_id, valid_from__lt=end)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=start))
        .select_related("account", "connection", "connection__building")
    )


def accounts_for_user(*, user) -> QuerySet[Account]:
    """The accounts a portal user may see: only their own customer's."""
    if not user.is_authenticated:
        return Account.objects.none()
    return Account.objects.filter(customer__user=user)
