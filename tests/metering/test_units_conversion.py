"""A register in the meter's unit and the kWh stored for it: the one conversion
(``metering.units``), worked out by hand (1 MWh = 1,000 kWh, 1 Wh = 0.001 kWh,
1 GJ = 1,000/3.6 kWh), rounded half up to 6 decimals.  No database."""

import random
from decimal import ROUND_HALF_UP, Decimal

import pytest

from heatutility.money import quantize_energy
from metering.models import KWH_PER_UNIT
from metering.units import kwh_to_register, kwh_to_register_half_even, register_to_kwh


class TestRegisterToKwh:
    @pytest.mark.parametrize(
        ("value", "unit", "kwh"),
        [
            ("1234.5", "kWh", "1234.500000"),
            ("12.345678", "MWh", "12345.678000"),
            ("1500", "Wh", "1.500000"),
            ("1", "GJ", "277.777778"),  # 277.777… rounds up
            ("12.5", "GJ", "3472.222222"),  # 3472.222… rounds down
            ("0.000001", "GJ", "0.000278"),  # the smallest step: 0.000277…
            ("0", "GJ", "0.000000"),
        ],
    )
    def test_the_register_is_stored_in_kwh_to_6_decimals(self, value, unit, kwh):
        result = register_to_kwh(Decimal(value), unit)

        assert str(result) == kwh

    def test_a_tie_rounds_half_up(self):
        # 0.0005 Wh is 0.0000005 kWh: half up gives 0.000001, half even would give 0
        assert register_to_kwh(Decimal("0.0005"), "Wh") == Decimal("0.000001")

    def test_an_unknown_unit_is_a_key_error(self):
        with pytest.raises(KeyError):
            register_to_kwh(Decimal("1"), "kwh")

    @pytest.mark.parametrize("unit", list(KWH_PER_UNIT))
    def test_it_is_exactly_what_ingestion_and_the_admin_computed(self, unit):
        numbers = random.Random(7)
        for _ in range(2000):
            value = Decimal(numbers.randrange(0, 10**14)).scaleb(-numbers.randrange(0, 7))

            result = register_to_kwh(value, unit)

            # the hand-written copies it replaces (ingestion; the admin, conflicts)
            ingestion = (value * KWH_PER_UNIT[unit]).quantize(
                Decimal("0.000001"), rounding=ROUND_HALF_UP
            )
            assert str(result) == str(ingestion) == str(quantize_energy(value * KWH_PER_UNIT[unit]))


class TestKwhToRegister:
    @pytest.mark.parametrize(
        ("kwh", "unit", "value"),
        [
            ("1234.500000", "kWh", "1234.500000"),
            ("12345.678000", "MWh", "12.345678"),
            ("1.500000", "Wh", "1500.000000"),
            ("277.777778", "GJ", "1.000000"),  # 1.0000000008
            ("1000", "GJ", "3.600000"),
            ("1000.000500", "MWh", "1.000001"),  # 1.0000005, half up
        ],
    )
    def test_stored_kwh_is_shown_in_the_meters_unit(self, kwh, unit, value):
        assert str(kwh_to_register(Decimal(kwh), unit)) == value

    @pytest.mark.parametrize("unit", ["kWh", "MWh", "GJ"])
    def test_a_register_converted_and_back_is_the_register(self, unit):
        numbers = random.Random(11)
        for _ in range(2000):
            value = Decimal(numbers.randrange(0, 10**14)).scaleb(-6)

            assert kwh_to_register(register_to_kwh(value, unit), unit) == value

    def test_a_wh_register_keeps_the_3_decimals_its_kwh_has(self):
        kwh = register_to_kwh(Decimal("1234.5678"), "Wh")

        assert (kwh, kwh_to_register(kwh, "Wh")) == (Decimal("1.234568"), Decimal("1234.568"))


class TestKwhToRegisterHalfEven:
    """The register maximum checks compare in the register unit, rounded half even."""

    def test_a_tie_rounds_to_even(self):
        assert kwh_to_register_half_even(Decimal("1000.000500"), "MWh") == Decimal("1.000000")
        assert kwh_to_register_half_even(Decimal("1000.001500"), "MWh") == Decimal("1.000002")

    @pytest.mark.parametrize("unit", list(KWH_PER_UNIT))
    def test_it_is_exactly_what_the_maximum_checks_computed(self, unit):
        numbers = random.Random(13)
        for _ in range(2000):
            kwh = Decimal(numbers.randrange(0, 10**20)).scaleb(-6)

            result = kwh_to_register_half_even(kwh, unit)

            assert str(result) == str((kwh / KWH_PER_UNIT[unit]).quantize(Decimal("0.000001")))
