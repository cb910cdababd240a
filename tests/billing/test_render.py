"""The billing run's rows straight from the registers (``bills_render``) are exactly the rows
of ``bill_compute``'s draft (``render_draft``), for every published tariff and every shape
of account: the common shape takes the direct path, every other shape falls back.

Pure functions, no database: the COPY text is compared byte for byte.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal as D

import pytest

from billing.calc import BillingError, ContractInterval, Plausibility, Register, bill_compute
from billing.services import render
from tariffs.published import PUBLISHED_TARIFFS
from tariffs.rating import Determinants, TariffSpec, components_from_data, rate

NOV, DEC = dt.date(2026, 11, 1), dt.date(2026, 12, 1)
NOV_LY, DEC_LY = dt.date(2025, 11, 1), dt.date(2025, 12, 1)


def spec(key: str, *, version_id: int = 7, valid_from=None, valid_to=None) -> TariffSpec:
    entry = PUBLISHED_TARIFFS[key]
    return TariffSpec(
        version_id=version_id,
        tariff_code=key,
        currency=entry["currency"],
        vat_rate=D(entry["vat_rate"]),
        components=components_from_data(entry["components"]),
        prices_include_vat=entry["prices_include_vat"],
        valid_from=valid_from,
        valid_to=valid_to,
    )


def register(
    rid: int,
    energy: str,
    volume: str,
    *,
    status="actual",
    method="reading",
    flow: str | None = None,
    ret: str | None = None,
) -> Register:
    return Register(
        rid,
        D(energy),
        D(volume),
        None if flow is None else D(flow),
        None if ret is None else D(ret),
        status,
        method,
    )


def direct(*, interval, tariff, registers, currency, plausibility=None, account_id=1):
    """The direct path's rows for one account (None: it declined)."""
    return render.bill_render(
        account_id=account_id,
        period_start=NOV,
        period_end=DEC,
        currency=currency,
        interval=interval,
        spec=tariff,
        registers=registers,
        rate=rate,
        determinants_type=Determinants,
        plausibility=plausibility or Plausibility(),
        cache=render.Caches(),
    )


def both(*, intervals, slices, registers, currency, plausibility=None, account_id=1):
    """(``bills_render`` rows, ``bill_compute`` + ``render_draft`` rows) for one account;
    failures as {account: code}."""
    plausibility = plausibility or Plausibility()
    rendered, failures = render.bills_render(
        currency=currency,
        account_ids=[account_id],
        period_start=NOV,
        period_end=DEC,
        intervals={account_id: intervals},
        slices=slices,
        registers=registers,
        rate=rate,
        determinants_type=Determinants,
        plausibility=plausibility,
    )
    try:
        draft = bill_compute(
            account_id=account_id,
            period_start=NOV,
            period_end=DEC,
            currency=currency,
            intervals=intervals,
            slices=slices,
            registers=registers,
            rate=rate,
            determinants_type=Determinants,
            plausibility=plausibility,
        )
    except BillingError as exc:
        return {k: v.code for k, v in failures.items()}, {account_id: exc.code}
    return rendered, [render.render_draft(draft)]


def _interval(cid=11, start=NOV, end=DEC, kw="10.00", m2="130.00"):
    return ContractInterval(cid, start, end, D(kw), D(m2))


def _registers(
    cid=11,
    *,
    start="10000.000000",
    end="12191.090000",
    ly=True,
    end_status="actual",
    ly_status=("actual", "actual"),
    **kw,
):
    regs = {
        (cid, NOV): register(1, start, "1000.0000", flow="70000.00", ret="36000.00", **kw),
        (cid, DEC): register(
            2, end, "1057.6602", flow="74036.21", ret="38075.77", status=end_status
        ),
    }
    if ly:
        methods = ["reading" if status == "actual" else "interpolated" for status in ly_status]
        regs[(cid, NOV_LY)] = register(
            3, "1000.000000", "500.0000", status=ly_status[0], method=methods[0]
        )
        regs[(cid, DEC_LY)] = register(
            4, "3500.500000", "560.0000", status=ly_status[1], method=methods[1]
        )
    return regs


@pytest.mark.parametrize("key", sorted(PUBLISHED_TARIFFS))
def test_common_shape_gives_the_drafts_rows_for_every_published_tariff(key):
    s = spec(key)
    rows = direct(interval=_interval(), tariff=s, registers=_registers(), currency=s.currency)
    assert rows is not None  # the direct path took it
    _, fallback = both(
        intervals=[_interval()],
        slices={11: [(NOV, DEC, s)]},
        registers=_registers(),
        currency=s.currency,
    )
    assert [rows] == fallback
    assert len(rows.lines) >= 1


@pytest.mark.parametrize("key", sorted(PUBLISHED_TARIFFS))
def test_random_consumption_gives_the_drafts_rows(key):
    s = spec(key)
    rnd = random.Random(key)
    for account_id in range(1, 41):
        start = D(rnd.randrange(0, 10**9)) / 1000
        energy = D(rnd.randrange(0, 4 * 10**7)) / 1000  # up to 40 MWh in the month
        regs = _registers(
            start=str(start),
            end=str(start + energy),
            ly=rnd.random() < 0.7,
            status=rnd.choice(["actual", "estimated"]),
            end_status=rnd.choice(["actual", "estimated"]),
            method=rnd.choice(["reading", "interpolated"]),
            ly_status=(
                rnd.choice(["actual", "estimated"]),
                rnd.choice(["actual", "edited", "estimated"]),
            ),
        )
        interval = _interval(
            kw=str(rnd.choice([5, 9, 10, 12.5, 80, 120])), m2=str(rnd.choice([81, 130, 245]))
        )
        rows = direct(
            interval=interval, tariff=s, registers=regs, currency=s.currency, account_id=account_id
        )
        assert rows is not None
        _, fallback = both(
            intervals=[interval],
            slices={11: [(NOV, DEC, s)]},
            registers=regs,
            currency=s.currency,
            account_id=account_id,
        )
        assert [rows] == fallback, (key, account_id)


def test_held_bills_carry_the_same_reasons():
    s = spec("hofor-2024")
    regs = _registers(end="99000.000000")  # 89 MWh in a month on 10 kW: implausible
    rows = direct(interval=_interval(), tariff=s, registers=regs, currency=s.currency)
    _, fallback = both(
        intervals=[_interval()], slices={11: [(NOV, DEC, s)]}, registers=regs, currency=s.currency
    )
    assert [rows] == fallback
    assert rows.held
    assert "contracted capacity" in rows.hold


@pytest.mark.parametrize(
    "shape",
    [
        "move_in",
        "two_contracts",
        "tariff_change",
        "tariff_in_other_currency",
        "missing_register",
        "negative",
        "no_tariff",
        "no_contract",
    ],
)
def test_other_shapes_fall_back_to_bill_compute(shape):
    s = spec("hofor-2024")
    mid = dt.date(2026, 11, 16)
    intervals = [_interval()]
    slices = {11: [(NOV, DEC, s)]}
    regs = _registers()
    currency = s.currency
    if shape == "move_in":
        intervals = [_interval(start=mid)]
        regs[(11, mid)] = register(5, "11000.000000", "1030.0000")
        regs[(11, dt.date(2025, 11, 16))] = register(6, "2000.000000", "530.0000")
    elif shape == "two_contracts":
        intervals = [_interval(end=mid), _interval(cid=12, start=mid)]
        regs[(11, mid)] = register(5, "11000.000000", "1030.0000")
        regs.update(
            {(12, d): register(10 + i, str(100 * i), str(i)) for i, d in enumerate((mid, DEC))}
        )
    elif shape == "tariff_change":
        slices = {11: [(NOV, mid, s), (mid, DEC, spec("hofor-2024", version_id=8))]}
    elif shape == "tariff_in_other_currency":
        currency = "EUR"
    elif shape == "missing_register":
        del regs[(11, DEC)]
    elif shape == "negative":
        regs = _registers(start="20000.000000", end="19000.000000")
    elif shape == "no_tariff":
        slices = {11: []}
    elif shape == "no_contract":
        intervals = []
    rendered, fallback = both(intervals=intervals, slices=slices, registers=regs, currency=currency)
    assert rendered == fallback
    if shape in ("tariff_in_other_currency", "missing_register", "negative"):
        assert direct(interval=intervals[0], tariff=s, registers=regs, currency=currency) is None


def test_escaping_of_texts_with_tabs_and_backslashes():
    s = spec("hofor-2024")
    regs = _registers(status="actual", method="vendor\\fix\tup")
    rows = direct(interval=_interval(), tariff=s, registers=regs, currency=s.currency)
    _, fallback = both(
        intervals=[_interval()], slices={11: [(NOV, DEC, s)]}, registers=regs, currency=s.currency
    )
    assert [rows] == fallback
    # JSON escapes the backslash and the tab, COPY escapes JSON's backslashes
    assert '"method":"vendor\\\\\\\\fix\\\\tup"' in rows.rest


@pytest.mark.parametrize(
    ("flow", "ret", "reason"),
    [
        ("74036.21", "38075.77", None),  # 70.00 / 36.00 °C
        # the return register rolled over at 100,000 m³·°C: (75.77 − 36,000.00) / 57.6602
        ("74036.21", "75.77", "volume-weighted return temperature -623.03 °C on connection 11"),
        # the flow register jumped: (84,036.21 − 70,000.00) / 57.6602 = 243.43 °C
        ("84036.21", "38075.77", "volume-weighted flow temperature 243.43 °C on connection 11"),
    ],
)
def test_implausible_temperatures_hold_the_bill_on_both_paths(flow, ret, reason):
    s = spec("hofor-2024")  # cooling ΔT from energy and volume: the bill is still priced
    regs = _registers()
    regs[(11, DEC)] = register(2, "12191.090000", "1057.6602", flow=flow, ret=ret)
    rows = direct(interval=_interval(), tariff=s, registers=regs, currency=s.currency)
    _, fallback = both(
        intervals=[_interval()], slices={11: [(NOV, DEC, s)]}, registers=regs, currency=s.currency
    )
    assert [rows] == fallback
    assert rows.held is (reason is not None)
    if reason:
        assert reason in rows.hold


def _segments(rows):
    """The segments a row's determinants record (``rest``: … readings, determinants …)."""
    import json

    columns = rows.rest.split("\t")
    return json.loads(columns[4].replace("\\\\", "\\"))["segments"]


def _readings(rows):
    import json

    return json.loads(rows.rest.split("\t")[3].replace("\\\\", "\\"))


@pytest.mark.parametrize("trailing", [True, False])
def test_block_prices_record_the_trailing_year_on_both_paths(trailing):
    """A block-priced bill uses the register a year before the period's end: the direct
    path records it with the readings and the trailing year's MWh in the segment, as
    bill_compute does; without a register then, the segment says so (null)."""
    s = spec("waldkraiburg-2025")
    regs = _registers(ly=trailing)
    rows = direct(interval=_interval(), tariff=s, registers=regs, currency=s.currency)
    assert rows is not None  # the direct path took it
    _, fallback = both(
        intervals=[_interval()], slices={11: [(NOV, DEC, s)]}, registers=regs, currency=s.currency
    )
    assert [rows] == fallback
    [segment] = _segments(rows)
    assert segment["annual_from"] == "2025-12-01"
    if trailing:  # 12,191.09 − 3,500.50 kWh: 8.690590 MWh in the trailing year
        assert segment["annual_energy_mwh"] == "8.690590"
        assert [r["on"] for r in _readings(rows)] == ["2025-12-01", "2026-11-01", "2026-12-01"]
    else:
        assert segment["annual_energy_mwh"] is None
        assert [r["on"] for r in _readings(rows)] == ["2026-11-01", "2026-12-01"]


def test_an_estimated_trailing_register_marks_the_bill_estimated_on_both_paths():
    s = spec("waldkraiburg-2025")
    regs = _registers()
    regs[(11, DEC_LY)] = register(
        4, "3500.500000", "560.0000", status="estimated", method="interpolated"
    )
    rows = direct(interval=_interval(), tariff=s, registers=regs, currency=s.currency)
    _, fallback = both(
        intervals=[_interval()], slices={11: [(NOV, DEC, s)]}, registers=regs, currency=s.currency
    )
    assert [rows] == fallback
    assert rows.rest.startswith("\tt\t")  # has_estimated_reads


def test_tariffs_without_blocks_record_no_trailing_year():
    s = spec("hofor-2024")
    rows = direct(interval=_interval(), tariff=s, registers=_registers(), currency=s.currency)
    assert "annual_energy_mwh" not in _segments(rows)[0]
    assert [r["on"] for r in _readings(rows)] == ["2026-11-01", "2026-12-01"]


@pytest.mark.parametrize("key", ["hofor-2024", "waldkraiburg-2025"])
@pytest.mark.parametrize("measured", [False, True])
def test_a_tariff_change_inside_the_period_bills_the_interval_rounded_once(key, measured):
    """A tariff version changing on the 16th: the bill falls back to bill_compute (the
    same rows either way), and the slices' MWh add up to the register difference rounded
    once, the MWh the comparison shows: 1,000.0005 kWh shared by days is 1.000001 MWh, not
    0.500000 + 0.500000; 1,000.001 kWh measured 500.0005 + 500.0005 on the 16th is
    1.000001 MWh too, not 0.500001 + 0.500001 (each side rounded on its own)."""
    mid = dt.date(2026, 11, 16)
    old, new = spec(key), spec(key, version_id=8)
    regs = _registers(start="10000.000000", end="11000.001000" if measured else "11000.000500")
    if measured:
        regs[(11, mid)] = register(5, "10500.000500", "1028.8301")
    slices = {11: [(NOV, mid, old), (mid, DEC, new)]}
    rendered, fallback = both(
        intervals=[_interval()], slices=slices, registers=regs, currency=old.currency
    )
    assert rendered == fallback
    [rows] = rendered
    segments = _segments(rows)
    expected = ["0.500000", "0.500001"] if not measured else ["0.500001", "0.500000"]
    assert [seg["energy_mwh"] for seg in segments] == expected
    assert '"energy_mwh":"1.000001"' in rows.rest  # the comparison
    if key == "waldkraiburg-2025":  # both slices: the interval's trailing year, recorded once
        # 11,000.0005 − 3,500.5 kWh = 7.4995005 MWh, half up (7.499501 measured)
        assert {seg["annual_energy_mwh"] for seg in segments} == {"7.499501"}
        assert [r["on"] for r in _readings(rows)].count("2025-12-01") == 1


def _comparison(rows):
    """The comparison a row records (``rest``: … determinants, comparison, pdf …)."""
    import json

    return json.loads(rows.rest.split("\t")[5].replace("\\\\", "\\"))


@pytest.mark.parametrize("key", ["hofor-2024", "waldkraiburg-2025"])
@pytest.mark.parametrize(
    "last_year",
    ["actual", "estimated_start", "estimated_end", "none", "one_missing", "someone_else"],
)
def test_the_comparison_records_last_years_registers_on_both_paths(key, last_year):
    """The registers a year before the period's bounds that give ``last_year_mwh`` are
    recorded in the comparison, byte for byte alike on the direct path and through
    bill_compute, with whether one of them was estimated; none without a figure (a
    register missing a year earlier, or somebody else supplied then)."""
    s = spec(key)
    interval = _interval()
    ly_status = {
        "estimated_start": ("estimated", "actual"),
        "estimated_end": ("actual", "estimated"),
    }.get(last_year, ("actual", "actual"))
    regs = _registers(ly=last_year != "none", ly_status=ly_status)
    if last_year == "one_missing":
        del regs[(11, NOV_LY)]
    if last_year == "someone_else":  # their contract ended on 15 November last year
        interval = interval._replace(others_until=dt.date(2025, 11, 16))
    rows = direct(interval=interval, tariff=s, registers=regs, currency=s.currency)
    assert rows is not None  # the direct path took it
    _, fallback = both(
        intervals=[interval], slices={11: [(NOV, DEC, s)]}, registers=regs, currency=s.currency
    )
    assert [rows] == fallback
    comparison = _comparison(rows)
    if last_year in ("none", "one_missing", "someone_else"):
        assert comparison["last_year_mwh"] is None
        assert comparison["last_year_readings"] == []
        assert comparison["last_year_estimated"] is False
        return
    # 3,500.5 − 1,000 kWh: 2.500500 MWh, from registers 3 and 4
    assert comparison["last_year_mwh"] == "2.500500"
    assert comparison["last_year_readings"] == [
        {
            "id": 3,
            "connection_id": 11,
            "on": "2025-11-01",
            "energy_kwh": "1000.000000",
            "volume_m3": "500.0000",
            "status": ly_status[0],
            "method": "reading" if ly_status[0] == "actual" else "interpolated",
        },
        {
            "id": 4,
            "connection_id": 11,
            "on": "2025-12-01",
            "energy_kwh": "3500.500000",
            "volume_m3": "560.0000",
            "status": ly_status[1],
            "method": "reading" if ly_status[1] == "actual" else "interpolated",
        },
    ]
    assert comparison["last_year_estimated"] is (last_year != "actual")
    # the comparison's registers are not the bill's readings (bar the trailing year's,
    # which block prices use): an estimate there does not make the bill's reads estimated
    estimated_reads = rows.rest.startswith("\tt\t")
    assert estimated_reads is (key == "waldkraiburg-2025" and last_year == "estimated_end")


def test_an_estimated_last_year_says_so_in_the_hold_on_both_paths():
    s = spec("hofor-2024")
    # 2.191090 MWh against 0.600000 MWh last year (3.65×), last year's end estimated
    regs = _registers()
    regs[(11, DEC_LY)] = register(
        4, "1600.000000", "560.0000", status="estimated", method="interpolated"
    )
    rows = direct(interval=_interval(), tariff=s, registers=regs, currency=s.currency)
    _, fallback = both(
        intervals=[_interval()], slices={11: [(NOV, DEC, s)]}, registers=regs, currency=s.currency
    )
    assert [rows] == fallback
    assert rows.held
    assert (
        "2.191090 MWh is 3.65× the same period last year (0.600000 MWh, from an estimated register)"
    ) in rows.hold


def test_method_texts_in_last_years_registers_are_escaped_alike():
    s = spec("hofor-2024")
    regs = _registers()
    regs[(11, NOV_LY)] = register(
        3, "1000.000000", "500.0000", status="estimated", method="vendor\\fix\tup"
    )
    rows = direct(interval=_interval(), tariff=s, registers=regs, currency=s.currency)
    _, fallback = both(
        intervals=[_interval()], slices={11: [(NOV, DEC, s)]}, registers=regs, currency=s.currency
    )
    assert [rows] == fallback
    assert _comparison(rows)["last_year_readings"][0]["method"] == "vendor\\fix\tup"


def test_one_register_at_both_ends_of_last_year_is_recorded_once_on_both_paths():
    s = spec("hofor-2024")
    regs = _registers()
    regs[(11, DEC_LY)] = regs[(11, NOV_LY)]  # the same row answering for both days
    rows = direct(interval=_interval(), tariff=s, registers=regs, currency=s.currency)
    _, fallback = both(
        intervals=[_interval()], slices={11: [(NOV, DEC, s)]}, registers=regs, currency=s.currency
    )
    assert [rows] == fallback
    comparison = _comparison(rows)
    assert comparison["last_year_mwh"] == "0.000000"
    assert [(r["id"], r["on"]) for r in comparison["last_year_readings"]] == [(3, "2025-11-01")]
