"""Invoice PDFs after the audit of the EED Annex IX information: the reference users follow
the period's weather, and the fuel mix and emissions come from the plant's own data.

Worked figures (normal year 2906 degree days, heating share 80 %, 2026 has 365 days):
  January, 532 degree days: 0.8 × 532 / 2906 + 0.2 × 31 / 365 = 0.163441910…
    house 18.1 × 0.163441910 = 2.958 MWh, flat 15.0 × 0.163441910 = 2.452 MWh
  July, 37.5 degree days: 0.8 × 37.5 / 2906 + 0.2 × 31 / 365 = 0.027309770…
    house 0.494 MWh, flat 0.410 MWh
  by days alone (the old figure for both): house 18.1 × 31 / 365 = 1.537, flat 1.274
Plant (12 months before 1 February 2026):
  heat pump 4.0 + 4.0 + 2.0 = 10.0 MWh, electricity 1.0 + 1.0 metered + 2.0 × 2 / 8 = 0.5
  estimated at its measured ratio; electric boiler 2.0 MWh heat, 2.0 MWh electricity;
  mix 10 / 12 = 83.3 %, 2 / 12 = 16.7 %; electricity 4.5 MWh, 0.5 of it (11.1 %) estimated;
  at 200 g/kWh: 4.5 × 200 = 900 kg over 12.0 MWh = 75 kg CO₂ per MWh.
"""

import datetime as dt
import io
from decimal import Decimal

import pytest
from pypdf import PdfReader

from billing.documents import invoice_context, invoice_pdf_bytes
from customers.models import Network
from metering.models import DegreeDay
from tariffs.models import PlantUnit, UnitHour
from tests.billing.factories import billed_network
from tests.billing.helpers import bill_month, invoice_of
from tests.tariffs.factories import PlantFactory, PlantUnitFactory

JAN = dt.date(2026, 1, 1)
JUL = dt.date(2026, 7, 1)
UTC = dt.UTC


def text_of(invoice) -> tuple[str, int]:
    reader = PdfReader(io.BytesIO(invoice_pdf_bytes(invoice=invoice)))
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    return text, len(reader.pages)


def degree_days(network, month: dt.date, per_day: list[str]) -> None:
    DegreeDay.objects.bulk_create(
        DegreeDay(network=network, on=month + dt.timedelta(days=i), degree_days=Decimal(value))
        for i, value in enumerate(per_day)
    )


def january_and_july(*, normal="2906"):
    """One account billed for January and July 2026; 532 and 37.5 degree days."""
    network, (contract,) = billed_network(accounts=1)
    Network.objects.filter(pk=network.pk).update(
        normal_degree_days=None if normal is None else Decimal(normal)
    )
    degree_days(network, JAN, ["17.16"] * 30 + ["17.20"])  # 532.00
    degree_days(network, JUL, ["1.21"] * 30 + ["1.20"])  # 37.50
    bill_month(network, start=JAN)
    bill_month(network, start=JUL)
    january = invoice_of(contract, kind="invoice", period_start=JAN)
    july = invoice_of(contract, kind="invoice", period_start=JUL)
    return network, january, july


@pytest.mark.django_db
class TestReferenceUserFollowsTheWeather:
    def test_january_and_july_differ_with_their_degree_days(self):
        _, january, july = january_and_july()

        assert invoice_context(invoice=january)["reference"] == [
            ("House, 130 m²", Decimal("2.958")),
            ("Flat, 75 m²", Decimal("2.452")),
        ]
        assert invoice_context(invoice=july)["reference"] == [
            ("House, 130 m²", Decimal("0.494")),
            ("Flat, 75 m²", Decimal("0.410")),
        ]

    def test_the_pdf_states_the_weather_basis(self):
        _, january, _ = january_and_july()

        text, pages = text_of(january)

        assert "Reference user (House, 130 m²): 2.958 MWh" in text
        assert "Reference user (Flat, 75 m²): 2.452 MWh" in text
        assert "2.958 MWh" in invoice_context(invoice=january)["chart"]  # the chart's bar
        assert (
            "Reference users: a normal year's use, 80 % scaled by degree days (532 this period, "
            "2906 a normal year), 20 % by days (31 of 365)."
        ) in text
        assert pages == 1

    def test_by_days_when_a_day_of_the_period_has_no_degree_days(self):
        network, _, july = january_and_july()
        DegreeDay.objects.filter(network=network, on=dt.date(2026, 7, 14)).delete()

        context = invoice_context(invoice=july)

        assert context["reference"] == [
            ("House, 130 m²", Decimal("1.537")),
            ("Flat, 75 m²", Decimal("1.274")),
        ]
        assert context["reference_note"] == (
            "Reference users: a normal year's use scaled by days (31 of 365), not by the "
            "weather: this period's degree days are incomplete."
        )
        assert "not by the weather: this period's degree days are incomplete." in text_of(july)[0]

    def test_by_days_when_the_network_has_no_normal_year(self):
        _, january, _ = january_and_july(normal=None)

        context = invoice_context(invoice=january)

        assert context["reference"][0] == ("House, 130 m²", Decimal("1.537"))
        assert context["reference_note"].endswith(
            "not by the weather: the network has no normal-year degree days."
        )

    @pytest.mark.parametrize(
        ("dd_period", "dd_normal", "days", "year_days", "expected"),
        [
            ("532", "2906", 31, 365, "2.958"),
            ("37.5", "2906", 31, 365, "0.494"),
            ("2906", "2906", 365, 365, "18.100"),  # a normal year is the annual figure
            ("2906", "2906", 366, 366, "18.100"),  # also a leap year
            (None, "2906", 31, 365, "1.537"),
            ("532", None, 31, 365, "1.537"),
        ],
    )
    def test_the_period_share_of_a_normal_year(
        self, dd_period, dd_normal, days, year_days, expected
    ):
        from billing.documents import reference_period_mwh

        assert reference_period_mwh(
            annual_mwh=Decimal("18.1"),
            heating_share=Decimal("0.8"),
            days=days,
            year_days=year_days,
            dd_period=None if dd_period is None else Decimal(dd_period),
            dd_normal=None if dd_normal is None else Decimal(dd_normal),
        ) == Decimal(expected)


def hour(unit, at: dt.datetime, heat: str, electricity: str | None = None, fuel=None):
    return UnitHour.objects.create(
        unit=unit,
        hour_start=at,
        heat_mwh=Decimal(heat),
        electricity_mwh=None if electricity is None else Decimal(electricity),
        fuel_mwh=None if fuel is None else Decimal(fuel),
    )


def plant(network):
    """The worked plant of the module docstring, with hours just outside the window."""
    site = PlantFactory(network=network)
    heat_pump = PlantUnitFactory(plant=site)
    boiler = PlantUnitFactory(
        plant=site, code="eb1", kind=PlantUnit.Kind.ELECTRIC_BOILER, source_type=""
    )
    storage = PlantUnitFactory(plant=site, code="tank", kind=PlantUnit.Kind.STORAGE, source_type="")
    # 1 February 2025 00:00 in Copenhagen is 31 January 23:00 UTC: the window's first hour
    hour(heat_pump, dt.datetime(2025, 1, 31, 23, tzinfo=UTC), "4.0", "1.0")
    hour(heat_pump, dt.datetime(2025, 7, 1, 10, tzinfo=UTC), "4.0", "1.0")
    hour(heat_pump, dt.datetime(2025, 7, 1, 11, tzinfo=UTC), "2.0")  # no meter value
    hour(boiler, dt.datetime(2026, 1, 31, 22, tzinfo=UTC), "2.0", "2.0")  # the last hour
    hour(storage, dt.datetime(2025, 12, 1, 10, tzinfo=UTC), "5.0")  # shifts heat only
    # outside: the hour before, and 1 February 2026 00:00 local
    hour(heat_pump, dt.datetime(2025, 1, 31, 22, tzinfo=UTC), "9.0", "3.0")
    hour(boiler, dt.datetime(2026, 1, 31, 23, tzinfo=UTC), "9.0", "9.0")
    return heat_pump, boiler


@pytest.mark.django_db
class TestHeatProductionMix:
    def test_shares_per_kind_and_the_period_the_data_covers(self, django_assert_num_queries):
        from tariffs.selectors import heat_production_mix

        network, _ = billed_network(accounts=1)
        plant(network)

        with django_assert_num_queries(1):
            mix = heat_production_mix(
                network_id=network.pk,
                start=dt.date(2025, 2, 1),
                end=dt.date(2026, 2, 1),
                time_zone="Europe/Copenhagen",
                grid_g_co2_per_kwh=Decimal("200"),
            )

        assert [(k["kind"], k["heat_mwh"], k["percent"]) for k in mix["kinds"]] == [
            ("heat_pump", Decimal("10"), Decimal("83.3")),
            ("electric_boiler", Decimal("2"), Decimal("16.7")),
        ]
        assert (mix["first_on"], mix["last_on"]) == (dt.date(2025, 2, 1), dt.date(2026, 1, 31))
        assert mix["electricity_mwh"] == Decimal("4.5")
        assert mix["electricity_estimated_mwh"] == Decimal("0.5")
        assert mix["emissions_kg_per_mwh"] == Decimal("75")

    def test_the_demo_plants_mix(self):
        from tariffs.selectors import heat_production_mix

        network, _ = billed_network(accounts=1)
        site = PlantFactory(network=network)
        heat_pump = PlantUnitFactory(plant=site)
        boiler = PlantUnitFactory(
            plant=site, code="eb1", kind=PlantUnit.Kind.ELECTRIC_BOILER, source_type=""
        )
        hour(heat_pump, dt.datetime(2025, 6, 1, tzinfo=UTC), "2911.6")
        hour(boiler, dt.datetime(2025, 6, 1, tzinfo=UTC), "1020.0")

        mix = heat_production_mix(
            network_id=network.pk, start=dt.date(2025, 2, 1), end=dt.date(2026, 2, 1),
            time_zone="Europe/Copenhagen",
        )  # fmt: skip

        assert [(k["label"], k["percent"]) for k in mix["kinds"]] == [
            ("Heat pump", Decimal("74.1")),
            ("Electric boiler", Decimal("25.9")),
        ]
        # a heat pump without any metered electricity: no emissions figure
        assert mix["emissions_kg_per_mwh"] is None
        assert mix["emissions_missing"] == "a heat pump's electricity use is not metered"

    @pytest.mark.parametrize(
        ("amounts", "expected"),
        [
            # rounded each on its own: 66.7 + 16.7 + 16.7 = 100.1
            ({"heat_pump": "4", "electric_boiler": "1", "fuel_boiler": "1"},
             {"heat_pump": "66.7", "electric_boiler": "16.7", "fuel_boiler": "16.6"}),
            # rounded each on its own: 33.3 × 3 = 99.9
            ({"a": "1", "b": "1", "c": "1"}, {"a": "33.4", "b": "33.3", "c": "33.3"}),
            ({"a": "2911.6", "b": "1020.0"}, {"a": "74.1", "b": "25.9"}),
            ({"a": "1", "b": "0"}, {"a": "100.0", "b": "0.0"}),
        ],
    )  # fmt: skip
    def test_shares_add_up_to_100_by_largest_remainder(self, amounts, expected):
        from tariffs.selectors import shares_percent

        shares = shares_percent({k: Decimal(v) for k, v in amounts.items()})

        assert shares == {k: Decimal(v) for k, v in expected.items()}
        assert sum(shares.values()) == Decimal("100.0")


@pytest.mark.django_db
class TestFuelMixOnThePdf:
    def test_mix_and_emissions_with_a_grid_factor(self, settings):
        settings.BILLING = {"GRID_EMISSION_G_PER_KWH": "200", "GRID_EMISSION_BASIS": "DK2 2025"}
        network, january, _ = january_and_july()
        plant(network)

        fuel_mix = invoice_context(invoice=january)["fuel_mix"]
        text, pages = text_of(january)

        assert fuel_mix["text"] == (
            "Heat pumps 83.3 %, electric boilers 16.7 % of 12.0 MWh produced "
            "2025-02-01 – 2026-01-31 (plant data)."
        )
        assert fuel_mix["emissions"] == (
            "75 kg CO₂ per MWh produced, before network losses (4.5 MWh electricity "
            "× 200 g CO₂/kWh (DK2 2025); 11.1 % of it estimated for unmetered hours)."
        )
        assert "Fuel mix: Heat pumps 83.3 %, electric boilers 16.7 % of 12.0 MWh" in text
        assert "Emissions: 75 kg CO₂ per MWh produced, before network losses" in text
        assert "about 90 %" not in text
        assert pages == 1

    def test_no_emissions_figure_without_a_grid_factor(self):
        network, january, _ = january_and_july()
        plant(network)

        fuel_mix = invoice_context(invoice=january)["fuel_mix"]

        assert fuel_mix["mix"]["kinds"][0]["percent"] == Decimal("83.3")
        assert fuel_mix["emissions"] == (
            "not available: no emission factor for grid electricity is configured."
        )
        assert "Emissions: not available: no emission factor" in text_of(january)[0]

    def test_without_plant_data_the_mix_is_not_available(self):
        _, january, _ = january_and_july()

        fuel_mix = invoice_context(invoice=january)["fuel_mix"]

        assert fuel_mix["mix"] is None
        assert fuel_mix["text"] == (
            "not available: the plant's production data does not cover 2025-02-01 – 2026-01-31."
        )
        assert "about 90 %" not in text_of(january)[0]

    def test_a_configured_text_only_where_there_is_no_plant_data(self, settings):
        settings.BILLING = {"FUEL_MIX": "See our 2025 environmental declaration."}
        _, without_plant, _ = january_and_july()
        network, with_plant, _ = january_and_july()
        plant(network)

        without_text, _ = text_of(without_plant)
        with_text, _ = text_of(with_plant)

        assert "Fuel mix and emissions: See our 2025 environmental declaration." in without_text
        assert "environmental declaration" not in with_text
        assert "Heat pumps 83.3 %, electric boilers 16.7 % of 12.0 MWh" in with_text
