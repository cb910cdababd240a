"""Annual block prices: the blocks' 6-decimal quantities add up to the period's energy
exactly, and each line's amount is its quantity × unit price rounded half up to the cent,
as its explanation states.  Figures worked out by hand (net, one rounding per line).
"""

import datetime as dt
import random
from decimal import ROUND_HALF_UP
from decimal import Decimal as D

from tariffs.rating import Determinants, TariffSpec, components_from_data, rate

MICRO = D("0.000001")
CENT = D("0.01")
# exact size of one MWh in each unit (1 MWh = 1000 kWh = 3.6 GJ)
PER_MWH = {"MWh": D("1"), "kWh": D("1000"), "GJ": D("3.6")}


def make(blocks, *, unit="MWh"):
    return TariffSpec(
        version_id=1,
        tariff_code="blocks",
        currency="EUR",
        vat_rate=D("0.19"),
        components=components_from_data(
            [{"type": "energy", "code": "energy", "description": "Energy", "unit": unit,
              "blocks": blocks}]
        ),
    )  # fmt: skip


def det(start, end, *, mwh, annual=None):
    return Determinants(
        period_start=start,
        period_end=end,
        energy_mwh=D(mwh),
        volume_m3=D("100"),
        return_temp_c=None,
        flow_temp_c=None,
        contracted_kw=D("10"),
        heated_area_m2=D("130"),
        annual_energy_mwh=None if annual is None else D(annual),
    )


THREE_BLOCKS = [
    {"upto": "100", "price": "90"},
    {"upto": "300", "price": "80"},
    {"price": "70"},
]


class TestBlockQuantitiesAddUpToThePeriodsEnergy:
    def test_three_blocks_over_six_days_by_hand(self):
        # 1–7 January 2026: 6 of 31 days of a twelfth = 1/62 year, so the annual limits
        # 100 and 300 MWh scale to 1.6129032… and 4.8387096… MWh.  5 MWh fall as
        #   up to 100:  100/62 = 1.612903 225…
        #   100–300:    200/62 = 3.225806 451…
        #   above 300:  5 − 300/62 = 0.161290 322…
        # Rounded one by one: 1.612903 + 3.225806 + 0.161290 = 4.999999, not 5.
        # The millionth left goes to the largest remainder (0.451… of 100–300): 3.225807.
        lines = rate(
            determinants=det(dt.date(2026, 1, 1), dt.date(2026, 1, 7), mwh="5"),
            tariff=make(THREE_BLOCKS),
        )

        # 1.612903 × 90 = 145.16127 → 145.16; 3.225807 × 80 = 258.06456 → 258.06;
        # 0.161290 × 70 = 11.2903 → 11.29
        assert [(ln.description, ln.quantity, ln.unit_price, ln.amount) for ln in lines] == [
            ("Energy (up to 100 MWh/year)", D("1.612903"), D("90"), D("145.16")),
            ("Energy (100–300 MWh/year)", D("3.225807"), D("80"), D("258.06")),
            ("Energy (above 300 MWh/year)", D("0.161290"), D("70"), D("11.29")),
        ]
        assert sum(ln.quantity for ln in lines) == D("5.000000")
        assert [ln.explanation for ln in lines] == [
            "1.612903 MWh × 90.00 EUR/MWh",
            "3.225807 MWh × 80.00 EUR/MWh",
            "0.16129 MWh × 70.00 EUR/MWh",
        ]

    def test_seeded_random_blocks_periods_and_energies_always_add_up(self):
        rng = random.Random(20260107)
        for case in range(2000):
            unit = rng.choice(("MWh", "MWh", "GJ", "kWh"))
            # two to four limits (so three to five blocks), whole or with up to 3 decimals
            scale = rng.choice((1, 1000))
            limits = sorted(
                D(n) / scale for n in rng.sample(range(1, 5000 * scale), rng.randint(2, 4))
            )
            prices = [D(rng.randint(100, 99_999)) / 100 for _ in range(len(limits) + 1)]
            blocks = [
                {"upto": str(limit), "price": str(price)}
                for limit, price in zip(limits, prices[:-1], strict=True)
            ]
            blocks.append({"price": str(prices[-1])})
            start = dt.date(2025, 1, 1) + dt.timedelta(days=rng.randrange(730))
            end = start + dt.timedelta(days=rng.randint(1, 400))
            mwh = D(rng.randint(0, 9_000_000_000)) / 10**6 * rng.choice((1, 1, 10))
            annual = rng.choice((None, None, str(D(rng.randint(1, 9_000_000)) / 1000)))
            lines = rate(
                determinants=det(start, end, mwh=mwh, annual=annual),
                tariff=make(blocks, unit=unit),
            )

            energy = (mwh * PER_MWH[unit]).quantize(MICRO, rounding=ROUND_HALF_UP)
            context = (case, unit, blocks, start, end, mwh, annual)
            assert sum(ln.quantity for ln in lines) == energy, context
            for ln in lines:
                assert ln.quantity >= 0, context
                assert ln.quantity == ln.quantity.quantize(MICRO), context
                assert ln.amount == (ln.quantity * ln.unit_price).quantize(
                    CENT, rounding=ROUND_HALF_UP
                ), context
                assert ln.explanation == (
                    f"{ln.quantity.normalize():f} {unit} × {ln.unit_price:,.2f} EUR/{unit}"
                ), context
