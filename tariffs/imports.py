"""Parsing hourly CSV files (SCADA and ENTSO-E day-ahead exports) into UTC hourly frames.

Pure: text in, a pandas frame with ``hour_start`` (aware UTC) out, or :class:`ImportRejected`
listing every problem with its CSV row (the header is row 1).

Timestamps
  * ``time`` / ``start`` column with a UTC offset (``2025-10-26T02:00:00+02:00``) is
    unambiguous and preferred;
  * naive local times are read in the file's zone.  On the 25-hour day the repeated hour
    must appear twice, first in summer time then in winter time (or marked with the
    zone's abbreviation, ``(CEST)`` / ``(CET)`` as ENTSO-E does, ``(BST)`` / ``(GMT)`` in
    London); a local time that does not exist (the skipped hour of the
    23-hour day) is an error;
  * ENTSO-E ``MTU (CET/CEST)`` columns ``dd.mm.yyyy HH:MM - dd.mm.yyyy HH:MM`` use the start.

Checks: duplicates, gaps (every missing hour between the first and the last), whole local
days with 23, 24 or 25 hours as the zone's DST rules require, numeric values.

Day-ahead prices may also come at 15-minute resolution (the European single day-ahead
coupling's quarter-hour MTU since 1 October 2025): every quarter-hour of each local day once
(92, 96 or 100 a day), checked as strictly as hours, then stored as hourly prices, each the
mean of its hour's four quarter-hour prices (:func:`parse_spot_prices`).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import numpy as np
import pandas as pd

from heatutility.errors import DomainError, ErrorItem
from tariffs.limits import MAX_DATE, MIN_DATE, date_in_range

UNIT_COLUMNS = (
    "heat_mwh",
    "electricity_mwh",
    "fuel_mwh",
    "source_in_c",
    "source_out_c",
    "supply_c",
    "return_c",
)
MAX_ITEMS = 50
# (decimal places, |value| below) of the columns values are stored in: UnitHour energies
# DecimalField(14, 6), temperatures (6, 2); SpotPrice and ElectricityCharge (12, 4)
ENERGY_COLUMN = (6, 10**8)
TEMPERATURE_COLUMN = (2, 10**4)
PRICE_COLUMN = (4, 10**8)
UNIT_COLUMN_LIMITS = {
    c: ENERGY_COLUMN if c.endswith("_mwh") else TEMPERATURE_COLUMN for c in UNIT_COLUMNS
}


class ImportRejected(DomainError):
    code = "import_rejected"


def _read(text: str) -> pd.DataFrame:
    sample = text[:2000]
    sep = ";" if sample.count(";") > sample.count(",") else ","
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise ImportRejected(f"The file is not readable CSV: {exc}") from exc


def _parse_times(raw: pd.Series, time_zone: str, errors: list[ErrorItem], field: str) -> pd.Series:
    text = raw.str.strip()
    marker = text.str.extract(r"\((CEST|CET|[A-Z]{3,4})\)\s*$", expand=False)
    text = text.str.replace(r"\s*\([A-Z/]+\)\s*$", "", regex=True)
    has_offset = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True)
    if has_offset.any() and not has_offset.all():
        errors.append(
            ErrorItem(
                code="mixed_time_zones",
                message="Some timestamps have a UTC offset and some do not.",
                field=field,
            )
        )
        return pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    # ENTSO-E MTU "01.01.2025 00:00 - 01.01.2025 01:00": keep the start
    if text.str.contains(r"^\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}", regex=True).all():
        text = text.str.slice(0, 16)
        parsed = pd.to_datetime(text, format="%d.%m.%Y %H:%M", errors="coerce")
    else:
        # with offsets (which change at DST) straight to UTC; naive ones stay local for now
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=bool(has_offset.all()))
    bad = parsed.isna()
    for idx in np.flatnonzero(bad.to_numpy())[:MAX_ITEMS]:
        errors.append(
            ErrorItem(
                code="invalid_time",
                message=f"{raw.iloc[idx]!r} is not a timestamp.",
                field=field,
                row=int(idx) + 2,
            )
        )
    if bad.any():
        return pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    if has_offset.all():
        return parsed
    naive = pd.DatetimeIndex(parsed)
    if marker.notna().any():
        # the marker is the zone's own abbreviation of the hour: summer time is the one
        # the zone gives it read as summer time (CEST, EEST, BST, WEST, ...)
        as_summer = naive.tz_localize(
            time_zone, ambiguous=np.ones(len(naive), dtype=bool), nonexistent="NaT"
        )
        ambiguous = marker.to_numpy() == np.asarray(as_summer.strftime("%Z"), dtype=object)
    else:
        # the repeated hour: first occurrence summer time, second winter time
        dup_rank = pd.Series(naive).groupby(pd.Series(naive)).cumcount().to_numpy()
        ambiguous = dup_rank == 0
    local = naive.tz_localize(time_zone, ambiguous=ambiguous, nonexistent="NaT")
    nonexistent = np.flatnonzero(pd.isna(local))
    for idx in nonexistent[:MAX_ITEMS]:
        errors.append(
            ErrorItem(
                code="nonexistent_time",
                message=f"{raw.iloc[idx]} does not exist in {time_zone} (clocks skip this hour on the 23-hour day).",
                field=field,
                row=int(idx) + 2,
            )
        )
    return pd.Series(local.tz_convert("UTC"), index=raw.index)


def _check_series(times: pd.Series, time_zone: str, errors: list[ErrorItem], field: str) -> None:
    if times.isna().any() or times.empty:
        return
    dup = times.duplicated(keep="first")
    for idx in np.flatnonzero(dup.to_numpy())[:MAX_ITEMS]:
        first = int(np.flatnonzero((times == times.iloc[idx]).to_numpy())[0]) + 2
        local = times.iloc[idx].tz_convert(time_zone)
        errors.append(
            ErrorItem(
                code="duplicate_hour",
                message=f"Hour {local:%Y-%m-%d %H:%M %Z} (UTC {times.iloc[idx]:%Y-%m-%d %H:%M}) appears twice (first on row {first}).",
                field=field,
                row=int(idx) + 2,
            )
        )
    off_hour = (times.dt.minute != 0) | (times.dt.second != 0)
    for idx in np.flatnonzero(off_hour.to_numpy())[:MAX_ITEMS]:
        errors.append(
            ErrorItem(
                code="not_hourly",
                message="Values must start on the hour.",
                field=field,
                row=int(idx) + 2,
            )
        )
    unique = pd.DatetimeIndex(times.drop_duplicates()).sort_values()
    expected = pd.date_range(unique[0], unique[-1], freq="h", tz="UTC")
    missing = expected.difference(unique)
    if len(missing):
        shown = ", ".join(f"{m.tz_convert(time_zone):%Y-%m-%d %H:%M %Z}" for m in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        errors.append(
            ErrorItem(
                code="missing_hours",
                message=f"{len(missing)} hour(s) missing: {shown}{more}.",
                field=field,
            )
        )
    local = unique.tz_convert(time_zone)
    if local[0].hour != 0 or local[-1].hour != 23:
        errors.append(
            ErrorItem(
                code="partial_day",
                message=f"The file must hold whole local days ({time_zone}): it runs from {local[0]:%Y-%m-%d %H:%M} to {local[-1]:%Y-%m-%d %H:%M}.",
                field=field,
            )
        )
    if not len(missing) and not dup.any():
        counts = pd.Series(1, index=local).groupby(local.date).sum()
        for day, count in counts.items():
            start = pd.Timestamp(day).tz_localize(time_zone)
            end = (pd.Timestamp(day) + pd.Timedelta(days=1)).tz_localize(time_zone)
            expected_hours = int((end - start) / pd.Timedelta(hours=1))
            if day not in (local[0].date(), local[-1].date()) and count != expected_hours:
                errors.append(
                    ErrorItem(
                        code="day_length",
                        message=f"{day} has {count} hours in the file but is a {expected_hours}-hour day in {time_zone}.",
                        field=field,
                    )
                )


def _numbers(
    frame: pd.DataFrame,
    column: str,
    errors: list[ErrorItem],
    *,
    required: bool,
    limit: tuple[int, int],
) -> pd.Series:
    if column not in frame.columns:
        if required:
            errors.append(
                ErrorItem(
                    code="missing_column", message=f"Column {column!r} is required.", field=column
                )
            )
        return pd.Series(np.nan, index=frame.index)
    text = frame[column].str.strip().str.replace(",", ".", regex=False)
    values = pd.to_numeric(text.replace({"": None, "-": None, "n/e": None}), errors="coerce")
    bad = values.isna() & text.ne("") & ~text.isin(["-", "n/e"])
    for idx in np.flatnonzero(bad.to_numpy())[:MAX_ITEMS]:
        errors.append(
            ErrorItem(
                code="invalid_number",
                message=f"{frame[column].iloc[idx]!r} is not a number.",
                field=column,
                row=int(idx) + 2,
            )
        )
    places, below = limit
    # infinite ("inf", "1e999") or too large for the column once rounded as stored
    huge = values.notna() & ~(values.round(places).abs() < below)
    for idx in np.flatnonzero(huge.to_numpy())[:MAX_ITEMS]:
        errors.append(
            ErrorItem(
                code="out_of_range",
                message=f"{frame[column].iloc[idx].strip()[:40]!r} is out of range: "
                f"values must be between -{below:,} and {below:,}.",
                field=column,
                row=int(idx) + 2,
            )
        )
    if required:
        empty = values.isna() & ~bad
        for idx in np.flatnonzero(empty.to_numpy())[:MAX_ITEMS]:
            errors.append(
                ErrorItem(
                    code="required", message="A value is required.", field=column, row=int(idx) + 2
                )
            )
    return values.mask(huge)


def _time_column(frame: pd.DataFrame, errors: list[ErrorItem]) -> str | None:
    for c in frame.columns:
        if c.strip().lower() in (
            "time",
            "start",
            "hour_start",
            "timestamp",
        ) or c.strip().upper().startswith("MTU"):
            return c
    errors.append(
        ErrorItem(
            code="missing_column",
            message="No time column (time, start or 'MTU (CET/CEST)').",
            field="time",
        )
    )
    return None


def parse_unit_hours(text: str, *, time_zone: str) -> pd.DataFrame:
    """SCADA export: time, heat_mwh, electricity_mwh, fuel_mwh, source/supply/return temps."""
    errors: list[ErrorItem] = []
    frame = _read(text)
    frame.columns = [c.strip() for c in frame.columns]
    tcol = _time_column(frame, errors)
    out = pd.DataFrame(index=frame.index)
    if tcol:
        out["hour_start"] = _parse_times(frame[tcol], time_zone, errors, tcol)
    for c in UNIT_COLUMNS:
        out[c] = _numbers(frame, c, errors, required=c == "heat_mwh", limit=UNIT_COLUMN_LIMITS[c])
    if (out["heat_mwh"] < 0).any():
        for idx in np.flatnonzero((out["heat_mwh"] < 0).to_numpy())[:MAX_ITEMS]:
            errors.append(
                ErrorItem(
                    code="negative",
                    message="Heat delivered cannot be negative.",
                    field="heat_mwh",
                    row=int(idx) + 2,
                )
            )
    if tcol and "hour_start" in out:
        _check_series(out["hour_start"], time_zone, errors, tcol)
    if errors:
        raise ImportRejected(
            f"The operating data file was refused: {len(errors)} problem(s).", errors=errors
        )
    return out


# "Day-ahead Price [EUR/MWh]" (older ENTSO-E exports) or "Day-ahead Price (EUR/MWh)" (newer)
PRICE_HEADER = re.compile(
    r"price.*(?:\[(?P<square>[A-Z]{3})\s*/\s*MWh\]|\((?P<round>[A-Z]{3})\s*/\s*MWh\))",
    re.IGNORECASE,
)
# an ENTSO-E MTU "05.01.2026 00:00 - 05.01.2026 00:15": its end
MTU_END = r"^\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}\s*-\s*(?P<end>\d{2}\.\d{2}\.\d{4} \d{2}:\d{2})"
QUARTER_OFFSETS = pd.to_timedelta([15, 30, 45], unit="min")


def _resolution(
    times: pd.Series, time_zone: str, errors: list[ErrorItem], field: str
) -> int | None:
    """60 or 15 (minutes), or ``None`` when the file mixes them (itemised per day).

    Only start times are given, so the resolution is read per local day: a day whose values
    are mostly (more than half) at :15, :30 or :45 is a 15-minute day, any other an hourly
    one (an hourly file with a stray 05:30 stays hourly and gets ``not_hourly``).  The file's
    resolution is that of its first day; each day of the other one is ``mixed_resolution``."""
    if times.empty or times.isna().any():
        return 60
    quarter = (times - times.dt.floor("h")).isin(QUARTER_OFFSETS).to_numpy()
    days = times.dt.tz_convert(time_zone).dt.date.to_numpy()
    order = np.argsort(pd.DatetimeIndex(times).asi8, kind="stable")
    seen: dict[dt.date, tuple[int, int, int]] = {}  # day -> (first row, quarter values, values)
    for i in order:
        first, q, n = seen.get(days[i], (int(i) + 2, 0, 0))
        seen[days[i]] = (min(first, int(i) + 2), q + int(quarter[i]), n + 1)
    by_day = {day: 15 if 2 * q > n else 60 for day, (_, q, n) in seen.items()}
    first_day = next(iter(by_day))
    resolution = by_day[first_day]
    name = {15: "15-minute", 60: "hourly"}
    mixed = [day for day, r in by_day.items() if r != resolution]
    for day in mixed[:MAX_ITEMS]:
        errors.append(
            ErrorItem(
                code="mixed_resolution",
                message=f"{day} has {name[by_day[day]]} values (from row {seen[day][0]}), the file's first day "
                f"{first_day} {name[resolution]} values: one file holds one resolution.",
                field=field,
                row=seen[day][0],
            )
        )
    return None if mixed else resolution


def _check_quarter_series(
    times: pd.Series, time_zone: str, errors: list[ErrorItem], field: str
) -> None:
    """The 15-minute counterpart of :func:`_check_series`: duplicates, values off the quarter-hour
    grid, every missing quarter-hour (itemised with the row of the next value) and whole local
    days, which then hold 92, 96 or 100 quarter-hours (the repeated autumn hour's four twice)."""
    if times.isna().any() or times.empty:
        return
    dup = times.duplicated(keep="first")
    for idx in np.flatnonzero(dup.to_numpy())[:MAX_ITEMS]:
        first = int(np.flatnonzero((times == times.iloc[idx]).to_numpy())[0]) + 2
        t = times.iloc[idx]
        errors.append(
            ErrorItem(
                code="duplicate_quarter",
                message=f"Quarter-hour {t.tz_convert(time_zone):%Y-%m-%d %H:%M %Z} (UTC {t:%H:%M}) appears twice (first on row {first}).",
                field=field,
                row=int(idx) + 2,
            )
        )
    off_grid = times != times.dt.floor("15min")
    for idx in np.flatnonzero(off_grid.to_numpy())[:MAX_ITEMS]:
        local = times.iloc[idx].tz_convert(time_zone)
        errors.append(
            ErrorItem(
                code="not_quarter_hour",
                message=f"Values must start on a quarter-hour (:00, :15, :30, :45); {local:%Y-%m-%d %H:%M:%S %Z} does not.",
                field=field,
                row=int(idx) + 2,
            )
        )
    keep = ~(dup | off_grid).to_numpy()
    if not keep.any():
        return
    rows = np.flatnonzero(keep) + 2
    present = pd.DatetimeIndex(times[keep])
    order = np.argsort(present.asi8, kind="stable")
    present, rows = present[order], rows[order]
    missing = pd.date_range(present[0], present[-1], freq="15min").difference(present)
    for m in missing[:MAX_ITEMS]:
        row = int(rows[present.searchsorted(m)])
        errors.append(
            ErrorItem(
                code="missing_quarter",
                message=f"Quarter-hour {m.tz_convert(time_zone):%Y-%m-%d %H:%M %Z} (UTC {m:%H:%M}) is missing (before row {row}).",
                field=field,
                row=row,
            )
        )
    if len(missing) > MAX_ITEMS:
        errors.append(
            ErrorItem(
                code="missing_quarter",
                field=field,
                message=f"And {len(missing) - MAX_ITEMS} more quarter-hours missing.",
            )
        )
    first, last = present[0].tz_convert(time_zone), present[-1].tz_convert(time_zone)
    if (first.hour, first.minute) != (0, 0) or (last.hour, last.minute) != (23, 45):
        errors.append(
            ErrorItem(
                code="partial_day",
                message=f"The file must hold whole local days ({time_zone}): it runs from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}.",
                field=field,
            )
        )


def _hourly_means(times: pd.Series, prices: pd.Series) -> pd.DataFrame:
    """Each hour's price = the arithmetic mean of its four quarter-hour prices, from the file's
    decimals (not floats), rounded once, half up (ties away from zero), to the 4 decimals the
    price column stores.  For the cost model this is exact: heat spread evenly over the hour
    costs ``Σ_q (Q_h/4)/COP_h · p_q = Q_h/COP_h · mean(p_q)``.  Prices with up to 2 decimals (as
    ENTSO-E publishes them) give means with at most 4: stored without rounding."""
    step = Decimal(1).scaleb(-PRICE_COLUMN[0])
    sums: dict[pd.Timestamp, Decimal] = {}
    for hour, raw in zip(times.dt.floor("h"), prices, strict=True):
        text = str(raw).strip().replace(",", ".")
        try:
            value = Decimal(text)
        except InvalidOperation:  # a form only pandas reads: its shortest float repr
            value = Decimal(repr(float(text)))
        sums[hour] = sums.get(hour, Decimal(0)) + value
    hours = sorted(sums)
    return pd.DataFrame(
        {
            "hour_start": pd.Series(pd.DatetimeIndex(hours)),
            "price_per_mwh": [(sums[h] / 4).quantize(step, rounding=ROUND_HALF_UP) for h in hours],
        }
    )


def _price_column(frame: pd.DataFrame, currency: str, errors: list[ErrorItem]) -> str | None:
    """The day-ahead price column: a price with its currency, ``Day-ahead Price [CUR/MWh]``
    or, in newer ENTSO-E exports, ``Day-ahead Price (CUR/MWh)`` (a day-ahead one before any
    other, such as an intraday price), whose currency must be the import's; else ``price``.
    Other columns (``BZN|DK1``, ``Currency``, ``Sequence``, ...) are not read."""
    priced = [(c, m) for c in frame.columns if (m := PRICE_HEADER.search(c))]
    priced.sort(key=lambda cm: "dayahead" not in re.sub(r"[\s_-]", "", cm[0].lower()))
    if priced:
        column, m = priced[0]
        found = m.group("square") or m.group("round")
        if found.upper() != currency:
            errors.append(
                ErrorItem(
                    code="currency",
                    message=f"The file's prices are in {found}, the import expects {currency}.",
                    field=column,
                )
            )
        return column
    for c in frame.columns:
        if c.lower() in ("price", "price_per_mwh", "spot"):
            return c
    errors.append(
        ErrorItem(
            code="missing_column",
            message="No price column ('Day-ahead Price [CUR/MWh]', 'Day-ahead Price (CUR/MWh)' or 'price').",
            field="price",
        )
    )
    return None


def _check_mtu(
    raw: pd.Series,
    starts: pd.Series,
    minutes: int,
    time_zone: str,
    errors: list[ErrorItem],
    field: str,
) -> None:
    """ENTSO-E MTUs (``start - end``, local): each row as long as the file's resolution, the
    rows one after the other without overlap or gap, itemised by row (``mtu_length``,
    ``mtu_overlap``, ``mtu_gap``; a row of a file of MTUs without an end: ``invalid_mtu``).
    A time column of start times only has nothing to check.

    The end is a wall time, read in the start's UTC offset or (across the DST change) in the
    zone, whichever makes the row ``minutes`` long: the spring's 01:00 CET hour ends at
    03:00 (CEST), the autumn's first 02:00 (CEST) hour at 03:00 CEST, written 03:00 or, as
    the wall clock then shows, 02:00 (CET)."""
    ends_text = raw.str.strip().str.extract(MTU_END, expand=False)
    if ends_text.isna().all() or starts.isna().any():
        return
    naive = pd.to_datetime(ends_text, format="%d.%m.%Y %H:%M", errors="coerce")
    for idx in np.flatnonzero(naive.isna().to_numpy())[:MAX_ITEMS]:
        errors.append(
            ErrorItem(
                code="invalid_mtu",
                message=f"{raw.iloc[idx]!r} is not an MTU 'dd.mm.yyyy HH:MM - dd.mm.yyyy HH:MM'.",
                field=field,
                row=int(idx) + 2,
            )
        )
    if naive.isna().any():
        return
    offset = starts.dt.tz_convert(time_zone).dt.tz_localize(None) - starts.dt.tz_localize(None)
    at_offset = (naive - offset).dt.tz_localize("UTC")
    step = pd.Timedelta(minutes=minutes)
    fits = (at_offset - starts) == step
    wall = pd.DatetimeIndex(naive)
    for summer in (True, False):
        in_zone = wall.tz_localize(
            time_zone, ambiguous=np.full(len(wall), summer), nonexistent="NaT"
        )
        fits |= (pd.Series(in_zone.tz_convert("UTC"), index=starts.index) - starts) == step
    fits = fits.to_numpy()
    for idx in np.flatnonzero(~fits)[:MAX_ITEMS]:
        length = int((at_offset.iloc[idx] - starts.iloc[idx]) / pd.Timedelta(minutes=1))
        errors.append(
            ErrorItem(
                code="mtu_length",
                message=f"{raw.iloc[idx].strip()!r} is {length} minutes long; the file holds {minutes}-minute values.",
                field=field,
                row=int(idx) + 2,
            )
        )
    # consecutive rows (by start) whose lengths are right: the end of one is the next's start
    begins = starts.to_numpy()
    ends = np.where(fits, (starts + step).to_numpy(), at_offset.to_numpy())
    order = np.argsort(begins, kind="stable")
    prev, nxt = order[:-1], order[1:]
    checked = fits[prev] & fits[nxt] & (begins[prev] != begins[nxt])  # a repeat is duplicate_*
    for code, wrong in (
        ("mtu_overlap", ends[prev] > begins[nxt]),
        ("mtu_gap", ends[prev] < begins[nxt]),
    ):
        for p, q in list(zip(prev[checked & wrong], nxt[checked & wrong], strict=True))[:MAX_ITEMS]:
            end = pd.Timestamp(ends[p]).tz_convert(time_zone)
            start = pd.Timestamp(begins[q]).tz_convert(time_zone)
            what = (
                f"starts at {start:%Y-%m-%d %H:%M %Z}, before the MTU of row {p + 2} ends ({end:%H:%M %Z})"
                if code == "mtu_overlap"
                else f"starts at {start:%Y-%m-%d %H:%M %Z}: nothing covers the time from {end:%H:%M %Z}, when the MTU of row {p + 2} ends"
            )
            errors.append(
                ErrorItem(
                    code=code,
                    message=f"{raw.iloc[q].strip()!r} {what}.",
                    field=field,
                    row=int(q) + 2,
                )
            )


def parse_spot_prices(text: str, *, time_zone: str, currency: str) -> pd.DataFrame:
    """ENTSO-E day-ahead export (``MTU (CET/CEST)``, ``Day-ahead Price [EUR/MWh]`` or
    ``(EUR/MWh)``, other columns ignored; each MTU checked, :func:`_check_mtu`) or ``time,price``.

    Hourly or 15-minute values (one resolution a file, :func:`_resolution`); a 15-minute file
    comes back as hourly means with ``Decimal`` prices (:func:`_hourly_means`).  The frame's
    ``attrs["resolution_minutes"]`` is the file's resolution (60 or 15)."""
    errors: list[ErrorItem] = []
    frame = _read(text)
    frame.columns = [c.strip() for c in frame.columns]
    tcol = _time_column(frame, errors)
    pcol = _price_column(frame, currency, errors)
    out = pd.DataFrame(index=frame.index)
    if tcol:
        out["hour_start"] = _parse_times(frame[tcol], time_zone, errors, tcol)
    if pcol:
        out["price_per_mwh"] = _numbers(frame, pcol, errors, required=True, limit=PRICE_COLUMN)
    resolution = 60
    if tcol and "hour_start" in out:
        resolution = _resolution(out["hour_start"], time_zone, errors, tcol)
        if resolution == 60:
            _check_series(out["hour_start"], time_zone, errors, tcol)
        elif resolution == 15:
            _check_quarter_series(out["hour_start"], time_zone, errors, tcol)
        if resolution is not None:
            _check_mtu(frame[tcol], out["hour_start"], resolution, time_zone, errors, tcol)
    if errors:
        raise ImportRejected(
            f"The price file was refused: {len(errors)} problem(s).", errors=errors
        )
    if resolution == 15:
        out = _hourly_means(out["hour_start"], frame[pcol])
    out.attrs["resolution_minutes"] = resolution
    return out


# ----------------------------------------------------------------------------- electricity charges
CHARGE_KINDS = {
    "grid": "grid",
    "grid tariff": "grid",
    "grid_tariff": "grid",
    "nettarif": "grid",
    "system": "system",
    "system tariff": "system",
    "system tariffs": "system",
    "system_tariffs": "system",
    "systemtarif": "system",
    "tax": "tax",
    "electricity tax": "tax",
    "electricity_tax": "tax",
    "elafgift": "tax",
}
AMOUNT_HEADER = re.compile(
    r"^(?:amount|price|charge).*\[(?P<cur>[A-Z]{3})\s*/\s*(?P<unit>MWh|kWh)\]$", re.IGNORECASE
)
DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$|^(\d{2})[.-](\d{2})[.-](\d{4})$")
HOURS = re.compile(r"^(?P<a>\d{1,2})(?::00)?\s*[-–]\s*(?P<b>\d{1,2})(?::00)?$")


@dataclass(frozen=True)
class ChargeRow:
    """One effective-dated electricity charge from a CSV row (``row`` = CSV line, header = 1)."""

    row: int | None
    price_area: str
    kind: str
    valid_from: dt.date
    valid_to: dt.date | None
    hour_from: int
    hour_to: int
    amount_per_mwh: Decimal
    currency: str


def _date(text: str) -> dt.date | None:
    m = DATE.match(text.strip())
    if m is None:
        return None
    y, mo, d = (
        (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(6), m.group(5), m.group(4))
    )
    try:
        day = dt.date(int(y), int(mo), int(d))
    except ValueError:
        return None
    return day if date_in_range(day) else None


def _hours_label(a: int, b: int) -> str:
    return "all day" if (a, b) == (0, 24) else f"{a:02d}:00–{b:02d}:00"


def _ranges_overlap(a_from, a_to, b_from, b_to) -> bool:
    return (b_to is None or a_from < b_to) and (a_to is None or b_from < a_to)


def parse_electricity_charges(text: str, *, price_area: str = "", currency: str) -> list[ChargeRow]:
    """Effective-dated grid tariff, system tariffs and electricity tax per price area.

    Columns (header names case-insensitive, ``,`` or ``;`` separated):

    * ``price_area`` (optional when the import names one), ``kind`` (``grid``, ``system``,
      ``tax``; also ``grid tariff``, ``system tariffs``, ``electricity tax``),
    * ``valid_from``, ``valid_to`` (exclusive, empty = open; ``YYYY-MM-DD`` or ``dd.mm.yyyy``),
    * the amount: ``amount_per_mwh``, ``amount_per_kwh`` (× 1000, exact) or an ENTSO-E style
      header ``Amount [DKK/MWh]`` / ``[DKK/kWh]`` whose currency must be the import's,
    * time of use (optional): ``hours`` as ``17-21`` (local hours, end exclusive) or
      ``hour_from``/``hour_to``; empty = all day.

    Refused with every problem itemised by row and field: missing or bad values, a period
    that ends before it starts, two rows of one area, kind and hour band whose periods
    overlap (``duplicate`` when they start the same day), time-of-use bands that overlap
    or leave hours of a day uncovered (``hours_overlap``, ``hours_gap``), and days between
    two rows of a kind with no charge (``gap``).
    """
    errors: list[ErrorItem] = []
    frame = _read(text)
    frame.columns = [c.strip() for c in frame.columns]
    lower = {c.lower(): c for c in frame.columns}
    amount_col, per_kwh = None, False
    for c in frame.columns:
        m = AMOUNT_HEADER.match(c)
        if m:
            amount_col, per_kwh = c, m.group("unit").lower() == "kwh"
            if m.group("cur").upper() != currency:
                errors.append(
                    ErrorItem(
                        code="currency",
                        message=f"The file's amounts are in {m.group('cur')}, the import expects {currency}.",
                        field=c,
                    )
                )
            break
    if amount_col is None:
        for name, kwh in (("amount_per_mwh", False), ("amount_per_kwh", True), ("amount", False)):
            if name in lower:
                amount_col, per_kwh = lower[name], kwh
                break
    for need, col in (
        ("kind", lower.get("kind")),
        ("valid_from", lower.get("valid_from")),
        ("amount_per_mwh", amount_col),
    ):
        if col is None:
            errors.append(
                ErrorItem(
                    code="missing_column", message=f"Column {need!r} is required.", field=need
                )
            )
    if "price_area" not in lower and not price_area:
        errors.append(
            ErrorItem(
                code="missing_column",
                message="Column 'price_area' is required when the import names no price area.",
                field="price_area",
            )
        )
    if errors:
        raise ImportRejected(
            f"The electricity charge file was refused: {len(errors)} problem(s).", errors=errors
        )

    def cell(i: int, name: str) -> str:
        col = lower.get(name)
        return "" if col is None else str(frame[col].iloc[i]).strip()

    rows: list[ChargeRow] = []
    for i in range(len(frame)):
        r = i + 2
        bad = False
        area = cell(i, "price_area") or price_area
        if not area:
            errors.append(
                ErrorItem(
                    code="required", message="A price area is required.", field="price_area", row=r
                )
            )
            bad = True
        kind_text = cell(i, "kind")
        kind = CHARGE_KINDS.get(kind_text.lower())
        if kind is None:
            errors.append(
                ErrorItem(
                    code="invalid_kind",
                    message=f"{kind_text!r} is not grid, system or tax.",
                    field="kind",
                    row=r,
                )
            )
            bad = True
        vf_text, vt_text = cell(i, "valid_from"), cell(i, "valid_to")
        vf = _date(vf_text)
        if vf is None:
            errors.append(
                ErrorItem(
                    code="invalid_date" if vf_text else "required",
                    message=f"{vf_text!r} is not a date (YYYY-MM-DD, {MIN_DATE.year}–{MAX_DATE.year})."
                    if vf_text
                    else "A start date is required.",
                    field="valid_from",
                    row=r,
                )
            )
            bad = True
        vt = _date(vt_text) if vt_text else None
        if vt_text and vt is None:
            errors.append(
                ErrorItem(
                    code="invalid_date",
                    message=f"{vt_text!r} is not a date (YYYY-MM-DD, {MIN_DATE.year}–{MAX_DATE.year}).",
                    field="valid_to",
                    row=r,
                )
            )
            bad = True
        if vf and vt and vt <= vf:
            errors.append(
                ErrorItem(
                    code="ends_before_start",
                    message=f"The charge ends ({vt}) on or before it starts ({vf}); valid_to is exclusive.",
                    field="valid_to",
                    row=r,
                )
            )
            bad = True
        raw_amount = str(frame[amount_col].iloc[i]).strip().replace(",", ".")
        try:
            amount = Decimal(raw_amount)
            if not amount.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            errors.append(
                ErrorItem(
                    code="invalid_number" if raw_amount else "required",
                    message=f"{raw_amount!r} is not a number."
                    if raw_amount
                    else "An amount is required.",
                    field=amount_col,
                    row=r,
                )
            )
            bad = True
            amount = Decimal(0)
        if per_kwh:
            amount = amount.scaleb(3)  # × 1000, exact and context-free
        places, below = PRICE_COLUMN
        if amount.copy_abs() < below:
            # as the column stores it (numeric(12, 4) rounds half up), so that the stored charge
            # is the parsed one and the same file imported again is recognised as identical
            amount = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        if amount.copy_abs() >= below:
            errors.append(
                ErrorItem(
                    code="out_of_range",
                    field=amount_col,
                    row=r,
                    message=f"{raw_amount[:40]!r} is out of range: amounts per MWh must be between -{below:,} and {below:,}.",
                )
            )
            bad = True
        hours_text = cell(i, "hours")
        h_from_text, h_to_text = cell(i, "hour_from"), cell(i, "hour_to")
        h_from, h_to = 0, 24
        if hours_text and hours_text.lower() not in ("all", "0-24"):
            m = HOURS.match(hours_text)
            if m is None:
                errors.append(
                    ErrorItem(
                        code="invalid_hours",
                        message=f"{hours_text!r} is not an hour band like 17-21.",
                        field="hours",
                        row=r,
                    )
                )
                bad = True
            else:
                h_from, h_to = int(m.group("a")), int(m.group("b"))
        elif h_from_text or h_to_text:
            try:
                h_from, h_to = int(h_from_text or 0), int(h_to_text or 24)
            except ValueError:
                errors.append(
                    ErrorItem(
                        code="invalid_hours",
                        message="hour_from and hour_to are whole hours 0–24.",
                        field="hour_from",
                        row=r,
                    )
                )
                bad = True
        if not bad and not (0 <= h_from < h_to <= 24):
            errors.append(
                ErrorItem(
                    code="invalid_hours",
                    message=f"Hours {h_from}–{h_to}: a band runs within 0–24 and ends after it starts.",
                    field="hours",
                    row=r,
                )
            )
            bad = True
        currency_cell = cell(i, "currency").upper()
        if currency_cell and currency_cell != currency:
            errors.append(
                ErrorItem(
                    code="currency",
                    message=f"Amount in {currency_cell}, the import expects {currency}.",
                    field="currency",
                    row=r,
                )
            )
            bad = True
        if not bad:
            rows.append(ChargeRow(r, area, kind, vf, vt, h_from, h_to, amount, currency))

    # cross-row checks per (area, kind)
    groups: dict[tuple[str, str], list[ChargeRow]] = {}
    for row in rows:
        groups.setdefault((row.price_area, row.kind), []).append(row)
    for (area, kind), items in groups.items():
        items.sort(key=lambda x: (x.valid_from, x.hour_from, x.row))
        for j, a in enumerate(items):
            for b in items[j + 1 :]:
                if not _ranges_overlap(a.valid_from, a.valid_to, b.valid_from, b.valid_to):
                    continue
                if (a.hour_from, a.hour_to) == (b.hour_from, b.hour_to):
                    code = "duplicate" if a.valid_from == b.valid_from else "overlap"
                    errors.append(
                        ErrorItem(
                            code=code,
                            message=f"{area} {kind} {_hours_label(b.hour_from, b.hour_to)} from {b.valid_from} "
                            f"{'repeats' if code == 'duplicate' else 'overlaps'} row {a.row} "
                            f"[{a.valid_from}, {a.valid_to or '…'}).",
                            field="valid_from",
                            row=b.row,
                        )
                    )
                elif a.hour_from < b.hour_to and b.hour_from < a.hour_to:
                    errors.append(
                        ErrorItem(
                            code="hours_overlap",
                            message=f"{area} {kind} hours {_hours_label(b.hour_from, b.hour_to)} overlap "
                            f"{_hours_label(a.hour_from, a.hour_to)} of row {a.row} on the same days.",
                            field="hours",
                            row=b.row,
                        )
                    )
        # elementary date intervals: every covered one needs 24 hours, none may be empty inside
        points = sorted({x.valid_from for x in items} | {x.valid_to for x in items if x.valid_to})
        for k, start in enumerate(points):
            end = points[k + 1] if k + 1 < len(points) else None
            active = [x for x in items if _ranges_overlap(x.valid_from, x.valid_to, start, end)]
            if not active:
                if end is not None:
                    errors.append(
                        ErrorItem(
                            code="gap",
                            message=f"No {kind} charge for {area} from {start} to {end} (exclusive) between two rows.",
                            field="valid_from",
                            row=min(x.row for x in items if x.valid_from == end),
                        )
                    )
                continue
            covered = set()
            for x in active:
                covered |= set(range(x.hour_from, x.hour_to))
            missing = sorted(set(range(24)) - covered)
            if missing:
                errors.append(
                    ErrorItem(
                        code="hours_gap",
                        message=f"{area} {kind} from {start}: local hours {', '.join(f'{h:02d}' for h in missing)} have no charge "
                        f"(time-of-use bands must cover the whole day).",
                        field="hours",
                        row=min(x.row for x in active),
                    )
                )
    if not rows and not errors:
        errors.append(ErrorItem(code="empty", message="The file has no charges."))
    if errors:
        errors.sort(key=lambda e: e.row or 0)
        raise ImportRejected(
            f"The electricity charge file was refused: {len(errors)} problem(s).",
            errors=errors[:MAX_ITEMS],
        )
    return rows
