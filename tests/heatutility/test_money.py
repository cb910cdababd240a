from decimal import Decimal

import pytest

from heatutility.money import quantize_money, quantize_price, to_decimal


class TestQuantizeMoney:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("2.675", "2.68"),  # float 2.675 would round to 2.67
            ("-2.675", "-2.68"),  # half away from zero, like PostgreSQL round()
            ("10723.445", "10723.45"),
            ("0.004999", "0.00"),
            ("1.005", "1.01"),
        ],
    )
    def test_rounds_half_up_to_the_minor_unit(self, raw, expected):
        assert quantize_money(Decimal(raw), "DKK") == Decimal(expected)

    def test_currency_without_minor_unit(self):
        assert quantize_money(Decimal("1234.5"), "ISK") == Decimal("1235")

    def test_unknown_currency_is_refused(self):
        with pytest.raises(ValueError, match="unknown currency"):
            quantize_money(Decimal("1"), "XXX")

    def test_float_is_converted_by_its_shortest_repr(self):
        assert to_decimal(0.1) == Decimal("0.1")
        assert quantize_money(to_decimal(1.005), "EUR") == Decimal("1.01")

    def test_price_keeps_six_places(self):
        assert quantize_price(Decimal("592.5249995")) == Decimal("592.525000")
