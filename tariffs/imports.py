"""Parsing hourly CSV files (SCADA and ENTSO-E day-ahead exports) into UTC hourly frames.

Pure: text in, a pandas frame with ``hour_start`` (aware UTC) out, or :class:`ImportRejected`
listing every problem with its CSV row (the header is row 1).

Timestamps
  * ``time`` / ``start`` column with a UTC offset (``2025-10-26T02:00:00+02:00``) is
    unambiguous and preferred;
  * naive local times are read in the file's zone.  On the 25-hour day the repeated hour
    must appear twice, first in summer time then in winter time (or marked ``(CEST)`` /
    ``(CET)`` as ENTSO-E does); a local time that does not exist (the skipped hour of the
    23-hour day) is an error;
  * ENTSO-E ``MTU (CET/CEST)`` columns ``dd.mm.yyyy HH:MM - dd.mm.yyyy HH:MM`` use the start.

Checks: duplicates, gaps (every missing hour between the first and the last), whole local
days with 23, 24 or 25 hours as the zone's DST rules require, numeric values.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd

from heatutility.errors import DomainError, ErrorItem

UNIT_COLUMNS = ("heat_mwh", "electricity_mwh", "fuel_mwh", "source_in_c", "source_out_c", "supply_c", "return_c")
MAX_ITEMS = 50


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
        errors.append(ErrorItem(code="mixed_time_zones", message="Some timestamps have a UTC offset and some do not.", field=field))
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
        errors.append(ErrorItem(code="invalid_time", message=f"{raw.iloc[idx]!r} is not a timestamp.", field=field, row=int(idx) + 2))
    if bad.any():
        return pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    if has_offset.all():
        return parsed
    naive = pd.DatetimeIndex(parsed)
    if marker.notna().any():
        ambiguous = (marker == "CEST").to_numpy() | (marker == "EEST").to_numpy()
    else:
        # the repeated hour: first occurrence summer time, second winter time
        dup_rank = pd.Series(naive).groupby(pd.Series(naive)).cumcount().to_numpy()
        ambiguous = dup_rank == 0
    local = naive.tz_localize(time_zone, ambiguous=ambiguous, nonexistent="NaT")
    nonexistent = np.flatnonzero(pd.isna(local))
    for idx in nonexistent[:MAX_ITEMS]:
        errors.append(ErrorItem(
            code="nonexistent_time",
            message=f"{raw.iloc[idx]} does not exist in {time_zone} (clocks skip this hour on the 23-hour day).",
            field=field, row=int(idx) + 2,
        ))
    return pd.Series(local.tz_convert("UTC"), index=raw.index)


def _check_series(times: pd.Series, time_zone: str, errors: list[ErrorItem], field: str) -> None:
    if times.isna().any() or times.empty:
        return
    dup = times.duplicated(keep="first")
    for idx in np.flatnonzero(dup.to_numpy())[:MAX_ITEMS]:
        first = int(np.flatnonzero((times == times.iloc[idx]).to_numpy())[0]) + 2
        local = times.iloc[idx].tz_convert(time_zone)
        errors.append(ErrorItem(
            code="duplicate_hour",
            message=f"Hour {local:%Y-%m-%d %H:%M %Z} (UTC {times.iloc[idx]:%Y-%m-%d %H:%M}) appears twice (first on row {first}).",
            field=field, row=int(idx) + 2,
        ))
    off_hour = (times.dt.minute != 0) | (times.dt.second != 0)
    for idx in np.flatnonzero(off_hour.to_numpy())[:MAX_ITEMS]:
        errors.append(ErrorItem(code="not_hourly", message="Values must start on the hour.", field=field, row=int(idx) + 2))
    unique = pd.DatetimeIndex(times.drop_duplicates()).sort_values()
    expected = pd.date_range(unique[0], unique[-1], freq="h", tz="UTC")
    missing = expected.difference(unique)
    if len(missing):
        shown = ", ".join(f"{m.tz_convert(time_zone):%Y-%m-%d %H:%M %Z}" for m in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        errors.append(ErrorItem(code="missing_hours", message=f"{len(missing)} hour(s) missing: {shown}{more}.", field=field))
    local = unique.tz_convert(time_zone)
    if local[0].hour != 0 or local[-1].hour != 23:
        errors.append(ErrorItem(
            code="partial_day",
            message=f"The file must hold whole local days ({time_zone}): it runs from {local[0]:%Y-%m-%d %H:%M} to {local[-1]:%Y-%m-%d %H:%M}.",
            field=field,
        ))
    if not len(missing) and not dup.any():
        counts = pd.Series(1, index=local).groupby(local.date).sum()
        for day, count in counts.items():
            start = pd.Timestamp(day).tz_localize(time_zone)
            end = (pd.Timestamp(day) + pd.Timedelta(days=1)).tz_localize(time_zone)
            expected_hours = int((end - start) / pd.Timedelta(hours=1))
            if day not in (local[0].date(), local[-1].date()) and count != expected_hours:
                errors.append(ErrorItem(
                    code="day_length",
                    message=f"{day} has {count} hours in the file but is a {expected_hours}-hour day in {time_zone}.",
                    field=field,
                ))


def _numbers(frame: pd.DataFrame, column: str, errors: list[ErrorItem], *, required: bool) -> pd.Series:
    if column not in frame.columns:
        if required:
            errors.append(ErrorItem(code="missing_column", message=f"Column {column!r} is required.", field=column))
        return pd.Series(np.nan, index=frame.index)
    text = frame[column].str.strip().str.replace(",", ".", regex=False)
    values = pd.to_numeric(text.replace({"": None, "-": None, "n/e": None}), errors="coerce")
    bad = values.isna() & text.ne("") & ~text.isin(["-", "n/e"])
    for idx in np.flatnonzero(bad.to_numpy())[:MAX_ITEMS]:
        errors.append(ErrorItem(code="invalid_number", message=f"{frame[column].iloc[idx]!r} is not a number.", field=column, row=int(idx) + 2))
    if required:
        empty = values.isna() & ~bad
        for idx in np.flatnonzero(empty.to_numpy())[:MAX_ITEMS]:
            errors.append(ErrorItem(code="required", message="A value is required.", field=column, row=int(idx) + 2))
    return values


def _time_column(frame: pd.DataFrame, errors: list[ErrorItem]) -> str | None:
    for c in frame.columns:
        if c.strip().lower() in ("time", "start", "hour_start", "timestamp") or c.strip().upper().startswith("MTU"):
            return c
    errors.append(ErrorItem(code="missing_column", message="No time column (time, start or 'MTU (CET/CEST)').", field="time"))
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
        out[c] = _numbers(frame, c, errors, required=c == "heat_mwh")
    if (out["heat_mwh"] < 0).any():
        for idx in np.flatnonzero((out["heat_mwh"] < 0).to_numpy())[:MAX_ITEMS]:
            errors.append(ErrorItem(code="negative", message="Heat delivered cannot be negative.", field="heat_mwh", row=int(idx) + 2))
    if tcol and "hour_start" in out:
        _check_series(out["hour_start"], time_zone, errors, tcol)
    if errors:
        raise ImportRejected(f"The operating data file was refused: {len(errors)} problem(s).", errors=errors)
    return out


PRICE_HEADER = re.compile(r"price.*\[(?P<cur>[A-Z]{3})\s*/\s*MWh\]", re.IGNORECASE)


def parse_spot_prices(text: str, *, time_zone: str, currency: str) -> pd.DataFrame:
    """ENTSO-E day-ahead export (``MTU (CET/CEST)``, ``Day-ahead Price [EUR/MWh]``) or ``time,price``."""
    errors: list[ErrorItem] = []
    frame = _read(text)
    frame.columns = [c.strip() for c in frame.columns]
    tcol = _time_column(frame, errors)
    pcol = None
    for c in frame.columns:
        m = PRICE_HEADER.search(c)
        if m:
            pcol = c
            if m.group("cur").upper() != currency:
                errors.append(ErrorItem(code="currency", message=f"The file's prices are in {m.group('cur')}, the import expects {currency}.", field=c))
            break
        if c.lower() in ("price", "price_per_mwh", "spot"):
            pcol = c
            break
    if pcol is None:
        errors.append(ErrorItem(code="missing_column", message="No price column ('Day-ahead Price [CUR/MWh]' or 'price').", field="price"))
    out = pd.DataFrame(index=frame.index)
    if tcol:
        out["hour_start"] = _parse_times(frame[tcol], time_zone, errors, tcol)
    if pcol:
        out["price_per_mwh"] = _numbers(frame, pcol, errors, required=True)
    if tcol and "hour_start" in out:
        _check_series(out["hour_start"], time_zone, errors, tcol)
    if errors:
        raise ImportRejected(f"The price file was refused: {len(errors)} problem(s).", errors=errors)
    return out
