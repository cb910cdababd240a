"""What a bill cut at a tariff change bills, and what a block-priced bill records.

Pure (``billing.calc.bill_compute``, no database), figures worked out by hand:

* the slices of a contract interval add up to its register difference rounded once, as
  the bill's comparison says (docs/billing.md, Determinants: MWh rounded cumulatively from
  the interval's start);
* block prices rate the trailing year, whose first register is recorded with the
  readings and whose MWh is recorded in the segment, so the bill explains its block
  split and re-rating finds it (tests/billing/test_rerating.py).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from billing.calc import ContractInterval, Register, bill_compute
from tariffs.rating import Determinants, TariffSpec, components_from_data, rate

NOV, MID, DEC = dt.date(2026, 11, 1), dt.date(2026, 11, 16), dt.date(2026, 12, 1)
YEAR_EARLIER = dt.date(2025, 12, 1)
FLAT = [{"type": "energy", "code": "energy", "description": "Energy", "price": "600.00"}]
BLOCKS = [
    {
        "type": "energy",
        "code": "energy",
        "description": "Energy",
        "blocks": [{"upto": "20", "price": "600.00"}, {"price": "300.00"}],
    }
]


def spec(components, version_id=1) -> TariffSpec:
    return TariffSpec(
        version_id=version_id,
        tariff_code="std",
        currency="DKK",
        vat_rate=D("0.25"),
        components=components_from_data(components),
    )


def reg(rid: int, kwh: str, status: str = "actual") -> Register:
    return Register(rid, D(kwh), D(kwh) / 40, None, None, status, "reading")


def bill(slices, registers):
    return bill_compute(
        account_id=1,
        period_start=NOV,
        period_end=DEC,
        currency="DKK",
        intervals=[ContractInterval(11, NOV, DEC, D("10"), D("130"))],
        slices={11: slices},
        registers={(11, day): r for day, r in registers.items()},
        rate=rate,
        determinants_type=Determinants,
    )


class TestSlicesAtATariffChange:
    def test_three_slices_shared_by_days_add_up_to_the_interval_rounded_once(self):
        """1,000.0005 kWh over three 10-day slices: 333.3335 kWh each, 0.3333335 MWh,
        which rounded one by one billed 0.333334 × 3 = 1.000002 MWh.  Cumulatively:
        0.333334 by the 11th, 0.666667 by the 21st, 1.000001 by the end."""
        d11, d21 = dt.date(2026, 11, 11), dt.date(2026, 11, 21)
        slices = [(NOV, d11, spec(FLAT, 1)), (d11, d21, spec(FLAT, 2)), (d21, DEC, spec(FLAT, 3))]
        draft = bill(slices, {NOV: reg(1, "0"), DEC: reg(2, "1000.0005")})

        assert [s["energy_mwh"] for s in draft.determinants] == [
            "0.333334",
            "0.333333",
            "0.333334",
        ]
        assert draft.comparison["energy_mwh"] == "1.000001"
        assert sum(line.quantity for line in draft.lines) == D("1.000001")

    def test_measured_slices_add_up_to_the_interval_rounded_once(self):
        """A register on the 16th: 500.0005 kWh before it, 500.0005 after.  Each side
        rounded on its own was 0.500001 + 0.500001 = 1.000002 MWh for 1.000001; the
        second side is now the running total's 1.000001 less 0.500001."""
        slices = [(NOV, MID, spec(FLAT, 1)), (MID, DEC, spec(FLAT, 2))]
        draft = bill(slices, {NOV: reg(1, "0"), MID: reg(3, "500.0005"), DEC: reg(2, "1000.001")})

        assert [s["energy_mwh"] for s in draft.determinants] == ["0.500001", "0.500000"]
        assert draft.comparison["energy_mwh"] == "1.000001"
        assert [r["on"] for r in draft.readings] == ["2026-11-01", "2026-11-16", "2026-12-01"]

    def test_a_slice_never_bills_less_than_nothing(self):
        """0.0004 kWh shared by days over three slices rounds to 0 MWh everywhere."""
        d11, d21 = dt.date(2026, 11, 11), dt.date(2026, 11, 21)
        slices = [(NOV, d11, spec(FLAT, 1)), (d11, d21, spec(FLAT, 2)), (d21, DEC, spec(FLAT, 3))]
        draft = bill(slices, {NOV: reg(1, "100"), DEC: reg(2, "100.0004")})

        assert [s["energy_mwh"] for s in draft.determinants] == ["0.000000"] * 3


class TestBlockPricesRecordTheTrailingYear:
    def test_the_register_a_year_earlier_and_the_annual_energy_are_recorded(self):
        """28,000 − 10,000 kWh: 18 MWh in the trailing year, all in the first block."""
        draft = bill(
            [(NOV, DEC, spec(BLOCKS))],
            {
                YEAR_EARLIER: reg(3, "10000", status="estimated"),
                NOV: reg(1, "26000"),
                DEC: reg(2, "28000"),
            },
        )

        assert [r["on"] for r in draft.readings] == ["2025-12-01", "2026-11-01", "2026-12-01"]
        assert draft.has_estimated_reads  # the block split rests on an estimate
        [segment] = draft.determinants
        assert (segment["annual_energy_mwh"], segment["annual_from"]) == ("18.000000", "2025-12-01")
        [line] = draft.lines
        assert (line.quantity, line.amount) == (D("2"), D("1200.00"))

    def test_without_a_register_a_year_earlier_the_segment_says_so(self):
        """No trailing year: the block limits are scaled to the month (20/12 MWh at
        600.00), and the segment records that it had none."""
        draft = bill([(NOV, DEC, spec(BLOCKS))], {NOV: reg(1, "26000"), DEC: reg(2, "28000")})

        assert [r["on"] for r in draft.readings] == ["2026-11-01", "2026-12-01"]
        [segment] = draft.determinants
        assert (segment["annual_energy_mwh"], segment["annual_from"]) == (None, "2025-12-01")
        # 1.666667 MWh up to 20/12 at 600.00, the other 0.333333 at 300.00
        assert [line.quantity for line in draft.lines] == [D("1.666667"), D("0.333333")]

    @pytest.mark.parametrize("blocks_first", [True, False])
    def test_only_the_block_priced_slice_records_the_trailing_year(self, blocks_first):
        versions = [spec(BLOCKS, 1), spec(FLAT, 2)]
        if not blocks_first:
            versions.reverse()
        draft = bill(
            [(NOV, MID, versions[0]), (MID, DEC, versions[1])],
            {YEAR_EARLIER: reg(3, "10000"), NOV: reg(1, "26000"), DEC: reg(2, "28000")},
        )

        recorded = [("annual_from" in s, s.get("annual_energy_mwh")) for s in draft.determinants]
        blocks, flat = (True, "18.000000"), (False, None)
        assert recorded == ([blocks, flat] if blocks_first else [flat, blocks])
        assert [r["on"] for r in draft.readings] == ["2025-12-01", "2026-11-01", "2026-12-01"]

    def test_tariffs_without_blocks_leave_the_register_a_year_earlier_out(self):
        draft = bill(
            [(NOV, DEC, spec(FLAT))],
            {YEAR_EARLIER: reg(3, "10000"), NOV: reg(1, "26000"), DEC: reg(2, "28000")},
        )

        assert [r["on"] for r in draft.readings] == ["2026-11-01", "2026-12-01"]
        assert "annual_from" not in draft.determinants[0]
