"""Writes: tariff versions and their approval, assignments, data imports, costs, caps.

Every service is keyword-only, opens its own transaction and takes ``now`` explicitly.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Max, Q

from customers.models import Network, ServiceConnection
from heatutility.audit import integrity_as_conflict
from heatutility.csvcells import csv_cell
from heatutility.errors import ConflictError, DomainError, ErrorItem
from heatutility.money import MONEY_ROUNDING, to_decimal
from heatutility.timeutil import local_midnight
from tariffs import caps as cap_methods
from tariffs.bulk import upsert_rows
from tariffs.costs import (
    PRICE_COMPONENTS,
    UnitParams,
    asset_year_pieces,
    hourly_electricity_price,
    operating_cost,
)
from tariffs.imports import (
    ChargeRow,
    ImportRejected,
    parse_electricity_charges,
    parse_spot_prices,
    parse_unit_hours,
)
from tariffs.models import (
    IN_FORCE,
    DataImport,
    ElectricityCharge,
    OperatingCost,
    PlantUnit,
    PriceCap,
    SpotPrice,
    Tariff,
    TariffAssignment,
    TariffVersion,
    UnitHour,
)
from tariffs.rating import Determinants, components_from_data, year_fraction
from tariffs.selectors import (
    electricity_prices_frame,
    spot_price_hours_by_resolution,
    tariff_spec_for_version,
    unit_hours_frame,
)

APPROVE_PERMISSION = "tariffs.approve_tariffversion"
CHARGE_STORE_LOCK = 0x4543  # advisory lock namespace ("EC"), keyed by hashtext(price area, kind)


class TariffVersionLocked(ConflictError):
    code = "tariff_version_locked"


class TariffAboveCap(DomainError):
    code = "tariff_above_cap"


class TariffVersionInvalid(DomainError):
    code = "tariff_version_invalid"


class NotAllowed(DomainError):
    status_code = 403
    code = "permission_denied"


# ----------------------------------------------------------------------------- versions
def tariff_version_create(
    *,
    tariff: Tariff,
    valid_from: dt.date,
    valid_to: dt.date | None = None,
    components: list,
    prices_include_vat: bool = False,
    vat_rate: Decimal = Decimal("0.25"),
    notes: str = "",
) -> TariffVersion:
    """A new draft; the components are validated into the rating dataclasses first."""
    components_from_data(components)
    _check_version_fields(valid_from=valid_from, valid_to=valid_to, vat_rate=vat_rate)
    with transaction.atomic():
        Tariff.objects.select_for_update().get(pk=tariff.pk)
        number = (tariff.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        return TariffVersion.objects.create(
            tariff=tariff,
            number=number,
            valid_from=valid_from,
            valid_to=valid_to,
            components=components,
            prices_include_vat=prices_include_vat,
            vat_rate=vat_rate,
            notes=notes,
        )


def tariff_version_update_draft(*, version: TariffVersion, **changes) -> TariffVersion:
    """Change a draft; an approved or published version never changes (make a new one)."""
    allowed = {"valid_from", "valid_to", "components", "prices_include_vat", "vat_rate", "notes"}
    unknown = set(changes) - allowed
    if unknown:
        raise DomainError(f"Cannot change {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        locked = TariffVersion.objects.select_for_update().get(pk=version.pk)
        if locked.is_locked:
            raise TariffVersionLocked(
                f"Version {locked.number} of tariff {locked.tariff.code} is {locked.status} and cannot change; create a new version."
            )
        if "components" in changes:
            components_from_data(changes["components"])
        for key, value in changes.items():
            setattr(locked, key, value)
        _check_version_fields(
            valid_from=locked.valid_from,
            valid_to=locked.valid_to,
            vat_rate=locked.vat_rate,
            changed=set(changes),
        )
        locked.save()
        return locked


def _check_version_fields(
    *,
    valid_from: dt.date,
    valid_to: dt.date | None,
    vat_rate: Decimal,
    changed: set[str] | None = None,
) -> None:
    """The table's check constraints, as field errors (422) instead of a bare 409."""
    errors = []
    if valid_to is not None and valid_to <= valid_from:
        field = (
            "valid_from"
            if changed is not None and "valid_from" in changed and "valid_to" not in changed
            else "valid_to"
        )
        errors.append(
            ErrorItem(
                code="ends_before_start",
                field=field,
                message=f"The version must end after it starts: valid_to {valid_to} is not after valid_from {valid_from}.",
            )
        )
    if not (Decimal(0) <= vat_rate < 1):
        errors.append(
            ErrorItem(
                code="out_of_range",
                field="vat_rate",
                message="The VAT rate is a fraction from 0 to below 1.",
            )
        )
    if errors:
        raise TariffVersionInvalid("The tariff version is invalid.", errors=errors)


def tariff_version_new_from(*, version: TariffVersion, valid_from: dt.date) -> TariffVersion:
    """Start a change: a draft copy of ``version`` from ``valid_from``."""
    return tariff_version_create(
        tariff=version.tariff,
        valid_from=valid_from,
        components=version.components,
        prices_include_vat=version.prices_include_vat,
        vat_rate=version.vat_rate,
        notes=f"Copied from version {version.number}.",
    )


def _caps_for(network_id: int, start: dt.date, end: dt.date | None) -> list[PriceCap]:
    qs = PriceCap.objects.filter(
        network_id=network_id, status=PriceCap.Status.ADOPTED, period_end__gt=start
    )
    if end is not None:
        qs = qs.filter(period_start__lt=end)
    return list(qs.order_by("period_start"))


def cap_limits(cap: PriceCap) -> cap_methods.CapLimits:
    ref = cap.inputs.get("reference") if isinstance(cap.inputs, dict) else None
    reference = None
    if ref and cap.reference_total_cap is not None:
        # the stored JSON may hold numbers (floats): read as written (15.7, not 15.6999…), as
        # parse_cap_inputs read them when the cap was computed
        reference = Determinants(
            period_start=cap.period_start,
            period_end=cap.period_end,
            energy_mwh=to_decimal(ref["energy_mwh"]),
            volume_m3=to_decimal(ref.get("volume_m3", "0")),
            return_temp_c=None,
            flow_temp_c=None,
            contracted_kw=to_decimal(ref.get("contracted_kw", "0")),
            heated_area_m2=to_decimal(ref.get("heated_area_m2", "0")),
        )
    return cap_methods.CapLimits(
        currency=cap.currency,
        includes_vat=cap.includes_vat,
        energy_per_mwh=cap.energy_cap_per_mwh,
        fixed_per_year=cap.fixed_cap_per_year,
        capacity_per_kw=cap.capacity_cap_per_kw,
        area_per_m2=cap.area_cap_per_m2,
        reference_total=cap.reference_total_cap,
        reference=reference,
        label=f"{cap.get_method_display()} cap {cap.period_start}–{cap.period_end}",
    )


def tariff_version_cap_check(*, version: TariffVersion) -> tuple[list[PriceCap], list[str]]:
    """The adopted caps the version's period touches, and every excess as a message."""
    spec = tariff_spec_for_version(version)
    caps = _caps_for(version.tariff.network_id, version.valid_from, version.valid_to)
    messages: list[str] = []
    for cap in caps:
        for excess in cap_methods.check_against_cap(spec=spec, cap=cap_limits(cap)):
            messages.append(_excess_message(excess, cap))
    return caps, messages


def _excess_message(excess: cap_methods.CapExcess, cap: PriceCap) -> str:
    """The excess's message naming the cap it exceeds."""
    return excess.message().replace(
        f"the {excess.cap}",
        f"the {excess.cap} (cap #{cap.pk}, {cap.get_method_display()}, {cap.period_start}–{cap.period_end})",
    )


def price_cap_versions_above(*, cap: PriceCap) -> list[dict]:
    """The network's approved and published versions that the cap's period touches and
    whose prices exceed it, each with every excess as a message (the approval check's).

    Approval checks a version against the caps adopted by then; a cap adopted later is
    checked here, when it is adopted (``price_cap_adopt`` reports them) and in its report,
    so staff see which versions in force price above it before bills do: the remedy is a
    new version under the cap, approved from the day the excess must end (bills already
    issued after that day are then re-rated, credit note and correction)."""
    versions = (
        TariffVersion.objects.filter(
            tariff__network_id=cap.network_id, status__in=IN_FORCE, valid_from__lt=cap.period_end
        )
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=cap.period_start))
        .select_related("tariff__network")
        .order_by("tariff__code", "valid_from")
    )
    limits = cap_limits(cap)
    found = []
    for version in versions:
        excesses = cap_methods.check_against_cap(spec=tariff_spec_for_version(version), cap=limits)
        if excesses:
            found.append(
                {
                    "tariff": version.tariff.code,
                    "version_id": version.pk,
                    "number": version.number,
                    "valid_from": version.valid_from,
                    "valid_to": version.valid_to,
                    "messages": [_excess_message(e, cap) for e in excesses],
                }
            )
    return found


def tariff_version_approve(*, version: TariffVersion, user, now: dt.datetime) -> TariffVersion:
    """Approve a draft under the adopted price cap(s) of its period (tariff managers only).

    Refused with every component, cap and excess when a price is above a cap.  An open-ended
    approved predecessor is closed the day the new version starts (the only change an
    approved version ever gets); any other overlap is refused by the database.  Closed on a
    day already billed (a corrected tariff), the bills priced with it over the days after
    are re-rated once the approval commits (``signals.tariff_version_closed``).

    A version with an end date that would close an open predecessor is refused (422,
    ``would_leave_gap``) unless an in-force version already starts on its end date: the
    predecessor could never apply again after it (a version is one ``[valid_from, valid_to)``
    range and ``selectors.tariff_slices_for_connections`` takes, day by day, the one in-force
    version covering it), so the days after it would have no tariff.  Staff approve the
    version open-ended and later approve the following version, which closes it.
    """
    if not (user and user.is_active and user.has_perm(APPROVE_PERMISSION)):
        raise NotAllowed(
            "Only a tariff manager may approve tariff versions (permission tariffs.approve_tariffversion)."
        )
    with transaction.atomic():
        Tariff.objects.select_for_update().get(pk=version.tariff_id)
        # the version row only: FOR UPDATE on its network's row too would stop every
        # document written for the network meanwhile (each row's key share on it)
        locked = (
            TariffVersion.objects.select_for_update(of=("self",))
            .select_related("tariff__network")
            .get(pk=version.pk)
        )
        if locked.status != TariffVersion.Status.DRAFT:
            raise TariffVersionLocked(f"Version {locked.number} is already {locked.status}.")
        caps, excesses = tariff_version_cap_check(version=locked)
        if excesses:
            raise TariffAboveCap(
                "Approval refused: " + " ".join(excesses),
                errors=[
                    ErrorItem(code="above_cap", message=m, field="components") for m in excesses
                ],
            )
        predecessor = (
            TariffVersion.objects.select_for_update(of=("self",))  # its ordering joins the network
            .filter(
                tariff_id=locked.tariff_id,
                status__in=IN_FORCE,
                valid_to__isnull=True,
                valid_from__lt=locked.valid_from,
            )
            .first()
        )
        if (
            predecessor is not None
            and locked.valid_to is not None
            and not (
                TariffVersion.objects.filter(
                    tariff_id=locked.tariff_id, status__in=IN_FORCE, valid_from=locked.valid_to
                ).exists()
            )
        ):
            message = (
                f"Approving version {locked.number} ({locked.valid_from} to {locked.valid_to}) would end version "
                f"{predecessor.number} on {locked.valid_from} for good and leave tariff {locked.tariff.code} without "
                f"a price from {locked.valid_to}. Give version {locked.number} no end date (valid_to empty) and "
                f"approve it; a later version (e.g. a copy of version {predecessor.number} from {locked.valid_to}) "
                "then closes it the day that version starts."
            )
            raise TariffVersionInvalid(
                message,
                errors=[ErrorItem(code="would_leave_gap", field="valid_to", message=message)],
            )
        if predecessor is not None:
            predecessor.valid_to = locked.valid_from
            predecessor.save(update_fields=["valid_to"])
            # a correction from a day already billed changes those bills: billing re-rates
            # them (credit note + correction; drafts recomputed) once this commits; a
            # failing receiver is logged, it does not undo or fail the approval
            transaction.on_commit(_closed(predecessor.pk), robust=True)
        locked.status = TariffVersion.Status.APPROVED
        locked.approved_at = now
        locked.approved_by = user
        locked.approved_under_cap = caps[0] if caps else None
        try:
            locked.validate_constraints()
            with transaction.atomic():
                locked.save()
        except (ValidationError, IntegrityError) as exc:
            raise ConflictError(
                f"Version {locked.number} overlaps an approved version of tariff {locked.tariff.code}: {exc}"
            ) from exc
        return locked


def _closed(version_id: int):
    def send() -> None:
        from tariffs.signals import tariff_version_closed

        tariff_version_closed.send(sender=TariffVersion, version_id=version_id)

    return send


def tariff_version_publish(*, version: TariffVersion, user, now: dt.datetime) -> TariffVersion:
    if not (user and user.has_perm(APPROVE_PERMISSION)):
        raise NotAllowed("Only a tariff manager may publish tariff versions.")
    with transaction.atomic():
        locked = TariffVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status != TariffVersion.Status.APPROVED:
            raise TariffVersionLocked(
                f"Only an approved version can be published (this one is {locked.status})."
            )
        locked.status = TariffVersion.Status.PUBLISHED
        locked.published_at = now
        locked.save(update_fields=["status", "published_at"])
        return locked


def tariff_assign(*, tariff: Tariff, connection_ids: Sequence[int], valid_from: dt.date) -> int:
    """Put connections on ``tariff`` from ``valid_from`` (closing their open assignment). Idempotent.

    An assignment already planned after ``valid_from`` is kept: the new one ends the day
    that one begins (``valid_to = next.valid_from``), or, when the planned one is of this
    tariff, that one starts on ``valid_from`` instead.  Left open-ended it would cover the
    planned one's days too (billed twice on SQLite, refused by the exclusion constraint on
    PostgreSQL).

    Refused as a whole (422) when an id is unknown or on another network, each named by
    its position (``connection_ids.3``); an overlap left by a concurrent write is a 409.
    Returns how many connections were put on the tariff.
    """
    first: dict[int, int] = {}  # id -> index of its first occurrence
    for index, cid in enumerate(connection_ids):
        first.setdefault(cid, index)
    ids = list(first)
    with transaction.atomic():
        networks = dict(
            ServiceConnection.objects.filter(id__in=ids).values_list("id", "network_id")
        )
        unknown = [(i, c) for c, i in first.items() if c not in networks]
        wrong = [
            (i, c) for c, i in first.items() if c in networks and networks[c] != tariff.network_id
        ]
        if unknown or wrong:
            parts = []
            if unknown:
                parts.append(f"unknown connection id(s) {', '.join(str(c) for _, c in unknown)}")
            if wrong:
                parts.append(
                    f"connection(s) {', '.join(str(c) for _, c in wrong)} not on network {tariff.network}"
                )
            raise DomainError(
                "Nothing assigned: " + "; ".join(parts) + ".",
                errors=[
                    ErrorItem(
                        code="not_found",
                        message=f"Connection {c} does not exist.",
                        field=f"connection_ids.{i}",
                    )
                    for i, c in unknown
                ]
                + [
                    ErrorItem(
                        code="wrong_network",
                        message=f"Connection {c} is not on network {tariff.network}.",
                        field=f"connection_ids.{i}",
                    )
                    for i, c in wrong
                ],
            )
        current = (
            TariffAssignment.objects.select_for_update(of=("self",))
            .filter(  # not the connections
                connection_id__in=ids, valid_from__lte=valid_from
            )
            .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=valid_from))
        )
        already = set(current.filter(tariff=tariff).values_list("connection_id", flat=True))
        current.exclude(tariff=tariff).filter(valid_from__lt=valid_from).update(valid_to=valid_from)
        current.exclude(tariff=tariff).filter(valid_from=valid_from).delete()
        planned: dict[int, TariffAssignment] = {}  # connection id -> its next assignment
        for later in (
            TariffAssignment.objects.select_for_update(of=("self",))
            .filter(connection_id__in=ids, valid_from__gt=valid_from)
            .order_by("connection_id", "valid_from")
        ):
            planned.setdefault(later.connection_id, later)
        new, brought_forward = [], []
        for c in ids:
            if c in already:
                continue
            following = planned.get(c)
            if following is not None and following.tariff_id == tariff.pk:
                brought_forward.append(following.pk)
            else:
                new.append(
                    TariffAssignment(
                        connection_id=c,
                        tariff=tariff,
                        valid_from=valid_from,
                        valid_to=following.valid_from if following is not None else None,
                    )
                )
        TariffAssignment.objects.filter(pk__in=brought_forward).update(valid_from=valid_from)
        try:
            if connection.vendor != "postgresql":  # the exclusion constraint's rule, as a query
                for assignment in new:
                    assignment.validate_constraints()
            with transaction.atomic():
                TariffAssignment.objects.bulk_create(new)
        except (ValidationError, IntegrityError) as exc:
            raise ConflictError(
                f"Assigning tariff {tariff.code} from {valid_from} overlaps another assignment: {exc}"
            ) from exc
        return len(new) + len(brought_forward)


# ----------------------------------------------------------------------------- imports
def data_import_create(
    *,
    kind: str,
    content: str,
    filename: str = "",
    unit: PlantUnit | None = None,
    price_area: str = "",
    currency: str = "DKK",
    time_zone: str = "Europe/Copenhagen",
    enqueue: bool = True,
) -> DataImport:
    """Store the file and queue its import (after commit) unless the caller runs it.

    ``filename`` is only a label: a longer one than the column holds (an upload's name
    may have 255 characters) is shortened, its extension kept."""
    from tariffs.tasks import data_import_run_task

    limit = DataImport._meta.get_field("filename").max_length
    if len(filename) > limit:
        stem, extension = os.path.splitext(filename)
        extension = extension if len(extension) < limit else ""
        filename = stem[: limit - len(extension)] + extension
    with transaction.atomic():
        record = DataImport.objects.create(
            kind=kind,
            content=content,
            filename=filename,
            unit=unit,
            price_area=price_area,
            currency=currency,
            time_zone=time_zone,
        )
        if enqueue:
            transaction.on_commit(lambda: data_import_run_task.delay(record.pk))
    return record


def data_import_run(*, data_import_id: int, now: dt.datetime) -> DataImport:
    """Parse, check and upsert one file.  Safe to run twice (same rows, same values)."""
    with transaction.atomic():
        record = DataImport.objects.select_for_update().get(pk=data_import_id)
        if record.status == DataImport.Status.DONE:
            return record
        try:
            with transaction.atomic():  # savepoint: a failure stores no hour at all
                _check_time_zone(record.time_zone)
                if record.kind == DataImport.Kind.UNIT_HOURS:
                    frame = parse_unit_hours(record.content, time_zone=record.time_zone)
                    _store_unit_hours(record, frame)
                elif record.kind == DataImport.Kind.ELECTRICITY_CHARGES:
                    charges = parse_electricity_charges(
                        record.content, price_area=record.price_area, currency=record.currency
                    )
                    electricity_charges_store(rows=charges, data_import=record)
                    frame = None
                else:
                    frame = parse_spot_prices(
                        record.content, time_zone=record.time_zone, currency=record.currency
                    )
                    _store_spot_prices(record, frame)
        except ImportRejected as exc:
            errors = [e.as_dict() for e in exc.errors] or [
                {"code": exc.code, "message": exc.message}
            ]
        except (
            ValueError,
            TypeError,
            ArithmeticError,
            LookupError,
            DataError,
        ) as exc:  # an unreadable file, not a crash
            errors = [{"code": "unreadable", "message": f"{type(exc).__name__}: {exc}"}]
        else:
            errors = None
        if errors is not None:
            record.status = DataImport.Status.FAILED
            record.errors = errors
            record.finished_at = now
            record.save(update_fields=["status", "errors", "finished_at"])
            return record
        record.status = DataImport.Status.DONE
        if frame is None:  # effective-dated charges: the local midnights they span
            record.rows = len(charges)
            record.first_hour = local_midnight(min(c.valid_from for c in charges), record.time_zone)
            ends = [c.valid_to for c in charges]
            record.last_hour = None if None in ends else local_midnight(max(ends), record.time_zone)
        else:  # rows = hours stored (a day of 96 quarter-hour prices: 24)
            record.rows = len(frame)
            record.resolution_minutes = frame.attrs.get("resolution_minutes", 60)
            record.first_hour = frame["hour_start"].min().to_pydatetime()
            record.last_hour = frame["hour_start"].max().to_pydatetime()
        record.errors = []
        record.finished_at = now
        record.save()
        return record


def _check_time_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ImportRejected(
            f"Unknown time zone {name!r}.",
            errors=[
                ErrorItem(
                    code="invalid_time_zone",
                    field="time_zone",
                    message=f"{name!r} is not a known IANA time zone (e.g. Europe/Copenhagen).",
                )
            ],
        ) from exc


def _dec(value, places: int) -> Decimal | None:
    """An imported number at its column's scale, rounded half up (ties away from zero), as
    PostgreSQL's numeric and the charge import round: 1.00005 is 1.0001.  The float's
    shortest repr is the number the file wrote."""
    if value is None or pd.isna(value):
        return None
    return Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _store_unit_hours(record: DataImport, frame: pd.DataFrame) -> None:
    columns = [
        "unit_id",
        "hour_start",
        "heat_mwh",
        "electricity_mwh",
        "fuel_mwh",
        "source_in_c",
        "source_out_c",
        "supply_c",
        "return_c",
        "data_import_id",
    ]
    rows = [
        (
            record.unit_id,
            t.to_pydatetime(),
            _dec(h, 6),
            _dec(e, 6),
            _dec(f, 6),
            _dec(si, 2),
            _dec(so, 2),
            _dec(su, 2),
            _dec(re, 2),
            record.pk,
        )
        for t, h, e, f, si, so, su, re in frame[
            [
                "hour_start",
                "heat_mwh",
                "electricity_mwh",
                "fuel_mwh",
                "source_in_c",
                "source_out_c",
                "supply_c",
                "return_c",
            ]
        ].itertuples(index=False)
    ]
    upsert_rows(model=UnitHour, columns=columns, rows=rows, conflict=["unit_id", "hour_start"])


def _store_spot_prices(record: DataImport, frame: pd.DataFrame) -> None:
    rows = [
        # hourly means of quarter-hour prices come as Decimal, already at the column's scale
        (
            record.price_area,
            t.to_pydatetime(),
            p if isinstance(p, Decimal) else _dec(p, 4),
            record.currency,
            record.pk,
        )
        for t, p in frame[["hour_start", "price_per_mwh"]].itertuples(index=False)
    ]
    upsert_rows(
        model=SpotPrice,
        columns=["price_area", "hour_start", "price_per_mwh", "currency", "data_import_id"],
        rows=rows,
        conflict=["price_area", "hour_start"],
    )


def electricity_charges_store(
    *, rows: Sequence[ChargeRow], data_import: DataImport | None = None
) -> dict[str, int]:
    """Store parsed charges against what the database already holds.  Idempotent.

    * a row identical to a stored charge (area, kind, dates, hours, amount, currency) is
      left as it is, so importing the same file twice changes nothing;
    * a stored open-ended charge of the same area and kind that starts before the file's
      first row for that kind is closed the day that row starts (a new price list
      supersedes the old one);
    * any other stored charge whose days and hours overlap a row refuses the whole file
      (``overlap``, with the row and the stored charge): correct it in the admin first.

    Returns ``{"created": n, "unchanged": n, "closed": n}``.

    Two stores of one price area and kind run one after the other (a transaction-level
    advisory lock per area and kind on PostgreSQL, taken in order before anything is
    read): otherwise neither saw the other's new rows and two overlapping hour bands,
    which the exclusion constraint (one band only) lets through, were both kept.
    """
    counts = {"created": 0, "unchanged": 0, "closed": 0}
    errors: list[ErrorItem] = []
    with transaction.atomic():
        groups: dict[tuple[str, str], list[ChargeRow]] = {}
        for r in rows:
            groups.setdefault((r.price_area, r.kind), []).append(r)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for area, kind in sorted(groups):
                    cursor.execute(
                        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                        [CHARGE_STORE_LOCK, f"{area}|{kind}"],
                    )
        new: list[ElectricityCharge] = []
        for (area, kind), items in groups.items():
            first = min(r.valid_from for r in items)
            stored = list(
                ElectricityCharge.objects.select_for_update().filter(price_area=area, kind=kind)
            )
            for charge in stored:
                identical = any(
                    (r.valid_from, r.valid_to, r.hour_from, r.hour_to, r.amount_per_mwh, r.currency)
                    == (
                        charge.valid_from,
                        charge.valid_to,
                        charge.hour_from,
                        charge.hour_to,
                        charge.amount_per_mwh,
                        charge.currency,
                    )
                    for r in items
                )
                if not identical and charge.valid_to is None and charge.valid_from < first:
                    charge.valid_to = first
                    charge.save(update_fields=["valid_to"])
                    counts["closed"] += 1
            for r in items:
                clash = None
                for charge in stored:
                    same = (
                        r.valid_from,
                        r.valid_to,
                        r.hour_from,
                        r.hour_to,
                        r.amount_per_mwh,
                        r.currency,
                    ) == (
                        charge.valid_from,
                        charge.valid_to,
                        charge.hour_from,
                        charge.hour_to,
                        charge.amount_per_mwh,
                        charge.currency,
                    )
                    if same:
                        clash = "same"
                        break
                    days = (charge.valid_to is None or r.valid_from < charge.valid_to) and (
                        r.valid_to is None or charge.valid_from < r.valid_to
                    )
                    hours = r.hour_from < charge.hour_to and charge.hour_from < r.hour_to
                    if days and hours:
                        clash = charge
                        break
                if clash == "same":
                    counts["unchanged"] += 1
                elif clash is not None:
                    errors.append(
                        ErrorItem(
                            code="overlap",
                            field="valid_from",
                            row=r.row,
                            message=f"{area} {kind} from {r.valid_from} overlaps stored charge #{clash.pk} "
                            f"({clash.amount_per_mwh:f} {clash.currency}/MWh, [{clash.valid_from}, {clash.valid_to or '…'}), "
                            f"hours {clash.hour_from:02d}–{clash.hour_to:02d}).",
                        )
                    )
                else:
                    new.append(
                        ElectricityCharge(
                            price_area=area,
                            kind=kind,
                            valid_from=r.valid_from,
                            valid_to=r.valid_to,
                            hour_from=r.hour_from,
                            hour_to=r.hour_to,
                            amount_per_mwh=r.amount_per_mwh,
                            currency=r.currency,
                            data_import=data_import,
                        )
                    )
        if errors:
            raise ImportRejected(
                f"The electricity charge file was refused: {len(errors)} row(s) overlap stored charges.",
                errors=sorted(errors, key=lambda e: e.row or 0),
            )
        ElectricityCharge.objects.bulk_create(new)
        counts["created"] = len(new)
    return counts


# ----------------------------------------------------------------------------- cost
def unit_params(unit: PlantUnit, *, year_index: int = 1) -> UnitParams:
    """The cost model's view of a unit.  Its asset year (for the capital cost) is counted in
    the cost model from ``commissioned_on`` and the cost period; ``year_index`` applies only
    when the commissioning date is not recorded (then every period is charged as that year)."""
    return UnitParams(
        id=unit.pk,
        code=unit.code,
        kind=unit.kind,
        capacity_mw=unit.capacity_mw,
        lorenz_efficiency=unit.lorenz_efficiency,
        boiler_efficiency=unit.boiler_efficiency,
        fuel_price_per_mwh=unit.fuel_price_per_mwh,
        co2_t_per_mwh_fuel=unit.co2_t_per_mwh_fuel,
        co2_price_per_t=unit.co2_price_per_t,
        om_fixed_per_mw_year=unit.om_fixed_per_mw_year,
        om_variable_per_mwh=unit.om_variable_per_mwh,
        investment=unit.investment,
        lifetime_years=unit.lifetime_years,
        interest_rate=unit.interest_rate,
        capital_method=unit.capital_method,
        year_index=year_index,
        commissioned_on=unit.commissioned_on,
    )


def _capital_year_basis(p: UnitParams, period_start: dt.date, period_end: dt.date) -> str:
    """How the capital cost's asset year was found, for the stored inputs (the regulator's "why")."""
    if p.commissioned_on is None:
        return (
            f"commissioned_on not recorded: charged as asset year {p.year_index} of {p.lifetime_years} "
            "(record the commissioning date to charge the unit's real age)"
        )
    pieces = asset_year_pieces(
        commissioned_on=p.commissioned_on, start=period_start, end=period_end
    )
    years = ", ".join(
        f"[{s}, {e}) "
        + (
            "not yet commissioned"
            if k < 1
            else f"asset year {k} of {p.lifetime_years}"
            + (" (written off)" if k > p.lifetime_years else "")
        )
        for s, e, k in pieces
    )
    return f"commissioned {p.commissioned_on}: {years}"


def operating_cost_compute(
    *,
    network: Network,
    period_start: dt.date,
    period_end: dt.date,
    now: dt.datetime,
    heat_sold_mwh: Decimal | None = None,
    loss_share: Decimal | None = None,
    network_costs_per_year: Decimal = Decimal(0),
) -> OperatingCost:
    """Run the cost model over the network's plant and keep every input, series and figure."""
    errors = []
    if heat_sold_mwh is not None and heat_sold_mwh <= 0:
        errors.append(
            ErrorItem(
                code="min_value", field="heat_sold_mwh", message="Heat sold must be above 0 MWh."
            )
        )
    if loss_share is not None and not (Decimal(0) <= loss_share < 1):
        errors.append(
            ErrorItem(
                code="out_of_range",
                field="loss_share",
                message="The loss share is a fraction from 0 to below 1.",
            )
        )
    if errors:
        raise DomainError("Invalid operating-cost inputs.", errors=errors)
    units = list(PlantUnit.objects.filter(plant__network=network).order_by("plant_id", "code"))
    if not units:
        raise DomainError(f"Network {network} has no plant units.")
    start_at = local_midnight(period_start, network.time_zone)
    end_at = local_midnight(period_end, network.time_zone)
    hours = unit_hours_frame(unit_ids=[u.pk for u in units], start_at=start_at, end_at=end_at)
    if hours.empty:
        raise DomainError(
            f"No operating data for [{period_start}, {period_end}); import the SCADA files first."
        )
    _check_price_currency(network, start_at=start_at, end_at=end_at)
    prices = electricity_prices_frame(
        price_area=network.price_area, start_at=start_at, end_at=end_at, time_zone=network.time_zone
    )
    params = [unit_params(u) for u in units]
    try:
        result = operating_cost(
            hours=hours,
            prices=prices,
            units=params,
            period_start=period_start,
            period_end=period_end,
            currency=network.currency,
            heat_sold_mwh=heat_sold_mwh,
            loss_share=loss_share,
            network_costs_per_year=network_costs_per_year,
            time_zone=network.time_zone,
        )
    except ValueError as exc:
        raise DomainError(str(exc)) from exc
    inputs = {
        "units": [
            {
                **{
                    k: (
                        format(v, "f")
                        if isinstance(v, Decimal)
                        else v.isoformat()
                        if isinstance(v, dt.date)
                        else v
                    )
                    for k, v in p.__dict__.items()
                },
                "capital_year_basis": _capital_year_basis(p, period_start, period_end),
            }
            for p in params
        ],
        "heat_sold_mwh": None if heat_sold_mwh is None else format(heat_sold_mwh, "f"),
        "loss_share": None if loss_share is None else format(loss_share, "f"),
        "network_costs_per_year": format(network_costs_per_year, "f"),
        "price_area": network.price_area,
        # hours priced on 15-minute day-ahead prices use their hourly means (docs/tariffs.md)
        "spot_price_hours_by_resolution_minutes": spot_price_hours_by_resolution(
            price_area=network.price_area,
            start_at=start_at,
            end_at=end_at,
        ),
    }
    return OperatingCost.objects.create(
        network=network,
        period_start=period_start,
        period_end=period_end,
        inputs=inputs,
        results=result.as_json(),
        hourly_csv=result.hourly_csv(),
        cost_per_mwh_produced=result.figures["cost_per_mwh_produced"],
        cost_per_mwh_sold=result.figures["cost_per_mwh_sold"],
        computed_at=now,
    )


# ----------------------------------------------------------------------------- caps
def compute_cap_result(
    *,
    method: str,
    currency: str,
    inputs: dict,
    network: Network,
    period_start: dt.date,
    period_end: dt.date,
) -> cap_methods.CapResult:
    """Dispatch to the pure method; ``inputs`` is the JSON stored on the cap (strings).

    The inputs are checked first (``caps.parse_cap_inputs``: every problem at its path);
    figures that still do not fit (a limit above what a cap can hold) are refused too.
    """
    v = cap_methods.parse_cap_inputs(method=method, inputs=inputs)
    try:
        result = _compute_cap(
            method=method,
            currency=currency,
            v=v,
            network=network,
            period_start=period_start,
            period_end=period_end,
        )
    except ArithmeticError as exc:
        raise cap_methods.CapInputsInvalid(
            f"The {method} inputs give figures too large to compute ({type(exc).__name__}).",
            errors=[
                ErrorItem(
                    code="out_of_range",
                    message="The inputs give figures too large to compute.",
                    field="inputs",
                )
            ],
        ) from exc
    lim = result.limits
    errors = []
    for name, value in (
        ("energy_cap_per_mwh", lim.energy_per_mwh),
        ("fixed_cap_per_year", lim.fixed_per_year),
        ("capacity_cap_per_kw", lim.capacity_per_kw),
        ("area_cap_per_m2", lim.area_per_m2),
        ("reference_total_cap", lim.reference_total),
    ):
        f = PriceCap._meta.get_field(name)
        bound = Decimal(10) ** (f.max_digits - f.decimal_places)
        if value is not None and value.copy_abs() >= bound:
            errors.append(
                ErrorItem(
                    code="out_of_range",
                    field=name,
                    message=f"The inputs give {value:f}; a cap holds less than {bound:,} (check the inputs' units).",
                )
            )
    if errors:
        raise cap_methods.CapInputsInvalid(
            "The inputs give a cap too large to store.", errors=errors
        )
    return result


def _compute_cap(
    *,
    method: str,
    currency: str,
    v: dict,
    network: Network,
    period_start: dt.date,
    period_end: dt.date,
) -> cap_methods.CapResult:
    if method == PriceCap.Method.COST_BASED:
        return cap_methods.cost_based_cap(currency=currency, **v)
    if method == PriceCap.Method.INDEXATION:
        clauses = []
        for i, c in enumerate(v["clauses"]):
            c = {
                **c,
                "cost_terms": [
                    _derived_index_term(t, f"inputs.clauses.{i}.cost_terms.{j}", network=network)
                    for j, t in enumerate(c.get("cost_terms") or [])
                ],
            }
            clauses.append(
                cap_methods.IndexClause(
                    price=c["price"],
                    base_price=Decimal(str(c["base_price"]).strip()),
                    fixed_weight=Decimal(str(c["a"]).strip()),
                    cost_terms=tuple(_index_term(t) for t in c["cost_terms"]),
                    market_term=_index_term(c["market_term"]),
                )
            )
        return cap_methods.indexation_cap(currency=currency, clauses=clauses)
    if method == PriceCap.Method.MAXIMUM_PRICE:
        return cap_methods.maximum_price_cap(currency=currency, **v)
    if method == PriceCap.Method.SUBSTITUTION:
        start_at = local_midnight(period_start, network.time_zone)
        end_at = local_midnight(period_end, network.time_zone)
        _check_price_currency(network, start_at=start_at, end_at=end_at)
        prices = electricity_prices_frame(
            price_area=network.price_area,
            start_at=start_at,
            end_at=end_at,
            time_zone=network.time_zone,
        )
        if prices.empty:
            raise DomainError(
                "No electricity prices for the period: import the day-ahead prices first."
            )
        _check_price_hours(prices, start_at=start_at, end_at=end_at, time_zone=network.time_zone)
        # demand profile: the network's hourly heat production shape (else flat)
        units = list(PlantUnit.objects.filter(plant__network=network).values_list("id", flat=True))
        hours = unit_hours_frame(unit_ids=units, start_at=start_at, end_at=end_at)
        shape = (
            hours["heat_mwh"].astype("float64").groupby(hours["hour_start"]).sum()
            if not hours.empty
            else None
        )
        demand = (
            prices[["hour_start"]]
            .merge(shape.rename("d").reset_index(), on="hour_start", how="left")["d"]
            .fillna(0.0)
            if shape is not None
            else pd.Series(1.0, index=prices.index)
        )
        if demand.sum() <= 0:
            demand = pd.Series(1.0, index=prices.index)
        ref = v["reference"]
        reference = Determinants(
            period_start=period_start,
            period_end=period_end,
            energy_mwh=ref["energy_mwh"],
            volume_m3=ref["volume_m3"],
            return_temp_c=None,
            flow_temp_c=None,
            contracted_kw=ref["contracted_kw"],
            heated_area_m2=ref["heated_area_m2"],
        )
        return cap_methods.substitution_cap(
            currency=currency,
            hourly_electricity_price=hourly_electricity_price(
                prices, components=PRICE_COMPONENTS if v["include_utility_tariffs"] else ("spot",)
            ),
            hourly_demand_share=(demand / demand.sum()).to_numpy(),
            hourly_cop=v["individual_scop"],
            annual_demand_mwh=reference.energy_mwh,
            consumer_extra_per_mwh=v["consumer_extra_per_mwh"],
            investment=v["investment"],
            lifetime_years=v["lifetime_years"],
            interest_rate=v["interest_rate"],
            om_per_year=v["om_per_year"],
            reference=reference,
        )
    raise cap_methods.CapInputsInvalid(f"Unknown method {method!r}.")


def _check_price_currency(network: Network, *, start_at: dt.datetime, end_at: dt.datetime) -> None:
    """Spot prices and electricity charges are added to the network's costs as they are: one
    stored in another currency is refused, never mixed in."""
    spot = set(
        SpotPrice.objects.filter(
            price_area=network.price_area, hour_start__gte=start_at, hour_start__lt=end_at
        )
        .exclude(currency=network.currency)
        .values_list("currency", flat=True)
        .distinct()
    )
    charges = set(
        ElectricityCharge.objects.filter(
            price_area=network.price_area, valid_from__lt=end_at.date() + dt.timedelta(days=1)
        )
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=start_at.date() - dt.timedelta(days=1)))
        .exclude(currency=network.currency)
        .values_list("currency", flat=True)
        .distinct()
    )
    if spot or charges:
        message = (
            f"Electricity prices of {network.price_area} for the period are in {', '.join(sorted(spot | charges))}, "
            f"network {network.code} bills in {network.currency}; import them in {network.currency}."
        )
        raise DomainError(
            message, errors=[ErrorItem(code="currency", field="period_start", message=message)]
        )


def _check_price_hours(
    prices: pd.DataFrame, *, start_at: dt.datetime, end_at: dt.datetime, time_zone: str
) -> None:
    """Every hour of ``[start_at, end_at)`` (23 or 25 on DST days) needs a price: a missing
    hour is reported, never left out of the benchmark."""
    expected = pd.date_range(start_at, end_at, freq="h", inclusive="left", tz="UTC")
    missing = expected.difference(pd.DatetimeIndex(prices["hour_start"]))
    if len(missing):
        first = missing.min().tz_convert(time_zone)
        message = (
            f"{len(missing)} of the {len(expected)} hours of the period have no electricity price "
            f"(first {first:%Y-%m-%d %H:%M %Z}); import the day-ahead prices first."
        )
        raise DomainError(
            message,
            errors=[ErrorItem(code="missing_prices", field="period_start", message=message)],
        )


def _index_term(t: dict) -> cap_methods.IndexTerm:
    """One index of a clause; ``rebase`` ``{"old_at_link", "new_at_link"}`` when the statistics
    office rebased the series after K₀ was agreed: K₀ is carried to the new series
    (``K₀ · new/old``) so that K (on the new series) / K₀ and hence the price are unchanged."""
    d = cap_methods._d
    name = t["name"]
    base = d(t["base"], f"{name}.base")
    original = None
    if t.get("rebase"):
        original = base
        old, new = (
            d(t["rebase"]["old_at_link"], f"{name}.rebase.old_at_link"),
            d(t["rebase"]["new_at_link"], f"{name}.rebase.new_at_link"),
        )
        if old <= 0 or new <= 0:
            raise cap_methods.CapInputsInvalid(
                f"Index {name}: the linking values of a rebasing must be above 0."
            )
        base = cap_methods.rebase_index_base(base_value=base, old_at_link=old, new_at_link=new)
    return cap_methods.IndexTerm(
        name,
        d(t["weight"], f"{name}.weight"),
        base,
        d(t["current"], f"{name}.current"),
        base_before_rebase=original,
    )


def electricity_index_from_cost(cost: OperatingCost) -> Decimal:
    """Average electricity price paid per MWh in a cost run: an electricity cost index Kᵢ."""
    f = cost.results["figures"]
    mwh = Decimal(f["electricity_mwh"])
    if mwh <= 0:
        raise cap_methods.CapInputsInvalid(
            f"Operating cost #{cost.pk} used no electricity; it cannot index electricity."
        )
    return (Decimal(f["electricity_cost"]) / mwh).quantize(
        Decimal("0.0001"), rounding=MONEY_ROUNDING
    )


def _derived_index_term(term: dict, path: str = "inputs", *, network: Network) -> dict:
    """A cost term may take K₀ and K from two operating-cost runs (``base_cost_id``, ``current_cost_id``)
    of the cap's own network (as the cap's ``operating_cost``, :func:`price_cap_operating_cost_check`):
    another network's electricity prices say nothing about this network's costs and may be in
    another currency, so K/K₀ would mix them."""
    if "base_cost_id" not in term and "current_cost_id" not in term:
        return term
    out = dict(term)
    for key, ref in (("base", "base_cost_id"), ("current", "current_cost_id")):
        if ref in term:
            cost = OperatingCost.objects.select_related("network").filter(pk=int(term[ref])).first()
            if cost is None:
                raise cap_methods.CapInputsInvalid(
                    f"Operating cost #{term[ref]} does not exist.",
                    errors=[
                        ErrorItem(
                            code="not_found",
                            message=f"Operating cost #{term[ref]} does not exist.",
                            field=f"{path}.{ref}",
                        )
                    ],
                )
            if cost.network_id != network.pk:
                message = (
                    f"Operating cost #{cost.pk} is of network {cost.network.code}, not {network.code}: "
                    "an index is taken from cost runs of the cap's own network."
                )
                raise cap_methods.CapInputsInvalid(
                    message,
                    errors=[
                        ErrorItem(code="wrong_network", message=message, field=f"{path}.{ref}")
                    ],
                )
            out[key] = format(electricity_index_from_cost(cost), "f")
    return out


def cost_based_inputs_from_cost(
    *,
    cost: OperatingCost,
    connections: int,
    contracted_kw_total: Decimal,
    over_recovery: Decimal = Decimal(0),
    approved_return: Decimal = Decimal(0),
    fixed_share_per_connection: Decimal = Decimal("0.2"),
) -> dict:
    """Inputs of a cost-based cap taken from an operating-cost run (sales = heat sold), per year.

    A cost-based cap's limits are per year (fixed charge per connection and year, capacity
    charge per kW and year), so the run's costs and sales are annualised: divided by the
    run's year fraction, the same rule (calendar months of 1/12, split by days) by which the
    cost model prorated the per-year fixed O&M, capital and network costs into the run, so a
    one-month run gives back exactly twelve months of them.  Variable costs and sales are
    scaled alike, which leaves the price per MWh as it was.  The run's own figures and the
    factor are kept under ``annualised_from``.  ``over_recovery`` and ``approved_return`` are
    per-year amounts.  The cap's period does not enter: its limits are per year whatever its length.
    """
    f = cost.results["figures"]
    fraction = year_fraction(cost.period_start, cost.period_end)
    if fraction <= 0:
        raise cap_methods.CapInputsInvalid(
            f"Operating cost #{cost.pk} covers no days; it cannot give yearly costs."
        )

    def per_year(value: str) -> str:
        annual = Decimal(value) * fraction.denominator / fraction.numerator
        return format(
            annual.quantize(Decimal("0.000001"), rounding=MONEY_ROUNDING).normalize(), "f"
        )

    return {
        "variable_costs": per_year(f["variable_cost"]),
        "fixed_costs": per_year(f["fixed_cost"]),
        "forecast_sales_mwh": per_year(f["heat_sold_mwh"]),
        "annualised_from": {
            "operating_cost_period": f"[{cost.period_start}, {cost.period_end})",
            "year_fraction": f"{fraction.numerator}/{fraction.denominator}",
            "variable_costs": f["variable_cost"],
            "fixed_costs": f["fixed_cost"],
            "forecast_sales_mwh": f["heat_sold_mwh"],
        },
        "over_recovery": format(over_recovery, "f"),
        "approved_return": format(approved_return, "f"),
        "connections": connections,
        "contracted_kw_total": format(contracted_kw_total, "f"),
        "fixed_share_per_connection": format(fixed_share_per_connection, "f"),
        "operating_cost_id": cost.pk,
    }


def price_cap_operating_cost_check(
    *, network: Network, operating_cost: OperatingCost | None
) -> None:
    """A cap's operating-cost run is one of its own network: another network's plant, prices
    and sales say nothing about this network's costs (and may be in another currency).
    Refused naming ``operating_cost`` (``wrong_network``)."""
    if operating_cost is None or operating_cost.network_id == network.pk:
        return
    message = (
        f"Operating cost #{operating_cost.pk} is of network {operating_cost.network.code}, not {network.code}: "
        "a cap is computed from a cost run of its own network."
    )
    raise DomainError(
        message, errors=[ErrorItem(code="wrong_network", field="operating_cost", message=message)]
    )


def price_cap_compute(
    *,
    network: Network,
    method: str,
    period_start: dt.date,
    period_end: dt.date,
    inputs: dict,
    now: dt.datetime,
    operating_cost: OperatingCost | None = None,
) -> PriceCap:
    """Compute and store a draft cap with every input and intermediate figure (from a cost
    run of the same network only, ``price_cap_operating_cost_check``)."""
    price_cap_operating_cost_check(network=network, operating_cost=operating_cost)
    result = compute_cap_result(
        method=method,
        currency=network.currency,
        inputs=inputs,
        network=network,
        period_start=period_start,
        period_end=period_end,
    )
    lim = result.limits
    return PriceCap.objects.create(
        network=network,
        method=method,
        period_start=period_start,
        period_end=period_end,
        currency=network.currency,
        includes_vat=lim.includes_vat,
        energy_cap_per_mwh=lim.energy_per_mwh,
        fixed_cap_per_year=lim.fixed_per_year,
        capacity_cap_per_kw=lim.capacity_per_kw,
        area_cap_per_m2=lim.area_per_m2,
        reference_total_cap=lim.reference_total,
        operating_cost=operating_cost,
        inputs=json.loads(json.dumps(inputs, default=str)),
        results=result.figures,
        computed_at=now,
    )


def price_cap_recompute(*, cap: PriceCap) -> dict[str, tuple]:
    """Recompute from the stored inputs; returns the differing limits (empty = identical to the cent)."""
    result = compute_cap_result(
        method=cap.method,
        currency=cap.currency,
        inputs=cap.inputs,
        network=cap.network,
        period_start=cap.period_start,
        period_end=cap.period_end,
    )
    lim = result.limits
    pairs = {
        "energy_cap_per_mwh": (cap.energy_cap_per_mwh, lim.energy_per_mwh),
        "fixed_cap_per_year": (cap.fixed_cap_per_year, lim.fixed_per_year),
        "capacity_cap_per_kw": (cap.capacity_cap_per_kw, lim.capacity_per_kw),
        "area_cap_per_m2": (cap.area_cap_per_m2, lim.area_per_m2),
        "reference_total_cap": (cap.reference_total_cap, lim.reference_total),
    }
    diffs = {k: v for k, v in pairs.items() if v[0] != v[1]}
    if result.figures != cap.results:
        diffs["figures"] = (cap.results, result.figures)
    return diffs


def price_cap_adopt(*, cap: PriceCap, now: dt.datetime) -> PriceCap:
    with transaction.atomic():
        locked = PriceCap.objects.select_for_update().get(pk=cap.pk)
        if locked.status == PriceCap.Status.ADOPTED:
            return locked
        locked.status = PriceCap.Status.ADOPTED
        locked.adopted_at = now
        try:
            locked.validate_constraints()
        except ValidationError as exc:
            raise ConflictError("; ".join(exc.messages)) from exc
        # the check above cannot see an overlapping cap adopted by a concurrent
        # transaction: the exclusion constraint refuses it, with the same message
        with integrity_as_conflict():
            locked.save(update_fields=["status", "adopted_at"])
        return locked


def price_cap_export(*, cap: PriceCap, fmt: str) -> str:
    """Everything a regulator needs to redo the cap: inputs, figures, limits (CSV or JSON)."""
    limits = {
        "energy_cap_per_mwh": cap.energy_cap_per_mwh,
        "fixed_cap_per_year": cap.fixed_cap_per_year,
        "capacity_cap_per_kw": cap.capacity_cap_per_kw,
        "area_cap_per_m2": cap.area_cap_per_m2,
        "reference_total_cap": cap.reference_total_cap,
    }
    payload = {
        "id": cap.pk,
        "network": cap.network.code,
        "method": cap.method,
        "status": cap.status,
        "period_start": cap.period_start.isoformat(),
        "period_end": cap.period_end.isoformat(),
        "currency": cap.currency,
        "includes_vat": cap.includes_vat,
        "inputs": cap.inputs,
        "figures": cap.results,
        "limits": {k: None if v is None else format(v, "f") for k, v in limits.items()},
    }
    if cap.operating_cost_id:
        payload["operating_cost"] = cap.operating_cost.results
    if fmt == "json":
        return json.dumps(payload, indent=2, ensure_ascii=False, default=str)
    # names and texts in the inputs are free text (an index's name): quoted by the csv
    # module, and a formula made text (heatutility.csvcells); numbers stay numbers
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "name", "value"])

    def cell(text: str) -> str:
        try:
            number = Decimal(text).is_finite()
        except ArithmeticError:  # decimal.InvalidOperation: not a number
            number = False
        return text if number else csv_cell(text)

    def walk(prefix: str, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix}.{i}", v)
        else:
            section, _, name = prefix.partition(".")
            text = "" if value is None else str(value)
            writer.writerow([csv_cell(section), csv_cell(name or section), cell(text)])

    walk("", payload)
    return out.getvalue()
