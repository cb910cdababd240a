"""``rate`` caches per-spec constants and per-period fractions: results must not leak
between specs or periods, and the lines must be ordinary frozen ``PricedLine`` values.

Figures worked out by hand (net, rounded half up per line).
"""

import dataclasses
import datetime as dt
from decimal import Decimal as D

import pytest

from tariffs.rating import Determinants, PricedLine, TariffSpec, components_from_data, rate


def det(start, end, *, mwh="3.1", kw="10"):
    return Determinants(
        period_start=start,
        period_end=end,
        energy_mwh=D(mwh),
        volume_m3=D("50"),
        return_temp_c=None,
        flow_temp_c=None,
        contracted_kw=D(kw),
        heated_area_m2=D("130"),
    )


def make(components, *, incl=False, currency="DKK"):
    return TariffSpec(
        version_id=1,
        tariff_code="t",
        currency=currency,
        vat_rate=D("0.25"),
        components=components_from_data(components),
        prices_include_vat=incl,
    )


SUBSCRIPTION = [
    {"type": "fixed", "code": "sub", "description": "Subscription", "amount": "1250.00"}
]


def test_same_spec_over_two_periods_prices_each_period():
    spec = make(SUBSCRIPTION)
    # January: one month = 1/12 year; 1,250 / 12 = 104.1666… → 104.17
    jan = rate(determinants=det(dt.date(2026, 1, 1), dt.date(2026, 2, 1)), tariff=spec)
    # 1–15 February 2026: 14 of 28 days of a twelfth = 1/24 year; 1,250 / 24 = 52.0833… → 52.08
    feb = rate(determinants=det(dt.date(2026, 2, 1), dt.date(2026, 2, 15)), tariff=spec)
    assert jan[0].amount == D("104.17")
    assert jan[0].explanation == "1,250.00 DKK/year × 1/12 year (2026-01-01 to 2026-02-01)"
    assert feb[0].amount == D("52.08")
    assert feb[0].explanation == "1,250.00 DKK/year × 1/24 year (2026-02-01 to 2026-02-15)"
    # and the first period again, after the second was cached
    assert rate(determinants=det(dt.date(2026, 1, 1), dt.date(2026, 2, 1)), tariff=spec) == jan


def test_net_prices_are_cached_per_spec_not_shared():
    january = det(dt.date(2026, 1, 1), dt.date(2026, 2, 1))
    incl = make(SUBSCRIPTION, incl=True)
    excl = make(SUBSCRIPTION, incl=False)
    # incl. 25 % VAT: 1,250 / 1.25 = 1,000 net a year; / 12 = 83.333… → 83.33
    for _ in range(2):
        (line,) = rate(determinants=january, tariff=incl)
        assert (line.unit_price, line.amount) == (D("1000.000000"), D("83.33"))
        assert line.explanation.startswith("1,000.00 DKK/year × ")
        (line,) = rate(determinants=january, tariff=excl)
        assert (line.unit_price, line.amount) == (D("1250.00"), D("104.17"))


def test_season_split_by_days_across_a_season_boundary():
    spec = make(
        [
            {
                "type": "energy",
                "code": "energy",
                "description": "Energy",
                "seasons": [
                    {"label": "winter", "months": [1, 2, 3, 10, 11, 12], "price": "600"},
                    {"label": "summer", "months": [4, 5, 6, 7, 8, 9], "price": "300"},
                ],
            }
        ]
    )
    # 16 March – 16 April: 16 winter days + 15 summer days of 31; 3.1 MWh → 1.6 + 1.5
    lines = rate(determinants=det(dt.date(2026, 3, 16), dt.date(2026, 4, 16)), tariff=spec)
    assert [(ln.description, ln.quantity, ln.amount) for ln in lines] == [
        ("Energy (winter)", D("1.600000"), D("960.00")),
        ("Energy (summer)", D("1.500000"), D("450.00")),
    ]
    assert lines[0].explanation == "1.6 MWh × 600.00 DKK/MWh"
    # across a year end: 15 Dec – 14 Jan is winter only
    (only,) = rate(determinants=det(dt.date(2025, 12, 15), dt.date(2026, 1, 14)), tariff=spec)
    assert (only.description, only.amount) == ("Energy (winter)", D("1860.00"))


def test_graduated_bands_for_different_quantities_with_one_spec():
    spec = make(
        [
            {
                "type": "banded",
                "code": "cap",
                "description": "Capacity",
                "basis": "capacity",
                "unit": "kW",
                "bands": [
                    {"upto": "10", "unit_price": "120", "fixed": "600"},
                    {"upto": None, "unit_price": "60"},
                ],
            }
        ]
    )
    year = (dt.date(2026, 1, 1), dt.date(2027, 1, 1))
    small = rate(determinants=det(*year, kw="8"), tariff=spec)
    big = rate(determinants=det(*year, kw="25"), tariff=spec)
    # 8 kW: fee 600 + 8 × 120 = 960
    assert [(ln.description, ln.amount) for ln in small] == [
        ("Capacity – fixed (0–10 kW)", D("600.00")),
        ("Capacity (0–10 kW)", D("960.00")),
    ]
    # 25 kW: fee 600 + 10 × 120 + 15 × 60 = 900
    assert [(ln.description, ln.amount) for ln in big] == [
        ("Capacity – fixed (0–10 kW)", D("600.00")),
        ("Capacity (0–10 kW)", D("1200.00")),
        ("Capacity (above 10 kW)", D("900.00")),
    ]
    assert big[2].explanation == "15 kW × 60.00 DKK/kW/year × 1 year (2026-01-01 to 2027-01-01)"


def test_lines_are_ordinary_frozen_priced_lines():
    (line,) = rate(
        determinants=det(dt.date(2026, 1, 1), dt.date(2026, 2, 1)), tariff=make(SUBSCRIPTION)
    )
    rebuilt = PricedLine(**{f.name: getattr(line, f.name) for f in dataclasses.fields(PricedLine)})
    assert line == rebuilt
    assert hash(line) == hash(rebuilt)
    with pytest.raises(dataclasses.FrozenInstanceError):
        line.amount = D("0")
    assert dataclasses.replace(line, amount=D("1")).amount == D("1")


def test_unknown_currency_still_fails_when_pricing():
    with pytest.raises(ValueError, match="unknown currency"):
        rate(
            determinants=det(dt.date(2026, 1, 1), dt.date(2026, 2, 1)),
            tariff=make(SUBSCRIPTION, currency="XXX"),
        )


@pytest.mark.parametrize("unit", ["MWh", "GJ", "kWh"])
@pytest.mark.parametrize(
    "mwh", ["0", "-0", "2.345", "0.000001", "18.1", "-3.3333333", "123456789.123456789", "1E+3"]
)
def test_integer_unit_conversion_equals_the_fraction_one(unit, mwh):
    from fractions import Fraction

    from tariffs.rating import _cooling_dt, _dec, _mwh_qty, _qty
    from tariffs.units import convert_energy

    value = D(mwh)
    expected = _qty(convert_energy(value, "MWh", unit))
    got = _mwh_qty(value, unit)
    assert (str(got), got) == (str(expected), expected)
    for volume, factor in (
        (D("70.1"), D("242")),
        (D("0.3"), D("860")),
        (D("1234.5678"), D("-1.5")),
    ):
        energy = Fraction(convert_energy(value, "MWh", unit))
        expected = _dec(energy / Fraction(volume) * Fraction(factor), 6)
        got = _cooling_dt(value, volume, factor, unit)
        assert (str(got), got) == (str(expected), expected)


def test_gj_energy_charge_and_cooling_by_hand():
    # 2.345 MWh = 8.442 GJ; ΔT = 8.442 / 70.1 × 242 = 29.1435663… → 29.143566
    from tariffs.rating import _cooling_dt, _mwh_qty

    assert _mwh_qty(D("2.345"), "GJ") == D("8.442000")
    assert _cooling_dt(D("2.345"), D("70.1"), D("242"), "GJ") == D("29.143566")


def _published(key):
    from tariffs.published import PUBLISHED_TARIFFS

    entry = PUBLISHED_TARIFFS[key]
    return TariffSpec(
        version_id=1,
        tariff_code=key,
        currency=entry["currency"],
        vat_rate=D(entry["vat_rate"]),
        components=components_from_data(entry["components"]),
        prices_include_vat=entry["prices_include_vat"],
    )


@pytest.mark.parametrize(
    "key",
    [
        "fyn",
        "hirtshals",
        "hjoerring-2024",
        "hofor-2024",
        "holte-2023",
        "karlstad",
        "kerteminde-2024",
        "loejt-2024",
        "taarnby",
        "waldkraiburg-2025",
    ],
)
def test_fixed_and_banded_lines_priced_once_per_input_equal_fresh_pricing(key):
    """Rating many connections with one spec reuses the fixed and banded charges' lines;
    every result equals pricing the same determinants with a spec never used before."""
    import copy

    shared = _published(key)
    nov, dec, mid = dt.date(2026, 11, 1), dt.date(2026, 12, 1), dt.date(2026, 11, 16)
    cases = [
        (nov, dec, mwh, kw)
        for mwh in ("0", "2.191090", "18.1")
        for kw in ("9.00", "10", "10.000", "80", "120.5")
    ] + [(nov, mid, "1.5", "10"), (mid, dec, "1.5", "10"), (nov, dec, "2.191090", "9.00")]
    for start, end, mwh, kw in cases:
        d = det(start, end, mwh=mwh, kw=kw)
        assert rate(determinants=d, tariff=shared) == rate(
            determinants=d, tariff=copy.deepcopy(shared)
        ), (start, end, mwh, kw)
    first = rate(determinants=det(nov, dec, mwh="1", kw="10"), tariff=shared)
    again = rate(determinants=det(nov, dec, mwh="2", kw="10.00"), tariff=shared)
    codes = {c.code for c in shared.components if c.type in ("fixed", "banded")}
    if not codes:  # Tårnby: energy and cooling only
        return
    reused = [ln for ln in first if ln.component in codes]
    assert reused
    assert all(
        a is b for a, b in zip(reused, [ln for ln in again if ln.component in codes], strict=True)
    )


def test_explanations_reproduce_their_amounts():
    """Each text multiplies out to its line's amount: net prices with every decimal they
    have, year fractions as the ratio rating uses."""
    spec = make(
        [
            {"type": "energy", "code": "energy", "description": "Energy", "price": "699.99"},
            {
                "type": "banded",
                "code": "capacity",
                "description": "Capacity",
                "basis": "capacity",
                "bands": [{"upto": None, "unit_price": "120.00"}],
            },
        ],
        incl=True,
    )

    energy, capacity = rate(
        determinants=det(dt.date(2026, 1, 1), dt.date(2026, 2, 1), mwh="18.1", kw="1000"),
        tariff=spec,
    )

    # 699.99 / 1.25 = 559.992 net; 18.1 × 559.992 = 10,135.8552 → 10,135.86
    assert energy.explanation == "18.1 MWh × 559.992 DKK/MWh"
    assert energy.amount == D("10135.86")
    # 120.00 / 1.25 = 96.00 net; 1000 kW × 96.00 × 1/12 = 8,000.00 (not × 0.083333 = 7,999.97)
    assert capacity.explanation == (
        "1000 kW × 96.00 DKK/kW/year × 1/12 year (2026-01-01 to 2026-02-01)"
    )
    assert capacity.amount == D("8000.00")


def test_one_season_label_may_name_two_ranges_of_months():
    """'winter' as Jan–Mar and Oct–Dec: stored tariffs have this shape, and it rates as
    one season (the check added for labels used twice refused it, and so stopped billing)."""
    spec = make(
        [
            {"type": "energy", "code": "energy", "description": "Energy", "seasons": [
                {"label": "winter", "months": [1, 2, 3], "price": "690"},
                {"label": "summer", "months": [4, 5, 6, 7, 8, 9], "price": "220"},
                {"label": "winter", "months": [10, 11, 12], "price": "690"},
            ]},
        ]
    )  # fmt: skip

    lines = rate(
        determinants=det(dt.date(2026, 11, 1), dt.date(2026, 12, 1), mwh="1.5"), tariff=spec
    )

    assert [(line.description, line.amount) for line in lines] == [
        ("Energy (winter)", D("1035.00"))
    ]
