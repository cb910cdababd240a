"""Bills as the COPY rows they are written as (PostgreSQL).

:class:`Rendered` is a bill turned into COPY text except for what only the write knows
(invoice id, state, number, issue date, original invoice).  :func:`render_draft` renders
any :class:`~billing.calc.BillDraft`.  :func:`bills_render` is the billing run's hot path:
it prices an account whose bill has the common shape (one contract over the whole
period, one tariff version for all of it, both bound registers present) and writes its
rows straight away, without the draft's dictionaries and objects in between, using the
same pieces as :func:`~billing.calc.bill_compute` (``interval_values``, ``rate``,
``totals``, ``hold_reasons``; for block prices the trailing year's register and energy
recorded alike, and so are the registers a year earlier behind the comparison).  Any
other account goes through ``bill_compute`` and :func:`render_draft`.  Both give the
same rows (``tests/billing/test_render.py`` compares them on every shape of account).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from billing.calc import (
    KWH_PER_MWH,
    BillDraft,
    BillingError,
    ContractInterval,
    Plausibility,
    Register,
    _energy,
    _iso,
    bill_compute,
    bills_each,
    hold_reasons,
    interval_values,
    month_starts_inside,
    one_year_earlier,
    prices_by_blocks,
    segment_determinants,
    totals,
)
from heatutility.db import copy_escape as esc


class Rendered(NamedTuple):
    """One bill's COPY text, invoice and lines, short of the write's own columns."""

    account_id: int
    held: bool
    period: str  # "period_start\tperiod_end"
    hold: str  # hold reasons, escaped
    body: str  # "currency\tnet\tvat\tgross\tpaid\t" (original_id follows)
    rest: str  # "\thas_estimated_reads\t…\tcomparison\tpdf\t" (created_at follows)
    lines: list[str]  # each line's columns after invoice_id and position


_JSON = json.JSONEncoder(separators=(",", ":"))  # same bytes as json.dumps(..., separators)
try:  # the C encoder made once, not per call (JSONEncoder.encode builds one each time)
    from json.encoder import c_make_encoder, encode_basestring_ascii

    _C_JSON = c_make_encoder(
        None, None, encode_basestring_ascii, None, ":", ",", False, False, True
    )
except ImportError:  # pragma: no cover - pure-Python json
    _C_JSON = None
    from json.encoder import py_encode_basestring_ascii as encode_basestring_ascii


def json_text(value) -> str:
    """Compact JSON (same text as ``json.dumps(value, separators=(",", ":"))``), escaped.

    Only plain lists/dicts of str/int/None/bool go through the shared C encoder (no
    cycle check needed: the drafts' JSON is built fresh from values); anything else
    takes the standard encoder."""
    if _C_JSON is not None:
        try:
            return esc("".join(_C_JSON(value, 0)))
        except TypeError:
            pass
    return esc(_JSON.encode(value))


_N = "\\N"  # COPY's NULL


def _null(value) -> str:
    return _N if value is None else str(value)


class Caches:
    """Texts shared by the bills of one write: escaped line texts, JSON strings, the
    rows of lines that rating hands out to many bills (kept with their line objects)."""

    __slots__ = ("blocks", "heads", "json", "priced", "units")

    def __init__(self) -> None:
        self.heads: dict[tuple, str] = {}
        self.units: dict[str, str] = {}
        self.json: dict[str, str] = {}
        self.priced: dict[int, tuple[Any, str]] = {}
        self.blocks: dict[int, tuple[Any, bool]] = {}

    def prices_by_blocks(self, spec) -> bool:
        """``billing.calc.prices_by_blocks`` once per tariff version (kept with it)."""
        entry = self.blocks.get(id(spec))
        if entry is None or entry[0] is not spec:
            entry = self.blocks[id(spec)] = (spec, prices_by_blocks(spec))
        return entry[1]

    def head(self, line, description: str) -> str:
        key = (line.component, line.kind, description)
        text = self.heads.get(key)
        if text is None:
            text = self.heads[key] = "\t".join(esc(t) for t in key)
        return text

    def unit(self, unit: str) -> str:
        text = self.units.get(unit)
        if text is None:
            text = self.units[unit] = esc(unit)
        return text

    def string(self, value: str) -> str:
        text = self.json.get(value)
        if text is None:
            text = self.json[value] = encode_basestring_ascii(value)
        return text


def _line_columns(
    line, ps: str, pe: str, version: str, description: str, explanation: str, cache: Caches
) -> str:
    """A line's columns from period_start on (``LINE_COLUMNS`` order)."""
    return (
        f"{ps}\t{pe}\t{version}\t{cache.head(line, description)}\t{esc(explanation)}\t"
        f"{line.quantity}\t{cache.unit(line.unit)}\t{line.unit_price}\t{line.amount}\t"
        f"{line.vat_rate}"
    )


def _line_text(line, cache: Caches) -> str:
    """A draft line's columns after invoice_id and position."""
    ps, pe = line.period_start, line.period_end
    columns = _line_columns(
        line,
        _N if ps is None else _iso(ps),
        _N if pe is None else _iso(pe),
        _null(line.tariff_version_id),
        line.description,
        line.explanation,
        cache,
    )
    return f"{_null(line.connection_id)}\t{columns}"


def render_draft(draft: BillDraft, cache: Caches | None = None) -> Rendered:
    """Any draft's rows (``cache``: texts shared by the drafts of one write)."""
    cache = Caches() if cache is None else cache
    return Rendered(
        draft.account_id,
        draft.held,
        f"{_iso(draft.period_start)}\t{_iso(draft.period_end)}",
        esc("; ".join(draft.hold_reasons)) if draft.hold_reasons else "",
        f"{esc(draft.currency)}\t{draft.net}\t{draft.vat}\t{draft.gross}\t0\t",
        f"\t{'t' if draft.has_estimated_reads else 'f'}\t"
        f"{json_text(draft.tariff_version_ids)}\t{json_text(draft.readings)}\t"
        f"{json_text({'segments': draft.determinants, 'vat': draft.vat_breakdown})}\t"
        f"{json_text(draft.comparison)}\t\t",
        [_line_text(line, cache) for line in draft.lines],
    )


# -- the hot path ---------------------------------------------------------------------


def _reading_json(reg: Register, cid: int, on: dt.date, cache: Caches) -> str:
    # the keys and order of bill_compute's reading dicts (calc.bill_compute.use)
    return (
        f'{{"id":{reg.id},"connection_id":{cid},"on":"{_iso(on)}",'
        f'"energy_kwh":"{reg.energy_kwh!s}","volume_m3":"{reg.volume_m3!s}",'
        f'"status":{cache.string(reg.status)},"method":{cache.string(reg.method)}}}'
    )


def _opt(value) -> str:
    return "null" if value is None else f'"{value}"'


def bill_render(
    *,
    account_id: int,
    period_start: dt.date,
    period_end: dt.date,
    currency: str,
    interval: ContractInterval,
    spec: Any,
    registers: dict[tuple[int, dt.date], Register],
    rate: Callable[..., list],
    determinants_type: type,
    plausibility: Plausibility,
    cache: Caches,
) -> Rendered | None:
    """The rows of an account billed by one contract interval over the whole period
    under one tariff version; None when a register is missing or decreased, or the
    tariff is in another currency (then ``bill_compute`` makes the bill, or says why it
    cannot)."""
    if spec.currency != currency:
        return None  # rating rounds in the tariff's currency, the bill in the account's
    cid = interval.connection_id
    get = registers.get
    first = get((cid, period_start))
    last = get((cid, period_end))
    if first is None or last is None:
        return None
    try:
        (energy_kwh, volume, ly_energy, ly_registers, annual_mwh, return_temp, flow_temp) = (
            interval_values(interval, first, last, get)
        )
    except BillingError:
        return None
    energy_mwh = _energy(energy_kwh / KWH_PER_MWH)
    det = segment_determinants(
        determinants_type,
        interval,
        period_start,
        period_end,
        energy_mwh=energy_mwh,
        volume=volume,
        temps=(return_temp, flow_temp),
        annual_mwh=annual_mwh,
    )
    # rate rounds each amount to the minor unit of the tariff's currency, which is the
    # bill's: bill_compute's second rounding changes nothing here
    priced = rate(determinants=det, tariff=spec)
    net, vat, breakdown = totals(priced, currency)
    days = (period_end - period_start).days
    capacity_mwh = plausibility.full_load_mwh(interval.contracted_kw, period_start, period_end)
    if ly_registers is None:
        last_year_mwh, ly_json, ly_estimated = None, "[]", False
    else:
        # the comparison's registers a year before the period's bounds (bill_compute)
        last_year_mwh = _energy(ly_energy / KWH_PER_MWH)
        ly_first, ly_last = ly_registers
        ly_json = _reading_json(ly_first, cid, one_year_earlier(period_start), cache)
        if ly_last.id != ly_first.id:
            ly_end = _reading_json(ly_last, cid, one_year_earlier(period_end), cache)
            ly_json = f"{ly_json},{ly_end}"
        ly_json = f"[{esc(ly_json)}]"
        ly_estimated = ly_first.status == "estimated" or ly_last.status == "estimated"
    holds = hold_reasons(
        energy_mwh,
        capacity_mwh,
        last_year_mwh,
        plausibility,
        ((cid, return_temp, flow_temp),),
        last_year_estimated=ly_estimated,
    )
    version_id = spec.version_id
    ps, pe = _iso(period_start), _iso(period_end)
    lines = []
    known = cache.priced
    for line in priced:
        entry = known.get(id(line))
        if entry is None or entry[0] is not line:
            entry = (line, _priced_line_text(line, version_id, ps, pe, cache))
            if len(known) < 64:  # the few lines rating shares between bills come first
                known[id(line)] = entry
        lines.append(f"{cid}\t{entry[1]}")
    # block prices: the trailing year's first register is used and recorded (bill_compute)
    annual = trailing = None
    if cache.prices_by_blocks(spec):
        annual_from = one_year_earlier(period_end)
        annual = f',"annual_energy_mwh":{_opt(annual_mwh)},"annual_from":"{_iso(annual_from)}"'
        trailing = get((cid, annual_from))
    segment = (
        f'{{"connection_id":{cid},"period_start":"{ps}","period_end":"{pe}",'
        f'"tariff_version_id":{version_id},"energy_mwh":"{energy_mwh}","volume_m3":"{volume}",'
        f'"return_temp_c":{_opt(return_temp)},"flow_temp_c":{_opt(flow_temp)},'
        f'"contracted_kw":"{interval.contracted_kw}","heated_area_m2":"{interval.heated_area_m2}",'
        f'"days":{days}{annual or ""}}}'
    )
    vat_json = ",".join(
        f'{{"rate":"{row["rate"]}","base":"{row["base"]}","vat":"{row["vat"]}"}}'
        for row in breakdown
    )
    estimated = first.status == "estimated" or last.status == "estimated"
    readings = (
        f"[{_reading_json(first, cid, period_start, cache)},"
        f"{_reading_json(last, cid, period_end, cache)}]"
    )
    if trailing is not None and trailing.id != first.id and trailing.id != last.id:
        # a year before the period: the first in (connection, date) order
        readings = f"[{_reading_json(trailing, cid, annual_from, cache)},{readings[1:]}"
        estimated = estimated or trailing.status == "estimated"
    return Rendered(
        account_id,
        bool(holds),
        f"{ps}\t{pe}",
        esc("; ".join(holds)) if holds else "",
        f"{esc(currency)}\t{net}\t{vat}\t{net + vat}\t0\t",
        f"\t{'t' if estimated else 'f'}\t[{version_id}]\t{esc(readings)}\t"
        f'{{"segments":[{segment}],"vat":[{vat_json}]}}\t'
        f'{{"energy_mwh":"{energy_mwh}","last_year_mwh":{_opt(last_year_mwh)},'
        f'"last_year_readings":{ly_json},'
        f'"last_year_estimated":{"true" if ly_estimated else "false"}}}\t\t',
        lines,
    )


def _priced_line_text(line, version_id: int, ps: str, pe: str, cache: Caches) -> str:
    """A priced line's columns after connection_id, as bill_compute's DraftLine writes
    them (description and explanation cut to the columns' lengths)."""
    return _line_columns(
        line, ps, pe, str(version_id), line.description[:200], line.explanation[:300], cache
    )


def bills_render(
    *,
    currency: str,
    account_ids: Sequence[int],
    period_start: dt.date,
    period_end: dt.date,
    intervals: dict[int, list[ContractInterval]],
    slices: dict,
    registers: dict[tuple[int, dt.date], Register],
    rate: Callable[..., list],
    determinants_type: type,
    plausibility: Plausibility,
) -> tuple[list[Rendered], dict[int, BillingError]]:
    """Rows for ``account_ids`` (in order) and failures by account; see the module."""
    cache = Caches()

    def rows(account_id: int) -> Rendered:
        ivs = intervals.get(account_id, ())
        if len(ivs) == 1:
            iv = ivs[0]
            pieces = slices.get(iv.connection_id, ())
            if (
                iv.start == period_start
                and iv.end == period_end
                and not iv.kw_changes
                and not iv.m2_changes
                and len(pieces) == 1
                and pieces[0][0] <= period_start
                and pieces[0][1] >= period_end
                and not month_starts_inside(period_start, period_end)  # a month: no seasons split
            ):
                rendered = bill_render(
                    account_id=account_id,
                    period_start=period_start,
                    period_end=period_end,
                    currency=currency,
                    interval=iv,
                    spec=pieces[0][2],
                    registers=registers,
                    rate=rate,
                    determinants_type=determinants_type,
                    plausibility=plausibility,
                    cache=cache,
                )
                if rendered is not None:
                    return rendered
        draft = bill_compute(
            account_id=account_id,
            period_start=period_start,
            period_end=period_end,
            currency=currency,
            intervals=ivs,
            slices=slices,
            registers=registers,
            rate=rate,
            determinants_type=determinants_type,
            plausibility=plausibility,
        )
        return render_draft(draft, cache)

    return bills_each(account_ids, rows)
