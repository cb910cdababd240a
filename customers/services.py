"""Writes for customers, accounts and contracts (move-in, move-out)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction
from django.db.models import Q

from customers.models import (
    Account,
    AreaChange,
    Building,
    BuildingInterfaceUnit,
    CapacityChange,
    Contract,
    Network,
    ServiceConnection,
)
from heatutility.audit import clean_and_save
from heatutility.errors import ConflictError, DomainError, ErrorItem


class UnableToMoveIn(DomainError):
    code = "unable_to_move_in"


class UnableToMoveOut(DomainError):
    code = "unable_to_move_out"


def contract_supply_errors(
    *, account: Account, connection: ServiceConnection, move_in_on: dt.date, new: bool = True
) -> list[ErrorItem]:
    """Why ``account`` cannot be supplied on ``connection`` from ``move_in_on``: the
    move-in rules, shared with the admin's contract forms.  ``new``: also the status
    rules (a suspended account or a disconnected connection takes no new contract; an
    existing contract of one can still be corrected)."""
    errors: list[ErrorItem] = []
    if account.network_id != connection.network_id:
        errors.append(
            ErrorItem(
                code="network_mismatch",
                field="connection",
                message=f"Account {account.number} is billed by another network than connection {connection.number}.",
            )
        )
    if connection.connected_on is not None and move_in_on < connection.connected_on:
        errors.append(
            ErrorItem(
                code="before_connected",
                field="move_in_on",
                message=f"Connection {connection.number} was connected on "
                f"{connection.connected_on.isoformat()}, after {move_in_on.isoformat()}.",
            )
        )
    disconnected = new and connection.status == ServiceConnection.Status.DISCONNECTED
    if (
        not disconnected  # said below, once
        and connection.disconnected_on is not None
        and move_in_on >= connection.disconnected_on
    ):
        errors.append(
            ErrorItem(
                code="after_disconnected",
                field="move_in_on",
                message=f"Connection {connection.number} is disconnected from "
                f"{connection.disconnected_on.isoformat()}.",
            )
        )
    if not new:
        return errors
    if disconnected:
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
    return errors


def contract_end_errors(
    *,
    account: Account,
    connection: ServiceConnection,
    move_out_on: dt.date | None,
    today: dt.date | None = None,
) -> list[ErrorItem]:
    """Why a contract of ``account`` on ``connection`` cannot run until ``move_out_on``
    (None: open), shared with the admin's contract forms: no day is supplied from the
    connection's disconnection on (billing bills every contract day), and a closed
    account is no longer supplied after ``today`` (the network's local date unless
    given; see :func:`account_status_errors`)."""
    errors: list[ErrorItem] = []
    off = connection.disconnected_on
    if off is not None and (move_out_on is None or move_out_on > off):
        errors.append(
            ErrorItem(
                code="after_disconnected",
                field="move_out_on",
                message=f"Connection {connection.number} is disconnected from "
                f"{off.isoformat()}: the contract ends by then.",
            )
        )
    if account.status == Account.Status.CLOSED:
        if today is None:
            from zoneinfo import ZoneInfo

            from django.utils import timezone

            today = timezone.now().astimezone(ZoneInfo(account.network.time_zone)).date()
        if move_out_on is None or move_out_on > today:
            errors.append(
                ErrorItem(
                    code="account_closed",
                    field="move_out_on",
                    message=f"Account {account.number} is closed: it is no longer supplied "
                    f"after {today.isoformat()}.",
                )
            )
    return errors


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
    usual tenant change); otherwise an overlapping contract is refused.  On a connection
    whose disconnection is recorded the contract ends that day (no day after it is
    supplied); otherwise it is open.
    """
    with transaction.atomic():
        # Lock the account (as account_set_status), then the connection so that two
        # move-ins on it are serialised: the rules are judged on the stored rows, so an
        # account closed or a connection disconnected meanwhile takes no contract.  In
        # that order, accounts before connections, as a settlement run's chunk locks its
        # accounts and boundary estimation then their connections: the other way round,
        # a move-in and such a chunk deadlocked.
        account = Account.objects.select_for_update(no_key=True).get(pk=account.pk)
        connection = ServiceConnection.objects.select_for_update().get(pk=connection.pk)
        errors = contract_supply_errors(
            account=account, connection=connection, move_in_on=move_in_on
        )
        if errors:
            raise UnableToMoveIn.refusing("Cannot move in", errors)
        if end_previous:
            previous = (
                # the contract row only (its ordering joins the connection)
                Contract.objects.select_for_update(of=("self",))
                .filter(connection=connection, valid_from__lt=move_in_on, valid_to__isnull=True)
                .first()
            )
            if previous is not None:
                contract_move_out(contract=previous, move_out_on=move_in_on, actor=actor)
        contract = Contract(
            account=account,
            connection=connection,
            valid_from=move_in_on,
            valid_to=connection.disconnected_on,  # after move_in_on (checked above)
        )
        return clean_and_save(contract, actor=actor, reason="move-in", what="contract")


def contract_move_out(*, contract: Contract, move_out_on: dt.date, actor=None) -> Contract:
    """End ``contract`` so that ``move_out_on`` is the first day no longer supplied."""
    with transaction.atomic():
        # the connection, then the contract (the order of contract_move_in): the rules
        # below judge the stored contract, not a copy read before another move-out
        ServiceConnection.objects.select_for_update().get(pk=contract.connection_id)
        contract = Contract.objects.select_for_update().get(pk=contract.pk)
        return _move_out(contract=contract, move_out_on=move_out_on, actor=actor)


def _move_out(*, contract: Contract, move_out_on: dt.date, actor=None) -> Contract:
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


def network_edit_errors(*, network: Network, currency: str, time_zone: str) -> list[ErrorItem]:
    """Why a stored ``network`` cannot take this currency or time zone (API and admin
    edits): once it has accounts, connections, tariffs, price caps or operating costs,
    its prices, costs, bills and payments are amounts in its currency, and its billing
    periods and boundary registers are local days and midnights in its zone; changing
    either would reread all of them."""
    if currency == network.currency and time_zone == network.time_zone:
        return []
    from tariffs.models import OperatingCost, PriceCap, Tariff

    used = any(
        model.objects.filter(network=network).exists()
        for model in (Account, ServiceConnection, Tariff, PriceCap, OperatingCost)
    )
    if not used:
        return []
    errors = []
    for field, new, old in (
        ("currency", currency, network.currency),
        ("time_zone", time_zone, network.time_zone),
    ):
        if new != old:
            errors.append(
                ErrorItem(
                    code="network_in_use",
                    field=field,
                    message=f"This network is in use (accounts, connections, tariffs or price caps): "
                    f"its {field.replace('_', ' ')} stays {old}.",
                )
            )
    return errors


def connection_edit_errors(
    *,
    connection: ServiceConnection,
    network_id: int,
    building_id: int,
    connected_on: dt.date | None,
    disconnected_on: dt.date | None,
    status: str | None = None,
) -> list[ErrorItem]:
    """Why a stored ``connection`` cannot take these values (API and admin edits): its
    contracts were made with accounts of its network and billed by its building's m²
    (area charges, re-rated by :class:`AreaChange` days only), and its contracts and
    capacity changes lie within ``[connected_on, disconnected_on)``; it is marked
    disconnected (``status``) only once no contract on it is open (billing bills every
    contract day, whatever the status)."""
    errors: list[ErrorItem] = []
    contracts = Contract.objects.filter(connection=connection)
    if network_id != connection.network_id and contracts.exists():
        errors.append(
            ErrorItem(
                code="has_contracts",
                field="network",
                message="This connection has contracts: its network cannot change.",
            )
        )
    if building_id != connection.building_id and contracts.exists():
        errors.append(
            ErrorItem(
                code="has_contracts",
                field="building",
                message="This connection has contracts: it stays in its building "
                "(its area charges are that building's m²).",
            )
        )
    if connected_on is not None:
        first_contract = contracts.order_by("valid_from").values_list("valid_from", flat=True)
        first_change = (
            CapacityChange.objects.filter(connection=connection)
            .order_by("valid_from")
            .values_list("valid_from", flat=True)
        )
        first = min(
            (day for day in (first_contract.first(), first_change.first()) if day is not None),
            default=None,
        )
        if first is not None and connected_on > first:
            errors.append(
                ErrorItem(
                    code="after_first_use",
                    field="connected_on",
                    message=f"The connection is supplied or contracted from {first.isoformat()}: "
                    "it was connected by then.",
                )
            )
    if (
        disconnected_on is not None
        and contracts.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=disconnected_on)).exists()
    ):
        errors.append(
            ErrorItem(
                code="contract_after_disconnection",
                field="disconnected_on",
                message="A contract on this connection runs past this day: move out first.",
            )
        )
    if (
        status == ServiceConnection.Status.DISCONNECTED
        and status != connection.status
        and contracts.filter(valid_to__isnull=True).exists()
    ):
        errors.append(
            ErrorItem(
                code="open_contract",
                field="status",
                message="A contract on this connection is open: move out first.",
            )
        )
    return errors


def interface_unit_edit_errors(
    *, unit: BuildingInterfaceUnit, connection_id: int
) -> list[ErrorItem]:
    """Why a stored interface unit cannot move to another connection: the readings of
    the meters installed in it are its connection's registers (metering computes each
    connection's boundary registers through its units), so moving it would move their
    history to the other connection.  A unit moved is removed here and installed anew."""
    if connection_id != unit.connection_id and unit.meter_installations.exists():
        return [
            ErrorItem(
                code="has_meters",
                field="connection",
                message="Meters were installed in this unit: its connection cannot change. "
                "Remove it and install a new unit on the other connection.",
            )
        ]
    return []


def account_status_errors(
    *, account: Account, status: str, today: dt.date | None = None
) -> list[ErrorItem]:
    """Why ``account`` cannot take ``status`` (shared with the admin's account forms).

    An account is closed once it is no longer supplied: every contract has ended by
    ``today`` (the network's local date unless given).  A move-out registered for a
    later day keeps it open until then."""
    if status != Account.Status.CLOSED:
        return []
    if today is None:
        from zoneinfo import ZoneInfo

        from django.utils import timezone

        today = timezone.now().astimezone(ZoneInfo(account.network.time_zone)).date()
    supplied = account.contracts.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=today))
    ends = list(supplied.values_list("valid_to", flat=True))
    if None in ends:
        return [ErrorItem(code="open_contract", field="status", message="open contract")]
    if ends:
        last = max(ends).isoformat()
        message = f"supplied until the move-out on {last}"
        return [ErrorItem(code="supplied_until", field="status", message=message)]
    return []


def account_set_status(*, account: Account, status: str, actor=None, reason: str = "") -> Account:
    with transaction.atomic():
        # the account's row, as contract_move_in: a move-in checked meanwhile is either
        # seen here or sees the new status
        Account.objects.select_for_update(no_key=True).get(pk=account.pk)
        if errors := account_status_errors(account=account, status=status):
            if errors[0].code == "open_contract":
                message = f"Account {account.number} still has an open contract; move out first."
            else:
                message = (
                    f"Account {account.number} is {errors[0].message}; close it from that day on."
                )
            raise ConflictError(message, errors=errors)
        account.status = status
        return clean_and_save(account, actor=actor, reason=reason, what="account")


class UnableToChangeCapacity(DomainError):
    code = "unable_to_change_capacity"


def capacity_change_errors(
    *, connection: ServiceConnection, valid_from: dt.date
) -> list[ErrorItem]:
    """Why ``connection`` cannot change capacity from ``valid_from``: no kW is contracted
    before the connection exists or from its disconnection on, the days
    :func:`connection_edit_errors` keeps its changes within (shared with the API's and
    the admin's forms)."""
    if connection.connected_on is not None and valid_from < connection.connected_on:
        return [
            ErrorItem(
                code="before_connected",
                field="valid_from",
                message=f"Connection {connection.number} was connected on "
                f"{connection.connected_on.isoformat()}, after {valid_from.isoformat()}.",
            )
        ]
    if connection.disconnected_on is not None and valid_from >= connection.disconnected_on:
        return [
            ErrorItem(
                code="after_disconnected",
                field="valid_from",
                message=f"Connection {connection.number} is disconnected from "
                f"{connection.disconnected_on.isoformat()}, before {valid_from.isoformat()}.",
            )
        ]
    return []


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
        if errors := capacity_change_errors(connection=connection, valid_from=valid_from):
            raise UnableToChangeCapacity(errors[0].message, errors=errors)
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


class UnableToInvite(DomainError):
    code = "unable_to_invite"


def portal_invite(*, customer, base_url: str, actor=None) -> str:
    """Give ``customer`` a portal login and e-mail them a link to set its password.

    The login is the customer's e-mail address, created without a usable password (so
    nobody can log in with it until the link is used) or the one already linked; the
    link is Django's password-reset token (``/portal/reset/…``), valid for
    ``PASSWORD_RESET_TIMEOUT`` and void once used.  ``base_url``: the portal's origin,
    e.g. ``https://heat.example.org``.  Returns the login's user name.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.tokens import default_token_generator
    from django.template import loader
    from django.urls import reverse
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    from customers.tasks import portal_email_send

    email = (customer.email or "").strip()
    if not email:
        raise UnableToInvite(
            f"{customer.name} has no e-mail address to send the invitation to.",
            errors=[ErrorItem(code="required", field="email", message="no e-mail address")],
        )
    users = get_user_model()._default_manager
    with transaction.atomic():
        user = customer.user
        if user is None:
            if users.filter(username__iexact=email).exists():
                raise UnableToInvite(
                    f"The login {email} belongs to someone else; link it by hand.",
                    errors=[ErrorItem(code="taken", field="email", message="login in use")],
                )
            user = users.create_user(username=email, email=email)  # unusable password
            customer.user = user
            clean_and_save(customer, actor=actor, reason="portal invitation", what="customer")
        elif user.is_staff or user.is_superuser or _holds_permissions(user):
            # a reset link mailed to the customer's address would hand whoever set that
            # address (and linked the login) a login with rights beyond the portal's
            raise UnableToInvite(
                f"{customer.name}'s login is a staff login; the portal is for customers.",
                errors=[ErrorItem(code="staff_login", field="user", message="staff login")],
            )
        elif user.email != email:
            user.email = email
            user.save(update_fields=["email"])
        link = base_url.rstrip("/") + reverse(
            "portal:password_reset_confirm",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": default_token_generator.make_token(user),
            },
        )
        context = {"customer": customer, "user": user, "link": link, **portal_mail_context()}
        subject = loader.render_to_string("portal/invitation_subject.txt", context).strip()
        body = loader.render_to_string("portal/invitation_email.txt", context)
        transaction.on_commit(lambda: portal_email_send.delay(subject, body, email))
    return user.get_username()


def _holds_permissions(user) -> bool:
    """A login with a staff role or permissions of its own (the API honours them)."""
    return user.groups.exists() or user.user_permissions.exists()


def portal_mail_context() -> dict:
    """What the portal's e-mails are signed with."""
    from django.conf import settings

    return {"utility_name": settings.HEATUTILITY.get("UTILITY_NAME", "")}
