"""The system check of ``BILLING["DUNNING_LADDER"]`` against the ladder's own shape and
the configured legal limits (``BILLING["DUNNING_LIMITS"]``, Danish renteloven §9 b by
default): a ladder the law forbids is refused at start-up, not found in a letter."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from billing.checks import dunning_ladder_check
from billing.conf import DEFAULTS


def ladder(*steps: tuple[int, str]) -> list[dict]:
    """Steps of (days, fee), titled by their level."""
    return [
        {"days": days, "title": f"Reminder {level}", "fee": fee}
        for level, (days, fee) in enumerate(steps, start=1)
    ]


def errors(settings, steps, **billing) -> list[tuple[str, str]]:
    settings.BILLING = {"DUNNING_LADDER": steps, **billing}
    return [(error.id, error.msg) for error in dunning_ladder_check()]


class TestTheProjectsLadder:
    def test_the_default_ladder_keeps_the_danish_limits(self, settings):
        settings.BILLING = {}

        assert dunning_ladder_check() == []
        assert DEFAULTS["DUNNING_LIMITS"] == {
            "max_fees": 3,
            "min_days_between": 10,
            "max_fee": "100.00",
        }

    def test_manage_py_check_is_clean(self, settings):
        settings.BILLING = {}

        call_command("check", "--fail-level", "WARNING")

    def test_manage_py_check_refuses_a_ladder_above_the_limits(self, settings):
        settings.BILLING = {"DUNNING_LADDER": ladder((7, "0.00"), (21, "150.00"))}

        with pytest.raises(SystemCheckError, match=r"billing\.E006"):
            call_command("check")


class TestTheLaddersShape:
    def test_days_must_increase_strictly(self, settings):
        found = errors(settings, ladder((7, "0"), (21, "100"), (21, "100")))

        assert found == [
            (
                "billing.E002",
                "BILLING['DUNNING_LADDER'] step 3 (Reminder 3) is 21 days after the due "
                "date, not later than step 2 (21 days): the steps must come strictly later.",
            )
        ]

    def test_days_must_be_a_whole_number_of_days_from_zero(self, settings):
        found = errors(settings, ladder((-1, "0"), ("2 weeks", "0")), DUNNING_LIMITS=None)

        assert [(error_id, msg.split(":")[0]) for error_id, msg in found] == [
            ("billing.E001", "BILLING['DUNNING_LADDER'] step 1 (Reminder 1) has days -1"),
            ("billing.E001", "BILLING['DUNNING_LADDER'] step 2 (Reminder 2) has days '2 weeks'"),
        ]

    def test_a_step_needs_days_and_a_title(self, settings):
        found = errors(settings, [{"days": 7}, "21"])

        assert [error_id for error_id, _msg in found] == ["billing.E001", "billing.E001"]
        assert "step 1 needs" in found[0][1]
        assert "step 2 needs" in found[1][1]

    @pytest.mark.parametrize("fee", ["-0.01", "abc", "NaN", "Infinity", None])
    def test_a_fee_is_a_decimal_amount_of_zero_or_more(self, settings, fee):
        found = errors(settings, ladder((7, "0"), (21, fee)))

        assert [(error_id, msg.split(":")[0]) for error_id, msg in found] == [
            ("billing.E003", f"BILLING['DUNNING_LADDER'] step 2 (Reminder 2) has fee {fee!r}")
        ]

    def test_a_step_without_a_fee_charges_none(self, settings):
        assert errors(settings, [{"days": 7, "title": "Reminder"}]) == []


class TestTheDanishLimits:
    def test_at_most_three_fees_per_claim(self, settings):
        found = errors(
            settings, ladder((7, "100"), (17, "100"), (27, "100"), (37, "100"), (47, "0"))
        )

        assert found == [
            (
                "billing.E004",
                "BILLING['DUNNING_LADDER'] step 4 (Reminder 4) charges reminder fee number 4: "
                "at most 3 reminder fees may be charged per claim (BILLING['DUNNING_LIMITS'] "
                "max_fees).",
            )
        ]

    def test_at_least_ten_days_between_reminders(self, settings):
        found = errors(settings, ladder((7, "0"), (16, "100"), (30, "100")))

        assert found == [
            (
                "billing.E005",
                "BILLING['DUNNING_LADDER'] step 2 (Reminder 2) comes 9 days after step 1: "
                "reminders must be at least 10 days apart (BILLING['DUNNING_LIMITS'] "
                "min_days_between).",
            )
        ]

    def test_at_most_100_kroner_a_fee(self, settings):
        found = errors(settings, ladder((7, "0"), (21, "100.01"), (35, "100.00")))

        assert found == [
            (
                "billing.E006",
                "BILLING['DUNNING_LADDER'] step 2 (Reminder 2) charges 100.01: at most 100.00 "
                "per reminder (BILLING['DUNNING_LIMITS'] max_fee).",
            )
        ]

    def test_every_step_that_breaks_a_limit_is_named(self, settings):
        found = errors(settings, ladder((7, "150"), (14, "100"), (21, "100"), (28, "100")))

        assert sorted(error_id for error_id, _msg in found) == [
            "billing.E004",
            "billing.E005",
            "billing.E005",
            "billing.E005",
            "billing.E006",
        ]


class TestAnotherCountrysLimits:
    def test_a_country_sets_its_own(self, settings):
        steps = ladder((14, "0"), (28, "70.00"), (42, "70.00"))
        limits = {"max_fees": 1, "min_days_between": 14, "max_fee": "70.00"}

        found = errors(settings, steps, DUNNING_LIMITS=limits)

        assert [error_id for error_id, _msg in found] == ["billing.E004"]
        assert "at most 1 reminder fee may" in found[0][1]

    def test_a_limit_left_out_or_none_is_not_checked(self, settings):
        steps = ladder((7, "0"), (10, "250.00"), (13, "250.00"), (16, "250.00"), (19, "250"))

        assert errors(settings, steps, DUNNING_LIMITS={"max_fee": None}) == []

    def test_none_disables_the_limits_not_the_ladders_shape(self, settings):
        steps = ladder((7, "500"), (8, "500"), (9, "500"), (10, "500"), (10, "-1"))

        found = errors(settings, steps, DUNNING_LIMITS=None)

        assert [error_id for error_id, _msg in found] == ["billing.E002", "billing.E003"]

    @pytest.mark.parametrize(
        "limits",
        [
            {"max_fees": "three"},
            {"min_days_between": -1},
            {"max_fee": "lots"},
            {"max_fees": 3, "max_fee": "100", "maximum": 3},
            ["max_fees", 3],
        ],
    )
    def test_limits_that_cannot_be_read_are_an_error(self, settings, limits):
        found = errors(settings, ladder((7, "0")), DUNNING_LIMITS=limits)

        assert [error_id for error_id, _msg in found] == ["billing.E007"]
