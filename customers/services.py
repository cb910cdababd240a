"""Writes for customers, accounts and contracts (move-in, move-out)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction

from customers.models import (
    Account,
    AreaChange,
    Building,
    CapacityChange,
    Contract,
    ServiceConnection,
)
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


class UnableToChangeCapacity(DomainError):
    code = "unable_to_change_capacity"


def connection_capacity_change(
    *,
    connection: ServiceConnection,
    capacity_kw: Decimal,
    valid_from: dt.date,
    actor=None,
    reason: str = "",
) -> CapacityChange:
    """Contract ``capacity_kw`` for ``connection`` from ``valid_from`` (local date) on.

    Back-dated changes are allowed (a signed upgrade entered late): billing re-rates the
    periods already billed that the change reaches into.  The connection's own
    ``contracted_capacity_kw`` follows the kW in force today.
    """
    from customers.selectors import capacity_on

    with transaction.atomic():
        connection = ServiceConnection.objects.select_for_update().get(pk=connection.pk)
        previous = capacity_on(connection=connection, day=valid_from - dt.timedelta(days=1))
        if capacity_on(connection=connection, day=valid_from) == capacity_kw:
            raise UnableToChangeCapacity(
                f"Connection {connection.number} is contracted for {capacity_kw} kW on "
                f"{valid_from.isoformat()} already.",
                errors=[ErrorItem(code="unchanged", field="capacity_kw", message="unchanged")],
            )
        change = CapacityChange(
            connection=connection,
            valid_from=valid_from,
            capacity_kw=capacity_kw,
            previous_kw=previous,
            reason=reason,
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        clean_and_save(change, actor=actor, reason=reason or "capacity change", what="capacity")
        connection_capacity_sync(connection=connection)
    return change


def connection_capacity_sync(
    *, connection: ServiceConnection, today: dt.date | None = None
) -> bool:
    """Set the connection's ``contracted_capacity_kw`` to the kW in force today (local
    date of its network); True when it changed (a change dated ahead has come due)."""
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    from customers.selectors import capacity_on

    today = today or timezone.now().astimezone(ZoneInfo(connection.network.time_zone)).date()
    kw = capacity_on(connection=connection, day=today)
    if kw == connection.contracted_capacity_kw:
        return False
    connection.contracted_capacity_kw = kw
    clean_and_save(connection, reason="capacity change in force", what="connection")
    return True


def capacities_sync_due() -> int:
    """Beat: connections whose capacity change dated ahead has come due (see
    :func:`connection_capacity_sync`); returns how many changed."""
    ids = CapacityChange.objects.values("connection_id").distinct()
    return sum(
        connection_capacity_sync(connection=connection)
        for connection in ServiceConnection.objects.filter(pk__in=ids).select_related("network")
    )


class UnableToChangeArea(DomainError):
    code = "unable_to_change_area"


def building_area_change(
    *,
    building: Building,
    heated_area_m2: Decimal,
    valid_from: dt.date,
    actor=None,
    reason: str = "",
) -> AreaChange:
    """Heated floor area ``heated_area_m2`` of ``building`` from ``valid_from`` (local
    date) on, for every connection of the building.

    Back-dated changes are allowed (an extension registered late): billing re-rates the
    periods already billed that the change reaches into.  The building's own
    ``heated_area_m2`` follows the m² in force today.
    """
    from customers.selectors import area_on

    with transaction.atomic():
        building = Building.objects.select_for_update().get(pk=building.pk)
        previous = area_on(building=building, day=valid_from - dt.timedelta(days=1))
        if area_on(building=building, day=valid_from) == heated_area_m2:
            raise UnableToChangeArea(
                f"{building} has {heated_area_m2} m² on {valid_from.isoformat()} already.",
                errors=[ErrorItem(code="unchanged", field="heated_area_m2", message="unchanged")],
            )
        change = AreaChange(
            building=building,
            valid_from=valid_from,
            heated_area_m2=heated_area_m2,
            previous_m2=previous,
            reason=reason,
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        clean_and_save(change, actor=actor, reason=reason or "area change", what="area")
        building_area_sync(building=building)
    return change


def _building_today(building: Building) -> dt.date:
    """Today in the zone of the building's network (of its first connection; the
    default zone when it has none)."""
    from zoneinfo import ZoneInfo

    from django.conf import settings
    from django.utils import timezone

    zone = (
        ServiceConnection.objects.filter(building=building)
        .order_by("pk")
        .values_list("network__time_zone", flat=True)
        .first()
    ) or settings.TIME_ZONE
    return timezone.now().astimezone(ZoneInfo(zone)).date()


def building_area_sync(*, building: Building, today: dt.date | None = None) -> bool:
    """Set the building's ``heated_area_m2`` to the m² in force today (local date of its
    network); True when it changed (a change dated ahead has come due)."""
    from customers.selectors import area_on

    today = today or _building_today(building)
    m2 = area_on(building=building, day=today)
    if m2 == building.heated_area_m2:
        return False
    building.heated_area_m2 = m2
    clean_and_save(building, reason="area change in force", what="building")
    return True


def areas_sync_due() -> int:
    """Beat: buildings whose area change dated ahead has come due (see
    :func:`building_area_sync`); returns how many changed."""
    ids = AreaChange.objects.values("building_id").distinct()
    return sum(
        building_area_sync(building=building) for building in Building.objects.filter(pk__in=ids)
    )
