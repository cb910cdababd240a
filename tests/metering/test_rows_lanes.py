"""The vectorised lane accepts only what the careful lane accepts, with the same values."""

import datetime as dt
from decimal import Decimal

import pytest

from metering.ingest.rows import json_rows_fast, tsv_rows, validate_json_rows
from metering.ingest.store import tsv


def _canonical(rows):
    out = []
    for row in rows:
        values = list(row)
        values[2] = dt.datetime.fromisoformat(values[2])
        for i in (3, *range(5, 12)):
            values[i] = None if values[i] is None else Decimal(values[i])
        out.append(tuple(values))
    return out


CLEAN = [
    {
        "meter": "A1",
        "read_at": "2026-11-01T00:00:00+01:00",
        "energy": 12345.678,
        "energy_unit": "kWh",
        "volume_m3": 456,
        "flow_temp_c": 72.5,
        "return_temp_c": None,
        "status_code": 3,
        "flow_temp_m3c": 5e14,
        "power_kw": 0.001,  # (1e-05 has more decimals than power_kw's column holds)
    },
    {
        "meter": "A1",
        "read_at": "2026-11-01T01:00:00Z",
        "energy": 1e-05,  # repr in exponent form, six decimals: fits
        "energy_unit": "GJ",
        "volume_m3": 0.1,
        "flow_temp_c": None,
        "return_temp_c": 38.25,
        "status_code": None,
        "flow_temp_m3c": None,
    },
]


def test_clean_rows_give_the_same_normalised_values_in_both_lanes():
    fast = json_rows_fast(CLEAN, max_rows=10)
    careful, errors = validate_json_rows(CLEAN, max_rows=10)
    assert not errors
    assert fast is not None
    assert _canonical(tsv_rows(fast)) == _canonical(tsv_rows(tsv(careful)))


@pytest.mark.parametrize(
    "change",
    [
        {"meter": 17},
        {"meter": " A1"},
        {"read_at": "2026-11-01T00:00:00"},
        {"read_at": "yesterday"},
        {"energy": "12,5"},
        {"energy": -1},
        {"energy": True},
        {"energy_unit": "BTU"},
        {"status_code": 1.5},
        {"colour": "red"},
        {"flow_temp_c": 500},
        {"read_at": "2026-10-31T23:00:00Z"},  # same instant as row 0: duplicate
    ],
)
def test_anything_doubtful_goes_to_the_careful_lane(change):
    rows = [dict(CLEAN[0]), {**CLEAN[1], **change}]
    assert json_rows_fast(rows, max_rows=10) is None
