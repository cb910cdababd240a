"""Writes for customers, accounts and contracts (move-in, move-out)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from customers.models import Account, Contract, ServiceConnection
from heatutility.audit import clean_and_save
from heatutility.errors import ConflictError, DomainError, ErrorItem


class UnableToMoveIn(DomainError):
    code = "unable_to_move_in"


class UnableToMoveOut(DomainError):
    code = "unable_to_move_out"


def contract_move_in(
    *,
    account: Account,
    connection: ServiceConnection,
    move_in_on: dt.date,
    actor=None,
    end_previous: bool = False,
) -> Contract:
    """Start supplying ``account`` on ``connection`` from ``move_in_on`` (local date).

    With ``end_previous`` an open contract of a previous occupant ends the same day (the
    usual tenant change); otherwise an overlapping contract is refused.
    """
    errors: list[ErrorItem] = []
    if account.network_id != connection.network_id:
        errors.append(
            ErrorItem(
                code="network_mismatch",
                field="connection",
                message=f"Account {account.number} is billed by another network than connection {connection.number}.",
            )
        )
    if connection.status == ServiceConnection.Status.DISCONNECTED:
        errors.append(
            ErrorItem(
                code="disconnected",
                field="connection",
                message=f"Connection {connection.number} is disconnected.",
            )
        )
    if account.status != Account.Status.ACTIVE:
        errors.append(
            ErrorItem(
                code="account_not_active",
                field="account",
                message=f"Account {account.number} is {account.get_status_display().lower()}.",
            )
        )
    if errors:
        raise UnableToMoveIn(
            "Cannot move in: " + "; ".join(e.message for e in errors), errors=errors
        )

    with transaction.atomic():
        # Lock the connection so that two move-ins on it are serialised.
        ServiceConnection.objects.select_for_update().get(pk=connection.pk)
        if end_previous:
            previous = (
                Contract.objects.select_for_update()
                .filter(connection=connection, valid_from__lt=move_in_on, valid_to__isnull=True)
                .first()
            )
            if previous is not None:
                contract_move_out(contract=previous, move_out_on=move_in_on, actor=actor)
        contract = Contract(account=account, connection=connection, valid_from=move_in_on)
        return clean_and_save(contract, actor=actor, reason="move-in", what="contract")


def contract_move_out(*, contract: Contract, move_out_on: dt.date, actor=None) -> Contract:
    """End ``contract`` so that ``move_out_on`` is the first day no longer supplied."""
    if contract.valid_to is not None and contract.valid_to <= move_out_on:
        raise UnableToMoveOut(
            f"The contract already ended on {contract.valid_to.isoformat()}.",
            errors=[ErrorItem(code="already_ended", field="move_out_on", message="already ended")],
        )
    if move_out_on <= contract.valid_from:
        raise UnableToMoveOut(
            f"Move-out {move_out_on.isoformat()} must be after move-in {contract.valid_from.isoformat()}.",
            errors=[
                ErrorItem(
                    code="before_move_in", field="move_out_on", message="must be after move-in"
                )
            ],
        )
    contract.valid_to = move_out_on
    return clean_and_save(contract, actor=actor, reason="move-out", what="contract")


def account_set_status(*, account: Account, status: str, actor=None, reason: str = "") -> Account:
    if status == Account.Status.CLOSED and account.contracts.filter(valid_to__isnull=True).exists():
        raise ConflictError(
            f"Account {account.number} still has an open contract; move out first.",
            errors=[ErrorItem(code="open_contract", field="status", message="open contract")],
        )
    account.status = status
    return clean_and_save(account, actor=actor, reason=reason, what="account")
